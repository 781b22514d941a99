//! Stimuli: the images shown to the network, in pure Rust (no libtorch).
//!
//! * [`shapes`]: training trials, one random filled shape on grey at two contrasts
//!   (`train shapes`), reproducing the tutorial's `create_random_shape`.
//! * [`grating`](mod@grating): test gratings (`test gratings`), reproducing the tutorial's
//!   `sinusoid_grating` and Gaussian window to 1e-13 (see `scripts/stimuli_reference.py`).
//! * [`rng`]: seeded, portable random streams, one per trial, so stimuli never depend on
//!   batch size, order or thread count.
//!
//! The stimulus library of issue 12 (see `docs/stimuli.md` for every kind's parameters,
//! formula and contrast definition): each kind is a pure function of a typed parameter
//! struct (and a seed where random), checked with errors, never panics, rendered as a
//! modulation about a background ([`common`]: `L = L0·(1 + m)`, [`Display`], [`Image`]):
//!
//! * [`gratings`]: sine and square gratings, any orientation, phase and frequency, with a
//!   circular or Gaussian window (the sine reproduces [`grating`](mod@grating) bit for bit);
//! * [`gabor`]: Gabors with fixed-size or fixed-cycles envelopes, cosine or sine phase,
//!   DC-free option;
//! * [`sum`]: plaids and sums of components (masks plus targets) about one background;
//! * [`noise`]: white (uniform, Gaussian), 1/f^α and band-pass noise, seeded, at an exact
//!   RMS contrast, filtered with [`fft`];
//! * [`vernier`]: Vernier line pairs with line or surround flankers, anti-aliased;
//! * [`patch`]: uniform discs and squares with soft edges;
//! * [`folder`]: PNG and JPEG image folders, grey or RGB, centre-cropped and resampled.
//!
//! Images are `Vec<f32>` in [0, 1], row-major: training images are RGB, HWC
//! (`size × size × 3`); gratings are single-channel (`size × size`), to be repeated to RGB
//! with [`repeat_channels`]. [`normalize`] applies the per-channel input normalisation,
//! after the contrast manipulation.

pub mod common;
pub mod fft;
pub mod folder;
pub mod gabor;
pub mod grating;
pub mod gratings;
pub mod noise;
pub mod patch;
pub mod rng;
#[cfg(test)]
mod robustness_tests;
pub mod shapes;
pub mod sum;
pub mod vernier;

pub use common::{Clip, Display, Image, StimulusError, Window};
pub use grating::{grating, uniform_grey, Grating, GratingFactors, GratingSpec};
pub use shapes::{
    adjust_contrast, draw_params, render, training_pair, training_params, EllipseRaster, Geometry,
    ShapeKind, ShapeParams, TrainingPair,
};

/// Per-channel normalisation of an HWC RGB image, in place: `x ← (x − mean[c]) / std[c]`
/// (computed in f64).
///
/// # Panics
/// If the length is not a multiple of 3.
pub fn normalize(img_hwc: &mut [f32], mean: [f64; 3], std: [f64; 3]) {
    assert_eq!(img_hwc.len() % 3, 0, "normalize: not an RGB image");
    for px in img_hwc.chunks_exact_mut(3) {
        for ((x, m), s) in px.iter_mut().zip(mean).zip(std) {
            *x = ((f64::from(*x) - m) / s) as f32;
        }
    }
}

/// A single-channel image repeated to RGB, HWC (`[v, v, v]` per pixel).
pub fn repeat_channels(grey: &[f32]) -> Vec<f32> {
    grey.iter().flat_map(|&v| [v, v, v]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_per_channel() {
        let mean = [0.485, 0.456, 0.406];
        let std = [0.229, 0.224, 0.225];
        let mut img = vec![0.485f32, 0.456, 0.406, 1.0, 0.0, 0.5];
        normalize(&mut img, mean, std);
        let want = [
            ((0.485f32 as f64 - 0.485) / 0.229) as f32,
            ((0.456f32 as f64 - 0.456) / 0.224) as f32,
            ((0.406f32 as f64 - 0.406) / 0.225) as f32,
            ((1.0 - 0.485) / 0.229) as f32,
            ((0.0 - 0.456) / 0.224) as f32,
            ((0.5 - 0.406) / 0.225) as f32,
        ];
        assert_eq!(img, want);
        assert!(img[..3].iter().all(|v| v.abs() < 1e-6));
        // Identity normalisation leaves the image as it is.
        let mut grey = repeat_channels(&uniform_grey(4));
        normalize(&mut grey, [0.0; 3], [1.0; 3]);
        assert_eq!(grey, vec![0.5; 4 * 4 * 3]);
    }
}
