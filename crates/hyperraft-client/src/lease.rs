//! Lease calls, and [`KeepAlive`]: a background task that keeps a lease
//! alive until it is dropped.
//!
//! A grant or revoke is not idempotent (a repeated grant with id 0 makes a
//! second lease), so it is retried only when the request certainly
//! changed nothing, like a key/value write. Renewals are idempotent.

use std::sync::Arc;
use std::time::Duration;

use hyperraft_proto::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::client::Core;
use crate::error::client_side;
use crate::pool::Target;
use crate::retry::{backoff, Safety};
use crate::{Client, Error};

/// Renewal period before the first answer says the lease's TTL: a third
/// of the shortest TTL the server grants.
const FIRST_PERIOD: Duration = Duration::from_millis(333);

impl Client {
    /// Grants a lease of `ttl` (whole milliseconds, 1 s to 1 day); `id` 0
    /// lets the cluster choose the id.
    pub async fn lease_grant(&self, ttl: Duration, id: u64) -> Result<LeaseGrantResponse, Error> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let core = &self.core;
        core.call(Target::Leader, Safety::NotIdempotent, |channel| {
            let mut lease = core.lease(channel);
            let request = core.request(LeaseGrantRequest { ttl_ms, id });
            async move { lease.grant(request).await }
        })
        .await
    }

    /// Revokes lease `id`, deleting every key attached to it.
    pub async fn lease_revoke(&self, id: u64) -> Result<LeaseRevokeResponse, Error> {
        let core = &self.core;
        core.call(Target::Leader, Safety::NotIdempotent, |channel| {
            let mut lease = core.lease(channel);
            let request = core.request(LeaseRevokeRequest { id });
            async move { lease.revoke(request).await }
        })
        .await
    }

    /// How long lease `id` has left, and with `keys`, the keys attached to it.
    pub async fn lease_time_to_live(&self, id: u64, keys: bool) -> Result<LeaseTimeToLiveResponse, Error> {
        let core = &self.core;
        core.call(Target::Leader, Safety::Idempotent, |channel| {
            let mut lease = core.lease(channel);
            let request = core.request(LeaseTimeToLiveRequest { id, keys });
            async move { lease.time_to_live(request).await }
        })
        .await
    }

    /// The ids of every live lease.
    pub async fn leases(&self) -> Result<Vec<u64>, Error> {
        let core = &self.core;
        let response = core
            .call(Target::Leader, Safety::Idempotent, |channel| {
                let mut lease = core.lease(channel);
                let request = core.request(LeaseLeasesRequest {});
                async move { lease.leases(request).await }
            })
            .await?;
        Ok(response.ids)
    }

    /// Keeps lease `id` alive: a background task renews it every third of
    /// its TTL over a `KeepAlive` stream to the leader, reconnecting after
    /// failures, until the returned handle is dropped or the lease is gone.
    pub fn keep_alive(&self, id: u64) -> KeepAlive {
        let (state, receiver) = watch::channel(KeepAliveState::Starting);
        let task = tokio::spawn(renew(self.core.clone(), id, state));
        KeepAlive { id, state: receiver, task }
    }
}

/// What a [`KeepAlive`] knows about its lease.
#[derive(Clone, Debug)]
pub enum KeepAliveState {
    /// No renewal answered yet.
    Starting,
    /// Renewed at `renewed_at` for `ttl`.
    Alive {
        /// When the last renewal was answered.
        renewed_at: Instant,
        /// The TTL it was renewed for.
        ttl: Duration,
    },
    /// The lease is gone (revoked or expired: [`Error::NotFound`]) or
    /// renewing failed for good; the task has stopped.
    Lost(Error),
}

/// Keeps a lease alive while held; dropping it stops the renewals (the
/// lease then expires after its TTL unless revoked first).
pub struct KeepAlive {
    id: u64,
    state: watch::Receiver<KeepAliveState>,
    task: JoinHandle<()>,
}

impl KeepAlive {
    /// The lease kept alive.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The latest state.
    pub fn state(&self) -> KeepAliveState {
        self.state.borrow().clone()
    }

    /// Waits for the next change of state; `None` when the task ended.
    pub async fn changed(&mut self) -> Option<KeepAliveState> {
        self.state.changed().await.ok()?;
        Some(self.state.borrow_and_update().clone())
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renews until the lease is gone or the retry budget is spent in a row.
async fn renew(core: Arc<Core>, id: u64, state: watch::Sender<KeepAliveState>) {
    let retry = core.pool.config().retry.clone();
    let mut failures = 0;
    loop {
        let error = match renew_on_one_stream(&core, id, &state).await {
            Ok(()) => return,
            Err((error, progressed)) => {
                if progressed {
                    failures = 0;
                }
                error
            }
        };
        failures += 1;
        let fatal = matches!(
            error,
            Error::NotFound(_)
                | Error::Unimplemented(_)
                | Error::InvalidArgument { .. }
                | Error::Unauthenticated(_)
                | Error::PermissionDenied(_)
        );
        if fatal || failures >= retry.attempts {
            let _ = state.send(KeepAliveState::Lost(error));
            return;
        }
        tokio::time::sleep(backoff(&retry, failures - 1)).await;
    }
}

/// One `KeepAlive` stream: renews until it fails. `Ok` when nobody holds
/// the handle any more; the error says whether a renewal succeeded first.
async fn renew_on_one_stream(core: &Core, id: u64, state: &watch::Sender<KeepAliveState>) -> Result<(), (Error, bool)> {
    let checkout = core.pool.checkout(&core.pool.pick(Target::Leader, None));
    let (requests, receiver) = mpsc::channel(4);
    let mut lease = core.lease(checkout.channel.clone());
    let fail = |status: tonic::Status, progressed: bool| {
        if let Some((leader, address)) = crate::error::leader_hint(&status) {
            core.pool.learn_leader(leader, address.as_deref());
        } else if status.code() == Code::Unavailable || client_side(&status) {
            core.pool.failed(&checkout.endpoint, client_side(&status));
        }
        (Error::from_status(&status), progressed)
    };
    // The first renewal goes out with the call.
    requests.try_send(LeaseKeepAliveRequest { id }).expect("an empty queue has room");
    let mut responses = match lease.keep_alive(ReceiverStream::new(receiver)).await {
        Ok(response) => response.into_inner(),
        Err(status) => return Err(fail(status, false)),
    };
    let mut period = FIRST_PERIOD;
    let mut next_renewal = Instant::now() + period;
    let mut progressed = false;
    loop {
        tokio::select! {
            message = responses.message() => match message {
                Ok(Some(response)) => {
                    let ttl = Duration::from_millis(response.ttl_ms);
                    period = (ttl / 3).max(Duration::from_millis(1));
                    progressed = true;
                    if state.send(KeepAliveState::Alive { renewed_at: Instant::now(), ttl }).is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => return Err((Error::Unavailable("the node ended the keep-alive stream".into()), progressed)),
                Err(status) => return Err(fail(status, progressed)),
            },
            () = tokio::time::sleep_until(next_renewal) => {
                next_renewal = Instant::now() + period;
                // A full queue means the node has not read the last renewals: one more adds nothing.
                let _ = requests.try_send(LeaseKeepAliveRequest { id });
            }
            () = state.closed() => return Ok(()),
        }
    }
}
