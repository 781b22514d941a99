//! `psyrun run FILE`: loads, plans, runs (through `psyrun_torch::interpreter`), reports.

use crate::signals::{self, STOP};
use psyrun::diag::Severity;
use psyrun::diag::{Code, Diag};
use psyrun::plan::sweep::{compile_for_run, select, Override};
use psyrun::report::ManifestCondition;
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
    // A resumed run is compiled as it was first: with its own `--set` overrides and
    // condition, unless given again.
    let resumed = args.resume.as_deref().and_then(|d| resume_manifest(d).ok());
    let overrides: Vec<Override> = if args.set.is_empty() {
        match resumed.as_ref().map(|m| parse_overrides(&m.overrides)) {
            Some(Ok(o)) => o,
            Some(Err(d)) => {
                ui.report(&[*d]);
                return ExitCode::from(EXIT_USAGE);
            }
            None => Vec::new(),
        }
    } else {
        args.set.clone()
    };
    let recorded = match &args.condition {
        Some(_) => None,
        None => resumed.as_ref().and_then(|m| m.condition.clone()),
    };
    let compiled = compile_for_run(&file, &path, &overrides);
    let Some(conditions) = &compiled.conditions else {
        ui.report(&compiled.diags);
        return ExitCode::from(EXIT_INVALID);
    };
    let condition = match (&args.condition, &recorded, conditions.as_slice()) {
        (Some(w), _, _) => match select(conditions, w) {
            Ok(c) => c,
            Err(d) => {
                ui.report(&[d]);
                return ExitCode::from(EXIT_USAGE);
            }
        },
        // A resumed run: its condition by id; when the file changed so that no condition has
        // that id any more, the one at its index, whose plan the resume compares with the
        // journal's (and refuses, `psy::run::resume`, since it plans differently).
        (None, Some((id, index)), all) => match select(all, id) {
            Ok(c) => c,
            Err(_) => &all[index.clamp(&1, &all.len()) - 1],
        },
        (None, None, [one]) => one,
        (None, None, many) => {
            let d = Diag::error(
                Code::PlanCondition,
                format!(
                    "`{}` sweeps {} conditions; `psyrun run` runs one",
                    path.display(),
                    many.len()
                ),
            )
            .with_help(format!(
                "pick one with `--condition INDEX|ID` (`psyrun plan {}` lists them), or fix \
                 each swept setting with `--set PATH=VALUE`",
                path.display()
            ))
            .with_source(&file);
            ui.report(&[d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let plan = &condition.plan;
    // The warnings of the condition that runs, not those of the others.
    ui.report(&condition.warnings);
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
    let plan_warnings: Vec<String> = condition
        .warnings
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
        overrides: overrides.iter().map(ToString::to_string).collect(),
        condition: Some(ManifestCondition {
            index: condition.index + 1,
            of: conditions.len(),
            id: condition.id.clone(),
            values: condition.values.clone(),
        }),
        sources: &compiled.sources,
    };
    match execute(plan, &options, &mut term) {
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
    /// The run's `--set` overrides (`PATH=VALUE`), applied again.
    overrides: Vec<String>,
    /// The run's condition (id, index from 1), run again.
    condition: Option<(String, usize)>,
}

/// The manifest's overrides, parsed as `--set` parses them.
fn parse_overrides(texts: &[String]) -> Result<Vec<Override>, Box<Diag>> {
    texts
        .iter()
        .map(|t| {
            t.parse::<Override>().map_err(|e| {
                Box::new(
                    Diag::error(Code::RunResume, format!("the run's manifest records {e}"))
                        .with_help("give the overrides again with `--set PATH=VALUE`"),
                )
            })
        })
        .collect()
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
            overrides: value
                .get("overrides")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            condition: value.get("condition").and_then(|c| {
                let id = c.get("id")?.as_str()?.to_string();
                let index = usize::try_from(c.get("index")?.as_u64()?).ok()?;
                Some((id, index))
            }),
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
