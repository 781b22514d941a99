//! torchvision's DenseNets, GoogLeNet, Inception v3 and EfficientNet V2-S, described with the
//! catalog's building blocks.
//!
//! Both use functional calls torchvision's hooks never see: DenseNet's `F.relu` before its
//! classifier and GoogLeNet's `F.relu` at the end of every `BasicConv2d`. Each is a leaf
//! that is no cut point (named `relu`, which no torchvision module is called here), so the
//! module before it is cut before the ReLU, and the module around it (`conv1`, a
//! `BasicConv2d`) after it, exactly as a forward hook on that module sees it.

use super::{
    conv_norm_act, flattened, inverted_residual, leaf, linear, make_divisible, node, renumbered,
    seq, squeeze_excitation, Body, Family, Merge, Network, Node, Op,
};

/// A functional ReLU (`F.relu`): computed, but no module and so no cut point.
fn functional_relu() -> Node {
    Node {
        cut_point: false,
        ..leaf("relu", Op::Relu)
    }
}

/// `Conv2d(cin, cout, k, stride=s, padding=p, bias=False)`.
fn conv(cin: u32, cout: u32, k: u32, s: u32, p: u32) -> Op {
    Op::Conv2d {
        cin,
        cout,
        k,
        s,
        p,
        groups: 1,
        bias: false,
    }
}

/// `BatchNorm2d(c)` with torchvision's defaults.
fn bn(c: u32) -> Op {
    Op::BatchNorm2d {
        c,
        eps: 1e-5,
        momentum: 0.1,
    }
}

fn max_pool(k: u32, s: u32, p: u32, ceil: bool) -> Op {
    Op::MaxPool2d { k, s, p, ceil }
}

/// torchvision's DenseNet-BC: growth rate `growth` (32), `blocks[i]` dense layers in
/// `denseblock{i+1}` (121: 6, 12, 24, 16; 169: 6, 12, 32, 32), 64 channels from the stem, a
/// bottleneck of 4 × `growth` channels in every layer, transitions halving the channels and
/// the resolution. The model applies `F.relu`, a global average pool and the flattening as
/// functions between `features` (ending in `norm5`) and `classifier`.
pub(super) fn densenet(growth: u32, blocks: [u32; 4]) -> Network {
    let mut features = vec![
        leaf("conv0", conv(3, 64, 7, 2, 3)),
        leaf("norm0", bn(64)),
        leaf("relu0", Op::Relu),
        leaf("pool0", max_pool(3, 2, 1, false)),
    ];
    let mut c = 64;
    for (i, &n) in blocks.iter().enumerate() {
        let layers = (0..n)
            .map(|j| {
                let cin = c + j * growth;
                let inner = 4 * growth;
                node(
                    format!("denselayer{}", j + 1),
                    "_DenseLayer",
                    Body::Seq(vec![
                        leaf("norm1", bn(cin)),
                        leaf("relu1", Op::Relu),
                        leaf("conv1", conv(cin, inner, 1, 1, 0)),
                        leaf("norm2", bn(inner)),
                        leaf("relu2", Op::Relu),
                        leaf("conv2", conv(inner, growth, 3, 1, 1)),
                    ]),
                )
            })
            .collect();
        features.push(node(
            format!("denseblock{}", i + 1),
            "_DenseBlock",
            Body::Block {
                main: layers,
                merge: Merge::Dense,
            },
        ));
        c += n * growth;
        if i < 3 {
            features.push(node(
                format!("transition{}", i + 1),
                "_Transition",
                Body::Seq(vec![
                    leaf("norm", bn(c)),
                    leaf("relu", Op::Relu),
                    leaf("conv", conv(c, c / 2, 1, 1, 0)),
                    leaf("pool", Op::AvgPool2d { k: 2, s: 2, p: 0 }),
                ]),
            ));
            c /= 2;
        }
    }
    features.push(leaf("norm5", bn(c)));
    Network {
        family: Family::Densenet,
        modules: vec![
            seq("features", features),
            functional_relu(),
            Node {
                global_pool: true,
                ..flattened(leaf("classifier", linear(c, 1000)))
            },
        ],
    }
}

/// torchvision's `BasicConv2d` (GoogLeNet's and Inception v3's): a conv without bias,
/// `BatchNorm2d(eps=0.001)` and a functional ReLU. Cutting after the module takes the
/// output after the ReLU; after its `bn`, before it.
fn basic_conv(name: &str, cin: u32, cout: u32, k: u32, s: u32, p: u32) -> Node {
    node(
        name,
        "BasicConv2d",
        Body::Seq(vec![
            leaf("conv", conv(cin, cout, k, s, p)),
            leaf(
                "bn",
                Op::BatchNorm2d {
                    c: cout,
                    eps: 1e-3,
                    momentum: 0.1,
                },
            ),
            functional_relu(),
        ]),
    )
}

/// GoogLeNet's `Inception(cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`: four
/// branches on the block input, concatenated. `branch3` uses a 3×3 conv where the paper
/// has 5×5, as torchvision does (its issue 906, kept for its published weights).
fn inception(name: &str, cin: u32, ch: [u32; 6]) -> Node {
    let [c1, c3r, c3, c5r, c5, pool] = ch;
    let pair = |name: &str, mid: u32, out: u32| {
        seq(
            name,
            vec![
                basic_conv("0", cin, mid, 1, 1, 0),
                basic_conv("1", mid, out, 3, 1, 1),
            ],
        )
    };
    node(
        name,
        "Inception",
        Body::Block {
            main: Vec::new(),
            merge: Merge::Concat {
                branches: vec![
                    vec![basic_conv("branch1", cin, c1, 1, 1, 0)],
                    vec![pair("branch2", c3r, c3)],
                    vec![pair("branch3", c5r, c5)],
                    vec![seq(
                        "branch4",
                        vec![
                            leaf("0", max_pool(3, 1, 1, true)),
                            basic_conv("1", cin, pool, 1, 1, 0),
                        ],
                    )],
                ],
                split: false,
                shuffle: false,
            },
        },
    )
}

/// torchvision's GoogLeNet in eval mode: the stem, nine Inception blocks between ceil-mode
/// max pools, `avgpool`, then `torch.flatten` before `dropout` and `fc`. The auxiliary
/// classifiers `aux1` and `aux2` run only while training (see [`googlenet_aux`]).
pub(super) fn googlenet() -> Network {
    let pool = |name: &str, k: u32| leaf(name, max_pool(k, 2, 0, true));
    Network {
        family: Family::Googlenet,
        modules: vec![
            basic_conv("conv1", 3, 64, 7, 2, 3),
            pool("maxpool1", 3),
            basic_conv("conv2", 64, 64, 1, 1, 0),
            basic_conv("conv3", 64, 192, 3, 1, 1),
            pool("maxpool2", 3),
            inception("inception3a", 192, [64, 96, 128, 16, 32, 32]),
            inception("inception3b", 256, [128, 128, 192, 32, 96, 64]),
            pool("maxpool3", 3),
            inception("inception4a", 480, [192, 96, 208, 16, 48, 64]),
            inception("inception4b", 512, [160, 112, 224, 24, 64, 64]),
            inception("inception4c", 512, [128, 128, 256, 24, 64, 64]),
            inception("inception4d", 512, [112, 144, 288, 32, 64, 64]),
            inception("inception4e", 528, [256, 160, 320, 32, 128, 128]),
            pool("maxpool4", 2),
            inception("inception5a", 832, [256, 160, 320, 32, 128, 128]),
            inception("inception5b", 832, [384, 192, 384, 48, 128, 128]),
            leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
            flattened(leaf("dropout", Op::Dropout)),
            leaf("fc", linear(1024, 1000)),
        ],
    }
}

/// GoogLeNet's `InceptionAux` heads `aux1` (on 512 channels) and `aux2` (528), registered
/// after `inception5b`: only their state-dict keys matter (a 1×1 `BasicConv2d` to 128
/// channels, `fc1` 2048 → 1024, `fc2` 1024 → 1000).
pub(super) fn googlenet_aux() -> Vec<Node> {
    [("aux1", 512), ("aux2", 528)]
        .into_iter()
        .map(|(name, cin)| {
            node(
                name,
                "InceptionAux",
                Body::Seq(vec![
                    basic_conv("conv", cin, 128, 1, 1, 0),
                    leaf("fc1", linear(2048, 1024)),
                    leaf("fc2", linear(1024, 1000)),
                ]),
            )
        })
        .collect()
}

/// A `BasicConv2d` with a `kh`×`kw` kernel and `ph`, `pw` padding at stride 1 (Inception
/// v3's factorised 1×7, 7×1, 1×3 and 3×1 convs).
fn basic_conv_rect(name: &str, cin: u32, cout: u32, (kh, kw): (u32, u32)) -> Node {
    let Node { body, .. } = basic_conv(name, cin, cout, 1, 1, 0);
    let Body::Seq(mut children) = body else {
        unreachable!("a BasicConv2d is a sequence")
    };
    children[0] = leaf(
        "conv",
        Op::Conv2dRect {
            cin,
            cout,
            kh,
            kw,
            ph: (kh - 1) / 2,
            pw: (kw - 1) / 2,
        },
    );
    node(name, "BasicConv2d", Body::Seq(children))
}

/// Branches that fork from their common input and are concatenated, inside a branch of an
/// Inception block (InceptionE's `branch3x3_2a` and `branch3x3_2b`): no module of its own,
/// so no cut point and no name (its modules are named under the block).
fn fork(branches: Vec<Vec<Node>>) -> Node {
    Node {
        cut_point: false,
        ..node(
            "",
            "",
            Body::Block {
                main: Vec::new(),
                merge: Merge::Concat {
                    branches,
                    split: false,
                    shuffle: false,
                },
            },
        )
    }
}

/// A function-call pool (`F.avg_pool2d(x, 3, 1, 1)`, `F.max_pool2d(x, 3, 2)`) inside an
/// Inception v3 block: computed, no module, no cut point.
fn functional_pool(op: Op) -> Node {
    Node {
        cut_point: false,
        ..leaf(
            if matches!(op, Op::AvgPool2d { .. }) {
                "avg_pool2d"
            } else {
                "max_pool2d"
            },
            op,
        )
    }
}

/// An Inception v3 block of torchvision class `class`, its branches concatenated.
fn mixed(name: &str, class: &'static str, branches: Vec<Vec<Node>>) -> Node {
    node(
        name,
        class,
        Body::Block {
            main: Vec::new(),
            merge: Merge::Concat {
                branches,
                split: false,
                shuffle: false,
            },
        },
    )
}

/// torchvision's Inception v3 in eval mode (`Inception3`): the stem of `BasicConv2d`s and
/// max pools, `Mixed_5b`–`Mixed_7c` (InceptionA–E), `avgpool`, `dropout`, then
/// `torch.flatten` before `fc`. The branches' pools are function calls; `AuxLogits` runs
/// only while training (see [`inception_v3_aux`]).
pub(super) fn inception_v3() -> Network {
    let b = basic_conv;
    let avg = || functional_pool(Op::AvgPool2d { k: 3, s: 1, p: 1 });
    let max = || functional_pool(max_pool(3, 2, 0, false));
    let inception_a = |name: &str, cin: u32, pool: u32| {
        mixed(
            name,
            "InceptionA",
            vec![
                vec![b("branch1x1", cin, 64, 1, 1, 0)],
                vec![
                    b("branch5x5_1", cin, 48, 1, 1, 0),
                    b("branch5x5_2", 48, 64, 5, 1, 2),
                ],
                vec![
                    b("branch3x3dbl_1", cin, 64, 1, 1, 0),
                    b("branch3x3dbl_2", 64, 96, 3, 1, 1),
                    b("branch3x3dbl_3", 96, 96, 3, 1, 1),
                ],
                vec![avg(), b("branch_pool", cin, pool, 1, 1, 0)],
            ],
        )
    };
    let inception_c = |name: &str, c7: u32| {
        let r = basic_conv_rect;
        mixed(
            name,
            "InceptionC",
            vec![
                vec![b("branch1x1", 768, 192, 1, 1, 0)],
                vec![
                    b("branch7x7_1", 768, c7, 1, 1, 0),
                    r("branch7x7_2", c7, c7, (1, 7)),
                    r("branch7x7_3", c7, 192, (7, 1)),
                ],
                vec![
                    b("branch7x7dbl_1", 768, c7, 1, 1, 0),
                    r("branch7x7dbl_2", c7, c7, (7, 1)),
                    r("branch7x7dbl_3", c7, c7, (1, 7)),
                    r("branch7x7dbl_4", c7, c7, (7, 1)),
                    r("branch7x7dbl_5", c7, 192, (1, 7)),
                ],
                vec![avg(), b("branch_pool", 768, 192, 1, 1, 0)],
            ],
        )
    };
    let inception_e = |name: &str, cin: u32| {
        let r = basic_conv_rect;
        mixed(
            name,
            "InceptionE",
            vec![
                vec![b("branch1x1", cin, 320, 1, 1, 0)],
                vec![
                    b("branch3x3_1", cin, 384, 1, 1, 0),
                    fork(vec![
                        vec![r("branch3x3_2a", 384, 384, (1, 3))],
                        vec![r("branch3x3_2b", 384, 384, (3, 1))],
                    ]),
                ],
                vec![
                    b("branch3x3dbl_1", cin, 448, 1, 1, 0),
                    b("branch3x3dbl_2", 448, 384, 3, 1, 1),
                    fork(vec![
                        vec![r("branch3x3dbl_3a", 384, 384, (1, 3))],
                        vec![r("branch3x3dbl_3b", 384, 384, (3, 1))],
                    ]),
                ],
                vec![avg(), b("branch_pool", cin, 192, 1, 1, 0)],
            ],
        )
    };
    let pool = |name: &str| leaf(name, max_pool(3, 2, 0, false));
    Network {
        family: Family::Inception,
        modules: vec![
            b("Conv2d_1a_3x3", 3, 32, 3, 2, 0),
            b("Conv2d_2a_3x3", 32, 32, 3, 1, 0),
            b("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
            pool("maxpool1"),
            b("Conv2d_3b_1x1", 64, 80, 1, 1, 0),
            b("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
            pool("maxpool2"),
            inception_a("Mixed_5b", 192, 32),
            inception_a("Mixed_5c", 256, 64),
            inception_a("Mixed_5d", 288, 64),
            mixed(
                "Mixed_6a",
                "InceptionB",
                vec![
                    vec![b("branch3x3", 288, 384, 3, 2, 0)],
                    vec![
                        b("branch3x3dbl_1", 288, 64, 1, 1, 0),
                        b("branch3x3dbl_2", 64, 96, 3, 1, 1),
                        b("branch3x3dbl_3", 96, 96, 3, 2, 0),
                    ],
                    vec![max()],
                ],
            ),
            inception_c("Mixed_6b", 128),
            inception_c("Mixed_6c", 160),
            inception_c("Mixed_6d", 160),
            inception_c("Mixed_6e", 192),
            mixed(
                "Mixed_7a",
                "InceptionD",
                vec![
                    vec![
                        b("branch3x3_1", 768, 192, 1, 1, 0),
                        b("branch3x3_2", 192, 320, 3, 2, 0),
                    ],
                    vec![
                        b("branch7x7x3_1", 768, 192, 1, 1, 0),
                        basic_conv_rect("branch7x7x3_2", 192, 192, (1, 7)),
                        basic_conv_rect("branch7x7x3_3", 192, 192, (7, 1)),
                        b("branch7x7x3_4", 192, 192, 3, 2, 0),
                    ],
                    vec![max()],
                ],
            ),
            inception_e("Mixed_7b", 1280),
            inception_e("Mixed_7c", 2048),
            leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
            leaf("dropout", Op::Dropout),
            flattened(leaf("fc", linear(2048, 1000))),
        ],
    }
}

/// Inception v3's `AuxLogits` (an `InceptionAux` on `Mixed_6e`'s 768 channels), registered
/// after `Mixed_6e`: only its keys matter (`conv0` 1×1 to 128, `conv1` 5×5 to 768, `fc`).
pub(super) fn inception_v3_aux() -> Vec<Node> {
    vec![node(
        "AuxLogits",
        "InceptionAux",
        Body::Seq(vec![
            basic_conv("conv0", 768, 128, 1, 1, 0),
            basic_conv("conv1", 128, 768, 5, 1, 0),
            leaf("fc", linear(768, 1000)),
        ]),
    )]
}

/// EfficientNet V2's BatchNorm: eps 1e-3, momentum 0.1.
fn bn_v2(c: u32) -> Op {
    Op::BatchNorm2d {
        c,
        eps: 1e-3,
        momentum: 0.1,
    }
}

/// torchvision's EfficientNet V2-S: `features` holds the stem conv (24 channels), three
/// stages of `FusedMBConv` (a full `k`×`k` conv expanding the channels, or the only conv when
/// the expansion is 1, then a 1×1 projection), three of `MBConv` (as B0's, with
/// squeeze-and-excitation), and a 1×1 conv to 1280 channels; BatchNorm has eps 1e-3.
/// Stochastic depth ends every residual branch (the identity in eval mode).
pub(super) fn efficientnet_v2_s() -> Network {
    // (fused, expansion, stride, input channels, output channels, blocks); all kernels 3×3.
    const SETTING: [(bool, u32, u32, u32, u32, u32); 6] = [
        (true, 1, 1, 24, 24, 2),
        (true, 4, 2, 24, 48, 4),
        (true, 4, 2, 48, 64, 4),
        (false, 4, 2, 64, 128, 6),
        (false, 6, 1, 128, 160, 9),
        (false, 6, 2, 160, 256, 15),
    ];
    let silu = Some(Op::Silu);
    let mut features = vec![conv_norm_act(3, 24, 3, 2, 1, bn_v2, silu)];
    for (fused, expand, s, cin, cout, n) in SETTING {
        let mut stage = Vec::new();
        for j in 0..n {
            let (cin, stride) = if j == 0 { (cin, s) } else { (cout, 1) };
            let expanded = make_divisible(f64::from(cin) * f64::from(expand), 8);
            let mut layers = Vec::new();
            let class = if fused {
                if expanded != cin {
                    layers.push(conv_norm_act(cin, expanded, 3, stride, 1, bn_v2, silu));
                    layers.push(conv_norm_act(expanded, cout, 1, 1, 1, bn_v2, None));
                } else {
                    layers.push(conv_norm_act(cin, cout, 3, stride, 1, bn_v2, silu));
                }
                "FusedMBConv"
            } else {
                if expanded != cin {
                    layers.push(conv_norm_act(cin, expanded, 1, 1, 1, bn_v2, silu));
                }
                layers.push(conv_norm_act(
                    expanded, expanded, 3, stride, expanded, bn_v2, silu,
                ));
                let squeeze = (cin / 4).max(1);
                layers.push(squeeze_excitation(expanded, squeeze, Op::Silu, Op::Sigmoid));
                layers.push(conv_norm_act(expanded, cout, 1, 1, 1, bn_v2, None));
                "MBConv"
            };
            let residual = stride == 1 && cin == cout;
            stage.push(inverted_residual(class, "block", layers, residual, true));
        }
        features.push(seq("", renumbered(stage)));
    }
    features.push(conv_norm_act(256, 1280, 1, 1, 1, bn_v2, silu));
    Network {
        family: Family::Efficientnet,
        modules: vec![
            seq("features", renumbered(features)),
            leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
            flattened(seq(
                "classifier",
                vec![leaf("0", Op::Dropout), leaf("1", linear(1280, 1000))],
            )),
        ],
    }
}
