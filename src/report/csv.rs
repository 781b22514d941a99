//! The CSV files: plain (no comments), `\n` line ends, floats in Rust's shortest
//! round-trip form (`NaN`, `inf`, `-inf` for non-finite values), no locale. An empty cell
//! is a value that does not exist (no interval, not censored). A cell holding a comma, a
//! quote or a line break is quoted (RFC 4180). Columns added in later versions come after
//! the earlier ones, so scripts that read by position keep working; every file ends with
//! the run's [`Identity`] columns (`experiment,architecture,cut,weights,pooling,precision,
//! seed,reference,condition_id`). `docs/outputs.md` documents every column (a test checks it
//! against what a run writes).

use super::{stop_name, Identity, Labels, Results};
use crate::psychometric::{pool_blocks, Block};
use std::fmt::Write;

/// A function writing one CSV file of a run.
pub type CsvWriter = fn(&Results) -> String;

/// The CSV files of a run folder, with their functions.
pub const CSV_FILES: [(&str, CsvWriter); 5] = [
    ("training.csv", training_csv),
    ("staircase.csv", staircase_csv),
    ("csf.csv", csf_csv),
    ("thresholds.csv", thresholds_csv),
    ("psychometric.csv", psychometric_csv),
];

/// A cell as CSV writes it: quoted when it holds a comma, a quote or a line break.
fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The header line: the file's own columns, then the identity's.
fn header(own: &str) -> String {
    format!("{own},{}\n", Identity::COLUMNS.join(","))
}

/// The identity's cells, with a leading comma.
fn identity_cells(id: &Identity) -> String {
    format!(
        ",{},{},{},{},{},{},{},{},{}",
        cell(&id.experiment),
        cell(&id.architecture),
        cell(&id.cut),
        cell(&id.weights),
        cell(&id.pooling),
        cell(&id.precision),
        id.seed,
        id.reference,
        cell(&id.condition_id)
    )
}

/// `training.csv`: `epoch,loss,accuracy,repeat`, one row per epoch and repeat.
pub fn training_csv(results: &Results) -> String {
    let id = identity_cells(&Identity::of(results));
    let mut s = header("epoch,loss,accuracy,repeat");
    for r in &results.training {
        let _ = writeln!(s, "{},{},{},{}{id}", r.epoch, r.loss, r.accuracy, r.repeat);
    }
    s
}

/// `staircase.csv`: `frequency_cpi,step,contrast,accuracy,trials,correct,repeat`, one row
/// per measurement (a procedure's request: one trial for up/down and QUEST, a whole level
/// for bisection and constant stimuli).
pub fn staircase_csv(results: &Results) -> String {
    let id = identity_cells(&Identity::of(results));
    let l = Labels::of(&results.plan);
    let mut s = header(&format!(
        "{},step,{},accuracy,trials,correct,repeat",
        l.axis_column, l.level_column
    ));
    for f in &results.staircases {
        for step in &f.steps {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{}{id}",
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
/// columns, in that order for scripts that read by position), then `ci_low,ci_high,
/// sensitivity_ci_low,sensitivity_ci_high,method,censored,censored_repeats,repeats,trials`.
/// `censored` is empty for a measured threshold, else `below_range`, `above_range` or
/// `not_converged`.
pub fn csf_csv(results: &Results) -> String {
    let id = identity_cells(&Identity::of(results));
    let l = Labels::of(&results.plan);
    let mut s = header(&format!(
        "{},threshold_{},sensitivity,steps,stopped,ci_low,ci_high,\
         sensitivity_ci_low,sensitivity_ci_high,method,censored,censored_repeats,repeats,trials",
        l.axis_column, l.level_column
    ));
    for p in &results.csf {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}{id}",
            p.frequency,
            p.threshold,
            p.sensitivity,
            p.steps,
            stop_name(p.stop),
            opt(p.ci.map(|c| c.0)),
            opt(p.ci.map(|c| c.1)),
            opt(p.sensitivity_ci.map(|c| c.0)),
            opt(p.sensitivity_ci.map(|c| c.1)),
            cell(&p.method),
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
pub fn thresholds_csv(results: &Results) -> String {
    let id = identity_cells(&Identity::of(results));
    let l = Labels::of(&results.plan);
    let mut s = header(&format!(
        "{},repeat,procedure,procedure_threshold,fit,fit_threshold,fit_ci_low,\
         fit_ci_high,deviance,deviance_p,threshold_{},ci_low,ci_high,sensitivity,censored,\
         stopped,trials",
        l.axis_column, l.level_column
    ));
    for r in &results.staircases {
        let fit = r.fit.as_ref();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}{id}",
            r.frequency,
            r.repeat,
            cell(&r.procedure),
            r.procedure_threshold,
            fit.map_or(String::new(), |f| cell(&f.function)),
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
pub fn pooled(r: &super::FrequencyResult) -> Vec<Block> {
    pool_blocks(r.steps.iter().map(|s| Block {
        level: s.contrast,
        trials: s.trials,
        correct: s.correct,
    }))
}

/// `psychometric.csv`: `frequency_cpi,repeat,contrast,trials,correct`, every frequency's
/// trials pooled by contrast (what a psychometric function is fitted to).
pub fn psychometric_csv(results: &Results) -> String {
    let id = identity_cells(&Identity::of(results));
    let l = Labels::of(&results.plan);
    let mut s = header(&format!(
        "{},repeat,{},trials,correct",
        l.axis_column, l.level_column
    ));
    for r in &results.staircases {
        for b in pooled(r) {
            let _ = writeln!(
                s,
                "{},{},{},{},{}{id}",
                r.frequency, r.repeat, b.level, b.trials, b.correct
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_with_commas_or_quotes_are_quoted() {
        assert_eq!(cell("random"), "random");
        assert_eq!(cell("w,1.pth"), "\"w,1.pth\"");
        assert_eq!(cell("a\"b"), "\"a\"\"b\"");
    }
}
