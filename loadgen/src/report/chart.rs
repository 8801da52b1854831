//! The one chart module of the load generator: the palette, the SVG canvas and the line-series
//! and marker helpers that the run report's charts (`html`) and the sweep's capacity curve
//! (`sweep`) are drawn with, so every chart looks and is built the same way. It draws what it
//! is given; it must not compute figures.

use plotters::coord::Shift;
use plotters::coord::ranged1d::AsRangedCoord;
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

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Line,
    /// A line with a dot on every point.
    LineAndDots,
    /// Dashed, thin (limits and reference lines).
    Dashed,
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

/// Where the legend goes.
pub use plotters::chart::SeriesLabelPosition as LegendAt;

/// Draws every series with its legend entry, then the legend.
pub fn draw_series<'chart, 'backend: 'chart, X, Y>(
    chart: &mut ChartContext<'chart, SVGBackend<'backend>, Cartesian2d<X, Y>>,
    series: impl IntoIterator<Item = Series>,
    legend_at: LegendAt,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for s in series {
        let color = s.color;
        let drawn = match s.style {
            Style::Line | Style::LineAndDots => chart.draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?,
            Style::Dashed => chart.draw_series(DashedLineSeries::new(
                s.points.iter().copied(),
                6,
                4,
                color.stroke_width(1),
            ))?,
        };
        drawn
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
        if s.style == Style::LineAndDots {
            chart.draw_series(dots(&s.points, color))?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
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
