//! The interpreter: runs a plan on libtorch and writes its run folder.
//!
//! [`execute`] takes a [`Plan`], the [`RunOptions`] (the experiment's source, where results
//! go, the stop flag) and an [`Observer`] for progress, and returns the run folder and the
//! [`Results`]. Each step is a module: `prepare` (device, backbone, weights, run folder),
//! `train` (the probe), `test` (the staircases) and `write` (the result files); the probe
//! itself is in `probe`. Nothing here prints or parses a command line.
//!
//! Order of work (each step fails with a diagnostic that points into the experiment where
//! it can, and never leaves a half-written file):
//! 0. for a TorchScript backbone: load the module and run it once on grey images to learn
//!    its feature shape (`prepare`), so a file that does not fit fails before anything is
//!    written;
//! 1. choose the device (with TensorFloat-32 off on CUDA unless `precision tf32`) and where
//!    stimuli are made (the device on CUDA, else the host); build the backbone up to the cut
//!    on the CPU; fill its weights (seeded random or a file, relative to the experiment's
//!    folder); move it to the device; set its precision;
//! 2. create the run folder (`INCOMPLETE` first), write `plan.ron`, `manifest.json` and the
//!    preview sheet;
//! 3. train the linear probe: every epoch draws fresh training trials (seeded per trial);
//!    the backbone runs without gradients; only the probe's weight and bias learn;
//!    then the backbone's BatchNorm running statistics and the probe's parameters must be
//!    finite (`psy::run::non_finite`);
//! 4. test: the staircases of every frequency advance in lockstep, one batch of gratings
//!    per round. The probe is linear, so each image's features are projected once onto the
//!    two halves of the probe's weight: the comparison images are projected once per
//!    frequency, the gratings once per contrast level;
//! 5. write every result file and remove `INCOMPLETE`.
//!
//! BatchNorm: with `batchnorm eval` (default) the backbone is frozen throughout. With
//! `batchnorm train` (the tutorial) BatchNorm uses batch statistics and updates its running
//! statistics while the probe trains, the first and the second images in separate forward
//! passes as in the tutorial's `LinearProbe.forward`; testing then runs in eval mode with
//! the drifted statistics, as the tutorial's `model.eval()` does.

// `Failure` carries a `Diag` (a few hundred bytes), returned on cold paths only.

// `Failure` carries diagnostics (a few hundred bytes), returned on cold paths only.
#![allow(clippy::result_large_err)]

mod design;
mod observe;
mod prepare;
mod probe;
mod test;
mod train;
mod write;

use crate::device::StimuliOn;
use crate::failure::Failure;
use crate::script::Net;
use psyrun::diag::{Code, Diag};
use psyrun::exit::{EXIT_INTERRUPTED, EXIT_RUN};
use psyrun::observer;
use psyrun::plan::{Plan, Precision, Setting};
use psyrun::progress::Observer;
use psyrun::report::journal::{Entry, JournalWriter, Replay};
use psyrun::report::{self, Results, RunFolder};
use psyrun::source::SourceFile;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tch::Device;

/// Distinct images per forward pass when testing (bounds memory; results do not depend on
/// it).
const TEST_CHUNK: usize = 64;

/// Training pairs shown on the preview sheet.
const PREVIEW_PAIRS: u64 = 6;

/// What to shrink when libtorch runs out of memory.
const OOM_ADVICE: &str =
    "use a smaller `batch`, a smaller image `size`, pooling, or an earlier cut";

/// What the interpreter needs besides the plan.
pub struct RunOptions<'a> {
    /// The experiment's source (for spans and its hash).
    pub file: &'a SourceFile,
    /// The experiment file as given on the command line.
    pub path: &'a Path,
    /// The results folder (`--out`); `None` for `runs/<experiment>/<timestamp>/` below
    /// `runs_root`.
    pub out: Option<&'a Path>,
    /// Where `runs/` goes when there is no `out` (the CLI passes the working directory).
    pub runs_root: &'a Path,
    /// The command line, for the manifest.
    pub command_line: Vec<String>,
    /// Stops the run when set (checked between batches).
    pub stop: &'a AtomicBool,
    /// `--resume DIR`: continue the interrupted run in that folder (`out` is then ignored).
    pub resume: Option<&'a Path>,
    /// The experiment's warnings (found when it was checked), one line each
    /// (`code: message`): the manifest starts with them and adds the run's own.
    pub warnings: Vec<String>,
    /// The `--set PATH=VALUE` overrides the plan was compiled with, as given: recorded in
    /// the manifest, so that `--resume` applies them again.
    pub overrides: Vec<String>,
    /// Which condition of the experiment this run is (`psyrun plan` lists them): recorded in
    /// the manifest; `None` records none.
    pub condition: Option<psyrun::report::ManifestCondition>,
    /// The source files the plan was built from, the experiment file first, then its
    /// imports ([`psyrun::plan::sweep::Compiled::sources`]): a new run copies each into its
    /// folder's `sources/` and lists them in the manifest. Empty: none recorded.
    pub sources: &'a [psyrun::plan::sweep::SourceRecord],
}

/// Runs `plan`, catching libtorch exceptions (which tch raises as panics) as diagnostics.
pub fn execute(
    plan: &Plan,
    options: &RunOptions<'_>,
    observer: &mut dyn Observer,
) -> Result<(PathBuf, Results), Failure> {
    let folder_slot: Mutex<Option<PathBuf>> = Mutex::new(None);
    crate::failure::guarded(|| {
        let (resolved, script) = prepare::script(plan, options)?;
        Interpreter::new(&resolved, options, observer, &folder_slot, script)
            .and_then(Interpreter::run)
    })
    .unwrap_or_else(|caught| {
        Err(caught
            .failure(OOM_ADVICE)
            .in_folder(folder_slot.lock().ok().and_then(|g| g.clone())))
    })
}

struct Interpreter<'a> {
    plan: &'a Plan,
    options: &'a RunOptions<'a>,
    observer: &'a mut dyn Observer,
    device: Device,
    /// Where stimuli are rendered.
    stimuli: StimuliOn,
    backbone: Net,
    folder: RunFolder,
    results: Results,
    /// The append-only log of what is measured (`journal.jsonl`).
    journal: JournalWriter,
    /// When resuming: what the journal says was measured, to check and replay.
    replay: Replay,
    /// The procedures of the test phase while it runs.
    live: Option<Live>,
}

/// A repeat's test while it runs: its procedures, and where its results go in
/// `results.staircases`.
struct Live {
    repeat: u32,
    first_row: usize,
    procs: Vec<psyrun::staircase::Procedure>,
}

impl Interpreter<'_> {
    /// The steps after `prepare`: train, test, write.
    fn run(mut self) -> Result<(PathBuf, Results), Failure> {
        for repeat in 0..self.plan.repeats.max(1) {
            // Every repeat's probe trains in the plan's precision (testing left float32).
            if repeat > 0 && self.plan.precision != Precision::Fp32 {
                self.backbone.set_precision(self.plan.precision);
            }
            let seed = observer::repeat_seed(self.plan.seed, repeat);
            if self.plan.design.is_some() {
                let probe = self.train_design(repeat, seed)?;
                if let Some(p) = &probe {
                    self.check_finite(p)?;
                }
                self.full_precision_for_testing();
                let rule = self.design_rule(probe.as_ref(), seed)?;
                self.test_design(probe.as_ref(), repeat, seed, rule)?;
                self.analyse(repeat);
                continue;
            }
            let probe = self.train(repeat, seed)?;
            self.check_finite(&probe)?;
            self.full_precision_for_testing();
            let rule = self.decision_rule(&probe, seed)?;
            self.test(&probe, repeat, seed, rule)?;
            self.analyse(repeat);
        }
        if self.replay.remaining() > 0 {
            return Err(self.resume_mismatch(format!(
                "the journal holds {} entries more than this plan measures",
                self.replay.remaining()
            )));
        }
        self.results.csf = report::summarize(self.plan, &self.results.staircases);
        self.sync_journal()?;
        self.write()
    }

    /// Shows a run-time warning and records it in the manifest (`code: message`), so that
    /// every file written from now on, partial ones included, carries it.
    fn warn(&mut self, d: Diag) {
        self.results
            .manifest
            .warnings
            .push(format!("{}: {}", d.code.as_str(), d.message));
        self.observer
            .event(psyrun::progress::Event::Warning(Box::new(d)));
    }

    /// Appends one entry to the journal.
    fn journal(&mut self, entry: &Entry) -> Result<(), Failure> {
        self.journal.append(entry).map_err(|e| self.io_failure(&e))
    }

    /// Flushes the journal to disk (at the end of a phase).
    fn sync_journal(&mut self) -> Result<(), Failure> {
        self.journal.sync().map_err(|e| self.io_failure(&e))
    }

    /// `psy::run::resume`: what a resumed run does differs from what its journal recorded.
    fn resume_mismatch(&self, what: String) -> Failure {
        Failure::new(
            Diag::error(Code::RunResume, format!("cannot resume this run: {what}")).with_help(
                "a run resumes only on the same psyrun, libtorch and thread count it started \
                 with (see its manifest.json); run the experiment again into a new folder",
            ),
            EXIT_RUN,
        )
        .in_folder(Some(self.folder.path().to_path_buf()))
    }

    /// Reduced precision (`bf16`, `tf32`) is for training the probe, on contrasts of 0.04 and
    /// more. Testing shows gratings near threshold, whose pixels differ from grey by less
    /// than bfloat16's resolution (normalised values around 0.1–2 are 2e-4 to 8e-3 apart in
    /// bfloat16): the backbone goes back to float32 with its exact float32 weights
    /// ([`Net::set_precision`]) before the first test image. (A TorchScript module under
    /// `tf32` keeps libtorch's process-wide TensorFloat-32 setting.)
    fn full_precision_for_testing(&mut self) {
        if self.plan.precision != Precision::Fp32 {
            self.backbone.set_precision(Precision::Fp32);
        }
    }

    /// The results with the running test's measurements so far, finished or not (unfinished
    /// ones say `unfinished`), as an interrupted or failed run writes them. Costs every
    /// step measured: called when the run stops, not per round.
    fn results_so_far(&self) -> Results {
        let mut results = self.results.clone();
        if let Some(live) = &self.live {
            let test = &self.plan.test;
            results.staircases.truncate(live.first_row);
            results
                .staircases
                .extend(
                    test.frequencies
                        .iter()
                        .zip(&live.procs)
                        .filter_map(|(&f, p)| {
                            report::FrequencyResult::so_far(f, live.repeat, p, test.reference)
                        }),
                );
        }
        results.csf = report::summarize(self.plan, &results.staircases);
        results
    }

    /// Writes every result file for what was measured so far (best effort: on the way out
    /// of an interruption or a failure).
    fn write_so_far(&self) {
        let _ = self.folder.write_partial(&self.results_so_far());
    }

    fn check_stop(&self) -> Result<(), Failure> {
        if !self.options.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let results = self.results_so_far();
        let _ = self.folder.write_partial(&results);
        Err(Failure::new(
            Diag::error(
                Code::RunInterrupted,
                format!(
                    "interrupted after {} of {} epochs and {} of {} staircases",
                    self.results.training.len(),
                    self.plan.probe.epochs * self.plan.repeats.max(1),
                    results
                        .staircases
                        .iter()
                        .filter(|r| r.stop != psyrun::staircase::Stop::Unfinished)
                        .count(),
                    self.plan.test.frequencies.len() * self.plan.repeats.max(1) as usize
                ),
            )
            .with_help(format!(
                "the run folder keeps everything measured so far and its INCOMPLETE marker; \
                 `psyrun run --resume {}` continues where it stopped",
                self.folder.path().display()
            )),
            EXIT_INTERRUPTED,
        )
        .in_folder(Some(self.folder.path().to_path_buf())))
    }

    fn phase_done(&mut self, name: &str, t0: Instant) {
        self.results
            .manifest
            .phase_seconds
            .push((name.into(), t0.elapsed().as_secs_f64()));
        self.results.manifest.peak_rss_bytes = report::peak_rss_bytes();
    }

    fn nan_failure(&self, epoch: u32, loss: f64) -> Failure {
        self.write_so_far();
        let mut diag = Diag::error(
            Code::RunNanLoss,
            format!(
                "the probe's training loss became {loss} in epoch {}",
                epoch + 1
            ),
        )
        .with_help(
            "the optimiser diverged: lower the learning rate (`lr`), add pooling to shrink the \
             feature vector, or use `optimizer adam`",
        );
        diag = self.plan.spans.label(
            diag,
            Setting::Lr,
            self.options.file,
            "this learning rate made the loss diverge",
        );
        Failure::new(diag, EXIT_RUN).in_folder(Some(self.folder.path().to_path_buf()))
    }

    /// After training: the backbone's parameters and BatchNorm running statistics and the
    /// probe's weight and bias must be finite. A NaN there (a BatchNorm that normalised a
    /// single value with `batchnorm train`, a weights file holding one) would make every
    /// test image score chance without any error.
    fn check_finite(&self, probe: &probe::Probe) -> Result<(), Failure> {
        let backbone = self.backbone.non_finite();
        let probe_bad: Vec<&str> = [("weight", &probe.weight), ("bias", &probe.bias)]
            .into_iter()
            .filter(|(_, t)| !crate::script::all_finite(t))
            .map(|(name, _)| name)
            .collect();
        if backbone.is_empty() && probe_bad.is_empty() {
            return Ok(());
        }
        let mut what = Vec::new();
        if !backbone.is_empty() {
            let shown: Vec<&str> = backbone.iter().take(4).map(String::as_str).collect();
            let more = backbone.len().saturating_sub(shown.len());
            what.push(format!(
                "the backbone's {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        if !probe_bad.is_empty() {
            what.push(format!("the probe's {}", probe_bad.join(" and ")));
        }
        let verb = if backbone.len() + probe_bad.len() == 1 {
            "holds"
        } else {
            "hold"
        };
        let message = format!(
            "after training, {} {verb} NaN or infinite values: no test result could mean anything",
            what.join("; ")
        );
        Err(self.non_finite_failure(message, !backbone.is_empty()))
    }

    /// `psy::run::non_finite`, labelled on the backbone (its statistics or weights) or the
    /// probe.
    fn non_finite_failure(&self, message: String, backbone: bool) -> Failure {
        self.write_so_far();
        let diag = Diag::error(Code::RunNonFinite, message).with_help(
            "with `batchnorm train`, a BatchNorm layer that normalises a single value per channel \
             (a batch of one trial and a 1x1 map) gets a NaN running variance: change `samples` so \
             that no batch holds one trial, use larger images or an earlier cut, or `batchnorm eval`. \
             Otherwise check the weights file for NaN, or lower the learning rate",
        );
        let diag = if backbone {
            self.plan.spans.label(
                diag,
                Setting::Backbone,
                self.options.file,
                "not finite after training",
            )
        } else {
            self.plan.spans.label(
                diag,
                Setting::Probe,
                self.options.file,
                "not finite after training",
            )
        };
        Failure::new(diag, EXIT_RUN).in_folder(Some(self.folder.path().to_path_buf()))
    }

    fn io_failure(&self, e: &std::io::Error) -> Failure {
        Failure::new(
            Diag::error(
                Code::RunOutputFolder,
                format!("cannot write to `{}`: {e}", self.folder.path().display()),
            )
            .with_help("check the disk space and the folder's permissions"),
            EXIT_RUN,
        )
        .in_folder(Some(self.folder.path().to_path_buf()))
    }

    fn torch_failure(&self, message: &str) -> Failure {
        self.write_so_far();
        Failure::new(
            Diag::error(Code::RunTorch, format!("libtorch failed: {message}")),
            EXIT_RUN,
        )
        .in_folder(Some(self.folder.path().to_path_buf()))
    }
}
