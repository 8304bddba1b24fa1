//! The Python agent SDK (`sdk/python`) against real `hyperraft serve`
//! processes: the example agent run as Python subprocesses, tasks submitted
//! from Rust, and the committed gRPC stubs checked against the proto.
//!
//! These tests need a Python interpreter with the SDK and `grpcio-tools`
//! installed, named by `HYPERRAFT_PYTHON` (`.ci/run` makes one); without it
//! they print why they are skipped and pass.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyperraft_client::agent::{TaskFailure, TaskStatus};
use hyperraft_client::proto::{GetTaskResponse, SubmitTaskRequest};
use hyperraft_client::{Client, ClientConfig, ClientTls, Error};

use crate::nodes::{issue_certs, spawn_serve, Layout, BINARY};

/// How long anything may take on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(90);
/// The agents' lease TTL, in seconds: long, so that an agent's key that
/// goes away within the test went because the agent left, not expired.
const AGENT_TTL_S: &str = "120";
const TOKEN: &str = "python-sdk-test-token";

/// The interpreter named by `HYPERRAFT_PYTHON`, or `None` after saying the test is skipped.
fn python() -> Option<PathBuf> {
    match std::env::var_os("HYPERRAFT_PYTHON") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            println!(
                "skipped: set HYPERRAFT_PYTHON to a Python with sdk/python and grpcio-tools installed (.ci/run does)"
            );
            None
        }
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// The last lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// Child processes (nodes or agents) with their log files, killed when dropped.
#[derive(Default)]
struct Processes {
    children: BTreeMap<String, (Child, PathBuf)>,
}

impl Processes {
    fn kill(&mut self, name: &str) {
        let (mut child, _) = self.children.remove(name).expect("a running process");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }

    /// Sends SIGTERM to `name` and waits for it: it must exit with 0.
    fn terminate(&mut self, name: &str) {
        let (mut child, log) = self.children.remove(name).expect("a running process");
        sigterm(&child);
        let deadline = Instant::now() + PATIENCE;
        let exit = loop {
            if let Some(exit) = child.try_wait().expect("wait") {
                break exit;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name} did not stop on SIGTERM; its log:\n{}", tail(&log));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "{name} exited with {exit:?} on SIGTERM; its log:\n{}", tail(&log));
    }

    /// Every log, for a failure message.
    fn logs(&self) -> String {
        self.children.iter().map(|(name, (_, log))| format!("--- {name}\n{}\n", tail(log))).collect()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (child, _) in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn hyperraft(args: &[&str], stdin: &str) -> String {
    let mut child =
        Command::new(BINARY).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run hyperraft");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "hyperraft {args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

/// Three `hyperraft serve` processes whose API speaks TLS (their node
/// certificates, signed by `certs/ca.pem`) and takes a write token, with
/// agent timings short enough for a test; returns their API addresses.
fn start_nodes(dir: &Path, processes: &mut Processes) -> BTreeMap<u64, SocketAddr> {
    let certs = dir.join("certs");
    issue_certs(&certs, 1..=3);
    let sha256 = hyperraft(&["token", "hash"], TOKEN).trim().to_string();
    let layout = Layout::loopback(3);
    let clients: String = layout.apis.iter().map(|(id, addr)| format!("{id} = \"{addr}\"\n")).collect();
    for id in 1..=3 {
        let extra = format!(
            "\n[client_addresses]\n{clients}\n\
             [agents]\nreassign_backoff_ms = 10\ndispatch_interval_ms = 20\n\n\
             [api.tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
             [[api.tokens]]\nname = \"python-sdk\"\nrole = \"write\"\nsha256 = \"{sha256}\"\n",
            cert = certs.join(format!("node-{id}.pem")).display(),
            key = certs.join(format!("node-{id}.key")).display(),
        );
        let config = layout.write_config(dir, id, &extra);
        let log = dir.join(format!("node-{id}.log"));
        processes.children.insert(format!("node-{id}"), (spawn_serve(&config, &log), log));
    }
    layout.apis
}

/// What starting a Python agent needs: the interpreter, where its log
/// goes, and the nodes' API addresses.
struct Launcher<'a> {
    python: &'a Path,
    dir: &'a Path,
    apis: &'a [SocketAddr],
}

impl Launcher<'_> {
    /// Starts `sdk/python/examples/echo_agent.py` serving `task_type`, given
    /// the API addresses starting at `first` (so that agents start on
    /// different nodes, most of them not the leader, and must follow its
    /// hint).
    fn start(&self, processes: &mut Processes, name: &str, task_type: &str, first: usize, extra: &[&str]) {
        let script = repository().join("sdk/python/examples/echo_agent.py");
        let mut addresses: Vec<String> = self.apis.iter().map(ToString::to_string).collect();
        addresses.rotate_left(first % self.apis.len());
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(self.python)
            .arg(script)
            .args(&addresses)
            .args(["--type", task_type, "--token", TOKEN, "--ttl", AGENT_TTL_S, "--ca"])
            .arg(self.dir.join("certs/ca.pem"))
            .args(extra)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn a Python agent");
        processes.children.insert(name.to_string(), (child, log));
    }

    /// Runs `sdk/python/examples/submit_task.py` with `token` and `args`:
    /// its exit code and the JSON it printed.
    fn submit_from_python(&self, token: &str, args: &[&str]) -> (i32, serde_json::Value) {
        let script = repository().join("sdk/python/examples/submit_task.py");
        let output = Command::new(self.python)
            .arg(script)
            .args(self.apis.iter().map(ToString::to_string))
            .args(["--token", token, "--timeout", "60", "--ca"])
            .arg(self.dir.join("certs/ca.pem"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run submit_task.py");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
            panic!("submit_task.py printed no JSON ({error}): {stdout}{}", String::from_utf8_lossy(&output.stderr))
        });
        (output.status.code().unwrap_or(-1), json)
    }
}

/// Errors a client repeats when the call is safe to repeat (reads, waits,
/// submissions with an idempotency key): a failover or a loaded machine.
fn retryable(error: &Error) -> bool {
    matches!(error, Error::Unavailable(_) | Error::Overloaded { .. } | Error::OutcomeUnknown(_) | Error::Transport(_))
}

/// Waits until exactly `count` agents of `task_type` are registered.
async fn wait_for_agents(client: &Client, task_type: &str, count: usize, processes: &Processes) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client.list_agents(task_type).await {
            Ok(agents) if agents.len() == count => return,
            Ok(_) => {}
            Err(error) if retryable(&error) => {}
            Err(error) => panic!("listing agents failed: {error}"),
        }
        assert!(Instant::now() < deadline, "{count} agents of {task_type} never registered\n{}", processes.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client, once a node accepts connections (the nodes are starting).
async fn connect(config: ClientConfig, processes: &Processes) -> Client {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Client::connect(config.clone()).await {
            Ok(client) => return client,
            Err(error) => assert!(Instant::now() < deadline, "no node answers: {error}\n{}", processes.logs()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits with an idempotency key, so the client may retry it anywhere.
async fn submit(client: &Client, key: &str, request: SubmitTaskRequest) -> u64 {
    let request = SubmitTaskRequest { idempotency_key: key.as_bytes().to_vec().into(), ..request };
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client.submit_task(request.clone()).await {
            Ok(response) => return response.task_id,
            Err(error) if Instant::now() < deadline && retryable(&error) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("submitting {key} failed: {error}"),
        }
    }
}

async fn finished(client: &Client, task_id: u64, processes: &Processes) -> GetTaskResponse {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client.wait_task(task_id, Duration::from_secs(5)).await {
            Ok(task) if task.status() != TaskStatus::Open => return task,
            Ok(_) => {}
            Err(error) if retryable(&error) => {}
            Err(error) => panic!("waiting for task {task_id} failed: {error}"),
        }
        assert!(Instant::now() < deadline, "task {task_id} never finished\n{}", processes.logs());
    }
}

fn task(task_type: &str, payload: &[u8], redundancy: u32, attempts_max: u32) -> SubmitTaskRequest {
    SubmitTaskRequest {
        task_type: task_type.into(),
        payload: payload.to_vec().into(),
        redundancy,
        attempts_max,
        ..SubmitTaskRequest::default()
    }
}

fn distinct_agents(task: &GetTaskResponse) -> usize {
    task.copies.iter().map(|copy| copy.agent_id).collect::<BTreeSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agents_run_vote_fail_and_follow_the_leader_on_a_real_cluster() {
    // Proves the Python SDK's example agent, as real processes on a real 3-node cluster with a TLS API and a bearer token: each agent reaches the leader from the node it is pointed at first (the hints), the Python client submits and waits (and is refused with an unknown token), k=1 tasks come back upper-cased, a k=3 task run by three Python agents decides with the agreed output, a handler that raises yields failed copies (retried on other agents, then the task fails as the rules say, or succeeds on a later attempt), agents follow a new leader after the old one is SIGKILLed, and SIGTERM makes an agent leave at once and exit 0.
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Processes::default();
    let apis = start_nodes(dir.path(), &mut processes);
    let api_list: Vec<SocketAddr> = apis.values().copied().collect();
    let launcher = Launcher { python: &python, dir: dir.path(), apis: &api_list };
    for i in 0..3 {
        launcher.start(&mut processes, &format!("upper-{i}"), "upper", i, &[]);
    }
    for i in 0..2 {
        launcher.start(&mut processes, &format!("flaky-{i}"), "flaky", i + 1, &["--fail-first-attempt"]);
    }
    let endpoints: Vec<String> = api_list.iter().map(ToString::to_string).collect();
    let ca_pem = std::fs::read_to_string(dir.path().join("certs/ca.pem")).unwrap();
    let tls = Some(ClientTls { ca_pem, domain: None });
    let config = ClientConfig { token: Some(TOKEN.into()), tls, ..ClientConfig::new(endpoints) };
    let client = connect(config, &processes).await;
    wait_for_agents(&client, "upper", 3, &processes).await;
    wait_for_agents(&client, "flaky", 2, &processes).await;

    // (a) k=1 tasks complete with the handler's output.
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(submit(&client, &format!("single-{i}"), task("upper", format!("hello {i}").as_bytes(), 1, 0)).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        let done = finished(&client, id, &processes).await;
        assert_eq!(done.status(), TaskStatus::Succeeded, "{done:?}");
        assert_eq!(done.output.as_ref(), format!("HELLO {i}").as_bytes());
    }

    // The Python client: submits and waits, over TLS with the token; a
    // token the nodes do not know is refused.
    let (code, json) = launcher.submit_from_python(TOKEN, &["--payload", "from python", "--redundancy", "3"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        (json["status"].as_str(), json["output"].as_str()),
        (Some("TASK_STATUS_SUCCEEDED"), Some("FROM PYTHON"))
    );
    let (code, json) = launcher.submit_from_python("not-a-known-token", &["--payload", "refused"]);
    assert_eq!((code, json["error"].as_str()), (2, Some("UNAUTHENTICATED")), "{json}");

    // (b) k=3: three Python agents run a copy each and agree.
    let id = submit(&client, "vote", task("upper", b"agree on this", 3, 0)).await;
    let voted = finished(&client, id, &processes).await;
    assert_eq!(voted.status(), TaskStatus::Succeeded, "{voted:?}");
    assert_eq!(voted.output.as_ref(), b"AGREE ON THIS");
    assert_eq!(distinct_agents(&voted), 3, "three distinct agents: {voted:?}");
    assert!(voted.reports.len() >= 2, "a majority reported: {voted:?}");
    assert!(voted.reports.iter().all(|report| report.ok && report.data.as_ref() == b"AGREE ON THIS"), "{voted:?}");

    // (c) A handler that raises: every copy of a payload that is not UTF-8
    // fails with the Python exception, each on a different agent; when the
    // last attempt's report leaves no way to an output the task fails with
    // NoAgreement (a report decided it; see hyperraft-state's tasks module).
    let id = submit(&client, "not-utf8", task("upper", &[0xff, 0xfe, 0xfd], 1, 3)).await;
    let failed = finished(&client, id, &processes).await;
    assert_eq!(failed.status(), TaskStatus::Failed, "{failed:?}");
    assert_eq!(failed.failure(), TaskFailure::NoAgreement, "{failed:?}");
    assert_eq!(failed.attempts_used, 3, "{failed:?}");
    assert_eq!(failed.reports.len(), 3, "{failed:?}");
    assert_eq!(distinct_agents(&failed), 3, "each attempt on another agent: {failed:?}");
    for report in &failed.reports {
        assert!(!report.ok, "{failed:?}");
        let reason = String::from_utf8_lossy(&report.data);
        assert!(reason.starts_with("UnicodeDecodeError: "), "the Python exception is the reason: {reason}");
    }
    // A failed first attempt is retried on the other agent, which succeeds.
    let id = submit(&client, "flaky", task("flaky", b"retry me", 1, 3)).await;
    let retried = finished(&client, id, &processes).await;
    assert_eq!(retried.status(), TaskStatus::Succeeded, "{retried:?}");
    assert_eq!(retried.output.as_ref(), b"RETRY ME");
    assert_eq!(retried.attempts_used, 1, "{retried:?}");
    let outcomes: Vec<bool> = retried.reports.iter().map(|report| report.ok).collect();
    assert_eq!(outcomes, vec![false, true], "{retried:?}");
    assert!(String::from_utf8_lossy(&retried.reports[0].data).contains("fails on purpose"), "{retried:?}");

    // The leader dies: the agents reconnect to the new one (resuming their
    // ids, their leases outlive the failover) and keep serving.
    let before: BTreeSet<u64> = client.list_agents("upper").await.expect("list").iter().map(|a| a.agent_id).collect();
    let leader = client.status().await.expect("status").leader_id.expect("a leader");
    processes.kill(&format!("node-{leader}"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        // Each agent registers again on the new leader, which records itself in the agent's entry.
        let moved = match client.list_agents("upper").await {
            Ok(agents) => agents.len() == 3 && agents.iter().all(|agent| agent.node_id != leader),
            Err(error) if retryable(&error) => false,
            Err(error) => panic!("listing agents failed: {error}"),
        };
        if moved {
            break;
        }
        assert!(Instant::now() < deadline, "the agents never moved off node {leader}\n{}", processes.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after: BTreeSet<u64> = client.list_agents("upper").await.expect("list").iter().map(|a| a.agent_id).collect();
    assert_eq!(after, before, "the agents resumed their ids on the new leader");
    let id = submit(&client, "after-failover", task("upper", b"new leader", 3, 0)).await;
    let done = finished(&client, id, &processes).await;
    assert_eq!(done.status(), TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.output.as_ref(), b"NEW LEADER");
    assert!(done.copies.iter().all(|copy| before.contains(&copy.agent_id)), "{done:?}");

    // SIGTERM: each agent leaves (its key is removed at once, long before
    // its lease could expire) and exits 0.
    for i in 0..3 {
        processes.terminate(&format!("upper-{i}"));
    }
    wait_for_agents(&client, "upper", 0, &processes).await;
    for i in 0..2 {
        processes.terminate(&format!("flaky-{i}"));
    }
}

#[test]
fn the_committed_python_stubs_match_the_proto() {
    // Proves sdk/python's committed gRPC stubs are what sdk/python/generate.sh makes from proto/agent.proto and proto/bus.proto today.
    let Some(python) = python() else { return };
    let root = repository();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(root.join("sdk/python/generate.sh"))
        .arg(out.path())
        .env("PYTHON", &python)
        .status()
        .expect("run generate.sh");
    assert!(status.success(), "generate.sh failed");
    for file in ["agent_pb2.py", "agent_pb2_grpc.py", "bus_pb2.py", "bus_pb2_grpc.py"] {
        let generated = std::fs::read(out.path().join("hyperraft_agent/_proto").join(file)).expect("generated");
        let committed = std::fs::read(root.join("sdk/python/hyperraft_agent/_proto").join(file)).expect("committed");
        assert!(
            generated == committed,
            "sdk/python/hyperraft_agent/_proto/{file} differs from what proto/agent.proto and proto/bus.proto generate; \
             run `PYTHON={} sdk/python/generate.sh` and commit the result",
            python.display()
        );
    }
}

#[test]
fn the_python_sdk_unit_tests_pass() {
    // Proves the Python SDK's own unit tests (sdk/python/tests: handler outcomes, truncation, input checks, and the session loop against an in-process gRPC server: hints, resume, re-sent results, cancels, leaving) pass with the installed interpreter.
    let Some(python) = python() else { return };
    let output = Command::new(&python)
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(repository().join("sdk/python"))
        .output()
        .expect("run python -m unittest");
    assert!(
        output.status.success(),
        "the Python unit tests failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
