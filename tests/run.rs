//! `psyrun run` end to end on libtorch (CPU): tiny experiments that finish in about a
//! second, the run folder they leave, reproducibility, and every run-time diagnostic.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod language;
#[cfg(unix)]
mod resume;

/// A tiny experiment: every stage of contrast_csf.psy at 32 px.
pub(crate) fn tiny(name: &str, extra_backbone: &str, probe: &str) -> String {
    format!(
        "psy 1
experiment {name} {{
  seed 3
  device cpu
  backbone resnet18 {{
    weights random
    cut layer1
    pooling avg 2x2
    {extra_backbone}
  }}
  probe linear {{
    {probe}
    epochs 2
    batch 16
  }}
  train shapes {{ size 32  samples 64 }}
  test gratings {{
    size 32
    frequencies [2, 4, 8]
    orientations [0deg, 90deg]
    phases [0deg, 180deg]
    target_interval both
  }}
  staircase bisection {{ target 0.75  tolerance 0.01  max_steps 5 }}
}}
"
    )
}

pub(crate) const SGD: &str = "optimizer sgd { lr 0.01  momentum 0.9 }";

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("psyrun-run-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn torch_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_psyrun-torch"));
    c.args(args)
        .arg("--color")
        .arg("never")
        .current_dir(dir)
        .env_remove("NO_COLOR");
    c
}

pub(crate) fn run_in(dir: &Path, args: &[&str]) -> Output {
    torch_cmd(dir, args).output().expect("psyrun-torch starts")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    p
}

/// A CSV file without its last eight columns (the run's identity: experiment, backbone,
/// seed, …), to compare the numbers of runs that differ in a setting.
pub(crate) fn without_identity(csv: &str) -> String {
    csv.lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            cells[..cells.len() - 8].join(",") + "\n"
        })
        .collect()
}

pub(crate) fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const RESULT_FILES: [&str; 20] = [
    "csf.csv",
    "csf.png",
    "csf.svg",
    "csf_linear.png",
    "csf_linear.svg",
    "journal.jsonl",
    "manifest.json",
    "plan.ron",
    "preview.png",
    "psychometric.csv",
    "psychometric.png",
    "psychometric.svg",
    "report.html",
    "results.json",
    "sources",
    "staircase.csv",
    "thresholds.csv",
    "training.csv",
    "training.png",
    "training.svg",
];

#[test]
fn tiny_experiment_runs_end_to_end_and_writes_every_file() {
    let dir = scratch("e2e");
    write(&dir, "tiny.psy", &tiny("tiny", "", SGD));
    let o = run_in(&dir, &["run", "tiny.psy", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = dir.join("out");
    let names = files(&out);
    assert_eq!(
        names, RESULT_FILES,
        "exactly the result files, no INCOMPLETE, no temp files"
    );

    let stdout = text(&o.stdout);
    assert!(stdout.contains("frequency (c/img)"), "{stdout}");
    assert!(stdout.contains("results: out"), "{stdout}");

    // training.csv: a header and one row per epoch, accuracies in [0, 1].
    let training = fs::read_to_string(out.join("training.csv")).unwrap();
    let rows: Vec<&str> = training.lines().collect();
    assert_eq!(
        rows[0],
        "epoch,loss,accuracy,repeat,\
         experiment,architecture,cut,weights,pooling,precision,seed,reference,condition_id"
    );
    assert_eq!(rows.len(), 3, "{training}");
    for (i, row) in rows[1..].iter().enumerate() {
        let v: Vec<f64> = row.split(',').take(4).map(|x| x.parse().unwrap()).collect();
        assert_eq!(v[0], (i + 1) as f64);
        assert_eq!(v[3], 0.0, "one repeat");
        assert!(v[1].is_finite() && v[1] > 0.0);
        assert!((0.0..=1.0).contains(&v[2]));
    }

    // csf.csv: one row per frequency, sensitivity = 1 / threshold.
    let csf = fs::read_to_string(out.join("csf.csv")).unwrap();
    let rows: Vec<Vec<String>> = csf
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{csf}");
    for (row, f) in rows.iter().zip([2.0, 4.0, 8.0]) {
        let freq: f64 = row[0].parse().unwrap();
        let threshold: f64 = row[1].parse().unwrap();
        let sensitivity: f64 = row[2].parse().unwrap();
        assert_eq!(freq, f);
        assert!(threshold > 0.0 && threshold < 1.0, "{csf}");
        assert!((sensitivity * threshold - 1.0).abs() < 1e-12, "{csf}");
    }

    // staircase.csv: the bisection's contrasts, the first at the start (0.5), each next
    // one halfway towards low or high, at most max_steps + 1 per frequency.
    let stairs = fs::read_to_string(out.join("staircase.csv")).unwrap();
    let mut by_freq: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for l in stairs.lines().skip(1) {
        let v: Vec<&str> = l.split(',').collect();
        by_freq
            .entry(v[0].to_owned())
            .or_default()
            .push((v[2].parse().unwrap(), v[3].parse().unwrap()));
    }
    assert_eq!(by_freq.len(), 3);
    for steps in by_freq.values() {
        assert!(!steps.is_empty() && steps.len() <= 6, "{stairs}");
        assert_eq!(steps[0].0, 0.5);
        for w in steps.windows(2) {
            // 16 trials per level: accuracies are multiples of 1/16.
            assert_eq!((w[0].1 * 16.0).fract(), 0.0);
            if w[0].1 > 0.75 {
                assert!(w[1].0 < w[0].0, "{stairs}");
            } else {
                assert!(w[1].0 > w[0].0, "{stairs}");
            }
        }
    }

    // The manifest says what ran.
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["complete"], true);
    assert_eq!(m["device"], "cpu");
    assert_eq!(m["seed"], 3);
    assert_eq!(m["weights"], "random");
    assert!(m["finished"].is_string());
    assert_eq!(m["experiment_sha256"].as_str().unwrap().len(), 64);
    let phases: Vec<&str> = m["phase_seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["setup", "training", "testing", "fitting"]);
    // PNGs are PNGs.
    for png in ["csf.png", "training.png", "preview.png"] {
        assert!(fs::read(out.join(png)).unwrap().starts_with(b"\x89PNG"));
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn same_seed_gives_identical_results_and_another_seed_does_not() {
    let dir = scratch("repro");
    write(&dir, "tiny.psy", &tiny("tiny", "", SGD));
    let other = tiny("tiny", "", SGD).replace("seed 3", "seed 4");
    write(&dir, "other.psy", &other);
    let mut csv = Vec::new();
    for (file, out) in [("tiny.psy", "a"), ("tiny.psy", "b"), ("other.psy", "c")] {
        let o = run_in(&dir, &["run", file, "--out", out]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let read = |n: &str| fs::read_to_string(dir.join(out).join(n)).unwrap();
        csv.push((read("training.csv"), read("staircase.csv"), read("csf.csv")));
    }
    assert_eq!(csv[0], csv[1], "same seed, same numbers");
    assert_ne!(
        without_identity(&csv[0].0),
        without_identity(&csv[2].0),
        "another seed trains on other stimuli"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// `--threads N` sets libtorch's threads (recorded in the manifest; the default is one per
/// core), here through the front end's `psyrun FILE`, which hands the same command line to
/// psyrun-torch; a count of 0 is refused before anything is written.
#[test]
fn threads_are_chosen_with_a_flag_and_recorded() {
    let dir = scratch("threads");
    write(&dir, "tiny.psy", &tiny("tiny", "", SGD));
    let threads = |out: &str| {
        let m = fs::read_to_string(dir.join(out).join("manifest.json")).unwrap();
        let m: serde_json::Value = serde_json::from_str(&m).unwrap();
        m["threads"].as_u64().unwrap()
    };
    let o = Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .args([
            "tiny.psy",
            "--threads",
            "1",
            "--out",
            "front",
            "--color",
            "never",
        ])
        .current_dir(&dir)
        .env("PSYRUN_TORCH_BIN", env!("CARGO_BIN_EXE_psyrun-torch"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(threads("front"), 1);
    let o = run_in(
        &dir,
        &["run", "tiny.psy", "--out", "zero", "--threads", "0"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("not a thread count"),
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.join("zero").exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn default_folder_is_runs_experiment_timestamp() {
    let dir = scratch("default");
    write(&dir, "tiny.psy", &tiny("my_exp", "", SGD));
    // `psyrun FILE` is `psyrun run FILE`; the front end hands it to psyrun-torch.
    let o = Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .arg("tiny.psy")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let runs = dir.join("runs/my_exp");
    let stamps = files(&runs);
    assert_eq!(stamps.len(), 1);
    assert_eq!(stamps[0].len(), "20261128-234603".len(), "{stamps:?}");
    assert!(runs.join(&stamps[0]).join("csf.csv").is_file());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn batchnorm_train_reproduces_the_tutorial_mode_and_changes_the_result() {
    let dir = scratch("bn");
    write(&dir, "eval.psy", &tiny("t", "", SGD));
    write(&dir, "train.psy", &tiny("t", "batchnorm train", SGD));
    for (f, out) in [("eval.psy", "e"), ("train.psy", "t")] {
        let o = run_in(&dir, &["run", f, "--out", out]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    }
    let read = |o: &str| fs::read_to_string(dir.join(o).join("training.csv")).unwrap();
    // Batch statistics change what the probe sees, so training differs.
    assert_ne!(read("e"), read("t"));
    let _ = fs::remove_dir_all(&dir);
}

/// A minimal `.safetensors` writer: (name, shape, f32 values).
fn safetensors(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (name, shape, values)) in tensors.iter().enumerate() {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape:?},\"data_offsets\":[{start},{}]}}",
            data.len()
        ));
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

fn stderr_of_failure(dir: &Path, file: &str, code: i32) -> String {
    let o = run_in(dir, &["run", file, "--out", "out"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    err
}

#[test]
fn missing_weights_file_points_at_the_weights_setting_and_writes_nothing() {
    let dir = scratch("missing");
    let body = tiny("t", "", SGD).replace("weights random", "weights \"nets/absent.safetensors\"");
    write(&dir, "t.psy", &body);
    let err = stderr_of_failure(&dir, "t.psy", 3);
    assert!(err.contains("psy::run::weights_file"), "{err}");
    assert!(err.contains("absent.safetensors"), "{err}");
    assert!(err.contains("this weights file cannot be read"), "{err}");
    assert!(err.contains("t.psy:6:"), "points at line 6: {err}");
    assert!(
        !dir.join("out").exists(),
        "no run folder for a run that never started"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn weights_that_do_not_fit_list_every_problem() {
    let dir = scratch("mismatch");
    let bytes = safetensors(&[
        ("conv1.weight", vec![64, 3, 3, 3], vec![0.0; 64 * 27]),
        ("bn1.weight", vec![64], vec![1.0; 64]),
        ("not.a.resnet.key", vec![1], vec![0.0]),
    ]);
    fs::write(dir.join("bad.safetensors"), bytes).unwrap();
    let body = tiny("t", "", SGD).replace("weights random", "weights \"bad.safetensors\"");
    write(&dir, "t.psy", &body);
    let err = stderr_of_failure(&dir, "t.psy", 3);
    assert!(err.contains("psy::run::weights_mismatch"), "{err}");
    assert!(err.contains("conv1.weight"), "shape mismatch listed: {err}");
    assert!(err.contains("[64, 3, 7, 7]"), "{err}");
    assert!(
        err.contains("not.a.resnet.key"),
        "unexpected key listed: {err}"
    );
    assert!(err.contains("bn1.bias"), "missing key listed: {err}");
    assert!(err.contains("layer1.0.conv1.weight"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn pth_checkpoints_run_end_to_end_and_garbage_is_a_weights_file_error() {
    let dir = scratch("pth");
    fs::write(dir.join("bad.pth"), b"PK\x03\x04").unwrap();
    let bad = tiny("t", "", SGD).replace("weights random", "weights \"bad.pth\"");
    write(&dir, "bad.psy", &bad);
    let err = stderr_of_failure(&dir, "bad.psy", 3);
    assert!(err.contains("psy::run::weights_file"), "{err}");
    assert!(err.contains("bad.pth"), "{err}");
    assert!(err.contains("not a usable PyTorch checkpoint"), "{err}");
    assert!(!dir.join("out").exists(), "nothing written");

    // A real `torch.save(resnet18().state_dict())`, made by the venv's python (PSYRUN_PYTHON
    // under ./dev); only where the build found that python (else this half is left out).
    if !cfg!(psyrun_python_tests) {
        eprintln!(
            "left out: the torch.save half of pth_checkpoints_run_end_to_end needs python with \
             torch and torchvision (run the tests under ./dev)"
        );
        let _ = fs::remove_dir_all(&dir);
        return;
    }
    let script = crate::root().join("scripts/checkpoint_fixtures.py");
    let made = Command::new(std::env::var_os("PSYRUN_PYTHON").unwrap_or_else(|| "python3".into()))
        .arg(&script)
        .args(["save", "resnet18"])
        .arg(dir.join("net.pth"))
        .output()
        .expect("python starts");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let net = tiny("t", "", SGD).replace("weights random", "weights \"net.pth\"");
    write(&dir, "net.psy", &net);
    let o = run_in(&dir, &["run", "net.psy", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(files(&dir.join("out")), RESULT_FILES);
    let manifest = fs::read_to_string(dir.join("out/manifest.json")).unwrap();
    assert!(manifest.contains("\"net.pth\""), "{manifest}");
    let _ = fs::remove_dir_all(&dir);
}

/// The tiny experiment with `backbone torchscript "FILE" { … }` instead of resnet18.
fn tiny_script(name: &str, file: &str, extra_backbone: &str) -> String {
    tiny(name, extra_backbone, SGD).replace(
        "backbone resnet18 {\n    weights random\n    cut layer1\n",
        &format!("backbone torchscript \"{file}\" {{\n"),
    )
}

/// A committed fixture (scripts/checkpoint_fixtures.py torchscript), copied into `dir`.
fn fixture(dir: &Path, name: &str) {
    let src = crate::root().join("tests/fixtures/torchscript").join(name);
    fs::copy(src, dir.join(name)).unwrap();
}

#[test]
fn torchscript_backbones_run_end_to_end() {
    let dir = scratch("torchscript");
    fixture(&dir, "tiny_cnn.pt");
    let body = tiny_script("ts", "tiny_cnn.pt", "");
    assert!(
        body.contains("backbone torchscript \"tiny_cnn.pt\" {"),
        "{body}"
    );
    write(&dir, "ts.psy", &body);
    let o = run_in(&dir, &["run", "ts.psy", "--out", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(files(&dir.join("a")), RESULT_FILES);
    // The saved plan has the shapes only loading the module could tell: 16×16×16 at 32 px
    // (a stride-2 convolution), pooled to 16×2×2.
    let plan = fs::read_to_string(dir.join("a/plan.ron")).unwrap();
    let compact: String = plan.split_whitespace().collect();
    assert!(compact.contains("cut_shape:Some([16,16,16,])"), "{plan}");
    assert!(compact.contains("feature_shape:Some([16,2,2,])"), "{plan}");
    assert!(compact.contains("probe_inputs:Some(128)"), "{plan}");
    let manifest = fs::read_to_string(dir.join("a/manifest.json")).unwrap();
    assert!(
        manifest.contains("\"torchscript tiny_cnn.pt\""),
        "{manifest}"
    );
    let bytes = fs::read(dir.join("tiny_cnn.pt")).unwrap();
    let sha = psyrun::report::sha256_bytes(&bytes);
    assert!(
        manifest.contains(&sha),
        "the module's hash {sha}: {manifest}"
    );
    // The same run again gives the same numbers.
    let o = run_in(&dir, &["run", "ts.psy", "--out", "b"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let csf = |f: &str| fs::read_to_string(dir.join(f).join("csf.csv")).unwrap();
    assert_eq!(csf("a"), csf("b"));
    // `batchnorm train` reaches the scripted module's BatchNorm: training differs.
    write(
        &dir,
        "bn.psy",
        &tiny_script("ts", "tiny_cnn.pt", "batchnorm train"),
    );
    let o = run_in(&dir, &["run", "bn.psy", "--out", "c"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let training = |f: &str| fs::read_to_string(dir.join(f).join("training.csv")).unwrap();
    assert_ne!(training("a"), training("c"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn torchscript_files_that_do_not_fit_are_diagnosed_before_anything_is_written() {
    let dir = scratch("torchscript-bad");
    fixture(&dir, "tuple.pt");
    fixture(&dir, "tiny_cnn.pt");
    fs::write(
        dir.join("sd.pth"),
        fs::read(crate::root().join("tests/fixtures/checkpoint/mixed.pth")).unwrap(),
    )
    .unwrap();
    let cases = [
        ("missing.pt", "", "missing.pt: No such file"),
        (
            "sd.pth",
            "",
            "is a torch.save checkpoint (e.g. a state dict), not TorchScript",
        ),
        ("tuple.pt", "", "it returns a tuple of 2, not one tensor"),
        ("tiny_cnn.pt", "", ""),
    ];
    for (i, (file, extra, message)) in cases.iter().enumerate() {
        let mut body = tiny_script("ts", file, extra);
        if message.is_empty() {
            // Pooling larger than the 16×16 map.
            body = body.replace("pooling avg 2x2", "pooling avg 20x20");
        }
        let name = format!("t{i}.psy");
        write(&dir, &name, &body);
        let err = stderr_of_failure(&dir, &name, 3);
        assert!(err.contains("psy::run::torchscript"), "{err}");
        let message = if message.is_empty() {
            "pooling to 20x20 is larger than its 16x16 feature map at 32 px"
        } else {
            message
        };
        assert!(err.contains(message), "{file}: {err}");
        assert!(
            err.contains(&format!("{name}:5:")),
            "points at the backbone: {err}"
        );
        assert!(!dir.join("out").exists(), "{file}: nothing written");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn precision_and_peak_memory_are_recorded_and_tf32_changes_nothing_on_the_cpu() {
    let dir = scratch("precision");
    let with =
        |p: &str| tiny("t", "", SGD).replace("device cpu", &format!("device cpu\n  precision {p}"));
    write(&dir, "fp32.psy", &tiny("t", "", SGD));
    write(&dir, "tf32.psy", &with("tf32"));
    write(&dir, "bf16.psy", &with("bf16"));
    for p in ["fp32", "tf32", "bf16"] {
        let o = run_in(&dir, &["run", &format!("{p}.psy"), "--out", p]);
        assert_eq!(o.status.code(), Some(0), "{p}: {}", text(&o.stderr));
        let m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join(p).join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(m["precision"], p, "{m}");
        let peak = m["peak_rss_bytes"].as_u64().expect("peak memory recorded");
        assert!(
            peak > 100 << 20 && peak < 64 << 30,
            "{p}: peak {peak} bytes"
        );
    }
    // The numbers, without the identity (whose `precision` differs).
    let read =
        |p: &str, f: &str| without_identity(&fs::read_to_string(dir.join(p).join(f)).unwrap());
    // A CPU has no TensorFloat-32: identical numbers.
    assert_eq!(read("fp32", "training.csv"), read("tf32", "training.csv"));
    assert_eq!(read("fp32", "csf.csv"), read("tf32", "csf.csv"));
    // bfloat16 features differ in the third digit: the loss does too.
    assert_ne!(read("fp32", "training.csv"), read("bf16", "training.csv"));
    let _ = fs::remove_dir_all(&dir);
}

/// The stimulus path that CUDA runs use (tensor operations on the device), forced on the
/// CPU: the same images, so the same numbers as the host renderer, in training and testing.
#[test]
fn device_side_stimuli_give_the_host_results() {
    let dir = scratch("device-stimuli");
    // 0° and 180° at phase 0 are the same image: deduplication is exercised too.
    let body = tiny("t", "", SGD).replace(
        "orientations [0deg, 90deg]",
        "orientations [0deg, 90deg, 180deg]",
    );
    write(&dir, "t.psy", &body);
    for (place, out) in [("host", "h"), ("device", "d")] {
        let o = torch_cmd(&dir, &["run", "t.psy", "--out", out])
            .env("PSYRUN_STIMULI", place)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{place}: {}", text(&o.stderr));
        let m = fs::read_to_string(dir.join(out).join("manifest.json")).unwrap();
        assert!(m.contains(&format!("\"stimuli\": \"{place}\"")), "{m}");
        assert!(
            text(&o.stderr).contains("of them distinct"),
            "{}",
            text(&o.stderr)
        );
    }
    for f in ["training.csv", "staircase.csv", "csf.csv"] {
        let read = |o: &str| fs::read_to_string(dir.join(o).join(f)).unwrap();
        assert_eq!(
            read("h"),
            read("d"),
            "{f} differs between host and device stimuli"
        );
    }
    let o = torch_cmd(&dir, &["run", "t.psy", "--out", "x"])
        .env("PSYRUN_STIMULI", "gpu")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("PSYRUN_STIMULI=gpu is not a place"),
        "{}",
        text(&o.stderr)
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn torchvision_weights_not_cached_and_offline_say_where_to_put_the_file() {
    let dir = scratch("tv");
    // A closed port on 127.0.0.1 stands for the unreachable server.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/models", port.local_addr().unwrap());
    drop(port);
    let tv = tiny("t", "", SGD).replace("weights random", "weights imagenet");
    write(&dir, "tv.psy", &tv);
    let o = torch_cmd(&dir, &["run", "tv.psy", "--out", "out"])
        .env("TORCH_HOME", dir.join("torch"))
        .env("PSYRUN_WEIGHTS_URL", &url)
        .output()
        .expect("psyrun-torch starts");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("psy::run::weights_download"), "{err}");
    // The message is wrapped to the terminal's width: compare without line breaks.
    let flat: String = err
        .lines()
        .map(|l| l.trim_start_matches([' ', '│']))
        .collect();
    assert!(flat.contains("resnet18-f37072fd.pth"), "{err}");
    assert!(
        flat.contains(&format!("{url}/resnet18-f37072fd.pth")),
        "{err}"
    );
    let folder = dir.join("torch/hub/checkpoints");
    assert!(flat.contains(&folder.display().to_string()), "{err}");
    assert!(
        err.contains("weights imagenet"),
        "points at the setting: {err}"
    );
    assert!(folder.is_dir(), "the folder to put the file in exists");
    assert_eq!(files(&folder), Vec::<String>::new(), "no partial file");
    assert!(!dir.join("out").exists(), "nothing written");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn cuda_asked_for_on_a_machine_without_it() {
    // cuda:63 exists nowhere; on a machine without CUDA, cuda:0 does not either.
    let dir = scratch("cuda");
    let with_cuda = tch_cuda_available(&dir);
    for n in [0, 63] {
        if n == 0 && with_cuda {
            continue;
        }
        write(
            &dir,
            "t.psy",
            &tiny("t", "", SGD).replace("device cpu", &format!("device cuda:{n}")),
        );
        // A run failure (3): 4 is only for what this build cannot do.
        let err = stderr_of_failure(&dir, "t.psy", 3);
        // The message as one line (miette wraps it).
        let flat = err
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(err.contains("psy::run::no_cuda"), "{err}");
        assert!(flat.contains(&format!("`cuda:{n}` asked for")), "{err}");
        let why = if with_cuda {
            "CUDA device(s): cuda:0 to"
        } else {
            "no usable CUDA device"
        };
        assert!(flat.contains(why), "{err}");
        assert!(err.contains("CUDA device asked for here"), "{err}");
        assert!(err.contains("device auto"), "{err}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// On a machine with CUDA: the tiny experiment on the GPU, with stimuli made there (the
/// default) and made on the host, in every precision. Ignored where the build found no GPU.
#[test]
#[cfg_attr(
    not(psyrun_cuda_tests),
    ignore = "needs a CUDA GPU (nvidia-smi at build time, or PSYRUN_TEST_CUDA=1)"
)]
fn cuda_runs_complete_in_every_precision_when_a_gpu_exists() {
    let dir = scratch("cuda-run");
    assert!(
        tch_cuda_available(&dir),
        "a GPU was found at build time, but libtorch sees no CUDA device"
    );
    let cuda = |p: &str| {
        tiny("t", "", SGD).replace("device cpu", &format!("device cuda:0\n  precision {p}"))
    };
    let mut csfs = Vec::new();
    for (p, place) in [("fp32", ""), ("fp32", "host"), ("tf32", ""), ("bf16", "")] {
        let name = format!("{p}{place}");
        write(&dir, &format!("{name}.psy"), &cuda(p));
        let o = torch_cmd(&dir, &["run", &format!("{name}.psy"), "--out", &name])
            .env("PSYRUN_STIMULI", place)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
        let m = fs::read_to_string(dir.join(&name).join("manifest.json")).unwrap();
        assert!(m.contains("\"device\": \"cuda:0"), "{m}");
        assert!(m.contains(&format!("\"precision\": \"{p}\"")), "{m}");
        let want = if place.is_empty() { "device" } else { place };
        assert!(m.contains(&format!("\"stimuli\": \"{want}\"")), "{m}");
        csfs.push(fs::read_to_string(dir.join(&name).join("csf.csv")).unwrap());
    }
    // Stimuli made on the GPU are the host's images: fp32 runs agree.
    assert_eq!(csfs[0], csfs[1], "device and host stimuli on CUDA");
    let _ = fs::remove_dir_all(&dir);
}

fn tch_cuda_available(dir: &Path) -> bool {
    let o = run_in(dir, &["doctor"]);
    text(&o.stdout).contains("CUDA available    yes")
}

#[test]
fn an_output_folder_with_files_is_refused() {
    let dir = scratch("outfolder");
    write(&dir, "t.psy", &tiny("t", "", SGD));
    fs::create_dir_all(dir.join("out")).unwrap();
    fs::write(dir.join("out/keep.txt"), "a previous result").unwrap();
    let err = stderr_of_failure(&dir, "t.psy", 2);
    assert!(err.contains("psy::run::output_folder"), "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert!(
        !err.contains("building"),
        "refused before any work is announced: {err}"
    );
    assert_eq!(files(&dir.join("out")), ["keep.txt"], "nothing touched");
    let _ = fs::remove_dir_all(&dir);
}

/// A file name that is not UTF-8 (clap accepts any path) is written into the manifest
/// lossily; it used to panic (exit 101) when the run read its own command line.
#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_no_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch("nonutf8");
    let name = std::ffi::OsStr::from_bytes(b"t\xff.psy");
    fs::write(dir.join(name), tiny("t", "", SGD)).unwrap();
    // A folder that is refused: the run stops right after reading its command line.
    fs::create_dir_all(dir.join("out")).unwrap();
    fs::write(dir.join("out/keep.txt"), "a previous result").unwrap();
    let o = torch_cmd(&dir, &["run"])
        .arg(name)
        .args(["--out", "out"])
        .output()
        .expect("psyrun-torch starts");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psy::run::output_folder"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_diverging_probe_stops_with_nan_loss_and_keeps_an_incomplete_folder() {
    let dir = scratch("nan");
    let body = tiny("t", "", "optimizer sgd { lr 1e30  momentum 0.9 }");
    write(&dir, "t.psy", &body);
    let err = stderr_of_failure(&dir, "t.psy", 3);
    assert!(err.contains("psy::run::nan_loss"), "{err}");
    assert!(
        err.contains("this learning rate made the loss diverge"),
        "{err}"
    );
    let out = dir.join("out");
    assert!(out.join("INCOMPLETE").is_file());
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["complete"], false);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_probe_that_learns_nothing_gets_the_chance_warning() {
    let dir = scratch("chance");
    // A learning rate so small that the probe stays at its random initialisation.
    write(&dir, "t.psy", &tiny("t", "", "optimizer sgd { lr 1e-12 }"));
    let o = run_in(&dir, &["run", "t.psy", "--out", "out"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "a warning, not an error: {err}");
    assert!(err.contains("psy::run::probe_at_chance"), "{err}");
    assert!(err.contains("barely above chance"), "{err}");
    // Its test accuracy is flat at chance too: the thresholds are the staircase's fallback.
    assert!(err.contains("psy::run::test_at_chance"), "{err}");
    assert!(
        err.contains("stays at chance at every contrast tested"),
        "{err}"
    );
    // The warnings are kept with the results: manifest, results.json, report.html.
    let read = |f: &str| fs::read_to_string(dir.join("out").join(f)).unwrap();
    let m: serde_json::Value = serde_json::from_str(&read("manifest.json")).unwrap();
    let warnings: Vec<&str> = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("psy::run::probe_at_chance: ")),
        "{warnings:?}"
    );
    assert!(read("results.json").contains("psy::run::test_at_chance"));
    assert!(read("report.html").contains("psy::run::probe_at_chance"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_learning_probe_gets_no_test_at_chance_warning() {
    let dir = scratch("not-chance");
    // The probe's own answers (its argmax): after 2 short epochs its softmax is still too
    // flat for the default observer to tell much apart, which the warning would rightly say.
    write(
        &dir,
        "t.psy",
        &tiny_with("t", 1, "  observer { decision deterministic }"),
    );
    let o = run_in(&dir, &["run", "t.psy", "--out", "out"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("psy::run::test_at_chance"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

/// resnet18 weights up to `layer1` (conv weights small, BatchNorm the identity), with
/// `bn1.running_var` set to `bn1_var`.
fn resnet18_layer1_weights(bn1_var: f32) -> Vec<u8> {
    let conv = |n: usize| -> Vec<f32> { (0..n).map(|i| 0.05 * (i as f32 * 0.37).sin()).collect() };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        vec![("conv1.weight".into(), vec![64, 3, 7, 7], conv(64 * 3 * 49))];
    let bn = |tensors: &mut Vec<(String, Vec<usize>, Vec<f32>)>, name: &str, var: f32| {
        tensors.push((format!("{name}.weight"), vec![64], vec![1.0; 64]));
        tensors.push((format!("{name}.bias"), vec![64], vec![0.0; 64]));
        tensors.push((format!("{name}.running_mean"), vec![64], vec![0.0; 64]));
        tensors.push((format!("{name}.running_var"), vec![64], vec![var; 64]));
    };
    bn(&mut tensors, "bn1", bn1_var);
    for block in 0..2 {
        for (conv_name, bn_name) in [("conv1", "bn1"), ("conv2", "bn2")] {
            tensors.push((
                format!("layer1.{block}.{conv_name}.weight"),
                vec![64, 64, 3, 3],
                conv(64 * 64 * 9),
            ));
            bn(&mut tensors, &format!("layer1.{block}.{bn_name}"), 1.0);
        }
    }
    let refs: Vec<(&str, Vec<usize>, Vec<f32>)> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.clone(), v.clone()))
        .collect();
    safetensors(&refs)
}

/// A NaN in a BatchNorm's running statistics survives `batchnorm train` (0.9 · NaN + …) and
/// would make every test level score chance with exit 0; the run stops after training with
/// `psy::run::non_finite` instead, and keeps what it measured.
#[test]
fn nan_batchnorm_statistics_stop_the_run_before_testing() {
    let dir = scratch("nan-bn");
    fs::write(dir.join("w.safetensors"), resnet18_layer1_weights(f32::NAN)).unwrap();
    let body =
        tiny("t", "batchnorm train", SGD).replace("weights random", "weights \"w.safetensors\"");
    write(&dir, "t.psy", &body);
    let err = stderr_of_failure(&dir, "t.psy", 3);
    assert!(err.contains("psy::run::non_finite"), "{err}");
    assert!(err.contains("bn1.running_var"), "{err}");
    assert!(err.contains("not finite after training"), "{err}");
    let out = dir.join("out");
    assert!(out.join("INCOMPLETE").is_file());
    let csf = fs::read_to_string(out.join("csf.csv")).unwrap_or_default();
    assert!(
        csf.lines().count() <= 1,
        "no CSF of NaN-driven numbers: {csf}"
    );
    let t = fs::read_to_string(out.join("training.csv")).unwrap();
    assert_eq!(t.lines().count(), 3, "both epochs kept: {t}");
    // The same weights with a finite variance run to the end.
    fs::write(dir.join("w.safetensors"), resnet18_layer1_weights(1.0)).unwrap();
    let o = run_in(&dir, &["run", "t.psy", "--out", "ok"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let _ = fs::remove_dir_all(&dir);
}

/// A run long enough to be interrupted: many epochs of a bigger training set.
#[cfg(unix)]
fn long_run(dir: &Path) -> std::process::Child {
    let body = tiny("t", "", SGD)
        .replace("epochs 2", "epochs 1000")
        .replace("samples 64", "samples 512");
    write(dir, "t.psy", &body);
    torch_cmd(dir, &["run", "t.psy", "--out", "out"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the first epoch of [`long_run`] is in its journal.
#[cfg(unix)]
fn wait_for_first_epoch(dir: &Path) {
    wait_for_journal(dir, "\"kind\":\"epoch\"", 1);
}

/// Waits until `out/journal.jsonl` holds `n` lines containing `what`.
#[cfg(unix)]
fn wait_for_journal(dir: &Path, what: &str, n: usize) {
    let journal = dir.join("out/journal.jsonl");
    let t0 = Instant::now();
    while fs::read_to_string(&journal).map_or(true, |t| t.matches(what).count() < n) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the journal never held {n} lines with {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until [`long_run`] has written its preview (the last file before training).
#[cfg(unix)]
fn wait_for_training(dir: &Path) {
    let preview = dir.join("out/preview.png");
    let t0 = Instant::now();
    while !preview.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `signal` (`INT`, `TERM`, `HUP`) to the process `pid`.
#[cfg(unix)]
fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// An interrupted run: its exit status (a code, not death by a signal), `psy::run::interrupted`,
/// and a run folder that keeps `INCOMPLETE`, whole files and no temporary ones.
#[cfg(unix)]
fn assert_stopped_cleanly(dir: &Path, o: &Output, code: i32) {
    use std::os::unix::process::ExitStatusExt;
    let err = text(&o.stderr);
    assert_eq!(
        (o.status.code(), o.status.signal()),
        (Some(code), None),
        "{err}"
    );
    assert!(err.contains("psy::run::interrupted"), "{err}");
    let out = dir.join("out");
    if !out.exists() {
        // Stopped before the run folder was made: nothing was written.
        return;
    }
    let names = files(&out);
    assert!(names.contains(&"INCOMPLETE".to_string()), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| !n.contains("tmp") && !n.starts_with('.')),
        "no temporary files left: {names:?}"
    );
    if names.contains(&"training.csv".to_string()) {
        let t = fs::read_to_string(out.join("training.csv")).unwrap();
        assert!(t.starts_with("epoch,loss,accuracy,repeat,"), "{t}");
        assert!(t.ends_with('\n'));
    }
    if names.contains(&"manifest.json".to_string()) {
        let m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["complete"], false);
        assert!(m["finished"].is_null());
    }
}

#[cfg(unix)]
#[test]
fn sigint_sigterm_and_sighup_stop_cleanly_with_130_143_and_129() {
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let dir = scratch(&format!("sig{signal}"));
        let child = long_run(&dir);
        wait_for_first_epoch(&dir);
        kill(signal, child.id());
        let o = child.wait_with_output().unwrap();
        assert_stopped_cleanly(&dir, &o, code);
        // What was measured is kept, whole.
        let t = fs::read_to_string(dir.join("out/training.csv")).unwrap();
        assert!(
            t.lines().nth(1).is_some_and(|l| l.starts_with("1,")),
            "{signal}: {t}"
        );
        let err = text(&o.stderr);
        assert!(err.contains(&format!("SIG{signal}")), "{signal}: {err}");
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A second (and third) signal while the run stops must not end the process from the
/// signal handler: the old handler called `exit`, whose static destructors raced libtorch's
/// running kernels (a segfault in 13 of 35 trials).
#[cfg(unix)]
#[test]
fn repeated_signals_still_stop_cleanly() {
    for trial in 0..12 {
        let dir = scratch(&format!("repeat{trial}"));
        let child = long_run(&dir);
        wait_for_training(&dir);
        let pid = child.id();
        kill("INT", pid);
        kill(if trial % 2 == 0 { "INT" } else { "TERM" }, pid);
        let o = child.wait_with_output().unwrap();
        // The first signal decides the exit status.
        assert_stopped_cleanly(&dir, &o, 130);
        let _ = fs::remove_dir_all(&dir);
    }
    // A third signal ends the process at once by its default action (no destructors run,
    // so nothing races libtorch): killed by SIGINT, or stopped cleanly if the run got to
    // its safe point first; never a crash.
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("repeat-third");
    let child = long_run(&dir);
    wait_for_training(&dir);
    let pid = child.id();
    for _ in 0..3 {
        kill("INT", pid);
    }
    let o = child.wait_with_output().unwrap();
    if o.status.signal().is_some() {
        assert_eq!(o.status.signal(), Some(2), "{}", text(&o.stderr));
    } else {
        assert_stopped_cleanly(&dir, &o, 130);
    }
    let _ = fs::remove_dir_all(&dir);
}

/// The handlers are installed first thing in `main`: a signal as soon as the process
/// catches SIGINT (before the experiment is even read) still stops it with a diagnostic.
#[cfg(target_os = "linux")]
#[test]
fn a_signal_right_at_the_start_is_an_interruption() {
    let dir = scratch("early");
    let child = long_run(&dir);
    let pid = child.id();
    let status = format!("/proc/{pid}/status");
    let t0 = Instant::now();
    // SigCgt: the signals the process catches, a hexadecimal mask (SIGINT is bit 1).
    let catches_sigint = || {
        fs::read_to_string(&status).ok().and_then(|s| {
            let mask = s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
    };
    while catches_sigint().is_none_or(|m| m & 2 == 0) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "SIGINT never caught"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    kill("INT", pid);
    let o = child.wait_with_output().unwrap();
    assert_stopped_cleanly(&dir, &o, 130);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_libtorch_error_is_a_diagnostic_not_a_panic() {
    let dir = scratch("torch");
    // A TorchScript module that raises inside libtorch for batches of more than 4 images
    // (scripts/checkpoint_fixtures.py): it passes the one-image shape probe, then fails in
    // the first training batch. (Nesterov without momentum, which libtorch used to refuse
    // here, is now the planner's error, as is a learning rate beyond float32.)
    fixture(&dir, "refuses_batches.pt");
    write(&dir, "t.psy", &tiny_script("t", "refuses_batches.pt", ""));
    let err = stderr_of_failure(&dir, "t.psy", 3);
    assert!(err.contains("psy::run::torch"), "{err}");
    assert!(
        err.contains("refuses batches of more than 4 images"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(dir.join("out/INCOMPLETE").is_file());
    let _ = fs::remove_dir_all(&dir);
}

/// `tiny` with these blocks added to the experiment (before its last `}`) and `repeats`.
pub(crate) fn tiny_with(name: &str, repeats: u32, blocks: &str) -> String {
    let body = tiny(name, "", SGD);
    let cut = body
        .trim_end()
        .strip_suffix('}')
        .expect("ends in }")
        .to_string();
    let body = cut.replacen("  seed 3\n", &format!("  seed 3\n  repeats {repeats}\n"), 1);
    format!("{body}{blocks}\n}}\n")
}

/// The rows of a CSV file as maps from header to cell.
fn csv_maps(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

#[test]
fn a_noisy_observer_with_repeats_reports_intervals_and_is_reproducible() {
    let dir = scratch("noisy");
    let blocks = "  observer { decision softmax(temperature: 1)  pixel_noise 0.02  phase_jitter 180deg  position_jitter 1 }\n  fit weibull { bootstrap 100 }";
    write(&dir, "noisy.psy", &tiny_with("noisy", 3, blocks));
    for out in ["a", "b"] {
        let o = run_in(&dir, &["run", "noisy.psy", "--out", out]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let a = fs::read(dir.join("a/csf.csv")).unwrap();
    assert_eq!(
        a,
        fs::read(dir.join("b/csf.csv")).unwrap(),
        "same seed, same CSF"
    );
    assert_eq!(
        fs::read(dir.join("a/staircase.csv")).unwrap(),
        fs::read(dir.join("b/staircase.csv")).unwrap()
    );
    let csf = csv_maps(&dir.join("a/csf.csv"));
    assert_eq!(csf.len(), 3);
    for row in &csf {
        assert_eq!(row["repeats"], "3");
        let t: f64 = row["threshold_contrast"].parse().unwrap();
        // A t interval over the repeats, unless a repeat's threshold is only a bound.
        if row["censored"].is_empty() {
            let (lo, hi): (f64, f64) = (
                row["ci_low"].parse().unwrap(),
                row["ci_high"].parse().unwrap(),
            );
            assert!(lo <= t && t <= hi, "{row:?}");
        } else {
            assert!(
                row["ci_low"].is_empty() && row["censored_repeats"] != "0",
                "{row:?}"
            );
        }
        let s: f64 = row["sensitivity"].parse().unwrap();
        assert!((s * t - 1.0).abs() < 1e-9);
    }
    // Three repeats of three frequencies; every request's trials pooled by level.
    let per_repeat = csv_maps(&dir.join("a/thresholds.csv"));
    assert_eq!(per_repeat.len(), 9);
    let repeats: std::collections::BTreeSet<&str> =
        per_repeat.iter().map(|r| r["repeat"].as_str()).collect();
    assert_eq!(repeats.into_iter().collect::<Vec<_>>(), ["0", "1", "2"]);
    // The repeats are independent probes: not all the same thresholds.
    let t: Vec<&str> = per_repeat
        .iter()
        .filter(|r| r["frequency_cpi"] == "2")
        .map(|r| r["procedure_threshold"].as_str())
        .collect();
    assert!(t.iter().any(|x| *x != t[0]), "{t:?}");
    let pooled = csv_maps(&dir.join("a/psychometric.csv"));
    let steps = csv_maps(&dir.join("a/staircase.csv"));
    let sum = |rows: &[std::collections::HashMap<String, String>]| -> u64 {
        rows.iter()
            .map(|r| r["trials"].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum(&pooled), sum(&steps));
    let training = csv_maps(&dir.join("a/training.csv"));
    assert_eq!(training.len(), 6, "2 epochs × 3 repeats");
}

#[test]
fn an_observer_that_cannot_be_calibrated_is_a_diagnostic() {
    let dir = scratch("calibration");
    // Random weights and 2 epochs: the probe is nowhere near 99.9 % correct.
    let blocks = "  observer { decision gaussian(accuracy: 0.999) }";
    write(&dir, "cal.psy", &tiny_with("cal", 1, blocks));
    let o = run_in(&dir, &["run", "cal.psy", "--out", "r"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("psy::run::calibration"), "{err}");
    assert!(
        err.contains("cannot be calibrated to 99.9 % correct"),
        "{err}"
    );
    assert!(dir.join("r/INCOMPLETE").exists());
    assert_eq!(csv_maps(&dir.join("r/training.csv")).len(), 2);
}

#[test]
fn a_calibrated_observer_reaches_its_accuracy_and_says_so() {
    let dir = scratch("calibrated");
    let blocks = "  observer { decision softmax(accuracy: 0.6) }";
    write(&dir, "cal.psy", &tiny_with("cal", 1, blocks));
    let o = run_in(&dir, &["run", "cal.psy", "--out", "r"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let manifest = fs::read_to_string(dir.join("r/manifest.json")).unwrap();
    assert!(manifest.contains("\"decision_noise\": "), "{manifest}");
    assert!(!manifest.contains("\"decision_noise\": null"), "{manifest}");
    assert!(
        text(&o.stderr).contains("observer calibrated"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn every_procedure_runs_end_to_end_with_its_own_trial_counts() {
    let dir = scratch("procedures");
    let cases = [
        (
            "updown",
            "staircase updown { trials 24  reversals 4  stop any }",
            Some(1),
        ),
        ("quest", "staircase quest { trials 24 }", Some(1)),
        (
            "questplus",
            "staircase questplus { contrasts_db steps(-40, 0, 2, inclusive)  \
             thresholds_db steps(-40, 0, 2, inclusive)  slopes [2, 4]  lapses [0, 0.02]  \
             trials 24 }",
            Some(1),
        ),
        // Constant stimuli: whole levels, every condition once per pass (8 conditions).
        (
            "constant",
            "staircase constant { levels logspace(0.01, 1, 5)  repeats 1 }",
            Some(8),
        ),
    ];
    for (name, block, per_step) in cases {
        let body = tiny(name, "", SGD).replace(
            "staircase bisection { target 0.75  tolerance 0.01  max_steps 5 }",
            block,
        );
        assert!(body.contains(block), "{name}: the staircase was replaced");
        write(&dir, &format!("{name}.psy"), &body);
        let o = run_in(&dir, &["run", &format!("{name}.psy"), "--out", name]);
        assert!(o.status.success(), "{name}: {}", text(&o.stderr));
        let csf = csv_maps(&dir.join(name).join("csf.csv"));
        assert_eq!(csf.len(), 3, "{name}");
        for row in &csf {
            assert!(row["method"].starts_with(name), "{name}: {row:?}");
        }
        let steps = csv_maps(&dir.join(name).join("staircase.csv"));
        assert!(!steps.is_empty(), "{name}");
        for s in &steps {
            let (trials, correct): (u32, u32) =
                (s["trials"].parse().unwrap(), s["correct"].parse().unwrap());
            assert!(correct <= trials);
            if let Some(n) = per_step {
                assert_eq!(trials, n, "{name}: {s:?}");
            }
        }
        if name != "constant" {
            for f in ["2", "4", "8"] {
                let n = steps.iter().filter(|s| s["frequency_cpi"] == f).count();
                assert!(n <= 24, "{name}: {n} trials at {f} c/img");
            }
        } else {
            // 5 levels per frequency, ascending.
            let levels: Vec<f64> = steps
                .iter()
                .filter(|s| s["frequency_cpi"] == "2")
                .map(|s| s["contrast"].parse().unwrap())
                .collect();
            assert_eq!(levels.len(), 5);
            assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn an_interrupted_test_phase_keeps_every_frequency_measured_so_far() {
    let dir = scratch("interrupt-test");
    // A short training and a test phase that takes long: up/down staircases of 4000 trials
    // each, one trial per round, and pixel noise, so that every trial's images are new.
    let body = tiny_with("t", 1, "  observer { pixel_noise 0.01 }").replace(
        "staircase bisection { target 0.75  tolerance 0.01  max_steps 5 }",
        "staircase updown { trials 4000  reversals 1000  stop all  max_trials 4000 }",
    );
    write(&dir, "t.psy", &body);
    let child = torch_cmd(&dir, &["run", "t.psy", "--out", "out"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Measurements reach the journal as they are made; the result files are written when
    // the run stops.
    let stairs = dir.join("out/staircase.csv");
    wait_for_journal(&dir, "\"kind\":\"round\"", 3);
    kill("INT", child.id());
    let o = child.wait_with_output().unwrap();
    assert_stopped_cleanly(&dir, &o, 130);
    // Every frequency's trials so far are kept, marked unfinished.
    let rows = csv_maps(&stairs);
    for f in ["2", "4", "8"] {
        let n = rows.iter().filter(|r| r["frequency_cpi"] == f).count();
        assert!(n >= 1, "frequency {f}: no rows kept");
    }
    let csf = csv_maps(&dir.join("out/csf.csv"));
    assert_eq!(csf.len(), 3);
    assert!(csf.iter().all(|r| r["stopped"] == "unfinished"), "{csf:?}");
    assert!(
        csf.iter().all(|r| r["censored"] == "not_converged"),
        "{csf:?}"
    );
    let err = text(&o.stderr);
    assert!(err.contains("and 0 of 3 staircases"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}
