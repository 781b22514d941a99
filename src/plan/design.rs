//! The model of an experiment (issue 12): stimuli, a task, a readout, the measured
//! variable (`level`) and the curve's axis. An experiment written with the `stimulus`,
//! `task`, `readout`, `level` and `axis` blocks lowers to a [`Design`] in
//! [`Plan::design`](super::Plan::design); a `psy 1` file written with `train shapes` and
//! `test gratings` has none and runs exactly as before (see `docs/architecture.md`, "The
//! model of an experiment").

use super::types::Normalize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An experiment described by its parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Design {
    /// Image size in pixels (square), shared by every stimulus.
    pub size: u32,
    /// The background grey level in [0, 1] every stimulus modulates about.
    pub background: f64,
    /// Input normalisation applied to every image the network sees.
    pub normalize: Normalize,
    /// The named stimuli, in the order written.
    pub stimuli: Vec<StimulusSpec>,
    /// The test task: how trials are made from the stimuli and what the right answer is.
    pub task: Task,
    /// The variable the procedure moves.
    pub level: Level,
    /// The condition swept to draw the curve (one procedure per value).
    pub axis: Axis,
    /// How features become an answer.
    pub readout: Readout,
    /// How the probe is trained (`None` for training-free readouts).
    pub train: Option<DesignTrain>,
}

/// A named, parameterised stimulus: `stimulus NAME KIND { … }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StimulusSpec {
    /// Its name, used by tasks.
    pub name: String,
    /// Which generator.
    pub kind: StimulusKind,
    /// Every parameter of the kind, defaults written in (`like OTHER` copied in), by name.
    pub params: BTreeMap<String, Param>,
}

/// The generators of `src/stimuli` a stimulus can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StimulusKind {
    /// A sine or square grating, with an optional window.
    Grating,
    /// A Gabor patch.
    Gabor,
    /// The sum of two gratings (a plaid), or of a grating and a mask.
    Plaid,
    /// Seeded noise (white, 1/f, band-pass) at an RMS contrast.
    Noise,
    /// A Vernier line pair, with optional flankers.
    Vernier,
    /// A uniform disc or square (contrast 0: a blank field).
    Patch,
    /// Images from a folder (PNG, JPEG), resized, cropped, optionally grey.
    Images,
}

impl StimulusKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [StimulusKind; 7] = [
        StimulusKind::Grating,
        StimulusKind::Gabor,
        StimulusKind::Plaid,
        StimulusKind::Noise,
        StimulusKind::Vernier,
        StimulusKind::Patch,
        StimulusKind::Images,
    ];

    /// The keyword written in `.psy` files.
    pub fn name(self) -> &'static str {
        match self {
            StimulusKind::Grating => "grating",
            StimulusKind::Gabor => "gabor",
            StimulusKind::Plaid => "plaid",
            StimulusKind::Noise => "noise",
            StimulusKind::Vernier => "vernier",
            StimulusKind::Patch => "patch",
            StimulusKind::Images => "images",
        }
    }
}

/// A stimulus parameter's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Param {
    /// A number (angles in degrees), or an expression of `level` and `axis`.
    Value(Expr),
    /// A word from the parameter's vocabulary (`square`, `sine`, `lines`, …).
    Word(String),
    /// A path, as written (relative to the experiment's folder).
    Path(String),
    /// A list: a dimension of the test's conditions, counterbalanced like orientations.
    /// Stimuli of one trial that list the same parameter share the dimension (and must
    /// list the same values).
    List(Vec<f64>),
    /// A fresh uniform draw on [lo, hi) per trial, shared by the trial's stimuli.
    Uniform {
        /// Lower end.
        lo: f64,
        /// Upper end.
        hi: f64,
    },
    /// A fresh log-uniform draw on [lo, hi) per trial (lo > 0), shared by the trial's
    /// stimuli.
    LogUniform {
        /// Lower end.
        lo: f64,
        /// Upper end.
        hi: f64,
    },
}

/// An arithmetic expression of the measured variable and the axis value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// A constant (angles in degrees).
    Num(f64),
    /// The level the procedure asks for.
    Level,
    /// The value of the curve's axis at this condition.
    Axis,
    /// `a + b`
    Add(Box<Expr>, Box<Expr>),
    /// `a - b`
    Sub(Box<Expr>, Box<Expr>),
    /// `a * b`
    Mul(Box<Expr>, Box<Expr>),
    /// `a / b`
    Div(Box<Expr>, Box<Expr>),
    /// `-a`
    Neg(Box<Expr>),
}

impl Expr {
    /// The value at `level` and `axis`.
    pub fn eval(&self, level: f64, axis: f64) -> f64 {
        match self {
            Expr::Num(x) => *x,
            Expr::Level => level,
            Expr::Axis => axis,
            Expr::Add(a, b) => a.eval(level, axis) + b.eval(level, axis),
            Expr::Sub(a, b) => a.eval(level, axis) - b.eval(level, axis),
            Expr::Mul(a, b) => a.eval(level, axis) * b.eval(level, axis),
            Expr::Div(a, b) => a.eval(level, axis) / b.eval(level, axis),
            Expr::Neg(a) => -a.eval(level, axis),
        }
    }

    /// True when it depends on the level.
    pub fn uses_level(&self) -> bool {
        match self {
            Expr::Num(_) | Expr::Axis => false,
            Expr::Level => true,
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Mul(a, b) | Expr::Div(a, b) => {
                a.uses_level() || b.uses_level()
            }
            Expr::Neg(a) => a.uses_level(),
        }
    }

    /// True when it depends on the axis value.
    pub fn uses_axis(&self) -> bool {
        match self {
            Expr::Num(_) | Expr::Level => false,
            Expr::Axis => true,
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Mul(a, b) | Expr::Div(a, b) => {
                a.uses_axis() || b.uses_axis()
            }
            Expr::Neg(a) => a.uses_axis(),
        }
    }
}

/// How trials are made from stimuli, and the right answer.
///
/// Every task names two stimuli, `stimuli [reference, target]`: the target carries the
/// level (it differs from the reference by it). Conditions (which interval holds the
/// target, or which trial type is shown) are counterbalanced: each condition appears
/// equally often at every level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The kind of task.
    pub kind: TaskKind,
    /// The reference stimulus (the comparison, the distractors, the blank).
    pub reference: String,
    /// The target stimulus.
    pub target: String,
    /// What the observer reports in a forced choice (2AFC and N-AFC).
    pub answer: Answer,
    /// Intervals shown per trial (2 for 2AFC and same/different, N for N-AFC and oddity, 1
    /// for yes/no).
    pub intervals: u32,
    /// Which intervals the target may occupy (forced choices): all of them, counterbalanced
    /// (the default), or one fixed interval (0-based; the tutorial's `second` is 1).
    pub position: Position,
}

/// The kinds of task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// Two intervals, one holds the target: which one? Guess rate 1/2.
    TwoAfc,
    /// N intervals, one holds the target, the others the reference: which one? Guess 1/N.
    Nafc,
    /// N intervals, one is the odd one out: which one? Guess 1/N. (The same trials as
    /// N-AFC; the observer is not told what the target looks like.)
    Oddity,
    /// Two intervals, the same stimulus twice or the two stimuli: same or different?
    /// Conditions (reference, reference), (target, target), (reference, target), (target,
    /// reference), equally often. Guess rate 1/2.
    SameDifferent,
    /// One interval, the target or the reference equally often: present or absent? Scored as
    /// proportion correct over both; guess rate 1/2.
    YesNo,
}

impl TaskKind {
    /// The keyword written in `.psy` files.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::TwoAfc => "2afc",
            TaskKind::Nafc => "nafc",
            TaskKind::Oddity => "oddity",
            TaskKind::SameDifferent => "same_different",
            TaskKind::YesNo => "yes_no",
        }
    }
}

impl Task {
    /// The number of possible answers: N for N-AFC and oddity, 2 otherwise.
    pub fn choices(&self) -> u32 {
        match self.kind {
            TaskKind::TwoAfc | TaskKind::Nafc | TaskKind::Oddity => self.intervals,
            TaskKind::SameDifferent | TaskKind::YesNo => 2,
        }
    }

    /// Feature vectors a linear probe reads per trial: the intervals' side by side, except
    /// for same/different, where it reads one, `|f₁ − f₂|` element by element. (A linear
    /// function of `[f₁, f₂]` cannot tell same from different: with two stimuli A and B,
    /// "same" is AA or BB and "different" AB or BA, and the sums of the two pairs' scores are
    /// equal, an XOR.)
    pub fn probe_intervals(&self) -> u32 {
        match self.kind {
            TaskKind::SameDifferent => 1,
            _ => self.intervals,
        }
    }

    /// The proportion correct of an observer that guesses: the psychometric function's
    /// lower asymptote.
    pub fn guess_rate(&self) -> f64 {
        1.0 / f64::from(self.choices().max(1))
    }
}

/// What is reported in a forced choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The interval that differs from the reference (the target).
    Differs,
    /// The interval whose level is higher: the target's when the level is positive, a
    /// reference's when it is negative (e.g. "which is more clockwise" with signed offsets).
    Higher,
}

/// Which intervals the target occupies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Position {
    /// Every interval equally often.
    All,
    /// Always this interval (0-based).
    Fixed(u32),
}

/// The measured variable: what the procedure moves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Its name, for tables and plots (`contrast`, `orientation_offset`).
    pub name: String,
    /// Its unit as written in tables (`deg`, `px`, `` for a plain number).
    pub unit: String,
}

/// The condition swept to draw the curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// Its name, for tables and plots (`frequency`, `pedestal`, `spacing`).
    pub name: String,
    /// Its unit as written in tables (`cpi`, `deg`, `px`, ``).
    pub unit: String,
    /// The values, one procedure each, in the order written.
    pub values: Vec<f64>,
}

/// How features become an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Readout {
    /// The linear probe of the `probe` block, trained on [`Design::train`].
    Probe,
    /// A training-free distance between feature vectors: in a forced choice the interval
    /// farthest from the reference's features is chosen (oddity: the one farthest from
    /// the others); in same/different and yes/no the distance is compared with a
    /// criterion calibrated on level-0 trials.
    Distance(Metric),
}

/// A distance between feature vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// 1 − cosine similarity.
    Cosine,
    /// Sum of absolute differences.
    L1,
    /// Euclidean distance.
    L2,
    /// Negative dot product (more similar = smaller).
    Dot,
}

impl Metric {
    /// The keyword written in `.psy` files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L1 => "l1",
            Metric::L2 => "l2",
            Metric::Dot => "dot",
        }
    }
}

/// How the probe is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesignTrain {
    /// Trials per epoch, drawn afresh every epoch.
    pub samples: u32,
    /// The level of each training trial.
    pub level: Draw,
    /// The training task (its stimuli may differ from the test's, e.g. natural images);
    /// `None`: the test task.
    pub task: Option<Task>,
}

/// A distribution of training levels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Draw {
    /// Uniform on [lo, hi).
    Uniform {
        /// Lower end.
        lo: f64,
        /// Upper end.
        hi: f64,
    },
    /// Log-uniform on [lo, hi), lo > 0: as many trials per decade, so that training reaches
    /// threshold levels.
    LogUniform {
        /// Lower end.
        lo: f64,
        /// Upper end.
        hi: f64,
    },
}

impl Design {
    /// The stimulus named `name`.
    pub fn stimulus(&self, name: &str) -> Option<&StimulusSpec> {
        self.stimuli.iter().find(|s| s.name == name)
    }

    /// The task the probe trains on.
    pub fn train_task(&self) -> &Task {
        self.train
            .as_ref()
            .and_then(|t| t.task.as_ref())
            .unwrap_or(&self.task)
    }
}

impl Design {
    /// The `train` section of a plan with this design: what the shared machinery reads
    /// (image size, samples per epoch, background, normalisation); no shapes.
    pub fn legacy_train(&self) -> super::types::Train {
        super::types::Train {
            size: self.size,
            samples: self.train.as_ref().map_or(0, |t| t.samples),
            shapes: Vec::new(),
            background: self.background,
            pivot: self.background,
            contrast: super::types::Uniform { lo: 0.0, hi: 1.0 },
            normalize: self.normalize.clone(),
        }
    }

    /// The `test` section of a plan with this design: the image size, the axis values in
    /// place of frequencies (one procedure each), one condition, the normalisation.
    pub fn legacy_test(&self) -> super::types::Test {
        super::types::Test {
            size: self.size,
            frequencies: self.axis.values.clone(),
            orientations: vec![0.0],
            phases: vec![0.0],
            envelope: super::types::Envelope::Off,
            reference: 0.0,
            target_interval: super::types::TargetInterval::Both,
            normalize: self.normalize.clone(),
        }
    }
}

/// The serialised form of a [`Plan`](super::Plan): the same fields in the same order, with
/// `train` and `test` left out when the plan has a design (they are derived from it on
/// reading) and `design` left out when it has none (so `psy 1` plans read as before).
pub(super) mod repr {
    use super::super::types::*;
    use super::Design;
    use serde::{Deserialize, Serialize};

    /// Named `Plan` in RON (`struct_names`), as the plan type it stands for.
    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Plan")]
    pub struct PlanRepr {
        psy: u32,
        experiment: String,
        seed: u64,
        device: Device,
        precision: Precision,
        backbone: Backbone,
        probe: Probe,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "inner",
            deserialize_with = "some"
        )]
        train: Option<Train>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "inner",
            deserialize_with = "some"
        )]
        test: Option<Test>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "inner",
            deserialize_with = "some"
        )]
        design: Option<Design>,
        staircase: Staircase,
        #[serde(default)]
        observer: Observer,
        #[serde(default)]
        fit: Fit,
        #[serde(default = "one")]
        repeats: u32,
        derived: Derived,
    }

    fn one() -> u32 {
        1
    }

    /// A present optional section written as the section itself (`train: Train(…)`, not
    /// `train: Some(Train(…))`), as plans were written before the design existed.
    fn inner<S: serde::Serializer, T: Serialize>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => x.serialize(s),
            None => s.serialize_none(),
        }
    }

    /// Reads what [`inner`] writes.
    fn some<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }

    impl From<Plan> for PlanRepr {
        fn from(p: Plan) -> Self {
            let legacy = p.design.is_none();
            PlanRepr {
                psy: p.psy,
                experiment: p.experiment,
                seed: p.seed,
                device: p.device,
                precision: p.precision,
                backbone: p.backbone,
                probe: p.probe,
                train: legacy.then_some(p.train),
                test: legacy.then_some(p.test),
                design: p.design,
                staircase: p.staircase,
                observer: p.observer,
                fit: p.fit,
                repeats: p.repeats,
                derived: p.derived,
            }
        }
    }

    impl TryFrom<PlanRepr> for Plan {
        type Error = String;

        /// A plan has both sections, or a design they are derived from.
        fn try_from(r: PlanRepr) -> Result<Self, String> {
            let train = r
                .train
                .or_else(|| r.design.as_ref().map(Design::legacy_train))
                .ok_or("a plan needs a `train` section or a `design`")?;
            let test = r
                .test
                .or_else(|| r.design.as_ref().map(Design::legacy_test))
                .ok_or("a plan needs a `test` section or a `design`")?;
            Ok(Plan {
                psy: r.psy,
                experiment: r.experiment,
                seed: r.seed,
                device: r.device,
                precision: r.precision,
                backbone: r.backbone,
                probe: r.probe,
                train,
                test,
                staircase: r.staircase,
                observer: r.observer,
                fit: r.fit,
                repeats: r.repeats,
                design: r.design,
                derived: r.derived,
                spans: Default::default(),
            })
        }
    }
}

/// The type of a stimulus parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// A number (an expression of `level` and `axis` allowed), a list or a random draw.
    Number,
    /// An angle, written with a unit (`45deg`, `0.5rad`) and kept in degrees; a plain number
    /// is refused (expressions, lists and random draws allowed, as for numbers).
    Angle,
    /// One word of the list.
    Word(&'static [&'static str]),
    /// `true` or `false`.
    Flag,
    /// A path in a string, relative to the experiment's folder.
    Path,
}

/// A parameter's default, written into the plan when the file leaves it out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamDefault {
    /// This number (degrees for angles).
    Num(f64),
    /// `size / k` pixels (k > 0).
    SizeOver(f64),
    /// This word (or `true` / `false` for flags).
    Word(&'static str),
    /// No default: the file must give it.
    Required,
}

/// One parameter of a stimulus kind: the table lowering checks files against, the docs
/// list and the renderer maps onto the generators' parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    /// The name written in `.psy` files.
    pub name: &'static str,
    /// Its type.
    pub ty: ParamType,
    /// Its default.
    pub default: ParamDefault,
    /// Its unit as written in tables (`cpi`, `deg`, `px`, `` for none).
    pub unit: &'static str,
    /// One line for the docs and for help messages.
    pub doc: &'static str,
}

const fn p(
    name: &'static str,
    ty: ParamType,
    default: ParamDefault,
    unit: &'static str,
    doc: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        ty,
        default,
        unit,
        doc,
    }
}

use ParamDefault::{Num, Required, SizeOver, Word as W};
use ParamType::{Angle, Flag, Number, Path, Word};

const WAVEFORMS: &[&str] = &["sine", "square"];
const WINDOWS: &[&str] = &["none", "gaussian", "circle"];
const GABOR_PHASES: &[&str] = &["cosine", "sine"];
const ENVELOPES: &[&str] = &["sigma", "cycles"];
const NOISE_SOURCES: &[&str] = &["gaussian", "uniform"];
const SPECTRA: &[&str] = &["white", "power", "band"];
const POLARITIES: &[&str] = &["bright", "dark"];
const FLANKERS: &[&str] = &["none", "lines", "surround"];
const ORIENTATIONS: &[&str] = &["vertical", "horizontal"];
const SHAPES: &[&str] = &["disc", "square"];
const COLOURS: &[&str] = &["rgb", "grey"];
const RESAMPLES: &[&str] = &["area", "bilinear"];

const GRATING: &[ParamSpec] = &[
    p(
        "frequency",
        Number,
        Num(8.0),
        "cpi",
        "spatial frequency, cycles per image",
    ),
    p("orientation", Angle, Num(0.0), "deg", "0° = vertical bars"),
    p("phase", Angle, Num(0.0), "deg", "0° = a peak at the centre"),
    p(
        "contrast",
        Number,
        Num(0.5),
        "",
        "Michelson contrast about the background, 0–1",
    ),
    p("waveform", Word(WAVEFORMS), W("sine"), "", "sine or square"),
    p(
        "window",
        Word(WINDOWS),
        W("none"),
        "",
        "the aperture: none, a Gaussian or a disc",
    ),
    p(
        "sigma",
        Number,
        SizeOver(6.0),
        "px",
        "the Gaussian window's standard deviation",
    ),
    p(
        "radius",
        Number,
        SizeOver(4.0),
        "px",
        "the disc window's radius",
    ),
    p(
        "edge",
        Number,
        Num(0.0),
        "px",
        "the disc window's raised-cosine edge (0: hard)",
    ),
];

const GABOR: &[ParamSpec] = &[
    p(
        "frequency",
        Number,
        Num(8.0),
        "cpi",
        "carrier frequency, cycles per image",
    ),
    p("orientation", Angle, Num(0.0), "deg", "0° = vertical bars"),
    p(
        "phase",
        Word(GABOR_PHASES),
        W("cosine"),
        "",
        "even (cosine) or odd (sine) carrier",
    ),
    p(
        "contrast",
        Number,
        Num(0.5),
        "",
        "carrier amplitude at the envelope's peak, 0–1",
    ),
    p(
        "envelope",
        Word(ENVELOPES),
        W("sigma"),
        "",
        "fixed size (sigma) or fixed cycles",
    ),
    p(
        "sigma",
        Number,
        SizeOver(8.0),
        "px",
        "the envelope's standard deviation (envelope sigma)",
    ),
    p(
        "cycles",
        Number,
        Num(1.0),
        "",
        "σ in wavelengths (envelope cycles)",
    ),
    p(
        "dc_free",
        Flag,
        W("false"),
        "",
        "subtract the carrier's envelope-weighted mean",
    ),
];

const PLAID: &[ParamSpec] = &[
    p(
        "frequency",
        Number,
        Num(8.0),
        "cpi",
        "the first grating's frequency",
    ),
    p(
        "orientation",
        Angle,
        Num(45.0),
        "deg",
        "the first grating's orientation",
    ),
    p("phase", Angle, Num(0.0), "deg", "the first grating's phase"),
    p(
        "contrast",
        Number,
        Num(0.25),
        "",
        "the first grating's contrast",
    ),
    p(
        "frequency2",
        Number,
        Num(8.0),
        "cpi",
        "the second grating's frequency",
    ),
    p(
        "orientation2",
        Angle,
        Num(-45.0),
        "deg",
        "the second grating's orientation",
    ),
    p(
        "phase2",
        Angle,
        Num(0.0),
        "deg",
        "the second grating's phase",
    ),
    p(
        "contrast2",
        Number,
        Num(0.25),
        "",
        "the second grating's contrast",
    ),
    p(
        "window",
        Word(WINDOWS),
        W("none"),
        "",
        "the aperture of both",
    ),
    p(
        "sigma",
        Number,
        SizeOver(6.0),
        "px",
        "the Gaussian window's standard deviation",
    ),
    p(
        "radius",
        Number,
        SizeOver(4.0),
        "px",
        "the disc window's radius",
    ),
    p("edge", Number, Num(0.0), "px", "the disc window's edge"),
];

const NOISE: &[ParamSpec] = &[
    p(
        "contrast",
        Number,
        Num(0.1),
        "",
        "RMS contrast (SD of luminance over the background)",
    ),
    p(
        "source",
        Word(NOISE_SOURCES),
        W("gaussian"),
        "",
        "the white noise's distribution",
    ),
    p(
        "spectrum",
        Word(SPECTRA),
        W("white"),
        "",
        "white, 1/f^alpha (power) or a band",
    ),
    p(
        "alpha",
        Number,
        Num(1.0),
        "",
        "the power spectrum's exponent (spectrum power)",
    ),
    p(
        "centre",
        Number,
        Num(8.0),
        "cpi",
        "the band's centre frequency (spectrum band)",
    ),
    p(
        "octaves",
        Number,
        Num(1.0),
        "",
        "the band's full width in octaves (spectrum band)",
    ),
];

const VERNIER: &[ParamSpec] = &[
    p(
        "offset",
        Number,
        Num(0.0),
        "px",
        "the lower segment's offset to the right (signed)",
    ),
    p("width", Number, Num(2.0), "px", "bar width"),
    p(
        "length",
        Number,
        SizeOver(8.0),
        "px",
        "each segment's length",
    ),
    p(
        "gap",
        Number,
        Num(4.0),
        "px",
        "vertical gap between the segments",
    ),
    p(
        "contrast",
        Number,
        Num(0.5),
        "",
        "Weber contrast of the bars",
    ),
    p(
        "polarity",
        Word(POLARITIES),
        W("bright"),
        "",
        "bright or dark bars",
    ),
    p(
        "flankers",
        Word(FLANKERS),
        W("none"),
        "",
        "none, a line on each side, or a frame",
    ),
    p(
        "spacing",
        Number,
        SizeOver(8.0),
        "px",
        "flanker lines' distance from the pair's axis",
    ),
    p(
        "margin",
        Number,
        Num(4.0),
        "px",
        "gap between the pair and the surrounding frame",
    ),
    p(
        "orientation",
        Word(ORIENTATIONS),
        W("vertical"),
        "",
        "vertical or horizontal segments",
    ),
];

const PATCH: &[ParamSpec] = &[
    p("shape", Word(SHAPES), W("disc"), "", "a disc or a square"),
    p(
        "radius",
        Number,
        SizeOver(4.0),
        "px",
        "the disc's radius, or half the square's side",
    ),
    p(
        "contrast",
        Number,
        Num(0.0),
        "",
        "Weber contrast about the background (0: blank)",
    ),
    p(
        "edge",
        Number,
        Num(0.0),
        "px",
        "raised-cosine edge width (0: hard)",
    ),
    p(
        "x",
        Number,
        Num(0.0),
        "px",
        "centre, right of the image centre",
    ),
    p(
        "y",
        Number,
        Num(0.0),
        "px",
        "centre, below the image centre",
    ),
];

const IMAGES: &[ParamSpec] = &[
    p(
        "folder",
        Path,
        Required,
        "",
        "a folder of PNG and JPEG files",
    ),
    p(
        "contrast",
        Number,
        Num(1.0),
        "",
        "the image's deviation from the background, scaled",
    ),
    p(
        "colour",
        Word(COLOURS),
        W("grey"),
        "",
        "keep RGB or convert to grey (Rec. 601 luma)",
    ),
    p(
        "resample",
        Word(RESAMPLES),
        W("area"),
        "",
        "resampling filter after the centre crop",
    ),
];

impl StimulusKind {
    /// Its parameters, in the order the docs list them.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            StimulusKind::Grating => GRATING,
            StimulusKind::Gabor => GABOR,
            StimulusKind::Plaid => PLAID,
            StimulusKind::Noise => NOISE,
            StimulusKind::Vernier => VERNIER,
            StimulusKind::Patch => PATCH,
            StimulusKind::Images => IMAGES,
        }
    }

    /// The kind named `name` in `.psy` files.
    pub fn from_name(name: &str) -> Option<StimulusKind> {
        StimulusKind::ALL.into_iter().find(|k| k.name() == name)
    }
}
