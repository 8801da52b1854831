//! Run reports: `summary.json` (schema in docs/report-schema.md: how the run ended, offered vs achieved, outcome counts,
//! corrected and service-time percentiles per op, send statistics, the validity verdict, the
//! invariant verdict, SLO results), `latency.hlog`, `intervals.jsonl`,
//! one `.hgrm` percentile distribution per op, `report.html` with inline SVG charts, and the
//! terminal table; `chart` draws every chart of the report and of the sweep. It owns formats and
//! files; it must not measure or send anything.

pub mod chart;
pub mod hgrm;
pub mod hlog;
pub mod html;
pub mod intervals;

use crate::driver::SendStats;
use crate::recorder::{LABELS, N_LABELS, OPS, Percentiles, Recording};
use crate::slo::SloResult;
use crate::validity::Validity;
use crate::verify::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Latency figures of one op.
#[derive(Clone, Debug, Serialize)]
pub struct OpSummary {
    pub count: u64,
    /// From the intended send time (coordinated-omission corrected).
    pub corrected: Percentiles,
    /// From the actual send (service time, what a closed-loop tool would report).
    pub service: Percentiles,
    pub outcomes: BTreeMap<&'static str, u64>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The whole schedule was sent.
    Complete,
    /// Stopped by SIGINT / SIGTERM: the report covers what ran.
    Interrupted,
    /// Stopped by its abort condition (an `--abort-on-fail` threshold, a sweep step far past
    /// its SLO).
    Aborted,
    /// Could not run: the target could not be reached or set up (nothing was measured).
    Failed,
}

impl RunStatus {
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Complete => "complete",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Aborted => "aborted",
            RunStatus::Failed => "failed",
        }
    }
}

/// The version of `summary.json`'s layout (docs/report-schema.md); raised on every change
/// that renames, removes or retypes a field.
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// Everything `summary.json` holds (each field documented in docs/report-schema.md).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// [`SUMMARY_SCHEMA_VERSION`].
    pub schema_version: u32,
    pub status: RunStatus,
    /// Why it is not complete (empty when it is).
    pub status_detail: String,
    pub scenario: String,
    pub target: String,
    pub seed: u64,
    /// The run id that keeps its SKU and order ids apart from earlier runs on the target.
    pub run_id: u32,
    /// The ids it used, in words (`SKUs 1..=1000, order ids from 0x…`).
    pub ids: String,
    pub started_at_unix_s: u64,
    pub schedule_duration_s: f64,
    pub elapsed_s: f64,
    pub peak_offered_rate_per_s: f64,
    pub offered_rate_per_s: f64,
    pub achieved_rate_per_s: f64,
    pub peak_achieved_rate_per_s: f64,
    pub send: SendStats,
    pub ops: BTreeMap<&'static str, OpSummary>,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Whether the figures measure the target or the generator.
    pub validity: Validity,
    pub verdict: Verdict,
    pub slo: Vec<SloResult>,
    /// What went wrong without stopping the run (a report file that could not be written).
    pub warnings: Vec<String>,
}

/// What the summary needs beyond the recording.
pub struct SummaryInput<'a> {
    pub scenario: &'a str,
    pub target: String,
    pub seed: u64,
    pub started_at_unix_s: u64,
    pub peak_offered_rate_per_s: f64,
}

impl Summary {
    pub fn build(
        input: SummaryInput<'_>,
        recording: &Recording,
        send: &SendStats,
        validity: Validity,
    ) -> Summary {
        let mut ops = BTreeMap::new();
        let mut all = [0u64; N_LABELS];
        for (i, op) in OPS.iter().enumerate() {
            let h = &recording.total[i];
            let outcomes: BTreeMap<&'static str, u64> = (0..N_LABELS)
                .filter(|&l| recording.outcomes[i][l] > 0)
                .map(|l| (LABELS[l], recording.outcomes[i][l]))
                .collect();
            for (sum, n) in all.iter_mut().zip(&recording.outcomes[i]) {
                *sum += n;
            }
            ops.insert(
                *op,
                OpSummary {
                    count: h.corrected.len(),
                    corrected: Percentiles::of(&h.corrected),
                    service: Percentiles::of(&h.service),
                    outcomes,
                },
            );
        }
        let outcomes = (0..N_LABELS)
            .filter(|&l| all[l] > 0)
            .map(|l| (LABELS[l], all[l]))
            .collect();
        let peak_achieved = recording
            .points
            .iter()
            .map(|p| p.completed)
            .max()
            .unwrap_or(0) as f64;
        // A run stopped early offered its requests over the time it ran.
        let duration = if send.interrupted || send.aborted {
            send.elapsed_s.min(send.schedule_duration_s)
        } else {
            send.schedule_duration_s
        }
        .max(1e-9);
        Summary {
            schema_version: SUMMARY_SCHEMA_VERSION,
            status: RunStatus::Complete,
            status_detail: String::new(),
            scenario: input.scenario.to_string(),
            target: input.target,
            seed: input.seed,
            run_id: 0,
            ids: String::new(),
            started_at_unix_s: input.started_at_unix_s,
            schedule_duration_s: send.schedule_duration_s,
            elapsed_s: send.elapsed_s,
            peak_offered_rate_per_s: input.peak_offered_rate_per_s,
            offered_rate_per_s: send.offered as f64 / duration,
            achieved_rate_per_s: send.answered as f64 / send.elapsed_s.max(1e-9),
            peak_achieved_rate_per_s: peak_achieved,
            send: send.clone(),
            ops,
            outcomes,
            validity,
            verdict: Verdict::skipped("not checked yet"),
            slo: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn write_json(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// The compact table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let ms = |us: f64| format!("{:.3}", us / 1000.0);
        if self.status != RunStatus::Complete {
            s.push_str(&format!(
                "run {}: {}\n",
                self.status.label().to_uppercase(),
                self.status_detail
            ));
        }
        s.push_str(&format!(
            "scenario {} on {} (seed {}): offered {:.0}/s (peak λ {:.0}/s), achieved {:.0}/s, {} sent, {} late (> {} µs), {} unanswered\n",
            self.scenario,
            self.target,
            self.seed,
            self.offered_rate_per_s,
            self.peak_offered_rate_per_s,
            self.achieved_rate_per_s,
            self.send.sent,
            self.send.sent_late,
            self.send.late_threshold_us,
            self.send.unanswered,
        ));
        s.push_str(&format!(
            "{:<8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "op (ms)", "count", "kind", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        ));
        for (op, o) in &self.ops {
            for (kind, p) in [("corrected", &o.corrected), ("service", &o.service)] {
                s.push_str(&format!(
                    "{:<8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                    op,
                    o.count,
                    kind,
                    ms(p.p50_us),
                    ms(p.p90_us),
                    ms(p.p99_us),
                    ms(p.p999_us),
                    ms(p.p9999_us),
                    ms(p.max_us)
                ));
            }
        }
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!("outcomes: {}\n", outcomes.join(" ")));
        s.push_str(&format!(
            "follow-ups sent {}, after end {}, unsent {}; holds abandoned {}; bot retries {}\n",
            self.send.follow_ups_sent,
            self.send.follow_ups_after_end,
            self.send.follow_ups_unsent,
            self.send.abandoned_holds,
            self.send.bot_retries
        ));
        if !self.ids.is_empty() {
            s.push_str(&format!("ids: run id {}: {}\n", self.run_id, self.ids));
        }
        s.push_str(&format!("{}\n", self.validity.health_line()));
        s.push_str(&format!("{}\n", self.validity_line()));
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }

    /// `validity: valid — …` or `validity: GENERATOR-BOUND — …`.
    pub fn validity_line(&self) -> String {
        let label = self.validity.verdict.label();
        let label = if self.validity.is_valid() {
            label.to_string()
        } else {
            label.to_uppercase()
        };
        format!("validity: {label} — {}", self.validity.text)
    }
}
