//! Adaptive procedures that find a threshold contrast. Pure code: a procedure proposes a
//! contrast, the caller measures accuracy there, and the procedure updates. That keeps it
//! testable against synthetic observers without libtorch, and lets the interpreter advance
//! the staircases of every frequency in lockstep (one batch per step).

use crate::plan::Staircase;
use serde::{Deserialize, Serialize};

/// The tutorial's bisection (also osculari's `midpoint`).
///
/// Starting with `low`, `high` and `mid = start`: measure accuracy at `mid`;
/// if `|accuracy − target| < tolerance`, stop; if accuracy is above the target, the
/// threshold is lower: `(low, mid, high) ← (low, (low + mid)/2, mid)`; otherwise
/// `(low, mid, high) ← (mid, (mid + high)/2, high)`. After `max_steps` updates it stops
/// (the tutorial's `attempt_i == 20`: at most `max_steps + 1` measurements). The threshold
/// is the last contrast measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Bisection {
    low: f64,
    mid: f64,
    high: f64,
    target: f64,
    tolerance: f64,
    max_steps: u32,
    trace: Vec<Step>,
    stop: Option<Stop>,
}

/// One measurement of a staircase.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 0-based index of the measurement.
    pub step: u32,
    /// Contrast tested.
    pub contrast: f64,
    /// Trials run there.
    #[serde(default)]
    pub trials: u32,
    /// Of which correct.
    #[serde(default)]
    pub correct: u32,
    /// Proportion correct measured there.
    pub accuracy: f64,
}

/// Why a staircase stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stop {
    /// Accuracy came within the tolerance of the target.
    Converged,
    /// The step cap was reached first.
    MaxSteps,
}

impl Bisection {
    /// The staircase a plan's `staircase bisection { … }` block describes.
    pub fn from_plan(staircase: &Staircase) -> Self {
        let Staircase::Bisection {
            start,
            low,
            high,
            target,
            tolerance,
            max_steps,
        } = *staircase;
        Self::new(start, low, high, target, tolerance, max_steps)
    }

    /// The most measurements it can take (`max_steps` updates, so one more measurement).
    pub fn max_measurements(&self) -> u32 {
        self.max_steps.saturating_add(1)
    }

    /// A new staircase. `low < start < high`, `tolerance > 0` (the planner guarantees it).
    pub fn new(
        start: f64,
        low: f64,
        high: f64,
        target: f64,
        tolerance: f64,
        max_steps: u32,
    ) -> Self {
        Self {
            low,
            mid: start,
            high,
            target,
            tolerance,
            max_steps,
            trace: Vec::new(),
            stop: None,
        }
    }

    /// The contrast to measure next, or `None` when finished.
    pub fn next_contrast(&self) -> Option<f64> {
        self.stop.is_none().then_some(self.mid)
    }

    /// Records the accuracy measured at [`next_contrast`](Self::next_contrast).
    /// Ignored once finished.
    pub fn observe(&mut self, accuracy: f64) {
        if self.stop.is_some() {
            return;
        }
        let step = self.trace.len() as u32;
        self.trace.push(Step {
            step,
            contrast: self.mid,
            trials: 0,
            correct: 0,
            accuracy,
        });
        let diff = accuracy - self.target;
        if diff.abs() < self.tolerance {
            self.stop = Some(Stop::Converged);
        } else if step >= self.max_steps {
            self.stop = Some(Stop::MaxSteps);
        } else if diff > 0.0 {
            let new_mid = (self.low + self.mid) / 2.0;
            self.high = self.mid;
            self.mid = new_mid;
        } else {
            let new_mid = (self.high + self.mid) / 2.0;
            self.low = self.mid;
            self.mid = new_mid;
        }
    }

    /// True once stopped.
    pub fn is_done(&self) -> bool {
        self.stop.is_some()
    }

    /// Why it stopped, if it has.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    /// Every measurement so far.
    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    /// The threshold: the last contrast measured (`None` before the first measurement).
    pub fn threshold(&self) -> Option<f64> {
        self.trace.last().map(|s| s.contrast)
    }

    /// Runs to the end against an observer `accuracy(contrast)`.
    pub fn run(mut self, mut accuracy: impl FnMut(f64) -> f64) -> Self {
        while let Some(c) = self.next_contrast() {
            self.observe(accuracy(c));
        }
        self
    }
}

// --- Interface shim (replaced by the procedures branch) ---

/// What a procedure asks for next: `trials` trials at `contrast`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// Contrast.
    pub contrast: f64,
    /// Trials.
    pub trials: u32,
}

/// Why a threshold is not a measurement inside the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Censor {
    /// Below the lowest contrast tested.
    BelowRange,
    /// Above the range.
    AboveRange,
    /// Did not converge.
    NotConverged,
}

impl Censor {
    /// Name in csf.csv.
    pub fn name(self) -> &'static str {
        match self {
            Censor::BelowRange => "below_range",
            Censor::AboveRange => "above_range",
            Censor::NotConverged => "not_converged",
        }
    }
}

impl Stop {
    /// Name in csf.csv.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Converged => "converged",
            Stop::MaxSteps => "max_steps",
        }
    }
}

/// A procedure's own threshold estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Threshold contrast.
    pub threshold: f64,
    /// Standard deviation, where the procedure has one.
    pub sd: Option<f64>,
    /// Interval, where the procedure has one.
    pub interval: Option<(f64, f64)>,
    /// How it was computed.
    pub method: &'static str,
}

/// Any procedure.
#[derive(Clone, Debug, PartialEq)]
pub enum Procedure {
    /// Bisection.
    Bisection(Bisection, u32),
}

impl Procedure {
    /// From the plan.
    pub fn from_plan(s: &Staircase, trials_per_level: u32) -> Self {
        Procedure::Bisection(Bisection::from_plan(s), trials_per_level)
    }
    /// Next request.
    pub fn next(&self) -> Option<Request> {
        let Procedure::Bisection(b, t) = self;
        b.next_contrast().map(|c| Request { contrast: c, trials: *t })
    }
    /// Records the last request's outcome.
    pub fn record(&mut self, correct: u32) {
        let Procedure::Bisection(b, t) = self;
        b.observe(f64::from(correct) / f64::from((*t).max(1)));
        if let Some(s) = b.trace.last_mut() {
            s.trials = *t;
            s.correct = correct;
        }
    }
    /// Done.
    pub fn is_done(&self) -> bool {
        let Procedure::Bisection(b, _) = self;
        b.is_done()
    }
    /// Stop.
    pub fn stop_reason(&self) -> Option<Stop> {
        let Procedure::Bisection(b, _) = self;
        b.stop_reason()
    }
    /// Trace.
    pub fn trace(&self) -> &[Step] {
        let Procedure::Bisection(b, _) = self;
        b.trace()
    }
    /// Estimate.
    pub fn estimate(&self) -> Option<Estimate> {
        let Procedure::Bisection(b, _) = self;
        b.threshold().map(|t| Estimate {
            threshold: t,
            sd: None,
            interval: None,
            method: "last_contrast",
        })
    }
    /// Censoring.
    pub fn censoring(&self) -> Option<Censor> {
        None
    }
    /// Most trials.
    pub fn max_trials(&self) -> u64 {
        let Procedure::Bisection(b, t) = self;
        u64::from(b.max_measurements()) * u64::from(*t)
    }
    /// Name.
    pub fn name(&self) -> &'static str {
        "bisection"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tutorial's parameters.
    fn tutorial() -> Bisection {
        Bisection::new(0.5, 0.0, 1.0, 0.749, 1e-4, 20)
    }

    #[test]
    fn built_from_the_plan_of_the_tutorial_file() {
        let file = crate::source::SourceFile::new(
            "contrast_csf.psy",
            include_str!("../../experiments/contrast_csf.psy"),
        );
        let plan = crate::plan::compile(&file)
            .plan
            .expect("the tutorial file plans");
        let s = Bisection::from_plan(&plan.staircase);
        assert_eq!(s, tutorial());
        assert_eq!(s.next_contrast(), Some(0.5));
        assert_eq!(s.max_measurements(), 21);
    }

    /// A 2AFC Weibull observer: 0.5 + 0.5·(1 − exp(−(c/α)^β)).
    fn weibull(alpha: f64, beta: f64) -> impl Fn(f64) -> f64 {
        move |c: f64| 0.5 + 0.5 * (1.0 - (-(c / alpha).powf(beta)).exp())
    }

    fn weibull_inverse(alpha: f64, beta: f64, p: f64) -> f64 {
        alpha * (-(1.0 - (p - 0.5) / 0.5).ln()).powf(1.0 / beta)
    }

    /// The tutorial's `midpoint` and loop, transcribed literally, for comparison.
    fn reference(acc: impl Fn(f64) -> f64, th: f64, ep: f64, cap: u32) -> Vec<(f64, f64)> {
        let (mut low, mut high) = (0.0_f64, 1.0_f64);
        let mut mid = (low + high) / 2.0;
        let mut res = Vec::new();
        let mut attempt = 0;
        loop {
            let a = acc(mid);
            res.push((mid, a));
            let d = a - th;
            let new = if d.abs() < ep {
                None
            } else if d > 0.0 {
                Some((low, (low + mid) / 2.0, mid))
            } else {
                Some((mid, (high + mid) / 2.0, high))
            };
            match new {
                Some(n) if attempt != cap => (low, mid, high) = n,
                _ => break,
            }
            attempt += 1;
        }
        res
    }

    #[test]
    fn equals_the_tutorial_loop_for_many_observers() {
        for (alpha, beta) in [(0.003, 2.0), (0.05, 3.5), (0.4, 1.2), (0.9, 5.0)] {
            for n in [13u32, 16, 24, 1000] {
                // Quantised to n trials as a real test set is.
                let obs = |c: f64| (weibull(alpha, beta)(c) * f64::from(n)).round() / f64::from(n);
                let ours = tutorial().run(obs);
                let theirs = reference(obs, 0.749, 1e-4, 20);
                let got: Vec<(f64, f64)> = ours
                    .trace()
                    .iter()
                    .map(|s| (s.contrast, s.accuracy))
                    .collect();
                assert_eq!(got, theirs, "α={alpha} β={beta} n={n}");
                assert_eq!(ours.threshold(), theirs.last().map(|t| t.0));
            }
        }
    }

    #[test]
    fn converges_on_a_continuous_observer() {
        for (alpha, beta) in [(0.01, 2.0), (0.2, 3.0), (0.6, 1.5)] {
            let s = Bisection::new(0.5, 0.0, 1.0, 0.75, 1e-6, 60).run(weibull(alpha, beta));
            let truth = weibull_inverse(alpha, beta, 0.75);
            assert_eq!(s.stop_reason(), Some(Stop::Converged));
            let t = s.threshold().unwrap();
            assert!(
                (t - truth).abs() / truth < 1e-3,
                "α={alpha}: {t} vs {truth}"
            );
        }
    }

    #[test]
    fn thirteen_trials_never_meet_0_749_and_take_21_steps() {
        // k/13 is never within 1e-4 of 0.749, the tutorial's quirk.
        let obs = |c: f64| (weibull(0.05, 3.0)(c) * 13.0).round() / 13.0;
        let s = tutorial().run(obs);
        assert_eq!(s.trace().len(), 21);
        assert_eq!(s.stop_reason(), Some(Stop::MaxSteps));
    }

    #[test]
    fn perfect_and_chance_observers_walk_to_the_ends() {
        let s = tutorial().run(|_| 1.0);
        assert_eq!(s.threshold(), Some(0.5_f64.powi(21)));
        let s = tutorial().run(|_| 0.5);
        let t = s.threshold().unwrap();
        assert!((t - (1.0 - 0.5_f64.powi(21))).abs() < 1e-15, "{t}");
    }

    #[test]
    fn stops_immediately_on_target_and_ignores_later_observations() {
        let mut s = Bisection::new(0.5, 0.0, 1.0, 0.75, 1e-4, 20);
        assert_eq!(s.next_contrast(), Some(0.5));
        s.observe(0.75);
        assert!(s.is_done());
        assert_eq!(s.next_contrast(), None);
        s.observe(0.1);
        assert_eq!(s.trace().len(), 1);
        assert_eq!(s.threshold(), Some(0.5));
    }

    #[test]
    fn a_known_sequence_by_hand() {
        let mut s = tutorial();
        for acc in [1.0, 0.5, 0.5, 1.0] {
            s.observe(acc);
        }
        let mids: Vec<f64> = s.trace().iter().map(|t| t.contrast).collect();
        // 0.5 → above → 0.25 → below → (0.25+0.5)/2 = 0.375 → below → 0.4375
        assert_eq!(mids, [0.5, 0.25, 0.375, 0.4375]);
        assert_eq!(s.next_contrast(), Some((0.4375 + 0.375) / 2.0));
    }
}
