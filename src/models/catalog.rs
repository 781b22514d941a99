//! Pure-data catalog of torchvision architectures (no libtorch needed).
//!
//! For every supported architecture the catalog knows each cut point — a
//! module path exactly as torchvision's `named_modules()` spells it, such as
//! `layer2`, `layer4.0.conv2`, `features.16` or `classifier.4` — in forward
//! order, and computes the shape of that module's output for a square
//! `3×N×N` input with PyTorch's own arithmetic.
//!
//! Cutting "after" a module means taking that module's output. Inside a
//! block (a ResNet block, an inverted residual, a squeeze-and-excitation
//! gate), cutting after e.g. `layer4.0.conv2` runs the block's main
//! branch up to and including `conv2`. The `relu` inside BasicBlock and
//! Bottleneck is not a cut point: torchvision applies that one module several
//! times per block, so a cut after it would be ambiguous. Shapes are given
//! without the batch dimension.
//!
//! Each architecture is described once, by [`network`]: a tree of [`Node`]s
//! whose leaves are [`Op`]s with all their parameters, plus the [`Family`]
//! that decides torchvision's weight initialisation. Cut points, classes and
//! shapes are computed from that tree, and `psyrun-torch` builds its backbones
//! from the same tree. The golden files in `tests/fixtures/catalog/` (written
//! by `scripts/catalog_shapes.py` from torchvision itself) check every path,
//! class and shape.

use std::fmt;
use std::sync::OnceLock;

mod clip;
mod swin;
mod vit;

/// A torchvision architecture known to the catalog.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// `resnet18`: BasicBlock, layers [2, 2, 2, 2].
    Resnet18,
    /// `resnet34`: BasicBlock, layers [3, 4, 6, 3].
    Resnet34,
    /// `resnet50`: Bottleneck, layers [3, 4, 6, 3].
    Resnet50,
    /// `resnet101`: Bottleneck, layers [3, 4, 23, 3].
    Resnet101,
    /// `resnet152`: Bottleneck, layers [3, 8, 36, 3].
    Resnet152,
    /// `resnext50_32x4d`: Bottleneck with 32 groups of width 4, layers [3, 4, 6, 3].
    Resnext50x32x4d,
    /// `resnext101_32x8d`: Bottleneck with 32 groups of width 8, layers [3, 4, 23, 3].
    Resnext101x32x8d,
    /// `resnext101_64x4d`: Bottleneck with 64 groups of width 4, layers [3, 4, 23, 3].
    Resnext101x64x4d,
    /// `wide_resnet50_2`: Bottleneck with twice the inner width, layers [3, 4, 6, 3].
    WideResnet50x2,
    /// `wide_resnet101_2`: Bottleneck with twice the inner width, layers [3, 4, 23, 3].
    WideResnet101x2,
    /// `vgg11`: configuration A, no batch norm.
    Vgg11,
    /// `vgg13`: configuration B, no batch norm.
    Vgg13,
    /// `vgg16`: configuration D, no batch norm.
    Vgg16,
    /// `vgg19`: configuration E, no batch norm.
    Vgg19,
    /// `vgg11_bn`: configuration A with batch norm.
    Vgg11Bn,
    /// `vgg13_bn`: configuration B with batch norm.
    Vgg13Bn,
    /// `vgg16_bn`: configuration D with batch norm.
    Vgg16Bn,
    /// `vgg19_bn`: configuration E with batch norm.
    Vgg19Bn,
    /// `alexnet`.
    Alexnet,
    /// `mobilenet_v2`: inverted residuals with ReLU6, width 1.0.
    MobilenetV2,
    /// `mobilenet_v3_small`: inverted residuals with squeeze-and-excitation and Hardswish.
    MobilenetV3Small,
    /// `mobilenet_v3_large`: inverted residuals with squeeze-and-excitation and Hardswish.
    MobilenetV3Large,
    /// `efficientnet_b0`: MBConv blocks with SiLU, squeeze-and-excitation, stochastic depth.
    EfficientnetB0,
    /// `efficientnet_b1`: B0 with 1.1 times the depth.
    EfficientnetB1,
    /// `efficientnet_b2`: B0 with 1.1 times the width and 1.2 times the depth.
    EfficientnetB2,
    /// `efficientnet_b3`: B0 with 1.2 times the width and 1.4 times the depth.
    EfficientnetB3,
    /// `convnext_tiny`: stages of 3, 3, 9, 3 blocks, 96 channels first.
    ConvnextTiny,
    /// `convnext_small`: stages of 3, 3, 27, 3 blocks, 96 channels first.
    ConvnextSmall,
    /// `convnext_base`: stages of 3, 3, 27, 3 blocks, 128 channels first.
    ConvnextBase,
    /// `squeezenet1_0`: Fire modules (a squeeze conv, then 1×1 and 3×3 expand convs
    /// concatenated), a 7×7 stem.
    Squeezenet1x0,
    /// `squeezenet1_1`: SqueezeNet with a 3×3 stem and earlier pooling.
    Squeezenet1x1,
    /// `shufflenet_v2_x0_5`: stages of 48, 96, 192 channels.
    ShufflenetV2X0x5,
    /// `shufflenet_v2_x1_0`: stages of 116, 232, 464 channels.
    ShufflenetV2X1x0,
    /// `shufflenet_v2_x1_5`: stages of 176, 352, 704 channels.
    ShufflenetV2X1x5,
    /// `shufflenet_v2_x2_0`: stages of 244, 488, 976 channels, 2048 in `conv5`.
    ShufflenetV2X2x0,
    /// `regnet_y_400mf`: stages of 1, 3, 6, 6 blocks (48, 104, 208, 440 channels), group
    /// width 8, squeeze-and-excitation.
    RegnetYx400mf,
    /// `regnet_x_400mf`: stages of 1, 2, 7, 12 blocks (32, 64, 160, 400 channels), group
    /// width 16.
    RegnetXx400mf,
    /// `vit_b_16`: ViT-Base, 16×16 patches, 12 encoder blocks of width 768 (12 heads, MLP
    /// 3072); 224×224 images only.
    VitBx16,
    /// `vit_b_32`: ViT-Base with 32×32 patches; 224×224 images only.
    VitBx32,
    /// `vit_l_16`: ViT-Large, 16×16 patches, 24 encoder blocks of width 1024 (16 heads, MLP
    /// 4096); 224×224 images only.
    VitLx16,
    /// `clip_rn50`: CLIP's RN50 image encoder (OpenAI): a ResNet-50 with a three-conv stem,
    /// anti-aliasing average pools and an attention pool to a 1024-d embedding.
    ClipRn50,
    /// `clip_vit_b_32`: CLIP's ViT-B/32 image encoder (OpenAI), 512-d embedding; 224×224
    /// images only.
    ClipVitBx32,
    /// `clip_vit_b_16`: CLIP's ViT-B/16 image encoder (OpenAI), 512-d embedding; 224×224
    /// images only.
    ClipVitBx16,
    /// `dinov2_vits14`: DINOv2 ViT-S/14 (384 wide, 12 blocks, 6 heads).
    Dinov2Vits14,
    /// `dinov2_vitb14`: DINOv2 ViT-B/14 (768 wide, 12 blocks, 12 heads).
    Dinov2Vitb14,
    /// `dinov2_vits14_reg`: DINOv2 ViT-S/14 with 4 register tokens.
    Dinov2Vits14Reg,
    /// `dinov2_vitb14_reg`: DINOv2 ViT-B/14 with 4 register tokens.
    Dinov2Vitb14Reg,
    /// `swin_t`: Swin-T, stages of 2, 2, 6, 2 blocks, 96 channels first (3, 6, 12, 24
    /// heads), 7×7 windows.
    SwinT,
    /// `swin_s`: Swin-S, stages of 2, 2, 18, 2 blocks, 96 channels first.
    SwinS,
}

impl Arch {
    /// Every architecture, in declaration order.
    pub const ALL: &'static [Arch] = &[
        Arch::Resnet18,
        Arch::Resnet34,
        Arch::Resnet50,
        Arch::Resnet101,
        Arch::Resnet152,
        Arch::Resnext50x32x4d,
        Arch::Resnext101x32x8d,
        Arch::Resnext101x64x4d,
        Arch::WideResnet50x2,
        Arch::WideResnet101x2,
        Arch::Vgg11,
        Arch::Vgg13,
        Arch::Vgg16,
        Arch::Vgg19,
        Arch::Vgg11Bn,
        Arch::Vgg13Bn,
        Arch::Vgg16Bn,
        Arch::Vgg19Bn,
        Arch::Alexnet,
        Arch::MobilenetV2,
        Arch::MobilenetV3Small,
        Arch::MobilenetV3Large,
        Arch::EfficientnetB0,
        Arch::EfficientnetB1,
        Arch::EfficientnetB2,
        Arch::EfficientnetB3,
        Arch::ConvnextTiny,
        Arch::ConvnextSmall,
        Arch::ConvnextBase,
        Arch::Squeezenet1x0,
        Arch::Squeezenet1x1,
        Arch::ShufflenetV2X0x5,
        Arch::ShufflenetV2X1x0,
        Arch::ShufflenetV2X1x5,
        Arch::ShufflenetV2X2x0,
        Arch::RegnetYx400mf,
        Arch::RegnetXx400mf,
        Arch::VitBx16,
        Arch::VitBx32,
        Arch::VitLx16,
        Arch::ClipRn50,
        Arch::ClipVitBx32,
        Arch::ClipVitBx16,
        Arch::Dinov2Vits14,
        Arch::Dinov2Vitb14,
        Arch::Dinov2Vits14Reg,
        Arch::Dinov2Vitb14Reg,
        Arch::SwinT,
        Arch::SwinS,
    ];

    /// The torchvision constructor name, e.g. `"resnet50"`, `"vgg16_bn"`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Resnet34 => "resnet34",
            Arch::Resnet50 => "resnet50",
            Arch::Resnet101 => "resnet101",
            Arch::Resnet152 => "resnet152",
            Arch::Resnext50x32x4d => "resnext50_32x4d",
            Arch::Resnext101x32x8d => "resnext101_32x8d",
            Arch::Resnext101x64x4d => "resnext101_64x4d",
            Arch::WideResnet50x2 => "wide_resnet50_2",
            Arch::WideResnet101x2 => "wide_resnet101_2",
            Arch::Vgg11 => "vgg11",
            Arch::Vgg13 => "vgg13",
            Arch::Vgg16 => "vgg16",
            Arch::Vgg19 => "vgg19",
            Arch::Vgg11Bn => "vgg11_bn",
            Arch::Vgg13Bn => "vgg13_bn",
            Arch::Vgg16Bn => "vgg16_bn",
            Arch::Vgg19Bn => "vgg19_bn",
            Arch::Alexnet => "alexnet",
            Arch::MobilenetV2 => "mobilenet_v2",
            Arch::MobilenetV3Small => "mobilenet_v3_small",
            Arch::MobilenetV3Large => "mobilenet_v3_large",
            Arch::EfficientnetB0 => "efficientnet_b0",
            Arch::EfficientnetB1 => "efficientnet_b1",
            Arch::EfficientnetB2 => "efficientnet_b2",
            Arch::EfficientnetB3 => "efficientnet_b3",
            Arch::ConvnextTiny => "convnext_tiny",
            Arch::ConvnextSmall => "convnext_small",
            Arch::ConvnextBase => "convnext_base",
            Arch::Squeezenet1x0 => "squeezenet1_0",
            Arch::Squeezenet1x1 => "squeezenet1_1",
            Arch::ShufflenetV2X0x5 => "shufflenet_v2_x0_5",
            Arch::ShufflenetV2X1x0 => "shufflenet_v2_x1_0",
            Arch::ShufflenetV2X1x5 => "shufflenet_v2_x1_5",
            Arch::ShufflenetV2X2x0 => "shufflenet_v2_x2_0",
            Arch::RegnetYx400mf => "regnet_y_400mf",
            Arch::RegnetXx400mf => "regnet_x_400mf",
            Arch::VitBx16 => "vit_b_16",
            Arch::VitBx32 => "vit_b_32",
            Arch::VitLx16 => "vit_l_16",
            Arch::ClipRn50 => "clip_rn50",
            Arch::ClipVitBx32 => "clip_vit_b_32",
            Arch::ClipVitBx16 => "clip_vit_b_16",
            Arch::Dinov2Vits14 => "dinov2_vits14",
            Arch::Dinov2Vitb14 => "dinov2_vitb14",
            Arch::Dinov2Vits14Reg => "dinov2_vits14_reg",
            Arch::Dinov2Vitb14Reg => "dinov2_vitb14_reg",
            Arch::SwinT => "swin_t",
            Arch::SwinS => "swin_s",
        }
    }

    /// Looks an architecture up by its exact (lowercase) torchvision name.
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Whether the network contains BatchNorm layers (all but the plain VGGs and AlexNet).
    pub fn has_batchnorm(self) -> bool {
        fn any_bn(nodes: &[Node]) -> bool {
            nodes.iter().any(|n| match &n.body {
                Body::Leaf(op) => matches!(op, Op::BatchNorm2d { .. }),
                Body::Seq(children) => any_bn(children),
                Body::Residual(branches) => branches.iter().any(|b| any_bn(b)),
                Body::Block { main, merge } => {
                    any_bn(main)
                        || matches!(merge, Merge::Add { shortcut: Some(d), .. }
                            if any_bn(std::slice::from_ref(d)))
                        || matches!(merge, Merge::Concat { branches, .. }
                            if branches.iter().any(|b| any_bn(b)))
                }
            })
        }
        any_bn(&network(self).modules)
    }

    /// The input size the network was trained at (224 for all of them).
    pub fn default_input_size(self) -> u32 {
        224
    }

    /// The one input size the network accepts, if it accepts only one: 224 for the Vision
    /// Transformers (torchvision asserts it; their position embedding has one entry per
    /// 224×224 patch), `None` for the others.
    pub fn fixed_input_size(self) -> Option<u32> {
        match network(self).family {
            Family::Vit => Some(vit::VIT_IMAGE_SIZE),
            _ => clip::fixed_input_size(self),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A module after which the network can be cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutPoint {
    /// Module path as in torchvision's `named_modules()`, e.g. `layer4.0.conv2`.
    pub path: String,
    /// The torchvision class of the module: `"Conv2d"`, `"Bottleneck"`,
    /// `"Sequential"`, `"ReLU"`, ...
    pub module: &'static str,
    /// Nesting depth: 0 for top-level modules, 1 for `layer3.1`, and so on.
    pub depth: usize,
}

/// Why an output shape could not be computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// The path names no cut point of this architecture.
    UnknownLayer,
    /// The input is too small: some module on the way to the cut would
    /// produce an empty output (PyTorch raises there).
    TooSmall {
        /// Path of the first module whose output would be empty.
        module: String,
        /// The smallest input size for which this cut works.
        min_input: u32,
    },
    /// The network accepts images of one size only ([`Arch::fixed_input_size`]), not this
    /// one.
    WrongSize {
        /// The size it accepts.
        size: u32,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::UnknownLayer => f.write_str("unknown layer"),
            ShapeError::TooSmall { module, min_input } => write!(
                f,
                "input too small: output of `{module}` would be empty (needs an input of at least {min_input}x{min_input})"
            ),
            ShapeError::WrongSize { size } => {
                write!(f, "the network takes {size}x{size} images only")
            }
        }
    }
}

impl std::error::Error for ShapeError {}

/// Lists every cut point of `arch`, at all depths, in forward order (a
/// container comes before its children).
pub fn cut_points(arch: Arch) -> Vec<CutPoint> {
    evaluate(arch, arch.default_input_size(), None)
        .into_iter()
        .map(|(cut, _)| cut)
        .collect()
}

/// Names of the top-level modules of `arch`, in forward order.
pub fn top_level(arch: Arch) -> Vec<&'static str> {
    network(arch)
        .modules
        .iter()
        .filter(|n| n.cut_point)
        .map(|n| n.name.as_str())
        .collect()
}

/// Finds the cut point with exactly this path.
pub fn find(arch: Arch, path: &str) -> Option<CutPoint> {
    cut_points(arch).into_iter().find(|c| c.path == path)
}

/// Output shape (without batch dimension) of the module at `path` for a
/// `3×input×input` image, e.g. resnet50 `layer2` at 224 gives `[512, 28, 28]`.
pub fn output_shape(arch: Arch, path: &str, input: u32) -> Result<Vec<u32>, ShapeError> {
    let result = shape_at(arch, path, input)?;
    if let Some(size) = arch.fixed_input_size().filter(|&s| s != input) {
        return Err(ShapeError::WrongSize { size });
    }
    match result {
        Ok(shape) => Ok(shape),
        Err(module) => Err(ShapeError::TooSmall {
            module,
            min_input: min_input_size(arch, path).unwrap_or(u32::MAX),
        }),
    }
}

/// How a cut's output of tokens is laid out: `prefix` tokens (a class token) before the
/// patch tokens of a `rows × cols` grid, row by row, batch first ([N, S, D]; a Swin's
/// [N, H, W, C] map is its H·W patch tokens, no prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenGrid {
    /// Tokens before the patch tokens (1: ViT's class token).
    pub prefix: u32,
    /// Rows of patches.
    pub rows: u32,
    /// Columns of patches.
    pub cols: u32,
}

/// For a cut whose output is a sequence of tokens ([S, D]) at a `3×input×input` image, how
/// the tokens are laid out; `None` for a feature map, a flat output or an unknown cut. The
/// prefix counts the class (and register) tokens the network prepends before the cut; the patch tokens
/// of a square image form a square grid. A Swin Transformer's channels-last [H, W, C] maps
/// (everything in `features` after the patch embedding's conv, and `norm`) are its patch
/// tokens on their H×W grid, without a class token; ConvNeXt's channels-last maps inside
/// a block are feature maps.
pub fn token_grid(arch: Arch, path: &str, input: u32) -> Option<TokenGrid> {
    let shape = output_shape(arch, path, input).ok()?;
    let s = match shape[..] {
        [s, _] => s,
        [rows, cols, _] if family(arch) == Family::Swin => {
            // Swin's [C, H, W] maps (the conv, `permute`, `avgpool`) are not tokens.
            let last = matches!(
                evaluate(arch, input, Some(path)).pop(),
                Some((_, Ok(Shape::Last(..))))
            );
            return last.then_some(TokenGrid {
                prefix: 0,
                rows,
                cols,
            });
        }
        _ => return None,
    };
    let nodes = network(arch).up_to(path)?;
    fn class_tokens(nodes: &[Node]) -> u32 {
        nodes
            .iter()
            .map(|n| match &n.body {
                Body::Leaf(Op::ClassToken { .. }) => 1,
                // DINOv2's registers, after the class token.
                Body::Leaf(Op::RegisterTokens { n, .. }) => *n,
                Body::Leaf(_) => 0,
                Body::Seq(c) => class_tokens(c),
                Body::Residual(b) => b.iter().map(|b| class_tokens(b)).sum(),
                Body::Block { main, .. } => class_tokens(main),
            })
            .sum()
    }
    let prefix = class_tokens(&nodes);
    let patches = s.checked_sub(prefix)?;
    let side = (1..=patches).find(|k| k * k >= patches)?;
    (side * side == patches).then_some(TokenGrid {
        prefix,
        rows: side,
        cols: side,
    })
}

/// The output shapes of the BatchNorm layers that a network cut after `path` runs, for a
/// `3×input×input` image, in forward order: `(path, [C, H, W])`. Empty for an unknown path
/// or an input too small to reach the cut.
pub fn batchnorm_shapes(arch: Arch, path: &str, input: u32) -> Vec<(String, Vec<u32>)> {
    let all = evaluate(arch, input, None);
    let Some(at) = all.iter().position(|(cut, _)| cut.path == path) else {
        return Vec::new();
    };
    let inside = format!("{path}.");
    // Forward order lists a container before its children: what runs is everything before
    // the cut and everything inside it.
    all.into_iter()
        .enumerate()
        .filter(|(i, (cut, _))| *i <= at || cut.path.starts_with(&inside))
        .filter(|(_, (cut, _))| cut.module == "BatchNorm2d")
        .map_while(|(_, (cut, shape))| Some((cut.path, shape.ok()?.dims())))
        .collect()
}

/// The largest output (values per image, batch dimension excluded) of any module a network
/// cut after `path` runs, for a `3×input×input` image: what bounds the activations held at
/// once in a forward pass without gradients (that output and its input). `None` for an
/// unknown path or an input too small to reach the cut.
pub fn largest_activation(arch: Arch, path: &str, input: u32) -> Option<u64> {
    let all = evaluate(arch, input, None);
    let at = all.iter().position(|(cut, _)| cut.path == path)?;
    let inside = format!("{path}.");
    let image = 3 * u64::from(input) * u64::from(input);
    all.into_iter()
        .enumerate()
        .filter(|(i, (cut, _))| *i <= at || cut.path.starts_with(&inside))
        .map(|(_, (_, shape))| {
            shape
                .ok()
                .map(|s| s.dims().iter().map(|&d| u64::from(d)).product::<u64>())
        })
        .try_fold(image, |m, n| n.map(|n| m.max(n)))
}

/// Smallest input size for which cutting after `path` works; `None` if the
/// path names no cut point.
pub fn min_input_size(arch: Arch, path: &str) -> Option<u32> {
    let works = |n: u32| matches!(shape_at(arch, path, n), Ok(Ok(_)));
    if shape_at(arch, path, 1).is_err() {
        return None;
    }
    if let Some(n) = arch.fixed_input_size() {
        return Some(n);
    }
    // Output sizes never shrink as the input grows, so search by doubling
    // and then bisecting.
    let mut hi = 1u32;
    while !works(hi) {
        hi = hi.checked_mul(2)?;
    }
    let mut lo = hi / 2; // fails (or is 0)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if works(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// `Err(UnknownLayer)` for an unknown path, `Ok(Err(module))` if the first
/// empty output is that of `module`, `Ok(Ok(shape))` otherwise.
fn shape_at(arch: Arch, path: &str, input: u32) -> Result<Result<Vec<u32>, String>, ShapeError> {
    evaluate(arch, input, Some(path))
        .pop()
        .filter(|(cut, _)| cut.path == path)
        .map(|(_, shape)| shape.map(|s| s.dims()))
        .ok_or(ShapeError::UnknownLayer)
}

// ---------------------------------------------------------------------------
// Network descriptions.

/// How torchvision initialises an architecture's weights: its model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// ResNet: convs `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, BatchNorm
    /// weight 1 and bias 0, `fc` with nn.Linear's default.
    Resnet,
    /// VGG: convs `kaiming_normal_(mode="fan_out", nonlinearity="relu")` with bias 0,
    /// BatchNorm weight 1 and bias 0, linears `normal_(0, 0.01)` with bias 0.
    Vgg,
    /// AlexNet: nn.Conv2d's and nn.Linear's defaults.
    Alexnet,
    /// MobileNet V2 and V3: convs `kaiming_normal_(mode="fan_out")` with bias 0 (the
    /// squeeze-and-excitation convs too), BatchNorm weight 1 and bias 0, linears
    /// `normal_(0, 0.01)` with bias 0.
    Mobilenet,
    /// EfficientNet: as MobileNet, but linears `uniform_(±1/√out_features)` with bias 0.
    Efficientnet,
    /// SqueezeNet: convs `kaiming_uniform_` (U(±√(6/fan_in))) but the classifier's
    /// `normal_(0, 0.01)`, biases 0.
    Squeezenet,
    /// ShuffleNet V2: PyTorch's defaults (no initialisation of its own): convs
    /// `kaiming_uniform_(a=√5)` = U(±1/√fan_in), BatchNorm 1 and 0, `fc` U(±1/√fan_in) for
    /// weight and bias.
    Shufflenet,
    /// RegNet: convs `normal_(0, √(2/fan_out))` (their biases, in squeeze-and-excitation,
    /// nn.Conv2d's default U(±1/√fan_in)), BatchNorm 1 and 0, `fc` `normal_(0, 0.01)` with
    /// bias 0.
    Regnet,
    /// ConvNeXt: convs and linears `trunc_normal_(std=0.02)` (truncated at ±2, i.e. ±100
    /// standard deviations) with bias 0, LayerNorm weight 1 and bias 0, layer scale 10⁻⁶.
    Convnext,
    /// Vision Transformer: `conv_proj` `trunc_normal_(std=√(1/fan_in))` with bias 0, class
    /// token 0, position embedding `normal_(std=0.02)`, MLP linears `xavier_uniform_` with
    /// biases `normal_(std=1e-6)`, attention as nn.MultiheadAttention initialises itself
    /// (`in_proj_weight` `xavier_uniform_`, `out_proj.weight` U(±1/√fan_in), biases 0),
    /// LayerNorm 1 and 0, the head 0.
    Vit,
    /// CLIP as open_clip initialises it: convs and linears nn.Conv2d's and nn.Linear's
    /// defaults (U(±1/√fan_in)), BatchNorm 1 and 0 but every Bottleneck's `bn3` weight 0,
    /// the attention pool's embedding and q/k/v/c projections `normal_(std=1/√C)`, the
    /// ViT's class and position embeddings and `proj` `normal_(std=1/√D)`, attention as
    /// nn.MultiheadAttention initialises itself, LayerNorm 1 and 0.
    Clip,
    /// DINOv2 as its code initialises it: linears `trunc_normal_(std=0.02)` with bias 0, the
    /// patch conv nn.Conv2d's default, position embedding `trunc_normal_(std=0.02)`, class
    /// and register tokens `normal_(std=1e-6)`, `mask_token` 0, layer scale 1e-5, LayerNorm
    /// 1 and 0.
    Dinov2,
    /// Swin Transformer: linears `trunc_normal_(std=0.02)` with bias 0 (the MLPs' too: the
    /// model's loop runs after the blocks'), relative position bias tables
    /// `trunc_normal_(std=0.02)`, the patch embedding conv nn.Conv2d's default
    /// (U(±1/√fan_in) weight and bias), LayerNorm 1 and 0.
    Swin,
}

/// A leaf module with every parameter a builder needs: square kernels, strides and
/// paddings, dilation 1, one group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `Conv2d(cin, cout, k, stride=s, padding=p, groups=groups, bias=bias)`.
    Conv2d {
        /// Input channels.
        cin: u32,
        /// Output channels.
        cout: u32,
        /// Kernel size.
        k: u32,
        /// Stride.
        s: u32,
        /// Zero padding on every side.
        p: u32,
        /// Channel groups (1 but in ResNeXt's 3×3 convs); its weight is
        /// `[cout, cin / groups, k, k]`.
        groups: u32,
        /// Whether the convolution has a bias.
        bias: bool,
    },
    /// `BatchNorm2d(c, eps=eps, momentum=momentum)`, affine, running statistics tracked
    /// (torchvision's defaults eps 1e-5, momentum 0.1; MobileNet V3 eps 1e-3, momentum 0.01).
    BatchNorm2d {
        /// Channels.
        c: u32,
        /// Added to the variance.
        eps: f64,
        /// Weight of the batch's statistics in the running ones (`batchnorm train`).
        momentum: f64,
    },
    /// `ReLU`.
    Relu,
    /// `ReLU6`: min(max(x, 0), 6).
    Relu6,
    /// `Hardswish`: x · relu6(x + 3) / 6.
    Hardswish,
    /// `Hardsigmoid`: relu6(x + 3) / 6.
    Hardsigmoid,
    /// `Sigmoid`.
    Sigmoid,
    /// `SiLU`: x · sigmoid(x).
    Silu,
    /// `StochasticDepth`: drops whole residual branches while training, the identity in
    /// eval mode (and so always, for a frozen network).
    StochasticDepth,
    /// `GELU` (exact, not the tanh approximation).
    Gelu,
    /// torchvision's `LayerNorm2d(c, eps)`: LayerNorm over the channels of a [C, H, W] map.
    LayerNorm2d {
        /// Channels.
        c: u32,
        /// Added to the variance.
        eps: f64,
    },
    /// `LayerNorm(c, eps)` over the last dimension (the channels of a channels-last map).
    LayerNorm {
        /// Channels.
        c: u32,
        /// Added to the variance.
        eps: f64,
    },
    /// torchvision's `Permute`: [C, H, W] to [H, W, C] (`to_last`, dims [0, 2, 3, 1]) or
    /// back ([0, 3, 1, 2]).
    Permute {
        /// Channels to the last dimension, else back to the first.
        to_last: bool,
    },
    /// `Flatten(1)`: the map flattened to a vector.
    Flatten,
    /// `MaxPool2d(k, stride=s, padding=p, ceil_mode=ceil)`, dilation 1.
    MaxPool2d {
        /// Window size.
        k: u32,
        /// Stride.
        s: u32,
        /// Implicit −∞ padding on every side.
        p: u32,
        /// Whether the output size rounds up (a last window may start inside the input and
        /// run past it; SqueezeNet).
        ceil: bool,
    },
    /// `AdaptiveAvgPool2d((n, n))`.
    AdaptiveAvgPool2d(u32),
    /// `Dropout` (p = 0.5): the identity for a frozen network.
    Dropout,
    /// `Linear(fin, fout)` with bias, on a flattened input, on the last dimension of a
    /// channels-last map or on every token.
    Linear {
        /// Input features.
        fin: u32,
        /// Output features.
        fout: u32,
    },
    /// A learned class token prepended to a sequence of `d`-dimensional tokens. A [D, H, W]
    /// map becomes its H·W patch tokens first, row by row (`flatten(2).transpose(1, 2)`,
    /// ViT's `_process_input`). Not a module but a parameter of the enclosing module, named
    /// by its node (torchvision's top-level `class_token`, CLIP's `class_embedding`): its
    /// node is no cut point, and its key (the node's path) comes before the keys of its
    /// siblings, as PyTorch lists a module's own parameters before its children's.
    ClassToken {
        /// Token width.
        d: u32,
        /// Whether the parameter is `[1, 1, D]` (torchvision, timm) rather than `[D]`
        /// (CLIP).
        batch_dims: bool,
    },
    /// A learned position embedding `[S, D]` added to a sequence of exactly `s` tokens; a
    /// parameter like [`Op::ClassToken`] (torchvision's `encoder.pos_embedding`).
    PosEmbedding {
        /// Sequence length (class token included).
        s: u32,
        /// Token width.
        d: u32,
        /// Whether the parameter is `[1, S, D]` rather than `[S, D]`.
        batch_dims: bool,
    },
    /// `nn.MultiheadAttention(d, heads)` as self-attention on a sequence of tokens (batch
    /// first), its output's first element (the attention weights are not computed):
    /// `in_proj_weight` [3D, D] and `in_proj_bias` give q, k and v, each split into `heads`
    /// heads, softmax(q·kᵀ/√(D/heads))·v per head, the heads concatenated and `out_proj`.
    MultiheadAttention {
        /// Token width.
        d: u32,
        /// Attention heads.
        heads: u32,
    },
    /// The parameter-free core of a self-attention on fused `qkv` projections (timm's and
    /// DINOv2's `Attention` between its `qkv` and `proj` linears): [S, 3D] tokens (q, k, v
    /// concatenated, each `heads` heads of D/heads) to [S, D]. A function, not a module:
    /// its node is no cut point.
    Attention {
        /// Output token width D.
        d: u32,
        /// Attention heads.
        heads: u32,
    },
    /// `QuickGELU`: x · σ(1.702 x) (CLIP).
    QuickGelu,
    /// `x[:, 0]`: the first token's features, [S, D] to `[D]` (ViT's class token before its
    /// `heads`). A function, not a module: its node is no cut point.
    FirstToken,
    /// torchvision's `ShiftedWindowAttention` (Swin V1) on a channels-last [H, W, C] map:
    /// the map zero-padded to multiples of the window, rolled by −`shift` (no shift when the
    /// window covers the padded map), self-attention within each `window`×`window` window
    /// (fused `qkv` and `proj` linears, `heads` heads, a learned relative position bias per
    /// head from `relative_position_bias_table` indexed by the `relative_position_index`
    /// buffer, and −100 between tokens from different regions of a shifted map), rolled
    /// back and cropped.
    WindowAttention {
        /// Channels.
        d: u32,
        /// Attention heads.
        heads: u32,
        /// Window side.
        window: u32,
        /// Cyclic shift (0, or half the window in every second block).
        shift: u32,
    },
    /// Swin's `_patch_merging_pad`: a [H, W, C] map padded to even sides, its four strided
    /// sub-grids (even rows and columns, odd rows, odd columns, both odd) concatenated to
    /// [⌈H/2⌉, ⌈W/2⌉, 4C]. A function, not a module: its node is no cut point.
    PatchMerge,
    /// `Linear(fin, fout, bias=False)` (Swin's `reduction`).
    LinearNoBias {
        /// Input features.
        fin: u32,
        /// Output features.
        fout: u32,
    },
    /// Layer scale: x times a learned `gamma` `[D]` over the last dimension (DINOv2's and
    /// open_clip's `LayerScale`, key `gamma`).
    LayerScale {
        /// Width of the last dimension.
        d: u32,
        /// The initial value of `gamma` (DINOv2: 1e-5).
        init: f64,
    },
    /// `AvgPool2d(k)`: average over k×k windows with stride k, no padding (CLIP's
    /// anti-aliasing pools).
    AvgPool2d {
        /// Window size and stride.
        k: u32,
    },
    /// `Identity` (open_clip's stride-1 `avgpool`, `patch_dropout`, `ls_1`; DINOv2's `head`).
    Identity,
    /// CLIP's `AttentionPool2d`: the [C, H, W] map's H·W tokens after their mean, plus
    /// `positional_embedding` [grid² + 1, C] (resampled to H×W as timm's `AttentionPool2d`
    /// does, bicubic with antialiasing, when the map is not grid×grid), multi-head attention
    /// of the first token (the mean) over all with `q_proj`, `k_proj`, `v_proj`, then
    /// `c_proj`: the `[out]` embedding.
    AttentionPool2d {
        /// Channels.
        c: u32,
        /// The grid of the position embedding (7 at 224 px).
        grid: u32,
        /// Attention heads.
        heads: u32,
        /// Output width.
        out: u32,
    },
    /// `x @ proj` with a parameter `proj` [fin, fout] of the enclosing module, named by its
    /// node (CLIP's image projection of the class token).
    Projection {
        /// Input features.
        fin: u32,
        /// Output features.
        fout: u32,
    },
    /// A [D, H, W] map as its H·W tokens, row by row (`flatten(2).transpose(1, 2)`, inside
    /// DINOv2's `PatchEmbed`). A function: its node is no cut point.
    ToTokens,
    /// DINOv2's position embedding, a parameter `[1, 1 + grid², D]` added to the class token
    /// and the patch tokens, resampled to an image's g×g patch grid as DINOv2's
    /// `interpolate_pos_encoding` does when g ≠ grid, bicubic: the released models without
    /// registers at the scale factor (g + 0.1) / grid without antialiasing
    /// (`interpolate_offset` 0.1), those with registers to the size g×g with antialiasing
    /// (offset 0, `interpolate_antialias`).
    Dinov2PosEmbedding {
        /// The grid of the parameter (37).
        grid: u32,
        /// Token width.
        d: u32,
        /// Resampling to the size with antialiasing (the register models), else at the
        /// offset scale factor without.
        antialias: bool,
    },
    /// DINOv2's register tokens, a parameter `[1, n, D]` inserted after the class token.
    RegisterTokens {
        /// How many.
        n: u32,
        /// Token width.
        d: u32,
    },
    /// A parameter `[1, D]` of the model that its forward never uses (DINOv2's
    /// `mask_token`, for masked training): a key, no computation.
    Unused {
        /// Width.
        d: u32,
    },
}

impl Op {
    /// The torchvision class of the module: `"Conv2d"`, `"ReLU"`, ...
    pub fn class(self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "Conv2d",
            Op::BatchNorm2d { .. } => "BatchNorm2d",
            Op::Relu => "ReLU",
            Op::Relu6 => "ReLU6",
            Op::Hardswish => "Hardswish",
            Op::Hardsigmoid => "Hardsigmoid",
            Op::Sigmoid => "Sigmoid",
            Op::Silu => "SiLU",
            Op::StochasticDepth => "StochasticDepth",
            Op::Gelu => "GELU",
            Op::LayerNorm2d { .. } => "LayerNorm2d",
            Op::LayerNorm { .. } => "LayerNorm",
            Op::Permute { .. } => "Permute",
            Op::Flatten => "Flatten",
            Op::MaxPool2d { .. } => "MaxPool2d",
            Op::AdaptiveAvgPool2d(_) => "AdaptiveAvgPool2d",
            Op::Dropout => "Dropout",
            Op::Linear { .. } => "Linear",
            Op::ClassToken { .. } => "Parameter",
            Op::PosEmbedding { .. } => "Parameter",
            Op::MultiheadAttention { .. } => "MultiheadAttention",
            Op::Attention { .. } => "scaled_dot_product_attention",
            Op::QuickGelu => "QuickGELU",
            Op::FirstToken => "getitem",
            Op::WindowAttention { .. } => "ShiftedWindowAttention",
            Op::PatchMerge => "_patch_merging_pad",
            Op::LinearNoBias { .. } => "Linear",
            Op::LayerScale { .. } => "LayerScale",
            Op::AvgPool2d { .. } => "AvgPool2d",
            Op::Identity => "Identity",
            Op::AttentionPool2d { .. } => "AttentionPool2d",
            Op::Projection { .. } => "matmul",
            Op::ToTokens => "flatten",
            Op::Dinov2PosEmbedding { .. } | Op::RegisterTokens { .. } | Op::Unused { .. } => {
                "Parameter"
            }
        }
    }

    /// Whether the op is a parameter of the enclosing module rather than a module
    /// ([`Op::ClassToken`], [`Op::PosEmbedding`]): its key is its node's path.
    pub fn is_parameter(self) -> bool {
        matches!(
            self,
            Op::ClassToken { .. }
                | Op::PosEmbedding { .. }
                | Op::Projection { .. }
                | Op::Dinov2PosEmbedding { .. }
                | Op::RegisterTokens { .. }
                | Op::Unused { .. }
        )
    }

    /// The output shape, or `None` if it would be empty.
    fn apply(self, x: Shape) -> Option<Shape> {
        // floor((n + 2p - (k - 1) - 1) / s) + 1, computed without underflow.
        let window = |n: u32, k: u32, s: u32, p: u32| (n + 2 * p).checked_sub(k).map(|m| m / s + 1);
        match (self, x) {
            (
                Op::AvgPool2d { .. }
                | Op::Identity
                | Op::AttentionPool2d { .. }
                | Op::Projection { .. }
                | Op::ToTokens
                | Op::Dinov2PosEmbedding { .. }
                | Op::RegisterTokens { .. }
                | Op::Unused { .. },
                x,
            ) => clip::apply(self, x),
            (
                Op::Relu
                | Op::Relu6
                | Op::Hardswish
                | Op::Hardsigmoid
                | Op::Sigmoid
                | Op::Silu
                | Op::StochasticDepth
                | Op::Gelu
                | Op::QuickGelu
                | Op::Dropout,
                x,
            ) => Some(x),
            (Op::LayerNorm { c: n, .. }, Shape::Tokens(_, c))
            | (Op::MultiheadAttention { d: n, .. }, Shape::Tokens(_, c))
            | (Op::LayerScale { d: n, .. }, Shape::Tokens(_, c) | Shape::Last(_, _, c)) => {
                debug_assert_eq!(c, n, "token width");
                Some(x)
            }
            (Op::Linear { fin, fout }, Shape::Tokens(s, c)) => {
                debug_assert_eq!(c, fin, "Linear input features");
                Some(Shape::Tokens(s, fout))
            }
            (Op::ClassToken { d, .. }, Shape::Map(c, h, w)) => {
                debug_assert_eq!(c, d, "class token width");
                Some(Shape::Tokens(1 + h * w, d))
            }
            (Op::ClassToken { d, .. }, Shape::Tokens(s, c)) => {
                debug_assert_eq!(c, d, "class token width");
                Some(Shape::Tokens(s + 1, d))
            }
            // A sequence of another length has no position embedding (torchvision asserts
            // the image size before it gets here; see `Arch::fixed_input_size`).
            (Op::PosEmbedding { s, d, .. }, Shape::Tokens(n, c)) => {
                debug_assert_eq!(c, d, "position embedding width");
                (n == s).then_some(x)
            }
            (Op::FirstToken, Shape::Tokens(_, d)) => Some(Shape::Flat(d)),
            (Op::WindowAttention { d: n, .. }, Shape::Last(_, _, c)) => {
                debug_assert_eq!(c, n, "window attention channels");
                Some(x)
            }
            (Op::PatchMerge, Shape::Last(h, w, c)) => {
                Some(Shape::Last(h.div_ceil(2), w.div_ceil(2), 4 * c))
            }
            (Op::LinearNoBias { fin, fout }, Shape::Last(h, w, c)) => {
                debug_assert_eq!(c, fin, "Linear input features");
                Some(Shape::Last(h, w, fout))
            }
            (Op::Attention { d, .. }, Shape::Tokens(s, c)) => {
                debug_assert_eq!(c, 3 * d, "fused qkv width");
                Some(Shape::Tokens(s, d))
            }
            (Op::LayerNorm2d { c: n, .. }, Shape::Map(c, ..))
            | (Op::LayerNorm { c: n, .. }, Shape::Last(_, _, c)) => {
                debug_assert_eq!(c, n, "LayerNorm channels");
                Some(x)
            }
            (Op::Permute { to_last: true }, Shape::Map(c, h, w)) => Some(Shape::Last(h, w, c)),
            (Op::Permute { to_last: false }, Shape::Last(h, w, c)) => Some(Shape::Map(c, h, w)),
            (Op::Flatten, Shape::Map(c, h, w)) => Some(Shape::Flat(c * h * w)),
            (Op::Flatten, Shape::Tokens(s, d)) => Some(Shape::Flat(s * d)),
            (Op::Linear { fin, fout }, Shape::Last(h, w, c)) => {
                debug_assert_eq!(c, fin, "Linear input features");
                Some(Shape::Last(h, w, fout))
            }
            (
                Op::Conv2d {
                    cin, cout, k, s, p, ..
                },
                Shape::Map(c, h, w),
            ) => {
                debug_assert_eq!(c, cin, "Conv2d input channels");
                Some(Shape::Map(cout, window(h, k, s, p)?, window(w, k, s, p)?))
            }
            (Op::BatchNorm2d { c: n, .. }, Shape::Map(c, ..)) => {
                debug_assert_eq!(c, n, "BatchNorm2d channels");
                Some(x)
            }
            (
                Op::MaxPool2d {
                    k,
                    s,
                    p,
                    ceil: false,
                },
                Shape::Map(c, h, w),
            ) => Some(Shape::Map(c, window(h, k, s, p)?, window(w, k, s, p)?)),
            (
                Op::MaxPool2d {
                    k,
                    s,
                    p,
                    ceil: true,
                },
                Shape::Map(c, h, w),
            ) => {
                // PyTorch's pooling_output_shape with ceil_mode: round up, but the last
                // window must start inside the input or its left padding.
                let ceil_window = |n: u32| {
                    let (n, k, s, p) = (i64::from(n), i64::from(k), i64::from(s), i64::from(p));
                    let mut out = (n + 2 * p - (k - 1) - 1 + (s - 1)).div_euclid(s) + 1;
                    if (out - 1) * s >= n + p {
                        out -= 1;
                    }
                    u32::try_from(out).ok().filter(|&o| o > 0)
                };
                Some(Shape::Map(c, ceil_window(h)?, ceil_window(w)?))
            }
            (Op::AdaptiveAvgPool2d(o), Shape::Map(c, _, _)) => Some(Shape::Map(c, o, o)),
            (Op::Linear { fin, fout }, Shape::Flat(f)) => {
                debug_assert_eq!(f, fin, "Linear input features");
                Some(Shape::Flat(fout))
            }
            (op, x) => unreachable!("{op:?} on {x:?}"),
        }
    }
}

/// The two residual blocks of torchvision's ResNets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// `BasicBlock`: two 3×3 convs.
    Basic,
    /// `Bottleneck`: 1×1, 3×3 (carrying the stride, torchvision's "v1.5"), 1×1 convs.
    Bottleneck,
}

impl BlockKind {
    /// The torchvision class: `"BasicBlock"` or `"Bottleneck"`.
    pub fn class(self) -> &'static str {
        match self {
            BlockKind::Basic => "BasicBlock",
            BlockKind::Bottleneck => "Bottleneck",
        }
    }
}

/// What a module computes.
#[derive(Clone, Debug)]
pub enum Body {
    /// A leaf module.
    Leaf(Op),
    /// Children applied one after the other: an `nn.Sequential`, or any module whose forward
    /// is just that (`Conv2dNormActivation`, an `InvertedResidual` without its residual
    /// connection); the node's `class` says which.
    Seq(Vec<Node>),
    /// A block with a branch: `main` (its modules in forward order) runs on the block input
    /// `x`, and `merge` combines its output with `x`.
    Block {
        /// The main branch, run first.
        main: Vec<Node>,
        /// How the main branch's output meets the block input.
        merge: Merge,
    },
    /// Residual branches applied in turn, `x ← x + branch(x)` for each (a transformer
    /// block: ViT's `EncoderBlock` is `[ln_1, self_attention, dropout]` then `[ln_2, mlp]`;
    /// Swin's and DINOv2's blocks alike). Cutting inside branch `i` runs the branches
    /// before it, each with its sum, and branch `i` up to the cut (no sum). A module
    /// applied in several branches (Swin's `stochastic_depth`) is no cut point.
    Residual(Vec<Vec<Node>>),
}

/// How a [`Body::Block`] combines its main branch with its input `x`.
#[derive(Clone, Debug)]
pub enum Merge {
    /// A residual connection: `main(x) + shortcut(x)` (`main(x) + x` without a shortcut),
    /// then a ReLU if `relu`. ResNet's BasicBlock and Bottleneck (their `downsample`, their
    /// `relu` listed in `main` wherever it is applied, not a cut point there), the inverted
    /// residuals of MobileNet and EfficientNet (stochastic depth, the identity in eval mode,
    /// is the last module of `main`).
    Add {
        /// The module on the block input (ResNet's `downsample`), if any.
        shortcut: Option<Box<Node>>,
        /// Whether a ReLU follows the sum (ResNet).
        relu: bool,
        /// ConvNeXt's layer scale: a `[C, 1, 1]` parameter `layer_scale` of the block (its
        /// first key) multiplying the output of the branch's first module, `block`, before
        /// stochastic depth.
        layer_scale: Option<u32>,
        /// Whether torchvision runs the shortcut before the main branch (RegNet's `proj`,
        /// which is also the block's first keys).
        shortcut_first: bool,
        /// A module of the block applied to the sum, whose output is the block's (RegNet's
        /// `activation`, a cut point).
        activation: Option<Box<Node>>,
    },
    /// A gate: `main(x) * x`, the main branch's output broadcast over the input
    /// (squeeze-and-excitation: global average pool, 1×1 conv, activation, 1×1 conv, a
    /// sigmoid or hard sigmoid).
    Scale,
    /// Branches on the main branch's output `y`, concatenated along the channels:
    /// `cat([b(y) for b in branches])` (SqueezeNet's Fire: `squeeze` then `expand1x1` and
    /// `expand3x3`; ShuffleNet V2's strided block: no main branch, `branch1` and `branch2`).
    /// Cutting inside branch `i` runs the main branch and the branches up to `i`.
    Concat {
        /// The branches, in torchvision's forward order.
        branches: Vec<Vec<Node>>,
        /// `y` split in two halves along the channels, the first passed through and the
        /// one branch run on the second: `cat(y₁, b(y₂))` (ShuffleNet V2's unstrided block).
        split: bool,
        /// torchvision's `channel_shuffle(out, 2)` after the concatenation (ShuffleNet V2).
        shuffle: bool,
    },
}

/// A module of an architecture, named as in torchvision's `named_modules()`.
#[derive(Clone, Debug)]
pub struct Node {
    /// Local name (last path component): `layer2`, `conv1`, `3`, ...
    pub name: String,
    /// The torchvision class of the module: `"Conv2d"`, `"Sequential"`, `"Bottleneck"`,
    /// `"InvertedResidual"`, ...
    pub class: &'static str,
    /// Whether the model calls `adaptive_avg_pool2d(x, 1)` as a function (no module) right
    /// before this module (`classifier` in MobileNet V2); the flattening follows.
    pub global_pool: bool,
    /// Whether the model calls `torch.flatten(x, 1)` right before this module (`fc` in
    /// ResNets, `classifier` in VGG, AlexNet, MobileNet, EfficientNet).
    pub flatten: bool,
    /// Whether the network can be cut after this module. False only for modules torchvision
    /// applies several times per forward (the `relu` inside a ResNet block).
    pub cut_point: bool,
    /// What it computes.
    pub body: Body,
}

impl Node {
    /// The torchvision class of the module: `"Conv2d"`, `"Sequential"`, `"Bottleneck"`, ...
    pub fn class(&self) -> &'static str {
        self.class
    }
}

/// The complete description of an architecture: the one source for the catalog's cut points
/// and shapes and for the torch backbone builder.
#[derive(Clone, Debug)]
pub struct Network {
    /// How torchvision initialises its weights.
    pub family: Family,
    /// The top-level modules in forward order.
    pub modules: Vec<Node>,
}

impl Network {
    /// The modules needed for the output of cut point `cut`, in forward order: the modules
    /// before it, the cut module whole, and the containers on the way to it cut short after
    /// it. A block cut inside its main branch keeps no shortcut; one cut inside its
    /// shortcut (ResNet's `downsample`) keeps its whole main branch (torchvision runs that
    /// first). `None` if `cut`
    /// names no cut point.
    pub fn up_to(&self, cut: &str) -> Option<Vec<Node>> {
        up_to(&self.modules, "", cut)
    }
}

fn up_to(nodes: &[Node], prefix: &str, cut: &str) -> Option<Vec<Node>> {
    let mut out = Vec::new();
    for node in nodes {
        let path = join(prefix, &node.name);
        if path == cut {
            if !node.cut_point {
                return None;
            }
            out.push(node.clone());
            return Some(out);
        }
        if cut.starts_with(&format!("{path}.")) {
            let body = match &node.body {
                Body::Leaf(_) => return None,
                Body::Seq(children) => Body::Seq(up_to(children, &path, cut)?),
                Body::Residual(branches) => {
                    // The branches before the one cut short, whole.
                    let mut found = false;
                    let mut kept = Vec::new();
                    for b in branches {
                        if let Some(b) = up_to(b, &path, cut) {
                            kept.push(b);
                            found = true;
                            break;
                        }
                        kept.push(b.clone());
                    }
                    if !found {
                        return None;
                    }
                    Body::Residual(kept)
                }
                Body::Block { main, merge } => match (up_to(main, &path, cut), merge) {
                    (Some(main), _) => Body::Block {
                        main,
                        merge: match merge {
                            Merge::Add {
                                relu,
                                layer_scale,
                                shortcut_first,
                                ..
                            } => Merge::Add {
                                shortcut: None,
                                relu: *relu,
                                layer_scale: *layer_scale,
                                shortcut_first: *shortcut_first,
                                activation: None,
                            },
                            Merge::Scale => Merge::Scale,
                            Merge::Concat { split, shuffle, .. } => Merge::Concat {
                                branches: Vec::new(),
                                split: *split,
                                shuffle: *shuffle,
                            },
                        },
                    },
                    (
                        None,
                        Merge::Add {
                            shortcut,
                            relu,
                            layer_scale,
                            shortcut_first,
                            activation,
                        },
                    ) => {
                        let in_shortcut = shortcut
                            .as_deref()
                            .and_then(|sc| up_to(std::slice::from_ref(sc), &path, cut));
                        match in_shortcut {
                            // A shortcut run first needs no main branch before the cut.
                            Some(sc) => Body::Block {
                                main: if *shortcut_first {
                                    Vec::new()
                                } else {
                                    main.clone()
                                },
                                merge: Merge::Add {
                                    shortcut: sc.into_iter().next().map(Box::new),
                                    relu: *relu,
                                    layer_scale: *layer_scale,
                                    shortcut_first: *shortcut_first,
                                    activation: None,
                                },
                            },
                            // Only the activation after the sum is left: a cut point taken
                            // whole, so the block comes whole.
                            None => {
                                let act = activation.as_deref()?;
                                up_to(std::slice::from_ref(act), &path, cut)?;
                                node.body.clone()
                            }
                        }
                    }
                    (None, Merge::Scale) => return None,
                    (
                        None,
                        Merge::Concat {
                            branches,
                            split,
                            shuffle,
                        },
                    ) => {
                        // The branches before the one cut whole, that one cut short.
                        let mut kept = Vec::new();
                        let mut found = false;
                        for b in branches {
                            if let Some(b) = up_to(b, &path, cut) {
                                kept.push(b);
                                found = true;
                                break;
                            }
                            kept.push(b.clone());
                        }
                        if !found {
                            return None;
                        }
                        Body::Block {
                            main: main.clone(),
                            merge: Merge::Concat {
                                branches: kept,
                                split: *split,
                                shuffle: *shuffle,
                            },
                        }
                    }
                },
            };
            out.push(Node {
                body,
                ..node.clone()
            });
            return Some(out);
        }
        out.push(node.clone());
    }
    None
}

/// The children of a module of torchvision class `class` in the order torchvision registers
/// them, which is its `state_dict()` order: their forward order, but for Swin's
/// `PatchMerging`, which registers `reduction` before the `norm` it applies first.
pub fn registration_order(class: &str, children: &[Node]) -> Vec<Node> {
    let mut out = children.to_vec();
    if class == "PatchMerging" {
        out.sort_by_key(|n| n.name != "reduction");
    }
    out
}

/// `prefix.name`, or `name` at the top level.
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The description of `arch` (built once, then shared).
pub fn network(arch: Arch) -> &'static Network {
    static NETWORKS: [OnceLock<Network>; Arch::ALL.len()] =
        [const { OnceLock::new() }; Arch::ALL.len()];
    NETWORKS[arch as usize].get_or_init(|| describe(arch))
}

/// How torchvision initialises the weights of `arch`.
pub fn family(arch: Arch) -> Family {
    network(arch).family
}

/// The table of architectures: adding one means adding its line here (and its `Arch`
/// variant).
fn describe(arch: Arch) -> Network {
    match arch {
        Arch::Resnet18 => resnet(BlockKind::Basic, [2, 2, 2, 2], 1, 64),
        Arch::Resnet34 => resnet(BlockKind::Basic, [3, 4, 6, 3], 1, 64),
        Arch::Resnet50 => resnet(BlockKind::Bottleneck, [3, 4, 6, 3], 1, 64),
        Arch::Resnet101 => resnet(BlockKind::Bottleneck, [3, 4, 23, 3], 1, 64),
        Arch::Resnet152 => resnet(BlockKind::Bottleneck, [3, 8, 36, 3], 1, 64),
        Arch::Resnext50x32x4d => resnet(BlockKind::Bottleneck, [3, 4, 6, 3], 32, 4),
        Arch::Resnext101x32x8d => resnet(BlockKind::Bottleneck, [3, 4, 23, 3], 32, 8),
        Arch::Resnext101x64x4d => resnet(BlockKind::Bottleneck, [3, 4, 23, 3], 64, 4),
        Arch::WideResnet50x2 => resnet(BlockKind::Bottleneck, [3, 4, 6, 3], 1, 128),
        Arch::WideResnet101x2 => resnet(BlockKind::Bottleneck, [3, 4, 23, 3], 1, 128),
        Arch::Vgg11 => vgg(VGG_A, false),
        Arch::Vgg13 => vgg(VGG_B, false),
        Arch::Vgg16 => vgg(VGG_D, false),
        Arch::Vgg19 => vgg(VGG_E, false),
        Arch::Vgg11Bn => vgg(VGG_A, true),
        Arch::Vgg13Bn => vgg(VGG_B, true),
        Arch::Vgg16Bn => vgg(VGG_D, true),
        Arch::Vgg19Bn => vgg(VGG_E, true),
        Arch::Alexnet => alexnet(),
        Arch::MobilenetV2 => mobilenet_v2(),
        Arch::MobilenetV3Small => mobilenet_v3(false),
        Arch::MobilenetV3Large => mobilenet_v3(true),
        Arch::EfficientnetB0 => efficientnet(1.0, 1.0),
        Arch::EfficientnetB1 => efficientnet(1.0, 1.1),
        Arch::EfficientnetB2 => efficientnet(1.1, 1.2),
        Arch::EfficientnetB3 => efficientnet(1.2, 1.4),
        Arch::ConvnextTiny => convnext(96, [3, 3, 9, 3]),
        Arch::ConvnextSmall => convnext(96, [3, 3, 27, 3]),
        Arch::ConvnextBase => convnext(128, [3, 3, 27, 3]),
        Arch::Squeezenet1x0 => squeezenet(false),
        Arch::Squeezenet1x1 => squeezenet(true),
        Arch::ShufflenetV2X0x5 => shufflenet_v2([48, 96, 192], 1024),
        Arch::ShufflenetV2X1x0 => shufflenet_v2([116, 232, 464], 1024),
        Arch::ShufflenetV2X1x5 => shufflenet_v2([176, 352, 704], 1024),
        Arch::ShufflenetV2X2x0 => shufflenet_v2([244, 488, 976], 2048),
        Arch::RegnetYx400mf => regnet([(1, 48), (3, 104), (6, 208), (6, 440)], 8, true),
        Arch::RegnetXx400mf => regnet([(1, 32), (2, 64), (7, 160), (12, 400)], 16, false),
        Arch::VitBx16 => vit::vit(16, 12, 12, 768, 3072),
        Arch::VitBx32 => vit::vit(32, 12, 12, 768, 3072),
        Arch::VitLx16 => vit::vit(16, 24, 16, 1024, 4096),
        Arch::ClipRn50 => clip::clip_resnet([3, 4, 6, 3], 64, 32, 1024),
        Arch::ClipVitBx32 => clip::clip_vit(32, 12, 768, 12, 512),
        Arch::ClipVitBx16 => clip::clip_vit(16, 12, 768, 12, 512),
        Arch::Dinov2Vits14 => clip::dinov2(12, 384, 6, 0),
        Arch::Dinov2Vitb14 => clip::dinov2(12, 768, 12, 0),
        Arch::Dinov2Vits14Reg => clip::dinov2(12, 384, 6, 4),
        Arch::Dinov2Vitb14Reg => clip::dinov2(12, 768, 12, 4),
        Arch::SwinT => swin::swin(96, [2, 2, 6, 2], [3, 6, 12, 24]),
        Arch::SwinS => swin::swin(96, [2, 2, 18, 2], [3, 6, 12, 24]),
    }
}

fn leaf(name: impl Into<String>, op: Op) -> Node {
    node(name, op.class(), Body::Leaf(op))
}

fn seq(name: impl Into<String>, children: Vec<Node>) -> Node {
    node(name, "Sequential", Body::Seq(children))
}

/// A cut point `name` of torchvision class `class` computing `body`.
fn node(name: impl Into<String>, class: &'static str, body: Body) -> Node {
    Node {
        name: name.into(),
        class,
        global_pool: false,
        flatten: false,
        cut_point: true,
        body,
    }
}

/// `BatchNorm2d(c)` with torchvision's defaults (eps 1e-5, momentum 0.1).
fn bn(c: u32) -> Op {
    Op::BatchNorm2d {
        c,
        eps: 1e-5,
        momentum: 0.1,
    }
}

/// Marks a node as preceded by `torch.flatten(x, 1)`.
fn flattened(node: Node) -> Node {
    Node {
        flatten: true,
        ..node
    }
}

/// Numbers the children of a torchvision `nn.Sequential` 0, 1, 2, ...
fn numbered(ops: Vec<Op>) -> Vec<Node> {
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| leaf(i.to_string(), op))
        .collect()
}

fn conv(cin: u32, cout: u32, k: u32, s: u32, p: u32, bias: bool) -> Op {
    Op::Conv2d {
        cin,
        cout,
        k,
        s,
        p,
        groups: 1,
        bias,
    }
}

/// A convolution without bias whose channels are split into `groups` groups (ResNeXt,
/// depthwise convs).
fn grouped_conv(cin: u32, cout: u32, k: u32, s: u32, p: u32, groups: u32) -> Op {
    Op::Conv2d {
        cin,
        cout,
        k,
        s,
        p,
        groups,
        bias: false,
    }
}

fn linear(fin: u32, fout: u32) -> Op {
    Op::Linear { fin, fout }
}

/// VGG configurations: conv output channels, 0 for a 2×2 max pool.
const VGG_A: &[u32] = &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
const VGG_B: &[u32] = &[
    64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0,
];
const VGG_D: &[u32] = &[
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];
const VGG_E: &[u32] = &[
    64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
];

/// torchvision's VGG with configuration `cfg`, with or without batch norm.
fn vgg(cfg: &[u32], batch_norm: bool) -> Network {
    let mut features = Vec::new();
    let mut cin = 3;
    for &c in cfg {
        if c == 0 {
            features.push(Op::MaxPool2d {
                k: 2,
                s: 2,
                p: 0,
                ceil: false,
            });
        } else {
            features.push(conv(cin, c, 3, 1, 1, true));
            if batch_norm {
                features.push(bn(c));
            }
            features.push(Op::Relu);
            cin = c;
        }
    }
    Network {
        family: Family::Vgg,
        modules: vec![
            seq("features", numbered(features)),
            leaf("avgpool", Op::AdaptiveAvgPool2d(7)),
            flattened(seq(
                "classifier",
                numbered(vec![
                    linear(cin * 7 * 7, 4096),
                    Op::Relu,
                    Op::Dropout,
                    linear(4096, 4096),
                    Op::Relu,
                    Op::Dropout,
                    linear(4096, 1000),
                ]),
            )),
        ],
    }
}

/// torchvision's AlexNet (the "one weird trick" variant, 64 channels first).
fn alexnet() -> Network {
    let pool = Op::MaxPool2d {
        k: 3,
        s: 2,
        p: 0,
        ceil: false,
    };
    Network {
        family: Family::Alexnet,
        modules: vec![
            seq(
                "features",
                numbered(vec![
                    conv(3, 64, 11, 4, 2, true),
                    Op::Relu,
                    pool,
                    conv(64, 192, 5, 1, 2, true),
                    Op::Relu,
                    pool,
                    conv(192, 384, 3, 1, 1, true),
                    Op::Relu,
                    conv(384, 256, 3, 1, 1, true),
                    Op::Relu,
                    conv(256, 256, 3, 1, 1, true),
                    Op::Relu,
                    pool,
                ]),
            ),
            leaf("avgpool", Op::AdaptiveAvgPool2d(6)),
            flattened(seq(
                "classifier",
                numbered(vec![
                    Op::Dropout,
                    linear(256 * 6 * 6, 4096),
                    Op::Relu,
                    Op::Dropout,
                    linear(4096, 4096),
                    Op::Relu,
                    linear(4096, 1000),
                ]),
            )),
        ],
    }
}

/// torchvision's ResNet with `blocks[i]` blocks of `kind` in `layer{i+1}`, and its
/// ResNeXt and Wide ResNet variants: a Bottleneck's inner width is
/// `planes · width_per_group / 64 · groups`, its 3×3 conv split into `groups` groups
/// (ResNet: 1 and 64; ResNeXt-50 32×4d: 32 and 4; Wide ResNet-50-2: 1 and 128).
fn resnet(kind: BlockKind, blocks: [usize; 4], groups: u32, width_per_group: u32) -> Network {
    let expansion = match kind {
        BlockKind::Basic => 1,
        BlockKind::Bottleneck => 4,
    };
    let mut modules = vec![
        leaf("conv1", conv(3, 64, 7, 2, 3, false)),
        leaf("bn1", bn(64)),
        leaf("relu", Op::Relu),
        leaf(
            "maxpool",
            Op::MaxPool2d {
                k: 3,
                s: 2,
                p: 1,
                ceil: false,
            },
        ),
    ];
    let mut inplanes = 64;
    for (l, &count) in blocks.iter().enumerate() {
        let planes = 64 << l;
        let out = planes * expansion;
        let width = planes * width_per_group / 64 * groups;
        let mut layer = Vec::new();
        for b in 0..count {
            let stride = if l > 0 && b == 0 { 2 } else { 1 };
            // The block's one `relu`, applied after every bn but the last (and after the
            // sum): not a cut point.
            let relu = || Node {
                cut_point: false,
                ..leaf("relu", Op::Relu)
            };
            let main = match kind {
                BlockKind::Basic => vec![
                    leaf("conv1", conv(inplanes, planes, 3, stride, 1, false)),
                    leaf("bn1", bn(planes)),
                    relu(),
                    leaf("conv2", conv(planes, planes, 3, 1, 1, false)),
                    leaf("bn2", bn(planes)),
                ],
                BlockKind::Bottleneck => vec![
                    leaf("conv1", conv(inplanes, width, 1, 1, 0, false)),
                    leaf("bn1", bn(width)),
                    relu(),
                    leaf("conv2", grouped_conv(width, width, 3, stride, 1, groups)),
                    leaf("bn2", bn(width)),
                    relu(),
                    leaf("conv3", conv(width, out, 1, 1, 0, false)),
                    leaf("bn3", bn(out)),
                ],
            };
            let shortcut = (stride != 1 || inplanes != out).then(|| {
                Box::new(seq(
                    "downsample",
                    vec![
                        leaf("0", conv(inplanes, out, 1, stride, 0, false)),
                        leaf("1", bn(out)),
                    ],
                ))
            });
            inplanes = out;
            layer.push(node(
                b.to_string(),
                kind.class(),
                Body::Block {
                    main,
                    merge: Merge::Add {
                        shortcut,
                        relu: true,
                        layer_scale: None,
                        shortcut_first: false,
                        activation: None,
                    },
                },
            ));
        }
        modules.push(seq(format!("layer{}", l + 1), layer));
    }
    modules.push(leaf("avgpool", Op::AdaptiveAvgPool2d(1)));
    modules.push(flattened(leaf("fc", linear(inplanes, 1000))));
    Network {
        family: Family::Resnet,
        modules,
    }
}

/// torchvision's `_make_divisible(v, divisor)`: `v` rounded to the nearest multiple of
/// `divisor` (at least `divisor`), rounded up once more if that lost over 10%.
fn make_divisible(v: f64, divisor: u32) -> u32 {
    let d = f64::from(divisor);
    let rounded = ((v + d / 2.0) as u32 / divisor * divisor).max(divisor);
    if f64::from(rounded) < 0.9 * v {
        rounded + divisor
    } else {
        rounded
    }
}

/// Names the modules of a torchvision `nn.Sequential` 0, 1, 2, ...
fn renumbered(nodes: Vec<Node>) -> Vec<Node> {
    nodes
        .into_iter()
        .enumerate()
        .map(|(i, n)| Node {
            name: i.to_string(),
            ..n
        })
        .collect()
}

/// torchvision's `Conv2dNormActivation`: a `k`×`k` conv without bias (padding `(k - 1) / 2`,
/// `groups` groups; depthwise when `groups` equals the channels), the norm `norm(cout)` and
/// the activation if any, named `0`, `1`, `2`. Named by [`renumbered`].
fn conv_norm_act(
    cin: u32,
    cout: u32,
    k: u32,
    s: u32,
    groups: u32,
    norm: fn(u32) -> Op,
    act: Option<Op>,
) -> Node {
    let mut ops = vec![
        grouped_conv(cin, cout, k, s, (k - 1) / 2, groups),
        norm(cout),
    ];
    ops.extend(act);
    node("", "Conv2dNormActivation", Body::Seq(numbered(ops)))
}

/// torchvision's `SqueezeExcitation` on `c` channels: `x · gate(fc2(act(fc1(avgpool(x)))))`,
/// `fc1` and `fc2` 1×1 convs with bias through `squeeze` channels. Named by [`renumbered`].
fn squeeze_excitation(c: u32, squeeze: u32, act: Op, gate: Op) -> Node {
    node(
        "",
        "SqueezeExcitation",
        Body::Block {
            main: vec![
                leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
                leaf("fc1", conv(c, squeeze, 1, 1, 0, true)),
                leaf("activation", act),
                leaf("fc2", conv(squeeze, c, 1, 1, 0, true)),
                leaf("scale_activation", gate),
            ],
            merge: Merge::Scale,
        },
    )
}

/// An inverted residual of torchvision class `class` whose layers form the Sequential
/// `inner` (`conv` in MobileNet V2, `block` in V3 and EfficientNet): with its residual
/// connection `x + inner(x)` (stochastic depth on the branch first, EfficientNet), or just
/// `inner(x)` (torchvision then never calls its `stochastic_depth`, which has no weights:
/// left out). Named by [`renumbered`].
fn inverted_residual(
    class: &'static str,
    inner: &str,
    layers: Vec<Node>,
    residual: bool,
    stochastic_depth: bool,
) -> Node {
    let inner = seq(inner, renumbered(layers));
    if !residual {
        return node("", class, Body::Seq(vec![inner]));
    }
    let mut main = vec![inner];
    if stochastic_depth {
        main.push(leaf("stochastic_depth", Op::StochasticDepth));
    }
    node(
        "",
        class,
        Body::Block {
            main,
            merge: Merge::Add {
                shortcut: None,
                relu: false,
                layer_scale: None,
                shortcut_first: false,
                activation: None,
            },
        },
    )
}

/// torchvision's MobileNet V2 (width 1.0): `features` (a stem conv, 17 inverted residuals
/// with ReLU6, a 1×1 conv to 1280), then a functional global average pool and flatten
/// before `classifier`.
fn mobilenet_v2() -> Network {
    // (expansion t, channels c, blocks n, stride s)
    const SETTING: [(u32, u32, u32, u32); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let relu6 = Some(Op::Relu6);
    let mut input = make_divisible(32.0, 8);
    let last = make_divisible(1280.0, 8);
    let mut features = vec![conv_norm_act(3, input, 3, 2, 1, bn, relu6)];
    for (t, c, n, s) in SETTING {
        let out = make_divisible(f64::from(c), 8);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let hidden = input * t;
            let mut layers = Vec::new();
            if t != 1 {
                layers.push(conv_norm_act(input, hidden, 1, 1, 1, bn, relu6));
            }
            layers.push(conv_norm_act(hidden, hidden, 3, stride, hidden, bn, relu6));
            layers.push(leaf("", conv(hidden, out, 1, 1, 0, false)));
            layers.push(leaf("", bn(out)));
            let residual = stride == 1 && input == out;
            features.push(inverted_residual(
                "InvertedResidual",
                "conv",
                layers,
                residual,
                false,
            ));
            input = out;
        }
    }
    features.push(conv_norm_act(input, last, 1, 1, 1, bn, relu6));
    let classifier = seq(
        "classifier",
        numbered(vec![Op::Dropout, linear(last, 1000)]),
    );
    Network {
        family: Family::Mobilenet,
        modules: vec![
            seq("features", renumbered(features)),
            Node {
                global_pool: true,
                ..flattened(classifier)
            },
        ],
    }
}

/// MobileNet V3's BatchNorm: eps 1e-3, momentum 0.01.
fn bn_v3(c: u32) -> Op {
    Op::BatchNorm2d {
        c,
        eps: 1e-3,
        momentum: 0.01,
    }
}

/// torchvision's MobileNet V3, large or small (width 1.0, no dilation, full tail).
fn mobilenet_v3(large: bool) -> Network {
    // (input channels, kernel, expanded channels, output channels, squeeze-and-excitation,
    // Hardswish (else ReLU), stride); every number already a multiple of 8.
    type Bneck = (u32, u32, u32, u32, bool, bool, u32);
    const LARGE: [Bneck; 15] = [
        (16, 3, 16, 16, false, false, 1),
        (16, 3, 64, 24, false, false, 2),
        (24, 3, 72, 24, false, false, 1),
        (24, 5, 72, 40, true, false, 2),
        (40, 5, 120, 40, true, false, 1),
        (40, 5, 120, 40, true, false, 1),
        (40, 3, 240, 80, false, true, 2),
        (80, 3, 200, 80, false, true, 1),
        (80, 3, 184, 80, false, true, 1),
        (80, 3, 184, 80, false, true, 1),
        (80, 3, 480, 112, true, true, 1),
        (112, 3, 672, 112, true, true, 1),
        (112, 5, 672, 160, true, true, 2),
        (160, 5, 960, 160, true, true, 1),
        (160, 5, 960, 160, true, true, 1),
    ];
    const SMALL: [Bneck; 11] = [
        (16, 3, 16, 16, true, false, 2),
        (16, 3, 72, 24, false, false, 2),
        (24, 3, 88, 24, false, false, 1),
        (24, 5, 96, 40, true, true, 2),
        (40, 5, 240, 40, true, true, 1),
        (40, 5, 240, 40, true, true, 1),
        (40, 5, 120, 48, true, true, 1),
        (48, 5, 144, 48, true, true, 1),
        (48, 5, 288, 96, true, true, 2),
        (96, 5, 576, 96, true, true, 1),
        (96, 5, 576, 96, true, true, 1),
    ];
    let (setting, last_channel): (&[Bneck], u32) = if large {
        (&LARGE, 1280)
    } else {
        (&SMALL, 1024)
    };
    let hs = Some(Op::Hardswish);
    let mut features = vec![conv_norm_act(3, setting[0].0, 3, 2, 1, bn_v3, hs)];
    for &(cin, k, exp, cout, se, use_hs, stride) in setting {
        let act = Some(if use_hs { Op::Hardswish } else { Op::Relu });
        let mut layers = Vec::new();
        if exp != cin {
            layers.push(conv_norm_act(cin, exp, 1, 1, 1, bn_v3, act));
        }
        layers.push(conv_norm_act(exp, exp, k, stride, exp, bn_v3, act));
        if se {
            let squeeze = make_divisible(f64::from(exp / 4), 8);
            layers.push(squeeze_excitation(exp, squeeze, Op::Relu, Op::Hardsigmoid));
        }
        layers.push(conv_norm_act(exp, cout, 1, 1, 1, bn_v3, None));
        let residual = stride == 1 && cin == cout;
        features.push(inverted_residual(
            "InvertedResidual",
            "block",
            layers,
            residual,
            false,
        ));
    }
    let last_in = setting[setting.len() - 1].3;
    features.push(conv_norm_act(last_in, 6 * last_in, 1, 1, 1, bn_v3, hs));
    Network {
        family: Family::Mobilenet,
        modules: vec![
            seq("features", renumbered(features)),
            leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
            flattened(seq(
                "classifier",
                numbered(vec![
                    linear(6 * last_in, last_channel),
                    Op::Hardswish,
                    Op::Dropout,
                    linear(last_channel, 1000),
                ]),
            )),
        ],
    }
}

/// torchvision's EfficientNet B0–B3: channels scaled by `width`, blocks per stage by
/// `depth` (B0: 1.0 and 1.0). `features` holds the stem conv, one Sequential of MBConv
/// blocks per stage and a 1×1 conv to four times the last stage's channels.
fn efficientnet(width: f64, depth: f64) -> Network {
    // (expansion, kernel, stride, input channels, output channels, blocks) of B0.
    const SETTING: [(u32, u32, u32, u32, u32, u32); 7] = [
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    ];
    let adjust = |c: u32| make_divisible(f64::from(c) * width, 8);
    let silu = Some(Op::Silu);
    let mut features = vec![conv_norm_act(3, adjust(32), 3, 2, 1, bn, silu)];
    for (expand, k, s, cin, cout, n) in SETTING {
        let (cin, cout) = (adjust(cin), adjust(cout));
        let blocks = (f64::from(n) * depth).ceil() as u32;
        let mut stage = Vec::new();
        for j in 0..blocks {
            let (cin, stride) = if j == 0 { (cin, s) } else { (cout, 1) };
            let expanded = make_divisible(f64::from(cin) * f64::from(expand), 8);
            let mut layers = Vec::new();
            if expanded != cin {
                layers.push(conv_norm_act(cin, expanded, 1, 1, 1, bn, silu));
            }
            layers.push(conv_norm_act(
                expanded, expanded, k, stride, expanded, bn, silu,
            ));
            let squeeze = (cin / 4).max(1);
            layers.push(squeeze_excitation(expanded, squeeze, Op::Silu, Op::Sigmoid));
            layers.push(conv_norm_act(expanded, cout, 1, 1, 1, bn, None));
            let residual = stride == 1 && cin == cout;
            stage.push(inverted_residual("MBConv", "block", layers, residual, true));
        }
        features.push(seq("", renumbered(stage)));
    }
    let last_in = adjust(320);
    features.push(conv_norm_act(last_in, 4 * last_in, 1, 1, 1, bn, silu));
    Network {
        family: Family::Efficientnet,
        modules: vec![
            seq("features", renumbered(features)),
            leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
            flattened(seq(
                "classifier",
                numbered(vec![Op::Dropout, linear(4 * last_in, 1000)]),
            )),
        ],
    }
}

/// torchvision's ConvNeXt with `dim` channels in the first stage (doubling per stage) and
/// `blocks[i]` CNBlocks in stage `i`: `features` holds the patchify stem (4×4 conv, stride
/// 4, LayerNorm2d), the four stages and, between them, a LayerNorm2d and a 2×2 conv of
/// stride 2; `classifier` is LayerNorm2d, `Flatten`, `Linear`.
fn convnext(dim: u32, blocks: [u32; 4]) -> Network {
    let ln2d = |c| Op::LayerNorm2d { c, eps: 1e-6 };
    let stem = node(
        "",
        "Conv2dNormActivation",
        Body::Seq(numbered(vec![conv(3, dim, 4, 4, 0, true), ln2d(dim)])),
    );
    let mut features = vec![stem];
    for (i, &n) in blocks.iter().enumerate() {
        let c = dim << i;
        let stage = (0..n)
            .map(|_| {
                let block = seq(
                    "block",
                    numbered(vec![
                        Op::Conv2d {
                            cin: c,
                            cout: c,
                            k: 7,
                            s: 1,
                            p: 3,
                            groups: c,
                            bias: true,
                        },
                        Op::Permute { to_last: true },
                        Op::LayerNorm { c, eps: 1e-6 },
                        linear(c, 4 * c),
                        Op::Gelu,
                        linear(4 * c, c),
                        Op::Permute { to_last: false },
                    ]),
                );
                node(
                    "",
                    "CNBlock",
                    Body::Block {
                        main: vec![block, leaf("stochastic_depth", Op::StochasticDepth)],
                        merge: Merge::Add {
                            shortcut: None,
                            relu: false,
                            layer_scale: Some(c),
                            shortcut_first: false,
                            activation: None,
                        },
                    },
                )
            })
            .collect();
        features.push(seq("", renumbered(stage)));
        if i < 3 {
            features.push(seq(
                "",
                numbered(vec![ln2d(c), conv(c, 2 * c, 2, 2, 0, true)]),
            ));
        }
    }
    let last = dim << 3;
    Network {
        family: Family::Convnext,
        modules: vec![
            seq("features", renumbered(features)),
            leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
            seq(
                "classifier",
                numbered(vec![ln2d(last), Op::Flatten, linear(last, 1000)]),
            ),
        ],
    }
}

/// torchvision's `Fire(cin, squeeze, e1, e3)`: a 1×1 squeeze conv and its ReLU, then 1×1
/// and 3×3 expand convs with their ReLUs, concatenated. Named by [`renumbered`].
fn fire(cin: u32, squeeze: u32, e1: u32, e3: u32) -> Node {
    node(
        "",
        "Fire",
        Body::Block {
            main: vec![
                leaf("squeeze", conv(cin, squeeze, 1, 1, 0, true)),
                leaf("squeeze_activation", Op::Relu),
            ],
            merge: Merge::Concat {
                branches: vec![
                    vec![
                        leaf("expand1x1", conv(squeeze, e1, 1, 1, 0, true)),
                        leaf("expand1x1_activation", Op::Relu),
                    ],
                    vec![
                        leaf("expand3x3", conv(squeeze, e3, 3, 1, 1, true)),
                        leaf("expand3x3_activation", Op::Relu),
                    ],
                ],
                split: false,
                shuffle: false,
            },
        },
    )
}

/// torchvision's SqueezeNet 1.0, or 1.1 (`v1_1`: a 3×3 stem of 64 channels, pooling after
/// the first and third pairs of Fire modules). The model flattens after `classifier`, its
/// last module, so no cut point sees that.
fn squeezenet(v1_1: bool) -> Network {
    let pool = || {
        leaf(
            "",
            Op::MaxPool2d {
                k: 3,
                s: 2,
                p: 0,
                ceil: true,
            },
        )
    };
    let features = if v1_1 {
        vec![
            leaf("", conv(3, 64, 3, 2, 0, true)),
            leaf("", Op::Relu),
            pool(),
            fire(64, 16, 64, 64),
            fire(128, 16, 64, 64),
            pool(),
            fire(128, 32, 128, 128),
            fire(256, 32, 128, 128),
            pool(),
            fire(256, 48, 192, 192),
            fire(384, 48, 192, 192),
            fire(384, 64, 256, 256),
            fire(512, 64, 256, 256),
        ]
    } else {
        vec![
            leaf("", conv(3, 96, 7, 2, 0, true)),
            leaf("", Op::Relu),
            pool(),
            fire(96, 16, 64, 64),
            fire(128, 16, 64, 64),
            fire(128, 32, 128, 128),
            pool(),
            fire(256, 32, 128, 128),
            fire(256, 48, 192, 192),
            fire(384, 48, 192, 192),
            fire(384, 64, 256, 256),
            pool(),
            fire(512, 64, 256, 256),
        ]
    };
    Network {
        family: Family::Squeezenet,
        modules: vec![
            seq("features", renumbered(features)),
            seq(
                "classifier",
                numbered(vec![
                    Op::Dropout,
                    conv(512, 1000, 1, 1, 0, true),
                    Op::Relu,
                    Op::AdaptiveAvgPool2d(1),
                ]),
            ),
        ],
    }
}

/// torchvision's ShuffleNet V2 with `stages` output channels in `stage2`–`stage4` (4, 8 and 4
/// blocks) and `last` in `conv5`; the model averages over height and width by a function
/// call (`x.mean([2, 3])`) before `fc`. Each block's branches end in half its output
/// channels; the concatenation is channel-shuffled in two groups.
fn shufflenet_v2(stages: [u32; 3], last: u32) -> Network {
    let mut modules = vec![
        seq(
            "conv1",
            numbered(vec![conv(3, 24, 3, 2, 1, false), bn(24), Op::Relu]),
        ),
        leaf(
            "maxpool",
            Op::MaxPool2d {
                k: 3,
                s: 2,
                p: 1,
                ceil: false,
            },
        ),
    ];
    let mut cin = 24;
    for (i, (&out, repeats)) in stages.iter().zip([4, 8, 4]).enumerate() {
        let half = out / 2;
        // 1×1 conv, BN, ReLU, depthwise 3×3 (stride s), BN, 1×1 conv, BN, ReLU.
        let branch2 = |cin: u32, s: u32| {
            numbered(vec![
                conv(cin, half, 1, 1, 0, false),
                bn(half),
                Op::Relu,
                grouped_conv(half, half, 3, s, 1, half),
                bn(half),
                conv(half, half, 1, 1, 0, false),
                bn(half),
                Op::Relu,
            ])
        };
        let block = |branches: Vec<Vec<Node>>, split: bool| {
            node(
                "",
                "InvertedResidual",
                Body::Block {
                    main: Vec::new(),
                    merge: Merge::Concat {
                        branches: branches
                            .into_iter()
                            .zip(["branch1", "branch2"].into_iter().skip(usize::from(split)))
                            .map(|(b, name)| vec![seq(name, b)])
                            .collect(),
                        split,
                        shuffle: true,
                    },
                },
            )
        };
        let branch1 = numbered(vec![
            grouped_conv(cin, cin, 3, 2, 1, cin),
            bn(cin),
            conv(cin, half, 1, 1, 0, false),
            bn(half),
            Op::Relu,
        ]);
        // The first block strides (both branches on the input); the others split it.
        let mut stage = vec![block(vec![branch1, branch2(cin, 2)], false)];
        for _ in 1..repeats {
            stage.push(block(vec![branch2(half, 1)], true));
        }
        modules.push(seq(format!("stage{}", i + 2), renumbered(stage)));
        cin = out;
    }
    modules.push(seq(
        "conv5",
        numbered(vec![conv(cin, last, 1, 1, 0, false), bn(last), Op::Relu]),
    ));
    modules.push(Node {
        global_pool: true,
        ..flattened(leaf("fc", linear(last, 1000)))
    });
    Network {
        family: Family::Shufflenet,
        modules,
    }
}

/// torchvision's RegNet with `stages` (blocks, output channels) as its `BlockParams` compute
/// them (bottleneck multiplier 1), 3×3 convs in groups of `group_width` channels, and
/// squeeze-and-excitation (ratio 0.25 of the block's input) if `se`: a stem, `trunk_output`
/// of `AnyStage`s of `ResBottleneckBlock`s (`proj` shortcut first, then `f`, the sum and
/// `activation`), `avgpool`, `fc`.
fn regnet(stages: [(u32, u32); 4], group_width: u32, se: bool) -> Network {
    let named = |name: &str, n: Node| Node {
        name: name.to_owned(),
        ..n
    };
    let stem = Node {
        class: "SimpleStemIN",
        ..conv_norm_act(3, 32, 3, 2, 1, bn, Some(Op::Relu))
    };
    let mut width_in = 32;
    let mut trunk = Vec::new();
    for (i, &(depth, width)) in stages.iter().enumerate() {
        let blocks = (0..depth)
            .map(|j| {
                let (win, stride) = if j == 0 { (width_in, 2) } else { (width, 1) };
                let groups = width / group_width;
                let mut f = vec![
                    named("a", conv_norm_act(win, width, 1, 1, 1, bn, Some(Op::Relu))),
                    named(
                        "b",
                        conv_norm_act(width, width, 3, stride, groups, bn, Some(Op::Relu)),
                    ),
                ];
                if se {
                    let squeeze = (f64::from(win) * 0.25).round_ties_even() as u32;
                    f.push(named(
                        "se",
                        squeeze_excitation(width, squeeze, Op::Relu, Op::Sigmoid),
                    ));
                }
                f.push(named("c", conv_norm_act(width, width, 1, 1, 1, bn, None)));
                let proj = (win != width || stride != 1).then(|| {
                    Box::new(named(
                        "proj",
                        conv_norm_act(win, width, 1, stride, 1, bn, None),
                    ))
                });
                node(
                    format!("block{}-{j}", i + 1),
                    "ResBottleneckBlock",
                    Body::Block {
                        main: vec![node("f", "BottleneckTransform", Body::Seq(f))],
                        merge: Merge::Add {
                            shortcut: proj,
                            relu: false,
                            layer_scale: None,
                            shortcut_first: true,
                            activation: Some(Box::new(leaf("activation", Op::Relu))),
                        },
                    },
                )
            })
            .collect();
        trunk.push(node(
            format!("block{}", i + 1),
            "AnyStage",
            Body::Seq(blocks),
        ));
        width_in = width;
    }
    Network {
        family: Family::Regnet,
        modules: vec![
            named("stem", stem),
            seq("trunk_output", trunk),
            leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
            flattened(leaf("fc", linear(width_in, 1000))),
        ],
    }
}

/// A shape flowing through the net (batch dimension left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Channels, height, width.
    Map(u32, u32, u32),
    /// Height, width, channels: a map permuted channels-last (inside a ConvNeXt block).
    Last(u32, u32, u32),
    /// A flat feature vector.
    Flat(u32),
    /// A sequence of tokens: length, width (a transformer's [S, D], batch first).
    Tokens(u32, u32),
}

impl Shape {
    fn dims(self) -> Vec<u32> {
        match self {
            Shape::Map(c, h, w) => vec![c, h, w],
            Shape::Last(h, w, c) => vec![h, w, c],
            Shape::Flat(f) => vec![f],
            Shape::Tokens(s, d) => vec![s, d],
        }
    }
}

// ---------------------------------------------------------------------------
// Evaluation.

/// Output of a cut point: its shape, or the path of the first module whose
/// output would be empty.
type Outcome = Result<Shape, String>;

/// Walks the net for a `3×input×input` image and lists every cut point with
/// its outcome, in forward order. With `stop`, the walk ends as soon as that
/// path has been listed (so it is the last entry if it exists).
fn evaluate(arch: Arch, input: u32, stop: Option<&str>) -> Vec<(CutPoint, Outcome)> {
    let mut walk = Walk {
        stop,
        out: Vec::new(),
        done: false,
    };
    // A network of one input size fails at once on another (torchvision asserts it).
    let first = network(arch).modules[0].name.clone();
    let image = match arch.fixed_input_size() {
        Some(n) if n != input => Err(first),
        _ => Ok(Shape::Map(3, input, input)),
    };
    // The model's own output is that of its last top-level cut point,
    // already recorded.
    let _ = walk.sequence(&network(arch).modules, "", 0, image);
    walk.out
}

struct Walk<'a> {
    stop: Option<&'a str>,
    out: Vec<(CutPoint, Outcome)>,
    done: bool,
}

impl Walk<'_> {
    fn sequence(&mut self, nodes: &[Node], prefix: &str, depth: usize, mut x: Outcome) -> Outcome {
        for node in nodes {
            x = self.node(node, prefix, depth, x);
        }
        x
    }

    fn node(&mut self, node: &Node, prefix: &str, depth: usize, x: Outcome) -> Outcome {
        if self.done {
            return x;
        }
        let x = match x {
            Ok(Shape::Map(c, _, _)) if node.global_pool => Ok(Shape::Map(c, 1, 1)),
            x => x,
        };
        let x = match x {
            Ok(Shape::Map(c, h, w)) if node.flatten => Ok(Shape::Flat(c * h * w)),
            x => x,
        };
        let path = join(prefix, &node.name);
        // Reserve a cut point's slot so it precedes its children.
        let slot = node.cut_point.then(|| {
            let cut = CutPoint {
                path: path.clone(),
                module: node.class(),
                depth,
            };
            self.out.push((cut, Ok(Shape::Flat(0))));
            self.out.len() - 1
        });
        let y = match &node.body {
            Body::Leaf(op) => x.and_then(|s| op.apply(s).ok_or_else(|| path.clone())),
            Body::Seq(children) => self.sequence(children, &path, depth + 1, x),
            Body::Residual(branches) => {
                let mut x = x;
                for b in branches {
                    let y = self.sequence(b, &path, depth + 1, x.clone());
                    if self.done {
                        return y;
                    }
                    x = match (x, y) {
                        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                        (Ok(a), Ok(b)) => {
                            debug_assert_eq!(a, b, "residual branch changes the shape at {path}");
                            Ok(b)
                        }
                    };
                }
                x
            }
            Body::Block {
                main,
                merge: Merge::Concat {
                    branches, split, ..
                },
            } => {
                let mut y = self.sequence(main, &path, depth + 1, x);
                let mut channels = 0;
                if *split {
                    // torch.chunk(2): the first half takes the odd channel.
                    if let Ok(Shape::Map(c, h, w)) = y {
                        channels = c.div_ceil(2);
                        y = Ok(Shape::Map(c / 2, h, w));
                    }
                }
                let mut out = Ok(Shape::Flat(0));
                let mut failed = None;
                for b in branches {
                    if self.done {
                        return out;
                    }
                    out = self.sequence(b, &path, depth + 1, y.clone());
                    match &out {
                        Ok(Shape::Map(c, ..)) => channels += c,
                        Err(e) => {
                            failed.get_or_insert(e.clone());
                        }
                        Ok(_) => {}
                    }
                }
                if self.done {
                    return out;
                }
                // The first failure wins, as torchvision runs the branches in order.
                match (failed, out) {
                    (Some(e), _) | (None, Err(e)) => Err(e),
                    (None, Ok(Shape::Map(_, h, w))) => Ok(Shape::Map(channels, h, w)),
                    (None, Ok(other)) => unreachable!("concatenated {other:?} at {path}"),
                }
            }
            Body::Block {
                main,
                merge:
                    Merge::Add {
                        shortcut: Some(sc),
                        shortcut_first: true,
                        activation,
                        ..
                    },
            } => {
                // RegNet: the shortcut first, then the main branch, the sum, the activation.
                let skip = self.node(sc, &path, depth + 1, x.clone());
                if self.done {
                    return skip;
                }
                let y = self.sequence(main, &path, depth + 1, x);
                if self.done {
                    return y;
                }
                let sum = match (skip, y) {
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                    (Ok(a), Ok(b)) => {
                        debug_assert_eq!(a, b, "residual branches disagree at {path}");
                        Ok(b)
                    }
                };
                match activation {
                    Some(act) => self.node(act, &path, depth + 1, sum),
                    None => sum,
                }
            }
            Body::Block { main, merge } => {
                let y = self.sequence(main, &path, depth + 1, x.clone());
                let skip = match merge {
                    // Stopped inside the main branch: the rest is not needed.
                    _ if self.done => return y,
                    Merge::Add {
                        shortcut: Some(sc), ..
                    } => self.node(sc, &path, depth + 1, x),
                    Merge::Add { shortcut: None, .. } | Merge::Scale => x,
                    Merge::Concat { .. } => unreachable!("handled above"),
                };
                // Stopped inside the shortcut (CLIP's `downsample.-1` pools before its conv,
                // so its output's channels are the block input's).
                if self.done {
                    return skip;
                }
                // Both branches must agree (a gate's [C, 1, 1] broadcasts over the input);
                // the main branch's first failure wins, as it runs first in torchvision.
                let sum = match (y, skip) {
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                    (Ok(a), Ok(b)) => {
                        if let Merge::Scale = merge {
                            debug_assert!(
                                matches!((a, b), (Shape::Map(c, 1, 1), Shape::Map(d, ..)) if c == d),
                                "gate and input disagree at {path}"
                            );
                        } else {
                            debug_assert_eq!(a, b, "residual branches disagree at {path}");
                        }
                        Ok(b)
                    }
                };
                match merge {
                    Merge::Add {
                        activation: Some(act),
                        ..
                    } => self.node(act, &path, depth + 1, sum),
                    _ => sum,
                }
            }
        };
        if let Some(slot) = slot {
            self.out[slot].1 = y.clone();
            if self.stop == Some(path.as_str()) {
                self.out.truncate(slot + 1);
                self.done = true;
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Golden data recorded from torchvision by `scripts/catalog_shapes.py`.
    fn fixture(arch: Arch) -> &'static str {
        match arch {
            Arch::Resnet18 => include_str!("../../tests/fixtures/catalog/resnet18.txt"),
            Arch::Resnet34 => include_str!("../../tests/fixtures/catalog/resnet34.txt"),
            Arch::Resnet50 => include_str!("../../tests/fixtures/catalog/resnet50.txt"),
            Arch::Resnet101 => include_str!("../../tests/fixtures/catalog/resnet101.txt"),
            Arch::Resnet152 => include_str!("../../tests/fixtures/catalog/resnet152.txt"),
            Arch::Resnext50x32x4d => {
                include_str!("../../tests/fixtures/catalog/resnext50_32x4d.txt")
            }
            Arch::Resnext101x32x8d => {
                include_str!("../../tests/fixtures/catalog/resnext101_32x8d.txt")
            }
            Arch::Resnext101x64x4d => {
                include_str!("../../tests/fixtures/catalog/resnext101_64x4d.txt")
            }
            Arch::WideResnet50x2 => {
                include_str!("../../tests/fixtures/catalog/wide_resnet50_2.txt")
            }
            Arch::WideResnet101x2 => {
                include_str!("../../tests/fixtures/catalog/wide_resnet101_2.txt")
            }
            Arch::Vgg11 => include_str!("../../tests/fixtures/catalog/vgg11.txt"),
            Arch::Vgg13 => include_str!("../../tests/fixtures/catalog/vgg13.txt"),
            Arch::Vgg16 => include_str!("../../tests/fixtures/catalog/vgg16.txt"),
            Arch::Vgg19 => include_str!("../../tests/fixtures/catalog/vgg19.txt"),
            Arch::Vgg11Bn => include_str!("../../tests/fixtures/catalog/vgg11_bn.txt"),
            Arch::Vgg13Bn => include_str!("../../tests/fixtures/catalog/vgg13_bn.txt"),
            Arch::Vgg16Bn => include_str!("../../tests/fixtures/catalog/vgg16_bn.txt"),
            Arch::Vgg19Bn => include_str!("../../tests/fixtures/catalog/vgg19_bn.txt"),
            Arch::Alexnet => include_str!("../../tests/fixtures/catalog/alexnet.txt"),
            Arch::MobilenetV2 => include_str!("../../tests/fixtures/catalog/mobilenet_v2.txt"),
            Arch::MobilenetV3Small => {
                include_str!("../../tests/fixtures/catalog/mobilenet_v3_small.txt")
            }
            Arch::MobilenetV3Large => {
                include_str!("../../tests/fixtures/catalog/mobilenet_v3_large.txt")
            }
            Arch::EfficientnetB0 => {
                include_str!("../../tests/fixtures/catalog/efficientnet_b0.txt")
            }
            Arch::EfficientnetB1 => {
                include_str!("../../tests/fixtures/catalog/efficientnet_b1.txt")
            }
            Arch::EfficientnetB2 => {
                include_str!("../../tests/fixtures/catalog/efficientnet_b2.txt")
            }
            Arch::EfficientnetB3 => {
                include_str!("../../tests/fixtures/catalog/efficientnet_b3.txt")
            }
            Arch::ConvnextTiny => include_str!("../../tests/fixtures/catalog/convnext_tiny.txt"),
            Arch::ConvnextSmall => {
                include_str!("../../tests/fixtures/catalog/convnext_small.txt")
            }
            Arch::ConvnextBase => include_str!("../../tests/fixtures/catalog/convnext_base.txt"),
            Arch::Squeezenet1x0 => include_str!("../../tests/fixtures/catalog/squeezenet1_0.txt"),
            Arch::Squeezenet1x1 => include_str!("../../tests/fixtures/catalog/squeezenet1_1.txt"),
            Arch::ShufflenetV2X0x5 => {
                include_str!("../../tests/fixtures/catalog/shufflenet_v2_x0_5.txt")
            }
            Arch::ShufflenetV2X1x0 => {
                include_str!("../../tests/fixtures/catalog/shufflenet_v2_x1_0.txt")
            }
            Arch::ShufflenetV2X1x5 => {
                include_str!("../../tests/fixtures/catalog/shufflenet_v2_x1_5.txt")
            }
            Arch::ShufflenetV2X2x0 => {
                include_str!("../../tests/fixtures/catalog/shufflenet_v2_x2_0.txt")
            }
            Arch::RegnetYx400mf => include_str!("../../tests/fixtures/catalog/regnet_y_400mf.txt"),
            Arch::RegnetXx400mf => include_str!("../../tests/fixtures/catalog/regnet_x_400mf.txt"),
            Arch::VitBx16 => include_str!("../../tests/fixtures/catalog/vit_b_16.txt"),
            Arch::VitBx32 => include_str!("../../tests/fixtures/catalog/vit_b_32.txt"),
            Arch::VitLx16 => include_str!("../../tests/fixtures/catalog/vit_l_16.txt"),
            Arch::ClipRn50 => include_str!("../../tests/fixtures/catalog/clip_rn50.txt"),
            Arch::ClipVitBx32 => include_str!("../../tests/fixtures/catalog/clip_vit_b_32.txt"),
            Arch::ClipVitBx16 => include_str!("../../tests/fixtures/catalog/clip_vit_b_16.txt"),
            Arch::Dinov2Vits14 => include_str!("../../tests/fixtures/catalog/dinov2_vits14.txt"),
            Arch::Dinov2Vitb14 => include_str!("../../tests/fixtures/catalog/dinov2_vitb14.txt"),
            Arch::Dinov2Vits14Reg => {
                include_str!("../../tests/fixtures/catalog/dinov2_vits14_reg.txt")
            }
            Arch::Dinov2Vitb14Reg => {
                include_str!("../../tests/fixtures/catalog/dinov2_vitb14_reg.txt")
            }
            Arch::SwinT => include_str!("../../tests/fixtures/catalog/swin_t.txt"),
            Arch::SwinS => include_str!("../../tests/fixtures/catalog/swin_s.txt"),
        }
    }

    struct Golden {
        /// size -> [(path, class, shape)] in forward order.
        shapes: BTreeMap<u32, Vec<(String, String, Vec<u32>)>>,
        /// Run-length encoded minimum input sizes: (first path, N).
        mins: Vec<(String, u32)>,
    }

    fn golden(arch: Arch) -> Golden {
        let mut g = Golden {
            shapes: BTreeMap::new(),
            mins: Vec::new(),
        };
        for line in fixture(arch)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f[0] == "min" {
                assert_eq!(f.len(), 3, "{line}");
                g.mins.push((f[1].to_string(), f[2].parse().unwrap()));
            } else {
                assert_eq!(f.len(), 4, "{line}");
                let dims = f[3].split('x').map(|d| d.parse().unwrap()).collect();
                g.shapes.entry(f[0].parse().unwrap()).or_default().push((
                    f[1].to_string(),
                    f[2].to_string(),
                    dims,
                ));
            }
        }
        assert!(
            !g.shapes.is_empty() && !g.mins.is_empty(),
            "{arch}: empty fixture"
        );
        g
    }

    #[test]
    fn matches_torchvision_paths_classes_and_shapes() {
        let mut checked = 0;
        for &arch in Arch::ALL {
            let g = golden(arch);
            let cuts = cut_points(arch);
            for (&size, lines) in &g.shapes {
                // torchvision's hooks see every catalog cut point: the only
                // modules they report but we drop are the block-internal
                // relus, which the script already skips (called twice or
                // three times per forward). So the lists must be identical.
                let ours: Vec<(&str, &str)> =
                    cuts.iter().map(|c| (c.path.as_str(), c.module)).collect();
                let theirs: Vec<(&str, &str)> = lines
                    .iter()
                    .map(|(p, c, _)| (p.as_str(), c.as_str()))
                    .collect();
                assert_eq!(ours, theirs, "{arch} @{size}: cut points differ");
                for (path, _, dims) in lines {
                    assert_eq!(
                        output_shape(arch, path, size).as_ref(),
                        Ok(dims),
                        "{arch} {path} @{size}"
                    );
                    checked += 1;
                }
            }
        }
        eprintln!("checked {checked} golden shapes");
        assert!(checked > 4000);
    }

    #[test]
    fn min_input_sizes_match_torchvision() {
        for &arch in Arch::ALL {
            let mins = golden(arch).mins;
            let mut it = mins.iter().peekable();
            let mut current = None;
            for cut in cut_points(arch) {
                if let Some((_, n)) = it.next_if(|(p, _)| *p == cut.path) {
                    current = Some(*n);
                }
                let n =
                    current.unwrap_or_else(|| panic!("{arch}: no min line before {}", cut.path));
                assert_eq!(
                    min_input_size(arch, &cut.path),
                    Some(n),
                    "{arch} {}",
                    cut.path
                );
                assert!(output_shape(arch, &cut.path, n).is_ok());
                if n > 1 {
                    match output_shape(arch, &cut.path, n - 1) {
                        Err(ShapeError::TooSmall { min_input, .. }) => assert_eq!(min_input, n),
                        Err(ShapeError::WrongSize { size }) => {
                            assert_eq!(arch.fixed_input_size(), Some(size));
                            assert_eq!(size, n);
                            assert_eq!(
                                output_shape(arch, &cut.path, n + 1),
                                Err(ShapeError::WrongSize { size })
                            );
                        }
                        other => panic!("{arch} {} @{}: {other:?}", cut.path, n - 1),
                    }
                }
            }
            assert!(
                it.next().is_none(),
                "{arch}: unused min lines (order differs?)"
            );
        }
    }

    #[test]
    fn unknown_layer() {
        assert_eq!(
            output_shape(Arch::Resnet50, "layer5", 224),
            Err(ShapeError::UnknownLayer)
        );
        assert_eq!(
            output_shape(Arch::Resnet50, "layer1.0.relu", 224),
            Err(ShapeError::UnknownLayer)
        );
        assert_eq!(
            output_shape(Arch::Vgg16, "features.31", 224),
            Err(ShapeError::UnknownLayer)
        );
        assert_eq!(
            output_shape(Arch::Vgg16, "", 224),
            Err(ShapeError::UnknownLayer)
        );
        assert_eq!(min_input_size(Arch::Alexnet, "fc"), None);
        assert_eq!(find(Arch::Resnet18, "layer1.0.conv3"), None);
    }

    #[test]
    fn too_small() {
        let err = output_shape(Arch::Alexnet, "classifier", 40).unwrap_err();
        let ShapeError::TooSmall { module, min_input } = err else {
            panic!("{err:?}")
        };
        assert_eq!(module, "features.12");
        assert_eq!(min_input, 63);
        assert!(output_shape(Arch::Alexnet, "classifier", min_input).is_ok());
        assert!(output_shape(Arch::Alexnet, "classifier", min_input - 1).is_err());
        // vgg: five 2x2 pools need 32; the 4th pool needs 16.
        assert_eq!(min_input_size(Arch::Vgg16, "fc"), None);
        assert_eq!(min_input_size(Arch::Vgg16, "features"), Some(32));
        assert_eq!(min_input_size(Arch::Vgg16, "features.23"), Some(16));
        match output_shape(Arch::Vgg16Bn, "avgpool", 31) {
            Err(ShapeError::TooSmall {
                module,
                min_input: 32,
            }) => assert_eq!(module, "features.43"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            output_shape(Arch::Vgg16, "features.0", 0).unwrap_err(),
            ShapeError::TooSmall {
                module: "features.0".into(),
                min_input: 1
            }
        );
    }

    #[test]
    fn known_shapes() {
        assert_eq!(
            output_shape(Arch::Resnet50, "layer2", 224),
            Ok(vec![512, 28, 28])
        );
        assert_eq!(
            output_shape(Arch::Resnet50, "layer4.0.downsample.0", 224),
            Ok(vec![2048, 7, 7])
        );
        assert_eq!(
            output_shape(Arch::Resnet50, "avgpool", 224),
            Ok(vec![2048, 1, 1])
        );
        assert_eq!(output_shape(Arch::Resnet18, "fc", 97), Ok(vec![1000]));
        assert_eq!(
            output_shape(Arch::Vgg19, "avgpool", 64),
            Ok(vec![512, 7, 7])
        );
        assert_eq!(
            output_shape(Arch::Alexnet, "classifier.4", 224),
            Ok(vec![4096])
        );
    }

    #[test]
    fn one_description_serves_cuts_and_builders() {
        let r50 = network(Arch::Resnet50);
        assert_eq!(r50.family, Family::Resnet);
        assert_eq!(family(Arch::Vgg16Bn), Family::Vgg);
        assert_eq!(family(Arch::Alexnet), Family::Alexnet);
        // The block-internal relu is in the tree but is no cut point.
        assert!(r50.up_to("layer1.0.relu").is_none());
        assert!(r50.up_to("layer5").is_none() && r50.up_to("conv1.weight").is_none());
        let names = |nodes: &[Node]| nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
        let block = |nodes: &[Node]| match &nodes.last().unwrap().body {
            Body::Seq(layer) => match layer.last().unwrap() {
                Node {
                    class,
                    body:
                        Body::Block {
                            main,
                            merge: Merge::Add { shortcut, relu, .. },
                        },
                    ..
                } => {
                    assert!(relu);
                    (*class, names(main), shortcut.is_some())
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        // Cut inside the main branch: the branch up to the cut, no downsample.
        let nodes = r50.up_to("layer4.0.conv2").unwrap();
        assert_eq!(names(&nodes)[7], "layer4");
        assert_eq!(
            block(&nodes),
            (
                "Bottleneck",
                vec!["conv1".into(), "bn1".into(), "relu".into(), "conv2".into()],
                false
            )
        );
        // Cut inside the downsample: the whole main branch runs first.
        let nodes = r50.up_to("layer4.0.downsample.0").unwrap();
        let (_, main, ds) = block(&nodes);
        assert_eq!((main.len(), ds), (8, true));
        // A cut point's module comes whole.
        let nodes = network(Arch::Vgg16).up_to("classifier").unwrap();
        assert_eq!(names(&nodes), ["features", "avgpool", "classifier"]);
        assert!(nodes[2].flatten);
        assert!(matches!(&nodes[2].body, Body::Seq(c) if c.len() == 7));
        let fc = network(Arch::Resnet18).modules.last().unwrap();
        assert!(fc.flatten);
        assert!(matches!(
            fc.body,
            Body::Leaf(Op::Linear {
                fin: 512,
                fout: 1000
            })
        ));
    }

    #[test]
    fn top_level_and_lookup() {
        assert_eq!(
            top_level(Arch::Resnet50),
            [
                "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                "avgpool", "fc"
            ]
        );
        for &arch in Arch::ALL {
            let tops: Vec<String> = cut_points(arch)
                .into_iter()
                .filter(|c| c.depth == 0)
                .map(|c| c.path)
                .collect();
            assert_eq!(tops, top_level(arch), "{arch}");
            for cut in cut_points(arch) {
                assert_eq!(cut.depth, cut.path.matches('.').count());
                assert_eq!(find(arch, &cut.path), Some(cut));
            }
            assert_eq!(Arch::from_name(arch.name()), Some(arch));
            assert_eq!(arch.default_input_size(), 224);
        }
        assert_eq!(Arch::from_name("ResNet50"), None);
        assert!(Arch::Vgg16Bn.has_batchnorm() && Arch::Resnet18.has_batchnorm());
        assert!(!Arch::Vgg16.has_batchnorm() && !Arch::Alexnet.has_batchnorm());
        let l40 = find(Arch::Resnet50, "layer4.0").unwrap();
        assert_eq!((l40.module, l40.depth), ("Bottleneck", 1));
    }
}
