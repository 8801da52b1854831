//! Every run certifies itself: from the generator's own health (`health::GeneratorHealth`) it
//! gets a validity verdict — `valid` when no request left later than the lag budget, else
//! `generator-bound` with the percentile above which the figures measure the generator. A
//! request sent late carries the generator's delay in its corrected latency, so when a share f
//! of the requests was late, percentiles above p(100·(1 − f)) may be the generator's. This
//! module judges and words the verdict; it must not measure anything.

use crate::health::GeneratorHealth;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidityVerdict {
    Valid,
    GeneratorBound,
}

impl ValidityVerdict {
    pub fn label(self) -> &'static str {
        match self {
            ValidityVerdict::Valid => "valid",
            ValidityVerdict::GeneratorBound => "generator-bound",
        }
    }
}

/// The verdict, the percentile up to which the figures measure the target, and the figures it
/// is based on.
#[derive(Clone, Debug, Serialize)]
pub struct Validity {
    pub verdict: ValidityVerdict,
    /// Percentiles up to this one measure the target (100 when valid).
    pub valid_up_to_percentile: f64,
    /// One sentence: what happened and what it means for the figures.
    pub text: String,
    pub health: GeneratorHealth,
}

impl Validity {
    pub fn judge(health: &GeneratorHealth) -> Validity {
        let budget_ms = health.lag_budget_us as f64 / 1000.0;
        if health.sent_over_lag_budget == 0 || health.sent == 0 {
            let text = if health.sent == 0 {
                "nothing was sent".to_string()
            } else {
                format!(
                    "send lag stayed within {budget_ms} ms for all {} requests (p99.9 {:.3} ms, max {:.3} ms)",
                    health.sent,
                    health.send_lag_p999_us / 1000.0,
                    health.send_lag_max_us / 1000.0
                )
            };
            return Validity {
                verdict: ValidityVerdict::Valid,
                valid_up_to_percentile: 100.0,
                text,
                health: health.clone(),
            };
        }
        let late = health.sent_over_lag_budget.min(health.sent);
        let share = late as f64 / health.sent as f64;
        let cut = percentile_below(100.0 * (1.0 - share), 100.0 * share);
        let mut text = format!(
            "send lag exceeded {budget_ms} ms for {} of requests ({late} of {}, max {:.1} ms): percentiles above {} are the generator's",
            percent(share),
            health.sent,
            health.send_lag_max_us / 1000.0,
            percentile_label(cut)
        );
        if health.machine_stall_max_us >= health.lag_budget_us as f64 {
            text.push_str(&format!(
                " (the machine took the pacer's CPU away {} times for over 1 ms, up to {:.1} ms: interrupts, other threads or the hypervisor)",
                health.machine_stalls_over_1ms,
                health.machine_stall_max_us / 1000.0
            ));
        }
        Validity {
            verdict: ValidityVerdict::GeneratorBound,
            valid_up_to_percentile: cut,
            text,
            health: health.clone(),
        }
    }

    pub fn is_valid(&self) -> bool {
        self.verdict == ValidityVerdict::Valid
    }

    /// Whether figures up to `percentile` measure the target (100: the run must be valid).
    pub fn covers(&self, percentile: f64) -> bool {
        self.is_valid() || self.valid_up_to_percentile >= percentile
    }

    /// The generator's own figures, one line (CPU, context switches and faults when measured).
    pub fn health_line(&self) -> String {
        let h = &self.health;
        let mut s = format!(
            "generator: send lag p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms (at {:.1} s); {} of {} sent over the {} ms budget",
            h.send_lag_p50_us / 1000.0,
            h.send_lag_p99_us / 1000.0,
            h.send_lag_p999_us / 1000.0,
            h.send_lag_max_us / 1000.0,
            h.send_lag_max_at_s,
            h.sent_over_lag_budget,
            h.sent,
            h.lag_budget_us as f64 / 1000.0
        );
        if h.recorder_backlog_max > 0 {
            s.push_str(&format!(
                "; recorder backlog max {}",
                h.recorder_backlog_max
            ));
        }
        if h.wall_s > 0.0 && (h.pacer_cpu_s > 0.0 || h.recorder_cpu_s > 0.0) {
            s.push_str(&format!(
                "; CPU of wall: pacer {:.0}%, recorder {:.0}%",
                100.0 * h.pacer_cpu_s / h.wall_s,
                100.0 * h.recorder_cpu_s / h.wall_s
            ));
        }
        if h.machine_watched_s > 0.0 {
            s.push_str(&format!(
                "; machine stalls seen while spinning: {} over 50 µs, {} over 1 ms, max {:.3} ms",
                h.machine_stalls,
                h.machine_stalls_over_1ms,
                h.machine_stall_max_us / 1000.0
            ));
        }
        if h.involuntary_context_switches > 0 || h.minor_faults > 0 {
            s.push_str(&format!(
                "; {} involuntary context switches, {} minor faults",
                h.involuntary_context_switches, h.minor_faults
            ));
        }
        s
    }
}

/// `p99.6`, `p99.996`, `p50`: the shortest spelling of a percentile.
pub fn percentile_label(p: f64) -> String {
    let text = format!("{p:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

/// `p` rounded down to the decimals that tell it from 100 (`gap` = 100 − p): 99.6 for a gap
/// of 0.4, 99.996 for 0.0033. Rounded down, the cut never claims more than was measured.
fn percentile_below(p: f64, gap: f64) -> f64 {
    let mut decimals = 1;
    while decimals < 6 && 10f64.powi(-decimals) > gap / 2.0 {
        decimals += 1;
    }
    let scale = 10f64.powi(decimals);
    ((p * scale + 1e-6).floor() / scale).clamp(0.0, 100.0)
}

fn percent(share: f64) -> String {
    let pct = share * 100.0;
    if pct >= 10.0 {
        format!("{pct:.0}%")
    } else if pct >= 0.1 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.2e}%")
    }
}

/// Parses a `--require-valid` percentile: `p99.9`, `99.9` or `max` / `p100` for the whole run.
pub fn parse_percentile(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if t == "max" {
        return Ok(100.0);
    }
    let v: f64 = t
        .strip_prefix('p')
        .unwrap_or(t)
        .parse()
        .map_err(|_| format!("`{s}` is not a percentile (examples: p99, p99.9, max)"))?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(format!("a percentile lies in (0, 100], got `{s}`"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(sent: u64, late: u64) -> GeneratorHealth {
        GeneratorHealth {
            sent,
            sent_over_lag_budget: late,
            lag_budget_us: 1000,
            send_lag_max_us: 46_000.0,
            ..GeneratorHealth::default()
        }
    }

    #[test]
    fn no_late_request_is_valid() {
        let v = Validity::judge(&health(1_000, 0));
        assert!(v.is_valid() && v.covers(100.0));
        assert!(
            v.text.contains("within 1 ms for all 1000 requests"),
            "{}",
            v.text
        );
    }

    #[test]
    fn late_requests_bound_the_percentiles() {
        let v = Validity::judge(&health(1_000_000, 4_000));
        assert_eq!(v.verdict, ValidityVerdict::GeneratorBound);
        assert_eq!(v.valid_up_to_percentile, 99.6);
        assert!(
            v.text.contains(
                "send lag exceeded 1 ms for 0.4% of requests (4000 of 1000000, max 46.0 ms): percentiles above p99.6 are the generator's"
            ),
            "{}",
            v.text
        );
        assert!(v.covers(99.0) && v.covers(99.6) && !v.covers(99.9));
        let v = Validity::judge(&health(4_540_000, 149_610));
        assert_eq!(percentile_label(v.valid_up_to_percentile), "p96.7");
        let v = Validity::judge(&health(1_000_000, 33));
        assert_eq!(percentile_label(v.valid_up_to_percentile), "p99.996");
        let v = Validity::judge(&health(10, 10));
        assert_eq!(percentile_label(v.valid_up_to_percentile), "p0");
    }

    #[test]
    fn machine_stalls_are_named_as_the_cause_only_when_they_exceed_the_budget() {
        let mut h = health(1_000_000, 4_000);
        h.machine_watched_s = 20.0;
        h.machine_stalls = 300;
        h.machine_stalls_over_1ms = 0;
        h.machine_stall_max_us = 400.0;
        let v = Validity::judge(&h);
        assert!(!v.text.contains("the machine took"), "{}", v.text);
        assert!(
            v.health_line().contains(
                "machine stalls seen while spinning: 300 over 50 µs, 0 over 1 ms, max 0.400 ms"
            ),
            "{}",
            v.health_line()
        );
        h.machine_stalls_over_1ms = 12;
        h.machine_stall_max_us = 8_500.0;
        let v = Validity::judge(&h);
        assert!(
            v.text.contains(
                "the machine took the pacer's CPU away 12 times for over 1 ms, up to 8.5 ms"
            ),
            "{}",
            v.text
        );
    }

    #[test]
    fn require_valid_percentiles_parse() {
        assert_eq!(parse_percentile("p99.9"), Ok(99.9));
        assert_eq!(parse_percentile("99"), Ok(99.0));
        assert_eq!(parse_percentile("max"), Ok(100.0));
        assert!(parse_percentile("p0").is_err());
        assert!(parse_percentile("p101").is_err());
        assert!(parse_percentile("fast").is_err());
    }
}
