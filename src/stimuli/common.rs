//! What every kind of the stimulus library shares: the pixel grid, the background and
//! clipping policy ([`Display`]), the rendered [`Image`], windows, and parameter checks.
//!
//! # The model
//!
//! Every generated stimulus (gratings, Gabors, sums, noise, Vernier lines, patches) is a
//! *modulation* `m(x, y)` about a background luminance `L0`, rendered as
//!
//! ```text
//! L(x, y) = L0 · (1 + m(x, y))
//! ```
//!
//! so `m` is the Weber contrast of each pixel, and every contrast is defined about the
//! background. Images are single-channel, `size × size`, row-major (rows y, columns x),
//! values in [0, 1], computed in f64 ([`Image::to_f32`] gives the `Vec<f32>` the rest of
//! psyrun uses; [`super::repeat_channels`] makes RGB).
//!
//! # The grid
//!
//! As in [`grating`](mod@super::grating): column `j`, row `i` sit at `x = j − ⌊size/2⌋`,
//! `y = i − ⌊size/2⌋` (pixels as unit squares centred on those points), so the centre pixel
//! is at `(⌊size/2⌋, ⌊size/2⌋)` for odd and even sizes alike; y grows downwards.

use std::f64::consts::PI;

/// The largest image side any generator accepts (larger sizes are an error, not an
/// allocation failure).
pub const MAX_SIZE: u32 = 4096;

/// Why a stimulus cannot be made from its parameters. Every variant names the parameter.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StimulusError {
    /// A number is not finite or outside its range.
    #[error("`{param}` is {value}, but it must be {expected}")]
    Invalid {
        /// The parameter.
        param: &'static str,
        /// The value given.
        value: f64,
        /// What is allowed, in words (e.g. "finite and > 0").
        expected: &'static str,
    },
    /// The image size is 0 or above [`MAX_SIZE`].
    #[error("`size` is {0} px, but it must be between 1 and {MAX_SIZE}")]
    Size(u32),
    /// The components of a sum have different sizes.
    #[error("component {index} is {found} px but the sum is {expected} px")]
    SizeMismatch {
        /// 0-based index of the component.
        index: usize,
        /// Its size.
        found: u32,
        /// The sum's size.
        expected: u32,
    },
    /// A sum without components.
    #[error("a sum needs at least one component")]
    NoComponents,
    /// A band-pass noise whose band holds no frequency of the image's grid.
    #[error(
        "the band {low:.4}..{high:.4} cycles/image holds no frequency of a {size} px image \
         (frequencies are whole cycles, up to {size}/2)"
    )]
    EmptyBand {
        /// Lower edge, cycles per image.
        low: f64,
        /// Upper edge, cycles per image.
        high: f64,
        /// Image size.
        size: u32,
    },
    /// A noise image with no variance left to scale (e.g. a 1-pixel image).
    #[error("the noise has no variance to scale to an RMS contrast (image too small)")]
    NoVariance,
    /// Parts of a Vernier stimulus overlap.
    #[error("{0}")]
    Overlap(&'static str),
    /// Under [`Clip::Error`], the luminance leaves [0, 1].
    #[error(
        "{count} pixels leave [0, 1] (luminance from {min:.6} to {max:.6}); lower the \
         contrasts or the background, or ask for clipping"
    )]
    OutOfRange {
        /// Pixels below 0 or above 1.
        count: usize,
        /// The lowest luminance.
        min: f64,
        /// The highest luminance.
        max: f64,
    },
}

/// What happens to luminances outside [0, 1]. Never silent: either an error, or the number
/// of clipped pixels is reported in [`Image::clipped`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clip {
    /// Any pixel outside [0, 1] is [`StimulusError::OutOfRange`] (the default).
    #[default]
    Error,
    /// Pixels are clamped to [0, 1] and counted in [`Image::clipped`].
    Clamp,
}

/// The background luminance and the clipping policy a stimulus is rendered with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Display {
    /// Background luminance `L0`, in (0, 1]; default 0.5 (the tutorial's grey).
    pub background: f64,
    /// Clipping policy; default [`Clip::Error`].
    pub clip: Clip,
}

impl Default for Display {
    fn default() -> Self {
        Display {
            background: 0.5,
            clip: Clip::Error,
        }
    }
}

/// A rendered image: `channels` values per pixel, row-major, HWC, in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// The values, `height × width × channels`.
    pub pixels: Vec<f64>,
    /// How many pixels were clamped into [0, 1] under [`Clip::Clamp`] (0 otherwise).
    pub clipped: usize,
}

impl Image {
    /// The values as f32 (the representation of [`grating`](mod@super::grating) and the trials).
    pub fn to_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&v| v as f32).collect()
    }

    /// The mean of all values.
    pub fn mean(&self) -> f64 {
        mean(&self.pixels)
    }

    /// RMS contrast: the standard deviation of the values over their mean (population).
    pub fn rms_contrast(&self) -> f64 {
        let m = self.mean();
        let var = self.pixels.iter().map(|v| (v - m) * (v - m)).sum::<f64>()
            / self.pixels.len().max(1) as f64;
        var.sqrt() / m
    }

    /// Michelson contrast `(max − min)/(max + min)` of the values.
    pub fn michelson(&self) -> f64 {
        let (lo, hi) = min_max(&self.pixels);
        (hi - lo) / (hi + lo)
    }

    /// The value at row `i`, column `j`, channel `c`.
    pub fn at(&self, i: usize, j: usize, c: usize) -> f64 {
        let ch = usize::from(self.channels);
        self.pixels[(i * self.width as usize + j) * ch + c]
    }
}

/// The mean of `v` (0 for an empty slice).
pub(crate) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The smallest and largest of `v`.
pub(crate) fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// `size` checked: 1..=[`MAX_SIZE`].
pub(crate) fn check_size(size: u32) -> Result<(), StimulusError> {
    if size == 0 || size > MAX_SIZE {
        return Err(StimulusError::Size(size));
    }
    Ok(())
}

/// A finite number checked against `ok`, else [`StimulusError::Invalid`].
pub(crate) fn check(
    param: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<f64, StimulusError> {
    if value.is_finite() && ok {
        Ok(value)
    } else {
        Err(StimulusError::Invalid {
            param,
            value,
            expected,
        })
    }
}

/// An angle in degrees: finite, magnitude at most 1e6 (larger ones lose all precision in
/// radians, and overflow near f64::MAX).
pub(crate) fn angle(param: &'static str, value: f64) -> Result<f64, StimulusError> {
    check(
        param,
        value,
        value.abs() <= 1e6,
        "finite, magnitude at most 1e6 degrees",
    )
}

/// A spatial frequency in cycles per image: in [0, 1e6].
pub(crate) fn frequency(value: f64) -> Result<f64, StimulusError> {
    check(
        "frequency",
        value,
        (0.0..=1e6).contains(&value),
        "in [0, 1e6] cycles per image",
    )
}

/// A Gaussian's σ in pixels: in [1e-3, 1e9] (σ² stays a normal number).
pub(crate) fn sigma(param: &'static str, value: f64) -> Result<f64, StimulusError> {
    check(
        param,
        value,
        (1e-3..=1e9).contains(&value),
        "in [0.001, 1e9] px",
    )
}

/// A finite number.
pub(crate) fn finite(param: &'static str, value: f64) -> Result<f64, StimulusError> {
    check(param, value, true, "finite")
}

/// A finite number > 0.
pub(crate) fn positive(param: &'static str, value: f64) -> Result<f64, StimulusError> {
    check(param, value, value > 0.0, "finite and > 0")
}

/// A finite number ≥ 0.
pub(crate) fn non_negative(param: &'static str, value: f64) -> Result<f64, StimulusError> {
    check(param, value, value >= 0.0, "finite and >= 0")
}

impl Display {
    /// Checks the background: finite, in (0, 1].
    pub fn validate(&self) -> Result<(), StimulusError> {
        check(
            "background",
            self.background,
            self.background > 0.0 && self.background <= 1.0,
            "in (0, 1]",
        )?;
        Ok(())
    }

    /// Renders a modulation `m` (row-major, `size × size`) as `L0·(1 + m)` under the
    /// clipping policy.
    pub fn render(&self, size: u32, modulation: &[f64]) -> Result<Image, StimulusError> {
        self.validate()?;
        let l0 = self.background;
        let mut pixels: Vec<f64> = modulation.iter().map(|&m| l0 * (1.0 + m)).collect();
        let outside = pixels.iter().filter(|v| !(0.0..=1.0).contains(*v)).count();
        let mut clipped = 0;
        if outside > 0 {
            match self.clip {
                Clip::Error => {
                    let (min, max) = min_max(&pixels);
                    return Err(StimulusError::OutOfRange {
                        count: outside,
                        min,
                        max,
                    });
                }
                Clip::Clamp => {
                    // NaN cannot arise from checked parameters; map it to the background.
                    for v in &mut pixels {
                        *v = if v.is_nan() { l0 } else { v.clamp(0.0, 1.0) };
                    }
                    clipped = outside;
                }
            }
        }
        Ok(Image {
            width: size,
            height: size,
            channels: 1,
            pixels,
            clipped,
        })
    }
}

/// The grid coordinate of index `i` (column or row) in a `size`-pixel image.
pub(crate) fn coord(size: u32, i: usize) -> f64 {
    (i as i64 - i64::from(size / 2)) as f64
}

/// A window (aperture) multiplying a pattern, centred on the centre pixel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Window {
    /// No window: the pattern fills the image.
    #[default]
    None,
    /// A disc of `radius` px: 1 for `r ≤ radius`, 0 for `r ≥ radius + edge`, and a raised
    /// cosine `½(1 + cos(π(r − radius)/edge))` between (a hard edge for `edge = 0`, tested
    /// at each pixel's centre).
    Circular {
        /// Radius of the flat part, px.
        radius: f64,
        /// Width of the soft edge, px (0: hard).
        edge: f64,
    },
    /// A Gaussian `exp(−r²/(2σ²))`, 1 at the centre (σ in [0.001, 1e9] px).
    Gaussian {
        /// Standard deviation, px.
        sigma: f64,
    },
}

impl Window {
    /// Checks the window's numbers.
    pub fn validate(&self) -> Result<(), StimulusError> {
        match *self {
            Window::None => {}
            Window::Circular { radius, edge } => {
                non_negative("window radius", radius)?;
                non_negative("window edge", edge)?;
            }
            Window::Gaussian { sigma } => {
                self::sigma("window sigma", sigma)?;
            }
        }
        Ok(())
    }

    /// The window's values on the grid, row-major (`None` for [`Window::None`]).
    pub(crate) fn values(&self, size: u32) -> Option<Vec<f64>> {
        let n = size as usize;
        match *self {
            Window::None => None,
            Window::Gaussian { sigma } => {
                // Separable, as the tutorial's envelope in grating.rs.
                let g: Vec<f64> = (0..n)
                    .map(|k| {
                        let v = coord(size, k);
                        (-(v * v) / (2.0 * sigma * sigma)).exp()
                    })
                    .collect();
                Some(
                    (0..n * n)
                        .map(|p| g[p % n] * g[p / n])
                        .collect::<Vec<f64>>(),
                )
            }
            Window::Circular { radius, edge } => Some(
                (0..n * n)
                    .map(|p| {
                        let (x, y) = (coord(size, p % n), coord(size, p / n));
                        soft_step((x * x + y * y).sqrt(), radius, edge)
                    })
                    .collect(),
            ),
        }
    }
}

/// 1 for `d ≤ limit`, 0 for `d ≥ limit + edge`, a raised cosine between (for `edge = 0`,
/// 1 exactly when `d ≤ limit`).
pub(crate) fn soft_step(d: f64, limit: f64, edge: f64) -> f64 {
    if d <= limit {
        1.0
    } else if edge <= 0.0 || d >= limit + edge {
        0.0
    } else {
        0.5 * (1.0 + (PI * (d - limit) / edge).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_clip_policy() {
        let d = Display::default();
        let img = d.render(2, &[0.0, 1.0, -1.0, 0.5]).unwrap();
        assert_eq!(img.pixels, vec![0.5, 1.0, 0.0, 0.75]);
        assert_eq!(img.clipped, 0);
        // 1.2 and -1.5 leave [0, 1]: an error by default, counted under Clamp.
        let err = d.render(2, &[1.2, -1.5, 0.0, 0.0]).unwrap_err();
        assert_eq!(
            err,
            StimulusError::OutOfRange {
                count: 2,
                min: -0.25,
                max: 1.1
            }
        );
        let clamp = Display {
            clip: Clip::Clamp,
            ..d
        };
        let img = clamp.render(2, &[1.2, -1.5, 0.0, 0.0]).unwrap();
        assert_eq!(img.pixels, vec![1.0, 0.0, 0.5, 0.5]);
        assert_eq!(img.clipped, 2);
        for bg in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let bad = Display {
                background: bg,
                ..d
            };
            assert!(matches!(
                bad.render(1, &[0.0]),
                Err(StimulusError::Invalid {
                    param: "background",
                    ..
                })
            ));
        }
    }

    #[test]
    fn contrast_measures() {
        let img = Image {
            width: 2,
            height: 2,
            channels: 1,
            pixels: vec![0.25, 0.75, 0.25, 0.75],
            clipped: 0,
        };
        assert_eq!(img.mean(), 0.5);
        assert_eq!(img.michelson(), 0.5);
        assert_eq!(img.rms_contrast(), 0.5);
    }

    #[test]
    fn windows() {
        // Hard disc of radius 1 on a 5 px grid: the centre and its 4 neighbours.
        let w = Window::Circular {
            radius: 1.0,
            edge: 0.0,
        }
        .values(5)
        .unwrap();
        assert_eq!(w.iter().sum::<f64>(), 5.0);
        assert_eq!(w[2 * 5 + 2], 1.0);
        assert_eq!(w[2 * 5 + 3], 1.0);
        assert_eq!(w[3 * 5 + 3], 0.0); // r = √2
                                       // Soft edge: half way through the edge is 0.5.
        assert!((soft_step(1.5, 1.0, 1.0) - 0.5).abs() < 1e-15);
        assert_eq!(soft_step(2.0, 1.0, 1.0), 0.0);
        let g = Window::Gaussian { sigma: 2.0 }.values(5).unwrap();
        assert_eq!(g[12], 1.0);
        assert!((g[0] - (-8.0f64 / 8.0).exp()).abs() < 1e-15); // (−2, −2): r² = 8
        for bad in [
            Window::Gaussian { sigma: 0.0 },
            Window::Gaussian { sigma: f64::NAN },
            Window::Circular {
                radius: f64::INFINITY,
                edge: 0.0,
            },
            Window::Circular {
                radius: 1.0,
                edge: -1.0,
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
