//! The generator's own noise floor, measured while it runs: how late the pacer sent (every
//! request), how far the recorder fell behind, what its threads cost against the wall clock,
//! and how often the process was switched out involuntarily or faulted a page in. The driver
//! fills a [`GeneratorHealth`] per run; whoever reports the run decides what it means. This
//! module owns the struct and the `getrusage` readings; it must not pace, record latencies or
//! judge a run.

use serde::{Deserialize, Serialize};

/// A request sent more than this after its intended time is the generator's delay, not the
/// target's (the default `DriverConfig::lag_budget_us`).
pub const LAG_BUDGET_US: u64 = 1_000;

/// What the generator itself cost and how closely it kept the schedule during one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GeneratorHealth {
    /// Send lag (actual send − intended time) over every sent request, µs.
    pub send_lag_p50_us: f64,
    pub send_lag_p99_us: f64,
    pub send_lag_p999_us: f64,
    pub send_lag_max_us: f64,
    /// When (seconds into the run) the request with the largest send lag was sent.
    #[serde(default)]
    pub send_lag_max_at_s: f64,
    /// Requests whose send lag exceeded `lag_budget_us` (1,000 µs by default).
    pub lag_budget_us: u64,
    pub sent_over_lag_budget: u64,
    pub sent: u64,
    /// Most answers waiting for the recorder at once (completions queued, not yet recorded).
    pub recorder_backlog_max: u64,
    /// CPU time of the generator's own threads (pacer, recorder) and the wall time they ran.
    pub pacer_cpu_s: f64,
    pub recorder_cpu_s: f64,
    pub wall_s: f64,
    /// Involuntary context switches and minor page faults of the generator process during the run
    /// (getrusage RUSAGE_SELF deltas; or per thread via RUSAGE_THREAD where taken on that thread).
    pub involuntary_context_switches: u64,
    pub minor_faults: u64,
    /// The machine's stalls, seen by the pacer while it spins between ticks: gaps over 50 µs
    /// between two clock readings of a loop that does nothing else, when its CPU was taken away
    /// (interrupts, other threads, the hypervisor). `machine_watched_s` is how long it watched.
    #[serde(default)]
    pub machine_watched_s: f64,
    #[serde(default)]
    pub machine_stalls: u64,
    #[serde(default)]
    pub machine_stalls_over_1ms: u64,
    #[serde(default)]
    pub machine_stall_max_us: f64,
    #[serde(default)]
    pub machine_stalled_s: f64,
}

/// A `getrusage` reading: CPU time, context switches and page faults so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub cpu_s: f64,
    pub voluntary_context_switches: u64,
    pub involuntary_context_switches: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
}

impl Usage {
    /// The calling thread's usage so far (zero where the platform cannot tell).
    pub fn of_this_thread() -> Usage {
        read(Who::Thread)
    }

    /// The whole process's usage so far, every thread included.
    pub fn of_this_process() -> Usage {
        read(Who::Process)
    }

    /// What was used between `earlier` and `self`.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            cpu_s: (self.cpu_s - earlier.cpu_s).max(0.0),
            voluntary_context_switches: self
                .voluntary_context_switches
                .saturating_sub(earlier.voluntary_context_switches),
            involuntary_context_switches: self
                .involuntary_context_switches
                .saturating_sub(earlier.involuntary_context_switches),
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
            major_faults: self.major_faults.saturating_sub(earlier.major_faults),
        }
    }
}

enum Who {
    Thread,
    Process,
}

#[cfg(target_os = "linux")]
fn read(who: Who) -> Usage {
    let who = match who {
        Who::Thread => libc::RUSAGE_THREAD,
        Who::Process => libc::RUSAGE_SELF,
    };
    // SAFETY: rusage is plain data, all-zero is a valid value, and getrusage writes exactly one
    // rusage through the pointer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: see above; `who` is one of the two values getrusage accepts here.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return Usage::default();
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        voluntary_context_switches: usage.ru_nvcsw as u64,
        involuntary_context_switches: usage.ru_nivcsw as u64,
        minor_faults: usage.ru_minflt as u64,
        major_faults: usage.ru_majflt as u64,
    }
}

#[cfg(not(target_os = "linux"))]
fn read(_who: Who) -> Usage {
    Usage::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_usage_sees_this_threads_work_and_faults() {
        let before = Usage::of_this_thread();
        // Fault in 16 MiB of fresh memory and spend some CPU on it.
        let mut pages = vec![0u8; 16 << 20];
        for (i, byte) in pages.iter_mut().enumerate().step_by(4096) {
            *byte = i as u8;
        }
        std::hint::black_box(&pages);
        let used = Usage::of_this_thread().since(&before);
        if cfg!(target_os = "linux") {
            assert!(used.minor_faults >= 8, "{used:?}");
            assert!(used.cpu_s > 0.0, "{used:?}");
            let process = Usage::of_this_process();
            assert!(process.minor_faults >= used.minor_faults, "{process:?}");
        }
    }
}
