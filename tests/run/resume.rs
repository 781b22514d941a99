//! `psyrun run --resume DIR`: a run killed (SIGKILL) or interrupted at random points and
//! resumed, as often as it takes, ends with exactly the files of a run that was never
//! stopped; and what cannot be resumed is refused with `psy::run::resume`.

use super::{kill, scratch, text, tiny_with, torch_cmd, write};
use std::fs;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The files whose bytes must equal an uninterrupted run's.
const SAME: [&str; 6] = [
    "csf.csv",
    "thresholds.csv",
    "staircase.csv",
    "psychometric.csv",
    "training.csv",
    "journal.jsonl",
];

/// Two repeats of per-trial up/down staircases (a few hundred rounds each), a short
/// bootstrap; `observer` decides how trials are answered.
fn experiment(observer: &str, trials: u32) -> String {
    tiny_with(
        "resumable",
        2,
        &format!("  {observer}\n  fit weibull {{ bootstrap 40 }}"),
    )
    .replace(
        "staircase bisection { target 0.75  tolerance 0.01  max_steps 5 }",
        &format!(
            "staircase updown {{ trials {trials}  reversals 100  stop all  max_trials {trials} }}"
        ),
    )
}

/// A small xorshift stream for the kill delays, seeded from the clock (printed, so that a
/// failure can be replayed with `PSYRUN_RESUME_SEED`).
struct Delays(u64);

impl Delays {
    fn new() -> Delays {
        let seed = std::env::var("PSYRUN_RESUME_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("kill delays from PSYRUN_RESUME_SEED={seed}");
        Delays(seed)
    }

    /// Milliseconds in `lo..hi`.
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    torch_cmd(dir, args).output().expect("psyrun-torch starts")
}

/// Runs `args` and stops it after `ms` milliseconds with `signal` (unless it ended first);
/// returns its exit status and standard error.
fn run_and_stop(dir: &Path, args: &[&str], ms: u64, signal: &str) -> (ExitStatus, String) {
    let log = dir.join("stderr.txt");
    let mut child = torch_cmd(dir, args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // Polled, so that a run that ends early is never signalled.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() >= Duration::from_millis(ms) {
            kill(signal, child.id());
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (status, fs::read_to_string(&log).unwrap_or_default())
}

/// Runs `e.psy` into `out` and kills it (SIGKILL) once its journal holds `rounds` test
/// rounds.
fn kill_after_rounds(dir: &Path, rounds: usize) {
    let child = torch_cmd(dir, &["run", "e.psy", "--out", "out"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    super::wait_for_journal(dir, "\"kind\":\"round\"", rounds);
    kill("KILL", child.id());
    let _ = child.wait_with_output();
}

/// Kills and resumes the experiment in `dir` at random points until it finishes, then
/// checks every result against `reference`. Returns how many times it was stopped.
fn kill_and_resume_until_done(dir: &Path, reference: &Path, delays: &mut Delays) -> u32 {
    let out = dir.join("out");
    let mut stops = 0;
    for attempt in 0..10 {
        let fresh = !out.join("manifest.json").exists();
        if fresh {
            // Killed before the folder held its plan: nothing to resume, start again.
            let _ = fs::remove_dir_all(&out);
        }
        let args: Vec<&str> = if fresh {
            vec!["run", "e.psy", "--out", "out"]
        } else {
            vec!["run", "--resume", "out"]
        };
        // The last attempts are not stopped, so the test always ends.
        let (status, err) = if attempt < 6 {
            let ms = delays.next(200, 7000);
            let signal = if attempt % 3 == 2 { "INT" } else { "KILL" };
            eprintln!(
                "attempt {attempt}: {} then SIG{signal} after {ms} ms",
                args.join(" ")
            );
            run_and_stop(dir, &args, ms, signal)
        } else {
            let o = run(dir, &args);
            (o.status, text(&o.stderr))
        };
        if status.success() {
            break;
        }
        stops += 1;
        // Stopped by the signal (killed, or interrupted cleanly), nothing else.
        assert!(
            status.code().is_none() || err.contains("psy::run::interrupted"),
            "attempt {attempt}: {err}"
        );
    }
    assert!(!out.join("INCOMPLETE").exists(), "the run never finished");
    for name in SAME {
        assert_eq!(
            fs::read_to_string(out.join(name)).unwrap(),
            fs::read_to_string(reference.join(name)).unwrap(),
            "{name} differs from the uninterrupted run's (after {stops} stops)"
        );
    }
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["complete"], true);
    let resumed = m["resumed"].as_array().map_or(0, Vec::len);
    assert!(resumed as u32 <= stops, "{m}");
    stops
}

#[test]
fn a_run_killed_at_random_points_resumes_to_the_same_results() {
    let dir = scratch("resume");
    // Noiseless images answered through a softmax: decision variables come from the cache,
    // which a resumed run refills from the journal.
    write(
        &dir,
        "e.psy",
        &experiment("observer { decision softmax(temperature: 0.05) }", 300),
    );
    let o = run(&dir, &["run", "e.psy", "--out", "ref"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut delays = Delays::new();
    let stops = kill_and_resume_until_done(&dir, &dir.join("ref"), &mut delays);
    assert!(
        stops >= 2,
        "the runs were hardly stopped ({stops}): nothing was tested"
    );
    // A finished run is not resumed.
    let o = run(&dir, &["run", "--resume", "out"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("psy::run::resume") && err.contains("is complete"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_noisy_observers_run_resumes_its_random_streams_where_they_were() {
    let dir = scratch("resume-noisy");
    // Pixel noise and position jitter: every trial's images are new, drawn from streams
    // that a resumed run must move on by exactly the replayed trials.
    write(
        &dir,
        "e.psy",
        &experiment(
            "observer { decision softmax(temperature: 0.05)  pixel_noise 0.02  position_jitter 1 }",
            40,
        ),
    );
    let o = run(&dir, &["run", "e.psy", "--out", "ref"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Killed in the middle of repeat 0's test (rounds in the journal), then resumed.
    kill_after_rounds(&dir, 10);
    let o = run(&dir, &["run", "--resume", "out"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for name in SAME {
        assert_eq!(
            fs::read_to_string(dir.join("out").join(name)).unwrap(),
            fs::read_to_string(dir.join("ref").join(name)).unwrap(),
            "{name} differs from the uninterrupted run's"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_run_resumes_only_with_the_plan_it_started_with() {
    let dir = scratch("resume-refused");
    write(
        &dir,
        "e.psy",
        &experiment("observer { decision softmax(temperature: 0.05) }", 300),
    );
    kill_after_rounds(&dir, 3);
    // Running into the folder again is refused, and the message says how to resume.
    let o = run(&dir, &["run", "e.psy", "--out", "out"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psyrun run --resume out"), "{err}");
    // The experiment changed since: another seed plans differently.
    let changed = fs::read_to_string(dir.join("e.psy"))
        .unwrap()
        .replace("seed 3", "seed 4");
    write(&dir, "e.psy", &changed);
    let o = run(&dir, &["run", "--resume", "out"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("psy::run::resume") && err.contains("plans differently"),
        "{err}"
    );
    // Nothing was changed by the refusal: the folder still resumes with the right file.
    assert!(dir.join("out/INCOMPLETE").exists());
    // A damaged journal (a line in the middle edited) is refused, not silently skipped.
    let journal = dir.join("out/journal.jsonl");
    let text_before = fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text_before.lines().collect();
    lines[2] = "{\"kind\":\"round\",\"repeat\":";
    fs::write(&journal, lines.join("\n") + "\n").unwrap();
    write(&dir, "e.psy", &changed.replace("seed 4", "seed 3"));
    let o = run(&dir, &["run", "--resume", "out"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("psy::run::resume") && err.contains("line 3"),
        "{err}"
    );
    // A folder that is no run.
    fs::create_dir_all(dir.join("empty")).unwrap();
    let o = run(&dir, &["run", "--resume", "empty"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("psy::run::resume"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_condition_of_a_sweep_resumes_with_its_overrides_and_condition() {
    // The sweep runner's call, killed and resumed with nothing but the folder: the manifest
    // holds the `--set` overrides and the condition, so the same plan is run again.
    let dir = scratch("resume-sweep");
    fs::create_dir_all(dir.join("common")).unwrap();
    write(
        &dir,
        "common/lab.psy",
        &experiment("observer { decision softmax(temperature: 0.05) }", 300),
    );
    write(
        &dir,
        "e.psy",
        "psy 1\nimport \"common/lab.psy\"\nexperiment e extends resumable {\n  sweep { seed [3, 5] }\n}\n",
    );
    let args = |out: &'static str| {
        [
            "run",
            "e.psy",
            "--condition",
            "2",
            "--set",
            "probe.epochs=1",
            "--out",
            out,
        ]
    };
    let o = run(&dir, &args("reference"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let child = torch_cmd(&dir, &args("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    super::wait_for_journal(&dir, "\"kind\":\"round\"", 3);
    super::kill("KILL", child.id());
    let _ = child.wait_with_output();
    assert!(dir.join("out/INCOMPLETE").exists());
    let o = run(&dir, &["run", "--resume", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    for f in SAME.iter().chain(&["plan.ron"]) {
        assert_eq!(
            fs::read(dir.join("out").join(f)).unwrap(),
            fs::read(dir.join("reference").join(f)).unwrap(),
            "{f}"
        );
    }
    let plan = fs::read_to_string(dir.join("out/plan.ron")).unwrap();
    assert!(
        plan.contains("seed: 5,") && plan.contains("epochs: 1,"),
        "{plan}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// An experiment written by its parts (issue 12) resumes like the tutorial's: killed in its
/// test (300 QUEST rounds over 4 axis values), resumed, it ends with the files of an
/// uninterrupted run.
#[test]
fn a_designed_experiment_resumes_to_the_same_results() {
    let dir = scratch("resume-design");
    let text = fs::read_to_string(crate::root().join("experiments/orientation_discrimination.psy"))
        .unwrap()
        .replace("size 64", "size 32")
        .replace("epochs 5", "epochs 1")
        .replace("samples 500", "samples 64")
        .replace("trials 32", "trials 300");
    assert!(text.contains("size 32") && text.contains("trials 300"));
    write(&dir, "e.psy", &text);
    let o = run(&dir, &["run", "e.psy", "--out", "ref"]);
    assert!(o.status.success(), "{}", super::text(&o.stderr));
    kill_after_rounds(&dir, 60);
    let journal = fs::read_to_string(dir.join("out/journal.jsonl")).unwrap();
    let rounds = journal.matches("\"kind\":\"round\"").count();
    assert!((60..300).contains(&rounds), "killed after {rounds} rounds");
    let o = run(&dir, &["run", "--resume", "out"]);
    assert!(o.status.success(), "{}", super::text(&o.stderr));
    for name in SAME {
        assert_eq!(
            fs::read_to_string(dir.join("out").join(name)).unwrap(),
            fs::read_to_string(dir.join("ref").join(name)).unwrap(),
            "{name} differs from the uninterrupted run's"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}
