//! The second step: the linear probe learns the training task while the backbone stays
//! frozen (or drifts its BatchNorm statistics with `batchnorm train`, as the tutorial does).

use super::probe::Probe;
use super::Interpreter;
use crate::backbone::flatten_features;
use crate::device::StimuliOn;
use crate::device_stimuli::{self};
use crate::failure::Failure;
use psyrun::diag::{Code, Diag};
use psyrun::plan::{BatchNorm, Setting};
use psyrun::progress::Event;
use psyrun::report::journal::Entry;
use psyrun::report::EpochRecord;
use psyrun::trials::{self};
use std::time::Instant;
use tch::{nn, Kind, Tensor};

impl Interpreter<'_> {
    /// Features of a batch `[N, 3, H, W]` after the cut and pooling: `[N, F]`, flattened in
    /// the backbone's [`FeatureOrder`] (the probe's weights are laid out to match).
    pub(super) fn features(&self, x: &Tensor) -> Tensor {
        let x = x.to_device(self.device);
        flatten_features(
            &self.backbone.forward_raw(&x),
            self.plan.backbone.pooling,
            self.backbone.feature_order(),
        )
    }

    pub(super) fn train(&mut self, repeat: u32, seed: u64) -> Result<Probe, Failure> {
        let t0 = Instant::now();
        let plan = self.plan;
        // Filled by the planner, or by `prepare` for a TorchScript module.
        let Some(shape) = plan.derived.feature_shape.as_deref() else {
            return Err(self.torch_failure("the feature shape is unknown"));
        };
        let order = self.backbone.feature_order();
        let probe = Probe::new(shape, order, seed, self.device);
        let mut opt = probe
            .optimizer(&plan.probe.optimizer)
            .map_err(|e| self.torch_failure(&e.to_string()))?;

        let samples = u64::from(plan.train.samples);
        let batch = u64::from(plan.probe.batch).max(1);
        let size = i64::from(plan.train.size);
        self.observer.event(Event::Phase {
            name: "training",
            total: u64::from(plan.probe.epochs) * samples,
            unit: "trials",
        });
        // Stimuli for the next batch are rendered (in parallel) while the network runs on
        // this one. Dropping the receiver (an error, Ctrl-C) stops the producer.
        let jobs: Vec<(u32, std::ops::Range<u64>)> = (0..plan.probe.epochs)
            .flat_map(|e| {
                (0..samples)
                    .step_by(batch as usize)
                    .map(move |s| (e, s..(s + batch).min(samples)))
            })
            .collect();
        std::thread::scope(|scope| -> Result<(), Failure> {
            let (tx, batches) = std::sync::mpsc::sync_channel(1);
            let (stimuli, device) = (self.stimuli, self.device);
            scope.spawn(move || {
                for (epoch, range) in jobs {
                    let batch = match stimuli {
                        StimuliOn::Host => {
                            TrainBatch::Host(trials::train_batch(seed, &plan.train, epoch, range))
                        }
                        StimuliOn::Device => TrainBatch::Device(device_stimuli::train_batch(
                            seed,
                            &plan.train,
                            epoch,
                            range,
                            device,
                        )),
                    };
                    if tx.send(batch).is_err() {
                        break;
                    }
                }
            });
            for epoch in 0..plan.probe.epochs {
                let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0i64, 0u64);
                let mut start = 0;
                while start < samples {
                    self.check_stop()?;
                    let end = (start + batch).min(samples);
                    // The producer renders batches in this order; it has stopped only on a bug.
                    let Ok(b) = batches.recv() else {
                        return Err(self.torch_failure("the stimulus thread stopped"));
                    };
                    let (x1, x2, labels) = match b {
                        TrainBatch::Host(b) => {
                            let shape = [b.len as i64, 3, size, size];
                            (
                                Tensor::from_slice(&b.first).reshape(shape),
                                Tensor::from_slice(&b.second).reshape(shape),
                                Tensor::from_slice(&b.labels),
                            )
                        }
                        TrainBatch::Device(b) => {
                            debug_assert_eq!(b.len as i64, b.labels.size()[0]);
                            (b.first, b.second, b.labels)
                        }
                    };
                    let n = labels.size()[0];
                    debug_assert_eq!(n as u64, end - start);
                    let labels = labels.to_device(self.device);
                    let (f1, f2) = match plan.backbone.batchnorm {
                        // Frozen: one forward for both images.
                        BatchNorm::Eval => {
                            let f = self.features(&Tensor::cat(&[x1, x2], 0));
                            (f.narrow(0, 0, n), f.narrow(0, n, n))
                        }
                        // The tutorial: two forwards, each normalised with its own batch statistics.
                        BatchNorm::Train => (self.features(&x1), self.features(&x2)),
                    };
                    let logits = probe.forward(&f1, &f2);
                    let (l, right) = self.step(&mut opt, &logits, &labels, epoch)?;
                    loss_sum += l * n as f64;
                    correct += right;
                    seen += n as u64;
                    self.observer.event(Event::Advance(n as u64));
                    start = end;
                }
                self.end_epoch(repeat, epoch, loss_sum, correct, seen)?;
            }
            Ok(())
        })?;
        self.observer.event(Event::PhaseDone);
        self.phase_done("training", t0);
        self.sync_journal()?;
        self.folder
            .write_partial(&self.results)
            .map_err(|e| self.io_failure(&e))?;
        if let Some(last) = self.results.training.last() {
            if trials::near_chance(last.accuracy, samples) {
                let d = Diag::warning(
                    Code::RunProbeAtChance,
                    format!(
                        "the probe ends training at {:.1} % correct, barely above chance (50 %)",
                        100.0 * last.accuracy
                    ),
                )
                .with_help(
                    "the thresholds below are unreliable. Either the feature (contrast) is not \
                     linearly decodable at this cut, or the probe has not learnt yet: try more \
                     `epochs` or `samples`, another `lr`, or pooling",
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
        Ok(probe)
    }
}

impl Interpreter<'_> {
    /// One optimiser step on a batch's `logits` for `labels`: `(loss, right answers)`;
    /// `psy::run::nan_loss` when the loss is not finite.
    pub(super) fn step(
        &self,
        opt: &mut nn::Optimizer,
        logits: &Tensor,
        labels: &Tensor,
        epoch: u32,
    ) -> Result<(f64, i64), Failure> {
        let loss = logits.cross_entropy_for_logits(labels);
        opt.zero_grad();
        loss.backward();
        opt.step();
        let l = loss.double_value(&[]);
        if !l.is_finite() {
            return Err(self.nan_failure(epoch, l));
        }
        let right = logits
            .detach()
            .argmax(1, false)
            .eq_tensor(labels)
            .sum(Kind::Int64)
            .int64_value(&[]);
        Ok((l, right))
    }

    /// The end of an epoch: its record shown, kept, and journaled (a resumed run checks its
    /// retraining against the journal instead; the result files are written when the phase
    /// ends, or when the run is interrupted or fails).
    pub(super) fn end_epoch(
        &mut self,
        repeat: u32,
        epoch: u32,
        loss_sum: f64,
        correct: i64,
        seen: u64,
    ) -> Result<(), Failure> {
        let record = EpochRecord {
            repeat,
            epoch: epoch + 1,
            loss: loss_sum / seen.max(1) as f64,
            accuracy: correct as f64 / seen.max(1) as f64,
        };
        self.observer.event(Event::Epoch {
            epoch,
            loss: record.loss,
            accuracy: record.accuracy,
        });
        self.results.training.push(record);
        match self.replay.next_epoch(repeat) {
            Some((e, loss, accuracy)) => {
                if e != record.epoch
                    || loss.to_bits() != record.loss.to_bits()
                    || accuracy.to_bits() != record.accuracy.to_bits()
                {
                    return Err(self.resume_mismatch(format!(
                        "retraining gave loss {} and accuracy {} in repeat {repeat}'s epoch {}, \
                         where the journal has loss {loss} and accuracy {accuracy} in epoch {e}",
                        record.loss, record.accuracy, record.epoch
                    )));
                }
                Ok(())
            }
            None => self.journal(&Entry::Epoch {
                repeat,
                epoch: record.epoch,
                loss: record.loss,
                accuracy: record.accuracy,
            }),
        }
    }
}

/// A training batch from the stimulus thread.
enum TrainBatch {
    Host(trials::TrainBatch),
    Device(device_stimuli::DeviceTrainBatch),
}
