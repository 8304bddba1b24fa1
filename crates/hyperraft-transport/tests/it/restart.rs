//! Lifecycle: reconnecting after a restart, and closing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyperraft_transport::{ClusterCa, PeerInfo, RemoteError, Transport, TransportConfig, TransportError};

use crate::support::{address, bind, identity, serve_echo, test_config};

/// Binds node 1 at `address`, retrying while the previous socket on that
/// port is still being released by its (asynchronous) endpoint driver.
async fn rebind(ca: &ClusterCa, address: SocketAddr) -> Transport {
    const ATTEMPTS_MAX: usize = 500;
    for _ in 0..ATTEMPTS_MAX {
        match Transport::bind(address, identity(ca, 1), test_config()) {
            Ok(transport) => return transport,
            Err(TransportError::Bind { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(error) => panic!("unexpected bind error: {error}"),
        }
    }
    panic!("port {address} was never released");
}

fn serve_generation(transport: &Transport, generation: &'static str) {
    transport
        .serve(Arc::new(move |_peer: PeerInfo, _request: Bytes| async move {
            Ok::<_, RemoteError>(Bytes::from(generation))
        }))
        .unwrap();
}

#[tokio::test]
async fn peer_reconnects_after_the_server_restarts_on_the_same_port() {
    // Proves one Peer handle keeps working across a server restart on the
    // same address: its first call afterwards opens a new connection and is
    // answered by the new server.
    let ca = ClusterCa::generate("restart").unwrap();
    let server = bind(&ca, 1, test_config());
    let server_address = address(&server);
    serve_generation(&server, "first");
    let client = bind(&ca, 2, test_config());
    let peer = client.peer(1, server_address);
    assert_eq!(peer.call(Bytes::from("hi")).await.unwrap(), "first");

    server.close().await;
    drop(server);
    let restarted = rebind(&ca, server_address).await;
    serve_generation(&restarted, "second");

    assert_eq!(peer.call(Bytes::from("hi")).await.unwrap(), "second");
}

#[tokio::test]
async fn a_peer_dialled_before_it_listens_is_reached_once_it_does() {
    // Proves a call to a peer that starts listening only after the call
    // began connects within the connect timeout: the lost first handshake
    // packet is sent again after about three initial round trips, not after
    // QUIC's default second, which here would outlast the timeout.
    let ca = ClusterCa::generate("late").unwrap();
    let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = TransportConfig {
        initial_rtt: Duration::from_millis(10),
        connect_timeout: Duration::from_millis(700),
        ..test_config()
    };
    let client = bind(&ca, 2, config);
    let peer = client.peer(1, free);
    let call = tokio::spawn(async move { peer.call(Bytes::from("hi")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = Transport::bind(free, identity(&ca, 1), test_config()).unwrap();
    serve_generation(&server, "late");
    assert_eq!(call.await.unwrap().unwrap(), "late");
}

#[tokio::test]
async fn calls_after_close_fail_with_closed() {
    // Proves that after close() the transport's own peers fail with Closed
    // and its callers see the connection closed, not a hang.
    let ca = ClusterCa::generate("close").unwrap();
    let one = bind(&ca, 1, test_config());
    let two = bind(&ca, 2, test_config());
    serve_echo(&one);
    serve_echo(&two);
    let one_to_two = one.peer(2, address(&two));
    let two_to_one = two.peer(1, address(&one));
    assert!(one_to_two.call(Bytes::from("x")).await.is_ok());
    assert!(two_to_one.call(Bytes::from("x")).await.is_ok());

    one.close().await;
    let error = one_to_two.call(Bytes::from("x")).await.unwrap_err();
    assert!(matches!(error, TransportError::Closed), "{error}");
    // Whether the closed socket refuses or ignores the new handshake is up
    // to the OS and quinn; either way the call ends, within this bound.
    let error = two_to_one.call_with_timeout(Bytes::from("x"), Duration::from_secs(2)).await.unwrap_err();
    assert!(matches!(error, TransportError::ConnectionLost { .. } | TransportError::Timeout { .. }), "{error}");
}
