//! psyrun's integration tests: one binary (autotests = false) with a module per area.

mod cli;
mod docs;
#[cfg(feature = "torch")]
mod features;
mod robustness;
#[cfg(feature = "torch")]
mod run;
mod snapshots;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path relative to the repository root, as diagnostics should show it.
pub fn rel(path: &Path) -> PathBuf {
    path.strip_prefix(root()).unwrap_or(path).to_path_buf()
}
