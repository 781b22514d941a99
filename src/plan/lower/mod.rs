//! The lowering pass itself, one module per block. Defaults live in these modules and
//! nowhere else; `docs/language.md` documents each one (a test checks the documented
//! examples against this code).
//!
//! - `experiment`: the top level (name, `seed`, `device`, `precision`), the blocks it
//!   holds, and the order in which the others run;
//! - `backbone`, `probe` (with its `optimizer`), `train`, `test` and `staircase`: one
//!   block each; `generators` reads the test's lists (`divisors`, `steps`, `logspace`);
//! - `derive`: the quantities computed from several blocks (feature shapes, trial counts)
//!   and the checks across blocks;
//! - `warnings`: settings that are valid but probably not meant;
//! - `read`: the readers all blocks share.
//!
//! While reading a setting, a block records where it is written in `Cx::spans` (the
//! value, or the block's header for a default); the plan carries them to the run time
//! (see [`Spans`](crate::plan::Spans)).

mod backbone;
mod derive;
mod design;
mod experiment;
mod fit;
mod generators;
mod memory;
mod observer;
mod probe;
mod read;
mod staircase;
mod test;
mod train;
mod warnings;

#[cfg(test)]
mod tests;

use super::types::*;
use super::values::{Cx, FileBase};
use crate::diag::{Code, Diag};
use crate::syntax::ast::{Ast, Block};

/// The result of lowering: a plan when there is no error, and every diagnostic.
#[derive(Debug)]
pub struct Lowered {
    /// The plan, present only when no error was found.
    pub plan: Option<Plan>,
    /// Errors and warnings, in source order of discovery.
    pub diags: Vec<Diag>,
}

impl Lowered {
    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diag::is_error)
    }
}

/// Every path `--set` and `sweep` accept, in documentation order: the experiment's own
/// settings (`seed`), each block's header argument (`backbone`, `probe.optimizer`) and each
/// block's settings (`backbone.cut`, `probe.optimizer.lr`); for `staircase`, the settings of
/// every method.
pub(crate) fn setting_paths() -> Vec<String> {
    let mut out: Vec<String> = experiment::EXPERIMENT_SETTINGS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let staircase: Vec<&str> = [
        staircase::BISECTION_SETTINGS,
        staircase::UPDOWN_SETTINGS,
        staircase::QUEST_SETTINGS,
        staircase::QUESTPLUS_SETTINGS,
        staircase::CONSTANT_SETTINGS,
    ]
    .concat();
    let optimizer: Vec<&str> = [probe::SGD_SETTINGS, probe::ADAM_SETTINGS].concat();
    for section in experiment::SECTIONS {
        out.push(section.to_string());
        let settings: &[&str] = match *section {
            "backbone" => backbone::BACKBONE_SETTINGS,
            "probe" => probe::PROBE_SETTINGS,
            "train" => train::TRAIN_SETTINGS,
            "test" => test::TEST_SETTINGS,
            "staircase" => &staircase,
            "observer" => observer::OBSERVER_SETTINGS,
            "fit" => fit::FIT_SETTINGS,
            _ => &[],
        };
        for s in settings {
            let path = format!("{section}.{s}");
            if !out.contains(&path) {
                out.push(path);
            }
        }
        if *section == "probe" {
            out.push("probe.optimizer".to_string());
            for s in &optimizer {
                let path = format!("probe.optimizer.{s}");
                if !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
    // An experiment described by its parts (`stimulus.NAME.PARAM` paths depend on the
    // file: see `plan::sweep`).
    out.extend(design::DESIGN_SETTINGS.iter().map(|s| s.to_string()));
    for s in design::DISPLAY_SETTINGS {
        out.push(format!("display.{s}"));
    }
    out.push("task".to_string());
    for s in design::TASK_SETTINGS {
        out.push(format!("task.{s}"));
    }
    out.push("level.unit".to_string());
    for s in design::DESIGN_TRAIN_SETTINGS {
        let path = format!("train.{s}");
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

/// Default image size (torchvision ImageNet models).
pub const DEFAULT_SIZE: u32 = 224;
/// ImageNet channel means.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];
/// CLIP's channel means (OpenAI's preprocessing, open_clip's `OPENAI_DATASET_MEAN`).
pub const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// CLIP's channel standard deviations (open_clip's `OPENAI_DATASET_STD`).
pub const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// Lowers a syntax tree to a plan, collecting every error and warning.
pub fn lower(ast: &Ast) -> Lowered {
    lower_with(ast, None)
}

/// [`lower`], checking that the files the experiment names exist when `files` says where.
pub(crate) fn lower_with(ast: &Ast, files: Option<FileBase>) -> Lowered {
    match the_experiment(ast) {
        Ok(one) => lower_experiment(one, ast.header.as_ref().map_or(1, |h| h.version), files),
        Err(d) => Lowered {
            plan: None,
            diags: vec![*d],
        },
    }
}

/// The one experiment of a file that runs: `psy::plan::no_experiment` or
/// `psy::plan::multiple_experiments` when there is not exactly one.
pub(crate) fn the_experiment(ast: &Ast) -> Result<&Block, Box<Diag>> {
    match ast.experiments.as_slice() {
        [] => Err(Box::new(
            Diag::error(Code::PlanNoExperiment, "the file has no `experiment` block").with_help(
                "add `experiment NAME { … }` after `psy 1`; see experiments/quick_csf.psy",
            ),
        )),
        [one] => Ok(one),
        [first, second, ..] => Err(Box::new(
            Diag::error(
                Code::PlanMultipleExperiments,
                "one file holds one experiment",
            )
            .at(second.keyword.span, "a second experiment")
            .also(first.keyword.span, "the first experiment")
            .with_help("put each experiment in its own file"),
        )),
    }
}

/// Lowers one experiment block (imports, `extends` and sweeps already resolved).
pub(crate) fn lower_experiment(exp: &Block, psy: u32, files: Option<FileBase>) -> Lowered {
    let mut cx = Cx {
        files,
        ..Cx::default()
    };
    let plan = experiment::lower(&mut cx, psy, exp);
    let plan = if cx.diags.iter().any(Diag::is_error) {
        None
    } else {
        plan
    };
    Lowered {
        plan,
        diags: cx.diags,
    }
}

#[cfg(test)]
mod design_tests;
