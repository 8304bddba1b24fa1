//! Mutual TLS: only holders of a certificate from the cluster CA talk.

use bytes::Bytes;
use hyperraft_transport::{ClusterCa, TlsError, TlsIdentity, TransportError};

use crate::support::{
    address, bind, echo_response, identity, is_tls_alert, raw_call, raw_client_tls, serve_echo, test_config,
};

#[tokio::test]
async fn node_from_another_ca_cannot_call() {
    // Proves the server refuses a client whose certificate another CA
    // signed, at the handshake (a TLS alert), before any request runs; the
    // rogue even trusts the server's CA so only the server's check stops it.
    let ca = ClusterCa::generate("cluster").unwrap();
    let rogue_ca = ClusterCa::generate("rogue").unwrap();
    let server = bind(&ca, 1, test_config());
    let handler = serve_echo(&server);
    let rogue = rogue_ca.issue_node(2, &[]).unwrap();
    let tls = raw_client_tls(&ca, Some((rogue.certificate_pem(), rogue.key_pem())));

    let error = raw_call(tls, address(&server), 1).await.unwrap_err();
    assert!(is_tls_alert(&error), "expected a TLS alert, got {error}");
    assert_eq!(handler.calls(), 0);

    // A complete rogue node (trusting only its own CA) fails the same way.
    let rogue_node = bind(&rogue_ca, 3, test_config());
    let error = rogue_node.peer(1, address(&server)).call(Bytes::from("hi")).await.unwrap_err();
    assert!(matches!(error, TransportError::Handshake { .. }), "{error}");
    assert_eq!(handler.calls(), 0);
}

#[tokio::test]
async fn node_from_another_ca_cannot_be_called() {
    // Proves a caller refuses a server whose certificate another CA signed:
    // the call fails with a Handshake error and the rogue handler never runs.
    let ca = ClusterCa::generate("cluster").unwrap();
    let rogue_ca = ClusterCa::generate("rogue").unwrap();
    let caller = bind(&ca, 1, test_config());
    let rogue = bind(&rogue_ca, 2, test_config());
    let rogue_handler = serve_echo(&rogue);

    let error = caller.peer(2, address(&rogue)).call(Bytes::from("secret")).await.unwrap_err();
    assert!(matches!(error, TransportError::Handshake { node_id: 2, .. }), "{error}");
    assert_eq!(rogue_handler.calls(), 0);
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    // Proves a client that trusts the CA but presents no certificate is
    // refused at the handshake with a TLS alert and never reaches the handler.
    let ca = ClusterCa::generate("cluster").unwrap();
    let server = bind(&ca, 1, test_config());
    let handler = serve_echo(&server);

    let error = raw_call(raw_client_tls(&ca, None), address(&server), 1).await.unwrap_err();
    assert!(is_tls_alert(&error), "expected a TLS alert, got {error}");
    assert_eq!(handler.calls(), 0);

    // The server still serves properly authenticated nodes afterwards.
    let client = bind(&ca, 2, test_config());
    let response = client.peer(1, address(&server)).call(Bytes::from("ok")).await.unwrap();
    assert_eq!(response, echo_response(2, b"ok"));
}

#[tokio::test]
async fn dialing_the_wrong_node_id_is_refused() {
    // Proves a caller verifies *which* node answers: asking for node 3 at
    // node 2's address fails the handshake (server name mismatch).
    let ca = ClusterCa::generate("cluster").unwrap();
    let caller = bind(&ca, 1, test_config());
    let two = bind(&ca, 2, test_config());
    let handler = serve_echo(&two);
    let error = caller.peer(3, address(&two)).call(Bytes::from("for node 3")).await.unwrap_err();
    assert!(matches!(error, TransportError::Handshake { node_id: 3, .. }), "{error}");
    assert_eq!(handler.calls(), 0);
}

#[tokio::test]
async fn identity_mixing_two_cas_is_refused_at_startup() {
    // Proves a node configured with one cluster's CA and another cluster's
    // certificate fails when building its identity, not at every handshake.
    let ca = ClusterCa::generate("cluster").unwrap();
    let other_ca = ClusterCa::generate("other").unwrap();
    let node = other_ca.issue_node(1, &[]).unwrap();
    let error = TlsIdentity::new(ca.certificate_pem(), &node).unwrap_err();
    assert!(matches!(error, TlsError::Untrusted { node_id: 1, .. }), "{error}");
    // The same certificate with its own CA is fine.
    assert_eq!(identity(&other_ca, 1).node_id(), 1);
}
