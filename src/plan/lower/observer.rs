//! The `observer` block: the decision noise and the trial-to-trial variation of the test
//! stimuli. Optional; its defaults are [`Observer::default`].

use super::read::{positive, reject_blocks, unknown_function, HOMES};
use crate::diag::{Code, Diag};
use crate::plan::types::{Decision, NoiseKind, Observer};
use crate::plan::values::{Cx, Fields};
use crate::syntax::ast::{Block, Value, ValueKind};

pub(super) const OBSERVER_SETTINGS: &[&str] =
    &["decision", "pixel_noise", "phase_jitter", "position_jitter"];

const DECISIONS: &[&str] = &[
    "deterministic",
    "gaussian(sigma: …)",
    "gaussian(accuracy: …)",
    "softmax(temperature: …)",
    "softmax(accuracy: …)",
];

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<Observer> {
    if let Some(label) = &b.label {
        cx.push(
            Diag::error(Code::PlanUnknownValue, "`observer` takes no label")
                .at(label.span, "remove this")
                .with_help("write `observer { decision softmax(temperature: 1) }`"),
        );
    }
    let f = Fields::new(cx, b, OBSERVER_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let d = Observer::default();
    let decision = f
        .get("decision")
        .map_or(Some(d.decision), |v| decision(cx, v));
    if let (Some(Decision::Deterministic), Some(v)) = (decision, f.get("decision")) {
        cx.push(
            Diag::warning(
                Code::PlanDeterministicObserver,
                "a deterministic observer answers every trial of a condition the same way",
            )
            .at(v.span, "no decision noise")
            .with_help(
                "its accuracy at a contrast is the share of conditions whose decision variable \
                 has crossed the probe's bias, so the threshold is an order statistic of a few \
                 critical contrasts, with no psychometric slope behind it; keep it only to \
                 reproduce the tutorial, else use `decision softmax(temperature: 1)` (the \
                 default) or `gaussian(accuracy: 0.9)`",
            ),
        );
    }
    let pixel_noise = f.get("pixel_noise").map_or(Some(d.pixel_noise), |v| {
        cx.number_in(
            v,
            "pixel_noise",
            0.0,
            1.0,
            "pixel_noise is the standard deviation of the noise in grey levels of [0, 1], e.g. 0.05",
        )
    });
    let phase_jitter = f
        .get("phase_jitter")
        .map_or(Some(d.phase_jitter), |v| jitter_angle(cx, v));
    let position_jitter = f
        .get("position_jitter")
        .map_or(Some(d.position_jitter), |v| {
            cx.whole(v, "position_jitter (pixels)", 0, 4096)
                .map(|x| x as u32)
        });
    Some(Observer {
        decision: decision?,
        pixel_noise: pixel_noise?,
        phase_jitter: phase_jitter?,
        position_jitter: position_jitter?,
    })
}

/// `phase_jitter`: one angle in [0°, 180°].
fn jitter_angle(cx: &mut Cx, v: &Value) -> Option<f64> {
    let help = "write one angle, e.g. `phase_jitter 180deg` (a random phase)";
    let a = match v.kind {
        ValueKind::Angle(a) => a,
        ValueKind::Number(_) | ValueKind::Integer(_) => {
            cx.push(
                Diag::error(Code::PlanWrongType, "an angle needs a unit")
                    .at(v.span, "add `deg` or `rad`")
                    .with_help(help),
            );
            return None;
        }
        _ => {
            cx.wrong_type(v, "an angle", help);
            return None;
        }
    };
    if !(0.0..=180.0).contains(&a) {
        cx.out_of_range(
            v.span,
            format!("phase_jitter must be from 0deg to 180deg, got {a}deg"),
            "outside 0deg..180deg",
            "the phase is drawn uniformly in ±phase_jitter; 180deg is a random phase",
        );
        return None;
    }
    Some(a)
}

fn decision(cx: &mut Cx, v: &Value) -> Option<Decision> {
    match &v.kind {
        ValueKind::Ident(w) if w == "deterministic" => Some(Decision::Deterministic),
        ValueKind::Call { name, args } if name.text == "gaussian" || name.text == "softmax" => {
            let scale = if name.text == "gaussian" {
                "sigma"
            } else {
                "temperature"
            };
            let slots = cx.args(name, args, &[], &[scale, "accuracy"])?;
            match (slots[0], slots[1]) {
                (Some(s), None) => {
                    let s = positive(cx, s, scale)?;
                    if !cx.float32(v.span, s, "use a smaller scale") {
                        return None;
                    }
                    Some(if name.text == "gaussian" {
                        Decision::Gaussian { sigma: s }
                    } else {
                        Decision::Softmax { temperature: s }
                    })
                }
                (None, Some(a)) => {
                    let a = cx.number(a, "accuracy is a proportion correct in (0.5, 1)")?;
                    if a <= 0.5 || a >= 1.0 {
                        cx.out_of_range(
                            slots[1].map_or(v.span, |x| x.span),
                            format!("a calibrated accuracy must lie strictly between chance (0.5) and 1, got {a}"),
                            "outside (0.5, 1)",
                            "the noise is set so that the observer's expected accuracy on fresh training trials is this value, e.g. 0.9",
                        );
                        return None;
                    }
                    let noise = if name.text == "gaussian" {
                        NoiseKind::Gaussian
                    } else {
                        NoiseKind::Logistic
                    };
                    Some(Decision::Calibrated { noise, accuracy: a })
                }
                (Some(_), Some(second)) => {
                    cx.push(
                        Diag::error(
                            Code::PlanBadArgument,
                            format!("`{}` takes `{scale}` or `accuracy`, not both", name.text),
                        )
                        .at(second.span, "a second way to set the noise")
                        .with_help(format!(
                            "`{0}({scale}: …)` fixes the noise; `{0}(accuracy: …)` calibrates it after training",
                            name.text
                        )),
                    );
                    None
                }
                (None, None) => {
                    cx.missing_arg(name, v.span, scale, &[], &[scale, "accuracy"]);
                    None
                }
            }
        }
        ValueKind::Call { name, .. } => {
            unknown_function(cx, name, &["gaussian", "softmax"]);
            None
        }
        ValueKind::Ident(w) => {
            cx.unknown_value(v.span, "decision", w, DECISIONS);
            None
        }
        _ => {
            cx.wrong_type(
                v,
                "a decision rule",
                "write `deterministic`, `softmax(temperature: 1)` or `gaussian(sigma: 0.5)`",
            );
            None
        }
    }
}
