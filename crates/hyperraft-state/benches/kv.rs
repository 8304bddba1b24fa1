//! Sequential apply against parallel lanes for batches of puts, to find
//! where lanes start to pay (`LaneTuning::segment_commands_min`).
//!
//! Run: `cargo bench -p hyperraft-state --bench kv`. Each batch holds N puts
//! (16-byte keys, 64-byte values) over uniform random keys from a space of
//! 100,000 keys that is filled beforehand, so the store is in steady state:
//! most puts update, and the full history drops one event per new one.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hyperraft_state::kv::{KvConfig, KvResponse, KvStore, LaneTuning};
use hyperraft_wire::{Body, Frame, KvBatchWriter, KvCommands, Limits, PutView};

const KEY_SPACE: u64 = 100_000;
/// Distinct puts prepared per batch size, so that small batches touch as
/// many cold keys as large ones instead of a few cached ones.
const PUTS_PER_SIZE: usize = 65_536;
const BATCH_SIZES: [usize; 9] = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// splitmix64: a fixed, seedable sequence, so every run measures the same keys.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut mixed = *state;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^ (mixed >> 31)
}

fn key(index: u64) -> [u8; 16] {
    let mut key = *b"key-000000000000";
    key[4..12].copy_from_slice(&index.to_be_bytes());
    key
}

fn put_frame(keys: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    let value = [7u8; 64];
    for index in keys {
        let key = key(index);
        writer.put(PutView { key: &key, value: &value, lease: 0, prev_kv: false }).expect("a valid put");
    }
    writer.finish();
    out
}

fn commands_of(frame: &[u8]) -> KvCommands<'_> {
    let decoded = Frame::decode(frame, &Limits::default()).expect("the frame decodes");
    let Body::Kv(commands) = decoded.body() else { panic!("not a Kv frame") };
    commands
}

fn apply(
    store: &mut KvStore,
    commands: KvCommands<'_>,
    pool: Option<&rayon::ThreadPool>,
    results: &mut Vec<KvResponse>,
) {
    results.clear();
    match pool {
        Some(pool) => store.apply_batch(commands, 0, Some(pool), results),
        None => store.apply_batch_sequential(commands, 0, results),
    }
}

/// A store holding every key of the space, its history full.
fn filled_store(tuning: LaneTuning) -> KvStore {
    let mut store = KvStore::with_lane_tuning(KvConfig::default(), tuning);
    let mut results = Vec::new();
    let all: Vec<u64> = (0..KEY_SPACE).collect();
    for chunk in all.chunks(4096) {
        let frame = put_frame(chunk.iter().copied());
        apply(&mut store, commands_of(&frame), None, &mut results);
    }
    store
}

/// Lanes forced for every batch, so the comparison shows the crossover.
const FORCED: LaneTuning = LaneTuning { segment_commands_min: 1, lane_share_max_percent: 100 };

/// Batches of `size` puts over uniform random keys, `PUTS_PER_SIZE` in all.
fn put_frames(size: usize, random: &mut u64) -> Vec<Vec<u8>> {
    let frame_count = PUTS_PER_SIZE / size;
    let mut frame = || put_frame((0..size).map(|_| next_random(random) % KEY_SPACE));
    (0..frame_count).map(|_| frame()).collect()
}

fn two_thread_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("the pool starts")
}

/// Each variant measured on its own, as criterion does.
fn bench_put_batches(criterion: &mut Criterion) {
    let pool = two_thread_pool();
    let mut group = criterion.benchmark_group("kv_put_batch");
    let mut random = 1u64;
    for size in BATCH_SIZES {
        let frames = put_frames(size, &mut random);
        // Decoded up front: only apply is measured.
        let batches: Vec<KvCommands<'_>> = frames.iter().map(|frame| commands_of(frame)).collect();
        group.throughput(Throughput::Elements(size as u64));
        let cases: [(&str, Option<&rayon::ThreadPool>, LaneTuning); 3] = [
            ("sequential", None, FORCED),
            ("lanes_2_threads", Some(&pool), FORCED),
            ("default_2_threads", Some(&pool), LaneTuning::default()),
        ];
        for (name, pool, tuning) in cases {
            group.bench_function(BenchmarkId::new(name, size), |bencher| {
                // Built here, so a filtered-out case costs nothing.
                let mut store = filled_store(tuning);
                let mut results = Vec::with_capacity(size);
                let mut next = 0;
                bencher.iter(|| {
                    next = (next + 1) % batches.len();
                    apply(&mut store, batches[next], pool, &mut results);
                });
            });
        }
    }
    group.finish();
}

/// Sequential and lanes applied to the same batches in alternating blocks,
/// timing each: on a shared machine the load changes over the minutes a
/// criterion run takes, and only a paired ratio stays meaningful. Blocks
/// (one criterion sample each, tens of milliseconds) rather than single
/// batches, because alternating two stores batch by batch makes each evict
/// the other from the caches, which a node with one store never sees.
/// Criterion reports the lanes time; the median ratio lanes / sequential
/// over the blocks is printed after each size.
fn bench_paired(criterion: &mut Criterion) {
    let pool = two_thread_pool();
    let mut group = criterion.benchmark_group("kv_put_batch_paired");
    let mut random = 2u64;
    for size in BATCH_SIZES {
        let frames = put_frames(size, &mut random);
        let batches: Vec<KvCommands<'_>> = frames.iter().map(|frame| commands_of(frame)).collect();
        let mut ratios: Vec<f64> = Vec::new();
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::new("lanes_2_threads", size), |bencher| {
            let (mut sequential, mut lanes) = (filled_store(FORCED), filled_store(FORCED));
            let mut results = Vec::with_capacity(size);
            // Each store walks the batches in turn, so no block replays keys
            // that the previous block left in the caches.
            let mut cursors = [0usize; 2];
            let mut block = |store: &mut KvStore, cursor: &mut usize, pool, iterations: u64| {
                let start = Instant::now();
                for _ in 0..iterations {
                    *cursor = (*cursor + 1) % batches.len();
                    apply(store, batches[*cursor], pool, &mut results);
                }
                start.elapsed()
            };
            bencher.iter_custom(|iterations| {
                let [sequential_cursor, lanes_cursor] = &mut cursors;
                let sequential_time = block(&mut sequential, sequential_cursor, None, iterations);
                let lanes_time = block(&mut lanes, lanes_cursor, Some(&pool), iterations);
                ratios.push(lanes_time.as_secs_f64() / sequential_time.as_secs_f64());
                lanes_time
            });
        });
        ratios.sort_by(f64::total_cmp);
        if let Some(median) = ratios.get(ratios.len() / 2) {
            println!("paired {size:>5} puts: lanes / sequential = {median:.2} (median of {} blocks)", ratios.len());
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_put_batches, bench_paired
}
criterion_main!(benches);
