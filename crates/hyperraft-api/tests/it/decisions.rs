//! The Decisions service: the majority fast path, the signed two-thirds
//! path, early termination both ways, watches, expiry, refusals, and
//! electorates that select live agents.

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use hyperraft_api::proto::agents_client::AgentsClient;
use hyperraft_api::proto::decisions_client::DecisionsClient;
use hyperraft_api::proto::{
    agent_to_node, node_to_agent, AgentSelector, AgentToNode, Criticality, GetProposalRequest, NodeToAgent,
    ProposalOutcome, ProposalState, ProposeRequest, Register, RegisterVoterKeyRequest, VoteChoice, VoteRequest,
};
use hyperraft_api::ApiConfig;
use hyperraft_wire::decisions::vote_message;
use hyperraft_wire::Choice;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::harness::{ApiCluster, PATIENCE};

fn key(voter: u64) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&voter.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn signed_vote(proposal_id: u64, voter_id: u64, choice: VoteChoice, signer: &SigningKey) -> VoteRequest {
    let wire_choice = match choice {
        VoteChoice::Approve => Choice::Approve,
        VoteChoice::Reject => Choice::Reject,
        _ => Choice::Abstain,
    };
    let signature = signer.sign(&vote_message(proposal_id, wire_choice, voter_id)).to_bytes();
    VoteRequest { proposal_id, voter_id, choice: choice as i32, signature: signature.to_vec().into() }
}

fn unsigned_vote(proposal_id: u64, voter_id: u64, choice: VoteChoice) -> VoteRequest {
    VoteRequest { proposal_id, voter_id, choice: choice as i32, signature: Default::default() }
}

fn proposal(action: &str, electorate: &[u64]) -> ProposeRequest {
    ProposeRequest { action: action.to_string(), electorate: electorate.to_vec(), ..Default::default() }
}

async fn outcome(client: &mut DecisionsClient<Channel>, request: VoteRequest) -> ProposalOutcome {
    let response = client.vote(request).await.expect("vote counted").into_inner();
    ProposalOutcome::try_from(response.outcome).expect("a known outcome")
}

/// The proposal by a linearizable read, retried as a client would while the
/// leader cannot confirm its leadership (a retry-safe UNAVAILABLE).
async fn state(client: &mut DecisionsClient<Channel>, proposal_id: u64) -> ProposalState {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client.get_proposal(GetProposalRequest { proposal_id, serializable: false }).await {
            Ok(response) => return response.into_inner(),
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("proposal {proposal_id}: {status:?}"),
        }
    }
}

async fn decisions(cluster: &ApiCluster, id: u64) -> DecisionsClient<Channel> {
    DecisionsClient::new(cluster.channel(id).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_proposal_is_decided_by_simple_majority_the_moment_it_is_certain() {
    // Proves the majority path on a 3-node cluster: a Low proposal of 5 voters is approved at its third approval and rejected at its third rejection, a later vote is refused and changes nothing, and every node holds the same outcome.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut client = decisions(&cluster, leader).await;
    let electorate = [11, 12, 13, 14, 15];
    let approve = client.propose(proposal("lunch", &electorate)).await.expect("proposed").into_inner();
    assert_eq!(approve.criticality, Criticality::Low as i32);
    assert_eq!((approve.required, approve.signed), (3, false));
    let id = approve.proposal_id;
    assert_eq!(outcome(&mut client, unsigned_vote(id, 11, VoteChoice::Approve)).await, ProposalOutcome::Open);
    assert_eq!(outcome(&mut client, unsigned_vote(id, 12, VoteChoice::Reject)).await, ProposalOutcome::Open);
    assert_eq!(outcome(&mut client, unsigned_vote(id, 13, VoteChoice::Approve)).await, ProposalOutcome::Open);
    assert_eq!(outcome(&mut client, unsigned_vote(id, 14, VoteChoice::Approve)).await, ProposalOutcome::Approved);
    let late = client.vote(unsigned_vote(id, 15, VoteChoice::Reject)).await.expect_err("late vote");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    let decided = state(&mut client, id).await;
    assert_eq!((decided.approvals, decided.rejections, decided.outstanding), (3, 1, 1));

    let reject = client.propose(proposal("lunch", &electorate)).await.expect("proposed").into_inner().proposal_id;
    for (voter, expected) in [(11, ProposalOutcome::Open), (12, ProposalOutcome::Open), (13, ProposalOutcome::Rejected)]
    {
        assert_eq!(outcome(&mut client, unsigned_vote(reject, voter, VoteChoice::Reject)).await, expected);
    }
    for node in cluster.nodes.keys() {
        let mut on_node = decisions(&cluster, *node).await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let request = GetProposalRequest { proposal_id: reject, serializable: true };
            let seen = on_node.get_proposal(request).await.expect("proposal").into_inner();
            if seen.outcome == ProposalOutcome::Rejected as i32 {
                break;
            }
            assert!(Instant::now() < deadline, "node {node} never saw the rejection");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_votes_each_get_their_own_answer() {
    // Proves votes sent at once, which the leader's batcher merges into shared log entries, each get the answer to their own vote: exactly one reports the approval, the others are counted while open or refused as late.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let client = decisions(&cluster, leader).await;
    let electorate: Vec<u64> = (1..=20).collect();
    let id = client.clone().propose(proposal("lunch", &electorate)).await.expect("proposed").into_inner().proposal_id;
    let votes: Vec<_> = electorate
        .iter()
        .map(|voter| {
            let mut client = client.clone();
            let vote = unsigned_vote(id, *voter, VoteChoice::Approve);
            tokio::spawn(async move { client.vote(vote).await })
        })
        .collect();
    let mut approved = 0;
    for vote in votes {
        match vote.await.expect("vote task") {
            Ok(response) if response.get_ref().outcome == ProposalOutcome::Approved as i32 => approved += 1,
            Ok(response) => assert_eq!(response.get_ref().outcome, ProposalOutcome::Open as i32),
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(approved, 1);
    let decided = state(&mut client.clone(), id).await;
    assert_eq!((decided.outcome, decided.approvals), (ProposalOutcome::Approved as i32, 11));
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_proposal_needs_two_thirds_of_signed_votes_and_refuses_forgeries() {
    // Proves the signed path: an action the rules call critical requires signatures; unsigned, forged, replayed and outsider votes are refused and change nothing; the fourth valid signature of five voters approves it.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut client = decisions(&cluster, leader).await;
    let voters = [21u64, 22, 23, 24, 25];
    for voter in voters {
        let public_key = key(voter).verifying_key().to_bytes().to_vec().into();
        client
            .register_voter_key(RegisterVoterKeyRequest { voter_id: voter, public_key })
            .await
            .expect("key registered");
    }
    let response = client.propose(proposal("order_execute", &voters)).await.expect("proposed").into_inner();
    assert_eq!(response.criticality, Criticality::Critical as i32);
    assert_eq!((response.required, response.signed), (4, true));
    let id = response.proposal_id;
    let other = client.propose(proposal("order_execute", &voters)).await.expect("proposed").into_inner().proposal_id;
    let refusals = [
        unsigned_vote(id, 21, VoteChoice::Approve),
        signed_vote(id, 21, VoteChoice::Approve, &key(99)),
        signed_vote(other, 21, VoteChoice::Approve, &key(21)),
        signed_vote(id, 26, VoteChoice::Approve, &key(26)),
    ];
    for request in refusals {
        let request = VoteRequest { proposal_id: id, ..request };
        let refused = client.vote(request).await.expect_err("refused vote");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    }
    let untouched = state(&mut client, id).await;
    assert_eq!((untouched.approvals, untouched.outstanding), (0, 5));
    for (index, voter) in voters.iter().take(4).enumerate() {
        let expected = if index == 3 { ProposalOutcome::Approved } else { ProposalOutcome::Open };
        assert_eq!(outcome(&mut client, signed_vote(id, *voter, VoteChoice::Approve, &key(*voter))).await, expected);
    }
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_follows_the_tally_until_the_decision_and_deadlines_expire() {
    // Proves WatchProposal streams the state after each change and ends with the decision, and an undecided proposal expires at its deadline.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut client = decisions(&cluster, leader).await;
    let id = client.propose(proposal("lunch", &[1, 2, 3])).await.expect("proposed").into_inner().proposal_id;
    let mut watcher = decisions(&cluster, leader).await;
    let request = GetProposalRequest { proposal_id: id, serializable: false };
    let mut stream = watcher.watch_proposal(request).await.expect("watch").into_inner();
    let first = stream.message().await.expect("stream").expect("first state");
    assert_eq!(first.outcome, ProposalOutcome::Open as i32);
    outcome(&mut client, unsigned_vote(id, 1, VoteChoice::Approve)).await;
    outcome(&mut client, unsigned_vote(id, 2, VoteChoice::Approve)).await;
    let mut seen = Vec::new();
    while let Some(state) = stream.message().await.expect("stream") {
        seen.push((state.approvals, state.outcome));
    }
    assert_eq!(seen.last(), Some(&(2, ProposalOutcome::Approved as i32)), "{seen:?}");

    let request = ProposeRequest { deadline_ms: 300, ..proposal("lunch", &[1, 2, 3]) };
    let expiring = client.propose(request).await.expect("proposed").into_inner().proposal_id;
    let deadline = Instant::now() + PATIENCE;
    while state(&mut client, expiring).await.outcome != ProposalOutcome::Expired as i32 {
        assert!(Instant::now() < deadline, "the proposal never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late = client.vote(unsigned_vote(expiring, 1, VoteChoice::Approve)).await.expect_err("vote after expiry");
    assert_eq!(late.code(), Code::FailedPrecondition);
    drop((client, watcher, stream));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_field_named_and_retries_are_idempotent() {
    // Proves malformed proposals, votes and keys are refused naming the field, an unknown proposal is NOT_FOUND, and a repeated idempotency key answers the kept proposal (ALREADY_EXISTS when its fields differ).
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut client = decisions(&cluster, leader).await;
    let bad_proposals = [
        (proposal("", &[1]), "action"),
        (proposal("x", &[]), "electorate"),
        (proposal("x", &[1, 0]), "electorate[1]"),
        (proposal("x", &[2, 1, 2]), "electorate"),
        (ProposeRequest { deadline_ms: 365 * 24 * 3600 * 1000, ..proposal("x", &[1]) }, "deadline_ms"),
        (ProposeRequest { criticality: 9, ..proposal("x", &[1]) }, "criticality"),
        (ProposeRequest { payload: vec![0; 65 << 10].into(), ..proposal("x", &[1]) }, "payload"),
    ];
    for (request, field) in bad_proposals {
        let refused = client.propose(request).await.expect_err("bad proposal");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(field), "{field}: {refused:?}");
    }
    let id = client.propose(proposal("x", &[1, 2])).await.expect("proposed").into_inner().proposal_id;
    let bad_votes = [
        (VoteRequest { choice: 0, ..unsigned_vote(id, 1, VoteChoice::Approve) }, "choice"),
        (VoteRequest { signature: vec![1; 10].into(), ..unsigned_vote(id, 1, VoteChoice::Approve) }, "signature"),
        (unsigned_vote(id, 0, VoteChoice::Approve), "voter_id"),
        (unsigned_vote(0, 1, VoteChoice::Approve), "proposal_id"),
    ];
    for (request, field) in bad_votes {
        let refused = client.vote(request).await.expect_err("bad vote");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(field), "{field}: {refused:?}");
    }
    let unknown = client.vote(unsigned_vote(id + 100, 1, VoteChoice::Approve)).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let short_key = RegisterVoterKeyRequest { voter_id: 1, public_key: vec![1; 31].into() };
    assert_eq!(client.register_voter_key(short_key).await.expect_err("short key").code(), Code::InvalidArgument);
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let weak_key = RegisterVoterKeyRequest { voter_id: 1, public_key: weak.to_vec().into() };
    assert_eq!(client.register_voter_key(weak_key).await.expect_err("weak key").code(), Code::InvalidArgument);
    assert_eq!(state(&mut client, id).await.outstanding, 2, "nothing counted");

    let keyed = ProposeRequest { idempotency_key: "order-7".to_string(), ..proposal("x", &[1, 2]) };
    let first = client.propose(keyed.clone()).await.expect("proposed").into_inner();
    let again = client.propose(keyed.clone()).await.expect("repeated").into_inner();
    assert_eq!((again.proposal_id, again.existed), (first.proposal_id, true));
    let changed = ProposeRequest { electorate: vec![1, 2, 3], ..keyed };
    assert_eq!(client.propose(changed).await.expect_err("different fields").code(), Code::AlreadyExists);
    drop(client);
    cluster.shutdown().await;
}

/// A registered agent with its session open: it stays live while this
/// value lives (its lease outlasts the test, so it sends no heartbeat).
struct LiveAgent {
    id: u64,
    _outbound: tokio::sync::mpsc::Sender<AgentToNode>,
    _inbound: Streaming<NodeToAgent>,
}

/// Opens a session on `channel` (the leader's) and registers an agent of
/// `agent_type` with `labels`.
async fn register_agent(channel: Channel, agent_type: &str, labels: &[(&str, &str)]) -> LiveAgent {
    let register = Register {
        agent_type: agent_type.to_string(),
        labels: labels.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect(),
        max_concurrent: 1,
        ttl_ms: 120_000,
        ..Default::default()
    };
    let (outbound, receiver) = tokio::sync::mpsc::channel(4);
    let message = AgentToNode { message: Some(agent_to_node::Message::Register(register)) };
    outbound.send(message).await.expect("the session reads its first message");
    let mut inbound =
        AgentsClient::new(channel).session(ReceiverStream::new(receiver)).await.expect("session").into_inner();
    let first = inbound.message().await.expect("session message").expect("registered");
    let Some(node_to_agent::Message::Registered(registered)) = first.message else {
        panic!("expected Registered, got {first:?}");
    };
    LiveAgent { id: registered.agent_id, _outbound: outbound, _inbound: inbound }
}

/// Proposes, retrying as a client would while the answer is a retry-safe
/// UNAVAILABLE (the leader could not confirm its leadership for the read
/// that resolves a selector, on a loaded machine).
async fn propose(
    client: &mut DecisionsClient<Channel>,
    request: ProposeRequest,
) -> Result<hyperraft_api::proto::ProposeResponse, tonic::Status> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client.propose(request.clone()).await {
            Err(status)
                if status.code() == Code::Unavailable
                    && status.metadata().get("hyperraft-retry-safe").is_some()
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answer => return answer.map(tonic::Response::into_inner),
        }
    }
}

fn select(agent_type: &str, labels: &[&str]) -> ProposeRequest {
    let selector = AgentSelector {
        agent_type: agent_type.to_string(),
        labels: labels.iter().map(|label| label.to_string()).collect(),
    };
    ProposeRequest { action: "lunch".to_string(), electorate_agents: Some(selector), ..Default::default() }
}

fn sorted(ids: &[u64]) -> Vec<u64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_electorate_of_live_agents_is_resolved_by_type_and_labels_when_proposed() {
    // Proves on a 3-node cluster with real agent sessions: a type, a label and a type-plus-labels selector commit exactly the matching live agents (on every node), an agent registered afterwards is not in the electorate and its vote is refused, the agents' votes decide, and a selection matching nobody is refused and proposes nothing.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let channel = cluster.channel(leader).await;
    let scorer_eu = register_agent(channel.clone(), "scorer", &[("region", "eu"), ("tier", "gold")]).await;
    let scorer_us = register_agent(channel.clone(), "scorer", &[("region", "us")]).await;
    let pricer_eu = register_agent(channel.clone(), "pricer", &[("region", "eu")]).await;
    let mut client = decisions(&cluster, leader).await;

    let by_type = propose(&mut client, select("scorer", &[])).await.expect("type electorate");
    assert_eq!(by_type.electorate, sorted(&[scorer_eu.id, scorer_us.id]));
    let by_label = propose(&mut client, select("", &["region=eu"])).await.expect("label electorate");
    assert_eq!(by_label.electorate, sorted(&[scorer_eu.id, pricer_eu.id]));
    let both = propose(&mut client, select("scorer", &["region=eu", "tier=gold"])).await.expect("both");
    assert_eq!(both.electorate, vec![scorer_eu.id]);
    let keyed = ProposeRequest { idempotency_key: "scorers-1".to_string(), ..select("scorer", &[]) };
    let first_keyed = propose(&mut client, keyed.clone()).await.expect("keyed");

    let latecomer = register_agent(channel.clone(), "scorer", &[("region", "eu")]).await;
    let voters = |state: &ProposalState| state.ballots.iter().map(|ballot| ballot.voter_id).collect::<Vec<_>>();
    assert_eq!(voters(&state(&mut client, by_type.proposal_id).await), by_type.electorate, "fixed when committed");
    let refused = client.vote(unsigned_vote(by_type.proposal_id, latecomer.id, VoteChoice::Approve)).await;
    assert_eq!(refused.expect_err("not in the electorate").code(), Code::FailedPrecondition);
    let later = propose(&mut client, select("scorer", &[])).await.expect("a later proposal");
    assert_eq!(later.electorate, sorted(&[scorer_eu.id, scorer_us.id, latecomer.id]), "a new proposal sees it");
    let repeated = propose(&mut client, keyed).await.expect("a repeated key");
    assert_eq!((repeated.proposal_id, repeated.existed), (first_keyed.proposal_id, true));
    assert_eq!(repeated.electorate, by_type.electorate, "a repeat keeps the electorate first resolved");

    let id = by_type.proposal_id;
    assert_eq!(outcome(&mut client, unsigned_vote(id, scorer_us.id, VoteChoice::Approve)).await, ProposalOutcome::Open);
    let last = unsigned_vote(id, scorer_eu.id, VoteChoice::Approve);
    assert_eq!(outcome(&mut client, last).await, ProposalOutcome::Approved);
    for node in cluster.nodes.keys() {
        let mut on_node = decisions(&cluster, *node).await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let request = GetProposalRequest { proposal_id: id, serializable: true };
            match on_node.get_proposal(request).await {
                Ok(seen) if seen.get_ref().outcome == ProposalOutcome::Approved as i32 => {
                    assert_eq!(voters(seen.get_ref()), by_type.electorate, "node {node}");
                    break;
                }
                Ok(_) | Err(_) => assert!(Instant::now() < deadline, "node {node} never saw the approval"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    for nobody in [select("auditor", &[]), select("", &["region=mars"]), select("pricer", &["tier=gold"])] {
        let refused = propose(&mut client, nobody.clone()).await.expect_err("matches no agent");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{nobody:?}: {refused:?}");
        assert!(refused.message().contains("no live agent matches"), "{refused:?}");
    }
    let bad = [
        (ProposeRequest { electorate: vec![1], ..select("scorer", &[]) }, "not both"),
        (select("", &[]), "names no agent type"),
        (select("", &["region"]), "not key=value"),
    ];
    for (request, reason) in bad {
        let refused = propose(&mut client, request).await.expect_err("bad selector");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(reason), "{reason}: {refused:?}");
    }
    let next = propose(&mut client, proposal("lunch", &[1])).await.expect("proposed");
    assert_eq!(next.proposal_id, later.proposal_id + 1, "the refused requests proposed nothing");
    drop((scorer_eu, scorer_us, pricer_eu, latecomer));
    drop(client);
    cluster.shutdown().await;
}
