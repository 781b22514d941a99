//! `psyrun features` end to end on libtorch (CPU): parity with torchvision on PNG images,
//! the `--experiment` form against `psyrun plan`'s shapes, the two output formats (their
//! headers parsed here), and the errors.
//!
//! The torchvision parity test needs the project's venv python (torch, torchvision, Pillow,
//! numpy): `$PSYRUN_PYTHON` (the venv's python under `./dev`), else `python3`; it is
//! ignored where the build found no such python (see crates/psyrun-build).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("psyrun-features-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `psyrun-torch ARGS` in `dir`.
fn torch(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psyrun-torch"))
        .args(args)
        .args(["--color", "never"])
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .expect("psyrun-torch starts")
}

/// `psyrun ARGS` in `dir` (the front end, which hands `features` over to psyrun-torch).
fn front(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .args(args)
        .args(["--color", "never"])
        .current_dir(dir)
        .env("PSYRUN_TORCH_BIN", env!("CARGO_BIN_EXE_psyrun-torch"))
        .env_remove("NO_COLOR")
        .output()
        .expect("psyrun starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

/// A PNG with 8-bit samples.
fn write_png(path: &Path, size: u32, color: png::ColorType, data: &[u8]) {
    let mut bytes = Vec::new();
    {
        let mut e = png::Encoder::new(&mut bytes, size, size);
        e.set_color(color);
        e.set_depth(png::BitDepth::Eight);
        let mut w = e.write_header().unwrap();
        w.write_image_data(data).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

/// Deterministic noise bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Four 64×64 test images: two RGB noise images, a grey gradient, an RGBA image.
fn images(dir: &Path) -> Vec<String> {
    let n = 64 * 64;
    write_png(
        &dir.join("rgb0.png"),
        64,
        png::ColorType::Rgb,
        &noise(3 * n, 1),
    );
    write_png(
        &dir.join("rgb1.png"),
        64,
        png::ColorType::Rgb,
        &noise(3 * n, 2),
    );
    let grey: Vec<u8> = (0..n).map(|i| ((i % 64) * 4 + i / 1024) as u8).collect();
    write_png(&dir.join("grey.png"), 64, png::ColorType::Grayscale, &grey);
    write_png(
        &dir.join("rgba.png"),
        64,
        png::ColorType::Rgba,
        &noise(4 * n, 3),
    );
    ["rgb0.png", "rgb1.png", "grey.png", "rgba.png"]
        .map(String::from)
        .to_vec()
}

/// A parsed `.npy` (version 1.0, little-endian float32, C order): shape and values.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = fs::read(path).unwrap();
    assert_eq!(
        &b[..8],
        b"\x93NUMPY\x01\x00",
        "{}: npy 1.0 magic",
        path.display()
    );
    let len = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "data aligned to 64 bytes");
    let header = std::str::from_utf8(&b[10..10 + len]).unwrap();
    assert!(header.ends_with('\n'), "{header:?}");
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let dims = header
        .split_once("'shape': (")
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(d, _)| d)
        .expect("a shape");
    let shape: Vec<usize> = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().unwrap())
        .collect();
    let data: Vec<f32> = b[10 + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{header}");
    assert_eq!(b.len(), 10 + len + 4 * data.len());
    (shape, data)
}

/// A parsed `.safetensors` holding the one tensor `features`: shape, values, metadata.
fn read_safetensors(path: &Path) -> (Vec<usize>, Vec<f32>, serde_json::Value) {
    let b = fs::read(path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "header padded to 8 bytes");
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).expect("JSON header");
    let keys: Vec<&String> = header.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "{header}");
    let t = &header["features"];
    assert_eq!(t["dtype"], "F32");
    let shape: Vec<usize> = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let count: usize = shape.iter().product();
    assert_eq!(t["data_offsets"], serde_json::json!([0, 4 * count]));
    assert_eq!(b.len(), 8 + n + 4 * count);
    let data = b[8 + n..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let meta = header["__metadata__"].clone();
    for (k, v) in meta.as_object().unwrap() {
        assert!(v.is_string(), "metadata {k} must be a string");
    }
    (shape, data, meta)
}

/// The names in a `.safetensors` file's metadata.
fn names(meta: &serde_json::Value) -> Vec<String> {
    serde_json::from_str(meta["names"].as_str().unwrap()).expect("names is a JSON array")
}

/// `max |a − b| / max |b|` (`b` must not be all zeros).
fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(scale > 0.0, "all zeros");
    diff / scale
}

/// `max |a − b| ≤ 1e-4 · max |b|`.
fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    let d = relative_difference(a, b);
    assert!(
        d <= 1e-4,
        "{what}: max difference {d:e} of the largest value"
    );
}

/// The python with torch, torchvision, Pillow and numpy: `PSYRUN_PYTHON` (which `./dev` sets
/// to its venv's), else `python3`.
fn python() -> PathBuf {
    std::env::var_os("PSYRUN_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch, torchvision and numpy (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn png_features_match_torchvision() {
    let py = python();
    let dir = scratch("parity");
    let inputs = images(&dir);
    let script = crate::root().join("scripts/features_reference.py");
    let made = Command::new(&py)
        .arg(&script)
        .args(["checkpoint", "resnet18", "net.pth"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));

    // (cut, pooling, normalize, output): every pooling, a cut inside a block, a flat layer,
    // both formats, both normalisations.
    let jobs = [
        ("layer1", "none", "imagenet", "layer1.safetensors"),
        ("layer3.1.conv2", "max:2x2", "imagenet", "conv.npy"),
        ("layer2", "avg:3x2", "none", "layer2.npy"),
        ("fc", "none", "imagenet", "fc.safetensors"),
    ];
    for normalize in ["imagenet", "none"] {
        let mut reference = Command::new(&py);
        reference.arg(&script).args([
            "extract",
            "--arch",
            "resnet18",
            "--weights",
            "net.pth",
            "--normalize",
            normalize,
        ]);
        for (cut, pooling, n, out) in jobs {
            if n == normalize {
                reference.args(["--job", cut, pooling, &format!("{out}.ref.npy")]);
            }
        }
        let r = reference.args(&inputs).current_dir(&dir).output().unwrap();
        assert!(r.status.success(), "{}", text(&r.stderr));
    }

    for (i, (cut, pooling, normalize, out)) in jobs.into_iter().enumerate() {
        let mut args = vec![
            "features",
            "resnet18",
            "--cut",
            cut,
            "--pooling",
            pooling,
            "--weights",
            "net.pth",
            "--size",
            "64",
            "--normalize",
            normalize,
            "--device",
            "cpu",
            "--out",
            out,
        ];
        args.extend(inputs.iter().map(String::as_str));
        // The first one through the front end, as users call it.
        let o = if i == 0 {
            front(&dir, &args)
        } else {
            torch(&dir, &args)
        };
        ok(&o);
        assert!(
            text(&o.stdout).contains(&format!("to {out}")),
            "{}",
            text(&o.stdout)
        );
        let (ref_shape, reference) = read_npy(&dir.join(format!("{out}.ref.npy")));
        let (shape, data) = if out.ends_with(".npy") {
            read_npy(&dir.join(out))
        } else {
            let (shape, data, meta) = read_safetensors(&dir.join(out));
            assert_eq!(names(&meta), inputs, "names in input order");
            assert_eq!(meta["arch"], "resnet18");
            assert_eq!(meta["cut"], cut);
            assert_eq!(meta["pooling"], pooling);
            assert_eq!(meta["weights"], "net.pth");
            (shape, data)
        };
        assert_eq!(shape, ref_shape, "{cut} {pooling}");
        assert_close(&format!("{cut} {pooling} {normalize}"), &data, &reference);
    }
    assert_eq!(read_npy(&dir.join("conv.npy")).0, [4, 256, 2, 2]);
    assert_eq!(read_npy(&dir.join("layer2.npy")).0, [4, 128, 3, 2]);
    assert_eq!(read_safetensors(&dir.join("fc.safetensors")).0, [4, 1000]);
    let _ = fs::remove_dir_all(&dir);
}

const EXPERIMENT: &str = "psy 1
experiment tiny {
  seed 3
  device cpu
  backbone resnet18 {
    weights random
    cut layer1
    pooling avg 2x2
  }
  probe linear {
    optimizer sgd { lr 0.01  momentum 0.9 }
    epochs 2
    batch 16
  }
  train shapes { size 32  samples 64 }
  test gratings {
    size 48
    frequencies [2, 4, 8]
    orientations [0deg, 90deg]
    phases [0deg, 180deg]
    target_interval both
  }
  staircase bisection { target 0.75  tolerance 0.01  max_steps 5 }
}
";

#[test]
fn experiment_features_have_the_plans_shape_and_stimuli() {
    let dir = scratch("experiment");
    fs::write(dir.join("tiny.psy"), EXPERIMENT).unwrap();
    let plan = front(&dir, &["plan", "tiny.psy", "--format", "json"]);
    ok(&plan);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let feature_shape: Vec<usize> = plan["derived"]["feature_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(feature_shape, [64, 2, 2]);

    // 3 training pairs, then 3 frequencies × 2 orientations × 2 phases (one image per
    // condition although `target_interval both` shows each twice); train and test sizes
    // differ, pooling makes their features the same shape.
    let o = front(
        &dir,
        &[
            "features",
            "--experiment",
            "tiny.psy",
            "--count",
            "3",
            "--contrast",
            "0.3",
            "--out",
            "tiny.safetensors",
        ],
    );
    ok(&o);
    let (shape, data, meta) = read_safetensors(&dir.join("tiny.safetensors"));
    let images = 2 * 3 + 3 * 2 * 2;
    let mut expected = vec![images];
    expected.extend(&feature_shape);
    assert_eq!(shape, expected);
    let names = names(&meta);
    assert_eq!(names.len(), images);
    assert_eq!(
        names[..3],
        ["train/000_a.png", "train/000_b.png", "train/001_a.png"]
    );
    assert_eq!(names[6], "test/f2_o0_p0.png");
    assert_eq!(names[7], "test/f2_o0_p180.png");
    assert_eq!(names[8], "test/f2_o90_p0.png");
    assert_eq!(names[images - 1], "test/f8_o90_p180.png");
    assert_eq!(meta["experiment"], "tiny");
    assert_eq!(meta["contrast"], "0.3");
    assert_eq!(meta["seed"], "3");
    assert!(data.iter().all(|v| v.is_finite()));

    // The same stimuli as `psyrun stimuli` writes them: its test gratings are the ones named.
    let s = front(
        &dir,
        &[
            "stimuli",
            "tiny.psy",
            "--out",
            "stim",
            "--count",
            "3",
            "--contrast",
            "0.3",
        ],
    );
    ok(&s);
    for n in &names {
        assert!(
            dir.join("stim").join(n).is_file(),
            "{n} not written by psyrun stimuli"
        );
    }

    // .npy: the same array, bit for bit; fewer pairs give the same first rows.
    let o = torch(
        &dir,
        &[
            "features",
            "--experiment",
            "tiny.psy",
            "--count",
            "3",
            "--contrast",
            "0.3",
            "--out",
            "tiny.npy",
        ],
    );
    ok(&o);
    let (npy_shape, npy) = read_npy(&dir.join("tiny.npy"));
    assert_eq!(npy_shape, shape);
    assert_eq!(npy, data);
    let o = torch(
        &dir,
        &[
            "features",
            "--experiment",
            "tiny.psy",
            "--count",
            "1",
            "--contrast",
            "0.3",
            "--out",
            "one.npy",
        ],
    );
    ok(&o);
    let (one_shape, one) = read_npy(&dir.join("one.npy"));
    assert_eq!(one_shape[0], 2 + 12);
    let row = 64 * 2 * 2;
    assert_eq!(
        one[..2 * row],
        data[..2 * row],
        "training pairs do not depend on --count"
    );
    assert_close("test gratings", &one[2 * row..], &data[6 * row..]);
    let _ = fs::remove_dir_all(&dir);
}

fn failure(dir: &Path, args: &[&str], code: i32) -> String {
    let o = torch(dir, args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    err
}

#[test]
fn features_errors_name_the_problem() {
    let dir = scratch("errors");
    let inputs = images(&dir);
    write_png(
        &dir.join("small.png"),
        32,
        png::ColorType::Rgb,
        &noise(3 * 32 * 32, 4),
    );
    fs::write(dir.join("text.png"), "not a png").unwrap();
    fs::write(dir.join("blocker"), "a file, not a folder").unwrap();
    fs::create_dir(dir.join("dir.npy")).unwrap();
    let base = |cut: &'static str, out: &'static str| {
        vec![
            "features",
            "resnet18",
            "--cut",
            cut,
            "--weights",
            "random",
            "--size",
            "64",
            "--out",
            out,
        ]
    };

    // An image of another size: named, with both sizes, and nothing written.
    let mut args = base("layer1", "f.npy");
    args.extend([inputs[0].as_str(), "small.png"]);
    let err = failure(&dir, &args, 2);
    assert!(err.contains("psy::plan::incompatible"), "{err}");
    assert!(
        err.contains("`small.png` is 32x32 px, but --size is 64"),
        "{err}"
    );
    assert!(err.contains("--size 32"), "{err}");
    assert!(!dir.join("f.npy").exists());

    // Unreadable and non-PNG inputs are all reported at once.
    let mut args = base("layer1", "f.npy");
    args.extend(["missing.png", "text.png"]);
    let err = failure(&dir, &args, 2);
    assert!(err.contains("psy::io::read"), "{err}");
    assert!(
        err.contains("missing.png") && err.contains("text.png"),
        "{err}"
    );
    assert!(err.contains("not a readable PNG"), "{err}");

    // An unknown cut, with a suggestion; an unknown architecture too.
    let mut args = base("layr1", "f.npy");
    args.push(inputs[0].as_str());
    let err = failure(&dir, &args, 2);
    assert!(err.contains("psy::plan::unknown_layer"), "{err}");
    assert!(err.contains("resnet18 has no layer `layr1`"), "{err}");
    assert!(err.contains("did you mean `layer1`?"), "{err}");
    let mut args = base("layer1", "f.npy");
    args[1] = "resnet19";
    args.push(inputs[0].as_str());
    let err = failure(&dir, &args, 2);
    assert!(err.contains("psy::plan::unknown_backbone"), "{err}");
    assert!(err.contains("did you mean `resnet18`?"), "{err}");

    // Unwritable outputs: no folder (a file in the way), a folder, an unknown format.
    for (out, says) in [
        ("blocker/f.npy", "does not exist"),
        ("nowhere/f.safetensors", "does not exist"),
        (".", "it is a folder"),
        ("dir.npy", "it is a folder"),
        ("f.csv", "must be a .safetensors or .npy file"),
    ] {
        let mut args = base("layer1", out);
        args.push(inputs[0].as_str());
        let err = failure(&dir, &args, 2);
        assert!(err.contains("psy::run::output_folder"), "{out}: {err}");
        assert!(err.contains(says), "{out}: {err}");
    }

    // Pooling larger than the map, pooling a flat layer, an image too small for the cut.
    let mut args = base("layer1", "f.npy");
    args.extend(["--pooling", "avg:17x17", inputs[0].as_str()]);
    let err = failure(&dir, &args, 2);
    assert!(err.contains("psy::plan::pooling_too_large"), "{err}");
    let mut args = base("fc", "f.npy");
    args.extend(["--pooling", "max:1x1", inputs[0].as_str()]);
    let err = failure(&dir, &args, 2);
    assert!(err.contains("psy::plan::incompatible"), "{err}");
    let err = failure(
        &dir,
        &[
            "features",
            "vgg16",
            "--cut",
            "features.30",
            "--weights",
            "random",
            "--size",
            "16",
            "--out",
            "f.npy",
            "x.png",
        ],
        2,
    );
    assert!(err.contains("psy::plan::input_too_small"), "{err}");

    // Unknown weights with a suggestion; a weights file that is not one.
    let mut args = base("layer1", "f.npy");
    args[5] = "imagnet";
    args.push(inputs[0].as_str());
    let err = failure(&dir, &args, 2);
    assert!(err.contains("psy::plan::unknown_value"), "{err}");
    assert!(err.contains("did you mean `imagenet`?"), "{err}");
    let mut args = base("layer1", "f.npy");
    args[5] = "text.png.pth";
    fs::write(dir.join("text.png.pth"), "PK\x03\x04").unwrap();
    args.push(inputs[0].as_str());
    let err = failure(&dir, &args, 3);
    assert!(err.contains("psy::run::weights_file"), "{err}");

    // A CUDA device that is not there.
    let mut args = base("layer1", "f.npy");
    args.extend(["--device", "cuda:63", inputs[0].as_str()]);
    let err = failure(&dir, &args, 3);
    assert!(err.contains("psy::run::no_cuda"), "{err}");

    // Command-line mistakes (clap): a bad pooling, both forms mixed, --batchnorm train.
    let mut args = base("layer1", "f.npy");
    args.extend(["--pooling", "mean:2x2", inputs[0].as_str()]);
    failure(&dir, &args, 2);
    failure(
        &dir,
        &[
            "features",
            "--experiment",
            "x.psy",
            "--cut",
            "layer1",
            "--out",
            "f.npy",
        ],
        2,
    );
    let mut args = base("layer1", "f.npy");
    args.extend(["--batchnorm", "train", inputs[0].as_str()]);
    failure(&dir, &args, 2);

    // An experiment with errors, and a contrast out of range.
    fs::write(
        dir.join("bad.psy"),
        EXPERIMENT.replace("cut layer1", "cut layer9"),
    )
    .unwrap();
    let err = failure(
        &dir,
        &["features", "--experiment", "bad.psy", "--out", "f.npy"],
        1,
    );
    assert!(err.contains("psy::plan::unknown_layer"), "{err}");
    fs::write(dir.join("tiny.psy"), EXPERIMENT).unwrap();
    let err = failure(
        &dir,
        &[
            "features",
            "--experiment",
            "tiny.psy",
            "--contrast",
            "1.5",
            "--out",
            "f.npy",
        ],
        2,
    );
    assert!(err.contains("psy::plan::out_of_range"), "{err}");
    assert!(!dir.join("f.npy").exists(), "no error wrote an output");
    let _ = fs::remove_dir_all(&dir);
}

/// A lab's exported network: torchvision's resnet18 cut after layer1, traced with
/// `torch.jit.trace` in Python, gives the features of psyrun's own resnet18 with the same
/// weights, for an experiment's stimuli (train 32 px and test 48 px).
#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch, torchvision and numpy (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn torchscript_features_match_the_catalog_backbone() {
    let py = python();
    let dir = scratch("torchscript");
    let script = crate::root().join("scripts/checkpoint_fixtures.py");
    let made = Command::new(&py)
        .arg(&script)
        .args(["torchscript", "."])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let catalog = EXPERIMENT
        .replace("weights random", "weights \"resnet18.pth\"")
        .replace("pooling avg 2x2", "pooling max 3x3");
    let script = EXPERIMENT
        .replace(
            "backbone resnet18 {\n    weights random\n    cut layer1\n",
            "backbone torchscript \"resnet18_layer1.pt\" {\n",
        )
        .replace("pooling avg 2x2", "pooling max 3x3");
    assert!(script.contains("torchscript"), "{script}");
    fs::write(dir.join("catalog.psy"), catalog).unwrap();
    fs::write(dir.join("script.psy"), script).unwrap();
    for (psy, out) in [("catalog.psy", "catalog.npy"), ("script.psy", "script.npy")] {
        let o = torch(
            &dir,
            &[
                "features",
                "--experiment",
                psy,
                "--count",
                "3",
                "--out",
                out,
            ],
        );
        ok(&o);
    }
    let (shape_c, catalog) = read_npy(&dir.join("catalog.npy"));
    let (shape_s, script) = read_npy(&dir.join("script.npy"));
    // 6 training images and 12 gratings (3 frequencies × 2 orientations × 2 phases), 64 × 3
    // × 3 each.
    assert_eq!(shape_c, [18, 64, 3, 3]);
    assert_eq!(shape_s, shape_c);
    assert_close("torchscript vs catalog", &script, &catalog);

    // The same for PNG images, the module given with --torchscript.
    let mut args = vec![
        "features",
        "--torchscript",
        "resnet18_layer1.pt",
        "--size",
        "64",
    ];
    args.extend(["--out", "png_script.npy"]);
    let inputs = images(&dir);
    args.extend(inputs.iter().map(String::as_str));
    ok(&torch(&dir, &args));
    let mut args = vec![
        "features",
        "resnet18",
        "--cut",
        "layer1",
        "--weights",
        "resnet18.pth",
    ];
    args.extend(["--size", "64", "--out", "png_catalog.npy"]);
    args.extend(inputs.iter().map(String::as_str));
    ok(&torch(&dir, &args));
    let (shape_s, script) = read_npy(&dir.join("png_script.npy"));
    let (shape_c, catalog) = read_npy(&dir.join("png_catalog.npy"));
    assert_eq!(shape_s, [4, 64, 16, 16]);
    assert_eq!(shape_s, shape_c);
    assert_close("torchscript vs catalog, PNG images", &script, &catalog);
    let _ = fs::remove_dir_all(&dir);
}

/// `--torchscript` with PNG images and the committed scripted CNN: every positional argument
/// is an image, the shape comes from running the module, pooling applies; a file that is not
/// TorchScript is named as what it is.
#[test]
fn torchscript_features_of_png_images() {
    let dir = scratch("torchscript-png");
    let fixtures = crate::root().join("tests/fixtures");
    fs::copy(fixtures.join("torchscript/tiny_cnn.pt"), dir.join("cnn.pt")).unwrap();
    fs::copy(fixtures.join("checkpoint/mixed.pth"), dir.join("sd.pth")).unwrap();
    let inputs = images(&dir);
    let run = |extra: &[&str], out: &str| {
        let mut args = vec!["features", "--torchscript"];
        args.extend(extra);
        args.extend(["--size", "64", "--out", out]);
        args.extend(inputs.iter().map(String::as_str));
        torch(&dir, &args)
    };
    ok(&run(&["cnn.pt"], "full.safetensors"));
    let (shape, full, meta) = read_safetensors(&dir.join("full.safetensors"));
    // conv stride 2: 16 channels at 32 × 32, for all four images.
    assert_eq!(shape, [4, 16, 32, 32]);
    assert_eq!(names(&meta), inputs);
    assert_eq!(meta["torchscript"], "cnn.pt");
    assert!(full.iter().all(|v| v.is_finite()));
    ok(&run(&["cnn.pt", "--pooling", "avg:1x1"], "pooled.npy"));
    let (shape, pooled) = read_npy(&dir.join("pooled.npy"));
    assert_eq!(shape, [4, 16, 1, 1]);
    // Adaptive average pooling to 1×1 is the mean of each channel's map.
    let mean: Vec<f32> = full
        .chunks(32 * 32)
        .map(|c| c.iter().sum::<f32>() / (32.0 * 32.0))
        .collect();
    assert_close("avg:1x1 against the mean", &pooled, &mean);

    let o = run(&["sd.pth"], "bad.npy");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("psy::run::torchscript"), "{err}");
    assert!(err.contains("torch.save checkpoint"), "{err}");
    assert!(!dir.join("bad.npy").exists());
    let _ = fs::remove_dir_all(&dir);
}

/// On a machine with CUDA: float32 on the GPU is float32. libtorch lets cuDNN compute
/// float32 convolutions in TensorFloat-32 (10-bit mantissa, about 1e-3 relative error) unless
/// told otherwise; psyrun forbids it unless `precision tf32`. Each configuration runs in its
/// own process, because cuDNN reads `NVIDIA_TF32_OVERRIDE` once, when it starts. Checked for
/// a catalog backbone (each convolution names its choice) and for a TorchScript module
/// (only the process-wide switch reaches it): the GPU's float32 features equal the CPU's
/// within 1e-4 of their range. `tf32` is printed, and must stay within 1e-2. Ignored where
/// the build found no GPU.
#[test]
#[cfg_attr(
    not(psyrun_cuda_tests),
    ignore = "needs a CUDA GPU (nvidia-smi at build time, or PSYRUN_TEST_CUDA=1)"
)]
fn cuda_float32_is_float32_and_tf32_is_opt_in() {
    let dir = scratch("cuda-tf32");
    let doctor = text(&torch(&dir, &["doctor"]).stdout);
    assert!(
        doctor.contains("CUDA available    yes"),
        "a GPU was found at build time, but libtorch sees no CUDA device:\n{doctor}"
    );
    let fixtures = crate::root().join("tests/fixtures");
    fs::copy(fixtures.join("torchscript/tiny_cnn.pt"), dir.join("cnn.pt")).unwrap();
    // A deeper cut than EXPERIMENT's, so that rounding has many layers to accumulate over.
    let catalog = EXPERIMENT.replace("cut layer1", "cut layer3");
    let script = EXPERIMENT.replace(
        "backbone resnet18 {\n    weights random\n    cut layer1\n",
        "backbone torchscript \"cnn.pt\" {\n",
    );
    assert!(script.contains("torchscript"), "{script}");
    for (name, body) in [("catalog", &catalog), ("script", &script)] {
        for precision in ["fp32", "tf32"] {
            let body = body.replace(
                "device cpu",
                &format!("device cpu\n  precision {precision}"),
            );
            fs::write(dir.join(format!("{name}_{precision}.psy")), body).unwrap();
        }
        let features = |precision: &str, device: &str| {
            let out = format!("{name}_{precision}_{}.npy", device.replace(':', ""));
            let psy = format!("{name}_{precision}.psy");
            let args = [
                "features",
                "--experiment",
                psy.as_str(),
                "--device",
                device,
                "--out",
                out.as_str(),
            ];
            ok(&torch(&dir, &args));
            read_npy(&dir.join(&out))
        };
        let (shape, cpu) = features("fp32", "cpu");
        let (shape32, gpu32) = features("fp32", "cuda:0");
        let (shape_tf, gpu_tf) = features("tf32", "cuda:0");
        assert_eq!(shape32, shape);
        assert_eq!(shape_tf, shape);
        let (d32, dtf) = (
            relative_difference(&gpu32, &cpu),
            relative_difference(&gpu_tf, &cpu),
        );
        eprintln!("{name}: CUDA against the CPU, fp32 {d32:.2e}, tf32 {dtf:.2e} of the range");
        assert!(
            d32 <= 1e-4,
            "{name}: float32 on CUDA is off by {d32:e}: TF32 still on?"
        );
        assert!(dtf <= 1e-2, "{name}: tf32 on CUDA is off by {dtf:e}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Models for the token read-outs: torchvision's ViT (tokens batch first) and an
/// OpenCLIP-style encoder that keeps them sequence first (`LND`), both seeded.
const TOKEN_MODELS: &str = r#"
import torch, torchvision

def tiny_vit():
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)

class Lnd(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.patch = torch.nn.Conv2d(3, 16, 16, 16)
        self.class_token = torch.nn.Parameter(torch.randn(1, 1, 16))
        self.transformer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)               # N, L, D
        t = torch.cat([self.class_token.expand(t.shape[0], -1, -1), t], 1)
        return self.transformer(t.permute(1, 0, 2))                # L, N, D, as OpenCLIP

def lnd():
    return Lnd()
"#;

/// What the layer outputs and what each read-out of it must be, computed in Python.
const TOKEN_REFERENCE: &str = r#"
import sys, numpy as np, torch
from PIL import Image
sys.path.insert(0, ".")
import token_models as m
images = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1) for p in sys.argv[1:]])
for name, model, layer, lnd in [("vit", m.tiny_vit(), "encoder.layers.encoder_layer_1", False), ("lnd", m.lnd(), "transformer", True)]:
    model.eval()
    out = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda _m, _i, o: out.update(y=o))
    with torch.no_grad():
        model(images)
    h.remove()
    y = out["y"].permute(1, 0, 2) if lnd else out["y"]           # N, L, D
    n, l, d = y.shape
    np.save(f"{name}_cls_ref.npy", y[:, 0].numpy())
    np.save(f"{name}_mean_ref.npy", y[:, 1:].mean(1).numpy())
    np.save(f"{name}_map_ref.npy", y[:, 1:].reshape(n, 4, 4, d).permute(0, 3, 1, 2).contiguous().numpy())
"#;

/// `scripts/export_torchscript.py` cuts a ViT (tokens batch first) and an OpenCLIP-style
/// encoder (sequence first) with their sidecars; `psyrun features --tokens` then reads the
/// class token, the patch mean and the patch map of each equal to Python's reading of the
/// model itself: the token axis is the right one for both layouts.
#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch, torchvision and numpy (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn token_readouts_of_exported_transformers_match_python() {
    let py = python();
    let dir = scratch("tokens");
    fs::write(dir.join("token_models.py"), TOKEN_MODELS).unwrap();
    fs::write(dir.join("reference.py"), TOKEN_REFERENCE).unwrap();
    let inputs = images(&dir);
    let export = crate::root().join("scripts/export_torchscript.py");
    for (model, layer, out) in [
        (
            "token_models:tiny_vit",
            "encoder.layers.encoder_layer_1",
            "vit.pt",
        ),
        ("token_models:lnd", "transformer", "lnd.pt"),
    ] {
        let o = Command::new(&py)
            .arg(&export)
            .args([model, "--layer", layer, "--size", "64", "--out", out])
            .env("PYTHONPATH", &dir)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        let side: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join(format!("{out}.json"))).unwrap())
                .unwrap();
        let layout = if out == "vit.pt" { "nld" } else { "lnd" };
        assert_eq!(side["tokens"]["layout"], layout, "{side}");
        assert_eq!(side["tokens"]["prefix"], 1, "{side}");
        assert_eq!(side["tokens"]["grid"], serde_json::json!([4, 4]), "{side}");
        assert_eq!(side["input_size"], 64, "{side}");
    }
    let o = Command::new(&py)
        .arg("reference.py")
        .args(&inputs)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    for net in ["vit", "lnd"] {
        for (tokens, shape) in [
            ("cls", vec![4, 16]),
            ("mean", vec![4, 16]),
            ("map", vec![4, 16, 4, 4]),
        ] {
            let out = format!("{net}_{tokens}.npy");
            let module = format!("{net}.pt");
            let mut args = vec![
                "features",
                "--torchscript",
                &module,
                "--tokens",
                tokens,
                "--size",
                "64",
                "--normalize",
                "none",
                "--out",
                &out,
            ];
            args.extend(inputs.iter().map(String::as_str));
            ok(&torch(&dir, &args));
            let (got_shape, got) = read_npy(&dir.join(&out));
            let (ref_shape, want) = read_npy(&dir.join(format!("{net}_{tokens}_ref.npy")));
            assert_eq!(got_shape, shape, "{net} {tokens}");
            assert_eq!(ref_shape, shape, "{net} {tokens}");
            assert_close(&format!("{net} tokens {tokens}"), &got, &want);
        }
    }
    // Without `--tokens` a token output is refused, saying what to add.
    let mut args = vec!["features", "--torchscript", "lnd.pt", "--size", "64"];
    args.extend(["--out", "x.npy"]);
    args.extend(inputs.iter().map(String::as_str));
    let o = torch(&dir, &args);
    assert_ne!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(
        err.contains("outputs tokens") && err.contains("--tokens cls"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A `.safetensors` file's tensors: name → (shape, values).
type Tensors = std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// The tensors of a `.safetensors` file, and its metadata.
fn read_all_safetensors(path: &Path) -> (Tensors, serde_json::Value) {
    let b = fs::read(path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let mut out = std::collections::BTreeMap::new();
    let mut end = 0;
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let (a, z) = (
            t["data_offsets"][0].as_u64().unwrap() as usize,
            t["data_offsets"][1].as_u64().unwrap() as usize,
        );
        assert_eq!(z - a, 4 * shape.iter().product::<usize>());
        end = end.max(z);
        let data = b[8 + n + a..8 + n + z]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.insert(name.clone(), (shape, data));
    }
    assert_eq!(b.len(), 8 + n + end, "no bytes past the last tensor");
    (out, header["__metadata__"].clone())
}

/// Several cuts in one extraction: one tensor per cut (any order on the command line), each
/// equal to the features of a single-cut extraction, the backbone built once up to the
/// deepest; `.npy` writes one file per cut; no part file is left behind; a cut named twice
/// is refused.
#[test]
fn several_cuts_in_one_extraction_equal_one_cut_at_a_time() {
    let dir = scratch("multicut");
    let inputs = images(&dir);
    let base = [
        "features",
        "resnet18",
        "--weights",
        "random",
        "--seed",
        "3",
        "--size",
        "64",
        "--pooling",
        "avg:2x2",
    ];
    let run = |cuts: &[&str], out: &str| {
        let mut args: Vec<&str> = base.to_vec();
        for c in cuts {
            args.extend(["--cut", c]);
        }
        args.extend(["--out", out]);
        args.extend(inputs.iter().map(String::as_str));
        torch(&dir, &args)
    };
    let o = run(&["layer3", "conv1", "layer1"], "multi.safetensors");
    ok(&o);
    assert_eq!(text(&o.stdout).lines().count(), 3, "{}", text(&o.stdout));
    let (tensors, meta) = read_all_safetensors(&dir.join("multi.safetensors"));
    assert_eq!(
        tensors.keys().collect::<Vec<_>>(),
        ["conv1", "layer1", "layer3"]
    );
    assert_eq!(meta["cuts"], "[\"layer3\",\"conv1\",\"layer1\"]");
    for (cut, channels) in [("conv1", 64), ("layer1", 64), ("layer3", 256)] {
        ok(&run(&[cut], &format!("{cut}.npy")));
        let (shape, single) = read_npy(&dir.join(format!("{cut}.npy")));
        assert_eq!(shape, [4, channels, 2, 2], "{cut}");
        let (multi_shape, multi) = &tensors[cut];
        assert_eq!(multi_shape, &shape, "{cut}");
        assert_eq!(
            multi, &single,
            "{cut}: one cut at a time and several at once differ"
        );
    }
    ok(&run(&["layer1", "layer2"], "both.npy"));
    let (s1, _) = read_npy(&dir.join("both.layer1.npy"));
    let (s2, _) = read_npy(&dir.join("both.layer2.npy"));
    assert_eq!((s1, s2), (vec![4, 64, 2, 2], vec![4, 128, 2, 2]));
    assert!(!dir.join("both.npy").exists());
    let leftovers: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let o = run(&["layer1", "layer1"], "twice.npy");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("`--cut layer1` is given twice"),
        "{}",
        text(&o.stderr)
    );
    let _ = fs::remove_dir_all(&dir);
}
