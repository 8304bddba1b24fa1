//! Seeded workload generators for benchmarks.
//!
//! Generators write ready-to-apply frames into a caller's buffer, so a
//! benchmark can time decode + apply alone. Everything is driven by a seed:
//! the same seed gives the same frames.

mod rng;
mod skew;

pub use rng::Rng;
pub use skew::{Picker, Skew, SkewParseError};

use hyperraft_wire::{encode_records, AccountRecord, Kind, KvBatchWriter, PutView, TransferRecord};

/// The ledger and code every generated account and transfer uses.
pub const LEDGER: u32 = 1;
pub const CODE: u16 = 1;

/// Appends frames creating accounts `1..=accounts`, at most `batch` per frame.
pub fn account_frames(accounts: u64, batch: usize, out: &mut Vec<Vec<u8>>) {
    let ids: Vec<u64> = (1..=accounts).collect();
    for chunk in ids.chunks(batch.max(1)) {
        let records: Vec<AccountRecord> = chunk
            .iter()
            .map(|&id| AccountRecord {
                id: u128::from(id).into(),
                ledger: LEDGER.into(),
                code: CODE.into(),
                ..AccountRecord::default()
            })
            .collect();
        let mut frame = Vec::new();
        encode_records(Kind::CreateAccounts, &records, &mut frame);
        out.push(frame);
    }
}

/// Transfers between accounts `1..=accounts` with fresh ids.
pub struct TransferGenerator {
    picker: Picker,
    rng: Rng,
    id_next: u128,
    records: Vec<TransferRecord>,
}

impl TransferGenerator {
    pub fn new(accounts: u64, skew: Skew, seed: u64) -> TransferGenerator {
        TransferGenerator { picker: Picker::new(accounts, skew), rng: Rng::new(seed), id_next: 1, records: Vec::new() }
    }

    /// Starts ids at `first` instead of 1, so generators of concurrent
    /// clients can use disjoint id ranges.
    pub fn with_first_id(mut self, first: u128) -> TransferGenerator {
        assert!(first != 0, "transfer ids are never 0");
        self.id_next = first;
        self
    }

    /// Replaces `out` with one frame of `batch` transfers.
    pub fn next_frame(&mut self, batch: usize, out: &mut Vec<u8>) {
        self.records.clear();
        for _ in 0..batch {
            let (debit, credit) = self.picker.pick_pair(&mut self.rng);
            self.records.push(TransferRecord {
                id: self.id_next.into(),
                debit_account_id: u128::from(debit + 1).into(),
                credit_account_id: u128::from(credit + 1).into(),
                amount: u128::from(1 + self.rng.below(100)).into(),
                ledger: LEDGER.into(),
                code: CODE.into(),
                ..TransferRecord::default()
            });
            self.id_next += 1;
        }
        out.clear();
        encode_records(Kind::CreateTransfers, &self.records, out);
    }
}

/// Puts of `value_bytes`-byte values to 16-byte keys chosen from `keys` keys.
pub struct PutGenerator {
    picker: Picker,
    rng: Rng,
    value: Vec<u8>,
}

impl PutGenerator {
    pub fn new(keys: u64, skew: Skew, value_bytes: usize, seed: u64) -> PutGenerator {
        PutGenerator { picker: Picker::new(keys, skew), rng: Rng::new(seed), value: vec![b'v'; value_bytes] }
    }

    /// Replaces `out` with one frame of `batch` puts.
    pub fn next_frame(&mut self, batch: usize, out: &mut Vec<u8>) {
        out.clear();
        let mut writer = KvBatchWriter::new(out);
        for _ in 0..batch {
            let key = format!("key-{:012}", self.picker.pick(&mut self.rng));
            let put = PutView { key: key.as_bytes(), value: &self.value, lease: 0, prev_kv: false };
            writer.put(put).expect("generated puts are within every bound");
        }
        writer.finish();
    }
}
