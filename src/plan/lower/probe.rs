//! The `probe` block (paradigm, epochs, batch) and its `optimizer` block.

use super::read::{half_open_unit, header, label_choice, positive, reject_blocks, HOMES};
use crate::diag::{Code, Diag};
use crate::plan::spans::Setting;
use crate::plan::types::{Optimizer, Paradigm, Probe};
use crate::plan::values::{Cx, Fields};
use crate::syntax::ast::{Block, ValueKind};

pub(super) const PROBE_SETTINGS: &[&str] = &["paradigm", "epochs", "batch"];
pub(super) const SGD_SETTINGS: &[&str] = &["lr", "momentum", "weight_decay", "nesterov"];
pub(super) const ADAM_SETTINGS: &[&str] = &["lr", "betas", "weight_decay"];

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<Probe> {
    label_choice(cx, b, "probe kind", &[("linear", ())])?;
    let f = Fields::new(cx, b, PROBE_SETTINGS, HOMES);
    reject_blocks(cx, b, &["optimizer"]);
    cx.spans.record(Setting::Probe, header(b));
    let paradigm = f.get("paradigm").map_or(Some(Paradigm::TwoAfc), |v| {
        cx.choice(v, "paradigm", &[("2afc", Paradigm::TwoAfc)])
    });
    let epochs = f
        .get("epochs")
        .map_or(Some(10), |v| cx.whole(v, "epochs", 1, 100_000));
    let batch = f
        .get("batch")
        .map_or(Some(32), |v| cx.whole(v, "batch", 1, 1_000_000));
    let mut optimizers = b.blocks().filter(|x| x.keyword.text == "optimizer");
    let optimizer = match optimizers.next() {
        None => {
            // The probe took the default optimizer, and with it the default `lr`.
            cx.spans.record(Setting::Lr, header(b));
            Some(default_sgd())
        }
        Some(o) => {
            if let Some(second) = optimizers.next() {
                cx.push(
                    Diag::error(Code::PlanDuplicateBlock, "`optimizer` appears twice")
                        .at(second.keyword.span, "second optimizer")
                        .also(o.keyword.span, "first optimizer")
                        .with_help("a probe has one optimizer"),
                );
            }
            optimizer(cx, o)
        }
    };
    Some(Probe {
        paradigm: paradigm?,
        optimizer: optimizer?,
        epochs: epochs? as u32,
        batch: batch? as u32,
    })
}

fn default_sgd() -> Optimizer {
    Optimizer::Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-4,
        nesterov: false,
    }
}

#[derive(Clone, Copy)]
enum OptKind {
    Sgd,
    Adam,
}

/// `optimizer sgd { … }` or `optimizer adam { … }`.
fn optimizer(cx: &mut Cx, b: &Block) -> Option<Optimizer> {
    let kind = label_choice(
        cx,
        b,
        "optimizer",
        &[("sgd", OptKind::Sgd), ("adam", OptKind::Adam)],
    )?;
    let allowed = match kind {
        OptKind::Sgd => SGD_SETTINGS,
        OptKind::Adam => ADAM_SETTINGS,
    };
    let f = Fields::new(cx, b, allowed, &[]);
    let lr_v = f.get("lr");
    cx.spans
        .record(Setting::Lr, lr_v.map_or(header(b), |v| v.span));
    let lr = lr_v.map_or(
        Some(match kind {
            OptKind::Sgd => 0.1,
            OptKind::Adam => 1e-3,
        }),
        |v| positive(cx, v, "the learning rate lr"),
    );
    let wd = weight_decay(cx, &f, kind);
    match kind {
        OptKind::Sgd => {
            let momentum = f
                .get("momentum")
                .map_or(Some(0.9), |v| half_open_unit(cx, v, "momentum"));
            let nesterov = f.get("nesterov").map_or(Some(false), |v| {
                cx.choice(v, "nesterov flag", &[("false", false), ("true", true)])
            });
            // Nesterov's look-ahead is a momentum step: without momentum libtorch refuses it
            // when the run starts, after the run folder exists.
            if let (Some(0.0), Some(true), Some(nv)) = (momentum, nesterov, f.get("nesterov")) {
                let mut d = Diag::error(
                    Code::PlanIncompatible,
                    "Nesterov momentum needs momentum, but `momentum` is 0",
                )
                .at(nv.span, "Nesterov's look-ahead is a momentum step")
                .with_help("set `momentum` above 0 (0.9 is usual), or remove `nesterov true`");
                if let Some(m) = f.get("momentum") {
                    d = d.also(m.span, "no momentum");
                }
                cx.push(d);
                return None;
            }
            Some(Optimizer::Sgd {
                lr: lr?,
                momentum: momentum?,
                weight_decay: wd?,
                nesterov: nesterov?,
            })
        }
        OptKind::Adam => {
            let betas = betas(cx, &f);
            Some(Optimizer::Adam {
                lr: lr?,
                betas: betas?,
                weight_decay: wd?,
            })
        }
    }
}

/// `weight_decay`: a number ≥ 0 (the default depends on the optimizer).
fn weight_decay(cx: &mut Cx, f: &Fields<'_>, kind: OptKind) -> Option<f64> {
    let Some(v) = f.get("weight_decay") else {
        return Some(match kind {
            OptKind::Sgd => 1e-4,
            OptKind::Adam => 0.0,
        });
    };
    let x = cx.number(v, "weight_decay is a number ≥ 0, e.g. 1e-4")?;
    if x < 0.0 {
        cx.out_of_range(
            v.span,
            format!("weight_decay must not be negative, got {x}"),
            "negative",
            "use 0 for no weight decay",
        );
        return None;
    }
    Some(x)
}

/// Adam's `betas [b1, b2]`, each in [0, 1).
fn betas(cx: &mut Cx, f: &Fields<'_>) -> Option<(f64, f64)> {
    let Some(v) = f.get("betas") else {
        return Some((0.9, 0.999));
    };
    match &v.kind {
        ValueKind::List(items) if items.len() == 2 => {
            let b1 = half_open_unit(cx, &items[0], "beta1");
            let b2 = half_open_unit(cx, &items[1], "beta2");
            b1.zip(b2)
        }
        _ => {
            cx.wrong_type(
                v,
                "a list of two numbers",
                "write e.g. `betas [0.9, 0.999]`",
            );
            None
        }
    }
}
