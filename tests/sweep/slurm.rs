//! A sweep through a real Slurm: `scripts/slurm-local` starts a one-node cluster on loopback
//! (munged, slurmctld, slurmd as plain processes, everything in a temporary folder); the
//! sweep is submitted as a job array, waited for, collected, and its combined tables must
//! equal a local sweep's byte for byte. Skipped with a notice where Slurm is not installed
//! (or the test does not run as root, which the daemons need); `PSYRUN_REQUIRE_SLURM=1`
//! (CI) makes that a failure.

use super::{psyrun, psyrun_cmd, small};
use crate::run::{scratch, text, write};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Why Slurm cannot run here, if it cannot.
fn missing() -> Option<String> {
    for p in ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo"] {
        let found = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "`{p}` is not on the PATH (apt-get install slurm-wlm munge)"
            ));
        }
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if text(&uid.stdout).trim() != "0" {
        return Some("the one-node Slurm's daemons need root".to_string());
    }
    None
}

/// The cluster; stopped (by its PIDs) when dropped, even when the test fails.
struct Cluster {
    dir: PathBuf,
    conf: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let script = crate::root().join("scripts/slurm-local");
        let o = Command::new(&script)
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "slurm-local start: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        let conf = text(&o.stdout)
            .trim()
            .strip_prefix("export SLURM_CONF=")
            .expect("slurm-local prints SLURM_CONF")
            .to_string();
        Cluster {
            dir: dir.to_path_buf(),
            conf,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(crate::root().join("scripts/slurm-local"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// Waits until every task of `job` has ended; returns each task's final state.
fn wait_for(conf: &str, job: &str) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let o = Command::new("squeue")
            .args(["-h", "--states=all", "-j", job, "-o", "%i %T"])
            .env("SLURM_CONF", conf)
            .output()
            .unwrap();
        let states: Vec<String> = text(&o.stdout)
            .lines()
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .collect();
        let ended = |s: &String| {
            !matches!(
                s.as_str(),
                "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED"
            )
        };
        if o.status.success() && !states.is_empty() && states.iter().all(ended) {
            return states;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "job {job} did not end in 5 minutes: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Skips (with a notice) where Slurm cannot run, unless `PSYRUN_REQUIRE_SLURM=1`.
fn slurm_here(test: &str) -> bool {
    let Some(why) = missing() else {
        return true;
    };
    if std::env::var_os("PSYRUN_REQUIRE_SLURM").is_some_and(|v| v == "1") {
        panic!("PSYRUN_REQUIRE_SLURM=1 but Slurm cannot run here: {why}");
    }
    eprintln!("NOTICE: {test} skipped: {why} (CI requires it)");
    false
}

/// Submits `experiment` as a job array (`--per-task per_task`, `--set` each of `set`), edits
/// the file, runs the
/// same sweep locally meanwhile, waits for the job, collects it, and compares the combined
/// tables with the local sweep's. `lines` are lines every task log together must hold.
fn through_slurm(
    tag: &str,
    experiment: &str,
    set: &[&str],
    per_task: u32,
    tasks: usize,
    lines: &[&str],
) {
    let dir = scratch(tag).canonicalize().unwrap();
    write(&dir, "e.psy", experiment);
    let t0 = Instant::now();
    let cluster = Cluster::start(&dir.join("slurm"));
    let started = t0.elapsed();

    let per = per_task.to_string();
    let sets: Vec<&str> = set.iter().flat_map(|s| ["--set", s]).collect();
    let submit = [
        &[
            "sweep",
            "e.psy",
            "--threads",
            "1",
            "--out",
            "cluster",
            "--slurm",
            "--per-task",
            &per,
        ][..],
        &sets,
    ]
    .concat();
    let o = psyrun_cmd(&dir, &submit)
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let job = out
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("no job id in {out}"))
        .to_string();
    // Editing the experiment after submission changes nothing: the tasks run the sweep
    // folder's copy.
    write(&dir, "e.psy", &experiment.replace("seed 3", "seed 4"));

    // Meanwhile, the same sweep here (from the file as it was).
    write(&dir, "local.psy", experiment);
    let local = psyrun(
        &dir,
        &[
            &["sweep", "local.psy", "--threads", "1", "--out", "local"][..],
            &sets,
        ]
        .concat(),
    );
    assert_eq!(local.status.code(), Some(0), "{}", text(&local.stderr));

    let states = wait_for(&cluster.conf, &job);
    let ran = t0.elapsed();
    let logs = dir.join("cluster/slurm/logs");
    let task_logs: String = (0..tasks)
        .map(|t| fs::read_to_string(logs.join(format!("{job}_{t}.out"))).unwrap_or_default())
        .collect();
    assert_eq!(states.len(), tasks, "{states:?}");
    assert!(
        states.iter().all(|s| s == "COMPLETED"),
        "{states:?}\n{task_logs}"
    );
    for line in lines {
        assert!(task_logs.contains(line), "{line} in\n{task_logs}");
    }

    let c = psyrun_cmd(&dir, &["collect", "cluster"])
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    assert_eq!(
        c.status.code(),
        Some(0),
        "{}{}",
        text(&c.stdout),
        text(&c.stderr)
    );
    for f in ["sweep_csf.csv", "sweep_thresholds.csv"] {
        let a = fs::read_to_string(dir.join("cluster").join(f)).unwrap();
        let b = fs::read_to_string(dir.join("local").join(f)).unwrap();
        assert!(a.lines().count() > 1, "{f}: {a}");
        assert_eq!(a, b, "{f}: Slurm against local");
    }
    drop(cluster);
    eprintln!(
        "slurm: cluster up in {:.1} s, submitted, ran and collected in {:.1} s, stopped in {:.1} s",
        started.as_secs_f64(),
        ran.as_secs_f64(),
        (t0.elapsed() - ran).as_secs_f64()
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Three conditions, two a task (task 0 runs conditions 1 and 2, task 1 condition 3), with
/// an override that every task must apply as the local sweep does.
#[test]
fn a_three_condition_sweep_through_a_real_slurm_collects_to_a_local_sweeps_tables() {
    if !slurm_here("a_three_condition_sweep_through_a_real_slurm_collects_to_a_local_sweeps_tables")
    {
        return;
    }
    let experiment = small("clustered").replace(
        "  staircase bisection",
        "  sweep { probe.optimizer.lr [0.01, 0.02, 0.05] }\n  staircase bisection",
    );
    through_slurm(
        "sweep-slurm3",
        &experiment,
        &["probe.batch=8"],
        2,
        2,
        &[
            "[1/3] probe.optimizer.lr=0.01 … done in",
            "[2/3] probe.optimizer.lr=0.02 … done in",
            "[3/3] probe.optimizer.lr=0.05 … done in",
        ],
    );
}
