//! The command line: clap definitions, dispatch, and the hand-over of `run` and `doctor`
//! to the libtorch-linked binary.
//!
//! Exit codes (documented in the README and `psyrun --help`):
//! 0 ok · 1 invalid experiment · 2 usage or I/O error · 3 run failed · 4 not available in
//! this build · 130 interrupted.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the experiment file has errors.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: bad command line, or a file that cannot be read or written.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the run failed at run time.
pub const EXIT_RUN: u8 = 3;
/// Exit code: the command is not available in this build (e.g. no libtorch).
pub const EXIT_UNAVAILABLE: u8 = 4;
/// Exit code: interrupted (Ctrl-C).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Whether to colour output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Arguments of `psyrun run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The experiment file (`.psy`).
    pub file: PathBuf,
    /// Folder for the results (default: `runs/<experiment>/<timestamp>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Output settings shared by every command.
#[derive(Clone, Debug)]
pub struct Ui {
    /// Colour diagnostics and tables.
    pub color: bool,
}

/// What the binary can do beyond the front end: run experiments and report on libtorch.
///
/// `psyrun` uses [`ExecBackend`], which hands these commands to `psyrun-torch`;
/// `psyrun-torch` uses the libtorch backend in `psyrun::torch`.
pub trait Backend {
    /// `psyrun run FILE` (also `psyrun FILE`).
    fn run(&self, args: &RunArgs, ui: &Ui) -> ExitCode;
    /// `psyrun doctor`: psyrun's and libtorch's versions, CUDA availability and device count.
    fn doctor(&self, ui: &Ui) -> ExitCode;
}

/// The front end's backend: re-executes the same command line with `psyrun-torch`, the
/// libtorch-linked binary installed next to `psyrun`, so that `check`, `plan` and `layers`
/// never pay for loading libtorch.
pub struct ExecBackend;

impl Backend for ExecBackend {
    fn run(&self, _args: &RunArgs, ui: &Ui) -> ExitCode {
        hand_over(ui)
    }
    fn doctor(&self, ui: &Ui) -> ExitCode {
        hand_over(ui)
    }
}

fn hand_over(_ui: &Ui) -> ExitCode {
    todo!()
}

/// Entry point shared by both binaries.
pub fn main(backend: &dyn Backend) -> ExitCode {
    let _ = backend;
    let _: Vec<OsString> = std::env::args_os().collect();
    ExitCode::from(EXIT_OK)
}
