//! Quantities with units as people type them on a command line or in a TOML file: durations
//! (`20s`, `1m30s`, `250ms`), rates (`325k`, `1.5M` per second) and speeds (`2x`).
//!
//! This is the one parser every flag of both binaries uses (`flashsale-engine serve` and
//! `flashsale-loadgen`), so a duration or a rate is accepted the same way everywhere. It owns
//! only parsing and the error text; it must not know clap or any flag: the binaries pass these
//! functions as value parsers.

use std::time::Duration;

use thiserror::Error;

/// A quantity that could not be read; its message names the text and gives examples.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnitError {
    /// Not a duration: no number, an unknown unit, or a malformed term.
    #[error("`{0}` is not a duration (examples: 20s, 1m30s, 250ms, 0.5s)")]
    NotADuration(String),
    /// Not a rate.
    #[error("`{0}` is not a rate (examples: 50000, 325k, 1.5M)")]
    NotARate(String),
    /// Not a speed.
    #[error("`{0}` is not a speed (examples: 1, 2x, 0.5x)")]
    NotASpeed(String),
    /// Parsed, but must be greater than zero here.
    #[error("`{0}` must be greater than zero")]
    NotPositive(String),
    /// Parsed, but beyond what the quantity can hold.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// Seconds per unit, longest suffix first so `ms` is not read as `m` then `s`.
const DURATION_UNITS: [(&str, f64); 8] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86_400.0),
];

/// A duration: one or more `<number><unit>` terms (`1m30s`, `1h`, `250ms`, `0.5s`); a bare
/// number is seconds. Zero is allowed (`0`, `0s`): callers that need a positive duration use
/// [`parse_positive_duration`].
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let t = text.trim();
    let bad = || UnitError::NotADuration(text.to_string());
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = t.parse::<f64>() {
        return seconds_to_duration(seconds, text);
    }
    let mut rest = t;
    let mut seconds = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let (suffix, scale) = DURATION_UNITS
            .iter()
            .filter(|(suffix, _)| rest.starts_with(suffix))
            .max_by_key(|(suffix, _)| suffix.len())
            .ok_or_else(bad)?;
        rest = &rest[suffix.len()..];
        seconds += number * scale;
    }
    seconds_to_duration(seconds, text)
}

/// [`parse_duration`], refusing zero.
pub fn parse_positive_duration(text: &str) -> Result<Duration, UnitError> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(UnitError::NotPositive(text.to_string()));
    }
    Ok(duration)
}

fn seconds_to_duration(seconds: f64, text: &str) -> Result<Duration, UnitError> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(UnitError::NotADuration(text.to_string()));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| UnitError::TooLarge(text.to_string()))
}

/// A rate per second, greater than zero: a number with an optional `k` (thousand) or `M`
/// (million) suffix, and an optional `/s` (`325k`, `1.5M/s`, `50000`).
pub fn parse_rate(text: &str) -> Result<f64, UnitError> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let (number, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| UnitError::NotARate(text.to_string()))?;
    if !value.is_finite() {
        return Err(UnitError::NotARate(text.to_string()));
    }
    if value <= 0.0 {
        return Err(UnitError::NotPositive(text.to_string()));
    }
    Ok(value * scale)
}

/// [`parse_rate`] for a whole number of events per second (`--user-rate-limit 10k`).
pub fn parse_rate_u32(text: &str) -> Result<u32, UnitError> {
    let rate = parse_rate(text)?;
    if rate > f64::from(u32::MAX) {
        return Err(UnitError::TooLarge(text.to_string()));
    }
    if rate.fract() != 0.0 {
        return Err(UnitError::NotARate(text.to_string()));
    }
    // Checked just above: a whole number in 1..=u32::MAX.
    Ok(rate as u32)
}

/// A speed multiplier greater than zero: `2`, `2x`, `0.5x`.
pub fn parse_speed(text: &str) -> Result<f64, UnitError> {
    let t = text.trim();
    let t = t.strip_suffix(['x', 'X']).unwrap_or(t);
    let value: f64 = t
        .parse()
        .map_err(|_| UnitError::NotASpeed(text.to_string()))?;
    if !value.is_finite() {
        return Err(UnitError::NotASpeed(text.to_string()));
    }
    if value <= 0.0 {
        return Err(UnitError::NotPositive(text.to_string()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u128 {
        parse_duration(text).expect(text).as_millis()
    }

    #[test]
    fn durations_people_type() {
        assert_eq!(ms("20s"), 20_000);
        assert_eq!(ms("1m30s"), 90_000);
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("0.5s"), 500);
        assert_eq!(ms("2"), 2_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms(" 1m "), 60_000);
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_are_named() {
        for text in ["", "s", "20x", "1m30", "-5s", "ten", "1..5s", "inf", "NaN"] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.to_string().contains(&format!("`{text}`")), "{err}");
        }
        assert_eq!(
            parse_positive_duration("0s"),
            Err(UnitError::NotPositive("0s".into()))
        );
        assert!(matches!(
            parse_duration("1e30"),
            Err(UnitError::TooLarge(_))
        ));
    }

    #[test]
    fn rates_and_speeds() {
        assert_eq!(parse_rate("325k").unwrap(), 325_000.0);
        assert_eq!(parse_rate("1.5M").unwrap(), 1_500_000.0);
        assert_eq!(parse_rate("2M/s").unwrap(), 2_000_000.0);
        assert_eq!(parse_rate("50000").unwrap(), 50_000.0);
        assert_eq!(parse_rate_u32("10k").unwrap(), 10_000);
        assert_eq!(parse_speed("2x").unwrap(), 2.0);
        assert_eq!(parse_speed("0.5").unwrap(), 0.5);
        assert_eq!(parse_rate("-5k"), Err(UnitError::NotPositive("-5k".into())));
        assert!(
            parse_rate("5m").is_err(),
            "lower-case m is minutes, not a rate"
        );
        assert!(parse_rate_u32("1.5").is_err());
        assert!(parse_rate_u32("5000M").is_err());
        assert!(parse_speed("0x").is_err());
        assert!(parse_speed("fast").is_err());
    }
}
