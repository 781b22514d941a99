//! Parsing: text → [`Ast`]. The only module that sees pest's `Pair<Rule>`.
//!
//! [`parse`] never panics: it first scans brackets (bounding nesting and finding unmatched
//! ones), then runs the pest grammar (`grammar/psy.pest`), then builds the tree, folding
//! arithmetic and classifying number-like tokens. Lexical errors found while building
//! (bad numbers, unterminated strings, …) are all collected; a grammar error stops at the
//! first, as it must.

pub mod ast;
pub mod fmt;
mod number;

/// A number as a user would write it: `0.75`, not `0.7500000000000001` (12 significant
/// digits at most).
fn plan_number(x: f64) -> String {
    let rounded: f64 = format!("{x:.12e}").parse().unwrap_or(x);
    format!("{rounded}")
}

use crate::diag::{Code, Diag, Span};
use crate::source::SourceFile;
use ast::*;
use pest::iterators::Pair;
use pest::Parser as _;

/// The language versions this psyrun reads.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// Deepest bracket nesting accepted (`{`, `[`, `(` together). Real files need 4.
pub const MAX_DEPTH: usize = 32;

/// Most values a written list may hold, as many as a generator may make (`steps`,
/// `logspace`). The pre-scan refuses a longer list before the parser builds a tree for it.
pub const MAX_LIST_VALUES: usize = 10_000;

mod grammar {
    //! The pest parser generated from `grammar/psy.pest`.
    #![allow(missing_docs, unreachable_pub)]
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/psy.pest"]
    pub(super) struct PsyParser;
}
use grammar::{PsyParser, Rule};

/// Parses a source file. Errors come back as diagnostics with spans (no source attached;
/// the caller attaches it).
pub fn parse(file: &SourceFile) -> Result<Ast, Vec<Diag>> {
    let text: &str = &file.text;
    if let Some(d) = scan_brackets(text) {
        return Err(vec![d]);
    }
    if is_blank(text) {
        return Err(vec![Diag::error(
            Code::SyntaxEmpty,
            "the file is empty: no `psy 1` header and no experiment",
        )
        .with_help("start from an example: `experiments/quick_csf.psy`")]);
    }
    let pairs = match PsyParser::parse(Rule::file, text) {
        Ok(p) => p,
        Err(e) => return Err(vec![grammar_error(text, &e)]),
    };
    let mut b = Builder { errors: Vec::new() };
    let mut ast = Ast {
        header: None,
        imports: Vec::new(),
        experiments: Vec::new(),
    };
    let Some(file_pair) = pairs.into_iter().next() else {
        return Err(vec![Diag::error(
            Code::SyntaxUnexpected,
            "the parser produced no tree",
        )]);
    };
    for p in file_pair.into_inner() {
        match p.as_rule() {
            Rule::header => ast.header = b.header(p),
            Rule::import => ast.imports.push(b.import(p)),
            Rule::experiment => ast.experiments.push(b.block(p)),
            _ => {}
        }
    }
    match &ast.header {
        None => {
            let first = first_token(text);
            b.errors.insert(
                0,
                Diag::error(Code::SyntaxMissingVersion, "missing `psy 1` header")
                    .at(first, "expected `psy 1` before this")
                    .with_help(
                        "the first line of every experiment file is the language version: `psy 1`",
                    ),
            );
        }
        Some(h) if !SUPPORTED_VERSIONS.contains(&h.version) => {
            b.errors.insert(
                0,
                Diag::error(
                    Code::SyntaxUnsupportedVersion,
                    format!(
                        "language version {} is not supported by psyrun {}",
                        h.version,
                        env!("CARGO_PKG_VERSION")
                    ),
                )
                .at(h.span, "unsupported version")
                .with_help(format!("this psyrun reads `psy {}`", join_versions())),
            );
        }
        Some(_) => {}
    }
    if b.errors.is_empty() {
        Ok(ast)
    } else {
        Err(b.errors)
    }
}

/// Parses a value on its own (the VALUE of `--set PATH=VALUE`), with spans into `file`'s
/// text. Errors come back without the source attached, as [`parse`]'s do.
pub fn parse_value(file: &SourceFile) -> Result<Value, Vec<Diag>> {
    let text: &str = &file.text;
    if let Some(d) = scan_brackets(text) {
        return Err(vec![d]);
    }
    if is_blank(text) {
        return Err(vec![Diag::error(Code::SyntaxEmpty, "the value is empty")
            .with_help(
                "write a value as in a `.psy` file: `3`, `layer2`, `[0, 1]`, `avg 2x2`",
            )]);
    }
    let pairs = match PsyParser::parse(Rule::value_only, text) {
        Ok(p) => p,
        Err(e) => return Err(vec![grammar_error(text, &e)]),
    };
    let mut b = Builder { errors: Vec::new() };
    let value = pairs
        .into_iter()
        .next()
        .and_then(|p| p.into_inner().find(|q| q.as_rule() == Rule::value))
        .map(|v| b.value(v));
    match value {
        Some(v) if b.errors.is_empty() => Ok(v),
        Some(_) => Err(b.errors),
        None => Err(vec![Diag::error(
            Code::SyntaxUnexpected,
            "the parser produced no value",
        )]),
    }
}

fn join_versions() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("`, `psy ")
}

fn span_of(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

fn name_of(p: &Pair<'_, Rule>) -> Name {
    Name {
        text: p.as_str().to_string(),
        span: span_of(p),
    }
}

struct Builder {
    errors: Vec<Diag>,
}

impl Builder {
    fn header(&mut self, p: Pair<'_, Rule>) -> Option<Header> {
        let span = span_of(&p);
        let num = p.into_inner().find(|q| q.as_rule() == Rule::numlike)?;
        let text = num.as_str();
        match text.parse::<u32>() {
            Ok(version) => Some(Header {
                version,
                span: span_of(&num),
            }),
            Err(_) => {
                self.errors.push(
                    Diag::error(
                        Code::SyntaxUnsupportedVersion,
                        format!("`{text}` is not a language version"),
                    )
                    .at(span_of(&num), "expected a whole number")
                    .with_help(format!("write `psy {}`", join_versions())),
                );
                Some(Header { version: 1, span })
            }
        }
    }

    fn import(&mut self, p: Pair<'_, Rule>) -> Import {
        let whole = span_of(&p);
        let mut path = String::new();
        let mut span = whole;
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::string => {
                    let v = self.string(q);
                    span = v.span;
                    if let ValueKind::Str(s) = v.kind {
                        path = s;
                    }
                }
                Rule::unterminated => {
                    let v = self.value(q);
                    span = v.span;
                }
                _ => {}
            }
        }
        Import { path, span, whole }
    }

    fn block(&mut self, p: Pair<'_, Rule>) -> Block {
        let span = span_of(&p);
        let mut keyword = None;
        let mut label = None;
        let mut extends = None;
        let mut open = span;
        let mut items = Vec::new();
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::kw_experiment
                | Rule::section_kw
                | Rule::key
                | Rule::kw_sweep
                | Rule::kw_stimulus => keyword = Some(name_of(&q)),
                Rule::extends => {
                    extends = q
                        .into_inner()
                        .find(|r| r.as_rule() == Rule::ident)
                        .map(|r| name_of(&r))
                }
                Rule::sweep_mode => {
                    label = Some(Value {
                        kind: ValueKind::Ident(q.as_str().to_string()),
                        span: span_of(&q),
                    })
                }
                Rule::sweep_entry => items.push(Item::Setting(self.setting(q))),
                Rule::ident => {
                    label = Some(Value {
                        kind: ValueKind::Ident(q.as_str().to_string()),
                        span: span_of(&q),
                    })
                }
                Rule::label => label = q.into_inner().next().map(|l| self.label(l)),
                Rule::label_pair => label = Some(self.label(q)),
                Rule::lbrace => open = span_of(&q),
                Rule::setting => items.push(Item::Setting(self.setting(q))),
                Rule::block | Rule::block_inner | Rule::section | Rule::sweep | Rule::stimulus => {
                    items.push(Item::Block(self.block(q)))
                }
                _ => {}
            }
        }
        Block {
            keyword: keyword.unwrap_or(Name {
                text: String::new(),
                span,
            }),
            label,
            extends,
            items,
            open,
            span,
        }
    }

    fn label(&mut self, p: Pair<'_, Rule>) -> Value {
        let span = span_of(&p);
        match p.as_rule() {
            Rule::string => self.string(p),
            Rule::label_file | Rule::label_pair => {
                let pair = p.as_rule() == Rule::label_pair;
                let mut inner = p.into_inner();
                let (Some(tag), Some(file)) = (inner.next(), inner.next()) else {
                    return Value {
                        kind: ValueKind::Ident(String::new()),
                        span,
                    };
                };
                let arg = if pair {
                    Value {
                        kind: ValueKind::Ident(file.as_str().to_string()),
                        span: span_of(&file),
                    }
                } else {
                    self.string(file)
                };
                Value {
                    kind: ValueKind::Tagged {
                        tag: name_of(&tag),
                        arg: Box::new(arg),
                    },
                    span,
                }
            }
            _ => Value {
                kind: ValueKind::Ident(p.as_str().to_string()),
                span,
            },
        }
    }

    fn setting(&mut self, p: Pair<'_, Rule>) -> Setting {
        let mut inner = p.into_inner();
        let key = inner.next().map(|k| name_of(&k));
        let value = inner.next().map(|v| self.value(v));
        let key = key.unwrap_or(Name {
            text: String::new(),
            span: Span::default(),
        });
        let value = value.unwrap_or(Value {
            kind: ValueKind::Number(0.0),
            span: key.span,
        });
        Setting { key, value }
    }

    /// `value` and its alternatives.
    fn value(&mut self, p: Pair<'_, Rule>) -> Value {
        let span = span_of(&p);
        let p = if p.as_rule() == Rule::value {
            match p.into_inner().next() {
                Some(q) => q,
                None => {
                    return Value {
                        kind: ValueKind::Number(0.0),
                        span,
                    }
                }
            }
        } else {
            p
        };
        let span = span_of(&p);
        let kind = match p.as_rule() {
            Rule::list => ValueKind::List(
                p.into_inner()
                    .filter(|q| q.as_rule() == Rule::value)
                    .map(|q| self.value(q))
                    .collect(),
            ),
            Rule::string => return self.string(p),
            Rule::unterminated => {
                self.errors.push(
                    Diag::error(Code::SyntaxUnterminatedString, "unterminated string")
                        .at(
                            Span::new(span.start, span.start + 1),
                            "this string is not closed on its line",
                        )
                        .with_help("add the closing `\"`; strings cannot span lines"),
                );
                ValueKind::Str(String::new())
            }
            Rule::range => {
                let mut parts = p.into_inner().filter(|q| q.as_rule() == Rule::expr);
                let lo = parts.next().map(|q| self.expr(q));
                let hi = parts.next().map(|q| self.expr(q));
                match (lo, hi) {
                    (Some(lo), Some(hi)) => {
                        // pest's span of `range` runs on over the whitespace after it; end
                        // the value where its upper end ends.
                        let kind = ValueKind::Range(Box::new(lo), Box::new(hi.clone()));
                        return Value {
                            kind,
                            span: Span::new(span.start, hi.span.end),
                        };
                    }
                    _ => ValueKind::Number(0.0),
                }
            }
            Rule::call => {
                let mut inner = p.into_inner();
                let name = inner.next().map(|n| name_of(&n)).unwrap_or(Name {
                    text: String::new(),
                    span,
                });
                let args = inner
                    .filter(|q| q.as_rule() == Rule::arg)
                    .filter_map(|a| a.into_inner().next())
                    .map(|a| self.arg(a))
                    .collect();
                ValueKind::Call { name, args }
            }
            Rule::tagged => {
                let mut inner = p.into_inner();
                let tag = inner.next().map(|n| name_of(&n));
                let arg = inner.next().map(|n| {
                    if n.as_rule() == Rule::list {
                        self.value(n)
                    } else {
                        self.numlike(&n)
                    }
                });
                match (tag, arg) {
                    (Some(tag), Some(arg)) => ValueKind::Tagged {
                        tag,
                        arg: Box::new(arg),
                    },
                    _ => ValueKind::Number(0.0),
                }
            }
            Rule::indexed | Rule::ident => ValueKind::Ident(p.as_str().to_string()),
            Rule::expr => return self.expr(p),
            _ => ValueKind::Ident(p.as_str().to_string()),
        };
        Value { kind, span }
    }

    fn arg(&mut self, p: Pair<'_, Rule>) -> Arg {
        if p.as_rule() == Rule::named_arg {
            let mut inner = p.into_inner();
            let name = inner.next().map(|n| name_of(&n));
            let value = inner
                .find(|q| q.as_rule() == Rule::value)
                .map(|v| self.value(v));
            let value = value.unwrap_or(Value {
                kind: ValueKind::Number(0.0),
                span: Span::default(),
            });
            Arg { name, value }
        } else {
            Arg {
                name: None,
                value: self.value(p),
            }
        }
    }

    fn string(&mut self, p: Pair<'_, Rule>) -> Value {
        let span = span_of(&p);
        let raw = p.into_inner().next().map(|q| q.as_str()).unwrap_or("");
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((j, other)) => {
                    let at = span.start + 1 + i;
                    self.errors.push(
                        Diag::error(Code::SyntaxBadEscape, format!("unknown escape `\\{other}` in a string"))
                            .at(Span::new(at, span.start + 1 + j + other.len_utf8()), "unknown escape")
                            .with_help("strings know `\\\"`, `\\\\`, `\\n` and `\\t`; on Windows paths use `/` instead of `\\`"),
                    );
                }
                None => {}
            }
        }
        Value {
            kind: ValueKind::Str(out),
            span,
        }
    }

    fn expr(&mut self, p: Pair<'_, Rule>) -> Value {
        number::fold_expr(p, &mut self.errors)
    }

    fn numlike(&mut self, p: &Pair<'_, Rule>) -> Value {
        number::classify(p.as_str(), span_of(p), &mut self.errors)
    }
}

fn is_blank(text: &str) -> bool {
    first_token_at(text).is_none()
}

/// Byte offset of the first character that is not whitespace or inside a comment.
fn first_token_at(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => match text[i + 2..].find("*/") {
                Some(end) => i = i + 2 + end + 2,
                None => return None,
            },
            _ if text[i..].starts_with('\u{FEFF}') => i += '\u{FEFF}'.len_utf8(),
            _ => return Some(i),
        }
    }
    None
}

fn first_token(text: &str) -> Span {
    let start = first_token_at(text).unwrap_or(0);
    let end = text[start..]
        .find(|c: char| c.is_whitespace())
        .map_or(text.len(), |n| start + n);
    Span::new(start, end.max(start))
}

/// The innermost unclosed `{` before `at`, skipping strings and comments.
fn open_brace_before(text: &str, at: usize) -> Option<usize> {
    let mut stack = Vec::new();
    walk_brackets(&text[..at.min(text.len())], |kind, pos| match kind {
        Bracket::Open(b'{') => stack.push(pos),
        Bracket::Close(b'}') => {
            stack.pop();
        }
        Bracket::Open(_) | Bracket::Close(_) | Bracket::Comma | Bracket::Comment(_) => {}
    });
    stack.last().copied()
}

enum Bracket {
    Open(u8),
    Close(u8),
    Comma,
    /// A comment, `//` to the line end (not included) or `/* … */`; the position is its
    /// start, this its end.
    Comment(usize),
}

/// Calls `f` for every bracket and comma outside strings and comments, and for every
/// comment.
fn walk_brackets(text: &str, mut f: impl FnMut(Bracket, usize)) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let start = i;
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                f(Bracket::Comment(i), start);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = i;
                i = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 1);
                f(Bracket::Comment((i + 1).min(b.len())), start);
            }
            c @ (b'{' | b'[' | b'(') => f(Bracket::Open(c), i),
            c @ (b'}' | b']' | b')') => f(Bracket::Close(c), i),
            b',' => f(Bracket::Comma, i),
            _ => {}
        }
        i += 1;
    }
}

/// Bounds nesting and list lengths, and finds a closing bracket that matches nothing,
/// before pest runs.
fn scan_brackets(text: &str) -> Option<Diag> {
    // Each open bracket with the commas seen directly inside it.
    let mut stack: Vec<(u8, usize)> = Vec::new();
    let mut commas: Vec<usize> = Vec::new();
    let mut found = None;
    walk_brackets(text, |kind, pos| {
        if found.is_some() {
            return;
        }
        match kind {
            Bracket::Comment(_) => {}
            Bracket::Comma => {
                let (Some(&(b'[', open)), Some(n)) = (stack.last(), commas.last_mut()) else {
                    return;
                };
                *n += 1;
                // n commas hold at least n values (a trailing comma is allowed); the
                // planner checks the exact count of the lists it reads.
                if *n > MAX_LIST_VALUES {
                    found = Some(
                        Diag::error(
                            Code::PlanOutOfRange,
                            format!("a list holds at most {MAX_LIST_VALUES} values"),
                        )
                        .at(Span::new(pos, pos + 1), format!("more than {MAX_LIST_VALUES} values by here"))
                        .also(Span::new(open, open + 1), "the list starts here")
                        .with_help(format!(
                            "lists hold at most {MAX_LIST_VALUES} values, as generators make; is a `]` missing?"
                        )),
                    );
                }
            }
            Bracket::Open(c) => {
                stack.push((c, pos));
                commas.push(0);
                if stack.len() > MAX_DEPTH {
                    found = Some(
                        Diag::error(Code::SyntaxTooDeep, format!("brackets nested more than {MAX_DEPTH} deep"))
                            .at(Span::new(pos, pos + 1), "too deep")
                            .with_help("experiment files nest blocks at most three deep; is a closing bracket missing?"),
                    );
                }
            }
            Bracket::Close(c) => {
                let want = match c {
                    b'}' => b'{',
                    b']' => b'[',
                    _ => b'(',
                };
                match stack.last() {
                    Some(&(o, _)) if o == want => {
                        stack.pop();
                        commas.pop();
                    }
                    Some(&(o, opos)) => {
                        found = Some(
                            Diag::error(
                                Code::SyntaxUnmatchedClose,
                                format!("`{}` closes a `{}`", c as char, o as char),
                            )
                            .at(Span::new(pos, pos + 1), "unexpected closing bracket")
                            .also(Span::new(opos, opos + 1), "the innermost open bracket")
                            .with_help(format!(
                                "close the `{}` first with `{}`",
                                o as char,
                                closing(o)
                            )),
                        )
                    }
                    None => {
                        found = Some(
                            Diag::error(
                                Code::SyntaxUnmatchedClose,
                                format!("`{}` without an opening bracket", c as char),
                            )
                            .at(Span::new(pos, pos + 1), "nothing to close here")
                            .with_help("remove it, or add the opening bracket it belongs to"),
                        )
                    }
                }
            }
        }
    });
    found
}

fn closing(open: u8) -> char {
    match open {
        b'{' => '}',
        b'[' => ']',
        _ => ')',
    }
}

/// What the grammar expected, in the user's words.
fn describe_rule(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::header | Rule::kw_psy => "`psy 1`",
        Rule::experiment | Rule::kw_experiment => "`experiment NAME { … }`",
        Rule::import | Rule::kw_import => "`import \"FILE\"`",
        Rule::extends | Rule::kw_extends => "`extends NAME`",
        Rule::sweep | Rule::kw_sweep => "`sweep { PATH [values] }`",
        Rule::sweep_entry | Rule::sweep_path => "a swept setting (`PATH [values]`)",
        Rule::section | Rule::section_kw => "a section (backbone, probe, train, test, staircase)",
        Rule::block | Rule::block_inner => "a block",
        Rule::setting | Rule::key => "a setting",
        Rule::value | Rule::expr | Rule::term | Rule::factor | Rule::numlike => "a value",
        Rule::list => "a list",
        Rule::string => "a string",
        Rule::ident | Rule::label => "a name",
        Rule::arg | Rule::named_arg => "an argument",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::comma => "`,`",
        Rule::colon => "`:`",
        Rule::dotdot => "`..`",
        Rule::EOI => "the end of the file",
        _ => return None,
    })
}

fn grammar_error(text: &str, e: &pest::error::Error<Rule>) -> Diag {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let token = token_at(text, pos);
    let at_eof = token.start >= text.len();
    let found = if at_eof {
        "the end of the file".to_string()
    } else {
        format!("`{}`", &text[token.start..token.end])
    };
    // A section keyword or `experiment` where it cannot be: a `}` is missing above.
    let word = &text[token.start..token.end];
    let is_section = matches!(
        word,
        "backbone" | "probe" | "train" | "test" | "staircase" | "experiment"
    );
    // At the end of the file, point just after the last visible character: a label past
    // the trailing newline would sit on a line the report does not show.
    let token = if at_eof {
        let end = text.trim_end().len();
        Span::new(end, end)
    } else {
        token
    };
    if !at_eof {
        if let Some(d) = slip(text, pos, token) {
            return d;
        }
    }
    if (is_section || at_eof) && open_brace_before(text, pos).is_some() {
        let open = open_brace_before(text, pos).unwrap_or(0);
        let owner = line_head(text, open);
        let msg = if is_section {
            format!("unclosed block: `{owner}` is still open where `{word}` starts")
        } else {
            format!("unclosed block: `{owner}` is still open at the end of the file")
        };
        return Diag::error(Code::SyntaxUnclosedBlock, msg)
            .at(
                token,
                if is_section {
                    "expected `}` before this"
                } else {
                    "the file ends here"
                },
            )
            .also(Span::new(open, open + 1), "this `{` is never closed")
            .with_help("add the missing `}`");
    }
    let mut expected: Vec<&str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            if let Some(d) = describe_rule(*r) {
                if !expected.contains(&d) {
                    expected.push(d);
                }
            }
        }
    }
    let expected = match expected.len() {
        0 => String::from("something else"),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    Diag::error(Code::SyntaxUnexpected, format!("unexpected {found}"))
        .at(token, format!("expected {expected}"))
        .with_help(unexpected_help(word))
}

/// The slips everyone makes, each answered with its own message: `#` comments, commas
/// between settings, lists without commas, `psy1` for `psy 1`, hyphens in names, `75%`.
/// `None` for any other grammar error.
fn slip(text: &str, pos: usize, token: Span) -> Option<Diag> {
    let b = text.as_bytes();
    let is_name = |ch: u8| ch.is_ascii_alphanumeric() || ch == b'_';
    // `weight-decay`: the parser may stop after the hyphen rather than at it.
    let pos = if pos >= 2
        && b[pos - 1] == b'-'
        && is_name(b[pos - 2])
        && b.get(pos).is_some_and(|&ch| is_name(ch))
    {
        pos - 1
    } else {
        pos
    };
    let c = *b.get(pos)?;
    // The version line written otherwise (`psy1`, `PSY 1`, `Psy 1`, `psy: 1`): the error
    // is on the first line that holds anything, which starts with `psy` in any case.
    if let Some(first) = first_token_at(text) {
        let line_end = text[first..].find('\n').map_or(text.len(), |n| first + n);
        let line = text[first..line_end].trim_end();
        let header_ok = line.strip_prefix("psy").is_some_and(|r| {
            r.starts_with([' ', '\t']) && r.trim_start().starts_with(|c: char| c.is_ascii_digit())
        });
        if !header_ok
            && pos >= first
            && pos <= line_end
            && line.get(..3).is_some_and(|w| w.eq_ignore_ascii_case("psy"))
        {
            let shown: String = line.chars().take(MAX_TOKEN_SHOWN).collect();
            return Some(
                Diag::error(
                    Code::SyntaxMissingVersion,
                    "the first line must be exactly `psy 1`",
                )
                .at(
                    Span::new(first, first + shown.len()),
                    format!("found `{shown}`"),
                )
                .with_help(
                    "write `psy 1`: `psy` in lower case, one space, then the language version",
                ),
            );
        }
    }
    match c {
        b'#' => {
            let end = text[pos..].find('\n').map_or(text.len(), |n| pos + n);
            if Some(pos) == first_token_at(text) && text[pos..].starts_with("#!") {
                return Some(
                    Diag::error(Code::SyntaxUnexpected, "a `#!` line is not allowed: the first line must be `psy 1`")
                        .at(Span::new(pos, floor_boundary(text, end.min(pos + MAX_TOKEN_SHOWN))), "not part of the language")
                        .with_help("experiment files are not scripts: remove this line and run the file with `psyrun FILE` (or make it a comment: `// …`)"),
                );
            }
            Some(
                Diag::error(Code::SyntaxUnexpected, "`#` does not start a comment")
                    .at(token, "comments start with `//`")
                    .with_help("comments are `// …` to the end of the line and `/* … */`; write `//` instead of `#`"),
            )
        }
        b'%' => {
            let start = text[..pos]
                .rfind(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                .map_or(0, |i| i + 1);
            let number = text[start..pos].parse::<f64>().ok().filter(|_| start < pos);
            let d = Diag::error(Code::SyntaxUnexpected, "`%` is not a unit psyrun knows");
            Some(match number {
                Some(x) => d
                    .at(Span::new(start, pos + 1), "a percentage")
                    .with_help(format!(
                        "write proportions as numbers from 0 to 1: `{}` is `{}`",
                        &text[start..=pos],
                        plan_number(x / 100.0)
                    )),
                None => d
                    .at(token, "not a unit")
                    .with_help("write proportions as numbers from 0 to 1, e.g. `0.75` for 75 %"),
            })
        }
        b'-' => {
            // A hyphen inside a name (`experiment my-csf`): the name runs on both sides.
            let before = pos.checked_sub(1).map(|i| b[i])?;
            let after = *b.get(pos + 1)?;
            if !is_name(before) || !is_name(after) {
                return None;
            }
            let start = text[..pos]
                .rfind(|ch: char| {
                    !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || ch == '-')
                })
                .map_or(0, |i| i + 1);
            if !b[start].is_ascii_alphabetic() && b[start] != b'_' {
                return None;
            }
            let end = text[pos..]
                .find(|ch: char| {
                    !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || ch == '-')
                })
                .map_or(text.len(), |n| pos + n);
            if end - start > MAX_TOKEN_SHOWN {
                return None;
            }
            let word = &text[start..end];
            let fixed = word.replace('-', "_");
            Some(
                Diag::error(
                    Code::SyntaxUnexpected,
                    format!("`{word}` is not a name: names cannot contain `-`"),
                )
                .at(Span::new(start, end), "`-` in a name")
                .with_help(format!(
                    "names are letters, digits and `_`: write `{fixed}`"
                )),
            )
        }
        _ => {
            let (open, at) = innermost_open(text, pos)?;
            match open {
                b'{' if c == b',' => Some(
                    Diag::error(Code::SyntaxUnexpected, "settings are not separated by commas")
                        .at(token, "remove this `,`")
                        .with_help("settings are separated by spaces or new lines, without commas: `lr 0.1  momentum 0.9`"),
                ),
                b'[' | b'(' if starts_value(c) => {
                    let (what, example) = if open == b'[' {
                        ("list items", fixed_list(text, at))
                    } else {
                        ("arguments", None)
                    };
                    let help = match (example, open) {
                        (Some(fixed), _) => format!("{what} are separated by commas: `{fixed}`"),
                        (None, b'[') => format!("{what} are separated by commas, e.g. `[1, 2, 4, 8]`"),
                        (None, _) => format!("{what} are separated by commas, e.g. `divisors(224, max: 112)`"),
                    };
                    Some(
                        Diag::error(Code::SyntaxUnexpected, format!("missing `,` between {what}"))
                            .at(token, "expected `,` before this")
                            .also(Span::new(at, at + 1), if open == b'[' { "in this list" } else { "in this call" })
                            .with_help(help),
                    )
                }
                _ => None,
            }
        }
    }
}

/// The largest char boundary of `text` at or before `at`.
fn floor_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// True for a character that starts a value (a number, a name, a string, a list).
fn starts_value(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'"' | b'.' | b'[' | b'-' | b'+')
}

/// The list opened at `open`, rewritten with commas (`[1 2 4 8]` → `[1, 2, 4, 8]`), when it
/// is a simple list on one line: items without brackets, strings or commas.
fn fixed_list(text: &str, open: usize) -> Option<String> {
    let rest = &text[open + 1..];
    let close = rest.find(']')?;
    let inner = &rest[..close];
    if inner.len() > 200 || inner.contains(['\n', '[', '(', '"', ',', '/']) {
        return None;
    }
    let items: Vec<&str> = inner.split_whitespace().collect();
    Some(format!("[{}]", items.join(", ")))
}

/// The innermost bracket open at `pos` (`{`, `[` or `(`) and where it is, skipping strings
/// and comments.
fn innermost_open(text: &str, pos: usize) -> Option<(u8, usize)> {
    let mut stack = Vec::new();
    walk_brackets(&text[..pos.min(text.len())], |kind, at| match kind {
        Bracket::Open(c) => stack.push((c, at)),
        Bracket::Close(_) => {
            stack.pop();
        }
        Bracket::Comma | Bracket::Comment(_) => {}
    });
    stack.last().copied()
}

fn unexpected_help(word: &str) -> String {
    if word.starts_with('=') || word.starts_with(':') {
        "settings are written `name value`, without `=` or `:`".into()
    } else if word.starts_with(';') {
        "settings are separated by spaces or new lines, not `;`".into()
    } else {
        "see docs/language.md for the shape of a `.psy` file".into()
    }
}

/// The first word of the line holding `pos` (e.g. `backbone` for its `{`).
fn line_head(text: &str, pos: usize) -> String {
    let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    text[start..pos]
        .split_whitespace()
        .next()
        .unwrap_or("block")
        .to_string()
}

/// Longest token quoted in an "unexpected" message, in bytes.
const MAX_TOKEN_SHOWN: usize = 40;

/// The token starting at `pos`: a word, a number-like run, or one character (at most
/// [`MAX_TOKEN_SHOWN`] bytes).
fn token_at(text: &str, pos: usize) -> Span {
    if pos >= text.len() {
        return Span::new(text.len(), text.len());
    }
    let rest = &text[pos..];
    let mut chars = rest.char_indices();
    let Some((_, c)) = chars.next() else {
        return Span::new(pos, pos);
    };
    let mut len = if c.is_alphanumeric() || c == '_' {
        rest.find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '.'))
            .unwrap_or(rest.len())
    } else {
        c.len_utf8()
    };
    // The token is quoted in the message: keep a runaway one (a binary or minified file)
    // from filling the screen.
    if len > MAX_TOKEN_SHOWN {
        len = MAX_TOKEN_SHOWN;
        while !rest.is_char_boundary(len) {
            len -= 1;
        }
    }
    Span::new(pos, pos + len)
}

#[cfg(test)]
mod tests;
