//! The `fit` block: the psychometric function fitted to each frequency's trials, its
//! confidence intervals, and which threshold the results report. Optional; its defaults are
//! [`Fit::default`].

use super::read::{reject_blocks, HOMES};
use crate::diag::{Code, Diag};
use crate::plan::types::{Estimation, Fit, Likelihood, Sigmoid, ThresholdFrom};
use crate::plan::values::{Cx, Fields};
use crate::syntax::ast::{Block, Value, ValueKind};

pub(super) const FIT_SETTINGS: &[&str] = &[
    "lapse",
    "likelihood",
    "estimate",
    "bootstrap",
    "ci",
    "level",
    "threshold",
];

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<Fit> {
    let d = Fit::default();
    let function = match &b.label {
        None => d.function,
        Some(v) => cx.choice(
            v,
            "psychometric function",
            &[
                ("weibull", Some(Sigmoid::Weibull)),
                ("logistic", Some(Sigmoid::Logistic)),
                ("gaussian", Some(Sigmoid::Gaussian)),
                ("gumbel", Some(Sigmoid::Gumbel)),
                ("none", None),
            ],
        )?,
    };
    let f = Fields::new(cx, b, FIT_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    if function.is_none() {
        if let Some(s) = b.settings().next() {
            cx.push(
                Diag::error(
                    Code::PlanUnknownSetting,
                    format!("`fit none` has no settings, but `{}` is set", s.key.text),
                )
                .at(s.key.span, "nothing is fitted")
                .with_help("remove the setting, or name a function: `fit weibull { … }`"),
            );
            return None;
        }
        return Some(Fit {
            function: None,
            threshold: ThresholdFrom::Procedure,
            ..d
        });
    }
    let lapse = f.get("lapse").map_or(Some(d.lapse), |v| lapse(cx, v));
    let likelihood = f.get("likelihood").map_or(Some(d.likelihood), |v| {
        cx.choice(
            v,
            "likelihood",
            &[
                ("binomial", Likelihood::Binomial),
                ("beta_binomial", Likelihood::BetaBinomial),
            ],
        )
    });
    let estimate = f.get("estimate").map_or(Some(d.estimate), |v| {
        cx.choice(
            v,
            "estimate",
            &[("ml", Estimation::Ml), ("map", Estimation::Map)],
        )
    });
    let bootstrap = f.get("bootstrap").map_or(Some(d.bootstrap), |v| {
        cx.whole(v, "bootstrap", 0, 100_000).map(|x| x as u32)
    });
    let ci = f.get("ci").map_or(Some(d.ci), |v| {
        open_unit(
            cx,
            v,
            "ci",
            "the confidence level of the intervals, e.g. 0.95",
        )
    });
    let level = f.get("level").map_or(Some(d.level), |v| level(cx, v));
    let threshold = f.get("threshold").map_or(Some(d.threshold), |v| {
        cx.choice(
            v,
            "threshold",
            &[
                ("fit", ThresholdFrom::Fit),
                ("procedure", ThresholdFrom::Procedure),
            ],
        )
    });
    Some(Fit {
        function,
        lapse: lapse?,
        likelihood: likelihood?,
        estimate: estimate?,
        bootstrap: bootstrap?,
        ci: ci?,
        level: level?,
        threshold: threshold?,
    })
}

fn open_unit(cx: &mut Cx, v: &Value, what: &str, help: &str) -> Option<f64> {
    let x = cx.number(v, help)?;
    if x <= 0.0 || x >= 1.0 {
        cx.out_of_range(
            v.span,
            format!("{what} must lie strictly between 0 and 1, got {x}"),
            "outside (0, 1)",
            help,
        );
        return None;
    }
    Some(x)
}

/// `level`: the proportion correct the threshold is read at, strictly between chance and 1.
fn level(cx: &mut Cx, v: &Value) -> Option<f64> {
    let x = cx.number(v, "level is a proportion correct in (0.5, 1)")?;
    if x <= 0.5 || x >= 1.0 {
        cx.out_of_range(
            v.span,
            format!("a 2AFC threshold level must lie strictly between chance (0.5) and 1, got {x}"),
            "outside (0.5, 1)",
            "in two-alternative forced choice chance is 0.5; 0.75 is the usual threshold",
        );
        return None;
    }
    Some(x)
}

/// `lapse lo..hi`: a free lapse rate in [0, hi] (`lo` = 0), or a fixed one (`lo` = `hi`).
fn lapse(cx: &mut Cx, v: &Value) -> Option<(f64, f64)> {
    let help = "write the lapse rate's bounds, e.g. `lapse 0.0..0.05` (or `0.0..0.0` for none)";
    let ValueKind::Range(lo, hi) = &v.kind else {
        cx.wrong_type(v, "a range", help);
        return None;
    };
    let l = cx.number_in(lo, "the lapse's lower bound", 0.0, 0.49, help);
    let h = cx.number_in(hi, "the lapse's upper bound", 0.0, 0.49, help);
    let (l, h) = (l?, h?);
    if l > h {
        cx.push(
            Diag::error(
                Code::PlanEmptyRange,
                format!("the lapse range {l}..{h} is empty"),
            )
            .at(v.span, "lower bound above the upper")
            .with_help(help),
        );
        return None;
    }
    if l > 0.0 && l < h {
        cx.out_of_range(
            lo.span,
            format!("a free lapse rate starts at 0, got a lower bound of {l}"),
            "must be 0 (or equal to the upper bound, to fix the rate)",
            "write `lapse 0.0..0.05` for a free rate up to 0.05, or `lapse 0.02..0.02` to fix it",
        );
        return None;
    }
    Some((l, h))
}
