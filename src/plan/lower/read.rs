//! The readers every block shares: nested-block and label checks, numbers with a range,
//! sizes, normalisation, and the messages for unknown functions and empty lists.

use super::{CLIP_MEAN, CLIP_STD, DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD};
use crate::diag::{Code, Diag, Span};
use crate::plan::types::Normalize;
use crate::plan::values::{suggest, Cx, Fields};
use crate::syntax::ast::{Block, Name, Value, ValueKind};

/// Where settings of other blocks belong, for "`lr` belongs in …" messages.
pub(super) const HOMES: &[(&str, &str)] = &[
    ("seed", "the experiment block"),
    ("device", "the experiment block"),
    ("precision", "the experiment block"),
    ("repeats", "the experiment block"),
    ("decision", "`observer`"),
    ("pixel_noise", "`observer`"),
    ("phase_jitter", "`observer`"),
    ("position_jitter", "`observer`"),
    ("lapse", "`fit`"),
    ("likelihood", "`fit`"),
    ("bootstrap", "`fit`"),
    ("level", "`fit`"),
    ("weights", "`backbone`"),
    ("cut", "`backbone`"),
    ("pooling", "`backbone`"),
    ("batchnorm", "`backbone`"),
    ("paradigm", "`probe`"),
    ("epochs", "`probe`"),
    ("batch", "`probe`"),
    ("lr", "`optimizer sgd { … }` inside `probe`"),
    ("momentum", "`optimizer sgd { … }` inside `probe`"),
    ("weight_decay", "`optimizer sgd { … }` inside `probe`"),
    ("samples", "`train`"),
    ("shapes", "`train`"),
    ("background", "`train`"),
    ("pivot", "`train`"),
    ("contrast", "`train`"),
    ("frequencies", "`test`"),
    ("orientations", "`test`"),
    ("phases", "`test`"),
    ("envelope", "`test`"),
    ("reference", "`test`"),
    ("target_interval", "`test`"),
    ("start", "`staircase`"),
    ("range", "`staircase`"),
    ("target", "`staircase`"),
    ("tolerance", "`staircase`"),
    ("max_steps", "`staircase`"),
];

/// A block's header: its keyword and its label (`probe linear`, `experiment csf`), the span
/// a setting the block left at its default points at.
pub(super) fn header(b: &Block) -> Span {
    match &b.label {
        Some(label) => b.keyword.span.join(label.span),
        None => b.keyword.span,
    }
}

/// Nested blocks are allowed only where listed.
pub(super) fn reject_blocks(cx: &mut Cx, b: &Block, allowed: &[&str]) {
    for inner in b.blocks() {
        if allowed.contains(&inner.keyword.text.as_str()) {
            continue;
        }
        let mut help = if allowed.is_empty() {
            format!("`{}` has no nested blocks", b.keyword.text)
        } else {
            format!(
                "`{}` has the blocks: {}",
                b.keyword.text,
                allowed.join(", ")
            )
        };
        // `optimiser` (British spelling) and other near misses.
        if let Some(s) = suggest(&inner.keyword.text, allowed.iter().copied()) {
            help = format!("did you mean `{s}`? {help}");
        }
        cx.push(
            Diag::error(
                Code::PlanUnknownBlock,
                format!(
                    "unknown block `{}` in `{}`",
                    inner.keyword.text, b.keyword.text
                ),
            )
            .at(inner.keyword.span, "unknown block")
            .with_help(help),
        );
    }
}

pub(super) fn label_choice<T: Copy>(
    cx: &mut Cx,
    b: &Block,
    what: &str,
    choices: &[(&str, T)],
) -> Option<T> {
    match &b.label {
        None => Some(choices[0].1),
        Some(v) => cx.choice(v, what, choices),
    }
}

pub(super) fn positive(cx: &mut Cx, v: &Value, what: &str) -> Option<f64> {
    let x = cx.number(v, &format!("{what} is a positive number"))?;
    if x <= 0.0 {
        cx.out_of_range(
            v.span,
            format!("{what} must be positive, got {x}"),
            "must be > 0",
            &format!("{what} is a positive number, e.g. 0.1"),
        );
        return None;
    }
    Some(x)
}

pub(super) fn half_open_unit(cx: &mut Cx, v: &Value, what: &str) -> Option<f64> {
    let x = cx.number(v, &format!("{what} is a number in [0, 1)"))?;
    if !(0.0..1.0).contains(&x) {
        cx.out_of_range(
            v.span,
            format!("{what} must be in [0, 1), got {x}"),
            "outside [0, 1)",
            &format!("{what} is a number in [0, 1), e.g. 0.9"),
        );
        return None;
    }
    Some(x)
}

pub(super) fn contrast(cx: &mut Cx, v: &Value, what: &str) -> Option<f64> {
    cx.number_in(v, what, 0.0, 1.0, "contrasts are proportions in [0, 1]")
}

pub(super) fn size(cx: &mut Cx, f: &Fields<'_>) -> Option<u32> {
    f.get("size").map_or(Some(DEFAULT_SIZE), |v| {
        cx.whole(v, "size", 1, 4096).map(|x| x as u32)
    })
}

/// `normalize`: `imagenet`, `clip`, `none` or `custom(mean: […], std: […])`; by default the
/// backbone network's own (`clip` for CLIP's encoders, else `imagenet`).
pub(super) fn normalize(cx: &mut Cx, v: Option<&Value>) -> Option<Normalize> {
    let imagenet = Normalize::MeanStd {
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    };
    let Some(v) = v else {
        return Some(cx.normalize.clone().unwrap_or(imagenet));
    };
    match &v.kind {
        ValueKind::Ident(w) if w == "imagenet" => Some(imagenet),
        ValueKind::Ident(w) if w == "clip" => Some(Normalize::MeanStd {
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }),
        ValueKind::Ident(w) if w == "none" => Some(Normalize::Off),
        ValueKind::Ident(w) => {
            cx.unknown_value(
                v.span,
                "normalisation",
                w,
                &["imagenet", "clip", "none", "custom(mean: […], std: […])"],
            );
            None
        }
        ValueKind::Call { name, args } if name.text == "custom" => {
            let slots = cx.args(name, args, &[], &["mean", "std"])?;
            let mean = channels(cx, name, v.span, slots[0], "mean", None);
            let std = channels(cx, name, v.span, slots[1], "std", Some(0.0));
            Some(Normalize::MeanStd {
                mean: mean?,
                std: std?,
            })
        }
        ValueKind::Call { name, .. } => {
            unknown_function(cx, name, &["custom"]);
            None
        }
        _ => {
            cx.wrong_type(
                v,
                "`imagenet`, `none` or `custom(…)`",
                "normalisation is applied after the contrast manipulation",
            );
            None
        }
    }
}

/// One argument of `custom(mean: […], std: […])` (`call` spans the whole call): three
/// numbers, each above `min_excl` when given.
fn channels(
    cx: &mut Cx,
    name: &Name,
    call: Span,
    slot: Option<&Value>,
    what: &str,
    min_excl: Option<f64>,
) -> Option<[f64; 3]> {
    let Some(v) = slot else {
        cx.missing_arg(name, call, what, &[], &["mean", "std"]);
        return None;
    };
    let ValueKind::List(items) = &v.kind else {
        cx.wrong_type(
            v,
            "a list of three numbers (R, G, B)",
            "e.g. `mean: [0.5, 0.5, 0.5]`",
        );
        return None;
    };
    if items.len() != 3 {
        cx.wrong_type(
            v,
            "a list of three numbers (R, G, B)",
            "one number per channel",
        );
        return None;
    }
    let mut out = [0.0; 3];
    for (o, item) in out.iter_mut().zip(items) {
        let x = cx.number(item, "channel values are numbers")?;
        if min_excl.is_some_and(|m| x <= m) {
            cx.out_of_range(
                item.span,
                format!("std must be positive, got {x}"),
                "must be > 0",
                "a standard deviation is positive",
            );
            return None;
        }
        if min_excl.is_some() && x as f32 == 0.0 {
            cx.out_of_range(
                item.span,
                format!("std {x:e} is 0 as a float32, in which psyrun computes"),
                "rounds to 0",
                "a standard deviation is at least about 1e-45 (float32's smallest)",
            );
            return None;
        }
        *o = x;
    }
    Some(out)
}

pub(super) fn unknown_function(cx: &mut Cx, name: &Name, known: &[&str]) {
    let mut help = format!("here you can use: {}", known.join(", "));
    if let Some(s) = suggest(&name.text, known.iter().copied()) {
        help = format!("did you mean `{s}`? {help}");
    }
    cx.push(
        Diag::error(
            Code::PlanUnknownFunction,
            format!("no function `{}` here", name.text),
        )
        .at(name.span, "unknown function")
        .with_help(help),
    );
}

pub(super) fn empty_list(cx: &mut Cx, v: &Value, what: &str, help: &str) {
    cx.push(
        Diag::error(Code::PlanEmptyList, format!("`{what}` is empty"))
            .at(v.span, "needs at least one value")
            .with_help(help.to_string()),
    );
}

pub(super) fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}
