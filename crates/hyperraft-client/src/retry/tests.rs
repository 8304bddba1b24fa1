use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::Status;

use crate::config::RetryConfig;
use crate::retry::{backoff, judge, Safety, Verdict};
use crate::Error;

#[test]
fn writes_that_may_have_applied_are_not_retried() {
    // Proves the safety rule: an UNAVAILABLE write is retried only when idempotent or marked retry-safe.
    let unavailable = Status::unavailable("node stopping");
    assert!(matches!(judge(&unavailable, Safety::Idempotent), Verdict::Retry { elsewhere: true, .. }));
    assert!(matches!(judge(&unavailable, Safety::NotIdempotent), Verdict::Fail(Error::OutcomeUnknown(_))));
    let mut safe = Status::unavailable("not the leader");
    safe.metadata_mut().insert(crate::RETRY_SAFE_KEY, MetadataValue::from_static("true"));
    assert!(matches!(judge(&safe, Safety::NotIdempotent), Verdict::Retry { maybe_applied: false, .. }));
}

#[test]
fn overload_is_retried_after_the_hint_and_refusals_are_final() {
    // Proves RESOURCE_EXHAUSTED waits at least the server's hint, and a caller's mistake is never retried, even when marked retry-safe.
    let mut exhausted = Status::resource_exhausted("queue full");
    exhausted.metadata_mut().insert(crate::RETRY_AFTER_MS_KEY, MetadataValue::from(40u64));
    match judge(&exhausted, Safety::NotIdempotent) {
        Verdict::Retry { wait_min, elsewhere: false, maybe_applied: false } => {
            assert_eq!(wait_min, Duration::from_millis(40))
        }
        other => panic!("{other:?}"),
    }
    let mut invalid = Status::invalid_argument("key: empty");
    invalid.metadata_mut().insert(crate::RETRY_SAFE_KEY, MetadataValue::from_static("true"));
    assert!(matches!(judge(&invalid, Safety::Idempotent), Verdict::Fail(Error::InvalidArgument { .. })));
}

#[test]
fn backoff_grows_and_stays_within_its_bounds() {
    // Proves each wait lies in the upper half of min(initial * 2^n, max), so jitter never exceeds the cap.
    let config = RetryConfig {
        attempts: 10,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
    };
    for retry in 0..20 {
        let cap = (Duration::from_millis(10) * (1 << retry.min(16))).min(Duration::from_millis(100));
        for _ in 0..50 {
            let wait = backoff(&config, retry);
            assert!(wait >= cap / 2, "retry {retry}: {wait:?} below {:?}", cap / 2);
            assert!(wait <= cap, "retry {retry}: {wait:?} above {cap:?}");
        }
    }
}
