//! Requests and responses between correctly configured nodes.

use std::sync::Arc;

use bytes::Bytes;
use hyperraft_transport::{ClusterCa, PeerInfo, RemoteError, TransportConfig, TransportError};
use tokio::task::JoinSet;

use crate::support::{address, bind, echo_response, failing_handler, serve_echo, test_config};

#[tokio::test]
async fn round_trip_between_two_nodes_both_ways() {
    // Proves two nodes with certificates from one CA call each other, and
    // that each handler sees the caller's node id from its certificate.
    let ca = ClusterCa::generate("round trip").unwrap();
    let one = bind(&ca, 1, test_config());
    let two = bind(&ca, 2, test_config());
    let one_handler = serve_echo(&one);
    let two_handler = serve_echo(&two);

    let response = two.peer(1, address(&one)).call(Bytes::from("ping")).await.unwrap();
    assert_eq!(response, echo_response(2, b"ping"));
    let response = one.peer(2, address(&two)).call(Bytes::from("pong")).await.unwrap();
    assert_eq!(response, echo_response(1, b"pong"));
    assert_eq!(one_handler.calls(), 1);
    assert_eq!(two_handler.calls(), 1);

    let empty = two.peer(1, address(&one)).call(Bytes::new()).await.unwrap();
    assert_eq!(empty, echo_response(2, b""));
}

#[tokio::test]
async fn many_concurrent_calls_share_one_connection() {
    // Proves 300 concurrent calls through one Peer, more than the 8 streams
    // the server grants at once, are each answered with their own response
    // and use a single connection.
    let ca = ClusterCa::generate("concurrency").unwrap();
    let config = TransportConfig { concurrent_streams_max: 8, ..test_config() };
    let server = bind(&ca, 1, config.clone());
    let client = bind(&ca, 2, config);
    let handler = serve_echo(&server);
    let peer = client.peer(1, address(&server));

    let mut calls = JoinSet::new();
    for index in 0..300usize {
        let peer = peer.clone();
        calls.spawn(async move {
            // Every 50th request spans many QUIC packets.
            let size = if index % 50 == 0 { 300_000 } else { index };
            let request: Vec<u8> = (0..size).map(|byte| (byte + index) as u8).collect();
            let response = peer.call(Bytes::from(request.clone())).await.unwrap();
            assert_eq!(response, echo_response(2, &request), "call {index}");
        });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap();
    }
    assert_eq!(handler.calls(), 300);
    assert_eq!(server.open_connections(), 1);
    assert_eq!(client.open_connections(), 1);
}

#[tokio::test]
async fn large_message_round_trips_intact() {
    // Proves an 8 MiB request and response (many chunks, reassembled) come
    // back byte for byte.
    let ca = ClusterCa::generate("large").unwrap();
    let server = bind(&ca, 1, test_config());
    let client = bind(&ca, 2, test_config());
    serve_echo(&server);
    let request: Vec<u8> = (0..8 * 1024 * 1024).map(|index: usize| (index % 251) as u8).collect();
    let response = client.peer(1, address(&server)).call(Bytes::from(request.clone())).await.unwrap();
    assert_eq!(response, echo_response(2, &request));
}

#[tokio::test]
async fn handler_error_comes_back_as_remote_error() {
    // Proves a handler's error reaches the caller as TransportError::Remote
    // with the handler's message, and the peer keeps working afterwards.
    let ca = ClusterCa::generate("remote error").unwrap();
    let server = bind(&ca, 1, test_config());
    let client = bind(&ca, 2, test_config());
    server.serve(failing_handler("no such account")).unwrap();
    let peer = client.peer(1, address(&server));
    for _ in 0..2 {
        match peer.call(Bytes::from("transfer")).await {
            Err(TransportError::Remote { node_id, error }) => {
                assert_eq!(node_id, 1);
                assert_eq!(error, RemoteError::new("no such account"));
            }
            other => panic!("expected a remote error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn handler_panic_resets_the_stream_and_serving_continues() {
    // Proves a panicking handler yields a clear StreamReset to the caller
    // (not a truncated response) and later calls are still served.
    let ca = ClusterCa::generate("panic").unwrap();
    let server = bind(&ca, 1, test_config());
    let client = bind(&ca, 2, test_config());
    server
        .serve(Arc::new(|_peer: PeerInfo, request: Bytes| async move {
            assert_ne!(&request[..], b"panic", "handler told to panic");
            Ok(request)
        }))
        .unwrap();
    let peer = client.peer(1, address(&server));
    match peer.call(Bytes::from("panic")).await {
        Err(TransportError::StreamReset { code: 3, .. }) => {}
        other => panic!("expected a handler-failed reset, got {other:?}"),
    }
    assert_eq!(peer.call(Bytes::from("fine")).await.unwrap(), "fine");
}

#[tokio::test]
async fn serve_twice_is_refused() {
    // Proves a transport cannot be given a second handler by accident.
    let ca = ClusterCa::generate("serve twice").unwrap();
    let server = bind(&ca, 1, test_config());
    serve_echo(&server);
    let error = server.serve(failing_handler("second")).unwrap_err();
    assert!(matches!(error, TransportError::AlreadyServing), "{error}");
}
