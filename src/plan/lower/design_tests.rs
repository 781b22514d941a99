//! The lowering of experiments described by their parts (`stimulus`, `task`, `level`,
//! `axis`, `readout`, `display`, `train { level … }`).

use crate::diag::Code;
use crate::plan::design::*;
use crate::plan::{compile, to_ron, Plan, Staircase};
use crate::source::SourceFile;

/// A design experiment with `body` in place of the stimuli, task, level, axis and train.
fn file(body: &str) -> String {
    format!(
        "psy 1\nexperiment t {{\n  backbone resnet18 {{ weights random  cut layer1  pooling avg 2x2 }}\n\
         \x20 probe linear {{ epochs 1 }}\n  display {{ size 32 }}\n{body}\n\
         \x20 staircase quest {{ range 0.01..1  trials 4 }}\n}}\n"
    )
}

const GABORS: &str =
    "  stimulus reference gabor { frequency axis  orientation 45deg  contrast 0.5 }\n\
  stimulus target gabor { like reference  orientation 45deg + level }\n";
const TASK: &str = "  task 2afc { stimuli [reference, target] }\n  axis frequency [2, 4]\n\
  train { samples 10  level uniform(0.5deg, 40deg) }\n";
const ANGLE_STAIRCASE: &str = "staircase quest { range 0.01..1  trials 4 }";

fn angles(text: &str) -> String {
    text.replace(
        ANGLE_STAIRCASE,
        "staircase quest { start 5deg  range 0.1deg..45deg  trials 4 }",
    )
}

fn plan(text: &str) -> Plan {
    let l = compile(&SourceFile::new("t.psy", text));
    l.plan
        .unwrap_or_else(|| panic!("{text}\n{}", crate::diag::render(&l.diags, false)))
}

fn codes(text: &str) -> Vec<Code> {
    let l = compile(&SourceFile::new("t.psy", text));
    assert!(l.plan.is_none(), "plans:\n{text}");
    l.diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect()
}

fn param<'a>(p: &'a Plan, stim: &str, name: &str) -> &'a Param {
    &p.design.as_ref().unwrap().stimulus(stim).unwrap().params[name]
}

#[test]
fn a_gabor_pair_plans_with_defaults_like_and_expressions() {
    let p = plan(&angles(&file(&format!("{GABORS}{TASK}"))));
    let d = p.design.as_ref().unwrap();
    assert_eq!(d.size, 32);
    assert_eq!(d.background, 0.5);
    // Defaults written in: `sigma` is size / 8, `phase` cosine.
    assert_eq!(
        param(&p, "reference", "sigma"),
        &Param::Value(Expr::Num(4.0))
    );
    assert_eq!(
        param(&p, "reference", "phase"),
        &Param::Word("cosine".into())
    );
    // `like` copies, the target overrides.
    assert_eq!(
        param(&p, "target", "contrast"),
        &Param::Value(Expr::Num(0.5))
    );
    let Param::Value(e) = param(&p, "target", "orientation") else {
        panic!()
    };
    assert_eq!(e.eval(3.0, 8.0), 48.0);
    assert!(e.uses_level() && !e.uses_axis());
    let Param::Value(f) = param(&p, "target", "frequency") else {
        panic!()
    };
    assert_eq!(f.eval(3.0, 8.0), 8.0);
    assert_eq!(
        d.level,
        Level {
            name: "orientation".into(),
            unit: "deg".into()
        }
    );
    assert_eq!(
        d.axis,
        Axis {
            name: "frequency".into(),
            unit: "cpi".into(),
            values: vec![2.0, 4.0]
        }
    );
    assert_eq!(d.readout, Readout::Probe);
    assert_eq!(d.task.kind, TaskKind::TwoAfc);
    assert_eq!(
        (d.task.reference.as_str(), d.task.target.as_str()),
        ("reference", "target")
    );
    assert_eq!(
        d.train.as_ref().unwrap().level,
        Draw::Uniform { lo: 0.5, hi: 40.0 }
    );
    // The staircase reads angles for an angle level.
    let Staircase::Quest(q) = &p.staircase else {
        panic!()
    };
    assert_eq!((q.start, q.low, q.high), (5.0, 0.1, 45.0));
    // The legacy sections are the design's, and the plan survives RON.
    assert_eq!(p.train, d.legacy_train());
    assert_eq!(p.test, d.legacy_test());
    let ron_text = to_ron(&p);
    let back: Plan = ron::from_str(&ron_text).unwrap();
    assert_eq!(back.design, p.design);
    assert_eq!(
        (back.train.clone(), back.test.clone()),
        (p.train.clone(), p.test.clone())
    );
    // Without its design, the plan has nothing to derive `train` and `test` from.
    let start = ron_text.find("  design: Design(").unwrap();
    let end = start + ron_text[start..].find("\n  staircase:").unwrap();
    let cut = format!("{}{}", &ron_text[..start], &ron_text[end + 1..]);
    let e = ron::from_str::<Plan>(&cut).unwrap_err().to_string();
    assert!(
        e.contains("a plan needs a `train` section or a `design`"),
        "{e}"
    );
    // 2AFC, position all: 2 conditions; probe on two intervals of 64×2×2 features.
    assert_eq!(p.derived.trials_per_level, 2);
    assert_eq!(p.derived.probe_inputs, Some(2 * 256));
    assert_eq!(p.derived.probe_parameters, Some(2 * 512 + 2));
    assert_eq!(p.derived.train_images_per_epoch, 20);
}

#[test]
fn expressions_of_level_and_axis_evaluate() {
    let p = plan(&file(
        "  stimulus a grating { frequency axis  contrast 0.2 }\n\
         \x20 stimulus b grating { like a  frequency axis * (1 + level)  contrast -(level) + 2 * 0.25 + axis / 100 }\n\
         \x20 task 2afc { stimuli [a, b]  answer higher }\n  level weber\n  axis base [2, 8]\n\
         \x20 train { samples 10  level loguniform(0.01, 1) }\n",
    ));
    let Param::Value(f) = param(&p, "b", "frequency") else {
        panic!()
    };
    assert_eq!(f.eval(0.5, 8.0), 12.0);
    let Param::Value(c) = param(&p, "b", "contrast") else {
        panic!()
    };
    assert!((c.eval(0.1, 20.0) - (-0.1 + 0.5 + 0.2)).abs() < 1e-12);
    let d = p.design.unwrap();
    assert_eq!(
        d.level,
        Level {
            name: "weber".into(),
            unit: "cpi".into()
        }
    );
    assert_eq!(d.task.answer, Answer::Higher);
}

#[test]
fn lists_and_draws_are_condition_dimensions_and_trial_draws() {
    let p = plan(&file(
        "  stimulus a grating { contrast 0.3  orientation [0deg, 90deg]  phase uniform(0deg, 360deg)  frequency axis }\n\
         \x20 stimulus b grating { like a  contrast 0.3 + level }\n\
         \x20 task nafc { stimuli [a, b]  intervals 3 }\n  axis frequency [4]\n\
         \x20 train { samples 10  level loguniform(0.01, 0.5) }\n",
    ));
    assert_eq!(param(&p, "b", "orientation"), &Param::List(vec![0.0, 90.0]));
    assert_eq!(
        param(&p, "a", "phase"),
        &Param::Uniform { lo: 0.0, hi: 360.0 }
    );
    // 3 positions × 2 orientations (one dimension: both stimuli list it).
    assert_eq!(p.derived.trials_per_level, 6);
    assert_eq!(p.derived.probe_inputs, Some(3 * 256));
    assert_eq!(p.derived.probe_parameters, Some(3 * 768 + 3));
    assert_eq!(p.derived.train_images_per_epoch, 30);
}

#[test]
fn tasks_count_their_conditions() {
    let base = "  stimulus a grating { contrast 0  frequency axis }\n  stimulus b grating { like a  contrast level }\n  axis frequency [4]\n";
    let count = |task: &str, train: bool| {
        let train = if train {
            "  train { samples 10  level loguniform(0.01, 1) }\n"
        } else {
            ""
        };
        plan(&file(&format!("{base}  {task}\n{train}")))
            .derived
            .trials_per_level
    };
    assert_eq!(
        count("task 2afc { stimuli [a, b]  position second }", true),
        1
    );
    assert_eq!(
        count("task oddity { stimuli [a, b]  intervals 3 }", true),
        3
    );
    assert_eq!(count("task same_different { stimuli [a, b] }", true), 4);
    assert_eq!(count("task yes_no { stimuli [a, b] }", true), 2);
    let p = plan(&file(&format!("{base}  task 2afc {{ stimuli [a, b]  position 1 }}\n  train {{ samples 10  level loguniform(0.01, 1) }}\n")));
    assert_eq!(p.design.unwrap().task.position, Position::Fixed(0));
}

#[test]
fn a_distance_readout_needs_no_probe_and_no_training() {
    let text = file(
        "  readout cosine\n  stimulus a grating { contrast 0  frequency axis }\n  stimulus b grating { like a  contrast level }\n\
         \x20 task 2afc { stimuli [a, b] }\n  axis frequency [4]\n",
    )
    .replace("  probe linear { epochs 1 }\n", "");
    let p = plan(&text);
    let d = p.design.as_ref().unwrap();
    assert_eq!(d.readout, Readout::Distance(Metric::Cosine));
    assert_eq!(d.train, None);
    assert_eq!(p.derived.probe_parameters, Some(0));
    assert_eq!(p.train.samples, 0);
    // A probe block and training are ignored, with a warning each.
    let l = compile(&SourceFile::new(
        "t.psy",
        text.replace("  display", "  probe linear { epochs 1 }\n  display")
            .replace(
                "axis frequency [4]",
                "axis frequency [4]\n  train { samples 10  level uniform(0.1, 1) }",
            ),
    ));
    let ignored = l.plan.expect("plans").design.unwrap();
    assert_eq!(ignored.train, None);
    let warned: Vec<Code> = l.diags.iter().map(|d| d.code).collect();
    assert_eq!(warned, vec![Code::PlanUnusedTraining; 2]);
    // `answer higher`: refused; yes/no (against the reference's template) is fine.
    assert!(
        codes(&text.replace("stimuli [a, b] }", "stimuli [a, b]  answer higher }"))
            .contains(&Code::PlanReadoutTask)
    );
    let yes_no = plan(&text.replace("task 2afc", "task yes_no"));
    assert_eq!(yes_no.design.unwrap().task.kind, TaskKind::YesNo);
}

#[test]
fn a_training_task_of_its_own_trains_the_probe() {
    let p = plan(&file(
        "  stimulus blank patch { contrast 0 }\n  stimulus disc patch { contrast level }\n\
         \x20 stimulus g grating { frequency axis  contrast level }\n\
         \x20 task 2afc { stimuli [blank, g] }\n  axis frequency [4]\n\
         \x20 train { samples 10  level uniform(0.1, 1)  task 2afc { stimuli [blank, disc] } }\n",
    ));
    let d = p.design.unwrap();
    assert_eq!(d.train_task().target, "disc");
    assert_eq!(d.task.target, "g");
    // A training target that does not use the level trains on nothing.
    let text = file(
        "  stimulus blank patch { contrast 0 }\n  stimulus disc patch { contrast 0.5 }\n\
         \x20 stimulus g grating { frequency axis  contrast level }\n\
         \x20 task 2afc { stimuli [blank, g] }\n  axis frequency [4]\n\
         \x20 train { samples 10  level uniform(0.1, 1)  task 2afc { stimuli [blank, disc] } }\n",
    );
    assert_eq!(codes(&text), vec![Code::PlanNothingMeasured]);
}

#[test]
fn an_image_folder_must_exist_when_files_are_checked() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("experiments/csf_natural_images.psy");
    let text = std::fs::read_to_string(&path).unwrap();
    let compiled =
        |t: &str| crate::plan::sweep::compile_experiment(&SourceFile::new("x.psy", t), &path, &[]);
    assert!(compiled(&text).conditions.is_some());
    let c = compiled(&text.replace("folder \"images\"", "folder \"no_such_images\""));
    assert!(c.conditions.is_none());
    assert!(c.diags.iter().any(|d| d.code == Code::PlanMissingFile));
}

#[test]
fn mistakes_get_their_codes() {
    let ok = format!("{GABORS}{TASK}");
    let cases: &[(&str, &str, Code)] = &[
        (
            "reference gabor",
            "reference gabbor",
            Code::PlanUnknownStimulusKind,
        ),
        (
            "orientation 45deg  contrast",
            "orientation 45deg  sigam 8  contrast",
            Code::PlanUnknownParameter,
        ),
        (
            "stimulus target gabor { like reference  orientation 45deg + level }",
            "stimulus target gabor { like reference  phase level }",
            Code::PlanLevelNotNumber,
        ),
        (
            "[reference, target]",
            "[reference, tagret]",
            Code::PlanUnknownStimulus,
        ),
        ("[reference, target]", "[reference]", Code::PlanTaskStimuli),
        (
            "like reference  orientation",
            "like nothing  orientation",
            Code::PlanUnknownStimulus,
        ),
        ("axis frequency", "axis orientation", Code::PlanAxisIsLevel),
        (
            "orientation 45deg + level",
            "orientation 45deg",
            Code::PlanNothingMeasured,
        ),
        (
            "task 2afc { stimuli [reference, target] }",
            "task nafc { stimuli [reference, target]  intervals 3  answer higher }",
            Code::PlanAnswerHigher,
        ),
        (
            "task 2afc { stimuli [reference, target] }",
            "task nafc { stimuli [reference, target] }",
            Code::PlanMissingSetting,
        ),
        (
            "task 2afc { stimuli [reference, target] }",
            "task oddity { stimuli [reference, target]  intervals 2 }",
            Code::PlanOutOfRange,
        ),
        (
            "task 2afc { stimuli [reference, target] }",
            "task yes_no { stimuli [reference, target]  position first }",
            Code::PlanIncompatible,
        ),
        (
            "orientation 45deg  contrast",
            "orientation 45  contrast",
            Code::PlanWrongType,
        ),
        ("contrast 0.5", "contrast 0.5deg", Code::PlanWrongType),
        (
            "stimulus target gabor { like reference  orientation 45deg + level }",
            "stimulus target gabor { like reference  orientation 45deg + level  envelope wide }",
            Code::PlanUnknownValue,
        ),
        (
            "train { samples 10  level uniform(0.5deg, 40deg) }",
            "train shapes { samples 10 }",
            Code::PlanMixedSections,
        ),
        (
            "train { samples 10  level uniform(0.5deg, 40deg) }",
            "train { samples 10  level uniform(0.5, 40) }",
            Code::PlanWrongType,
        ),
    ];
    for (from, to, code) in cases {
        let text = angles(&file(&ok.replace(from, to)));
        assert!(ok.contains(from), "{from}");
        let got = codes(&text);
        assert!(got.contains(code), "{to}: expected {code:?}, got {got:?}");
    }
    // An angle expression adds angles, not bare numbers; factors stay plain.
    let angle_expr = |e: &str| {
        angles(&file(&ok.replace(
            "orientation 45deg + level",
            &format!("orientation {e}"),
        )))
    };
    assert_eq!(codes(&angle_expr("45 + level")), vec![Code::PlanWrongType]);
    assert_eq!(
        codes(&angle_expr("-(level - 1)")),
        vec![Code::PlanWrongType]
    );
    let p = plan(&angle_expr("45deg + 2 * level"));
    let Param::Value(e) = param(&p, "target", "orientation") else {
        panic!()
    };
    assert_eq!(e.eval(1.5, 0.0), 48.0);
    // Lists of one parameter in both stimuli must agree.
    let text = angles(&file(
        &ok.replace(
            "contrast 0.5 }",
            "contrast 0.5  phase cosine  cycles [1, 2] }",
        )
        .replace(
            "orientation 45deg + level }",
            "orientation 45deg + level  cycles [1, 3] }",
        ),
    ));
    assert!(codes(&text).contains(&Code::PlanListMismatch));
    // A `test` section in a design.
    let text = angles(&file(&format!("{ok}  test gratings {{ size 32 }}\n")));
    assert!(codes(&text).contains(&Code::PlanMixedSections));
}

#[test]
fn did_you_mean_names_the_parameter_and_the_kind() {
    let l = compile(&SourceFile::new(
        "t.psy",
        angles(&file(
            &format!("{GABORS}{TASK}")
                .replace(
                    "orientation 45deg  contrast",
                    "orientation 45deg  sigam 8  contrast",
                )
                .replace("reference gabor", "reference gabr"),
        )),
    ));
    let help: Vec<String> = l.diags.iter().filter_map(|d| d.help.clone()).collect();
    assert!(
        help.iter().any(|h| h.starts_with("did you mean `gabor`?")),
        "{help:?}"
    );
    let l = compile(&SourceFile::new(
        "t.psy",
        angles(&file(&format!("{GABORS}{TASK}").replace(
            "orientation 45deg  contrast",
            "orientation 45deg  sigam 8  contrast",
        ))),
    ));
    let help: Vec<String> = l.diags.iter().filter_map(|d| d.help.clone()).collect();
    assert!(
        help.iter().any(|h| h.starts_with("did you mean `sigma`?")),
        "{help:?}"
    );
}

/// The plan of `text` with `--set` overrides, through the same path as the command line.
fn with_sets(text: &str, sets: &[&str]) -> Result<Plan, Vec<Code>> {
    let overrides: Vec<crate::plan::sweep::Override> =
        sets.iter().map(|s| s.parse().unwrap()).collect();
    let c = crate::plan::sweep::compile_experiment(
        &SourceFile::new("t.psy", text),
        std::path::Path::new("t.psy"),
        &overrides,
    );
    match c.conditions {
        Some(mut cs) if cs.len() == 1 => Ok(cs.remove(0).plan),
        _ => Err(c.diags.iter().map(|d| d.code).collect()),
    }
}

#[test]
fn set_paths_address_the_new_blocks() {
    let text = angles(&file(&format!("{GABORS}{TASK}")));
    let p = with_sets(
        &text,
        &[
            "display.size=64",
            "stimulus.reference.contrast=0.25",
            "stimulus.target.sigma=3",
            "task.position=first",
            "axis=spatial [1, 2, 3]",
            "train.samples=7",
            "train.level=uniform(1deg, 2deg)",
            "level.unit=degrees",
        ],
    )
    .unwrap();
    let d = p.design.unwrap();
    assert_eq!(d.size, 64);
    // The target is `like reference`: it copies the overridden contrast.
    for s in ["reference", "target"] {
        assert_eq!(
            d.stimulus(s).unwrap().params["contrast"],
            Param::Value(Expr::Num(0.25))
        );
    }
    assert_eq!(
        d.stimulus("target").unwrap().params["sigma"],
        Param::Value(Expr::Num(3.0))
    );
    // Defaults follow the overridden size.
    assert_eq!(
        d.stimulus("reference").unwrap().params["sigma"],
        Param::Value(Expr::Num(8.0))
    );
    assert_eq!(d.task.position, Position::Fixed(0));
    assert_eq!((d.axis.name.as_str(), d.axis.values.len()), ("spatial", 3));
    let t = d.train.unwrap();
    assert_eq!(
        (t.samples, t.level),
        (7, Draw::Uniform { lo: 1.0, hi: 2.0 })
    );
    assert_eq!(d.level.unit, "degrees");
    // A distance readout set on a probed experiment plans (probe and train ignored).
    let p = with_sets(&text, &["readout=l2"]).unwrap();
    assert_eq!(p.design.unwrap().readout, Readout::Distance(Metric::L2));
    // An unknown stimulus or parameter is an unknown path.
    assert_eq!(
        with_sets(&text, &["stimulus.refrence.contrast=0.1"]).unwrap_err(),
        vec![Code::PlanUnknownPath]
    );
    assert_eq!(
        with_sets(&text, &["stimulus.reference.contrats=0.1"]).unwrap_err(),
        vec![Code::PlanUnknownPath]
    );
}

#[test]
fn extends_merges_stimuli_by_name() {
    let dir = std::env::temp_dir().join(format!("psyrun-design-extends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("base.psy"),
        angles(&file(&format!("{GABORS}{TASK}"))),
    )
    .unwrap();
    let child = "psy 1\nimport \"base.psy\"\nexperiment child extends t {\n  \
                 stimulus target gabor { like reference  orientation 45deg - level }\n}\n";
    let path = dir.join("child.psy");
    std::fs::write(&path, child).unwrap();
    let c =
        crate::plan::sweep::compile_experiment(&SourceFile::new("child.psy", child), &path, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    let plan = &c.conditions.expect("plans")[0].plan;
    let d = plan.design.as_ref().unwrap();
    // The child's target replaced the base's target, not its reference.
    assert_eq!(d.stimuli.len(), 2);
    let Param::Value(e) = &d.stimulus("target").unwrap().params["orientation"] else {
        panic!()
    };
    assert_eq!(e.eval(5.0, 0.0), 40.0);
    assert_eq!(
        d.stimulus("reference").unwrap().params["orientation"],
        Param::Value(Expr::Num(45.0))
    );
}

#[test]
fn a_misplaced_fit_level_stays_a_tutorial_mistake() {
    // `level 0.75` at the top of a `test gratings` experiment belongs in `fit`.
    let text = "psy 1\nexperiment t {\n  level 0.75\n  backbone resnet18 { weights random  cut layer1 }\n  \
                probe linear {}\n  train shapes { size 32 }\n  test gratings { size 32 }\n  staircase bisection {}\n}\n";
    let l = compile(&SourceFile::new("t.psy", text));
    let d: Vec<(Code, Option<String>)> = l.diags.iter().map(|d| (d.code, d.help.clone())).collect();
    assert_eq!(
        d,
        vec![(
            Code::PlanUnknownSetting,
            Some("`level` belongs in `fit`".into())
        )]
    );
}

/// QUEST's guess rate (and QUEST+'s) defaults to the task's: ¼ in a 4-AFC, ⅓ in a 3-oddity,
/// ½ in a 2AFC; a written `gamma` stays.
#[test]
fn quest_guesses_at_the_tasks_rate() {
    let body = |task: &str| {
        angles(&file(&format!(
            "{GABORS}  task {task}\n  axis frequency [2, 4]\n  train {{ samples 10  level uniform(0.5deg, 40deg) }}\n"
        )))
    };
    let gamma = |text: &str| match plan(text).staircase {
        Staircase::Quest(q) => q.gamma,
        Staircase::QuestPlus(q) => q.gamma,
        other => panic!("{other:?}"),
    };
    let four = body("nafc { stimuli [reference, target]  intervals 4 }");
    assert_eq!(gamma(&four), 0.25);
    assert_eq!(
        gamma(&body("oddity { stimuli [reference, target]  intervals 3 }")),
        1.0 / 3.0
    );
    assert_eq!(gamma(&body("2afc { stimuli [reference, target] }")), 0.5);
    assert_eq!(
        gamma(&four.replace("trials 4 }", "trials 4  gamma 0.3 }")),
        0.3
    );
}
