//! The `test` block: the gratings, their frequencies, orientations, phases and envelope,
//! the reference contrast and which interval holds the target.

use super::generators::{angles, divisors, numbers};
use super::read::{
    contrast, fmt_num, label_choice, normalize, positive, reject_blocks, size, unknown_function,
    HOMES,
};
use crate::diag::{Code, Diag};
use crate::plan::types::{Envelope, TargetInterval, Test};
use crate::plan::values::{Cx, Fields};
use crate::stimuli::{GratingFactors, GratingSpec};
use crate::syntax::ast::{Block, Value, ValueKind};

pub(super) const TEST_SETTINGS: &[&str] = &[
    "size",
    "frequencies",
    "orientations",
    "phases",
    "envelope",
    "reference",
    "target_interval",
    "normalize",
];

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<Test> {
    label_choice(cx, b, "test stimuli", &[("gratings", ())])?;
    let f = Fields::new(cx, b, TEST_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let size = size(cx, &f);
    let frequencies = frequencies(cx, &f, size);
    let orientations = match f.get("orientations") {
        None => Some((0..12).map(|i| f64::from(i) * 15.0).collect()),
        Some(v) => angles(cx, v, "orientations"),
    };
    let phases = match f.get("phases") {
        None => Some(vec![0.0]),
        Some(v) => angles(cx, v, "phases"),
    };
    let envelope = match (f.get("envelope"), size) {
        (None, Some(s)) => Some(Envelope::Gaussian {
            sigma: f64::from(s) / 6.0,
        }),
        (None, None) => None,
        (Some(v), _) => envelope(cx, v),
    };
    let reference = f
        .get("reference")
        .map_or(Some(0.0), |v| contrast(cx, v, "the reference contrast"));
    let target_interval = f
        .get("target_interval")
        .map_or(Some(TargetInterval::Both), |v| {
            cx.choice(
                v,
                "target interval",
                &[
                    ("both", TargetInterval::Both),
                    ("first", TargetInterval::First),
                    ("second", TargetInterval::Second),
                ],
            )
        });
    let normalize = normalize(cx, f.get("normalize"));
    if let (Some(s), Some(fr), Some(or), Some(ph)) = (size, &frequencies, &orientations, &phases) {
        blank_gratings(cx, &f, b, s, fr, or, ph);
    }
    Some(Test {
        size: size?,
        frequencies: frequencies?,
        orientations: orientations?,
        phases: phases?,
        envelope: envelope?,
        reference: reference?,
        target_interval: target_interval?,
        normalize: normalize?,
    })
}

/// `envelope none` or `envelope gaussian(sigma: …)`.
fn envelope(cx: &mut Cx, v: &Value) -> Option<Envelope> {
    match &v.kind {
        ValueKind::Ident(w) if w == "none" => Some(Envelope::Off),
        ValueKind::Call { name, args } if name.text == "gaussian" => {
            let slots = cx.args(name, args, &[], &["sigma"])?;
            let Some(s) = slots[0] else {
                cx.missing_arg(name, v.span, "sigma", &[], &["sigma"]);
                return None;
            };
            positive(cx, s, "sigma").map(|sigma| Envelope::Gaussian { sigma })
        }
        ValueKind::Call { name, .. } => {
            unknown_function(cx, name, &["gaussian"]);
            None
        }
        ValueKind::Ident(w) => {
            cx.unknown_value(v.span, "envelope", w, &["none", "gaussian(sigma: …)"]);
            None
        }
        _ => {
            cx.wrong_type(
                v,
                "an envelope",
                "write `none` or e.g. `gaussian(sigma: 224 / 6)`",
            );
            None
        }
    }
}

/// `frequencies` in cycles per image; by default every divisor of the size up to the
/// Nyquist limit. Written frequencies are checked against that limit.
fn frequencies(cx: &mut Cx, f: &Fields<'_>, size: Option<u32>) -> Option<Vec<f64>> {
    let v = f.get("frequencies");
    let frequencies = match (v, size) {
        (None, Some(s)) => Some(
            divisors(u64::from(s), u64::from(s) / 2)
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        ),
        (None, None) => None,
        (Some(v), _) => numbers(cx, v, "frequencies", "cycles per image"),
    };
    if let (Some(freqs), Some(size), Some(v)) = (&frequencies, size, v) {
        check_nyquist(cx, f, freqs, size, v);
    }
    frequencies
}

/// Every frequency positive and at most size / 2.
fn check_nyquist(cx: &mut Cx, f: &Fields<'_>, freqs: &[f64], size: u32, v: &Value) {
    let nyquist = f64::from(size) / 2.0;
    let bad: Vec<String> = freqs
        .iter()
        .filter(|x| **x <= 0.0 || **x > nyquist)
        .map(|x| fmt_num(*x))
        .collect();
    if bad.is_empty() {
        return;
    }
    let positive = freqs.iter().all(|x| *x > 0.0);
    let (code, msg, label) = if positive {
        (
            Code::PlanAboveNyquist,
            format!("frequencies above the Nyquist limit of a {size} px image ({} cycles per image): {}", fmt_num(nyquist), bad.join(", ")),
            "above size / 2".to_string(),
        )
    } else {
        (
            Code::PlanOutOfRange,
            format!("frequencies must be positive: {}", bad.join(", ")),
            "must be > 0".to_string(),
        )
    };
    let mut d = Diag::error(code, msg).at(v.span, label).with_help(format!(
        "a {size} px image holds at most {} cycles; e.g. `divisors({size}, max: {})`",
        fmt_num(nyquist),
        size / 2
    ));
    if let Some(s) = f.setting("size") {
        d = d.also(s.value.span, "image size set here");
    }
    cx.push(d);
}

/// Below this peak |value| a grating's samples count as zero: at contrast 1 it changes no
/// pixel by more than 5e-7 (f32 pixels near 0.5 are 6e-8 apart), far below any threshold.
const BLANK: f64 = 1e-6;

/// The largest |cos(…)| over the pixels of the grating `spec` without its envelope (the
/// envelope is positive, so it cannot make a zero pattern non-zero, nor the reverse).
fn peak(spec: &GratingSpec) -> f64 {
    let g = GratingFactors::new(&GratingSpec {
        envelope_sigma: None,
        ..*spec
    });
    let mut peak = 0f64;
    for (&cb, &sb) in g.cb.iter().zip(&g.sb) {
        for (&ca, &sa) in g.ca.iter().zip(&g.sa) {
            peak = peak.max((ca * cb - sa * sb).abs());
        }
    }
    peak
}

/// The (frequency, orientation, phase) conditions whose sampled grating is zero everywhere.
///
/// The pattern is `cos(a·x + b·y + φ)` with `a = 2πf·cos θ/size`, `b = 2πf·sin θ/size` on
/// integer pixels; it vanishes at every pixel only if `a` and `b` are multiples of π (then it
/// is `±cos φ` in a checkerboard of signs) and `cos φ = 0`. With `f ≤ size/2`, `|a|, |b| ≤ π`,
/// so that needs `f = size/2` and θ a multiple of 90°: only the Nyquist frequency is
/// computed (to within rounding, with the grating's own numbers).
pub(crate) fn blank_conditions(
    size: u32,
    frequencies: &[f64],
    orientations: &[f64],
    phases: &[f64],
) -> Vec<(f64, f64, f64)> {
    let nyquist = f64::from(size) / 2.0;
    let mut out = Vec::new();
    for &frequency in frequencies {
        if (frequency - nyquist).abs() > 1e-9 * nyquist {
            continue;
        }
        for &orientation_deg in orientations {
            for &phase_deg in phases {
                let spec = GratingSpec {
                    size,
                    frequency,
                    orientation_deg,
                    phase_deg,
                    envelope_sigma: None,
                };
                if peak(&spec) < BLANK {
                    out.push((frequency, orientation_deg, phase_deg));
                }
            }
        }
    }
    out
}

/// Refuses conditions whose grating is blank: every level would compare two grey images
/// (accuracy at chance whatever the contrast, so the staircase runs to `max_steps`).
fn blank_gratings(
    cx: &mut Cx,
    f: &Fields<'_>,
    b: &Block,
    size: u32,
    frequencies: &[f64],
    orientations: &[f64],
    phases: &[f64],
) {
    let blank = blank_conditions(size, frequencies, orientations, phases);
    let Some(&(freq, _, _)) = blank.first() else {
        return;
    };
    let listed: Vec<String> = blank
        .iter()
        .map(|(_, o, p)| format!("{}° at phase {}°", fmt_num(*o), fmt_num(*p)))
        .collect();
    let mut d = Diag::error(
        Code::PlanBlankGrating,
        format!(
            "the {} cycles per image grating is zero at every pixel for orientation {}",
            fmt_num(freq),
            listed.join(", ")
        ),
    )
    .with_help(format!(
        "at the Nyquist frequency ({} cycles on {size} px) a grating at 0° or 90° alternates sign from pixel to pixel, cos(π·x + φ), so at phase 90° or 270° every sample is 0 and the test image is uniform grey at every contrast; use phases 0deg/180deg, drop {} from `frequencies`, or drop those orientations",
        fmt_num(freq),
        fmt_num(freq)
    ));
    let span = |key: &str| f.setting(key).map(|s| s.value.span);
    let primary = span("phases")
        .map(|s| (s, "a phase that blanks it"))
        .or_else(|| span("orientations").map(|s| (s, "orientations")))
        .or_else(|| span("frequencies").map(|s| (s, "frequencies")));
    d = match primary {
        Some((s, label)) => d.at(s, label),
        None => d.at(super::read::header(b), "these gratings"),
    };
    if let Some(s) = span("frequencies") {
        d = d.also(s, format!("includes {}, size / 2", fmt_num(freq)));
    }
    cx.push(d);
}

#[cfg(test)]
mod tests {
    use super::blank_conditions;
    use crate::diag::Code;
    use crate::plan::compile;
    use crate::source::SourceFile;
    use crate::stimuli::{grating, GratingSpec};

    #[test]
    fn blank_conditions_are_exactly_the_zero_gratings() {
        // 0° and 90° (and 180°, 270°) at phases 90° and 270°, only at size / 2.
        let orientations: Vec<f64> = (0..24).map(|i| f64::from(i) * 15.0).collect();
        let phases: Vec<f64> = (0..8).map(|i| f64::from(i) * 45.0).collect();
        for size in [31, 32, 64] {
            let freqs = [1.0, 7.0, f64::from(size / 2), f64::from(size) / 2.0];
            let blank = blank_conditions(size, &freqs, &orientations, &phases);
            for &f in &freqs {
                for &o in &orientations {
                    for &p in &phases {
                        let spec = GratingSpec {
                            size,
                            frequency: f,
                            orientation_deg: o,
                            phase_deg: p,
                            envelope_sigma: None,
                        };
                        let peak = grating(&spec, 1.0)
                            .iter()
                            .map(|&v| (f64::from(v) - 0.5).abs())
                            .fold(0.0, f64::max);
                        let listed = blank.contains(&(f, o, p));
                        assert_eq!(listed, peak < 1e-6, "{size} px f {f} θ {o} φ {p}: {peak}");
                    }
                }
            }
            if size % 2 == 0 {
                let n = f64::from(size) / 2.0;
                for (o, p) in [(0.0, 90.0), (90.0, 270.0), (180.0, 90.0), (270.0, 270.0)] {
                    assert!(blank.contains(&(n, o, p)), "{size}: {o} {p}");
                }
                assert!(!blank.contains(&(n, 45.0, 90.0)));
                assert!(!blank.contains(&(n, 0.0, 0.0)));
            }
        }
    }

    fn codes(test: &str) -> Vec<Code> {
        let text = format!(
            "psy 1\nexperiment t {{\n  backbone resnet18 {{ weights random  cut layer1 }}\n  \
             probe linear {{}}\n  train shapes {{ size 32 }}\n  test gratings {{ size 32 {test} }}\n  \
             staircase bisection {{}}\n}}\n"
        );
        compile(&SourceFile::new("t.psy", text))
            .diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code)
            .collect()
    }

    #[test]
    fn a_blank_grating_is_refused() {
        let blank = [Code::PlanBlankGrating];
        // The default frequencies reach 16 = size / 2, the default orientations include 0°.
        assert_eq!(codes("phases [90deg]"), blank);
        assert_eq!(codes("phases steps(0deg, 360deg, 90deg)"), blank);
        assert_eq!(
            codes("frequencies [16] orientations [90deg] phases [270deg]"),
            blank
        );
        // Not at the Nyquist frequency, not at 0°/90°, not at phase 0°: fine.
        assert!(codes("frequencies [1, 8] phases [90deg]").is_empty());
        assert!(codes("frequencies [16] orientations [45deg] phases [90deg]").is_empty());
        assert!(codes("phases [0deg, 180deg]").is_empty());
        assert!(codes("").is_empty());
    }
}
