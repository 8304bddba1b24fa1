//! [`Client`]: the handle an application holds, and the retry loop every
//! call goes through ([`Core::call`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyperraft_proto::agents_client::AgentsClient;
use hyperraft_proto::cluster_client::ClusterClient;
use hyperraft_proto::kv_client::KvClient;
use hyperraft_proto::lease_client::LeaseClient;
use hyperraft_proto::ledger_client::LedgerClient;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::batcher::Batcher;
use crate::config::{ClientConfig, Compression};
use crate::error::{client_side, connect_failed, leader_hint};
use crate::pool::{spawn_health_checks, Channel, Pool, Target};
use crate::retry::{backoff, exhausted, judge, Safety, Verdict};
use crate::Error;

/// A connection to a hyperraft cluster: cheap to clone, safe to share
/// between tasks. Every clone uses the same pool, leader knowledge and
/// auto-batching queue; the background tasks stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Client {
    pub(crate) core: Arc<Core>,
    pub(crate) batcher: Arc<Batcher>,
    _health: Arc<AbortOnDrop>,
}

/// What the client did so far, for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// RPC attempts sent, retries included.
    pub attempts: u64,
    /// Attempts that were retried after they failed.
    pub retries: u64,
    /// Batches [`Client::create_transfer`] sent (each one RPC call, retries aside).
    pub transfer_batches: u64,
    /// Transfers those batches carried.
    pub transfers_batched: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) transfer_batches: AtomicU64,
    pub(crate) transfers_batched: AtomicU64,
}

/// The pool and the retry loop, shared by the client and its batcher.
pub(crate) struct Core {
    pub(crate) pool: Arc<Pool>,
    pub(crate) counters: Counters,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The answer of a call, and whether an earlier attempt of it may have
/// been applied too (then a create may answer `EXISTS` for its own items).
pub(crate) struct Answer<T> {
    pub(crate) value: T,
    pub(crate) retried_after_unknown: bool,
}

impl Client {
    /// Checks `config`, asks every endpoint for its status (to learn the
    /// leader and the other nodes), and starts the health checks and the
    /// auto-batcher. Fails when no endpoint answers: with
    /// [`Error::Unauthenticated`] when they refused the token, otherwise
    /// with [`Error::Unavailable`] naming each endpoint's failure.
    ///
    /// Must be called within a tokio runtime.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        config.validate()?;
        let pool = Arc::new(Pool::new(config)?);
        pool.first_round().await?;
        let health = AbortOnDrop(spawn_health_checks(&pool));
        let core = Arc::new(Core { pool, counters: Counters::default() });
        let batcher = Arc::new(Batcher::start(core.clone()));
        Ok(Client { core, batcher, _health: Arc::new(health) })
    }

    /// The configuration the client runs with.
    pub fn config(&self) -> &ClientConfig {
        self.core.pool.config()
    }

    /// What the client did so far.
    pub fn stats(&self) -> ClientStats {
        let counters = &self.core.counters;
        ClientStats {
            attempts: counters.attempts.load(Ordering::Relaxed),
            retries: counters.retries.load(Ordering::Relaxed),
            transfer_batches: counters.transfer_batches.load(Ordering::Relaxed),
            transfers_batched: counters.transfers_batched.load(Ordering::Relaxed),
        }
    }

    /// The API address of the node the client believes leads, if any.
    pub fn leader_address(&self) -> Option<String> {
        self.core.pool.leader().map(|endpoint| endpoint.address.clone())
    }

    /// Asks every endpoint for its status now, as the periodic health
    /// checks do: learns the leader and marks endpoints up or down. Returns
    /// how many endpoints answered.
    pub async fn refresh(&self) -> usize {
        self.core.pool.health_round().await
    }

    /// Every endpoint the client knows (configured and learned) with the
    /// number of channels open to it.
    pub fn endpoints(&self) -> Vec<(String, usize)> {
        let endpoints = self.core.pool.endpoints();
        endpoints.iter().map(|endpoint| (endpoint.address.clone(), Pool::channel_count(endpoint))).collect()
    }
}

/// A generated client that compresses its requests with `encoding` and
/// accepts responses compressed the same way; without an encoding, one
/// that neither sends nor asks for compression (small messages gain
/// nothing from it and cost CPU on both sides).
macro_rules! compressed {
    ($client:expr, $encoding:expr) => {
        match $encoding {
            Some(encoding) => $client.send_compressed(encoding).accept_compressed(encoding),
            None => $client,
        }
    };
}

impl Core {
    fn compression(&self) -> Option<CompressionEncoding> {
        self.pool.config().compression.map(|compression| match compression {
            Compression::Gzip => CompressionEncoding::Gzip,
            Compression::Zstd => CompressionEncoding::Zstd,
        })
    }

    pub(crate) fn ledger(&self, channel: Channel) -> LedgerClient<Channel> {
        compressed!(LedgerClient::new(channel).max_decoding_message_size(usize::MAX), self.compression())
    }

    pub(crate) fn kv(&self, channel: Channel) -> KvClient<Channel> {
        compressed!(KvClient::new(channel).max_decoding_message_size(usize::MAX), self.compression())
    }

    pub(crate) fn lease(&self, channel: Channel) -> LeaseClient<Channel> {
        compressed!(LeaseClient::new(channel), self.compression())
    }

    pub(crate) fn bus(&self, channel: Channel) -> hyperraft_proto::bus_client::BusClient<Channel> {
        compressed!(hyperraft_proto::bus_client::BusClient::new(channel), self.compression())
    }

    pub(crate) fn agents(&self, channel: Channel) -> AgentsClient<Channel> {
        compressed!(AgentsClient::new(channel).max_decoding_message_size(usize::MAX), self.compression())
    }

    pub(crate) fn cluster(&self, channel: Channel) -> ClusterClient<Channel> {
        compressed!(ClusterClient::new(channel), self.compression())
    }

    /// A unary request with the configured deadline.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.pool.config().request_timeout);
        request
    }

    /// Runs `attempt` on a channel to `target` until it succeeds, a failure
    /// is final, or the attempts run out; follows leader hints, backs off
    /// with jitter between attempts, and retries only what `safety` allows
    /// (see [`crate::retry`]).
    pub(crate) async fn call<T, F, Fut>(&self, target: Target, safety: Safety, attempt: F) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        Ok(self.call_tracked(target, safety, attempt).await?.value)
    }

    /// [`Core::call`], also saying whether an earlier attempt may have been applied.
    pub(crate) async fn call_tracked<T, F, Fut>(
        &self,
        target: Target,
        safety: Safety,
        mut attempt: F,
    ) -> Result<Answer<T>, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let retry = self.pool.config().retry.clone();
        let mut avoid = None;
        let mut retried_after_unknown = false;
        let mut last = None;
        for number in 0..retry.attempts {
            let checkout = self.pool.checkout(&self.pool.pick(target, avoid.as_ref()));
            self.counters.attempts.fetch_add(1, Ordering::Relaxed);
            let status = match attempt(checkout.channel.clone()).await {
                Ok(response) => {
                    self.pool.answered(&checkout.endpoint);
                    return Ok(Answer { value: response.into_inner(), retried_after_unknown });
                }
                Err(status) => status,
            };
            let hinted = leader_hint(&status);
            if let Some((id, address)) = &hinted {
                self.pool.learn_leader(*id, address.as_deref());
            }
            match judge(&status, safety) {
                Verdict::Fail(error) => {
                    if matches!(error, Error::OutcomeUnknown(_) | Error::Unavailable(_)) {
                        self.pool.failed(&checkout.endpoint, client_side(&status));
                    }
                    return Err(error);
                }
                Verdict::Retry { wait_min, elsewhere, maybe_applied } => {
                    retried_after_unknown |= maybe_applied;
                    if elsewhere {
                        self.pool.failed(&checkout.endpoint, connect_failed(&status) || client_side(&status));
                        avoid = Some(checkout.endpoint.clone());
                    }
                    tracing::debug!(attempt = number, code = ?status.code(), message = status.message(), "retrying");
                    last = Some(status);
                    if number + 1 < retry.attempts {
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        let wait = backoff(&retry, number).max(wait_min);
                        // A hint names the leader: go there at once the first time.
                        let wait = if hinted.is_some() && number == 0 { Duration::ZERO } else { wait };
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Err(last.as_ref().map_or_else(|| Error::Unavailable("no attempt was made".into()), exhausted))
    }
}
