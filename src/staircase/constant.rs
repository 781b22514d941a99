//! The method of constant stimuli: fixed levels, ascending, a fixed number of trials each.

use super::{Censor, Estimate, Request, Step, Stop};
use crate::plan::ConstantSettings;

/// Measures every level in ascending order, `repeats × trials_per_level` trials each (so
/// each of the test's conditions is run equally often). The psychometric function is
/// fitted elsewhere; its own estimate is the target's crossing interpolated linearly in
/// log10 contrast between the last level below the target and the first at or above it
/// after that (the highest such crossing, so a dip at low contrast does not count).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantStimuli {
    levels: Vec<f64>,
    trials: u32,
    target: f64,
    trace: Vec<Step>,
    stop: Option<Stop>,
}

impl ConstantStimuli {
    /// The procedure `settings` describe, with the test's `trials_per_level` conditions.
    pub fn from_plan(settings: &ConstantSettings, trials_per_level: u32) -> Self {
        let mut levels = settings.levels.clone();
        levels.sort_by(f64::total_cmp);
        let trials = settings
            .repeats
            .max(1)
            .saturating_mul(trials_per_level.max(1));
        Self {
            stop: levels.is_empty().then_some(Stop::Completed),
            levels,
            trials,
            target: settings.target,
            trace: Vec::new(),
        }
    }

    /// The next level, with its trials.
    pub fn next(&self) -> Option<Request> {
        if self.stop.is_some() {
            return None;
        }
        Some(Request {
            contrast: self.levels[self.trace.len()],
            trials: self.trials,
        })
    }

    /// Records `correct` of the trials at the last level.
    pub fn record(&mut self, correct: u32) {
        let Some(r) = self.next() else { return };
        self.trace.push(Step::new(
            self.trace.len(),
            r.contrast,
            r.trials,
            correct.min(r.trials),
        ));
        if self.trace.len() == self.levels.len() {
            self.stop = Some(Stop::Completed);
        }
    }

    /// Why it stopped, if it has.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    /// Every level measured so far.
    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    /// The interpolated crossing of the target, `None` while not crossed.
    pub fn estimate(&self) -> Option<Estimate> {
        let t = &self.trace;
        // The last level below the target followed by one at or above it.
        let i = (0..t.len().saturating_sub(1))
            .rev()
            .find(|&i| t[i].accuracy < self.target && t[i + 1].accuracy >= self.target)?;
        let (a, b) = (&t[i], &t[i + 1]);
        let threshold = if a.contrast > 0.0 {
            let (la, lb) = (a.contrast.log10(), b.contrast.log10());
            let f = (self.target - a.accuracy) / (b.accuracy - a.accuracy);
            10f64.powf(la + f * (lb - la))
        } else {
            let f = (self.target - a.accuracy) / (b.accuracy - a.accuracy);
            a.contrast + f * (b.contrast - a.contrast)
        };
        Some(Estimate {
            threshold,
            sd: None,
            interval: None,
            method: "interpolated_crossing",
        })
    }

    /// Below range when even the lowest level reached the target, above range when no
    /// level did.
    pub fn censoring(&self) -> Option<Censor> {
        self.stop?;
        if self.trace.is_empty() {
            return None;
        }
        if self.trace.iter().all(|s| s.accuracy < self.target) {
            Some(Censor::AboveRange)
        } else if self.trace[0].accuracy >= self.target {
            Some(Censor::BelowRange)
        } else {
            None
        }
    }

    /// The most trials it can run.
    pub fn max_trials(&self) -> u64 {
        self.levels.len() as u64 * u64::from(self.trials)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{weibull, weibull_inverse};
    use super::super::Procedure;
    use super::*;
    use crate::plan::Staircase;

    fn plan(levels: Vec<f64>) -> Staircase {
        Staircase::Constant(ConstantSettings {
            levels,
            repeats: 2,
            target: 0.75,
        })
    }

    fn logspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (n - 1) as f64))
            .collect()
    }

    #[test]
    fn measures_every_level_in_order_with_balanced_trials() {
        let p = Procedure::from_plan(&plan(vec![0.1, 0.01, 0.05]), 24);
        assert_eq!(p.max_trials(), 3 * 48);
        let p = p.run(|c, n| {
            assert_eq!(n, 48);
            (weibull(0.03, 3.0, 0.0)(c) * f64::from(n)).round() as u32
        });
        let cs: Vec<f64> = p.trace().iter().map(|s| s.contrast).collect();
        assert_eq!(cs, [0.01, 0.05, 0.1]);
        assert_eq!(p.stop_reason(), Some(Stop::Completed));
        assert!(p.next().is_none());
    }

    #[test]
    fn interpolates_the_crossing_in_log_contrast() {
        let (alpha, beta) = (0.03, 3.0);
        let obs = weibull(alpha, beta, 0.0);
        let p = Procedure::from_plan(&plan(logspace(-3.0, 0.0, 31)), 500)
            .run(|c, n| (obs(c) * f64::from(n)).round() as u32);
        let e = p.estimate().unwrap();
        let truth = weibull_inverse(alpha, beta, 0.75);
        assert!(
            (e.threshold / truth).log10().abs() < 0.02,
            "{} vs {truth}",
            e.threshold
        );
        assert_eq!(p.censoring(), None);
    }

    #[test]
    fn censored_at_both_ends() {
        let p = Procedure::from_plan(&plan(logspace(-3.0, 0.0, 7)), 24).run(|_, n| n);
        assert_eq!(p.censoring(), Some(Censor::BelowRange));
        assert_eq!(p.estimate(), None);
        let p = Procedure::from_plan(&plan(logspace(-3.0, 0.0, 7)), 24).run(|_, n| n / 2);
        assert_eq!(p.censoring(), Some(Censor::AboveRange));
        assert_eq!(p.estimate(), None);
    }
}
