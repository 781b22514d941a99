//! Experiments as a set of conditions (issue 14): what `import`, `extends`, `--set` overrides
//! and `sweep { … }` blocks resolve to. Every command that compiles an experiment for a run
//! goes through [`compile_experiment`]; a file without a sweep is one condition.
//!
//! This module is the seam between the language (imports, overrides, sweeps) and the runner
//! (`psyrun sweep`, Slurm, `psyrun collect`): the runner only sees [`Compiled`].

use super::{Lowered, Plan};
use crate::diag::Diag;
use crate::source::SourceFile;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// One `--set PATH=VALUE` from the command line, as given (checked when compiled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The setting's path, e.g. `probe.epochs`, `backbone.cut`, `seed`.
    pub path: String,
    /// The value as psyrun source text, e.g. `3`, `layer2`, `[0, 1]`.
    pub value: String,
}

impl std::str::FromStr for Override {
    type Err = String;
    /// `PATH=VALUE`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (path, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not PATH=VALUE (e.g. probe.epochs=3)"))?;
        let (path, value) = (path.trim(), value.trim());
        if path.is_empty() || value.is_empty() {
            return Err(format!("`{s}` is not PATH=VALUE (e.g. probe.epochs=3)"));
        }
        Ok(Override {
            path: path.to_string(),
            value: value.to_string(),
        })
    }
}

/// One condition of an experiment: an ordinary plan and where it sits in the sweep.
#[derive(Clone, Debug)]
pub struct Condition {
    /// Position in the sweep, from 0, in the order `psyrun plan` lists them.
    pub index: usize,
    /// Stable identifier: the first 12 hex digits of the SHA-256 of the plan's RON
    /// ([`condition_id`]).
    pub id: String,
    /// The swept settings' values in this condition, `(path, value as source text)`, in the
    /// sweep's order; empty for an experiment without a sweep.
    pub values: Vec<(String, String)>,
    /// The plan of this condition.
    pub plan: Plan,
}

impl Condition {
    /// `backbone.cut=layer1 seed=0`, or `(single condition)` without a sweep.
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            return "(single condition)".to_string();
        }
        self.values
            .iter()
            .map(|(p, v)| format!("{p}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A source file an experiment was built from (the file itself and every import).
#[derive(Clone, Debug)]
pub struct SourceRecord {
    /// The path as resolved (relative to the working directory when the top file's was).
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// The file's text.
    pub text: String,
}

/// The result of [`compile_experiment`].
#[derive(Debug)]
pub struct Compiled {
    /// Every condition, present only when no condition has an error.
    pub conditions: Option<Vec<Condition>>,
    /// Errors and warnings of all conditions (each names its condition when there are
    /// several), with their sources attached.
    pub diags: Vec<Diag>,
    /// The files read, the top file first.
    pub sources: Vec<SourceRecord>,
}

impl Compiled {
    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diag::is_error)
    }
}

/// The condition identifier of a plan: the first 12 hex digits of the SHA-256 of its RON.
pub fn condition_id(plan: &Plan) -> String {
    let digest = Sha256::digest(super::to_ron(plan).as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Compiles an experiment file with its imports, `extends`, `overrides` and sweep into its
/// conditions, with files checked as [`compile_checked`](super::compile_checked) checks them.
pub fn compile_experiment(file: &SourceFile, path: &Path, overrides: &[Override]) -> Compiled {
    // Single-condition implementation; imports, overrides and sweeps come in issue 14.
    let Lowered { plan, mut diags } = super::compile_checked(file, path);
    if !overrides.is_empty() {
        diags.push(Diag::error(
            crate::diag::Code::PlanUnknownSetting,
            "--set overrides are not read yet (issue 14)",
        ));
    }
    let conditions = match plan {
        Some(plan) if overrides.is_empty() => Some(vec![Condition {
            index: 0,
            id: condition_id(&plan),
            values: Vec::new(),
            plan,
        }]),
        _ => None,
    };
    let sources = vec![SourceRecord {
        path: path.to_path_buf(),
        sha256: Sha256::digest(file.text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        text: file.text.to_string(),
    }];
    Compiled {
        conditions,
        diags,
        sources,
    }
}
