//! Any bytes read as a snapshot give a state machine or a typed error, never
//! a panic or an allocation sized by a hostile length.
#![no_main]

use hyperraft_state::{StateConfig, StateMachine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let config = StateConfig { apply_threads: std::num::NonZeroUsize::MIN, ..StateConfig::default() };
    if let Ok(state) = StateMachine::read_snapshot(bytes, config) {
        let (debits, credits) = state.ledger().totals();
        assert_eq!(debits, credits, "a restored ledger is balanced");
    }
});
