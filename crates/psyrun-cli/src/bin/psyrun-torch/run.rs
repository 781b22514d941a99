//! `psyrun run FILE`: loads, plans, runs (through `psyrun_torch::interpreter`), reports.

use crate::signals::{self, STOP};
use psyrun::diag::Severity;
use psyrun::diag::{Code, Diag};
use psyrun::plan;
use psyrun::report::{check_out, csf_table};
use psyrun::source::SourceFile;
use psyrun_cli::progress::{warning_line, Terminal};
use psyrun_cli::{RunArgs, Ui, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use psyrun_torch::interpreter::{execute, RunOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// `psyrun run FILE`. Never panics on libtorch errors.
pub(crate) fn command(args: &RunArgs, ui: &Ui) -> ExitCode {
    let path = match experiment_path(args) {
        Ok(p) => p,
        Err(d) => {
            ui.report(&[*d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let file = match SourceFile::read(&path) {
        Ok(f) => f,
        Err(d) => {
            ui.report(&[d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let lowered = match &args.condition {
        None => plan::compile(&file),
        Some(which) => match select_condition(&file, &path, which) {
            Ok(l) => l,
            Err(d) => {
                ui.report(&[*d]);
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    ui.report(&lowered.diags);
    let Some(plan) = lowered.plan else {
        return ExitCode::from(EXIT_INVALID);
    };
    if STOP.load(Ordering::SeqCst) {
        // Stopped while the experiment was read: nothing has been made yet.
        let d = Diag::error(Code::RunInterrupted, "interrupted before the run started")
            .with_help("nothing was written; run the experiment again");
        ui.report(&[named(d)]);
        return ExitCode::from(signals::exit_code());
    }
    // A `--out` folder that would be refused is refused now, before the backbone is built
    // (which prints what it does and can take long).
    if let Some(out) = &args.out {
        if let Err(e) = check_out(out) {
            // A folder that holds an interrupted run of psyrun's: say how to continue it.
            let help = if out.join(psyrun::report::INCOMPLETE).is_file()
                && out.join(psyrun::report::journal::JOURNAL).is_file()
            {
                format!(
                    "it holds an interrupted run: `psyrun run --resume {}` continues it; or \
                     choose another --out",
                    out.display()
                )
            } else {
                "choose a writable, empty or new folder with --out DIR".to_string()
            };
            let d = Diag::error(Code::RunOutputFolder, e.to_string()).with_help(help);
            ui.report(&[d]);
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let plan_warnings: Vec<String> = lowered
        .diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(warning_line)
        .collect();
    let mut term = Terminal::new(ui.color);
    let options = RunOptions {
        file: &file,
        path: &path,
        out: args.out.as_deref(),
        resume: args.resume.as_deref(),
        runs_root: Path::new("."),
        // Arguments need not be UTF-8 (clap accepts any path): written lossily.
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        stop: &STOP,
        warnings: plan_warnings,
    };
    match execute(&plan, &options, &mut term) {
        Ok((folder, results)) => {
            drop(term);
            print!("{}", csf_table(&results));
            println!("results: {}", folder.display());
            ExitCode::from(EXIT_OK)
        }
        Err(f) => {
            drop(term);
            let diags: Vec<Diag> = f.diags.into_iter().map(named).collect();
            ui.report(&diags);
            if let Some(folder) = f.folder {
                eprintln!("partial results (marked INCOMPLETE): {}", folder.display());
            }
            // 128 + the signal's number: 130 SIGINT, 143 SIGTERM, 129 SIGHUP.
            let exit = if f.exit == EXIT_INTERRUPTED {
                signals::exit_code()
            } else {
                f.exit
            };
            ExitCode::from(exit)
        }
    }
}

/// `--condition INDEX|ID`: the plan of that condition of the experiment's sweep, with the
/// experiment's diagnostics; a condition that does not exist is `psy::sweep::condition`.
fn select_condition(
    file: &SourceFile,
    path: &Path,
    which: &str,
) -> Result<plan::Lowered, Box<Diag>> {
    let compiled = plan::sweep::compile_experiment(file, path, &[]);
    let Some(conditions) = compiled.conditions else {
        return Ok(plan::Lowered {
            plan: None,
            diags: compiled.diags,
        });
    };
    let found = conditions
        .iter()
        .position(|c| c.id == which || (c.index + 1).to_string() == which);
    match found {
        Some(i) => Ok(plan::Lowered {
            plan: Some(conditions[i].plan.clone()),
            diags: compiled.diags,
        }),
        None => Err(Box::new(
            Diag::error(
                Code::SweepCondition,
                format!(
                    "`{}` has no condition `{which}` ({} condition{})",
                    path.display(),
                    conditions.len(),
                    if conditions.len() == 1 { "" } else { "s" }
                ),
            )
            .with_help(format!(
                "give an index from 1 to {} or a condition's identifier; `psyrun plan` lists them",
                conditions.len()
            )),
        )),
    }
}

/// `psy::run::interrupted` names the signal that stopped the run.
fn named(mut d: Diag) -> Diag {
    if d.code == Code::RunInterrupted {
        if let Some(signal) = signals::received_name() {
            d.message = d
                .message
                .replacen("interrupted", &format!("interrupted by {signal}"), 1);
        }
    }
    d
}

/// What `--resume DIR` needs of the run's `manifest.json`.
struct ResumeManifest {
    experiment_file: String,
    threads: u64,
}

fn resume_manifest(dir: &Path) -> Result<ResumeManifest, Box<Diag>> {
    let path = dir.join("manifest.json");
    let bytes = std::fs::read(&path).map_err(|e| {
        Box::new(
            Diag::error(
                Code::RunResume,
                format!("cannot read `{}`: {e}", path.display()),
            )
            .with_help("give the folder of a psyrun run that was interrupted or killed"),
        )
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    match (
        value.get("experiment_file").and_then(|v| v.as_str()),
        value.get("threads").and_then(serde_json::Value::as_u64),
    ) {
        (Some(file), Some(threads)) => Ok(ResumeManifest {
            experiment_file: file.to_string(),
            threads,
        }),
        _ => Err(Box::new(
            Diag::error(
                Code::RunResume,
                format!("`{}` is not a psyrun manifest", path.display()),
            )
            .with_help("give the folder of a psyrun run that was interrupted or killed"),
        )),
    }
}

/// The experiment file to read: FILE, or with `--resume DIR` alone the one the run's
/// manifest names (as it was given, relative to the folder psyrun ran in).
fn experiment_path(args: &RunArgs) -> Result<PathBuf, Box<Diag>> {
    if let Some(file) = &args.file {
        return Ok(file.clone());
    }
    let Some(dir) = &args.resume else {
        return Err(Box::new(Diag::error(
            Code::RunResume,
            "no experiment file given",
        )));
    };
    let manifest = resume_manifest(dir)?;
    let path = PathBuf::from(&manifest.experiment_file);
    if !path.exists() {
        return Err(Box::new(
            Diag::error(
                Code::RunResume,
                format!(
                    "the run in `{}` was made from `{}`, which is not there from this folder",
                    dir.display(),
                    path.display()
                ),
            )
            .with_help(format!(
                "run from the folder the run started in, or name the experiment: \
                 `psyrun run FILE --resume {}`",
                dir.display()
            )),
        ));
    }
    Ok(path)
}

/// The thread count a resumed run started with, when its manifest says (1 to 1024).
pub(crate) fn resumed_threads(args: &RunArgs) -> Option<u16> {
    let manifest = resume_manifest(args.resume.as_deref()?).ok()?;
    u16::try_from(manifest.threads)
        .ok()
        .filter(|n| (1..=1024).contains(n))
}
