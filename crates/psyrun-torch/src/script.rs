//! TorchScript backbones (`backbone torchscript "net.pt"`) and the network the interpreter and
//! `psyrun features` run: a catalog [`Backbone`] or a [`ScriptNet`].
//!
//! A TorchScript file (`torch.jit.trace(model, example).save("net.pt")` or
//! `torch.jit.script(model).save(…)`) holds a module's code (TorchScript, run by libtorch's
//! interpreter, never by Python) and its weights. psyrun uses it whole: its output for a
//! batch `[N, 3, H, W]` is the feature map, so the user exports the network already cut. Its
//! shapes are known only once it is loaded, so [`ScriptNet::shapes`] runs it once on grey
//! images of the train and test sizes (two images, to catch a batch size frozen in by
//! tracing) and checks what came out against the experiment's pooling.
//!
//! Before libtorch sees the file, [`psyrun::checkpoint::file_kind`] tells a state dict, a
//! safetensors file or an old checkpoint from TorchScript, so the error says what the file
//! is and what to do instead of libtorch's "PytorchStreamReader failed locating file
//! constants.pkl".
//!
//! Differences from catalog backbones: the module's parameters keep their layout (psyrun
//! cannot make them channels-last, so the input stays NCHW as exported), and `batchnorm
//! train` puts the whole module in training mode (`module.train()`, Dropout included),
//! where a catalog backbone keeps Dropout off: tch's C API (`atm_train`/`atm_eval`) switches
//! a module's mode only as a whole, with no access to a submodule's `training` flag, so
//! BatchNorm cannot be put in training mode alone. The planner warns about it
//! (`psy::plan::torchscript_train_mode`).

use crate::backbone::{Backbone, FeatureOrder};
use psyrun::checkpoint::{file_kind, FileKind};
use psyrun::diag::Diag;
use psyrun::plan::{
    BatchNorm, Network, Normalize, Plan, Pooling, Precision, Sidecar, TokenFormat, TokenLayout,
    TokenReadout,
};
use psyrun::source::SourceFile;
use std::fmt;
use std::path::{Path, PathBuf};
use tch::{CModule, Device, IValue, Kind, Tensor};

/// A loaded TorchScript module.
pub struct ScriptNet {
    module: CModule,
    path: PathBuf,
    device: Device,
    /// bfloat16 weights and inputs (features come back as float32).
    bf16: bool,
    /// While `bf16`: float32 copies of the parameters from before the conversion, restored
    /// when going back to float32.
    fp32_params: Option<Vec<(String, Tensor)>>,
    /// For a module whose output is a token sequence: which tokens become the features and
    /// how the output lays them out (from its sidecar).
    tokens: Option<(TokenReadout, TokenFormat)>,
}

impl fmt::Debug for ScriptNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptNet")
            .field("path", &self.path)
            .field("device", &self.device)
            .finish()
    }
}

/// Why a TorchScript backbone cannot be used.
#[derive(Debug)]
pub enum ScriptError {
    /// The file cannot be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The file is another kind of PyTorch file (or none).
    NotTorchScript {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// libtorch refused to load it.
    Load {
        /// The file.
        path: PathBuf,
        /// libtorch's message.
        message: String,
    },
    /// It loaded, but running it on a grey batch failed or gave something unusable.
    Output {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
        /// What to do.
        help: String,
    },
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ScriptError::NotTorchScript { path, kind } => {
                write!(f, "{} is {}", path.display(), kind.describe())
            }
            ScriptError::Load { path, message } => write!(
                f,
                "libtorch cannot load the TorchScript module {}: {}",
                path.display(),
                first_line(message)
            ),
            ScriptError::Output { path, message, .. } => {
                write!(f, "TorchScript module {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for ScriptError {}

impl ScriptError {
    /// What the user can do.
    pub fn help(&self) -> String {
        match self {
            ScriptError::Io { .. } => "a relative path is taken from the experiment file's folder".into(),
            ScriptError::NotTorchScript { kind, .. } => match kind {
                FileKind::TorchSave | FileKind::LegacyTorchSave | FileKind::Safetensors => {
                    "weights of a catalog architecture go in its block: `backbone resnet50 { weights \"net.pth\" … }`; \
                     for another architecture, export the cut network as TorchScript: \
                     `torch.jit.trace(model.eval(), torch.rand(1, 3, 224, 224)).save(\"net.pt\")`"
                        .into()
                }
                _ => "a TorchScript file is written by `torch.jit.save` (or `.save()` on a traced or scripted module)"
                    .into(),
            },
            ScriptError::Load { .. } => {
                "the file may come from a newer PyTorch than psyrun's libtorch, or be damaged; \
                 save it again with `torch.jit.save` (psyrun's libtorch version: `psyrun doctor`)"
                    .into()
            }
            ScriptError::Output { help, .. } => help.clone(),
        }
    }
}

/// How [`ScriptNet::try_forward`] starts its message when the output is not a tensor.
const NOT_ONE_TENSOR: &str = "not one tensor: ";

/// A TorchScript interpreter error in a few lines: its first line and, when the module's
/// own code raised, the exception it raised (the last line of the TorchScript traceback).
fn script_error(message: &str) -> String {
    let first = first_line(message);
    let raised = message
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.contains("Error: ") || l.contains("Exception: "));
    match raised {
        Some(r) if r != first => format!("{first} {r}"),
        _ => first.to_owned(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

impl ScriptNet {
    /// Loads `path` onto the CPU in eval mode, after checking that it is TorchScript.
    pub fn load(path: &Path) -> Result<Self, ScriptError> {
        let kind = file_kind(path).map_err(|source| ScriptError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if kind != FileKind::TorchScript {
            return Err(ScriptError::NotTorchScript {
                path: path.to_path_buf(),
                kind,
            });
        }
        let mut module =
            CModule::load_on_device(path, Device::Cpu).map_err(|e| ScriptError::Load {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        module.f_set_eval().map_err(|e| ScriptError::Load {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // float32 parameters, whatever the module was saved in (half, double): psyrun's
        // inputs are float32 (integer buffers such as BatchNorm's counters stay as they are).
        module.to(Device::Cpu, Kind::Float, false);
        Ok(ScriptNet {
            module,
            path: path.to_path_buf(),
            device: Device::Cpu,
            bf16: false,
            fp32_params: None,
            tokens: None,
        })
    }

    /// Reads the module's output as tokens from now on (`None`: as it is).
    pub fn set_tokens(&mut self, tokens: Option<(TokenReadout, TokenFormat)>) {
        self.tokens = tokens;
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the module's parameters and buffers to `device` (in its precision).
    #[allow(clippy::wrong_self_convention)] // the name torch users expect
    pub fn to_device(&mut self, device: Device) {
        self.module.to(device, self.kind(), false);
        self.device = device;
    }

    /// `Bf16` converts the module's floating-point parameters and buffers to bfloat16 (and
    /// its inputs, on the way in; features come back as float32). `Tf32` and `Fp32` keep
    /// float32: whether cuDNN may use TensorFloat-32 inside a TorchScript module is
    /// libtorch's global setting, see `run::set_tf32`.
    ///
    /// Going to `Bf16` keeps float32 copies of the parameters, and going back restores them
    /// exactly. The module's buffers (BatchNorm running statistics) are not reachable
    /// through libtorch's C API here: they come back as float32 with their bfloat16 rounding
    /// (about three significant digits; the arithmetic is float32 again).
    pub fn set_precision(&mut self, precision: Precision) {
        let bf16 = precision == Precision::Bf16;
        if bf16 && !self.bf16 {
            self.fp32_params = self.module.named_parameters().ok().map(|named| {
                tch::no_grad(|| named.into_iter().map(|(k, t)| (k, t.copy())).collect())
            });
        }
        let back = self.bf16 && !bf16;
        self.bf16 = bf16;
        self.module.to(self.device, self.kind(), false);
        if back {
            if let (Some(saved), Ok(now)) =
                (self.fp32_params.take(), self.module.named_parameters())
            {
                tch::no_grad(|| {
                    for ((k, mut t), (k0, s)) in now.into_iter().zip(&saved) {
                        if k == *k0 && t.size() == s.size() {
                            t.copy_(s);
                        }
                    }
                });
            }
        }
    }

    fn kind(&self) -> Kind {
        if self.bf16 {
            Kind::BFloat16
        } else {
            Kind::Float
        }
    }

    /// Eval mode (frozen) or training mode (the tutorial's drifting BatchNorm statistics).
    /// Training mode is the whole module's, Dropout included (see the module docs).
    pub fn set_batchnorm(&mut self, mode: BatchNorm) {
        match mode {
            BatchNorm::Eval => self.module.set_eval(),
            BatchNorm::Train => self.module.set_train(),
        }
    }

    /// The module's output for `x` (`[N, 3, H, W]` on its device), without autograd.
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor, String> {
        let n = x.size().first().copied().unwrap_or(0);
        let x = if self.bf16 {
            x.to_kind(Kind::BFloat16)
        } else {
            x.shallow_clone()
        };
        let out = tch::no_grad(|| self.module.forward_is(&[IValue::Tensor(x)]))
            .map_err(|e| script_error(&e.to_string()))?;
        let t = match out {
            // The probe works in float32, whatever the module computes in.
            IValue::Tensor(t) if t.is_floating_point() && t.kind() != Kind::Float => {
                t.to_kind(Kind::Float)
            }
            IValue::Tensor(t) => t,
            other => return Err(format!("{NOT_ONE_TENSOR}{}", describe_ivalue(&other))),
        };
        match self.tokens {
            None => Ok(t.contiguous()),
            Some((readout, format)) => read_tokens(&t, n, readout, format),
        }
    }

    /// As [`try_forward`](Self::try_forward); a failure panics (caught as a libtorch error by
    /// the interpreter). The output was checked to be a tensor by [`shapes`](Self::shapes).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        // Raised as tch raises libtorch's exceptions, so the interpreter reports it as
        // libtorch's failure (`psy::run::torch`), not as a bug in psyrun.
        self.try_forward(x)
            .unwrap_or_else(|e| panic!("{:?}", tch::TchError::Torch(e)))
    }

    /// Runs the module (in eval mode) on two grey images of `size` (normalised as given)
    /// and returns the shape of one image's output and the shape after `pooling`.
    pub fn shapes(
        &self,
        size: u32,
        normalize: &Normalize,
        pooling: Pooling,
    ) -> Result<(Vec<u32>, Vec<u32>), ScriptError> {
        let fail = |message: String, help: &str| ScriptError::Output {
            path: self.path.clone(),
            message,
            help: help.to_owned(),
        };
        let s = i64::from(size);
        let grey: Vec<f32> = {
            let plane = vec![0.5f32; (size as usize).pow(2)];
            let mut chw = vec![0f32; 3 * plane.len()];
            psyrun::trials::grey_to_chw(&plane, normalize, &mut chw);
            chw
        };
        let one = Tensor::from_slice(&grey).reshape([1, 3, s, s]);
        let x = Tensor::cat(&[&one, &one], 0).to_device(self.device);
        let y = self.try_forward(&x).map_err(|e| {
            if let Some(what) = e.strip_prefix(NOT_ONE_TENSOR) {
                return fail(
                    format!("it returns {what}, not one tensor"),
                    "psyrun needs the feature map alone; export a wrapper whose forward returns \
                     it, e.g. `return self.model(x)[0]`",
                );
            }
            fail(
                format!("running it on a batch of two {size}×{size} images failed: {e}"),
                "psyrun calls the module with one tensor [N, 3, H, W] (normalised as the experiment's \
                 `normalize` says) and needs one tensor [N, …] back; export it with a batch size of \
                 1 or more and check it runs at this `size`",
            )
        })?;
        let shape = y.size();
        if shape.len() < 2 || shape[0] != 2 {
            return Err(fail(
                format!("for a batch of 2 images it returned a tensor of shape {shape:?}; the first dimension must be the batch"),
                "a module traced with a fixed batch size (e.g. `x.view(1, -1)`) keeps it; use \
                 `torch.flatten(x, 1)` or `x.view(x.size(0), -1)` before tracing, or `torch.jit.script`",
            ));
        }
        let kind = y.kind();
        if !matches!(
            kind,
            Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double
        ) {
            return Err(fail(
                format!("it returned {kind:?} values; features must be floating point"),
                "return the feature map of the layer you want to probe",
            ));
        }
        let per_image: Vec<u32> = shape[1..]
            .iter()
            .map(|&d| u32::try_from(d).unwrap_or(u32::MAX))
            .collect();
        if per_image.contains(&0) {
            return Err(fail(
                format!("it returned an empty tensor of shape {shape:?}"),
                "return the feature map of the layer you want to probe",
            ));
        }
        let pooled = match pooling {
            Pooling::Off => per_image.clone(),
            Pooling::Avg { h, w } | Pooling::Max { h, w } => {
                if per_image.len() != 3 {
                    return Err(fail(
                        format!("its output per image has shape {per_image:?}; `pooling` needs a feature map C×H×W"),
                        "use `pooling none`, or export a module that ends at a convolutional layer",
                    ));
                }
                if h > per_image[1] || w > per_image[2] {
                    return Err(fail(
                        format!(
                            "pooling to {h}x{w} is larger than its {}x{} feature map at {size} px",
                            per_image[1], per_image[2]
                        ),
                        &format!(
                            "adaptive pooling reduces; use at most {}x{}",
                            per_image[1], per_image[2]
                        ),
                    ));
                }
                vec![per_image[0], h, w]
            }
        };
        Ok((per_image, pooled))
    }
}

/// The features of a token sequence `t` for a batch of `n` images: the class token
/// (`[N, D]`), the mean of the patch tokens (`[N, D]`) or the patch tokens as a map
/// (`[N, D, rows, columns]`). The batch axis must be where `format` says it is: an output
/// whose declared batch axis does not have the batch's size is refused, so a sequence-first
/// (`lnd`) output is never read as batch-first.
pub fn read_tokens(
    t: &Tensor,
    n: i64,
    readout: TokenReadout,
    format: TokenFormat,
) -> Result<Tensor, String> {
    let size = t.size();
    if size.len() != 3 {
        return Err(format!(
            "the sidecar says the module outputs tokens, but its output has shape {size:?}, not              [N, L, D] or [L, N, D]"
        ));
    }
    let (name, axis) = match format.layout {
        TokenLayout::Nld => ("nld (batch first)", 0),
        TokenLayout::Lnd => ("lnd (sequence first)", 1),
    };
    if size[axis] != n {
        let other = if axis == 0 { 1 } else { 0 };
        let hint = if size[other] == n {
            format!(
                "; its axis {other} is the batch: the layout is {}",
                if other == 0 { "nld" } else { "lnd" }
            )
        } else {
            String::new()
        };
        return Err(format!(
            "the sidecar says the tokens are laid out {name}, but for a batch of {n} images the output has shape {size:?}{hint}"
        ));
    }
    let t = if axis == 1 {
        t.transpose(0, 1)
    } else {
        t.shallow_clone()
    };
    let (l, d) = (size[if axis == 0 { 1 } else { 0 }], size[2]);
    let prefix = i64::from(format.prefix);
    if prefix > l || (readout != TokenReadout::Cls && prefix == l) {
        return Err(format!(
            "the output has {l} tokens, but the sidecar says {prefix} come before the patch tokens"
        ));
    }
    let out = match readout {
        TokenReadout::Cls => t.select(1, 0),
        TokenReadout::Mean => t
            .narrow(1, prefix, l - prefix)
            .mean_dim(1, false, Kind::Float),
        TokenReadout::Map => {
            let Some((rows, cols)) = format.grid else {
                return Err(
                    "`tokens map` needs the patch grid, which the sidecar does not give".into(),
                );
            };
            let (rows, cols) = (i64::from(rows), i64::from(cols));
            if rows * cols != l - prefix {
                return Err(format!(
                    "the sidecar's grid {rows}×{cols} does not hold the output's {} patch tokens",
                    l - prefix
                ));
            }
            t.narrow(1, prefix, l - prefix)
                .reshape([n, rows, cols, d])
                .permute([0, 3, 1, 2])
        }
    };
    Ok(out.contiguous())
}

/// Reads the sidecar of the TorchScript module `module` (if any) and sets `net` to read the
/// token read-out `tokens` from its output. Fails when they do not fit together: tokens
/// asked of a module whose sidecar gives no token layout (or that has none), a module whose
/// output is tokens without `tokens`, `cls` without a class token, `map` without a grid.
pub fn apply_sidecar(
    net: &mut ScriptNet,
    module: &Path,
    tokens: Option<TokenReadout>,
) -> Result<Option<Sidecar>, ScriptError> {
    let fail = |message: String, help: &str| ScriptError::Output {
        path: module.to_path_buf(),
        message,
        help: help.to_owned(),
    };
    let sidecar = psyrun::plan::sidecar::read(module).map_err(|e| {
        fail(
            format!("its sidecar cannot be used: {e}"),
            "write the module and its sidecar again with `scripts/export_torchscript.py`, or remove the sidecar",
        )
    })?;
    let format = sidecar.as_ref().and_then(|s| s.tokens);
    match (tokens, format) {
        (None, None) => {}
        (Some(r), None) => {
            return Err(fail(
                format!(
                    "`tokens {}` needs to know how the module's output lays out its tokens, and {}",
                    r.name(),
                    if sidecar.is_some() {
                        "its sidecar says it outputs a feature map"
                    } else {
                        "it has no sidecar"
                    }
                ),
                "export the module with `scripts/export_torchscript.py`, which writes FILE.json with the token layout (batch or sequence first, prefix tokens, patch grid)",
            ))
        }
        (None, Some(f)) => {
            return Err(fail(
                format!(
                    "its sidecar says it outputs tokens ({} prefix token{}): say which become the features",
                    f.prefix,
                    if f.prefix == 1 { "" } else { "s" }
                ),
                "add `tokens cls` (the class token), `tokens mean` (the mean of the patch tokens) or `tokens map` (the patch tokens as a feature map) to the backbone (with \
                 `psyrun features`: `--tokens cls`, `mean` or `map`)",
            ))
        }
        (Some(TokenReadout::Cls), Some(f)) if f.prefix == 0 => {
            return Err(fail(
                "`tokens cls` needs a class token, and its sidecar says no token comes before the patch tokens"
                    .into(),
                "use `tokens mean` or `tokens map`",
            ))
        }
        (Some(TokenReadout::Map), Some(f)) if f.grid.is_none() => {
            return Err(fail(
                "`tokens map` needs the patch grid, and its sidecar gives none".into(),
                "use `tokens cls` or `tokens mean`, or export the module again with its grid",
            ))
        }
        (Some(r), Some(f)) => net.set_tokens(Some((r, f))),
    }
    Ok(sidecar)
}

fn describe_ivalue(v: &IValue) -> String {
    match v {
        IValue::Tuple(items) => format!("a tuple of {}", items.len()),
        IValue::GenericList(items) => format!("a list of {}", items.len()),
        IValue::TensorList(items) => format!("a list of {} tensors", items.len()),
        IValue::GenericDict(_) => "a dict".into(),
        IValue::None => "None".into(),
        IValue::Double(_) | IValue::Int(_) | IValue::Bool(_) => "a number".into(),
        IValue::String(_) => "a string".into(),
        _ => "something else".into(),
    }
}

/// The network that computes the features: a catalog backbone or a TorchScript module.
#[derive(Debug)]
pub enum Net {
    /// Built by psyrun, cut after a catalog module.
    Catalog(Backbone),
    /// A user's TorchScript module.
    Script(ScriptNet),
}

impl Net {
    /// The output at the cut for `x` (`[N, 3, H, W]` on the network's device), without
    /// autograd, contiguous.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Net::Catalog(b) => b.forward(x),
            Net::Script(s) => s.forward(x),
        }
    }

    /// The output at the cut as the network leaves it, without autograd: for catalog
    /// backbones with channels-last on, channels-last strides (no copy into torchvision's
    /// order). Flatten it with [`flatten_features`](crate::backbone::flatten_features) in
    /// [`feature_order`](Self::feature_order).
    pub fn forward_raw(&self, x: &Tensor) -> Tensor {
        match self {
            Net::Catalog(b) => b.forward_raw(x),
            Net::Script(s) => s.forward(x),
        }
    }

    /// The order in which [`forward_raw`](Self::forward_raw)'s maps flatten without a copy.
    pub fn feature_order(&self) -> FeatureOrder {
        match self {
            Net::Catalog(b) => b.feature_order(),
            Net::Script(_) => FeatureOrder::Chw,
        }
    }

    /// Frozen, or BatchNorm in training mode.
    pub fn set_batchnorm(&mut self, mode: BatchNorm) {
        match self {
            Net::Catalog(b) => b.set_batchnorm(mode),
            Net::Script(s) => s.set_batchnorm(mode),
        }
    }

    /// Moves the network to `device`.
    #[allow(clippy::wrong_self_convention)] // the name torch users expect
    pub fn to_device(&mut self, device: Device) {
        match self {
            Net::Catalog(b) => b.to_device(device),
            Net::Script(s) => s.to_device(device),
        }
    }

    /// The arithmetic of the forward passes.
    pub fn set_precision(&mut self, precision: Precision) {
        match self {
            Net::Catalog(b) => b.set_precision(precision),
            Net::Script(s) => s.set_precision(precision),
        }
    }

    /// The names of the parameters and buffers (BatchNorm running statistics included) that
    /// hold a NaN or an infinity, in key order. A TorchScript module's buffers are not
    /// reachable through libtorch's C API here: only its parameters are checked (its
    /// features are checked when testing).
    pub fn non_finite(&self) -> Vec<String> {
        let mut named: Vec<(String, Tensor)> = match self {
            Net::Catalog(b) => b.variables().into_iter().collect(),
            Net::Script(s) => s.module.named_parameters().unwrap_or_default(),
        };
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
            .into_iter()
            .filter(|(_, t)| !all_finite(t))
            .map(|(name, _)| name)
            .collect()
    }

    /// Channels-last activations where psyrun controls the layout (catalog backbones).
    pub fn set_channels_last(&mut self, on: bool) {
        if let Net::Catalog(b) = self {
            b.set_channels_last(on);
        }
    }
}

/// Whether every value of `t` is finite (integer tensors always are).
pub fn all_finite(t: &Tensor) -> bool {
    !t.is_floating_point() || t.numel() == 0 || t.isfinite().all().int64_value(&[]) != 0
}

/// For a TorchScript backbone of `plan` (a path relative to `base`): loads the module, runs it on grey
/// images of the train and test sizes, and returns the plan with the feature shapes filled
/// in, and the module. A catalog backbone's plan comes back unchanged, with no module.
pub fn resolve(
    plan: &Plan,
    base: &Path,
    file: Option<&SourceFile>,
) -> Result<(Plan, Option<ScriptNet>), Diag> {
    let Network::TorchScript { file: module } = &plan.backbone.network else {
        return Ok((plan.clone(), None));
    };
    let fail = |e: ScriptError| crate::failure::script_diag(&e, file.map(|f| (plan, f)));
    let path = base.join(module);
    let mut net = ScriptNet::load(&path).map_err(fail)?;
    let sidecar = apply_sidecar(&mut net, &path, plan.backbone.tokens).map_err(fail)?;
    if let Some(fixed) = sidecar.as_ref().and_then(|s| s.input_size) {
        for (what, size) in [("train", plan.train.size), ("test", plan.test.size)] {
            if size != fixed {
                return Err(fail(ScriptError::Output {
                    path: path.clone(),
                    message: format!(
                        "its sidecar says it takes {fixed}×{fixed} images only, and the {what}                          images are {size}×{size}"
                    ),
                    help: format!("use `size {fixed}`, or export the module for {size} px"),
                }));
            }
        }
    }
    let pooling = plan.backbone.pooling;
    let (cut_shape, feature_shape) = net
        .shapes(plan.train.size, &plan.train.normalize, pooling)
        .map_err(fail)?;
    if plan.test.size != plan.train.size {
        let (test_shape, test_features) = net
            .shapes(plan.test.size, &plan.test.normalize, pooling)
            .map_err(fail)?;
        if test_features != feature_shape {
            return Err(fail(ScriptError::Output {
                path: net.path().to_path_buf(),
                message: format!(
                    "train ({} px) and test ({} px) images give different feature shapes ({:?} vs {:?})",
                    plan.train.size, plan.test.size, cut_shape, test_shape
                ),
                help: "use the same size for both, or adaptive pooling (`pooling avg 4x4`) so \
                       the probe sees a fixed shape"
                    .into(),
            }));
        }
    }
    let mut resolved = plan.clone();
    resolved.derived.set_shapes(cut_shape, feature_shape);
    resolved.derived.set_probe(plan.design.as_ref());
    resolved.backbone.sidecar = sidecar;
    Ok((resolved, Some(net)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use psyrun::models::catalog::Arch;

    const CPU: Device = Device::Cpu;

    #[test]
    fn a_torchscript_module_gets_its_float32_parameters_back_after_bf16() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("tests/fixtures/torchscript/tiny_cnn.pt");
        let mut s = ScriptNet::load(&path).unwrap();
        let params = || -> Vec<(String, Tensor)> {
            s.module
                .named_parameters()
                .unwrap()
                .into_iter()
                .map(|(k, t)| (k, t.copy()))
                .collect()
        };
        let before = params();
        assert!(!before.is_empty());
        tch::manual_seed(4);
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, CPU));
        let fp32 = s.forward(&x);
        s.set_precision(Precision::Bf16);
        s.set_precision(Precision::Fp32);
        let after: Vec<(String, Tensor)> = s.module.named_parameters().unwrap();
        for ((k, a), (_, b)) in after.iter().zip(&before) {
            assert_eq!(a.kind(), Kind::Float, "{k}");
            assert!(a.equal(b), "{k} not restored exactly");
        }
        // The buffers (BatchNorm statistics) keep their bfloat16 rounding.
        let rel = (&s.forward(&x) - &fp32).abs().max().double_value(&[])
            / fp32.abs().max().double_value(&[]);
        eprintln!("tiny_cnn after bf16 vs float32: {rel:.3e}");
        assert!(rel < 1e-2, "{rel}");
    }

    #[test]
    fn non_finite_names_a_nan_batchnorm_statistic() {
        let mut b = Backbone::new(Arch::Resnet18, "layer1", CPU).unwrap();
        b.init_random(1);
        let net = Net::Catalog(b);
        assert!(net.non_finite().is_empty());
        let Net::Catalog(b) = &net else {
            unreachable!()
        };
        let vars = b.variables();
        tch::no_grad(|| {
            let _ = vars["layer1.0.bn2.running_var"]
                .narrow(0, 3, 1)
                .fill_(f64::NAN);
            let _ = vars["bn1.running_mean"]
                .narrow(0, 0, 1)
                .fill_(f64::INFINITY);
        });
        assert_eq!(
            net.non_finite(),
            ["bn1.running_mean", "layer1.0.bn2.running_var"]
        );
        assert!(all_finite(&Tensor::from_slice(&[1i64, 2])));
        assert!(!all_finite(&Tensor::from_slice(&[1f32, f32::NAN])));
    }
    const IMAGENET: Normalize = Normalize::MeanStd {
        mean: psyrun::plan::IMAGENET_MEAN,
        std: psyrun::plan::IMAGENET_STD,
    };

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("psyrun-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Traces `f` on `example` into a TorchScript file `name`.
    fn traced(name: &str, example: &Tensor, f: &mut dyn FnMut(&Tensor) -> Vec<Tensor>) -> PathBuf {
        let mut closure = |xs: &[Tensor]| f(&xs[0]);
        let m =
            CModule::create_by_tracing("Net", "forward", &[example.shallow_clone()], &mut closure)
                .unwrap();
        let path = temp(name);
        m.save(&path).unwrap();
        path
    }

    fn resnet18_layer1() -> Backbone {
        let mut b = Backbone::new(Arch::Resnet18, "layer1", CPU).unwrap();
        b.init_random(7);
        b
    }

    fn err(r: Result<impl fmt::Debug, ScriptError>) -> ScriptError {
        r.expect_err("expected an error")
    }

    #[test]
    fn a_traced_catalog_backbone_computes_the_same_features_and_shapes() {
        let b = resnet18_layer1();
        tch::manual_seed(1);
        let example = Tensor::randn([1, 3, 64, 64], (Kind::Float, CPU));
        let path = traced("r18.pt", &example, &mut |x| vec![b.forward(x)]);
        let net = ScriptNet::load(&path).unwrap();
        let x = Tensor::randn([3, 3, 64, 64], (Kind::Float, CPU));
        let want = b.forward(&x);
        let got = net.forward(&x);
        assert_eq!(got.size(), vec![3, 64, 16, 16]);
        let diff = (&got - &want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        assert!(diff <= 1e-5 * scale, "max diff {diff} (scale {scale})");
        let (cut, feat) = net.shapes(64, &IMAGENET, Pooling::Off).unwrap();
        assert_eq!((cut.clone(), feat), (vec![64, 16, 16], vec![64, 16, 16]));
        let (_, feat) = net
            .shapes(64, &IMAGENET, Pooling::Avg { h: 2, w: 3 })
            .unwrap();
        assert_eq!(feat, vec![64, 2, 3]);
        // Another input size: the traced convolutions are size-agnostic.
        let (cut, _) = net.shapes(96, &Normalize::Off, Pooling::Off).unwrap();
        assert_eq!(cut, vec![64, 24, 24]);
        // No autograd: the output carries no graph even for an input that wants gradients.
        let xg = x.set_requires_grad(true);
        assert!(!net.forward(&xg).requires_grad());
    }

    #[test]
    fn script_from_a_fifo_is_refused_without_blocking() {
        let path = temp("net-fifo.pt");
        let _ = std::fs::remove_file(&path);
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if !made.is_ok_and(|s| s.success()) {
            return;
        }
        let Err(e) = ScriptNet::load(&path) else {
            panic!("a FIFO is not loaded")
        };
        assert!(matches!(e, ScriptError::Io { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn files_that_are_not_torchscript_say_what_they_are() {
        // A zip archive of `names`, each holding `body`.
        let zip_of = |names: &[&str], body: &[u8]| -> Vec<u8> {
            let mut buf = std::io::Cursor::new(Vec::new());
            let mut w = zip::ZipWriter::new(&mut buf);
            for name in names {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                std::io::Write::write_all(&mut w, body).unwrap();
            }
            w.finish().unwrap();
            buf.into_inner()
        };
        // A torch.save-style zip (data.pkl, no code).
        let sd = temp("state_dict.pth");
        let records = ["net/data.pkl", "net/data/0", "net/version"];
        std::fs::write(&sd, zip_of(&records, b"\x80\x02}q\x00.")).unwrap();
        let e = err(ScriptNet::load(&sd));
        assert!(
            matches!(
                e,
                ScriptError::NotTorchScript {
                    kind: FileKind::TorchSave,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("torch.save checkpoint"), "{e}");
        assert!(e.help().contains("weights \"net.pth\""), "{}", e.help());

        let garbage = temp("garbage.pt");
        std::fs::write(&garbage, b"not a model at all").unwrap();
        let e = err(ScriptNet::load(&garbage));
        assert!(matches!(
            e,
            ScriptError::NotTorchScript {
                kind: FileKind::Unknown,
                ..
            }
        ));
        assert!(e.help().contains("torch.jit.save"));

        let e = err(ScriptNet::load(&temp("missing.pt")));
        assert!(matches!(e, ScriptError::Io { .. }), "{e:?}");

        // A TorchScript archive whose records are damaged: libtorch refuses it, no panic.
        let bad = temp("broken.pt");
        let records = ["net/code/__torch__.py", "net/constants.pkl", "net/data.pkl"];
        std::fs::write(&bad, zip_of(&records, b"garbage")).unwrap();
        let e = err(ScriptNet::load(&bad));
        assert!(matches!(e, ScriptError::Load { .. }), "{e:?}");
    }

    #[test]
    fn outputs_that_do_not_fit_are_explained() {
        let example = Tensor::ones([1, 3, 16, 16], (Kind::Float, CPU));
        // (A module returning a tuple is tested with a scripted module in tests/run.rs.)
        // The batch averaged away: [C, H, W] comes back.
        let path = traced("nobatch.pt", &example, &mut |x| {
            vec![x.mean_dim(0, false, Kind::Float)]
        });
        let net = ScriptNet::load(&path).unwrap();
        let e = err(net.shapes(16, &Normalize::Off, Pooling::Off));
        assert!(
            e.to_string().contains("first dimension must be the batch"),
            "{e}"
        );

        // A batch size of 1 frozen in by tracing: two images come back as one row.
        let path = traced("view1.pt", &example, &mut |x| vec![x.view([1, -1])]);
        let net = ScriptNet::load(&path).unwrap();
        let e = err(net.shapes(16, &Normalize::Off, Pooling::Off));
        assert!(
            e.to_string()
                .contains("shape [1, 1536]; the first dimension must be the batch"),
            "{e}"
        );
        assert!(e.help().contains("torch.flatten(x, 1)"));

        // A shape frozen in by tracing that no longer fits: libtorch's error, explained.
        let path = traced("reshape.pt", &example, &mut |x| vec![x.reshape([1, 768])]);
        let net = ScriptNet::load(&path).unwrap();
        let e = err(net.shapes(16, &Normalize::Off, Pooling::Off));
        assert!(
            e.to_string()
                .contains("running it on a batch of two 16×16 images failed"),
            "{e}"
        );
        assert!(e.help().contains("one tensor [N, 3, H, W]"), "{}", e.help());

        // A flat output cannot be pooled; a map smaller than the pooling neither.
        let path = traced("flat.pt", &example, &mut |x| vec![x.flatten(1, -1)]);
        let net = ScriptNet::load(&path).unwrap();
        assert_eq!(
            net.shapes(16, &Normalize::Off, Pooling::Off).unwrap().1,
            vec![768]
        );
        let e = err(net.shapes(16, &Normalize::Off, Pooling::Avg { h: 2, w: 2 }));
        assert!(e.to_string().contains("needs a feature map"), "{e}");
        let path = traced("map.pt", &example, &mut |x| {
            vec![x.avg_pool2d([4, 4], [4, 4], [0, 0], false, true, None)]
        });
        let net = ScriptNet::load(&path).unwrap();
        let e = err(net.shapes(16, &Normalize::Off, Pooling::Max { h: 8, w: 8 }));
        assert!(
            e.to_string().contains("larger than its 4x4 feature map"),
            "{e}"
        );

        // An empty output.
        let path = traced("empty.pt", &example, &mut |x| vec![x.narrow(1, 0, 0)]);
        let net = ScriptNet::load(&path).unwrap();
        let e = err(net.shapes(16, &Normalize::Off, Pooling::Off));
        assert!(
            e.to_string()
                .contains("an empty tensor of shape [2, 0, 16, 16]"),
            "{e}"
        );

        // A module that computes in double precision (a double constant promotes the float
        // input) hands float32 features to the probe.
        let w = Tensor::full([3, 1, 1], 2.0, (Kind::Double, CPU));
        let path = traced("double.pt", &example, &mut |x| vec![x * &w]);
        let net = ScriptNet::load(&path).unwrap();
        let (cut, _) = net.shapes(16, &Normalize::Off, Pooling::Off).unwrap();
        assert_eq!(cut, vec![3, 16, 16]);
        let y = net.forward(&Tensor::ones([1, 3, 16, 16], (Kind::Float, CPU)));
        assert_eq!(y.kind(), Kind::Float);
        assert_eq!(y.max().double_value(&[]), 2.0);

        // Integer output.
        let path = traced("int.pt", &example, &mut |x| {
            vec![x.gt(0.5).to_kind(Kind::Int64)]
        });
        let net = ScriptNet::load(&path).unwrap();
        let e = err(net.shapes(16, &Normalize::Off, Pooling::Off));
        assert!(e.to_string().contains("floating point"), "{e}");
    }

    /// A toy vision transformer's output: the 16 patches (4×4 px, 48 values) of a 16×16
    /// image as tokens after a class token (twice their mean), batch first or sequence first.
    fn toy_tokens(x: &Tensor, lnd: bool) -> Tensor {
        let patches = x
            .reshape([-1, 3, 4, 4, 4, 4])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([-1, 16, 48]);
        let cls = patches.mean_dim(1, true, Kind::Float) * 2.0;
        let t = Tensor::cat(&[cls, patches], 1);
        if lnd {
            t.transpose(0, 1)
        } else {
            t
        }
    }

    fn sidecar(module: &Path, layout: &str, prefix: u32, grid: &str) {
        std::fs::write(
            psyrun::plan::sidecar::path_for(module),
            format!(
                r#"{{"psyrun_sidecar": 1, "source": "toy", "layer": "encoder", "input_size": 16,
                    "normalize": null,
                    "tokens": {{"layout": "{layout}", "prefix": {prefix}, "grid": {grid}}}}}"#
            ),
        )
        .unwrap();
    }

    /// The token read-outs take the right axis whatever the layout: a sequence-first module
    /// (OpenCLIP's `LND`) and a batch-first one give the same class token, patch mean and
    /// patch map, equal to what the tokens were made of; a layout declared wrong is refused
    /// instead of read along the wrong axis.
    #[test]
    fn token_readouts_read_the_batch_axis_the_sidecar_names() {
        let example = Tensor::rand([2, 3, 16, 16], (Kind::Float, CPU));
        let nld = traced("tokens_nld.pt", &example, &mut |x| {
            vec![toy_tokens(x, false)]
        });
        let lnd = traced("tokens_lnd.pt", &example, &mut |x| {
            vec![toy_tokens(x, true)]
        });
        sidecar(&nld, "nld", 1, "[4, 4]");
        sidecar(&lnd, "lnd", 1, "[4, 4]");
        tch::manual_seed(3);
        let x = Tensor::rand([3, 3, 16, 16], (Kind::Float, CPU));
        let truth = toy_tokens(&x, false);
        let patches = truth.narrow(1, 1, 16);
        for readout in [TokenReadout::Cls, TokenReadout::Mean, TokenReadout::Map] {
            let mut got = Vec::new();
            for path in [&nld, &lnd] {
                let mut net = ScriptNet::load(path).unwrap();
                let side = apply_sidecar(&mut net, path, Some(readout))
                    .unwrap()
                    .unwrap();
                assert_eq!(side.input_size, Some(16));
                got.push(net.try_forward(&x).unwrap());
            }
            assert!(got[0].equal(&got[1]), "{readout:?}: the layouts disagree");
            let want = match readout {
                TokenReadout::Cls => truth.select(1, 0),
                TokenReadout::Mean => patches.mean_dim(1, false, Kind::Float),
                TokenReadout::Map => patches.reshape([3, 4, 4, 48]).permute([0, 3, 1, 2]),
            };
            let diff = (&got[0] - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "{readout:?}: {diff}");
        }
        // The class token is twice the patch mean, so `cls` and `mean` really differ.
        let mut net = ScriptNet::load(&nld).unwrap();
        apply_sidecar(&mut net, &nld, Some(TokenReadout::Map)).unwrap();
        // Patch (row 1, column 2) is the map's column (1, 2): the grid is row-major.
        let map = net.try_forward(&x).unwrap();
        let p = x.narrow(2, 4, 4).narrow(3, 8, 4).reshape([3, 48]);
        let at = map.select(3, 2).select(2, 1);
        assert!(at.equal(&p));
        // Shapes: a map pools like a CNN's.
        let (raw, pooled) = net
            .shapes(16, &Normalize::Off, Pooling::Avg { h: 2, w: 2 })
            .unwrap();
        assert_eq!((raw, pooled), (vec![48, 4, 4], vec![48, 2, 2]));

        // Declared batch first, but sequence first: refused, with the right layout named.
        sidecar(&lnd, "nld", 1, "[4, 4]");
        let mut net = ScriptNet::load(&lnd).unwrap();
        apply_sidecar(&mut net, &lnd, Some(TokenReadout::Cls)).unwrap();
        let e = net.try_forward(&x).unwrap_err();
        assert!(
            e.contains("its axis 1 is the batch: the layout is lnd"),
            "{e}"
        );
        // A grid that does not hold the patches.
        sidecar(&nld, "nld", 1, "[4, 5]");
        let mut net = ScriptNet::load(&nld).unwrap();
        apply_sidecar(&mut net, &nld, Some(TokenReadout::Map)).unwrap();
        let e = net.try_forward(&x).unwrap_err();
        assert!(
            e.contains("4×5 does not hold the output's 16 patch tokens"),
            "{e}"
        );

        // What cannot fit together is said before anything runs.
        let cases: [(&str, u32, &str, Option<TokenReadout>, &str); 3] = [
            ("nld", 1, "[4, 4]", None, "say which become the features"),
            (
                "nld",
                0,
                "[4, 4]",
                Some(TokenReadout::Cls),
                "needs a class token",
            ),
            (
                "nld",
                1,
                "null",
                Some(TokenReadout::Map),
                "needs the patch grid",
            ),
        ];
        for (layout, prefix, grid, readout, says) in cases {
            sidecar(&nld, layout, prefix, grid);
            let mut net = ScriptNet::load(&nld).unwrap();
            let e = err(apply_sidecar(&mut net, &nld, readout));
            assert!(e.to_string().contains(says), "{e}");
        }
        std::fs::remove_file(psyrun::plan::sidecar::path_for(&nld)).unwrap();
        let mut net = ScriptNet::load(&nld).unwrap();
        let e = err(apply_sidecar(&mut net, &nld, Some(TokenReadout::Mean)));
        assert!(e.to_string().contains("it has no sidecar"), "{e}");
        assert_eq!(apply_sidecar(&mut net, &nld, None).unwrap(), None);
    }
}
