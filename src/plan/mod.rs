//! Lowering: [`Ast`](crate::syntax::ast::Ast) → [`Plan`]. All meaning lives here: catalog
//! look-ups, generators, defaults, ranges, did-you-mean, cross-checks and warnings. Every
//! independent problem is reported in one pass.

mod lower;
mod spans;
mod types;
mod values;

pub use lower::{lower, Lowered, DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD};
pub use spans::{Setting, Spans};
pub use types::*;

use crate::diag::Diag;
use crate::source::SourceFile;

/// Parses and lowers a source file. Diagnostics come back with the source attached,
/// warnings included; `plan` is `Some` only when there is no error.
pub fn compile(file: &SourceFile) -> Lowered {
    let lowered = match crate::syntax::parse(file) {
        Ok(ast) => lower(&ast),
        Err(diags) => Lowered { plan: None, diags },
    };
    Lowered {
        plan: lowered.plan,
        diags: lowered
            .diags
            .into_iter()
            .map(|d: Diag| d.with_source(file))
            .collect(),
    }
}

/// The plan as RON, the format `psyrun plan` prints and every run saves.
pub fn to_ron(plan: &Plan) -> String {
    let config = ron::ser::PrettyConfig::new()
        .indentor("  ".to_string())
        .struct_names(true);
    // Serialising plain data with derived impls cannot fail.
    let mut s = ron::ser::to_string_pretty(plan, config).unwrap_or_else(|e| format!("/* {e} */"));
    s.push('\n');
    s
}

/// The plan as JSON (`psyrun plan --format json`).
pub fn to_json(plan: &Plan) -> String {
    let mut s =
        serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// The closest name to a likely typo, for did-you-mean help outside the planner.
pub fn suggest_name<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    values::suggest(word, names.iter().copied())
}

/// Where a setting is written in the source: `path` names nested blocks by keyword and ends
/// with a setting's key or a block's keyword, inside the (first) `experiment` block, e.g.
/// `["backbone", "weights"]` or `["probe", "optimizer", "lr"]`. Returns the value's span (a
/// block's header for a block), or `None` when the file does not write it (a default) or
/// does not parse. Run-time diagnostics use it to point back into the experiment.
pub fn locate(file: &SourceFile, path: &[&str]) -> Option<crate::diag::Span> {
    use crate::syntax::ast::Item;
    let ast = crate::syntax::parse(file).ok()?;
    let mut block = ast
        .experiments
        .iter()
        .find(|b| b.keyword.text == "experiment")?;
    let (last, parents) = path.split_last()?;
    for name in parents {
        block = block.blocks().find(|b| b.keyword.text == *name)?;
    }
    block.items.iter().find_map(|item| match item {
        Item::Setting(s) if s.key.text == *last => Some(s.value.span),
        Item::Block(b) if b.keyword.text == *last => Some(match &b.label {
            Some(label) => b.keyword.span.join(label.span),
            None => b.keyword.span,
        }),
        _ => None,
    })
}
