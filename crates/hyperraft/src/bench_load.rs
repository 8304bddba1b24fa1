//! What one `hyperraft bench` writer sends, and how it reads the answers.
//!
//! A [`Load`] makes the items of the next request (transfers between
//! accounts `1..=accounts`, or key/value puts and gets over `accounts`
//! keys) from a seeded generator; a [`Sink`] sends them through the node's
//! own client (an embedded cluster, over the in-process batcher) or through
//! the SDK over gRPC (`--target`), and reports what committed and which
//! errors came back, by kind.

use std::sync::Arc;

use hyperraft_client::{Client, CreateTransferResult, Op, Txn};
use hyperraft_load::{Picker, Rng, Skew, CODE, LEDGER};
use hyperraft_node::{Batcher, WriteError};
use hyperraft_raft::{BatchResponse, KvResult};
use hyperraft_wire::{encode_records, Kind, KvBatchWriter, PutView, RangeView, TransferRecord};

use crate::bench::{Ids, Workload};
use crate::bench_etcd::{self as etcd, EtcdKv};

/// Bytes of every value a key/value workload writes.
const VALUE_BYTES: usize = 64;

/// One key/value command of a batch.
#[derive(Clone, Copy)]
enum KvCommand {
    Put(u64),
    Get(u64),
}

/// The seeded item source of one writer; buffers are reused across requests.
pub struct Load {
    workload: Workload,
    ids: Ids,
    picker: Picker,
    rng: Rng,
    id_next: u128,
    transfers: Vec<TransferRecord>,
    commands: Vec<KvCommand>,
    frame: Vec<u8>,
    value: Vec<u8>,
}

impl Load {
    /// Transfer ids count up from `first_id` (writers get disjoint ranges),
    /// through [`scatter`] with `Ids::Scattered`.
    pub fn new(workload: Workload, ids: Ids, accounts: u64, skew: Skew, seed: u64, first_id: u128) -> Load {
        assert!(first_id != 0, "transfer ids are never 0");
        Load {
            workload,
            ids,
            picker: Picker::new(accounts, skew),
            rng: Rng::new(seed),
            id_next: first_id,
            transfers: Vec::new(),
            commands: Vec::new(),
            frame: Vec::new(),
            value: vec![b'v'; VALUE_BYTES],
        }
    }

    /// Makes the `batch` items of the next request.
    pub fn next(&mut self, batch: usize) {
        self.transfers.clear();
        self.commands.clear();
        for _ in 0..batch {
            match self.workload {
                Workload::Transfers => self.next_transfer(),
                Workload::KvPut => self.commands.push(KvCommand::Put(self.picker.pick(&mut self.rng))),
                Workload::KvMixed => {
                    let key = self.picker.pick(&mut self.rng);
                    let get = self.rng.below(2) == 0;
                    self.commands.push(if get { KvCommand::Get(key) } else { KvCommand::Put(key) });
                }
                Workload::Bus | Workload::Agents => {
                    unreachable!("`bench::run` sends the bus and agents workloads to their own modules")
                }
            }
        }
    }

    fn next_transfer(&mut self) {
        let (debit, credit) = self.picker.pick_pair(&mut self.rng);
        let id = match self.ids {
            Ids::Sequential => self.id_next,
            Ids::Scattered => scatter(self.id_next),
        };
        self.transfers.push(TransferRecord {
            id: id.into(),
            debit_account_id: u128::from(debit + 1).into(),
            credit_account_id: u128::from(credit + 1).into(),
            amount: u128::from(1 + self.rng.below(100)).into(),
            ledger: LEDGER.into(),
            code: CODE.into(),
            ..TransferRecord::default()
        });
        self.id_next += 1;
    }

    fn items(&self) -> usize {
        self.transfers.len() + self.commands.len()
    }

    /// The current items as one write frame for the node's batcher.
    fn encode_frame(&mut self) -> &[u8] {
        self.frame.clear();
        if self.workload == Workload::Transfers {
            encode_records(Kind::CreateTransfers, &self.transfers, &mut self.frame);
            return &self.frame;
        }
        let mut writer = KvBatchWriter::new(&mut self.frame);
        for command in &self.commands {
            let (KvCommand::Put(key) | KvCommand::Get(key)) = *command;
            let key = key_name(key);
            let encoded = match command {
                KvCommand::Put(_) => {
                    writer.put(PutView { key: key.as_bytes(), value: &self.value, lease: 0, prev_kv: false })
                }
                KvCommand::Get(_) => writer.range(RangeView {
                    key: key.as_bytes(),
                    range_end: &[],
                    limit: 0,
                    keys_only: false,
                    count_only: false,
                }),
            };
            encoded.expect("generated commands are within every bound");
        }
        writer.finish();
        &self.frame
    }

    /// The current key/value items as one SDK transaction (no compares, so
    /// every operation runs).
    fn txn(&self) -> Txn {
        let ops = self.commands.iter().map(|command| match *command {
            KvCommand::Put(key) => Op::put(key_name(key), self.value.clone()),
            KvCommand::Get(key) => Op::get(key_name(key)),
        });
        Txn::new().and_then(ops)
    }
}

impl Load {
    /// The current items as one etcd `Put`, if they are one put.
    fn etcd_put(&self) -> Option<etcd::PutRequest> {
        match self.commands.as_slice() {
            [KvCommand::Put(key)] => Some(etcd::PutRequest { key: key_name(*key).into(), value: self.value.clone() }),
            _ => None,
        }
    }

    /// The current items as one etcd `Txn` without compares.
    fn etcd_txn(&self) -> etcd::TxnRequest {
        let success = self
            .commands
            .iter()
            .map(|command| {
                let request = match *command {
                    KvCommand::Put(key) => {
                        etcd::Request::Put(etcd::PutRequest { key: key_name(key).into(), value: self.value.clone() })
                    }
                    KvCommand::Get(key) => etcd::Request::Range(etcd::RangeRequest { key: key_name(key).into() }),
                };
                etcd::RequestOp { request: Some(request) }
            })
            .collect();
        etcd::TxnRequest { success }
    }
}

fn key_name(key: u64) -> String {
    format!("key-{key:012}")
}

/// What one request came back with: items committed, and failures by kind.
#[derive(Default)]
pub struct Outcome {
    pub committed: u64,
    pub failures: Vec<(String, u64)>,
}

impl Outcome {
    fn whole_request_failed(items: usize, kind: String) -> Outcome {
        Outcome { committed: 0, failures: vec![(kind, items as u64)] }
    }
}

/// Where a writer sends its requests.
#[derive(Clone)]
pub enum Sink {
    /// The node's own client: the leader's batcher in this process.
    Native(Batcher),
    /// The SDK over gRPC.
    Sdk(Arc<Client>),
    /// An etcd server's `KV` service over gRPC (`--target-etcd`).
    Etcd(EtcdKv),
}

impl Sink {
    /// Sends the load's current items as one request.
    pub async fn send(&self, load: &mut Load) -> Outcome {
        let items = load.items();
        match self {
            Sink::Native(batcher) => {
                let response = batcher.submit(load.encode_frame()).await;
                native_outcome(items, response)
            }
            Sink::Sdk(client) if load.workload == Workload::Transfers => {
                match client.create_transfers(&load.transfers).await {
                    Ok(failed) => {
                        let mut outcome = Outcome { committed: (items - failed.len()) as u64, failures: Vec::new() };
                        for failure in failed {
                            outcome.failures.push((failure.code.as_str_name().to_ascii_lowercase(), 1));
                        }
                        outcome
                    }
                    Err(error) => Outcome::whole_request_failed(items, variant_name(&error)),
                }
            }
            Sink::Sdk(client) => match client.txn(load.txn()).await {
                Ok(_) => Outcome { committed: items as u64, failures: Vec::new() },
                Err(error) => Outcome::whole_request_failed(items, variant_name(&error)),
            },
            Sink::Etcd(etcd) => {
                let mut etcd = etcd.clone();
                let sent = match load.etcd_put() {
                    Some(put) => etcd.put(put).await,
                    None => etcd.txn(load.etcd_txn()).await,
                };
                match sent {
                    Ok(()) => Outcome { committed: items as u64, failures: Vec::new() },
                    Err(status) => Outcome::whole_request_failed(items, format!("etcd_{:?}", status.code())),
                }
            }
        }
    }
}

fn native_outcome(items: usize, response: Result<BatchResponse, WriteError>) -> Outcome {
    let mut outcome = Outcome::default();
    match response {
        Ok(BatchResponse::Codes(codes)) => {
            for code in codes {
                match code {
                    0 => outcome.committed += 1,
                    code => outcome.failures.push((transfer_code_name(code), 1)),
                }
            }
        }
        Ok(BatchResponse::Kv(results)) => {
            for result in results {
                match result {
                    KvResult::Error { .. } => outcome.failures.push(("kv_error".to_string(), 1)),
                    _ => outcome.committed += 1,
                }
            }
        }
        Ok(BatchResponse::Rejected(_)) => return Outcome::whole_request_failed(items, "rejected".into()),
        Ok(_) => return Outcome::whole_request_failed(items, "unexpected_response".into()),
        Err(error) => return Outcome::whole_request_failed(items, variant_name(&error)),
    }
    outcome
}

fn transfer_code_name(code: u32) -> String {
    match i32::try_from(code).ok().and_then(|code| CreateTransferResult::try_from(code).ok()) {
        Some(result) => result.as_str_name().to_ascii_lowercase(),
        None => format!("transfer_code_{code}"),
    }
}

/// An error's variant name in snake case (`NotLeader` → `not_leader`): the
/// kind the report counts errors by.
fn variant_name(error: &impl std::fmt::Debug) -> String {
    let debug = format!("{error:?}");
    let name = debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("error");
    let mut kind = String::with_capacity(name.len() + 4);
    for (index, c) in name.chars().enumerate() {
        if c.is_uppercase() && index > 0 {
            kind.push('_');
        }
        kind.push(c.to_ascii_lowercase());
    }
    kind
}

/// A bijection of the ids (so distinct ids stay distinct) that sends
/// neighbours far apart: an odd multiplier, a fold of the high half into
/// the low, another odd multiplier. Zero, never a transfer id, maps to zero.
fn scatter(id: u128) -> u128 {
    let mixed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    (mixed ^ (mixed >> 64)).wrapping_mul(0xD6E8_FEB8_6659_FD93_2545_F491_4F6C_DD1D)
}

#[cfg(test)]
mod tests;
