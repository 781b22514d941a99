//! Training stimuli: one random filled shape on grey, shown at two contrasts.
//!
//! [`draw_params`] samples the tutorial's `create_random_shape` distributions (numpy's
//! `randint(lo, hi)` is `lo..hi`, `random.randint(0, 255)` is `0..=255`), with `s` the size
//! and `q = s / 4` (integer division):
//!
//! | | tutorial | here |
//! |---|---|---|
//! | colour | 3 × `0..=255` | same |
//! | centre (x, y) | `q..3q` each | same |
//! | kind | `0..3` | uniform over the requested kinds |
//! | circle radius | `10..q` | same |
//! | ellipse half-axes | `(10..20, 30..q)`, angle `0..360` degrees | same |
//! | rectangle | second corner `0..s` each | same |
//!
//! Where the tutorial's range is empty (circles below 44 px, ellipses below 124 px, where
//! numpy raises), the value is the range's lower end.
//!
//! The draws come in this order from the trial's stream: colour (r, g, b), centre (x, y),
//! kind, then the kind's parameters (radius; axis 0, axis 1, angle; corner x, corner y), then
//! in [`training_pair`] the two contrasts. Each uses [`rng::int_range`] or
//! [`rng::uniform_f64`].
//!
//! # Rasterisation, and how it differs from OpenCV
//!
//! Filled shapes are drawn by pixel-centre tests, without anti-aliasing; pixels outside the
//! image are clipped. Coordinates are (x = column, y = row), y down, as in cv2.
//!
//! * Circle: `(x − cx)² + (y − cy)² ≤ r²`. This is exactly the pixel set of cv2's filled
//!   `LINE_8` circle (its Bresenham `Circle` spans), checked for every radius 1..119 with a
//!   transcription of that code.
//! * Rectangle: every pixel between the two corners, both inclusive, corners in any order:
//!   the same as `cv2.rectangle(…, thickness=-1)`.
//! * Ellipse: `(u/a)² + (v/b)² ≤ 1` (to 1e-9) with `u = dx·cos α + dy·sin α`,
//!   `v = −dx·sin α + dy·cos α`, i.e. axis `a` along x rotated by α clockwise on screen
//!   (cv2's convention). cv2 differs at the boundary: it fills a 72-gon inscribed in the
//!   ellipse (5° steps) with span ends rounded to the nearest pixel and the outline drawn,
//!   which adds roughly a half-pixel rim: about `π(a + ½)(b + ½)` pixels against `πab`
//!   here (≈ 5–7 % more for the smallest ellipses, 10 × 30).

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::rng;

/// A training shape's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShapeKind {
    /// Filled circle.
    Circle,
    /// Filled ellipse at any angle.
    Ellipse,
    /// Filled axis-aligned rectangle.
    Rectangle,
}

impl ShapeKind {
    /// All three kinds, in the tutorial's index order (0 circle, 1 ellipse, 2 rectangle).
    pub const ALL: [ShapeKind; 3] = [ShapeKind::Circle, ShapeKind::Ellipse, ShapeKind::Rectangle];
}

impl From<crate::plan::Shape> for ShapeKind {
    fn from(shape: crate::plan::Shape) -> Self {
        match shape {
            crate::plan::Shape::Circle => ShapeKind::Circle,
            crate::plan::Shape::Ellipse => ShapeKind::Ellipse,
            crate::plan::Shape::Rectangle => ShapeKind::Rectangle,
        }
    }
}

/// A shape's kind-specific geometry, in pixels (x = column, y = row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Geometry {
    /// A circle about the centre.
    Circle {
        /// Radius.
        radius: i32,
    },
    /// An ellipse about the centre.
    Ellipse {
        /// Half-axes: the first along x before rotation, the second along y.
        axes: (i32, i32),
        /// Rotation in degrees, clockwise on screen (cv2's `angle`).
        angle_deg: i32,
    },
    /// An axis-aligned rectangle from the centre (one corner) to `corner2`, both inclusive.
    Rectangle {
        /// The opposite corner (x, y).
        corner2: (i32, i32),
    },
}

/// One random shape: everything needed to render it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeParams {
    /// RGB colour, 0..=255 each.
    pub colour: [u8; 3],
    /// The tutorial's `point1` (x, y): centre of a circle or ellipse, a rectangle's corner.
    pub centre: (i32, i32),
    /// Kind and kind-specific parameters.
    pub geometry: Geometry,
}

impl ShapeParams {
    /// The shape's kind.
    pub fn kind(&self) -> ShapeKind {
        match self.geometry {
            Geometry::Circle { .. } => ShapeKind::Circle,
            Geometry::Ellipse { .. } => ShapeKind::Ellipse,
            Geometry::Rectangle { .. } => ShapeKind::Rectangle,
        }
    }

    /// The shape's pixel value per channel, `colour / 255` (computed in f64, stored as f32),
    /// as [`render_into`] writes it.
    pub fn rgb(&self) -> [f32; 3] {
        self.colour.map(|c| (f64::from(c) / 255.0) as f32)
    }
}

/// The numbers [`render_into`] tests an ellipse's pixels with, computed once per shape.
///
/// A pixel at offset `(dx, dy)` from the centre is inside when `|dx| ≤ half_width`,
/// `|dy| ≤ half_height` (the rotated ellipse's bounding box) and [`EllipseRaster::contains`]
/// holds: `u·u·b2 + v·v·a2 ≤ limit` with `u = dx·cos + dy·sin`, `v = −dx·sin + dy·cos`,
/// in f64 in exactly this order of operations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EllipseRaster {
    /// sin α.
    pub sin: f64,
    /// cos α.
    pub cos: f64,
    /// a², the first half-axis squared (negative axes count as 0).
    pub a2: f64,
    /// b², the second half-axis squared.
    pub b2: f64,
    /// `a2·b2·(1 + 1e-9)`.
    pub limit: f64,
    /// `⌈√(a²cos²α + b²sin²α)⌉`: the bounding box's half-width.
    pub half_width: i32,
    /// `⌈√(a²sin²α + b²cos²α)⌉`: the bounding box's half-height.
    pub half_height: i32,
}

impl EllipseRaster {
    /// The raster numbers of an ellipse with half-axes `axes` rotated by `angle_deg`.
    pub fn new(axes: (i32, i32), angle_deg: i32) -> Self {
        let alpha = f64::from(angle_deg).to_radians();
        let (sin_a, cos_a) = alpha.sin_cos();
        let (a, b) = (f64::from(axes.0.max(0)), f64::from(axes.1.max(0)));
        // Half-extents of the rotated ellipse's bounding box.
        let ex = (a * a * cos_a * cos_a + b * b * sin_a * sin_a)
            .sqrt()
            .ceil() as i32;
        let ey = (a * a * sin_a * sin_a + b * b * cos_a * cos_a)
            .sqrt()
            .ceil() as i32;
        let (a2, b2) = (a * a, b * b);
        EllipseRaster {
            sin: sin_a,
            cos: cos_a,
            a2,
            b2,
            limit: a2 * b2 * (1.0 + 1e-9),
            half_width: ex,
            half_height: ey,
        }
    }

    /// The ellipse test of the pixel at offset `(dx, dy)` from the centre (the bounding box
    /// not checked).
    pub fn contains(&self, dx: i32, dy: i32) -> bool {
        let (fx, fy) = (f64::from(dx), f64::from(dy));
        let u = fx * self.cos + fy * self.sin;
        let v = -fx * self.sin + fy * self.cos;
        u * u * self.b2 + v * v * self.a2 <= self.limit
    }
}

/// `int_range(lo, hi)`, or `lo` where the range is empty (the tutorial would raise).
fn range_or_lo<R: RngCore + ?Sized>(rng: &mut R, lo: i32, hi: i32) -> i32 {
    if hi > lo {
        rng::int_range(rng, lo, hi)
    } else {
        lo
    }
}

/// Samples one shape for a `size`-pixel image with the tutorial's distributions (see the
/// module documentation), its kind uniform over `kinds` (repeats weigh a kind more).
///
/// # Panics
/// If `kinds` is empty.
pub fn draw_params<R: RngCore + ?Sized>(
    rng: &mut R,
    size: u32,
    kinds: &[ShapeKind],
) -> ShapeParams {
    assert!(!kinds.is_empty(), "draw_params: no shape kinds");
    let s = size as i32;
    let q = s / 4;
    let mut colour = [0u8; 3];
    for c in &mut colour {
        *c = rng::int_range(rng, 0, 256) as u8;
    }
    let cx = range_or_lo(rng, q, 3 * q);
    let cy = range_or_lo(rng, q, 3 * q);
    let kind = kinds[rng::below(rng, kinds.len() as u32) as usize];
    let geometry = match kind {
        ShapeKind::Circle => Geometry::Circle {
            radius: range_or_lo(rng, 10, q),
        },
        ShapeKind::Ellipse => {
            let a = range_or_lo(rng, 10, 20);
            let b = range_or_lo(rng, 30, q);
            let angle_deg = rng::int_range(rng, 0, 360);
            Geometry::Ellipse {
                axes: (a, b),
                angle_deg,
            }
        }
        ShapeKind::Rectangle => {
            let x = range_or_lo(rng, 0, s);
            let y = range_or_lo(rng, 0, s);
            Geometry::Rectangle { corner2: (x, y) }
        }
    };
    ShapeParams {
        colour,
        centre: (cx, cy),
        geometry,
    }
}

/// Fills columns `x0..=x1` of row `y` (clipped to the image) with `rgb`.
fn span(out: &mut [f32], size: i32, y: i32, x0: i32, x1: i32, rgb: [f32; 3]) {
    if y < 0 || y >= size {
        return;
    }
    let (x0, x1) = (x0.max(0), x1.min(size - 1));
    if x0 > x1 {
        return;
    }
    let row = (y as usize) * (size as usize) * 3;
    let px = &mut out[row + 3 * x0 as usize..row + 3 * (x1 as usize + 1)];
    for p in px.chunks_exact_mut(3) {
        p.copy_from_slice(&rgb);
    }
}

/// Renders `params` into `out`: an RGB image, HWC row-major (`size × size × 3`), every
/// value either `background` or the shape's `colour / 255` (as f32).
///
/// # Panics
/// If `out` has the wrong length.
pub fn render_into(params: &ShapeParams, size: u32, background: f64, out: &mut [f32]) {
    let n = size as usize;
    assert_eq!(out.len(), n * n * 3, "shape buffer size");
    out.fill(background as f32);
    let s = size as i32;
    let rgb = params.rgb();
    let (cx, cy) = params.centre;
    match params.geometry {
        Geometry::Circle { radius } => {
            let r2 = i64::from(radius) * i64::from(radius);
            for dy in -radius..=radius {
                let rest = r2 - i64::from(dy) * i64::from(dy);
                let w = isqrt(rest) as i32;
                span(out, s, cy + dy, cx - w, cx + w, rgb);
            }
        }
        Geometry::Ellipse {
            axes: (a, b),
            angle_deg,
        } => {
            let e = EllipseRaster::new((a, b), angle_deg);
            let (ex, ey) = (e.half_width, e.half_height);
            for dy in -ey..=ey {
                let y = cy + dy;
                if y < 0 || y >= s {
                    continue;
                }
                // The inside pixels of a row are contiguous (the ellipse is convex).
                let mut first = None;
                let mut last = 0;
                for dx in -ex..=ex {
                    if e.contains(dx, dy) {
                        first.get_or_insert(dx);
                        last = dx;
                    }
                }
                if let Some(first) = first {
                    span(out, s, y, cx + first, cx + last, rgb);
                }
            }
        }
        Geometry::Rectangle { corner2: (x2, y2) } => {
            let (x0, x1) = (cx.min(x2), cx.max(x2));
            for y in cy.min(y2)..=cy.max(y2) {
                span(out, s, y, x0, x1, rgb);
            }
        }
    }
}

/// Floor of the square root of `v` (0 for negative `v`).
fn isqrt(v: i64) -> i64 {
    if v <= 0 {
        return 0;
    }
    let mut r = (v as f64).sqrt() as i64;
    while r * r > v {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= v {
        r += 1;
    }
    r
}

/// As [`render_into`], into a new buffer.
pub fn render(params: &ShapeParams, size: u32, background: f64) -> Vec<f32> {
    let mut out = vec![0.0; (size as usize) * (size as usize) * 3];
    render_into(params, size, background, &mut out);
    out
}

/// The contrast manipulation, in place: `x ← (1 − c)·p + c·x = p + c·(x − p)`, computed in
/// f64, with the pivot `p` taken at the image's f32 precision.
///
/// A pixel at the pivot keeps its value at every contrast, so with the pivot at the
/// background (`train shapes { pivot background }`, the default) only the shape changes with
/// the contrast: the background of both images of a pair is the same grey (bit for bit, as
/// `(1 − c)·p + c·p` is within an f64 rounding of the f32 value `p`). The tutorial pivots at
/// 0.5, `(1 − amount)/2 + amount·image`, whatever its background (128/255), so its
/// background grey moves by `c·(128/255 − 0.5)` with the contrast; `pivot 0.5` reproduces it
/// bit for bit (`(1 − c)·0.5` is exactly `(1 − c)/2`).
pub fn adjust_contrast(img: &mut [f32], c: f64, pivot: f64) {
    let offset = (1.0 - c) * f64::from(pivot as f32);
    for x in img {
        *x = (offset + c * f64::from(*x)) as f32;
    }
}

/// One training trial: the same shape at two contrasts.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingPair {
    /// The first image, HWC RGB in [0, 1], at `contrasts[0]`.
    pub first: Vec<f32>,
    /// The second image, at `contrasts[1]`.
    pub second: Vec<f32>,
    /// 0 if the first image has the higher contrast (or the two are equal, as numpy's
    /// `argmax`), 1 if the second has.
    pub label: u8,
    /// The two contrasts.
    pub contrasts: [f64; 2],
    /// The shape.
    pub params: ShapeParams,
}

/// The random parameters of training trial `trial` of `epoch`, without rendering: the
/// shape from [`draw_params`], then the two contrasts `uniform(contrast_lo, contrast_hi)`.
///
/// All draws come from `rng::stream(master_seed, "train", rng::train_index(epoch, trial))`,
/// so each trial is reproducible on its own. [`training_pair`] renders exactly these.
pub fn training_params(
    master_seed: u64,
    epoch: u32,
    trial: u64,
    size: u32,
    kinds: &[ShapeKind],
    contrast_lo: f64,
    contrast_hi: f64,
) -> (ShapeParams, [f64; 2]) {
    let mut r = rng::stream(master_seed, rng::TRAIN, rng::train_index(epoch, trial));
    let params = draw_params(&mut r, size, kinds);
    let contrasts = [
        rng::uniform_f64(&mut r, contrast_lo, contrast_hi),
        rng::uniform_f64(&mut r, contrast_lo, contrast_hi),
    ];
    (params, contrasts)
}

/// Training trial `trial` of `epoch`: the shape and contrasts of [`training_params`], the
/// shape rendered by [`render`] on `background`, then each contrast applied by
/// [`adjust_contrast`] about `pivot`.
#[allow(clippy::too_many_arguments)]
pub fn training_pair(
    master_seed: u64,
    epoch: u32,
    trial: u64,
    size: u32,
    kinds: &[ShapeKind],
    background: f64,
    pivot: f64,
    contrast_lo: f64,
    contrast_hi: f64,
) -> TrainingPair {
    let (params, contrasts) = training_params(
        master_seed,
        epoch,
        trial,
        size,
        kinds,
        contrast_lo,
        contrast_hi,
    );
    let mut first = render(&params, size, background);
    let mut second = first.clone();
    adjust_contrast(&mut first, contrasts[0], pivot);
    adjust_contrast(&mut second, contrasts[1], pivot);
    TrainingPair {
        first,
        second,
        label: u8::from(contrasts[1] > contrasts[0]),
        contrasts,
        params,
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod stats_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const BG: f64 = 128.0 / 255.0;

    fn mask(img: &[f32], background: f64) -> Vec<bool> {
        img.chunks_exact(3)
            .map(|p| p.iter().any(|&v| v != background as f32))
            .collect()
    }

    fn params(colour: [u8; 3], centre: (i32, i32), geometry: Geometry) -> ShapeParams {
        ShapeParams {
            colour,
            centre,
            geometry,
        }
    }

    #[test]
    fn reproducible_and_distinct() {
        let a = training_pair(42, 3, 17, 224, &ShapeKind::ALL, BG, 0.5, 0.04, 1.0);
        let b = training_pair(42, 3, 17, 224, &ShapeKind::ALL, BG, 0.5, 0.04, 1.0);
        assert_eq!(a, b);
        assert!(a
            .first
            .iter()
            .zip(&b.first)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
        let c = training_pair(42, 3, 18, 224, &ShapeKind::ALL, BG, 0.5, 0.04, 1.0);
        let d = training_pair(42, 4, 17, 224, &ShapeKind::ALL, BG, 0.5, 0.04, 1.0);
        let e = training_pair(43, 3, 17, 224, &ShapeKind::ALL, BG, 0.5, 0.04, 1.0);
        for other in [c, d, e] {
            assert_ne!(a.params, other.params);
            assert_ne!(a.contrasts, other.contrasts);
        }
        assert_eq!(a.first.len(), 224 * 224 * 3);
    }

    #[test]
    fn statistics() {
        let n = 3000;
        let size = 224;
        let mut kinds = [0usize; 3];
        let mut labels = 0usize;
        let (mut rmin, mut rmax) = (i32::MAX, i32::MIN);
        let (mut cmin, mut cmax) = (i32::MAX, i32::MIN);
        let (mut amin, mut amax, mut bmin, mut bmax) = (i32::MAX, i32::MIN, i32::MAX, i32::MIN);
        let (mut angmin, mut angmax) = (i32::MAX, i32::MIN);
        let (mut kmin, mut kmax) = (i32::MAX, i32::MIN);
        let (mut colmin, mut colmax) = (255u8, 0u8);
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for t in 0..n {
            let mut r = rng::stream(9, rng::TRAIN, rng::train_index(0, t));
            let p = draw_params(&mut r, size, &ShapeKind::ALL);
            for c in p.colour {
                colmin = colmin.min(c);
                colmax = colmax.max(c);
            }
            for c in [p.centre.0, p.centre.1] {
                cmin = cmin.min(c);
                cmax = cmax.max(c);
            }
            match p.geometry {
                Geometry::Circle { radius } => {
                    kinds[0] += 1;
                    rmin = rmin.min(radius);
                    rmax = rmax.max(radius);
                }
                Geometry::Ellipse { axes, angle_deg } => {
                    kinds[1] += 1;
                    amin = amin.min(axes.0);
                    amax = amax.max(axes.0);
                    bmin = bmin.min(axes.1);
                    bmax = bmax.max(axes.1);
                    angmin = angmin.min(angle_deg);
                    angmax = angmax.max(angle_deg);
                }
                Geometry::Rectangle { corner2 } => {
                    kinds[2] += 1;
                    kmin = kmin.min(corner2.0.min(corner2.1));
                    kmax = kmax.max(corner2.0.max(corner2.1));
                }
            }
            let c0 = rng::uniform_f64(&mut r, 0.04, 1.0);
            let c1 = rng::uniform_f64(&mut r, 0.04, 1.0);
            lo = lo.min(c0.min(c1));
            hi = hi.max(c0.max(c1));
            labels += usize::from(c1 > c0);
        }
        let freq = kinds.map(|k| k as f64 / n as f64);
        eprintln!(
            "kinds {freq:?}, label-1 share {:.3}, radius {rmin}..={rmax}, centre {cmin}..={cmax}, \
             axes {amin}..={amax} × {bmin}..={bmax}, angle {angmin}..={angmax}, corner {kmin}..={kmax}, \
             colour {colmin}..={colmax}, contrast {lo:.4}..{hi:.4}",
            labels as f64 / n as f64
        );
        assert!(freq.iter().all(|f| (f - 1.0 / 3.0).abs() < 0.03));
        assert!(((labels as f64 / n as f64) - 0.5).abs() < 0.03);
        assert_eq!((rmin, rmax), (10, 55));
        assert_eq!((cmin, cmax), (56, 167));
        assert_eq!((amin, amax, bmin, bmax), (10, 19, 30, 55));
        assert!(angmin < 5 && angmax > 354 && angmax < 360);
        assert!(kmin == 0 && kmax == 223);
        assert_eq!((colmin, colmax), (0, 255));
        assert!((0.04..0.05).contains(&lo) && (0.99..1.0).contains(&hi));
    }

    #[test]
    fn subset_of_kinds() {
        for t in 0..200 {
            let mut r = rng::stream(1, rng::TRAIN, t);
            let p = draw_params(&mut r, 224, &[ShapeKind::Ellipse]);
            assert_eq!(p.kind(), ShapeKind::Ellipse);
        }
        let mut seen = [false; 2];
        for t in 0..200 {
            let mut r = rng::stream(1, rng::TRAIN, t);
            let p = draw_params(&mut r, 224, &[ShapeKind::Circle, ShapeKind::Rectangle]);
            assert_ne!(p.kind(), ShapeKind::Ellipse);
            seen[usize::from(p.kind() == ShapeKind::Rectangle)] = true;
        }
        assert!(seen[0] && seen[1]);
        // Small sizes where the tutorial's ranges are empty still work.
        let mut r = rng::stream(1, rng::TRAIN, 0);
        for kind in ShapeKind::ALL {
            let p = draw_params(&mut r, 32, &[kind]);
            let img = render(&p, 32, BG);
            assert_eq!(img.len(), 32 * 32 * 3);
        }
    }

    #[test]
    fn circle_area_and_exact_set() {
        for radius in [10, 23, 55] {
            let p = params([255, 0, 0], (112, 100), Geometry::Circle { radius });
            let m = mask(&render(&p, 224, BG), BG);
            let area = m.iter().filter(|&&b| b).count() as f64;
            let want = std::f64::consts::PI * f64::from(radius * radius);
            eprintln!("circle r {radius}: {area} px, πr² = {want:.1}");
            assert!((area / want - 1.0).abs() < 0.03);
            for (i, &inside) in m.iter().enumerate() {
                let (x, y) = ((i % 224) as i32 - 112, (i / 224) as i32 - 100);
                assert_eq!(inside, x * x + y * y <= radius * radius);
            }
        }
    }

    #[test]
    fn ellipse_area_and_orientation() {
        for (axes, angle_deg) in [
            ((10, 30), 0),
            ((19, 55), 37),
            ((15, 40), 90),
            ((12, 50), 300),
        ] {
            let p = params(
                [0, 255, 0],
                (112, 112),
                Geometry::Ellipse { axes, angle_deg },
            );
            let m = mask(&render(&p, 224, BG), BG);
            let area = m.iter().filter(|&&b| b).count() as f64;
            let want = std::f64::consts::PI * f64::from(axes.0 * axes.1);
            eprintln!("ellipse {axes:?} at {angle_deg}°: {area} px, πab = {want:.1}");
            assert!((area / want - 1.0).abs() < 0.04);
        }
        // angle 0: axis a along x; boundary pixels on the axes are inside.
        let at = |m: &[bool], x: i32, y: i32| m[(y * 224 + x) as usize];
        let p = params(
            [0, 255, 0],
            (100, 120),
            Geometry::Ellipse {
                axes: (10, 30),
                angle_deg: 0,
            },
        );
        let m = mask(&render(&p, 224, BG), BG);
        assert!(at(&m, 110, 120) && !at(&m, 111, 120) && at(&m, 100, 150) && !at(&m, 100, 151));
        // angle 90: the same shape with the axes swapped.
        let q = params(
            [0, 255, 0],
            (100, 120),
            Geometry::Ellipse {
                axes: (30, 10),
                angle_deg: 90,
            },
        );
        assert_eq!(m, mask(&render(&q, 224, BG), BG));
        // Clockwise on screen (y down): at 45°, axis a points to +x, +y (down-right).
        let p = params(
            [0, 255, 0],
            (100, 100),
            Geometry::Ellipse {
                axes: (50, 10),
                angle_deg: 45,
            },
        );
        let m = mask(&render(&p, 224, BG), BG);
        assert!(at(&m, 130, 130) && at(&m, 70, 70) && !at(&m, 130, 70) && !at(&m, 70, 130));
    }

    #[test]
    fn rectangle_inclusive_any_order() {
        let a = params(
            [1, 2, 3],
            (150, 60),
            Geometry::Rectangle { corner2: (20, 90) },
        );
        let b = params(
            [1, 2, 3],
            (20, 90),
            Geometry::Rectangle { corner2: (150, 60) },
        );
        let ma = mask(&render(&a, 224, BG), BG);
        assert_eq!(ma, mask(&render(&b, 224, BG), BG));
        assert_eq!(ma.iter().filter(|&&v| v).count(), 131 * 31);
        let at = |x: usize, y: usize| ma[y * 224 + x];
        assert!(at(20, 60) && at(150, 90) && at(20, 90) && at(150, 60));
        assert!(!at(19, 60) && !at(151, 60) && !at(20, 59) && !at(20, 91));
        // A degenerate rectangle is one pixel.
        let c = params([1, 2, 3], (7, 9), Geometry::Rectangle { corner2: (7, 9) });
        assert_eq!(
            mask(&render(&c, 224, BG), BG)
                .iter()
                .filter(|&&v| v)
                .count(),
            1
        );
    }

    #[test]
    fn values_are_background_or_colour() {
        for t in 0..60 {
            let mut r = rng::stream(5, rng::TRAIN, t);
            let p = draw_params(&mut r, 224, &ShapeKind::ALL);
            let rgb = p.colour.map(|c| (f64::from(c) / 255.0) as f32);
            let img = render(&p, 224, BG);
            let mut shape = 0;
            for px in img.chunks_exact(3) {
                if px == [BG as f32; 3] {
                    continue;
                }
                assert_eq!(px, rgb);
                shape += 1;
            }
            assert!(shape > 0 || p.colour == [128; 3]);
        }
    }

    #[test]
    fn contrast_and_labels() {
        let mut img = vec![0.0f32, 0.5, 1.0];
        adjust_contrast(&mut img, 0.25, 0.5);
        assert_eq!(img, vec![0.375, 0.5, 0.625]);
        let mut img = vec![0.0f32, 0.8, 1.0];
        adjust_contrast(&mut img, 0.25, 0.8);
        assert_eq!(img, vec![0.6, 0.8, 0.85]);
        let pair = training_pair(1, 0, 0, 64, &ShapeKind::ALL, BG, 0.5, 0.04, 1.0);
        let base = render(&pair.params, 64, BG);
        for (img, c) in [
            (&pair.first, pair.contrasts[0]),
            (&pair.second, pair.contrasts[1]),
        ] {
            for (&v, &x) in img.iter().zip(&base) {
                assert_eq!(v, ((1.0 - c) / 2.0 + c * f64::from(x)) as f32);
            }
        }
        assert_eq!(pair.label, u8::from(pair.contrasts[1] > pair.contrasts[0]));
        // The tutorial's pivot 0.5 is its formula `(1 − c)/2 + c·x`, bit for bit (above).
        // Equal contrasts: label 0, as numpy's argmax.
        let tie = training_pair(1, 0, 0, 64, &ShapeKind::ALL, BG, 0.5, 0.5, 0.5);
        assert_eq!((tie.contrasts, tie.label), ([0.5, 0.5], 0));
    }

    #[test]
    fn contrast_pivots_at_the_background() {
        // Away from 0.5 the tutorial's pivot moves the background with the contrast, a
        // luminance cue to the label outside the shape; a pivot at the background keeps
        // every background pixel at the background grey, in both images of every pair.
        for bg in [0.2, 128.0 / 255.0, 0.8] {
            let mut moved = 0;
            for trial in 0..40 {
                let pair = training_pair(3, 0, trial, 64, &ShapeKind::ALL, bg, bg, 0.04, 1.0);
                let inside = mask(&render(&pair.params, 64, bg), bg);
                for img in [&pair.first, &pair.second] {
                    for (px, &shape) in img.chunks_exact(3).zip(&inside) {
                        if !shape {
                            assert_eq!(px, [bg as f32; 3], "bg {bg} trial {trial}");
                        }
                    }
                }
                // The pixels outside the shape have the same mean luminance in both
                // images whatever the two contrasts; at pivot 0.5 they differ by
                // (c₁ − c₀)·(bg − 0.5).
                let tutorial = training_pair(3, 0, trial, 64, &ShapeKind::ALL, bg, 0.5, 0.04, 1.0);
                let outside = |img: &[f32]| -> f64 {
                    img.chunks_exact(3)
                        .zip(&inside)
                        .filter(|(_, &s)| !s)
                        .map(|(p, _)| f64::from(p[0]))
                        .sum()
                };
                if (outside(&tutorial.first) - outside(&tutorial.second)).abs() > 1e-3 {
                    moved += 1;
                }
            }
            if bg != 128.0 / 255.0 {
                assert!(moved > 30, "pivot 0.5 moves the background at bg {bg}");
            }
        }
    }
}
