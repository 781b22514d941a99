//! `psyrun run` of experiments built with the language of issue 14: an import, `extends`, a
//! sweep, `--set`; how the runner of a sweep calls it (`psyrun run FILE --condition ID --out
//! DIR [--set …]`), the copies of the sources and what the manifest records.

use super::{scratch, text, tiny, write, SGD};
use std::fs;
use std::path::Path;

/// `common/lab.psy` (the tiny experiment as a template) and `sweep.psy`, which imports and
/// extends it and sweeps the seed over two values.
fn sweep_files(dir: &Path) {
    fs::create_dir_all(dir.join("common")).unwrap();
    write(dir, "common/lab.psy", &tiny("lab", "", SGD));
    write(
        dir,
        "sweep.psy",
        "psy 1\nimport \"common/lab.psy\"\n\nexperiment seeds extends lab {\n  sweep { seed [3, 4] }\n}\n",
    );
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// The id `psyrun plan --set …` lists for condition `k` (from 1).
fn condition_id(dir: &Path, k: usize, set: &[&str]) -> String {
    let mut args = vec!["plan", "sweep.psy", "--format", "json"];
    for s in set {
        args.extend(["--set", s]);
    }
    let o = super::run_in(dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[k - 1]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_sweep_needs_a_condition_and_runs_the_one_named_with_its_sources() {
    let dir = scratch("sweep-condition");
    sweep_files(&dir);
    // Without --condition: refused before anything is written.
    let o = super::run_in(&dir, &["run", "sweep.psy", "--out", "out"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("psy::plan::condition") && err.contains("sweeps 2 conditions"),
        "{err}"
    );
    assert!(err.contains("--condition"), "{err}");
    assert!(!dir.join("out").exists());
    // An unknown condition.
    let o = super::run_in(
        &dir,
        &["run", "sweep.psy", "--condition", "3", "--out", "out"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("there is no condition 3"));
    // By id, as the sweep runner calls it, with an override: ids are those of the plans
    // with the overrides applied, so an id listed without them names no condition here.
    let plain = condition_id(&dir, 2, &[]);
    let o = super::run_in(
        &dir,
        &[
            "run",
            "sweep.psy",
            "--condition",
            &plain,
            "--out",
            "out",
            "--set",
            "probe.epochs=1",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let id = condition_id(&dir, 2, &["probe.epochs=1"]);
    assert_ne!(id, plain);
    let o = super::run_in(
        &dir,
        &[
            "run",
            "sweep.psy",
            "--condition",
            &id,
            "--out",
            "out",
            "--set",
            "probe.epochs=1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = dir.join("out");
    let plan = fs::read_to_string(out.join("plan.ron")).unwrap();
    assert!(
        plan.contains("seed: 4,") && plan.contains("epochs: 1,"),
        "{plan}"
    );
    assert!(plan.contains("experiment: \"seeds\""), "{plan}");
    let m = manifest(&out);
    assert_eq!(m["overrides"], serde_json::json!(["probe.epochs=1"]));
    assert_eq!(m["condition"]["id"], id.as_str());
    assert_eq!(m["condition"]["index"], 2);
    assert_eq!(m["condition"]["of"], 2);
    assert_eq!(m["condition"]["values"], serde_json::json!([["seed", "4"]]));
    // Every source file, copied with its layout, listed with its hash.
    let sources = m["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert_eq!(sources[0]["path"], "sweep.psy");
    assert_eq!(sources[0]["copy"], "sources/sweep.psy");
    assert_eq!(sources[1]["path"], "common/lab.psy");
    assert_eq!(sources[1]["copy"], "sources/common/lab.psy");
    for s in sources {
        let copy = fs::read(out.join(s["copy"].as_str().unwrap())).unwrap();
        let original = fs::read(dir.join(s["path"].as_str().unwrap())).unwrap();
        assert_eq!(copy, original);
        assert_eq!(
            s["sha256"].as_str().unwrap(),
            psyrun::report::sha256_bytes(&copy)
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn set_overrides_a_single_experiment_and_bad_overrides_are_refused() {
    let dir = scratch("set-run");
    write(&dir, "e.psy", &tiny("e", "", SGD));
    let o = super::run_in(
        &dir,
        &[
            "run",
            "e.psy",
            "--out",
            "out",
            "--set",
            "probe.epochs=1",
            "--set",
            "seed=9",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let m = manifest(&dir.join("out"));
    assert_eq!(
        m["overrides"],
        serde_json::json!(["probe.epochs=1", "seed=9"])
    );
    assert_eq!(m["seed"], 9);
    assert_eq!(m["condition"]["index"], 1);
    assert_eq!(m["condition"]["values"], serde_json::json!([]));
    assert_eq!(m["sources"][0]["copy"], "sources/e.psy");
    // A path that names nothing, and a value out of range: errors of the experiment (exit
    // 1), pointing into the `--set` text.
    let o = super::run_in(
        &dir,
        &["run", "e.psy", "--out", "out2", "--set", "probe.epoch=1"],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("psy::plan::unknown_path") && err.contains("did you mean `probe.epochs`?"),
        "{err}"
    );
    assert!(err.contains("[--set:1:1]"), "{err}");
    let o = super::run_in(
        &dir,
        &["run", "e.psy", "--out", "out2", "--set", "probe.epochs=0"],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("psy::plan::out_of_range") && err.contains("[--set:1:14]"),
        "{err}"
    );
    assert!(!dir.join("out2").exists());
    let _ = fs::remove_dir_all(&dir);
}
