//! No input makes psyrun panic, hang or blow up: hostile files through the CLI (exit code
//! never 101, bounded output and time), a regression corpus of what a hostile-input campaign
//! found (generated here, not committed), and random and mutated sources through the library
//! under proptest. `PSYRUN_FUZZ_CASES=1000000` scales the proptest part for a long run.

use proptest::prelude::*;
use psyrun::diag::Code;
use psyrun::plan::compile;
use psyrun::source::SourceFile;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("psyrun-robustness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `psyrun check` on a path; returns (exit code, stderr).
fn check(path: &Path) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .args(["check", "--color", "never"])
        .arg(path)
        .output()
        .unwrap();
    let code = o.status.code().expect("not killed by a signal");
    assert_ne!(
        code,
        101,
        "psyrun panicked on {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    (code, String::from_utf8_lossy(&o.stderr).into_owned())
}

fn check_bytes(name: &str, bytes: &[u8]) -> (i32, String) {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    check(&p)
}

#[test]
fn empty_and_blank_files() {
    for (name, text) in [
        ("empty.psy", ""),
        ("blank.psy", "  \n\t\n"),
        ("comments.psy", "// nothing\n/* here */\n"),
    ] {
        let (code, err) = check_bytes(name, text.as_bytes());
        assert_eq!(code, 1, "{name}");
        assert!(err.contains("psy::syntax::empty_file"), "{name}: {err}");
    }
}

#[test]
fn binary_garbage_and_invalid_utf8() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (code, err) = check_bytes("garbage.dat", &garbage);
    assert_eq!(code, 2);
    assert!(
        err.contains("psy::io::not_utf8") || err.contains("psy::io::binary"),
        "{err}"
    );
    let (code, err) = check_bytes("latin1.psy", b"psy 1\n// caf\xe9\nexperiment x {}\n");
    assert_eq!(code, 2);
    assert!(err.contains("invalid UTF-8 at byte 12 (line 2)"), "{err}");
    // Valid UTF-8 that is still nonsense: a syntax error, not a crash.
    let (code, err) = check_bytes("nonsense.psy", b"psy 1\n\x01\x02\x03experiment");
    assert_eq!(code, 1);
    assert!(err.contains("psy::syntax::"), "{err}");
}

#[test]
fn binary_files_are_refused_as_not_experiments() {
    // A NUL byte is never in text, even when the rest is valid UTF-8.
    let (code, err) = check_bytes("nul.psy", b"psy 1\n\0\0\0experiment");
    assert_eq!(code, 2);
    assert!(err.contains("psy::io::binary"), "{err}");
    assert!(err.contains("a binary file"), "{err}");
    // The usual slip: the weights instead of the experiment. Zip (torch.save), pickle (old
    // torch.save) and safetensors signatures, and the extension alone.
    for (name, bytes, what) in [
        (
            "net.pth",
            &b"PK\x03\x04\x14\x00\x00\x00"[..],
            "a zip archive",
        ),
        ("old.bin", &b"\x80\x02}q\x00(X"[..], "a Python pickle"),
        (
            "model.safetensors",
            &b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}"[..],
            "a safetensors file",
        ),
        ("empty.onnx", &b"text"[..], "a `.onnx` file"),
    ] {
        let (code, err) = check_bytes(name, bytes);
        assert_eq!(code, 2, "{name}");
        assert!(err.contains("psy::io::binary"), "{name}: {err}");
        assert!(err.contains(what), "{name}: {err}");
        assert!(err.contains("`.psy` experiment file"), "{name}: {err}");
        assert!(
            err.contains("weights \"nets/my_resnet.pth\""),
            "{name}: {err}"
        );
    }
}

#[test]
fn ten_megabyte_file() {
    let big =
        "// padding padding padding padding padding padding padding padding\n".repeat(160_000);
    assert!(big.len() > 10_000_000);
    let (code, err) = check_bytes("big.psy", big.as_bytes());
    assert_eq!(code, 2);
    assert!(err.contains("psy::io::too_large"), "{err}");
}

#[test]
fn ten_thousand_nested_blocks_lists_and_parentheses() {
    for (name, open, close) in [
        ("blocks.psy", "experiment x {", "}"),
        ("lists.psy", "[", "]"),
        ("parens.psy", "(", ")"),
    ] {
        let text = format!(
            "psy 1\nexperiment deep {{ seed {}{} }}\n",
            open.repeat(10_000),
            close.repeat(10_000)
        );
        let (code, err) = check_bytes(name, text.as_bytes());
        assert_eq!(code, 1, "{name}");
        assert!(err.contains("psy::syntax::too_deep"), "{name}: {err}");
    }
    // Just under the limit still parses (and fails only on meaning).
    let text = format!(
        "psy 1\nexperiment x {{ seed {}1{} }}\n",
        "(".repeat(30),
        ")".repeat(30)
    );
    let lowered = compile(&SourceFile::new("ok.psy", text));
    assert!(
        lowered
            .diags
            .iter()
            .all(|d| !d.code.as_str().starts_with("psy::syntax")),
        "{:?}",
        lowered.diags
    );
}

#[test]
fn directories_and_unreadable_paths() {
    let dir = tmp("a-directory.psy");
    std::fs::create_dir_all(&dir).unwrap();
    let (code, err) = check(&dir);
    assert_eq!(code, 2);
    assert!(err.contains("psy::io::is_directory"), "{err}");
    // A path through a regular file cannot be opened, even by root.
    let file = tmp("plain-file");
    std::fs::write(&file, "x").unwrap();
    let (code, err) = check(&file.join("inside.psy"));
    assert_eq!(code, 2);
    assert!(err.contains("psy::io::read"), "{err}");
    let (code, _) = check(Path::new("/nonexistent/psyrun/file.psy"));
    assert_eq!(code, 2);
}

/// What one bounded run of the binary gave.
struct Outcome {
    code: i32,
    stdout: String,
    /// The first megabyte of stderr.
    stderr: String,
    /// All of stderr, in bytes.
    stderr_len: usize,
    secs: f64,
}

/// What the binary reads on standard input.
enum Input {
    Null,
    Bytes(Vec<u8>),
    /// `yes`: lines until psyrun closes the pipe.
    Endless,
}

/// Generous bounds for one hostile input, on a slow machine and a debug build: a regression
/// is seconds of work or megabytes of output, far beyond these.
const MAX_SECS: f64 = 10.0;
const MAX_STDERR: usize = 256 * 1024;

/// Runs `psyrun ARGS` with `input` on stdin, killing it after a minute (a hang fails the
/// test instead of stalling it), and checks that it did not panic.
fn psyrun(args: &[&str], input: Input) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_psyrun"))
        .args(args)
        .stdin(match input {
            Input::Null => Stdio::null(),
            _ => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || match input {
            // A closed pipe ends the writer: psyrun may stop reading early.
            Input::Bytes(b) => drop(stdin.write_all(&b)),
            Input::Endless => {
                let chunk = b"y\n".repeat(32 * 1024);
                while stdin.write_all(&chunk).is_ok() {}
            }
            Input::Null => {}
        });
    }
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let (mut kept, mut total, mut buf) = (Vec::new(), 0usize, vec![0u8; 64 * 1024]);
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n;
                if kept.len() < 1 << 20 {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
            (String::from_utf8_lossy(&kept).into_owned(), total)
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("psyrun {args:?} hung (killed after 60 s)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (stdout, _) = out.join().unwrap();
    let (stderr, stderr_len) = err.join().unwrap();
    let code = status.code().expect("not killed by a signal");
    assert_ne!(code, 101, "psyrun {args:?} panicked:\n{stderr}");
    Outcome {
        code,
        stdout,
        stderr,
        stderr_len,
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Checks `path` with `check`, `plan` and `stimuli` (the in-process commands that render
/// diagnostics of a file): same exit code, bounded time and output, `code` reported.
fn hostile(name: &str, text: &str, exit: i32, code: &str) {
    let path = tmp(name);
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap();
    let out = tmp(&format!("{name}-stimuli"));
    for args in [
        vec!["check", "--color", "never", p],
        vec!["plan", "--color", "never", p],
        vec![
            "stimuli",
            "--color",
            "never",
            p,
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let o = psyrun(&args, Input::Null);
        assert_eq!(o.code, exit, "{name} {args:?}:\n{}", o.stderr);
        assert!(
            o.stderr.contains(code),
            "{name} {args:?}: {code} missing:\n{}",
            o.stderr
        );
        assert!(
            o.stderr_len < MAX_STDERR,
            "{name} {args:?}: {} bytes of stderr",
            o.stderr_len
        );
        assert!(o.secs < MAX_SECS, "{name} {args:?}: {:.1} s", o.secs);
    }
}

/// A valid experiment with `extra` inserted after its `experiment … {` line.
fn quick_with(extra: &str, replace: (&str, &str)) -> String {
    EXPERIMENTS[1]
        .replacen(
            "experiment quick_csf {\n",
            &format!("experiment quick_csf {{\n{extra}\n"),
            1,
        )
        .replacen(replace.0, replace.1, 1)
}

#[test]
fn regression_long_lines_render_without_panicking() {
    // miette panicked on a label at display column 65 535 or beyond.
    let tabs = format!("psy 1\nexperiment e {{{}x }}\n", "\t".repeat(16_500));
    hostile("tabs.psy", &tabs, 1, "psy::syntax::unexpected_token");
    // A label 66 000 columns wide, and one after it.
    let wide = format!(
        "psy 1\nexperiment e {{ seed \"{}\" x 1 }}\n",
        "漢".repeat(33_000)
    );
    hostile("wide.psy", &wide, 1, "psy::plan::unknown_setting");
    let after_wide = format!(
        "psy 1\nexperiment e {{ seed \"{}\" x }}\n",
        "漢".repeat(33_000)
    );
    hostile(
        "after-wide.psy",
        &after_wide,
        1,
        "psy::syntax::unexpected_token",
    );
}

#[test]
fn regression_many_diagnostics_cost_linear_time_and_bounded_output() {
    let unknown: String = (0..20_000).map(|i| format!("  unknown_{i} 1\n")).collect();
    hostile(
        "unknown-settings.psy",
        &format!("psy 1\nexperiment e {{\n{unknown}}}\n"),
        1,
        "psy::plan::unknown_setting",
    );
    hostile(
        "seeds.psy",
        &format!("psy 1\nexperiment e {{\n{}}}\n", "seed 1\n".repeat(40_000)),
        1,
        "psy::plan::duplicate_setting",
    );
    hostile(
        "a-a-a.psy",
        &format!("psy 1\nexperiment e {{{} }}\n", " a".repeat(20_000)),
        1,
        "psy::plan::unknown_setting",
    );
    let o = psyrun(
        &[
            "check",
            "--color",
            "never",
            tmp("seeds.psy").to_str().unwrap(),
        ],
        Input::Null,
    );
    assert!(
        o.stderr.contains(
            "… and 39954 more errors not shown (psyrun shows the first 50 in source order)"
        ),
        "{}",
        &o.stderr[o.stderr.len().saturating_sub(300)..]
    );
    assert!(o.stdout.contains("40004 errors"), "{}", o.stdout);
}

#[test]
fn regression_huge_words_and_lists() {
    let layer = quick_with(
        "",
        ("cut layer1", &format!("cut {}", "l".repeat(3_000_000))),
    );
    hostile("huge-layer.psy", &layer, 1, "psy::plan::unknown_layer");
    let list = format!(
        "psy 1\nexperiment e {{\n seed [{}] }}\n",
        ["1"; 1_300_000].join(", ")
    );
    hostile("huge-list.psy", &list, 1, "psy::plan::out_of_range");
    // Just over the limit, the planner counts exactly.
    let freqs = format!("[{}]", ["1"; 10_001].join(", "));
    let text = quick_with(
        "",
        ("frequencies [2, 4, 8, 16]", &format!("frequencies {freqs}")),
    );
    assert!(text.contains(&freqs));
    let lowered = compile(&SourceFile::new("freqs.psy", text));
    let d = lowered
        .diags
        .iter()
        .find(|d| d.code == Code::PlanOutOfRange);
    assert!(
        d.is_some_and(|d| d.message == "a list holds at most 10000 values, this one 10001"),
        "{:?}",
        lowered.diags
    );
}

#[test]
fn regression_values_beyond_float32_are_refused_by_the_planner() {
    for (from, to) in [
        ("lr 0.01", "lr 1e39"),
        ("weight_decay 1e-4", "weight_decay 1e308"),
        ("lr 0.01", "lr 1e30 * 1e10"),
        ("momentum 0.9", "momentum -1e39"),
        ("frequencies [2, 4, 8, 16]", "frequencies [2, 4, 8, 1e39]"),
        (
            "frequencies [2, 4, 8, 16]",
            "frequencies logspace(1, 1e39, 3)",
        ),
        (
            "orientations steps(0deg, 180deg, 45deg)",
            "orientations [1e39deg]",
        ),
        (
            "orientations steps(0deg, 180deg, 45deg)",
            "orientations steps(0deg, 1e39deg, 2e38deg)",
        ),
        (
            "frequencies [2, 4, 8, 16]",
            "frequencies [2, 4, 8, 16]\n    normalize custom(mean: [1e39, 0, 0], std: [1, 1, 1])",
        ),
        (
            "frequencies [2, 4, 8, 16]",
            "frequencies [2, 4, 8, 16]\n    normalize custom(mean: [0, 0, 0], std: [1, 1e-50, 1])",
        ),
    ] {
        let text = quick_with("", (from, to));
        assert!(text.contains(to), "{from} not in quick_csf.psy");
        let lowered = compile(&SourceFile::new("f32.psy", text));
        assert!(lowered.plan.is_none(), "{to} planned");
        let d = &lowered.diags[0];
        assert_eq!(d.code, Code::PlanOutOfRange, "{to}: {:?}", lowered.diags);
        assert!(
            d.message.contains("float32") && d.message.contains("e38")
                || d.message.contains("0 as a float32"),
            "{to}: {}",
            d.message
        );
    }
    // The largest float32 itself is fine.
    let text = quick_with("", ("weight_decay 1e-4", "weight_decay 3.4e38"));
    assert!(compile(&SourceFile::new("f32.psy", text)).plan.is_some());
}

#[test]
fn regression_seeds_keep_every_digit() {
    for seed in ["18446744073709551615", "9007199254740993", "0"] {
        let path = tmp(&format!("seed-{seed}.psy"));
        std::fs::write(&path, quick_with("", ("seed 1", &format!("seed {seed}")))).unwrap();
        for format in ["ron", "json"] {
            let o = psyrun(
                &["plan", "--format", format, path.to_str().unwrap()],
                Input::Null,
            );
            assert_eq!(o.code, 0, "{}", o.stderr);
            assert!(
                o.stdout.contains(&format!("seed\": {seed},"))
                    || o.stdout.contains(&format!("seed: {seed},")),
                "{format}: {}",
                o.stdout
            );
        }
    }
    let text = quick_with("", ("seed 1", "seed 18446744073709551616"));
    let lowered = compile(&SourceFile::new("seed.psy", text));
    assert_eq!(
        lowered.diags[0].code,
        Code::PlanOutOfRange,
        "{:?}",
        lowered.diags
    );
}

#[test]
fn regression_streams_and_special_files_are_bounded() {
    // Devices and FIFOs are refused by type, before anything blocks or reads forever.
    let o = psyrun(&["check", "--color", "never", "/dev/zero"], Input::Null);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("psy::io::not_a_file") && o.stderr.contains("a character device"),
        "{}",
        o.stderr
    );
    #[cfg(unix)]
    {
        let fifo = tmp("fifo.psy");
        let _ = std::fs::remove_file(&fifo);
        let made = Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let o = psyrun(
                &["check", "--color", "never", fifo.to_str().unwrap()],
                Input::Null,
            );
            assert_eq!(o.code, 2);
            assert!(
                o.stderr
                    .contains("is a FIFO (named pipe), not a regular file"),
                "{}",
                o.stderr
            );
            let o = psyrun(
                &["plan", "--color", "never", fifo.to_str().unwrap()],
                Input::Null,
            );
            assert_eq!(o.code, 2, "{}", o.stderr);
        }
    }
    // /dev/stdin reads standard input, with the same limit as a file.
    let o = psyrun(&["check", "--color", "never", "/dev/stdin"], Input::Endless);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("psy::io::too_large") && o.stderr.contains("more than 4194304 bytes"),
        "{}",
        o.stderr
    );
    let big = "// padding padding padding padding padding padding padding\n".repeat(130_000);
    assert!(big.len() > 7_500_000);
    let o = psyrun(
        &["check", "--color", "never", "/dev/stdin"],
        Input::Bytes(big.into_bytes()),
    );
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("psy::io::too_large"), "{}", o.stderr);
    let o = psyrun(
        &["check", "--color", "never", "/dev/stdin"],
        Input::Bytes(EXPERIMENTS[1].into()),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "/dev/stdin: ok\n");
    let o = psyrun(&["check", "--color", "never", "/dev/stdin"], Input::Null);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("psy::syntax::empty_file"), "{}", o.stderr);
    // The reader itself stops one byte past the limit.
    let endless = std::io::repeat(b' ');
    let d = SourceFile::read_stream("endless".into(), endless).unwrap_err();
    assert_eq!(d.code, Code::IoTooLarge);
}

#[test]
fn all_io_codes_are_exercised_here() {
    // Keeps this file honest: every psy::io code has a test above.
    let src = include_str!("robustness.rs");
    for c in psyrun::diag::Code::ALL
        .iter()
        .filter(|c| c.as_str().starts_with("psy::io::"))
    {
        assert!(
            src.contains(&format!("\"{}\"", c.as_str()))
                || src.contains(&format!("{}\"", c.as_str())),
            "{c} untested"
        );
    }
    let _ = Code::IoRead;
}

/// Tokens of the language, for inputs that get past the lexer and into the planner.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("psy 1\n".to_string()),
        Just("experiment x {".to_string()),
        Just("backbone".to_string()),
        Just("probe".to_string()),
        Just("train".to_string()),
        Just("test".to_string()),
        Just("staircase".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("..".to_string()),
        Just("\"".to_string()),
        Just("\n".to_string()),
        Just("//".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        "[a-z_]{1,10}",
        "-?[0-9]{1,4}(\\.[0-9]{0,3})?(e-?[0-9]{0,3})?(deg|rad|x[0-9])?",
        Just("resnet50".to_string()),
        Just("layer2".to_string()),
        Just("divisors(224, max: 112)".to_string()),
        Just("steps(0deg, 180deg, 15deg, inclusive)".to_string()),
        Just("uniform(0.04, 1)".to_string()),
        Just("avg 2x2".to_string()),
        Just("import \"lab.psy\"\n".to_string()),
        Just("extends".to_string()),
        Just("experiment y extends x {".to_string()),
        Just("sweep {".to_string()),
        Just("sweep zip {".to_string()),
        Just("backbone.cut [layer1, layer2]".to_string()),
        Just("seed [1, 2]".to_string()),
        Just("1 / 0".to_string()),
        "\\PC{0,3}",
    ]
}

fn no_panic(text: &str) {
    let lowered = compile(&SourceFile::new("fuzz.psy", text.to_string()));
    // Every diagnostic renders (spans inside the text, on char boundaries), in bounded
    // size: at most 50 diagnostics, each a few excerpt lines of bounded width.
    let out = psyrun::diag::render(&lowered.diags, false);
    assert!(out.len() < 1 << 20, "{} bytes rendered", out.len());
    assert_eq!(lowered.plan.is_some(), !lowered.has_errors());
    // `psyrun fmt` never panics either; what it formats parses again, to the same layout
    // and the same plan.
    if let Ok(once) = psyrun::syntax::fmt::format(&SourceFile::new("fuzz.psy", text.to_string())) {
        let again = SourceFile::new("fuzz.psy", once.clone());
        let twice = psyrun::syntax::fmt::format(&again)
            .unwrap_or_else(|d| panic!("the formatted text does not parse: {d:?}\n{once}"));
        assert_eq!(twice, once, "formatting is not idempotent");
        let plan = |l: &psyrun::plan::Lowered| l.plan.as_ref().map(psyrun::plan::to_ron);
        assert_eq!(
            plan(&compile(&again)),
            plan(&lowered),
            "formatting changed the plan"
        );
    }
}

const EXPERIMENTS: [&str; 2] = [
    include_str!("../experiments/contrast_csf.psy"),
    include_str!("../experiments/quick_csf.psy"),
];

/// Cases per proptest below: a bounded slice by default (the normal suite runs it in
/// seconds); `PSYRUN_FUZZ_CASES=1000000` for a long run (see docs/architecture.md).
fn fuzz_cases() -> u32 {
    std::env::var("PSYRUN_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1500)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: fuzz_cases(),
        max_shrink_iters: 200,
        // A long run must not stop on proptest's default cap of rejected cases.
        max_global_rejects: fuzz_cases().saturating_mul(4),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        no_panic(&text);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(token(), 0..60)) {
        no_panic(&tokens.join(" "));
    }

    #[test]
    fn mutated_experiments_never_panic(
        which in 0usize..2,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..12, token(), 0u8..3), 1..6),
    ) {
        let mut text = EXPERIMENTS[which].to_string();
        for (at, len, insert, op) in edits {
            let mut start = at.index(text.len() + 1);
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            match op {
                0 => text.replace_range(start..end, ""),
                1 => text.insert_str(start, &insert),
                _ => text.replace_range(start..end, &insert),
            }
        }
        no_panic(&text);
    }
}

proptest! {
    // A twentieth of the cases: each input is up to 160 kB.
    #![proptest_config(ProptestConfig {
        cases: (fuzz_cases() / 20).max(10),
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    })]

    #[test]
    fn long_runs_of_tabs_and_wide_characters_never_panic(
        which in 0usize..2,
        at in any::<prop::sample::Index>(),
        run in prop::sample::select(vec!["\t", "漢", "a ", " ", "é", "\u{200b}", "\r", "x\n"]),
        len in 0usize..40_000,
        tail in token(),
    ) {
        // Labels past display column 65 535 made miette panic: 16 500 tabs or 33 000 wide
        // characters before an error.
        let mut text = EXPERIMENTS[which].to_string();
        let mut start = at.index(text.len() + 1);
        while !text.is_char_boundary(start) { start -= 1; }
        text.insert_str(start, &format!("{}{tail}", run.repeat(len)));
        no_panic(&text);
    }
}
