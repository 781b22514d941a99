//! Transformer layers of the catalog's vision transformers: tokens are `[N, S, D]` (batch
//! first) throughout.
//!
//! - [`Op::ClassToken`]: a `[N, D, H, W]` map becomes its `H·W` patch tokens row by row
//!   (`flatten(2).transpose(1, 2)`, ViT's `_process_input`), then the learned token is
//!   prepended: `[N, 1 + H·W, D]`.
//! - [`Op::PosEmbedding`]: the learned `[S, D]` embedding added to every sequence.
//! - [`Op::MultiheadAttention`]: `nn.MultiheadAttention` as self-attention (query, key and
//!   value the same tokens), keys `in_proj_weight` [3D, D], `in_proj_bias` [3D],
//!   `out_proj.weight`, `out_proj.bias`.
//! - [`Op::Attention`]: the same core on fused `[N, S, 3D]` q, k, v projections (timm's
//!   and DINOv2's `qkv` linear before it, `proj` after it).
//! - [`Op::QuickGelu`], [`Op::LayerScale`].
//!
//! The attention core is [`attend`]: libtorch's `scaled_dot_product_attention` on the heads
//! (softmax(q·kᵀ/√d)·v, d the head width), equal to the plain formula within float
//! rounding (tested).
use super::{join, var_path, Init, StateKey};
use psyrun::models::catalog::{Family, Op};
use tch::{nn, Kind, Tensor};

/// A built transformer layer.
pub(super) enum TokenLayer {
    ClassToken(Tensor),
    PosEmbedding(Tensor),
    Mha {
        heads: i64,
        in_weight: Tensor,
        in_bias: Tensor,
        out_weight: Tensor,
        out_bias: Tensor,
    },
    Attention {
        heads: i64,
    },
    QuickGelu,
    FirstToken,
    LayerScale(Tensor),
}

/// The parameters of `op` at `path` (a parameter op's key is its path) and their
/// initialisation for `fam`.
pub(super) fn op_keys(op: Op, path: &str, fam: Family, out: &mut Vec<StateKey>) {
    let float = |key: String, shape: Vec<i64>, init: Init| StateKey {
        key,
        shape,
        kind: Kind::Float,
        init,
    };
    match op {
        Op::ClassToken { d, batch_dims } => {
            let init = match fam {
                // torchvision's ViT: zeros.
                Family::Vit => Init::Const(0.0),
                _ => Init::Normal(0.02),
            };
            out.push(float(
                path.to_owned(),
                lead(batch_dims, &[i64::from(d)]),
                init,
            ))
        }
        Op::PosEmbedding { s, d, batch_dims } => out.push(float(
            path.to_owned(),
            lead(batch_dims, &[i64::from(s), i64::from(d)]),
            Init::Normal(0.02),
        )),
        Op::MultiheadAttention { d, .. } => {
            let d = i64::from(d);
            // nn.MultiheadAttention._reset_parameters: xavier_uniform_ on the packed
            // [3D, D] projection, biases 0; out_proj keeps nn.Linear's U(±1/√D) weight.
            let xavier = (6.0 / (4 * d) as f64).sqrt();
            out.push(float(
                join(path, "in_proj_weight"),
                vec![3 * d, d],
                Init::Uniform(xavier),
            ));
            out.push(float(
                join(path, "in_proj_bias"),
                vec![3 * d],
                Init::Const(0.0),
            ));
            let bound = 1.0 / (d as f64).sqrt();
            out.push(float(
                join(path, "out_proj.weight"),
                vec![d, d],
                Init::Uniform(bound),
            ));
            out.push(float(
                join(path, "out_proj.bias"),
                vec![d],
                Init::Const(0.0),
            ));
        }
        Op::LayerScale { d, init } => out.push(float(
            join(path, "gamma"),
            vec![i64::from(d)],
            Init::Const(init),
        )),
        _ => {}
    }
}

/// `shape` with two leading 1s (`[1, 1, D]`, `[1, S, D]` after dropping the extra one) when
/// `batch_dims`.
fn lead(batch_dims: bool, shape: &[i64]) -> Vec<i64> {
    if batch_dims {
        // [1, 1, D] for a token, [1, S, D] for an embedding.
        let mut v = vec![1; 3 - shape.len()];
        v.extend_from_slice(shape);
        v
    } else {
        shape.to_vec()
    }
}

/// A linear layer's (weight, bias) initialisation in torchvision's ViT at `path`.
pub(super) fn linear_init(path: &str, fin: i64, fout: i64) -> (Init, Init) {
    if path.starts_with("heads.") {
        // The classification head: zeros.
        (Init::Const(0.0), Init::Const(0.0))
    } else if path.contains(".mlp.") {
        // MLPBlock: xavier_uniform_ weights, normal_(std=1e-6) biases.
        (
            Init::Uniform((6.0 / (fin + fout) as f64).sqrt()),
            Init::Normal(1e-6),
        )
    } else {
        let bound = 1.0 / (fin as f64).sqrt();
        (Init::Uniform(bound), Init::Uniform(bound))
    }
}

impl TokenLayer {
    /// The layer of `op` at `path` with placeholder variables in `vs`.
    pub(super) fn build(vs: &nn::VarStore, op: Op, path: &str) -> TokenLayer {
        let device = vs.device();
        let zeros = |p: &nn::Path, name: &str, shape: &[i64]| {
            p.add(name, Tensor::zeros(shape, (Kind::Float, device)), false)
        };
        // A parameter op's variable is named by its path's last component, in its parent.
        let parameter = |shape: &[i64]| match path.rsplit_once('.') {
            Some((parent, name)) => zeros(&var_path(vs, parent), name, shape),
            None => zeros(&vs.root(), path, shape),
        };
        match op {
            Op::ClassToken { d, batch_dims } => {
                TokenLayer::ClassToken(parameter(&lead(batch_dims, &[i64::from(d)])))
            }
            Op::PosEmbedding { s, d, batch_dims } => TokenLayer::PosEmbedding(parameter(&lead(
                batch_dims,
                &[i64::from(s), i64::from(d)],
            ))),
            Op::MultiheadAttention { d, heads } => {
                let d = i64::from(d);
                let p = var_path(vs, path);
                TokenLayer::Mha {
                    heads: heads.into(),
                    in_weight: zeros(&p, "in_proj_weight", &[3 * d, d]),
                    in_bias: zeros(&p, "in_proj_bias", &[3 * d]),
                    out_weight: zeros(&(&p / "out_proj"), "weight", &[d, d]),
                    out_bias: zeros(&(&p / "out_proj"), "bias", &[d]),
                }
            }
            Op::Attention { heads, .. } => TokenLayer::Attention {
                heads: heads.into(),
            },
            Op::QuickGelu => TokenLayer::QuickGelu,
            Op::FirstToken => TokenLayer::FirstToken,
            Op::LayerScale { d, .. } => {
                TokenLayer::LayerScale(zeros(&var_path(vs, path), "gamma", &[i64::from(d)]))
            }
            other => unreachable!("{other:?} is no transformer layer"),
        }
    }

    pub(super) fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            TokenLayer::ClassToken(token) => {
                let x = if x.dim() == 4 {
                    x.flatten(2, -1).transpose(1, 2)
                } else {
                    x.shallow_clone()
                };
                let (n, d) = (x.size()[0], x.size()[2]);
                let token = token.reshape([1, 1, d]).expand([n, 1, d], false);
                Tensor::cat(&[token, x], 1)
            }
            TokenLayer::PosEmbedding(pos) => {
                let d = pos.size();
                x + pos.reshape([1, d[d.len() - 2], d[d.len() - 1]])
            }
            TokenLayer::Mha {
                heads,
                in_weight,
                in_bias,
                out_weight,
                out_bias,
            } => attend(&x.linear(in_weight, Some(in_bias)), *heads)
                .linear(out_weight, Some(out_bias)),
            TokenLayer::Attention { heads } => attend(x, *heads),
            TokenLayer::QuickGelu => x * (x * 1.702).sigmoid(),
            TokenLayer::FirstToken => x.select(1, 0),
            TokenLayer::LayerScale(gamma) => x * gamma,
        }
    }
}

/// Self-attention of fused projections `qkv` [N, S, 3D] (q, k and v concatenated, each
/// `heads` heads of D / heads) to [N, S, D]: softmax(q·kᵀ/√(D/heads))·v per head, the
/// heads concatenated.
pub(crate) fn attend(qkv: &Tensor, heads: i64) -> Tensor {
    let [n, s, three_d] = qkv.size()[..] else {
        panic!("attention on a {:?} tensor", qkv.size())
    };
    let d = three_d / 3;
    // [N, S, 3, H, d/H] → [3, N, H, S, d/H].
    let qkv = qkv
        .view([n, s, 3, heads, d / heads])
        .permute([2, 0, 3, 1, 4]);
    let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
    let out =
        Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, None, false);
    // [N, H, S, d/H] → [N, S, D].
    out.transpose(1, 2).reshape([n, s, d])
}

/// [`attend`] with plain tensor operations (the reference its tests compare against).
#[cfg(test)]
pub(crate) fn attend_plain(qkv: &Tensor, heads: i64) -> Tensor {
    let [n, s, three_d] = qkv.size()[..] else {
        panic!("attention on a {:?} tensor", qkv.size())
    };
    let d = three_d / 3;
    let dh = d / heads;
    let qkv = qkv.view([n, s, 3, heads, dh]).permute([2, 0, 3, 1, 4]);
    let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
    let scores = q.matmul(&k.transpose(-2, -1)) / (dh as f64).sqrt();
    scores
        .softmax(-1, Kind::Float)
        .matmul(&v)
        .transpose(1, 2)
        .reshape([n, s, d])
}
