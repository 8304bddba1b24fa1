//! Shared helpers: clusters of nodes on loopback and handlers that record
//! what they saw.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyperraft_transport::{
    ClusterCa, Handler, HandlerFuture, PeerInfo, RemoteError, TlsIdentity, Transport, TransportConfig, ALPN_PROTOCOL,
};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Port 0 on loopback: the kernel picks a free port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Defaults with fault injection on. Timeouts are generous: they only
/// keep a broken test from hanging, and no test measures time.
pub fn test_config() -> TransportConfig {
    TransportConfig { faults_enabled: true, ..TransportConfig::default() }
}

/// A TLS identity for `node_id` issued by `ca`, valid for 127.0.0.1.
pub fn identity(ca: &ClusterCa, node_id: u64) -> TlsIdentity {
    let node = ca.issue_node(node_id, &["127.0.0.1".to_string()]).unwrap();
    TlsIdentity::new(ca.certificate_pem(), &node).unwrap()
}

/// A bound transport for `node_id` of `ca`'s cluster.
pub fn bind(ca: &ClusterCa, node_id: u64, config: TransportConfig) -> Transport {
    Transport::bind(loopback(), identity(ca, node_id), config).unwrap()
}

/// The address peers dial to reach `transport`.
pub fn address(transport: &Transport) -> SocketAddr {
    transport.local_addr().unwrap()
}

/// Echoes each request prefixed with the caller's node id, and counts calls.
#[derive(Default)]
pub struct EchoHandler {
    pub calls: AtomicUsize,
}

impl EchoHandler {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Handler for EchoHandler {
    fn handle(&self, peer: PeerInfo, request: Bytes) -> HandlerFuture {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(echo_response(peer.node_id, &request)) })
    }
}

/// What [`EchoHandler`] answers to `request` from `node_id`.
pub fn echo_response(node_id: u64, request: &[u8]) -> Bytes {
    let mut response = format!("{node_id}:").into_bytes();
    response.extend_from_slice(request);
    Bytes::from(response)
}

/// Serves `transport` with a fresh [`EchoHandler`] and returns the handler.
pub fn serve_echo(transport: &Transport) -> Arc<EchoHandler> {
    let handler = Arc::new(EchoHandler::default());
    transport.serve(handler.clone()).unwrap();
    handler
}

/// A handler that always fails with `message`.
pub fn failing_handler(message: &'static str) -> Arc<dyn Handler> {
    Arc::new(move |_peer: PeerInfo, _request: Bytes| async move { Err::<Bytes, _>(RemoteError::new(message)) })
}

/// A rustls client that trusts `trusted_ca` and presents `client` (a PEM
/// certificate and key) or no certificate at all. It bypasses
/// `TlsIdentity`, which would refuse such a mismatched identity, so tests
/// can play a rogue peer.
pub fn raw_client_tls(trusted_ca: &ClusterCa, client: Option<(&str, &str)>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted_ca.certificate_der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((certificate_pem, key_pem)) => {
            let chain = vec![CertificateDer::from_pem_slice(certificate_pem.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    config
}

/// Makes one well-framed call with a raw quinn client, returning the raw
/// response bytes or the connection error that ended it.
pub async fn raw_call(
    tls: rustls::ClientConfig,
    server: SocketAddr,
    server_node_id: u64,
) -> Result<Vec<u8>, quinn::ConnectionError> {
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let quic = QuicClientConfig::try_from(Arc::new(tls)).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let server_name = format!("node-{server_node_id}.hyperraft");
    let exchange = async {
        let connection = endpoint.connect(server, &server_name).unwrap().await?;
        let (mut send, mut recv) = connection.open_bi().await?;
        let request = b"hello";
        let header = (request.len() as u32).to_le_bytes();
        // Write errors surface again, with their cause, on the read below.
        let _ = send.write_all(&header).await;
        let _ = send.write_all(request).await;
        let _ = send.finish();
        match recv.read_to_end(1024).await {
            Ok(response) => Ok(response),
            Err(quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(error))) => Err(error),
            Err(error) => panic!("unexpected stream error: {error}"),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("raw call hung")
}

/// Whether a connection error is a TLS alert (QUIC crypto error range).
pub fn is_tls_alert(error: &quinn::ConnectionError) -> bool {
    let code = match error {
        quinn::ConnectionError::ConnectionClosed(close) => close.error_code,
        quinn::ConnectionError::TransportError(error) => error.code,
        _ => return false,
    };
    u64::from(code) & !0xff == 0x100
}
