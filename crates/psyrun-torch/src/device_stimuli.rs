//! The stimuli of [`psyrun::trials`], rendered by libtorch on any [`Device`]: on CUDA the
//! images are made on the GPU instead of being rendered on the CPU and copied over.
//!
//! The experiment does not change: every random parameter (a shape's colour, centre, kind
//! and geometry, the two contrasts) is still drawn on the host, from the same per-trial
//! streams ([`psyrun::stimuli::training_params`], the single source of these draws), and
//! every image equals the host path's **bit for bit** on the CPU device (tested). On CUDA
//! the same argument holds as far as the GPU's f64 arithmetic is IEEE (correctly rounded
//! separate operations, which libtorch's kernels are); the CUDA test checks to 1e-6 and the
//! same pixels inside every shape, and prints the largest difference it saw.
//!
//! On the CPU device the host path is faster (64 training images at 224 px: about 33 ms
//! here against 21 ms on the host, 2 cores; 52 gratings: 14 ms against 7–10 ms), so this
//! path is for accelerators.
//!
//! * Training: [`train_batch`] is [`trials::train_batch`] as tensors. [`shape_masks`]
//!   rasterises the shapes, [`paint_shapes`] colours them.
//! * Testing: [`DeviceGratings`] is [`trials::TestGratings`] as tensors: the contrast-free
//!   patterns of every frequency and trial live on the device, so rendering a contrast is
//!   one multiply-add (then the normalisation). [`uniform_grey`] is the grey comparison.
//!
//! # Why the results are identical
//!
//! * Shapes: a pixel is inside exactly when the host's span fill
//!   ([`psyrun::stimuli::shapes::render_into`]) writes it. Circles: the integer test
//!   `dx² + dy² ≤ r²`, the same set as its `isqrt` spans (`|dx| ≤ ⌊√(r² − dy²)⌋ ⇔ dx² ≤
//!   r² − dy²` for integers). Rectangles: both corners inclusive. Ellipses: the host's own
//!   numbers ([`EllipseRaster`]: sin and cos of the angle, a², b², the limit and the
//!   bounding box, computed on the host as scalars) and its f64 test
//!   `u·u·b2 + v·v·a2 ≤ limit`, `u = dx·cos + dy·sin`, `v = (−dx)·sin + dy·cos`, as separate
//!   tensor operations in that order (each correctly rounded, none fused). The host fills
//!   each row from its first to its last inside pixel; testing every pixel gives the same
//!   set because a row's inside pixels are contiguous: along a row the test's left side is
//!   a quadratic in `dx` with curvature `2(b²cos² + a²sin²) ≥ 2·min(a², b²)`, so a pixel
//!   between two inside ones is below the limit by at least `min(a², b²)` (≥ 100 for every
//!   drawn ellipse), far more than rounding. That argument does not cover hand-made ellipses
//!   with a zero half-axis (lines, kept finite by the bounding box, which is applied too);
//!   the tests check some at several angles, and they agree as well. Clipping: only pixels
//!   of the image exist.
//! * Colours: every pixel of a training image is either the shape's colour or the
//!   background, so their values after the contrast manipulation and the normalisation are
//!   computed on the host by the host's own functions ([`adjust_contrast`], [`rgb_to_chw`])
//!   for those two colours ([`shape_colours`]), and the device only selects between them
//!   (`where`). Exact on every device, and one pass instead of eight f64 ones.
//! * Gratings: [`GratingFactors`] (the per-column and per-row cosines, sines and envelope
//!   factors, computed on the host, so they are the host's values) are uploaded and
//!   combined as `(ca·cb − sa·sb)·(gx·gy)` in f64, as [`psyrun::stimuli::Grating`] does.
//!   Rendering is `((pattern·c + 1)/2)` in f64, cast to f32, then the normalisation
//!   `((x − mean)/std)` in f64 on the f32 value, cast to f32: the host's operations in its
//!   order. Mean and std are device tensors, not scalars: libtorch's CUDA division by a
//!   CPU scalar multiplies by the reciprocal, which can differ in the last bit.

// The interpreter uses `train_batch`, `DeviceGratings::grey` and `normalize_grey`; the rest
// of the public API (whole normalised images, the uniform grey) is what the tests compare
// with the host path.

use psyrun::plan::{Normalize, Test, Train};
use psyrun::stimuli::{adjust_contrast, EllipseRaster, Geometry, GratingFactors, ShapeParams};
use psyrun::trials::{self, rgb_to_chw, TestTrial};
use std::ops::Range;
use tch::{Device, Kind, Tensor};

/// A batch of training trials on a device, ready for the network.
#[derive(Debug)]
pub struct DeviceTrainBatch {
    /// Trials in the batch.
    pub len: usize,
    /// First images, `[len, 3, size, size]` f32, normalised.
    pub first: Tensor,
    /// Second images, same layout.
    pub second: Tensor,
    /// Correct answers (0 first, 1 second), `[len]` i64 ([`trials::label`]).
    pub labels: Tensor,
}

/// Renders training trials `trials` of `epoch` (0-based) on `device`: the same images and
/// labels as [`trials::train_batch`]`(seed, train, epoch, trials)`.
pub fn train_batch(
    seed: u64,
    train: &Train,
    epoch: u32,
    trials: Range<u64>,
    device: Device,
) -> DeviceTrainBatch {
    let stimuli = trials::TrainingStimuli::new(seed, train);
    let drawn: Vec<(ShapeParams, [f64; 2])> = trials.map(|t| stimuli.params(epoch, t)).collect();
    let params: Vec<ShapeParams> = drawn.iter().map(|d| d.0).collect();
    let first_c: Vec<f64> = drawn.iter().map(|d| d.1[0]).collect();
    let second_c: Vec<f64> = drawn.iter().map(|d| d.1[1]).collect();
    let labels: Vec<i64> = drawn
        .iter()
        .map(|d| trials::label(d.1[0], d.1[1]))
        .collect();
    let masks = shape_masks(&params, train.size, device);
    let paint = |c: &[f64]| {
        paint_shapes(
            &masks,
            &params,
            c,
            train.background,
            train.pivot,
            &train.normalize,
        )
    };
    DeviceTrainBatch {
        len: params.len(),
        first: paint(&first_c),
        second: paint(&second_c),
        labels: Tensor::from_slice(&labels).to_device(device),
    }
}

/// `[N, 1, 1]` on `device`.
fn per_image<T: tch::kind::Element>(values: &[T], device: Device) -> Tensor {
    Tensor::from_slice(values)
        .to_device(device)
        .view([-1, 1, 1])
}

/// Which pixels each shape covers: `[N, size, size]` bool on `device`, row `y`, column `x`,
/// exactly the pixels [`psyrun::stimuli::shapes::render_into`] paints in the shape's colour.
pub fn shape_masks(params: &[ShapeParams], size: u32, device: Device) -> Tensor {
    let s = i64::from(size);
    let mut masks = Tensor::zeros([params.len() as i64, s, s], (Kind::Bool, device));
    if params.is_empty() {
        return masks;
    }
    let grid = Tensor::arange(s, (Kind::Int64, device));
    let (cols, rows) = (grid.view([1, 1, s]), grid.view([1, s, 1]));
    let mut circles = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rects = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ellipses = Ellipses::default();
    for (i, p) in params.iter().enumerate() {
        let i = i as i64;
        let (cx, cy) = (i64::from(p.centre.0), i64::from(p.centre.1));
        match p.geometry {
            Geometry::Circle { radius } => {
                let r = i64::from(radius);
                circles.0.push(i);
                circles.1.push(cx);
                circles.2.push(cy);
                // A negative radius draws nothing on the host (no rows).
                circles.3.push(if r < 0 { -1 } else { r * r });
            }
            Geometry::Rectangle { corner2: (x2, y2) } => {
                let (x2, y2) = (i64::from(x2), i64::from(y2));
                rects.0.push(i);
                rects.1.push(cx.min(x2));
                rects.2.push(cx.max(x2));
                rects.3.push(cy.min(y2));
                rects.4.push(cy.max(y2));
            }
            Geometry::Ellipse { axes, angle_deg } => {
                let e = EllipseRaster::new(axes, angle_deg);
                ellipses.index.push(i);
                ellipses.cx.push(cx);
                ellipses.cy.push(cy);
                ellipses.half_width.push(i64::from(e.half_width));
                ellipses.half_height.push(i64::from(e.half_height));
                ellipses.sin.push(e.sin);
                ellipses.cos.push(e.cos);
                ellipses.a2.push(e.a2);
                ellipses.b2.push(e.b2);
                ellipses.limit.push(e.limit);
            }
        }
    }
    let col = |v: &[i64]| per_image(v, device);
    if !circles.0.is_empty() {
        let dx = &cols - col(&circles.1);
        let dy = &rows - col(&circles.2);
        let inside = (&dx * &dx + &dy * &dy).le_tensor(&col(&circles.3));
        masks = masks.index_copy(
            0,
            &Tensor::from_slice(&circles.0).to_device(device),
            &inside,
        );
    }
    if !rects.0.is_empty() {
        let in_x = cols
            .ge_tensor(&col(&rects.1))
            .logical_and(&cols.le_tensor(&col(&rects.2)));
        let in_y = rows
            .ge_tensor(&col(&rects.3))
            .logical_and(&rows.le_tensor(&col(&rects.4)));
        let inside = in_x.logical_and(&in_y);
        masks = masks.index_copy(0, &Tensor::from_slice(&rects.0).to_device(device), &inside);
    }
    if !ellipses.index.is_empty() {
        let e = &ellipses;
        let dx = &cols - col(&e.cx); // [n, 1, s]
        let dy = &rows - col(&e.cy); // [n, s, 1]
        let in_box = dx
            .abs()
            .le_tensor(&col(&e.half_width))
            .logical_and(&dy.abs().le_tensor(&col(&e.half_height)));
        let f = |v: &[f64]| per_image(v, device);
        let (sin, cos) = (f(&e.sin), f(&e.cos));
        let (fx, fy) = (dx.to_kind(Kind::Double), dy.to_kind(Kind::Double));
        // u = fx·cos + fy·sin; v = (−fx)·sin + fy·cos; u·u·b2 + v·v·a2 ≤ limit.
        let u = &fx * &cos + &fy * &sin;
        let v = fx.neg() * &sin + &fy * &cos;
        let q = &u * &u * f(&e.b2) + &v * &v * f(&e.a2);
        let inside = q.le_tensor(&f(&e.limit)).logical_and(&in_box);
        masks = masks.index_copy(0, &Tensor::from_slice(&e.index).to_device(device), &inside);
    }
    masks
}

/// The ellipses of a batch, one entry per ellipse.
#[derive(Default)]
struct Ellipses {
    index: Vec<i64>,
    cx: Vec<i64>,
    cy: Vec<i64>,
    half_width: Vec<i64>,
    half_height: Vec<i64>,
    sin: Vec<f64>,
    cos: Vec<f64>,
    a2: Vec<f64>,
    b2: Vec<f64>,
    limit: Vec<f64>,
}

/// The two pixel values, per channel, of a training image of `params` at `contrast`:
/// `(shape, background)`, after the contrast manipulation (about `pivot`) and the
/// normalisation, computed by the host's functions exactly as [`trials::train_batch`]
/// computes every pixel.
pub fn shape_colours(
    params: &ShapeParams,
    contrast: f64,
    background: f64,
    pivot: f64,
    normalize: &Normalize,
) -> ([f32; 3], [f32; 3]) {
    let bg = background as f32;
    let [r, g, b] = params.rgb();
    // A two-pixel HWC image: the shape's colour, then the background.
    let mut hwc = [r, g, b, bg, bg, bg];
    adjust_contrast(&mut hwc, contrast, pivot);
    let mut chw = [0f32; 6];
    rgb_to_chw(&hwc, normalize, &mut chw);
    ([chw[0], chw[2], chw[4]], [chw[1], chw[3], chw[5]])
}

/// Training images from their masks ([`shape_masks`], `[N, H, W]` bool): `[N, 3, H, W]`
/// f32 on the masks' device, image `i` at `contrasts[i]` and normalised, equal to
/// [`psyrun::stimuli::render`], [`adjust_contrast`] and [`rgb_to_chw`] on the host.
///
/// # Panics
/// If the lengths of `masks`, `params` and `contrasts` differ.
pub fn paint_shapes(
    masks: &Tensor,
    params: &[ShapeParams],
    contrasts: &[f64],
    background: f64,
    pivot: f64,
    normalize: &Normalize,
) -> Tensor {
    let n = params.len();
    assert_eq!(contrasts.len(), n, "paint_shapes: one contrast per shape");
    assert_eq!(
        masks.size()[0],
        n as i64,
        "paint_shapes: one mask per shape"
    );
    let (mut fg, mut bg) = (Vec::with_capacity(3 * n), Vec::with_capacity(3 * n));
    for (p, &c) in params.iter().zip(contrasts) {
        let (inside, outside) = shape_colours(p, c, background, pivot, normalize);
        fg.extend(inside);
        bg.extend(outside);
    }
    let device = masks.device();
    let colours = |v: &[f32]| {
        Tensor::from_slice(v)
            .to_device(device)
            .view([n as i64, 3, 1, 1])
    };
    colours(&fg).where_self(&masks.unsqueeze(1), &colours(&bg))
}

/// Per-channel mean and std as `[1, 3, 1, 1]` f64 tensors on `device` (`None` without
/// normalisation, which is the identity).
fn norm_tensors(normalize: &Normalize, device: Device) -> Option<(Tensor, Tensor)> {
    match normalize {
        Normalize::Off => None,
        Normalize::MeanStd { mean, std } => {
            let t = |v: &[f64; 3]| Tensor::from_slice(v).to_device(device).view([1, 3, 1, 1]);
            Some((t(mean), t(std)))
        }
    }
}

/// `n` uniform grey images (0.5, the comparison at reference contrast 0), normalised:
/// `[n, 3, size, size]` f32 on `device`, equal to [`trials::grey_to_chw`] of
/// [`psyrun::stimuli::uniform_grey`].
pub fn uniform_grey(size: u32, normalize: &Normalize, n: i64, device: Device) -> Tensor {
    let mut value = [0f32; 3];
    trials::grey_to_chw(&[0.5], normalize, &mut value);
    let s = i64::from(size);
    Tensor::from_slice(&value)
        .to_device(device)
        .view([1, 3, 1, 1])
        .expand([n, 3, s, s], false)
        .contiguous()
}

/// The test gratings of every frequency and trial, their contrast-free patterns
/// precomputed on a device: [`trials::TestGratings`] as tensors.
///
/// The patterns take `frequencies × trials × size² × 8` bytes on the device (f64), e.g.
/// 57 MB for 11 frequencies × 13 trials at 224 px.
#[derive(Debug)]
pub struct DeviceGratings {
    size: u32,
    device: Device,
    normalize: Normalize,
    trials: Vec<TestTrial>,
    /// Per frequency: `[trials, size, size]` f64.
    patterns: Vec<Tensor>,
    norm: Option<(Tensor, Tensor)>,
}

impl DeviceGratings {
    /// Precomputes the patterns of `test` on `device`, the trials in the order of
    /// [`trials::test_trials`].
    pub fn new(test: &Test, device: Device) -> Self {
        let trial_list = trials::test_trials(test);
        let s = i64::from(test.size);
        let t = trial_list.len() as i64;
        let patterns = test
            .frequencies
            .iter()
            .map(|&f| {
                let factors: Vec<GratingFactors> = trial_list
                    .iter()
                    .map(|tr| GratingFactors::new(&trials::grating_spec(test, f, tr)))
                    .collect();
                let upload = |pick: fn(&GratingFactors) -> &Vec<f64>, shape: [i64; 3]| {
                    let v: Vec<f64> = factors
                        .iter()
                        .flat_map(|g| pick(g).iter().copied())
                        .collect();
                    Tensor::from_slice(&v).to_device(device).view(shape)
                };
                let col = [t, 1, s];
                let row = [t, s, 1];
                let (ca, sa, gx) = (
                    upload(|g| &g.ca, col),
                    upload(|g| &g.sa, col),
                    upload(|g| &g.gx, col),
                );
                let (cb, sb, gy) = (
                    upload(|g| &g.cb, row),
                    upload(|g| &g.sb, row),
                    upload(|g| &g.gy, row),
                );
                // (ca·cb − sa·sb)·(gx·gy), as Grating::new.
                (ca * cb - sa * sb) * (gx * gy)
            })
            .collect();
        DeviceGratings {
            size: test.size,
            device,
            normalize: test.normalize.clone(),
            trials: trial_list,
            patterns,
            norm: norm_tensors(&test.normalize, device),
        }
    }

    /// The trials of one level.
    pub fn trials(&self) -> &[TestTrial] {
        &self.trials
    }

    /// The device the patterns and images live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The unnormalised single-channel images of frequency `f` (index), trials `trials`, at
    /// `contrast`: `[len, size, size]` f32, each equal to [`trials::TestGratings::grey`]:
    /// `((contrast·pattern + 1)/2)` in f64, cast to f32.
    ///
    /// # Panics
    /// If `f` or `trials` is out of range.
    pub fn grey(&self, f: usize, trials: Range<usize>, contrast: f64) -> Tensor {
        assert!(trials.end <= self.trials.len() && trials.start <= trials.end);
        let mut x = self.patterns[f]
            .narrow(0, trials.start as i64, (trials.end - trials.start) as i64)
            .g_mul_scalar(contrast);
        // In place: the same operations, without two more temporaries.
        let _ = x.g_add_scalar_(1.0);
        let _ = x.g_div_scalar_(2.0);
        x.to_kind(Kind::Float)
    }

    /// Single-channel images `[N, size, size]` f32 repeated to three channels and
    /// normalised: `[N, 3, size, size]` f32, equal to [`trials::grey_to_chw`].
    pub fn normalize_grey(&self, grey: &Tensor) -> Tensor {
        let x = grey.unsqueeze(1);
        match &self.norm {
            None => x.repeat([1, 3, 1, 1]),
            Some((mean, std)) => {
                let mut y = x.to_kind(Kind::Double) - mean;
                let _ = y.g_div_(std);
                y.to_kind(Kind::Float)
            }
        }
    }

    /// The images of frequency `f` (index), trials `trials`, each at `contrast`:
    /// `[len, 3, size, size]` f32, normalised, equal to
    /// [`trials::TestGratings::render_into`].
    ///
    /// The comparison image of a trial is its grating at the test's reference contrast; at
    /// reference 0 that is [`DeviceGratings::uniform_grey`] for every trial.
    pub fn render(&self, f: usize, trials: Range<usize>, contrast: f64) -> Tensor {
        self.normalize_grey(&self.grey(f, trials, contrast))
    }

    /// `n` uniform grey images of the test's size and normalisation ([`uniform_grey`]).
    pub fn uniform_grey(&self, n: i64) -> Tensor {
        uniform_grey(self.size, &self.normalize, n, self.device)
    }
}

#[cfg(test)]
mod tests {
    //! The device path against the host path ([`trials`], [`psyrun::stimuli`]): bit for bit
    //! on the CPU device; on CUDA (when available) within 1e-6 and with the same pixels
    //! inside every shape.
    use super::*;
    use psyrun::plan::{
        compile, Envelope, Plan, Shape, TargetInterval, Uniform, IMAGENET_MEAN, IMAGENET_STD,
    };
    use psyrun::source::SourceFile;
    use psyrun::stimuli::{render, ShapeKind};
    use psyrun::trials::TestGratings;
    use std::collections::BTreeSet;
    use std::time::Instant;

    const CPU: Device = Device::Cpu;
    const BG: f64 = 128.0 / 255.0;

    fn imagenet() -> Normalize {
        Normalize::MeanStd {
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    fn custom() -> Normalize {
        Normalize::MeanStd {
            mean: [0.5, 0.25, 0.1],
            std: [0.3, 0.7, 0.123],
        }
    }

    fn to_vec<T: tch::kind::Element + Copy>(t: &Tensor) -> Vec<T> {
        Vec::<T>::try_from(&t.to_device(CPU).contiguous().view([-1])).unwrap()
    }

    /// The largest |got − want| and the first index where they differ: in any bit when
    /// `tol` is 0, else by more than `tol`.
    fn difference(got: &[f32], want: &[f32], tol: f32) -> (f32, Option<usize>) {
        assert_eq!(got.len(), want.len(), "lengths differ");
        let mut max = 0f32;
        let mut first = None;
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let d = (g - w).abs();
            max = max.max(d);
            let bad = if tol == 0.0 {
                g.to_bits() != w.to_bits()
            } else {
                d.is_nan() || d > tol
            };
            if bad && first.is_none() {
                first = Some(i);
            }
        }
        (max, first)
    }

    /// The index of flat element `i` of a tensor of `shape`.
    fn position(shape: &[i64], mut i: usize) -> Vec<i64> {
        let mut pos = vec![0; shape.len()];
        for (p, &d) in pos.iter_mut().zip(shape).rev() {
            *p = (i % d as usize) as i64;
            i /= d as usize;
        }
        pos
    }

    /// Asserts that `got` (f32) equals `want`: bit for bit when `tol` is 0, else within
    /// `tol`; names the first differing element otherwise. Returns the largest |Δ|.
    fn assert_same(what: &str, got: &Tensor, want: &[f32], tol: f32) -> f32 {
        assert_eq!(got.kind(), Kind::Float, "{what}: kind");
        let shape = got.size();
        let g = to_vec::<f32>(got);
        assert_eq!(
            g.len(),
            want.len(),
            "{what}: {shape:?} has the wrong number of values"
        );
        let (max, first) = difference(&g, want, tol);
        if let Some(i) = first {
            panic!(
                "{what}: element {:?} (of {shape:?}) is {} on the device and {} on the host; \
                 max |Δ| {max:e}",
                position(&shape, i),
                g[i],
                want[i]
            );
        }
        max
    }

    /// Host pixel sets of `params` in a `size` image, `None` where the shape's colour is
    /// the background's (then the rendering cannot tell).
    fn host_mask(p: &ShapeParams, size: u32) -> Option<Vec<bool>> {
        let bg = BG as f32;
        if p.rgb() == [bg; 3] {
            return None;
        }
        let img = render(p, size, BG);
        Some(
            img.chunks_exact(3)
                .map(|px| px.iter().any(|&v| v != bg))
                .collect(),
        )
    }

    /// Asserts that `shape_masks` on `device` gives the host's pixels for every shape;
    /// returns the number of shapes checked.
    fn assert_same_pixels(what: &str, params: &[ShapeParams], size: u32, device: Device) -> usize {
        let masks = shape_masks(params, size, device);
        let s = i64::from(size);
        assert_eq!(masks.size(), [params.len() as i64, s, s]);
        assert_eq!(masks.kind(), Kind::Bool);
        let got: Vec<bool> = to_vec::<bool>(&masks);
        let plane = (size * size) as usize;
        let mut checked = 0;
        for (i, p) in params.iter().enumerate() {
            let Some(want) = host_mask(p, size) else {
                continue;
            };
            let mine = &got[i * plane..(i + 1) * plane];
            if let Some(k) = (0..plane).find(|&k| mine[k] != want[k]) {
                panic!(
                    "{what}: shape {i} {p:?}: pixel (y {}, x {}) is {} on the device, {} on \
                     the host ({} vs {} pixels inside)",
                    k / size as usize,
                    k % size as usize,
                    mine[k],
                    want[k],
                    mine.iter().filter(|&&b| b).count(),
                    want.iter().filter(|&&b| b).count()
                );
            }
            checked += 1;
        }
        checked
    }

    /// Whether the shape reaches past the image's border (so clipping matters).
    fn clipped(p: &ShapeParams, size: u32) -> bool {
        let s = size as i32;
        let (cx, cy) = p.centre;
        let (x0, x1, y0, y1) = match p.geometry {
            Geometry::Circle { radius: r } => (cx - r, cx + r, cy - r, cy + r),
            Geometry::Ellipse { axes, angle_deg } => {
                let e = EllipseRaster::new(axes, angle_deg);
                let (w, h) = (e.half_width, e.half_height);
                (cx - w, cx + w, cy - h, cy + h)
            }
            Geometry::Rectangle { corner2: (x2, y2) } => {
                (cx.min(x2), cx.max(x2), cy.min(y2), cy.max(y2))
            }
        };
        x0 < 0 || y0 < 0 || x1 >= s || y1 >= s
    }

    fn train(size: u32, shapes: &[Shape], normalize: Normalize) -> Train {
        Train {
            size,
            samples: 1000,
            shapes: shapes.to_vec(),
            background: BG,
            pivot: BG,
            contrast: Uniform { lo: 0.04, hi: 1.0 },
            normalize,
        }
    }

    /// What the training checks saw (so that a test can insist they saw enough).
    #[derive(Default, Debug)]
    struct Seen {
        kinds: [usize; 3],
        clipped: [usize; 3],
        angles: BTreeSet<i32>,
        trials: usize,
        max_diff: f32,
    }

    /// Training batches on `device` against [`trials::train_batch`].
    fn check_train(device: Device, tol: f32) -> Seen {
        use Shape::{Circle, Ellipse, Rectangle};
        let all = [Circle, Ellipse, Rectangle];
        let cases: Vec<(Train, u64, u32, Range<u64>)> = vec![
            (train(31, &all, imagenet()), 1, 0, 0..150),
            (train(32, &all, Normalize::Off), 2, 3, 10..130),
            (train(33, &[Ellipse], custom()), 7, 1, 0..90),
            (train(64, &all, custom()), 3, 1, 0..150),
            (train(64, &[Ellipse], imagenet()), 4, 0, 5..125),
            (train(224, &all, imagenet()), 5, 2, 40..136),
            (
                train(224, &[Ellipse, Ellipse, Circle], Normalize::Off),
                6,
                0,
                0..48,
            ),
        ];
        let mut seen = Seen::default();
        for (t, seed, epoch, range) in cases {
            let what = format!("size {} seed {seed} epoch {epoch} trials {range:?}", t.size);
            let host = trials::train_batch(seed, &t, epoch, range.clone());
            let dev = train_batch(seed, &t, epoch, range.clone(), device);
            let s = i64::from(t.size);
            assert_eq!(dev.len, host.len, "{what}");
            assert_eq!(dev.first.size(), [host.len as i64, 3, s, s], "{what}");
            assert_eq!(dev.first.device(), device);
            let d1 = assert_same(&format!("{what}, first"), &dev.first, &host.first, tol);
            let d2 = assert_same(&format!("{what}, second"), &dev.second, &host.second, tol);
            seen.max_diff = seen.max_diff.max(d1).max(d2);
            assert_eq!(dev.labels.kind(), Kind::Int64);
            assert_eq!(to_vec::<i64>(&dev.labels), host.labels, "{what}: labels");
            let kinds = trials::shape_kinds(&t);
            let params: Vec<ShapeParams> = range
                .clone()
                .map(|i| {
                    psyrun::stimuli::training_params(seed, epoch, i, t.size, &kinds, 0.04, 1.0).0
                })
                .collect();
            let checked = assert_same_pixels(&what, &params, t.size, device);
            assert!(
                checked + 3 >= params.len(),
                "{what}: only {checked} masks checked"
            );
            for p in &params {
                let k = ShapeKind::ALL.iter().position(|&k| k == p.kind()).unwrap();
                seen.kinds[k] += 1;
                seen.clipped[k] += usize::from(clipped(p, t.size));
                if let Geometry::Ellipse { angle_deg, .. } = p.geometry {
                    seen.angles.insert(angle_deg);
                }
            }
            seen.trials += params.len();
        }
        seen
    }

    /// Ellipses at every angle (and past 0..360), circles and rectangles at and over every
    /// border, partly and wholly outside, degenerate sizes.
    fn hand_made_shapes() -> Vec<ShapeParams> {
        let mut out = Vec::new();
        let centres = [
            (32, 32),
            (3, 60),
            (60, 2),
            (-5, 20),
            (70, 70),
            (0, 0),
            (63, 63),
            (20, 66),
        ];
        let axes = [
            (10, 30),
            (19, 55),
            (13, 41),
            (17, 33),
            (30, 10),
            (1, 1),
            (2, 9),
            (10, 10),
            (0, 12),
            (7, 0),
        ];
        for (k, angle_deg) in (-7..=367).enumerate() {
            out.push(ShapeParams {
                colour: [(k * 37 % 256) as u8, (k * 11 % 256) as u8, 200],
                centre: centres[k % centres.len()],
                geometry: Geometry::Ellipse {
                    axes: axes[k % axes.len()],
                    angle_deg,
                },
            });
        }
        // Lines (a zero half-axis) along and across the axes and diagonally.
        for (i, angle_deg) in [0, 45, 90, 135, 180, 270, 360].into_iter().enumerate() {
            for axes in [(0, 12), (7, 0), (0, 0)] {
                out.push(ShapeParams {
                    colour: [9, 99, 199],
                    centre: centres[i],
                    geometry: Geometry::Ellipse { axes, angle_deg },
                });
            }
        }
        for radius in [-1, 0, 1, 2, 5, 10, 20, 40] {
            for &centre in &centres {
                out.push(ShapeParams {
                    colour: [255, 0, (radius * 5).clamp(0, 255) as u8],
                    centre,
                    geometry: Geometry::Circle { radius },
                });
            }
        }
        for (centre, corner2) in [
            ((5, 5), (20, 30)),
            ((30, 20), (5, 5)),
            ((-10, -10), (5, 70)),
            ((60, 3), (80, 3)),
            ((7, 7), (7, 7)),
            ((-5, -5), (-1, -1)),
            ((64, 0), (70, 63)),
            ((0, 63), (63, 0)),
        ] {
            out.push(ShapeParams {
                colour: [0, 0, 0],
                centre,
                geometry: Geometry::Rectangle { corner2 },
            });
        }
        out
    }

    /// Hand-made shapes on `device` against the host's render, contrast and normalisation.
    fn check_hand_made(device: Device, tol: f32) -> f32 {
        let params = hand_made_shapes();
        let mut max = 0f32;
        for (size, normalize) in [(64u32, imagenet()), (65, Normalize::Off)] {
            let what = format!("hand-made shapes, size {size}");
            let checked = assert_same_pixels(&what, &params, size, device);
            assert!(
                checked + 5 >= params.len(),
                "{what}: only {checked} masks checked"
            );
            let contrasts: Vec<f64> = (0..params.len())
                .map(|i| 0.04 + 0.96 * ((i * 7919) % 1000) as f64 / 1000.0)
                .collect();
            let got = paint_shapes(
                &shape_masks(&params, size, device),
                &params,
                &contrasts,
                BG,
                BG,
                &normalize,
            );
            let plane = 3 * (size * size) as usize;
            let mut want = vec![0f32; params.len() * plane];
            for ((p, &c), out) in params
                .iter()
                .zip(&contrasts)
                .zip(want.chunks_exact_mut(plane))
            {
                let mut img = render(p, size, BG);
                adjust_contrast(&mut img, c, BG);
                rgb_to_chw(&img, &normalize, out);
            }
            max = max.max(assert_same(&what, &got, &want, tol));
        }
        max
    }

    /// A plan whose test block is replaced by `test`.
    fn plan_with(test: &Test) -> Plan {
        let f = SourceFile::new(
            "t.psy",
            "psy 1\nexperiment t {\nbackbone resnet18 { weights random cut layer1 }\n\
             probe linear { epochs 1 }\nstaircase bisection { target 0.75 }\n\
             train shapes { size 32 samples 10 }\ntest gratings { size 32 frequencies [1] }\n}\n",
        );
        let mut plan = compile(&f).plan.expect("base plan");
        plan.test = test.clone();
        plan
    }

    fn grating_cases() -> Vec<Test> {
        let test = |size: u32,
                    frequencies: &[f64],
                    orientations: &[f64],
                    phases: &[f64],
                    envelope: Envelope,
                    target_interval: TargetInterval,
                    normalize: Normalize| Test {
            size,
            frequencies: frequencies.to_vec(),
            orientations: orientations.to_vec(),
            phases: phases.to_vec(),
            envelope,
            reference: 0.0,
            target_interval,
            normalize,
        };
        let gauss = |sigma: f64| Envelope::Gaussian { sigma };
        vec![
            test(
                31,
                &[1.0, 2.5, 7.0, 15.5],
                &[0.0, 15.0, 45.0, 75.0, 90.0, 105.0, 150.0, 180.0],
                &[0.0, 90.0],
                gauss(31.0 / 6.0),
                TargetInterval::Both,
                imagenet(),
            ),
            test(
                64,
                &[2.0, 4.0, 8.0, 16.0, 32.0],
                &[0.0, 45.0, 90.0, 135.0, 33.3],
                &[0.0, 180.0, 12.5],
                Envelope::Off,
                TargetInterval::Second,
                Normalize::Off,
            ),
            test(
                224,
                &[1.0, 7.0, 56.0, 112.0],
                &[0.0, 15.0, 75.0, 105.0, 150.0],
                &[0.0],
                gauss(224.0 / 6.0),
                TargetInterval::First,
                imagenet(),
            ),
            test(
                224,
                &[3.5],
                &[0.0, 90.0],
                &[0.0, 90.0],
                gauss(10.5),
                TargetInterval::Both,
                custom(),
            ),
        ]
    }

    const CONTRASTS: [f64; 6] = [0.0, 1e-3, 0.05, 0.3, 0.731, 1.0];

    /// Test gratings on `device` against [`TestGratings`]; returns (images compared, max |Δ|).
    fn check_gratings(device: Device, tol: f32) -> (usize, f32) {
        let (mut images, mut max, mut pattern_max) = (0usize, 0f32, 0f64);
        for test in grating_cases() {
            let host = TestGratings::new(&plan_with(&test));
            let dev = DeviceGratings::new(&test, device);
            assert_eq!(dev.trials(), host.trials());
            assert_eq!(dev.device(), device);
            let t = host.trials().len();
            let n = host.image_len();
            let s = i64::from(test.size);
            for (f, &freq) in test.frequencies.iter().enumerate() {
                // The f64 patterns themselves, bit for bit (the f32 images hide most
                // last-bit differences of f64).
                let pattern = to_vec::<f64>(&dev.patterns[f]);
                assert_eq!(dev.patterns[f].kind(), Kind::Double);
                assert_eq!(pattern.len(), t * (n / 3));
                for (k, (trial, got)) in host
                    .trials()
                    .iter()
                    .zip(pattern.chunks_exact(n / 3))
                    .enumerate()
                {
                    let spec = trials::grating_spec(&test, freq, trial);
                    let want = GratingFactors::new(&spec).pattern();
                    if let Some(i) = (0..want.len()).find(|&i| {
                        let d = (got[i] - want[i]).abs();
                        pattern_max = pattern_max.max(d);
                        if tol == 0.0 {
                            got[i].to_bits() != want[i].to_bits()
                        } else {
                            d.is_nan() || d > f64::from(tol)
                        }
                    }) {
                        panic!(
                            "pattern of {spec:?} (trial {k}): pixel (y {}, x {}) is {} on the \
                             device, {} on the host",
                            i / test.size as usize,
                            i % test.size as usize,
                            got[i],
                            want[i]
                        );
                    }
                }
                for &c in &CONTRASTS {
                    let what = format!(
                        "size {} frequency {freq} contrast {c} envelope {:?} {:?}",
                        test.size, test.envelope, test.normalize
                    );
                    for range in [0..t, 1..t - 1] {
                        let mut want = vec![0f32; range.len() * n];
                        host.render_into(f, range.clone(), c, &mut want);
                        let got = dev.render(f, range.clone(), c);
                        assert_eq!(got.size(), [range.len() as i64, 3, s, s], "{what}");
                        let d = assert_same(&format!("{what}, trials {range:?}"), &got, &want, tol);
                        max = max.max(d);
                        images += range.len();
                    }
                    let last = t - 1;
                    let d = assert_same(
                        &format!("{what}, grey of trial {last}"),
                        &dev.grey(f, last..t, c),
                        &host.grey(f, last, c),
                        tol,
                    );
                    max = max.max(d);
                }
            }
            // The comparison at reference 0: uniform grey, normalised.
            let grey = psyrun::stimuli::uniform_grey(test.size);
            let mut one = vec![0f32; n];
            trials::grey_to_chw(&grey, &test.normalize, &mut one);
            let want = one.repeat(3);
            assert_same("uniform grey", &dev.uniform_grey(3), &want, tol);
            assert_same(
                "uniform grey (free function)",
                &uniform_grey(test.size, &test.normalize, 3, device),
                &want,
                tol,
            );
            // A grating at contrast 0 is that grey.
            assert_same("contrast 0", &dev.render(0, 0..3, 0.0), &want, tol);
        }
        eprintln!("{device:?}: grating patterns (f64) max |Δ| {pattern_max:e}");
        (images, max)
    }

    #[test]
    fn the_checker_finds_one_bit() {
        let want: Vec<f32> = (0..2 * 3 * 4 * 5).map(|i| i as f32 * 0.01 - 0.5).collect();
        let t = Tensor::from_slice(&want).view([2, 3, 4, 5]);
        assert_eq!(assert_same("same", &t, &want, 0.0), 0.0);
        let mut off = want.clone();
        off[97] = f32::from_bits(off[97].to_bits() + 1);
        assert_eq!(difference(&to_vec::<f32>(&t), &off, 0.0).1, Some(97));
        assert_eq!(position(&[2, 3, 4, 5], 97), [1, 1, 3, 2]);
        assert!(std::panic::catch_unwind(|| assert_same("off", &t, &off, 0.0)).is_err());
        // Within a tolerance the one-ulp difference passes, a larger one does not.
        assert_eq!(difference(&to_vec::<f32>(&t), &off, 1e-6).1, None);
        off[5] += 1e-3;
        assert_eq!(difference(&to_vec::<f32>(&t), &off, 1e-6).1, Some(5));
        // -0.0 and 0.0 are told apart bit for bit.
        assert_eq!(difference(&[0.0], &[-0.0], 0.0).1, Some(0));
    }

    #[test]
    fn training_batches_equal_host_on_cpu() {
        let seen = check_train(CPU, 0.0);
        eprintln!(
            "{} trials, kinds {:?}, clipped {:?}, {} ellipse angles",
            seen.trials,
            seen.kinds,
            seen.clipped,
            seen.angles.len()
        );
        assert_eq!(seen.max_diff, 0.0);
        // Enough of everything, clipped circles and ellipses included (rectangles' corners
        // are always inside the image), and ellipses at many angles.
        assert!(seen.kinds.iter().all(|&k| k >= 60), "{:?}", seen.kinds);
        assert!(
            seen.clipped[0] >= 20 && seen.clipped[1] >= 50,
            "{:?}",
            seen.clipped
        );
        assert!(seen.angles.len() >= 200, "{} angles", seen.angles.len());
    }

    #[test]
    fn hand_made_shapes_equal_host_on_cpu() {
        let params = hand_made_shapes();
        let clipped_count = params.iter().filter(|p| clipped(p, 64)).count();
        assert!(clipped_count > 150, "{clipped_count} clipped");
        assert_eq!(check_hand_made(CPU, 0.0), 0.0);
        // Not vacuous: the masks hold pixels, and differ between shapes.
        let m = shape_masks(&params, 64, CPU);
        let per = m.sum_dim_intlist(&[1i64, 2][..], false, Kind::Int64);
        let per = to_vec::<i64>(&per);
        assert!(per.iter().filter(|&&c| c > 100).count() > 200);
        assert!(per.contains(&0), "a shape wholly outside the image");
    }

    #[test]
    fn gratings_equal_host_on_cpu() {
        let (images, max) = check_gratings(CPU, 0.0);
        eprintln!("{images} grating images identical");
        assert_eq!(max, 0.0);
        assert!(images > 2000);
        // Not vacuous: another contrast, or another normalisation, is another image.
        let test = &grating_cases()[0];
        let dev = DeviceGratings::new(test, CPU);
        let host = TestGratings::new(&plan_with(test));
        let mut want = vec![0f32; host.image_len()];
        host.render_into(1, 0..1, 0.31, &mut want);
        let got = to_vec::<f32>(&dev.render(1, 0..1, 0.3));
        assert!(difference(&got, &want, 0.0).1.is_some());
        let off = DeviceGratings::new(
            &Test {
                normalize: Normalize::Off,
                ..test.clone()
            },
            CPU,
        );
        host.render_into(1, 0..1, 0.3, &mut want);
        assert!(
            difference(&to_vec::<f32>(&off.render(1, 0..1, 0.3)), &want, 0.0)
                .1
                .is_some()
        );
    }

    #[test]
    fn empty_batches() {
        let t = train(32, &[Shape::Circle], imagenet());
        let b = train_batch(1, &t, 0, 5..5, CPU);
        assert_eq!(b.len, 0);
        assert_eq!(b.first.size(), [0, 3, 32, 32]);
        assert_eq!(b.labels.size(), [0]);
        let g = DeviceGratings::new(&grating_cases()[0], CPU);
        assert_eq!(g.render(0, 2..2, 0.5).size(), [0, 3, 31, 31]);
    }

    #[test]
    #[cfg_attr(
        not(psyrun_cuda_tests),
        ignore = "needs a CUDA GPU (nvidia-smi at build time, or PSYRUN_TEST_CUDA=1)"
    )]
    fn device_stimuli_match_host_on_cuda() {
        assert!(
            tch::Cuda::is_available(),
            "a GPU was found at build time, but libtorch sees no CUDA device"
        );
        let gpu = Device::Cuda(0);
        let seen = check_train(gpu, 1e-6);
        let hand = check_hand_made(gpu, 1e-6);
        let (images, gratings) = check_gratings(gpu, 1e-6);
        eprintln!(
            "CUDA: {} training trials (max |Δ| {:e}), hand-made shapes (max |Δ| {hand:e}), \
             {images} grating images (max |Δ| {gratings:e}); the same pixels in every shape",
            seen.trials, seen.max_diff
        );
        assert!(seen.kinds.iter().all(|&k| k >= 60));
    }

    /// Host against device for a 64-image batch at 224 px, and a level of gratings:
    /// `./dev cargo test --release -p psyrun-torch --lib device_stimuli_timing
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn device_stimuli_timing() {
        // As the psyrun-torch binary does (freed buffers stay in the process).
        crate::tune_allocator();
        let t = train(
            224,
            &[Shape::Circle, Shape::Ellipse, Shape::Rectangle],
            imagenet(),
        );
        let mut devices = vec![CPU];
        if tch::Cuda::is_available() {
            devices.push(Device::Cuda(0));
        }
        // The fastest of 7 runs after a warm-up, in milliseconds.
        let time = |f: &mut dyn FnMut()| {
            f();
            (0..7)
                .map(|_| {
                    let t0 = Instant::now();
                    f();
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .fold(f64::INFINITY, f64::min)
        };
        let host_ms = time(&mut || {
            let b = trials::train_batch(3, &t, 0, 0..64);
            let shape = [64, 3, 224, 224];
            let x = Tensor::from_slice(&b.first).reshape(shape);
            let y = Tensor::from_slice(&b.second).reshape(shape);
            let _ = std::hint::black_box((x, y));
        });
        eprintln!("training, 64 × 224 px: host {host_ms:.1} ms (render + copy into tensors)");
        for &d in &devices {
            let ms = time(&mut || {
                let b = train_batch(3, &t, 0, 0..64, d);
                std::hint::black_box(b.first.sum(Kind::Double).double_value(&[]));
            });
            eprintln!("training, 64 × 224 px: {d:?} {ms:.1} ms");
        }
        // A level of 13 orientations × 2 phases × 2 intervals at 224 px.
        let test = &Test {
            frequencies: vec![7.0],
            orientations: (0..13).map(|i| f64::from(i) * 15.0).collect(),
            phases: vec![0.0, 90.0],
            target_interval: TargetInterval::Both,
            ..grating_cases()[2].clone()
        };
        let host = TestGratings::new(&plan_with(test));
        let n = host.trials().len();
        let host_ms = time(&mut || {
            let mut out = vec![0f32; n * host.image_len()];
            host.render_into(0, 0..n, 0.3, &mut out);
            let _ = std::hint::black_box(Tensor::from_slice(&out));
        });
        eprintln!("gratings, {n} × 224 px: host {host_ms:.2} ms");
        for &d in &devices {
            let g = DeviceGratings::new(test, d);
            let ms = time(&mut || {
                let x = g.render(0, 0..n, 0.3);
                std::hint::black_box(x.sum(Kind::Double).double_value(&[]));
            });
            eprintln!("gratings, {n} × 224 px: {d:?} {ms:.2} ms");
        }
    }
}
