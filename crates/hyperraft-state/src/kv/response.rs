//! The result of one key/value command.

use super::{KeyValue, KvError};

/// What one command returned. `revision` is the store revision the command
/// saw or made: the command's own revision when it wrote, otherwise the
/// revision of the last write before it (etcd's response header revision).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvResponse {
    /// A put was applied.
    Put {
        /// The put's revision.
        revision: u64,
        /// The pair before the put, when asked for and present.
        prev: Option<KeyValue>,
    },
    /// A delete was applied (possibly deleting nothing).
    DeleteRange {
        /// The delete's revision if it deleted something, else the store revision.
        revision: u64,
        /// Number of keys deleted.
        deleted: u64,
        /// The deleted pairs in key order, when asked for.
        prev: Vec<KeyValue>,
    },
    /// A read.
    Range {
        /// The store revision the read saw.
        revision: u64,
        /// Matching pairs in key order, at most `limit` of them.
        kvs: Vec<KeyValue>,
        /// Number of matching keys, ignoring `limit`.
        count: u64,
        /// True when `limit` cut the answer short.
        more: bool,
    },
    /// A transaction.
    Txn {
        /// The transaction's revision if it wrote, else the store revision.
        revision: u64,
        /// True when every compare held and the success branch ran.
        succeeded: bool,
        /// One response per operation of the branch that ran, in order.
        responses: Vec<KvResponse>,
    },
    /// A lease was granted.
    LeaseGrant {
        /// The store revision (a grant writes no key).
        revision: u64,
        /// The lease id, chosen by the store when the grant named 0.
        id: u64,
        /// The TTL granted, in milliseconds.
        ttl_ms: u64,
    },
    /// A lease was revoked with its keys.
    LeaseRevoke {
        /// The revoke's revision if it deleted keys, else the store revision.
        revision: u64,
        /// Number of keys deleted with the lease.
        deleted: u64,
    },
    /// A lease was renewed for its full TTL.
    LeaseKeepAlive {
        /// The store revision (a keep-alive writes no key).
        revision: u64,
        /// The lease id.
        id: u64,
        /// The TTL it was renewed for, in milliseconds.
        ttl_ms: u64,
    },
    /// An expiry ran: it revoked the lease if its deadline had passed.
    LeaseExpire {
        /// The expiry's revision if it deleted keys, else the store revision.
        revision: u64,
        /// False when the lease was not due (or no longer exists): nothing changed.
        expired: bool,
        /// Number of keys deleted with the lease.
        deleted: u64,
    },
    /// The command was refused and changed nothing.
    Error(KvError),
}

impl KvResponse {
    /// The response's revision, `None` for an error.
    pub fn revision(&self) -> Option<u64> {
        match self {
            KvResponse::Put { revision, .. }
            | KvResponse::DeleteRange { revision, .. }
            | KvResponse::Range { revision, .. }
            | KvResponse::Txn { revision, .. }
            | KvResponse::LeaseGrant { revision, .. }
            | KvResponse::LeaseRevoke { revision, .. }
            | KvResponse::LeaseKeepAlive { revision, .. }
            | KvResponse::LeaseExpire { revision, .. } => Some(*revision),
            KvResponse::Error(_) => None,
        }
    }

    /// Sets the revision of a command that did not write (placeholder 0)
    /// to the store revision `current`, or advances `current` past a
    /// command that wrote. A transaction's inner responses share its
    /// revision.
    pub(crate) fn settle_revision(&mut self, current: &mut u64) {
        let Some(revision) = self.revision_mut() else {
            return;
        };
        if *revision == 0 {
            *revision = *current;
        } else {
            assert!(*revision > *current, "write revisions must increase within a batch");
            *current = *revision;
        }
        let settled = *revision;
        if let KvResponse::Txn { responses, .. } = self {
            for inner in responses {
                if let Some(inner_revision) = inner.revision_mut() {
                    *inner_revision = settled;
                }
            }
        }
    }

    fn revision_mut(&mut self) -> Option<&mut u64> {
        match self {
            KvResponse::Put { revision, .. }
            | KvResponse::DeleteRange { revision, .. }
            | KvResponse::Range { revision, .. }
            | KvResponse::Txn { revision, .. }
            | KvResponse::LeaseGrant { revision, .. }
            | KvResponse::LeaseRevoke { revision, .. }
            | KvResponse::LeaseKeepAlive { revision, .. }
            | KvResponse::LeaseExpire { revision, .. } => Some(revision),
            KvResponse::Error(_) => None,
        }
    }
}
