//! Swin Transformer layers on channels-last `[N, H, W, C]` maps, following torchvision's
//! `shifted_window_attention` and `_patch_merging_pad` operation by operation.
use super::{join, var_path, Init, StateKey};
use psyrun::models::catalog::Op;
use tch::{nn, Kind, Tensor};

/// A built Swin layer.
pub(super) enum SwinLayer {
    WindowAttention {
        heads: i64,
        window: i64,
        shift: i64,
        bias_table: Tensor,
        index: Tensor,
        qkv_weight: Tensor,
        qkv_bias: Tensor,
        proj_weight: Tensor,
        proj_bias: Tensor,
    },
    PatchMerge,
    LinearNoBias(Tensor),
}

/// The keys of `op` at `path`, initialised as torchvision's Swin initialises them:
/// `trunc_normal_(std=0.02)` tables and linear weights, zero biases.
pub(super) fn op_keys(op: Op, path: &str, out: &mut Vec<StateKey>) {
    let mut push = |name: &str, shape: Vec<i64>, kind: Kind, init: Init| {
        out.push(StateKey {
            key: join(path, name),
            shape,
            kind,
            init,
        })
    };
    match op {
        Op::WindowAttention {
            d, heads, window, ..
        } => {
            let (d, w) = (i64::from(d), i64::from(window));
            // The module's own parameter and buffer, then its `qkv` and `proj` linears.
            push(
                "relative_position_bias_table",
                vec![(2 * w - 1) * (2 * w - 1), i64::from(heads)],
                Kind::Float,
                Init::Normal(0.02),
            );
            push(
                "relative_position_index",
                vec![w * w * w * w],
                Kind::Int64,
                Init::RelativePositionIndex(window),
            );
            push(
                "qkv.weight",
                vec![3 * d, d],
                Kind::Float,
                Init::Normal(0.02),
            );
            push("qkv.bias", vec![3 * d], Kind::Float, Init::Const(0.0));
            push("proj.weight", vec![d, d], Kind::Float, Init::Normal(0.02));
            push("proj.bias", vec![d], Kind::Float, Init::Const(0.0));
        }
        Op::LinearNoBias { fin, fout } => push(
            "weight",
            vec![i64::from(fout), i64::from(fin)],
            Kind::Float,
            Init::Normal(0.02),
        ),
        _ => {}
    }
}

/// torchvision's `relative_position_index` for a `w`×`w` window: for tokens `i` and `j`
/// (row-major in the window), `(rᵢ − rⱼ + w − 1)·(2w − 1) + (cᵢ − cⱼ + w − 1)`, flattened
/// over (i, j).
pub(super) fn relative_position_index(w: u32) -> Vec<f32> {
    let n = w * w;
    let mut out = Vec::with_capacity((n * n) as usize);
    for i in 0..n {
        for j in 0..n {
            let (ri, ci) = ((i / w) as i64, (i % w) as i64);
            let (rj, cj) = ((j / w) as i64, (j % w) as i64);
            let w = i64::from(w);
            out.push(((ri - rj + w - 1) * (2 * w - 1) + (ci - cj + w - 1)) as f32);
        }
    }
    out
}

impl SwinLayer {
    /// The layer of `op` at `path` with placeholder variables in `vs`.
    pub(super) fn build(vs: &nn::VarStore, op: Op, path: &str) -> SwinLayer {
        let device = vs.device();
        let p = var_path(vs, path);
        let zeros = |p: &nn::Path, name: &str, shape: &[i64], kind: Kind| {
            p.add(name, Tensor::zeros(shape, (kind, device)), false)
        };
        match op {
            Op::WindowAttention {
                d,
                heads,
                window,
                shift,
            } => {
                let (d, w, h) = (i64::from(d), i64::from(window), i64::from(heads));
                let f = Kind::Float;
                SwinLayer::WindowAttention {
                    heads: h,
                    window: w,
                    shift: shift.into(),
                    bias_table: zeros(
                        &p,
                        "relative_position_bias_table",
                        &[(2 * w - 1) * (2 * w - 1), h],
                        f,
                    ),
                    index: zeros(&p, "relative_position_index", &[w * w * w * w], Kind::Int64),
                    qkv_weight: zeros(&(&p / "qkv"), "weight", &[3 * d, d], f),
                    qkv_bias: zeros(&(&p / "qkv"), "bias", &[3 * d], f),
                    proj_weight: zeros(&(&p / "proj"), "weight", &[d, d], f),
                    proj_bias: zeros(&(&p / "proj"), "bias", &[d], f),
                }
            }
            Op::PatchMerge => SwinLayer::PatchMerge,
            Op::LinearNoBias { fin, fout } => SwinLayer::LinearNoBias(zeros(
                &p,
                "weight",
                &[fout.into(), fin.into()],
                Kind::Float,
            )),
            other => unreachable!("{other:?} is no Swin layer"),
        }
    }

    pub(super) fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            SwinLayer::PatchMerge => patch_merge(x),
            SwinLayer::LinearNoBias(weight) => x.linear(weight, None::<Tensor>),
            SwinLayer::WindowAttention {
                heads,
                window,
                shift,
                bias_table,
                index,
                qkv_weight,
                qkv_bias,
                proj_weight,
                proj_bias,
            } => {
                let ws = *window;
                let n = ws * ws;
                // [N·N, heads] → [1, heads, N, N].
                let bias = bias_table
                    .index_select(0, index)
                    .view([n, n, -1])
                    .permute([2, 0, 1])
                    .contiguous()
                    .unsqueeze(0);
                let weights = AttentionWeights {
                    qkv: (qkv_weight, qkv_bias),
                    proj: (proj_weight, proj_bias),
                    bias: &bias,
                };
                window_attention(x, &weights, *heads, ws, *shift)
            }
        }
    }
}

/// torchvision's `_patch_merging_pad`: `[N, H, W, C]` padded to even H and W, then the
/// sub-grids at (even, even), (odd, even), (even, odd), (odd, odd) rows and columns
/// concatenated along the channels.
fn patch_merge(x: &Tensor) -> Tensor {
    let s = x.size();
    let (h, w) = (s[1], s[2]);
    let x = x.constant_pad_nd([0, 0, 0, w % 2, 0, h % 2]);
    let grid = |r: i64, c: i64| x.slice(1, r, None::<i64>, 2).slice(2, c, None::<i64>, 2);
    Tensor::cat(&[grid(0, 0), grid(1, 0), grid(0, 1), grid(1, 1)], -1)
}

struct AttentionWeights<'a> {
    qkv: (&'a Tensor, &'a Tensor),
    proj: (&'a Tensor, &'a Tensor),
    /// The relative position bias, [1, heads, N, N].
    bias: &'a Tensor,
}

/// Python's `a[start:end]` bounds on a dimension of `len` (negative indices from the end,
/// `-0` being 0).
fn py_range(start: i64, end: Option<i64>, len: i64) -> (i64, i64) {
    let at = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    (at(start), end.map_or(len, at))
}

/// The −100 / 0 attention mask of a shifted window attention over a `ph`×`pw` padded map:
/// [windows, N, N], −100 between tokens of different regions.
fn shift_mask(ph: i64, pw: i64, ws: i64, sh: i64, sw: i64) -> Tensor {
    let mut regions = vec![0f32; (ph * pw) as usize];
    let hs = [(0, Some(-ws)), (-ws, Some(-sh)), (-sh, None)];
    let wss = [(0, Some(-ws)), (-ws, Some(-sw)), (-sw, None)];
    let mut count = 0.0;
    for &(h0, h1) in &hs {
        for &(w0, w1) in &wss {
            let (r0, r1) = py_range(h0, h1, ph);
            let (c0, c1) = py_range(w0, w1, pw);
            for r in r0..r1 {
                for c in c0..c1 {
                    regions[(r * pw + c) as usize] = count;
                }
            }
            count += 1.0;
        }
    }
    let windows = (ph / ws) * (pw / ws);
    let m = Tensor::from_slice(&regions)
        .view([ph / ws, ws, pw / ws, ws])
        .permute([0, 2, 1, 3])
        .reshape([windows, ws * ws]);
    let diff = m.unsqueeze(1) - m.unsqueeze(2);
    diff.ne(0.0).to_kind(Kind::Float) * -100.0
}

/// torchvision's `shifted_window_attention` (no dropout, no logit scale) on `[N, H, W, C]`.
fn window_attention(
    input: &Tensor,
    w: &AttentionWeights,
    heads: i64,
    ws: i64,
    shift: i64,
) -> Tensor {
    let [b, h, wd, c] = input.size()[..] else {
        panic!("window attention on a {:?} tensor", input.size())
    };
    let pad_r = (ws - wd % ws) % ws;
    let pad_b = (ws - h % ws) % ws;
    let mut x = input.constant_pad_nd([0, 0, 0, pad_r, 0, pad_b]);
    let (ph, pw) = (h + pad_b, wd + pad_r);
    let sh = if ws >= ph { 0 } else { shift };
    let sw = if ws >= pw { 0 } else { shift };
    let shifted = sh + sw > 0;
    if shifted {
        x = x.roll([-sh, -sw], [1, 2]);
    }
    let windows = (ph / ws) * (pw / ws);
    let n = ws * ws;
    let x = x
        .view([b, ph / ws, ws, pw / ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b * windows, n, c]);
    let qkv = x
        .linear(w.qkv.0, Some(w.qkv.1))
        .reshape([b * windows, n, 3, heads, c / heads])
        .permute([2, 0, 3, 1, 4]);
    let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
    let q = q * ((c / heads) as f64).powf(-0.5);
    let mut attn = q.matmul(&k.transpose(-2, -1)) + w.bias;
    if shifted {
        let mask = shift_mask(ph, pw, ws, sh, sw)
            .to_device(attn.device())
            .to_kind(attn.kind());
        attn = (attn.view([b, windows, heads, n, n]) + mask.unsqueeze(1).unsqueeze(0))
            .view([-1, heads, n, n]);
    }
    let x = attn
        .softmax(-1, attn.kind())
        .matmul(&v)
        .transpose(1, 2)
        .reshape([b * windows, n, c])
        .linear(w.proj.0, Some(w.proj.1));
    let mut x = x
        .view([b, ph / ws, pw / ws, ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b, ph, pw, c]);
    if shifted {
        x = x.roll([sh, sw], [1, 2]);
    }
    x.slice(1, 0, h, 1).slice(2, 0, wd, 1).contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_position_index_is_torchvisions() {
        // A 2×2 window: tokens (0,0), (0,1), (1,0), (1,1); (2w − 1) = 3.
        let idx = relative_position_index(2);
        assert_eq!(idx.len(), 16);
        assert_eq!(
            idx,
            [4., 3., 1., 0., 5., 4., 2., 1., 7., 6., 4., 3., 8., 7., 5., 4.]
        );
        let idx7 = relative_position_index(7);
        assert_eq!(idx7.len(), 2401);
        assert_eq!(idx7[0], 84.0); // the centre of a 13×13 table
        assert_eq!(idx7.iter().cloned().fold(0.0, f32::max), 168.0);
    }

    #[test]
    fn python_slices() {
        assert_eq!(py_range(0, Some(-7), 14), (0, 7));
        assert_eq!(py_range(-7, Some(-3), 14), (7, 11));
        assert_eq!(py_range(-3, None, 14), (11, 14));
        // A shift of 0: `-0` is 0.
        assert_eq!(py_range(-7, Some(0), 14), (7, 0));
        assert_eq!(py_range(0, None, 14), (0, 14));
    }
}
