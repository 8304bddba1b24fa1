use super::*;

fn marked(status: &Status) -> bool {
    status.metadata().get(RETRY_SAFE_KEY).and_then(|value| value.to_str().ok()) == Some("true")
}

fn hint(leader: Option<NodeId>) -> Status {
    not_leader(1, leader, None)
}

#[test]
fn only_refusals_before_proposing_are_marked_retry_safe() {
    // Proves the retry-safe marker: invalid frames, a full write queue, bad fields and admission refusals carry it; a not-leader answer from the batcher (after proposing), an unavailable cluster and a state machine refusal do not.
    let retry_after = Duration::from_millis(5);
    let before = [WriteError::InvalidFrame("damaged".into()), WriteError::NotAWrite(3), WriteError::Overloaded(16)];
    for error in before {
        let status = write_error(error.clone(), retry_after, hint);
        assert!(marked(&status), "{error:?} was refused before proposing: {status:?}");
    }
    let after = [
        WriteError::NotLeader { leader: Some((2, "127.0.0.1:1".into())) },
        WriteError::Unavailable("timed out".into()),
        WriteError::Refused("store full".into()),
    ];
    for error in after {
        let status = write_error(error.clone(), retry_after, hint);
        assert!(!marked(&status), "{error:?} may have been proposed: {status:?}");
    }
    assert!(marked(&invalid_argument("key", "empty")));
    assert!(marked(&resource_exhausted("full", retry_after)));
    assert!(!marked(&not_leader(1, Some(2), None)), "a bare leader hint says nothing about proposing");
    assert!(marked(&retry_safe(not_leader(1, Some(2), None))));
}
