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
    let arch = Arch::VitB32;
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
    let mut b = Backbone::new(Arch::VitB32, "encoder.layers.encoder_layer_0", CPU).unwrap();
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
    let inits: HashMap<String, Init> = state_keys(Arch::VitB32)
        .into_iter()
        .map(|k| (k.key, k.init))
        .collect();
    assert_eq!(inits["heads.head.weight"], Init::Const(0.0));
    assert_eq!(inits["heads.head.bias"], Init::Const(0.0));
}
