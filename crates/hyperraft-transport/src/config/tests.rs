use std::time::Duration;

use super::{ConfigError, TransportConfig};

#[test]
fn default_config_is_valid() {
    // Proves the defaults satisfy every rule `validate` enforces.
    assert_eq!(TransportConfig::default().validate(), Ok(()));
}

#[test]
fn zero_bounds_are_named() {
    // Proves each zero bound is rejected with the name of its field.
    let config = TransportConfig { concurrent_streams_max: 0, ..TransportConfig::default() };
    assert_eq!(config.validate(), Err(ConfigError::Zero { field: "concurrent_streams_max" }));
    let config = TransportConfig { call_timeout: Duration::ZERO, ..TransportConfig::default() };
    assert_eq!(config.validate(), Err(ConfigError::Zero { field: "call_timeout" }));
    let config = TransportConfig { socket_buffer_bytes: 0, ..TransportConfig::default() };
    assert_eq!(config.validate(), Err(ConfigError::Zero { field: "socket_buffer_bytes" }));
}

#[test]
fn inbound_budget_must_hold_one_message() {
    // Proves a budget smaller than one largest message is rejected, since
    // such a message could never be read.
    let config = TransportConfig { message_bytes_max: 1024, inbound_bytes_max: 1023, ..TransportConfig::default() };
    assert!(matches!(config.validate(), Err(ConfigError::InboundBelowMessage { .. })));
}

#[test]
fn keep_alive_must_be_below_idle_timeout() {
    // Proves keep-alives that cannot beat the idle timeout are rejected.
    let config = TransportConfig {
        keep_alive_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..TransportConfig::default()
    };
    assert!(matches!(config.validate(), Err(ConfigError::KeepAliveNotBelowIdle { .. })));
}
