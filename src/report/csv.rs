//! The CSV files: plain (no comments), `\n` line ends, floats in Rust's shortest
//! round-trip form (`NaN`, `inf`, `-inf` for non-finite values), no locale. An empty cell
//! is a value that does not exist (no interval, not censored). Columns added in later
//! versions come after the earlier ones, so scripts that read by position keep working.

use super::{stop_name, CsfPoint, EpochRecord, FrequencyResult};
use crate::psychometric::{pool_blocks, Block};
use std::fmt::Write;

/// `training.csv`: `epoch,loss,accuracy,repeat`, one row per epoch and repeat.
pub fn training_csv(training: &[EpochRecord]) -> String {
    let mut s = String::from("epoch,loss,accuracy,repeat\n");
    for r in training {
        let _ = writeln!(s, "{},{},{},{}", r.epoch, r.loss, r.accuracy, r.repeat);
    }
    s
}

/// `staircase.csv`: `frequency,step,contrast,accuracy,trials,correct,repeat`, one row per
/// measurement (a procedure's request: one trial for up/down and QUEST, a whole level for
/// bisection and constant stimuli).
pub fn staircase_csv(staircases: &[FrequencyResult]) -> String {
    let mut s = String::from("frequency,step,contrast,accuracy,trials,correct,repeat\n");
    for f in staircases {
        for step in &f.steps {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{}",
                f.frequency,
                step.step,
                step.contrast,
                step.accuracy,
                step.trials,
                step.correct,
                f.repeat
            );
        }
    }
    s
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v}"))
}

/// `csf.csv`: one row per frequency, summarised over repeats:
/// `frequency_cpi,threshold_contrast,sensitivity,steps,stopped` (the first version's
/// columns), then `ci_low,ci_high,sensitivity_ci_low,sensitivity_ci_high,method,censored,
/// censored_repeats,repeats,trials`. `censored` is empty for a measured threshold, else
/// `below_range`, `above_range` or `not_converged`.
pub fn csf_csv(csf: &[CsfPoint]) -> String {
    let mut s = String::from(
        "frequency_cpi,threshold_contrast,sensitivity,steps,stopped,ci_low,ci_high,\
         sensitivity_ci_low,sensitivity_ci_high,method,censored,censored_repeats,repeats,trials\n",
    );
    for p in csf {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            p.frequency,
            p.threshold,
            p.sensitivity,
            p.steps,
            stop_name(p.stop),
            opt(p.ci.map(|c| c.0)),
            opt(p.ci.map(|c| c.1)),
            opt(p.sensitivity_ci.map(|c| c.0)),
            opt(p.sensitivity_ci.map(|c| c.1)),
            p.method,
            p.censored.map_or("", |c| c.name()),
            p.censored_repeats,
            p.repeats,
            p.trials
        );
    }
    s
}

/// `thresholds.csv`: one row per frequency and repeat: `frequency_cpi,repeat,procedure,
/// procedure_threshold,fit,fit_threshold,fit_ci_low,fit_ci_high,deviance,deviance_p,
/// threshold_contrast,ci_low,ci_high,sensitivity,censored,stopped,trials`.
pub fn thresholds_csv(staircases: &[FrequencyResult]) -> String {
    let mut s = String::from(
        "frequency_cpi,repeat,procedure,procedure_threshold,fit,fit_threshold,fit_ci_low,\
         fit_ci_high,deviance,deviance_p,threshold_contrast,ci_low,ci_high,sensitivity,censored,\
         stopped,trials\n",
    );
    for r in staircases {
        let fit = r.fit.as_ref();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.frequency,
            r.repeat,
            r.procedure,
            r.procedure_threshold,
            fit.map_or("", |f| f.function.as_str()),
            opt(fit.map(|f| f.threshold)),
            opt(fit.and_then(|f| f.ci).map(|c| c.0)),
            opt(fit.and_then(|f| f.ci).map(|c| c.1)),
            opt(fit.map(|f| f.deviance)),
            opt(fit.and_then(|f| f.deviance_p)),
            r.threshold,
            opt(r.ci.map(|c| c.0)),
            opt(r.ci.map(|c| c.1)),
            r.sensitivity,
            r.censored.map_or("", |c| c.name()),
            stop_name(r.stop),
            r.trials()
        );
    }
    s
}

/// The trials of one result pooled by contrast, ascending (what a psychometric function is
/// fitted to).
pub fn pooled(r: &FrequencyResult) -> Vec<Block> {
    pool_blocks(r.steps.iter().map(|s| Block {
        level: s.contrast,
        trials: s.trials,
        correct: s.correct,
    }))
}

/// `psychometric.csv`: `frequency_cpi,repeat,level,trials,correct`, every frequency's
/// trials pooled by contrast level (what a psychometric function is fitted to).
pub fn psychometric_csv(staircases: &[FrequencyResult]) -> String {
    let mut s = String::from("frequency_cpi,repeat,level,trials,correct\n");
    for r in staircases {
        for b in pooled(r) {
            let _ = writeln!(
                s,
                "{},{},{},{},{}",
                r.frequency, r.repeat, b.level, b.trials, b.correct
            );
        }
    }
    s
}
