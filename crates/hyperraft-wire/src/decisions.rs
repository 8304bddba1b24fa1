//! The compact decision command layout, its borrowed views and its writer.
//!
//! A `Decisions` frame's body is `count` commands back to back, with no
//! padding; every command starts with a fixed header whose lengths say
//! exactly where it ends. All integers are little-endian. Every command
//! begins with a one-byte tag and a one-byte flags field; flag bits not
//! defined below are reserved and must be zero.
//!
//! ```text
//! Propose       tag=1 u8 | flags u8 (bit 0 signed votes, bit 1 strict)
//!               | criticality u8 | threshold numerator u8
//!               | threshold denominator u8 | reserved u8 (0)
//!               | key_len u16 | action_len u16 | description_len u16
//!               | electorate_len u16 | payload_len u32 | deadline_ns u64
//!               | idempotency_key | action | description | payload
//!               | electorate (electorate_len × voter id u64)   (26-byte header)
//! Vote          tag=2 u8 | flags u8 (bit 0 signed) | choice u8
//!               | proposal_id u64 | voter_id u64 | signature [64] if signed
//!                                                   (19 bytes, 83 if signed)
//! RegisterKey   tag=3 u8 | flags u8 (none) | voter_id u64
//!               | public key [32]                                (42 bytes)
//! Expire        tag=4 u8 | flags u8 (none)                       (2 bytes)
//! ```
//!
//! A proposal's threshold is the fraction `numerator / denominator` of the
//! electorate whose approvals decide it: at least that share, or more than
//! it when the strict flag is set (a simple majority is `1/2` strict). The
//! electorate is listed in strictly increasing order of non-zero voter ids,
//! so it is canonical and holds no duplicates.
//!
//! Bounds: an idempotency key is at most [`IDEMPOTENCY_KEY_BYTES_MAX`] bytes
//! (empty means "no deduplication"), an action at most [`ACTION_BYTES_MAX`]
//! (and not empty), a description at most [`DESCRIPTION_BYTES_MAX`], a
//! payload at most [`PAYLOAD_BYTES_MAX`], an electorate `1..=`
//! [`ELECTORATE_MAX`] voters. The whole frame is bounded by
//! [`crate::Limits`].
//!
//! The encoding is canonical, decoding validates the whole body once, and
//! iterating the validated [`DecisionCommands`] neither fails nor allocates.

use crate::commands::{CommandIter, CommandSet, Commands};
use crate::frame::{begin_frame, seal_frame, EncodeError, Kind, Limits};

/// Longest idempotency key accepted, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 256;
/// Longest action name accepted, in bytes.
pub const ACTION_BYTES_MAX: usize = 128;
/// Longest description accepted, in bytes.
pub const DESCRIPTION_BYTES_MAX: usize = 4096;
/// Longest payload accepted, in bytes.
pub const PAYLOAD_BYTES_MAX: usize = 64 << 10;
/// Most voters in one electorate.
pub const ELECTORATE_MAX: usize = 1024;
/// Size of an ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;
/// Size of an ed25519 public key.
pub const PUBLIC_KEY_BYTES: usize = 32;
/// What a voter signs before its vote: this domain tag, then the proposal
/// id (u64 LE), the choice (u8) and the voter id (u64 LE). See
/// [`vote_message`].
pub const VOTE_DOMAIN: &[u8; 17] = b"hyperraft-vote-v1";
/// Length of [`vote_message`]'s output.
pub const VOTE_MESSAGE_BYTES: usize = VOTE_DOMAIN.len() + 8 + 1 + 8;

const TAG_PROPOSE: u8 = 1;
const TAG_VOTE: u8 = 2;
const TAG_REGISTER_KEY: u8 = 3;
const TAG_EXPIRE: u8 = 4;
const FLAG_SIGNED: u8 = 1 << 0;
const FLAG_STRICT: u8 = 1 << 1;
const PROPOSE_HEADER_BYTES: usize = 26;
const VOTE_BYTES: usize = 19;
const REGISTER_KEY_BYTES: usize = 42;
const EXPIRE_BYTES: usize = 2;

/// How much is at stake in a proposal; it selects the voting policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Criticality {
    /// Cheap to get wrong.
    Low = 0,
    /// Worth a clear majority.
    Medium = 1,
    /// Needs a super-majority of signed votes.
    High = 2,
    /// Irreversible or costly: a super-majority of signed votes.
    Critical = 3,
}

impl Criticality {
    /// Every level, lowest first.
    pub const ALL: [Criticality; 4] = [Criticality::Low, Criticality::Medium, Criticality::High, Criticality::Critical];

    /// The level of a wire byte, if it names one.
    pub fn from_u8(value: u8) -> Option<Criticality> {
        Criticality::ALL.get(usize::from(value)).copied()
    }
}

/// A voter's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Choice {
    /// For the proposal.
    Approve = 1,
    /// Against the proposal.
    Reject = 2,
    /// Counted as cast, neither for nor against.
    Abstain = 3,
}

impl Choice {
    /// The choice of a wire byte, if it names one.
    pub fn from_u8(value: u8) -> Option<Choice> {
        match value {
            1 => Some(Choice::Approve),
            2 => Some(Choice::Reject),
            3 => Some(Choice::Abstain),
            _ => None,
        }
    }
}

/// The share of the electorate whose approvals decide a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Threshold {
    /// Numerator of the share, `1..=denominator`.
    pub numerator: u8,
    /// Denominator of the share, at least 1.
    pub denominator: u8,
    /// More than the share (strict) rather than at least it; a strict
    /// share must be below 1.
    pub strict: bool,
}

impl Threshold {
    /// More than half.
    pub const MAJORITY: Threshold = Threshold { numerator: 1, denominator: 2, strict: true };
    /// At least two thirds.
    pub const TWO_THIRDS: Threshold = Threshold { numerator: 2, denominator: 3, strict: false };

    /// Approvals needed out of `voters`: the smallest count above (strict)
    /// or at least (not strict) `numerator / denominator × voters`, never
    /// below 1 or above `voters` for a valid threshold and `voters ≥ 1`.
    pub fn required(&self, voters: usize) -> usize {
        let product = usize::from(self.numerator) * voters;
        let denominator = usize::from(self.denominator.max(1));
        let required = if self.strict { product / denominator + 1 } else { product.div_ceil(denominator) };
        required.clamp(1, voters.max(1))
    }
}

/// Why one decision command was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecisionDecodeError {
    /// The command runs past the end of the body.
    #[error("truncated command")]
    Truncated,
    /// A command tag with no command.
    #[error("unknown command tag {0}")]
    UnknownTag(u8),
    /// Flag bits the command does not define; they carry the bits set.
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    /// A reserved byte that is not zero.
    #[error("reserved byte is {0}, not 0")]
    ReservedByte(u8),
    /// An idempotency key longer than [`IDEMPOTENCY_KEY_BYTES_MAX`].
    #[error("idempotency key of {0} bytes exceeds {IDEMPOTENCY_KEY_BYTES_MAX}")]
    KeyTooLong(usize),
    /// An empty action, or one longer than [`ACTION_BYTES_MAX`].
    #[error("action of {0} bytes is outside 1..={ACTION_BYTES_MAX}")]
    ActionLength(usize),
    /// A description longer than [`DESCRIPTION_BYTES_MAX`].
    #[error("description of {0} bytes exceeds {DESCRIPTION_BYTES_MAX}")]
    DescriptionTooLong(usize),
    /// A payload longer than [`PAYLOAD_BYTES_MAX`].
    #[error("payload of {0} bytes exceeds {PAYLOAD_BYTES_MAX}")]
    PayloadTooLong(usize),
    /// An electorate of no voters or more than [`ELECTORATE_MAX`].
    #[error("electorate of {0} voters is outside 1..={ELECTORATE_MAX}")]
    ElectorateSize(usize),
    /// The electorate is not strictly increasing non-zero voter ids.
    #[error("electorate entry {0} is zero, repeated or out of order")]
    ElectorateOrder(usize),
    /// A criticality byte that names no level.
    #[error("unknown criticality {0}")]
    UnknownCriticality(u8),
    /// A threshold that is not a share in `(0, 1]`, or a strict share of 1.
    #[error("threshold {numerator}/{denominator} (strict: {strict}) is not a share in (0, 1]")]
    BadThreshold {
        /// The numerator given.
        numerator: u8,
        /// The denominator given.
        denominator: u8,
        /// Whether it was strict.
        strict: bool,
    },
    /// A choice byte that names no choice.
    #[error("unknown vote choice {0}")]
    UnknownChoice(u8),
    /// A zero proposal or voter id.
    #[error("{0} must not be zero")]
    ZeroId(&'static str),
    /// Bytes left over after the frame's `count` commands (reported with
    /// the index one past the last command).
    #[error("{0} bytes left over after the declared commands")]
    TrailingBytes(usize),
}

/// Propose an action for the electorate to vote on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposeView<'a> {
    /// Deduplicates proposals; empty means no deduplication.
    pub idempotency_key: &'a [u8],
    /// What is proposed, e.g. `order_execute`.
    pub action: &'a [u8],
    /// For people.
    pub description: &'a [u8],
    /// Opaque data the voters judge.
    pub payload: &'a [u8],
    /// How much is at stake.
    pub criticality: Criticality,
    /// The share of approvals that decides it.
    pub threshold: Threshold,
    /// Whether every vote must carry a valid signature.
    pub signed: bool,
    /// Batch timestamp at which an undecided proposal expires; 0 for none.
    pub deadline_ns: u64,
    /// The voters, fixed here: strictly increasing non-zero ids.
    pub electorate: Electorate<'a>,
}

/// A validated electorate, borrowed from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Electorate<'a> {
    bytes: &'a [u8],
}

impl<'a> Electorate<'a> {
    /// Number of voters.
    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }

    /// Whether there are no voters (never true for a decoded proposal).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The voter ids, in increasing order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = u64> + 'a {
        self.bytes.chunks_exact(8).map(|id| u64::from_le_bytes(id.try_into().expect("8 bytes")))
    }

    /// The raw little-endian ids.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// One voter's vote on a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteView<'a> {
    /// The proposal.
    pub proposal_id: u64,
    /// The voter.
    pub voter_id: u64,
    /// What the voter chose.
    pub choice: Choice,
    /// An ed25519 signature over [`vote_message`], if given.
    pub signature: Option<&'a [u8; SIGNATURE_BYTES]>,
}

/// Register (or replace) a voter's ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterKeyView<'a> {
    /// The voter.
    pub voter_id: u64,
    /// The key its signatures are checked against.
    pub public_key: &'a [u8; PUBLIC_KEY_BYTES],
}

/// One decision command, borrowed from a validated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionCommand<'a> {
    /// See [`ProposeView`].
    Propose(ProposeView<'a>),
    /// See [`VoteView`].
    Vote(VoteView<'a>),
    /// See [`RegisterKeyView`].
    RegisterKey(RegisterKeyView<'a>),
    /// Expire every open proposal whose deadline has passed at the batch
    /// timestamp.
    Expire,
}

/// The bytes a voter signs for `choice` on `proposal_id`.
pub fn vote_message(proposal_id: u64, choice: Choice, voter_id: u64) -> [u8; VOTE_MESSAGE_BYTES] {
    let mut message = [0; VOTE_MESSAGE_BYTES];
    let (domain, rest) = message.split_at_mut(VOTE_DOMAIN.len());
    domain.copy_from_slice(VOTE_DOMAIN);
    rest[..8].copy_from_slice(&proposal_id.to_le_bytes());
    rest[8] = choice as u8;
    rest[9..].copy_from_slice(&voter_id.to_le_bytes());
    message
}

/// How a `Decisions` frame's commands are read.
#[derive(Clone, Copy, Debug)]
pub struct DecisionSet;

impl CommandSet for DecisionSet {
    type Command<'a> = DecisionCommand<'a>;
    type Error = DecisionDecodeError;

    fn parse(bytes: &[u8]) -> Parsed<'_, DecisionCommand<'_>> {
        command(bytes)
    }

    fn trailing(len: usize) -> DecisionDecodeError {
        DecisionDecodeError::TrailingBytes(len)
    }
}

/// The validated commands of a `Decisions` frame.
pub type DecisionCommands<'a> = Commands<'a, DecisionSet>;

/// Iterates the commands of a validated `Decisions` body.
pub type DecisionIter<'a> = CommandIter<'a, DecisionSet>;

type Parsed<'a, T> = Result<(T, &'a [u8]), DecisionDecodeError>;

fn take(bytes: &[u8], len: usize) -> Parsed<'_, &[u8]> {
    if len > bytes.len() {
        return Err(DecisionDecodeError::Truncated);
    }
    Ok(bytes.split_at(len))
}

fn le_u16(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn le_u32(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Parses one command; `take` bounds every slice before it is indexed, so
/// the fixed-offset reads below stay inside the header they read.
fn command(bytes: &[u8]) -> Parsed<'_, DecisionCommand<'_>> {
    let tag = *bytes.first().ok_or(DecisionDecodeError::Truncated)?;
    let flags = *bytes.get(1).ok_or(DecisionDecodeError::Truncated)?;
    let defined = match tag {
        TAG_PROPOSE => FLAG_SIGNED | FLAG_STRICT,
        TAG_VOTE => FLAG_SIGNED,
        TAG_REGISTER_KEY | TAG_EXPIRE => 0,
        _ => return Err(DecisionDecodeError::UnknownTag(tag)),
    };
    if flags & !defined != 0 {
        return Err(DecisionDecodeError::ReservedFlags(flags & !defined));
    }
    match tag {
        TAG_PROPOSE => propose(bytes, flags).map(|(view, rest)| (DecisionCommand::Propose(view), rest)),
        TAG_VOTE => vote(bytes, flags).map(|(view, rest)| (DecisionCommand::Vote(view), rest)),
        TAG_REGISTER_KEY => {
            let (header, rest) = take(bytes, REGISTER_KEY_BYTES)?;
            let public_key = header[10..].try_into().expect("32 bytes");
            let view = RegisterKeyView { voter_id: le_u64(header, 2), public_key };
            check_register_key(&view)?;
            Ok((DecisionCommand::RegisterKey(view), rest))
        }
        _ => take(bytes, EXPIRE_BYTES).map(|(_, rest)| (DecisionCommand::Expire, rest)),
    }
}

fn propose(bytes: &[u8], flags: u8) -> Parsed<'_, ProposeView<'_>> {
    let (header, rest) = take(bytes, PROPOSE_HEADER_BYTES)?;
    if header[5] != 0 {
        return Err(DecisionDecodeError::ReservedByte(header[5]));
    }
    let criticality = Criticality::from_u8(header[2]).ok_or(DecisionDecodeError::UnknownCriticality(header[2]))?;
    let threshold = Threshold { numerator: header[3], denominator: header[4], strict: flags & FLAG_STRICT != 0 };
    let (key_len, action_len, description_len) = (le_u16(header, 6), le_u16(header, 8), le_u16(header, 10));
    let (voters, payload_len) = (le_u16(header, 12), le_u32(header, 14));
    let (idempotency_key, rest) = take(rest, key_len)?;
    let (action, rest) = take(rest, action_len)?;
    let (description, rest) = take(rest, description_len)?;
    let (payload, rest) = take(rest, payload_len)?;
    let (electorate, rest) = take(rest, voters * 8)?;
    let view = ProposeView {
        idempotency_key,
        action,
        description,
        payload,
        criticality,
        threshold,
        signed: flags & FLAG_SIGNED != 0,
        deadline_ns: le_u64(header, 18),
        electorate: Electorate { bytes: electorate },
    };
    check_propose(&view)?;
    Ok((view, rest))
}

fn vote(bytes: &[u8], flags: u8) -> Parsed<'_, VoteView<'_>> {
    let (header, rest) = take(bytes, VOTE_BYTES)?;
    let choice = Choice::from_u8(header[2]).ok_or(DecisionDecodeError::UnknownChoice(header[2]))?;
    let (signature, rest) = if flags & FLAG_SIGNED != 0 {
        let (signature, rest) = take(rest, SIGNATURE_BYTES)?;
        (Some(signature.try_into().expect("64 bytes")), rest)
    } else {
        (None, rest)
    };
    let view = VoteView { proposal_id: le_u64(header, 3), voter_id: le_u64(header, 11), choice, signature };
    check_vote(&view)?;
    Ok((view, rest))
}

/// Checks every bound of a proposal.
fn check_propose(view: &ProposeView<'_>) -> Result<(), DecisionDecodeError> {
    if view.idempotency_key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
        return Err(DecisionDecodeError::KeyTooLong(view.idempotency_key.len()));
    }
    if view.action.is_empty() || view.action.len() > ACTION_BYTES_MAX {
        return Err(DecisionDecodeError::ActionLength(view.action.len()));
    }
    if view.description.len() > DESCRIPTION_BYTES_MAX {
        return Err(DecisionDecodeError::DescriptionTooLong(view.description.len()));
    }
    if view.payload.len() > PAYLOAD_BYTES_MAX {
        return Err(DecisionDecodeError::PayloadTooLong(view.payload.len()));
    }
    let Threshold { numerator, denominator, strict } = view.threshold;
    if numerator == 0 || denominator == 0 || numerator > denominator || (strict && numerator == denominator) {
        return Err(DecisionDecodeError::BadThreshold { numerator, denominator, strict });
    }
    let voters = view.electorate.len();
    if voters == 0 || voters > ELECTORATE_MAX || view.electorate.bytes.len() % 8 != 0 {
        return Err(DecisionDecodeError::ElectorateSize(voters));
    }
    let mut previous = 0;
    for (position, voter) in view.electorate.iter().enumerate() {
        if voter <= previous {
            return Err(DecisionDecodeError::ElectorateOrder(position));
        }
        previous = voter;
    }
    Ok(())
}

fn check_vote(view: &VoteView<'_>) -> Result<(), DecisionDecodeError> {
    if view.proposal_id == 0 {
        return Err(DecisionDecodeError::ZeroId("proposal id"));
    }
    if view.voter_id == 0 {
        return Err(DecisionDecodeError::ZeroId("voter id"));
    }
    Ok(())
}

fn check_register_key(view: &RegisterKeyView<'_>) -> Result<(), DecisionDecodeError> {
    if view.voter_id == 0 {
        return Err(DecisionDecodeError::ZeroId("voter id"));
    }
    Ok(())
}

/// The fields of a proposal to encode; the electorate as plain ids, which
/// [`DecisionBatchWriter::propose`] requires strictly increasing.
#[derive(Clone, Copy, Debug)]
pub struct Proposal<'a> {
    /// See [`ProposeView::idempotency_key`].
    pub idempotency_key: &'a [u8],
    /// See [`ProposeView::action`].
    pub action: &'a [u8],
    /// See [`ProposeView::description`].
    pub description: &'a [u8],
    /// See [`ProposeView::payload`].
    pub payload: &'a [u8],
    /// See [`ProposeView::criticality`].
    pub criticality: Criticality,
    /// See [`ProposeView::threshold`].
    pub threshold: Threshold,
    /// See [`ProposeView::signed`].
    pub signed: bool,
    /// See [`ProposeView::deadline_ns`].
    pub deadline_ns: u64,
    /// The voters, strictly increasing non-zero ids.
    pub electorate: &'a [u64],
}

/// Builds a `Decisions` frame in the caller's buffer, validating as it goes.
///
/// Like [`crate::TaskBatchWriter`]: a refused command leaves the writer as
/// it was, [`finish`](DecisionBatchWriter::finish) seals the frame, and a
/// writer dropped unfinished removes its partial frame from `out`.
pub struct DecisionBatchWriter<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    count: u32,
    limits: Limits,
    finished: bool,
}

impl<'o> DecisionBatchWriter<'o> {
    /// Starts a frame at the end of `out`, bounded by [`Limits::default`].
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        DecisionBatchWriter::with_limits(out, Limits::default())
    }

    /// Starts a frame at the end of `out`, bounded by `limits`.
    pub fn with_limits(out: &'o mut Vec<u8>, limits: Limits) -> Self {
        let start = begin_frame(out, 0);
        DecisionBatchWriter { out, start, count: 0, limits, finished: false }
    }

    /// Number of commands written so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no command has been written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends any decoded command as it was.
    pub fn push(&mut self, command: &DecisionCommand<'_>) -> Result<(), EncodeError> {
        match command {
            DecisionCommand::Propose(view) => self.propose_view(view),
            DecisionCommand::Vote(view) => self.vote(view),
            DecisionCommand::RegisterKey(view) => self.register_key(view),
            DecisionCommand::Expire => self.expire(),
        }
    }

    /// Appends a Propose.
    pub fn propose(&mut self, proposal: &Proposal<'_>) -> Result<(), EncodeError> {
        let mut electorate = Vec::with_capacity(proposal.electorate.len() * 8);
        for voter in proposal.electorate {
            electorate.extend_from_slice(&voter.to_le_bytes());
        }
        let view = ProposeView {
            idempotency_key: proposal.idempotency_key,
            action: proposal.action,
            description: proposal.description,
            payload: proposal.payload,
            criticality: proposal.criticality,
            threshold: proposal.threshold,
            signed: proposal.signed,
            deadline_ns: proposal.deadline_ns,
            electorate: Electorate { bytes: &electorate },
        };
        self.propose_view(&view)
    }

    fn propose_view(&mut self, view: &ProposeView<'_>) -> Result<(), EncodeError> {
        let variable = view.idempotency_key.len() + view.action.len() + view.description.len() + view.payload.len();
        self.admit(check_propose(view), PROPOSE_HEADER_BYTES + variable + view.electorate.bytes.len())?;
        let mut flags = 0;
        if view.signed {
            flags |= FLAG_SIGNED;
        }
        if view.threshold.strict {
            flags |= FLAG_STRICT;
        }
        let out = &mut *self.out;
        out.extend_from_slice(&[TAG_PROPOSE, flags, view.criticality as u8]);
        out.extend_from_slice(&[view.threshold.numerator, view.threshold.denominator, 0]);
        // `check_propose` bounded every length to fit its field.
        for len in [view.idempotency_key.len(), view.action.len(), view.description.len(), view.electorate.len()] {
            out.extend_from_slice(&(len as u16).to_le_bytes());
        }
        out.extend_from_slice(&(view.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&view.deadline_ns.to_le_bytes());
        for part in [view.idempotency_key, view.action, view.description, view.payload, view.electorate.bytes] {
            out.extend_from_slice(part);
        }
        Ok(())
    }

    /// Appends a Vote.
    pub fn vote(&mut self, view: &VoteView<'_>) -> Result<(), EncodeError> {
        let signature_bytes = view.signature.map_or(0, |signature| signature.len());
        self.admit(check_vote(view), VOTE_BYTES + signature_bytes)?;
        let flags = if view.signature.is_some() { FLAG_SIGNED } else { 0 };
        self.out.extend_from_slice(&[TAG_VOTE, flags, view.choice as u8]);
        self.out.extend_from_slice(&view.proposal_id.to_le_bytes());
        self.out.extend_from_slice(&view.voter_id.to_le_bytes());
        if let Some(signature) = view.signature {
            self.out.extend_from_slice(signature);
        }
        Ok(())
    }

    /// Appends a RegisterKey.
    pub fn register_key(&mut self, view: &RegisterKeyView<'_>) -> Result<(), EncodeError> {
        self.admit(check_register_key(view), REGISTER_KEY_BYTES)?;
        self.out.extend_from_slice(&[TAG_REGISTER_KEY, 0]);
        self.out.extend_from_slice(&view.voter_id.to_le_bytes());
        self.out.extend_from_slice(view.public_key);
        Ok(())
    }

    /// Appends an Expire.
    pub fn expire(&mut self) -> Result<(), EncodeError> {
        self.admit(Ok(()), EXPIRE_BYTES)?;
        self.out.extend_from_slice(&[TAG_EXPIRE, 0]);
        Ok(())
    }

    /// Completes the frame header; returns the frame length in bytes.
    pub fn finish(mut self) -> usize {
        self.finished = true;
        seal_frame(self.out, self.start, Kind::Decisions, self.count)
    }

    /// Admits one command of `command_bytes` that checked as `check`.
    fn admit(&mut self, check: Result<(), DecisionDecodeError>, command_bytes: usize) -> Result<(), EncodeError> {
        check.map_err(|reason| EncodeError::Decisions { index: self.count, reason })?;
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

impl Drop for DecisionBatchWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

#[cfg(test)]
mod tests;
