//! When a failed attempt is tried again, and how long to wait first.
//!
//! A call is retried only when repeating it cannot apply it twice:
//!
//! - reads and ledger creates ([`Safety::Idempotent`]) after any
//!   transient failure: creates are idempotent by id, so a repeat of an
//!   applied item answers `EXISTS` and changes nothing;
//! - every call, idempotent or not, when the request certainly changed
//!   nothing: the client could not connect (nothing was sent), the server
//!   answered `RESOURCE_EXHAUSTED` (refused before it started), or the
//!   server marked a transient error (`UNAVAILABLE`, such as "not the
//!   leader" before proposing) `hyperraft-retry-safe: true`. A refusal
//!   (`INVALID_ARGUMENT`, ...) is final even when marked retry-safe.
//!
//! Any other failure of a [`Safety::NotIdempotent`] write is
//! [`Error::OutcomeUnknown`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::{Code, Status};

use crate::config::RetryConfig;
use crate::error::{client_side, connect_failed, retry_after, retry_safe};
use crate::Error;

/// Whether a call may be repeated after an attempt whose outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Safety {
    /// Reads, and writes that are idempotent by id (ledger creates).
    Idempotent,
    /// Writes that would apply twice if repeated.
    NotIdempotent,
}

/// What to do after a failed attempt.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Try again after at least `wait_min`; on another node when `elsewhere`.
    Retry {
        wait_min: Duration,
        elsewhere: bool,
        /// Whether the failed attempt may have been applied.
        maybe_applied: bool,
    },
    /// Give up with this error.
    Fail(Error),
}

/// Judges one failed attempt of a call of `safety`.
pub(crate) fn judge(status: &Status, safety: Safety) -> Verdict {
    let retry = |elsewhere, maybe_applied| Verdict::Retry { wait_min: Duration::ZERO, elsewhere, maybe_applied };
    if connect_failed(status) {
        return retry(true, false);
    }
    if status.code() == Code::ResourceExhausted && !client_side(status) {
        return Verdict::Retry {
            wait_min: retry_after(status).unwrap_or_default(),
            elsewhere: false,
            maybe_applied: false,
        };
    }
    let transient = match status.code() {
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => true,
        // A connection that broke mid-call surfaces as UNKNOWN or INTERNAL
        // made by this client; the same codes from a server are final.
        Code::Unknown | Code::Internal => client_side(status),
        _ => false,
    };
    // "Retry-safe" says the request changed nothing, not that repeating
    // it could help: a refused argument stays refused.
    if !transient {
        return Verdict::Fail(Error::from_status(status));
    }
    match (retry_safe(status), safety) {
        (true, _) => retry(true, false),
        (false, Safety::Idempotent) => retry(true, true),
        (false, Safety::NotIdempotent) => Verdict::Fail(Error::OutcomeUnknown(describe(status))),
    }
}

/// The error a call ends with when its last attempt failed with `status`
/// and the verdict still said "retry".
pub(crate) fn exhausted(status: &Status) -> Error {
    match status.code() {
        Code::ResourceExhausted => Error::Overloaded { retry_after: retry_after(status) },
        _ if client_side(status) => Error::Transport(describe(status)),
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => Error::Unavailable(describe(status)),
        _ => Error::from_status(status),
    }
}

fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// The wait before retry number `retry` (from 0): exponential from
/// `backoff_initial`, capped at `backoff_max`, with jitter in its upper
/// half so that clients that failed together do not retry together.
pub(crate) fn backoff(config: &RetryConfig, retry: u32) -> Duration {
    let exponential = config.backoff_initial.saturating_mul(1u32 << retry.min(16));
    let capped = exponential.min(config.backoff_max);
    let half = capped / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if nanos == 0 { 0 } else { next_random() % nanos };
    half + Duration::from_nanos(jitter)
}

/// A xorshift64 generator shared by the process: jitter needs spread, not
/// quality, and no extra dependency.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut current = STATE.load(Ordering::Relaxed);
    loop {
        let mut x = if current == 0 { seed() } else { current };
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match STATE.compare_exchange_weak(current, x, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return x,
            Err(seen) => current = seen,
        }
    }
}

fn seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64);
    (nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1
}

#[cfg(test)]
mod tests;
