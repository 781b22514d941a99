//! The syntax tree: literal values with their spans and no meaning yet.

use crate::diag::Span;

/// The whole file.
#[derive(Clone, Debug)]
pub struct Ast {
    /// The `psy N` header, if present.
    pub header: Option<Header>,
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
    /// A nested block.
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
    /// `avg 2x2`
    Tagged {
        /// `avg`
        tag: Name,
        /// `2x2`
        arg: Box<Value>,
    },
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
