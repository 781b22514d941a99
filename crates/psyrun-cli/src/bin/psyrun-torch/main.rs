//! The libtorch-linked half of psyrun: `run`, `features` and `doctor`. Users call `psyrun`,
//! which hands these commands over to this binary (it sits next to `psyrun`).
//!
//! This is a thin adapter: it turns the command line into the `psyrun-torch` crate's
//! options, catches SIGINT, SIGTERM and SIGHUP (first thing in `main`, see `signals`),
//! renders progress and diagnostics, and maps failures to exit codes. Only this binary depends on `psyrun-torch`; the `psyrun` binary and the
//! `psyrun_cli` library do not, so `check`, `plan`, `layers` and `stimuli` never link
//! libtorch (the dependency graph says so, and `./dev test` checks it with `ldd`).
mod features;
mod run;
mod signals;

use psyrun_cli::{Backend, FeaturesArgs, RunArgs, Ui, EXIT_OK};
use std::process::ExitCode;

/// Runs experiments, extracts features and reports on libtorch in-process.
struct TorchBackend;

impl Backend for TorchBackend {
    fn run(&self, args: &RunArgs, ui: &Ui) -> ExitCode {
        psyrun_torch::tune_allocator();
        // A resumed run uses the thread count it started with (results can differ in the
        // last bits between thread counts), unless told otherwise.
        psyrun_torch::set_threads(args.threads.or_else(|| run::resumed_threads(args)));
        run::command(args, ui)
    }
    fn doctor(&self, _ui: &Ui) -> ExitCode {
        signals::immediate();
        print!("{}", psyrun_torch::Report::collect());
        ExitCode::from(EXIT_OK)
    }
    fn features(&self, args: &FeaturesArgs, ui: &Ui) -> ExitCode {
        signals::immediate();
        psyrun_torch::tune_allocator();
        psyrun_torch::set_threads(args.threads);
        features::command(args, ui)
    }
}

fn main() -> ExitCode {
    // Before anything else, so that a signal while the command line or the experiment is
    // read still stops the run cleanly (`run`) rather than killing it unannounced.
    signals::install();
    psyrun_cli::main(&TorchBackend)
}
