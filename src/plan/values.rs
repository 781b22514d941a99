//! Reading typed values out of the syntax tree. Each reader reports its own diagnostics
//! (with the value's span) and returns `None` when the value is unusable, so that lowering
//! goes on and reports every independent problem in one pass.

use super::spans::Spans;
use crate::diag::{Code, Diag, Span};
use crate::syntax::ast::{Arg, Block, Name, Setting, Value, ValueKind};
use std::path::{Path, PathBuf};

/// Collected diagnostics, and the spans the run time needs (see [`Spans`]).
#[derive(Default)]
pub(crate) struct Cx {
    pub(crate) diags: Vec<Diag>,
    pub(crate) spans: Spans,
    /// Where the files the experiment names are looked for, when they are checked (see
    /// [`crate::plan::compile_checked`]).
    pub(crate) files: Option<FileBase>,
    /// What the staircase's values are: contrasts (the `test gratings` experiments), or the
    /// level of an experiment described by its parts (`stimulus`, `task`, …).
    pub(crate) level: LevelDomain,
    /// The task's guess rate, when a design says it (QUEST's and QUEST+'s default `gamma`);
    /// `None`: the tutorial's 2AFC, ½.
    pub(crate) guess: Option<f64>,
    /// The default of `normalize`: the backbone network's own normalisation when it has one
    /// (CLIP's mean and std); `None`: ImageNet's.
    pub(crate) normalize: Option<crate::plan::Normalize>,
}

/// What a procedure's values (`start`, `range`, `levels`) are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LevelDomain {
    /// Contrasts in [0, 1] (`test gratings`).
    #[default]
    Contrast,
    /// A plain number of any range (the level of a number parameter).
    Number,
    /// An angle, written with its unit (the level of an angle parameter).
    Angle,
    /// The level of a design with errors: any number or angle, so that the staircase adds
    /// no errors of its own.
    Unknown,
}

/// The folder that relative paths in an experiment are taken from (the experiment file's
/// folder, as a run resolves them), and whether relative paths are checked at all (not for
/// standard input, whose "folder" is `/dev`).
#[derive(Clone, Debug)]
pub(crate) struct FileBase {
    pub(crate) dir: PathBuf,
    pub(crate) relative: bool,
}

impl Cx {
    pub(crate) fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }

    /// False (and a `psy::plan::missing_file` error at `span`) when files are checked and
    /// `file`, resolved as a run resolves it (relative to the experiment file's folder), is
    /// not a regular file psyrun can open. Checks only that: the format is the run's.
    pub(crate) fn file_readable(&mut self, span: Span, file: &str, what: &str) -> bool {
        // Lowering goes on either way: the error makes the plan fail.
        let Some(base) = &self.files else {
            return true;
        };
        let given = Path::new(file);
        if given.is_relative() && !base.relative {
            return true;
        }
        let resolved = base.dir.join(given);
        let shown = resolved.display().to_string();
        let (problem, label) = match std::fs::metadata(&resolved) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ("does not exist".to_string(), "no such file")
            }
            Err(e) => (format!("cannot be read: {e}"), "cannot be read"),
            Ok(m) if m.is_dir() => ("is a directory".to_string(), "a directory"),
            Ok(m) => match crate::source::special_kind(&m) {
                Some(kind) => (
                    format!("is {kind}, not a regular file"),
                    "not a regular file",
                ),
                None => match std::fs::File::open(&resolved) {
                    Ok(_) => return true,
                    Err(e) => (format!("cannot be read: {e}"), "cannot be read"),
                },
            },
        };
        let relative = if given.is_relative() {
            " (a relative path is taken from the experiment file's folder)"
        } else {
            ""
        };
        self.push(
            Diag::error(
                Code::PlanMissingFile,
                format!("the {what} `{shown}` {problem}"),
            )
            .at(span, label)
            .with_help(format!(
                "check the path{relative}; `psyrun check` looks for the file where a run will"
            )),
        );
        false
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
            ValueKind::Ident(ref w) if unit_slip(w).is_some() => {
                self.push(unit_diag(v, w, help));
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
        let mut previous: Option<&Setting> = None;
        for s in block.settings() {
            let key = s.key.text.as_str();
            let before = previous.replace(s);
            let Some(&name) = allowed.iter().find(|a| **a == key) else {
                if let Some(d) = spaced_size(before, s) {
                    cx.push(d);
                    continue;
                }
                let what = block_title(block);
                let mut d = Diag::error(
                    Code::PlanUnknownSetting,
                    format!("`{what}` has no setting `{key}`"),
                )
                .at(s.key.span, "unknown setting")
                .also(block.keyword.span, "in this block");
                let home = elsewhere.iter().find(|(k, _)| *k == key);
                let synonym = SYNONYMS
                    .iter()
                    .find(|(w, _)| w.eq_ignore_ascii_case(key))
                    .map(|(_, right)| *right);
                let synonym_home = synonym
                    .filter(|r| !allowed.contains(r))
                    .and_then(|r| elsewhere.iter().find(|(k, _)| *k == r));
                d = match (home, synonym, synonym_home) {
                    (Some((_, home)), _, _) => d.with_help(format!("`{key}` belongs in {home}")),
                    (None, Some(right), Some((_, home))) => d.with_help(format!(
                        "psyrun calls it `{right}`, and it belongs in {home}"
                    )),
                    (None, Some(right), None) if allowed.contains(&right) => d.with_help(format!(
                        "did you mean `{right}`? `{what}` has: {}",
                        allowed.join(", ")
                    )),
                    _ => d,
                };
                if d.help.is_some() {
                    cx.push(d);
                    continue;
                }
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

/// Names other tools and papers use for psyrun's settings, for did-you-mean: (what was
/// written, psyrun's name). Compared without regard to case.
const SYNONYMS: &[(&str, &str)] = &[
    ("learning_rate", "lr"),
    ("learningrate", "lr"),
    ("rate", "lr"),
    ("eta", "lr"),
    ("epoch", "epochs"),
    ("n_epochs", "epochs"),
    ("num_epochs", "epochs"),
    ("max_epochs", "epochs"),
    ("batch_size", "batch"),
    ("batchsize", "batch"),
    ("bs", "batch"),
    ("wd", "weight_decay"),
    ("weightdecay", "weight_decay"),
    ("decay", "weight_decay"),
    ("l2", "weight_decay"),
    ("beta", "betas"),
    ("frequency", "frequencies"),
    ("freqs", "frequencies"),
    ("freq", "frequencies"),
    ("spatial_frequencies", "frequencies"),
    ("sf", "frequencies"),
    ("orientation", "orientations"),
    ("angles", "orientations"),
    ("thetas", "orientations"),
    ("phase", "phases"),
    ("image_size", "size"),
    ("img_size", "size"),
    ("resolution", "size"),
    ("n_samples", "samples"),
    ("num_samples", "samples"),
    ("layer", "cut"),
    ("cut_layer", "cut"),
    ("pretrained", "weights"),
    ("checkpoint", "weights"),
    ("pool", "pooling"),
    ("n_trials", "trials"),
    ("num_trials", "trials"),
    ("random_seed", "seed"),
];

/// `pooling avg 4 x 4`: a size written with spaces reads as `pooling avg 4` and a setting
/// `x 4`. One error for the size, at the whole of it.
fn spaced_size(before: Option<&Setting>, s: &Setting) -> Option<Diag> {
    let before = before?;
    if !(s.key.text == "x" || s.key.text == "X") {
        return None;
    }
    let w = s.value.kind.as_number()?;
    let (shown, h, first) = match &before.value.kind {
        ValueKind::Tagged { tag, arg } => (
            format!("{} {}", before.key.text, tag.text),
            arg.kind.as_number()?,
            arg.span,
        ),
        k => (before.key.text.clone(), k.as_number()?, before.value.span),
    };
    let (h, w) = (whole_text(h), whole_text(w));
    Some(
        Diag::error(
            Code::PlanWrongType,
            format!("a size is written `{h}x{w}`, without spaces"),
        )
        .at(first.join(s.value.span), "read as a number, then a setting `x`")
        .with_help(format!(
            "write `{shown} {h}x{w}` (height x width, no spaces), or `{shown} {h}` for a square of {h}x{h}"
        )),
    )
}

/// `32px`, `1cpd`: a number with a unit psyrun does not use. The number and the unit.
pub(crate) fn unit_slip(word: &str) -> Option<(&str, &str)> {
    let at = word.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = word.split_at(at);
    (at > 0 && n.parse::<f64>().is_ok() && unit.bytes().all(|b| b.is_ascii_alphabetic()))
        .then_some((n, unit))
}

/// What a unit psyrun does not use means here, and how to write the number instead.
pub(crate) fn unit_help(number: &str, unit: &str) -> String {
    match unit.to_ascii_lowercase().as_str() {
        "px" | "pix" | "pixel" | "pixels" => {
            format!("sizes are in pixels, written as a bare number: `{number}`")
        }
        "cpd" | "cpi" | "cyc" | "cycles" | "c" | "hz" | "cpp" => format!(
            "frequencies are in cycles per image, written as a bare number: `{number}` (cycles per degree would need a viewing distance, which a network does not have)"
        ),
        "ms" | "s" | "sec" => format!("psyrun has no durations; write the number alone: `{number}`"),
        _ => format!(
            "only angles take a unit here (`deg`, `rad`); write the number alone: `{number}`"
        ),
    }
}

/// The error for a number written with a unit (`32px`): one at the value.
pub(crate) fn unit_diag(v: &Value, word: &str, help: &str) -> Diag {
    let (n, unit) = unit_slip(word).unwrap_or((word, ""));
    Diag::error(
        Code::PlanWrongType,
        format!("`{word}`: this number takes no unit `{unit}`"),
    )
    .at(v.span, format!("write `{n}`"))
    .with_help(format!("{}; {help}", unit_help(n, unit)))
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
