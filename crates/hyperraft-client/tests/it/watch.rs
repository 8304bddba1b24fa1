//! Watch streams through the SDK, across the failure of the node serving them.

use bytes::Bytes;
use hyperraft_client::proto::event::EventType;
use hyperraft_client::proto::Event;
use hyperraft_client::{event_revision, prefix_end, Client, Error, WatchStream};
use hyperraft_node::NodeConfig;
use tokio_stream::StreamExt;

use crate::harness::{TestCluster, PATIENCE};

/// The next `count` events of `watch`.
async fn next_events(watch: &mut WatchStream, count: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let event = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .unwrap_or_else(|_| panic!("no event within {PATIENCE:?} after {} of {count}", events.len()))
            .expect("the watch goes on")
            .expect("no watch error");
        events.push(event);
    }
    events
}

async fn put_values(client: &Client, values: std::ops::Range<u32>) {
    for value in values {
        client.put(format!("w/{}", value % 3), value.to_string()).await.expect("put");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_every_change_once_in_order_across_a_node_failure() {
    // Proves watch resumption: the node serving the watch stops midway; the stream reconnects to another node and the consumer sees every put and delete of the range exactly once, in revision order.
    let mut cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;
    client.put("w/before", "ignored").await.expect("put");
    let mut watch = client.watch("w/", prefix_end(b"w/"), 0).await.expect("watch");

    put_values(&client, 0..20).await;
    let mut events = next_events(&mut watch, 20).await;
    let watched = cluster.node_at(&watch.node_address().expect("connected"));
    cluster.stop(watched).await;
    cluster.leader().await;
    // Learn the new leader before writing: a put sent to a node that
    // stopped leading may end with an unknown outcome, which this test
    // does not exercise.
    client.refresh().await;
    put_values(&client, 20..40).await;
    client.delete("w/0").await.expect("delete");
    events.extend(next_events(&mut watch, 21).await);
    assert_ne!(watch.node_address().map(|address| cluster.node_at(&address)), Some(watched));

    let revisions: Vec<u64> = events.iter().map(event_revision).collect();
    assert!(revisions.windows(2).all(|pair| pair[0] < pair[1]), "not in order or repeated: {revisions:?}");
    let values: Vec<Bytes> = events[..40].iter().map(|event| event.kv.as_ref().unwrap().value.clone()).collect();
    let expected: Vec<Bytes> = (0..40).map(|value: u32| Bytes::from(value.to_string())).collect();
    assert_eq!(values, expected, "every put once, in order");
    assert!(events[..40].iter().all(|event| event.r#type == EventType::Put as i32));
    assert_eq!(events[40].r#type, EventType::Delete as i32);
    assert_eq!(events[40].kv.as_ref().unwrap().key, Bytes::from("w/0"));
    drop(watch);
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_compacted_history_ends_with_the_oldest_revision() {
    // Proves compaction surfaces as Error::Compacted { oldest } and ends the stream, and a watch started from `oldest` delivers from there on.
    let cluster = TestCluster::start_with(3, |node| NodeConfig { kv_history_events_max: 8, ..node }).await;
    let client = cluster.client(&[1, 2, 3]).await;
    put_values(&client, 0..30).await;
    let mut watch = client.watch("w/", prefix_end(b"w/"), 1).await.expect("watch");
    let oldest = match tokio::time::timeout(PATIENCE, watch.next()).await.expect("an answer") {
        Some(Err(Error::Compacted { oldest })) => oldest,
        other => panic!("expected Compacted, got {other:?}"),
    };
    assert!(oldest > 1, "history of 8 events after 30 puts starts at {oldest}");
    assert!(watch.next().await.is_none(), "the stream ends after Compacted");

    let mut resumed = client.watch("w/", prefix_end(b"w/"), oldest).await.expect("watch");
    let first = next_events(&mut resumed, 1).await;
    assert_eq!(event_revision(&first[0]), oldest);
    drop((watch, resumed, client));
    cluster.shutdown().await;
}
