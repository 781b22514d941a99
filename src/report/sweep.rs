//! Sweeps: the folder of an experiment's conditions, what each condition's state is, and
//! the results of the sweep as a whole (issue 14).
//!
//! A sweep folder holds:
//!
//! | path | content |
//! |---|---|
//! | `sweep.json` | the experiment, the command line, the sources with their hashes, each condition's index, id, values and status ([`SweepManifest`]) |
//! | `sources/` | a copy of every source file, laid out as they were (the conditions run from it) |
//! | `conditions/<id>/` | one ordinary run folder per condition |
//! | `status/<id>.json` | what the last attempt at a condition did ([`Attempt`]) |
//! | `logs/<id>.log` | every attempt's output, appended |
//! | `sweep_csf.csv`, `sweep_thresholds.csv` | the complete conditions' `csf.csv` and `thresholds.csv`, stacked, with the condition's columns first ([`write_results`]) |
//! | `sweep_csf.png`/`.svg`, `sweep_peaks.png`/`.svg` | the CSFs overlaid; peak sensitivity and peak frequency against the first swept setting |
//! | `slurm/` | with `--slurm`: `job.sh` and the tasks' logs |
//!
//! The condition folders are ordinary run folders: whether a condition is done is read from
//! its folder ([`folder_state`]), never from a record that a killed process could leave
//! wrong. Every file is written with [`write_atomic`].

use super::{plot, write_atomic, INCOMPLETE};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The sweep's description, in the sweep folder.
pub const SWEEP_JSON: &str = "sweep.json";

/// `sweep.json`'s layout version.
pub const SWEEP_FORMAT: u32 = 1;

/// The combined files a sweep writes into its folder, in the order [`write_results`]
/// writes them.
pub const SWEEP_FILES: [&str; 6] = [
    "sweep_csf.csv",
    "sweep_thresholds.csv",
    "sweep_csf.png",
    "sweep_csf.svg",
    "sweep_peaks.png",
    "sweep_peaks.svg",
];

/// `sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepManifest {
    /// [`SWEEP_FORMAT`].
    pub format: u32,
    /// The experiment's name (every condition's).
    pub experiment: String,
    /// psyrun's version that wrote this file.
    pub psyrun_version: String,
    /// When the folder was made, RFC 3339 UTC.
    pub created: String,
    /// When this file was last written.
    pub updated: String,
    /// The command line of the `psyrun sweep` that last wrote it, program first.
    pub command_line: Vec<String>,
    /// The experiment file as given.
    pub file: String,
    /// Its copy, relative to the sweep folder (`sources/…`): what the conditions run.
    pub copy: String,
    /// Every source file (the experiment and its imports).
    pub sources: Vec<SweepSource>,
    /// The `--set PATH=VALUE` overrides, as given.
    pub overrides: Vec<String>,
    /// `--threads` for every condition, if given.
    pub threads: Option<u16>,
    /// The swept settings' paths, in the sweep's order (the condition columns).
    pub swept: Vec<String>,
    /// Every condition.
    pub conditions: Vec<SweepCondition>,
    /// The Slurm job, when the sweep was submitted with `--slurm`.
    pub slurm: Option<SlurmRecord>,
}

/// A source file of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSource {
    /// The path it was read from.
    pub path: String,
    /// Its copy, relative to the sweep folder.
    pub copy: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// One condition in `sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepCondition {
    /// Position in the sweep, from 1 (as `psyrun plan` and `psyrun run --condition` count).
    pub index: usize,
    /// The plan's identifier (12 hex digits of its hash).
    pub id: String,
    /// The swept settings' values.
    pub values: Vec<SweptValue>,
    /// The run folder, relative to the sweep folder (`conditions/<id>`).
    pub folder: String,
    /// Where it stands, as last seen by `psyrun sweep` or `psyrun collect`.
    pub status: Status,
    /// The exit status of the last attempt that ended, if it failed or was interrupted.
    pub exit: Option<i32>,
    /// The log of its attempts, relative to the sweep folder.
    pub log: String,
    /// Whether its backbone is a TorchScript module (whose run fills in the plan's shapes,
    /// so that the folder's `plan.ron` does not hash to the id).
    #[serde(default)]
    pub torchscript: bool,
}

impl SweepCondition {
    /// `backbone.cut=layer2 seed=1`, or `(single condition)`.
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            return "(single condition)".to_string();
        }
        self.values
            .iter()
            .map(|v| format!("{}={}", v.path, v.value))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A swept setting's value in one condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweptValue {
    /// The setting's path.
    pub path: String,
    /// The value as source text.
    pub value: String,
}

/// Where a condition stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started.
    Pending,
    /// An attempt is running (or was killed without a word: its folder tells).
    Running,
    /// Finished: its folder holds every result.
    Complete,
    /// Started and stopped (interrupted or killed); resumable.
    Incomplete,
    /// The last attempt failed; its log says why.
    Failed,
}

impl Status {
    /// The word for it (as in `sweep.json`).
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Complete => "complete",
            Status::Incomplete => "incomplete",
            Status::Failed => "failed",
        }
    }
}

/// The Slurm job of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlurmRecord {
    /// The job id `sbatch --parsable` answered; `None` for `--dry-run`.
    pub job_id: Option<String>,
    /// The job script, relative to the sweep folder.
    pub script: String,
    /// Array tasks.
    pub tasks: usize,
    /// Conditions per task.
    pub per_task: usize,
    /// When it was submitted, RFC 3339 UTC.
    pub submitted: Option<String>,
}

impl SlurmRecord {
    /// The array task (from 0) that runs condition `index` (from 1).
    pub fn task_of(&self, index: usize) -> usize {
        index.saturating_sub(1) / self.per_task.max(1)
    }
}

/// What an attempt at a condition did (`status/<id>.json`): written when it starts and when
/// it ends, by whichever process ran it (a local sweep or a Slurm task).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The condition's id.
    pub id: String,
    /// Its index (from 1).
    pub index: usize,
    /// `running` while it runs, then `complete`, `incomplete` (stopped by a signal) or
    /// `failed`.
    pub status: Status,
    /// The child's exit status, once it ended (`None` when a signal killed it).
    pub exit: Option<i32>,
    /// The host it ran on.
    pub host: String,
    /// When it started, RFC 3339 UTC.
    pub started: String,
    /// When it ended.
    pub finished: Option<String>,
    /// Wall-clock seconds.
    pub seconds: Option<f64>,
    /// The command it ran, program first.
    pub command: Vec<String>,
}

impl SweepManifest {
    /// Reads `DIR/sweep.json`.
    pub fn read(dir: &Path) -> io::Result<SweepManifest> {
        let path = dir.join(SWEEP_JSON);
        let text = fs::read_to_string(&path)?;
        serde_json::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` is not a psyrun sweep.json: {e}", path.display()),
            )
        })
    }

    /// Writes `DIR/sweep.json` atomically (pretty JSON).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let mut json = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        json.push('\n');
        write_atomic(dir.join(SWEEP_JSON), json.as_bytes())
    }

    /// The condition with this index or id.
    pub fn condition(&self, which: &str) -> Option<&SweepCondition> {
        self.conditions
            .iter()
            .find(|c| c.id == which || c.index.to_string() == which)
    }
}

/// The time now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    super::rfc3339(chrono::Utc::now())
}

/// The time now as a folder name, `YYYYmmdd-HHMMSS` UTC.
pub fn now_stamp() -> String {
    chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string()
}

/// Writes `status/<id>.json`.
pub fn write_attempt(dir: &Path, attempt: &Attempt) -> io::Result<()> {
    let folder = dir.join("status");
    fs::create_dir_all(&folder)?;
    let mut json = serde_json::to_string_pretty(attempt).map_err(io::Error::other)?;
    json.push('\n');
    write_atomic(folder.join(format!("{}.json", attempt.id)), json.as_bytes())
}

/// Reads `status/<id>.json`, if there is a readable one.
pub fn read_attempt(dir: &Path, id: &str) -> Option<Attempt> {
    let text = fs::read_to_string(dir.join("status").join(format!("{id}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// What a condition's run folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderState {
    /// No folder, or an empty one.
    Missing,
    /// A finished run of this very plan.
    Complete,
    /// An interrupted or killed run (`INCOMPLETE`, with `plan.ron` and `manifest.json`):
    /// `psyrun run --resume` continues it.
    Resumable,
    /// A run killed before it held its plan and manifest: nothing measured, nothing to
    /// resume (it is started again).
    Unstarted,
    /// Something else: a finished run of another plan, or files that are no run.
    Foreign,
}

/// The state of the run folder `folder` of condition `id`. A finished run counts as this
/// condition's when its `plan.ron` hashes to `id` (the id is the hash of the plan); with
/// `derived_in_run` (a TorchScript backbone, whose run fills in the plan's shapes) any
/// finished run counts.
pub fn folder_state(folder: &Path, id: &str, derived_in_run: bool) -> FolderState {
    let Ok(mut entries) = fs::read_dir(folder) else {
        return FolderState::Missing;
    };
    if entries.next().is_none() {
        return FolderState::Missing;
    }
    let has = |name: &str| folder.join(name).is_file();
    if has(INCOMPLETE) {
        return if has("plan.ron") && has("manifest.json") {
            FolderState::Resumable
        } else {
            FolderState::Unstarted
        };
    }
    let complete = fs::read_to_string(folder.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("complete").and_then(serde_json::Value::as_bool))
        == Some(true);
    let Ok(plan) = fs::read(folder.join("plan.ron")) else {
        return FolderState::Foreign;
    };
    if !complete {
        return FolderState::Foreign;
    }
    if derived_in_run || super::sha256_bytes(&plan).starts_with(id) {
        FolderState::Complete
    } else {
        FolderState::Foreign
    }
}

/// A condition's status from its folder and its last attempt: the folder decides
/// (complete, resumable), the attempt says why a condition without results stands where it
/// does (failed, running).
pub fn status_of(state: FolderState, attempt: Option<&Attempt>) -> Status {
    match (state, attempt.map(|a| a.status)) {
        (FolderState::Complete, _) => Status::Complete,
        (_, Some(Status::Failed)) | (FolderState::Foreign, _) => Status::Failed,
        (_, Some(Status::Running)) => Status::Running,
        (FolderState::Resumable, _) => Status::Incomplete,
        (_, Some(Status::Incomplete)) => Status::Incomplete,
        _ => Status::Pending,
    }
}

/// The last `n` lines of a file (for a failed condition's log), or nothing.
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// One complete condition as the combined files see it.
struct Done<'a> {
    condition: &'a SweepCondition,
    csf: String,
    thresholds: String,
}

/// A CSV cell as the run's files write it: quoted when it holds a comma, a quote or a line
/// break.
fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits one CSV line into cells (RFC 4180 quoting; the files have no line breaks in cells
/// but file names).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => cells.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    cells.push(cur);
    cells
}

/// The condition columns of the combined tables: `condition`, then `sweep.<path>` for each
/// swept setting (the condition's id is the last column of every run's own rows).
pub fn condition_columns(swept: &[String]) -> Vec<String> {
    let mut cols = vec!["condition".to_string()];
    cols.extend(swept.iter().map(|p| format!("sweep.{p}")));
    cols
}

/// Stacks the conditions' copies of one CSV file (`name`): the condition's columns, then
/// the file's own (which end with the run's identity). Every condition's file must have the
/// same header.
fn stack<'a>(
    manifest: &SweepManifest,
    done: &[Done<'a>],
    name: &str,
    body: impl for<'b> Fn(&'b Done<'a>) -> &'b str,
) -> io::Result<String> {
    let mut out = String::new();
    let cols = condition_columns(&manifest.swept).join(",");
    let mut header: Option<&str> = None;
    for d in done {
        let text = body(d);
        let mut lines = text.lines();
        let h = lines.next().unwrap_or("");
        match header {
            None => {
                header = Some(h);
                let _ = writeln!(out, "{cols},{h}");
            }
            Some(first) if first != h => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "condition {} ({})'s {name} has other columns than the first \
                         condition's (made by another psyrun version?)",
                        d.condition.index, d.condition.id
                    ),
                ))
            }
            Some(_) => {}
        }
        let mut prefix = d.condition.index.to_string();
        for path in &manifest.swept {
            let v = d
                .condition
                .values
                .iter()
                .find(|v| &v.path == path)
                .map_or("", |v| v.value.as_str());
            prefix.push(',');
            prefix.push_str(&cell(v));
        }
        for line in lines.filter(|l| !l.is_empty()) {
            let _ = writeln!(out, "{prefix},{line}");
        }
    }
    if header.is_none() {
        // No condition finished: the condition columns alone say what the file will hold.
        let _ = writeln!(out, "{cols}");
    }
    Ok(out)
}

/// What [`write_results`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepResults {
    /// The complete conditions' indices, in order.
    pub complete: Vec<usize>,
    /// The files written, in the sweep folder.
    pub files: Vec<PathBuf>,
}

/// Writes the combined files of the complete conditions (those whose folder is
/// [`FolderState::Complete`], in the sweep's order) into the sweep folder `dir`:
/// `sweep_csf.csv`, `sweep_thresholds.csv`, `sweep_csf.png`/`.svg` (the CSFs overlaid),
/// `sweep_peaks.png`/`.svg` (peak sensitivity and frequency against the first swept
/// setting). `complete` says which conditions are complete (the caller has looked).
pub fn write_results(
    dir: &Path,
    manifest: &SweepManifest,
    complete: &[usize],
) -> io::Result<SweepResults> {
    let mut done = Vec::new();
    for c in manifest
        .conditions
        .iter()
        .filter(|c| complete.contains(&c.index))
    {
        let folder = dir.join(&c.folder);
        let read = |name: &str| {
            fs::read_to_string(folder.join(name)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot read `{}`: {e}", folder.join(name).display()),
                )
            })
        };
        done.push(Done {
            condition: c,
            csf: read("csf.csv")?,
            thresholds: read("thresholds.csv")?,
        });
    }
    let csf = stack(manifest, &done, "csf.csv", |d| &d.csf)?;
    let thresholds = stack(manifest, &done, "thresholds.csv", |d| &d.thresholds)?;
    let curves: Vec<plot::SweepCurve> = done.iter().map(curve).collect();
    let first = manifest.swept.first().cloned();
    let csf_plot = plot::sweep_csf_plot(&manifest.experiment, &curves)?;
    let peaks_plot = plot::sweep_peaks_plot(&manifest.experiment, first.as_deref(), &curves)?;
    let mut files = Vec::new();
    for (name, bytes) in [
        ("sweep_csf.csv", csf.as_bytes()),
        ("sweep_thresholds.csv", thresholds.as_bytes()),
        ("sweep_csf.png", &csf_plot.png[..]),
        ("sweep_csf.svg", csf_plot.svg.as_bytes()),
        ("sweep_peaks.png", &peaks_plot.png[..]),
        ("sweep_peaks.svg", peaks_plot.svg.as_bytes()),
    ] {
        let path = dir.join(name);
        write_atomic(&path, bytes)?;
        files.push(path);
    }
    Ok(SweepResults {
        complete: done.iter().map(|d| d.condition.index).collect(),
        files,
    })
}

/// A condition's CSF as the comparison plots draw it, read from its `csf.csv` by column
/// name.
fn curve(d: &Done<'_>) -> plot::SweepCurve {
    let mut lines = d.csf.lines();
    let header = split_csv_line(lines.next().unwrap_or(""));
    let col = |name: &str| header.iter().position(|h| h == name);
    let (f, s, c) = (col("frequency_cpi"), col("sensitivity"), col("censored"));
    let mut points = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let cells = split_csv_line(line);
        let num = |i: Option<usize>| {
            i.and_then(|i| cells.get(i))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(x), Some(y)) = (num(f), num(s)) {
            let censored = c.and_then(|i| cells.get(i)).is_some_and(|v| !v.is_empty());
            points.push((x, y, censored));
        }
    }
    plot::SweepCurve {
        label: d.condition.label(),
        first: d.condition.values.first().map(|v| v.value.clone()),
        rest: d
            .condition
            .values
            .iter()
            .skip(1)
            .map(|v| format!("{}={}", v.path, v.value))
            .collect::<Vec<_>>()
            .join(" "),
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(swept: &[&str], conditions: Vec<SweepCondition>) -> SweepManifest {
        SweepManifest {
            format: SWEEP_FORMAT,
            experiment: "e".into(),
            psyrun_version: "0".into(),
            created: "t".into(),
            updated: "t".into(),
            command_line: vec![],
            file: "e.psy".into(),
            copy: "sources/e.psy".into(),
            sources: vec![],
            overrides: vec![],
            threads: None,
            swept: swept.iter().map(|s| s.to_string()).collect(),
            conditions,
            slurm: None,
        }
    }

    fn condition(index: usize, values: &[(&str, &str)]) -> SweepCondition {
        let id = format!("{index:012x}");
        SweepCondition {
            index,
            folder: format!("conditions/{id}"),
            log: format!("logs/{id}.log"),
            id,
            values: values
                .iter()
                .map(|(p, v)| SweptValue {
                    path: p.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            status: Status::Pending,
            exit: None,
            torchscript: false,
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("psyrun-sweep-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const CSF_HEADER: &str = "frequency_cpi,threshold_contrast,sensitivity,steps,stopped,ci_low,ci_high,sensitivity_ci_low,sensitivity_ci_high,method,censored,censored_repeats,repeats,trials,experiment,architecture,cut,weights,pooling,precision,seed,reference,condition_id";

    fn fake_run(dir: &Path, c: &SweepCondition, cut: &str, sens: [f64; 2]) {
        let f = dir.join(&c.folder);
        fs::create_dir_all(&f).unwrap();
        let row = |freq: u32, s: f64, cens: &str| {
            format!("{freq},{},{s},4,converged,,,,,bisection,{cens},0,1,64,e,resnet18,{cut},\"w,1.pth\",none,fp32,0,0,{}\n", 1.0 / s, c.id)
        };
        let csf = format!(
            "{CSF_HEADER}\n{}{}",
            row(2, sens[0], ""),
            row(4, sens[1], "below_range")
        );
        fs::write(f.join("csf.csv"), &csf).unwrap();
        fs::write(
            f.join("thresholds.csv"),
            format!(
                "frequency_cpi,repeat,experiment,condition_id\n2,0,e,{}\n",
                c.id
            ),
        )
        .unwrap();
    }

    #[test]
    fn tables_stack_complete_conditions_with_their_columns_first() {
        let dir = scratch("tables");
        let conds = vec![
            condition(1, &[("backbone.cut", "layer1"), ("seed", "0")]),
            condition(2, &[("backbone.cut", "layer2"), ("seed", "0")]),
            condition(3, &[("backbone.cut", "layer1"), ("seed", "1")]),
        ];
        let m = manifest(&["backbone.cut", "seed"], conds.clone());
        fake_run(&dir, &conds[0], "layer1", [2.0, 8.0]);
        fake_run(&dir, &conds[2], "layer1", [3.0, 5.0]);
        // Condition 1's folder exists but is not given as complete: it is left out.
        fake_run(&dir, &conds[1], "layer2", [9.0, 9.0]);
        let r = write_results(&dir, &m, &[1, 3]).unwrap();
        assert_eq!(r.complete, [1, 3]);
        assert!(!fs::read_to_string(dir.join("sweep_csf.csv"))
            .unwrap()
            .contains("layer2,"));
        let csf = fs::read_to_string(dir.join("sweep_csf.csv")).unwrap();
        let lines: Vec<&str> = csf.lines().collect();
        assert_eq!(
            lines[0],
            format!("condition,sweep.backbone.cut,sweep.seed,{CSF_HEADER}")
        );
        assert_eq!(lines.len(), 5, "two conditions × two frequencies: {csf}");
        assert!(
            lines[1].starts_with("1,layer1,0,2,0.5,2,") && lines[1].ends_with(",000000000001"),
            "{}",
            lines[1]
        );
        assert!(
            lines[4].starts_with("3,layer1,1,4,0.2,5,") && lines[4].ends_with(",000000000003"),
            "{}",
            lines[4]
        );
        // Quoted cells stay quoted, and every row has every column.
        let width = split_csv_line(lines[0]).len();
        for l in &lines[1..] {
            assert_eq!(split_csv_line(l).len(), width, "{l}");
            assert!(l.contains("\"w,1.pth\""));
        }
        let th = fs::read_to_string(dir.join("sweep_thresholds.csv")).unwrap();
        assert_eq!(
            th,
            "condition,sweep.backbone.cut,sweep.seed,frequency_cpi,repeat,experiment,condition_id\n\
             1,layer1,0,2,0,e,000000000001\n3,layer1,1,2,0,e,000000000003\n"
        );
        for f in SWEEP_FILES {
            assert!(dir.join(f).is_file(), "{f}");
        }
        let svg = fs::read_to_string(dir.join("sweep_csf.svg")).unwrap();
        assert!(
            svg.contains("backbone.cut=layer1 seed=1"),
            "legend names the values"
        );
        let peaks = fs::read_to_string(dir.join("sweep_peaks.svg")).unwrap();
        assert!(peaks.contains("layer1") && peaks.contains("backbone.cut"));
        // PSYRUN_KEEP_SWEEP=1 keeps the figures to look at.
        if std::env::var_os("PSYRUN_KEEP_SWEEP").is_none() {
            let _ = fs::remove_dir_all(&dir);
        } else {
            eprintln!("kept {}", dir.display());
        }
    }

    #[test]
    fn tables_without_a_complete_condition_hold_the_condition_columns() {
        let dir = scratch("empty");
        let m = manifest(&["seed"], vec![condition(1, &[("seed", "0")])]);
        write_results(&dir, &m, &[]).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("sweep_csf.csv")).unwrap(),
            "condition,sweep.seed\n"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn conditions_with_other_columns_are_refused_by_name() {
        let dir = scratch("columns");
        let conds = vec![condition(1, &[]), condition(2, &[])];
        let m = manifest(&[], conds.clone());
        fake_run(&dir, &conds[0], "layer1", [2.0, 8.0]);
        fake_run(&dir, &conds[1], "layer1", [2.0, 8.0]);
        fs::write(
            dir.join(&conds[1].folder).join("csf.csv"),
            "frequency_cpi\n2\n",
        )
        .unwrap();
        let e = write_results(&dir, &m, &[1, 2]).unwrap_err();
        assert!(e.to_string().contains("condition 2"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn folder_states() {
        let dir = scratch("states");
        let f = dir.join("c");
        assert_eq!(folder_state(&f, "x", false), FolderState::Missing);
        fs::create_dir_all(&f).unwrap();
        assert_eq!(folder_state(&f, "x", false), FolderState::Missing);
        fs::write(f.join(INCOMPLETE), "").unwrap();
        assert_eq!(folder_state(&f, "x", false), FolderState::Unstarted);
        fs::write(f.join("plan.ron"), "plan").unwrap();
        fs::write(f.join("manifest.json"), "{\"complete\": false}").unwrap();
        assert_eq!(folder_state(&f, "x", false), FolderState::Resumable);
        fs::remove_file(f.join(INCOMPLETE)).unwrap();
        fs::write(f.join("manifest.json"), "{\"complete\": true}").unwrap();
        let id = &crate::report::sha256_bytes(b"plan")[..12];
        assert_eq!(folder_state(&f, id, false), FolderState::Complete);
        assert_eq!(
            folder_state(&f, "000000000000", false),
            FolderState::Foreign
        );
        assert_eq!(
            folder_state(&f, "000000000000", true),
            FolderState::Complete
        );
        fs::write(f.join("manifest.json"), "{\"complete\": false}").unwrap();
        assert_eq!(folder_state(&f, id, false), FolderState::Foreign);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn status_comes_from_the_folder_first() {
        let attempt = |status| Attempt {
            id: "x".into(),
            index: 0,
            status,
            exit: Some(3),
            host: "h".into(),
            started: "t".into(),
            finished: None,
            seconds: None,
            command: vec![],
        };
        let failed = attempt(Status::Failed);
        assert_eq!(
            status_of(FolderState::Complete, Some(&failed)),
            Status::Complete
        );
        assert_eq!(
            status_of(FolderState::Resumable, Some(&failed)),
            Status::Failed
        );
        assert_eq!(status_of(FolderState::Resumable, None), Status::Incomplete);
        assert_eq!(status_of(FolderState::Missing, None), Status::Pending);
        assert_eq!(status_of(FolderState::Foreign, None), Status::Failed);
        let running = attempt(Status::Running);
        assert_eq!(
            status_of(FolderState::Resumable, Some(&running)),
            Status::Running
        );
    }

    #[test]
    fn csv_lines_split_as_written() {
        assert_eq!(
            split_csv_line("a,\"b,c\",,\"d\"\"e\""),
            ["a", "b,c", "", "d\"e"]
        );
        let slurm = SlurmRecord {
            job_id: None,
            script: "slurm/job.sh".into(),
            tasks: 2,
            per_task: 2,
            submitted: None,
        };
        assert_eq!(
            (slurm.task_of(0), slurm.task_of(1), slurm.task_of(3)),
            (0, 0, 1)
        );
    }
}
