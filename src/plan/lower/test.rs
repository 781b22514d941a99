//! The `test` block: the gratings, their frequencies, orientations, phases and envelope,
//! the reference contrast and which interval holds the target.

use super::generators::{angles, divisors, numbers};
use super::read::{
    contrast, fmt_num, label_choice, normalize, positive, reject_blocks, size, unknown_function,
    HOMES,
};
use crate::diag::{Code, Diag};
use crate::plan::types::{Envelope, TargetInterval, Test};
use crate::plan::values::{Cx, Fields};
use crate::syntax::ast::{Block, Value, ValueKind};

const TEST_SETTINGS: &[&str] = &[
    "size",
    "frequencies",
    "orientations",
    "phases",
    "envelope",
    "reference",
    "target_interval",
    "normalize",
];

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<Test> {
    label_choice(cx, b, "test stimuli", &[("gratings", ())])?;
    let f = Fields::new(cx, b, TEST_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let size = size(cx, &f);
    let frequencies = frequencies(cx, &f, size);
    let orientations = match f.get("orientations") {
        None => Some((0..12).map(|i| f64::from(i) * 15.0).collect()),
        Some(v) => angles(cx, v, "orientations"),
    };
    let phases = match f.get("phases") {
        None => Some(vec![0.0]),
        Some(v) => angles(cx, v, "phases"),
    };
    let envelope = match (f.get("envelope"), size) {
        (None, Some(s)) => Some(Envelope::Gaussian {
            sigma: f64::from(s) / 6.0,
        }),
        (None, None) => None,
        (Some(v), _) => envelope(cx, v),
    };
    let reference = f
        .get("reference")
        .map_or(Some(0.0), |v| contrast(cx, v, "the reference contrast"));
    let target_interval = f
        .get("target_interval")
        .map_or(Some(TargetInterval::Both), |v| {
            cx.choice(
                v,
                "target interval",
                &[
                    ("both", TargetInterval::Both),
                    ("first", TargetInterval::First),
                    ("second", TargetInterval::Second),
                ],
            )
        });
    let normalize = normalize(cx, f.get("normalize"));
    Some(Test {
        size: size?,
        frequencies: frequencies?,
        orientations: orientations?,
        phases: phases?,
        envelope: envelope?,
        reference: reference?,
        target_interval: target_interval?,
        normalize: normalize?,
    })
}

/// `envelope none` or `envelope gaussian(sigma: …)`.
fn envelope(cx: &mut Cx, v: &Value) -> Option<Envelope> {
    match &v.kind {
        ValueKind::Ident(w) if w == "none" => Some(Envelope::Off),
        ValueKind::Call { name, args } if name.text == "gaussian" => {
            let slots = cx.args(name, args, &[], &["sigma"])?;
            let Some(s) = slots[0] else {
                cx.missing_arg(name, v.span, "sigma", &[], &["sigma"]);
                return None;
            };
            positive(cx, s, "sigma").map(|sigma| Envelope::Gaussian { sigma })
        }
        ValueKind::Call { name, .. } => {
            unknown_function(cx, name, &["gaussian"]);
            None
        }
        ValueKind::Ident(w) => {
            cx.unknown_value(v.span, "envelope", w, &["none", "gaussian(sigma: …)"]);
            None
        }
        _ => {
            cx.wrong_type(
                v,
                "an envelope",
                "write `none` or e.g. `gaussian(sigma: 224 / 6)`",
            );
            None
        }
    }
}

/// `frequencies` in cycles per image; by default every divisor of the size up to the
/// Nyquist limit. Written frequencies are checked against that limit.
fn frequencies(cx: &mut Cx, f: &Fields<'_>, size: Option<u32>) -> Option<Vec<f64>> {
    let v = f.get("frequencies");
    let frequencies = match (v, size) {
        (None, Some(s)) => Some(
            divisors(u64::from(s), u64::from(s) / 2)
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        ),
        (None, None) => None,
        (Some(v), _) => numbers(cx, v, "frequencies", "cycles per image"),
    };
    if let (Some(freqs), Some(size), Some(v)) = (&frequencies, size, v) {
        check_nyquist(cx, f, freqs, size, v);
    }
    frequencies
}

/// Every frequency positive and at most size / 2.
fn check_nyquist(cx: &mut Cx, f: &Fields<'_>, freqs: &[f64], size: u32, v: &Value) {
    let nyquist = f64::from(size) / 2.0;
    let bad: Vec<String> = freqs
        .iter()
        .filter(|x| **x <= 0.0 || **x > nyquist)
        .map(|x| fmt_num(*x))
        .collect();
    if bad.is_empty() {
        return;
    }
    let positive = freqs.iter().all(|x| *x > 0.0);
    let (code, msg, label) = if positive {
        (
            Code::PlanAboveNyquist,
            format!("frequencies above the Nyquist limit of a {size} px image ({} cycles per image): {}", fmt_num(nyquist), bad.join(", ")),
            "above size / 2".to_string(),
        )
    } else {
        (
            Code::PlanOutOfRange,
            format!("frequencies must be positive: {}", bad.join(", ")),
            "must be > 0".to_string(),
        )
    };
    let mut d = Diag::error(code, msg).at(v.span, label).with_help(format!(
        "a {size} px image holds at most {} cycles; e.g. `divisors({size}, max: {})`",
        fmt_num(nyquist),
        size / 2
    ));
    if let Some(s) = f.setting("size") {
        d = d.also(s.value.span, "image size set here");
    }
    cx.push(d);
}
