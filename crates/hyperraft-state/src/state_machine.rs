//! The replicated state machine: one validated frame in, results out.
//!
//! [`StateMachine::apply`] is what every replica runs for every committed
//! batch. Given the same sequence of `(frame, timestamp)` it produces the
//! same results and the same state everywhere: timestamps come from the
//! batch (proposed by the leader, made strictly increasing here), and the
//! parallel paths are proven equal to the sequential ones. Task frames
//! (`Kind::Tasks`) are applied sequentially by the [`TaskStore`], decision
//! frames (`Kind::Decisions`) by the [`DecisionStore`], durable bus frames
//! (`Kind::Bus`) by the [`BusStore`].

use hyperraft_wire::{AccountRecord, Body, Frame, KvCommand, TransferRecord};

use crate::bus::{BusResponse, BusStore, BusStoreConfig};
use crate::decisions::{DecisionConfig, DecisionResponse, DecisionStore};
use crate::kv::{KvConfig, KvResponse, KvStore};
use crate::ledger::{CreateAccountResult, CreateTransferResult, Ledger, LedgerConfig, TRANSFERS_MAX_LIMIT};
use crate::tasks::{TaskConfig, TaskResponse, TaskStore};

/// Everything that shapes a state machine.
#[derive(Clone, Debug)]
pub struct StateConfig {
    pub ledger: LedgerConfig,
    pub kv: KvConfig,
    pub tasks: TaskConfig,
    pub decisions: DecisionConfig,
    pub bus: BusStoreConfig,
    /// Threads that apply one batch; 1 applies everything sequentially.
    pub apply_threads: std::num::NonZeroUsize,
}

impl Default for StateConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        StateConfig {
            ledger: LedgerConfig::default(),
            kv: KvConfig::default(),
            tasks: TaskConfig::default(),
            decisions: DecisionConfig::default(),
            bus: BusStoreConfig::default(),
            apply_threads: std::num::NonZeroUsize::new(cores.min(4)).expect("at least one"),
        }
    }
}

impl StateConfig {
    /// Checks bounds no state machine can honour.
    pub fn validate(&self) -> Result<(), StateError> {
        if self.ledger.transfers_max > TRANSFERS_MAX_LIMIT {
            return Err(StateError::Config(format!(
                "ledger.transfers_max {} exceeds the limit of {TRANSFERS_MAX_LIMIT}",
                self.ledger.transfers_max
            )));
        }
        Ok(())
    }
}

/// Why a frame was not applied. The state is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("a {0:?} frame is not a command")]
    NotACommand(hyperraft_wire::Kind),
    #[error("this {0:?} frame is not read-only")]
    NotARead(hyperraft_wire::Kind),
}

/// Why a state machine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot start the apply thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    #[error("invalid state configuration: {0}")]
    Config(String),
}

/// Results of one applied frame. Reused across batches: `apply` clears the
/// vectors it fills and leaves their capacity.
#[derive(Debug, Default)]
pub struct BatchOutput {
    pub account_results: Vec<CreateAccountResult>,
    pub transfer_results: Vec<CreateTransferResult>,
    /// Found accounts of a lookup, in request order; missing ids are skipped.
    pub accounts: Vec<AccountRecord>,
    /// Found transfers of a lookup, in request order; missing ids are skipped.
    pub transfers: Vec<TransferRecord>,
    pub kv: Vec<KvResponse>,
    /// One response per task command.
    pub tasks: Vec<TaskResponse>,
    /// One response per decision command.
    pub decisions: Vec<DecisionResponse>,
    /// One response per durable bus command.
    pub bus: Vec<BusResponse>,
}

pub struct StateMachine {
    config: StateConfig,
    ledger: Ledger,
    kv: KvStore,
    tasks: TaskStore,
    decisions: DecisionStore,
    bus: BusStore,
    pool: Option<rayon::ThreadPool>,
    /// Timestamp of the last item applied; the next batch starts above it.
    timestamp_last: u64,
}

impl StateMachine {
    pub fn new(config: StateConfig) -> Result<StateMachine, StateError> {
        config.validate()?;
        let ledger = Ledger::new(config.ledger);
        let kv = KvStore::new(config.kv);
        let tasks = TaskStore::new(config.tasks);
        let decisions = DecisionStore::new(config.decisions);
        let bus = BusStore::new(config.bus);
        StateMachine::from_parts(config, Stores { ledger, kv, tasks, decisions, bus }, 0)
    }

    pub(crate) fn from_parts(
        config: StateConfig,
        stores: Stores,
        timestamp_last: u64,
    ) -> Result<StateMachine, StateError> {
        let pool = build_pool(config.apply_threads)?;
        let Stores { ledger, kv, tasks, decisions, bus } = stores;
        Ok(StateMachine { config, ledger, kv, tasks, decisions, bus, pool, timestamp_last })
    }

    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// The task store, for reads that need no log entry (`task`,
    /// `pending`, `tasks_of_agent`).
    pub fn tasks(&self) -> &TaskStore {
        &self.tasks
    }

    /// The decision store, for reads that need no log entry (`proposal`,
    /// `public_key`).
    pub fn decisions(&self) -> &DecisionStore {
        &self.decisions
    }

    /// The durable bus topics, for replay and live reads by offset.
    pub fn bus(&self) -> &BusStore {
        &self.bus
    }

    pub fn timestamp_last(&self) -> u64 {
        self.timestamp_last
    }

    /// Applies one committed frame. `timestamp` is the leader's clock when it
    /// formed the batch; the batch's items get strictly increasing
    /// timestamps from `max(timestamp, last + 1)` on.
    pub fn apply(&mut self, frame: &Frame<'_>, timestamp: u64, output: &mut BatchOutput) -> Result<(), ApplyError> {
        let start = timestamp.max(self.timestamp_last + 1);
        let pool = self.pool.as_ref();
        match frame.body() {
            Body::CreateAccounts(records) => {
                self.ledger.create_accounts(records, start, &mut output.account_results);
                self.advance(start, records.len());
            }
            Body::CreateTransfers(records) => {
                self.ledger.create_transfers(records, start, pool, &mut output.transfer_results);
                self.advance(start, records.len());
            }
            Body::LookupAccounts(_) | Body::LookupTransfers(_) => return self.read(frame, output),
            Body::Kv(commands) => {
                // The whole batch shares one timestamp, the clock of lease
                // deadlines; taking it from `start` keeps that clock from
                // going back when the leader's does.
                output.kv.clear();
                self.kv.apply_batch(commands, start, pool, &mut output.kv);
                self.advance(start, 1);
            }
            Body::Tasks(commands) => {
                // Like key/value batches, the whole batch shares one
                // timestamp: the clock of assignments and deadlines.
                output.tasks.clear();
                self.tasks.apply_batch(&commands, start, &mut output.tasks);
                self.advance(start, 1);
            }
            Body::Decisions(commands) => {
                // One timestamp for the batch: the clock of deadlines.
                output.decisions.clear();
                self.decisions.apply_batch(&commands, start, &mut output.decisions);
                self.advance(start, 1);
            }
            Body::Bus(commands) => {
                // Nothing in the bus store reads the clock; the batch still
                // takes a timestamp so the clock stays strictly increasing.
                output.bus.clear();
                self.bus.apply_batch(&commands, &mut output.bus);
                self.advance(start, 1);
            }
            Body::Results(_) => return Err(ApplyError::NotACommand(frame.kind())),
        }
        Ok(())
    }

    /// Answers a read-only frame from the current state: account or
    /// transfer lookups, or key/value frames made only of ranges. Changes
    /// nothing, so a replica may serve it outside the log (after making
    /// sure its state is current, for a linearizable read).
    pub fn read(&self, frame: &Frame<'_>, output: &mut BatchOutput) -> Result<(), ApplyError> {
        match frame.body() {
            Body::LookupAccounts(ids) => {
                output.accounts.clear();
                let found = ids.iter().filter_map(|id| self.ledger.account(id.get()));
                output.accounts.extend(found.map(|account| account.to_record()));
            }
            Body::LookupTransfers(ids) => {
                output.transfers.clear();
                let found = ids.iter().filter_map(|id| self.ledger.transfer(id.get()));
                output.transfers.extend(found.map(|transfer| transfer.to_record()));
            }
            Body::Kv(commands) => {
                if commands.iter().any(|command| !matches!(command, KvCommand::Range(_))) {
                    return Err(ApplyError::NotARead(frame.kind()));
                }
                output.kv.clear();
                for command in commands.iter() {
                    if let KvCommand::Range(view) = command {
                        output.kv.push(self.kv.range(&view));
                    }
                }
            }
            _ => return Err(ApplyError::NotARead(frame.kind())),
        }
        Ok(())
    }

    fn advance(&mut self, start: u64, items: usize) {
        if items > 0 {
            self.timestamp_last = start + items as u64 - 1;
        }
    }
}

/// The stores of one state machine, as restored from a snapshot.
pub(crate) struct Stores {
    pub ledger: Ledger,
    pub kv: KvStore,
    pub tasks: TaskStore,
    pub decisions: DecisionStore,
    pub bus: BusStore,
}

fn build_pool(threads: std::num::NonZeroUsize) -> Result<Option<rayon::ThreadPool>, StateError> {
    if threads.get() == 1 {
        return Ok(None);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.get())
        .thread_name(|index| format!("apply-{index}"))
        .build()?;
    Ok(Some(pool))
}
