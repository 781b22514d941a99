//! QUEST (Watson & Pelli 1983): a Bayesian posterior over the threshold on a grid.

use super::{interp, Censor, Estimate, Request, Step, Stop};
use crate::plan::{QuestMethod, QuestSettings};

/// The scale-agnostic QUEST engine of Psychtoolbox's `QuestCreate`/`QuestUpdate` (and
/// PsychoPy's port): intensities are on whatever axis the caller uses, normally log10
/// contrast. The psychometric function is a Weibull on that axis,
/// `p(x) = δγ + (1 − δ)(1 − (1 − γ)·exp(−10^(β(x − T + ε))))`, with ε chosen so that
/// `p(T) = pThreshold`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuestCore {
    t_guess: f64,
    grain: f64,
    dim: usize,
    /// Threshold grid relative to `t_guess`: `i·grain`, `i = −dim/2..=dim/2`.
    x: Vec<f64>,
    pdf: Vec<f64>,
    /// The psychometric function on `(−dim..=dim)·grain`.
    p2: Vec<f64>,
    quantile_order: f64,
    normalize: bool,
}

impl QuestCore {
    /// A Gaussian prior of mean `t_guess` and standard deviation `t_guess_sd` on a grid
    /// of step `grain` spanning `range` (default 5, Psychtoolbox's). `normalize`
    /// renormalises the posterior after every update (Psychtoolbox's default; PsychoPy's
    /// port does not). `None` when the psychometric function does not cross `p_threshold`
    /// on the grid.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        t_guess: f64,
        t_guess_sd: f64,
        p_threshold: f64,
        beta: f64,
        delta: f64,
        gamma: f64,
        grain: f64,
        range: Option<f64>,
        normalize: bool,
    ) -> Option<Self> {
        let dim = match range {
            None => 500,
            Some(r) => 2 * ((r / grain / 2.0).ceil() as usize),
        };
        let half = (dim / 2) as i64;
        let x: Vec<f64> = (-half..=half).map(|i| i as f64 * grain).collect();
        let mut pdf: Vec<f64> = x
            .iter()
            .map(|x| (-0.5 * (x / t_guess_sd).powi(2)).exp())
            .collect();
        let sum: f64 = pdf.iter().sum();
        pdf.iter_mut().for_each(|p| *p /= sum);
        let x2: Vec<f64> = (-(dim as i64)..=dim as i64)
            .map(|i| i as f64 * grain)
            .collect();
        let weibull = |x: f64| {
            delta * gamma + (1.0 - delta) * (1.0 - (1.0 - gamma) * (-(10f64.powf(beta * x))).exp())
        };
        let p2: Vec<f64> = x2.iter().map(|&x| weibull(x)).collect();
        if p2[0] >= p_threshold || p2[p2.len() - 1] <= p_threshold {
            return None;
        }
        // The strictly increasing part, as Psychtoolbox's `find(diff(p2))`.
        let index: Vec<usize> = (0..p2.len() - 1).filter(|&i| p2[i + 1] != p2[i]).collect();
        if index.len() < 2 {
            return None;
        }
        let ps: Vec<f64> = index.iter().map(|&i| p2[i]).collect();
        let xs: Vec<f64> = index.iter().map(|&i| x2[i]).collect();
        let x_threshold = interp(p_threshold, &ps, &xs);
        let p2: Vec<f64> = x2.iter().map(|&x| weibull(x + x_threshold)).collect();
        let eps = 1e-14;
        let (pl, ph) = (p2[0], p2[p2.len() - 1]);
        let pe = ph * (ph + eps).ln() - pl * (pl + eps).ln()
            + (1.0 - ph + eps) * (1.0 - ph + eps).ln()
            - (1.0 - pl + eps) * (1.0 - pl + eps).ln();
        let pe = 1.0 / (1.0 + (pe / (pl - ph)).exp());
        let quantile_order = (pe - pl) / (ph - pl);
        Some(Self {
            t_guess,
            grain,
            dim,
            x,
            pdf,
            p2,
            quantile_order,
            normalize,
        })
    }

    /// Pelli's (1987) quantile that places trials best ("ideal sweat factor").
    pub fn quantile_order(&self) -> f64 {
        self.quantile_order
    }

    /// Number of grid points of the posterior.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Never: the grid has at least one point.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Multiplies the posterior by the likelihood of `response` at `intensity`. An
    /// intensity beyond the grid counts as its end (Psychtoolbox shifts the table and
    /// warns).
    pub fn update(&mut self, intensity: f64, response: bool) {
        let inten = intensity.clamp(-1e10, 1e10);
        let r = ((inten - self.t_guess) / self.grain).round_ties_even() as i64;
        let (half, dim) = ((self.dim / 2) as i64, self.dim as i64);
        // For grid point i, the table index of x2 = (r − i)·grain is dim + r − i.
        let r = r.clamp(-half, half);
        for (j, p) in self.pdf.iter_mut().enumerate() {
            let i = j as i64 - half;
            let k = (dim + r - i) as usize;
            let l = self.p2[k];
            *p *= if response { l } else { 1.0 - l };
        }
        if self.normalize {
            let sum: f64 = self.pdf.iter().sum();
            self.pdf.iter_mut().for_each(|p| *p /= sum);
        }
    }

    /// Posterior mean.
    pub fn mean(&self) -> f64 {
        let (mut s, mut sx) = (0.0, 0.0);
        for (p, x) in self.pdf.iter().zip(&self.x) {
            s += p;
            sx += p * x;
        }
        self.t_guess + sx / s
    }

    /// Posterior standard deviation.
    pub fn sd(&self) -> f64 {
        let s: f64 = self.pdf.iter().sum();
        let m: f64 = self
            .pdf
            .iter()
            .zip(&self.x)
            .map(|(p, x)| p * x)
            .sum::<f64>()
            / s;
        let v: f64 = self
            .pdf
            .iter()
            .zip(&self.x)
            .map(|(p, x)| p * x * x)
            .sum::<f64>()
            / s;
        (v - m * m).max(0.0).sqrt()
    }

    /// Posterior mode (the first maximum).
    pub fn mode(&self) -> f64 {
        let mut best = 0;
        for (i, p) in self.pdf.iter().enumerate() {
            if *p > self.pdf[best] {
                best = i;
            }
        }
        self.t_guess + self.x[best]
    }

    /// The `q` quantile of the posterior, interpolated on the strictly increasing part of
    /// its cumulative sum.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut cum = Vec::with_capacity(self.pdf.len());
        let mut s = 0.0;
        for p in &self.pdf {
            s += p;
            cum.push(s);
        }
        let mut ps = Vec::new();
        let mut xs = Vec::new();
        let mut prev = -1.0;
        for (c, x) in cum.iter().zip(&self.x) {
            if *c > prev {
                ps.push(*c);
                xs.push(*x);
            }
            prev = *c;
        }
        self.t_guess + interp(q * s, &ps, &xs)
    }
}

/// QUEST on log10 contrast, one trial per step.
///
/// The prior is a Gaussian on log10 contrast (mean `log10(start)`, sd `start_sd`) on a
/// grid of step `grain` that covers the contrast range with one log unit to spare on each
/// side, so a threshold outside the range shows in the posterior. The next contrast is
/// the posterior's quantile (Pelli's quantile order), mean or mode, clamped to the range.
/// It stops after `trials` trials, or when the 5–95 % posterior interval is narrower than
/// `stop_interval` log10 units.
#[derive(Clone, Debug, PartialEq)]
pub struct Quest {
    core: QuestCore,
    s: QuestSettings,
    next: f64,
    trace: Vec<Step>,
    stop: Option<Stop>,
}

impl Quest {
    /// The engine `settings` describe: `None` when its psychometric function does not
    /// cross the target on the grid (the planner refuses those settings).
    pub fn core_for(s: &QuestSettings) -> Option<QuestCore> {
        let (lo, hi) = (s.low.log10(), s.high.log10());
        let tg = s.start.clamp(s.low, s.high).log10();
        let range = 2.0 * ((tg - lo).abs().max((hi - tg).abs()) + 1.0);
        QuestCore::new(
            tg,
            s.start_sd,
            s.target,
            s.beta,
            s.delta,
            s.gamma,
            s.grain,
            Some(range),
            true,
        )
    }

    /// The procedure `settings` describe (validated by the planner: see
    /// [`core_for`](Self::core_for)).
    pub fn from_plan(settings: &QuestSettings) -> Self {
        let s = settings.clone();
        let core = Self::core_for(&s)
            .expect("the planner checks that the psychometric function crosses the target");
        Self {
            next: 10f64.powf(core.t_guess),
            core,
            s,
            trace: Vec::new(),
            stop: None,
        }
    }

    /// The engine, for its posterior.
    pub fn core(&self) -> &QuestCore {
        &self.core
    }

    /// One trial at the placement rule's contrast.
    pub fn next(&self) -> Option<Request> {
        self.stop.is_none().then_some(Request {
            contrast: self.next,
            trials: 1,
        })
    }

    /// Records the response to the last request (1 correct, 0 incorrect).
    pub fn record(&mut self, correct: u32) {
        if self.stop.is_some() {
            return;
        }
        let r = correct >= 1;
        self.trace
            .push(Step::new(self.trace.len(), self.next, 1, u32::from(r)));
        self.core.update(self.next.log10(), r);
        let x = match self.s.method {
            QuestMethod::Quantile => self.core.quantile(self.core.quantile_order()),
            QuestMethod::Mean => self.core.mean(),
            QuestMethod::Mode => self.core.mode(),
        };
        self.next = 10f64.powf(x).clamp(self.s.low, self.s.high);
        if self.trace.len() >= self.s.trials as usize {
            self.stop = Some(Stop::Trials);
        } else if let Some(w) = self.s.stop_interval {
            if (self.core.quantile(0.95) - self.core.quantile(0.05)).abs() < w {
                self.stop = Some(Stop::Precision);
            }
        }
    }

    /// Why it stopped, if it has.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    /// Every trial so far.
    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    /// The posterior mean (Pelli's final estimate), its sd (log10 units) and the central
    /// 95 % of the posterior. `None` before the first trial.
    pub fn estimate(&self) -> Option<Estimate> {
        self.trace.last()?;
        Some(Estimate {
            threshold: 10f64.powf(self.core.mean()),
            sd: Some(self.core.sd()),
            interval: Some((
                10f64.powf(self.core.quantile(0.025)),
                10f64.powf(self.core.quantile(0.975)),
            )),
            method: "posterior_mean",
        })
    }

    /// Below (above) range when the posterior mean is below (above) the contrasts tested.
    pub fn censoring(&self) -> Option<Censor> {
        self.stop?;
        let m = self.core.mean();
        if m < self.s.low.log10() {
            Some(Censor::BelowRange)
        } else if m > self.s.high.log10() {
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
    use super::super::testing::{weibull_inverse, Rng};
    use super::*;

    #[test]
    fn pelli_quantile_order_for_2afc() {
        let q = QuestCore::new(0.0, 3.0, 0.82, 3.5, 0.01, 0.5, 0.01, None, true).unwrap();
        assert!(
            (q.quantile_order() - 0.5898).abs() < 5e-5,
            "{}",
            q.quantile_order()
        );
    }

    /// PsychoPy's `TestQuestHandler`: a linear scale, unnormalised posterior.
    #[test]
    #[allow(clippy::excessive_precision)]
    fn psychopy_quest_vector() {
        let mut q =
            QuestCore::new(50.0, 50.0, 0.82, 3.5, 0.01, 0.5, 0.01, Some(100.0), false).unwrap();
        assert_eq!(q.len(), 10001);
        assert_eq!(q.x[0], -50.0);
        assert_eq!(q.x[10000], 50.0);
        let want = [
            50.0,
            45.139710407074872,
            37.291086503930742,
            58.297413127139947,
            80.182967131096547,
            75.295251409003527,
            71.57627192423783,
            79.881680484036906,
            90.712313302815517,
            88.265808957695796,
        ];
        let responses = [1, 1, 0, 0, 1, 1, 0, 0, 1, 1];
        let mut next: f64 = 50.0;
        for (w, r) in want.iter().zip(responses) {
            assert!((next - w).abs() / w < 1e-6, "{next} vs {w}");
            q.update(f64::clamp(next, 0.0, 100.0), r == 1);
            next = q.quantile(q.quantile_order());
        }
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        assert!(rel(q.mean(), 86.0772169427) < 1e-6, "{}", q.mean());
        assert!(rel(q.mode(), 80.11) < 1e-6, "{}", q.mode());
        assert!(rel(q.quantile(q.quantile_order()), 86.3849031085) < 1e-6);
    }

    #[test]
    fn normalising_changes_no_estimate() {
        let mk = |n| QuestCore::new(-1.0, 2.0, 0.75, 3.5, 0.01, 0.5, 0.01, Some(6.0), n).unwrap();
        let (mut a, mut b) = (mk(true), mk(false));
        for (i, r) in [true, true, false, true, false, false, true, true]
            .iter()
            .enumerate()
        {
            let x = -1.0 - 0.1 * i as f64;
            a.update(x, *r);
            b.update(x, *r);
        }
        assert!((a.mean() - b.mean()).abs() < 1e-12);
        assert!((a.quantile(0.3) - b.quantile(0.3)).abs() < 1e-12);
        assert_eq!(a.mode(), b.mode());
    }

    fn settings() -> QuestSettings {
        QuestSettings {
            start: 0.1,
            start_sd: 2.0,
            low: 1e-4,
            high: 1.0,
            target: 0.75,
            beta: 3.5,
            delta: 0.01,
            gamma: 0.5,
            grain: 0.01,
            method: QuestMethod::Quantile,
            trials: 64,
            stop_interval: None,
        }
    }

    /// On a simulated Weibull observer whose slope matches QUEST's, the posterior mean
    /// lands near the 75 % contrast, and the 95 % interval usually holds it.
    #[test]
    fn finds_a_simulated_threshold() {
        let (alpha, beta) = (0.02, 3.5);
        let p = super::super::testing::weibull(alpha, beta, 0.0);
        let truth = weibull_inverse(alpha, beta, 0.75);
        let mut rng = Rng(3);
        let (mut errs, mut covered) = (Vec::new(), 0);
        for _ in 0..100 {
            let mut q = Quest::from_plan(&settings());
            while let Some(r) = q.next() {
                q.record(rng.binomial(1, p(r.contrast)));
            }
            assert_eq!(q.stop_reason(), Some(Stop::Trials));
            assert_eq!(q.trace().len(), 64);
            let e = q.estimate().unwrap();
            errs.push((e.threshold / truth).log10());
            let (lo, hi) = e.interval.unwrap();
            covered += usize::from(lo <= truth && truth <= hi);
        }
        let mean = errs.iter().sum::<f64>() / errs.len() as f64;
        eprintln!("QUEST: mean log10 error {mean:+.4}, 95% interval covered {covered}/100");
        assert!(mean.abs() < 0.05, "{mean}");
        assert!(covered >= 85, "{covered}");
    }

    #[test]
    fn stops_on_the_interval_width() {
        let p = super::super::testing::weibull(0.02, 3.5, 0.0);
        let mut s = settings();
        s.stop_interval = Some(0.3);
        s.trials = 500;
        let mut rng = Rng(9);
        let mut q = Quest::from_plan(&s);
        while let Some(r) = q.next() {
            q.record(rng.binomial(1, p(r.contrast)));
        }
        assert!(q.trace().len() < 500);
        assert_eq!(q.stop_reason(), Some(Stop::Precision));
        let c = q.core();
        assert!(c.quantile(0.95) - c.quantile(0.05) < 0.3);
        assert_eq!(q.censoring(), None);
    }

    #[test]
    fn a_perfect_observer_is_below_range() {
        let mut q = Quest::from_plan(&settings());
        while q.next().is_some() {
            q.record(1);
        }
        assert_eq!(q.censoring(), Some(Censor::BelowRange));
        assert!(q.trace().iter().all(|t| t.contrast >= 1e-4));
        let mut q = Quest::from_plan(&settings());
        while q.next().is_some() {
            q.record(0);
        }
        assert_eq!(q.censoring(), Some(Censor::AboveRange));
        assert!(q.trace().iter().all(|t| t.contrast <= 1.0));
    }
}
