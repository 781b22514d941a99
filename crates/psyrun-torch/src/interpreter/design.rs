//! Experiments of any kind (issue 12): the plan's [`Design`] instead of `train shapes` and
//! `test gratings`. Trials come from [`TaskTrials`] (rendered on the host, in parallel),
//! features from the backbone; the readout is the linear probe over the trial's intervals
//! (trained on the design's training task) or a training-free distance; the observer
//! chooses among the task's answers with [`DecisionRule::choose`]. Procedures move the
//! design's level at each axis value, in lockstep, as in the tutorial's test.
//!
//! What is shared with the tutorial's path: the run folder, the journal (epochs and rounds;
//! a resumed run retrains, checks its epochs and replays its rounds), the procedures,
//! the fits (with the task's guess rate), the report.

use super::probe::Probe;
use super::{Interpreter, Live, TEST_CHUNK};
use crate::failure::Failure;
use psyrun::diag::{Code, Diag};
use psyrun::exit::EXIT_RUN;
use psyrun::observer::{self, Conditions, DecisionRule};
use psyrun::plan::design::{Design, Metric, Readout, TaskKind};
use psyrun::plan::{BatchNorm, Decision, Setting};
use psyrun::progress::Event;
use psyrun::staircase::{Procedure, Request};
use psyrun::stimuli::rng;
use psyrun::tasks::{self, TaskTrials};
use psyrun::trials;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// An image of a preview sheet: caption, pixels, side.
type Captioned = (String, Vec<f32>, u32);

/// Stream of a training trial of a design; index [`rng::train_index`]`(epoch, trial)`.
const DESIGN_TRAIN: &str = "design-train";
/// Stream of the reference renderings a distance readout's criterion is measured on.
const CRITERION: &str = "design-criterion";
/// Reference pairs a criterion is averaged over when stimuli vary from trial to trial.
const CRITERION_PAIRS: u64 = 16;

/// One trial to show: axis index, level, condition, and the trial's random stream.
struct Shown {
    axis: usize,
    level: f64,
    condition: usize,
    stream: u64,
}

impl<'a> Interpreter<'a> {
    /// The plan's design (borrowed from the plan, not from the interpreter).
    fn design(&self) -> &'a Design {
        // Only called on plans with a design.
        self.plan.design.as_ref().expect("a plan with a design")
    }
}

impl Interpreter<'_> {
    /// The experiment's folder (image folders are relative to it).
    fn base(&self) -> std::path::PathBuf {
        self.options
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// `psy::run::stimulus`: a trial could not be made at the level asked.
    fn task_failure(&self, e: &tasks::TaskError) -> Failure {
        self.write_so_far();
        Failure::new(
            Diag::error(Code::RunStimulus, format!("cannot make a trial: {e}")).with_help(
                "a stimulus parameter left its range at a level the procedure asked for: narrow \
                 the staircase's range, or change the expression that uses `level`",
            ),
            EXIT_RUN,
        )
        .in_folder(Some(self.folder.path().to_path_buf()))
    }

    /// The trials of the design's test task (or its training task).
    pub(super) fn task_trials(&self, training: bool) -> Result<TaskTrials, Failure> {
        let d = self.design();
        let task = if training { d.train_task() } else { &d.task };
        TaskTrials::new(d, task, &self.base()).map_err(|e| self.task_failure(&e))
    }

    /// Renders trials as network input: `[n·I, 3, H, W]`, normalised, trial-major.
    fn render_batch(
        &self,
        tt: &TaskTrials,
        shown: &[(f64, f64, usize, ChaCha8Rng)],
    ) -> Result<Tensor, Failure> {
        let d = self.design();
        let size = d.size as usize;
        let image = 3 * size * size;
        let per_trial = tt.intervals() * image;
        let rendered: Result<Vec<Vec<f32>>, tasks::TaskError> = shown
            .par_iter()
            .map(|(axis, level, c, r)| {
                let mut r = r.clone();
                let images = tt.render(*axis, *level, *c, &mut r)?;
                let mut out = vec![0f32; per_trial];
                for (img, dst) in images.iter().zip(out.chunks_mut(image)) {
                    trials::rgb_to_chw(img, &d.normalize, dst);
                }
                Ok(out)
            })
            .collect();
        let buf: Vec<f32> = rendered
            .map_err(|e| self.task_failure(&e))?
            .into_iter()
            .flatten()
            .collect();
        let n = (shown.len() * tt.intervals()) as i64;
        Ok(Tensor::from_slice(&buf).reshape([n, 3, size as i64, size as i64]))
    }

    /// Features of rendered trials: `[n, I, F]`.
    fn trial_features(&self, x: &Tensor, intervals: usize) -> Tensor {
        let f = self.features(x);
        let n = f.size()[0] / intervals as i64;
        f.reshape([n, intervals as i64, -1])
    }

    /// What the probe reads of trials' features `[n, I, F]`: the intervals side by side
    /// (`[n, I·F]`), or for same/different `|f₁ − f₂|` (`[n, F]`; see
    /// [`Task::probe_intervals`](psyrun::plan::design::Task::probe_intervals)).
    fn probe_input(&self, f: &Tensor, training: bool) -> Tensor {
        let d = self.design();
        let task = if training { d.train_task() } else { &d.task };
        let n = f.size()[0];
        if task.kind == TaskKind::SameDifferent {
            (f.select(1, 0) - f.select(1, 1)).abs()
        } else {
            f.reshape([n, -1])
        }
    }

    /// Trains the probe on the design's training task (`None` for a distance readout).
    pub(super) fn train_design(
        &mut self,
        repeat: u32,
        seed: u64,
    ) -> Result<Option<Probe>, Failure> {
        let d = self.design();
        let (Readout::Probe, Some(train)) = (d.readout, d.train.as_ref()) else {
            return Ok(None);
        };
        let t0 = Instant::now();
        let plan = self.plan;
        let Some(shape) = plan.derived.feature_shape.as_deref() else {
            return Err(self.torch_failure("the feature shape is unknown"));
        };
        let tt = self.task_trials(true)?;
        let (intervals, choices) = (tt.intervals(), tt.choices());
        let probe = Probe::with_task(
            shape,
            self.backbone.feature_order(),
            seed,
            self.device,
            i64::from(d.train_task().probe_intervals()),
            choices as i64,
        );
        let mut opt = probe
            .optimizer(&plan.probe.optimizer)
            .map_err(|e| self.torch_failure(&e.to_string()))?;
        let samples = u64::from(train.samples);
        let batch = u64::from(plan.probe.batch).max(1);
        // The design's trials are made for one forward pass per batch (all intervals
        // together): with `batchnorm train` the batch statistics cover every interval.
        self.backbone.set_batchnorm(plan.backbone.batchnorm);
        self.observer.event(Event::Phase {
            name: "training",
            total: u64::from(plan.probe.epochs) * samples,
            unit: "trials",
        });
        for epoch in 0..plan.probe.epochs {
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0i64, 0u64);
            let mut start = 0;
            while start < samples {
                self.check_stop()?;
                let end = (start + batch).min(samples);
                let (x, labels) =
                    self.training_batch(&tt, &train.level, seed, epoch, start..end)?;
                let n = labels.size()[0];
                let f = self.probe_input(&self.trial_features(&x, intervals), true);
                let logits = probe.forward_concat(&f);
                let (l, right) = self.step(&mut opt, &logits, &labels, epoch)?;
                loss_sum += l * n as f64;
                correct += right;
                seen += n as u64;
                self.observer.event(Event::Advance(n as u64));
                start = end;
            }
            self.end_epoch(repeat, epoch, loss_sum, correct, seen)?;
        }
        self.observer.event(Event::PhaseDone);
        self.phase_done("training", t0);
        self.sync_journal()?;
        self.folder
            .write_partial(&self.results)
            .map_err(|e| self.io_failure(&e))?;
        let guess = 1.0 / choices as f64;
        if let Some(last) = self.results.training.last() {
            let margin = (2.33 * (guess * (1.0 - guess) / samples.max(1) as f64).sqrt()).max(0.1);
            if last.accuracy < guess + margin {
                let d = Diag::warning(
                    Code::RunProbeAtChance,
                    format!(
                        "the probe ends training at {:.1} % correct, barely above chance ({:.1} %)",
                        100.0 * last.accuracy,
                        100.0 * guess
                    ),
                )
                .with_help(
                    "the thresholds below are unreliable. Either the trained variable is not \
                     linearly decodable at this cut, or the probe has not learnt yet: try more \
                     `epochs` or `samples`, another `lr`, pooling, or training levels nearer \
                     the easy end",
                );
                let d = self.plan.spans.label(
                    d,
                    Setting::Probe,
                    self.options.file,
                    "this probe stays near chance",
                );
                self.warn(d);
            }
        }
        Ok(Some(probe))
    }

    /// A training batch: trials `range` of `epoch`, each from its own stream, rendered in
    /// parallel; `(images [n·I, 3, H, W], answers [n])`.
    fn training_batch(
        &self,
        tt: &TaskTrials,
        draw: &psyrun::plan::design::Draw,
        seed: u64,
        epoch: u32,
        range: std::ops::Range<u64>,
    ) -> Result<(Tensor, Tensor), Failure> {
        let d = self.design();
        let mut shown = Vec::with_capacity((range.end - range.start) as usize);
        let mut labels = Vec::with_capacity(shown.capacity());
        for k in range {
            let mut r = rng::stream(seed, DESIGN_TRAIN, rng::train_index(epoch, k));
            let (axis, level, c) = tasks::draw_training_trial(d, tt, draw, &mut r);
            labels.push(tt.answer(c, level) as i64);
            shown.push((axis, level, c, r));
        }
        let x = self.render_batch(tt, &shown)?;
        Ok((x, Tensor::from_slice(&labels).to_device(self.device)))
    }

    /// The observer's decision rule for a design. A calibrated one measures the probe's
    /// logits on `samples` fresh training trials (epoch index `epochs` of the training
    /// stream) and sets the noise so that the expected accuracy there is the plan's.
    pub(super) fn design_rule(
        &mut self,
        probe: Option<&Probe>,
        seed: u64,
    ) -> Result<DecisionRule, Failure> {
        let plan = self.plan;
        let Decision::Calibrated { noise, accuracy } = plan.observer.decision else {
            return Ok(DecisionRule::new(&plan.observer.decision, None));
        };
        let (Some(probe), Some(train)) = (probe, self.design().train.as_ref()) else {
            let d = Diag::error(
                Code::RunCalibration,
                "a calibrated observer needs a trained probe: a distance readout has no training \
                 trials to calibrate on",
            )
            .with_help("give the decision noise directly, e.g. `decision gaussian(sigma: 0.05)`");
            return Err(Failure::new(d, EXIT_RUN).in_folder(Some(self.folder.path().to_path_buf())));
        };
        self.backbone.set_batchnorm(BatchNorm::Eval);
        let tt = self.task_trials(true)?;
        let samples = u64::from(train.samples);
        let batch = u64::from(plan.probe.batch).max(1);
        let mut scores: Vec<Vec<f64>> = Vec::with_capacity(samples as usize);
        let mut answers: Vec<usize> = Vec::with_capacity(samples as usize);
        let mut start = 0;
        while start < samples {
            self.check_stop()?;
            let end = (start + batch).min(samples);
            let (x, labels) =
                self.training_batch(&tt, &train.level, seed, plan.probe.epochs, start..end)?;
            let f = self.probe_input(&self.trial_features(&x, tt.intervals()), true);
            let logits = probe.forward_concat(&f).detach().to_device(Device::Cpu);
            let flat = Vec::<f32>::try_from(logits.reshape([-1]))
                .map_err(|e| self.torch_failure(&e.to_string()))?;
            let labels = Vec::<i64>::try_from(labels.to_device(Device::Cpu))
                .map_err(|e| self.torch_failure(&e.to_string()))?;
            for (row, &l) in flat.chunks(tt.choices()).zip(&labels) {
                scores.push(row.iter().map(|&v| f64::from(v)).collect());
                answers.push(l as usize);
            }
            start = end;
        }
        match observer::calibrate_choices(&scores, &answers, noise, accuracy) {
            Ok(scale) => {
                self.observer.event(Event::Status(format!(
                    "observer calibrated: decision noise scale {scale:.4} gives {:.1} % expected \
                     accuracy on {samples} fresh training trials",
                    100.0 * accuracy
                )));
                self.results.manifest.decision_noise = Some(scale);
                Ok(DecisionRule::new(&plan.observer.decision, Some(scale)))
            }
            Err(e) => {
                let _ = self.folder.write_partial(&self.results);
                let d = Diag::error(
                    Code::RunCalibration,
                    format!(
                        "the observer cannot be calibrated to {:.1} % correct: the noiseless probe \
                         scores {:.1} % on fresh training trials",
                        100.0 * e.target,
                        100.0 * e.noiseless
                    ),
                )
                .with_help(
                    "noise only lowers accuracy: ask for an accuracy below the probe's own, or \
                     train the probe longer (more `epochs` or `samples`)",
                );
                let d = plan
                    .spans
                    .label(d, Setting::Probe, self.options.file, "this probe");
                Err(Failure::new(d, EXIT_RUN).in_folder(Some(self.folder.path().to_path_buf())))
            }
        }
    }

    /// Tests repeat `repeat`: one procedure per axis value, in lockstep, one round of
    /// requests at a time.
    pub(super) fn test_design(
        &mut self,
        probe: Option<&Probe>,
        repeat: u32,
        seed: u64,
        rule: DecisionRule,
    ) -> Result<(), Failure> {
        let t0 = Instant::now();
        let plan = self.plan;
        self.backbone.set_batchnorm(BatchNorm::Eval);
        let tt = self.task_trials(false)?;
        let design = self.design();
        let axis_values = design.axis.values.clone();
        let conds = tt.conditions();
        let choices = tt.choices();
        let procs: Vec<Procedure> = axis_values
            .iter()
            .map(|_| Procedure::from_plan(&plan.staircase, conds as u32))
            .collect();
        let mut schedule: Vec<Conditions> = (0..axis_values.len())
            .map(|a| Conditions::new(seed, repeat, a as u32, conds))
            .collect();
        let mut decisions: Vec<_> = (0..axis_values.len())
            .map(|a| observer::decision_stream(seed, repeat, a as u32))
            .collect();
        self.observer.event(Event::Axis {
            name: design.axis.name.clone(),
            unit: design.axis.unit.clone(),
        });
        self.observer.event(Event::Phase {
            name: "testing",
            total: procs.iter().map(Procedure::max_trials).sum(),
            unit: "trials",
        });
        let first_row = self.results.staircases.len();
        self.live = Some(Live {
            repeat,
            first_row,
            procs,
        });
        let deterministic = tt.deterministic();
        // Scores of deterministic trials, by (axis index, level, condition): each computed once.
        let mut cache: HashMap<(usize, u64, usize), Vec<f64>> = HashMap::new();
        let mut criteria: HashMap<(usize, usize), f64> = HashMap::new();
        let (mut shown_count, mut computed) = (0usize, 0usize);
        while self.procs().iter().any(|p| !p.is_done()) {
            self.check_stop()?;
            let requests: Vec<(usize, Request)> = self
                .procs()
                .iter()
                .enumerate()
                .filter_map(|(a, p)| p.next().map(|r| (a, r)))
                .collect();
            let replayed = self.replay.next_round(repeat);
            if let Some(round) = &replayed {
                self.check_replayed(round, &requests)?;
            }
            // Every trial of the round: its condition and stream, drawn now.
            let trials: Vec<Vec<Shown>> = requests
                .iter()
                .map(|&(a, req)| {
                    (0..req.trials)
                        .map(|_| {
                            let (k, c) = schedule[a].next_trial();
                            Shown {
                                axis: a,
                                level: req.contrast,
                                condition: c,
                                stream: k,
                            }
                        })
                        .collect()
                })
                .collect();
            let outcomes: Vec<u32> = if let Some(round) = &replayed {
                // Replayed: the decision streams move on as they did.
                for (ts, _) in trials.iter().zip(&requests) {
                    for t in ts {
                        rule.choose(&vec![0.0; choices], &mut decisions[t.axis]);
                    }
                }
                round.requests.iter().map(|m| m.correct).collect()
            } else {
                // The trials whose scores are not known yet.
                let mut todo: Vec<&Shown> = Vec::new();
                for t in trials.iter().flatten() {
                    let key = (t.axis, t.level.to_bits(), t.condition);
                    let fresh = !deterministic
                        || (!cache.contains_key(&key)
                            && !todo
                                .iter()
                                .any(|u| (u.axis, u.level.to_bits(), u.condition) == key));
                    if fresh {
                        todo.push(t);
                    }
                }
                shown_count += trials.iter().map(Vec::len).sum::<usize>();
                computed += todo.len();
                let scores = self.trial_scores(
                    &tt,
                    probe,
                    &todo,
                    &axis_values,
                    seed,
                    repeat,
                    &mut criteria,
                )?;
                let mut fresh: HashMap<*const Shown, Vec<f64>> = HashMap::new();
                for (t, s) in todo.iter().zip(scores) {
                    if deterministic {
                        cache.insert((t.axis, t.level.to_bits(), t.condition), s);
                    } else {
                        fresh.insert(*t as *const Shown, s);
                    }
                }
                let mut outcomes = Vec::with_capacity(requests.len());
                for ts in &trials {
                    let mut correct = 0;
                    for t in ts {
                        let s = if deterministic {
                            &cache[&(t.axis, t.level.to_bits(), t.condition)]
                        } else {
                            &fresh[&(t as *const Shown)]
                        };
                        let choice = rule.choose(s, &mut decisions[t.axis]);
                        correct += u32::from(choice == tt.answer(t.condition, t.level));
                    }
                    outcomes.push(correct);
                }
                outcomes
            };
            self.settle_round(repeat, &requests, &outcomes, replayed.as_ref(), Vec::new())?;
        }
        self.finish_test(
            repeat,
            format!(
                "testing showed {shown_count} trials, {computed} of them computed (the others \
                 repeat a trial already seen)"
            ),
            t0,
        )
    }

    /// The readout's scores (one per answer; the observer chooses the largest after noise)
    /// of `todo`'s trials, in order, computed in chunks of at most [`TEST_CHUNK`] images.
    #[allow(clippy::too_many_arguments)]
    fn trial_scores(
        &self,
        tt: &TaskTrials,
        probe: Option<&Probe>,
        todo: &[&Shown],
        axis_values: &[f64],
        seed: u64,
        repeat: u32,
        criteria: &mut HashMap<(usize, usize), f64>,
    ) -> Result<Vec<Vec<f64>>, Failure> {
        let d = self.design();
        let intervals = tt.intervals();
        // A distance to the reference needs its template, computed in the same forward pass
        // as the trial's images (a pass of another batch size may differ in the last bits,
        // which a deterministic observer would take for a difference).
        let templates = matches!(d.readout, Readout::Distance(_))
            && matches!(
                d.task.kind,
                TaskKind::TwoAfc | TaskKind::Nafc | TaskKind::YesNo
            );
        let per_trial = intervals + usize::from(templates);
        let per_chunk = (TEST_CHUNK / per_trial).max(1);
        let mut out = Vec::with_capacity(todo.len());
        for chunk in todo.chunks(per_chunk) {
            self.check_stop()?;
            let shown: Vec<(f64, f64, usize, ChaCha8Rng)> = chunk
                .iter()
                .map(|t| {
                    (
                        axis_values[t.axis],
                        t.level,
                        t.condition,
                        observer::stimulus_stream(seed, repeat, t.axis as u32, t.stream),
                    )
                })
                .collect();
            let mut x = self.render_batch(tt, &shown)?;
            if templates {
                let refs: Vec<(f64, usize, u64)> = chunk
                    .iter()
                    .map(|t| {
                        (
                            axis_values[t.axis],
                            t.condition,
                            template_index(repeat, t.axis, 1 << 31 | t.stream),
                        )
                    })
                    .collect();
                x = Tensor::cat(&[x, self.render_templates(tt, &refs, seed)?], 0);
            }
            let all = self.features(&x);
            if !crate::script::all_finite(&all) {
                return Err(self.non_finite_failure(
                    "the test images' features are NaN or infinite: no test result could mean \
                     anything"
                        .into(),
                    true,
                ));
            }
            let n = chunk.len() as i64;
            let f = all
                .narrow(0, 0, n * intervals as i64)
                .reshape([n, intervals as i64, -1]);
            match (d.readout, probe) {
                (Readout::Probe, Some(p)) => {
                    let logits = p.forward_concat(&self.probe_input(&f, false)).detach();
                    let flat = Vec::<f32>::try_from(logits.to_device(Device::Cpu).reshape([-1]))
                        .map_err(|e| self.torch_failure(&e.to_string()))?;
                    out.extend(
                        flat.chunks(tt.choices())
                            .map(|r| r.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>()),
                    );
                }
                (Readout::Distance(metric), _) => {
                    let reference = templates.then(|| all.narrow(0, n * intervals as i64, n));
                    for (i, t) in chunk.iter().enumerate() {
                        let i = i as i64;
                        let fi = f.get(i);
                        let n_int = intervals as i64;
                        let scores = match d.task.kind {
                            TaskKind::TwoAfc | TaskKind::Nafc => {
                                let r = reference.as_ref().map(|r| r.get(i));
                                let r = r.as_ref().unwrap_or(&fi);
                                (0..n_int)
                                    .map(|k| distance(metric, &fi.get(k), r))
                                    .collect()
                            }
                            TaskKind::Oddity => (0..n_int)
                                .map(|k| {
                                    (0..n_int)
                                        .filter(|&j| j != k)
                                        .map(|j| distance(metric, &fi.get(k), &fi.get(j)))
                                        .sum()
                                })
                                .collect(),
                            TaskKind::SameDifferent | TaskKind::YesNo => {
                                let c = self.criterion(
                                    tt,
                                    metric,
                                    t,
                                    axis_values,
                                    seed,
                                    repeat,
                                    criteria,
                                )?;
                                let dist = match (d.task.kind, reference.as_ref()) {
                                    (TaskKind::YesNo, Some(r)) => {
                                        distance(metric, &fi.get(0), &r.get(i))
                                    }
                                    _ => distance(metric, &fi.get(0), &fi.get(1)),
                                };
                                vec![c, dist]
                            }
                        };
                        out.push(scores);
                    }
                }
                (Readout::Probe, None) => {
                    return Err(self.torch_failure("the probe was not trained"));
                }
            }
        }
        Ok(out)
    }

    /// The reference stimulus alone, for each `(axis value, condition, stream index)`, as
    /// network input `[n, 3, H, W]`.
    fn render_templates(
        &self,
        tt: &TaskTrials,
        refs: &[(f64, usize, u64)],
        seed: u64,
    ) -> Result<Tensor, Failure> {
        let d = self.design();
        let size = d.size as usize;
        let image = 3 * size * size;
        let rendered: Result<Vec<Vec<f32>>, tasks::TaskError> = refs
            .par_iter()
            .map(|&(axis, c, k)| {
                let mut r = rng::stream(seed, CRITERION, k);
                let img = tt.template(axis, c, &mut r)?;
                let mut out = vec![0f32; image];
                trials::rgb_to_chw(&img, &d.normalize, &mut out);
                Ok(out)
            })
            .collect();
        let buf: Vec<f32> = rendered
            .map_err(|e| self.task_failure(&e))?
            .into_iter()
            .flatten()
            .collect();
        Ok(Tensor::from_slice(&buf).reshape([refs.len() as i64, 3, size as i64, size as i64]))
    }

    /// The criterion of same/different and yes/no distances at trial `t`'s axis value and
    /// condition: the mean distance between two renderings of the reference, computed in
    /// one forward pass (0 when nothing in the stimuli is random: one pair suffices), over
    /// [`CRITERION_PAIRS`] pairs otherwise; measured once per axis value and condition.
    #[allow(clippy::too_many_arguments)]
    fn criterion(
        &self,
        tt: &TaskTrials,
        metric: Metric,
        t: &Shown,
        axis_values: &[f64],
        seed: u64,
        repeat: u32,
        criteria: &mut HashMap<(usize, usize), f64>,
    ) -> Result<f64, Failure> {
        let key = (t.axis, t.condition);
        if let Some(&c) = criteria.get(&key) {
            return Ok(c);
        }
        let pairs = if tt.deterministic() {
            1
        } else {
            CRITERION_PAIRS
        };
        let refs: Vec<(f64, usize, u64)> = (0..2 * pairs)
            .map(|k| {
                (
                    axis_values[t.axis],
                    t.condition,
                    template_index(repeat, t.axis, k),
                )
            })
            .collect();
        let f = self.features(&self.render_templates(tt, &refs, seed)?);
        let sum: f64 = (0..pairs as i64)
            .map(|k| distance(metric, &f.get(2 * k), &f.get(2 * k + 1)))
            .sum();
        let c = sum / pairs as f64;
        criteria.insert(key, c);
        Ok(c)
    }
}

/// The index of a reference rendering in the [`CRITERION`] stream: repeat, axis index and
/// `k` (a criterion pair's member, or a trial's template at `2³¹ + trial`).
fn template_index(repeat: u32, axis: usize, k: u64) -> u64 {
    (u64::from(repeat) << 48) | ((axis as u64) << 32) | (k & 0xffff_ffff)
}

/// The distance between two feature vectors (larger = more different).
fn distance(metric: Metric, a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
    match metric {
        Metric::Cosine => {
            let dot = (&a * &b).sum(Kind::Double).double_value(&[]);
            let na = a.norm().double_value(&[]);
            let nb = b.norm().double_value(&[]);
            if na == 0.0 || nb == 0.0 {
                0.0
            } else {
                1.0 - dot / (na * nb)
            }
        }
        Metric::L1 => (&a - &b).abs().sum(Kind::Double).double_value(&[]),
        Metric::L2 => (&a - &b).norm().double_value(&[]),
        Metric::Dot => -(&a * &b).sum(Kind::Double).double_value(&[]),
    }
}

impl Interpreter<'_> {
    /// The run folder's preview sheet for a design: one trial of the first condition at
    /// every axis value (at most 8), at the procedure's first level, its intervals side by
    /// side and the right one marked; then one training trial when the probe trains on
    /// another task.
    pub(super) fn design_preview(
        &self,
        design: &Design,
        level: f64,
    ) -> Result<(Vec<Captioned>, usize), Failure> {
        let tt = self.task_trials(false)?;
        let mut out = Vec::new();
        let mut r = rng::stream(self.plan.seed, "design-preview", 0);
        for &axis in design.axis.values.iter().take(8) {
            let images = tt
                .render(axis, level, 0, &mut r)
                .map_err(|e| self.task_failure(&e))?;
            let answer = tt.answer(0, level);
            for (i, img) in images.into_iter().enumerate() {
                let mark = if tt.intervals() > 1 && i == answer {
                    " (answer)"
                } else {
                    ""
                };
                out.push((
                    format!("{} {axis} #{}{mark}", design.axis.name, i + 1),
                    img,
                    design.size,
                ));
            }
        }
        if design.train.as_ref().is_some_and(|t| t.task.is_some()) {
            let tt = self.task_trials(true)?;
            let images = tt
                .render(design.axis.values[0], level, 0, &mut r)
                .map_err(|e| self.task_failure(&e))?;
            for (i, img) in images.into_iter().enumerate() {
                out.push((format!("training #{}", i + 1), img, design.size));
            }
        }
        Ok((out, tt.intervals().max(2)))
    }
}

#[cfg(test)]
mod tests {
    use super::{distance, Metric};
    use tch::Tensor;

    #[test]
    fn distances_are_the_metrics_definitions() {
        let a = Tensor::from_slice(&[3.0f32, 4.0, 0.0]);
        let b = Tensor::from_slice(&[0.0f32, 4.0, 3.0]);
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
        assert!(close(distance(Metric::L2, &a, &b), 18f64.sqrt()));
        assert!(close(distance(Metric::L1, &a, &b), 6.0));
        assert!(close(distance(Metric::Dot, &a, &b), -16.0));
        assert!(close(distance(Metric::Cosine, &a, &b), 1.0 - 16.0 / 25.0));
        // Cosine ignores length; parallel vectors are at distance 0, opposite ones at 2.
        let a2 = Tensor::from_slice(&[6.0f32, 8.0, 0.0]);
        assert!(close(distance(Metric::Cosine, &a, &a2), 0.0));
        assert!(close(distance(Metric::Cosine, &a, &(-&a)), 2.0));
        // A zero vector has no direction: distance 0, not NaN.
        let zero = Tensor::from_slice(&[0.0f32, 0.0, 0.0]);
        assert_eq!(distance(Metric::Cosine, &a, &zero), 0.0);
        for m in [Metric::L2, Metric::L1] {
            assert_eq!(distance(m, &a, &a), 0.0);
        }
    }
}
