//! Any bytes read as a log segment or a log metadata file give valid
//! records and a reason to stop, or a refusal, never a panic; half of the
//! inputs are turned into well-formed records first so the fuzzer reaches
//! the entry decoder behind the checksums.
#![no_main]

use hyperraft_raft::log::decoders::{decode_meta, scan_segment};
use libfuzzer_sys::fuzz_target;

/// `[len][crc32c][index][term][payload]`, as the log writes a record.
fn sealed(index: u64, term: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + payload.len());
    body.extend_from_slice(&index.to_le_bytes());
    body.extend_from_slice(&term.to_le_bytes());
    body.extend_from_slice(payload);
    let mut record = Vec::with_capacity(8 + body.len());
    record.extend_from_slice(&(body.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    record.extend_from_slice(&body);
    record
}

fuzz_target!(|bytes: &[u8]| {
    let _ = decode_meta(bytes);
    let Some((&selector, rest)) = bytes.split_first() else { return };
    if selector & 1 == 0 {
        let scan = scan_segment(rest, u64::from(selector >> 1));
        assert!(scan.entries.len() <= rest.len() / 24);
    } else {
        let record = sealed(1, 1, rest);
        let scan = scan_segment(&record, 1);
        assert!(scan.entries.len() <= 1);
    }
});
