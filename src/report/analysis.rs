//! Psychometric fits of a frequency's trials, and the threshold the results report.

use super::{pooled, sensitivity, FitSummary, FrequencyResult};
use crate::plan::{self, Estimation, Likelihood, Plan, ThresholdFrom};
use crate::psychometric::{
    bootstrap, fit, Block, BootstrapOptions, Estimate, FitOptions, FitWarning, Guess, Lapse,
    Sigmoid,
};
use crate::staircase::Censor;
use crate::stimuli::rng;
use rand::RngCore;

/// The fit options of a plan's `fit` block (`None` for `fit none`): 2AFC, so the guess
/// rate is fixed at 0.5.
pub fn fit_options(f: &plan::Fit) -> Option<FitOptions> {
    let sigmoid = match f.function? {
        plan::Sigmoid::Weibull => Sigmoid::Weibull,
        plan::Sigmoid::Logistic => Sigmoid::Logistic,
        plan::Sigmoid::Gaussian => Sigmoid::Norm,
        plan::Sigmoid::Gumbel => Sigmoid::Gumbel,
    };
    Some(FitOptions {
        sigmoid,
        guess: Guess::Fixed(0.5),
        lapse: if f.lapse.0 == f.lapse.1 {
            Lapse::Fixed(f.lapse.0)
        } else {
            Lapse::Free { max: f.lapse.1 }
        },
        overdispersion: f.likelihood == Likelihood::BetaBinomial,
        estimate: match f.estimate {
            Estimation::Ml => Estimate::MaxLikelihood,
            Estimation::Map => Estimate::Map,
        },
        ..FitOptions::default()
    })
}

/// Fits the plan's psychometric function to `r`'s trials (pooled by contrast) and sets the
/// reported threshold, interval and censoring from the fit or the procedure, as the plan's
/// `fit` block says. The bootstrap is seeded by the plan's seed, the frequency and the
/// repeat. Data a function cannot be fitted to (fewer than two levels) leave the
/// procedure's threshold in place.
pub fn analyse(plan: &Plan, r: &mut FrequencyResult) {
    let Some(mut options) = fit_options(&plan.fit) else {
        return;
    };
    // The task's guess rate is the function's lower asymptote (½ for the tutorial's 2AFC).
    if let Some(d) = &plan.design {
        options.guess = Guess::Fixed(d.task.guess_rate());
    }
    let blocks: Vec<Block> = pooled(r)
        .into_iter()
        .filter(|b| b.trials > 0 && (b.level > 0.0 || !options.sigmoid.log_axis()))
        .collect();
    let Ok(f) = fit(&blocks, &options) else {
        return;
    };
    let level = plan.fit.level;
    let threshold = f.threshold_at(level).unwrap_or(f64::INFINITY);
    let boot = (plan.fit.bootstrap > 0)
        .then(|| {
            let seed = rng::stream(
                plan.seed,
                "fit-bootstrap",
                (u64::from(r.repeat) << 32) ^ r.frequency.to_bits(),
            )
            .next_u64();
            bootstrap(
                &blocks,
                &options,
                &f,
                &BootstrapOptions {
                    samples: plan.fit.bootstrap,
                    ci: plan.fit.ci,
                    pc: Some(level),
                    seed,
                },
            )
            .ok()
        })
        .flatten();
    // Censored: the data carry no crossing (every trial right, or none above chance), or
    // the crossing lies outside the contrasts the procedure could test. A threshold a
    // little outside the levels actually tested but inside that range is an extrapolation
    // of the fitted function, not a bound.
    let (low, high) = plan.staircase.range();
    let censored = if f.warnings.contains(&FitWarning::AllCorrect) || threshold < low {
        Some(Censor::BelowRange)
    } else if f.warnings.contains(&FitWarning::NoneAboveChance)
        || !threshold.is_finite()
        || threshold > high
    {
        Some(Censor::AboveRange)
    } else {
        None
    };
    let summary = FitSummary {
        function: format!("{:?}", plan.fit.function.unwrap_or(plan::Sigmoid::Weibull))
            .to_lowercase(),
        threshold,
        ci: boot
            .as_ref()
            .map(|b| (b.threshold_ci[0], b.threshold_ci[1])),
        params: [f.m, f.width, f.lapse, f.guess],
        deviance: f.deviance,
        deviance_p: boot.as_ref().map(|b| b.deviance_p),
    };
    if plan.fit.threshold == ThresholdFrom::Fit {
        // A censored threshold is reported as the bound the data support, the edge of the
        // contrasts tested (above the highest, below the lowest), not as the fitted
        // function's extrapolation, which stays in `fit.threshold` (`fit_threshold`).
        let tested = |pick: fn(f64, f64) -> f64| {
            blocks
                .iter()
                .map(|b| b.level)
                .reduce(pick)
                .unwrap_or(threshold)
        };
        let reported = match censored {
            Some(Censor::AboveRange) => tested(f64::max),
            Some(Censor::BelowRange) => tested(f64::min),
            _ => threshold,
        };
        r.threshold = reported;
        r.ci = if censored.is_some() { None } else { summary.ci };
        r.sensitivity = sensitivity(reported, plan.test.reference);
        r.censored = r.censored.or(censored);
    }
    r.fit = Some(summary);
}
