//! Every kind of the stimulus library on arbitrary numbers (NaN, ±∞, 0, ±f64::MAX,
//! subnormals, ordinary values): never a panic, and every image that is returned has
//! `size²` values, all finite and in [0, 1]. Sizes are small (1..20) to keep it fast.

use proptest::prelude::*;

use super::common::{Clip, Display, Image, Window};
use super::gabor::{Envelope, GaborParams, GaborPhase};
use super::gratings::{GratingParams, Waveform};
use super::noise::{NoiseParams, Source, Spectrum};
use super::patch::{PatchParams, PatchShape};
use super::sum::{Component, SumParams};
use super::vernier::{Flankers, Orientation, Polarity, Sampling, VernierParams};

fn num() -> impl Strategy<Value = f64> {
    let special = prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(1e-310),
        Just(1e-300),
        Just(1e300),
        -1e7..1e7f64,
        any::<f64>(),
    ];
    // Mostly ordinary values, so that many cases get past the checks and render.
    prop_oneof![
        3 => special,
        8 => 0.0..1.0f64,
        6 => 0.0..20.0f64,
        1 => -10.0..10.0f64,
    ]
}

fn size() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 1u32..20, Just(5000)]
}

fn display() -> impl Strategy<Value = Display> {
    (num(), any::<bool>()).prop_map(|(background, clamp)| Display {
        background,
        clip: if clamp { Clip::Clamp } else { Clip::Error },
    })
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        Just(Window::None),
        (num(), num()).prop_map(|(radius, edge)| Window::Circular { radius, edge }),
        num().prop_map(|sigma| Window::Gaussian { sigma }),
    ]
}

fn grating() -> impl Strategy<Value = GratingParams> {
    (size(), num(), num(), num(), num(), any::<bool>(), window()).prop_map(
        |(size, frequency, orientation_deg, phase_deg, contrast, square, window)| GratingParams {
            size,
            frequency,
            orientation_deg,
            phase_deg,
            contrast,
            waveform: if square {
                Waveform::Square
            } else {
                Waveform::Sine
            },
            window,
        },
    )
}

fn gabor() -> impl Strategy<Value = GaborParams> {
    (
        size(),
        num(),
        num(),
        num(),
        num(),
        num(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(size, frequency, orientation_deg, phase, contrast, env, cycles, dc_free)| {
                GaborParams {
                    size,
                    frequency,
                    orientation_deg,
                    phase: GaborPhase::Degrees(phase),
                    contrast,
                    envelope: if cycles {
                        Envelope::Cycles(env)
                    } else {
                        Envelope::Sigma(env)
                    },
                    dc_free,
                }
            },
        )
}

fn noise() -> impl Strategy<Value = NoiseParams> {
    (
        size(),
        any::<bool>(),
        0u8..3,
        num(),
        num(),
        num(),
        any::<u64>(),
    )
        .prop_map(
            |(size, uniform, kind, a, b, rms_contrast, seed)| NoiseParams {
                size,
                source: if uniform {
                    Source::Uniform
                } else {
                    Source::Gaussian
                },
                spectrum: match kind {
                    0 => Spectrum::White,
                    1 => Spectrum::Power { alpha: a },
                    _ => Spectrum::Band {
                        centre: a,
                        octaves: b,
                    },
                },
                rms_contrast,
                seed,
                index: seed.rotate_left(7),
            },
        )
}

fn patch() -> impl Strategy<Value = PatchParams> {
    (size(), any::<bool>(), num(), num(), num(), num(), num()).prop_map(
        |(size, disc, extent, contrast, edge, x, y)| PatchParams {
            size,
            shape: if disc {
                PatchShape::Disc { radius: extent }
            } else {
                PatchShape::Square { half: extent }
            },
            contrast,
            edge,
            centre: (x, y),
        },
    )
}

fn vernier() -> impl Strategy<Value = VernierParams> {
    (
        size(),
        (num(), num(), num(), num(), num()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (0u8..3, num(), proptest::option::of(num())),
    )
        .prop_map(
            |(
                size,
                (offset, bar_width, length, gap, contrast),
                (dark, tent, across),
                (f, a, l),
            )| {
                VernierParams {
                    size,
                    offset,
                    bar_width,
                    length,
                    gap,
                    contrast,
                    polarity: if dark {
                        Polarity::Dark
                    } else {
                        Polarity::Bright
                    },
                    sampling: if tent { Sampling::Tent } else { Sampling::Area },
                    flankers: match f {
                        0 => Flankers::None,
                        1 => Flankers::Lines {
                            spacing: a,
                            length: l,
                        },
                        _ => Flankers::Surround { margin: a },
                    },
                    orientation: if across {
                        Orientation::Horizontal
                    } else {
                        Orientation::Vertical
                    },
                }
            },
        )
}

/// An image that was returned is well formed.
fn well_formed(img: &Image, size: u32) -> Result<(), TestCaseError> {
    let n = size as usize;
    prop_assert_eq!((img.width, img.height, img.channels), (size, size, 1));
    prop_assert_eq!(img.pixels.len(), n * n);
    prop_assert!(img
        .pixels
        .iter()
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn gratings_never_panic(p in grating(), d in display()) {
        if let Ok(img) = p.render(&d) {
            well_formed(&img, p.size)?;
        }
    }

    #[test]
    fn gabors_never_panic(p in gabor(), d in display()) {
        if let Ok(img) = p.render(&d) {
            well_formed(&img, p.size)?;
        }
    }

    #[test]
    fn noise_never_panics(p in noise(), d in display()) {
        if let Ok(img) = p.render(&d) {
            well_formed(&img, p.size)?;
        }
    }

    #[test]
    fn patches_never_panic(p in patch(), d in display()) {
        if let Ok(img) = p.render(&d) {
            well_formed(&img, p.size)?;
        }
    }

    #[test]
    fn verniers_never_panic(p in vernier(), d in display()) {
        if let Ok(img) = p.render(&d) {
            well_formed(&img, p.size)?;
        }
    }

    #[test]
    fn sums_never_panic(a in grating(), b in patch(), c in vernier(), d in display()) {
        let s = SumParams {
            components: vec![
                Component::Grating(a),
                Component::Patch(PatchParams { size: a.size, ..b }),
                Component::Vernier(VernierParams { size: a.size, ..c }),
            ],
        };
        if let Ok(img) = s.render(&d) {
            well_formed(&img, a.size)?;
        }
    }
}

#[test]
fn ordinary_values_do_render() {
    // The generators above must not make every case an error: ordinary parameters render.
    let d = Display::default();
    assert!(GratingParams::default().render(&d).is_ok());
    assert!(GaborParams::default().render(&d).is_ok());
    assert!(NoiseParams {
        size: 32,
        ..NoiseParams::default()
    }
    .render(&d)
    .is_ok());
    assert!(PatchParams::default().render(&d).is_ok());
    assert!(VernierParams::default().render(&d).is_ok());
}

#[test]
fn a_share_of_random_cases_render() {
    // Guards the generators: a fair share of the random cases above must reach rendering
    // (and its checks), not all stop at parameter errors.
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use std::cell::Cell;
    let mut runner = TestRunner::new_with_rng(
        Config::with_cases(400),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let ok = Cell::new([0usize; 5]);
    let count = |k: usize, hit: bool| {
        let mut c = ok.get();
        c[k] += usize::from(hit);
        ok.set(c);
    };
    let strategy = (grating(), gabor(), noise(), patch(), vernier());
    runner
        .run(&strategy, |(a, b, c, d, e)| {
            let disp = Display::default();
            count(0, a.render(&disp).is_ok());
            count(1, b.render(&disp).is_ok());
            count(2, c.render(&disp).is_ok());
            count(3, d.render(&disp).is_ok());
            count(4, e.render(&disp).is_ok());
            Ok(())
        })
        .unwrap();
    let ok = ok.get();
    eprintln!("rendered out of 400: {ok:?}");
    assert!(ok.iter().all(|&k| k >= 10), "{ok:?}");
}
