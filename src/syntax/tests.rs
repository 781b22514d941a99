//! Grammar and tree-building unit tests.

use super::ast::{Item, ValueKind};
use super::*;

fn ast(src: &str) -> Ast {
    parse(&SourceFile::new("t.psy", src.to_string())).unwrap_or_else(|d| panic!("{:?}", d))
}

fn errors(src: &str) -> Vec<Diag> {
    parse(&SourceFile::new("t.psy", src.to_string())).expect_err("should fail")
}

/// The value of the first setting named `key` anywhere in the first experiment.
fn value(src: &str, key: &str) -> ValueKind {
    fn find(b: &Block, key: &str) -> Option<ValueKind> {
        for i in &b.items {
            match i {
                Item::Setting(s) if s.key.text == key => return Some(s.value.kind.clone()),
                Item::Block(inner) => {
                    if let Some(v) = find(inner, key) {
                        return Some(v);
                    }
                }
                Item::Setting(_) => {}
            }
        }
        None
    }
    find(&ast(src).experiments[0], key).unwrap_or_else(|| panic!("no {key}"))
}

fn wrap(body: &str) -> String {
    format!("psy 1\nexperiment e {{\n{body}\n}}\n")
}

#[test]
fn tutorial_file_has_the_expected_tree() {
    let a = ast(include_str!("../../experiments/contrast_csf.psy"));
    assert_eq!(a.header.as_ref().map(|h| h.version), Some(1));
    assert_eq!(a.experiments.len(), 1);
    let e = &a.experiments[0];
    assert_eq!(
        e.label.as_ref().map(|l| l.kind.clone()),
        Some(ValueKind::Ident("contrast_csf".into()))
    );
    let sections: Vec<&str> = e.blocks().map(|b| b.keyword.text.as_str()).collect();
    assert_eq!(
        sections,
        [
            "backbone",
            "probe",
            "train",
            "test",
            "staircase",
            "observer",
            "fit"
        ]
    );
    let probe = e.blocks().nth(1).unwrap();
    let opt = probe.blocks().next().unwrap();
    let keys: Vec<&str> = opt.settings().map(|s| s.key.text.as_str()).collect();
    assert_eq!(keys, ["lr", "momentum", "weight_decay"]);
}

#[test]
fn one_value_per_setting() {
    let a = ast(&wrap("staircase { target 1.2\n target 0.75 }"));
    let s = a.experiments[0].blocks().next().unwrap();
    assert_eq!(
        s.settings().count(),
        2,
        "two settings, never one with two values"
    );
    let a = ast(&wrap("probe { optimizer sgd { lr 0.1  momentum 0.9 } }"));
    let opt = a.experiments[0]
        .blocks()
        .next()
        .unwrap()
        .blocks()
        .next()
        .unwrap();
    assert_eq!(opt.settings().count(), 2);
}

#[test]
fn literals() {
    assert_eq!(value(&wrap("seed 1e3"), "seed"), ValueKind::Number(1000.0));
    assert_eq!(
        value(&wrap("x 224 / 6"), "x"),
        ValueKind::Number(224.0 / 6.0)
    );
    assert_eq!(
        value(&wrap("x (1 + 2) * 3 - -1"), "x"),
        ValueKind::Number(10.0)
    );
    assert_eq!(value(&wrap("x -(2)"), "x"), ValueKind::Number(-2.0));
    assert_eq!(value(&wrap("x 180deg / 12"), "x"), ValueKind::Angle(15.0));
    assert_eq!(value(&wrap("x 90deg / 45deg"), "x"), ValueKind::Number(2.0));
    assert_eq!(
        value(&wrap("device cuda:1"), "device"),
        ValueKind::Ident("cuda:1".into())
    );
    assert_eq!(
        value(&wrap("paradigm 2afc"), "paradigm"),
        ValueKind::Ident("2afc".into())
    );
    assert_eq!(
        value(&wrap("cut layer4.0.conv2"), "cut"),
        ValueKind::Ident("layer4.0.conv2".into())
    );
    assert_eq!(
        value(&wrap(r#"w "a \"b\"\\c.pth""#), "w"),
        ValueKind::Str("a \"b\"\\c.pth".into())
    );
    match value(&wrap("pooling avg 2x3"), "pooling") {
        ValueKind::Tagged { tag, arg } => {
            assert_eq!(tag.text, "avg");
            assert_eq!(arg.kind, ValueKind::Dims(2, 3));
        }
        k => panic!("{k:?}"),
    }
    match value(&wrap("shapes [circle, ellipse,]"), "shapes") {
        ValueKind::List(items) => assert_eq!(items.len(), 2),
        k => panic!("{k:?}"),
    }
    match value(&wrap("range 0.0..1.0"), "range") {
        ValueKind::Range(lo, hi) => assert_eq!(
            (lo.kind, hi.kind),
            (ValueKind::Number(0.0), ValueKind::Number(1.0))
        ),
        k => panic!("{k:?}"),
    }
    match value(&wrap("f divisors(224, max: 112)"), "f") {
        ValueKind::Call { name, args } => {
            assert_eq!(name.text, "divisors");
            assert_eq!(args.len(), 2);
            assert_eq!(args[1].name.as_ref().map(|n| n.text.as_str()), Some("max"));
            assert_eq!(args[1].value.kind, ValueKind::Number(112.0));
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn comments_are_skipped() {
    let a = ast("// top\npsy 1 /* inline */\nexperiment e { // after\n seed /* here */ 3\n}\n");
    assert_eq!(a.experiments[0].settings().count(), 1);
}

#[test]
fn spans_point_at_the_source() {
    let src = wrap("seed 42");
    let a = ast(&src);
    let s = a.experiments[0].settings().next().unwrap();
    assert_eq!(&src[s.key.span.start..s.key.span.end], "seed");
    assert_eq!(&src[s.value.span.start..s.value.span.end], "42");
}

#[test]
fn missing_brace_is_reported_where_the_next_section_starts() {
    let src = wrap("backbone resnet50 {\n  cut layer2\nprobe linear {}");
    let d = errors(&src);
    assert_eq!(d[0].code, Code::SyntaxUnclosedBlock);
    let at = d[0].primary.as_ref().unwrap().span;
    assert_eq!(&src[at.start..at.end], "probe");
    let open = d[0].secondary[0].span;
    assert_eq!(&src[open.start..open.end], "{");
    assert!(src[..open.start].ends_with("backbone resnet50 "));
}

#[test]
fn lexical_errors_are_collected_together() {
    let d = errors(&wrap("a 1e\nb 0.1.2\nc \"open\nd 1 / 0"));
    let codes: Vec<Code> = d.iter().map(|x| x.code).collect();
    assert_eq!(
        codes,
        [
            Code::SyntaxBadNumber,
            Code::SyntaxBadNumber,
            Code::SyntaxUnterminatedString,
            Code::SyntaxDivisionByZero
        ]
    );
}

#[test]
fn equals_sign_gets_advice() {
    let d = errors(&wrap("seed = 3"));
    assert_eq!(d[0].code, Code::SyntaxUnexpected);
    assert!(d[0].help.as_deref().unwrap_or("").contains("without `=`"));
}

#[test]
fn header_rules() {
    assert_eq!(
        errors("experiment e {}")[0].code,
        Code::SyntaxMissingVersion
    );
    assert_eq!(
        errors("psy 2\nexperiment e {}")[0].code,
        Code::SyntaxUnsupportedVersion
    );
    assert_eq!(
        errors("psy 1.5\nexperiment e {}")[0].code,
        Code::SyntaxUnsupportedVersion
    );
    assert_eq!(errors("")[0].code, Code::SyntaxEmpty);
}

#[test]
fn slips_get_their_own_messages_and_nothing_else_does() {
    let one = |src: &str| {
        let e = errors(src);
        assert_eq!(e.len(), 1, "{src}: {e:?}");
        e.into_iter().next().unwrap()
    };
    // A valid header followed by a slip on its own line is not a version error.
    let d = one("psy 1 # the version\nexperiment e {}\n");
    assert!(d.message.contains("`#` does not start a comment"), "{d:?}");
    let d = one("  psy: 1\nexperiment e {}\n");
    assert_eq!(d.code, Code::SyntaxMissingVersion, "{d:?}");
    // The parser may stop after the hyphen: the name is still found whole.
    let d = one(&wrap("probe { optimizer sgd { weight-decay 0 } }"));
    assert!(
        d.help.as_deref().unwrap().contains("`weight_decay`"),
        "{d:?}"
    );
    // Arithmetic with a minus is not a hyphen.
    assert!(parse(&SourceFile::new("t.psy", wrap("seed 4-2"))).is_ok());
    let d = one(&wrap("test { frequencies [1 2\n 4] }"));
    assert!(d.message.contains("between list items"), "{d:?}");
    assert!(
        !d.help.as_deref().unwrap().contains("[1, 2, 4]"),
        "multi-line lists are not rewritten"
    );
    let d = one(&wrap("test { frequencies divisors(64 max: 32) }"));
    assert!(d.message.contains("between arguments"), "{d:?}");
    let d = one(&wrap("staircase { target 62.5% }"));
    assert!(d.help.as_deref().unwrap().contains("`0.625`"), "{d:?}");
    // Something else entirely keeps the generic message.
    let d = one(&wrap("probe { epochs @ }"));
    assert!(d.message.starts_with("unexpected"), "{d:?}");
}
