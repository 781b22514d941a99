//! Bisection of a contrast interval: the tutorial's rule and an unbiased bracket rule.

use super::{Censor, Estimate, Request, Step, Stop};
use crate::plan::{BisectionStop, Staircase};

/// Accuracies this close to the target count as equal to it (they are ratios k/n).
const TIE: f64 = 1e-9;

/// Bisection (the tutorial's, also osculari's `midpoint`), with two stop rules.
///
/// **Tolerance** (the tutorial's rule). Starting with `low`, `high` and `mid = start`:
/// measure accuracy at `mid`; if `|accuracy − target| < tolerance`, stop; if accuracy is
/// above the target, the threshold is lower: `(low, mid, high) ← (low, (low + mid)/2,
/// mid)`; otherwise `(low, mid, high) ← (mid, (mid + high)/2, high)`. After `max_steps`
/// updates it stops (the tutorial's `attempt_i == 20`: at most `max_steps + 1`
/// measurements). The threshold is the last contrast measured. With accuracies quantised
/// to k/n this stops at the first midpoint that lands anywhere on the plateau where the
/// measured accuracy equals the target, so the threshold sits on a dyadic fraction of the
/// range, not on the crossing.
///
/// **Bracket.** Accuracy measured on n trials is a staircase of steps k/n; the contrasts
/// where it equals the target form a plateau `[e₁, e₂)` whose middle is the crossing of
/// the underlying psychometric function. Two brackets are kept: one around `e₁` (the
/// lowest contrast with accuracy ≥ target) and one around `e₂` (the lowest with
/// accuracy above the target). Until a measurement hits the target exactly they are the same bracket; each
/// step bisects (arithmetically, as the tutorial) the wider of the two in log10 units. It
/// stops when both are narrower than `bracket` (log10 units), and the threshold is the
/// geometric mean of their midpoints: the middle of the plateau. A measurement that falls
/// outside a bracket (a noisy, non-monotonic observer) leaves that bracket unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct Bisection {
    low: f64,
    mid: f64,
    high: f64,
    target: f64,
    tolerance: f64,
    max_steps: u32,
    rule: BisectionStop,
    bracket: f64,
    /// Second bracket (bracket rule): around the upper edge of the target's plateau.
    low2: f64,
    high2: f64,
    /// The range searched, for censoring.
    range: (f64, f64),
    trials: u32,
    trace: Vec<Step>,
    stop: Option<Stop>,
}

impl Bisection {
    /// The staircase a plan's `staircase bisection { … }` block describes, fed
    /// accuracies through [`observe`](Self::observe) (its trace does not count trials).
    /// `None` for other procedures. [`Procedure::from_plan`](super::Procedure::from_plan)
    /// builds one that requests and counts the test's trials.
    pub fn from_plan(staircase: &Staircase) -> Option<Self> {
        matches!(staircase, Staircase::Bisection { .. }).then(|| {
            let mut s = Self::from_settings(staircase, 1);
            s.trials = 0;
            s
        })
    }

    /// As [`from_plan`](Self::from_plan), requesting `trials` trials per step.
    pub(crate) fn from_settings(staircase: &Staircase, trials: u32) -> Self {
        let Staircase::Bisection {
            start,
            low,
            high,
            target,
            tolerance,
            max_steps,
            stop,
            bracket,
        } = *staircase
        else {
            unreachable!("Bisection::from_settings takes a bisection");
        };
        let mut s = Self::new(start, low, high, target, tolerance, max_steps);
        s.rule = stop;
        s.bracket = bracket;
        s.trials = trials.max(1);
        s
    }

    /// A new staircase with the tutorial's stop rule. `low < start < high`,
    /// `tolerance > 0` (the planner guarantees it).
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
            rule: BisectionStop::Tolerance,
            bracket: 0.0,
            low2: low,
            high2: high,
            range: (low, high),
            trials: 0,
            trace: Vec::new(),
            stop: None,
        }
    }

    /// A new staircase with the bracket rule: stops when the target's crossing is
    /// bracketed within `bracket` log10 units.
    pub fn bracketing(
        start: f64,
        low: f64,
        high: f64,
        target: f64,
        bracket: f64,
        max_steps: u32,
    ) -> Self {
        let mut s = Self::new(start, low, high, target, 0.0, max_steps);
        s.rule = BisectionStop::Bracket;
        s.bracket = bracket;
        s
    }

    /// The most measurements it can take (`max_steps` updates, so one more measurement).
    pub fn max_measurements(&self) -> u32 {
        self.max_steps.saturating_add(1)
    }

    /// The most trials it can run.
    pub fn max_trials(&self) -> u64 {
        u64::from(self.max_measurements()) * u64::from(self.trials.max(1))
    }

    /// The contrast to measure next, or `None` when finished.
    pub fn next_contrast(&self) -> Option<f64> {
        self.stop.is_none().then_some(self.mid)
    }

    /// The next request: [`next_contrast`](Self::next_contrast) with the trials per step.
    pub fn next(&self) -> Option<Request> {
        self.next_contrast().map(|contrast| Request {
            contrast,
            trials: self.trials.max(1),
        })
    }

    /// Records `correct` of the requested trials at the last request.
    pub fn record(&mut self, correct: u32) {
        let correct = correct.min(self.trials);
        self.push(
            self.trials,
            correct,
            f64::from(correct) / f64::from(self.trials),
        );
    }

    /// Records the accuracy measured at [`next_contrast`](Self::next_contrast) (the
    /// trace's `trials` and `correct` stay 0 unless the staircase counts trials).
    /// Ignored once finished.
    pub fn observe(&mut self, accuracy: f64) {
        let correct = (accuracy * f64::from(self.trials)).round().max(0.0) as u32;
        self.push(self.trials, correct, accuracy);
    }

    fn push(&mut self, trials: u32, correct: u32, accuracy: f64) {
        if self.stop.is_some() {
            return;
        }
        let step = self.trace.len();
        let mut s = Step::new(step, self.mid, trials, correct);
        s.accuracy = accuracy;
        self.trace.push(s);
        match self.rule {
            BisectionStop::Tolerance => self.tutorial_update(step as u32, accuracy),
            BisectionStop::Bracket => self.bracket_update(step as u32, accuracy),
        }
    }

    fn tutorial_update(&mut self, step: u32, accuracy: f64) {
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

    fn bracket_update(&mut self, step: u32, accuracy: f64) {
        let c = self.mid;
        let diff = accuracy - self.target;
        let inside = |lo: f64, hi: f64| c > lo && c < hi;
        // Bracket 1 (low, high) holds e₁: accuracy ≥ target moves its top down.
        if inside(self.low, self.high) {
            if diff > -TIE {
                self.high = c;
            } else {
                self.low = c;
            }
        }
        // Bracket 2 (low2, high2) holds e₂: accuracy > target moves its top down.
        if inside(self.low2, self.high2) {
            if diff > TIE {
                self.high2 = c;
            } else {
                self.low2 = c;
            }
        }
        let (w1, w2) = (width(self.low, self.high), width(self.low2, self.high2));
        if w1 < self.bracket && w2 < self.bracket {
            self.stop = Some(Stop::Bracket);
        } else if step >= self.max_steps {
            self.stop = Some(Stop::MaxSteps);
        } else if w1 >= w2 {
            self.mid = (self.low + self.high) / 2.0;
        } else {
            self.mid = (self.low2 + self.high2) / 2.0;
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

    /// The threshold: with the tutorial's rule the last contrast measured; with the
    /// bracket rule the middle of the plateau bracketed so far (`None` before the first
    /// measurement).
    pub fn threshold(&self) -> Option<f64> {
        let last = self.trace.last()?.contrast;
        match self.rule {
            BisectionStop::Tolerance => Some(last),
            BisectionStop::Bracket => {
                if self.low <= 0.0 || self.low2 <= 0.0 {
                    // Nothing below the target yet: the best guess is the lowest tested.
                    return Some(self.trace.iter().map(|s| s.contrast).fold(last, f64::min));
                }
                let m1 = (self.low + self.high) / 2.0;
                let m2 = (self.low2 + self.high2) / 2.0;
                Some((m1 * m2).sqrt())
            }
        }
    }

    /// [`threshold`](Self::threshold) as an [`Estimate`].
    pub fn estimate(&self) -> Option<Estimate> {
        let threshold = self.threshold()?;
        let (method, sd) = match self.rule {
            BisectionStop::Tolerance => ("last_contrast", None),
            BisectionStop::Bracket => {
                let w = width(self.low, self.high).max(width(self.low2, self.high2));
                ("bracket_midpoint", w.is_finite().then_some(w / 2.0))
            }
        };
        Some(Estimate {
            threshold,
            sd,
            interval: None,
            method,
        })
    }

    /// Below range when every measurement was above the target, above range when every
    /// one was below; with the bracket rule, not converged when it ran out of steps with a
    /// bracket still wider than `bracket`.
    pub fn censoring(&self) -> Option<Censor> {
        let stop = self.stop?;
        if self.trace.iter().all(|s| s.accuracy > self.target + TIE) && stop != Stop::Converged {
            return Some(Censor::BelowRange);
        }
        if self.trace.iter().all(|s| s.accuracy < self.target - TIE) && stop != Stop::Converged {
            return Some(Censor::AboveRange);
        }
        (self.rule == BisectionStop::Bracket && stop == Stop::MaxSteps)
            .then_some(Censor::NotConverged)
    }

    /// Runs to the end against an observer `accuracy(contrast)`.
    pub fn run(mut self, mut accuracy: impl FnMut(f64) -> f64) -> Self {
        while let Some(c) = self.next_contrast() {
            self.observe(accuracy(c));
        }
        self
    }

    /// The range it searches.
    pub fn range(&self) -> (f64, f64) {
        self.range
    }
}

/// Width of `lo..hi` in log10 units (infinite when `lo` is 0).
fn width(lo: f64, hi: f64) -> f64 {
    if lo <= 0.0 {
        f64::INFINITY
    } else {
        (hi / lo).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{weibull, weibull_inverse};
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
        let s = Bisection::from_plan(&plan.staircase).unwrap();
        assert_eq!(s, tutorial());
        assert_eq!(s.next_contrast(), Some(0.5));
        assert_eq!(s.max_measurements(), 21);
        let p = super::super::Procedure::from_plan(&plan.staircase, 13);
        assert_eq!(p.max_trials(), 21 * 13);
        assert_eq!(
            p.next(),
            Some(Request {
                contrast: 0.5,
                trials: 13
            })
        );
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
                let obs =
                    |c: f64| (weibull(alpha, beta, 0.0)(c) * f64::from(n)).round() / f64::from(n);
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
    fn record_counts_trials_like_observe() {
        let obs = |c: f64| (weibull(0.05, 3.5, 0.0)(c) * 24.0).round() as u32;
        let file = Staircase::Bisection {
            start: 0.5,
            low: 0.0,
            high: 1.0,
            target: 0.749,
            tolerance: 1e-4,
            max_steps: 20,
            stop: BisectionStop::Tolerance,
            bracket: 0.0,
        };
        let p = super::super::Procedure::from_plan(&file, 24).run(|c, n| {
            assert_eq!(n, 24);
            obs(c)
        });
        let by_accuracy = tutorial().run(|c| f64::from(obs(c)) / 24.0);
        let a: Vec<_> = p.trace().iter().map(|s| (s.contrast, s.accuracy)).collect();
        let b: Vec<_> = by_accuracy
            .trace()
            .iter()
            .map(|s| (s.contrast, s.accuracy))
            .collect();
        assert_eq!(a, b);
        assert!(p.trace().iter().all(|s| s.trials == 24));
        assert_eq!(p.estimate().unwrap().method, "last_contrast");
    }

    #[test]
    fn converges_on_a_continuous_observer() {
        for (alpha, beta) in [(0.01, 2.0), (0.2, 3.0), (0.6, 1.5)] {
            let s = Bisection::new(0.5, 0.0, 1.0, 0.75, 1e-6, 60).run(weibull(alpha, beta, 0.0));
            let truth = weibull_inverse(alpha, beta, 0.75);
            assert_eq!(s.stop_reason(), Some(Stop::Converged));
            let t = s.threshold().unwrap();
            assert!(
                (t - truth).abs() / truth < 1e-3,
                "α={alpha}: {t} vs {truth}"
            );
            let s =
                Bisection::bracketing(0.5, 0.0, 1.0, 0.75, 1e-4, 80).run(weibull(alpha, beta, 0.0));
            assert_eq!(s.stop_reason(), Some(Stop::Bracket));
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
        let obs = |c: f64| (weibull(0.05, 3.0, 0.0)(c) * 13.0).round() / 13.0;
        let s = tutorial().run(obs);
        assert_eq!(s.trace().len(), 21);
        assert_eq!(s.stop_reason(), Some(Stop::MaxSteps));
        assert_eq!(s.censoring(), None);
    }

    #[test]
    fn perfect_and_chance_observers_walk_to_the_ends() {
        let s = tutorial().run(|_| 1.0);
        assert_eq!(s.threshold(), Some(0.5_f64.powi(21)));
        assert_eq!(s.censoring(), Some(Censor::BelowRange));
        let s = tutorial().run(|_| 0.5);
        let t = s.threshold().unwrap();
        assert!((t - (1.0 - 0.5_f64.powi(21))).abs() < 1e-15, "{t}");
        assert_eq!(s.censoring(), Some(Censor::AboveRange));
        let s = Bisection::bracketing(0.5, 0.0, 1.0, 0.75, 0.01, 30).run(|_| 1.0);
        assert_eq!(s.censoring(), Some(Censor::BelowRange));
        assert_eq!(s.threshold(), Some(0.5_f64.powi(31)));
        let s = Bisection::bracketing(0.5, 0.0, 1.0, 0.75, 0.01, 30).run(|_| 0.5);
        assert_eq!(s.censoring(), Some(Censor::AboveRange));
    }

    #[test]
    fn a_bracket_that_runs_out_of_steps_is_not_converged() {
        let obs = |c: f64| (weibull(0.05, 3.0, 0.0)(c) * 24.0).round() / 24.0;
        let s = Bisection::bracketing(0.5, 0.0, 1.0, 0.75, 1e-6, 6).run(obs);
        assert_eq!(s.stop_reason(), Some(Stop::MaxSteps));
        assert_eq!(s.censoring(), Some(Censor::NotConverged));
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

    fn median(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        if n.is_multiple_of(2) {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        } else {
            xs[n / 2]
        }
    }

    /// Observers spread over thresholds and slopes, measured on 24 trials per level (the
    /// default test), target 0.75 (18/24 exactly). The tutorial's rule stops on the first
    /// midpoint inside the plateau where accuracy reads 18/24; the bracket rule finds the
    /// plateau's middle. Bias is log10(estimate / true 75 % contrast).
    #[test]
    fn the_bracket_rule_is_less_biased_than_the_tutorial_rule() {
        let n = 24.0;
        let (mut tut, mut brk) = (Vec::new(), Vec::new());
        for i in 0..60 {
            let alpha = 10f64.powf(-2.5 + 2.3 * f64::from(i) / 59.0);
            for beta in [1.0, 1.5, 2.0, 3.0] {
                let p = weibull(alpha, beta, 0.0);
                let obs = |c: f64| (p(c) * n).round() / n;
                let truth = weibull_inverse(alpha, beta, 0.75);
                let t = Bisection::new(0.5, 0.0, 1.0, 0.75, 1e-4, 20).run(obs);
                tut.push((t.threshold().unwrap() / truth).log10());
                let b = Bisection::bracketing(0.5, 0.0, 1.0, 0.75, 0.01, 40).run(obs);
                assert_eq!(b.stop_reason(), Some(Stop::Bracket), "α={alpha} β={beta}");
                brk.push((b.threshold().unwrap() / truth).log10());
            }
        }
        let abs_mean = |xs: &[f64]| xs.iter().map(|x| x.abs()).sum::<f64>() / xs.len() as f64;
        let (mt, mb) = (median(tut.clone()), median(brk.clone()));
        eprintln!(
            "median bias (log10): tutorial {mt:+.4}, bracket {mb:+.4}; mean |error|: {:.4} vs {:.4}",
            abs_mean(&tut),
            abs_mean(&brk)
        );
        assert!(mb.abs() < mt.abs(), "bracket {mb} vs tutorial {mt}");
        assert!(mb.abs() < 0.01, "{mb}");
        assert!(abs_mean(&brk) < abs_mean(&tut));
    }
}
