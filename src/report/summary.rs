//! The CSF from the per-repeat results: one point per frequency, with its interval and its
//! censoring.

use super::{CsfPoint, FrequencyResult};
use crate::plan::{Plan, ThresholdFrom};

/// One [`CsfPoint`] per frequency in `results`, in the order they first appear (the plan's
/// order: repeat 0's results come first).
///
/// With one repeat a point is that repeat's threshold and interval. With several, the
/// threshold is the geometric mean of the repeats' thresholds and the interval is the
/// t interval (at the fit's `ci` level) of the mean log threshold: thresholds are positive
/// and their spread scales with them, so logs are the scale on which they are averaged.
/// Censored repeats are counted in `censored_repeats` and the point takes the first
/// censoring met: their thresholds are bounds, and a mean that includes them is one too, so
/// such a point has no interval.
pub fn summarize(plan: &Plan, results: &[FrequencyResult]) -> Vec<CsfPoint> {
    let method = |r: &FrequencyResult| -> String {
        match (plan.fit.threshold, &r.fit) {
            (ThresholdFrom::Fit, Some(f)) => format!("{}+{}", r.procedure, f.function),
            _ => r.procedure.clone(),
        }
    };
    let mut out = Vec::new();
    let mut frequencies: Vec<f64> = Vec::new();
    for r in results {
        if !frequencies
            .iter()
            .any(|f| f.to_bits() == r.frequency.to_bits())
        {
            frequencies.push(r.frequency);
        }
    }
    for f in frequencies {
        let rs: Vec<&FrequencyResult> = results
            .iter()
            .filter(|r| r.frequency.to_bits() == f.to_bits())
            .collect();
        let Some(first) = rs.first() else { continue };
        let n = rs.len();
        let (threshold, ci) = if n == 1 {
            (first.threshold, first.ci)
        } else {
            let logs: Vec<f64> = rs.iter().map(|r| r.threshold.ln()).collect();
            let mean = logs.iter().sum::<f64>() / n as f64;
            let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let half =
                t_quantile(0.5 + plan.fit.ci / 2.0, (n - 1) as f64) * (var / n as f64).sqrt();
            let ci = (mean.is_finite() && half.is_finite())
                .then(|| ((mean - half).exp(), (mean + half).exp()));
            (mean.exp(), ci)
        };
        let censored_repeats = rs.iter().filter(|r| r.censored.is_some()).count() as u32;
        // A bound has no sampling interval, and an interval over bounds is not one either.
        let ci = if censored_repeats > 0 { None } else { ci };
        out.push(CsfPoint {
            frequency: f,
            threshold,
            ci,
            sensitivity: super::sensitivity(threshold, plan.test.reference),
            sensitivity_ci: ci.map(|(lo, hi)| {
                (
                    super::sensitivity(hi, plan.test.reference),
                    super::sensitivity(lo, plan.test.reference),
                )
            }),
            method: method(first),
            censored: rs.iter().find_map(|r| r.censored),
            censored_repeats,
            repeats: n as u32,
            trials: rs.iter().map(|r| r.trials()).sum(),
            steps: rs.iter().map(|r| r.steps.len() as u64).sum(),
            stop: first.stop,
        });
    }
    out
}

/// Student's t quantile with `nu` degrees of freedom: exact for 1 and 2, else the
/// Cornish–Fisher expansion around the normal quantile (error below 1e-3 for ν ≥ 3 at the
/// usual levels).
pub fn t_quantile(p: f64, nu: f64) -> f64 {
    if nu <= 1.0 {
        return (std::f64::consts::PI * (p - 0.5)).tan();
    }
    if nu <= 2.0 {
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    let z = crate::psychometric::special::norm_quantile(p);
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * nu)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * nu * nu)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * nu.powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_tables() {
        // Student t, two-sided 95 %: ν = 1, 2, 4, 9, 29 (printed tables).
        for (nu, t) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (4.0, 2.776),
            (9.0, 2.262),
            (29.0, 2.045),
        ] {
            let got = t_quantile(0.975, nu);
            assert!(
                (got - t).abs() < 2e-3 * t.max(1.0) + 5e-3 * f64::from(u8::from(nu < 5.0)),
                "ν={nu}: {got}"
            );
        }
    }
}
