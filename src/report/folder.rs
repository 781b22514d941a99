//! The run folder and atomic writes.

use super::{plot, Manifest, Results};
use crate::plan::{to_ron, Plan};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Name of the marker file present while a run has not finished.
pub const INCOMPLETE: &str = "INCOMPLETE";

/// Where default run folders go, relative to the working directory.
const DEFAULT_ROOT: &str = "runs";

/// Most numeric suffixes tried for a default folder whose name is taken.
const MAX_SUFFIX: u32 = 1000;

/// The folder of a run that holds a copy of each source file (see [`RunFolder::write_source`]).
pub const SOURCES: &str = "sources";

/// A time as RFC 3339 in UTC with whole seconds, e.g. `2025-01-31T12:00:00Z`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Writes `bytes` to `path` so that `path` is either untouched or whole: the bytes go to
/// `.NAME.tmp-PID` in the same folder, are flushed to disk, and the temporary file is
/// renamed over `path`. On error the temporary file is removed and the error names `path`.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let path = path.as_ref();
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a file path", path.display()),
        ));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::new(
            e.kind(),
            format!("cannot write `{}`: {e}", path.display()),
        ));
    }
    sync_dir(dir);
    Ok(())
}

/// Flushes a folder's entries (the rename) to disk where the platform allows; best effort.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Why a run folder cannot be used. Every message names the path.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// `--out DIR` exists and holds files: results of two runs are never mixed.
    #[error(
        "`{path}` already exists and is not empty; psyrun does not mix the results of two runs \
         (choose another --out, or remove it)",
        path = .path.display()
    )]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// The path exists and is not a folder.
    #[error("`{path}` exists and is not a folder", path = .path.display())]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// The folder (or a parent) cannot be created.
    #[error("cannot create the run folder `{path}`: {source}", path = .path.display())]
    Create {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An existing `--out` folder cannot be listed.
    #[error("cannot read the folder `{path}`: {source}", path = .path.display())]
    Read {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The folder exists but files cannot be written in it.
    #[error("the run folder `{path}` is not writable: {source}", path = .path.display())]
    NotWritable {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `--resume DIR`: the run in that folder finished (it has no `INCOMPLETE` marker).
    #[error(
        "the run in `{path}` is complete (it has no INCOMPLETE marker): there is nothing to resume",
        path = .path.display()
    )]
    Finished {
        /// The folder.
        path: PathBuf,
    },
    /// `--resume DIR`: the folder is not a psyrun run folder (no `plan.ron` or
    /// `manifest.json`).
    #[error(
        "`{path}` is not a psyrun run folder (it has no {missing})",
        path = .path.display()
    )]
    NotARun {
        /// The folder.
        path: PathBuf,
        /// The file it lacks.
        missing: &'static str,
    },
    /// Every numbered variant of the default folder name is taken.
    #[error("cannot find a free run folder name next to `{path}`", path = .path.display())]
    NoFreeName {
        /// The first name tried.
        path: PathBuf,
    },
}

impl FolderError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FolderError::NotEmpty { path }
            | FolderError::NotAFolder { path }
            | FolderError::Create { path, .. }
            | FolderError::Read { path, .. }
            | FolderError::NotWritable { path, .. }
            | FolderError::NoFreeName { path }
            | FolderError::Finished { path }
            | FolderError::NotARun { path, .. } => path,
        }
    }
}

impl From<FolderError> for io::Error {
    fn from(e: FolderError) -> Self {
        let kind = match &e {
            FolderError::NotEmpty { .. } => io::ErrorKind::AlreadyExists,
            FolderError::NotAFolder { .. } | FolderError::NotARun { .. } => {
                io::ErrorKind::InvalidInput
            }
            FolderError::Finished { .. } => io::ErrorKind::AlreadyExists,
            FolderError::Create { source, .. }
            | FolderError::Read { source, .. }
            | FolderError::NotWritable { source, .. } => source.kind(),
            FolderError::NoFreeName { .. } => io::ErrorKind::AlreadyExists,
        };
        io::Error::new(kind, e)
    }
}

/// The folder of one run. It holds an [`INCOMPLETE`] marker from creation until
/// [`finish`](Self::finish); every file is written with [`write_atomic`].
#[derive(Debug)]
pub struct RunFolder {
    path: PathBuf,
}

impl RunFolder {
    /// Creates the folder of a run and writes its `INCOMPLETE` marker.
    ///
    /// With `out`, that folder is used: created if missing, accepted if empty, refused
    /// ([`FolderError::NotEmpty`]) if it holds anything. Without, the folder is
    /// `runs/<experiment>/<YYYYmmdd-HHMMSS>/` (UTC, relative to the working directory),
    /// with `-2`, `-3`, … appended when that name is taken.
    pub fn create(
        out: Option<&Path>,
        experiment: &str,
        now: DateTime<Utc>,
    ) -> Result<RunFolder, FolderError> {
        match out {
            Some(dir) => Self::create_out(dir, now),
            None => Self::create_default(Path::new(DEFAULT_ROOT), experiment, now),
        }
    }

    /// As [`create`](Self::create) without `out`, with `root` in place of `runs/`.
    pub fn create_default(
        root: &Path,
        experiment: &str,
        now: DateTime<Utc>,
    ) -> Result<RunFolder, FolderError> {
        let parent = root.join(safe_name(experiment));
        fs::create_dir_all(&parent).map_err(|source| FolderError::Create {
            path: parent.clone(),
            source,
        })?;
        let stamp = now.format("%Y%m%d-%H%M%S").to_string();
        let first = parent.join(&stamp);
        for n in 1..=MAX_SUFFIX {
            let path = if n == 1 {
                first.clone()
            } else {
                parent.join(format!("{stamp}-{n}"))
            };
            match fs::create_dir(&path) {
                Ok(()) => return Self::mark(path, now, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(FolderError::Create { path, source }),
            }
        }
        Err(FolderError::NoFreeName { path: first })
    }

    fn create_out(dir: &Path, now: DateTime<Utc>) -> Result<RunFolder, FolderError> {
        // Refused as `check_out` refuses (a file, a folder with files, one that cannot be
        // read); otherwise an empty folder is taken and a missing one made.
        check_out(dir)?;
        let path = dir.to_path_buf();
        if dir.is_dir() {
            return Self::mark(path, now, false);
        }
        fs::create_dir_all(dir).map_err(|source| FolderError::Create {
            path: path.clone(),
            source,
        })?;
        Self::mark(path, now, true)
    }

    /// Writes the marker; if that fails, removes the folder when this call created it.
    fn mark(path: PathBuf, now: DateTime<Utc>, created: bool) -> Result<RunFolder, FolderError> {
        let text = format!(
            "This run has not finished (started {}).\n\
             \n\
             psyrun writes this file before anything else and deletes it only after every\n\
             result file has been written. If you can read this, the run is still going, or\n\
             it was interrupted (Ctrl-C, a crash, a full disk, a lost machine) or failed:\n\
             files may be missing, and those present may hold results up to that point only.\n\
             manifest.json (\"complete\": false) records what was known when it stopped.\n",
            rfc3339(now)
        );
        match write_atomic(path.join(INCOMPLETE), text.as_bytes()) {
            Ok(()) => Ok(RunFolder { path }),
            Err(source) => {
                if created {
                    let _ = fs::remove_dir(&path);
                }
                Err(FolderError::NotWritable { path, source })
            }
        }
    }

    /// Reopens the folder of an interrupted run to resume it: it must hold `plan.ron`,
    /// `manifest.json` and the `INCOMPLETE` marker (a finished run is refused with
    /// [`FolderError::Finished`]), and be writable.
    pub fn resume(dir: &Path) -> Result<RunFolder, FolderError> {
        let path = dir.to_path_buf();
        match fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => return Err(FolderError::NotAFolder { path }),
            Ok(_) => {}
            Err(source) => return Err(FolderError::Read { path, source }),
        }
        for missing in ["plan.ron", "manifest.json"] {
            if !dir.join(missing).is_file() {
                return Err(FolderError::NotARun { path, missing });
            }
        }
        if !dir.join(INCOMPLETE).is_file() {
            return Err(FolderError::Finished { path });
        }
        // The marker is rewritten, which also proves the folder writable.
        let text = fs::read(dir.join(INCOMPLETE)).map_err(|source| FolderError::Read {
            path: path.clone(),
            source,
        })?;
        write_atomic(dir.join(INCOMPLETE), &text).map_err(|source| FolderError::NotWritable {
            path: path.clone(),
            source,
        })?;
        Ok(RunFolder { path })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one file of the folder atomically. `name` is a plain file name.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let plain = Path::new(name).file_name().is_some_and(|f| f == name);
        if !plain || name == INCOMPLETE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` is not a result file name"),
            ));
        }
        write_atomic(self.path.join(name), bytes)
    }

    /// Writes a copy of a source file of the experiment under `sources/`, at `relative`
    /// (plain names only: no `..`, no root), creating the folders it needs.
    pub fn write_source(&self, relative: &Path, bytes: &[u8]) -> io::Result<()> {
        let plain = relative.components().count() > 0
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{}` is not a relative path inside the run folder",
                    relative.display()
                ),
            ));
        }
        let path = self.path.join(SOURCES).join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_atomic(path, bytes)
    }

    /// At the start of a run: `plan.ron`, and `manifest.json` (written with
    /// `complete: false` whatever `manifest` says).
    pub fn begin(&self, plan: &Plan, manifest: &Manifest) -> io::Result<()> {
        self.write("plan.ron", to_ron(plan).as_bytes())?;
        let manifest = Manifest {
            complete: false,
            ..manifest.clone()
        };
        self.write_manifest(&manifest)
    }

    /// Writes `manifest.json` (pretty JSON).
    pub fn write_manifest(&self, manifest: &Manifest) -> io::Result<()> {
        let mut json = serde_json::to_string_pretty(manifest).map_err(io::Error::other)?;
        json.push('\n');
        self.write("manifest.json", json.as_bytes())
    }

    /// Writes every result file for what is known so far (after an epoch, a staircase
    /// step, or when the run is interrupted or fails). The manifest is written with
    /// `complete: false` and the `INCOMPLETE` marker stays.
    pub fn write_partial(&self, results: &Results) -> io::Result<()> {
        let manifest = Manifest {
            complete: false,
            ..results.manifest.clone()
        };
        self.write_files(results, &manifest)
    }

    /// Ends the run: sets `results.manifest.finished` to `finished` and `complete` to
    /// true, writes every file (manifest last) and removes `INCOMPLETE`. Returns the folder.
    pub fn finish(self, results: &mut Results, finished: DateTime<Utc>) -> io::Result<PathBuf> {
        results.manifest.finished = Some(rfc3339(finished));
        results.manifest.complete = true;
        self.write_files(results, &results.manifest)?;
        let marker = self.path.join(INCOMPLETE);
        match fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot remove `{}`: {e}", marker.display()),
                ))
            }
        }
        sync_dir(&self.path);
        Ok(self.path)
    }

    fn write_files(&self, results: &Results, manifest: &Manifest) -> io::Result<()> {
        self.write("plan.ron", to_ron(&results.plan).as_bytes())?;
        for (name, csv) in super::CSV_FILES {
            self.write(name, csv(results).as_bytes())?;
        }
        let mut plots = Vec::new();
        for (stem, plot) in [
            ("csf", plot::csf_plot(results)),
            ("csf_linear", plot::csf_linear_plot(results)),
            ("psychometric", plot::psychometric_plot(results)),
            ("training", plot::training_plot(results)),
        ] {
            let plot = plot?;
            self.write(&format!("{stem}.png"), &plot.png)?;
            self.write(&format!("{stem}.svg"), plot.svg.as_bytes())?;
            plots.push((stem, plot));
        }
        self.write(
            "results.json",
            super::results_json(results, manifest)?.as_bytes(),
        )?;
        // The preview sheet is written once, when the run starts.
        let preview = fs::read(self.path.join("preview.png")).ok();
        let plots: Vec<(&str, &plot::Plot)> = plots.iter().map(|(s, p)| (*s, p)).collect();
        self.write(
            "report.html",
            super::report_html(results, manifest, &plots, preview.as_deref()).as_bytes(),
        )?;
        self.write_manifest(manifest)
    }
}

/// Checks that `--out DIR` can take a run's results, without creating anything: `Ok` when
/// it does not exist or is an empty folder; the [`FolderError`] [`RunFolder::create`] would
/// give otherwise (so a command can refuse before it builds a backbone).
pub fn check_out(dir: &Path) -> Result<(), FolderError> {
    let path = dir.to_path_buf();
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(FolderError::NotAFolder { path }),
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(|source| FolderError::Read {
                path: path.clone(),
                source,
            })?;
            if entries.next().is_some() {
                return Err(FolderError::NotEmpty { path });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FolderError::Read { path, source }),
    }
}

/// An experiment name as one safe path component (as `runs/<experiment>/` uses it).
pub fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "experiment".to_string()
    } else {
        s
    }
}
