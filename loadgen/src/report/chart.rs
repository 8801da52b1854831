//! The one chart module of the load generator: the palette, the SVG canvas and the line-series
//! and marker helpers that the run report's charts (`html`) and the sweep's capacity curve
//! (`sweep`) are drawn with, so every chart looks and is built the same way. It draws what it
//! is given; it must not compute figures.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

pub type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A chart over the coordinates `X` × `Y` were built from.
pub type Chart<'a, X, Y> = ChartContext<
    'a,
    SVGBackend<'a>,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// A drawing area on the SVG canvas.
pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Width and height of one chart, in pixels.
pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 380;

/// The series colours, in order (the category10 palette).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
pub const GREEN: RGBColor = PALETTE[2];
pub const RED: RGBColor = PALETTE[3];
pub const GREY: RGBColor = RGBColor(160, 160, 160);
/// Thresholds (SLO limits) and marks (the capacity found): a colour no series has.
pub const LIMIT: RGBColor = RGBColor(0, 0, 0);

/// Width of the strip at the right of every chart that holds its legend, so that no legend
/// is ever drawn over the data.
pub const LEGEND_WIDTH: u32 = 200;

/// Splits a chart's area into the plot and the legend's strip at its right.
pub fn split_legend<'a>(area: &Area<'a>) -> (Area<'a>, Area<'a>) {
    let (width, _) = area.dim_in_pixel();
    area.split_horizontally(width.saturating_sub(LEGEND_WIDTH))
}

/// A tick label that reads at a glance: 450k, 1.2M, 0.05, 3 (never `450000.0`).
pub fn si(v: &f64) -> String {
    let v = *v;
    let trim = |x: f64, decimals: usize| {
        let text = format!("{x:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    };
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", trim(v / 1e9, 2))
    } else if a >= 1e6 {
        format!("{}M", trim(v / 1e6, 2))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3, 2))
    } else if a >= 1.0 || a == 0.0 {
        trim(v, 2)
    } else {
        trim(v, 4)
    }
}

/// Draws on a white canvas of `size` and returns the SVG text, or why it could not be drawn.
pub fn svg(size: (u32, u32), draw: impl FnOnce(Area<'_>) -> DrawResult) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(root.clone()).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Escapes text for HTML and SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A chart with the common caption, margins and label areas over `x` × `y`.
pub fn build<'a, X: AsRangedCoord, Y: AsRangedCoord>(
    area: &Area<'a>,
    caption: &str,
    x: X,
    y: Y,
) -> Result<Chart<'a, X, Y>, Box<dyn std::error::Error>> {
    Ok(ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?)
}

/// The grid, with readable tick labels ([`si`]) and the axes' descriptions.
pub fn draw_mesh<'a, 'b, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> DrawResult
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&si)
        .y_label_formatter(&si)
        .draw()?;
    Ok(())
}

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Line,
    /// A line with a dot on every point.
    LineAndDots,
    /// Dashed, thin (limits and reference lines).
    Dashed,
    /// A dot on every point, no line.
    Dots,
}

/// One named series.
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub style: Style,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// Series in the palette's colours, in order.
    pub fn palette(
        series: impl IntoIterator<Item = (String, Vec<(f64, f64)>)>,
        style: Style,
    ) -> Vec<Series> {
        series
            .into_iter()
            .enumerate()
            .map(|(i, (name, points))| Series {
                name,
                color: PALETTE[i % PALETTE.len()],
                style,
                points,
            })
            .collect()
    }
}

/// Draws every series, then their legend in `legend` (the strip [`split_legend`] leaves).
pub fn draw_series<'chart, 'backend: 'chart, X, Y>(
    chart: &mut ChartContext<'chart, SVGBackend<'backend>, Cartesian2d<X, Y>>,
    series: impl IntoIterator<Item = Series>,
    legend: &Area<'_>,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let mut entries = Vec::new();
    for s in series {
        let color = s.color;
        match s.style {
            Style::Line | Style::LineAndDots => {
                chart.draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?;
            }
            Style::Dashed => {
                chart.draw_series(DashedLineSeries::new(
                    s.points.iter().copied(),
                    6,
                    4,
                    color.stroke_width(1),
                ))?;
            }
            Style::Dots => {}
        }
        if matches!(s.style, Style::LineAndDots | Style::Dots) {
            chart.draw_series(dots(&s.points, color))?;
        }
        entries.push((s.name, color, s.style));
    }
    draw_legend(legend, &entries)
}

/// One legend entry per series, top down: its line (dashed, dotted) and its name.
pub fn draw_legend(area: &Area<'_>, entries: &[(String, RGBColor, Style)]) -> DrawResult {
    let font = ("sans-serif", 13).into_font();
    for (i, (name, color, style)) in entries.iter().enumerate() {
        let y = 44 + i as i32 * 20;
        let color = *color;
        match style {
            Style::Line | Style::LineAndDots => {
                area.draw(&PathElement::new(
                    vec![(8, y), (32, y)],
                    color.stroke_width(2),
                ))?;
            }
            Style::Dashed => {
                for x in [8, 18, 28] {
                    area.draw(&PathElement::new(vec![(x, y), (x + 6, y)], color))?;
                }
            }
            Style::Dots => {}
        }
        if matches!(style, Style::LineAndDots | Style::Dots) {
            area.draw(&Circle::new((20, y), 3, color.filled()))?;
        }
        area.draw(&Text::new(
            name.clone(),
            (40, y - 7),
            font.clone().color(&BLACK),
        ))?;
    }
    Ok(())
}

/// A filled dot on each point.
pub fn dots(
    points: &[(f64, f64)],
    color: RGBColor,
) -> impl Iterator<Item = Circle<(f64, f64), i32>> + '_ {
    points
        .iter()
        .map(move |&p| Circle::new(p, 3, color.filled()))
}
