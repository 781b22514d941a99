//! The generators of the test's lists: plain lists, `divisors`, `steps` and `logspace`
//! for numbers, lists and `steps` for angles.

use super::read::{empty_list, fmt_num, positive, unknown_function};
use crate::diag::{Code, Diag, Span};
use crate::plan::values::{unit_help, unit_slip, Cx};
use crate::syntax::ast::{Arg, Name, Value, ValueKind};

/// Longest list a generator may produce, or a list may hold.
const MAX_VALUES: usize = crate::syntax::MAX_LIST_VALUES;

/// A list of plain numbers, or a generator (`divisors`, `steps`, `logspace`).
pub(super) fn numbers(cx: &mut Cx, v: &Value, what: &str, unit: &str) -> Option<Vec<f64>> {
    let out = match &v.kind {
        ValueKind::List(items) => {
            if let Some(d) = list_with_units(items, what, unit) {
                cx.push(d);
                return None;
            }
            let xs: Vec<Option<f64>> = items
                .iter()
                .map(|i| cx.number(i, &format!("{what} are numbers ({unit})")))
                .collect();
            xs.into_iter().collect::<Option<Vec<f64>>>()?
        }
        ValueKind::Call { name, args } => generator(cx, v, name, args, what, unit)?,
        ValueKind::Number(_) | ValueKind::Integer(_) => {
            vec![cx.number(v, &format!("{what} are numbers ({unit})"))?]
        }
        // `frequencies 4cpd`: the number reader says what the unit means.
        ValueKind::Ident(w) if unit_slip(w).is_some() => {
            vec![cx.number(v, &format!("{what} are numbers ({unit})"))?]
        }
        _ => {
            cx.wrong_type(
                v,
                "a list of numbers or a generator",
                &format!("e.g. `{what} [1, 2, 4, 8]` or `{what} divisors(224, max: 112)`"),
            );
            return None;
        }
    };
    if out.is_empty() {
        empty_list(cx, v, what, &format!("give at least one value ({unit})"));
        return None;
    }
    too_many(cx, v, out.len())?;
    float32(cx, v, &out, &format!("{what} are numbers ({unit})"))?;
    Some(out)
}

/// A list of angles, or `steps` over angles.
pub(super) fn angles(cx: &mut Cx, v: &Value, what: &str) -> Option<Vec<f64>> {
    let help = format!(
        "{what} are angles with a unit, e.g. `[0deg, 90deg]` or `steps(0deg, 180deg, 15deg)`"
    );
    let out = match &v.kind {
        ValueKind::List(items) => {
            if let Some(d) = angles_without_unit(items, what, &help) {
                cx.push(d);
                return None;
            }
            let mut xs = Vec::with_capacity(items.len());
            let mut ok = true;
            for i in items {
                match i.kind {
                    ValueKind::Angle(a) => xs.push(a),
                    ValueKind::Number(_) | ValueKind::Integer(_) => {
                        cx.push(
                            Diag::error(Code::PlanWrongType, "an angle needs a unit")
                                .at(i.span, "add `deg` or `rad`")
                                .with_help(help.clone()),
                        );
                        ok = false;
                    }
                    _ => {
                        cx.wrong_type(i, "an angle", &help);
                        ok = false;
                    }
                }
            }
            if !ok {
                return None;
            }
            xs
        }
        ValueKind::Angle(a) => vec![*a],
        ValueKind::Call { name, args } if name.text == "steps" => {
            match steps(cx, name, v.span, args)? {
                (xs, true) => xs,
                (_, false) => {
                    // `steps(0, 180, 15)`: the call written in degrees.
                    let fixed: Option<Vec<String>> = args
                        .iter()
                        .map(|a| match (&a.name, a.value.kind.as_number()) {
                            (None, Some(x)) => Some(format!("{}deg", fmt_num(x))),
                            (None, None) => match &a.value.kind {
                                ValueKind::Ident(w) => Some(w.clone()),
                                _ => None,
                            },
                            _ => None,
                        })
                        .collect();
                    let help = match fixed {
                        Some(f) => format!("angles need `deg` or `rad`: `steps({})`", f.join(", ")),
                        None => help,
                    };
                    cx.push(
                        Diag::error(Code::PlanWrongType, "an angle needs a unit")
                            .at(v.span, "these are plain numbers")
                            .with_help(help),
                    );
                    return None;
                }
            }
        }
        ValueKind::Call { name, .. } => {
            unknown_function(cx, name, &["steps"]);
            return None;
        }
        _ => {
            cx.wrong_type(v, "a list of angles", &help);
            return None;
        }
    };
    if out.is_empty() {
        empty_list(cx, v, what, &help);
        return None;
    }
    too_many(cx, v, out.len())?;
    float32(cx, v, &out, &help)?;
    Some(out)
}

/// Most items a suggested corrected list shows.
const MAX_FIXED_ITEMS: usize = 16;

/// `[1cpd, 2cpd]`: several items of a list of numbers written with a unit psyrun does not
/// use. One error for the list, at its first such item.
fn list_with_units(items: &[Value], what: &str, unit: &str) -> Option<Diag> {
    let slips: Vec<(&Value, (&str, &str))> = items
        .iter()
        .filter_map(|i| match &i.kind {
            ValueKind::Ident(w) => unit_slip(w).map(|s| (i, s)),
            _ => None,
        })
        .collect();
    let (first, (n, u)) = *slips.first()?;
    if slips.len() < 2 {
        return None;
    }
    let mut d = Diag::error(
        Code::PlanWrongType,
        if slips.len() == items.len() {
            format!("the {what} are written with a unit (`{u}`) they do not take")
        } else {
            format!(
                "{} of the {} {what} are written with a unit (`{u}`) they do not take",
                slips.len(),
                items.len()
            )
        },
    )
    .at(first.span, format!("write `{n}`, and so on"));
    let fixed = fixed_list(items, |i| match &i.kind {
        ValueKind::Ident(w) => unit_slip(w).map(|(n, _)| n.to_string()),
        k => k.as_number().map(fmt_num),
    });
    d = match fixed {
        Some(fixed) => d.with_help(format!("{}; the list: `{fixed}`", unit_help(n, u))),
        None => d.with_help(format!("{}; {what} are numbers ({unit})", unit_help(n, u))),
    };
    Some(d)
}

/// `[0, 45, 90, 135]` for angles: two or more items without a unit. One error for the list,
/// at its first such item, with the list written with `deg`.
fn angles_without_unit(items: &[Value], what: &str, help: &str) -> Option<Diag> {
    let bare: Vec<&Value> = items
        .iter()
        .filter(|i| matches!(i.kind, ValueKind::Number(_) | ValueKind::Integer(_)))
        .collect();
    if bare.len() < 2 {
        return None;
    }
    let all = bare.len() == items.len();
    let message = if all {
        format!(
            "the {what} need a unit: none of the {} values has one",
            items.len()
        )
    } else {
        format!(
            "the {what} need a unit: {} of the {} values have none",
            bare.len(),
            items.len()
        )
    };
    let mut d = Diag::error(Code::PlanWrongType, message).at(
        bare[0].span,
        format!("no unit here, nor on {} more", bare.len() - 1),
    );
    let fixed = fixed_list(items, |i| match i.kind {
        ValueKind::Angle(a) => Some(format!("{}deg", fmt_num(a))),
        ref k => k.as_number().map(|x| format!("{}deg", fmt_num(x))),
    });
    d = match fixed {
        Some(fixed) => d.with_help(format!("angles need `deg` or `rad`: `{fixed}`")),
        None => d.with_help(help.to_string()),
    };
    Some(d)
}

/// The list `items` rewritten item by item, when every item can be and there are few.
fn fixed_list(items: &[Value], f: impl Fn(&Value) -> Option<String>) -> Option<String> {
    if items.len() > MAX_FIXED_ITEMS {
        return None;
    }
    let parts: Option<Vec<String>> = items.iter().map(f).collect();
    Some(format!("[{}]", parts?.join(", ")))
}

/// A written list longer than a generator may make (the syntax pre-scan already refuses
/// far longer ones).
fn too_many(cx: &mut Cx, v: &Value, n: usize) -> Option<()> {
    if n <= MAX_VALUES {
        return Some(());
    }
    cx.out_of_range(
        v.span,
        format!("a list holds at most {MAX_VALUES} values, this one {n}"),
        "too many values",
        &format!("at most {MAX_VALUES} values"),
    );
    None
}

/// Every value of a list finite as a float32 (a generator's, or angles, which are not
/// read by `Cx::number`): one error at the list otherwise.
fn float32(cx: &mut Cx, v: &Value, xs: &[f64], help: &str) -> Option<()> {
    let max = f64::from(f32::MAX);
    match xs.iter().find(|x| x.abs() > max) {
        Some(&x) => cx.float32(v.span, x, help).then_some(()),
        None => Some(()),
    }
}

/// `steps(start, stop, step)` and `steps(start, stop, step, inclusive)`: start, start+step,
/// … up to stop (excluded, or included with `inclusive`). Returns the values and whether
/// they are angles.
fn steps(cx: &mut Cx, name: &Name, span: Span, args: &[Arg]) -> Option<(Vec<f64>, bool)> {
    let pos = ["start", "stop", "step", "inclusive"];
    let slots = cx.args(name, args, &pos, &[])?;
    let (Some(a), Some(b), Some(s)) = (slots[0], slots[1], slots[2]) else {
        cx.missing_arg(name, span, "start, stop, step", &pos, &[]);
        return None;
    };
    let inclusive = match slots[3] {
        None => false,
        Some(v) => cx.choice(
            v,
            "steps flag",
            &[("inclusive", true), ("exclusive", false)],
        )?,
    };
    let q = |v: &Value| match v.kind {
        ValueKind::Number(x) => Some((x, false)),
        ValueKind::Integer(n) => Some((n as f64, false)),
        ValueKind::Angle(x) => Some((x, true)),
        _ => None,
    };
    let (Some((a0, ua)), Some((b0, ub)), Some((s0, us))) = (q(a), q(b), q(s)) else {
        for v in [a, b, s] {
            if q(v).is_none() {
                cx.wrong_type(
                    v,
                    "a number or an angle",
                    "usage: `steps(start, stop, step[, inclusive])`",
                );
            }
        }
        return None;
    };
    if ua != ub || ua != us {
        cx.push(
            Diag::error(
                Code::PlanWrongType,
                "`steps` mixes angles and plain numbers",
            )
            .at(span, "give all three the same unit")
            .with_help("e.g. `steps(0deg, 180deg, 15deg)`"),
        );
        return None;
    }
    if s0 == 0.0 || (b0 - a0) * s0 < 0.0 {
        cx.out_of_range(
            s.span,
            format!(
                "a step of {} never goes from {} to {}",
                fmt_num(s0),
                fmt_num(a0),
                fmt_num(b0)
            ),
            "wrong step",
            "the step must be non-zero and point from start to stop",
        );
        return None;
    }
    // Count with a relative tolerance so that 0..180 by 15 inclusive gives 13 values
    // whatever the rounding.
    let ratio = (b0 - a0) / s0;
    let eps = 1e-9 * ratio.abs().max(1.0);
    // `as i64` saturates; the + 1 must too (a huge range with a tiny step, found by fuzzing).
    let n = if inclusive {
        ((ratio + eps).floor() as i64).saturating_add(1)
    } else {
        (ratio - eps).ceil() as i64
    };
    if n < 1 || n as usize > MAX_VALUES {
        cx.out_of_range(
            span,
            if n < 1 {
                format!("`steps` would make {n} values")
            } else {
                format!("`steps` would make more than {MAX_VALUES} values")
            },
            "too many values",
            &format!("at most {MAX_VALUES} values"),
        );
        return None;
    }
    // Each value rounded to 12 significant digits, as `logspace` does: 0.1 + 2 × 0.1 is
    // 0.30000000000000004 in floating point, and would reach tables and file names so.
    Some(((0..n).map(|i| clean(a0 + s0 * i as f64)).collect(), ua))
}

/// Divisors of n up to max, ascending.
pub(super) fn divisors(n: u64, max: u64) -> Vec<u64> {
    (1..=n.min(max)).filter(|&d| n.is_multiple_of(d)).collect()
}

/// `divisors(…)`, `steps(…)` or `logspace(…)` as a list of plain numbers.
fn generator(
    cx: &mut Cx,
    v: &Value,
    name: &Name,
    args: &[Arg],
    what: &str,
    unit: &str,
) -> Option<Vec<f64>> {
    match name.text.as_str() {
        "divisors" => divisors_call(cx, v, name, args),
        "steps" => match steps(cx, name, v.span, args)? {
            (xs, false) => Some(xs),
            (_, true) => {
                cx.wrong_type(
                    v,
                    "numbers",
                    &format!("{what} are plain numbers ({unit}), without a unit"),
                );
                None
            }
        },
        "logspace" => logspace(cx, v, name, args),
        _ => {
            unknown_function(cx, name, &["divisors", "steps", "logspace"]);
            None
        }
    }
}

/// `divisors(n, max: m)`: the divisors of n up to m (default n), ascending.
fn divisors_call(cx: &mut Cx, v: &Value, name: &Name, args: &[Arg]) -> Option<Vec<f64>> {
    let slots = cx.args(name, args, &["n"], &["max"])?;
    let Some(n_v) = slots[0] else {
        cx.missing_arg(name, v.span, "n", &["n"], &["max"]);
        return None;
    };
    let n = cx.whole(n_v, "n", 1, 1_000_000)?;
    let max = match slots[1] {
        None => n,
        Some(m) => cx.whole(m, "max", 1, 1_000_000)?,
    };
    Some(divisors(n, max).into_iter().map(|x| x as f64).collect())
}

/// `logspace(lo, hi, n)`: n numbers evenly spaced in log from lo to hi.
fn logspace(cx: &mut Cx, v: &Value, name: &Name, args: &[Arg]) -> Option<Vec<f64>> {
    let slots = cx.args(name, args, &["lo", "hi", "n"], &[])?;
    let (Some(lo), Some(hi), Some(n)) = (slots[0], slots[1], slots[2]) else {
        cx.missing_arg(name, v.span, "lo, hi, n", &["lo", "hi", "n"], &[]);
        return None;
    };
    let lo_x = positive(cx, lo, "logspace's lower end");
    let hi_x = positive(cx, hi, "logspace's upper end");
    let n = cx.whole(n, "n", 2, MAX_VALUES as u64);
    let (lo_x, hi_x, n) = (lo_x?, hi_x?, n?);
    let (a, b) = (lo_x.ln(), hi_x.ln());
    // The ends exactly as written: exp(ln(112)) is 111.99999999999996.
    Some(
        (0..n)
            .map(|i| match i {
                0 => lo_x,
                _ if i == n - 1 => hi_x,
                _ => clean((a + (b - a) * i as f64 / (n - 1) as f64).exp()),
            })
            .collect(),
    )
}

/// `x` rounded to 12 significant digits: the value the arithmetic meant, without its last
/// bits of noise (`exp(ln 64 / 2)` is 7.999999999999998, which would reach tables, file
/// names and labels; it becomes 8). Twelve digits keep every value a generator can mean
/// apart while absorbing the few ulps that `exp` and `ln` lose.
fn clean(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}
