//! The compact layout of durable bus commands, their views and their writer.
//!
//! A `Bus` frame's body is `count` commands back to back, with no padding;
//! every command starts with a fixed header whose lengths say exactly where
//! it ends. All integers are little-endian. Every command begins with a
//! one-byte tag and a one-byte flags field; no flag bits are defined yet,
//! so all are reserved and must be zero.
//!
//! ```text
//! ConfigureTopic tag=1 u8 | flags u8 | topic_len u16 | messages_max u64
//!                | bytes_max u64 | topic                   (20-byte header)
//! Append         tag=2 u8 | flags u8 | topic_len u16 | publisher_len u16
//!                | count u32 | first_sequence u64 | topic | publisher
//!                | count × (len u32 | payload)             (18-byte header)
//! ```
//!
//! `ConfigureTopic` makes a topic durable (or changes its retention):
//! the topic keeps its newest `messages_max` messages within `bytes_max`
//! payload bytes. `Append` adds `count` messages of one publisher to a
//! durable topic; `first_sequence` is the publisher's sequence number of
//! the first one, and the rest follow one by one.
//!
//! Bounds: a topic is 1 to [`TOPIC_BYTES_MAX`] bytes, a publisher 1 to
//! [`PUBLISHER_BYTES_MAX`], a payload at most [`PAYLOAD_BYTES_MAX`], an
//! append holds 1 to [`APPEND_MESSAGES_MAX`] messages; retention bounds are
//! at least 1. The whole frame is bounded by [`crate::Limits`].
//!
//! The encoding is canonical, decoding validates the whole body once, and
//! iterating the validated [`BusCommands`] neither fails nor allocates.

use crate::commands::{le_u16, le_u32, le_u64, CommandIter, CommandSet, Commands};
use crate::frame::{begin_frame, seal_frame, EncodeError, Kind, Limits};

/// Longest topic name accepted, in bytes.
pub const TOPIC_BYTES_MAX: usize = 256;
/// Longest publisher id accepted, in bytes.
pub const PUBLISHER_BYTES_MAX: usize = 256;
/// Longest payload accepted, in bytes.
pub const PAYLOAD_BYTES_MAX: usize = 1 << 20;
/// Most messages in one append.
pub const APPEND_MESSAGES_MAX: u32 = 65_536;

const TAG_CONFIGURE: u8 = 1;
const TAG_APPEND: u8 = 2;
const CONFIGURE_HEADER_BYTES: usize = 20;
const APPEND_HEADER_BYTES: usize = 18;
const PAYLOAD_LEN_BYTES: usize = 4;

/// Why one bus command was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusDecodeError {
    /// The command runs past the end of the body.
    #[error("truncated command")]
    Truncated,
    /// A command tag with no command.
    #[error("unknown command tag {0}")]
    UnknownTag(u8),
    /// Flag bits set; none are defined.
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    /// An empty topic or one longer than [`TOPIC_BYTES_MAX`].
    #[error("topic of {0} bytes is outside 1..={TOPIC_BYTES_MAX}")]
    TopicLength(usize),
    /// An empty publisher or one longer than [`PUBLISHER_BYTES_MAX`].
    #[error("publisher of {0} bytes is outside 1..={PUBLISHER_BYTES_MAX}")]
    PublisherLength(usize),
    /// A payload longer than [`PAYLOAD_BYTES_MAX`].
    #[error("payload of {0} bytes exceeds {PAYLOAD_BYTES_MAX}")]
    PayloadTooLong(usize),
    /// An append of no messages or more than [`APPEND_MESSAGES_MAX`].
    #[error("append of {0} messages is outside 1..={APPEND_MESSAGES_MAX}")]
    MessageCount(u32),
    /// A retention bound of zero.
    #[error("retention bound {0} must be at least 1")]
    Retention(&'static str),
    /// Bytes left over after the frame's `count` commands (reported with
    /// the index one past the last command).
    #[error("{0} bytes left over after the declared commands")]
    TrailingBytes(usize),
}

/// Make a topic durable, or change its retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigureTopicView<'a> {
    /// The topic's name (UTF-8 is the API's concern; here it is bytes).
    pub topic: &'a [u8],
    /// Newest messages kept.
    pub messages_max: u64,
    /// Payload bytes kept.
    pub bytes_max: u64,
}

/// Messages of one publisher for one durable topic, viewed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendView<'a> {
    /// The topic's name.
    pub topic: &'a [u8],
    /// Who published them.
    pub publisher: &'a [u8],
    /// The publisher's sequence number of the first message.
    pub first_sequence: u64,
    count: u32,
    /// `count × (len u32 | payload)`, validated.
    payloads: &'a [u8],
}

impl<'a> AppendView<'a> {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether it holds no message (never true for a decoded view).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The payloads, in order.
    pub fn payloads(&self) -> PayloadIter<'a> {
        PayloadIter { rest: self.payloads, remaining: self.count }
    }

    /// Payload bytes together (without the length prefixes).
    pub fn payload_bytes(&self) -> usize {
        self.payloads.len() - self.count as usize * PAYLOAD_LEN_BYTES
    }
}

/// Iterates the payloads of a validated append.
#[derive(Clone, Debug)]
pub struct PayloadIter<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        // Validated by `payloads`; a failure here would be a bug, and
        // ending the iteration is the safe answer to it.
        let (payload, rest) = payload(self.rest).ok()?;
        self.rest = rest;
        self.remaining -= 1;
        Some(payload)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for PayloadIter<'_> {}

/// One bus command, borrowed from a validated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusCommand<'a> {
    /// See [`ConfigureTopicView`].
    Configure(ConfigureTopicView<'a>),
    /// See [`AppendView`].
    Append(AppendView<'a>),
}

/// How a `Bus` frame's commands are read.
#[derive(Clone, Copy, Debug)]
pub struct BusSet;

impl CommandSet for BusSet {
    type Command<'a> = BusCommand<'a>;
    type Error = BusDecodeError;

    fn parse(bytes: &[u8]) -> Parsed<'_, BusCommand<'_>> {
        command(bytes)
    }

    fn trailing(len: usize) -> BusDecodeError {
        BusDecodeError::TrailingBytes(len)
    }
}

/// The validated commands of a `Bus` frame.
pub type BusCommands<'a> = Commands<'a, BusSet>;

/// Iterates the commands of a validated `Bus` body.
pub type BusIter<'a> = CommandIter<'a, BusSet>;

type Parsed<'a, T> = Result<(T, &'a [u8]), BusDecodeError>;

fn take(bytes: &[u8], len: usize) -> Parsed<'_, &[u8]> {
    if len > bytes.len() {
        return Err(BusDecodeError::Truncated);
    }
    Ok(bytes.split_at(len))
}

/// Parses one command; `take` bounds every slice before it is indexed.
fn command(bytes: &[u8]) -> Parsed<'_, BusCommand<'_>> {
    let tag = *bytes.first().ok_or(BusDecodeError::Truncated)?;
    let flags = *bytes.get(1).ok_or(BusDecodeError::Truncated)?;
    if !(TAG_CONFIGURE..=TAG_APPEND).contains(&tag) {
        return Err(BusDecodeError::UnknownTag(tag));
    }
    if flags != 0 {
        return Err(BusDecodeError::ReservedFlags(flags));
    }
    if tag == TAG_CONFIGURE {
        let (header, rest) = take(bytes, CONFIGURE_HEADER_BYTES)?;
        let (topic, rest) = take(rest, le_u16(header, 2) as usize)?;
        let view = ConfigureTopicView { topic, messages_max: le_u64(header, 4), bytes_max: le_u64(header, 12) };
        check_configure(&view)?;
        return Ok((BusCommand::Configure(view), rest));
    }
    let (header, rest) = take(bytes, APPEND_HEADER_BYTES)?;
    let count = le_u32(header, 6);
    let (topic, rest) = take(rest, le_u16(header, 2) as usize)?;
    let (publisher, rest) = take(rest, le_u16(header, 4) as usize)?;
    check_names(topic, publisher)?;
    if count == 0 || count > APPEND_MESSAGES_MAX {
        return Err(BusDecodeError::MessageCount(count));
    }
    let mut after = rest;
    for _ in 0..count {
        let (_, next) = payload(after)?;
        after = next;
    }
    let payloads = &rest[..rest.len() - after.len()];
    let view = AppendView { topic, publisher, first_sequence: le_u64(header, 10), count, payloads };
    Ok((BusCommand::Append(view), after))
}

/// One `len u32 | payload`, bounded by [`PAYLOAD_BYTES_MAX`].
fn payload(bytes: &[u8]) -> Parsed<'_, &[u8]> {
    let (len, rest) = take(bytes, PAYLOAD_LEN_BYTES)?;
    let len = le_u32(len, 0) as usize;
    if len > PAYLOAD_BYTES_MAX {
        return Err(BusDecodeError::PayloadTooLong(len));
    }
    take(rest, len)
}

fn check_topic(topic: &[u8]) -> Result<(), BusDecodeError> {
    if topic.is_empty() || topic.len() > TOPIC_BYTES_MAX {
        return Err(BusDecodeError::TopicLength(topic.len()));
    }
    Ok(())
}

fn check_names(topic: &[u8], publisher: &[u8]) -> Result<(), BusDecodeError> {
    check_topic(topic)?;
    if publisher.is_empty() || publisher.len() > PUBLISHER_BYTES_MAX {
        return Err(BusDecodeError::PublisherLength(publisher.len()));
    }
    Ok(())
}

fn check_configure(view: &ConfigureTopicView<'_>) -> Result<(), BusDecodeError> {
    check_topic(view.topic)?;
    if view.messages_max == 0 {
        return Err(BusDecodeError::Retention("messages_max"));
    }
    if view.bytes_max == 0 {
        return Err(BusDecodeError::Retention("bytes_max"));
    }
    Ok(())
}

/// Builds a `Bus` frame in the caller's buffer, validating as it goes.
///
/// Like [`crate::TaskBatchWriter`]: a refused command leaves the writer as
/// it was, [`finish`](BusBatchWriter::finish) seals the frame, and a writer
/// dropped unfinished removes its partial frame from `out`.
pub struct BusBatchWriter<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    count: u32,
    limits: Limits,
    finished: bool,
}

impl<'o> BusBatchWriter<'o> {
    /// Starts a frame at the end of `out`, bounded by [`Limits::default`].
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        BusBatchWriter::with_limits(out, Limits::default())
    }

    /// Starts a frame at the end of `out`, bounded by `limits`.
    pub fn with_limits(out: &'o mut Vec<u8>, limits: Limits) -> Self {
        let start = begin_frame(out, 0);
        BusBatchWriter { out, start, count: 0, limits, finished: false }
    }

    /// Number of commands written so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no command has been written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a ConfigureTopic.
    pub fn configure(&mut self, view: &ConfigureTopicView<'_>) -> Result<(), EncodeError> {
        self.admit(check_configure(view), CONFIGURE_HEADER_BYTES + view.topic.len())?;
        let out = &mut *self.out;
        out.extend_from_slice(&[TAG_CONFIGURE, 0]);
        // `check_configure` bounded the topic to fit its field.
        out.extend_from_slice(&(view.topic.len() as u16).to_le_bytes());
        out.extend_from_slice(&view.messages_max.to_le_bytes());
        out.extend_from_slice(&view.bytes_max.to_le_bytes());
        out.extend_from_slice(view.topic);
        Ok(())
    }

    /// Appends an Append of `payloads` by `publisher` to `topic`.
    pub fn append<P: AsRef<[u8]>>(
        &mut self,
        topic: &[u8],
        publisher: &[u8],
        first_sequence: u64,
        payloads: &[P],
    ) -> Result<(), EncodeError> {
        let check = check_names(topic, publisher).and_then(|()| check_payloads(payloads));
        let payload_bytes: usize = payloads.iter().map(|payload| PAYLOAD_LEN_BYTES + payload.as_ref().len()).sum();
        self.admit(check, APPEND_HEADER_BYTES + topic.len() + publisher.len() + payload_bytes)?;
        let out = &mut *self.out;
        out.extend_from_slice(&[TAG_APPEND, 0]);
        out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        out.extend_from_slice(&(publisher.len() as u16).to_le_bytes());
        out.extend_from_slice(&(payloads.len() as u32).to_le_bytes());
        out.extend_from_slice(&first_sequence.to_le_bytes());
        out.extend_from_slice(topic);
        out.extend_from_slice(publisher);
        for payload in payloads {
            let payload = payload.as_ref();
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(payload);
        }
        Ok(())
    }

    /// Appends any bus command.
    pub fn push(&mut self, command: &BusCommand<'_>) -> Result<(), EncodeError> {
        match command {
            BusCommand::Configure(view) => self.configure(view),
            BusCommand::Append(view) => {
                let payloads: Vec<&[u8]> = view.payloads().collect();
                self.append(view.topic, view.publisher, view.first_sequence, &payloads)
            }
        }
    }

    /// Completes the frame header; returns the frame length in bytes.
    pub fn finish(mut self) -> usize {
        self.finished = true;
        seal_frame(self.out, self.start, Kind::Bus, self.count)
    }

    /// Admits one command of `command_bytes` that checked as `check`.
    fn admit(&mut self, check: Result<(), BusDecodeError>, command_bytes: usize) -> Result<(), EncodeError> {
        check.map_err(|reason| EncodeError::Bus { index: self.count, reason })?;
        if self.count >= self.limits.count_max {
            let count = u64::from(self.count) + 1;
            return Err(EncodeError::CountTooLarge { count, max: self.limits.count_max });
        }
        let frame_bytes = (self.out.len() - self.start) as u64 + command_bytes as u64;
        if frame_bytes > u64::from(self.limits.frame_bytes_max) {
            return Err(EncodeError::Oversize { bytes: frame_bytes, max: self.limits.frame_bytes_max });
        }
        self.out.reserve(command_bytes);
        self.count += 1;
        Ok(())
    }
}

fn check_payloads<P: AsRef<[u8]>>(payloads: &[P]) -> Result<(), BusDecodeError> {
    if payloads.is_empty() || payloads.len() > APPEND_MESSAGES_MAX as usize {
        return Err(BusDecodeError::MessageCount(u32::try_from(payloads.len()).unwrap_or(u32::MAX)));
    }
    match payloads.iter().find(|payload| payload.as_ref().len() > PAYLOAD_BYTES_MAX) {
        Some(payload) => Err(BusDecodeError::PayloadTooLong(payload.as_ref().len())),
        None => Ok(()),
    }
}

impl Drop for BusBatchWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

#[cfg(test)]
mod tests;
