//! torchvision's Swin Transformers (`swin_t`, `swin_s`): channels-last [H, W, C] maps of
//! patch tokens throughout `features`, attention within 7×7 windows (shifted by 3 in every
//! second block), patch merging between the stages.

use super::{conv, leaf, linear, node, numbered, seq, Body, Family, Network, Node, Op};

/// A node of a function op, not a module: no cut point.
fn hidden(name: &str, op: Op) -> Node {
    Node {
        cut_point: false,
        ..leaf(name, op)
    }
}

/// torchvision's `SwinTransformerBlock` on `d` channels: `x + attn(norm1(x))`, then that
/// plus `mlp(norm2(·))`, stochastic depth (the identity in eval mode, applied in both
/// branches: no cut point) on each branch.
fn block(d: u32, heads: u32, window: u32, shift: u32) -> Node {
    let ln = || Op::LayerNorm { c: d, eps: 1e-5 };
    node(
        "",
        "SwinTransformerBlock",
        Body::Residual(vec![
            vec![
                leaf("norm1", ln()),
                leaf(
                    "attn",
                    Op::WindowAttention {
                        d,
                        heads,
                        window,
                        shift,
                    },
                ),
                hidden("stochastic_depth", Op::StochasticDepth),
            ],
            vec![
                leaf("norm2", ln()),
                node(
                    "mlp",
                    "MLP",
                    Body::Seq(numbered(vec![
                        linear(d, 4 * d),
                        Op::Gelu,
                        Op::Dropout,
                        linear(4 * d, d),
                        Op::Dropout,
                    ])),
                ),
                hidden("stochastic_depth", Op::StochasticDepth),
            ],
        ]),
    )
}

/// torchvision's `PatchMerging` on `c` channels: the map padded to even sides, its four
/// strided 2×2 sub-grids concatenated (4C channels), `norm` (LayerNorm(4C)) and
/// `reduction` (Linear(4C → 2C), no bias).
fn patch_merging(c: u32) -> Node {
    node(
        "",
        "PatchMerging",
        Body::Seq(vec![
            hidden("_patch_merging_pad", Op::PatchMerge),
            leaf(
                "norm",
                Op::LayerNorm {
                    c: 4 * c,
                    eps: 1e-5,
                },
            ),
            leaf(
                "reduction",
                Op::LinearNoBias {
                    fin: 4 * c,
                    fout: 2 * c,
                },
            ),
        ]),
    )
}

/// torchvision's `SwinTransformer` (V1) with 4×4 patches of `dim` channels, `depths[i]`
/// blocks of `heads[i]` heads in stage `i`, 7×7 windows: `features` (the patch embedding
/// conv, `Permute` to channels-last and LayerNorm, then the stages with `PatchMerging`
/// between them), `norm`, `permute` back to [C, H, W], `avgpool`, `flatten`, `head`.
pub(super) fn swin(dim: u32, depths: [u32; 4], heads: [u32; 4]) -> Network {
    let window = 7;
    let mut features = vec![seq(
        "0",
        numbered(vec![
            conv(3, dim, 4, 4, 0, true),
            Op::Permute { to_last: true },
            Op::LayerNorm { c: dim, eps: 1e-5 },
        ]),
    )];
    for (i, (&n, &h)) in depths.iter().zip(&heads).enumerate() {
        let d = dim << i;
        let blocks = (0..n)
            .map(|j| {
                let shift = if j % 2 == 0 { 0 } else { window / 2 };
                Node {
                    name: j.to_string(),
                    ..block(d, h, window, shift)
                }
            })
            .collect();
        features.push(seq("", blocks));
        if i < 3 {
            features.push(patch_merging(d));
        }
    }
    let features = features
        .into_iter()
        .enumerate()
        .map(|(i, n)| Node {
            name: i.to_string(),
            ..n
        })
        .collect();
    let last = dim << 3;
    Network {
        family: Family::Swin,
        modules: vec![
            seq("features", features),
            leaf("norm", Op::LayerNorm { c: last, eps: 1e-5 }),
            leaf("permute", Op::Permute { to_last: false }),
            leaf("avgpool", Op::AdaptiveAvgPool2d(1)),
            leaf("flatten", Op::Flatten),
            leaf("head", linear(last, 1000)),
        ],
    }
}
