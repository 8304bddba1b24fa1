//! Seeded election timers. openraft's own are off (they draw from an
//! unseeded RNG); instead, a node that is up, not leading, and has not
//! heard from a leader for its current timeout is told to campaign
//! (`Raft::trigger().elect()`), and draws a new timeout from the run's RNG.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyperraft_load::Rng;
use hyperraft_raft::NodeId;
use openraft::ServerState;
use tokio::time::Instant;

use crate::network::Network;
use crate::registry::Registry;
use crate::trace::Trace;

/// How often the timers are looked at.
const TICK: Duration = Duration::from_millis(10);
/// Election timeouts are uniform in `[TIMEOUT_MS_MIN, TIMEOUT_MS_MIN + TIMEOUT_MS_SPREAD)`;
/// the minimum is above openraft's leader lease (301 ms here), inside which
/// followers refuse to vote.
const TIMEOUT_MS_MIN: u64 = 400;
const TIMEOUT_MS_SPREAD: u64 = 400;
/// Added to the timeout of a node that a longer log refused, as openraft
/// adds its `smaller_log_timeout` (twice the longest election timeout):
/// without it a lagging node with the highest id can win every race to
/// campaign, and its same-term candidacy keeps deposing the real leader.
const SMALLER_LOG_TIMEOUT: Duration = Duration::from_millis(2 * (TIMEOUT_MS_MIN + TIMEOUT_MS_SPREAD));

/// Runs the election timers until the task is aborted.
pub async fn drive(registry: Arc<Registry>, network: Arc<Network>, trace: Arc<Trace>, mut rng: Rng) {
    let start = Instant::now();
    let mut timeouts: BTreeMap<NodeId, Duration> = BTreeMap::new();
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        for (id, handle) in registry.up() {
            let (state, is_voter) = {
                let metrics = handle.raft.metrics();
                let metrics = metrics.borrow();
                (metrics.state, metrics.membership_config.membership().voter_ids().any(|voter| voter == id))
            };
            if state == ServerState::Leader || !is_voter {
                network.mark_heard(id);
                continue;
            }
            let mut timeout = *timeouts.entry(id).or_insert_with(|| draw(&mut rng));
            if network.saw_greater_log(id) {
                timeout += SMALLER_LOG_TIMEOUT;
            }
            if now - network.last_heard(id, start) < timeout {
                continue;
            }
            trace.event(format_args!("elect n{id} ({state:?})"));
            network.take_saw_greater_log(id);
            network.mark_heard(id);
            timeouts.insert(id, draw(&mut rng));
            let _ = handle.raft.trigger().elect().await;
        }
    }
}

fn draw(rng: &mut Rng) -> Duration {
    Duration::from_millis(TIMEOUT_MS_MIN + rng.below(TIMEOUT_MS_SPREAD))
}
