//! The third step: the staircases of every frequency advance in lockstep; each distinct
//! image is run through the backbone once and projected onto the probe's two halves.

use super::probe::Probe;
use super::{Interpreter, Live, TEST_CHUNK};
use crate::device::StimuliOn;
use crate::device_stimuli::DeviceGratings;
use crate::failure::Failure;
use crate::script::all_finite;
use psyrun::diag::{Code, Diag};
use psyrun::observer::{self, Conditions, DecisionRule};
use psyrun::plan::{BatchNorm, Setting};
use psyrun::progress::Event;
use psyrun::report::journal::{DecisionValue, Entry, Measured, Round};
use psyrun::report::{self, FrequencyResult};
use psyrun::staircase::{Procedure, Request};
use psyrun::stimuli::Grating;
use psyrun::trials::{self, TestGratings};
use rayon::prelude::*;
use std::collections::HashMap;
use std::time::Instant;
use tch::{Device, Tensor};

impl Interpreter<'_> {
    /// Tests repeat `repeat`'s probe (trained under `seed`) with the observer's decision
    /// `rule`: every frequency's procedure advances in lockstep, one round of requests at a
    /// time.
    pub(super) fn test(
        &mut self,
        probe: &Probe,
        repeat: u32,
        seed: u64,
        rule: DecisionRule,
    ) -> Result<(), Failure> {
        let t0 = Instant::now();
        let plan = self.plan;
        // The tutorial tests in eval mode (with whatever statistics training left).
        self.backbone.set_batchnorm(BatchNorm::Eval);
        let noisy = plan.observer.stimulus_noise();
        let gratings = match (self.stimuli, noisy) {
            (StimuliOn::Device, false) => {
                Gratings::Device(DeviceGratings::new(&plan.test, self.device))
            }
            _ => Gratings::Host(TestGratings::new(plan)),
        };
        let trial_list = trials::test_trials(&plan.test);
        let t_count = trial_list.len();
        let reference = plan.test.reference;
        let (w_first, w_second) = probe.halves();
        let bias = probe.bias.detach();
        let freqs = &plan.test.frequencies;
        let procs: Vec<Procedure> = freqs
            .iter()
            .map(|_| Procedure::from_plan(&plan.staircase, t_count as u32))
            .collect();
        let mut conditions: Vec<Conditions> = (0..freqs.len())
            .map(|f| Conditions::new(seed, repeat, f as u32, t_count))
            .collect();
        let mut decisions: Vec<_> = (0..freqs.len())
            .map(|f| observer::decision_stream(seed, repeat, f as u32))
            .collect();
        self.observer.event(Event::Phase {
            name: "testing",
            total: procs.iter().map(Procedure::max_trials).sum(),
            unit: "trials",
        });
        // The procedures live in the interpreter while they run, so that an interruption
        // or a failure at any point writes what they measured ([`Interpreter::results_so_far`]).
        let first_row = self.results.staircases.len();
        self.live = Some(Live {
            repeat,
            first_row,
            procs,
        });
        let mut shown = 0usize;
        let mut computed = 0usize;

        // Without stimulus noise every trial of a condition shows the same two images:
        // the comparison images of every frequency and trial are projected once (rows
        // f·T + t; at reference 0 they are all one grey image), and each (frequency,
        // contrast) level's decision variables once, whatever procedure asks for it again.
        let refs: Vec<(usize, f64)> = (0..freqs.len()).map(|f| (f, reference)).collect();
        let (ref_first, ref_second) = if noisy {
            (Tensor::new(), Tensor::new())
        } else {
            let (a, b, n) =
                self.level_projections(&gratings, &refs, t_count, &w_first, &w_second)?;
            (shown, computed) = (shown + refs.len() * t_count, computed + n);
            (a, b)
        };
        let mut cache: HashMap<(usize, u64), Vec<Option<f32>>> = HashMap::new();

        while self.procs().iter().any(|p| !p.is_done()) {
            self.check_stop()?;
            let requests: Vec<(usize, Request)> = self
                .procs()
                .iter()
                .enumerate()
                .filter_map(|(f, p)| p.next().map(|r| (f, r)))
                .collect();
            let mut outcomes: Vec<u32> = Vec::with_capacity(requests.len());
            // Resuming: the journal's round, which must ask exactly what this one asks.
            let replayed = self.replay.next_round(repeat);
            if let Some(round) = &replayed {
                self.check_replayed(round, &requests)?;
            }
            let mut new_dvs: Vec<DecisionValue> = Vec::new();
            if let (true, Some(round)) = (noisy, &replayed) {
                // Under stimulus noise a replayed round only moves the random streams on, as
                // the round did: one condition and one decision draw per trial.
                for &(f, req) in &requests {
                    for _ in 0..req.trials {
                        conditions[f].next_trial();
                        rule.respond(0.0, &mut decisions[f]);
                    }
                }
                outcomes.extend(round.requests.iter().map(|m| m.correct));
            } else if noisy {
                let (images, n) = self.noisy_round(
                    &gratings,
                    &requests,
                    &mut conditions,
                    &trial_list,
                    repeat,
                    seed,
                )?;
                let (p_first, p_second, distinct) =
                    self.projections(&images.grey, &w_first, &w_second)?;
                (shown, computed) = (shown + 2 * n, computed + distinct);
                // Rows 2i (target) and 2i + 1 (comparison) of trial i.
                let pf = Vec::<f32>::try_from(p_first.to_device(Device::Cpu).reshape([-1]))
                    .map_err(|e| self.torch_failure(&e.to_string()))?;
                let ps = Vec::<f32>::try_from(p_second.to_device(Device::Cpu).reshape([-1]))
                    .map_err(|e| self.torch_failure(&e.to_string()))?;
                let b = Vec::<f32>::try_from(bias.to_device(Device::Cpu))
                    .map_err(|e| self.torch_failure(&e.to_string()))?;
                let mut i = 0;
                for &(f, req) in &requests {
                    let mut correct = 0;
                    for _ in 0..req.trials {
                        let t = images.conditions[i];
                        let (tg, cm) = (2 * i, 2 * i + 1);
                        let (a, c) = if trial_list[t].target_first {
                            (tg, cm)
                        } else {
                            (cm, tg)
                        };
                        // logits = W1·first + W2·second + b, per class.
                        let l0 = pf[2 * a] + ps[2 * c] + b[0];
                        let l1 = pf[2 * a + 1] + ps[2 * c + 1] + b[1];
                        let second = rule.respond(f64::from(l1 - l0), &mut decisions[f]);
                        let label = trials::test_label(&trial_list[t], req.contrast, reference);
                        correct += u32::from(i64::from(second) == label);
                        i += 1;
                    }
                    outcomes.push(correct);
                }
            } else {
                // Each request's conditions, drawn now; then the images not yet computed at
                // that frequency and contrast, for exactly those conditions (a whole level for
                // bisection and constant stimuli, one condition per trial for up/down and
                // QUEST, whose contrasts rarely repeat).
                let drawn: Vec<Vec<usize>> = requests
                    .iter()
                    .map(|&(f, req)| {
                        (0..req.trials)
                            .map(|_| conditions[f].next_trial().1)
                            .collect()
                    })
                    .collect();
                // A replayed round's decision variables are the ones the first run computed.
                for dv in replayed.iter().flat_map(|r| &r.dvs) {
                    let entry = cache
                        .entry((dv.frequency, dv.contrast.to_bits()))
                        .or_insert_with(|| vec![None; t_count]);
                    if let Some(slot) = entry.get_mut(dv.condition) {
                        *slot = Some(dv.value as f32);
                    }
                }
                let mut missing: Vec<(usize, f64, usize)> = Vec::new();
                for (&(f, req), ts) in requests.iter().zip(&drawn) {
                    let entry = cache
                        .entry((f, req.contrast.to_bits()))
                        .or_insert_with(|| vec![None; t_count]);
                    for &t in ts {
                        if entry[t].is_none() && !missing.contains(&(f, req.contrast, t)) {
                            missing.push((f, req.contrast, t));
                        }
                    }
                }
                if !missing.is_empty() {
                    // Trials differing only in interval (and gratings equal to the last bit,
                    // such as 0° and 180° at phase 0) share one image.
                    let (t_first, t_second, n) =
                        self.item_projections(&gratings, &missing, &w_first, &w_second)?;
                    (shown, computed) = (shown + missing.len(), computed + n);
                    let rows: Vec<i64> = missing
                        .iter()
                        .map(|&(f, _, t)| (f * t_count + t) as i64)
                        .collect();
                    let rows = Tensor::from_slice(&rows).to_device(self.device);
                    let (r_first, r_second) = (
                        ref_first.index_select(0, &rows),
                        ref_second.index_select(0, &rows),
                    );
                    let first: Vec<bool> = missing
                        .iter()
                        .map(|&(_, _, t)| trial_list[t].target_first)
                        .collect();
                    let first = Tensor::from_slice(&first)
                        .to_device(self.device)
                        .unsqueeze(1);
                    // Grating first: W1·grating + W2·comparison; second: W1·comparison +
                    // W2·grating.
                    let logits =
                        (t_first + r_second).where_self(&first, &(r_first + t_second)) + &bias;
                    let dvs = Vec::<f32>::try_from(
                        (logits.select(1, 1) - logits.select(1, 0)).to_device(Device::Cpu),
                    )
                    .map_err(|e| self.torch_failure(&e.to_string()))?;
                    for (&(f, c, t), &d) in missing.iter().zip(&dvs) {
                        if let Some(entry) = cache.get_mut(&(f, c.to_bits())) {
                            entry[t] = Some(d);
                        }
                        new_dvs.push(DecisionValue {
                            frequency: f,
                            contrast: c,
                            condition: t,
                            value: f64::from(d),
                        });
                    }
                }
                for (&(f, req), ts) in requests.iter().zip(&drawn) {
                    let dvs = &cache[&(f, req.contrast.to_bits())];
                    let mut correct = 0;
                    for &t in ts {
                        let Some(d) = dvs[t] else {
                            return Err(self.torch_failure("a decision variable was not computed"));
                        };
                        let second = rule.respond(f64::from(d), &mut decisions[f]);
                        let label = trials::test_label(&trial_list[t], req.contrast, reference);
                        correct += u32::from(i64::from(second) == label);
                    }
                    outcomes.push(correct);
                }
            }
            self.settle_round(repeat, &requests, &outcomes, replayed.as_ref(), new_dvs)?;
        }
        self.finish_test(
            repeat,
            format!(
                "testing showed {shown} images, {computed} of them distinct (each computed once)"
            ),
            t0,
        )
    }

    /// After a round of requests: the journal gets it (a replayed round must have answered
    /// what the journal says), each procedure records its outcome, and finished thresholds
    /// are shown (at `test.frequencies`, a design's axis values).
    pub(super) fn settle_round(
        &mut self,
        repeat: u32,
        requests: &[(usize, Request)],
        outcomes: &[u32],
        replayed: Option<&Round>,
        dvs: Vec<DecisionValue>,
    ) -> Result<(), Failure> {
        match replayed {
            Some(round) => {
                let journaled: Vec<u32> = round.requests.iter().map(|m| m.correct).collect();
                if journaled != outcomes {
                    return Err(self.resume_mismatch(format!(
                        "repeat {repeat}'s test answered {outcomes:?} correct where the \
                         journal has {journaled:?}"
                    )));
                }
            }
            None => self.journal(&Entry::Round(Round {
                repeat,
                requests: requests
                    .iter()
                    .zip(outcomes)
                    .map(|(&(f, req), &correct)| Measured {
                        frequency: f,
                        contrast: req.contrast,
                        trials: req.trials,
                        correct,
                    })
                    .collect(),
                dvs,
            }))?,
        }
        let (freqs, reference) = (&self.plan.test.frequencies, self.plan.test.reference);
        let mut trials_run = 0u64;
        for (&(f, req), &correct) in requests.iter().zip(outcomes) {
            self.procs_mut()[f].record(correct);
            trials_run += u64::from(req.trials);
            if let Some(r) =
                FrequencyResult::from_procedure(freqs[f], repeat, &self.procs()[f], reference)
            {
                self.observer.event(Event::Threshold {
                    frequency: r.frequency,
                    threshold: r.threshold,
                    steps: r.steps.len(),
                });
            }
        }
        self.observer.event(Event::Advance(trials_run));
        Ok(())
    }

    /// After a repeat's test: the results with its procedures, the result files rewritten
    /// (a round costs only its journal line until now), the test-at-chance check, `status`.
    pub(super) fn finish_test(
        &mut self,
        repeat: u32,
        status: String,
        t0: Instant,
    ) -> Result<(), Failure> {
        self.results = self.results_so_far();
        self.live = None;
        self.sync_journal()?;
        self.folder
            .write_partial(&self.results)
            .map_err(|e| self.io_failure(&e))?;
        self.observer.event(Event::PhaseDone);
        self.warn_test_at_chance(repeat);
        self.observer.event(Event::Status(status));
        self.phase_done("testing", t0);
        Ok(())
    }

    /// The procedures of the test that is running.
    pub(super) fn procs(&self) -> &[Procedure] {
        self.live.as_ref().map_or(&[], |l| &l.procs)
    }

    fn procs_mut(&mut self) -> &mut [Procedure] {
        self.live.as_mut().map_or(&mut [], |l| &mut l.procs)
    }

    /// `psy::run::resume` unless a journaled round asked what this round asks (the same
    /// frequency, contrast and trial count per request, in order).
    pub(super) fn check_replayed(
        &self,
        round: &Round,
        requests: &[(usize, Request)],
    ) -> Result<(), Failure> {
        let same = round.requests.len() == requests.len()
            && round.requests.iter().zip(requests).all(|(m, &(f, req))| {
                m.frequency == f
                    && m.contrast.to_bits() == req.contrast.to_bits()
                    && m.trials == req.trials
            });
        if same {
            return Ok(());
        }
        let asked: Vec<String> = requests
            .iter()
            .map(|&(f, r)| {
                format!(
                    "{} trials at contrast {} (frequency {})",
                    r.trials, r.contrast, self.plan.test.frequencies[f]
                )
            })
            .collect();
        let had: Vec<String> = round
            .requests
            .iter()
            .map(|m| {
                format!(
                    "{} trials at contrast {} (frequency {})",
                    m.trials,
                    m.contrast,
                    self.plan
                        .test
                        .frequencies
                        .get(m.frequency)
                        .copied()
                        .unwrap_or(f64::NAN)
                )
            })
            .collect();
        Err(self.resume_mismatch(format!(
            "the procedures ask for {} where the journal has {}",
            asked.join(", "),
            had.join(", ")
        )))
    }

    /// The images of one round of requests under stimulus noise: for each requested trial,
    /// its condition's grating at the requested contrast and the comparison, each with the
    /// trial's phase and position jitter and its own pixel noise (target first, then
    /// comparison, from the trial's stream). Returns the images (rows 2i and 2i + 1 for
    /// trial i) and the trial count.
    fn noisy_round(
        &self,
        gratings: &Gratings,
        requests: &[(usize, Request)],
        conditions: &mut [Conditions],
        trial_list: &[trials::TestTrial],
        repeat: u32,
        seed: u64,
    ) -> Result<(NoisyImages, usize), Failure> {
        let Gratings::Host(_) = gratings else {
            return Err(self.torch_failure("noisy trials are rendered on the host"));
        };
        let plan = self.plan;
        let obs = &plan.observer;
        let size = plan.test.size as usize;
        let mut jobs = Vec::new();
        for &(f, req) in requests {
            for _ in 0..req.trials {
                let (k, t) = conditions[f].next_trial();
                jobs.push((f, k, t, req.contrast));
            }
        }
        let reference = plan.test.reference;
        let rendered: Vec<[Vec<f32>; 2]> = jobs
            .par_iter()
            .map(|&(f, k, t, c)| {
                let mut r = observer::stimulus_stream(seed, repeat, f as u32, k);
                let j = observer::draw_jitter(&mut r, obs.phase_jitter, obs.position_jitter);
                let mut trial = trial_list[t];
                trial.phase += j.phase;
                let g = Grating::new(&trials::grating_spec(
                    &plan.test,
                    plan.test.frequencies[f],
                    &trial,
                ));
                let mut target = observer::shift_image(&g.render(c), size, j.shift, 0.5);
                let mut comparison =
                    observer::shift_image(&g.render(reference), size, j.shift, 0.5);
                observer::add_pixel_noise(&mut target, obs.pixel_noise, &mut r);
                observer::add_pixel_noise(&mut comparison, obs.pixel_noise, &mut r);
                [target, comparison]
            })
            .collect();
        let n = jobs.len();
        Ok((
            NoisyImages {
                grey: rendered.into_iter().flatten().collect(),
                conditions: jobs.iter().map(|j| j.2).collect(),
            },
            n,
        ))
    }

    /// `psy::run::test_at_chance`: the frequencies of this repeat whose every contrast
    /// level (with 8 or more trials, at least 3 levels) scored inside the 99 % band of
    /// guessing (0.5 ± 2.33 · 0.5/√n for n trials): the probe told nothing apart at any
    /// contrast, so their thresholds are the procedure's fallback, not a measurement.
    pub(super) fn warn_test_at_chance(&mut self, repeat: u32) {
        let n = self.plan.derived.trials_per_level.max(1);
        // The task's guess rate (½ for the tutorial's 2AFC) and its binomial spread.
        let g = self
            .plan
            .design
            .as_ref()
            .map_or(0.5, |d| d.task.guess_rate());
        let sd = (g * (1.0 - g)).sqrt();
        let band = 2.33 * sd / f64::from(n).sqrt();
        let flat: Vec<String> = self
            .results
            .staircases
            .iter()
            .filter(|r| r.repeat == repeat)
            .filter(|r| {
                // Trials pooled by contrast; levels with at least 8 trials judge, and there
                // must be 3 of them (a per-trial procedure rarely has that many).
                let levels: Vec<_> = report::pooled(r)
                    .into_iter()
                    .filter(|b| b.trials >= 8)
                    .collect();
                levels.len() >= 3
                    && levels.iter().all(|b| {
                        let p = f64::from(b.correct) / f64::from(b.trials);
                        (p - g).abs() <= 2.33 * sd / f64::from(b.trials).sqrt()
                    })
            })
            .map(|r| format!("{}", r.frequency))
            .collect();
        if flat.is_empty() {
            return;
        }
        let d = Diag::warning(
            Code::RunTestAtChance,
            format!(
                "test accuracy stays at chance at every contrast tested for {} {}",
                if flat.len() == 1 { "frequency" } else { "frequencies" },
                flat.join(", ")
            ),
        )
        .with_help(format!(
            "no level's accuracy differs from guessing ({g:.2} ± {band:.2} with {n} trials per level, pooled over repeated contrasts), so these thresholds only say where the staircase gave up. The probe may not read contrast at this cut, or may not have learnt: see the training accuracy, try more `epochs` or `samples`, another `lr`, pooling, or another cut"
        ));
        let d = self.plan.spans.label(
            d,
            Setting::Probe,
            self.options.file,
            "this probe's answers look like guesses",
        );
        self.warn(d);
    }

    /// Projections of every trial's grey image at each `(frequency index, contrast)` of
    /// `level`, in that order (rows `k·t_count + t`), rendered where the stimuli are.
    fn level_projections(
        &self,
        gratings: &Gratings,
        level: &[(usize, f64)],
        t_count: usize,
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        match gratings {
            Gratings::Host(g) => {
                let images: Vec<Vec<f32>> = level
                    .iter()
                    .flat_map(|&(f, c)| (0..t_count).map(move |t| (f, t, c)))
                    .map(|(f, t, c)| g.grey(f, t, c))
                    .collect();
                self.projections(&images, w_first, w_second)
            }
            Gratings::Device(g) => {
                let grey: Vec<Tensor> = level
                    .iter()
                    .map(|&(f, c)| g.grey(f, 0..t_count, c))
                    .collect();
                self.device_projections(g, &Tensor::cat(&grey, 0), w_first, w_second)
            }
        }
    }

    /// Projections of the grey images of `(frequency index, contrast, condition)` items,
    /// in that order, rendered where the stimuli are.
    fn item_projections(
        &self,
        gratings: &Gratings,
        items: &[(usize, f64, usize)],
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        match gratings {
            Gratings::Host(g) => {
                let images: Vec<Vec<f32>> =
                    items.par_iter().map(|&(f, c, t)| g.grey(f, t, c)).collect();
                self.projections(&images, w_first, w_second)
            }
            Gratings::Device(g) => {
                let grey: Vec<Tensor> = items
                    .iter()
                    .map(|&(f, c, t)| g.grey(f, t..t + 1, c))
                    .collect();
                self.device_projections(g, &Tensor::cat(&grey, 0), w_first, w_second)
            }
        }
    }

    /// [`projections`](Self::projections) for images rendered on the device (`[N, H, W]`):
    /// the same distinct images in the same order (first occurrences), so the same batches.
    fn device_projections(
        &self,
        gratings: &DeviceGratings,
        grey: &Tensor,
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        let n = grey.size()[0];
        // Equal rows share an id (float equality; the images hold no NaN and no −0).
        let (_, inverse, _) = grey.view([n, -1]).unique_dim(0, true, true, false);
        let ids = Vec::<i64>::try_from(inverse.to_device(Device::Cpu))
            .map_err(|e| self.torch_failure(&e.to_string()))?;
        let (unique, index) = first_occurrences(&ids);
        let batch = |chunk: &[usize]| {
            let rows: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
            let rows = Tensor::from_slice(&rows).to_device(gratings.device());
            gratings.normalize_grey(&grey.index_select(0, &rows))
        };
        self.project_distinct(&unique, &index, batch, w_first, w_second)
    }

    /// Projections of grey test images onto the two halves of the probe's weight,
    /// `([N, 2], [N, 2], distinct)`: the features of each distinct image are computed once
    /// (in chunks of [`TEST_CHUNK`]), and rows of identical images are copies.
    fn projections(
        &self,
        images: &[Vec<f32>],
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        let (unique, index) = dedupe(images);
        let size = i64::from(self.plan.test.size);
        let image = 3 * images.first().map_or(0, Vec::len);
        let batch = |chunk: &[usize]| {
            let mut buf = vec![0f32; chunk.len() * image];
            buf.par_chunks_mut(image.max(1))
                .zip(chunk)
                .for_each(|(dst, &i)| {
                    trials::grey_to_chw(&images[i], &self.plan.test.normalize, dst)
                });
            Tensor::from_slice(&buf).reshape([chunk.len() as i64, 3, size, size])
        };
        self.project_distinct(&unique, &index, batch, w_first, w_second)
    }

    /// The features of the distinct images `unique` (`batch` makes a chunk of them, at most
    /// [`TEST_CHUNK`], as normalised `[n, 3, H, W]` images) projected onto both halves of
    /// the probe's weight, then one row per image by `index` (its distinct image's
    /// position): `([N, 2], [N, 2], distinct)`.
    fn project_distinct(
        &self,
        unique: &[usize],
        index: &[usize],
        batch: impl Fn(&[usize]) -> Tensor,
        w_first: &Tensor,
        w_second: &Tensor,
    ) -> Result<(Tensor, Tensor, usize), Failure> {
        let mut p_first = Vec::new();
        let mut p_second = Vec::new();
        for chunk in unique.chunks(TEST_CHUNK) {
            self.check_stop()?;
            let feats = self.features(&batch(chunk));
            p_first.push(feats.matmul(&w_first.tr()));
            p_second.push(feats.matmul(&w_second.tr()));
        }
        let (first, second) = (Tensor::cat(&p_first, 0), Tensor::cat(&p_second, 0));
        // NaN would compare as "first" everywhere and score chance without an error. Checked
        // once per level, not per chunk (each check waits for the device).
        if !all_finite(&first) || !all_finite(&second) {
            return Err(self.non_finite_failure(
                "the test images' features are NaN or infinite: no test result could mean \
                 anything"
                    .into(),
                true,
            ));
        }
        let index: Vec<i64> = index.iter().map(|&i| i as i64).collect();
        let index = Tensor::from_slice(&index).to_device(self.device);
        Ok((
            first.index_select(0, &index),
            second.index_select(0, &index),
            unique.len(),
        ))
    }
}

/// The images of a round of noisy trials.
struct NoisyImages {
    /// Target and comparison of each trial, grey `size²` values each.
    grey: Vec<Vec<f32>>,
    /// Each trial's condition.
    conditions: Vec<usize>,
}

/// The test gratings, where the stimuli are rendered.
enum Gratings {
    Host(TestGratings),
    Device(DeviceGratings),
}

/// For ids of equal items (`ids[i]` the same exactly when items are equal): the index of
/// each distinct item's first occurrence, in order, and for every item its distinct
/// item's position in that list. The same result as [`dedupe`] on the items.
fn first_occurrences(ids: &[i64]) -> (Vec<usize>, Vec<usize>) {
    let mut position: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut unique = Vec::new();
    let index = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            *position.entry(*id).or_insert_with(|| {
                unique.push(i);
                unique.len() - 1
            })
        })
        .collect();
    (unique, index)
}

/// Distinct images (exactly equal `f32` buffers): `(indices of the first of each, for every
/// image the position of its distinct image in that list)`.
fn dedupe(images: &[Vec<f32>]) -> (Vec<usize>, Vec<usize>) {
    use std::collections::hash_map::{DefaultHasher, HashMap};
    use std::hash::{Hash, Hasher};
    let hashes: Vec<u64> = images
        .par_iter()
        .map(|img| {
            let mut h = DefaultHasher::new();
            for v in img {
                v.to_bits().hash(&mut h);
            }
            h.finish()
        })
        .collect();
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut unique = Vec::new();
    let mut index = Vec::with_capacity(images.len());
    for (i, (img, h)) in images.iter().zip(hashes).enumerate() {
        let bucket = seen.entry(h).or_default();
        let same = bucket.iter().copied().find(|&u| images[unique[u]] == *img);
        match same {
            Some(u) => index.push(u),
            None => {
                bucket.push(unique.len());
                index.push(unique.len());
                unique.push(i);
            }
        }
    }
    (unique, index)
}

#[cfg(test)]
mod tests {
    use super::dedupe;

    #[test]
    fn dedupe_keeps_first_occurrences_and_maps_every_image() {
        let a = vec![0.5f32; 4];
        let b = vec![0.25f32, 0.5, 0.5, 0.5];
        let c = vec![0.5f32, 0.5, 0.5, 0.25];
        let images = vec![a.clone(), b.clone(), a.clone(), c, b];
        let (unique, index) = dedupe(&images);
        assert_eq!(unique, [0, 1, 3]);
        assert_eq!(index, [0, 1, 0, 2, 1]);
        for (i, &u) in index.iter().enumerate() {
            assert_eq!(images[unique[u]], images[i]);
        }
        assert_eq!(dedupe(&[]), (vec![], vec![]));
    }
}
