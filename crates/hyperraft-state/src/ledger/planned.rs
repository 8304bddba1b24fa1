//! Planned apply of a transfer batch, with exactly the sequential outcome.
//!
//! Applying item by item interleaves dependent work with hash lookups that
//! miss the cache (the transfer index is large), so the CPU waits on one
//! miss at a time. The planned path splits the batch into phases instead:
//!
//! 1. *prepare*: every read-only check and lookup (fields, `Exists`,
//!    account slots) in one tight loop, where the misses of independent
//!    items overlap — on several threads when a pool is given;
//! 2. *execute*: balances checked and posted, unit by unit (a unit is a
//!    lone transfer or a linked chain);
//! 3. *finish*: results, the transfer log, and the index inserts, again in
//!    a tight loop (one thread per index shard with a pool).
//!
//! With a pool, execute runs in *levels*: each unit's level is one more than
//! the highest level of any earlier unit that touches one of its accounts.
//! Units of one level touch disjoint accounts, so they run in parallel
//! against the state left by the lower levels, and every unit sees exactly
//! the accounts it would see in sequential order: earlier units that touch
//! its accounts sit at lower levels, and units that share a level touch
//! nothing it reads. Timestamps come from batch positions, so they too are
//! independent of the schedule. Workers only read the accounts and write
//! their outcome into their own slice of `outputs`; a short sequential pass
//! then writes the new balances back.
//!
//! Batches the plan does not fit are declined, having changed nothing, and
//! the caller applies them item by item: batches with a repeated transfer
//! id (the later item must see the earlier), chains longer than
//! `CHAIN_PLANNED_MAX`, and batches that could cross the capacity bound.
//! Small or densely conflicting batches skip the levels and execute in
//! order on the calling thread.

use hyperraft_wire::records::transfer_flags;
use hyperraft_wire::TransferRecord;

use super::accounts::{AccountStore, Slot};
use super::check;
use super::result::CreateTransferResult;
use super::transfer::Transfer;
use super::transfers::{IdKey, IndexShard, Position, TransferStore, INDEX_SHARDS};
use super::{unit_end, Ledger};

/// Chains longer than this are applied item by item (the in-chain overlay is a linear scan).
const CHAIN_PLANNED_MAX: usize = 64;
/// Units per task at the leaves of the split.
const UNITS_PER_TASK_MIN: usize = 64;

const NO_SLOT: Slot = Slot::MAX;

#[derive(Clone, Copy)]
struct Prepared {
    debit: Slot,
    credit: Slot,
    key: IdKey,
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
pub(crate) struct PlanScratch {
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
    /// Per hash partition, the batch's ids seen so far (record index by key).
    id_sets: Vec<IndexShard>,
    appended: Vec<(IdKey, Position)>,
    /// `appended` grouped by index shard, and where each shard's group starts.
    appended_by_shard: Vec<(IdKey, Position)>,
    shard_starts: ShardStarts,
}

/// Where each index shard's group starts in a list grouped by shard, and
/// past the end the total.
#[derive(Clone, Copy)]
struct ShardStarts([usize; INDEX_SHARDS + 1]);

impl Default for ShardStarts {
    fn default() -> Self {
        ShardStarts([0; INDEX_SHARDS + 1])
    }
}

/// Whether the planned path applied a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlannedOutcome {
    /// Applied, with the units executed in parallel levels.
    AppliedInLevels,
    /// Applied, with the units executed in order on the calling thread.
    AppliedInOrder,
    /// Nothing changed; the batch must be applied item by item.
    Declined,
}

impl Ledger {
    /// Applies `records` through the plan, on `pool` when it has two or more
    /// threads, or declines having changed nothing.
    pub(crate) fn create_transfers_planned(
        &mut self,
        records: &[TransferRecord],
        timestamp: u64,
        pool: Option<&rayon::ThreadPool>,
        results: &mut Vec<CreateTransferResult>,
    ) -> PlannedOutcome {
        if self.transfers.len() + records.len() as u64 > self.config.transfers_max || !self.plan.plan_units(records) {
            return PlannedOutcome::Declined;
        }
        match pool {
            Some(pool) if pool.current_num_threads() > 1 => {
                pool.install(|| self.run_plan(records, timestamp, true, results))
            }
            _ => self.run_plan(records, timestamp, false, results),
        }
    }

    fn run_plan(
        &mut self,
        records: &[TransferRecord],
        timestamp: u64,
        parallel: bool,
        results: &mut Vec<CreateTransferResult>,
    ) -> PlannedOutcome {
        let tuning = self.config.parallel;
        let scratch = &mut self.plan;
        scratch.prepare(records, &self.accounts, &self.transfers, parallel);
        if scratch.has_duplicate_ids(records, parallel) {
            return PlannedOutcome::Declined;
        }
        let in_levels = parallel
            && records.len() >= tuning.batch_min
            && scratch.schedule(self.accounts.len(), tuning.level_width_min);
        if in_levels {
            scratch.execute_in_levels(records, &mut self.accounts);
        } else {
            scratch.execute_in_order(records, &mut self.accounts);
        }
        scratch.finish(records, timestamp, &mut self.transfers, parallel, results);
        if in_levels {
            PlannedOutcome::AppliedInLevels
        } else {
            PlannedOutcome::AppliedInOrder
        }
    }
}

impl PlanScratch {
    /// Cuts the batch into units; `false` if a chain is too long.
    fn plan_units(&mut self, records: &[TransferRecord]) -> bool {
        self.units.clear();
        let is_linked = |i: usize| records[i].flags.get() & transfer_flags::LINKED != 0;
        let mut start = 0;
        while start < records.len() {
            let (end, open) = unit_end(records.len(), start, is_linked);
            if end - start > CHAIN_PLANNED_MAX {
                return false;
            }
            self.units.push(Unit { start: start as u32, len: (end - start) as u32, level: 0, open });
            start = end;
        }
        true
    }

    /// Read-only checks and account lookups, in one tight loop per thread.
    fn prepare(
        &mut self,
        records: &[TransferRecord],
        accounts: &AccountStore,
        transfers: &TransferStore,
        parallel: bool,
    ) {
        use rayon::prelude::*;
        let unprepared =
            Prepared { debit: NO_SLOT, credit: NO_SLOT, key: IdKey::default(), early: CreateTransferResult::Ok };
        self.prepared.clear();
        self.prepared.resize(records.len(), unprepared);
        let prepare_chunk = |(prepared, records): (&mut [Prepared], &[TransferRecord])| {
            // The index probes are cache misses on a large table, and the
            // accounts are too many for the nearest caches: key every
            // record and find its accounts' slots first (independent
            // lookups, whose misses overlap), then keep PREFETCH_AHEAD
            // records' index lines and accounts loading while each record
            // is checked.
            for (prepared, record) in prepared.iter_mut().zip(records) {
                prepared.key = transfers.key(record.id.get());
                prepared.debit = accounts.slot_of(record.debit_account_id.get()).unwrap_or(NO_SLOT);
                prepared.credit = accounts.slot_of(record.credit_account_id.get()).unwrap_or(NO_SLOT);
            }
            let prefetch = |ahead: &Prepared| {
                transfers.prefetch(ahead.key);
                accounts.prefetch(ahead.debit);
                accounts.prefetch(ahead.credit);
            };
            prepared.iter().take(PREFETCH_AHEAD).for_each(prefetch);
            for index in 0..records.len() {
                if let Some(ahead) = prepared.get(index + PREFETCH_AHEAD) {
                    prefetch(ahead);
                }
                let found = prepared[index];
                prepared[index] = prepare_one(&Transfer::from_record(&records[index]), found, accounts, transfers);
            }
        };
        if parallel {
            self.prepared.par_chunks_mut(1024).zip(records.par_chunks(1024)).for_each(prepare_chunk);
        } else {
            prepare_chunk((&mut self.prepared, records));
        }
    }

    /// Whether two items share a transfer id; such batches are declined so
    /// the later item sees the earlier. With a pool each thread checks one
    /// hash partition.
    fn has_duplicate_ids(&mut self, records: &[TransferRecord], parallel: bool) -> bool {
        use rayon::prelude::*;
        let partitions = if parallel { rayon::current_num_threads().min(INDEX_SHARDS) } else { 1 };
        self.id_sets.resize_with(partitions, IndexShard::default);
        let prepared = &self.prepared;
        let check = |(partition, seen): (usize, &mut IndexShard)| {
            seen.clear();
            (0..records.len()).filter(|&index| prepared[index].key.shard() % partitions == partition).any(|index| {
                let id = records[index].id.get();
                !seen.insert_unless(prepared[index].key, index as Position, |earlier| {
                    records[earlier as usize].id.get() == id
                })
            })
        };
        if parallel {
            self.id_sets.par_iter_mut().enumerate().any(check)
        } else {
            check((0, &mut self.id_sets[0]))
        }
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

    /// Runs every unit in batch order on this thread, posting as it goes.
    fn execute_in_order(&mut self, records: &[TransferRecord], accounts: &mut AccountStore) {
        self.order.clear();
        self.offsets.clear();
        self.outputs.clear();
        self.outputs.resize(self.prepared.len(), OUTPUT_FAILED);
        for (index, unit) in self.units.iter().enumerate() {
            self.order.push(index as u32);
            self.offsets.push(unit.start);
            let outputs = &mut self.outputs[unit.start as usize..(unit.start + unit.len) as usize];
            let work = LevelWork { records, prepared: &self.prepared, units: &self.units, accounts: accounts.slots() };
            work.run_unit(unit, outputs);
            write_back(outputs, accounts.slots_mut());
        }
    }

    /// Runs the levels in order; units of one level in parallel.
    fn execute_in_levels(&mut self, records: &[TransferRecord], accounts: &mut AccountStore) {
        self.outputs.clear();
        self.outputs.resize(self.prepared.len(), OUTPUT_FAILED);
        for level in 1..self.level_starts.len() - 1 {
            let (first, last) = (self.level_starts[level] as usize, self.level_starts[level + 1] as usize);
            if first == last {
                continue;
            }
            let output_first = self.offsets[first] as usize;
            let output_last = self.offsets.get(last).map_or(self.outputs.len(), |&offset| offset as usize);
            let level_outputs = &mut self.outputs[output_first..output_last];
            let work = LevelWork { records, prepared: &self.prepared, units: &self.units, accounts: accounts.slots() };
            let tasks_min = UNITS_PER_TASK_MIN.max((last - first) / (4 * rayon::current_num_threads()));
            work.run(&self.order[first..last], &self.offsets[first..last], output_first, level_outputs, tasks_min);
            write_back(level_outputs, accounts.slots_mut());
        }
    }

    /// A counting sort of `appended` into `appended_by_shard`.
    fn group_appended_by_shard(&mut self) {
        let starts = &mut self.shard_starts.0;
        *starts = [0; INDEX_SHARDS + 1];
        for (key, _) in &self.appended {
            starts[key.shard() + 1] += 1;
        }
        for shard in 1..=INDEX_SHARDS {
            starts[shard] += starts[shard - 1];
        }
        let mut next = *starts;
        self.appended_by_shard.clear();
        self.appended_by_shard.resize(self.appended.len(), (IdKey::default(), 0));
        for &(key, position) in &self.appended {
            self.appended_by_shard[next[key.shard()]] = (key, position);
            next[key.shard()] += 1;
        }
    }

    /// Copies codes into `results` and appends and indexes the new transfers.
    fn finish(
        &mut self,
        records: &[TransferRecord],
        timestamp: u64,
        transfers: &mut TransferStore,
        parallel: bool,
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
                self.appended.push((self.prepared[index].key, transfers.append(transfer)));
            }
        }
        self.group_appended_by_shard();
        let (appended, starts) = (&self.appended_by_shard, &self.shard_starts.0);
        let index_shard = |(shard, index): (usize, &mut IndexShard)| {
            insert_prefetched(index, &appended[starts[shard]..starts[shard + 1]]);
        };
        if parallel {
            transfers.index_shards_mut().par_iter_mut().enumerate().for_each(index_shard);
        } else {
            transfers.index_shards_mut().iter_mut().enumerate().for_each(index_shard);
        }
    }
}

/// Checks one request, given its index key and its accounts' slots
/// (`NO_SLOT`: not found) in `found`.
fn prepare_one(request: &Transfer, found: Prepared, accounts: &AccountStore, transfers: &TransferStore) -> Prepared {
    let key = found.key;
    let mut prepared = Prepared { debit: NO_SLOT, credit: NO_SLOT, key, early: check::transfer_fields(request) };
    if !prepared.early.is_ok() {
        return prepared;
    }
    if let Some(stored) = transfers.get_keyed(request.id, key) {
        prepared.early = check::transfer_exists(stored, request);
        return prepared;
    }
    let debit = Some(found.debit).filter(|&slot| slot != NO_SLOT);
    let credit = Some(found.credit).filter(|&slot| slot != NO_SLOT);
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

/// Index probes kept in flight ahead of the one being made: enough to
/// overlap several cache misses, few enough that the lines are still cached
/// when their turn comes.
const PREFETCH_AHEAD: usize = 8;

/// Inserts one shard's new entries, prefetching the lines of later ones.
fn insert_prefetched(index: &mut IndexShard, entries: &[(IdKey, Position)]) {
    // Growing first keeps the prefetched lines where the inserts go.
    index.reserve(entries.len());
    for (at, &(key, position)) in entries.iter().enumerate() {
        if let Some(&(ahead, _)) = entries.get(at + PREFETCH_AHEAD) {
            index.prefetch(ahead);
        }
        index.insert(key, position);
    }
}

/// One more than the level of the last unit touching any account of `unit`;
/// marks those accounts with the new level.
fn unit_level(unit: &Unit, prepared: &[Prepared], marks: &mut [(u32, u32)], epoch: u32) -> u32 {
    let items = &prepared[unit.start as usize..(unit.start + unit.len) as usize];
    let slots = || items.iter().flat_map(|item| [item.debit, item.credit]).filter(|&slot| slot != NO_SLOT);
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
    fn run(&self, order: &[u32], offsets: &[u32], base: usize, outputs: &mut [Output], tasks_min: usize) {
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
            || self.run(&order[..middle], &offsets[..middle], base, outputs_left, tasks_min),
            || self.run(&order[middle..], &offsets[middle..], base + split, outputs_right, tasks_min),
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
