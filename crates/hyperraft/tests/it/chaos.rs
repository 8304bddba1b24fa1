//! `hyperraft chaos` end to end: real processes, real faults, the checkers.

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_hyperraft");

#[test]
fn a_short_chaos_run_injects_faults_and_finds_no_anomaly() {
    // Proves the chaos runner works end to end on a 3-process cluster: the nemesis kills, pauses and partitions nodes for 5 s under a recorded workload, the healed cluster converges and serves, and the bank and linearizability checks pass over a history that holds acknowledged transfers and checked key/value operations; the runner exits 0 and stops by itself.
    let output = Command::new(BINARY)
        .args(["chaos", "--duration", "5", "--seed", "7", "--clients", "3"])
        .output()
        .expect("run hyperraft chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "chaos failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("anomalies: 0"), "{stdout}");
    assert!(stdout.contains("serves after healing: yes"), "{stdout}");
    let faults: u64 = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("faults: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .expect("a faults line");
    assert!(faults > 0, "no fault was injected:\n{stdout}");
    assert!(!stdout.contains(" 0 acknowledged"), "{stdout}");
    assert!(stdout.contains(": Linearizable"), "{stdout}");
}

#[test]
fn chaos_refuses_a_cluster_size_it_cannot_run() {
    // Proves the runner checks its arguments before starting anything: 2 or 7 nodes are refused with a clear error.
    for nodes in ["2", "7"] {
        let output = Command::new(BINARY).args(["chaos", "--nodes", nodes, "--duration", "1"]).output().unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("--nodes"), "{output:?}");
    }
}
