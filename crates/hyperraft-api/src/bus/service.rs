//! The gRPC `Bus` service of `proto/bus.proto` over the node's [`Bus`].

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{Bus, BusError, Delivery, SlowConsumer, SubscribeOptions, TopicOptions, TopicStats};
use crate::api::Api;
use crate::errors::{invalid_argument, resource_exhausted, retry_safe};
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

fn topic_info(stats: TopicStats) -> proto::TopicInfo {
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
        })
        .collect();
    proto::SubscribeResponse { runs, dropped: delivery.dropped }
}

#[tonic::async_trait]
impl BusRpc for BusService {
    type SubscribeStream = ReceiverStream<Result<proto::SubscribeResponse, Status>>;

    /// Publishes each request in order as it arrives. The stream's
    /// publisher is named by its first request; later ones repeat that
    /// name or leave it empty. The first invalid request ends the call.
    async fn publish(
        &self,
        request: Request<Streaming<proto::PublishRequest>>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        let mut requests = request.into_inner();
        let mut shutdown = self.api.shutdown.clone();
        let mut publisher = None;
        let mut answer = proto::PublishResponse::default();
        loop {
            let next = tokio::select! {
                _ = shutdown.wait_for(|stopped| *stopped) => {
                    return Err(Status::unavailable("the node's API is shutting down"));
                }
                next = requests.next() => next,
            };
            let request = match next {
                None => return Ok(Response::new(answer)),
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
            let published =
                self.bus().publish(publisher, &request.topic, request.payloads).map_err(|e| self.status(e))?;
            answer.batches += 1;
            answer.messages += published.messages as u64;
            answer.deliveries += published.deliveries as u64;
        }
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
        let window = Duration::from_micros(request.window_us);
        let options = SubscribeOptions { batch_max: request.batch_max as usize, window };
        let mut subscription = self.bus().subscribe(&request.topic, options).map_err(|e| self.status(e))?;
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
                    batch = subscription.next_batch() => match batch {
                        Ok(delivery) => Ok(response(delivery)),
                        Err(reason) => Err(Status::resource_exhausted(reason)),
                    },
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
        let topics = self.bus().topics(&request.get_ref().prefix).into_iter().map(topic_info).collect();
        Ok(Response::new(proto::TopicsResponse { topics }))
    }

    async fn configure_topic(
        &self,
        request: Request<proto::ConfigureTopicRequest>,
    ) -> Result<Response<proto::ConfigureTopicResponse>, Status> {
        let request = request.into_inner();
        let policy = policy_from_proto(request.policy)?;
        let queue_max = (request.queue_max != 0).then_some(request.queue_max as usize);
        let stats = self
            .bus()
            .configure_topic(&request.topic, TopicOptions { policy, queue_max })
            .map_err(|e| self.status(e))?;
        Ok(Response::new(proto::ConfigureTopicResponse { topic: Some(topic_info(stats)) }))
    }
}
