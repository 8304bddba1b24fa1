//! Errors a key/value command or query returns to its caller.

/// Why a key/value command was refused or a query could not be answered.
///
/// Every variant is the caller's mistake or a designed bound, never a
/// fault of the store: a refused command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The command would create a key while the store already holds
    /// `keys_max` keys.
    #[error("the store is full: it already holds its limit of {keys_max} keys")]
    StoreFull {
        /// The configured [`super::KvConfig::keys_max`].
        keys_max: usize,
    },
    /// A transaction branch puts one key twice, or puts a key that one of
    /// its deletes also covers (etcd rejects these as well).
    #[error("a transaction branch writes the same key more than once")]
    TxnDuplicateKey,
    /// A lease command, or a put attached to a lease, names a lease that
    /// does not exist (never granted, or revoked or expired).
    #[error("lease {id} not found")]
    LeaseNotFound {
        /// The lease named.
        id: u64,
    },
    /// A grant names an id that a live lease already has.
    #[error("lease {id} already exists")]
    LeaseExists {
        /// The lease named.
        id: u64,
    },
    /// A grant while the store already holds `leases_max` leases.
    #[error("the lease table is full: it already holds its limit of {leases_max} leases")]
    LeasesFull {
        /// The configured [`super::KvConfig::leases_max`].
        leases_max: usize,
    },
    /// The events after the asked revision are no longer all in the
    /// history; `oldest` is the smallest revision that can still be asked.
    #[error("history before revision {oldest} has been compacted")]
    Compacted {
        /// The smallest revision accepted by [`super::KvStore::events_since`].
        oldest: u64,
    },
}
