//! The CSF as a text table for the terminal.

use super::{stop_name, Results};

/// The CSF as an aligned text table (frequency, threshold, sensitivity, steps, stop),
/// one line per frequency, ending in a newline. No colour, no trailing spaces.
pub fn csf_table(results: &Results) -> String {
    let header = [
        "frequency (c/img)",
        "threshold",
        "95% CI",
        "sensitivity",
        "trials",
        "stop",
    ];
    let rows: Vec<[String; 6]> = results
        .csf
        .iter()
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

/// Four significant digits; scientific outside [1e-3, 1e6).
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
