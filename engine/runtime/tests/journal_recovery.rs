//! Journal and recovery on real files: a journaled engine recovers every outcome it answered,
//! replay reproduces the live outcomes (with idle ticks expiring holds live but not journaled),
//! two replays give byte-identical snapshots, snapshots drop covered segments, a torn tail is
//! truncated, mid-log corruption stops start-up naming file and offset, and an fsync/write
//! error is fail-stop. (The recovery-speed measurement is in `benches/journal_bench.rs`.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use flashsale_engine::journal::pipeline::JournalThreadSettings;
use flashsale_engine::journal::record::append_record;
use flashsale_engine::journal::recovery::recover_shard_with;
use flashsale_engine::journal::segment::{
    SegmentInfo, SegmentWriter, list_segments, prepare_segment,
};
use flashsale_engine::journal::{
    Acknowledge, Durability, DurabilityFailure, JournalConfig, JournalError, JournalHandle,
    JournalMessage, SyncMode, open_data_dir, recover_shard, shard_dir, tools,
};
use flashsale_engine::{Clock, Command, Engine, EngineConfig, EngineError, Outcome, SkuConfig};

const START_MS: u64 = 1_000_000;
const SKUS: u32 = 6;

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn config(dir: &Path, mode: SyncMode, clock: &Clock, snapshot_every: u64) -> EngineConfig {
    let mut journal = JournalConfig::new(dir, mode);
    journal.snapshot_every_commands = snapshot_every;
    journal.segment_max_bytes = 4096; // many segments, to exercise rolling
    EngineConfig {
        shards: 2,
        tick_interval_ms: 1,
        clock: clock.clone(),
        durability: Durability::Journal(journal),
        ..EngineConfig::default()
    }
}

/// Drives `rounds` batches of mixed traffic with the clock moving and idle ticks in between;
/// returns every (command, outcome) answered, in submission order, and the order ids used.
fn drive(
    engine: &Engine,
    clock: &Clock,
    rounds: usize,
    seed: u64,
) -> (Vec<(Command, Outcome)>, u64) {
    let mut rng = Lcg(seed);
    let mut answered = Vec::new();
    let mut next_order = 1u64;
    let upserts: Vec<Command> = (1..=SKUS)
        .map(|sku| Command::UpsertSku(SkuConfig::simple(sku, 40, 3, 20 + u64::from(sku) * 7)))
        .collect();
    for (command, outcome) in upserts.iter().zip(engine.submit_wait(upserts.clone())) {
        answered.push((*command, outcome));
    }
    for round in 0..rounds {
        let mut batch = Vec::new();
        for _ in 0..1 + rng.below(12) {
            let user_id = rng.below(30);
            let command = match rng.below(10) {
                0..=4 => {
                    next_order += 1;
                    Command::Reserve {
                        order_id: next_order,
                        user_id,
                        sku_id: 1 + rng.below(u64::from(SKUS)) as u32,
                        qty: 1 + rng.below(2) as u32,
                    }
                }
                5..=6 => Command::Pay {
                    order_id: 1 + rng.below(next_order),
                    user_id,
                },
                7 => Command::Cancel {
                    order_id: 1 + rng.below(next_order),
                    user_id,
                },
                8 => Command::Restock {
                    sku_id: 1 + rng.below(u64::from(SKUS)) as u32,
                    delta: rng.below(5) as i64 - 1,
                },
                _ => Command::QueryOrder {
                    order_id: 1 + rng.below(next_order),
                },
            };
            batch.push(command);
        }
        for (command, outcome) in batch.iter().zip(engine.submit_wait(batch.clone())) {
            answered.push((*command, outcome));
        }
        if round % 5 == 0 {
            // Time moves and the shards tick while idle: holds expire live, unjournaled.
            clock.advance_ms(1 + rng.below(15));
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    (answered, next_order)
}

/// Every order's and SKU's state as the engine answers queries now.
fn views(engine: &Engine, max_order: u64) -> Vec<Outcome> {
    let mut queries: Vec<Command> = (1..=max_order)
        .map(|order_id| Command::QueryOrder { order_id })
        .collect();
    queries.extend((1..=SKUS).map(|sku_id| Command::QuerySku { sku_id }));
    engine.submit_wait(queries)
}

/// The replayed (command, outcome) list of a shard must be the live list of that shard's
/// journaled commands: the live list in order, minus queries and minus refusals (which are
/// never journaled).
fn assert_replay_matches_live(live: &[(Command, Outcome)], replayed: &[(Command, Outcome)]) {
    // Refusals change nothing and are not journaled, whether the shard or the fast path gave
    // them: a replay sees only commands that changed state.
    assert!(
        replayed
            .iter()
            .all(|(_, outcome)| !matches!(outcome, Outcome::Rejected(_))),
        "a refusal was journaled"
    );
    let mut live_iter = live.iter().filter(|(command, _)| command.is_mutation());
    for (index, item) in replayed.iter().enumerate() {
        loop {
            let Some(candidate) = live_iter.next() else {
                panic!("replayed item {index} {item:?} has no live counterpart");
            };
            if candidate == item {
                break;
            }
            // Only refusals may be skipped (never journaled).
            assert!(
                matches!(candidate.1, Outcome::Rejected(_)),
                "live {candidate:?} is missing from the replay (next replayed: {item:?})"
            );
        }
    }
}

/// Per shard: the replayed (command, outcome) pairs.
type Replayed = Vec<Vec<(Command, Outcome)>>;

fn replay(dir: &Path, shards: usize) -> (Replayed, Vec<Vec<u8>>) {
    let mut outcomes = Vec::new();
    let mut snapshots = Vec::new();
    for index in 0..shards {
        let mut seen = Vec::new();
        let recovered = recover_shard_with(dir, index, shards, 0, |commands, results| {
            seen.extend(commands.iter().copied().zip(results.iter().cloned()));
        })
        .expect("replay");
        let mut state = Vec::new();
        recovered.shard.encode_snapshot(&mut state);
        outcomes.push(seen);
        snapshots.push(state);
    }
    (outcomes, snapshots)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn replay_reproduces_live_outcomes_and_views_with_idle_ticks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let clock = Clock::manual(START_MS);
    let engine = Engine::start(config(&dir, SyncMode::Sync, &clock, 0)).unwrap();
    let (answered, max_order) = drive(&engine, &clock, 400, 7);
    assert!(
        engine.stats().expired_holds > 0,
        "the test must see holds expire live"
    );
    let live_views = views(&engine, max_order);
    engine.shutdown();

    // Two independent replays of copies of the journal: identical outcomes and snapshots.
    let copy_a = tmp.path().join("a");
    let copy_b = tmp.path().join("b");
    copy_dir(&dir, &copy_a);
    copy_dir(&dir, &copy_b);
    let (outcomes_a, snapshots_a) = replay(&copy_a, 2);
    let (outcomes_b, snapshots_b) = replay(&copy_b, 2);
    assert_eq!(outcomes_a, outcomes_b);
    assert_eq!(
        snapshots_a, snapshots_b,
        "replays must give byte-identical snapshots"
    );

    // Replay gives the live outcomes, per shard, in order.
    let probe = Engine::start(EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    })
    .unwrap();
    for (shard, replayed) in outcomes_a.iter().enumerate() {
        let live: Vec<(Command, Outcome)> = answered
            .iter()
            .filter(|(command, _)| match command {
                Command::Reserve { sku_id, .. } | Command::Restock { sku_id, .. } => {
                    probe.shard_of_sku(*sku_id) == shard
                }
                Command::UpsertSku(config) => probe.shard_of_sku(config.sku_id) == shard,
                Command::Pay { order_id, .. } | Command::Cancel { order_id, .. } => {
                    // The order's shard: the one whose replay created it.
                    replayed.iter().any(|(c, o)| {
                        matches!(c, Command::Reserve { order_id: id, .. } if id == order_id)
                            && matches!(o, Outcome::Created(_))
                    })
                }
                _ => false,
            })
            .cloned()
            .collect();
        assert!(!replayed.is_empty());
        assert_replay_matches_live(&live, replayed);
    }
    probe.shutdown();

    // A recovered engine answers every query as the live one did.
    let recovered = Engine::start(config(&dir, SyncMode::Sync, &clock, 0)).unwrap();
    assert_eq!(views(&recovered, max_order), live_views);
    recovered.shutdown();

    // Snapshot codec round trip is canonical.
    for state in &snapshots_a {
        let shard = flashsale_engine::Shard::decode_snapshot(state, 0).unwrap();
        shard.check_invariants().unwrap();
        let mut again = Vec::new();
        shard.encode_snapshot(&mut again);
        assert_eq!(&again, state);
    }
}

#[test]
fn snapshots_remove_covered_segments_and_recovery_uses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let clock = Clock::manual(START_MS);
    let engine = Engine::start(config(&dir, SyncMode::Sync, &clock, 97)).unwrap();
    let (_, max_order) = drive(&engine, &clock, 300, 11);
    let live_views = views(&engine, max_order);
    // No clean-stop snapshot: drop the engine's journal by simulating a crash is not possible
    // in process, so stop it and then check the data directory.
    engine.shutdown();
    for index in 0..2 {
        let segments = list_segments(&shard_dir(&dir, index)).unwrap();
        assert!(
            segments.len() <= 2,
            "covered segments must be removed: {segments:?}"
        );
        assert!(
            segments[0].first_seq > 1,
            "segment 1 is covered by a snapshot"
        );
    }
    let report = tools::verify(&dir).unwrap();
    assert!(report.iter().all(|shard| shard.snapshot_seq.is_some()));
    let (recovered, reports) = Engine::recover(config(&dir, SyncMode::Sync, &clock, 97)).unwrap();
    assert!(reports.iter().all(|report| report.snapshot.is_some()));
    assert_eq!(views(&recovered, max_order), live_views);
    recovered.shutdown();
}

#[test]
fn async_mode_recovers_after_a_clean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let clock = Clock::manual(START_MS);
    let mode = SyncMode::Async {
        fsync_interval_ms: 5,
    };
    let engine = Engine::start(config(&dir, mode, &clock, 0)).unwrap();
    let (_, max_order) = drive(&engine, &clock, 200, 3);
    let live_views = views(&engine, max_order);
    engine.shutdown();
    let recovered = Engine::start(config(&dir, mode, &clock, 0)).unwrap();
    assert_eq!(views(&recovered, max_order), live_views);
    recovered.shutdown();
}

/// A data directory with a journal and no snapshot; returns the live views.
fn journal_only(dir: &Path, clock: &Clock) -> (Vec<Outcome>, u64) {
    let engine = Engine::start(config(dir, SyncMode::Sync, clock, 0)).unwrap();
    let (_, max_order) = drive(&engine, clock, 120, 5);
    let live = views(&engine, max_order);
    engine.shutdown();
    (live, max_order)
}

/// Offsets of the frames in a segment's bytes, and where the records end (zeros follow: the
/// writer keeps segments zero-filled ahead of the data).
fn frames(bytes: &[u8]) -> (Vec<usize>, usize) {
    let mut offsets = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        offsets.push(at);
        at += 8 + len;
    }
    assert!(bytes[at..].iter().all(|&b| b == 0));
    (offsets, at)
}

fn last_segment(dir: &Path, shard: usize) -> PathBuf {
    list_segments(&shard_dir(dir, shard))
        .unwrap()
        .pop()
        .expect("a segment")
        .path
}

/// Prepared segments: the writer rolls into a zero-filled file made ahead (paced, as the journal
/// thread's preparer makes them); recovery reads the records across the roll, takes the zeros
/// after the last record as the end (not a torn tail), and ignores a prepared file not yet used.
#[test]
fn records_roll_into_prepared_segments_and_recover_across_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let _lock = open_data_dir(&dir, 1).unwrap();
    let shard = shard_dir(&dir, 0);
    let reserve = |order_id: u64| Command::Reserve {
        order_id,
        user_id: order_id,
        sku_id: 1,
        qty: 1,
    };
    let mut writer = SegmentWriter::create(&shard, 1).unwrap();
    let mut buffer = BytesMut::new();
    append_record(
        &mut buffer,
        1,
        START_MS,
        &[Command::UpsertSku(SkuConfig::simple(1, 10, 1, 60_000))],
    );
    append_record(&mut buffer, 2, START_MS, &[reserve(1)]);
    writer.write(&buffer).unwrap();
    let prepared = prepare_segment(&shard, 8 << 20, Some(Duration::from_millis(1))).unwrap();
    writer.roll_into(prepared, 3).unwrap();
    assert_eq!(writer.zeroed_to(), 8 << 20);
    buffer.clear();
    append_record(&mut buffer, 3, START_MS + 1, &[reserve(2), reserve(3)]);
    writer.write(&buffer).unwrap();
    writer.sync().unwrap();
    // The next one, made ahead and not used when the process stopped.
    prepare_segment(&shard, 8 << 20, None).unwrap();

    let segments = list_segments(&shard).unwrap();
    assert_eq!(
        segments.iter().map(|s| s.first_seq).collect::<Vec<_>>(),
        vec![1, 3],
        "the prepared file is renamed to its segment name; the unused one is not a segment"
    );
    assert_eq!(std::fs::metadata(&segments[1].path).unwrap().len(), 8 << 20);
    let recovered = recover_shard(&dir, 0, 1, 0).unwrap();
    assert_eq!(recovered.report.records_replayed, 3);
    assert_eq!(recovered.report.commands_replayed, 4);
    assert!(
        recovered.report.torn_tail.is_none(),
        "zeros after the data are the end"
    );
    assert_eq!(recovered.next_seq, 4);
    assert_eq!(recovered.shard.order_count(), 3);
    assert_eq!(recovered.shard.sku_view(1).unwrap().held, 3);
}

#[test]
fn a_torn_tail_is_truncated_and_everything_before_it_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let clock = Clock::manual(START_MS);
    let (live, max_order) = journal_only(&dir, &clock);
    let segment = last_segment(&dir, 0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let (_, data_end) = frames(&bytes);
    let valid_len = data_end as u64;
    // A partly written record: a frame header promising more than is there.
    let mut torn = BytesMut::new();
    append_record(
        &mut torn,
        999,
        START_MS,
        &[Command::Pay {
            order_id: 1,
            user_id: 1,
        }],
    );
    bytes[data_end..data_end + torn.len() - 3].copy_from_slice(&torn[..torn.len() - 3]);
    std::fs::write(&segment, &bytes).unwrap();

    let verified = tools::verify(&dir).unwrap();
    let torn_report = verified[0]
        .torn
        .as_ref()
        .expect("verify reports the torn tail");
    assert_eq!(torn_report.offset, valid_len);

    let (recovered, reports) = Engine::recover(config(&dir, SyncMode::Sync, &clock, 0)).unwrap();
    let torn = reports[0]
        .torn_tail
        .as_ref()
        .expect("recovery reports the torn tail");
    assert_eq!(torn.path, segment);
    assert_eq!(torn.offset, valid_len);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), valid_len);
    assert_eq!(views(&recovered, max_order), live);
    recovered.shutdown();
}

#[test]
fn a_bad_crc_in_the_last_record_is_a_torn_tail_but_in_the_middle_it_stops_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let clock = Clock::manual(START_MS);
    journal_only(&dir, &clock);
    let segment = list_segments(&shard_dir(&dir, 0)).unwrap()[0].path.clone();
    let original = std::fs::read(&segment).unwrap();
    let (offsets, _) = frames(&original);
    assert!(
        offsets.len() >= 3,
        "need several records in the first segment"
    );

    // A flipped byte inside the second record: corruption in the middle.
    let victim = offsets[1];
    let mut bytes = original.clone();
    bytes[victim + 20] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    let error = match Engine::recover(config(&dir, SyncMode::Sync, &clock, 0)) {
        Err(error) => error,
        Ok(_) => panic!("recovery must refuse a corrupt journal"),
    };
    match &error {
        EngineError::Journal(JournalError::CorruptRecord { path, offset, .. }) => {
            assert_eq!(path, &segment);
            assert_eq!(*offset, victim as u64);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&segment.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("byte offset {victim}")),
        "{message}"
    );
    // The read-only verifier reports the same place; the file is untouched.
    match tools::verify(&dir) {
        Err(JournalError::CorruptRecord { path, offset, .. }) => {
            assert_eq!((path, offset), (segment.clone(), victim as u64));
        }
        other => panic!("verify: {other:?}"),
    }
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);

    // A corrupt length field in the middle is caught too.
    let mut bytes = original.clone();
    bytes[victim + 1] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    assert!(matches!(
        tools::verify(&dir),
        Err(JournalError::CorruptRecord { offset, .. }) if offset == victim as u64
    ));
    std::fs::write(&segment, &original).unwrap();
    tools::verify(&dir).unwrap();
}

#[test]
fn a_data_dir_refuses_another_shard_count_and_a_second_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let clock = Clock::manual(START_MS);
    let engine = Engine::start(config(&dir, SyncMode::Sync, &clock, 0)).unwrap();
    assert!(matches!(
        Engine::start(config(&dir, SyncMode::Sync, &clock, 0)),
        Err(EngineError::Journal(JournalError::Locked { .. }))
    ));
    engine.shutdown();
    drop(engine);
    let mut three = config(&dir, SyncMode::Sync, &clock, 0);
    three.shards = 3;
    match Engine::start(three) {
        Err(EngineError::Journal(JournalError::Layout { reason, .. })) => {
            assert!(reason.contains("3 shards"), "{reason}")
        }
        other => panic!("{:?}", other.err()),
    }
}

struct Recorder(Arc<std::sync::Mutex<Vec<bool>>>);

impl Acknowledge for Recorder {
    fn acknowledge(self) {
        self.0.lock().unwrap().push(true);
    }
    fn refuse(self) {
        self.0.lock().unwrap().push(false);
    }
}

#[test]
fn a_write_error_is_fail_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shard-0");
    std::fs::create_dir_all(&dir).unwrap();
    // /dev/full accepts the open and fails every write with ENOSPC.
    let full = SegmentInfo {
        first_seq: 1,
        path: PathBuf::from("/dev/full"),
    };
    let writer = SegmentWriter::append_to(&dir, &full, 0).unwrap();
    let failure = Arc::new(DurabilityFailure::default());
    let mut handle: JournalHandle<Recorder> = JournalHandle::start(
        JournalThreadSettings {
            shard: 0,
            shards: 1,
            shard_dir: dir.clone(),
            mode: SyncMode::Sync,
            segment_max_bytes: 1 << 20,
            capacity_messages: 8,
        },
        writer,
        failure.clone(),
    )
    .unwrap();
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    for seq in 1..=3 {
        let mut bytes = BytesMut::new();
        append_record(
            &mut bytes,
            seq,
            START_MS,
            &[Command::Restock {
                sku_id: 1,
                delta: 1,
            }],
        );
        handle.send(JournalMessage::Write {
            bytes,
            first_seq: seq,
            replies: Some(Recorder(answers.clone())),
        });
    }
    handle.stop();
    assert_eq!(*answers.lock().unwrap(), vec![false, false, false]);
    let reason = failure.reason().expect("the failure is recorded");
    assert!(reason.contains("/dev/full"), "{reason}");
    assert!(reason.contains("refusing all writes"), "{reason}");
}

/// A snapshot may be durable while the last records it covers never reached the disk (async
/// mode, power loss): a gap made only of covered records is accepted, any other gap is not.
#[test]
fn only_a_gap_covered_by_the_snapshot_is_accepted() {
    let build = |records: &[u64]| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let lock = open_data_dir(&dir, 1).unwrap();
        let shard = shard_dir(&dir, 0);
        let mut writer = SegmentWriter::create(&shard, 1).unwrap();
        let mut bytes = BytesMut::new();
        for &seq in records {
            let command = if seq == 1 {
                Command::UpsertSku(SkuConfig::simple(1, 100, 5, 1_000))
            } else {
                Command::Restock {
                    sku_id: 1,
                    delta: 1,
                }
            };
            append_record(&mut bytes, seq, START_MS + seq, &[command]);
        }
        writer.write(&bytes).unwrap();
        writer.sync().unwrap();
        // The state after records 1..=5: the SKU with 100 + 4 units.
        let mut state = flashsale_engine::Shard::new();
        let mut outcomes = Vec::new();
        state.apply(
            START_MS + 5,
            &[Command::UpsertSku(SkuConfig::simple(1, 104, 5, 1_000))],
            &mut outcomes,
        );
        let mut encoded = Vec::new();
        state.encode_snapshot(&mut encoded);
        flashsale_engine::journal::snapshot::write_snapshot(&shard, 0, 1, 5, &encoded).unwrap();
        drop(lock);
        (tmp, dir)
    };
    let (_tmp, dir) = build(&[1, 2, 3, 6, 7]);
    let recovered = recover_shard(&dir, 0, 1, 0).unwrap();
    assert_eq!(recovered.report.records_replayed, 2);
    assert_eq!(recovered.next_seq, 8);
    assert_eq!(recovered.shard.sku_view(1).unwrap().config.stock_total, 106);
    tools::verify(&dir).unwrap();

    let (_tmp, dir) = build(&[1, 2, 3, 7]);
    match recover_shard(&dir, 0, 1, 0) {
        Err(JournalError::SequenceGap {
            expected, found, ..
        }) => assert_eq!((expected, found), (4, 7)),
        other => panic!("{:?}", other.err()),
    }
}
