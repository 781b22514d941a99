//! Special functions the fits need, written here to keep the core crate free of a statistics
//! dependency: ln Γ (Lanczos), the standard normal cdf (Hart's rational approximation as
//! given by West 2005, with Laplace's continued fraction in the tails) and its inverse (Acklam's rational approximation, polished with one
//! Halley step), and the Cauchy (Student t, 1 df) cdf and quantile.

use std::f64::consts::PI;

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error about 1e-15).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x < 0.5 {
        // Γ(x) = Γ(x + 1)/x keeps the series in its accurate range.
        return ln_gamma(x + 1.0) - x.ln();
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// ln(Γ(a + k)/Γ(a)), the log rising factorial, for a ≥ 0 (−∞ when a = 0 < k).
pub(crate) fn ln_rising(a: f64, k: u32) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if a <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if k <= 8 {
        // A short sum is both cheaper and more precise than a difference of two ln Γ.
        let mut prod = 1.0;
        for i in 0..k {
            prod *= a + f64::from(i);
        }
        if prod.is_finite() {
            return prod.ln();
        }
    }
    if a >= 10.0 {
        // Stirling's series, differenced by hand so that no large terms cancel:
        // (a − ½)·ln(1 + k/a) + k·ln(a + k) − k + the difference of the tail series.
        let kf = f64::from(k);
        let b = a + kf;
        return (a - 0.5) * (kf / a).ln_1p() + kf * b.ln() - kf + stirling_tail(b)
            - stirling_tail(a);
    }
    ln_gamma(a + f64::from(k)) - ln_gamma(a)
}

/// lnΓ(z) − ((z − ½)·ln z − z + ½·ln 2π) for z ≥ 10 (the first omitted term is below 1e-12).
fn stirling_tail(z: f64) -> f64 {
    let r = 1.0 / z;
    let r2 = r * r;
    r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0 - r2 / 1680.0)))
}

/// ln of the binomial coefficient C(n, k).
pub(crate) fn ln_choose(n: u32, k: u32) -> f64 {
    ln_gamma(f64::from(n) + 1.0) - ln_gamma(f64::from(k) + 1.0) - ln_gamma(f64::from(n - k) + 1.0)
}

/// The standard normal cdf Φ(x), with a relative error near 1e-14 in both tails (Hart's
/// rational function below |x| = 3, a continued fraction beyond).
pub(crate) fn norm_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let z = x.abs();
    let tail = if z > 37.0 {
        0.0
    } else {
        let e = (-0.5 * z * z).exp();
        if z < 3.0 {
            let mut num = 3.526_249_659_989_11e-2 * z + 0.700_383_064_443_688;
            num = num * z + 6.373_962_203_531_65;
            num = num * z + 33.912_866_078_383;
            num = num * z + 112.079_291_497_871;
            num = num * z + 221.213_596_169_931;
            num = num * z + 220.206_867_912_376;
            let mut den = 8.838_834_764_831_84e-2 * z + 1.755_667_163_182_64;
            den = den * z + 16.064_177_579_207;
            den = den * z + 86.780_732_202_946_1;
            den = den * z + 296.564_248_779_674;
            den = den * z + 637.333_633_378_831;
            den = den * z + 793.826_512_519_948;
            den = den * z + 440.413_735_824_752;
            e * num / den
        } else {
            // Laplace's continued fraction Φ(−z) = φ(z)/(z + 1/(z + 2/(z + 3/(z + …)))),
            // 60 terms deep: Hart's rational function loses digits beyond z = 3.
            let mut b = z;
            for k in (1..=60).rev() {
                b = z + f64::from(k) / b;
            }
            e / b / (2.0 * PI).sqrt()
        }
    };
    if x > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The standard normal density.
pub(crate) fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// The standard normal quantile Φ⁻¹(p) (±∞ at 0 and 1, NaN outside [0, 1]).
pub(crate) fn norm_quantile(p: f64) -> f64 {
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
    const P_LOW: f64 = 0.024_25;
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let mut x = if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    // One Halley step on Φ(x) − p (done on the smaller tail for precision).
    let e = if x <= 0.0 {
        norm_cdf(x) - p
    } else {
        (1.0 - p) - norm_cdf(-x)
    };
    let u = e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
    x -= u / (1.0 + 0.5 * x * u);
    x
}

/// The Cauchy (Student t with one degree of freedom) cdf, with both tails precise.
pub(crate) fn cauchy_cdf(x: f64) -> f64 {
    if x < -1.0 {
        (-1.0 / x).atan() / PI
    } else if x > 1.0 {
        1.0 - (1.0 / x).atan() / PI
    } else {
        0.5 + x.atan() / PI
    }
}

/// The Cauchy quantile.
pub(crate) fn cauchy_quantile(p: f64) -> f64 {
    (PI * (p - 0.5)).tan()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rtol: f64) -> bool {
        (a - b).abs() <= rtol * b.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        let mut fact = 1.0f64;
        for n in 1..30u32 {
            // Γ(n + 1) = n!
            fact *= f64::from(n);
            assert!(
                close(ln_gamma(f64::from(n) + 1.0), fact.ln(), 1e-13),
                "n = {n}"
            );
        }
        assert!(close(ln_gamma(0.5), PI.sqrt().ln(), 1e-13));
        assert!(close(ln_gamma(1e-3), 6.907_178_885_383_854, 1e-12));
        assert!(close(ln_gamma(1e6), 12_815_504.569_147_612, 1e-13));
        assert_eq!(ln_rising(3.0, 0), 0.0);
        assert!(close(
            ln_rising(3.0, 4),
            (3.0f64 * 4.0 * 5.0 * 6.0).ln(),
            1e-14
        ));
        assert!(close(
            ln_rising(2.5, 40),
            ln_gamma(42.5) - ln_gamma(2.5),
            1e-12
        ));
        assert_eq!(ln_rising(0.0, 3), f64::NEG_INFINITY);
        assert!(close(ln_choose(10, 3), 120f64.ln(), 1e-13));
    }

    #[test]
    fn normal_cdf_and_quantile_match_known_values() {
        assert!(close(norm_cdf(0.0), 0.5, 1e-15));
        assert!(close(norm_cdf(-1.0), 0.158_655_253_931_457_05, 1e-13));
        assert!(close(norm_cdf(-2.0), 0.022_750_131_948_179_21, 1e-13));
        assert!(close(norm_cdf(-6.0), 9.865_876_450_377_012e-10, 1e-13));
        assert!(close(norm_cdf(-3.0), 1.349_898_031_630_095_6e-3, 1e-13));
        assert!(close(norm_cdf(1.96), 0.975_002_104_851_779_5, 1e-14));
        assert!(close(norm_cdf(-8.0), 6.220_960_574_271_819e-16, 1e-11));
        assert!(close(norm_quantile(0.975), 1.959_963_984_540_054, 1e-13));
        assert!(close(norm_quantile(0.95), 1.644_853_626_951_472_2, 1e-13));
        assert!(close(norm_quantile(0.05), -1.644_853_626_951_472_2, 1e-13));
        assert!(close(norm_quantile(1e-10), -6.361_340_902_404_056, 1e-11));
        for i in 1..200 {
            let p = f64::from(i) / 200.0;
            assert!(close(norm_cdf(norm_quantile(p)), p, 1e-13), "p = {p}");
        }
        // The density integrates to the cdf (Simpson's rule on [−1, 0.7]).
        let (a, b, n) = (-1.0, 0.7, 2000);
        let h = (b - a) / f64::from(n);
        let mut s = norm_pdf(a) + norm_pdf(b);
        for i in 1..n {
            let w = if i % 2 == 1 { 4.0 } else { 2.0 };
            s += w * norm_pdf(a + h * f64::from(i));
        }
        assert!(close(s * h / 3.0, norm_cdf(b) - norm_cdf(a), 1e-12));
    }

    #[test]
    fn cauchy_round_trips() {
        assert!(close(cauchy_cdf(1.0), 0.75, 1e-15));
        assert!(close(cauchy_cdf(-1e8), 1.0 / (PI * 1e8), 1e-12));
        for i in 1..100 {
            let p = f64::from(i) / 100.0;
            assert!(close(cauchy_cdf(cauchy_quantile(p)), p, 1e-12));
        }
    }
}
