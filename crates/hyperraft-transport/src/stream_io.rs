//! Reading and writing the framed messages of [`framing`](crate::framing)
//! on quinn streams, shared by the calling and serving sides.

use bytes::{Bytes, BytesMut};
use quinn::{ReadError, ReadExactError, RecvStream, SendStream, WriteError};

/// Why a framed message could not be read from a stream.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The stream or connection failed.
    Stream(ReadError),
    /// The stream ended before the announced bytes arrived.
    FinishedEarly,
    /// More bytes followed the announced body.
    TrailingBytes,
}

impl From<ReadError> for ReadFailure {
    fn from(error: ReadError) -> Self {
        ReadFailure::Stream(error)
    }
}

impl From<ReadExactError> for ReadFailure {
    fn from(error: ReadExactError) -> Self {
        match error {
            ReadExactError::FinishedEarly(_) => ReadFailure::FinishedEarly,
            ReadExactError::ReadError(error) => ReadFailure::Stream(error),
        }
    }
}

/// Reads a fixed-size header.
pub(crate) async fn read_header<const BYTES: usize>(recv: &mut RecvStream) -> Result<[u8; BYTES], ReadFailure> {
    let mut header = [0u8; BYTES];
    recv.read_exact(&mut header).await?;
    Ok(header)
}

/// Reads exactly `length` body bytes. The caller has already checked
/// `length` against its bound, so the one allocation here is bounded; when
/// the body arrives in one chunk (the common case for small messages) it
/// is returned without copying.
pub(crate) async fn read_body(recv: &mut RecvStream, length: usize) -> Result<Bytes, ReadFailure> {
    if length == 0 {
        return Ok(Bytes::new());
    }
    let first = recv.read_chunk(length, true).await?.ok_or(ReadFailure::FinishedEarly)?;
    if first.bytes.len() == length {
        return Ok(first.bytes);
    }
    let mut body = BytesMut::with_capacity(length);
    body.extend_from_slice(&first.bytes);
    while body.len() < length {
        let chunk = recv.read_chunk(length - body.len(), true).await?.ok_or(ReadFailure::FinishedEarly)?;
        body.extend_from_slice(&chunk.bytes);
    }
    debug_assert_eq!(body.len(), length);
    Ok(body.freeze())
}

/// Waits for the end of the stream, refusing any byte past the body: a
/// message is exactly its header and body.
pub(crate) async fn read_finish(recv: &mut RecvStream) -> Result<(), ReadFailure> {
    match recv.read_chunk(1, true).await? {
        None => Ok(()),
        Some(_) => Err(ReadFailure::TrailingBytes),
    }
}

/// Writes a header and body and finishes the stream. The body is handed
/// to quinn as is, without copying.
pub(crate) async fn write_message(send: &mut SendStream, header: &[u8], body: Bytes) -> Result<(), WriteError> {
    send.write_all(header).await?;
    if !body.is_empty() {
        send.write_chunk(body).await?;
    }
    send.finish()?;
    Ok(())
}
