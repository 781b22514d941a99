//! Snapshots of what the user sees: the plan of every valid file, and the rendered,
//! colourless diagnostics of every invalid one. Fixture folders state the expectation:
//! a file under `fixtures/err/` that yields a plan fails outright; so does a file under
//! `fixtures/ok/` or `experiments/` with an error.

use crate::{rel, root};
use psyrun::diag::{render, Diag};
use psyrun::plan::{compile_checked, to_ron, Lowered};
use psyrun::source::SourceFile;
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
    let lowered = compile_checked(file, path);
    let prefix = format!("{}/", root().display());
    let strip = |s: &mut String| *s = s.replace(&prefix, "");
    let diags = lowered
        .diags
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
        .collect();
    Lowered { diags, ..lowered }
}

/// The memory plans are checked against (`psy::plan::memory`), the same on every machine.
fn fixed_memory() {
    std::env::set_var("PSYRUN_MEMORY", "25000000000");
}

fn plan_snapshot(path: &Path) -> String {
    fixed_memory();
    let file = read(path);
    let lowered = compile(&file, path);
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
    let plan = lowered.plan.expect("no errors, so a plan");
    let warnings = render(&lowered.diags, false);
    format!(
        "{}\n// warnings:\n{}",
        to_ron(&plan),
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
