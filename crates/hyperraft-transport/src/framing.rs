//! The byte layout of one call on one QUIC bidirectional stream.
//!
//! Each call opens a fresh bidirectional stream, so the stream itself
//! delimits the call and many calls run side by side on one connection.
//! All integers are little-endian.
//!
//! ```text
//! request  (caller -> server): [length u32][body: length bytes] FIN
//! response (server -> caller): [status u8][length u32][body: length bytes] FIN
//! ```
//!
//! | status | meaning | body |
//! |---|---|---|
//! | 0 [`Status::Ok`] | the handler answered | the response |
//! | 1 [`Status::HandlerError`] | the handler returned an error | UTF-8 message |
//! | 2 [`Status::Refused`] | the server refused the request unread (too large, malformed) | UTF-8 reason |
//!
//! Both lengths are checked against `message_bytes_max` *before* any body
//! byte is read or any buffer allocated. A server refusing a request still
//! writes a [`Status::Refused`] response and then stops the request stream
//! with [`StreamCode::Refused`], so a caller blocked sending a large body
//! is released at once and then reads the reason.
//!
//! There is no checksum: every QUIC packet is sealed with TLS 1.3 AEAD
//! (AES-GCM or ChaCha20-Poly1305), which already rejects corrupted bytes
//! with a far stronger check than CRC32C, so a CRC would only cost a pass
//! over every byte. Message contents that outlive the call (log entries,
//! snapshots) carry their own checksums in `hyperraft-wire` frames.

/// Bytes before the body of a request: its length.
pub const REQUEST_HEADER_BYTES: usize = 4;
/// Bytes before the body of a response: status and length.
pub const RESPONSE_HEADER_BYTES: usize = 5;
/// Error messages and refusal reasons are for humans; longer ones are cut
/// (at a character boundary) so that an error never costs a large message.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 4096;

/// The outcome a response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The body is the handler's response.
    Ok = 0,
    /// The body is the handler's error message.
    HandlerError = 1,
    /// The body is the server's reason for refusing the request unread.
    Refused = 2,
}

impl Status {
    /// The status for a byte, or `None` for a byte no version defines.
    pub fn from_byte(byte: u8) -> Option<Status> {
        match byte {
            0 => Some(Status::Ok),
            1 => Some(Status::HandlerError),
            2 => Some(Status::Refused),
            _ => None,
        }
    }
}

/// Application error codes carried by QUIC `STOP_SENDING` and
/// `RESET_STREAM` frames on a call's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum StreamCode {
    /// The server stopped reading an unacceptable request; its response
    /// says why.
    Refused = 1,
    /// Fault injection: one side has partitioned the other.
    Partitioned = 2,
    /// The server's handler failed without answering (it panicked).
    HandlerFailed = 3,
    /// The caller stopped reading a response larger than it accepts.
    ResponseRefused = 4,
}

impl StreamCode {
    /// The code as QUIC carries it.
    pub fn code(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(self as u32)
    }

    /// The code for a received value, if this version defines it.
    pub fn from_code(code: quinn::VarInt) -> Option<StreamCode> {
        match code.into_inner() {
            1 => Some(StreamCode::Refused),
            2 => Some(StreamCode::Partitioned),
            3 => Some(StreamCode::HandlerFailed),
            4 => Some(StreamCode::ResponseRefused),
            _ => None,
        }
    }

    /// What the code means, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            StreamCode::Refused => "request refused",
            StreamCode::Partitioned => "partitioned",
            StreamCode::HandlerFailed => "handler failed without answering",
            StreamCode::ResponseRefused => "response refused",
        }
    }
}

/// Application error codes carried by QUIC `CONNECTION_CLOSE` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// The endpoint is shutting down.
    Shutdown = 0,
    /// The peer's certificate verified but names no node (`node-{id}`).
    NotANode = 1,
}

impl CloseCode {
    /// The code as QUIC carries it.
    pub fn code(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(self as u32)
    }
}

/// The header of a request with a `length`-byte body.
pub fn encode_request_header(length: u32) -> [u8; REQUEST_HEADER_BYTES] {
    length.to_le_bytes()
}

/// The body length a request header announces.
pub fn decode_request_header(header: [u8; REQUEST_HEADER_BYTES]) -> u32 {
    u32::from_le_bytes(header)
}

/// The header of a response with `status` and a `length`-byte body.
pub fn encode_response_header(status: Status, length: u32) -> [u8; RESPONSE_HEADER_BYTES] {
    let [a, b, c, d] = length.to_le_bytes();
    [status as u8, a, b, c, d]
}

/// The status and body length a response header announces, or the
/// unknown status byte.
pub fn decode_response_header(header: [u8; RESPONSE_HEADER_BYTES]) -> Result<(Status, u32), u8> {
    let [status, a, b, c, d] = header;
    let status = Status::from_byte(status).ok_or(status)?;
    Ok((status, u32::from_le_bytes([a, b, c, d])))
}

/// `message` cut to at most `bytes_max` bytes, at a character boundary.
pub fn truncate_message(message: &str, bytes_max: usize) -> &str {
    if message.len() <= bytes_max {
        return message;
    }
    let mut end = bytes_max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests;
