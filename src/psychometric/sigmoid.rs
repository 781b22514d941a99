//! The sigmoid families, parameterised psignifit-style by a threshold `m` and a width `w`,
//! and their conversions to Palamedes' α/β forms.

use super::special::{cauchy_cdf, cauchy_quantile, norm_cdf, norm_pdf, norm_quantile};
use serde::{Deserialize, Serialize};
use std::f64::consts::{LN_10, PI};

/// A sigmoid family S. Every family is written as S(X) = F(F⁻¹(pc) + C·(X − m)/w) for a
/// standard cdf F, with C = F⁻¹(1 − α) − F⁻¹(α): S(m) = pc (`thresh_pc`) and
/// S⁻¹(1 − α) − S⁻¹(α) = w (`width_alpha` α). X is the stimulus level x itself, or ln x for
/// the two log-axis families ([`Sigmoid::Weibull`], [`Sigmoid::LogNorm`]), whose `m` and `w`
/// are then in ln units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sigmoid {
    /// Cumulative Gaussian: F = Φ (psignifit `norm`).
    Norm,
    /// Logistic: F(z) = 1/(1 + e^−z) (psignifit `logistic`).
    Logistic,
    /// Gumbel, the log-Weibull: F(z) = 1 − exp(−e^z) (psignifit `gumbel`; Palamedes
    /// `PAL_Gumbel` when x is in log10 units).
    Gumbel,
    /// Reverse Gumbel: F(z) = exp(−e^−z) (psignifit `rgumbel`).
    ReverseGumbel,
    /// Heavy-tailed: Student t with one degree of freedom, F(z) = ½ + atan(z)/π (psignifit
    /// `tdist`).
    Tdist,
    /// Weibull: the Gumbel applied to ln x (psignifit MATLAB `Weibull`, Palamedes
    /// `PAL_Weibull`); needs x > 0, and `m`, `w` are in ln units.
    Weibull,
    /// Log-normal: the cumulative Gaussian applied to ln x (psignifit MATLAB `logn`); needs
    /// x > 0, and `m`, `w` are in ln units.
    LogNorm,
}

/// The standard cdfs behind the families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Norm,
    Logistic,
    Gumbel,
    ReverseGumbel,
    Cauchy,
}

impl Base {
    /// (F(z), 1 − F(z)), each computed without cancellation.
    fn cdf_pair(self, z: f64) -> (f64, f64) {
        match self {
            Base::Norm => {
                // One evaluation: the smaller tail, precise; the other is its complement.
                let tail = norm_cdf(-z.abs());
                if z >= 0.0 {
                    (1.0 - tail, tail)
                } else {
                    (tail, 1.0 - tail)
                }
            }
            Base::Logistic => {
                let e = (-z.abs()).exp();
                let small = e / (1.0 + e);
                let big = 1.0 / (1.0 + e);
                if z >= 0.0 {
                    (big, small)
                } else {
                    (small, big)
                }
            }
            Base::Gumbel => {
                let t = z.exp();
                (-(-t).exp_m1(), (-t).exp())
            }
            Base::ReverseGumbel => {
                let t = (-z).exp();
                ((-t).exp(), -(-t).exp_m1())
            }
            Base::Cauchy => {
                let tail = cauchy_cdf(-z.abs());
                if z >= 0.0 {
                    (1.0 - tail, tail)
                } else {
                    (tail, 1.0 - tail)
                }
            }
        }
    }

    fn pdf(self, z: f64) -> f64 {
        match self {
            Base::Norm => norm_pdf(z),
            Base::Logistic => {
                let e = (-z.abs()).exp();
                e / ((1.0 + e) * (1.0 + e))
            }
            Base::Gumbel => {
                let t = z.exp();
                t * (-t).exp()
            }
            Base::ReverseGumbel => {
                let t = (-z).exp();
                t * (-t).exp()
            }
            Base::Cauchy => 1.0 / (PI * (1.0 + z * z)),
        }
    }

    fn quantile(self, p: f64) -> f64 {
        match self {
            Base::Norm => norm_quantile(p),
            Base::Logistic => (p / (1.0 - p)).ln(),
            Base::Gumbel => (-(-p).ln_1p()).ln(),
            Base::ReverseGumbel => -(-p.ln()).ln(),
            Base::Cauchy => cauchy_quantile(p),
        }
    }
}

/// The constants of one family at one (`thresh_pc`, `width_alpha`): S(X) = F(offset + c·(X − m)/w).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Core {
    base: Base,
    log_axis: bool,
    offset: f64,
    c: f64,
}

impl Core {
    pub(crate) fn new(sigmoid: Sigmoid, thresh_pc: f64, width_alpha: f64) -> Self {
        let base = sigmoid.base();
        Core {
            base,
            log_axis: sigmoid.log_axis(),
            offset: base.quantile(thresh_pc),
            c: base.quantile(1.0 - width_alpha) - base.quantile(width_alpha),
        }
    }

    /// The stimulus axis X of level x (ln x for the log-axis families).
    #[inline]
    pub(crate) fn axis(&self, x: f64) -> f64 {
        if self.log_axis {
            x.ln()
        } else {
            x
        }
    }

    /// The stimulus level of axis value X.
    #[inline]
    pub(crate) fn level(&self, axis: f64) -> f64 {
        if self.log_axis {
            axis.exp()
        } else {
            axis
        }
    }

    /// (S, 1 − S) at axis value X.
    #[inline]
    pub(crate) fn eval_axis(&self, axis: f64, m: f64, w: f64) -> (f64, f64) {
        self.base.cdf_pair(self.offset + self.c * (axis - m) / w)
    }

    /// dS/dX at axis value X.
    pub(crate) fn density_axis(&self, axis: f64, m: f64, w: f64) -> f64 {
        self.base.pdf(self.offset + self.c * (axis - m) / w) * self.c / w
    }

    /// S⁻¹(p) on the axis.
    pub(crate) fn inverse_axis(&self, p: f64, m: f64, w: f64) -> f64 {
        m + w * (self.base.quantile(p) - self.offset) / self.c
    }
}

impl Sigmoid {
    /// Every family, in a fixed order.
    pub const ALL: [Sigmoid; 7] = [
        Sigmoid::Norm,
        Sigmoid::Logistic,
        Sigmoid::Gumbel,
        Sigmoid::ReverseGumbel,
        Sigmoid::Tdist,
        Sigmoid::Weibull,
        Sigmoid::LogNorm,
    ];

    fn base(self) -> Base {
        match self {
            Sigmoid::Norm | Sigmoid::LogNorm => Base::Norm,
            Sigmoid::Logistic => Base::Logistic,
            Sigmoid::Gumbel | Sigmoid::Weibull => Base::Gumbel,
            Sigmoid::ReverseGumbel => Base::ReverseGumbel,
            Sigmoid::Tdist => Base::Cauchy,
        }
    }

    /// Whether the family works on ln x (then x must be positive and `m`, `w` are in ln
    /// units).
    pub fn log_axis(self) -> bool {
        matches!(self, Sigmoid::Weibull | Sigmoid::LogNorm)
    }

    /// The unscaled sigmoid S(x; m, w) at stimulus level x.
    pub fn eval(self, x: f64, m: f64, w: f64, thresh_pc: f64, width_alpha: f64) -> f64 {
        let core = Core::new(self, thresh_pc, width_alpha);
        core.eval_axis(core.axis(x), m, w).0
    }

    /// The stimulus level where S reaches p, p in (0, 1).
    pub fn inverse(self, p: f64, m: f64, w: f64, thresh_pc: f64, width_alpha: f64) -> f64 {
        let core = Core::new(self, thresh_pc, width_alpha);
        core.level(core.inverse_axis(p, m, w))
    }

    /// The Palamedes form of this family with threshold `m` and width `w`, if Palamedes has
    /// one: `Norm` → `PAL_CumulativeNormal`, `Logistic` → `PAL_Logistic`, `Gumbel` →
    /// `PAL_Gumbel` (which takes x in log10 units, so psyrun's levels must be log10 values),
    /// `Weibull` → `PAL_Weibull`. Guess and lapse carry over unchanged.
    pub fn to_palamedes(
        self,
        m: f64,
        w: f64,
        thresh_pc: f64,
        width_alpha: f64,
    ) -> Option<Palamedes> {
        let core = Core::new(self, thresh_pc, width_alpha);
        // S(X) = F(k·(X − X0)) with k = c/w and X0 = m − offset·w/c.
        let k = core.c / w;
        let x0 = m - core.offset / k;
        let (form, alpha, beta) = match self {
            Sigmoid::Norm => (PalamedesForm::CumulativeNormal, x0, k),
            Sigmoid::Logistic => (PalamedesForm::Logistic, x0, k),
            Sigmoid::Gumbel => (PalamedesForm::Gumbel, x0, k / LN_10),
            Sigmoid::Weibull => (PalamedesForm::Weibull, x0.exp(), k),
            _ => return None,
        };
        Some(Palamedes { form, alpha, beta })
    }

    /// The family, threshold `m` and width `w` of a Palamedes function (the inverse of
    /// [`Sigmoid::to_palamedes`]).
    pub fn from_palamedes(p: Palamedes, thresh_pc: f64, width_alpha: f64) -> (Sigmoid, f64, f64) {
        let (sigmoid, x0, k) = match p.form {
            PalamedesForm::CumulativeNormal => (Sigmoid::Norm, p.alpha, p.beta),
            PalamedesForm::Logistic => (Sigmoid::Logistic, p.alpha, p.beta),
            PalamedesForm::Gumbel => (Sigmoid::Gumbel, p.alpha, p.beta * LN_10),
            PalamedesForm::Weibull => (Sigmoid::Weibull, p.alpha.ln(), p.beta),
        };
        let core = Core::new(sigmoid, thresh_pc, width_alpha);
        let w = core.c / k;
        (sigmoid, x0 + core.offset / k, w)
    }
}

/// A Palamedes psychometric-function form (Prins & Kingdom's toolbox), each
/// ψ = γ + (1 − γ − λ)·F with F given per form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PalamedesForm {
    /// `PAL_CumulativeNormal`: F = Φ(β(x − α)).
    CumulativeNormal,
    /// `PAL_Logistic`: F = 1/(1 + exp(−β(x − α))).
    Logistic,
    /// `PAL_Gumbel`: F = 1 − exp(−10^(β(x − α))), x in log10 units.
    Gumbel,
    /// `PAL_Weibull`: F = 1 − exp(−(x/α)^β), x > 0.
    Weibull,
}

/// A Palamedes α (location) and β (slope parameter) in one form.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Palamedes {
    /// The form.
    pub form: PalamedesForm,
    /// α: location (for `Weibull`, the scale in stimulus units).
    pub alpha: f64,
    /// β: slope parameter.
    pub beta: f64,
}

impl Palamedes {
    /// ψ(x) in Palamedes' own closed form, with guess γ and lapse λ (as
    /// `PAL_*([α β γ λ], x)`).
    pub fn psi(&self, x: f64, gamma: f64, lambda: f64) -> f64 {
        let (a, b) = (self.alpha, self.beta);
        let f = match self.form {
            PalamedesForm::CumulativeNormal => norm_cdf(b * (x - a)),
            PalamedesForm::Logistic => 1.0 / (1.0 + (-b * (x - a)).exp()),
            PalamedesForm::Gumbel => 1.0 - (-(10f64.powf(b * (x - a)))).exp(),
            PalamedesForm::Weibull => 1.0 - (-((x / a).powf(b))).exp(),
        };
        gamma + (1.0 - gamma - lambda) * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn threshold_and_width_mean_what_they_say() {
        for s in Sigmoid::ALL {
            for (pc, alpha) in [(0.5, 0.05), (0.75, 0.1), (0.3, 0.2)] {
                let (m, w) = if s.log_axis() { (0.4, 0.7) } else { (1.3, 0.6) };
                let at_m = s.eval(Core::new(s, pc, alpha).level(m), m, w, pc, alpha);
                assert!(close(at_m, pc, 1e-12), "{s:?}: S(m) = {at_m}");
                let lo = Core::new(s, pc, alpha).axis(s.inverse(alpha, m, w, pc, alpha));
                let hi = Core::new(s, pc, alpha).axis(s.inverse(1.0 - alpha, m, w, pc, alpha));
                assert!(close(hi - lo, w, 1e-9), "{s:?}: width {}", hi - lo);
                // Monotone increasing, and the pair sums to one.
                let core = Core::new(s, pc, alpha);
                let mut last = 0.0;
                for i in 0..50 {
                    let x = m - 3.0 * w + 0.12 * w * f64::from(i);
                    let (p, q) = core.eval_axis(x, m, w);
                    assert!(p >= last && close(p + q, 1.0, 1e-12), "{s:?} at {x}");
                    last = p;
                }
            }
        }
    }

    #[test]
    fn psignifit_closed_forms() {
        // psignifit's formulas for thresh_pc = .5, width_alpha = .05, written out.
        let (m, w, a, pc) = (1.2f64, 0.8f64, 0.05f64, 0.5f64);
        for x in [0.3, 1.0, 1.2, 1.7, 2.5] {
            let logistic = 1.0
                / (1.0 + (-2.0 * (1.0 / a - 1.0).ln() / w * (x - m) + (1.0 / pc - 1.0).ln()).exp());
            assert!(close(
                Sigmoid::Logistic.eval(x, m, w, pc, a),
                logistic,
                1e-14
            ));
            let c = (-a.ln()).ln() - (-(1.0 - a).ln()).ln();
            let gumbel = 1.0 - (-(c / w * (x - m) + (-(1.0 - pc).ln()).ln()).exp()).exp();
            assert!(close(Sigmoid::Gumbel.eval(x, m, w, pc, a), gumbel, 1e-14));
            let c = (-(1.0 - a).ln()).ln() - (-a.ln()).ln();
            let rgumbel = (-(c / w * (x - m) + (-pc.ln()).ln()).exp()).exp();
            assert!(close(
                Sigmoid::ReverseGumbel.eval(x, m, w, pc, a),
                rgumbel,
                1e-14
            ));
            let c = norm_quantile(1.0 - a) - norm_quantile(a);
            let norm = norm_cdf((x - (m - norm_quantile(pc) * w / c)) / (w / c));
            assert!(close(Sigmoid::Norm.eval(x, m, w, pc, a), norm, 1e-14));
        }
    }

    #[test]
    fn palamedes_vectors_and_round_trips() {
        // PAL_Gumbel([1 2 0 0], 1) = 0.6321 (= 1 − e^−1).
        let g = Palamedes {
            form: PalamedesForm::Gumbel,
            alpha: 1.0,
            beta: 2.0,
        };
        assert!(close(g.psi(1.0, 0.0, 0.0), 0.6321, 5e-5));
        // PAL_Weibull([2 3 .5 .02], 2) = .5 + .48·(1 − e^−1); at x = 1: .5 + .48·(1 − e^(−1/8)).
        let wb = Palamedes {
            form: PalamedesForm::Weibull,
            alpha: 2.0,
            beta: 3.0,
        };
        assert!(close(
            wb.psi(2.0, 0.5, 0.02),
            0.803_417_868_237_707_7,
            1e-12
        ));
        assert!(close(
            wb.psi(1.0, 0.5, 0.02),
            0.556_401_486_759_394_2,
            1e-12
        ));
        // PAL_Logistic([0 1 .5 0], 0) = .75; at x = 1: .5 + .5/(1 + e^−1).
        let lg = Palamedes {
            form: PalamedesForm::Logistic,
            alpha: 0.0,
            beta: 1.0,
        };
        assert!(close(lg.psi(0.0, 0.5, 0.0), 0.75, 1e-15));
        assert!(close(lg.psi(1.0, 0.5, 0.0), 0.865_529_289_315_002_4, 1e-12));
        // psyrun's families agree with their Palamedes forms after conversion, both ways.
        let cases = [
            (Sigmoid::Norm, 1.2, 0.9, [0.2, 1.0, 1.9]),
            (Sigmoid::Logistic, 1.2, 0.9, [0.2, 1.0, 1.9]),
            (Sigmoid::Gumbel, -1.5, 0.6, [-2.2, -1.4, -0.9]),
            (Sigmoid::Weibull, 0.3, 0.8, [0.5, 1.4, 3.0]),
        ];
        for (s, m, w, xs) in cases {
            for (pc, a) in [(0.5, 0.05), (0.75, 0.1)] {
                let pal = s.to_palamedes(m, w, pc, a).unwrap();
                for x in xs {
                    let ours = 0.5 + (1.0 - 0.5 - 0.03) * s.eval(x, m, w, pc, a);
                    assert!(close(pal.psi(x, 0.5, 0.03), ours, 1e-12), "{s:?} at {x}");
                }
                let (back, m2, w2) = Sigmoid::from_palamedes(pal, pc, a);
                assert!(back == s && close(m2, m, 1e-12) && close(w2, w, 1e-12));
            }
        }
        assert!(Sigmoid::Tdist.to_palamedes(1.0, 1.0, 0.5, 0.05).is_none());
        // The Palamedes Gumbel with α = 1, β = 2 is psyrun's Gumbel at the 1 − 1/e point.
        let (s, m, w) = Sigmoid::from_palamedes(g, 1.0 - (-1.0f64).exp(), 0.05);
        assert!(s == Sigmoid::Gumbel && close(m, 1.0, 1e-12) && w > 0.0);
    }
}
