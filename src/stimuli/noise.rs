//! Noise: white (uniform or Gaussian), 1/f^α and band-pass, seeded, at an exact RMS
//! contrast about the background.
//!
//! 1. White noise `w`: `size²` independent draws from the stream
//!    [`rng::stream`]`(seed, "noise", index)`, row-major: uniform on [−1, 1) as
//!    `2u − 1` with `u` from [`rng::unit_f64`], or standard normal by Box–Muller from two
//!    such draws (`√(−2 ln(1 − u₁))·cos(2πu₂)` then `…·sin(2πu₂)`, both used).
//! 2. Filtering (not for [`Spectrum::White`]): the 2-D DFT of `w` ([`super::fft`]) is
//!    multiplied by a real gain `H(f)` that depends only on the radial frequency
//!    `f = √(kx² + ky²)` in cycles per image (`kx, ky` the signed bins, up to `size/2`), the
//!    DC term set to 0, and transformed back (the gain is even, so the result is real):
//!    * [`Spectrum::Power`]`{ alpha }`: `H = f^(−α/2)`, so the power spectrum falls as
//!      `1/f^α` (α = 1 pink, α = 2 brown or "1/f amplitude", the spectrum of natural
//!      images; α = 0 white).
//!    * [`Spectrum::Band`]`{ centre, octaves }`: an ideal band-pass, `H = 1` for
//!      `centre·2^(−octaves/2) ≤ f ≤ centre·2^(octaves/2)` and 0 elsewhere.
//! 3. Scaling: `m = c·(v − mean v)/sd v` (population SD), so the image `L0·(1 + m)` has mean
//!    `L0` and RMS contrast (SD over mean) exactly `c`.
//!
//! Gaussian noise has unbounded tails: under the default [`Clip::Error`] a large RMS
//! contrast is an error; with [`Clip::Clamp`] the clipped pixels are counted (and the RMS
//! contrast is then no longer exact).
//!
//! [`Clip::Error`]: super::common::Clip::Error
//! [`Clip::Clamp`]: super::common::Clip::Clamp

use super::common::{check, check_size, Display, Image, StimulusError};
use super::fft::{fft2, signed_bin, Complex};
use super::rng;

/// The name of the noise's random stream.
pub const NOISE: &str = "noise";

/// The distribution of the white noise that every kind starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// Uniform on [−1, 1).
    Uniform,
    /// Standard normal (Box–Muller).
    #[default]
    Gaussian,
}

/// The power spectrum of the noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Spectrum {
    /// Unfiltered white noise.
    White,
    /// Power ∝ 1/f^α, α in [−10, 10].
    Power {
        /// The exponent of the power spectrum.
        alpha: f64,
    },
    /// An ideal band of `octaves` (full width, > 0, ≤ 20) around `centre` cycles per image.
    Band {
        /// Centre frequency (geometric), cycles per image.
        centre: f64,
        /// Full bandwidth, octaves.
        octaves: f64,
    },
}

impl Spectrum {
    /// The band's edges `(low, high)` in cycles per image, for [`Spectrum::Band`].
    pub fn band_edges(&self) -> Option<(f64, f64)> {
        match *self {
            Spectrum::Band { centre, octaves } => Some((
                centre * (-octaves / 2.0).exp2(),
                centre * (octaves / 2.0).exp2(),
            )),
            _ => None,
        }
    }

    /// The amplitude gain at radial frequency `f > 0`.
    fn gain(&self, f: f64) -> f64 {
        match *self {
            Spectrum::White => 1.0,
            Spectrum::Power { alpha } => f.powf(-alpha / 2.0),
            Spectrum::Band { .. } => {
                let (lo, hi) = self.band_edges().unwrap_or((0.0, 0.0));
                if (lo..=hi).contains(&f) {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// A noise image's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseParams {
    /// Image side, px.
    pub size: u32,
    /// The white noise's distribution.
    pub source: Source,
    /// The spectrum.
    pub spectrum: Spectrum,
    /// RMS contrast (SD of luminance over its mean), ≥ 0.
    pub rms_contrast: f64,
    /// The experiment's seed.
    pub seed: u64,
    /// The image's index in the stream (e.g. the trial).
    pub index: u64,
}

impl Default for NoiseParams {
    /// 224 px, Gaussian white noise at RMS contrast 0.1, seed 0, index 0.
    fn default() -> Self {
        NoiseParams {
            size: 224,
            source: Source::Gaussian,
            spectrum: Spectrum::White,
            rms_contrast: 0.1,
            seed: 0,
            index: 0,
        }
    }
}

impl NoiseParams {
    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), StimulusError> {
        check_size(self.size)?;
        check(
            "rms_contrast",
            self.rms_contrast,
            self.rms_contrast >= 0.0,
            "finite and >= 0",
        )?;
        match self.spectrum {
            Spectrum::White => {}
            Spectrum::Power { alpha } => {
                check(
                    "alpha",
                    alpha,
                    (-10.0..=10.0).contains(&alpha),
                    "in [-10, 10]",
                )?;
            }
            Spectrum::Band { centre, octaves } => {
                check("centre", centre, centre > 0.0, "finite and > 0")?;
                check(
                    "octaves",
                    octaves,
                    octaves > 0.0 && octaves <= 20.0,
                    "in (0, 20]",
                )?;
                let (low, high) = self.spectrum.band_edges().unwrap_or((0.0, 0.0));
                let n = self.size as usize;
                let any = (0..n).any(|ky| {
                    (0..n).any(|kx| {
                        let f = signed_bin(kx, n).hypot(signed_bin(ky, n));
                        f > 0.0 && (low..=high).contains(&f)
                    })
                });
                if !any {
                    return Err(StimulusError::EmptyBand {
                        low,
                        high,
                        size: self.size,
                    });
                }
            }
        }
        Ok(())
    }

    /// The white noise before filtering and scaling (row-major, `size²` draws).
    pub fn white(&self) -> Result<Vec<f64>, StimulusError> {
        check_size(self.size)?;
        let count = (self.size as usize).pow(2);
        let mut g = rng::stream(self.seed, NOISE, self.index);
        let mut out = Vec::with_capacity(count + 1);
        match self.source {
            Source::Uniform => {
                out.extend((0..count).map(|_| 2.0 * rng::unit_f64(&mut g) - 1.0));
            }
            Source::Gaussian => {
                while out.len() < count {
                    let u1 = rng::unit_f64(&mut g);
                    let u2 = rng::unit_f64(&mut g);
                    let r = (-2.0 * (1.0 - u1).ln()).sqrt();
                    let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
                    out.push(r * c);
                    out.push(r * s);
                }
                out.truncate(count);
            }
        }
        Ok(out)
    }

    /// The filtered noise before scaling (for the white spectrum, the draws themselves).
    pub fn filtered(&self) -> Result<Vec<f64>, StimulusError> {
        self.validate()?;
        let w = self.white()?;
        if self.spectrum == Spectrum::White {
            return Ok(w);
        }
        let n = self.size as usize;
        let mut z: Vec<Complex> = w.into_iter().map(Complex::real).collect();
        fft2(&mut z, n, false);
        for (p, v) in z.iter_mut().enumerate() {
            let f = signed_bin(p % n, n).hypot(signed_bin(p / n, n));
            let h = if f > 0.0 { self.spectrum.gain(f) } else { 0.0 };
            v.re *= h;
            v.im *= h;
        }
        fft2(&mut z, n, true);
        Ok(z.into_iter().map(|v| v.re).collect())
    }

    /// The modulation: the filtered noise with mean 0 and SD `rms_contrast`.
    pub fn modulation(&self) -> Result<Vec<f64>, StimulusError> {
        let v = self.filtered()?;
        let mean = super::common::mean(&v);
        let sd = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64).sqrt();
        if sd.is_nan() || sd <= 1e-300 {
            return Err(StimulusError::NoVariance);
        }
        let c = self.rms_contrast;
        Ok(v.into_iter().map(|x| c * ((x - mean) / sd)).collect())
    }

    /// The noise on `display`'s background.
    pub fn render(&self, display: &Display) -> Result<Image, StimulusError> {
        display.render(self.size, &self.modulation()?)
    }
}

/// The power spectrum of an `n × n` image averaged over annuli of integer radius:
/// `(f, mean |X|²)` for `f = 1 … n/2` (bins rounded to the nearest integer radius).
pub fn radial_power(image: &[f64], n: usize) -> Vec<(f64, f64)> {
    let mut z: Vec<Complex> = image.iter().map(|&v| Complex::real(v)).collect();
    fft2(&mut z, n, false);
    let half = n / 2;
    let mut sum = vec![0.0; half + 1];
    let mut count = vec![0usize; half + 1];
    for (p, v) in z.iter().enumerate() {
        let r = signed_bin(p % n, n).hypot(signed_bin(p / n, n)).round() as usize;
        if r <= half {
            sum[r] += v.norm_sqr();
            count[r] += 1;
        }
    }
    (1..=half)
        .filter(|&r| count[r] > 0)
        .map(|r| (r as f64, sum[r] / count[r] as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stimuli::common::Clip;

    fn params(spectrum: Spectrum, source: Source) -> NoiseParams {
        NoiseParams {
            size: 128,
            source,
            spectrum,
            rms_contrast: 0.2,
            seed: 7,
            index: 0,
        }
    }

    /// Least-squares slope of log power against log frequency.
    fn slope(points: &[(f64, f64)]) -> f64 {
        let xs: Vec<f64> = points.iter().map(|p| p.0.ln()).collect();
        let ys: Vec<f64> = points.iter().map(|p| p.1.ln()).collect();
        let (mx, my) = (
            crate::stimuli::common::mean(&xs),
            crate::stimuli::common::mean(&ys),
        );
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
        sxy / sxx
    }

    #[test]
    fn rms_contrast_and_mean_are_exact() {
        let d = Display {
            background: 0.4,
            clip: Clip::Error,
        };
        for spectrum in [
            Spectrum::White,
            Spectrum::Power { alpha: 1.0 },
            Spectrum::Power { alpha: 2.0 },
            Spectrum::Band {
                centre: 8.0,
                octaves: 1.0,
            },
        ] {
            for source in [Source::Uniform, Source::Gaussian] {
                let p = NoiseParams {
                    rms_contrast: 0.15,
                    size: 64,
                    ..params(spectrum, source)
                };
                let img = p.render(&d).unwrap();
                assert!((img.mean() - 0.4).abs() < 1e-14, "{spectrum:?}");
                assert!((img.rms_contrast() - 0.15).abs() < 1e-12, "{spectrum:?}");
            }
        }
        // Zero contrast is the uniform background.
        let zero = NoiseParams {
            rms_contrast: 0.0,
            ..params(Spectrum::White, Source::Gaussian)
        };
        assert!(zero.render(&d).unwrap().pixels.iter().all(|&v| v == 0.4));
    }

    #[test]
    fn seeded_and_deterministic() {
        let a = params(Spectrum::Power { alpha: 1.0 }, Source::Gaussian);
        let img = a.modulation().unwrap();
        assert_eq!(img, a.modulation().unwrap());
        for other in [NoiseParams { seed: 8, ..a }, NoiseParams { index: 1, ..a }] {
            let o = other.modulation().unwrap();
            assert_ne!(img, o);
            // Independent draws: correlation near 0 (|r| < 4/√n for n = 16384).
            let r: f64 = img.iter().zip(&o).map(|(x, y)| x * y).sum::<f64>()
                / (img.len() as f64 * 0.2 * 0.2);
            assert!(r.abs() < 4.0 / 128.0, "r = {r}");
        }
        // The stream is documented: the first uniform draw is 2u − 1 of the first word.
        let u = NoiseParams {
            size: 2,
            ..params(Spectrum::White, Source::Uniform)
        };
        let mut g = rng::stream(7, NOISE, 0);
        let first = 2.0 * rng::unit_f64(&mut g) - 1.0;
        assert_eq!(u.white().unwrap()[0], first);
    }

    #[test]
    fn white_noise_distributions() {
        // Kurtosis: 1.8 for the uniform, 3 for the normal (SE ≈ 0.04 at n = 16384).
        let kurt = |v: &[f64]| {
            let n = v.len() as f64;
            let m = v.iter().sum::<f64>() / n;
            let m2 = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
            let m4 = v.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n;
            m4 / (m2 * m2)
        };
        let u = params(Spectrum::White, Source::Uniform).white().unwrap();
        let g = params(Spectrum::White, Source::Gaussian).white().unwrap();
        assert!((kurt(&u) - 1.8).abs() < 0.05, "{}", kurt(&u));
        assert!((kurt(&g) - 3.0).abs() < 0.2, "{}", kurt(&g));
        assert!(u.iter().all(|v| (-1.0..1.0).contains(v)));
        // Scaled to RMS c, the uniform's range is ±√3·c (to the sample SD's error).
        let m = params(Spectrum::White, Source::Uniform)
            .modulation()
            .unwrap();
        let peak = m.iter().fold(0f64, |a, v| a.max(v.abs())) / 0.2;
        assert!((peak - 3f64.sqrt()).abs() < 0.02, "{peak}");
        // White noise has a flat spectrum: slope of log power about 0.
        let s = slope(&radial_power(&g, 128));
        eprintln!(
            "white: fitted slope {s:.4}, kurtosis {:.3} (uniform), {:.3} (normal)",
            kurt(&u),
            kurt(&g)
        );
        assert!(s.abs() < 0.1, "white slope {s}");
    }

    #[test]
    fn power_law_slope() {
        for alpha in [1.0, 2.0, 0.5] {
            let m = params(Spectrum::Power { alpha }, Source::Gaussian)
                .modulation()
                .unwrap();
            let s = slope(&radial_power(&m, 128));
            eprintln!("alpha {alpha}: fitted slope {s:.4}");
            assert!((s + alpha).abs() < 0.05, "alpha {alpha}: slope {s}");
        }
    }

    #[test]
    fn band_pass_energy_in_band() {
        let spectrum = Spectrum::Band {
            centre: 16.0,
            octaves: 1.0,
        };
        let (lo, hi) = spectrum.band_edges().unwrap();
        assert!((lo - 16.0 / 2f64.sqrt()).abs() < 1e-12 && (hi - 16.0 * 2f64.sqrt()).abs() < 1e-12);
        for source in [Source::Uniform, Source::Gaussian] {
            let m = params(spectrum, source).modulation().unwrap();
            let n = 128;
            let mut z: Vec<Complex> = m.iter().map(|&v| Complex::real(v)).collect();
            fft2(&mut z, n, false);
            let (mut inside, mut total) = (0.0, 0.0);
            for (p, v) in z.iter().enumerate() {
                let f = signed_bin(p % n, n).hypot(signed_bin(p / n, n));
                total += v.norm_sqr();
                if (lo..=hi).contains(&f) {
                    inside += v.norm_sqr();
                }
            }
            let fraction = inside / total;
            eprintln!("{source:?}: energy fraction in band {fraction:.15}");
            assert!(fraction > 1.0 - 1e-12, "fraction {fraction}");
            // Parseval: total power is n²·Σm² = n⁴·c².
            let want = (n as f64).powi(4) * 0.04;
            assert!((total - want).abs() / want < 1e-10);
        }
        // A half-octave band around 40 cycles/image keeps ~nothing outside 33.6..47.6.
        let narrow = Spectrum::Band {
            centre: 40.0,
            octaves: 0.5,
        };
        let m = params(narrow, Source::Gaussian).modulation().unwrap();
        let power = radial_power(&m, 128);
        let outside: f64 = power
            .iter()
            .filter(|(f, _)| *f < 33.0 || *f > 48.0)
            .map(|p| p.1)
            .sum();
        assert!(outside < 1e-20 * power.iter().map(|p| p.1).sum::<f64>());
    }

    #[test]
    fn invalid_parameters_are_errors() {
        let ok = params(Spectrum::White, Source::Gaussian);
        let d = Display::default();
        for bad in [
            NoiseParams { size: 0, ..ok },
            NoiseParams {
                rms_contrast: f64::NAN,
                ..ok
            },
            NoiseParams {
                rms_contrast: -0.1,
                ..ok
            },
            NoiseParams {
                spectrum: Spectrum::Power { alpha: f64::NAN },
                ..ok
            },
            NoiseParams {
                spectrum: Spectrum::Power { alpha: 50.0 },
                ..ok
            },
            NoiseParams {
                spectrum: Spectrum::Band {
                    centre: f64::INFINITY,
                    octaves: 1.0,
                },
                ..ok
            },
            NoiseParams {
                spectrum: Spectrum::Band {
                    centre: 8.0,
                    octaves: 0.0,
                },
                ..ok
            },
        ] {
            assert!(bad.render(&d).is_err(), "{bad:?}");
        }
        // A band between whole frequencies, or above Nyquist, is empty.
        for (centre, octaves) in [(0.2, 1.0), (200.0, 0.5)] {
            let p = NoiseParams {
                size: 16,
                spectrum: Spectrum::Band { centre, octaves },
                ..ok
            };
            assert!(matches!(p.render(&d), Err(StimulusError::EmptyBand { .. })));
        }
        // One pixel has no variance.
        let one = NoiseParams { size: 1, ..ok };
        assert_eq!(one.render(&d), Err(StimulusError::NoVariance));
        // Gaussian noise at RMS 0.5 leaves [0, 1] at L0 = 0.5: an error, or clamped and counted.
        let loud = NoiseParams {
            rms_contrast: 0.5,
            ..ok
        };
        assert!(matches!(
            loud.render(&d),
            Err(StimulusError::OutOfRange { .. })
        ));
        let img = loud
            .render(&Display {
                clip: Clip::Clamp,
                ..d
            })
            .unwrap();
        // P(|z| > 2) ≈ 4.55 % of 16384 pixels.
        let frac = img.clipped as f64 / 16384.0;
        assert!((frac - 0.0455).abs() < 0.006, "{frac}");
    }
}
