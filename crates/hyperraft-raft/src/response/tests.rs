use hyperraft_state::kv::{KvError, KvResponse};

use super::{KvErrorCode, KvResult};

/// Proves every store error becomes its own code with the store's message,
/// so the API can map lease errors to their own status codes.
#[test]
fn store_errors_keep_their_code_and_message() {
    let cases = [
        (KvError::StoreFull { keys_max: 3 }, KvErrorCode::StoreFull),
        (KvError::TxnDuplicateKey, KvErrorCode::TxnDuplicateKey),
        (KvError::LeaseNotFound { id: 7 }, KvErrorCode::LeaseNotFound),
        (KvError::LeaseExists { id: 7 }, KvErrorCode::LeaseExists),
        (KvError::LeasesFull { leases_max: 2 }, KvErrorCode::LeasesFull),
        (KvError::Compacted { oldest: 4 }, KvErrorCode::Compacted),
    ];
    for (error, code) in cases {
        let message = error.to_string();
        assert_eq!(KvResult::from(&KvResponse::Error(error)), KvResult::Error { code, message });
    }
}

/// Proves the lease responses carry every field across.
#[test]
fn lease_responses_convert_field_for_field() {
    let cases = [
        (
            KvResponse::LeaseGrant { revision: 1, id: 2, ttl_ms: 3 },
            KvResult::LeaseGrant { revision: 1, id: 2, ttl_ms: 3 },
        ),
        (KvResponse::LeaseRevoke { revision: 4, deleted: 5 }, KvResult::LeaseRevoke { revision: 4, deleted: 5 }),
        (
            KvResponse::LeaseKeepAlive { revision: 6, id: 7, ttl_ms: 8 },
            KvResult::LeaseKeepAlive { revision: 6, id: 7, ttl_ms: 8 },
        ),
        (
            KvResponse::LeaseExpire { revision: 9, expired: true, deleted: 10 },
            KvResult::LeaseExpire { revision: 9, expired: true, deleted: 10 },
        ),
    ];
    for (response, result) in cases {
        assert_eq!(KvResult::from(&response), result);
    }
}

/// Proves a task batch's responses convert field for field, decisions and error codes included, and survive serde.
#[test]
fn task_responses_convert_and_round_trip() {
    use hyperraft_state::tasks::{Decision, FailReason, TaskError, TaskResponse};

    use super::{BatchResponse, TaskDecision, TaskErrorCode, TaskFailReason, TaskResult};

    let failed = Decision::Failed { reason: FailReason::NoAgreement, outputs: vec![b"a".to_vec()] };
    let cases = [
        (TaskResponse::Submitted { task_id: 1 }, TaskResult::Submitted { task_id: 1 }),
        (
            TaskResponse::Reported { task_id: 2, decision: Some(failed) },
            TaskResult::Reported {
                task_id: 2,
                decision: Some(TaskDecision::Failed {
                    reason: TaskFailReason::NoAgreement,
                    outputs: vec![serde_bytes::ByteBuf::from(b"a".to_vec())],
                }),
            },
        ),
        (
            TaskResponse::Error(TaskError::CopiesFull { task_id: 3 }),
            TaskResult::Error { code: TaskErrorCode::CopiesFull, message: "task 3 needs no more copies".to_string() },
        ),
    ];
    let mut output = hyperraft_state::BatchOutput::default();
    for (response, result) in cases {
        assert_eq!(TaskResult::from(&response), result);
        output.tasks.push(response);
    }
    let batch = BatchResponse::from_output(hyperraft_wire::Kind::Tasks, &output);
    let bytes = postcard::to_allocvec(&batch).expect("serializes");
    assert_eq!(postcard::from_bytes::<BatchResponse>(&bytes).expect("deserializes"), batch);
}
