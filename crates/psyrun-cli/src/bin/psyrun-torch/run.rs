//! `psyrun run FILE`: loads, plans, runs (through `psyrun_torch::interpreter`), reports.

use psyrun::plan;
use psyrun::report::csf_table;
use psyrun::source::SourceFile;
use psyrun_cli::progress::Terminal;
use psyrun_cli::{RunArgs, Ui, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use psyrun_torch::interpreter::{execute, RunOptions};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by Ctrl-C (SIGINT) or SIGTERM; the run stops at the next batch.
static STOP: AtomicBool = AtomicBool::new(false);

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
    install_signal_handler();
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
        Ok((folder, results)) => {
            drop(term);
            print!("{}", csf_table(&results));
            println!("results: {}", folder.display());
            ExitCode::from(EXIT_OK)
        }
        Err(f) => {
            drop(term);
            ui.report(&f.diags);
            if let Some(folder) = f.folder {
                eprintln!("partial results (marked INCOMPLETE): {}", folder.display());
            }
            ExitCode::from(f.exit)
        }
    }
}

/// The first Ctrl-C (or SIGTERM) asks the run to stop after the current batch and write
/// what it has; a second one exits at once (files already written stay whole: every file is
/// written to a temporary name and renamed).
fn install_signal_handler() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: stopping now");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!("\ninterrupted: stopping after this batch (Ctrl-C again to stop now)");
    });
}
