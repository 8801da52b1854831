//! Service-level thresholds for CI gating, in the k6-threshold spirit: `reserve.p99<2ms`,
//! `pay.p99.9<5ms`, `cancel.max<=1s`, `reserve.service.p99<500us`. Corrected latency is judged
//! unless `.service` is named. Parsing and evaluation only; the binary decides the exit code.

use crate::recorder::Percentiles;
use crate::report::OpSummary;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SloError {
    #[error(
        "invalid SLO `{spec}`: {why} (expected e.g. `reserve.p99<2ms`, `pay.service.p99.9<=5ms`)"
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

/// One threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    pub spec: String,
    pub op: String,
    pub service: bool,
    pub stat: Stat,
    pub inclusive: bool,
    pub limit_us: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SloResult {
    pub spec: String,
    pub measured_ms: f64,
    pub passed: bool,
}

impl Slo {
    pub fn parse(spec: &str) -> Result<Slo, SloError> {
        let err = |why| SloError::Parse {
            spec: spec.to_string(),
            why,
        };
        let compact: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, rhs, inclusive) = if let Some((l, r)) = compact.split_once("<=") {
            (l, r, true)
        } else if let Some((l, r)) = compact.split_once('<') {
            (l, r, false)
        } else {
            return Err(err("no `<` or `<=`"));
        };
        let (op, rest) = lhs
            .split_once('.')
            .ok_or_else(|| err("no `.` after the op"))?;
        if !crate::recorder::OPS.contains(&op) {
            return Err(err("unknown op (reserve, pay, cancel)"));
        }
        let (service, stat) = match rest.strip_prefix("service.") {
            Some(s) => (true, s),
            None => (false, rest),
        };
        let stat = match stat {
            "p50" => Stat::P50,
            "p90" => Stat::P90,
            "p99" => Stat::P99,
            "p99.9" | "p999" => Stat::P999,
            "p99.99" | "p9999" => Stat::P9999,
            "max" => Stat::Max,
            "mean" => Stat::Mean,
            _ => return Err(err("unknown statistic (p50 p90 p99 p99.9 p99.99 max mean)")),
        };
        let split = rhs
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("no unit (us, ms, s)"))?;
        let (number, unit) = rhs.split_at(split);
        let value: f64 = number.parse().map_err(|_| err("bad number"))?;
        let factor_us = match unit {
            "us" | "µs" => 1.0,
            "ms" => 1_000.0,
            "s" => 1_000_000.0,
            _ => return Err(err("unknown unit (us, ms, s)")),
        };
        if !(value.is_finite() && value > 0.0) {
            return Err(err("the limit must be > 0"));
        }
        Ok(Slo {
            spec: spec.to_string(),
            op: op.to_string(),
            service,
            stat,
            inclusive,
            limit_us: value * factor_us,
        })
    }

    fn pick(&self, p: &Percentiles) -> f64 {
        match self.stat {
            Stat::P50 => p.p50_us,
            Stat::P90 => p.p90_us,
            Stat::P99 => p.p99_us,
            Stat::P999 => p.p999_us,
            Stat::P9999 => p.p9999_us,
            Stat::Max => p.max_us,
            Stat::Mean => p.mean_us,
        }
    }

    /// Judges the run. An op with no samples breaches (nothing was proven).
    pub fn evaluate(&self, ops: &BTreeMap<&'static str, OpSummary>) -> SloResult {
        let (measured_us, any) = match ops.get(self.op.as_str()) {
            Some(o) => {
                let p = if self.service {
                    &o.uncorrected
                } else {
                    &o.corrected
                };
                (self.pick(p), p.count > 0)
            }
            None => (f64::INFINITY, false),
        };
        let passed = any
            && if self.inclusive {
                measured_us <= self.limit_us
            } else {
                measured_us < self.limit_us
            };
        SloResult {
            spec: self.spec.clone(),
            measured_ms: measured_us / 1000.0,
            passed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let s = Slo::parse("reserve.p99<2ms").unwrap();
        assert_eq!(
            (s.op.as_str(), s.stat, s.limit_us, s.service),
            ("reserve", Stat::P99, 2000.0, false)
        );
        let s = Slo::parse("pay.p99.9 < 5ms").unwrap();
        assert_eq!(s.stat, Stat::P999);
        let s = Slo::parse("cancel.service.max<=1.5s").unwrap();
        assert!(s.service && s.inclusive && s.limit_us == 1_500_000.0);
        assert_eq!(Slo::parse("reserve.p50<250us").unwrap().limit_us, 250.0);
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
        ] {
            let e = Slo::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid SLO"), "{bad}: {e}");
        }
    }

    #[test]
    fn evaluates_against_a_summary() {
        let mut ops = BTreeMap::new();
        let p = Percentiles {
            count: 10,
            p99_us: 1500.0,
            ..Percentiles::default()
        };
        ops.insert(
            "reserve",
            OpSummary {
                count: 10,
                corrected: p,
                uncorrected: Percentiles { p99_us: 100.0, ..p },
                outcomes: BTreeMap::new(),
            },
        );
        assert!(Slo::parse("reserve.p99<2ms").unwrap().evaluate(&ops).passed);
        assert!(!Slo::parse("reserve.p99<1ms").unwrap().evaluate(&ops).passed);
        assert!(
            Slo::parse("reserve.service.p99<1ms")
                .unwrap()
                .evaluate(&ops)
                .passed
        );
        assert!(
            !Slo::parse("pay.p99<1s").unwrap().evaluate(&ops).passed,
            "no samples: breach"
        );
    }
}
