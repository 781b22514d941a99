//! QUEST+ (Watson 2017): Bayesian stimulus placement by expected entropy over a grid of
//! psychometric-function parameters.

use super::{Censor, Estimate, Request, Step, Stop};
use crate::plan::QuestPlusSettings;

/// A generic QUEST+ engine for a binary outcome: `n_stim` stimuli (any number of
/// dimensions, flattened in C order by the caller) × `n_param` parameter points (likewise
/// flattened), with the probability of a correct response precomputed for every pair.
///
/// The next stimulus minimises the expected entropy of the posterior after the trial;
/// ties go to the first index. Since the likelihood of the two outcomes sums to one, the
/// expected entropy of stimulus s is
/// `Σ_r p_r ln p_r − Σ_θ π_θ ln π_θ − Σ_θ π_θ·Σ_r L_rsθ ln L_rsθ`, with `p_r = Σ_θ π_θ L_rsθ`:
/// the last sum uses a precomputed table of each likelihood's own entropy, so a trial
/// costs two dot products per stimulus and no allocation.
#[derive(Clone, Debug, PartialEq)]
pub struct QuestPlusEngine {
    n_stim: usize,
    n_param: usize,
    /// P(correct | s, θ) at `s·n_param + θ`.
    like: Vec<f64>,
    /// `Σ_r L ln L` (minus the binary entropy) at the same index.
    neg_entropy: Vec<f64>,
    posterior: Vec<f64>,
}

impl QuestPlusEngine {
    /// An engine with a uniform prior. `like` holds P(correct | s, θ) at
    /// `s·n_param + θ`.
    pub fn new(n_stim: usize, n_param: usize, like: Vec<f64>) -> Self {
        assert_eq!(like.len(), n_stim * n_param, "likelihood table size");
        let xlnx = |x: f64| if x > 0.0 { x * x.ln() } else { 0.0 };
        let neg_entropy = like.iter().map(|&l| xlnx(l) + xlnx(1.0 - l)).collect();
        Self {
            n_stim,
            n_param,
            like,
            neg_entropy,
            posterior: vec![1.0 / n_param as f64; n_param],
        }
    }

    /// The posterior over the parameter points.
    pub fn posterior(&self) -> &[f64] {
        &self.posterior
    }

    /// The expected entropy after a trial at stimulus `s`.
    pub fn expected_entropy(&self, s: usize) -> f64 {
        let row = s * self.n_param;
        let like = &self.like[row..row + self.n_param];
        let ne = &self.neg_entropy[row..row + self.n_param];
        let (mut p1, mut h) = (0.0, 0.0);
        let mut prior_term = 0.0;
        for ((&pi, &l), &e) in self.posterior.iter().zip(like).zip(ne) {
            p1 += pi * l;
            h += pi * e;
            if pi > 0.0 {
                prior_term += pi * pi.ln();
            }
        }
        let p0 = 1.0 - p1;
        let xlnx = |x: f64| if x > 0.0 { x * x.ln() } else { 0.0 };
        xlnx(p1) + xlnx(p0) - prior_term - h
    }

    /// The stimulus with the least expected entropy (the first of equals).
    pub fn next_stimulus(&self) -> usize {
        // The prior term is the same for every stimulus: leave it out of the comparison.
        let mut best = (0, f64::INFINITY);
        for s in 0..self.n_stim {
            let row = s * self.n_param;
            let like = &self.like[row..row + self.n_param];
            let ne = &self.neg_entropy[row..row + self.n_param];
            let (mut p1, mut h) = (0.0, 0.0);
            for ((&pi, &l), &e) in self.posterior.iter().zip(like).zip(ne) {
                p1 += pi * l;
                h += pi * e;
            }
            let xlnx = |x: f64| if x > 0.0 { x * x.ln() } else { 0.0 };
            let eh = xlnx(p1) + xlnx(1.0 - p1) - h;
            if eh < best.1 {
                best = (s, eh);
            }
        }
        best.0
    }

    /// Bayes' rule after `correct` (or not) at stimulus `s`.
    pub fn update(&mut self, s: usize, correct: bool) {
        let row = s * self.n_param;
        let like = &self.like[row..row + self.n_param];
        let mut sum = 0.0;
        for (pi, &l) in self.posterior.iter_mut().zip(like) {
            *pi *= if correct { l } else { 1.0 - l };
            sum += *pi;
        }
        if sum > 0.0 {
            self.posterior.iter_mut().for_each(|p| *p /= sum);
        }
    }

    /// The parameter point of highest posterior (the first of equals).
    pub fn mode(&self) -> usize {
        let mut best = 0;
        for (i, p) in self.posterior.iter().enumerate() {
            if *p > self.posterior[best] {
                best = i;
            }
        }
        best
    }
}

/// QUEST+ as psyrun uses it: stimuli are contrasts in dB (20·log10 c), parameters a
/// Weibull's threshold (dB) × slope × lapse in C order, guess rate `gamma`:
/// `p = 1 − λ − (1 − γ − λ)·exp(−10^(β(x − t)/20))`. One trial per step, `trials` trials.
///
/// The threshold reported is psyrun's: the contrast where each parameter point's curve
/// crosses `target`, averaged over the posterior (in dB), with the posterior's sd and
/// central 95 % interval of that quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct QuestPlus {
    engine: QuestPlusEngine,
    s: QuestPlusSettings,
    /// The target crossing (dB) of every parameter point.
    crossing: Vec<f64>,
    next: usize,
    trace: Vec<Step>,
    stop: Option<Stop>,
}

/// The Weibull on dB of QUEST+ (`questplus`'s `weibull` with `stim_scale='dB'`).
pub fn weibull_db(x: f64, t: f64, beta: f64, gamma: f64, lapse: f64) -> f64 {
    1.0 - lapse - (1.0 - gamma - lapse) * (-(10f64.powf(beta * (x - t) / 20.0))).exp()
}

impl QuestPlus {
    /// The procedure `settings` describe (validated by the planner).
    pub fn from_plan(settings: &QuestPlusSettings) -> Self {
        let s = settings.clone();
        let n_param = s.thresholds_db.len() * s.slopes.len() * s.lapses.len();
        let mut like = Vec::with_capacity(s.contrasts_db.len() * n_param);
        for &x in &s.contrasts_db {
            for &t in &s.thresholds_db {
                for &b in &s.slopes {
                    for &l in &s.lapses {
                        like.push(weibull_db(x, t, b, s.gamma, l));
                    }
                }
            }
        }
        let mut crossing = Vec::with_capacity(n_param);
        for &t in &s.thresholds_db {
            for &b in &s.slopes {
                for &l in &s.lapses {
                    // 1 − l − (1 − γ − l)·e^(−u) = target, u = 10^(β(x − t)/20).
                    let u = -((1.0 - l - s.target) / (1.0 - s.gamma - l)).ln();
                    crossing.push(t + 20.0 * u.log10() / b);
                }
            }
        }
        let engine = QuestPlusEngine::new(s.contrasts_db.len(), n_param, like);
        let next = engine.next_stimulus();
        Self {
            engine,
            s,
            crossing,
            next,
            trace: Vec::new(),
            stop: None,
        }
    }

    /// The engine, for its posterior.
    pub fn engine(&self) -> &QuestPlusEngine {
        &self.engine
    }

    /// The stimulus (dB) it asks for next.
    pub fn next_db(&self) -> f64 {
        self.s.contrasts_db[self.next]
    }

    /// One trial at the stimulus of least expected entropy.
    pub fn next(&self) -> Option<Request> {
        self.stop.is_none().then_some(Request {
            contrast: 10f64.powf(self.next_db() / 20.0),
            trials: 1,
        })
    }

    /// Records the response to the last request (1 correct, 0 incorrect).
    pub fn record(&mut self, correct: u32) {
        if self.stop.is_some() {
            return;
        }
        let r = correct >= 1;
        let c = 10f64.powf(self.next_db() / 20.0);
        self.trace
            .push(Step::new(self.trace.len(), c, 1, u32::from(r)));
        self.engine.update(self.next, r);
        if self.trace.len() >= self.s.trials as usize {
            self.stop = Some(Stop::Trials);
        } else {
            self.next = self.engine.next_stimulus();
        }
    }

    /// The joint posterior mode as (threshold dB, slope, lapse).
    pub fn mode(&self) -> (f64, f64, f64) {
        let i = self.engine.mode();
        let (nb, nl) = (self.s.slopes.len(), self.s.lapses.len());
        (
            self.s.thresholds_db[i / (nb * nl)],
            self.s.slopes[(i / nl) % nb],
            self.s.lapses[i % nl],
        )
    }

    /// Why it stopped, if it has.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    /// Every trial so far.
    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    /// The posterior distribution of the target crossing, as (dB, probability) sorted
    /// by dB.
    fn crossing_distribution(&self) -> Vec<(f64, f64)> {
        let mut d: Vec<(f64, f64)> = self
            .crossing
            .iter()
            .copied()
            .zip(self.engine.posterior().iter().copied())
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        d
    }

    /// Posterior mean of the target crossing (converted from dB to contrast), its sd in
    /// log10 units and its central 95 % interval. `None` before the first trial.
    pub fn estimate(&self) -> Option<Estimate> {
        self.trace.last()?;
        let d = self.crossing_distribution();
        let mean: f64 = d.iter().map(|(x, p)| x * p).sum();
        let var: f64 = d.iter().map(|(x, p)| p * (x - mean).powi(2)).sum();
        let quantile = |q: f64| {
            let mut c = 0.0;
            for (x, p) in &d {
                c += p;
                if c >= q {
                    return *x;
                }
            }
            d[d.len() - 1].0
        };
        let db = |x: f64| 10f64.powf(x / 20.0);
        Some(Estimate {
            threshold: db(mean),
            sd: Some(var.sqrt() / 20.0),
            interval: Some((db(quantile(0.025)), db(quantile(0.975)))),
            method: "posterior_mean",
        })
    }

    /// Below (above) range when the estimate lies below (above) the stimulus grid.
    pub fn censoring(&self) -> Option<Censor> {
        self.stop?;
        let t = 20.0 * self.estimate()?.threshold.log10();
        let (lo, hi) = (
            self.s.contrasts_db[0],
            self.s.contrasts_db[self.s.contrasts_db.len() - 1],
        );
        if t < lo {
            Some(Censor::BelowRange)
        } else if t > hi {
            Some(Censor::AboveRange)
        } else {
            None
        }
    }

    /// The most trials it can run.
    pub fn max_trials(&self) -> u64 {
        u64::from(self.s.trials)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Rng;
    use super::*;

    fn range(lo: i32, hi: i32) -> Vec<f64> {
        (lo..=hi).map(f64::from).collect()
    }

    fn watson(slopes: Vec<f64>, lapses: Vec<f64>, trials: u32) -> QuestPlus {
        QuestPlus::from_plan(&QuestPlusSettings {
            contrasts_db: range(-40, 0),
            thresholds_db: range(-40, 0),
            slopes,
            lapses,
            gamma: 0.5,
            target: 0.75,
            trials,
        })
    }

    fn replay(q: &mut QuestPlus, expected: &[i32], responses: &str) {
        let responses: Vec<u32> = responses
            .split_whitespace()
            .map(|r| u32::from(r == "C"))
            .collect();
        assert_eq!(expected.len(), responses.len());
        let mut got = Vec::new();
        for &r in &responses {
            got.push(q.next_db() as i32);
            q.record(r);
        }
        assert_eq!(got, expected);
        assert!(q.next().is_none());
    }

    /// Watson (2017), Example 1: threshold only.
    #[test]
    fn watson_example_1() {
        let mut q = watson(vec![3.5], vec![0.02], 32);
        let expected = [
            -18, -22, -25, -28, -30, -22, -13, -15, -16, -18, -19, -20, -21, -22, -23, -19, -20,
            -20, -18, -18, -19, -17, -17, -18, -18, -18, -19, -19, -19, -19, -19, -19,
        ];
        replay(
            &mut q,
            &expected,
            "C C C C I I C C C C C C C C I C C I C C I C C C C C C C C C C C",
        );
        assert_eq!(q.mode().0, -20.0);
    }

    /// Watson (2017), "Implementation": threshold and slope.
    #[test]
    fn watson_threshold_and_slope() {
        let mut q = watson(vec![2.0, 3.0, 4.0, 5.0], vec![0.02], 64);
        let expected = [
            -18, -22, -12, -13, -15, -16, -17, -18, -19, -21, -24, -25, -26, -27, -21, -22, -23,
            -20, -20, -20, -21, -19, -19, -20, -20, -20, -19, -19, -19, -19, -19, -20, -20, -20,
            -20, -20, -21, -21, -20, -20, -20, -19, -18, -18, -19, -19, -19, -18, -18, -17, -18,
            -18, -18, -17, -17, -17, -17, -17, -17, -17, -18, -18, -18, -18,
        ];
        replay(
            &mut q,
            &expected,
            "C I C C C C C C C C C C C I C C I C C C I C C C C I C C C C C C C C C C C I C C \
             I I C C C C I C I C C C I C C C C C C C C C C C",
        );
        let (t, b, _) = q.mode();
        assert_eq!((t, b), (-20.0, 3.0));
    }

    /// Watson (2017), Example 2: threshold, slope and lapse, 128 trials.
    #[test]
    fn watson_example_2() {
        let lapses: Vec<f64> = (0..5).map(|i| f64::from(i) * 0.01).collect();
        let mut q = watson(vec![2.0, 3.0, 4.0, 5.0], lapses, 128);
        let expected = [
            -18, -22, -25, -28, -30, -21, -12, -14, -15, -16, -18, -19, -20, -22, -23, -18, -19,
            -16, -17, -17, -18, -18, -18, -19, -19, -17, -17, -18, -18, -18, -18, -19, -19, -20,
            -18, -18, -18, -18, -18, -19, -19, -19, -19, -20, -18, -18, -18, -18, -18, -18, -18,
            -18, -18, -19, -19, -19, -20, -18, -18, -18, -18, -19, -19, -19, -18, -18, -18, -18,
            -19, -19, -19, -19, -19, -19, -19, -19, -20, -21, -19, -19, -19, -19, -19, -19, -19,
            -18, -19, -19, -16, -16, -16, -16, -16, -16, 0, 0, -19, -19, -19, -19, -19, -19, -19,
            -19, -19, -19, -19, -19, -19, -19, -21, -21, -19, -19, -19, -19, -19, -19, -19, -19,
            -19, -19, -19, -19, -19, -19, -19, -19,
        ];
        replay(
            &mut q,
            &expected,
            "C C C C I I C C C C C C C C I C I C C C C C C C I C C C C C C C C I C C C C C C \
             C C C I C C C I C C C C C C C C I C C C C C C I C C C C C C C C C C C C C I C I \
             C C C C I C C I C C C C C C C I C C C C C C C C C C C C C C C I C C C I C I I C \
             C C C I C C C C",
        );
        assert_eq!(q.mode(), (-20.0, 5.0, 0.04));
    }

    /// Watson (2017), Example 4: a contrast sensitivity function over contrast × spatial
    /// frequency, with the generic engine. The log threshold is
    /// `max(min_thresh, c0 + cf·f)`; Weibull on dB, slope 3, γ 0.5, λ 0.01.
    #[test]
    fn watson_example_4_csf() {
        let contrasts: Vec<f64> = (0..26).map(|i| -50.0 + 2.0 * f64::from(i)).collect();
        let freqs: Vec<f64> = (0..21).map(|i| 2.0 * f64::from(i)).collect();
        let min_thresh: Vec<f64> = (0..11).map(|i| -50.0 + 2.0 * f64::from(i)).collect();
        let c0s: Vec<f64> = (0..11).map(|i| -60.0 + 2.0 * f64::from(i)).collect();
        // As NumPy's arange(0.8, 1.6 + 0.2, 0.2) fills it.
        let step = (0.8 + 0.2) - 0.8;
        let cfs: Vec<f64> = (0..5).map(|i| 0.8 + f64::from(i) * step).collect();
        let mut like = Vec::new();
        for &x in &contrasts {
            for &f in &freqs {
                for &m in &min_thresh {
                    for &c0 in &c0s {
                        for &cf in &cfs {
                            let t = f64::max(m, c0 + cf * f);
                            like.push(weibull_db(x, t, 3.0, 0.5, 0.01));
                        }
                    }
                }
            }
        }
        let n_param = min_thresh.len() * c0s.len() * cfs.len();
        let mut e = QuestPlusEngine::new(contrasts.len() * freqs.len(), n_param, like);
        let want_c = [
            0, -4, 0, 0, -38, 0, -40, 0, -26, -26, 0, -36, -36, 0, -26, -26, -2, -26, -6, -26, 0,
            -26, 0, -26, -32, -32, -34, -34, 0, -26, 0, -26,
        ];
        let want_f = [
            40, 40, 34, 36, 0, 38, 0, 38, 18, 18, 40, 0, 0, 40, 20, 20, 40, 22, 40, 20, 40, 18, 40,
            18, 0, 0, 0, 0, 40, 18, 38, 18,
        ];
        let responses = "C I C C C C I C C C C C I C C C C C I I C C C C C C C I I C C C";
        let mut got = Vec::new();
        for r in responses.split_whitespace() {
            let s = e.next_stimulus();
            let (ci, fi) = (s / freqs.len(), s % freqs.len());
            got.push((contrasts[ci] as i32, freqs[fi] as i32));
            e.update(s, r == "C");
        }
        let want: Vec<(i32, i32)> = want_c.iter().copied().zip(want_f).collect();
        assert_eq!(got, want);
        let m = e.mode();
        let (nc, nf) = (c0s.len(), cfs.len());
        assert_eq!(min_thresh[m / (nc * nf)], -32.0);
        assert_eq!(c0s[(m / nf) % nc], -56.0);
        assert!((cfs[m % nf] - 1.4).abs() < 1e-9);
    }

    /// The entropy shortcut equals the direct formula.
    #[test]
    fn expected_entropy_matches_the_definition() {
        let mut q = watson(vec![2.0, 3.0, 4.0, 5.0], vec![0.0, 0.02], 10);
        for (s, r) in [(10, true), (20, false), (5, true)] {
            q.engine.update(s, r);
        }
        let e = &q.engine;
        for s in [0, 7, 19, 40] {
            let mut eh = 0.0;
            for r in [true, false] {
                let post: Vec<f64> = (0..e.n_param)
                    .map(|t| {
                        let l = e.like[s * e.n_param + t];
                        e.posterior[t] * if r { l } else { 1.0 - l }
                    })
                    .collect();
                let p: f64 = post.iter().sum();
                let h: f64 = post
                    .iter()
                    .map(|x| x / p)
                    .filter(|&x| x > 0.0)
                    .map(|x| -x * x.ln())
                    .sum();
                eh += p * h;
            }
            assert!(
                (eh - e.expected_entropy(s)).abs() < 1e-12,
                "{eh} vs {}",
                e.expected_entropy(s)
            );
        }
    }

    fn big() -> QuestPlusSettings {
        QuestPlusSettings {
            contrasts_db: (0..50)
                .map(|i| -60.0 + 60.0 * f64::from(i) / 49.0)
                .collect(),
            thresholds_db: (0..50)
                .map(|i| -60.0 + 60.0 * f64::from(i) / 49.0)
                .collect(),
            slopes: (0..50).map(|i| 1.0 + 4.0 * f64::from(i) / 49.0).collect(),
            lapses: vec![0.0, 0.01, 0.02, 0.03, 0.04, 0.05],
            gamma: 0.5,
            target: 0.75,
            trials: 100,
        }
    }

    /// A 50 × 50 × 6 parameter grid with 50 stimuli runs 100 trials and finds a simulated
    /// observer's 75 % point.
    #[test]
    fn a_large_grid_runs_and_finds_the_threshold() {
        let (t, b, l): (f64, f64, f64) = (-30.0, 3.0, 0.01);
        let truth = {
            let u = -((1.0 - l - 0.75) / (0.5 - l)).ln();
            t + 20.0 * u.log10() / b
        };
        let mut rng = Rng(5);
        let mut q = QuestPlus::from_plan(&big());
        while let Some(r) = q.next() {
            let x = 20.0 * r.contrast.log10();
            q.record(rng.binomial(1, weibull_db(x, t, b, 0.5, l)));
        }
        assert_eq!(q.trace().len(), 100);
        let e = q.estimate().unwrap();
        let got = 20.0 * e.threshold.log10();
        assert!((got - truth).abs() < 4.0, "{got} dB vs {truth} dB");
        let (lo, hi) = e.interval.unwrap();
        assert!(lo < e.threshold && e.threshold < hi);
    }

    /// Time of the large grid (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn bench_large_grid() {
        let t0 = std::time::Instant::now();
        let mut q = QuestPlus::from_plan(&big());
        let setup = t0.elapsed();
        let mut rng = Rng(1);
        while let Some(r) = q.next() {
            let x = 20.0 * r.contrast.log10();
            q.record(rng.binomial(1, weibull_db(x, -30.0, 3.0, 0.5, 0.01)));
        }
        eprintln!(
            "QUEST+ 50×(50×50×6): setup {setup:?}, 100 trials {:?}",
            t0.elapsed() - setup
        );
    }
}
