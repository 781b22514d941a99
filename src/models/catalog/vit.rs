//! torchvision's Vision Transformers (`vit_b_16`, `vit_b_32`, `vit_l_16`).

use super::{conv, leaf, linear, node, numbered, seq, Body, Family, Network, Node, Op};

/// The image size torchvision's ViTs assert (`Wrong image height! Expected 224`).
pub(super) const VIT_IMAGE_SIZE: u32 = 224;

/// A node of a parameter or function op, not a module: no cut point.
fn hidden(name: &str, op: Op) -> Node {
    Node {
        cut_point: false,
        ..leaf(name, op)
    }
}

/// LayerNorm over the token width with ViT's eps 1e-6.
fn ln(d: u32) -> Op {
    Op::LayerNorm { c: d, eps: 1e-6 }
}

/// torchvision's `EncoderBlock`: `x + dropout(self_attention(ln_1(x)))`, then that plus
/// `mlp(ln_2(·))`; `mlp` is the `MLPBlock` Linear, GELU, Dropout, Linear, Dropout.
pub(super) fn encoder_block(name: String, d: u32, heads: u32, mlp: u32) -> Node {
    node(
        name,
        "EncoderBlock",
        Body::Residual(vec![
            vec![
                leaf("ln_1", ln(d)),
                leaf("self_attention", Op::MultiheadAttention { d, heads }),
                leaf("dropout", Op::Dropout),
            ],
            vec![
                leaf("ln_2", ln(d)),
                node(
                    "mlp",
                    "MLPBlock",
                    Body::Seq(numbered(vec![
                        linear(d, mlp),
                        Op::Gelu,
                        Op::Dropout,
                        linear(mlp, d),
                        Op::Dropout,
                    ])),
                ),
            ],
        ]),
    )
}

/// torchvision's `VisionTransformer` for 224×224 images: `conv_proj` (patch×patch conv,
/// stride patch) to a [D, 224/patch, 224/patch] map, its patch tokens after the
/// `class_token`, `encoder` (+ `pos_embedding`, dropout, `layers` of `layers`
/// `EncoderBlock`s, `ln`) on [1 + (224/patch)², D] tokens, `heads` on the class token.
pub(super) fn vit(patch: u32, layers: u32, heads: u32, d: u32, mlp: u32) -> Network {
    let grid = VIT_IMAGE_SIZE / patch;
    let blocks = (0..layers)
        .map(|i| encoder_block(format!("encoder_layer_{i}"), d, heads, mlp))
        .collect();
    Network {
        family: Family::Vit,
        modules: vec![
            leaf("conv_proj", conv(3, d, patch, patch, 0, true)),
            hidden(
                "class_token",
                Op::ClassToken {
                    d,
                    batch_dims: true,
                },
            ),
            node(
                "encoder",
                "Encoder",
                Body::Seq(vec![
                    hidden(
                        "pos_embedding",
                        Op::PosEmbedding {
                            s: grid * grid + 1,
                            d,
                            batch_dims: true,
                        },
                    ),
                    leaf("dropout", Op::Dropout),
                    seq("layers", blocks),
                    leaf("ln", ln(d)),
                ]),
            ),
            hidden("x[:, 0]", Op::FirstToken),
            seq("heads", vec![leaf("head", linear(d, 1000))]),
        ],
    }
}
