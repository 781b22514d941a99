//! Parametric bootstrap: simulate binomial data from a fit at the tested levels and trial
//! counts, refit each sample, and read percentile confidence intervals and the deviance's
//! p-value off the refits.

use super::{fit_from, Block, Fit, FitError, FitOptions, Problem};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What to bootstrap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapOptions {
    /// Simulated data sets B; default 1000. Each costs one fit (about a millisecond with
    /// overdispersion for 10–30 blocks; the samples run in parallel).
    pub samples: u32,
    /// Coverage of the percentile intervals; default 0.95.
    pub ci: f64,
    /// The proportion correct whose threshold (on ψ, through γ and λ) gets the interval;
    /// default `None`: the fit's own threshold, where S = `thresh_pc`.
    pub pc: Option<f64>,
    /// Seed of the simulation (ChaCha8, one stream per sample, so results do not depend on
    /// the thread count); default 0.
    pub seed: u64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            samples: 1000,
            ci: 0.95,
            pc: None,
            seed: 0,
        }
    }
}

/// The bootstrap's summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Samples simulated.
    pub samples: u32,
    /// Samples whose refit failed (they are left out of everything below).
    pub failed: u32,
    /// The interval coverage.
    pub ci: f64,
    /// The proportion correct of the threshold (`None`: S = `thresh_pc`).
    pub pc: Option<f64>,
    /// The threshold the interval is about, from the original fit, in stimulus units.
    pub threshold: f64,
    /// Percentile interval of the threshold, in stimulus units. A refit where ψ never
    /// reaches `pc` counts as a threshold of +∞ (or −∞ when ψ starts above it), so an
    /// interval can be open-ended.
    pub threshold_ci: [f64; 2],
    /// Standard deviation of the finite bootstrap thresholds (stimulus units).
    pub threshold_sd: f64,
    /// Refits whose threshold at `pc` was undefined (counted as ±∞ above).
    pub threshold_undefined: u32,
    /// Percentile interval of the width (the sigmoid's axis units).
    pub width_ci: [f64; 2],
    /// Percentile interval of the lapse rate.
    pub lapse_ci: [f64; 2],
    /// Fraction of refits whose deviance is at least the original fit's: the parametric
    /// bootstrap p-value of the goodness of fit.
    pub deviance_p: f64,
    /// The bootstrap thresholds, in sample order (±∞ where undefined).
    pub thresholds: Vec<f64>,
}

/// The p-quantile of sorted values, linear interpolation between order statistics.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = p * (sorted.len() - 1) as f64;
    let (i, frac) = (h.floor() as usize, h - h.floor());
    if i + 1 >= sorted.len() {
        return sorted[sorted.len() - 1];
    }
    if frac == 0.0 {
        return sorted[i];
    }
    sorted[i] + frac * (sorted[i + 1] - sorted[i])
}

fn interval(values: &[f64], ci: f64) -> [f64; 2] {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    [
        quantile(&v, (1.0 - ci) / 2.0),
        quantile(&v, (1.0 + ci) / 2.0),
    ]
}

/// A binomial draw by counting uniform variates below p (exact; O(n)).
fn binomial(rng: &mut ChaCha8Rng, n: u32, p: f64) -> u32 {
    (0..n)
        .filter(|_| ((rng.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p)
        .count() as u32
}

fn threshold_of(fit: &Fit, pc: Option<f64>) -> f64 {
    match pc {
        None => fit.threshold,
        Some(pc) => fit.threshold_at(pc).unwrap_or(if pc >= fit.guess {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        }),
    }
}

/// Parametric bootstrap of `fit` (made from `blocks` with `options`): `boot.samples` data
/// sets are drawn from the fitted ψ with the blocks' levels and trial counts (binomially:
/// the fitted overdispersion is not simulated) and refitted with the same options.
pub fn bootstrap(
    blocks: &[Block],
    options: &FitOptions,
    fit: &Fit,
    boot: &BootstrapOptions,
) -> Result<Bootstrap, FitError> {
    if !(boot.ci > 0.0 && boot.ci < 1.0) {
        return Err(FitError::InvalidOptions(format!(
            "the bootstrap ci must lie in (0, 1), not {}",
            boot.ci
        )));
    }
    if boot.samples == 0 {
        return Err(FitError::InvalidOptions(
            "the bootstrap needs at least one sample".into(),
        ));
    }
    let problem = Problem::new(blocks, options)?;
    let design: Vec<(f64, u32)> = problem.levels_and_trials().collect();
    let refits: Vec<Option<Fit>> = (0..boot.samples)
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(boot.seed);
            rng.set_stream(u64::from(i));
            let sample: Vec<Block> = design
                .iter()
                .map(|&(level, trials)| Block {
                    level,
                    trials,
                    correct: binomial(&mut rng, trials, fit.psi(level)),
                })
                .collect();
            let p = Problem::new(&sample, options).ok()?;
            fit_from(&p, options, fit).ok()
        })
        .collect();
    let ok: Vec<&Fit> = refits.iter().flatten().collect();
    let failed = boot.samples - ok.len() as u32;
    let thresholds: Vec<f64> = ok.iter().map(|f| threshold_of(f, boot.pc)).collect();
    let finite: Vec<f64> = thresholds
        .iter()
        .copied()
        .filter(|t| t.is_finite())
        .collect();
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    let sd = if finite.len() > 1 {
        (finite.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (finite.len() - 1) as f64).sqrt()
    } else {
        f64::NAN
    };
    let widths: Vec<f64> = ok.iter().map(|f| f.width).collect();
    let lapses: Vec<f64> = ok.iter().map(|f| f.lapse).collect();
    let worse = ok.iter().filter(|f| f.deviance >= fit.deviance).count();
    Ok(Bootstrap {
        samples: boot.samples,
        failed,
        ci: boot.ci,
        pc: boot.pc,
        threshold: threshold_of(fit, boot.pc),
        threshold_ci: interval(&thresholds, boot.ci),
        threshold_sd: sd,
        threshold_undefined: (thresholds.len() - finite.len()) as u32,
        width_ci: interval(&widths, boot.ci),
        lapse_ci: interval(&lapses, boot.ci),
        deviance_p: if ok.is_empty() {
            f64::NAN
        } else {
            worse as f64 / ok.len() as f64
        },
        thresholds,
    })
}
