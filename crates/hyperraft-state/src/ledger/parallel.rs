//! Parallel apply of a transfer batch, with exactly the sequential outcome.
//!
//! A batch is cut into units (a lone transfer, or a linked chain). Each unit
//! gets a *level*: one more than the highest level of any earlier unit that
//! touches one of its accounts. Units of one level touch disjoint accounts,
//! so they run in parallel against the state left by the lower levels, and
//! every unit sees exactly the accounts it would see in sequential order:
//! earlier units that touch its accounts sit at lower levels, and units that
//! share a level touch nothing it reads. Timestamps come from batch
//! positions, so they too are independent of the schedule.
//!
//! Per level, workers only read the accounts and write their outcome into
//! their own slice of `outputs`; a short sequential pass then writes the
//! new balances back. New transfer ids go into the index shard by shard,
//! one thread per shard.
//!
//! Batches the scheme does not fit fall back to the sequential path (the
//! caller does that when this returns `false`): small batches, batches with
//! a repeated transfer id, long chains, batches near the capacity bound, and
//! batches whose conflicts leave too little width per level.

use std::collections::HashSet;

use hyperraft_wire::records::transfer_flags;
use hyperraft_wire::TransferRecord;

use super::accounts::{AccountStore, Slot};
use super::check;
use super::result::CreateTransferResult;
use super::transfer::Transfer;
use super::transfers::{shard_of, Position, TransferStore, INDEX_SHARDS};
use super::{unit_end, Ledger};

/// Chains longer than this make the batch sequential (the in-chain overlay is a linear scan).
const CHAIN_PARALLEL_MAX: usize = 64;
/// Units per task at the leaves of the split.
const UNITS_PER_TASK_MIN: usize = 64;

const NO_SLOT: Slot = Slot::MAX;

#[derive(Clone, Copy)]
struct Prepared {
    debit: Slot,
    credit: Slot,
    /// `Ok`, or the failure decided before balances are read.
    early: CreateTransferResult,
}

#[derive(Clone, Copy)]
struct Unit {
    start: u32,
    len: u32,
    level: u32,
    open: bool,
}

#[derive(Clone, Copy)]
struct Output {
    code: CreateTransferResult,
    debit: Slot,
    credit: Slot,
    debits_posted: u128,
    credits_posted: u128,
}

const OUTPUT_FAILED: Output = Output {
    code: CreateTransferResult::LinkedEventFailed,
    debit: NO_SLOT,
    credit: NO_SLOT,
    debits_posted: 0,
    credits_posted: 0,
};

/// Buffers reused from batch to batch.
#[derive(Default)]
pub(crate) struct ParallelScratch {
    prepared: Vec<Prepared>,
    units: Vec<Unit>,
    /// Per account slot: (epoch, level of the last unit that touched it).
    marks: Vec<(u32, u32)>,
    epoch: u32,
    level_starts: Vec<u32>,
    /// Unit indices grouped by level, batch order inside a level.
    order: Vec<u32>,
    /// Offset in `outputs` of the unit `order[k]`.
    offsets: Vec<u32>,
    outputs: Vec<Output>,
    id_sets: Vec<HashSet<u128, foldhash::fast::RandomState>>,
    appended: Vec<(u128, Position)>,
}

/// Whether the parallel path applied a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParallelOutcome {
    Applied,
    /// Nothing changed; the batch must go sequential.
    Declined,
}

impl Ledger {
    /// Applies `records` in parallel on `pool`, or declines having changed
    /// nothing when the batch should go sequential instead.
    pub(crate) fn create_transfers_parallel(
        &mut self,
        records: &[TransferRecord],
        timestamp: u64,
        pool: &rayon::ThreadPool,
        results: &mut Vec<CreateTransferResult>,
    ) -> ParallelOutcome {
        let tuning = self.config.parallel;
        if records.len() < tuning.batch_min
            || self.transfers.len() + records.len() as u64 > self.config.transfers_max
        {
            return ParallelOutcome::Declined;
        }
        let scratch = &mut self.parallel;
        if !scratch.plan_units(records) {
            return ParallelOutcome::Declined;
        }
        pool.install(|| {
            scratch.prepare(records, &self.accounts, &self.transfers);
            if scratch.has_duplicate_ids(records)
                || !scratch.schedule(self.accounts.len(), tuning.level_width_min)
            {
                return ParallelOutcome::Declined;
            }
            scratch.execute(records, &mut self.accounts);
            scratch.finish(records, timestamp, &mut self.transfers, results);
            ParallelOutcome::Applied
        })
    }
}

impl ParallelScratch {
    /// Cuts the batch into units; `false` if a chain is too long.
    fn plan_units(&mut self, records: &[TransferRecord]) -> bool {
        self.units.clear();
        let is_linked = |i: usize| records[i].flags.get() & transfer_flags::LINKED != 0;
        let mut start = 0;
        while start < records.len() {
            let (end, open) = unit_end(records.len(), start, is_linked);
            if end - start > CHAIN_PARALLEL_MAX {
                return false;
            }
            self.units.push(Unit {
                start: start as u32,
                len: (end - start) as u32,
                level: 0,
                open,
            });
            start = end;
        }
        true
    }

    /// Read-only checks and account lookups, in parallel.
    fn prepare(
        &mut self,
        records: &[TransferRecord],
        accounts: &AccountStore,
        transfers: &TransferStore,
    ) {
        use rayon::prelude::*;
        let unprepared = Prepared {
            debit: NO_SLOT,
            credit: NO_SLOT,
            early: CreateTransferResult::Ok,
        };
        self.prepared.clear();
        self.prepared.resize(records.len(), unprepared);
        self.prepared
            .par_chunks_mut(1024)
            .zip(records.par_chunks(1024))
            .for_each(|(prepared, records)| {
                for (prepared, record) in prepared.iter_mut().zip(records) {
                    *prepared = prepare_one(&Transfer::from_record(record), accounts, transfers);
                }
            });
    }

    /// Whether two items share a transfer id; such batches go sequential,
    /// where the second sees the first. Each thread checks one hash partition.
    fn has_duplicate_ids(&mut self, records: &[TransferRecord]) -> bool {
        use rayon::prelude::*;
        let partitions = rayon::current_num_threads().min(INDEX_SHARDS);
        self.id_sets.resize_with(partitions, HashSet::default);
        self.id_sets
            .par_iter_mut()
            .enumerate()
            .any(|(partition, seen)| {
                seen.clear();
                records
                    .iter()
                    .map(|record| record.id.get())
                    .filter(|id| shard_of(*id) % partitions == partition)
                    .any(|id| !seen.insert(id))
            })
    }

    /// Assigns levels and groups units by level; `false` if too narrow.
    fn schedule(&mut self, accounts_len: usize, level_width_min: usize) -> bool {
        self.marks.resize(accounts_len, (0, 0));
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill((0, 0));
            self.epoch = 1;
        }
        let mut level_max = 0;
        for unit in &mut self.units {
            unit.level = unit_level(unit, &self.prepared, &mut self.marks, self.epoch);
            level_max = level_max.max(unit.level);
        }
        if self.units.len() / (level_max as usize).max(1) < level_width_min {
            return false;
        }
        self.group_by_level(level_max as usize);
        true
    }

    /// A stable counting sort of units by level, and each unit's output offset.
    fn group_by_level(&mut self, level_max: usize) {
        self.level_starts.clear();
        self.level_starts.resize(level_max + 2, 0);
        for unit in &self.units {
            self.level_starts[unit.level as usize + 1] += 1;
        }
        for level in 1..self.level_starts.len() {
            self.level_starts[level] += self.level_starts[level - 1];
        }
        self.order.clear();
        self.order.resize(self.units.len(), 0);
        let mut next = self.level_starts.clone();
        for (index, unit) in self.units.iter().enumerate() {
            let position = &mut next[unit.level as usize];
            self.order[*position as usize] = index as u32;
            *position += 1;
        }
        self.offsets.clear();
        let mut offset = 0;
        for &index in &self.order {
            self.offsets.push(offset);
            offset += self.units[index as usize].len;
        }
    }

    /// Runs the levels in order; units of one level in parallel.
    fn execute(&mut self, records: &[TransferRecord], accounts: &mut AccountStore) {
        self.outputs.clear();
        self.outputs.resize(self.prepared.len(), OUTPUT_FAILED);
        for level in 1..self.level_starts.len() - 1 {
            let (first, last) = (
                self.level_starts[level] as usize,
                self.level_starts[level + 1] as usize,
            );
            if first == last {
                continue;
            }
            let output_first = self.offsets[first] as usize;
            let output_last = self
                .offsets
                .get(last)
                .map_or(self.outputs.len(), |&offset| offset as usize);
            let level_outputs = &mut self.outputs[output_first..output_last];
            let work = LevelWork {
                records,
                prepared: &self.prepared,
                units: &self.units,
                accounts: accounts.slots(),
            };
            let tasks_min =
                UNITS_PER_TASK_MIN.max((last - first) / (4 * rayon::current_num_threads()));
            work.run(
                &self.order[first..last],
                &self.offsets[first..last],
                output_first,
                level_outputs,
                tasks_min,
            );
            write_back(level_outputs, accounts.slots_mut());
        }
    }

    /// Copies codes into `results` and appends and indexes the new transfers.
    fn finish(
        &mut self,
        records: &[TransferRecord],
        timestamp: u64,
        transfers: &mut TransferStore,
        results: &mut Vec<CreateTransferResult>,
    ) {
        use rayon::prelude::*;
        results.clear();
        results.resize(records.len(), CreateTransferResult::Ok);
        for (&index, &offset) in self.order.iter().zip(&self.offsets) {
            let unit = self.units[index as usize];
            let outputs = &self.outputs[offset as usize..(offset + unit.len) as usize];
            let unit_results = &mut results[unit.start as usize..(unit.start + unit.len) as usize];
            for (result, output) in unit_results.iter_mut().zip(outputs) {
                *result = output.code;
            }
        }
        self.appended.clear();
        for (index, record) in records.iter().enumerate() {
            if results[index].is_ok() {
                let mut transfer = Transfer::from_record(record);
                transfer.timestamp = timestamp + index as u64;
                self.appended
                    .push((transfer.id, transfers.append(transfer)));
            }
        }
        let appended = &self.appended;
        transfers
            .index_shards_mut()
            .par_iter_mut()
            .enumerate()
            .for_each(|(shard, index)| {
                for &(id, position) in appended.iter().filter(|(id, _)| shard_of(*id) == shard) {
                    let previous = index.insert(id, position);
                    assert!(previous.is_none(), "transfer id inserted twice");
                }
            });
    }
}

fn prepare_one(request: &Transfer, accounts: &AccountStore, transfers: &TransferStore) -> Prepared {
    let mut prepared = Prepared {
        debit: NO_SLOT,
        credit: NO_SLOT,
        early: check::transfer_fields(request),
    };
    if !prepared.early.is_ok() {
        return prepared;
    }
    if let Some(stored) = transfers.get(request.id) {
        prepared.early = check::transfer_exists(stored, request);
        return prepared;
    }
    let debit = accounts.slot_of(request.debit_account_id);
    let credit = accounts.slot_of(request.credit_account_id);
    let slots = accounts.slots();
    prepared.early = check::transfer_accounts(
        request,
        debit.map(|slot| &slots[slot as usize]),
        credit.map(|slot| &slots[slot as usize]),
    );
    if prepared.early.is_ok() {
        prepared.debit = debit.expect("checked");
        prepared.credit = credit.expect("checked");
    }
    prepared
}

/// One more than the level of the last unit touching any account of `unit`;
/// marks those accounts with the new level.
fn unit_level(unit: &Unit, prepared: &[Prepared], marks: &mut [(u32, u32)], epoch: u32) -> u32 {
    let items = &prepared[unit.start as usize..(unit.start + unit.len) as usize];
    let slots = || {
        items
            .iter()
            .flat_map(|item| [item.debit, item.credit])
            .filter(|&slot| slot != NO_SLOT)
    };
    let below = slots()
        .map(|slot| marks[slot as usize])
        .filter(|&(mark_epoch, _)| mark_epoch == epoch)
        .map(|(_, level)| level)
        .max()
        .unwrap_or(0);
    let level = below + 1;
    for slot in slots() {
        marks[slot as usize] = (epoch, level);
    }
    level
}

/// What the workers of one level share, all read-only.
struct LevelWork<'a> {
    records: &'a [TransferRecord],
    prepared: &'a [Prepared],
    units: &'a [Unit],
    accounts: &'a [super::Account],
}

impl LevelWork<'_> {
    /// Runs `order` (unit indices) whose outputs start at `offsets` (absolute,
    /// `base` being the absolute offset of `outputs[0]`), splitting in two
    /// with `rayon::join` while more than `tasks_min` units remain.
    fn run(
        &self,
        order: &[u32],
        offsets: &[u32],
        base: usize,
        outputs: &mut [Output],
        tasks_min: usize,
    ) {
        if order.len() <= tasks_min {
            for (&index, &offset) in order.iter().zip(offsets) {
                let unit = &self.units[index as usize];
                let start = offset as usize - base;
                self.run_unit(unit, &mut outputs[start..start + unit.len as usize]);
            }
            return;
        }
        let middle = order.len() / 2;
        let split = offsets[middle] as usize - base;
        let (outputs_left, outputs_right) = outputs.split_at_mut(split);
        rayon::join(
            || {
                self.run(
                    &order[..middle],
                    &offsets[..middle],
                    base,
                    outputs_left,
                    tasks_min,
                )
            },
            || {
                self.run(
                    &order[middle..],
                    &offsets[middle..],
                    base + split,
                    outputs_right,
                    tasks_min,
                )
            },
        );
    }

    /// Evaluates one unit in order; a failure fails the whole chain.
    fn run_unit(&self, unit: &Unit, outputs: &mut [Output]) {
        if unit.open {
            outputs.fill(OUTPUT_FAILED);
            outputs[unit.len as usize - 1].code = CreateTransferResult::LinkedEventChainOpen;
            return;
        }
        for offset in 0..unit.len as usize {
            let item = unit.start as usize + offset;
            match self.evaluate(item, &outputs[..offset]) {
                Ok(output) => outputs[offset] = output,
                Err(code) => {
                    outputs.fill(OUTPUT_FAILED);
                    outputs[offset].code = code;
                    return;
                }
            }
        }
    }

    fn evaluate(&self, item: usize, earlier: &[Output]) -> Result<Output, CreateTransferResult> {
        let prepared = self.prepared[item];
        if !prepared.early.is_ok() {
            return Err(prepared.early);
        }
        let request = Transfer::from_record(&self.records[item]);
        let debit = current(self.accounts, earlier, prepared.debit);
        let credit = current(self.accounts, earlier, prepared.credit);
        let (debits_posted, credits_posted) = check::transfer_balances(&request, &debit, &credit)?;
        Ok(Output {
            code: CreateTransferResult::Ok,
            debit: prepared.debit,
            credit: prepared.credit,
            debits_posted,
            credits_posted,
        })
    }
}

/// The account at `slot` as the earlier items of the same chain left it.
fn current(accounts: &[super::Account], earlier: &[Output], slot: Slot) -> super::Account {
    let mut account = accounts[slot as usize];
    let mut debits_found = false;
    let mut credits_found = false;
    for output in earlier.iter().rev() {
        if !debits_found && output.debit == slot {
            account.debits_posted = output.debits_posted;
            debits_found = true;
        }
        if !credits_found && output.credit == slot {
            account.credits_posted = output.credits_posted;
            credits_found = true;
        }
    }
    account
}

/// Writes a level's new balances back, in order, so a chain's last posting wins.
fn write_back(outputs: &[Output], accounts: &mut [super::Account]) {
    for output in outputs.iter().filter(|output| output.code.is_ok()) {
        accounts[output.debit as usize].debits_posted = output.debits_posted;
        accounts[output.credit as usize].credits_posted = output.credits_posted;
    }
}
