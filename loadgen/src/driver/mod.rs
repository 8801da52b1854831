//! The open-loop driver. A pacer thread wakes every tick, takes every scheduled request (and
//! every due follow-up) whose intended time has passed, and submits them in batches; it never
//! waits for answers, so a slow target cannot slow the offered load (no coordinated omission).
//! A recorder thread takes the answers, records corrected and service latency, keeps the
//! ledger, and hands pay / cancel / bot-retry follow-ups back to the pacer. Requests sent later
//! than the threshold are counted, follow-ups that fall after the end are counted, requests
//! never answered are counted: nothing is dropped silently. It must not format reports.
//!
//! What it sends comes from any [`Arrivals`] source: the generated [`Schedule`] (`run`) or a
//! trace (`replay`); the funnel's follow-ups are optional (a captured trace already holds them).
//!
//! The pacer keeps the schedule to tens of microseconds, so its loop allocates nothing and
//! faults no page in once the run is going:
//! - a batch travels in an [`Exchange`] from a pool: the pacer takes one, the target fills its
//!   answer, the recorder records it, writes the follow-ups it caused into it and sends it back,
//!   and the pacer moves those into its wheel and reuses the exchange; every buffer is sized
//!   (and written once) before the clock starts;
//! - the follow-up [`Wheel`] keeps its entries in one slab sized from the scenario's bound on
//!   follow-ups waiting at once (`FollowUps::pending_capacity`);
//! - the pacer sleeps until `spin_us` before each tick and spins the rest, with a 1 ns timer
//!   slack, and it and the recorder are pinned where [`Placement`] says.
//!
//! While it runs it measures its own noise floor ([`GeneratorHealth`]): the send lag of every
//! request as the pacer hands it to the target, requests over the lag budget, the recorder's
//! backlog, its threads' CPU, and the process's involuntary context switches and minor faults.

pub mod schedule;
mod wheel;

use crate::driver::schedule::{Batch, Decision, FollowUps, Meta, Op, Origin, Req, Schedule};
pub use crate::health::GeneratorHealth;
use crate::health::Usage;
use crate::placement::{self, Placement};
use crate::recorder::{self, Live, Recorder, Recording};
use crate::targets::{Answers, Exchange, Target};
use crate::verify::Ledger;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use flashsale_engine::trace::OrderHash;
use flashsale_engine::{OrderStatus, Outcome, Reject};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wheel::Wheel;

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
    /// The pacer's period: everything due is sent once per tick, so a request waits up to one
    /// tick for its batch (100 µs keeps the send lag's p99.9 under 200 µs).
    pub tick_us: u64,
    /// The last part of each wait before a tick that the pacer spins instead of sleeping: a
    /// sleep can overshoot by tens of µs (wake-up latency), a spin cannot. Used only when the
    /// pacer does not have a CPU of its own (see `spin_when_pinned`).
    pub spin_us: u64,
    /// A pacer pinned to a CPU of its own (`Placement::pacer_alone`) spins the whole wait instead
    /// of sleeping, unless the target is remote (its server may need that CPU): in a VM a
    /// sleeping vCPU halts, and waking it again costs the hypervisor's latency (measured on a
    /// 2-vCPU VM: send lag p99.9 ~1 ms spinning against ~11 ms sleeping; docs/benchmarks.md).
    pub spin_when_pinned: bool,
    /// A request sent more than this after its intended time counts as late.
    pub late_threshold_us: u64,
    /// [`GeneratorHealth::sent_over_lag_budget`] counts requests sent later than this.
    pub lag_budget_us: u64,
    /// After the schedule ends, how long to wait for outstanding answers.
    pub drain_timeout_ms: u64,
    pub interval_ms: u64,
    /// Keep the ledger of held and paid units (off for targets without state).
    pub track_ledger: bool,
    /// Hash the order requests taken from the arrivals source as they are sent
    /// (`SendStats::sent_order_hash`; the trace's hash function).
    pub hash_sent: bool,
    pub abort: Option<AbortWhen>,
    /// Set from outside (SIGINT / SIGTERM) to stop sending: the run drains as at the end of the
    /// schedule and returns normally with `SendStats::interrupted`.
    pub stop: Option<Arc<AtomicBool>>,
    /// Pin the pacer and the recorder where [`Placement::for_this_machine`] says.
    pub pin_threads: bool,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tick_us: 100,
            spin_us: 50,
            spin_when_pinned: true,
            late_threshold_us: 2_000,
            lag_budget_us: crate::health::LAG_BUDGET_US,
            drain_timeout_ms: 10_000,
            interval_ms: 1_000,
            track_ledger: true,
            hash_sent: false,
            abort: None,
            stop: None,
            pin_threads: true,
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
    /// The run was stopped early from outside (`DriverConfig::stop`).
    pub interrupted: bool,
    /// FNV-1a 64 (hex) of the order requests sent from the arrivals source, in send order, when
    /// asked for (`DriverConfig::hash_sent`); follow-ups generated by the funnel are excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_order_hash: Option<String>,
    /// The pacer thread's own minor page faults and context switches during the run (getrusage
    /// RUSAGE_THREAD): zero faults means its loop touched no fresh memory.
    pub pacer_minor_faults: u64,
    pub pacer_voluntary_context_switches: u64,
    pub pacer_involuntary_context_switches: u64,
    /// Exchanges the pacer had to allocate because the pool was empty (the pool's first ones
    /// are allocated before the clock starts and not counted).
    pub exchanges_allocated: u64,
    /// Times the follow-up store outgrew its up-front size (each one a copy on the pacer).
    pub follow_up_store_grown: u64,
    /// CPUs the pacer and the recorder were pinned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacer_cpu: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorder_cpu: Option<usize>,
}

/// Everything a run produced.
pub struct RunOutput {
    pub recording: Recording,
    pub send: SendStats,
    pub ledger: Ledger,
    pub health: GeneratorHealth,
}

/// Requests per exchange at most: a pacer that fell behind sends several exchanges rather than
/// one enormous batch, and every exchange's buffers are sized for this once. One tick at the
/// double11 peak (~580k requests/s) holds ~60 requests, at 1M/s 100.
pub(super) const EXCHANGE_CAPACITY: usize = 256;
/// Exchanges kept for reuse, and the bounded queues' length (answers, returns).
const POOL_CAPACITY: usize = 4096;
/// Requests the pool's exchanges can carry at once, allocated (and written) before the clock
/// starts: in flight in the target plus waiting for the recorder. An in-process engine with a
/// recorder 0.4 s behind at the double11 peak holds ~1,600 exchanges of a tick each; the pacer
/// allocates more only past this (`SendStats::exchanges_allocated`).
const POOL_REQUESTS: usize = 2048 * EXCHANGE_CAPACITY;

/// How long the recorder sleeps when it finds nothing to record. An answer waits at most this
/// long to be recorded (the target stamped its latency, so this adds nothing to it); the
/// follow-ups it causes are due tens of milliseconds later at the earliest.
const RECORDER_POLL: Duration = Duration::from_micros(200);

/// How long an interrupted run waits for outstanding answers at most.
const INTERRUPTED_DRAIN_MS: u64 = 2_000;

/// Exchanges waiting for reuse on the pacer, and the way the recorder sends them back.
struct Pool {
    spare: Vec<Exchange>,
    returns: Receiver<Exchange>,
    returns_overflow: Receiver<Exchange>,
    capacity: usize,
    allocated: u64,
}

impl Pool {
    fn new(
        exchanges: usize,
        capacity: usize,
        returns: Receiver<Exchange>,
        returns_overflow: Receiver<Exchange>,
    ) -> Pool {
        let mut spare = Vec::with_capacity(POOL_CAPACITY);
        spare.extend((0..exchanges).map(|_| Exchange::with_capacity(capacity)));
        Pool {
            spare,
            returns,
            returns_overflow,
            capacity,
            allocated: 0,
        }
    }

    /// Takes back every exchange the recorder returned, its follow-ups into `wheel`.
    fn take_returns(&mut self, wheel: &mut Wheel) {
        while let Ok(exchange) = self
            .returns
            .try_recv()
            .or_else(|_| self.returns_overflow.try_recv())
        {
            self.put_back(exchange, wheel);
        }
    }

    fn put_back(&mut self, mut exchange: Exchange, wheel: &mut Wheel) {
        exchange
            .follow_ups
            .drain(..)
            .for_each(|meta| wheel.push(meta));
        exchange.clear();
        if self.spare.len() < self.spare.capacity() {
            self.spare.push(exchange);
        }
    }

    fn take(&mut self) -> Exchange {
        self.spare.pop().unwrap_or_else(|| {
            self.allocated += 1;
            Exchange::with_capacity(self.capacity)
        })
    }
}

/// What the pacer measures of itself: the send lag of every request it hands to the target.
struct LagMeter {
    lag: Histogram<u64>,
    budget_ns: u64,
    over_budget: u64,
    /// The largest lag so far and the run time it was sent at.
    max_ns: u64,
    max_at_ns: u64,
}

impl LagMeter {
    fn record(&mut self, metas: &[Meta], send_ns: u64) {
        for meta in metas {
            let lag_ns = send_ns.saturating_sub(meta.intended_ns);
            self.over_budget += u64::from(lag_ns > self.budget_ns);
            if lag_ns > self.max_ns {
                self.max_ns = lag_ns;
                self.max_at_ns = send_ns;
            }
            self.lag.saturating_record(lag_ns.max(1));
        }
    }
}

/// Shared counters between the pacer and the recorder.
struct Shared {
    start: Instant,
    end_ns: u64,
    answered: AtomicU64,
    /// Requests handed to `Answers` so far (the recorder's backlog is this minus `answered`).
    delivered: Arc<AtomicU64>,
    stop: AtomicBool,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
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
    sinks: Option<recorder::Sinks>,
) -> RunOutput {
    let placement = if config.pin_threads {
        Placement::for_this_machine(target.runs_in_process())
    } else {
        Placement::for_cpus(&[], target.runs_in_process())
    };
    let restore_affinity = placement
        .pacer_cpu
        .and_then(|_| placement::current_affinity());
    let pacer_cpu = placement
        .pacer_cpu
        .filter(|&cpu| placement::pin_current_thread(cpu).is_ok());
    let previous_slack = timer_slack::set_ns(1);

    let seconds = schedule_duration_s.ceil() as usize + 2;
    let offered_per_s: Arc<Vec<AtomicU64>> = Arc::new(
        (0..recorder::offered_slot(seconds, 0))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let end_ns = (schedule_duration_s * 1e9) as u64;
    let capacity = target.max_batch().clamp(1, EXCHANGE_CAPACITY);
    let (answers_tx, answers_rx) = crossbeam_channel::bounded::<Exchange>(POOL_CAPACITY);
    let (answers_overflow_tx, answers_overflow_rx) = crossbeam_channel::unbounded::<Exchange>();
    let (returns_tx, returns_rx) = crossbeam_channel::bounded::<Exchange>(POOL_CAPACITY);
    let (returns_overflow_tx, returns_overflow_rx) = crossbeam_channel::unbounded::<Exchange>();
    let mut pool = Pool::new(
        (POOL_REQUESTS / capacity).clamp(64, POOL_CAPACITY),
        capacity,
        returns_rx,
        returns_overflow_rx,
    );
    let mut wheel = Wheel::new(
        (schedule_duration_s * 1000.0).ceil() as u64,
        follow_ups.as_ref().map_or(0, FollowUps::pending_capacity),
    );
    let mut meter = LagMeter {
        lag: recorder::new_histogram(),
        budget_ns: config.lag_budget_us.saturating_mul(1000),
        over_budget: 0,
        max_ns: 0,
        max_at_ns: 0,
    };
    let recorder = Recorder::new(
        config.interval_ms * 1_000_000,
        sinks.unwrap_or_default(),
        live.clone(),
        offered_per_s.clone(),
    );
    let delivered = Arc::new(AtomicU64::new(0));
    let answers = Answers::new(answers_tx, answers_overflow_tx, delivered.clone());
    let process_before = Usage::of_this_process();
    let pacer_before = Usage::of_this_thread();
    let shared = Arc::new(Shared {
        start: Instant::now(),
        end_ns,
        answered: AtomicU64::new(0),
        delivered,
        stop: AtomicBool::new(false),
    });
    let recorder_thread = {
        let shared = shared.clone();
        let track = config.track_ledger;
        let late_ns = config.late_threshold_us * 1000;
        let recorder_cpu = placement.recorder_cpu;
        let recorder_lowered = placement.recorder_lowered;
        let lanes = Lanes {
            answers: answers_rx,
            answers_overflow: answers_overflow_rx,
            returns: returns_tx,
            returns_overflow: returns_overflow_tx,
        };
        std::thread::Builder::new()
            .name("loadgen-recorder".into())
            .spawn(move || {
                let pinned = recorder_cpu.filter(|&cpu| placement::pin_current_thread(cpu).is_ok());
                if pinned.is_some() && recorder_lowered {
                    // Without it the engine's shard would wait out the recorder's time slices.
                    if let Err(e) = placement::lower_current_thread_priority() {
                        tracing::warn!("recorder left at normal priority: {e}");
                    }
                }
                record_loop(
                    recorder, ledger, track, late_ns, follow_ups, &shared, lanes, pinned,
                )
            })
            .expect("spawning the recorder thread")
    };

    let mut send = SendStats {
        late_threshold_us: config.late_threshold_us,
        schedule_duration_s,
        pacer_cpu,
        ..SendStats::default()
    };
    let tick_ns = config.tick_us.max(1) * 1000;
    let spin_ns = if pacer_cpu.is_some()
        && placement.pacer_alone
        && config.spin_when_pinned
        && !target.is_remote()
    {
        u64::MAX
    } else {
        config.spin_us.min(config.tick_us) * 1000
    };
    let mut stalls = StallMeter::default();
    let mut next_tick_ns = 0u64;
    let mut hash = config.hash_sent.then(OrderHash::default);
    let mut next_abort_check_ns = 0u64;
    loop {
        let now_ns = shared.now_ns();
        if let Some(abort) = &config.abort
            && now_ns >= next_abort_check_ns
        {
            next_abort_check_ns = now_ns + 50_000_000;
            if (abort.0)(&live) {
                send.aborted = true;
                break;
            }
        }
        if config
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::Acquire))
        {
            send.interrupted = true;
            break;
        }
        pool.take_returns(&mut wheel);
        // Everything due goes out now, in exchanges of at most `capacity` requests.
        loop {
            let mut exchange = pool.take();
            schedule.fill_until_at_most(now_ns.saturating_add(1), &mut exchange.metas, capacity);
            if let Some(h) = &mut hash {
                exchange.metas.iter().for_each(|m| h.add(&m.req.command()));
            }
            send.follow_ups_sent += wheel.pop_due(now_ns, &mut exchange.metas, capacity);
            if exchange.metas.is_empty() {
                pool.put_back(exchange, &mut wheel);
                break;
            }
            let full = exchange.metas.len() >= capacity;
            count_offered(&exchange.metas, &offered_per_s);
            let Exchange {
                metas, commands, ..
            } = &mut exchange;
            commands.extend(metas.iter().map(|m| m.req.command()));
            meter.record(metas, shared.now_ns());
            send.sent += metas.len() as u64;
            target.submit_exchange(exchange, &answers);
            if !full {
                break;
            }
        }
        if now_ns >= end_ns && schedule.is_done() {
            break;
        }
        next_tick_ns += tick_ns;
        let now_ns = shared.now_ns();
        if now_ns > next_tick_ns + 4 * tick_ns {
            // Far behind: do not try to catch up tick by tick.
            next_tick_ns = now_ns;
        }
        wait_until(&shared, next_tick_ns, spin_ns, &mut stalls);
    }
    send.offered = send.sent;
    send.sent_order_hash = hash.map(|h| format!("{:016x}", h.value()));
    drop(answers);

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
    let pacer_used = Usage::of_this_thread().since(&pacer_before);
    let process_used = Usage::of_this_process().since(&process_before);
    let wall_s = shared.start.elapsed().as_secs_f64();
    timer_slack::restore(previous_slack);
    if let Some(cpus) = restore_affinity {
        placement::restore_affinity(&cpus);
    }

    send.answered = shared.answered.load(Ordering::Acquire);
    send.unanswered = send.sent.saturating_sub(send.answered);
    send.follow_ups_after_end = funnel.after_end;
    send.abandoned_holds = funnel.abandoned;
    send.bot_retries = funnel.bot_retries;
    send.sent_late = funnel.sent_late;
    send.max_send_lag_us = funnel.max_send_lag_ns as f64 / 1000.0;
    send.send_lag_p50_us = funnel.lag.value_at_quantile(0.5) as f64 / 1000.0;
    send.send_lag_p99_us = funnel.lag.value_at_quantile(0.99) as f64 / 1000.0;
    pool.take_returns(&mut wheel);
    send.follow_ups_unsent = wheel.len as u64;
    send.follow_up_store_grown = wheel.grown;
    send.exchanges_allocated = pool.allocated;
    send.recorder_cpu = funnel.recorder_cpu;
    send.pacer_minor_faults = pacer_used.minor_faults;
    send.pacer_voluntary_context_switches = pacer_used.voluntary_context_switches;
    send.pacer_involuntary_context_switches = pacer_used.involuntary_context_switches;
    send.elapsed_s = wall_s;
    let us = |ns: u64| ns as f64 / 1000.0;
    let health = GeneratorHealth {
        send_lag_p50_us: us(meter.lag.value_at_quantile(0.5)),
        send_lag_p99_us: us(meter.lag.value_at_quantile(0.99)),
        send_lag_p999_us: us(meter.lag.value_at_quantile(0.999)),
        send_lag_max_us: us(meter.lag.max()),
        send_lag_max_at_s: meter.max_at_ns as f64 / 1e9,
        lag_budget_us: config.lag_budget_us,
        sent_over_lag_budget: meter.over_budget,
        sent: send.sent,
        recorder_backlog_max: funnel.backlog_max,
        pacer_cpu_s: pacer_used.cpu_s,
        recorder_cpu_s: funnel.recorder_usage.cpu_s,
        wall_s,
        involuntary_context_switches: process_used.involuntary_context_switches,
        minor_faults: process_used.minor_faults,
        machine_watched_s: stalls.watched_ns as f64 / 1e9,
        machine_stalls: stalls.over_threshold,
        machine_stalls_over_1ms: stalls.over_1ms,
        machine_stall_max_us: us(stalls.max_ns),
        machine_stalled_s: stalls.total_ns as f64 / 1e9,
    };
    tracing::info!(?health, ?send, "generator health");
    RunOutput {
        recording,
        send,
        ledger,
        health,
    }
}

/// Adds a batch's requests to the offered count of the second each was intended for and its
/// op ([`recorder::offered_slot`]): counted locally, at most one atomic add per op for each
/// run of requests due in the same second.
fn count_offered(metas: &[Meta], offered_per_s: &[AtomicU64]) {
    let flush = |second: usize, counts: &mut [u64; 3]| {
        for (op, n) in counts.iter_mut().enumerate() {
            if *n > 0 {
                if let Some(c) = offered_per_s.get(recorder::offered_slot(second, op)) {
                    c.fetch_add(*n, Ordering::Relaxed);
                }
                *n = 0;
            }
        }
    };
    let mut second = usize::MAX;
    let mut counts = [0u64; 3];
    for m in metas {
        let s = (m.intended_ns / 1_000_000_000) as usize;
        if s != second {
            flush(second, &mut counts);
            second = s;
        }
        counts[m.req.op as usize] += 1;
    }
    flush(second, &mut counts);
}

/// Waits until `deadline_ns` on the run's clock: sleeps while more than `spin_ns` is left, then
/// spins, so the wake-up's own latency (tens of µs) does not make the tick late. While it spins
/// it watches the clock for jumps: time the thread was runnable on its CPU and did not run.
fn wait_until(shared: &Shared, deadline_ns: u64, spin_ns: u64, stalls: &mut StallMeter) {
    let mut last_ns = shared.now_ns();
    loop {
        let now_ns = shared.now_ns();
        stalls.observe(now_ns - last_ns);
        last_ns = now_ns;
        if now_ns >= deadline_ns {
            return;
        }
        let left_ns = deadline_ns - now_ns;
        if left_ns > spin_ns {
            std::thread::sleep(Duration::from_nanos(left_ns - spin_ns));
            last_ns = shared.now_ns();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The machine's own stalls as the spinning pacer sees them: two clock readings a few ns apart
/// in a loop that does nothing else are further apart only when the CPU was taken away
/// (interrupts, other threads, a hypervisor running another guest). jHiccup's idea, measured on
/// the thread whose wake-ups the run depends on.
#[derive(Default)]
struct StallMeter {
    over_threshold: u64,
    over_1ms: u64,
    max_ns: u64,
    total_ns: u64,
    watched_ns: u64,
}

/// A gap between two spin iterations longer than this counts as a stall.
const STALL_THRESHOLD_NS: u64 = 50_000;

impl StallMeter {
    fn observe(&mut self, gap_ns: u64) {
        self.watched_ns += gap_ns;
        if gap_ns > STALL_THRESHOLD_NS {
            self.over_threshold += 1;
            self.over_1ms += u64::from(gap_ns > 1_000_000);
            self.max_ns = self.max_ns.max(gap_ns);
            self.total_ns += gap_ns;
        }
    }
}

/// The pacer thread's timer slack: Linux lets a sleep end up to 50 µs late by default, to batch
/// wake-ups; the pacer asks for 1 ns while it runs.
mod timer_slack {
    #[cfg(target_os = "linux")]
    pub fn set_ns(ns: u64) -> Option<u64> {
        // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack or -1.
        let previous = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
        // SAFETY: PR_SET_TIMERSLACK takes the slack by value.
        let set = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
        (previous >= 0 && set == 0).then_some(previous as u64)
    }

    #[cfg(target_os = "linux")]
    pub fn restore(previous: Option<u64>) {
        if let Some(ns) = previous {
            // SAFETY: as above.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn set_ns(_ns: u64) -> Option<u64> {
        None
    }

    #[cfg(not(target_os = "linux"))]
    pub fn restore(_previous: Option<u64>) {}
}

/// The recorder's ends of the exchange queues.
struct Lanes {
    answers: Receiver<Exchange>,
    answers_overflow: Receiver<Exchange>,
    returns: Sender<Exchange>,
    returns_overflow: Sender<Exchange>,
}

impl Lanes {
    fn give_back(&self, exchange: Exchange) {
        if let Err(TrySendError::Full(exchange)) = self.returns.try_send(exchange) {
            // After the pacer has gone nobody takes them: they are dropped with the channel.
            let _ = self.returns_overflow.send(exchange);
        }
    }
}

struct FunnelCounts {
    lag: hdrhistogram::Histogram<u64>,
    sent_late: u64,
    max_send_lag_ns: u64,
    after_end: u64,
    abandoned: u64,
    bot_retries: u64,
    /// Most requests answered by the target but not yet recorded, seen at any one time.
    backlog_max: u64,
    recorder_usage: Usage,
    recorder_cpu: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
fn record_loop(
    mut recorder: Recorder,
    mut ledger: Ledger,
    track_ledger: bool,
    late_ns: u64,
    follow_ups: Option<FollowUps>,
    shared: &Shared,
    lanes: Lanes,
    recorder_cpu: Option<usize>,
) -> (Recording, Ledger, FunnelCounts) {
    let usage_before = Usage::of_this_thread();
    let mut funnel = FunnelCounts {
        lag: recorder::new_histogram(),
        sent_late: 0,
        max_send_lag_ns: 0,
        after_end: 0,
        abandoned: 0,
        bot_retries: 0,
        backlog_max: 0,
        recorder_usage: Usage::default(),
        recorder_cpu,
    };
    let mut record = |recorder: &mut Recorder, exchange: Exchange, funnel: &mut FunnelCounts| {
        let backlog = shared
            .delivered
            .load(Ordering::Acquire)
            .saturating_sub(shared.answered.load(Ordering::Acquire));
        funnel.backlog_max = funnel.backlog_max.max(backlog);
        let n = exchange.metas.len() as u64;
        let exchange = process(
            recorder,
            &mut ledger,
            track_ledger,
            late_ns,
            follow_ups.as_ref(),
            shared,
            exchange,
            funnel,
        );
        shared.answered.fetch_add(n, Ordering::AcqRel);
        lanes.give_back(exchange);
    };
    loop {
        // Poll, never block: a receiver blocked on the channel turns every send into a futex
        // wake on the pacer's thread (an inter-processor interrupt, tens of µs in a VM).
        let mut recorded_any = false;
        while let Ok(exchange) = lanes
            .answers
            .try_recv()
            .or_else(|_| lanes.answers_overflow.try_recv())
        {
            record(&mut recorder, exchange, &mut funnel);
            recorded_any = true;
        }
        recorder.advance_to(shared.now_ns());
        if shared.stop.load(Ordering::Acquire)
            && lanes.answers.is_empty()
            && lanes.answers_overflow.is_empty()
        {
            break;
        }
        if !recorded_any {
            std::thread::sleep(RECORDER_POLL);
        }
    }
    let recording = recorder.finish(shared.now_ns());
    funnel.recorder_usage = Usage::of_this_thread().since(&usage_before);
    (recording, ledger, funnel)
}

/// Records one answered exchange and writes the follow-ups its answers cause into it; returns
/// it emptied of its batch, for the pacer to reuse.
#[allow(clippy::too_many_arguments)]
fn process(
    recorder: &mut Recorder,
    ledger: &mut Ledger,
    track_ledger: bool,
    late_ns: u64,
    follow_ups: Option<&FollowUps>,
    shared: &Shared,
    mut done: Exchange,
    funnel: &mut FunnelCounts,
) -> Exchange {
    let start = shared.start;
    let done_ns = done.done_at.saturating_duration_since(start).as_nanos() as u64;
    let sent_ns = done.sent_at.saturating_duration_since(start).as_nanos() as u64;
    let service_ns = done_ns.saturating_sub(sent_ns);
    for meta in &done.metas {
        let lag = sent_ns.saturating_sub(meta.intended_ns);
        if lag > late_ns {
            funnel.sent_late += 1;
        }
        funnel.max_send_lag_ns = funnel.max_send_lag_ns.max(lag);
        funnel.lag.saturating_record(lag.max(1));
    }
    let dues = &mut done.follow_ups;
    let mut schedule_follow_up = |due_ns: u64, origin: Origin, attempt: u8, req: Req| {
        if due_ns >= shared.end_ns {
            funnel.after_end += 1;
            return;
        }
        dues.push(Meta {
            intended_ns: due_ns,
            origin,
            attempt,
            req,
        });
    };
    match done.failure {
        None => {
            let mut failed = done.failed.iter().peekable();
            for (i, (meta, outcome)) in done.metas.iter().zip(&done.outcomes).enumerate() {
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
        Some(failure) => {
            let label = recorder::failure_label(failure);
            for meta in &done.metas {
                let corrected_ns = done_ns.saturating_sub(meta.intended_ns);
                recorder.record(meta.req.op as usize, label, corrected_ns, service_ns);
            }
        }
    }
    done.clear();
    done
}
