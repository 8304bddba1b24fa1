use std::time::Duration;

use crate::{ClientConfig, Error};

#[test]
fn defaults_with_an_endpoint_are_valid() {
    // Proves the defaults hold together: validate accepts them once an endpoint is given.
    ClientConfig::new(["127.0.0.1:7000"]).validate().expect("valid");
}

#[test]
fn each_broken_bound_is_refused_by_name() {
    // Proves validate names the field of each broken bound, so a bad configuration is found before connecting.
    let base = ClientConfig::new(["http://127.0.0.1:7000"]);
    let cases: Vec<(ClientConfig, &str)> = vec![
        (ClientConfig::default(), "endpoints"),
        (ClientConfig::new(["no-port"]), "endpoints"),
        (ClientConfig { request_timeout: Duration::ZERO, ..base.clone() }, "request_timeout"),
        {
            let mut config = base.clone();
            config.pool.channels_max = 0;
            (config, "channels_max")
        },
        {
            let mut config = base.clone();
            config.batching.max_items = 70_000;
            (config, "batching.max_items")
        },
        {
            let mut config = base.clone();
            config.retry.attempts = 0;
            (config, "retry.attempts")
        },
    ];
    for (config, field) in cases {
        match config.validate() {
            Err(Error::InvalidConfig(message)) => assert!(message.contains(field), "{message} names no {field}"),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
}
