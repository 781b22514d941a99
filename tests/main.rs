//! psyrun's integration tests: one binary (autotests = false) with a module per area.

mod cli;
#[cfg(feature = "torch")]
mod design;
mod dev;
mod docs;
#[cfg(feature = "torch")]
mod features;
#[cfg(feature = "torch")]
mod known;
#[cfg(feature = "torch")]
mod outputs;
mod robustness;
#[cfg(feature = "torch")]
mod run;
mod snapshots;
#[cfg(feature = "torch")]
mod sweep;

use std::path::{Path, PathBuf};

/// The repository root (these tests belong to `crates/psyrun-cli`).
pub fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .canonicalize()
        .expect("the repository root exists")
}

/// A path relative to the repository root, as diagnostics should show it.
pub fn rel(path: &Path) -> PathBuf {
    path.strip_prefix(root()).unwrap_or(path).to_path_buf()
}
