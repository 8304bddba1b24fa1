//! A node's certificate and private key, and how node ids are named in them.
//!
//! Node `N` has the subject common name `node-N` (read back by the serving
//! side to learn who is calling) and the DNS name `node-N.hyperraft` (the
//! TLS server name a caller verifies, so that dialing node 2's address and
//! reaching node 3 fails). Files are `node-N.pem` and `node-N.key`.

use std::fmt;
use std::path::Path;

use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::cert::{pem_error, CertError};
use crate::der;
use crate::pem_file::{self, Secrecy};

/// Suffix of every node's TLS server name; reserved for node identities.
pub const NODE_DOMAIN: &str = "hyperraft";
const COMMON_NAME_PREFIX: &str = "node-";

/// The subject common name of node `node_id`: `node-{id}`.
pub fn common_name(node_id: u64) -> String {
    format!("{COMMON_NAME_PREFIX}{node_id}")
}

/// The TLS server name of node `node_id`: `node-{id}.hyperraft`.
pub fn server_name(node_id: u64) -> String {
    format!("{COMMON_NAME_PREFIX}{node_id}.{NODE_DOMAIN}")
}

/// The node id in a common name `node-{id}`, written without sign or
/// leading zeros so that each id has exactly one spelling.
pub fn parse_common_name(common_name: &str) -> Option<u64> {
    let digits = common_name.strip_prefix(COMMON_NAME_PREFIX)?;
    let node_id: u64 = digits.parse().ok()?;
    (node_id.to_string() == digits).then_some(node_id)
}

/// The node id of a DER certificate, from its subject common name.
pub fn node_id_of_certificate(certificate: &[u8]) -> Result<u64, CertError> {
    let what = "node certificate";
    let fields = der::certificate_fields(certificate).ok_or(CertError::NotACertificate { what })?;
    let name = der::common_name(fields.subject).ok_or(CertError::MissingCommonName { what })?;
    parse_common_name(name).ok_or_else(|| CertError::NotANodeCertificate { common_name: name.to_string() })
}

/// Whether `host` falls under the reserved `.hyperraft` domain.
pub(crate) fn is_reserved_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == NODE_DOMAIN || host.ends_with(&format!(".{NODE_DOMAIN}"))
}

/// One node's certificate (signed by the cluster CA) and private key.
#[derive(Clone)]
pub struct NodeIdentity {
    node_id: u64,
    certificate_pem: String,
    certificate_der: CertificateDer<'static>,
    key_pem: String,
}

impl fmt::Debug for NodeIdentity {
    // The private key stays out of logs.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("NodeIdentity").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

impl NodeIdentity {
    pub(crate) fn new(
        node_id: u64,
        certificate_pem: String,
        certificate_der: CertificateDer<'static>,
        key_pem: String,
    ) -> NodeIdentity {
        NodeIdentity { node_id, certificate_pem, certificate_der, key_pem }
    }

    /// Rebuilds an identity from PEM texts, reading the node id from the
    /// certificate and checking that the key belongs to it.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<NodeIdentity, CertError> {
        let certificate_der = CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .map_err(|error| pem_error("node certificate", error))?;
        let node_id = node_id_of_certificate(&certificate_der)?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(|error| CertError::Pem { what: "node key", reason: error.to_string() })?;
        let fields =
            der::certificate_fields(&certificate_der).ok_or(CertError::NotACertificate { what: "node certificate" })?;
        if fields.subject_public_key_info != key.subject_public_key_info().as_slice() {
            return Err(CertError::KeyMismatch { what: "node" });
        }
        Ok(NodeIdentity::new(node_id, certificate_pem.to_string(), certificate_der, key_pem.to_string()))
    }

    /// Loads `node-{id}.pem` and `node-{id}.key` from `directory`, checking
    /// that the certificate is really node `node_id`'s.
    pub fn load(directory: &Path, node_id: u64) -> Result<NodeIdentity, CertError> {
        let certificate_path = directory.join(Self::certificate_file_name(node_id));
        let key_path = directory.join(Self::key_file_name(node_id));
        let certificate_pem = pem_file::read_bounded(&certificate_path)?;
        let key_pem = pem_file::read_bounded(&key_path)?;
        let identity = NodeIdentity::from_pem(&certificate_pem, &key_pem)?;
        if identity.node_id != node_id {
            return Err(CertError::NodeIdMismatch { expected: node_id, found: identity.node_id });
        }
        Ok(identity)
    }

    /// Writes `node-{id}.pem` (0644) and `node-{id}.key` (0600) into
    /// `directory`, creating it if needed. Refuses to overwrite either file.
    pub fn save(&self, directory: &Path) -> Result<(), CertError> {
        pem_file::create_directory(directory)?;
        let certificate_path = directory.join(Self::certificate_file_name(self.node_id));
        let key_path = directory.join(Self::key_file_name(self.node_id));
        for path in [&certificate_path, &key_path] {
            if path.exists() {
                return Err(CertError::Exists { path: path.clone() });
            }
        }
        pem_file::write_new(&certificate_path, &self.certificate_pem, Secrecy::Public)?;
        pem_file::write_new(&key_path, &self.key_pem, Secrecy::Private)
    }

    /// `node-{id}.pem`.
    pub fn certificate_file_name(node_id: u64) -> String {
        format!("{}.pem", common_name(node_id))
    }

    /// `node-{id}.key`.
    pub fn key_file_name(node_id: u64) -> String {
        format!("{}.key", common_name(node_id))
    }

    /// The node id this certificate was issued for.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The certificate in PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The certificate in DER.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate_der
    }

    /// The private key in PEM (PKCS#8). Secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}
