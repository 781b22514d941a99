//! Warnings: settings that are valid but probably not meant. They come last, on a plan
//! without errors, since each looks at the resolved values of several blocks.

use super::experiment::Sections;
use super::read::fmt_num;
use crate::diag::{Code, Diag, Span};
use crate::plan::types::{
    Backbone, BatchNorm, BisectionStop, Derived, Network, Normalize, Staircase, TargetInterval,
    Test, Train,
};
use crate::plan::values::Cx;
use crate::syntax::ast::ValueKind;

/// Pushes every warning about this experiment.
pub(super) fn check(
    cx: &mut Cx,
    sections: &Sections<'_>,
    backbone: &Backbone,
    train: &Train,
    test: &Test,
    staircase: &Staircase,
    derived: &Derived,
) {
    torchscript_train_mode(cx, sections, backbone);
    contrast_pivot(cx, sections, train);
    normalize_mismatch(cx, sections, train, test);
    constant_target(cx, sections, test);
    unreachable_tolerance(cx, sections, staircase, derived);
    duplicate_conditions(cx, sections, test);
    duplicate_orientations(cx, sections, test);
    huge_probe(cx, sections, backbone, derived);
}

/// Above this many parameters a linear probe is warned about.
const HUGE_PROBE: u64 = 10_000_000;

/// A probe with more than [`HUGE_PROBE`] parameters: an unpooled early or wide layer. Its
/// training is slow and its optimiser state large, and it has far more weights than
/// training images; pooling keeps the channels and shrinks the map.
fn huge_probe(cx: &mut Cx, sections: &Sections<'_>, backbone: &Backbone, derived: &Derived) {
    let (Some(params), Some(per_image)) = (derived.probe_parameters, derived.features_per_image)
    else {
        return;
    };
    if params <= HUGE_PROBE {
        return;
    }
    let (inputs, outputs) = match derived.probe_inputs {
        Some(inputs) if inputs > 0 => (inputs, (params - 2) / inputs),
        _ => (2 * per_image, 2),
    };
    let parameters_for = |features: u64| params / per_image.max(1) * features;
    // The largest square pooling of the cut's map that brings the probe under the limit.
    let suggestion = match derived.cut_shape.as_deref() {
        Some(&[c, h, w]) => (1..=h.min(w))
            .rev()
            .map(|n| (n, u64::from(c) * u64::from(n) * u64::from(n)))
            .find(|&(_, f)| parameters_for(f) <= HUGE_PROBE && f < per_image)
            .map(|(n, f)| {
                format!(
                    "; pool the features, e.g. `pooling avg {n}x{n}` in the backbone block ({c}×{n}×{n} = {f} features per image, about {} parameters), or cut later",
                    fmt_count(parameters_for(f))
                )
            }),
        _ => None,
    }
    .unwrap_or_else(|| "; cut at a layer with fewer features, or pool more".to_owned());
    let mut d = Diag::warning(
        Code::PlanHugeProbe,
        format!(
            "the linear probe would have {} parameters ({per_image} features per image)",
            fmt_count(params)
        ),
    )
    .with_help(format!(
        "{inputs} inputs × {outputs} outputs: above 10 million parameters a linear probe trains slowly, its optimiser state is as large again, and it has far more weights than there are training images to fit them{suggestion}"
    ));
    let at = match backbone.pooling {
        crate::plan::types::Pooling::Off => sections.setting_span("backbone", "cut"),
        _ => sections.setting_span("backbone", "pooling"),
    };
    if let Some(s) = at {
        d = d.at(s, "too many features for a linear probe");
    }
    cx.push(d);
}

/// `4.3 billion`, `12.8 million`, `950 thousand`, `42`.
fn fmt_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.0} thousand", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} million", n as f64 / 1e6),
        _ => format!("{:.1} billion", n as f64 / 1e9),
    }
}

/// The same frequency, orientation or phase listed twice (angles modulo 360°: `0deg` and
/// `360deg` are one phase): its trials would run twice. One warning per setting, at the
/// first repeated value when the list is written out.
fn duplicate_conditions(cx: &mut Cx, sections: &Sections<'_>, test: &Test) {
    let lists: [(&str, &[f64], bool); 3] = [
        ("frequencies", &test.frequencies, false),
        ("orientations", &test.orientations, true),
        ("phases", &test.phases, true),
    ];
    for (what, values, angle) in lists {
        let Some(repeats) = repeated(values, angle) else {
            continue;
        };
        let show = |i: usize| {
            let x = values[i];
            if angle {
                format!("{}°", fmt_num(x))
            } else {
                fmt_num(x)
            }
        };
        let shown: Vec<String> = repeats
            .iter()
            .take(4)
            .map(|&(first, again)| {
                if show(first) == show(again) {
                    format!("{} is listed twice", show(first))
                } else {
                    format!("{} and {} are the same", show(first), show(again))
                }
            })
            .collect();
        let more = if repeats.len() > 4 {
            format!(" (and {} more)", repeats.len() - 4)
        } else {
            String::new()
        };
        let singular = match what {
            "frequencies" => "frequency",
            "orientations" => "orientation",
            _ => "phase",
        };
        let mut d = Diag::warning(
            Code::PlanDuplicateCondition,
            format!("{what}: {}{more}", shown.join(", ")),
        )
        .with_help(format!(
            "each {singular} is a test condition, so a repeated one would run its trials twice{}; remove the repeat",
            if angle { " (angles are the same modulo 360°)" } else { "" }
        ));
        let (first, again) = repeats[0];
        match item_span(sections, what, values.len(), again) {
            Some(at) => {
                d = d.at(at, "the same again");
                if let Some(f) = item_span(sections, what, values.len(), first) {
                    d = d.also(f, "first here");
                }
            }
            None => {
                if let Some(at) = sections.setting_span("test", what) {
                    d = d.at(at, format!("repeats a {singular}"));
                }
            }
        }
        cx.push(d);
    }
}

/// The pairs (first index, repeated index) of equal values (angles modulo 360°), each
/// repeat paired with the first of its value; `None` when all differ. Sorting keeps the
/// cost at n log n for the longest lists.
fn repeated(values: &[f64], angle: bool) -> Option<Vec<(usize, usize)>> {
    let key = |x: f64| {
        let x = if angle { x.rem_euclid(360.0) } else { x };
        // 360 - ε folds onto 0; round off the last bits that arithmetic leaves.
        let x = if angle && (360.0 - x) < 1e-9 { 0.0 } else { x };
        (x * 1e9).round()
    };
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| key(values[a]).total_cmp(&key(values[b])).then(a.cmp(&b)));
    let mut out = Vec::new();
    let mut first = None;
    for &i in &order {
        match first {
            Some(f) if key(values[f]) == key(values[i]) => out.push((f, i)),
            _ => first = Some(i),
        }
    }
    out.sort_by_key(|&(_, again)| again);
    (!out.is_empty()).then_some(out)
}

/// The span of the `index`-th item of the test's `what` when it is written as a list of
/// `len` items.
fn item_span(sections: &Sections<'_>, what: &str, len: usize, index: usize) -> Option<Span> {
    let setting = sections
        .get("test")?
        .settings()
        .find(|s| s.key.text == what)?;
    match &setting.value.kind {
        ValueKind::List(items) if items.len() == len => items.get(index).map(|i| i.span),
        _ => None,
    }
}

/// `batchnorm train` on a TorchScript module: a catalog backbone puts only its BatchNorm
/// layers in training mode (Dropout stays off), but libtorch's C API, which psyrun uses,
/// switches a TorchScript module's mode only as a whole (`module.train()`), so a scripted
/// module's Dropout layers drop features at random while the probe trains.
fn torchscript_train_mode(cx: &mut Cx, sections: &Sections<'_>, backbone: &Backbone) {
    if backbone.batchnorm != BatchNorm::Train
        || !matches!(backbone.network, Network::TorchScript { .. })
    {
        return;
    }
    let mut d = Diag::warning(
        Code::PlanTorchscriptTrainMode,
        "`batchnorm train` puts the whole TorchScript module in training mode, Dropout included",
    )
    .with_help(
        "a catalog backbone keeps Dropout off and trains only BatchNorm's statistics, but a TorchScript module's mode can only be switched as a whole: a scripted module's Dropout layers then drop features at random while the probe trains (a traced module keeps the mode it was traced in, so `batchnorm train` changes nothing in it). Export the module without Dropout (replace each `nn.Dropout` by `nn.Identity` before `torch.jit.script`, or cut before it), or use `batchnorm eval`",
    );
    if let Some(s) = sections.setting_span("backbone", "batchnorm") {
        d = d.at(s, "the whole module in training mode");
    }
    cx.push(d);
}

/// A training contrast that pivots away from the background: the background's grey then
/// moves by `c·(background − pivot)` with each image's contrast, so the probe can read the
/// label off the background instead of the shape.
fn contrast_pivot(cx: &mut Cx, sections: &Sections<'_>, train: &Train) {
    if train.pivot == train.background {
        return;
    }
    let (b, p) = (train.background, train.pivot);
    let step = (b - p).abs();
    let mut d = Diag::warning(
        Code::PlanContrastPivot,
        format!(
            "the training contrast pivots at {}, not at the background {}",
            fmt_num(p),
            fmt_num(b)
        ),
    )
    .with_help(format!(
        "x ← {p} + c·(x − {p}) moves the background's grey by c·{step:.4} (up to {:.2} levels of 255 between contrasts 0 and 1), a cue to which image has the higher contrast that lies outside the shape; remove `pivot` (the default is `pivot background`), or keep `pivot 0.5` only to reproduce the tutorial",
        step * 255.0
    ));
    if let Some(s) = sections.setting_span("train", "pivot") {
        d = d.at(s, "not the background");
    }
    cx.push(d);
}

/// Training and test images normalised differently: the probe learnt on one input scale
/// and is tested on another, so a threshold measures the mismatch as much as the network.
fn normalize_mismatch(cx: &mut Cx, sections: &Sections<'_>, train: &Train, test: &Test) {
    if train.normalize == test.normalize {
        return;
    }
    let name = |n: &Normalize| match n {
        Normalize::Off => "none".to_string(),
        Normalize::MeanStd { mean, std } => {
            let list = |v: &[f64; 3]| v.iter().map(|x| fmt_num(*x)).collect::<Vec<_>>().join(", ");
            format!("mean [{}], std [{}]", list(mean), list(std))
        }
    };
    let mut d = Diag::warning(
        Code::PlanNormalizeMismatch,
        "the training and test images are normalised differently",
    )
    .with_help(format!(
        "the probe is trained on images normalised with {} and tested on images normalised with {}: the test features come from inputs of another mean and scale than those it learnt on. Use the same `normalize` in `train` and `test` (the default, `imagenet`, in both)",
        name(&train.normalize),
        name(&test.normalize)
    ));
    let test_span = sections.setting_span("test", "normalize");
    let train_span = sections.setting_span("train", "normalize");
    if let Some(s) = test_span.or(train_span) {
        d = d.at(s, "normalised differently");
    }
    if let (Some(_), Some(s)) = (test_span, train_span) {
        d = d.also(s, "from the training images'");
    }
    cx.push(d);
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
    // An orientation repeated modulo 360° is `duplicate_condition`'s: count it once here.
    let mut again = vec![false; test.orientations.len()];
    for (_, i) in repeated(&test.orientations, true).unwrap_or_default() {
        again[i] = true;
    }
    let distinct: Vec<f64> = test
        .orientations
        .iter()
        .zip(&again)
        .filter(|(_, again)| !**again)
        .map(|(a, _)| *a)
        .collect();
    let pairs: Vec<String> = distinct
        .iter()
        .enumerate()
        .flat_map(|(i, a)| distinct[i + 1..].iter().map(move |b| (*a, *b)))
        // The same orientation twice is `duplicate_condition`'s.
        .filter(|(a, b)| close(*a + 180.0, *b) && !close(*a, *b))
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

#[cfg(test)]
mod tests {
    use crate::diag::{Code, Diag};
    use crate::plan::{compile, Plan};
    use crate::source::SourceFile;

    /// The plan and diagnostics of an experiment with `train` and `test` blocks' settings.
    fn lower(train: &str, test: &str) -> (Option<Plan>, Vec<Diag>) {
        let text = format!(
            "psy 1\nexperiment t {{\n  backbone resnet18 {{ weights random  cut layer1 }}\n  \
             probe linear {{}}\n  train shapes {{ size 32 {train} }}\n  \
             test gratings {{ size 32 {test} }}\n  staircase bisection {{}}\n}}\n"
        );
        let l = compile(&SourceFile::new("t.psy", text));
        (l.plan, l.diags)
    }

    fn warned(train: &str, test: &str, code: Code) -> Option<Diag> {
        let (plan, diags) = lower(train, test);
        assert!(plan.is_some(), "{diags:?}");
        diags.into_iter().find(|d| d.code == code)
    }

    #[test]
    fn the_contrast_pivots_at_the_background_by_default() {
        let (plan, _) = lower("background 0.8", "");
        assert_eq!(plan.unwrap().train.pivot, 0.8);
        let (plan, _) = lower("", "");
        assert_eq!(plan.unwrap().train.pivot, 128.0 / 255.0);
        let (plan, _) = lower("background 0.3  pivot background", "");
        assert_eq!(plan.unwrap().train.pivot, 0.3);
        let (plan, _) = lower("pivot 0.5", "");
        assert_eq!(plan.unwrap().train.pivot, 0.5);
        for bad in ["pivot 1.5", "pivot grey"] {
            let (plan, diags) = lower(bad, "");
            assert!(plan.is_none() && diags.iter().any(Diag::is_error), "{bad}");
        }
    }

    #[test]
    fn different_train_and_test_normalisation_is_warned_about() {
        let code = Code::PlanNormalizeMismatch;
        let d = warned("normalize imagenet", "normalize none", code).expect("warned");
        assert!(d.primary.is_some() && d.secondary.len() == 1, "{d:?}");
        assert!(d.help.as_deref().unwrap_or("").contains("none"), "{d:?}");
        // Only one block written: the other took the default (imagenet).
        let d = warned("normalize none", "", code).expect("warned");
        assert!(d.primary.is_some());
        let custom = "normalize custom(mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])";
        assert!(warned(custom, "", code).is_some());
        for (train, test) in [
            ("", ""),
            ("normalize none", "normalize none"),
            (custom, custom),
        ] {
            assert!(warned(train, test, code).is_none(), "{train} / {test}");
        }
    }

    #[test]
    fn batchnorm_train_on_a_torchscript_module_is_warned_about() {
        let code = Code::PlanTorchscriptTrainMode;
        let lower = |backbone: &str| {
            let text = format!(
                "psy 1\nexperiment t {{\n  {backbone}\n  probe linear {{}}\n  \
                 train shapes {{ size 32 }}\n  test gratings {{ size 32 }}\n  staircase bisection {{}}\n}}\n"
            );
            compile(&SourceFile::new("t.psy", text)).diags
        };
        let diags = lower("backbone torchscript \"net.pt\" { batchnorm train }");
        let d = diags.iter().find(|d| d.code == code).expect("warned");
        assert!(d.primary.is_some(), "points at batchnorm");
        for quiet in [
            "backbone torchscript \"net.pt\" { batchnorm eval }",
            "backbone torchscript \"net.pt\" {}",
            "backbone resnet18 { weights random  cut layer1  batchnorm train }",
        ] {
            assert!(lower(quiet).iter().all(|d| d.code != code), "{quiet}");
        }
    }

    #[test]
    fn a_pivot_away_from_the_background_is_warned_about() {
        let code = Code::PlanContrastPivot;
        // The tutorial's: 0.5 on a background of 128/255.
        let d = warned("pivot 0.5", "", code).expect("warned");
        assert!(d.message.contains("pivots at 0.5"), "{}", d.message);
        assert!(d.primary.is_some(), "points at the pivot");
        assert!(warned("background 0.8  pivot 0.5", "", code).is_some());
        for quiet in ["", "pivot background", "background 0.5  pivot 0.5"] {
            assert!(warned(quiet, "", code).is_none(), "{quiet}");
        }
    }

    #[test]
    fn repeated_test_conditions_are_warned_about_once_per_list() {
        let code = Code::PlanDuplicateCondition;
        let d = warned("", "frequencies [2, 4, 2, 4]", code).expect("warned");
        assert!(
            d.message.contains("2 is listed twice, 4 is listed twice"),
            "{}",
            d.message
        );
        assert_eq!(d.secondary.len(), 1, "points at the first occurrence too");
        let d = warned("", "phases [0deg, 360deg]", code).expect("warned");
        assert!(
            d.message.contains("0° and 360° are the same"),
            "{}",
            d.message
        );
        assert!(warned("", "phases [-45deg, 315deg]", code).is_some());
        // A generator that ends on its start: the whole setting is pointed at.
        let d = warned("", "phases steps(0deg, 360deg, 180deg, inclusive)", code).expect("warned");
        assert!(d.primary.is_some() && d.secondary.is_empty(), "{d:?}");
        let (_, diags) = lower("", "orientations [0deg, 0deg, 90deg]  phases [0deg, 0deg]");
        assert_eq!(
            diags.iter().filter(|d| d.code == code).count(),
            2,
            "{diags:?}"
        );
        assert!(
            diags.iter().all(|d| d.code != Code::PlanDuplicateStimuli),
            "{diags:?}"
        );
        for quiet in [
            "",
            "frequencies [1, 2, 4]",
            "phases [0deg, 180deg, 45deg]",
            "orientations steps(0deg, 180deg, 15deg)",
        ] {
            assert!(warned("", quiet, code).is_none(), "{quiet}");
        }
    }

    #[test]
    fn a_probe_over_ten_million_parameters_is_warned_about_with_a_pooling() {
        let code = Code::PlanHugeProbe;
        let lower = |backbone: &str, size: u32| {
            let text = format!(
                "psy 1\nexperiment t {{\n  backbone {backbone}\n  probe linear {{}}\n  \
                 train shapes {{ size {size} }}\n  test gratings {{ size {size} }}\n  \
                 staircase bisection {{}}\n}}\n"
            );
            let l = compile(&SourceFile::new("t.psy", text));
            assert!(l.plan.is_some(), "{backbone}: {:?}", l.diags);
            l.diags.into_iter().find(|d| d.code == code)
        };
        // vgg16 after its first conv at 224 px: 64×224×224 features, 4 × 3 211 264 + 2.
        let d = lower("vgg16 { weights random  cut features.1 }", 224).expect("warned");
        assert!(
            d.message.contains("12.8 million parameters"),
            "{}",
            d.message
        );
        assert!(d.primary.is_some(), "points at the cut");
        let help = d.help.unwrap();
        // 64·n² · 4 ≤ 10⁷: n = 197.
        assert!(help.contains("`pooling avg 197x197`"), "{help}");
        let d = lower(
            "vgg16 { weights random  cut features.1  pooling avg 200x200 }",
            224,
        )
        .expect("still over");
        assert!(d.help.unwrap().contains("`pooling avg 197x197`"));
        // The tutorial's resnet50 layer2 unpooled (1.6 M), pooled layers, a flat layer.
        for quiet in [
            "resnet50 { weights random  cut layer2 }",
            "vgg16 { weights random  cut features.1  pooling avg 7x7 }",
            "vgg16 { weights random  cut classifier.0 }",
            "mobilenet_v2 { weights random  cut features.1 }",
        ] {
            assert!(lower(quiet, 224).is_none(), "{quiet}");
        }
        assert!(lower("vgg16 { weights random  cut features.1 }", 128).is_none());
    }
}
