//! Experiments written with `stimulus`, `task`, `level` and `axis` (issue 12), end to end:
//! every experiment of `experiments/` that uses them runs in a small variant and writes its
//! tables under the names of its axis and level; a level a stimulus cannot show stops the
//! run with `psy::run::stimulus`; the same seed gives the same results.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("psyrun-design-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn torch(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psyrun-torch"))
        .args(args)
        .args(["--color", "never"])
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .expect("psyrun-torch starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The header and rows of a CSV file.
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let t = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = t.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

/// Small variants: one epoch of 64 trials, 12 QUEST trials per axis value.
const SMALL: [&str; 6] = [
    "--set",
    "probe.epochs=1",
    "--set",
    "train.samples=64",
    "--set",
    "staircase.trials=12",
];

/// Each experiment of `experiments/` written with a design runs end to end in a small
/// variant; its tables name the axis and the level, one threshold per axis value.
#[test]
fn every_design_experiment_runs_end_to_end() {
    let cases: [(&str, &str, &str, usize); 6] = [
        ("masking_dipper", "pedestal", "increment", 5),
        (
            "orientation_discrimination",
            "frequency_cpi",
            "orientation_offset",
            4,
        ),
        ("vernier_acuity", "length_px", "offset", 3),
        ("vernier_crowding", "spacing_px", "offset", 4),
        (
            "frequency_discrimination",
            "frequency_cpi",
            "weber_fraction",
            3,
        ),
        ("csf_natural_images", "frequency_cpi", "contrast", 4),
    ];
    for (name, axis, level, points) in cases {
        let dir = scratch(name);
        let file = crate::root().join(format!("experiments/{name}.psy"));
        let file = file.to_str().unwrap();
        let mut args = vec!["run", file, "--out", "out"];
        args.extend(SMALL);
        let o = torch(&dir, &args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}:\n{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        let out = dir.join("out");
        assert!(!out.join("INCOMPLETE").exists(), "{name}");
        let (header, rows) = csv(&out.join("csf.csv"));
        assert_eq!(header[0], axis, "{name}: {header:?}");
        assert_eq!(
            header[1],
            format!("threshold_{level}"),
            "{name}: {header:?}"
        );
        assert_eq!(rows.len(), points, "{name}");
        let (header, rows) = csv(&out.join("staircase.csv"));
        assert_eq!((&*header[0], &*header[2]), (axis, level), "{name}");
        // 12 trials per axis value, one per row (QUEST).
        assert_eq!(rows.len(), 12 * points, "{name}");
        let (header, _) = csv(&out.join("psychometric.csv"));
        assert_eq!((&*header[0], &*header[2]), (axis, level), "{name}");
        let (_, epochs) = csv(&out.join("training.csv"));
        assert_eq!(epochs.len(), 1, "{name}");
        let plan = fs::read_to_string(out.join("plan.ron")).unwrap();
        assert!(plan.contains("design: Design("), "{name}");
        assert!(
            !plan.contains("train: Train("),
            "{name}: a design's plan shows no shapes"
        );
        let results: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
        assert!(results.is_object(), "{name}");
        for f in ["preview.png", "csf.png", "psychometric.png", "report.html"] {
            assert!(out.join(f).is_file(), "{name}: {f}");
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A masking experiment whose pedestal plus the largest increment exceeds contrast 1.
const TOO_BRIGHT: &str = "psy 1
experiment too_bright {
  device cpu
  backbone resnet18 { weights random  cut layer1  pooling avg 1x1 }
  probe linear { epochs 1  batch 16 }
  display { size 32 }
  stimulus pedestal grating { frequency 4  contrast axis }
  stimulus increment grating { like pedestal  contrast axis + level }
  task 2afc { stimuli [pedestal, increment] }
  level increment
  axis pedestal [0.9]
  train { samples 16  level uniform(0.01, 0.05) }
  staircase constant { levels [0.05, 0.5]  repeats 1 }
}
";

/// A level the stimuli cannot show (a grating contrast of 1.4) stops the run with
/// `psy::run::stimulus`, naming the stimulus, the parameter, the level and the axis value,
/// and leaves the run folder marked incomplete.
#[test]
fn a_level_a_stimulus_cannot_show_stops_the_run() {
    let dir = scratch("too_bright");
    fs::write(dir.join("too_bright.psy"), TOO_BRIGHT).unwrap();
    let o = torch(&dir, &["run", "too_bright.psy", "--out", "out"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("psy::run::stimulus"), "{err}");
    assert!(err.contains("stimulus `increment`"), "{err}");
    assert!(err.contains("contrast"), "{err}");
    assert!(err.contains("axis 0.9"), "{err}");
    assert!(dir.join("out/INCOMPLETE").exists());
    // The lower level was measured before: its trials are in the partial results.
    let (_, rows) = csv(&dir.join("out/staircase.csv"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let _ = fs::remove_dir_all(&dir);
}

/// The same seed gives byte-identical tables; another seed does not.
#[test]
fn a_design_run_is_reproducible() {
    let dir = scratch("repro");
    let file = crate::root().join("experiments/orientation_discrimination.psy");
    let file = file.to_str().unwrap();
    let mut tables = Vec::new();
    for (out, seed) in [("a", "0"), ("b", "0"), ("c", "1")] {
        let set_seed = format!("seed={seed}");
        let mut args = vec!["run", file, "--out", out, "--set", &set_seed];
        args.extend(SMALL);
        args.extend(["--set", "display.size=32"]);
        let o = torch(&dir, &args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        tables.push(fs::read_to_string(dir.join(out).join("staircase.csv")).unwrap());
    }
    assert_eq!(tables[0], tables[1]);
    assert_ne!(tables[0], tables[2]);
    let _ = fs::remove_dir_all(&dir);
}

/// A tiny experiment of task `task` read out by `readout` (`probe` or a distance): two
/// gratings, the target's contrast the reference's times the level, method of constant
/// stimuli at a level of 1 (the target is the reference, to the bit) and one of 4 (plainly
/// visible), a deterministic observer.
fn task_experiment(task: &str, readout: &str) -> String {
    let (probe, train) = if readout == "probe" {
        (
            "probe linear { epochs 2  batch 16  optimizer adam { lr 0.01 } }",
            "train { samples 64  level uniform(3, 5) }",
        )
    } else {
        ("", "")
    };
    let readout = if readout == "probe" {
        String::new()
    } else {
        format!("readout {readout}")
    };
    format!(
        "psy 1
experiment tasks {{
  device cpu
  backbone resnet18 {{ weights random  cut layer1  pooling avg 2x2 }}
  {probe}
  {readout}
  display {{ size 32 }}
  stimulus reference grating {{ frequency axis  contrast 0.1 }}
  stimulus target grating {{ like reference  contrast 0.1 * level }}
  task {task}
  level ratio
  axis frequency [4]
  {train}
  staircase constant {{ levels [1, 4]  repeats 2 }}
  observer {{ decision deterministic }}
  fit none {{}}
}}
"
    )
}

/// Every task runs with a trained probe and with a distance readout: its tables hold one
/// row per level with `repeats ×` its conditions as trials, and with a deterministic
/// distance readout the answers are the readout's: at level 1 (nothing to see) the task's
/// chance share of conditions is right, at 4 every trial is (a probe is trained, so it
/// must only beat chance there).
#[test]
fn every_task_runs_with_a_probe_and_with_a_distance() {
    // task, conditions, proportion right at level 1 with a distance (ties go to the first
    // answer: the first interval, "same", "absent").
    let tasks: [(&str, u32, f64); 5] = [
        ("2afc { stimuli [reference, target] }", 2, 0.5),
        ("nafc { stimuli [reference, target]  intervals 4 }", 4, 0.25),
        (
            "oddity { stimuli [reference, target]  intervals 3 }",
            3,
            1.0 / 3.0,
        ),
        ("same_different { stimuli [reference, target] }", 4, 0.5),
        ("yes_no { stimuli [reference, target] }", 2, 0.5),
    ];
    let dir = scratch("tasks");
    for (task, conditions, at_zero) in tasks {
        // (Cosine distances and dot products need not grow with a contrast increment, which
        // mostly scales features: the metrics' own values are tested in the interpreter.)
        for readout in ["probe", "l2", "l1"] {
            let name = format!("{}_{readout}", task.split(' ').next().unwrap());
            fs::write(
                dir.join(format!("{name}.psy")),
                task_experiment(task, readout),
            )
            .unwrap();
            let o = torch(&dir, &["run", &format!("{name}.psy"), "--out", &name]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{name}:\n{}\n{}",
                text(&o.stdout),
                text(&o.stderr)
            );
            let (header, rows) = csv(&dir.join(&name).join("psychometric.csv"));
            assert_eq!(
                &header[..5],
                ["frequency_cpi", "repeat", "ratio", "trials", "correct"]
            );
            assert_eq!(rows.len(), 2, "{name}: {rows:?}");
            let trials: Vec<u32> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
            let correct: Vec<u32> = rows.iter().map(|r| r[4].parse().unwrap()).collect();
            assert_eq!(trials, [2 * conditions, 2 * conditions], "{name}");
            let p = |i: usize| f64::from(correct[i]) / f64::from(trials[i]);
            if readout == "probe" {
                let chance = 1.0
                    / f64::from(if task.starts_with("nafc") {
                        4
                    } else if task.starts_with("oddity") {
                        3
                    } else {
                        2
                    });
                assert!(p(1) > chance, "{name}: {rows:?}");
                let (_, epochs) = csv(&dir.join(&name).join("training.csv"));
                assert_eq!(epochs.len(), 2, "{name}");
            } else {
                assert!((p(0) - at_zero).abs() < 1e-9, "{name} at level 1: {rows:?}");
                assert_eq!(p(1), 1.0, "{name} at level 4: {rows:?}");
                assert!(
                    !dir.join(&name).join("training.csv").exists() || {
                        let (_, epochs) = csv(&dir.join(&name).join("training.csv"));
                        epochs.is_empty()
                    }
                );
            }
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A TorchScript backbone's shapes are known only once the module is loaded; the saved plan
/// then sizes the probe by the task (four intervals side by side, four logits), not by the
/// tutorial's two images.
#[test]
fn a_torchscript_backbone_in_a_design_sizes_the_probe_by_the_task() {
    let dir = scratch("torchscript-task");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torchscript/tiny_cnn.pt"),
        dir.join("cnn.pt"),
    )
    .unwrap();
    let body = task_experiment("nafc { stimuli [reference, target]  intervals 4 }", "probe")
        .replace(
            "backbone resnet18 { weights random  cut layer1  pooling avg 2x2 }",
            "backbone torchscript \"cnn.pt\" { pooling avg 2x2 }",
        );
    assert!(body.contains("torchscript"), "{body}");
    fs::write(dir.join("ts.psy"), body).unwrap();
    let o = torch(&dir, &["run", "ts.psy", "--out", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // tiny_cnn at 32 px: 16×16×16, pooled to 16×2×2 = 64 features per image.
    let plan = fs::read_to_string(dir.join("a/plan.ron")).unwrap();
    let compact: String = plan.split_whitespace().collect();
    assert!(compact.contains("features_per_image:Some(64)"), "{plan}");
    assert!(compact.contains("probe_inputs:Some(256)"), "{plan}");
    assert!(compact.contains("probe_parameters:Some(1028)"), "{plan}");
    let _ = fs::remove_dir_all(&dir);
}
