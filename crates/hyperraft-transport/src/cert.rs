//! The cluster certificate authority: the one key every node trusts.
//!
//! A cluster has a self-signed CA ([`ClusterCa`]) that signs one leaf
//! certificate per node. Nodes trust only that CA, so a certificate from
//! any other CA (another cluster, a public CA) is refused at the TLS
//! handshake. The CA is saved as `ca.pem` and `ca.key` and can be loaded
//! back to issue more node certificates later (`hyperraft cert issue`).
//!
//! All keys are ECDSA P-256: small signatures, fast handshakes, and
//! supported by every TLS stack.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use thiserror::Error;

use crate::der;
use crate::node_identity::{self, NodeIdentity};
use crate::pem_file::{self, Secrecy};

/// File name of the CA certificate inside a certificate directory.
pub const CA_CERTIFICATE_FILE: &str = "ca.pem";
/// File name of the CA private key inside a certificate directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// X.509 bounds a common name to 64 characters (RFC 5280 `ub-common-name`).
const NAME_BYTES_MAX: usize = 64;
/// A node certificate names a handful of addresses; more is a mistake.
const HOSTS_MAX: usize = 32;
/// DNS names are at most 253 characters.
const HOST_BYTES_MAX: usize = 253;
/// There is no rotation tooling yet, so certificates are long-lived; a
/// cluster must not stop on its fifth birthday.
const CA_VALIDITY_YEARS: i32 = 30;
const NODE_VALIDITY_YEARS: i32 = 10;

/// Everything that can go wrong creating, saving or loading certificates.
#[derive(Debug, Error)]
pub enum CertError {
    /// The CA name is empty, too long, or has control characters.
    #[error("invalid CA name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A host given for a node certificate is unusable.
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost {
        /// The rejected host.
        host: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// More hosts than a node certificate may name.
    #[error("{count} hosts given, at most {max} allowed")]
    TooManyHosts {
        /// Hosts given.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// Key generation or certificate signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM text could not be decoded.
    #[error("{what}: bad PEM: {reason}")]
    Pem {
        /// Which input was bad.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// A certificate's structure could not be read.
    #[error("{what}: not a readable X.509 certificate")]
    NotACertificate {
        /// Which input was bad.
        what: &'static str,
    },
    /// A certificate lacks the single common name this crate relies on.
    #[error("{what}: certificate has no single common name")]
    MissingCommonName {
        /// Which input was bad.
        what: &'static str,
    },
    /// A node certificate's common name is not `node-{id}`.
    #[error("certificate common name {common_name:?} is not node-{{id}}")]
    NotANodeCertificate {
        /// The common name found.
        common_name: String,
    },
    /// A certificate names a different node than expected.
    #[error("certificate is for node {found}, expected node {expected}")]
    NodeIdMismatch {
        /// The node id asked for.
        expected: u64,
        /// The node id in the certificate.
        found: u64,
    },
    /// A private key does not belong to the certificate beside it.
    #[error("{what}: private key does not match the certificate")]
    KeyMismatch {
        /// Which pair disagreed.
        what: &'static str,
    },
    /// A certificate issued by a reloaded CA would not chain to it.
    #[error("issued certificate's issuer does not match the CA subject")]
    IssuerMismatch,
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Saving would overwrite an existing file.
    #[error("{} already exists; refusing to overwrite it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file is too large to be one of this crate's PEM files.
    #[error("{} is larger than {bytes_max} bytes", path.display())]
    FileTooLarge {
        /// The file involved.
        path: PathBuf,
        /// The bound.
        bytes_max: u64,
    },
}

/// A cluster's certificate authority: its certificate and signing key.
pub struct ClusterCa {
    name: String,
    certificate_pem: String,
    certificate_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    // The signing key stays out of logs.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("ClusterCa").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Creates a new self-signed CA whose subject common name is `name`.
    pub fn generate(name: &str) -> Result<ClusterCa, CertError> {
        validate_name(name)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let params = ca_params(name);
        let certificate = params.self_signed(&key)?;
        Ok(ClusterCa {
            name: name.to_string(),
            certificate_pem: certificate.pem(),
            certificate_der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Rebuilds a CA from its PEM certificate and PEM (PKCS#8) key, checking
    /// that the key belongs to the certificate.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<ClusterCa, CertError> {
        let what = "CA certificate";
        let certificate_der =
            CertificateDer::from_pem_slice(certificate_pem.as_bytes()).map_err(|error| pem_error(what, error))?;
        let key =
            KeyPair::from_pem(key_pem).map_err(|error| CertError::Pem { what: "CA key", reason: error.to_string() })?;
        let fields = der::certificate_fields(&certificate_der).ok_or(CertError::NotACertificate { what })?;
        if fields.subject_public_key_info != key.subject_public_key_info().as_slice() {
            return Err(CertError::KeyMismatch { what: "CA" });
        }
        let name = der::common_name(fields.subject).ok_or(CertError::MissingCommonName { what })?;
        validate_name(name)?;
        // The issuer fields are rebuilt the way `generate` built them; the
        // check in `issue_node` proves the rebuilt subject is byte-identical.
        let name = name.to_string();
        let params = ca_params(&name);
        Ok(ClusterCa {
            name,
            certificate_pem: certificate_pem.to_string(),
            certificate_der,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads `ca.pem` and `ca.key` from `directory`.
    pub fn load(directory: &Path) -> Result<ClusterCa, CertError> {
        let certificate_pem = pem_file::read_bounded(&directory.join(CA_CERTIFICATE_FILE))?;
        let key_pem = pem_file::read_bounded(&directory.join(CA_KEY_FILE))?;
        ClusterCa::from_pem(&certificate_pem, &key_pem)
    }

    /// Writes `ca.pem` (0644) and `ca.key` (0600) into `directory`, creating
    /// it if needed. Refuses to overwrite either file.
    pub fn save(&self, directory: &Path) -> Result<(), CertError> {
        pem_file::create_directory(directory)?;
        let certificate_path = directory.join(CA_CERTIFICATE_FILE);
        let key_path = directory.join(CA_KEY_FILE);
        // Check both first so a refused save leaves no half-written pair.
        for path in [&certificate_path, &key_path] {
            if path.exists() {
                return Err(CertError::Exists { path: path.clone() });
            }
        }
        pem_file::write_new(&certificate_path, &self.certificate_pem, Secrecy::Public)?;
        let key_pem = self.issuer.key().serialize_pem();
        pem_file::write_new(&key_path, &key_pem, Secrecy::Private)
    }

    /// Issues a certificate for node `node_id`, valid for TLS server and
    /// client use. Its subject common name is `node-{id}` and its subject
    /// alternative names are `hosts` (DNS names or IP addresses) plus the DNS
    /// name `node-{id}.hyperraft`, which peers dial it by.
    pub fn issue_node(&self, node_id: u64, hosts: &[String]) -> Result<NodeIdentity, CertError> {
        validate_hosts(hosts)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let certificate = node_params(node_id, hosts)?.signed_by(&key, &self.issuer)?;
        self.check_issued(certificate.der())?;
        Ok(NodeIdentity::new(node_id, certificate.pem(), certificate.der().clone(), key.serialize_pem()))
    }

    /// The CA's name (its subject common name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CA certificate in PEM, as distributed to every node.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate in DER.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate_der
    }

    /// A certificate chains to this CA only if its issuer name equals the
    /// CA's subject byte for byte; a reloaded CA rebuilds that name, so
    /// every issued certificate is checked before it is handed out.
    fn check_issued(&self, issued: &[u8]) -> Result<(), CertError> {
        let what = "issued certificate";
        let issued = der::certificate_fields(issued).ok_or(CertError::NotACertificate { what })?;
        let ca = der::certificate_fields(&self.certificate_der)
            .ok_or(CertError::NotACertificate { what: "CA certificate" })?;
        if issued.issuer != ca.subject {
            return Err(CertError::IssuerMismatch);
        }
        Ok(())
    }
}

pub(crate) fn pem_error(what: &'static str, error: rustls::pki_types::pem::Error) -> CertError {
    CertError::Pem { what, reason: error.to_string() }
}

fn validate_name(name: &str) -> Result<(), CertError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > NAME_BYTES_MAX {
        Some("longer than 64 bytes")
    } else if name.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CertError::InvalidName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}

fn validate_hosts(hosts: &[String]) -> Result<(), CertError> {
    if hosts.len() > HOSTS_MAX {
        return Err(CertError::TooManyHosts { count: hosts.len(), max: HOSTS_MAX });
    }
    for host in hosts {
        let reason = if host.is_empty() {
            Some("empty")
        } else if host.len() > HOST_BYTES_MAX {
            Some("longer than 253 bytes")
        } else if node_identity::is_reserved_host(host) {
            // A node naming another node's server name could impersonate it.
            Some("names under .hyperraft are reserved for node identities")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CertError::InvalidHost { host: host.clone(), reason });
        }
    }
    Ok(())
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    // Path length 0: the CA signs node certificates, never other CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, CA_VALIDITY_YEARS);
    params
}

fn node_params(node_id: u64, hosts: &[String]) -> Result<CertificateParams, CertError> {
    let mut names = hosts.to_vec();
    names.push(node_identity::server_name(node_id));
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, node_identity::common_name(node_id));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every node is both a server (it is called) and a client (it calls).
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, NODE_VALIDITY_YEARS);
    Ok(params)
}

/// Valid from January 1st of last year (so clock skew between nodes never
/// makes a fresh certificate "not yet valid") to January 1st, `years` from now.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let year = current_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

/// The current year, give or take a day; [`set_validity`] has a year of slack.
fn current_year() -> i32 {
    const SECONDS_PER_YEAR: u64 = 31_556_952;
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    1970 + i32::try_from(seconds / SECONDS_PER_YEAR).unwrap_or(0)
}

#[cfg(test)]
mod tests;
