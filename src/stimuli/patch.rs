//! Uniform patches: a disc or square of luminance `L0·(1 + c)` on the background, with an
//! optional soft (raised-cosine) edge.
//!
//! ```text
//! m(x, y) = c · w(x − x0, y − y0)
//! disc:   w = s(√(dx² + dy²), radius, edge)
//! square: w = s(|dx|, half, edge) · s(|dy|, half, edge)
//! s(d, limit, e) = 1 for d ≤ limit, 0 for d ≥ limit + e, ½(1 + cos(π(d − limit)/e)) between
//! ```
//!
//! evaluated at pixel centres (a hard edge, `e = 0`, includes the pixels with `d ≤ limit`).
//! `c` is the Weber contrast `(L − L0)/L0` of the patch's flat part (negative for a darker
//! patch, −1 for black); `(x0, y0)` is the patch's centre in pixels from the centre pixel.

use super::common::{check, check_size, finite, non_negative, soft_step, Display, Image};
use super::common::{coord, StimulusError};

/// A patch's outline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PatchShape {
    /// A disc of `radius` px.
    Disc {
        /// Radius of the flat part, px.
        radius: f64,
    },
    /// An axis-aligned square of side `2·half` px.
    Square {
        /// Half the side of the flat part, px.
        half: f64,
    },
}

/// A uniform patch's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PatchParams {
    /// Image side, px.
    pub size: u32,
    /// Outline.
    pub shape: PatchShape,
    /// Weber contrast of the patch about the background, ≥ −1.
    pub contrast: f64,
    /// Width of the soft edge, px (0: hard).
    pub edge: f64,
    /// Centre, px from the centre pixel (x right, y down).
    pub centre: (f64, f64),
}

impl Default for PatchParams {
    /// 224 px, a hard disc of radius 28 px (size/8) at the centre, contrast 0.5.
    fn default() -> Self {
        PatchParams::disc(224, 28.0, 0.5)
    }
}

impl PatchParams {
    /// A hard-edged disc at the centre.
    pub fn disc(size: u32, radius: f64, contrast: f64) -> Self {
        PatchParams {
            size,
            shape: PatchShape::Disc { radius },
            contrast,
            edge: 0.0,
            centre: (0.0, 0.0),
        }
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), StimulusError> {
        check_size(self.size)?;
        match self.shape {
            PatchShape::Disc { radius } => non_negative("radius", radius)?,
            PatchShape::Square { half } => non_negative("half", half)?,
        };
        check(
            "contrast",
            self.contrast,
            self.contrast >= -1.0,
            "finite and >= -1 (Weber)",
        )?;
        non_negative("edge", self.edge)?;
        finite("centre x", self.centre.0)?;
        finite("centre y", self.centre.1)?;
        Ok(())
    }

    /// The patch's weight `w` in [0, 1] per pixel.
    pub fn pattern(&self) -> Result<Vec<f64>, StimulusError> {
        self.validate()?;
        let n = self.size as usize;
        let e = self.edge;
        Ok((0..n * n)
            .map(|p| {
                let dx = coord(self.size, p % n) - self.centre.0;
                let dy = coord(self.size, p / n) - self.centre.1;
                match self.shape {
                    PatchShape::Disc { radius } => soft_step(dx.hypot(dy), radius, e),
                    PatchShape::Square { half } => {
                        soft_step(dx.abs(), half, e) * soft_step(dy.abs(), half, e)
                    }
                }
            })
            .collect())
    }

    /// The modulation `m = c·w`.
    pub fn modulation(&self) -> Result<Vec<f64>, StimulusError> {
        let c = self.contrast;
        Ok(self.pattern()?.into_iter().map(|w| c * w).collect())
    }

    /// The patch on `display`'s background.
    pub fn render(&self, display: &Display) -> Result<Image, StimulusError> {
        display.render(self.size, &self.modulation()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_disc_counts_and_values() {
        // Radius 3 on 15 px: the 29 lattice points with x² + y² ≤ 9 (Gauss's circle count).
        let p = PatchParams::disc(15, 3.0, 0.4);
        let img = p.render(&Display::default()).unwrap();
        let inside = img.pixels.iter().filter(|&&v| v == 0.7).count();
        let outside = img.pixels.iter().filter(|&&v| v == 0.5).count();
        assert_eq!((inside, outside), (29, 225 - 29));
        assert_eq!(img.at(7, 10, 0), 0.7); // (3, 0): on the edge, included
        assert_eq!(img.at(9, 9, 0), 0.7); // (2, 2): r² = 8
        assert_eq!(img.at(9, 10, 0), 0.5); // (3, 2): r² = 13
                                           // Mean: L0·(1 + c·29/225).
        assert!((img.mean() - 0.5 * (1.0 + 0.4 * 29.0 / 225.0)).abs() < 1e-15);
        // Weber contrast of the patch: (L − L0)/L0 = c.
        assert!(((img.at(7, 7, 0) - 0.5) / 0.5 - 0.4).abs() < 1e-15);
    }

    #[test]
    fn square_soft_edge_and_offset_centre() {
        // Half-width 2, hard: 5 × 5 pixels, centred at (1, −1) on a 10 px grid (x, y ∈ −5..4).
        let p = PatchParams {
            shape: PatchShape::Square { half: 2.0 },
            centre: (1.0, -1.0),
            ..PatchParams::disc(10, 0.0, -0.5)
        };
        let d = Display {
            background: 0.6,
            ..Display::default()
        };
        let img = p.render(&d).unwrap();
        let dark = img.pixels.iter().filter(|&&v| v == 0.3).count();
        assert_eq!(dark, 25);
        assert_eq!(img.at(5 - 1 - 2, 5 + 1 - 2, 0), 0.3); // (x, y) = (−1, −3): corner
        assert_eq!(img.at(5 - 1 - 3, 5 + 1, 0), 0.6); // (1, −4): just outside
                                                      // Soft edge of 2 px: at 1 px into the edge the weight is ½(1 + cos(π/2)) = ½.
        let soft = PatchParams {
            shape: PatchShape::Disc { radius: 2.0 },
            edge: 2.0,
            ..PatchParams::disc(11, 0.0, 0.6)
        };
        let img = soft.render(&Display::default()).unwrap();
        assert!((img.at(5, 8, 0) - 0.5 * (1.0 + 0.6 * 0.5)).abs() < 1e-15); // r = 3
        assert_eq!(img.at(5, 7, 0), 0.8); // r = 2: flat part
        assert_eq!(img.at(5, 9, 0), 0.5); // r = 4: end of the edge
        let want = 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos());
        let p = PatchParams {
            centre: (0.5, 0.0),
            ..soft
        };
        // (3, 0) is 2.5 from the centre at (0.5, 0): weight ½(1 + cos(π·0.5/2)).
        let w = p.pattern().unwrap();
        assert!((w[5 * 11 + 8] - want).abs() < 1e-15);
    }

    #[test]
    fn black_patch_and_errors() {
        let img = PatchParams::disc(5, 1.0, -1.0)
            .render(&Display::default())
            .unwrap();
        assert_eq!(img.at(2, 2, 0), 0.0);
        let ok = PatchParams::disc(8, 2.0, 0.5);
        for bad in [
            PatchParams { size: 0, ..ok },
            PatchParams {
                contrast: -1.5,
                ..ok
            },
            PatchParams {
                contrast: f64::NAN,
                ..ok
            },
            PatchParams {
                edge: f64::INFINITY,
                ..ok
            },
            PatchParams {
                shape: PatchShape::Disc { radius: -1.0 },
                ..ok
            },
            PatchParams {
                shape: PatchShape::Square { half: f64::NAN },
                ..ok
            },
            PatchParams {
                centre: (f64::NAN, 0.0),
                ..ok
            },
        ] {
            assert!(bad.render(&Display::default()).is_err(), "{bad:?}");
        }
        // Contrast 1.5 on 0.5 is 1.25: out of range unless clamped.
        assert!(PatchParams::disc(8, 2.0, 1.5)
            .render(&Display::default())
            .is_err());
    }
}
