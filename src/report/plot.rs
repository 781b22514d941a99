//! Figures, rendered in memory as PNG (900×600) and SVG with plotters and the bundled
//! DejaVu Sans (no system fonts are used).
//!
//! Points that cannot be drawn (a non-finite value, or a value ≤ 0 on a log axis) are left
//! out; each figure then says so in a note at its bottom, and lists the note in
//! [`Plot::notes`].

use super::Results;
use crate::staircase::Censor;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::io;
use std::sync::Once;

#[path = "sweep_plot.rs"]
mod sweep_plot;
pub use sweep_plot::{sweep_csf_plot, sweep_peaks_plot, SweepCurve};

/// Width of every figure in pixels.
pub const PLOT_WIDTH: u32 = 900;
/// Height of every figure in pixels.
pub const PLOT_HEIGHT: u32 = 600;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The one look of every figure psyrun draws: the bundled DejaVu Sans at these sizes, these
/// colours (matplotlib's `tab10`, so figures sit well beside Python ones) and line widths.
mod style {
    use plotters::style::RGBColor;
    /// Figure title.
    pub(super) const TITLE: u32 = 22;
    /// The line under the title (what ran) and the legend.
    pub(super) const SUBTITLE: u32 = 14;
    /// Axis names.
    pub(super) const AXIS: u32 = 15;
    /// Tick labels.
    pub(super) const TICKS: u32 = 13;
    /// Panel titles in a grid of panels.
    pub(super) const PANEL: u32 = 14;
    /// Tick labels in a grid of small panels.
    pub(super) const SMALL_TICKS: u32 = 11;
    /// Notes at the bottom of a figure.
    pub(super) const NOTE: u32 = 13;
    /// Height of one note line.
    pub(super) const NOTE_LINE: u32 = 18;
    /// Data lines.
    pub(super) const LINE: u32 = 2;
    /// Marker radius.
    pub(super) const MARKER: i32 = 5;
    /// Measured data (the first series).
    pub(super) const BLUE: RGBColor = RGBColor(31, 119, 180);
    /// Reference lines (chance, the threshold level).
    pub(super) const GREY: RGBColor = RGBColor(127, 127, 127);
    /// Censored thresholds and the reported threshold.
    pub(super) const RED: RGBColor = RGBColor(214, 39, 40);
    /// Muted text (subtitles, legends).
    pub(super) const MUTED: RGBColor = RGBColor(80, 80, 80);
    /// Notes (what a figure leaves out).
    pub(super) const NOTE_COLOUR: RGBColor = RGBColor(120, 60, 0);
    /// One colour per overlaid series (repeats), in order.
    pub(super) const SERIES: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
}

/// A legend entry's symbol.
#[derive(Clone, Copy)]
enum Key {
    /// A solid line.
    Line(RGBColor),
    /// A solid line with a dot.
    LineDot(RGBColor),
    /// A dot.
    Dot(RGBColor),
    /// A dashed line.
    Dashed(RGBColor),
    /// A thin vertical line.
    Vertical(RGBColor),
    /// A hollow triangle (a censored threshold).
    Triangle(RGBColor),
}

/// Draws the title, the line under it and, when there are entries, a legend row; returns
/// the area below them.
fn header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    legend: &[(Key, String)],
) -> Result<DrawingArea<DB, Shift>, String> {
    let title_style = TextStyle::from((FONT, style::TITLE).into_font()).color(&BLACK);
    root.draw_text(title, &title_style, (15, 8)).map_err(err)?;
    let sub = TextStyle::from((FONT, style::SUBTITLE).into_font()).color(&style::MUTED);
    root.draw_text(subtitle, &sub, (15, 36)).map_err(err)?;
    let mut top = 58;
    if !legend.is_empty() {
        let y = top + 8;
        let mut x = 15;
        for (key, label) in legend {
            let k = (x, y);
            match *key {
                Key::Line(c) => {
                    root.draw(&PathElement::new(
                        vec![(k.0, k.1), (k.0 + 24, k.1)],
                        c.stroke_width(style::LINE),
                    ))
                    .map_err(err)?;
                }
                Key::LineDot(c) => {
                    root.draw(&PathElement::new(
                        vec![(k.0, k.1), (k.0 + 24, k.1)],
                        c.stroke_width(style::LINE),
                    ))
                    .map_err(err)?;
                    root.draw(&Circle::new((k.0 + 12, k.1), 4, c.filled()))
                        .map_err(err)?;
                }
                Key::Dot(c) => {
                    root.draw(&Circle::new((k.0 + 12, k.1), 5, c.mix(0.6).filled()))
                        .map_err(err)?;
                }
                Key::Dashed(c) => {
                    for i in 0..3 {
                        root.draw(&PathElement::new(
                            vec![(k.0 + 9 * i, k.1), (k.0 + 9 * i + 5, k.1)],
                            c.stroke_width(style::LINE),
                        ))
                        .map_err(err)?;
                    }
                }
                Key::Vertical(c) => {
                    root.draw(&PathElement::new(
                        vec![(k.0 + 12, k.1 - 7), (k.0 + 12, k.1 + 7)],
                        c.stroke_width(style::LINE),
                    ))
                    .map_err(err)?;
                }
                Key::Triangle(c) => {
                    root.draw(&PathElement::new(
                        vec![
                            (k.0 + 6, k.1 + 5),
                            (k.0 + 18, k.1 + 5),
                            (k.0 + 12, k.1 - 7),
                            (k.0 + 6, k.1 + 5),
                        ],
                        c.stroke_width(style::LINE),
                    ))
                    .map_err(err)?;
                }
            }
            root.draw_text(label, &sub, (x + 30, y - 8)).map_err(err)?;
            let (w, _) = root.estimate_text_size(label, &sub).map_err(err)?;
            x += 30 + w as i32 + 22;
        }
        top += 20;
    }
    Ok(root.margin(top, 0, 0, 0))
}

/// What the run measured, for titles and axis names: (title, what a sensitivity is).
fn measure(results: &Results) -> (String, String) {
    if let Some(d) = &results.plan.design {
        let level = d.level.name.replace('_', " ");
        return (
            format!("{level} threshold versus {}", d.axis.name.replace('_', " ")),
            format!("sensitivity (1 / threshold {level})"),
        );
    }
    let reference = results.plan.test.reference;
    if reference > 0.0 {
        (
            format!(
                "Increment sensitivity on a pedestal of contrast {}",
                tick(reference)
            ),
            "increment sensitivity (1 / (threshold − pedestal))".to_string(),
        )
    } else {
        (
            "Contrast sensitivity function".to_string(),
            "contrast sensitivity (1 / threshold contrast)".to_string(),
        )
    }
}

/// The line under every title: the experiment, the backbone and the threshold criterion.
fn subtitle(results: &Results) -> String {
    let plan = &results.plan;
    format!(
        "{} · {} · threshold at {:.0} % correct ({})",
        plan.experiment,
        plan.backbone.describe(),
        100.0 * plan.fit.level,
        results
            .csf
            .first()
            .map_or_else(|| plan.staircase.name().to_string(), |p| p.method.clone())
    )
}

/// Registers the bundled font with plotters, once per process.
pub(super) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid font; if registration ever failed, drawing text
        // would return an error rather than panic.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// One figure in both formats.
#[derive(Clone, Debug)]
pub struct Plot {
    /// PNG file bytes.
    pub png: Vec<u8>,
    /// SVG document.
    pub svg: String,
    /// What the figure leaves out and why (also written on the figure); empty if nothing.
    pub notes: Vec<String>,
}

/// A figure that can draw itself on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
    fn notes(&self) -> &[String];
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws a figure into PNG and SVG bytes.
fn render(figure: &impl Figure) -> io::Result<Plot> {
    register_font();
    let mut rgb = vec![255u8; (PLOT_WIDTH * PLOT_HEIGHT * 3) as usize];
    {
        let root =
            BitMapBackend::with_buffer(&mut rgb, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
        figure.draw(&root).map_err(io::Error::other)?;
        root.present()
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    let png = encode_png(&rgb, PLOT_WIDTH, PLOT_HEIGHT)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
        figure.draw(&root).map_err(io::Error::other)?;
        root.present()
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(Plot {
        png,
        svg,
        notes: figure.notes().to_vec(),
    })
}

/// Encodes 8-bit RGB pixels as PNG.
pub(super) fn encode_png(rgb: &[u8], width: u32, height: u32) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(io::Error::other)?;
    writer.write_image_data(rgb).map_err(io::Error::other)?;
    writer.finish().map_err(io::Error::other)?;
    Ok(out)
}

/// Sensitivity against spatial frequency on log–log axes (`csf.png`, `csf.svg`).
pub fn csf_plot(results: &Results) -> io::Result<Plot> {
    render(&CsfFigure::new(results, true))
}

/// Sensitivity against spatial frequency on linear axes, as in the tutorial's figure
/// (`csf_linear.png`, `csf_linear.svg`).
pub fn csf_linear_plot(results: &Results) -> io::Result<Plot> {
    render(&CsfFigure::new(results, false))
}

/// Every frequency's trials (first repeat) pooled by contrast, with the fitted psychometric
/// function, the threshold level and the threshold, one panel per frequency
/// (`psychometric.png`, `psychometric.svg`).
pub fn psychometric_plot(results: &Results) -> io::Result<Plot> {
    render(&PsychometricFigure::new(results))
}

/// Loss and accuracy per epoch, in two panels (`training.png`, `training.svg`).
pub fn training_plot(results: &Results) -> io::Result<Plot> {
    render(&TrainingFigure::new(results))
}

struct CsfFigure {
    title: String,
    subtitle: String,
    y_desc: String,
    x_desc: String,
    legend: Vec<(Key, String)>,
    log: bool,
    /// Measured points.
    points: Vec<(f64, f64)>,
    /// Censored points (drawn hollow, with a triangle pointing where the truth lies).
    censored: Vec<(f64, f64, Censor)>,
    /// Error bars: frequency, low and high sensitivity, and the point's sensitivity.
    bars: Vec<(f64, f64, f64, f64)>,
    notes: Vec<String>,
}

impl CsfFigure {
    fn new(results: &Results, log: bool) -> Self {
        let mut points = Vec::new();
        let mut notes = Vec::new();
        let mut not_finite = Vec::new();
        let mut not_positive = Vec::new();
        let mut outside = Vec::new();
        let mut censored = Vec::new();
        let mut bars = Vec::new();
        for f in &results.csf {
            let (x, y) = (f.frequency, f.sensitivity);
            if !x.is_finite() || !y.is_finite() {
                not_finite.push(x);
            } else if log && (x <= 0.0 || y <= 0.0) {
                not_positive.push(x);
            } else if !within(x, log) || !within(y, log) {
                outside.push(x);
            } else {
                match f.censored {
                    Some(c) => censored.push((x, y, c)),
                    None => points.push((x, y)),
                }
                if let Some((lo, hi)) = f.sensitivity_ci {
                    let ok = |v: f64| v.is_finite() && within(v, log) && (!log || v > 0.0);
                    if ok(lo) && ok(hi) {
                        bars.push((x, lo, hi, y));
                    }
                }
            }
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        // "at 2, 8 c/img", or the design's axis: "at frequency 2, 8 (cpi)".
        let labels = super::Labels::of(&results.plan);
        let unit = if labels.legacy {
            " c/img".to_string()
        } else if labels.axis_unit.is_empty() {
            String::new()
        } else {
            format!(" {}", labels.axis_unit)
        };
        if !censored.is_empty() {
            notes.push(format!(
                "hollow triangles: censored thresholds (a bound, not a measurement) at {}{unit}",
                censored
                    .iter()
                    .map(|c| format!("{} ({})", c.0, c.2.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !bars.is_empty() {
            let repeats = results.csf.iter().map(|p| p.repeats).max().unwrap_or(1);
            notes.push(if repeats > 1 {
                format!(
                    "error bars: {:.0} % t interval over {repeats} repeats",
                    100.0 * results.plan.fit.ci
                )
            } else {
                format!(
                    "error bars: {:.0} % confidence interval",
                    100.0 * results.plan.fit.ci
                )
            });
        }
        let list = |xs: &[f64]| {
            xs.iter()
                .map(|x| format!("{x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !not_finite.is_empty() {
            notes.push(format!(
                "not shown: sensitivity not finite (threshold 0 or undefined) at {}{unit}",
                list(&not_finite)
            ));
        }
        if !not_positive.is_empty() {
            notes.push(format!(
                "not shown on log axes: value ≤ 0 at {}{unit}",
                list(&not_positive)
            ));
        }
        if !outside.is_empty() {
            notes.push(format!(
                "not shown: a value outside the plotted range (1e-100 to 1e100) at {}{unit}",
                list(&outside)
            ));
        }
        if results.csf.is_empty() {
            notes.push("no frequencies measured".to_string());
        }
        let (what, y_desc) = measure(results);
        let mut legend = Vec::new();
        if !points.is_empty() {
            legend.push((
                Key::LineDot(style::BLUE),
                if bars.is_empty() {
                    "measured threshold".to_string()
                } else {
                    format!(
                        "measured threshold, {:.0} % interval",
                        100.0 * results.plan.fit.ci
                    )
                },
            ));
        }
        if !censored.is_empty() {
            legend.push((
                Key::Triangle(style::RED),
                "censored: a bound, pointing to the true value".to_string(),
            ));
        }
        Self {
            title: if log {
                what
            } else {
                format!("{what} (linear axes)")
            },
            subtitle: subtitle(results),
            y_desc,
            x_desc: super::Labels::of(&results.plan).axis_desc,
            legend,
            log,
            points,
            censored,
            bars,
            notes,
        }
    }

    fn chart<DB, X, Y>(&self, root: &DrawingArea<DB, Shift>, x: X, y: Y) -> Result<(), String>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let bottom = 10 + style::NOTE_LINE * self.notes.len() as u32;
        let body = header(root, &self.title, &self.subtitle, &self.legend)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(15)
            .margin_top(5)
            .margin_bottom(bottom)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, style::TICKS))
            .axis_desc_style((FONT, style::AXIS))
            .draw()
            .map_err(err)?;
        let colour = style::BLUE;
        chart
            .draw_series(LineSeries::new(
                self.points.iter().copied(),
                colour.stroke_width(style::LINE),
            ))
            .map_err(err)?;
        chart
            .draw_series(
                self.points
                    .iter()
                    .map(|&p| Circle::new(p, style::MARKER, colour.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(self.bars.iter().map(|&(x, lo, hi, y)| {
                ErrorBar::new_vertical(x, lo, y, hi, colour.stroke_width(1), 8)
            }))
            .map_err(err)?;
        let red = style::RED;
        chart
            .draw_series(self.censored.iter().map(|&(x, y, c)| {
                // Below range: the true threshold is lower, the sensitivity higher: ▲.
                let up = c == Censor::BelowRange;
                let (dy, tip) = if up { (6, -8) } else { (-6, 8) };
                EmptyElement::at((x, y))
                    + Polygon::new(vec![(-6, dy), (6, dy), (0, tip)], red.mix(0.15))
                    + PathElement::new(
                        vec![(-6, dy), (6, dy), (0, tip), (-6, dy)],
                        red.stroke_width(style::LINE),
                    )
            }))
            .map_err(err)?;
        draw_notes(root, &self.notes)
    }
}

impl Figure for CsfFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let xs: Vec<f64> = self
            .points
            .iter()
            .map(|p| p.0)
            .chain(self.censored.iter().map(|c| c.0))
            .collect();
        let ys: Vec<f64> = self
            .points
            .iter()
            .map(|p| p.1)
            .chain(self.censored.iter().map(|c| c.1))
            .chain(self.bars.iter().flat_map(|b| [b.1, b.2]))
            .collect();
        if self.log {
            let (x0, x1) = log_range(&xs);
            let (y0, y1) = log_range(&ys);
            // Base 2 on the frequency axis: frequencies are usually powers or divisors of
            // the image size, and decades would leave most of them unlabelled.
            let (bold, light) = log_ticks(y0, y1);
            self.chart(
                root,
                (x0..x1).log_scale().base(2.0),
                (y0..y1)
                    .log_scale()
                    .with_key_points(bold)
                    .with_light_points(light),
            )
        } else {
            let (x0, x1) = linear_range(&xs, true);
            let (y0, y1) = linear_range(&ys, true);
            self.chart(root, x0..x1, y0..y1)
        }
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// One repeat's training: (repeat, loss points, accuracy points).
type RepeatSeries = (u32, Vec<(f64, f64)>, Vec<(f64, f64)>);

struct TrainingFigure {
    title: String,
    subtitle: String,
    /// Per repeat: (repeat, loss points, accuracy points), each sorted by epoch.
    series: Vec<RepeatSeries>,
    legend: Vec<(Key, String)>,
    epochs: Vec<f64>,
    notes: Vec<String>,
}

impl TrainingFigure {
    fn new(results: &Results) -> Self {
        let mut repeats: Vec<u32> = results.training.iter().map(|r| r.repeat).collect();
        repeats.sort_unstable();
        repeats.dedup();
        let mut bad_loss = Vec::new();
        let mut bad_accuracy = Vec::new();
        let mut series = Vec::new();
        let epochs: Vec<f64> = results.training.iter().map(|r| r.epoch as f64).collect();
        for &repeat in &repeats {
            let mut loss = Vec::new();
            let mut accuracy = Vec::new();
            for r in results.training.iter().filter(|r| r.repeat == repeat) {
                let e = r.epoch as f64;
                let which = if repeats.len() > 1 {
                    format!("{} (repeat {})", r.epoch, repeat + 1)
                } else {
                    r.epoch.to_string()
                };
                if r.loss.is_finite() && within(r.loss, false) {
                    loss.push((e, r.loss));
                } else {
                    bad_loss.push(which.clone());
                }
                if r.accuracy.is_finite() && within(r.accuracy, false) {
                    accuracy.push((e, r.accuracy));
                } else {
                    bad_accuracy.push(which);
                }
            }
            loss.sort_by(|a, b| a.0.total_cmp(&b.0));
            accuracy.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push((repeat, loss, accuracy));
        }
        let mut notes = Vec::new();
        if results.training.is_empty() {
            notes.push("no epochs recorded".to_string());
        }
        if !bad_loss.is_empty() {
            notes.push(format!(
                "not shown: loss not finite or outside ±1e100 in epoch {}",
                bad_loss.join(", ")
            ));
        }
        if !bad_accuracy.is_empty() {
            notes.push(format!(
                "not shown: accuracy not finite or outside ±1e100 in epoch {}",
                bad_accuracy.join(", ")
            ));
        }
        let mut legend: Vec<(Key, String)> = if repeats.len() > 1 {
            repeats
                .iter()
                .map(|&r| (Key::LineDot(series_colour(r)), format!("repeat {}", r + 1)))
                .collect()
        } else {
            vec![(Key::LineDot(style::BLUE), "the probe".to_string())]
        };
        legend.push((Key::Dashed(style::GREY), "chance (0.5)".to_string()));
        Self {
            title: "Training of the linear probe".to_string(),
            subtitle: subtitle(results),
            series,
            legend,
            epochs,
            notes,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn panel<DB: DrawingBackend>(
        area: &DrawingArea<DB, Shift>,
        caption: &str,
        y_desc: &str,
        x: (f64, f64),
        y: (f64, f64),
        series: &[(u32, &[(f64, f64)])],
        chance: Option<f64>,
    ) -> Result<(), String> {
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, style::PANEL))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)
            .map_err(err)?;
        let n_epochs = (x.1 - x.0).round().max(1.0) as usize;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .x_labels(n_epochs.clamp(2, 10))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, style::TICKS))
            .axis_desc_style((FONT, style::AXIS))
            .draw()
            .map_err(err)?;
        if let Some(c) = chance {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x.0, c), (x.1, c)],
                    8,
                    6,
                    style::GREY.stroke_width(style::LINE),
                ))
                .map_err(err)?;
        }
        for &(repeat, points) in series {
            let colour = series_colour(repeat);
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(style::LINE),
                ))
                .map_err(err)?;
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&p| Circle::new(p, style::MARKER - 1, colour.filled())),
                )
                .map_err(err)?;
        }
        Ok(())
    }
}

/// The colour of repeat `r` (from 0) in overlaid figures.
fn series_colour(repeat: u32) -> RGBColor {
    style::SERIES[repeat as usize % style::SERIES.len()]
}

impl Figure for TrainingFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let bottom = style::NOTE_LINE * self.notes.len() as u32 + 6;
        let titled = header(root, &self.title, &self.subtitle, &self.legend)?;
        let (body, _) = titled.split_vertically(titled.dim_in_pixel().1.saturating_sub(bottom));
        let panels = body.split_evenly((1, 2));
        let x = match (
            self.epochs.iter().copied().reduce(f64::min),
            self.epochs.iter().copied().reduce(f64::max),
        ) {
            (Some(lo), Some(hi)) => (lo - 0.5, hi + 0.5),
            _ => (0.5, 1.5),
        };
        let losses: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .collect();
        let loss_y = linear_range(&losses, true);
        let loss: Vec<(u32, &[(f64, f64)])> =
            self.series.iter().map(|s| (s.0, s.1.as_slice())).collect();
        Self::panel(
            &panels[0],
            "loss",
            "training loss (cross-entropy)",
            x,
            loss_y,
            &loss,
            None,
        )?;
        let accuracies = || self.series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
        let top = accuracies().fold(1.0f64, f64::max).min(1e6);
        let bottom_acc = accuracies().fold(0.0f64, f64::min).max(-1e6);
        let accuracy: Vec<(u32, &[(f64, f64)])> =
            self.series.iter().map(|s| (s.0, s.2.as_slice())).collect();
        Self::panel(
            &panels[1],
            "accuracy",
            "proportion correct (training trials)",
            x,
            (bottom_acc, top),
            &accuracy,
            Some(0.5),
        )?;
        draw_notes(root, &self.notes)
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// Writes notes at the bottom left of the figure.
fn draw_notes<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    notes: &[String],
) -> Result<(), String> {
    let (_, h) = root.dim_in_pixel();
    let text = TextStyle::from((FONT, style::NOTE).into_font()).color(&style::NOTE_COLOUR);
    let line = style::NOTE_LINE as i32;
    for (i, note) in notes.iter().enumerate() {
        let y = h as i32 - line * (notes.len() - i) as i32;
        root.draw_text(note, &text, (15, y)).map_err(err)?;
    }
    Ok(())
}

/// Largest magnitude drawn (and, on log axes, the reciprocal is the smallest): plotters'
/// log axis does not finish for ranges of hundreds of decades.
const LIMIT: f64 = 1e100;

/// Whether a finite value lies within the plotted range.
fn within(v: f64, log: bool) -> bool {
    if log {
        (1.0 / LIMIT..=LIMIT).contains(&v)
    } else {
        v.abs() <= LIMIT
    }
}

/// A padded range for log axes over positive finite values; (1, 100) if there are none.
fn log_range(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = (lo / 1.5, hi * 1.5);
    if lo > 0.0 && hi.is_finite() && lo.is_normal() && hi > lo {
        (lo, hi)
    } else {
        (1.0, 100.0)
    }
}

/// Tick values for a log axis over `lo..hi` (both > 0), as matplotlib chooses them: the
/// labelled (bold) ticks are the decades in range, or 1-2-5 multiples of them when fewer
/// than three decades fall in range, or every multiple 1…9 when even those are fewer than
/// three; the light (grid) ticks are every multiple 1…9 of each decade in range. Whatever
/// the range, at least two labelled ticks (the range's ends, rounded, in the worst case).
pub(super) fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return (Vec::new(), Vec::new());
    }
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let within = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let multiples = |ms: &[f64]| -> Vec<f64> {
        (k0..=k1)
            .flat_map(|k| ms.iter().map(move |m| clean_tick(m * 10f64.powi(k))))
            .filter(within)
            .collect()
    };
    let light = multiples(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    for set in [
        &[1.0][..],
        &[1.0, 2.0, 5.0][..],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..],
    ] {
        let bold = multiples(set);
        if bold.len() >= 3 {
            return (bold, light);
        }
    }
    // A range within one multiple: its ends.
    let ends = vec![clean_tick(lo), clean_tick(hi)];
    (ends, light)
}

/// A tick value without floating-point noise (3 significant digits).
fn clean_tick(v: f64) -> f64 {
    format!("{v:.2e}").parse().unwrap_or(v)
}

/// A padded range for linear axes over finite values, from 0 when `from_zero` and all
/// values are ≥ 0; never empty.
fn linear_range(values: &[f64], from_zero: bool) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let lo = if from_zero { lo.min(0.0) } else { lo };
    let span = hi - lo;
    let (a, b) = if span > 0.0 {
        let a = if lo == 0.0 { 0.0 } else { lo - 0.05 * span };
        (a, hi + 0.05 * span)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    };
    if a.is_finite() && b.is_finite() && b > a {
        (a, b)
    } else {
        (0.0, 1.0)
    }
}

/// A tick label: up to four significant digits, no trailing zeros.
fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}", if v == 0.0 { 0.0 } else { v });
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One panel per frequency: proportion correct against contrast (log axis).
struct PsychometricFigure {
    title: String,
    subtitle: String,
    x_desc: String,
    /// The axis's names (panel captions).
    axis: super::Labels,
    legend: Vec<(Key, String)>,
    level: f64,
    panels: Vec<PsyPanel>,
    notes: Vec<String>,
}

/// One frequency's panel: every repeat's trials and fit, overlaid.
struct PsyPanel {
    frequency: f64,
    curves: Vec<PsyCurve>,
}

struct PsyCurve {
    repeat: u32,
    /// (contrast, proportion correct, trials).
    points: Vec<(f64, f64, u32)>,
    curve: Vec<(f64, f64)>,
    threshold: Option<f64>,
}

/// ψ of a stored fit, with the default threshold and width conventions of
/// [`crate::psychometric::FitOptions`].
pub(super) fn psi_of(f: &super::FitSummary, x: f64) -> Option<f64> {
    use crate::psychometric::{FitOptions, Sigmoid};
    let sigmoid = match f.function.as_str() {
        "weibull" => Sigmoid::Weibull,
        "logistic" => Sigmoid::Logistic,
        "gaussian" => Sigmoid::Norm,
        "gumbel" => Sigmoid::Gumbel,
        _ => return None,
    };
    let d = FitOptions::default();
    let [m, w, lapse, guess] = f.params;
    // `eval` takes the stimulus level (it takes the logarithm itself for the log-axis
    // families, whose m and w are in ln units).
    let s = sigmoid.eval(x, m, w, d.thresh_pc, d.width_alpha);
    Some(guess + (1.0 - guess - lapse) * s)
}

impl PsychometricFigure {
    fn new(results: &Results) -> Self {
        let mut panels: Vec<PsyPanel> = Vec::new();
        let mut notes = Vec::new();
        for r in &results.staircases {
            let points: Vec<(f64, f64, u32)> = super::pooled(r)
                .into_iter()
                .filter_map(|b| Some((b.level, b.proportion()?, b.trials)))
                .filter(|&(c, _, _)| c > 0.0 && c.is_finite() && within(c, true))
                .collect();
            let mut curve = Vec::new();
            if let (Some(f), Some(lo), Some(hi)) = (
                &r.fit,
                points.first().map(|p| p.0),
                points.last().map(|p| p.0),
            ) {
                let (a, b) = ((lo / 2.0).ln(), (hi * 2.0).ln());
                for i in 0..=120 {
                    let x = (a + (b - a) * f64::from(i) / 120.0).exp();
                    if let Some(y) = psi_of(f, x).filter(|y| y.is_finite()) {
                        curve.push((x, y));
                    }
                }
            }
            let threshold = Some(r.threshold).filter(|t| t.is_finite() && *t > 0.0);
            let one = PsyCurve {
                repeat: r.repeat,
                points,
                curve,
                threshold,
            };
            match panels
                .iter_mut()
                .find(|p| p.frequency.to_bits() == r.frequency.to_bits())
            {
                Some(p) => p.curves.push(one),
                None => panels.push(PsyPanel {
                    frequency: r.frequency,
                    curves: vec![one],
                }),
            }
        }
        if panels.is_empty() {
            notes.push("no frequencies measured".to_string());
        }
        let mut repeats: Vec<u32> = results.staircases.iter().map(|r| r.repeat).collect();
        repeats.sort_unstable();
        repeats.dedup();
        let level = results.plan.fit.level;
        let function = results
            .staircases
            .iter()
            .find_map(|r| r.fit.as_ref().map(|f| f.function.clone()));
        let mut legend = Vec::new();
        if repeats.len() > 1 {
            for &r in &repeats {
                legend.push((Key::LineDot(series_colour(r)), format!("repeat {}", r + 1)));
            }
        } else {
            legend.push((
                Key::Dot(style::BLUE),
                "proportion correct (area ∝ trials)".to_string(),
            ));
            if let Some(f) = &function {
                legend.push((Key::Line(style::BLUE), format!("fitted {f}")));
            }
            legend.push((Key::Vertical(style::RED), "reported threshold".to_string()));
        }
        legend.push((
            Key::Dashed(style::GREY),
            format!("{:.0} % correct", 100.0 * level),
        ));
        let reference = results.plan.test.reference;
        let labels = super::Labels::of(&results.plan);
        let x_desc = if !labels.legacy {
            labels.level_desc.clone()
        } else if reference > 0.0 {
            format!("target contrast (pedestal {})", tick(reference))
        } else {
            "grating contrast".to_string()
        };
        Self {
            title: if labels.legacy {
                "Psychometric functions, one panel per frequency".to_string()
            } else {
                format!("Psychometric functions, one panel per {}", labels.axis_desc)
            },
            axis: labels,
            subtitle: subtitle(results),
            x_desc,
            legend,
            level,
            panels,
            notes,
        }
    }
}

impl Figure for PsychometricFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let bottom = 10 + style::NOTE_LINE * self.notes.len() as u32;
        let body = header(root, &self.title, &self.subtitle, &self.legend)?;
        let body = body.margin(0, bottom, 0, 0);
        let n = self.panels.len().max(1);
        let cols = (n as f64).sqrt().ceil() as usize;
        let rows = n.div_ceil(cols);
        let areas = body.split_evenly((rows, cols));
        let xs: Vec<f64> = self
            .panels
            .iter()
            .flat_map(|p| p.curves.iter().flat_map(|c| c.points.iter().map(|q| q.0)))
            .collect();
        let (x0, x1) = log_range(&xs);
        let max_trials = self
            .panels
            .iter()
            .flat_map(|p| p.curves.iter().flat_map(|c| c.points.iter().map(|q| q.2)))
            .max()
            .unwrap_or(1)
            .max(1);
        let overlaid = self.panels.iter().any(|p| p.curves.len() > 1);
        for (i, (p, area)) in self.panels.iter().zip(areas).enumerate() {
            let (row, col) = (i / cols, i % cols);
            // Axis names on the bottom row and the left column only.
            let last_row = row + 1 == rows || i + cols >= self.panels.len();
            let mut chart = ChartBuilder::on(&area)
                .caption(self.axis.caption(&tick(p.frequency)), (FONT, style::PANEL))
                .margin(6)
                .x_label_area_size(if last_row { 36 } else { 20 })
                .y_label_area_size(if col == 0 { 46 } else { 32 })
                .build_cartesian_2d(
                    (x0..x1)
                        .log_scale()
                        .with_key_points(log_ticks(x0, x1).0)
                        .with_light_points(log_ticks(x0, x1).1),
                    0.4..1.02,
                )
                .map_err(err)?;
            let mut mesh = chart.configure_mesh();
            mesh.x_labels(4)
                .y_labels(4)
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .label_style((FONT, style::SMALL_TICKS))
                .axis_desc_style((FONT, style::SMALL_TICKS + 1));
            if last_row {
                mesh.x_desc(self.x_desc.as_str());
            }
            if col == 0 {
                mesh.y_desc("proportion correct");
            }
            mesh.draw().map_err(err)?;
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, self.level), (x1, self.level)],
                    5,
                    4,
                    style::GREY.stroke_width(1),
                ))
                .map_err(err)?;
            for c in &p.curves {
                let colour = series_colour(c.repeat);
                chart
                    .draw_series(LineSeries::new(
                        c.curve.iter().copied(),
                        colour.stroke_width(style::LINE),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series(c.points.iter().map(|&(x, y, n)| {
                        let r = 2.0 + 5.0 * (f64::from(n) / f64::from(max_trials)).sqrt();
                        Circle::new((x, y.clamp(0.4, 1.02)), r as i32, colour.mix(0.6).filled())
                    }))
                    .map_err(err)?;
                if let Some(t) = c.threshold.filter(|t| *t >= x0 && *t <= x1) {
                    let line = if overlaid { colour } else { style::RED };
                    chart
                        .draw_series(LineSeries::new([(t, 0.4), (t, 1.02)], line.stroke_width(1)))
                        .map_err(err)?;
                }
            }
        }
        draw_notes(root, &self.notes)
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }
}
