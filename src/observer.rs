//! The observer model, in pure Rust: how the probe's decision variable becomes a response,
//! which condition each test trial shows, and the trial-to-trial variation of the stimuli.
//!
//! A test trial's decision variable is `d = logit(second) − logit(first)` of the trained
//! probe. The observer answers "second" when `d + ε > 0`, with ε the decision noise of the
//! plan's [`Decision`]: none (the tutorial's argmax), Gaussian, or logistic (sampling from
//! the softmax at a temperature). Stimulus noise (pixel noise, phase and position jitter)
//! makes every trial's images different, so it enters `d` itself.
//!
//! Every draw comes from its own seeded stream ([`crate::stimuli::rng::stream`]), indexed by
//! the repeat, the frequency and the trial, so the responses depend only on the plan.

use crate::plan::{Decision, NoiseKind};
use crate::stimuli::rng::{self, stream};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

/// Stream of the decision noise; index `repeat · 2³² + frequency`.
pub const DECISION: &str = "observer-decision";
/// Stream of the order of conditions; index `repeat · 2⁴⁸ + frequency · 2³² + cycle`.
pub const CONDITIONS: &str = "test-conditions";
/// Stream of a trial's stimulus noise; index `repeat · 2⁴⁸ + frequency · 2³² + trial`.
pub const STIMULUS: &str = "test-stimulus";
/// Stream of the seeds of repeats after the first; index = the repeat.
pub const REPEAT: &str = "repeat";

/// The master seed of repeat `r`: the plan's own seed for the first (so `repeats 1` is the
/// experiment as written), then one drawn from the `repeat` stream.
pub fn repeat_seed(seed: u64, r: u32) -> u64 {
    if r == 0 {
        seed
    } else {
        stream(seed, REPEAT, u64::from(r)).next_u64()
    }
}

/// A standard normal deviate (Box–Muller, cosine branch, from two [`rng::unit_f64`] draws).
pub fn standard_normal<R: RngCore + ?Sized>(r: &mut R) -> f64 {
    let u1 = 1.0 - rng::unit_f64(r); // (0, 1]
    let u2 = rng::unit_f64(r);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A standard logistic deviate: `ln(u / (1 − u))`, u uniform in (0, 1).
pub fn standard_logistic<R: RngCore + ?Sized>(r: &mut R) -> f64 {
    let u = (rng::unit_f64(r) + 0.5 / (1u64 << 53) as f64).clamp(f64::MIN_POSITIVE, 1.0);
    (u / (1.0 - u)).ln()
}

/// Standard normal CDF.
pub fn normal_cdf(x: f64) -> f64 {
    crate::psychometric::special::norm_cdf(x)
}

/// The decision rule with its noise scale resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DecisionRule {
    /// "second" exactly when `d > 0`.
    Deterministic,
    /// ε ~ N(0, σ²).
    Gaussian(f64),
    /// ε ~ Logistic(0, s): P(second) = 1 / (1 + e^(−d/s)).
    Logistic(f64),
}

impl DecisionRule {
    /// The rule of a plan's decision; `calibrated` is the scale found by [`calibrate`] for
    /// a calibrated decision (ignored otherwise).
    pub fn new(decision: &Decision, calibrated: Option<f64>) -> Self {
        match *decision {
            Decision::Deterministic => DecisionRule::Deterministic,
            Decision::Gaussian { sigma } => DecisionRule::Gaussian(sigma),
            Decision::Softmax { temperature } => DecisionRule::Logistic(temperature),
            Decision::Calibrated { noise, .. } => {
                let s = calibrated.unwrap_or(1.0);
                match noise {
                    NoiseKind::Gaussian => DecisionRule::Gaussian(s),
                    NoiseKind::Logistic => DecisionRule::Logistic(s),
                }
            }
        }
    }

    /// P(answer "second") for decision variable `d`.
    pub fn p_second(&self, d: f64) -> f64 {
        match *self {
            DecisionRule::Deterministic => f64::from(u8::from(d > 0.0)),
            DecisionRule::Gaussian(s) => normal_cdf(d / s),
            DecisionRule::Logistic(s) => 1.0 / (1.0 + (-d / s).exp()),
        }
    }

    /// One response: true for "second". Draws from `r` only when there is noise.
    pub fn respond<R: RngCore + ?Sized>(&self, d: f64, r: &mut R) -> bool {
        match *self {
            DecisionRule::Deterministic => d > 0.0,
            DecisionRule::Gaussian(s) => d + s * standard_normal(r) > 0.0,
            DecisionRule::Logistic(s) => d + s * standard_logistic(r) > 0.0,
        }
    }
}

impl DecisionRule {
    /// One choice among `scores.len()` alternatives (the N-way rule of the tasks of issue
    /// 12: the probe's logits, or a distance readout's distances, larger = chosen): the
    /// index of the largest `score + ε`, ties to the first. The noise is independent per
    /// alternative and scaled so that for two alternatives the difference of the two
    /// noises has the binary rule's distribution: Gaussian `N(0, σ²/2)` each; logistic
    /// through the softmax at temperature `s` (an inverse-CDF draw of one uniform), which
    /// for two alternatives is `P(second) = 1 / (1 + e^(−d/s))`, as [`respond`](Self::respond).
    /// Draws from `r` only when there is noise: one normal per alternative, or one uniform.
    pub fn choose<R: RngCore + ?Sized>(&self, scores: &[f64], r: &mut R) -> usize {
        match *self {
            DecisionRule::Deterministic => argmax(scores),
            DecisionRule::Gaussian(s) => {
                let k = s / std::f64::consts::SQRT_2;
                let noisy: Vec<f64> = scores.iter().map(|&x| x + k * standard_normal(r)).collect();
                argmax(&noisy)
            }
            DecisionRule::Logistic(s) => {
                let p = softmax(scores, s);
                let u = rng::unit_f64(r);
                let mut acc = 0.0;
                for (i, pi) in p.iter().enumerate() {
                    acc += pi;
                    if u < acc {
                        return i;
                    }
                }
                p.len().saturating_sub(1)
            }
        }
    }

    /// The probability that [`choose`](Self::choose) picks alternative `pick`: exact for
    /// the deterministic and logistic rules; for the Gaussian one by Gauss–Hermite-free
    /// numerical integration over the picked alternative's noise (`∫ φ(z) Π_j Φ((x_p −
    /// x_j)/k + z) dz` with k = σ/√2, midpoint rule on ±8 in 801 steps).
    pub fn p_choose(&self, scores: &[f64], pick: usize) -> f64 {
        match *self {
            DecisionRule::Deterministic => f64::from(u8::from(argmax(scores) == pick)),
            DecisionRule::Logistic(s) => softmax(scores, s)[pick],
            DecisionRule::Gaussian(s) => {
                let k = s / std::f64::consts::SQRT_2;
                let xp = scores[pick];
                let steps = 801;
                let h = 16.0 / f64::from(steps);
                (0..steps)
                    .map(|i| {
                        let z = -8.0 + (f64::from(i) + 0.5) * h;
                        let phi = (-0.5 * z * z).exp() / (std::f64::consts::TAU).sqrt();
                        let others: f64 = scores
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| j != pick)
                            .map(|(_, &xj)| normal_cdf((xp - xj) / k + z))
                            .product();
                        phi * others * h
                    })
                    .sum()
            }
        }
    }
}

/// The index of the largest value, the first of ties (NaN never wins).
fn argmax(x: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] || x[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best
}

/// `softmax(x / s)`, computed stably.
fn softmax(x: &[f64], s: f64) -> Vec<f64> {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|&v| ((v - m) / s).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// [`calibrate`] for N-way choices: the noise scale at which the expected accuracy over
/// trials with `scores` (one vector per trial) and right answers `correct` equals
/// `target`, by bisection on the scale's logarithm. Fails when the noiseless accuracy is
/// not above the target.
pub fn calibrate_choices(
    scores: &[Vec<f64>],
    correct: &[usize],
    noise: NoiseKind,
    target: f64,
) -> Result<f64, CalibrationError> {
    let n = scores.len().max(1) as f64;
    let accuracy = |rule: DecisionRule| -> f64 {
        scores
            .iter()
            .zip(correct)
            .map(|(s, &c)| rule.p_choose(s, c))
            .sum::<f64>()
            / n
    };
    let noiseless = accuracy(DecisionRule::Deterministic);
    let err = CalibrationError { noiseless, target };
    if scores.is_empty() || noiseless <= target {
        return Err(err);
    }
    let rule = |s: f64| match noise {
        NoiseKind::Gaussian => DecisionRule::Gaussian(s),
        NoiseKind::Logistic => DecisionRule::Logistic(s),
    };
    let spread = scores
        .iter()
        .flat_map(|s| s.iter().map(|v| v.abs()))
        .fold(0.0_f64, f64::max)
        .max(1e-30);
    let (mut lo, mut hi) = ((spread * 1e-9).ln(), (spread * 1e9).ln());
    if accuracy(rule(lo.exp())) < target || accuracy(rule(hi.exp())) > target {
        return Err(err);
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if accuracy(rule(mid.exp())) > target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-9 {
            break;
        }
    }
    Ok((0.5 * (lo + hi)).exp())
}

/// Why the noise could not be calibrated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibrationError {
    /// The noiseless probe's accuracy on the calibration trials.
    pub noiseless: f64,
    /// The accuracy asked for.
    pub target: f64,
}

/// The noise scale at which the expected accuracy over trials with signed margins
/// `margins` (the decision variable, negated where the right answer is "first") equals
/// `target`. The expected accuracy falls from the noiseless one towards 0.5 as the scale
/// grows; the scale is found by bisection on its logarithm to a relative 1e-9. Fails when
/// the noiseless accuracy is not above the target (no noise can raise accuracy).
pub fn calibrate(margins: &[f64], noise: NoiseKind, target: f64) -> Result<f64, CalibrationError> {
    let n = margins.len().max(1) as f64;
    let accuracy = |s: f64| -> f64 {
        let rule = match noise {
            NoiseKind::Gaussian => DecisionRule::Gaussian(s),
            NoiseKind::Logistic => DecisionRule::Logistic(s),
        };
        margins.iter().map(|&m| rule.p_second(m)).sum::<f64>() / n
    };
    let noiseless = margins.iter().filter(|&&m| m > 0.0).count() as f64 / n;
    let err = CalibrationError { noiseless, target };
    if margins.is_empty() || noiseless <= target {
        return Err(err);
    }
    // Bracket: the scale of the margins sets where to look.
    let spread = margins
        .iter()
        .map(|m| m.abs())
        .fold(0.0_f64, f64::max)
        .max(1e-30);
    let (mut lo, mut hi) = ((spread * 1e-9).ln(), (spread * 1e9).ln());
    if accuracy(lo.exp()) < target || accuracy(hi.exp()) > target {
        return Err(err);
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if accuracy(mid.exp()) > target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-9 {
            break;
        }
    }
    Ok((0.5 * (lo + hi)).exp())
}

/// Which condition (index into the level's trial list) each test trial of one frequency
/// shows: trials come in cycles of `t_count`, each a fresh seeded permutation of every
/// condition, so any `t_count` consecutive trials from a cycle's start show each condition
/// once (a procedure that asks for whole levels sees exactly the balanced set).
#[derive(Clone, Debug)]
pub struct Conditions {
    seed: u64,
    repeat: u32,
    frequency: u32,
    t_count: usize,
    cycle: u64,
    order: Vec<usize>,
    next: u64,
}

impl Conditions {
    /// The schedule of frequency index `frequency` in repeat `repeat`.
    pub fn new(seed: u64, repeat: u32, frequency: u32, t_count: usize) -> Self {
        let mut c = Conditions {
            seed,
            repeat,
            frequency,
            t_count: t_count.max(1),
            cycle: 0,
            order: Vec::new(),
            next: 0,
        };
        c.shuffle();
        c
    }

    fn shuffle(&mut self) {
        let index = (u64::from(self.repeat) << 48)
            | (u64::from(self.frequency) << 32)
            | (self.cycle & 0xffff_ffff);
        let mut r = stream(self.seed, CONDITIONS, index);
        self.order = (0..self.t_count).collect();
        for i in (1..self.t_count).rev() {
            let j = rng::below(&mut r, (i + 1) as u32) as usize;
            self.order.swap(i, j);
        }
    }

    /// The next trial's number (counting from 0) and condition.
    pub fn next_trial(&mut self) -> (u64, usize) {
        let k = self.next;
        let pos = (k % self.t_count as u64) as usize;
        let cycle = k / self.t_count as u64;
        if cycle != self.cycle {
            self.cycle = cycle;
            self.shuffle();
        }
        self.next += 1;
        (k, self.order[pos])
    }
}

/// The generator of frequency `frequency`'s decision noise in repeat `repeat`.
pub fn decision_stream(seed: u64, repeat: u32, frequency: u32) -> ChaCha8Rng {
    stream(
        seed,
        DECISION,
        (u64::from(repeat) << 32) | u64::from(frequency),
    )
}

/// The generator of one trial's stimulus noise.
pub fn stimulus_stream(seed: u64, repeat: u32, frequency: u32, trial: u64) -> ChaCha8Rng {
    stream(
        seed,
        STIMULUS,
        (u64::from(repeat) << 48) | (u64::from(frequency) << 32) | (trial & 0xffff_ffff),
    )
}

/// One trial's draws of stimulus variation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    /// Added to the grating's phase, degrees.
    pub phase: f64,
    /// Shift of both images, whole pixels (x right, y down).
    pub shift: (i32, i32),
}

/// Draws a trial's phase offset (uniform in ±`phase_jitter`) and shift (uniform whole pixels
/// in ±`position_jitter`), in that order, from `r`. Nothing is drawn for a zero jitter.
pub fn draw_jitter<R: RngCore + ?Sized>(
    r: &mut R,
    phase_jitter: f64,
    position_jitter: u32,
) -> Jitter {
    let phase = if phase_jitter > 0.0 {
        rng::uniform_f64(r, -phase_jitter, phase_jitter)
    } else {
        0.0
    };
    let shift = if position_jitter > 0 {
        let p = position_jitter as i32;
        (rng::int_range(r, -p, p + 1), rng::int_range(r, -p, p + 1))
    } else {
        (0, 0)
    };
    Jitter { phase, shift }
}

/// `grey` (`size × size`, row-major) moved by `(dx, dy)` whole pixels; the uncovered border
/// is `fill`.
pub fn shift_image(grey: &[f32], size: usize, (dx, dy): (i32, i32), fill: f32) -> Vec<f32> {
    if (dx, dy) == (0, 0) {
        return grey.to_vec();
    }
    let mut out = vec![fill; grey.len()];
    let s = size as i64;
    for y in 0..s {
        let sy = y - i64::from(dy);
        if !(0..s).contains(&sy) {
            continue;
        }
        for x in 0..s {
            let sx = x - i64::from(dx);
            if (0..s).contains(&sx) {
                out[(y * s + x) as usize] = grey[(sy * s + sx) as usize];
            }
        }
    }
    out
}

/// Adds independent N(0, sd²) noise to every pixel of `grey`, drawn from `r` in pixel order.
/// Values are not clipped: the network sees the noise as drawn.
pub fn add_pixel_noise<R: RngCore + ?Sized>(grey: &mut [f32], sd: f64, r: &mut R) {
    if sd <= 0.0 {
        return;
    }
    for v in grey {
        *v = (f64::from(*v) + sd * standard_normal(r)) as f32;
    }
}

#[cfg(test)]
mod tests {

    use super::{calibrate, calibrate_choices, DecisionRule};
    use crate::plan::NoiseKind;

    /// For two alternatives the N-way rule is the binary one: the same probability of
    /// choosing the second for every noise, and the same calibrated scale.
    #[test]
    fn two_way_choice_is_the_binary_rule() {
        for rule in [
            DecisionRule::Deterministic,
            DecisionRule::Gaussian(0.7),
            DecisionRule::Logistic(1.3),
        ] {
            for d in [-2.0, -0.3, 0.0, 0.4, 1.5] {
                let p = rule.p_choose(&[0.2, 0.2 + d], 1);
                let want = if matches!(rule, DecisionRule::Deterministic) && d == 0.0 {
                    0.0
                } else {
                    rule.p_second(d)
                };
                assert!((p - want).abs() < 1e-6, "{rule:?} d={d}: {p} vs {want}");
            }
        }
        let margins = [0.5, 1.0, -0.2, 2.0, 0.1, 0.8];
        let scores: Vec<Vec<f64>> = margins.iter().map(|&m| vec![0.0, m]).collect();
        let correct = vec![1; margins.len()];
        for noise in [NoiseKind::Gaussian, NoiseKind::Logistic] {
            let a = calibrate(&margins, noise, 0.7).unwrap();
            let b = calibrate_choices(&scores, &correct, noise, 0.7).unwrap();
            assert!((a - b).abs() / a < 1e-4, "{noise:?}: {a} vs {b}");
        }
    }

    /// Sampled choices follow `p_choose` (4 alternatives, 40 000 draws, within 4 SE), and
    /// the Gaussian integral sums to one over the alternatives.
    #[test]
    fn sampled_choices_follow_their_probabilities() {
        let scores = [0.3, 1.0, -0.5, 0.9];
        for rule in [DecisionRule::Gaussian(1.2), DecisionRule::Logistic(0.8)] {
            let total: f64 = (0..4).map(|i| rule.p_choose(&scores, i)).sum();
            assert!((total - 1.0).abs() < 1e-6, "{rule:?} sums to {total}");
            let mut r = crate::stimuli::rng::stream(3, "test", 0);
            let n = 40_000;
            let mut counts = [0u32; 4];
            for _ in 0..n {
                counts[rule.choose(&scores, &mut r)] += 1;
            }
            for (i, &c) in counts.iter().enumerate() {
                let p = rule.p_choose(&scores, i);
                let se = (p * (1.0 - p) / f64::from(n)).sqrt();
                let got = f64::from(c) / f64::from(n);
                assert!((got - p).abs() < 4.0 * se, "{rule:?} alt {i}: {got} vs {p}");
            }
        }
        assert_eq!(
            DecisionRule::Deterministic.choose(
                &[1.0, 3.0, 3.0],
                &mut crate::stimuli::rng::stream(0, "t", 0)
            ),
            1
        );
    }

    /// Calibration of a 4-way choice reaches its target, and fails above the noiseless
    /// accuracy.
    #[test]
    fn four_way_calibration_hits_its_target() {
        let scores: Vec<Vec<f64>> = (0..20)
            .map(|i| {
                let m = 0.2 + f64::from(i) * 0.1;
                vec![0.0, m, 0.1, -0.2]
            })
            .collect();
        let correct = vec![1; scores.len()];
        for noise in [NoiseKind::Gaussian, NoiseKind::Logistic] {
            let s = calibrate_choices(&scores, &correct, noise, 0.6).unwrap();
            let rule = match noise {
                NoiseKind::Gaussian => DecisionRule::Gaussian(s),
                NoiseKind::Logistic => DecisionRule::Logistic(s),
            };
            let acc: f64 =
                scores.iter().map(|x| rule.p_choose(x, 1)).sum::<f64>() / scores.len() as f64;
            assert!((acc - 0.6).abs() < 1e-6, "{noise:?}: {acc}");
        }
        let worse = vec![vec![1.0, 0.0]; 3];
        assert!(calibrate_choices(&worse, &[1, 1, 1], NoiseKind::Logistic, 0.6).is_err());
    }
    use super::*;

    #[test]
    fn normal_cdf_matches_known_values() {
        for (x, p) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746_068_543),
            (-1.959_963_984_540_054, 0.025),
            (2.326_347_874_040_841, 0.99),
        ] {
            assert!((normal_cdf(x) - p).abs() < 2e-7, "{x}: {}", normal_cdf(x));
        }
    }

    #[test]
    fn noise_draws_have_the_right_moments() {
        let mut r = stream(3, "t", 0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| standard_normal(&mut r)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
        let below = xs.iter().filter(|&&x| x < 1.0).count() as f64 / n as f64;
        assert!((below - 0.8413).abs() < 0.005, "{below}");
        // Logistic: variance π²/3, P(x < 1) = 1/(1 + e^-1).
        let ls: Vec<f64> = (0..n).map(|_| standard_logistic(&mut r)).collect();
        let var = ls.iter().map(|x| x * x).sum::<f64>() / n as f64;
        assert!(
            (var - std::f64::consts::PI.powi(2) / 3.0).abs() < 0.05,
            "{var}"
        );
        let below = ls.iter().filter(|&&x| x < 1.0).count() as f64 / n as f64;
        assert!((below - 0.731_058_6).abs() < 0.005, "{below}");
    }

    #[test]
    fn responses_follow_p_second() {
        for rule in [DecisionRule::Gaussian(0.7), DecisionRule::Logistic(0.4)] {
            let mut r = stream(5, "t", 1);
            for d in [-1.0, -0.2, 0.0, 0.3, 1.5] {
                let n = 50_000;
                let k = (0..n).filter(|_| rule.respond(d, &mut r)).count() as f64 / n as f64;
                assert!((k - rule.p_second(d)).abs() < 0.01, "{rule:?} {d}: {k}");
            }
        }
        let mut r = stream(5, "t", 2);
        assert!(DecisionRule::Deterministic.respond(1e-30, &mut r));
        assert!(!DecisionRule::Deterministic.respond(0.0, &mut r));
        // The softmax at temperature T is the logistic rule with scale T.
        let d = 0.8;
        let softmax = 1.0 / (1.0 + (-(d / 2.0_f64)).exp());
        assert!((DecisionRule::Logistic(2.0).p_second(d) - softmax).abs() < 1e-15);
    }

    #[test]
    fn calibration_hits_the_target_accuracy() {
        let mut r = stream(9, "t", 0);
        // Margins of a probe that is right on 95 % of trials.
        let margins: Vec<f64> = (0..2000)
            .map(|_| 2.0 + 1.5 * standard_normal(&mut r))
            .collect();
        for noise in [NoiseKind::Gaussian, NoiseKind::Logistic] {
            for target in [0.6, 0.75, 0.9] {
                let s = calibrate(&margins, noise, target).unwrap();
                let rule = match noise {
                    NoiseKind::Gaussian => DecisionRule::Gaussian(s),
                    NoiseKind::Logistic => DecisionRule::Logistic(s),
                };
                let acc = margins.iter().map(|&m| rule.p_second(m)).sum::<f64>() / 2000.0;
                assert!((acc - target).abs() < 1e-6, "{noise:?} {target}: {acc}");
            }
        }
        // Gaussian noise with margins N(μ, τ²): accuracy Φ(μ / √(τ² + σ²)).
        let s = calibrate(&margins, NoiseKind::Gaussian, 0.75).unwrap();
        let mean = margins.iter().sum::<f64>() / 2000.0;
        let var = margins.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / 2000.0;
        let theory = normal_cdf(mean / (var + s * s).sqrt());
        assert!((theory - 0.75).abs() < 0.01, "{theory}");
        // A probe already at or below the target cannot be calibrated.
        let e = calibrate(&margins, NoiseKind::Gaussian, 0.99).unwrap_err();
        assert!(e.noiseless < 0.99);
        assert!(calibrate(&[], NoiseKind::Gaussian, 0.8).is_err());
    }

    #[test]
    fn conditions_come_in_balanced_cycles() {
        let t = 13;
        let mut c = Conditions::new(1, 0, 2, t);
        let mut seen = Vec::new();
        for k in 0..(5 * t) {
            let (n, cond) = c.next_trial();
            assert_eq!(n, k as u64);
            seen.push(cond);
        }
        for cycle in seen.chunks(t) {
            let mut s = cycle.to_vec();
            s.sort_unstable();
            assert_eq!(s, (0..t).collect::<Vec<_>>());
        }
        // Not the identity order every time, and reproducible.
        assert_ne!(seen[..t], seen[t..2 * t]);
        let mut again = Conditions::new(1, 0, 2, t);
        let first: Vec<usize> = (0..t).map(|_| again.next_trial().1).collect();
        assert_eq!(first, seen[..t]);
        let mut other = Conditions::new(1, 1, 2, t);
        let o: Vec<usize> = (0..t).map(|_| other.next_trial().1).collect();
        assert_ne!(o, first);
    }

    #[test]
    fn shifting_moves_pixels_and_fills_the_border() {
        let size = 4;
        let img: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let s = shift_image(&img, size, (1, 2), -1.0);
        // Pixel (x, y) comes from (x − 1, y − 2).
        assert_eq!(s[2 * 4 + 1], img[0]);
        assert_eq!(s[3 * 4 + 3], img[4 + 2]);
        assert_eq!(s[0], -1.0);
        assert_eq!(s[2 * 4], -1.0);
        assert_eq!(shift_image(&img, size, (0, 0), 0.0), img);
        assert!(shift_image(&img, size, (5, 0), 0.5)
            .iter()
            .all(|&v| v == 0.5));
    }

    #[test]
    fn jitter_stays_in_bounds_and_repeat_seeds_differ() {
        let mut r = stream(4, STIMULUS, 0);
        for _ in 0..1000 {
            let j = draw_jitter(&mut r, 30.0, 3);
            assert!(j.phase.abs() <= 30.0);
            assert!(j.shift.0.abs() <= 3 && j.shift.1.abs() <= 3);
        }
        let j = draw_jitter(&mut r, 0.0, 0);
        assert_eq!(
            j,
            Jitter {
                phase: 0.0,
                shift: (0, 0)
            }
        );
        assert_eq!(repeat_seed(77, 0), 77);
        assert_ne!(repeat_seed(77, 1), repeat_seed(77, 2));
        let mut img = vec![0.5f32; 10_000];
        add_pixel_noise(&mut img, 0.1, &mut r);
        let mean = img.iter().map(|&v| f64::from(v)).sum::<f64>() / 1e4;
        let sd = (img
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / 1e4)
            .sqrt();
        assert!(
            (mean - 0.5).abs() < 0.005 && (sd - 0.1).abs() < 0.005,
            "{mean} {sd}"
        );
    }
}
