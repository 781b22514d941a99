//! Parity with torchvision through `torch.save` checkpoints, at many cuts (CPU).
//!
//! `scripts/parity_reference.py` saves torchvision models with seeded random weights
//! (BatchNorm affine parameters and running statistics randomised too, every conv/linear
//! bias, LayerNorm's parameters and ConvNeXt's layer scale) by `torch.save(model.state_dict(), path)`, with torchvision's outputs at the cuts
//! below for a fixed 2×3×64×64 input (128×128 for inception_v3) (eval mode, no grad). psyrun builds a backbone at each
//! cut, loads the `.pth` through its own checkpoint reader ([`weights::load_file`]) and must
//! give the same features: max |psyrun − torchvision| / max |torchvision| below 1e-4.
//!
//! The files (about 1.6 GB, vgg16's 553 MB, wide_resnet50_2's 275 MB and convnext_tiny's 114 MB of it) are written at test time into a temporary
//! directory that is removed afterwards, even when the test fails. The test needs the venv's
//! python (`$PSYRUN_PYTHON` under `./dev`, else `python3`, with torch and torchvision) and
//! is ignored where the build found none.
use super::*;
use crate::weights;
use std::path::{Path, PathBuf};
use std::time::Instant;

const CPU: Device = Device::Cpu;

/// Cuts per architecture, spread over the depth: a stem module, block-internal cuts (a
/// main-branch conv, a downsample conv, a BatchNorm), whole stages, and the classifier
/// (VGG's `avgpool` upsamples the 2×2 map of a 64-pixel input to 7×7).
const CASES: [(Arch, &[&str]); 27] = [
    (
        Arch::Resnet18,
        &[
            "bn1",
            "layer2.0.downsample.0",
            "layer3.1.conv2",
            "layer4",
            "fc",
        ],
    ),
    (
        Arch::Resnet50,
        &[
            "layer1.0.conv3",
            "layer2.0.downsample.0",
            "layer3.1.conv2",
            "layer4.2.bn3",
            "fc",
        ],
    ),
    (
        // Grouped 3×3 convs (32 groups of 4 channels in layer1).
        Arch::Resnext50x32x4d,
        &[
            "layer1.0.conv2",
            "layer2.0.downsample.0",
            "layer3.1.conv2",
            "layer4",
        ],
    ),
    (
        // Twice the inner width of resnet50 (layer1.0.conv1: 64 → 128 channels).
        Arch::WideResnet50x2,
        &["layer1.0.conv1", "layer2.1.bn2", "layer3"],
    ),
    (
        Arch::Vgg16,
        &[
            "features.4",
            "features.14",
            "features.29",
            "avgpool",
            "classifier.3",
        ],
    ),
    (
        Arch::Alexnet,
        &["features.3", "features.9", "avgpool", "classifier.3"],
    ),
    (
        // ReLU6, depthwise convs, inverted residuals with and without their connection, the
        // functional global pool before the classifier.
        Arch::MobilenetV2,
        &[
            "features.1.conv.0.2",
            "features.3",
            "features.5.conv.1.0",
            "features.14.conv.3",
            "classifier",
        ],
    ),
    (
        // Hardswish, squeeze-and-excitation with a hard sigmoid (inside and after the gate),
        // BatchNorm with eps 1e-3.
        Arch::MobilenetV3Small,
        &[
            "features.1.block.1.fc1",
            "features.1",
            "features.5.block.2",
            "features.12",
            "classifier.3",
        ],
    ),
    (
        Arch::MobilenetV3Large,
        &[
            "features.2",
            "features.4.block.2.scale_activation",
            "features.15",
            "avgpool",
        ],
    ),
    (
        // SiLU, squeeze-and-excitation with a sigmoid, stochastic depth on the residual.
        Arch::EfficientnetB0,
        &[
            "features.1.0.block.1",
            "features.2.1.stochastic_depth",
            "features.4.2",
            "features.8",
            "classifier",
        ],
    ),
    (
        // Width 1.2 (make_divisible rounding), depth 1.4.
        Arch::EfficientnetB3,
        &["features.2.0.block.0", "features.5.4", "classifier.1"],
    ),
    (
        // LayerNorm2d, the channels-last LayerNorm, Linear and GELU of a CNBlock, layer
        // scale (randomised by the reference) before stochastic depth, the Flatten module.
        Arch::ConvnextTiny,
        &[
            "features.0",
            "features.1.0.block.2",
            "features.1.2.stochastic_depth",
            "features.3.1",
            "features.6",
            "classifier.1",
            "classifier",
        ],
    ),
    (
        // Ceil-mode max pooling, Fire modules: cuts in either expand branch and after the
        // concatenation.
        Arch::Squeezenet1x0,
        &[
            "features.2",
            "features.3.expand1x1",
            "features.4.expand3x3_activation",
            "features.7",
            "classifier",
        ],
    ),
    (
        Arch::Squeezenet1x1,
        &[
            "features.5",
            "features.9.squeeze_activation",
            "classifier.1",
        ],
    ),
    (
        // Both branches of a strided block, the split of an unstrided one, the channel
        // shuffle after the concatenation, the functional mean before `fc`.
        Arch::ShufflenetV2X0x5,
        &[
            "stage2.0.branch1.2",
            "stage2.0",
            "stage3.1.branch2.4",
            "stage3.3",
            "conv5",
            "fc",
        ],
    ),
    (
        Arch::ShufflenetV2X1x0,
        &["stage2.0.branch2.3", "stage2.2", "stage4"],
    ),
    (
        // The `proj` shortcut run first, grouped 3×3 convs, squeeze-and-excitation, the
        // block's own `activation` after the sum.
        Arch::RegnetYx400mf,
        &[
            "trunk_output.block1.block1-0.proj.0",
            "trunk_output.block2.block2-0.f.se.fc2",
            "trunk_output.block2.block2-1.activation",
            "trunk_output.block3",
            "fc",
        ],
    ),
    (
        Arch::RegnetXx400mf,
        &[
            "stem",
            "trunk_output.block3.block3-2.f.b",
            "trunk_output.block4.block4-0",
        ],
    ),
    (
        // 224 px only: the patch embedding, the class token and position embedding (in the
        // first block's LayerNorm), attention (its first output), inside the second
        // residual (after the first's sum), the MLP's GELU, whole blocks, the final
        // LayerNorm and the head on the class token. (vit_l_16, 16 heads of 64, was checked
        // the same way once at 4 cuts, worst 9.2e-7; its 1.2 GB checkpoint is not written
        // here on every run.)
        Arch::VitBx16,
        &[
            "conv_proj",
            "encoder.layers.encoder_layer_0.ln_1",
            "encoder.layers.encoder_layer_0.self_attention",
            "encoder.layers.encoder_layer_1.ln_2",
            "encoder.layers.encoder_layer_5.mlp.1",
            "encoder.layers.encoder_layer_5.mlp",
            "encoder.layers.encoder_layer_11",
            "encoder.ln",
            "heads",
        ],
    ),
    (
        Arch::VitBx32,
        &[
            "encoder.layers.encoder_layer_2.self_attention",
            "encoder.layers.encoder_layer_7",
            "encoder.ln",
            "heads.head",
        ],
    ),
    (
        // At 100 px: the patch embedding (conv, permute, LayerNorm), window attention
        // unshifted and shifted (25×25 patches padded to 28×28), inside the second residual,
        // patch merging of odd sides (25 → 13, 13 → 7), a stage whose 7×7 map is one window
        // (no shift), the final norm and permute, the head.
        Arch::SwinT,
        &[
            "features.0",
            "features.1.0.attn",
            "features.1.1.attn",
            "features.1.1.norm2",
            "features.2",
            "features.3.1",
            "features.4.reduction",
            "features.5.3.mlp",
            "features.5.5.attn",
            "features.7.1",
            "norm",
            "permute",
            "head",
        ],
    ),
    (
        Arch::SwinS,
        &["features.5.16.attn", "features.5.17", "norm"],
    ),
    (
        // Dense blocks: a layer's first BatchNorm and conv on the concatenation of the block
        // input and the layers before it, a layer's own output, a whole block; the
        // transitions' average pool; the functional ReLU and global pool before the classifier.
        Arch::Densenet121,
        &[
            "features.pool0",
            "features.denseblock1.denselayer3.norm1",
            "features.denseblock2.denselayer4.conv1",
            "features.denseblock2.denselayer12",
            "features.transition2.pool",
            "features.denseblock3",
            "features.norm5",
            "classifier",
        ],
    ),
    (
        Arch::Densenet169,
        &[
            "features.denseblock3.denselayer30.conv2",
            "features.denseblock4",
        ],
    ),
    (
        // transform_input on (as torchvision has it with its published weights); a
        // BasicConv2d's BatchNorm (before the functional ReLU) and the module (after it);
        // cuts inside Inception branches (the ceil-mode pool of branch4); the flatten before
        // `dropout`.
        Arch::Googlenet,
        &[
            "conv1.bn",
            "conv1",
            "inception3a.branch2.1.conv",
            "inception3b.branch4.0",
            "inception4c",
            "maxpool4",
            "inception5b.branch3.1",
            "dropout",
            "fc",
        ],
    ),
    (
        // transform_input on; a 128-pixel input (it needs 75). Function-call pools before a
        // branch (`branch_pool`'s average pool counting the zero padding, InceptionB's and
        // D's max pool branch), factorised 1×7 and 7×1 convs, InceptionE's forked branches
        // (`branch3x3_2a` and `_2b` on `branch3x3_1`'s output), the flatten after `dropout`.
        Arch::InceptionV3,
        &[
            "Conv2d_2b_3x3.bn",
            "maxpool1",
            "Mixed_5b.branch_pool",
            "Mixed_5d",
            "Mixed_6a.branch3x3dbl_3",
            "Mixed_6a",
            "Mixed_6c.branch7x7dbl_4.conv",
            "Mixed_7a",
            "Mixed_7b.branch3x3_2b",
            "Mixed_7b.branch3x3dbl_3a.bn",
            "Mixed_7c.branch_pool",
            "Mixed_7c",
            "fc",
        ],
    ),
    (
        // FusedMBConv: one 3×3 conv (expansion 1), a strided expanding conv and its
        // projection, stochastic depth on the residual; MBConv's squeeze-and-excitation;
        // BatchNorm eps 1e-3.
        Arch::EfficientnetV2S,
        &[
            "features.1.0.block.0",
            "features.2.0.block.1",
            "features.2.1.stochastic_depth",
            "features.3.3",
            "features.4.0.block.2.fc1",
            "features.5.8",
            "features.6.14.block.3",
            "features.7",
            "classifier",
        ],
    ),
];

/// A directory removed when dropped (the checkpoints are large: never leave them behind).
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("psyrun-backbone-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// The reference's BatchNorm statistics and biases are not torchvision's constant defaults,
/// so that eval-mode BatchNorm and every bias are really exercised.
fn assert_randomised(arch: Arch, b: &Backbone) {
    let mut seen = 0;
    for (key, t) in b.variables() {
        if ["running_mean", "running_var", "bias"]
            .iter()
            .any(|s| key.ends_with(s))
        {
            let spread = t.std(true).double_value(&[]);
            assert!(spread > 1e-3, "{arch} {key}: constant in the reference");
            seen += 1;
        }
    }
    assert!(seen > 0, "{arch}: no biases or BatchNorm statistics");
}

#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch, torchvision and numpy (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn parity_with_torchvision_from_torch_save_at_many_cuts() {
    let start = Instant::now();
    let dir = TempDir::new("parity-cuts");
    let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("scripts/parity_reference.py");
    // `PSYRUN_PARITY_ARCHS=densenet121,googlenet` checks only those (while developing).
    let only = std::env::var("PSYRUN_PARITY_ARCHS").ok();
    let cases: Vec<(Arch, &[&str])> = CASES
        .iter()
        .copied()
        .filter(|(arch, _)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|a| a == arch.name()))
        })
        .collect();
    let specs: Vec<String> = cases
        .iter()
        .map(|(arch, cuts)| format!("{arch}={}", cuts.join(",")))
        .collect();
    let out = super::tests::python()
        .arg(&script)
        .arg(&dir.0)
        .args(&specs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("parity_reference.py: {:.1}s", start.elapsed().as_secs_f64());
    let mut worst = 0.0f64;
    let mut checked = 0;
    for &(arch, cuts) in &cases {
        let io: HashMap<String, Tensor> =
            Tensor::read_safetensors(dir.0.join(format!("{arch}.io.safetensors")))
                .unwrap()
                .into_iter()
                .collect();
        let x = &io["input"];
        let file = dir.0.join(format!("{arch}.pth"));
        for &cut in cuts {
            let t = Instant::now();
            let mut b = Backbone::new(arch, cut, CPU).unwrap();
            // The reference model re-normalises its input as torchvision's does with its
            // published weights (scripts/parity_reference.py).
            b.set_transform_input(arch.transforms_input());
            let r = weights::load_file(&mut b, &file).unwrap_or_else(|e| panic!("{arch}: {e}"));
            assert_eq!(r.loaded, b.built_keys().len(), "{arch} {cut}");
            assert_eq!(r.defaulted, 0, "{arch} {cut}");
            assert_eq!(r.loaded + r.ignored, state_keys(arch).len(), "{arch} {cut}");
            let load_s = t.elapsed().as_secs_f64();
            assert_randomised(arch, &b);
            let got = b.features(x, cut);
            let want = &io[&format!("out.{cut}")];
            assert_eq!(got.size(), want.size(), "{arch} {cut}");
            let scale = max_abs(want);
            assert!(scale > 1e-3, "{arch} {cut}: trivial reference");
            let d = max_abs(&(&got - want)) / scale;
            eprintln!(
                "parity {arch}.pth {cut}: max abs diff / max abs {d:.2e} \
                 (load {load_s:.2}s, total {:.2}s)",
                t.elapsed().as_secs_f64()
            );
            assert!(d < 1e-4, "{arch} {cut}: {d:.3e}");
            worst = worst.max(d);
            checked += 1;
        }
        // Control: other weights are far off, so the comparison can fail.
        let cut = cuts[0];
        let mut other = Backbone::new(arch, cut, CPU).unwrap();
        other.init_random(0);
        let want = &io[&format!("out.{cut}")];
        let d = max_abs(&(other.features(x, cut) - want)) / max_abs(want);
        eprintln!("control {arch} {cut} with psyrun's own random weights: {d:.2e}");
        assert!(
            d > 0.1,
            "{arch} {cut}: psyrun's own random weights match ({d:.3e})"
        );
        if arch.transforms_input() {
            // Control: without the re-normalisation the features differ.
            let mut plain = Backbone::new(arch, cut, CPU).unwrap();
            weights::load_file(&mut plain, &file).unwrap();
            let d = max_abs(&(plain.features(x, cut) - want)) / max_abs(want);
            eprintln!("control {arch} {cut} without transform_input: {d:.2e}");
            assert!(d > 1e-2, "{arch} {cut}: transform_input changes nothing");
        }
    }
    assert_eq!(checked, cases.iter().map(|c| c.1.len()).sum::<usize>());
    eprintln!(
        "parity from torch.save: {checked} cuts, worst {worst:.2e}, {:.1}s in all",
        start.elapsed().as_secs_f64()
    );
}
