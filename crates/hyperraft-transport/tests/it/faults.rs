//! Fault injection: partitions that fail fast and heal.

use bytes::Bytes;
use hyperraft_transport::{ClusterCa, TransportConfig, TransportError};

use crate::support::{address, bind, echo_response, serve_echo, test_config};

#[tokio::test]
async fn partition_blocks_both_directions_then_restores_calls() {
    // Proves that partitioning node 2 on node 1 fails calls 1->2 and 2->1
    // with Partitioned (the handler does not run), and healing restores both.
    let ca = ClusterCa::generate("faults").unwrap();
    let one = bind(&ca, 1, test_config());
    let two = bind(&ca, 2, test_config());
    let one_handler = serve_echo(&one);
    let two_handler = serve_echo(&two);
    let one_to_two = one.peer(2, address(&two));
    let two_to_one = two.peer(1, address(&one));
    assert!(one_to_two.call(Bytes::from("a")).await.is_ok());
    assert!(two_to_one.call(Bytes::from("b")).await.is_ok());

    one.set_partitioned(2, true).unwrap();
    let outgoing = one_to_two.call(Bytes::from("c")).await.unwrap_err();
    assert!(matches!(outgoing, TransportError::Partitioned { node_id: 2 }), "{outgoing}");
    let incoming = two_to_one.call(Bytes::from("d")).await.unwrap_err();
    assert!(matches!(incoming, TransportError::Partitioned { node_id: 1 }), "{incoming}");
    assert_eq!(one_handler.calls(), 1);
    assert_eq!(two_handler.calls(), 1);

    one.set_partitioned(2, false).unwrap();
    assert_eq!(one_to_two.call(Bytes::from("e")).await.unwrap(), echo_response(1, b"e"));
    assert_eq!(two_to_one.call(Bytes::from("f")).await.unwrap(), echo_response(2, b"f"));
}

#[tokio::test]
async fn partition_cuts_only_the_named_peer() {
    // Proves a partition is per peer: node 1 cut from node 2 still reaches 3.
    let ca = ClusterCa::generate("faults").unwrap();
    let one = bind(&ca, 1, test_config());
    let two = bind(&ca, 2, test_config());
    let three = bind(&ca, 3, test_config());
    serve_echo(&two);
    serve_echo(&three);
    one.faults().set_partitioned(2, true).unwrap();
    assert!(one.peer(2, address(&two)).call(Bytes::from("x")).await.is_err());
    assert!(one.peer(3, address(&three)).call(Bytes::from("x")).await.is_ok());
}

#[tokio::test]
async fn partition_switch_needs_faults_enabled() {
    // Proves a transport built with default configuration cannot be
    // partitioned: the switch reports FaultsDisabled.
    let ca = ClusterCa::generate("faults").unwrap();
    let node = bind(&ca, 1, TransportConfig::default());
    let error = node.set_partitioned(2, true).unwrap_err();
    assert!(matches!(error, TransportError::FaultsDisabled), "{error}");
    assert!(!node.faults().is_partitioned(2));
}
