//! Owned mirrors of the key/value views, proptest strategies, and helpers
//! for crafting raw frames byte by byte.

use hyperraft_wire::frame::HEADER_BYTES;
use hyperraft_wire::kv::{KEY_BYTES_MAX, LEASE_TTL_MS_MAX, LEASE_TTL_MS_MIN, TXN_OPS_MAX};
use hyperraft_wire::{
    Body, Compare, CompareOp, CompareTarget, DeleteView, FrameHeader, KvBatchWriter, KvCommand, KvCommands, KvOp,
    LeaseExpireView, LeaseGrantView, LeaseKeepAliveView, LeaseRevokeView, PutView, RangeView,
};
use proptest::collection::vec;
use proptest::prelude::*;
use zerocopy::byteorder::little_endian::U32;
use zerocopy::{FromBytes, IntoBytes};

/// An owned Put, DeleteRange or Range, so strategies can generate it.
#[derive(Clone, Debug)]
pub enum OwnedOp {
    Put { key: Vec<u8>, value: Vec<u8>, lease: u64, prev_kv: bool },
    DeleteRange { key: Vec<u8>, range_end: Vec<u8>, prev_kv: bool },
    Range { key: Vec<u8>, range_end: Vec<u8>, limit: u32, keys_only: bool, count_only: bool },
}

impl OwnedOp {
    pub fn view(&self) -> KvOp<'_> {
        match self {
            OwnedOp::Put { key, value, lease, prev_kv } => {
                KvOp::Put(PutView { key, value, lease: *lease, prev_kv: *prev_kv })
            }
            OwnedOp::DeleteRange { key, range_end, prev_kv } => {
                KvOp::DeleteRange(DeleteView { key, range_end, prev_kv: *prev_kv })
            }
            OwnedOp::Range { key, range_end, limit, keys_only, count_only } => {
                KvOp::Range(RangeView { key, range_end, limit: *limit, keys_only: *keys_only, count_only: *count_only })
            }
        }
    }
}

/// An owned compare.
#[derive(Clone, Debug)]
pub struct OwnedCompare {
    pub key: Vec<u8>,
    pub op: CompareOp,
    /// Target code 0..=4 as on the wire; `value` is used for code 0.
    pub target: u8,
    pub operand: u64,
    pub value: Vec<u8>,
}

impl OwnedCompare {
    pub fn view(&self) -> Compare<'_> {
        let target = match self.target {
            0 => CompareTarget::Value(&self.value),
            1 => CompareTarget::Version(self.operand),
            2 => CompareTarget::CreateRevision(self.operand),
            3 => CompareTarget::ModRevision(self.operand),
            _ => CompareTarget::Lease(self.operand),
        };
        Compare { key: &self.key, op: self.op, target }
    }
}

/// An owned command of any kind.
#[derive(Clone, Debug)]
pub enum OwnedCommand {
    Op(OwnedOp),
    Txn {
        compares: Vec<OwnedCompare>,
        success: Vec<OwnedOp>,
        failure: Vec<OwnedOp>,
    },
    /// A lease command: its views own nothing, so the view itself is stored.
    Lease(KvCommand<'static>),
}

impl OwnedCommand {
    /// Writes this command with the writer's typed methods.
    pub fn write(&self, writer: &mut KvBatchWriter<'_>) {
        let result = match self {
            OwnedCommand::Op(op) => match op.view() {
                KvOp::Put(put) => writer.put(put),
                KvOp::DeleteRange(delete) => writer.delete_range(delete),
                KvOp::Range(range) => writer.range(range),
            },
            OwnedCommand::Txn { compares, success, failure } => {
                let compares: Vec<Compare<'_>> = compares.iter().map(OwnedCompare::view).collect();
                let success: Vec<KvOp<'_>> = success.iter().map(OwnedOp::view).collect();
                let failure: Vec<KvOp<'_>> = failure.iter().map(OwnedOp::view).collect();
                writer.txn(&compares, &success, &failure)
            }
            OwnedCommand::Lease(KvCommand::LeaseGrant(grant)) => writer.lease_grant(*grant),
            OwnedCommand::Lease(KvCommand::LeaseRevoke(revoke)) => writer.lease_revoke(*revoke),
            OwnedCommand::Lease(KvCommand::LeaseKeepAlive(keep_alive)) => writer.lease_keep_alive(*keep_alive),
            OwnedCommand::Lease(KvCommand::LeaseExpire(expire)) => writer.lease_expire(*expire),
            OwnedCommand::Lease(other) => panic!("not a lease command: {other:?}"),
        };
        result.expect("generated commands are within bounds");
    }

    /// Asserts that `decoded` is exactly this command.
    pub fn assert_matches(&self, decoded: &KvCommand<'_>) {
        match (self, decoded) {
            (OwnedCommand::Op(op), decoded) => assert_eq!(&KvCommand::from(op.view()), decoded),
            (OwnedCommand::Txn { compares, success, failure }, KvCommand::Txn(txn)) => {
                assert_eq!(txn.compare_count(), compares.len());
                assert_eq!(txn.success_count(), success.len());
                assert_eq!(txn.failure_count(), failure.len());
                assert!(txn.compares().eq(compares.iter().map(OwnedCompare::view)));
                assert!(txn.success().eq(success.iter().map(OwnedOp::view)));
                assert!(txn.failure().eq(failure.iter().map(OwnedOp::view)));
            }
            (OwnedCommand::Txn { .. }, other) => panic!("expected a txn, decoded {other:?}"),
            (OwnedCommand::Lease(lease), decoded) => assert_eq!(lease, decoded),
        }
    }
}

/// Appends one Kv frame holding `commands` to `out`.
pub fn write_batch(commands: &[OwnedCommand], out: &mut Vec<u8>) -> usize {
    let mut writer = KvBatchWriter::new(out);
    for command in commands {
        command.write(&mut writer);
    }
    writer.finish()
}

/// The Kv commands of a frame body.
pub fn kv_commands(body: Body<'_>) -> KvCommands<'_> {
    match body {
        Body::Kv(commands) => commands,
        other => panic!("expected a Kv body, got {other:?}"),
    }
}

/// Keys are mostly short, sometimes exactly at the bound.
pub fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => vec(any::<u8>(), 1..=16),
        1 => vec(any::<u8>(), KEY_BYTES_MAX..=KEY_BYTES_MAX),
    ]
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), Just(vec![0]), vec(any::<u8>(), 1..=16)]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => vec(any::<u8>(), 0..=64),
        1 => vec(any::<u8>(), 0..=4096),
    ]
}

pub fn op() -> impl Strategy<Value = OwnedOp> {
    prop_oneof![
        (key(), value(), any::<u64>(), any::<bool>())
            .prop_map(|(key, value, lease, prev_kv)| { OwnedOp::Put { key, value, lease, prev_kv } }),
        (key(), range_end(), any::<bool>())
            .prop_map(|(key, range_end, prev_kv)| { OwnedOp::DeleteRange { key, range_end, prev_kv } }),
        (key(), range_end(), any::<u32>(), any::<bool>(), any::<bool>()).prop_map(
            |(key, range_end, limit, keys_only, count_only)| OwnedOp::Range {
                key,
                range_end,
                limit,
                keys_only,
                count_only
            }
        ),
    ]
}

fn compare() -> impl Strategy<Value = OwnedCompare> {
    let op =
        prop_oneof![Just(CompareOp::Equal), Just(CompareOp::NotEqual), Just(CompareOp::Less), Just(CompareOp::Greater)];
    (key(), op, 0u8..=4, any::<u64>(), value()).prop_map(|(key, op, target, operand, value)| OwnedCompare {
        key,
        op,
        target,
        operand,
        value,
    })
}

/// Transactions are mostly small; one case in eight fills a part to the bound.
fn part_len() -> impl Strategy<Value = usize> {
    prop_oneof![7 => 0..=4usize, 1 => Just(TXN_OPS_MAX)]
}

pub fn command() -> impl Strategy<Value = OwnedCommand> {
    let txn = (part_len(), part_len(), part_len()).prop_flat_map(|(compares, success, failure)| {
        (vec(compare(), compares), vec(op(), success), vec(op(), failure))
            .prop_map(|(compares, success, failure)| OwnedCommand::Txn { compares, success, failure })
    });
    prop_oneof![4 => op().prop_map(OwnedCommand::Op), 1 => txn, 1 => lease_command()]
}

/// Lease commands with any id; grant TTLs mostly inside the bounds, sometimes exactly at one.
pub fn lease_command() -> impl Strategy<Value = OwnedCommand> {
    let ttl_ms = prop_oneof![
        8 => LEASE_TTL_MS_MIN..=LEASE_TTL_MS_MAX,
        1 => Just(LEASE_TTL_MS_MIN),
        1 => Just(LEASE_TTL_MS_MAX),
    ];
    let command = prop_oneof![
        (any::<u64>(), ttl_ms).prop_map(|(id, ttl_ms)| KvCommand::LeaseGrant(LeaseGrantView { id, ttl_ms })),
        any::<u64>().prop_map(|id| KvCommand::LeaseRevoke(LeaseRevokeView { id })),
        any::<u64>().prop_map(|id| KvCommand::LeaseKeepAlive(LeaseKeepAliveView { id })),
        any::<u64>().prop_map(|id| KvCommand::LeaseExpire(LeaseExpireView { id })),
    ];
    command.prop_map(OwnedCommand::Lease)
}

/// Rewrites a frame's header with `edit` and recomputes the header
/// checksum, so a test reaches the check after it.
pub fn patch_header(frame: &mut [u8], edit: impl FnOnce(&mut FrameHeader)) {
    let (header, _) = FrameHeader::mut_from_prefix(frame).expect("frame has a header");
    edit(header);
    reseal_header(frame);
}

/// Recomputes the header checksum over the first 20 bytes.
pub fn reseal_header(frame: &mut [u8]) {
    let checksum = crc32c::crc32c(&frame[..HEADER_BYTES - 4]);
    frame[HEADER_BYTES - 4..HEADER_BYTES].copy_from_slice(U32::new(checksum).as_bytes());
}

/// Recomputes the body checksum and then the header checksum.
pub fn reseal(frame: &mut [u8]) {
    let checksum = crc32c::crc32c(&frame[HEADER_BYTES..]);
    patch_header(frame, |header| header.body_checksum = U32::new(checksum));
}

/// A little-endian byte builder for crafting commands by hand.
#[derive(Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }
    pub fn u16(mut self, value: u16) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// A Put: tag 1, flags, key_len, value_len, lease, key, value.
pub fn put_bytes(flags: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let key_len = u16::try_from(key.len()).expect("test key fits u16");
    let value_len = u32::try_from(value.len()).expect("test value fits u32");
    Bytes::default().u8(1).u8(flags).u16(key_len).u32(value_len).u64(0).raw(key).raw(value).0
}

/// A transaction header followed by its three parts.
pub fn txn_bytes(flags: u8, counts: [u16; 3], parts: [&[u8]; 3]) -> Vec<u8> {
    let mut bytes = Bytes::default().u8(4).u8(flags).u16(counts[0]).u16(counts[1]).u16(counts[2]);
    for part in parts {
        bytes = bytes.u32(u32::try_from(part.len()).expect("test part fits u32"));
    }
    for part in parts {
        bytes = bytes.raw(part);
    }
    bytes.0
}
