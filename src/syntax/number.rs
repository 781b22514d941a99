//! Number-like tokens and arithmetic: `1e-4`, `15deg`, `2x2`, `2afc`, `224 / 6`.

use super::ast::{SymExpr, Value, ValueKind};
use super::Rule;
use crate::diag::{Code, Diag, Span};
use pest::iterators::Pair;

fn span_of(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

/// Classifies one number-like token.
pub(super) fn classify(text: &str, span: Span, errors: &mut Vec<Diag>) -> Value {
    let kind = if let Some((h, w)) = dims(text) {
        ValueKind::Dims(h, w)
    } else if let Some(deg) = angle(text) {
        ValueKind::Angle(deg)
    } else if let Some(n) = text.parse::<u64>().ok().filter(|&n| n > 1 << 53) {
        ValueKind::Integer(n)
    } else if let Some(x) = number(text) {
        ValueKind::Number(x)
    } else if is_word(text) {
        ValueKind::Ident(text.to_string())
    } else {
        let help = if text.parse::<f64>().is_ok_and(f64::is_infinite) {
            "the number is too large to represent".to_string()
        } else {
            "numbers look like `3`, `0.25`, `1e-4` or `-2.5e3`; angles like `15deg`; sizes like `2x2`"
                .to_string()
        };
        errors.push(
            Diag::error(
                Code::SyntaxBadNumber,
                format!("`{text}` is not a valid number"),
            )
            .at(span, "bad number")
            .with_help(help),
        );
        ValueKind::Number(0.0)
    };
    Value { kind, span }
}

fn number(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    // Rust accepts "inf" and "nan"; the grammar never lets those through, but be explicit.
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn angle(text: &str) -> Option<f64> {
    if let Some(n) = text.strip_suffix("deg") {
        number(n)
    } else if let Some(n) = text.strip_suffix("rad") {
        number(n).map(f64::to_degrees)
    } else {
        None
    }
}

fn dims(text: &str) -> Option<(u64, u64)> {
    let (h, w) = text.split_once('x')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if all_digits(h) && all_digits(w) {
        Some((h.parse().ok()?, w.parse().ok()?))
    } else {
        None
    }
}

/// `2afc`: digits, then a letter, then letters, digits or `_`; but not an exponent (`1e`).
fn is_word(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &text[digits..];
    if digits == 0 || rest.is_empty() || !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return false;
    }
    let exponent_like = (rest.starts_with('e') || rest.starts_with('E'))
        && rest[1..]
            .trim_start_matches(['+', '-'])
            .bytes()
            .all(|b| b.is_ascii_digit());
    !exponent_like && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Clone)]
enum Q {
    Num(f64),
    Deg(f64),
    /// An expression that mentions `level` or `axis`: built, not folded.
    Sym(SymExpr),
}

impl Q {
    fn into_sym(self) -> SymExpr {
        match self {
            Q::Num(x) => SymExpr::Num(x),
            Q::Deg(x) => SymExpr::Angle(x),
            Q::Sym(e) => e,
        }
    }
}

/// `a op b` when either side mentions a variable.
fn sym(a: Q, b: Q, op: &str) -> Q {
    let (a, b) = (Box::new(a.into_sym()), Box::new(b.into_sym()));
    Q::Sym(match op {
        "+" => SymExpr::Add(a, b),
        "-" => SymExpr::Sub(a, b),
        "*" => SymExpr::Mul(a, b),
        _ => SymExpr::Div(a, b),
    })
}

/// The span of an `expr`, `term` or `factor` without the whitespace and comments pest
/// lets it run on over (a rule ending in a repetition skips whitespace before trying it).
fn tight_span(p: &Pair<'_, Rule>) -> Span {
    let start = p.as_span().start();
    let mut cur = p.clone();
    loop {
        match cur.clone().into_inner().last() {
            Some(last) if matches!(last.as_rule(), Rule::expr | Rule::term | Rule::factor) => {
                cur = last
            }
            Some(last) => return Span::new(start, last.as_span().end()),
            None => return Span::new(start, cur.as_span().end()),
        }
    }
}

/// Folds an `expr` into a single value. A lone token keeps its own kind (`2x2`, `2afc`);
/// arithmetic works on numbers and angles.
pub(super) fn fold_expr(p: Pair<'_, Rule>, errors: &mut Vec<Diag>) -> Value {
    let span = tight_span(&p);
    if let Some(single) = lone_token(&p) {
        return classify(single.as_str(), span_of(&single), errors);
    }
    let before = errors.len();
    let q = expr(p, errors);
    let kind = match q {
        _ if errors.len() > before => ValueKind::Number(0.0),
        Some(Q::Num(x)) => ValueKind::Number(x),
        Some(Q::Deg(x)) => ValueKind::Angle(x),
        Some(Q::Sym(e)) => ValueKind::Expr(e),
        None => ValueKind::Number(0.0),
    };
    Value { kind, span }
}

/// The numlike token if the expression is exactly one token.
fn lone_token<'a>(p: &Pair<'a, Rule>) -> Option<Pair<'a, Rule>> {
    let mut cur = p.clone();
    loop {
        let mut inner = cur.clone().into_inner();
        let first = inner.next()?;
        if inner.next().is_some() {
            return None;
        }
        match first.as_rule() {
            Rule::numlike => return Some(first),
            Rule::term | Rule::factor => cur = first,
            _ => return None,
        }
    }
}

fn expr(p: Pair<'_, Rule>, errors: &mut Vec<Diag>) -> Option<Q> {
    let mut inner = p.into_inner();
    let mut acc = term(inner.next()?, errors)?;
    while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
        let op_span = span_of(&op);
        let r = term(rhs, errors)?;
        acc = match (acc, r, op.as_str()) {
            (a @ Q::Sym(_), b, op) | (a, b @ Q::Sym(_), op) => sym(a, b, op),
            (Q::Num(a), Q::Num(b), "+") => Q::Num(a + b),
            (Q::Num(a), Q::Num(b), _) => Q::Num(a - b),
            (Q::Deg(a), Q::Deg(b), "+") => Q::Deg(a + b),
            (Q::Deg(a), Q::Deg(b), _) => Q::Deg(a - b),
            _ => {
                errors.push(mismatch(
                    op_span,
                    "cannot add or subtract an angle and a plain number",
                ));
                return None;
            }
        };
    }
    finite(acc, errors)
}

fn term(p: Pair<'_, Rule>, errors: &mut Vec<Diag>) -> Option<Q> {
    let mut inner = p.into_inner();
    let mut acc = factor(inner.next()?, errors)?;
    while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
        let op_span = span_of(&op);
        let rhs_span = span_of(&rhs);
        let r = factor(rhs, errors)?;
        let divide = op.as_str() == "/";
        if divide && matches!(r, Q::Num(b) | Q::Deg(b) if b == 0.0) {
            errors.push(
                Diag::error(Code::SyntaxDivisionByZero, "division by zero")
                    .at(rhs_span, "this is zero")
                    .with_help("check the expression"),
            );
            return None;
        }
        acc = match (acc, r, divide) {
            (a @ Q::Sym(_), b, _) | (a, b @ Q::Sym(_), _) => sym(a, b, op.as_str()),
            (Q::Num(a), Q::Num(b), false) => Q::Num(a * b),
            (Q::Num(a), Q::Num(b), true) => Q::Num(a / b),
            (Q::Deg(a), Q::Num(b), false) | (Q::Num(b), Q::Deg(a), false) => Q::Deg(a * b),
            (Q::Deg(a), Q::Num(b), true) => Q::Deg(a / b),
            (Q::Deg(a), Q::Deg(b), true) => Q::Num(a / b),
            _ => {
                errors.push(mismatch(
                    op_span,
                    "cannot multiply two angles or divide a number by an angle",
                ));
                return None;
            }
        };
    }
    finite(acc, errors)
}

fn factor(p: Pair<'_, Rule>, errors: &mut Vec<Diag>) -> Option<Q> {
    let mut negate = false;
    for q in p.into_inner() {
        match q.as_rule() {
            Rule::neg => negate = true,
            Rule::symbol => {
                let e = if q.as_str() == "level" {
                    SymExpr::Level
                } else {
                    SymExpr::Axis
                };
                return Some(if negate {
                    Q::Sym(SymExpr::Neg(Box::new(e)))
                } else {
                    Q::Sym(e)
                });
            }
            Rule::numlike => {
                let v = classify(q.as_str(), span_of(&q), errors);
                return match v.kind {
                    ValueKind::Number(x) => Some(Q::Num(x)),
                    ValueKind::Integer(n) => Some(Q::Num(n as f64)),
                    ValueKind::Angle(x) => Some(Q::Deg(x)),
                    other => {
                        if !errors
                            .last()
                            .is_some_and(|d| d.code == Code::SyntaxBadNumber)
                        {
                            errors.push(mismatch(
                                v.span,
                                &format!("{} cannot be used in arithmetic", other.describe()),
                            ));
                        }
                        None
                    }
                };
            }
            Rule::expr => {
                let x = expr(q, errors)?;
                return Some(match (x, negate) {
                    (Q::Num(a), true) => Q::Num(-a),
                    (Q::Deg(a), true) => Q::Deg(-a),
                    (Q::Sym(e), true) => Q::Sym(SymExpr::Neg(Box::new(e))),
                    (x, false) => x,
                });
            }
            _ => {}
        }
    }
    None
}

fn finite(q: Q, errors: &mut Vec<Diag>) -> Option<Q> {
    let (Q::Num(x) | Q::Deg(x)) = q else {
        return Some(q);
    };
    if x.is_finite() {
        Some(q)
    } else {
        errors.push(
            Diag::error(Code::SyntaxBadNumber, "the expression overflows")
                .with_help("use smaller numbers"),
        );
        None
    }
}

fn mismatch(span: Span, msg: &str) -> Diag {
    Diag::error(Code::SyntaxUnitMismatch, msg.to_string())
        .at(span, "here")
        .with_help("angles carry a unit (`15deg`); numbers do not. `180deg / 12` is an angle, `224 / 6` a number")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_tokens() {
        let mut e = Vec::new();
        let s = Span::default();
        assert_eq!(classify("1e-4", s, &mut e).kind, ValueKind::Number(1e-4));
        assert_eq!(
            classify("-2.5E3", s, &mut e).kind,
            ValueKind::Number(-2500.0)
        );
        assert_eq!(classify(".5", s, &mut e).kind, ValueKind::Number(0.5));
        assert_eq!(classify("15deg", s, &mut e).kind, ValueKind::Angle(15.0));
        assert_eq!(classify("2x3", s, &mut e).kind, ValueKind::Dims(2, 3));
        assert_eq!(
            classify("2afc", s, &mut e).kind,
            ValueKind::Ident("2afc".into())
        );
        match classify("3.14159265358979rad", s, &mut e).kind {
            ValueKind::Angle(d) => assert!((d - 180.0).abs() < 1e-9),
            k => panic!("{k:?}"),
        }
        assert!(e.is_empty());
        for bad in ["1e", "1e-", "0.1.2", "12abc.3", "1e999", "1.5deg.2"] {
            let mut e = Vec::new();
            classify(bad, s, &mut e);
            assert_eq!(e.len(), 1, "{bad}");
            assert_eq!(e[0].code, Code::SyntaxBadNumber, "{bad}");
        }
    }
}
