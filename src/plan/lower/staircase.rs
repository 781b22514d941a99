//! The `staircase` block: bisection over a contrast range.

use super::read::{contrast, label_choice, positive, reject_blocks, HOMES};
use crate::diag::{Code, Diag};
use crate::plan::types::Staircase;
use crate::plan::values::{Cx, Fields};
use crate::syntax::ast::{Block, ValueKind};

const BISECTION_SETTINGS: &[&str] = &["start", "range", "target", "tolerance", "max_steps"];

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<Staircase> {
    label_choice(cx, b, "staircase", &[("bisection", ())])?;
    let f = Fields::new(cx, b, BISECTION_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let range = range(cx, &f);
    let start = start(cx, &f, range);
    let target = target(cx, &f);
    let tolerance = f
        .get("tolerance")
        .map_or(Some(1e-4), |v| positive(cx, v, "tolerance"));
    let max_steps = f
        .get("max_steps")
        .map_or(Some(20), |v| cx.whole(v, "max_steps", 1, 10_000));
    let (low, high) = range?;
    Some(Staircase::Bisection {
        start: start?,
        low,
        high,
        target: target?,
        tolerance: tolerance?,
        max_steps: max_steps? as u32,
    })
}

/// `range lo..hi`: the contrasts searched (default 0..1), not empty.
fn range(cx: &mut Cx, f: &Fields<'_>) -> Option<(f64, f64)> {
    let Some(v) = f.get("range") else {
        return Some((0.0, 1.0));
    };
    let ValueKind::Range(lo, hi) = &v.kind else {
        cx.wrong_type(v, "a range", "write e.g. `range 0.0..1.0`");
        return None;
    };
    let l = contrast(cx, lo, "the range's lower end");
    let h = contrast(cx, hi, "the range's upper end");
    match (l, h) {
        (Some(l), Some(h)) if l >= h => {
            cx.push(
                Diag::error(Code::PlanEmptyRange, format!("the range {l}..{h} is empty"))
                    .at(v.span, "lower end must be below the upper end")
                    .with_help("write e.g. `range 0.0..1.0`"),
            );
            None
        }
        (l, h) => l.zip(h),
    }
}

/// `start`: strictly inside the range (default its middle).
fn start(cx: &mut Cx, f: &Fields<'_>, range: Option<(f64, f64)>) -> Option<f64> {
    let Some(v) = f.get("start") else {
        return range.map(|(l, h)| (l + h) / 2.0);
    };
    let s = contrast(cx, v, "the start contrast")?;
    if let Some((l, h)) = range {
        if s <= l || s >= h {
            let mut d = Diag::error(
                Code::PlanOutOfRange,
                format!("start {s} is not inside the range {l}..{h}"),
            )
            .at(v.span, "outside the search range")
            .with_help(
                "bisection starts strictly inside its range; the tutorial starts at the middle",
            );
            if let Some(r) = f.get("range") {
                d = d.also(r.span, "the range");
            }
            cx.push(d);
            return None;
        }
    }
    Some(s)
}

/// `target`: the proportion correct of the threshold, strictly between chance and 1.
fn target(cx: &mut Cx, f: &Fields<'_>) -> Option<f64> {
    let Some(v) = f.get("target") else {
        return Some(0.75);
    };
    let x = cx.number(v, "target is a proportion correct in (0.5, 1)")?;
    if x <= 0.5 || x >= 1.0 {
        cx.out_of_range(
            v.span,
            format!("a 2AFC target must lie strictly between chance (0.5) and 1, got {x}"),
            "outside (0.5, 1)",
            "in two-alternative forced choice chance is 0.5; 0.75 is the usual threshold",
        );
        return None;
    }
    Some(x)
}
