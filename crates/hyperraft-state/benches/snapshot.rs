//! What a replica's apply waits for while a snapshot is taken: the whole
//! stream written from the live state (`write_snapshot`) against the copy
//! that is now taken under the lock (`snapshot_copy`), and the stream
//! written from that copy afterwards, on a ledger of 1 M transfers.
//!
//! `cargo bench -p hyperraft-state --bench snapshot`

use std::hint::black_box;
use std::num::NonZeroUsize;

use criterion::Criterion;
use hyperraft_load::{Skew, TransferGenerator};
use hyperraft_state::{BatchOutput, StateConfig, StateMachine};
use hyperraft_wire::{Frame, Limits};

const ACCOUNTS: u64 = 10_000;
const TRANSFERS: usize = 1_000_000;
const BATCH: usize = 8192;

fn apply(state: &mut StateMachine, bytes: &[u8], timestamp: &mut u64, output: &mut BatchOutput) {
    let frame = Frame::decode(bytes, &Limits::default()).expect("valid frame");
    state.apply(&frame, *timestamp, output).expect("a command");
    *timestamp += u64::from(frame.count());
}

fn ledger_of_a_million_transfers() -> StateMachine {
    let config = StateConfig { apply_threads: NonZeroUsize::MIN, ..StateConfig::default() };
    let mut state = StateMachine::new(config).expect("state");
    let (mut output, mut timestamp) = (BatchOutput::default(), 1);
    let mut frames = Vec::new();
    hyperraft_load::account_frames(ACCOUNTS, BATCH, &mut frames);
    for frame in &frames {
        apply(&mut state, frame, &mut timestamp, &mut output);
    }
    let mut generator = TransferGenerator::new(ACCOUNTS, Skew::Uniform, 3);
    let mut frame = Vec::new();
    while (state.ledger().transfers_len() as usize) < TRANSFERS {
        let left = TRANSFERS - state.ledger().transfers_len() as usize;
        generator.next_frame(left.min(BATCH), &mut frame);
        apply(&mut state, &frame, &mut timestamp, &mut output);
    }
    state
}

fn snapshot(criterion: &mut Criterion) {
    let state = ledger_of_a_million_transfers();
    let mut sized = Vec::new();
    state.write_snapshot(&mut sized).expect("a snapshot");
    let mut group = criterion.benchmark_group("snapshot_1m_transfers");
    group.sample_size(10);
    group.bench_function("write_snapshot", |b| {
        b.iter(|| {
            let mut bytes = Vec::new();
            state.write_snapshot(&mut bytes).expect("a snapshot");
            black_box(bytes)
        })
    });
    group.bench_function("snapshot_copy", |b| b.iter(|| black_box(state.snapshot_copy())));
    let copy = state.snapshot_copy();
    group.bench_function("copy_write_snapshot", |b| {
        b.iter(|| {
            let mut bytes = Vec::new();
            copy.write_snapshot(&mut bytes).expect("a snapshot");
            black_box(bytes)
        })
    });
    group.finish();
    println!("snapshot bytes: {}", sized.len());
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    snapshot(&mut criterion);
    criterion.final_summary();
}
