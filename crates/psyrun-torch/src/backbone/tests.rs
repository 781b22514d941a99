//! Tests of the backbones and the weights loader (CPU, small inputs).
//!
//! The torchvision parity tests need the venv's python (`$PSYRUN_PYTHON` under `./dev`, else
//! `python3`, with torch and torchvision); they are ignored where the build found none.
use super::*;
use crate::weights::{self, WeightsError};
use psyrun::models::catalog::ShapeError;
use std::path::{Path, PathBuf};

const CPU: Device = Device::Cpu;

fn input(n: i64, size: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn([n, 3, size, size], (Kind::Float, CPU))
}

/// max |a − b| / max |b|.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let diff = (a - b).abs().max().double_value(&[]);
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    diff / scale
}

/// Top-level cut points plus three nested ones (first, middle, last), and for ResNets a cut
/// inside a block's main branch and one in a downsample path.
fn sample_cuts(arch: Arch) -> Vec<String> {
    let cuts = catalog::cut_points(arch);
    let mut out: Vec<String> = cuts
        .iter()
        .filter(|c| c.depth == 0)
        .map(|c| c.path.clone())
        .collect();
    let nested: Vec<&str> = cuts
        .iter()
        .filter(|c| c.depth > 0)
        .map(|c| c.path.as_str())
        .collect();
    for i in [0, nested.len() / 2, nested.len() - 1] {
        out.push(nested[i].to_owned());
    }
    if family(arch) == Family::Resnet {
        out.push("layer2.0.conv2".into());
        out.push("layer3.0.downsample.0".into());
        out.push("layer4.0.downsample".into());
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn features_shapes_match_catalog() {
    let x = input(1, 64, 0);
    let mut checked = 0;
    for &arch in Arch::ALL {
        for cut in sample_cuts(arch) {
            let expected = match catalog::output_shape(arch, &cut, 64) {
                Ok(s) => s,
                // (The ViTs take 224 px only: `vit_tests` checks them there.)
                Err(ShapeError::TooSmall { .. } | ShapeError::WrongSize { .. }) => continue,
                Err(e) => panic!("{arch} {cut}: {e}"),
            };
            let b = Backbone::new(arch, &cut, CPU).unwrap();
            let y = b.features(&x, &cut);
            let mut want = vec![1i64];
            want.extend(expected.iter().map(|&d| i64::from(d)));
            assert_eq!(y.size(), want, "{arch} {cut}");
            checked += 1;
        }
    }
    eprintln!("checked {checked} cut shapes");
    assert!(checked > 100);
}

/// `<key> <dtype> <shape>` lines written by `scripts/backbone_reference.py keys`.
fn fixture_keys(arch: Arch) -> Vec<(String, String, Vec<i64>)> {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/fixtures/backbone")
        .join(format!("{arch}.keys"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "{l}");
            let shape = if f[2] == "-" {
                vec![]
            } else {
                f[2].split('x').map(|d| d.parse().unwrap()).collect()
            };
            (f[0].to_owned(), f[1].to_owned(), shape)
        })
        .collect()
}

fn dtype_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "float32",
        Kind::Int64 => "int64",
        k => panic!("unexpected kind {k:?}"),
    }
}

#[test]
fn state_keys_match_torchvision() {
    for &arch in Arch::ALL {
        let ours: Vec<(String, String, Vec<i64>)> = state_keys(arch)
            .into_iter()
            .map(|k| (k.key, dtype_name(k.kind).to_owned(), k.shape))
            .collect();
        assert_eq!(ours, fixture_keys(arch), "{arch}");
    }
}

#[test]
fn full_build_var_store_keys_match_torchvision() {
    for &arch in Arch::ALL {
        let last = catalog::cut_points(arch).last().unwrap().path.clone();
        let b = Backbone::new(arch, &last, CPU).unwrap();
        let mut ours: Vec<(String, String, Vec<i64>)> = b
            .variables()
            .into_iter()
            .map(|(k, t)| {
                assert!(!t.requires_grad(), "{arch} {k} requires grad");
                (k, dtype_name(t.kind()).to_owned(), t.size())
            })
            .collect();
        ours.sort();
        // Modules torchvision runs only while training are never built.
        let training: Vec<String> = catalog::training_only(arch)
            .into_iter()
            .map(|(_, n)| format!("{}.", n.name))
            .collect();
        let built = |k: &str| !training.iter().any(|t| k.starts_with(t.as_str()));
        let mut theirs: Vec<_> = fixture_keys(arch)
            .into_iter()
            .filter(|(k, ..)| built(k))
            .collect();
        theirs.sort();
        assert_eq!(ours, theirs, "{arch}");
        let full: Vec<StateKey> = b
            .full_state_keys()
            .into_iter()
            .filter(|k| built(&k.key))
            .collect();
        assert_eq!(
            b.built_keys().to_vec(),
            full,
            "{arch}: a full build has every key"
        );
    }
}

fn var_keys(b: &Backbone) -> Vec<String> {
    let mut k: Vec<String> = b.variables().into_keys().collect();
    k.sort();
    k
}

#[test]
fn builds_only_up_to_the_cut() {
    let b = Backbone::new(Arch::Resnet50, "layer2", CPU).unwrap();
    let keys = var_keys(&b);
    assert!(keys.iter().any(|k| k.starts_with("layer2.3.")));
    assert!(!keys
        .iter()
        .any(|k| k.starts_with("layer3") || k.starts_with("layer4") || k.starts_with("fc")));
    // The built keys are a prefix of torchvision's order.
    let full = b.full_state_keys();
    assert_eq!(b.built_keys(), &full[..b.built_keys().len()]);
    assert_eq!(b.stages().len(), 6); // conv1 bn1 relu maxpool layer1 layer2

    let b = Backbone::new(Arch::Resnet50, "layer4.0.conv2", CPU).unwrap();
    let keys = var_keys(&b);
    assert!(keys.contains(&"layer4.0.conv2.weight".to_owned()));
    assert!(keys.contains(&"layer4.0.bn1.num_batches_tracked".to_owned()));
    assert!(!keys.iter().any(|k| k.starts_with("layer4.0.bn2")
        || k.starts_with("layer4.0.conv3")
        || k.starts_with("layer4.0.downsample")));

    let b = Backbone::new(Arch::Resnet50, "layer4.0.downsample.0", CPU).unwrap();
    let keys = var_keys(&b);
    assert!(keys.contains(&"layer4.0.bn3.running_var".to_owned()));
    assert!(keys.contains(&"layer4.0.downsample.0.weight".to_owned()));
    assert!(!keys.iter().any(|k| k.starts_with("layer4.0.downsample.1")
        || k.starts_with("layer4.1")
        || k.starts_with("fc")));

    let b = Backbone::new(Arch::Vgg16, "features.16", CPU).unwrap();
    assert!(!var_keys(&b).iter().any(|k| k.starts_with("classifier")));
    assert!(var_keys(&b).contains(&"features.14.bias".to_owned()));
}

#[test]
fn bad_cuts() {
    assert_eq!(
        Backbone::new(Arch::Resnet18, "layer1.0.relu", CPU).unwrap_err(),
        BackboneError::UnknownCut {
            arch: Arch::Resnet18,
            cut: "layer1.0.relu".into()
        }
    );
    assert!(Backbone::new(Arch::Vgg11, "layer1", CPU).is_err());
    let b = Backbone::new(Arch::Resnet18, "layer2", CPU).unwrap();
    let x = input(1, 32, 0);
    assert!(matches!(
        b.try_features(&x, "layer3"),
        Err(BackboneError::PastCut { .. })
    ));
    assert!(matches!(
        Backbone::new(Arch::Resnet18, "layer2.0.conv1", CPU)
            .unwrap()
            .try_features(&x, "layer2"),
        Err(BackboneError::PastCut { .. })
    ));
    assert!(b.try_features(&x, "layer2.1.bn2").is_ok());
    assert!(b.try_features(&x, "layer1").is_ok());
    assert!(matches!(
        b.try_features(&x, "layer2.1.relu"),
        Err(BackboneError::UnknownCut { .. })
    ));
}

#[test]
fn earlier_cut_equals_a_backbone_built_there() {
    let mut full = Backbone::new(Arch::Resnet18, "layer3", CPU).unwrap();
    full.init_random(5);
    let x = input(2, 64, 1);
    for cut in [
        "layer1",
        "layer2.0.conv2",
        "layer2.0.downsample.0",
        "layer2.0",
        "layer3",
    ] {
        let mut b = Backbone::new(Arch::Resnet18, cut, CPU).unwrap();
        b.init_random(5);
        assert!(
            full.features(&x, cut).equal(&b.forward(&x)),
            "{cut}: differs from a backbone built there"
        );
    }
}

#[test]
fn block_cuts_follow_torchvision_forward() {
    // Hand-written torchvision BasicBlock forward for layer2.0 of resnet18.
    let mut b = Backbone::new(Arch::Resnet18, "layer2", CPU).unwrap();
    b.init_random(3);
    let v = b.variables();
    let x = input(2, 64, 2);
    let bn = |x: &Tensor, p: &str| {
        x.batch_norm(
            Some(&v[&format!("{p}.weight")]),
            Some(&v[&format!("{p}.bias")]),
            Some(&v[&format!("{p}.running_mean")]),
            Some(&v[&format!("{p}.running_var")]),
            false,
            0.1,
            1e-5,
            true,
        )
    };
    let conv = |x: &Tensor, p: &str, s: i64, pad: i64| {
        x.conv2d::<Tensor>(
            &v[&format!("{p}.weight")],
            None,
            [s, s],
            [pad, pad],
            [1, 1],
            1,
        )
    };
    let l1 = b.features(&x, "layer1");
    let c1 = conv(&l1, "layer2.0.conv1", 2, 1);
    let h = bn(&c1, "layer2.0.bn1").relu();
    let c2 = conv(&h, "layer2.0.conv2", 1, 1);
    let main = bn(&c2, "layer2.0.bn2");
    let d0 = conv(&l1, "layer2.0.downsample.0", 2, 0);
    let d1 = bn(&d0, "layer2.0.downsample.1");
    let out = (&main + &d1).relu();
    for (cut, want) in [
        ("layer2.0.conv1", &c1),
        ("layer2.0.conv2", &c2),
        ("layer2.0.bn2", &main),
        ("layer2.0.downsample.0", &d0),
        ("layer2.0.downsample", &d1),
        ("layer2.0", &out),
    ] {
        let got = b.features(&x, cut);
        assert!(
            rel_diff(&got, want) < 1e-6,
            "{cut}: {}",
            rel_diff(&got, want)
        );
    }
}

#[test]
fn frozen_and_no_grad() {
    let mut b = Backbone::new(Arch::Vgg11Bn, "features.6", CPU).unwrap();
    b.init_random(0);
    assert!(b.var_store().trainable_variables().is_empty());
    assert!(b.variables().values().all(|t| !t.requires_grad()));
    let x = input(1, 32, 0).set_requires_grad(true);
    assert!(!b.features(&x, "features.6").requires_grad());
    let y = b.features_with_grad(&x, "features.6").unwrap();
    assert!(y.requires_grad());
    y.sum(Kind::Float).backward();
    assert!(x.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(b.variables().values().all(|t| !t.grad().defined()));
}

#[test]
fn batchnorm_eval_keeps_running_stats_train_updates_them() {
    let plan = psyrun::plan::Backbone {
        network: psyrun::plan::Network::Catalog(psyrun::plan::CatalogNet {
            arch: Arch::Resnet18,
            weights: psyrun::plan::Weights::Random,
            cut: "layer1".into(),
        }),
        pooling: Pooling::Off,
        batchnorm: BatchNorm::Eval,
        tokens: None,
        sidecar: None,
    };
    let mut b = Backbone::from_plan(&plan, CPU).unwrap();
    let mut events = psyrun::progress::Recorder::default();
    let go = std::sync::atomic::AtomicBool::new(false);
    weights::apply(
        &mut b,
        &psyrun::plan::Weights::Random,
        0,
        Path::new("."),
        &mut events,
        &go,
    )
    .unwrap();
    let snapshot = |b: &Backbone| -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = b
            .variables()
            .into_iter()
            .filter(|(k, _)| k.contains("running_") || k.ends_with("num_batches_tracked"))
            .map(|(k, t)| (k, t.copy()))
            .collect();
        v.sort_by(|a, c| a.0.cmp(&c.0));
        v
    };
    let before = snapshot(&b);
    assert_eq!(before.len(), 5 * 3); // bn1 + 4 bns in layer1, 3 buffers each
    let x = input(2, 64, 0);
    assert_eq!(b.batchnorm(), BatchNorm::Eval);
    let eval1 = b.forward(&x);
    let eval2 = b.forward(&x);
    assert!(eval1.equal(&eval2));
    for ((k, a), (_, c)) in before.iter().zip(snapshot(&b)) {
        assert!(a.equal(&c), "{k} changed in eval mode");
    }

    b.set_batchnorm(BatchNorm::Train);
    let train = b.forward(&x);
    assert!(!train.equal(&eval1));
    for ((k, a), (_, c)) in before.iter().zip(snapshot(&b)) {
        assert!(!a.equal(&c), "{k} unchanged in train mode");
        if k.ends_with("num_batches_tracked") {
            assert_eq!(c.int64_value(&[]), 1, "{k}");
        }
    }
    // Momentum 0.1: running_mean = 0.9·0 + 0.1·batch mean of bn1's input.
    let v = b.variables();
    let conv1 = x.conv2d::<Tensor>(&v["conv1.weight"], None, [2, 2], [3, 3], [1, 1], 1);
    let batch_mean = conv1.mean_dim(&[0i64, 2, 3][..], false, Kind::Float);
    assert!(rel_diff(&v["bn1.running_mean"], &(batch_mean * 0.1)) < 1e-5);
    // Back to eval: the drifted statistics are used, nothing changes any more.
    b.set_batchnorm(BatchNorm::Eval);
    let after = snapshot(&b);
    let _ = b.forward(&x);
    for ((k, a), (_, c)) in after.iter().zip(snapshot(&b)) {
        assert!(a.equal(&c), "{k} changed in eval mode");
    }
}

#[test]
fn random_init_is_seeded_and_follows_torchvision_schemes() {
    let all_equal = |a: &Backbone, b: &Backbone| {
        let (va, vb) = (a.variables(), b.variables());
        va.len() == vb.len() && va.iter().all(|(k, t)| t.equal(&vb[k]))
    };
    let build = |arch, cut, seed| {
        let mut b = Backbone::new(arch, cut, CPU).unwrap();
        b.init_random(seed);
        b
    };
    let a = build(Arch::Resnet18, "layer2", 7);
    let b = build(Arch::Resnet18, "layer2", 7);
    let c = build(Arch::Resnet18, "layer2", 8);
    assert!(all_equal(&a, &b), "same seed, different weights");
    let (va, vc) = (a.variables(), c.variables());
    assert!(!va["conv1.weight"].equal(&vc["conv1.weight"]));
    assert!(!va["layer2.1.conv2.weight"].equal(&vc["layer2.1.conv2.weight"]));
    // A variable's values do not depend on the cut.
    let d = build(Arch::Resnet18, "layer1.0.conv1", 7);
    assert!(d.variables()["layer1.0.conv1.weight"].equal(&va["layer1.0.conv1.weight"]));

    let std = |t: &Tensor| t.std(true).double_value(&[]);
    let absmax = |t: &Tensor| t.abs().max().double_value(&[]);
    let close =
        |got: f64, want: f64, tol: f64| assert!((got / want - 1.0).abs() < tol, "{got} vs {want}");
    // resnet: kaiming_normal(fan_out) convs, BN 1/0, fc nn.Linear default.
    close(
        std(&va["conv1.weight"]),
        (2.0f64 / (64.0 * 49.0)).sqrt(),
        0.02,
    );
    close(
        std(&va["layer2.0.conv1.weight"]),
        (2.0f64 / (128.0 * 9.0)).sqrt(),
        0.02,
    );
    assert!(va["bn1.weight"].equal(&Tensor::ones([64], (Kind::Float, CPU))));
    assert!(va["bn1.bias"].equal(&Tensor::zeros([64], (Kind::Float, CPU))));
    assert!(va["bn1.running_var"].equal(&Tensor::ones([64], (Kind::Float, CPU))));
    let fc = build(Arch::Resnet18, "fc", 1).variables();
    let bound = 1.0 / 512f64.sqrt();
    assert!(absmax(&fc["fc.weight"]) <= bound);
    close(absmax(&fc["fc.weight"]), bound, 0.01);
    close(std(&fc["fc.weight"]), bound / 3f64.sqrt(), 0.02);
    assert!(absmax(&fc["fc.bias"]) <= bound);
    // vgg: conv bias 0, linear N(0, 0.01) bias 0.
    let vgg = build(Arch::Vgg11, "features.3", 1).variables();
    close(
        std(&vgg["features.0.weight"]),
        (2.0f64 / (64.0 * 9.0)).sqrt(),
        0.05,
    );
    close(
        std(&vgg["features.3.weight"]),
        (2.0f64 / (128.0 * 9.0)).sqrt(),
        0.02,
    );
    assert_eq!(absmax(&vgg["features.3.bias"]), 0.0);
    // (The 100M-value classifier is slow to fill in a debug build: check its scheme.)
    let inits: HashMap<String, Init> = state_keys(Arch::Vgg11)
        .into_iter()
        .map(|k| (k.key, k.init))
        .collect();
    assert_eq!(inits["classifier.0.weight"], Init::Normal(0.01));
    assert_eq!(inits["classifier.6.bias"], Init::Const(0.0));
    let sample = Tensor::from_slice(&random_values(
        1,
        "classifier.0.weight",
        100_000,
        Init::Normal(0.01),
    ));
    close(std(&sample), 0.01, 0.02);
    assert!(sample.mean(Kind::Float).double_value(&[]).abs() < 1e-4);
    // alexnet: U(±1/√fan_in) weights and biases.
    let alex = build(Arch::Alexnet, "features.3", 1).variables();
    let bound = 1.0 / (3.0f64 * 121.0).sqrt();
    assert!(absmax(&alex["features.0.weight"]) <= bound);
    close(absmax(&alex["features.0.weight"]), bound, 0.01);
    assert!(absmax(&alex["features.0.bias"]) <= bound);
    let bound = 1.0 / (64.0f64 * 25.0).sqrt();
    close(std(&alex["features.3.weight"]), bound / 3f64.sqrt(), 0.02);
}

#[test]
fn pooling() {
    let x = input(2, 8, 3).reshape([2, 3, 8, 8]);
    assert_eq!(pool(&x, Pooling::Off).size(), [2, 192]);
    let avg = pool(&x, Pooling::Avg { h: 1, w: 1 });
    assert_eq!(avg.size(), [2, 3]);
    let mean = x.mean_dim(&[2i64, 3][..], false, Kind::Float);
    assert!(rel_diff(&avg, &mean) < 1e-6);
    let max = pool(&x, Pooling::Max { h: 1, w: 1 });
    assert!(max.equal(&x.amax(&[2i64, 3][..], false)));
    assert_eq!(pool(&x, Pooling::Avg { h: 2, w: 4 }).size(), [2, 24]);
    let y = pool(&x, Pooling::Max { h: 2, w: 2 }).reshape([2, 3, 2, 2]);
    assert!(y.equal(&x.max_pool2d([4, 4], [4, 4], [0, 0], [1, 1], false)));
    let flat = Tensor::ones([2, 10], (Kind::Float, CPU));
    assert!(pool(&flat, Pooling::Off).equal(&flat));
}

#[test]
fn channels_last_maps_flatten_by_row_column_channel_without_a_copy() {
    let mut b = Backbone::new(Arch::Resnet18, "layer1", CPU).unwrap();
    b.init_random(2);
    let x = input(3, 32, 6);
    let chw = pool(&b.forward(&x), Pooling::Off);
    assert_eq!(b.feature_order(), FeatureOrder::Chw);
    let raw = b.forward_raw(&x);
    assert!(raw.is_contiguous());
    assert!(flatten_features(&raw, Pooling::Off, FeatureOrder::Chw).equal(&chw));

    b.set_channels_last(true);
    assert_eq!(b.feature_order(), FeatureOrder::Hwc);
    let raw = b.forward_raw(&x);
    assert_eq!(raw.size(), [3, 64, 8, 8]);
    assert!(!raw.is_contiguous(), "channels-last strides");
    let hwc = flatten_features(&raw, Pooling::Off, FeatureOrder::Hwc);
    assert_eq!(hwc.size(), [3, 64 * 8 * 8]);
    assert_eq!(hwc.data_ptr(), raw.data_ptr(), "flattened without a copy");
    // The same numbers as torchvision's order, permuted: feature (c, y, x) of the CHW
    // flattening is (y, x, c) of the HWC one.
    let want = chw
        .view([3, 64, 8, 8])
        .permute([0, 2, 3, 1])
        .reshape([3, -1]);
    assert!(rel_diff(&hwc, &want) < 1e-6);
    // `forward` still gives torchvision's layout.
    assert!(b.forward(&x).is_contiguous());
    // Pooled maps and flat features.
    let pooled = flatten_features(&raw, Pooling::Avg { h: 2, w: 2 }, FeatureOrder::Hwc);
    let want = pool(&raw.contiguous(), Pooling::Avg { h: 2, w: 2 })
        .view([3, 64, 2, 2])
        .permute([0, 2, 3, 1])
        .reshape([3, -1]);
    assert!(rel_diff(&pooled, &want) < 1e-6);
    let flat = Tensor::ones([2, 10], (Kind::Float, CPU));
    assert!(flatten_features(&flat, Pooling::Off, FeatureOrder::Hwc).equal(&flat));
}

#[test]
fn channels_last_matches() {
    let x = input(2, 64, 4);
    for (arch, cut) in [(Arch::Resnet18, "layer3"), (Arch::Vgg11Bn, "avgpool")] {
        let mut b = Backbone::new(arch, cut, CPU).unwrap();
        b.init_random(11);
        let plain = b.forward(&x);
        b.set_channels_last(true);
        assert!(b.channels_last());
        let w = &b.variables()[if arch == Arch::Resnet18 {
            "conv1.weight"
        } else {
            "features.0.weight"
        }];
        assert!(!w.is_contiguous(), "weights not in channels-last layout");
        let cl = b.forward(&x);
        assert!(cl.is_contiguous());
        let d = rel_diff(&cl, &plain);
        eprintln!("{arch} {cut}: channels-last max rel diff {d:.2e}");
        assert!(d < 1e-5, "{arch} {cut}: {d}");
        b.set_channels_last(false);
        assert!(b.variables().values().all(|t| t.is_contiguous()));
        assert!(b.forward(&x).equal(&plain));
    }
}

#[test]
#[cfg_attr(
    not(psyrun_cuda_tests),
    ignore = "needs a CUDA GPU (nvidia-smi at build time, or PSYRUN_TEST_CUDA=1)"
)]
fn cuda_matches_cpu() {
    assert!(
        tch::Cuda::is_available(),
        "a GPU was found at build time, but libtorch sees no CUDA device"
    );
    let x = input(2, 64, 5);
    for (arch, cut) in [
        (Arch::Resnet50, "layer3.1.conv2"),
        (Arch::Vgg11Bn, "classifier.3"),
    ] {
        let mut b = Backbone::new(arch, cut, CPU).unwrap();
        b.init_random(9);
        let cpu = b.forward(&x);
        b.to_device(Device::Cuda(0));
        assert!(b
            .variables()
            .values()
            .all(|t| t.device() == Device::Cuda(0)));
        let gpu = b.forward(&x.to_device(Device::Cuda(0))).to_device(CPU);
        // Float32 convolutions say `allow_tf32 = false`, whatever libtorch's global default:
        // TensorFloat-32 (10-bit mantissa) would be off by about 1e-3.
        let d = rel_diff(&gpu, &cpu);
        b.set_channels_last(true);
        let gpu_cl = b.forward(&x.to_device(Device::Cuda(0))).to_device(CPU);
        let d_cl = rel_diff(&gpu_cl, &cpu);
        b.set_precision(Precision::Tf32);
        let gpu_tf32 = b.forward(&x.to_device(Device::Cuda(0))).to_device(CPU);
        let d_tf32 = rel_diff(&gpu_tf32, &cpu);
        b.set_precision(Precision::Fp32);
        eprintln!(
            "{arch} {cut}: cuda vs cpu max rel diff {d:.2e}, channels-last {d_cl:.2e}, \
             tf32 {d_tf32:.2e}"
        );
        assert!(d < 1e-4, "{arch} {cut}: {d}");
        assert!(d_cl < 1e-4, "{arch} {cut} channels-last: {d_cl}");
        assert!(d_tf32 < 1e-2, "{arch} {cut} tf32: {d_tf32}");
    }
}

// ---------------------------------------------------------------------------------------------
// Weights loading.

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("psyrun-backbone-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every torchvision key of `arch` as a tensor of its shape: filled with `value`.
fn full_state(arch: Arch, value: f64) -> Vec<(String, Tensor)> {
    state_keys(arch)
        .into_iter()
        .map(|k| {
            let t = Tensor::full(k.shape.as_slice(), value, (k.kind, CPU));
            (k.key, t)
        })
        .collect()
}

#[test]
fn load_reports_every_problem_at_once() {
    let mut b = Backbone::new(Arch::Resnet18, "layer1", CPU).unwrap();
    b.init_random(1);
    let before = b.variables()["conv1.weight"].copy();
    let mut state: Vec<(String, Tensor)> = full_state(Arch::Resnet18, 0.5)
        .into_iter()
        .filter(|(k, _)| k != "layer1.0.conv1.weight" && k != "bn1.bias")
        .collect();
    state.push((
        "module.conv1.weight".into(),
        Tensor::zeros([1], (Kind::Float, CPU)),
    ));
    state.push((
        "layer9.weight".into(),
        Tensor::zeros([1], (Kind::Float, CPU)),
    ));
    for (k, t) in state.iter_mut() {
        if k == "conv1.weight" {
            *t = Tensor::zeros([64, 3, 3, 3], (Kind::Float, CPU));
        }
        if k == "layer1.1.bn2.weight" {
            *t = t.to_kind(Kind::Int8);
        }
        if k == "layer4.1.conv2.weight" {
            // Past the cut: neither its shape nor its dtype matters.
            *t = Tensor::zeros([1], (Kind::Int8, CPU));
        }
    }
    let err = weights::load_tensors(&mut b, "test", &state).unwrap_err();
    let WeightsError::Mismatch(m) = &err else {
        panic!("{err}")
    };
    assert_eq!(m.missing, ["bn1.bias", "layer1.0.conv1.weight"]);
    assert_eq!(m.unexpected, ["layer9.weight", "module.conv1.weight"]);
    assert_eq!(m.shapes.len(), 1);
    assert_eq!(
        m.shapes[0].to_string(),
        "conv1.weight: expected [64, 3, 7, 7], found [64, 3, 3, 3]"
    );
    assert_eq!(
        m.dtypes,
        ["layer1.1.bn2.weight: expected a float type, found Int8"]
    );
    let text = err.to_string();
    for part in [
        "missing keys (2)",
        "unexpected keys (2)",
        "shape mismatches (1)",
        "unusable dtypes (1)",
        "cut after `layer1`",
    ] {
        assert!(text.contains(part), "{part} not in:\n{text}");
    }
    assert!(
        b.variables()["conv1.weight"].equal(&before),
        "changed on error"
    );

    // A full torchvision state loads into the cut: keys past it ignored.
    let state = full_state(Arch::Resnet18, 0.5);
    let r = weights::load_tensors(&mut b, "test", &state).unwrap();
    assert_eq!(r.loaded, b.built_keys().len());
    assert_eq!(r.ignored, state.len() - b.built_keys().len());
    assert_eq!(r.defaulted, 0);
    assert_eq!(
        b.variables()["conv1.weight"]
            .mean(Kind::Float)
            .double_value(&[]),
        0.5
    );
}

#[test]
fn load_safetensors_file_converts_half_types() {
    let dir = temp_dir("st");
    let mut src = Backbone::new(Arch::Vgg11Bn, "features.4", CPU).unwrap();
    src.init_random(3);
    let x = input(1, 32, 0);
    let want = src.forward(&x);
    // bfloat16 / float16 / float64 tensors, num_batches_tracked left out (old checkpoints).
    let mut named: Vec<(String, Tensor)> = src
        .variables()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| {
            let t = match k.as_str() {
                "features.0.weight" => t.to_kind(Kind::Half),
                "features.1.weight" => t.to_kind(Kind::BFloat16),
                "features.0.bias" => t.to_kind(Kind::Double),
                _ => t,
            };
            (k, t)
        })
        .collect();
    named.push((
        "classifier.6.bias".into(),
        Tensor::zeros([1000], (Kind::Float, CPU)),
    ));
    let file = dir.join("w.safetensors");
    Tensor::write_safetensors(&named, &file).unwrap();

    let mut b = Backbone::new(Arch::Vgg11Bn, "features.4", CPU).unwrap();
    let r = weights::load_file(&mut b, &file).unwrap();
    assert_eq!(r.defaulted, 1);
    assert_eq!(r.ignored, 1);
    assert_eq!(r.loaded, b.built_keys().len() - 1);
    let v = b.variables();
    assert_eq!(v["features.0.weight"].kind(), Kind::Float);
    assert!(v["features.1.bias"].equal(&src.variables()["features.1.bias"]));
    let got = b.forward(&x);
    let d = rel_diff(&got, &want);
    assert!(d < 1e-2, "half-precision weights: {d}");

    // Other formats.
    let pth = dir.join("w.pth");
    assert!(matches!(
        weights::load_file(&mut b, &pth),
        Err(WeightsError::Checkpoint {
            source: psyrun::checkpoint::CheckpointError::Io { .. },
            ..
        })
    ));
    assert!(matches!(
        weights::load_file(&mut b, &dir.join("w.npz")),
        Err(WeightsError::UnknownFormat { .. })
    ));
    std::fs::write(dir.join("bad.safetensors"), b"\x05\0\0\0\0\0\0\0{\"a\":").unwrap();
    let e = weights::load_file(&mut b, &dir.join("bad.safetensors")).unwrap_err();
    assert!(matches!(e, WeightsError::Format { .. }), "{e}");
    assert!(matches!(
        weights::load_file(&mut b, &dir.join("absent.safetensors")),
        Err(WeightsError::Io { .. })
    ));
    // Through the plan.
    let mut events = psyrun::progress::Recorder::default();
    let r = weights::apply(
        &mut b,
        &psyrun::plan::Weights::File("w.safetensors".into()),
        0,
        &dir,
        &mut events,
        &Default::default(),
    )
    .unwrap();
    assert!(r.is_some());
    // A torchvision set neither cached nor downloadable (a closed port on 127.0.0.1).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hub = psyrun::hub::Hub::new(
        dir.join("hub"),
        &format!("http://{}/models", port.local_addr().unwrap()),
    );
    drop(port);
    let go = std::sync::atomic::AtomicBool::new(false);
    let e = weights::load_torchvision(&mut b, &hub, "IMAGENET1K_V1", &mut events, &go).unwrap_err();
    assert!(
        matches!(e, WeightsError::Hub(psyrun::hub::HubError::Download { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("vgg11_bn-6002323d.pth"), "{e}");
    assert!(events.events.is_empty(), "{:?}", events.events);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Parity with torchvision.

/// The python with torch and torchvision that the Python-parity tests run: `PSYRUN_PYTHON`
/// (which `./dev` sets to its venv's), else `python3`.
pub(super) fn python() -> std::process::Command {
    std::process::Command::new(
        std::env::var_os("PSYRUN_PYTHON").unwrap_or_else(|| "python3".into()),
    )
}

fn read_named(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .into_iter()
        .collect()
}

#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch, torchvision and numpy (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn parity_with_torchvision() {
    let dir = temp_dir("parity");
    let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("scripts/backbone_reference.py");
    let t0 = std::time::Instant::now();
    let out = python()
        .arg(&script)
        .arg("parity")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("reference written in {:.1}s", t0.elapsed().as_secs_f64());
    let cases: [(Arch, &[&str]); 3] = [
        (
            Arch::Resnet18,
            &[
                "layer1",
                "layer3.1.conv2",
                "layer4",
                "layer4.0.downsample.0",
                "fc",
            ],
        ),
        (Arch::Vgg11Bn, &["features.10", "classifier.3"]),
        (Arch::Alexnet, &["features.5", "avgpool"]),
    ];
    let mut worst = 0.0f64;
    for (arch, cuts) in cases {
        let io = read_named(&dir.join(format!("{arch}.io.safetensors")));
        let x = &io["input"];
        let weights_file = dir.join(format!("{arch}.safetensors"));
        for &cut in cuts {
            let t = std::time::Instant::now();
            let mut b = Backbone::new(arch, cut, CPU).unwrap();
            let r = weights::load_file(&mut b, &weights_file).unwrap();
            assert_eq!(r.loaded, b.built_keys().len());
            assert_eq!(r.loaded + r.ignored, state_keys(arch).len());
            let got = b.features(x, cut);
            let want = &io[&format!("out.{cut}")];
            assert!(
                want.abs().max().double_value(&[]) > 1e-3,
                "{cut}: trivial reference"
            );
            let d = rel_diff(&got, want);
            eprintln!(
                "parity {arch} {cut}: max rel diff {d:.2e} ({:.2}s)",
                t.elapsed().as_secs_f64()
            );
            assert!(d < 1e-4, "{arch} {cut}: {d}");
            worst = worst.max(d);
            if cut == "layer4" || cut == "classifier.3" {
                b.set_channels_last(true);
                let d = rel_diff(&b.features(x, cut), &got);
                eprintln!("parity {arch} {cut}: channels-last vs default {d:.2e}");
                assert!(d < 1e-5);
            }
        }
        if arch == Arch::Resnet18 {
            // Train-mode BatchNorm: batch statistics, running statistics updated.
            let mut b = Backbone::new(arch, "layer1", CPU).unwrap();
            weights::load_file(&mut b, &weights_file).unwrap();
            b.set_batchnorm(BatchNorm::Train);
            let got = b.features(x, "layer1");
            let d = rel_diff(&got, &io["train.layer1"]);
            eprintln!("parity {arch} layer1 (train-mode BN): max rel diff {d:.2e}");
            assert!(d < 1e-4, "train-mode output: {d}");
            let vars = b.variables();
            let mut n = 0;
            for (k, want) in io.iter() {
                let Some(key) = k.strip_prefix("train.state.") else {
                    continue;
                };
                let have = &vars[key];
                if have.kind() == Kind::Int64 {
                    assert_eq!(have.int64_value(&[]), want.int64_value(&[]), "{key}");
                } else {
                    let d = rel_diff(have, want);
                    assert!(d < 1e-5, "{key}: {d}");
                }
                n += 1;
            }
            assert_eq!(n, 10);
        }
    }
    eprintln!("parity: worst max rel diff {worst:.2e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same random resnet18 as `parity_with_torchvision`, saved by `torch.save` (plain, and
/// nested under `state_dict` with DataParallel's `module.` keys): read by psyrun's own
/// checkpoint reader, it gives torchvision's features.
#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch, torchvision and numpy (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn parity_with_torchvision_from_torch_save_checkpoints() {
    let dir = temp_dir("parity-pth");
    let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("scripts/checkpoint_fixtures.py");
    let out = python()
        .arg(&script)
        .arg("parity")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let io = read_named(&dir.join("resnet18.io.safetensors"));
    let x = &io["input"];
    let arch = Arch::Resnet18;
    for (file, cuts) in [
        (
            "resnet18.pth",
            &["layer1", "layer2.0.downsample.0", "layer4", "fc"][..],
        ),
        ("resnet18_nested.pth", &["fc"][..]),
    ] {
        for &cut in cuts {
            let mut b = Backbone::new(arch, cut, CPU).unwrap();
            let r = weights::load_file(&mut b, &dir.join(file)).unwrap();
            assert_eq!(r.loaded, b.built_keys().len());
            assert_eq!(r.loaded + r.ignored, state_keys(arch).len());
            let d = rel_diff(&b.features(x, cut), &io[&format!("out.{cut}")]);
            eprintln!("parity {file} {cut}: max rel diff {d:.2e}");
            assert!(d < 1e-4, "{file} {cut}: {d}");
        }
    }
    // Keys that do not fit are listed as for safetensors, naming where the dict was found.
    let mut b = Backbone::new(Arch::Vgg11, "features.3", CPU).unwrap();
    let e = weights::load_file(&mut b, &dir.join("resnet18_nested.pth")).unwrap_err();
    assert!(matches!(e, WeightsError::Mismatch(_)), "{e}");
    assert!(
        e.to_string()
            .contains("resnet18_nested.pth (under `state_dict`, `module.` prefix removed)"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn precision_bf16_is_close_to_fp32_and_tf32_is_fp32_on_the_cpu() {
    let mut b = Backbone::new(Arch::Resnet18, "layer2", CPU).unwrap();
    b.init_random(5);
    b.set_channels_last(true);
    let x = input(4, 64, 11);
    let fp32 = b.forward(&x);
    b.set_precision(Precision::Tf32);
    assert_eq!(b.precision(), Precision::Tf32);
    let tf32 = b.forward(&x);
    // No TensorFloat-32 on a CPU: the very same numbers.
    assert_eq!(
        (&tf32 - &fp32).abs().max().double_value(&[]),
        0.0,
        "tf32 differs from fp32 on the CPU"
    );
    b.set_precision(Precision::Bf16);
    assert!(b
        .variables()
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .all(|(_, v)| v.kind() == Kind::BFloat16));
    let bf16 = b.forward(&x);
    assert_eq!(bf16.kind(), Kind::Float, "features come back as float32");
    assert_eq!(bf16.size(), fp32.size());
    // bfloat16 keeps 8 bits of mantissa: about 2-3 significant digits after two stages.
    let rel = rel_diff(&bf16, &fp32);
    assert!(rel > 1e-5 && rel < 5e-2, "bf16 vs fp32: {rel}");
}

/// A FIFO at `path` (false where `mkfifo` is missing).
fn mkfifo(path: &std::path::Path) -> bool {
    let _ = std::fs::remove_file(path);
    std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn weights_from_fifos_are_refused_without_blocking() {
    // Opening a FIFO blocks until something writes to it: the readers check the type first.
    let dir = temp_dir("fifo");
    let mut b = Backbone::new(Arch::Vgg11Bn, "features.4", CPU).unwrap();
    for name in ["w.safetensors", "w.pth"] {
        let path = dir.join(name);
        if !mkfifo(&path) {
            return;
        }
        let e = weights::load_file(&mut b, &path).unwrap_err();
        assert!(
            e.to_string()
                .contains("is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
    }
    let e = weights::load_file(&mut b, std::path::Path::new("/dev/zero.safetensors"));
    assert!(e.is_err());
}

/// A grating at contrast `c` next to grey (`c` = 0), ImageNet-normalised, `[2, 3, s, s]`.
fn grating_pair(size: u32, c: f64) -> Tensor {
    let norm = psyrun::plan::Normalize::MeanStd {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    let spec = psyrun::stimuli::GratingSpec::tutorial(size, 4.0, 0.0);
    let s = i64::from(size);
    let image = |c: f64| {
        let grey = psyrun::stimuli::grating(&spec, c);
        let mut chw = vec![0f32; 3 * grey.len()];
        psyrun::trials::grey_to_chw(&grey, &norm, &mut chw);
        Tensor::from_slice(&chw).reshape([1, 3, s, s])
    };
    Tensor::cat(&[image(c), image(0.0)], 0)
}

#[test]
fn after_bf16_the_backbone_tests_in_exact_float32() {
    // A threshold-level grating (c = 3e-4) differs from grey by ~1.5e-4 per pixel before
    // normalisation: below bfloat16's resolution of the normalised values. Training may run
    // in bfloat16; testing must see float32's feature difference.
    let x = grating_pair(64, 3e-4);
    let mut b = Backbone::new(Arch::Resnet18, "layer2", CPU).unwrap();
    b.init_random(5);
    b.set_channels_last(true);
    let diff = |b: &Backbone| {
        let f = b.forward(&x);
        f.get(0) - f.get(1)
    };
    let fp32 = b.forward(&x);
    let d32 = diff(&b);
    assert!(d32.abs().max().double_value(&[]) > 0.0);
    b.set_precision(Precision::Bf16);
    // Testing in bfloat16 (what the interpreter did): the difference is mostly rounding.
    let in_bf16 = rel_diff(&diff(&b), &d32);
    // The interpreter's step before testing: back to float32, with the exact weights.
    b.set_precision(Precision::Fp32);
    assert!(b.variables().values().all(|v| v.kind() != Kind::BFloat16));
    let after = b.forward(&x);
    assert_eq!(
        (&after - &fp32).abs().max().double_value(&[]),
        0.0,
        "float32 after bf16 differs from float32"
    );
    let rel = rel_diff(&diff(&b), &d32);
    eprintln!(
        "grating c=3e-4 minus grey, relative error: in bf16 {in_bf16:.3e}, float32 after bf16 {rel:.3e}"
    );
    assert!(rel < 1e-3, "{rel}");
    assert!(in_bf16 > 1e-2, "bf16 should have destroyed it: {in_bf16}");
}

#[test]
fn after_bf16_drifted_batchnorm_statistics_are_kept() {
    // `batchnorm train` in bfloat16: the running statistics drift; going back to float32
    // keeps the drifted values and restores the weights exactly.
    let mut b = Backbone::new(Arch::Resnet18, "layer1", CPU).unwrap();
    b.init_random(2);
    let weight = b.variables()["conv1.weight"].copy();
    let before = b.variables()["bn1.running_mean"].copy();
    b.set_precision(Precision::Bf16);
    b.set_batchnorm(BatchNorm::Train);
    let _ = b.forward(&input(4, 32, 3));
    b.set_batchnorm(BatchNorm::Eval);
    let drifted = b.variables()["bn1.running_mean"].to_kind(Kind::Float);
    b.set_precision(Precision::Fp32);
    let vars = b.variables();
    assert!(
        vars["conv1.weight"].equal(&weight),
        "weights restored exactly"
    );
    assert!(vars["bn1.running_mean"].equal(&drifted), "drift kept");
    assert!(!vars["bn1.running_mean"].equal(&before));
}
