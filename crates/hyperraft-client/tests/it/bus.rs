//! The bus through the SDK.

use std::time::Duration;

use bytes::Bytes;
use hyperraft_client::proto::SlowConsumerPolicy;
use hyperraft_client::Error;

use crate::harness::{TestCluster, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_reaches_a_subscriber_of_the_same_node_in_order() {
    // Proves the SDK's publisher and subscription on one node carry batches in publish order, that finish reports what was accepted, that topics lists the counters, and that a refused batch ends the publisher with the node's reason.
    let cluster = TestCluster::start(1).await;
    let client = cluster.client(&[1]).await;
    let bus = client.bus(None).expect("the first endpoint");
    bus.configure_topic("prices", SlowConsumerPolicy::DropOldest, 1000).await.expect("configured");
    let mut subscription = bus.subscribe("prices", 100, Duration::from_millis(1)).await.expect("subscribed");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while bus.topics("prices").await.expect("topics")[0].subscribers != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the subscription never appeared");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut publisher = bus.publisher("feed");
    for batch in 0..10u32 {
        let payloads = (batch * 10..batch * 10 + 10).map(|n| Bytes::from(n.to_le_bytes().to_vec())).collect();
        publisher.publish("prices", payloads).await.expect("queued");
    }
    let answer = publisher.finish().await.expect("accepted");
    assert_eq!((answer.batches, answer.messages), (10, 100));
    let mut seen = Vec::new();
    while seen.len() < 100 {
        let response = tokio::time::timeout(PATIENCE, subscription.next()).await.unwrap().unwrap().unwrap();
        for run in &response.runs {
            assert_eq!(run.publisher, "feed");
            seen.extend(run.payloads.iter().map(|payload| u32::from_le_bytes(payload[..4].try_into().unwrap())));
        }
    }
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    assert_eq!(bus.topics("prices").await.unwrap()[0].delivered, 100);

    let mut bad = bus.publisher("feed");
    let mut refused = None;
    for _ in 0..PATIENCE.as_millis() {
        if let Err(error) = bad.publish("", vec![Bytes::from_static(b"x")]).await {
            refused = Some(error);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let refused = refused.expect("the node refused the empty topic");
    assert!(matches!(&refused, Error::InvalidArgument { field, .. } if field == "topic"), "{refused:?}");
    assert!(client.bus(Some("127.0.0.1:1")).is_err(), "an address outside the endpoints is refused");
}
