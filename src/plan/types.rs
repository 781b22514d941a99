//! The plan: the fully resolved experiment. This is the contract between the language and
//! the interpreter: every value that changes a result is here, defaults written in, in a
//! fixed order. It is printed by `psyrun plan`, snapshot-tested, and saved with every run.

use super::design::Design;
use super::spans::Spans;
use crate::models::catalog::Arch;
use serde::{Deserialize, Serialize};

/// A resolved experiment.
///
/// An experiment written with the model of issue 12 has a [`design`](Self::design); its
/// `train` and `test` then hold only what the shared machinery reads (image size, the
/// axis values as `test.frequencies`, normalisation, samples per epoch) and are left out
/// of the serialised plan, which shows the design instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "super::design::repr::PlanRepr",
    into = "super::design::repr::PlanRepr"
)]
pub struct Plan {
    /// Language version of the source file.
    pub psy: u32,
    /// The experiment's name.
    pub experiment: String,
    /// Master seed; every random stream (stimuli, probe initialisation, order) derives from it.
    pub seed: u64,
    /// Where to compute.
    pub device: Device,
    /// Arithmetic of the backbone's forward passes.
    pub precision: Precision,
    /// The frozen network and where it is cut.
    pub backbone: Backbone,
    /// The linear read-out trained on the backbone's features.
    pub probe: Probe,
    /// Training stimuli.
    pub train: Train,
    /// Test stimuli and paradigm.
    pub test: Test,
    /// The adaptive procedure that finds each threshold.
    pub staircase: Staircase,
    /// How the probe's decision variable becomes a response, and what varies between
    /// trials (`observer { … }`).
    pub observer: Observer,
    /// The psychometric function fitted to each frequency's trials (`fit … { … }`).
    pub fit: Fit,
    /// Independent probes (seeds) trained and tested; thresholds are summarised over them.
    pub repeats: u32,
    /// The experiment's stimuli, task, readout, level and axis, for experiments written with
    /// those blocks (`None` for `train shapes` + `test gratings` experiments).
    pub design: Option<Design>,
    /// Quantities computed from the above (shapes, trial counts), for the reader.
    pub derived: Derived,
    /// Where the settings run-time diagnostics point at are written (see
    /// [`Spans`](super::Spans)). Not serialised: empty in a plan read back from RON.
    pub spans: Spans,
}

/// Compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Device {
    /// The first CUDA device if there is one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(u32),
}

/// Arithmetic of the backbone's forward passes (the probe always trains in float32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// float32 throughout; on CUDA, TensorFloat-32 is switched off for convolutions and
    /// matrix products (libtorch's default lets cuDNN use it). The default.
    Fp32,
    /// float32 storage with TensorFloat-32 tensor-core arithmetic (10-bit mantissa) in
    /// convolutions and matrix products on CUDA GPUs that have it (Ampere and later). Same
    /// as `Fp32` on the CPU.
    Tf32,
    /// The backbone's weights and activations in bfloat16 (8-bit mantissa); features are
    /// converted back to float32 for the probe.
    Bf16,
}

impl Precision {
    /// The name written in `.psy` files and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// The backbone network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backbone {
    /// Which network computes the features.
    pub network: Network,
    /// Parameter-free pooling of the cut's feature map.
    pub pooling: Pooling,
    /// How BatchNorm layers behave while the probe trains.
    pub batchnorm: BatchNorm,
    /// For a cut whose output is a sequence of tokens (a vision transformer's): which
    /// tokens become the features (`tokens cls | mean | map`). `None` for feature maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenReadout>,
    /// What the TorchScript file's sidecar (`FILE.json`, written by
    /// `scripts/export_torchscript.py`) says of the module: filled in when a run loads it
    /// (as the shapes are), `None` before and without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<Sidecar>,
}

/// Which tokens become the features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenReadout {
    /// The first token (the class token): `D` features.
    Cls,
    /// The mean of the patch tokens (prefix tokens left out): `D` features.
    Mean,
    /// The patch tokens laid out as a `D × rows × columns` feature map (pooling applies as
    /// for a CNN's).
    Map,
}

impl TokenReadout {
    /// The word written in `.psy` files.
    pub fn name(self) -> &'static str {
        match self {
            TokenReadout::Cls => "cls",
            TokenReadout::Mean => "mean",
            TokenReadout::Map => "map",
        }
    }
}

/// Where the batch and token axes are in a token sequence `[·, ·, D]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenLayout {
    /// `[N, L, D]`: batch first (torchvision, timm, DINOv2).
    Nld,
    /// `[L, N, D]`: sequence first (OpenAI's and OpenCLIP's transformers).
    Lnd,
}

/// How a module's output lays out tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFormat {
    /// Where the batch and the token axes are.
    pub layout: TokenLayout,
    /// Tokens before the patch tokens (a class token, registers): 1 for torchvision's ViT.
    pub prefix: u32,
    /// The patch tokens' grid (rows, columns), needed by `tokens map`.
    pub grid: Option<(u32, u32)>,
}

/// A TorchScript module's sidecar: how it was exported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// The model it was exported from, as the exporter wrote it.
    pub source: String,
    /// The module after which it was cut.
    pub layer: String,
    /// The only input size it accepts, when fixed (e.g. a ViT's position embeddings).
    pub input_size: Option<u32>,
    /// The input normalisation the model was trained with, when known.
    pub normalize: Option<Normalize>,
    /// How its output lays out tokens (`None`: a feature map).
    pub tokens: Option<TokenFormat>,
}

/// Where the backbone comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Network {
    /// An architecture psyrun builds itself, cut after a module.
    Catalog(CatalogNet),
    /// A TorchScript module the user exported (`torch.jit.trace`/`script` + `save`), already
    /// cut: its output is the feature map. Its shapes are known only when it is loaded.
    TorchScript {
        /// The file, as written in the experiment (relative to the experiment's folder).
        file: String,
    },
}

/// A catalog architecture with its weights and cut.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogNet {
    /// Architecture from the catalog.
    pub arch: Arch,
    /// Where its weights come from.
    pub weights: Weights,
    /// The torchvision module path after which the network is cut.
    pub cut: String,
}

impl Backbone {
    /// The catalog network, or `None` for a TorchScript file.
    pub fn catalog(&self) -> Option<&CatalogNet> {
        match &self.network {
            Network::Catalog(c) => Some(c),
            Network::TorchScript { .. } => None,
        }
    }

    /// One line for titles and messages: `resnet50 (IMAGENET1K_V1), cut layer2` or
    /// `TorchScript net.pt`.
    pub fn describe(&self) -> String {
        match &self.network {
            Network::Catalog(c) => {
                let weights = match &c.weights {
                    Weights::Random => "random weights",
                    Weights::Torchvision(name) => name.as_str(),
                    Weights::File(path) => path.as_str(),
                };
                format!("{} ({weights}), cut {}", c.arch.name(), c.cut)
            }
            Network::TorchScript { file } => format!("TorchScript {file}"),
        }
    }
}

/// Weights of the backbone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Weights {
    /// Seeded random initialisation (torchvision's scheme).
    Random,
    /// A named weight set of the hub's table by name: torchvision's (`IMAGENET1K_V1`), OpenAI's
    /// CLIP (`OPENAI`) or Meta's DINOv2 (`LVD142M`).
    Torchvision(String),
    /// A local file (`.safetensors`, `.pth`), as written in the experiment.
    File(String),
}

/// Adaptive, parameter-free pooling to a fixed spatial size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pooling {
    /// No pooling: the whole feature map is flattened (`pooling none`).
    Off,
    /// Adaptive average pooling to h×w.
    Avg {
        /// Output height.
        h: u32,
        /// Output width.
        w: u32,
    },
    /// Adaptive max pooling to h×w.
    Max {
        /// Output height.
        h: u32,
        /// Output width.
        w: u32,
    },
}

/// BatchNorm behaviour while the probe trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchNorm {
    /// Truly frozen: running statistics are used and never updated (correct, default).
    Eval,
    /// Training mode as in the tutorial: batch statistics are used and running statistics
    /// drift while the probe trains. Only to reproduce the tutorial's numbers.
    Train,
}

/// The linear probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// How the two images' features reach the classifier.
    pub paradigm: Paradigm,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Passes over freshly drawn training stimuli.
    pub epochs: u32,
    /// Trials per optimiser step.
    pub batch: u32,
}

/// Probe paradigm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Paradigm {
    /// Two-alternative forced choice: both images' features concatenated, two classes.
    TwoAfc,
}

/// Probe optimiser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Optimizer {
    /// Stochastic gradient descent.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
        /// L2 weight decay.
        weight_decay: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam.
    Adam {
        /// Learning rate.
        lr: f64,
        /// β1 and β2.
        betas: (f64, f64),
        /// L2 weight decay.
        weight_decay: f64,
    },
}

/// Training stimuli: random shapes at two contrasts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Train {
    /// Image size in pixels (square).
    pub size: u32,
    /// Trials per epoch, drawn afresh every epoch.
    pub samples: u32,
    /// The shapes drawn.
    pub shapes: Vec<Shape>,
    /// Background grey level in [0, 1].
    pub background: f64,
    /// The grey level the contrast manipulation pivots about, `x ← p + c·(x − p)`: by
    /// default the background (`pivot background`); the tutorial's is 0.5. Plans written
    /// before the setting existed pivoted at 0.5.
    #[serde(default = "tutorial_pivot")]
    pub pivot: f64,
    /// Distribution of each image's contrast.
    pub contrast: Uniform,
    /// Input normalisation after the contrast manipulation.
    pub normalize: Normalize,
}

/// The tutorial's contrast pivot, `(1 − c)/2 + c·x`.
fn tutorial_pivot() -> f64 {
    0.5
}

/// A training shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// Filled circle.
    Circle,
    /// Filled ellipse at any angle.
    Ellipse,
    /// Filled axis-aligned rectangle.
    Rectangle,
}

/// A uniform distribution on [lo, hi).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Uniform {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// Per-channel input normalisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Normalize {
    /// No normalisation: the network sees values in [0, 1] (`normalize none`).
    Off,
    /// (x − mean) / std per RGB channel.
    MeanStd {
        /// Channel means.
        mean: [f64; 3],
        /// Channel standard deviations.
        std: [f64; 3],
    },
}

/// Test stimuli and paradigm: gratings against a uniform comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Test {
    /// Image size in pixels (square).
    pub size: u32,
    /// Spatial frequencies in cycles per image.
    pub frequencies: Vec<f64>,
    /// Grating orientations in degrees.
    pub orientations: Vec<f64>,
    /// Grating phases in degrees.
    pub phases: Vec<f64>,
    /// Window applied to the grating.
    pub envelope: Envelope,
    /// Contrast of the comparison image.
    pub reference: f64,
    /// Which interval holds the grating.
    pub target_interval: TargetInterval,
    /// Input normalisation after the contrast manipulation.
    pub normalize: Normalize,
}

/// Grating window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Envelope {
    /// No window (`envelope none`).
    Off,
    /// Gaussian with its peak at 1 in the image centre.
    Gaussian {
        /// Standard deviation in pixels.
        sigma: f64,
    },
}

/// Which interval holds the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetInterval {
    /// Always the first image.
    First,
    /// Always the second image (the tutorial).
    Second,
    /// Both orders, counterbalanced (every condition twice).
    Both,
}

/// Adaptive procedure: how the contrasts tested at one frequency are chosen and how the
/// threshold is read off. `src/staircase` runs it; `docs/language.md` describes every setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Staircase {
    /// Bisection of a contrast interval (`staircase bisection { … }`). Test at `mid`; above
    /// the target move halfway toward `low`, below it halfway toward `high`. With
    /// `stop: Tolerance` (the tutorial's rule) it stops when |accuracy − target| <
    /// `tolerance` and the threshold is the last mid; with `stop: Bracket` it brackets the
    /// crossing of the target until the bracket is narrower than `bracket` (log10 units).
    /// Either stops after `max_steps` updates (at most `max_steps + 1` evaluations).
    Bisection {
        /// First contrast tested.
        start: f64,
        /// Lower end of the search interval.
        low: f64,
        /// Upper end of the search interval.
        high: f64,
        /// Target proportion correct.
        target: f64,
        /// Stop when |accuracy − target| < tolerance (`stop: Tolerance`; 0 otherwise).
        tolerance: f64,
        /// Most updates of the contrast.
        max_steps: u32,
        /// The stop rule (plans written before it existed used the tutorial's rule).
        #[serde(default)]
        stop: BisectionStop,
        /// Width of the final bracket in log10 contrast (`stop: Bracket`; 0 otherwise).
        #[serde(default)]
        bracket: f64,
    },
    /// Transformed (and weighted) up/down staircase, PsychoPy's `StairHandler`.
    UpDown(UpDownSettings),
    /// QUEST (Watson & Pelli 1983) on log10 contrast.
    Quest(QuestSettings),
    /// QUEST+ (Watson 2017) over a Weibull's threshold × slope × lapse, stimuli in dB.
    QuestPlus(QuestPlusSettings),
    /// The method of constant stimuli: fixed levels, ascending, a fixed number of trials each.
    Constant(ConstantSettings),
}

/// When a bisection stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BisectionStop {
    /// The tutorial's rule: as soon as accuracy is within `tolerance` of the target.
    #[default]
    Tolerance,
    /// When the bracket around the target's crossing is narrower than `bracket` (log10).
    Bracket,
}

/// How an up/down step changes the contrast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepScale {
    /// `c ± s`.
    Lin,
    /// `c · 10^(±s)`.
    Log,
    /// `c · 10^(±s/20)`.
    Db,
}

/// How several stop criteria combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopWhen {
    /// Stop when every criterion is met (PsychoPy's `StairHandler`).
    All,
    /// Stop when any criterion is met.
    Any,
}

/// `staircase updown { … }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpDownSettings {
    /// First contrast tested.
    pub start: f64,
    /// Contrasts are clamped to `low..=high`.
    pub low: f64,
    /// Upper clamp.
    pub high: f64,
    /// Step sizes: the k-th reversal switches to `steps[k]` (the last one stays).
    pub steps: Vec<f64>,
    /// Units of the steps.
    pub scale: StepScale,
    /// Consecutive incorrect responses that make the contrast go up.
    pub up: u32,
    /// Consecutive correct responses that make the contrast go down.
    pub down: u32,
    /// Size of an up step relative to a down step (Kaernbach's weighted up/down; 1 = equal).
    pub up_factor: f64,
    /// 1-up/1-down until the first reversal.
    pub initial_rule: bool,
    /// Trials criterion.
    pub trials: u32,
    /// Reversals criterion (at least `steps.len()`).
    pub reversals: u32,
    /// How the two criteria combine.
    pub stop: StopWhen,
    /// Hard cap on trials, whatever the criteria.
    pub max_trials: u32,
    /// The threshold is the mean of the last `average_last` reversals.
    pub average_last: u32,
}

/// Where QUEST places the next trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuestMethod {
    /// Pelli's quantile of the posterior (the ideal sweat factor's).
    Quantile,
    /// The posterior mean (King-Smith et al. 1994).
    Mean,
    /// The posterior mode (Watson & Pelli's original).
    Mode,
}

/// `staircase quest { … }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestSettings {
    /// Prior mean, as a contrast.
    pub start: f64,
    /// Prior standard deviation in log10 units.
    pub start_sd: f64,
    /// Lowest contrast tested (> 0).
    pub low: f64,
    /// Highest contrast tested.
    pub high: f64,
    /// Proportion correct at threshold.
    pub target: f64,
    /// Weibull slope on log10 contrast.
    pub beta: f64,
    /// Lapse proportion.
    pub delta: f64,
    /// Guess rate (chance).
    pub gamma: f64,
    /// Grid step in log10 units.
    pub grain: f64,
    /// Placement rule.
    pub method: QuestMethod,
    /// Number of trials.
    pub trials: u32,
    /// Also stop when the 5–95 % posterior interval is narrower than this (log10 units).
    pub stop_interval: Option<f64>,
}

/// `staircase questplus { … }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestPlusSettings {
    /// Stimulus grid: contrasts in dB (20·log10 c), ascending.
    pub contrasts_db: Vec<f64>,
    /// Threshold grid, dB.
    pub thresholds_db: Vec<f64>,
    /// Weibull slope grid (on dB/20, i.e. per log10 unit).
    pub slopes: Vec<f64>,
    /// Lapse grid.
    pub lapses: Vec<f64>,
    /// Guess rate (chance).
    pub gamma: f64,
    /// Proportion correct the reported threshold contrast gives, from the estimated curve.
    pub target: f64,
    /// Number of trials.
    pub trials: u32,
}

/// `staircase constant { … }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConstantSettings {
    /// Contrasts tested, ascending.
    pub levels: Vec<f64>,
    /// Each level is tested `repeats` times over every condition of the test
    /// (`repeats × trials_per_level` trials), so conditions stay balanced.
    pub repeats: u32,
    /// Proportion correct whose crossing is the threshold.
    pub target: f64,
}

impl Staircase {
    /// The lowest and highest contrast it can request.
    pub fn range(&self) -> (f64, f64) {
        match self {
            Staircase::Bisection { low, high, .. } => (*low, *high),
            Staircase::UpDown(u) => (u.low, u.high),
            Staircase::Quest(q) => (q.low, q.high),
            Staircase::QuestPlus(q) => {
                let c = |db: f64| 10f64.powf(db / 20.0);
                let lo = q.contrasts_db.first().copied().unwrap_or(0.0);
                let hi = q.contrasts_db.last().copied().unwrap_or(0.0);
                (c(lo), c(hi))
            }
            Staircase::Constant(k) => (
                k.levels.first().copied().unwrap_or(0.0),
                k.levels.last().copied().unwrap_or(0.0),
            ),
        }
    }

    /// The first contrast it requests.
    pub fn start(&self) -> f64 {
        match self {
            Staircase::Bisection { start, .. } => *start,
            Staircase::UpDown(u) => u.start,
            Staircase::Quest(q) => q.start.clamp(q.low, q.high),
            Staircase::QuestPlus(q) => {
                let mid = q.contrasts_db[q.contrasts_db.len() / 2];
                10f64.powf(mid / 20.0)
            }
            Staircase::Constant(k) => k.levels.first().copied().unwrap_or(0.0),
        }
    }

    /// The most requests (contrast levels) it makes.
    pub fn max_levels(&self) -> u32 {
        match self {
            Staircase::Bisection { max_steps, .. } => max_steps.saturating_add(1),
            Staircase::UpDown(u) => u.max_trials,
            Staircase::Quest(q) => q.trials,
            Staircase::QuestPlus(q) => q.trials,
            Staircase::Constant(k) => u32::try_from(k.levels.len()).unwrap_or(u32::MAX),
        }
    }

    /// The most trials it runs, given the test's trials per level (conditions).
    pub fn max_trials(&self, trials_per_level: u32) -> u64 {
        let n = u64::from(trials_per_level.max(1));
        match self {
            Staircase::Bisection { .. } => u64::from(self.max_levels()) * n,
            Staircase::UpDown(_) | Staircase::Quest(_) | Staircase::QuestPlus(_) => {
                u64::from(self.max_levels())
            }
            Staircase::Constant(k) => k.levels.len() as u64 * u64::from(k.repeats) * n,
        }
    }

    /// The keyword of its block label.
    pub fn name(&self) -> &'static str {
        match self {
            Staircase::Bisection { .. } => "bisection",
            Staircase::UpDown(_) => "updown",
            Staircase::Quest(_) => "quest",
            Staircase::QuestPlus(_) => "questplus",
            Staircase::Constant(_) => "constant",
        }
    }
}

/// Quantities derived from the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// Shape of the cut's output for one image (C, H, W, or N for flat layers). `None` for
    /// a TorchScript backbone until the file is loaded (a run's `plan.ron` has it filled).
    pub cut_shape: Option<Vec<u32>>,
    /// Shape the probe sees per image, after pooling (`None` as `cut_shape`).
    pub feature_shape: Option<Vec<u32>>,
    /// Features per image (`None` as `cut_shape`).
    pub features_per_image: Option<u64>,
    /// Probe inputs (both images) (`None` as `cut_shape`).
    pub probe_inputs: Option<u64>,
    /// Probe parameters (weights and biases) (`None` as `cut_shape`).
    pub probe_parameters: Option<u64>,
    /// Test trials per contrast level: orientations × phases × intervals.
    pub trials_per_level: u32,
    /// Most contrast levels tested per frequency (`max_steps + 1` for bisection; for up/down,
    /// QUEST and QUEST+ one trial per level).
    pub max_levels_per_frequency: u32,
    /// Training images per epoch (two per trial).
    pub train_images_per_epoch: u64,
    /// Estimated peak memory of the run in bytes (the probe with its optimiser state, a
    /// training batch's activations and stimuli, a test chunk, libtorch's runtime; not the
    /// backbone's weights). `None` for a TorchScript backbone.
    #[serde(default)]
    pub estimated_peak_bytes: Option<u64>,
}

impl Derived {
    /// Fills the shape-dependent quantities from the cut's output shape and the shape after
    /// pooling (per image), for the tutorial's probe: both images' features, two logits.
    /// A design's probe is sized by [`set_probe`](Self::set_probe) after this.
    pub fn set_shapes(&mut self, cut_shape: Vec<u32>, feature_shape: Vec<u32>) {
        let per_image: u64 = feature_shape.iter().map(|&d| u64::from(d)).product();
        self.cut_shape = Some(cut_shape);
        self.feature_shape = Some(feature_shape);
        self.features_per_image = Some(per_image);
        self.probe_inputs = Some(2 * per_image);
        self.probe_parameters = Some(2 * (2 * per_image) + 2);
    }

    /// Sizes a design's read-out from the features per image (set by
    /// [`set_shapes`](Self::set_shapes)): a probe sees every interval's features side by
    /// side (same/different: `|f₁ − f₂|`) and has one logit per answer; a distance read-out
    /// has no parameters. Without a design, or before the shapes are known, nothing changes.
    pub fn set_probe(&mut self, design: Option<&Design>) {
        let (Some(d), Some(per_image)) = (design, self.features_per_image) else {
            return;
        };
        let inputs = u64::from(d.task.probe_intervals()) * per_image;
        let choices = u64::from(d.task.choices());
        self.probe_inputs = Some(inputs);
        self.probe_parameters = Some(match d.readout {
            super::design::Readout::Probe => choices * inputs + choices,
            super::design::Readout::Distance(_) => 0,
        });
    }
}

/// The observer: how the probe's decision variable becomes a response on each trial, and
/// what varies from trial to trial. The decision variable of a trial is
/// `d = logit(second) − logit(first)`; the observer answers "second" when `d + ε > 0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observer {
    /// The late (decision) noise ε.
    pub decision: Decision,
    /// Standard deviation of independent Gaussian noise added to every pixel of both
    /// images of every test trial, in grey levels of [0, 1] (before normalisation); 0 = none.
    pub pixel_noise: f64,
    /// Each test trial's grating phase is its condition's phase plus a uniform draw in
    /// ±`phase_jitter` degrees (180 = a random phase); 0 = none.
    pub phase_jitter: f64,
    /// Each test trial's images are shifted by whole pixels drawn uniformly in
    /// ±`position_jitter` horizontally and vertically (the uncovered border is the
    /// background grey); 0 = none.
    pub position_jitter: u32,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            decision: Decision::Softmax { temperature: 1.0 },
            pixel_noise: 0.0,
            phase_jitter: 0.0,
            position_jitter: 0,
        }
    }
}

impl Observer {
    /// True when test images differ from trial to trial (pixel noise or jitter), so every
    /// trial is rendered and computed on its own.
    pub fn stimulus_noise(&self) -> bool {
        self.pixel_noise > 0.0 || self.phase_jitter > 0.0 || self.position_jitter > 0
    }
}

/// Decision noise ε added to the decision variable.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    /// ε = 0: the probe's argmax (ties answer "first"), the tutorial's observer.
    Deterministic,
    /// ε ~ N(0, σ²).
    Gaussian {
        /// σ in logit units.
        sigma: f64,
    },
    /// ε ~ Logistic(0, T): the answer is sampled from the softmax of the logits divided by
    /// the temperature T (T = 1: the probe's own probabilities).
    Softmax {
        /// Temperature T.
        temperature: f64,
    },
    /// Gaussian or logistic noise whose scale is set after training so that the observer's
    /// expected accuracy on fresh training trials equals `accuracy`.
    Calibrated {
        /// `Gaussian` or `Softmax` noise.
        noise: NoiseKind,
        /// Expected proportion correct on the training task.
        accuracy: f64,
    },
}

/// The distribution of a calibrated decision noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoiseKind {
    /// Normal.
    Gaussian,
    /// Logistic (a softmax at a temperature).
    Logistic,
}

/// The psychometric function fitted to each frequency's trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// The sigmoid, or `None` for no fit (`fit none`).
    pub function: Option<Sigmoid>,
    /// Bounds of the lapse rate λ (the upper asymptote is 1 − λ).
    pub lapse: (f64, f64),
    /// The likelihood of the counts.
    pub likelihood: Likelihood,
    /// Maximum likelihood or maximum a posteriori (psignifit's priors).
    pub estimate: Estimation,
    /// Parametric-bootstrap samples for confidence intervals (0 = none).
    pub bootstrap: u32,
    /// Confidence level of the intervals.
    pub ci: f64,
    /// The proportion correct at which the threshold is read off the fitted function.
    pub level: f64,
    /// Which threshold `csf.csv` reports: the fit's or the procedure's own estimate.
    pub threshold: ThresholdFrom,
}

impl Default for Fit {
    fn default() -> Self {
        Fit {
            function: Some(Sigmoid::Weibull),
            lapse: (0.0, 0.05),
            likelihood: Likelihood::Binomial,
            estimate: Estimation::Ml,
            bootstrap: 1000,
            ci: 0.95,
            level: 0.75,
            threshold: ThresholdFrom::Fit,
        }
    }
}

/// A psychometric function's sigmoid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sigmoid {
    /// Weibull in contrast (a Gumbel in log contrast), Quick's classic for detection.
    Weibull,
    /// Logistic in contrast.
    Logistic,
    /// Cumulative Gaussian in contrast.
    Gaussian,
    /// Gumbel in contrast.
    Gumbel,
}

/// Likelihood of the counts at each level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Likelihood {
    /// Binomial.
    Binomial,
    /// Beta-binomial (overdispersion, psignifit's η).
    BetaBinomial,
}

/// Point estimate of a fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Estimation {
    /// Maximum likelihood (bounded).
    Ml,
    /// Maximum a posteriori with psignifit's standard priors.
    Map,
}

/// Where the reported threshold comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThresholdFrom {
    /// The fitted psychometric function at the fit's `level`.
    Fit,
    /// The procedure's own estimate (bisection: the last contrast; up/down: the mean of the
    /// last reversals; QUEST: the posterior).
    Procedure,
}
