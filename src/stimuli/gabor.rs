//! Gabors: a sinusoidal carrier in a Gaussian envelope, with an envelope of fixed size or
//! of a fixed number of cycles, cosine or sine phase, and a DC-free option.
//!
//! ```text
//! g(x, y) = exp(−(x² + y²)/(2σ²))
//! u(x, y) = 2π·f·(cos θ·x + sin θ·y)/size + φ
//! m(x, y) = c · g(x, y) · (cos u(x, y) − d)
//! L(x, y) = L0 · (1 + m(x, y))
//! ```
//!
//! with σ in pixels either given ([`Envelope::Sigma`]) or `σ = k·size/f`, i.e. `k`
//! wavelengths of the carrier ([`Envelope::Cycles`]); φ = 0° for cosine phase (even, a
//! luminance peak at the centre) and −90° for sine phase (odd: `cos(u − 90°) = sin u`).
//! `d = 0`, or with `dc_free` the envelope-weighted mean of the carrier over the image,
//! `d = Σ g·cos u / Σ g`, so that `Σ m = 0`: the Gabor adds no mean luminance and the image's
//! mean is the background exactly (a cosine Gabor with few cycles otherwise brightens the
//! image).
//!
//! Contrast: `c` is the carrier's amplitude at the envelope's peak, relative to the
//! background, so the cosine-phase Gabor's centre pixel is `L0·(1 + c)` (without `dc_free`);
//! for many cycles under the envelope this is the Michelson contrast of its central cycle.
//! With a Gaussian [`Window`] a grating is the same image: `Sigma(size/6)` in cosine phase is
//! the tutorial's grating bit for bit.

use super::common::{angle, check, check_size, frequency, positive, sigma};
use super::common::{Display, Image, StimulusError, Window};
use super::gratings::carrier;

/// The size of a Gabor's envelope.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Envelope {
    /// σ in pixels (fixed size: the number of cycles grows with frequency).
    Sigma(f64),
    /// σ = k wavelengths, `k·size/f` px (fixed number of cycles, a scale-invariant Gabor).
    Cycles(f64),
}

/// The carrier's phase at the envelope's centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GaborPhase {
    /// Even: `cos u` (φ = 0°).
    Cosine,
    /// Odd: `sin u` (φ = −90°).
    Sine,
    /// Any phase φ, in degrees, added to the argument of the cosine.
    Degrees(f64),
}

impl GaborPhase {
    /// φ in degrees.
    pub fn degrees(self) -> f64 {
        match self {
            GaborPhase::Cosine => 0.0,
            GaborPhase::Sine => -90.0,
            GaborPhase::Degrees(d) => d,
        }
    }
}

/// A Gabor's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaborParams {
    /// Image side, px.
    pub size: u32,
    /// Carrier frequency, cycles per image (≥ 0; > 0 with [`Envelope::Cycles`]).
    pub frequency: f64,
    /// Orientation, degrees (0 = vertical bars).
    pub orientation_deg: f64,
    /// Phase.
    pub phase: GaborPhase,
    /// Carrier amplitude at the envelope's peak, about the background, in [0, 1].
    pub contrast: f64,
    /// Envelope size.
    pub envelope: Envelope,
    /// Subtract the envelope-weighted mean of the carrier (zero mean luminance change).
    pub dc_free: bool,
}

impl Default for GaborParams {
    /// 224 px, 8 cycles per image, 0°, cosine phase, contrast 0.5, σ = 224/6 px (the
    /// tutorial's envelope), not DC-free.
    fn default() -> Self {
        GaborParams {
            contrast: 0.5,
            ..GaborParams::cosine(224, 8.0, Envelope::Sigma(224.0 / 6.0))
        }
    }
}

impl GaborParams {
    /// A cosine-phase Gabor at 0°, contrast 1, not DC-free.
    pub fn cosine(size: u32, frequency: f64, envelope: Envelope) -> Self {
        GaborParams {
            size,
            frequency,
            orientation_deg: 0.0,
            phase: GaborPhase::Cosine,
            contrast: 1.0,
            envelope,
            dc_free: false,
        }
    }

    /// σ in pixels.
    pub fn sigma(&self) -> Result<f64, StimulusError> {
        match self.envelope {
            Envelope::Sigma(s) => sigma("sigma", s),
            Envelope::Cycles(k) => {
                positive("cycles", k)?;
                check(
                    "frequency",
                    self.frequency,
                    self.frequency > 0.0,
                    "finite and > 0 for an envelope of fixed cycles",
                )?;
                sigma("sigma", k * f64::from(self.size) / self.frequency)
            }
        }
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), StimulusError> {
        check_size(self.size)?;
        frequency(self.frequency)?;
        angle("orientation", self.orientation_deg)?;
        angle("phase", self.phase.degrees())?;
        check(
            "contrast",
            self.contrast,
            (0.0..=1.0).contains(&self.contrast),
            "in [0, 1]",
        )?;
        self.sigma()?;
        Ok(())
    }

    /// The contrast-free pattern `g·(cos u − d)`.
    pub fn pattern(&self) -> Result<Vec<f64>, StimulusError> {
        self.validate()?;
        let sigma = self.sigma()?;
        let c = carrier(
            self.size,
            self.frequency,
            self.orientation_deg,
            self.phase.degrees(),
        );
        let g = Window::Gaussian { sigma }
            .values(self.size)
            .unwrap_or_default();
        let d = if self.dc_free {
            let num: f64 = c.iter().zip(&g).map(|(c, g)| c * g).sum();
            let den: f64 = g.iter().sum();
            num / den
        } else {
            0.0
        };
        Ok(if self.dc_free {
            c.iter().zip(&g).map(|(c, g)| (c - d) * g).collect()
        } else {
            // The grating's order of operations (carrier times envelope).
            c.iter().zip(&g).map(|(c, g)| c * g).collect()
        })
    }

    /// The modulation `m = c·g·(cos u − d)`.
    pub fn modulation(&self) -> Result<Vec<f64>, StimulusError> {
        let c = self.contrast;
        Ok(self.pattern()?.into_iter().map(|p| c * p).collect())
    }

    /// The Gabor on `display`'s background.
    pub fn render(&self, display: &Display) -> Result<Image, StimulusError> {
        display.render(self.size, &self.modulation()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stimuli::grating::{grating, GratingSpec};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn cosine_gabor_is_the_tutorial_grating() {
        for (size, f, theta, c) in [(224u32, 7.0, 45.0, 0.3), (33, 2.5, 105.0, 1.0)] {
            let gabor = GaborParams {
                orientation_deg: theta,
                contrast: c,
                ..GaborParams::cosine(size, f, Envelope::Sigma(f64::from(size) / 6.0))
            };
            let img = gabor.render(&Display::default()).unwrap();
            assert_eq!(
                img.to_f32(),
                grating(&GratingSpec::tutorial(size, f, theta), c)
            );
        }
    }

    #[test]
    fn pixel_values_by_hand() {
        // 21 px, 3 cycles per image, σ = 4 px, 30°, contrast 0.6 on 0.45.
        let gabor = GaborParams {
            orientation_deg: 30.0,
            contrast: 0.6,
            ..GaborParams::cosine(21, 3.0, Envelope::Sigma(4.0))
        };
        let d = Display {
            background: 0.45,
            ..Display::default()
        };
        let img = gabor.render(&d).unwrap();
        let pi = std::f64::consts::PI;
        let (t_cos, t_sin) = ((pi / 6.0).cos(), (pi / 6.0).sin());
        for (x, y) in [(2.0f64, 1.0f64), (-5.0, 3.0), (0.0, -7.0), (10.0, 10.0)] {
            let g = (-(x * x + y * y) / 32.0).exp();
            let u = 2.0 * pi * 3.0 * (t_cos * x + t_sin * y) / 21.0;
            let want = 0.45 * (1.0 + 0.6 * g * u.cos());
            let got = img.at((y + 10.0) as usize, (x + 10.0) as usize, 0);
            assert!(close(got, want, 1e-15), "({x}, {y}): {got} vs {want}");
        }
        // The centre is the peak, L0·(1 + c).
        assert!(close(img.at(10, 10, 0), 0.45 * 1.6, 1e-15));
    }

    #[test]
    fn fixed_cycles_envelope() {
        // k = 1 cycle at 4 cycles per 64 px: σ = 16 px, the same image as Sigma(16).
        let a = GaborParams::cosine(64, 4.0, Envelope::Cycles(1.0));
        assert_eq!(a.sigma().unwrap(), 16.0);
        let b = GaborParams::cosine(64, 4.0, Envelope::Sigma(16.0));
        assert_eq!(a.pattern().unwrap(), b.pattern().unwrap());
        // Doubling the frequency halves σ: the number of cycles under the envelope stays.
        let c = GaborParams::cosine(64, 8.0, Envelope::Cycles(1.0));
        assert_eq!(c.sigma().unwrap(), 8.0);
        // Fixed cycles needs a frequency above 0.
        assert!(GaborParams::cosine(64, 0.0, Envelope::Cycles(1.0))
            .pattern()
            .is_err());
    }

    #[test]
    fn dc_free_mean_is_the_background() {
        // A cosine Gabor of 1 cycle per image in a wide envelope has a large DC.
        let base = GaborParams {
            contrast: 0.5,
            ..GaborParams::cosine(65, 1.0, Envelope::Sigma(12.0))
        };
        let d = Display::default();
        let plain = base.render(&d).unwrap();
        assert!(
            (plain.mean() - 0.5).abs() / 0.5 > 1e-2,
            "the plain Gabor's mean {} should differ from the background",
            plain.mean()
        );
        for (size, f, sigma, theta) in [
            (65u32, 1.0, 12.0, 0.0),
            (64, 2.0, 9.0, 30.0),
            (224, 3.0, 224.0 / 6.0, 77.0),
        ] {
            for phase in [
                GaborPhase::Cosine,
                GaborPhase::Sine,
                GaborPhase::Degrees(40.0),
            ] {
                let g = GaborParams {
                    dc_free: true,
                    contrast: 0.5,
                    orientation_deg: theta,
                    phase,
                    ..GaborParams::cosine(size, f, Envelope::Sigma(sigma))
                };
                for bg in [0.5, 0.3] {
                    let img = g
                        .render(&Display {
                            background: bg,
                            clip: crate::stimuli::Clip::Clamp,
                        })
                        .unwrap();
                    assert_eq!(img.clipped, 0);
                    let rel = (img.mean() - bg).abs() / bg;
                    assert!(rel < 1e-9, "{size} {f} {phase:?}: relative error {rel}");
                }
            }
        }
        // The DC-free centre is L0·(1 + c·(1 − d)) with d the weighted carrier mean.
        let free = GaborParams {
            dc_free: true,
            ..base
        };
        let p = free.pattern().unwrap();
        let plain_p = base.pattern().unwrap();
        let g = Window::Gaussian { sigma: 12.0 }.values(65).unwrap();
        let d_num: f64 = plain_p.iter().sum();
        let d = d_num / g.iter().sum::<f64>();
        assert!(d > 0.1);
        assert!(close(p[32 * 65 + 32], 1.0 - d, 1e-14));
    }

    #[test]
    fn phase_symmetry() {
        // Odd size: the grid is symmetric about the centre pixel.
        let n = 31usize;
        let cos = GaborParams {
            orientation_deg: 20.0,
            ..GaborParams::cosine(n as u32, 3.0, Envelope::Sigma(5.0))
        };
        let sin = GaborParams {
            phase: GaborPhase::Sine,
            ..cos
        };
        let (pc, ps) = (cos.pattern().unwrap(), sin.pattern().unwrap());
        for k in 0..n * n {
            let mirror = n * n - 1 - k; // (−x, −y)
            assert!(close(pc[k], pc[mirror], 1e-14), "cosine is even");
            assert!(close(ps[k], -ps[mirror], 1e-14), "sine is odd");
        }
        // A sine Gabor has no DC by symmetry: its mean is the background without dc_free.
        let img = sin.render(&Display::default()).unwrap();
        assert!(close(img.mean(), 0.5, 1e-15));
        assert!(ps[(n / 2) * n + n / 2].abs() < 1e-15);
    }

    #[test]
    fn invalid_parameters_are_errors() {
        let ok = GaborParams::cosine(16, 2.0, Envelope::Sigma(3.0));
        for bad in [
            GaborParams { size: 0, ..ok },
            GaborParams {
                envelope: Envelope::Sigma(0.0),
                ..ok
            },
            GaborParams {
                envelope: Envelope::Sigma(f64::NAN),
                ..ok
            },
            // σ² would underflow to 0, and the centre be 0/0.
            GaborParams {
                envelope: Envelope::Sigma(1e-300),
                ..ok
            },
            GaborParams {
                envelope: Envelope::Cycles(f64::INFINITY),
                ..ok
            },
            GaborParams {
                frequency: f64::INFINITY,
                ..ok
            },
            GaborParams {
                phase: GaborPhase::Degrees(f64::NAN),
                ..ok
            },
            GaborParams {
                contrast: -0.1,
                ..ok
            },
            GaborParams {
                orientation_deg: f64::NAN,
                ..ok
            },
        ] {
            assert!(bad.render(&Display::default()).is_err(), "{bad:?}");
        }
        // σ = k·size/f overflowing to infinity is an error, not an infinite envelope.
        let tiny = GaborParams {
            frequency: 1e-320,
            envelope: Envelope::Cycles(1.0),
            ..ok
        };
        assert!(tiny.render(&Display::default()).is_err());
    }
}
