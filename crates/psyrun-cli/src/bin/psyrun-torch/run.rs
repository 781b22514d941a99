//! `psyrun run FILE`: loads, plans, runs (through `psyrun_torch::interpreter`), reports.

use crate::signals::{self, STOP};
use psyrun::diag::Severity;
use psyrun::diag::{Code, Diag};
use psyrun::plan;
use psyrun::report::{check_out, csf_table, RunFolder};
use psyrun::source::SourceFile;
use psyrun_cli::progress::{warning_line, Terminal};
use psyrun_cli::{RunArgs, Ui, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_RUN, EXIT_USAGE};
use psyrun_torch::interpreter::{execute, RunOptions};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// `psyrun run FILE`. Never panics on libtorch errors.
pub(crate) fn command(args: &RunArgs, ui: &Ui) -> ExitCode {
    let file = match SourceFile::read(&args.file) {
        Ok(f) => f,
        Err(d) => {
            ui.report(&[d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let lowered = plan::compile(&file);
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
            let d = Diag::error(Code::RunOutputFolder, e.to_string())
                .with_help("choose a writable, empty or new folder with --out DIR");
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
        path: &args.file,
        out: args.out.as_deref(),
        runs_root: Path::new("."),
        // Arguments need not be UTF-8 (clap accepts any path): written lossily.
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        stop: &STOP,
    };
    match execute(&plan, &options, &mut term) {
        Ok((folder, mut results)) => {
            // The warnings go into the manifest, results.json and report.html (the
            // interpreter does not record them itself yet).
            let warnings: Vec<String> = plan_warnings
                .into_iter()
                .chain(term.warnings().iter().cloned())
                .collect();
            drop(term);
            if !warnings.is_empty() && results.manifest.warnings.is_empty() {
                results.manifest.warnings = warnings;
                if let Err(e) = RunFolder::amend(&folder, &results) {
                    let d = Diag::error(
                        Code::RunOutputFolder,
                        format!("cannot record the warnings: {e}"),
                    );
                    ui.report(&[d]);
                    return ExitCode::from(EXIT_RUN);
                }
            }
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
