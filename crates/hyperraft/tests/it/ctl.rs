//! `hyperraft ctl` against a 3-process cluster: status, put/get and
//! `--json` output.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::nodes::{issue_certs, spawn_serve, Layout, BINARY};

const PATIENCE: Duration = Duration::from_secs(60);

fn hyperraft(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).stdin(Stdio::null()).output().expect("run hyperraft")
}

/// Serve processes, killed when dropped.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Certificates, configurations and three `hyperraft serve` processes;
/// returns them with the nodes' API addresses.
fn start_cluster(dir: &Path) -> (Nodes, Vec<SocketAddr>) {
    issue_certs(&dir.join("certs"), 1..=3);
    let layout = Layout::loopback(3);
    let children =
        (1..=3).map(|id| spawn_serve(&layout.write_config(dir, id, ""), &dir.join(format!("node-{id}.log")))).collect();
    (Nodes(children), layout.apis.into_values().collect())
}

fn ctl(endpoints: &str, args: &[&str]) -> Output {
    let mut all = vec!["ctl", "--endpoints", endpoints];
    all.extend_from_slice(args);
    hyperraft(&all)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `ctl --json status` once every node answers and one of them leads.
fn wait_for_leader(endpoints: &str) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let output = ctl(endpoints, &["--json", "status"]);
        if output.status.success() {
            let status: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("status is JSON");
            let nodes = status.as_array().expect("one entry per endpoint");
            let leaders = nodes.iter().filter(|node| node["is_leader"] == true).count();
            if nodes.len() == 3 && leaders == 1 && nodes.iter().all(|node| node["error"].is_null()) {
                return status;
            }
        }
        assert!(Instant::now() < deadline, "no leader: {}", String::from_utf8_lossy(&output.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ctl_reads_status_and_writes_and_reads_keys_in_tables_and_json() {
    // Proves `hyperraft ctl` against real serve processes: status lists every node with one leader (table and --json), put then get returns the value, accounts, transfers, ranges, prefix deletes and leases (grant, a leased put, ttl with keys, list, revoke deleting the key) answer in --json, and a bad key fails with a non-zero exit.
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, apis) = start_cluster(dir.path());
    let endpoints = apis.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");

    let status = wait_for_leader(&endpoints);
    let leader = status.as_array().unwrap().iter().find(|node| node["is_leader"] == true).unwrap()["node_id"].clone();
    assert!(status.as_array().unwrap().iter().all(|node| node["leader_id"] == leader), "{status}");
    let table = stdout(&ctl(&endpoints, &["status"]));
    assert!(table.starts_with("ENDPOINT"), "{table}");
    assert_eq!(table.lines().count(), 4, "a header and one line per node: {table}");

    let put = ctl(&endpoints, &["put", "greeting", "hello"]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let got = stdout(&ctl(&endpoints, &["get", "greeting"]));
    assert!(got.lines().nth(1).is_some_and(|line| line.starts_with("greeting  hello")), "{got}");
    let got: serde_json::Value =
        serde_json::from_str(&stdout(&ctl(&endpoints, &["--json", "get", "greeting"]))).unwrap();
    assert_eq!(got["kv"]["value"], "hello");
    assert_eq!(got["kv"]["version"], 1);
    let missing: serde_json::Value =
        serde_json::from_str(&stdout(&ctl(&endpoints, &["--json", "get", "nope"]))).unwrap();
    assert!(missing["kv"].is_null());

    let created =
        stdout(&ctl(&endpoints, &["--json", "account", "create", "--id", "7", "--ledger", "1", "--code", "1"]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&created).unwrap()["result"], "OK");
    let accounts: serde_json::Value =
        serde_json::from_str(&stdout(&ctl(&endpoints, &["--json", "account", "lookup", "7", "8"]))).unwrap();
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    assert_eq!(accounts[0]["id"], "7");

    let transfer = ["--json", "transfer", "create", "--id", "9", "--debit", "7", "--credit", "8", "--amount", "5"];
    let transfer: Vec<&str> = transfer.into_iter().chain(["--ledger", "1", "--code", "1"]).collect();
    let refused_transfer: serde_json::Value = serde_json::from_str(&stdout(&ctl(&endpoints, &transfer))).unwrap();
    assert_eq!(refused_transfer["result"], "CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_NOT_FOUND");

    assert!(ctl(&endpoints, &["put", "greeting2", "hi"]).status.success());
    let range: serde_json::Value =
        serde_json::from_str(&stdout(&ctl(&endpoints, &["--json", "range", "greet"]))).unwrap();
    assert_eq!(range["count"], 2, "{range}");
    let deleted: serde_json::Value =
        serde_json::from_str(&stdout(&ctl(&endpoints, &["--json", "del", "--prefix", "greet"]))).unwrap();
    assert_eq!(deleted["deleted"], 2, "{deleted}");

    let json = |args: &[&str]| -> serde_json::Value {
        let all: Vec<&str> = ["--json"].into_iter().chain(args.iter().copied()).collect();
        serde_json::from_str(&stdout(&ctl(&endpoints, &all))).unwrap()
    };
    assert_eq!(json(&["lease", "grant", "60000", "--id", "99"])["id"], 99);
    assert!(ctl(&endpoints, &["put", "owned", "v", "--lease", "99"]).status.success());
    let ttl = json(&["lease", "ttl", "99", "--keys"]);
    assert_eq!((ttl["granted_ttl_ms"].clone(), ttl["keys"].clone()), (60000.into(), serde_json::json!(["owned"])));
    assert_eq!(json(&["lease", "list"])["ids"], serde_json::json!([99]));
    assert_eq!(json(&["lease", "revoke", "99"])["deleted"], 1);
    assert!(json(&["get", "owned"])["kv"].is_null());

    let refused = ctl(&endpoints, &["put", "", "x"]);
    assert!(!refused.status.success(), "an empty key is refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("key"));
}
