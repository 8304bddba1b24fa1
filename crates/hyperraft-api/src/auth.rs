//! Client authentication: bearer tokens with roles, checked in front of
//! every service.
//!
//! A node that has tokens configured ([`crate::ApiConfig::tokens`]) answers
//! a call only when it carries `authorization: Bearer <token>` with a
//! known token whose role covers the method: a missing or unknown token
//! gets `UNAUTHENTICATED`, a role too low `PERMISSION_DENIED` naming the
//! role needed. [`required_role`] is the one table of which method needs
//! which role; a method it does not list needs `admin`. The check reads
//! the request's headers only, so it runs before admission control and
//! before the body is read: an unauthenticated flood costs no admission
//! room and no decoding.
//!
//! The node keeps only the SHA-256 of each token, never the token itself,
//! and compares digests in constant time, so neither its configuration nor
//! the time it takes to refuse a guess gives a token away.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::Status;

use crate::errors::{permission_denied, unauthenticated};

/// Bytes of a token digest (SHA-256).
pub const TOKEN_SHA256_BYTES: usize = 32;

/// Longest token accepted in a header; a longer one is refused unread.
pub const TOKEN_BYTES_MAX: usize = 512;

/// What a token may do. Each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Lookups, get and range, watches, lease time-to-live and list, status.
    Read,
    /// `Read`, plus every write: ledger creates, put, delete, transactions,
    /// lease grant, revoke and keep-alive.
    Write,
    /// `Write`, plus membership and leadership: AddNode, RemoveNode,
    /// TransferLeader.
    Admin,
}

impl Role {
    /// The role's name in configuration files and errors.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(name: &str) -> Result<Role, String> {
        match name {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}; the roles are read, write and admin")),
        }
    }
}

/// The role each method needs, by gRPC path. Every RPC of
/// `proto/*.proto` is listed (a unit test checks it against the
/// files); anything else needs [`Role::Admin`].
const METHOD_ROLES: &[(&str, Role)] = &[
    ("/hyperraft.v1.Ledger/CreateAccounts", Role::Write),
    ("/hyperraft.v1.Ledger/CreateTransfers", Role::Write),
    ("/hyperraft.v1.Ledger/LookupAccounts", Role::Read),
    ("/hyperraft.v1.Ledger/LookupTransfers", Role::Read),
    ("/hyperraft.v1.Kv/Put", Role::Write),
    ("/hyperraft.v1.Kv/Range", Role::Read),
    ("/hyperraft.v1.Kv/DeleteRange", Role::Write),
    // A transaction may write; it needs `write` even when its branches only read.
    ("/hyperraft.v1.Kv/Txn", Role::Write),
    ("/hyperraft.v1.Kv/Watch", Role::Read),
    ("/hyperraft.v1.Lease/Grant", Role::Write),
    ("/hyperraft.v1.Lease/Revoke", Role::Write),
    ("/hyperraft.v1.Lease/KeepAlive", Role::Write),
    ("/hyperraft.v1.Lease/TimeToLive", Role::Read),
    ("/hyperraft.v1.Lease/Leases", Role::Read),
    // An agent session writes: it registers, renews its lease, reports.
    ("/hyperraft.v1.Agents/Session", Role::Write),
    ("/hyperraft.v1.Agents/SubmitTask", Role::Write),
    ("/hyperraft.v1.Agents/GetTask", Role::Read),
    ("/hyperraft.v1.Agents/WaitTask", Role::Read),
    ("/hyperraft.v1.Agents/ListAgents", Role::Read),
    ("/hyperraft.v1.Cluster/Status", Role::Read),
    ("/hyperraft.v1.Cluster/AddNode", Role::Admin),
    ("/hyperraft.v1.Cluster/RemoveNode", Role::Admin),
    ("/hyperraft.v1.Cluster/TransferLeader", Role::Admin),
    ("/hyperraft.v1.Decisions/Propose", Role::Write),
    ("/hyperraft.v1.Decisions/Vote", Role::Write),
    ("/hyperraft.v1.Decisions/GetProposal", Role::Read),
    ("/hyperraft.v1.Decisions/WatchProposal", Role::Read),
    // Keys decide whose signed votes count: only an administrator sets them.
    ("/hyperraft.v1.Decisions/RegisterVoterKey", Role::Admin),
    ("/hyperraft.v1.Bus/Publish", Role::Write),
    ("/hyperraft.v1.Bus/Subscribe", Role::Read),
    ("/hyperraft.v1.Bus/Topics", Role::Read),
    ("/hyperraft.v1.Bus/ConfigureTopic", Role::Write),
];

/// The role a call of `path` (`/package.Service/Method`) needs; `admin`
/// for a method not in the table, so that a new RPC is closed until it is
/// given a role on purpose.
pub fn required_role(path: &str) -> Role {
    METHOD_ROLES.iter().find(|(method, _)| *method == path).map_or(Role::Admin, |(_, role)| *role)
}

/// The SHA-256 of `token`, in lowercase hex: what a node's configuration
/// stores (`hyperraft token hash` prints it).
pub fn token_sha256_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

fn parse_sha256_hex(text: &str) -> Result<[u8; TOKEN_SHA256_BYTES], String> {
    let text = text.trim();
    if text.len() != TOKEN_SHA256_BYTES * 2 {
        return Err(format!("a SHA-256 is {} hex digits, not {}", TOKEN_SHA256_BYTES * 2, text.len()));
    }
    let mut digest = [0u8; TOKEN_SHA256_BYTES];
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| format!("{pair:?} is not a hex byte"))?;
    }
    Ok(digest)
}

/// One token a node accepts: a name for logs and errors, its role, and
/// the SHA-256 of its secret (the secret itself is never stored).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    name: String,
    role: Role,
    sha256: [u8; TOKEN_SHA256_BYTES],
}

impl fmt::Debug for ApiToken {
    // The digest stays out of logs: it identifies the token.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("ApiToken").field("name", &self.name).field("role", &self.role).finish_non_exhaustive()
    }
}

impl ApiToken {
    /// A token from its configured digest: 64 hex digits of the SHA-256 of
    /// the secret (see [`token_sha256_hex`]).
    pub fn from_sha256_hex(name: &str, role: Role, sha256_hex: &str) -> Result<ApiToken, String> {
        if name.is_empty() {
            return Err("a token needs a name".to_string());
        }
        let sha256 = parse_sha256_hex(sha256_hex).map_err(|reason| format!("token {name:?}: sha256: {reason}"))?;
        Ok(ApiToken { name: name.to_string(), role, sha256 })
    }

    /// A token from its secret, hashed at once (for tools and tests; a
    /// node's configuration holds digests).
    pub fn from_secret(name: &str, role: Role, secret: &str) -> ApiToken {
        ApiToken { name: name.to_string(), role, sha256: Sha256::digest(secret.as_bytes()).into() }
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the token may do.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The SHA-256 of the secret, in lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// The tokens of one API server.
#[derive(Clone, Debug)]
pub(crate) struct Tokens {
    tokens: Arc<[ApiToken]>,
}

impl Tokens {
    pub(crate) fn new(tokens: &[ApiToken]) -> Tokens {
        Tokens { tokens: tokens.into() }
    }

    /// The token whose digest equals the digest of `secret`. Every
    /// configured digest is compared, each in constant time, so the time
    /// taken says nothing about how close a guess came.
    fn find(&self, secret: &[u8]) -> Option<&ApiToken> {
        let digest: [u8; TOKEN_SHA256_BYTES] = Sha256::digest(secret).into();
        let mut found = None;
        for token in self.tokens.iter() {
            if bool::from(token.sha256[..].ct_eq(&digest[..])) {
                found = Some(token);
            }
        }
        found
    }

    /// Checks a call of `path` with `headers`: `Ok` when no token is
    /// configured or the call's token has the role the method needs.
    pub(crate) fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<(), Status> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let secret = bearer(headers)?;
        let token = self.find(secret).ok_or_else(|| unauthenticated("the token is not known to this node"))?;
        let needed = required_role(path);
        if token.role < needed {
            return Err(permission_denied(method_name(path), needed, token));
        }
        Ok(())
    }
}

/// The secret of an `authorization: Bearer <token>` header.
fn bearer(headers: &http::HeaderMap) -> Result<&[u8], Status> {
    const HINT: &str = "send `authorization: Bearer <token>`";
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(unauthenticated(format!("this node requires a token; {HINT}")));
    };
    let value = value.as_bytes();
    let scheme = b"bearer ";
    let secret = match value.get(..scheme.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(scheme) => value[scheme.len()..].trim_ascii(),
        _ => return Err(unauthenticated(format!("the authorization header is not a bearer token; {HINT}"))),
    };
    if secret.is_empty() || secret.len() > TOKEN_BYTES_MAX {
        return Err(unauthenticated(format!("the bearer token is empty or longer than {TOKEN_BYTES_MAX} bytes")));
    }
    Ok(secret)
}

/// `Service/Method` of a gRPC path, for messages.
fn method_name(path: &str) -> &str {
    let path = path.trim_start_matches('/');
    let service_start = path.rfind('/').and_then(|slash| path[..slash].rfind('.').map(|dot| dot + 1)).unwrap_or(0);
    &path[service_start..]
}

/// The [`tower_layer::Layer`] that puts [`Authenticated`] in front of the
/// whole router, so that it sees every call, unknown methods included.
#[derive(Clone, Debug)]
pub(crate) struct AuthLayer {
    tokens: Tokens,
    /// The `node` label of the refusal counter.
    node: String,
}

impl AuthLayer {
    pub(crate) fn new(tokens: &[ApiToken], node: String) -> AuthLayer {
        AuthLayer { tokens: Tokens::new(tokens), node }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Authenticated<S> {
        Authenticated { inner, tokens: self.tokens.clone(), node: self.node.clone() }
    }
}

/// A service that answers a call whose token is missing, unknown or too
/// weak itself, from the headers alone, and hands every other call on.
#[derive(Clone, Debug)]
pub(crate) struct Authenticated<S> {
    inner: S,
    tokens: Tokens,
    node: String,
}

type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.tokens.check(request.uri().path(), request.headers()) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(refused) => {
                let reason = if refused.code() == tonic::Code::PermissionDenied {
                    "permission_denied"
                } else {
                    "unauthenticated"
                };
                tracing::debug!(path = request.uri().path(), message = refused.message(), "call refused");
                metrics::counter!("hyperraft_api_rejected_total", "node" => self.node.clone(), "reason" => reason)
                    .increment(1);
                Box::pin(std::future::ready(Ok(refused.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests;
