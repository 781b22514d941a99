//! The plan: the fully resolved experiment. This is the contract between the language and
//! the interpreter: every value that changes a result is here, defaults written in, in a
//! fixed order. It is printed by `psyrun plan`, snapshot-tested, and saved with every run.

use super::spans::Spans;
use crate::models::catalog::Arch;
use serde::{Deserialize, Serialize};

/// A resolved experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Quantities computed from the above (shapes, trial counts), for the reader.
    pub derived: Derived,
    /// Where the settings run-time diagnostics point at are written (see
    /// [`Spans`](super::Spans)). Not serialised: empty in a plan read back from RON.
    #[serde(skip)]
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
    /// A torchvision weight set by name, e.g. `IMAGENET1K_V1`.
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

/// Adaptive procedure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Staircase {
    /// The tutorial's bisection: test at `mid`; if accuracy is within `tolerance` of
    /// `target` stop; if above, move toward `low`; else toward `high`. Stops after
    /// `max_steps` updates (so at most `max_steps + 1` evaluations). Threshold = last mid.
    Bisection {
        /// First contrast tested.
        start: f64,
        /// Lower end of the search interval.
        low: f64,
        /// Upper end of the search interval.
        high: f64,
        /// Target proportion correct.
        target: f64,
        /// Stop when |accuracy − target| < tolerance.
        tolerance: f64,
        /// Most updates of the contrast.
        max_steps: u32,
    },
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
    /// Most test evaluations per frequency (`max_steps + 1`).
    pub max_levels_per_frequency: u32,
    /// Training images per epoch (two per trial).
    pub train_images_per_epoch: u64,
}

impl Derived {
    /// Fills the shape-dependent quantities from the cut's output shape and the shape after
    /// pooling (per image).
    pub fn set_shapes(&mut self, cut_shape: Vec<u32>, feature_shape: Vec<u32>) {
        let per_image: u64 = feature_shape.iter().map(|&d| u64::from(d)).product();
        self.cut_shape = Some(cut_shape);
        self.feature_shape = Some(feature_shape);
        self.features_per_image = Some(per_image);
        self.probe_inputs = Some(2 * per_image);
        self.probe_parameters = Some(2 * (2 * per_image) + 2);
    }
}
