//! Gratings: sine and square waves at any orientation, phase and frequency, with an
//! optional circular or Gaussian window, as a modulation about the background.
//!
//! ```text
//! u(x, y) = 2π·f·(cos θ·x + sin θ·y)/size + φ
//! m(x, y) = c · w(x, y) · s(u),   s = cos (sine wave) or sgn(cos) (square wave)
//! L(x, y) = L0 · (1 + m(x, y))
//! ```
//!
//! on the grid of [`super::common`] (`x, y` in pixels from the centre pixel), with `f` in
//! cycles per image, θ and φ in degrees (θ = 0: the luminance varies along x, i.e. vertical
//! bars; φ = 0: a luminance peak at the centre), and `w` the [`Window`]. For a full-field
//! grating the Michelson contrast `(Lmax − Lmin)/(Lmax + Lmin)` is `c` (where the grid
//! reaches the peaks and troughs). The square wave is the sign of the same cosine, with
//! carriers within 1e-12 of zero set to 0, so a sampled square wave whose edge falls on a
//! pixel centre keeps its symmetry.
//!
//! The sine wave with a Gaussian window (or none) is computed from
//! [`GratingFactors`] in the same order of operations as
//! [`grating`](mod@super::grating), so at `L0 = 0.5` it reproduces the tutorial's gratings bit for bit.

use super::common::{angle, check, check_size, frequency, Display, Image, StimulusError, Window};
use super::grating::{GratingFactors, GratingSpec};

/// The waveform of a grating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Waveform {
    /// `cos u`.
    #[default]
    Sine,
    /// `sgn(cos u)`: ±1, and 0 on an edge.
    Square,
}

/// A grating's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GratingParams {
    /// Image side, px (1..=4096).
    pub size: u32,
    /// Spatial frequency, cycles per image (≥ 0).
    pub frequency: f64,
    /// Orientation, degrees (any finite value; 0 = vertical bars).
    pub orientation_deg: f64,
    /// Phase, degrees (any finite value; 0 = peak at the centre).
    pub phase_deg: f64,
    /// Michelson contrast about the background, in [0, 1].
    pub contrast: f64,
    /// Sine or square.
    pub waveform: Waveform,
    /// Aperture; default none.
    pub window: Window,
}

impl Default for GratingParams {
    /// 224 px, 8 cycles per image, 0°, phase 0°, contrast 0.5, sine, no window.
    fn default() -> Self {
        GratingParams {
            contrast: 0.5,
            ..GratingParams::sine(224, 8.0)
        }
    }
}

impl GratingParams {
    /// A full-field sine grating of `frequency` cycles per image at 0°, phase 0, contrast 1.
    pub fn sine(size: u32, frequency: f64) -> Self {
        GratingParams {
            size,
            frequency,
            orientation_deg: 0.0,
            phase_deg: 0.0,
            contrast: 1.0,
            waveform: Waveform::Sine,
            window: Window::None,
        }
    }

    /// The tutorial's test grating ([`GratingSpec::tutorial`]): a sine at phase 0 in a
    /// Gaussian window of σ = size/6.
    pub fn tutorial(size: u32, frequency: f64, orientation_deg: f64, contrast: f64) -> Self {
        GratingParams {
            size,
            frequency,
            orientation_deg,
            phase_deg: 0.0,
            contrast,
            waveform: Waveform::Sine,
            window: Window::Gaussian {
                sigma: f64::from(size) / 6.0,
            },
        }
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), StimulusError> {
        check_size(self.size)?;
        frequency(self.frequency)?;
        angle("orientation", self.orientation_deg)?;
        angle("phase", self.phase_deg)?;
        check(
            "contrast",
            self.contrast,
            (0.0..=1.0).contains(&self.contrast),
            "in [0, 1] (Michelson)",
        )?;
        self.window.validate()
    }

    /// The contrast-free pattern `w·s(u)` (row-major, `size × size`), in [−1, 1].
    pub fn pattern(&self) -> Result<Vec<f64>, StimulusError> {
        self.validate()?;
        let carrier = carrier(
            self.size,
            self.frequency,
            self.orientation_deg,
            self.phase_deg,
        );
        let mut p = match self.waveform {
            Waveform::Sine => carrier,
            Waveform::Square => carrier.into_iter().map(square).collect(),
        };
        if let Some(w) = self.window.values(self.size) {
            for (v, w) in p.iter_mut().zip(w) {
                *v *= w;
            }
        }
        Ok(p)
    }

    /// The modulation `m = c·w·s(u)`.
    pub fn modulation(&self) -> Result<Vec<f64>, StimulusError> {
        let c = self.contrast;
        Ok(self.pattern()?.into_iter().map(|p| c * p).collect())
    }

    /// The grating on `display`'s background.
    pub fn render(&self, display: &Display) -> Result<Image, StimulusError> {
        display.render(self.size, &self.modulation()?)
    }
}

/// `sgn(v)`, with |v| < 1e-12 counted as 0.
fn square(v: f64) -> f64 {
    if v.abs() < 1e-12 {
        0.0
    } else {
        v.signum()
    }
}

/// The unwindowed carrier `cos u` on the grid, via [`GratingFactors`] (the tutorial's
/// separable evaluation).
pub(crate) fn carrier(size: u32, frequency: f64, orientation_deg: f64, phase_deg: f64) -> Vec<f64> {
    GratingFactors::new(&GratingSpec {
        size,
        frequency,
        orientation_deg,
        phase_deg,
        envelope_sigma: None,
    })
    .pattern()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stimuli::grating::grating;
    use crate::stimuli::Clip;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn reproduces_the_tutorial_grating_exactly() {
        let d = Display::default();
        for (size, f, theta, c) in [
            (224u32, 7.0, 45.0, 0.3),
            (33, 2.5, 105.0, 1.0),
            (32, 112.0, 150.0, 0.01),
            (63, 16.0, 0.0, 0.5),
        ] {
            let new = GratingParams::tutorial(size, f, theta, c)
                .render(&d)
                .unwrap();
            let old = grating(&GratingSpec::tutorial(size, f, theta), c);
            assert_eq!(new.to_f32(), old, "size {size} f {f} θ {theta} c {c}");
            // Without a window and at another phase, too.
            let spec = GratingSpec {
                size,
                frequency: f,
                orientation_deg: theta,
                phase_deg: 30.0,
                envelope_sigma: None,
            };
            let params = GratingParams {
                phase_deg: 30.0,
                window: Window::None,
                ..GratingParams::tutorial(size, f, theta, c)
            };
            assert_eq!(params.render(&d).unwrap().to_f32(), grating(&spec, c));
        }
    }

    #[test]
    fn reproduces_grating_rs_on_every_fixture_case() {
        // The 54 geometries of the tutorial fixture (sizes 32, 63, 224; phases 0° and 37°;
        // Gaussian windows and none; contrasts 0.003 and 1): the same f32 images as
        // grating.rs, and the same f64 values as its render_f64.
        #[derive(serde::Deserialize)]
        struct Fixture {
            cases: Vec<Case>,
        }
        #[derive(serde::Deserialize)]
        struct Case {
            size: u32,
            frequency: f64,
            orientation_deg: f64,
            phase_deg: f64,
            contrast: f64,
            sigma: Option<f64>,
        }
        let fixture: Fixture =
            serde_json::from_str(include_str!("../../tests/fixtures/stimuli/gratings.json"))
                .unwrap();
        assert_eq!(fixture.cases.len(), 54);
        for c in &fixture.cases {
            let spec = GratingSpec {
                size: c.size,
                frequency: c.frequency,
                orientation_deg: c.orientation_deg,
                phase_deg: c.phase_deg,
                envelope_sigma: c.sigma,
            };
            let params = GratingParams {
                size: c.size,
                frequency: c.frequency,
                orientation_deg: c.orientation_deg,
                phase_deg: c.phase_deg,
                contrast: c.contrast,
                waveform: Waveform::Sine,
                window: match c.sigma {
                    Some(sigma) => Window::Gaussian { sigma },
                    None => Window::None,
                },
            };
            let img = params.render(&Display::default()).unwrap();
            assert_eq!(img.to_f32(), grating(&spec, c.contrast));
            let old = crate::stimuli::grating::Grating::new(&spec).render_f64(c.contrast);
            assert_eq!(img.pixels, old);
        }
    }

    #[test]
    fn pixel_values_by_hand() {
        // 16 px, 2 cycles per image at 0°: u = 2π·2·x/16 = π·x/4; L = 0.4·(1 + 0.5·cos u).
        let d = Display {
            background: 0.4,
            clip: Clip::Error,
        };
        let g = GratingParams {
            contrast: 0.5,
            ..GratingParams::sine(16, 2.0)
        };
        let img = g.render(&d).unwrap();
        for j in 0..16 {
            let x = j as f64 - 8.0;
            let want = 0.4 * (1.0 + 0.5 * (std::f64::consts::PI * x / 4.0).cos());
            for i in [0, 5, 15] {
                assert!(close(img.at(i, j, 0), want, 1e-15), "({i}, {j})");
            }
        }
        assert!(close(img.at(3, 8, 0), 0.6, 1e-15)); // x = 0: peak, 0.4·1.5
        assert!(close(img.at(3, 12, 0), 0.2, 1e-15)); // x = 4: trough, 0.4·0.5
        assert!(close(img.at(3, 10, 0), 0.4, 1e-15)); // x = 2: zero crossing
                                                      // Michelson contrast is the contrast; the mean is the background (whole cycles).
        assert!(close(img.michelson(), 0.5, 1e-14));
        assert!(close(img.mean(), 0.4, 1e-15));
        // RMS contrast of a full-field sine: c/√2.
        assert!(close(img.rms_contrast(), 0.5 / 2f64.sqrt(), 1e-14));
    }

    #[test]
    fn orientation_and_phase() {
        let d = Display::default();
        let base = GratingParams {
            contrast: 0.8,
            ..GratingParams::sine(20, 3.0)
        };
        let a = base.render(&d).unwrap();
        let b = GratingParams {
            orientation_deg: 90.0,
            ..base
        }
        .render(&d)
        .unwrap();
        // 90° is 0° transposed.
        for i in 0..20 {
            for j in 0..20 {
                assert!(close(a.at(i, j, 0), b.at(j, i, 0), 1e-15));
            }
        }
        // 45°: constant along the anti-diagonal direction x + y = const.
        let c = GratingParams {
            orientation_deg: 45.0,
            ..base
        }
        .render(&d)
        .unwrap();
        for i in 1..20 {
            for j in 0..19 {
                assert!(close(c.at(i, j, 0), c.at(i - 1, j + 1, 0), 1e-14));
            }
        }
        // 180° phase is the contrast-reversed grating: L(φ) + L(φ + 180°) = 2·L0.
        let p = GratingParams {
            phase_deg: 180.0,
            ..base
        }
        .render(&d)
        .unwrap();
        for (x, y) in a.pixels.iter().zip(&p.pixels) {
            assert!(close(x + y, 1.0, 1e-14));
        }
        // Phase 90° turns the cosine into −sine: odd about the centre column.
        let s = GratingParams {
            phase_deg: 90.0,
            ..base
        }
        .pattern()
        .unwrap();
        for j in 1..10 {
            assert!(close(s[10 + j], -s[10 - j], 1e-14));
        }
        assert!(close(s[10], 0.0, 1e-15));
    }

    #[test]
    fn spectrum_of_sine_and_square() {
        // One row of a full-field grating at 0°, DFT by hand: a sine at 4 cycles per image
        // has all its energy at bin 4; a square wave of period 8 px has only odd harmonics
        // of its fundamental, the third at |X3/X1| = (√2 − 1)² for the sampled sequence
        // 1, 1, 0, −1, −1, −1, 0, 1.
        let dft = |row: &[f64], k: usize| {
            let n = row.len() as f64;
            let (mut re, mut im) = (0.0, 0.0);
            for (x, v) in row.iter().enumerate() {
                let a = -2.0 * std::f64::consts::PI * (k * x) as f64 / n;
                re += v * a.cos();
                im += v * a.sin();
            }
            (re * re + im * im).sqrt()
        };
        let sine = GratingParams::sine(32, 4.0).pattern().unwrap();
        let row = &sine[..32];
        assert!(close(dft(row, 4), 16.0, 1e-12));
        for k in (0..32).filter(|&k| k != 4 && k != 28) {
            assert!(dft(row, k) < 1e-12, "bin {k}");
        }
        let sq = GratingParams {
            waveform: Waveform::Square,
            ..GratingParams::sine(32, 4.0)
        }
        .pattern()
        .unwrap();
        let row = &sq[..32];
        // x = −16 … 15; period 8, so x ≡ 0 (mod 8) at j = 0.
        assert_eq!(&row[..8], &[1.0, 1.0, 0.0, -1.0, -1.0, -1.0, 0.0, 1.0]);
        let x1 = dft(row, 4);
        assert!(close(x1, 4.0 * (2.0 + 2.0 * 2f64.sqrt()), 1e-12));
        assert!(close(dft(row, 12) / x1, (2f64.sqrt() - 1.0).powi(2), 1e-12));
        for k in [0, 8, 16] {
            assert!(dft(row, k) < 1e-12, "even harmonic {k}");
        }
        let img = GratingParams {
            waveform: Waveform::Square,
            contrast: 0.25,
            ..GratingParams::sine(32, 4.0)
        }
        .render(&Display::default())
        .unwrap();
        assert!(close(img.michelson(), 0.25, 1e-15));
        assert!(close(img.mean(), 0.5, 1e-15));
    }

    #[test]
    fn circular_window() {
        // Hard disc of radius 3 around the centre: outside it the background exactly.
        let g = GratingParams {
            window: Window::Circular {
                radius: 3.0,
                edge: 0.0,
            },
            contrast: 0.5,
            ..GratingParams::sine(15, 3.0)
        };
        let img = g.render(&Display::default()).unwrap();
        let full = GratingParams {
            window: Window::None,
            ..g
        }
        .render(&Display::default())
        .unwrap();
        for i in 0..15 {
            for j in 0..15 {
                let (x, y) = (j as f64 - 7.0, i as f64 - 7.0);
                let want = if x * x + y * y <= 9.0 {
                    full.at(i, j, 0)
                } else {
                    0.5
                };
                assert_eq!(img.at(i, j, 0), want);
            }
        }
        assert_eq!(img.at(7, 7, 0), 0.75);
    }

    #[test]
    fn invalid_parameters_are_errors() {
        let ok = GratingParams::sine(8, 1.0);
        let bad = [
            GratingParams { size: 0, ..ok },
            GratingParams { size: 9000, ..ok },
            GratingParams {
                frequency: f64::NAN,
                ..ok
            },
            GratingParams {
                frequency: -1.0,
                ..ok
            },
            GratingParams {
                orientation_deg: f64::INFINITY,
                ..ok
            },
            GratingParams {
                phase_deg: f64::NEG_INFINITY,
                ..ok
            },
            // Finite but beyond what f64 radians can hold (θ·π/180 overflows, or no digit
            // of the phase is left): errors, not NaN images.
            GratingParams {
                orientation_deg: 1.7e308,
                ..ok
            },
            GratingParams {
                phase_deg: -1e7,
                ..ok
            },
            GratingParams {
                frequency: 1e300,
                ..ok
            },
            GratingParams {
                contrast: 1.5,
                ..ok
            },
            GratingParams {
                contrast: f64::NAN,
                ..ok
            },
            GratingParams {
                window: Window::Gaussian { sigma: -1.0 },
                ..ok
            },
        ];
        for b in bad {
            assert!(b.render(&Display::default()).is_err(), "{b:?}");
        }
        // Contrast 1 on a background of 0.6 reaches 1.2: an error unless clamped.
        let d = Display {
            background: 0.6,
            clip: Clip::Error,
        };
        assert!(matches!(
            ok.render(&d),
            Err(StimulusError::OutOfRange { .. })
        ));
        let img = ok
            .render(&Display {
                clip: Clip::Clamp,
                ..d
            })
            .unwrap();
        assert!(img.clipped > 0);
        assert!(img.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
