//! The event trace of one run: every decision the simulator made and every
//! outcome it saw, stamped with virtual time and folded into one digest.
//!
//! Two runs of the same seed are the same run exactly when their digests
//! are equal; `--trace` prints the events themselves to find where two runs
//! part.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Most events kept as text when printing is asked for (bounds memory).
const LINES_MAX: usize = 1_000_000;

/// The trace of a run and the virtual clock it is stamped with.
pub struct Trace {
    start: Instant,
    inner: Mutex<TraceInner>,
}

struct TraceInner {
    digest: u64,
    events: u64,
    line: String,
    /// Kept only when the run was asked to print its trace.
    lines: Option<Vec<String>>,
}

impl Trace {
    /// A trace that starts its clock now; `keep_lines` keeps every event's text.
    pub fn new(keep_lines: bool) -> Trace {
        let inner = TraceInner { digest: FNV_OFFSET, events: 0, line: String::new(), lines: keep_lines.then(Vec::new) };
        Trace { start: Instant::now(), inner: Mutex::new(inner) }
    }

    /// Virtual time since the run started.
    pub fn elapsed(&self) -> Duration {
        Instant::now() - self.start
    }

    /// Records one event.
    pub fn event(&self, what: std::fmt::Arguments<'_>) {
        let at_us = self.elapsed().as_micros();
        let mut inner = self.inner.lock().expect("trace lock");
        let TraceInner { digest, events, line, lines } = &mut *inner;
        line.clear();
        write!(line, "{at_us:>12}us {what}").expect("writing to a string cannot fail");
        for byte in line.bytes() {
            *digest = (*digest ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
        *digest = (*digest ^ u64::from(b'\n')).wrapping_mul(FNV_PRIME);
        *events += 1;
        if let Some(lines) = lines {
            if lines.len() < LINES_MAX {
                lines.push(line.clone());
            }
        }
    }

    /// The digest of every event so far and how many there were.
    pub fn digest(&self) -> (u64, u64) {
        let inner = self.inner.lock().expect("trace lock");
        (inner.digest, inner.events)
    }

    /// The kept event lines (empty unless asked for).
    pub fn take_lines(&self) -> Vec<String> {
        self.inner.lock().expect("trace lock").lines.take().unwrap_or_default()
    }
}
