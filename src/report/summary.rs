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
/// censoring met: their thresholds are bounds, and a mean that includes them is one too.
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
        if !frequencies.iter().any(|f| f.to_bits() == r.frequency.to_bits()) {
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
            let half = t_quantile(0.5 + plan.fit.ci / 2.0, (n - 1) as f64) * (var / n as f64).sqrt();
            let ci = (mean.is_finite() && half.is_finite())
                .then(|| ((mean - half).exp(), (mean + half).exp()));
            (mean.exp(), ci)
        };
        let censored_repeats = rs.iter().filter(|r| r.censored.is_some()).count() as u32;
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

/// The standard normal quantile (Acklam's rational approximation refined by one Halley
/// step: relative error near 1e-15).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let low = 0.024_25;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    x
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
    let z = normal_quantile(p);
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
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
        assert!((normal_quantile(0.05) + 1.644_853_626_951_472).abs() < 1e-8);
        // Student t, two-sided 95 %: ν = 1, 2, 4, 9, 29 (printed tables).
        for (nu, t) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (9.0, 2.262), (29.0, 2.045)] {
            let got = t_quantile(0.975, nu);
            assert!((got - t).abs() < 2e-3 * t.max(1.0) + 5e-3 * f64::from(u8::from(nu < 5.0)), "ν={nu}: {got}");
        }
    }
}
