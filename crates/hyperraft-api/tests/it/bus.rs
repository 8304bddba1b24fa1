//! The Bus service over gRPC on a real node: order per publisher, batching
//! by count and window, slow-consumer policies, bad input.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hyperraft_api::proto::bus_client::BusClient;
use hyperraft_api::proto::{
    ConfigureTopicRequest, PublishRequest, PublishResponse, SlowConsumerPolicy, SubscribeRequest, SubscribeResponse,
    TopicInfo, TopicsRequest,
};
use hyperraft_api::{ApiConfig, BusConfig};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::harness::{ApiCluster, PATIENCE};

async fn bus(cluster: &ApiCluster) -> BusClient<Channel> {
    BusClient::new(cluster.channel(1).await)
}

fn request(publisher: &str, topic: &str, payloads: Vec<Bytes>) -> PublishRequest {
    PublishRequest { publisher: publisher.to_string(), topic: topic.to_string(), payloads }
}

fn numbered(range: std::ops::Range<u32>, size: usize) -> Vec<Bytes> {
    range
        .map(|n| {
            let mut payload = vec![0u8; size.max(4)];
            payload[..4].copy_from_slice(&n.to_le_bytes());
            Bytes::from(payload)
        })
        .collect()
}

async fn publish(client: &mut BusClient<Channel>, requests: Vec<PublishRequest>) -> Result<PublishResponse, Status> {
    client.publish(tokio_stream::iter(requests)).await.map(|response| response.into_inner())
}

async fn subscribe(
    client: &mut BusClient<Channel>,
    topic: &str,
    batch_max: u32,
    window_us: u64,
) -> Streaming<SubscribeResponse> {
    let request = SubscribeRequest { topic: topic.to_string(), batch_max, window_us, from_offset: None };
    client.subscribe(request).await.expect("subscribed").into_inner()
}

async fn next(stream: &mut Streaming<SubscribeResponse>) -> Result<Option<SubscribeResponse>, Status> {
    tokio::time::timeout(PATIENCE, stream.message()).await.expect("the subscription answered within PATIENCE")
}

async fn topic(client: &mut BusClient<Channel>, name: &str) -> TopicInfo {
    let topics = client.topics(TopicsRequest { prefix: name.to_string() }).await.expect("topics").into_inner();
    topics.topics.into_iter().find(|topic| topic.name == name).expect("the topic is listed")
}

/// Waits until `name` has `count` subscribers (a Subscribe call answers before its first message).
async fn subscribers(client: &mut BusClient<Channel>, name: &str, count: u32) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while topic(client, name).await.subscribers != count {
        assert!(tokio::time::Instant::now() < deadline, "{name} never had {count} subscribers");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn number(payload: &Bytes) -> u32 {
    u32::from_le_bytes(payload[..4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_each_arrive_complete_and_in_order() {
    // Proves that with four publishers publishing at once, a subscriber gets every message exactly once and each publisher's messages in the order published, with matching sequence numbers.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut client = bus(&cluster).await;
    let mut stream = subscribe(&mut client, "orders", 0, 0).await;
    subscribers(&mut client, "orders", 1).await;
    let mut tasks = Vec::new();
    for publisher in 0..4 {
        let mut client = bus(&cluster).await;
        tasks.push(tokio::spawn(async move {
            let name = format!("p{publisher}");
            let requests = (0..50).map(|batch| request(&name, "orders", numbered(batch * 20..batch * 20 + 20, 8)));
            publish(&mut client, requests.collect()).await.expect("published")
        }));
    }
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!((answer.batches, answer.messages, answer.deliveries), (50, 1000, 1000));
    }
    let mut seen: BTreeMap<String, Vec<(u64, u32)>> = BTreeMap::new();
    let mut total = 0;
    while total < 4000 {
        let response = next(&mut stream).await.expect("no error").expect("the stream goes on");
        assert_eq!(response.dropped, 0);
        for run in response.runs {
            let sequences = run.first_sequence..;
            for (sequence, payload) in sequences.zip(&run.payloads) {
                seen.entry(run.publisher.clone()).or_default().push((sequence, number(payload)));
                total += 1;
            }
        }
    }
    assert_eq!(seen.len(), 4);
    for (publisher, messages) in &seen {
        let expected: Vec<(u64, u32)> = (0..1000).map(|n| (u64::from(n) + 1, n)).collect();
        assert_eq!(messages, &expected, "publisher {publisher}");
    }
    assert_eq!(topic(&mut client, "orders").await.delivered, 4000);
    drop((client, stream));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_cut_by_count_and_by_window() {
    // Proves a subscriber gets full batches of batch_max messages while enough are queued, and the remainder in a smaller batch once the window ends.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut client = bus(&cluster).await;
    let mut stream = subscribe(&mut client, "ticks", 10, 50_000).await;
    subscribers(&mut client, "ticks", 1).await;
    publish(&mut client, vec![request("p", "ticks", numbered(0..25, 4))]).await.expect("published");
    let mut sizes = Vec::new();
    let mut numbers = Vec::new();
    while numbers.len() < 25 {
        let response = next(&mut stream).await.expect("no error").expect("the stream goes on");
        let payloads: Vec<&Bytes> = response.runs.iter().flat_map(|run| &run.payloads).collect();
        sizes.push(payloads.len());
        numbers.extend(payloads.into_iter().map(number));
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(numbers, (0..25).collect::<Vec<_>>());
    drop((client, stream));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_loses_the_oldest_messages_and_is_told_how_many() {
    // Proves that under drop-oldest a subscriber that does not read loses messages, that what it then receives plus the dropped count it is told equals what was published, that what it receives is in order, and that Topics counts the drops.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut client = bus(&cluster).await;
    let policy = SlowConsumerPolicy::DropOldest.into();
    client
        .configure_topic(ConfigureTopicRequest { topic: "slow".into(), policy, queue_max: 16, ..Default::default() })
        .await
        .unwrap();
    let mut stream = subscribe(&mut client, "slow", 16, 0).await;
    subscribers(&mut client, "slow", 1).await;
    let requests = (0..100).map(|batch| request("p", "slow", numbered(batch * 100..batch * 100 + 100, 1024)));
    publish(&mut client, requests.collect()).await.expect("published");
    let (mut received, mut dropped, mut last) = (Vec::new(), 0, None);
    while received.len() as u64 + dropped < 10_000 {
        let response = next(&mut stream).await.expect("no error").expect("the stream goes on");
        assert!(response.dropped >= dropped, "the drop counter never goes back");
        dropped = response.dropped;
        for payload in response.runs.iter().flat_map(|run| &run.payloads) {
            let n = number(payload);
            assert!(last.is_none_or(|last| n > last), "out of order: {n} after {last:?}");
            last = Some(n);
            received.push(n);
        }
    }
    assert!(dropped > 0, "nothing was dropped");
    assert_eq!(*received.last().unwrap(), 9_999, "the newest message survives");
    let info = topic(&mut client, "slow").await;
    assert_eq!((info.published, info.dropped, info.delivered), (10_000, dropped, received.len() as u64));
    drop((client, stream));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_of_a_disconnect_topic_is_disconnected_with_a_reason() {
    // Proves that under the disconnect policy a subscriber that does not read ends with RESOURCE_EXHAUSTED naming the policy, and Topics counts it.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut client = bus(&cluster).await;
    let policy = SlowConsumerPolicy::Disconnect.into();
    client
        .configure_topic(ConfigureTopicRequest { topic: "strict".into(), policy, queue_max: 16, ..Default::default() })
        .await
        .unwrap();
    let mut stream = subscribe(&mut client, "strict", 16, 0).await;
    subscribers(&mut client, "strict", 1).await;
    let requests = (0..100).map(|batch| request("p", "strict", numbered(batch * 100..batch * 100 + 100, 1024)));
    publish(&mut client, requests.collect()).await.expect("published");
    let status = loop {
        match next(&mut stream).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a reason"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("slow-consumer policy is disconnect"), "{status:?}");
    assert_eq!(topic(&mut client, "strict").await.disconnected, 1);
    drop((client, stream));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_delivers_nothing() {
    // Proves an oversize message, an empty topic, an unknown policy, a second publisher on one call and one topic too many are each refused with a clear error, and nothing of a refused request reaches a subscriber.
    let bus_config = BusConfig { topics_max: 2, message_bytes_max: 1024, ..BusConfig::default() };
    let cluster = ApiCluster::start(1, ApiConfig { bus: bus_config, ..ApiConfig::default() }).await;
    let mut client = bus(&cluster).await;
    let mut stream = subscribe(&mut client, "a", 0, 0).await;
    subscribers(&mut client, "a", 1).await;

    let oversize = vec![Bytes::from_static(b"ok"), Bytes::from(vec![0u8; 1025])];
    let status = publish(&mut client, vec![request("p", "a", oversize)]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("payloads[1]: 1025 bytes, more than the 1024"), "{status:?}");

    let status = publish(&mut client, vec![request("p", "", numbered(0..1, 4))]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("topic: must not be empty"), "{status:?}");

    let two = vec![request("p", "a", numbered(0..1, 4)), request("q", "a", numbered(1..2, 4))];
    let status = publish(&mut client, two).await.unwrap_err();
    assert!(status.message().contains("one Publish call has one publisher"), "{status:?}");

    let bad_policy = ConfigureTopicRequest { topic: "a".into(), policy: 7, queue_max: 0, ..Default::default() };
    let status = client.configure_topic(bad_policy).await.unwrap_err();
    assert!(status.message().contains("policy: 7 is not a slow-consumer policy"), "{status:?}");

    publish(&mut client, vec![request("p", "b", numbered(0..1, 4))]).await.expect("a second topic fits");
    let status = publish(&mut client, vec![request("p", "c", numbered(0..1, 4))]).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("2 topics exist"), "{status:?}");

    // Only the valid first message of the two-publisher call reached "a".
    let response = next(&mut stream).await.expect("no error").expect("a batch");
    let payloads: Vec<u32> = response.runs.iter().flat_map(|run| &run.payloads).map(number).collect();
    assert_eq!(payloads, vec![0]);
    let info = topic(&mut client, "a").await;
    assert_eq!(info.published, 1);
    drop((client, stream));
    cluster.shutdown().await;
}
