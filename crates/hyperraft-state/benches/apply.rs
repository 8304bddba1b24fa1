//! Apply throughput of transfer batches, 1 thread vs 2, uniform vs skewed,
//! and heap allocations per applied transfer in steady state.
//!
//! `cargo bench -p hyperraft-state --bench apply`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, Throughput};
use hyperraft_load::{Skew, TransferGenerator};
use hyperraft_state::ledger::LedgerConfig;
use hyperraft_state::{BatchOutput, StateConfig, StateMachine};
use hyperraft_wire::{Frame, Limits};

/// Counts every allocation and reallocation the process makes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(pointer, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ACCOUNTS: u64 = 10_000;
const BATCH: usize = 8192;

struct Bench {
    state: StateMachine,
    output: BatchOutput,
    timestamp: u64,
}

impl Bench {
    fn new(threads: usize) -> Bench {
        let config = StateConfig {
            ledger: LedgerConfig {
                transfers_max: hyperraft_state::ledger::TRANSFERS_MAX_LIMIT,
                ..LedgerConfig::default()
            },
            apply_threads: NonZeroUsize::new(threads).expect("non-zero"),
            ..StateConfig::default()
        };
        let mut bench =
            Bench { state: StateMachine::new(config).expect("state"), output: BatchOutput::default(), timestamp: 1 };
        let mut frames = Vec::new();
        hyperraft_load::account_frames(ACCOUNTS, BATCH, &mut frames);
        for frame in &frames {
            bench.apply(frame);
        }
        bench
    }

    fn apply(&mut self, frame: &[u8]) {
        let frame = Frame::decode(frame, &Limits::default()).expect("valid frame");
        self.state.apply(&frame, self.timestamp, &mut self.output).expect("a command");
        self.timestamp += u64::from(frame.count());
    }
}

fn throughput(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("apply_transfers");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, skew) in [("uniform", Skew::Uniform), ("zipf1.1", Skew::Zipf(1.1))] {
        for threads in [1, 2] {
            let mut bench = Bench::new(threads);
            let mut generator = TransferGenerator::new(ACCOUNTS, skew, 7);
            group.bench_function(format!("{name}/threads{threads}"), |b| {
                b.iter_batched_ref(
                    || {
                        let mut frame = Vec::new();
                        generator.next_frame(BATCH, &mut frame);
                        frame
                    },
                    |frame| bench.apply(black_box(frame)),
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

/// Applies warm-up batches, then counts allocations over steady-state ones.
fn allocations_per_transfer() {
    for threads in [1, 2] {
        let mut bench = Bench::new(threads);
        let mut generator = TransferGenerator::new(ACCOUNTS, Skew::Uniform, 11);
        let mut frame = Vec::new();
        let (warmup, measured) = (50, 200);
        let mut allocations = 0;
        for round in 0..warmup + measured {
            generator.next_frame(BATCH, &mut frame);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            bench.apply(&frame);
            if round >= warmup {
                allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
            }
        }
        let transfers = (measured * BATCH) as f64;
        println!(
            "allocations: threads={threads} batches={measured} per_batch={:.3} per_transfer={:.6}",
            allocations as f64 / measured as f64,
            allocations as f64 / transfers
        );
    }
}

fn main() {
    allocations_per_transfer();
    let mut criterion = Criterion::default().configure_from_args();
    throughput(&mut criterion);
    criterion.final_summary();
}
