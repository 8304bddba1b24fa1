//! Heap allocations per committed transfer on a whole replicated write path
//! in steady state: the leader's batcher, openraft, the log (encode, write,
//! fdatasync), QUIC to the followers and their logs, and apply on every
//! replica — everything the process does, counted by a global allocator.
//!
//! `cargo bench -p hyperraft-node --bench alloc -- [NODES] [SECONDS]`
//!
//! Writers submit frames of 1024 transfers (made in reused buffers, so the
//! writers themselves allocate only what `Batcher::submit` does per
//! request); after a warm-up the count runs for SECONDS (default 3) and is
//! divided by the transfers, requests and Raft entries committed meanwhile.

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
const BATCH: usize = 1024;
const WRITERS: usize = 16;
const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    let mut args = std::env::args().skip(1).filter(|arg| !arg.starts_with('-'));
    let nodes: u64 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(3);
    let seconds: f64 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let root = tempfile::tempdir().expect("temporary folder");
    runtime.block_on(run(root.path(), nodes, seconds));
}

async fn run(root: &std::path::Path, nodes: u64, seconds: f64) {
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
        writers.push(tokio::spawn(write(batcher.clone(), generator, stop.clone(), committed.clone())));
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
        "nodes={nodes} seconds={:.1} transfers={transfers} requests={requests} entries={entries} \
         allocations={allocations} per_transfer={:.4} per_request={:.1} per_entry={:.1} bytes_per_transfer={:.1}",
        elapsed.as_secs_f64(),
        per(transfers),
        per(requests),
        per(entries),
        bytes as f64 / transfers.max(1) as f64,
    );
    cluster.shutdown().await.expect("shutdown");
}

async fn write(batcher: Batcher, mut generator: TransferGenerator, stop: Arc<AtomicBool>, committed: Arc<AtomicU64>) {
    let mut frame = Vec::with_capacity(BATCH * 96 + 64);
    while !stop.load(Ordering::Relaxed) {
        generator.next_frame(BATCH, &mut frame);
        if batcher.submit(&frame).await.is_ok() {
            committed.fetch_add(BATCH as u64, Ordering::Relaxed);
        }
    }
}
