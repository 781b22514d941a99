//! The CLI as a user drives it: exit codes, stdout and stderr.

use psyrun::plan::Plan;
use std::process::{Command, Output};

fn psyrun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .args(args)
        .current_dir(crate::root())
        .env_remove("NO_COLOR")
        .output()
        .expect("psyrun starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally, not by a signal")
}

#[test]
fn check_valid_experiments_exits_0_and_lists_each_file() {
    let o = psyrun(&[
        "check",
        "experiments/contrast_csf.psy",
        "experiments/quick_csf.psy",
        "--color",
        "never",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("experiments/contrast_csf.psy: ok, 5 warnings"),
        "{out}"
    );
    assert!(out.contains("experiments/quick_csf.psy: ok\n"), "{out}");
    // The tutorial file is faithful, so psyrun warns about the tutorial's flaws.
    let err = text(&o.stderr);
    for code in [
        "psy::plan::constant_target",
        "psy::plan::tolerance_unreachable",
        "psy::plan::duplicate_stimuli",
        "psy::plan::deterministic_observer",
        "psy::plan::contrast_pivot",
    ] {
        assert!(err.contains(code), "missing {code} in:\n{err}");
    }
}

#[test]
fn check_reports_errors_with_exit_1_and_goes_on_to_the_next_file() {
    let o = psyrun(&[
        "check",
        "tests/fixtures/err/plan/unknown_backbone.psy",
        "experiments/quick_csf.psy",
        "--color",
        "never",
    ]);
    assert_eq!(code(&o), 1);
    let err = text(&o.stderr);
    assert!(err.contains("psy::plan::unknown_backbone"), "{err}");
    assert!(err.contains("did you mean `resnet50`?"), "{err}");
    assert!(text(&o.stdout).contains("experiments/quick_csf.psy: ok"));
}

#[test]
fn io_errors_exit_2() {
    let o = psyrun(&["check", "no/such/file.psy"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("psy::io::read"));
    let o = psyrun(&["check", "experiments"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("psy::io::is_directory"));
    let o = psyrun(&["plan", "no/such/file.psy"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(code(&psyrun(&[])), 2);
    assert_eq!(code(&psyrun(&["check"])), 2);
    assert_eq!(code(&psyrun(&["--no-such-flag"])), 2);
    assert_eq!(
        code(&psyrun(&[
            "plan",
            "experiments/quick_csf.psy",
            "--format",
            "xml"
        ])),
        2
    );
    assert_eq!(
        code(&psyrun(&[
            "--color",
            "purple",
            "check",
            "experiments/quick_csf.psy"
        ])),
        2
    );
}

#[test]
fn help_and_version_exit_0() {
    let o = psyrun(&["--help"]);
    assert_eq!(code(&o), 0);
    let help = text(&o.stdout);
    assert!(help.contains("Exit codes"), "{help}");
    for cmd in ["run", "check", "plan", "layers", "doctor"] {
        assert!(help.contains(cmd), "{cmd} missing from help");
    }
    let o = psyrun(&["--version"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        text(&o.stdout).trim(),
        format!("psyrun {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn plan_prints_ron_that_reads_back_as_the_same_plan() {
    let o = psyrun(&["plan", "experiments/contrast_csf.psy"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let ron_text = text(&o.stdout);
    let plan: Plan = ron::from_str(&ron_text).expect("plan output is valid RON");
    assert_eq!(plan.derived.feature_shape, Some(vec![512, 28, 28]));
    assert_eq!(plan.derived.probe_inputs, Some(2 * 401_408));
    assert_eq!(
        plan.test.frequencies,
        vec![1.0, 2.0, 4.0, 7.0, 8.0, 14.0, 16.0, 28.0, 32.0, 56.0, 112.0]
    );
    assert_eq!(plan.test.orientations.len(), 13);

    let o = psyrun(&["plan", "experiments/contrast_csf.psy", "--format", "json"]);
    assert_eq!(code(&o), 0);
    let json: Plan = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(json, plan);
}

#[test]
fn plan_of_invalid_file_prints_nothing_on_stdout_and_exits_1() {
    let o = psyrun(&["plan", "tests/fixtures/err/plan/unknown_backbone.psy"]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
}

#[test]
fn layers_lists_cut_points_with_shapes() {
    let o = psyrun(&["layers", "resnet50"]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("layer2 ") && l.ends_with("512×28×28")),
        "{out}"
    );
    assert!(out.contains("layer4.0.conv2"));
    let o = psyrun(&["layers", "vgg16", "--size", "64"]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout)
        .lines()
        .any(|l| l.trim_start().starts_with("features.16 ") && l.ends_with("256×8×8")));
    // Cut points inside blocks with branches: an inverted residual, a squeeze-and-excitation
    // gate, stochastic depth before the residual sum.
    for (arch, cut, shape) in [
        ("mobilenet_v2", "features.3.conv.1.0", "144×56×56"),
        ("mobilenet_v3_large", "features.4.block.2.fc1", "24×1×1"),
        (
            "efficientnet_b0",
            "features.2.1.stochastic_depth",
            "24×56×56",
        ),
        ("convnext_tiny", "features.1.0.block.3", "56×56×384"),
        ("squeezenet1_1", "features.3.expand3x3", "64×55×55"),
        ("shufflenet_v2_x1_0", "stage3.1.branch2.3", "116×14×14"),
        (
            "regnet_y_400mf",
            "trunk_output.block2.block2-1.activation",
            "104×28×28",
        ),
        // A dense layer's new channels, the block's concatenation, an Inception branch.
        (
            "densenet121",
            "features.denseblock2.denselayer3",
            "32×28×28",
        ),
        ("densenet121", "features.denseblock2", "512×28×28"),
        ("densenet169", "features.norm5", "1664×7×7"),
        ("googlenet", "inception4a.branch4.0", "480×14×14"),
        ("googlenet", "inception5b", "1024×7×7"),
        // At 299 pixels, inception_v3's own size; InceptionE's forked branches.
        ("inception_v3", "Mixed_7b.branch3x3_2b", "384×8×8"),
        ("inception_v3", "Mixed_7c", "2048×8×8"),
        // At 384 pixels; a FusedMBConv's expanding conv.
        ("efficientnet_v2_s", "features.2.0.block.0", "96×96×96"),
    ] {
        let o = psyrun(&["layers", arch]);
        assert_eq!(code(&o), 0);
        let out = text(&o.stdout);
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cut} ")) && l.ends_with(shape)),
            "{arch}: {out}"
        );
    }
    // A ViT: tokens inside its encoder (and how they read out), 224 px only.
    let o = psyrun(&["layers", "vit_b_16"]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    for (cut, shape) in [
        ("conv_proj", "768×14×14"),
        ("encoder.layers.encoder_layer_5.self_attention", "197×768"),
        ("encoder.layers.encoder_layer_5.mlp.0", "197×3072"),
        ("encoder.ln", "197×768"),
        ("heads.head", "1000"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cut} ")) && l.ends_with(shape)),
            "vit_b_16 {cut}: {out}"
        );
    }
    assert!(
        out.contains("1 class token, then 14×14 patch tokens"),
        "{out}"
    );
    let o = psyrun(&["layers", "swin_t"]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    for (cut, shape) in [
        ("features.1.1.attn", "56×56×96"),
        ("features.2.norm", "28×28×384"),
        ("norm", "7×7×768"),
        ("permute", "768×7×7"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cut} ")) && l.ends_with(shape)),
            "swin_t {cut}: {out}"
        );
    }
    assert!(out.contains("no class token"), "{out}");
    let o = psyrun(&["layers", "vit_b_16", "--size", "256"]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout).contains("takes 224 px only"));
    // inception_v3 is listed at 299 px unless told otherwise, and needs 75.
    let o = psyrun(&["layers", "inception_v3"]);
    assert!(text(&o.stdout).starts_with("inception_v3 at 299x299 px"));
    let o = psyrun(&["layers", "inception_v3", "--size", "74"]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout)
        .lines()
        .any(|l| l.starts_with("fc ") && l.ends_with("needs ≥ 75 px")));
    let o = psyrun(&["layers", "resnt50", "--color", "never"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("did you mean `resnet50`?"));
}

#[test]
fn color_follows_the_flag_and_no_color() {
    let file = "tests/fixtures/err/plan/unknown_backbone.psy";
    let o = psyrun(&["check", file, "--color", "always"]);
    assert!(
        text(&o.stderr).contains('\u{1b}'),
        "no ANSI escapes with --color always"
    );
    let o = psyrun(&["check", file, "--color", "never"]);
    assert!(!text(&o.stderr).contains('\u{1b}'));
    // auto: not a terminal here, so no colour; NO_COLOR wins over auto as well.
    let o = Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .args(["check", file])
        .current_dir(crate::root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!text(&o.stderr).contains('\u{1b}'));
}

#[test]
fn run_without_the_torch_binary_is_a_clear_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .args(["experiments/quick_csf.psy", "--color", "never"])
        .current_dir(crate::root())
        .env("PSYRUN_TORCH_BIN", "/nonexistent/psyrun-torch")
        .output()
        .unwrap();
    assert_eq!(code(&o), 4);
    let err = text(&o.stderr);
    assert!(err.contains("psy::run::unavailable"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .args(["doctor"])
        .env("PSYRUN_TORCH_BIN", "/nonexistent/psyrun-torch")
        .output()
        .unwrap();
    assert_eq!(code(&o), 4);
}

#[cfg(feature = "torch")]
mod torch {
    use super::*;

    fn with_torch(args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_psyrun"))
            .args(args)
            .current_dir(crate::root())
            .env("PSYRUN_TORCH_BIN", env!("CARGO_BIN_EXE_psyrun-torch"))
            .output()
            .unwrap()
    }

    #[test]
    fn doctor_reports_libtorch_and_cuda() {
        let o = with_torch(&["doctor"]);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
        // The version this build links (2.13.0 by default; 2.11.0 built through ./dev).
        let built = env!("PSYRUN_LIBTORCH_VERSION").split('+').next().unwrap();
        assert!(["2.11.0", "2.13.0"].contains(&built), "{built}");
        assert!(out.contains(built), "libtorch version missing: {out}");
        assert!(out.to_lowercase().contains("cuda"), "{out}");
    }

    #[test]
    fn run_is_handed_over_and_checks_the_file_first() {
        let o = with_torch(&[
            "run",
            "tests/fixtures/err/plan/unknown_backbone.psy",
            "--color",
            "never",
        ]);
        assert_eq!(code(&o), 1, "{}", text(&o.stderr));
        let o = with_torch(&["experiments/quick_csf.psy", "--color", "never"]);
        assert_ne!(code(&o), 101, "{}", text(&o.stderr));
    }
}

/// Reads a little-endian float32 `.npy` file written by psyrun: (shape, values).
fn read_npy(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let dims = header.split("'shape': (").nth(1).unwrap();
    let dims = &dims[..dims.find(')').unwrap()];
    let shape: Vec<usize> = dims
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().unwrap())
        .collect();
    let values = bytes[10 + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, values)
}

#[test]
fn stimuli_writes_pngs_and_exact_arrays_of_what_the_network_sees() {
    let out = std::env::temp_dir().join(format!("psyrun-stimuli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = psyrun(&[
        "stimuli",
        "experiments/quick_csf.psy",
        "--out",
        out.to_str().unwrap(),
        "--count",
        "3",
        "--contrast",
        "0.25",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("wrote 3 training pairs and 32 test gratings"));

    // Training pairs: the first trials of epoch 1, bit for bit.
    let (shape, a) = read_npy(&out.join("train_a.npy"));
    assert_eq!(shape, [3, 64, 64, 3]);
    let (_, b) = read_npy(&out.join("train_b.npy"));
    let plan = psyrun::plan::compile(
        &psyrun::source::SourceFile::read(&crate::root().join("experiments/quick_csf.psy"))
            .unwrap(),
    )
    .plan
    .unwrap();
    let kinds = psyrun::trials::shape_kinds(&plan.train);
    let csv = std::fs::read_to_string(out.join("train.csv")).unwrap();
    for i in 0..3u64 {
        let p = psyrun::stimuli::training_pair(
            plan.seed,
            0,
            i,
            64,
            &kinds,
            plan.train.background,
            plan.train.pivot,
            0.04,
            1.0,
        );
        let n = 64 * 64 * 3;
        assert_eq!(&a[i as usize * n..][..n], &p.first[..]);
        assert_eq!(&b[i as usize * n..][..n], &p.second[..]);
        let answer = if p.label == 1 { "b" } else { "a" };
        let row = csv.lines().nth(i as usize + 1).unwrap();
        assert!(
            row.starts_with(&format!("{i},")) && row.ends_with(answer),
            "{row}"
        );
        assert!(out.join(format!("train/{i:03}_a.png")).is_file());
    }

    // Gratings: 4 frequencies × (4 orientations × 2 phases); `both` intervals share images.
    let (shape, target) = read_npy(&out.join("test_target.npy"));
    assert_eq!(shape, [4, 8, 64, 64]);
    let (_, reference) = read_npy(&out.join("test_reference.npy"));
    assert!(
        reference.iter().all(|&v| v == 0.5),
        "reference contrast 0 is uniform grey"
    );
    // Frequency 8 (index 2), orientation 45° phase 180° (condition 3): the tutorial's formula.
    let spec = psyrun::stimuli::GratingSpec {
        size: 64,
        frequency: 8.0,
        orientation_deg: 45.0,
        phase_deg: 180.0,
        envelope_sigma: Some(64.0 / 6.0),
    };
    let want = psyrun::stimuli::grating(&spec, 0.25);
    let n = 64 * 64;
    assert_eq!(&target[(2 * 8 + 3) * n..][..n], &want[..]);
    let max = target.iter().cloned().fold(f32::MIN, f32::max);
    assert!((max - 0.625).abs() < 0.01, "peak (0.25 + 1) / 2, got {max}");
    assert!(out.join("test/f8_o45_p180.png").is_file());
    assert!(std::fs::read(out.join("preview.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn stimuli_rejects_a_contrast_outside_0_1() {
    let o = psyrun(&[
        "stimuli",
        "experiments/quick_csf.psy",
        "--out",
        "/nonexistent/never",
        "--contrast",
        "1.5",
    ]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("--contrast must be in [0, 1]"));
}

#[test]
fn fmt_lays_files_out_checks_them_and_leaves_broken_ones_alone() {
    let dir = std::env::temp_dir().join(format!("psyrun-fmt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let messy = "psy 1\nexperiment e {\n    seed 3 // kept\n  backbone resnet18 { weights random\n  cut layer1 }\n  probe linear { epochs 1 }\n  train shapes { size 32  samples 16 }\n  test gratings { size 32  frequencies [2,4] }\n  staircase bisection {}\n}\n";
    let tidy = "psy 1\nexperiment e {\n  seed 3   // kept\n  backbone resnet18 {\n    weights random\n    cut layer1\n  }\n  probe linear { epochs 1 }\n  train shapes { size 32  samples 16 }\n  test gratings { size 32  frequencies [2, 4] }\n  staircase bisection {}\n}\n";
    let broken = "psy 1\nexperiment e {\n  seed 3\n";
    let (m, b) = (dir.join("messy.psy"), dir.join("broken.psy"));
    std::fs::write(&m, messy).unwrap();
    std::fs::write(&b, broken).unwrap();
    let (ms, bs) = (m.to_str().unwrap(), b.to_str().unwrap());
    // --check says which file is off and changes nothing.
    let o = psyrun(&["fmt", "--check", ms, "--color", "never"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("messy.psy: not in psyrun's layout"));
    assert_eq!(std::fs::read_to_string(&m).unwrap(), messy);
    // fmt rewrites it; a file with syntax errors is reported and left alone.
    let o = psyrun(&["fmt", ms, bs, "--color", "never"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&m).unwrap(), tidy);
    assert_eq!(std::fs::read_to_string(&b).unwrap(), broken);
    assert!(
        text(&o.stderr).contains("psy::syntax::"),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("broken.psy: not formatted (syntax errors)"));
    // Formatted once, the file is in the layout: --check passes, fmt leaves it unchanged.
    let o = psyrun(&["fmt", "--check", ms]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    let o = psyrun(&["fmt", ms]);
    assert!(text(&o.stdout).contains("messy.psy: unchanged"));
    // The repository's experiments are in the layout.
    let o = psyrun(&[
        "fmt",
        "--check",
        "experiments/contrast_csf.psy",
        "experiments/quick_csf.psy",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn set_overrides_check_and_plan() {
    let o = psyrun(&[
        "plan",
        "experiments/quick_csf.psy",
        "--set",
        "probe.epochs=1",
        "--set",
        "backbone.cut=layer2",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let plan: Plan = ron::from_str(&text(&o.stdout)).expect("plan prints RON");
    assert_eq!(plan.probe.epochs, 1);
    assert_eq!(plan.backbone.catalog().unwrap().cut, "layer2");
    // Checked like the file: an unknown path and a bad value, with exit 1.
    let o = psyrun(&[
        "check",
        "experiments/quick_csf.psy",
        "--set",
        "probe.epoch=1",
        "--set",
        "seed=-1",
        "--color",
        "never",
    ]);
    assert_eq!(code(&o), 1);
    let err = text(&o.stderr);
    assert!(
        err.contains("psy::plan::unknown_path") && err.contains("[--set:1:1]"),
        "{err}"
    );
    assert!(
        err.contains("psy::plan::out_of_range") && err.contains("[--set:1:6]"),
        "{err}"
    );
    assert!(text(&o.stdout).contains("experiments/quick_csf.psy: 2 errors"));
    // Not PATH=VALUE: a usage error.
    let o = psyrun(&[
        "check",
        "experiments/quick_csf.psy",
        "--set",
        "probe.epochs",
    ]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("is not PATH=VALUE"));
}

#[test]
fn a_sweep_is_listed_by_plan_and_checked_by_check() {
    let o = psyrun(&["check", "experiments/layer_profile.psy", "--color", "never"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "experiments/layer_profile.psy: ok (3 conditions)\n"
    );
    let o = psyrun(&["plan", "experiments/layer_profile.psy"]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    assert!(
        out.starts_with("// 3 conditions\n// index  id            values\n// 1      "),
        "{out}"
    );
    assert_eq!(out.matches("// condition ").count(), 3);
    assert_eq!(out.matches("\nPlan(").count(), 3);
    // One condition, by index: a header line and a plan that reads back.
    let o = psyrun(&["plan", "experiments/layer_profile.psy", "--condition", "3"]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    let (header, ron) = out.split_once('\n').unwrap();
    assert!(
        header.starts_with("// condition 3 of 3: ") && header.ends_with("backbone.cut=layer3"),
        "{header}"
    );
    let plan: Plan = ron::from_str(ron).expect("the condition's plan is RON");
    assert_eq!(plan.backbone.catalog().unwrap().cut, "layer3");
    let o = psyrun(&[
        "plan",
        "experiments/layer_profile.psy",
        "--condition",
        "0",
        "--color",
        "never",
    ]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("psy::plan::condition"));
    // `stimuli` needs one plan: a sweep is refused with the same code.
    let o = psyrun(&[
        "stimuli",
        "experiments/layer_profile.psy",
        "--out",
        "/nonexistent/x",
        "--color",
        "never",
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("psy::plan::condition"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn an_error_in_an_imported_file_shows_that_file() {
    let o = psyrun(&[
        "check",
        "tests/fixtures/err/plan/extends_base_error.psy",
        "--color",
        "never",
    ]);
    assert_eq!(code(&o), 1);
    let err = text(&o.stderr);
    assert!(
        err.contains("╭─[tests/fixtures/import/broken_base.psy:5:43]"),
        "{err}"
    );
    assert!(err.contains("cut layer9"), "{err}");
}

/// `psyrun stimuli` on an experiment written by its parts: one trial of each condition at
/// every axis value (PNG per interval, `test.npy`, `test.csv` with the answer), the first
/// training trials, the sheet; a level the stimuli cannot show is refused before anything
/// is written.
#[test]
fn stimuli_of_a_designed_experiment_show_every_condition() {
    let out = std::env::temp_dir().join(format!("psyrun-cli-design-stim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let file = crate::root().join("experiments/masking_dipper.psy");
    let (file, out_s) = (file.to_str().unwrap(), out.to_str().unwrap());
    let o = psyrun(&[
        "stimuli", file, "--out", out_s, "--level", "0.05", "--count", "2",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // 5 pedestals × 2 conditions (target first or second) × 2 intervals.
    let pngs = std::fs::read_dir(out.join("test")).unwrap().count();
    assert_eq!(pngs, 20);
    let csv = std::fs::read_to_string(out.join("test.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 11, "{csv}");
    assert!(
        rows[0].starts_with("axis_index,axis,condition,level"),
        "{csv}"
    );
    assert!(
        rows[1].ends_with(",0,interval 1") && rows[2].ends_with(",1,interval 2"),
        "{csv}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("train.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert!(out.join("preview.png").is_file() && out.join("test.npy").is_file());
    // The largest pedestal plus an increment of 0.8 is a contrast of 1.1.
    let _ = std::fs::remove_dir_all(&out);
    let o = psyrun(&["stimuli", file, "--out", out_s, "--level", "0.8"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("psy::plan::out_of_range") && err.contains("increment"),
        "{err}"
    );
    assert!(!out.join("test.csv").exists());
    let _ = std::fs::remove_dir_all(&out);
}
