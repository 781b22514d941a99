//! Frozen torchvision backbones, cut after any catalog module.
//!
//! A [`Backbone`] is an explicit tree of named stages that mirrors torchvision's module tree,
//! built from the catalog's description of the architecture ([`catalog::network`]):
//! every parameter and buffer lives in a [`tch::nn::VarStore`] under exactly the key that
//! torchvision's `state_dict()` gives it (`conv1.weight`, `bn1.running_mean`,
//! `bn1.num_batches_tracked`, `layer1.0.downsample.0.weight`, `features.0.bias`,
//! `classifier.1.weight`, ...), so a torchvision checkpoint loads key by key
//! (see [`crate::weights`]).
//!
//! Only the modules up to the cut are built: a resnet50 cut after `layer2` allocates nothing
//! of `layer3`, `layer4` or `fc`. [`state_keys`] still lists every torchvision key of the
//! architecture (with shapes), so the weights loader can tell keys past the cut (ignored)
//! from keys that are no part of the architecture (reported).
//!
//! Forward semantics ([`Backbone::features`]) follow torchvision's `forward` exactly and stop
//! at the cut: cutting after a module takes that module's output. Inside a ResNet block,
//! `layer4.0.conv2` runs `conv1 → bn1 → relu → conv2` of that block; `layer4.0.downsample.0`
//! runs the block's main branch (as torchvision does, it comes first) and then the downsample
//! path up to that module. `torch.flatten(x, 1)` is applied before `fc` (ResNet) and before
//! `classifier` (VGG, AlexNet, MobileNet, EfficientNet; MobileNet V2 pools globally by a
//! function call first). The `avgpool` of VGG and AlexNet is adaptive (7×7 and 6×6).
//! Inverted residuals add their input to their branch; squeeze-and-excitation gates multiply
//! their input by the branch's [N, C, 1, 1]; stochastic depth and Dropout are the identity.
//!
//! The network is frozen: no variable requires a gradient, [`Backbone::features`] runs under
//! `tch::no_grad`, and Dropout is always the identity. BatchNorm follows
//! [`psyrun::plan::BatchNorm`]:
//! - `Eval` (default): running statistics are used and never updated (torchvision `eval()`).
//! - `Train`: exactly torchvision's BatchNorm2d in `train()` mode: every forward normalises
//!   with the batch's own statistics (biased variance) and updates the running statistics in
//!   place with momentum 0.1 (`running = 0.9·running + 0.1·batch`, the variance term unbiased)
//!   and increments `num_batches_tracked`. Only the BatchNorm layers up to the cut see the
//!   batch, so only they drift. This reproduces the tutorial's (accidental) behaviour; Dropout
//!   stays off even then.
use psyrun::models::catalog::{self, family, network, Arch, Body, Family, Merge, Node, Op};
use psyrun::plan::{BatchNorm, Pooling, Precision, TokenReadout};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tch::{nn, Device, Kind, Tensor};

mod clip;
#[cfg(test)]
mod clip_tests;
#[cfg(test)]
mod cnn2_tests;
#[cfg(test)]
mod multi_cut_tests;
#[cfg(test)]
mod parity_tests;
mod swin;
#[cfg(test)]
mod tests;
mod vit;
#[cfg(test)]
mod vit_tests;

/// BatchNorm momentum (torchvision's default; each layer uses its catalog [`Op`]'s).
pub const BN_MOMENTUM: f64 = 0.1;
/// BatchNorm epsilon (torchvision's default; each layer uses its catalog [`Op`]'s).
pub const BN_EPS: f64 = 1e-5;

/// Why a backbone cannot be built or run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackboneError {
    /// The path names no cut point of the architecture.
    #[error("{arch} has no layer `{cut}` to cut after")]
    UnknownCut {
        /// The architecture.
        arch: Arch,
        /// The path asked for.
        cut: String,
    },
    /// The cut lies past the one the backbone was built for (those modules do not exist).
    #[error("layer `{cut}` of {arch} lies past `{built}`, the cut this backbone was built for")]
    PastCut {
        /// The architecture.
        arch: Arch,
        /// The path asked for.
        cut: String,
        /// The cut the backbone was built up to.
        built: String,
    },
    /// The plan's backbone is a TorchScript module, not a catalog architecture.
    #[error("a TorchScript backbone is not built by psyrun")]
    NotCatalog,
    /// The token read-out cannot be taken from the cut's output.
    #[error("`tokens` at `{cut}`: {message}")]
    Tokens {
        /// The cut.
        cut: String,
        /// What went wrong.
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// State keys (the networks themselves are described by the catalog, see [`catalog::network`]).

/// `prefix.name`; `prefix` for a node without a name (a group of branches that is no module,
/// see the catalog's `join`).
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else if name.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// ConvNeXt's initial layer scale (torchvision's `layer_scale=1e-6`).
const LAYER_SCALE: f64 = 1e-6;

/// How a variable is initialised by [`Backbone::init_random`] (torchvision's schemes).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Init {
    Const(f64),
    Normal(f64),
    Uniform(f64),
    /// Swin's `relative_position_index` buffer for a window of this side (computed, not
    /// random).
    RelativePositionIndex(u32),
}

/// A parameter or buffer of a torchvision model, as in its `state_dict()`.
#[derive(Clone, Debug, PartialEq)]
pub struct StateKey {
    /// The `state_dict()` key, e.g. `layer1.0.bn1.running_var`.
    pub key: String,
    /// Its shape (empty for `num_batches_tracked`).
    pub shape: Vec<i64>,
    /// `Kind::Float`, or `Kind::Int64` for `num_batches_tracked`.
    pub kind: Kind,
    init: Init,
}

/// The keys of `nodes` (under `prefix`) in torchvision's order.
fn state_keys_of(nodes: &[Node], prefix: &str, fam: Family, out: &mut Vec<StateKey>) {
    // The enclosing module's own parameters (a class token, a position embedding) come
    // before its children's keys, wherever the forward uses them.
    let parameter = |n: &&Node| matches!(n.body, Body::Leaf(op) if op.is_parameter());
    let (params, modules): (Vec<&Node>, Vec<&Node>) = nodes.iter().partition(parameter);
    for node in params.into_iter().chain(modules) {
        let path = join(prefix, &node.name);
        match &node.body {
            Body::Leaf(op) => op_keys(*op, &path, fam, out),
            Body::Seq(children) => state_keys_of(
                &catalog::registration_order(node.class, children),
                &path,
                fam,
                out,
            ),
            Body::Residual(branches) => {
                for b in branches {
                    state_keys_of(b, &path, fam, out);
                }
            }
            Body::Block { main, merge } => {
                // A module's own parameters come before its children's.
                if let Merge::Add {
                    layer_scale: Some(c),
                    ..
                } = merge
                {
                    out.push(StateKey {
                        key: join(&path, "layer_scale"),
                        shape: vec![i64::from(*c), 1, 1],
                        kind: Kind::Float,
                        init: Init::Const(LAYER_SCALE),
                    });
                }
                let first = match merge {
                    Merge::Add {
                        shortcut: Some(sc),
                        shortcut_first: true,
                        ..
                    } => Some(sc),
                    _ => None,
                };
                if let Some(sc) = first {
                    state_keys_of(std::slice::from_ref(sc), &path, fam, out);
                }
                state_keys_of(main, &path, fam, out);
                match merge {
                    Merge::Add {
                        shortcut: Some(sc),
                        shortcut_first: false,
                        activation,
                        ..
                    } => {
                        state_keys_of(std::slice::from_ref(sc), &path, fam, out);
                        if let Some(act) = activation {
                            state_keys_of(std::slice::from_ref(act), &path, fam, out);
                        }
                    }
                    Merge::Add {
                        activation: Some(act),
                        ..
                    } => state_keys_of(std::slice::from_ref(act), &path, fam, out),
                    Merge::Concat { branches, .. } => {
                        for b in branches {
                            state_keys_of(b, &path, fam, out);
                        }
                    }
                    Merge::Add { .. } | Merge::Scale | Merge::Dense => {}
                }
            }
        }
    }
}

/// The keys of leaf `op` at `path`, initialised as torchvision initialises `fam`.
fn op_keys(op: Op, path: &str, fam: Family, out: &mut Vec<StateKey>) {
    let mut push = |name: &str, shape: Vec<i64>, kind: Kind, init: Init| {
        out.push(StateKey {
            key: join(path, name),
            shape,
            kind,
            init,
        })
    };
    match op {
        Op::Conv2d { .. } | Op::Conv2dRect { .. } => {
            // A grouped conv's weight sees cin / groups input channels.
            let (cin, cout, kh, kw, bias) = match op {
                Op::Conv2d {
                    cin,
                    cout,
                    k,
                    groups,
                    bias,
                    ..
                } => (cin / groups, cout, k, k, bias),
                Op::Conv2dRect {
                    cin, cout, kh, kw, ..
                } => (cin, cout, kh, kw, false),
                _ => unreachable!("a conv"),
            };
            let (cin, cout) = (i64::from(cin), i64::from(cout));
            let (kh, kw) = (i64::from(kh), i64::from(kw));
            let fan_in = (cin * kh * kw) as f64;
            let fan_out = (cout * kh * kw) as f64;
            // resnet, vgg, mobilenet, efficientnet: kaiming_normal_(mode="fan_out",
            // nonlinearity="relu" or its default leaky_relu with a=0: the same gain √2),
            // bias 0. alexnet: nn.Conv2d's reset_parameters: kaiming_uniform_(a=√5) =
            // U(±1/√fan_in), bias U(±1/√fan_in). convnext: trunc_normal_(std=0.02) cut at
            // ±2 = ±100 std, which a normal never reaches in practice; bias 0.
            // squeezenet: kaiming_uniform_ (gain √2, U(±√(6/fan_in))) but the classifier's
            // conv normal_(0, 0.01); bias 0.
            let (w, b) = match fam {
                Family::Convnext => (Init::Normal(0.02), Init::Const(0.0)),
                // clip, dinov2: nn.Conv2d's defaults.
                Family::Clip | Family::Dinov2 => (
                    Init::Uniform(1.0 / fan_in.sqrt()),
                    Init::Uniform(1.0 / fan_in.sqrt()),
                ),
                // vit: conv_proj trunc_normal_(std=√(1/fan_in)) (cut at ±2, over 50 std).
                Family::Vit => (Init::Normal((1.0 / fan_in).sqrt()), Init::Const(0.0)),
                // swin: nn.Conv2d's default.
                Family::Swin => (
                    Init::Uniform(1.0 / fan_in.sqrt()),
                    Init::Uniform(1.0 / fan_in.sqrt()),
                ),
                Family::Squeezenet if path.starts_with("classifier.") => {
                    (Init::Normal(0.01), Init::Const(0.0))
                }
                Family::Squeezenet => (Init::Uniform((6.0 / fan_in).sqrt()), Init::Const(0.0)),
                Family::Resnet | Family::Vgg | Family::Mobilenet | Family::Efficientnet => {
                    (Init::Normal((2.0 / fan_out).sqrt()), Init::Const(0.0))
                }
                // regnet: normal_(0, √(2/fan_out)); biases keep nn.Conv2d's default.
                Family::Regnet => (
                    Init::Normal((2.0 / fan_out).sqrt()),
                    Init::Uniform(1.0 / fan_in.sqrt()),
                ),
                Family::Alexnet | Family::Shufflenet => (
                    Init::Uniform(1.0 / fan_in.sqrt()),
                    Init::Uniform(1.0 / fan_in.sqrt()),
                ),
                // densenet: kaiming_normal_ (fan_in); googlenet: trunc_normal_(std=0.01) cut
                // at ±2 = ±200 std. Neither has conv biases.
                Family::Densenet => (Init::Normal((2.0 / fan_in).sqrt()), Init::Const(0.0)),
                Family::Googlenet => (Init::Normal(0.01), Init::Const(0.0)),
                // inception_v3: trunc_normal_(std=0.1) cut at ±2 = ±20 std; no conv biases.
                Family::Inception => (Init::Normal(0.1), Init::Const(0.0)),
            };
            push("weight", vec![cout, cin, kh, kw], Kind::Float, w);
            if bias {
                push("bias", vec![cout], Kind::Float, b);
            }
        }
        Op::BatchNorm2d { c, .. } => {
            let c = i64::from(c);
            // open_clip zeroes the last BatchNorm's weight of every Bottleneck.
            let zeroed = fam == Family::Clip && path.starts_with("layer") && path.ends_with(".bn3");
            let weight = if zeroed { 0.0 } else { 1.0 };
            push("weight", vec![c], Kind::Float, Init::Const(weight));
            push("bias", vec![c], Kind::Float, Init::Const(0.0));
            push("running_mean", vec![c], Kind::Float, Init::Const(0.0));
            push("running_var", vec![c], Kind::Float, Init::Const(1.0));
            push("num_batches_tracked", vec![], Kind::Int64, Init::Const(0.0));
        }
        Op::Linear { fin, fout } => {
            let (fin, fout) = (i64::from(fin), i64::from(fout));
            let bound = 1.0 / (fin as f64).sqrt();
            // resnet, alexnet: nn.Linear's reset_parameters; vgg, mobilenet: normal(0, 0.01),
            // bias 0; efficientnet: U(±1/√fout), bias 0.
            let (w, b) = match fam {
                Family::Convnext => (Init::Normal(0.02), Init::Const(0.0)),
                Family::Resnet | Family::Alexnet | Family::Squeezenet | Family::Shufflenet => {
                    (Init::Uniform(bound), Init::Uniform(bound))
                }
                Family::Vgg | Family::Mobilenet | Family::Regnet => {
                    (Init::Normal(0.01), Init::Const(0.0))
                }
                Family::Efficientnet => {
                    (Init::Uniform(1.0 / (fout as f64).sqrt()), Init::Const(0.0))
                }
                Family::Vit => vit::linear_init(path, fin, fout),
                // clip: nn.Linear's defaults; dinov2: trunc_normal_(std=0.02), bias 0.
                Family::Clip => (Init::Uniform(bound), Init::Uniform(bound)),
                Family::Dinov2 => (Init::Normal(0.02), Init::Const(0.0)),
                // swin: trunc_normal_(std=0.02), cut at ±2 = ±100 std.
                Family::Swin => (Init::Normal(0.02), Init::Const(0.0)),
                // densenet: nn.Linear's weight, bias 0; googlenet: trunc_normal_(std=0.01),
                // nn.Linear's bias.
                Family::Densenet => (Init::Uniform(bound), Init::Const(0.0)),
                Family::Googlenet => (Init::Normal(0.01), Init::Uniform(bound)),
                // inception_v3: trunc_normal_(std=0.1), but the `stddev` 0.001 that
                // `AuxLogits.fc` carries; nn.Linear's bias.
                Family::Inception if path == "AuxLogits.fc" => {
                    (Init::Normal(0.001), Init::Uniform(bound))
                }
                Family::Inception => (Init::Normal(0.1), Init::Uniform(bound)),
            };
            push("weight", vec![fout, fin], Kind::Float, w);
            push("bias", vec![fout], Kind::Float, b);
        }
        Op::LayerNorm2d { c, .. } | Op::LayerNorm { c, .. } => {
            let c = i64::from(c);
            push("weight", vec![c], Kind::Float, Init::Const(1.0));
            push("bias", vec![c], Kind::Float, Init::Const(0.0));
        }
        Op::ClassToken { .. } | Op::PosEmbedding { .. }
            if matches!(fam, Family::Clip | Family::Dinov2) =>
        {
            clip::op_keys(op, path, fam, out)
        }
        Op::AttentionPool2d { .. }
        | Op::Projection { .. }
        | Op::Dinov2PosEmbedding { .. }
        | Op::RegisterTokens { .. }
        | Op::Unused { .. } => clip::op_keys(op, path, fam, out),
        Op::ClassToken { .. }
        | Op::PosEmbedding { .. }
        | Op::MultiheadAttention { .. }
        | Op::LayerScale { .. } => vit::op_keys(op, path, fam, out),
        Op::WindowAttention { .. } | Op::LinearNoBias { .. } => swin::op_keys(op, path, out),
        Op::Relu
        | Op::Gelu
        | Op::QuickGelu
        | Op::FirstToken
        | Op::PatchMerge
        | Op::Attention { .. }
        | Op::Identity
        | Op::ToTokens
        | Op::Permute { .. }
        | Op::Flatten
        | Op::Relu6
        | Op::Hardswish
        | Op::Hardsigmoid
        | Op::Sigmoid
        | Op::Silu
        | Op::StochasticDepth
        | Op::MaxPool2d { .. }
        | Op::AdaptiveAvgPool2d(_)
        | Op::AvgPool2d { .. }
        | Op::Dropout => {}
    }
}

/// Every `state_dict()` key of the full torchvision `arch`, in torchvision's order.
/// Modules torchvision calls only while training (GoogLeNet's auxiliary classifiers) are
/// listed too, where torchvision registers them ([`catalog::training_only`]): a file may
/// hold their keys, which then load as ignored; no backbone ever needs them.
pub fn state_keys(arch: Arch) -> Vec<StateKey> {
    let mut out = Vec::new();
    // The training-only modules where torchvision registers them; the top-level modules
    // listed together, so that a parameter of the model itself (ViT's `class_token`) comes
    // before the modules' keys as in `state_dict()`.
    let mut extra = catalog::training_only(arch);
    let mut nodes = Vec::new();
    for node in &network(arch).modules {
        nodes.push(node.clone());
        let (here, rest): (Vec<_>, Vec<_>) = extra
            .into_iter()
            .partition(|(after, _)| *after == node.name);
        nodes.extend(here.into_iter().map(|(_, aux)| aux));
        extra = rest;
    }
    state_keys_of(&nodes, "", family(arch), &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The built network.

struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    groups: i64,
}

struct BatchNorm2d {
    eps: f64,
    momentum: f64,
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
}

struct Linear {
    weight: Tensor,
    bias: Tensor,
}

/// A built leaf module: a catalog [`Op`] with its variables.
enum Layer {
    Conv(Conv2d),
    /// A conv with a `kh`×`kw` kernel at stride 1, no bias.
    ConvRect {
        weight: Tensor,
        padding: [i64; 2],
    },
    Bn(BatchNorm2d),
    Relu,
    Relu6,
    Hardswish,
    Hardsigmoid,
    Sigmoid,
    Silu,
    /// Stochastic depth in eval mode.
    Identity,
    Gelu,
    /// LayerNorm over the channels of an NCHW map (`channels_first`) or over the last
    /// dimension.
    Norm {
        weight: Tensor,
        bias: Tensor,
        eps: f64,
        channels_first: bool,
    },
    Permute(bool),
    Flatten,
    MaxPool {
        k: i64,
        s: i64,
        p: i64,
        ceil: bool,
    },
    AdaptiveAvg(i64),
    /// `AvgPool2d(k, s, p)`, floor mode, padding counted.
    AvgPool {
        k: i64,
        s: i64,
        p: i64,
    },
    Dropout,
    Linear(Linear),
    /// Transformer layers (class token, position embedding, attention, ...).
    Token(vit::TokenLayer),
    /// CLIP's and DINOv2's own layers (attention pool, projection, ...).
    Clip(clip::ClipLayer),
    /// Swin's window attention, patch merging and bias-free linear.
    Swin(swin::SwinLayer),
}

/// One named module of the built network (a torchvision module path).
pub struct Stage {
    /// The module path, e.g. `layer2.1.conv1`.
    pub path: String,
    global_pool: bool,
    flatten: bool,
    body: StageBody,
}

enum StageBody {
    Leaf(Layer),
    Seq(Vec<Stage>),
    /// `x ← x + branch(x)` for each branch in turn.
    Residual(Vec<Vec<Stage>>),
    Block {
        main: Vec<Stage>,
        merge: StageMerge,
    },
}

/// A built [`Merge`].
enum StageMerge {
    Add {
        shortcut: Option<Box<Stage>>,
        relu: bool,
        layer_scale: Option<Tensor>,
        shortcut_first: bool,
        activation: Option<Box<Stage>>,
    },
    Scale,
    Concat {
        branches: Vec<Vec<Stage>>,
        split: bool,
        shuffle: bool,
    },
    Dense,
}

fn var_path<'a>(vs: &'a nn::VarStore, module: &str) -> nn::Path<'a> {
    module.split('.').fold(vs.root(), |p, c| p / c)
}

/// The stages of the catalog `nodes`, with placeholder variables in `vs`.
fn build(vs: &nn::VarStore, nodes: &[Node], prefix: &str) -> Vec<Stage> {
    let device = vs.device();
    nodes
        .iter()
        .map(|node| {
            let path = join(prefix, &node.name);
            let body = match &node.body {
                Body::Seq(children) => StageBody::Seq(build(vs, children, &path)),
                Body::Residual(branches) => {
                    StageBody::Residual(branches.iter().map(|b| build(vs, b, &path)).collect())
                }
                Body::Block { main, merge } => StageBody::Block {
                    main: build(vs, main, &path),
                    merge: match merge {
                        Merge::Add {
                            shortcut,
                            relu,
                            layer_scale,
                            shortcut_first,
                            activation,
                        } => StageMerge::Add {
                            shortcut_first: *shortcut_first,
                            activation: activation.as_deref().map(|act| {
                                Box::new(build(vs, std::slice::from_ref(act), &path).remove(0))
                            }),
                            // Added first: the block's own parameter precedes its children's.
                            layer_scale: layer_scale.map(|c| {
                                var_path(vs, &path).add(
                                    "layer_scale",
                                    Tensor::ones([i64::from(c), 1, 1], (Kind::Float, device)),
                                    false,
                                )
                            }),
                            shortcut: shortcut.as_deref().map(|sc| {
                                Box::new(build(vs, std::slice::from_ref(sc), &path).remove(0))
                            }),
                            relu: *relu,
                        },
                        Merge::Scale => StageMerge::Scale,
                        Merge::Dense => StageMerge::Dense,
                        Merge::Concat {
                            branches,
                            split,
                            shuffle,
                        } => StageMerge::Concat {
                            branches: branches.iter().map(|b| build(vs, b, &path)).collect(),
                            split: *split,
                            shuffle: *shuffle,
                        },
                    },
                },
                Body::Leaf(op) => {
                    let p = var_path(vs, &path);
                    let zeros = |name: &str, shape: &[i64]| {
                        p.add(name, Tensor::zeros(shape, (Kind::Float, device)), false)
                    };
                    let ones = |name: &str, shape: &[i64]| {
                        p.add(name, Tensor::ones(shape, (Kind::Float, device)), false)
                    };
                    StageBody::Leaf(match *op {
                        Op::Conv2d {
                            cin,
                            cout,
                            k,
                            s,
                            p: pad,
                            groups,
                            bias,
                        } => {
                            let (cin, cout, k) =
                                (i64::from(cin / groups), i64::from(cout), i64::from(k));
                            Layer::Conv(Conv2d {
                                weight: zeros("weight", &[cout, cin, k, k]),
                                bias: bias.then(|| zeros("bias", &[cout])),
                                stride: s.into(),
                                padding: pad.into(),
                                groups: groups.into(),
                            })
                        }
                        Op::Conv2dRect {
                            cin,
                            cout,
                            kh,
                            kw,
                            ph,
                            pw,
                        } => Layer::ConvRect {
                            weight: zeros(
                                "weight",
                                &[cout.into(), cin.into(), kh.into(), kw.into()],
                            ),
                            padding: [ph.into(), pw.into()],
                        },
                        Op::BatchNorm2d { c, eps, momentum } => {
                            let c = i64::from(c);
                            Layer::Bn(BatchNorm2d {
                                eps,
                                momentum,
                                weight: ones("weight", &[c]),
                                bias: zeros("bias", &[c]),
                                running_mean: zeros("running_mean", &[c]),
                                running_var: ones("running_var", &[c]),
                                num_batches_tracked: p.add(
                                    "num_batches_tracked",
                                    Tensor::zeros(&[] as &[i64], (Kind::Int64, device)),
                                    false,
                                ),
                            })
                        }
                        Op::Linear { fin, fout } => Layer::Linear(Linear {
                            weight: zeros("weight", &[fout.into(), fin.into()]),
                            bias: zeros("bias", &[fout.into()]),
                        }),
                        Op::Relu => Layer::Relu,
                        Op::Relu6 => Layer::Relu6,
                        Op::Hardswish => Layer::Hardswish,
                        Op::Hardsigmoid => Layer::Hardsigmoid,
                        Op::Sigmoid => Layer::Sigmoid,
                        Op::Silu => Layer::Silu,
                        Op::StochasticDepth => Layer::Identity,
                        Op::Gelu => Layer::Gelu,
                        Op::LayerNorm2d { c, eps } | Op::LayerNorm { c, eps } => Layer::Norm {
                            weight: ones("weight", &[c.into()]),
                            bias: zeros("bias", &[c.into()]),
                            eps,
                            channels_first: matches!(op, Op::LayerNorm2d { .. }),
                        },
                        Op::Permute { to_last } => Layer::Permute(to_last),
                        Op::Flatten => Layer::Flatten,
                        Op::MaxPool2d { k, s, p, ceil } => Layer::MaxPool {
                            k: k.into(),
                            s: s.into(),
                            p: p.into(),
                            ceil,
                        },
                        Op::AdaptiveAvgPool2d(n) => Layer::AdaptiveAvg(n.into()),
                        Op::AvgPool2d { k, s, p } => Layer::AvgPool {
                            k: k.into(),
                            s: s.into(),
                            p: p.into(),
                        },
                        Op::Dropout => Layer::Dropout,
                        Op::ClassToken { .. }
                        | Op::PosEmbedding { .. }
                        | Op::MultiheadAttention { .. }
                        | Op::Attention { .. }
                        | Op::QuickGelu
                        | Op::FirstToken
                        | Op::LayerScale { .. } => {
                            Layer::Token(vit::TokenLayer::build(vs, *op, &path))
                        }
                        Op::Identity
                        | Op::AttentionPool2d { .. }
                        | Op::Projection { .. }
                        | Op::ToTokens
                        | Op::Dinov2PosEmbedding { .. }
                        | Op::RegisterTokens { .. }
                        | Op::Unused { .. } => Layer::Clip(clip::ClipLayer::build(vs, *op, &path)),
                        Op::WindowAttention { .. } | Op::PatchMerge | Op::LinearNoBias { .. } => {
                            Layer::Swin(swin::SwinLayer::build(vs, *op, &path))
                        }
                    })
                }
            };
            Stage {
                // A group without a name shares its parent's path; the network is never cut
                // after it.
                path: if node.name.is_empty() {
                    String::new()
                } else {
                    path
                },
                global_pool: node.global_pool,
                flatten: node.flatten,
                body,
            }
        })
        .collect()
}

/// Where a forward pass stops (the output of module `stop`), and the modules on the way
/// whose outputs it keeps (`wanted`, kept in `kept` in the same order; no module computes in
/// place, so a kept tensor is never overwritten).
struct Cut<'a> {
    stop: &'a str,
    wanted: &'a [&'a str],
    kept: std::cell::RefCell<Vec<Option<Tensor>>>,
}

impl<'a> Cut<'a> {
    /// A pass to `stop` that keeps nothing on the way.
    fn at(stop: &'a str) -> Cut<'a> {
        Cut {
            stop,
            wanted: &[],
            kept: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Keeps `y` if module `path` is wanted.
    fn keep(&self, path: &str, y: &Tensor) {
        if let Some(i) = self.wanted.iter().position(|w| *w == path) {
            self.kept.borrow_mut()[i] = Some(y.shallow_clone());
        }
    }
}

/// A frozen torchvision network built up to its cut.
pub struct Backbone {
    arch: Arch,
    cut: String,
    vs: nn::VarStore,
    stages: Vec<Stage>,
    /// The built keys in torchvision order.
    keys: Vec<StateKey>,
    batchnorm: BatchNorm,
    /// Which tokens of a cut of tokens become the features ([`forward`](Self::forward)).
    tokens: Option<TokenReadout>,
    channels_last: bool,
    precision: Precision,
    /// While the precision is `Bf16`: float32 copies of the floating-point variables as
    /// they were before the conversion, so that going back to float32 (for testing)
    /// restores them exactly.
    fp32_copy: Option<HashMap<String, Tensor>>,
    /// GoogLeNet's `transform_input` (see [`Backbone::set_transform_input`]).
    transform_input: bool,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("arch", &self.arch)
            .field("cut", &self.cut)
            .field("device", &self.vs.device())
            .field("variables", &self.keys.len())
            .field("batchnorm", &self.batchnorm)
            .field("channels_last", &self.channels_last)
            .field("precision", &self.precision)
            .field("transform_input", &self.transform_input)
            .finish()
    }
}

impl Backbone {
    /// Builds `arch` up to and including the module `cut` (a catalog path), on `device`.
    /// Weights are placeholders (convs and linears 0, BatchNorm identity) until
    /// [`init_random`](Self::init_random) or [`crate::weights`] fills them. BatchNorm starts
    /// in `Eval` mode.
    pub fn new(arch: Arch, cut: &str, device: Device) -> Result<Self, BackboneError> {
        let unknown = || BackboneError::UnknownCut {
            arch,
            cut: cut.to_owned(),
        };
        let nodes = network(arch).up_to(cut).ok_or_else(unknown)?;
        let vs = nn::VarStore::new(device);
        let stages = build(&vs, &nodes, "");
        let mut keys = Vec::new();
        state_keys_of(&nodes, "", family(arch), &mut keys);
        debug_assert_eq!(keys.len(), vs.len());
        Ok(Backbone {
            arch,
            cut: cut.to_owned(),
            vs,
            stages,
            keys,
            batchnorm: BatchNorm::Eval,
            tokens: None,
            channels_last: false,
            precision: Precision::Fp32,
            fp32_copy: None,
            transform_input: false,
        })
    }

    /// Builds the backbone a plan describes (weights still to be filled, see
    /// [`crate::weights::apply`]), with its BatchNorm mode.
    pub fn from_plan(plan: &psyrun::plan::Backbone, device: Device) -> Result<Self, BackboneError> {
        let Some(net) = plan.catalog() else {
            return Err(BackboneError::NotCatalog);
        };
        let mut b = Backbone::new(net.arch, &net.cut, device)?;
        b.set_batchnorm(plan.batchnorm);
        b.set_tokens(plan.tokens);
        Ok(b)
    }

    /// Which tokens [`forward`](Self::forward) and [`forward_raw`](Self::forward_raw) read
    /// from a cut whose output is tokens (`[N, S, D]`): the class token, the mean of the
    /// patch tokens or the patch tokens as a `[N, D, rows, columns]` map (see
    /// [`crate::script::read_tokens`]). `None` (the default) returns the tokens themselves;
    /// a feature map or a flat output is never read.
    pub fn set_tokens(&mut self, tokens: Option<TokenReadout>) {
        self.tokens = tokens;
    }

    /// The token read-out.
    pub fn tokens(&self) -> Option<TokenReadout> {
        self.tokens
    }

    /// `y`, the output of `cut` for a batch of `size` px images, read out by
    /// [`set_tokens`](Self::set_tokens) when it is tokens.
    pub fn read_out(&self, y: Tensor, cut: &str, size: i64) -> Result<Tensor, BackboneError> {
        let Some(readout) = self.tokens else {
            return Ok(y);
        };
        let size = u32::try_from(size).unwrap_or(0);
        let Some(format) = psyrun::plan::tokens::catalog_format(self.arch, cut, size) else {
            return Ok(y);
        };
        let n = y.size()[0];
        // A Swin's [N, H, W, C] map: its H·W patch tokens, by rows.
        let y = if y.dim() == 4 { y.flatten(1, 2) } else { y };
        crate::script::read_tokens(&y, n, readout, format).map_err(|message| {
            BackboneError::Tokens {
                cut: cut.to_owned(),
                message,
            }
        })
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The cut it was built up to.
    pub fn cut(&self) -> &str {
        &self.cut
    }

    /// The top-level stages that were built (the last one contains the cut).
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The variable store; its `variables()` keys are torchvision `state_dict()` keys.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The built variables (parameters and buffers) by torchvision key.
    pub fn variables(&self) -> HashMap<String, Tensor> {
        self.vs.variables()
    }

    /// The torchvision keys that were built (those the cut needs), in torchvision order.
    pub fn built_keys(&self) -> &[StateKey] {
        &self.keys
    }

    /// Every torchvision key of the full architecture, built or not.
    pub fn full_state_keys(&self) -> Vec<StateKey> {
        state_keys(self.arch)
    }

    /// The device the variables live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Whether the input is re-normalised first (torchvision's `transform_input`).
    pub fn transform_input(&self) -> bool {
        self.transform_input
    }

    /// torchvision's `transform_input` of GoogLeNet: the forward pass first maps an
    /// ImageNet-normalised image, `(v − mean) / std`, to `(v − 0.5) / 0.5`, the input the
    /// original Google weights expect (`x · std / 0.5 + (mean − 0.5) / 0.5` per channel).
    /// torchvision turns it on whenever it loads a published weight set
    /// ([`catalog::Arch::transforms_input`]); `googlenet(weights=None)` has it off, and so
    /// does a backbone until this is called. [`crate::weights::load_torchvision`] calls it.
    pub fn set_transform_input(&mut self, on: bool) {
        self.transform_input = on;
    }

    /// Current BatchNorm behaviour.
    pub fn batchnorm(&self) -> BatchNorm {
        self.batchnorm
    }

    /// Sets BatchNorm behaviour (see the module docs).
    pub fn set_batchnorm(&mut self, mode: BatchNorm) {
        self.batchnorm = mode;
    }

    /// Moves every variable to `device` (in place: the stages see the moved tensors).
    #[allow(clippy::wrong_self_convention)] // the name torch users expect
    pub fn to_device(&mut self, device: Device) {
        self.vs.set_device(device);
        if self.channels_last {
            self.set_channels_last(true);
        }
    }

    /// Whether 4-d weights and inputs use the channels-last (NHWC) memory layout.
    pub fn channels_last(&self) -> bool {
        self.channels_last
    }

    /// Switches the channels-last memory layout on or off (off by default). Results agree
    /// with the default layout to float rounding (≤ 1e-5 relative); [`features`](Self::features)
    /// always returns a contiguous tensor.
    pub fn set_channels_last(&mut self, on: bool) {
        self.channels_last = on;
        tch::no_grad(|| {
            for (_, mut v) in self.vs.variables() {
                if v.dim() == 4 {
                    let data = if on {
                        to_channels_last(&v)
                    } else {
                        v.contiguous()
                    };
                    v.set_data(&data);
                }
            }
        });
    }

    /// Fills every built variable with torchvision's initialisation for the architecture,
    /// from `seed` alone: resnet convs kaiming_normal_(fan_out, relu), BatchNorm weight 1
    /// bias 0 (running mean 0, var 1, counter 0), `fc` nn.Linear's default
    /// (U(±1/√fan_in) for weight and bias); vgg convs kaiming_normal_(fan_out, relu) bias 0,
    /// linears N(0, 0.01) bias 0; alexnet nn.Conv2d/nn.Linear defaults
    /// (kaiming_uniform_(a=√5) = U(±1/√fan_in), bias U(±1/√fan_in)); mobilenet convs
    /// (depthwise and squeeze-and-excitation ones too) kaiming_normal_(fan_out) bias 0,
    /// BatchNorm 1 and 0, linears N(0, 0.01) bias 0; efficientnet the same but linears
    /// U(±1/√fan_out) bias 0. These are torchvision's schemes exactly (only the random
    /// numbers differ, see below).
    ///
    /// The numbers come from a SplitMix64 stream per variable, seeded by SHA-256 of the seed
    /// and the torchvision key (normals by Box–Muller), computed on the CPU in f64 and rounded
    /// to f32: the same seed gives
    /// bit-identical weights on every run, device and libtorch version, and a variable's
    /// values do not depend on where the network is cut. (They are not the numbers
    /// `torch.manual_seed(seed)` would give in Python.)
    pub fn init_random(&mut self, seed: u64) {
        let vars = self.vs.variables();
        tch::no_grad(|| {
            for k in &self.keys {
                let mut var = vars[&k.key].shallow_clone();
                let numel: i64 = k.shape.iter().product();
                let values = random_values(seed, &k.key, numel as usize, k.init);
                let t = Tensor::from_slice(&values)
                    .reshape(k.shape.as_slice())
                    .to_kind(k.kind);
                var.copy_(&t);
            }
        });
    }

    /// The output of module `cut` (a catalog path at or before the built cut) for a batch `x`
    /// of shape [N, 3, H, W], computed under `tch::no_grad`. Nothing past `cut` runs. The
    /// result is [N, C, H', W'] or [N, F] and contiguous.
    ///
    /// Panics if `cut` is unknown or lies past the built cut; see
    /// [`try_features`](Self::try_features).
    pub fn features(&self, x: &Tensor, cut: &str) -> Tensor {
        self.try_features(x, cut).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`features`](Self::features) returning an error for a bad cut.
    pub fn try_features(&self, x: &Tensor, cut: &str) -> Result<Tensor, BackboneError> {
        tch::no_grad(|| self.features_with_grad(x, cut))
    }

    /// [`try_features`](Self::try_features) without `no_grad`: autograd records the graph
    /// (gradients can flow to `x`; the variables stay frozen).
    pub fn features_with_grad(&self, x: &Tensor, cut: &str) -> Result<Tensor, BackboneError> {
        Ok(self.layer_output(x, cut)?.contiguous())
    }

    /// The output of the built cut as the layers leave it (channels-last strides when
    /// channels-last is on), without autograd: no copy into torchvision's order. Flatten it
    /// with [`flatten_features`] in [`feature_order`](Self::feature_order).
    pub fn forward_raw(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let y = self.layer_output(x, &self.cut)?;
            self.read_out(y, &self.cut, x.size()[x.dim() - 1])
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The order in which [`forward_raw`](Self::forward_raw)'s maps flatten without a copy.
    pub fn feature_order(&self) -> FeatureOrder {
        // A token read-out's map is laid out [N, D, rows, columns] in memory.
        if self.channels_last && self.tokens.is_none() {
            FeatureOrder::Hwc
        } else {
            FeatureOrder::Chw
        }
    }

    fn layer_output(&self, x: &Tensor, cut: &str) -> Result<Tensor, BackboneError> {
        self.check_cut(cut)?;
        let (y, stopped) = self.run_seq(&self.stages, self.input(x), &Cut::at(cut));
        debug_assert!(stopped, "cut {cut} not reached");
        Ok(self.output(y))
    }

    /// The outputs of several cuts of one image batch from one forward pass, in the order
    /// of `cuts`, each equal to [`try_features`](Self::try_features)'s for that cut (the same
    /// operations on the same values). The pass runs to the built cut, keeping the output
    /// of every module named in `cuts` on the way. Build the backbone up to
    /// [`catalog::covering_cut`] of `cuts`; a cut the pass does not compute (past the built
    /// one, or a shortcut a build into its block's main branch leaves out) is
    /// [`BackboneError::PastCut`].
    pub fn try_features_many(
        &self,
        x: &Tensor,
        cuts: &[&str],
    ) -> Result<Vec<Tensor>, BackboneError> {
        for c in cuts {
            self.check_cut(c)?;
        }
        tch::no_grad(|| {
            let pass = Cut {
                stop: &self.cut,
                wanted: cuts,
                kept: std::cell::RefCell::new(cuts.iter().map(|_| None).collect()),
            };
            let _ = self.run_seq(&self.stages, self.input(x), &pass);
            pass.kept
                .into_inner()
                .into_iter()
                .zip(cuts)
                .map(|(kept, c)| match kept {
                    Some(y) => Ok(self.output(y).contiguous()),
                    None => Err(BackboneError::PastCut {
                        arch: self.arch,
                        cut: (*c).to_owned(),
                        built: self.cut.clone(),
                    }),
                })
                .collect()
        })
    }

    /// The input as the first module takes it: GoogLeNet's and Inception v3's
    /// `transform_input`, channels-last strides, bfloat16.
    fn input(&self, x: &Tensor) -> Tensor {
        let x = if self.transform_input {
            transform_input(x)
        } else {
            x.shallow_clone()
        };
        let x = if self.channels_last && x.dim() == 4 {
            to_channels_last(&x)
        } else {
            x
        };
        if self.precision == Precision::Bf16 {
            x.to_kind(Kind::BFloat16)
        } else {
            x
        }
    }

    /// A module's output as the caller gets it: float32.
    fn output(&self, y: Tensor) -> Tensor {
        if self.precision == Precision::Bf16 {
            y.to_kind(Kind::Float)
        } else {
            y
        }
    }

    /// The output of the built cut, read out by [`set_tokens`](Self::set_tokens) when it
    /// is tokens.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.features(x, &self.cut);
        tch::no_grad(|| self.read_out(y, &self.cut, x.size()[x.dim() - 1]))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The arithmetic of the forward pass. `Bf16` converts every floating-point variable to
    /// bfloat16 (call it after the weights are loaded and the backbone is on its device);
    /// inputs are converted on the way in and features back to float32 on the way out.
    /// `Tf32` lets cuDNN convolutions use TensorFloat-32 (CUDA only); `Fp32` forbids it.
    ///
    /// Going to `Bf16` keeps a float32 copy of every floating-point variable (as many bytes
    /// as the float32 weights up to the cut, on their device), and going back from `Bf16`
    /// restores those exact float32 values: the weights are frozen, so they are what they
    /// were before. BatchNorm running statistics that changed meanwhile (`batchnorm train`
    /// drifts them while the probe trains) keep their drifted values, converted to float32.
    /// The interpreter uses this to train the probe in bfloat16 and test in float32.
    pub fn set_precision(&mut self, precision: Precision) {
        match (self.precision, precision) {
            (Precision::Bf16, Precision::Bf16) => {}
            (_, Precision::Bf16) => {
                let copy = tch::no_grad(|| {
                    self.vs
                        .variables()
                        .into_iter()
                        .filter(|(_, v)| v.kind() == Kind::Float)
                        .map(|(k, v)| (k, v.copy()))
                        .collect()
                });
                self.fp32_copy = Some(copy);
                self.vs.bfloat16();
            }
            (Precision::Bf16, _) => {
                self.vs.float();
                if let Some(copy) = self.fp32_copy.take() {
                    self.restore_fp32(&copy);
                }
            }
            _ => {}
        }
        self.precision = precision;
    }

    /// Writes the float32 values of `copy` back into the (float32 again) variables, except
    /// running statistics that moved away from their bfloat16 rounding while in bfloat16.
    fn restore_fp32(&self, copy: &HashMap<String, Tensor>) {
        tch::no_grad(|| {
            for (k, mut v) in self.vs.variables() {
                let Some(saved) = copy.get(&k) else { continue };
                let statistic = k.ends_with("running_mean") || k.ends_with("running_var");
                if statistic && !v.equal(&saved.to_kind(Kind::BFloat16).to_kind(Kind::Float)) {
                    continue;
                }
                v.copy_(saved);
            }
        });
    }

    /// The arithmetic of the forward pass.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    fn check_cut(&self, cut: &str) -> Result<(), BackboneError> {
        let cuts = catalog::cut_points(self.arch);
        let pos = |c: &str| cuts.iter().position(|p| p.path == c);
        let Some(at) = pos(cut) else {
            return Err(BackboneError::UnknownCut {
                arch: self.arch,
                cut: cut.to_owned(),
            });
        };
        let built = pos(&self.cut).expect("built cut is in the catalog");
        // Built: the cut itself, modules inside it, and modules before it in forward order
        // that are not its ancestors (those are containers only partly built).
        let inside = cut.starts_with(&format!("{}.", self.cut));
        let ancestor = self.cut.starts_with(&format!("{cut}."));
        if !(cut == self.cut || inside || (at < built && !ancestor)) {
            return Err(BackboneError::PastCut {
                arch: self.arch,
                cut: cut.to_owned(),
                built: self.cut.clone(),
            });
        }
        Ok(())
    }

    fn run_seq(&self, stages: &[Stage], mut x: Tensor, cut: &Cut<'_>) -> (Tensor, bool) {
        for s in stages {
            let (y, stop) = self.run_stage(s, x, cut);
            if stop {
                return (y, true);
            }
            x = y;
        }
        (x, false)
    }

    fn run_stage(&self, s: &Stage, x: Tensor, cut: &Cut<'_>) -> (Tensor, bool) {
        let x = if s.global_pool {
            x.adaptive_avg_pool2d([1, 1])
        } else {
            x
        };
        let x = if s.flatten { x.flatten(1, -1) } else { x };
        let y = match &s.body {
            StageBody::Leaf(layer) => self.apply(layer, &x),
            StageBody::Seq(children) => {
                let (y, stop) = self.run_seq(children, x, cut);
                if stop {
                    return (y, true);
                }
                y
            }
            StageBody::Residual(branches) => {
                let mut x = x;
                for b in branches {
                    let (y, stop) = self.run_seq(b, x.shallow_clone(), cut);
                    if stop {
                        return (y, true);
                    }
                    // Not in place: the branch may return a view of x.
                    x = &x + y;
                }
                x
            }
            StageBody::Block {
                main,
                merge: StageMerge::Dense,
            } => {
                // DenseNet: each layer on the concatenation so far, its output appended.
                let mut features = vec![x];
                for layer in main {
                    let input = if features.len() == 1 {
                        features[0].shallow_clone()
                    } else {
                        Tensor::cat(&features, 1)
                    };
                    let (y, stop) = self.run_stage(layer, input, cut);
                    if stop {
                        return (y, true);
                    }
                    features.push(y);
                }
                Tensor::cat(&features, 1)
            }
            StageBody::Block {
                main,
                merge:
                    StageMerge::Add {
                        shortcut: Some(sc),
                        shortcut_first: true,
                        activation,
                        ..
                    },
            } => {
                // RegNet: the shortcut first, then the main branch, the sum, the activation.
                let (d, stop) = self.run_stage(sc, x.shallow_clone(), cut);
                if stop {
                    return (d, true);
                }
                let (y, stop) = self.run_seq(main, x, cut);
                if stop {
                    return (y, true);
                }
                match activation {
                    Some(act) => {
                        let (a, stop) = self.run_stage(act, d + y, cut);
                        if stop {
                            return (a, true);
                        }
                        a
                    }
                    None => d + y,
                }
            }
            StageBody::Block { main, merge } => {
                let (y, stop) = match merge {
                    // ConvNeXt: layer scale × block(x), then the rest of the branch.
                    StageMerge::Add {
                        layer_scale: Some(gamma),
                        ..
                    } => {
                        let (first, rest) = main.split_first().expect("a branch");
                        let (y, stop) = self.run_stage(first, x.shallow_clone(), cut);
                        if stop {
                            return (y, true);
                        }
                        self.run_seq(rest, gamma * y, cut)
                    }
                    _ => self.run_seq(main, x.shallow_clone(), cut),
                };
                if stop {
                    return (y, true);
                }
                match merge {
                    StageMerge::Add {
                        shortcut,
                        relu,
                        activation,
                        ..
                    } => {
                        let identity = match shortcut {
                            Some(sc) => {
                                let (d, stop) = self.run_stage(sc, x, cut);
                                if stop {
                                    return (d, true);
                                }
                                d
                            }
                            None => x,
                        };
                        let sum = y + identity;
                        let sum = if *relu { sum.relu() } else { sum };
                        match activation {
                            Some(act) => {
                                let (a, stop) = self.run_stage(act, sum, cut);
                                if stop {
                                    return (a, true);
                                }
                                a
                            }
                            None => sum,
                        }
                    }
                    StageMerge::Scale => y * x,
                    StageMerge::Dense => unreachable!("handled above"),
                    StageMerge::Concat {
                        branches,
                        split,
                        shuffle,
                    } => {
                        let mut outs = Vec::with_capacity(branches.len() + 1);
                        let input = if *split {
                            let mut halves = y.chunk(2, 1);
                            let second = halves.pop().expect("two halves");
                            outs.push(halves.pop().expect("two halves"));
                            second
                        } else {
                            y
                        };
                        for b in branches {
                            let (o, stop) = self.run_seq(b, input.shallow_clone(), cut);
                            if stop {
                                return (o, true);
                            }
                            outs.push(o);
                        }
                        let out = Tensor::cat(&outs, 1);
                        if *shuffle {
                            channel_shuffle(&out, 2)
                        } else {
                            out
                        }
                    }
                }
            }
        };
        cut.keep(&s.path, &y);
        (y, s.path == cut.stop)
    }

    fn apply(&self, layer: &Layer, x: &Tensor) -> Tensor {
        match layer {
            // `conv2d` with TensorFloat-32 chosen by the precision instead of by libtorch's
            // global flag (on by default for cuDNN); identical on the CPU.
            Layer::Conv(c) => x.internal_convolution(
                &c.weight,
                c.bias.as_ref(),
                [c.stride, c.stride],
                [c.padding, c.padding],
                [1, 1],
                false,
                [0, 0],
                c.groups,
                false,
                false,
                true,
                self.precision == Precision::Tf32,
            ),
            Layer::ConvRect { weight, padding } => x.internal_convolution(
                weight,
                None::<&Tensor>,
                [1, 1],
                *padding,
                [1, 1],
                false,
                [0, 0],
                1,
                false,
                false,
                true,
                self.precision == Precision::Tf32,
            ),
            Layer::Bn(bn) => {
                let train = self.batchnorm == BatchNorm::Train;
                let y = x.batch_norm(
                    Some(&bn.weight),
                    Some(&bn.bias),
                    Some(&bn.running_mean),
                    Some(&bn.running_var),
                    train,
                    bn.momentum,
                    bn.eps,
                    true,
                );
                if train {
                    let _ = bn.num_batches_tracked.shallow_clone().g_add_scalar_(1i64);
                }
                y
            }
            Layer::Relu => x.relu(),
            Layer::Relu6 => x.relu6(),
            Layer::Hardswish => x.hardswish(),
            Layer::Hardsigmoid => x.hardsigmoid(),
            Layer::Sigmoid => x.sigmoid(),
            Layer::Silu => x.silu(),
            Layer::Identity => x.shallow_clone(),
            Layer::Gelu => x.gelu("none"),
            Layer::Norm {
                weight,
                bias,
                eps,
                channels_first,
            } => {
                let c = weight.size()[0];
                let norm = |x: &Tensor| x.layer_norm([c], Some(weight), Some(bias), *eps, true);
                if *channels_first {
                    norm(&x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
                } else {
                    norm(x)
                }
            }
            Layer::Permute(true) => x.permute([0, 2, 3, 1]),
            Layer::Permute(false) => x.permute([0, 3, 1, 2]),
            Layer::Flatten => x.flatten(1, -1),
            Layer::MaxPool { k, s, p, ceil } => {
                x.max_pool2d([*k, *k], [*s, *s], [*p, *p], [1, 1], *ceil)
            }
            Layer::AdaptiveAvg(n) => x.adaptive_avg_pool2d([*n, *n]),
            Layer::AvgPool { k, s, p } => {
                x.avg_pool2d([*k, *k], [*s, *s], [*p, *p], false, true, None::<i64>)
            }
            Layer::Dropout => x.shallow_clone(),
            Layer::Linear(l) => x.linear(&l.weight, Some(&l.bias)),
            Layer::Token(t) => t.forward(x),
            Layer::Clip(c) => c.forward(x),
            Layer::Swin(s) => s.forward(x),
        }
    }
}

/// GoogLeNet's `_transform_input`: ImageNet normalisation undone and `(v − 0.5) / 0.5`
/// applied, per channel, in float32 as torchvision computes it.
fn transform_input(x: &Tensor) -> Tensor {
    const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
    const STD: [f64; 3] = [0.229, 0.224, 0.225];
    let channels: Vec<Tensor> = (0..3)
        .map(|c| x.narrow(1, c, 1) * (STD[c as usize] / 0.5) + (MEAN[c as usize] - 0.5) / 0.5)
        .collect();
    Tensor::cat(&channels, 1)
}

/// torchvision's `channel_shuffle(x, groups)`: channels regrouped as
/// `view(N, groups, C / groups, H, W).transpose(1, 2)`.
fn channel_shuffle(x: &Tensor, groups: i64) -> Tensor {
    let [n, c, h, w] = x.size()[..] else {
        panic!("channel shuffle of a {:?} tensor", x.size())
    };
    x.view([n, groups, c / groups, h, w])
        .transpose(1, 2)
        .contiguous()
        .view([n, c, h, w])
}

/// The same values in the channels-last (NHWC) memory layout.
pub fn to_channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast even in debug builds, and fully
/// specified here, so the weights never depend on a library's generator.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on [0, 1), 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `n` values of `init` for variable `key` under `seed` (see [`Backbone::init_random`]).
fn random_values(seed: u64, key: &str, n: usize, init: Init) -> Vec<f32> {
    match init {
        Init::Const(c) => return vec![c as f32; n],
        Init::RelativePositionIndex(w) => return swin::relative_position_index(w),
        _ => {}
    }
    let mut h = Sha256::new();
    h.update(b"psyrun backbone init v1\0");
    h.update(seed.to_le_bytes());
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut rng = SplitMix64(u64::from_le_bytes(digest[..8].try_into().unwrap()));
    let mut out = Vec::with_capacity(n);
    match init {
        Init::Const(_) | Init::RelativePositionIndex(_) => unreachable!(),
        Init::Uniform(bound) => {
            for _ in 0..n {
                out.push((bound * (2.0 * rng.unit() - 1.0)) as f32);
            }
        }
        Init::Normal(std) => {
            // Box–Muller, both values of each pair used.
            while out.len() < n {
                let u1 = 1.0 - rng.unit(); // (0, 1]
                let u2 = rng.unit();
                let r = (-2.0 * u1.ln()).sqrt() * std;
                let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
                out.push((r * c) as f32);
                if out.len() < n {
                    out.push((r * s) as f32);
                }
            }
        }
    }
    out
}

/// Parameter-free pooling of a cut's output, flattened to [N, features]: adaptive average or
/// max pooling to h×w, or (`Off`) just the flattening. A flat [N, F] input is returned as it
/// is with `Off`; pooling it panics (the plan rejects that).
pub fn pool(x: &Tensor, p: Pooling) -> Tensor {
    flatten_features(x, p, FeatureOrder::Chw)
}

/// How a `[N, C, H, W]` feature map is flattened into `[N, F]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureOrder {
    /// torchvision's `flatten(1)`: by channel, then row, then column.
    Chw,
    /// By row, then column, then channel: a channels-last map flattens so without a copy.
    Hwc,
}

/// [`pool`], flattening 4-D maps in `order` (2-D features are left as they are).
pub fn flatten_features(x: &Tensor, p: Pooling, order: FeatureOrder) -> Tensor {
    let y = pooled(x, p);
    let size = y.size();
    match (order, size.len()) {
        (FeatureOrder::Hwc, 4) => y
            .permute([0, 2, 3, 1])
            .reshape([size[0], size[1..].iter().product::<i64>()]),
        _ => y.flatten(1, -1),
    }
}

/// `x` adaptively pooled, or `x` itself.
fn pooled(x: &Tensor, p: Pooling) -> Tensor {
    match p {
        Pooling::Off => x.shallow_clone(),
        Pooling::Avg { h, w } | Pooling::Max { h, w } => {
            assert_eq!(
                x.dim(),
                4,
                "pooling needs a [N, C, H, W] feature map, got {:?}",
                x.size()
            );
            let size = [i64::from(h), i64::from(w)];
            match p {
                Pooling::Avg { .. } => x.adaptive_avg_pool2d(size),
                _ => x.adaptive_max_pool2d(size).0,
            }
        }
    }
}
