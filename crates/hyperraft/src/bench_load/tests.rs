//! Unit tests of the bench load: error kinds.

use super::variant_name;

/// Proves error kinds are the variant names in snake case, payloads dropped.
#[test]
fn error_kinds_are_snake_case_variant_names() {
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Example {
        NotLeader { leader: Option<u64> },
        Overloaded(usize),
    }
    assert_eq!(variant_name(&Example::NotLeader { leader: Some(2) }), "not_leader");
    assert_eq!(variant_name(&Example::Overloaded(7)), "overloaded");
}
