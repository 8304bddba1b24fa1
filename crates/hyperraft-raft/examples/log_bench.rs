//! Throughput of the durable log on this machine's disk: entries/s, MB/s and
//! fdatasyncs/s for 1, 16 and 256 entries per append, each entry carrying a
//! 64 KiB frame, with appends issued one at a time (wait for each flush) and
//! pipelined (up to 64 appends in flight, as openraft does).
//!
//! Each case is preceded, in the same run, by a baseline on the same disk:
//! plain `pwrite` of the same bytes per append to a growing file, each
//! followed by `fdatasync` (what a log without group commit would cost). The
//! ratio of the two holds on a noisy shared disk where absolute rates do not.
//!
//! Every case runs `repetitions` times (baseline, then log, each time) and
//! the table shows medians.
//!
//! Run: `cargo run --release -p hyperraft-raft --example log_bench -- [dir] [mib] [repetitions] [frame_bytes]`
//! where `dir` is a directory on the disk to measure (default: the system
//! temporary directory), `mib` the data written per case and repetition
//! (default 256), `repetitions` defaults to 3 and `frame_bytes` to 65536.

use std::collections::VecDeque;
use std::error::Error;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hyperraft_raft::log::{LogConfig, LogStore};
use hyperraft_raft::{Batch, TypeConfig};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

const FRAME_BYTES_DEFAULT: usize = 64 * 1024;
/// Record header plus postcard's log id, enum tag, timestamp and length.
const RECORD_OVERHEAD_BYTES: usize = 40;
const DEPTH_PIPELINED: usize = 64;

#[derive(Clone, Copy)]
struct Case {
    entries_per_append: u64,
    depth: usize,
    entries_total: u64,
    frame_bytes: usize,
}

/// One repetition of one case.
#[derive(Clone, Copy)]
struct Measurement {
    entries_per_second: f64,
    megabytes_per_second: f64,
    syncs_per_second: f64,
    entries_per_sync: f64,
    baseline_entries_per_second: f64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut arguments = std::env::args().skip(1);
    let base = arguments.next().map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let mebibytes = match arguments.next() {
        Some(text) => text.parse::<u64>()?,
        None => 256,
    };
    let repetitions = match arguments.next() {
        Some(text) => text.parse::<usize>()?.max(1),
        None => 3,
    };
    let frame_bytes = match arguments.next() {
        Some(text) => text.parse::<usize>()?.max(1),
        None => FRAME_BYTES_DEFAULT,
    };
    let entries_total = mebibytes * 1024 * 1024 / frame_bytes as u64;
    println!(
        "disk under {}, {mebibytes} MiB per case, {frame_bytes}-byte frames, median of {repetitions}",
        base.display()
    );
    println!("| entries/append | in flight | entries/s | MB/s | syncs/s | entries/sync | baseline entries/s | log/baseline |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for entries_per_append in [1, 16, 256] {
        for depth in [1, DEPTH_PIPELINED] {
            let case = Case { entries_per_append, depth, entries_total, frame_bytes };
            let mut measurements = Vec::with_capacity(repetitions);
            for _ in 0..repetitions {
                measurements.push(run(&base, case).await?);
            }
            report(case, &measurements);
        }
    }
    Ok(())
}

fn report(case: Case, measurements: &[Measurement]) {
    let median = |value: fn(&Measurement) -> f64| {
        let mut values: Vec<f64> = measurements.iter().map(value).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.2} |",
        case.entries_per_append,
        case.depth,
        median(|m| m.entries_per_second),
        median(|m| m.megabytes_per_second),
        median(|m| m.syncs_per_second),
        median(|m| m.entries_per_sync),
        median(|m| m.baseline_entries_per_second),
        median(|m| m.entries_per_second / m.baseline_entries_per_second),
    );
}

async fn run(base: &Path, case: Case) -> Result<Measurement, Box<dyn Error>> {
    let dir = tempfile::tempdir_in(base)?;
    let baseline = baseline_entries_per_second(dir.path(), case)?;
    let mut store = LogStore::open(dir.path(), LogConfig::default())?;
    let frame = vec![0x5Au8; case.frame_bytes];
    let mut in_flight = VecDeque::with_capacity(case.depth);
    let before = store.metrics();
    let started = Instant::now();
    let mut index = 0;
    while index < case.entries_total {
        let entries: Vec<_> = (index..index + case.entries_per_append).map(|at| entry(at, &frame)).collect();
        index += case.entries_per_append;
        if in_flight.len() == case.depth {
            let receipt: hyperraft_raft::log::AppendReceipt = in_flight.pop_front().expect("depth > 0");
            receipt.flushed().await?;
        }
        in_flight.push_back(store.submit_append(entries).await?);
    }
    for receipt in in_flight {
        receipt.flushed().await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = store.metrics();
    let entries = (after.entries - before.entries) as f64;
    let syncs = (after.data_syncs - before.data_syncs) as f64;
    Ok(Measurement {
        entries_per_second: entries / seconds,
        megabytes_per_second: (after.bytes_written - before.bytes_written) as f64 / seconds / 1e6,
        syncs_per_second: syncs / seconds,
        entries_per_sync: entries / syncs,
        baseline_entries_per_second: baseline,
    })
}

/// Entries/s of plain pwrite + fdatasync per append of the same bytes.
fn baseline_entries_per_second(dir: &Path, case: Case) -> Result<f64, Box<dyn Error>> {
    let path = dir.join("baseline.bin");
    let file = std::fs::File::create(&path)?;
    let bytes = vec![0x5Au8; (case.frame_bytes + RECORD_OVERHEAD_BYTES) * case.entries_per_append as usize];
    let appends = case.entries_total.div_ceil(case.entries_per_append);
    let started = Instant::now();
    for append in 0..appends {
        file.write_all_at(&bytes, append * bytes.len() as u64)?;
        file.sync_data()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok((appends * case.entries_per_append) as f64 / seconds)
}

fn entry(index: u64, frame: &[u8]) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Batch { timestamp_ns: index, frame: bytes::Bytes::copy_from_slice(frame) }),
    }
}
