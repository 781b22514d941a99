//! `psyrun fmt`: an experiment file in psyrun's layout, with every comment kept.
//!
//! The layout, applied to a file that parses (a file with syntax errors is not touched):
//! - two spaces of indentation per block level; `keyword label {` opens a block, `}` closes
//!   it on its own line;
//! - one setting a line, `key value`, with one space between them; a block written on one
//!   line (`optimizer sgd { lr 0.1  momentum 0.9 }`, no comment or block inside) stays on one
//!   line, its settings two spaces apart;
//! - inside a value: `, ` after commas, `: ` after an argument's name, no space inside
//!   brackets and parentheses or around `..`, one space around `+ - * /`; numbers, names and
//!   strings are written as they were (`1e-4` stays `1e-4`);
//! - blank lines: at most one in a row, none right after `{` or before `}`;
//! - comments stay where they were: a comment on a line of its own stays on its own line
//!   (indented like the code after it), a comment after code stays after that code, at the
//!   column it had (or two spaces after the code, if the code now reaches further), so
//!   aligned comments stay aligned;
//! - a value written over several lines, or with a comment inside, keeps its line breaks
//!   (its lines re-indented).
//!
//! Formatting is idempotent (formatting the output changes nothing), keeps the meaning
//! (the output plans to the same plan) and keeps every comment: property tests check all
//! three.

use super::ast::{Block, Item, Value};
use super::parse;
use crate::diag::{Diag, Span};
use crate::source::SourceFile;

/// The file in psyrun's layout, or the syntax errors that stop it from being formatted.
pub fn format(file: &SourceFile) -> Result<String, Vec<Diag>> {
    let ast = parse(file)?;
    let text: &str = &file.text;
    let mut f = Formatter {
        text,
        comments: find_comments(text),
        used: Vec::new(),
        cursor: 0,
        out: String::new(),
        last_end: 0,
        fresh_block: true,
    };
    f.used = vec![false; f.comments.len()];
    if let Some(h) = &ast.header {
        // A comment inside `psy 1` is moved before it.
        f.leading(h.span.end, 0);
        f.blank_line_before(h.span.start);
        f.line(0, &format!("psy {}", h.version), h.span.end);
    }
    for i in &ast.imports {
        // A comment inside the line is moved before it.
        f.leading(i.whole.end, 0);
        f.blank_line_before(i.whole.start);
        let path = normalize(&text[i.span.start..i.span.end]);
        f.line(0, &format!("import {path}"), i.whole.end);
    }
    for e in &ast.experiments {
        f.block(e, 0);
    }
    f.leading(text.len(), 0);
    let mut out = f.out;
    while out.ends_with("\n\n") {
        out.pop();
    }
    Ok(out)
}

/// Trailing comments keep their column up to this one.
const MAX_COMMENT_COLUMN: usize = 100;

struct Formatter<'a> {
    text: &'a str,
    comments: Vec<Span>,
    used: Vec<bool>,
    /// Every comment before this index is written.
    cursor: usize,
    out: String,
    /// End of the source emitted last (code or comment).
    last_end: usize,
    /// True right after `{` (and at the file's start): no blank line goes there.
    fresh_block: bool,
}

impl Formatter<'_> {
    /// Own-line comments before byte `pos` not yet written, each on its own line at
    /// `depth`, with the blank lines between them kept (at most one).
    fn leading(&mut self, pos: usize, depth: usize) {
        while self.cursor < self.comments.len() && self.comments[self.cursor].start < pos {
            let i = self.cursor;
            self.cursor += 1;
            let c = self.comments[i];
            if self.used[i] {
                continue;
            }
            self.used[i] = true;
            self.blank_line_before(c.start);
            let body = reindent_comment(&self.text[c.start..c.end], depth);
            self.out.push_str(&indent(depth));
            self.out.push_str(&body);
            self.out.push('\n');
            self.last_end = c.end;
            self.fresh_block = false;
        }
    }

    /// A blank line if the source has one between what was written last and `pos`.
    fn blank_line_before(&mut self, pos: usize) {
        let gap = &self.text[self.last_end.min(pos)..pos];
        if !self.fresh_block && gap.matches('\n').count() >= 2 {
            self.out.push('\n');
        }
    }

    /// Writes a line of code at `depth` whose source ends at byte `end`, with the comments
    /// that follow it on its source line.
    fn line(&mut self, depth: usize, code: &str, end: usize) {
        let start_len = self.out.len();
        self.out.push_str(&indent(depth));
        self.out.push_str(code);
        self.last_end = end;
        self.trailing(start_len, end);
        self.out.push('\n');
        self.fresh_block = false;
    }

    /// The comments after byte `end` on the same source line with nothing but spaces before
    /// them, appended to the line being written (which began at `line_start` in `out`).
    fn trailing(&mut self, line_start: usize, end: usize) {
        let mut pos = end;
        loop {
            // The first comment not written yet that starts at or after `pos`.
            let mut i = self.cursor;
            while i < self.comments.len() && (self.used[i] || self.comments[i].start < pos) {
                i += 1;
            }
            let Some(&c) = self.comments.get(i) else {
                return;
            };
            if !self.text[pos..c.start]
                .chars()
                .all(|c| c == ' ' || c == '\t' || c == '\r')
            {
                return;
            }
            self.used[i] = true;
            // The width of the line the comment goes on (a value over several lines ends on
            // its last line).
            let last = &self.out[line_start..];
            let width = last[last.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .count();
            let column = source_column(self.text, c.start);
            // A column far to the right (a long run of spaces or carriage returns before the
            // comment) is not kept.
            let at = if pos == end && column <= MAX_COMMENT_COLUMN {
                column.max(width + 2)
            } else if pos == end {
                width + 2
            } else {
                width + 1
            };
            self.out.push_str(&" ".repeat(at - width));
            self.out.push_str(&self.text[c.start..c.end]);
            pos = c.end;
            self.last_end = c.end;
        }
    }

    fn block(&mut self, b: &Block, depth: usize) {
        // Comments before the block, and any between its keyword and `{`, go before it.
        self.leading(b.open.start, depth);
        self.blank_line_before(b.span.start);
        let mut head = b.keyword.text.clone();
        if let Some(label) = &b.label {
            head.push(' ');
            head.push_str(&self.value_inline(label));
        }
        if let Some(base) = &b.extends {
            head.push_str(" extends ");
            head.push_str(&base.text);
        }
        let close = b.span.end - 1;
        if self.one_line(b) {
            let settings: Vec<String> = b
                .settings()
                .map(|s| format!("{} {}", s.key.text, self.value_inline(&s.value)))
                .collect();
            let code = if settings.is_empty() {
                format!("{head} {{}}")
            } else {
                format!("{head} {{ {} }}", settings.join("  "))
            };
            self.line(depth, &code, b.span.end);
            return;
        }
        self.line(depth, &format!("{head} {{"), b.open.end);
        self.fresh_block = true;
        for item in &b.items {
            match item {
                Item::Block(inner) => self.block(inner, depth + 1),
                Item::Setting(s) => {
                    // Comments before the setting, and any between its key and value.
                    self.leading(s.value.span.start, depth + 1);
                    self.blank_line_before(s.key.span.start);
                    let code = format!("{} {}", s.key.text, self.value(&s.value, depth + 1));
                    self.line(depth + 1, &code, s.value.span.end);
                }
            }
        }
        self.leading(close, depth + 1);
        self.fresh_block = true;
        self.line(depth, "}", b.span.end);
    }

    /// A block written on one source line, with no comment and no block inside.
    fn one_line(&self, b: &Block) -> bool {
        let close = b.span.end - 1;
        !self.text[b.span.start..close].contains('\n')
            && b.blocks().next().is_none()
            && self.comments_within(b.open.start, close).is_empty()
    }

    /// Indices of the comments that start in `start..end`.
    fn comments_within(&self, start: usize, end: usize) -> std::ops::Range<usize> {
        let a = self.comments.partition_point(|c| c.start < start);
        let b = self.comments.partition_point(|c| c.start < end);
        a..b.max(a)
    }

    /// A value as written in the layout: on one line, or (written over several lines or
    /// holding a comment) with its own line breaks, re-indented for `depth`.
    fn value(&mut self, v: &Value, depth: usize) -> String {
        let src = &self.text[v.span.start..v.span.end];
        let inside = self.comments_within(v.span.start, v.span.end);
        if inside.is_empty() && !src.contains('\n') {
            return normalize(src);
        }
        for i in inside {
            self.used[i] = true;
        }
        let mut lines = src.lines();
        let mut out = lines.next().unwrap_or("").trim_end().to_string();
        for l in lines {
            let t = l.trim();
            out.push('\n');
            if t.is_empty() {
                continue;
            }
            let d = if t.starts_with(']') || t.starts_with(')') {
                depth
            } else {
                depth + 1
            };
            out.push_str(&indent(d));
            out.push_str(t);
        }
        out
    }

    /// A value that must fit one line (a label, a setting of a one-line block).
    fn value_inline(&self, v: &Value) -> String {
        normalize(&self.text[v.span.start..v.span.end])
    }
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

/// The column (in characters) at which byte `pos` sits on its line.
fn source_column(text: &str, pos: usize) -> usize {
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..pos].chars().count()
}

/// A block comment's later lines re-indented for `depth` (their own indentation beyond the
/// comment's first line is kept); a line comment as it is.
fn reindent_comment(c: &str, depth: usize) -> String {
    if !c.contains('\n') {
        return c.to_string();
    }
    let mut out = String::new();
    for (i, l) in c.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            let t = l.trim_start();
            if !t.is_empty() {
                out.push_str(&indent(depth));
                // ` * ` continuation lines sit one column in, as is usual.
                if t.starts_with('*') {
                    out.push(' ');
                }
            }
            out.push_str(t.trim_end());
        } else {
            out.push_str(l.trim_end());
        }
    }
    out
}

/// Every comment of the text (strings skipped), in order: the parser's own scan
/// ([`walk_brackets`](super::walk_brackets)), with the blanks and carriage returns before a
/// `//` comment's line end left out.
fn find_comments(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    super::walk_brackets(text, |kind, start| {
        if let super::Bracket::Comment(mut end) = kind {
            if b[start + 1] == b'/' {
                while end > start + 2 && matches!(b[end - 1], b'\r' | b' ' | b'\t') {
                    end -= 1;
                }
            }
            out.push(Span { start, end });
        }
    });
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Tok<'a> {
    /// A number, name or string, as written.
    Word(&'a str),
    /// Punctuation; `unary` for a sign before `(`.
    Punct(&'a str, bool),
}

/// A one-line value in the layout: tokens as written, spaced by the rules above.
pub(crate) fn normalize(src: &str) -> String {
    let toks = tokens(src);
    let mut out = String::new();
    let mut prev: Option<&(Tok, bool)> = None;
    // Inside a call's parentheses `:` names an argument; outside, `cuda:1` is one word.
    let mut in_call = 0usize;
    for t in &toks {
        if let Some(p) = prev {
            if space_between(&p.0, &t.0, t.1 || in_call > 0) {
                out.push(' ');
            }
        }
        match t.0 {
            Tok::Punct("(", _) => in_call += 1,
            Tok::Punct(")", _) => in_call = in_call.saturating_sub(1),
            _ => {}
        }
        match t.0 {
            Tok::Word(w) | Tok::Punct(w, _) => out.push_str(w),
        }
        prev = Some(t);
    }
    out
}

fn space_between(a: &Tok, b: &Tok, b_spaced: bool) -> bool {
    use Tok::{Punct, Word};
    match (a, b) {
        (_, Punct(",", _) | Punct(")", _) | Punct("]", _) | Punct(":", _)) => false,
        (Punct("(", _) | Punct("[", _), _) => false,
        (Word(_), Punct("(", _)) => false,
        (Punct("..", _), _) | (_, Punct("..", _)) => false,
        (Punct(_, true), _) => false,
        // `cuda:1` is one word; `max: 112` an argument.
        (Punct(":", _), Word(w)) => b_spaced || !w.starts_with(|c: char| c.is_ascii_digit()),
        _ => true,
    }
}

/// The tokens of a value, each with whether whitespace preceded it.
fn tokens(src: &str) -> Vec<(Tok<'_>, bool)> {
    let b = src.as_bytes();
    let mut out: Vec<(Tok, bool)> = Vec::new();
    let mut i = 0;
    let mut spaced = false;
    let digit_at = |j: usize| b.get(j).is_some_and(u8::is_ascii_digit);
    while i < b.len() {
        let c = b[i];
        let start = i;
        // A sign after a number or a bracket is arithmetic (`224 / 6 - 1`); after a name it
        // starts the number of a tagged value (`avg -2`, which the grammar reads as a name and
        // a number), and anywhere else it is the number's own. The names `level` and `axis`
        // are values (`axis + level`, `level - 1`).
        let value_before = match out.last() {
            Some((Tok::Word(w), _)) => {
                !w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    || *w == "level"
                    || *w == "axis"
            }
            Some((Tok::Punct(p, _), _)) => *p == ")" || *p == "]",
            None => false,
        };
        if c.is_ascii_whitespace() {
            spaced = true;
            i += 1;
            continue;
        }
        let tok = if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            Tok::Word(&src[start..i])
        } else if c == b'.' && b.get(i + 1) == Some(&b'.') {
            i += 2;
            Tok::Punct("..", false)
        } else if c.is_ascii_digit()
            || (c == b'.' && digit_at(i + 1))
            || ((c == b'-' || c == b'+')
                && !value_before
                && (digit_at(i + 1) || (b.get(i + 1) == Some(&b'.') && digit_at(i + 2))))
        {
            i += 1;
            while i < b.len() {
                let d = b[i];
                if (d == b'e' || d == b'E') && matches!(b.get(i + 1), Some(b'+' | b'-')) {
                    i += 2;
                } else if d.is_ascii_alphanumeric()
                    || d == b'_'
                    || (d == b'.' && b.get(i + 1) != Some(&b'.'))
                {
                    i += 1;
                } else {
                    break;
                }
            }
            Tok::Word(&src[start..i])
        } else if c.is_ascii_alphabetic() || c == b'_' {
            i += 1;
            while i < b.len() {
                let d = b[i];
                if d.is_ascii_alphanumeric()
                    || d == b'_'
                    || (d == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric))
                {
                    i += 1;
                } else {
                    break;
                }
            }
            Tok::Word(&src[start..i])
        } else {
            // One character of punctuation (or anything else, kept as it is).
            let len = src[i..].chars().next().map_or(1, char::len_utf8);
            i += len;
            let p = &src[start..i];
            let unary = (p == "-" || p == "+") && !value_before;
            Tok::Punct(p, unary)
        };
        out.push((tok, spaced));
        spaced = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(text: &str) -> String {
        format(&SourceFile::new("t.psy", text)).unwrap_or_else(|d| panic!("{d:?}"))
    }

    #[test]
    fn values_get_one_spacing() {
        assert_eq!(normalize("[1,2 ,  4]"), "[1, 2, 4]");
        assert_eq!(
            normalize("divisors( 224 , max:112 )"),
            "divisors(224, max: 112)"
        );
        assert_eq!(normalize("cuda:1"), "cuda:1");
        assert_eq!(normalize("0.0 .. 1.0"), "0.0..1.0");
        assert_eq!(normalize("128/255"), "128 / 255");
        assert_eq!(normalize("224 / 6 - 1"), "224 / 6 - 1");
        assert_eq!(normalize("-0.5..+0.5"), "-0.5..+0.5");
        assert_eq!(normalize("-(1 + 2)"), "-(1 + 2)");
        assert_eq!(normalize("avg   2x2"), "avg 2x2");
        assert_eq!(normalize("1e-4"), "1e-4");
        assert_eq!(
            normalize("torchscript   \"a, b.pt\""),
            "torchscript \"a, b.pt\""
        );
        assert_eq!(
            normalize("gaussian( sigma : 224/6 )"),
            "gaussian(sigma: 224 / 6)"
        );
        assert_eq!(normalize("[features.0, layer2]"), "[features.0, layer2]");
        // A name then a signed number is one tagged value, not a subtraction (a fuzz find).
        assert_eq!(normalize("test1e-4"), "test1e -4");
        assert_eq!(normalize("avg -2"), "avg -2");
        assert_eq!(normalize("2 -2"), "2 - 2");
    }

    #[test]
    fn a_messy_file_gets_the_layout_and_keeps_its_comments() {
        let one = "psy 1\nexperiment e {\n   seed 1   // the seed\n}\n";
        assert_eq!(
            fmt(one),
            "psy 1\nexperiment e {\n  seed 1    // the seed\n}\n"
        );
        let messy = "// top\n\n\npsy   1\nexperiment e {\n\n   seed 1    // the seed\n  backbone resnet18 { weights random\n cut layer1 }\n  probe linear { optimizer sgd { lr 0.1  momentum 0.9 }\n\n\n    // epochs next\n    epochs 2 batch 4\n\n  }\n  train shapes { size 32 }\n  test gratings { frequencies [1,2,\n      4, // four\n   8] }\n  staircase bisection {}\n}\n";
        let want = "// top\n\npsy 1\nexperiment e {\n  seed 1     // the seed\n  backbone resnet18 {\n    weights random\n    cut layer1\n  }\n  probe linear {\n    optimizer sgd { lr 0.1  momentum 0.9 }\n\n    // epochs next\n    epochs 2\n    batch 4\n  }\n  train shapes { size 32 }\n  test gratings {\n    frequencies [1,2,\n      4, // four\n      8]\n  }\n  staircase bisection {}\n}\n";
        assert_eq!(fmt(messy), want);
        assert_eq!(fmt(want), want, "formatting the layout changes nothing");
    }

    #[test]
    fn the_repositorys_experiments_are_in_the_layout() {
        for text in [
            include_str!("../../experiments/contrast_csf.psy"),
            include_str!("../../experiments/quick_csf.psy"),
            include_str!("../../experiments/layer_profile.psy"),
            include_str!("../../experiments/common/lab.psy"),
            include_str!("../../experiments/masking_dipper.psy"),
            include_str!("../../experiments/orientation_discrimination.psy"),
            include_str!("../../experiments/vernier_acuity.psy"),
            include_str!("../../experiments/vernier_crowding.psy"),
            include_str!("../../experiments/frequency_discrimination.psy"),
            include_str!("../../experiments/csf_natural_images.psy"),
        ] {
            assert_eq!(fmt(text), text);
        }
    }

    #[test]
    fn stimuli_tasks_axes_and_expressions_get_the_layout() {
        let messy = "psy 1\nexperiment e {\n  stimulus   ref   gabor {frequency axis\n orientation 45deg+level }\n  stimulus t gabor { like ref  contrast axis*(1+level)  phase -level }\n task   2afc {stimuli [ref,t]}\n  axis   frequency   [2,4]\n}\n";
        let want = "psy 1\nexperiment e {\n  stimulus ref gabor {\n    frequency axis\n    orientation 45deg + level\n  }\n  stimulus t gabor { like ref  contrast axis * (1 + level)  phase -level }\n  task 2afc { stimuli [ref, t] }\n  axis frequency [2, 4]\n}\n";
        assert_eq!(fmt(messy), want);
        assert_eq!(fmt(want), want, "formatting the layout changes nothing");
        check_properties("design.psy", messy);
    }

    #[test]
    fn imports_extends_and_sweeps_get_the_layout() {
        let messy = "psy 1\nimport   \"common/lab.psy\"  // the lab's\n\n\nimport \"b.psy\"\nexperiment  e   extends   lab {\n sweep   zip {backbone.cut [layer1,layer2]\n seed [1,2] }\n  sweep { probe.epochs [1,  2] }\n    seed 3\n}\n";
        // The comment keeps its column (see the layout's rules).
        let want = "psy 1\nimport \"common/lab.psy\"    // the lab's\n\nimport \"b.psy\"\nexperiment e extends lab {\n  sweep zip {\n    backbone.cut [layer1, layer2]\n    seed [1, 2]\n  }\n  sweep { probe.epochs [1, 2] }\n  seed 3\n}\n";
        assert_eq!(fmt(messy), want);
        assert_eq!(fmt(want), want, "formatting the layout changes nothing");
        check_properties("new.psy", messy);
    }

    #[test]
    fn trailing_comments_keep_their_column_or_move_past_the_code() {
        let src = "psy 1\nexperiment e {\n  seed 1          // aligned\n  device cpu      // aligned\n  backbone resnet18 { weights random  cut layer1 }  // long line\n}\n";
        assert_eq!(fmt(src), src);
        let src = "psy 1\nexperiment e {\n  seed   1// tight\n}\n";
        assert_eq!(fmt(src), "psy 1\nexperiment e {\n  seed 1  // tight\n}\n");
    }

    #[test]
    fn a_file_with_syntax_errors_is_not_formatted() {
        assert!(format(&SourceFile::new("t.psy", "psy 1\nexperiment e {\n")).is_err());
    }

    /// Formatting `text` again changes nothing, the result plans exactly as `text` does
    /// (or fails as it does), and every comment of `text` is in it.
    fn check_properties(name: &str, text: &str) {
        let Ok(once) = format(&SourceFile::new(name, text)) else {
            return;
        };
        let twice = fmt(&once);
        assert_eq!(twice, once, "{name}: not idempotent");
        let plan = |t: &str| {
            let l = crate::plan::compile(&SourceFile::new(name, t));
            (
                l.plan.as_ref().map(crate::plan::to_ron),
                l.diags.iter().map(|d| d.code).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            plan(&once),
            plan(text),
            "{name}: the meaning changed\n{once}"
        );
        let comments = |t: &str| {
            let mut v: Vec<String> = find_comments(t)
                .into_iter()
                .map(|c| {
                    t[c.start..c.end]
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            comments(&once),
            comments(text),
            "{name}: comments lost\n{once}"
        );
    }

    #[test]
    fn every_fixture_formats_idempotently_with_its_meaning_and_comments() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for dir in [
            "experiments",
            "tests/fixtures/ok",
            "tests/fixtures/err/plan",
            "tests/fixtures/err/syntax",
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "psy") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    check_properties(&path.display().to_string(), &text);
                    n += 1;
                }
            }
        }
        assert!(n > 50, "only {n} fixtures found");
    }

    #[test]
    fn every_single_insertion_of_a_line_break_or_carriage_returns_formats_idempotently() {
        // Fuzz finds: a value broken over two lines before a trailing comment, and a long run
        // of carriage returns before one.
        let base = include_str!("../../experiments/quick_csf.psy");
        for insert in ["\n", "\r\r\r\r\n", &"\r".repeat(150)] {
            for at in (0..=base.len()).filter(|&i| base.is_char_boundary(i)) {
                let mut text = base.to_string();
                text.insert_str(at, insert);
                check_properties("inserted.psy", &text);
                // Replacing four characters with a line break, as the fuzzing did.
                if insert != "\n" {
                    continue;
                }
                let mut end = (at + 4).min(base.len());
                while !base.is_char_boundary(end) {
                    end += 1;
                }
                let mut text = base.to_string();
                text.replace_range(at..end, "\n");
                check_properties("replaced.psy", &text);
            }
        }
    }

    use proptest::prelude::*;

    /// What may replace a run of whitespace between two tokens.
    fn gap() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(" ".to_string()),
            Just("   ".to_string()),
            Just("\t".to_string()),
            Just("\n".to_string()),
            Just("\n\n\n".to_string()),
            Just("\r\n".to_string()),
            Just(" /* note */ ".to_string()),
            Just("  // note\n".to_string()),
            Just("\n  // own line\n\n".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn relaid_experiments_format_to_the_same_layout_and_meaning(
            which in 0usize..2,
            gaps in prop::collection::vec((any::<prop::sample::Index>(), gap()), 1..25),
        ) {
            let base = [
                include_str!("../../experiments/contrast_csf.psy"),
                include_str!("../../experiments/quick_csf.psy"),
            ][which];
            // Replace some whitespace runs (between tokens, outside comments) with others.
            let comments = find_comments(base);
            let runs: Vec<(usize, usize)> = {
                let b = base.as_bytes();
                let mut v = Vec::new();
                let mut i = 0;
                while i < b.len() {
                    if b[i] == b' ' || b[i] == b'\n' {
                        let s = i;
                        while i < b.len() && (b[i] == b' ' || b[i] == b'\n') { i += 1; }
                        if !comments.iter().any(|c| s >= c.start && s < c.end) {
                            v.push((s, i));
                        }
                    } else {
                        i += 1;
                    }
                }
                v
            };
            let mut chosen: Vec<(usize, usize, String)> = gaps
                .into_iter()
                .map(|(at, g)| { let r = runs[at.index(runs.len())]; (r.0, r.1, g) })
                .collect();
            chosen.sort_by_key(|c| std::cmp::Reverse(c.0));
            chosen.dedup_by_key(|c| c.0);
            let mut text = base.to_string();
            for (s, e, g) in chosen {
                text.replace_range(s..e, &g);
            }
            check_properties("relaid.psy", &text);
        }
    }
}
