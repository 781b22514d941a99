use super::*;
use crate::diag::render;
use sha2::Digest;

/// A base experiment, complete and tiny.
const LAB: &str = "psy 1
experiment lab {
  seed 1
  backbone resnet18 { weights random  cut layer1  pooling avg 2x2 }
  probe linear {
    optimizer sgd { lr 0.01  momentum 0.9 }
    epochs 2
    batch 16
  }
  train shapes { size 32  samples 64 }
  test gratings { size 32  frequencies [2, 4]  orientations [0deg]  phases [0deg] }
  staircase bisection { max_steps 4 }
}
";

/// A folder of files for one test, removed first.
fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("psyrun-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    dir
}

fn compile_at(dir: &Path, top: &str, overrides: &[&str]) -> Compiled {
    let path = dir.join(top);
    let file = SourceFile::read(&path).unwrap();
    let overrides: Vec<Override> = overrides.iter().map(|o| o.parse().unwrap()).collect();
    compile_experiment(&file, &path, &overrides)
}

fn codes(c: &Compiled) -> Vec<&'static str> {
    c.diags.iter().map(|d| d.code.as_str()).collect()
}

fn plans(c: &Compiled) -> &[Condition] {
    c.conditions
        .as_deref()
        .unwrap_or_else(|| panic!("no conditions:\n{}", render(&c.diags, false)))
}

#[test]
fn extends_merges_block_by_block() {
    let dir = folder(
        "merge",
        &[
            ("common/lab.psy", LAB),
            (
                "top.psy",
                "psy 1\nimport \"common/lab.psy\"\nexperiment mine extends lab {\n  seed 7\n  backbone alexnet { cut features.2 }\n  probe linear { epochs 3 }\n}\n",
            ),
        ],
    );
    let c = compile_at(&dir, "top.psy", &[]);
    let [one] = plans(&c) else { panic!() };
    let p = &one.plan;
    assert_eq!(p.experiment, "mine");
    assert_eq!(p.seed, 7);
    // The header argument written in the child replaces the base's; settings it does not
    // write come from the base.
    assert_eq!(p.backbone.catalog().unwrap().arch.name(), "alexnet");
    assert_eq!(p.backbone.catalog().unwrap().cut, "features.2");
    assert_eq!(p.backbone.pooling, crate::plan::Pooling::Avg { h: 2, w: 2 });
    assert_eq!((p.probe.epochs, p.probe.batch), (3, 16));
    assert!(matches!(p.probe.optimizer, crate::plan::Optimizer::Sgd { lr, .. } if lr == 0.01));
    assert_eq!(p.train.samples, 64);
    // Both files are recorded, the top first, with their hashes.
    assert_eq!(c.sources.len(), 2);
    assert_eq!(c.sources[0].relative, PathBuf::from("top.psy"));
    assert_eq!(c.sources[1].relative, PathBuf::from("common/lab.psy"));
    // SHA-256 computed here on its own, not through the code under test.
    let want: String = sha2::Sha256::digest(LAB.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(c.sources[1].sha256, want);
}

#[test]
fn an_unknown_setting_in_the_child_points_into_the_childs_file() {
    let dir = folder(
        "unknown",
        &[
            ("lab.psy", LAB),
            (
                "top.psy",
                "psy 1\nimport \"lab.psy\"\nexperiment mine extends lab {\n  probe linear { epoch 3 }\n}\n",
            ),
        ],
    );
    let c = compile_at(&dir, "top.psy", &[]);
    assert_eq!(codes(&c), ["psy::plan::unknown_setting"]);
    assert!(c.diags[0].source_name().unwrap().ends_with("top.psy"));
    let shown = render(&c.diags, false);
    assert!(shown.contains("epoch 3"), "{shown}");
}

#[test]
fn an_error_in_the_base_points_into_the_base_file() {
    let bad = LAB.replace("cut layer1", "cut layer9");
    let dir = folder(
        "base_error",
        &[
            ("lab.psy", bad.as_str()),
            (
                "top.psy",
                "psy 1\nimport \"lab.psy\"\nexperiment mine extends lab { seed 2 }\n",
            ),
        ],
    );
    let c = compile_at(&dir, "top.psy", &[]);
    assert_eq!(codes(&c), ["psy::plan::unknown_layer"]);
    assert!(c.diags[0].source_name().unwrap().ends_with("lab.psy"));
    let shown = render(&c.diags, false);
    assert!(shown.contains("cut layer9"), "{shown}");
}

#[test]
fn import_cycles_and_missing_files_are_errors_at_the_import() {
    let dir = folder(
        "cycle",
        &[
            (
                "a.psy",
                "psy 1\nimport \"b.psy\"\nexperiment a { seed 1 }\n",
            ),
            ("b.psy", "psy 1\nimport \"a.psy\"\n"),
        ],
    );
    let c = compile_at(&dir, "a.psy", &[]);
    assert!(
        codes(&c).contains(&"psy::plan::import_cycle"),
        "{:?}",
        codes(&c)
    );
    let d = c
        .diags
        .iter()
        .find(|d| d.code == Code::PlanImportCycle)
        .unwrap();
    assert!(
        d.message.contains("a.psy → ") && d.message.contains("b.psy → "),
        "{}",
        d.message
    );
    assert!(d.source_name().unwrap().ends_with("b.psy"));

    let dir = folder(
        "missing",
        &[(
            "top.psy",
            "psy 1\nimport \"nope/lab.psy\"\nexperiment a extends lab { }\n",
        )],
    );
    let c = compile_at(&dir, "top.psy", &[]);
    // The `extends` that may have named an experiment of the missing file is not reported.
    assert_eq!(codes(&c), ["psy::plan::import"]);
    let span = c.diags[0].primary.as_ref().unwrap().span;
    assert_eq!(
        &"psy 1\nimport \"nope/lab.psy\""[span.start..span.end],
        "\"nope/lab.psy\""
    );
}

#[test]
fn extends_unknown_and_cycles() {
    let dir = folder(
        "extends",
        &[
            (
                "lib.psy",
                "psy 1\nexperiment x extends y { seed 1 }\nexperiment y extends x { seed 2 }\nexperiment base { seed 3 }\n",
            ),
            ("typo.psy", "psy 1\nimport \"lib.psy\"\nexperiment t extends bace { }\n"),
            ("cycle.psy", "psy 1\nimport \"lib.psy\"\nexperiment t extends x { }\n"),
        ],
    );
    let c = compile_at(&dir, "typo.psy", &[]);
    assert_eq!(codes(&c), ["psy::plan::unknown_experiment"]);
    assert!(c.diags[0]
        .help
        .as_deref()
        .unwrap()
        .contains("did you mean `base`?"));
    let c = compile_at(&dir, "cycle.psy", &[]);
    assert_eq!(codes(&c), ["psy::plan::extends_cycle"]);
    assert!(c.diags[0].source_name().unwrap().ends_with("lib.psy"));
    assert!(
        c.diags[0].message.contains("x extends y extends x"),
        "{}",
        c.diags[0].message
    );
}

#[test]
fn overrides_set_settings_and_header_arguments() {
    let dir = folder("set", &[("lab.psy", LAB)]);
    let c = compile_at(
        &dir,
        "lab.psy",
        &[
            "probe.epochs=5",
            "backbone=alexnet",
            "backbone.cut=features.2",
            "probe.optimizer.lr=0.5",
            "seed=9",
            "observer.pixel_noise=0.1",
        ],
    );
    let [one] = plans(&c) else { panic!() };
    assert_eq!(one.plan.probe.epochs, 5);
    assert_eq!(one.plan.backbone.catalog().unwrap().arch.name(), "alexnet");
    assert_eq!(one.plan.backbone.catalog().unwrap().cut, "features.2");
    assert!(
        matches!(one.plan.probe.optimizer, crate::plan::Optimizer::Sgd { lr, .. } if lr == 0.5)
    );
    assert_eq!(one.plan.seed, 9);
    assert_eq!(one.plan.observer.pixel_noise, 0.1);
}

#[test]
fn a_bad_override_points_into_the_set_text() {
    let dir = folder("set_bad", &[("lab.psy", LAB)]);
    let c = compile_at(&dir, "lab.psy", &["probe.epoch=5"]);
    assert_eq!(codes(&c), ["psy::plan::unknown_path"]);
    assert_eq!(c.diags[0].source_name(), Some("--set"));
    assert!(c.diags[0]
        .help
        .as_deref()
        .unwrap()
        .contains("did you mean `probe.epochs`?"));
    let c = compile_at(&dir, "lab.psy", &["probe.epochs=-1"]);
    assert_eq!(codes(&c), ["psy::plan::out_of_range"]);
    assert_eq!(c.diags[0].source_name(), Some("--set"));
    let span = c.diags[0].primary.as_ref().unwrap().span;
    assert_eq!(&"probe.epochs=-1"[span.start..span.end], "-1");
    let c = compile_at(&dir, "lab.psy", &["probe.epochs=[1,"]);
    assert!(c.has_errors());
    assert_eq!(c.diags[0].source_name(), Some("--set"));
}

#[test]
fn sweeps_multiply_and_zip() {
    let sweep = LAB.replace(
        "  seed 1\n",
        "  seed 1\n  sweep { backbone.cut [layer1, layer2]  seed [1, 2, 3] }\n  sweep zip { probe.epochs [1, 2]  probe.batch [8, 16] }\n",
    );
    let dir = folder("sweep", &[("s.psy", sweep.as_str())]);
    let c = compile_at(&dir, "s.psy", &[]);
    let cs = plans(&c);
    assert_eq!(cs.len(), 2 * 3 * 2);
    // The first path slowest.
    assert_eq!(
        cs[0].values,
        [
            ("backbone.cut".to_string(), "layer1".to_string()),
            ("seed".to_string(), "1".to_string()),
            ("probe.epochs".to_string(), "1".to_string()),
            ("probe.batch".to_string(), "8".to_string())
        ]
    );
    assert_eq!(
        cs[1].label(),
        "backbone.cut=layer1 seed=1 probe.epochs=2 probe.batch=16"
    );
    assert_eq!(
        cs[2].label(),
        "backbone.cut=layer1 seed=2 probe.epochs=1 probe.batch=8"
    );
    assert_eq!(cs[11].plan.backbone.catalog().unwrap().cut, "layer2");
    assert_eq!(
        (
            cs[11].plan.seed,
            cs[11].plan.probe.epochs,
            cs[11].plan.probe.batch
        ),
        (3, 2, 16)
    );
    for (i, c) in cs.iter().enumerate() {
        assert_eq!(c.index, i);
        assert_eq!(c.id, condition_id(&c.plan));
    }
    // `--set` on a swept path replaces the dimension.
    let c = compile_at(&dir, "s.psy", &["seed=5"]);
    let cs = plans(&c);
    assert_eq!(cs.len(), 4);
    assert!(cs
        .iter()
        .all(|c| c.plan.seed == 5 && !c.label().contains("seed")));
    // Conditions are found by index (from 1) or id.
    assert_eq!(select(cs, "2").unwrap().index, 1);
    assert_eq!(select(cs, &cs[3].id).unwrap().index, 3);
    assert_eq!(select(cs, &cs[3].id[..6]).unwrap().index, 3);
    assert_eq!(select(cs, "5").unwrap_err().code, Code::PlanCondition);
    assert_eq!(select(cs, "zzzz").unwrap_err().code, Code::PlanCondition);
}

#[test]
fn zip_lengths_must_match() {
    let sweep = LAB.replace(
        "  seed 1\n",
        "  seed 1\n  sweep zip { probe.epochs [1, 2, 3]  probe.batch [8, 16] }\n",
    );
    let dir = folder("zip", &[("s.psy", sweep.as_str())]);
    let c = compile_at(&dir, "s.psy", &[]);
    assert_eq!(codes(&c), ["psy::plan::zip_lengths"]);
    assert!(c.diags[0]
        .message
        .contains("`probe.epochs` has 3 values, `probe.batch` has 2"));
}

#[test]
fn sweep_errors_name_their_conditions() {
    let sweep = LAB.replace(
        "  seed 1\n",
        "  seed 1\n  sweep { backbone.cut [layer1, layer9, layer2] }\n  probe linear { epochs 0 }\n",
    );
    let dir = folder("per_condition", &[("s.psy", sweep.as_str())]);
    let c = compile_at(&dir, "s.psy", &[]);
    assert!(c.conditions.is_none());
    // `probe` twice: reported once, common to every condition; the unknown layer only in
    // the second.
    let layer = c
        .diags
        .iter()
        .find(|d| d.code == Code::PlanUnknownLayer)
        .unwrap();
    assert!(
        layer
            .help
            .as_deref()
            .unwrap()
            .contains("in condition 2 of 3: backbone.cut=layer9"),
        "{:?}",
        layer.help
    );
    let dup: Vec<_> = c
        .diags
        .iter()
        .filter(|d| d.code == Code::PlanDuplicateBlock)
        .collect();
    assert_eq!(dup.len(), 1);
    assert!(!dup[0]
        .help
        .as_deref()
        .unwrap_or("")
        .contains("in condition"));
}

#[test]
fn same_plans_are_an_error_and_bad_sweeps_are_reported() {
    let same = LAB.replace("  seed 1\n", "  sweep { seed [1, 1.0] }\n");
    let dir = folder("same", &[("s.psy", same.as_str())]);
    assert_eq!(
        codes(&compile_at(&dir, "s.psy", &[])),
        ["psy::plan::same_conditions"]
    );
    for (sweep, code) in [
        ("sweep { seed 1 }", "psy::plan::bad_sweep"),
        ("sweep { seed [] }", "psy::plan::bad_sweep"),
        ("sweep { seed [1]  seed [2] }", "psy::plan::bad_sweep"),
        ("sweep { probe.epoch [1] }", "psy::plan::unknown_path"),
    ] {
        let text = LAB.replace("  seed 1\n", &format!("  {sweep}\n"));
        let dir = folder("bad", &[("s.psy", text.as_str())]);
        assert_eq!(codes(&compile_at(&dir, "s.psy", &[])), [code], "{sweep}");
    }
}

#[test]
fn ids_depend_only_on_the_plan() {
    let sweep = LAB.replace(
        "  seed 1\n",
        "  seed 1\n  sweep { backbone.cut [layer1, layer2] }\n",
    );
    // Reformatted, commented, renamed, numbers written differently: the same plans.
    let other = sweep
        .replace("  seed 1\n", "  // a comment\n  seed    1.0\n")
        .replace("lr 0.01", "lr 1e-2")
        .replace("\n  train", "\n\n\n  train");
    let dir = folder(
        "ids",
        &[("a.psy", sweep.as_str()), ("renamed.psy", other.as_str())],
    );
    let a = compile_at(&dir, "a.psy", &[]);
    let b = compile_at(&dir, "renamed.psy", &[]);
    let ids = |c: &Compiled| plans(c).iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a)[0], ids(&a)[1]);
    // The same experiment inherited from an import has the same ids too.
    let dir = folder(
        "ids_import",
        &[
            ("lib/lab.psy", sweep.as_str()),
            (
                "top.psy",
                "psy 1\nimport \"lib/lab.psy\"\nexperiment lab extends lab { }\n",
            ),
        ],
    );
    assert_eq!(ids(&compile_at(&dir, "top.psy", &[])), ids(&a));
}

#[test]
fn merge_keeps_duplicates_and_child_sweeps_replace_inherited_paths() {
    let dir = folder(
        "dup",
        &[
            ("lab.psy", &LAB.replace("  seed 1\n", "  seed 1\n  sweep { seed [1, 2]  probe.epochs [1, 2] }\n")),
            (
                "top.psy",
                "psy 1\nimport \"lab.psy\"\nexperiment t extends lab {\n  sweep { seed [4, 5, 6] }\n}\n",
            ),
            ("dup.psy", "psy 1\nimport \"lab.psy\"\nexperiment t extends lab { seed 1  seed 2 }\n"),
        ],
    );
    let c = compile_at(&dir, "top.psy", &[]);
    let cs = plans(&c);
    assert_eq!(cs.len(), 2 * 3);
    assert_eq!(cs[0].label(), "probe.epochs=1 seed=4");
    let c = compile_at(&dir, "dup.psy", &[]);
    assert_eq!(codes(&c), ["psy::plan::duplicate_setting"]);
}

#[test]
fn a_file_without_the_new_syntax_compiles_as_before() {
    let file = SourceFile::new("t.psy", LAB);
    let old = crate::plan::compile(&file).plan.unwrap();
    let c = compile_experiment(&file, Path::new("t.psy"), &[]);
    let [one] = plans(&c) else { panic!() };
    assert_eq!(crate::plan::to_ron(&one.plan), crate::plan::to_ron(&old));
    assert!(one.values.is_empty());
    assert_eq!(one.label(), "(single condition)");
}

#[test]
fn relative_paths_stay_inside_the_sources_folder() {
    assert_eq!(
        relative_to(Path::new("e/common/lab.psy"), Path::new("e")),
        PathBuf::from("common/lab.psy")
    );
    assert_eq!(
        relative_to(Path::new("e/../shared/x.psy"), Path::new("e")),
        PathBuf::from("__/shared/x.psy")
    );
    assert_eq!(
        relative_to(Path::new("x.psy"), Path::new("")),
        PathBuf::from("x.psy")
    );
}

#[test]
fn each_condition_keeps_its_own_warnings() {
    let text = LAB.replace(
        "  seed 1\n",
        "  seed 1\n  sweep { observer.decision [softmax(temperature: 1), deterministic] }\n",
    );
    let dir = folder("warnings", &[("s.psy", text.as_str())]);
    let c = compile_at(&dir, "s.psy", &[]);
    let cs = plans(&c);
    let codes_of = |c: &Condition| c.warnings.iter().map(|d| d.code).collect::<Vec<_>>();
    assert!(!codes_of(&cs[0]).contains(&Code::PlanDeterministicObserver));
    assert!(codes_of(&cs[1]).contains(&Code::PlanDeterministicObserver));
    // In the merged list, it names the condition it belongs to.
    let d = c
        .diags
        .iter()
        .find(|d| d.code == Code::PlanDeterministicObserver)
        .unwrap();
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .ends_with("in condition 2 of 2: observer.decision=deterministic"),
        "{:?}",
        d.help
    );
    assert!(cs[1].warnings.iter().all(|d| !d
        .help
        .as_deref()
        .unwrap_or("")
        .contains("in condition")));
}

#[test]
fn run_time_spans_point_into_the_file_each_setting_is_written_in() {
    use crate::plan::Setting as S;
    let dir = folder(
        "spans",
        &[
            ("lib/lab.psy", LAB),
            (
                "top.psy",
                "psy 1\nimport \"lib/lab.psy\"\nexperiment t extends lab {\n  device cpu\n}\n",
            ),
        ],
    );
    let c = compile_at(&dir, "top.psy", &["probe.optimizer.lr=0.5"]);
    let [one] = plans(&c) else { panic!() };
    let spans = &one.plan.spans;
    let at = |s: S| {
        let f = spans.file(s).unwrap();
        let span = spans.get(s).unwrap();
        (f.name.clone(), f.text[span.start..span.end].to_string())
    };
    assert!(at(S::Device).0.ends_with("top.psy"));
    assert_eq!(at(S::Device).1, "cpu");
    assert!(
        at(S::Weights).0.ends_with("lib/lab.psy"),
        "{:?}",
        at(S::Weights)
    );
    assert_eq!(at(S::Weights).1, "random");
    assert_eq!(at(S::Lr), ("--set".to_string(), "0.5".to_string()));
    // A diagnostic made at run time from them shows that file.
    let d = spans.label(
        Diag::error(Code::RunWeightsFile, "x"),
        S::Weights,
        &SourceFile::new("top.psy", ""),
        "here",
    );
    assert!(d.source_name().unwrap().ends_with("lib/lab.psy"));
}
