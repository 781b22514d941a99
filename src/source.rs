//! Source files: reading an experiment file into memory, with every way that can fail
//! turned into a diagnostic rather than a panic.

use crate::diag::{Code, Diag, SourceText};
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Largest experiment file psyrun reads. Real files are a few kilobytes; the limit keeps a
/// wrong path (a dataset, a checkpoint) from being read and parsed.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The path that reads standard input rather than a file (`psyrun check /dev/stdin`).
pub const STDIN_PATH: &str = "/dev/stdin";

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

    /// Reads a file: refuses directories, special files (FIFOs, sockets, devices), unreadable
    /// paths, files over [`MAX_FILE_BYTES`] and text that is not UTF-8, each with its own
    /// diagnostic.
    ///
    /// [`STDIN_PATH`] reads standard input, whatever it is (a redirected file, a pipe, a
    /// terminal until end of input), with the same size limit. Other paths must name a
    /// regular file: the type is checked before opening, so a FIFO is refused rather than
    /// waited on forever.
    pub fn read(path: &Path) -> Result<Self, Diag> {
        let name = path.display().to_string();
        if path == Path::new(STDIN_PATH) {
            return Self::read_stream(name, std::io::stdin().lock());
        }
        let meta = std::fs::metadata(path).map_err(|e| io_error(&name, &e))?;
        if meta.is_dir() {
            return Err(Diag::error(
                Code::IoIsDirectory,
                format!("`{name}` is a directory, not an experiment file"),
            )
            .with_help("give the path of a `.psy` file, e.g. `experiments/contrast_csf.psy`"));
        }
        if let Some(kind) = special_kind(&meta) {
            return Err(Diag::error(
                Code::IoNotAFile,
                format!("`{name}` is {kind}, not a regular file"),
            )
            .with_help(format!(
                "give the path of a `.psy` file; to read a pipe, give it as standard input: `… | psyrun check {STDIN_PATH}`"
            )));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_large(&name, &format!("{} bytes", meta.len())));
        }
        let file = std::fs::File::open(path).map_err(|e| io_error(&name, &e))?;
        Self::read_stream(name, file)
    }

    /// Reads at most [`MAX_FILE_BYTES`] from `input` (one byte more tells that it is too
    /// large, without reading the rest), then decodes it.
    pub fn read_stream(name: String, input: impl Read) -> Result<Self, Diag> {
        let mut bytes = Vec::new();
        input
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(&name, &e))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large(
                &name,
                &format!("more than {MAX_FILE_BYTES} bytes"),
            ));
        }
        Self::from_bytes(name, bytes)
    }

    /// Decodes bytes as UTF-8, pointing at the first invalid byte otherwise. A binary file
    /// (a NUL byte in its first 8 KiB, the signature of a zip, pickle or safetensors file, or
    /// the extension of a weights or model file) is refused first, with
    /// [`Code::IoBinary`]: the usual mistake is passing the weights instead of the experiment.
    pub fn from_bytes(name: String, bytes: Vec<u8>) -> Result<Self, Diag> {
        if let Some(what) = binary_kind(&name, &bytes) {
            return Err(Diag::error(
                Code::IoBinary,
                format!("`{name}` is {what}, not an experiment file"),
            )
            .with_help(
                "`psyrun check`, `plan` and `run` take a `.psy` experiment file (text); a weights file is named inside it, e.g. `backbone resnet50 { weights \"nets/my_resnet.pth\"  cut layer2 }`, and a TorchScript module as `backbone torchscript \"net.pt\" { }`",
            ));
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self::new(name, text)),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                Err(Diag::error(
                    Code::IoNotUtf8,
                    format!("`{name}` is not UTF-8 text: invalid UTF-8 at byte {at} (line {line})"),
                )
                .with_help("experiment files are UTF-8 text; re-save the file as UTF-8"))
            }
        }
    }
}

/// Extensions of weights and model files, which are never experiments.
const MODEL_EXTENSIONS: &[&str] = &[
    "pth",
    "pt",
    "ckpt",
    "bin",
    "safetensors",
    "onnx",
    "pkl",
    "h5",
    "npy",
    "npz",
];

/// What a binary file looks like (`"a zip archive (a PyTorch checkpoint?)"`, …), or `None`
/// for what may be text. Looks at the name's extension, the first bytes' signature, and a
/// NUL byte in the first 8 KiB (never in text).
fn binary_kind(name: &str, bytes: &[u8]) -> Option<String> {
    let ext = std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let signature = if bytes.starts_with(b"PK\x03\x04") {
        Some("a zip archive (a PyTorch checkpoint or TorchScript module?)")
    } else if bytes.len() >= 2 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1]) {
        Some("a Python pickle (an old-format PyTorch checkpoint?)")
    } else if bytes.len() >= 9
        && bytes[8] == b'{'
        && bytes[..8].iter().any(|&b| b != 0)
        && bytes[3..8].iter().all(|&b| b == 0)
    {
        Some("a safetensors file")
    } else {
        None
    };
    if let Some(kind) = signature {
        return Some(kind.to_string());
    }
    if let Some(ext) = ext.filter(|e| MODEL_EXTENSIONS.contains(&e.as_str())) {
        return Some(format!("a `.{ext}` file (weights or a model)"));
    }
    if bytes.iter().take(8192).any(|&b| b == 0) {
        return Some("a binary file".to_string());
    }
    None
}

fn too_large(name: &str, size: &str) -> Diag {
    Diag::error(
        Code::IoTooLarge,
        format!("`{name}` is {size}; experiment files are at most {MAX_FILE_BYTES} bytes"),
    )
    .with_help("is this the right file? `.psy` files are short text files")
}

/// What a path is when it is neither a regular file nor a directory ("a FIFO (named
/// pipe)", "a socket", "a character device", "a block device"), from its metadata: reading
/// one may block forever (a FIFO without a writer) or never end (`/dev/zero`).
pub fn special_kind(meta: &Metadata) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_socket() {
            return Some("a socket");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
    }
    if meta.is_file() || meta.is_dir() {
        None
    } else {
        Some("not a regular file")
    }
}

/// Opens a file to read, refusing special files ([`special_kind`]) before opening them:
/// opening a FIFO blocks until something writes to it. The weights and checkpoint readers
/// open through this; the error is `InvalidInput` and names the kind.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let meta = std::fs::metadata(path)?;
    if let Some(kind) = special_kind(&meta) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is {kind}, not a regular file", path.display()),
        ));
    }
    File::open(path)
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
