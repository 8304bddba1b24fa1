//! Cluster calls, leader discovery and the connection pool through the SDK.

use std::sync::Arc;
use std::time::Duration;

use hyperraft_api::ApiConfig;
use hyperraft_client::{Client, ClientConfig, Error, NewNode};

use crate::harness::TestCluster;
use crate::ledger::account;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_cluster_from_any_endpoint() {
    // Proves status and status_all: the leader's status lists three voters with API addresses, and every endpoint answers for itself.
    let cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let status = client.status().await.expect("status");
    assert_eq!(status.leader_id, Some(leader));
    assert!(status.is_leader, "status goes to the leader");
    assert_eq!(status.voters.len(), 3);
    assert!(status.voters.iter().all(|member| !member.api_address.is_empty()));
    let all = client.status_all().await;
    assert_eq!(all.len(), 3);
    for (address, answer) in all {
        let answer = answer.expect("every node answers");
        assert_eq!(answer.node_id, cluster.node_at(&address));
        assert_eq!(answer.leader_id, Some(leader));
    }
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_find_the_leader_from_followers_only() {
    // Proves leader discovery: a client given only the followers' addresses learns the leader's address (from Status and hints) and its writes succeed there.
    let cluster = TestCluster::start(3).await;
    let followers = cluster.followers().await;
    let client = cluster.client(&followers).await;
    assert!(client.create_accounts(&[account(1)]).await.expect("create").is_empty());
    client.put("k", "v").await.expect("put reaches the leader");
    let leader = cluster.leader().await;
    assert_eq!(client.leader_address(), Some(cluster.addresses[&leader].clone()));
    let known: Vec<String> = client.endpoints().into_iter().map(|(address, _)| address).collect();
    assert!(known.contains(&cluster.addresses[&leader]), "{known:?}");
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_grows_under_concurrent_calls_within_its_bound_and_shrinks_when_idle() {
    // Proves the pool opens more channels to an endpoint when every open one is busy, never more than channels_max, and closes the extra ones once idle.
    let cluster = TestCluster::start(3).await;
    let mut config = ClientConfig::new(cluster.addresses.values().cloned());
    config.pool.calls_per_channel_target = 1;
    config.pool.channels_max = 3;
    config.pool.idle_timeout = Duration::from_millis(1);
    let client = Arc::new(Client::connect(config).await.expect("connect"));
    let calls: Vec<_> = (0..64)
        .map(|index| {
            let client = client.clone();
            tokio::spawn(async move { client.put(format!("pool/{index}"), "v").await })
        })
        .collect();
    for call in calls {
        call.await.expect("task").expect("put");
    }
    let leader = cluster.addresses[&cluster.leader().await].clone();
    let channels = client.endpoints().into_iter().find(|(address, _)| *address == leader).expect("leader known").1;
    assert!(channels > 1, "64 concurrent calls on one channel with a target of 1 call each");
    assert!(channels <= 3, "{channels} channels, more than channels_max");

    // Idle channels above channels_min close at the next health checks.
    let deadline = tokio::time::Instant::now() + crate::harness::PATIENCE;
    loop {
        client.refresh().await;
        let open = client.endpoints().into_iter().find(|(address, _)| *address == leader).expect("leader known").1;
        if open == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{open} channels stay open while idle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_fails_clearly() {
    // Proves connect reports an unreachable cluster as Unavailable, naming the endpoints, instead of hanging.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let mut config = ClientConfig::new([address.clone()]);
    config.connect_timeout = Duration::from_secs(1);
    match Client::connect(config).await {
        Err(Error::Unavailable(message)) => assert!(message.contains(&address), "{message}"),
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

fn voter_ids(status: &hyperraft_client::proto::StatusResponse) -> Vec<u64> {
    status.voters.iter().map(|member| member.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_and_leader_transfer() {
    // Proves the admin calls: add_node makes a started node a voter (twice is harmless), transfer_leader hands leadership to it and writes follow, remove_node takes another voter out.
    let mut cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let peer = cluster.start_outsider(4).await;
    let node = NewNode {
        id: 4,
        peer_address: peer.to_string(),
        api_address: cluster.addresses[&4].clone(),
        catch_up: Duration::ZERO,
    };
    assert_eq!(voter_ids(&client.add_node(node.clone()).await.expect("add")), vec![1, 2, 3, 4]);
    assert_eq!(voter_ids(&client.add_node(node).await.expect("add again")), vec![1, 2, 3, 4]);

    let moved = client.transfer_leader(4, Duration::ZERO).await.expect("transfer leader");
    assert_eq!(moved.leader_id, Some(4));
    assert_eq!(cluster.leader().await, 4);
    client.put("after-transfer", "v").await.expect("writes follow the new leader");
    assert_eq!(client.leader_address(), Some(cluster.addresses[&4].clone()));

    let removed = client.remove_node(1).await.expect("remove");
    assert_eq!(voter_ids(&removed), vec![2, 3, 4]);
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_cluster_is_retried_then_reported_with_its_hint() {
    // Proves RESOURCE_EXHAUSTED handling: a refusing node still counts as up, the refused write is retried (it changed nothing), and when every attempt is refused the call ends as Overloaded with the server's retry hint.
    let refuse_all = ApiConfig { requests_in_flight_max: 0, ..ApiConfig::default() };
    let cluster = TestCluster::start_with_api(3, refuse_all).await;
    let mut config = ClientConfig::new(cluster.addresses.values().cloned());
    config.retry.attempts = 3;
    let client = Client::connect(config).await.expect("refusing nodes are up");
    match client.put("k", "v").await {
        Err(Error::Overloaded { retry_after }) => assert_eq!(retry_after, Some(ApiConfig::default().retry_after)),
        other => panic!("expected Overloaded, got {other:?}"),
    }
    let stats = client.stats();
    assert_eq!((stats.attempts, stats.retries), (3, 2), "{stats:?}");
    drop(client);
    cluster.shutdown().await;
}
