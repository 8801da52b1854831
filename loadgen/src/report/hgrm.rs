//! The `.hgrm` percentile distribution: the text HdrHistogram's `outputPercentileDistribution`
//! prints (and wrk2 shows with `--latency`), which the online HdrHistogram plotter reads.
//! Values are written in milliseconds. It owns this one format.

use hdrhistogram::Histogram;
use std::fmt::Write;

/// Formats `h` (values in ns) like Java's `outputPercentileDistribution(out, 5, 1e6)`.
pub fn format(h: &Histogram<u64>) -> String {
    let ratio = 1_000_000.0;
    let mut s = String::new();
    s.push_str("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / ratio;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:14.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:14.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / ratio,
        h.stdev() / ratio
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / ratio,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    );
    s
}

/// HdrHistogram's sub-bucket count for a precision: 2^⌈log2(2·10^sigfig)⌉.
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let mut h = crate::recorder::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = format(&h);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(text.contains("#[Max     =       10.00"), "{text}");
        assert!(text.contains("SubBuckets     =         2048"), "{text}");
        assert!(text.contains("Total count    =        10000"));
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("Value"))
            .collect();
        assert!(rows.len() > 50);
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "10000");
        // Median row is about 5 ms.
        let median = rows
            .iter()
            .map(|r| r.split_whitespace().collect::<Vec<_>>())
            .find(|c| c[1].parse::<f64>().unwrap() >= 0.5)
            .unwrap();
        assert!((median[0].parse::<f64>().unwrap() - 5.0).abs() < 0.01);
    }
}
