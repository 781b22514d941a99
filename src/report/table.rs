//! The CSF as a text table for the terminal.

use super::{stop_name, Results};

/// The CSF as an aligned text table (frequency, threshold, sensitivity, steps, stop),
/// one line per frequency, ending in a newline. No colour, no trailing spaces.
pub fn csf_table(results: &Results) -> String {
    let header = [
        "frequency (c/img)",
        "threshold",
        "sensitivity",
        "steps",
        "stop",
    ];
    let rows: Vec<[String; 5]> = results
        .staircases
        .iter()
        .map(|f| {
            [
                general(f.frequency),
                significant(f.threshold),
                significant(f.sensitivity),
                f.steps.len().to_string(),
                stop_name(f.stop).to_string(),
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
    let mut line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            // Numbers right-aligned, the stop reason left-aligned.
            if i < 4 {
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
