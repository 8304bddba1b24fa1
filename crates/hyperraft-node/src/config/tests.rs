use super::{ApiRole, ApiTlsPaths, NodeConfig, RaftTuning};

const BASE: &str = r#"
node_id = 1
peer_listen = "127.0.0.1:7001"
client_listen = "127.0.0.1:7101"
data_dir = "/tmp/hyperraft-1"

[tls]
ca_cert = "certs/ca.pem"
node_cert = "certs/node-1.pem"
node_key = "certs/node-1.key"
"#;

fn parse(extra: &str) -> NodeConfig {
    toml::from_str(&format!("{BASE}{extra}")).expect("the configuration parses")
}

#[test]
fn api_tokens_and_tls_parse_from_hashes_and_paths() {
    // Proves the [api] section: tokens are configured by name, role and SHA-256 (the token itself appears nowhere), roles are read/write/admin, and [api.tls] names the certificate and key files; without the section the API has no tokens and no TLS.
    let config = parse(
        r#"
[api.tls]
cert = "certs/node-1.pem"
key = "certs/node-1.key"

[[api.tokens]]
name = "agent-7"
role = "write"
sha256 = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"

[[api.tokens]]
name = "ops"
role = "admin"
sha256 = "4e738ca5563c06cfd0018299933d58db1dd8bf97f6973dc99bf6cdc64b5550bd"
"#,
    );
    config.validate().unwrap();
    let tokens = &config.api.tokens;
    assert_eq!((tokens[0].name.as_str(), tokens[0].role), ("agent-7", ApiRole::Write));
    assert_eq!(tokens[1].role, ApiRole::Admin);
    assert_eq!(config.api.tls, Some(ApiTlsPaths { cert: "certs/node-1.pem".into(), key: "certs/node-1.key".into() }));
    let open = parse("");
    assert!(open.api.tokens.is_empty() && open.api.tls.is_none());
}

#[test]
fn a_token_in_plain_text_an_unknown_role_or_a_duplicate_name_is_refused() {
    // Proves the configuration never accepts a token where its hash belongs (anything but 64 hex digits is refused, naming the command that makes the hash), nor an unknown role or key, nor two tokens of one name.
    let plain = parse("[[api.tokens]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"hrt_my-secret-token\"\n");
    let refused = plain.validate().unwrap_err().to_string();
    assert!(refused.contains("api.tokens[0].sha256") && refused.contains("hyperraft token hash"), "{refused}");
    let hash = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";
    let twice = parse(&format!(
        "[[api.tokens]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"{hash}\"\n[[api.tokens]]\nname = \"a\"\nrole = \"write\"\nsha256 = \"{hash}\"\n"
    ));
    assert!(twice.validate().unwrap_err().to_string().contains("used twice"));
    let role = format!("{BASE}[[api.tokens]]\nname = \"a\"\nrole = \"owner\"\nsha256 = \"{hash}\"\n");
    assert!(toml::from_str::<NodeConfig>(&role).is_err());
    let token_key = format!("{BASE}[[api.tokens]]\nname = \"a\"\nrole = \"read\"\ntoken = \"secret\"\n");
    assert!(toml::from_str::<NodeConfig>(&token_key).is_err(), "a `token` key is not accepted");
}

#[test]
fn agent_pools_parse_with_defaults_and_need_an_api() {
    // Proves [[agents.pools]] entries parse with their command, args, env and bounds, unset fields take the defaults, and pools without client_listen are refused.
    let config = parse(
        r#"
[[agents.pools]]
agent_type = "summarize"
command = "/usr/bin/agent"
args = ["--fast"]
env = { MODEL = "small" }
min = 2
max = 8
wave_size = 3
"#,
    );
    config.validate().unwrap();
    let pool = &config.agents.pools[0];
    assert_eq!((pool.agent_type.as_str(), pool.min, pool.max, pool.wave_size), ("summarize", 2, 8, 3));
    assert_eq!((pool.args.clone(), pool.env["MODEL"].as_str()), (vec!["--fast".to_string()], "small"));
    assert_eq!(pool.spawn_batch, crate::pools::PoolConfig::new("x", "y", 0, 1).spawn_batch);
    let without_api = NodeConfig { client_listen: None, ..config };
    assert!(without_api.validate().unwrap_err().to_string().contains("agents.pools needs client_listen"));
}

#[test]
fn fault_control_is_off_unless_the_testing_section_turns_it_on() {
    // Proves a configuration without [testing] cannot partition the node, and that `fault_control = true` in [testing] is what enables it (unknown keys there are refused).
    assert!(!parse("").testing.fault_control);
    assert!(parse("[testing]\nfault_control = true\n").testing.fault_control);
    assert!(toml::from_str::<NodeConfig>(&format!("{BASE}[testing]\nfault_contrl = true\n")).is_err());
}

#[test]
fn the_module_doc_example_parses_as_a_node_config() {
    // Proves the TOML example in this module's doc is a valid NodeConfig whose top-level keys stay top-level (`data_dir` once sat under `[client_addresses]`): the test reads the example out of config.rs itself, so it cannot drift from the doc.
    let source = include_str!("../config.rs");
    let example: String = source
        .lines()
        .skip_while(|line| *line != "//! ```toml")
        .skip(1)
        .take_while(|line| *line != "//! ```")
        .map(|line| format!("{}\n", line.strip_prefix("//!").unwrap_or(line).strip_prefix(' ').unwrap_or("")))
        .collect();
    assert!(example.contains("node_id = 1"), "the example was found in the module doc:\n{example}");
    let config: NodeConfig = toml::from_str(&example).unwrap_or_else(|error| panic!("the doc example parses: {error}"));
    assert_eq!(config.data_dir, std::path::PathBuf::from("/var/lib/hyperraft/1"));
    assert_eq!(config.client_addresses.len(), 2, "only the node addresses are in [client_addresses]");
    assert_eq!(config.initial_members.len(), 3);
    assert_eq!(config.agents.pools.len(), 1);
    assert_eq!(config.raft, RaftTuning::default(), "the [raft] example shows the defaults, as it says");
}

/// Proves `raft.snapshot_after_log_bytes` is read from the file, defaults
/// to 1 GiB when absent, and a zero bound is refused.
#[test]
fn the_log_byte_bound_parses_and_zero_is_refused() {
    assert_eq!(parse("").raft.snapshot_after_log_bytes, 1 << 30);
    let small = parse("[raft]\nsnapshot_after_log_bytes = 65536\n");
    small.validate().unwrap();
    assert_eq!(small.raft.snapshot_after_log_bytes, 65536);
    let zero = parse("[raft]\nsnapshot_after_log_bytes = 0\n");
    assert!(zero.validate().unwrap_err().to_string().contains("raft.snapshot_after_log_bytes"));
}

/// Proves `raft.snapshot_write_bytes_per_second` is read from the file,
/// defaults to 128 MiB/s when absent, and a zero rate is refused.
#[test]
fn the_snapshot_write_rate_parses_and_zero_is_refused() {
    assert_eq!(parse("").raft.snapshot_write_bytes_per_second, 128 << 20);
    let slow = parse("[raft]\nsnapshot_write_bytes_per_second = 1048576\n");
    slow.validate().unwrap();
    assert_eq!(slow.raft.snapshot_write_bytes_per_second, 1 << 20);
    let zero = parse("[raft]\nsnapshot_write_bytes_per_second = 0\n");
    assert!(zero.validate().unwrap_err().to_string().contains("raft.snapshot_write_bytes_per_second"));
}
