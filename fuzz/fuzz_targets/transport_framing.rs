//! Any bytes read as one call's request or response stream (the QUIC
//! framing between nodes) give a bounded body or a refusal, never a panic or
//! an allocation sized by a hostile length; a request body that arrives is
//! decoded as the node protocol, as the server does.
#![no_main]

use hyperraft_node::protocol::{NodeReply, NodeRequest};
use hyperraft_transport::framing::{
    decode_request_header, decode_response_header, truncate_message, Status, ERROR_MESSAGE_BYTES_MAX,
    REQUEST_HEADER_BYTES, RESPONSE_HEADER_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// A small bound, so the fuzzer meets both sides of it.
const MESSAGE_BYTES_MAX: usize = 4096;

fuzz_target!(|bytes: &[u8]| {
    if let Some(header) = bytes.get(..REQUEST_HEADER_BYTES) {
        let length = decode_request_header(header.try_into().expect("4 bytes")) as usize;
        if length <= MESSAGE_BYTES_MAX {
            if let Some(body) = bytes.get(REQUEST_HEADER_BYTES..REQUEST_HEADER_BYTES + length) {
                let _ = postcard::from_bytes::<NodeRequest>(body);
            }
        }
    }
    if let Some(header) = bytes.get(..RESPONSE_HEADER_BYTES) {
        let Ok((status, length)) = decode_response_header(header.try_into().expect("5 bytes")) else { return };
        let length = length as usize;
        if length > MESSAGE_BYTES_MAX {
            return;
        }
        let Some(body) = bytes.get(RESPONSE_HEADER_BYTES..RESPONSE_HEADER_BYTES + length) else { return };
        match status {
            Status::Ok => {
                let _ = postcard::from_bytes::<NodeReply>(body);
            }
            Status::HandlerError | Status::Refused => {
                let message = String::from_utf8_lossy(body);
                let cut = truncate_message(&message, ERROR_MESSAGE_BYTES_MAX);
                assert!(cut.len() <= ERROR_MESSAGE_BYTES_MAX && message.starts_with(cut));
            }
        }
    }
});
