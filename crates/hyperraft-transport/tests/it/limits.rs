//! Bounds: oversize messages are refused with clear errors and the
//! connection keeps serving; bad configurations and silent peers are bounded.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyperraft_transport::{ClusterCa, ConfigError, PeerInfo, RemoteError, Transport, TransportConfig, TransportError};

use crate::support::{address, bind, echo_response, identity, loopback, serve_echo, test_config};

const MIB: u32 = 1024 * 1024;

fn with_message_bytes_max(message_bytes_max: u32) -> TransportConfig {
    TransportConfig { message_bytes_max, ..test_config() }
}

#[tokio::test]
async fn oversize_request_is_refused_by_the_sender() {
    // Proves a request over the caller's own bound fails before anything is
    // sent, and the next call works.
    let ca = ClusterCa::generate("limits").unwrap();
    let server = bind(&ca, 1, test_config());
    let client = bind(&ca, 2, with_message_bytes_max(MIB));
    let handler = serve_echo(&server);
    let peer = client.peer(1, address(&server));

    let error = peer.call(Bytes::from(vec![0u8; MIB as usize + 1])).await.unwrap_err();
    match error {
        TransportError::MessageTooLarge { bytes, bytes_max } => {
            assert_eq!(bytes, MIB as usize + 1);
            assert_eq!(bytes_max, MIB);
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!(handler.calls(), 0);
    let exactly_max = vec![7u8; MIB as usize - 2];
    let response = peer.call(Bytes::from(exactly_max.clone())).await.unwrap();
    assert_eq!(response, echo_response(2, &exactly_max));
}

#[tokio::test]
async fn oversize_request_is_refused_by_the_receiver_and_serving_continues() {
    // Proves a server with a smaller bound refuses a larger request unread
    // (a Refused error naming the sizes, handler not run), and keeps serving
    // the same connection afterwards.
    let ca = ClusterCa::generate("limits").unwrap();
    let server = bind(&ca, 1, with_message_bytes_max(64 * 1024));
    let client = bind(&ca, 2, with_message_bytes_max(16 * MIB));
    let handler = serve_echo(&server);
    let peer = client.peer(1, address(&server));
    assert_eq!(peer.call(Bytes::from("before")).await.unwrap(), echo_response(2, b"before"));

    for size in [64 * 1024 + 1, 8 * MIB as usize] {
        match peer.call(Bytes::from(vec![1u8; size])).await {
            Err(TransportError::Refused { node_id: 1, reason }) => {
                assert!(reason.contains(&format!("request of {size} bytes")), "{reason}");
                assert!(reason.contains("exceeds message_bytes_max of 65536"), "{reason}");
            }
            other => panic!("expected Refused, got {other:?}"),
        }
    }
    assert_eq!(handler.calls(), 1);
    assert_eq!(peer.call(Bytes::from("after")).await.unwrap(), echo_response(2, b"after"));
    assert_eq!(handler.calls(), 2);
    assert_eq!(server.open_connections(), 1);
}

#[tokio::test]
async fn oversize_response_is_refused_by_the_caller() {
    // Proves a response over the caller's bound is refused unread with
    // ResponseTooLarge, and the next call on the peer works.
    let ca = ClusterCa::generate("limits").unwrap();
    let server = bind(&ca, 1, with_message_bytes_max(8 * MIB));
    let client = bind(&ca, 2, with_message_bytes_max(MIB));
    server
        .serve(Arc::new(|_peer: PeerInfo, request: Bytes| async move {
            let size = if &request[..] == b"big" { 2 * MIB as usize } else { 1 };
            Ok::<_, RemoteError>(Bytes::from(vec![0u8; size]))
        }))
        .unwrap();
    let peer = client.peer(1, address(&server));
    match peer.call(Bytes::from("big")).await {
        Err(TransportError::ResponseTooLarge { bytes, bytes_max, .. }) => {
            assert_eq!(bytes, 2 * MIB);
            assert_eq!(bytes_max, MIB);
        }
        other => panic!("expected ResponseTooLarge, got {other:?}"),
    }
    assert_eq!(peer.call(Bytes::from("small")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn handler_response_over_the_server_bound_becomes_an_error() {
    // Proves the server never sends a response over its own bound: the
    // caller gets a Remote error saying so.
    let ca = ClusterCa::generate("limits").unwrap();
    let server = bind(&ca, 1, with_message_bytes_max(1024));
    let client = bind(&ca, 2, test_config());
    server
        .serve(Arc::new(|_peer: PeerInfo, _request: Bytes| async move {
            Ok::<_, RemoteError>(Bytes::from(vec![0u8; 4096]))
        }))
        .unwrap();
    match client.peer(1, address(&server)).call(Bytes::from("x")).await {
        Err(TransportError::Remote { error, .. }) => {
            assert!(error.message().contains("exceeds message_bytes_max"), "{error}");
        }
        other => panic!("expected a Remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn silent_handler_is_bounded_by_the_call_timeout() {
    // Proves a call to a handler that never answers ends with Timeout (the
    // duration is not measured, only that the bound ends the call).
    let ca = ClusterCa::generate("limits").unwrap();
    let server = bind(&ca, 1, test_config());
    let client = bind(&ca, 2, test_config());
    server
        .serve(Arc::new(
            |_peer: PeerInfo, _request: Bytes| async move { pending::<Result<Bytes, RemoteError>>().await },
        ))
        .unwrap();
    let timeout = Duration::from_millis(200);
    let error = client.peer(1, address(&server)).call_with_timeout(Bytes::from("wait"), timeout).await.unwrap_err();
    assert!(matches!(error, TransportError::Timeout { node_id: 1, .. }), "{error}");
}

#[tokio::test]
async fn invalid_configuration_is_refused_at_bind() {
    // Proves bind validates the configuration before opening a socket.
    let ca = ClusterCa::generate("limits").unwrap();
    let config = TransportConfig { message_bytes_max: 0, ..TransportConfig::default() };
    let error = Transport::bind(loopback(), identity(&ca, 1), config).unwrap_err();
    assert!(matches!(error, TransportError::Config(ConfigError::Zero { field: "message_bytes_max" })), "{error}");
}
