//! psyrun's training shapes against the tutorial's generator, in distribution.
//!
//! `tests/fixtures/stimuli/shape_stats.json` holds summary statistics of 10 000 shapes at
//! 224 px from the tutorial's `create_random_shape` (numpy + OpenCV), written by
//! `scripts/shape_statistics.py`, whose docstring gives the command that regenerates it.
//! This test draws as many shapes with [`draw_params`] and [`render_into`] (fixed seed,
//! stream `train`, epoch 0; about 4 s in a debug build on 2 cores) and compares the two
//! samples. Each of the 17 statistical tests is at significance α = 0.001, so a correct
//! generator fails one with probability below 2 % (and the seeds are fixed: the outcome is
//! deterministic):
//!
//! * kind proportions: chi-square test of homogeneity (2 × 3 table);
//! * colour, per channel: z test of the means, chi-square homogeneity of 16-bin histograms;
//! * per kind, filled area (except ellipses, below) and the centre (x, y) of the shape's
//!   bounding box: two-sample Kolmogorov–Smirnov, the statistic evaluated at the fixture's
//!   stored ECDF points (a lower bound of the full two-sample statistic, so the test never
//!   rejects more often than α);
//! * shapes touching the image border: none for circles and ellipses (in both samples),
//!   chi-square homogeneity for rectangles.
//!
//! The one known difference is tested explicitly: cv2 fills an ellipse as a 72-gon and draws
//! its outline, adding about a half-pixel rim (see the module documentation of [`super`]),
//! so the tutorial's mean ellipse area must exceed psyrun's by a factor in [1.0, 1.1] (the
//! rim predicts `E[(a + ½)(b + ½)] / E[ab]` ≈ 1.047), and psyrun's ellipse areas scaled
//! shape by shape by `(a + ½)(b + ½) / (ab)` must pass the KS test against cv2's. (The
//! unscaled areas fail it: D ≈ 0.065 against a critical 0.048, printed for comparison.)
use super::*;
use rayon::prelude::*;
use serde::Deserialize;

const ALPHA: f64 = 1e-3;
const SEED: u64 = 20240;
const BG: f64 = 128.0 / 255.0;
const KINDS: [&str; 3] = ["circle", "ellipse", "rectangle"];

#[derive(Deserialize)]
struct Fixture {
    size: u32,
    draws: usize,
    kinds: Counts,
    colour: ColourStats,
    per_kind: PerKind,
}

#[derive(Deserialize)]
struct Counts {
    circle: usize,
    ellipse: usize,
    rectangle: usize,
}

#[derive(Deserialize)]
struct ColourStats {
    mean: [f64; 3],
    sd: [f64; 3],
    hist16: [[u64; 16]; 3],
}

#[derive(Deserialize)]
struct PerKind {
    circle: KindStats,
    ellipse: KindStats,
    rectangle: KindStats,
}

#[derive(Deserialize)]
struct KindStats {
    area: Summary,
    bbox_cx: Summary,
    bbox_cy: Summary,
    touches_border: u64,
}

#[derive(Deserialize)]
struct Summary {
    n: usize,
    mean: f64,
    sd: f64,
    ecdf: Ecdf,
}

#[derive(Deserialize)]
struct Ecdf {
    at: Vec<f64>,
    cdf: Vec<f64>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stimuli/shape_stats.json"
    )))
    .expect("shape_stats.json")
}

/// What the test measures of one rendered shape.
struct Measured {
    params: ShapeParams,
    area: f64,
    bbox_cx: f64,
    bbox_cy: f64,
    touches_border: bool,
}

/// Every `FULL_SCAN_EVERY`-th shape is also measured over the whole image.
const FULL_SCAN_EVERY: u64 = 20;

/// Renders shape `t` of the test's stream and measures its pixels: those that differ from
/// the background (`None` for a shape of the background's colour).
///
/// A full-image scan of every shape is too slow in a debug build, so the pixels are read in
/// a box 2 pixels larger on each side than the extent the parameters imply (`cx ± r`,
/// `cx ± b`, the rectangle's corners). The box's outermost rows and columns must be
/// background: the shapes are connected, so then none of their pixels lies outside the box.
/// Every [`FULL_SCAN_EVERY`]-th shape is also measured over the whole image, which must agree.
fn measure(t: u64, size: u32, buf: &mut [f32]) -> Option<Measured> {
    let mut r = rng::stream(SEED, rng::TRAIN, rng::train_index(0, t));
    let params = draw_params(&mut r, size, &ShapeKind::ALL);
    render_into(&params, size, BG, buf);
    let n = size as usize;
    let bg = BG as f32;
    let (cx, cy) = params.centre;
    let (x0, x1, y0, y1) = match params.geometry {
        Geometry::Circle { radius: e } => (cx - e, cx + e, cy - e, cy + e),
        Geometry::Ellipse { axes: (a, b), .. } => {
            let e = a.max(b);
            (cx - e, cx + e, cy - e, cy + e)
        }
        Geometry::Rectangle { corner2: (x, y) } => (cx.min(x), cx.max(x), cy.min(y), cy.max(y)),
    };
    let last = size as i32 - 1;
    let grow = |lo: i32, hi: i32| ((lo - 2).max(0) as usize, (hi + 2).min(last) as usize);
    let ((bx0, bx1), (by0, by1)) = (grow(x0, x1), grow(y0, y1));
    let row = |y: usize, a: usize, b: usize| &buf[3 * (y * n + a)..3 * (y * n + b + 1)];
    let is_bg = |px: &[f32]| px.iter().all(|&v| v == bg);
    // The box's border, where it lies inside the image.
    for y in [by0, by1] {
        assert!(
            y == 0 || y == n - 1 || is_bg(row(y, bx0, bx1)),
            "shape {t} {params:?}: pixels in row {y}, past its expected extent"
        );
    }
    for x in [bx0, bx1] {
        assert!(
            x == 0 || x == n - 1 || (by0..=by1).all(|y| is_bg(row(y, x, x))),
            "shape {t} {params:?}: pixels in column {x}, past its expected extent"
        );
    }
    let m = measure_box(buf, n, (bx0, bx1), (by0, by1))?;
    if t.is_multiple_of(FULL_SCAN_EVERY) {
        let full = measure_box(buf, n, (0, n - 1), (0, n - 1));
        assert_eq!(full, Some(m), "shape {t} {params:?}: stray pixels");
    }
    let (area, (x0, x1), (y0, y1)) = m;
    Some(Measured {
        params,
        area: area as f64,
        bbox_cx: (x0 + x1) as f64 / 2.0,
        bbox_cy: (y0 + y1) as f64 / 2.0,
        touches_border: x0 == 0 || y0 == 0 || x1 == n - 1 || y1 == n - 1,
    })
}

/// Area and bounding box `(area, (x0, x1), (y0, y1))` of a shape's pixels.
type BoxStats = (usize, (usize, usize), (usize, usize));

/// [`BoxStats`] of the non-background pixels of an `n × n` RGB image within the columns and
/// rows given (inclusive), assuming each row's pixels form one run (true of the convex
/// shapes drawn here).
fn measure_box(
    buf: &[f32],
    n: usize,
    (xa, xb): (usize, usize),
    (ya, yb): (usize, usize),
) -> Option<BoxStats> {
    let bg = BG as f32;
    let (mut area, mut x0, mut x1, mut y0, mut y1) = (0, n, 0, n, 0);
    for y in ya..=yb {
        let row = &buf[3 * (y * n + xa)..3 * (y * n + xb + 1)];
        let Some(first) = row.iter().position(|&v| v != bg) else {
            continue;
        };
        let last = row.iter().rposition(|&v| v != bg).unwrap();
        let (a, b) = (xa + first / 3, xa + last / 3);
        area += b - a + 1;
        (x0, x1, y0, y1) = (x0.min(a), x1.max(b), y0.min(y), y1.max(y));
    }
    (area > 0).then_some((area, (x0, x1), (y0, y1)))
}

/// Upper α quantile of the chi-square distribution with `df` degrees of freedom.
fn chi2_critical(df: usize) -> f64 {
    // α = 0.001 (tables).
    match df {
        1 => 10.828,
        2 => 13.816,
        15 => 37.697,
        _ => panic!("no critical value for {df} degrees of freedom"),
    }
}

/// Pearson's chi-square statistic of homogeneity for two rows of counts, and its degrees of
/// freedom (columns empty in both rows are left out).
fn chi2_homogeneity(a: &[u64], b: &[u64]) -> (f64, usize) {
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    let total = na + nb;
    let mut stat = 0.0;
    let mut columns = 0;
    for (&x, &y) in a.iter().zip(b) {
        let col = (x + y) as f64;
        if col == 0.0 {
            continue;
        }
        columns += 1;
        for (obs, row) in [(x as f64, na), (y as f64, nb)] {
            let want = row * col / total;
            stat += (obs - want) * (obs - want) / want;
        }
    }
    (stat, columns - 1)
}

/// The two-sample KS statistic of `sample` against the stored ECDF, at its points.
fn ks_statistic(sample: &[f64], ecdf: &Ecdf) -> f64 {
    let mut s = sample.to_vec();
    s.sort_by(f64::total_cmp);
    ecdf.at
        .iter()
        .zip(&ecdf.cdf)
        .map(|(&at, &theirs)| {
            let ours = s.partition_point(|&v| v <= at) as f64 / s.len() as f64;
            (ours - theirs).abs()
        })
        .fold(0.0, f64::max)
}

/// The two-sample KS critical value at level α for samples of `n` and `m`.
fn ks_critical(n: usize, m: usize) -> f64 {
    let c = (-(ALPHA / 2.0).ln() / 2.0).sqrt();
    let (n, m) = (n as f64, m as f64);
    c * ((n + m) / (n * m)).sqrt()
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// |z| of the difference of two means, from the samples' standard deviations.
fn z_means((m1, s1, n1): (f64, f64, usize), (m2, s2, n2): (f64, f64, usize)) -> f64 {
    ((m1 - m2) / (s1 * s1 / n1 as f64 + s2 * s2 / n2 as f64).sqrt()).abs()
}

/// Two-sided normal critical value at α = 0.001.
const Z_CRITICAL: f64 = 3.291;

#[test]
fn shapes_match_the_tutorials_generator_in_distribution() {
    let start = std::time::Instant::now();
    let fx = fixture();
    let size = fx.size;
    let pixels = (size as usize).pow(2) * 3;
    let ours: Vec<Measured> = (0..fx.draws as u64)
        .into_par_iter()
        .map_init(|| vec![0.0f32; pixels], |buf, t| measure(t, size, buf))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    let drawn_s = start.elapsed().as_secs_f64();
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        eprintln!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures.push(what);
        }
    };

    // Kind proportions.
    let theirs_kinds = [fx.kinds.circle, fx.kinds.ellipse, fx.kinds.rectangle].map(|c| c as u64);
    let by_kind: [Vec<&Measured>; 3] = ShapeKind::ALL.map(|k| {
        ours.iter()
            .filter(|m| m.params.kind() == k)
            .collect::<Vec<_>>()
    });
    let ours_kinds = by_kind.each_ref().map(|v| v.len() as u64);
    let (stat, df) = chi2_homogeneity(&ours_kinds, &theirs_kinds);
    check(
        stat < chi2_critical(df),
        format!("kinds {ours_kinds:?} vs {theirs_kinds:?}: chi² {stat:.2} (df {df})"),
    );

    // Colour, per channel.
    for c in 0..3 {
        let v: Vec<f64> = ours.iter().map(|m| f64::from(m.params.colour[c])).collect();
        let (mean, sd) = mean_sd(&v);
        let z = z_means(
            (mean, sd, v.len()),
            (fx.colour.mean[c], fx.colour.sd[c], fx.draws),
        );
        check(
            z < Z_CRITICAL,
            format!(
                "colour[{c}] mean {mean:.2} vs {:.2}: |z| {z:.2}",
                fx.colour.mean[c]
            ),
        );
        let mut hist = [0u64; 16];
        for m in &ours {
            hist[usize::from(m.params.colour[c] / 16)] += 1;
        }
        let (stat, df) = chi2_homogeneity(&hist, &fx.colour.hist16[c]);
        check(
            stat < chi2_critical(df),
            format!("colour[{c}] histogram: chi² {stat:.2} (df {df})"),
        );
    }

    // Per kind: area, bounding-box centre, border.
    let theirs_stats = [
        &fx.per_kind.circle,
        &fx.per_kind.ellipse,
        &fx.per_kind.rectangle,
    ];
    for (k, (ms, theirs)) in by_kind.iter().zip(theirs_stats).enumerate() {
        let name = KINDS[k];
        let area: Vec<f64> = ms.iter().map(|m| m.area).collect();
        let cx: Vec<f64> = ms.iter().map(|m| m.bbox_cx).collect();
        let cy: Vec<f64> = ms.iter().map(|m| m.bbox_cy).collect();
        let mut vars = vec![
            ("bbox_cx", cx, &theirs.bbox_cx),
            ("bbox_cy", cy, &theirs.bbox_cy),
        ];
        if ShapeKind::ALL[k] != ShapeKind::Ellipse {
            vars.push(("area", area.clone(), &theirs.area));
        }
        for (var, sample, stored) in vars {
            let d = ks_statistic(&sample, &stored.ecdf);
            let crit = ks_critical(sample.len(), stored.n);
            let (mean, _) = mean_sd(&sample);
            check(
                d < crit,
                format!(
                    "{name} {var}: KS D {d:.4} < {crit:.4} (means {mean:.1} vs {:.1})",
                    stored.mean
                ),
            );
        }
        let touching = ms.iter().filter(|m| m.touches_border).count() as u64;
        if ShapeKind::ALL[k] == ShapeKind::Rectangle {
            let rows = (
                [touching, ms.len() as u64 - touching],
                [
                    theirs.touches_border,
                    theirs.area.n as u64 - theirs.touches_border,
                ],
            );
            let (stat, df) = chi2_homogeneity(&rows.0, &rows.1);
            check(
                stat < chi2_critical(df),
                format!(
                    "{name} touching the border: {touching} vs {}: chi² {stat:.2}",
                    theirs.touches_border
                ),
            );
        } else {
            check(
                touching == 0 && theirs.touches_border == 0,
                format!(
                    "{name} touching the border: {touching} vs {}",
                    theirs.touches_border
                ),
            );
        }
    }

    // Ellipses: cv2's half-pixel rim, explicitly.
    let ellipses = &by_kind[1];
    let theirs = &fx.per_kind.ellipse.area;
    let area: Vec<f64> = ellipses.iter().map(|m| m.area).collect();
    let (mean, sd) = mean_sd(&area);
    let ratio = theirs.mean / mean;
    let axes = |m: &Measured| match m.params.geometry {
        Geometry::Ellipse { axes: (a, b), .. } => (f64::from(a), f64::from(b)),
        _ => unreachable!(),
    };
    let rim = |m: &Measured| {
        let (a, b) = axes(m);
        (a + 0.5) * (b + 0.5) / (a * b)
    };
    let expected = ellipses
        .iter()
        .map(|m| {
            let (a, b) = axes(m);
            (a + 0.5) * (b + 0.5)
        })
        .sum::<f64>()
        / ellipses.iter().map(|m| axes(m).0 * axes(m).1).sum::<f64>();
    check(
        (1.0..=1.1).contains(&ratio),
        format!(
            "ellipse area: cv2 mean {:.1} / psyrun mean {mean:.1} = {ratio:.4} in [1.0, 1.1] \
             (half-pixel rim predicts {expected:.4}; sd {sd:.1} vs {:.1})",
            theirs.mean, theirs.sd
        ),
    );
    let rimmed: Vec<f64> = ellipses.iter().map(|m| m.area * rim(m)).collect();
    let d = ks_statistic(&rimmed, &theirs.ecdf);
    let crit = ks_critical(rimmed.len(), theirs.n);
    check(
        d < crit,
        format!("ellipse area × (a+½)(b+½)/(ab): KS D {d:.4} < {crit:.4}"),
    );
    let d_raw = ks_statistic(&area, &theirs.ecdf);
    eprintln!("(ellipse area uncorrected: KS D {d_raw:.4}, for comparison)");

    eprintln!(
        "{} shapes drawn and measured in {drawn_s:.2}s, tests in {:.2}s",
        ours.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "failed: {failures:#?}");
}
