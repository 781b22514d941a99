//! `psyrun sweep`, `psyrun collect` and `psyrun sweep-task` end to end on tiny experiments:
//! a condition's results equal a plain run's, a complete condition is skipped and never
//! rewritten, an interrupted one resumes to the same files, a failed one is reported with
//! its log, `--force` keeps the old results aside, the Slurm job script; and every
//! `psy::sweep` refusal. `slurm.rs` runs a sweep through a real Slurm.

use crate::run::{files, scratch, text, tiny, write, SGD};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[cfg(unix)]
mod slurm;

/// The tiny experiment of `run.rs` with one epoch: a condition runs in seconds.
pub(crate) fn small(name: &str) -> String {
    tiny(name, "", SGD).replace("epochs 2", "epochs 1")
}

pub(crate) fn psyrun_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_psyrun"));
    c.args(args)
        .args(["--color", "never"])
        .current_dir(dir)
        .env("PSYRUN_TORCH_BIN", env!("CARGO_BIN_EXE_psyrun-torch"))
        .env_remove("NO_COLOR");
    c
}

pub(crate) fn psyrun(dir: &Path, args: &[&str]) -> Output {
    psyrun_cmd(dir, args).output().expect("psyrun starts")
}

/// The one condition folder of a sweep folder.
fn only_condition(sweep: &Path) -> PathBuf {
    let names = files(&sweep.join("conditions"));
    assert_eq!(names.len(), 1, "{names:?}");
    sweep.join("conditions").join(&names[0])
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// Bytes and modification time of every file in a folder and its subfolders, to show it
/// was not rewritten.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    for f in files(dir) {
        let p = dir.join(&f);
        if p.is_dir() {
            for (g, bytes, t) in snapshot(&p) {
                out.push((format!("{f}/{g}"), bytes, t));
            }
        } else {
            let t = fs::metadata(&p).unwrap().modified().unwrap();
            out.push((f, fs::read(&p).unwrap(), t));
        }
    }
    out
}

#[cfg(unix)]
fn kill(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// A sweep interrupted with SIGINT while its condition trains, resumed by running the sweep
/// again, ends with the files of a plain run; a second sweep skips it without touching it;
/// `--force` runs it again and keeps the old folder aside.
#[cfg(unix)]
#[test]
fn an_interrupted_sweep_resumes_to_a_plain_runs_results_and_then_skips_it() {
    let dir = scratch("sweep-resume");
    // Two epochs: stopped after the first.
    write(&dir, "e.psy", &tiny("swept", "", SGD));
    let plain = psyrun(&dir, &["run", "e.psy", "--threads", "1", "--out", "plain"]);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));

    // Stopped once the condition's journal holds its first epoch.
    let mut child = psyrun_cmd(&dir, &["sweep", "e.psy", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sweep = dir.join("runs/swept/sweep");
    let t0 = Instant::now();
    loop {
        let rounds = fs::read_dir(sweep.join("conditions"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read_to_string(e.path().join("journal.jsonl")).ok())
            .any(|j| j.contains("\"kind\":\"epoch\""));
        if rounds {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no epoch");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill("INT", child.id());
    let stopped = {
        let _ = child.wait();
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    };
    let folder = only_condition(&sweep);
    assert!(folder.join("INCOMPLETE").is_file(), "{stopped}");
    assert!(stopped.contains("interrupted after"), "{stopped}");
    assert!(
        stopped.contains("run the same `psyrun sweep` again"),
        "{stopped}"
    );
    let m = json(&sweep.join("sweep.json"));
    assert_eq!(m["conditions"][0]["status"], "incomplete", "{m}");

    // collect: not complete, resumable, and how to continue.
    let c = psyrun(&dir, &["collect", "runs/swept/sweep"]);
    assert_eq!(c.status.code(), Some(3), "{}", text(&c.stderr));
    let out = text(&c.stdout);
    assert!(out.contains("0 of 1 condition complete"), "{out}");
    assert!(out.contains("interrupted (resumable)"), "{out}");
    assert!(
        out.contains("run them: psyrun sweep e.psy --out runs/swept/sweep"),
        "{out}"
    );

    // Resumed to a plain run's files.
    let o = psyrun(&dir, &["sweep", "e.psy", "--threads", "1"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("[1/1] (single condition) … resumed, done in"),
        "{err}"
    );
    for f in ["csf.csv", "thresholds.csv", "staircase.csv", "training.csv"] {
        assert_eq!(
            fs::read_to_string(folder.join(f)).unwrap(),
            fs::read_to_string(dir.join("plain").join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(!folder.join("INCOMPLETE").exists());

    // The combined table: the condition's columns, then csf.csv's rows as they are.
    let id = folder.file_name().unwrap().to_string_lossy().into_owned();
    let combined = fs::read_to_string(sweep.join("sweep_csf.csv")).unwrap();
    let plain_csf = fs::read_to_string(dir.join("plain/csf.csv")).unwrap();
    let want: String = plain_csf
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("condition,{l}\n")
            } else {
                assert!(
                    l.ends_with(&format!(",{id}")),
                    "the row ends with the id: {l}"
                );
                format!("1,{l}\n")
            }
        })
        .collect();
    assert_eq!(combined, want);
    for f in psyrun::report::sweep::SWEEP_FILES {
        assert!(sweep.join(f).is_file(), "{f}");
    }

    // sweep.json: the experiment, the source and its hash, the condition complete; the copy
    // is the file's bytes.
    let m = json(&sweep.join("sweep.json"));
    assert_eq!(m["experiment"], "swept");
    assert_eq!(m["conditions"][0]["status"], "complete");
    assert_eq!(m["conditions"][0]["id"], id.as_str());
    let source = fs::read(dir.join("e.psy")).unwrap();
    assert_eq!(
        m["sources"][0]["sha256"],
        psyrun::report::sha256_bytes(&source)
    );
    assert_eq!(
        fs::read(sweep.join(m["copy"].as_str().unwrap())).unwrap(),
        source
    );

    // Again: skipped, not one file rewritten.
    let before = snapshot(&folder);
    let o = psyrun(&dir, &["sweep", "e.psy", "--threads", "1"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("[1/1] (single condition) … skipped (complete)"),
        "{err}"
    );
    assert_eq!(
        snapshot(&folder),
        before,
        "a complete condition is never rewritten"
    );
    let c = psyrun(&dir, &["collect", "runs/swept/sweep"]);
    assert_eq!(c.status.code(), Some(0), "{}", text(&c.stderr));
    assert!(text(&c.stdout).contains("1 of 1 condition complete"));

    // --force: run again, the old folder kept under replaced/.
    let o = psyrun(&dir, &["sweep", "e.psy", "--threads", "1", "--force"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("… done in"), "{err}");
    let replaced = files(&sweep.join("replaced"));
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert!(replaced[0].starts_with(&id));
    let old = sweep.join("replaced").join(&replaced[0]);
    assert_eq!(snapshot(&old.join("run")), before, "kept as it was");
    assert_eq!(
        fs::read_to_string(folder.join("csf.csv")).unwrap(),
        plain_csf
    );
    check_documented(&sweep, &[]);
    let _ = fs::remove_dir_all(&dir);
}

/// The sweep folder against docs/outputs.md: its files (all but `slurm`, which only a
/// Slurm sweep has), the combined tables' columns and `sweep.json`'s fields.
fn check_documented(sweep: &Path, swept: &[&str]) {
    use crate::outputs::{documented, outputs_md};
    let doc = outputs_md();
    let mut listed = documented(&doc, "### Sweep files");
    listed.retain(|f| f != "slurm");
    listed.sort();
    assert_eq!(files(sweep), listed, "docs/outputs.md's sweep files");
    for (name, of) in [
        ("sweep_csf.csv", "csf.csv"),
        ("sweep_thresholds.csv", "thresholds.csv"),
    ] {
        // sweep_thresholds.csv has sweep_csf.csv's condition columns ("the same").
        let mut want: Vec<String> = documented(&doc, "#### `sweep_csf.csv`")
            .into_iter()
            .filter(|c| c != "sweep.<path>")
            .collect();
        want.extend(swept.iter().map(|p| format!("sweep.{p}")));
        let condition = only_or_first_condition(sweep);
        let own = fs::read_to_string(condition.join(of)).unwrap();
        want.extend(own.lines().next().unwrap().split(',').map(String::from));
        let body = fs::read_to_string(sweep.join(name)).unwrap();
        let header: Vec<String> = body
            .lines()
            .next()
            .unwrap()
            .split(',')
            .map(String::from)
            .collect();
        assert_eq!(header, want, "{name}");
    }
    let m = json(&sweep.join("sweep.json"));
    let mut keys: Vec<String> = m.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    let mut fields = documented(&doc, "#### `sweep.json`");
    fields.sort();
    assert_eq!(keys, fields, "sweep.json's fields");
}

fn only_or_first_condition(sweep: &Path) -> PathBuf {
    let m = json(&sweep.join("sweep.json"));
    sweep.join(m["conditions"][0]["folder"].as_str().unwrap())
}

/// A condition that fails (a weights file that is no weights file: found, through the
/// copy's link, but unreadable) is reported with its exit status and log, and `collect`
/// shows the log's last lines and how to run it again.
#[test]
fn a_failed_condition_is_reported_with_its_log() {
    let dir = scratch("sweep-failed");
    write(&dir, "junk.safetensors", "not a weights file");
    write(
        &dir,
        "e.psy",
        &small("failing").replace("weights random", "weights \"junk.safetensors\""),
    );
    let o = psyrun(&dir, &["sweep", "e.psy", "--out", "sw"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("[1/1] (single condition) … FAILED (exit 3, log: sw/logs/"),
        "{err}"
    );
    assert!(err.contains("psy::sweep::failed"), "{err}");
    let out = text(&o.stdout);
    assert!(out.contains("0 of 1 condition complete"), "{out}");
    let log = files(&dir.join("sw/logs"));
    let log = fs::read_to_string(dir.join("sw/logs").join(&log[0])).unwrap();
    // The run found the file through the copy's link and refused its contents.
    assert!(log.contains("psy::run::weights_file"), "{log}");
    assert!(log.contains("not a usable weights file"), "{log}");

    let c = psyrun(&dir, &["collect", "sw"]);
    assert_eq!(c.status.code(), Some(3));
    let out = text(&c.stdout);
    assert!(out.contains("failed: [1] (single condition)"), "{out}");
    assert!(out.contains("exit 3, log: sw/logs/"), "{out}");
    assert!(out.contains("    | "), "the log's last lines: {out}");
    assert!(
        out.contains("run them: psyrun sweep e.psy --out sw"),
        "{out}"
    );
    let m = json(&dir.join("sw/sweep.json"));
    assert_eq!(m["conditions"][0]["status"], "failed");
    assert_eq!(m["conditions"][0]["exit"], 3);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn sweep_folders_that_are_not_this_experiments_are_refused() {
    let dir = scratch("sweep-folders");
    write(&dir, "e.psy", &small("mine"));
    // A folder with other files.
    fs::create_dir_all(dir.join("busy")).unwrap();
    write(&dir, "busy/notes.txt", "");
    let o = psyrun(&dir, &["sweep", "e.psy", "--out", "busy"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psy::sweep::folder"), "{err}");
    assert!(err.contains("holds no sweep.json"), "{err}");
    // Another experiment's sweep folder.
    fs::create_dir_all(dir.join("theirs")).unwrap();
    psyrun::report::sweep::SweepManifest {
        format: 1,
        experiment: "other".into(),
        psyrun_version: "0.1.0".into(),
        created: "2026-11-30T00:00:00Z".into(),
        updated: "2026-11-30T00:00:00Z".into(),
        command_line: vec![],
        file: "other.psy".into(),
        copy: "sources/other.psy".into(),
        sources: vec![],
        overrides: vec![],
        threads: None,
        swept: vec![],
        conditions: vec![],
        slurm: None,
    }
    .write(&dir.join("theirs"))
    .unwrap();
    let o = psyrun(&dir, &["sweep", "e.psy", "--out", "theirs"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psy::sweep::folder"), "{err}");
    assert!(
        err.contains("of the experiment `other`, not `mine`"),
        "{err}"
    );
    assert_eq!(
        files(&dir.join("theirs")),
        ["sweep.json"],
        "nothing written"
    );

    // collect on a folder that is no sweep.
    let o = psyrun(&dir, &["collect", "busy"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psy::sweep::not_a_sweep"), "{err}");
    assert!(err.contains("it has no sweep.json"), "{err}");

    // Without psyrun-torch nothing can run: said before anything is written.
    let o = psyrun_cmd(&dir, &["sweep", "e.psy", "--out", "unrun"])
        .env("PSYRUN_TORCH_BIN", dir.join("no-psyrun-torch"))
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("psy::run::unavailable"), "{err}");
    assert!(!dir.join("unrun").exists());

    // A condition that does not exist.
    let o = psyrun(&dir, &["run", "e.psy", "--condition", "7", "--out", "x"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psy::plan::condition"), "{err}");
    assert!(err.contains("there is no condition 7"), "{err}");
    assert!(!dir.join("x").exists());
    let _ = fs::remove_dir_all(&dir);
}

/// `--slurm --dry-run` writes the job script; `--slurm` submits it with `sbatch
/// --parsable` and records the job; a missing `sbatch` is `psy::sweep::slurm`. (A fake
/// sbatch here; `slurm.rs` submits to a real one.)
#[cfg(unix)]
#[test]
fn slurm_job_scripts_are_written_and_submitted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("sweep-slurm-script");
    write(&dir, "e.psy", &small("arrayed"));
    let o = psyrun(
        &dir,
        &[
            "sweep",
            "e.psy",
            "--out",
            "sw",
            "--slurm",
            "--dry-run",
            "--partition",
            "gpu",
            "--time",
            "1:00:00",
            "--gpus",
            "1",
            "--cpus-per-task",
            "4",
            "--mem",
            "8G",
            "--array-limit",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let abs = dir.canonicalize().unwrap().join("sw");
    let script = fs::read_to_string(abs.join("slurm/job.sh")).unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_psyrun"));
    for line in [
        "#!/bin/bash".to_string(),
        "#SBATCH --array=0-0%2".to_string(),
        format!("#SBATCH --output={}/slurm/logs/%A_%a.out", abs.display()),
        "#SBATCH --partition=gpu".to_string(),
        "#SBATCH --time=1:00:00".to_string(),
        "#SBATCH --gres=gpu:1".to_string(),
        "#SBATCH --cpus-per-task=4".to_string(),
        "#SBATCH --mem=8G".to_string(),
        format!(
            "exec {} sweep-task {} \"$SLURM_ARRAY_TASK_ID\" --per-task 1",
            exe.display(),
            abs.display()
        ),
    ] {
        assert!(script.lines().any(|l| l == line), "{line} in\n{script}");
    }
    let m = json(&abs.join("sweep.json"));
    assert_eq!(m["slurm"]["tasks"], 1);
    assert_eq!(m["slurm"]["job_id"], serde_json::Value::Null);
    assert_eq!(m["threads"], 4, "--cpus-per-task sets each run's threads");
    let out = text(&o.stdout);
    assert!(out.contains("submit it:  sbatch "), "{out}");

    // A fake sbatch that records its arguments and answers a job id.
    let fake = dir.join("sbatch");
    fs::write(
        &fake,
        "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/sbatch.args\"\necho '4242;cluster'\n",
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let o = psyrun_cmd(&dir, &["sweep", "e.psy", "--out", "sw", "--slurm"])
        .env("PSYRUN_SBATCH", &fake)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("submitted job 4242: 1 task for 1 condition"),
        "{out}"
    );
    assert!(out.contains("squeue -j 4242"), "{out}");
    assert!(
        out.contains(&format!("psyrun collect {}", abs.display())),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("sbatch.args")).unwrap().trim(),
        format!("--parsable {}", abs.join("slurm/job.sh").display())
    );
    let m = json(&abs.join("sweep.json"));
    assert_eq!(m["slurm"]["job_id"], "4242");

    // collect before the job ran: missing, and the sbatch command for its task.
    let c = psyrun(&dir, &["collect", "sw"]);
    assert_eq!(c.status.code(), Some(3));
    let out = text(&c.stdout);
    assert!(out.contains("missing: [1] (single condition)"), "{out}");
    assert!(
        out.contains(&format!(
            "resubmit only these: sbatch --array=0 {}",
            abs.join("slurm/job.sh").display()
        )),
        "{out}"
    );
    // A task beyond the sweep.
    let o = psyrun(&dir, &["sweep-task", "sw", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("psy::sweep::condition"));

    // No sbatch: said so, the script stays for submitting by hand.
    let o = psyrun_cmd(&dir, &["sweep", "e.psy", "--out", "sw", "--slurm"])
        .env("PSYRUN_SBATCH", dir.join("no-such-sbatch"))
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psy::sweep::slurm"), "{err}");
    assert!(err.contains("submits it by hand"), "{err}");
    assert!(abs.join("slurm/job.sh").is_file());
    let _ = fs::remove_dir_all(&dir);
}

/// Two conditions (`sweep { backbone.cut [layer1, layer2] }`): one folder each, the combined
/// table with a `sweep.backbone.cut` column, each condition's rows equal to a plain run of
/// that cut, and the comparison plots naming both.
#[test]
fn a_layer_sweep_runs_each_condition_and_stacks_their_tables() {
    let dir = scratch("sweep-layers");
    let body = small("layers").replace(
        "  staircase bisection",
        "  sweep { backbone.cut [layer1, layer2] }\n  staircase bisection",
    );
    write(&dir, "e.psy", &body);
    write(
        &dir,
        "l2.psy",
        &small("layers").replace("cut layer1", "cut layer2"),
    );
    let o = psyrun(&dir, &["sweep", "e.psy", "--threads", "1", "--out", "sw"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("[1/2] backbone.cut=layer1 … done in"), "{err}");
    assert!(err.contains("[2/2] backbone.cut=layer2 … done in"), "{err}");
    assert_eq!(files(&dir.join("sw/conditions")).len(), 2);
    let plain = psyrun(&dir, &["run", "l2.psy", "--threads", "1", "--out", "plain"]);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
    let combined = fs::read_to_string(dir.join("sw/sweep_csf.csv")).unwrap();
    let mut lines = combined.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("condition,sweep.backbone.cut,frequency_cpi,"));
    let layer2: Vec<String> = lines
        .filter(|l| l.starts_with("2,"))
        .map(|l| l.splitn(3, ',').nth(2).unwrap().to_string())
        .collect();
    let want: Vec<String> = fs::read_to_string(dir.join("plain/csf.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    assert_eq!(layer2, want);
    let svg = fs::read_to_string(dir.join("sw/sweep_csf.svg")).unwrap();
    assert!(svg.contains("backbone.cut=layer1") && svg.contains("backbone.cut=layer2"));
    fs::create_dir_all(dir.join("sw/replaced")).unwrap();
    check_documented(&dir.join("sw"), &["backbone.cut"]);
    let _ = fs::remove_dir_all(&dir);
}

/// A condition that another process runs (its lock held) is neither run nor resumed a second
/// time; once the lock is free, a condition recorded as running is known to have been killed.
#[test]
fn a_condition_another_process_runs_is_left_to_it() {
    let dir = scratch("sweep-lock");
    write(&dir, "e.psy", &small("locked"));
    let plan = psyrun(&dir, &["plan", "e.psy"]);
    assert_eq!(plan.status.code(), Some(0));
    let id = psyrun::report::sha256_bytes(&plan.stdout)[..12].to_string();
    // The sweep folder, made without running anything.
    let o = psyrun(
        &dir,
        &["sweep", "e.psy", "--out", "sw", "--slurm", "--dry-run"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let m = json(&dir.join("sw/sweep.json"));
    assert_eq!(
        m["conditions"][0]["id"],
        id.as_str(),
        "the id is the plan's hash"
    );
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("sw/status/{id}.lock")))
        .unwrap();
    lock.try_lock().unwrap();
    let o = psyrun(&dir, &["sweep", "e.psy", "--out", "sw"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("[1/1] (single condition) … skipped (running in another process)"),
        "{err}"
    );
    assert!(!dir.join("sw/conditions").join(&id).exists(), "not started");
    // Recorded as running by that process: collect says so while the lock is held …
    let attempt = serde_json::json!({
        "id": id, "index": 0, "status": "running", "exit": null, "host": "elsewhere",
        "started": "2026-11-30T00:00:00Z", "finished": null, "seconds": null, "command": []
    });
    fs::write(
        dir.join(format!("sw/status/{id}.json")),
        attempt.to_string(),
    )
    .unwrap();
    let c = psyrun(&dir, &["collect", "sw"]);
    assert_eq!(c.status.code(), Some(3));
    assert!(
        text(&c.stdout).contains("running (in another process)"),
        "{}",
        text(&c.stdout)
    );
    // --force does not pull the folder from under it.
    let o = psyrun(&dir, &["sweep", "e.psy", "--out", "sw", "--force"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psy::sweep::folder"), "{err}");
    assert!(err.contains("is running in another process"), "{err}");
    // … and that it was stopped once the lock is free.
    drop(lock);
    let c = psyrun(&dir, &["collect", "sw"]);
    assert_eq!(c.status.code(), Some(3));
    assert!(
        text(&c.stdout).contains("interrupted (resumable)"),
        "{}",
        text(&c.stdout)
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A condition that fails does not stop or spoil the others: they run, and the combined
/// table holds them.
#[test]
fn a_failing_condition_does_not_lose_the_others() {
    let dir = scratch("sweep-crash");
    write(&dir, "junk.safetensors", "not a weights file");
    let body = small("mixed").replace(
        "  staircase bisection",
        "  sweep { backbone.weights [\"junk.safetensors\", random] }\n  staircase bisection",
    );
    write(&dir, "e.psy", &body);
    let o = psyrun(&dir, &["sweep", "e.psy", "--out", "sw"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("[1/2] backbone.weights="), "{err}");
    assert!(err.contains("FAILED (exit 3, log: sw/logs/"), "{err}");
    assert!(
        err.contains("[2/2] backbone.weights=random … done in"),
        "{err}"
    );
    let combined = fs::read_to_string(dir.join("sw/sweep_csf.csv")).unwrap();
    let rows: Vec<&str> = combined.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "condition 2's three frequencies: {combined}");
    assert!(rows.iter().all(|r| r.starts_with("2,")), "{combined}");
    let c = psyrun(&dir, &["collect", "sw"]);
    assert_eq!(c.status.code(), Some(3));
    let out = text(&c.stdout);
    assert!(out.contains("1 of 2 conditions complete"), "{out}");
    assert!(out.contains("failed: [1] backbone.weights="), "{out}");
    let _ = fs::remove_dir_all(&dir);
}
