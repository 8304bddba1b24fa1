//! [`Batcher`]: auto-batching of [`Client::create_transfer`].
//!
//! Callers put one transfer each into a bounded queue and wait for its
//! result. One task takes transfers off the queue into a batch until the
//! batch holds `max_items` or `max_delay` passed since its first
//! transfer, whichever comes first, and sends the batch as one
//! `CreateTransfers` frame; up to `batches_in_flight_max` batches travel
//! at once. When the queue is full a caller waits for room
//! (backpressure): the queue bounds memory, and a caller is never refused
//! merely because others are fast.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use hyperraft_proto::CreateTransferResult;
use hyperraft_wire::{encode_records, transfer_flags, Kind, TransferRecord};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::client::Core;
use crate::config::BatchingConfig;
use crate::{Client, Error};

/// One queued transfer and where its result goes.
struct Pending {
    record: TransferRecord,
    reply: oneshot::Sender<Result<CreateTransferResult, Error>>,
}

/// The queue of the auto-batcher; its task ends when the last client
/// handle is dropped and the queue is drained.
pub(crate) struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    pub(crate) fn start(core: Arc<Core>) -> Batcher {
        let config = core.pool.config().batching.clone();
        let (queue, receiver) = mpsc::channel(config.queue_max);
        tokio::spawn(run(core, receiver, config));
        Batcher { queue }
    }
}

impl Client {
    /// Creates one transfer, batched with the transfers other tasks create
    /// at the same time (see [`crate::BatchingConfig`]); returns its own
    /// result code: [`CreateTransferResult::Ok`] when it was created.
    ///
    /// Waits for room when the queue is full. Retried like
    /// [`Client::create_transfers`]: after a retry whose first attempt may
    /// have been applied, `EXISTS` is reported as `Ok`. A transfer with the
    /// `LINKED` flag is refused: a chain must be created together, with
    /// [`Client::create_transfers`].
    pub async fn create_transfer(&self, record: TransferRecord) -> Result<CreateTransferResult, Error> {
        if record.flags.get() & transfer_flags::LINKED != 0 {
            return Err(Error::InvalidArgument {
                field: "flags".into(),
                message: "a linked transfer cannot be auto-batched; create its chain with create_transfers".into(),
            });
        }
        let (reply, result) = oneshot::channel();
        self.batcher.queue.send(Pending { record, reply }).await.map_err(|_| Error::Closed)?;
        result.await.map_err(|_| Error::Closed)?
    }
}

/// Takes batches off the queue and sends them until the queue closes.
async fn run(core: Arc<Core>, mut receiver: mpsc::Receiver<Pending>, config: BatchingConfig) {
    let in_flight = Arc::new(Semaphore::new(config.batches_in_flight_max));
    while let Some(first) = receiver.recv().await {
        let mut batch = Vec::with_capacity(config.max_items.min(1024));
        batch.push(first);
        let deadline = Instant::now() + config.max_delay;
        while batch.len() < config.max_items {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(pending)) => batch.push(pending),
                Ok(None) | Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let core = core.clone();
        tokio::spawn(async move {
            send(&core, batch).await;
            drop(permit);
        });
    }
}

/// Sends one batch and hands every caller its own result.
async fn send(core: &Core, batch: Vec<Pending>) {
    let records: Vec<TransferRecord> = batch.iter().map(|pending| pending.record).collect();
    let mut frame = Vec::with_capacity(hyperraft_wire::frame::HEADER_BYTES + size_of_val(records.as_slice()));
    encode_records(Kind::CreateTransfers, &records, &mut frame);
    core.counters.transfer_batches.fetch_add(1, Ordering::Relaxed);
    core.counters.transfers_batched.fetch_add(batch.len() as u64, Ordering::Relaxed);
    match core.create_transfers_frame(Bytes::from(frame)).await {
        Ok(failures) => {
            let mut failures = failures.into_iter().peekable();
            for (index, pending) in batch.into_iter().enumerate() {
                let code = match failures.peek() {
                    Some(failure) if failure.index as usize == index => failures.next().expect("peeked").code,
                    _ => CreateTransferResult::Ok,
                };
                // A caller that stopped waiting no longer wants its result.
                let _ = pending.reply.send(Ok(code));
            }
        }
        Err(error) => {
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone()));
            }
        }
    }
}
