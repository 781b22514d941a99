//! Results: what a run leaves on disk, and how it is shown.
//!
//! A run writes one folder (see [`RunFolder`]; every file and column is described in
//! `docs/outputs.md`, which a test checks against what a run writes):
//!
//! | file | content |
//! |---|---|
//! | `INCOMPLETE` | present from the start until [`RunFolder::finish`]; says the run has not finished |
//! | `plan.ron` | the resolved plan ([`crate::plan::to_ron`]) |
//! | `manifest.json` | versions, device, seed, hashes, times, command line, warnings ([`Manifest`]) |
//! | `results.json` | the results for programs ([`results_json`]) |
//! | `report.html` | one self-contained page: table, plots, preview, warnings, manifest, plan ([`report_html`]) |
//! | `training.csv` | `epoch,loss,accuracy,repeat` |
//! | `staircase.csv` | `frequency_cpi,step,contrast,accuracy,trials,correct,repeat`, one row per measurement |
//! | `csf.csv` | `frequency_cpi,threshold_contrast,sensitivity,steps,stopped,ci_low,ci_high,sensitivity_ci_low,sensitivity_ci_high,method,censored,censored_repeats,repeats,trials` |
//! | `thresholds.csv` | one row per frequency and repeat: the procedure's and the fit's thresholds |
//! | `psychometric.csv` | `frequency_cpi,repeat,contrast,trials,correct`: the trials pooled by contrast |
//! | `csf.png`, `csf.svg` | sensitivity against spatial frequency, log–log |
//! | `csf_linear.png`, `csf_linear.svg` | the same on linear axes (the tutorial's figure) |
//! | `training.png`, `training.svg` | loss and accuracy per epoch |
//! | `psychometric.png`, `psychometric.svg` | each frequency's pooled trials with the fitted function |
//!
//! Every CSV file ends with the [`Identity`] columns.
//!
//! Every file goes through [`write_atomic`], so a file that exists is whole. Plain CSV
//! (no comment lines), floats printed with Rust's shortest round-trip formatting; numbers
//! for people (terminal, `report.html`) with [`display_number`].
//!
//! Order of calls for the interpreter:
//! 1. [`RunFolder::create`], which makes the folder and writes `INCOMPLETE` first;
//! 2. [`RunFolder::begin`] with the plan and the manifest (`complete: false`);
//! 3. optionally [`RunFolder::write_partial`] after each epoch or staircase step, and on
//!    interruption or failure (the folder keeps its `INCOMPLETE` marker);
//! 4. [`RunFolder::finish`] with the whole [`Results`]: it stamps `finished`, sets
//!    `complete`, writes every file and removes `INCOMPLETE` last.
//!
//! Independent helpers: [`preview_sheet`] (PNG grid of stimuli), [`npy_f32`] (NumPy
//! arrays), [`csf_table`] (the CLI's final table).

mod analysis;
mod csv;
mod folder;
mod html;
mod image;
pub mod journal;
mod json;
mod plot;
mod summary;
pub mod sweep;
mod table;
#[cfg(test)]
mod tests;

pub use analysis::{analyse, fit_options};
pub use csv::{
    csf_csv, pooled, psychometric_csv, staircase_csv, thresholds_csv, training_csv, CsvWriter,
    CSV_FILES,
};
pub use folder::{
    check_out, rfc3339, safe_name, write_atomic, FolderError, RunFolder, INCOMPLETE, SOURCES,
};
pub use html::report_html;
pub use image::{image_png, npy_f32, npy_f32_header, preview_sheet};
pub use json::{results_json, RESULTS_FORMAT};
pub use plot::{
    csf_linear_plot, csf_plot, psychometric_plot, sweep_csf_plot, sweep_peaks_plot, training_plot,
    Plot, SweepCurve, PLOT_HEIGHT, PLOT_WIDTH,
};
pub use summary::{summarize, t_quantile};
pub use table::{csf_table, display_number};

use crate::plan::Plan;
use crate::staircase::{Censor, Procedure, Step, Stop};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::Path;

/// psyrun's version, for [`Manifest::psyrun_version`].
pub const PSYRUN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The plan that ran.
    pub plan: Plan,
    /// Where, when and with what it ran.
    pub manifest: Manifest,
    /// One record per training epoch.
    pub training: Vec<EpochRecord>,
    /// One result per repeat and test frequency: repeat 0's frequencies in the plan's
    /// order, then repeat 1's, ….
    pub staircases: Vec<FrequencyResult>,
    /// The CSF: one point per frequency measured in every repeat, in the plan's order.
    #[serde(default)]
    pub csf: Vec<CsfPoint>,
}

/// Provenance of a run, saved as `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// psyrun's version ([`PSYRUN_VERSION`]).
    pub psyrun_version: String,
    /// libtorch's version, e.g. `2.13.0`.
    pub libtorch_version: String,
    /// The device actually used, e.g. `cpu`, `cuda:0 (NVIDIA H200)`.
    pub device: String,
    /// The master seed.
    pub seed: u64,
    /// The experiment file as given on the command line.
    pub experiment_file: String,
    /// SHA-256 of the experiment file's bytes, lowercase hex.
    pub experiment_sha256: String,
    /// What was loaded as weights: `random`, a torchvision weight name, or a path.
    pub weights: String,
    /// SHA-256 of the weights file, when weights came from a file.
    pub weights_sha256: Option<String>,
    /// When the run started, RFC 3339 UTC ([`rfc3339`]).
    pub started: String,
    /// When the run finished, RFC 3339 UTC; `None` while running or when interrupted.
    pub finished: Option<String>,
    /// The command line, program name first.
    pub command_line: Vec<String>,
    /// CPU threads used.
    pub threads: usize,
    /// True only when every result file was written.
    pub complete: bool,
    /// Wall-clock seconds of each phase so far (`setup`, `training`, `testing`, `writing`).
    #[serde(default)]
    pub phase_seconds: Vec<(String, f64)>,
    /// The backbone's arithmetic (`fp32`, `tf32`, `bf16`; see the plan's `precision`).
    #[serde(default)]
    pub precision: String,
    /// The process's peak resident memory so far in bytes (Linux `VmHWM`), updated after
    /// each phase; `None` where the system does not tell.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// Where the stimuli were rendered: `host` (the CPU) or `device` (tensor operations on
    /// the compute device, the default on CUDA). The images are the same.
    #[serde(default)]
    pub stimuli: String,
    /// The decision noise's scale found by calibration (`decision gaussian(accuracy: …)` or
    /// `softmax(accuracy: …)`), of the last repeat; `None` otherwise.
    #[serde(default)]
    pub decision_noise: Option<f64>,
    /// When the run was resumed (`psyrun run --resume`), RFC 3339 UTC, oldest first; empty
    /// for a run that ran in one go.
    #[serde(default)]
    pub resumed: Vec<String>,
    /// The warnings of the run, one line each (`code: message`): the experiment's (found
    /// when it was checked) and those found while it ran. Shown in `report.html`.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The `--set PATH=VALUE` overrides the run was compiled with, in order, as given; a
    /// resumed run applies them again.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// The condition of the experiment this run is (every run is one; a file without a
    /// sweep is condition 1 of 1); `None` in manifests of older runs.
    #[serde(default)]
    pub condition: Option<ManifestCondition>,
    /// The source files the experiment was built from, the experiment file first, then
    /// every import; a copy of each is in the run folder's `sources/`.
    #[serde(default)]
    pub sources: Vec<ManifestSource>,
}

/// A run's condition in `manifest.json` (see [`crate::plan::sweep::Condition`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestCondition {
    /// Its index as `psyrun plan` lists it, from 1.
    pub index: usize,
    /// How many conditions the experiment has.
    pub of: usize,
    /// The condition id (12 hex digits of the plan's SHA-256).
    pub id: String,
    /// The swept settings' values, `[path, value]`; empty without a sweep.
    pub values: Vec<(String, String)>,
}

/// A source file of a run in `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestSource {
    /// The path as it was read (relative to the folder psyrun ran in, when given so).
    pub path: String,
    /// Where its copy is, relative to the run folder: `sources/…`.
    pub copy: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

/// What identifies a run's condition: the columns every CSV ends with (after its own
/// columns, so that scripts reading by position keep working) and the `identity` of
/// `results.json`. One experiment file is one condition: these are its variables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The experiment's name.
    pub experiment: String,
    /// The backbone's architecture (`resnet18`, …; `torchscript` for a TorchScript module).
    pub architecture: String,
    /// The layer the backbone is cut after (empty for a TorchScript module, cut already).
    pub cut: String,
    /// The weights as the plan names them (`random`, `imagenet`, a file).
    pub weights: String,
    /// The pooling of the cut's feature map (`none`, `avg 2x2`, …).
    pub pooling: String,
    /// The backbone's arithmetic while the probe trains (`fp32`, `tf32`, `bf16`).
    pub precision: String,
    /// The master seed.
    pub seed: u64,
    /// The comparison image's contrast: 0 for detection, the pedestal for an increment
    /// threshold.
    pub reference: f64,
    /// The condition's id (12 hex digits of its plan's SHA-256, as `psyrun plan` lists it):
    /// what tells apart the conditions of a sweep that differ in another setting than the
    /// columns before it (e.g. `probe.epochs`).
    pub condition_id: String,
}

impl Identity {
    /// The column names, in order.
    pub const COLUMNS: [&'static str; 9] = [
        "experiment",
        "architecture",
        "cut",
        "weights",
        "pooling",
        "precision",
        "seed",
        "reference",
        "condition_id",
    ];

    /// The identity of a run: its plan's, with the condition id its manifest records (the
    /// id the experiment was compiled to; computed from the plan for a manifest without one).
    pub fn of(results: &Results) -> Self {
        let condition_id = match &results.manifest.condition {
            Some(c) => c.id.clone(),
            None => crate::plan::sweep::condition_id(&results.plan),
        };
        Self::of_plan(&results.plan, condition_id)
    }

    /// The identity of a plan, as the condition `condition_id`.
    fn of_plan(plan: &Plan, condition_id: String) -> Self {
        let (architecture, cut, weights) = match &plan.backbone.network {
            crate::plan::Network::Catalog(net) => (
                net.arch.name().to_string(),
                net.cut.clone(),
                net.weights.to_string(),
            ),
            crate::plan::Network::TorchScript { file } => {
                ("torchscript".to_string(), String::new(), file.clone())
            }
        };
        Self {
            experiment: plan.experiment.clone(),
            architecture,
            cut,
            weights,
            pooling: plan.backbone.pooling.to_string(),
            precision: plan.precision.name().to_string(),
            seed: plan.seed,
            reference: plan.test.reference,
            condition_id,
        }
    }
}

/// The process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`), or
/// `None` where that file does not exist (not Linux) or says nothing.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => n.checked_mul(1024),
        _ => None,
    }
}

/// One training epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Which repeat's probe, from 0.
    #[serde(default)]
    pub repeat: u32,
    /// Epoch number as the interpreter counts it (1-based by convention).
    pub epoch: u32,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Proportion correct over the epoch, in [0, 1].
    pub accuracy: f64,
}

/// The trials of one spatial frequency in one repeat, and its threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrequencyResult {
    /// Spatial frequency in cycles per image.
    pub frequency: f64,
    /// Which repeat (independent probe) this is, from 0.
    #[serde(default)]
    pub repeat: u32,
    /// The procedure (`bisection`, `updown`, `quest`, `questplus`, `constant`).
    #[serde(default)]
    pub procedure: String,
    /// Every measurement, in order.
    pub steps: Vec<Step>,
    /// Why the procedure stopped.
    pub stop: Stop,
    /// The procedure's own threshold estimate and how it was made.
    #[serde(default)]
    pub procedure_threshold: f64,
    /// The procedure's own interval for it, where it has one (QUEST's posterior).
    #[serde(default)]
    pub procedure_interval: Option<(f64, f64)>,
    /// The psychometric function fitted to the trials, when the plan asks for one and the
    /// data allow it.
    #[serde(default)]
    pub fit: Option<FitSummary>,
    /// The reported threshold contrast (the fit's or the procedure's, as the plan says).
    pub threshold: f64,
    /// Its confidence interval (bootstrap for a fit, the procedure's otherwise).
    #[serde(default)]
    pub ci: Option<(f64, f64)>,
    /// Contrast sensitivity, `1 / threshold` (of the increment over a pedestal).
    pub sensitivity: f64,
    /// When the threshold is not a measurement inside the tested range.
    #[serde(default)]
    pub censored: Option<Censor>,
}

/// A fitted psychometric function, as stored with the results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// The sigmoid's name.
    pub function: String,
    /// Threshold at the plan's level.
    pub threshold: f64,
    /// Its bootstrap confidence interval.
    pub ci: Option<(f64, f64)>,
    /// Parameters for drawing ψ: threshold m, width w, lapse λ, guess γ (psignifit's
    /// parameterisation, see [`crate::psychometric`]).
    pub params: [f64; 4],
    /// Deviance against the saturated model.
    pub deviance: f64,
    /// Bootstrap p-value of the deviance, where a bootstrap ran.
    pub deviance_p: Option<f64>,
}

impl FrequencyResult {
    /// The result of a finished procedure, with the procedure's own threshold. `None` if it
    /// has not stopped or measured nothing. `reference` is the pedestal (0: detection).
    pub fn from_procedure(
        frequency: f64,
        repeat: u32,
        procedure: &Procedure,
        reference: f64,
    ) -> Option<Self> {
        let stop = procedure.stop_reason()?;
        let estimate = procedure.estimate()?;
        Some(Self {
            frequency,
            repeat,
            procedure: procedure.name().to_string(),
            steps: procedure.trace().to_vec(),
            stop,
            procedure_threshold: estimate.threshold,
            procedure_interval: estimate.interval,
            fit: None,
            threshold: estimate.threshold,
            ci: estimate.interval,
            sensitivity: sensitivity(estimate.threshold, reference),
            censored: procedure.censoring(),
        })
    }

    /// What a procedure has measured so far, finished or not (for the files of a run that
    /// may be interrupted): [`from_procedure`](Self::from_procedure) once it has stopped, else
    /// its trace with the stop reason [`Stop::Unfinished`], its current estimate (or its last
    /// contrast) as the threshold, and no interval. `None` before the first measurement.
    pub fn so_far(
        frequency: f64,
        repeat: u32,
        procedure: &Procedure,
        reference: f64,
    ) -> Option<Self> {
        if let Some(r) = Self::from_procedure(frequency, repeat, procedure, reference) {
            return Some(r);
        }
        let last = procedure.trace().last()?;
        let threshold = procedure.estimate().map_or(last.contrast, |e| e.threshold);
        Some(Self {
            frequency,
            repeat,
            procedure: procedure.name().to_string(),
            steps: procedure.trace().to_vec(),
            stop: Stop::Unfinished,
            procedure_threshold: threshold,
            procedure_interval: None,
            fit: None,
            threshold,
            ci: None,
            sensitivity: sensitivity(threshold, reference),
            censored: Some(Censor::NotConverged),
        })
    }

    /// Trials run.
    pub fn trials(&self) -> u64 {
        self.steps.iter().map(|s| u64::from(s.trials)).sum()
    }
}

/// Contrast sensitivity of a threshold contrast over a pedestal `reference`: the inverse
/// of the increment, `1 / (threshold − reference)` (`1 / threshold` for detection,
/// infinite at 0); see [`crate::trials::sensitivity`].
pub fn sensitivity(threshold: f64, reference: f64) -> f64 {
    crate::trials::sensitivity(threshold, reference)
}

/// One point of the CSF: a frequency's threshold summarised over repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CsfPoint {
    /// Spatial frequency in cycles per image.
    pub frequency: f64,
    /// Threshold contrast: the repeat's own with one repeat, else the geometric mean.
    pub threshold: f64,
    /// Confidence interval of the threshold: the repeat's own with one repeat, else a
    /// t interval of the mean log threshold across repeats.
    pub ci: Option<(f64, f64)>,
    /// Sensitivity, `1 / threshold`.
    pub sensitivity: f64,
    /// The sensitivity's interval (the threshold's, inverted).
    pub sensitivity_ci: Option<(f64, f64)>,
    /// `procedure name` + `fit` or the procedure's estimator, e.g. `bisection+weibull`.
    pub method: String,
    /// The censoring of the repeats, if any was censored (the first kind met).
    pub censored: Option<Censor>,
    /// How many repeats were censored.
    pub censored_repeats: u32,
    /// Repeats summarised.
    pub repeats: u32,
    /// Trials over all repeats.
    pub trials: u64,
    /// Measurements (procedure steps) over all repeats.
    pub steps: u64,
    /// Why the procedure stopped (the first repeat's reason).
    pub stop: Stop,
}

/// `converged`, `max_steps`, …, as written in `csf.csv` and the table.
pub fn stop_name(stop: Stop) -> &'static str {
    stop.name()
}

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of a file's contents, lowercase hex, read in chunks (weights can be large).
pub fn sha256_file(path: impl AsRef<Path>) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The names a run's tables and figures give its axis and its measured variable: the
/// tutorial's (`frequency_cpi`, `contrast`, "spatial frequency (cycles per image)") for a
/// plan without a design, else the design's axis and level (`pedestal`, `contrast`;
/// `frequency_cpi`, `orientation_offset`).
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    /// The axis column of the CSV files (`frequency_cpi`, `pedestal`, `spacing_px`).
    pub axis_column: String,
    /// The level column (`contrast`, `offset`).
    pub level_column: String,
    /// The axis as figures name it (`spatial frequency (cycles per image)`).
    pub axis_desc: String,
    /// A short caption of one axis value (`8 c/img`, `pedestal 0.1`).
    pub axis_unit: String,
    /// The level as figures name it (`grating contrast`, `orientation_offset (deg)`).
    pub level_desc: String,
    /// Whether this is the tutorial's kind of experiment (no design).
    pub legacy: bool,
}

impl Labels {
    /// The labels of `plan`'s results.
    pub fn of(plan: &Plan) -> Labels {
        match &plan.design {
            None => Labels {
                axis_column: "frequency_cpi".into(),
                level_column: "contrast".into(),
                axis_desc: "spatial frequency (cycles per image)".into(),
                axis_unit: "c/img".into(),
                level_desc: "grating contrast".into(),
                legacy: true,
            },
            Some(d) => {
                let with_unit = |name: &str, unit: &str| {
                    if unit.is_empty() {
                        name.to_string()
                    } else {
                        format!("{name} ({unit})")
                    }
                };
                Labels {
                    axis_column: if d.axis.unit.is_empty() {
                        d.axis.name.clone()
                    } else {
                        format!("{}_{}", d.axis.name, d.axis.unit)
                    },
                    level_column: d.level.name.clone(),
                    axis_desc: with_unit(&d.axis.name.replace('_', " "), &d.axis.unit),
                    axis_unit: d.axis.unit.clone(),
                    level_desc: with_unit(&d.level.name.replace('_', " "), &d.level.unit),
                    legacy: false,
                }
            }
        }
    }

    /// One axis value as a caption: `8 c/img`, or `pedestal 0.1` without a unit.
    pub fn caption(&self, value: &str) -> String {
        if self.legacy {
            format!("{value} c/img")
        } else if self.axis_unit.is_empty() {
            format!("{} {value}", self.axis_desc)
        } else {
            format!("{value} {}", self.axis_unit)
        }
    }
}
