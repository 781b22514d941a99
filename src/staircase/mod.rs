//! Adaptive procedures that find a threshold contrast. Pure code: a procedure proposes a
//! contrast and a number of trials ([`Request`]), the caller measures how many were
//! correct, and the procedure updates ([`Procedure::record`]). That keeps every procedure
//! testable against synthetic observers without libtorch, and lets the interpreter advance
//! the procedures of every frequency in lockstep (one batch per step).
//!
//! Contrasts are linear in requests and traces; procedures work internally on whatever axis
//! their method defines (log10 contrast for QUEST, dB for QUEST+, the step scale for
//! up/down).

mod bisection;
mod constant;
mod quest;
mod questplus;
mod updown;

pub use bisection::Bisection;
pub use constant::ConstantStimuli;
pub use quest::{Quest, QuestCore};
pub use questplus::{weibull_db, QuestPlus, QuestPlusEngine};
pub use updown::UpDown;

use crate::plan::Staircase;
use serde::{Deserialize, Serialize};

/// What a procedure wants measured next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// Contrast of the target (linear).
    pub contrast: f64,
    /// Trials to run there.
    pub trials: u32,
}

/// One measurement of a procedure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 0-based index of the measurement.
    pub step: u32,
    /// Contrast tested.
    pub contrast: f64,
    /// Trials run there (0 in results written before it was recorded).
    #[serde(default)]
    pub trials: u32,
    /// How many were correct (0 in results written before it was recorded).
    #[serde(default)]
    pub correct: u32,
    /// `correct / trials`.
    pub accuracy: f64,
}

impl Step {
    fn new(step: usize, contrast: f64, trials: u32, correct: u32) -> Self {
        Self {
            step: u32::try_from(step).unwrap_or(u32::MAX),
            contrast,
            trials,
            correct,
            accuracy: f64::from(correct) / f64::from(trials.max(1)),
        }
    }
}

/// Why a procedure stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Accuracy came within the tolerance of the target (bisection, tutorial rule).
    Converged,
    /// The cap on steps or trials was reached first.
    MaxSteps,
    /// The bracket around the target's crossing became narrow enough (bisection).
    Bracket,
    /// The planned number of trials was run.
    Trials,
    /// The planned number of reversals was reached (up/down).
    Reversals,
    /// The posterior interval became narrow enough (QUEST).
    Precision,
    /// Every level was measured (constant stimuli).
    Completed,
    /// Not stopped: the run was interrupted or failed while it was measuring (only in the
    /// files of an incomplete run).
    Unfinished,
}

impl Stop {
    /// The name written into result files.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Converged => "converged",
            Stop::MaxSteps => "max_steps",
            Stop::Bracket => "bracket",
            Stop::Trials => "trials",
            Stop::Reversals => "reversals",
            Stop::Precision => "precision",
            Stop::Completed => "completed",
            Stop::Unfinished => "unfinished",
        }
    }
}

/// Why a threshold is only a bound, or unreliable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Censor {
    /// Performance stayed above the target down to the lowest contrast: the threshold is
    /// at most that contrast.
    BelowRange,
    /// Performance never reached the target up to the highest contrast: the threshold is
    /// above the range (or does not exist).
    AboveRange,
    /// The procedure ran out of steps before its own convergence criterion.
    NotConverged,
}

impl Censor {
    /// The name written into result files.
    pub fn name(self) -> &'static str {
        match self {
            Censor::BelowRange => "below_range",
            Censor::AboveRange => "above_range",
            Censor::NotConverged => "not_converged",
        }
    }
}

/// A procedure's own threshold estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Threshold contrast (linear).
    pub threshold: f64,
    /// Spread of the estimate in the procedure's working units (log10 contrast, except
    /// a `lin` up/down staircase: linear contrast).
    pub sd: Option<f64>,
    /// An interval for the threshold, in linear contrast (QUEST and QUEST+: the central 95 %
    /// of the posterior).
    pub interval: Option<(f64, f64)>,
    /// How it was computed, e.g. `last_contrast`, `mean_last_reversals`, `posterior_mean`.
    pub method: &'static str,
}

/// Any adaptive procedure a plan can describe.
#[derive(Clone, Debug, PartialEq)]
pub enum Procedure {
    /// `staircase bisection`.
    Bisection(Bisection),
    /// `staircase updown`.
    UpDown(UpDown),
    /// `staircase quest`.
    Quest(Quest),
    /// `staircase questplus`.
    QuestPlus(QuestPlus),
    /// `staircase constant`.
    Constant(ConstantStimuli),
}

macro_rules! each {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            Procedure::Bisection($p) => $e,
            Procedure::UpDown($p) => $e,
            Procedure::Quest($p) => $e,
            Procedure::QuestPlus($p) => $e,
            Procedure::Constant($p) => $e,
        }
    };
}

impl Procedure {
    /// The procedure a plan's `staircase` block describes. `trials_per_level` is the
    /// test's number of conditions (orientations × phases × intervals): bisection and
    /// constant stimuli run every condition at each level they test.
    pub fn from_plan(s: &Staircase, trials_per_level: u32) -> Self {
        let n = trials_per_level.max(1);
        match s {
            Staircase::Bisection { .. } => Procedure::Bisection(Bisection::from_settings(s, n)),
            Staircase::UpDown(u) => Procedure::UpDown(UpDown::from_plan(u)),
            Staircase::Quest(q) => Procedure::Quest(Quest::from_plan(q)),
            Staircase::QuestPlus(q) => Procedure::QuestPlus(QuestPlus::from_plan(q)),
            Staircase::Constant(c) => Procedure::Constant(ConstantStimuli::from_plan(c, n)),
        }
    }

    /// What to measure next, `None` when done.
    pub fn next(&self) -> Option<Request> {
        each!(self, p => p.next())
    }

    /// Records the outcome of the last request: `correct` of its `trials`. Ignored when done.
    pub fn record(&mut self, correct: u32) {
        each!(self, p => p.record(correct))
    }

    /// True once stopped.
    pub fn is_done(&self) -> bool {
        self.stop_reason().is_some()
    }

    /// Why it stopped, if it has.
    pub fn stop_reason(&self) -> Option<Stop> {
        each!(self, p => p.stop_reason())
    }

    /// Every measurement so far.
    pub fn trace(&self) -> &[Step] {
        each!(self, p => p.trace())
    }

    /// The procedure's own threshold estimate (`None` before any data, or where the
    /// procedure has none).
    pub fn estimate(&self) -> Option<Estimate> {
        each!(self, p => p.estimate())
    }

    /// Whether the estimate is only a bound or unreliable.
    pub fn censoring(&self) -> Option<Censor> {
        each!(self, p => p.censoring())
    }

    /// The most trials it can run (for progress bars).
    pub fn max_trials(&self) -> u64 {
        each!(self, p => p.max_trials())
    }

    /// The block label that names it.
    pub fn name(&self) -> &'static str {
        match self {
            Procedure::Bisection(_) => "bisection",
            Procedure::UpDown(_) => "updown",
            Procedure::Quest(_) => "quest",
            Procedure::QuestPlus(_) => "questplus",
            Procedure::Constant(_) => "constant",
        }
    }

    /// Runs to the end against an observer `correct(contrast, trials)`.
    pub fn run(mut self, mut correct: impl FnMut(f64, u32) -> u32) -> Self {
        while let Some(r) = self.next() {
            let k = correct(r.contrast, r.trials);
            self.record(k);
        }
        self
    }
}

/// Linear interpolation on tabulated `(xs, ys)` with `xs` ascending; clamps outside, like
/// NumPy's `interp`.
pub(crate) fn interp(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if x <= xs[0] {
        return ys[0];
    }
    if x >= xs[n - 1] {
        return ys[n - 1];
    }
    // The last j with xs[j] <= x.
    let j = xs.partition_point(|&v| v <= x) - 1;
    let (x0, x1, y0, y1) = (xs[j], xs[j + 1], ys[j], ys[j + 1]);
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}

/// Observers and random numbers shared by the procedures' tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A 2AFC Weibull observer on linear contrast with lapse `lambda`.
    pub(crate) fn weibull(alpha: f64, beta: f64, lambda: f64) -> impl Fn(f64) -> f64 {
        move |c: f64| 0.5 + (0.5 - lambda) * (1.0 - (-(c / alpha).powf(beta)).exp())
    }

    /// The contrast where [`weibull`] (without lapse) gives `p`.
    pub(crate) fn weibull_inverse(alpha: f64, beta: f64, p: f64) -> f64 {
        alpha * (-(1.0 - (p - 0.5) / 0.5).ln()).powf(1.0 / beta)
    }

    /// SplitMix64: a small seeded generator for simulated responses.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        pub(crate) fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Correct responses out of `n` with probability `p` each.
        pub(crate) fn binomial(&mut self, n: u32, p: f64) -> u32 {
            (0..n).filter(|_| self.uniform() < p).count() as u32
        }
    }
}
