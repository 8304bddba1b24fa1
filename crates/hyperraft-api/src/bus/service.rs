//! The gRPC `Bus` service of `proto/bus.proto` over the node's [`Bus`]
//! and, for durable topics, the replicated store behind Raft.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hyperraft_raft::{BatchResponse, BusErrorCode, BusResult};
use hyperraft_state::bus::TopicRange;
use tonic::metadata::MetadataValue;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::durable::{append_frame, configure_frame, DurableOptions};
use super::{
    Bus, BusError, Delivery, DurableError, DurableSubscription, Publisher, SlowConsumer, SubscribeOptions,
    TopicOptions, TopicStats,
};
use crate::api::Api;
use crate::errors::{invalid_argument, resource_exhausted, retry_safe, unexpected};
use crate::proto;
use crate::proto::bus_server::Bus as BusRpc;

/// Responses buffered per subscription stream beyond the subscription's
/// own queue: a slow client fills the queue, where the topic's policy applies.
const SUBSCRIBE_RESPONSES_BUFFERED: usize = 2;

pub(crate) struct BusService {
    pub(crate) api: Arc<Api>,
}

impl BusService {
    fn bus(&self) -> &Arc<Bus> {
        &self.api.bus
    }

    fn status(&self, error: BusError) -> Status {
        match error {
            BusError::TooManyTopics { .. } | BusError::TooManySubscriptions { .. } => {
                self.api.count_rejected("bus");
                resource_exhausted(error, self.api.config.retry_after)
            }
            other => retry_safe(Status::invalid_argument(other.to_string())),
        }
    }
}

fn policy_from_proto(code: i32) -> Result<Option<SlowConsumer>, Status> {
    match proto::SlowConsumerPolicy::try_from(code) {
        Ok(proto::SlowConsumerPolicy::Unspecified) => Ok(None),
        Ok(proto::SlowConsumerPolicy::DropOldest) => Ok(Some(SlowConsumer::DropOldest)),
        Ok(proto::SlowConsumerPolicy::Disconnect) => Ok(Some(SlowConsumer::Disconnect)),
        Err(_) => Err(invalid_argument("policy", format!("{code} is not a slow-consumer policy"))),
    }
}

/// Metadata key of a durable topic's oldest retained offset, on the
/// `OUT_OF_RANGE` of a subscription from an offset already trimmed.
pub const FIRST_OFFSET_KEY: &str = "hyperraft-bus-first-offset";

/// A durable topic's offsets and retention, from this node's state.
#[derive(Clone, Copy, Debug)]
struct DurableInfo {
    range: TopicRange,
    messages_max: u64,
    bytes_max: u64,
}

fn durable_info(api: &Api, topic: &str) -> Option<DurableInfo> {
    api.node.state().read(|state| {
        let range = state.bus().range(topic)?;
        let (messages_max, bytes_max) = state.bus().retention(topic)?;
        Some(DurableInfo { range, messages_max, bytes_max })
    })
}

fn durable_status(error: DurableError) -> Status {
    match error {
        DurableError::NotDurable(_) => invalid_argument("from_offset", error),
        DurableError::Trimmed { first_offset, .. } => {
            let mut status = Status::out_of_range(error.to_string());
            status.metadata_mut().insert(FIRST_OFFSET_KEY, MetadataValue::from(first_offset));
            status
        }
        DurableError::Future { .. } => Status::out_of_range(error.to_string()),
        DurableError::FellBehind { .. } => Status::resource_exhausted(error.to_string()),
        DurableError::NodeGone => retry_safe(Status::unavailable("the node is shutting down; subscribe again")),
    }
}

/// The status of a durable command the state machine refused (it was
/// committed and changed nothing, so it is not marked retry-safe).
fn refused_status(code: BusErrorCode, message: String) -> Status {
    match code {
        BusErrorCode::TopicsFull => Status::resource_exhausted(message),
        BusErrorCode::UnknownTopic => Status::failed_precondition(message),
        BusErrorCode::RetentionTooLarge | BusErrorCode::AppendExceedsRetention | BusErrorCode::Other => {
            Status::invalid_argument(message)
        }
    }
}

fn topic_info(stats: TopicStats, durable: Option<DurableInfo>) -> proto::TopicInfo {
    let policy = match stats.policy {
        SlowConsumer::DropOldest => proto::SlowConsumerPolicy::DropOldest,
        SlowConsumer::Disconnect => proto::SlowConsumerPolicy::Disconnect,
    };
    proto::TopicInfo {
        name: stats.name,
        policy: policy.into(),
        queue_max: u32::try_from(stats.queue_max).unwrap_or(u32::MAX),
        subscribers: u32::try_from(stats.subscribers).unwrap_or(u32::MAX),
        published: stats.published,
        delivered: stats.delivered,
        dropped: stats.dropped,
        disconnected: stats.disconnected,
        durable: durable.is_some(),
        first_offset: durable.map_or(0, |info| info.range.first_offset),
        next_offset: durable.map_or(0, |info| info.range.next_offset),
        retention_messages: durable.map_or(0, |info| info.messages_max),
        retention_bytes: durable.map_or(0, |info| info.bytes_max),
    }
}

fn response(delivery: Delivery) -> proto::SubscribeResponse {
    let runs = delivery
        .runs
        .into_iter()
        .map(|run| proto::PublisherRun {
            publisher: run.publisher.to_string(),
            first_sequence: run.first_sequence,
            payloads: run.payloads,
            first_offset: run.first_offset.unwrap_or(0),
        })
        .collect();
    proto::SubscribeResponse { runs, dropped: delivery.dropped }
}

/// Where a subscription's batches come from.
pub(crate) enum Source {
    Ephemeral(super::Subscription),
    Durable(DurableSubscription),
}

impl Source {
    pub(crate) async fn next(&mut self) -> Result<proto::SubscribeResponse, Status> {
        match self {
            Source::Ephemeral(subscription) => {
                subscription.next_batch().await.map(response).map_err(Status::resource_exhausted)
            }
            Source::Durable(subscription) => subscription.next_batch().await.map(response).map_err(durable_status),
        }
    }
}

/// Durable publishes of one call awaiting commit, oldest first: (request
/// index, answer).
type InFlight = VecDeque<(u64, hyperraft_node::batcher::Queued)>;

impl BusService {
    /// Queues one durable publish through Raft; waits for the oldest in
    /// flight while the call has `durable_publishes_in_flight_max` of them.
    async fn publish_durable(
        &self,
        publisher: &Publisher,
        request: proto::PublishRequest,
        request_index: u64,
        in_flight: &mut InFlight,
        answer: &mut proto::PublishResponse,
    ) -> Result<(), Status> {
        let config = self.bus().config();
        self.bus().check_payloads(&request.payloads).map_err(|e| self.status(e))?;
        if answer.durable.len() + in_flight.len() >= config.durable_acks_per_call_max {
            let max = config.durable_acks_per_call_max;
            return Err(invalid_argument(
                "durable",
                format!("one Publish call carries at most {max} durable requests; open another call"),
            ));
        }
        let first_sequence = publisher.reserve(request.payloads.len());
        let frame = append_frame(&request.topic, publisher.id(), first_sequence, &request.payloads)
            .map_err(|error| invalid_argument("payloads", format!("too large for one durable append: {error}")))?;
        in_flight.push_back((request_index, self.api.enqueue_write(&frame)?));
        while in_flight.len() >= config.durable_publishes_in_flight_max {
            self.settle_oldest(in_flight, answer).await?;
        }
        Ok(())
    }

    /// Waits for the oldest durable publish in flight and records its offsets.
    async fn settle_oldest(&self, in_flight: &mut InFlight, answer: &mut proto::PublishResponse) -> Result<(), Status> {
        let Some((request_index, queued)) = in_flight.pop_front() else { return Ok(()) };
        match self.api.queued_answer(queued).await? {
            BatchResponse::Bus(results) if results.len() == 1 => match results.into_iter().next() {
                Some(BusResult::Appended { first_offset, count }) => {
                    answer.batches += 1;
                    answer.messages += u64::from(count);
                    answer.durable.push(proto::DurableAppend { request_index, first_offset, count });
                    Ok(())
                }
                Some(BusResult::Refused { code, message }) => Err(refused_status(code, message)),
                other => Err(unexpected(format!("{other:?}"))),
            },
            other => Err(unexpected(format!("{other:?}"))),
        }
    }

    /// Publishes one batch and waits for it: at once on an ephemeral
    /// topic, after commit on a durable one (this node must lead).
    pub(crate) async fn publish_one(
        &self,
        publisher: &Publisher,
        topic: &str,
        payloads: Vec<bytes::Bytes>,
    ) -> Result<proto::BusPublished, Status> {
        if durable_info(&self.api, topic).is_none() {
            let published = self.bus().publish(publisher, topic, payloads).map_err(|e| self.status(e))?;
            let (messages, deliveries) = (published.messages as u64, published.deliveries as u64);
            return Ok(proto::BusPublished { topic: topic.to_string(), messages, deliveries, ..Default::default() });
        }
        self.bus().check_payloads(&payloads).map_err(|e| self.status(e))?;
        let first_sequence = publisher.reserve(payloads.len());
        let frame = append_frame(topic, publisher.id(), first_sequence, &payloads)
            .map_err(|error| invalid_argument("payloads", format!("too large for one durable append: {error}")))?;
        let mut in_flight = InFlight::new();
        in_flight.push_back((0, self.api.enqueue_write(&frame)?));
        let mut answer = proto::PublishResponse::default();
        self.settle_oldest(&mut in_flight, &mut answer).await?;
        let append = answer.durable.first().ok_or_else(|| unexpected("no offsets for a durable publish"))?;
        Ok(proto::BusPublished {
            topic: topic.to_string(),
            messages: u64::from(append.count),
            durable: true,
            first_offset: append.first_offset,
            ..Default::default()
        })
    }

    /// Makes `topic` durable (or changes its retention) through Raft.
    async fn configure_durable(&self, request: &proto::ConfigureTopicRequest) -> Result<(), Status> {
        let topic = &request.topic;
        self.bus().check_topic_name(topic).map_err(|e| self.status(e))?;
        let current = durable_info(&self.api, topic);
        let config = self.bus().config();
        let messages_max = match request.retention_messages {
            0 => current.map_or(config.durable_retention_messages_default, |info| info.messages_max),
            value => value,
        };
        let bytes_max = match request.retention_bytes {
            0 => current.map_or(config.durable_retention_bytes_default, |info| info.bytes_max),
            value => value,
        };
        let limits = self.api.node.state().read(|state| *state.bus().config());
        for (field, value, max) in [
            ("retention_messages", messages_max, limits.messages_max_limit),
            ("retention_bytes", bytes_max, limits.bytes_max_limit),
        ] {
            if value > max {
                return Err(invalid_argument(field, format!("{value} is above the cluster's limit of {max}")));
            }
        }
        if current.is_none()
            && self.api.node.state().read(|state| state.bus().topic_names().count()) >= limits.topics_max
        {
            let max = limits.topics_max;
            return Err(resource_exhausted(
                format!("{max} durable topics exist, the most the cluster holds"),
                self.api.config.retry_after,
            ));
        }
        let frame =
            configure_frame(topic, messages_max, bytes_max).map_err(|error| invalid_argument("topic", error))?;
        match self.api.write(&frame).await? {
            BatchResponse::Bus(results) if results.len() == 1 => match results.into_iter().next() {
                Some(BusResult::Configured { .. }) => Ok(()),
                Some(BusResult::Refused { code, message }) => Err(refused_status(code, message)),
                other => Err(unexpected(format!("{other:?}"))),
            },
            other => Err(unexpected(format!("{other:?}"))),
        }
    }

    /// Opens the source of a subscription: a durable cursor when the topic
    /// is durable here (or an offset is asked for), else an ephemeral queue.
    pub(crate) async fn open_source(&self, request: &proto::SubscribeRequest) -> Result<Source, Status> {
        let window = Duration::from_micros(request.window_us);
        let options = SubscribeOptions { batch_max: request.batch_max as usize, window };
        let durable = request.from_offset.is_some() || durable_info(&self.api, &request.topic).is_some();
        if !durable {
            let subscription = self.bus().subscribe(&request.topic, options).map_err(|e| self.status(e))?;
            return Ok(Source::Ephemeral(subscription));
        }
        self.bus().check_topic_name(&request.topic).map_err(|e| self.status(e))?;
        let batch_max = self.bus().check_subscribe_options(options).map_err(|e| self.status(e))?;
        let config = self.bus().config();
        let options = DurableOptions {
            batch_max,
            window,
            bytes_max: config.delivery_bytes_max,
            policy: self.bus().policy_of(&request.topic),
            catch_up: config.durable_catch_up,
        };
        let node = self.api.node.clone();
        let subscription = DurableSubscription::open(node, &request.topic, request.from_offset, options)
            .await
            .map_err(durable_status)?;
        Ok(Source::Durable(subscription))
    }

    /// Topics of this node's bus and the cluster's durable topics whose
    /// names start with `prefix`, by name.
    fn list_topics(&self, prefix: &str) -> Vec<proto::TopicInfo> {
        let mut topics: Vec<proto::TopicInfo> = self
            .bus()
            .topics(prefix)
            .into_iter()
            .map(|stats| {
                let durable = durable_info(&self.api, &stats.name);
                topic_info(stats, durable)
            })
            .collect();
        let durable_names: Vec<String> = self.api.node.state().read(|state| {
            state.bus().topic_names().filter(|name| name.starts_with(prefix)).map(str::to_string).collect()
        });
        for name in durable_names {
            if topics.iter().any(|topic| topic.name == name) {
                continue;
            }
            let config = self.bus().config();
            let durable = durable_info(&self.api, &name);
            let stats = TopicStats {
                name,
                policy: config.policy_default,
                queue_max: config.queue_max_default,
                subscribers: 0,
                published: 0,
                delivered: 0,
                dropped: 0,
                disconnected: 0,
            };
            topics.push(topic_info(stats, durable));
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }
}

#[tonic::async_trait]
impl BusRpc for BusService {
    type SubscribeStream = ReceiverStream<Result<proto::SubscribeResponse, Status>>;

    /// Publishes each request in order as it arrives. The stream's
    /// publisher is named by its first request; later ones repeat that
    /// name or leave it empty. The first invalid request ends the call.
    /// Requests to a durable topic are appended through Raft, several in
    /// flight at once (committed in request order); the call answers once
    /// every one of them was committed.
    async fn publish(
        &self,
        request: Request<Streaming<proto::PublishRequest>>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        let mut requests = request.into_inner();
        let mut shutdown = self.api.shutdown.clone();
        let mut publisher = None;
        let mut answer = proto::PublishResponse::default();
        let mut in_flight = InFlight::new();
        for request_index in 0.. {
            let next = tokio::select! {
                _ = shutdown.wait_for(|stopped| *stopped) => {
                    return Err(Status::unavailable("the node's API is shutting down"));
                }
                next = requests.next() => next,
            };
            let request = match next {
                None => break,
                Some(request) => request?,
            };
            let _permit = self.api.admit(request.encoded_len())?;
            if publisher.is_none() {
                publisher = Some(self.bus().publisher(&request.publisher).map_err(|e| self.status(e))?);
            }
            let publisher = publisher.as_ref().expect("set above");
            if !request.publisher.is_empty() && request.publisher != publisher.id() {
                return Err(invalid_argument(
                    "publisher",
                    "one Publish call has one publisher; open another call for another",
                ));
            }
            if durable_info(&self.api, &request.topic).is_some() {
                self.publish_durable(publisher, request, request_index, &mut in_flight, &mut answer).await?;
                continue;
            }
            let published =
                self.bus().publish(publisher, &request.topic, request.payloads).map_err(|e| self.status(e))?;
            answer.batches += 1;
            answer.messages += published.messages as u64;
            answer.deliveries += published.deliveries as u64;
        }
        while !in_flight.is_empty() {
            self.settle_oldest(&mut in_flight, &mut answer).await?;
        }
        Ok(Response::new(answer))
    }

    /// One task per subscription takes batches and sends them; it ends
    /// when the client goes away, when the server shuts down
    /// (`UNAVAILABLE`), or when the subscription is closed for falling
    /// behind (`RESOURCE_EXHAUSTED` with the reason).
    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let place = self.api.admit_watch()?;
        let mut source = self.open_source(&request).await?;
        let (responses, receiver) = mpsc::channel(SUBSCRIBE_RESPONSES_BUFFERED);
        let mut shutdown = self.api.shutdown.clone();
        tokio::spawn(async move {
            let _place = place;
            loop {
                let answer = tokio::select! {
                    _ = shutdown.wait_for(|stopped| *stopped) => {
                        Err(Status::unavailable("the node's API is shutting down; subscribe again"))
                    }
                    _ = responses.closed() => return,
                    batch = source.next() => batch,
                };
                let failed = answer.is_err();
                let sent = tokio::select! {
                    _ = shutdown.wait_for(|stopped| *stopped) => false,
                    sent = responses.send(answer) => sent.is_ok(),
                };
                if !sent || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn topics(&self, request: Request<proto::TopicsRequest>) -> Result<Response<proto::TopicsResponse>, Status> {
        let topics = self.list_topics(&request.get_ref().prefix);
        Ok(Response::new(proto::TopicsResponse { topics }))
    }

    async fn configure_topic(
        &self,
        request: Request<proto::ConfigureTopicRequest>,
    ) -> Result<Response<proto::ConfigureTopicResponse>, Status> {
        let request = request.into_inner();
        let policy = policy_from_proto(request.policy)?;
        let queue_max = (request.queue_max != 0).then_some(request.queue_max as usize);
        let options = TopicOptions { policy, queue_max };
        self.bus().check_topic_options(options).map_err(|e| self.status(e))?;
        if request.durable {
            self.configure_durable(&request).await?;
        } else if request.retention_messages != 0 || request.retention_bytes != 0 {
            if durable_info(&self.api, &request.topic).is_none() {
                return Err(invalid_argument("retention_messages", "retention needs durable = true"));
            }
            // Changing the retention of a durable topic goes through Raft too.
            self.configure_durable(&request).await?;
        }
        let stats = self.bus().configure_topic(&request.topic, options).map_err(|e| self.status(e))?;
        let durable = durable_info(&self.api, &request.topic);
        Ok(Response::new(proto::ConfigureTopicResponse { topic: Some(topic_info(stats, durable)) }))
    }
}
