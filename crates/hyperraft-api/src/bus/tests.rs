use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::{Bus, BusConfig, BusError, SlowConsumer, SubscribeOptions, TopicOptions};

fn payloads(range: std::ops::Range<u32>) -> Vec<Bytes> {
    range.map(|n| Bytes::copy_from_slice(&n.to_le_bytes())).collect()
}

fn numbers(delivery: &super::Delivery) -> Vec<u32> {
    delivery
        .runs
        .iter()
        .flat_map(|run| run.payloads.iter())
        .map(|payload| u32::from_le_bytes(payload[..4].try_into().unwrap()))
        .collect()
}

fn small_bus() -> Bus {
    Bus::new(BusConfig {
        topics_max: 2,
        subscribers_per_topic_max: 2,
        topic_bytes_max: 8,
        message_bytes_max: 16,
        publish_batch_max: 100,
        delivery_bytes_max: 1024,
        queue_bytes_max: 1024,
        ..BusConfig::default()
    })
}

#[tokio::test]
async fn a_batch_is_cut_at_batch_max_and_keeps_publish_order() {
    // Proves a subscriber with batch_max 4 takes at most 4 messages per batch, in publish order, with sequences from 1.
    let bus = Bus::new(BusConfig::default());
    let mut subscription = bus.subscribe("t", SubscribeOptions { batch_max: 4, window: Duration::ZERO }).unwrap();
    let publisher = bus.publisher("p").unwrap();
    bus.publish(&publisher, "t", payloads(0..3)).unwrap();
    bus.publish(&publisher, "t", payloads(3..10)).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let delivery = subscription.next_batch().await.unwrap();
        assert!(delivery.messages <= 4 && delivery.messages > 0);
        seen.extend(numbers(&delivery));
    }
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(bus.topics("")[0].delivered, 10);
}

#[tokio::test]
async fn run_sequences_follow_the_publisher() {
    // Proves a run carries its publisher and the sequence number of its first message, continuing across publishes.
    let bus = Bus::new(BusConfig::default());
    let mut subscription = bus.subscribe("t", SubscribeOptions::default()).unwrap();
    let publisher = bus.publisher("p").unwrap();
    bus.publish(&publisher, "t", payloads(0..2)).unwrap();
    let first = subscription.next_batch().await.unwrap();
    bus.publish(&publisher, "t", payloads(2..5)).unwrap();
    let second = subscription.next_batch().await.unwrap();
    assert_eq!((&*first.runs[0].publisher, first.runs[0].first_sequence), ("p", 1));
    assert_eq!(second.runs[0].first_sequence, 3);
}

#[tokio::test]
async fn drop_oldest_counts_what_a_full_queue_loses() {
    // Proves a full drop-oldest queue keeps the newest messages and reports how many it dropped.
    let bus = Bus::new(BusConfig::default());
    bus.configure_topic("t", TopicOptions { policy: Some(SlowConsumer::DropOldest), queue_max: Some(5) }).unwrap();
    let mut subscription = bus.subscribe("t", SubscribeOptions { batch_max: 100, window: Duration::ZERO }).unwrap();
    let publisher = bus.publisher("p").unwrap();
    for n in 0..4 {
        bus.publish(&publisher, "t", payloads(n * 3..n * 3 + 3)).unwrap();
    }
    let delivery = subscription.next_batch().await.unwrap();
    assert_eq!(numbers(&delivery), vec![7, 8, 9, 10, 11]);
    assert_eq!(delivery.dropped, 7);
    assert_eq!(bus.topics("t")[0].dropped, 7);
}

#[tokio::test]
async fn a_batch_larger_than_the_queue_keeps_its_newest_part() {
    // Proves one publish bigger than the queue bound is trimmed to its newest messages, the rest counted as dropped.
    let bus = Bus::new(BusConfig::default());
    bus.configure_topic("t", TopicOptions { policy: None, queue_max: Some(3) }).unwrap();
    let mut subscription = bus.subscribe("t", SubscribeOptions::default()).unwrap();
    let published = bus.publish(&bus.publisher("p").unwrap(), "t", payloads(0..10)).unwrap();
    assert_eq!(published.deliveries, 3);
    let delivery = subscription.next_batch().await.unwrap();
    assert_eq!((numbers(&delivery), delivery.dropped), (vec![7, 8, 9], 7));
}

#[tokio::test]
async fn disconnect_closes_a_full_subscription_with_a_reason() {
    // Proves a disconnect topic closes a subscription whose queue overflows, with a reason naming the policy, and counts it.
    let bus = Bus::new(BusConfig::default());
    bus.configure_topic("t", TopicOptions { policy: Some(SlowConsumer::Disconnect), queue_max: Some(4) }).unwrap();
    let mut subscription = bus.subscribe("t", SubscribeOptions::default()).unwrap();
    let publisher = bus.publisher("p").unwrap();
    bus.publish(&publisher, "t", payloads(0..4)).unwrap();
    assert_eq!(bus.publish(&publisher, "t", payloads(4..5)).unwrap().deliveries, 0);
    let reason = subscription.next_batch().await.unwrap_err();
    assert!(reason.contains("disconnect"), "{reason}");
    assert_eq!(bus.topics("t")[0].disconnected, 1);
}

#[tokio::test]
async fn a_full_batch_goes_before_its_window_ends() {
    // Proves a batch is sent once batch_max messages are queued, without waiting out a long window.
    let config = BusConfig { window_max: Duration::from_secs(3600), ..BusConfig::default() };
    let bus = std::sync::Arc::new(Bus::new(config));
    let options = SubscribeOptions { batch_max: 3, window: Duration::from_secs(3600) };
    let mut subscription = bus.subscribe("t", options).unwrap();
    let publisher = bus.publisher("p").unwrap();
    bus.publish(&publisher, "t", payloads(0..1)).unwrap();
    let late = bus.clone();
    let task = tokio::spawn(async move {
        tokio::task::yield_now().await;
        late.publish(&publisher, "t", payloads(1..5)).unwrap();
    });
    let delivery = subscription.next_batch().await.unwrap();
    task.await.unwrap();
    assert_eq!(numbers(&delivery), vec![0, 1, 2]);
}

#[tokio::test]
async fn a_window_sends_a_partial_batch() {
    // Proves a batch with fewer than batch_max messages is sent when its window ends.
    let bus = Bus::new(BusConfig::default());
    let options = SubscribeOptions { batch_max: 1000, window: Duration::from_millis(20) };
    let mut subscription = bus.subscribe("t", options).unwrap();
    bus.publish(&bus.publisher("p").unwrap(), "t", payloads(0..2)).unwrap();
    let delivery = subscription.next_batch().await.unwrap();
    assert_eq!(numbers(&delivery), vec![0, 1]);
}

#[test]
fn bad_input_is_refused_whole() {
    // Proves empty and oversize input, too many topics and subscribers get their own errors and queue nothing.
    let bus = small_bus();
    let publisher = bus.publisher("p").unwrap();
    assert!(matches!(bus.publish(&publisher, "", payloads(0..1)), Err(BusError::Topic(_))));
    assert!(matches!(bus.publish(&publisher, "123456789", payloads(0..1)), Err(BusError::Topic(_))));
    assert_eq!(bus.publish(&publisher, "a", vec![]), Err(BusError::EmptyBatch));
    assert_eq!(bus.publish(&publisher, "a", payloads(0..101)), Err(BusError::BatchTooLarge { count: 101, max: 100 }));
    let big = vec![Bytes::new(), Bytes::from(vec![0; 17])];
    assert_eq!(bus.publish(&publisher, "a", big), Err(BusError::MessageTooLarge { index: 1, bytes: 17, max: 16 }));
    assert!(bus.topics("").is_empty(), "a refused publish made a topic");
    assert!(matches!(bus.publisher(""), Err(BusError::Publisher(_))));
    bus.publish(&publisher, "a", payloads(0..1)).unwrap();
    bus.publish(&publisher, "b", payloads(0..1)).unwrap();
    assert_eq!(bus.publish(&publisher, "c", payloads(0..1)), Err(BusError::TooManyTopics { max: 2 }));
    let _one = bus.subscribe("a", SubscribeOptions::default()).unwrap();
    let _two = bus.subscribe("a", SubscribeOptions::default()).unwrap();
    assert!(matches!(bus.subscribe("a", SubscribeOptions::default()), Err(BusError::TooManySubscriptions { .. })));
    assert!(matches!(
        bus.subscribe("b", SubscribeOptions { batch_max: 1 << 30, window: Duration::ZERO }),
        Err(BusError::Option { field: "batch_max", .. })
    ));
    assert!(matches!(
        bus.configure_topic("a", TopicOptions { policy: None, queue_max: Some(0) }),
        Err(BusError::Option { field: "queue_max", .. })
    ));
}

#[test]
fn dropping_a_subscription_frees_its_places() {
    // Proves a dropped subscription leaves its topic and gives back its place among the bus's subscriptions.
    let bus = small_bus();
    let subscription = bus.subscribe("a", SubscribeOptions::default()).unwrap();
    assert_eq!((bus.subscriptions(), bus.topics("a")[0].subscribers), (1, 1));
    drop(subscription);
    assert_eq!((bus.subscriptions(), bus.topics("a")[0].subscribers), (0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Proves for any interleaving of publishes from several publishers and any batch_max and queue bound, each
    /// publisher's delivered messages are an increasing subsequence of what it published, and delivered plus
    /// dropped equals published.
    #[test]
    fn order_per_publisher_and_accounting(
        publishes in prop::collection::vec((0usize..3, 1u32..20), 1..40),
        batch_max in 1usize..16,
        queue_max in 1usize..64,
        take_every in 1usize..5,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let bus = Bus::new(BusConfig::default());
            bus.configure_topic("t", TopicOptions { policy: Some(SlowConsumer::DropOldest), queue_max: Some(queue_max) })
                .unwrap();
            let mut subscription = bus.subscribe("t", SubscribeOptions { batch_max, window: Duration::ZERO }).unwrap();
            let publishers: Vec<_> = (0..3).map(|n| bus.publisher(&format!("p{n}")).unwrap()).collect();
            let mut next = [0u32; 3];
            let mut seen: Vec<Vec<u64>> = vec![Vec::new(); 3];
            let mut delivered = 0u64;
            let mut dropped = 0;
            let mut total = 0u64;
            for (index, (who, count)) in publishes.iter().enumerate() {
                bus.publish(&publishers[*who], "t", payloads(next[*who]..next[*who] + count)).unwrap();
                next[*who] += count;
                total += u64::from(*count);
                if index % take_every == 0 {
                    let delivery = subscription.next_batch().await.unwrap();
                    prop_assert!(delivery.messages <= batch_max);
                    dropped = delivery.dropped;
                    for run in &delivery.runs {
                        let who: usize = run.publisher[1..].parse().unwrap();
                        for (offset, payload) in run.payloads.iter().enumerate() {
                            let number = u32::from_le_bytes(payload[..4].try_into().unwrap());
                            prop_assert_eq!(u64::from(number) + 1, run.first_sequence + offset as u64);
                            seen[who].push(run.first_sequence + offset as u64);
                        }
                        delivered += run.payloads.len() as u64;
                    }
                }
            }
            while bus.topics("t")[0].published > delivered + subscription.dropped() {
                let delivery = subscription.next_batch().await.unwrap();
                dropped = delivery.dropped;
                for run in &delivery.runs {
                    let who: usize = run.publisher[1..].parse().unwrap();
                    seen[who].extend((0..run.payloads.len() as u64).map(|offset| run.first_sequence + offset));
                    delivered += run.payloads.len() as u64;
                }
            }
            for sequences in &seen {
                prop_assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]));
            }
            prop_assert!(dropped <= subscription.dropped());
            prop_assert_eq!(delivered + subscription.dropped(), total);
            Ok(())
        })?;
    }
}
