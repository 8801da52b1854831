//! Property tests: random command sequences — reserves, pays, cancels, retries with the same id,
//! conflicting ids, time jumps across expiry, restocks, upserts, queries — go through both the
//! `Shard` and the plain reference `Model`. Every outcome must match and the shard's invariants
//! must hold after every step. Ids are drawn from small ranges so collisions (retries, conflicts,
//! other users' orders) are frequent.

mod model_support;

use flashsale_core::model::Model;
use flashsale_core::{Command, Shard};
use proptest::prelude::*;

const SKUS: u32 = 4;

fn command() -> impl Strategy<Value = Command> {
    model_support::command(SKUS, 24, 6)
}

/// A step: advance time by `advance_ms` (sometimes backwards, which must be ignored), then
/// apply a small batch.
fn step() -> impl Strategy<Value = (i64, Vec<Command>)> {
    (
        prop_oneof![6 => 0i64..5, 2 => 5i64..60, 1 => -20i64..0],
        proptest::collection::vec(command(), 1..6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, max_shrink_iters: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn shard_matches_the_model(steps in proptest::collection::vec(step(), 1..60)) {
        let mut shard = Shard::new();
        let mut model = Model::new();
        let mut clock_ms: i64 = 100;
        for (index, (advance_ms, commands)) in steps.iter().enumerate() {
            clock_ms = (clock_ms + advance_ms).max(0);
            let now_ms = clock_ms as u64;
            let mut shard_outcomes = Vec::new();
            shard.apply(now_ms, commands, &mut shard_outcomes);
            let model_outcomes = model.apply(now_ms, commands);
            prop_assert_eq!(
                &shard_outcomes, &model_outcomes,
                "step {} at {} ms: {:?}", index, now_ms, commands
            );
            if let Err(broken) = shard.check_invariants() {
                prop_assert!(false, "step {}: invariant broken: {}", index, broken);
            }
            for sku_id in 0..=SKUS {
                prop_assert_eq!(shard.sku_view(sku_id), model.sku_view(sku_id));
            }
            for order_id in 0..24 {
                prop_assert_eq!(shard.order_view(order_id), model.order_view(order_id));
            }
        }
    }

    /// Determinism: the same inputs give byte-for-byte the same outputs and state — also under
    /// two different hash keys, which move entries around in memory and must change nothing
    /// else (the snapshot included).
    #[test]
    fn replaying_the_same_inputs_gives_the_same_state(steps in proptest::collection::vec(step(), 1..40)) {
        let run = |hash_key: u64| {
            let mut shard = Shard::with_capacity_and_hash_key(0, hash_key);
            let mut all = Vec::new();
            let mut now_ms = 0u64;
            for (advance_ms, commands) in &steps {
                now_ms = now_ms.saturating_add_signed(*advance_ms);
                shard.apply(now_ms, commands, &mut all);
            }
            let mut snapshot = Vec::new();
            shard.encode_snapshot(&mut snapshot);
            (all, shard.sku_views(), shard.order_views(), snapshot)
        };
        prop_assert_eq!(run(1), run(1));
        prop_assert_eq!(run(1), run(0x9e37_79b9_7f4a_7c15));
    }

    /// Snapshots: a shard decoded from a snapshot taken at any step answers the rest of the
    /// run exactly as the shard that never stopped, and both encode to the same bytes at the end.
    #[test]
    fn a_shard_restored_from_a_snapshot_continues_like_the_original(
        steps in proptest::collection::vec(step(), 1..40),
        cut in 0usize..40,
    ) {
        let mut original = Shard::new();
        let mut now_ms = 100u64;
        let cut = cut.min(steps.len());
        for (advance_ms, commands) in &steps[..cut] {
            now_ms = now_ms.saturating_add_signed(*advance_ms);
            original.apply(now_ms, commands, &mut Vec::new());
        }
        let mut state = Vec::new();
        original.encode_snapshot(&mut state);
        let mut restored = Shard::decode_snapshot(&state, 0)
            .map_err(|e| TestCaseError::fail(format!("decode of a real snapshot failed: {e}")))?;
        if let Err(broken) = restored.check_invariants() {
            prop_assert!(false, "restored shard: invariant broken: {}", broken);
        }
        for (index, (advance_ms, commands)) in steps[cut..].iter().enumerate() {
            now_ms = now_ms.saturating_add_signed(*advance_ms);
            let (mut expected, mut got) = (Vec::new(), Vec::new());
            original.apply(now_ms, commands, &mut expected);
            restored.apply(now_ms, commands, &mut got);
            prop_assert_eq!(&got, &expected, "step {} after the snapshot: {:?}", index, commands);
            if let Err(broken) = restored.check_invariants() {
                prop_assert!(false, "restored shard, step {}: invariant broken: {}", index, broken);
            }
        }
        let (mut end_original, mut end_restored) = (Vec::new(), Vec::new());
        original.encode_snapshot(&mut end_original);
        restored.encode_snapshot(&mut end_restored);
        prop_assert_eq!(end_original, end_restored);
    }
}
