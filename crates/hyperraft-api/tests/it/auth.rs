//! Bearer tokens with roles, and TLS, on the gRPC API.

use hyperraft_api::proto::cluster_client::ClusterClient;
use hyperraft_api::proto::lease_client::LeaseClient;
use hyperraft_api::proto::{
    AddNodeRequest, CreateAccountsRequest, LeaseGrantRequest, LeaseLeasesRequest, LookupAccountsRequest,
    RemoveNodeRequest, StatusRequest, TransferLeaderRequest,
};
use hyperraft_api::{ApiConfig, ApiToken, Role};
use tonic::{Code, Request, Status};

use crate::harness::{channel, tls_channel, ApiCluster};
use crate::kv::{put, range};
use crate::ledger::{account, id};
use crate::watch::{next, watch_request};

const READER: &str = "reader-secret";
const WRITER: &str = "writer-secret";
const ADMIN: &str = "admin-secret";

/// An API with one token of each role.
fn secured() -> ApiConfig {
    ApiConfig {
        tokens: vec![
            ApiToken::from_secret("reader", Role::Read, READER),
            ApiToken::from_secret("writer", Role::Write, WRITER),
            ApiToken::from_secret("admin", Role::Admin, ADMIN),
        ],
        ..ApiConfig::default()
    }
}

/// `message` with `authorization: Bearer <token>`; none when `token` is None.
fn call<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    let status = result.expect_err("the call was refused");
    assert_eq!(status.code(), code, "{status:?}");
    status
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, Status>, role: &str) {
    let status = assert_code(result, Code::PermissionDenied);
    assert!(status.message().contains(&format!("needs the {role} role")), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_calls_need_a_token_and_creates_need_the_write_role() {
    // Proves the Ledger group: without a token create and lookup are UNAUTHENTICATED; a read token's create is PERMISSION_DENIED naming `write` and creates nothing; a write token creates and a read token looks the account up.
    let cluster = ApiCluster::start(1, secured()).await;
    let mut ledger = cluster.ledger(cluster.leader().await).await;
    let create = || CreateAccountsRequest { accounts: vec![account(7)], ..Default::default() };
    let lookup = || LookupAccountsRequest { ids: vec![id(7).unwrap()], ..Default::default() };
    assert_code(ledger.create_accounts(call(create(), None)).await, Code::Unauthenticated);
    assert_code(ledger.lookup_accounts(call(lookup(), None)).await, Code::Unauthenticated);
    assert_code(ledger.lookup_accounts(call(lookup(), Some("guess"))).await, Code::Unauthenticated);
    assert_denied(ledger.create_accounts(call(create(), Some(READER))).await, "write");
    let found = ledger.lookup_accounts(call(lookup(), Some(READER))).await.unwrap().into_inner();
    assert!(found.accounts.is_empty(), "the refused create created nothing: {found:?}");

    let created = ledger.create_accounts(call(create(), Some(WRITER))).await.unwrap().into_inner();
    assert!(created.results.is_empty(), "{created:?}");
    let found = ledger.lookup_accounts(call(lookup(), Some(READER))).await.unwrap().into_inner();
    assert_eq!(found.accounts.len(), 1);
    drop(ledger);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_writes_need_the_write_role_and_watches_the_read_role() {
    // Proves the Kv and watch group: no token is UNAUTHENTICATED for put, range and watch; a read token's put, delete and txn are PERMISSION_DENIED and leave the key absent; a write token puts, and a read token ranges and watches it.
    let cluster = ApiCluster::start(1, secured()).await;
    let mut kv = cluster.kv(cluster.leader().await).await;
    assert_code(kv.put(call(put("k", "v"), None)).await, Code::Unauthenticated);
    assert_code(kv.range(call(range("k", b""), None)).await, Code::Unauthenticated);
    assert_code(kv.watch(call(watch_request("k", b"", 0), None)).await, Code::Unauthenticated);
    assert_denied(kv.put(call(put("k", "v"), Some(READER))).await, "write");
    let delete = hyperraft_api::proto::DeleteRangeRequest { key: b"k".to_vec().into(), ..Default::default() };
    assert_denied(kv.delete_range(call(delete, Some(READER))).await, "write");
    assert_denied(kv.txn(call(hyperraft_api::proto::TxnRequest::default(), Some(READER))).await, "write");
    assert_eq!(kv.range(call(range("k", b""), Some(READER))).await.unwrap().into_inner().count, 0);

    let mut watch = kv.watch(call(watch_request("k", b"", 1), Some(READER))).await.unwrap().into_inner();
    kv.put(call(put("k", "v"), Some(WRITER))).await.unwrap();
    assert_eq!(kv.range(call(range("k", b""), Some(READER))).await.unwrap().into_inner().count, 1);
    let mut events = Vec::new();
    while events.is_empty() {
        events = next(&mut watch).await.expect("no error").expect("the watch goes on").events;
    }
    assert_eq!(events[0].kv.as_ref().unwrap().key.as_ref(), b"k");
    drop((watch, kv));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_writes_need_the_write_role_and_listing_the_read_role() {
    // Proves the Lease group is behind the same check: no token is UNAUTHENTICATED, a read token's grant is PERMISSION_DENIED naming `write` and grants nothing, a write token's grant and a read token's list succeed.
    let cluster = ApiCluster::start(1, secured()).await;
    let mut lease = LeaseClient::new(cluster.channel(cluster.leader().await).await);
    let grant = || LeaseGrantRequest { ttl_ms: 60_000, id: 42 };
    assert_code(lease.grant(call(grant(), None)).await, Code::Unauthenticated);
    assert_code(lease.leases(call(LeaseLeasesRequest {}, None)).await, Code::Unauthenticated);
    assert_denied(lease.grant(call(grant(), Some(READER))).await, "write");
    let listed = lease.leases(call(LeaseLeasesRequest {}, Some(READER))).await.expect("a reader lists leases");
    assert!(!listed.into_inner().ids.contains(&42), "the refused grant granted");
    let granted = lease.grant(call(grant(), Some(WRITER))).await.expect("a writer grants").into_inner();
    assert_eq!(granted.id, 42);
    drop(lease);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_leadership_need_the_admin_role_and_status_the_read_role() {
    // Proves the Cluster group: no token is UNAUTHENTICATED for Status and AddNode; a read token reads Status; write tokens' AddNode, RemoveNode and TransferLeader are PERMISSION_DENIED naming `admin` and change no membership; an admin token's AddNode (of the existing voter, idempotent) succeeds.
    let cluster = ApiCluster::start(1, secured()).await;
    let leader = cluster.leader().await;
    let mut admin = ClusterClient::new(cluster.channel(leader).await);
    assert_code(admin.status(call(StatusRequest {}, None)).await, Code::Unauthenticated);
    let before = admin.status(call(StatusRequest {}, Some(READER))).await.unwrap().into_inner();
    let peer_address = before.voters[0].peer_address.clone();
    let add = || AddNodeRequest { id: leader, peer_address: peer_address.clone(), ..Default::default() };
    assert_code(admin.add_node(call(add(), None)).await, Code::Unauthenticated);
    assert_denied(admin.add_node(call(add(), Some(WRITER))).await, "admin");
    assert_denied(admin.remove_node(call(RemoveNodeRequest { id: leader }, Some(WRITER))).await, "admin");
    let transfer = TransferLeaderRequest { target_id: leader, timeout_ms: 0 };
    assert_denied(admin.transfer_leader(call(transfer, Some(READER))).await, "admin");
    let after = admin.status(call(StatusRequest {}, Some(WRITER))).await.unwrap().into_inner();
    assert_eq!(after.voters, before.voters, "refused changes changed nothing");

    let added = admin.add_node(call(add(), Some(ADMIN))).await.unwrap().into_inner().status.unwrap();
    assert_eq!(added.voters.iter().map(|member| member.id).collect::<Vec<_>>(), vec![leader]);
    drop(admin);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_before_admission_control() {
    // Proves the order: on a server whose admission bound is full (0), a call without a token is UNAUTHENTICATED, not RESOURCE_EXHAUSTED, while a call with a good token reaches admission control and is refused there.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let full = ApiConfig { requests_in_flight_max: 0, ..secured() };
    let server = hyperraft_api::serve_on(cluster.nodes[&leader].clone(), listener, full).unwrap();
    let mut status = ClusterClient::new(channel(&address).await);
    assert_code(status.status(call(StatusRequest {}, None)).await, Code::Unauthenticated);
    assert_code(status.status(call(StatusRequest {}, Some(READER))).await, Code::ResourceExhausted);
    drop(status);
    server.shutdown().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_api_serves_clients_that_trust_the_cluster_ca_and_no_one_else() {
    // Proves TLS on the API: a client trusting the cluster CA (by IP and by the node's name) is served; a client trusting another CA fails the handshake; a plaintext client gets no answer from the TLS port.
    let cluster = ApiCluster::start_tls(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let address = cluster.addresses[&leader].clone();
    for domain in ["127.0.0.1".to_string(), format!("node-{leader}.hyperraft")] {
        let trusted = tls_channel(&address, &cluster.ca_pem(), &domain).await.expect("a TLS connection");
        let status = ClusterClient::new(trusted).status(StatusRequest {}).await.expect("served over TLS");
        assert_eq!(status.into_inner().node_id, leader);
    }

    let stranger = hyperraft_transport_ca_pem();
    let refused = match tls_channel(&address, &stranger, "127.0.0.1").await {
        Ok(channel) => ClusterClient::new(channel)
            .status(StatusRequest {})
            .await
            .map(|_| ())
            .map_err(|status| format!("{status:?}")),
        Err(error) => Err(format!("{error:?}")),
    };
    let refused = refused.expect_err("a client that does not trust the CA is refused");
    assert!(refused.to_lowercase().contains("certificate"), "the error names the certificate: {refused}");

    let plaintext = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap().connect().await;
    if let Ok(plaintext) = plaintext {
        let answered = ClusterClient::new(plaintext).status(StatusRequest {}).await;
        assert!(answered.is_err(), "a plaintext client was served by a TLS port: {answered:?}");
    }
    cluster.shutdown().await;
}

/// The certificate of a CA that signed nothing of this cluster.
fn hyperraft_transport_ca_pem() -> String {
    let dir = tempfile::tempdir().unwrap();
    let other = hyperraft_node::EmbeddedCluster::new(dir.path(), 1, Default::default(), 1).unwrap();
    other.ca().certificate_pem().to_string()
}
