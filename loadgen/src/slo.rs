//! Service-level thresholds for CI gating, in the k6-threshold spirit:
//!
//! - latency: `reserve.p99<2ms`, `pay.p99.9<5ms`, `cancel.max<=1s`, `reserve.service.p99<500us`
//!   (corrected latency unless `.service` is named);
//! - error ratios: `errors<0.1%` (every op), `reserve.errors<=1%`;
//! - rates (answers per second): `reserve.rate>=300k`, `rate>2M` (every op);
//! - any of them within one phase of the scenario: `midnight:reserve.p99<2ms`,
//!   `midnight:reserve.rate>=300k`, `midnight:errors<0.1%`.
//!
//! Errors are the answers that are not business answers — busy, rate_limited, timeouts,
//! transport and protocol errors, … (`recorder::is_error_label`) — plus the requests never
//! answered; sold_out and limit_exceeded are answers, not errors. A latency threshold counts
//! errors as slower than any limit: `reserve.p99<2ms` holds only if 99% of the reserves were
//! answered, without error, within 2 ms. Because the histograms also hold the errors' own
//! latencies, the figure judged is an upper bound: the quantile `(k + e) / n` of the recorded
//! answers, k the requested rank and e the errors — exact when there are none.
//!
//! This module parses and judges [`Window`]s (the whole run or one phase); the run builds them
//! and the binary decides the exit code.

use crate::recorder::{OPS, OpHistograms};
use serde::Serialize;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SloError {
    #[error(
        "invalid SLO `{spec}`: {why} (expected e.g. `reserve.p99<2ms`, `pay.service.p99.9<=5ms`, `errors<0.1%`, `reserve.rate>=300k`, `midnight:reserve.p99<2ms`)"
    )]
    Parse { spec: String, why: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stat {
    P50,
    P90,
    P99,
    P999,
    P9999,
    Max,
    Mean,
}

impl Stat {
    /// The quantile it names (`Max` is 1; `Mean` has none).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Stat::P50 => Some(0.5),
            Stat::P90 => Some(0.9),
            Stat::P99 => Some(0.99),
            Stat::P999 => Some(0.999),
            Stat::P9999 => Some(0.9999),
            Stat::Max => Some(1.0),
            Stat::Mean => None,
        }
    }
}

/// What a threshold measures. `op` indexes `recorder::OPS`; `None` is every op together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    Latency {
        op: usize,
        service: bool,
        stat: Stat,
    },
    Errors {
        op: Option<usize>,
    },
    Rate {
        op: Option<usize>,
    },
}

/// How the measured value must compare with the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Below,
    AtMost,
    Above,
    AtLeast,
}

impl Cmp {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Cmp::Below => measured < limit,
            Cmp::AtMost => measured <= limit,
            Cmp::Above => measured > limit,
            Cmp::AtLeast => measured >= limit,
        }
    }
}

/// One threshold. `limit` is in µs (latency), a fraction (errors) or per second (rates).
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    pub spec: String,
    /// The scenario phase it is judged in; `None`: the whole run.
    pub phase: Option<String>,
    pub metric: Metric,
    pub cmp: Cmp,
    pub limit: f64,
    /// Stop the run as soon as it is breached (`--abort-on-fail`), judged at every interval.
    pub abort: bool,
}

/// A threshold's judgement.
#[derive(Clone, Debug, Serialize)]
pub struct SloResult {
    pub spec: String,
    /// `run` or the phase's name.
    pub window: String,
    /// In `unit`; `None` when it is unbounded (every request in the rank failed).
    pub measured: Option<f64>,
    /// `ms`, `%` or `/s`.
    pub unit: &'static str,
    pub passed: bool,
    /// What the figure counted (errors taken as slow, no answers, …); empty when plain.
    pub note: String,
}

impl SloResult {
    /// `3.412 ms`, `0.42%`, `312.0k/s`, or `unbounded`.
    pub fn measured_text(&self) -> String {
        match self.measured {
            None => "unbounded".to_string(),
            Some(v) => match self.unit {
                "ms" => format!("{v:.3} ms"),
                "%" => format!("{v:.3}%"),
                _ => format!("{}/s", si(v)),
            },
        }
    }

    /// One line for the terminal and the report.
    pub fn line(&self) -> String {
        let mut s = format!(
            "slo {}: {} {}",
            self.spec,
            self.measured_text(),
            if self.passed { "pass" } else { "BREACHED" }
        );
        if !self.note.is_empty() {
            s.push_str(&format!(" ({})", self.note));
        }
        s
    }
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// What one window — the whole run, or one phase — measured.
pub struct Window<'a> {
    /// Corrected and service latency per op.
    pub histograms: &'a [OpHistograms; 3],
    /// Error answers per op, when known (the whole run); a phase knows only their sum.
    pub errors_by_op: Option<[u64; 3]>,
    pub errors: u64,
    /// Requests sent and never answered (each counts as an error of every op).
    pub unanswered: u64,
    pub duration_s: f64,
}

impl Window<'_> {
    fn answers(&self, op: Option<usize>) -> u64 {
        match op {
            Some(op) => self.histograms[op].corrected.len(),
            None => self.histograms.iter().map(|h| h.corrected.len()).sum(),
        }
    }

    /// Error answers of `op`: exact for the run; for a phase, the phase's errors of every op
    /// (an upper bound, so a threshold never passes because of it).
    fn errors_of(&self, op: Option<usize>) -> u64 {
        match (op, self.errors_by_op) {
            (Some(op), Some(by_op)) => by_op[op],
            _ => self.errors,
        }
    }
}

fn parse_number(text: &str) -> Option<(f64, &str)> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    number.parse().ok().map(|v| (v, unit))
}

fn parse_op(name: &str) -> Option<usize> {
    OPS.iter().position(|o| *o == name)
}

/// `0.1%` or `0.001`, as a fraction.
fn error_ratio(text: &str) -> Result<f64, &'static str> {
    let (v, unit) = parse_number(text).ok_or("bad number")?;
    let fraction = match unit {
        "%" => v / 100.0,
        "" => v,
        _ => return Err("an error ratio is a fraction or a percentage"),
    };
    if !(fraction.is_finite() && (0.0..=1.0).contains(&fraction)) {
        return Err("an error ratio lies between 0 and 100%");
    }
    Ok(fraction)
}

/// `300k`, `2M/s`, `5000`, per second.
fn rate(text: &str) -> Result<f64, &'static str> {
    let (v, unit) = parse_number(text).ok_or("bad number")?;
    let factor = match unit.trim_end_matches("/s") {
        "" => 1.0,
        "k" | "K" => 1e3,
        "m" | "M" => 1e6,
        _ => return Err("unknown rate unit (k, M, optionally /s)"),
    };
    Ok(v * factor)
}

fn statistic(name: &str) -> Result<Stat, &'static str> {
    Ok(match name {
        "p50" => Stat::P50,
        "p90" => Stat::P90,
        "p99" => Stat::P99,
        "p99.9" | "p999" => Stat::P999,
        "p99.99" | "p9999" => Stat::P9999,
        "max" => Stat::Max,
        "mean" => Stat::Mean,
        _ => return Err("unknown statistic (p50 p90 p99 p99.9 p99.99 max mean errors rate)"),
    })
}

/// `250us`, `2ms`, `1.5s`, in µs.
fn latency_us(text: &str) -> Result<f64, &'static str> {
    let (value, unit) = parse_number(text).ok_or("bad number")?;
    let factor_us = match unit {
        "us" | "µs" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "" => return Err("no unit (us, ms, s)"),
        _ => return Err("unknown unit (us, ms, s)"),
    };
    Ok(value * factor_us)
}

impl Slo {
    pub fn parse(spec: &str) -> Result<Slo, SloError> {
        let err = |why| SloError::Parse {
            spec: spec.to_string(),
            why,
        };
        let compact: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
        let (phase, body) = match compact.split_once(':') {
            Some((p, b)) if !p.is_empty() => (Some(p.to_string()), b),
            Some(_) => return Err(err("empty phase name before `:`")),
            None => (None, compact.as_str()),
        };
        let (lhs, cmp, rhs) = [
            ("<=", Cmp::AtMost),
            (">=", Cmp::AtLeast),
            ("<", Cmp::Below),
            (">", Cmp::Above),
        ]
        .iter()
        .find_map(|(sym, cmp)| body.split_once(sym).map(|(l, r)| (l, *cmp, r)))
        .ok_or_else(|| err("no `<`, `<=`, `>` or `>=`"))?;
        let (op, rest) = match lhs.split_once('.') {
            Some((op, rest)) => (
                Some(parse_op(op).ok_or_else(|| err("unknown op (reserve, pay, cancel)"))?),
                rest,
            ),
            None => (None, lhs),
        };
        let upper_bound = matches!(cmp, Cmp::Below | Cmp::AtMost);
        let (metric, limit) = match rest {
            "errors" if op.is_some() && phase.is_some() => {
                return Err(err(
                    "a phase's error ratio counts every op: write `PHASE:errors<…`",
                ));
            }
            "errors" if upper_bound => (Metric::Errors { op }, error_ratio(rhs).map_err(err)?),
            "errors" => return Err(err("an error ratio is bounded from above (`<` or `<=`)")),
            "rate" if !upper_bound => (Metric::Rate { op }, rate(rhs).map_err(err)?),
            "rate" => return Err(err("a rate is bounded from below (`>` or `>=`)")),
            _ => {
                let op = op.ok_or_else(|| err("no `.` after the op"))?;
                if !upper_bound {
                    return Err(err("a latency is bounded from above (`<` or `<=`)"));
                }
                let (service, stat) = match rest.strip_prefix("service.") {
                    Some(s) => (true, s),
                    None => (false, rest),
                };
                let stat = statistic(stat).map_err(err)?;
                (
                    Metric::Latency { op, service, stat },
                    latency_us(rhs).map_err(err)?,
                )
            }
        };
        let positive = !matches!(metric, Metric::Errors { .. });
        if !limit.is_finite() || (positive && limit <= 0.0) {
            return Err(err("the limit must be > 0"));
        }
        Ok(Slo {
            spec: spec.to_string(),
            phase,
            metric,
            cmp,
            limit,
            abort: false,
        })
    }

    /// The latency limit in µs (`None` for error ratios and rates).
    pub fn latency_limit_us(&self) -> Option<f64> {
        matches!(self.metric, Metric::Latency { .. }).then_some(self.limit)
    }

    /// Answers a window needs before a live judgement means something: ten in the tail the
    /// threshold looks at (10 / (1 − q) for a percentile, 10 / limit for an error ratio).
    pub fn min_answers_to_judge(&self) -> u64 {
        let n = match self.metric {
            Metric::Latency { stat, .. } => match stat.quantile() {
                Some(q) if q < 1.0 => 10.0 / (1.0 - q),
                _ => 1.0,
            },
            Metric::Errors { .. } => 10.0 / self.limit.max(1e-9),
            Metric::Rate { .. } => 1.0,
        };
        n.min(1e12) as u64
    }

    /// Judges the window. A window with no requests breaches (nothing was proven).
    pub fn evaluate(&self, w: &Window<'_>) -> SloResult {
        let (measured, unit, note) = match self.metric {
            Metric::Latency { op, service, stat } => {
                let (value_us, note) = latency_counting_errors(w, op, service, stat);
                (value_us.map(|us| us / 1000.0), "ms", note)
            }
            Metric::Errors { op } => {
                let bad = w.errors_of(op) + w.unanswered;
                let total = w.answers(op) + w.unanswered;
                if total == 0 {
                    (None, "%", "no requests".to_string())
                } else {
                    let note = format!("{bad} of {total} requests");
                    (Some(100.0 * bad as f64 / total as f64), "%", note)
                }
            }
            Metric::Rate { op } => {
                let rate = w.answers(op) as f64 / w.duration_s.max(1e-9);
                (Some(rate), "/s", String::new())
            }
        };
        let limit = match unit {
            "ms" => self.limit / 1000.0,
            "%" => self.limit * 100.0,
            _ => self.limit,
        };
        let passed = measured.is_some_and(|v| self.cmp.holds(v, limit));
        SloResult {
            spec: self.spec.clone(),
            window: self.phase.clone().unwrap_or_else(|| "run".to_string()),
            measured,
            unit,
            passed,
            note,
        }
    }
}

/// The statistic of `op`'s latency with every error (and unanswered request) counted as slower
/// than any limit, in µs; `None` when the rank falls among the errors.
fn latency_counting_errors(
    w: &Window<'_>,
    op: usize,
    service: bool,
    stat: Stat,
) -> (Option<f64>, String) {
    let h = if service {
        &w.histograms[op].service
    } else {
        &w.histograms[op].corrected
    };
    let recorded = h.len();
    let errors = w.errors_of(Some(op)).min(recorded);
    let bad = errors + w.unanswered;
    let total = recorded + w.unanswered;
    if total == 0 || recorded == errors {
        let note = if total == 0 {
            "no answers".to_string()
        } else {
            format!("all {total} requests failed")
        };
        return (None, note);
    }
    let note = if bad == 0 {
        String::new()
    } else {
        format!("{bad} of {total} requests failed and count as slower than the limit")
    };
    let us = |ns: u64| ns as f64 / 1000.0;
    let Some(q) = stat.quantile() else {
        // The mean of the answers, unbounded once any request failed.
        return ((bad == 0).then(|| h.mean() / 1000.0), note);
    };
    if bad == 0 {
        let v = if q >= 1.0 {
            h.max()
        } else {
            h.value_at_quantile(q)
        };
        return (Some(us(v)), note);
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    if rank > total - bad {
        return (None, note);
    }
    let bound = ((rank + errors) as f64 / recorded as f64).min(1.0);
    (Some(us(h.value_at_quantile(bound))), note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::new_histogram;

    fn histograms(reserve_ms: &[u64]) -> [OpHistograms; 3] {
        let mut h = [0, 1, 2].map(|_| OpHistograms {
            corrected: new_histogram(),
            service: new_histogram(),
        });
        for &ms in reserve_ms {
            h[0].corrected.record(ms * 1_000_000).unwrap();
            h[0].service.record(ms * 100_000).unwrap();
        }
        h
    }

    fn window(h: &[OpHistograms; 3], reserve_errors: u64) -> Window<'_> {
        Window {
            histograms: h,
            errors_by_op: Some([reserve_errors, 0, 0]),
            errors: reserve_errors,
            unanswered: 0,
            duration_s: 10.0,
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        let s = Slo::parse("reserve.p99<2ms").unwrap();
        assert_eq!(
            (s.metric, s.limit, s.cmp, s.phase),
            (
                Metric::Latency {
                    op: 0,
                    service: false,
                    stat: Stat::P99
                },
                2000.0,
                Cmp::Below,
                None
            )
        );
        let s = Slo::parse("pay.p99.9 < 5ms").unwrap();
        assert!(matches!(
            s.metric,
            Metric::Latency {
                op: 1,
                stat: Stat::P999,
                ..
            }
        ));
        let s = Slo::parse("cancel.service.max<=1.5s").unwrap();
        assert!(s.cmp == Cmp::AtMost && s.limit == 1_500_000.0);
        assert!(matches!(s.metric, Metric::Latency { service: true, .. }));
        assert_eq!(Slo::parse("reserve.p50<250us").unwrap().limit, 250.0);
        let s = Slo::parse("errors<0.1%").unwrap();
        assert_eq!((s.metric, s.limit), (Metric::Errors { op: None }, 0.001));
        let s = Slo::parse("reserve.errors<=0.02").unwrap();
        assert_eq!(s.metric, Metric::Errors { op: Some(0) });
        let s = Slo::parse("reserve.rate>=300k").unwrap();
        assert_eq!(
            (s.metric, s.limit, s.cmp),
            (Metric::Rate { op: Some(0) }, 300_000.0, Cmp::AtLeast)
        );
        assert_eq!(Slo::parse("rate>2M/s").unwrap().limit, 2e6);
        let s = Slo::parse("midnight:reserve.p99<2ms").unwrap();
        assert_eq!(s.phase.as_deref(), Some("midnight"));
        assert_eq!(s.latency_limit_us(), Some(2000.0));
        assert_eq!(Slo::parse("midnight:errors<1%").unwrap().limit, 0.01);
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        for bad in [
            "",
            "reserve.p99",
            "foo.p99<1ms",
            "reserve.p42<1ms",
            "reserve.p99<1h",
            "reserve.p99<ms",
            "reserve.p99<0ms",
            "reserve.p99>1ms",
            "errors>1%",
            "errors<150%",
            "reserve.rate<5k",
            "reserve.rate>=5q",
            "midnight:reserve.errors<1%",
            ":reserve.p99<1ms",
        ] {
            let e = Slo::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid SLO"), "{bad}: {e}");
        }
    }

    #[test]
    fn evaluates_latency_rates_and_error_ratios() {
        let h = histograms(&[1; 100]);
        let w = window(&h, 0);
        assert!(Slo::parse("reserve.p99<2ms").unwrap().evaluate(&w).passed);
        assert!(!Slo::parse("reserve.p99<1ms").unwrap().evaluate(&w).passed);
        assert!(
            Slo::parse("reserve.service.p99<0.2ms")
                .unwrap()
                .evaluate(&w)
                .passed
        );
        let r = Slo::parse("pay.p99<1s").unwrap().evaluate(&w);
        assert!(!r.passed && r.note == "no answers", "no samples: breach");
        assert!(Slo::parse("reserve.rate>=10").unwrap().evaluate(&w).passed);
        assert!(!Slo::parse("reserve.rate>10").unwrap().evaluate(&w).passed);
        assert!(!Slo::parse("pay.rate>=1").unwrap().evaluate(&w).passed);
        assert!(Slo::parse("errors<=0%").unwrap().evaluate(&w).passed);
    }

    /// 4,761 of 4,811 reserves answered rate_limited (fast): neither the latency threshold nor
    /// the error ratio may pass.
    #[test]
    fn refusals_that_are_not_business_answers_fail_the_thresholds() {
        let h = histograms(&[1; 4_811]);
        let w = window(&h, 4_761);
        let r = Slo::parse("reserve.p99<50ms").unwrap().evaluate(&w);
        assert!(!r.passed && r.measured.is_none(), "{r:?}");
        assert!(r.note.contains("4761 of 4811"), "{r:?}");
        let r = Slo::parse("errors<0.1%").unwrap().evaluate(&w);
        assert!(!r.passed, "{r:?}");
        assert!((r.measured.unwrap() - 98.96).abs() < 0.01, "{r:?}");
        // Unanswered requests are errors too.
        let w = Window {
            unanswered: 5,
            ..window(&h, 0)
        };
        assert!(!Slo::parse("errors<0.1%").unwrap().evaluate(&w).passed);
        assert!(!Slo::parse("reserve.max<1s").unwrap().evaluate(&w).passed);
    }

    /// A few errors move the judged rank up by as many answers: still a finite, conservative
    /// figure.
    #[test]
    fn a_few_errors_count_as_slow_answers() {
        let mut ms = vec![1; 1985];
        ms.extend([100; 15]);
        let h = histograms(&ms);
        let clean = Slo::parse("reserve.p99<2ms")
            .unwrap()
            .evaluate(&window(&h, 0));
        assert!(clean.passed, "{clean:?}");
        // With 15 errors the 99th percentile of good answers may sit among the slow ones.
        let with_errors = Slo::parse("reserve.p99<2ms")
            .unwrap()
            .evaluate(&window(&h, 15));
        assert!(!with_errors.passed, "{with_errors:?}");
        assert!(with_errors.measured.unwrap() > 50.0);
    }
}
