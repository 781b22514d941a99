//! Lowering: [`Ast`](crate::syntax::ast::Ast) → [`Plan`]. All meaning lives here: catalog
//! look-ups, generators, defaults, ranges, did-you-mean, cross-checks and warnings. Every
//! independent problem is reported in one pass.

pub mod design;
mod lower;
pub mod sidecar;
mod spans;
pub mod sweep;
mod text;
pub mod tokens;
mod types;
mod values;

pub use lower::{lower, Lowered, CLIP_MEAN, CLIP_STD, DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD};
pub use spans::{Setting, Spans};
pub use types::*;

use crate::source::SourceFile;
use std::path::Path;
use values::FileBase;

/// Parses and lowers a source file. Diagnostics come back with the source attached,
/// warnings included; `plan` is `Some` only when there is no error.
pub fn compile(file: &SourceFile) -> Lowered {
    compile_with(file, None)
}

/// [`compile`], and checks that the files the experiment names (`weights "…"`, `backbone
/// torchscript "…"`) are regular files psyrun can open, resolved as a run resolves them:
/// relative to the folder of `path`, the experiment file's path as given. A file that is not
/// is an error, `psy::plan::missing_file`, naming the resolved path. For
/// [`STDIN_PATH`](crate::source::STDIN_PATH) only absolute paths are checked (a relative one
/// would be taken from `/dev`). `psyrun check` and `psyrun plan` compile this way; a run
/// reports an unreadable file itself (`psy::run::weights_file`, `psy::run::torchscript`).
pub fn compile_checked(file: &SourceFile, path: &Path) -> Lowered {
    let base = FileBase {
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        relative: path != Path::new(crate::source::STDIN_PATH),
    };
    sweep::compile_one(file, path, Some(base))
}

/// Imports are read relative to the file's name (its path as given); a file that sweeps
/// several conditions is an error here (see [`sweep::compile_experiment`]).
fn compile_with(file: &SourceFile, files: Option<FileBase>) -> Lowered {
    sweep::compile_one(file, Path::new(&file.name), files)
}

/// The plan as RON, the format `psyrun plan` prints and every run saves.
pub fn to_ron(plan: &Plan) -> String {
    let config = ron::ser::PrettyConfig::new()
        .indentor("  ".to_string())
        .struct_names(true);
    // Serialising plain data with derived impls cannot fail.
    let mut s = ron::ser::to_string_pretty(plan, config).unwrap_or_else(|e| format!("/* {e} */"));
    s.push('\n');
    s
}

/// The plan as JSON (`psyrun plan --format json`).
pub fn to_json(plan: &Plan) -> String {
    let mut s =
        serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// The closest name to a likely typo, for did-you-mean help outside the planner.
pub fn suggest_name<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    values::suggest(word, names.iter().copied())
}
