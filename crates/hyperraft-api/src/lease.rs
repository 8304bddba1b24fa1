//! The `Lease` service, and the leader's expiry task.
//!
//! Every lease change is a key/value command in the log: `Grant`,
//! `Revoke` and each keep-alive go through the leader's batcher like a put,
//! and the state machine sets a lease's deadline from the batch timestamp
//! (the leader's clock), so every node holds the same deadlines. Nothing
//! expires by itself: the leader's [`expire_leases`] task looks for leases
//! past their deadline and proposes a `LeaseExpire` for each, which the
//! state machine applies only if the lease is still due at that command's
//! own timestamp (a keep-alive ordered before it wins). After a change of
//! leader the task waits one election timeout before expiring anything, so
//! a holder that could not reach any leader during the election does not
//! lose its lease for it. The same task expires decision proposals past
//! their deadline (see [`crate::decisions`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyperraft_raft::KvResult;
use hyperraft_wire::kv::{LEASE_TTL_MS_MAX, LEASE_TTL_MS_MIN};
use hyperraft_wire::{LeaseExpireView, LeaseGrantView, LeaseKeepAliveView, LeaseRevokeView};
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::api::Api;
use crate::convert::refused;
use crate::errors::{invalid_argument, unexpected};
use crate::kv::{kv_frame, only_result};
use crate::proto;
use crate::proto::lease_server::Lease;

/// Keys listed by one `TimeToLive`, and their bytes: the answer must fit
/// in a message.
const TIME_TO_LIVE_KEYS_MAX: usize = 10_000;
const TIME_TO_LIVE_KEY_BYTES_MAX: usize = 4 << 20;

/// Leases expired by one command batch of the expiry task.
const EXPIRED_PER_ROUND_MAX: usize = 256;

/// How often the leader looks for expired leases.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(200);

/// Keep-alive responses buffered per stream before the task waits for the
/// client to read.
const KEEP_ALIVE_BUFFERED: usize = 4;

pub(crate) struct LeaseService {
    pub(crate) api: Arc<Api>,
}

fn check_id(id: u64) -> Result<(), Status> {
    if id == 0 {
        return Err(invalid_argument("id", "0 names no lease"));
    }
    Ok(())
}

fn header(revision: u64, api: &Api) -> Option<proto::ResponseHeader> {
    Some(proto::ResponseHeader { revision, node_id: api.node_id() })
}

/// Renews lease `id` through the log; its full TTL on success.
pub(crate) async fn keep_alive_once(api: &Api, id: u64) -> Result<proto::LeaseKeepAliveResponse, Status> {
    let frame = kv_frame(|writer| writer.lease_keep_alive(LeaseKeepAliveView { id }))?;
    match only_result(api.write(&frame).await?)? {
        KvResult::LeaseKeepAlive { revision, id, ttl_ms } => {
            Ok(proto::LeaseKeepAliveResponse { header: header(revision, api), id, ttl_ms })
        }
        KvResult::Error { code, message } => Err(refused(code, message)),
        other => Err(unexpected(format!("{other:?} for a lease keep-alive"))),
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    type KeepAliveStream = ReceiverStream<Result<proto::LeaseKeepAliveResponse, Status>>;

    async fn grant(
        &self,
        request: Request<proto::LeaseGrantRequest>,
    ) -> Result<Response<proto::LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        if !(LEASE_TTL_MS_MIN..=LEASE_TTL_MS_MAX).contains(&request.ttl_ms) {
            return Err(invalid_argument(
                "ttl_ms",
                format!("{} is outside {LEASE_TTL_MS_MIN}..={LEASE_TTL_MS_MAX}", request.ttl_ms),
            ));
        }
        let grant = LeaseGrantView { id: request.id, ttl_ms: request.ttl_ms };
        let frame = kv_frame(|writer| writer.lease_grant(grant))?;
        match only_result(self.api.write(&frame).await?)? {
            KvResult::LeaseGrant { revision, id, ttl_ms } => {
                Ok(Response::new(proto::LeaseGrantResponse { header: header(revision, &self.api), id, ttl_ms }))
            }
            KvResult::Error { code, message } => Err(refused(code, message)),
            other => Err(unexpected(format!("{other:?} for a lease grant"))),
        }
    }

    async fn revoke(
        &self,
        request: Request<proto::LeaseRevokeRequest>,
    ) -> Result<Response<proto::LeaseRevokeResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        check_id(request.id)?;
        let frame = kv_frame(|writer| writer.lease_revoke(LeaseRevokeView { id: request.id }))?;
        match only_result(self.api.write(&frame).await?)? {
            KvResult::LeaseRevoke { revision, deleted } => {
                Ok(Response::new(proto::LeaseRevokeResponse { header: header(revision, &self.api), deleted }))
            }
            KvResult::Error { code, message } => Err(refused(code, message)),
            other => Err(unexpected(format!("{other:?} for a lease revoke"))),
        }
    }

    /// One task per stream renews the lease for each request, in order,
    /// and answers each; it ends at the first error (sent to the client),
    /// when the client closes its side, or when the server shuts down. The
    /// stream holds a place among `watches_max`, the bound of open streams.
    async fn keep_alive(
        &self,
        request: Request<Streaming<proto::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        let place = self.api.admit_watch()?;
        let mut requests = request.into_inner();
        let (responses, receiver) = mpsc::channel(KEEP_ALIVE_BUFFERED);
        let api = self.api.clone();
        let mut shutdown = api.shutdown.clone();
        tokio::spawn(async move {
            let _place = place;
            loop {
                let next = tokio::select! {
                    _ = shutdown.wait_for(|stopped| *stopped) => return,
                    _ = responses.closed() => return,
                    next = requests.next() => next,
                };
                let answer = match next {
                    None => return,
                    Some(Err(status)) => Err(status),
                    Some(Ok(request)) => match check_id(request.id) {
                        Ok(()) => keep_alive_once(&api, request.id).await,
                        Err(status) => Err(status),
                    },
                };
                let failed = answer.is_err();
                if responses.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn time_to_live(
        &self,
        request: Request<proto::LeaseTimeToLiveRequest>,
    ) -> Result<Response<proto::LeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        check_id(request.id)?;
        self.api.linearizable().await?;
        let answer = self.api.node.state().read(|state| {
            let kv = state.kv();
            let lease = kv.lease(request.id)?;
            let keys = if request.keys { kv.lease_keys(request.id, TIME_TO_LIVE_KEYS_MAX) } else { Vec::new() };
            let remaining_ns = lease.deadline_ns.saturating_sub(state.timestamp_last());
            Some((kv.revision(), lease, keys, remaining_ns))
        });
        let Some((revision, lease, mut keys, remaining_ns)) = answer else {
            return Err(Status::not_found(format!("lease {} does not exist", request.id)));
        };
        let mut bytes = 0;
        keys.retain(|key| {
            bytes += key.len();
            bytes <= TIME_TO_LIVE_KEY_BYTES_MAX
        });
        Ok(Response::new(proto::LeaseTimeToLiveResponse {
            header: header(revision, &self.api),
            id: lease.id,
            remaining_ms: remaining_ns / 1_000_000,
            granted_ttl_ms: lease.ttl_ms,
            keys: keys.into_iter().map(Into::into).collect(),
        }))
    }

    async fn leases(
        &self,
        request: Request<proto::LeaseLeasesRequest>,
    ) -> Result<Response<proto::LeaseLeasesResponse>, Status> {
        let _permit = self.api.admit(request.get_ref().encoded_len())?;
        self.api.linearizable().await?;
        let (revision, ids) =
            self.api.node.state().read(|state| (state.kv().revision(), state.kv().lease_ids().collect()));
        Ok(Response::new(proto::LeaseLeasesResponse { header: header(revision, &self.api), ids }))
    }
}

/// This node's clock, in Unix nanoseconds: the clock of batch timestamps.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// The leader's expiry task: every [`EXPIRY_INTERVAL`], while this node has
/// led the same term for at least `grace`, proposes `LeaseExpire` for the
/// leases past their deadline by this node's clock. Ends when the server
/// shuts down.
pub(crate) fn expire_leases(api: Arc<Api>, grace: Duration) -> JoinHandle<()> {
    let mut shutdown = api.shutdown.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EXPIRY_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The term this node leads and since when, as this task saw it.
        let mut leading: Option<(u64, tokio::time::Instant)> = None;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stopped| *stopped) => return,
                _ = ticks.tick() => {}
            }
            let (is_leader, term) = {
                let metrics = api.node.raft().metrics();
                let metrics = metrics.borrow();
                (metrics.current_leader == Some(api.node_id()), metrics.current_term)
            };
            leading = match leading {
                Some((led, since)) if is_leader && led == term => Some((led, since)),
                _ if is_leader => Some((term, tokio::time::Instant::now())),
                _ => None,
            };
            let Some((_, since)) = leading else { continue };
            if since.elapsed() < grace {
                continue;
            }
            // Proposals expire by the same clock, under the same grace.
            crate::decisions::expire_due(&api).await;
            let expired = api.node.state().read(|state| state.kv().expired_leases(now_ns(), EXPIRED_PER_ROUND_MAX));
            if expired.is_empty() {
                continue;
            }
            let frame = one_command_each(&expired);
            match frame {
                Ok(frame) => {
                    if let Err(status) = api.write(&frame).await {
                        tracing::debug!(%status, leases = expired.len(), "proposing lease expiry failed; the next round retries");
                    }
                }
                Err(status) => tracing::warn!(%status, "cannot encode lease expiry"),
            }
        }
    })
}

/// One frame with a `LeaseExpire` command for each of `ids`.
fn one_command_each(ids: &[u64]) -> Result<Vec<u8>, Status> {
    kv_frame(|writer| ids.iter().try_for_each(|&id| writer.lease_expire(LeaseExpireView { id })))
}
