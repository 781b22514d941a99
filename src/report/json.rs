//! `results.json`: a run's results for programs, the same content as the CSV files and the
//! manifest in one document.

use super::{CsfPoint, EpochRecord, FrequencyResult, Identity, Manifest, Results};
use serde::Serialize;
use std::io;

/// The version of `results.json`'s layout (`format`); raised when a field changes meaning
/// or disappears (new fields may appear without it).
pub const RESULTS_FORMAT: u32 = 1;

#[derive(Serialize)]
struct ResultsJson<'a> {
    format: u32,
    identity: Identity,
    complete: bool,
    csf: &'a [CsfPoint],
    staircases: &'a [FrequencyResult],
    training: &'a [EpochRecord],
    warnings: &'a [String],
    manifest: &'a Manifest,
}

/// `results.json` (pretty JSON, ending in a newline): `format`, `identity` (the CSV files'
/// identifying columns), `complete`, `csf` (one point per frequency), `staircases` (per
/// frequency and repeat: every step, the procedure's and the fit's thresholds, the reported
/// threshold and its censoring), `training` (per epoch and repeat), `warnings` and the
/// `manifest`. Numbers are written in their shortest round-trip form; a value that is not
/// finite (an infinite sensitivity) is `null`.
pub fn results_json(results: &Results, manifest: &Manifest) -> io::Result<String> {
    let doc = ResultsJson {
        format: RESULTS_FORMAT,
        identity: Identity::of(results),
        complete: manifest.complete,
        csf: &results.csf,
        staircases: &results.staircases,
        training: &results.training,
        warnings: &manifest.warnings,
        manifest,
    };
    let mut json = serde_json::to_string_pretty(&doc).map_err(io::Error::other)?;
    json.push('\n');
    Ok(json)
}
