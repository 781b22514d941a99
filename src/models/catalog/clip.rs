//! CLIP's image encoders (OpenAI's released RN50, ViT-B/32 and ViT-B/16, as open_clip's
//! `RN50-quickgelu`, `ViT-B-32-quickgelu` and `ViT-B-16-quickgelu` build them) and DINOv2's
//! ViT-S/14 and ViT-B/14 (with and without 4 register tokens).
//!
//! Module paths are those of the image encoder itself (open_clip's `model.visual`, DINOv2's
//! `DinoVisionTransformer`): `layer4.2.conv3`, `transformer.resblocks.11.mlp.c_fc`,
//! `blocks.11.attn.qkv`. A CLIP checkpoint holds the whole model, text tower included, with
//! the image encoder's keys under `visual.` ([`Arch::weights_prefix`]); DINOv2's released
//! files hold the encoder's keys themselves, plus `mask_token`, which only masked training
//! uses (a parameter node of [`Op::Unused`]).

use super::Shape;
use super::{bn, conv, leaf, linear, node, seq, Arch, Body, Family, Merge, Network, Node, Op};

/// The image size CLIP's encoders were trained at, whose grid their position embeddings
/// cover (7×7 for RN50's attention pool, 7×7 and 14×14 patches for the ViTs).
pub(super) const CLIP_IMAGE_SIZE: u32 = 224;

/// The grid of DINOv2's position embedding (518 px images in 14 px patches).
pub(super) const DINOV2_GRID: u32 = 37;

impl Arch {
    /// The prefix of the image encoder's keys in the checkpoints this architecture's weights
    /// come in: `visual.` for CLIP (whose files hold the text tower too); keys without it are
    /// the other parts of the model, ignored. A file whose keys lack the prefix altogether
    /// (the image encoder saved alone) is read as it is.
    pub fn weights_prefix(self) -> Option<&'static str> {
        match network(self).family {
            Family::Clip => Some("visual."),
            _ => None,
        }
    }
}

fn network(arch: Arch) -> &'static Network {
    super::network(arch)
}

/// The one input size of the CLIP ViTs (open_clip's ViT adds its fixed position embedding,
/// so another grid fails); RN50's attention pool and DINOv2 resample their embeddings.
pub(super) fn fixed_input_size(arch: Arch) -> Option<u32> {
    matches!(arch, Arch::ClipVitBx32 | Arch::ClipVitBx16).then_some(CLIP_IMAGE_SIZE)
}

/// The output shape of one of this module's ops ([`Op::Identity`],
/// [`Op::AttentionPool2d`], [`Op::Projection`], [`Op::ToTokens`],
/// [`Op::Dinov2PosEmbedding`], [`Op::RegisterTokens`], [`Op::Unused`]); `None` for an
/// empty output.
pub(super) fn apply(op: Op, x: Shape) -> Option<Shape> {
    match (op, x) {
        (Op::Identity | Op::Unused { .. }, x) => Some(x),
        (Op::AttentionPool2d { c, out, .. }, Shape::Map(n, _, _)) => {
            debug_assert_eq!(c, n, "attention pool channels");
            Some(Shape::Flat(out))
        }
        (Op::Projection { fin, fout }, Shape::Flat(f)) => {
            debug_assert_eq!(f, fin, "projection input");
            Some(Shape::Flat(fout))
        }
        (Op::ToTokens, Shape::Map(c, h, w)) => Some(Shape::Tokens(h * w, c)),
        (Op::Dinov2PosEmbedding { d, .. }, Shape::Tokens(s, c)) => {
            debug_assert_eq!(c, d, "position embedding width");
            Some(x).filter(|_| s >= 2)
        }
        (Op::RegisterTokens { n, d }, Shape::Tokens(s, c)) => {
            debug_assert_eq!(c, d, "register width");
            Some(Shape::Tokens(s + n, d))
        }
        (op, x) => unreachable!("{op:?} on {x:?}"),
    }
}

/// A node of a parameter or function op, not a module: no cut point.
fn hidden(name: &str, op: Op) -> Node {
    Node {
        cut_point: false,
        ..leaf(name, op)
    }
}

/// A container that is never called itself (`nn.ModuleList`): no cut point.
fn list(name: &str, children: Vec<Node>) -> Node {
    Node {
        cut_point: false,
        ..node(name, "ModuleList", Body::Seq(children))
    }
}

/// open_clip's `ModifiedResNet` (CLIP's RN50 image encoder, `layers` [3, 4, 6, 3], width
/// 64, 32 heads, 1024-d output): a stem of three 3×3 convs (`conv1` with stride 2) each
/// with BatchNorm and its own ReLU (`act1`…`act3`), `avgpool` (AvgPool2d(2)), four layers
/// of Bottlenecks whose stride is an anti-aliasing AvgPool2d before `conv3` (an `Identity`
/// at stride 1) and before the `downsample` conv (`downsample.-1`), the sum followed by the
/// block's `act3`, and `attnpool`.
pub(super) fn clip_resnet(layers: [usize; 4], width: u32, heads: u32, out: u32) -> Network {
    let half = width / 2;
    let mut modules = vec![
        leaf("conv1", conv(3, half, 3, 2, 1, false)),
        leaf("bn1", bn(half)),
        leaf("act1", Op::Relu),
        leaf("conv2", conv(half, half, 3, 1, 1, false)),
        leaf("bn2", bn(half)),
        leaf("act2", Op::Relu),
        leaf("conv3", conv(half, width, 3, 1, 1, false)),
        leaf("bn3", bn(width)),
        leaf("act3", Op::Relu),
        leaf("avgpool", anti_alias(2)),
    ];
    let mut inplanes = width;
    for (l, &count) in layers.iter().enumerate() {
        let planes = width << l;
        let out_c = planes * 4;
        let blocks = (0..count)
            .map(|b| {
                let stride = if l > 0 && b == 0 { 2 } else { 1 };
                let pool = if stride > 1 {
                    leaf("avgpool", anti_alias(stride))
                } else {
                    leaf("avgpool", Op::Identity)
                };
                let main = vec![
                    leaf("conv1", conv(inplanes, planes, 1, 1, 0, false)),
                    leaf("bn1", bn(planes)),
                    leaf("act1", Op::Relu),
                    leaf("conv2", conv(planes, planes, 3, 1, 1, false)),
                    leaf("bn2", bn(planes)),
                    leaf("act2", Op::Relu),
                    pool,
                    leaf("conv3", conv(planes, out_c, 1, 1, 0, false)),
                    leaf("bn3", bn(out_c)),
                ];
                let shortcut = (stride > 1 || inplanes != out_c).then(|| {
                    Box::new(seq(
                        "downsample",
                        vec![
                            leaf("-1", anti_alias(stride)),
                            leaf("0", conv(inplanes, out_c, 1, 1, 0, false)),
                            leaf("1", bn(out_c)),
                        ],
                    ))
                });
                inplanes = out_c;
                node(
                    b.to_string(),
                    "Bottleneck",
                    Body::Block {
                        main,
                        merge: Merge::Add {
                            shortcut,
                            relu: false,
                            layer_scale: None,
                            shortcut_first: false,
                            activation: Some(Box::new(leaf("act3", Op::Relu))),
                        },
                    },
                )
            })
            .collect();
        modules.push(seq(format!("layer{}", l + 1), blocks));
    }
    modules.push(leaf(
        "attnpool",
        Op::AttentionPool2d {
            c: inplanes,
            grid: CLIP_IMAGE_SIZE / 32,
            heads,
            out,
        },
    ));
    Network {
        family: Family::Clip,
        modules,
    }
}

/// LayerNorm over the token width.
fn ln(d: u32, eps: f64) -> Op {
    Op::LayerNorm { c: d, eps }
}

/// open_clip's `VisionTransformer` as OpenAI's CLIP ViTs have it (QuickGELU, LayerNorm eps
/// 1e-5, no layer scale): `conv1` (patch×patch, stride patch, no bias), the
/// `class_embedding` [D] before the patch tokens, `positional_embedding` [S, D],
/// `patch_dropout` (an `Identity`), `ln_pre`, `transformer.resblocks.N` (`ln_1`, `attn`
/// (nn.MultiheadAttention), `ls_1`, then `ln_2`, `mlp` (`c_fc`, `gelu`, `c_proj`), `ls_2`,
/// the `ls_*` identities), `ln_post` on every token, then the class token times `proj`
/// [D, out]: the image embedding (the `proj` cut point).
pub(super) fn clip_vit(patch: u32, layers: u32, d: u32, heads: u32, out: u32) -> Network {
    let grid = CLIP_IMAGE_SIZE / patch;
    let blocks = (0..layers)
        .map(|i| {
            node(
                i.to_string(),
                "ResidualAttentionBlock",
                Body::Residual(vec![
                    vec![
                        leaf("ln_1", ln(d, 1e-5)),
                        leaf("attn", Op::MultiheadAttention { d, heads }),
                        leaf("ls_1", Op::Identity),
                    ],
                    vec![
                        leaf("ln_2", ln(d, 1e-5)),
                        seq(
                            "mlp",
                            vec![
                                leaf("c_fc", linear(d, 4 * d)),
                                leaf("gelu", Op::QuickGelu),
                                leaf("c_proj", linear(4 * d, d)),
                            ],
                        ),
                        leaf("ls_2", Op::Identity),
                    ],
                ]),
            )
        })
        .collect();
    Network {
        family: Family::Clip,
        modules: vec![
            leaf("conv1", conv(3, d, patch, patch, 0, false)),
            hidden(
                "class_embedding",
                Op::ClassToken {
                    d,
                    batch_dims: false,
                },
            ),
            hidden(
                "positional_embedding",
                Op::PosEmbedding {
                    s: grid * grid + 1,
                    d,
                    batch_dims: false,
                },
            ),
            leaf("patch_dropout", Op::Identity),
            leaf("ln_pre", ln(d, 1e-5)),
            node(
                "transformer",
                "Transformer",
                Body::Seq(vec![list("resblocks", blocks)]),
            ),
            leaf("ln_post", ln(d, 1e-5)),
            hidden("x[:, 0]", Op::FirstToken),
            leaf("proj", Op::Projection { fin: d, fout: out }),
        ],
    }
}

/// DINOv2's `DinoVisionTransformer` (patch 14, LayerNorm eps 1e-6, layer scale, GELU MLP of
/// 4·D), module names as in the released code and timm's `vit_*_patch14_dinov2`:
/// `patch_embed` (`proj`, a 14×14 conv with stride 14, then its tokens), `cls_token` before
/// them, `pos_embed` [1, 1 + 37², D] resampled to the image's grid as DINOv2's hub models do
/// ([`Op::Dinov2PosEmbedding`]; the register models resample otherwise), `register_tokens` [1, R, D] after the class token,
/// `blocks.N` (`norm1`, `attn` (`qkv`, the attention, `proj`), `ls1`, then `norm2`, `mlp`
/// (`fc1`, `act`, `fc2`), `ls2`), `norm`, and `head` (an `Identity`) on the class token.
pub(super) fn dinov2(layers: u32, d: u32, heads: u32, registers: u32) -> Network {
    let blocks = (0..layers)
        .map(|i| {
            node(
                i.to_string(),
                "Block",
                Body::Residual(vec![
                    vec![
                        leaf("norm1", ln(d, 1e-6)),
                        node(
                            "attn",
                            "Attention",
                            Body::Seq(vec![
                                leaf("qkv", linear(d, 3 * d)),
                                hidden("attention", Op::Attention { d, heads }),
                                leaf("proj", linear(d, d)),
                            ]),
                        ),
                        leaf("ls1", Op::LayerScale { d, init: 1e-5 }),
                    ],
                    vec![
                        leaf("norm2", ln(d, 1e-6)),
                        node(
                            "mlp",
                            "Mlp",
                            Body::Seq(vec![
                                leaf("fc1", linear(d, 4 * d)),
                                leaf("act", Op::Gelu),
                                leaf("fc2", linear(4 * d, d)),
                            ]),
                        ),
                        leaf("ls2", Op::LayerScale { d, init: 1e-5 }),
                    ],
                ]),
            )
        })
        .collect();
    let mut modules = vec![
        node(
            "patch_embed",
            "PatchEmbed",
            Body::Seq(vec![
                leaf("proj", conv(3, d, 14, 14, 0, true)),
                hidden("flatten", Op::ToTokens),
            ]),
        ),
        hidden(
            "cls_token",
            Op::ClassToken {
                d,
                batch_dims: true,
            },
        ),
        hidden(
            "pos_embed",
            Op::Dinov2PosEmbedding {
                grid: DINOV2_GRID,
                d,
                antialias: registers > 0,
            },
        ),
    ];
    if registers > 0 {
        modules.push(hidden(
            "register_tokens",
            Op::RegisterTokens { n: registers, d },
        ));
    }
    // A parameter the forward never uses, registered after the tokens (its key's place).
    modules.push(hidden("mask_token", Op::Unused { d }));
    modules.extend([
        list("blocks", blocks),
        leaf("norm", ln(d, 1e-6)),
        hidden("x[:, 0]", Op::FirstToken),
        leaf("head", Op::Identity),
    ]);

    Network {
        family: Family::Dinov2,
        modules,
    }
}

/// CLIP's anti-aliasing `AvgPool2d(k)`: k×k windows with stride k, no padding.
fn anti_alias(k: u32) -> Op {
    Op::AvgPool2d { k, s: k, p: 0 }
}
