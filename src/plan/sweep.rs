//! Experiments as a set of conditions (issue 14): what `import`, `extends`, `--set` overrides
//! and `sweep { … }` blocks resolve to. Every command that compiles an experiment for a run
//! goes through [`compile_experiment`]; a file without a sweep is one condition.
//!
//! This module is the seam between the language (imports, overrides, sweeps) and the runner
//! (`psyrun sweep`, Slurm, `psyrun collect`): the runner only sees [`Compiled`].
//!
//! How it works, in order:
//! 1. the file and its imports are read and parsed, each given its own range of span
//!    offsets (the top file from 0, so that a file without imports keeps its spans): one
//!    span says in which file it is, and the syntax trees of several files can be merged;
//! 2. the top file's one experiment is resolved: `extends` merges it into its base, block by
//!    block;
//! 3. the `--set` overrides are applied (each parsed from a pseudo-source named `--set`);
//! 4. the sweep blocks are taken out and expanded into rows of values;
//! 5. each condition (the experiment with one row applied) is lowered as a file without
//!    these features is; the diagnostics of all conditions are merged (one reported by
//!    every condition is reported once; one reported by some names them);
//! 6. every diagnostic and the plans' run-time [`Spans`] are mapped back to the file they
//!    point into.

use super::lower::{lower_experiment, setting_paths, the_experiment};
use super::spans::Spans;
use super::values::{suggest, FileBase};
use super::{Lowered, Plan};
use crate::diag::{Code, Diag, Span};
use crate::source::SourceFile;
use crate::syntax::ast::{Ast, Block, Item, Name, Setting, Shift, Value, ValueKind};
use std::path::{Component, Path, PathBuf};

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

impl std::fmt::Display for Override {
    /// `PATH=VALUE`, as `--set` takes it (and as the manifest records it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.path, self.value)
    }
}

/// One condition of an experiment: an ordinary plan and where it sits in the sweep.
#[derive(Clone, Debug)]
pub struct Condition {
    /// Position in the sweep, from 0, in the order `psyrun plan` lists them (`psyrun plan`,
    /// `check` and `--condition` count from 1: they show `index + 1`).
    pub index: usize,
    /// Stable identifier: the first 12 hex digits of the SHA-256 of the plan's RON
    /// ([`condition_id`]).
    pub id: String,
    /// The swept settings' values in this condition, `(path, value as source text)`, in the
    /// sweep's order; empty for an experiment without a sweep.
    pub values: Vec<(String, String)>,
    /// The plan of this condition.
    pub plan: Plan,
    /// The warnings of this condition alone, with their sources attached and without the
    /// "in condition K of N" note that [`Compiled::diags`] adds (what a run of this one
    /// condition reports and records).
    pub warnings: Vec<Diag>,
}

impl Condition {
    /// `backbone.cut=layer1 seed=0`, or `(single condition)` without a sweep.
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            return "(single condition)".to_string();
        }
        values_label(&self.values)
    }
}

fn values_label(values: &[(String, String)]) -> String {
    values
        .iter()
        .map(|(p, v)| format!("{p}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
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
    /// The path relative to the top file's folder, without `..` (a `..` is written `__`):
    /// where a run folder's `sources/` keeps its copy. The top file is its file name.
    pub relative: PathBuf,
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

    /// The condition `which` names: its index as `psyrun plan` lists it (from 1) or its id
    /// (or a prefix of it, at least 4 digits, that only one condition has). `None` when
    /// there are no conditions (the experiment has errors); an error
    /// (`psy::plan::condition`) when nothing or several match.
    pub fn condition(&self, which: &str) -> Option<Result<&Condition, Diag>> {
        let conditions = self.conditions.as_ref()?;
        Some(select(conditions, which))
    }
}

/// The condition `which` names among `conditions` (see [`Compiled::condition`]).
pub fn select<'a>(conditions: &'a [Condition], which: &str) -> Result<&'a Condition, Diag> {
    let which = which.trim();
    let n = conditions.len();
    let help = format!(
        "give the index (1 to {n}) or the id of a condition; `psyrun plan FILE` lists them"
    );
    if let Ok(k) = which.parse::<usize>() {
        if which.len() < 4 || !which.chars().all(|c| c.is_ascii_digit()) || k <= n {
            return match k.checked_sub(1).and_then(|i| conditions.get(i)) {
                Some(c) => Ok(c),
                None => Err(Diag::error(
                    Code::PlanCondition,
                    format!("there is no condition {which}: the experiment has {n}"),
                )
                .with_help(help)),
            };
        }
    }
    let lower = which.to_ascii_lowercase();
    let hits: Vec<&Condition> = if lower.len() >= 4 {
        conditions
            .iter()
            .filter(|c| c.id.starts_with(&lower))
            .collect()
    } else {
        Vec::new()
    };
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(Diag::error(
            Code::PlanCondition,
            format!("no condition has the index or id `{which}`"),
        )
        .with_help(help)),
        many => Err(Diag::error(
            Code::PlanCondition,
            format!(
                "`{which}` is the start of {} condition ids: {}",
                many.len(),
                many.iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_help("give more digits of the id, or the whole id")),
    }
}

/// The condition identifier of a plan: the first 12 hex digits of the SHA-256 of its RON.
///
/// The RON holds what the plan does and nothing of where it was written: spans are not
/// serialised, numbers are written as values (`0.10` and `0.1` are one number), and the
/// file's name and comments are not in the plan. So reformatting or renaming a file keeps
/// its ids (a test checks it); renaming the experiment changes them (its name is in the
/// plan, and in the results).
pub fn condition_id(plan: &Plan) -> String {
    let mut id = crate::report::sha256_bytes(super::to_ron(plan).as_bytes());
    id.truncate(12);
    id
}

/// Most conditions one experiment may sweep.
pub const MAX_CONDITIONS: usize = 10_000;

/// Deepest chain of imports (a file importing a file importing …).
const MAX_IMPORT_DEPTH: usize = 64;

/// Compiles an experiment file with its imports, `extends`, `overrides` and sweep into its
/// conditions, with files checked as [`compile_checked`](super::compile_checked) checks them.
pub fn compile_experiment(file: &SourceFile, path: &Path, overrides: &[Override]) -> Compiled {
    let base = FileBase {
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        relative: path != Path::new(crate::source::STDIN_PATH),
    };
    compile_all(file, path, overrides, Some(base))
}

/// [`compile_experiment`] without checking that the files the experiment names exist: a run
/// reports an unreadable weights or TorchScript file itself, with its own codes
/// (`psy::run::weights_file`, `psy::run::torchscript`), as it did before sweeps.
pub fn compile_for_run(file: &SourceFile, path: &Path, overrides: &[Override]) -> Compiled {
    compile_all(file, path, overrides, None)
}

/// One plan from one file, for [`compile`](super::compile) and
/// [`compile_checked`](super::compile_checked): imports and `extends` are resolved as for
/// [`compile_experiment`]; a file that sweeps several conditions is an error
/// (`psy::plan::condition`) that says to pick one.
pub(crate) fn compile_one(file: &SourceFile, path: &Path, files: Option<FileBase>) -> Lowered {
    let compiled = compile_all(file, path, &[], files);
    let mut diags = compiled.diags;
    let plan = match compiled.conditions {
        Some(mut conditions) if conditions.len() == 1 => conditions.pop().map(|c| c.plan),
        Some(conditions) => {
            diags.push(
                Diag::error(
                    Code::PlanCondition,
                    format!(
                        "`{}` sweeps {} conditions; this needs one",
                        file.name,
                        conditions.len()
                    ),
                )
                .with_help(
                    "pick one with `--set` on each swept path, or run the sweep's conditions \
                     one by one: `psyrun run FILE --condition INDEX|ID`",
                )
                .with_source(file),
            );
            None
        }
        None => None,
    };
    Lowered { plan, diags }
}

fn compile_all(
    file: &SourceFile,
    path: &Path,
    overrides: &[Override],
    files: Option<FileBase>,
) -> Compiled {
    let mut r = Resolver::default();
    let top = r.load(file.clone(), path.to_path_buf(), &mut Vec::new());
    let sources = r.records(path);
    let Some(top) = top else {
        return r.finish(None, sources);
    };
    let psy = r.files[top].ast.header.as_ref().map_or(1, |h| h.version);
    let exp = match the_experiment(&r.files[top].ast) {
        Ok(one) => one.clone(),
        Err(d) => {
            r.push(*d);
            return r.finish(None, sources);
        }
    };
    let Some(mut exp) = r.resolve(top, exp, &mut Vec::new()) else {
        return r.finish(None, sources);
    };
    let mut paths = setting_paths();
    paths.extend(stimulus_paths(&exp));
    for o in overrides {
        r.apply_override(&mut exp, o, &paths);
    }
    // An override or sweep dimension with an error is left out, and the rest is still
    // lowered: every independent problem is reported in one pass. Not so when an import
    // failed: the experiment lacks what it would have brought.
    let dims = r.sweep_dims(&mut exp, &paths);
    if r.incomplete {
        return r.finish(None, sources);
    }
    let rows = match expand(&dims) {
        Ok(rows) => rows,
        Err(d) => {
            r.push(d);
            return r.finish(None, sources);
        }
    };
    let mut conditions = Vec::with_capacity(rows.len());
    let mut per_condition: Vec<Vec<Diag>> = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let mut block = exp.clone();
        let mut values = Vec::new();
        for (setting, v) in row {
            apply(&mut block, &setting.key.text, setting.key.span, v.clone());
            values.push((setting.key.text.clone(), r.value_text(v)));
        }
        let Lowered { plan, diags } = lower_experiment(&block, psy, files.clone());
        let diags: Vec<Diag> = diags.into_iter().map(|d| r.localize(d)).collect();
        let warnings: Vec<Diag> = diags.iter().filter(|d| !d.is_error()).cloned().collect();
        per_condition.push(diags);
        conditions.push(plan.map(|mut plan| {
            r.localize_spans(&mut plan.spans);
            Condition {
                index,
                id: condition_id(&plan),
                values,
                plan,
                warnings,
            }
        }));
    }
    let labels: Vec<String> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|(s, v)| format!("{}={}", s.key.text, r.value_text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    r.diags.extend(merge_diags(per_condition, &labels));
    let conditions: Option<Vec<Condition>> = conditions.into_iter().collect();
    let conditions = conditions.filter(|_| !r.has_errors());
    if let Some(cs) = &conditions {
        r.same_conditions(cs, &dims);
    }
    let conditions = conditions.filter(|_| !r.has_errors());
    r.finish(conditions, sources)
}

/// The diagnostics of every condition as one list: a diagnostic every condition reports
/// once as it is, one that only some report once with a note naming them.
fn merge_diags(per_condition: Vec<Vec<Diag>>, labels: &[String]) -> Vec<Diag> {
    let n = per_condition.len();
    if n == 1 {
        return per_condition.into_iter().next().unwrap_or_default();
    }
    let key = |d: &Diag| {
        format!(
            "{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}",
            d.severity,
            d.code,
            d.message,
            d.primary,
            d.secondary,
            d.help,
            d.source_name()
        )
    };
    let mut seen: Vec<(String, Diag, Vec<usize>)> = Vec::new();
    for (k, diags) in per_condition.into_iter().enumerate() {
        for d in diags {
            let kd = key(&d);
            match seen.iter_mut().find(|(x, _, _)| *x == kd) {
                Some((_, _, ks)) => {
                    if ks.last() != Some(&k) {
                        ks.push(k);
                    }
                }
                None => seen.push((kd, d, vec![k])),
            }
        }
    }
    seen.into_iter()
        .map(|(_, mut d, ks)| {
            if ks.len() < n {
                let note = conditions_note(&ks, n, labels);
                d.help = Some(match d.help.take() {
                    Some(h) => format!("{h}\n{note}"),
                    None => note,
                });
            }
            d
        })
        .collect()
}

/// "in condition 2 of 6: backbone.cut=layer5", "in conditions 2, 5 of 6: …; …".
fn conditions_note(ks: &[usize], n: usize, labels: &[String]) -> String {
    const SHOWN: usize = 8;
    let numbers: Vec<String> = ks.iter().take(SHOWN).map(|k| (k + 1).to_string()).collect();
    let more = if ks.len() > SHOWN {
        format!(" and {} more", ks.len() - SHOWN)
    } else {
        String::new()
    };
    let which: Vec<&str> = ks
        .iter()
        .take(SHOWN)
        .map(|&k| labels.get(k).map_or("", String::as_str))
        .collect();
    format!(
        "in condition{} {}{more} of {n}: {}",
        if ks.len() == 1 { "" } else { "s" },
        numbers.join(", "),
        which.join("; ")
    )
}

/// A swept dimension: rows of `(path, value)`, one per step, from one `sweep` block (the
/// product of its paths, or their zip).
struct Dim {
    rows: Vec<Vec<(Setting, Value)>>,
    /// The `sweep` keyword, for diagnostics about the whole sweep.
    at: Span,
}

/// The product of the dimensions, the first slowest: the condition rows.
fn expand(dims: &[Dim]) -> Result<Vec<Vec<(Setting, Value)>>, Diag> {
    let mut total: usize = 1;
    for d in dims {
        total = total.saturating_mul(d.rows.len());
    }
    if total > MAX_CONDITIONS {
        let mut d = Diag::error(
            Code::PlanBadSweep,
            format!("the sweep makes {total} conditions; at most {MAX_CONDITIONS} are allowed"),
        )
        .with_help("split the experiment into several files, or sweep fewer values");
        if let Some(first) = dims.first() {
            d = d.at(first.at, format!("{total} conditions"));
        }
        return Err(d);
    }
    let mut rows: Vec<Vec<(Setting, Value)>> = vec![Vec::new()];
    for d in dims {
        let mut next = Vec::with_capacity(rows.len() * d.rows.len());
        for row in &rows {
            for step in &d.rows {
                let mut r = row.clone();
                r.extend(step.iter().cloned());
                next.push(r);
            }
        }
        rows = next;
    }
    Ok(rows)
}

/// A file read for the experiment, its syntax tree shifted by `base`.
struct Loaded {
    path: PathBuf,
    /// Where the file's offsets start (see the module's notes).
    base: usize,
    ast: Ast,
    /// Indices (in `Resolver::files`) of the files it imports, in order.
    imports: Vec<usize>,
    /// The canonical path, to find cycles and files imported twice.
    key: PathBuf,
}

/// A text spans can point into: a file or a `--set` pseudo-source.
struct Text {
    file: SourceFile,
    base: usize,
}

#[derive(Default)]
struct Resolver {
    files: Vec<Loaded>,
    /// Every text with offsets: the files, then the `--set` pseudo-sources.
    texts: Vec<Text>,
    next_base: usize,
    diags: Vec<Diag>,
    /// A file could not be read or parsed: an `extends` that names nothing may name an
    /// experiment of that file, so it is not reported.
    incomplete: bool,
}

impl Resolver {
    fn has_errors(&self) -> bool {
        self.diags.iter().any(Diag::is_error)
    }

    /// Adds a diagnostic whose spans are offsets into the texts.
    fn push(&mut self, d: Diag) {
        let d = self.localize(d);
        self.diags.push(d);
    }

    fn finish(
        mut self,
        conditions: Option<Vec<Condition>>,
        sources: Vec<SourceRecord>,
    ) -> Compiled {
        let conditions = conditions.filter(|_| !self.has_errors());
        // A diagnostic without a place shows the top file.
        if let Some(top) = self.texts.first() {
            let top = top.file.clone();
            for d in &mut self.diags {
                if !d.has_source() {
                    *d = d.clone().with_source(&top);
                }
            }
        }
        Compiled {
            conditions,
            diags: self.diags,
            sources,
        }
    }

    fn add_text(&mut self, file: SourceFile) -> usize {
        let base = self.next_base;
        // One byte between texts: the end of one is not the start of the next.
        self.next_base = base + file.text.len() + 1;
        self.texts.push(Text { file, base });
        base
    }

    /// The text `span` points into, and the span within it.
    fn locate(&self, span: Span) -> Option<(&SourceFile, Span)> {
        let i = self.texts.partition_point(|t| t.base <= span.start);
        let t = self.texts.get(i.checked_sub(1)?)?;
        if span.end > t.base + t.file.text.len() || span.end < span.start {
            return None;
        }
        Some((&t.file, Span::new(span.start - t.base, span.end - t.base)))
    }

    /// `d` with its labels moved into the text its primary label points into and that
    /// text attached; a secondary label in another text becomes a line of help
    /// (`note: LABEL (FILE:LINE:COLUMN)`). Unchanged when a source is already attached.
    fn localize(&self, mut d: Diag) -> Diag {
        if d.has_source() {
            return d;
        }
        let Some(primary) = d.primary.clone() else {
            return d;
        };
        let Some((file, span)) = self.locate(primary.span) else {
            return d;
        };
        let file = file.clone();
        d.primary = Some(crate::diag::Label {
            span,
            text: primary.text,
        });
        let mut notes = Vec::new();
        let mut secondary = Vec::new();
        for l in std::mem::take(&mut d.secondary) {
            match self.locate(l.span) {
                Some((f, s))
                    if f.name == file.name && std::sync::Arc::ptr_eq(&f.text, &file.text) =>
                {
                    secondary.push(crate::diag::Label {
                        span: s,
                        text: l.text,
                    })
                }
                Some((f, s)) => {
                    let (line, col) = line_col(&f.text, s.start);
                    notes.push(format!("note: {} ({}:{line}:{col})", l.text, f.name));
                }
                None => {}
            }
        }
        d.secondary = secondary;
        if !notes.is_empty() {
            let notes = notes.join("\n");
            d.help = Some(match d.help.take() {
                Some(h) => format!("{notes}\n{h}"),
                None => notes,
            });
        }
        d.with_source(&file)
    }

    /// The plan's run-time spans moved into their files, each with its file.
    fn localize_spans(&self, spans: &mut Spans) {
        spans.localize(|span| self.locate(span).map(|(f, s)| (s, f.clone())));
    }

    /// A value's text as written, on one line (`[1, 2]`, `layer2`).
    fn value_text(&self, v: &Value) -> String {
        match self.locate(v.span) {
            Some((f, s)) => crate::syntax::fmt::normalize(&f.text[s.start..s.end]),
            None => String::new(),
        }
    }

    /// Reads and parses `file` and, depth first, every file it imports. `chain` holds the
    /// files being imported (for cycles). `None` when the file does not parse.
    fn load(
        &mut self,
        file: SourceFile,
        path: PathBuf,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Option<usize> {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| normalize_path(&path));
        let base = self.add_text(file.clone());
        let mut ast = match crate::syntax::parse(&file) {
            Ok(ast) => ast,
            Err(diags) => {
                self.incomplete = true;
                self.diags
                    .extend(diags.into_iter().map(|d| d.with_source(&file)));
                return None;
            }
        };
        ast.shift(base);
        let index = self.files.len();
        let imports = ast.imports.clone();
        self.files.push(Loaded {
            path: path.clone(),
            base,
            ast,
            imports: Vec::new(),
            key: key.clone(),
        });
        chain.push((key, file.name.clone()));
        // Standard input has no folder of its own: its imports are taken from the working
        // directory.
        let dir = if path == Path::new(crate::source::STDIN_PATH) {
            PathBuf::new()
        } else {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        // An import is shown by the importing file's name and the path written (the
        // importing file's name is the path as the user gave it).
        let shown_dir = Path::new(&file.name)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for imp in imports {
            if let Some(i) = self.import(&dir, &shown_dir, &imp.path, imp.span, chain) {
                if !self.files[index].imports.contains(&i) {
                    self.files[index].imports.push(i);
                }
            }
        }
        chain.pop();
        Some(index)
    }

    /// One `import "…"` of a file in `dir`: the index of the imported file.
    fn import(
        &mut self,
        dir: &Path,
        shown_dir: &Path,
        written: &str,
        span: Span,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Option<usize> {
        let path = if dir.as_os_str().is_empty() {
            PathBuf::from(written)
        } else {
            dir.join(written)
        };
        let shown = normalize_path(&shown_dir.join(written))
            .display()
            .to_string();
        if written.is_empty() {
            self.incomplete = true;
            self.push(
                Diag::error(Code::PlanImport, "`import` needs a file")
                    .at(span, "an empty path")
                    .with_help("write the path of a `.psy` file relative to this one: `import \"common/lab.psy\"`"),
            );
            return None;
        }
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| normalize_path(&path));
        if let Some(at) = chain.iter().position(|(k, _)| *k == key) {
            self.incomplete = true;
            let mut names: Vec<&str> = chain[at..].iter().map(|(_, n)| n.as_str()).collect();
            names.push(&chain[at].1);
            self.push(
                Diag::error(
                    Code::PlanImportCycle,
                    format!("import cycle: {}", names.join(" → ")),
                )
                .at(span, format!("imports `{}` again", chain[at].1))
                .with_help(
                    "files cannot import each other in a circle; move what they share into a \
                     third file that both import",
                ),
            );
            return None;
        }
        if let Some(i) = self.files.iter().position(|f| f.key == key) {
            return Some(i);
        }
        if path == Path::new(crate::source::STDIN_PATH) {
            self.incomplete = true;
            self.push(
                Diag::error(Code::PlanImport, "cannot import standard input")
                    .at(span, "standard input")
                    .with_help("import a `.psy` file by its path"),
            );
            return None;
        }
        if chain.len() >= MAX_IMPORT_DEPTH {
            self.incomplete = true;
            self.push(
                Diag::error(
                    Code::PlanImport,
                    format!("imports nest more than {MAX_IMPORT_DEPTH} files deep"),
                )
                .at(span, "too deep"),
            );
            return None;
        }
        match SourceFile::read(&path) {
            Ok(file) => {
                let file = SourceFile {
                    name: shown,
                    ..file
                };
                self.load(file, path, chain)
            }
            Err(e) => {
                self.incomplete = true;
                let relative = if Path::new(written).is_relative() {
                    " (relative to the importing file's folder)"
                } else {
                    ""
                };
                let label = match e.code {
                    Code::IoRead => "cannot read this file",
                    _ => "not an experiment file",
                };
                let message = e.message.replace(&path.display().to_string(), &shown);
                self.push(
                    Diag::error(Code::PlanImport, format!("cannot import: {message}"))
                        .at(span, label)
                        .with_help(format!(
                            "check the path{relative}; an imported file is a `psy 1` experiment file"
                        )),
                );
                None
            }
        }
    }

    /// Source records of every file read, the top file first.
    fn records(&self, top: &Path) -> Vec<SourceRecord> {
        let dir = top.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut out: Vec<SourceRecord> = Vec::new();
        // Files that did not parse are records too (the texts hold every file read).
        for t in &self.texts {
            let loaded = self.files.iter().find(|f| f.base == t.base);
            let path = match loaded {
                Some(l) => l.path.clone(),
                None if t.base == 0 => top.to_path_buf(),
                None => PathBuf::from(&t.file.name),
            };
            let relative = relative_to(&path, &dir);
            out.push(SourceRecord {
                path,
                sha256: crate::report::sha256_bytes(t.file.text.as_bytes()),
                text: t.file.text.to_string(),
                relative,
            });
        }
        out
    }

    /// The experiments `file` can extend, in lookup order: its own, then those of its
    /// imports (depth first, in the order imported).
    fn visible(&self, file: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        self.collect_visible(file, &mut out, &mut seen);
        out
    }

    fn collect_visible(&self, file: usize, out: &mut Vec<(usize, usize)>, seen: &mut Vec<usize>) {
        if seen.contains(&file) {
            return;
        }
        seen.push(file);
        for e in 0..self.files[file].ast.experiments.len() {
            out.push((file, e));
        }
        for &i in &self.files[file].imports {
            self.collect_visible(i, out, seen);
        }
    }

    fn file_of(&self, pos: usize) -> usize {
        self.files.iter().rposition(|f| f.base <= pos).unwrap_or(0)
    }

    /// `exp` (an experiment of `file`) with its `extends` chain merged in.
    fn resolve(
        &mut self,
        file: usize,
        exp: Block,
        stack: &mut Vec<(usize, String)>,
    ) -> Option<Block> {
        let Some(base_name) = exp.extends.clone() else {
            return Some(exp);
        };
        let name = exp_name(&exp);
        stack.push((exp.keyword.span.start, name.clone()));
        let found = self.visible(file).into_iter().find(|&(f, e)| {
            let b = &self.files[f].ast.experiments[e];
            exp_name(b) == base_name.text && b.keyword.span != exp.keyword.span
        });
        let Some((bf, be)) = found else {
            if !self.incomplete {
                let names: Vec<String> = self
                    .visible(file)
                    .into_iter()
                    .map(|(f, e)| exp_name(&self.files[f].ast.experiments[e]))
                    .filter(|n| *n != name)
                    .collect();
                let mut help = if names.is_empty() {
                    "no experiment is in this file or its imports; import the file that holds it: `import \"common/lab.psy\"`".to_string()
                } else {
                    format!("experiments this one can extend: {}", names.join(", "))
                };
                if let Some(s) = suggest(&base_name.text, names.iter().map(String::as_str)) {
                    help = format!("did you mean `{s}`? {help}");
                }
                self.push(
                    Diag::error(
                        Code::PlanUnknownExperiment,
                        format!("no experiment `{}` to extend", base_name.text),
                    )
                    .at(base_name.span, "not in this file or its imports")
                    .with_help(help),
                );
            }
            return None;
        };
        let base = self.files[bf].ast.experiments[be].clone();
        if let Some(at) = stack
            .iter()
            .position(|(s, _)| *s == base.keyword.span.start)
        {
            let mut names: Vec<&str> = stack[at..].iter().map(|(_, n)| n.as_str()).collect();
            names.push(&stack[at].1);
            let chain = names.join(" extends ");
            self.push(
                Diag::error(
                    Code::PlanExtendsCycle,
                    format!("experiments extend each other in a cycle: {chain}"),
                )
                .at(
                    base_name.span,
                    "extends an experiment that extends this one",
                )
                .with_help(
                    "an experiment's chain of `extends` must end at one that extends nothing",
                ),
            );
            return None;
        }
        let base_file = self.file_of(base.keyword.span.start);
        let base = self.resolve(base_file, base, stack)?;
        stack.pop();
        Some(merge_experiment(base, exp))
    }

    /// Applies one `--set PATH=VALUE`.
    fn apply_override(&mut self, exp: &mut Block, o: &Override, paths: &[String]) {
        // A line of its own: a label at the end of the value has a place to be shown.
        let text = format!("{}={}\n", o.path, o.value);
        let pseudo = SourceFile::new("--set", text);
        let base = self.add_text(pseudo.clone());
        let path_span = Span::new(base, base + o.path.len());
        let value_at = o.path.len() + 1;
        let mut value =
            match crate::syntax::parse_value(&SourceFile::new("--set", o.value.as_str())) {
                Ok(v) => v,
                Err(diags) => {
                    for mut d in diags {
                        // The value is all there is: its end is the end of the `--set` text.
                        d.message = d
                            .message
                            .replace("the end of the file", "the end of the value");
                        if let Some(l) = d.primary.as_mut() {
                            l.span.shift(value_at);
                            l.text = l
                                .text
                                .replace("the end of the file", "the end of the value");
                        }
                        d.secondary.iter_mut().for_each(|l| l.span.shift(value_at));
                        self.diags.push(d.with_source(&pseudo));
                    }
                    return;
                }
            };
        value.shift(base + value_at);
        if !self.check_path(&o.path, path_span, paths, "--set") {
            return;
        }
        // `--set` on a swept path fixes it: the dimension goes.
        remove_swept(exp, &o.path);
        apply(exp, &o.path, path_span, value);
    }

    /// False (and `psy::plan::unknown_path`) when `path` names no setting.
    fn check_path(&mut self, path: &str, span: Span, paths: &[String], what: &str) -> bool {
        if paths.iter().any(|p| p == path) {
            return true;
        }
        let mut help = "a path is `SETTING` of the experiment (`seed`), `BLOCK` for its header argument (`backbone`), `BLOCK.SETTING` (`probe.epochs`) or `probe.optimizer.SETTING`"
            .to_string();
        if let Some(s) = suggest(path, paths.iter().map(String::as_str)) {
            help = format!("did you mean `{s}`? {help}");
        }
        self.push(
            Diag::error(
                Code::PlanUnknownPath,
                format!("`{path}` is not a setting psyrun knows ({what})"),
            )
            .at(span, "no such setting")
            .with_help(help),
        );
        false
    }

    /// Takes the `sweep` blocks out of `exp` and checks them into dimensions.
    fn sweep_dims(&mut self, exp: &mut Block, paths: &[String]) -> Vec<Dim> {
        let mut sweeps = Vec::new();
        exp.items.retain(|i| match i {
            Item::Block(b) if b.keyword.text == "sweep" => {
                sweeps.push(b.clone());
                false
            }
            _ => true,
        });
        let mut dims = Vec::new();
        let mut swept: Vec<(String, Span)> = Vec::new();
        for s in sweeps {
            if let Some(b) = s.blocks().next() {
                self.push(
                    Diag::error(
                        Code::PlanBadSweep,
                        "a sweep holds paths and lists, not blocks",
                    )
                    .at(b.keyword.span, "a block")
                    .with_help(
                        "write each swept setting as its path: `sweep { probe.epochs [5, 10] }`",
                    ),
                );
                continue;
            }
            let zip =
                matches!(&s.label, Some(Value { kind: ValueKind::Ident(m), .. }) if m == "zip");
            let mut columns: Vec<(Setting, Vec<Value>)> = Vec::new();
            let mut ok = true;
            for entry in s.settings() {
                if !self.check_path(&entry.key.text, entry.key.span, paths, "sweep") {
                    ok = false;
                    continue;
                }
                if let Some((_, first)) = swept.iter().find(|(p, _)| *p == entry.key.text) {
                    self.push(
                        Diag::error(
                            Code::PlanBadSweep,
                            format!("`{}` is swept twice", entry.key.text),
                        )
                        .at(entry.key.span, "swept again")
                        .also(*first, "swept first here")
                        .with_help("sweep each setting in one place; `sweep zip { … }` pairs values of several settings"),
                    );
                    ok = false;
                    continue;
                }
                swept.push((entry.key.text.clone(), entry.key.span));
                match &entry.value.kind {
                    ValueKind::List(vs) if !vs.is_empty() => {
                        columns.push((entry.clone(), vs.clone()));
                    }
                    ValueKind::List(_) => {
                        self.push(
                            Diag::error(
                                Code::PlanBadSweep,
                                format!("the sweep of `{}` has no values", entry.key.text),
                            )
                            .at(entry.value.span, "an empty list")
                            .with_help("list the values to sweep: `backbone.cut [layer1, layer2]`"),
                        );
                        ok = false;
                    }
                    other => {
                        self.push(
                            Diag::error(
                                Code::PlanBadSweep,
                                format!(
                                    "a sweep takes a list of values for `{}`, found {}",
                                    entry.key.text,
                                    other.describe()
                                ),
                            )
                            .at(entry.value.span, "expected a list")
                            .with_help(format!(
                                "write the values in brackets: `{} [a, b]`; a value that is itself a list is written as a nested list: `[[1, 2], [4, 8]]`",
                                entry.key.text
                            )),
                        );
                        ok = false;
                    }
                }
            }
            if !ok || columns.is_empty() {
                continue;
            }
            let rows = if zip {
                let n = columns[0].1.len();
                if let Some((other, vs)) = columns.iter().find(|(_, vs)| vs.len() != n) {
                    let first = &columns[0].0;
                    self.push(
                        Diag::error(
                            Code::PlanZipLengths,
                            format!(
                                "`sweep zip` pairs lists of the same length: `{}` has {n} value{}, `{}` has {}",
                                first.key.text,
                                if n == 1 { "" } else { "s" },
                                other.key.text,
                                vs.len()
                            ),
                        )
                        .at(other.value.span, format!("{} values", vs.len()))
                        .also(first.value.span, format!("{n} values"))
                        .with_help("give each list as many values, or use `sweep { … }` for every combination"),
                    );
                    continue;
                }
                (0..n)
                    .map(|i| {
                        columns
                            .iter()
                            .map(|(s, vs)| (s.clone(), vs[i].clone()))
                            .collect()
                    })
                    .collect()
            } else {
                let dims: Vec<Dim> = columns
                    .iter()
                    .map(|(s, vs)| Dim {
                        rows: vs.iter().map(|v| vec![(s.clone(), v.clone())]).collect(),
                        at: s.key.span,
                    })
                    .collect();
                match expand(&dims) {
                    Ok(rows) => rows,
                    Err(d) => {
                        self.push(d);
                        continue;
                    }
                }
            };
            dims.push(Dim {
                rows,
                at: s.keyword.span,
            });
        }
        dims
    }

    /// `psy::plan::same_conditions` for conditions whose plans are the same.
    fn same_conditions(&mut self, conditions: &[Condition], dims: &[Dim]) {
        for (i, c) in conditions.iter().enumerate() {
            if let Some(first) = conditions[..i].iter().find(|o| o.id == c.id) {
                let mut d = Diag::error(
                    Code::PlanSameConditions,
                    format!(
                        "conditions {} and {} have the same plan ({} and {})",
                        first.index + 1,
                        c.index + 1,
                        first.label(),
                        c.label()
                    ),
                )
                .with_help(
                    "each condition must differ in what it runs: a value listed twice, or a \
                     value equal to another once read (`1` and `1.0`), makes the same run twice",
                );
                if let Some(dim) = dims.first() {
                    d = d.at(dim.at, "this sweep repeats a condition");
                }
                self.push(d);
                return;
            }
        }
    }
}

fn exp_name(b: &Block) -> String {
    match &b.label {
        Some(Value {
            kind: ValueKind::Ident(n),
            ..
        }) => n.clone(),
        _ => String::new(),
    }
}

/// `child` merged over `base` (see [`merge_items`]): the child's name and place, no
/// `extends` left.
fn merge_experiment(base: Block, child: Block) -> Block {
    Block {
        keyword: child.keyword,
        label: child.label,
        extends: None,
        items: merge_items(base.items, child.items),
        open: child.open,
        span: child.span,
    }
}

/// A block of `child` merged over the same-named block of `base`: the header argument from
/// `child` when written there, the settings merged.
fn merge_block(base: Block, child: Block) -> Block {
    Block {
        keyword: child.keyword,
        label: child.label.or(base.label),
        extends: None,
        items: merge_items(base.items, child.items),
        open: child.open,
        span: child.span,
    }
}

/// `base`'s items with `child`'s merged in: a setting replaces the same-named setting (in
/// its place), a block merges with the same-named block, anything else is added after.
/// Each item of `base` is replaced once, so a setting written twice in `child` stays
/// written twice (the usual duplicate error). A `sweep` block of `child` takes the paths it
/// sweeps out of the sweeps of `base`.
pub(crate) fn merge_items(base: Vec<Item>, child: Vec<Item>) -> Vec<Item> {
    let mut out = base;
    let mut replaced = vec![false; out.len()];
    for item in child {
        match item {
            Item::Setting(s) => {
                let at = out.iter().enumerate().position(|(i, it)| {
                    !replaced[i] && matches!(it, Item::Setting(o) if o.key.text == s.key.text)
                });
                match at {
                    Some(i) => {
                        out[i] = Item::Setting(s);
                        replaced[i] = true;
                    }
                    None => {
                        out.push(Item::Setting(s));
                        replaced.push(true);
                    }
                }
            }
            Item::Block(b) if b.keyword.text == "sweep" => {
                for s in b.settings() {
                    for it in &mut out {
                        if let Item::Block(o) = it {
                            if o.keyword.text == "sweep" {
                                o.items.retain(
                                    |x| !matches!(x, Item::Setting(e) if e.key.text == s.key.text),
                                );
                            }
                        }
                    }
                }
                let keep: Vec<bool> = out
                    .iter()
                    .map(|it| !matches!(it, Item::Block(o) if o.keyword.text == "sweep" && o.items.is_empty()))
                    .collect();
                let mut k = keep.iter();
                let mut r = replaced.iter();
                let mut new_replaced = Vec::new();
                out.retain(|_| {
                    let keep = *k.next().unwrap_or(&true);
                    let rep = *r.next().unwrap_or(&true);
                    if keep {
                        new_replaced.push(rep);
                    }
                    keep
                });
                replaced = new_replaced;
                out.push(Item::Block(b));
                replaced.push(true);
            }
            Item::Block(b) => {
                let at = out.iter().enumerate().position(|(i, it)| {
                    !replaced[i] && matches!(it, Item::Block(o) if same_block(o, &b))
                });
                match at {
                    Some(i) => {
                        let Item::Block(old) =
                            std::mem::replace(&mut out[i], Item::Setting(placeholder()))
                        else {
                            continue;
                        };
                        out[i] = Item::Block(merge_block(old, b));
                        replaced[i] = true;
                    }
                    None => {
                        out.push(Item::Block(b));
                        replaced.push(true);
                    }
                }
            }
        }
    }
    out
}

fn placeholder() -> Setting {
    let name = Name {
        text: String::new(),
        span: Span::default(),
    };
    Setting {
        key: name,
        value: Value {
            kind: ValueKind::Number(0.0),
            span: Span::default(),
        },
    }
}

/// Removes `path` from every sweep of `exp` (a `--set` fixes it).
fn remove_swept(exp: &mut Block, path: &str) {
    for it in &mut exp.items {
        if let Item::Block(b) = it {
            if b.keyword.text == "sweep" {
                b.items
                    .retain(|x| !matches!(x, Item::Setting(e) if e.key.text == path));
            }
        }
    }
    exp.items.retain(
        |it| !matches!(it, Item::Block(b) if b.keyword.text == "sweep" && b.items.is_empty()),
    );
}

/// The name of a `stimulus NAME KIND { … }` block.
fn stimulus_name(b: &Block) -> Option<&str> {
    match &b.label {
        Some(Value {
            kind: ValueKind::Tagged { tag, .. },
            ..
        }) if b.keyword.text == "stimulus" => Some(&tag.text),
        _ => None,
    }
}

/// Blocks that `extends` merges: the same keyword, and for stimuli the same name (each
/// `stimulus` block is its own).
fn same_block(a: &Block, b: &Block) -> bool {
    a.keyword.text == b.keyword.text && stimulus_name(a) == stimulus_name(b)
}

/// `stimulus.NAME.PARAM` for every stimulus of `exp` and every parameter of its kind
/// (and `like`); every kind's parameters when the kind is unknown (lowering says so).
fn stimulus_paths(exp: &Block) -> Vec<String> {
    use crate::plan::design::StimulusKind;
    let mut out = Vec::new();
    for b in exp.blocks() {
        let Some(name) = stimulus_name(b) else {
            continue;
        };
        let kind = match &b.label {
            Some(Value {
                kind: ValueKind::Tagged { arg, .. },
                ..
            }) => match &arg.kind {
                ValueKind::Ident(k) => StimulusKind::from_name(k),
                _ => None,
            },
            _ => None,
        };
        let kinds: Vec<StimulusKind> = kind.map_or(StimulusKind::ALL.to_vec(), |k| vec![k]);
        let mut params: Vec<&str> = kinds
            .iter()
            .flat_map(|k| k.params().iter().map(|p| p.name))
            .collect();
        params.push("like");
        for p in params {
            let path = format!("stimulus.{name}.{p}");
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// Sets `path` (a checked setting path) to `value` in the experiment `exp`: a setting's
/// value (replacing the one written, or added), or a block's header argument; a block the
/// experiment lacks is added. `at` is where the path is written (the `--set` text or the
/// sweep), the key's span of an added setting.
pub(crate) fn apply(exp: &mut Block, path: &str, at: Span, value: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    // `stimulus.NAME.PARAM`: the parameter of the stimulus of that name.
    if let ["stimulus", name, param] = parts.as_slice() {
        for it in &mut exp.items {
            if let Item::Block(b) = it {
                if stimulus_name(b) == Some(*name) {
                    set_setting(b, param, at, value);
                    return;
                }
            }
        }
        return;
    }
    let is_setting = |last: &str, depth: usize| {
        // `backbone`, `probe.optimizer`: a header argument; the rest are settings.
        !(depth == 1
            && last != "seed"
            && last != "device"
            && last != "precision"
            && last != "repeats"
            && last != "readout"
            && last != "level"
            && last != "axis"
            || depth == 2 && last == "optimizer")
    };
    let mut block = exp;
    for (i, part) in parts.iter().enumerate() {
        let depth = i + 1;
        let last = depth == parts.len();
        if last && is_setting(part, depth) {
            set_setting(block, part, at, value);
            return;
        }
        // A block: find it or add it.
        let pos = block
            .items
            .iter()
            .position(|it| matches!(it, Item::Block(b) if b.keyword.text == *part));
        let pos = match pos {
            Some(p) => p,
            None => {
                block.items.push(Item::Block(Block {
                    keyword: Name {
                        text: part.to_string(),
                        span: at,
                    },
                    label: None,
                    extends: None,
                    items: Vec::new(),
                    open: at,
                    span: at,
                }));
                block.items.len() - 1
            }
        };
        let Item::Block(b) = &mut block.items[pos] else {
            return;
        };
        if last {
            b.label = Some(value);
            return;
        }
        block = b;
    }
}

fn set_setting(block: &mut Block, key: &str, at: Span, value: Value) {
    for it in &mut block.items {
        if let Item::Setting(s) = it {
            if s.key.text == key {
                s.value = value;
                return;
            }
        }
    }
    block.items.push(Item::Setting(Setting {
        key: Name {
            text: key.to_string(),
            span: at,
        },
        value,
    }));
}

/// Line and column (from 1, in characters) of byte `pos`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// `path` without `.` and with `a/..` folded, lexically (a leading `..` stays).
pub fn normalize_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` relative to `dir` (lexically), each `..` left written as `__`, so that the result
/// stays inside a folder.
fn relative_to(path: &Path, dir: &Path) -> PathBuf {
    let path = normalize_path(path);
    let dir = normalize_path(dir);
    let rel = match path.strip_prefix(&dir) {
        Ok(r) => r.to_path_buf(),
        Err(_) => {
            // Outside the top file's folder: walk up from it.
            let mut up = PathBuf::new();
            let mut d = dir.clone();
            loop {
                if let Ok(r) = path.strip_prefix(&d) {
                    break up.join(r);
                }
                if !d.pop() {
                    break path.clone();
                }
                up.push("..");
            }
        }
    };
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::ParentDir => out.push("__"),
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
        }
    }
    if out.as_os_str().is_empty() {
        out.push(path.file_name().unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests;
