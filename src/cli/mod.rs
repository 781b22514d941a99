//! The command line: clap definitions, dispatch, and the hand-over of `run` and `doctor`
//! to the libtorch-linked binary.
//!
//! Exit codes: 0 ok · 1 invalid experiment · 2 usage or I/O error · 3 run failed ·
//! 4 not available in this build · 130 interrupted.

mod commands;
mod stimuli;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

pub use commands::{check_files, layers_table};
pub use stimuli::{write_stimuli, StimuliArgs};

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

const AFTER_HELP: &str = "\
Examples:
  psyrun experiments/quick_csf.psy       run an experiment (same as `psyrun run FILE`)
  psyrun check experiments/*.psy         show every problem in the files
  psyrun plan experiments/contrast_csf.psy   print the resolved plan, defaults included
  psyrun layers resnet50 --size 224      list the cut points and their output shapes
  psyrun stimuli experiments/quick_csf.psy --out stim   write its stimuli as PNG and .npy

Exit codes:
  0  ok (warnings allowed)      1  the experiment has errors
  2  usage or I/O error         3  the run failed
  4  not available in this build (e.g. psyrun-torch missing)
  130 interrupted";

/// psyrun: psychophysics on deep neural networks.
#[derive(Debug, Parser)]
#[command(name = "psyrun", version, about, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Colour output: auto (default; off when NO_COLOR is set or stderr is not a terminal),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// An experiment to run (same as `psyrun run FILE`).
    pub file: Option<PathBuf>,

    /// Folder for the results when running FILE directly.
    #[arg(long, requires = "file")]
    pub out: Option<PathBuf>,

    /// The command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// psyrun's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment: train the probe, measure the CSF, write the results.
    Run(RunArgs),
    /// Check experiment files and show every error and warning.
    Check {
        /// Experiment files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the fully resolved plan of an experiment, defaults included.
    Plan {
        /// Experiment file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Ron)]
        format: PlanFormat,
    },
    /// List an architecture's cut points with their output shapes.
    Layers {
        /// Architecture, e.g. resnet50, vgg16_bn, alexnet.
        arch: String,
        /// Input image size in pixels (square).
        #[arg(long, default_value_t = 224)]
        size: u32,
    },
    /// Write an experiment's training and test stimuli as PNG (to look at) and .npy (to check).
    Stimuli(StimuliArgs),
    /// Show psyrun's and libtorch's versions, CUDA availability and device count.
    Doctor,
}

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

/// `psyrun plan` output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// Rusty Object Notation (the format saved with every run).
    Ron,
    /// JSON.
    Json,
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

impl Ui {
    /// Resolves `--color` against `NO_COLOR` and the terminal.
    pub fn new(choice: ColorChoice) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        };
        Self { color }
    }

    /// Writes diagnostics to stderr.
    pub fn report(&self, diags: &[crate::diag::Diag]) {
        if !diags.is_empty() {
            eprint!("{}", crate::diag::render(diags, self.color));
        }
    }
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
/// never pay for loading libtorch. `PSYRUN_TORCH_BIN` overrides where it is looked for.
pub struct ExecBackend;

impl Backend for ExecBackend {
    fn run(&self, _args: &RunArgs, ui: &Ui) -> ExitCode {
        commands::hand_over(ui)
    }
    fn doctor(&self, ui: &Ui) -> ExitCode {
        commands::hand_over(ui)
    }
}

/// Entry point shared by both binaries.
pub fn main(backend: &dyn Backend) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            // Printing help or an error to a closed pipe must not panic either.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let ui = Ui::new(cli.color);
    match (cli.command, cli.file) {
        (Some(Command::Run(args)), _) => backend.run(&args, &ui),
        (None, Some(file)) => backend.run(&RunArgs { file, out: cli.out }, &ui),
        (Some(Command::Check { files }), _) => commands::check(&files, &ui),
        (Some(Command::Plan { file, format }), _) => commands::plan(&file, format, &ui),
        (Some(Command::Layers { arch, size }), _) => commands::layers(&arch, size, &ui),
        (Some(Command::Stimuli(args)), _) => stimuli::stimuli(&args, &ui),
        (Some(Command::Doctor), _) => backend.doctor(&ui),
        (None, None) => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            ExitCode::from(EXIT_USAGE)
        }
    }
}
