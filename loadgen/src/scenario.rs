//! The workload model: a scenario read from TOML (catalog, users, funnel, arrival-rate phases)
//! and the built-in profiles shipped as TOML files. It owns validation and the rate function
//! λ(t) with its exact integral; it must not generate requests (that is `schedule`) nor talk to
//! any target.

use serde::Deserialize;
use std::path::Path;

/// Built-in profiles, each a TOML file shipped inside the crate.
pub const PROFILES: [(&str, &str); 3] = [
    ("double11", include_str!("profiles/double11.toml")),
    ("steady", include_str!("profiles/steady.toml")),
    ("spike", include_str!("profiles/spike.toml")),
];

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("unknown profile `{0}` (known: double11, steady, spike)")]
    UnknownProfile(String),
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid scenario TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A scenario file that is not valid TOML: the file, then the parser's line and column.
    #[error("{path}: invalid scenario TOML: {source}")]
    TomlFile {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// A complete workload description. Times are nominal: `time_scale` stretches them all.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Offered rate of the scheduled (open-loop) traffic at λ = 1.0, in requests per second.
    pub peak_rate_per_s: f64,
    pub catalog: Catalog,
    pub users: Users,
    pub funnel: Funnel,
    pub phases: Vec<Phase>,
    /// Multiplies every duration (phases, delays, TTL). Set from `--duration`; not in TOML.
    #[serde(skip, default = "one")]
    pub time_scale: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub skus: u32,
    /// First SKU id; ids are `first_sku_id .. first_sku_id + skus`.
    #[serde(default = "default_first_sku")]
    pub first_sku_id: u32,
    pub stock: StockSpec,
    pub per_user_limit: u32,
    pub hold_ttl_ms: u64,
    #[serde(default)]
    pub price_cents: u64,
}

fn default_first_sku() -> u32 {
    1
}

/// How much stock each SKU gets.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StockSpec {
    /// Every SKU has `units`.
    Fixed { units: u64 },
    /// Each SKU draws uniformly from `min..=max` (seeded).
    Uniform { min: u64, max: u64 },
    /// Stock follows expected demand: `coverage` × the reserves the SKU's Zipf share expects
    /// over the whole run, at least `min`. Coverage < 1 makes the popular SKUs sell out.
    Demand { coverage: f64, min: u64 },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Normal buyers; ids `bots .. bots + population`.
    pub population: u64,
    /// Zipf exponent of SKU popularity (rank 1 is `first_sku_id`).
    pub zipf_s: f64,
    /// Fraction of all users that are bots (ids `0 .. bots`).
    #[serde(default)]
    pub bot_fraction: f64,
    /// A bot sends this many times the requests of a normal user.
    #[serde(default = "one")]
    pub bot_rate_multiplier: f64,
    /// A bot answered `sold_out` tries again this many times (same order id).
    #[serde(default)]
    pub bot_retry_max: u8,
    #[serde(default)]
    pub bot_retry_delay_ms: u64,
    /// Quantity per reserve is uniform in `1..=qty_max`.
    #[serde(default = "one_u32")]
    pub qty_max: u32,
}

fn one_u32() -> u32 {
    1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Funnel {
    /// Probability that a held order is paid.
    pub pay_probability: f64,
    /// Probability that a held order is cancelled (the rest are left to expire).
    pub cancel_probability: f64,
    pub pay_delay: DelaySpec,
    pub cancel_delay: DelaySpec,
    /// Fraction of reserves whose client times out and sends the same order id again.
    #[serde(default)]
    pub duplicate_rate: f64,
    /// When that duplicate is sent, after the original's intended time.
    #[serde(default = "default_client_timeout")]
    pub client_timeout_ms: u64,
}

fn default_client_timeout() -> u64 {
    200
}

/// A log-normal delay given by its median and the σ of its logarithm.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelaySpec {
    pub median_ms: f64,
    pub sigma: f64,
}

/// The shape of λ within one phase; `from`/`to` are fractions of the peak rate.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// λ = from for the whole phase (`to` is ignored).
    Constant,
    /// λ goes linearly from `from` to `to`.
    Ramp,
    /// λ = to + (from − to)·e^(−t/τ), τ = duration / 4: it has nearly reached `to` at the end.
    Decay,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    pub duration_s: f64,
    pub shape: Shape,
    pub from: f64,
    #[serde(default)]
    pub to: Option<f64>,
}

impl Phase {
    fn to(&self) -> f64 {
        self.to.unwrap_or(self.from)
    }

    /// λ(t) as a fraction of peak, `t` in seconds since the phase start (nominal time).
    fn fraction_at(&self, t: f64) -> f64 {
        let (a, b, d) = (self.from, self.to(), self.duration_s);
        match self.shape {
            Shape::Constant => a,
            Shape::Ramp => a + (b - a) * (t / d),
            Shape::Decay => b + (a - b) * (-t * 4.0 / d).exp(),
        }
    }

    /// ∫₀ᵗ λ as a fraction of peak × seconds.
    fn integral_to(&self, t: f64) -> f64 {
        let (a, b, d) = (self.from, self.to(), self.duration_s);
        match self.shape {
            Shape::Constant => a * t,
            Shape::Ramp => a * t + (b - a) * t * t / (2.0 * d),
            Shape::Decay => {
                let tau = d / 4.0;
                b * t + (a - b) * tau * (1.0 - (-t / tau).exp())
            }
        }
    }
}

impl Scenario {
    /// A built-in profile by name.
    pub fn profile(name: &str) -> Result<Scenario, ScenarioError> {
        let text = PROFILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| ScenarioError::UnknownProfile(name.to_string()))?;
        Scenario::from_toml(text)
    }

    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::from_toml(&text).map_err(|e| match e {
            ScenarioError::Toml(source) => ScenarioError::TomlFile {
                path: path.display().to_string(),
                source,
            },
            ScenarioError::Invalid(why) => {
                ScenarioError::Invalid(format!("{}: {why}", path.display()))
            }
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        let finite_pos = |x: f64| x.is_finite() && x > 0.0;
        if !finite_pos(self.peak_rate_per_s) {
            return bad(format!(
                "peak_rate_per_s must be > 0, got {}",
                self.peak_rate_per_s
            ));
        }
        if !finite_pos(self.time_scale) {
            return bad(format!("time scale must be > 0, got {}", self.time_scale));
        }
        let c = &self.catalog;
        if c.skus == 0 {
            return bad("catalog.skus must be at least 1".into());
        }
        if c.first_sku_id.checked_add(c.skus - 1).is_none() {
            return bad("catalog.first_sku_id + skus overflows u32".into());
        }
        if c.per_user_limit == 0 {
            return bad("catalog.per_user_limit must be at least 1".into());
        }
        if c.hold_ttl_ms == 0 {
            return bad("catalog.hold_ttl_ms must be at least 1".into());
        }
        match c.stock {
            StockSpec::Fixed { units: 0 } => {
                return bad("catalog.stock.units must be at least 1".into());
            }
            StockSpec::Uniform { min, max } if min == 0 || max < min => {
                return bad(format!(
                    "catalog.stock needs 1 <= min <= max, got {min}..={max}"
                ));
            }
            StockSpec::Demand { coverage, min } if !finite_pos(coverage) || min == 0 => {
                return bad("catalog.stock needs coverage > 0 and min >= 1".into());
            }
            _ => {}
        }
        let u = &self.users;
        if u.population == 0 {
            return bad("users.population must be at least 1".into());
        }
        if !(u.zipf_s.is_finite() && u.zipf_s >= 0.0) {
            return bad(format!("users.zipf_s must be >= 0, got {}", u.zipf_s));
        }
        if !(0.0..1.0).contains(&u.bot_fraction) {
            return bad(format!(
                "users.bot_fraction must be in [0, 1), got {}",
                u.bot_fraction
            ));
        }
        if !finite_pos(u.bot_rate_multiplier) {
            return bad("users.bot_rate_multiplier must be > 0".into());
        }
        if u.qty_max == 0 {
            return bad("users.qty_max must be at least 1".into());
        }
        let f = &self.funnel;
        let prob = |x: f64| (0.0..=1.0).contains(&x);
        if !prob(f.pay_probability) || !prob(f.cancel_probability) {
            return bad("funnel probabilities must be in [0, 1]".into());
        }
        if f.pay_probability + f.cancel_probability > 1.0 + 1e-9 {
            return bad("funnel.pay_probability + cancel_probability must be <= 1".into());
        }
        if !prob(f.duplicate_rate) {
            return bad("funnel.duplicate_rate must be in [0, 1]".into());
        }
        for (name, d) in [("pay_delay", f.pay_delay), ("cancel_delay", f.cancel_delay)] {
            if !(finite_pos(d.median_ms) && d.sigma.is_finite() && d.sigma >= 0.0) {
                return bad(format!("funnel.{name} needs median_ms > 0 and sigma >= 0"));
            }
        }
        if self.phases.is_empty() {
            return bad("at least one [[phases]] entry is required".into());
        }
        for p in &self.phases {
            if !finite_pos(p.duration_s) {
                return bad(format!("phase `{}`: duration_s must be > 0", p.name));
            }
            let ok = |x: f64| x.is_finite() && x >= 0.0;
            if !ok(p.from) || !ok(p.to()) {
                return bad(format!("phase `{}`: from/to must be >= 0", p.name));
            }
            if p.shape == Shape::Decay && p.to.is_none() {
                return bad(format!("phase `{}`: a decay needs `to`", p.name));
            }
        }
        Ok(())
    }

    /// Total nominal duration of the phases, in seconds.
    pub fn nominal_duration_s(&self) -> f64 {
        self.phases.iter().map(|p| p.duration_s).sum()
    }

    /// Scaled (real) duration of the run's schedule, in seconds.
    pub fn duration_s(&self) -> f64 {
        self.nominal_duration_s() * self.time_scale
    }

    /// Stretches time so the schedule lasts `duration_s`.
    pub fn set_duration_s(&mut self, duration_s: f64) -> Result<(), ScenarioError> {
        if !(duration_s.is_finite() && duration_s > 0.0) {
            return Err(ScenarioError::Invalid(format!(
                "duration must be > 0, got {duration_s}s"
            )));
        }
        self.time_scale = duration_s / self.nominal_duration_s();
        Ok(())
    }

    /// Scales the rate so that the highest λ offered is `rate_per_s`.
    pub fn set_peak_rate(&mut self, rate_per_s: f64) -> Result<(), ScenarioError> {
        if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
            return Err(ScenarioError::Invalid(format!(
                "rate must be > 0, got {rate_per_s}"
            )));
        }
        let peak_fraction = self.peak_fraction();
        self.peak_rate_per_s = rate_per_s / peak_fraction;
        Ok(())
    }

    /// The largest λ fraction any phase reaches.
    fn peak_fraction(&self) -> f64 {
        let m = self
            .phases
            .iter()
            .map(|p| p.from.max(p.to()))
            .fold(0.0, f64::max);
        if m > 0.0 { m } else { 1.0 }
    }

    /// The highest scheduled rate, in requests per second.
    pub fn peak_offered_rate_per_s(&self) -> f64 {
        self.peak_rate_per_s * self.peak_fraction()
    }

    /// Scaled hold TTL sent to the target.
    pub fn hold_ttl_ms(&self) -> u64 {
        ((self.catalog.hold_ttl_ms as f64 * self.time_scale).round() as u64).max(1)
    }

    /// λ at real time `t_s` seconds since the start, in requests per second.
    pub fn rate_at(&self, t_s: f64) -> f64 {
        let mut start = 0.0;
        let nominal_t = t_s / self.time_scale;
        for p in &self.phases {
            if nominal_t < start + p.duration_s {
                return self.peak_rate_per_s * p.fraction_at(nominal_t - start).max(0.0);
            }
            start += p.duration_s;
        }
        0.0
    }

    /// Expected number of scheduled arrivals in real time `[0, t_s)`: ∫λ exactly.
    pub fn expected_arrivals_until(&self, t_s: f64) -> f64 {
        let nominal_t = t_s / self.time_scale;
        let mut start = 0.0;
        let mut total = 0.0;
        for p in &self.phases {
            if nominal_t <= start {
                break;
            }
            let within = (nominal_t - start).min(p.duration_s);
            total += p.integral_to(within);
            start += p.duration_s;
        }
        total * self.peak_rate_per_s * self.time_scale
    }

    /// The funnel's expected pay rate at real time `t_s`, in pays per second, when every fresh
    /// reserve is held: `pay_probability × ∫ λ(t − d) f(d) dd`, with f the scaled log-normal
    /// pay-delay density. Integrated over the delay's standard-normal quantile z
    /// (d = median·e^(σz)) by the midpoint rule on z ∈ [−8, 8]: exact to far below a pay per
    /// second for every shipped profile. Sold-out and over-limit reserves pay nothing, so a
    /// run's measured pay rate is at most this.
    pub fn expected_pay_rate_at(&self, t_s: f64) -> f64 {
        const STEPS: usize = 4_000;
        const Z_MAX: f64 = 8.0;
        let f = &self.funnel;
        let dz = 2.0 * Z_MAX / STEPS as f64;
        let median_s = f.pay_delay.median_ms / 1000.0 * self.time_scale;
        let mean_rate: f64 = (0..STEPS)
            .map(|i| {
                let z = -Z_MAX + (i as f64 + 0.5) * dz;
                let delay_s = median_s * (f.pay_delay.sigma * z).exp();
                let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let arrived_s = t_s - delay_s;
                if arrived_s < 0.0 {
                    0.0
                } else {
                    self.rate_at(arrived_s) * density * dz
                }
            })
            .sum();
        f.pay_probability * mean_rate
    }

    /// Real (scaled) start and end of each phase, in seconds, with its name.
    pub fn phase_bounds_s(&self) -> Vec<(String, f64, f64)> {
        let mut start = 0.0;
        self.phases
            .iter()
            .map(|p| {
                let s = start;
                start += p.duration_s;
                (p.name.clone(), s * self.time_scale, start * self.time_scale)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses_and_validates() {
        for (name, _) in PROFILES {
            let s = Scenario::profile(name).unwrap();
            assert_eq!(s.name, name);
            assert!(s.duration_s() > 10.0);
        }
        assert!(matches!(
            Scenario::profile("nope"),
            Err(ScenarioError::UnknownProfile(_))
        ));
    }

    #[test]
    fn double11_steps_to_325k_at_midnight() {
        let s = Scenario::profile("double11").unwrap();
        let bounds = s.phase_bounds_s();
        let midnight = bounds.iter().find(|b| b.0 == "midnight").unwrap().1;
        assert!(s.rate_at(midnight - 0.01) < 50_000.0);
        assert!((s.rate_at(midnight + 0.01) - 325_000.0).abs() < 1.0);
        assert!((s.peak_offered_rate_per_s() - 325_000.0).abs() < 1.0);
    }

    /// The published 2017 shape (docs/workload.md): orders step to 325,000/s at midnight and
    /// payments peak at 256,000/s 5 min 22 s later — compressed 30× in the nominal 60 s profile,
    /// and by the same factor as everything else when `--duration` stretches it.
    #[test]
    fn double11_payments_peak_at_256k_5min22s_after_the_step() {
        const REAL_DELAY_S: f64 = 5.0 * 60.0 + 22.0;
        const COMPRESSION: f64 = 30.0;
        for duration_s in [60.0, 20.0, 1800.0] {
            let mut s = Scenario::profile("double11").unwrap();
            s.set_duration_s(duration_s).unwrap();
            let midnight = s
                .phase_bounds_s()
                .iter()
                .find(|b| b.0 == "midnight")
                .unwrap()
                .1;
            assert!((s.rate_at(midnight + 1e-6) - 325_000.0).abs() < 1.0);
            assert!((s.peak_offered_rate_per_s() - 325_000.0).abs() < 1.0);
            // The pay rate over the whole run, every 1/1000 of the run.
            let dt = s.duration_s() / 1000.0;
            let (peak_t, peak) = (0..1000)
                .map(|i| i as f64 * dt)
                .map(|t| (t, s.expected_pay_rate_at(t)))
                .fold((0.0, 0.0), |best, p| if p.1 > best.1 { p } else { best });
            let delay_s = peak_t - midnight;
            let expected_delay_s = REAL_DELAY_S / COMPRESSION * s.time_scale;
            assert!(
                (peak / 256_000.0 - 1.0).abs() < 0.01,
                "{duration_s} s: payments peak at {peak:.0}/s"
            );
            assert!(
                (delay_s / expected_delay_s - 1.0).abs() < 0.03,
                "{duration_s} s: payments peak {delay_s:.2} s after the step, not {expected_delay_s:.2} s"
            );
        }
    }

    #[test]
    fn rate_and_duration_scaling() {
        let mut s = Scenario::profile("double11").unwrap();
        let before = s.expected_arrivals_until(s.duration_s());
        s.set_peak_rate(650_000.0).unwrap();
        s.set_duration_s(s.nominal_duration_s() * 2.0).unwrap();
        let after = s.expected_arrivals_until(s.duration_s());
        assert!((after / before - 4.0).abs() < 1e-9);
        assert!((s.peak_offered_rate_per_s() - 650_000.0).abs() < 1e-6);
        assert!(s.set_peak_rate(0.0).is_err());
        assert!(s.set_duration_s(-1.0).is_err());
    }

    #[test]
    fn integral_matches_numeric_quadrature() {
        let s = Scenario::profile("double11").unwrap();
        let n = 200_000;
        let dt = s.duration_s() / n as f64;
        let numeric: f64 = (0..n).map(|i| s.rate_at((i as f64 + 0.5) * dt) * dt).sum();
        let exact = s.expected_arrivals_until(s.duration_s());
        assert!((numeric / exact - 1.0).abs() < 1e-3, "{numeric} vs {exact}");
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let text = Scenario::profile("steady").unwrap();
        let _ = text;
        let base = PROFILES[1].1;
        let broken = base.replace("per_user_limit = ", "per_user_limit = 0 #");
        let err = Scenario::from_toml(&broken).unwrap_err().to_string();
        assert!(err.contains("per_user_limit"), "{err}");
        let err = Scenario::from_toml("name = 3").unwrap_err();
        assert!(matches!(err, ScenarioError::Toml(_)));
        let typo = base.replace("zipf_s", "zipf_x");
        assert!(Scenario::from_toml(&typo).is_err());
    }
}
