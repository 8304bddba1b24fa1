//! The embedded bench's guard against filling the machine's memory or disk.
//!
//! Every replica of the embedded cluster holds the whole ledger in memory,
//! and all of them run in this process: at full load the three replicas
//! grow by about 400 MB/s together (≈ 125 bytes per transfer each), so a
//! run of a minute or two fills a 24 GiB machine. Their logs and snapshots
//! share one disk too: each node keeps up to about a state's worth of log,
//! its snapshot, and the next snapshot while it is written. Rather than be
//! killed by the kernel or have the logs refuse writes with a full disk,
//! the bench watches both and ends the measured window early, saying so in
//! the report, once either runs low:
//! - memory: `MemAvailable` (which counts reclaimable page cache) below
//!   [`memory_floor`];
//! - disk: the space left where the cluster's files are below
//!   [`disk_floor`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the available memory is read. At 400 MB/s of growth this is
/// 100 MB between reads, far inside the floor.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The memory floor is at least this much.
const MEMORY_FLOOR_MIN: u64 = 2 << 30;
/// Disk space kept free beyond the snapshots that may be written next.
const DISK_MARGIN: u64 = 4 << 30;

/// The available memory below which the run stops: a tenth of the
/// machine's memory, and at least 2 GiB (about 5 s of growth at full load,
/// and room for the shutdown that follows); but never more than half of
/// what was available when the run began, so that a small machine still
/// runs until it has used half of it.
pub fn memory_floor(total_bytes: u64, available_at_start: u64) -> u64 {
    (total_bytes / 10).max(MEMORY_FLOOR_MIN).min(available_at_start / 2)
}

/// The free disk space below which the run stops: room for every node to
/// write a snapshot as large as the one it has (`snapshots_bytes`, their
/// sum), which it does beside the old one, plus a margin for the logs:
/// 4 GiB (about 13 s of all three at full load), or a quarter of what was
/// free when the run began if that is less.
pub fn disk_floor(snapshots_bytes: u64, free_at_start: u64) -> u64 {
    snapshots_bytes.saturating_add(DISK_MARGIN.min(free_at_start / 4))
}

/// Bytes free to an unprivileged writer on the file system holding `path`.
fn disk_free(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` is writable
    // memory of the type statvfs fills; it is read only if the call succeeds.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// The sizes of the snapshot files of the embedded nodes under `root`.
fn snapshots_bytes(root: &Path) -> u64 {
    let Ok(nodes) = std::fs::read_dir(root) else { return 0 };
    nodes
        .filter_map(|node| std::fs::metadata(node.ok()?.path().join("state").join("snapshot.bin")).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// `MemAvailable` and `MemTotal` in bytes, from `/proc/meminfo` text.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        let line = text.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("MemAvailable:")?, field("MemTotal:")?))
}

fn read_meminfo() -> Option<(u64, u64)> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// Set once the writers should stop early, with the reason.
#[derive(Default)]
pub struct Stop {
    set: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Stop {
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }

    fn set(&self, reason: String) {
        *self.reason.lock().expect("no holder panics") = Some(reason);
        self.set.store(true, Ordering::Relaxed);
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().expect("no holder panics").clone()
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// Watches the machine's memory and the disk under the cluster's folder
/// until dropped, and sets `stop` when either runs low. A resource it
/// cannot read (no `/proc/meminfo`, say) is not watched.
pub struct ResourceGuard {
    task: tokio::task::JoinHandle<()>,
}

impl ResourceGuard {
    pub fn start(stop: Arc<Stop>, root: PathBuf, replicas: u64) -> ResourceGuard {
        let memory_at_start = read_meminfo().map(|(available, _)| available);
        let disk_at_start = disk_free(&root);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(POLL_INTERVAL);
            loop {
                ticks.tick().await;
                if let (Some((available, total)), Some(at_start)) = (read_meminfo(), memory_at_start) {
                    if available < memory_floor(total, at_start) {
                        stop.set(format!(
                            "the machine's available memory fell to {:.1} GiB of {:.1} GiB (the embedded cluster \
                             keeps every transfer in memory on each of its {replicas} replicas); a shorter \
                             --duration fits",
                            available as f64 / GIB,
                            total as f64 / GIB,
                        ));
                        return;
                    }
                }
                if let (Some(free), Some(at_start)) = (disk_free(&root), disk_at_start) {
                    let floor = disk_floor(snapshots_bytes(&root), at_start);
                    if free < floor {
                        stop.set(format!(
                            "the disk under {} has {:.2} GiB free, below the {:.2} GiB its {replicas} nodes may \
                             need next (a snapshot each, beside the one they have, and log); a shorter \
                             --duration fits",
                            root.display(),
                            free as f64 / GIB,
                            floor as f64 / GIB,
                        ));
                        return;
                    }
                }
            }
        });
        ResourceGuard { task }
    }
}

impl Drop for ResourceGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves `/proc/meminfo` text yields available and total bytes, and
    /// text without either field yields nothing.
    #[test]
    fn meminfo_parses_available_and_total() {
        let text = "MemTotal:       24576000 kB\nMemFree:         1000 kB\nMemAvailable:   20480000 kB\n";
        assert_eq!(parse_meminfo(text), Some((20_480_000 * 1024, 24_576_000 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 10 kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: x kB\nMemTotal: 10 kB\n"), None);
    }

    /// Proves the memory floor is a tenth of the machine and at least
    /// 2 GiB, but at most half of what was available at the start.
    #[test]
    fn the_memory_floor_is_a_tenth_at_least_two_gib_at_most_half_the_start() {
        assert_eq!(memory_floor(64 << 30, 60 << 30), (64 << 30) / 10);
        assert_eq!(memory_floor(8 << 30, 6 << 30), 2 << 30);
        assert_eq!(memory_floor(4 << 30, 3 << 30), 3 << 29);
    }

    /// Proves the disk floor counts the snapshot files found under the
    /// cluster's folder (one per node, at `node-N/state/snapshot.bin`) plus
    /// the margin (less on a disk with little free at the start), and that
    /// the free space of that folder's file system is read.
    #[test]
    fn the_disk_floor_counts_the_nodes_snapshots() {
        let root = tempfile::tempdir().unwrap();
        for (node, bytes) in [("node-1", 3000), ("node-2", 500)] {
            let state = root.path().join(node).join("state");
            std::fs::create_dir_all(&state).unwrap();
            std::fs::write(state.join("snapshot.bin"), vec![0u8; bytes]).unwrap();
        }
        std::fs::create_dir_all(root.path().join("node-3").join("state")).unwrap();
        std::fs::create_dir_all(root.path().join("certs")).unwrap();
        assert_eq!(snapshots_bytes(root.path()), 3500);
        assert_eq!(disk_floor(snapshots_bytes(root.path()), 100 << 30), 3500 + DISK_MARGIN);
        assert_eq!(disk_floor(snapshots_bytes(root.path()), 8 << 30), 3500 + (2 << 30), "a quarter of a small disk");
        assert!(disk_free(root.path()).is_some_and(|free| free > 0));
        assert_eq!(disk_free(&root.path().join("missing")), None);
    }
}
