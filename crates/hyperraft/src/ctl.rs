//! `hyperraft ctl`: talk to a running cluster through its gRPC API (with
//! the `hyperraft-client` SDK). Prints human tables by default and JSON
//! with `--json`, for scripts.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};
use hyperraft_client::proto::{DeleteRangeRequest, Event, KeyValue, PutRequest, RangeRequest, StatusResponse};
use hyperraft_client::wire::{AccountRecord, TransferRecord};
use hyperraft_client::{prefix_end, Client, ClientConfig, ClientTls, NewNode};
use serde_json::{json, Value};
use tokio_stream::StreamExt;

/// The environment variable `--token` falls back to.
const TOKEN_VARIABLE: &str = "HYPERRAFT_TOKEN";

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// gRPC API addresses of some or all nodes, comma separated (host:port).
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Longest one attempt of a call may take, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// The API bearer token; the environment variable HYPERRAFT_TOKEN when
    /// absent (preferred: a flag shows in the process list).
    #[arg(long)]
    token: Option<String>,
    /// Connect over TLS, trusting this CA certificate (PEM), e.g. the
    /// cluster's `certs/ca.pem`.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// With --ca: the name the nodes' certificates must carry; the host of
    /// each endpoint when absent.
    #[arg(long, requires = "ca")]
    tls_domain: Option<String>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand, Debug)]
enum CtlCommand {
    /// Every node's view of the cluster.
    Status,
    /// Put a value at a key.
    Put {
        key: String,
        value: String,
        /// Attach the key to this lease.
        #[arg(long, default_value_t = 0)]
        lease: u64,
    },
    /// Read a key.
    Get { key: String },
    /// Delete a key, or every key with the prefix `key`.
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
    /// Read the keys with the prefix `key`, or the range [key, --end).
    Range {
        key: String,
        /// End of the range (exclusive); the prefix of `key` when absent.
        #[arg(long)]
        end: Option<String>,
        /// Most keys returned; 0 for all.
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Print the changes of a key (or a prefix) as they happen.
    Watch {
        key: String,
        #[arg(long)]
        prefix: bool,
        /// First revision to deliver; 0 for changes from now on.
        #[arg(long, default_value_t = 0)]
        start_revision: u64,
        /// Stop after this many events; 0 to watch until interrupted.
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
    /// Leases.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Ledger accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Ledger transfers.
    #[command(subcommand)]
    Transfer(TransferCommand),
    /// Cluster membership.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Leadership.
    #[command(subcommand)]
    Leader(LeaderCommand),
}

#[derive(Subcommand, Debug)]
enum LeaseCommand {
    /// Grant a lease of `ttl_ms` milliseconds.
    Grant {
        ttl_ms: u64,
        /// The lease id; 0 lets the cluster choose.
        #[arg(long, default_value_t = 0)]
        id: u64,
    },
    /// Revoke a lease, deleting its keys.
    Revoke { id: u64 },
    /// Time left on a lease.
    Ttl {
        id: u64,
        /// List the keys attached to it.
        #[arg(long)]
        keys: bool,
    },
    /// Every live lease.
    List,
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Create one account.
    Create {
        #[arg(long)]
        id: u128,
        #[arg(long)]
        ledger: u32,
        #[arg(long)]
        code: u16,
        #[arg(long, default_value_t = 0)]
        flags: u16,
        #[arg(long, default_value_t = 0)]
        user_data: u128,
    },
    /// Look accounts up by id.
    Lookup { ids: Vec<u128> },
}

#[derive(Subcommand, Debug)]
enum TransferCommand {
    /// Create one transfer.
    Create {
        #[arg(long)]
        id: u128,
        #[arg(long)]
        debit: u128,
        #[arg(long)]
        credit: u128,
        #[arg(long)]
        amount: u128,
        #[arg(long)]
        ledger: u32,
        #[arg(long)]
        code: u16,
        #[arg(long, default_value_t = 0)]
        flags: u16,
        #[arg(long, default_value_t = 0)]
        user_data: u128,
    },
    /// Look transfers up by id.
    Lookup { ids: Vec<u128> },
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// Add a node (as a learner, then a voter once caught up).
    Add {
        id: u64,
        /// Where the other nodes reach it (QUIC), host:port.
        #[arg(long)]
        peer_address: String,
        /// Its gRPC API address, for leader hints.
        #[arg(long, default_value = "")]
        api_address: String,
        /// How long it may take to catch up; 0 for the server's default.
        #[arg(long, default_value_t = 0)]
        catch_up_ms: u64,
    },
    /// Remove a voter.
    Remove { id: u64 },
}

#[derive(Subcommand, Debug)]
enum LeaderCommand {
    /// Hand leadership to another voter.
    Transfer {
        id: u64,
        /// How long it may take; 0 for the server's default.
        #[arg(long, default_value_t = 0)]
        timeout_ms: u64,
    },
}

/// What a command prints: a table for people, JSON for scripts.
struct Report {
    headers: &'static [&'static str],
    rows: Vec<Vec<String>>,
    json: Value,
}

impl Report {
    fn print(&self, json: bool) {
        if json {
            println!("{}", self.json);
            return;
        }
        print!("{}", table(self.headers, &self.rows));
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub fn run(args: &CtlArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(ctl(args))
}

async fn ctl(args: &CtlArgs) -> anyhow::Result<()> {
    let mut config = ClientConfig::new(args.endpoints.iter().cloned());
    config.request_timeout = Duration::from_millis(args.timeout_ms.max(1));
    config.token = args.token.clone().or_else(|| std::env::var(TOKEN_VARIABLE).ok().filter(|token| !token.is_empty()));
    if let Some(ca) = &args.ca {
        let ca_pem = std::fs::read_to_string(ca).with_context(|| format!("read {}", ca.display()))?;
        config.tls = Some(ClientTls { ca_pem, domain: args.tls_domain.clone() });
    }
    let client = Client::connect(config).await.context("connect to the cluster")?;
    if let CtlCommand::Watch { key, prefix, start_revision, count } = &args.command {
        return watch(&client, args.json, key, *prefix, *start_revision, *count).await;
    }
    let report = match &args.command {
        CtlCommand::Status => status(&client).await?,
        CtlCommand::Put { key, value, lease } => put(&client, key, value, *lease).await?,
        CtlCommand::Get { key } => get(&client, key).await?,
        CtlCommand::Del { key, prefix } => delete(&client, key, *prefix).await?,
        CtlCommand::Range { key, end, limit } => range(&client, key, end.as_deref(), *limit).await?,
        CtlCommand::Watch { .. } => unreachable!("handled above"),
        CtlCommand::Lease(command) => lease(&client, command).await?,
        CtlCommand::Account(command) => account(&client, command).await?,
        CtlCommand::Transfer(command) => transfer(&client, command).await?,
        CtlCommand::Member(command) => member(&client, command).await?,
        CtlCommand::Leader(LeaderCommand::Transfer { id, timeout_ms }) => {
            let status = client.transfer_leader(*id, Duration::from_millis(*timeout_ms)).await?;
            status_report(vec![("leader".to_string(), status)])
        }
    };
    report.print(args.json);
    Ok(())
}

fn text(bytes: &Bytes) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn status_json(status: &StatusResponse) -> Value {
    let members = |members: &[hyperraft_client::proto::Member]| -> Vec<Value> {
        members
            .iter()
            .map(|member| {
                json!({
                    "id": member.id,
                    "peer_address": member.peer_address,
                    "api_address": member.api_address,
                    "matched_index": member.matched_index,
                    "lag": member.lag,
                })
            })
            .collect()
    };
    json!({
        "node_id": status.node_id,
        "leader_id": status.leader_id,
        "is_leader": status.is_leader,
        "term": status.term,
        "last_log_index": status.last_log_index,
        "applied_index": status.applied_index,
        "kv_revision": status.kv_revision,
        "millis_since_quorum_ack": status.millis_since_quorum_ack,
        "voters": members(&status.voters),
        "learners": members(&status.learners),
    })
}

fn status_report(answers: Vec<(String, StatusResponse)>) -> Report {
    let rows = answers
        .iter()
        .map(|(endpoint, status)| {
            vec![
                endpoint.clone(),
                status.node_id.to_string(),
                status.leader_id.map_or("-".to_string(), |leader| leader.to_string()),
                status.is_leader.to_string(),
                status.term.to_string(),
                status.applied_index.to_string(),
                status.kv_revision.to_string(),
                status.voters.iter().map(|member| member.id.to_string()).collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    let json = Value::Array(
        answers
            .iter()
            .map(|(endpoint, status)| {
                let mut value = status_json(status);
                value["endpoint"] = json!(endpoint);
                value
            })
            .collect(),
    );
    Report {
        headers: &["ENDPOINT", "NODE", "LEADER", "IS_LEADER", "TERM", "APPLIED", "REVISION", "VOTERS"],
        rows,
        json,
    }
}

async fn status(client: &Client) -> anyhow::Result<Report> {
    let mut answers = Vec::new();
    let mut unreachable = Vec::new();
    for (endpoint, answer) in client.status_all().await {
        match answer {
            Ok(status) => answers.push((endpoint, status)),
            Err(error) => unreachable.push((endpoint, error.to_string())),
        }
    }
    let mut report = status_report(answers);
    for (endpoint, error) in &unreachable {
        report.rows.push(vec![endpoint.clone(), "-".into(), "-".into(), "unreachable".into()]);
        if let Value::Array(items) = &mut report.json {
            items.push(json!({ "endpoint": endpoint, "error": error }));
        }
    }
    Ok(report)
}

fn pair_json(pair: &KeyValue) -> Value {
    json!({
        "key": text(&pair.key),
        "value": text(&pair.value),
        "create_revision": pair.create_revision,
        "mod_revision": pair.mod_revision,
        "version": pair.version,
        "lease": pair.lease,
    })
}

fn pairs_report(pairs: &[KeyValue], revision: u64) -> Report {
    let rows = pairs
        .iter()
        .map(|pair| vec![text(&pair.key), text(&pair.value), pair.mod_revision.to_string(), pair.version.to_string()])
        .collect();
    let json = json!({ "revision": revision, "kvs": pairs.iter().map(pair_json).collect::<Vec<_>>() });
    Report { headers: &["KEY", "VALUE", "MOD_REVISION", "VERSION"], rows, json }
}

async fn put(client: &Client, key: &str, value: &str, lease: u64) -> anyhow::Result<Report> {
    let request = PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        lease,
        prev_kv: false,
    };
    let response = client.put_request(request).await?;
    let revision = response.header.map_or(0, |header| header.revision);
    Ok(Report { headers: &["REVISION"], rows: vec![vec![revision.to_string()]], json: json!({ "revision": revision }) })
}

async fn get(client: &Client, key: &str) -> anyhow::Result<Report> {
    let request = RangeRequest { key: Bytes::copy_from_slice(key.as_bytes()), ..RangeRequest::default() };
    let response = client.range(request).await?;
    let revision = response.header.map_or(0, |header| header.revision);
    let mut report = pairs_report(&response.kvs, revision);
    report.json = json!({ "revision": revision, "kv": response.kvs.first().map(pair_json) });
    Ok(report)
}

/// The end of the range `key` names: its prefix, or `end`.
fn range_end(key: &str, end: Option<&str>) -> Bytes {
    match end {
        Some(end) => Bytes::copy_from_slice(end.as_bytes()),
        None => prefix_end(key.as_bytes()),
    }
}

async fn range(client: &Client, key: &str, end: Option<&str>, limit: u32) -> anyhow::Result<Report> {
    let request = RangeRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        range_end: range_end(key, end),
        limit,
        ..RangeRequest::default()
    };
    let response = client.range(request).await?;
    let mut report = pairs_report(&response.kvs, response.header.map_or(0, |header| header.revision));
    report.json["count"] = json!(response.count);
    report.json["more"] = json!(response.more);
    Ok(report)
}

async fn delete(client: &Client, key: &str, prefix: bool) -> anyhow::Result<Report> {
    let request = DeleteRangeRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        range_end: if prefix { prefix_end(key.as_bytes()) } else { Bytes::new() },
        prev_kv: false,
    };
    let response = client.delete_range(request).await?;
    let revision = response.header.map_or(0, |header| header.revision);
    Ok(Report {
        headers: &["DELETED", "REVISION"],
        rows: vec![vec![response.deleted.to_string(), revision.to_string()]],
        json: json!({ "deleted": response.deleted, "revision": revision }),
    })
}

fn event_json(event: &Event) -> Value {
    let kind = if event.r#type == hyperraft_client::proto::event::EventType::Delete as i32 { "DELETE" } else { "PUT" };
    json!({ "type": kind, "kv": event.kv.as_ref().map(pair_json) })
}

async fn watch(client: &Client, json: bool, key: &str, prefix: bool, start: u64, count: u64) -> anyhow::Result<()> {
    let end = if prefix { prefix_end(key.as_bytes()) } else { Bytes::new() };
    let mut events = client.watch(Bytes::copy_from_slice(key.as_bytes()), end, start).await?;
    let mut seen = 0;
    while count == 0 || seen < count {
        let Some(event) = events.next().await else { break };
        let event = event?;
        if json {
            println!("{}", event_json(&event));
        } else {
            let pair = event.kv.clone().unwrap_or_default();
            let kind = event_json(&event)["type"].as_str().unwrap_or("PUT").to_string();
            println!("{kind} {} {} (revision {})", text(&pair.key), text(&pair.value), pair.mod_revision);
        }
        seen += 1;
    }
    Ok(())
}

async fn lease(client: &Client, command: &LeaseCommand) -> anyhow::Result<Report> {
    Ok(match command {
        LeaseCommand::Grant { ttl_ms, id } => {
            let response = client.lease_grant(Duration::from_millis(*ttl_ms), *id).await?;
            Report {
                headers: &["LEASE", "TTL_MS"],
                rows: vec![vec![response.id.to_string(), response.ttl_ms.to_string()]],
                json: json!({ "id": response.id, "ttl_ms": response.ttl_ms }),
            }
        }
        LeaseCommand::Revoke { id } => {
            let response = client.lease_revoke(*id).await?;
            Report {
                headers: &["LEASE", "KEYS_DELETED"],
                rows: vec![vec![id.to_string(), response.deleted.to_string()]],
                json: json!({ "id": id, "deleted": response.deleted }),
            }
        }
        LeaseCommand::Ttl { id, keys } => {
            let response = client.lease_time_to_live(*id, *keys).await?;
            let key_list: Vec<String> = response.keys.iter().map(text).collect();
            Report {
                headers: &["LEASE", "REMAINING_MS", "GRANTED_TTL_MS", "KEYS"],
                rows: vec![vec![
                    id.to_string(),
                    response.remaining_ms.to_string(),
                    response.granted_ttl_ms.to_string(),
                    key_list.join(","),
                ]],
                json: json!({
                    "id": id,
                    "remaining_ms": response.remaining_ms,
                    "granted_ttl_ms": response.granted_ttl_ms,
                    "keys": key_list,
                }),
            }
        }
        LeaseCommand::List => {
            let ids = client.leases().await?;
            Report {
                headers: &["LEASE"],
                rows: ids.iter().map(|id| vec![id.to_string()]).collect(),
                json: json!({ "ids": ids }),
            }
        }
    })
}

/// The outcome of creating one ledger item.
fn created_report(id: u128, code: &str) -> Report {
    Report {
        headers: &["ID", "RESULT"],
        rows: vec![vec![id.to_string(), code.to_string()]],
        json: json!({ "id": id.to_string(), "result": code }),
    }
}

async fn account(client: &Client, command: &AccountCommand) -> anyhow::Result<Report> {
    match command {
        AccountCommand::Create { id, ledger, code, flags, user_data } => {
            let record = AccountRecord {
                id: (*id).into(),
                ledger: (*ledger).into(),
                code: (*code).into(),
                flags: (*flags).into(),
                user_data: (*user_data).into(),
                ..AccountRecord::default()
            };
            let failures = client.create_accounts(&[record]).await?;
            let result = failures.first().map_or("OK".to_string(), |failure| failure.code.as_str_name().to_string());
            Ok(created_report(*id, &result))
        }
        AccountCommand::Lookup { ids } => {
            let accounts = client.lookup_accounts(ids).await?;
            let rows = accounts
                .iter()
                .map(|account| {
                    vec![
                        account.id.get().to_string(),
                        account.ledger.get().to_string(),
                        account.code.get().to_string(),
                        account.debits_posted.get().to_string(),
                        account.credits_posted.get().to_string(),
                        account.flags.get().to_string(),
                    ]
                })
                .collect();
            let json = accounts
                .iter()
                .map(|account| {
                    json!({
                        // 128-bit numbers as strings: JSON numbers lose precision past 2^53.
                        "id": account.id.get().to_string(),
                        "ledger": account.ledger.get(),
                        "code": account.code.get(),
                        "debits_posted": account.debits_posted.get().to_string(),
                        "credits_posted": account.credits_posted.get().to_string(),
                        "user_data": account.user_data.get().to_string(),
                        "flags": account.flags.get(),
                        "timestamp": account.timestamp.get(),
                    })
                })
                .collect();
            Ok(Report {
                headers: &["ID", "LEDGER", "CODE", "DEBITS_POSTED", "CREDITS_POSTED", "FLAGS"],
                rows,
                json: Value::Array(json),
            })
        }
    }
}

async fn transfer(client: &Client, command: &TransferCommand) -> anyhow::Result<Report> {
    match command {
        TransferCommand::Create { id, debit, credit, amount, ledger, code, flags, user_data } => {
            let record = TransferRecord {
                id: (*id).into(),
                debit_account_id: (*debit).into(),
                credit_account_id: (*credit).into(),
                amount: (*amount).into(),
                ledger: (*ledger).into(),
                code: (*code).into(),
                flags: (*flags).into(),
                user_data: (*user_data).into(),
                ..TransferRecord::default()
            };
            let failures = client.create_transfers(&[record]).await?;
            let result = failures.first().map_or("OK".to_string(), |failure| failure.code.as_str_name().to_string());
            Ok(created_report(*id, &result))
        }
        TransferCommand::Lookup { ids } => {
            let transfers = client.lookup_transfers(ids).await?;
            let rows = transfers
                .iter()
                .map(|transfer| {
                    vec![
                        transfer.id.get().to_string(),
                        transfer.debit_account_id.get().to_string(),
                        transfer.credit_account_id.get().to_string(),
                        transfer.amount.get().to_string(),
                        transfer.ledger.get().to_string(),
                        transfer.code.get().to_string(),
                    ]
                })
                .collect();
            let json = transfers
                .iter()
                .map(|transfer| {
                    json!({
                        "id": transfer.id.get().to_string(),
                        "debit_account_id": transfer.debit_account_id.get().to_string(),
                        "credit_account_id": transfer.credit_account_id.get().to_string(),
                        "amount": transfer.amount.get().to_string(),
                        "ledger": transfer.ledger.get(),
                        "code": transfer.code.get(),
                        "flags": transfer.flags.get(),
                        "user_data": transfer.user_data.get().to_string(),
                        "timestamp": transfer.timestamp.get(),
                    })
                })
                .collect();
            Ok(Report {
                headers: &["ID", "DEBIT", "CREDIT", "AMOUNT", "LEDGER", "CODE"],
                rows,
                json: Value::Array(json),
            })
        }
    }
}

async fn member(client: &Client, command: &MemberCommand) -> anyhow::Result<Report> {
    let status = match command {
        MemberCommand::Add { id, peer_address, api_address, catch_up_ms } => {
            let node = NewNode {
                id: *id,
                peer_address: peer_address.clone(),
                api_address: api_address.clone(),
                catch_up: Duration::from_millis(*catch_up_ms),
            };
            client.add_node(node).await?
        }
        MemberCommand::Remove { id } => client.remove_node(*id).await?,
    };
    Ok(status_report(vec![("leader".to_string(), status)]))
}

#[cfg(test)]
mod tests;
