//! Kv.Watch: ordered, exactly-once events from any node, progress,
//! compaction, bounds, and the end of a watch.

use std::time::Duration;

use hyperraft_api::errors::{COMPACT_REVISION_KEY, RETRY_AFTER_MS_KEY};
use hyperraft_api::proto::event::EventType;
use hyperraft_api::proto::request_op::Request as Op;
use hyperraft_api::proto::{DeleteRangeRequest, RequestOp, TxnRequest, WatchRequest, WatchResponse};
use hyperraft_api::ApiConfig;
use tokio::time::Instant;
use tonic::{Code, Streaming};

use crate::harness::{ApiCluster, PATIENCE};
use crate::kv::put;

pub fn watch_request(key: &str, range_end: &[u8], start_revision: u64) -> WatchRequest {
    WatchRequest {
        key: key.as_bytes().to_vec().into(),
        range_end: range_end.to_vec().into(),
        start_revision,
        ..Default::default()
    }
}

/// The next message of `stream`, waiting at most PATIENCE.
pub async fn next(stream: &mut Streaming<WatchResponse>) -> Result<Option<WatchResponse>, tonic::Status> {
    tokio::time::timeout(PATIENCE, stream.message()).await.expect("the watch answered within PATIENCE")
}

/// (key, type, mod_revision) of every event, with the responses they came in.
type Seen = Vec<(String, i32, u64)>;

/// Reads responses until `count` events arrived; answers the events and
/// the revisions of each response.
async fn events(stream: &mut Streaming<WatchResponse>, count: usize) -> (Seen, Vec<Vec<u64>>) {
    let (mut seen, mut responses) = (Vec::new(), Vec::new());
    while seen.len() < count {
        let response = next(stream).await.expect("no error").expect("the stream goes on");
        let revision = response.header.expect("a header").revision;
        let mut revisions = Vec::new();
        for event in &response.events {
            let kv = event.kv.as_ref().expect("a pair");
            assert!(kv.mod_revision <= revision, "an event after the header's revision: {response:?}");
            seen.push((String::from_utf8(kv.key.to_vec()).unwrap(), event.r#type, kv.mod_revision));
            revisions.push(kv.mod_revision);
        }
        responses.push(revisions);
    }
    (seen, responses)
}

fn key(name: &str, kind: EventType, revision: u64) -> (String, i32, u64) {
    (name.to_string(), kind as i32, revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_a_follower_streams_every_change_of_its_range_once_in_order_and_resumes() {
    // Proves a follower's watch delivers each change of its range exactly once, in revision order, with the events of one revision (a transaction) in one response and nothing outside the range; and a watch from a past revision replays the history from there.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower().await;
    let mut watcher = cluster.kv(follower).await;
    let request = WatchRequest { prev_kv: true, ..watch_request("w/", b"w0", 1) };
    let mut stream = watcher.watch(request).await.unwrap().into_inner();

    let mut kv = cluster.kv(leader).await;
    let a1 = kv.put(put("w/a", "1")).await.unwrap().into_inner().header.unwrap().revision;
    kv.put(put("x", "outside")).await.unwrap();
    let b = kv.put(put("w/b", "1")).await.unwrap().into_inner().header.unwrap().revision;
    let both = vec![Op::Put(put("w/a", "2")), Op::Put(put("w/c", "1"))];
    let txn = TxnRequest {
        success: both.into_iter().map(|op| RequestOp { request: Some(op) }).collect(),
        ..Default::default()
    };
    let pair = kv.txn(txn).await.unwrap().into_inner().header.unwrap().revision;
    let delete = DeleteRangeRequest { key: b"w/b".to_vec().into(), ..Default::default() };
    let deleted = kv.delete_range(delete).await.unwrap().into_inner().header.unwrap().revision;

    let (seen, responses) = events(&mut stream, 5).await;
    let expected = vec![
        key("w/a", EventType::Put, a1),
        key("w/b", EventType::Put, b),
        key("w/a", EventType::Put, pair),
        key("w/c", EventType::Put, pair),
        key("w/b", EventType::Delete, deleted),
    ];
    assert_eq!(seen, expected);
    let holding_pair: Vec<&Vec<u64>> = responses.iter().filter(|revisions| revisions.contains(&pair)).collect();
    assert_eq!(holding_pair, vec![&vec![pair, pair]], "the transaction's two events came apart: {responses:?}");

    let mut replay = cluster.kv(leader).await.watch(watch_request("w/", b"w0", b)).await.unwrap().into_inner();
    let (replayed, _) = events(&mut replay, 4).await;
    assert_eq!(replayed, expected[1..].to_vec(), "a watch from revision {b} replays from there");
    drop((stream, replay, watcher, kv));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_gets_progress_with_the_revision_it_is_current_to() {
    // Proves progress notifications: a watch whose key does not change gets empty responses whose header revision reaches the store's revision after writes to other keys.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut kv = cluster.kv(cluster.leader().await).await;
    let request = WatchRequest { progress_interval_ms: 20, ..watch_request("quiet", b"", 0) };
    let mut stream = kv.watch(request).await.unwrap().into_inner();
    let noise = kv.put(put("noise", "1")).await.unwrap().into_inner().header.unwrap().revision;
    loop {
        let response = next(&mut stream).await.unwrap().expect("the stream goes on");
        assert!(response.events.is_empty(), "an event of another key: {response:?}");
        if response.header.unwrap().revision >= noise {
            break;
        }
    }
    drop((stream, kv));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_older_than_the_history_ends_with_out_of_range_and_the_oldest_start() {
    // Proves a watch from before the kept history (4 events here) ends with OUT_OF_RANGE carrying hyperraft-compact-revision, and a watch from that revision is served from there.
    let tune = |node| hyperraft_node::NodeConfig { kv_history_events_max: 4, ..node };
    let cluster = ApiCluster::start_with(1, ApiConfig::default(), tune).await;
    let mut kv = cluster.kv(cluster.leader().await).await;
    let mut revisions = Vec::new();
    for name in ["k1", "k2", "k3", "k4", "k5", "k6"] {
        revisions.push(kv.put(put(name, "v")).await.unwrap().into_inner().header.unwrap().revision);
    }
    let mut stream = kv.watch(watch_request("k", b"l", 1)).await.unwrap().into_inner();
    let refused = next(&mut stream).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    let oldest: u64 =
        refused.metadata().get(COMPACT_REVISION_KEY).expect("the compact revision").to_str().unwrap().parse().unwrap();
    assert_eq!(oldest, revisions[2], "four events kept: the oldest start is the third put's revision");

    let mut resumed = kv.watch(watch_request("k", b"l", oldest)).await.unwrap().into_inner();
    let (seen, _) = events(&mut resumed, 4).await;
    let names: Vec<&str> = seen.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, vec!["k3", "k4", "k5", "k6"]);
    drop((stream, resumed, kv));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_beyond_the_bound_are_refused_until_a_client_goes_away() {
    // Proves watches_max: with room for one watch a second is refused with RESOURCE_EXHAUSTED and a retry hint, and once the first client drops its stream its place comes back.
    let config = ApiConfig { watches_max: 1, ..ApiConfig::default() };
    let cluster = ApiCluster::start(1, config).await;
    let leader = cluster.leader().await;
    let mut first = cluster.kv(leader).await;
    let stream = first.watch(watch_request("a", b"", 0)).await.unwrap().into_inner();
    let mut second = cluster.kv(leader).await;
    let refused = second.watch(watch_request("b", b"", 0)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.metadata().get(RETRY_AFTER_MS_KEY).is_some());

    drop((stream, first));
    let deadline = Instant::now() + PATIENCE;
    let _admitted = loop {
        match second.watch(watch_request("b", b"", 0)).await {
            Ok(stream) => break stream,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
        assert!(Instant::now() < deadline, "the first watch's place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop((_admitted, second));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_late_misses_nothing() {
    // Proves backpressure loses nothing: with one response buffered and one event per response, 40 writes made before the client reads anything all arrive, once each and in order.
    let config = ApiConfig { watch_responses_buffered: 1, watch_events_per_response_max: 1, ..ApiConfig::default() };
    let cluster = ApiCluster::start(1, config).await;
    let mut kv = cluster.kv(cluster.leader().await).await;
    let mut stream = kv.watch(watch_request("s", b"", 1)).await.unwrap().into_inner();
    let mut written = Vec::new();
    for value in 0..40 {
        written.push(kv.put(put("s", &value.to_string())).await.unwrap().into_inner().header.unwrap().revision);
    }
    let (seen, responses) = events(&mut stream, 40).await;
    assert_eq!(seen.iter().map(|(_, _, revision)| *revision).collect::<Vec<_>>(), written);
    assert!(responses.iter().all(|revisions| revisions.len() <= 1), "more than one event in a response");
    drop((stream, kv));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_the_server_down_ends_open_watches_with_unavailable() {
    // Proves ApiServer::shutdown does not wait on open watch streams: the cluster shuts down while a watch is open and unread, and the watch ends with UNAVAILABLE.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut kv = cluster.kv(cluster.leader().await).await;
    let mut stream = kv.watch(watch_request("open", b"", 0)).await.unwrap().into_inner();
    tokio::time::timeout(PATIENCE, cluster.shutdown()).await.expect("shutdown did not wait on the open watch");
    let ended = loop {
        match next(&mut stream).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the watch ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
}
