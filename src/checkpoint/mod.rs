//! Reading PyTorch checkpoints (`torch.save(model.state_dict(), "net.pth")`) natively: no
//! Python, and no code from the file is ever run.
//!
//! Since PyTorch 1.6, `torch.save` writes a zip archive: `<prefix>/data.pkl` (a pickle of the
//! dict, in which every tensor is a call to `torch._utils._rebuild_tensor_v2` on a storage
//! named by a persistent id), one raw little-endian record per storage
//! (`<prefix>/data/<key>`), and a few small records (`version`, `byteorder`). The top folder
//! `<prefix>` is the file's name without extension when it was saved, so it varies.
//!
//! The pickle is read by a restricted unpickler (`pickle.rs`) that knows only the globals a
//! state dict needs (`collections.OrderedDict`, the tensor and parameter rebuild functions,
//! the `torch.*Storage` types and dtypes) and refuses any other ([`CheckpointError::Forbidden`]).
//! [`Checkpoint::open`] reads the pickle and checks every tensor against its storage record
//! (offsets, strides and sizes must fit, storages must fit the file), then
//! [`Checkpoint::read`] reads one tensor's bytes on demand, so a loader can fetch only the
//! tensors it needs. [`read_state_dict`] reads everything at once.
//!
//! Training checkpoints that nest the state dict (`{"state_dict": …, "epoch": 3}`, also
//! under `model`, `model_state_dict`, `net` and a few other usual keys, see [`NESTED_KEYS`])
//! are looked into, and a `module.` prefix shared by every key (`nn.DataParallel`) is
//! removed. Entries that are not tensors (`_metadata`, epoch numbers, optimizer settings)
//! are skipped.
//!
//! TorchScript archives (`torch.jit.save`, e.g. OpenAI's CLIP `.pt` files) are read as
//! weights too: their `data.pkl` pickles the module tree, which the unpickler reads in a
//! TorchScript mode where the archive's own classes are names of inert attribute holders,
//! and the state dict is the walk `module.state_dict()` does (`torchscript.rs`); the
//! archive's code is never run (only its `__parameters__`/`__buffers__` lines are read, as
//! text). [`Checkpoint::is_torchscript`] tells which kind was read.
//!
//! The legacy format of PyTorch < 1.6 (still that of some torchvision weights, e.g.
//! `vgg16-397923af.pth`) is read too: five pickles in a row (magic number, version, system
//! info, the object, the storage keys), then each storage as an 8-byte element count and its
//! bytes. Only the tar format of the very first versions is refused.
mod kind;
mod pickle;
#[cfg(test)]
mod tests;
mod torchscript;

pub use kind::{file_kind, zip_kind, FileKind};

use pickle::{Object, PickleError, StorageKind, TensorRef, Unpickled, Value};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use zip::ZipArchive;

/// The largest `data.pkl` accepted (a resnet50 state dict's is 30 kB).
pub const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// The largest code file of a TorchScript archive read for its declarations (OpenAI's CLIP
/// ViT-B/32 has one of 600 kB).
pub const MAX_CODE_BYTES: u64 = 64 << 20;

/// Keys under which a training checkpoint may hold the state dict, tried in this order
/// when the top-level dict holds no tensors (and again one level down, up to three levels).
pub const NESTED_KEYS: [&str; 8] = [
    "state_dict",
    "model_state_dict",
    "model",
    "model_state",
    "net",
    "network",
    "weights",
    "params",
];

/// The prefix `nn.DataParallel` adds to every key; removed when all keys have it.
pub const DATA_PARALLEL_PREFIX: &str = "module.";

/// An element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// float32
    F32,
    /// float64
    F64,
    /// float16
    F16,
    /// bfloat16
    BF16,
    /// int64
    I64,
    /// int32
    I32,
    /// int16
    I16,
    /// int8
    I8,
    /// uint8
    U8,
    /// bool (one byte, 0 or 1)
    Bool,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    /// The safetensors name (`F32`, `BF16`, `BOOL`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
            Dtype::I16 => "I16",
            Dtype::I8 => "I8",
            Dtype::U8 => "U8",
            Dtype::Bool => "BOOL",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a checkpoint cannot be read. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Not a `torch.save` zip archive at all (e.g. a TorchScript archive, a tar file).
    #[error("{} is not a PyTorch checkpoint: {reason}", path.display())]
    NotCheckpoint {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// The tar format of the first PyTorch versions (0.1).
    #[error("{} is a tar archive, the format of the first PyTorch versions, which psyrun does not read", path.display())]
    Legacy {
        /// The file.
        path: PathBuf,
    },
    /// A damaged or truncated archive, or a pickle psyrun cannot follow.
    #[error("{} is damaged or not a valid PyTorch checkpoint: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The pickle names a class or function a state dict never needs.
    #[error("{}: refusing to load `{name}`: a checkpoint may only hold tensors", path.display())]
    Forbidden {
        /// The file.
        path: PathBuf,
        /// The global, `module.name` (e.g. `posix.system`).
        name: String,
    },
    /// Valid, but holds something psyrun cannot use (a complex tensor, big-endian data).
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What psyrun cannot use.
        reason: String,
    },
    /// No dict of tensors found.
    #[error("{}: no tensors found: {found}", path.display())]
    NoTensors {
        /// The file.
        path: PathBuf,
        /// What the file holds instead.
        found: String,
    },
}

impl CheckpointError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CheckpointError::Io { path, .. }
            | CheckpointError::NotCheckpoint { path, .. }
            | CheckpointError::Legacy { path }
            | CheckpointError::Malformed { path, .. }
            | CheckpointError::Forbidden { path, .. }
            | CheckpointError::Unsupported { path, .. }
            | CheckpointError::NoTensors { path, .. } => path,
        }
    }

    /// What the user can do about it (one or two sentences).
    pub fn help(&self) -> &'static str {
        match self {
            CheckpointError::Io { .. } => "a relative path is taken from the experiment file's folder",
            CheckpointError::Legacy { .. } => {
                "re-save it once with a recent PyTorch, if you trust the file (loading this \
                 format runs its code): `torch.save(torch.load(\"old.pth\", weights_only=False), \"new.pth\")`"
            }
            CheckpointError::Forbidden { .. } => {
                "psyrun reads only tensors, numbers, strings, lists and dicts from a checkpoint and \
                 never runs code from it; if the file holds a whole model or other Python objects, \
                 save just the weights: `torch.save(model.state_dict(), \"net.pth\")`"
            }
            CheckpointError::NoTensors { .. } => {
                "the file must hold a state_dict (a dict of tensor names to tensors), at the top \
                 or under a key such as `state_dict` or `model`: `torch.save(model.state_dict(), \"net.pth\")`"
            }
            CheckpointError::NotCheckpoint { .. }
            | CheckpointError::Malformed { .. }
            | CheckpointError::Unsupported { .. } => {
                "psyrun reads .safetensors files, PyTorch .pth/.pt files written by \
                 `torch.save(model.state_dict(), \"net.pth\")`, and the weights of TorchScript \
                 archives (`torch.jit.save`)"
            }
        }
    }
}

/// A tensor of a checkpoint, before its data is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The state-dict key (after removing a `module.` prefix).
    pub key: String,
    /// The element type.
    pub dtype: Dtype,
    /// The shape (empty for a 0-d tensor).
    pub shape: Vec<usize>,
    /// The storage record's key.
    storage: String,
    /// Offset into the storage, in elements.
    offset: usize,
    /// Strides in elements.
    strides: Vec<usize>,
    /// Elements spanned in the storage from `offset` (0 for an empty tensor).
    extent: usize,
}

impl TensorInfo {
    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The size of the contiguous data [`Checkpoint::read`] returns.
    pub fn nbytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }

    /// Whether the view is C-contiguous (dimensions of size 1 may have any stride).
    fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&n, &s) in self.shape.iter().zip(&self.strides).rev() {
            if n != 1 && s != expected {
                return false;
            }
            expected = expected.saturating_mul(n);
        }
        true
    }
}

/// One tensor of a state dict with its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The state-dict key.
    pub key: String,
    /// The element type.
    pub dtype: Dtype,
    /// The shape (empty for a 0-d tensor).
    pub shape: Vec<usize>,
    /// The elements, little-endian, C-contiguous.
    pub data: Vec<u8>,
}

/// The tensors of a checkpoint, in the file's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDict {
    /// The tensors.
    pub entries: Vec<Entry>,
    /// Where the state dict was found when nested (`state_dict`, `model.state_dict`, …).
    pub nested_under: Option<String>,
    /// The prefix removed from every key (`module.`), if any.
    pub stripped_prefix: Option<String>,
}

/// Reads every tensor of a checkpoint.
pub fn read_state_dict(path: &Path) -> Result<StateDict, CheckpointError> {
    let mut ck = Checkpoint::open(path)?;
    let mut entries = Vec::with_capacity(ck.tensors().len());
    for i in 0..ck.tensors().len() {
        let data = ck.read(i)?;
        let t = &ck.tensors[i];
        entries.push(Entry {
            key: t.key.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            data,
        });
    }
    Ok(StateDict {
        entries,
        nested_under: ck.nested_under,
        stripped_prefix: ck.stripped_prefix,
    })
}

/// Where a storage record lies in the archive.
#[derive(Clone, Debug)]
struct Record {
    /// The name in the archive.
    name: String,
    /// Its (uncompressed) size.
    size: u64,
    /// Its first byte in the file when stored uncompressed (as torch.save does).
    stored_at: Option<u64>,
}

/// An open checkpoint: every tensor described and checked, data read on demand.
pub struct Checkpoint {
    path: PathBuf,
    /// The zip archive (`None` for the legacy format).
    archive: Option<ZipArchive<File>>,
    file: File,
    tensors: Vec<TensorInfo>,
    records: HashMap<String, Record>,
    nested_under: Option<String>,
    stripped_prefix: Option<String>,
    /// Read from a TorchScript archive (`torch.jit.save`) rather than a state dict.
    torchscript: bool,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .field("nested_under", &self.nested_under)
            .finish()
    }
}

const OLD_TORCHSCRIPT: &str = "it is a TorchScript archive of the format before PyTorch 1.3 \
     (no data.pkl), which psyrun does not read; save the weights with \
     `torch.save(model.state_dict(), \"net.pth\")` instead";

/// The pickled magic number that starts a legacy checkpoint (after `\x80\x02`).
const LEGACY_MAGIC: [u8; 12] = [
    0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// The legacy format's protocol version.
const LEGACY_VERSION: i64 = 1001;

/// How the file is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// PyTorch ≥ 1.6: a zip archive.
    Zip,
    /// PyTorch < 1.6: pickles in a row, then the raw storages.
    Legacy,
}

/// Tells the formats apart from the file's first 512 bytes.
fn sniff(path: &Path, head: &[u8], file_len: u64) -> Result<Format, CheckpointError> {
    let not = |reason: &str| CheckpointError::NotCheckpoint {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Format::Zip);
    }
    if head.len() >= 2 && head[0] == 0x80 && head[1] <= 5 {
        if head.get(2..14) == Some(&LEGACY_MAGIC[..]) {
            return Ok(Format::Legacy);
        }
        return Err(not(
            "it is a Python pickle, but not one written by torch.save",
        ));
    }
    if head.get(257..262) == Some(&b"ustar"[..]) {
        return Err(CheckpointError::Legacy {
            path: path.to_owned(),
        });
    }
    if head.len() >= 9 && head[8] == b'{' {
        let mut n = [0u8; 8];
        n.copy_from_slice(&head[..8]);
        if u64::from_le_bytes(n) < file_len {
            return Err(not(
                "it looks like a .safetensors file; give it the .safetensors extension",
            ));
        }
    }
    if head.is_empty() {
        return Err(not("the file is empty"));
    }
    Err(not(
        "it is neither a zip archive (torch.save since PyTorch 1.6) nor the older pickle format",
    ))
}

fn pickle_error(path: &Path, e: PickleError) -> CheckpointError {
    match e {
        PickleError::Malformed(reason) | PickleError::Truncated(reason) => {
            CheckpointError::Malformed {
                path: path.to_owned(),
                reason,
            }
        }
        PickleError::Forbidden(name) => CheckpointError::Forbidden {
            path: path.to_owned(),
            name,
        },
    }
}

impl Checkpoint {
    /// Opens a checkpoint: reads its pickle, finds the state dict and checks every tensor
    /// against the file. No tensor data is read yet.
    pub fn open(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = crate::source::open_regular(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut head = Vec::with_capacity(512);
        (&mut file).take(512).read_to_end(&mut head).map_err(io)?;
        let format = sniff(path, &head, file_len)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let (unpickled, mut archive, legacy_records, torchscript) = match format {
            Format::Zip => {
                let (u, archive, prefix, script) = open_zip(path, file)?;
                (u, Some((archive, prefix)), HashMap::new(), script)
            }
            Format::Legacy => {
                let (u, records) = open_legacy(path, &mut file, file_len)?;
                (u, None, records, false)
            }
        };
        let (found, nested_under) = match &mut archive {
            Some((archive, prefix)) if torchscript => {
                (script_state(path, &unpickled, archive, prefix)?, None)
            }
            _ => select_state_dict(&unpickled, path)?,
        };
        let records = match &mut archive {
            Some((archive, prefix)) => {
                let keys = found.iter().map(|(_, t)| t.storage.key.as_str());
                zip_records(path, archive, prefix, file_len, keys)?
            }
            None => legacy_records,
        };
        let mut tensors = Vec::with_capacity(found.len());
        let mut total: u64 = 0;
        for (key, t) in found {
            let info = tensor_info(path, &records, key, t)?;
            total = total.saturating_add(info.nbytes() as u64);
            tensors.push(info);
        }
        // Views may overlap (shared storages, expanded tensors), but not absurdly.
        let stored: u64 = records.values().map(|r| r.size).sum();
        let budget = stored.saturating_mul(16).saturating_add(16 << 20);
        if total > budget {
            return Err(CheckpointError::Malformed {
                path: path.to_owned(),
                reason: format!(
                    "its tensors would take {total} bytes from {stored} bytes of storage"
                ),
            });
        }
        let mut stripped_prefix = None;
        if !tensors.is_empty()
            && tensors.iter().all(|t| {
                t.key.starts_with(DATA_PARALLEL_PREFIX) && t.key.len() > DATA_PARALLEL_PREFIX.len()
            })
        {
            for t in &mut tensors {
                t.key.drain(..DATA_PARALLEL_PREFIX.len());
            }
            stripped_prefix = Some(DATA_PARALLEL_PREFIX.to_owned());
        }
        Ok(Checkpoint {
            path: path.to_owned(),
            archive: archive.map(|(a, _)| a),
            file: crate::source::open_regular(path).map_err(io)?,
            tensors,
            records,
            nested_under,
            stripped_prefix,
            torchscript,
        })
    }
}

/// The state dict of a TorchScript archive's module tree (see [`torchscript`]), its
/// classes' declarations read from their code files (as text).
fn script_state<'u>(
    path: &Path,
    u: &'u Unpickled,
    archive: &mut ZipArchive<File>,
    prefix: &str,
) -> Result<Found<'u>, CheckpointError> {
    use torchscript::TreeError;
    let mut files: HashMap<String, Option<String>> = HashMap::new();
    let mut declared = |class: &str| -> Result<Option<torchscript::Declared>, TreeError> {
        let Some((file, name)) = torchscript::code_file(class) else {
            return Err(TreeError::Malformed(format!(
                "`{class}` is no TorchScript class name"
            )));
        };
        if !files.contains_key(&file) {
            let record = format!("{prefix}/{file}");
            let code = if archive.index_for_name(&record).is_some() {
                let bytes = read_small(archive, &record, MAX_CODE_BYTES)
                    .map_err(|e| TreeError::Malformed(format!("{file}: {e}")))?;
                Some(
                    String::from_utf8(bytes)
                        .map_err(|_| TreeError::Malformed(format!("{file} is not UTF-8 text")))?,
                )
            } else {
                None
            };
            files.insert(file.clone(), code);
        }
        Ok(files[&file]
            .as_deref()
            .and_then(|code| torchscript::declarations(code, name)))
    };
    let found = torchscript::state_tensors(u, &mut declared).map_err(|e| match e {
        TreeError::Malformed(reason) => CheckpointError::Malformed {
            path: path.to_owned(),
            reason,
        },
        TreeError::Unsupported(reason) => CheckpointError::Unsupported {
            path: path.to_owned(),
            reason,
        },
    })?;
    if found.is_empty() {
        return Err(CheckpointError::NoTensors {
            path: path.to_owned(),
            found: "the TorchScript module has no parameters or buffers".into(),
        });
    }
    Ok(found)
}

/// Opens a zip checkpoint: its archive, its pickle, its records' folder (`<prefix>`), and
/// whether it is a TorchScript archive (its `data.pkl` then read in TorchScript mode).
fn open_zip(
    path: &Path,
    file: File,
) -> Result<(Unpickled, ZipArchive<File>, String, bool), CheckpointError> {
    let malformed = |reason: String| CheckpointError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let not = |reason: &str| CheckpointError::NotCheckpoint {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let mut archive = ZipArchive::new(file)
        .map_err(|e| malformed(format!("not a readable zip archive ({e}); truncated?")))?;
    // The records are `<prefix>/data.pkl`, `<prefix>/data/<key>`, …
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| malformed(format!("an entry name cannot be read ({e})")))?;
    let torchscript = |prefix: Option<&str>| {
        names.iter().any(|n| {
            let n = match prefix {
                Some(p) => n.strip_prefix(p).and_then(|n| n.strip_prefix('/')),
                None => n.split_once('/').map(|(_, n)| n),
            };
            n.is_some_and(|n| n == "constants.pkl" || n.starts_with("code/"))
        })
    };
    let Some(prefix) = names.iter().find_map(|n| {
        n.strip_suffix("/data.pkl")
            .filter(|p| !p.is_empty() && !p.contains('/'))
    }) else {
        return Err(not(if torchscript(None) {
            OLD_TORCHSCRIPT
        } else {
            "a zip archive without `data.pkl`, so not written by torch.save"
        }));
    };
    let script = torchscript(Some(prefix));
    let prefix = prefix.to_owned();
    let pkl = read_small(
        &mut archive,
        &format!("{prefix}/data.pkl"),
        MAX_PICKLE_BYTES,
    )
    .map_err(|e| malformed(format!("data.pkl: {e}")))?;
    if names.iter().any(|n| *n == format!("{prefix}/byteorder")) {
        let order = read_small(&mut archive, &format!("{prefix}/byteorder"), 64)
            .map_err(|e| malformed(format!("byteorder: {e}")))?;
        if order != b"little" {
            return Err(big_endian(path));
        }
    }
    let unpickled = if script {
        pickle::unpickle_script(&pkl)
    } else {
        pickle::unpickle(&pkl)
    }
    .map_err(|e| pickle_error(path, e))?;
    Ok((unpickled, archive, prefix, script))
}

fn big_endian(path: &Path) -> CheckpointError {
    CheckpointError::Unsupported {
        path: path.to_owned(),
        reason: "it was saved on a big-endian machine; psyrun reads little-endian checkpoints only"
            .into(),
    }
}

/// Where the storage records `keys` lie in a zip archive.
fn zip_records<'k>(
    path: &Path,
    archive: &mut ZipArchive<File>,
    prefix: &str,
    file_len: u64,
    keys: impl Iterator<Item = &'k str>,
) -> Result<HashMap<String, Record>, CheckpointError> {
    let malformed = |reason: String| CheckpointError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let mut records = HashMap::new();
    for key in keys {
        if records.contains_key(key) {
            continue;
        }
        let name = format!("{prefix}/data/{key}");
        let zf = archive.by_name(&name).map_err(|e| {
            malformed(format!(
                "storage record `{name}` is missing or unreadable ({e})"
            ))
        })?;
        let stored = zf.compression() == zip::CompressionMethod::Stored;
        // Known once the entry is opened (its local header is read then); `None` would mean a
        // header the library could not place, so the record cannot be read in place.
        let Some(data_start) = zf.data_start() else {
            return Err(malformed(format!(
                "storage record `{name}` has no readable local header"
            )));
        };
        let end = data_start.checked_add(zf.compressed_size());
        if stored && (zf.size() != zf.compressed_size() || end.is_none_or(|e| e > file_len)) {
            return Err(malformed(format!(
                "storage record `{name}` runs past the end of the file (truncated?)"
            )));
        }
        // Deflate cannot shrink data more than about 1032 times.
        if !stored && zf.size() > zf.compressed_size().saturating_mul(1100) + 4096 {
            return Err(malformed(format!(
                "storage record `{name}` claims an impossible size"
            )));
        }
        let record = Record {
            name,
            size: zf.size(),
            stored_at: stored.then_some(data_start),
        };
        records.insert(key.to_owned(), record);
    }
    Ok(records)
}

/// The pickles of a legacy file: magic number, protocol version, system info, the object,
/// the storage keys. Returns the object, the keys, where the storages start, and whether
/// the file is little-endian.
fn legacy_pickles(buf: &[u8]) -> Result<(Unpickled, Vec<String>, u64, bool), PickleError> {
    let bad = |what: &str| Err(PickleError::Malformed(format!("legacy format: {what}")));
    let mut at = 0usize;
    let mut next = || -> Result<Unpickled, PickleError> {
        let u = pickle::unpickle(buf.get(at..).unwrap_or_default())?;
        at += u.end;
        Ok(u)
    };
    let magic = next()?;
    if magic.root != Value::BigInt {
        return bad("wrong magic number");
    }
    if next()?.root != Value::Int(LEGACY_VERSION) {
        return bad("unknown protocol version");
    }
    let info = next()?;
    let little_endian = match info.object(&info.root) {
        Some(Object::Dict(d)) => d.get("little_endian") != Some(&Value::Bool(false)),
        _ => return bad("system info is not a dict"),
    };
    let main = next()?;
    let list = next()?;
    let Some(Object::List(items)) = list.object(&list.root) else {
        return bad("storage keys are not a list");
    };
    let mut keys = Vec::with_capacity(items.len());
    for k in items {
        match k {
            Value::Str(s) => keys.push(s.to_string()),
            _ => return bad("a storage key is not a string"),
        }
    }
    Ok((main, keys, at as u64, little_endian))
}

/// Opens a legacy file: its pickles (read in growing chunks, since only the storages that
/// follow can be large), then the size header of each storage, in the order of the keys.
fn open_legacy(
    path: &Path,
    file: &mut File,
    file_len: u64,
) -> Result<(Unpickled, HashMap<String, Record>), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let malformed = |reason: String| CheckpointError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let limit = file_len.min(MAX_PICKLE_BYTES);
    let mut want = limit.min(1 << 20);
    let (main, keys, mut pos, little_endian) = loop {
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        (&mut *file).take(want).read_to_end(&mut buf).map_err(io)?;
        match legacy_pickles(&buf) {
            Ok(x) => break x,
            Err(PickleError::Truncated(_)) if want < limit => want = (want * 16).min(limit),
            Err(e) => return Err(pickle_error(path, e)),
        }
    };
    if !little_endian {
        return Err(big_endian(path));
    }
    let sizes: HashMap<&str, u64> = main
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Storage(s) => Some((s.key.as_str(), s.kind.element_size())),
            _ => None,
        })
        .collect();
    let mut records = HashMap::new();
    for key in keys {
        let Some(&es) = sizes.get(key.as_str()) else {
            return Err(malformed(format!(
                "storage `{key}` is listed but never used"
            )));
        };
        let mut header = [0u8; 8];
        if pos.saturating_add(8) > file_len {
            return Err(malformed(format!(
                "storage `{key}` is missing (truncated?)"
            )));
        }
        file.seek(SeekFrom::Start(pos)).map_err(io)?;
        file.read_exact(&mut header).map_err(io)?;
        let size = u64::from_le_bytes(header).checked_mul(es);
        let start = pos + 8;
        match size.and_then(|n| start.checked_add(n)) {
            Some(end) if end <= file_len => {
                records.insert(
                    key.clone(),
                    Record {
                        name: format!("storage {key}"),
                        size: end - start,
                        stored_at: Some(start),
                    },
                );
                pos = end;
            }
            _ => {
                return Err(malformed(format!(
                    "storage `{key}` runs past the end of the file (truncated?)"
                )))
            }
        }
    }
    Ok((main, records))
}

/// Checks one tensor against its storage record.
fn tensor_info(
    path: &Path,
    records: &HashMap<String, Record>,
    key: String,
    t: &TensorRef,
) -> Result<TensorInfo, CheckpointError> {
    let malformed = |reason: String| CheckpointError::Malformed {
        path: path.to_owned(),
        reason: format!("tensor `{key}`: {reason}"),
    };
    let dtype = match &t.dtype {
        Ok(d) => *d,
        Err(name) => {
            return Err(CheckpointError::Unsupported {
                path: path.to_owned(),
                reason: format!("tensor `{key}` has dtype {name}, which psyrun cannot read"),
            })
        }
    };
    let es = dtype.size() as u64;
    let storage_bytes = match t.storage.kind {
        StorageKind::Untyped => Some(t.storage.size),
        _ => t.storage.size.checked_mul(es),
    }
    .ok_or_else(|| malformed("storage size overflows".into()))?;
    let Some(record) = records.get(&t.storage.key) else {
        return Err(malformed(format!(
            "its storage `{}` is missing",
            t.storage.key
        )));
    };
    if storage_bytes > record.size {
        return Err(malformed(format!(
            "its storage claims {storage_bytes} bytes, the record holds {}",
            record.size
        )));
    }
    let storage_elems = storage_bytes / es;
    let mut numel: u64 = 1;
    let mut last: u64 = 0;
    for (&n, &s) in t.shape.iter().zip(&t.strides) {
        numel = numel
            .checked_mul(n)
            .ok_or_else(|| malformed("its size overflows".into()))?;
        if n > 0 {
            last = (n - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| malformed("its strides overflow".into()))?;
        }
    }
    let extent = if numel == 0 {
        0
    } else {
        last.saturating_add(1)
    };
    if numel > 0 && t.offset.saturating_add(extent) > storage_elems {
        return Err(malformed(format!(
                "the view (offset {}, size {:?}, stride {:?}) runs past its storage of {storage_elems} elements",
                t.offset, t.shape, t.strides
            )));
    }
    let nbytes = numel
        .checked_mul(es)
        .ok_or_else(|| malformed("its size overflows".into()))?;
    let usize_of = |x: u64| usize::try_from(x).map_err(|_| malformed("too large".into()));
    usize_of(nbytes)?;
    let shape = t
        .shape
        .iter()
        .map(|&n| usize_of(n))
        .collect::<Result<_, _>>()?;
    let strides = t
        .strides
        .iter()
        .map(|&s| usize_of(s))
        .collect::<Result<_, _>>()?;
    let (offset, extent) = (usize_of(t.offset)?, usize_of(extent)?);
    Ok(TensorInfo {
        key,
        dtype,
        shape,
        storage: t.storage.key.clone(),
        offset,
        strides,
        extent,
    })
}

impl Checkpoint {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor of the state dict, in the file's order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Where the state dict was found when nested (`state_dict`, `model.state_dict`, …).
    pub fn nested_under(&self) -> Option<&str> {
        self.nested_under.as_deref()
    }

    /// The prefix removed from every key (`module.`), if any.
    pub fn stripped_prefix(&self) -> Option<&str> {
        self.stripped_prefix.as_deref()
    }

    /// Whether the tensors are the parameters and buffers of a TorchScript archive's module
    /// (`torch.jit.save`, e.g. OpenAI's CLIP `.pt` files), read without running its code.
    pub fn is_torchscript(&self) -> bool {
        self.torchscript
    }

    /// Reads tensor `index` of [`Checkpoint::tensors`]: its elements, little-endian and
    /// C-contiguous (a strided view is gathered).
    pub fn read(&mut self, index: usize) -> Result<Vec<u8>, CheckpointError> {
        let path = self.path.clone();
        let Some(t) = self.tensors.get(index).cloned() else {
            return Err(CheckpointError::Malformed {
                path,
                reason: format!("no tensor number {index}"),
            });
        };
        if t.numel() == 0 {
            return Ok(Vec::new());
        }
        let es = t.dtype.size();
        let (start, len) = (t.offset * es, t.extent * es);
        let Some(record) = self.records.get(&t.storage).cloned() else {
            return Err(CheckpointError::Malformed {
                path,
                reason: format!("tensor `{}`: storage record not found", t.key),
            });
        };
        let raw = self.read_range(&record, start as u64, len).map_err(|e| {
            CheckpointError::Malformed {
                path: path.clone(),
                reason: format!("tensor `{}`: reading `{}`: {e}", t.key, record.name),
            }
        })?;
        if t.is_contiguous() {
            return Ok(raw);
        }
        gather(&raw, es, &t.shape, &t.strides).ok_or_else(|| CheckpointError::Malformed {
            path,
            reason: format!("tensor `{}`: strides do not fit its storage", t.key),
        })
    }

    fn read_range(&mut self, record: &Record, start: u64, len: usize) -> io::Result<Vec<u8>> {
        if let Some(at) = record.stored_at {
            self.file.seek(SeekFrom::Start(at + start))?;
            let mut buf = vec![0u8; len];
            self.file.read_exact(&mut buf)?;
            return Ok(buf);
        }
        // A compressed record (never written by torch.save): decompress up to the range,
        // growing the buffer only as data really arrives.
        let Some(archive) = &mut self.archive else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "no archive"));
        };
        let mut zf = archive
            .by_name(&record.name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        io::copy(&mut (&mut zf).take(start), &mut io::sink())?;
        let mut buf = Vec::new();
        (&mut zf).take(len as u64).read_to_end(&mut buf)?;
        if buf.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "record shorter than its tensors",
            ));
        }
        Ok(buf)
    }
}

/// Reads a whole small record, refusing more than `max` bytes.
fn read_small(archive: &mut ZipArchive<File>, name: &str, max: u64) -> io::Result<Vec<u8>> {
    let zf = archive
        .by_name(name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if zf.size() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes, more than the {max} accepted", zf.size()),
        ));
    }
    let mut buf = Vec::new();
    zf.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than the {max} bytes accepted"),
        ));
    }
    Ok(buf)
}

/// Copies a strided view out of `src` (which starts at the view's offset) into C order.
/// `None` if an index falls outside `src` (excluded by [`Checkpoint::open`]'s checks).
fn gather(src: &[u8], es: usize, shape: &[usize], strides: &[usize]) -> Option<Vec<u8>> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel.checked_mul(es)?);
    let mut idx = vec![0usize; shape.len()];
    let mut off = 0usize;
    for _ in 0..numel {
        let b = off.checked_mul(es)?;
        out.extend_from_slice(src.get(b..b.checked_add(es)?)?);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            off = off.checked_add(strides[d])?;
            if idx[d] < shape[d] {
                break;
            }
            off = off.checked_sub(strides[d].checked_mul(shape[d])?)?;
            idx[d] = 0;
        }
    }
    Some(out)
}

/// The tensors of a state dict by key, before they are checked.
type Found<'u> = Vec<(String, &'u TensorRef)>;

/// Finds the dict of tensors: the top level, or nested under one of [`NESTED_KEYS`].
/// Returns the tensors (non-tensor entries skipped) and where they were found.
fn select_state_dict<'u>(
    u: &'u Unpickled,
    path: &Path,
) -> Result<(Found<'u>, Option<String>), CheckpointError> {
    let no = |found: String| CheckpointError::NoTensors {
        path: path.to_owned(),
        found,
    };
    let mut dict = match u.object(&u.root) {
        Some(Object::Dict(d)) => d,
        Some(o) => return Err(no(format!("the file holds {}, not a dict", o.kind()))),
        None => {
            return Err(no(format!(
                "the file holds {}, not a dict",
                describe(&u.root)
            )))
        }
    };
    let mut under: Vec<&str> = Vec::new();
    loop {
        let tensors: Vec<(String, &TensorRef)> = dict
            .items
            .iter()
            .filter_map(|(k, v)| match (k, u.object(v)) {
                (Value::Str(k), Some(Object::Tensor(t))) => Some((k.to_string(), t)),
                _ => None,
            })
            .collect();
        if !tensors.is_empty() {
            let at = (!under.is_empty()).then(|| under.join("."));
            return Ok((tensors, at));
        }
        let next = (under.len() < 3)
            .then(|| {
                NESTED_KEYS
                    .iter()
                    .find_map(|&k| match dict.get(k).and_then(|v| u.object(v)) {
                        Some(Object::Dict(d)) => Some((k, d)),
                        _ => None,
                    })
            })
            .flatten();
        match next {
            Some((k, d)) => {
                under.push(k);
                dict = d;
            }
            None => break,
        }
    }
    let keys: Vec<String> = dict
        .items
        .iter()
        .take(12)
        .map(|(k, v)| {
            let what = match u.object(v) {
                Some(o) => o.kind().to_owned(),
                None => describe(v),
            };
            match k {
                Value::Str(s) => format!("`{s}` ({what})"),
                k => format!("{} ({what})", describe(k)),
            }
        })
        .collect();
    let place = if under.is_empty() {
        "the dict".to_owned()
    } else {
        format!("the dict under `{}`", under.join("."))
    };
    Err(no(if keys.is_empty() {
        format!("{place} is empty")
    } else {
        let more = if dict.items.len() > keys.len() {
            format!(", … ({} entries)", dict.items.len())
        } else {
            String::new()
        };
        format!("{place} holds {}{more}", keys.join(", "))
    }))
}

/// What a plain value is, for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => format!("the number {i}"),
        Value::BigInt => "a large integer".into(),
        Value::Float(x) => format!("the number {x}"),
        Value::Str(_) => "a string".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::Obj(_) => "an object".into(),
    }
}
