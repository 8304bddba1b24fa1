//! `hyperraft bench`: a short run of the built binary against its embedded cluster.

use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_hyperraft");

fn bench_json(extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["bench", "--duration", "2", "--warmup", "0.5", "--clients", "4", "--json"];
    args.extend_from_slice(extra);
    let output = Command::new(BINARY).args(&args).stdin(Stdio::null()).output().expect("run hyperraft bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "hyperraft bench {args:?} failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("not one JSON object ({error}): {stdout}"))
}

/// Proves the default benchmark (3 embedded nodes, transfers) commits
/// transfers without errors and prints the documented JSON fields,
/// including the leader's commit path (a log sync and a round trip to each
/// of the two followers) and no early stop.
#[test]
fn default_bench_commits_transfers_without_errors() {
    let report = bench_json(&[]);
    assert!(report["committed"].as_u64().expect("committed") > 0, "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    assert_eq!(report["nodes"].as_u64(), Some(3));
    assert_eq!(report["workload"].as_str(), Some("transfers"));
    assert_eq!(report["ids"].as_str(), Some("sequential"));
    assert!(report["tps"].as_f64().is_some(), "{report}");
    assert!(report["duration_s"].as_f64().expect("duration_s") >= 2.0, "{report}");
    for quantile in ["p50", "p90", "p99", "p999", "max"] {
        assert!(report["latency_ms"][quantile].as_f64().is_some(), "latency_ms.{quantile} missing: {report}");
    }
    assert!(report["stopped_early"].is_null(), "{report}");
    let path = &report["commit_path_ms"];
    assert!(path["leader_fsync"]["p50"].as_f64().expect("leader_fsync.p50") > 0.0, "{report}");
    assert!(path["commit_apply"]["max"].as_f64().expect("commit_apply.max") > 0.0, "{report}");
    let followers = path["append_round_trip"].as_object().expect("append_round_trip");
    assert_eq!(followers.len(), 2, "{report}");
    assert!(followers.values().all(|round_trip| round_trip["p99"].as_f64().is_some_and(|p99| p99 > 0.0)), "{report}");
}

/// Proves the mixed key/value workload on one node with `--fsync off`
/// commits its gets and puts and says the log did not sync.
#[test]
fn kv_mixed_without_fsync_commits() {
    let report = bench_json(&["--nodes", "1", "--workload", "kv-mixed", "--fsync", "off", "--batch", "64"]);
    assert!(report["committed"].as_u64().expect("committed") > 0, "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    assert_eq!(report["fsync"].as_bool(), Some(false));
    assert!(report["ids"].is_null(), "key/value has no transfer ids: {report}");
}

/// Proves transfers with scattered ids (no two neighbours in one index
/// run) commit on one node without errors, and the JSON says which ids ran.
#[test]
fn scattered_ids_commit_without_errors() {
    let report = bench_json(&["--nodes", "1", "--ids", "scattered"]);
    assert!(report["committed"].as_u64().expect("committed") > 0, "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    assert_eq!(report["ids"].as_str(), Some("scattered"));
}

/// Proves the bus workload runs publishers and subscribers over gRPC
/// against an embedded node, delivers messages to every subscriber and
/// prints its JSON fields.
#[test]
fn bus_workload_delivers_messages() {
    let report = bench_json(&["--workload", "bus", "--subscribers", "2", "--batch", "256", "--message-bytes", "32"]);
    assert_eq!(report["workload"].as_str(), Some("bus"));
    assert_eq!((report["subscribers"].as_u64(), report["message_bytes"].as_u64()), (Some(2), Some(32)));
    assert!(report["published_per_second"].as_f64().expect("published_per_second") > 0.0, "{report}");
    assert!(report["delivered_per_second"].as_f64().expect("delivered_per_second") > 0.0, "{report}");
    assert!(report["delivered_batch_mean"].as_f64().expect("delivered_batch_mean") >= 1.0, "{report}");
    assert!(report["dropped"].as_u64().is_some(), "{report}");
}

/// Proves the agents workload connects its agents to the leader of an
/// embedded cluster, multiplexed over fewer connections, and completes
/// tasks through them with no errors, measuring every dispatch time.
#[test]
fn agents_workload_completes_tasks() {
    let report = bench_json(&["--workload", "agents", "--agents", "150"]);
    assert_eq!(report["workload"].as_str(), Some("agents"));
    assert_eq!(report["agents_connected"].as_u64(), Some(150), "{report}");
    assert_eq!(report["connections"].as_u64(), Some(2), "{report}");
    assert!(report["completed"].as_u64().expect("completed") > 0, "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    assert_eq!(report["node_sessions_closed"].as_u64(), Some(0), "{report}");
    for times in ["dispatch_overhead_ms", "delivery_ms", "applied_to_received_ms", "submit_to_result_ms"] {
        assert!(report[times]["count"].as_u64().expect("count") > 0, "{times}: {report}");
        assert!(report[times]["p99"].as_f64().is_some(), "{times}: {report}");
    }
}
