//! Agents against a real 3-node cluster: sessions, dispatch, voting,
//! reassignment after an agent dies, exactly-once results across a leader
//! failover, and bad input.

use std::future::Future;
use std::time::Duration;

use hyperraft_api::ApiConfig;
use hyperraft_client::agent::{run, AgentHandler, AgentOptions, AgentState, Assignment, TaskFailure, TaskStatus};
use hyperraft_client::proto::agents_client::AgentsClient;
use hyperraft_client::proto::{self, agent_to_node, node_to_agent, SubmitTaskRequest};
use hyperraft_client::{Client, Error};
use hyperraft_node::AgentsConfig;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::harness::{TestCluster, PATIENCE};

/// Short timings so that expiry and reassignment take about a second.
fn api() -> ApiConfig {
    let agents = AgentsConfig {
        default_ttl_ms: 1_000,
        reassign_backoff_ms: 10,
        dispatch_interval_ms: 20,
        ..AgentsConfig::default()
    };
    ApiConfig { agents, ..ApiConfig::default() }
}

/// Answers every assignment with the same output.
struct Fixed(&'static [u8]);

impl AgentHandler for Fixed {
    fn handle(&self, _assignment: Assignment) -> impl Future<Output = Result<Vec<u8>, String>> + Send {
        let output = self.0.to_vec();
        async move { Ok(output) }
    }
}

/// Never answers: a copy it takes runs until it is released.
struct Stuck;

impl AgentHandler for Stuck {
    fn handle(&self, _assignment: Assignment) -> impl Future<Output = Result<Vec<u8>, String>> + Send {
        std::future::pending()
    }
}

/// A running agent; dropping `stop` ends it.
struct Agent {
    stop: oneshot::Sender<()>,
    state: watch::Receiver<AgentState>,
    task: JoinHandle<Result<(), Error>>,
}

fn start_agent(client: &Client, agent_type: &str, handler: impl AgentHandler) -> Agent {
    start_agent_with_ttl(client, agent_type, handler, Duration::from_secs(1))
}

fn start_agent_with_ttl(client: &Client, agent_type: &str, handler: impl AgentHandler, ttl: Duration) -> Agent {
    start_agent_with_options(client, AgentOptions { ttl, ..AgentOptions::new(agent_type, 4) }, handler)
}

fn start_agent_with_options(client: &Client, options: AgentOptions, handler: impl AgentHandler) -> Agent {
    let client = client.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let (state, receiver) = watch::channel(AgentState::default());
    let task = tokio::spawn(async move {
        run(&client, options, handler, state, async {
            let _ = stopped.await;
        })
        .await
    });
    Agent { stop, state: receiver, task }
}

impl Agent {
    async fn registered(&mut self) -> u64 {
        let state = tokio::time::timeout(PATIENCE, self.state.wait_for(|state| state.agent_id != 0));
        state.await.expect("registers in time").expect("agent runs").agent_id
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("agent task").expect("agent ends cleanly");
    }
}

fn task(task_type: &str, redundancy: u32) -> SubmitTaskRequest {
    SubmitTaskRequest {
        task_type: task_type.into(),
        payload: b"input".to_vec().into(),
        redundancy,
        ..SubmitTaskRequest::default()
    }
}

async fn wait_finished(client: &Client, task_id: u64) -> proto::GetTaskResponse {
    let task = client.wait_task(task_id, PATIENCE).await.expect("wait");
    assert_ne!(task.status(), TaskStatus::Open, "task {task_id} still open after {PATIENCE:?}: {task:?}");
    task
}

async fn voting(client: &Client, task_type: &str, outputs: [&'static [u8]; 3]) -> proto::GetTaskResponse {
    let mut agents = Vec::new();
    for output in outputs {
        let mut agent = start_agent(client, task_type, Fixed(output));
        agent.registered().await;
        agents.push(agent);
    }
    let submitted = client.submit_task(task(task_type, 3)).await.expect("submit");
    let finished = wait_finished(client, submitted.task_id).await;
    for agent in agents {
        agent.stop().await;
    }
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_copies_vote_agree_outvote_a_minority_or_fail_with_every_output() {
    // Proves k=3 tasks run on three distinct agents and decide by majority: all agreeing succeed, a disagreeing minority is outvoted, and three different outputs fail as "no agreement" with all outputs attached.
    let cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;

    let agreed = voting(&client, "agree", [b"yes", b"yes", b"yes"]).await;
    assert_eq!(agreed.status(), TaskStatus::Succeeded);
    assert_eq!(agreed.output.as_ref(), b"yes");
    let mut agents: Vec<u64> = agreed.copies.iter().map(|copy| copy.agent_id).collect();
    agents.dedup();
    assert_eq!(agents.len(), 3, "three distinct agents: {agreed:?}");

    let outvoted = voting(&client, "minority", [b"yes", b"no", b"yes"]).await;
    assert_eq!(outvoted.status(), TaskStatus::Succeeded);
    assert_eq!(outvoted.output.as_ref(), b"yes");

    let split = voting(&client, "split", [b"a", b"b", b"c"]).await;
    assert_eq!(split.status(), TaskStatus::Failed);
    assert_eq!(split.failure(), TaskFailure::NoAgreement);
    let mut outputs: Vec<&[u8]> = split.outputs.iter().map(|output| output.as_ref()).collect();
    outputs.sort();
    assert_eq!(outputs, vec![&b"a"[..], b"b", b"c"]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_agents_key_expires_and_its_task_runs_elsewhere() {
    // Proves registration puts a leased key, an agent that dies loses it when its lease expires, and its running copy is released and reassigned to a live agent, which completes the task.
    let cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let mut stuck = start_agent(&client, "work", Stuck);
    let stuck_id = stuck.registered().await;
    let listed = client.list_agents("work").await.expect("list");
    assert_eq!(listed.iter().map(|agent| agent.agent_id).collect::<Vec<_>>(), vec![stuck_id]);

    let task_id = client.submit_task(task("work", 1)).await.expect("submit").task_id;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while client.get_task(task_id).await.expect("get").copies.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never assigned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The agent dies without a word: its process stops, its lease runs out.
    stuck.task.abort();
    drop(stuck.stop);
    let mut worker = start_agent(&client, "work", Fixed(b"done"));
    let worker_id = worker.registered().await;

    let finished = wait_finished(&client, task_id).await;
    assert_eq!(finished.status(), TaskStatus::Succeeded);
    assert_eq!(finished.output.as_ref(), b"done");
    let states: Vec<(u64, &str)> = finished.copies.iter().map(|copy| (copy.agent_id, copy.state.as_str())).collect();
    assert_eq!(states, vec![(stuck_id, "released"), (worker_id, "reported")]);
    assert_eq!(finished.attempts_used, 1);
    let listed = client.list_agents("work").await.expect("list");
    assert_eq!(listed.iter().map(|agent| agent.agent_id).collect::<Vec<_>>(), vec![worker_id]);
    worker.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_commits_once_across_a_leader_failover() {
    // Proves an agent follows a leader failover by resuming its id on the new leader, and its task's result is committed exactly once.
    let mut cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    // The lease outlives an election and the new leader's expiry grace.
    let mut agent = start_agent_with_ttl(&client, "once", Fixed(b"one"), Duration::from_secs(10));
    let agent_id = agent.registered().await;
    let first = client.submit_task(task("once", 1)).await.expect("submit").task_id;
    assert_eq!(wait_finished(&client, first).await.status(), TaskStatus::Succeeded);

    let old_leader = cluster.leader().await;
    cluster.stop(old_leader).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while agent.state.borrow().registrations < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the agent never reconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(agent.state.borrow().agent_id, agent_id, "the agent resumed its id");
    let request = SubmitTaskRequest { idempotency_key: b"after-failover".to_vec().into(), ..task("once", 1) };
    let second = client.submit_task(request.clone()).await.expect("submit").task_id;
    let finished = wait_finished(&client, second).await;
    assert_eq!(finished.status(), TaskStatus::Succeeded);
    assert_eq!(finished.reports.len(), 1, "one committed result: {finished:?}");
    let again = client.submit_task(request).await.expect("resubmit");
    assert_eq!((again.task_id, again.created), (second, false));
    let first = client.get_task(first).await.expect("get");
    assert_eq!(first.reports.len(), 1);
    agent.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    // Proves bad submissions, unknown tasks, sessions without a register and a result from an agent that holds no copy are refused with clear errors, and the task is left as it was.
    let cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    for (request, field) in [
        (task("", 1), "task_type"),
        (task("x", 9), "redundancy"),
        (SubmitTaskRequest { agreement_percent: 101, ..task("x", 1) }, "agreement_percent"),
        (SubmitTaskRequest { attempts_max: 17, ..task("x", 1) }, "attempts_max"),
    ] {
        match client.submit_task(request).await {
            Err(Error::InvalidArgument { field: named, message }) => {
                assert!(named.contains(field) || message.contains(field), "{named}: {message}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(matches!(client.get_task(999).await, Err(Error::NotFound(_))));
    assert!(matches!(client.wait_task(999, Duration::from_millis(10)).await, Err(Error::NotFound(_))));

    // A task nobody runs, and an agent with no copy of it that reports anyway.
    let task_id = client.submit_task(task("nobody", 1)).await.expect("submit").task_id;
    let before = client.get_task(task_id).await.expect("get");
    let leader = cluster.leader().await;
    let mut agents = AgentsClient::connect(format!("http://{}", cluster.addresses[&leader])).await.expect("connect");

    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    sender
        .send(proto::AgentToNode { message: Some(agent_to_node::Message::Heartbeat(proto::Heartbeat {})) })
        .await
        .unwrap();
    let refused = agents.session(ReceiverStream::new(receiver)).await.expect_err("no register");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let register = proto::Register { agent_type: "other".into(), max_concurrent: 1, ..Default::default() };
    sender.send(proto::AgentToNode { message: Some(agent_to_node::Message::Register(register)) }).await.unwrap();
    let mut session = agents.session(ReceiverStream::new(receiver)).await.expect("session").into_inner();
    let registered = session.message().await.expect("message").expect("registered");
    assert!(matches!(registered.message, Some(node_to_agent::Message::Registered(_))));
    let result =
        proto::TaskResult { task_id, outcome: Some(proto::task_result::Outcome::Output(b"forged".to_vec().into())) };
    sender.send(proto::AgentToNode { message: Some(agent_to_node::Message::Result(result)) }).await.unwrap();
    let ack = loop {
        match session.message().await.expect("message").expect("ack").message {
            Some(node_to_agent::Message::ResultAck(ack)) => break ack,
            _ => continue,
        }
    };
    assert!(!ack.accepted);
    assert!(ack.error.contains("holds no copy"), "{}", ack.error);
    assert_eq!(client.get_task(task_id).await.expect("get"), before);
    drop(sender);
    cluster.shutdown().await;
}

/// A session opened by hand on the leader, for tests that need an agent
/// that misbehaves in a way the SDK's agent never does.
struct RawSession {
    sender: tokio::sync::mpsc::Sender<proto::AgentToNode>,
    inbound: tonic::Streaming<proto::NodeToAgent>,
    agent_id: u64,
}

/// Opens a session on the leader; the result is the call's own outcome.
async fn try_raw_session(cluster: &TestCluster, register: proto::Register) -> Result<RawSession, tonic::Status> {
    try_raw_session_with_window(cluster, register, None).await
}

/// [`try_raw_session`] over a connection that grants the node `window`
/// bytes of HTTP/2 flow control (stream and connection) instead of the
/// client's megabytes: what the test does not read then stays in the
/// node's session queue as soon as that much is unread.
async fn try_raw_session_with_window(
    cluster: &TestCluster,
    register: proto::Register,
    window: Option<u32>,
) -> Result<RawSession, tonic::Status> {
    let leader = cluster.leader().await;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addresses[&leader]))
        .expect("a valid address")
        .initial_stream_window_size(window)
        .initial_connection_window_size(window);
    let mut agents = AgentsClient::new(endpoint.connect().await.expect("connect"));
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    sender.send(proto::AgentToNode { message: Some(agent_to_node::Message::Register(register)) }).await.unwrap();
    let mut inbound = agents.session(ReceiverStream::new(receiver)).await?.into_inner();
    let agent_id = match inbound.message().await?.and_then(|message| message.message) {
        Some(node_to_agent::Message::Registered(registered)) => registered.agent_id,
        other => panic!("expected registered, got {other:?}"),
    };
    Ok(RawSession { sender, inbound, agent_id })
}

/// Opens a session on the leader, retrying a retry-safe UNAVAILABLE (the
/// leader could not commit the registration in time on a loaded machine).
async fn raw_session(cluster: &TestCluster, register: proto::Register) -> RawSession {
    raw_session_with_window(cluster, register, None).await
}

/// [`raw_session`] with [`try_raw_session_with_window`]'s flow control.
async fn raw_session_with_window(cluster: &TestCluster, register: proto::Register, window: Option<u32>) -> RawSession {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match try_raw_session_with_window(cluster, register.clone(), window).await {
            Ok(session) => return session,
            Err(status) if status.code() == tonic::Code::Unavailable && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("session refused: {status}"),
        }
    }
}

fn register(agent_type: &str, max_concurrent: u32, ttl_ms: u64) -> proto::Register {
    proto::Register { agent_type: agent_type.into(), max_concurrent, ttl_ms, ..Default::default() }
}

impl RawSession {
    async fn send(&self, message: agent_to_node::Message) {
        self.sender.send(proto::AgentToNode { message: Some(message) }).await.expect("the session is open");
    }

    /// The next message from the node; panics if the stream ends first.
    async fn next(&mut self) -> node_to_agent::Message {
        let next = tokio::time::timeout(PATIENCE, self.inbound.message()).await.expect("a message in time");
        next.expect("the stream is healthy").and_then(|message| message.message).expect("a message")
    }
}

/// Forwards every bus event of the session to the test.
struct BusRecorder(tokio::sync::mpsc::UnboundedSender<hyperraft_client::agent::BusEvent>);

impl AgentHandler for BusRecorder {
    async fn handle(&self, _assignment: Assignment) -> Result<Vec<u8>, String> {
        Err("this agent runs no tasks".to_string())
    }

    fn on_bus(&self, event: hyperraft_client::agent::BusEvent) -> impl Future<Output = ()> + Send {
        let _ = self.0.send(event);
        async {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_beyond_sessions_max_is_refused_until_one_ends() {
    // Proves the leader refuses a session beyond `sessions_max` with RESOURCE_EXHAUSTED and a message naming the bound, and takes one again once a session ends.
    let agents = AgentsConfig { sessions_max: 2, ..api().agents };
    let cluster = TestCluster::start_with_api(3, ApiConfig { agents, ..api() }).await;
    let first = raw_session(&cluster, register("capped", 1, 30_000)).await;
    let _second = raw_session(&cluster, register("capped", 1, 30_000)).await;
    let refused = try_raw_session(&cluster, register("capped", 1, 30_000)).await.err().expect("a third is refused");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("2 agent sessions are open"), "{}", refused.message());

    // The first agent leaves: its place is given back once its session ends.
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let third = loop {
        match try_raw_session(&cluster, register("capped", 1, 30_000)).await {
            Ok(session) => break session,
            Err(status) => {
                let retry_safe = matches!(status.code(), tonic::Code::ResourceExhausted | tonic::Code::Unavailable);
                assert!(retry_safe && tokio::time::Instant::now() < deadline, "{status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_ne!(third.agent_id, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_past_its_run_timeout_runs_elsewhere_and_the_late_result_is_refused() {
    // Proves a copy whose agent sends no result within `run_timeout_ms` is released (its agent is told), the task is reassigned to another agent and succeeds there, and the slow agent's late result is refused and changes nothing.
    let agents = AgentsConfig { run_timeout_ms: 1_000, ..api().agents };
    let cluster = TestCluster::start_with_api(3, ApiConfig { agents, ..api() }).await;
    let client = cluster.client(&[1, 2, 3]).await;
    // A long lease: only the run timeout can take the copy away.
    let mut slow = raw_session(&cluster, register("timed", 1, 30_000)).await;
    let task_id = client.submit_task(task("timed", 1)).await.expect("submit").task_id;
    let assigned = loop {
        match slow.next().await {
            node_to_agent::Message::Assignment(assignment) => break assignment,
            _ => continue,
        }
    };
    assert_eq!((assigned.task_id, assigned.run_timeout_ms), (task_id, 1_000));
    let mut worker = start_agent(&client, "timed", Fixed(b"in time"));
    let worker_id = worker.registered().await;

    let cancel = loop {
        match slow.next().await {
            node_to_agent::Message::Cancel(cancel) => break cancel,
            _ => continue,
        }
    };
    assert_eq!(cancel.task_id, task_id);
    assert!(cancel.reason.contains("run timeout"), "{}", cancel.reason);
    let finished = wait_finished(&client, task_id).await;
    assert_eq!(finished.status(), TaskStatus::Succeeded);
    assert_eq!(finished.output.as_ref(), b"in time");
    let states: Vec<(u64, &str)> = finished.copies.iter().map(|copy| (copy.agent_id, copy.state.as_str())).collect();
    assert_eq!(states, vec![(slow.agent_id, "released"), (worker_id, "reported")]);

    let late =
        proto::TaskResult { task_id, outcome: Some(proto::task_result::Outcome::Output(b"late".to_vec().into())) };
    slow.send(agent_to_node::Message::Result(late)).await;
    let ack = loop {
        match slow.next().await {
            node_to_agent::Message::ResultAck(ack) => break ack,
            _ => continue,
        }
    };
    assert!(!ack.accepted, "{ack:?}");
    assert!(!ack.error.is_empty());
    assert_eq!(client.get_task(task_id).await.expect("get"), finished, "the late result changed nothing");
    worker.stop().await;
    drop(slow);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_stops_reading_is_closed_and_its_copies_run_elsewhere() {
    // Proves an agent that stops reading its stream while it keeps writing, so that its queue of `session_queue_max` messages fills with answers, is disconnected with a Closing message saying why, and every copy it held is released and runs on another agent.
    let agents = AgentsConfig { session_queue_max: 4, ..api().agents };
    let cluster = TestCluster::start_with_api(3, ApiConfig { agents, ..api() }).await;
    let client = cluster.client(&[1, 2, 3]).await;
    // Each payload is larger than the 64 KiB of HTTP/2 window the slow
    // agent grants, so the first assignment it is sent already stops the
    // node's stream: what is queued after it stays queued. (Idempotency
    // keys let the SDK retry a submission across an election on a loaded
    // machine.)
    let mut task_ids = Vec::new();
    for number in 0..2 {
        let request = SubmitTaskRequest {
            idempotency_key: format!("flood-{number}").into_bytes().into(),
            payload: vec![7; 256 << 10].into(),
            ..task("flood", 1)
        };
        task_ids.push(client.submit_task(request).await.expect("submit").task_id);
    }
    // A long lease: only the disconnection can take its copies away.
    let mut slow = raw_session_with_window(&cluster, register("flood", 64, 30_000), Some(65_535)).await;
    // Results without an outcome, each refused at once with a ResultAck
    // that the agent does not read: the fifth answer finds the queue full.
    // (Sixteen fit in the client's channel, so sending never waits.)
    for _ in 0..16 {
        let pointless = proto::TaskResult { task_id: task_ids[0], outcome: None };
        slow.send(agent_to_node::Message::Result(pointless)).await;
    }
    // Now read: what was buffered, then the reason the node closed the session.
    let closing = loop {
        let next = tokio::time::timeout(PATIENCE, slow.inbound.message()).await.expect("a message in time");
        match next.expect("the stream is healthy").and_then(|message| message.message) {
            Some(node_to_agent::Message::Closing(closing)) => break closing,
            Some(_) => continue,
            None => panic!("the stream ended without a Closing message"),
        }
    };
    assert!(closing.reason.contains("slow consumer"), "{}", closing.reason);

    let mut worker = start_agent(&client, "flood", Fixed(b"done"));
    let worker_id = worker.registered().await;
    for task_id in task_ids {
        let finished = wait_finished(&client, task_id).await;
        assert_eq!(finished.status(), TaskStatus::Succeeded, "{finished:?}");
        let reported: Vec<u64> =
            finished.copies.iter().filter(|copy| copy.state == "reported").map(|copy| copy.agent_id).collect();
        assert_eq!(reported, vec![worker_id], "{finished:?}");
    }
    worker.stop().await;
    drop(slow);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_allowed_more_copies_than_its_queue_holds_is_never_closed_and_runs_every_task() {
    // Proves an agent whose max_concurrent (64) is above session_queue_max (8), registering while 16 tasks wait (twice its queue) so that one dispatch round could assign them all, is given only what its queue holds at once (its registration lists 8 / 4 = 2), so it is never closed as a slow consumer (one session, one registration) and runs every task.
    let agents = AgentsConfig { session_queue_max: 8, ..api().agents };
    let cluster = TestCluster::start_with_api(3, ApiConfig { agents, ..api() }).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let mut task_ids = Vec::new();
    for number in 0..16 {
        let request =
            SubmitTaskRequest { idempotency_key: format!("burst-{number}").into_bytes().into(), ..task("burst", 1) };
        task_ids.push(client.submit_task(request).await.expect("submit").task_id);
    }
    let options = AgentOptions { ttl: Duration::from_secs(10), ..AgentOptions::new("burst", 64) };
    let mut agent = start_agent_with_options(&client, options, Fixed(b"done"));
    let agent_id = agent.registered().await;
    let listed = client.list_agents("burst").await.expect("list");
    let effective: Vec<(u64, u32)> = listed.iter().map(|info| (info.agent_id, info.max_concurrent)).collect();
    assert_eq!(effective, vec![(agent_id, 2)], "the registration shows what the node gives it at once");
    for task_id in task_ids {
        let finished = wait_finished(&client, task_id).await;
        assert_eq!(finished.status(), TaskStatus::Succeeded, "{finished:?}");
    }
    // The last acknowledgement may reach the agent just after its task is seen finished.
    let acknowledged = agent.state.wait_for(|state| state.results_accepted >= 16);
    let state =
        *tokio::time::timeout(PATIENCE, acknowledged).await.expect("every result acknowledged").expect("agent runs");
    assert_eq!((state.sessions, state.registrations), (1, 1), "the agent was never disconnected: {state:?}");
    assert_eq!(state.results_accepted, 16, "{state:?}");
    agent.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_agent_listed_and_without_them_it_disappears_after_its_ttl() {
    // Proves an agent that heartbeats stays registered past its lease TTL, and once it stops heartbeating (its stream still open) it disappears from ListAgents when the TTL runs out; a heartbeat after that is answered by closing the session.
    let cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let mut agent = raw_session(&cluster, register("beating", 1, 2_000)).await;
    let listed = |agents: Vec<proto::AgentInfo>| agents.iter().map(|agent| agent.agent_id).collect::<Vec<_>>();
    assert_eq!(listed(client.list_agents("beating").await.expect("list")), vec![agent.agent_id]);
    // Three TTLs of heartbeats, far more often than the node asks, so
    // that a loaded machine cannot stretch one gap past the TTL.
    for _ in 0..24 {
        agent.send(agent_to_node::Message::Heartbeat(proto::Heartbeat {})).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(listed(client.list_agents("beating").await.expect("list")), vec![agent.agent_id]);

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !client.list_agents("beating").await.expect("list").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the agent is still listed after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.send(agent_to_node::Message::Heartbeat(proto::Heartbeat {})).await;
    let closing = loop {
        match agent.next().await {
            node_to_agent::Message::Closing(closing) => break closing,
            _ => continue,
        }
    };
    assert!(closing.reason.contains("lease expired"), "{}", closing.reason);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_session_publishes_and_receives_bus_messages_in_order() {
    // Proves an agent publishes through its session (ephemeral and durable topics, answered in order with offsets) and receives, through the same session, an SDK publisher's messages and its own durable ones, each publisher's in publish order.
    use hyperraft_client::agent::{agent_bus, run_with_bus, AgentSubscription, BusEvent};

    let cluster = TestCluster::start_with_api(3, api()).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = client.bus(Some(&cluster.addresses[&cluster.leader().await])).expect("endpoint");
    leader.configure_durable("agent-log", 0, 0).await.expect("durable");
    let mut chat = leader.subscribe("chat", 0, Duration::ZERO).await.expect("subscribed");
    let subscriptions = vec![
        AgentSubscription { topic: "chat".into(), from_offset: None, batch_max: 0, window: Duration::ZERO },
        AgentSubscription { topic: "agent-log".into(), from_offset: Some(0), batch_max: 7, window: Duration::ZERO },
    ];
    let options = AgentOptions {
        ttl: Duration::from_secs(10),
        bus_subscriptions: subscriptions,
        ..AgentOptions::new("talker", 1)
    };
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let (bus, link) = agent_bus(16);
    let (state, state_receiver) = watch::channel(AgentState::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = {
        let client = client.clone();
        tokio::spawn(async move {
            run_with_bus(&client, options, BusRecorder(events), state, link, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    // The SDK subscriber and the agent both subscribe to "chat".
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let topics = leader.topics("chat").await.expect("topics");
        if topics.first().is_some_and(|topic| topic.subscribers == 2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the agent never subscribed: {topics:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let agent_id = state_receiver.borrow().agent_id;
    for batch in 0..10u32 {
        let payloads = (batch * 3..batch * 3 + 3).map(|n| bytes::Bytes::from(n.to_le_bytes().to_vec())).collect();
        bus.publish("agent-log", payloads).await.expect("queued");
        bus.publish("chat", vec![bytes::Bytes::from(batch.to_le_bytes().to_vec())]).await.expect("queued");
    }
    let mut sdk = leader.publisher("sdk");
    sdk.publish("chat", vec![bytes::Bytes::from_static(b"from-sdk")]).await.expect("queued");
    sdk.finish().await.expect("published");

    // The SDK subscriber sees the agent's chat messages in order, under the agent's publisher id.
    let mut from_agent = Vec::new();
    while from_agent.len() < 10 {
        let response = tokio::time::timeout(PATIENCE, chat.next()).await.unwrap().unwrap().unwrap();
        for run in response.runs.iter().filter(|run| run.publisher == format!("agent-{agent_id}")) {
            from_agent.extend(run.payloads.iter().map(|p| u32::from_le_bytes(p[..4].try_into().unwrap())));
        }
    }
    assert_eq!(from_agent, (0..10).collect::<Vec<_>>());

    // The agent sees its publishes answered in order, its durable messages in offset order, and the SDK's chat message.
    let (mut published, mut durable, mut chat_seen) = (Vec::new(), Vec::new(), Vec::new());
    let me = format!("agent-{agent_id}");
    let chat_done = |seen: &Vec<(String, bytes::Bytes)>| {
        seen.iter().any(|(publisher, _)| publisher == "sdk")
            && seen.iter().filter(|(publisher, _)| *publisher == me).count() >= 10
    };
    while published.len() < 20 || durable.len() < 30 || !chat_done(&chat_seen) {
        let event = tokio::time::timeout(PATIENCE, received.recv()).await.expect("an event").expect("open");
        match event {
            BusEvent::Published(answer) => {
                assert!(answer.error.is_empty(), "{answer:?}");
                published.push((answer.topic, answer.durable, answer.first_offset));
            }
            BusEvent::Delivery(delivery) if delivery.durable => {
                for run in delivery.runs {
                    for (index, payload) in run.payloads.iter().enumerate() {
                        let number = u32::from_le_bytes(payload[..4].try_into().unwrap());
                        durable.push((run.first_offset + index as u64, run.first_sequence + index as u64, number));
                    }
                }
            }
            BusEvent::Delivery(delivery) => {
                for run in delivery.runs {
                    chat_seen.extend(run.payloads.iter().map(|payload| (run.publisher.clone(), payload.clone())));
                }
            }
            BusEvent::Ended(ended) => panic!("a subscription ended: {ended:?}"),
        }
    }
    let expected_published: Vec<(String, bool, u64)> = (0..10u64)
        .flat_map(|batch| [("agent-log".to_string(), true, batch * 3), ("chat".to_string(), false, 0)])
        .collect();
    assert_eq!(published, expected_published);
    // One publisher per session numbers its messages across topics, so its durable sequences increase with gaps.
    let offsets_and_numbers: Vec<(u64, u32)> = durable.iter().map(|(offset, _, number)| (*offset, *number)).collect();
    assert_eq!(offsets_and_numbers, (0..30u64).map(|offset| (offset, offset as u32)).collect::<Vec<_>>());
    assert!(durable.windows(2).all(|pair| pair[0].1 < pair[1].1), "sequences increase: {durable:?}");
    let own: Vec<u32> = chat_seen
        .iter()
        .filter(|(publisher, _)| *publisher == format!("agent-{agent_id}"))
        .map(|(_, payload)| u32::from_le_bytes(payload[..4].try_into().unwrap()))
        .collect();
    assert_eq!(own, (0..10).collect::<Vec<_>>(), "the agent also receives its own chat messages, in order");

    drop(stop);
    agent.await.expect("agent task").expect("the agent stops cleanly");
    drop(client);
    cluster.shutdown().await;
}
