//! A small mixed-radix FFT (any length), for filtering noise in the frequency domain.
//!
//! Recursive decimation in time by the smallest prime factor `p` of the length `n`: the `p`
//! interleaved subsequences are transformed and combined with the twiddles
//! `exp(∓2πi·j/n)`; a prime length is a direct DFT. The cost is `O(n·Σ pᵢ)` for
//! `n = Π pᵢ`, so sizes such as 224 = 2⁵·7 are fast and a large prime size is quadratic
//! (correct, but slow). The forward transform is unnormalised,
//! `X[k] = Σₜ x[t]·exp(−2πi·k·t/n)`; the inverse divides by `n`.

use std::f64::consts::PI;

/// A complex number.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Complex {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl Complex {
    /// `re + 0i`.
    pub fn real(re: f64) -> Self {
        Complex { re, im: 0.0 }
    }

    /// `|z|²`.
    pub fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }

    fn mul(self, o: Complex) -> Complex {
        Complex {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }

    fn add(self, o: Complex) -> Complex {
        Complex {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
}

fn smallest_factor(n: usize) -> usize {
    let mut p = 2;
    while p * p <= n {
        if n.is_multiple_of(p) {
            return p;
        }
        p += 1;
    }
    n
}

fn transform(x: &[Complex], sign: f64) -> Vec<Complex> {
    let n = x.len();
    if n <= 1 {
        return x.to_vec();
    }
    let w: Vec<Complex> = (0..n)
        .map(|j| {
            let (s, c) = (sign * 2.0 * PI * j as f64 / n as f64).sin_cos();
            Complex { re: c, im: s }
        })
        .collect();
    let p = smallest_factor(n);
    if p == n {
        return (0..n)
            .map(|k| {
                x.iter()
                    .enumerate()
                    .fold(Complex::default(), |acc, (t, &v)| {
                        acc.add(v.mul(w[(k * t) % n]))
                    })
            })
            .collect();
    }
    let m = n / p;
    let subs: Vec<Vec<Complex>> = (0..p)
        .map(|r| {
            let sub: Vec<Complex> = x.iter().skip(r).step_by(p).copied().collect();
            transform(&sub, sign)
        })
        .collect();
    let mut out = vec![Complex::default(); n];
    for q in 0..p {
        for k in 0..m {
            let kk = k + m * q;
            out[kk] = subs
                .iter()
                .enumerate()
                .fold(Complex::default(), |acc, (r, s)| {
                    acc.add(s[k].mul(w[(r * kk) % n]))
                });
        }
    }
    out
}

/// The forward DFT of `x` (unnormalised).
pub fn fft(x: &[Complex]) -> Vec<Complex> {
    transform(x, -1.0)
}

/// The inverse DFT of `x` (divided by its length).
pub fn ifft(x: &[Complex]) -> Vec<Complex> {
    let n = x.len().max(1) as f64;
    transform(x, 1.0)
        .into_iter()
        .map(|z| Complex {
            re: z.re / n,
            im: z.im / n,
        })
        .collect()
}

/// The 2-D DFT of an `n × n` row-major array, in place (forward unnormalised, inverse
/// divided by `n²`): rows, then columns.
pub fn fft2(data: &mut [Complex], n: usize, inverse: bool) {
    if n == 0 {
        return;
    }
    let one = |v: &[Complex]| if inverse { ifft(v) } else { fft(v) };
    for row in data.chunks_exact_mut(n) {
        let t = one(row);
        row.copy_from_slice(&t);
    }
    let mut col = vec![Complex::default(); n];
    for j in 0..n {
        for (i, c) in col.iter_mut().enumerate() {
            *c = data[i * n + j];
        }
        for (i, v) in one(&col).into_iter().enumerate() {
            data[i * n + j] = v;
        }
    }
}

/// The signed frequency of DFT bin `k` of `n`: `k` up to `n/2`, `k − n` above.
pub fn signed_bin(k: usize, n: usize) -> f64 {
    if 2 * k <= n {
        k as f64
    } else {
        k as f64 - n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[Complex]) -> Vec<Complex> {
        let n = x.len();
        (0..n)
            .map(|k| {
                x.iter()
                    .enumerate()
                    .fold(Complex::default(), |acc, (t, v)| {
                        let a = -2.0 * PI * ((k * t) % n) as f64 / n as f64;
                        acc.add(v.mul(Complex {
                            re: a.cos(),
                            im: a.sin(),
                        }))
                    })
            })
            .collect()
    }

    #[test]
    fn matches_the_direct_dft_and_inverts() {
        for n in [1usize, 2, 3, 4, 5, 6, 8, 12, 14, 15, 16, 49, 56, 97, 224] {
            let x: Vec<Complex> = (0..n)
                .map(|t| Complex {
                    re: ((t * 7 + 3) % 11) as f64 - 5.0,
                    im: ((t * 5 + 1) % 13) as f64 * 0.25,
                })
                .collect();
            let (fast, slow) = (fft(&x), naive(&x));
            let scale = n as f64 * 10.0;
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a.re - b.re).abs() < 1e-12 * scale, "n {n}");
                assert!((a.im - b.im).abs() < 1e-12 * scale, "n {n}");
            }
            for (a, b) in ifft(&fast).iter().zip(&x) {
                assert!((a.re - b.re).abs() < 1e-12 && (a.im - b.im).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn known_transforms() {
        // A unit impulse transforms to all ones; a cosine of 3 cycles in 8 to n/2 at ±3.
        let mut imp = vec![Complex::default(); 8];
        imp[0] = Complex::real(1.0);
        assert!(fft(&imp)
            .iter()
            .all(|z| (z.re - 1.0).abs() < 1e-15 && z.im.abs() < 1e-15));
        let cos: Vec<Complex> = (0..8)
            .map(|t| Complex::real((2.0 * PI * 3.0 * t as f64 / 8.0).cos()))
            .collect();
        for (k, z) in fft(&cos).iter().enumerate() {
            let want = if k == 3 || k == 5 { 4.0 } else { 0.0 };
            assert!((z.re - want).abs() < 1e-14 && z.im.abs() < 1e-14, "bin {k}");
        }
        // 2-D: a plane wave along y of 2 cycles in 6 rows lands in bins (±2, 0).
        let n = 6;
        let mut d: Vec<Complex> = (0..n * n)
            .map(|p| Complex::real((2.0 * PI * 2.0 * (p / n) as f64 / n as f64).cos()))
            .collect();
        fft2(&mut d, n, false);
        for (p, z) in d.iter().enumerate() {
            let (ky, kx) = (p / n, p % n);
            let want = if kx == 0 && (ky == 2 || ky == 4) {
                18.0
            } else {
                0.0
            };
            assert!(
                (z.re - want).abs() < 1e-12 && z.im.abs() < 1e-12,
                "({ky}, {kx})"
            );
        }
        fft2(&mut d, n, true);
        assert!((d[2 * n].re - (2.0 * PI * 2.0 * 2.0 / 6.0).cos()).abs() < 1e-14);
        assert_eq!(signed_bin(3, 6), 3.0);
        assert_eq!(signed_bin(4, 6), -2.0);
        assert_eq!(signed_bin(3, 7), 3.0);
        assert_eq!(signed_bin(4, 7), -3.0);
    }
}
