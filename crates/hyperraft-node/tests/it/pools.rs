//! Agent process pools with real child processes on a real node.

use std::path::Path;
use std::time::Duration;

use hyperraft_node::{AgentsSection, PoolConfig, PoolManager, PoolStats};
use hyperraft_wire::{AssignTaskView, SubmitTaskView, TaskBatchWriter};
use tokio::time::Instant;

use crate::harness::{fast_raft, Cluster, PATIENCE};

/// Waits until the only pool's stats satisfy `done`; answers them.
async fn until(manager: &PoolManager, what: &str, done: impl Fn(&PoolStats) -> bool) -> PoolStats {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = manager.stats().remove(0);
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {PATIENCE:?}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A pool whose processes write `<pid>` files holding their environment, then sleep.
fn pid_file_pool(dir: &Path, min: usize, max: usize) -> PoolConfig {
    let script = format!(r#"echo "$HYPERRAFT_AGENT_TYPE $HYPERRAFT_ENDPOINTS" > {}/$$; exec sleep 30"#, dir.display());
    PoolConfig { args: vec!["-c".into(), script], ..PoolConfig::new("work", "sh", min, max) }
}

fn pids(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().parse().unwrap()).collect()
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; a reaped child has none.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

async fn submit_tasks(cluster: &Cluster, count: usize) {
    let mut frame = Vec::new();
    let mut writer = TaskBatchWriter::new(&mut frame);
    for number in 0..count {
        let key = format!("task-{number}");
        writer
            .submit(&SubmitTaskView {
                idempotency_key: key.as_bytes(),
                task_type: b"work",
                payload: b"{}",
                criticality: 0,
                redundancy: 1,
                threshold_percent: 0,
                deadline_ns: 0,
                attempts_max: 3,
            })
            .unwrap();
    }
    writer.finish();
    cluster.write(&frame).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_prewarm_min_processes_with_their_environment_and_kill_them_at_shutdown() {
    // Proves a pool starts `min` processes at once, each with HYPERRAFT_AGENT_TYPE and HYPERRAFT_ENDPOINTS set, that a process killed from outside is replaced, and that shutdown kills every process.
    let mut cluster = Cluster::new(1, fast_raft());
    cluster.start_all().await;
    cluster.leader().await;
    let files = tempfile::tempdir().unwrap();
    let agents = AgentsSection { pools: vec![pid_file_pool(files.path(), 3, 3)], ..AgentsSection::default() };
    let manager = PoolManager::start(cluster.node(1), &agents, "127.0.0.1:7101").unwrap();
    until(&manager, "pre-warm", |stats| stats.running == 3).await;
    let deadline = Instant::now() + PATIENCE;
    while pids(files.path()).len() < 3 {
        assert!(Instant::now() < deadline, "the processes did not write their files");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for pid in pids(files.path()) {
        let text = std::fs::read_to_string(files.path().join(pid.to_string())).unwrap();
        assert_eq!(text.trim(), "work 127.0.0.1:7101");
    }
    let victim = pids(files.path())[0];
    let killed = std::process::Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap();
    assert!(killed.success());
    let stats = until(&manager, "a restart", |stats| stats.spawned == 4 && stats.running == 3).await;
    assert_eq!(stats.crashes, 1);
    let deadline = Instant::now() + PATIENCE;
    while pids(files.path()).len() < 4 {
        assert!(Instant::now() < deadline, "the replacement did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    manager.shutdown().await;
    for pid in pids(files.path()) {
        assert!(!alive(pid), "process {pid} outlived the pool");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_agent_is_restarted_with_a_doubling_capped_backoff() {
    // Proves a process that keeps exiting is restarted again and again, and that the backoff before each restart doubles from its initial value up to its cap.
    let mut cluster = Cluster::new(1, fast_raft());
    cluster.start_all().await;
    let pool = PoolConfig {
        args: vec!["-c".into(), "exit 3".into()],
        restart_backoff_initial_ms: 5,
        restart_backoff_max_ms: 40,
        ..PoolConfig::new("crashy", "sh", 1, 1)
    };
    let manager = PoolManager::start(
        cluster.node(1),
        &AgentsSection { pools: vec![pool], ..AgentsSection::default() },
        "127.0.0.1:1",
    )
    .unwrap();
    let first = until(&manager, "a first crash", |stats| stats.crashes >= 1).await;
    assert!(first.backoff_ms >= 5);
    let later = until(&manager, "five restarts", |stats| stats.crashes >= 5 && stats.spawned >= 5).await;
    assert_eq!(later.backoff_ms, 40, "the backoff grew to its cap: {later:?}");
    manager.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_scales_up_in_waves_under_a_backlog_and_back_to_min_when_idle() {
    // Proves that pending tasks of a pool's type make the leader's pool grow to max in several waves of at most wave_size, and that once no task is pending for idle_stop_ms it stops the processes above min.
    let mut cluster = Cluster::new(1, fast_raft());
    cluster.start_all().await;
    cluster.leader().await;
    let files = tempfile::tempdir().unwrap();
    let pool = PoolConfig { wave_size: 2, wave_pause_ms: 100, idle_stop_ms: 300, ..pid_file_pool(files.path(), 1, 6) };
    let manager = PoolManager::start(
        cluster.node(1),
        &AgentsSection { pools: vec![pool], ..AgentsSection::default() },
        "127.0.0.1:1",
    )
    .unwrap();
    until(&manager, "pre-warm", |stats| stats.running == 1).await;
    submit_tasks(&cluster, 10).await;
    let grown = until(&manager, "scale-up to max", |stats| stats.running == 6).await;
    assert!(grown.waves >= 3, "5 more processes in waves of 2 take at least 3 waves: {grown:?}");
    assert_eq!(grown.crashes, 0);

    // Every task is taken: nothing is pending any more.
    let pending = cluster.node(1).state().read(|state| state.tasks().pending(b"work", 100));
    assert_eq!(pending.len(), 10);
    let mut frame = Vec::new();
    let mut writer = TaskBatchWriter::new(&mut frame);
    for (agent, task_id) in pending.into_iter().enumerate() {
        writer.assign(AssignTaskView { task_id, agent_id: 1000 + agent as u64 }).unwrap();
    }
    writer.finish();
    cluster.write(&frame).await;
    let shrunk = until(&manager, "scale-down to min", |stats| stats.running == 1).await;
    assert_eq!(shrunk.stopped, 5);
    manager.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_keep_their_pools_at_min_under_a_backlog() {
    // Proves that with the same pool on the leader and a follower and a backlog of tasks, the leader's pool grows to max while the follower's stays at min without a single scale-up wave.
    let mut cluster = Cluster::new(3, fast_raft());
    cluster.start_all().await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let (leader_files, follower_files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pool = |dir: &Path| PoolConfig { wave_size: 2, wave_pause_ms: 50, ..pid_file_pool(dir, 1, 4) };
    let on_leader = AgentsSection { pools: vec![pool(leader_files.path())], ..AgentsSection::default() };
    let on_follower = AgentsSection { pools: vec![pool(follower_files.path())], ..AgentsSection::default() };
    let leader_pools = PoolManager::start(cluster.node(leader), &on_leader, "127.0.0.1:1").unwrap();
    let follower_pools = PoolManager::start(cluster.node(follower), &on_follower, "127.0.0.1:2").unwrap();
    until(&follower_pools, "the follower's pre-warm", |stats| stats.running == 1).await;
    submit_tasks(&cluster, 10).await;
    until(&leader_pools, "the leader's scale-up", |stats| stats.running == 4).await;
    let deadline = Instant::now() + PATIENCE;
    while cluster.node(follower).state().read(|state| state.tasks().pending(b"work", 100).len()) < 10 {
        assert!(Instant::now() < deadline, "the follower did not apply the tasks");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Several of the follower pool's ticks with the backlog in its state.
    tokio::time::sleep(hyperraft_node::pools::TICK * 4).await;
    let stats = follower_pools.stats().remove(0);
    assert_eq!((stats.running, stats.target, stats.waves), (1, 1, 0), "{stats:?}");
    leader_pools.shutdown().await;
    follower_pools.shutdown().await;
    cluster.shutdown().await;
}

#[test]
fn pool_configurations_out_of_bounds_are_refused() {
    // Proves min above max, a zero max, an empty command and two pools of one type are each refused with a message naming the field.
    let check = |pools: Vec<PoolConfig>| AgentsSection { pools, ..AgentsSection::default() }.validate().unwrap_err();
    assert!(check(vec![PoolConfig::new("a", "sh", 3, 2)]).contains("min <= max"));
    assert!(check(vec![PoolConfig::new("a", "sh", 0, 0)]).contains("1 <= max"));
    assert!(check(vec![PoolConfig::new("a", "", 0, 1)]).contains("command must not be empty"));
    let twice = vec![PoolConfig::new("a", "sh", 0, 1), PoolConfig::new("a", "sh", 0, 1)];
    assert!(check(twice).contains("has another pool already"));
}
