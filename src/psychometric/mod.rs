//! Psychometric-function fitting: threshold, width, lapse, guess and overdispersion from
//! blocks of binary trials, by maximum likelihood or psignifit-style maximum a posteriori
//! (MAP), with parametric-bootstrap confidence intervals and goodness of fit.
//!
//! # The model
//!
//! The proportion correct at stimulus level x is
//!
//! ψ(x) = γ + (1 − γ − λ)·S(X; m, w),
//!
//! with guess rate γ, lapse rate λ and a sigmoid S from one [`Sigmoid`] family. X is the
//! level itself, or ln x for the log-axis families ([`Sigmoid::Weibull`],
//! [`Sigmoid::LogNorm`]). S is parameterised as in psignifit 4 (Schütt et al. 2016):
//!
//! * the **threshold** m is where the *unscaled* S reaches [`FitOptions::thresh_pc`]
//!   (default ½), so S(m) = `thresh_pc` whatever γ and λ are;
//! * the **width** w is the distance on the X axis over which S rises from α to 1 − α,
//!   α = [`FitOptions::width_alpha`] (default 0.05).
//!
//! Each family is written S(X) = F(F⁻¹(pc) + C·(X − m)/w) for a standard cdf F with
//! C = F⁻¹(1 − α) − F⁻¹(α); this reproduces psignifit's `norm`, `logistic`, `gumbel`,
//! `rgumbel` and `tdist` formulas, and MATLAB psignifit's `Weibull` and `logn` (the Gumbel
//! and the Gaussian on ln x, whose m and w are in ln units; [`Fit::threshold`] converts m
//! back to stimulus units). Palamedes writes the same functions with a location α and a
//! slope β: [`Sigmoid::to_palamedes`] and [`Sigmoid::from_palamedes`] convert
//! (`PAL_CumulativeNormal`, `PAL_Logistic`, `PAL_Gumbel` on log10 levels, `PAL_Weibull`),
//! and [`Palamedes::psi`] evaluates Palamedes' own closed forms. For the Weibull,
//! β = C/w and α = exp(m − F⁻¹(pc)·w/C), with F⁻¹(pc) = ln(−ln(1 − pc)) and
//! C = ln(−ln α) − ln(−ln(1 − α)) ≈ 4.067 at α = 0.05.
//!
//! The guess rate is fixed for nAFC tasks ([`Guess::Fixed`], ½ for 2AFC, the default),
//! free for yes/no tasks ([`Guess::Free`], in [0, ½]) or tied to the lapse rate
//! ([`Guess::EqualToLapse`], psignifit's "equal asymptote"). The lapse rate is free in
//! [0, ½] by default (psignifit's border; its prior keeps it small), or capped or fixed with
//! [`Lapse`].
//!
//! # Likelihood
//!
//! Binomial per block, or, with [`FitOptions::overdispersion`] (the default, as psignifit),
//! beta-binomial with overdispersion η ∈ [0, 1): the block's success probability is drawn
//! from a beta distribution with mean ψ and precision v = 1/η² − 1, so η = 0 is the
//! binomial and the variance of the proportion grows to η²·ψ(1 − ψ) for large blocks.
//! η² < 1e-9 is evaluated as the binomial. [`Fit::log_likelihood`] includes the binomial
//! coefficients, so it is a proper log probability of the counts.
//!
//! # Estimation
//!
//! [`Estimate::Map`] (the default) maximises the posterior under psignifit 4's standard
//! priors, with the stimulus range R = [r₁, r₂] (the tested levels on the X axis, or
//! [`FitOptions::stimulus_range`]) and spread s = r₂ − r₁:
//!
//! * m: flat on R, with raised-cosine tapers to 0 over s/2 on each side;
//! * w: with u = w·C_f (C_f = the ratio of the Gaussian's 0.05–0.95 spread to its
//!   α–(1 − α) spread, 1 at the default α), a cosine ramp from 0 at u = w_min to 1 at
//!   2·w_min, flat up to s, and a cosine taper to 0 at 3s; w_min is the smallest gap between
//!   tested levels on the X axis (or [`FitOptions::width_min`]);
//! * λ and a free γ: Beta(1, 10); η: Beta(1, [`FitOptions::beta_prior`] = 10).
//!
//! The search is confined to psignifit's borders: m ∈ [r₁ − s/2, r₂ + s/2],
//! w·C_f ∈ [w_min, 3s], λ ∈ [0, ½] (or the [`Lapse`] cap), free γ ∈ [0, ½],
//! η ∈ [0, 1 − e⁻²⁰]. psignifit then integrates the posterior on a grid and polishes the
//! best grid point with Nelder–Mead; psyrun needs only the maximum, so it scores a coarse
//! grid (10 thresholds × 10 widths × two lapse rates and, if free, two guess rates; η = 0)
//! and runs Nelder–Mead twice from the best point (a bootstrap refit: a 6 × 6 grid plus the
//! original fit as candidate starts). [`Estimate::MaxLikelihood`] drops the priors and
//! keeps the borders. A fit of 10–30 blocks takes of the order of a millisecond.
//!
//! Against psignifit's published MAP fits (its demo data and 22 of its 23 MATLAB
//! consistency cases: every sigmoid, 2AFC, yes/no and equal asymptote) the thresholds and
//! widths agree within rtol 1e-2 / atol 1e-3, the tolerance python-psignifit itself uses
//! against MATLAB; the largest relative difference is 6e-3 (see the tests). Where they
//! differ, psyrun's point has the higher posterior under the priors above (psignifit's
//! simplex stops on a flat ridge a little short of the maximum).
//!
//! Two defaults differ from psignifit's, because psyrun measures contrast thresholds in
//! 2AFC: the sigmoid is the Weibull (psignifit: `norm`) and the guess rate is fixed at ½
//! (psignifit: yes/no).
//!
//! # Derived quantities and checks
//!
//! [`Fit::threshold_at`] inverts ψ at any proportion correct through
//! (pc − γ)/(1 − γ − λ); [`Fit::threshold_unscaled`] inverts S itself; [`Fit::slope_at`] is
//! dψ/dx in stimulus units. [`Fit::deviance`] is the binomial deviance against the
//! saturated model, and [`bootstrap()`] gives its parametric-bootstrap p-value together with
//! percentile confidence intervals. Degenerate data (no trials, one level, counts above the
//! trials) return a [`FitError`]; legal but uninformative data (all correct, nothing above
//! chance, a threshold outside the tested range, a parameter pinned at a border) fit and
//! carry [`FitWarning`]s.

mod bootstrap;
mod optimize;
mod sigmoid;
pub(crate) mod special;
#[cfg(test)]
mod tests;

pub use bootstrap::{bootstrap, Bootstrap, BootstrapOptions};
pub use sigmoid::{Palamedes, PalamedesForm, Sigmoid};

use serde::{Deserialize, Serialize};
use sigmoid::Core;
use special::{ln_choose, ln_rising, norm_quantile};

/// Trials at one stimulus level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// The stimulus level (e.g. contrast).
    pub level: f64,
    /// Trials run at this level.
    pub trials: u32,
    /// Correct (for yes/no: "yes") responses among them.
    pub correct: u32,
}

impl Block {
    /// The proportion correct, `None` without trials.
    pub fn proportion(&self) -> Option<f64> {
        (self.trials > 0).then(|| f64::from(self.correct) / f64::from(self.trials))
    }

    /// The block of `trials` trials at `level` whose proportion correct was `accuracy` (a
    /// staircase step measured on a batch): the count is `accuracy·trials` rounded, clamped
    /// to [0, trials] (a NaN accuracy counts as 0).
    pub fn from_accuracy(level: f64, accuracy: f64, trials: u32) -> Block {
        let correct = (accuracy * f64::from(trials)).round();
        let correct = if correct.is_nan() {
            0
        } else {
            correct.clamp(0.0, f64::from(trials)) as u32
        };
        Block {
            level,
            trials,
            correct,
        }
    }
}

/// Pools single trials `(level, correct)` (a staircase trace) into one block per distinct
/// level, sorted by level.
pub fn pool_trials(trials: impl IntoIterator<Item = (f64, bool)>) -> Vec<Block> {
    pool_blocks(trials.into_iter().map(|(level, correct)| Block {
        level,
        trials: 1,
        correct: u32::from(correct),
    }))
}

/// Pools blocks with equal levels (sums their trials and correct responses), sorted by
/// level.
pub fn pool_blocks(blocks: impl IntoIterator<Item = Block>) -> Vec<Block> {
    let mut all: Vec<Block> = blocks.into_iter().collect();
    all.sort_by(|a, b| a.level.total_cmp(&b.level));
    let mut out: Vec<Block> = Vec::with_capacity(all.len());
    for b in all {
        match out.last_mut() {
            Some(last) if last.level == b.level => {
                last.trials = last.trials.saturating_add(b.trials);
                last.correct = last.correct.saturating_add(b.correct);
            }
            _ => out.push(b),
        }
    }
    out
}

/// How the guess rate γ (the lower asymptote) is treated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guess {
    /// Fixed, e.g. 1/n for nAFC (0.5 for 2AFC).
    Fixed(f64),
    /// Free in [0, 0.5], for yes/no tasks (Beta(1, 10) prior under MAP).
    Free,
    /// Equal to the lapse rate (psignifit's "equalAsymptote").
    EqualToLapse,
}

/// How the lapse rate λ (1 − the upper asymptote) is treated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lapse {
    /// Fixed at this value.
    Fixed(f64),
    /// Free in [0, max] (Beta(1, 10) prior under MAP). psignifit's border is 0.5; for
    /// maximum likelihood without a prior a cap near 0.06 (Wichmann & Hill 2001) is the
    /// usual choice.
    Free {
        /// The upper border, in [0, 1).
        max: f64,
    },
}

/// The estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimate {
    /// Maximum a posteriori with psignifit 4's standard priors.
    Map,
    /// Maximum likelihood (the same borders, no priors).
    MaxLikelihood,
}

/// What to fit and how. Serialisable, to be stored in a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitOptions {
    /// The sigmoid family; default [`Sigmoid::Weibull`] (the classic choice for contrast
    /// thresholds; psignifit's default is `norm`).
    pub sigmoid: Sigmoid,
    /// The value of the unscaled sigmoid at the threshold m; default 0.5.
    pub thresh_pc: f64,
    /// The width is measured between S = α and S = 1 − α; default α = 0.05.
    pub width_alpha: f64,
    /// The guess rate; default `Fixed(0.5)` (2AFC).
    pub guess: Guess,
    /// The lapse rate; default `Free { max: 0.5 }` (psignifit's border).
    pub lapse: Lapse,
    /// Fit a beta-binomial overdispersion η; default true (as psignifit).
    pub overdispersion: bool,
    /// The estimator; default [`Estimate::Map`].
    pub estimate: Estimate,
    /// The η prior is Beta(1, `beta_prior`); default 10.
    pub beta_prior: f64,
    /// The stimulus range [low, high] in stimulus units behind the priors and borders;
    /// default `None`: the lowest and highest tested levels.
    pub stimulus_range: Option<[f64; 2]>,
    /// The smallest width the width prior allows, on the X axis (ln units for the log-axis
    /// families); default `None`: the smallest gap between tested levels.
    pub width_min: Option<f64>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            sigmoid: Sigmoid::Weibull,
            thresh_pc: 0.5,
            width_alpha: 0.05,
            guess: Guess::Fixed(0.5),
            lapse: Lapse::Free { max: 0.5 },
            overdispersion: true,
            estimate: Estimate::Map,
            beta_prior: 10.0,
            stimulus_range: None,
            width_min: None,
        }
    }
}

/// Why no fit was possible.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FitError {
    /// No block had any trials.
    #[error("no trials to fit")]
    NoTrials,
    /// A block is malformed.
    #[error("block {index} (level {level}): {reason}")]
    InvalidBlock {
        /// 0-based index in the input.
        index: usize,
        /// Its level.
        level: f64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer than two distinct levels have trials: no slope can be estimated.
    #[error("a psychometric function needs at least two distinct levels with trials, found {0}")]
    TooFewLevels(usize),
    /// The options contradict themselves or are out of range.
    #[error("invalid fit options: {0}")]
    InvalidOptions(String),
    /// The optimiser ended on a non-finite value (should not happen; reported, not hidden).
    #[error("the fit did not reach a finite optimum")]
    NonFinite,
}

/// One of the five parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// The threshold m.
    Threshold,
    /// The width w.
    Width,
    /// The lapse rate λ.
    Lapse,
    /// The guess rate γ.
    Guess,
    /// The overdispersion η.
    Eta,
}

/// Something legal but worth knowing about a fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitWarning {
    /// Every trial was correct: the threshold is only bounded by the priors and borders.
    AllCorrect,
    /// No block was above the guess rate (or, for a free guess rate, every response was
    /// wrong): the data carry no threshold.
    NoneAboveChance,
    /// The threshold lies below the lowest tested level (censored: only an upper bound is
    /// measured).
    ThresholdBelowRange,
    /// The threshold lies above the highest tested level.
    ThresholdAboveRange,
    /// A parameter ended on (within 0.1 % of the search range of) a border of the search;
    /// a lapse or guess rate or η at 0 is not reported: that border is natural.
    AtBorder(Param),
}

/// A fitted psychometric function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// The family.
    pub sigmoid: Sigmoid,
    /// The options' `thresh_pc`.
    pub thresh_pc: f64,
    /// The options' `width_alpha`.
    pub width_alpha: f64,
    /// The threshold in stimulus units: the level where S = `thresh_pc` (exp(m) for the
    /// log-axis families).
    pub threshold: f64,
    /// The threshold m on the sigmoid's axis (ln units for the log-axis families; this is
    /// psignifit's `Fit(1)`).
    pub m: f64,
    /// The width w on the sigmoid's axis.
    pub width: f64,
    /// The lapse rate λ.
    pub lapse: f64,
    /// The guess rate γ.
    pub guess: f64,
    /// The overdispersion η (0: binomial).
    pub eta: f64,
    /// ln P(data | parameters), binomial coefficients included.
    pub log_likelihood: f64,
    /// The maximised objective: the log likelihood plus the log priors under MAP (the priors
    /// up to their normalising constants), the log likelihood under ML.
    pub log_objective: f64,
    /// Binomial deviance against the saturated model.
    pub deviance: f64,
    /// The lowest and highest tested levels.
    pub tested_range: [f64; 2],
    /// Trials in all.
    pub trials: u32,
    /// Blocks with trials (after pooling equal levels).
    pub blocks: usize,
    /// Objective evaluations the search took.
    pub evaluations: u32,
    /// What to know about this fit.
    pub warnings: Vec<FitWarning>,
}

impl Fit {
    fn core(&self) -> Core {
        Core::new(self.sigmoid, self.thresh_pc, self.width_alpha)
    }

    fn scale(&self) -> f64 {
        1.0 - self.guess - self.lapse
    }

    /// ψ(x): the fitted proportion correct at level x.
    pub fn psi(&self, x: f64) -> f64 {
        self.guess + self.scale() * self.unscaled(x)
    }

    /// S(x): the unscaled sigmoid at level x.
    pub fn unscaled(&self, x: f64) -> f64 {
        let core = self.core();
        core.eval_axis(core.axis(x), self.m, self.width).0
    }

    /// The level where ψ = pc; `None` unless γ < pc < 1 − λ.
    pub fn threshold_at(&self, pc: f64) -> Option<f64> {
        let scale = self.scale();
        if scale <= 0.0 {
            return None;
        }
        self.threshold_unscaled((pc - self.guess) / scale)
    }

    /// The level where S = p; `None` unless 0 < p < 1.
    pub fn threshold_unscaled(&self, p: f64) -> Option<f64> {
        if !(p > 0.0 && p < 1.0) {
            return None;
        }
        let core = self.core();
        let x = core.level(core.inverse_axis(p, self.m, self.width));
        x.is_finite().then_some(x)
    }

    /// dψ/dx at level x, in stimulus units.
    pub fn slope_at(&self, x: f64) -> f64 {
        let core = self.core();
        let d = self.scale() * core.density_axis(core.axis(x), self.m, self.width);
        if self.sigmoid.log_axis() {
            d / x
        } else {
            d
        }
    }

    /// dψ/dx at the level where ψ = pc.
    pub fn slope_at_threshold(&self, pc: f64) -> Option<f64> {
        self.threshold_at(pc).map(|x| self.slope_at(x))
    }

    /// The fitted sigmoid in Palamedes' α/β form, where Palamedes has the family.
    pub fn palamedes(&self) -> Option<Palamedes> {
        self.sigmoid
            .to_palamedes(self.m, self.width, self.thresh_pc, self.width_alpha)
    }

    /// Whether the threshold lies outside the tested range (see the warnings).
    pub fn censored(&self) -> bool {
        self.warnings.iter().any(|w| {
            matches!(
                w,
                FitWarning::ThresholdBelowRange | FitWarning::ThresholdAboveRange
            )
        })
    }
}

const M: usize = 0;
const W: usize = 1;
const L: usize = 2;
const G: usize = 3;
const E: usize = 4;

/// A fit problem: the data on the sigmoid's axis, the borders, the priors.
pub(crate) struct Problem {
    core: Core,
    x: Vec<f64>,
    n: Vec<u32>,
    k: Vec<u32>,
    ln_c: Vec<f64>,
    lo: [f64; 5],
    hi: [f64; 5],
    /// Fixed values (used for parameters that are not free).
    fixed: [f64; 5],
    free: Vec<usize>,
    equal_asymptote: bool,
    map: bool,
    range: [f64; 2],
    spread: f64,
    width_min: f64,
    cfactor: f64,
    beta_prior: f64,
    tested: [f64; 2],
    trials: u32,
}

fn check_options(o: &FitOptions) -> Result<(), FitError> {
    let bad = |s: String| Err(FitError::InvalidOptions(s));
    if !(o.thresh_pc > 0.0 && o.thresh_pc < 1.0) {
        return bad(format!("thresh_pc must lie in (0, 1), not {}", o.thresh_pc));
    }
    if !(o.width_alpha > 0.0 && o.width_alpha < 0.5) {
        return bad(format!(
            "width_alpha must lie in (0, 0.5), not {}",
            o.width_alpha
        ));
    }
    let guess = match o.guess {
        Guess::Fixed(g) if !(0.0..1.0).contains(&g) => {
            return bad(format!("a fixed guess rate must lie in [0, 1), not {g}"))
        }
        Guess::Fixed(g) => g,
        _ => 0.0,
    };
    let lapse = match o.lapse {
        Lapse::Fixed(l) | Lapse::Free { max: l } if !(0.0..1.0).contains(&l) => {
            return bad(format!(
                "the lapse rate (or its cap) must lie in [0, 1), not {l}"
            ))
        }
        Lapse::Fixed(l) => l,
        Lapse::Free { .. } => 0.0,
    };
    if guess + lapse >= 1.0 {
        return bad(format!(
            "guess {guess} + lapse {lapse} leave no room for the sigmoid"
        ));
    }
    if o.guess == Guess::EqualToLapse && matches!(o.lapse, Lapse::Fixed(l) if l >= 0.5) {
        return bad("an equal-asymptote fit needs a lapse rate below 0.5".into());
    }
    if !(o.beta_prior >= 1.0 && o.beta_prior.is_finite()) {
        return bad(format!("beta_prior must be ≥ 1, not {}", o.beta_prior));
    }
    if let Some([a, b]) = o.stimulus_range {
        if !(a.is_finite() && b.is_finite() && a < b) {
            return bad(format!(
                "stimulus_range [{a}, {b}] must be finite and increasing"
            ));
        }
        if o.sigmoid.log_axis() && a <= 0.0 {
            return bad(format!(
                "the {:?} sigmoid needs a positive stimulus_range",
                o.sigmoid
            ));
        }
    }
    if let Some(w) = o.width_min {
        if !(w > 0.0 && w.is_finite()) {
            return bad(format!("width_min must be positive, not {w}"));
        }
    }
    Ok(())
}

impl Problem {
    pub(crate) fn new(blocks: &[Block], o: &FitOptions) -> Result<Self, FitError> {
        check_options(o)?;
        for (index, b) in blocks.iter().enumerate() {
            let err = |reason| {
                Err(FitError::InvalidBlock {
                    index,
                    level: b.level,
                    reason,
                })
            };
            if !b.level.is_finite() {
                return err("the level is not finite");
            }
            if b.correct > b.trials {
                return err("more correct responses than trials");
            }
            if o.sigmoid.log_axis() && b.level <= 0.0 && b.trials > 0 {
                return err("the Weibull and log-normal sigmoids need positive levels");
            }
        }
        let pooled = pool_blocks(blocks.iter().copied().filter(|b| b.trials > 0));
        if pooled.is_empty() {
            return Err(FitError::NoTrials);
        }
        if pooled.len() < 2 {
            return Err(FitError::TooFewLevels(pooled.len()));
        }
        let core = Core::new(o.sigmoid, o.thresh_pc, o.width_alpha);
        let x: Vec<f64> = pooled.iter().map(|b| core.axis(b.level)).collect();
        let n: Vec<u32> = pooled.iter().map(|b| b.trials).collect();
        let k: Vec<u32> = pooled.iter().map(|b| b.correct).collect();
        let ln_c = pooled
            .iter()
            .map(|b| ln_choose(b.trials, b.correct))
            .collect();
        let range = match o.stimulus_range {
            Some([a, b]) => [core.axis(a), core.axis(b)],
            None => [x[0], x[x.len() - 1]],
        };
        let spread = range[1] - range[0];
        let width_min = o.width_min.unwrap_or_else(|| {
            x.windows(2)
                .map(|p| p[1] - p[0])
                .fold(f64::INFINITY, f64::min)
        });
        if !(width_min > 0.0 && width_min < 3.0 * spread) {
            return Err(FitError::InvalidOptions(format!(
                "width_min {width_min} must lie below three times the stimulus spread {spread}"
            )));
        }
        let a = o.width_alpha;
        let cfactor = (norm_quantile(0.95) - norm_quantile(0.05))
            / (norm_quantile(1.0 - a) - norm_quantile(a));
        let mut lo = [0.0; 5];
        let mut hi = [0.0; 5];
        let mut fixed = [0.0; 5];
        let mut free = vec![M, W];
        lo[M] = range[0] - spread / 2.0;
        hi[M] = range[1] + spread / 2.0;
        lo[W] = width_min / cfactor;
        hi[W] = 3.0 * spread / cfactor;
        match o.lapse {
            Lapse::Fixed(l) => fixed[L] = l,
            Lapse::Free { max } => {
                hi[L] = max;
                if max > 0.0 {
                    free.push(L);
                }
            }
        }
        let equal_asymptote = o.guess == Guess::EqualToLapse;
        match o.guess {
            Guess::Fixed(g) => fixed[G] = g,
            Guess::Free => {
                hi[G] = 0.5;
                free.push(G);
            }
            Guess::EqualToLapse => {
                // λ then bounds both asymptotes: keep γ + λ < 1.
                hi[L] = hi[L].min(0.5 - 1e-9);
            }
        }
        if o.overdispersion {
            hi[E] = 1.0 - (-20.0f64).exp();
            free.push(E);
        }
        Ok(Problem {
            core,
            tested: [pooled[0].level, pooled[pooled.len() - 1].level],
            trials: n.iter().fold(0u32, |a, &b| a.saturating_add(b)),
            x,
            n,
            k,
            ln_c,
            lo,
            hi,
            fixed,
            free,
            equal_asymptote,
            map: o.estimate == Estimate::Map,
            range,
            spread,
            width_min,
            cfactor,
            beta_prior: o.beta_prior,
        })
    }

    /// The full parameter vector [m, w, λ, γ, η] of unit-box coordinates `u` of the free
    /// parameters.
    fn full(&self, u: &[f64]) -> [f64; 5] {
        let mut p = self.fixed;
        for (&i, &v) in self.free.iter().zip(u) {
            p[i] = self.lo[i] + v * (self.hi[i] - self.lo[i]);
        }
        if self.equal_asymptote {
            p[G] = p[L];
        }
        p
    }

    fn unit(&self, p: &[f64; 5]) -> Vec<f64> {
        self.free
            .iter()
            .map(|&i| {
                let span = self.hi[i] - self.lo[i];
                if span > 0.0 {
                    ((p[i] - self.lo[i]) / span).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// ψ and 1 − ψ per block.
    #[inline]
    fn psi_pair(&self, x: f64, p: &[f64; 5]) -> (f64, f64) {
        let (s, sc) = self.core.eval_axis(x, p[M], p[W]);
        let scale = 1.0 - p[G] - p[L];
        (p[G] + scale * s, p[L] + scale * sc)
    }

    pub(crate) fn log_likelihood(&self, p: &[f64; 5]) -> f64 {
        let eta = p[E];
        let mut ll = 0.0;
        if eta * eta < 1e-9 {
            for i in 0..self.x.len() {
                let (q, qc) = self.psi_pair(self.x[i], p);
                let (k, n) = (self.k[i], self.n[i]);
                if k > 0 {
                    ll += f64::from(k) * q.ln();
                }
                if n > k {
                    ll += f64::from(n - k) * qc.ln();
                }
                ll += self.ln_c[i];
            }
        } else {
            let v = 1.0 / (eta * eta) - 1.0;
            for i in 0..self.x.len() {
                let (q, qc) = self.psi_pair(self.x[i], p);
                let (k, n) = (self.k[i], self.n[i]);
                ll +=
                    ln_rising(q * v, k) + ln_rising(qc * v, n - k) - ln_rising(v, n) + self.ln_c[i];
            }
        }
        ll
    }

    fn log_prior(&self, p: &[f64; 5]) -> f64 {
        use std::f64::consts::PI;
        let (r1, r2, s) = (self.range[0], self.range[1], self.spread);
        let m = p[M];
        let pm = if m < r1 - s / 2.0 || m > r2 + s / 2.0 {
            0.0
        } else if m <= r1 {
            0.5 + 0.5 * (2.0 * PI * (r1 - m) / s).cos()
        } else if m < r2 {
            1.0
        } else {
            0.5 + 0.5 * (2.0 * PI * (m - r2) / s).cos()
        };
        let u = p[W] * self.cfactor;
        let wm = self.width_min;
        let mut pw = 0.0;
        if u >= wm && u <= 2.0 * wm {
            pw += 0.5 - 0.5 * (PI * (u - wm) / wm).cos();
        }
        if u > 2.0 * wm && u < s {
            pw += 1.0;
        }
        if u >= s && u <= 3.0 * s {
            pw += 0.5 + 0.5 * (PI / 2.0 * (u - s) / s).cos();
        }
        let mut lp = pm.ln() + pw.ln();
        if self.free.contains(&L) {
            lp += 9.0 * (-p[L]).ln_1p();
        }
        if self.free.contains(&G) {
            lp += 9.0 * (-p[G]).ln_1p();
        }
        if self.free.contains(&E) {
            lp += (self.beta_prior - 1.0) * (-p[E]).ln_1p();
        }
        lp
    }

    fn objective(&self, p: &[f64; 5]) -> f64 {
        let ll = self.log_likelihood(p);
        if self.map {
            ll + self.log_prior(p)
        } else {
            ll
        }
    }

    /// The coarse grid's best point, in unit coordinates.
    fn grid_start(&self, steps: usize) -> Vec<f64> {
        let (nm, nw) = (steps, steps);
        let mut axes: Vec<Vec<f64>> = Vec::with_capacity(self.free.len());
        for &i in &self.free {
            let span = self.hi[i] - self.lo[i];
            let unit = |v: f64| (v - self.lo[i]) / span;
            axes.push(match i {
                M => (0..nm).map(|j| (j as f64 + 0.5) / nm as f64).collect(),
                // Denser at small widths, where steep functions live.
                W => (0..nw)
                    .map(|j| ((j as f64 + 0.5) / nw as f64).powi(2))
                    .collect(),
                L => [0.0, 0.05]
                    .into_iter()
                    .filter(|&v| v <= self.hi[L])
                    .map(unit)
                    .collect(),
                G => [0.0, 0.1].into_iter().map(unit).collect(),
                _ => vec![0.0],
            });
        }
        let mut best = (f64::NEG_INFINITY, vec![0.5; self.free.len()]);
        let mut idx = vec![0usize; axes.len()];
        let mut u = vec![0.0; axes.len()];
        loop {
            for (d, &j) in idx.iter().enumerate() {
                u[d] = axes[d][j];
            }
            let v = self.objective(&self.full(&u));
            if v > best.0 {
                best = (v, u.clone());
            }
            // Odometer increment.
            let mut d = 0;
            loop {
                if d == axes.len() {
                    return best.1;
                }
                idx[d] += 1;
                if idx[d] < axes[d].len() {
                    break;
                }
                idx[d] = 0;
                d += 1;
            }
        }
    }

    /// Maximises the objective; returns the parameters, the objective and the evaluations.
    pub(crate) fn maximise(&self, extra_start: Option<&[f64; 5]>) -> ([f64; 5], f64, u32) {
        let neg = |u: &[f64]| -self.objective(&self.full(u));
        // A fresh fit scores a 10 × 10 grid of (m, w); a refit that brings a good start
        // (a bootstrap sample) only needs a coarse one to guard against a distant mode.
        let mut start = self.grid_start(if extra_start.is_some() { 6 } else { 10 });
        let mut evaluations = 0;
        if let Some(p) = extra_start {
            let u = self.unit(p);
            if neg(&u) < neg(&start) {
                start = u;
            }
        }
        let mut best = optimize::nelder_mead(neg, &start, 0.05, 1e-6, 1e-8, 4000);
        evaluations += best.evaluations;
        // A restart with a fresh simplex guards against a collapsed one.
        let again = optimize::nelder_mead(neg, &best.x, 0.01, 1e-7, 1e-9, 4000);
        evaluations += again.evaluations;
        if again.f <= best.f {
            best = again;
        }
        (self.full(&best.x), -best.f, evaluations)
    }

    pub(crate) fn deviance(&self, p: &[f64; 5]) -> f64 {
        let mut d = 0.0;
        for i in 0..self.x.len() {
            let (q, qc) = self.psi_pair(self.x[i], p);
            let (k, n) = (f64::from(self.k[i]), f64::from(self.n[i]));
            if k > 0.0 {
                d += k * (k / (n * q)).ln();
            }
            if n > k {
                d += (n - k) * ((n - k) / (n * qc)).ln();
            }
        }
        2.0 * d
    }

    /// The blocks as fitted (pooled, on stimulus units), for simulation.
    pub(crate) fn levels_and_trials(&self) -> impl Iterator<Item = (f64, u32)> + '_ {
        self.x
            .iter()
            .zip(&self.n)
            .map(|(&x, &n)| (self.core.level(x), n))
    }

    fn make_fit(
        &self,
        o: &FitOptions,
        p: [f64; 5],
        objective: f64,
        evaluations: u32,
    ) -> Result<Fit, FitError> {
        if !p.iter().all(|v| v.is_finite()) || !objective.is_finite() {
            return Err(FitError::NonFinite);
        }
        let mut warnings = Vec::new();
        if self.k == self.n {
            warnings.push(FitWarning::AllCorrect);
        }
        let above_chance = self.x.iter().enumerate().any(|(i, _)| {
            let pc = f64::from(self.k[i]) / f64::from(self.n[i]);
            match o.guess {
                Guess::Fixed(g) => pc > g,
                _ => self.k[i] > 0,
            }
        });
        if !above_chance {
            warnings.push(FitWarning::NoneAboveChance);
        }
        let threshold = self.core.level(p[M]);
        if threshold < self.tested[0] {
            warnings.push(FitWarning::ThresholdBelowRange);
        } else if threshold > self.tested[1] {
            warnings.push(FitWarning::ThresholdAboveRange);
        }
        for (&i, u) in self.free.iter().zip(self.unit(&p)) {
            let param = [
                Param::Threshold,
                Param::Width,
                Param::Lapse,
                Param::Guess,
                Param::Eta,
            ][i];
            let at_low = u < 1e-3 && matches!(i, M | W);
            if at_low || u > 1.0 - 1e-3 {
                warnings.push(FitWarning::AtBorder(param));
            }
        }
        let log_likelihood = self.log_likelihood(&p);
        let deviance = self.deviance(&p);
        if !log_likelihood.is_finite() || !deviance.is_finite() {
            return Err(FitError::NonFinite);
        }
        Ok(Fit {
            sigmoid: o.sigmoid,
            thresh_pc: o.thresh_pc,
            width_alpha: o.width_alpha,
            threshold,
            m: p[M],
            width: p[W],
            lapse: p[L],
            guess: p[G],
            eta: p[E],
            log_likelihood,
            log_objective: objective,
            deviance,
            tested_range: self.tested,
            trials: self.trials,
            blocks: self.x.len(),
            evaluations,
            warnings,
        })
    }
}

/// Fits a psychometric function to `blocks` (blocks with equal levels are pooled, blocks
/// without trials ignored).
pub fn fit(blocks: &[Block], options: &FitOptions) -> Result<Fit, FitError> {
    let problem = Problem::new(blocks, options)?;
    let (p, objective, evaluations) = problem.maximise(None);
    problem.make_fit(options, p, objective, evaluations)
}

/// As [`fit`], with a known good point (e.g. the original fit, for a bootstrap sample) as
/// an extra candidate start.
pub(crate) fn fit_from(
    problem: &Problem,
    options: &FitOptions,
    start: &Fit,
) -> Result<Fit, FitError> {
    let p0 = [start.m, start.width, start.lapse, start.guess, start.eta];
    let (p, objective, evaluations) = problem.maximise(Some(&p0));
    problem.make_fit(options, p, objective, evaluations)
}
