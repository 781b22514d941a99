//! DenseNet and GoogLeNet: their initialisation, DenseNet's published key layout, and
//! GoogLeNet's training-only heads and `transform_input`. (Their parity with torchvision at
//! many cuts is in `parity_tests.rs`.)
use super::*;
use crate::weights;
use std::path::{Path, PathBuf};

const CPU: Device = Device::Cpu;

fn built(arch: Arch, cut: &str, seed: u64) -> Backbone {
    let mut b = Backbone::new(arch, cut, CPU).unwrap();
    b.init_random(seed);
    b
}

fn std_of(t: &Tensor) -> f64 {
    t.std(true).double_value(&[])
}

fn absmax(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn close(got: f64, want: f64, tol: f64) {
    assert!((got / want - 1.0).abs() < tol, "{got} vs {want}");
}

fn inits(arch: Arch) -> HashMap<String, Init> {
    state_keys(arch)
        .into_iter()
        .map(|k| (k.key, k.init))
        .collect()
}

#[test]
fn random_init_follows_densenet_and_googlenet_schemes() {
    // DenseNet: kaiming_normal_ with fan_in, no conv biases, BatchNorm 1 and 0.
    let d = built(Arch::Densenet121, "features.denseblock2.denselayer1", 3).variables();
    close(
        std_of(&d["features.conv0.weight"]),
        (2.0f64 / (3.0 * 49.0)).sqrt(),
        0.02,
    );
    // Block 1 ends in 64 + 6·32 = 256 channels, halved by transition1.
    close(
        std_of(&d["features.denseblock2.denselayer1.conv1.weight"]),
        (2.0f64 / 128.0).sqrt(),
        0.02,
    );
    close(
        std_of(&d["features.denseblock1.denselayer6.conv2.weight"]),
        (2.0f64 / (128.0 * 9.0)).sqrt(),
        0.02,
    );
    assert!(d["features.denseblock1.denselayer2.norm2.weight"]
        .equal(&Tensor::ones([128], (Kind::Float, CPU))));
    assert!(!d.keys().any(|k| k.contains("conv") && k.ends_with(".bias")));
    // Its classifier: nn.Linear's weight, bias 0.
    let i = inits(Arch::Densenet121);
    assert_eq!(i["classifier.weight"], Init::Uniform(1.0 / 1024f64.sqrt()));
    assert_eq!(i["classifier.bias"], Init::Const(0.0));

    // GoogLeNet: trunc_normal_(std=0.01) convs and linears, nn.Linear's bias for `fc`.
    let g = built(Arch::Googlenet, "inception3a", 5).variables();
    close(std_of(&g["conv1.conv.weight"]), 0.01, 0.03);
    close(std_of(&g["inception3a.branch2.1.conv.weight"]), 0.01, 0.02);
    assert!(absmax(&g["conv3.conv.weight"]) < 0.1);
    assert!(g["conv1.bn.bias"].equal(&Tensor::zeros([64], (Kind::Float, CPU))));
    let fc = built(Arch::Googlenet, "fc", 5).variables();
    close(std_of(&fc["fc.weight"]), 0.01, 0.02);
    let bound = 1.0 / 1024f64.sqrt();
    assert!(absmax(&fc["fc.bias"]) <= bound);
    close(absmax(&fc["fc.bias"]), bound, 0.05);
    // The auxiliary heads have keys (initialised as the rest) but are never built.
    let i = inits(Arch::Googlenet);
    assert_eq!(i["aux1.fc1.weight"], Init::Normal(0.01));
    assert!(!fc.keys().any(|k| k.starts_with("aux")));
}

#[test]
fn densenet_legacy_keys_are_torchvisions() {
    let k = |key| weights::legacy_key(Arch::Densenet121, key);
    assert_eq!(
        k("features.denseblock1.denselayer1.norm.1.weight").as_deref(),
        Some("features.denseblock1.denselayer1.norm1.weight")
    );
    assert_eq!(
        k("features.denseblock4.denselayer16.conv.2.weight").as_deref(),
        Some("features.denseblock4.denselayer16.conv2.weight")
    );
    assert_eq!(
        k("features.denseblock3.denselayer10.norm.2.running_var").as_deref(),
        Some("features.denseblock3.denselayer10.norm2.running_var")
    );
    // Only those: today's keys, other modules, other statistics, other architectures.
    assert_eq!(k("features.denseblock1.denselayer1.norm1.weight"), None);
    assert_eq!(k("features.transition1.norm.1.weight"), None);
    assert_eq!(
        k("features.denseblock1.denselayer1.norm.1.num_batches_tracked"),
        None
    );
    assert_eq!(k("features.denseblock1.denselayer1.norm.3.weight"), None);
    assert_eq!(k("features.denseblock1.denselayer.norm.1.weight"), None);
    assert_eq!(
        weights::legacy_key(Arch::Resnet18, "a.denselayer1.norm.1.weight"),
        None
    );
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `new.pth` (`model.state_dict()` of a seeded random densenet121, BatchNorm
/// statistics randomised) and `old.pth` (the same tensors in the layout of torchvision's
/// published file: `denselayerN.norm.1.weight`, … , and no `num_batches_tracked`, as in
/// files from before PyTorch 0.4.1) with torch.save.
const WRITE_LAYOUTS: &str = r#"
import os, re, sys, torch
sys.path.insert(0, sys.argv[2])
from parity_reference import parity_model
model = parity_model("densenet121")
state = model.state_dict()
torch.save(state, os.path.join(sys.argv[1], "new.pth"))
pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$")
old = {}
for key, value in state.items():
    if key.endswith("num_batches_tracked"):
        continue
    m = pattern.match(key)
    old[m.group(1) + "." + m.group(2) + "." + m.group(3) if m else key] = value
assert sum(1 for k in old if k.endswith(".norm.1.weight")) == 58, "no old layout written"
torch.save(old, os.path.join(sys.argv[1], "old.pth"))
"#;

#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch, torchvision and numpy (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn densenet_published_layout_loads_to_identical_features() {
    let dir = TempDir(std::env::temp_dir().join(format!("psyrun-densenet-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let scripts = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts"));
    let out = super::tests::python()
        .arg("-c")
        .arg(WRITE_LAYOUTS)
        .arg(&dir.0)
        .arg(scripts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let x = {
        tch::manual_seed(11);
        Tensor::randn([2, 3, 64, 64], (Kind::Float, CPU))
    };
    let (new, old) = (dir.0.join("new.pth"), dir.0.join("old.pth"));
    for cut in [
        "features.denseblock1.denselayer2.conv1",
        "features.denseblock3.denselayer7.norm2",
        "classifier",
    ] {
        let mut a = Backbone::new(Arch::Densenet121, cut, CPU).unwrap();
        let ra = weights::load_file(&mut a, &new).unwrap();
        // A lab's `.pth` in the published layout, and the published file itself (a named
        // weight set, loaded as the hub's file is).
        let mut b = Backbone::new(Arch::Densenet121, cut, CPU).unwrap();
        let rb = weights::load_file(&mut b, &old).unwrap();
        let mut c = Backbone::new(Arch::Densenet121, cut, CPU).unwrap();
        let rc = weights::load_published(&mut c, &old).unwrap();
        assert_eq!((ra.defaulted, rb.loaded + rb.defaulted), (0, ra.loaded));
        assert!(rb.defaulted > 0);
        assert_eq!((rc.loaded, rc.ignored), (rb.loaded, rb.ignored));
        assert!(!c.transform_input(), "DenseNet has no transform_input");
        let want = a.features(&x, cut);
        assert!(absmax(&want) > 1e-3, "{cut}: trivial features");
        assert!(
            b.features(&x, cut).equal(&want),
            "{cut}: old layout differs"
        );
        assert!(
            c.features(&x, cut).equal(&want),
            "{cut}: published layout differs"
        );
    }
    // Control: an old-layout key of another architecture is not renamed, but reported.
    let mut r = Backbone::new(Arch::Resnet18, "layer1", CPU).unwrap();
    let e = weights::load_tensors(
        &mut r,
        "test",
        &[(
            "layer1.0.denselayer1.norm.1.weight".into(),
            Tensor::zeros([64], (Kind::Float, CPU)),
        )],
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("layer1.0.denselayer1.norm.1.weight"),
        "{e}"
    );
}

/// Every key of `arch` but those under `skip`, filled with small values.
fn state_without(arch: Arch, skip: &str) -> Vec<(String, Tensor)> {
    state_keys(arch)
        .into_iter()
        .filter(|k| !k.key.starts_with(skip))
        .map(|k| {
            let t = Tensor::full(k.shape.as_slice(), 0.01, (k.kind, CPU));
            (k.key, t)
        })
        .collect()
}

#[test]
fn googlenet_auxiliary_heads_load_but_are_not_required() {
    let all = state_without(Arch::Googlenet, "\0");
    let aux = all.iter().filter(|(k, _)| k.starts_with("aux")).count();
    assert_eq!(aux, 2 * (1 + 5 + 2 + 2));
    // A `googlenet(weights=None).state_dict()` (aux_logits=True): the heads are ignored.
    let mut b = Backbone::new(Arch::Googlenet, "fc", CPU).unwrap();
    let r = weights::load_tensors(&mut b, "test", &all).unwrap();
    assert_eq!((r.loaded, r.ignored), (b.built_keys().len(), aux));
    // The state dict of torchvision's model built from its published weights has no heads.
    let mut b = Backbone::new(Arch::Googlenet, "fc", CPU).unwrap();
    let r = weights::load_tensors(&mut b, "test", &state_without(Arch::Googlenet, "aux")).unwrap();
    assert_eq!(
        (r.loaded, r.ignored, r.defaulted),
        (b.built_keys().len(), 0, 0)
    );
    assert!(catalog::find(Arch::Googlenet, "aux1").is_none());
    assert!(Backbone::new(Arch::Googlenet, "aux1.conv", CPU).is_err());
}

#[test]
fn googlenet_transform_input_is_torchvisions() {
    // x · std / 0.5 + (mean − 0.5) / 0.5 per channel: an ImageNet-normalised image of value
    // v becomes (v − 0.5) / 0.5.
    let v = Tensor::from_slice(&[0.0f32, 0.25, 1.0]);
    let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([1, 3, 1, 1]);
    let image = v.view([1, 1, 1, 3]).expand([1, 3, 2, 3], false);
    let normalised = (&image - &mean) / &std;
    let got = transform_input(&normalised);
    let want = (&image - 0.5) / 0.5;
    assert!(absmax(&(got - want)) < 1e-6);

    // Files load as they are; the published sets turn it on, as torchvision does.
    let dir =
        TempDir(std::env::temp_dir().join(format!("psyrun-googlenet-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("g.safetensors");
    let state = state_without(Arch::Googlenet, "aux");
    Tensor::write_safetensors(&state, &file).unwrap();
    let mut b = Backbone::new(Arch::Googlenet, "conv1.conv", CPU).unwrap();
    weights::load_file(&mut b, &file).unwrap();
    assert!(!b.transform_input());
    let x = Tensor::ones([1, 3, 16, 16], (Kind::Float, CPU));
    let plain = b.features(&x, "conv1.conv");
    weights::load_published(&mut b, &file).unwrap();
    assert!(b.transform_input());
    let transformed = b.features(&x, "conv1.conv");
    b.set_transform_input(false);
    let again = b.features(&transform_input(&x), "conv1.conv");
    assert!(transformed.equal(&again));
    assert!(absmax(&(transformed - plain)) > 1e-3);
    let mut d = Backbone::new(Arch::Densenet121, "features.conv0", CPU).unwrap();
    let dfile = dir.0.join("d.safetensors");
    Tensor::write_safetensors(&state_without(Arch::Densenet121, "\0"), &dfile).unwrap();
    weights::load_published(&mut d, &dfile).unwrap();
    assert!(!d.transform_input());
}

#[test]
fn inception_v3_init_heads_and_input_size() {
    // trunc_normal_(std=0.1) convs (the factorised ones too) and `fc`, nn.Linear's bias;
    // `AuxLogits.fc` 0.001 (never built; its scheme checked).
    let v = built(Arch::InceptionV3, "Mixed_5b.branch5x5_2", 9).variables();
    close(std_of(&v["Conv2d_1a_3x3.conv.weight"]), 0.1, 0.1);
    close(std_of(&v["Mixed_5b.branch5x5_2.conv.weight"]), 0.1, 0.02);
    assert!(v["Conv2d_4a_3x3.bn.weight"].equal(&Tensor::ones([192], (Kind::Float, CPU))));
    let i = inits(Arch::InceptionV3);
    assert_eq!(i["Mixed_6b.branch7x7_2.conv.weight"], Init::Normal(0.1));
    assert_eq!(i["Mixed_7c.branch3x3dbl_3b.conv.weight"], Init::Normal(0.1));
    assert_eq!(i["AuxLogits.conv1.conv.weight"], Init::Normal(0.1));
    assert_eq!(i["AuxLogits.fc.weight"], Init::Normal(0.001));
    assert_eq!(i["fc.weight"], Init::Normal(0.1));
    assert_eq!(i["fc.bias"], Init::Uniform(1.0 / 2048f64.sqrt()));
    // The factorised convs' weights are [cout, cin, kh, kw].
    let shape = |key: &str| {
        state_keys(Arch::InceptionV3)
            .into_iter()
            .find(|k| k.key == key)
            .unwrap()
            .shape
    };
    assert_eq!(shape("Mixed_6b.branch7x7_2.conv.weight"), [128, 128, 1, 7]);
    assert_eq!(shape("Mixed_7b.branch3x3_2b.conv.weight"), [384, 384, 3, 1]);
    // AuxLogits loads when present and is not required.
    let all = state_without(Arch::InceptionV3, "\0");
    let aux = all
        .iter()
        .filter(|(k, _)| k.starts_with("AuxLogits."))
        .count();
    assert_eq!(aux, 2 * 6 + 2);
    let mut b = Backbone::new(Arch::InceptionV3, "Mixed_7a", CPU).unwrap();
    let r = weights::load_tensors(&mut b, "test", &all).unwrap();
    assert!(r.ignored > aux);
    let mut b = Backbone::new(Arch::InceptionV3, "Mixed_7a", CPU).unwrap();
    let without = state_without(Arch::InceptionV3, "AuxLogits.");
    assert_eq!(
        weights::load_tensors(&mut b, "test", &without)
            .unwrap()
            .loaded,
        b.built_keys().len()
    );
    // Trained at 299 pixels; 75 is the least that reaches `fc`, below which it fails cleanly.
    assert_eq!(Arch::InceptionV3.default_input_size(), 299);
    assert_eq!(catalog::min_input_size(Arch::InceptionV3, "fc"), Some(75));
    assert_eq!(
        catalog::output_shape(Arch::InceptionV3, "Mixed_7c", 299),
        Ok(vec![2048, 8, 8])
    );
    assert!(matches!(
        catalog::output_shape(Arch::InceptionV3, "fc", 74),
        Err(catalog::ShapeError::TooSmall { min_input: 75, .. })
    ));
    let mut b = built(Arch::InceptionV3, "fc", 1);
    b.set_transform_input(true);
    let y = b.features(&Tensor::zeros([1, 3, 75, 75], (Kind::Float, CPU)), "fc");
    assert_eq!(y.size(), [1, 1000]);
}

#[test]
fn efficientnet_v2_s_init_and_input_size() {
    // EfficientNet's scheme: kaiming_normal_(fan_out) convs, BatchNorm 1 and 0 (eps 1e-3).
    let v = built(Arch::EfficientnetV2S, "features.2.0.block.1", 2).variables();
    close(
        std_of(&v["features.2.0.block.0.0.weight"]),
        (2.0f64 / (96.0 * 9.0)).sqrt(),
        0.02,
    );
    close(
        std_of(&v["features.2.0.block.1.0.weight"]),
        (2.0f64 / 48.0).sqrt(),
        0.02,
    );
    let i = inits(Arch::EfficientnetV2S);
    assert_eq!(
        i["classifier.1.weight"],
        Init::Uniform(1.0 / 1000f64.sqrt())
    );
    assert_eq!(i["classifier.1.bias"], Init::Const(0.0));
    assert!(matches!(
        catalog::network(Arch::EfficientnetV2S).modules[0].body,
        Body::Seq(ref f) if matches!(f[0].body, Body::Seq(ref c)
            if matches!(c[1].body, Body::Leaf(Op::BatchNorm2d { eps, .. }) if eps == 1e-3))
    ));
    // torchvision's transforms for its weights: resize 384, crop 384.
    assert_eq!(Arch::EfficientnetV2S.default_input_size(), 384);
    assert_eq!(
        catalog::output_shape(Arch::EfficientnetV2S, "features.7", 384),
        Ok(vec![1280, 12, 12])
    );
}
