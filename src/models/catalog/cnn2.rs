//! torchvision's DenseNets and GoogLeNet, described with the catalog's building blocks.
//!
//! Both use functional calls torchvision's hooks never see: DenseNet's `F.relu` before its
//! classifier and GoogLeNet's `F.relu` at the end of every `BasicConv2d`. Each is a leaf
//! that is no cut point (named `relu`, which no torchvision module is called here), so the
//! module before it is cut before the ReLU, and the module around it (`conv1`, a
//! `BasicConv2d`) after it, exactly as a forward hook on that module sees it.

use super::{flattened, leaf, linear, node, seq, Body, Family, Merge, Network, Node, Op};

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
