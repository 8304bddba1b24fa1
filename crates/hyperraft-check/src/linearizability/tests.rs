//! The checker accepts every history a real register could produce and
//! rejects histories known not to be linearizable.

use proptest::prelude::*;

use super::*;

fn op(call: u64, ret: u64, input: KvInput, output: KvOutput) -> Operation<KvInput, KvOutput> {
    Operation { call, ret, input, output }
}

fn put(value: u8) -> KvInput {
    KvInput::Put(vec![value])
}

fn saw(value: Option<u8>) -> KvOutput {
    KvOutput::Value(value.map(|v| vec![v]))
}

const STEPS: u64 = 1_000_000;

#[test]
fn overlapping_reads_may_see_the_old_or_the_new_value() {
    // Proves concurrency is honoured: a read overlapping a write may return either value, in any mix.
    let history = vec![
        op(0, 1, put(1), KvOutput::Done),
        op(2, 10, put(2), KvOutput::Done),
        op(3, 4, KvInput::Get, saw(Some(2))),
        op(5, 6, KvInput::Get, saw(Some(2))),
        op(2, 9, KvInput::Get, saw(Some(1))),
    ];
    assert_eq!(check(&Register, &history, STEPS), Verdict::Linearizable);
}

#[test]
fn known_violations_are_rejected() {
    // Proves the checker catches stale reads, lost writes, a read of a value that later flips back, and double compare-and-set.
    let stale_read = vec![op(0, 1, put(1), KvOutput::Done), op(2, 3, KvInput::Get, saw(None))];
    let reordered =
        vec![op(0, 1, put(1), KvOutput::Done), op(2, 3, put(2), KvOutput::Done), op(4, 5, KvInput::Get, saw(Some(1)))];
    let flip_back = vec![
        op(0, 10, put(1), KvOutput::Done),
        op(1, 2, KvInput::Get, saw(Some(1))),
        op(3, 4, KvInput::Get, saw(None)),
    ];
    let cas = |new| KvInput::CompareAndSet { expected: None, new: vec![new] };
    let double_cas = vec![op(0, 5, cas(1), KvOutput::Swapped(true)), op(0, 5, cas(2), KvOutput::Swapped(true))];
    for history in [stale_read, reordered, flip_back, double_cas] {
        assert_eq!(check(&Register, &history, STEPS), Verdict::NotLinearizable, "{history:?}");
    }
}

#[test]
fn keys_are_checked_independently_and_a_bad_key_fails_the_history() {
    // Proves P-compositionality: a violation on one key fails the whole history; good keys alone pass.
    let good = (b"a".to_vec(), op(0, 1, put(1), KvOutput::Done));
    let good_read = (b"a".to_vec(), op(2, 3, KvInput::Get, saw(Some(1))));
    let bad_read = (b"b".to_vec(), op(2, 3, KvInput::Get, saw(Some(7))));
    assert_eq!(check_kv(&[good.clone(), good_read.clone()], STEPS), Verdict::Linearizable);
    assert_eq!(check_kv(&[good, good_read, bad_read], STEPS), Verdict::NotLinearizable);
}

#[test]
fn a_tiny_budget_answers_unknown_not_a_guess() {
    // Proves the step bound: a search cut short says Unknown.
    let history: Vec<_> = (0..20).map(|i| op(0, 100, put(i), KvOutput::Done)).collect();
    let mut reads = history.clone();
    reads.push(op(101, 102, KvInput::Get, saw(Some(99))));
    assert_eq!(check(&Register, &reads, 5), Verdict::Unknown);
}

/// A real register run by concurrent clients: each operation takes effect
/// at an instant inside its own [call, ret] interval.
fn real_history() -> impl Strategy<Value = Vec<Operation<KvInput, KvOutput>>> {
    let step = (0u8..4, 0u8..4, 0u64..5, 0u64..5);
    prop::collection::vec(step, 1..24).prop_map(|steps| {
        let mut state: Option<Vec<u8>> = None;
        let mut history = Vec::new();
        for (index, (kind, value, before, after)) in steps.into_iter().enumerate() {
            let at = 20 + 10 * index as u64;
            let (input, output) = match kind {
                0 => (put(value), KvOutput::Done),
                1 => (KvInput::Get, KvOutput::Value(state.clone())),
                2 => (KvInput::Delete, KvOutput::Done),
                _ => {
                    let expected = (value % 2 == 0).then(|| vec![value]);
                    let swapped = expected == state;
                    (KvInput::CompareAndSet { expected, new: vec![value + 1] }, KvOutput::Swapped(swapped))
                }
            };
            state = Register.step(&state, &input, &output).expect("the register accepts its own answers");
            history.push(op(at - before * 3, at + after * 3, input, output));
        }
        history
    })
}

proptest! {
    #[test]
    fn every_history_of_a_real_register_is_accepted(history in real_history()) {
        // Proves completeness: concurrent histories produced by an actual register are always linearizable.
        prop_assert_eq!(check(&Register, &history, 10_000_000), Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_rejected(mut history in real_history(), which in any::<prop::sample::Index>()) {
        // Proves soundness on corrupted histories: one read changed to a never-written value makes the history fail.
        history.push(op(1_000, 1_001, KvInput::Get, KvOutput::Value(None)));
        let reads: Vec<usize> = (0..history.len()).filter(|i| history[*i].input == KvInput::Get).collect();
        let target = reads[which.index(reads.len())];
        history[target].output = KvOutput::Value(Some(vec![200]));
        prop_assert_eq!(check(&Register, &history, 10_000_000), Verdict::NotLinearizable);
    }
}
