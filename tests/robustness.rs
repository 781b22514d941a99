//! No input makes psyrun panic: hostile files through the CLI (exit code never 101), and
//! random and mutated sources through the library under proptest, in bounded time.

use proptest::prelude::*;
use psyrun::diag::Code;
use psyrun::plan::compile;
use psyrun::source::SourceFile;
use std::path::Path;
use std::process::Command;

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
    let (code, err) = check_bytes("garbage.bin", &garbage);
    assert_eq!(code, 2);
    assert!(err.contains("psy::io::not_utf8"), "{err}");
    let (code, err) = check_bytes("latin1.psy", b"psy 1\n// caf\xe9\nexperiment x {}\n");
    assert_eq!(code, 2);
    assert!(err.contains("invalid UTF-8 at byte 12 (line 2)"), "{err}");
    // Valid UTF-8 that is still nonsense: a syntax error, not a crash.
    let (code, err) = check_bytes("nul.psy", b"psy 1\n\0\0\0experiment");
    assert_eq!(code, 1);
    assert!(err.contains("psy::syntax::"), "{err}");
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
        Just("1 / 0".to_string()),
        "\\PC{0,3}",
    ]
}

fn no_panic(text: &str) {
    let lowered = compile(&SourceFile::new("fuzz.psy", text.to_string()));
    // Every diagnostic renders (spans inside the text, on char boundaries).
    let _ = psyrun::diag::render(&lowered.diags, false);
    assert_eq!(lowered.plan.is_some(), !lowered.has_errors());
}

const EXPERIMENTS: [&str; 2] = [
    include_str!("../experiments/contrast_csf.psy"),
    include_str!("../experiments/quick_csf.psy"),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, max_shrink_iters: 200, ..ProptestConfig::default() })]

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
