//! The nemesis: one fault at a time, chosen by the seed, each held for a
//! while and then undone — SIGKILL and restart, SIGSTOP and SIGCONT, a node
//! cut off from the rest, or the cluster split into a minority and a majority.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hyperraft_load::Rng;

use super::cluster::Processes;

/// Faults injected, by kind.
#[derive(Clone, Debug, Default)]
pub struct FaultCounts(pub BTreeMap<&'static str, u64>);

impl FaultCounts {
    fn add(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }

    /// All faults.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// Injects faults until `until`, then leaves every node running, resumed and connected.
pub fn run(processes: &mut Processes, seed: u64, until: Instant, faults: &mut FaultCounts) -> anyhow::Result<()> {
    let mut rng = Rng::new(seed);
    let ids = processes.ids();
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize];
    let hold = |rng: &mut Rng| Duration::from_millis(300 + rng.below(1200));
    while Instant::now() < until {
        std::thread::sleep(
            Duration::from_millis(200 + rng.below(800)).min(until.saturating_duration_since(Instant::now())),
        );
        if Instant::now() >= until {
            break;
        }
        let victim = pick(&mut rng);
        match rng.below(4) {
            0 => {
                processes.kill(victim)?;
                faults.add("kill");
                std::thread::sleep(hold(&mut rng));
                processes.start(victim)?;
            }
            1 => {
                processes.pause(victim, true)?;
                faults.add("pause");
                std::thread::sleep(hold(&mut rng));
                processes.pause(victim, false)?;
            }
            2 => {
                processes.partition(&BTreeSet::from([victim]))?;
                faults.add("isolate");
                std::thread::sleep(hold(&mut rng));
                processes.partition(&BTreeSet::new())?;
            }
            _ => {
                // A minority (one or two nodes) on one side, the rest on the other.
                let minority = (ids.len() - 1) / 2;
                let mut side = BTreeSet::new();
                while side.len() < minority.max(1) {
                    side.insert(pick(&mut rng));
                }
                processes.partition(&side)?;
                faults.add("split");
                std::thread::sleep(hold(&mut rng));
                processes.partition(&BTreeSet::new())?;
            }
        }
    }
    processes.heal_all()
}
