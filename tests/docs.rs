//! The documentation tells the truth: every `.psy` example in the docs plans, and every
//! diagnostic code is documented and exercised by a fixture or a test.

use psyrun::diag::{render, Code};
use psyrun::plan::sweep::compile_for_run;
use psyrun::source::SourceFile;

const SECTIONS: [&str; 7] = [
    "backbone",
    "probe",
    "train",
    "test",
    "staircase",
    "observer",
    "fit",
];

/// The ```psy blocks of a markdown file.
fn psy_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match (&mut cur, line.trim_start()) {
            (None, "```psy") => cur = Some(String::new()),
            (Some(_), "```") => out.extend(cur.take()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// A complete file, or a section snippet placed into a minimal experiment.
fn as_file(snippet: &str) -> String {
    let first = snippet
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("//"))
        .unwrap_or("");
    if first.starts_with("psy ") {
        return snippet.to_string();
    }
    let kw = first.split_whitespace().next().unwrap_or("");
    assert!(
        SECTIONS.contains(&kw),
        "a docs snippet must be a whole file or one block, got: {first}"
    );
    let mut body = String::new();
    for s in SECTIONS {
        if s == kw {
            body.push_str(snippet);
        } else if s == "backbone" {
            body.push_str("backbone resnet18 { weights random  cut layer1 }\n");
        } else {
            body.push_str(&format!("{s} {{}}\n"));
        }
    }
    format!("psy 1\nexperiment snippet {{\n{body}}}\n")
}

/// Checks every example of a page. An example whose first line is `// file: PATH` is also
/// written at PATH in a scratch folder, for the examples that import it; each example is
/// compiled from that folder, with its imports, `extends` and sweep (every condition must
/// plan).
fn check_examples(name: &str, md: &str, min: usize) {
    let blocks = psy_blocks(md);
    assert!(
        blocks.len() >= min,
        "{name}: only {} psy examples",
        blocks.len()
    );
    let dir = std::env::temp_dir().join(format!(
        "psyrun-docs-{}-{}",
        std::process::id(),
        name.replace(['/', '.'], "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let named = |b: &str| {
        b.lines()
            .next()
            .and_then(|l| l.trim().strip_prefix("// file: "))
            .map(|p| dir.join(p.trim()))
    };
    for b in &blocks {
        if let Some(path) = named(b) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b).unwrap();
        }
    }
    for (i, b) in blocks.iter().enumerate() {
        let path = named(b).unwrap_or_else(|| dir.join(format!("example_{}.psy", i + 1)));
        let file = SourceFile::new(format!("{name} example {}", i + 1), as_file(b));
        let compiled = compile_for_run(&file, &path, &[]);
        assert!(
            compiled.conditions.is_some(),
            "{name} example {} does not plan:\n{}\n{}",
            i + 1,
            file.text,
            render(&compiled.diags, false)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn language_reference_examples_plan() {
    check_examples("docs/language.md", include_str!("../docs/language.md"), 6);
}

#[test]
fn readme_examples_plan() {
    check_examples("README.md", include_str!("../README.md"), 1);
}

#[test]
fn every_code_is_documented() {
    let md = include_str!("../docs/diagnostics.md");
    for c in Code::ALL {
        assert!(
            md.contains(&format!("## {}\n", c.as_str())),
            "docs/diagnostics.md lacks `## {c}`"
        );
    }
}

#[test]
fn every_code_is_exercised() {
    // psy::syntax and psy::plan codes by snapshot fixtures; psy::io by tests/robustness.rs;
    // psy::run by tests/cli.rs, tests/run.rs and tests/design.rs, psy::sweep by tests/sweep.rs (psy::run::bug, which no input can cause, by
    // a unit test of the libtorch crate).
    let mut snaps = String::new();
    for entry in
        std::fs::read_dir(crate::root().join("tests/snapshots")).expect("tests/snapshots exists")
    {
        snaps.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let others = [
        include_str!("robustness.rs"),
        include_str!("cli.rs"),
        include_str!("run.rs"),
        include_str!("run/resume.rs"),
        include_str!("design.rs"),
        include_str!("sweep.rs"),
        include_str!("../crates/psyrun-torch/src/failure.rs"),
    ]
    .concat();
    for c in Code::ALL {
        let s = c.as_str();
        let hit = if s.starts_with("psy::io::")
            || s.starts_with("psy::run::")
            || s.starts_with("psy::sweep::")
        {
            others.contains(s) || snaps.contains(s)
        } else {
            snaps.contains(s)
        };
        assert!(hit, "no fixture or test produces {s}");
    }
}

#[test]
fn every_documented_setting_default_matches_the_plan() {
    // The minimal file's plan shows the defaults the reference documents.
    let file = SourceFile::new(
        "min.psy",
        as_file("backbone resnet18 { weights random  cut layer1 }\n"),
    );
    let plan = compile(&file).plan.expect("minimal file plans");
    use psyrun::plan::*;
    assert_eq!(plan.seed, 0);
    assert_eq!(plan.device, Device::Auto);
    assert_eq!(plan.backbone.pooling, Pooling::Off);
    assert_eq!(plan.backbone.batchnorm, BatchNorm::Eval);
    assert_eq!(
        plan.probe.optimizer,
        Optimizer::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: false
        }
    );
    assert_eq!((plan.probe.epochs, plan.probe.batch), (10, 32));
    assert_eq!((plan.train.size, plan.train.samples), (224, 1000));
    assert_eq!(plan.train.background, 128.0 / 255.0);
    assert_eq!(plan.train.pivot, plan.train.background);
    assert_eq!(plan.train.contrast, Uniform { lo: 0.04, hi: 1.0 });
    assert_eq!(
        plan.test.frequencies,
        vec![1.0, 2.0, 4.0, 7.0, 8.0, 14.0, 16.0, 28.0, 32.0, 56.0, 112.0]
    );
    assert_eq!(plan.test.orientations.len(), 12);
    assert_eq!(plan.test.phases, vec![0.0]);
    assert_eq!(
        plan.test.envelope,
        Envelope::Gaussian { sigma: 224.0 / 6.0 }
    );
    assert_eq!(plan.test.target_interval, TargetInterval::Both);
    assert_eq!(
        plan.staircase,
        Staircase::Bisection {
            start: 0.5,
            low: 0.0,
            high: 1.0,
            target: 0.75,
            tolerance: 0.0,
            max_steps: 30,
            stop: BisectionStop::Bracket,
            bracket: 0.01
        }
    );
    assert_eq!(plan.derived.trials_per_level, 24);
    assert_eq!(plan.repeats, 1);
    assert_eq!(
        plan.observer.decision,
        Decision::Softmax { temperature: 1.0 }
    );
    assert_eq!(
        (
            plan.observer.pixel_noise,
            plan.observer.phase_jitter,
            plan.observer.position_jitter
        ),
        (0.0, 0.0, 0)
    );
    assert_eq!(plan.fit.function, Some(Sigmoid::Weibull));
    assert_eq!(plan.fit.lapse, (0.0, 0.05));
    assert_eq!(plan.fit.likelihood, Likelihood::Binomial);
    assert_eq!(plan.fit.estimate, Estimation::Ml);
    assert_eq!(
        (plan.fit.bootstrap, plan.fit.ci, plan.fit.level),
        (1000, 0.95, 0.75)
    );
    assert_eq!(plan.fit.threshold, ThresholdFrom::Fit);
}

/// The parameter table of one stimulus kind, as docs/language.md writes it.
fn param_table(kind: psyrun::plan::design::StimulusKind) -> String {
    use psyrun::plan::design::{ParamDefault, ParamType};
    let mut t =
        String::from("| parameter | type | default | unit | meaning |\n|---|---|---|---|---|\n");
    for p in kind.params() {
        let ty = match p.ty {
            ParamType::Number => "number".to_string(),
            ParamType::Angle => "angle".to_string(),
            ParamType::Word(ws) => ws
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(" · "),
            ParamType::Flag => "`true` · `false`".to_string(),
            ParamType::Path => "path (a string)".to_string(),
        };
        let default = match p.default {
            ParamDefault::Num(x) if p.ty == ParamType::Angle => format!("`{x}deg`"),
            ParamDefault::Num(x) => format!("`{x}`"),
            ParamDefault::SizeOver(k) => format!("size / {k}"),
            ParamDefault::Word(w) => format!("`{w}`"),
            ParamDefault::Required => "required".to_string(),
        };
        t.push_str(&format!(
            "| `{}` | {ty} | {default} | {} | {} |\n",
            p.name, p.unit, p.doc
        ));
    }
    t
}

#[test]
fn every_stimulus_parameter_is_documented_as_the_planner_has_it() {
    // The tables under "Experiments of any kind" are `StimulusKind::params()`, row for row.
    use psyrun::plan::design::StimulusKind;
    let md = include_str!("../docs/language.md");
    let mut missing = String::new();
    for kind in StimulusKind::ALL {
        let want = format!("#### `{}`\n\n{}", kind.name(), param_table(kind));
        if !md.contains(&want) {
            missing.push_str(&want);
            missing.push('\n');
        }
    }
    assert!(
        missing.is_empty(),
        "docs/language.md lacks (or has other) parameter tables:\n{missing}"
    );
}

#[test]
fn documented_design_defaults_match_the_plan() {
    // `display` left out: 224 px, background 0.5, ImageNet normalisation; a task's position
    // `all`, its answer `differs`; a train's samples 1000; the readout a probe.
    let file = SourceFile::new(
        "d.psy",
        "psy 1\nexperiment d {\n  backbone resnet18 { weights random  cut layer1 }\n  probe linear {}\n\
         \x20 stimulus a grating { frequency axis  contrast 0 }\n  stimulus b grating { like a  contrast level }\n\
         \x20 task 2afc { stimuli [a, b] }\n  axis frequency [4]\n  train { level uniform(0, 1) }\n\
         \x20 staircase bisection {}\n}\n",
    );
    let plan = psyrun::plan::compile(&file).plan.expect("plans");
    use psyrun::plan::design::*;
    let d = plan.design.expect("a design");
    assert_eq!((d.size, d.background), (224, 0.5));
    assert_eq!(
        d.normalize,
        psyrun::plan::Normalize::MeanStd {
            mean: psyrun::plan::IMAGENET_MEAN,
            std: psyrun::plan::IMAGENET_STD
        }
    );
    assert_eq!(
        (d.task.answer, d.task.position),
        (Answer::Differs, Position::All)
    );
    assert_eq!(d.readout, Readout::Probe);
    assert_eq!(d.train.expect("train").samples, 1000);
    assert_eq!(
        d.level,
        Level {
            name: "contrast".into(),
            unit: String::new()
        }
    );
    // `window` none, `sigma` size / 6 written in.
    assert_eq!(
        d.stimuli[0].params["sigma"],
        Param::Value(Expr::Num(224.0 / 6.0))
    );
}
