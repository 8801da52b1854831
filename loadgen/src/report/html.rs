//! `report.html`: one self-contained page with inline SVG charts drawn by plotters — offered vs
//! achieved rate over time, corrected latency percentiles over time, the percentile spectrum
//! (corrected and service time), and the outcome mix over time — plus the summary table. It
//! owns the page; it must not compute figures beyond what it plots.

use super::chart::{self, HEIGHT, LegendAt, Series, Style, WIDTH, escape as html_escape};
use super::{RunStatus, Summary};
use crate::recorder::{IntervalPoint, LABELS, N_LABELS, OPS, OpHistograms};
use crate::verify::Verification;
use plotters::prelude::*;
use std::fmt::Write;

/// One chart of the page, or a note saying why it is missing.
fn svg(draw: impl FnOnce(chart::Area<'_>) -> chart::DrawResult) -> String {
    chart::svg((WIDTH, HEIGHT), draw)
        .unwrap_or_else(|e| format!("<p>chart unavailable: {}</p>", html_escape(&e)))
}

/// Draws each named series as a line in the palette's colours, with the legend every chart of
/// the report uses.
fn draw_lines<'chart, 'backend: 'chart, X, Y>(
    chart: &mut ChartContext<'chart, SVGBackend<'backend>, Cartesian2d<X, Y>>,
    series: impl IntoIterator<Item = (String, Vec<(f64, f64)>)>,
) -> chart::DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart::draw_series(
        chart,
        Series::palette(series, Style::Line),
        LegendAt::MiddleRight,
    )
}

fn rate_chart(points: &[IntervalPoint]) -> String {
    svg(|root| {
        let t_max = points.last().map_or(1.0, |p| p.start_s + 1.0);
        let y_max = points
            .iter()
            .map(|p| p.offered.max(p.completed))
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.1;
        let mut chart = chart::build(
            &root,
            "Offered vs achieved rate (requests/s)",
            0f64..t_max,
            0f64..y_max,
        )?;
        chart.configure_mesh().x_desc("seconds").draw()?;
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
        draw_lines(&mut chart, series)
    })
}

fn latency_chart(points: &[IntervalPoint]) -> String {
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
        let y_max = series
            .iter()
            .flat_map(|(_, d)| d.iter().map(|p| p.1))
            .fold(1.0f64, f64::max)
            * 2.0;
        let mut chart = chart::build(
            &root,
            "Corrected latency over time (ms, log)",
            0f64..t_max,
            (0.001f64..y_max).log_scale(),
        )?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("ms")
            .draw()?;
        draw_lines(&mut chart, series)
    })
}

fn spectrum_chart(total: &[OpHistograms; 3]) -> String {
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
        let y_max = series
            .iter()
            .flat_map(|(_, d)| d.iter().map(|p| p.1))
            .fold(1.0f64, f64::max)
            * 2.0;
        let mut chart = chart::build(
            &root,
            "Percentile spectrum (ms, log) vs 1/(1-percentile)",
            (1f64..x_max).log_scale(),
            (0.001f64..y_max).log_scale(),
        )?;
        chart
            .configure_mesh()
            .x_desc("1/(1-percentile): 10 = p90, 100 = p99, 1000 = p99.9")
            .y_desc("ms")
            .draw()?;
        draw_lines(&mut chart, series)
    })
}

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
            * 1.1;
        let mut chart = chart::build(
            &root,
            "Outcome mix over time (answers/s)",
            0f64..t_max,
            0f64..y_max,
        )?;
        chart.configure_mesh().x_desc("seconds").draw()?;
        let series = used.iter().map(|&l| {
            let data = points.iter().map(|p| (p.start_s, p.outcomes[l] as f64));
            (LABELS[l].to_string(), data.collect())
        });
        draw_lines(&mut chart, series)
    })
}

/// The whole page.
pub fn render(summary: &Summary, points: &[IntervalPoint], total: &[OpHistograms; 3]) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>flashsale load report: {}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:auto}}pre{{background:#f4f4f4;padding:8px;overflow:auto}}\
         .verdict-pass{{color:#1a7f37}}.verdict-fail{{color:#c62828}}</style></head><body>",
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
    let status_class = |ok: bool| if ok { "verdict-pass" } else { "verdict-fail" };
    if summary.status != RunStatus::Complete {
        let _ = write!(
            page,
            "<p class=\"verdict-fail\"><b>run {}: {}</b></p>",
            summary.status.label(),
            html_escape(&summary.status_detail)
        );
    }
    let _ = write!(
        page,
        "<p class=\"{}\"><b>{}</b></p>",
        status_class(summary.validity.is_valid()),
        html_escape(&summary.validity_line())
    );
    let verdict = &summary.verdict;
    let verdict_class = match verdict.status {
        Verification::NotChecked => "",
        status => status_class(status == Verification::Passed),
    };
    let _ = write!(
        page,
        "<pre class=\"{verdict_class}\"><b>{}</b></pre>",
        html_escape(&verdict.lines().join("\n"))
    );
    let _ = write!(page, "<pre>{}</pre>", html_escape(&summary.table()));
    for slo in &summary.slo {
        let _ = write!(
            page,
            "<p class=\"{}\">{}</p>",
            status_class(slo.passed),
            html_escape(&slo.line())
        );
    }
    for chart in [
        rate_chart(points),
        latency_chart(points),
        spectrum_chart(total),
        outcome_chart(points),
    ] {
        page.push_str("<div>");
        page.push_str(&chart);
        page.push_str("</div>");
    }
    page.push_str("</body></html>\n");
    page
}
