//! Trials and input batches: what the network is shown, in pure Rust (no libtorch).
//!
//! Shared by the interpreter (`psyrun run`) and `psyrun stimuli`, so that the images a user
//! inspects are exactly the images the network sees.
//!
//! * Training: [`train_batch`] renders trials `range` of an epoch (see
//!   [`crate::stimuli::training_pair`]), normalises them and lays them out as `[N, 3, H, W]`.
//!   Every trial has its own random stream, so a batch's content depends only on the seed,
//!   the epoch and the trial numbers, never on the batch size or the number of threads.
//! * Testing: [`test_trials`] lists the trials of one contrast level (orientations ×
//!   phases × target interval); [`TestGratings`] holds their precomputed patterns per
//!   frequency and renders targets and comparisons at any contrast.
//!
//! Labels follow the task the probe is trained on, "which image has the higher contrast":
//! 1 when the second image's contrast is higher, else 0 (ties go to the first, as numpy's
//! `argmax` in the tutorial).
//!
//! With a pedestal (`reference` > 0) the experiment is contrast *increment* discrimination:
//! the grating is the pedestal plus an increment Δc, and the planner refuses a staircase range
//! that starts below the pedestal, so the grating is always the higher-contrast image and
//! the correct answer is always the grating's interval. The threshold is then the grating's
//! contrast at threshold, pedestal included; [`sensitivity`] turns it into 1/Δc.

use crate::plan::{Envelope, Normalize, Plan, TargetInterval, Test, Train};
use crate::stimuli::{
    training_pair, training_params, Grating, GratingSpec, ShapeKind, ShapeParams, TrainingPair,
};
use rayon::prelude::*;
use std::ops::Range;

/// One test trial of a contrast level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestTrial {
    /// Grating orientation in degrees.
    pub orientation: f64,
    /// Grating phase in degrees.
    pub phase: f64,
    /// True when the grating is the first image (the comparison second).
    pub target_first: bool,
}

/// The trials of one contrast level, in a fixed order: orientation, then phase, then
/// interval (`both`: the grating second, then first).
pub fn test_trials(test: &Test) -> Vec<TestTrial> {
    let intervals: &[bool] = match test.target_interval {
        TargetInterval::First => &[true],
        TargetInterval::Second => &[false],
        TargetInterval::Both => &[false, true],
    };
    let mut out = Vec::new();
    for &orientation in &test.orientations {
        for &phase in &test.phases {
            for &target_first in intervals {
                out.push(TestTrial {
                    orientation,
                    phase,
                    target_first,
                });
            }
        }
    }
    out
}

/// The correct answer of a two-image trial: 1 if the second image's contrast is higher.
pub fn label(first_contrast: f64, second_contrast: f64) -> i64 {
    i64::from(second_contrast > first_contrast)
}

/// The correct answer of test trial `trial` with the grating at `contrast` and the
/// comparison at `reference`.
pub fn test_label(trial: &TestTrial, contrast: f64, reference: f64) -> i64 {
    if trial.target_first {
        label(contrast, reference)
    } else {
        label(reference, contrast)
    }
}

/// The sensitivity at a threshold found against a comparison at contrast `reference`: the
/// inverse of the contrast the grating needs *above* the comparison, `1 / (threshold −
/// reference)`. Without a pedestal (`reference` 0) that is the usual `1 / c`; with one it is
/// the inverse of the increment threshold Δc, not of the grating's total contrast.
///
/// A threshold at or below the reference (which a valid plan never produces: the
/// staircase's range starts at or above the pedestal) gives infinity or a negative value.
pub fn sensitivity(threshold: f64, reference: f64) -> f64 {
    1.0 / (threshold - reference)
}

/// Writes an HWC RGB image as CHW into `out` (`3·size²` values), normalised.
pub fn rgb_to_chw(hwc: &[f32], normalize: &Normalize, out: &mut [f32]) {
    let plane = hwc.len() / 3;
    debug_assert_eq!(out.len(), hwc.len());
    let (mean, std) = mean_std(normalize);
    for (c, chan) in out.chunks_exact_mut(plane).enumerate() {
        let (m, s) = (mean[c], std[c]);
        for (o, px) in chan.iter_mut().zip(hwc.chunks_exact(3)) {
            *o = ((f64::from(px[c]) - m) / s) as f32;
        }
    }
}

/// Writes a single-channel image, repeated to three channels, as CHW into `out`
/// (`3·size²` values), normalised per channel.
pub fn grey_to_chw(grey: &[f32], normalize: &Normalize, out: &mut [f32]) {
    let plane = grey.len();
    debug_assert_eq!(out.len(), 3 * plane);
    let (mean, std) = mean_std(normalize);
    for (c, chan) in out.chunks_exact_mut(plane).enumerate() {
        let (m, s) = (mean[c], std[c]);
        for (o, &v) in chan.iter_mut().zip(grey) {
            *o = ((f64::from(v) - m) / s) as f32;
        }
    }
}

fn mean_std(normalize: &Normalize) -> ([f64; 3], [f64; 3]) {
    match normalize {
        Normalize::Off => ([0.0; 3], [1.0; 3]),
        Normalize::MeanStd { mean, std } => (*mean, *std),
    }
}

/// A batch of training trials, ready for the network.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainBatch {
    /// Trials in the batch.
    pub len: usize,
    /// First images, `[len, 3, size, size]`, normalised.
    pub first: Vec<f32>,
    /// Second images, same layout.
    pub second: Vec<f32>,
    /// Correct answers (0 first, 1 second).
    pub labels: Vec<i64>,
}

/// The shape kinds of a training block.
pub fn shape_kinds(train: &Train) -> Vec<ShapeKind> {
    train.shapes.iter().map(|&s| s.into()).collect()
}

/// An experiment's training stimuli: its seed and its `train` block. Trial `trial` of
/// `epoch` is the same pair whoever asks (the interpreter, `psyrun stimuli`, the preview
/// sheet, `psyrun features`), on any thread.
#[derive(Clone, Debug)]
pub struct TrainingStimuli<'a> {
    seed: u64,
    train: &'a Train,
    kinds: Vec<ShapeKind>,
}

impl<'a> TrainingStimuli<'a> {
    /// The stimuli of the plan's `train` block under its seed.
    pub fn of(plan: &'a Plan) -> Self {
        Self::new(plan.seed, &plan.train)
    }

    /// The stimuli of `train` under `seed`.
    pub fn new(seed: u64, train: &'a Train) -> Self {
        Self {
            seed,
            train,
            kinds: shape_kinds(train),
        }
    }

    /// The `train` block.
    pub fn train(&self) -> &'a Train {
        self.train
    }

    /// Trial `trial` of `epoch` (0-based): both images and the answer.
    pub fn pair(&self, epoch: u32, trial: u64) -> TrainingPair {
        let t = self.train;
        training_pair(
            self.seed,
            epoch,
            trial,
            t.size,
            &self.kinds,
            t.background,
            t.pivot,
            t.contrast.lo,
            t.contrast.hi,
        )
    }

    /// The shape and the two contrasts of that trial, without rendering it.
    pub fn params(&self, epoch: u32, trial: u64) -> (ShapeParams, [f64; 2]) {
        let t = self.train;
        training_params(
            self.seed,
            epoch,
            trial,
            t.size,
            &self.kinds,
            t.contrast.lo,
            t.contrast.hi,
        )
    }
}

/// Renders training trials `trials` of `epoch` (0-based) in parallel.
pub fn train_batch(seed: u64, train: &Train, epoch: u32, trials: Range<u64>) -> TrainBatch {
    let stimuli = TrainingStimuli::new(seed, train);
    let n = (trials.end.saturating_sub(trials.start)) as usize;
    let image = 3 * (train.size as usize).pow(2);
    let mut first = vec![0f32; n * image];
    let mut second = vec![0f32; n * image];
    let mut labels = vec![0i64; n];
    first
        .par_chunks_mut(image.max(1))
        .zip(second.par_chunks_mut(image.max(1)))
        .zip(labels.par_iter_mut())
        .enumerate()
        .for_each(|(i, ((a, b), l))| {
            let pair = stimuli.pair(epoch, trials.start + i as u64);
            rgb_to_chw(&pair.first, &train.normalize, a);
            rgb_to_chw(&pair.second, &train.normalize, b);
            *l = label(pair.contrasts[0], pair.contrasts[1]);
        });
    TrainBatch {
        len: n,
        first,
        second,
        labels,
    }
}

/// The grating specification of `trial` at `frequency` under `test`.
pub fn grating_spec(test: &Test, frequency: f64, trial: &TestTrial) -> GratingSpec {
    GratingSpec {
        size: test.size,
        frequency,
        orientation_deg: trial.orientation,
        phase_deg: trial.phase,
        envelope_sigma: match test.envelope {
            Envelope::Off => None,
            Envelope::Gaussian { sigma } => Some(sigma),
        },
    }
}

/// The test gratings of every frequency and trial, precomputed once (the pattern does not
/// depend on contrast).
#[derive(Clone, Debug)]
pub struct TestGratings {
    test: Test,
    trials: Vec<TestTrial>,
    /// `[frequency][trial]`.
    gratings: Vec<Vec<Grating>>,
}

impl TestGratings {
    /// Precomputes the gratings of `plan.test` (in parallel).
    pub fn new(plan: &Plan) -> Self {
        let test = plan.test.clone();
        let trials = test_trials(&test);
        let gratings = test
            .frequencies
            .par_iter()
            .map(|&f| {
                trials
                    .iter()
                    .map(|t| Grating::new(&grating_spec(&test, f, t)))
                    .collect()
            })
            .collect();
        TestGratings {
            test,
            trials,
            gratings,
        }
    }

    /// The trials of one level.
    pub fn trials(&self) -> &[TestTrial] {
        &self.trials
    }

    /// Values per image (`3·size²`).
    pub fn image_len(&self) -> usize {
        3 * (self.test.size as usize).pow(2)
    }

    /// Writes the images of frequency `f` (index), trials `trials`, each at `contrast`, as
    /// `[len, 3, size, size]` normalised into `out`.
    pub fn render_into(&self, f: usize, trials: Range<usize>, contrast: f64, out: &mut [f32]) {
        let image = self.image_len();
        let normalize = &self.test.normalize;
        out.par_chunks_mut(image.max(1))
            .zip(&self.gratings[f][trials])
            .for_each(|(o, g)| grey_to_chw(&g.render(contrast), normalize, o));
    }

    /// The grey (unnormalised) image of frequency `f`, trial `t`, at `contrast`.
    pub fn grey(&self, f: usize, t: usize, contrast: f64) -> Vec<f32> {
        self.gratings[f][t].render(contrast)
    }
}

/// Captioned images for a preview sheet ([`crate::report::preview_sheet`]), unnormalised
/// (what a person should see): the first `pairs` training trials of epoch 1 (both images),
/// then for each frequency its first trial's grating at `contrast` and, once, a comparison
/// image at the reference contrast.
pub fn preview_images(plan: &Plan, pairs: u64, contrast: f64) -> Vec<(String, Vec<f32>, u32)> {
    let stimuli = TrainingStimuli::of(plan);
    let t = &plan.train;
    let mut out = Vec::new();
    for i in 0..pairs {
        let p = stimuli.pair(0, i);
        let answer = if p.label == 1 { "2nd" } else { "1st" };
        out.push((format!("#{i} a c={:.2}", p.contrasts[0]), p.first, t.size));
        out.push((
            format!("#{i} b c={:.2} ({answer})", p.contrasts[1]),
            p.second,
            t.size,
        ));
    }
    let test = &plan.test;
    let trials = test_trials(test);
    if let Some(first) = trials.first() {
        for &f in &test.frequencies {
            let g = Grating::new(&grating_spec(test, f, first));
            out.push((
                format!("{f} c/img c={contrast:.3}"),
                g.render(contrast),
                test.size,
            ));
        }
        let g = Grating::new(&grating_spec(test, test.frequencies[0], first));
        out.push((
            format!("reference c={}", test.reference),
            g.render(test.reference),
            test.size,
        ));
    }
    out
}

/// Whether the probe's last-epoch training accuracy is indistinguishable from chance:
/// below `0.5 + max(0.1, 2.33·0.5/√n)` for `n` trials (the upper end of a one-sided 99 %
/// binomial interval around chance, and never less than 60 % correct).
pub fn near_chance(accuracy: f64, trials: u64) -> bool {
    let margin = (2.33 * 0.5 / (trials.max(1) as f64).sqrt()).max(0.1);
    accuracy < 0.5 + margin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::compile;
    use crate::source::SourceFile;

    fn plan(text: &str) -> Plan {
        let f = SourceFile::new("t.psy", format!("psy 1\nexperiment t {{\n{text}\n}}\n"));
        let l = compile(&f);
        l.plan.unwrap_or_else(|| panic!("{:?}", l.diags))
    }

    const BASE: &str = "backbone resnet18 { weights random cut layer1 }
        probe linear { epochs 1 }
        staircase bisection { target 0.75 }
        train shapes { size 32 samples 10 }";

    #[test]
    fn trials_cross_orientations_phases_and_intervals() {
        let p = plan(&format!(
            "{BASE}\ntest gratings {{ size 32 frequencies [1, 2] orientations [0deg, 90deg] \
             phases [0deg, 180deg] target_interval both }}"
        ));
        let t = test_trials(&p.test);
        assert_eq!(t.len(), 8);
        assert_eq!(t.len() as u32, p.derived.trials_per_level);
        assert_eq!(
            t[1],
            TestTrial {
                orientation: 0.0,
                phase: 0.0,
                target_first: true
            }
        );
        assert_eq!(t[7].orientation, 90.0);
        assert_eq!(t[7].phase, 180.0);
        assert_eq!(t.iter().filter(|x| x.target_first).count(), 4);
    }

    #[test]
    fn labels_follow_the_higher_contrast_with_ties_to_the_first() {
        assert_eq!(label(0.2, 0.5), 1);
        assert_eq!(label(0.5, 0.2), 0);
        assert_eq!(label(0.3, 0.3), 0);
        let second = TestTrial {
            orientation: 0.0,
            phase: 0.0,
            target_first: false,
        };
        let first = TestTrial {
            target_first: true,
            ..second
        };
        assert_eq!(test_label(&second, 0.4, 0.0), 1);
        assert_eq!(test_label(&first, 0.4, 0.0), 0);
        // The tutorial's always-"second" test set.
        assert!((1..=100).all(|i| test_label(&second, f64::from(i) / 100.0, 0.0) == 1));
    }

    #[test]
    fn sensitivity_is_the_inverse_of_the_increment() {
        assert_eq!(sensitivity(0.01, 0.0), 100.0);
        assert_eq!(sensitivity(0.25, 0.0), 4.0);
        // A pedestal of 0.5: a threshold of 0.52 is an increment of 0.02.
        assert!((sensitivity(0.52, 0.5) - 50.0).abs() < 1e-9);
        assert!((sensitivity(0.75, 0.5) - 4.0).abs() < 1e-12);
        assert_eq!(sensitivity(0.5, 0.5), f64::INFINITY);
    }

    #[test]
    fn with_a_pedestal_the_grating_is_the_higher_contrast_image() {
        // A plan with a pedestal refuses a range below it; one from the pedestal up plans,
        // and every contrast its bisection can test (strictly inside the range) labels the
        // grating's interval as correct.
        let f = SourceFile::new(
            "t.psy",
            format!(
                "psy 1\nexperiment t {{\n{BASE}\ntest gratings {{ size 32 frequencies [1] reference 0.3 }}\n}}\n"
            ),
        );
        assert!(compile(&f).plan.is_none(), "range 0..1 starts below 0.3");
        let text = "backbone resnet18 { weights random cut layer1 }
             probe linear { epochs 1 }
             staircase bisection { target 0.75 range 0.3..1.0 }
             train shapes { size 32 samples 10 }
             test gratings { size 32 frequencies [1] reference 0.3 }";
        let p = plan(text);
        let (low, high) = (0.3, 1.0);
        for t in test_trials(&p.test) {
            let want = i64::from(!t.target_first);
            for i in 1..100 {
                let c = low + (high - low) * f64::from(i) / 100.0;
                assert_eq!(test_label(&t, c, p.test.reference), want, "{c} {t:?}");
            }
        }
    }

    #[test]
    fn chw_layout_and_normalisation() {
        let norm = Normalize::MeanStd {
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 2.0],
        };
        // 2×1 image: pixel 0 = (1, 0.5, 1), pixel 1 = (0, 0.25, 0.5).
        let hwc = [1.0, 0.5, 1.0, 0.0, 0.25, 0.5];
        let mut out = [0f32; 6];
        rgb_to_chw(&hwc, &norm, &mut out);
        assert_eq!(out, [1.0, -1.0, 1.0, 0.0, 0.5, 0.25]);
        let mut grey = [0f32; 6];
        grey_to_chw(&[0.5, 1.0], &Normalize::Off, &mut grey);
        assert_eq!(grey, [0.5, 1.0, 0.5, 1.0, 0.5, 1.0]);
    }

    #[test]
    fn train_batches_do_not_depend_on_batching() {
        let p = plan(&format!(
            "{BASE}\ntest gratings {{ size 32 frequencies [1] }}"
        ));
        let whole = train_batch(7, &p.train, 2, 0..10);
        let a = train_batch(7, &p.train, 2, 0..3);
        let b = train_batch(7, &p.train, 2, 3..10);
        assert_eq!(whole.len, 10);
        assert_eq!([a.first, b.first].concat(), whole.first);
        assert_eq!([a.second, b.second].concat(), whole.second);
        assert_eq!([a.labels, b.labels].concat(), whole.labels);
        // Nor on the number of threads rendering them.
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let again = pool.install(|| train_batch(7, &p.train, 2, 0..10));
            assert_eq!(again, whole, "{threads} threads");
            let g = pool.install(|| TestGratings::new(&p));
            let mut a = vec![0f32; 2 * g.image_len()];
            let mut b = a.clone();
            pool.install(|| g.render_into(0, 0..2, 0.3, &mut a));
            TestGratings::new(&p).render_into(0, 0..2, 0.3, &mut b);
            assert_eq!(a, b, "{threads} threads");
        }
        // Another epoch draws other stimuli.
        assert_ne!(train_batch(7, &p.train, 3, 0..10).first, whole.first);
        // Labels are those of the pairs.
        for (i, &l) in whole.labels.iter().enumerate() {
            let pair = training_pair(
                7,
                2,
                i as u64,
                32,
                &shape_kinds(&p.train),
                p.train.background,
                p.train.pivot,
                p.train.contrast.lo,
                p.train.contrast.hi,
            );
            // The typed hand-off draws the same pair.
            assert_eq!(TrainingStimuli::new(7, &p.train).pair(2, i as u64), pair);
            assert_eq!(l, label(pair.contrasts[0], pair.contrasts[1]));
        }
    }

    #[test]
    fn test_images_are_the_gratings_normalised() {
        let p = plan(&format!(
            "{BASE}\ntest gratings {{ size 32 frequencies [2, 4] orientations [0deg, 45deg] }}"
        ));
        let g = TestGratings::new(&p);
        let n = g.image_len();
        let mut out = vec![0f32; 2 * n];
        g.render_into(1, 0..2, 0.3, &mut out);
        let spec = grating_spec(&p.test, 4.0, &g.trials()[1]);
        let want = crate::stimuli::grating(&spec, 0.3);
        let mut chw = vec![0f32; n];
        grey_to_chw(&want, &p.test.normalize, &mut chw);
        assert_eq!(&out[n..], &chw[..]);
        assert_eq!(g.grey(1, 1, 0.3), want);
    }

    #[test]
    fn chance_threshold() {
        assert!(near_chance(0.55, 1000));
        assert!(!near_chance(0.7, 1000));
        // With 16 trials, 12 correct (75 %) is not distinguishable from chance at 99 %.
        assert!(near_chance(0.75, 16));
        assert!(!near_chance(0.95, 16));
    }
}
