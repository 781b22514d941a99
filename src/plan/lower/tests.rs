//! The spans the lowering records for the run time ([`Spans`]).

use crate::diag::Span;
use crate::plan::{compile, to_ron, Plan, Setting, Spans};
use crate::source::SourceFile;
use crate::syntax::ast::{Block, Item};

fn plan_of(text: &str) -> (SourceFile, Plan) {
    let file = SourceFile::new("t.psy", text);
    let lowered = compile(&file);
    let plan = lowered
        .plan
        .unwrap_or_else(|| panic!("{:?}", lowered.diags));
    (file, plan)
}

/// The source text of `setting`'s span.
fn text<'a>(file: &'a SourceFile, spans: &Spans, setting: Setting) -> &'a str {
    let span = spans
        .get(setting)
        .unwrap_or_else(|| panic!("{setting:?} not recorded"));
    &file.text[span.start..span.end]
}

fn experiment(body: &str) -> String {
    format!(
        "psy 1\nexperiment t {{\n{body}\n  train shapes {{ size 32 samples 10 }}\n  \
         test gratings {{ size 32 frequencies [1] }}\n  staircase bisection {{ target 0.75 }}\n}}\n"
    )
}

#[test]
fn written_settings_point_at_their_values() {
    let (file, plan) = plan_of(&experiment(
        "  seed 7\n  device cuda:1\n\
         \x20 backbone resnet18 { weights \"nets/w.safetensors\"  cut layer1 }\n\
         \x20 probe linear { epochs 1  optimizer adam { betas [0.9, 0.99]  lr 2.5e-3 } }",
    ));
    let spans = &plan.spans;
    assert_eq!(text(&file, spans, Setting::Device), "cuda:1");
    assert_eq!(text(&file, spans, Setting::Backbone), "backbone resnet18");
    assert_eq!(
        text(&file, spans, Setting::Weights),
        "\"nets/w.safetensors\""
    );
    assert_eq!(text(&file, spans, Setting::Probe), "probe linear");
    assert_eq!(text(&file, spans, Setting::Lr), "2.5e-3");
}

#[test]
fn defaults_point_at_the_block_that_took_them() {
    // No `device`, no `optimizer`: the experiment's header and the probe's.
    let (file, plan) = plan_of(&experiment(
        "  backbone resnet18 { weights random  cut layer1 }\n  probe linear { epochs 1 }",
    ));
    let spans = &plan.spans;
    assert_eq!(text(&file, spans, Setting::Device), "experiment t");
    assert_eq!(text(&file, spans, Setting::Probe), "probe linear");
    assert_eq!(text(&file, spans, Setting::Lr), "probe linear");

    // An `optimizer` block without `lr` took the default itself; a probe without a kind
    // has only its keyword for a header.
    let (file, plan) = plan_of(&experiment(
        "  backbone resnet18 { weights random  cut layer1 }\n  \
         probe { optimizer sgd { momentum 0.5 } }",
    ));
    assert_eq!(text(&file, &plan.spans, Setting::Lr), "optimizer sgd");
    assert_eq!(text(&file, &plan.spans, Setting::Probe), "probe");

    // A TorchScript module carries its weights: `weights` is the backbone's header.
    let (file, plan) = plan_of(&experiment(
        "  backbone torchscript \"net.pt\" { pooling avg 1x1 }\n  probe linear { epochs 1 }",
    ));
    let header = "backbone torchscript \"net.pt\"";
    assert_eq!(text(&file, &plan.spans, Setting::Backbone), header);
    assert_eq!(text(&file, &plan.spans, Setting::Weights), header);
}

#[test]
fn a_plan_read_back_from_ron_has_no_spans_and_equals_the_original() {
    let (_, plan) = plan_of(&experiment(
        "  device cpu\n  backbone resnet18 { weights random  cut layer1 }\n  probe linear { }",
    ));
    assert!(!plan.spans.is_empty());
    let ron = to_ron(&plan);
    assert!(!ron.contains("spans"), "{ron}");
    let back: Plan = ron::from_str(&ron).unwrap();
    assert!(back.spans.is_empty());
    for s in Setting::ALL {
        assert_eq!(back.spans.get(s), None, "{s:?}");
    }
    assert_eq!(back, plan);
}

/// Where `path` (block keywords, then a setting's key or a block's keyword) is written in
/// the file's experiment, found on the syntax tree independently of the lowering: the
/// value's span, or a block's header.
fn written(file: &SourceFile, path: &[&str]) -> Option<Span> {
    let ast = crate::syntax::parse(file).ok()?;
    let mut block = ast.experiments.first()?;
    let (last, parents) = path.split_last()?;
    for name in parents {
        block = block.blocks().find(|b| b.keyword.text == *name)?;
    }
    block.items.iter().find_map(|item| match item {
        Item::Setting(s) if s.key.text == *last => Some(s.value.span),
        Item::Block(b) if b.keyword.text == *last => Some(header(b)),
        _ => None,
    })
}

fn header(b: &Block) -> Span {
    b.label
        .as_ref()
        .map_or(b.keyword.span, |l| b.keyword.span.join(l.span))
}

/// Where each setting is written, and where its default was taken when it is not.
fn expected(setting: Setting) -> (&'static [&'static str], &'static [&'static [&'static str]]) {
    match setting {
        Setting::Device => (&["device"], &[&[]]),
        Setting::Backbone => (&["backbone"], &[]),
        Setting::Weights => (&["backbone", "weights"], &[&["backbone"]]),
        Setting::Probe => (&["probe"], &[]),
        Setting::Lr => (
            &["probe", "optimizer", "lr"],
            &[&["probe", "optimizer"], &["probe"]],
        ),
    }
}

#[test]
fn every_example_and_fixture_records_every_setting() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["experiments", "tests/fixtures/ok"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "psy") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    for path in files {
        let file = SourceFile::read(&path).unwrap();
        let ast = crate::syntax::parse(&file).unwrap();
        if !ast.imports.is_empty() {
            // Built from several files: each condition's settings are recorded, each in the
            // file it is written in (checked by name and text below).
            let compiled = crate::plan::sweep::compile_experiment(&file, &path, &[]);
            for c in compiled.conditions.unwrap() {
                for setting in Setting::ALL {
                    let span = c.plan.spans.get(setting).unwrap();
                    let text = &c.plan.spans.file(setting).unwrap_or(&file).text;
                    assert!(
                        span.end <= text.len() && span.start < span.end,
                        "{}: {setting:?}",
                        path.display()
                    );
                }
            }
            continue;
        }
        let plan = compile(&file).plan.unwrap();
        let exp = &ast.experiments[0];
        for setting in Setting::ALL {
            let (at, fallbacks) = expected(setting);
            let want = written(&file, at).or_else(|| {
                fallbacks.iter().find_map(|p| match p {
                    [] => Some(header(exp)),
                    p => written(&file, p),
                })
            });
            assert!(want.is_some(), "{}: {setting:?}", path.display());
            assert_eq!(
                plan.spans.get(setting),
                want,
                "{}: {setting:?}",
                path.display()
            );
        }
    }
}

#[test]
fn logspace_gives_the_values_the_docs_promise() {
    let (_, plan) = plan_of(
        "psy 1\nexperiment t {\n  backbone resnet18 { weights random  cut layer1 }\n  probe {}\n  \
         train shapes { size 128 samples 10 }\n  \
         test gratings { size 128 frequencies logspace(1, 64, 7) }\n  staircase {}\n}\n",
    );
    // exp(ln 64 · k/6) is 7.999999999999998 and 15.999999999999998 for k = 3, 4.
    assert_eq!(
        plan.test.frequencies,
        [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    );
    let (_, plan) = plan_of(
        "psy 1\nexperiment t {\n  backbone resnet18 { weights random  cut layer1 }\n  probe {}\n  \
         train shapes { size 128 samples 10 }\n  \
         test gratings { size 128 frequencies logspace(1, 10, 4) }\n  staircase {}\n}\n",
    );
    // Values that are not round stay themselves to 12 digits: 10^(1/3) = 2.15443469003….
    let f = &plan.test.frequencies;
    assert!((f[1] - 10f64.powf(1.0 / 3.0)).abs() < 1e-11, "{f:?}");
    assert_eq!(f[3], 10.0);
    // steps: 0.1 + 2 × 0.1 is 0.30000000000000004 in floating point.
    let (_, plan) = plan_of(
        "psy 1\nexperiment t {\n  backbone resnet18 { weights random  cut layer1 }\n  probe {}\n  \
         train shapes { size 128 samples 10 }\n  \
         test gratings { size 128 frequencies steps(0.1, 1.0, 0.1, inclusive) }\n  staircase {}\n}\n",
    );
    assert_eq!(
        plan.test.frequencies,
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    );
}

#[test]
fn checked_compiles_look_for_files_where_a_run_would() {
    use crate::diag::{Code, Diag};
    use crate::plan::compile_checked;
    use std::path::Path;
    let dir = std::env::temp_dir().join(format!("psyrun-files-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("nets")).unwrap();
    std::fs::write(dir.join("nets/w.pth"), b"x").unwrap();
    let text = |w: &str| {
        format!(
            "psy 1\nexperiment t {{\n  backbone resnet18 {{ weights \"{w}\"  cut layer1 }}\n  \
             probe {{}}\n  train {{ size 32 }}\n  test {{ size 32 }}\n  staircase {{}}\n}}\n"
        )
    };
    let codes = |w: &str, path: &Path| -> Vec<Diag> {
        compile_checked(&SourceFile::new("t.psy", text(w)), path).diags
    };
    let exp = dir.join("t.psy");
    // Relative to the experiment file's folder, as the run resolves it.
    assert!(codes("nets/w.pth", &exp).is_empty());
    let d = codes("nets/absent.pth", &exp);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].code, Code::PlanMissingFile);
    let shown = dir.join("nets/absent.pth").display().to_string();
    assert!(d[0].message.contains(&shown), "{}", d[0].message);
    // A directory is not a weights file.
    std::fs::create_dir_all(dir.join("dir.pth")).unwrap();
    let d = codes("dir.pth", &exp);
    assert!(d[0].message.contains("is a directory"), "{d:?}");
    // An absolute path is checked as written, even from standard input; a relative one
    // from standard input is not (it would be taken from /dev).
    let stdin = Path::new(crate::source::STDIN_PATH);
    assert!(codes("nets/absent.pth", stdin).is_empty());
    let abs = dir.join("absent.pth").display().to_string();
    assert_eq!(codes(&abs, stdin)[0].code, Code::PlanMissingFile);
    // Plain `compile` checks no file.
    assert!(compile(&SourceFile::new("t.psy", text("nets/absent.pth")))
        .diags
        .is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
