//! The bounds and timeouts of a [`Transport`](crate::Transport).
//!
//! Every queue, message and wait in this crate is limited by a field here,
//! and [`TransportConfig::validate`] rejects a configuration whose limits
//! contradict each other before any socket is opened.

use std::time::Duration;

use thiserror::Error;

/// Limits and timeouts for one node's transport, on both the serving and the
/// calling side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest request or response body, in bytes. A sender refuses to send
    /// more; a receiver refuses to read more and never allocates for it.
    /// Typed `u32` because the length prefix on the wire is 32 bits.
    pub message_bytes_max: u32,
    /// Bytes of request bodies that the serving side holds at once, over all
    /// connections and streams. A request waits (backpressure) until its
    /// body fits. Must be at least `message_bytes_max`, or a largest request
    /// could never be read.
    pub inbound_bytes_max: usize,
    /// Requests one peer may have in flight on one connection. A caller past
    /// the bound waits for a stream to free up (QUIC stream credit).
    pub concurrent_streams_max: u32,
    /// Incoming connections served at once; the next one is refused.
    pub connections_max: u32,
    /// How long establishing a connection (QUIC + TLS handshake) may take.
    pub connect_timeout: Duration,
    /// The round trip QUIC assumes before it has measured one. A lost first
    /// handshake packet (sent to a peer that is not listening yet, say) is
    /// sent again after about three times this, then at doubling intervals.
    /// The default is QUIC's own (RFC 9002: 333 ms, a retry after about a
    /// second); nodes of one cluster, a few milliseconds apart, can use
    /// much less. Too low only costs a few repeated handshake packets.
    pub initial_rtt: Duration,
    /// The UDP socket's receive and send buffers, asked of the kernel
    /// (which grants at most `net.core.rmem_max` / `wmem_max`). QUIC sends
    /// a large message as a burst of datagrams; the kernel drops those that
    /// arrive while the receive buffer is full, and each drop costs a loss
    /// recovery and halves the congestion window. Linux's default, 208 KiB,
    /// holds under a hundred datagrams: at full load the nodes dropped
    /// 70–200 in every 5 s.
    pub socket_buffer_bytes: usize,
    /// How long one call may take end to end, unless the caller passes its
    /// own timeout to [`Peer::call_with_timeout`](crate::Peer::call_with_timeout).
    pub call_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// How often an otherwise idle connection sends a keep-alive, so that a
    /// healthy but quiet peer is not dropped by `idle_timeout`.
    pub keep_alive_interval: Duration,
    /// Whether [`FaultSwitch`](crate::FaultSwitch) may partition peers.
    /// Off by default so that production nodes cannot be partitioned by a
    /// stray call; cluster tests turn it on.
    pub faults_enabled: bool,
}

/// 64 MiB: large enough for a snapshot chunk or a big batch of log entries.
const MESSAGE_BYTES_MAX_DEFAULT: u32 = 64 * 1024 * 1024;
/// Four largest messages in flight at once before backpressure.
const INBOUND_BYTES_MAX_DEFAULT: usize = 4 * MESSAGE_BYTES_MAX_DEFAULT as usize;
/// The semaphore behind `inbound_bytes_max` cannot hold more permits.
const INBOUND_BYTES_MAX_LIMIT: usize = tokio::sync::Semaphore::MAX_PERMITS;
/// QUIC encodes idle timeouts in milliseconds as a 62-bit integer.
const IDLE_TIMEOUT_MS_LIMIT: u128 = (1 << 62) - 1;

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            inbound_bytes_max: INBOUND_BYTES_MAX_DEFAULT,
            concurrent_streams_max: 1024,
            connections_max: 256,
            connect_timeout: Duration::from_secs(5),
            initial_rtt: Duration::from_millis(333),
            socket_buffer_bytes: 4 << 20,
            call_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(5),
            faults_enabled: false,
        }
    }
}

/// A [`TransportConfig`] whose limits are zero or contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A count or size that must be positive is zero.
    #[error("{field} must be greater than zero")]
    Zero {
        /// The offending field.
        field: &'static str,
    },
    /// `inbound_bytes_max` cannot hold even one largest message.
    #[error("inbound_bytes_max ({inbound_bytes_max}) is below message_bytes_max ({message_bytes_max})")]
    InboundBelowMessage {
        /// The configured inbound budget.
        inbound_bytes_max: usize,
        /// The configured message bound.
        message_bytes_max: u32,
    },
    /// `inbound_bytes_max` is beyond what the budget semaphore can count.
    #[error("inbound_bytes_max ({inbound_bytes_max}) exceeds {limit}")]
    InboundTooLarge {
        /// The configured inbound budget.
        inbound_bytes_max: usize,
        /// The largest budget supported.
        limit: usize,
    },
    /// The idle timeout does not fit QUIC's encoding.
    #[error("idle_timeout {idle_timeout:?} is too large for QUIC")]
    IdleTimeoutTooLarge {
        /// The configured idle timeout.
        idle_timeout: Duration,
    },
    /// Keep-alives as slow as the idle timeout cannot keep a connection open.
    #[error("keep_alive_interval ({keep_alive_interval:?}) must be below idle_timeout ({idle_timeout:?})")]
    KeepAliveNotBelowIdle {
        /// The configured keep-alive interval.
        keep_alive_interval: Duration,
        /// The configured idle timeout.
        idle_timeout: Duration,
    },
}

impl TransportConfig {
    /// Checks that every bound is positive and that the bounds agree.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_nonzero()?;
        if self.inbound_bytes_max < self.message_bytes_max as usize {
            return Err(ConfigError::InboundBelowMessage {
                inbound_bytes_max: self.inbound_bytes_max,
                message_bytes_max: self.message_bytes_max,
            });
        }
        if self.inbound_bytes_max > INBOUND_BYTES_MAX_LIMIT {
            return Err(ConfigError::InboundTooLarge {
                inbound_bytes_max: self.inbound_bytes_max,
                limit: INBOUND_BYTES_MAX_LIMIT,
            });
        }
        if self.idle_timeout.as_millis() > IDLE_TIMEOUT_MS_LIMIT {
            return Err(ConfigError::IdleTimeoutTooLarge { idle_timeout: self.idle_timeout });
        }
        if self.keep_alive_interval >= self.idle_timeout {
            return Err(ConfigError::KeepAliveNotBelowIdle {
                keep_alive_interval: self.keep_alive_interval,
                idle_timeout: self.idle_timeout,
            });
        }
        Ok(())
    }

    fn validate_nonzero(&self) -> Result<(), ConfigError> {
        let fields = [
            ("message_bytes_max", self.message_bytes_max == 0),
            ("inbound_bytes_max", self.inbound_bytes_max == 0),
            ("concurrent_streams_max", self.concurrent_streams_max == 0),
            ("connections_max", self.connections_max == 0),
            ("connect_timeout", self.connect_timeout.is_zero()),
            ("initial_rtt", self.initial_rtt.is_zero()),
            ("socket_buffer_bytes", self.socket_buffer_bytes == 0),
            ("call_timeout", self.call_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            ("keep_alive_interval", self.keep_alive_interval.is_zero()),
        ];
        match fields.into_iter().find(|(_, zero)| *zero) {
            Some((field, _)) => Err(ConfigError::Zero { field }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
