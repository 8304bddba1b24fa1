//! One node's transport: a single QUIC endpoint that serves requests and
//! calls other nodes.
//!
//! A node binds one UDP socket. The same quinn endpoint accepts
//! connections (server side, [`Transport::serve`]) and dials peers (client
//! side, [`Transport::peer`]), so a node needs one port and one set of TLS
//! settings. Requests are answered by a [`Handler`]; calls go through
//! [`Peer`] handles that each keep one connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, VarInt};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, TransportConfig};
use crate::error::TransportError;
use crate::fault::FaultSwitch;
use crate::framing::CloseCode;
use crate::handler::Handler;
use crate::peer::Peer;
use crate::server::{self, ServerContext};
use crate::tls::{TlsError, TlsIdentity};

/// A node's endpoint. Cheap to clone; all clones share the socket.
///
/// Dropping the last clone closes the endpoint abruptly (peers see the
/// connection closed); [`Transport::close`] does the same but waits until
/// peers have been told.
#[derive(Clone, Debug)]
pub struct Transport {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    node_id: u64,
    endpoint: quinn::Endpoint,
    config: TransportConfig,
    faults: FaultSwitch,
    runtime: Handle,
    /// The accept loop, once [`Transport::serve`] has started it.
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.endpoint.close(CloseCode::Shutdown.code(), b"transport dropped");
        if let Some(task) = lock(&self.accept_task).take() {
            task.abort();
        }
    }
}

impl Transport {
    /// Binds a UDP socket at `address` (port 0 picks a free port) and
    /// prepares mutual TLS from `identity`. Must run inside a Tokio runtime;
    /// the endpoint's tasks run on that runtime.
    pub fn bind(
        address: SocketAddr,
        identity: TlsIdentity,
        config: TransportConfig,
    ) -> Result<Transport, TransportError> {
        config.validate()?;
        let runtime = Handle::try_current()
            .map_err(|error| TransportError::Bind { address, source: std::io::Error::other(error) })?;
        let server_config = quic_server_config(&identity, &config)?;
        let socket =
            bind_udp(address, config.socket_buffer_bytes).map_err(|source| TransportError::Bind { address, source })?;
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| TransportError::Bind { address, source })?;
        endpoint.set_default_client_config(quic_client_config(&identity, &config)?);
        Ok(Transport {
            shared: Arc::new(Shared {
                node_id: identity.node_id(),
                endpoint,
                faults: FaultSwitch::new(config.faults_enabled),
                config,
                runtime,
                accept_task: Mutex::new(None),
            }),
        })
    }

    /// Starts answering incoming requests with `handler`. Until this is
    /// called, connection attempts wait unanswered (and time out). Can be
    /// called once.
    pub fn serve(&self, handler: Arc<dyn Handler>) -> Result<(), TransportError> {
        let mut accept_task = lock(&self.shared.accept_task);
        if accept_task.is_some() {
            return Err(TransportError::AlreadyServing);
        }
        let config = &self.shared.config;
        let context = Arc::new(ServerContext {
            endpoint: self.shared.endpoint.clone(),
            handler,
            faults: self.shared.faults.clone(),
            message_bytes_max: config.message_bytes_max,
            connect_timeout: config.connect_timeout,
            connection_slots: Arc::new(Semaphore::new(config.connections_max as usize)),
            inbound_budget: Arc::new(Semaphore::new(config.inbound_bytes_max)),
        });
        *accept_task = Some(self.shared.runtime.spawn(server::accept_loop(context)));
        Ok(())
    }

    /// A handle for calling node `node_id` at `address`. Each `Peer` (and
    /// its clones) keeps one connection, opened on the first call; call this
    /// once per node and clone the result rather than calling it per
    /// request.
    pub fn peer(&self, node_id: u64, address: SocketAddr) -> Peer {
        Peer::new(node_id, address, self.shared.endpoint.clone(), &self.shared.config, self.shared.faults.clone())
    }

    /// This node's id, from its certificate.
    pub fn node_id(&self) -> u64 {
        self.shared.node_id
    }

    /// The bound socket address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.endpoint.local_addr()
    }

    /// The configuration this transport runs with.
    pub fn config(&self) -> &TransportConfig {
        &self.shared.config
    }

    /// Connections currently open, incoming and outgoing.
    pub fn open_connections(&self) -> usize {
        self.shared.endpoint.open_connections()
    }

    /// The fault-injection switch shared by this transport and its peers.
    pub fn faults(&self) -> FaultSwitch {
        self.shared.faults.clone()
    }

    /// Partitions this node from `node_id` (or heals it). Fails with
    /// [`TransportError::FaultsDisabled`] unless the configuration enabled
    /// fault injection.
    pub fn set_partitioned(&self, node_id: u64, partitioned: bool) -> Result<(), TransportError> {
        self.shared.faults.set_partitioned(node_id, partitioned)
    }

    /// Closes every connection, telling peers, stops serving, and waits
    /// until peers have been notified. Calls afterwards fail with
    /// [`TransportError::Closed`].
    pub async fn close(&self) {
        self.shared.endpoint.close(CloseCode::Shutdown.code(), b"transport closed");
        self.shared.endpoint.wait_idle().await;
        if let Some(task) = lock(&self.shared.accept_task).take() {
            // The loop has ended (accept yields nothing once closed); this
            // only reaps it.
            task.abort();
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (it only ever holds an `Option` that is swapped whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn quic_server_config(identity: &TlsIdentity, config: &TransportConfig) -> Result<quinn::ServerConfig, TransportError> {
    let tls = QuicServerConfig::try_from(Arc::new(identity.server_config()?)).map_err(TlsError::from)?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(tls));
    server_config.transport_config(quic_transport_config(config, config.concurrent_streams_max)?);
    Ok(server_config)
}

fn quic_client_config(identity: &TlsIdentity, config: &TransportConfig) -> Result<quinn::ClientConfig, TransportError> {
    let tls = QuicClientConfig::try_from(Arc::new(identity.client_config()?)).map_err(TlsError::from)?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(tls));
    // Only callers open streams: a server opening one towards a caller
    // would never be read, so callers grant servers no stream credit.
    client_config.transport_config(quic_transport_config(config, 0)?);
    Ok(client_config)
}

/// A UDP socket bound to `address`, with buffers of `buffer_bytes` asked
/// for. The kernel may grant less (up to `net.core.rmem_max`); that is
/// logged, not refused.
fn bind_udp(address: SocketAddr, buffer_bytes: usize) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(address)?;
    let options = socket2::SockRef::from(&socket);
    options.set_recv_buffer_size(buffer_bytes)?;
    options.set_send_buffer_size(buffer_bytes)?;
    // Linux reports twice what it grants (the doubling covers its bookkeeping).
    let granted = options.recv_buffer_size()?;
    if granted < buffer_bytes {
        tracing::info!(
            asked = buffer_bytes,
            granted,
            "the UDP receive buffer is smaller than asked; raise net.core.rmem_max to avoid drops under load"
        );
    }
    Ok(socket)
}

fn quic_transport_config(
    config: &TransportConfig,
    incoming_streams_max: u32,
) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let idle_timeout = IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| ConfigError::IdleTimeoutTooLarge { idle_timeout: config.idle_timeout })?;
    // Bytes a peer may have sent that this side has not read yet, over the
    // whole connection. quinn's default is unbounded; reads stall only while
    // a request waits for inbound budget, so the same budget bounds this.
    let receive_window = VarInt::from_u64(config.inbound_bytes_max as u64).unwrap_or(VarInt::MAX);
    let mut transport = quinn::TransportConfig::default();
    transport
        .receive_window(receive_window)
        .max_concurrent_bidi_streams(VarInt::from_u32(incoming_streams_max))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(idle_timeout))
        .keep_alive_interval(Some(config.keep_alive_interval))
        .initial_rtt(config.initial_rtt);
    Ok(Arc::new(transport))
}

#[cfg(test)]
mod tests {
    /// Proves the socket's buffers are asked for: the receive buffer the
    /// kernel grants is at least what was asked, or all that
    /// `net.core.rmem_max` allows.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_udp_socket_gets_the_buffers_asked_for() {
        let allowed: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .expect("linux exposes rmem_max")
            .trim()
            .parse()
            .expect("a number");
        let asked = 1 << 20;
        let socket = super::bind_udp("127.0.0.1:0".parse().unwrap(), asked).unwrap();
        let granted = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        assert!(granted >= asked.min(allowed), "granted {granted}, asked {asked}, rmem_max {allowed}");
    }
}
