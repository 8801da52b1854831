//! The open-loop driver. A pacer thread wakes every tick, takes every scheduled request (and
//! every due follow-up) whose intended time has passed, and submits them as one batch; it never
//! waits for answers, so a slow target cannot slow the offered load (no coordinated omission).
//! A recorder thread takes the answers, records corrected and service latency, keeps the
//! ledger, and feeds pay / cancel / bot-retry follow-ups back to the pacer. Requests sent later
//! than the threshold are counted, follow-ups that fall after the end are counted, requests
//! never answered are counted: nothing is dropped silently. It must not format reports.
//!
//! What it sends comes from any [`Arrivals`] source: the generated [`Schedule`] (`run`) or a
//! trace (`replay`); the funnel's follow-ups are optional (a captured trace already holds them).

use crate::health::{GeneratorHealth, LAG_BUDGET_US};
use crate::recorder::{self, Live, Recorder, Recording};
use crate::schedule::{Batch, Decision, FollowUps, Meta, Op, Origin, Req, Schedule};
use crate::target::{Completion, Target};
use crate::verify::Ledger;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use flashsale_engine::trace::OrderHash;
use flashsale_engine::{OrderStatus, Outcome, Reject};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The open-loop arrivals the pacer sends: every request whose intended time is before
/// `until_ns`, in order, at most until `out` holds `max_len`.
pub trait Arrivals {
    fn fill_until_at_most(&mut self, until_ns: u64, out: &mut Batch, max_len: usize);
    /// True once every request has been handed out.
    fn is_done(&self) -> bool;
}

impl Arrivals for Schedule {
    fn fill_until_at_most(&mut self, until_ns: u64, out: &mut Batch, max_len: usize) {
        Schedule::fill_until_at_most(self, until_ns, out, max_len);
    }
    fn is_done(&self) -> bool {
        Schedule::is_done(self)
    }
}

/// Stops a run early when it returns true; asked about every 50 ms with the live figures (the
/// sweep uses it to stop a step whose latency is far past the SLO).
#[derive(Clone)]
pub struct AbortWhen(pub Arc<dyn Fn(&Live) -> bool + Send + Sync>);

impl std::fmt::Debug for AbortWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AbortWhen(..)")
    }
}

/// How the driver paces and ends a run.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The pacer's period: everything due is sent once per tick.
    pub tick_us: u64,
    /// A request sent more than this after its intended time counts as late.
    pub late_threshold_us: u64,
    /// After the schedule ends, how long to wait for outstanding answers.
    pub drain_timeout_ms: u64,
    pub interval_ms: u64,
    /// Keep the ledger of held and paid units (off for targets without state).
    pub track_ledger: bool,
    /// Hash the order requests taken from the arrivals source as they are sent
    /// (`SendStats::sent_order_hash`; the trace's hash function).
    pub hash_sent: bool,
    pub abort: Option<AbortWhen>,
    /// Set from outside (SIGINT / SIGTERM): the pacer stops sending, drains briefly and the
    /// run returns normally with `SendStats::interrupted`.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tick_us: 200,
            late_threshold_us: 2_000,
            drain_timeout_ms: 10_000,
            interval_ms: 1_000,
            track_ledger: true,
            hash_sent: false,
            abort: None,
            stop: None,
        }
    }
}

/// How sending went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SendStats {
    /// Requests whose intended time was within the run (scheduled + follow-ups sent).
    pub offered: u64,
    pub sent: u64,
    /// Actually sent (by the target: after any wait for a connection) more than
    /// `late_threshold_us` after their intended time. Counted for answered requests.
    pub sent_late: u64,
    pub late_threshold_us: u64,
    pub max_send_lag_us: f64,
    pub answered: u64,
    /// Sent but not answered within the drain timeout.
    pub unanswered: u64,
    pub follow_ups_sent: u64,
    /// Pays / cancels / bot retries whose due time fell after the end of the schedule.
    pub follow_ups_after_end: u64,
    /// Follow-ups that were due within the run but still queued when it ended.
    pub follow_ups_unsent: u64,
    pub abandoned_holds: u64,
    pub bot_retries: u64,
    pub schedule_duration_s: f64,
    pub elapsed_s: f64,
    /// Actual send time minus intended time of answered requests, µs.
    pub send_lag_p50_us: f64,
    pub send_lag_p99_us: f64,
    /// The run was stopped early by its abort condition.
    pub aborted: bool,
    /// The run was stopped early by `DriverConfig::stop`.
    pub interrupted: bool,
    /// FNV-1a 64 (hex) of the order requests sent from the arrivals source, in send order, when
    /// asked for (`DriverConfig::hash_sent`); follow-ups generated by the funnel are excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_order_hash: Option<String>,
}

/// Everything a run produced.
pub struct RunOutput {
    pub recording: Recording,
    pub send: SendStats,
    pub ledger: Ledger,
    pub health: GeneratorHealth,
}

struct Completed {
    metas: Vec<Meta>,
    completion: Completion,
}

struct Due {
    due_ns: u64,
    seq: u64,
    meta: Meta,
}

/// Largest batch handed to a target in one call, so a pacer that fell behind does not build
/// one enormous allocation.
const MAX_SUBMIT: usize = 16 * 1024;

/// How long an interrupted run waits for outstanding answers at most.
const INTERRUPTED_DRAIN_MS: u64 = 2_000;

/// Follow-ups waiting for their due time, in one bucket per millisecond: O(1) to add, and the
/// current bucket is sorted once so each tick takes exactly what is due (a binary heap of
/// millions of pending pays was the generator's bottleneck).
#[derive(Default)]
struct Wheel {
    /// Pushed after their millisecond was already passed: sent on the next tick, unsorted.
    overdue: Vec<Due>,
    base_ms: u64,
    buckets: VecDeque<Vec<Due>>,
    cursor: usize,
    front_sorted: bool,
    len: usize,
    /// Emptied buckets kept for reuse: growing fresh vectors every millisecond made the kernel
    /// zero new pages faster than the generator could fill them.
    spare: Vec<Vec<Due>>,
}

impl Wheel {
    fn push(&mut self, due: Due) {
        let ms = due.due_ns / 1_000_000;
        self.len += 1;
        if ms < self.base_ms {
            self.overdue.push(due);
            return;
        }
        let index = (ms - self.base_ms) as usize;
        if index == 0 {
            self.front_sorted = false;
        }
        while self.buckets.len() <= index {
            let bucket = self.spare.pop().unwrap_or_default();
            self.buckets.push_back(bucket);
        }
        self.buckets[index].push(due);
    }

    /// Moves what is due at or before `now_ns` into `out`, until `out` holds `max_len`;
    /// returns how many it moved.
    fn pop_due(&mut self, now_ns: u64, out: &mut Batch, max_len: usize) -> u64 {
        let room = max_len.saturating_sub(out.len()).min(self.overdue.len());
        let mut taken = room as u64;
        out.extend(self.overdue.drain(..room).map(|d| d.meta));
        if !self.overdue.is_empty() {
            self.len -= taken as usize;
            return taken;
        }
        while let Some(front) = self.buckets.front_mut() {
            if self.base_ms * 1_000_000 > now_ns {
                break;
            }
            if !self.front_sorted {
                front[self.cursor..].sort_unstable_by_key(|d| (d.due_ns, d.seq));
                self.front_sorted = true;
            }
            while let Some(d) = front.get(self.cursor) {
                if d.due_ns > now_ns || out.len() >= max_len {
                    break;
                }
                out.push(d.meta);
                self.cursor += 1;
                taken += 1;
            }
            if self.cursor < front.len() || (self.base_ms + 1) * 1_000_000 > now_ns {
                break;
            }
            if let Some(mut bucket) = self.buckets.pop_front() {
                bucket.clear();
                if self.spare.len() < 4096 {
                    self.spare.push(bucket);
                }
            }
            self.base_ms += 1;
            self.cursor = 0;
            self.front_sorted = false;
        }
        self.len -= taken as usize;
        taken
    }
}

/// Shared counters between the pacer and the recorder.
struct Shared {
    start: Instant,
    end_ns: u64,
    answered: AtomicU64,
    stop: AtomicBool,
}

/// Runs the whole schedule against `target` and returns what was recorded.
#[allow(clippy::too_many_arguments)]
pub fn run<A: Arrivals + ?Sized>(
    target: Arc<dyn Target>,
    schedule: &mut A,
    follow_ups: Option<FollowUps>,
    ledger: Ledger,
    schedule_duration_s: f64,
    config: &DriverConfig,
    live: Arc<Live>,
    hlog: Option<crate::report::hlog::HlogWriter>,
) -> RunOutput {
    let seconds = schedule_duration_s.ceil() as usize + 2;
    let offered_per_s: Arc<Vec<AtomicU64>> =
        Arc::new((0..seconds).map(|_| AtomicU64::new(0)).collect());
    let end_ns = (schedule_duration_s * 1e9) as u64;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        end_ns,
        answered: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Completed>();
    let (follow_tx, follow_rx) = crossbeam_channel::unbounded::<Vec<Due>>();
    let recorder = Recorder::new(
        config.interval_ms * 1_000_000,
        hlog,
        live.clone(),
        offered_per_s.clone(),
    );
    let recorder_thread = {
        let shared = shared.clone();
        let track = config.track_ledger;
        let late_ns = config.late_threshold_us * 1000;
        std::thread::Builder::new()
            .name("loadgen-recorder".into())
            .spawn(move || {
                record_loop(
                    recorder, ledger, track, late_ns, follow_ups, &shared, done_rx, follow_tx,
                )
            })
            .expect("spawning the recorder thread")
    };

    let mut send = SendStats {
        late_threshold_us: config.late_threshold_us,
        schedule_duration_s,
        ..SendStats::default()
    };
    let tick = Duration::from_micros(config.tick_us.max(1));
    let max_batch = target.max_batch().clamp(1, MAX_SUBMIT);
    let mut wheel = Wheel::default();
    let mut batch = Batch::with_capacity(8192);
    let mut next_tick = shared.start;
    let mut hash = config.hash_sent.then(OrderHash::default);
    let mut next_abort_check_ns = 0u64;
    loop {
        let now_ns = shared.start.elapsed().as_nanos() as u64;
        if config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            send.interrupted = true;
            break;
        }
        if let Some(abort) = &config.abort
            && now_ns >= next_abort_check_ns
        {
            next_abort_check_ns = now_ns + 50_000_000;
            if (abort.0)(&live) {
                send.aborted = true;
                break;
            }
        }
        while let Ok(dues) = follow_rx.try_recv() {
            dues.into_iter().for_each(|d| wheel.push(d));
        }
        // Everything due goes out now, in submits of at most MAX_SUBMIT: a pacer that fell
        // behind must not build one giant batch (its memory would slow it down further).
        loop {
            schedule.fill_until_at_most(now_ns.saturating_add(1), &mut batch, MAX_SUBMIT);
            if let Some(h) = &mut hash {
                batch.iter().for_each(|m| h.add(&m.req.command()));
            }
            send.follow_ups_sent += wheel.pop_due(now_ns, &mut batch, MAX_SUBMIT);
            if batch.is_empty() {
                break;
            }
            let full = batch.len() >= MAX_SUBMIT;
            let mut second = usize::MAX;
            let mut in_second = 0u64;
            for m in &batch {
                let s = (m.intended_ns / 1_000_000_000) as usize;
                if s != second {
                    if let Some(c) = offered_per_s.get(second) {
                        c.fetch_add(in_second, Ordering::Relaxed);
                    }
                    second = s;
                    in_second = 0;
                }
                in_second += 1;
            }
            if let Some(c) = offered_per_s.get(second) {
                c.fetch_add(in_second, Ordering::Relaxed);
            }
            send.sent += batch.len() as u64;
            submit(&*target, &mut batch, max_batch, &done_tx);
            if !full {
                break;
            }
        }
        if now_ns >= end_ns && schedule.is_done() {
            break;
        }
        next_tick += tick;
        let now = Instant::now();
        if next_tick > now {
            std::thread::sleep(next_tick - now);
        } else if now - next_tick > tick * 4 {
            // Far behind: do not try to catch up tick by tick.
            next_tick = now;
        }
    }
    send.offered = send.sent;
    send.sent_order_hash = hash.map(|h| format!("{:016x}", h.value()));
    drop(done_tx);

    // Interrupted: drain briefly, whatever the configured timeout.
    let drain_ms = if send.interrupted {
        config.drain_timeout_ms.min(INTERRUPTED_DRAIN_MS)
    } else {
        config.drain_timeout_ms
    };
    let drain_deadline = Instant::now() + Duration::from_millis(drain_ms);
    while shared.answered.load(Ordering::Acquire) < send.sent && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    shared.stop.store(true, Ordering::Release);
    let (recording, ledger, funnel) = recorder_thread.join().expect("recorder thread panicked");
    send.answered = shared.answered.load(Ordering::Acquire);
    send.unanswered = send.sent.saturating_sub(send.answered);
    send.follow_ups_after_end = funnel.after_end;
    send.abandoned_holds = funnel.abandoned;
    send.bot_retries = funnel.bot_retries;
    send.sent_late = funnel.sent_late;
    send.max_send_lag_us = funnel.max_send_lag_ns as f64 / 1000.0;
    send.send_lag_p50_us = funnel.lag.value_at_quantile(0.5) as f64 / 1000.0;
    send.send_lag_p99_us = funnel.lag.value_at_quantile(0.99) as f64 / 1000.0;
    while let Ok(dues) = follow_rx.try_recv() {
        dues.into_iter().for_each(|d| wheel.push(d));
    }
    send.follow_ups_unsent = wheel.len as u64;
    send.elapsed_s = shared.start.elapsed().as_secs_f64();
    let health = GeneratorHealth {
        send_lag_p50_us: send.send_lag_p50_us,
        send_lag_p99_us: send.send_lag_p99_us,
        send_lag_p999_us: funnel.lag.value_at_quantile(0.999) as f64 / 1000.0,
        send_lag_max_us: send.max_send_lag_us,
        lag_budget_us: LAG_BUDGET_US,
        sent_over_lag_budget: funnel.lag.count_between(LAG_BUDGET_US * 1000 + 1, u64::MAX),
        sent: funnel.lag.len(),
        wall_s: send.elapsed_s,
        ..GeneratorHealth::default()
    };
    RunOutput {
        recording,
        send,
        ledger,
        health,
    }
}

fn submit(target: &dyn Target, batch: &mut Batch, max_batch: usize, done_tx: &Sender<Completed>) {
    let send_one = |metas: Vec<Meta>| {
        let tx = done_tx.clone();
        let commands = metas.iter().map(|m| m.req.command()).collect();
        target.submit(
            commands,
            Box::new(move |completion| {
                // An answer after the recorder stopped (past the drain timeout) is counted as
                // unanswered.
                let _ = tx.send(Completed { metas, completion });
            }),
        );
    };
    if batch.len() <= max_batch {
        let n = batch.len();
        send_one(std::mem::replace(batch, Vec::with_capacity(n)));
    } else {
        for chunk in batch.chunks(max_batch) {
            send_one(chunk.to_vec());
        }
        batch.clear();
    }
}

struct FunnelCounts {
    lag: hdrhistogram::Histogram<u64>,
    sent_late: u64,
    max_send_lag_ns: u64,
    after_end: u64,
    abandoned: u64,
    bot_retries: u64,
}

#[allow(clippy::too_many_arguments)]
fn record_loop(
    mut recorder: Recorder,
    mut ledger: Ledger,
    track_ledger: bool,
    late_ns: u64,
    follow_ups: Option<FollowUps>,
    shared: &Shared,
    done_rx: Receiver<Completed>,
    follow_tx: Sender<Vec<Due>>,
) -> (Recording, Ledger, FunnelCounts) {
    let mut funnel = FunnelCounts {
        lag: recorder::new_histogram(),
        sent_late: 0,
        max_send_lag_ns: 0,
        after_end: 0,
        abandoned: 0,
        bot_retries: 0,
    };
    let mut seq = 0u64;
    loop {
        match done_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(done) => {
                let n = done.metas.len() as u64;
                process(
                    &mut recorder,
                    &mut ledger,
                    track_ledger,
                    late_ns,
                    follow_ups.as_ref(),
                    shared,
                    done,
                    &follow_tx,
                    &mut funnel,
                    &mut seq,
                );
                shared.answered.fetch_add(n, Ordering::AcqRel);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if shared.stop.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        recorder.advance_to(shared.start.elapsed().as_nanos() as u64);
        if shared.stop.load(Ordering::Acquire) && done_rx.is_empty() {
            break;
        }
    }
    let recording = recorder.finish(shared.start.elapsed().as_nanos() as u64);
    (recording, ledger, funnel)
}

#[allow(clippy::too_many_arguments)]
fn process(
    recorder: &mut Recorder,
    ledger: &mut Ledger,
    track_ledger: bool,
    late_ns: u64,
    follow_ups: Option<&FollowUps>,
    shared: &Shared,
    done: Completed,
    follow_tx: &Sender<Vec<Due>>,
    funnel: &mut FunnelCounts,
    seq: &mut u64,
) {
    let start = shared.start;
    let done_ns = done
        .completion
        .done_at
        .saturating_duration_since(start)
        .as_nanos() as u64;
    let sent_ns = done
        .completion
        .sent_at
        .saturating_duration_since(start)
        .as_nanos() as u64;
    let service_ns = done_ns.saturating_sub(sent_ns);
    for meta in &done.metas {
        let lag = sent_ns.saturating_sub(meta.intended_ns);
        if lag > late_ns {
            funnel.sent_late += 1;
        }
        funnel.max_send_lag_ns = funnel.max_send_lag_ns.max(lag);
        funnel.lag.saturating_record(lag.max(1));
    }
    let mut dues: Vec<Due> = Vec::new();
    let mut schedule_follow_up = |due_ns: u64, origin: Origin, attempt: u8, req: Req| {
        if due_ns >= shared.end_ns {
            funnel.after_end += 1;
            return;
        }
        *seq += 1;
        dues.push(Due {
            due_ns,
            seq: *seq,
            meta: Meta {
                intended_ns: due_ns,
                origin,
                attempt,
                req,
            },
        });
    };
    match done.completion.result {
        Ok(outcomes) => {
            let mut failed = done.completion.failed.iter().peekable();
            for (i, (meta, outcome)) in done.metas.iter().zip(&outcomes).enumerate() {
                let req = meta.req;
                if let Some(&(_, failure)) = failed.next_if(|(at, _)| *at == i) {
                    let corrected_ns = done_ns.saturating_sub(meta.intended_ns);
                    let label = recorder::failure_label(failure);
                    recorder.record(req.op as usize, label, corrected_ns, service_ns);
                    continue;
                }
                let corrected_ns = done_ns.saturating_sub(meta.intended_ns);
                recorder.record(
                    req.op as usize,
                    recorder::outcome_label(outcome),
                    corrected_ns,
                    service_ns,
                );
                match (req.op, outcome) {
                    (Op::Reserve, Outcome::Created(view)) => {
                        if track_ledger {
                            ledger.created(view);
                        }
                        let next = |op| Req {
                            op,
                            order_id: view.order_id,
                            user_id: view.user_id,
                            ..req
                        };
                        let decision = follow_ups.map(|f| f.decide(view.order_id));
                        match decision {
                            None => {}
                            Some(Decision::Pay { delay_ns }) => schedule_follow_up(
                                done_ns + delay_ns,
                                Origin::FollowUp,
                                0,
                                next(Op::Pay),
                            ),
                            Some(Decision::Cancel { delay_ns }) => schedule_follow_up(
                                done_ns + delay_ns,
                                Origin::FollowUp,
                                0,
                                next(Op::Cancel),
                            ),
                            Some(Decision::Abandon) => funnel.abandoned += 1,
                        }
                    }
                    (Op::Reserve, Outcome::Rejected(Reject::SoldOut)) => {
                        if let Some(delay_ns) =
                            follow_ups.and_then(|f| f.bot_retry(req.user_id, meta.attempt))
                        {
                            funnel.bot_retries += 1;
                            schedule_follow_up(
                                done_ns + delay_ns,
                                Origin::BotRetry,
                                meta.attempt + 1,
                                req,
                            );
                        }
                    }
                    (Op::Pay | Op::Cancel, _) if track_ledger => match outcome {
                        Outcome::Order(v) if v.status == OrderStatus::Paid => ledger.paid(v),
                        Outcome::Order(v)
                            if matches!(
                                v.status,
                                OrderStatus::Cancelled | OrderStatus::Expired
                            ) =>
                        {
                            ledger.released(v.order_id)
                        }
                        Outcome::Rejected(Reject::Expired | Reject::Cancelled) => {
                            ledger.released(req.order_id)
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        Err(failure) => {
            let label = recorder::failure_label(failure);
            for meta in &done.metas {
                let corrected_ns = done_ns.saturating_sub(meta.intended_ns);
                recorder.record(meta.req.op as usize, label, corrected_ns, service_ns);
            }
        }
    }
    if !dues.is_empty() {
        let _ = follow_tx.send(dues);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(due_ns: u64, seq: u64) -> Due {
        Due {
            due_ns,
            seq,
            meta: Meta {
                intended_ns: due_ns,
                origin: Origin::FollowUp,
                attempt: 0,
                req: Req {
                    op: Op::Pay,
                    qty: 0,
                    sku_id: 0,
                    order_id: seq,
                    user_id: 0,
                },
            },
        }
    }

    impl Wheel {
        fn pop_due_all(&mut self, now_ns: u64, out: &mut Batch) -> u64 {
            self.pop_due(now_ns, out, usize::MAX)
        }
    }

    #[test]
    fn wheel_stops_at_the_limit_and_resumes() {
        let mut w = Wheel::default();
        for s in 0..10 {
            w.push(due(1_000_000 + s, s));
        }
        let mut out = Batch::default();
        assert_eq!(w.pop_due(2_000_000, &mut out, 4), 4);
        assert_eq!(w.pop_due(2_000_000, &mut out, 4), 0, "out is full");
        out.clear();
        assert_eq!(w.pop_due(2_000_000, &mut out, 100), 6);
        assert_eq!(w.len, 0);
    }

    #[test]
    fn wheel_releases_exactly_what_is_due_in_order() {
        let mut w = Wheel::default();
        for (t, s) in [
            (5_500_000, 1),
            (1_200_000, 2),
            (1_100_000, 3),
            (9_000_000, 4),
            (1_900_000, 5),
        ] {
            w.push(due(t, s));
        }
        let mut out = Batch::default();
        assert_eq!(w.pop_due_all(1_000_000, &mut out), 0);
        assert_eq!(w.pop_due_all(1_150_000, &mut out), 1);
        // A late arrival into the current bucket is still released in time.
        w.push(due(1_120_000, 6));
        assert_eq!(w.pop_due_all(1_500_000, &mut out), 2);
        assert_eq!(w.pop_due_all(6_000_000, &mut out), 2);
        let times: Vec<u64> = out.iter().map(|m| m.intended_ns).collect();
        assert_eq!(
            times,
            [1_100_000, 1_120_000, 1_200_000, 1_900_000, 5_500_000]
        );
        assert_eq!(w.len, 1);
        // Overdue pushes (before the wheel's base) go out on the next call.
        w.push(due(10, 7));
        assert_eq!(w.pop_due_all(6_000_001, &mut out), 1);
        assert_eq!(w.pop_due_all(u64::MAX / 2, &mut out), 1);
        assert_eq!(w.len, 0);
    }
}
