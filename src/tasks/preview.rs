//! Trials to look at: the images of a design's test trials (one of each condition at every
//! axis value) and training trials, with what they are and the right answer, for
//! `psyrun stimuli` and the preview sheet.

use super::{draw_training_trial, Role, TaskError, TaskTrials};
use crate::plan::design::Design;
use crate::stimuli::rng;
use std::path::Path;

/// The stream of the preview's test trials (its index is `axis index · 2³² + condition`).
pub const PREVIEW: &str = "preview";

/// One rendered trial.
#[derive(Clone, Debug, PartialEq)]
pub struct PreviewTrial {
    /// `"test"` or `"train"`.
    pub set: &'static str,
    /// The trial's index in its set.
    pub index: usize,
    /// The axis value.
    pub axis: f64,
    /// The level.
    pub level: f64,
    /// The condition.
    pub condition: usize,
    /// [`TaskTrials::describe`] of the condition.
    pub description: String,
    /// The right answer, in `0..choices`.
    pub answer: usize,
    /// [`TaskTrials::answer_name`] of the answer.
    pub answer_name: String,
    /// What each interval shows.
    pub layout: Vec<Role>,
    /// The intervals' images, RGB HWC in [0, 1].
    pub images: Vec<Vec<f32>>,
}

/// The trials a preview shows: for each axis value (in order), one trial of each condition
/// (in order) of the test task at `level`, drawn from the stream
/// `rng::stream(seed, "preview", axis_index · 2³² + condition)`; then, when `training` is
/// given, that many training trials of the training task as the probe sees them in epoch
/// 1 (`rng::stream(seed, "train", train_index(0, i))`: the axis value, level and condition
/// drawn by [`draw_training_trial`], then the images from the same stream).
pub fn preview_trials(
    design: &Design,
    seed: u64,
    base: &Path,
    level: f64,
    training: u64,
) -> Result<Vec<PreviewTrial>, TaskError> {
    let test = TaskTrials::new(design, &design.task, base)?;
    let mut out = Vec::new();
    for (ai, &axis) in design.axis.values.iter().enumerate() {
        for c in 0..test.conditions() {
            let mut g = rng::stream(seed, PREVIEW, ((ai as u64) << 32) | c as u64);
            let images = test.render(axis, level, c, &mut g)?;
            out.push(trial(&test, "test", out.len(), axis, level, c, images));
        }
    }
    if let Some(train) = &design.train {
        let task = design.train_task();
        let trials = TaskTrials::new(design, task, base)?;
        for i in 0..training {
            let mut g = rng::stream(seed, rng::TRAIN, rng::train_index(0, i));
            let (axis, level, c) = draw_training_trial(design, &trials, &train.level, &mut g);
            let images = trials.render(axis, level, c, &mut g)?;
            out.push(trial(&trials, "train", i as usize, axis, level, c, images));
        }
    }
    Ok(out)
}

fn trial(
    t: &TaskTrials,
    set: &'static str,
    index: usize,
    axis: f64,
    level: f64,
    c: usize,
    images: Vec<Vec<f32>>,
) -> PreviewTrial {
    let answer = t.answer(c, level);
    PreviewTrial {
        set,
        index,
        axis,
        level,
        condition: c,
        description: t.describe(c),
        answer,
        answer_name: t.answer_name(answer),
        layout: t.layout(c),
        images,
    }
}

/// The images of a preview sheet (for [`crate::report::preview_sheet`] with `columns` the
/// returned count): one row per trial, its intervals side by side (rows of fewer intervals
/// padded with background grey). The first interval's caption names the trial (`test f=4:
/// target in interval 2`, `train #0: …`), the last one's gives the answer (`→ interval 2`).
pub fn preview_images(
    design: &Design,
    trials: &[PreviewTrial],
) -> (Vec<(String, Vec<f32>, u32)>, usize) {
    let columns = trials
        .iter()
        .map(|t| t.images.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let size = design.size;
    let blank = vec![design.background as f32; (size * size * 3) as usize];
    let mut out = Vec::new();
    for t in trials {
        let name = match t.set {
            "test" => format!("{}={}", design.axis.name, t.axis),
            _ => format!("train #{} {}={:.3}", t.index, design.level.name, t.level),
        };
        let n = t.images.len();
        for (k, img) in t.images.iter().enumerate() {
            let role = match t.layout.get(k) {
                Some(Role::Target) => "target",
                _ => "reference",
            };
            let mut caption = if k == 0 {
                format!("{name}: {}", t.description)
            } else {
                format!("{} {role}", k + 1)
            };
            if k + 1 == n {
                caption.push_str(&format!(" → {}", t.answer_name));
            }
            out.push((caption, img.clone(), size));
        }
        for _ in n..columns {
            out.push((String::new(), blank.clone(), size));
        }
    }
    (out, columns)
}
