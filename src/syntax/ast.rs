//! The syntax tree: literal values with their spans and no meaning yet.

use crate::diag::Span;

/// The whole file.
#[derive(Clone, Debug)]
pub struct Ast {
    /// The `psy N` header, if present.
    pub header: Option<Header>,
    /// `import "…"` lines, in order.
    pub imports: Vec<Import>,
    /// Every `experiment` block, in order.
    pub experiments: Vec<Block>,
}

/// The `psy N` line.
#[derive(Clone, Debug)]
pub struct Header {
    /// The language version.
    pub version: u32,
    /// Where it is written.
    pub span: Span,
}

/// `import "common/lab.psy"`.
#[derive(Clone, Debug)]
pub struct Import {
    /// The path as written (relative to the importing file's folder).
    pub path: String,
    /// The string, quotes included.
    pub span: Span,
    /// The whole line, `import` included.
    pub whole: Span,
}

/// A name with its place in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    /// The name.
    pub text: String,
    /// Where.
    pub span: Span,
}

/// A block: `keyword label? { items }`.
#[derive(Clone, Debug)]
pub struct Block {
    /// `experiment`, `backbone`, `optimizer`, …
    pub keyword: Name,
    /// `resnet50` in `backbone resnet50 { … }`.
    pub label: Option<Value>,
    /// `a` in `experiment b extends a { … }` (experiments only).
    pub extends: Option<Name>,
    /// Settings and nested blocks, in order.
    pub items: Vec<Item>,
    /// The opening brace.
    pub open: Span,
    /// The whole block.
    pub span: Span,
}

/// A block item.
#[derive(Clone, Debug)]
pub enum Item {
    /// `key value`
    Setting(Setting),
    /// A nested block. In an experiment, a `sweep { PATH [values] … }` block is one too:
    /// keyword `sweep`, label `zip` when zipped, one setting per swept path (the key is the
    /// path, the value the list).
    Block(Block),
}

/// `key value`.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The setting's name.
    pub key: Name,
    /// Its value.
    pub value: Value,
}

/// A value with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// What it is.
    pub kind: ValueKind,
    /// Where.
    pub span: Span,
}

/// The literal forms of the language. Arithmetic has already been folded.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// `0.1`, `1e-4`, `224 / 6`
    Number(f64),
    /// A whole number written with more digits than a float keeps exactly (above 2^53),
    /// e.g. a seed `18446744073709551615`: kept exact for whole-number settings, read as
    /// the nearest float elsewhere.
    Integer(u64),
    /// `15deg`, `0.5rad`, stored in degrees.
    Angle(f64),
    /// `2x2`
    Dims(u64, u64),
    /// `resnet50`, `imagenet`, `cuda:1`, `2afc`
    Ident(String),
    /// `"weights/net.pth"`
    Str(String),
    /// `[a, b, c]`
    List(Vec<Value>),
    /// `0.0..1.0`
    Range(Box<Value>, Box<Value>),
    /// `divisors(224, max: 112)`
    Call {
        /// The function.
        name: Name,
        /// Its arguments.
        args: Vec<Arg>,
    },
    /// An expression of the experiment's variables `level` and `axis`
    /// (`45deg + level`, `axis * (1 + level)`, a lone `level`): kept, not folded.
    Expr(SymExpr),
    /// `avg 2x2`, `frequency [2, 4, 8]`, and a stimulus's `reference gabor`
    Tagged {
        /// `avg`
        tag: Name,
        /// `2x2`
        arg: Box<Value>,
    },
}

/// An arithmetic expression that mentions `level` or `axis`. Constants are folded where
/// they can be (`2 * 3` is one `Num`); angles are kept in degrees and marked as angles.
#[derive(Clone, Debug, PartialEq)]
pub enum SymExpr {
    /// A plain number.
    Num(f64),
    /// An angle, in degrees.
    Angle(f64),
    /// `level`
    Level,
    /// `axis`
    Axis,
    /// `a + b`
    Add(Box<SymExpr>, Box<SymExpr>),
    /// `a - b`
    Sub(Box<SymExpr>, Box<SymExpr>),
    /// `a * b`
    Mul(Box<SymExpr>, Box<SymExpr>),
    /// `a / b`
    Div(Box<SymExpr>, Box<SymExpr>),
    /// `-a`
    Neg(Box<SymExpr>),
}

impl SymExpr {
    /// True when it mentions `level`.
    pub fn uses_level(&self) -> bool {
        self.any(&|e| matches!(e, SymExpr::Level))
    }
    /// True when it mentions `axis`.
    pub fn uses_axis(&self) -> bool {
        self.any(&|e| matches!(e, SymExpr::Axis))
    }
    /// True when it holds an angle constant.
    pub fn has_angle(&self) -> bool {
        self.any(&|e| matches!(e, SymExpr::Angle(_)))
    }
    fn any(&self, f: &dyn Fn(&SymExpr) -> bool) -> bool {
        if f(self) {
            return true;
        }
        match self {
            SymExpr::Add(a, b) | SymExpr::Sub(a, b) | SymExpr::Mul(a, b) | SymExpr::Div(a, b) => {
                a.any(f) || b.any(f)
            }
            SymExpr::Neg(a) => a.any(f),
            SymExpr::Num(_) | SymExpr::Angle(_) | SymExpr::Level | SymExpr::Axis => false,
        }
    }
}

/// A function argument, positional or named.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `max` in `max: 112`.
    pub name: Option<Name>,
    /// The value.
    pub value: Value,
}

impl ValueKind {
    /// The value of a plain number ([`ValueKind::Number`] or [`ValueKind::Integer`]).
    pub fn as_number(&self) -> Option<f64> {
        match *self {
            ValueKind::Number(x) => Some(x),
            ValueKind::Integer(n) => Some(n as f64),
            _ => None,
        }
    }

    /// How the type is called in messages: "a number", "a list", …
    pub fn describe(&self) -> &'static str {
        match self {
            ValueKind::Number(_) | ValueKind::Integer(_) => "a number",
            ValueKind::Angle(_) => "an angle",
            ValueKind::Dims(..) => "a size (HxW)",
            ValueKind::Ident(_) => "a name",
            ValueKind::Str(_) => "a string",
            ValueKind::List(_) => "a list",
            ValueKind::Range(..) => "a range",
            ValueKind::Call { .. } => "a function call",
            ValueKind::Tagged { .. } => "a name with a size",
            ValueKind::Expr(_) => "an expression of `level` or `axis`",
        }
    }
}

impl Block {
    /// The settings of this block, in order.
    pub fn settings(&self) -> impl Iterator<Item = &Setting> {
        self.items.iter().filter_map(|i| match i {
            Item::Setting(s) => Some(s),
            Item::Block(_) => None,
        })
    }
    /// The nested blocks of this block, in order.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.items.iter().filter_map(|i| match i {
            Item::Block(b) => Some(b),
            Item::Setting(_) => None,
        })
    }
}

/// Moving spans by a fixed offset: an experiment built from several files (imports, `--set`)
/// gives each file its own range of offsets, so that one span says in which file it is
/// (see `plan::sweep`).
pub trait Shift {
    /// Adds `by` to every span.
    fn shift(&mut self, by: usize);
}

impl Shift for Span {
    fn shift(&mut self, by: usize) {
        self.start += by;
        self.end += by;
    }
}

impl Shift for Name {
    fn shift(&mut self, by: usize) {
        self.span.shift(by);
    }
}

impl Shift for Ast {
    fn shift(&mut self, by: usize) {
        if let Some(h) = &mut self.header {
            h.span.shift(by);
        }
        for i in &mut self.imports {
            i.span.shift(by);
            i.whole.shift(by);
        }
        for e in &mut self.experiments {
            e.shift(by);
        }
    }
}

impl Shift for Block {
    fn shift(&mut self, by: usize) {
        self.keyword.shift(by);
        if let Some(l) = &mut self.label {
            l.shift(by);
        }
        if let Some(e) = &mut self.extends {
            e.shift(by);
        }
        for item in &mut self.items {
            match item {
                Item::Setting(s) => {
                    s.key.shift(by);
                    s.value.shift(by);
                }
                Item::Block(b) => b.shift(by),
            }
        }
        self.open.shift(by);
        self.span.shift(by);
    }
}

impl Shift for Value {
    fn shift(&mut self, by: usize) {
        self.span.shift(by);
        match &mut self.kind {
            ValueKind::List(vs) => vs.iter_mut().for_each(|v| v.shift(by)),
            ValueKind::Range(a, b) => {
                a.shift(by);
                b.shift(by);
            }
            ValueKind::Call { name, args } => {
                name.shift(by);
                for a in args {
                    if let Some(n) = &mut a.name {
                        n.shift(by);
                    }
                    a.value.shift(by);
                }
            }
            ValueKind::Tagged { tag, arg } => {
                tag.shift(by);
                arg.shift(by);
            }
            ValueKind::Number(_)
            | ValueKind::Integer(_)
            | ValueKind::Angle(_)
            | ValueKind::Dims(..)
            | ValueKind::Ident(_)
            | ValueKind::Expr(_)
            | ValueKind::Str(_) => {}
        }
    }
}
