//! Several cuts from one forward pass (`Backbone::try_features_many`, what `psyrun features
//! --cut A --cut B` runs): each cut's output equals, bit for bit, the output of a pass that
//! stops at that cut, for cuts inside residual branches, shortcuts, dense layers, Inception
//! branches, ConvNeXt's layer scale, transformer blocks and Swin's windows.

use super::*;

const CPU: Device = Device::Cpu;

/// Builds `arch` up to the covering cut of `cuts`, with seeded random weights, and checks
/// one pass against one pass per cut on a batch of two `size` px images, in float32 with
/// and without channels-last and in bfloat16.
fn check(arch: Arch, size: i64, cuts: &[&str]) {
    let cover = catalog::covering_cut(arch, cuts).expect("cut points");
    let mut b = Backbone::new(arch, &cover, CPU).unwrap();
    b.init_random(3);
    tch::manual_seed(11);
    let x = Tensor::randn([2, 3, size, size], (Kind::Float, CPU));
    for (channels_last, precision) in [
        (false, Precision::Fp32),
        (true, Precision::Fp32),
        (true, Precision::Bf16),
    ] {
        b.set_channels_last(channels_last);
        b.set_precision(precision);
        let many = b.try_features_many(&x, cuts).unwrap();
        assert_eq!(many.len(), cuts.len());
        for (y, cut) in many.iter().zip(cuts) {
            let alone = b.try_features(&x, cut).unwrap();
            assert_eq!(y.size(), alone.size(), "{arch} {cut}");
            assert_eq!(y.kind(), Kind::Float, "{arch} {cut}");
            assert!(
                y.equal(&alone),
                "{arch} {cut} (channels-last {channels_last}, {precision:?}): one pass differs \
                 from a pass cut there by {}",
                (y - &alone).abs().max().double_value(&[])
            );
        }
        b.set_precision(Precision::Fp32);
    }
}

#[test]
fn one_pass_gives_each_cut_what_a_pass_cut_there_gives() {
    // Residual branches and the shortcut (run after the main branch), an enclosing cut
    // listed before the cut inside it, the same cut's container.
    check(
        Arch::Resnet18,
        64,
        &[
            "layer2",
            "conv1",
            "layer1.0.conv2",
            "layer2.0.downsample.0",
            "layer2.1.bn1",
            "layer3.0",
        ],
    );
    // RegNet runs its `proj` shortcut first: the covering cut is the whole block.
    check(
        Arch::RegnetYx400mf,
        64,
        &[
            "trunk_output.block2.block2-0.proj",
            "trunk_output.block2.block2-0.f.a",
        ],
    );
    // Dense layers (their own new channels) and the concatenation of a whole block.
    check(
        Arch::Densenet121,
        64,
        &[
            "features.denseblock1.denselayer2.conv1",
            "features.denseblock1",
            "features.transition1.pool",
            "features.denseblock2.denselayer5",
        ],
    );
    // Inception branches, forked sub-branches, function-call pools, transform_input.
    check(
        Arch::InceptionV3,
        96,
        &[
            "Mixed_5b.branch_pool",
            "Mixed_5c.branch5x5_2",
            "Mixed_5d",
            "Mixed_6a.branch3x3dbl_3",
        ],
    );
    // Layer scale multiplies the branch's first module's output.
    check(
        Arch::ConvnextTiny,
        64,
        &[
            "features.1.0.block.0",
            "features.1.1",
            "features.3.0.block.5",
        ],
    );
    // Channel split and shuffle.
    check(
        Arch::ShufflenetV2X0x5,
        64,
        &["stage2.0.branch1", "stage2.1.branch2.3", "stage2"],
    );
    // Transformer blocks: inside each residual, attention's output, whole blocks.
    check(
        Arch::VitBx32,
        224,
        &[
            "encoder.layers.encoder_layer_0.ln_1",
            "encoder.layers.encoder_layer_0.self_attention",
            "encoder.layers.encoder_layer_1.mlp.1",
            "encoder.layers.encoder_layer_2",
        ],
    );
    // Shifted windows and patch merging.
    check(
        Arch::SwinT,
        64,
        &[
            "features.1.0.attn",
            "features.1.1",
            "features.2.reduction",
            "features.3.0.mlp",
        ],
    );
}

/// A cut the pass does not compute is refused, not answered with another module's output
/// or by a pass of its own.
#[test]
fn a_cut_past_the_built_one_is_refused() {
    let mut b = Backbone::new(Arch::Resnet18, "layer1", CPU).unwrap();
    b.init_random(3);
    let x = Tensor::randn([1, 3, 32, 32], (Kind::Float, CPU));
    assert!(matches!(
        b.try_features_many(&x, &["layer1.0", "layer2"]),
        Err(BackboneError::PastCut { .. })
    ));
    // Built into RegNet's main branch, the block's `proj` shortcut is never computed.
    let block = "trunk_output.block2.block2-0";
    let mut b = Backbone::new(Arch::RegnetYx400mf, &format!("{block}.f.a"), CPU).unwrap();
    b.init_random(3);
    let proj = format!("{block}.proj");
    let r = b.try_features_many(&x, &[&proj, &format!("{block}.f.a")]);
    assert!(
        matches!(&r, Err(BackboneError::PastCut { cut, .. }) if *cut == proj),
        "{r:?}"
    );
}
