//! The `train` block: the shapes the probe learns to compare, their contrasts and images.

use super::read::{
    contrast, empty_list, label_choice, normalize, reject_blocks, size, unknown_function, HOMES,
};
use crate::diag::{Code, Diag};
use crate::plan::types::{Shape, Train, Uniform};
use crate::plan::values::{Cx, Fields};
use crate::syntax::ast::{Block, Value, ValueKind};

pub(super) const TRAIN_SETTINGS: &[&str] = &[
    "size",
    "samples",
    "shapes",
    "background",
    "pivot",
    "contrast",
    "normalize",
];

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<Train> {
    label_choice(cx, b, "training stimuli", &[("shapes", ())])?;
    let f = Fields::new(cx, b, TRAIN_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let size = size(cx, &f);
    let samples = f
        .get("samples")
        .map_or(Some(1000), |v| cx.whole(v, "samples", 1, 100_000_000));
    let shapes = shapes(cx, f.get("shapes"));
    let background = f.get("background").map_or(Some(128.0 / 255.0), |v| {
        cx.number_in(
            v,
            "background",
            0.0,
            1.0,
            "the background grey level is in [0, 1]; the tutorial's is 128/255",
        )
    });
    let pivot = match (f.get("pivot"), background) {
        (None, b) => b,
        (Some(v), b) => pivot(cx, v, b),
    };
    let contrast = match f.get("contrast") {
        None => Some(Uniform { lo: 0.04, hi: 1.0 }),
        Some(v) => uniform(cx, v),
    };
    let normalize = normalize(cx, f.get("normalize"));
    Some(Train {
        size: size?,
        samples: samples? as u32,
        shapes: shapes?,
        background: background?,
        pivot: pivot?,
        contrast: contrast?,
        normalize: normalize?,
    })
}

/// `pivot background` (the background's grey level, resolved) or a grey level in [0, 1].
fn pivot(cx: &mut Cx, v: &Value, background: Option<f64>) -> Option<f64> {
    let help = "the grey level that keeps its value at every contrast: `background` (the default) or a number in [0, 1]; the tutorial's is 0.5";
    match &v.kind {
        ValueKind::Ident(w) if w == "background" => background,
        ValueKind::Ident(w) => {
            cx.unknown_value(v.span, "pivot", w, &["background", "a number in [0, 1]"]);
            None
        }
        _ => cx.number_in(v, "pivot", 0.0, 1.0, help),
    }
}

/// `contrast uniform(lo, hi)`: the training contrasts.
fn uniform(cx: &mut Cx, v: &Value) -> Option<Uniform> {
    let ValueKind::Call { name, args } = &v.kind else {
        cx.wrong_type(
            v,
            "a distribution",
            "write e.g. `contrast uniform(0.04, 1.0)`",
        );
        return None;
    };
    if name.text != "uniform" {
        unknown_function(cx, name, &["uniform"]);
        return None;
    }
    let slots = cx.args(name, args, &["lo", "hi"], &[])?;
    let (Some(lo_v), Some(hi_v)) = (slots[0], slots[1]) else {
        cx.missing_arg(
            name,
            v.span,
            if slots[0].is_none() { "lo" } else { "hi" },
            &["lo", "hi"],
            &[],
        );
        return None;
    };
    let lo = contrast(cx, lo_v, "the lowest contrast");
    let hi = contrast(cx, hi_v, "the highest contrast");
    let (lo, hi) = (lo?, hi?);
    if lo >= hi {
        cx.push(
            Diag::error(
                Code::PlanEmptyRange,
                format!("uniform({lo}, {hi}) is empty"),
            )
            .at(v.span, "lower end must be below the upper end")
            .with_help("write the lower contrast first, e.g. `uniform(0.04, 1.0)`"),
        );
        return None;
    }
    Some(Uniform { lo, hi })
}

/// `shapes [circle, ellipse, rectangle]` (the default: all three).
fn shapes(cx: &mut Cx, v: Option<&Value>) -> Option<Vec<Shape>> {
    match v {
        None => Some(vec![Shape::Circle, Shape::Ellipse, Shape::Rectangle]),
        Some(v) => match &v.kind {
            ValueKind::List(items) if items.is_empty() => {
                empty_list(
                    cx,
                    v,
                    "shapes",
                    "e.g. `shapes [circle, ellipse, rectangle]`",
                );
                None
            }
            ValueKind::List(items) => {
                let choices = [
                    ("circle", Shape::Circle),
                    ("ellipse", Shape::Ellipse),
                    ("rectangle", Shape::Rectangle),
                ];
                let all: Vec<Option<Shape>> = items
                    .iter()
                    .map(|i| cx.choice(i, "shape", &choices))
                    .collect();
                all.into_iter().collect()
            }
            _ => {
                cx.wrong_type(
                    v,
                    "a list of shapes",
                    "e.g. `shapes [circle, ellipse, rectangle]`",
                );
                None
            }
        },
    }
}
