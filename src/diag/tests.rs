use super::*;
use crate::source::SourceFile;

fn file(text: String) -> SourceFile {
    SourceFile::new("t.psy", text)
}

fn at(file: &SourceFile, start: usize, end: usize) -> Diag {
    Diag::error(Code::PlanUnknownSetting, "bad")
        .at(Span::new(start, end), "here")
        .with_source(file)
}

#[test]
fn a_label_beyond_column_65535_renders_a_window() {
    // miette 7.6 panicked ("Formatting argument out of range") on these.
    for pad in ["\t".repeat(16_500), "漢".repeat(33_000), "a".repeat(70_000)] {
        let text = format!("psy 1\nexperiment e {{{pad}x }}\n");
        let x = text.find("x }").unwrap();
        let f = file(text);
        let out = render(&[at(&f, x, x + 1).also(Span::new(6, 16), "block")], false);
        assert!(out.len() < 2_000, "{out}");
        assert!(out.contains("…"), "{out}");
        assert!(out.contains("x }"), "{out}");
        assert!(out.contains("╰── here"), "{out}");
        // The header still gives the file's line and (byte) column.
        assert!(out.contains(&format!("t.psy:2:{}]", x - 6 + 1)), "{out}");
    }
}

#[test]
fn a_label_longer_than_the_window_is_cut_at_its_end() {
    let text = format!(
        "psy 1\nexperiment e {{ seed \"{}\" }}\n",
        "漢".repeat(40_000)
    );
    let s = text.find('"').unwrap();
    let e = text.rfind('"').unwrap() + 1;
    let f = file(text);
    let out = render(&[at(&f, s, e)], false);
    assert!(out.len() < 2_000, "{out}");
    assert!(out.contains("…\n"), "{out}");
}

#[test]
fn labels_far_apart_are_shown_as_two_excerpts() {
    let text = format!("psy 1\nexperiment e {{\n{}}}\n", "seed 1\n".repeat(40_000));
    let last = text.rfind("seed").unwrap();
    let f = file(text);
    let out = render(
        &[at(&f, last, last + 4).also(Span::new(21, 25), "first set here")],
        false,
    );
    assert!(out.lines().count() < 30, "{out}");
    assert!(out.contains("40002 │"), "{out}");
    assert!(out.contains(" 3 │"), "{out}");
}

#[test]
fn at_most_max_shown_diagnostics_in_source_order_then_a_count() {
    let text = "x\n".repeat(200);
    let f = file(text);
    let mut diags: Vec<Diag> = (0..200).rev().map(|i| at(&f, 2 * i, 2 * i + 1)).collect();
    diags.push(Diag::warning(Code::PlanConstantTarget, "w").at(Span::new(399, 400), "w"));
    let out = render(&diags, false);
    assert_eq!(out.matches("× bad").count(), MAX_SHOWN);
    assert!(out.contains(" 1 │ x"), "{out}");
    assert!(!out.contains("100 │ x"), "{out}");
    assert!(
        out.ends_with("… and 150 more errors and 1 more warning not shown (psyrun shows the first 50 in source order)\n"),
        "{}",
        &out[out.len() - 200..]
    );
}

#[test]
fn huge_words_in_messages_are_cut() {
    let word = "l".repeat(3_000_000);
    let d = Diag::error(Code::PlanUnknownLayer, format!("no layer `{word}`")).with_help(word);
    let out = render(&[d], false);
    assert!(out.len() < 3_000, "{}", out.len());
}

#[test]
fn labels_out_of_the_text_or_inside_a_character_do_not_panic() {
    let f = file("psy 1\nexperiment é {\n".to_string());
    for (s, e) in [
        (0, 0),
        (18, 18),
        (17, 18),
        (16, 17),
        (5, 100),
        (100, 200),
        (3, 1),
    ] {
        render(&[at(&f, s, e).also(Span::new(e, s), "x")], false);
    }
    let empty = file(String::new());
    render(&[at(&empty, 0, 0), at(&empty, 0, 5)], false);
}
