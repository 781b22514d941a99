//! `psyrun features`: a backbone's features of PNG images, or of an experiment's stimuli,
//! written to `.safetensors` or `.npy` (like thingsvision's extraction, and the hook for
//! parity checks against torchvision).
//!
//! Two forms:
//! * `psyrun features ARCH --cut LAYER --weights W [--pooling P] [--size PX] INPUTS...`: PNG
//!   images, each exactly `--size`×`--size` pixels (default 224; nothing is resized or
//!   cropped), read as PIL's `Image.open(p).convert("RGB")` reads them (grey repeated to
//!   RGB, alpha dropped, palettes expanded, 16-bit samples reduced to their high byte),
//!   divided by 255 and normalised with ImageNet's mean and std (`--normalize none`: not
//!   normalised);
//! * `psyrun features --experiment FILE [--count N] [--contrast C]`: the experiment's own
//!   backbone, cut, pooling, weights and seed, on the stimuli the interpreter renders (the
//!   same [`psyrun::trials`] code): the first `N` training pairs of epoch 1 (`train/000_a.png`,
//!   `train/000_b.png`, …) then, per frequency, the test gratings at contrast `C`, one per
//!   orientation × phase (`test/f<F>_o<O>_p<P>.png`), named as `psyrun stimuli` names the
//!   files it writes.
//!
//! Several `--cut`s of a catalog network give one array per cut from one extraction (the
//! backbone built once, up to the deepest, and one forward pass per batch keeping every
//! cut's output on its way, [`Backbone::try_features_many`](crate::backbone::Backbone::try_features_many)):
//! one tensor per cut in `.safetensors`, one `OUT.CUT.npy` per cut. Features stream to part files as they are computed, so memory
//! holds one batch whatever the number of images and cuts.
//!
//! The output is one float32 array `[N, …]` (per cut): the cut's output as it is (`[N, C, H, W]`, or
//! `[N, F]` for a flat layer) or, pooled, `[N, C, h, w]`, i.e. `[N]` followed by the plan's
//! `feature_shape`. `.safetensors` files hold it as the tensor `features`, and the metadata
//! `names` (a JSON array of the row names), `shape`, `arch`, `cut`, `pooling`, `weights`,
//! `seed`, `normalize` and `psyrun_version`; `.npy` files hold the array only.
//!
//! BatchNorm always runs in eval mode (running statistics): with batch statistics an image's
//! features would depend on the rest of its batch. An experiment with `batchnorm train` gets
//! the features of its backbone before any training drift.

// `Failure` carries diagnostics (a few hundred bytes each), returned on cold paths only.
#![allow(clippy::result_large_err)]

use crate::backbone::{pool, Backbone};
use crate::failure::{weights_failure, Failure};
use crate::script::{Net, ScriptError, ScriptNet};
use crate::weights::{self};
use psyrun::diag::{Code, Diag};
use psyrun::exit::{EXIT_INVALID, EXIT_RUN, EXIT_USAGE};
use psyrun::models::catalog::{self, Arch, Family, ShapeError};
use psyrun::plan::{self, BatchNorm, Normalize, Plan, Pooling, Weights};
use psyrun::progress::{Event, Observer};
use psyrun::report::npy_f32_header;
use psyrun::source::SourceFile;
use psyrun::trials::{self, TestGratings};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use tch::{Device, Kind, Tensor};

/// Images per forward pass (bounds memory; the features do not depend on it).
const CHUNK: usize = 32;

/// Bad input files reported one by one; the rest are counted.
const LISTED_PROBLEMS: usize = 10;

/// What `psyrun features` was asked for, as given on the command line (checked by
/// [`resolve`]): either `arch`, `cut`, `weights` and PNG `inputs`, or a TorchScript module
/// and `inputs`, or an `experiment` whose stimuli to use.
#[derive(Clone, Debug, Default)]
pub struct FeaturesOptions {
    /// Architecture name (`resnet18`, …), for PNG inputs.
    pub arch: Option<String>,
    /// PNG images, each `size`×`size`.
    pub inputs: Vec<PathBuf>,
    /// The layer to cut after.
    pub cut: Option<String>,
    /// `random`, `imagenet`, a torchvision weight set or a file.
    pub weights: Option<String>,
    /// A TorchScript module, instead of `arch`, `cut` and `weights`.
    pub torchscript: Option<PathBuf>,
    /// Adaptive pooling of the feature map (default none).
    pub pooling: Option<Pooling>,
    /// Seed of random weights (default 0).
    pub seed: Option<u64>,
    /// Image size in pixels (default 224).
    pub size: Option<u32>,
    /// Normalisation of PNG images (default ImageNet's).
    pub normalize: Option<ImageNormalize>,
    /// Where to compute (default auto, or the experiment's device).
    pub device: Option<plan::Device>,
    /// The output file (`.safetensors` or `.npy`).
    pub out: PathBuf,
    /// An experiment whose stimuli to extract, with its backbone.
    pub experiment: Option<PathBuf>,
    /// With `experiment`: training pairs to include (default 8).
    pub count: Option<u64>,
    /// With `experiment`: contrast of the test gratings (default the staircase's start).
    pub contrast: Option<f64>,
    /// Which tokens of a token sequence become the features (a catalog ViT's cut, or a
    /// TorchScript module whose sidecar says how its output lays them out).
    pub tokens: Option<plan::TokenReadout>,
    /// Further cuts of the same catalog network (`--cut` given more than once), written by
    /// the same pass.
    pub more_cuts: Vec<String>,
}

/// How PNG images are normalised after dividing by 255.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageNormalize {
    /// (x − mean) / std with ImageNet's channel means and standard deviations.
    Imagenet,
    /// (x − mean) / std with CLIP's (OpenAI's) channel means and standard deviations.
    Clip,
    /// None: the network sees pixel values in [0, 1].
    None,
}

/// The output format, from the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.safetensors`: the tensor `features` and the row names in the metadata.
    Safetensors,
    /// `.npy`: the array only.
    Npy,
}

/// Where the images come from.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// PNG files, each `size`×`size`.
    Images {
        /// The files, in output order.
        files: Vec<PathBuf>,
        /// Their width and height in pixels.
        size: u32,
        /// Normalisation after dividing by 255.
        normalize: Normalize,
    },
    /// An experiment's stimuli.
    Stimuli {
        /// The experiment's plan.
        plan: Box<Plan>,
        /// Training pairs (the first of epoch 1).
        count: u64,
        /// Contrast of the test gratings.
        contrast: f64,
    },
}

/// Everything `psyrun features` does, resolved and checked before any network is built.
#[derive(Clone, Debug)]
pub struct Request {
    /// Architecture, cut, pooling and weights (BatchNorm always `Eval`).
    pub backbone: plan::Backbone,
    /// Seed of random weights.
    pub seed: u64,
    /// Folder a relative weights path is taken from.
    pub base_dir: PathBuf,
    /// Where to compute.
    pub device: plan::Device,
    /// The backbone's arithmetic (the experiment's; `fp32` for PNG images).
    pub precision: plan::Precision,
    /// The images.
    pub inputs: Inputs,
    /// Shape of one image's features (after pooling), as `psyrun plan` derives it; `None`
    /// for a TorchScript backbone (known once the module is loaded).
    pub feature_shape: Option<Vec<u32>>,
    /// The output file.
    pub out: PathBuf,
    /// Its format.
    pub format: Format,
    /// With several cuts of a catalog network: each cut, in the order given, with its
    /// feature shape; the backbone (`backbone`'s cut) is built up to the deepest, and one
    /// forward pass per batch gives them all. Empty: the one output of `backbone`.
    pub cuts: Vec<(String, Vec<u32>)>,
}

/// Extracted features, streamed to disk as they are computed (memory holds one batch):
/// one array `[names.len()]` followed by its shape per output, float32, C order, in a part
/// file that [`write`](fn@write) turns into the output file(s) (and that is removed if it is not).
#[derive(Debug)]
pub struct Features {
    /// Row names.
    pub names: Vec<String>,
    /// The arrays: one, or one per cut.
    pub outputs: Vec<Output>,
}

/// One extracted array.
#[derive(Debug)]
pub struct Output {
    /// Its tensor name in a `.safetensors` file (`features`, or the cut with several).
    pub name: String,
    /// Shape of one row.
    pub shape: Vec<usize>,
    /// The raw little-endian float32 values, row after row.
    part: PathBuf,
}

impl Drop for Features {
    fn drop(&mut self) {
        for o in &self.outputs {
            let _ = std::fs::remove_file(&o.part);
        }
    }
}

/// Warnings to show before extracting, and the experiment's source (for spans).
#[derive(Default)]
pub struct Notes {
    /// Warnings of the experiment file.
    pub diags: Vec<Diag>,
    /// The experiment file, with `--experiment`.
    pub file: Option<SourceFile>,
}

/// Checks the command line (and the experiment or the images' headers) into a [`Request`].
pub fn resolve(args: &FeaturesOptions) -> Result<(Request, Notes), Failure> {
    let format = output_format(&args.out)?;
    match &args.experiment {
        Some(path) => resolve_experiment(args, path, format),
        None => resolve_images(args, format).map(|r| (r, Notes::default())),
    }
}

fn usage(code: Code, message: String, help: impl Into<String>) -> Failure {
    Failure::new(Diag::error(code, message).with_help(help), EXIT_USAGE)
}

/// The format from the extension; the output's folder must exist.
fn output_format(out: &Path) -> Result<Format, Failure> {
    if out.is_dir() {
        return Err(usage(
            Code::RunOutputFolder,
            format!("cannot write `{}`: it is a folder", out.display()),
            "--out names the file to write, e.g. `--out features.safetensors`",
        ));
    }
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("safetensors") => Format::Safetensors,
        Some("npy") => Format::Npy,
        _ => {
            return Err(usage(
                Code::RunOutputFolder,
                format!(
                    "cannot write `{}`: the output must be a .safetensors or .npy file",
                    out.display()
                ),
                "name the output e.g. `--out features.safetensors` or `--out features.npy`",
            ))
        }
    };
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(usage(
            Code::RunOutputFolder,
            format!(
                "cannot write `{}`: the folder `{}` does not exist",
                out.display(),
                dir.display()
            ),
            "create the folder first, or choose another --out",
        ));
    }
    Ok(format)
}

fn resolve_images(args: &FeaturesOptions, format: Format) -> Result<Request, Failure> {
    if let Some(module) = &args.torchscript {
        return resolve_script_images(args, module, format);
    }
    let name = args.arch.as_deref().unwrap_or_default();
    let arch = parse_arch(name)?;
    let first = args.cut.as_deref().unwrap_or_default();
    let size = args.size.unwrap_or_else(|| arch.default_input_size());
    let pooling = args.pooling.unwrap_or(Pooling::Off);
    let mut cuts: Vec<(String, Vec<u32>)> = Vec::new();
    for c in std::iter::once(first).chain(args.more_cuts.iter().map(String::as_str)) {
        check_cut(arch, c)?;
        if cuts.iter().any(|(d, _)| d == c) {
            return Err(usage(
                Code::PlanDuplicateSetting,
                format!("`--cut {c}` is given twice"),
                "name each cut once",
            ));
        }
        cuts.push((
            c.to_owned(),
            feature_shape(arch, c, size, pooling, args.tokens)?,
        ));
    }
    // The backbone is built up to the cut one forward pass computes them all by.
    let names: Vec<&str> = cuts.iter().map(|(c, _)| c.as_str()).collect();
    let covering = catalog::covering_cut(arch, &names).unwrap_or_else(|| first.to_owned());
    let cut = covering.as_str();
    let feature_shape = cuts[0].1.clone();
    let weights = parse_weights(arch, args.weights.as_deref().unwrap_or_default())?;
    if args.inputs.is_empty() {
        return Err(usage(
            Code::IoRead,
            "no input images".into(),
            "name the PNG images after the architecture",
        ));
    }
    check_images(&args.inputs, size)?;
    let network = plan::Network::Catalog(plan::CatalogNet {
        arch,
        weights,
        cut: cut.to_owned(),
    });
    let files = args.inputs.clone();
    let mut request = images_request(args, network, files, size, Some(feature_shape), format);
    if cuts.len() > 1 {
        request.cuts = cuts;
    }
    Ok(request)
}

/// The request for PNG `files` of `size` px through `network` (the command line's pooling,
/// normalisation, seed and device; BatchNorm in eval mode, float32).
fn images_request(
    args: &FeaturesOptions,
    network: plan::Network,
    files: Vec<PathBuf>,
    size: u32,
    feature_shape: Option<Vec<u32>>,
    format: Format,
) -> Request {
    let arch = match &network {
        plan::Network::Catalog(c) => Some(c.arch),
        plan::Network::TorchScript { .. } => None,
    };
    let normalize = images_normalize(args, arch);
    Request {
        backbone: plan::Backbone {
            network,
            pooling: args.pooling.unwrap_or(Pooling::Off),
            batchnorm: BatchNorm::Eval,
            tokens: args.tokens,
            sidecar: None,
        },
        seed: args.seed.unwrap_or(0),
        base_dir: PathBuf::new(),
        device: args.device.unwrap_or(plan::Device::Auto),
        precision: plan::Precision::Fp32,
        inputs: Inputs::Images {
            files,
            size,
            normalize,
        },
        feature_shape,
        out: args.out.clone(),
        format,
        cuts: Vec::new(),
    }
}

/// PNG images through a TorchScript module: no architecture, so every positional argument
/// is an image (clap puts the first into `arch`).
fn resolve_script_images(
    args: &FeaturesOptions,
    module: &Path,
    format: Format,
) -> Result<Request, Failure> {
    let inputs: Vec<PathBuf> = args
        .arch
        .iter()
        .map(PathBuf::from)
        .chain(args.inputs.iter().cloned())
        .collect();
    if inputs.is_empty() {
        return Err(usage(
            Code::IoRead,
            "no input images".into(),
            "name the PNG images after the options",
        ));
    }
    let size = args.size.unwrap_or(plan::DEFAULT_SIZE);
    check_images(&inputs, size)?;
    let network = plan::Network::TorchScript {
        file: module.display().to_string(),
    };
    Ok(images_request(args, network, inputs, size, None, format))
}

/// `--normalize`, by default the network's own: CLIP's for CLIP's encoders, else ImageNet's.
fn images_normalize(args: &FeaturesOptions, arch: Option<Arch>) -> Normalize {
    let clip = arch.is_some_and(|a| psyrun::models::catalog::family(a) == Family::Clip);
    let usual = if clip {
        ImageNormalize::Clip
    } else {
        ImageNormalize::Imagenet
    };
    match args.normalize.unwrap_or(usual) {
        ImageNormalize::Imagenet => Normalize::MeanStd {
            mean: plan::IMAGENET_MEAN,
            std: plan::IMAGENET_STD,
        },
        ImageNormalize::Clip => Normalize::MeanStd {
            mean: plan::CLIP_MEAN,
            std: plan::CLIP_STD,
        },
        ImageNormalize::None => Normalize::Off,
    }
}

fn resolve_experiment(
    args: &FeaturesOptions,
    path: &Path,
    format: Format,
) -> Result<(Request, Notes), Failure> {
    let file = SourceFile::read(path).map_err(|d| Failure::new(d, EXIT_USAGE))?;
    let lowered = plan::compile(&file);
    let Some(plan) = lowered.plan else {
        return Err(Failure {
            diags: lowered.diags,
            exit: EXIT_INVALID,
            folder: None,
        });
    };
    let mut notes = Notes {
        diags: lowered.diags,
        file: None,
    };
    let contrast = match args.contrast {
        Some(c) if (0.0..=1.0).contains(&c) => c,
        Some(c) => {
            return Err(usage(
                Code::PlanOutOfRange,
                format!("--contrast must be in [0, 1], got {c}"),
                "the contrast of the test gratings, e.g. --contrast 0.1",
            ))
        }
        None => plan.staircase.start(),
    };
    if plan.backbone.batchnorm == BatchNorm::Train {
        eprintln!(
            "note: `{}` uses `batchnorm train`; these are the features of its backbone in eval \
             mode, before the running statistics drift while the probe trains",
            file.name
        );
    }
    let backbone = plan::Backbone {
        batchnorm: BatchNorm::Eval,
        ..plan.backbone.clone()
    };
    let request = Request {
        backbone,
        seed: plan.seed,
        base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        device: args.device.unwrap_or(plan.device),
        precision: plan.precision,
        feature_shape: plan.derived.feature_shape.clone(),
        inputs: Inputs::Stimuli {
            plan: Box::new(plan),
            count: args.count.unwrap_or(8),
            contrast,
        },
        out: args.out.clone(),
        format,
        cuts: Vec::new(),
    };
    notes.file = Some(file);
    Ok((request, notes))
}

fn parse_arch(name: &str) -> Result<Arch, Failure> {
    if let Some(a) = Arch::from_name(name) {
        return Ok(a);
    }
    let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
    let mut help = format!("architectures: {}", names.join(", "));
    let lower = name.to_ascii_lowercase().replace('-', "_");
    if let Some(s) = plan::suggest_name(&lower, &names) {
        help = format!("did you mean `{s}`? {help}");
    }
    Err(usage(
        Code::PlanUnknownBackbone,
        format!("unknown architecture `{name}`"),
        help,
    ))
}

fn check_cut(arch: Arch, cut: &str) -> Result<(), Failure> {
    if catalog::find(arch, cut).is_some() {
        return Ok(());
    }
    let points = catalog::cut_points(arch);
    let paths: Vec<&str> = points.iter().map(|p| p.path.as_str()).collect();
    let mut help = format!(
        "{arch} can be cut after: {}; `psyrun layers {arch}` lists every layer",
        catalog::top_level(arch).join(", ")
    );
    if let Some(s) = plan::suggest_name(cut, &paths) {
        help = format!("did you mean `{s}`? {help}");
    }
    Err(usage(
        Code::PlanUnknownLayer,
        format!("{arch} has no layer `{cut}`"),
        help,
    ))
}

/// One image's feature shape: the cut's output at `size`, pooled.
fn feature_shape(
    arch: Arch,
    cut: &str,
    size: u32,
    pooling: Pooling,
    tokens: Option<plan::TokenReadout>,
) -> Result<Vec<u32>, Failure> {
    let shape = match catalog::output_shape(arch, cut, size) {
        Ok(s) => s,
        Err(ShapeError::TooSmall { module, min_input }) => {
            return Err(usage(
                Code::PlanInputTooSmall,
                format!(
                    "at {size}x{size} px the output of `{module}` would be empty; cutting {arch} \
                     after `{cut}` needs images of at least {min_input}x{min_input} px"
                ),
                format!("use --size {min_input} or larger (the images must have that size), or an earlier cut"),
            ))
        }
        Err(ShapeError::WrongSize { size: only }) => {
            return Err(usage(
                Code::PlanInputSize,
                format!("{arch} takes {only}x{only} px images only, not {size}x{size}"),
                format!("use --size {only} (the images must have that size)"),
            ))
        }
        Err(ShapeError::UnknownLayer) => {
            return Err(usage(
                Code::PlanUnknownLayer,
                format!("{arch} has no layer `{cut}`"),
                format!("`psyrun layers {arch}` lists every layer"),
            ))
        }
    };
    let format = plan::tokens::catalog_format(arch, cut, size);
    let shape = match plan::tokens::readout_shape(&shape, format, tokens) {
        Ok(s) => s,
        Err(plan::tokens::Mismatch::Missing(f)) => {
            let (rows, cols) = f.grid.unwrap_or((0, 0));
            let d = shape[shape.len() - 1];
            let cls = if f.prefix > 0 {
                "`--tokens cls` (the class token), "
            } else {
                ""
            };
            return Err(usage(
                Code::PlanMissingSetting,
                format!(
                    "`{cut}` of {arch} outputs {} tokens of {d} values: say which become the features",
                    f.prefix + rows * cols
                ),
                format!(
                    "add {cls}`--tokens mean` (the mean of the patch tokens) or `--tokens map` \
                     (the patch tokens as a {d}x{rows}x{cols} map)"
                ),
            ));
        }
        Err(plan::tokens::Mismatch::NoClassToken | plan::tokens::Mismatch::NoGrid) => {
            return Err(usage(
                Code::PlanIncompatible,
                format!("`--tokens` does not fit `{cut}` of {arch}: it has no class token"),
                "use `--tokens mean` or `--tokens map`",
            ));
        }
        Err(plan::tokens::Mismatch::NotTokens) => {
            return Err(usage(
                Code::PlanIncompatible,
                format!(
                    "`--tokens` applies to a cut whose output is tokens, and `{cut}` of {arch} \
                     outputs a {} feature map or vector",
                    shape
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join("x")
                ),
                "remove `--tokens`, or cut inside a vision transformer's `encoder`",
            ));
        }
    };
    match pooling {
        Pooling::Off => Ok(shape),
        Pooling::Avg { h, w } | Pooling::Max { h, w } => {
            if shape.len() != 3 {
                return Err(usage(
                    Code::PlanIncompatible,
                    format!(
                        "`{cut}` outputs a flat vector of {} values; there is nothing spatial to pool",
                        shape.iter().product::<u32>()
                    ),
                    "use `--pooling none`, or cut at a convolutional layer",
                ));
            }
            if h > shape[1] || w > shape[2] {
                return Err(usage(
                    Code::PlanPoolingTooLarge,
                    format!(
                        "pooling to {h}x{w} is larger than the {}x{} feature map of `{cut}` at {size}x{size} px",
                        shape[1], shape[2]
                    ),
                    format!(
                        "adaptive pooling reduces; use at most {}x{}",
                        shape[1], shape[2]
                    ),
                ));
            }
            Ok(vec![shape[0], h, w])
        }
    }
}

/// `random`, the architecture's usual weights (`imagenet`, `openai`, `dinov2`), a named
/// weight set of `arch`, or a weights file.
fn parse_weights(arch: Arch, w: &str) -> Result<Weights, Failure> {
    let (usual, usual_set) = psyrun::hub::usual_weights(arch);
    match w {
        "random" => return Ok(Weights::Random),
        _ if w == usual => return Ok(Weights::Torchvision(usual_set.into())),
        _ => {}
    }
    if psyrun::hub::lookup(arch, w).is_some() {
        return Ok(Weights::Torchvision(w.to_owned()));
    }
    let lower = w.to_ascii_lowercase();
    let file_like = [".safetensors", ".pth", ".pt", ".bin", ".tar", ".ckpt"]
        .iter()
        .any(|e| lower.ends_with(e));
    if !w.is_empty() && (file_like || Path::new(w).is_file()) {
        return Ok(Weights::File(w.to_owned()));
    }
    let sets: Vec<&str> = psyrun::hub::TABLE
        .iter()
        .filter(|f| f.arch == arch)
        .map(|f| f.set)
        .collect();
    let mut choices = vec!["random", usual];
    choices.extend(&sets);
    let publisher = match usual {
        "imagenet" => "a torchvision",
        "openai" => "an OpenAI",
        _ => "a Meta",
    };
    let mut help = format!(
        "weights are `random`, `{usual}` (= {usual_set}), {publisher} set of {arch} ({}), \
         or a .safetensors/.pth file",
        sets.join(", ")
    );
    if let Some(s) = plan::suggest_name(w, &choices) {
        help = format!("did you mean `{s}`? {help}");
    }
    Err(usage(
        Code::PlanUnknownValue,
        format!("unknown weights `{w}` for {arch} (and no such file)"),
        help,
    ))
}

/// Checks that every input is a readable PNG of `size`×`size` pixels (headers only);
/// reports every bad file at once.
fn check_images(files: &[PathBuf], size: u32) -> Result<(), Failure> {
    let mut diags = Vec::new();
    let mut other_sizes = Vec::new();
    let mut bad = 0usize;
    for f in files {
        let problem = match png_size(f) {
            Err(e) => Some(Diag::error(
                Code::IoRead,
                format!("cannot read `{}`: {e}", f.display()),
            )),
            Ok((w, h)) if (w, h) != (size, size) => {
                other_sizes.push((w, h));
                Some(Diag::error(
                    Code::PlanIncompatible,
                    format!(
                        "`{}` is {w}x{h} px, but --size is {size}: every input must be {size}x{size} px",
                        f.display()
                    ),
                ))
            }
            Ok(_) => None,
        };
        if let Some(d) = problem {
            bad += 1;
            if diags.len() < LISTED_PROBLEMS {
                diags.push(d);
            }
        }
    }
    if bad == 0 {
        return Ok(());
    }
    if bad > diags.len() {
        diags.push(Diag::error(
            Code::IoRead,
            format!("… and {} more unusable input files", bad - diags.len()),
        ));
    }
    let mut help =
        String::from("psyrun neither resizes nor crops: give images of exactly --size x --size px");
    if let Some(&(w, h)) = other_sizes.first() {
        if w == h && other_sizes.len() == bad && other_sizes.iter().all(|&s| s == (w, h)) {
            help = format!("{help} (these are {w}x{h}: pass --size {w} if every input is)");
        }
    }
    // The advice goes with the first wrong size (the others say the same).
    if let Some(d) = diags.iter_mut().find(|d| d.code == Code::PlanIncompatible) {
        d.help = Some(help);
    }
    Err(Failure {
        diags,
        exit: EXIT_USAGE,
        folder: None,
    })
}

fn open_png(path: &Path, transform: bool) -> Result<png::Reader<BufReader<File>>, String> {
    let file = psyrun::source::open_regular(path).map_err(|e| e.to_string())?;
    let mut decoder =
        png::Decoder::new_with_limits(BufReader::new(file), png::Limits { bytes: 1 << 30 });
    if transform {
        decoder.set_transformations(png::Transformations::normalize_to_color8());
    }
    decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG image ({e})"))
}

/// A PNG's width and height (its header only).
pub fn png_size(path: &Path) -> Result<(u32, u32), String> {
    let reader = open_png(path, false)?;
    let info = reader.info();
    Ok((info.width, info.height))
}

/// Decodes a PNG as `(width, height, pixels)`, the pixels HWC RGB in [0, 1] as PIL's
/// `Image.open(path).convert("RGB")` divided by 255 gives them: grey repeated, alpha dropped,
/// palettes and low bit depths expanded, 16-bit samples reduced to their high byte.
pub fn read_png(path: &Path) -> Result<(u32, u32, Vec<f32>), String> {
    let mut reader = open_png(path, true)?;
    let len = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large".to_string())?;
    let mut buf = vec![0u8; len];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("not a readable PNG image ({e})"))?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("unexpected palette output".into()),
    };
    if frame.bit_depth != png::BitDepth::Eight {
        return Err(format!("unexpected bit depth {:?}", frame.bit_depth));
    }
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut out = Vec::with_capacity(3 * w * h);
    for y in 0..h {
        let start = y * frame.line_size;
        let row = buf
            .get(start..start + w * channels)
            .ok_or_else(|| "truncated image data".to_string())?;
        for px in row.chunks_exact(channels) {
            let rgb = if channels < 3 {
                [px[0]; 3]
            } else {
                [px[0], px[1], px[2]]
            };
            out.extend(rgb.iter().map(|&v| f32::from(v) / 255.0));
        }
    }
    Ok((frame.width, frame.height, out))
}

/// The row names, in output order.
pub fn names(inputs: &Inputs) -> Vec<String> {
    match inputs {
        Inputs::Images { files, .. } => files.iter().map(|f| f.display().to_string()).collect(),
        Inputs::Stimuli { plan, count, .. } => {
            let mut v = Vec::new();
            for i in 0..*count {
                v.push(format!("train/{i:03}_a.png"));
                v.push(format!("train/{i:03}_b.png"));
            }
            for (f, o, p) in grating_conditions(plan) {
                v.push(format!("test/f{f}_o{o}_p{p}.png"));
            }
            v
        }
    }
}

/// The test gratings' (frequency, orientation, phase), in output order.
fn grating_conditions(plan: &Plan) -> Vec<(f64, f64, f64)> {
    let test = &plan.test;
    let mut v = Vec::new();
    for &f in &test.frequencies {
        for t in one_per_condition(plan) {
            v.push((f, t.orientation, t.phase));
        }
    }
    v
}

/// The test trials of one level with one grating per orientation × phase (the interval
/// does not change the image), as `psyrun stimuli` writes them.
fn one_per_condition(plan: &Plan) -> Vec<trials::TestTrial> {
    trials::test_trials(&plan.test)
        .into_iter()
        .filter(|t| !t.target_first || plan.test.target_interval == plan::TargetInterval::First)
        .collect()
}

/// Builds the backbone, fills its weights, and runs every image through it, catching
/// libtorch exceptions (tch raises them as panics) as `psy::run::torch`.
pub fn extract(
    request: &Request,
    source: Option<&SourceFile>,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Features, Failure> {
    crate::failure::guarded(|| extract_inner(request, source, observer, stop)).unwrap_or_else(
        |caught| Err(caught.failure("use fewer or smaller images, pooling or an earlier cut")),
    )
}

fn torch_failure(message: String) -> Failure {
    Failure::new(
        Diag::error(Code::RunTorch, message).with_help("please report this with the command line"),
        EXIT_RUN,
    )
}

fn extract_inner(
    request: &Request,
    source: Option<&SourceFile>,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Features, Failure> {
    if request.device != plan::Device::Cpu {
        crate::device::set_tf32(request.precision);
    }
    let device = select_device(request.device)?;
    // The experiment's plan and source, for diagnostics that point into it.
    let experiment = match (&request.inputs, source) {
        (Inputs::Stimuli { plan, .. }, Some(file)) => Some((&**plan, file)),
        _ => None,
    };
    let b = &request.backbone;
    let (mut net, feature_shape) = match (&b.network, &request.inputs) {
        (plan::Network::Catalog(c), _) => {
            observer.event(Event::Status(format!(
                "building {} up to `{}` on {}",
                c.arch,
                c.cut,
                crate::device::device_name(device)
            )));
            let mut backbone =
                Backbone::from_plan(b, Device::Cpu).map_err(|e| torch_failure(e.to_string()))?;
            let loaded = weights::apply(
                &mut backbone,
                &c.weights,
                request.seed,
                &request.base_dir,
                &mut *observer,
                stop,
            )
            .map_err(|e| weights_failure(e, experiment))?;
            if let Some(report) = &loaded {
                observer.event(Event::Status(format!(
                    "loaded {} tensors ({} past the cut ignored)",
                    report.loaded, report.ignored
                )));
            }
            let Some(shape) = request.feature_shape.clone() else {
                return Err(torch_failure("the feature shape is unknown".into()));
            };
            (Net::Catalog(backbone), shape)
        }
        (plan::Network::TorchScript { .. }, Inputs::Stimuli { plan, .. }) => {
            let (resolved, script) = crate::script::resolve(plan, &request.base_dir, source)
                .map_err(|d| Failure::new(d, EXIT_RUN))?;
            let (Some(script), Some(shape)) = (script, resolved.derived.feature_shape) else {
                return Err(torch_failure(
                    "the TorchScript module was not loaded".into(),
                ));
            };
            (Net::Script(script), shape)
        }
        (
            plan::Network::TorchScript { file },
            Inputs::Images {
                size, normalize, ..
            },
        ) => {
            let fail =
                |e: ScriptError| Failure::new(crate::failure::script_diag(&e, None), EXIT_RUN);
            let path = request.base_dir.join(file);
            let mut script = ScriptNet::load(&path).map_err(fail)?;
            crate::script::apply_sidecar(&mut script, &path, b.tokens).map_err(fail)?;
            let (_, shape) = script.shapes(*size, normalize, b.pooling).map_err(fail)?;
            (Net::Script(script), shape)
        }
    };
    if device != Device::Cpu {
        net.to_device(device);
    }
    net.set_channels_last(true);
    net.set_precision(request.precision);

    let names = names(&request.inputs);
    // One output per cut asked for, or the network's one output.
    let wanted: Vec<(Option<String>, Vec<u32>)> = if request.cuts.is_empty() {
        vec![(None, feature_shape)]
    } else {
        request
            .cuts
            .iter()
            .map(|(c, s)| (Some(c.clone()), s.clone()))
            .collect()
    };
    let mut features = Features {
        names: names.clone(),
        outputs: Vec::new(),
    };
    let mut sinks = Vec::new();
    for (i, (cut, shape)) in wanted.iter().enumerate() {
        let part = part_path(&request.out, i);
        let file = std::fs::File::create(&part).map_err(|e| {
            usage(
                Code::RunOutputFolder,
                format!("cannot write next to `{}`: {e}", request.out.display()),
                "choose a writable place with --out",
            )
        })?;
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        sinks.push(Sink {
            cut: cut.clone(),
            row: shape.iter().product(),
            rows: 0,
            file: std::io::BufWriter::new(file),
        });
        features.outputs.push(Output {
            name: match (cut, wanted.len()) {
                (Some(c), n) if n > 1 => c.clone(),
                _ => "features".into(),
            },
            shape,
            part,
        });
    }
    let mut run = Runner {
        net: &net,
        pooling: b.pooling,
        device,
        sinks,
        observer,
    };
    run.observer.event(Event::Phase {
        name: "features",
        total: names.len() as u64,
        unit: "images",
    });
    match &request.inputs {
        Inputs::Images {
            files,
            size,
            normalize,
        } => {
            let image = 3 * (*size as usize).pow(2);
            for chunk in files.chunks(CHUNK) {
                let mut x = vec![0f32; chunk.len() * image];
                for (f, out) in chunk.iter().zip(x.chunks_exact_mut(image)) {
                    let (w, h, hwc) = read_png(f).map_err(|e| {
                        Failure::new(
                            Diag::error(
                                Code::IoRead,
                                format!("cannot read `{}`: {e}", f.display()),
                            ),
                            EXIT_USAGE,
                        )
                    })?;
                    if (w, h) != (*size, *size) || hwc.len() != image {
                        return Err(Failure::new(
                            Diag::error(
                                Code::PlanIncompatible,
                                format!("`{}` is {w}x{h} px, but --size is {size}", f.display()),
                            ),
                            EXIT_USAGE,
                        ));
                    }
                    trials::rgb_to_chw(&hwc, normalize, out);
                }
                run.batch(&x, chunk.len(), *size)?;
            }
        }
        Inputs::Stimuli {
            plan,
            count,
            contrast,
        } => {
            let train = &plan.train;
            let image = 3 * (train.size as usize).pow(2);
            let pairs = (CHUNK / 2) as u64;
            let mut start = 0;
            while start < *count {
                let end = (start + pairs).min(*count);
                let batch = trials::train_batch(plan.seed, train, 0, start..end);
                // Interleaved: trial i's first image, then its second.
                let mut x = Vec::with_capacity(2 * batch.len * image);
                for (a, b) in batch
                    .first
                    .chunks_exact(image)
                    .zip(batch.second.chunks_exact(image))
                {
                    x.extend_from_slice(a);
                    x.extend_from_slice(b);
                }
                run.batch(&x, 2 * batch.len, train.size)?;
                start = end;
            }
            let test = &plan.test;
            let gratings = TestGratings::new(plan);
            let conditions: Vec<usize> = gratings
                .trials()
                .iter()
                .enumerate()
                .filter(|(_, t)| {
                    !t.target_first || test.target_interval == plan::TargetInterval::First
                })
                .map(|(i, _)| i)
                .collect();
            let image = gratings.image_len();
            let all: Vec<(usize, usize)> = (0..test.frequencies.len())
                .flat_map(|f| conditions.iter().map(move |&t| (f, t)))
                .collect();
            for chunk in all.chunks(CHUNK) {
                let mut x = vec![0f32; chunk.len() * image];
                for (&(f, t), out) in chunk.iter().zip(x.chunks_exact_mut(image)) {
                    trials::grey_to_chw(&gratings.grey(f, t, *contrast), &test.normalize, out);
                }
                run.batch(&x, chunk.len(), test.size)?;
            }
        }
    }
    run.observer.event(Event::PhaseDone);
    for sink in &mut run.sinks {
        use std::io::Write;
        sink.file
            .flush()
            .map_err(|e| torch_failure(format!("cannot write the features: {e}")))?;
        if sink.rows != names.len() {
            return Err(torch_failure(format!(
                "extracted {} rows for {} images",
                sink.rows,
                names.len()
            )));
        }
    }
    Ok(features)
}

/// Where output `i`'s values wait while they are extracted: a hidden file beside the
/// output.
fn part_path(out: &Path, i: usize) -> PathBuf {
    let name = out
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.part{i}-{}", std::process::id()))
}

/// One output's part file while features are extracted.
struct Sink {
    /// The cut it holds (`None`: the network's output).
    cut: Option<String>,
    /// Values per image.
    row: usize,
    /// Rows written.
    rows: usize,
    file: std::io::BufWriter<std::fs::File>,
}

/// Runs batches through the backbone and streams the pooled features of each output to
/// its part file.
struct Runner<'a> {
    net: &'a Net,
    pooling: Pooling,
    device: Device,
    sinks: Vec<Sink>,
    observer: &'a mut dyn Observer,
}

impl Runner<'_> {
    /// `x`: `n` normalised CHW images of `size`×`size`.
    fn batch(&mut self, x: &[f32], n: usize, size: u32) -> Result<(), Failure> {
        use std::io::Write;
        if n == 0 {
            return Ok(());
        }
        let s = i64::from(size);
        let x = Tensor::from_slice(x)
            .reshape([n as i64, 3, s, s])
            .to_device(self.device);
        // Several cuts of a catalog backbone (built up to the deepest): every cut's output
        // for this batch from one forward pass, then the next batch, so memory holds one
        // batch's maps whatever the number of images and cuts.
        let outputs: Vec<Tensor> = match (self.net, self.sinks.len()) {
            (Net::Catalog(b), k) if k > 1 => {
                let cuts: Vec<&str> = self
                    .sinks
                    .iter()
                    .map(|s| s.cut.as_deref().unwrap_or_default())
                    .collect();
                b.try_features_many(&x, &cuts)
                    .and_then(|ys| {
                        ys.into_iter()
                            .zip(&cuts)
                            .map(|(y, cut)| tch::no_grad(|| b.read_out(y, cut, i64::from(size))))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(|e| torch_failure(e.to_string()))?
            }
            _ => vec![self.net.forward(&x)],
        };
        for (y, sink) in outputs.iter().zip(&mut self.sinks) {
            let y = tch::no_grad(|| pool(y, self.pooling))
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous();
            let got = y.size();
            if got.len() != 2 || got[0] != n as i64 || got[1] != sink.row as i64 {
                return Err(torch_failure(format!(
                    "the backbone gave features of shape {got:?}, expected [{n}, {}]",
                    sink.row
                )));
            }
            let values = Vec::<f32>::try_from(&y.flatten(0, -1))
                .map_err(|e| torch_failure(e.to_string()))?;
            let mut bytes = Vec::with_capacity(4 * values.len());
            for v in values {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            sink.file
                .write_all(&bytes)
                .map_err(|e| torch_failure(format!("cannot write the features: {e}")))?;
            sink.rows += n;
        }
        self.observer.event(Event::Advance(n as u64));
        Ok(())
    }
}

/// The device asked for, checked against the machine.
fn select_device(device: plan::Device) -> Result<Device, Failure> {
    crate::device::check_device(device, None, "use `--device auto` or `--device cpu`")
        .map_err(|d| Failure::new(d, EXIT_RUN))
}

fn normalize_name(n: &Normalize) -> String {
    match n {
        Normalize::Off => "none".into(),
        Normalize::MeanStd { mean, std } => format!("mean {mean:?} std {std:?}"),
    }
}

/// The metadata a `.safetensors` output carries (every value a string).
pub fn metadata(request: &Request, features: &Features) -> BTreeMap<String, String> {
    // The first output's (the only one's, with one cut).
    let mut shape = vec![features.names.len()];
    if let Some(o) = features.outputs.first() {
        shape.extend(&o.shape);
    }
    let b = &request.backbone;
    let mut m = BTreeMap::new();
    m.insert(
        "names".into(),
        serde_json::Value::from(features.names.clone()).to_string(),
    );
    m.insert("shape".into(), serde_json::Value::from(shape).to_string());
    match &b.network {
        plan::Network::Catalog(c) => {
            m.insert("arch".into(), c.arch.name().into());
            m.insert("cut".into(), c.cut.clone());
            m.insert("weights".into(), c.weights.to_string());
        }
        plan::Network::TorchScript { file } => {
            m.insert("torchscript".into(), file.clone());
        }
    }
    m.insert("pooling".into(), b.pooling.to_string());
    m.insert("precision".into(), request.precision.name().into());
    m.insert("seed".into(), request.seed.to_string());
    m.insert("batchnorm".into(), "eval".into());
    m.insert("psyrun_version".into(), env!("CARGO_PKG_VERSION").into());
    match &request.inputs {
        Inputs::Images {
            size, normalize, ..
        } => {
            m.insert("size".into(), size.to_string());
            m.insert("normalize".into(), normalize_name(normalize));
        }
        Inputs::Stimuli {
            plan,
            count,
            contrast,
        } => {
            m.insert("experiment".into(), plan.experiment.clone());
            m.insert("count".into(), count.to_string());
            m.insert("contrast".into(), contrast.to_string());
            m.insert("train_size".into(), plan.train.size.to_string());
            m.insert("test_size".into(), plan.test.size.to_string());
            m.insert(
                "train_normalize".into(),
                normalize_name(&plan.train.normalize),
            );
            m.insert(
                "test_normalize".into(),
                normalize_name(&plan.test.normalize),
            );
        }
    }
    m
}

/// A `.safetensors` file holding one float32 tensor `name` of `shape` and `metadata`
/// (`__metadata__`): 8-byte little-endian header length, the JSON header padded with
/// spaces to a multiple of 8 bytes, then the data, little-endian.
///
/// `data.len()` must be the product of `shape` (the caller's invariant; the header would
/// lie otherwise).
pub fn safetensors_f32(
    name: &str,
    shape: &[usize],
    data: &[f32],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut out = safetensors_header(&[(name, shape.to_vec())], metadata);
    out.reserve(4 * data.len());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The header of a `.safetensors` file holding float32 `tensors` (name, shape), their data
/// one after the other in that order, and `metadata`: 8-byte little-endian header length,
/// then the JSON header padded with spaces to a multiple of 8 bytes.
pub fn safetensors_header(
    tensors: &[(&str, Vec<usize>)],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::Value::Object(
            metadata
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                .collect(),
        ),
    );
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let bytes = 4 * shape.iter().product::<usize>();
        header.insert(
            (*name).into(),
            serde_json::json!({
                "dtype": "F32",
                "shape": shape,
                "data_offsets": [offset, offset + bytes],
            }),
        );
        offset += bytes;
    }
    let mut text = serde_json::Value::Object(header).to_string();
    let padded = text.len().next_multiple_of(8);
    text.push_str(&" ".repeat(padded - text.len()));
    let mut out = Vec::with_capacity(8 + text.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// The files `write` makes: the output, or with several cuts in `.npy` one file per cut
/// (`OUT` without its extension, then `.CUT.npy`).
pub fn output_files(request: &Request, features: &Features) -> Vec<PathBuf> {
    if request.format == Format::Npy && features.outputs.len() > 1 {
        let stem = request.out.with_extension("");
        features
            .outputs
            .iter()
            .map(|o| PathBuf::from(format!("{}.{}.npy", stem.display(), o.name)))
            .collect()
    } else {
        vec![request.out.clone()]
    }
}

/// Writes the features to the request's file(s), in its format, each atomically (a
/// hidden file renamed into place), copying the part files without holding them in
/// memory; the part files are removed.
pub fn write(request: &Request, features: &Features) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        usage(
            Code::RunOutputFolder,
            e.to_string(),
            "choose a writable place with --out",
        )
    };
    let rows = features.names.len();
    let full = |o: &Output| {
        let mut shape = vec![rows];
        shape.extend(&o.shape);
        shape
    };
    let files = output_files(request, features);
    match request.format {
        Format::Npy => {
            for (o, path) in features.outputs.iter().zip(&files) {
                let header = npy_f32_header(&full(o));
                write_streamed(path, &header, &[&o.part]).map_err(fail)?;
            }
        }
        Format::Safetensors => {
            let tensors: Vec<(&str, Vec<usize>)> = features
                .outputs
                .iter()
                .map(|o| (o.name.as_str(), full(o)))
                .collect();
            let mut meta = metadata(request, features);
            if features.outputs.len() > 1 {
                // Each tensor is named after its cut and has its own shape.
                let cuts: Vec<&str> = features.outputs.iter().map(|o| o.name.as_str()).collect();
                meta.insert("cuts".into(), serde_json::Value::from(cuts).to_string());
                meta.remove("cut");
                meta.remove("shape");
            }
            let header = safetensors_header(&tensors, &meta);
            let parts: Vec<&Path> = features.outputs.iter().map(|o| o.part.as_path()).collect();
            write_streamed(&files[0], &header, &parts).map_err(fail)?;
        }
    }
    Ok(())
}

/// Writes `header` and then each of `parts` into `path` atomically: into a hidden file
/// beside it, synced, then renamed over it; nothing is left behind on failure.
fn write_streamed(path: &Path, header: &[u8], parts: &[&Path]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        out.write_all(header)?;
        for part in parts {
            std::io::copy(&mut std::fs::File::open(part)?, &mut out)?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("psyrun-features-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn encode(
        path: &Path,
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
    ) {
        let mut bytes = Vec::new();
        {
            let mut e = png::Encoder::new(&mut bytes, w, h);
            e.set_color(color);
            e.set_depth(depth);
            let mut wr = e.write_header().unwrap();
            wr.write_image_data(data).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn png_color_types_read_as_pil_converts_to_rgb() {
        use png::{BitDepth, ColorType};
        let grey = temp("grey.png");
        encode(
            &grey,
            2,
            1,
            ColorType::Grayscale,
            BitDepth::Eight,
            &[0, 255],
        );
        assert_eq!(
            read_png(&grey).unwrap(),
            (2, 1, vec![0., 0., 0., 1., 1., 1.])
        );
        let rgba = temp("rgba.png");
        encode(
            &rgba,
            1,
            1,
            ColorType::Rgba,
            BitDepth::Eight,
            &[51, 102, 255, 7],
        );
        assert_eq!(read_png(&rgba).unwrap(), (1, 1, vec![0.2, 0.4, 1.0]));
        let la = temp("la.png");
        encode(
            &la,
            1,
            1,
            ColorType::GrayscaleAlpha,
            BitDepth::Eight,
            &[51, 0],
        );
        assert_eq!(read_png(&la).unwrap().2, vec![0.2; 3]);
        let deep = temp("rgb16.png");
        encode(
            &deep,
            1,
            1,
            ColorType::Rgb,
            BitDepth::Sixteen,
            &[51, 9, 0, 0, 255, 255],
        );
        assert_eq!(read_png(&deep).unwrap().2, vec![0.2, 0.0, 1.0]);
        let one_bit = temp("bits.png");
        encode(
            &one_bit,
            8,
            1,
            ColorType::Grayscale,
            BitDepth::One,
            &[0b1000_0001],
        );
        let px = read_png(&one_bit).unwrap().2;
        assert_eq!(&px[..6], &[1., 1., 1., 0., 0., 0.]);
        assert_eq!(png_size(&grey).unwrap(), (2, 1));
        let junk = temp("junk.png");
        std::fs::write(&junk, b"not a png").unwrap();
        assert!(read_png(&junk).unwrap_err().contains("not a readable PNG"));
        assert!(png_size(&temp("missing.png")).is_err());
        let _ = std::fs::remove_dir_all(grey.parent().unwrap());
    }

    #[test]
    fn safetensors_layout() {
        let mut m = BTreeMap::new();
        m.insert("names".to_string(), "[\"a\"]".to_string());
        let bytes = safetensors_f32("features", &[1, 2], &[1.5, -2.0], &m);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(header["__metadata__"]["names"], "[\"a\"]");
        assert_eq!(header["features"]["dtype"], "F32");
        assert_eq!(header["features"]["shape"], serde_json::json!([1, 2]));
        assert_eq!(
            header["features"]["data_offsets"],
            serde_json::json!([0, 8])
        );
        assert_eq!(bytes.len(), 8 + n + 8);
        assert_eq!(&bytes[8 + n..8 + n + 4], &1.5f32.to_le_bytes());
    }

    #[test]
    fn weights_names() {
        assert_eq!(
            parse_weights(Arch::Resnet18, "random").unwrap(),
            Weights::Random
        );
        assert_eq!(
            parse_weights(Arch::Resnet18, "imagenet").unwrap(),
            Weights::Torchvision("IMAGENET1K_V1".into())
        );
        assert_eq!(
            parse_weights(Arch::Resnet50, "IMAGENET1K_V2").unwrap(),
            Weights::Torchvision("IMAGENET1K_V2".into())
        );
        assert_eq!(
            parse_weights(Arch::Resnet18, "net.pth").unwrap(),
            Weights::File("net.pth".into())
        );
        let e = parse_weights(Arch::Resnet18, "imagnet").unwrap_err();
        assert_eq!(e.diags[0].code, Code::PlanUnknownValue);
        assert!(e.diags[0]
            .help
            .as_deref()
            .unwrap()
            .contains("did you mean `imagenet`"));
        assert!(parse_weights(Arch::Resnet18, "").is_err());
    }

    #[test]
    fn feature_shapes_follow_the_catalog_and_pooling() {
        assert_eq!(
            feature_shape(Arch::Resnet18, "layer1", 64, Pooling::Off, None).unwrap(),
            [64, 16, 16]
        );
        assert_eq!(
            feature_shape(
                Arch::Resnet18,
                "layer1",
                64,
                Pooling::Max { h: 2, w: 3 },
                None
            )
            .unwrap(),
            [64, 2, 3]
        );
        assert_eq!(
            feature_shape(Arch::Resnet18, "fc", 64, Pooling::Off, None).unwrap(),
            [1000]
        );
        let code = |r: Result<Vec<u32>, Failure>| r.unwrap_err().diags[0].code;
        assert_eq!(
            code(feature_shape(
                Arch::Resnet18,
                "fc",
                64,
                Pooling::Avg { h: 1, w: 1 },
                None
            )),
            Code::PlanIncompatible
        );
        assert_eq!(
            code(feature_shape(
                Arch::Resnet18,
                "layer1",
                64,
                Pooling::Avg { h: 17, w: 1 },
                None
            )),
            Code::PlanPoolingTooLarge
        );
        assert_eq!(
            code(feature_shape(
                Arch::Vgg16,
                "features.30",
                16,
                Pooling::Off,
                None
            )),
            Code::PlanInputTooSmall
        );
        // A ViT: 224 px only; its encoder's tokens need a read-out, which gives the shape.
        use plan::TokenReadout::{Cls, Map, Mean};
        let vit =
            |cut, size, pooling, tokens| feature_shape(Arch::VitBx16, cut, size, pooling, tokens);
        assert_eq!(
            vit("encoder.ln", 224, Pooling::Off, Some(Cls)).unwrap(),
            [768]
        );
        assert_eq!(
            vit("encoder.ln", 224, Pooling::Off, Some(Mean)).unwrap(),
            [768]
        );
        assert_eq!(
            vit("encoder.ln", 224, Pooling::Off, Some(Map)).unwrap(),
            [768, 14, 14]
        );
        assert_eq!(
            vit("encoder.ln", 224, Pooling::Avg { h: 2, w: 2 }, Some(Map)).unwrap(),
            [768, 2, 2]
        );
        assert_eq!(
            code(vit("encoder.ln", 224, Pooling::Off, None)),
            Code::PlanMissingSetting
        );
        assert_eq!(
            code(vit("encoder.ln", 256, Pooling::Off, Some(Cls))),
            Code::PlanInputSize
        );
        assert_eq!(
            code(vit("conv_proj", 224, Pooling::Off, Some(Cls))),
            Code::PlanIncompatible
        );
        assert_eq!(
            code(vit(
                "encoder.ln",
                224,
                Pooling::Avg { h: 1, w: 1 },
                Some(Cls)
            )),
            Code::PlanIncompatible
        );
        assert_eq!(
            code(feature_shape(
                Arch::Resnet18,
                "layer1",
                64,
                Pooling::Off,
                Some(Mean)
            )),
            Code::PlanIncompatible
        );
        // A Swin's channels-last maps are patch tokens without a class token.
        let swin = |cut, tokens| feature_shape(Arch::SwinT, cut, 224, Pooling::Off, tokens);
        assert_eq!(swin("features.5", Some(Map)).unwrap(), [384, 14, 14]);
        assert_eq!(swin("norm", Some(Mean)).unwrap(), [768]);
        assert_eq!(code(swin("norm", Some(Cls))), Code::PlanIncompatible);
        assert_eq!(code(swin("norm", None)), Code::PlanMissingSetting);
        assert_eq!(swin("permute", None).unwrap(), [768, 7, 7]);
    }
}
