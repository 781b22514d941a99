//! Plaids and sums: several components about one background, e.g. a mask plus a target.
//!
//! ```text
//! L(x, y) = L0 · (1 + Σᵢ mᵢ(x, y))
//! ```
//!
//! where `mᵢ` is component `i`'s modulation, its contrast defined about the background as
//! if it were shown alone (so a plaid of two full-field gratings of Michelson contrast
//! `c₁, c₂` at whole cycles reaches `L0·(1 ± (c₁ + c₂))` where their peaks coincide). The
//! background is the [`Display`]'s; a sum that leaves [0, 1] is an error under the default
//! [`Clip::Error`](super::common::Clip::Error), which says how many pixels and how far, or is
//! clamped and counted in [`Image::clipped`] under [`Clip::Clamp`](super::common::Clip::Clamp):
//! never silent.

use super::common::{check_size, Display, Image, StimulusError};
use super::gabor::GaborParams;
use super::gratings::GratingParams;
use super::noise::NoiseParams;
use super::patch::PatchParams;
use super::vernier::VernierParams;

/// One component of a sum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Component {
    /// A grating.
    Grating(GratingParams),
    /// A Gabor.
    Gabor(GaborParams),
    /// Noise.
    Noise(NoiseParams),
    /// A uniform patch.
    Patch(PatchParams),
    /// A Vernier stimulus (with its flankers).
    Vernier(VernierParams),
}

impl Component {
    /// The component's image size.
    pub fn size(&self) -> u32 {
        match self {
            Component::Grating(p) => p.size,
            Component::Gabor(p) => p.size,
            Component::Noise(p) => p.size,
            Component::Patch(p) => p.size,
            Component::Vernier(p) => p.size,
        }
    }

    /// The component's modulation alone.
    pub fn modulation(&self) -> Result<Vec<f64>, StimulusError> {
        match self {
            Component::Grating(p) => p.modulation(),
            Component::Gabor(p) => p.modulation(),
            Component::Noise(p) => p.modulation(),
            Component::Patch(p) => p.modulation(),
            Component::Vernier(p) => p.modulation(),
        }
    }
}

/// A sum of components of one size.
#[derive(Clone, Debug, PartialEq)]
pub struct SumParams {
    /// The components, at least one, all of the same size.
    pub components: Vec<Component>,
}

impl SumParams {
    /// A plaid: two gratings (usually at different orientations).
    pub fn plaid(a: GratingParams, b: GratingParams) -> Self {
        SumParams {
            components: vec![Component::Grating(a), Component::Grating(b)],
        }
    }

    /// The common size, checked.
    pub fn size(&self) -> Result<u32, StimulusError> {
        let first = self
            .components
            .first()
            .ok_or(StimulusError::NoComponents)?
            .size();
        check_size(first)?;
        for (index, c) in self.components.iter().enumerate() {
            if c.size() != first {
                return Err(StimulusError::SizeMismatch {
                    index,
                    found: c.size(),
                    expected: first,
                });
            }
        }
        Ok(first)
    }

    /// The summed modulation `Σ mᵢ`, added in the components' order.
    pub fn modulation(&self) -> Result<Vec<f64>, StimulusError> {
        let n = self.size()? as usize;
        let mut sum = vec![0.0; n * n];
        for c in &self.components {
            for (s, m) in sum.iter_mut().zip(c.modulation()?) {
                *s += m;
            }
        }
        Ok(sum)
    }

    /// The sum on `display`'s background.
    pub fn render(&self, display: &Display) -> Result<Image, StimulusError> {
        display.render(self.size()?, &self.modulation()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stimuli::common::Clip;
    use crate::stimuli::gabor::Envelope;

    fn grating(deg: f64, c: f64) -> GratingParams {
        GratingParams {
            orientation_deg: deg,
            contrast: c,
            ..GratingParams::sine(16, 2.0)
        }
    }

    #[test]
    fn plaid_values_by_hand() {
        // 0° + 90°, 2 cycles per 16 px, 0.25 each: L = 0.5·(1 + 0.25·cos(πx/4) + 0.25·cos(πy/4)).
        let img = SumParams::plaid(grating(0.0, 0.25), grating(90.0, 0.25))
            .render(&Display::default())
            .unwrap();
        let pi = std::f64::consts::PI;
        for i in 0..16 {
            for j in 0..16 {
                let (x, y) = (j as f64 - 8.0, i as f64 - 8.0);
                let want = 0.5 * (1.0 + 0.25 * (pi * x / 4.0).cos() + 0.25 * (pi * y / 4.0).cos());
                assert!((img.at(i, j, 0) - want).abs() < 1e-15, "({x}, {y})");
            }
        }
        assert_eq!(img.at(8, 8, 0), 0.75); // both peaks
        assert!((img.at(12, 12, 0) - 0.25).abs() < 1e-15); // both troughs at (4, 4)
        assert!((img.michelson() - 0.5).abs() < 1e-15); // c₁ + c₂
        assert!((img.mean() - 0.5).abs() < 1e-15);
    }

    #[test]
    fn sum_is_the_sum_of_modulations() {
        // A Gabor target on a grating mask: the sum minus the mask alone is the target alone.
        let mask = Component::Grating(grating(30.0, 0.2));
        let target = Component::Gabor(GaborParams {
            contrast: 0.1,
            orientation_deg: 30.0,
            ..GaborParams::cosine(16, 2.0, Envelope::Sigma(3.0))
        });
        let s = SumParams {
            components: vec![mask, target],
        };
        let d = Display {
            background: 0.4,
            ..Display::default()
        };
        let both = s.render(&d).unwrap();
        let mask_only = SumParams {
            components: vec![mask],
        }
        .render(&d)
        .unwrap();
        let t = target.modulation().unwrap();
        for ((b, m), t) in both.pixels.iter().zip(&mask_only.pixels).zip(&t) {
            assert!((b - m - 0.4 * t).abs() < 1e-15);
        }
        // The centre: L0·(1 + 0.2 + 0.1) (both in cosine phase, peaks at the centre).
        assert!((both.at(8, 8, 0) - 0.4 * 1.3).abs() < 1e-15);
    }

    #[test]
    fn clipping_is_explicit() {
        // 0.6 + 0.6: pixels with |cos a + cos b| > 1/0.6 leave [0, 1]. On x ∈ −8..7,
        // cos(πx/4) is ±1 at 2 columns each and ±√½ at 4 each, so the pairs (1, 1),
        // (1, √½), (√½, 1) give 4 + 8 + 8 = 20 pixels above 1, and as many below 0.
        let s = SumParams::plaid(grating(0.0, 0.6), grating(90.0, 0.6));
        match s.render(&Display::default()) {
            Err(StimulusError::OutOfRange { count, min, max }) => {
                assert_eq!(count, 40);
                assert!((max - 1.1).abs() < 1e-15 && (min + 0.1).abs() < 1e-15);
            }
            other => panic!("expected OutOfRange, got {other:?}"),
        }
        let img = s
            .render(&Display {
                clip: Clip::Clamp,
                ..Display::default()
            })
            .unwrap();
        assert_eq!(img.clipped, 40);
        assert_eq!(img.at(8, 8, 0), 1.0);
    }

    #[test]
    fn errors() {
        assert_eq!(
            SumParams { components: vec![] }.render(&Display::default()),
            Err(StimulusError::NoComponents)
        );
        let s = SumParams::plaid(grating(0.0, 0.1), GratingParams::sine(8, 1.0));
        assert_eq!(
            s.render(&Display::default()),
            Err(StimulusError::SizeMismatch {
                index: 1,
                found: 8,
                expected: 16
            })
        );
        // A component's own error comes through.
        let s = SumParams::plaid(grating(0.0, 0.1), grating(f64::NAN, 0.1));
        assert!(matches!(
            s.render(&Display::default()),
            Err(StimulusError::Invalid {
                param: "orientation",
                ..
            })
        ));
    }
}
