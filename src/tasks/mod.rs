//! Tasks made concrete (issue 12): the trials of a [`Task`] over a [`Design`]'s stimuli,
//! their counterbalanced conditions, the right answer, and their images, rendered with the
//! stimulus library (`src/stimuli`). Pure Rust; the interpreter turns the images into
//! features and the readout into answers.
//!
//! A trial is `(axis value, level, condition)`, plus a random stream when the stimuli
//! draw anything per trial (random parameters, noise): [`TaskTrials::render`] is a pure
//! function of those, so a trial renders the same on every machine and thread.
//!
//! # Conditions
//!
//! A condition is a *layout* (what each interval shows) and one value of every *list
//! dimension*:
//!
//! * layouts: 2AFC, N-AFC and oddity with `position all`: the target in interval 0, 1, …,
//!   N−1 (the others show the reference); with `position K`: the target in interval K
//!   only. Same/different: (reference, reference), (target, target), (reference, target),
//!   (target, reference). Yes/no: (target), (reference).
//! * list dimensions: every parameter name that is a [`Param::List`] in either stimulus,
//!   in name order (byte order); when both stimuli list it they must list the same values.
//!   A stimulus that lists the parameter takes the condition's value; a stimulus that does
//!   not keeps its own value.
//!
//! Conditions are the cartesian product with the **layout outermost** and the list
//! dimensions inside it, the last name varying fastest: condition
//! `c = layout · L + Σ index_d · stride_d` with `L` the product of the lists' lengths.
//!
//! # Random draws (the order is fixed: changing it changes every experiment's stimuli)
//!
//! From the trial's stream, [`TaskTrials::render`] draws, in this order:
//!
//! 1. one `u = rng::unit_f64` per parameter name that is `uniform` or `log_uniform` in
//!    either stimulus, in name order; each stimulus maps the shared `u` through its own
//!    distribution (`lo + (hi − lo)·u`, or `exp(ln lo + (ln hi − ln lo)·u)`), so two
//!    stimuli with the same distribution get the same value in every interval of the trial;
//! 2. when either stimulus is an `images` stimulus: one `u = rng::unit_f64`, the image
//!    `⌊u·n⌋` of each folder of `n` images (one photo per trial, shared by all intervals);
//! 3. one seed (`next_u64`) per interval showing a `noise` stimulus, in interval order: each
//!    such interval is its own noise sample (`NoiseParams { seed, index: 0 }`).
//!
//! [`TaskTrials::template`] draws the same way for its one interval, so given a copy of a
//! trial's stream it shows the same random values and the same photo as the trial.

pub mod preview;
mod render;
#[cfg(test)]
mod tests;

pub use preview::{preview_images, preview_trials, PreviewTrial};

use crate::plan::design::{Answer, Design, Draw, Param, Position, StimulusKind, Task, TaskKind};
use crate::stimuli::{rng, Image};
use rand::RngCore;
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

impl TaskError {
    fn new(stimulus: &str, message: impl Into<String>) -> Self {
        TaskError {
            stimulus: stimulus.to_string(),
            message: message.into(),
        }
    }
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

/// The most intervals a trial may have.
pub const MAX_INTERVALS: u32 = 64;

/// The most conditions a task may have (layouts × list values).
pub const MAX_CONDITIONS: usize = 1 << 20;

/// One stimulus of the task, resolved, with its images read.
#[derive(Clone, Debug)]
struct Stim {
    name: String,
    kind: StimulusKind,
    params: std::collections::BTreeMap<String, Param>,
    /// The prepared images of an `images` stimulus (empty otherwise).
    images: Vec<Image>,
}

/// A list dimension of the conditions.
#[derive(Clone, Debug, PartialEq)]
struct ListDim {
    name: String,
    unit: &'static str,
    values: Vec<f64>,
}

/// The trials of one task over a design's stimuli, ready to render.
#[derive(Clone, Debug)]
pub struct TaskTrials {
    kind: TaskKind,
    answer: Answer,
    size: u32,
    background: f64,
    reference: Stim,
    target: Stim,
    layouts: Vec<Vec<Role>>,
    dims: Vec<ListDim>,
    /// Parameter names drawn per trial (uniform or log-uniform in either stimulus), sorted.
    random: Vec<String>,
}

/// The values a trial's parameters take besides level and axis.
pub(crate) struct Ctx<'a> {
    pub level: f64,
    pub axis: f64,
    /// The condition's value of each list dimension, by name.
    pub lists: &'a [(String, f64)],
    /// The trial's shared unit draw of each random parameter, by name.
    pub draws: &'a [(String, f64)],
}

impl TaskTrials {
    /// The trials of `task` (the design's test task, or its training task) over `design`'s
    /// stimuli; image folders are read now, relative to `base` (the experiment's folder).
    ///
    /// Errors: a stimulus name not in the design, an interval count that does not fit the
    /// kind (2AFC and same/different 2, yes/no 1, N-AFC and oddity 2..=64), a fixed position
    /// outside the intervals, `answer higher` with more than 2 intervals, a list that is
    /// empty or differs between the two stimuli, a random parameter with bad bounds, an
    /// image folder that cannot be read, more than [`MAX_CONDITIONS`] conditions.
    pub fn new(design: &Design, task: &Task, base: &Path) -> Result<Self, TaskError> {
        let find = |name: &str| {
            design.stimulus(name).ok_or_else(|| {
                let known: Vec<&str> = design.stimuli.iter().map(|s| s.name.as_str()).collect();
                TaskError::new(
                    "",
                    format!(
                        "the task `{}` names the stimulus `{name}`, which is not defined \
                         (defined: {})",
                        task.kind.name(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
        };
        let reference = load(find(&task.reference)?, design.size, base)?;
        let target = load(find(&task.target)?, design.size, base)?;

        let n = task.intervals;
        let task_err = |m: String| TaskError::new("", m);
        let expected = match task.kind {
            TaskKind::TwoAfc | TaskKind::SameDifferent => Some(2),
            TaskKind::YesNo => Some(1),
            TaskKind::Nafc | TaskKind::Oddity => None,
        };
        match expected {
            Some(e) if n != e => {
                return Err(task_err(format!(
                    "a `{}` task shows {e} interval(s), not {n}",
                    task.kind.name()
                )))
            }
            None if !(2..=MAX_INTERVALS).contains(&n) => {
                return Err(task_err(format!(
                    "a `{}` task needs 2 to {MAX_INTERVALS} intervals, not {n}",
                    task.kind.name()
                )))
            }
            _ => {}
        }
        let forced = matches!(
            task.kind,
            TaskKind::TwoAfc | TaskKind::Nafc | TaskKind::Oddity
        );
        if forced && task.answer == Answer::Higher && n > 2 {
            return Err(task_err(format!(
                "`answer higher` is defined for 2 intervals; this `{}` task has {n}",
                task.kind.name()
            )));
        }
        use Role::{Reference as R, Target as T};
        let layouts: Vec<Vec<Role>> = match task.kind {
            TaskKind::SameDifferent => vec![vec![R, R], vec![T, T], vec![R, T], vec![T, R]],
            TaskKind::YesNo => vec![vec![T], vec![R]],
            _ => {
                let positions: Vec<u32> = match task.position {
                    Position::All => (0..n).collect(),
                    Position::Fixed(k) if k < n => vec![k],
                    Position::Fixed(k) => {
                        return Err(task_err(format!(
                            "the target's position {k} (0-based) is not one of the {n} \
                             intervals"
                        )))
                    }
                };
                positions
                    .into_iter()
                    .map(|p| (0..n).map(|i| if i == p { T } else { R }).collect())
                    .collect()
            }
        };

        // List dimensions and random parameters, by name.
        let mut dims: Vec<ListDim> = Vec::new();
        let mut random: Vec<String> = Vec::new();
        for s in [&reference, &target] {
            for (name, p) in &s.params {
                match p {
                    Param::List(values) => {
                        if values.is_empty() {
                            return Err(TaskError::new(
                                &s.name,
                                format!("the list of `{name}` is empty"),
                            ));
                        }
                        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                            return Err(TaskError::new(
                                &s.name,
                                format!("the list of `{name}` holds {v}, which is not finite"),
                            ));
                        }
                        match dims.iter().find(|d| &d.name == name) {
                            Some(d) if &d.values != values => {
                                return Err(TaskError::new(
                                    &s.name,
                                    format!(
                                        "`{name}` lists {values:?} but the other stimulus \
                                         lists {:?}: stimuli of one trial that list the same \
                                         parameter must list the same values",
                                        d.values
                                    ),
                                ))
                            }
                            Some(_) => {}
                            None => dims.push(ListDim {
                                name: name.clone(),
                                unit: s
                                    .kind
                                    .params()
                                    .iter()
                                    .find(|p| p.name == name)
                                    .map_or("", |p| p.unit),
                                values: values.clone(),
                            }),
                        }
                    }
                    Param::Uniform { lo, hi } => {
                        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                            return Err(TaskError::new(
                                &s.name,
                                format!(
                                    "`{name}` is uniform on [{lo}, {hi}), which needs finite \
                                     ends with lo <= hi"
                                ),
                            ));
                        }
                        random.push(name.clone());
                    }
                    Param::LogUniform { lo, hi } => {
                        if !(lo.is_finite() && hi.is_finite() && *lo > 0.0 && lo <= hi) {
                            return Err(TaskError::new(
                                &s.name,
                                format!(
                                    "`{name}` is log-uniform on [{lo}, {hi}), which needs \
                                     finite ends with 0 < lo <= hi"
                                ),
                            ));
                        }
                        random.push(name.clone());
                    }
                    Param::Value(_) | Param::Word(_) | Param::Path(_) => {}
                }
            }
        }
        dims.sort_by(|a, b| a.name.cmp(&b.name));
        random.sort();
        random.dedup();
        let count = dims
            .iter()
            .try_fold(layouts.len(), |acc, d| acc.checked_mul(d.values.len()))
            .filter(|&c| c <= MAX_CONDITIONS);
        if count.is_none() {
            return Err(task_err(format!(
                "the task has more than {MAX_CONDITIONS} conditions (layouts × list values)"
            )));
        }
        Ok(TaskTrials {
            kind: task.kind,
            answer: task.answer,
            size: design.size,
            background: design.background,
            reference,
            target,
            layouts,
            dims,
            random,
        })
    }

    /// The number of counterbalanced conditions: each is tested equally often at every level.
    pub fn conditions(&self) -> usize {
        self.layouts.len() * self.list_count()
    }

    /// The number of combinations of list values (1 without lists).
    fn list_count(&self) -> usize {
        self.dims.iter().map(|d| d.values.len()).product()
    }

    /// Images per trial.
    pub fn intervals(&self) -> usize {
        self.layouts.first().map_or(0, Vec::len)
    }

    /// Possible answers (N for N-AFC and oddity, 2 otherwise).
    pub fn choices(&self) -> usize {
        match self.kind {
            TaskKind::TwoAfc | TaskKind::Nafc | TaskKind::Oddity => self.intervals(),
            TaskKind::SameDifferent | TaskKind::YesNo => 2,
        }
    }

    /// The kind of task.
    pub fn kind(&self) -> TaskKind {
        self.kind
    }

    /// The names of the reference and target stimuli.
    pub fn stimulus_names(&self) -> (&str, &str) {
        (&self.reference.name, &self.target.name)
    }

    /// True when a trial's images depend only on (axis value, level, condition): no
    /// parameter is drawn per trial and no stimulus is noise, so the interpreter may compute
    /// each such trial once.
    ///
    /// False when a parameter of either stimulus is `uniform` or `log_uniform`, either
    /// stimulus is `noise`, or an `images` folder holds more than one image.
    pub fn deterministic(&self) -> bool {
        self.random.is_empty()
            && [&self.reference, &self.target]
                .iter()
                .all(|s| s.kind != StimulusKind::Noise && s.images.len() <= 1)
    }

    /// The condition index taken modulo [`conditions`](Self::conditions) (never 0).
    fn wrap(&self, c: usize) -> usize {
        c % self.conditions().max(1)
    }

    /// What each interval shows in condition `c` (`c` is taken modulo
    /// [`conditions`](Self::conditions)).
    pub fn layout(&self, c: usize) -> Vec<Role> {
        let c = self.wrap(c);
        self.layouts[c / self.list_count().max(1)].clone()
    }

    /// The value of each list dimension in condition `c`, by parameter name (in name order;
    /// empty without lists).
    pub fn list_values(&self, c: usize) -> Vec<(String, f64)> {
        let mut rest = self.wrap(c) % self.list_count().max(1);
        let mut out = vec![(String::new(), 0.0); self.dims.len()];
        for (slot, d) in out.iter_mut().zip(&self.dims).rev() {
            let k = d.values.len().max(1);
            *slot = (d.name.clone(), d.values[rest % k]);
            rest /= k;
        }
        out
    }

    /// The right answer (in `0..choices()`) of condition `c` at `level`: for forced choices
    /// the interval of the target (with `answer higher` and a negative level, the other
    /// interval); for same/different 1 = different; for yes/no 1 = present.
    ///
    /// `answer higher` is defined for two intervals only ([`TaskTrials::new`] refuses it
    /// with more); a level of 0 or NaN counts as not negative. `c` is taken modulo
    /// [`conditions`](Self::conditions).
    pub fn answer(&self, c: usize, level: f64) -> usize {
        let layout = self.layout(c);
        match self.kind {
            TaskKind::TwoAfc | TaskKind::Nafc | TaskKind::Oddity => {
                let t = layout.iter().position(|&r| r == Role::Target).unwrap_or(0);
                if self.answer == Answer::Higher && level < 0.0 && layout.len() == 2 {
                    1 - t
                } else {
                    t
                }
            }
            TaskKind::SameDifferent => usize::from(layout.first() != layout.get(1)),
            TaskKind::YesNo => usize::from(layout.first() == Some(&Role::Target)),
        }
    }

    /// A readable name of condition `c` for previews (`target in interval 2 · orientation
    /// 45°`); intervals are counted from 1 here. `c` is taken modulo
    /// [`conditions`](Self::conditions).
    pub fn describe(&self, c: usize) -> String {
        let layout = self.layout(c);
        let mut parts = vec![match self.kind {
            TaskKind::TwoAfc | TaskKind::Nafc | TaskKind::Oddity => {
                let t = layout.iter().position(|&r| r == Role::Target).unwrap_or(0);
                format!("target in interval {}", t + 1)
            }
            TaskKind::SameDifferent => {
                let name = |r: &Role| match r {
                    Role::Reference => "reference",
                    Role::Target => "target",
                };
                let pair: Vec<&str> = layout.iter().map(name).collect();
                let same = if layout.first() == layout.get(1) {
                    "same"
                } else {
                    "different"
                };
                format!("{same} ({})", pair.join(", "))
            }
            TaskKind::YesNo => {
                if layout.first() == Some(&Role::Target) {
                    "target present".to_string()
                } else {
                    "target absent".to_string()
                }
            }
        }];
        for ((name, v), d) in self.list_values(c).iter().zip(&self.dims) {
            parts.push(match d.unit {
                "deg" => format!("{name} {v}°"),
                "" => format!("{name} {v}"),
                unit => format!("{name} {v} {unit}"),
            });
        }
        parts.join(" · ")
    }

    /// The name of answer `a` for previews: the interval (from 1) for forced choices,
    /// `same`/`different`, `absent`/`present`.
    pub fn answer_name(&self, a: usize) -> String {
        match self.kind {
            TaskKind::TwoAfc | TaskKind::Nafc | TaskKind::Oddity => format!("interval {}", a + 1),
            TaskKind::SameDifferent => if a == 1 { "different" } else { "same" }.to_string(),
            TaskKind::YesNo => if a == 1 { "present" } else { "absent" }.to_string(),
        }
    }

    /// Draws the trial's shared random values (steps 1 and 2 of the module's order): the
    /// unit draw of each random parameter, and the unit draw picking the photo.
    fn shared_draws(&self, rng: &mut ChaCha8Rng) -> (Vec<(String, f64)>, Option<f64>) {
        let draws = self
            .random
            .iter()
            .map(|name| (name.clone(), rng::unit_f64(rng)))
            .collect();
        let photo = [&self.reference, &self.target]
            .iter()
            .any(|s| s.kind == StimulusKind::Images)
            .then(|| rng::unit_f64(rng));
        (draws, photo)
    }

    fn stim(&self, role: Role) -> &Stim {
        match role {
            Role::Reference => &self.reference,
            Role::Target => &self.target,
        }
    }

    /// The images of one trial, `intervals()` of them, each RGB, row-major HWC, in [0, 1]
    /// (`size² · 3` values), at axis value `axis`, `level`, condition `c`; `rng` is the
    /// trial's own stream (random parameters, then noise, in a fixed order).
    ///
    /// `c` is taken modulo [`conditions`](Self::conditions). A parameter out of its range
    /// at this level (a contrast above 1, a NaN from an expression) is a [`TaskError`]
    /// naming the stimulus and the parameter.
    pub fn render(
        &self,
        axis: f64,
        level: f64,
        c: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Vec<f32>>, TaskError> {
        let layout = self.layout(c);
        let lists = self.list_values(c);
        let (draws, photo) = self.shared_draws(rng);
        let ctx = Ctx {
            level,
            axis,
            lists: &lists,
            draws: &draws,
        };
        // Non-noise stimuli are the same in every interval: rendered once per role.
        let mut cache: [Option<Vec<f32>>; 2] = [None, None];
        let mut out = Vec::with_capacity(layout.len());
        for role in layout {
            let s = self.stim(role);
            let slot = usize::from(role == Role::Target);
            if s.kind == StimulusKind::Noise {
                let seed = rng.next_u64();
                out.push(self.render_one(s, &ctx, photo, seed)?);
            } else {
                if cache[slot].is_none() {
                    cache[slot] = Some(self.render_one(s, &ctx, photo, 0)?);
                }
                out.push(cache[slot].clone().unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// The reference stimulus alone at axis value `axis` (condition `c`'s list values), RGB
    /// HWC: the template distance readouts compare each interval with.
    ///
    /// Its parameters are evaluated at level 0 (a reference normally does not depend on the
    /// level); `rng` is drawn from as for a trial (random parameters, the photo, then one
    /// noise seed), so a copy of a trial's stream gives the trial's random values.
    pub fn template(
        &self,
        axis: f64,
        c: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<f32>, TaskError> {
        let lists = self.list_values(c);
        let (draws, photo) = self.shared_draws(rng);
        let ctx = Ctx {
            level: 0.0,
            axis,
            lists: &lists,
            draws: &draws,
        };
        let s = &self.reference;
        let seed = if s.kind == StimulusKind::Noise {
            rng.next_u64()
        } else {
            0
        };
        self.render_one(s, &ctx, photo, seed)
    }

    /// One stimulus as RGB HWC f32.
    fn render_one(
        &self,
        s: &Stim,
        ctx: &Ctx<'_>,
        photo: Option<f64>,
        seed: u64,
    ) -> Result<Vec<f32>, TaskError> {
        render::render(s, self.size, self.background, ctx, photo, seed)
    }
}

/// Resolves one stimulus: its images read when it is an `images` stimulus.
fn load(
    spec: &crate::plan::design::StimulusSpec,
    size: u32,
    base: &Path,
) -> Result<Stim, TaskError> {
    let images = if spec.kind == StimulusKind::Images {
        render::load_images(spec, size, base)?
    } else {
        Vec::new()
    };
    Ok(Stim {
        name: spec.name.clone(),
        kind: spec.kind,
        params: spec.params.clone(),
        images,
    })
}

/// A training trial's axis value, level and condition, drawn from `rng` (the trial's own
/// stream): the axis value uniformly among the design's, the level from `draw`, the
/// condition uniformly.
///
/// Draw order (fixed): the axis value's index (`rng::below(n)`; no draw and 0.0 when the
/// design has no axis values), the level (`rng::uniform_f64(lo, hi)` for uniform,
/// `exp(rng::uniform_f64(ln lo, ln hi))` for log-uniform: lo must be > 0, else the level
/// is NaN and rendering it is a [`TaskError`]), the condition (`rng::below(conditions)`).
/// The trial's images are then rendered from the same stream, after these draws.
pub fn draw_training_trial(
    design: &Design,
    trials: &TaskTrials,
    draw: &Draw,
    rng: &mut ChaCha8Rng,
) -> (f64, f64, usize) {
    let values = &design.axis.values;
    let axis = if values.is_empty() {
        0.0
    } else {
        let n = u32::try_from(values.len()).unwrap_or(u32::MAX);
        values[rng::below(rng, n) as usize]
    };
    let level = match *draw {
        Draw::Uniform { lo, hi } => rng::uniform_f64(rng, lo, hi),
        Draw::LogUniform { lo, hi } => rng::uniform_f64(rng, lo.ln(), hi.ln()).exp(),
    };
    let n = u32::try_from(trials.conditions().max(1)).unwrap_or(u32::MAX);
    let c = rng::below(rng, n) as usize;
    (axis, level, c)
}
