//! The command line: clap definitions, dispatch, and the hand-over of `run`, `features` and
//! `doctor` to the libtorch-linked binary.
//!
//! Exit codes: 0 ok · 1 invalid experiment · 2 usage or I/O error · 3 run failed ·
//! 4 not available in this build · 130 interrupted (SIGINT) · 143 SIGTERM · 129 SIGHUP.
#![warn(missing_docs, unreachable_pub)]
// `Diag` is the error type of every stage: a few hundred bytes, returned on cold paths only.
#![allow(clippy::result_large_err)]

mod commands;
pub mod progress;
mod stimuli;
mod sweep;

use clap::{Parser, Subcommand};
use psyrun::plan::sweep::Override;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

pub use commands::{check_files, check_files_with, layers_table, plan_text};
pub use stimuli::{write_design_stimuli, write_stimuli, DesignStimuliError, StimuliArgs};
pub use sweep::SweepArgs;

pub use psyrun::exit::{
    EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_RUN, EXIT_TERMINATED,
    EXIT_UNAVAILABLE, EXIT_USAGE,
};

const AFTER_HELP: &str = "\
Examples:
  psyrun experiments/quick_csf.psy       run an experiment (same as `psyrun run FILE`)
  psyrun run --resume runs/quick_csf/20260101-120000   continue an interrupted run
  psyrun check experiments/*.psy         show every problem in the files
  psyrun fmt experiments/*.psy           lay the files out in psyrun's layout (--check: only say)
  psyrun plan experiments/contrast_csf.psy   print the resolved plan, defaults included
  psyrun layers resnet50 --size 224      list the cut points and their output shapes
  psyrun stimuli experiments/quick_csf.psy --out stim   write its stimuli as PNG and .npy
  psyrun sweep experiments/layer_profile.psy    run every condition of a sweep (--slurm: a job array)
  psyrun collect runs/layer_profile/sweep       merge a sweep's finished conditions, list the rest
  psyrun features resnet18 --cut layer2 --weights imagenet --out f.npy a.png b.png
                                         a backbone's features of 224x224 PNG images

Exit codes:
  0  ok (warnings allowed)      1  the experiment has errors
  2  usage or I/O error         3  the run failed
  4  not available in this build (e.g. psyrun-torch missing)
  130 interrupted (Ctrl-C)     143 stopped by SIGTERM      129 stopped by SIGHUP";

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

    /// CPU threads when running FILE directly (as `psyrun run --threads`).
    #[arg(long, requires = "file", value_parser = parse_threads)]
    pub threads: Option<u16>,

    /// The command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// psyrun's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment: train the probe, measure the CSF, write the results.
    Run(RunArgs),
    /// Check experiment files (every condition of a sweep) and show every error and warning.
    Check {
        /// Experiment files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a setting, as `psyrun run --set` does (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<Override>,
    },
    /// Print the fully resolved plan of an experiment, defaults included (for a sweep: the
    /// list of its conditions, then the plan of each).
    Plan {
        /// Experiment file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Ron)]
        format: PlanFormat,
        /// Override a setting, as `psyrun run --set` does (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<Override>,
        /// Print only this condition of a sweep: its index (from 1) or id.
        #[arg(long, value_name = "INDEX|ID")]
        condition: Option<String>,
    },
    /// List an architecture's cut points with their output shapes.
    Layers {
        /// Architecture, e.g. resnet50, vgg16_bn, alexnet.
        arch: String,
        /// Input image size in pixels (square); default: the size the architecture's
        /// torchvision weights expect (224; 299 for inception_v3).
        #[arg(long)]
        size: Option<u32>,
    },
    /// Write an experiment's training and test stimuli as PNG (to look at) and .npy (to check).
    Stimuli(StimuliArgs),
    /// Write a backbone's features of PNG images, or of an experiment's stimuli, to
    /// .safetensors or .npy.
    Features(FeaturesArgs),
    /// Show psyrun's and libtorch's versions, CUDA availability and device count.
    Doctor,
    /// Lay experiment files out in psyrun's layout (indentation, one setting a line,
    /// spacing), keeping every comment; files with syntax errors are left as they are.
    Fmt {
        /// Experiment files; `-` formats standard input to standard output.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing: list the files not in the layout, and exit with 1 if there are any
        /// (for CI).
        #[arg(long)]
        check: bool,
    },
    /// Run every condition of an experiment's sweep, each as `psyrun run --condition`, into
    /// one sweep folder (locally, or as a Slurm job array with --slurm); finished conditions
    /// are skipped, interrupted ones resume.
    Sweep(SweepArgs),
    /// Merge a sweep's finished conditions into its combined tables and plots, list the
    /// failed and missing ones and say how to run only those.
    Collect {
        /// The sweep folder (default of `psyrun sweep`: `runs/<experiment>/sweep`).
        dir: PathBuf,
    },
    /// One Slurm array task of a sweep (what `slurm/job.sh` runs).
    #[command(hide = true)]
    SweepTask {
        /// The sweep folder.
        dir: PathBuf,
        /// The array task (`$SLURM_ARRAY_TASK_ID`).
        task: usize,
        /// Conditions per task.
        #[arg(long, default_value_t = 1)]
        per_task: usize,
    },
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
    /// The experiment file (`.psy`). With `--resume`, the one named in the run's manifest
    /// unless given.
    #[arg(required_unless_present = "resume")]
    pub file: Option<PathBuf>,
    /// Folder for the results (default: `runs/<experiment>/<timestamp>/`).
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the interrupted or killed run in DIR (the folder that holds INCOMPLETE):
    /// what its journal recorded is replayed, the rest is measured, and the results equal
    /// those of a run that was never stopped.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// CPU threads for libtorch and for making stimuli (default: one per core). The
    /// manifest records it; results can differ in the last bits between thread counts.
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<u16>,
    /// Override a setting of the experiment: `--set probe.epochs=3`, `--set backbone.cut=layer2`,
    /// `--set backbone=resnet50`, `--set seed=4` (repeatable; the value is written as in a
    /// `.psy` file). Checked like the file, recorded in the manifest; `--resume` applies the
    /// run's own again.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<Override>,
    /// The condition of a sweep to run: its index (from 1) or id, as `psyrun plan FILE`
    /// lists them. Needed when the experiment sweeps several conditions.
    #[arg(long, value_name = "INDEX|ID")]
    pub condition: Option<String>,
}

/// A thread count: 1 to 1024.
fn parse_threads(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n @ 1..=1024) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a thread count: use a whole number from 1 to 1024"
        )),
    }
}

/// Arguments of `psyrun features`: either `ARCH --cut LAYER --weights W INPUTS...` (PNG
/// images) or `--experiment FILE` (the experiment's stimuli).
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = FEATURES_AFTER_HELP)]
pub struct FeaturesArgs {
    /// Architecture, e.g. resnet18, vgg16_bn, alexnet (`psyrun layers ARCH` lists its cuts).
    /// With --torchscript there is none: every positional argument is an image.
    #[arg(
        required_unless_present_any = ["experiment", "torchscript"],
        conflicts_with = "experiment"
    )]
    pub arch: Option<String>,
    /// PNG images, each exactly --size × --size pixels (grey, RGB or RGBA; alpha is dropped).
    #[arg(
        required_unless_present_any = ["experiment", "torchscript"],
        conflicts_with = "experiment"
    )]
    pub inputs: Vec<PathBuf>,
    /// The layer to cut after: a torchvision module path such as `layer2` or `features.10`.
    /// Give it several times for several layers in one extraction (`--cut layer1 --cut
    /// layer2`): one tensor per cut in a `.safetensors` file (named after the cut), one
    /// `OUT.CUT.npy` file per cut for `.npy`; memory holds one batch of images whatever
    /// their number.
    #[arg(
        long,
        required_unless_present_any = ["experiment", "torchscript"],
        conflicts_with_all = ["experiment", "torchscript"]
    )]
    pub cut: Vec<String>,
    /// Where the weights come from: `random` (seeded, see --seed), `imagenet`
    /// (= IMAGENET1K_V1), a torchvision weight set such as IMAGENET1K_V2, or a
    /// .safetensors/.pth file.
    #[arg(
        long,
        required_unless_present_any = ["experiment", "torchscript"],
        conflicts_with_all = ["experiment", "torchscript"]
    )]
    pub weights: Option<String>,
    /// A TorchScript module (`torch.jit.save`, already cut) instead of ARCH, --cut and
    /// --weights; its output for the images is the feature map.
    #[arg(long, conflicts_with = "experiment")]
    pub torchscript: Option<PathBuf>,
    /// For a cut whose output is a token sequence (a catalog ViT's `encoder` and what is in
    /// it, or a TorchScript module whose sidecar `FILE.json`, written by
    /// scripts/export_torchscript.py, says how it is laid out): `cls` (the class token),
    /// `mean` (the mean of the patch tokens) or `map` (the patch tokens as a [D, rows,
    /// columns] feature map). Needed there, refused elsewhere.
    #[arg(long, value_parser = parse_tokens)]
    pub tokens: Option<psyrun::plan::TokenReadout>,
    /// Adaptive pooling of the cut's feature map: `none` (default), `avg:HxW` or `max:HxW`
    /// (`avg:N` is `avg:NxN`). The output keeps the map's shape, [N, C, H, W] or pooled
    /// [N, C, h, w].
    #[arg(long, value_parser = parse_pooling, conflicts_with = "experiment")]
    pub pooling: Option<psyrun::plan::Pooling>,
    /// Seed of `--weights random`.
    #[arg(long, conflicts_with = "experiment")]
    pub seed: Option<u64>,
    /// Image size in pixels (default 224); every input must be exactly this size.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096), conflicts_with = "experiment")]
    pub size: Option<u32>,
    /// Input normalisation of the PNG images: `imagenet` (ImageNet mean and std), `clip`
    /// (CLIP's) or `none` (values in [0, 1]); default: the network's own (`clip` for CLIP's
    /// encoders, else `imagenet`).
    #[arg(long, value_enum, conflicts_with = "experiment")]
    pub normalize: Option<FeaturesNormalize>,
    /// Device: `auto` (CUDA when present, else the CPU), `cpu`, `cuda` or `cuda:N`
    /// (default: auto, or the experiment's `device`).
    #[arg(long, value_parser = parse_device)]
    pub device: Option<psyrun::plan::Device>,
    /// CPU threads for libtorch and for making stimuli (default: one per core).
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<u16>,
    /// BatchNorm mode. Only `eval` (running statistics): with batch statistics an image's
    /// features would depend on the other images of its batch.
    #[arg(long, value_enum, default_value_t = FeaturesBatchNorm::Eval)]
    pub batchnorm: FeaturesBatchNorm,
    /// The file to write: `.safetensors` (a `features` tensor, the names in its metadata) or
    /// `.npy` (float32, the same array).
    #[arg(long)]
    pub out: PathBuf,
    /// Extract the features of this experiment's stimuli instead, with its backbone, cut,
    /// pooling, weights, seed and normalisation.
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// With --experiment: training pairs to include (the first of epoch 1; default 8).
    #[arg(long, requires = "experiment", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub count: Option<u64>,
    /// With --experiment: contrast of the test gratings (default: the staircase's first
    /// contrast).
    #[arg(long, requires = "experiment")]
    pub contrast: Option<f64>,
}

fn parse_tokens(s: &str) -> Result<psyrun::plan::TokenReadout, String> {
    use psyrun::plan::TokenReadout;
    [TokenReadout::Cls, TokenReadout::Mean, TokenReadout::Map]
        .into_iter()
        .find(|t| t.name() == s)
        .ok_or_else(|| format!("`{s}` is not a token read-out: cls, mean or map"))
}

const FEATURES_AFTER_HELP: &str = "\
Examples:
  psyrun features resnet18 --cut layer2 --weights imagenet --out f.safetensors cat.png dog.png
  psyrun features vgg16 --cut features.15 --weights random --seed 3 --size 64 --pooling avg:2x2 \\
      --out f.npy img/*.png
  psyrun features --torchscript nets/cornet_v4.pt --pooling avg:4 --out f.npy img/*.png
  psyrun features --experiment experiments/quick_csf.psy --count 4 --out stim.safetensors

Rows follow the inputs in order (with --experiment: training pairs 000_a, 000_b, 001_a, ...,
then each frequency's gratings by orientation and phase, as `psyrun stimuli` names them).
A .safetensors file holds the names in its metadata (`names`, a JSON array); a .npy file
holds the array only.";

/// `psyrun features --normalize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FeaturesNormalize {
    /// (x − mean) / std with ImageNet's channel means and standard deviations.
    Imagenet,
    /// (x − mean) / std with CLIP's (OpenAI's) channel means and standard deviations.
    Clip,
    /// No normalisation: the network sees pixel values in [0, 1].
    None,
}

/// `psyrun features --batchnorm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FeaturesBatchNorm {
    /// Running statistics, never updated (torchvision `eval()`).
    Eval,
}

/// Parses `--pooling`: `none`, `avg:HxW`, `max:HxW` or `avg:N` / `max:N` (each side 1 to
/// 4096), as [`Pooling`](psyrun::plan::Pooling)'s `FromStr` does.
pub fn parse_pooling(s: &str) -> Result<psyrun::plan::Pooling, String> {
    s.parse()
}

/// Parses `--device`: `auto`, `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
pub fn parse_device(s: &str) -> Result<psyrun::plan::Device, String> {
    s.parse()
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
    pub fn report(&self, diags: &[psyrun::diag::Diag]) {
        if !diags.is_empty() {
            eprint!("{}", psyrun::diag::render(diags, self.color));
        }
    }
}

/// What the binary can do beyond the front end: run experiments and report on libtorch.
///
/// `psyrun` uses [`ExecBackend`], which hands these commands to `psyrun-torch`;
/// `psyrun-torch` uses the libtorch backend of the `psyrun-torch` crate.
pub trait Backend {
    /// `psyrun run FILE` (also `psyrun FILE`).
    fn run(&self, args: &RunArgs, ui: &Ui) -> ExitCode;
    /// `psyrun doctor`: psyrun's and libtorch's versions, CUDA availability and device count.
    fn doctor(&self, ui: &Ui) -> ExitCode;
    /// `psyrun features`: a backbone's features of PNG images or of an experiment's stimuli.
    fn features(&self, args: &FeaturesArgs, ui: &Ui) -> ExitCode;
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
    fn features(&self, _args: &FeaturesArgs, ui: &Ui) -> ExitCode {
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
        (None, Some(file)) => backend.run(
            &RunArgs {
                file: Some(file),
                out: cli.out,
                resume: None,
                threads: cli.threads,
                set: Vec::new(),
                condition: None,
            },
            &ui,
        ),
        (Some(Command::Check { files, set }), _) => commands::check(&files, &set, &ui),
        (
            Some(Command::Plan {
                file,
                format,
                set,
                condition,
            }),
            _,
        ) => commands::plan(&file, format, &set, condition.as_deref(), &ui),
        (Some(Command::Layers { arch, size }), _) => commands::layers(&arch, size, &ui),
        (Some(Command::Stimuli(args)), _) => stimuli::stimuli(&args, &ui),
        (Some(Command::Features(args)), _) => backend.features(&args, &ui),
        (Some(Command::Doctor), _) => backend.doctor(&ui),
        (Some(Command::Fmt { files, check }), _) => commands::fmt(&files, check, &ui),
        (Some(Command::Sweep(args)), _) => sweep::sweep(&args, &ui),
        (Some(Command::Collect { dir }), _) => sweep::collect(&dir, &ui),
        (
            Some(Command::SweepTask {
                dir,
                task,
                per_task,
            }),
            _,
        ) => sweep::sweep_task(&dir, task, per_task, &ui),
        (None, None) => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            ExitCode::from(EXIT_USAGE)
        }
    }
}
