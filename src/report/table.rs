//! The CSF as a text table for the terminal.

use super::{stop_name, Results};

/// The CSF as an aligned text table (frequency, threshold, interval, sensitivity, trials,
/// stop), one line per frequency in ascending frequency, ending in a newline. No colour, no
/// trailing spaces. Numbers as [`display_number`] writes them (frequencies in full).
pub fn csf_table(results: &Results) -> String {
    let ci = format!("{:.0}% CI", 100.0 * results.plan.fit.ci);
    let labels = super::Labels::of(&results.plan);
    let axis = if labels.legacy {
        "frequency (c/img)".to_string()
    } else {
        labels.axis_desc
    };
    let header = [
        axis.as_str(),
        "threshold",
        ci.as_str(),
        "sensitivity",
        "trials",
        "stop",
    ];
    let mut points: Vec<&super::CsfPoint> = results.csf.iter().collect();
    points.sort_by(|a, b| a.frequency.total_cmp(&b.frequency));
    let rows: Vec<[String; 6]> = points
        .into_iter()
        .map(|f| {
            let stop = match f.censored {
                Some(c) => format!("{} ({})", stop_name(f.stop), c.name()),
                None => stop_name(f.stop).to_string(),
            };
            [
                general(f.frequency),
                match f.censored {
                    Some(crate::staircase::Censor::BelowRange) => {
                        format!("<{}", significant(f.threshold))
                    }
                    Some(crate::staircase::Censor::AboveRange) => {
                        format!(">{}", significant(f.threshold))
                    }
                    _ => significant(f.threshold),
                },
                f.ci.map_or("-".to_string(), |(lo, hi)| {
                    format!("{}–{}", significant(lo), significant(hi))
                }),
                significant(f.sensitivity),
                f.trials.to_string(),
                stop,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            // Numbers right-aligned, the stop reason left-aligned.
            if i < 5 {
                l.push_str(&format!("{cell:>w$}"));
            } else {
                l.push_str(&format!("{cell:<w$}"));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// Shortest form for values like frequencies (`2`, `4.5`).
fn general(x: f64) -> String {
    format!("{x}")
}

/// A number for people to read (the terminal, `report.html`): four significant digits,
/// trailing zeros kept (`0.1250`, `12.50`, `2.811`), scientific with four significant
/// digits outside [1e-3, 1e6) (`3.000e-4`); `inf`, `NaN` as Rust writes them. Files for
/// programs (CSV, JSON) keep every digit instead (shortest round-trip).
pub fn display_number(x: f64) -> String {
    significant(x)
}

fn significant(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let a = x.abs();
    if (1e-3..1e6).contains(&a) {
        let digits = a.log10().floor() as i32;
        let decimals = (3 - digits).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.3e}")
    }
}
