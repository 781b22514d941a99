//! The interpreter: runs a plan on libtorch and writes its run folder.
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
#![allow(clippy::result_large_err)]

use super::backbone::{flatten_features, Backbone, FeatureOrder};
use super::device_stimuli::{self, DeviceGratings};
use super::script::{Net, ScriptError, ScriptNet};
use super::weights::{self, WeightsError};
use psyrun::cli::{RunArgs, Ui, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_RUN};
use psyrun::cli::{EXIT_UNAVAILABLE, EXIT_USAGE};
use psyrun::diag::{Code, Diag};
use psyrun::plan::{self, BatchNorm, Network, Optimizer, Plan, Staircase};
use psyrun::progress::{Event, Observer, Terminal};
use psyrun::report::{
    self, csf_table, preview_sheet, EpochRecord, FrequencyResult, Manifest, Results, RunFolder,
};
use psyrun::source::SourceFile;
use psyrun::staircase::Bisection;
use psyrun::stimuli::rng;
use psyrun::trials::{self, TestGratings};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

/// Set by Ctrl-C (SIGINT) or SIGTERM; the run stops at the next batch.
static STOP: AtomicBool = AtomicBool::new(false);

/// Distinct images per forward pass when testing (bounds memory; results do not depend on
/// it).
const TEST_CHUNK: usize = 64;

/// Training pairs shown on the preview sheet.
const PREVIEW_PAIRS: u64 = 6;

/// How a run ended early: the diagnostic, the exit code, and the run folder if one exists.
pub struct Failure {
    /// What went wrong.
    pub diag: Diag,
    /// The process exit code.
    pub exit: u8,
    /// The run folder, kept with its `INCOMPLETE` marker.
    pub folder: Option<PathBuf>,
}

impl Failure {
    fn new(diag: Diag, exit: u8) -> Self {
        Failure {
            diag,
            exit,
            folder: None,
        }
    }
}

/// What the interpreter needs besides the plan.
pub struct Context<'a> {
    /// The experiment's source (for spans and its hash).
    pub file: &'a SourceFile,
    /// The experiment file as given on the command line.
    pub path: &'a Path,
    /// `--out`.
    pub out: Option<&'a Path>,
    /// Where `runs/` goes when there is no `--out` (the working directory).
    pub runs_root: &'a Path,
    /// The command line, for the manifest.
    pub command_line: Vec<String>,
    /// Stops the run when set (between batches).
    pub stop: &'a AtomicBool,
}

/// `psyrun run FILE`: loads, plans, runs, reports. Never panics on libtorch errors.
pub fn command(args: &RunArgs, ui: &Ui) -> ExitCode {
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
    let ctx = Context {
        file: &file,
        path: &args.file,
        out: args.out.as_deref(),
        runs_root: Path::new("."),
        command_line: std::env::args().collect(),
        stop: &STOP,
    };
    match execute(&plan, &ctx, &mut term) {
        Ok((folder, results)) => {
            drop(term);
            print!("{}", csf_table(&results));
            println!("results: {}", folder.display());
            ExitCode::from(EXIT_OK)
        }
        Err(f) => {
            drop(term);
            ui.report(&[f.diag]);
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

/// Runs `plan`, catching libtorch exceptions (which tch raises as panics) as diagnostics.
pub fn execute(
    plan: &Plan,
    ctx: &Context<'_>,
    observer: &mut dyn Observer,
) -> Result<(PathBuf, Results), Failure> {
    let folder_slot: Mutex<Option<PathBuf>> = Mutex::new(None);
    catch_torch(|| {
        let (resolved, script) = prepare(plan, ctx)?;
        Interpreter::new(&resolved, ctx, observer, &folder_slot, script).and_then(|i| i.run())
    })
    .unwrap_or_else(|(message, location)| {
        Err(Failure {
            diag: Diag::error(
                Code::RunTorch,
                format!("libtorch failed: {}", first_lines(&message, 12)),
            )
            .with_help(format!(
                "if this says out of memory, use a smaller `batch`, a smaller image `size`, \
                     pooling, or an earlier cut; otherwise please report it with the experiment \
                     file (raised at {location})"
            )),
            exit: EXIT_RUN,
            folder: folder_slot.lock().ok().and_then(|g| g.clone()),
        })
    })
}

/// Runs `f`, catching a libtorch exception (tch raises them as panics) without printing it:
/// `Err((libtorch's message, where it was raised))`.
pub(super) fn catch_torch<T>(f: impl FnOnce() -> T) -> Result<T, (String, String)> {
    quietly(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))).map_err(
        |(payload, location)| {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            // tch raises libtorch errors as `….unwrap()` panics on `Err(Torch("…"))`.
            let message = message
                .split_once("Torch(\"")
                .and_then(|(_, rest)| rest.rsplit_once("\")"))
                .map_or(message.to_owned(), |(inner, _)| {
                    inner.replace("\\n", "\n").replace("\\\"", "\"")
                });
            (message, location)
        },
    )
}

type Caught = (Box<dyn std::any::Any + Send>, String);

/// Runs `f` with a panic hook that records the location instead of printing.
fn quietly<T>(f: impl FnOnce() -> std::thread::Result<T>) -> Result<T, Caught> {
    static LOCATION: Mutex<String> = Mutex::new(String::new());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut l) = LOCATION.lock() {
            *l = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
        }
    }));
    let r = f();
    std::panic::set_hook(previous);
    r.map_err(|p| {
        let loc = LOCATION.lock().map(|l| l.clone()).unwrap_or_default();
        (p, loc)
    })
}

fn first_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= n {
        s.trim_end().to_owned()
    } else {
        format!(
            "{}\n… ({} more lines)",
            lines[..n].join("\n"),
            lines.len() - n
        )
    }
}

/// The linear probe: `logits = W·[f_first, f_second] + b`, `W` of shape [2, 2F].
///
/// Each half of `W` holds its weights in the order the features are flattened in
/// ([`FeatureOrder`]): torchvision's (channel, row, column), or (row, column, channel) for a
/// channels-last backbone, whose maps then flatten without a copy. Either way a feature gets
/// the same initial weight, so the probe is the same function; only the order in which
/// floating-point products are summed differs.
struct Probe {
    vs: nn::VarStore,
    weight: Tensor,
    bias: Tensor,
    features: i64,
}

impl Probe {
    /// nn.Linear's default initialisation, U(±1/√fan_in) for weight and bias, drawn from
    /// psyrun's `probe-init` stream (identical on every device and thread count) in
    /// torchvision's feature order, then laid out in `order` for one image's features of
    /// `shape` (`[C, H, W]`; other shapes have one order).
    fn new(shape: &[u32], order: FeatureOrder, seed: u64, device: Device) -> Self {
        let features: i64 = shape.iter().map(|&d| i64::from(d)).product();
        let fan_in = 2 * features;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let mut r = rng::stream(seed, rng::PROBE_INIT, 0);
        let mut draw = |n: i64| -> Vec<f32> {
            (0..n)
                .map(|_| rng::uniform_f64(&mut r, -bound, bound) as f32)
                .collect()
        };
        let w = Tensor::from_slice(&draw(2 * fan_in)).reshape([2, fan_in]);
        let w = match (order, shape) {
            (FeatureOrder::Hwc, &[c, h, wd]) => {
                let dims = [2, 2, i64::from(c), i64::from(h), i64::from(wd)];
                w.view(dims)
                    .permute([0, 1, 3, 4, 2])
                    .contiguous()
                    .view([2, fan_in])
            }
            _ => w,
        };
        let b = Tensor::from_slice(&draw(2));
        let vs = nn::VarStore::new(device);
        let weight = vs.root().var_copy("weight", &w);
        let bias = vs.root().var_copy("bias", &b);
        Probe {
            vs,
            weight,
            bias,
            features,
        }
    }

    fn forward(&self, first: &Tensor, second: &Tensor) -> Tensor {
        Tensor::cat(&[first, second], 1).linear(&self.weight, Some(&self.bias))
    }

    /// The two halves of the weight: the part applied to the first image and to the second.
    fn halves(&self) -> (Tensor, Tensor) {
        let w = self.weight.detach();
        (
            w.narrow(1, 0, self.features),
            w.narrow(1, self.features, self.features),
        )
    }
}

struct Interpreter<'a> {
    plan: &'a Plan,
    ctx: &'a Context<'a>,
    observer: &'a mut dyn Observer,
    device: Device,
    /// Where stimuli are rendered.
    stimuli: StimuliOn,
    backbone: Net,
    folder: RunFolder,
    results: Results,
}

impl<'a> Interpreter<'a> {
    fn new(
        plan: &'a Plan,
        ctx: &'a Context<'a>,
        observer: &'a mut dyn Observer,
        folder_slot: &Mutex<Option<PathBuf>>,
        script: Option<ScriptNet>,
    ) -> Result<Self, Failure> {
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        if plan.device != plan::Device::Cpu {
            set_tf32(plan.precision);
        }
        let device = select_device(plan, ctx.file)?;
        let stimuli = stimuli_on(device)?;
        let (mut backbone, weights_path) = match (&plan.backbone.network, script) {
            (Network::Catalog(net), _) => {
                observer.event(Event::Status(format!(
                    "building {} up to `{}` on {}",
                    net.arch,
                    net.cut,
                    device_name(device)
                )));
                let mut backbone =
                    Backbone::from_plan(&plan.backbone, Device::Cpu).map_err(|e| {
                        Failure::new(Diag::error(Code::RunTorch, e.to_string()), EXIT_RUN)
                    })?;
                let base = ctx.path.parent().map(Path::to_path_buf).unwrap_or_default();
                let loaded = weights::apply(
                    &mut backbone,
                    &net.weights,
                    plan.seed,
                    &base,
                    &mut *observer,
                    ctx.stop,
                )
                .map_err(|e| weights_failure(e, ctx.file))?;
                if let Some(report) = &loaded {
                    observer.event(Event::Status(format!(
                        "loaded {} tensors ({} past the cut ignored)",
                        report.loaded, report.ignored
                    )));
                }
                let path = loaded.and_then(|r| r.path);
                (Net::Catalog(backbone), path)
            }
            (Network::TorchScript { .. }, Some(mut s)) => {
                observer.event(Event::Status(format!(
                    "TorchScript module {} on {}",
                    s.path().display(),
                    device_name(device)
                )));
                s.set_batchnorm(plan.backbone.batchnorm);
                let path = s.path().to_path_buf();
                (Net::Script(s), Some(path))
            }
            (Network::TorchScript { .. }, None) => {
                return Err(Failure::new(
                    Diag::error(Code::RunTorch, "the TorchScript module was not loaded"),
                    EXIT_RUN,
                ))
            }
        };
        // The exact bytes the weights came from (named torchvision sets included).
        let weights_sha256 = weights_path.and_then(|p| report::sha256_file(p).ok());
        if device != Device::Cpu {
            backbone.to_device(device);
        }
        // Channels-last (NHWC) convolutions are faster on CPU (oneDNN) and on CUDA (cuDNN);
        // results agree with the default layout to float rounding.
        backbone.set_channels_last(true);
        backbone.set_precision(plan.precision);

        let folder = match ctx.out {
            Some(out) => RunFolder::create(Some(out), &plan.experiment, started_at),
            None => {
                RunFolder::create_default(&ctx.runs_root.join("runs"), &plan.experiment, started_at)
            }
        }
        .map_err(|e| {
            Failure::new(
                Diag::error(Code::RunOutputFolder, e.to_string())
                    .with_help("choose a writable, empty or new folder with --out DIR"),
                EXIT_USAGE,
            )
        })?;
        if let Ok(mut slot) = folder_slot.lock() {
            *slot = Some(folder.path().to_path_buf());
        }
        let manifest = Manifest {
            psyrun_version: report::PSYRUN_VERSION.to_string(),
            libtorch_version: super::Report::collect().libtorch_version,
            device: device_name(device),
            seed: plan.seed,
            experiment_file: ctx.path.display().to_string(),
            experiment_sha256: report::sha256_bytes(ctx.file.text.as_bytes()),
            weights: match &plan.backbone.network {
                Network::Catalog(net) => match &net.weights {
                    plan::Weights::Random => "random".into(),
                    plan::Weights::Torchvision(n) => n.clone(),
                    plan::Weights::File(f) => f.clone(),
                },
                Network::TorchScript { file } => format!("torchscript {file}"),
            },
            weights_sha256,
            started: report::rfc3339(started_at),
            finished: None,
            command_line: ctx.command_line.clone(),
            threads: usize::try_from(tch::get_num_threads()).unwrap_or(1),
            complete: false,
            phase_seconds: vec![("setup".into(), started.elapsed().as_secs_f64())],
            precision: plan.precision.name().into(),
            peak_rss_bytes: report::peak_rss_bytes(),
            stimuli: stimuli.name().into(),
        };
        let results = Results {
            plan: plan.clone(),
            manifest,
            training: Vec::new(),
            staircases: Vec::new(),
        };
        let it = Interpreter {
            plan,
            ctx,
            observer,
            device,
            stimuli,
            backbone,
            folder,
            results,
        };
        it.folder
            .begin(plan, &it.results.manifest)
            .map_err(|e| it.io_failure(&e))?;
        let contrast = match plan.staircase {
            Staircase::Bisection { start, .. } => start,
        };
        let sheet = preview_sheet(
            &trials::preview_images(plan, PREVIEW_PAIRS, contrast),
            (2 * PREVIEW_PAIRS as usize).max(4),
        );
        it.folder
            .write("preview.png", &sheet)
            .map_err(|e| it.io_failure(&e))?;
        Ok(it)
    }

    fn run(mut self) -> Result<(PathBuf, Results), Failure> {
        let probe = self.train()?;
        self.test(&probe)?;
        let t = Instant::now();
        let Interpreter {
            folder,
            mut results,
            observer,
            ..
        } = self;
        let path = folder.path().to_path_buf();
        let finished = folder
            .finish(&mut results, chrono::Utc::now())
            .map_err(|e| Failure {
                diag: Diag::error(Code::RunOutputFolder, format!("cannot write results: {e}")),
                exit: EXIT_RUN,
                folder: Some(path),
            })?;
        observer.event(Event::Status(format!(
            "done ({}, writing {:.1} s)",
            results
                .manifest
                .phase_seconds
                .iter()
                .map(|(p, s)| format!("{p} {s:.1} s"))
                .collect::<Vec<_>>()
                .join(", "),
            t.elapsed().as_secs_f64()
        )));
        Ok((finished, results))
    }

    /// Features of a batch `[N, 3, H, W]` after the cut and pooling: `[N, F]`, flattened in
    /// the backbone's [`FeatureOrder`] (the probe's weights are laid out to match).
    fn features(&self, x: &Tensor) -> Tensor {
        let x = x.to_device(self.device);
        flatten_features(
            &self.backbone.forward_raw(&x),
            self.plan.backbone.pooling,
            self.backbone.feature_order(),
        )
    }

    fn train(&mut self) -> Result<Probe, Failure> {
        let t0 = Instant::now();
        let plan = self.plan;
        // Filled by the planner, or by `prepare` for a TorchScript module.
        let Some(shape) = plan.derived.feature_shape.as_deref() else {
            return Err(self.torch_failure("the feature shape is unknown"));
        };
        let order = self.backbone.feature_order();
        let probe = Probe::new(shape, order, plan.seed, self.device);
        let mut opt = match &plan.probe.optimizer {
            Optimizer::Sgd {
                lr,
                momentum,
                weight_decay,
                nesterov,
            } => nn::Sgd {
                momentum: *momentum,
                dampening: 0.0,
                wd: *weight_decay,
                nesterov: *nesterov,
            }
            .build(&probe.vs, *lr),
            Optimizer::Adam {
                lr,
                betas,
                weight_decay,
            } => nn::Adam {
                beta1: betas.0,
                beta2: betas.1,
                wd: *weight_decay,
                eps: 1e-8,
                amsgrad: false,
            }
            .build(&probe.vs, *lr),
        }
        .map_err(|e| self.torch_failure(&e.to_string()))?;

        let samples = u64::from(plan.train.samples);
        let batch = u64::from(plan.probe.batch).max(1);
        let size = i64::from(plan.train.size);
        self.observer.event(Event::Phase {
            name: "training",
            total: u64::from(plan.probe.epochs) * samples,
            unit: "trials",
        });
        // Stimuli for the next batch are rendered (in parallel) while the network runs on
        // this one. Dropping the receiver (an error, Ctrl-C) stops the producer.
        let jobs: Vec<(u32, std::ops::Range<u64>)> = (0..plan.probe.epochs)
            .flat_map(|e| {
                (0..samples)
                    .step_by(batch as usize)
                    .map(move |s| (e, s..(s + batch).min(samples)))
            })
            .collect();
        std::thread::scope(|scope| -> Result<(), Failure> {
            let (tx, batches) = std::sync::mpsc::sync_channel(1);
            let (stimuli, device) = (self.stimuli, self.device);
            scope.spawn(move || {
                for (epoch, range) in jobs {
                    let batch = match stimuli {
                        StimuliOn::Host => TrainBatch::Host(trials::train_batch(
                            plan.seed,
                            &plan.train,
                            epoch,
                            range,
                        )),
                        StimuliOn::Device => TrainBatch::Device(device_stimuli::train_batch(
                            plan.seed,
                            &plan.train,
                            epoch,
                            range,
                            device,
                        )),
                    };
                    if tx.send(batch).is_err() {
                        break;
                    }
                }
            });
            for epoch in 0..plan.probe.epochs {
                let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0i64, 0u64);
                let mut start = 0;
                while start < samples {
                    self.check_stop()?;
                    let end = (start + batch).min(samples);
                    // The producer renders batches in this order; it has stopped only on a bug.
                    let Ok(b) = batches.recv() else {
                        return Err(self.torch_failure("the stimulus thread stopped"));
                    };
                    let (x1, x2, labels) = match b {
                        TrainBatch::Host(b) => {
                            let shape = [b.len as i64, 3, size, size];
                            (
                                Tensor::from_slice(&b.first).reshape(shape),
                                Tensor::from_slice(&b.second).reshape(shape),
                                Tensor::from_slice(&b.labels),
                            )
                        }
                        TrainBatch::Device(b) => {
                            debug_assert_eq!(b.len as i64, b.labels.size()[0]);
                            (b.first, b.second, b.labels)
                        }
                    };
                    let n = labels.size()[0];
                    debug_assert_eq!(n as u64, end - start);
                    let labels = labels.to_device(self.device);
                    let (f1, f2) = match plan.backbone.batchnorm {
                        // Frozen: one forward for both images.
                        BatchNorm::Eval => {
                            let f = self.features(&Tensor::cat(&[x1, x2], 0));
                            (f.narrow(0, 0, n), f.narrow(0, n, n))
                        }
                        // The tutorial: two forwards, each normalised with its own batch statistics.
                        BatchNorm::Train => (self.features(&x1), self.features(&x2)),
                    };
                    let logits = probe.forward(&f1, &f2);
                    let loss = logits.cross_entropy_for_logits(&labels);
                    opt.zero_grad();
                    loss.backward();
                    opt.step();
                    let l = loss.double_value(&[]);
                    if !l.is_finite() {
                        return Err(self.nan_failure(epoch, l));
                    }
                    let right = logits
                        .detach()
                        .argmax(1, false)
                        .eq_tensor(&labels)
                        .sum(Kind::Int64)
                        .int64_value(&[]);
                    loss_sum += l * n as f64;
                    correct += right;
                    seen += n as u64;
                    self.observer.event(Event::Advance(n as u64));
                    start = end;
                }
                let record = EpochRecord {
                    epoch: epoch + 1,
                    loss: loss_sum / seen.max(1) as f64,
                    accuracy: correct as f64 / seen.max(1) as f64,
                };
                self.observer.event(Event::Epoch {
                    epoch,
                    loss: record.loss,
                    accuracy: record.accuracy,
                });
                self.results.training.push(record);
                self.folder
                    .write_partial(&self.results)
                    .map_err(|e| self.io_failure(&e))?;
            }
            Ok(())
        })?;
        self.observer.event(Event::PhaseDone);
        self.phase_done("training", t0);
        if let Some(last) = self.results.training.last() {
            if trials::near_chance(last.accuracy, samples) {
                let span = plan::locate(self.ctx.file, &["probe"]);
                let mut d = Diag::warning(
                    Code::RunProbeAtChance,
                    format!(
                        "the probe ends training at {:.1} % correct, barely above chance (50 %)",
                        100.0 * last.accuracy
                    ),
                )
                .with_help(
                    "the thresholds below are unreliable. Either the feature (contrast) is not \
                     linearly decodable at this cut, or the probe has not learnt yet: try more \
                     `epochs` or `samples`, another `lr`, or pooling",
                );
                if let Some(s) = span {
                    d = d
                        .at(s, "this probe stays near chance")
                        .with_source(self.ctx.file);
                }
                self.observer.event(Event::Warning(Box::new(d)));
            }
        }
        Ok(probe)
    }

    fn test(&mut self, probe: &Probe) -> Result<(), Failure> {
        let t0 = Instant::now();
        let plan = self.plan;
        // The tutorial tests in eval mode (with whatever statistics training left).
        self.backbone.set_batchnorm(BatchNorm::Eval);
        let gratings = match self.stimuli {
            StimuliOn::Host => Gratings::Host(TestGratings::new(plan)),
            StimuliOn::Device => Gratings::Device(DeviceGratings::new(&plan.test, self.device)),
        };
        let trial_list = trials::test_trials(&plan.test);
        let t_count = trial_list.len();
        let reference = plan.test.reference;
        let (w_first, w_second) = probe.halves();
        let bias = probe.bias.detach();
        let Staircase::Bisection {
            start,
            low,
            high,
            target,
            tolerance,
            max_steps,
        } = plan.staircase;
        let freqs = &plan.test.frequencies;
        let mut stairs: Vec<Bisection> = freqs
            .iter()
            .map(|_| Bisection::new(start, low, high, target, tolerance, max_steps))
            .collect();
        self.observer.event(Event::Phase {
            name: "testing",
            total: (freqs.len() as u64) * u64::from(max_steps + 1),
            unit: "levels",
        });
        let mut shown = 0usize;
        let mut computed = 0usize;

        // The comparison images of every frequency and trial, projected onto both halves of
        // the probe: rows f·T + t. At reference contrast 0 they are all the same grey image,
        // computed once.
        let refs: Vec<(usize, f64)> = (0..freqs.len()).map(|f| (f, reference)).collect();
        let (ref_first, ref_second, n) =
            self.level_projections(&gratings, &refs, t_count, &w_first, &w_second)?;
        (shown, computed) = (shown + refs.len() * t_count, computed + n);
        let target_first: Vec<bool> = trial_list.iter().map(|t| t.target_first).collect();
        let target_first = Tensor::from_slice(&target_first)
            .to_device(self.device)
            .unsqueeze(1);

        while stairs.iter().any(|s| !s.is_done()) {
            self.check_stop()?;
            let level: Vec<(usize, f64)> = stairs
                .iter()
                .enumerate()
                .filter_map(|(f, s)| s.next_contrast().map(|c| (f, c)))
                .collect();
            // Trials differing only in interval (and gratings equal to the last bit, such as
            // 0° and 180° at phase 0) share one image.
            let (t_first, t_second, n) =
                self.level_projections(&gratings, &level, t_count, &w_first, &w_second)?;
            (shown, computed) = (shown + level.len() * t_count, computed + n);
            for (k, &(f, contrast)) in level.iter().enumerate() {
                let rows =
                    |t: &Tensor, base: usize| t.narrow(0, (base * t_count) as i64, t_count as i64);
                let (r_first, r_second) = (rows(&ref_first, f), rows(&ref_second, f));
                // Grating first: W1·grating + W2·comparison; second: W1·comparison + W2·grating.
                let logits = (rows(&t_first, k) + r_second)
                    .where_self(&target_first, &(r_first + rows(&t_second, k)))
                    + &bias;
                let predicted =
                    Vec::<i64>::try_from(logits.argmax(1, false).to_device(Device::Cpu))
                        .map_err(|e| self.torch_failure(&e.to_string()))?;
                let correct = trial_list
                    .iter()
                    .zip(&predicted)
                    .filter(|(t, &p)| p == trials::test_label(t, contrast, reference))
                    .count();
                stairs[f].observe(correct as f64 / t_count as f64);
                self.observer.event(Event::Advance(1));
                if let Some(r) = FrequencyResult::from_bisection(freqs[f], &stairs[f]) {
                    self.observer.event(Event::Threshold {
                        frequency: r.frequency,
                        threshold: r.threshold,
                        steps: r.steps.len(),
                    });
                }
            }
            self.results.staircases = freqs
                .iter()
                .zip(&stairs)
                .filter_map(|(&f, s)| FrequencyResult::from_bisection(f, s))
                .collect();
            self.folder
                .write_partial(&self.results)
                .map_err(|e| self.io_failure(&e))?;
        }
        self.observer.event(Event::PhaseDone);
        self.observer.event(Event::Status(format!(
            "testing showed {shown} images, {computed} of them distinct (each computed once)"
        )));
        self.phase_done("testing", t0);
        Ok(())
    }

    /// Projections of every trial's grey image at each `(frequency index, contrast)` of
    /// `level`, in that order (rows `k·t_count + t`), rendered where the stimuli are.
    fn level_projections(
        &self,
        gratings: &Gratings,
        level: &[(usize, f64)],
        t_count: usize,
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        match gratings {
            Gratings::Host(g) => {
                let images: Vec<Vec<f32>> = level
                    .iter()
                    .flat_map(|&(f, c)| (0..t_count).map(move |t| (f, t, c)))
                    .map(|(f, t, c)| g.grey(f, t, c))
                    .collect();
                self.projections(&images, w_first, w_second)
            }
            Gratings::Device(g) => {
                let grey: Vec<Tensor> = level
                    .iter()
                    .map(|&(f, c)| g.grey(f, 0..t_count, c))
                    .collect();
                self.device_projections(g, &Tensor::cat(&grey, 0), w_first, w_second)
            }
        }
    }

    /// [`projections`](Self::projections) for images rendered on the device (`[N, H, W]`):
    /// the same distinct images in the same order (first occurrences), so the same batches.
    fn device_projections(
        &self,
        gratings: &DeviceGratings,
        grey: &Tensor,
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        let n = grey.size()[0];
        // Equal rows share an id (float equality; the images hold no NaN and no −0).
        let (_, inverse, _) = grey.view([n, -1]).unique_dim(0, true, true, false);
        let ids = Vec::<i64>::try_from(inverse.to_device(Device::Cpu))
            .map_err(|e| self.torch_failure(&e.to_string()))?;
        let (unique, index) = first_occurrences(&ids);
        let batch = |chunk: &[usize]| {
            let rows: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
            let rows = Tensor::from_slice(&rows).to_device(gratings.device());
            gratings.normalize_grey(&grey.index_select(0, &rows))
        };
        self.project_distinct(&unique, &index, batch, w_first, w_second)
    }

    /// Projections of grey test images onto the two halves of the probe's weight,
    /// `([N, 2], [N, 2], distinct)`: the features of each distinct image are computed once
    /// (in chunks of [`TEST_CHUNK`]), and rows of identical images are copies.
    fn projections(
        &self,
        images: &[Vec<f32>],
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        let (unique, index) = dedupe(images);
        let size = i64::from(self.plan.test.size);
        let image = 3 * images.first().map_or(0, Vec::len);
        let batch = |chunk: &[usize]| {
            let mut buf = vec![0f32; chunk.len() * image];
            buf.par_chunks_mut(image.max(1))
                .zip(chunk)
                .for_each(|(dst, &i)| {
                    trials::grey_to_chw(&images[i], &self.plan.test.normalize, dst)
                });
            Tensor::from_slice(&buf).reshape([chunk.len() as i64, 3, size, size])
        };
        self.project_distinct(&unique, &index, batch, w_first, w_second)
    }

    /// The features of the distinct images `unique` (`batch` makes a chunk of them, at most
    /// [`TEST_CHUNK`], as normalised `[n, 3, H, W]` images) projected onto both halves of
    /// the probe's weight, then one row per image by `index` (its distinct image's
    /// position): `([N, 2], [N, 2], distinct)`.
    fn project_distinct(
        &self,
        unique: &[usize],
        index: &[usize],
        batch: impl Fn(&[usize]) -> Tensor,
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        let mut p_first = Vec::new();
        let mut p_second = Vec::new();
        for chunk in unique.chunks(TEST_CHUNK) {
            self.check_stop()?;
            let feats = self.features(&batch(chunk));
            p_first.push(feats.matmul(&w_first.tr()));
            p_second.push(feats.matmul(&w_second.tr()));
        }
        let index: Vec<i64> = index.iter().map(|&i| i as i64).collect();
        let index = Tensor::from_slice(&index).to_device(self.device);
        let gather = |p: Vec<Tensor>| Tensor::cat(&p, 0).index_select(0, &index);
        Ok((gather(p_first), gather(p_second), unique.len()))
    }

    fn check_stop(&self) -> Result<(), Failure> {
        if !self.ctx.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _ = self.folder.write_partial(&self.results);
        Err(Failure {
            diag: Diag::error(
                Code::RunInterrupted,
                format!(
                    "interrupted after {} of {} epochs and {} of {} staircases",
                    self.results.training.len(),
                    self.plan.probe.epochs,
                    self.results.staircases.len(),
                    self.plan.test.frequencies.len()
                ),
            )
            .with_help(
                "the run folder keeps everything measured so far and its INCOMPLETE marker; \
                 run the experiment again for complete results",
            ),
            exit: EXIT_INTERRUPTED,
            folder: Some(self.folder.path().to_path_buf()),
        })
    }

    fn phase_done(&mut self, name: &str, t0: Instant) {
        self.results
            .manifest
            .phase_seconds
            .push((name.into(), t0.elapsed().as_secs_f64()));
        self.results.manifest.peak_rss_bytes = report::peak_rss_bytes();
    }

    fn nan_failure(&self, epoch: u32, loss: f64) -> Failure {
        let _ = self.folder.write_partial(&self.results);
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
        if let Some(s) = plan::locate(self.ctx.file, &["probe", "optimizer", "lr"]) {
            diag = diag
                .at(s, "this learning rate made the loss diverge")
                .with_source(self.ctx.file);
        }
        Failure {
            diag,
            exit: EXIT_RUN,
            folder: Some(self.folder.path().to_path_buf()),
        }
    }

    fn io_failure(&self, e: &std::io::Error) -> Failure {
        Failure {
            diag: Diag::error(
                Code::RunOutputFolder,
                format!("cannot write to `{}`: {e}", self.folder.path().display()),
            )
            .with_help("check the disk space and the folder's permissions"),
            exit: EXIT_RUN,
            folder: Some(self.folder.path().to_path_buf()),
        }
    }

    fn torch_failure(&self, message: &str) -> Failure {
        Failure {
            diag: Diag::error(Code::RunTorch, format!("libtorch failed: {message}")),
            exit: EXIT_RUN,
            folder: Some(self.folder.path().to_path_buf()),
        }
    }
}

/// Distinct images (exactly equal `f32` buffers): `(indices of the first of each, for every
/// image the position of its distinct image in that list)`.
/// Where stimuli are rendered: on the host (rayon), or as tensor operations on the device
/// (`device_stimuli`, identical images). The device when it is CUDA; `PSYRUN_STIMULI=host`
/// or `device` overrides (to compare the two, or to test the device path on a CPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StimuliOn {
    Host,
    Device,
}

impl StimuliOn {
    fn name(self) -> &'static str {
        match self {
            StimuliOn::Host => "host",
            StimuliOn::Device => "device",
        }
    }
}

/// The environment variable that overrides where stimuli are rendered.
pub const STIMULI_VAR: &str = "PSYRUN_STIMULI";

fn stimuli_on(device: Device) -> Result<StimuliOn, Failure> {
    match std::env::var(STIMULI_VAR).ok().as_deref() {
        None | Some("") => Ok(if device.is_cuda() {
            StimuliOn::Device
        } else {
            StimuliOn::Host
        }),
        Some("host") => Ok(StimuliOn::Host),
        Some("device") => Ok(StimuliOn::Device),
        Some(other) => Err(Failure::new(
            Diag::error(
                Code::PlanUnknownValue,
                format!("{STIMULI_VAR}={other} is not a place to render stimuli"),
            )
            .with_help(format!(
                "set {STIMULI_VAR} to `host` or `device`, or unset it (the device when it is CUDA, else the host)"
            )),
            EXIT_USAGE,
        )),
    }
}

/// A training batch from the stimulus thread.
enum TrainBatch {
    Host(trials::TrainBatch),
    Device(device_stimuli::DeviceTrainBatch),
}

/// The test gratings, where the stimuli are rendered.
enum Gratings {
    Host(TestGratings),
    Device(DeviceGratings),
}

/// For ids of equal items (`ids[i]` the same exactly when items are equal): the index of
/// each distinct item's first occurrence, in order, and for every item its distinct
/// item's position in that list. The same result as [`dedupe`] on the items.
fn first_occurrences(ids: &[i64]) -> (Vec<usize>, Vec<usize>) {
    let mut position: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut unique = Vec::new();
    let index = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            *position.entry(*id).or_insert_with(|| {
                unique.push(i);
                unique.len() - 1
            })
        })
        .collect();
    (unique, index)
}

fn dedupe(images: &[Vec<f32>]) -> (Vec<usize>, Vec<usize>) {
    use std::collections::hash_map::{DefaultHasher, HashMap};
    use std::hash::{Hash, Hasher};
    let hashes: Vec<u64> = images
        .par_iter()
        .map(|img| {
            let mut h = DefaultHasher::new();
            for v in img {
                v.to_bits().hash(&mut h);
            }
            h.finish()
        })
        .collect();
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut unique = Vec::new();
    let mut index = Vec::with_capacity(images.len());
    for (i, (img, h)) in images.iter().zip(hashes).enumerate() {
        let bucket = seen.entry(h).or_default();
        let same = bucket.iter().copied().find(|&u| images[unique[u]] == *img);
        match same {
            Some(u) => index.push(u),
            None => {
                bucket.push(unique.len());
                index.push(unique.len());
                unique.push(i);
            }
        }
    }
    (unique, index)
}

/// `cpu`, `cuda:0`.
pub(super) fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The plan's device, checked against the machine.
fn select_device(plan: &Plan, file: &SourceFile) -> Result<Device, Failure> {
    check_device(
        plan.device,
        Some(file),
        "use `device auto` (CUDA when present, else the CPU) or `device cpu`",
    )
    .map_err(|d| Failure::new(d, EXIT_UNAVAILABLE))
}

/// `device` checked against the machine; the error points at the experiment's `device`
/// setting when there is a file, with `advice` as the first part of its help.
pub(super) fn check_device(
    device: plan::Device,
    file: Option<&SourceFile>,
    advice: &str,
) -> Result<Device, Diag> {
    let cuda = tch::Cuda::is_available();
    let count = if cuda { tch::Cuda::device_count() } else { 0 };
    match device {
        plan::Device::Cpu => Ok(Device::Cpu),
        plan::Device::Auto => Ok(if cuda { Device::Cuda(0) } else { Device::Cpu }),
        plan::Device::Cuda(n) if i64::from(n) < count => Ok(Device::Cuda(n as usize)),
        plan::Device::Cuda(n) => {
            let why = if count == 0 {
                "this machine has no usable CUDA device (or this libtorch has no CUDA support)"
                    .to_string()
            } else {
                format!(
                    "this machine has {count} CUDA device(s): cuda:0 to cuda:{}",
                    count - 1
                )
            };
            let mut d = Diag::error(Code::RunNoCuda, format!("`cuda:{n}` asked for, but {why}"))
                .with_help(format!(
                    "{advice}; `psyrun doctor` shows what libtorch sees"
                ));
            if let Some(file) = file {
                if let Some(s) = plan::locate(file, &["device"]) {
                    d = d.at(s, "CUDA device asked for here").with_source(file);
                }
            }
            Err(d)
        }
    }
}

/// Whether cuDNN and cuBLAS may use TensorFloat-32 (10-bit mantissa) for float32 work on
/// CUDA. libtorch lets cuDNN use it by default, so a float32 experiment on an Ampere or later
/// GPU would silently compute its convolutions in TF32. For `fp32` and `bf16`,
/// `NVIDIA_TF32_OVERRIDE=0`, which cuDNN and cuBLAS read when they start (before this
/// process's first CUDA operation, hence here), switches it off for every operation,
/// TorchScript modules included; catalog backbones also pass the choice to each convolution
/// ([`Backbone::set_precision`]). A value the user set is left alone.
pub(super) fn set_tf32(precision: plan::Precision) {
    const VAR: &str = "NVIDIA_TF32_OVERRIDE";
    if precision != plan::Precision::Tf32 && std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, "0");
    }
}

/// The plan to run: as given, or for a TorchScript backbone with the shapes filled in, which
/// only running the module can tell; and the loaded module. Fails before any run folder
/// exists.
fn prepare(plan: &Plan, ctx: &Context<'_>) -> Result<(Plan, Option<ScriptNet>), Failure> {
    let base = ctx.path.parent().map(Path::to_path_buf).unwrap_or_default();
    resolve_script(plan, &base, Some(ctx.file)).map_err(|d| Failure::new(d, EXIT_RUN))
}

/// For a TorchScript backbone (a path relative to `base`): loads the module, runs it on grey
/// images of the train and test sizes, and returns the plan with the feature shapes filled
/// in, and the module. A catalog backbone's plan comes back unchanged, with no module.
pub(super) fn resolve_script(
    plan: &Plan,
    base: &Path,
    file: Option<&SourceFile>,
) -> Result<(Plan, Option<ScriptNet>), Diag> {
    let Network::TorchScript { file: module } = &plan.backbone.network else {
        return Ok((plan.clone(), None));
    };
    let fail = |e: ScriptError| script_diag(&e, file);
    let net = ScriptNet::load(&base.join(module)).map_err(fail)?;
    let pooling = plan.backbone.pooling;
    let (cut_shape, feature_shape) = net
        .shapes(plan.train.size, &plan.train.normalize, pooling)
        .map_err(fail)?;
    if plan.test.size != plan.train.size {
        let (test_shape, test_features) = net
            .shapes(plan.test.size, &plan.test.normalize, pooling)
            .map_err(fail)?;
        if test_features != feature_shape {
            return Err(fail(ScriptError::Output {
                path: net.path().to_path_buf(),
                message: format!(
                    "train ({} px) and test ({} px) images give different feature shapes ({:?} vs {:?})",
                    plan.train.size, plan.test.size, cut_shape, test_shape
                ),
                help: "use the same size for both, or adaptive pooling (`pooling avg 4x4`) so \
                       the probe sees a fixed shape"
                    .into(),
            }));
        }
    }
    let mut resolved = plan.clone();
    resolved.derived.set_shapes(cut_shape, feature_shape);
    Ok((resolved, Some(net)))
}

/// A TorchScript error as a diagnostic pointing at the `backbone torchscript "…"` line.
pub(super) fn script_diag(e: &ScriptError, file: Option<&SourceFile>) -> Diag {
    let mut d = Diag::error(Code::RunTorchScript, e.to_string()).with_help(e.help());
    if let Some(file) = file {
        if let Some(span) = plan::locate(file, &["backbone"]) {
            let label = match e {
                ScriptError::Io { .. } => "this file cannot be read",
                ScriptError::NotTorchScript { .. } => "not a TorchScript module",
                ScriptError::Load { .. } => "libtorch cannot load this module",
                ScriptError::Output { .. } => "this module's output does not fit",
            };
            d = d.at(span, label).with_source(file);
        }
    }
    d
}

/// A weights error as a run failure, pointing at the `weights` setting.
fn weights_failure(e: WeightsError, file: &SourceFile) -> Failure {
    let (diag, exit) = weights_diag(e, Some(file));
    Failure::new(diag, exit)
}

/// A weights error as a diagnostic and an exit code, pointing at the experiment's `weights`
/// setting when there is a file.
pub(super) fn weights_diag(e: WeightsError, file: Option<&SourceFile>) -> (Diag, u8) {
    use psyrun::checkpoint::CheckpointError;
    use psyrun::hub::{HubError, BASE_URL_VAR, DEFAULT_BASE_URL};
    let (code, label, help, exit) = match &e {
        WeightsError::Io { .. } => (
            Code::RunWeightsFile,
            "this weights file cannot be read",
            "a relative path is taken from the experiment file's folder (for `psyrun features` without \
             --experiment, from the working directory)"
                .to_string(),
            EXIT_RUN,
        ),
        WeightsError::Format { .. } | WeightsError::UnknownFormat { .. } => (
            Code::RunWeightsFile,
            "not a usable weights file",
            "psyrun reads .safetensors files and PyTorch checkpoints (.pth, .pt) holding a torchvision state_dict".to_string(),
            EXIT_RUN,
        ),
        WeightsError::Checkpoint { source, .. } => (
            Code::RunWeightsFile,
            match source {
                CheckpointError::Io { .. } => "this weights file cannot be read",
                CheckpointError::Forbidden { .. } => "this checkpoint holds more than tensors",
                _ => "not a usable PyTorch checkpoint",
            },
            source.help().to_string(),
            EXIT_RUN,
        ),
        WeightsError::Hub(h) => match h {
            HubError::Download { .. } => (
                Code::RunWeightsDownload,
                "not in torch's cache, and the download failed",
                format!("the folder is torchvision's own cache ($TORCH_HOME/hub/checkpoints); a file copied there \
                         by hand is used without downloading; set {BASE_URL_VAR} to download from a mirror instead \
                         of {DEFAULT_BASE_URL}"),
                EXIT_RUN,
            ),
            HubError::Corrupt { .. } => (
                Code::RunWeightsDownload,
                "the downloaded torchvision weights are corrupt",
                "run again to download them again; the file's name carries the start of its SHA-256".to_string(),
                EXIT_RUN,
            ),
            HubError::CachedCorrupt { .. } => (
                Code::RunWeightsDownload,
                "the cached file of these torchvision weights is corrupt",
                "delete the file named above (an interrupted copy?); the next run downloads it again".to_string(),
                EXIT_RUN,
            ),
            HubError::NoCacheFolder | HubError::Folder { .. } | HubError::Io { .. } => (
                Code::RunWeightsDownload,
                "torch's weights cache cannot be used",
                "set TORCH_HOME to a writable folder; weights are kept in $TORCH_HOME/hub/checkpoints".to_string(),
                EXIT_RUN,
            ),
            HubError::UnknownSet { .. } => (
                Code::RunWeightsDownload,
                "torchvision publishes no such weight set",
                "`psyrun check` lists the weight sets of each architecture".to_string(),
                EXIT_RUN,
            ),
            HubError::Cancelled { .. } => (
                Code::RunInterrupted,
                "interrupted while downloading these weights",
                "run again to download them".to_string(),
                EXIT_INTERRUPTED,
            ),
        },
        WeightsError::Mismatch(_) => (
            Code::RunWeightsMismatch,
            "these weights do not fit the backbone",
            "the file must hold the torchvision state_dict of exactly this architecture (keys past the cut may be missing)".to_string(),
            EXIT_RUN,
        ),
        WeightsError::Torch(_) => (
            Code::RunTorch,
            "libtorch failed while loading these weights",
            "please report this with the weights file's origin".to_string(),
            EXIT_RUN,
        ),
    };
    let mut d = Diag::error(code, e.to_string()).with_help(help);
    if let Some(file) = file {
        if let Some(s) = plan::locate(file, &["backbone", "weights"]) {
            d = d.at(s, label).with_source(file);
        }
    }
    (d, exit)
}

#[cfg(test)]
mod tests {
    use super::{dedupe, FeatureOrder, Probe};
    use tch::{Device, Kind, Tensor};

    /// A probe laid out for channels-last features is the same function as one in
    /// torchvision's order: the same logits (to float rounding) for the same images.
    #[test]
    fn probe_weights_follow_the_feature_order() {
        let (c, h, w) = (5i64, 3i64, 4i64);
        let shape = [c as u32, h as u32, w as u32];
        let chw = Probe::new(&shape, FeatureOrder::Chw, 7, Device::Cpu);
        let hwc = Probe::new(&shape, FeatureOrder::Hwc, 7, Device::Cpu);
        assert!(chw.bias.equal(&hwc.bias));
        tch::manual_seed(1);
        let maps = |n| Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu));
        let (first, second) = (maps(6), maps(6));
        let by_chw = |m: &Tensor| m.reshape([6, -1]);
        let by_hwc = |m: &Tensor| m.permute([0, 2, 3, 1]).reshape([6, -1]);
        let a = chw.forward(&by_chw(&first), &by_chw(&second));
        let b = hwc.forward(&by_hwc(&first), &by_hwc(&second));
        let diff = (&a - &b).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "logits differ by {diff}");
        // Not the same layout: the weights really were permuted.
        assert!(!chw.weight.equal(&hwc.weight));
        // Feature (c=1, y=2, x=3) of the first image has one weight in both layouts.
        let at_chw = h * w + 2 * w + 3; // (1·h + 2)·w + 3
        let at_hwc = (2 * w + 3) * c + 1;
        assert_eq!(
            chw.weight.double_value(&[0, at_chw]),
            hwc.weight.double_value(&[0, at_hwc])
        );
        // Flat features have one order.
        let flat = Probe::new(&[(c * h * w) as u32], FeatureOrder::Hwc, 7, Device::Cpu);
        assert!(flat.weight.equal(&chw.weight));
    }

    #[test]
    fn dedupe_keeps_first_occurrences_and_maps_every_image() {
        let a = vec![0.5f32; 4];
        let b = vec![0.25f32, 0.5, 0.5, 0.5];
        let c = vec![0.5f32, 0.5, 0.5, 0.25];
        let images = vec![a.clone(), b.clone(), a.clone(), c, b];
        let (unique, index) = dedupe(&images);
        assert_eq!(unique, [0, 1, 3]);
        assert_eq!(index, [0, 1, 0, 2, 1]);
        for (i, &u) in index.iter().enumerate() {
            assert_eq!(images[unique[u]], images[i]);
        }
        assert_eq!(dedupe(&[]), (vec![], vec![]));
    }
}
