//! The pacer's steady-state loop, seen from outside: after warm-up it allocates nothing on its
//! thread (a counting global allocator in this test binary), and the run hands back its own
//! noise floor (`GeneratorHealth`) and honours an external stop. Nothing here is timed: the
//! allocation count is exact, whatever the machine's load.

use flashsale_loadgen::driver::schedule::{Batch, FollowUps, Schedule};
use flashsale_loadgen::driver::{self, Arrivals, DriverConfig};
use flashsale_loadgen::health::Usage;
use flashsale_loadgen::recorder::Live;
use flashsale_loadgen::scenario::Scenario;
use flashsale_loadgen::targets::{self, TargetOptions};
use flashsale_loadgen::verify::Ledger;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Counts every allocation (and reallocation) made on the calling thread, then hands it to
/// mimalloc, the allocator the binary uses.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: allocations while a thread is being torn down are not this test's concern.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to mimalloc with the caller's arguments unchanged; counting
// touches a const-initialised thread-local `Cell` only, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as is.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as is.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded as is.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What the pacer thread had done by a point of the schedule.
#[derive(Clone, Copy, Debug)]
struct Mark {
    allocations: u64,
    usage: Usage,
}

/// The real schedule, watched: the pacer asks it for requests on every tick, on the pacer's
/// thread, so it can read that thread's counters as the run passes two points in time.
struct Watched {
    schedule: Schedule,
    marks_at_ns: [u64; 2],
    marks: [Option<Mark>; 2],
}

impl Arrivals for Watched {
    fn fill_until_at_most(&mut self, until_ns: u64, out: &mut Batch, max_len: usize) {
        for (at_ns, mark) in self.marks_at_ns.iter().zip(self.marks.iter_mut()) {
            if until_ns >= *at_ns && mark.is_none() {
                *mark = Some(Mark {
                    allocations: allocations_on_this_thread(),
                    usage: Usage::of_this_thread(),
                });
            }
        }
        self.schedule.fill_until_at_most(until_ns, out, max_len);
    }
    fn is_done(&self) -> bool {
        self.schedule.is_done()
    }
}

fn steady(rate_per_s: f64, duration_s: f64) -> Scenario {
    let mut scenario = Scenario::profile("steady").unwrap();
    scenario.set_duration_s(duration_s).unwrap();
    scenario.set_peak_rate(rate_per_s).unwrap();
    scenario
}

fn noop_run(
    scenario: &Scenario,
    arrivals: &mut dyn Arrivals,
    config: &DriverConfig,
) -> driver::RunOutput {
    let target = targets::from_spec("noop", &TargetOptions::default()).unwrap();
    driver::run(
        target,
        arrivals,
        Some(FollowUps::new(scenario, 1)),
        Ledger::new(scenario.catalog.per_user_limit, scenario.hold_ttl_ms()),
        scenario.duration_s(),
        config,
        Arc::new(Live::default()),
        None,
    )
}

#[test]
fn the_pacer_allocates_nothing_once_warmed_up() {
    // 300k requests/s of reserves plus their pays and cancels (due ~70 ms later at this time
    // scale), so the exchanges, the wheel and the schedule's buffers are all in use.
    let scenario = steady(300_000.0, 4.0);
    let mut watched = Watched {
        schedule: Schedule::new(&scenario, 1).unwrap(),
        marks_at_ns: [1_500_000_000, 3_500_000_000],
        marks: [None, None],
    };
    // Pinning is left on, as the binary runs; the counts do not depend on it.
    let out = noop_run(&scenario, &mut watched, &DriverConfig::default());
    let [Some(warm), Some(end)] = watched.marks else {
        panic!("the pacer never reached the marks: {:?}", watched.marks);
    };
    let allocations = end.allocations - warm.allocations;
    let used = end.usage.since(&warm.usage);
    let sent = out.send.sent;
    eprintln!(
        "pacer, 1.5 s → 3.5 s: {allocations} allocations, {} minor faults, {} involuntary and \
         {} voluntary context switches; run: {sent} sent, {} follow-ups, {} exchanges \
         allocated, follow-up store grown {} times",
        used.minor_faults,
        used.involuntary_context_switches,
        used.voluntary_context_switches,
        out.send.follow_ups_sent,
        out.send.exchanges_allocated,
        out.send.follow_up_store_grown,
    );
    assert!(
        sent > 900_000,
        "the run sent too little to prove anything: {sent}"
    );
    assert!(out.send.follow_ups_sent > 300_000, "{:?}", out.send);
    assert_eq!(out.send.unanswered, 0);
    // The pool holds 200 ms of exchanges in flight; only a recorder starved for longer than
    // that (another test's threads on its CPU) makes the pacer allocate, and then each fresh
    // exchange (four buffers) is counted in the run's figures. Nothing else may allocate.
    let allowed = 4 * out.send.exchanges_allocated;
    assert!(
        allocations <= allowed,
        "the pacer thread allocated {allocations} times in its steady state, {} of them not \
         for the {} exchanges it reports",
        allocations - allowed,
        out.send.exchanges_allocated
    );
    assert_eq!(out.send.follow_up_store_grown, 0);
}

#[test]
fn a_run_reports_its_own_noise_floor() {
    let scenario = steady(100_000.0, 2.0);
    let mut schedule = Schedule::new(&scenario, 3).unwrap();
    let out = noop_run(&scenario, &mut schedule, &DriverConfig::default());
    let h = &out.health;
    assert_eq!(h.sent, out.send.sent);
    assert!(h.sent > 100_000, "{h:?}");
    assert_eq!(h.lag_budget_us, 1_000);
    assert!(h.sent_over_lag_budget <= h.sent);
    assert!(
        h.send_lag_p50_us <= h.send_lag_p99_us
            && h.send_lag_p99_us <= h.send_lag_p999_us
            && h.send_lag_p999_us <= h.send_lag_max_us,
        "{h:?}"
    );
    assert!(h.send_lag_max_us > 0.0, "{h:?}");
    assert!(h.wall_s >= 2.0 && h.wall_s < 30.0, "{h:?}");
    if cfg!(target_os = "linux") {
        assert!(h.pacer_cpu_s > 0.0 && h.recorder_cpu_s > 0.0, "{h:?}");
        assert!(h.pacer_cpu_s <= h.wall_s + 0.5, "{h:?}");
    }
    assert!(h.recorder_backlog_max > 0, "{h:?}");
}

#[test]
fn an_external_stop_ends_the_run_early_and_says_so() {
    let scenario = steady(50_000.0, 30.0);
    let mut schedule = Schedule::new(&scenario, 5).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let setter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Well after the first tick, even on a loaded machine (the pool is written first).
            std::thread::sleep(Duration::from_millis(2_000));
            stop.store(true, Ordering::Release);
        })
    };
    let started = Instant::now();
    let config = DriverConfig {
        stop: Some(stop),
        ..DriverConfig::default()
    };
    let out = noop_run(&scenario, &mut schedule, &config);
    setter.join().unwrap();
    assert!(out.send.interrupted);
    assert!(!out.send.aborted);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(out.send.sent > 0);
    assert_eq!(out.send.unanswered, 0, "what was sent is still drained");
    let recorded: u64 = out.recording.total.iter().map(|h| h.corrected.len()).sum();
    assert_eq!(recorded, out.send.sent);
}
