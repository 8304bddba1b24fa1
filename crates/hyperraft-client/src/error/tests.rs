use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::error::{leader_hint, retry_safe};
use crate::retry::{judge, Safety, Verdict};
use crate::Error;

#[test]
fn statuses_become_errors_with_their_details() {
    // Proves the server's conventions are read: field names, retry hints, compaction revisions, leader hints.
    let invalid = Error::from_status(&Status::invalid_argument("accounts[3].code: must not be zero"));
    assert!(matches!(invalid, Error::InvalidArgument { ref field, .. } if field == "accounts[3].code"), "{invalid:?}");

    let mut exhausted = Status::resource_exhausted("full");
    exhausted.metadata_mut().insert(crate::RETRY_AFTER_MS_KEY, MetadataValue::from(50u64));
    let overloaded = Error::from_status(&exhausted);
    assert!(matches!(overloaded, Error::Overloaded { retry_after: Some(wait) } if wait == Duration::from_millis(50)));

    let mut out_of_range = Status::out_of_range("compacted");
    out_of_range.metadata_mut().insert(crate::COMPACT_REVISION_KEY, MetadataValue::from(17u64));
    assert!(matches!(Error::from_status(&out_of_range), Error::Compacted { oldest: 17 }));

    let mut not_leader = Status::unavailable("not the leader");
    not_leader.metadata_mut().insert(crate::LEADER_ID_KEY, MetadataValue::from(2u64));
    not_leader.metadata_mut().insert(crate::LEADER_ADDRESS_KEY, MetadataValue::from_static("127.0.0.1:9"));
    assert_eq!(leader_hint(&not_leader), Some((2, Some("127.0.0.1:9".to_string()))));
    assert!(!retry_safe(&not_leader));
    not_leader.metadata_mut().insert(crate::RETRY_SAFE_KEY, MetadataValue::from_static("true"));
    assert!(retry_safe(&not_leader));
    assert_eq!(Error::from_status(&Status::new(Code::DataLoss, "x")).to_string(), "server error DataLoss: x");
}

#[test]
fn refused_tokens_become_their_own_errors_and_are_never_retried() {
    // Proves UNAUTHENTICATED and PERMISSION_DENIED map to Error::Unauthenticated and Error::PermissionDenied with the server's message, and the retry judge gives up on them at once, even for reads and even when marked retry-safe.
    let mut denied = Status::permission_denied("Kv/Put needs the write role");
    denied.metadata_mut().insert(crate::RETRY_SAFE_KEY, MetadataValue::from_static("true"));
    let unknown = Status::unauthenticated("the token is not known to this node");
    assert!(matches!(Error::from_status(&denied), Error::PermissionDenied(ref message) if message.contains("write")));
    assert!(matches!(Error::from_status(&unknown), Error::Unauthenticated(_)));
    for status in [&denied, &unknown] {
        for safety in [Safety::Idempotent, Safety::NotIdempotent] {
            assert!(matches!(judge(status, safety), Verdict::Fail(_)), "{status:?} was retried");
        }
    }
}

#[test]
fn a_bus_offset_below_retention_becomes_offset_trimmed_with_the_first_kept_offset() {
    // Proves OUT_OF_RANGE carrying the bus's first-offset metadata maps to Error::OffsetTrimmed with that offset, while OUT_OF_RANGE without it (a future offset) stays Error::Server and the watch's compaction revision still means Error::Compacted.
    let mut trimmed =
        Status::out_of_range("offset 3 of topic \"recent\" is no longer retained; the oldest retained offset is 15");
    trimmed.metadata_mut().insert(crate::BUS_FIRST_OFFSET_KEY, MetadataValue::from(15u64));
    let error = Error::from_status(&trimmed);
    assert!(matches!(error, Error::OffsetTrimmed { first_kept: 15 }), "{error:?}");
    assert_eq!(error.to_string(), "the bus offsets before 15 are no longer retained");

    let future = Error::from_status(&Status::out_of_range("offset 5 of topic \"kept\" is in the future"));
    assert!(matches!(future, Error::Server { code: Code::OutOfRange, .. }), "{future:?}");

    let mut compacted = Status::out_of_range("compacted");
    compacted.metadata_mut().insert(crate::COMPACT_REVISION_KEY, MetadataValue::from(9u64));
    assert!(matches!(Error::from_status(&compacted), Error::Compacted { oldest: 9 }));
}
