//! Warnings: settings that are valid but probably not meant. They come last, on a plan
//! without errors, since each looks at the resolved values of several blocks.

use super::experiment::Sections;
use super::read::fmt_num;
use crate::diag::{Code, Diag};
use crate::plan::types::{BisectionStop, Derived, Staircase, TargetInterval, Test};
use crate::plan::values::Cx;

/// Pushes every warning about this experiment.
pub(super) fn check(
    cx: &mut Cx,
    sections: &Sections<'_>,
    test: &Test,
    staircase: &Staircase,
    derived: &Derived,
) {
    constant_target(cx, sections, test);
    unreachable_tolerance(cx, sections, staircase, derived);
    duplicate_orientations(cx, sections, test);
}

/// The grating always in the same interval: a constant answer scores 100 %.
fn constant_target(cx: &mut Cx, sections: &Sections<'_>, test: &Test) {
    let which = match test.target_interval {
        TargetInterval::Both => return,
        TargetInterval::First => "first",
        TargetInterval::Second => "second",
    };
    let mut d = Diag::warning(Code::PlanConstantTarget, format!("the grating is always in the {which} interval"))
        .with_help(format!(
            "a probe that always answers \"{which}\" scores 100% here whatever it sees; use `target_interval both` to counterbalance (keep `{which}` only to reproduce the tutorial)"
        ));
    if let Some(s) = sections.setting_span("test", "target_interval") {
        d = d.at(s, "the correct answer never changes");
    }
    cx.push(d);
}

/// A tolerance finer than the accuracy steps of one level: every staircase runs to
/// `max_steps`.
fn unreachable_tolerance(
    cx: &mut Cx,
    sections: &Sections<'_>,
    staircase: &Staircase,
    derived: &Derived,
) {
    let Staircase::Bisection {
        target,
        tolerance,
        max_steps,
        stop: BisectionStop::Tolerance,
        ..
    } = *staircase
    else {
        return;
    };
    let n = derived.trials_per_level.max(1);
    let (best_k, gap) = (0..=n)
        .map(|k| (k, (f64::from(k) / f64::from(n) - target).abs()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 1.0));
    if gap < tolerance {
        return;
    }
    let mut d = Diag::warning(
        Code::PlanToleranceUnreachable,
        format!("the staircase tolerance {tolerance} can never be met with {n} trials per level"),
    )
    .with_help(format!(
        "accuracy moves in steps of 1/{n}; the nearest to the target {target} is {best_k}/{n} = {:.4}, {gap:.4} away, so every staircase runs all {} evaluations and stops on max_steps. Raise tolerance above {gap:.4}, or change the number of trials (orientations × phases × intervals)",
        f64::from(best_k) / f64::from(n),
        max_steps + 1
    ));
    if let Some(s) = sections.setting_span("staircase", "tolerance") {
        d = d.at(s, "unreachable");
    }
    cx.push(d);
}

/// θ and θ+180° draw the same grating when the phases are symmetric (cos is even).
fn duplicate_orientations(cx: &mut Cx, sections: &Sections<'_>, test: &Test) {
    let norm = |a: f64| a.rem_euclid(360.0);
    let close = |a: f64, b: f64| {
        let d = (norm(a) - norm(b)).abs();
        d < 1e-9 || (360.0 - d) < 1e-9
    };
    let symmetric = test
        .phases
        .iter()
        .all(|p| test.phases.iter().any(|q| close(*q, -p)));
    if !symmetric {
        return;
    }
    let pairs: Vec<String> = test
        .orientations
        .iter()
        .enumerate()
        .flat_map(|(i, a)| test.orientations[i + 1..].iter().map(move |b| (*a, *b)))
        .filter(|(a, b)| close(*a + 180.0, *b) || close(*a, *b))
        .map(|(a, b)| format!("{}° and {}°", fmt_num(a), fmt_num(b)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let mut d = Diag::warning(Code::PlanDuplicateStimuli, format!("orientations {} draw the same grating", pairs.join(", ")))
        .with_help("a grating at θ + 180° with phase −φ is the grating at θ with phase φ, so these trials count one stimulus twice; use `steps(0deg, 180deg, 15deg)` (180° excluded), or keep it to reproduce the tutorial");
    if let Some(s) = sections.setting_span("test", "orientations") {
        d = d.at(s, "duplicate orientations");
    }
    cx.push(d);
}
