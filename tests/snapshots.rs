//! Snapshots of what the user sees: the plan of every valid file, and the rendered,
//! colourless diagnostics of every invalid one. Fixture folders state the expectation:
//! a file under `fixtures/err/` that yields a plan fails outright; so does a file under
//! `fixtures/ok/` or `experiments/` with an error.

use crate::{rel, root};
use psyrun::diag::{render, Diag};
use psyrun::plan::sweep::{compile_experiment, Compiled, Override};
use psyrun::plan::Lowered;
use psyrun::source::SourceFile;
use psyrun_cli::{plan_text, PlanFormat};
use std::path::Path;

fn read(path: &Path) -> SourceFile {
    // Read through the same code path as the CLI, named as a user in the repository's root
    // would name it (cargo runs these tests from crates/psyrun-cli).
    let file = SourceFile::read(path).unwrap_or_else(|d| panic!("{}: {d}", path.display()));
    SourceFile {
        name: rel(path).display().to_string(),
        ..file
    }
}

/// Compiles as `psyrun check` does, the files the experiment names checked where a run
/// looks for them (next to the fixture), with paths shown from the repository's root.
fn compile(file: &SourceFile, path: &Path) -> Lowered {
    compile_with(file, path, &[]).0
}

/// [`compile`] with `--set` overrides: the diagnostics (all conditions), and the conditions
/// when there is no error.
fn compile_with(file: &SourceFile, path: &Path, overrides: &[&str]) -> (Lowered, Compiled) {
    let overrides: Vec<Override> = overrides.iter().map(|o| o.parse().unwrap()).collect();
    let compiled = compile_experiment(file, path, &overrides);
    let diags = strip_root(compiled.diags.clone());
    let plan = match compiled.conditions.as_deref() {
        Some([one]) => Some(one.plan.clone()),
        _ => None,
    };
    (Lowered { plan, diags }, compiled)
}

/// Diagnostics with the repository's root taken out of their texts.
fn strip_root(diags: Vec<Diag>) -> Vec<Diag> {
    let prefix = format!("{}/", root().display());
    let strip = |s: &mut String| *s = s.replace(&prefix, "");
    diags
        .into_iter()
        .map(|mut d: Diag| {
            strip(&mut d.message);
            if let Some(l) = d.primary.as_mut() {
                strip(&mut l.text);
            }
            d.secondary.iter_mut().for_each(|l| strip(&mut l.text));
            if let Some(h) = d.help.as_mut() {
                strip(h);
            }
            d
        })
        .collect()
}

/// The memory plans are checked against (`psy::plan::memory`), the same on every machine.
fn fixed_memory() {
    std::env::set_var("PSYRUN_MEMORY", "25000000000");
}

fn plan_snapshot(path: &Path) -> String {
    fixed_memory();
    let file = read(path);
    let (lowered, compiled) = compile_with(&file, path, &[]);
    let errors: Vec<_> = lowered
        .diags
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    assert!(
        errors.is_empty(),
        "{} has errors:\n{}",
        path.display(),
        render(&errors, false)
    );
    // A file without a sweep: its plan, as `psyrun plan` prints it; with one, the table of
    // conditions and each plan.
    let text = plan_text(&compiled, PlanFormat::Ron, None)
        .expect("no errors, so conditions")
        .expect("no condition asked for");
    let warnings = render(&lowered.diags, false);
    format!(
        "{}\n// warnings:\n{}",
        text,
        if warnings.is_empty() {
            "none\n".into()
        } else {
            warnings
        }
    )
}

#[test]
fn experiments_plan() {
    insta::glob!("../experiments", "*.psy", |path| {
        insta::assert_snapshot!(plan_snapshot(path));
    });
}

#[test]
fn ok_fixtures_plan() {
    insta::glob!("fixtures/ok/*.psy", |path| {
        insta::assert_snapshot!(plan_snapshot(path));
    });
}

#[test]
fn err_fixtures_diagnostics() {
    let mut count = 0;
    insta::glob!("fixtures/err/**/*.psy", |path| {
        count += 1;
        fixed_memory();
        let file = read(path);
        let lowered = compile(&file, path);
        assert!(
            lowered.plan.is_none(),
            "{} is under err/ but yields a plan",
            path.display()
        );
        assert!(lowered.has_errors(), "{} has no error", path.display());
        // Each fixture states the one behaviour it tests on its first line.
        let expect = file
            .text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{} must start with `// expect: psy::…`", path.display()))
            .trim()
            .to_string();
        assert!(
            lowered.diags.iter().any(|d| d.code.as_str() == expect),
            "{}: expected {expect}, got {:?}",
            path.display(),
            lowered
                .diags
                .iter()
                .map(|d| d.code.as_str())
                .collect::<Vec<_>>()
        );
        // The folder names the stage: err/syntax/ files fail in the parser, err/plan/ in the planner.
        let stage = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|s| s.to_str())
            .unwrap_or("");
        let first = lowered
            .diags
            .iter()
            .find(|d| d.is_error())
            .map(|d| d.code.as_str())
            .unwrap_or("");
        assert!(
            first.starts_with(&format!("psy::{stage}::")),
            "{}: first error {first} is not a {stage} error",
            path.display()
        );
        insta::assert_snapshot!(render(&lowered.diags, false));
    });
    assert!(count >= 30, "only {count} error fixtures");
}

/// `--set` diagnostics point into a pseudo-source named `--set` (its text is `PATH=VALUE`),
/// and errors in an override and in the file are reported together.
#[test]
fn set_overrides_diagnostics() {
    fixed_memory();
    let path = root().join("experiments/quick_csf.psy");
    let file = read(&path);
    for (name, overrides) in [
        ("set_unknown_path", &["probe.epoch=3"][..]),
        (
            "set_bad_value",
            &["probe.epochs=0", "backbone.cut=layer9"][..],
        ),
        ("set_syntax_error", &["probe.epochs=[1,"][..]),
        ("set_wrong_type", &["backbone.pooling=\"avg\""][..]),
    ] {
        let (lowered, _) = compile_with(&file, &path, overrides);
        assert!(lowered.has_errors(), "{name}");
        insta::assert_snapshot!(name, render(&lowered.diags, false));
    }
}

/// What `psyrun plan --condition` and `--set` on a swept path make of a sweep.
#[test]
fn sweep_conditions_by_index_id_and_set() {
    fixed_memory();
    let path = root().join("experiments/layer_profile.psy");
    let file = read(&path);
    let (_, compiled) = compile_with(&file, &path, &[]);
    let cs = compiled.conditions.as_deref().expect("layer_profile plans");
    assert_eq!(cs.len(), 3);
    // By index (from 1) and by id, the same text.
    let by_index = plan_text(&compiled, PlanFormat::Ron, Some("2"))
        .unwrap()
        .unwrap();
    let by_id = plan_text(&compiled, PlanFormat::Ron, Some(&cs[1].id))
        .unwrap()
        .unwrap();
    assert_eq!(by_index, by_id);
    assert!(by_index.starts_with(&format!(
        "// condition 2 of 3: {}  backbone.cut=layer2\n",
        cs[1].id
    )));
    let json = plan_text(&compiled, PlanFormat::Json, None)
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[2]["index"], 3);
    assert_eq!(v[2]["id"], cs[2].id.as_str());
    assert_eq!(
        v[2]["values"],
        serde_json::json!([{"path": "backbone.cut", "value": "layer3"}])
    );
    assert_eq!(
        v[2]["plan"]["backbone"]["network"]["Catalog"]["cut"],
        "layer3"
    );
    // A condition that is not there.
    let d = plan_text(&compiled, PlanFormat::Ron, Some("4"))
        .unwrap()
        .unwrap_err();
    insta::assert_snapshot!("condition_not_found", render(&[d], false));
    // `--set` on the swept path replaces the sweep: one condition, printed as a plain plan.
    let (_, one) = compile_with(&file, &path, &["backbone.cut=layer3"]);
    let text = plan_text(&one, PlanFormat::Ron, None).unwrap().unwrap();
    assert!(
        text.starts_with("Plan(") && text.contains("cut: \"layer3\""),
        "{text}"
    );
}
