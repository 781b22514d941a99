//! A Nelder–Mead simplex minimiser on the unit box [0, 1]ⁿ: trial points are projected back
//! into the box, so optima on a border (a lapse rate of 0) are reached rather than avoided.

/// Standard coefficients (reflection 1, expansion 2, contraction ½, shrink ½).
const REFLECT: f64 = 1.0;
const EXPAND: f64 = 2.0;
const CONTRACT: f64 = 0.5;
const SHRINK: f64 = 0.5;

/// The result of one minimisation.
#[derive(Clone, Debug)]
pub(crate) struct Minimum {
    pub(crate) x: Vec<f64>,
    pub(crate) f: f64,
    pub(crate) evaluations: u32,
}

fn project(x: &mut [f64]) {
    for v in x {
        *v = v.clamp(0.0, 1.0);
    }
}

/// Minimises `f` from `start` with an initial simplex of side `step` (pointing inwards where
/// a side would leave the box). Stops when the simplex's values span less than `ftol` and
/// its vertices less than `xtol` in every coordinate, or after `max_evals` evaluations.
/// Values that are NaN count as +∞.
pub(crate) fn nelder_mead(
    mut f: impl FnMut(&[f64]) -> f64,
    start: &[f64],
    step: f64,
    xtol: f64,
    ftol: f64,
    max_evals: u32,
) -> Minimum {
    let n = start.len();
    let mut evals = 0u32;
    let mut eval = |x: &[f64], evals: &mut u32| {
        *evals += 1;
        let v = f(x);
        if v.is_nan() {
            f64::INFINITY
        } else {
            v
        }
    };
    let mut pts: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
    let mut s0 = start.to_vec();
    project(&mut s0);
    pts.push(s0.clone());
    for i in 0..n {
        let mut p = s0.clone();
        p[i] = if p[i] + step <= 1.0 {
            p[i] + step
        } else {
            p[i] - step
        };
        project(&mut p);
        pts.push(p);
    }
    let mut vals: Vec<f64> = pts.iter().map(|p| eval(p, &mut evals)).collect();
    if n == 0 {
        return Minimum {
            x: s0,
            f: vals[0],
            evaluations: evals,
        };
    }
    let mut order: Vec<usize> = (0..=n).collect();
    let mut centroid = vec![0.0; n];
    let mut trial = vec![0.0; n];
    let mut trial2 = vec![0.0; n];
    loop {
        order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        let (best, worst, second) = (order[0], order[n], order[n - 1]);
        let fspan = vals[worst] - vals[best];
        let xspan = (0..n)
            .map(|j| {
                pts.iter()
                    .map(|p| (p[j] - pts[best][j]).abs())
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max);
        let converged = (fspan <= ftol || (vals[best].is_infinite() && vals[worst].is_infinite()))
            && xspan <= xtol;
        if converged || evals >= max_evals {
            return Minimum {
                x: pts[best].clone(),
                f: vals[best],
                evaluations: evals,
            };
        }
        centroid.iter_mut().for_each(|c| *c = 0.0);
        for &i in &order[..n] {
            for (c, v) in centroid.iter_mut().zip(&pts[i]) {
                *c += v / n as f64;
            }
        }
        let along = |coef: f64, out: &mut Vec<f64>| {
            for j in 0..n {
                out[j] = centroid[j] + coef * (centroid[j] - pts[worst][j]);
            }
            project(out);
        };
        along(REFLECT, &mut trial);
        let fr = eval(&trial, &mut evals);
        if fr < vals[best] {
            along(EXPAND, &mut trial2);
            let fe = eval(&trial2, &mut evals);
            if fe < fr {
                pts[worst].copy_from_slice(&trial2);
                vals[worst] = fe;
            } else {
                pts[worst].copy_from_slice(&trial);
                vals[worst] = fr;
            }
            continue;
        }
        if fr < vals[second] {
            pts[worst].copy_from_slice(&trial);
            vals[worst] = fr;
            continue;
        }
        // Contract, outside if the reflection improved on the worst, inside otherwise.
        let (coef, bar) = if fr < vals[worst] {
            (CONTRACT, fr)
        } else {
            (-CONTRACT, vals[worst])
        };
        along(coef, &mut trial2);
        let fc = eval(&trial2, &mut evals);
        if fc < bar {
            pts[worst].copy_from_slice(&trial2);
            vals[worst] = fc;
            continue;
        }
        // Shrink towards the best vertex.
        let b = pts[best].clone();
        for &i in &order[1..] {
            for (v, bj) in pts[i].iter_mut().zip(&b) {
                *v = bj + SHRINK * (*v - bj);
            }
            vals[i] = eval(&pts[i], &mut evals);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_interior_and_border_minima() {
        // Rosenbrock, rescaled to have its minimum at (0.6, 0.36) inside the box.
        let rosen = |x: &[f64]| {
            let (a, b) = (x[0], x[1]);
            (0.6 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let m = nelder_mead(rosen, &[0.1, 0.9], 0.1, 1e-9, 1e-14, 10_000);
        assert!(
            (m.x[0] - 0.6).abs() < 1e-5 && (m.x[1] - 0.36).abs() < 1e-5,
            "{m:?}"
        );
        // A minimum outside the box lands on its border.
        let m = nelder_mead(
            |x: &[f64]| (x[0] + 0.5).powi(2) + (x[1] - 0.3).powi(2),
            &[0.5, 0.5],
            0.1,
            1e-10,
            1e-14,
            10_000,
        );
        assert!(m.x[0] < 1e-8 && (m.x[1] - 0.3).abs() < 1e-5, "{m:?}");
    }
}
