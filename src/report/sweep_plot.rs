//! The comparison figures of a sweep (`sweep_csf`, `sweep_peaks`), in the look of a run's
//! figures: the same font, sizes, colours and notes.

use super::{
    err, linear_range, log_range, log_ticks, render, style, tick, within, Figure, Plot, FONT,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::io;

/// One condition's CSF, as the comparison figures need it.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepCurve {
    /// The condition's values (`backbone.cut=layer2 seed=1`): the legend.
    pub label: String,
    /// The value of the first swept setting (the peaks figure's x axis), if any.
    pub first: Option<String>,
    /// The other swept settings' values (`seed=1`): one line each in the peaks figure.
    pub rest: String,
    /// (frequency, sensitivity, censored) per frequency.
    pub points: Vec<(f64, f64, bool)>,
}

/// A condition's colour: the run figures' series colours, then again with dashed lines.
fn colour(i: usize) -> RGBColor {
    style::SERIES[i % style::SERIES.len()]
}

/// Draws the title, the subtitle and a legend that wraps onto as many rows as it needs;
/// returns the area below.
fn header_wrapped<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    legend: &[(RGBColor, bool, String)],
) -> Result<DrawingArea<DB, Shift>, String> {
    let title_style = TextStyle::from((FONT, style::TITLE).into_font()).color(&BLACK);
    root.draw_text(title, &title_style, (15, 8)).map_err(err)?;
    let sub = TextStyle::from((FONT, style::SUBTITLE).into_font()).color(&style::MUTED);
    root.draw_text(subtitle, &sub, (15, 36)).map_err(err)?;
    let (width, _) = root.dim_in_pixel();
    let mut top = 58;
    let (mut x, mut y) = (15i32, top + 8);
    for (c, dashed, label) in legend {
        let (w, _) = root.estimate_text_size(label, &sub).map_err(err)?;
        let need = 30 + w as i32 + 22;
        if x > 15 && x + need > width as i32 - 10 {
            x = 15;
            y += 20;
        }
        line_key(root, (x, y), *c, *dashed)?;
        root.draw_text(label, &sub, (x + 30, y - 8)).map_err(err)?;
        x += need;
    }
    if !legend.is_empty() {
        top = y + 12;
    }
    Ok(root.margin(top as u32, 0, 0, 0))
}

fn line_key<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    c: RGBColor,
    dashed: bool,
) -> Result<(), String> {
    if dashed {
        for i in 0..3 {
            root.draw(&PathElement::new(
                vec![(x + 9 * i, y), (x + 9 * i + 5, y)],
                c.stroke_width(style::LINE),
            ))
            .map_err(err)?;
        }
    } else {
        root.draw(&PathElement::new(
            vec![(x, y), (x + 24, y)],
            c.stroke_width(style::LINE),
        ))
        .map_err(err)?;
    }
    root.draw(&Circle::new((x + 12, y), 4, c.filled()))
        .map_err(err)?;
    Ok(())
}

/// A polyline, solid or dashed (in data coordinates, dashed by segments of the path).
fn series_line(points: &[(f64, f64)], dashed: bool) -> Vec<Vec<(f64, f64)>> {
    if !dashed {
        return vec![points.to_vec()];
    }
    // Each segment split into 6 pieces, every other one drawn.
    let mut pieces = Vec::new();
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        for k in (0..6).step_by(2) {
            let t0 = k as f64 / 6.0;
            let t1 = (k + 1) as f64 / 6.0;
            // Interpolated in log space: both axes of these figures are logarithmic.
            let at = |t: f64| {
                (
                    (x0.ln() + t * (x1.ln() - x0.ln())).exp(),
                    (y0.ln() + t * (y1.ln() - y0.ln())).exp(),
                )
            };
            pieces.push(vec![at(t0), at(t1)]);
        }
    }
    pieces
}

/// One condition's drawing: colour, dashed, measured points (sorted), censored points.
type CurveSeries = (RGBColor, bool, Vec<(f64, f64)>, Vec<(f64, f64)>);

/// One line of the peaks figure: colour, (category, peak sensitivity, peak frequency).
type PeakLine = (RGBColor, Vec<(f64, f64, f64)>);

struct SweepCsfFigure {
    title: String,
    subtitle: String,
    legend: Vec<(RGBColor, bool, String)>,
    /// Per condition: colour, dashed, measured points (sorted), censored points.
    series: Vec<CurveSeries>,
    notes: Vec<String>,
}

/// The conditions' CSFs overlaid on log–log axes, one colour per condition, the legend
/// naming each condition's values (`sweep_csf.png`, `sweep_csf.svg`).
pub fn sweep_csf_plot(experiment: &str, curves: &[SweepCurve]) -> io::Result<Plot> {
    let mut series = Vec::new();
    let mut legend = Vec::new();
    let mut left_out = 0;
    let mut censored_any = false;
    for (i, c) in curves.iter().enumerate() {
        let (col, dashed) = (colour(i), i >= style::SERIES.len());
        let mut pts = Vec::new();
        let mut cens = Vec::new();
        for &(x, y, censored) in &c.points {
            if !(x.is_finite()
                && y.is_finite()
                && x > 0.0
                && y > 0.0
                && within(x, true)
                && within(y, true))
            {
                left_out += 1;
            } else if censored {
                cens.push((x, y));
            } else {
                pts.push((x, y));
            }
        }
        censored_any |= !cens.is_empty();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        legend.push((col, dashed, c.label.clone()));
        series.push((col, dashed, pts, cens));
    }
    let mut notes = Vec::new();
    if censored_any {
        notes.push("hollow circles: censored thresholds (a bound, not a measurement)".to_string());
    }
    if left_out > 0 {
        notes.push(format!(
            "not shown: {left_out} point(s) with a sensitivity that is not finite or not positive"
        ));
    }
    if curves.is_empty() {
        notes.push("no condition complete yet".to_string());
    }
    render(&SweepCsfFigure {
        title: "Contrast sensitivity, condition by condition".to_string(),
        subtitle: format!(
            "{experiment} · {} condition{} complete",
            curves.len(),
            if curves.len() == 1 { "" } else { "s" }
        ),
        legend,
        series,
        notes,
    })
}

impl Figure for SweepCsfFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let all = || {
            self.series
                .iter()
                .flat_map(|s| s.2.iter().chain(s.3.iter()).copied())
        };
        let xs: Vec<f64> = all().map(|p| p.0).collect();
        let ys: Vec<f64> = all().map(|p| p.1).collect();
        let (x0, x1) = log_range(&xs);
        let (y0, y1) = log_range(&ys);
        let (bold, light) = log_ticks(y0, y1);
        let bottom = 10 + style::NOTE_LINE * self.notes.len() as u32;
        let body = header_wrapped(root, &self.title, &self.subtitle, &self.legend)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(15)
            .margin_top(5)
            .margin_bottom(bottom)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(
                (x0..x1).log_scale().base(2.0),
                (y0..y1)
                    .log_scale()
                    .with_key_points(bold)
                    .with_light_points(light),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("spatial frequency (cycles per image)")
            .y_desc("contrast sensitivity (1 / threshold)")
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, style::TICKS))
            .axis_desc_style((FONT, style::AXIS))
            .draw()
            .map_err(err)?;
        for (col, dashed, pts, cens) in &self.series {
            for piece in series_line(pts, *dashed) {
                chart
                    .draw_series(LineSeries::new(piece, col.stroke_width(style::LINE)))
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    pts.iter()
                        .map(|&p| Circle::new(p, style::MARKER, col.filled())),
                )
                .map_err(err)?;
            chart
                .draw_series(
                    cens.iter()
                        .map(|&p| Circle::new(p, style::MARKER, col.stroke_width(style::LINE))),
                )
                .map_err(err)?;
        }
        super::draw_notes(root, &self.notes)
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }
}

struct SweepPeaksFigure {
    title: String,
    subtitle: String,
    x_desc: String,
    /// The first swept setting's values, in the order they first appear.
    categories: Vec<String>,
    legend: Vec<(RGBColor, bool, String)>,
    /// Per line (the other settings' values): colour, (category, peak sensitivity, peak
    /// frequency) points.
    lines: Vec<PeakLine>,
    notes: Vec<String>,
}

/// Peak sensitivity and the frequency of the peak against the first swept setting (e.g.
/// the layer), one line per combination of the other swept settings
/// (`sweep_peaks.png`, `sweep_peaks.svg`). A condition's peak is its highest measured
/// sensitivity (censored thresholds are bounds, not measurements, and are left out).
pub fn sweep_peaks_plot(
    experiment: &str,
    first: Option<&str>,
    curves: &[SweepCurve],
) -> io::Result<Plot> {
    let label_of = |c: &SweepCurve| c.first.clone().unwrap_or_else(|| c.label.clone());
    let mut categories: Vec<String> = Vec::new();
    for c in curves {
        let l = label_of(c);
        if !categories.contains(&l) {
            categories.push(l);
        }
    }
    let mut groups: Vec<String> = Vec::new();
    for c in curves {
        if !groups.contains(&c.rest) {
            groups.push(c.rest.clone());
        }
    }
    let mut lines = Vec::new();
    let mut legend = Vec::new();
    let mut no_peak = Vec::new();
    for (g, rest) in groups.iter().enumerate() {
        let col = colour(g);
        let mut pts = Vec::new();
        for c in curves.iter().filter(|c| &c.rest == rest) {
            let peak = c
                .points
                .iter()
                .filter(|p| {
                    !p.2 && p.0 > 0.0 && p.1 > 0.0 && within(p.0, true) && within(p.1, true)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match peak {
                Some(&(f, s, _)) => {
                    let x = categories
                        .iter()
                        .position(|k| *k == label_of(c))
                        .unwrap_or(0);
                    pts.push((x as f64, s, f));
                }
                None => no_peak.push(c.label.clone()),
            }
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !rest.is_empty() {
            legend.push((col, false, rest.clone()));
        }
        lines.push((col, pts));
    }
    let mut notes = Vec::new();
    if !no_peak.is_empty() {
        notes.push(format!(
            "no measured threshold (all censored or not finite): {}",
            no_peak.join(", ")
        ));
    }
    if curves.is_empty() {
        notes.push("no condition complete yet".to_string());
    }
    render(&SweepPeaksFigure {
        title: "Peak of the CSF, condition by condition".to_string(),
        subtitle: format!("{experiment} · peak = highest measured sensitivity"),
        x_desc: first.unwrap_or("condition").to_string(),
        categories,
        legend,
        lines,
        notes,
    })
}

impl SweepPeaksFigure {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        y_desc: &str,
        value: impl Fn(&(f64, f64, f64)) -> f64,
        log2: bool,
    ) -> Result<(), String> {
        let n = self.categories.len().max(1);
        let ys: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|l| l.1.iter().map(&value))
            .collect();
        let cats = self.categories.clone();
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(15)
            .margin_top(5)
            .x_label_area_size(45)
            .y_label_area_size(65);
        // One segment per category (plotters' integer ranges include their end); a single
        // category in the middle of three.
        let x_range = if n == 1 { -1..1 } else { 0..n as i32 - 1 }.into_segmented();
        let x_fmt = move |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| cats.get(i).cloned())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        };
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(self.x_desc.as_str())
                    .y_desc(y_desc)
                    .x_label_formatter(&x_fmt)
                    .y_label_formatter(&|v| tick(*v))
                    .label_style((FONT, style::TICKS))
                    .axis_desc_style((FONT, style::AXIS))
                    .draw()
                    .map_err(err)?;
                for (col, pts) in &self.lines {
                    let xy: Vec<(SegmentValue<i32>, f64)> = pts
                        .iter()
                        .map(|p| (SegmentValue::CenterOf(p.0 as i32), value(p)))
                        .collect();
                    chart
                        .draw_series(LineSeries::new(xy.clone(), col.stroke_width(style::LINE)))
                        .map_err(err)?;
                    chart
                        .draw_series(
                            xy.iter()
                                .map(|p| Circle::new(p.clone(), style::MARKER, col.filled())),
                        )
                        .map_err(err)?;
                }
            }};
        }
        if log2 {
            // Frequencies: powers of two apart, on a base-2 log axis.
            let (y0, y1) = log_range(&ys);
            draw!(builder
                .build_cartesian_2d(x_range, (y0..y1).log_scale().base(2.0))
                .map_err(err)?);
        } else {
            // Sensitivities: from 0, on a linear axis (a peak's size is read as a length).
            let (y0, y1) = linear_range(&ys, true);
            draw!(builder.build_cartesian_2d(x_range, y0..y1).map_err(err)?);
        }
        Ok(())
    }
}

impl Figure for SweepPeaksFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let body = header_wrapped(root, &self.title, &self.subtitle, &self.legend)?;
        let bottom = 10 + style::NOTE_LINE * self.notes.len() as u32;
        let body = body.margin(0, bottom, 0, 0);
        let panels = body.split_evenly((1, 2));
        self.panel(
            &panels[0],
            "peak sensitivity (1 / threshold)",
            |p| p.1,
            false,
        )?;
        self.panel(
            &panels[1],
            "peak frequency (cycles per image)",
            |p| p.2,
            true,
        )?;
        super::draw_notes(root, &self.notes)
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }
}
