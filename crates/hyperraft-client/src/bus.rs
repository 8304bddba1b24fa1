//! The message bus of one node: [`Client::bus`] gives a [`BusNode`], which
//! opens publishers and subscriptions there.
//!
//! A durable topic ([`BusNode::configure_durable`]) is replicated instead:
//! publish to it on the leader (the call's answer lists the committed
//! offsets, [`PublishResponse::durable`]) and subscribe on any node, from
//! an offset if you like ([`BusNode::subscribe_from`]).
//!
//! The bus is per node: a publisher reaches the subscribers connected to
//! the same node only, so every party of a topic should use the same
//! address. Delivery is at most once; nothing is retried (a repeat could
//! deliver twice, and a lost subscription cannot resume where it was).
//! A [`BusPublisher`] streams its batches on one call, so they arrive in
//! order; a [`BusSubscription`] yields the batches the node sends, with the
//! count of messages it dropped for this subscriber so far.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyperraft_proto::bus_client::BusClient;
use hyperraft_proto::{
    ConfigureTopicRequest, PublishRequest, PublishResponse, SlowConsumerPolicy, SubscribeRequest, SubscribeResponse,
    TopicInfo, TopicsRequest,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use crate::client::Core;
use crate::pool::{Channel, Endpoint};
use crate::{Client, Error};

/// Publish requests queued per publisher before `publish` waits for the
/// stream to take them (backpressure).
const PUBLISH_QUEUE: usize = 16;

impl Client {
    /// The bus of the node at `address` (one of the configured endpoints,
    /// `host:port`), or of the first configured endpoint with `None`.
    pub fn bus(&self, address: Option<&str>) -> Result<BusNode, Error> {
        let endpoints = self.core.pool.endpoints();
        let endpoint = match address {
            None => endpoints.into_iter().next(),
            Some(address) => endpoints.into_iter().find(|endpoint| endpoint.address == address),
        };
        let endpoint = endpoint.ok_or_else(|| Error::InvalidArgument {
            field: "address".to_string(),
            message: format!("{address:?} is not one of the client's endpoints"),
        })?;
        Ok(BusNode { core: self.core.clone(), endpoint })
    }
}

/// The bus of one node.
#[derive(Clone)]
pub struct BusNode {
    core: Arc<Core>,
    endpoint: Arc<Endpoint>,
}

fn error(status: &Status) -> Error {
    match status.code() {
        // The bus says why (too many topics, a subscriber that fell behind).
        Code::ResourceExhausted => {
            Error::Server { code: Code::ResourceExhausted, message: status.message().to_string() }
        }
        _ => Error::from_status(status),
    }
}

impl BusNode {
    /// This node's address.
    pub fn address(&self) -> &str {
        &self.endpoint.address
    }

    fn client(&self) -> BusClient<Channel> {
        self.core.bus(self.core.pool.checkout(&self.endpoint).channel.clone())
    }

    /// Opens a publisher named `publisher`: one `Publish` call that carries
    /// every batch given to [`BusPublisher::publish`], in order.
    pub fn publisher(&self, publisher: &str) -> BusPublisher {
        let (sender, receiver) = mpsc::channel(PUBLISH_QUEUE);
        let mut client = self.client();
        let call = tokio::spawn(async move {
            client.publish(ReceiverStream::new(receiver)).await.map(tonic::Response::into_inner)
        });
        BusPublisher { id: publisher.to_string(), sender: Some(sender), call: Some(call), ended: None }
    }

    /// Subscribes to `topic`: batches of up to `batch_max` messages (0 for
    /// the node's default), sent once full or `window` after their first message.
    pub async fn subscribe(&self, topic: &str, batch_max: u32, window: Duration) -> Result<BusSubscription, Error> {
        self.subscribe_from(topic, None, batch_max, window).await
    }

    /// Like [`BusNode::subscribe`], but on a durable topic from offset
    /// `from_offset` (replay, then live); `None` starts at the topic's next
    /// offset. An offset no longer retained fails with
    /// [`Error::OffsetTrimmed`] naming the oldest one; an offset past the
    /// topic's end with `Error::Server` and `OUT_OF_RANGE`.
    pub async fn subscribe_from(
        &self,
        topic: &str,
        from_offset: Option<u64>,
        batch_max: u32,
        window: Duration,
    ) -> Result<BusSubscription, Error> {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        let request = SubscribeRequest { topic: topic.to_string(), batch_max, window_us, from_offset };
        let stream = self.client().subscribe(request).await.map_err(|status| error(&status))?.into_inner();
        Ok(BusSubscription { stream })
    }

    /// The node's topics whose names start with `prefix`, with their counters.
    pub async fn topics(&self, prefix: &str) -> Result<Vec<TopicInfo>, Error> {
        let request = self.core.request(TopicsRequest { prefix: prefix.to_string() });
        let response = self.client().topics(request).await.map_err(|status| error(&status))?;
        Ok(response.into_inner().topics)
    }

    /// Creates `topic` or sets its slow-consumer policy (`Unspecified`
    /// keeps it) and per-subscriber queue bound (0 keeps it).
    pub async fn configure_topic(
        &self,
        topic: &str,
        policy: SlowConsumerPolicy,
        queue_max: u32,
    ) -> Result<TopicInfo, Error> {
        let request = ConfigureTopicRequest {
            topic: topic.to_string(),
            policy: policy.into(),
            queue_max,
            ..ConfigureTopicRequest::default()
        };
        self.configure(request).await
    }

    /// Makes `topic` durable, or changes its retention (0 keeps the
    /// current one, or takes the node's default for a new durable topic).
    /// Needs the leader's address.
    pub async fn configure_durable(
        &self,
        topic: &str,
        retention_messages: u64,
        retention_bytes: u64,
    ) -> Result<TopicInfo, Error> {
        let request = ConfigureTopicRequest {
            topic: topic.to_string(),
            durable: true,
            retention_messages,
            retention_bytes,
            ..ConfigureTopicRequest::default()
        };
        self.configure(request).await
    }

    async fn configure(&self, request: ConfigureTopicRequest) -> Result<TopicInfo, Error> {
        let request = self.core.request(request);
        let response = self.client().configure_topic(request).await.map_err(|status| error(&status))?;
        response.into_inner().topic.ok_or_else(|| Error::Server { code: Code::Internal, message: "no topic".into() })
    }
}

/// One `Publish` call. Dropping it without [`BusPublisher::finish`] ends
/// the call; batches already sent are delivered.
pub struct BusPublisher {
    id: String,
    sender: Option<mpsc::Sender<PublishRequest>>,
    /// The call, until its answer was taken.
    call: Option<JoinHandle<Result<PublishResponse, Status>>>,
    /// The call's answer, once taken (a join handle answers only once).
    ended: Option<Result<PublishResponse, Error>>,
}

impl BusPublisher {
    /// Queues one batch for `topic`; waits while the stream is full. If
    /// the node ended the call (a refused batch, say), answers its error.
    pub async fn publish(&mut self, topic: &str, payloads: Vec<Bytes>) -> Result<(), Error> {
        let request = PublishRequest { publisher: self.id.clone(), topic: topic.to_string(), payloads };
        let sender = self.sender.as_ref().ok_or(Error::Closed)?;
        if sender.send(request).await.is_ok() {
            return Ok(());
        }
        // The call is over: its answer says why.
        self.sender = None;
        match self.answer().await {
            Err(error) => Err(error),
            Ok(_) => Err(Error::Closed),
        }
    }

    /// The call's answer, waited for once and kept.
    async fn answer(&mut self) -> Result<PublishResponse, Error> {
        if let Some(call) = self.call.take() {
            let answer = match call.await {
                Ok(answer) => answer.map_err(|status| error(&status)),
                Err(join) => Err(Error::Transport(join.to_string())),
            };
            self.ended = Some(answer);
        }
        self.ended.clone().unwrap_or(Err(Error::Closed))
    }

    /// Closes the stream and answers what the node accepted, or the error
    /// that ended the call.
    pub async fn finish(mut self) -> Result<PublishResponse, Error> {
        self.sender = None;
        self.answer().await
    }
}

/// One subscription's stream of batches.
pub struct BusSubscription {
    stream: Streaming<SubscribeResponse>,
}

impl BusSubscription {
    /// The next batch; `None` when the node ended the stream. A subscriber
    /// that fell behind on a `disconnect` topic gets `Error::Server` with
    /// `RESOURCE_EXHAUSTED` and the reason.
    pub async fn next(&mut self) -> Result<Option<SubscribeResponse>, Error> {
        self.stream.message().await.map_err(|status| error(&status))
    }
}
