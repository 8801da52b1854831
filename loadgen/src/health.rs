//! The generator's own noise floor during a run, as the driver measured it: how late the pacer
//! sent, how far the recorder fell behind, what the generator's threads cost. The driver fills
//! it (`driver::RunOutput::health`); `validity` judges it. This module holds the figures only
//! (the interface in coord/generator-health.md); it must not pace, record or judge.

use serde::{Deserialize, Serialize};

/// A request sent more than this after its intended time is the generator's delay, not the
/// target's (the default `lag_budget_us`).
pub const LAG_BUDGET_US: u64 = 1_000;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GeneratorHealth {
    /// Send lag (actual send − intended time) over every sent request, µs.
    pub send_lag_p50_us: f64,
    pub send_lag_p99_us: f64,
    pub send_lag_p999_us: f64,
    pub send_lag_max_us: f64,
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
    /// Involuntary context switches and minor page faults of the generator process during the
    /// run (getrusage RUSAGE_SELF deltas; or per thread via RUSAGE_THREAD where taken on that
    /// thread).
    pub involuntary_context_switches: u64,
    pub minor_faults: u64,
}
