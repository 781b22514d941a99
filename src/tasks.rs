//! Tasks made concrete (issue 12): the trials of a [`Task`] over a [`Design`]'s stimuli,
//! their counterbalanced conditions, the right answer, and their images, rendered with the
//! stimulus library (`src/stimuli`). Pure Rust; the interpreter turns the images into
//! features and the readout into answers.
//!
//! A trial is `(axis value, level, condition)`, plus a random stream when the stimuli
//! draw anything per trial (random parameters, noise): [`TaskTrials::render`] is a pure
//! function of those, so a trial renders the same on every machine and thread.

use crate::plan::design::{Design, Draw, Task};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// What one interval of a trial shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The task's reference stimulus.
    Reference,
    /// The task's target stimulus (carrying the level).
    Target,
}

/// A stimulus could not be made (a parameter out of its range at this level, an image
/// folder that cannot be read): the message names the stimulus and the parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskError {
    /// The stimulus concerned (empty when none).
    pub stimulus: String,
    /// What went wrong, for a diagnostic.
    pub message: String,
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.stimulus.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "stimulus `{}`: {}", self.stimulus, self.message)
        }
    }
}

impl std::error::Error for TaskError {}

/// The trials of one task over a design's stimuli, ready to render.
pub struct TaskTrials {
    // Filled in by the implementation: the two stimuli resolved, the condition list (which
    // interval holds what × the values of list parameters), loaded image folders.
    _private: (),
}

impl TaskTrials {
    /// The trials of `task` (the design's test task, or its training task) over `design`'s
    /// stimuli; image folders are read now, relative to `base` (the experiment's folder).
    pub fn new(design: &Design, task: &Task, base: &Path) -> Result<Self, TaskError> {
        let _ = (design, task, base);
        todo!("issue 12: tasks")
    }

    /// The number of counterbalanced conditions: each is tested equally often at every level.
    pub fn conditions(&self) -> usize {
        todo!("issue 12: tasks")
    }

    /// Images per trial.
    pub fn intervals(&self) -> usize {
        todo!("issue 12: tasks")
    }

    /// Possible answers (N for N-AFC and oddity, 2 otherwise).
    pub fn choices(&self) -> usize {
        todo!("issue 12: tasks")
    }

    /// True when a trial's images depend only on (axis value, level, condition): no
    /// parameter is drawn per trial and no stimulus is noise, so the interpreter may compute
    /// each such trial once.
    pub fn deterministic(&self) -> bool {
        todo!("issue 12: tasks")
    }

    /// What each interval shows in condition `c`.
    pub fn layout(&self, c: usize) -> Vec<Role> {
        let _ = c;
        todo!("issue 12: tasks")
    }

    /// The right answer (in `0..choices()`) of condition `c` at `level`: for forced choices
    /// the interval of the target (with `answer higher` and a negative level, the other
    /// interval); for same/different 1 = different; for yes/no 1 = present.
    pub fn answer(&self, c: usize, level: f64) -> usize {
        let _ = (c, level);
        todo!("issue 12: tasks")
    }

    /// A readable name of condition `c` for previews (`target in 2, orientation 45°`).
    pub fn describe(&self, c: usize) -> String {
        let _ = c;
        todo!("issue 12: tasks")
    }

    /// The images of one trial, `intervals()` of them, each RGB, row-major HWC, in [0, 1]
    /// (`size² · 3` values), at axis value `axis`, `level`, condition `c`; `rng` is the
    /// trial's own stream (random parameters, then noise, in a fixed order).
    pub fn render(
        &self,
        axis: f64,
        level: f64,
        c: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Vec<f32>>, TaskError> {
        let _ = (axis, level, c, rng);
        todo!("issue 12: tasks")
    }

    /// The reference stimulus alone at axis value `axis` (condition `c`'s list values), RGB
    /// HWC: the template distance readouts compare each interval with.
    pub fn template(
        &self,
        axis: f64,
        c: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<f32>, TaskError> {
        let _ = (axis, c, rng);
        todo!("issue 12: tasks")
    }
}

/// A training trial's axis value, level and condition, drawn from `rng` (the trial's own
/// stream): the axis value uniformly among the design's, the level from `draw`, the
/// condition uniformly.
pub fn draw_training_trial(
    design: &Design,
    trials: &TaskTrials,
    draw: &Draw,
    rng: &mut ChaCha8Rng,
) -> (f64, f64, usize) {
    let _ = (design, trials, draw, rng);
    todo!("issue 12: tasks")
}
