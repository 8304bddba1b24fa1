//! The watcher's decisions, poll by poll, without a cluster.

use openraft::CommittedLeaderId;

use super::*;

const BOUND: u64 = 1_000;

fn log_id(index: u64) -> Option<LogId<NodeId>> {
    Some(LogId::new(CommittedLeaderId::new(1, 1), index))
}

/// A poll at which the snapshot is at `snapshot`, entries are applied up
/// to `applied`, and the log has written `bytes`.
fn sample(poll: u64, snapshot: u64, applied: u64, bytes: u64) -> Sample {
    Sample {
        snapshot: log_id(snapshot),
        last_applied: log_id(applied),
        purged: None,
        bytes_written: bytes,
        snapshot_bytes: 0,
        poll,
    }
}

/// Proves the watcher triggers once the log has grown by the bound since
/// the snapshot it started with, and not a byte before.
#[test]
fn it_triggers_when_the_log_grows_by_the_bound() {
    let mut watch = Watch::new(BOUND, log_id(10), 500);
    assert_eq!(watch.next(sample(1, 10, 20, 500 + BOUND - 1)), Decision::Wait);
    assert_eq!(watch.next(sample(2, 10, 20, 500 + BOUND)), Decision::Trigger);
}

/// Proves one trigger at a time: while its snapshot has not appeared the
/// watcher waits however much the log grows, and once it appears the bound
/// counts again from the trigger.
#[test]
fn it_waits_for_the_snapshot_it_triggered() {
    let mut watch = Watch::new(BOUND, log_id(10), 0);
    assert_eq!(watch.next(sample(1, 10, 20, BOUND)), Decision::Trigger);
    assert_eq!(watch.next(sample(2, 10, 25, 5 * BOUND)), Decision::Wait, "the build is still running");
    assert_eq!(watch.next(sample(3, 20, 30, 5 * BOUND)), Decision::Wait, "the new snapshot is seen");
    assert_eq!(watch.next(sample(4, 20, 40, 5 * BOUND)), Decision::Trigger, "written since the trigger");
}

/// Proves a snapshot the watcher did not trigger (the entry policy, or an
/// install) restarts the count from the moment it is seen.
#[test]
fn a_snapshot_from_elsewhere_restarts_the_count() {
    let mut watch = Watch::new(BOUND, log_id(10), 0);
    assert_eq!(watch.next(sample(1, 30, 30, BOUND - 10)), Decision::Wait);
    assert_eq!(watch.next(sample(2, 30, 40, 2 * BOUND - 11)), Decision::Wait);
    assert_eq!(watch.next(sample(3, 30, 40, 2 * BOUND - 10)), Decision::Trigger);
}

/// Proves no trigger when nothing was applied past the last snapshot (a
/// follower whose log runs ahead of its commits): such a snapshot would
/// cover no more of the log.
#[test]
fn nothing_applied_past_the_snapshot_means_no_trigger() {
    let mut watch = Watch::new(BOUND, log_id(10), 0);
    assert_eq!(watch.next(sample(1, 10, 10, 3 * BOUND)), Decision::Wait);
    assert_eq!(watch.next(sample(2, 10, 11, 3 * BOUND)), Decision::Trigger);
}

/// Proves a trigger that never shows a snapshot does not disable the
/// bound: after `REARM_AFTER` the watcher may trigger again, once the log
/// grew by the bound since the lost trigger.
#[test]
fn a_trigger_without_a_snapshot_is_repeated_after_a_while() {
    let mut watch = Watch::new(BOUND, log_id(10), 0);
    assert_eq!(watch.next(sample(1, 10, 20, BOUND)), Decision::Trigger);
    assert_eq!(watch.next(sample(REARM_POLLS, 10, 20, 3 * BOUND)), Decision::Wait);
    assert_eq!(watch.next(sample(1 + REARM_POLLS, 10, 20, 3 * BOUND)), Decision::Trigger);
}

/// Proves the purge for the kept bytes: up to just before the entries that
/// fit, never past the snapshot, and nothing when the log is purged that
/// far already or the snapshot's entry is not in the log.
#[test]
fn the_purge_keeps_what_fits_behind_the_snapshot() {
    assert_eq!(purge_upto(100, Some(90), Some(50)), Some(89));
    assert_eq!(purge_upto(100, Some(90), None), Some(89));
    assert_eq!(purge_upto(100, Some(101), Some(50)), Some(100), "not even the last entry fits");
    assert_eq!(purge_upto(100, Some(90), Some(89)), None, "purged that far already");
    assert_eq!(purge_upto(100, Some(0), None), None, "everything fits");
    assert_eq!(purge_upto(100, None, None), None, "the snapshot's entry is not in the log");
}

/// Proves a snapshot larger than the bound raises it: the next trigger
/// waits until the log has grown by the snapshot's size, and a smaller
/// snapshot leaves the bound as configured.
#[test]
fn a_snapshot_larger_than_the_bound_defers_the_next_until_the_log_grew_as_much() {
    let large = 3 * BOUND;
    let mut watch = Watch::new(BOUND, log_id(10), 0);
    let with_snapshot = |poll, bytes, snapshot_bytes| Sample { snapshot_bytes, ..sample(poll, 10, 20, bytes) };
    assert_eq!(watch.next(with_snapshot(1, BOUND, large)), Decision::Wait);
    assert_eq!(watch.next(with_snapshot(2, large - 1, large)), Decision::Wait);
    assert_eq!(watch.next(with_snapshot(3, large, large)), Decision::Trigger);
    let mut watch = Watch::new(BOUND, log_id(10), 0);
    assert_eq!(watch.next(with_snapshot(1, BOUND, BOUND / 2)), Decision::Trigger);
}
