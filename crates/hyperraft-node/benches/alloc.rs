//! Heap allocations per committed transfer on a whole replicated write path
//! in steady state: the leader's batcher, openraft, the log (encode, write,
//! fdatasync), QUIC to the followers and their logs, and apply on every
//! replica — everything the process does, counted by a global allocator.
//!
//! `cargo bench -p hyperraft-node --bench alloc -- [NODES] [SECONDS] [BATCH]`
//!
//! Writers submit frames of BATCH transfers (default 1024) (made in reused buffers, so the
//! writers themselves allocate only what `Batcher::submit` does per
//! request); after a warm-up the count runs for SECONDS (default 3) and is
//! divided by the transfers, requests and Raft entries committed meanwhile.
//! Runs with different BATCH sizes show what the count scales with: if
//! allocations per request stay the same while requests carry more
//! transfers, none of them is per transfer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperraft_load::{Skew, TransferGenerator};
use hyperraft_node::{Batcher, EmbeddedCluster, RaftTuning};

/// Counts every allocation and reallocation the process makes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(size as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(pointer, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ACCOUNTS: u64 = 10_000;
const WRITERS: usize = 16;
const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    let mut args = std::env::args().skip(1).filter(|arg| !arg.starts_with('-'));
    let nodes: u64 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(3);
    let seconds: f64 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(3.0);
    let batch: usize = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(1024);
    assert!((1..=8190).contains(&batch), "BATCH is 1 to 8190 transfers");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let root = tempfile::tempdir().expect("temporary folder");
    runtime.block_on(run(root.path(), nodes, seconds, batch));
}

async fn run(root: &std::path::Path, nodes: u64, seconds: f64, batch: usize) {
    let mut cluster = EmbeddedCluster::new(root, nodes, RaftTuning::default(), 1).expect("cluster");
    cluster.start_all().await.expect("start");
    let leader = cluster.leader(PATIENCE).await.expect("leader");
    let mut frames = Vec::new();
    hyperraft_load::account_frames(ACCOUNTS, 8190, &mut frames);
    for frame in &frames {
        cluster.write(frame, PATIENCE).await.expect("create accounts");
    }
    let batcher = cluster.node(leader).writer();
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let first_id = ((writer as u128 + 1) << 64) | 1;
        let generator = TransferGenerator::new(ACCOUNTS, Skew::Uniform, writer as u64).with_first_id(first_id);
        writers.push(tokio::spawn(write(batcher.clone(), generator, batch, stop.clone(), committed.clone())));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (stats_before, committed_before) = (batcher.stats(), committed.load(Ordering::Relaxed));
    let (allocations_before, bytes_before) =
        (ALLOCATIONS.load(Ordering::Relaxed), ALLOCATED_BYTES.load(Ordering::Relaxed));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (allocations, bytes) = (
        ALLOCATIONS.load(Ordering::Relaxed) - allocations_before,
        ALLOCATED_BYTES.load(Ordering::Relaxed) - bytes_before,
    );
    let elapsed = started.elapsed();
    let transfers = committed.load(Ordering::Relaxed) - committed_before;
    let stats = batcher.stats();
    let (entries, requests) = (stats.proposals - stats_before.proposals, stats.requests - stats_before.requests);
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let per = |count: u64| allocations as f64 / count.max(1) as f64;
    println!(
        "nodes={nodes} batch={batch} seconds={:.1} transfers={transfers} requests={requests} entries={entries} \
         allocations={allocations} per_transfer={:.4} per_request={:.1} per_entry={:.1} bytes_per_transfer={:.1}",
        elapsed.as_secs_f64(),
        per(transfers),
        per(requests),
        per(entries),
        bytes as f64 / transfers.max(1) as f64,
    );
    cluster.shutdown().await.expect("shutdown");
}

async fn write(
    batcher: Batcher,
    mut generator: TransferGenerator,
    batch: usize,
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
) {
    let mut frame = Vec::with_capacity(batch * 96 + 64);
    while !stop.load(Ordering::Relaxed) {
        generator.next_frame(batch, &mut frame);
        if batcher.submit(&frame).await.is_ok() {
            committed.fetch_add(batch as u64, Ordering::Relaxed);
        }
    }
}
