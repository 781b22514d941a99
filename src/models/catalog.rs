//! Pure-data catalog of torchvision architectures (no libtorch needed).
//!
//! For every supported architecture the catalog knows each cut point — a
//! module path exactly as torchvision's `named_modules()` spells it, such as
//! `layer2`, `layer4.0.conv2`, `features.16` or `classifier.4` — in forward
//! order, and computes the shape of that module's output for a square
//! `3×N×N` input with PyTorch's own arithmetic.
//!
//! Cutting "after" a module means taking that module's output. Inside a
//! ResNet block, cutting after e.g. `layer4.0.conv2` runs the block's main
//! branch up to and including `conv2`. The `relu` inside BasicBlock and
//! Bottleneck is not a cut point: torchvision applies that one module several
//! times per block, so a cut after it would be ambiguous. Shapes are given
//! without the batch dimension.
//!
//! The nets are described as small trees of operations; the golden files in
//! `tests/fixtures/catalog/` (written by `scripts/catalog_shapes.py` from
//! torchvision itself) check every path, class and shape.

use std::fmt;

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
}

impl Arch {
    /// Every architecture, in declaration order.
    pub const ALL: &'static [Arch] = &[
        Arch::Resnet18,
        Arch::Resnet34,
        Arch::Resnet50,
        Arch::Resnet101,
        Arch::Resnet152,
        Arch::Vgg11,
        Arch::Vgg13,
        Arch::Vgg16,
        Arch::Vgg19,
        Arch::Vgg11Bn,
        Arch::Vgg13Bn,
        Arch::Vgg16Bn,
        Arch::Vgg19Bn,
        Arch::Alexnet,
    ];

    /// The torchvision constructor name, e.g. `"resnet50"`, `"vgg16_bn"`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Resnet34 => "resnet34",
            Arch::Resnet50 => "resnet50",
            Arch::Resnet101 => "resnet101",
            Arch::Resnet152 => "resnet152",
            Arch::Vgg11 => "vgg11",
            Arch::Vgg13 => "vgg13",
            Arch::Vgg16 => "vgg16",
            Arch::Vgg19 => "vgg19",
            Arch::Vgg11Bn => "vgg11_bn",
            Arch::Vgg13Bn => "vgg13_bn",
            Arch::Vgg16Bn => "vgg16_bn",
            Arch::Vgg19Bn => "vgg19_bn",
            Arch::Alexnet => "alexnet",
        }
    }

    /// Looks an architecture up by its exact (lowercase) torchvision name.
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Whether the network contains BatchNorm layers (all ResNets and the
    /// `_bn` VGGs).
    pub fn has_batchnorm(self) -> bool {
        !matches!(
            self,
            Arch::Vgg11 | Arch::Vgg13 | Arch::Vgg16 | Arch::Vgg19 | Arch::Alexnet
        )
    }

    /// The input size the network was trained at (224 for all of them).
    pub fn default_input_size(self) -> u32 {
        224
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
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::UnknownLayer => f.write_str("unknown layer"),
            ShapeError::TooSmall { module, min_input } => write!(
                f,
                "input too small: output of `{module}` would be empty (needs an input of at least {min_input}x{min_input})"
            ),
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
    match family(arch) {
        Family::Resnet(..) => vec![
            "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool",
            "fc",
        ],
        Family::Vgg(..) | Family::Alexnet => vec!["features", "avgpool", "classifier"],
    }
}

/// Finds the cut point with exactly this path.
pub fn find(arch: Arch, path: &str) -> Option<CutPoint> {
    cut_points(arch).into_iter().find(|c| c.path == path)
}

/// Output shape (without batch dimension) of the module at `path` for a
/// `3×input×input` image, e.g. resnet50 `layer2` at 224 gives `[512, 28, 28]`.
pub fn output_shape(arch: Arch, path: &str, input: u32) -> Result<Vec<u32>, ShapeError> {
    match shape_at(arch, path, input)? {
        Ok(shape) => Ok(shape),
        Err(module) => Err(ShapeError::TooSmall {
            module,
            min_input: min_input_size(arch, path).unwrap_or(u32::MAX),
        }),
    }
}

/// Smallest input size for which cutting after `path` works; `None` if the
/// path names no cut point.
pub fn min_input_size(arch: Arch, path: &str) -> Option<u32> {
    let works = |n: u32| matches!(shape_at(arch, path, n), Ok(Ok(_)));
    if shape_at(arch, path, 1).is_err() {
        return None;
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

/// A shape flowing through the net (batch dimension left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Channels, height, width.
    Map(u32, u32, u32),
    /// A flat feature vector.
    Flat(u32),
}

impl Shape {
    fn dims(self) -> Vec<u32> {
        match self {
            Shape::Map(c, h, w) => vec![c, h, w],
            Shape::Flat(f) => vec![f],
        }
    }
}

/// What a leaf module does to its input's shape.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Conv2d with `out` channels, square kernel/stride/padding, dilation 1.
    Conv { out: u32, k: u32, s: u32, p: u32 },
    /// MaxPool2d, ceil_mode=False, dilation 1.
    MaxPool { k: u32, s: u32, p: u32 },
    /// AdaptiveAvgPool2d to a square output.
    Adaptive(u32),
    /// Linear with `out` features (on an already flattened input).
    Linear(u32),
    /// Shape-preserving: BatchNorm2d, ReLU, Dropout.
    Same,
}

impl Op {
    /// The output shape, or `None` if it would be empty.
    fn apply(self, x: Shape) -> Option<Shape> {
        // floor((n + 2p - (k - 1) - 1) / s) + 1, computed without underflow.
        let window = |n: u32, k: u32, s: u32, p: u32| (n + 2 * p).checked_sub(k).map(|m| m / s + 1);
        match (self, x) {
            (Op::Same, x) => Some(x),
            (Op::Linear(out), Shape::Flat(_)) => Some(Shape::Flat(out)),
            (Op::Conv { out, k, s, p }, Shape::Map(_, h, w)) => {
                Some(Shape::Map(out, window(h, k, s, p)?, window(w, k, s, p)?))
            }
            (Op::MaxPool { k, s, p }, Shape::Map(c, h, w)) => {
                Some(Shape::Map(c, window(h, k, s, p)?, window(w, k, s, p)?))
            }
            (Op::Adaptive(o), Shape::Map(c, _, _)) => Some(Shape::Map(c, o, o)),
            (Op::Linear(_), Shape::Map(..)) => unreachable!("Linear on an unflattened input"),
            (_, Shape::Flat(_)) => unreachable!("spatial op on a flat input"),
        }
    }

    fn class(self) -> &'static str {
        match self {
            Op::Conv { .. } => "Conv2d",
            Op::MaxPool { .. } => "MaxPool2d",
            Op::Adaptive(_) => "AdaptiveAvgPool2d",
            Op::Linear(_) => "Linear",
            Op::Same => unreachable!("shape-preserving leaves carry their own class"),
        }
    }
}

/// A module of the tree.
#[derive(Debug)]
struct Node {
    /// Local name (last path component).
    name: String,
    /// torchvision class.
    class: &'static str,
    /// Whether the model calls `torch.flatten(x, 1)` right before this module
    /// (`fc` in ResNets, `classifier` in VGG and AlexNet).
    flatten: bool,
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// A leaf module.
    Leaf(Op),
    /// Children applied one after the other (Sequential, or the model itself).
    Seq(Vec<Node>),
    /// A residual block: `main` children in sequence, `downsample` applied to
    /// the block input; the block output has the main branch's shape.
    Block {
        main: Vec<Node>,
        downsample: Option<Box<Node>>,
    },
}

fn leaf(name: impl Into<String>, op: Op) -> Node {
    Node {
        name: name.into(),
        class: op.class(),
        flatten: false,
        body: Body::Leaf(op),
    }
}

fn same(name: impl Into<String>, class: &'static str) -> Node {
    Node {
        name: name.into(),
        class,
        flatten: false,
        body: Body::Leaf(Op::Same),
    }
}

fn seq(name: impl Into<String>, children: Vec<Node>) -> Node {
    Node {
        name: name.into(),
        class: "Sequential",
        flatten: false,
        body: Body::Seq(children),
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
fn numbered(children: Vec<(Op, &'static str)>) -> Vec<Node> {
    children
        .into_iter()
        .enumerate()
        .map(|(i, (op, class))| match op {
            Op::Same => same(i.to_string(), class),
            op => leaf(i.to_string(), op),
        })
        .collect()
}

fn conv(out: u32, k: u32, s: u32, p: u32) -> Op {
    Op::Conv { out, k, s, p }
}

enum Family {
    /// Bottleneck blocks?, blocks per layer.
    Resnet(bool, [usize; 4]),
    /// Channel configuration (0 = max pool), batch norm?
    Vgg(&'static [u32], bool),
    Alexnet,
}

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

fn family(arch: Arch) -> Family {
    match arch {
        Arch::Resnet18 => Family::Resnet(false, [2, 2, 2, 2]),
        Arch::Resnet34 => Family::Resnet(false, [3, 4, 6, 3]),
        Arch::Resnet50 => Family::Resnet(true, [3, 4, 6, 3]),
        Arch::Resnet101 => Family::Resnet(true, [3, 4, 23, 3]),
        Arch::Resnet152 => Family::Resnet(true, [3, 8, 36, 3]),
        Arch::Vgg11 => Family::Vgg(VGG_A, false),
        Arch::Vgg13 => Family::Vgg(VGG_B, false),
        Arch::Vgg16 => Family::Vgg(VGG_D, false),
        Arch::Vgg19 => Family::Vgg(VGG_E, false),
        Arch::Vgg11Bn => Family::Vgg(VGG_A, true),
        Arch::Vgg13Bn => Family::Vgg(VGG_B, true),
        Arch::Vgg16Bn => Family::Vgg(VGG_D, true),
        Arch::Vgg19Bn => Family::Vgg(VGG_E, true),
        Arch::Alexnet => Family::Alexnet,
    }
}

/// The top-level modules of `arch` as a tree.
fn network(arch: Arch) -> Vec<Node> {
    match family(arch) {
        Family::Resnet(bottleneck, blocks) => resnet(bottleneck, blocks),
        Family::Vgg(cfg, bn) => {
            let mut features = Vec::new();
            for &c in cfg {
                if c == 0 {
                    features.push((Op::MaxPool { k: 2, s: 2, p: 0 }, "MaxPool2d"));
                } else {
                    features.push((conv(c, 3, 1, 1), "Conv2d"));
                    if bn {
                        features.push((Op::Same, "BatchNorm2d"));
                    }
                    features.push((Op::Same, "ReLU"));
                }
            }
            vec![
                seq("features", numbered(features)),
                leaf("avgpool", Op::Adaptive(7)),
                flattened(seq("classifier", numbered(classifier(false)))),
            ]
        }
        Family::Alexnet => {
            let pool = (Op::MaxPool { k: 3, s: 2, p: 0 }, "MaxPool2d");
            let relu = (Op::Same, "ReLU");
            let features = vec![
                (conv(64, 11, 4, 2), "Conv2d"),
                relu,
                pool,
                (conv(192, 5, 1, 2), "Conv2d"),
                relu,
                pool,
                (conv(384, 3, 1, 1), "Conv2d"),
                relu,
                (conv(256, 3, 1, 1), "Conv2d"),
                relu,
                (conv(256, 3, 1, 1), "Conv2d"),
                relu,
                pool,
            ];
            vec![
                seq("features", numbered(features)),
                leaf("avgpool", Op::Adaptive(6)),
                flattened(seq("classifier", numbered(classifier(true)))),
            ]
        }
    }
}

/// The classifier head: VGG is Linear, ReLU, Dropout, Linear, ReLU, Dropout,
/// Linear; AlexNet puts each Dropout before its Linear instead.
fn classifier(alexnet: bool) -> Vec<(Op, &'static str)> {
    let (relu, drop) = ((Op::Same, "ReLU"), (Op::Same, "Dropout"));
    let lin = |n| (Op::Linear(n), "Linear");
    if alexnet {
        vec![drop, lin(4096), relu, drop, lin(4096), relu, lin(1000)]
    } else {
        vec![lin(4096), relu, drop, lin(4096), relu, drop, lin(1000)]
    }
}

fn resnet(bottleneck: bool, blocks: [usize; 4]) -> Vec<Node> {
    let expansion = if bottleneck { 4 } else { 1 };
    let mut nodes = vec![
        leaf("conv1", conv(64, 7, 2, 3)),
        same("bn1", "BatchNorm2d"),
        same("relu", "ReLU"),
        leaf("maxpool", Op::MaxPool { k: 3, s: 2, p: 1 }),
    ];
    let mut inplanes = 64;
    for (l, &count) in blocks.iter().enumerate() {
        let planes = 64 << l;
        let mut layer = Vec::new();
        for b in 0..count {
            let stride = if l > 0 && b == 0 { 2 } else { 1 };
            let out = planes * expansion;
            // torchvision's main branch (the block-internal relu is left out).
            let convs = if bottleneck {
                vec![
                    conv(planes, 1, 1, 0),
                    conv(planes, 3, stride, 1),
                    conv(out, 1, 1, 0),
                ]
            } else {
                vec![conv(planes, 3, stride, 1), conv(planes, 3, 1, 1)]
            };
            let mut main = Vec::new();
            for (i, op) in convs.into_iter().enumerate() {
                main.push(leaf(format!("conv{}", i + 1), op));
                main.push(same(format!("bn{}", i + 1), "BatchNorm2d"));
            }
            let downsample = (stride != 1 || inplanes != out).then(|| {
                Box::new(seq(
                    "downsample",
                    vec![leaf("0", conv(out, 1, stride, 0)), same("1", "BatchNorm2d")],
                ))
            });
            inplanes = out;
            layer.push(Node {
                name: b.to_string(),
                class: if bottleneck {
                    "Bottleneck"
                } else {
                    "BasicBlock"
                },
                flatten: false,
                body: Body::Block { main, downsample },
            });
        }
        nodes.push(seq(format!("layer{}", l + 1), layer));
    }
    nodes.push(leaf("avgpool", Op::Adaptive(1)));
    nodes.push(flattened(leaf("fc", Op::Linear(1000))));
    nodes
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
    // The model's own output is that of its last top-level cut point,
    // already recorded.
    let _ = walk.sequence(&network(arch), "", 0, Ok(Shape::Map(3, input, input)));
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
            Ok(Shape::Map(c, h, w)) if node.flatten => Ok(Shape::Flat(c * h * w)),
            x => x,
        };
        let path = if prefix.is_empty() {
            node.name.clone()
        } else {
            format!("{prefix}.{}", node.name)
        };
        // Reserve this node's slot so it precedes its children.
        let slot = self.out.len();
        let cut = CutPoint {
            path: path.clone(),
            module: node.class,
            depth,
        };
        self.out.push((cut, Ok(Shape::Flat(0))));
        let y = match &node.body {
            Body::Leaf(op) => x.and_then(|s| op.apply(s).ok_or_else(|| path.clone())),
            Body::Seq(children) => self.sequence(children, &path, depth + 1, x),
            Body::Block { main, downsample } => {
                let y = self.sequence(main, &path, depth + 1, x.clone());
                match downsample {
                    // Stopped inside the main branch: the rest is not needed.
                    Some(_) if self.done => y,
                    Some(ds) => {
                        let skip = self.node(ds, &path, depth + 1, x);
                        // Both branches must agree; the main branch's first
                        // failure wins, as it runs first in torchvision.
                        match (y, skip) {
                            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                            (Ok(a), Ok(b)) => {
                                debug_assert_eq!(a, b, "residual branches disagree at {path}");
                                Ok(a)
                            }
                        }
                    }
                    None => y,
                }
            }
        };
        self.out[slot].1 = y.clone();
        if self.stop == Some(path.as_str()) {
            self.out.truncate(slot + 1);
            self.done = true;
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
            Arch::Vgg11 => include_str!("../../tests/fixtures/catalog/vgg11.txt"),
            Arch::Vgg13 => include_str!("../../tests/fixtures/catalog/vgg13.txt"),
            Arch::Vgg16 => include_str!("../../tests/fixtures/catalog/vgg16.txt"),
            Arch::Vgg19 => include_str!("../../tests/fixtures/catalog/vgg19.txt"),
            Arch::Vgg11Bn => include_str!("../../tests/fixtures/catalog/vgg11_bn.txt"),
            Arch::Vgg13Bn => include_str!("../../tests/fixtures/catalog/vgg13_bn.txt"),
            Arch::Vgg16Bn => include_str!("../../tests/fixtures/catalog/vgg16_bn.txt"),
            Arch::Vgg19Bn => include_str!("../../tests/fixtures/catalog/vgg19_bn.txt"),
            Arch::Alexnet => include_str!("../../tests/fixtures/catalog/alexnet.txt"),
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
