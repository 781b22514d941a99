//! Parity of CLIP's and DINOv2's image encoders with open_clip 3.3.0 and timm 1.0.31, from
//! weights files saved as the published ones (CPU).
//!
//! `scripts/clip_reference.py parity` builds the reference models with seeded random weights
//! (BatchNorm and LayerNorm parameters, biases, layer scale and tokens randomised too) and
//! saves them as OpenAI and Meta publish them: CLIP as a TorchScript archive of the whole
//! model (text tower included) with float16 weights (`torch.jit.trace`, `torch.jit.save`),
//! DINOv2 as a `torch.save` state dict in the released layout. psyrun builds a backbone at
//! each cut, loads the file through its own readers ([`weights::load_file`]: the TorchScript
//! archive's weights read without running it) and must give the reference's features for
//! the same 2×3×N×N input: max |psyrun − reference| / max |reference| below 1e-4.
//!
//! The files are written into a temporary directory removed afterwards. The test needs the
//! venv's python (`$PSYRUN_PYTHON` under `./dev`) with open_clip_torch and timm, and is
//! ignored where the build found none.
use super::parity_tests::{max_abs, TempDir};
use super::*;
use crate::weights;
use psyrun::checkpoint::Checkpoint;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// (architecture, image size, cuts).
type Case = (Arch, u32, &'static [&'static str]);

/// CLIP RN50: the stem's pool, inside a Bottleneck (the identity `avgpool` at stride 1, the
/// strided anti-aliasing pool, the pool before the downsample conv, its conv), whole
/// blocks and layers, the attention pool (the image embedding); at 64 px the attention
/// pool on a 2×2 map (its position embedding resampled as timm's AttentionPool2d does).
const RN50: &[Case] = &[
    (
        Arch::ClipRn50,
        224,
        &[
            "avgpool",
            "layer1.0.avgpool",
            "layer2.0.avgpool",
            "layer2.0.downsample.-1",
            "layer2.0.downsample.0",
            "layer3.2",
            "layer4",
            "attnpool",
        ],
    ),
    (Arch::ClipRn50, 64, &["layer4.2.act3", "attnpool"]),
];

/// CLIP ViTs (224 px only): the patch conv, `ln_pre` (after the class and position
/// embeddings), attention, QuickGELU, inside the second residual, whole blocks, `ln_post`
/// and `proj` (the image embedding).
const VIT: &[Case] = &[
    (
        Arch::ClipVitBx32,
        224,
        &[
            "conv1",
            "ln_pre",
            "transformer.resblocks.0.attn",
            "transformer.resblocks.3.mlp.gelu",
            "transformer.resblocks.5.ln_2",
            "transformer.resblocks.11",
            "ln_post",
            "proj",
        ],
    ),
    (
        Arch::ClipVitBx16,
        224,
        &[
            "transformer.resblocks.2.attn",
            "transformer.resblocks.7",
            "proj",
        ],
    ),
];

/// DINOv2 at 518 px (the 37×37 grid of the position embedding: nothing resampled): the
/// patch tokens, the first block's LayerNorm (class token and position embedding, and the
/// registers), `qkv`, attention, layer scale, the MLP's GELU, whole blocks, `norm` and the
/// class token (`head`); at 224 and 70 px the position embedding resampled by DINOv2's own
/// formula (16×16 and 5×5 grids).
const DINOV2: &[Case] = &[
    (
        Arch::Dinov2Vits14,
        518,
        &[
            "patch_embed",
            "blocks.0.norm1",
            "blocks.0.attn.qkv",
            "blocks.0.attn",
            "blocks.3.ls1",
            "blocks.5.mlp.act",
            "blocks.11",
            "norm",
            "head",
        ],
    ),
    (
        Arch::Dinov2Vits14,
        224,
        &["blocks.0.norm1", "blocks.6", "head"],
    ),
    (Arch::Dinov2Vits14, 70, &["blocks.0.norm1", "head"]),
    (
        Arch::Dinov2Vits14Reg,
        518,
        &["blocks.0.norm1", "blocks.4.attn.proj", "norm", "head"],
    ),
    (Arch::Dinov2Vits14Reg, 224, &["blocks.0.norm1", "head"]),
    (
        Arch::Dinov2Vitb14,
        518,
        &["blocks.2.attn", "blocks.9.ls2", "head"],
    ),
    (Arch::Dinov2Vitb14Reg, 224, &["blocks.0.norm1", "head"]),
];

/// The weights file `clip_reference.py` writes for `arch`.
fn weights_file(dir: &Path, arch: Arch) -> PathBuf {
    match family(arch) {
        Family::Clip => dir.join(format!("{arch}.pt")),
        _ => dir.join(format!("{arch}_pretrain.pth")),
    }
}

/// Runs the reference for `cases`, then checks psyrun at every cut. Returns the worst
/// relative difference.
fn check(tag: &str, cases: &[Case]) -> f64 {
    let start = Instant::now();
    let dir = TempDir::new(tag);
    let script =
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("scripts/clip_reference.py");
    let specs: Vec<String> = cases
        .iter()
        .map(|(arch, size, cuts)| format!("{arch}@{size}={}", cuts.join(",")))
        .collect();
    let out = super::tests::python()
        .arg(&script)
        .arg("parity")
        .arg(&dir.0)
        .args(&specs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("clip_reference.py: {:.1}s", start.elapsed().as_secs_f64());
    let mut worst = 0.0f64;
    for &(arch, size, cuts) in cases {
        let io: HashMap<String, Tensor> =
            Tensor::read_safetensors(dir.0.join(format!("{arch}.{size}.io.safetensors")))
                .unwrap()
                .into_iter()
                .collect();
        let x = &io["input"];
        let file = weights_file(&dir.0, arch);
        assert_eq!(
            Checkpoint::open(&file).unwrap().is_torchscript(),
            family(arch) == Family::Clip,
            "{file:?}"
        );
        for &cut in cuts {
            let mut b = Backbone::new(arch, cut, CPU).unwrap();
            let r = weights::load_file(&mut b, &file).unwrap_or_else(|e| panic!("{arch}: {e}"));
            assert_eq!(r.loaded, b.built_keys().len(), "{arch} {cut}");
            assert_eq!(r.defaulted, 0, "{arch} {cut}");
            let got = b.features(x, cut);
            let want = &io[&format!("out.{cut}")];
            assert_eq!(got.size(), want.size(), "{arch} @{size} {cut}");
            let scale = max_abs(want);
            assert!(scale > 1e-3, "{arch} {cut}: trivial reference");
            let d = max_abs(&(&got - want)) / scale;
            eprintln!("parity {arch} @{size} {cut}: max abs diff / max abs {d:.2e}");
            assert!(d < 1e-4, "{arch} @{size} {cut}: {d:.3e}");
            worst = worst.max(d);
        }
        // Control: other weights are far off, so the comparison can fail.
        let cut = cuts[cuts.len() - 1];
        let mut other = Backbone::new(arch, cut, CPU).unwrap();
        other.init_random(0);
        let want = &io[&format!("out.{cut}")];
        let d = max_abs(&(other.features(x, cut) - want)) / max_abs(want);
        eprintln!("control {arch} @{size} {cut} with psyrun's own random weights: {d:.2e}");
        assert!(
            d > 0.1,
            "{arch} {cut}: psyrun's own random weights match ({d:.3e})"
        );
    }
    eprintln!(
        "{tag}: worst {worst:.2e}, {:.1}s in all",
        start.elapsed().as_secs_f64()
    );
    worst
}

const CPU: Device = Device::Cpu;

#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch and open_clip_torch (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn clip_rn50_matches_open_clip_from_an_openai_style_torchscript_archive() {
    check("rn50", RN50);
}

#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch and open_clip_torch (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn clip_vits_match_open_clip_from_openai_style_torchscript_archives() {
    check("vit", VIT);
}

#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch and timm (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn dinov2_matches_timm_and_its_own_interpolation_from_released_layout_files() {
    check("dinov2", DINOV2);
}

/// The parity cases at 224 and 70 px can tell DINOv2's two resamplings from each other and
/// from resampling to the size without antialiasing: the models without registers use the
/// scale factor (g + 0.1) / 37 and no antialiasing, those with registers antialiasing.
#[test]
fn dinov2_resamplings_differ_from_the_usual_ones() {
    let pos = Tensor::randn([1, 1 + 37 * 37, 8], (Kind::Float, CPU));
    for g in [16i64, 5] {
        let offset = clip::dinov2_pos_embedding(&pos, g * g, false);
        let aa = clip::dinov2_pos_embedding(&pos, g * g, true);
        for t in [&offset, &aa] {
            assert_eq!(t.size(), [1, 1 + g * g, 8]);
            // The class token's entry is kept.
            assert!(t.narrow(1, 0, 1).equal(&pos.narrow(1, 0, 1)));
        }
        let grid = pos
            .narrow(1, 1, 37 * 37)
            .reshape([1, 37, 37, 8])
            .permute([0, 3, 1, 2]);
        let flat = |t: Tensor| t.permute([0, 2, 3, 1]).reshape([1, g * g, 8]);
        let by_size = flat(grid.upsample_bicubic2d([g, g], false, None, None));
        let antialiased = flat(grid.internal_upsample_bicubic2d_aa([g, g], false, None, None));
        assert!(aa.narrow(1, 1, g * g).equal(&antialiased));
        let patches = offset.narrow(1, 1, g * g);
        for other in [by_size, antialiased] {
            let d = max_abs(&(&patches - &other)) / max_abs(&other);
            assert!(d > 1e-2, "g {g}: {d:.2e}");
        }
    }
    // On its own grid the embedding is used as it is.
    for antialias in [false, true] {
        assert!(clip::dinov2_pos_embedding(&pos, 37 * 37, antialias).equal(&pos));
    }
}
