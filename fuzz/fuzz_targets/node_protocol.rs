//! Any bytes a peer or client sends decode as a node request (or, on the
//! caller's side, a reply) or fail cleanly; a decoded message re-encodes to
//! bytes that decode again.
#![no_main]

use hyperraft_node::protocol::{NodeReply, NodeRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(request) = postcard::from_bytes::<NodeRequest>(bytes) {
        let again = postcard::to_stdvec(&request).expect("a decoded request encodes");
        assert!(postcard::from_bytes::<NodeRequest>(&again).is_ok());
    }
    if let Ok(reply) = postcard::from_bytes::<NodeReply>(bytes) {
        let again = postcard::to_stdvec(&reply).expect("a decoded reply encodes");
        assert!(postcard::from_bytes::<NodeReply>(&again).is_ok());
    }
});
