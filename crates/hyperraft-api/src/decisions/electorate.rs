//! Electorates: the voter ids a `Propose` commits, listed by the request
//! or selected among the live agents.
//!
//! A selection names an agent type, labels (`key=value`, all required), or
//! both. The leader resolves it against the registrations under
//! `/agents/<type>/<id>` (see [`crate::agents`]) after a linearizable read
//! barrier, and the `Propose` command carries the resolved ids, sorted:
//! the electorate is fixed when the proposal commits and every replica
//! tallies the same set, whoever registers or leaves afterwards.

use std::collections::BTreeMap;

use hyperraft_state::kv::KvResponse;
use hyperraft_state::StateMachine;
use hyperraft_wire::decisions::ELECTORATE_MAX;
use hyperraft_wire::RangeView;
use prost::Message;
use tonic::Status;

use crate::agents::AGENTS_PREFIX;
use crate::errors::{invalid_argument, retry_safe};
use crate::proto;

/// Labels one selector may require.
pub(crate) const SELECTOR_LABELS_MAX: usize = 16;
/// Longest agent type a selector may name (as a registration allows).
const AGENT_TYPE_BYTES_MAX: usize = hyperraft_wire::tasks::TASK_TYPE_BYTES_MAX;
/// Longest label key or value: what a registration allows.
const LABEL_BYTES_MAX: usize = crate::agents::session::FIELD_BYTES_MAX;
/// Registrations one resolution reads. A selection over more live agents
/// than this is refused rather than resolved from a partial view.
pub(crate) const AGENTS_SCANNED_MAX: u32 = 10_000;

/// A checked [`proto::AgentSelector`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selector {
    /// Empty: any type.
    pub(crate) agent_type: String,
    /// Key → value; an agent must carry every pair.
    pub(crate) labels: BTreeMap<String, String>,
}

/// The electorate of a request that lists ids: distinct non-zero ids,
/// sorted.
pub(crate) fn listed(ids: &[u64]) -> Result<Vec<u64>, Status> {
    if ids.is_empty() || ids.len() > ELECTORATE_MAX {
        return Err(invalid_argument("electorate", format!("{} voters is outside 1..={ELECTORATE_MAX}", ids.len())));
    }
    if let Some(index) = ids.iter().position(|id| *id == 0) {
        return Err(invalid_argument(&format!("electorate[{index}]"), "0 names no voter"));
    }
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(invalid_argument("electorate", format!("voter {} is listed twice", pair[0])));
    }
    Ok(sorted)
}

/// Checks a selector: a type or at least one label, within the bounds of a
/// registration, each label `key=value` with a non-empty key, no key twice.
pub(crate) fn selector(request: &proto::AgentSelector) -> Result<Selector, Status> {
    const FIELD: &str = "electorate_agents";
    let agent_type = &request.agent_type;
    if agent_type.len() > AGENT_TYPE_BYTES_MAX || agent_type.contains('/') {
        return Err(invalid_argument(
            &format!("{FIELD}.agent_type"),
            format!("at most {AGENT_TYPE_BYTES_MAX} bytes, without '/'"),
        ));
    }
    if request.labels.len() > SELECTOR_LABELS_MAX {
        return Err(invalid_argument(
            &format!("{FIELD}.labels"),
            format!("{} labels is more than {SELECTOR_LABELS_MAX}", request.labels.len()),
        ));
    }
    if agent_type.is_empty() && request.labels.is_empty() {
        return Err(invalid_argument(FIELD, "names no agent type and no label"));
    }
    let mut labels = BTreeMap::new();
    for (index, label) in request.labels.iter().enumerate() {
        let field = format!("{FIELD}.labels[{index}]");
        let Some((key, value)) = label.split_once('=') else {
            return Err(invalid_argument(&field, format!("{label:?} is not key=value")));
        };
        if key.is_empty() || key.len() > LABEL_BYTES_MAX || value.len() > LABEL_BYTES_MAX {
            return Err(invalid_argument(
                &field,
                format!("the key must be 1..={LABEL_BYTES_MAX} bytes, the value at most {LABEL_BYTES_MAX}"),
            ));
        }
        if labels.insert(key.to_string(), value.to_string()).is_some() {
            return Err(invalid_argument(&field, format!("label key {key:?} is named twice")));
        }
    }
    Ok(Selector { agent_type: agent_type.clone(), labels })
}

impl Selector {
    /// Whether a registration matches every part of the selector.
    pub(crate) fn matches(&self, agent: &proto::AgentInfo) -> bool {
        (self.agent_type.is_empty() || agent.agent_type == self.agent_type)
            && self.labels.iter().all(|(key, value)| agent.labels.get(key) == Some(value))
    }

    /// The live agents the selector names in `state`, sorted by id: those
    /// whose registration key is held by a lease whose deadline is after
    /// `now_ns` (an agent that vanished but whose lease the leader has not
    /// expired yet is not live). Refuses with FAILED_PRECONDITION, marked
    /// retry-safe (nothing was proposed), when it names none, more than
    /// [`ELECTORATE_MAX`], or the registrations to look through are more
    /// than [`AGENTS_SCANNED_MAX`].
    pub(crate) fn resolve(&self, state: &StateMachine, now_ns: u64) -> Result<Vec<u64>, Status> {
        let prefix = match self.agent_type.as_str() {
            "" => AGENTS_PREFIX.to_string(),
            agent_type => format!("{AGENTS_PREFIX}{agent_type}/"),
        };
        let mut range_end = prefix.clone().into_bytes();
        *range_end.last_mut().expect("the prefix is not empty") += 1;
        let view = RangeView {
            key: prefix.as_bytes(),
            range_end: &range_end,
            limit: AGENTS_SCANNED_MAX,
            keys_only: false,
            count_only: false,
        };
        let KvResponse::Range { kvs, count, .. } = state.kv().range(&view) else {
            return Err(Status::internal("reading the agent registrations failed"));
        };
        if count > u64::from(AGENTS_SCANNED_MAX) {
            return Err(refused(format!(
                "{count} registrations to select from is more than {AGENTS_SCANNED_MAX}; name an agent type"
            )));
        }
        let live = |lease: u64| lease != 0 && state.kv().lease(lease).is_some_and(|info| info.deadline_ns > now_ns);
        let mut ids = Vec::new();
        for pair in kvs.iter().filter(|pair| live(pair.lease)) {
            // Registrations are written by the agents service only; one
            // that does not decode is not an agent.
            let Ok(agent) = proto::AgentInfo::decode(pair.value.as_slice()) else { continue };
            if agent.agent_id != 0 && self.matches(&agent) {
                ids.push(agent.agent_id);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Err(refused(format!("no live agent matches {}", self.describe())));
        }
        if ids.len() > ELECTORATE_MAX {
            return Err(refused(format!(
                "{} live agents match {}, more than the {ELECTORATE_MAX} an electorate may hold",
                ids.len(),
                self.describe()
            )));
        }
        Ok(ids)
    }

    /// The selector as people read it: `type=scorer, region=eu`.
    pub(crate) fn describe(&self) -> String {
        let kind = (!self.agent_type.is_empty()).then(|| format!("type={}", self.agent_type));
        let labels = self.labels.iter().map(|(key, value)| format!("{key}={value}"));
        kind.into_iter().chain(labels).collect::<Vec<_>>().join(", ")
    }
}

fn refused(message: String) -> Status {
    retry_safe(Status::failed_precondition(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(agent_type: &str, labels: &[&str]) -> proto::AgentSelector {
        proto::AgentSelector {
            agent_type: agent_type.to_string(),
            labels: labels.iter().map(|label| label.to_string()).collect(),
        }
    }

    fn agent(agent_type: &str, labels: &[(&str, &str)]) -> proto::AgentInfo {
        proto::AgentInfo {
            agent_id: 1,
            agent_type: agent_type.to_string(),
            labels: labels.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn selectors_match_type_and_every_label() {
        // Proves a selector needs the type when it names one and every label it names, and ignores labels it does not name.
        let scorer_eu = agent("scorer", &[("region", "eu"), ("tier", "gold")]);
        let scorer_us = agent("scorer", &[("region", "us")]);
        let pricer_eu = agent("pricer", &[("region", "eu")]);
        let by_type = selector(&request("scorer", &[])).unwrap();
        assert!(by_type.matches(&scorer_eu) && by_type.matches(&scorer_us) && !by_type.matches(&pricer_eu));
        let by_label = selector(&request("", &["region=eu"])).unwrap();
        assert!(by_label.matches(&scorer_eu) && !by_label.matches(&scorer_us) && by_label.matches(&pricer_eu));
        let both = selector(&request("scorer", &["region=eu", "tier=gold"])).unwrap();
        assert!(both.matches(&scorer_eu) && !both.matches(&scorer_us) && !both.matches(&pricer_eu));
        assert_eq!(both.describe(), "type=scorer, region=eu, tier=gold");
        let empty_value = selector(&request("", &["tier="])).unwrap();
        assert!(!empty_value.matches(&scorer_eu) && empty_value.matches(&agent("x", &[("tier", "")])));
    }

    #[test]
    fn bad_selectors_are_refused_with_the_field() {
        // Proves an empty selector, a malformed or repeated label, a type with '/', and too many labels are refused as INVALID_ARGUMENT naming the field.
        let too_many: Vec<String> = (0..=SELECTOR_LABELS_MAX).map(|index| format!("k{index}=v")).collect();
        let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
        let cases = [
            (request("", &[]), "electorate_agents: names no agent type"),
            (request("a/b", &[]), "electorate_agents.agent_type"),
            (request("", &["region"]), "electorate_agents.labels[0]"),
            (request("", &["=eu"]), "electorate_agents.labels[0]"),
            (request("", &["region=eu", "region=us"]), "electorate_agents.labels[1]"),
            (request("", &too_many), "electorate_agents.labels:"),
        ];
        for (bad, field) in cases {
            let status = selector(&bad).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad:?}");
            assert!(status.message().starts_with(field), "{bad:?}: {}", status.message());
        }
    }

    #[test]
    fn listed_electorates_are_sorted_and_checked() {
        // Proves a listed electorate comes back sorted, and an empty, zero, repeated or oversized one is refused.
        assert_eq!(listed(&[3, 1, 2]).unwrap(), vec![1, 2, 3]);
        assert!(listed(&[]).is_err());
        assert!(listed(&[1, 0]).unwrap_err().message().starts_with("electorate[1]"));
        assert!(listed(&[2, 2]).unwrap_err().message().contains("twice"));
        let oversized: Vec<u64> = (1..=ELECTORATE_MAX as u64 + 1).collect();
        assert!(listed(&oversized).is_err());
    }
}
