//! [`SnapshotCopy`]: the state at one moment, taken quickly so that its
//! snapshot can be written while the state machine goes on applying.
//!
//! A replica must not apply while a snapshot is being taken, or the
//! snapshot would mix two states; but writing the stream converts every
//! account and transfer to its record layout and checksums it, about 0.1 s
//! per million transfers. So a replica takes a copy under its lock and
//! writes the stream from the copy afterwards. The copy is cheap where the
//! state is large:
//!
//! - transfers: the store's full chunks are shared, not copied (the store
//!   never changes a full chunk), and only the chunk being filled is
//!   copied, so the cost does not grow with the log;
//! - accounts: copied (their balances change in place), one memory copy of
//!   80 bytes per account;
//! - key/value, tasks, decisions, bus: encoded into their snapshot sections
//!   during the copy, the same work the stream would do, so the copy holds
//!   no live structure. These stores are bounded and usually far smaller
//!   than the ledger.

use std::io::Write;
use std::sync::Arc;

use super::{stream_digest, write_stream, Parts, StoreSections};
use crate::ledger::{Account, Transfer};
use crate::state_machine::StateMachine;

/// The whole state at one moment, detached from the state machine. Its
/// [`SnapshotCopy::write_snapshot`] writes exactly the bytes
/// [`StateMachine::write_snapshot`] wrote at the moment of the copy.
pub struct SnapshotCopy {
    timestamp_last: u64,
    accounts: Vec<Account>,
    /// The transfer store's chunks, shared with it.
    transfer_chunks: Vec<Arc<Vec<Transfer>>>,
    transfers_len: u64,
    stores: StoreSections,
}

impl StateMachine {
    /// Copies the state for a snapshot to be written later, elsewhere.
    pub fn snapshot_copy(&self) -> SnapshotCopy {
        let ledger = self.ledger();
        let transfer_chunks = ledger.share_transfer_chunks();
        let transfers_len = ledger.transfers_len();
        assert_eq!(
            transfer_chunks.iter().map(|chunk| chunk.len() as u64).sum::<u64>(),
            transfers_len,
            "the chunks hold every transfer"
        );
        SnapshotCopy {
            timestamp_last: self.timestamp_last(),
            accounts: ledger.accounts().to_vec(),
            transfer_chunks,
            transfers_len,
            stores: StoreSections::encode(self),
        }
    }
}

impl SnapshotCopy {
    /// Writes the snapshot of the copied state to `out`.
    pub fn write_snapshot(&self, out: impl Write) -> std::io::Result<()> {
        let parts = Parts {
            timestamp_last: self.timestamp_last,
            accounts: &self.accounts,
            transfers_len: self.transfers_len,
            transfers: self.transfer_chunks.iter().flat_map(|chunk| chunk.iter()),
            stores: &self.stores,
        };
        write_stream(out, parts)
    }

    /// The digest of the copied state: [`StateMachine::digest`] at the
    /// moment of the copy.
    pub fn digest(&self) -> u64 {
        stream_digest(|sink| self.write_snapshot(sink))
    }
}
