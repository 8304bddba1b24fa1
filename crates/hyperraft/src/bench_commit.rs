//! Where an embedded run's commits spend their time, read from the nodes'
//! own metrics after the run: the leader's log sync
//! (`hyperraft_log_fsync_seconds`), its AppendEntries round trips to each
//! follower (`hyperraft_raft_append_seconds`, which include the follower's
//! own sync), and commit plus apply (`hyperraft_commit_apply_seconds`).
//!
//! The recorder keeps summaries over a rolling window (about the last
//! minute), so these are the end of the run, not its whole.

use std::collections::BTreeMap;

/// The median, p99 and maximum of one step, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The leader's commit path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitPath {
    pub leader_fsync: Quantiles,
    /// Per follower, by node id.
    pub append_round_trip: BTreeMap<String, Quantiles>,
    pub commit_apply: Quantiles,
}

/// The commit path of node `leader` from Prometheus text; `None` if any of
/// its steps has no samples there.
pub fn commit_path(exposition: &str, leader: u64) -> Option<CommitPath> {
    let leader = leader.to_string();
    let mut fsync: Option<Quantiles> = None;
    let mut append: BTreeMap<String, Quantiles> = BTreeMap::new();
    let mut apply: Option<Quantiles> = None;
    for line in exposition.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Some((name, labels)) = series.split_once('{') else { continue };
        let labels = parse_labels(labels.trim_end_matches('}'));
        if labels.get("node") != Some(&leader) {
            continue;
        }
        let (Some(quantile), Ok(seconds)) = (labels.get("quantile"), value.parse::<f64>()) else { continue };
        let field: fn(&mut Quantiles) -> &mut f64 = match quantile.as_str() {
            "0.5" => |quantiles| &mut quantiles.p50,
            "0.99" => |quantiles| &mut quantiles.p99,
            "1" => |quantiles| &mut quantiles.max,
            _ => continue,
        };
        let step = match (name, labels.get("peer")) {
            ("hyperraft_log_fsync_seconds", _) => fsync.get_or_insert_default(),
            ("hyperraft_commit_apply_seconds", _) => apply.get_or_insert_default(),
            ("hyperraft_raft_append_seconds", Some(peer)) => append.entry(peer.clone()).or_default(),
            _ => continue,
        };
        *field(step) = seconds * 1000.0;
    }
    Some(CommitPath {
        leader_fsync: fsync?,
        append_round_trip: (!append.is_empty()).then_some(append)?,
        commit_apply: apply?,
    })
}

/// `a="1",b="x"` as a map; values hold no quotes or commas here.
fn parse_labels(labels: &str) -> BTreeMap<&str, String> {
    labels
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim().trim_matches('"').to_string()))
        .collect()
}

impl Quantiles {
    fn describe(self) -> String {
        format!("{:.2} / {:.2} / {:.1}", self.p50, self.p99, self.max)
    }

    fn json(self) -> serde_json::Value {
        let round = |value: f64| (value * 1000.0).round() / 1000.0;
        serde_json::json!({ "p50": round(self.p50), "p99": round(self.p99), "max": round(self.max) })
    }
}

impl CommitPath {
    /// `{leader_fsync, append_round_trip: {peer: …}, commit_apply}`, each
    /// `{p50, p99}` in milliseconds.
    pub fn json(&self) -> serde_json::Value {
        let appends: serde_json::Map<String, serde_json::Value> =
            self.append_round_trip.iter().map(|(peer, round_trip)| (peer.clone(), round_trip.json())).collect();
        serde_json::json!({
            "leader_fsync": self.leader_fsync.json(),
            "append_round_trip": appends,
            "commit_apply": self.commit_apply.json(),
        })
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let appends: Vec<String> = self
            .append_round_trip
            .iter()
            .map(|(peer, round_trip)| format!("→{peer} {}", round_trip.describe()))
            .collect();
        format!(
            "leader fsync {} ms · append round trip {} ms · commit+apply {} ms (p50 / p99 / max, last minute)",
            self.leader_fsync.describe(),
            appends.join(", "),
            self.commit_apply.describe(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the leader's three steps are read from Prometheus text: its
    /// own series only (not another node's), the median, p99 and maximum of each, per
    /// follower for the round trips; and that a missing step yields nothing.
    #[test]
    fn the_leaders_steps_are_read_and_other_nodes_ignored() {
        let text = "\
# TYPE hyperraft_log_fsync_seconds summary
hyperraft_log_fsync_seconds{node=\"1\",quantile=\"0.5\"} 0.0002
hyperraft_log_fsync_seconds{node=\"1\",quantile=\"0.99\"} 0.0011
hyperraft_log_fsync_seconds{node=\"2\",quantile=\"0.5\"} 0.9
hyperraft_log_fsync_seconds_sum{node=\"1\"} 3.5
hyperraft_raft_append_seconds{node=\"1\",peer=\"2\",quantile=\"0.5\"} 0.0004
hyperraft_raft_append_seconds{node=\"1\",peer=\"2\",quantile=\"0.99\"} 0.002
hyperraft_raft_append_seconds{node=\"1\",peer=\"3\",quantile=\"0.5\"} 0.0005
hyperraft_raft_append_seconds{node=\"1\",peer=\"3\",quantile=\"0.9\"} 0.001
hyperraft_commit_apply_seconds{node=\"1\",quantile=\"0.5\"} 0.003
hyperraft_commit_apply_seconds{node=\"1\",quantile=\"0.99\"} 0.008
hyperraft_commit_apply_seconds{node=\"1\",quantile=\"1\"} 0.0125
";
        let path = commit_path(text, 1).expect("all three steps are there");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(path.leader_fsync.p50, 0.2) && close(path.leader_fsync.p99, 1.1));
        assert_eq!(path.append_round_trip.len(), 2);
        assert!(close(path.append_round_trip["2"].p50, 0.4) && close(path.append_round_trip["2"].p99, 2.0));
        assert!(close(path.append_round_trip["3"].p50, 0.5) && path.append_round_trip["3"].p99 == 0.0);
        assert!(close(path.commit_apply.p50, 3.0) && close(path.commit_apply.p99, 8.0));
        assert!(close(path.commit_apply.max, 12.5));
        assert!(path.describe().contains("→2 0.40 / 2.00 / 0.0"));
        assert_eq!(commit_path(text, 2), None, "node 2 has no round trips or apply here");
        assert_eq!(commit_path("", 1), None);
    }
}
