//! The CSV files: plain (no comments), `\n` line ends, floats in Rust's shortest
//! round-trip form (`NaN`, `inf`, `-inf` for non-finite values), no locale.

use super::{stop_name, EpochRecord, FrequencyResult};
use std::fmt::Write;

/// `training.csv`: `epoch,loss,accuracy`, one row per epoch.
pub fn training_csv(training: &[EpochRecord]) -> String {
    let mut s = String::from("epoch,loss,accuracy\n");
    for r in training {
        let _ = writeln!(s, "{},{},{}", r.epoch, r.loss, r.accuracy);
    }
    s
}

/// `staircase.csv`: `frequency,step,contrast,accuracy`, one row per measurement.
pub fn staircase_csv(staircases: &[FrequencyResult]) -> String {
    let mut s = String::from("frequency,step,contrast,accuracy\n");
    for f in staircases {
        for step in &f.steps {
            let _ = writeln!(
                s,
                "{},{},{},{}",
                f.frequency, step.step, step.contrast, step.accuracy
            );
        }
    }
    s
}

/// `csf.csv`: `frequency_cpi,threshold_contrast,sensitivity,steps,stopped`, one row per
/// frequency; `steps` counts measurements, `stopped` is `converged` or `max_steps`.
pub fn csf_csv(staircases: &[FrequencyResult]) -> String {
    let mut s = String::from("frequency_cpi,threshold_contrast,sensitivity,steps,stopped\n");
    for f in staircases {
        let _ = writeln!(
            s,
            "{},{},{},{},{}",
            f.frequency,
            f.threshold,
            f.sensitivity,
            f.steps.len(),
            stop_name(f.stop)
        );
    }
    s
}
