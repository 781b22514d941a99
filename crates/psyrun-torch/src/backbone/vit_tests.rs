//! The transformer layers and the catalog's Vision Transformers (parity with torchvision is
//! in `parity_tests`).
use super::vit::{attend, attend_plain};
use super::*;
use psyrun::models::catalog::ShapeError;

const CPU: Device = Device::Cpu;

fn image(n: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn([n, 3, 224, 224], (Kind::Float, CPU))
}

fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[])
}

#[test]
fn attention_core_equals_the_plain_formula() {
    tch::manual_seed(3);
    // Batch 2, 7 tokens, 3 heads of 4.
    let qkv = Tensor::randn([2, 7, 36], (Kind::Float, CPU)) * 2.0;
    let got = attend(&qkv, 3);
    let want = attend_plain(&qkv, 3);
    assert_eq!(got.size(), [2, 7, 12]);
    let d = rel_diff(&got, &want);
    assert!(d < 1e-6, "{d:e}");
    // The heads are really separate: attention over one head of 12 differs.
    assert!(rel_diff(&attend(&qkv, 1), &want) > 1e-2);
}

#[test]
fn vit_outputs_have_the_catalog_shapes_at_224() {
    let x = image(1, 0);
    let arch = Arch::VitBx32;
    for cut in [
        "conv_proj",
        "encoder.dropout",
        "encoder.layers.encoder_layer_0.self_attention",
        "encoder.layers.encoder_layer_0.mlp.0",
        "encoder.layers.encoder_layer_3",
        "encoder.ln",
        "heads",
    ] {
        let want: Vec<i64> = std::iter::once(1)
            .chain(
                catalog::output_shape(arch, cut, 224)
                    .unwrap()
                    .into_iter()
                    .map(i64::from),
            )
            .collect();
        let mut b = Backbone::new(arch, cut, CPU).unwrap();
        b.init_random(1);
        assert_eq!(b.features(&x, cut).size(), want, "{cut}");
    }
    assert_eq!(
        catalog::output_shape(arch, "encoder.ln", 225),
        Err(ShapeError::WrongSize { size: 224 })
    );
}

#[test]
fn vit_random_init_follows_torchvision() {
    let mut b = Backbone::new(Arch::VitBx32, "encoder.layers.encoder_layer_0", CPU).unwrap();
    b.init_random(4);
    let v = b.variables();
    let std = |k: &str| v[k].std(true).double_value(&[]);
    let absmax = |k: &str| v[k].abs().max().double_value(&[]);
    let close =
        |got: f64, want: f64, tol: f64| assert!((got / want - 1.0).abs() < tol, "{got} vs {want}");
    // conv_proj trunc_normal_(std=√(1/fan_in)), bias 0.
    close(
        std("conv_proj.weight"),
        (1.0 / (3.0 * 32.0 * 32.0f64)).sqrt(),
        0.02,
    );
    assert_eq!(absmax("conv_proj.bias"), 0.0);
    assert_eq!(absmax("class_token"), 0.0);
    close(std("encoder.pos_embedding"), 0.02, 0.05);
    let p = "encoder.layers.encoder_layer_0.";
    // nn.MultiheadAttention: xavier_uniform_ in_proj, U(±1/√D) out_proj, biases 0.
    let xavier = (6.0 / (768.0 + 3.0 * 768.0f64)).sqrt();
    close(
        absmax(&format!("{p}self_attention.in_proj_weight")),
        xavier,
        0.01,
    );
    assert!(absmax(&format!("{p}self_attention.in_proj_weight")) <= xavier);
    assert_eq!(absmax(&format!("{p}self_attention.in_proj_bias")), 0.0);
    close(
        absmax(&format!("{p}self_attention.out_proj.weight")),
        1.0 / 768f64.sqrt(),
        0.01,
    );
    assert_eq!(absmax(&format!("{p}self_attention.out_proj.bias")), 0.0);
    // MLPBlock: xavier_uniform_ weights, normal_(std=1e-6) biases.
    close(
        absmax(&format!("{p}mlp.0.weight")),
        (6.0 / (768.0 + 3072.0f64)).sqrt(),
        0.01,
    );
    close(std(&format!("{p}mlp.3.bias")), 1e-6, 0.2);
    assert_eq!(std(&format!("{p}ln_1.weight")), 0.0);
    // The head is zeros.
    let inits: HashMap<String, Init> = state_keys(Arch::VitBx32)
        .into_iter()
        .map(|k| (k.key, k.init))
        .collect();
    assert_eq!(inits["heads.head.weight"], Init::Const(0.0));
    assert_eq!(inits["heads.head.bias"], Init::Const(0.0));
}

/// The read-outs take the right axes: right after the position embedding (made zero), the
/// class token is the learned `class_token` and the patch tokens are `conv_proj`'s map
/// cell by cell, so `tokens cls` must give the class token for every image of the batch,
/// `tokens map` exactly `conv_proj`'s [N, D, 7, 7] map and `tokens mean` its spatial mean.
/// A read-out that took the batch for the sequence (or the sequence for the batch), or
/// laid the grid out by columns, fails.
#[test]
fn token_readouts_take_the_class_token_and_the_patch_grid_of_each_image() {
    use psyrun::plan::TokenReadout;
    let arch = Arch::VitBx32;
    let cut = "encoder.dropout";
    let x = image(3, 7);
    let mut b = Backbone::new(arch, cut, CPU).unwrap();
    b.init_random(2);
    tch::no_grad(|| {
        let v = b.variables();
        let _ = v["encoder.pos_embedding"].shallow_clone().zero_();
        let d = Tensor::arange(768, (Kind::Float, CPU)) / 100.0 + 5.0;
        v["class_token"]
            .shallow_clone()
            .copy_(&d.reshape([1, 1, 768]));
    });
    let mut patches = Backbone::new(arch, "conv_proj", CPU).unwrap();
    patches.init_random(2);
    let grid = patches.forward(&x);
    assert_eq!(grid.size(), [3, 768, 7, 7]);
    // The images' grids differ (so a batch mix-up shows).
    assert!(rel_diff(&grid.get(0), &grid.get(1)) > 0.1);

    let raw = b.forward(&x);
    assert_eq!(raw.size(), [3, 50, 768], "no read-out set: the tokens");
    b.set_tokens(Some(TokenReadout::Cls));
    let cls = b.forward(&x);
    assert_eq!(cls.size(), [3, 768]);
    let want = (Tensor::arange(768, (Kind::Float, CPU)) / 100.0 + 5.0).expand([3, 768], false);
    assert!(cls.equal(&want), "the class token of every image");
    b.set_tokens(Some(TokenReadout::Map));
    let map = b.forward(&x);
    assert_eq!(map.size(), [3, 768, 7, 7]);
    assert!(
        map.equal(&grid),
        "the patch tokens laid out as conv_proj's map"
    );
    assert_eq!(b.forward_raw(&x).size(), [3, 768, 7, 7]);
    b.set_tokens(Some(TokenReadout::Mean));
    let mean = b.forward(&x);
    let want = grid.mean_dim([2, 3].as_slice(), false, Kind::Float);
    assert_eq!(mean.size(), [3, 768]);
    assert!(
        rel_diff(&mean, &want) < 1e-6,
        "{:e}",
        rel_diff(&mean, &want)
    );
    // A feature map is never read: conv_proj with a read-out set is still the map.
    patches.set_tokens(Some(TokenReadout::Cls));
    assert!(patches.forward(&x).equal(&grid));
}

/// A Swin's channels-last map read out as `tokens map` is torchvision's own `permute`
/// module's [N, C, H, W] output, and `tokens mean` its spatial mean (`avgpool`, flattened),
/// for every image of the batch; `tokens cls` is refused at plan time (no class token).
#[test]
fn swin_readouts_are_torchvisions_permute_and_avgpool() {
    use psyrun::plan::TokenReadout;
    let arch = Arch::SwinT;
    let x = image(2, 3).narrow(2, 0, 100).narrow(3, 0, 100);
    let mut full = Backbone::new(arch, "avgpool", CPU).unwrap();
    full.init_random(5);
    let permuted = full.features(&x, "permute");
    assert_eq!(permuted.size(), [2, 768, 4, 4]);
    assert!(rel_diff(&permuted.get(0), &permuted.get(1)) > 0.01);
    let mut b = Backbone::new(arch, "norm", CPU).unwrap();
    b.init_random(5);
    assert_eq!(b.forward(&x).size(), [2, 4, 4, 768]);
    b.set_tokens(Some(TokenReadout::Map));
    assert!(b.forward(&x).equal(&permuted));
    b.set_tokens(Some(TokenReadout::Mean));
    let pooled = full.features(&x, "avgpool").flatten(1, -1);
    let d = rel_diff(&b.forward(&x), &pooled);
    assert!(d < 1e-6, "{d:e}");
}

#[test]
fn swin_random_init_follows_torchvision() {
    let mut b = Backbone::new(Arch::SwinT, "features.1.0", CPU).unwrap();
    b.init_random(6);
    let v = b.variables();
    let std = |k: &str| v[k].std(true).double_value(&[]);
    let close =
        |got: f64, want: f64, tol: f64| assert!((got / want - 1.0).abs() < tol, "{got} vs {want}");
    close(std("features.1.0.attn.qkv.weight"), 0.02, 0.02);
    close(std("features.1.0.mlp.0.weight"), 0.02, 0.02);
    close(
        std("features.1.0.attn.relative_position_bias_table"),
        0.02,
        0.1,
    );
    assert_eq!(
        v["features.1.0.attn.qkv.bias"]
            .abs()
            .max()
            .double_value(&[]),
        0.0
    );
    // nn.Conv2d's default for the patch embedding: U(±1/√48).
    let bound = 1.0 / 48f64.sqrt();
    let w = v["features.0.0.weight"].abs().max().double_value(&[]);
    assert!(w <= bound && w > 0.95 * bound, "{w}");
    let index = &v["features.1.0.attn.relative_position_index"];
    assert_eq!(index.kind(), Kind::Int64);
    assert_eq!(index.size(), [2401]);
    assert_eq!(index.int64_value(&[0]), 84);
    assert_eq!(index.max().int64_value(&[]), 168);
}

/// `psyrun run` and `psyrun features` switch channels-last on: the transformers give the
/// same features (tokens, read out or not) in either layout.
#[test]
fn transformers_match_in_channels_last() {
    use psyrun::plan::TokenReadout;
    let x = image(2, 9);
    for (arch, cut, tokens) in [
        (Arch::VitBx32, "encoder.layers.encoder_layer_1", None),
        (Arch::VitBx32, "encoder.ln", Some(TokenReadout::Map)),
        (Arch::SwinT, "features.3", Some(TokenReadout::Map)),
        (Arch::SwinT, "features.2", None),
    ] {
        let mut b = Backbone::new(arch, cut, CPU).unwrap();
        b.init_random(12);
        b.set_tokens(tokens);
        let plain = b.forward(&x);
        b.set_channels_last(true);
        let cl = b.forward(&x);
        let d = rel_diff(&cl, &plain);
        assert!(d < 1e-5, "{arch} {cut}: {d:e}");
        // What the interpreter flattens: forward_raw in feature_order.
        let raw = flatten_features(&b.forward_raw(&x), Pooling::Off, b.feature_order());
        assert_eq!(raw.size(), [2, plain.numel() as i64 / 2], "{arch} {cut}");
        if tokens.is_some() {
            let d = rel_diff(&raw, &plain.flatten(1, -1));
            assert!(d < 1e-5, "{arch} {cut}: {d:e}");
        }
    }
}
