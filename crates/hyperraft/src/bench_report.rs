//! What `hyperraft bench` counts while it runs, shows as it goes, and
//! prints at the end: the shared tally of the writers, the live progress
//! line (stderr), the process's CPU time and peak RSS, and the final
//! report or JSON object (stdout). BENCHMARKS.md documents the JSON schema.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::bench::{BenchArgs, Fsync, Workload};
use crate::bench_load::Outcome;

/// Latencies above a minute are recorded as a minute.
const LATENCY_US_MAX: u64 = 60_000_000;

/// What every writer adds to during the measured window.
pub struct Tally {
    pub committed: AtomicU64,
    pub requests: AtomicU64,
    /// Failed items by kind; written only when something fails.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Request latency in microseconds, from the scheduled send time.
    pub latency_us: Mutex<Histogram<u64>>,
}

impl Tally {
    pub fn new() -> Tally {
        let histogram = Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds");
        Tally {
            committed: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            latency_us: Mutex::new(histogram),
        }
    }

    pub fn record(&self, outcome: Outcome, latency: Duration) {
        self.committed.fetch_add(outcome.committed, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !outcome.failures.is_empty() {
            let mut errors = self.errors.lock().expect("no writer panics holding the lock");
            for (kind, count) in outcome.failures {
                *errors.entry(kind).or_default() += count;
            }
        }
        let latency_us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        self.latency_us.lock().expect("no writer panics holding the lock").saturating_record(latency_us);
    }

    fn p99_ms(&self) -> f64 {
        let latency = self.latency_us.lock().expect("no writer panics holding the lock");
        latency.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// CPU time used by this whole process and its peak resident set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu: Duration,
    pub peak_rss_bytes: u64,
}

impl Usage {
    pub fn now() -> Usage {
        // SAFETY: getrusage only writes the struct we pass, which is zeroed
        // plain data of the right type.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
                return Usage::default();
            }
            usage
        };
        let time = |value: libc::timeval| {
            Duration::from_secs(value.tv_sec.max(0) as u64) + Duration::from_micros(value.tv_usec.max(0) as u64)
        };
        // Linux reports ru_maxrss in KiB.
        Usage { cpu: time(usage.ru_utime) + time(usage.ru_stime), peak_rss_bytes: usage.ru_maxrss.max(0) as u64 * 1024 }
    }
}

/// Shows progress on stderr until dropped: a live line on a terminal,
/// a plain line per second otherwise.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `measuring` is when the measured window starts, after the warm-up.
    pub fn start(
        tally: std::sync::Arc<Tally>,
        measuring: Instant,
        duration: Duration,
        items: &'static str,
    ) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(duration.as_secs().max(1));
            let style = ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {msg}")
                .expect("valid progress template");
            bar.set_style(style);
            bar
        });
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(if shown.is_some() { 250 } else { 1000 }));
            let mut last = (Instant::now(), 0u64);
            loop {
                ticks.tick().await;
                let now = Instant::now();
                let committed = tally.committed.load(Ordering::Relaxed);
                let rate = (committed - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, committed);
                let phase = if now < measuring { "warm-up" } else { "measuring" };
                let elapsed = now.saturating_duration_since(measuring).as_secs_f64();
                let message = format!("{rate:>10.0} {items}/s  p99 so far {:.2} ms", tally.p99_ms());
                match &shown {
                    Some(bar) => {
                        bar.set_prefix(phase);
                        bar.set_position(elapsed as u64);
                        bar.set_message(message);
                    }
                    None => eprintln!("{phase} {elapsed:>6.1} s  {message}"),
                }
            }
        });
        Progress { task, bar }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Counters read at the start and end of the measured window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub usage: Usage,
    /// Raft entries the leader's batcher proposed, and the items in them
    /// (embedded cluster only).
    pub entries: Option<(u64, u64)>,
    /// fsyncs of every node's log (embedded cluster only).
    pub fsyncs: Option<u64>,
}

/// Everything the final report says.
pub struct Summary {
    pub elapsed: Duration,
    pub committed: u64,
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency_us: Histogram<u64>,
    pub before: Snapshot,
    pub after: Snapshot,
    /// `"native"` (the node's own client), `"grpc"` (the SDK) or `"etcd"` (an etcd server).
    pub client: &'static str,
    /// Why the measured window ended before `--duration`, if it did.
    pub stopped_early: Option<String>,
    /// Where the leader's commits spent their time (embedded cluster only).
    pub commit_path: Option<crate::bench_commit::CommitPath>,
}

impl Summary {
    fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn success_rate(&self) -> f64 {
        let attempted = self.committed + self.errors_total();
        if attempted == 0 {
            0.0
        } else {
            self.committed as f64 / attempted as f64
        }
    }

    /// Items per Raft entry: how many the batcher packed into one entry.
    fn batch_mean(&self) -> Option<f64> {
        let ((entries_before, items_before), (entries_after, items_after)) =
            (self.before.entries?, self.after.entries?);
        let entries = entries_after.checked_sub(entries_before)?.max(1);
        Some(items_after.saturating_sub(items_before) as f64 / entries as f64)
    }

    fn fsyncs_per_second(&self) -> Option<f64> {
        Some(self.per_second(self.after.fsyncs?.saturating_sub(self.before.fsyncs?)))
    }

    fn cpu_percent(&self) -> f64 {
        let cpu = self.after.usage.cpu.saturating_sub(self.before.usage.cpu);
        100.0 * cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn print(&self, args: &BenchArgs) {
        if args.json {
            println!("{}", self.json(args));
        } else {
            self.print_text(args);
        }
    }

    fn json(&self, args: &BenchArgs) -> serde_json::Value {
        let round = |value: f64, places: i32| (value * 10f64.powi(places)).round() / 10f64.powi(places);
        serde_json::json!({
            "mode": if args.embedded() { "embedded" } else { "target" },
            "client": self.client,
            "nodes": if args.embedded() { Some(args.nodes) } else { None },
            "workload": args.workload.name(),
            "accounts": args.accounts,
            "skew": format!("{:?}", args.skew).to_lowercase(),
            "ids": (args.workload == Workload::Transfers).then_some(args.ids.name()),
            "clients": args.clients,
            "batch": args.batch(),
            "rate": args.rate,
            "fsync": args.fsync == Fsync::On,
            "duration_s": round(self.elapsed.as_secs_f64(), 3),
            "warmup_s": args.warmup,
            "committed": self.committed,
            "tps": round(self.per_second(self.committed), 0),
            "requests": self.requests,
            "errors": self.errors_total(),
            "errors_by_kind": self.errors,
            "success_rate": round(self.success_rate(), 6),
            "latency_ms": {
                "p50": round(self.latency_ms(0.5), 3),
                "p90": round(self.latency_ms(0.9), 3),
                "p99": round(self.latency_ms(0.99), 3),
                "p999": round(self.latency_ms(0.999), 3),
                "max": round(self.latency_us.max() as f64 / 1000.0, 3),
            },
            "batch_mean": self.batch_mean().map(|mean| round(mean, 1)),
            "fsyncs_per_s": self.fsyncs_per_second().map(|rate| round(rate, 0)),
            "cpu_percent": round(self.cpu_percent(), 1),
            "peak_rss_bytes": self.after.usage.peak_rss_bytes,
            "stopped_early": self.stopped_early,
            "commit_path_ms": self.commit_path.as_ref().map(|path| path.json()),
        })
    }

    fn print_text(&self, args: &BenchArgs) {
        let items = args.workload.items();
        let loop_kind = args.rate.map_or("closed loop".to_string(), |rate| format!("open loop at {rate} {items}/s"));
        let place = match &args.target_etcd {
            Some(addr) => format!("etcd at {addr} (gRPC)"),
            None if args.embedded() => format!("embedded {}-node cluster, {} client", args.nodes, self.client),
            None => format!("cluster at {} through the SDK (gRPC)", args.target.join(",")),
        };
        println!("hyperraft bench: {}, {place}", args.workload.name());
        let ids =
            if args.workload == Workload::Transfers { format!(", {} ids", args.ids.name()) } else { String::new() };
        println!(
            "  load           {} clients × {} {items}/request, {loop_kind}, {} {:?}{ids}, {:.1} s after {} s warm-up",
            args.clients,
            args.batch(),
            args.accounts,
            args.skew,
            self.elapsed.as_secs_f64(),
            args.warmup
        );
        if let Some(reason) = &self.stopped_early {
            println!("  !! STOPPED    after {:.1} s of {} s: {reason}", self.elapsed.as_secs_f64(), args.duration);
        }
        if args.fsync == Fsync::Off {
            println!(
                "  !! UNSAFE     --fsync off: the logs never fsync; acknowledged writes could be lost at a crash."
            );
            println!("  !!            These numbers are for comparison only, not what a real cluster does.");
        }
        println!("  committed      {} {items} = {:.0} {items}/s", self.committed, self.per_second(self.committed));
        println!(
            "  latency        p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            self.latency_ms(0.5),
            self.latency_ms(0.9),
            self.latency_ms(0.99),
            self.latency_ms(0.999),
            self.latency_us.max() as f64 / 1000.0
        );
        let kinds: Vec<String> = self.errors.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
        let kinds = if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") };
        println!(
            "  errors         {} ({kinds}); success rate {:.4} %",
            self.errors_total(),
            100.0 * self.success_rate()
        );
        println!("  requests       {} = {:.0}/s", self.requests, self.per_second(self.requests));
        if let Some(mean) = self.batch_mean() {
            println!("  batching       {mean:.1} {items} per Raft entry (mean)");
        }
        if let Some(rate) = self.fsyncs_per_second() {
            println!("  fsyncs         {rate:.0}/s over all nodes' logs");
        }
        if let Some(path) = &self.commit_path {
            println!("  commit path    {}", path.describe());
        }
        println!(
            "  process        CPU {:.0} % ({} cores), peak RSS {:.0} MiB",
            self.cpu_percent(),
            std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            self.after.usage.peak_rss_bytes as f64 / (1024.0 * 1024.0)
        );
    }
}
