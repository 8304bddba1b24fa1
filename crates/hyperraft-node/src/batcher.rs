//! The leader-side batcher: concurrent writes coalesce into one log entry.
//!
//! Requests wait in a bounded queue. The batcher keeps at most
//! `proposals_in_flight_max` Raft proposals outstanding; whenever a slot is
//! free it takes the first queued request, yields to the scheduler while
//! that brings more (so requests sent at the same moment from other tasks
//! join it; at most a few passes), then takes
//! everything queued of that kind (up to the count and byte bounds),
//! concatenates the bodies into one frame and proposes it. An idle
//! cluster therefore commits a lone write at once, and under load requests
//! pile up while the slots are busy, so batches grow with the load — the
//! window adapts without a timer. Proposals are handed to Raft in queue
//! order; each request gets back exactly its own slice of the results.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyperraft_raft::{Batch, BatchResponse, TypeConfig};
use hyperraft_wire::{encode_frame, Frame, Kind, Limits};
use openraft::error::ClientWriteError;
use openraft::Raft;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most scheduler passes the batcher waits for requests sent together
/// before it proposes (see `run`).
const GATHER_PASSES_MAX: usize = 4;

/// Items the batcher merges into one entry by default (a single larger
/// request still goes whole). openraft 0.9 takes one entry at a time through
/// each stage (the leader's write and sync, then replication, then apply),
/// so under full load several middling entries keep every stage busy where
/// one huge entry leaves them waiting on each other. Lowering the bound from
/// 65,536 to this raised `hyperraft bench` from 760–779 to 868–875 k
/// transfers/s (three alternating pairs, BENCHMARKS.md); at rates below
/// saturation entries are smaller than this anyway.
const ENTRY_ITEMS_MAX: u32 = 16_384;

/// Bounds of the batcher.
#[derive(Clone, Copy, Debug)]
pub struct BatcherConfig {
    /// Requests waiting to be batched; a full queue refuses new ones.
    pub queue_len_max: usize,
    /// Items (records or commands) merged into one proposed batch; a single
    /// request with more still goes, alone.
    pub batch_items_max: u32,
    /// Body bytes in one proposed batch.
    pub batch_bytes_max: usize,
    /// Proposals awaiting commit at once.
    pub proposals_in_flight_max: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        let limits = Limits::default();
        BatcherConfig {
            queue_len_max: 16_384,
            batch_items_max: ENTRY_ITEMS_MAX.min(limits.count_max),
            batch_bytes_max: limits.frame_bytes_max as usize - hyperraft_wire::frame::HEADER_BYTES,
            proposals_in_flight_max: 8,
        }
    }
}

/// Why a write was not committed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WriteError {
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    #[error("a frame of kind {0} is not a write")]
    NotAWrite(u16),
    #[error("the write queue is full ({0} requests); retry later")]
    Overloaded(usize),
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(u64, String)> },
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
    #[error("refused: {0}")]
    Refused(String),
}

/// The answer to a queued write (see [`Batcher::enqueue`]); an error
/// receiving it means the batcher stopped.
pub type Queued = oneshot::Receiver<Result<BatchResponse, WriteError>>;

struct Pending {
    kind: Kind,
    count: u32,
    body: Vec<u8>,
    reply: oneshot::Sender<Result<BatchResponse, WriteError>>,
}

/// Counts of what the batcher proposed since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatcherStats {
    /// Raft entries proposed (one per merged batch).
    pub proposals: u64,
    /// Requests merged into those entries.
    pub requests: u64,
    /// Items (records or commands) in those entries.
    pub items: u64,
}

#[derive(Default)]
struct Counters {
    proposals: AtomicU64,
    requests: AtomicU64,
    items: AtomicU64,
}

/// Prometheus series of one batcher (see `crate::telemetry`).
struct BatchMetrics {
    /// Requests merged into each proposal.
    requests: metrics::Histogram,
    /// Items in each proposal.
    items: metrics::Histogram,
    /// From proposing a batch to its answer: commit by a majority and apply.
    commit_apply_seconds: metrics::Histogram,
}

impl BatchMetrics {
    fn new(node: u64) -> BatchMetrics {
        let node = crate::telemetry::node_label(node);
        BatchMetrics {
            requests: metrics::histogram!("hyperraft_batch_requests", "node" => node.clone()),
            items: metrics::histogram!("hyperraft_batch_items", "node" => node.clone()),
            commit_apply_seconds: metrics::histogram!("hyperraft_commit_apply_seconds", "node" => node),
        }
    }
}

/// Submits writes to the leader's batcher. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Pending>,
    queue_len_max: usize,
    counters: Arc<Counters>,
}

impl Batcher {
    /// Starts the batching task for `raft`; it stops when every handle is dropped.
    pub fn start(raft: Raft<TypeConfig>, config: BatcherConfig) -> Batcher {
        assert!(config.queue_len_max > 0 && config.proposals_in_flight_max > 0);
        let (queue, receiver) = mpsc::channel(config.queue_len_max);
        let counters = Arc::new(Counters::default());
        let batch_metrics = BatchMetrics::new(raft.metrics().borrow().id);
        tokio::spawn(run(raft, config, receiver, counters.clone(), batch_metrics));
        Batcher { queue, queue_len_max: config.queue_len_max, counters }
    }

    /// Requests waiting in the queue now.
    pub fn queue_depth(&self) -> usize {
        self.queue_len_max - self.queue.capacity()
    }

    pub fn stats(&self) -> BatcherStats {
        BatcherStats {
            proposals: self.counters.proposals.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            items: self.counters.items.load(Ordering::Relaxed),
        }
    }

    /// Validates `frame`, queues it, and waits for its own results.
    pub async fn submit(&self, frame: &[u8]) -> Result<BatchResponse, WriteError> {
        let response = self.enqueue(frame)?;
        response.await.map_err(|_| WriteError::Unavailable("the batcher stopped".into()))?
    }

    /// Validates `frame` and queues it now; the receiver answers its own
    /// results. Frames queued one after another by one caller are proposed
    /// in that order, so a caller may keep several in flight and still
    /// have them committed in the order it queued them.
    pub fn enqueue(&self, frame: &[u8]) -> Result<Queued, WriteError> {
        let decoded =
            Frame::decode(frame, &Limits::default()).map_err(|error| WriteError::InvalidFrame(error.to_string()))?;
        let kind = decoded.kind();
        if !matches!(
            kind,
            Kind::CreateAccounts | Kind::CreateTransfers | Kind::Kv | Kind::Tasks | Kind::Decisions | Kind::Bus
        ) {
            return Err(WriteError::NotAWrite(kind.into()));
        }
        let (reply, response) = oneshot::channel();
        let pending = Pending { kind, count: decoded.count(), body: decoded.body_bytes().to_vec(), reply };
        self.queue.try_send(pending).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => WriteError::Overloaded(self.queue_len_max),
            mpsc::error::TrySendError::Closed(_) => WriteError::Unavailable("the node is shutting down".into()),
        })?;
        Ok(response)
    }
}

async fn run(
    raft: Raft<TypeConfig>,
    config: BatcherConfig,
    mut queue: mpsc::Receiver<Pending>,
    counters: Arc<Counters>,
    batch_metrics: BatchMetrics,
) {
    let commit_apply_seconds = batch_metrics.commit_apply_seconds.clone();
    let slots = Arc::new(Semaphore::new(config.proposals_in_flight_max));
    let mut carried: Option<Pending> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(pending) => pending,
            None => match queue.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        // Requests sent at the same moment (the votes of one proposal)
        // reach the queue from several handler tasks. Yielding lets the
        // handlers that are ready run and queue theirs, so they share this
        // entry instead of each taking a slot, an entry, and an apply of
        // their own. While a pass brings new requests, more may be on their
        // way, so it yields again, up to `GATHER_PASSES_MAX` passes; a pass
        // that brings none ends the wait. No timer.
        let mut queued = queue.len();
        for _ in 0..GATHER_PASSES_MAX {
            tokio::task::yield_now().await;
            let now = queue.len();
            if now == queued {
                break;
            }
            queued = now;
        }
        let (members, next) = gather(first, &mut queue, &config);
        carried = next;
        let frame = merge(&members);
        counters.proposals.fetch_add(1, Ordering::Relaxed);
        counters.requests.fetch_add(members.len() as u64, Ordering::Relaxed);
        let items: u64 = members.iter().map(|member| u64::from(member.count)).sum();
        counters.items.fetch_add(items, Ordering::Relaxed);
        batch_metrics.requests.record(members.len() as f64);
        batch_metrics.items.record(items as f64);
        let batch = Batch { timestamp_ns: now_ns(), frame: frame.into() };
        let proposed = Instant::now();
        match raft.client_write_ff(batch).await {
            Ok(receiver) => {
                let commit_apply_seconds = commit_apply_seconds.clone();
                tokio::spawn(async move {
                    let result = receiver.await;
                    commit_apply_seconds.record(proposed.elapsed().as_secs_f64());
                    drop(slot);
                    answer(members, result);
                });
            }
            Err(fatal) => {
                let error = WriteError::Unavailable(fatal.to_string());
                members.into_iter().for_each(|member| drop(member.reply.send(Err(error.clone()))));
                return;
            }
        }
    }
}

/// Takes queued requests of `first`'s kind while they fit; a request of
/// another kind, or one that does not fit, is returned to start the next batch.
fn gather(
    first: Pending,
    queue: &mut mpsc::Receiver<Pending>,
    config: &BatcherConfig,
) -> (Vec<Pending>, Option<Pending>) {
    let (mut items, mut bytes) = (first.count, first.body.len());
    let mut members = vec![first];
    while let Ok(next) = queue.try_recv() {
        let fits = next.kind == members[0].kind
            && items + next.count <= config.batch_items_max
            && bytes + next.body.len() <= config.batch_bytes_max;
        if !fits {
            return (members, Some(next));
        }
        items += next.count;
        bytes += next.body.len();
        members.push(next);
    }
    (members, None)
}

fn merge(members: &[Pending]) -> Vec<u8> {
    let count: u32 = members.iter().map(|member| member.count).sum();
    let mut body = Vec::with_capacity(members.iter().map(|member| member.body.len()).sum());
    for member in members {
        body.extend_from_slice(&member.body);
    }
    let mut frame = Vec::with_capacity(hyperraft_wire::frame::HEADER_BYTES + body.len());
    encode_frame(members[0].kind, count, &body, &mut frame);
    frame
}

type WriteResult = Result<openraft::raft::ClientWriteResponse<TypeConfig>, ClientWriteError<u64, openraft::BasicNode>>;

fn answer<E: std::fmt::Display>(members: Vec<Pending>, result: Result<WriteResult, E>) {
    let response = match result {
        Ok(Ok(response)) => Ok(response.data),
        Ok(Err(ClientWriteError::ForwardToLeader(forward))) => {
            Err(WriteError::NotLeader { leader: forward.leader_id.zip(forward.leader_node.map(|node| node.addr)) })
        }
        Ok(Err(error)) => Err(WriteError::Unavailable(error.to_string())),
        Err(error) => Err(WriteError::Unavailable(error.to_string())),
    };
    let mut offset = 0usize;
    for member in members {
        let count = member.count as usize;
        let own = response.as_ref().map(|response| slice(response, offset, count)).map_err(Clone::clone);
        offset += count;
        // A requester that gave up waiting is not an error here.
        drop(member.reply.send(own));
    }
}

/// The part of a merged batch's response that belongs to items `offset..offset + count`.
fn slice(response: &BatchResponse, offset: usize, count: usize) -> BatchResponse {
    match response {
        BatchResponse::Codes(codes) => BatchResponse::Codes(codes[offset..offset + count].to_vec()),
        BatchResponse::Kv(results) => BatchResponse::Kv(results[offset..offset + count].to_vec()),
        BatchResponse::Tasks(results) => BatchResponse::Tasks(results[offset..offset + count].to_vec()),
        BatchResponse::Decisions(results) => BatchResponse::Decisions(results[offset..offset + count].to_vec()),
        BatchResponse::Bus(results) => BatchResponse::Bus(results[offset..offset + count].to_vec()),
        // Writes never answer records; a refusal or an empty answer is every member's.
        BatchResponse::Records(_) | BatchResponse::Empty | BatchResponse::Rejected(_) => response.clone(),
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(kind: Kind, count: u32) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending { kind, count, body: vec![0; count as usize], reply }
    }

    #[test]
    fn gather_stops_at_the_entry_bound_and_a_larger_request_goes_alone() {
        // Proves the default batcher merges queued requests only up to
        // ENTRY_ITEMS_MAX items, hands the first that does not fit to the
        // next entry, and still proposes a single request above the bound.
        let config = BatcherConfig::default();
        assert_eq!(config.batch_items_max, ENTRY_ITEMS_MAX);
        let (sender, mut queue) = mpsc::channel(64);
        let per_request = 1024;
        for _ in 0..20 {
            sender.try_send(pending(Kind::CreateTransfers, per_request)).unwrap();
        }
        let first = queue.try_recv().unwrap();
        let (members, next) = gather(first, &mut queue, &config);
        assert_eq!(members.len() as u32, ENTRY_ITEMS_MAX / per_request);
        assert_eq!(next.map(|pending| pending.count), Some(per_request), "the next entry starts with the one left");
        let large = pending(Kind::CreateTransfers, ENTRY_ITEMS_MAX * 2);
        sender.try_send(pending(Kind::CreateTransfers, 1)).unwrap();
        let (members, next) = gather(large, &mut queue, &config);
        assert_eq!(members.iter().map(|member| member.count).collect::<Vec<_>>(), vec![ENTRY_ITEMS_MAX * 2]);
        assert!(next.is_some());
    }
}
