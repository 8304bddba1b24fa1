use hyperraft_state::ledger;

use super::*;

#[test]
fn u128_halves_round_trip_and_absent_reads_zero() {
    // Proves the Uint128 convention: value = high << 64 | low, both ways, and a missing message is 0.
    for value in
        [0u128, 1, u128::from(u64::MAX), u128::from(u64::MAX) + 1, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210]
    {
        assert_eq!(to_u128(from_u128(value).as_ref()), value);
    }
    assert_eq!(from_u128(1 << 64), Some(proto::Uint128 { high: 1, low: 0 }));
    assert_eq!(to_u128(None), 0);
}

#[test]
fn account_and_transfer_messages_round_trip_through_records() {
    // Proves message → record → message keeps every field of an account and of a transfer.
    let account = proto::Account {
        id: from_u128(7 << 70),
        debits_posted: from_u128(3),
        credits_posted: from_u128(4),
        user_data: from_u128(u128::MAX),
        timestamp: 9,
        ledger: 5,
        code: 65535,
        flags: 6,
    };
    assert_eq!(account_message(&account_record(0, &account).unwrap()), account);
    let transfer = proto::Transfer {
        id: from_u128(1),
        debit_account_id: from_u128(2),
        credit_account_id: from_u128(3),
        amount: from_u128(u128::MAX - 1),
        user_data: from_u128(5),
        timestamp: 0,
        ledger: 1,
        code: 2,
        flags: 1,
    };
    assert_eq!(transfer_message(&transfer_record(0, &transfer).unwrap()), transfer);
}

#[test]
fn a_code_or_flags_over_16_bits_is_refused_naming_the_field() {
    // Proves fields the wire holds in 16 bits are checked: the error is INVALID_ARGUMENT and names list, index and field.
    let account = proto::Account { code: 65536, ..Default::default() };
    let status = account_record(3, &account).unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("accounts[3].code:"), "{}", status.message());
    let transfer = proto::Transfer { flags: 1 << 16, ..Default::default() };
    let status = transfer_record(0, &transfer).unwrap_err();
    assert!(status.message().starts_with("transfers[0].flags:"), "{}", status.message());
}

/// Checks that each named variant has the same number in the state
/// machine's enum and in the proto enum, and that the proto enum has no
/// number past the last one listed.
macro_rules! same_codes {
    ($state:ty, $proto:ty, [$($variant:ident),+ $(,)?]) => {{
        let mut count = 0i32;
        $(
            assert_eq!(<$state>::$variant as i32, <$proto>::$variant as i32, stringify!($variant));
            count += 1;
        )+
        assert!(<$proto>::try_from(count).is_err(), "the proto enum has a code the state machine lacks");
    }};
}

#[test]
fn proto_result_codes_equal_the_state_machine_codes() {
    // Proves the proto enums CreateAccountResult / CreateTransferResult give every variant the state machine's number (the node passes numbers through).
    same_codes!(
        ledger::CreateAccountResult,
        proto::CreateAccountResult,
        [
            Ok,
            LinkedEventFailed,
            LinkedEventChainOpen,
            TimestampMustBeZero,
            ReservedFlag,
            IdMustNotBeZero,
            FlagsAreMutuallyExclusive,
            DebitsPostedMustBeZero,
            CreditsPostedMustBeZero,
            LedgerMustNotBeZero,
            CodeMustNotBeZero,
            ExistsWithDifferentFields,
            Exists,
            AccountsFull,
        ]
    );
    same_codes!(
        ledger::CreateTransferResult,
        proto::CreateTransferResult,
        [
            Ok,
            LinkedEventFailed,
            LinkedEventChainOpen,
            TimestampMustBeZero,
            ReservedFlag,
            IdMustNotBeZero,
            DebitAccountIdMustNotBeZero,
            CreditAccountIdMustNotBeZero,
            AccountsMustBeDifferent,
            AmountMustNotBeZero,
            LedgerMustNotBeZero,
            CodeMustNotBeZero,
            ExistsWithDifferentFields,
            Exists,
            DebitAccountNotFound,
            CreditAccountNotFound,
            AccountsMustHaveTheSameLedger,
            TransferMustHaveTheSameLedgerAsAccounts,
            OverflowsDebitsPosted,
            OverflowsCreditsPosted,
            ExceedsCredits,
            ExceedsDebits,
            TransfersFull,
        ]
    );
}
