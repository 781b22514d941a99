//! The libtorch backend (only in builds with the `torch` feature).
use crate::cli::{Backend, RunArgs, Ui};
use std::process::ExitCode;

/// Runs experiments and reports on libtorch in-process.
pub struct TorchBackend;

impl Backend for TorchBackend {
    fn run(&self, _args: &RunArgs, _ui: &Ui) -> ExitCode {
        ExitCode::from(crate::cli::EXIT_UNAVAILABLE)
    }
    fn doctor(&self, _ui: &Ui) -> ExitCode {
        ExitCode::from(crate::cli::EXIT_UNAVAILABLE)
    }
}
