//! Vernier line pairs and flankers: two collinear vertical segments, the lower one offset
//! horizontally, anti-aliased so that sub-pixel offsets are rendered exactly.
//!
//! # Geometry (pixels, from the centre pixel; x right, y down)
//!
//! * Upper segment: `x ∈ [−δ/2 − w/2, −δ/2 + w/2]`, `y ∈ [−g/2 − ℓ, −g/2]`.
//! * Lower segment: `x ∈ [δ/2 − w/2, δ/2 + w/2]`, `y ∈ [g/2, g/2 + ℓ]`.
//!
//! with `δ` the offset (positive: the lower segment is to the right), `w` the bar width,
//! `ℓ` each segment's length and `g` the vertical gap between them; the centre of each
//! segment's ink is at `x = ∓δ/2`, so the two differ by `δ`.
//!
//! [`Orientation::Horizontal`] is the transpose of all this: a left and a right segment,
//! the right one `δ` lower (y down), flankers above and below.
//!
//! * [`Flankers::Lines`]: one vertical line of the same width and polarity on each side,
//!   centred at `x = ±spacing` (centre to centre from the pair's axis), of `length` (by
//!   default the pair's whole extent, `2ℓ + g`), centred vertically.
//! * [`Flankers::Surround`]: a rectangular frame of line width `w`, whose inside is `margin`
//!   px beyond the pair's bounding box on every side.
//!
//! Parts must not overlap (an error otherwise), so the ink of the parts adds exactly.
//!
//! # Sampling
//!
//! A pixel's ink is the integral of the shapes against a separable footprint:
//!
//! * [`Sampling::Area`]: the pixel's unit square (the fraction of the pixel covered). Crisp,
//!   and the ink's horizontal centroid is exact when the bar width is a whole number of
//!   pixels; otherwise it is off by at most `1/(8w)` px (the integral of the sawtooth
//!   `round(x) − x` over the bar, divided by `w`).
//! * [`Sampling::Tent`]: a triangle of half-width 1 px (linear interpolation's footprint):
//!   a little softer, and the centroid is exact for any width and offset, since the
//!   footprints sum to 1 and reproduce `x`.
//!
//! Luminance: `m = ±c·ink` ([`Polarity::Bright`] / [`Polarity::Dark`]): `c` is the Weber
//! contrast `|L − L0|/L0` of a fully covered pixel.

use super::common::{check, check_size, coord, Display, Image, StimulusError};

/// Bright (increments) or dark (decrements) lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Polarity {
    /// `L0·(1 + c)`.
    #[default]
    Bright,
    /// `L0·(1 − c)`.
    Dark,
}

/// How shapes are sampled into pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sampling {
    /// Area coverage (box footprint).
    #[default]
    Area,
    /// Tent (triangle) footprint of half-width 1 px.
    Tent,
}

/// The direction of the segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Orientation {
    /// Vertical segments, one above the other, offset horizontally.
    #[default]
    Vertical,
    /// Horizontal segments side by side, offset vertically (the transpose).
    Horizontal,
}

/// What surrounds the pair.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Flankers {
    /// Nothing.
    #[default]
    None,
    /// A parallel line on each side.
    Lines {
        /// Distance from the pair's axis (x = 0) to each flanker's centre, px.
        spacing: f64,
        /// Length, px; `None` for the pair's extent `2ℓ + g`.
        length: Option<f64>,
    },
    /// A rectangular frame around the pair.
    Surround {
        /// Gap between the pair's bounding box and the frame's inside, px (> 0).
        margin: f64,
    },
}

/// A Vernier stimulus's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VernierParams {
    /// Image side, px.
    pub size: u32,
    /// Horizontal offset of the lower segment relative to the upper, px (signed).
    pub offset: f64,
    /// Bar width, px (> 0).
    pub bar_width: f64,
    /// Length of each segment, px (> 0).
    pub length: f64,
    /// Vertical gap between the segments, px (≥ 0).
    pub gap: f64,
    /// Weber contrast of a fully covered pixel, ≥ 0.
    pub contrast: f64,
    /// Bright or dark.
    pub polarity: Polarity,
    /// Sampling footprint.
    pub sampling: Sampling,
    /// Flankers.
    pub flankers: Flankers,
    /// Vertical or horizontal segments.
    pub orientation: Orientation,
}

/// An axis-aligned rectangle `[x0, x1] × [y0, y1]`, px.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x0: f64,
    /// Right edge.
    pub x1: f64,
    /// Top edge.
    pub y0: f64,
    /// Bottom edge.
    pub y1: f64,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

impl Default for VernierParams {
    /// [`VernierParams::new`]`(224, 0.0)`: aligned.
    fn default() -> Self {
        VernierParams::new(224, 0.0)
    }
}

impl VernierParams {
    /// A bright pair without flankers: width 1, length 10, gap 2, contrast 1, area sampling.
    pub fn new(size: u32, offset: f64) -> Self {
        VernierParams {
            size,
            offset,
            bar_width: 1.0,
            length: 10.0,
            gap: 2.0,
            contrast: 1.0,
            polarity: Polarity::Bright,
            sampling: Sampling::Area,
            flankers: Flankers::None,
            orientation: Orientation::Vertical,
        }
    }

    /// The two segments (upper, lower).
    pub fn segments(&self) -> [Rect; 2] {
        let (d, w, l, g) = (self.offset, self.bar_width, self.length, self.gap);
        [
            Rect {
                x0: -d / 2.0 - w / 2.0,
                x1: -d / 2.0 + w / 2.0,
                y0: -g / 2.0 - l,
                y1: -g / 2.0,
            },
            Rect {
                x0: d / 2.0 - w / 2.0,
                x1: d / 2.0 + w / 2.0,
                y0: g / 2.0,
                y1: g / 2.0 + l,
            },
        ]
    }

    /// The flankers' rectangles.
    pub fn flanker_rects(&self) -> Vec<Rect> {
        let (w, l, g) = (self.bar_width, self.length, self.gap);
        match self.flankers {
            Flankers::None => vec![],
            Flankers::Lines { spacing, length } => {
                let half = length.unwrap_or(2.0 * l + g) / 2.0;
                [-spacing, spacing]
                    .into_iter()
                    .map(|x| Rect {
                        x0: x - w / 2.0,
                        x1: x + w / 2.0,
                        y0: -half,
                        y1: half,
                    })
                    .collect()
            }
            Flankers::Surround { margin } => {
                let [a, b] = self.segments();
                let (x0, x1) = (a.x0.min(b.x0) - margin, a.x1.max(b.x1) + margin);
                let (y0, y1) = (a.y0 - margin, b.y1 + margin);
                vec![
                    // Top and bottom, across the corners; left and right between them.
                    Rect {
                        x0: x0 - w,
                        x1: x1 + w,
                        y0: y0 - w,
                        y1: y0,
                    },
                    Rect {
                        x0: x0 - w,
                        x1: x1 + w,
                        y0: y1,
                        y1: y1 + w,
                    },
                    Rect {
                        x0: x0 - w,
                        x1: x0,
                        y0,
                        y1,
                    },
                    Rect {
                        x0: x1,
                        x1: x1 + w,
                        y0,
                        y1,
                    },
                ]
            }
        }
    }

    /// Checks every parameter, and that no flanker overlaps the segments.
    pub fn validate(&self) -> Result<(), StimulusError> {
        check_size(self.size)?;
        length_px("offset", self.offset.abs(), true)?;
        length_px("bar_width", self.bar_width, false)?;
        length_px("length", self.length, false)?;
        length_px("gap", self.gap, true)?;
        check(
            "contrast",
            self.contrast,
            self.contrast >= 0.0,
            "finite and >= 0 (Weber; the polarity gives the sign)",
        )?;
        match self.flankers {
            Flankers::None => {}
            Flankers::Lines { spacing, length } => {
                length_px("spacing", spacing, false)?;
                if let Some(l) = length {
                    length_px("flanker length", l, false)?;
                }
            }
            Flankers::Surround { margin } => {
                length_px("margin", margin, false)?;
            }
        }
        // The segments cannot overlap (they are on either side of y = 0 for any gap >= 0).
        let [a, b] = self.segments();
        for f in self.flanker_rects() {
            if f.overlaps(&a) || f.overlaps(&b) {
                return Err(StimulusError::Overlap(
                    "a flanker overlaps the Vernier segments: the spacing must be at least \
                     |offset|/2 + bar width",
                ));
            }
        }
        Ok(())
    }

    /// The ink per pixel (0..1): the parts' footprint integrals, summed.
    pub fn ink(&self) -> Result<Vec<f64>, StimulusError> {
        self.validate()?;
        let mut rects = self.segments().to_vec();
        rects.extend(self.flanker_rects());
        let ink = rasterise(self.size, &rects, self.sampling);
        Ok(match self.orientation {
            Orientation::Vertical => ink,
            Orientation::Horizontal => {
                let n = self.size as usize;
                (0..n * n).map(|p| ink[(p % n) * n + p / n]).collect()
            }
        })
    }

    /// The modulation `±c·ink`.
    pub fn modulation(&self) -> Result<Vec<f64>, StimulusError> {
        let c = match self.polarity {
            Polarity::Bright => self.contrast,
            Polarity::Dark => -self.contrast,
        };
        Ok(self.ink()?.into_iter().map(|v| c * v).collect())
    }

    /// The stimulus on `display`'s background.
    pub fn render(&self, display: &Display) -> Result<Image, StimulusError> {
        display.render(self.size, &self.modulation()?)
    }
}

/// A length in pixels: finite, at most 10⁶, and > 0 (or ≥ 0 where `zero_ok`).
fn length_px(param: &'static str, v: f64, zero_ok: bool) -> Result<f64, StimulusError> {
    let ok = v <= 1e6 && (v > 0.0 || (zero_ok && v == 0.0));
    let expected = if zero_ok {
        "finite, >= 0 and at most 1e6 px"
    } else {
        "finite, > 0 and at most 1e6 px"
    };
    check(param, v, ok, expected)
}

/// The footprint's cumulative integral at `s` (distance from the pixel centre).
fn cumulative(sampling: Sampling, s: f64) -> f64 {
    match sampling {
        Sampling::Area => (s + 0.5).clamp(0.0, 1.0),
        Sampling::Tent => {
            if s <= -1.0 {
                0.0
            } else if s <= 0.0 {
                0.5 * (1.0 + s) * (1.0 + s)
            } else if s < 1.0 {
                1.0 - 0.5 * (1.0 - s) * (1.0 - s)
            } else {
                1.0
            }
        }
    }
}

/// The footprint integral of `[a, b]` for the pixel centred at `c`.
fn cover(sampling: Sampling, a: f64, b: f64, c: f64) -> f64 {
    cumulative(sampling, b - c) - cumulative(sampling, a - c)
}

/// The rectangles' summed footprint integrals on the `size × size` grid.
fn rasterise(size: u32, rects: &[Rect], sampling: Sampling) -> Vec<f64> {
    let n = size as usize;
    let mut out = vec![0.0; n * n];
    for r in rects {
        let cx: Vec<f64> = (0..n)
            .map(|j| cover(sampling, r.x0, r.x1, coord(size, j)))
            .collect();
        for i in 0..n {
            let cy = cover(sampling, r.y0, r.y1, coord(size, i));
            if cy == 0.0 {
                continue;
            }
            for (o, x) in out[i * n..(i + 1) * n].iter_mut().zip(&cx) {
                *o += cy * x;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Horizontal centroid and total of the ink in rows `rows` (from the rendered image).
    fn centroid(img: &Image, l0: f64, c: f64, rows: std::ops::Range<usize>) -> (f64, f64) {
        let n = img.width as usize;
        let (mut sx, mut s) = (0.0, 0.0);
        for i in rows {
            for j in 0..n {
                let ink = (img.at(i, j, 0) - l0) / (l0 * c);
                sx += coord(img.width, j) * ink;
                s += ink;
            }
        }
        (sx / s, s)
    }

    #[test]
    fn centroids_equal_the_offset() {
        // 48 px: the centre row is 24; with gap 4 the segments' ink (±1 px for the tent)
        // stays in rows 0..=22 and 26..48.
        let l0 = 0.4;
        let d = Display {
            background: l0,
            ..Display::default()
        };
        for (sampling, width) in [
            (Sampling::Area, 1.0),
            (Sampling::Area, 2.0),
            (Sampling::Area, 3.0),
            (Sampling::Tent, 1.0),
            (Sampling::Tent, 1.3),
            (Sampling::Tent, 0.5),
        ] {
            for offset in [0.0, 0.1, 0.37, 1.5, -2.25, 5.8] {
                let p = VernierParams {
                    bar_width: width,
                    gap: 4.0,
                    length: 12.0,
                    contrast: 0.8,
                    sampling,
                    ..VernierParams::new(48, offset)
                };
                let img = p.render(&d).unwrap();
                let (top, ink_top) = centroid(&img, l0, 0.8, 0..24);
                let (bottom, ink_bottom) = centroid(&img, l0, 0.8, 25..48);
                let tag = format!("{sampling:?} w {width} δ {offset}");
                assert!((top + offset / 2.0).abs() < 1e-9, "{tag}: top {top}");
                assert!(
                    (bottom - offset / 2.0).abs() < 1e-9,
                    "{tag}: bottom {bottom}"
                );
                assert!(((bottom - top) - offset).abs() < 1e-3, "{tag}");
                // Each segment's ink is its area, w·ℓ.
                assert!((ink_top - width * 12.0).abs() < 1e-9, "{tag}: {ink_top}");
                assert!((ink_bottom - width * 12.0).abs() < 1e-9, "{tag}");
            }
        }
    }

    #[test]
    fn area_sampling_values_and_its_centroid_bound() {
        // Width 1 at offset 0.5: the upper bar spans x ∈ [−0.75, 0.25], covering
        // 0.25 of column x = −1 and 0.75 of x = 0; gap 2 and length 4 put it at y ∈ [−5, −1].
        let p = VernierParams {
            length: 4.0,
            ..VernierParams::new(16, 0.5)
        };
        let ink = p.ink().unwrap();
        let at = |x: i64, y: i64| ink[((y + 8) * 16 + x + 8) as usize];
        assert_eq!(at(-1, -3), 0.25);
        assert_eq!(at(0, -3), 0.75);
        assert_eq!(at(1, -3), 0.0);
        // y ∈ [−5, −1]: rows −4..−2 full, −5 and −1 half.
        assert_eq!(at(0, -5), 0.375);
        assert_eq!(at(0, -1), 0.375);
        assert_eq!(at(0, 0), 0.0);
        // The lower bar mirrors it: x ∈ [−0.25, 0.75].
        assert_eq!(at(1, 3), 0.25);
        assert_eq!(at(0, 3), 0.75);
        // Bar width 0.5 at x ∈ [0, 0.5]: all in column 0, so the area centroid is 0, not the
        // true 0.25: the documented 1/(8w) = 0.25 px bound, reached. The tent gets 0.25.
        let thin = VernierParams {
            bar_width: 0.5,
            gap: 4.0,
            ..VernierParams::new(32, -0.5)
        };
        let l0 = 0.5;
        let img = thin.render(&Display::default()).unwrap();
        let (top, _) = centroid(&img, l0, 1.0, 0..16);
        assert!((top - 0.0).abs() < 1e-12, "{top}");
        let tent = VernierParams {
            sampling: Sampling::Tent,
            ..thin
        };
        let (top, _) = centroid(&tent.render(&Display::default()).unwrap(), l0, 1.0, 0..16);
        assert!((top - 0.25).abs() < 1e-12, "{top}");
    }

    #[test]
    fn flankers_and_polarity() {
        let l0 = 0.5;
        let base = VernierParams {
            contrast: 0.6,
            polarity: Polarity::Dark,
            gap: 2.0,
            length: 6.0,
            ..VernierParams::new(32, 1.0)
        };
        let lines = VernierParams {
            flankers: Flankers::Lines {
                spacing: 5.0,
                length: None,
            },
            ..base
        };
        let img = lines.render(&Display::default()).unwrap();
        // Flankers at x = ±5, width 1, y ∈ [−7, 7]: pixels (±5, −7..7) are dark except
        // the half-covered end rows ±7 (covering y ∈ [−7, −6.5] and [6.5, 7]).
        for y in -6i64..=6 {
            for x in [-5i64, 5] {
                let v = img.at((y + 16) as usize, (x + 16) as usize, 0);
                assert!((v - l0 * (1.0 - 0.6)).abs() < 1e-15, "({x}, {y}) = {v}");
            }
        }
        let v = img.at(16 - 7, 16 + 5, 0);
        assert!((v - l0 * (1.0 - 0.6 * 0.5)).abs() < 1e-15);
        // Total ink: two segments 1·6 and two flankers 1·14, each pixel's darkening c·ink.
        let total: f64 = img.pixels.iter().map(|v| (l0 - v) / (l0 * 0.6)).sum();
        assert!((total - (12.0 + 28.0)).abs() < 1e-9, "{total}");
        // The flankers do not move the segments' centroids (they are added, not blended).
        let without = base.render(&Display::default()).unwrap();
        for i in 0..32 {
            for j in 10..22 {
                if j != 11 && j != 21 {
                    assert_eq!(img.at(i, j, 0), without.at(i, j, 0));
                }
            }
        }
        // A surround frame: its ink is the frame's area.
        let frame = VernierParams {
            flankers: Flankers::Surround { margin: 3.0 },
            polarity: Polarity::Bright,
            ..base
        };
        // Bounding box x ∈ [−1, 1], y ∈ [−7, 7]; inside of frame ±4, ±10; outside ±5, ±11.
        let ink: f64 = frame.ink().unwrap().iter().sum();
        let area = 10.0 * 22.0 - 8.0 * 20.0;
        assert!((ink - (12.0 + area)).abs() < 1e-9, "{ink}");
    }

    #[test]
    fn horizontal_is_the_transpose() {
        let v = VernierParams {
            flankers: Flankers::Lines {
                spacing: 4.0,
                length: None,
            },
            sampling: Sampling::Tent,
            ..VernierParams::new(24, 0.7)
        };
        let h = VernierParams {
            orientation: Orientation::Horizontal,
            ..v
        };
        let (a, b) = (v.ink().unwrap(), h.ink().unwrap());
        for i in 0..24 {
            for j in 0..24 {
                assert_eq!(a[i * 24 + j], b[j * 24 + i]);
            }
        }
        // The right segment's ink centroid is δ/2 below the centre, the left one δ/2 above
        // (columns 0..12 and 13..24; no flankers, gap 2 ⇒ column 12 empty with the tent).
        let h = VernierParams {
            flankers: Flankers::None,
            ..h
        };
        let ink = h.ink().unwrap();
        let centroid_y = |cols: std::ops::Range<usize>| {
            let (mut sy, mut s) = (0.0, 0.0);
            for i in 0..24 {
                for j in cols.clone() {
                    sy += coord(24, i) * ink[i * 24 + j];
                    s += ink[i * 24 + j];
                }
            }
            sy / s
        };
        assert!((centroid_y(0..12) + 0.35).abs() < 1e-9);
        assert!((centroid_y(13..24) - 0.35).abs() < 1e-9);
    }

    #[test]
    fn errors() {
        let ok = VernierParams::new(32, 1.0);
        let d = Display::default();
        for bad in [
            VernierParams { size: 0, ..ok },
            VernierParams {
                offset: f64::NAN,
                ..ok
            },
            VernierParams {
                offset: f64::MAX,
                ..ok
            },
            VernierParams {
                bar_width: 0.0,
                ..ok
            },
            VernierParams {
                length: f64::INFINITY,
                ..ok
            },
            VernierParams { gap: -1.0, ..ok },
            VernierParams {
                contrast: -0.5,
                ..ok
            },
            VernierParams {
                flankers: Flankers::Lines {
                    spacing: f64::NAN,
                    length: None,
                },
                ..ok
            },
            VernierParams {
                flankers: Flankers::Surround { margin: 0.0 },
                ..ok
            },
        ] {
            assert!(
                matches!(
                    bad.render(&d),
                    Err(StimulusError::Invalid { .. } | StimulusError::Size(_))
                ),
                "{bad:?}"
            );
        }
        // Overlaps: flankers too close; segments overlapping without a gap.
        let close = VernierParams {
            flankers: Flankers::Lines {
                spacing: 1.2,
                length: None,
            },
            ..ok
        };
        assert!(matches!(close.render(&d), Err(StimulusError::Overlap(_))));
        let touching = VernierParams {
            flankers: Flankers::Lines {
                spacing: 1.5,
                length: None,
            },
            ..ok
        };
        assert!(touching.render(&d).is_ok());
        // Without a gap the segments abut at y = 0: allowed, and their ink adds exactly.
        let no_gap = VernierParams {
            gap: 0.0,
            offset: 0.5,
            ..ok
        };
        let ink: f64 = no_gap.ink().unwrap().iter().sum();
        assert!((ink - 20.0).abs() < 1e-12);
        // Bright contrast 1.5 at L0 0.5 leaves [0, 1] where a pixel is fully covered (offset 0;
        // at offset 1 each bar straddles two columns, half covering each: 0.875, inside).
        assert!(VernierParams {
            contrast: 1.5,
            ..ok
        }
        .render(&d)
        .is_ok());
        let bright = VernierParams {
            contrast: 1.5,
            offset: 0.0,
            ..ok
        };
        assert!(matches!(
            bright.render(&d),
            Err(StimulusError::OutOfRange { .. })
        ));
    }
}
