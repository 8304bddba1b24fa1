use super::*;

#[test]
fn headers_round_trip() {
    // Proves request and response headers decode to what was encoded, for
    // the edge lengths and every status.
    for length in [0, 1, 0x0102_0304, u32::MAX] {
        assert_eq!(decode_request_header(encode_request_header(length)), length);
        for status in [Status::Ok, Status::HandlerError, Status::Refused] {
            let header = encode_response_header(status, length);
            assert_eq!(decode_response_header(header), Ok((status, length)));
        }
    }
}

#[test]
fn layout_is_little_endian_with_status_first() {
    // Proves the documented byte layout, so a change to it cannot slip by.
    assert_eq!(encode_request_header(0x0403_0201), [1, 2, 3, 4]);
    assert_eq!(encode_response_header(Status::Refused, 0x0403_0201), [2, 1, 2, 3, 4]);
}

#[test]
fn unknown_status_is_reported() {
    // Proves a status byte no version defines is surfaced, not guessed.
    assert_eq!(decode_response_header([9, 0, 0, 0, 0]), Err(9));
}

#[test]
fn stream_codes_round_trip() {
    // Proves each stream code maps back to itself and unknown codes to None.
    for code in [StreamCode::Refused, StreamCode::Partitioned, StreamCode::HandlerFailed, StreamCode::ResponseRefused] {
        assert_eq!(StreamCode::from_code(code.code()), Some(code));
    }
    assert_eq!(StreamCode::from_code(quinn::VarInt::from_u32(0)), None);
}

#[test]
fn truncation_respects_character_boundaries() {
    // Proves truncation never splits a multi-byte character and leaves
    // short messages alone.
    assert_eq!(truncate_message("short", 10), "short");
    assert_eq!(truncate_message("abcdef", 3), "abc");
    // "é" is two bytes; cutting at 2 would split it.
    assert_eq!(truncate_message("aé", 2), "a");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_header_bytes_decode_to_what_re_encodes_to_them(request in any::<[u8; 4]>(), response in any::<[u8; 5]>()) {
            // Proves every 4-byte request header and every 5-byte response header is read without a panic: a known status re-encodes to the same bytes, an unknown one is reported as that byte.
            prop_assert_eq!(encode_request_header(decode_request_header(request)), request);
            match decode_response_header(response) {
                Ok((status, length)) => prop_assert_eq!(encode_response_header(status, length), response),
                Err(byte) => {
                    prop_assert_eq!(byte, response[0]);
                    prop_assert!(Status::from_byte(byte).is_none());
                }
            }
        }

        #[test]
        fn truncated_messages_are_prefixes_within_the_bound(message in ".{0,64}", bytes_max in 0usize..80) {
            // Proves an error message of any characters is cut to a prefix of at most the bound, at a character boundary.
            let cut = truncate_message(&message, bytes_max);
            prop_assert!(message.starts_with(cut));
            prop_assert!(cut.len() <= bytes_max || cut == message);
            prop_assert!(cut.len() == message.len() || message.len() > bytes_max);
        }
    }
}
