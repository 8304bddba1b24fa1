//! Certificate files: save, load, and issue from a reloaded CA.

use std::path::Path;

use bytes::Bytes;
use hyperraft_transport::{CertError, ClusterCa, NodeIdentity, TlsIdentity, Transport, TransportError};

use crate::support::{address, echo_response, loopback, serve_echo, test_config};

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn saved_certificates_reload_and_a_reloaded_ca_issues_trusted_nodes() {
    // Proves the PEM files round-trip (keys 0600, certificates 0644), and
    // that a node issued by the reloaded CA and a node issued before the
    // save complete mutual TLS with each other.
    let directory = tempfile::tempdir().unwrap();
    let ca = ClusterCa::generate("files").unwrap();
    ca.save(directory.path()).unwrap();
    ca.issue_node(1, &["127.0.0.1".to_string()]).unwrap().save(directory.path()).unwrap();
    #[cfg(unix)]
    {
        assert_eq!(mode(&directory.path().join("ca.key")), 0o600);
        assert_eq!(mode(&directory.path().join("node-1.key")), 0o600);
        assert_eq!(mode(&directory.path().join("ca.pem")), 0o644);
        assert_eq!(mode(&directory.path().join("node-1.pem")), 0o644);
    }

    let reloaded = ClusterCa::load(directory.path()).unwrap();
    assert_eq!(reloaded.name(), "files");
    assert_eq!(reloaded.certificate_pem(), ca.certificate_pem());
    reloaded.issue_node(2, &["localhost".to_string()]).unwrap().save(directory.path()).unwrap();

    let one = TlsIdentity::load(directory.path(), 1).unwrap();
    let two = TlsIdentity::load(directory.path(), 2).unwrap();
    let one = Transport::bind(loopback(), one, test_config()).unwrap();
    let two = Transport::bind(loopback(), two, test_config()).unwrap();
    serve_echo(&one);
    serve_echo(&two);
    let response = two.peer(1, address(&one)).call(Bytes::from("a")).await.unwrap();
    assert_eq!(response, echo_response(2, b"a"));
    let response = one.peer(2, address(&two)).call(Bytes::from("b")).await.unwrap();
    assert_eq!(response, echo_response(1, b"b"));
}

#[test]
fn save_refuses_to_overwrite_existing_files() {
    // Proves a second `cert init` cannot replace the CA key (which would
    // orphan every issued certificate), nor a node's files.
    let directory = tempfile::tempdir().unwrap();
    let ca = ClusterCa::generate("once").unwrap();
    ca.save(directory.path()).unwrap();
    let before = std::fs::read(directory.path().join("ca.key")).unwrap();
    let error = ClusterCa::generate("twice").unwrap().save(directory.path()).unwrap_err();
    assert!(matches!(error, CertError::Exists { .. }), "{error}");
    assert_eq!(std::fs::read(directory.path().join("ca.key")).unwrap(), before);

    let node = ca.issue_node(1, &[]).unwrap();
    node.save(directory.path()).unwrap();
    let error = node.save(directory.path()).unwrap_err();
    assert!(matches!(error, CertError::Exists { .. }), "{error}");
}

#[test]
fn loading_checks_the_node_id_in_the_certificate() {
    // Proves files renamed to another node's names are refused: the id in
    // the certificate wins over the file name.
    let directory = tempfile::tempdir().unwrap();
    let ca = ClusterCa::generate("ids").unwrap();
    let node = ca.issue_node(1, &[]).unwrap();
    std::fs::write(directory.path().join("node-5.pem"), node.certificate_pem()).unwrap();
    std::fs::write(directory.path().join("node-5.key"), node.key_pem()).unwrap();
    let error = NodeIdentity::load(directory.path(), 5).unwrap_err();
    assert!(matches!(error, CertError::NodeIdMismatch { expected: 5, found: 1 }), "{error}");
}

#[test]
fn missing_and_garbage_files_are_typed_errors() {
    // Proves absent files and non-PEM contents give Io and Pem errors
    // naming what failed, never a panic.
    let directory = tempfile::tempdir().unwrap();
    let error = ClusterCa::load(directory.path()).unwrap_err();
    assert!(matches!(error, CertError::Io { .. }), "{error}");
    std::fs::write(directory.path().join("ca.pem"), "not a certificate").unwrap();
    std::fs::write(directory.path().join("ca.key"), "not a key").unwrap();
    let error = ClusterCa::load(directory.path()).unwrap_err();
    assert!(matches!(error, CertError::Pem { .. }), "{error}");
    let error = TlsIdentity::load(directory.path(), 1).unwrap_err();
    assert!(matches!(error, hyperraft_transport::TlsError::Cert(_)), "{error}");
    // Transport errors wrap TLS errors transparently for callers of bind.
    let _: fn(hyperraft_transport::TlsError) -> TransportError = TransportError::from;
}
