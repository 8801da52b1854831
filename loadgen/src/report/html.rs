//! `report.html`: one self-contained page with inline SVG charts drawn by plotters — offered vs
//! achieved rate over time, corrected latency percentiles over time, the percentile spectrum
//! (corrected and service time), and the outcome mix over time (log scale, so a flood of
//! refusals and a trickle of errors both show) — with the `--slo` thresholds drawn on the
//! charts they bound, the verdicts (run status, validity, invariants with the failing SKUs,
//! every SLO) at the top in colour, and the summary table. It owns the page; it must not
//! compute figures beyond what it plots.

use super::chart::{self, HEIGHT, Series, Style, WIDTH, escape as html_escape};
use super::{RunStatus, Summary};
use crate::recorder::{IntervalPoint, LABELS, N_LABELS, OPS, OpHistograms};
use crate::slo::{Metric, Slo};
use crate::verify::Verification;
use plotters::prelude::*;
use std::fmt::Write;

/// One chart of the page, or a note saying why it is missing.
fn svg(draw: impl FnOnce(chart::Area<'_>) -> chart::DrawResult) -> String {
    chart::svg((WIDTH, HEIGHT), draw)
        .unwrap_or_else(|e| format!("<p>chart unavailable: {}</p>", html_escape(&e)))
}

/// Draws each named series as a line in the palette's colours, then `limits` (dashed), with
/// the legend in `legend`.
fn draw_lines<'chart, 'backend: 'chart, X, Y>(
    chart: &mut ChartContext<'chart, SVGBackend<'backend>, Cartesian2d<X, Y>>,
    series: impl IntoIterator<Item = (String, Vec<(f64, f64)>)>,
    limits: Vec<Series>,
    legend: &chart::Area<'_>,
) -> chart::DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let mut all = Series::palette(series, Style::Line);
    all.extend(limits);
    chart::draw_series(chart, all, legend)
}

/// The run-wide thresholds of `summary`'s SLOs that `pick` maps to a value on a chart's y axis
/// (phase thresholds hold over part of the run only and are left to the verdicts).
fn thresholds(summary: &Summary, pick: impl Fn(&Slo) -> Option<f64>) -> Vec<(String, f64)> {
    summary
        .slo
        .iter()
        .filter_map(|r| Slo::parse(&r.spec).ok())
        .filter(|slo| slo.phase.is_none())
        .filter_map(|slo| pick(&slo).map(|y| (format!("SLO {}", slo.spec), y)))
        .collect()
}

/// Horizontal dashed lines across `x_min..x_max` at each threshold, in the limits' colour.
fn limit_lines(limits: &[(String, f64)], x_min: f64, x_max: f64) -> Vec<Series> {
    limits
        .iter()
        .map(|(name, y)| Series {
            name: name.clone(),
            color: chart::LIMIT,
            style: Style::Dashed,
            points: vec![(x_min, *y), (x_max, *y)],
        })
        .collect()
}

fn rate_chart(points: &[IntervalPoint], summary: &Summary) -> String {
    svg(|root| {
        let t_max = points.last().map_or(1.0, |p| p.start_s + 1.0);
        let limits = thresholds(summary, |slo| {
            matches!(slo.metric, Metric::Rate { .. }).then_some(slo.limit)
        });
        let y_max = points
            .iter()
            .map(|p| p.offered.max(p.completed))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let y_max = limits.iter().fold(y_max, |m, l| m.max(l.1)) * 1.1;
        let (plot, legend) = chart::split_legend(&root);
        let mut chart = chart::build(
            &plot,
            "Offered vs achieved rate (requests/s)",
            0f64..t_max,
            0f64..y_max,
        )?;
        chart::draw_mesh(&mut chart, "seconds", "requests/s")?;
        let series = [
            (
                "offered",
                points.iter().map(|p| p.offered).collect::<Vec<_>>(),
            ),
            ("achieved", points.iter().map(|p| p.completed).collect()),
        ]
        .map(|(name, values)| {
            let data = points
                .iter()
                .zip(values)
                .map(|(p, v)| (p.start_s, v as f64));
            (name.to_string(), data.collect())
        });
        draw_lines(
            &mut chart,
            series,
            limit_lines(&limits, 0.0, t_max),
            &legend,
        )
    })
}

/// Latency thresholds in ms: corrected ones on the corrected charts, service ones on none
/// but the spectrum (which shows both).
fn latency_limits_ms(summary: &Summary, service_too: bool) -> Vec<(String, f64)> {
    thresholds(summary, |slo| match slo.metric {
        Metric::Latency { service, .. } if service_too || !service => Some(slo.limit / 1000.0),
        _ => None,
    })
}

fn latency_chart(points: &[IntervalPoint], summary: &Summary) -> String {
    svg(|root| {
        let t_max = points.last().map_or(1.0, |p| p.start_s + 1.0);
        let series: Vec<(String, Vec<(f64, f64)>)> =
            [(0, "p50"), (0, "p99"), (0, "p99.9"), (1, "p99"), (2, "p99")]
                .iter()
                .map(|&(op, q)| {
                    let data = points
                        .iter()
                        .filter(|p| p.corrected[op].count > 0)
                        .map(|p| {
                            let c = &p.corrected[op];
                            let us = match q {
                                "p50" => c.p50_us,
                                "p99" => c.p99_us,
                                _ => c.p999_us,
                            };
                            (p.start_s, (us / 1000.0).max(0.001))
                        })
                        .collect();
                    (format!("{} {q}", OPS[op]), data)
                })
                .collect();
        let limits = latency_limits_ms(summary, false);
        let y_max = series
            .iter()
            .flat_map(|(_, d)| d.iter().map(|p| p.1))
            .chain(limits.iter().map(|l| l.1))
            .fold(1.0f64, f64::max)
            * 2.0;
        let (plot, legend) = chart::split_legend(&root);
        let mut chart = chart::build(
            &plot,
            "Corrected latency over time (ms, log)",
            0f64..t_max,
            (0.001f64..y_max).log_scale(),
        )?;
        chart::draw_mesh(&mut chart, "seconds", "ms")?;
        draw_lines(
            &mut chart,
            series,
            limit_lines(&limits, 0.0, t_max),
            &legend,
        )
    })
}

fn spectrum_chart(total: &[OpHistograms; 3], summary: &Summary) -> String {
    svg(|root| {
        let mut series = Vec::new();
        for (op, h) in OPS.iter().zip(total) {
            for (kind, hist) in [("corrected", &h.corrected), ("service", &h.service)] {
                if hist.is_empty() {
                    continue;
                }
                let data: Vec<(f64, f64)> = hist
                    .iter_quantiles(5)
                    .map(|v| v.quantile_iterated_to())
                    .filter(|q| *q < 1.0)
                    .map(|q| {
                        let x = 1.0 / (1.0 - q);
                        (x, (hist.value_at_quantile(q) as f64 / 1e6).max(0.001))
                    })
                    .collect();
                series.push((format!("{op} {kind}"), data));
            }
        }
        let x_max = series
            .iter()
            .flat_map(|(_, d)| d.iter().map(|p| p.0))
            .fold(10.0f64, f64::max);
        let limits = latency_limits_ms(summary, true);
        let y_max = series
            .iter()
            .flat_map(|(_, d)| d.iter().map(|p| p.1))
            .chain(limits.iter().map(|l| l.1))
            .fold(1.0f64, f64::max)
            * 2.0;
        let (plot, legend) = chart::split_legend(&root);
        let mut chart = chart::build(
            &plot,
            "Percentile spectrum (ms, log) vs 1/(1-percentile)",
            (1f64..x_max).log_scale(),
            (0.001f64..y_max).log_scale(),
        )?;
        chart::draw_mesh(
            &mut chart,
            "1/(1-percentile): 10 = p90, 100 = p99, 1000 = p99.9",
            "ms",
        )?;
        draw_lines(
            &mut chart,
            series,
            limit_lines(&limits, 1.0, x_max),
            &legend,
        )
    })
}

/// Where a zero sits on the outcome chart's log scale: its floor.
const OUTCOME_FLOOR: f64 = 0.5;

fn outcome_chart(points: &[IntervalPoint]) -> String {
    svg(|root| {
        let t_max = points.last().map_or(1.0, |p| p.start_s + 1.0);
        let used: Vec<usize> = (0..N_LABELS)
            .filter(|&l| points.iter().any(|p| p.outcomes[l] > 0))
            .collect();
        let y_max = points
            .iter()
            .map(|p| p.outcomes.iter().copied().max().unwrap_or(0))
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 2.0;
        let (plot, legend) = chart::split_legend(&root);
        let mut chart = chart::build(
            &plot,
            "Outcome mix over time (answers/s, log; none at the bottom line)",
            0f64..t_max,
            (OUTCOME_FLOOR..y_max).log_scale(),
        )?;
        chart::draw_mesh(&mut chart, "seconds", "answers/s")?;
        let series = used.iter().map(|&l| {
            let data = points
                .iter()
                .map(|p| (p.start_s, (p.outcomes[l] as f64).max(OUTCOME_FLOOR)));
            (LABELS[l].to_string(), data.collect())
        });
        draw_lines(&mut chart, series, Vec::new(), &legend)
    })
}

/// One verdict line: ✔ or ✘ and the text, green or red (grey when nothing was judged).
fn verdict_line(page: &mut String, ok: Option<bool>, text: &str) {
    let (class, mark) = match ok {
        Some(true) => ("verdict-pass", "✔"),
        Some(false) => ("verdict-fail", "✘"),
        None => ("verdict-none", "–"),
    };
    let _ = write!(
        page,
        "<div class=\"{class}\">{mark} {}</div>",
        html_escape(text)
    );
}

/// The whole page.
pub fn render(summary: &Summary, points: &[IntervalPoint], total: &[OpHistograms; 3]) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>flashsale load report: {}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:auto}}pre{{background:#f4f4f4;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere}}\
         .verdict-pass{{color:#1a7f37}}.verdict-fail{{color:#c62828}}.verdict-none{{color:#666}}\
         .verdicts{{font-weight:bold;font-size:1.1em;margin:8px 0;padding:8px;border:1px solid #ddd}}\
         .verdicts div{{margin:2px 0}}</style></head><body>",
        html_escape(&summary.scenario)
    );
    let _ = write!(
        page,
        "<h1>flashsale load report: {}</h1><p>target {} · seed {} · schedule {:.1} s · elapsed {:.1} s</p>",
        html_escape(&summary.scenario),
        html_escape(&summary.target),
        summary.seed,
        summary.schedule_duration_s,
        summary.elapsed_s
    );
    // The verdicts first, each in its colour: how the run ended, whether its figures are the
    // target's, the invariants (with the failing SKUs), every SLO.
    page.push_str("<div class=\"verdicts\">");
    if summary.status != RunStatus::Complete {
        verdict_line(
            &mut page,
            Some(false),
            &format!("run {}: {}", summary.status.label(), summary.status_detail),
        );
    }
    verdict_line(
        &mut page,
        Some(summary.validity.is_valid()),
        &summary.validity_line(),
    );
    let verdict = &summary.verdict;
    let verdict_ok = match verdict.status {
        Verification::NotChecked => None,
        status => Some(status == Verification::Passed),
    };
    let mut lines = verdict.lines().into_iter();
    if let Some(first) = lines.next() {
        verdict_line(&mut page, verdict_ok, &first);
    }
    let rest: Vec<String> = lines.collect();
    if !rest.is_empty() {
        let _ = write!(
            page,
            "<pre class=\"{}\">{}</pre>",
            if verdict_ok == Some(false) {
                "verdict-fail"
            } else {
                ""
            },
            html_escape(&rest.join("\n"))
        );
    }
    for slo in &summary.slo {
        verdict_line(&mut page, Some(slo.passed), &slo.line());
    }
    page.push_str("</div>");
    let _ = write!(page, "<pre>{}</pre>", html_escape(&summary.table()));
    for chart in [
        rate_chart(points, summary),
        latency_chart(points, summary),
        spectrum_chart(total, summary),
        outcome_chart(points),
    ] {
        page.push_str("<div>");
        page.push_str(&chart);
        page.push_str("</div>");
    }
    page.push_str("</body></html>\n");
    page
}
