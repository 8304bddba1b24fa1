//! Any bytes a gRPC client sends as a request message either fail to decode,
//! are refused with INVALID_ARGUMENT, or become a frame the node accepts;
//! the frames of key/value requests hold exactly one command and apply to a
//! state machine without a panic.
#![no_main]

use hyperraft_api::proto;
use hyperraft_api::validate;
use hyperraft_state::{BatchOutput, StateConfig, StateMachine};
use hyperraft_wire::{Body, Frame, Kind, Limits};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::{Code, Status};

fn judge(result: Result<Vec<u8>, Status>, kv: bool) {
    let frame = match result {
        Ok(frame) => frame,
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            return;
        }
    };
    let decoded = Frame::decode(&frame, &Limits::default()).expect("a validated request gives a valid frame");
    if kv {
        let Body::Kv(commands) = decoded.body() else { panic!("not a key/value frame") };
        assert_eq!(commands.iter().count(), 1);
    }
    let config = StateConfig { apply_threads: std::num::NonZeroUsize::MIN, ..StateConfig::default() };
    let mut state = StateMachine::new(config).expect("state machine");
    let mut output = BatchOutput::default();
    let _ = state.apply(&decoded, 1, &mut output);
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&selector, message)) = bytes.split_first() else { return };
    match selector % 8 {
        7 => {
            if let Ok(request) = proto::PublishRequest::decode(message) {
                let config = hyperraft_api::BusConfig::default();
                judge(validate::durable_append_frame(&config, "fuzz", 1, &request), false);
            }
        }
        0 => {
            if let Ok(request) = proto::PutRequest::decode(message) {
                judge(validate::put_frame(&request), true);
            }
        }
        1 => {
            if let Ok(request) = proto::RangeRequest::decode(message) {
                judge(validate::range_frame(&request), true);
            }
        }
        2 => {
            if let Ok(request) = proto::DeleteRangeRequest::decode(message) {
                judge(validate::delete_range_frame(&request), true);
            }
        }
        3 => {
            if let Ok(request) = proto::TxnRequest::decode(message) {
                judge(validate::txn_frame(&request), true);
            }
        }
        4 => {
            if let Ok(request) = proto::CreateAccountsRequest::decode(message) {
                if !request.accounts.is_empty() {
                    judge(validate::accounts_frame(&request.accounts), false);
                }
            }
        }
        5 => {
            if let Ok(request) = proto::CreateTransfersRequest::decode(message) {
                if !request.transfers.is_empty() {
                    judge(validate::transfers_frame(&request.transfers), false);
                }
            }
        }
        _ => {
            if let Ok(request) = proto::CreateTransfersRequest::decode(message) {
                if let Err(status) = validate::check_packed(&request.frame, Kind::CreateTransfers) {
                    assert_eq!(status.code(), Code::InvalidArgument);
                }
            }
        }
    }
});
