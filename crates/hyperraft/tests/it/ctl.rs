//! `hyperraft ctl` against a 3-process cluster: status, put/get and
//! `--json` output.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_hyperraft");
const PATIENCE: Duration = Duration::from_secs(60);

fn hyperraft(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).stdin(Stdio::null()).output().expect("run hyperraft")
}

fn free_tcp_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn free_udp_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
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
    let certs = dir.join("certs");
    let certs_arg = certs.to_str().unwrap();
    assert!(hyperraft(&["cert", "init", "--dir", certs_arg]).status.success());
    for id in 1..=3 {
        let id = id.to_string();
        let issued = hyperraft(&["cert", "issue", "--dir", certs_arg, "--node-id", &id, "--host", "127.0.0.1"]);
        assert!(issued.status.success());
    }
    let peers: BTreeMap<u64, SocketAddr> = (1..=3).map(|id| (id, free_udp_addr())).collect();
    let apis: BTreeMap<u64, SocketAddr> = (1..=3).map(|id| (id, free_tcp_addr())).collect();
    let members: String = peers.iter().map(|(id, addr)| format!("{id} = \"{addr}\"\n")).collect();
    let mut children = Vec::new();
    for (id, peer) in &peers {
        let text = format!(
            "node_id = {id}\npeer_listen = \"{peer}\"\nclient_listen = \"{api}\"\ndata_dir = \"{data}\"\napply_threads = 1\n\n[tls]\nca_cert = \"{ca}\"\nnode_cert = \"{cert}\"\nnode_key = \"{key}\"\n\n[initial_members]\n{members}\n[raft]\nheartbeat_interval_ms = 50\nelection_timeout_min_ms = 300\nelection_timeout_max_ms = 600\n",
            api = apis[id],
            data = dir.join(format!("data-{id}")).display(),
            ca = certs.join("ca.pem").display(),
            cert = certs.join(format!("node-{id}.pem")).display(),
            key = certs.join(format!("node-{id}.key")).display(),
        );
        let config = dir.join(format!("node-{id}.toml"));
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(dir.join(format!("node-{id}.log"))).unwrap();
        let child = Command::new(BINARY)
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn a node");
        children.push(child);
    }
    (Nodes(children), apis.into_values().collect())
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
