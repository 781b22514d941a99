//! The `staircase` block: bisection, up/down, QUEST, QUEST+ or constant stimuli.

use super::generators::numbers;
use super::read::{label_choice, positive, reject_blocks, HOMES};
use crate::diag::{Code, Diag};
use crate::plan::types::{
    BisectionStop, ConstantSettings, QuestMethod, QuestPlusSettings, QuestSettings, Staircase,
    StepScale, StopWhen, UpDownSettings,
};
use crate::plan::values::LevelDomain;
use crate::plan::values::{Cx, Fields};
use crate::syntax::ast::{Block, Value, ValueKind};

pub(super) const BISECTION_SETTINGS: &[&str] = &[
    "start",
    "range",
    "target",
    "stop",
    "tolerance",
    "bracket",
    "max_steps",
];
pub(super) const UPDOWN_SETTINGS: &[&str] = &[
    "start",
    "range",
    "steps",
    "scale",
    "up",
    "down",
    "up_factor",
    "initial_rule",
    "trials",
    "reversals",
    "stop",
    "max_trials",
    "average_last",
];
pub(super) const QUEST_SETTINGS: &[&str] = &[
    "start",
    "start_sd",
    "range",
    "target",
    "beta",
    "delta",
    "gamma",
    "grain",
    "method",
    "trials",
    "stop_interval",
];
pub(super) const QUESTPLUS_SETTINGS: &[&str] = &[
    "contrasts_db",
    "thresholds_db",
    "slopes",
    "lapses",
    "gamma",
    "target",
    "trials",
];
pub(super) const CONSTANT_SETTINGS: &[&str] = &["levels", "range", "repeats", "target"];

/// Largest QUEST+ table (stimuli × parameter points): two tables of f64 of this length.
const MAX_QUESTPLUS_TABLE: usize = 20_000_000;

#[derive(Clone, Copy)]
enum Kind {
    Bisection,
    UpDown,
    Quest,
    QuestPlus,
    Constant,
}

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<Staircase> {
    let kind = label_choice(
        cx,
        b,
        "staircase",
        &[
            ("bisection", Kind::Bisection),
            ("updown", Kind::UpDown),
            ("quest", Kind::Quest),
            ("questplus", Kind::QuestPlus),
            ("constant", Kind::Constant),
        ],
    )?;
    reject_blocks(cx, b, &[]);
    let allowed = match kind {
        Kind::Bisection => BISECTION_SETTINGS,
        Kind::UpDown => UPDOWN_SETTINGS,
        Kind::Quest => QUEST_SETTINGS,
        Kind::QuestPlus => QUESTPLUS_SETTINGS,
        Kind::Constant => CONSTANT_SETTINGS,
    };
    let f = Fields::new(cx, b, allowed, HOMES);
    match kind {
        Kind::Bisection => bisection(cx, &f),
        Kind::UpDown => updown(cx, &f),
        Kind::Quest => quest(cx, &f),
        Kind::QuestPlus => questplus(cx, &f),
        Kind::Constant => constant(cx, &f),
    }
}

fn bisection(cx: &mut Cx, f: &Fields<'_>) -> Option<Staircase> {
    let range = range(cx, f, (0.0, 1.0), false);
    let start = start(cx, f, range, |(l, h)| (l + h) / 2.0, true);
    let target = target(cx, f, 0.5);
    // Writing `tolerance` without `stop` keeps the tutorial's rule (files written before
    // `stop` existed mean it); otherwise the bracket rule is the default.
    let stop = match f.get("stop") {
        Some(v) => cx.choice(
            v,
            "bisection stop rule",
            &[
                ("bracket", BisectionStop::Bracket),
                ("tolerance", BisectionStop::Tolerance),
            ],
        ),
        None if f.get("tolerance").is_some() => Some(BisectionStop::Tolerance),
        None => Some(BisectionStop::Bracket),
    };
    let tolerance = f
        .get("tolerance")
        .map_or(Some(1e-4), |v| positive(cx, v, "tolerance"));
    let bracket = f
        .get("bracket")
        .map_or(Some(0.01), |v| positive(cx, v, "bracket"));
    if let Some(rule) = stop {
        let (unused, name) = match rule {
            BisectionStop::Bracket => ("tolerance", "bracket"),
            BisectionStop::Tolerance => ("bracket", "tolerance"),
        };
        if let Some(v) = f.get(unused) {
            let mut d = Diag::error(
                Code::PlanIncompatible,
                format!("`{unused}` has no effect with `stop {name}`"),
            )
            .at(v.span, "unused by this stop rule")
            .with_help(format!(
                "`stop tolerance` stops when accuracy is within `tolerance` of the target (the tutorial's rule); `stop bracket` stops when the target's crossing is bracketed within `bracket` log10 units; remove `{unused}` or change `stop`"
            ));
            if let Some(s) = f.get("stop") {
                d = d.also(s.span, "the stop rule");
            }
            cx.push(d);
            return None;
        }
    }
    let default_steps = match stop {
        Some(BisectionStop::Tolerance) => 20,
        _ => 30,
    };
    let max_steps = f
        .get("max_steps")
        .map_or(Some(default_steps), |v| cx.whole(v, "max_steps", 1, 10_000));
    let (low, high) = range?;
    // The parameter of the other rule is recorded as 0 (unused).
    let (tolerance, bracket) = match stop? {
        BisectionStop::Tolerance => (tolerance?, 0.0),
        BisectionStop::Bracket => (0.0, bracket?),
    };
    Some(Staircase::Bisection {
        start: start?,
        low,
        high,
        target: target?,
        tolerance,
        max_steps: max_steps? as u32,
        stop: stop?,
        bracket,
    })
}

fn updown(cx: &mut Cx, f: &Fields<'_>) -> Option<Staircase> {
    let scale = f.get("scale").map_or(Some(StepScale::Db), |v| {
        cx.choice(
            v,
            "step scale",
            &[
                ("db", StepScale::Db),
                ("log", StepScale::Log),
                ("lin", StepScale::Lin),
            ],
        )
    });
    let log = scale != Some(StepScale::Lin);
    let range = range(cx, f, (0.0001, 1.0), log);
    let start = start(cx, f, range, |(l, h)| 0.5_f64.clamp(l, h), false);
    let steps = match f.get("steps") {
        None => Some(vec![4.0, 4.0, 2.0, 2.0, 1.0]),
        Some(v) => numbers(cx, v, "steps", "step sizes").and_then(|xs| {
            if xs.iter().all(|&x| x > 0.0) {
                Some(xs)
            } else {
                cx.out_of_range(
                    v.span,
                    "step sizes must be positive".into(),
                    "must be > 0",
                    "e.g. `steps [4, 2, 1]` with `scale db`",
                );
                None
            }
        }),
    };
    let count = |cx: &mut Cx, name: &str, default: u64, min: u64| {
        f.get(name)
            .map_or(Some(default), |v| cx.whole(v, name, min, 1_000_000))
            .map(|x| x as u32)
    };
    let up = count(cx, "up", 1, 1);
    let down = count(cx, "down", 3, 1);
    let trials = count(cx, "trials", 100, 0);
    let reversals = count(cx, "reversals", 12, 0);
    let max_trials = count(cx, "max_trials", 1000, 1);
    let average_last = count(cx, "average_last", 6, 1);
    let up_factor = f
        .get("up_factor")
        .map_or(Some(1.0), |v| positive(cx, v, "up_factor"));
    let initial_rule = f.get("initial_rule").map_or(Some(true), |v| {
        cx.choice(v, "initial rule", &[("on", true), ("off", false)])
    });
    let stop = f.get("stop").map_or(Some(StopWhen::Any), |v| {
        cx.choice(
            v,
            "stop rule",
            &[("any", StopWhen::Any), ("all", StopWhen::All)],
        )
    });
    let steps = steps?;
    let reversals = reversals?.max(steps.len() as u32);
    let average_last = average_last?;
    // Left at its default, `average_last` is at most the reversals run (6 or fewer).
    let average_last = match f.get("average_last") {
        None => average_last.min(reversals.max(1)),
        Some(_) => average_last,
    };
    if average_last > reversals {
        let v = f.get("average_last")?;
        cx.out_of_range(
            v.span,
            format!("average_last {average_last} is more than the {reversals} reversals run"),
            "more than the reversals",
            "the threshold averages the last reversals; raise `reversals` or lower `average_last`",
        );
        return None;
    }
    let (low, high) = range?;
    Some(Staircase::UpDown(UpDownSettings {
        start: start?,
        low,
        high,
        steps,
        scale: scale?,
        up: up?,
        down: down?,
        up_factor: up_factor?,
        initial_rule: initial_rule?,
        trials: trials?,
        reversals,
        stop: stop?,
        max_trials: max_trials?,
        average_last,
    }))
}

fn quest(cx: &mut Cx, f: &Fields<'_>) -> Option<Staircase> {
    let range = range(cx, f, (0.0001, 1.0), true);
    let start = start(cx, f, range, |(l, h)| 0.1_f64.clamp(l, h), false);
    let start_sd = f
        .get("start_sd")
        .map_or(Some(2.0), |v| positive(cx, v, "start_sd"));
    let beta = f.get("beta").map_or(Some(3.5), |v| positive(cx, v, "beta"));
    let unit = |cx: &mut Cx, name: &str, default: f64| {
        f.get(name).map_or(Some(default), |v| {
            cx.number_in(
                v,
                name,
                0.0,
                0.5,
                &format!("{name} is a proportion in [0, 0.5]"),
            )
        })
    };
    let delta = unit(cx, "delta", 0.01);
    // The guess rate: the task's (1/N for N-AFC and oddity), ½ for the tutorial's 2AFC.
    let guess = cx.guess.unwrap_or(0.5);
    let gamma = unit(cx, "gamma", guess);
    let grain = f.get("grain").map_or(Some(0.01), |v| {
        cx.number_in(
            v,
            "grain",
            1e-4,
            0.5,
            "grain is the grid step in log10 units, e.g. 0.01",
        )
    });
    let method = f.get("method").map_or(Some(QuestMethod::Quantile), |v| {
        cx.choice(
            v,
            "QUEST placement",
            &[
                ("quantile", QuestMethod::Quantile),
                ("mean", QuestMethod::Mean),
                ("mode", QuestMethod::Mode),
            ],
        )
    });
    let trials = f
        .get("trials")
        .map_or(Some(64), |v| cx.whole(v, "trials", 1, 1_000_000));
    let stop_interval = match f.get("stop_interval") {
        None => Some(None),
        Some(v) => positive(cx, v, "stop_interval").map(Some),
    };
    let (delta, gamma) = (delta?, gamma?);
    let target = target_between(cx, f, gamma, 1.0 - delta * (1.0 - gamma), 0.75)?;
    let (low, high) = range?;
    let settings = QuestSettings {
        start: start?,
        start_sd: start_sd?,
        low,
        high,
        target,
        beta: beta?,
        delta,
        gamma,
        grain: grain?,
        method: method?,
        trials: trials? as u32,
        stop_interval: stop_interval?,
    };
    if crate::staircase::Quest::core_for(&settings).is_none() {
        let mut d = Diag::error(
            Code::PlanOutOfRange,
            format!(
                "with beta {} the psychometric function does not cross the target {target} on QUEST's grid",
                settings.beta
            ),
        )
        .with_help("raise `beta` (3.5 is typical) or move `target` away from chance");
        if let Some(v) = f.get("beta").or(f.get("target")) {
            d = d.at(v.span, "no crossing");
        }
        cx.push(d);
        return None;
    }
    Some(Staircase::Quest(settings))
}

fn questplus(cx: &mut Cx, f: &Fields<'_>) -> Option<Staircase> {
    let db_grid = |cx: &mut Cx, name: &str| -> Option<Vec<f64>> {
        let Some(v) = f.get(name) else {
            return Some((-60..=0).map(f64::from).collect());
        };
        let mut xs = numbers(cx, v, name, "dB, 20·log10 contrast")?;
        if let Some(x) = xs.iter().find(|&&x| x > 0.0) {
            cx.out_of_range(
                v.span,
                format!("{name} are contrasts in dB (at most 0 dB = contrast 1), got {x}"),
                "above 0 dB",
                "dB is 20·log10(contrast): 0 dB is contrast 1, −20 dB is 0.1, −60 dB is 0.001",
            );
            return None;
        }
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        Some(xs)
    };
    let contrasts = db_grid(cx, "contrasts_db");
    let thresholds = db_grid(cx, "thresholds_db");
    let slopes = match f.get("slopes") {
        None => Some(vec![1.0, 2.0, 3.0, 4.0, 5.0]),
        Some(v) => numbers(cx, v, "slopes", "Weibull β per log10 unit").and_then(|xs| {
            if xs.iter().all(|&x| x > 0.0) {
                Some(xs)
            } else {
                cx.out_of_range(
                    v.span,
                    "slopes must be positive".into(),
                    "must be > 0",
                    "e.g. `slopes [1, 2, 3, 4, 5]`",
                );
                None
            }
        }),
    };
    let lapses = match f.get("lapses") {
        None => Some(vec![0.0, 0.01, 0.02, 0.04]),
        Some(v) => numbers(cx, v, "lapses", "proportions").and_then(|xs| {
            if xs.iter().all(|&x| (0.0..0.5).contains(&x)) {
                Some(xs)
            } else {
                cx.out_of_range(
                    v.span,
                    "lapse rates must be in [0, 0.5)".into(),
                    "outside [0, 0.5)",
                    "e.g. `lapses [0, 0.01, 0.02, 0.04]`",
                );
                None
            }
        }),
    };
    let gamma = f.get("gamma").map_or(Some(cx.guess.unwrap_or(0.5)), |v| {
        cx.number_in(v, "gamma", 0.0, 0.5, "gamma is the guess rate, 0.5 in 2AFC")
    });
    let trials = f
        .get("trials")
        .map_or(Some(100), |v| cx.whole(v, "trials", 1, 1_000_000));
    let (gamma, lapses) = (gamma?, lapses?);
    let max_lapse = lapses.iter().copied().fold(0.0, f64::max);
    let target = target_between(cx, f, gamma, 1.0 - max_lapse, 0.75)?;
    let (contrasts, thresholds, slopes) = (contrasts?, thresholds?, slopes?);
    let table = contrasts.len() * thresholds.len() * slopes.len() * lapses.len();
    if table > MAX_QUESTPLUS_TABLE {
        let mut d = Diag::error(
            Code::PlanOutOfRange,
            format!(
                "the QUEST+ grid has {table} stimulus × parameter points, more than {MAX_QUESTPLUS_TABLE}"
            ),
        )
        .with_help("use coarser `contrasts_db`, `thresholds_db`, `slopes` or `lapses`");
        if let Some(v) = f.get("thresholds_db").or(f.get("contrasts_db")) {
            d = d.at(v.span, "too fine a grid");
        }
        cx.push(d);
        return None;
    }
    Some(Staircase::QuestPlus(QuestPlusSettings {
        contrasts_db: contrasts,
        thresholds_db: thresholds,
        slopes,
        lapses,
        gamma,
        target,
        trials: trials? as u32,
    }))
}

fn constant(cx: &mut Cx, f: &Fields<'_>) -> Option<Staircase> {
    let range = range(cx, f, (0.001, 1.0), true);
    let levels = match f.get("levels") {
        None => range.map(|r| logspace(r, 13)),
        Some(v) if matches!(v.kind, ValueKind::Number(_) | ValueKind::Integer(_)) => {
            let n = cx.whole(v, "levels", 2, 1000)?;
            range.map(|r| logspace(r, n as usize))
        }
        Some(v) => levels(cx, v, f),
    };
    let repeats = f
        .get("repeats")
        .map_or(Some(4), |v| cx.whole(v, "repeats", 1, 100_000));
    let target = target(cx, f, 0.5);
    Some(Staircase::Constant(ConstantSettings {
        levels: levels?,
        repeats: repeats? as u32,
        target: target?,
    }))
}

/// `levels` written as a list or generator: contrasts in (0, 1], ascending; `range` is
/// then not used.
fn levels(cx: &mut Cx, v: &Value, f: &Fields<'_>) -> Option<Vec<f64>> {
    if let Some(r) = f.get("range") {
        cx.push(
            Diag::error(
                Code::PlanIncompatible,
                "`range` has no effect when `levels` lists the contrasts",
            )
            .at(r.span, "unused")
            .also(v.span, "the contrasts tested")
            .with_help("write `levels N` to spread N levels over `range`, or remove `range`"),
        );
        return None;
    }
    let mut xs = if cx.level == LevelDomain::Contrast {
        numbers(cx, v, "levels", "contrasts")?
    } else {
        design_levels(cx, v)?
    };
    let top = if cx.level == LevelDomain::Contrast {
        1.0
    } else {
        f64::INFINITY
    };
    if let Some(x) = xs.iter().find(|&&x| x <= 0.0 || x > top) {
        cx.out_of_range(
            v.span,
            format!("levels are contrasts in (0, 1], got {x}"),
            "outside (0, 1]",
            "e.g. `levels logspace(0.001, 1, 13)`",
        );
        return None;
    }
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    Some(xs)
}

/// A value of the level: a contrast in [0, 1] for `test gratings`, else the level of the
/// design (an angle when it moves an angle parameter).
fn level(cx: &mut Cx, v: &Value, what: &str) -> Option<f64> {
    let domain = cx.level;
    super::design::level_value(cx, v, domain, what)
}

/// `levels [..]` of a design: a list of level values (positive: the procedure spaces them
/// in log10).
fn design_levels(cx: &mut Cx, v: &Value) -> Option<Vec<f64>> {
    let ValueKind::List(items) = &v.kind else {
        cx.wrong_type(v, "a list", "write e.g. `levels [1deg, 2deg, 4deg]`");
        return None;
    };
    items.iter().map(|x| level(cx, x, "a level")).collect()
}

/// `n` contrasts evenly spaced in log10 over `lo..hi`, both included.
fn logspace((lo, hi): (f64, f64), n: usize) -> Vec<f64> {
    let (a, b) = (lo.log10(), hi.log10());
    (0..n)
        .map(|i| 10f64.powf(a + (b - a) * i as f64 / (n - 1).max(1) as f64))
        .collect()
}

/// `range lo..hi`: the contrasts searched, not empty; with `log`, `lo > 0`.
fn range(cx: &mut Cx, f: &Fields<'_>, default: (f64, f64), log: bool) -> Option<(f64, f64)> {
    let Some(v) = f.get("range") else {
        return Some(default);
    };
    let ValueKind::Range(lo, hi) = &v.kind else {
        cx.wrong_type(v, "a range", "write e.g. `range 0.0..1.0`");
        return None;
    };
    let l = level(cx, lo, "the range's lower end");
    let h = level(cx, hi, "the range's upper end");
    match (l, h) {
        (Some(l), Some(h)) if l >= h => {
            cx.push(
                Diag::error(Code::PlanEmptyRange, format!("the range {l}..{h} is empty"))
                    .at(v.span, "lower end must be below the upper end")
                    .with_help("write e.g. `range 0.0..1.0`"),
            );
            None
        }
        (Some(l), Some(_)) if log && l <= 0.0 => {
            cx.out_of_range(
                lo.span,
                "this procedure works on log contrast: the range must start above 0".into(),
                "must be > 0",
                "write e.g. `range 0.0001..1.0`",
            );
            None
        }
        (l, h) => l.zip(h),
    }
}

/// `start`: inside the range (strictly for bisection), default from the range.
fn start(
    cx: &mut Cx,
    f: &Fields<'_>,
    range: Option<(f64, f64)>,
    default: impl Fn((f64, f64)) -> f64,
    strict: bool,
) -> Option<f64> {
    let Some(v) = f.get("start") else {
        return range.map(default);
    };
    let s = level(cx, v, "the start contrast")?;
    if let Some((l, h)) = range {
        let outside = if strict {
            s <= l || s >= h
        } else {
            s < l || s > h
        };
        if outside {
            let mut d = Diag::error(
                Code::PlanOutOfRange,
                format!("start {s} is not inside the range {l}..{h}"),
            )
            .at(v.span, "outside the search range")
            .with_help(if strict {
                "bisection starts strictly inside its range; the tutorial starts at the middle"
            } else {
                "the first contrast tested lies in the range"
            });
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
fn target(cx: &mut Cx, f: &Fields<'_>, chance: f64) -> Option<f64> {
    target_between(cx, f, chance, 1.0, 0.75)
}

/// `target` strictly between `lo` (chance) and `hi` (the curve's top).
fn target_between(cx: &mut Cx, f: &Fields<'_>, lo: f64, hi: f64, default: f64) -> Option<f64> {
    let Some(v) = f.get("target") else {
        if default > lo && default < hi {
            return Some(default);
        }
        cx.push(
            Diag::error(
                Code::PlanOutOfRange,
                format!("the default target {default} is outside ({lo}, {hi}) for these settings"),
            )
            .with_help("write a `target` between the guess rate and the curve's top"),
        );
        return None;
    };
    let x = cx.number(
        v,
        &format!("target is a proportion correct in ({lo}, {hi})"),
    )?;
    if x <= lo || x >= hi {
        let help = if lo == 0.5 && hi == 1.0 {
            "in two-alternative forced choice chance is 0.5; 0.75 is the usual threshold"
                .to_string()
        } else {
            format!("the psychometric function runs from the guess rate {lo} to {hi}")
        };
        cx.out_of_range(
            v.span,
            if lo == 0.5 && hi == 1.0 {
                format!("a 2AFC target must lie strictly between chance (0.5) and 1, got {x}")
            } else {
                format!("target must lie strictly between {lo} and {hi}, got {x}")
            },
            &format!("outside ({lo}, {hi})"),
            &help,
        );
        return None;
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use crate::diag::Code;
    use crate::plan::{compile, to_ron, BisectionStop, Plan, Staircase, StepScale, StopWhen};
    use crate::source::SourceFile;

    fn lowered(block: &str) -> (Option<Staircase>, Vec<Code>) {
        let text = format!(
            "psy 1\nexperiment t {{\n  backbone resnet18 {{ weights random  cut layer1 }}\n  \
             probe {{}}\n  train {{ size 32 samples 10 }}\n  test {{ size 32 frequencies [1] }}\n  \
             {block}\n}}\n"
        );
        let l = compile(&SourceFile::new("t.psy", text));
        let codes = l
            .diags
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Error)
            .map(|d| d.code)
            .collect();
        (l.plan.map(|p| p.staircase), codes)
    }

    fn ok(block: &str) -> Staircase {
        let (s, codes) = lowered(block);
        s.unwrap_or_else(|| panic!("{block}: {codes:?}"))
    }

    fn err(block: &str) -> Vec<Code> {
        let (s, codes) = lowered(block);
        assert!(s.is_none(), "{block} planned");
        codes
    }

    #[test]
    fn average_last_left_at_its_default_follows_fewer_reversals() {
        // Used to panic: the default 6 is more than 4 reversals.
        let Staircase::UpDown(u) = ok("staircase updown { trials 24  reversals 5  stop any }")
        else {
            panic!()
        };
        assert_eq!((u.reversals, u.average_last), (5, 5));
        // Written out, more than the reversals is still an error.
        assert_eq!(
            err("staircase updown { reversals 5  average_last 8 }"),
            [Code::PlanOutOfRange]
        );
    }

    #[test]
    fn bisection_defaults_to_the_bracket_rule_and_tolerance_keeps_the_tutorials() {
        let Staircase::Bisection {
            stop,
            bracket,
            max_steps,
            tolerance,
            ..
        } = ok("staircase {}")
        else {
            panic!()
        };
        assert_eq!(
            (stop, bracket, max_steps, tolerance),
            (BisectionStop::Bracket, 0.01, 30, 0.0)
        );
        let Staircase::Bisection {
            stop,
            tolerance,
            max_steps,
            bracket,
            ..
        } = ok("staircase bisection { tolerance 0.01 }")
        else {
            panic!()
        };
        assert_eq!(
            (stop, tolerance, max_steps, bracket),
            (BisectionStop::Tolerance, 0.01, 20, 0.0)
        );
        assert_eq!(
            err("staircase bisection { stop bracket  tolerance 0.01 }"),
            [Code::PlanIncompatible]
        );
        assert_eq!(
            err("staircase bisection { stop tolerance  bracket 0.01 }"),
            [Code::PlanIncompatible]
        );
        assert_eq!(
            err("staircase bisection { bracket 0 }"),
            [Code::PlanOutOfRange]
        );
    }

    #[test]
    fn updown_defaults_and_checks() {
        let Staircase::UpDown(u) = ok("staircase updown {}") else {
            panic!()
        };
        assert_eq!(
            (u.up, u.down, u.scale, u.stop),
            (1, 3, StepScale::Db, StopWhen::Any)
        );
        assert_eq!(u.steps, [4.0, 4.0, 2.0, 2.0, 1.0]);
        assert_eq!((u.start, u.low, u.high), (0.5, 0.0001, 1.0));
        let Staircase::UpDown(u) = ok(
            "staircase updown { steps [0.1, 0.05]  scale lin  range 0.0..1.0  up 1  down 2  \
             stop all  trials 20  reversals 1  initial_rule off  up_factor 2  average_last 2 }",
        ) else {
            panic!()
        };
        assert_eq!(u.reversals, 2, "raised to the number of steps");
        assert!(!u.initial_rule);
        assert_eq!(
            err("staircase updown { steps [1, -1] }"),
            [Code::PlanOutOfRange]
        );
        assert_eq!(err("staircase updown { down 0 }"), [Code::PlanOutOfRange]);
        assert_eq!(
            err("staircase updown { range 0.0..1.0 }"),
            [Code::PlanOutOfRange]
        );
        assert_eq!(
            err("staircase updown { scale ln }"),
            [Code::PlanUnknownValue]
        );
        assert_eq!(
            err("staircase updown { reversals 6  average_last 8 }"),
            [Code::PlanOutOfRange]
        );
        assert_eq!(err("staircase updown { start 2 }"), [Code::PlanOutOfRange]);
    }

    #[test]
    fn quest_questplus_and_constant_defaults_and_checks() {
        let Staircase::Quest(q) = ok("staircase quest {}") else {
            panic!()
        };
        assert_eq!((q.start, q.start_sd, q.beta, q.trials), (0.1, 2.0, 3.5, 64));
        assert_eq!(
            err("staircase quest { target 0.5 }"),
            [Code::PlanOutOfRange]
        );
        assert_eq!(
            err("staircase quest { method median }"),
            [Code::PlanUnknownValue]
        );
        let Staircase::QuestPlus(q) = ok("staircase questplus {}") else {
            panic!()
        };
        assert_eq!(
            (q.contrasts_db.len(), q.thresholds_db.len(), q.trials),
            (61, 61, 100)
        );
        let Staircase::QuestPlus(q) = ok(
            "staircase questplus { contrasts_db steps(-40, 0, 1, inclusive)  slopes [3.5]  lapses [0.02] }",
        ) else {
            panic!()
        };
        assert_eq!(q.contrasts_db.len(), 41);
        assert_eq!(
            err("staircase questplus { contrasts_db [-10, 3] }"),
            [Code::PlanOutOfRange]
        );
        assert_eq!(
            err("staircase questplus { lapses [0.3]  target 0.75 }"),
            [Code::PlanOutOfRange]
        );
        let Staircase::Constant(c) = ok("staircase constant {}") else {
            panic!()
        };
        assert_eq!((c.levels.len(), c.repeats), (13, 4));
        assert!((c.levels[0] - 0.001).abs() < 1e-12 && (c.levels[12] - 1.0).abs() < 1e-12);
        let Staircase::Constant(c) =
            ok("staircase constant { levels [0.1, 0.01, 0.05]  repeats 1 }")
        else {
            panic!()
        };
        assert_eq!(c.levels, [0.01, 0.05, 0.1]);
        let Staircase::Constant(c) = ok("staircase constant { levels 4  range 0.01..1.0 }") else {
            panic!()
        };
        assert_eq!(c.levels.len(), 4);
        assert_eq!(
            err("staircase constant { levels [0.1]  range 0.01..1.0 }"),
            [Code::PlanIncompatible]
        );
        assert_eq!(
            err("staircase constant { levels [0, 0.1] }"),
            [Code::PlanOutOfRange]
        );
        assert_eq!(err("staircase simplex {}"), [Code::PlanUnknownValue]);
    }

    #[test]
    fn every_kind_survives_ron_and_answers_its_accessors() {
        for block in [
            "staircase {}",
            "staircase updown {}",
            "staircase quest { stop_interval 0.2 }",
            "staircase questplus { slopes [2, 3]  lapses [0.02] }",
            "staircase constant {}",
        ] {
            let s = ok(block);
            let (lo, hi) = s.range();
            assert!(lo < hi && hi <= 1.0, "{block}");
            let start = s.start();
            assert!(start >= lo && start <= hi, "{block}");
            assert!(s.max_levels() >= 1 && s.max_trials(24) >= u64::from(s.max_levels()));
            let p = crate::staircase::Procedure::from_plan(&s, 24);
            assert_eq!(p.name(), s.name());
            assert_eq!(p.max_trials(), s.max_trials(24), "{block}");
        }
        let text = "psy 1\nexperiment t {\n  backbone resnet18 { weights random  cut layer1 }\n  \
                    probe {}\n  train { size 32 samples 10 }\n  test { size 32 frequencies [1] }\n  \
                    staircase updown { steps [2, 1] }\n}\n";
        let plan = compile(&SourceFile::new("t.psy", text)).plan.unwrap();
        let back: Plan = ron::from_str(&to_ron(&plan)).unwrap();
        assert_eq!(back.staircase, plan.staircase);
    }

    /// Every `staircase` example of docs/language.md plans.
    #[test]
    fn the_documented_examples_plan() {
        let doc = include_str!("../../../docs/language.md");
        let mut n = 0;
        for block in doc.split("```psy\n").skip(1) {
            let snippet = block.split("```").next().unwrap();
            if snippet.starts_with("staircase ") {
                ok(snippet);
                n += 1;
            }
        }
        assert!(n >= 6, "{n}");
    }

    /// A plan written before the stop rule existed reads back as the tutorial's rule.
    #[test]
    fn old_bisection_plans_read_as_the_tutorial_rule() {
        let old = "Bisection(start: 0.5, low: 0.0, high: 1.0, target: 0.749, tolerance: 0.0001, max_steps: 20)";
        let s: Staircase = ron::from_str(old).unwrap();
        let Staircase::Bisection { stop, bracket, .. } = s else {
            panic!()
        };
        assert_eq!((stop, bracket), (BisectionStop::Tolerance, 0.0));
    }
}
