use super::{CertError, ClusterCa};
use crate::node_identity::{self, NodeIdentity};

#[test]
fn issued_certificate_names_its_node() {
    // Proves a node certificate carries its id in the common name, which
    // the serving side reads back, and that its key matches it.
    let ca = ClusterCa::generate("test cluster").unwrap();
    let node = ca.issue_node(42, &["127.0.0.1".to_string()]).unwrap();
    assert_eq!(node.node_id(), 42);
    assert_eq!(node_identity::node_id_of_certificate(node.certificate_der()).unwrap(), 42);
    let reparsed = NodeIdentity::from_pem(node.certificate_pem(), node.key_pem()).unwrap();
    assert_eq!(reparsed.node_id(), 42);
}

#[test]
fn ca_round_trips_through_pem() {
    // Proves a CA rebuilt from its PEM texts keeps its name and certificate.
    let ca = ClusterCa::generate("round trip").unwrap();
    let key_pem = ca.issuer.key().serialize_pem();
    let reloaded = ClusterCa::from_pem(ca.certificate_pem(), &key_pem).unwrap();
    assert_eq!(reloaded.name(), "round trip");
    assert_eq!(reloaded.certificate_der(), ca.certificate_der());
}

#[test]
fn ca_key_from_another_ca_is_refused() {
    // Proves loading a CA certificate with someone else's key fails with
    // KeyMismatch instead of issuing certificates nobody trusts.
    let first = ClusterCa::generate("first").unwrap();
    let second = ClusterCa::generate("second").unwrap();
    let wrong_key = second.issuer.key().serialize_pem();
    let error = ClusterCa::from_pem(first.certificate_pem(), &wrong_key).unwrap_err();
    assert!(matches!(error, CertError::KeyMismatch { .. }), "{error}");
}

#[test]
fn node_key_from_another_node_is_refused() {
    // Proves a node certificate paired with another node's key is refused.
    let ca = ClusterCa::generate("pairs").unwrap();
    let one = ca.issue_node(1, &[]).unwrap();
    let two = ca.issue_node(2, &[]).unwrap();
    let error = NodeIdentity::from_pem(one.certificate_pem(), two.key_pem()).unwrap_err();
    assert!(matches!(error, CertError::KeyMismatch { .. }), "{error}");
}

#[test]
fn bad_names_and_hosts_are_refused() {
    // Proves invalid CA names, reserved or empty hosts and too many hosts
    // are typed errors.
    assert!(matches!(ClusterCa::generate(""), Err(CertError::InvalidName { .. })));
    assert!(matches!(ClusterCa::generate(&"x".repeat(65)), Err(CertError::InvalidName { .. })));
    let ca = ClusterCa::generate("hosts").unwrap();
    for host in ["node-2.hyperraft", "NODE-2.HyperRaft.", "hyperraft", ""] {
        let error = ca.issue_node(1, &[host.to_string()]).unwrap_err();
        assert!(matches!(error, CertError::InvalidHost { .. }), "{host}: {error}");
    }
    let hosts: Vec<String> = (0..33).map(|index| format!("h{index}.example")).collect();
    assert!(matches!(ca.issue_node(1, &hosts), Err(CertError::TooManyHosts { .. })));
}

#[test]
fn node_common_names_have_one_spelling() {
    // Proves only the canonical `node-{id}` parses, so two spellings can
    // never name one node.
    assert_eq!(node_identity::parse_common_name("node-0"), Some(0));
    assert_eq!(node_identity::parse_common_name(&node_identity::common_name(u64::MAX)), Some(u64::MAX));
    for bad in ["node-", "node-01", "node-+1", "node--1", "node-1x", "Node-1", "1"] {
        assert_eq!(node_identity::parse_common_name(bad), None, "{bad}");
    }
}
