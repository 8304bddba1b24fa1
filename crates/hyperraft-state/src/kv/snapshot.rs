//! Snapshot bytes: a deterministic, checksummed image of the whole store.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! magic u32 "HRKV" · version u16 · revision u64 · compacted_revision u64
//! lease_id_next u64 · lease_count u64
//! lease_count × (id u64 · ttl_ms u64 · deadline_ns u64)  (ids strictly increasing)
//! key_count u64 · key_count × pair            (keys strictly increasing)
//! event_count u64 · event_count × (kind u8 · pair · has_prev u8 · [pair])
//! checksum u32                                (crc32c of all bytes before)
//! pair = key_len u32 · key · value_len u32 · value
//!        · create_revision u64 · mod_revision u64 · version u64 · lease u64
//! ```
//!
//! Which keys a lease holds is not written: each pair carries its lease,
//! and the decoder rebuilds the shards' lease indexes from the pairs, after
//! checking that every lease a pair names is in the lease table. The
//! attachments therefore cannot disagree with the keys.
//!
//! Decoding checks every length against the bytes present before trusting
//! it and every field against the store's invariants, so a decoded store
//! re-encodes to exactly the bytes it came from.

use std::collections::{BTreeMap, VecDeque};

use hyperraft_wire::kv::{KEY_BYTES_MAX, LEASE_TTL_MS_MAX, LEASE_TTL_MS_MIN, VALUE_BYTES_MAX};

use super::history::History;
use super::key_range::KeyRange;
use super::lease::{Lease, LeaseTable};
use super::shard::{shard_of, Entry, Shard, SHARDS};
use super::state::State;
use super::{Event, EventKind, KeyValue, KvConfig};

/// `b"HRKV"` read as a little-endian u32.
const MAGIC: u32 = u32::from_le_bytes(*b"HRKV");
/// The only snapshot version this build reads and writes. Version 2 added
/// the lease table.
pub const SNAPSHOT_VERSION: u16 = 2;
/// Highest revision accepted (etcd's revisions are signed 64-bit too); it
/// leaves room for any batch to be applied without overflow.
const REVISION_MAX: u64 = i64::MAX as u64;
const CHECKSUM_BYTES: usize = 4;

/// Why bytes were not accepted as a key/value snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvSnapshotError {
    /// The bytes end inside a field.
    #[error("snapshot truncated: {needed} bytes needed at offset {offset}")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// Its length.
        needed: usize,
    },
    /// The bytes are not a key/value snapshot.
    #[error("bad snapshot magic {found:#010x}")]
    BadMagic {
        /// The first four bytes, little-endian.
        found: u32,
    },
    /// The checksum does not match: the bytes were damaged.
    #[error("snapshot checksum mismatch")]
    ChecksumMismatch,
    /// A format this build does not read.
    #[error("unsupported snapshot version {found} (this build reads {SNAPSHOT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// More keys than the configured `keys_max`.
    #[error("snapshot holds {count} keys, more than the limit of {max}")]
    TooManyKeys {
        /// Keys in the snapshot.
        count: u64,
        /// The configured limit.
        max: usize,
    },
    /// More leases than the configured `leases_max`.
    #[error("snapshot holds {count} leases, more than the limit of {max}")]
    TooManyLeases {
        /// Leases in the snapshot.
        count: u64,
        /// The configured limit.
        max: usize,
    },
    /// A lease, or the lease id counter, breaks an invariant.
    #[error("snapshot lease {index}: {reason}")]
    InvalidLease {
        /// Position of the lease in the table (the count of leases for
        /// the id counter).
        index: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// More events than the configured `history_events_max`.
    #[error("snapshot holds {count} events, more than the limit of {max}")]
    TooManyEvents {
        /// Events in the snapshot.
        count: u64,
        /// The configured limit.
        max: usize,
    },
    /// The store revision or compacted revision is out of bounds.
    #[error("snapshot revisions are invalid: {reason}")]
    InvalidRevision {
        /// What is wrong.
        reason: &'static str,
    },
    /// A key/value pair breaks an invariant.
    #[error("snapshot key {index}: {reason}")]
    InvalidKey {
        /// Position of the pair among the keys.
        index: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A history event breaks an invariant.
    #[error("snapshot event {index}: {reason}")]
    InvalidEvent {
        /// Position of the event in the history.
        index: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes follow the last event.
    #[error("{extra} bytes after the snapshot's last event")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// Appends the snapshot of `state` to `out`.
pub(crate) fn encode(state: &State, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&state.revision.to_le_bytes());
    out.extend_from_slice(&state.history.compacted_revision().to_le_bytes());
    out.extend_from_slice(&state.leases.id_next().to_le_bytes());
    out.extend_from_slice(&(state.leases.len() as u64).to_le_bytes());
    for (id, lease) in state.leases.iter() {
        for number in [id, lease.ttl_ms, lease.deadline_ns] {
            out.extend_from_slice(&number.to_le_bytes());
        }
    }
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    for (key, entry) in state.reader().iter(KeyRange::From(&[])) {
        let (create, modified) = (entry.create_revision, entry.mod_revision);
        encode_pair(out, key, &entry.value, [create, modified, entry.version, entry.lease]);
    }
    let events = state.history.events();
    out.extend_from_slice(&(events.len() as u64).to_le_bytes());
    for event in events {
        out.push(match event.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        encode_key_value(out, &event.kv);
        match &event.prev {
            None => out.push(0),
            Some(prev) => {
                out.push(1);
                encode_key_value(out, prev);
            }
        }
    }
    let checksum = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&checksum.to_le_bytes());
}

fn encode_key_value(out: &mut Vec<u8>, kv: &KeyValue) {
    encode_pair(out, &kv.key, &kv.value, [kv.create_revision, kv.mod_revision, kv.version, kv.lease]);
}

fn encode_pair(out: &mut Vec<u8>, key: &[u8], value: &[u8], numbers: [u64; 4]) {
    // Keys and values are bounded far below u32::MAX by the wire limits.
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
    for number in numbers {
        out.extend_from_slice(&number.to_le_bytes());
    }
}

/// Validates `bytes` as one snapshot and rebuilds the state it holds.
pub(crate) fn decode(bytes: &[u8], config: KvConfig) -> Result<State, KvSnapshotError> {
    let mut input = Input { bytes: check_envelope(bytes)?, offset: 0 };
    input.u32()?; // The magic, checked by `check_envelope`.
    let version = input.u16()?;
    if version != SNAPSHOT_VERSION {
        return Err(KvSnapshotError::UnsupportedVersion { found: version });
    }
    let revision = input.u64()?;
    let compacted_revision = input.u64()?;
    if revision > REVISION_MAX {
        return Err(KvSnapshotError::InvalidRevision { reason: "revision above 2^63 - 1" });
    }
    if compacted_revision > revision {
        return Err(KvSnapshotError::InvalidRevision { reason: "compacted revision above the revision" });
    }
    let leases = decode_leases(&mut input, config.leases_max)?;
    let shards = decode_keys(&mut input, config.keys_max, revision, &leases)?;
    let events = decode_events(&mut input, config.history_events_max, compacted_revision, revision)?;
    let extra = input.bytes.len() - input.offset;
    if extra > 0 {
        return Err(KvSnapshotError::TrailingBytes { extra });
    }
    let history = History::from_parts(events, config.history_events_max, compacted_revision);
    Ok(State::from_parts(config, shards, leases, revision, history))
}

/// Checks the magic and the checksum; returns the bytes they cover.
fn check_envelope(bytes: &[u8]) -> Result<&[u8], KvSnapshotError> {
    let Some((magic, _)) = bytes.split_first_chunk::<4>() else {
        return Err(KvSnapshotError::Truncated { offset: 0, needed: 4 });
    };
    let found = u32::from_le_bytes(*magic);
    if found != MAGIC {
        return Err(KvSnapshotError::BadMagic { found });
    }
    let Some((body, checksum)) = bytes.split_last_chunk::<CHECKSUM_BYTES>() else {
        return Err(KvSnapshotError::Truncated { offset: 0, needed: CHECKSUM_BYTES });
    };
    if body.len() < 4 || crc32c::crc32c(body) != u32::from_le_bytes(*checksum) {
        return Err(KvSnapshotError::ChecksumMismatch);
    }
    Ok(body)
}

fn decode_leases(input: &mut Input<'_>, leases_max: usize) -> Result<LeaseTable, KvSnapshotError> {
    let id_next = input.u64()?;
    let count = input.u64()?;
    if count > leases_max as u64 {
        return Err(KvSnapshotError::TooManyLeases { count, max: leases_max });
    }
    if id_next == 0 {
        return Err(KvSnapshotError::InvalidLease { index: count, reason: "lease id counter at 0 (no lease)" });
    }
    let mut leases = BTreeMap::new();
    let mut previous_id = 0;
    for index in 0..count {
        let [id, ttl_ms, deadline_ns] = [input.u64()?, input.u64()?, input.u64()?];
        let invalid = |reason| KvSnapshotError::InvalidLease { index, reason };
        if id <= previous_id {
            return Err(invalid("lease ids are not strictly increasing from 1"));
        }
        if !(LEASE_TTL_MS_MIN..=LEASE_TTL_MS_MAX).contains(&ttl_ms) {
            return Err(invalid("lease TTL outside the wire bounds"));
        }
        previous_id = id;
        leases.insert(id, Lease { ttl_ms, deadline_ns });
    }
    Ok(LeaseTable::from_parts(leases, id_next, leases_max))
}

fn decode_keys(
    input: &mut Input<'_>,
    keys_max: usize,
    revision: u64,
    leases: &LeaseTable,
) -> Result<[Shard; SHARDS], KvSnapshotError> {
    let count = input.u64()?;
    if count > keys_max as u64 {
        return Err(KvSnapshotError::TooManyKeys { count, max: keys_max });
    }
    let mut sorted: [Vec<(Vec<u8>, Entry)>; SHARDS] = Default::default();
    let mut previous_key: Option<Vec<u8>> = None;
    for index in 0..count {
        let kv = input.key_value()?;
        let invalid = |reason| KvSnapshotError::InvalidKey { index, reason };
        check_live(&kv, revision).map_err(invalid)?;
        if previous_key.as_ref().is_some_and(|previous| *previous >= kv.key) {
            return Err(invalid("keys are not strictly increasing"));
        }
        if kv.lease != 0 && !leases.contains(kv.lease) {
            return Err(invalid("attached to a lease that is not in the lease table"));
        }
        previous_key = Some(kv.key.clone());
        let entry = Entry {
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        };
        sorted[shard_of(&kv.key)].push((kv.key, entry));
    }
    // Each shard's pairs arrive sorted, so building its map is linear.
    Ok(sorted.map(|pairs| Shard::from_map(BTreeMap::from_iter(pairs))))
}

fn decode_events(
    input: &mut Input<'_>,
    events_max: usize,
    compacted_revision: u64,
    revision: u64,
) -> Result<VecDeque<Event>, KvSnapshotError> {
    let count = input.u64()?;
    if count > events_max as u64 {
        return Err(KvSnapshotError::TooManyEvents { count, max: events_max });
    }
    let mut events = VecDeque::new();
    // The history may keep some events of the compacted revision itself:
    // when a command's events are pushed out one at a time, the revision
    // counts as compacted as soon as its first event goes.
    let mut previous_revision = compacted_revision;
    for index in 0..count {
        let event = decode_event(input).map_err(|error| error.at_event(index))?;
        let invalid = |reason| KvSnapshotError::InvalidEvent { index, reason };
        check_event(&event, revision).map_err(invalid)?;
        if event.revision() < previous_revision {
            return Err(invalid("events are not in revision order from the compacted revision"));
        }
        previous_revision = event.revision();
        events.push_back(event);
    }
    Ok(events)
}

fn decode_event(input: &mut Input<'_>) -> Result<Event, DecodeEventError> {
    let kind = match input.u8()? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        _ => return Err(DecodeEventError::Invalid("unknown event kind")),
    };
    let kv = input.key_value()?;
    let prev = match input.u8()? {
        0 => None,
        1 => Some(input.key_value()?),
        _ => return Err(DecodeEventError::Invalid("previous-pair flag is neither 0 nor 1")),
    };
    Ok(Event { kind, kv, prev })
}

/// A decode failure inside an event, before its index is attached.
enum DecodeEventError {
    Snapshot(KvSnapshotError),
    Invalid(&'static str),
}

impl From<KvSnapshotError> for DecodeEventError {
    fn from(error: KvSnapshotError) -> Self {
        DecodeEventError::Snapshot(error)
    }
}

impl DecodeEventError {
    fn at_event(self, index: u64) -> KvSnapshotError {
        match self {
            DecodeEventError::Snapshot(error) => error,
            DecodeEventError::Invalid(reason) => KvSnapshotError::InvalidEvent { index, reason },
        }
    }
}

/// The invariants of a live pair at store revision `revision`.
fn check_live(kv: &KeyValue, revision: u64) -> Result<(), &'static str> {
    check_key(&kv.key)?;
    if kv.value.len() > VALUE_BYTES_MAX {
        return Err("value longer than the wire limit");
    }
    if kv.create_revision == 0 || kv.create_revision > kv.mod_revision {
        return Err("create revision not in 1..=mod revision");
    }
    if kv.mod_revision > revision {
        return Err("mod revision above the store revision");
    }
    if kv.version == 0 {
        return Err("version 0 for a live key");
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<(), &'static str> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return Err("key empty or longer than the wire limit");
    }
    Ok(())
}

/// The invariants of a history event at store revision `revision`.
fn check_event(event: &Event, revision: u64) -> Result<(), &'static str> {
    let kv = &event.kv;
    match event.kind {
        EventKind::Put => check_live(kv, revision)?,
        EventKind::Delete => {
            check_key(&kv.key)?;
            let zero = [kv.create_revision, kv.version, kv.lease].iter().all(|number| *number == 0);
            if !kv.value.is_empty() || !zero || kv.mod_revision == 0 || kv.mod_revision > revision {
                return Err("a delete event holds only its key and a revision up to the store's");
            }
        }
    }
    check_prev(event)
}

/// The previous pair must be the same key, written before the event, and
/// a put continues it (same creation, next version) or creates the key.
fn check_prev(event: &Event) -> Result<(), &'static str> {
    let kv = &event.kv;
    let Some(prev) = &event.prev else {
        return match event.kind {
            EventKind::Put if kv.version == 1 && kv.create_revision == kv.mod_revision => Ok(()),
            EventKind::Put => Err("a put without a previous pair must create the key"),
            EventKind::Delete => Err("a delete event must hold the deleted pair"),
        };
    };
    check_live(prev, kv.mod_revision)?;
    if prev.key != kv.key || prev.mod_revision >= kv.mod_revision {
        return Err("the previous pair is another key or not older than the event");
    }
    let continues = prev.create_revision == kv.create_revision && prev.version.checked_add(1) == Some(kv.version);
    if event.kind == EventKind::Put && !continues {
        return Err("a put must continue the previous pair's creation and version");
    }
    Ok(())
}

/// A cursor over untrusted bytes: every read checks the length first.
struct Input<'b> {
    bytes: &'b [u8],
    offset: usize,
}

impl<'b> Input<'b> {
    fn take(&mut self, needed: usize) -> Result<&'b [u8], KvSnapshotError> {
        let truncated = KvSnapshotError::Truncated { offset: self.offset, needed };
        let end = self.offset.checked_add(needed).ok_or(truncated.clone())?;
        let taken = self.bytes.get(self.offset..end).ok_or(truncated)?;
        self.offset = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], KvSnapshotError> {
        let taken = self.take(N)?;
        Ok(taken.try_into().expect("take returns exactly N bytes"))
    }

    fn u8(&mut self) -> Result<u8, KvSnapshotError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, KvSnapshotError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, KvSnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, KvSnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn bytes_with_length(&mut self) -> Result<Vec<u8>, KvSnapshotError> {
        let length = self.u32()? as usize;
        Ok(self.take(length)?.to_vec())
    }

    fn key_value(&mut self) -> Result<KeyValue, KvSnapshotError> {
        let key = self.bytes_with_length()?;
        let value = self.bytes_with_length()?;
        let [create_revision, mod_revision, version, lease] = [self.u64()?, self.u64()?, self.u64()?, self.u64()?];
        Ok(KeyValue { key, value, create_revision, mod_revision, version, lease })
    }
}
