//! Mutual TLS between nodes: both sides prove they hold a certificate
//! signed by the cluster CA.
//!
//! [`TlsIdentity`] holds what one node needs: the CA certificate (its only
//! trust anchor), its own certificate chain and its private key. From these
//! it builds a rustls server configuration that *requires* a client
//! certificate chaining to the CA, and a client configuration that trusts
//! only the CA and presents the node's certificate. A peer with a
//! certificate from any other CA, or with none, fails the handshake.
//!
//! The ring crypto provider is passed explicitly rather than installed as a
//! process default, so linking another provider elsewhere in the binary
//! cannot change what this transport negotiates. Only TLS 1.3 is offered:
//! QUIC requires it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;

use crate::cert::{pem_error, CertError, CA_CERTIFICATE_FILE};
use crate::node_identity::{self, NodeIdentity};
use crate::pem_file;

/// The ALPN protocol both sides must agree on; a peer speaking anything
/// else (or a later, incompatible version of this framing) is refused.
pub const ALPN_PROTOCOL: &[u8] = b"hyperraft/1";

/// Why a TLS identity or configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A certificate or key could not be read.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The node certificate PEM holds no certificate.
    #[error("node certificate PEM holds no certificate")]
    MissingCertificate,
    /// The node's own certificate does not verify under the cluster CA, so
    /// every peer would refuse it; caught at startup instead.
    #[error("node {node_id}'s certificate is not valid under the cluster CA ({role}): {source}")]
    Untrusted {
        /// The node whose certificate failed.
        node_id: u64,
        /// Whether it failed as a server or as a client certificate.
        role: &'static str,
        /// rustls's verdict.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the certificates, key or protocol settings.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("TLS verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The TLS configuration lacks the cipher suite QUIC needs for its
    /// initial packets.
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// A node's TLS material: the cluster CA, its certificate chain and key.
pub struct TlsIdentity {
    node_id: u64,
    ca_certificate: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    // The private key stays out of logs.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("TlsIdentity").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            node_id: self.node_id,
            ca_certificate: self.ca_certificate.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// Builds an identity from the CA certificate and a node identity.
    pub fn new(ca_certificate_pem: &str, node: &NodeIdentity) -> Result<TlsIdentity, TlsError> {
        TlsIdentity::from_pem(ca_certificate_pem, node.certificate_pem(), node.key_pem())
    }

    /// Builds an identity from PEM texts: the CA certificate, the node's
    /// certificate chain (leaf first) and its PKCS#8 key. Fails unless the
    /// node's certificate verifies under the CA as both server and client.
    pub fn from_pem(ca_certificate_pem: &str, certificate_pem: &str, key_pem: &str) -> Result<TlsIdentity, TlsError> {
        let ca_certificate = CertificateDer::from_pem_slice(ca_certificate_pem.as_bytes())
            .map_err(|error| pem_error("CA certificate", error))?;
        let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| pem_error("node certificate", error))?;
        let leaf = chain.first().ok_or(TlsError::MissingCertificate)?;
        let node_id = node_identity::node_id_of_certificate(leaf)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|error| pem_error("node key", error))?;
        let identity = TlsIdentity { node_id, ca_certificate, chain, key };
        identity.check_trusted()?;
        // Building both configurations once surfaces a key that does not
        // match the certificate now rather than at the first handshake.
        identity.server_config()?;
        identity.client_config()?;
        Ok(identity)
    }

    /// Loads `ca.pem`, `node-{id}.pem` and `node-{id}.key` from `directory`.
    pub fn load(directory: &Path, node_id: u64) -> Result<TlsIdentity, TlsError> {
        let ca_certificate_pem = pem_file::read_bounded(&directory.join(CA_CERTIFICATE_FILE))?;
        let node = NodeIdentity::load(directory, node_id)?;
        TlsIdentity::new(&ca_certificate_pem, &node)
    }

    /// The node id in this identity's certificate.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// A server configuration that requires every client to present a
    /// certificate signed by the cluster CA.
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone()).build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
        Ok(config)
    }

    /// A client configuration that trusts only the cluster CA and presents
    /// this node's certificate.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
        Ok(config)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_certificate.clone())?;
        Ok(Arc::new(roots))
    }

    /// Verifies the node's own chain the way its peers will: as a server
    /// named `node-{id}.hyperraft` and as a client.
    fn check_trusted(&self) -> Result<(), TlsError> {
        let provider = provider();
        let (leaf, intermediates) = self.chain.split_first().ok_or(TlsError::MissingCertificate)?;
        let now = UnixTime::now();
        let untrusted = |role, source| TlsError::Untrusted { node_id: self.node_id, role, source };
        let server_name = ServerName::try_from(node_identity::server_name(self.node_id))
            .map_err(|_| untrusted("server", rustls::Error::General("bad server name".into())))?;
        WebPkiServerVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()?
            .verify_server_cert(leaf, intermediates, &server_name, &[], now)
            .map_err(|source| untrusted("server", source))?;
        WebPkiClientVerifier::builder_with_provider(self.roots()?, provider)
            .build()?
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|source| untrusted("client", source))?;
        Ok(())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
