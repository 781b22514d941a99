//! `psyrun sweep`, `psyrun collect` and the hidden `psyrun sweep-task`: an experiment's
//! conditions run one by one as child processes (`psyrun run COPY --condition ID`), locally
//! or as a Slurm job array, each into its own run folder of the sweep folder; finished
//! conditions are never run again, interrupted ones resume. The sweep folder's layout and
//! the combined results are `psyrun::report::sweep`'s.

use crate::{Ui, EXIT_INVALID, EXIT_OK, EXIT_RUN, EXIT_USAGE};
use psyrun::diag::{Code, Diag};
use psyrun::plan::sweep::{compile_experiment, Condition, Override, SourceRecord};
use psyrun::plan::{Network, Weights};
use psyrun::report::sweep::{
    folder_state, last_lines, now_rfc3339, now_stamp, read_attempt, status_of, write_attempt,
    write_results, Attempt, FolderState, SlurmRecord, Status, SweepCondition, SweepManifest,
    SweptValue, SWEEP_FORMAT, SWEEP_JSON,
};
use psyrun::report::{safe_name, sha256_bytes, write_atomic, PSYRUN_VERSION};
use psyrun::source::SourceFile;
use std::fs;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Arguments of `psyrun sweep`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = SWEEP_AFTER_HELP)]
pub struct SweepArgs {
    /// The experiment file (`.psy`), with its `sweep { … }` blocks.
    pub file: PathBuf,
    /// Override a setting, as `psyrun run --set` does (every condition gets it).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<Override>,
    /// The sweep folder (default: `runs/<experiment>/sweep/`). Running again into it
    /// continues the sweep.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run every condition again: the finished and interrupted conditions' folders are
    /// moved to `replaced/<id>-<time>/` in the sweep folder first (nothing is deleted).
    #[arg(long)]
    pub force: bool,
    /// CPU threads of each condition's run (default: one per core).
    #[arg(long, value_parser = crate::parse_threads)]
    pub threads: Option<u16>,
    /// Write a Slurm job array (`slurm/job.sh`) and submit it with `sbatch` instead of
    /// running the conditions here.
    #[arg(long)]
    pub slurm: bool,
    /// Slurm partition (`#SBATCH --partition`).
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// Time limit of each task (`#SBATCH --time`, e.g. `2:00:00`).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// GPUs per task (`#SBATCH --gres=gpu:N`).
    #[arg(long, requires = "slurm")]
    pub gpus: Option<u32>,
    /// CPUs per task (`#SBATCH --cpus-per-task`; also each run's threads unless --threads).
    #[arg(long, requires = "slurm", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub cpus_per_task: Option<u32>,
    /// Memory per task (`#SBATCH --mem`, e.g. `16G`).
    #[arg(long, requires = "slurm")]
    pub mem: Option<String>,
    /// At most K tasks at once (`--array=0-N%K`).
    #[arg(long, requires = "slurm", value_parser = clap::value_parser!(u32).range(1..))]
    pub array_limit: Option<u32>,
    /// Conditions per task, run one after the other (default 1).
    #[arg(long, requires = "slurm", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub per_task: Option<u32>,
    /// Write the sweep folder and the job script, but do not submit.
    #[arg(long, requires = "slurm")]
    pub dry_run: bool,
}

const SWEEP_AFTER_HELP: &str = "\
Examples:
  psyrun sweep experiments/layer_profile.psy                 every condition, one after the other
  psyrun sweep experiments/layer_profile.psy --set probe.epochs=1 --out runs/try
  psyrun sweep experiments/layer_profile.psy --slurm --partition gpu --gpus 1 --time 1:00:00
  psyrun collect runs/layer_profile/sweep                    merge what finished, list the rest

A condition whose results are complete is skipped; an interrupted one resumes. Exit status:
0 every condition complete, 3 a condition failed, 130/143/129 interrupted.";

/// Which signal stopped the sweep (0: none) and how many arrived.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNALS: AtomicU32 = AtomicU32::new(0);

/// Catches SIGINT, SIGTERM and SIGHUP on a thread of its own: the sweep stops after passing
/// each signal on to the condition that runs (which stops at its next safe point).
fn catch_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in signals.forever() {
                let _ = SIGNAL.compare_exchange(0, s, Ordering::SeqCst, Ordering::SeqCst);
                SIGNALS.fetch_add(1, Ordering::SeqCst);
            }
        });
}

fn stopped() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}

/// 128 + the first signal's number.
fn signal_exit() -> u8 {
    match SIGNAL.load(Ordering::SeqCst) {
        signal_hook::consts::SIGTERM => crate::EXIT_TERMINATED,
        signal_hook::consts::SIGHUP => crate::EXIT_HANGUP,
        _ => crate::EXIT_INTERRUPTED,
    }
}

fn folder_error(message: String, help: &str) -> Diag {
    Diag::error(Code::SweepFolder, message).with_help(help.to_string())
}

fn io_diag(what: &str, e: std::io::Error) -> Diag {
    folder_error(
        format!("{what}: {e}"),
        "check the disk space and the folder's permissions",
    )
}

/// `psyrun sweep FILE …`.
pub(crate) fn sweep(args: &SweepArgs, ui: &Ui) -> ExitCode {
    catch_signals();
    let file = match SourceFile::read(&args.file) {
        Ok(f) => f,
        Err(d) => {
            ui.report(&[d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let compiled = compile_experiment(&file, &args.file, &args.set);
    ui.report(&compiled.diags);
    let Some(conditions) = compiled.conditions else {
        return ExitCode::from(EXIT_INVALID);
    };
    if conditions.is_empty() {
        return ExitCode::from(EXIT_INVALID);
    }
    // Nothing is written when conditions could not run (a build without libtorch).
    let exe = match this_exe() {
        Ok(e) => e,
        Err(d) => {
            ui.report(&[*d]);
            return ExitCode::from(crate::EXIT_UNAVAILABLE);
        }
    };
    let experiment = conditions[0].plan.experiment.clone();
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(safe_name(&experiment)).join("sweep"));
    let manifest = match prepare(args, &dir, &experiment, &conditions, &compiled.sources) {
        Ok(m) => m,
        Err(d) => {
            ui.report(&[*d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    eprintln!(
        "sweep {experiment}: {} condition{} in {}",
        conditions.len(),
        plural(conditions.len()),
        dir.display()
    );
    if args.slurm {
        return submit(args, &dir, manifest, &exe, ui);
    }
    run_locally(&dir, manifest, &exe, ui)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Makes or reopens the sweep folder: checks that it is this experiment's (or new, or
/// empty), copies the sources, moves conditions aside with `--force`, and writes
/// `sweep.json` with every condition's status as its folder shows it.
fn prepare(
    args: &SweepArgs,
    dir: &Path,
    experiment: &str,
    conditions: &[Condition],
    sources: &[SourceRecord],
) -> Result<SweepManifest, Box<Diag>> {
    let old = open_folder(dir, experiment)?;
    for sub in ["conditions", "logs", "status", "sources"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| {
            Box::new(io_diag(
                &format!("cannot create `{}`", dir.join(sub).display()),
                e,
            ))
        })?;
    }
    let (copy, copies) = copy_sources(dir, sources)?;
    let orig_dir = args.file.parent().unwrap_or(Path::new(""));
    link_files(dir, &copy, conditions, orig_dir);
    let mut swept: Vec<String> = Vec::new();
    for c in conditions {
        for (p, _) in &c.values {
            if !swept.contains(p) {
                swept.push(p.clone());
            }
        }
    }
    let mut records = Vec::new();
    for c in conditions {
        let folder = format!("conditions/{}", c.id);
        let log = format!("logs/{}.log", c.id);
        if args.force {
            move_aside(dir, &c.id)?;
        }
        records.push(SweepCondition {
            // Counted from 1, as `psyrun plan` and `--condition` count.
            index: c.index + 1,
            id: c.id.clone(),
            values: c
                .values
                .iter()
                .map(|(p, v)| SweptValue {
                    path: p.clone(),
                    value: v.clone(),
                })
                .collect(),
            folder,
            status: Status::Pending,
            exit: None,
            log,
            torchscript: derived_in_run(c),
        });
        let record = records.last_mut().expect("just pushed");
        let (status, attempt) = current_status(dir, record);
        record.status = status;
        record.exit = attempt
            .filter(|a| a.status != Status::Complete)
            .and_then(|a| a.exit);
    }
    let now = now_rfc3339();
    let manifest = SweepManifest {
        format: SWEEP_FORMAT,
        experiment: experiment.to_string(),
        psyrun_version: PSYRUN_VERSION.to_string(),
        created: old
            .as_ref()
            .map_or_else(|| now.clone(), |o| o.created.clone()),
        updated: now,
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        file: args.file.display().to_string(),
        copy,
        sources: copies,
        overrides: args
            .set
            .iter()
            .map(|o| format!("{}={}", o.path, o.value))
            .collect(),
        threads: args.threads.or_else(|| {
            args.cpus_per_task
                .filter(|_| args.slurm)
                .and_then(|c| u16::try_from(c).ok())
        }),
        swept,
        conditions: records,
        slurm: old.and_then(|o| o.slurm),
    };
    manifest.write(dir).map_err(|e| {
        Box::new(io_diag(
            &format!("cannot write `{}`", dir.join(SWEEP_JSON).display()),
            e,
        ))
    })?;
    Ok(manifest)
}

/// A TorchScript backbone's run fills in the plan's shapes, so its `plan.ron` does not hash
/// to the condition's id.
fn derived_in_run(c: &Condition) -> bool {
    matches!(c.plan.backbone.network, Network::TorchScript { .. })
}

/// The sweep folder's `sweep.json` if it has one (of this experiment: another's is
/// refused); `None` for a new or empty folder; a folder with other files is refused.
fn open_folder(dir: &Path, experiment: &str) -> Result<Option<SweepManifest>, Box<Diag>> {
    let help = "give another --out, or remove the folder";
    match fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Box::new(io_diag(
                &format!("cannot read `{}`", dir.display()),
                e,
            )))
        }
        Ok(m) if !m.is_dir() => {
            return Err(Box::new(folder_error(
                format!("`{}` exists and is not a folder", dir.display()),
                help,
            )))
        }
        Ok(_) => {}
    }
    if !dir.join(SWEEP_JSON).exists() {
        let empty = fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
        if empty {
            return Ok(None);
        }
        return Err(Box::new(folder_error(
            format!(
                "`{}` is not empty and holds no {SWEEP_JSON}: it is not a sweep folder",
                dir.display()
            ),
            help,
        )));
    }
    let old = SweepManifest::read(dir).map_err(|e| {
        Box::new(folder_error(
            e.to_string(),
            "give another --out; a damaged sweep.json can be removed, and the next sweep \
             writes it again (finished conditions are kept)",
        ))
    })?;
    if old.experiment != experiment {
        return Err(Box::new(folder_error(
            format!(
                "`{}` is the sweep folder of the experiment `{}`, not `{experiment}`",
                dir.display(),
                old.experiment
            ),
            "give another --out: results of two experiments are never mixed",
        )));
    }
    Ok(Some(old))
}

fn absolute(path: &Path) -> PathBuf {
    let p = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    psyrun::plan::sweep::normalize_path(&p)
}

/// Copies the sources into `sources/`, laid out relative to the folder that holds them all
/// (so that imports still resolve from the copy). Returns the copy of the top file and
/// every copy's record.
fn copy_sources(
    dir: &Path,
    sources: &[SourceRecord],
) -> Result<(String, Vec<psyrun::report::sweep::SweepSource>), Box<Diag>> {
    let abs: Vec<PathBuf> = sources.iter().map(|s| absolute(&s.path)).collect();
    let mut root = abs
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for p in &abs {
        while !p.starts_with(&root) {
            if !root.pop() {
                break;
            }
        }
    }
    let mut records = Vec::new();
    for (s, a) in sources.iter().zip(&abs) {
        let rel = a.strip_prefix(&root).unwrap_or(a);
        let rel = Path::new("sources").join(rel);
        let target = dir.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| {
                Box::new(io_diag(&format!("cannot create `{}`", parent.display()), e))
            })?;
        }
        // The bytes the experiment was compiled from, not the file as it may be now.
        write_atomic(&target, s.text.as_bytes())
            .map_err(|e| Box::new(io_diag("cannot copy the sources", e)))?;
        records.push(psyrun::report::sweep::SweepSource {
            path: s.path.display().to_string(),
            copy: rel.display().to_string(),
            sha256: sha256_bytes(s.text.as_bytes()),
        });
    }
    let copy = records.first().map(|r| r.copy.clone()).unwrap_or_default();
    Ok((copy, records))
}

/// Weights and TorchScript files named by a relative path are found from the experiment's
/// folder (`orig_dir`); the copy's folder gets a symbolic link to each (absolute), so the
/// copy finds them too. Paths that climb out of the copy's folder (`../w.pth`) are left
/// alone (the run then says the file is missing: write such paths absolute).
fn link_files(dir: &Path, copy: &str, conditions: &[Condition], orig_dir: &Path) {
    let Some(copy_dir) = Path::new(copy).parent() else {
        return;
    };
    for c in conditions {
        let rel = match &c.plan.backbone.network {
            Network::Catalog(net) => match &net.weights {
                Weights::File(p) => PathBuf::from(p),
                _ => continue,
            },
            Network::TorchScript { file } => PathBuf::from(file),
        };
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            continue;
        }
        let target = absolute(&orig_dir.join(&rel));
        let link = dir.join(copy_dir).join(&rel);
        if let Some(parent) = link.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let _ = fs::remove_file(&link);
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink(&target, &link);
    }
}

/// `--force`: moves a condition's run folder, status and log to `replaced/<id>-<time>/`
/// (refused while another process runs the condition).
fn move_aside(dir: &Path, id: &str) -> Result<(), Box<Diag>> {
    if matches!(try_lock(dir, id), Ok(None)) {
        return Err(Box::new(folder_error(
            format!(
                "condition {id} of `{}` is running in another process (a sweep or a Slurm \
                 task): --force cannot move it aside",
                dir.display()
            ),
            "wait for it or stop it (`scancel` for a Slurm job), then run with --force again",
        )));
    }
    let folder = dir.join("conditions").join(id);
    if !folder.exists() {
        let _ = fs::remove_file(dir.join("status").join(format!("{id}.json")));
        return Ok(());
    }
    let aside = dir.join("replaced").join(format!("{id}-{}", now_stamp()));
    fs::create_dir_all(&aside)
        .and_then(|()| fs::rename(&folder, aside.join("run")))
        .map_err(|e| {
            Box::new(io_diag(
                &format!("cannot move `{}` aside", folder.display()),
                e,
            ))
        })?;
    let _ = fs::rename(
        dir.join("status").join(format!("{id}.json")),
        aside.join("status.json"),
    );
    let _ = fs::rename(
        dir.join("logs").join(format!("{id}.log")),
        aside.join("log"),
    );
    Ok(())
}

/// What happened to one condition.
struct Outcome {
    status: Status,
    exit: Option<i32>,
}

fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Runs one condition (or skips it, or resumes it) as `psyrun run`, its output appended
/// to its log; prints one line `[k/n] values … what happened` on stderr. Shared by the local
/// sweep and the Slurm tasks.
fn run_condition(dir: &Path, manifest: &SweepManifest, c: &SweepCondition, exe: &Path) -> Outcome {
    let n = manifest.conditions.len();
    let mut err = std::io::stderr();
    let _ = write!(err, "[{}/{n}] {} … ", c.index, c.label());
    let _ = err.flush();
    let folder = dir.join(&c.folder);
    let torchscript = c.torchscript;
    let state = folder_state(&folder, &c.id, torchscript);
    let log_path = dir.join(&c.log);
    let fail = |why: String| {
        let _ = writeln!(std::io::stderr(), "FAILED ({why})");
        Outcome {
            status: Status::Failed,
            exit: None,
        }
    };
    if state == FolderState::Complete {
        let _ = writeln!(err, "skipped (complete)");
        return Outcome {
            status: Status::Complete,
            exit: None,
        };
    }
    // Held until the run ends (dropped with this function).
    let _lock = match try_lock(dir, &c.id) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            let _ = writeln!(err, "skipped (running in another process)");
            return Outcome {
                status: Status::Running,
                exit: None,
            };
        }
        Err(e) => {
            return fail(format!(
                "cannot lock `{}`: {e}",
                dir.join("status").display()
            ))
        }
    };
    // The run may have finished in another process while this one waited for the lock.
    let state = folder_state(&folder, &c.id, torchscript);
    let resume = match state {
        FolderState::Complete => {
            let _ = writeln!(err, "skipped (complete)");
            return Outcome {
                status: Status::Complete,
                exit: None,
            };
        }
        FolderState::Foreign => {
            let why = format!(
                "`{}` holds another run; `--force` moves it aside",
                folder.display()
            );
            let attempt = Attempt {
                id: c.id.clone(),
                index: c.index,
                status: Status::Failed,
                exit: None,
                host: host(),
                started: now_rfc3339(),
                finished: Some(now_rfc3339()),
                seconds: Some(0.0),
                command: Vec::new(),
            };
            let _ = write_attempt(dir, &attempt);
            let _ = append_log(&log_path, &format!("{why}\n"));
            return fail(why);
        }
        FolderState::Unstarted => {
            // Killed before it held its plan: nothing measured, nothing to resume.
            if let Err(e) = fs::remove_dir_all(&folder) {
                return fail(format!("cannot remove `{}`: {e}", folder.display()));
            }
            false
        }
        FolderState::Resumable => true,
        FolderState::Missing => {
            let _ = fs::remove_dir(&folder);
            false
        }
    };
    let copy = dir.join(&manifest.copy);
    let mut command: Vec<String> = vec![
        exe.display().to_string(),
        "run".into(),
        copy.display().to_string(),
        "--condition".into(),
        c.id.clone(),
        if resume { "--resume" } else { "--out" }.into(),
        folder.display().to_string(),
        "--color".into(),
        "never".into(),
    ];
    for o in &manifest.overrides {
        command.push("--set".into());
        command.push(o.clone());
    }
    // A resumed run keeps the thread count it started with (its training is redone and
    // must match the journal to the last bit).
    if let Some(t) = manifest.threads.filter(|_| !resume) {
        command.push("--threads".into());
        command.push(t.to_string());
    }
    let started = now_rfc3339();
    let mut attempt = Attempt {
        id: c.id.clone(),
        index: c.index,
        status: Status::Running,
        exit: None,
        host: host(),
        started: started.clone(),
        finished: None,
        seconds: None,
        command: command.clone(),
    };
    let _ = write_attempt(dir, &attempt);
    let header = format!(
        "\n=== {started} on {}: {}\n",
        attempt.host,
        command.join(" ")
    );
    let log = match append_log(&log_path, &header) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot write `{}`: {e}", log_path.display())),
    };
    let t0 = Instant::now();
    let status = match spawn_and_wait(&command, log) {
        Ok(code) => code,
        Err(e) => return fail(format!("cannot start `{}`: {e}", exe.display())),
    };
    let seconds = t0.elapsed().as_secs_f64();
    let after = folder_state(&folder, &c.id, torchscript);
    let outcome = match (status, after) {
        (_, FolderState::Complete) => Status::Complete,
        (Some(130 | 143 | 129), _) => Status::Incomplete,
        (None, _) if stopped() => Status::Incomplete,
        _ => Status::Failed,
    };
    attempt.status = outcome;
    attempt.exit = status;
    attempt.finished = Some(now_rfc3339());
    attempt.seconds = Some(seconds);
    let _ = write_attempt(dir, &attempt);
    let verb = if resume { "resumed, done" } else { "done" };
    let _ = match outcome {
        Status::Complete => writeln!(err, "{verb} in {}", secs(seconds)),
        Status::Incomplete => writeln!(
            err,
            "interrupted after {} (resumable: run the sweep again)",
            secs(seconds)
        ),
        _ => writeln!(
            err,
            "FAILED ({}, log: {})",
            status.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}")),
            log_path.display()
        ),
    };
    Outcome {
        status: outcome,
        exit: status,
    }
}

fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

fn append_log(path: &Path, text: &str) -> std::io::Result<fs::File> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(f)
}

/// Runs `command` with its output going to `log`, in a process group of its own (so a
/// terminal's Ctrl-C reaches the sweep, which passes each signal on exactly once). Returns
/// the exit status (`None` when a signal ended it).
fn spawn_and_wait(command: &[String], log: fs::File) -> std::io::Result<Option<i32>> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn()?;
    let mut passed = 0;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        let received = SIGNALS.load(Ordering::SeqCst);
        while passed < received {
            passed += 1;
            #[cfg(unix)]
            // SAFETY: kill(2) with a child's pid and a signal number has no memory effects.
            unsafe {
                libc::kill(child.id() as i32, SIGNAL.load(Ordering::SeqCst));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The binary to run conditions with: this one, which hands `run` to `psyrun-torch` (which
/// must be there: `psy::run::unavailable` otherwise, before anything runs).
fn this_exe() -> Result<PathBuf, Box<Diag>> {
    crate::commands::torch_binary()?;
    std::env::current_exe().map_err(|e| {
        Box::new(Diag::error(
            Code::RunUnavailable,
            format!("cannot locate this executable: {e}"),
        ))
    })
}

/// An exclusive lock on a condition (`status/<id>.lock`), held while it runs, so that two
/// sweeps of one folder (a local one and a Slurm task, two resubmissions) never run the same
/// condition at once. `None` when another process holds it.
fn try_lock(dir: &Path, id: &str) -> std::io::Result<Option<fs::File>> {
    let folder = dir.join("status");
    fs::create_dir_all(&folder)?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(folder.join(format!("{id}.lock")))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// A condition's status now: its folder's state and its last attempt, an attempt recorded as
/// running counting only while its lock is held (else it was killed).
fn current_status(dir: &Path, c: &SweepCondition) -> (Status, Option<Attempt>) {
    let state = folder_state(&dir.join(&c.folder), &c.id, c.torchscript);
    let attempt = read_attempt(dir, &c.id).map(|mut a| {
        if a.status == Status::Running && matches!(try_lock(dir, &c.id), Ok(Some(_))) {
            a.status = Status::Incomplete;
        }
        a
    });
    (status_of(state, attempt.as_ref()), attempt)
}

/// Every condition here, one after the other; then the combined results.
fn run_locally(dir: &Path, mut manifest: SweepManifest, exe: &Path, ui: &Ui) -> ExitCode {
    let t0 = Instant::now();
    for i in 0..manifest.conditions.len() {
        if stopped() {
            break;
        }
        let c = manifest.conditions[i].clone();
        let outcome = run_condition(dir, &manifest, &c, exe);
        manifest.conditions[i].status = outcome.status;
        manifest.conditions[i].exit = outcome.exit;
        manifest.updated = now_rfc3339();
        if let Err(e) = manifest.write(dir) {
            ui.report(&[io_diag("cannot write sweep.json", e)]);
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let code = finish(dir, &mut manifest, ui);
    eprintln!("sweep took {}", secs(t0.elapsed().as_secs_f64()));
    if stopped() {
        eprintln!(
            "stopped by a signal: run the same `psyrun sweep` again to continue (finished \
             conditions are kept, the interrupted one resumes)"
        );
        return ExitCode::from(signal_exit());
    }
    code
}

/// Looks at every condition's folder, writes the combined results and `sweep.json`, and
/// reports what is complete, failed and missing. Exit 0 when every condition is complete.
fn finish(dir: &Path, manifest: &mut SweepManifest, ui: &Ui) -> ExitCode {
    let mut complete = Vec::new();
    for c in &mut manifest.conditions {
        let (status, attempt) = current_status(dir, c);
        c.status = status;
        if let Some(a) = attempt.filter(|a| a.status != Status::Complete) {
            c.exit = a.exit;
        }
        if c.status == Status::Complete {
            complete.push(c.index);
        }
    }
    manifest.updated = now_rfc3339();
    if let Err(e) = manifest.write(dir) {
        ui.report(&[io_diag("cannot write sweep.json", e)]);
        return ExitCode::from(EXIT_USAGE);
    }
    let results = match write_results(dir, manifest, &complete) {
        Ok(r) => r,
        Err(e) => {
            ui.report(&[io_diag("cannot write the sweep's results", e)]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let n = manifest.conditions.len();
    let mut out = format!(
        "sweep {}: {} of {n} condition{} complete\n",
        manifest.experiment,
        complete.len(),
        plural(n)
    );
    if !complete.is_empty() {
        out.push_str(&format!(
            "results: {}\n",
            results
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let failed: Vec<&SweepCondition> = manifest
        .conditions
        .iter()
        .filter(|c| c.status == Status::Failed)
        .collect();
    let missing: Vec<&SweepCondition> = manifest
        .conditions
        .iter()
        .filter(|c| !matches!(c.status, Status::Failed | Status::Complete))
        .collect();
    for c in &failed {
        let log = dir.join(&c.log);
        out.push_str(&format!(
            "failed: [{}] {} ({}): {}, log: {}\n",
            c.index,
            c.label(),
            c.id,
            c.exit
                .map_or_else(|| "no exit status".to_string(), |e| format!("exit {e}")),
            log.display()
        ));
        for l in last_lines(&log, 8) {
            out.push_str(&format!("    | {l}\n"));
        }
    }
    for c in &missing {
        out.push_str(&format!(
            "missing: [{}] {} ({}): {}\n",
            c.index,
            c.label(),
            c.id,
            match c.status {
                Status::Running => "running (in another process)",
                Status::Incomplete => "interrupted (resumable)",
                _ => "not run",
            }
        ));
    }
    if !failed.is_empty() || !missing.is_empty() {
        out.push_str(&format!("{}\n", resubmit_hint(dir, manifest)));
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    if !failed.is_empty() {
        ui.report(&[Diag::error(
            Code::SweepFailed,
            format!("{} of {n} condition{} failed", failed.len(), plural(n)),
        )
        .with_help(
            "each failed condition's log is named above; fix the cause and run the \
                    sweep again (complete conditions are skipped)",
        )]);
    }
    if complete.len() == n {
        ExitCode::from(EXIT_OK)
    } else {
        ExitCode::from(EXIT_RUN)
    }
}

/// How to run only what is not complete: `sbatch --array=…` for a Slurm sweep, else the
/// sweep command again.
fn resubmit_hint(dir: &Path, manifest: &SweepManifest) -> String {
    let todo: Vec<&SweepCondition> = manifest
        .conditions
        .iter()
        .filter(|c| c.status != Status::Complete)
        .collect();
    match &manifest.slurm {
        Some(s) => {
            let mut tasks: Vec<usize> = todo.iter().map(|c| s.task_of(c.index)).collect();
            tasks.dedup();
            format!(
                "resubmit only these: sbatch --array={} {}",
                tasks
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                shell_quote(&absolute(dir).join(&s.script).display().to_string())
            )
        }
        None => {
            let mut cmd = format!("psyrun sweep {}", shell_quote(&manifest.file));
            for o in &manifest.overrides {
                cmd.push_str(&format!(" --set {}", shell_quote(o)));
            }
            cmd.push_str(&format!(
                " --out {}",
                shell_quote(&dir.display().to_string())
            ));
            format!("run them: {cmd}   (complete conditions are skipped)")
        }
    }
}

/// A word for a POSIX shell: as it is when it is plain, else in single quotes.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `psyrun collect DIR`.
pub(crate) fn collect(dir: &Path, ui: &Ui) -> ExitCode {
    let mut manifest = match read_sweep(dir) {
        Ok(m) => m,
        Err(d) => {
            ui.report(&[*d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    finish(dir, &mut manifest, ui)
}

fn read_sweep(dir: &Path) -> Result<SweepManifest, Box<Diag>> {
    SweepManifest::read(dir).map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "`{}` is not a sweep folder (it has no {SWEEP_JSON})",
                dir.display()
            )
        } else {
            e.to_string()
        };
        Box::new(
            Diag::error(Code::SweepNotASweep, message).with_help(
                "give the folder `psyrun sweep` made (default `runs/<experiment>/sweep`)",
            ),
        )
    })
}

/// `psyrun sweep-task DIR TASK --per-task P` (what each Slurm array task runs): conditions
/// `TASK·P` to `TASK·P + P − 1`, with the local sweep's skip and resume. Exit 0 when they are
/// complete, 3 when one failed, 128 + the signal's number when stopped.
pub(crate) fn sweep_task(dir: &Path, task: usize, per_task: usize, ui: &Ui) -> ExitCode {
    catch_signals();
    let manifest = match read_sweep(dir) {
        Ok(m) => m,
        Err(d) => {
            ui.report(&[*d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let exe = match this_exe() {
        Ok(e) => e,
        Err(d) => {
            ui.report(&[*d]);
            return ExitCode::from(crate::EXIT_UNAVAILABLE);
        }
    };
    let per_task = per_task.max(1);
    // Task T runs conditions T·P + 1 to T·P + P (conditions count from 1, tasks from 0).
    let first = task.saturating_mul(per_task).saturating_add(1);
    let mine: Vec<SweepCondition> = manifest
        .conditions
        .iter()
        .filter(|c| c.index >= first && c.index < first.saturating_add(per_task))
        .cloned()
        .collect();
    if mine.is_empty() {
        ui.report(&[Diag::error(
            Code::SweepCondition,
            format!(
                "task {task} has no condition: the sweep has {} (at {per_task} a task)",
                manifest.conditions.len()
            ),
        )]);
        return ExitCode::from(EXIT_USAGE);
    }
    let mut code = EXIT_OK;
    for c in &mine {
        if stopped() {
            break;
        }
        let o = run_condition(dir, &manifest, c, &exe);
        if o.status != Status::Complete {
            code = EXIT_RUN;
        }
    }
    if stopped() {
        return ExitCode::from(signal_exit());
    }
    ExitCode::from(code)
}

/// `--slurm`: writes `slurm/job.sh`, submits it (unless `--dry-run`), records the job.
fn submit(
    args: &SweepArgs,
    dir: &Path,
    mut manifest: SweepManifest,
    exe: &Path,
    ui: &Ui,
) -> ExitCode {
    let abs_dir = absolute(dir);
    let per_task = args.per_task.unwrap_or(1) as usize;
    let n = manifest.conditions.len();
    let tasks = n.div_ceil(per_task);
    let script = job_script(args, &abs_dir, exe, &manifest.experiment, tasks, per_task);
    let slurm = abs_dir.join("slurm");
    let written = fs::create_dir_all(slurm.join("logs"))
        .and_then(|()| write_atomic(slurm.join("job.sh"), script.as_bytes()))
        .and_then(|()| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(slurm.join("job.sh"), fs::Permissions::from_mode(0o755))?;
            }
            Ok(())
        });
    if let Err(e) = written {
        ui.report(&[io_diag("cannot write slurm/job.sh", e)]);
        return ExitCode::from(EXIT_USAGE);
    }
    let job = slurm.join("job.sh");
    let mut record = SlurmRecord {
        job_id: None,
        script: "slurm/job.sh".to_string(),
        tasks,
        per_task,
        submitted: None,
    };
    if args.dry_run {
        manifest.slurm = Some(record);
        if let Err(e) = manifest.write(dir) {
            ui.report(&[io_diag("cannot write sweep.json", e)]);
            return ExitCode::from(EXIT_USAGE);
        }
        println!(
            "wrote {} ({tasks} task{}, not submitted)",
            job.display(),
            plural(tasks)
        );
        println!(
            "submit it:  sbatch {}",
            shell_quote(&job.display().to_string())
        );
        println!(
            "then:       psyrun collect {}",
            shell_quote(&abs_dir.display().to_string())
        );
        return ExitCode::from(EXIT_OK);
    }
    let sbatch = std::env::var_os("PSYRUN_SBATCH").unwrap_or_else(|| "sbatch".into());
    let output = Command::new(&sbatch)
        .arg("--parsable")
        .arg(&job)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            ui.report(&[Diag::error(
                Code::SweepSlurm,
                format!("cannot run `{}`: {e}", sbatch.to_string_lossy()),
            )
            .with_help(format!(
                "run this on a Slurm login node (where `sbatch` is on the PATH); the job script is \
                 written: `sbatch {}` submits it by hand",
                job.display()
            ))]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let job_id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if !output.status.success() || job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit())
    {
        ui.report(&[Diag::error(
            Code::SweepSlurm,
            format!(
                "sbatch refused the job ({}): {}",
                output
                    .status
                    .code()
                    .map_or_else(|| "killed".to_string(), |c| format!("exit {c}")),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        )
        .with_help(format!(
            "check the Slurm options (partition, time, gpus, memory); the job script is {}",
            job.display()
        ))]);
        return ExitCode::from(EXIT_USAGE);
    }
    record.job_id = Some(job_id.clone());
    record.submitted = Some(now_rfc3339());
    manifest.slurm = Some(record);
    if let Err(e) = manifest.write(dir) {
        ui.report(&[io_diag("cannot write sweep.json", e)]);
        return ExitCode::from(EXIT_USAGE);
    }
    let d = shell_quote(&abs_dir.display().to_string());
    println!(
        "submitted job {job_id}: {tasks} task{} for {n} condition{}",
        plural(tasks),
        plural(n)
    );
    println!("follow it:  squeue -j {job_id}");
    println!(
        "logs:       {}/slurm/logs/{job_id}_<task>.out",
        abs_dir.display()
    );
    println!("results:    psyrun collect {d}");
    ExitCode::from(EXIT_OK)
}

/// The job array script: every `#SBATCH` option, then one line that runs this very binary
/// on the sweep folder (whose copy of the sources the conditions run from).
fn job_script(
    args: &SweepArgs,
    dir: &Path,
    exe: &Path,
    experiment: &str,
    tasks: usize,
    per_task: usize,
) -> String {
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# psyrun sweep of `{experiment}`: {tasks} task{}, {per_task} condition{} each.\n\
         # Written by psyrun {PSYRUN_VERSION}; resubmit some tasks with `sbatch --array=3,7 THIS`.\n",
        plural(tasks),
        plural(per_task)
    ));
    let name: String = format!("psyrun-{}", safe_name(experiment));
    s.push_str(&format!("#SBATCH --job-name={name}\n"));
    let array = match args.array_limit {
        Some(k) => format!("0-{}%{k}", tasks - 1),
        None => format!("0-{}", tasks - 1),
    };
    s.push_str(&format!("#SBATCH --array={array}\n"));
    s.push_str(&format!(
        "#SBATCH --output={}/slurm/logs/%A_%a.out\n",
        dir.display()
    ));
    s.push_str("#SBATCH --open-mode=append\n");
    if let Some(p) = &args.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(t) = &args.time {
        s.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(g) = args.gpus {
        s.push_str(&format!("#SBATCH --gres=gpu:{g}\n"));
    }
    if let Some(c) = args.cpus_per_task {
        s.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
    }
    if let Some(m) = &args.mem {
        s.push_str(&format!("#SBATCH --mem={m}\n"));
    }
    s.push_str("set -u\n");
    s.push_str(&format!(
        "exec {} sweep-task {} \"$SLURM_ARRAY_TASK_ID\" --per-task {per_task}\n",
        q(exe),
        q(dir)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(index: usize, status: Status) -> SweepCondition {
        SweepCondition {
            index,
            id: format!("{index:012}"),
            values: vec![SweptValue {
                path: "seed".into(),
                value: index.to_string(),
            }],
            folder: format!("conditions/{index:012}"),
            status,
            exit: None,
            log: format!("logs/{index:012}.log"),
            torchscript: false,
        }
    }

    fn manifest(conditions: Vec<SweepCondition>, slurm: Option<SlurmRecord>) -> SweepManifest {
        SweepManifest {
            format: SWEEP_FORMAT,
            experiment: "e".into(),
            psyrun_version: PSYRUN_VERSION.into(),
            created: "t".into(),
            updated: "t".into(),
            command_line: vec![],
            file: "my experiments/e.psy".into(),
            copy: "sources/e.psy".into(),
            sources: vec![],
            overrides: vec!["probe.epochs=1".into()],
            threads: None,
            swept: vec!["seed".into()],
            conditions,
            slurm,
        }
    }

    #[test]
    fn words_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_quote("runs/e/sweep"), "runs/e/sweep");
        assert_eq!(shell_quote("my runs/e"), "'my runs/e'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn resubmission_names_the_tasks_of_what_is_not_complete() {
        let conds = vec![
            condition(1, Status::Complete),
            condition(2, Status::Failed),
            condition(3, Status::Pending),
            condition(4, Status::Complete),
            condition(5, Status::Incomplete),
        ];
        let slurm = |per_task| SlurmRecord {
            job_id: Some("7".into()),
            script: "slurm/job.sh".into(),
            tasks: 5,
            per_task,
            submitted: None,
        };
        let dir = Path::new("/scratch/sw");
        let m = manifest(conds.clone(), Some(slurm(1)));
        assert_eq!(
            resubmit_hint(dir, &m),
            "resubmit only these: sbatch --array=1,2,4 /scratch/sw/slurm/job.sh"
        );
        // Two conditions a task: conditions 2 and 3 are task 1, condition 5 is task 2.
        let m = manifest(conds.clone(), Some(slurm(2)));
        assert_eq!(
            resubmit_hint(dir, &m),
            "resubmit only these: sbatch --array=0,1,2 /scratch/sw/slurm/job.sh"
        );
        let m = manifest(conds, None);
        assert_eq!(
            resubmit_hint(dir, &m),
            "run them: psyrun sweep 'my experiments/e.psy' --set probe.epochs=1 --out \
             /scratch/sw   (complete conditions are skipped)"
        );
    }

    #[test]
    fn job_scripts_cover_every_condition_in_tasks() {
        let args = SweepArgs {
            file: "e.psy".into(),
            set: vec![],
            out: None,
            force: false,
            threads: None,
            slurm: true,
            partition: None,
            time: None,
            gpus: None,
            cpus_per_task: None,
            mem: None,
            array_limit: Some(3),
            per_task: Some(2),
            dry_run: true,
        };
        let s = job_script(
            &args,
            Path::new("/scratch/my sweep"),
            Path::new("/opt/psyrun/bin/psyrun"),
            "e",
            5usize.div_ceil(2),
            2,
        );
        assert!(s.starts_with("#!/bin/bash\n"), "{s}");
        assert!(s.contains("\n#SBATCH --array=0-2%3\n"), "{s}");
        assert!(s.contains("\n#SBATCH --job-name=psyrun-e\n"), "{s}");
        assert!(!s.contains("--partition") && !s.contains("--gres"), "{s}");
        assert!(s.ends_with(
            "exec /opt/psyrun/bin/psyrun sweep-task '/scratch/my sweep' \"$SLURM_ARRAY_TASK_ID\" \
             --per-task 2\n"
        ));
    }

    #[test]
    fn sources_are_copied_below_the_folder_that_holds_them_all() {
        let dir = std::env::temp_dir().join(format!("psyrun-cli-sweep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let record = |path: &str, text: &str| SourceRecord {
            path: PathBuf::from(path),
            sha256: sha256_bytes(text.as_bytes()),
            text: text.to_string(),
            relative: PathBuf::new(),
        };
        let sources = [
            record(
                "/lab/studies/layers/e.psy",
                "psy 1\nimport \"../../common/lab.psy\"\n",
            ),
            record("/lab/common/lab.psy", "psy 1\n"),
        ];
        let (copy, records) = copy_sources(&dir, &sources).unwrap();
        assert_eq!(copy, "sources/studies/layers/e.psy");
        assert_eq!(records[1].copy, "sources/common/lab.psy");
        assert_eq!(
            fs::read_to_string(dir.join("sources/common/lab.psy")).unwrap(),
            "psy 1\n"
        );
        // The import still resolves from the copy.
        let from_copy = psyrun::plan::sweep::normalize_path(
            &dir.join("sources/studies/layers/../../common/lab.psy"),
        );
        assert!(from_copy.is_file());
        let _ = fs::remove_dir_all(&dir);
    }
}
