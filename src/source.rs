//! Source files: reading an experiment file into memory, with every way that can fail
//! turned into a diagnostic rather than a panic.

use crate::diag::{Code, Diag, SourceText};
use std::path::Path;
use std::sync::Arc;

/// Largest experiment file psyrun reads. Real files are a few kilobytes; the limit keeps a
/// wrong path (a dataset, a checkpoint) from being read and parsed.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// An experiment file's name (as given by the user) and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name shown in diagnostics (the path as given).
    pub name: String,
    /// The whole text.
    pub text: Arc<str>,
}

impl SourceText for SourceFile {
    fn source_name(&self) -> String {
        self.name.clone()
    }
    fn source_text(&self) -> Arc<str> {
        self.text.clone()
    }
}

impl SourceFile {
    /// A source from memory (tests, docs examples, stdin).
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Reads a file: refuses directories, unreadable paths, files over
    /// [`MAX_FILE_BYTES`] and text that is not UTF-8, each with its own diagnostic.
    pub fn read(path: &Path) -> Result<Self, Diag> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| io_error(&name, &e))?;
        if meta.is_dir() {
            return Err(Diag::error(
                Code::IoIsDirectory,
                format!("`{name}` is a directory, not an experiment file"),
            )
            .with_help("give the path of a `.psy` file, e.g. `experiments/contrast_csf.psy`"));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(Diag::error(
                Code::IoTooLarge,
                format!(
                    "`{name}` is {} bytes; experiment files are at most {} bytes",
                    meta.len(),
                    MAX_FILE_BYTES
                ),
            )
            .with_help("is this the right file? `.psy` files are short text files"));
        }
        let bytes = std::fs::read(path).map_err(|e| io_error(&name, &e))?;
        Self::from_bytes(name, bytes)
    }

    /// Decodes bytes as UTF-8, pointing at the first invalid byte otherwise.
    pub fn from_bytes(name: String, bytes: Vec<u8>) -> Result<Self, Diag> {
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self::new(name, text)),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                let binary = bytes.iter().take(8192).any(|&b| b == 0);
                let what = if binary {
                    "a binary file"
                } else {
                    "not UTF-8 text"
                };
                Err(Diag::error(
                    Code::IoNotUtf8,
                    format!("`{name}` is {what}: invalid UTF-8 at byte {at} (line {line})"),
                )
                .with_help("experiment files are UTF-8 text; re-save the file as UTF-8"))
            }
        }
    }
}

fn io_error(name: &str, e: &std::io::Error) -> Diag {
    let help = match e.kind() {
        std::io::ErrorKind::NotFound => {
            "check the path; `psyrun check experiments/*.psy` checks every experiment"
        }
        std::io::ErrorKind::PermissionDenied => "psyrun needs read permission on the file",
        _ => "check that the path is a readable file",
    };
    Diag::error(Code::IoRead, format!("cannot read `{name}`: {e}")).with_help(help)
}
