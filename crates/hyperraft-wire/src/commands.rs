//! The validated command list of a command frame (tasks, decisions, bus).
//!
//! Each of those kinds has its own command parser; the list around it is
//! the same: validate the whole body once when the frame is decoded, then
//! iterate it with the same parser, which can no longer fail.

use std::fmt;
use std::marker::PhantomData;

/// How one frame kind reads its commands.
pub trait CommandSet {
    /// One command, borrowing the body.
    type Command<'a>;
    /// Why a body is not a valid list of commands.
    type Error;

    /// Parses the first command of `bytes`; returns it and the rest.
    fn parse(bytes: &[u8]) -> Result<(Self::Command<'_>, &[u8]), Self::Error>;

    /// The error for `len` bytes left over after the last command.
    fn trailing(len: usize) -> Self::Error;
}

/// The validated commands of a frame of kind `S`.
pub struct Commands<'a, S> {
    body: &'a [u8],
    count: u32,
    set: PhantomData<S>,
}

impl<S> Clone for Commands<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Commands<'_, S> {}

impl<S> fmt::Debug for Commands<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Commands").field("bytes", &self.body.len()).field("count", &self.count).finish()
    }
}

impl<'a, S: CommandSet> Commands<'a, S> {
    /// Validates `body` as exactly `count` commands; on error returns the
    /// index of the bad command and why.
    pub(crate) fn validate(body: &'a [u8], count: u32) -> Result<Commands<'a, S>, (u32, S::Error)> {
        let mut rest = body;
        for index in 0..count {
            let (_, after) = S::parse(rest).map_err(|reason| (index, reason))?;
            rest = after;
        }
        if !rest.is_empty() {
            return Err((count, S::trailing(rest.len())));
        }
        Ok(Commands { body, count, set: PhantomData })
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the body holds no commands.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The commands, in order.
    pub fn iter(&self) -> CommandIter<'a, S> {
        CommandIter { rest: self.body, remaining: self.count, set: PhantomData }
    }
}

/// Iterates the commands of a validated body.
pub struct CommandIter<'a, S> {
    rest: &'a [u8],
    remaining: u32,
    set: PhantomData<S>,
}

impl<S> Clone for CommandIter<'_, S> {
    fn clone(&self) -> Self {
        CommandIter { rest: self.rest, remaining: self.remaining, set: PhantomData }
    }
}

impl<S> fmt::Debug for CommandIter<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandIter").field("bytes", &self.rest.len()).field("remaining", &self.remaining).finish()
    }
}

impl<'a, S: CommandSet> Iterator for CommandIter<'a, S> {
    type Item = S::Command<'a>;

    fn next(&mut self) -> Option<S::Command<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // The body was validated by the same parser; a failure here would
        // be a bug, and ending the iteration is the safe answer to it.
        let (command, rest) = S::parse(self.rest).ok()?;
        self.rest = rest;
        self.remaining -= 1;
        Some(command)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl<S: CommandSet> ExactSizeIterator for CommandIter<'_, S> {}

/// Little-endian integers at `at`; the caller checked the bytes are there.
pub(crate) fn le_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
