//! The simulated network: openraft's `RaftNetworkFactory`/`RaftNetwork`
//! over in-process calls, with seeded delay, loss, duplication (the copy
//! arrives later, so stale messages overtake fresh ones) and partitions
//! (symmetric or one-way), each decided per message and written to the trace.
//!
//! A call goes request hop → delivery to whatever incarnation of the target
//! is up at that moment → reply hop. A partition is checked when a message
//! is sent and again when it arrives, so one that starts mid-flight loses it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperraft_load::Rng;
use hyperraft_raft::{NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Raft};
use tokio::time::Instant;

use crate::faults::{Cut, NetworkProfile};
use crate::registry::Registry;
use crate::trace::Trace;

/// A Raft RPC in flight.
#[derive(Clone)]
pub enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The target's answer.
pub enum Reply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
}

impl Request {
    fn describe(&self) -> String {
        match self {
            Request::Append(request) => format!(
                "append[{} {}..+{} c{}]",
                request.vote,
                request.prev_log_id.map_or(0, |id| id.index),
                request.entries.len(),
                request.leader_commit.map_or(0, |id| id.index)
            ),
            Request::Vote(request) => format!("vote[{}]", request.vote),
            Request::Snapshot(request) => format!("snapshot[{} @{}]", request.vote, request.offset),
        }
    }
}

/// Why a call produced no reply.
enum Failure {
    /// The target is down or a partition cut the link (openraft backs off).
    Unreachable(&'static str),
    /// The message was lost on the way (openraft retries).
    Lost,
}

/// What happened to messages, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkCounters {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub cut: u64,
    pub duplicated: u64,
    pub fake_acks: u64,
}

struct NetworkState {
    rng: Rng,
    profile: NetworkProfile,
    /// Loss, duplication and spikes are on only during the fault phase.
    message_faults: bool,
    cuts: BTreeMap<u64, Cut>,
    /// When each node last heard from a leader (or granted a vote).
    heard: BTreeMap<NodeId, Instant>,
    /// Candidates refused by a node with a longer log since they last campaigned.
    saw_greater_log: BTreeSet<NodeId>,
    sabotage: bool,
    counters: NetworkCounters,
}

/// The fate of one hop, decided when the message is sent.
struct Hop {
    delay: Duration,
    lost: bool,
    /// Deliver a copy this much later than the original.
    duplicate_after: Option<Duration>,
}

/// The network between the simulated nodes.
pub struct Network {
    registry: Arc<Registry>,
    trace: Arc<Trace>,
    state: Mutex<NetworkState>,
}

impl Network {
    pub fn new(registry: Arc<Registry>, trace: Arc<Trace>, rng: Rng, profile: NetworkProfile) -> Network {
        let state = NetworkState {
            rng,
            profile,
            message_faults: false,
            cuts: BTreeMap::new(),
            heard: BTreeMap::new(),
            saw_greater_log: BTreeSet::new(),
            sabotage: false,
            counters: NetworkCounters::default(),
        };
        Network { registry, trace, state: Mutex::new(state) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetworkState> {
        self.state.lock().expect("network lock")
    }

    pub fn set_message_faults(&self, on: bool) {
        self.lock().message_faults = on;
    }

    pub fn set_sabotage(&self, on: bool) {
        self.lock().sabotage = on;
    }

    pub fn cut(&self, id: u64, cut: Cut) {
        self.lock().cuts.insert(id, cut);
    }

    pub fn heal(&self, id: u64) {
        self.lock().cuts.remove(&id);
    }

    pub fn heal_all(&self) {
        self.lock().cuts.clear();
    }

    pub fn counters(&self) -> NetworkCounters {
        self.lock().counters
    }

    /// When `node` last heard from a leader; a node never heard from counts from `since`.
    pub fn last_heard(&self, node: NodeId, since: Instant) -> Instant {
        *self.lock().heard.entry(node).or_insert(since)
    }

    pub fn mark_heard(&self, node: NodeId) {
        self.lock().heard.insert(node, Instant::now());
    }

    /// Whether `node` was refused a vote by a node with a longer log since
    /// it last campaigned; clears the mark (openraft's `seen_greater_log`,
    /// which delays the next election so a lagging node stops disrupting).
    pub fn take_saw_greater_log(&self, node: NodeId) -> bool {
        self.lock().saw_greater_log.remove(&node)
    }

    pub fn saw_greater_log(&self, node: NodeId) -> bool {
        self.lock().saw_greater_log.contains(&node)
    }

    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.lock().cuts.values().any(|cut| cut.blocks(from, to))
    }

    fn plan_hop(&self, duplicable: bool) -> Hop {
        let mut state = self.lock();
        let NetworkState { rng, profile, message_faults, .. } = &mut *state;
        let mut delay_us = profile.delay_us_min + rng.below(profile.delay_us_max - profile.delay_us_min + 1);
        let mut lost = false;
        let mut duplicate_after = None;
        if *message_faults {
            if rng.below(1000) < profile.spike_per_mille {
                delay_us += rng.below(profile.spike_us_max);
            }
            lost = rng.below(1000) < profile.drop_per_mille;
            if duplicable && rng.below(1000) < profile.duplicate_per_mille {
                duplicate_after = Some(Duration::from_micros(1 + rng.below(profile.delay_us_max * 4)));
            }
        }
        Hop { delay: Duration::from_micros(delay_us), lost, duplicate_after }
    }

    /// One RPC from `from` to `to`, through both hops.
    async fn call(self: &Arc<Self>, from: NodeId, to: NodeId, request: Request) -> Result<Reply, Failure> {
        let what = request.describe();
        self.lock().counters.sent += 1;
        let hop = self.plan_hop(true);
        if let Some(after) = hop.duplicate_after {
            self.lock().counters.duplicated += 1;
            self.trace.event(format_args!("dup {from}->{to} {what} +{}us", after.as_micros()));
            let network = self.clone();
            let copy = request.clone();
            let delay = hop.delay + after;
            tokio::spawn(async move { network.deliver_copy(from, to, copy, delay).await });
        }
        if self.is_cut(from, to) {
            return self.fail(from, to, &what, Failure::Unreachable("cut"), hop.delay).await;
        }
        if hop.lost {
            return self.fail(from, to, &what, Failure::Lost, hop.delay).await;
        }
        tokio::time::sleep(hop.delay).await;
        if self.is_cut(from, to) {
            return self.fail(from, to, &what, Failure::Unreachable("cut in flight"), Duration::ZERO).await;
        }
        let Some(target) = self.registry.get(to) else {
            return self.fail(from, to, &what, Failure::Unreachable("down"), Duration::ZERO).await;
        };
        let candidate_last_log = match &request {
            Request::Vote(vote) => Some(vote.last_log_id),
            _ => None,
        };
        let reply = if self.fake_ack(&request) {
            self.trace.event(format_args!("fake-ack {from}->{to} {what}"));
            Reply::Append(Ok(AppendEntriesResponse::Success))
        } else {
            self.trace.event(format_args!("deliver {from}->{to} {what}"));
            let reply = deliver(&target.raft, request).await;
            self.note_heard(to, &reply);
            reply
        };
        self.lock().counters.delivered += 1;
        let back = self.plan_hop(false);
        if self.is_cut(to, from) {
            return self.fail(to, from, &what, Failure::Unreachable("reply cut"), back.delay).await;
        }
        if back.lost {
            return self.fail(to, from, &what, Failure::Lost, back.delay).await;
        }
        tokio::time::sleep(back.delay).await;
        self.trace.event(format_args!("reply {to}->{from} {what} {}", describe_reply(&reply)));
        if let (Some(candidate_last_log), Reply::Vote(Ok(response))) = (candidate_last_log, &reply) {
            if !response.vote_granted && response.last_log_id > candidate_last_log {
                self.lock().saw_greater_log.insert(from);
            }
        }
        Ok(reply)
    }

    fn fake_ack(&self, request: &Request) -> bool {
        let mut state = self.lock();
        let fake = state.sabotage && matches!(request, Request::Append(_));
        state.counters.fake_acks += u64::from(fake);
        fake
    }

    async fn fail(
        &self,
        from: NodeId,
        to: NodeId,
        what: &str,
        failure: Failure,
        after: Duration,
    ) -> Result<Reply, Failure> {
        {
            let mut state = self.lock();
            match failure {
                Failure::Lost => state.counters.lost += 1,
                Failure::Unreachable(_) => state.counters.cut += 1,
            }
        }
        tokio::time::sleep(after).await;
        let reason = match &failure {
            Failure::Lost => "lost",
            Failure::Unreachable(reason) => reason,
        };
        self.trace.event(format_args!("fail {from}->{to} {what} {reason}"));
        Err(failure)
    }

    async fn deliver_copy(&self, from: NodeId, to: NodeId, request: Request, delay: Duration) {
        tokio::time::sleep(delay).await;
        if self.is_cut(from, to) {
            return;
        }
        let Some(target) = self.registry.get(to) else { return };
        let what = request.describe();
        let reply = deliver(&target.raft, request).await;
        self.trace.event(format_args!("copy {from}->{to} {what} {}", describe_reply(&reply)));
    }

    /// A follower that accepted a leader's append or snapshot, or granted a
    /// vote, restarts its election timer (as Raft's followers do).
    fn note_heard(&self, node: NodeId, reply: &Reply) {
        let heard = match reply {
            Reply::Append(Ok(response)) => !matches!(response, AppendEntriesResponse::HigherVote(_)),
            Reply::Vote(Ok(response)) => response.vote_granted,
            Reply::Snapshot(Ok(_)) => true,
            _ => false,
        };
        if heard {
            self.mark_heard(node);
        }
    }
}

async fn deliver(raft: &Raft<TypeConfig>, request: Request) -> Reply {
    match request {
        Request::Append(request) => Reply::Append(raft.append_entries(request).await),
        Request::Vote(request) => Reply::Vote(raft.vote(request).await),
        Request::Snapshot(request) => Reply::Snapshot(raft.install_snapshot(request).await),
    }
}

fn describe_reply(reply: &Reply) -> String {
    match reply {
        Reply::Append(Ok(response)) => format!("{response}"),
        Reply::Vote(Ok(response)) => format!("granted={} {}", response.vote_granted, response.vote),
        Reply::Snapshot(Ok(response)) => format!("snapshot-ok {}", response.vote),
        Reply::Append(Err(error)) => format!("error {error}"),
        Reply::Vote(Err(error)) => format!("error {error}"),
        Reply::Snapshot(Err(error)) => format!("error {error}"),
    }
}

/// Creates a [`SimPeer`] per target for one source node.
pub struct SimNetworkFactory {
    pub source: NodeId,
    pub network: Arc<Network>,
}

impl RaftNetworkFactory<TypeConfig> for SimNetworkFactory {
    type Network = SimPeer;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> SimPeer {
        SimPeer { source: self.source, target, network: self.network.clone() }
    }
}

/// Sends one node's RPCs to one peer through the simulated network.
pub struct SimPeer {
    source: NodeId,
    target: NodeId,
    network: Arc<Network>,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl SimPeer {
    async fn call<E: std::error::Error>(&self, request: Request) -> Result<Reply, RpcError<E>> {
        self.network.call(self.source, self.target, request).await.map_err(|failure| match failure {
            Failure::Unreachable(reason) => RPCError::Unreachable(Unreachable::new(&std::io::Error::other(reason))),
            Failure::Lost => RPCError::Network(NetworkError::new(&std::io::Error::other("message lost"))),
        })
    }

    // The error type is openraft's (`RaftNetwork`'s return type); boxing it here would not help.
    #[allow(clippy::result_large_err)]
    fn remote<T, E: std::error::Error>(&self, reply: Result<T, RaftError<NodeId, E>>) -> Result<T, RpcError<E>> {
        reply.map_err(|error| match error {
            // A node stopping mid-call looks like a dead peer, not an answer.
            RaftError::Fatal(fatal) => RPCError::Unreachable(Unreachable::new(&fatal)),
            error => RPCError::RemoteError(RemoteError::new(self.target, error)),
        })
    }
}

fn mismatch<E: std::error::Error>() -> RpcError<E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("reply to a different RPC")))
}

impl RaftNetwork<TypeConfig> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        match self.call(Request::Append(rpc)).await? {
            Reply::Append(reply) => self.remote(reply),
            _ => Err(mismatch()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        match self.call(Request::Snapshot(rpc)).await? {
            Reply::Snapshot(reply) => self.remote(reply),
            _ => Err(mismatch()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, _option: RPCOption) -> Result<VoteResponse<NodeId>, RpcError> {
        match self.call(Request::Vote(rpc)).await? {
            Reply::Vote(reply) => self.remote(reply),
            _ => Err(mismatch()),
        }
    }
}
