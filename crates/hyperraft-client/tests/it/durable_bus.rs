//! Durable bus topics on a real 3-node cluster through the SDK: offsets,
//! replay from an offset on any node, the switch from replay to live,
//! leader failover, retention and bad input.

use std::time::Duration;

use bytes::Bytes;
use hyperraft_api::{ApiConfig, BusConfig};
use hyperraft_client::proto::TopicInfo;
use hyperraft_client::{BusNode, BusSubscription, Client, Error};
use tonic::Code;

use crate::harness::{TestCluster, PATIENCE};

/// One delivered message: offset, publisher, sequence, number in the payload.
type Seen = (u64, String, u64, u32);

fn api() -> ApiConfig {
    // A subscription from an offset no node reaches gives up after this.
    let bus = BusConfig { durable_catch_up: Duration::from_millis(500), ..BusConfig::default() };
    ApiConfig { bus, ..ApiConfig::default() }
}

fn numbered(range: std::ops::Range<u32>) -> Vec<Bytes> {
    range.map(|n| Bytes::from(n.to_le_bytes().to_vec())).collect()
}

fn bus_of(client: &Client, cluster: &TestCluster, id: u64) -> BusNode {
    client.bus(Some(&cluster.addresses[&id])).expect("a configured endpoint")
}

/// Takes deliveries until `count` messages arrived; checks offsets follow
/// one another within each run.
async fn take(subscription: &mut BusSubscription, count: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let next = tokio::time::timeout(PATIENCE, subscription.next()).await.expect("a delivery within PATIENCE");
        let response = next.expect("no error").expect("the stream goes on");
        for run in response.runs {
            for (index, payload) in run.payloads.iter().enumerate() {
                let number = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes"));
                let index = index as u64;
                seen.push((run.first_offset + index, run.publisher.clone(), run.first_sequence + index, number));
            }
        }
    }
    seen
}

async fn topic(bus: &BusNode, name: &str) -> TopicInfo {
    let topics = bus.topics(name).await.expect("topics");
    topics.into_iter().find(|topic| topic.name == name).expect("the topic is listed")
}

/// Waits until node `bus` has applied `next_offset` messages of `name`.
async fn applied(bus: &BusNode, name: &str, next_offset: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while topic(bus, name).await.next_offset < next_offset {
        assert!(tokio::time::Instant::now() < deadline, "{name} never reached offset {next_offset}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes `batches` batches of `size` numbered messages on one call;
/// answers the offsets the node acknowledged, one range per batch.
async fn publish(bus: &BusNode, name: &str, publisher: &str, batches: u32, size: u32) -> Vec<(u64, u32)> {
    let mut call = bus.publisher(publisher);
    for batch in 0..batches {
        call.publish(name, numbered(batch * size..(batch + 1) * size)).await.expect("queued");
    }
    let answer = call.finish().await.expect("committed");
    assert_eq!(answer.durable.len(), batches as usize);
    answer.durable.iter().map(|append| (append.first_offset, append.count)).collect()
}

fn expected(range: std::ops::Range<u64>, publisher: &str) -> Vec<Seen> {
    range.map(|offset| (offset, publisher.to_string(), offset + 1, offset as u32)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_messages_replay_from_zero_and_from_the_middle_on_every_node() {
    // Proves a durable publish is acknowledged with dense offsets from 0 and every node replays the same messages, in publish order with their sequences, from offset 0 and from the middle.
    let cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = bus_of(&client, &cluster, cluster.leader().await);
    let info = leader.configure_durable("orders", 0, 0).await.expect("durable");
    assert!(info.durable);
    assert_eq!((info.first_offset, info.next_offset), (0, 0));
    let acks = publish(&leader, "orders", "desk", 3, 10).await;
    assert_eq!(acks, [(0, 10), (10, 10), (20, 10)]);
    for id in [1, 2, 3] {
        let bus = bus_of(&client, &cluster, id);
        applied(&bus, "orders", 30).await;
        let mut from_zero = bus.subscribe_from("orders", Some(0), 0, Duration::ZERO).await.expect("subscribed");
        assert_eq!(take(&mut from_zero, 30).await, expected(0..30, "desk"), "node {id} from 0");
        let mut middle = bus.subscribe_from("orders", Some(15), 4, Duration::ZERO).await.expect("subscribed");
        assert_eq!(take(&mut middle, 15).await, expected(15..30, "desk"), "node {id} from 15");
    }
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_continues_live_without_a_gap_or_a_duplicate() {
    // Proves subscriptions opened on a follower at offset 0 while a publisher keeps publishing receive every offset exactly once and in order, across the switch from replay to live delivery.
    let cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = bus_of(&client, &cluster, cluster.leader().await);
    let follower = bus_of(&client, &cluster, cluster.followers().await[0]);
    leader.configure_durable("ticks", 0, 0).await.expect("durable");
    publish(&leader, "ticks", "feed", 5, 20).await;
    let publishing = {
        let leader = leader.clone();
        tokio::spawn(async move {
            let mut call = leader.publisher("feed");
            for batch in 5..40u32 {
                call.publish("ticks", numbered(batch * 20..(batch + 1) * 20)).await.expect("queued");
                if batch % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            call.finish().await.expect("committed")
        })
    };
    // One subscription starts during the replayed part, one while live publishing goes on.
    let mut early = follower.subscribe_from("ticks", Some(0), 64, Duration::from_millis(2)).await.expect("subscribed");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut late = follower.subscribe_from("ticks", Some(0), 64, Duration::ZERO).await.expect("subscribed");
    let answer = publishing.await.expect("publisher task");
    assert_eq!(answer.durable.len(), 35);
    // The second call's sequences restart at 1, so compare offsets and numbers.
    let numbers = |seen: Vec<Seen>| seen.into_iter().map(|(offset, _, _, number)| (offset, number)).collect::<Vec<_>>();
    let all: Vec<(u64, u32)> = (0..800u64).map(|offset| (offset, offset as u32)).collect();
    assert_eq!(numbers(take(&mut early, 800).await), all);
    assert_eq!(numbers(take(&mut late, 800).await), all);
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_durable_messages_survive_a_leader_failover() {
    // Proves every durable message acknowledged before the leader stops is replayed, at its acknowledged offset, by the surviving nodes, and offsets continue densely under the new leader.
    let mut cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let old_leader = cluster.leader().await;
    let leader = bus_of(&client, &cluster, old_leader);
    leader.configure_durable("ledger-events", 0, 0).await.expect("durable");
    assert_eq!(publish(&leader, "ledger-events", "writer", 10, 10).await.last(), Some(&(90, 10)));
    cluster.stop(old_leader).await;
    let new_leader = bus_of(&client, &cluster, cluster.leader().await);
    // The first write of a new leader may race its election on a loaded machine: retry a retry-safe refusal.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let acks = loop {
        let mut call = new_leader.publisher("writer");
        call.publish("ledger-events", numbered(100..110)).await.expect("queued");
        match call.finish().await {
            Ok(answer) => break answer.durable,
            Err(Error::Unavailable(reason)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = reason;
            }
            Err(other) => panic!("publish after failover: {other:?}"),
        }
    };
    assert_eq!((acks[0].first_offset, acks[0].count), (100, 10));
    for id in cluster.followers().await.into_iter().chain([cluster.leader().await]) {
        let bus = bus_of(&client, &cluster, id);
        applied(&bus, "ledger-events", 110).await;
        let mut replay = bus.subscribe_from("ledger-events", Some(0), 0, Duration::ZERO).await.expect("subscribed");
        let numbers: Vec<(u64, u32)> = take(&mut replay, 110).await.into_iter().map(|seen| (seen.0, seen.3)).collect();
        assert_eq!(numbers, (0..110u64).map(|offset| (offset, offset as u32)).collect::<Vec<_>>(), "node {id}");
    }
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_the_oldest_and_replay_below_it_is_out_of_range() {
    // Proves a topic keeps only its newest messages within its retention, a replay from a trimmed offset fails with OUT_OF_RANGE naming the oldest retained offset (the SDK's typed Error::OffsetTrimmed), and a replay from there works.
    let cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = bus_of(&client, &cluster, cluster.leader().await);
    leader.configure_durable("recent", 10, 1 << 20).await.expect("durable");
    publish(&leader, "recent", "p", 5, 5).await;
    let info = topic(&leader, "recent").await;
    assert_eq!((info.first_offset, info.next_offset, info.retention_messages), (15, 25, 10));
    let follower = bus_of(&client, &cluster, cluster.followers().await[0]);
    applied(&follower, "recent", 25).await;
    match follower.subscribe_from("recent", Some(3), 0, Duration::ZERO).await {
        Err(Error::OffsetTrimmed { first_kept }) => assert_eq!(first_kept, 15),
        Err(other) => panic!("expected OffsetTrimmed (OUT_OF_RANGE), got {other:?}"),
        Ok(_) => panic!("a replay from a trimmed offset was accepted"),
    }
    let mut replay = follower.subscribe_from("recent", Some(15), 0, Duration::ZERO).await.expect("subscribed");
    assert_eq!(take(&mut replay, 10).await, expected(15..25, "p"));
    // Lowering the retention trims at once.
    let info = leader.configure_durable("recent", 4, 0).await.expect("reconfigured");
    assert_eq!((info.first_offset, info.next_offset), (21, 25));
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_durable_input_is_refused_and_changes_nothing() {
    // Proves an offset on a topic that is not durable, an offset in the future, an oversize message, too many messages in one publish, retention above the limit and a publish on a follower are refused with their error, and the topic's offsets are unchanged.
    let small = BusConfig { message_bytes_max: 64, publish_batch_max: 8, ..api().bus };
    let cluster = TestCluster::start_with_api(3, ApiConfig { bus: small, ..api() }).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = bus_of(&client, &cluster, cluster.leader().await);
    let follower = bus_of(&client, &cluster, cluster.followers().await[0]);
    leader.configure_durable("kept", 0, 0).await.expect("durable");
    publish(&leader, "kept", "p", 1, 4).await;
    let before = topic(&leader, "kept").await;
    assert_eq!(before.next_offset, 4);

    let not_durable = leader.subscribe_from("plain", Some(0), 0, Duration::ZERO).await.err();
    assert!(
        matches!(not_durable, Some(Error::InvalidArgument { ref field, .. }) if field == "from_offset"),
        "{not_durable:?}"
    );
    match leader.subscribe_from("kept", Some(5), 0, Duration::ZERO).await.err() {
        Some(Error::Server { code: Code::OutOfRange, message }) => {
            assert!(message.contains("next offset is 4"), "{message}")
        }
        other => panic!("expected OUT_OF_RANGE for a future offset, got {other:?}"),
    }
    let refusals: [(&str, Vec<Bytes>); 2] =
        [("payloads[0]", vec![Bytes::from(vec![0u8; 65])]), ("payloads", numbered(0..9))];
    for (field_expected, payloads) in refusals {
        let mut call = leader.publisher("p");
        let _ = call.publish("kept", payloads).await;
        match call.finish().await {
            Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, field_expected),
            other => panic!("expected INVALID_ARGUMENT on {field_expected}, got {other:?}"),
        }
    }
    match leader.configure_durable("kept", u64::MAX, 0).await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "retention_messages"),
        other => panic!("expected INVALID_ARGUMENT for retention, got {other:?}"),
    }
    applied(&follower, "kept", 4).await;
    let mut call = follower.publisher("p");
    let _ = call.publish("kept", numbered(0..1)).await;
    assert!(matches!(call.finish().await, Err(Error::Unavailable(_))), "a follower does not take durable publishes");
    let after = topic(&leader, "kept").await;
    assert_eq!((after.first_offset, after.next_offset, after.retention_messages), (0, 4, before.retention_messages));
    drop(client);
    cluster.shutdown().await;
}
