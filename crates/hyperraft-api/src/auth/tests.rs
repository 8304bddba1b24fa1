use tonic::codegen::http::{HeaderMap, HeaderValue};
use tonic::Code;

use super::{method_name, required_role, token_sha256_hex, ApiToken, Role, Tokens, METHOD_ROLES};

/// Every proto file of the `hyperraft.v1` package.
const PROTOS: [&str; 3] = [
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/hyperraft.proto")),
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/agent.proto")),
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/bus.proto")),
];

fn with_token(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_str(value).unwrap());
    headers
}

#[test]
fn every_rpc_of_the_proto_file_has_a_role_and_nothing_else_does() {
    // Proves the role table matches the package's proto files exactly: each `rpc` of each service is listed once, and no listed method is missing from the file.
    let mut service = "";
    let mut paths = Vec::new();
    for line in PROTOS.iter().flat_map(|proto| proto.lines()).map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            service = rest.split_whitespace().next().unwrap();
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            let method = rest.split('(').next().unwrap().trim();
            paths.push(format!("/hyperraft.v1.{service}/{method}"));
        }
    }
    let mut listed: Vec<String> = METHOD_ROLES.iter().map(|(path, _)| path.to_string()).collect();
    paths.sort();
    listed.sort();
    assert_eq!(paths, listed);
}

#[test]
fn roles_follow_the_table_and_unknown_methods_need_admin() {
    // Proves a sample of each group maps to its role and an unlisted method (or service) needs admin.
    assert_eq!(required_role("/hyperraft.v1.Kv/Range"), Role::Read);
    assert_eq!(required_role("/hyperraft.v1.Kv/Put"), Role::Write);
    assert_eq!(required_role("/hyperraft.v1.Lease/KeepAlive"), Role::Write);
    assert_eq!(required_role("/hyperraft.v1.Cluster/Status"), Role::Read);
    assert_eq!(required_role("/hyperraft.v1.Cluster/AddNode"), Role::Admin);
    assert_eq!(required_role("/hyperraft.v1.Kv/Compact"), Role::Admin);
    assert_eq!(required_role("/grpc.health.v1.Health/Check"), Role::Admin);
    assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
    assert_eq!(method_name("/hyperraft.v1.Kv/Put"), "Kv/Put");
}

#[test]
fn a_digest_round_trips_through_hex_and_bad_digests_are_refused() {
    // Proves the configured form (hex SHA-256) parses back to the token made from the secret, and malformed digests and unknown roles are refused with a reason.
    let hex = token_sha256_hex("s3cret");
    assert_eq!(hex, "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0");
    let parsed = ApiToken::from_sha256_hex("agent", Role::Write, &hex.to_uppercase()).unwrap();
    assert_eq!(parsed, ApiToken::from_secret("agent", Role::Write, "s3cret"));
    assert_eq!(parsed.sha256_hex(), hex);
    assert!(ApiToken::from_sha256_hex("agent", Role::Write, &hex[1..]).unwrap_err().contains("64 hex digits"));
    assert!(ApiToken::from_sha256_hex("agent", Role::Write, &format!("zz{}", &hex[2..])).is_err());
    assert!(ApiToken::from_sha256_hex("", Role::Write, &hex).is_err());
    assert!("owner".parse::<Role>().unwrap_err().contains("read, write and admin"));
    assert!(!format!("{parsed:?}").contains(&hex), "the digest stays out of Debug");
}

#[test]
fn check_refuses_missing_and_unknown_tokens_and_roles_too_low() {
    // Proves the header check: no tokens configured lets everything through; with tokens, a missing header, another scheme or an unknown token is UNAUTHENTICATED, a read token on a write is PERMISSION_DENIED naming the role, and the right role passes.
    let path = "/hyperraft.v1.Kv/Put";
    assert!(Tokens::new(&[]).check(path, &HeaderMap::new()).is_ok());
    let tokens = Tokens::new(&[
        ApiToken::from_secret("reader", Role::Read, "r-secret"),
        ApiToken::from_secret("writer", Role::Write, "w-secret"),
    ]);
    for headers in [HeaderMap::new(), with_token("Basic w-secret"), with_token("Bearer nope"), with_token("Bearer ")] {
        assert_eq!(tokens.check(path, &headers).unwrap_err().code(), Code::Unauthenticated, "{headers:?}");
    }
    let denied = tokens.check(path, &with_token("Bearer r-secret")).unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("write"), "{denied:?}");
    assert!(tokens.check("/hyperraft.v1.Kv/Range", &with_token("Bearer r-secret")).is_ok());
    assert!(tokens.check(path, &with_token("bearer w-secret")).is_ok());
    let admin_only = tokens.check("/hyperraft.v1.Cluster/RemoveNode", &with_token("Bearer w-secret")).unwrap_err();
    assert_eq!(admin_only.code(), Code::PermissionDenied);
}
