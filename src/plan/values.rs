//! Reading typed values out of the syntax tree. Each reader reports its own diagnostics
//! (with the value's span) and returns `None` when the value is unusable, so that lowering
//! goes on and reports every independent problem in one pass.

use super::spans::Spans;
use crate::diag::{Code, Diag, Span};
use crate::syntax::ast::{Arg, Block, Name, Setting, Value, ValueKind};

/// Collected diagnostics, and the spans the run time needs (see [`Spans`]).
#[derive(Default)]
pub(crate) struct Cx {
    pub(crate) diags: Vec<Diag>,
    pub(crate) spans: Spans,
}

impl Cx {
    pub(crate) fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }

    pub(crate) fn wrong_type(&mut self, v: &Value, want: &str, help: &str) {
        self.push(
            Diag::error(
                Code::PlanWrongType,
                format!("expected {want}, found {}", v.kind.describe()),
            )
            .at(v.span, format!("expected {want}"))
            .with_help(help.to_string()),
        );
    }

    pub(crate) fn out_of_range(&mut self, span: Span, msg: String, label: &str, help: &str) {
        self.push(
            Diag::error(Code::PlanOutOfRange, msg)
                .at(span, label.to_string())
                .with_help(help.to_string()),
        );
    }

    /// A number (not an angle), finite as a float32 ([`Cx::float32`]): the run time
    /// stores the numbers of a plan as float32 (learning rates, contrasts, normalisation).
    pub(crate) fn number(&mut self, v: &Value, help: &str) -> Option<f64> {
        match v.kind {
            ValueKind::Number(_) | ValueKind::Integer(_) => {
                let x = v.kind.as_number()?;
                self.float32(v.span, x, help).then_some(x)
            }
            ValueKind::Angle(_) => {
                self.push(
                    Diag::error(
                        Code::PlanWrongType,
                        "expected a plain number, found an angle",
                    )
                    .at(v.span, "remove the unit")
                    .with_help(help.to_string()),
                );
                None
            }
            _ => {
                self.wrong_type(v, "a number", help);
                None
            }
        }
    }

    /// False (and an error at `span`) if `x` is beyond float32's range, where the run
    /// time would turn it into infinity.
    pub(crate) fn float32(&mut self, span: Span, x: f64, help: &str) -> bool {
        let max = f64::from(f32::MAX);
        if x.abs() <= max {
            return true;
        }
        self.out_of_range(
            span,
            format!(
                "{x:e} is beyond the range of float32 (±{:e}), in which psyrun computes",
                f32::MAX
            ),
            &format!("outside ±{:e}", f32::MAX),
            help,
        );
        false
    }

    /// A number within [lo, hi].
    pub(crate) fn number_in(
        &mut self,
        v: &Value,
        what: &str,
        lo: f64,
        hi: f64,
        help: &str,
    ) -> Option<f64> {
        let x = self.number(v, help)?;
        if x < lo || x > hi {
            self.out_of_range(
                v.span,
                format!("{what} must be between {lo} and {hi}, got {x}"),
                &format!("outside [{lo}, {hi}]"),
                help,
            );
            return None;
        }
        Some(x)
    }

    /// A whole number from `min` to `max`, exact over the whole `u64` range when written
    /// as digits ([`ValueKind::Integer`]).
    pub(crate) fn whole(&mut self, v: &Value, what: &str, min: u64, max: u64) -> Option<u64> {
        let help = format!("{what} is a whole number from {min} to {max}");
        if let ValueKind::Integer(n) = v.kind {
            if n < min || n > max {
                self.out_of_range(
                    v.span,
                    format!("{what} must be from {min} to {max}, got {n}"),
                    &format!("outside {min}..={max}"),
                    &help,
                );
                return None;
            }
            return Some(n);
        }
        let x = self.number(v, &help)?;
        if x.fract() != 0.0 {
            self.push(
                Diag::error(
                    Code::PlanWrongType,
                    format!("{what} must be a whole number, got {x}"),
                )
                .at(v.span, "expected a whole number")
                .with_help(help),
            );
            return None;
        }
        // `max as f64` may round up (u64::MAX to 2^64): no float at or above 2^64 fits.
        if x < min as f64 || x > max as f64 || x >= 18_446_744_073_709_551_616.0 {
            let label = if x <= 0.0 && min > 0 {
                "must be positive".to_string()
            } else {
                format!("outside {min}..={max}")
            };
            self.out_of_range(
                v.span,
                format!("{what} must be from {min} to {max}, got {}", whole_text(x)),
                &label,
                &help,
            );
            return None;
        }
        // Exact: below 2^53 every whole float is its own digits, and above, a float is
        // what arithmetic made (digits written out are `ValueKind::Integer`).
        Some((x as u64).clamp(min, max))
    }

    /// A name (identifier).
    pub(crate) fn ident<'v>(&mut self, v: &'v Value, help: &str) -> Option<&'v str> {
        match &v.kind {
            ValueKind::Ident(s) => Some(s),
            _ => {
                self.wrong_type(v, "a name", help);
                None
            }
        }
    }

    /// One of a fixed set of names.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        v: &Value,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let names: Vec<&str> = choices.iter().map(|c| c.0).collect();
        let help = format!("{what} is one of: {}", names.join(", "));
        let word = self.ident(v, &help)?;
        if let Some((_, t)) = choices.iter().find(|c| c.0 == word) {
            return Some(*t);
        }
        self.unknown_value(v.span, what, word, &names);
        None
    }

    pub(crate) fn unknown_value(&mut self, span: Span, what: &str, word: &str, names: &[&str]) {
        let mut help = format!("{what} is one of: {}", names.join(", "));
        if let Some(s) = suggest(word, names.iter().copied()) {
            help = format!("did you mean `{s}`? {help}");
        }
        self.push(
            Diag::error(Code::PlanUnknownValue, format!("unknown {what} `{word}`"))
                .at(span, format!("not a valid {what}"))
                .with_help(help),
        );
    }

    /// The arguments of a call, checked against the known argument names.
    pub(crate) fn args<'v>(
        &mut self,
        name: &Name,
        args: &'v [Arg],
        positional: &[&str],
        named: &[&str],
    ) -> Option<Vec<Option<&'v Value>>> {
        let all: Vec<&str> = positional.iter().chain(named).copied().collect();
        let mut out: Vec<Option<&Value>> = vec![None; all.len()];
        let mut ok = true;
        let mut pos = 0;
        for a in args {
            let slot = match &a.name {
                None => {
                    if pos >= positional.len() {
                        self.push(
                            Diag::error(
                                Code::PlanBadArgument,
                                format!(
                                    "`{}` takes {} positional argument(s)",
                                    name.text,
                                    positional.len()
                                ),
                            )
                            .at(a.value.span, "extra argument")
                            .with_help(signature(&name.text, positional, named)),
                        );
                        ok = false;
                        continue;
                    }
                    pos += 1;
                    pos - 1
                }
                Some(n) => match all.iter().position(|x| *x == n.text) {
                    Some(i) => i,
                    None => {
                        let mut help = signature(&name.text, positional, named);
                        if let Some(s) = suggest(&n.text, all.iter().copied()) {
                            help = format!("did you mean `{s}`? {help}");
                        }
                        self.push(
                            Diag::error(
                                Code::PlanBadArgument,
                                format!("`{}` has no argument `{}`", name.text, n.text),
                            )
                            .at(n.span, "unknown argument")
                            .with_help(help),
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            if out[slot].is_some() {
                self.push(
                    Diag::error(
                        Code::PlanBadArgument,
                        format!("argument `{}` given twice", all[slot]),
                    )
                    .at(a.value.span, "given again here")
                    .with_help(signature(&name.text, positional, named)),
                );
                ok = false;
                continue;
            }
            out[slot] = Some(&a.value);
        }
        ok.then_some(out)
    }

    pub(crate) fn missing_arg(
        &mut self,
        name: &Name,
        span: Span,
        arg: &str,
        positional: &[&str],
        named: &[&str],
    ) {
        self.push(
            Diag::error(
                Code::PlanBadArgument,
                format!("`{}` needs the argument `{arg}`", name.text),
            )
            .at(span, format!("`{arg}` missing"))
            .with_help(signature(&name.text, positional, named)),
        );
    }
}

/// A whole float as written: digits, or with an exponent where the digits would not be
/// the ones written (above 2^53).
fn whole_text(x: f64) -> String {
    if x.abs() < 9_007_199_254_740_992.0 {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

fn signature(f: &str, positional: &[&str], named: &[&str]) -> String {
    let mut parts: Vec<String> = positional.iter().map(|s| s.to_string()).collect();
    parts.extend(named.iter().map(|s| format!("{s}: …")));
    format!("usage: `{f}({})`", parts.join(", "))
}

/// Longest word [`suggest`] compares: names are short, and comparing costs the product of
/// the lengths.
const MAX_SUGGEST_LEN: usize = 64;

/// The closest candidate, if it is close enough to be a likely typo. Words over
/// [`MAX_SUGGEST_LEN`] characters get no suggestion.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    if len > MAX_SUGGEST_LEN {
        return None;
    }
    let limit = (len / 3).clamp(1, 3);
    candidates
        .into_iter()
        .filter(|c| c.len() <= 4 * (len + limit))
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The settings of one block, checked for unknown and repeated names.
pub(crate) struct Fields<'a> {
    found: Vec<(&'static str, &'a Setting)>,
}

impl<'a> Fields<'a> {
    /// Reads `block`'s settings. `allowed` are this block's settings; `elsewhere` maps
    /// settings of other blocks to where they belong, for a better message.
    pub(crate) fn new(
        cx: &mut Cx,
        block: &'a Block,
        allowed: &[&'static str],
        elsewhere: &[(&str, &str)],
    ) -> Self {
        let mut found: Vec<(&'static str, &'a Setting)> = Vec::new();
        for s in block.settings() {
            let key = s.key.text.as_str();
            let Some(&name) = allowed.iter().find(|a| **a == key) else {
                let what = block_title(block);
                let mut d = Diag::error(
                    Code::PlanUnknownSetting,
                    format!("`{what}` has no setting `{key}`"),
                )
                .at(s.key.span, "unknown setting")
                .also(block.keyword.span, "in this block");
                let home = elsewhere.iter().find(|(k, _)| *k == key);
                d = match (home, suggest(key, allowed.iter().copied())) {
                    (Some((_, home)), _) => d.with_help(format!("`{key}` belongs in {home}")),
                    (None, Some(s)) => d.with_help(format!(
                        "did you mean `{s}`? `{what}` has: {}",
                        allowed.join(", ")
                    )),
                    (None, None) => d.with_help(format!("`{what}` has: {}", allowed.join(", "))),
                };
                cx.push(d);
                continue;
            };
            if let Some((_, first)) = found.iter().find(|(n, _)| *n == name) {
                cx.push(
                    Diag::error(Code::PlanDuplicateSetting, format!("`{key}` is set twice"))
                        .at(s.key.span, "set again here")
                        .also(first.key.span, "first set here")
                        .with_help("keep one of them"),
                );
                continue;
            }
            found.push((name, s));
        }
        Fields { found }
    }

    /// The value of a setting, if written.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.found
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| &s.value)
    }

    /// The setting itself, if written.
    pub(crate) fn setting(&self, name: &str) -> Option<&'a Setting> {
        self.found.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }
}

/// `backbone resnet50` → "backbone"; used in messages.
pub(crate) fn block_title(b: &Block) -> String {
    b.keyword.text.clone()
}

/// Reports a required setting that is missing.
pub(crate) fn missing(cx: &mut Cx, block: &Block, key: &str, example: &str) {
    cx.push(
        Diag::error(
            Code::PlanMissingSetting,
            format!("`{}` needs a `{key}` setting", block.keyword.text),
        )
        .at(block.keyword.span, format!("`{key}` missing in this block"))
        .with_help(format!("add e.g. `{example}`")),
    );
}
