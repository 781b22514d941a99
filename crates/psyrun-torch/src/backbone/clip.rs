//! The layers of CLIP's and DINOv2's image encoders that torchvision has no equivalent of
//! (see `psyrun::models::catalog`'s CLIP and DINOv2 descriptions):
//!
//! - [`Op::Identity`]: open_clip's identities (CLIP's anti-aliasing pools are the catalog's
//!   `AvgPool2d` with stride = window).
//! - [`Op::AttentionPool2d`]: CLIP's attention pool. The map's tokens after their mean, plus
//!   the position embedding, and multi-head attention of the first token (the mean) over
//!   all of them: `q_proj` of the first token, `k_proj` and `v_proj` of every token,
//!   softmax(q·kᵀ/√d)·v per head, `c_proj` of the heads concatenated. Only the first
//!   token's query is computed, since only its output is kept (open_clip computes every
//!   query and keeps `x[0]`). On another grid than the embedding's, the embedding's grid
//!   part is resampled as timm's `resample_abs_pos_embed` does (bicubic with antialiasing,
//!   align_corners false; libtorch's `_upsample_bicubic2d_aa`).
//! - [`Op::Projection`]: `x @ proj` (CLIP's image projection).
//! - [`Op::ToTokens`]: a map's tokens, row by row.
//! - [`Op::Dinov2PosEmbedding`]: DINOv2's `interpolate_pos_encoding`: on a g×g grid other
//!   than the parameter's, its patch part resampled bicubically, the class token's entry
//!   kept. The hub's models without registers (`interpolate_offset` 0.1, no antialiasing)
//!   at the scale factor (g + 0.1) / grid (libtorch's `upsample_bicubic2d` with that
//!   scale); those with registers (offset 0, `interpolate_antialias`) to the size g×g with
//!   antialiasing (`_upsample_bicubic2d_aa`).
//! - [`Op::RegisterTokens`]: inserted after the class token.
//! - [`Op::Unused`]: a parameter and nothing else.
//!
//! Initialisation of CLIP's ([`Family::Clip`]) and DINOv2's ([`Family::Dinov2`]) parameters
//! follows open_clip and DINOv2's code ([`op_keys`]).
use super::{join, var_path, Init, StateKey};
use psyrun::models::catalog::{Family, Op};
use tch::{nn, Kind, Tensor};

/// DINOv2's `interpolate_offset`.
const DINOV2_OFFSET: f64 = 0.1;

/// A built CLIP or DINOv2 layer.
pub(super) enum ClipLayer {
    Identity,
    AttentionPool {
        heads: i64,
        pos: Tensor,
        q: (Tensor, Tensor),
        k: (Tensor, Tensor),
        v: (Tensor, Tensor),
        c: (Tensor, Tensor),
    },
    Projection(Tensor),
    ToTokens,
    Dinov2Pos {
        pos: Tensor,
        antialias: bool,
    },
    Registers(Tensor),
}

/// The parameters of `op` at `path` and their initialisation for `fam` (the CLIP and DINOv2
/// ops, and the class token and position embedding of those families).
pub(super) fn op_keys(op: Op, path: &str, fam: Family, out: &mut Vec<StateKey>) {
    let mut push = |key: String, shape: Vec<i64>, init: Init| {
        out.push(StateKey {
            key,
            shape,
            kind: Kind::Float,
            init,
        })
    };
    let i = i64::from;
    match op {
        Op::AttentionPool2d { c, grid, out, .. } => {
            // open_clip: the embedding randn / √C, the projections' weights normal_(std=1/√C),
            // their biases nn.Linear's U(±1/√C).
            let std = 1.0 / f64::from(c).sqrt();
            let g = i(grid);
            push(
                join(path, "positional_embedding"),
                vec![g * g + 1, i(c)],
                Init::Normal(std),
            );
            for (name, fout) in [("k_proj", c), ("q_proj", c), ("v_proj", c), ("c_proj", out)] {
                let p = join(path, name);
                push(join(&p, "weight"), vec![i(fout), i(c)], Init::Normal(std));
                push(join(&p, "bias"), vec![i(fout)], Init::Uniform(std));
            }
        }
        Op::Projection { fin, fout } => push(
            path.to_owned(),
            vec![i(fin), i(fout)],
            Init::Normal(1.0 / f64::from(fin).sqrt()),
        ),
        Op::Dinov2PosEmbedding { grid, d, .. } => push(
            path.to_owned(),
            vec![1, i(grid) * i(grid) + 1, i(d)],
            Init::Normal(0.02),
        ),
        Op::RegisterTokens { n, d } => {
            push(path.to_owned(), vec![1, i(n), i(d)], Init::Normal(1e-6))
        }
        Op::Unused { d } => push(path.to_owned(), vec![1, i(d)], Init::Const(0.0)),
        // CLIP: class and position embeddings scale · randn with scale 1/√D; DINOv2: the
        // class token normal_(std=1e-6), the position embedding trunc_normal_(std=0.02).
        Op::ClassToken { d, batch_dims } => push(
            path.to_owned(),
            if batch_dims {
                vec![1, 1, i(d)]
            } else {
                vec![i(d)]
            },
            match fam {
                Family::Dinov2 => Init::Normal(1e-6),
                _ => Init::Normal(1.0 / f64::from(d).sqrt()),
            },
        ),
        Op::PosEmbedding { s, d, batch_dims } => push(
            path.to_owned(),
            if batch_dims {
                vec![1, i(s), i(d)]
            } else {
                vec![i(s), i(d)]
            },
            match fam {
                Family::Dinov2 => Init::Normal(0.02),
                _ => Init::Normal(1.0 / f64::from(d).sqrt()),
            },
        ),
        _ => {}
    }
}

impl ClipLayer {
    /// The layer of `op` at `path` with placeholder variables in `vs`.
    pub(super) fn build(vs: &nn::VarStore, op: Op, path: &str) -> ClipLayer {
        let device = vs.device();
        let zeros = |p: &nn::Path, name: &str, shape: &[i64]| {
            p.add(name, Tensor::zeros(shape, (Kind::Float, device)), false)
        };
        // A parameter op's variable is named by its path's last component, in its parent.
        let parameter = |shape: &[i64]| match path.rsplit_once('.') {
            Some((parent, name)) => zeros(&var_path(vs, parent), name, shape),
            None => zeros(&vs.root(), path, shape),
        };
        let i = i64::from;
        match op {
            Op::Identity => ClipLayer::Identity,
            Op::AttentionPool2d {
                c,
                grid,
                heads,
                out,
            } => {
                let p = var_path(vs, path);
                let linear = |name: &str, fout: u32| {
                    let l = &p / name;
                    (
                        zeros(&l, "weight", &[i(fout), i(c)]),
                        zeros(&l, "bias", &[i(fout)]),
                    )
                };
                // In open_clip's order: the embedding, then k, q, v and c.
                let pos = zeros(&p, "positional_embedding", &[i(grid) * i(grid) + 1, i(c)]);
                let k = linear("k_proj", c);
                let q = linear("q_proj", c);
                let v = linear("v_proj", c);
                let c_proj = linear("c_proj", out);
                ClipLayer::AttentionPool {
                    heads: heads.into(),
                    pos,
                    q,
                    k,
                    v,
                    c: c_proj,
                }
            }
            Op::Projection { fin, fout } => ClipLayer::Projection(parameter(&[i(fin), i(fout)])),
            Op::ToTokens => ClipLayer::ToTokens,
            Op::Dinov2PosEmbedding { grid, d, antialias } => ClipLayer::Dinov2Pos {
                pos: parameter(&[1, i(grid) * i(grid) + 1, i(d)]),
                antialias,
            },
            Op::RegisterTokens { n, d } => ClipLayer::Registers(parameter(&[1, i(n), i(d)])),
            // Built as a variable of its own (so that a checkpoint's key loads), never used.
            Op::Unused { d } => {
                let _unused = parameter(&[1, i(d)]);
                ClipLayer::Identity
            }
            other => unreachable!("{other:?} is no CLIP or DINOv2 layer"),
        }
    }

    pub(super) fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            ClipLayer::Identity => x.shallow_clone(),
            ClipLayer::AttentionPool {
                heads,
                pos,
                q,
                k,
                v,
                c,
            } => attention_pool(x, *heads, pos, [q, k, v, c]),
            ClipLayer::Projection(p) => x.matmul(p),
            ClipLayer::ToTokens => x.flatten(2, -1).transpose(1, 2),
            ClipLayer::Dinov2Pos { pos, antialias } => {
                let s = x.size()[1];
                x + dinov2_pos_embedding(pos, s - 1, *antialias)
            }
            ClipLayer::Registers(r) => {
                let n = x.size()[0];
                let r = r.expand([n, -1, -1], false);
                Tensor::cat(&[x.narrow(1, 0, 1), r, x.narrow(1, 1, x.size()[1] - 1)], 1)
            }
        }
    }
}

/// CLIP's attention pool of a [N, C, H, W] map to [N, out] (see the module's text).
fn attention_pool(
    x: &Tensor,
    heads: i64,
    pos: &Tensor,
    [q, k, v, c]: [&(Tensor, Tensor); 4],
) -> Tensor {
    let [n, ch, h, w] = x.size()[..] else {
        panic!("attention pool of a {:?} tensor", x.size())
    };
    let tokens = x.flatten(2, -1).transpose(1, 2); // [N, HW, C]
    let mean = tokens.mean_dim(1, true, Kind::Float);
    let tokens = Tensor::cat(&[mean, tokens], 1) + resampled(pos, h, w).unsqueeze(0);
    let len = h * w + 1;
    let dh = ch / heads;
    let split = |t: Tensor, s: i64| t.view([n, s, heads, dh]).transpose(1, 2);
    let query = split(tokens.narrow(1, 0, 1).linear(&q.0, Some(&q.1)), 1);
    let key = split(tokens.linear(&k.0, Some(&k.1)), len);
    let value = split(tokens.linear(&v.0, Some(&v.1)), len);
    let out = Tensor::scaled_dot_product_attention(
        &query,
        &key,
        &value,
        None::<Tensor>,
        0.0,
        false,
        None,
        false,
    ); // [N, heads, 1, dh]
    out.reshape([n, ch]).linear(&c.0, Some(&c.1))
}

/// The attention pool's [g² + 1, C] embedding for an h×w map: itself on its own g×g grid,
/// else its grid part resampled as timm's `resample_abs_pos_embed` does.
fn resampled(pos: &Tensor, h: i64, w: i64) -> Tensor {
    let [s, c] = pos.size()[..] else {
        panic!("position embedding of shape {:?}", pos.size())
    };
    let g = ((s - 1) as f64).sqrt().round() as i64;
    if (h, w) == (g, g) {
        return pos.shallow_clone();
    }
    let grid = pos
        .narrow(0, 1, s - 1)
        .reshape([1, g, g, c])
        .permute([0, 3, 1, 2])
        .internal_upsample_bicubic2d_aa([h, w], false, None, None)
        .permute([0, 2, 3, 1])
        .reshape([h * w, c]);
    Tensor::cat(&[pos.narrow(0, 0, 1), grid], 0)
}

/// DINOv2's position embedding [1, 1 + M², D] for `patches` patch tokens of a square image
/// (see the module's text): with `antialias` (the register models) resampled to the size
/// with antialiasing, else at the offset scale factor without.
pub(crate) fn dinov2_pos_embedding(pos: &Tensor, patches: i64, antialias: bool) -> Tensor {
    let [_, s, d] = pos.size()[..] else {
        panic!("position embedding of shape {:?}", pos.size())
    };
    let m = ((s - 1) as f64).sqrt().round() as i64;
    let g = (patches as f64).sqrt().round() as i64;
    if g == m {
        return pos.shallow_clone();
    }
    let grid = pos
        .narrow(1, 1, s - 1)
        .reshape([1, m, m, d])
        .permute([0, 3, 1, 2]);
    let grid = if antialias {
        grid.internal_upsample_bicubic2d_aa([g, g], false, None, None)
    } else {
        let scale = (g as f64 + DINOV2_OFFSET) / m as f64;
        grid.upsample_bicubic2d([g, g], false, scale, scale)
    };
    let grid = grid.permute([0, 2, 3, 1]).reshape([1, g * g, d]);
    Tensor::cat(&[pos.narrow(1, 0, 1), grid], 1)
}
