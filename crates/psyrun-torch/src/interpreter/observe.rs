//! Between training and testing: the observer's decision rule (calibrating its noise when
//! the plan asks), and after testing: the psychometric fits of a repeat's results.

use super::probe::Probe;
use super::Interpreter;
use crate::failure::Failure;
use psyrun::diag::{Code, Diag};
use psyrun::exit::EXIT_RUN;
use psyrun::observer::{self, DecisionRule};
use psyrun::plan::{BatchNorm, Decision, Setting};
use psyrun::progress::Event;
use psyrun::report;
use psyrun::trials;
use tch::{Device, Tensor};

impl Interpreter<'_> {
    /// The decision rule of the plan's observer. A calibrated one measures the probe's
    /// decision variables on `samples` fresh training trials (an epoch the probe never
    /// saw: index `epochs` of the training stream) and sets the noise so that the expected
    /// accuracy there is the plan's.
    pub(super) fn decision_rule(
        &mut self,
        probe: &Probe,
        seed: u64,
    ) -> Result<DecisionRule, Failure> {
        let plan = self.plan;
        let Decision::Calibrated { noise, accuracy } = plan.observer.decision else {
            return Ok(DecisionRule::new(&plan.observer.decision, None));
        };
        self.backbone.set_batchnorm(BatchNorm::Eval);
        let samples = u64::from(plan.train.samples);
        let batch = u64::from(plan.probe.batch).max(1);
        let size = i64::from(plan.train.size);
        let mut margins = Vec::with_capacity(samples as usize);
        let mut start = 0;
        while start < samples {
            self.check_stop()?;
            let end = (start + batch).min(samples);
            let b = trials::train_batch(seed, &plan.train, plan.probe.epochs, start..end);
            let shape = [b.len as i64, 3, size, size];
            let f1 = self.features(&Tensor::from_slice(&b.first).reshape(shape));
            let f2 = self.features(&Tensor::from_slice(&b.second).reshape(shape));
            let logits = probe.forward(&f1, &f2).detach();
            let dv = Vec::<f32>::try_from(
                (logits.select(1, 1) - logits.select(1, 0)).to_device(Device::Cpu),
            )
            .map_err(|e| self.torch_failure(&e.to_string()))?;
            margins.extend(dv.iter().zip(&b.labels).map(|(&d, &l)| {
                if l == 1 {
                    f64::from(d)
                } else {
                    -f64::from(d)
                }
            }));
            start = end;
        }
        match observer::calibrate(&margins, noise, accuracy) {
            Ok(scale) => {
                self.observer.event(Event::Status(format!(
                    "observer calibrated: decision noise scale {scale:.4} gives {:.1} % expected accuracy on {samples} fresh training trials (noiseless {:.1} %)",
                    100.0 * accuracy,
                    100.0 * margins.iter().filter(|&&m| m > 0.0).count() as f64 / margins.len().max(1) as f64
                )));
                self.results.manifest.decision_noise = Some(scale);
                Ok(DecisionRule::new(&plan.observer.decision, Some(scale)))
            }
            Err(e) => {
                let _ = self.folder.write_partial(&self.results);
                let d = Diag::error(
                    Code::RunCalibration,
                    format!(
                        "the observer cannot be calibrated to {:.1} % correct: the noiseless probe scores {:.1} % on fresh training trials",
                        100.0 * e.target,
                        100.0 * e.noiseless
                    ),
                )
                .with_help(
                    "noise only lowers accuracy: ask for an accuracy below the probe's own, or train the probe longer (more `epochs` or `samples`)",
                );
                let d = plan
                    .spans
                    .label(d, Setting::Probe, self.options.file, "this probe");
                Err(Failure::new(d, EXIT_RUN).in_folder(Some(self.folder.path().to_path_buf())))
            }
        }
    }

    /// Fits the psychometric function of the plan to each of repeat `repeat`'s results.
    pub(super) fn analyse(&mut self, repeat: u32) {
        let t0 = std::time::Instant::now();
        let plan = self.plan;
        for r in self
            .results
            .staircases
            .iter_mut()
            .filter(|r| r.repeat == repeat)
        {
            report::analyse(plan, r);
        }
        self.phase_done("fitting", t0);
    }
}
