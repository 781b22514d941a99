//! Test gratings: the tutorial's windowed sinusoid, on its pixel grid.
//!
//! The value at column `x`, row `y` is
//!
//! ```text
//! s = c · cos((cos θ·x + sin θ·y)/λ + φ) · g(x, y),   λ = size / (2π·f),   pixel = (s + 1)/2
//! ```
//!
//! with `g(x, y) = exp(−(x² + y²)/(2σ²))` (or 1 without an envelope) and the grid
//! `x, y ∈ {−⌊size/2⌋, …, −⌊size/2⌋ + size − 1}`: for odd sizes −r..r, for even sizes
//! −r..r−1 (the tutorial builds −r..r and drops the last row and column). The centre pixel
//! (0, 0) is at row and column ⌊size/2⌋, where the envelope peaks at exactly 1.
//!
//! Angles are degrees, converted as `deg·π/180`. The tutorial's orientations come from
//! `np.arange(0, π + 1e-3, π/12)`, i.e. `k·(π/12)`, which differs from `15k·π/180` in the
//! last bit for 75°, 105° and 150° (equal for the other nine). Against the tutorial's numpy
//! values (`tests/fixtures/stimuli/gratings.json`, 54 cases): the f32 output is within
//! 3e-8 (its rounding); in f64 the separable evaluation is within 1.4e-14, the direct
//! formula within 2.2e-16 with the tutorial's radians and 3.9e-15 with radians from degrees.
//! So the values match to about 1e-14, not to 1e-15: the argument reaches ~700 rad at
//! 112 cycles per image, and one ulp of it is ~1e-13.
//!
//! Computation is in f64 and separable: `cos(a_x + b_y) = cos a_x cos b_y − sin a_x sin b_y`
//! and `g(x, y) = g(x)·g(y)`, so an image costs `2·size` cosines, sines and exponentials.
//! A [`Grating`] keeps the contrast-free pattern, so rendering it at another contrast is one
//! multiply-add per pixel.

/// One test grating's geometry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GratingSpec {
    /// Image size in pixels (square).
    pub size: u32,
    /// Spatial frequency in cycles per image.
    pub frequency: f64,
    /// Orientation in degrees: 0° varies along x (vertical stripes), 90° along y (rows).
    pub orientation_deg: f64,
    /// Phase in degrees, added to the cosine's argument.
    pub phase_deg: f64,
    /// Standard deviation in pixels of the Gaussian window; `None` for no window.
    pub envelope_sigma: Option<f64>,
}

impl GratingSpec {
    /// The tutorial's grating: phase 0, Gaussian window with σ = size/6.
    pub fn tutorial(size: u32, frequency: f64, orientation_deg: f64) -> Self {
        GratingSpec {
            size,
            frequency,
            orientation_deg,
            phase_deg: 0.0,
            envelope_sigma: Some(f64::from(size) / 6.0),
        }
    }
}

/// A grating's contrast-free pattern `cos(…)·g`, ready to render at any contrast.
#[derive(Clone, Debug)]
pub struct Grating {
    size: u32,
    pattern: Vec<f64>,
}

/// The separable factors of a grating's pattern (see the module documentation):
/// `pattern[i][j] = (ca[j]·cb[i] − sa[j]·sb[i])·(gx[j]·gy[i])`, row `i`, column `j`.
///
/// [`Grating::new`] combines exactly these vectors, in this order of operations, so anything
/// else that combines them the same way (libtorch on a GPU, say) gets the same f64 pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct GratingFactors {
    /// Per column `x`: `cos(cos θ·x/λ)`.
    pub ca: Vec<f64>,
    /// Per column: `sin(cos θ·x/λ)`.
    pub sa: Vec<f64>,
    /// Per column: the envelope's x factor `exp(−x²/(2σ²))` (1 without an envelope).
    pub gx: Vec<f64>,
    /// Per row `y`: `cos(sin θ·y/λ + φ)`.
    pub cb: Vec<f64>,
    /// Per row: `sin(sin θ·y/λ + φ)`.
    pub sb: Vec<f64>,
    /// Per row: the envelope's y factor.
    pub gy: Vec<f64>,
}

impl GratingFactors {
    /// The factors of `spec` (`size` values each).
    pub fn new(spec: &GratingSpec) -> Self {
        let n = spec.size as usize;
        let r = (spec.size / 2) as i64;
        let theta = spec.orientation_deg * std::f64::consts::PI / 180.0;
        let rho = spec.phase_deg * std::f64::consts::PI / 180.0;
        let lambda = (f64::from(spec.size) * 0.5) / (std::f64::consts::PI * spec.frequency);
        let (sin_t, cos_t) = (theta.sin(), theta.cos());
        let coord = |i: usize| (i as i64 - r) as f64;
        let envelope = |v: f64| match spec.envelope_sigma {
            Some(sigma) => (-(v * v) / (2.0 * sigma * sigma)).exp(),
            None => 1.0,
        };
        let mut f = GratingFactors {
            ca: Vec::with_capacity(n),
            sa: Vec::with_capacity(n),
            gx: Vec::with_capacity(n),
            cb: Vec::with_capacity(n),
            sb: Vec::with_capacity(n),
            gy: Vec::with_capacity(n),
        };
        for i in 0..n {
            let v = coord(i);
            // Column: cos/sin of cos θ·x/λ and the envelope's x factor.
            let a = cos_t * v / lambda;
            f.ca.push(a.cos());
            f.sa.push(a.sin());
            f.gx.push(envelope(v));
            // Row: cos/sin of sin θ·y/λ + φ and the envelope's y factor.
            let b = sin_t * v / lambda + rho;
            f.cb.push(b.cos());
            f.sb.push(b.sin());
            f.gy.push(envelope(v));
        }
        f
    }

    /// The pattern, row-major (`size × size`).
    pub fn pattern(&self) -> Vec<f64> {
        let n = self.ca.len();
        let mut pattern = vec![0.0; n * n];
        for (i, row) in pattern.chunks_exact_mut(n.max(1)).enumerate() {
            let (cb, sb, gy) = (self.cb[i], self.sb[i], self.gy[i]);
            for (j, p) in row.iter_mut().enumerate() {
                let (ca, sa, gx) = (self.ca[j], self.sa[j], self.gx[j]);
                *p = (ca * cb - sa * sb) * (gx * gy);
            }
        }
        pattern
    }
}

impl Grating {
    /// Precomputes the pattern of `spec` (row-major, `size × size`) from its
    /// [`GratingFactors`].
    pub fn new(spec: &GratingSpec) -> Self {
        Grating {
            size: spec.size,
            pattern: GratingFactors::new(spec).pattern(),
        }
    }

    /// Image size in pixels.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Writes the grating at `contrast` into `out` (`size × size`, row-major, single
    /// channel): `(contrast·pattern + 1)/2`, computed in f64.
    ///
    /// # Panics
    /// If `out` has the wrong length.
    pub fn render_into(&self, contrast: f64, out: &mut [f32]) {
        assert_eq!(out.len(), self.pattern.len(), "grating buffer size");
        for (o, &p) in out.iter_mut().zip(&self.pattern) {
            *o = ((contrast * p + 1.0) / 2.0) as f32;
        }
    }

    /// The grating at `contrast` (`size × size`, row-major, single channel, in [0, 1]).
    pub fn render(&self, contrast: f64) -> Vec<f32> {
        let mut out = vec![0.0; self.pattern.len()];
        self.render_into(contrast, &mut out);
        out
    }

    /// As [`Grating::render`], in f64 (for checks against the reference).
    pub fn render_f64(&self, contrast: f64) -> Vec<f64> {
        self.pattern
            .iter()
            .map(|&p| (contrast * p + 1.0) / 2.0)
            .collect()
    }
}

/// The grating `spec` at `contrast`: `size × size` values, row-major (rows y, columns x),
/// mapped to `(s + 1)/2`, single channel.
///
/// At contrast 0 this is uniform 0.5 (see [`uniform_grey`]); the comparison image of a
/// trial at reference contrast `c` is `grating(spec, c)`.
pub fn grating(spec: &GratingSpec, contrast: f64) -> Vec<f32> {
    Grating::new(spec).render(contrast)
}

/// The comparison image at reference contrast 0: `size × size` values of exactly 0.5.
pub fn uniform_grey(size: u32) -> Vec<f32> {
    vec![0.5; (size as usize) * (size as usize)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
    }

    #[derive(serde::Deserialize)]
    struct Case {
        size: u32,
        frequency: f64,
        orientation_deg: f64,
        theta_rad: f64,
        phase_deg: f64,
        contrast: f64,
        sigma: Option<f64>,
        stride: usize,
        samples: Vec<f64>,
        sum: f64,
        sum_sq: f64,
    }

    /// The tutorial's formula evaluated directly, pixel by pixel, in its operation order.
    fn direct(
        size: u32,
        contrast: f64,
        f: f64,
        theta: f64,
        rho: f64,
        sigma: Option<f64>,
    ) -> Vec<f64> {
        let r = (size / 2) as i64;
        let lambda = (f64::from(size) * 0.5) / (std::f64::consts::PI * f);
        let mut out = Vec::new();
        for i in 0..size as i64 {
            for j in 0..size as i64 {
                let (x, y) = ((j - r) as f64, (i - r) as f64);
                let mut v = contrast * ((theta.cos() * x + theta.sin() * y) / lambda + rho).cos();
                if let Some(s) = sigma {
                    v *= (-(x * x + y * y) / (2.0 * s * s)).exp();
                }
                out.push((v + 1.0) / 2.0);
            }
        }
        out
    }

    #[test]
    fn parity_with_tutorial() {
        let fixture: Fixture =
            serde_json::from_str(include_str!("../../tests/fixtures/stimuli/gratings.json"))
                .unwrap();
        assert_eq!(fixture.cases.len(), 54);
        let (mut worst32, mut worst64, mut worst_direct, mut worst_sum) = (0f64, 0f64, 0f64, 0f64);
        let mut worst_deg = 0f64;
        for c in &fixture.cases {
            let spec = GratingSpec {
                size: c.size,
                frequency: c.frequency,
                orientation_deg: c.orientation_deg,
                phase_deg: c.phase_deg,
                envelope_sigma: c.sigma,
            };
            let g = Grating::new(&spec);
            let img32 = g.render(c.contrast);
            let img64 = g.render_f64(c.contrast);
            assert_eq!(img32.len(), (c.size * c.size) as usize);
            // The tutorial's own radians, evaluated directly: isolates the degree conversion.
            let rho = c.phase_deg * std::f64::consts::PI / 180.0;
            let dir = direct(c.size, c.contrast, c.frequency, c.theta_rad, rho, c.sigma);
            let theta_deg = c.orientation_deg * std::f64::consts::PI / 180.0;
            let dir_deg = direct(c.size, c.contrast, c.frequency, theta_deg, rho, c.sigma);
            let (mut d32, mut d64, mut dd) = (0f64, 0f64, 0f64);
            for (k, &want) in c.samples.iter().enumerate() {
                let idx = k * c.stride;
                d32 = d32.max((f64::from(img32[idx]) - want).abs());
                d64 = d64.max((img64[idx] - want).abs());
                dd = dd.max((dir[idx] - want).abs());
                worst_deg = worst_deg.max((dir_deg[idx] - want).abs());
            }
            let sum: f64 = img64.iter().sum();
            let sum_sq: f64 = img64.iter().map(|v| v * v).sum();
            let ds = ((sum - c.sum).abs() / c.sum).max((sum_sq - c.sum_sq).abs() / c.sum_sq);
            eprintln!(
                "size {:3} f {:5} θ {:5}° φ {:2}° c {:5} σ {:>6.2}: max|Δ| f32 {:.1e}, f64 {:.1e}, direct {:.1e}, sums rel {:.1e}",
                c.size,
                c.frequency,
                c.orientation_deg,
                c.phase_deg,
                c.contrast,
                c.sigma.unwrap_or(f64::NAN),
                d32,
                d64,
                dd,
                ds
            );
            assert!(d32 < 1e-6, "f32 output differs by {d32}");
            assert!(d64 < 1e-11, "f64 pattern differs by {d64}");
            assert!(ds < 1e-12, "sums differ by {ds} (relative)");
            worst32 = worst32.max(d32);
            worst64 = worst64.max(d64);
            worst_direct = worst_direct.max(dd);
            worst_sum = worst_sum.max(ds);
        }
        eprintln!(
            "worst: f32 {worst32:.2e}, f64 {worst64:.2e}, direct f64 {worst_direct:.2e}, \
             direct f64 from degrees {worst_deg:.2e}, sums {worst_sum:.2e}"
        );
        assert!(worst_direct < 1e-15 && worst_deg < 1e-12);
    }

    #[test]
    fn grid_and_centre() {
        for size in [32u32, 33, 224, 63] {
            let spec = GratingSpec {
                size,
                frequency: 3.0,
                orientation_deg: 30.0,
                phase_deg: 0.0,
                envelope_sigma: Some(f64::from(size) / 6.0),
            };
            let img = grating(&spec, 1.0);
            assert_eq!(img.len(), (size * size) as usize);
            let c = (size / 2) as usize;
            assert_eq!(img[c * size as usize + c], 1.0, "peak at the centre pixel");
            assert!(img.iter().all(|&v| (0.0..=1.0).contains(&v)));
        }
    }

    #[test]
    fn zero_contrast_is_uniform_grey() {
        let spec = GratingSpec::tutorial(224, 7.0, 45.0);
        assert_eq!(grating(&spec, 0.0), uniform_grey(224));
        let spec = GratingSpec {
            envelope_sigma: None,
            phase_deg: 90.0,
            ..spec
        };
        assert_eq!(grating(&spec, 0.0), uniform_grey(224));
    }

    #[test]
    fn orientation_convention() {
        // 0°: constant along columns (varies with x only); 90°: constant along rows.
        let mk = |deg| GratingSpec {
            size: 32,
            frequency: 4.0,
            orientation_deg: deg,
            phase_deg: 0.0,
            envelope_sigma: None,
        };
        let a = grating(&mk(0.0), 1.0);
        let b = grating(&mk(90.0), 1.0);
        for i in 0..32 {
            for j in 0..32 {
                assert!((a[i * 32 + j] - a[j]).abs() < 1e-6);
                assert!((b[i * 32 + j] - b[i * 32]).abs() < 1e-6);
                assert!((a[i * 32 + j] - b[j * 32 + i]).abs() < 1e-6);
            }
        }
    }
}
