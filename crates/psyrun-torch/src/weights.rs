//! Loading weights into a [`Backbone`] by torchvision `state_dict()` key.
//!
//! `.safetensors` files are read with a small reader of our own: the JSON header first, then
//! only the tensors the cut needs (a vgg16 cut in `features` never reads the 400 MB of
//! `classifier.0.weight`). Every key is checked before anything is copied, and all problems
//! are reported together ([`Mismatch`]):
//! - missing: a key the cut needs that the file lacks (`num_batches_tracked` may be absent,
//!   as in checkpoints from before PyTorch 0.4.1; it is then set to 0 as PyTorch does);
//! - unexpected: a key that is no torchvision key of the architecture at all;
//! - shape and dtype mismatches of the keys the cut needs.
//!
//! Keys of the architecture past the cut are accepted and ignored, so a full torchvision
//! checkpoint loads into any cut (and so are the keys of modules torchvision runs only while
//! training, GoogLeNet's and Inception v3's auxiliary classifiers, which are never needed).
//! DenseNet's keys in the layout of torchvision's published files
//! (`denselayer1.norm.1.weight`) are renamed as torchvision renames them ([`legacy_key`]),
//! so those files and `model.state_dict()` files load alike. float16, bfloat16 and float64 tensors are converted to
//! float32.
//!
//! PyTorch checkpoints (`.pth`, `.pt`, `.bin`, `.tar`, `.ckpt` written by `torch.save`) are
//! read by [`psyrun::checkpoint`] (no Python, no code from the file is run), the same way:
//! every key checked first, then only the tensors the cut needs read. A state dict nested in
//! a training checkpoint (`{"state_dict": …, "epoch": 3}`) and `module.` prefixes are handled
//! there.
//!
//! Named torchvision weight sets (`weights imagenet`) are files of torch's hub cache, found or
//! downloaded by [`psyrun::hub`] ([`load_torchvision`]), then loaded as any `.pth` file.
use crate::backbone::{state_keys, Backbone, StateKey};
use psyrun::checkpoint::{Checkpoint, CheckpointError, Dtype};
use psyrun::hub::{Fetch, Hub, HubError};
use psyrun::models::catalog::{self, Arch, Family};
use psyrun::plan::Weights;
use psyrun::progress::{Event, Observer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use tch::{Kind, Tensor};

/// Why weights could not be loaded. On any error the backbone is left unchanged.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file.
    #[error("{} is not a valid .safetensors file: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A PyTorch checkpoint (`.pth`, `.pt`, …) that cannot be read; the message names the file.
    #[error("{source}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: CheckpointError,
    },
    /// Neither `.safetensors` nor a PyTorch checkpoint extension.
    #[error("{}: unknown weights format (expected .safetensors, or .pth/.pt/.bin/.tar/.ckpt written by torch.save)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A named torchvision weight set (e.g. `IMAGENET1K_V1`) is neither in torch's cache nor
    /// downloadable, or its file is corrupt.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The keys do not fit the architecture (everything wrong, listed at once).
    #[error("{0}")]
    Mismatch(Box<Mismatch>),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// A shape that differs from torchvision's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The torchvision key.
    pub key: String,
    /// The shape the architecture has.
    pub expected: Vec<i64>,
    /// The shape in the file.
    pub found: Vec<i64>,
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {:?}, found {:?}",
            self.key, self.expected, self.found
        )
    }
}

/// Every way a weights file does not fit the architecture and cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Where the weights came from.
    pub source: String,
    /// The architecture.
    pub arch: Arch,
    /// The cut.
    pub cut: String,
    /// Keys the cut needs that are absent, in torchvision order.
    pub missing: Vec<String>,
    /// Keys that are no torchvision key of the architecture, sorted.
    pub unexpected: Vec<String>,
    /// Needed keys with another shape, in torchvision order.
    pub shapes: Vec<ShapeMismatch>,
    /// Needed keys of an unusable dtype (`key: expected float, found I8`), in torchvision order.
    pub dtypes: Vec<String>,
}

impl Mismatch {
    fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shapes.is_empty()
            && self.dtypes.is_empty()
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "weights in {} do not fit {} (cut after `{}`)",
            self.source, self.arch, self.cut
        )?;
        let mut list = |title: &str, items: Vec<String>| -> fmt::Result {
            if !items.is_empty() {
                write!(f, "\n  {title} ({}):", items.len())?;
                for i in items {
                    write!(f, "\n    {i}")?;
                }
            }
            Ok(())
        };
        list("missing keys", self.missing.clone())?;
        list("unexpected keys", self.unexpected.clone())?;
        list(
            "shape mismatches",
            self.shapes.iter().map(|s| s.to_string()).collect(),
        )?;
        list("unusable dtypes", self.dtypes.clone())
    }
}

/// What a successful load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables filled from the source.
    pub loaded: usize,
    /// Keys of the architecture past the cut, ignored (and the keys of a CLIP checkpoint
    /// outside its image encoder, see [`Arch::weights_prefix`]).
    pub ignored: usize,
    /// `num_batches_tracked` buffers absent from the source, set to 0.
    pub defaulted: usize,
    /// The file the weights came from (for the manifest's hash), when they came from one.
    pub path: Option<std::path::PathBuf>,
}

/// Fills the backbone as the plan says: seeded random initialisation, a local file (a
/// relative path is taken relative to `base_dir`, e.g. the experiment's folder), or a named
/// torchvision weight set from torch's cache, downloaded if absent ([`load_torchvision`] with
/// [`Hub::from_env`]); cache checks and downloads are reported to `observer`, and setting
/// `stop` (Ctrl-C) ends a download. Returns the load report for files.
pub fn apply(
    backbone: &mut Backbone,
    weights: &Weights,
    seed: u64,
    base_dir: &Path,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Option<LoadReport>, WeightsError> {
    match weights {
        Weights::Random => {
            backbone.init_random(seed);
            Ok(None)
        }
        Weights::File(file) => {
            let path = base_dir.join(file);
            load_file(backbone, &path).map(|r| {
                Some(LoadReport {
                    path: Some(path),
                    ..r
                })
            })
        }
        Weights::Torchvision(set) => {
            load_torchvision(backbone, &Hub::from_env()?, set, observer, stop).map(Some)
        }
    }
}

/// Loads a named torchvision weight set (`IMAGENET1K_V1`, …) of the backbone's architecture:
/// the file from `hub`'s cache, or downloaded into it first, hash-checked either way.
/// Setting `stop` ends a download ([`HubError::Cancelled`]).
pub fn load_torchvision(
    backbone: &mut Backbone,
    hub: &Hub,
    set: &str,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<LoadReport, WeightsError> {
    let mut shown = DownloadProgress::new(observer);
    let path = hub.resolve(backbone.arch(), set, stop, &mut |f| shown.event(f))?;
    load_published(backbone, &path)
}

/// Loads a torchvision weight file found by the hub into the backbone as torchvision's
/// constructor does with its published weights: key by key (DenseNet's older key layout
/// renamed, see [`legacy_key`]), and with `transform_input` on where torchvision turns it on
/// for them (GoogLeNet, see [`Backbone::set_transform_input`]).
pub fn load_published(backbone: &mut Backbone, path: &Path) -> Result<LoadReport, WeightsError> {
    let report = load_file(backbone, path)?;
    backbone.set_transform_input(backbone.arch().transforms_input());
    Ok(LoadReport {
        path: Some(path.to_owned()),
        ..report
    })
}

/// Hub events as run events: status lines, and a `download` phase counted in MB.
struct DownloadProgress<'o> {
    observer: &'o mut dyn Observer,
    /// A phase was started (the size is known).
    phase: bool,
    bytes: u64,
    shown_mb: u64,
}

impl<'o> DownloadProgress<'o> {
    const MB: u64 = 1_000_000;

    fn new(observer: &'o mut dyn Observer) -> Self {
        Self {
            observer,
            phase: false,
            bytes: 0,
            shown_mb: 0,
        }
    }

    fn advance_to(&mut self, mb: u64) {
        if mb > self.shown_mb {
            self.observer.event(Event::Advance(mb - self.shown_mb));
            self.shown_mb = mb;
        }
    }

    fn event(&mut self, f: Fetch<'_>) {
        match f {
            Fetch::Checking { path } => self.observer.event(Event::Status(format!(
                "torchvision weights {} (checking its SHA-256)",
                path.display()
            ))),
            Fetch::Start {
                file,
                url,
                dir,
                total,
            } => {
                self.observer.event(Event::Status(format!(
                    "downloading {file} from {url} into {}",
                    dir.display()
                )));
                if let Some(t) = total {
                    self.phase = true;
                    self.observer.event(Event::Phase {
                        name: "download",
                        total: t.div_ceil(Self::MB),
                        unit: "MB",
                    });
                }
            }
            Fetch::Bytes(n) => {
                self.bytes += n;
                if self.phase {
                    self.advance_to(self.bytes / Self::MB);
                }
            }
            Fetch::Done { path } => {
                if self.phase {
                    self.advance_to(self.bytes.div_ceil(Self::MB));
                    self.observer.event(Event::PhaseDone);
                }
                self.observer.event(Event::Status(format!(
                    "downloaded and checked {}",
                    path.display()
                )));
            }
        }
    }
}

/// Loads a weights file, choosing the format by extension.
pub fn load_file(backbone: &mut Backbone, path: &Path) -> Result<LoadReport, WeightsError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("safetensors") => load_safetensors(backbone, path),
        Some(e)
            if ["pth", "pt", "bin", "tar", "ckpt"]
                .iter()
                .any(|x| e.eq_ignore_ascii_case(x)) =>
        {
            load_checkpoint(backbone, path)
        }
        _ => Err(WeightsError::UnknownFormat {
            path: path.to_owned(),
        }),
    }
}

/// Loads a `.safetensors` file (reading only the tensors the cut needs).
pub fn load_safetensors(backbone: &mut Backbone, path: &Path) -> Result<LoadReport, WeightsError> {
    let mut file = SafetensorsFile::open(path)?;
    let found: Vec<(String, Vec<i64>, Kind)> = file
        .entries
        .iter()
        .map(|(k, e)| (k.clone(), e.shape.clone(), e.kind))
        .collect();
    load_with(
        backbone,
        &path.display().to_string(),
        &found,
        |key: &str| file.read(key),
    )
}

/// Loads a PyTorch checkpoint written by `torch.save` (reading only the tensors the cut
/// needs, as for safetensors).
pub fn load_checkpoint(backbone: &mut Backbone, path: &Path) -> Result<LoadReport, WeightsError> {
    let err = |source| WeightsError::Checkpoint {
        path: path.to_owned(),
        source,
    };
    let mut ck = Checkpoint::open(path).map_err(err)?;
    let mut source = path.display().to_string();
    let mut notes = Vec::new();
    if let Some(at) = ck.nested_under() {
        notes.push(format!("under `{at}`"));
    }
    if let Some(p) = ck.stripped_prefix() {
        notes.push(format!("`{p}` prefix removed"));
    }
    if !notes.is_empty() {
        source = format!("{source} ({})", notes.join(", "));
    }
    let dim = |d: usize| i64::try_from(d).unwrap_or(i64::MAX);
    let found: Vec<(String, Vec<i64>, Kind)> = ck
        .tensors()
        .iter()
        .map(|t| {
            let shape = t.shape.iter().map(|&d| dim(d)).collect();
            (t.key.clone(), shape, kind_of_dtype(t.dtype))
        })
        .collect();
    let index: HashMap<String, usize> = ck
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.key.clone(), i))
        .collect();
    load_with(backbone, &source, &found, |key: &str| {
        let Some(&i) = index.get(key) else {
            return Err(WeightsError::Torch(tch::TchError::Kind(format!(
                "`{key}` vanished from the checkpoint"
            ))));
        };
        let data = ck.read(i).map_err(err)?;
        let (_, shape, kind) = &found[i];
        Ok(Tensor::f_from_data_size(&data, shape, *kind)?)
    })
}

fn kind_of_dtype(d: Dtype) -> Kind {
    match d {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::Bool => Kind::Bool,
    }
}

/// Loads named tensors held in memory (e.g. from `Tensor::read_safetensors`).
// Checkpoints go through `load_with` directly (only the tensors the cut needs are read);
// this is for callers that already hold the tensors (the tests, other programs).
pub fn load_tensors(
    backbone: &mut Backbone,
    source: &str,
    tensors: &[(String, Tensor)],
) -> Result<LoadReport, WeightsError> {
    let found: Vec<(String, Vec<i64>, Kind)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.size(), t.kind()))
        .collect();
    let by_key: HashMap<&str, &Tensor> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    load_with(backbone, source, &found, |key: &str| {
        Ok(by_key[key].shallow_clone())
    })
}

fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double
    )
}

fn is_int(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8
    )
}

/// Checks `found` (key, shape, kind) against the backbone, then copies each needed tensor
/// fetched by `fetch`.
fn load_with(
    backbone: &mut Backbone,
    source: &str,
    found: &[(String, Vec<i64>, Kind)],
    mut fetch: impl FnMut(&str) -> Result<Tensor, WeightsError>,
) -> Result<LoadReport, WeightsError> {
    // A CLIP checkpoint holds the whole model: the image encoder is what lies under
    // `visual.`; the rest (the text tower) is ignored. A file of the encoder alone is read as
    // it is.
    let prefix = backbone
        .arch()
        .weights_prefix()
        .filter(|p| found.iter().any(|(k, ..)| k.starts_with(p)));
    if let Some(p) = prefix {
        let encoder: Vec<(String, Vec<i64>, Kind)> = found
            .iter()
            .filter_map(|(k, s, kind)| Some((k.strip_prefix(p)?.to_owned(), s.clone(), *kind)))
            .collect();
        let others = found.len() - encoder.len();
        let mut report = load_keys(backbone, source, &encoder, &mut |key: &str| {
            fetch(&format!("{p}{key}"))
        })?;
        report.ignored += others;
        return Ok(report);
    }
    load_keys(backbone, source, found, &mut fetch)
}

/// [`load_with`] once the keys are the architecture's.
fn load_keys(
    backbone: &mut Backbone,
    source: &str,
    found: &[(String, Vec<i64>, Kind)],
    fetch: &mut dyn FnMut(&str) -> Result<Tensor, WeightsError>,
) -> Result<LoadReport, WeightsError> {
    let full: HashSet<String> = state_keys(backbone.arch())
        .into_iter()
        .map(|k| k.key)
        .collect();
    // Keys of an older layout under today's names (DenseNet's published files), each
    // fetched under the name the file gives it.
    let arch = backbone.arch();
    let given: HashSet<&str> = found.iter().map(|(k, ..)| k.as_str()).collect();
    let mut file_key: HashMap<String, String> = HashMap::new();
    let renamed: Vec<(String, Vec<i64>, Kind)> = found
        .iter()
        .map(|(k, shape, kind)| {
            let key = match legacy_key(arch, k) {
                Some(new) if full.contains(&new) && !given.contains(new.as_str()) => {
                    file_key.insert(new.clone(), k.clone());
                    new
                }
                _ => k.clone(),
            };
            (key, shape.clone(), *kind)
        })
        .collect();
    let found = renamed.as_slice();
    let built: Vec<StateKey> = backbone.built_keys().to_vec();
    let needed: HashMap<&str, &StateKey> = built.iter().map(|k| (k.key.as_str(), k)).collect();
    let in_file: BTreeMap<&str, (&[i64], Kind)> = found
        .iter()
        .map(|(k, s, kind)| (k.as_str(), (s.as_slice(), *kind)))
        .collect();

    let mut mismatch = Mismatch {
        source: source.to_owned(),
        arch: backbone.arch(),
        cut: backbone.cut().to_owned(),
        missing: Vec::new(),
        unexpected: in_file
            .keys()
            .filter(|k| !full.contains(**k))
            .map(|k| k.to_string())
            .collect(),
        shapes: Vec::new(),
        dtypes: Vec::new(),
    };
    let mut report = LoadReport {
        ignored: in_file
            .keys()
            .filter(|k| full.contains(**k) && !needed.contains_key(**k))
            .count(),
        ..LoadReport::default()
    };
    for k in &built {
        match in_file.get(k.key.as_str()) {
            None if k.key.ends_with(".num_batches_tracked") => report.defaulted += 1,
            None => mismatch.missing.push(k.key.clone()),
            Some((shape, kind)) => {
                if *shape != k.shape.as_slice() {
                    mismatch.shapes.push(ShapeMismatch {
                        key: k.key.clone(),
                        expected: k.shape.clone(),
                        found: shape.to_vec(),
                    });
                }
                let usable = if k.kind == Kind::Float {
                    is_float(*kind)
                } else {
                    is_int(*kind)
                };
                if !usable {
                    let want = if k.kind == Kind::Float {
                        "a float type"
                    } else {
                        "an integer type"
                    };
                    mismatch
                        .dtypes
                        .push(format!("{}: expected {want}, found {kind:?}", k.key));
                }
            }
        }
    }
    if !mismatch.is_empty() {
        return Err(WeightsError::Mismatch(Box::new(mismatch)));
    }

    // Fetch everything first so that a read error leaves the backbone unchanged.
    let mut fetched = Vec::new();
    for k in &built {
        if in_file.contains_key(k.key.as_str()) {
            let name = file_key.get(&k.key).unwrap_or(&k.key);
            let t = fetch(name)?.f_to_kind(k.kind)?;
            fetched.push((k, Some(t)));
        } else {
            fetched.push((k, None));
        }
    }
    let vars = backbone.variables();
    let device = backbone.device();
    tch::no_grad(|| -> Result<(), WeightsError> {
        for (k, t) in fetched {
            let mut var = vars[&k.key].shallow_clone();
            match t {
                Some(t) => {
                    var.f_copy_(&t.f_to_device(device)?)?;
                    report.loaded += 1;
                }
                None => {
                    let _ = var.f_fill_(0i64)?;
                }
            }
        }
        Ok(())
    })?;
    Ok(report)
}

/// Today's name of a key of an older torchvision layout that torchvision still renames when
/// it loads its own published files, or `None`. DenseNet's (`densenet.py`,
/// `_load_state_dict`): a dense layer's modules were once named `norm.1`, `relu.1`,
/// `conv.1`, `norm.2`, … , so its published files hold `…denselayer3.norm.1.weight` for
/// `…denselayer3.norm1.weight` (the same pattern: a path component ending in `denselayer`
/// and digits, then `norm`, `relu` or `conv`, `1` or `2`, and a parameter or running
/// statistic).
pub fn legacy_key(arch: Arch, key: &str) -> Option<String> {
    if catalog::family(arch) != Family::Densenet {
        return None;
    }
    let parts: Vec<&str> = key.split('.').collect();
    let [.., layer, module, index, param] = parts[..] else {
        return None;
    };
    let layer_ok = {
        let stem = layer.trim_end_matches(|c: char| c.is_ascii_digit());
        stem.len() < layer.len() && stem.ends_with("denselayer")
    };
    let ok = layer_ok
        && ["norm", "relu", "conv"].contains(&module)
        && ["1", "2"].contains(&index)
        && ["weight", "bias", "running_mean", "running_var"].contains(&param);
    ok.then(|| {
        let head = &parts[..parts.len() - 3];
        format!("{}.{module}{index}.{param}", head.join("."))
    })
}

// ---------------------------------------------------------------------------------------------
// A minimal safetensors reader: header first, tensors on demand.

struct Entry {
    kind: Kind,
    shape: Vec<i64>,
    begin: u64,
    end: u64,
}

struct SafetensorsFile {
    path: PathBuf,
    file: File,
    data_start: u64,
    entries: BTreeMap<String, Entry>,
}

fn kind_of(dtype: &str) -> Option<Kind> {
    Some(match dtype {
        "F32" => Kind::Float,
        "F16" => Kind::Half,
        "BF16" => Kind::BFloat16,
        "F64" => Kind::Double,
        "I64" => Kind::Int64,
        "I32" => Kind::Int,
        "I16" => Kind::Int16,
        "I8" => Kind::Int8,
        "U8" => Kind::Uint8,
        "BOOL" => Kind::Bool,
        _ => return None,
    })
}

impl SafetensorsFile {
    fn open(path: &Path) -> Result<Self, WeightsError> {
        let io = |source| WeightsError::Io {
            path: path.to_owned(),
            source,
        };
        let bad = |reason: String| WeightsError::Format {
            path: path.to_owned(),
            reason,
        };
        let mut file = psyrun::source::open_regular(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut len = [0u8; 8];
        file.read_exact(&mut len)
            .map_err(|_| bad("shorter than its 8-byte header length".into()))?;
        let header_len = u64::from_le_bytes(len);
        if header_len > 100_000_000 || 8 + header_len > file_len {
            return Err(bad(format!("implausible header length {header_len}")));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(io)?;
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = file_len - data_start;
        let mut entries = BTreeMap::new();
        for (name, v) in json {
            if name == "__metadata__" {
                continue;
            }
            let field = |f: &str| {
                v.get(f)
                    .ok_or_else(|| bad(format!("tensor `{name}` has no `{f}`")))
            };
            let dtype = field("dtype")?.as_str().unwrap_or("?");
            let kind = kind_of(dtype)
                .ok_or_else(|| bad(format!("tensor `{name}` has unsupported dtype {dtype}")))?;
            let ints = |f: &str| -> Result<Vec<u64>, WeightsError> {
                field(f)?
                    .as_array()
                    .and_then(|a| a.iter().map(|x| x.as_u64()).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| bad(format!("tensor `{name}`: `{f}` is not a list of integers")))
            };
            let shape: Vec<i64> = ints("shape")?.into_iter().map(|d| d as i64).collect();
            let offsets = ints("data_offsets")?;
            let [begin, end] = offsets[..] else {
                return Err(bad(format!(
                    "tensor `{name}`: data_offsets needs 2 numbers"
                )));
            };
            let numel: u64 = shape.iter().map(|&d| d as u64).product();
            let bytes = numel * kind.elt_size_in_bytes() as u64;
            if end < begin || end - begin != bytes || end > data_len {
                return Err(bad(format!(
                    "tensor `{name}`: data_offsets [{begin}, {end}] do not fit shape {shape:?} {dtype} in {data_len} data bytes"
                )));
            }
            entries.insert(
                name,
                Entry {
                    kind,
                    shape,
                    begin,
                    end,
                },
            );
        }
        Ok(SafetensorsFile {
            path: path.to_owned(),
            file,
            data_start,
            entries,
        })
    }

    fn read(&mut self, name: &str) -> Result<Tensor, WeightsError> {
        let e = &self.entries[name];
        let io = |source| WeightsError::Io {
            path: self.path.clone(),
            source,
        };
        let mut data = vec![0u8; (e.end - e.begin) as usize];
        self.file
            .seek(SeekFrom::Start(self.data_start + e.begin))
            .map_err(io)?;
        self.file.read_exact(&mut data).map_err(io)?;
        Ok(Tensor::f_from_data_size(&data, &e.shape, e.kind)?)
    }
}
