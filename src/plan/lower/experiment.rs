//! The experiment block: its name, the top-level settings (`seed`, `device`, `precision`),
//! the blocks it holds, and the order in which they are lowered.

use super::read::{header, HOMES};
use super::{backbone, derive, fit, observer, probe, staircase, test, train, warnings};
use crate::diag::{Code, Diag, Span};
use crate::plan::spans::Setting;
use crate::plan::types::{Device, Fit, Observer, Plan, Precision};
use crate::plan::values::{suggest, Cx, Fields};
use crate::syntax::ast::{Block, Value, ValueKind};

/// The blocks of an experiment, in the order they are documented.
pub(super) const SECTIONS: &[&str] = &[
    "backbone",
    "probe",
    "train",
    "test",
    "staircase",
    "observer",
    "fit",
];
/// The blocks an experiment must have (the others take their defaults when left out).
const REQUIRED: &[&str] = &["backbone", "probe", "train", "test", "staircase"];
pub(super) const EXPERIMENT_SETTINGS: &[&str] = &["seed", "device", "precision", "repeats"];

/// Lowers the one experiment of a file (`psy` is the file's language version).
pub(super) fn lower(cx: &mut Cx, psy: u32, exp: &Block) -> Option<Plan> {
    let top = top_level(cx, exp);
    let sections = Sections::collect(cx, exp);
    sections.require_all(cx);

    // In the order the sections are documented and usually written, so that independent
    // errors come out top to bottom.
    let backbone = sections
        .get("backbone")
        .and_then(|b| backbone::lower(cx, b));
    let probe = sections.get("probe").and_then(|b| probe::lower(cx, b));
    let train = sections.get("train").and_then(|b| train::lower(cx, b));
    let test = sections.get("test").and_then(|b| test::lower(cx, b));
    let staircase = sections
        .get("staircase")
        .and_then(|b| staircase::lower(cx, b));
    let observer = sections
        .get("observer")
        .map_or(Some(Observer::default()), |b| observer::lower(cx, b));
    let fit = sections
        .get("fit")
        .map_or(Some(Fit::default()), |b| fit::lower(cx, b));

    let (seed, device, precision, repeats) = (top.seed?, top.device?, top.precision?, top.repeats?);
    let (backbone, probe, train, test, staircase) = (backbone?, probe?, train?, test?, staircase?);
    let (observer, fit) = (observer?, fit?);
    if repeats > 1 && backbone.plan.batchnorm == crate::plan::types::BatchNorm::Train {
        let mut d = Diag::error(
            Code::PlanIncompatible,
            "`repeats` needs a frozen backbone, but `batchnorm train` changes it while a probe trains",
        )
        .with_help(
            "each repeat's probe would start from the statistics the previous one left; use \
             `batchnorm eval` (the default), or run the tutorial's setting once per seed",
        );
        if let Some(span) = top.repeats_span {
            d = d.at(span, "several probes");
        }
        if let Some(span) = sections.setting_span("backbone", "batchnorm") {
            d = d.also(span, "BatchNorm statistics drift while training");
        }
        cx.push(d);
        return None;
    }
    let derived = derive::lower(cx, &sections, &backbone, &probe, &train, &test, &staircase)?;
    warnings::check(
        cx,
        &sections,
        &backbone.plan,
        &train,
        &test,
        &staircase,
        &derived,
    );
    Some(Plan {
        psy,
        experiment: name(exp),
        seed,
        device,
        precision,
        backbone: backbone.plan,
        probe,
        train,
        test,
        staircase,
        observer,
        fit,
        repeats,
        design: None,
        derived,
        spans: std::mem::take(&mut cx.spans),
    })
}

/// `experiment NAME` → "NAME" (empty when the label is not a name).
fn name(exp: &Block) -> String {
    match &exp.label {
        Some(Value {
            kind: ValueKind::Ident(n),
            ..
        }) => n.clone(),
        _ => String::new(),
    }
}

/// The experiment's own settings, each `None` when unusable (already reported).
struct TopLevel {
    seed: Option<u64>,
    device: Option<Device>,
    precision: Option<Precision>,
    repeats: Option<u32>,
    repeats_span: Option<Span>,
}

fn top_level(cx: &mut Cx, exp: &Block) -> TopLevel {
    let f = Fields::new(cx, exp, EXPERIMENT_SETTINGS, HOMES);
    let seed = f
        .get("seed")
        .map_or(Some(0), |v| cx.whole(v, "seed", 0, u64::MAX));
    let device_v = f.get("device");
    cx.spans
        .record(Setting::Device, device_v.map_or(header(exp), |v| v.span));
    let device = device_v.map_or(Some(Device::Auto), |v| device(cx, v));
    let precision = f.get("precision").map_or(Some(Precision::Fp32), |v| {
        cx.choice(
            v,
            "precision",
            &[
                ("fp32", Precision::Fp32),
                ("tf32", Precision::Tf32),
                ("bf16", Precision::Bf16),
            ],
        )
    });
    let repeats = f.get("repeats").map_or(Some(1), |v| {
        cx.whole(v, "repeats", 1, 1000).map(|x| x as u32)
    });
    TopLevel {
        seed,
        device,
        precision,
        repeats,
        repeats_span: f.get("repeats").map(|v| v.span),
    }
}

fn device(cx: &mut Cx, v: &Value) -> Option<Device> {
    let help = "device is `auto`, `cpu`, `cuda` or `cuda:N`";
    let word = cx.ident(v, help)?;
    match word {
        "auto" => Some(Device::Auto),
        "cpu" => Some(Device::Cpu),
        "cuda" => Some(Device::Cuda(0)),
        _ => {
            if let Some(n) = word
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<u32>().ok())
            {
                return Some(Device::Cuda(n));
            }
            cx.unknown_value(v.span, "device", word, &["auto", "cpu", "cuda", "cuda:N"]);
            None
        }
    }
}

/// The blocks of an experiment, each found once; later steps look them up by keyword to
/// point at their settings.
pub(super) struct Sections<'a> {
    exp: &'a Block,
    found: Vec<(&'a str, &'a Block)>,
    /// The blocks that unknown blocks are likely typos of (`staircas` → `staircase`): a
    /// missing block of that name is not reported again.
    misspelt: Vec<&'static str>,
}

impl<'a> Sections<'a> {
    /// The known blocks of `exp`, reporting unknown and repeated ones.
    pub(super) fn collect(cx: &mut Cx, exp: &'a Block) -> Self {
        let mut found: Vec<(&'a str, &'a Block)> = Vec::new();
        let mut misspelt = Vec::new();
        for b in exp.blocks() {
            let kw = b.keyword.text.as_str();
            if !SECTIONS.contains(&kw) {
                misspelt.extend(unknown_section(cx, b));
                continue;
            }
            if let Some((_, first)) = found.iter().find(|(k, _)| *k == kw) {
                cx.push(
                    Diag::error(Code::PlanDuplicateBlock, format!("`{kw}` appears twice"))
                        .at(b.keyword.span, "second block")
                        .also(first.keyword.span, "first block")
                        .with_help("merge them into one block"),
                );
                continue;
            }
            found.push((kw, b));
        }
        Sections {
            exp,
            found,
            misspelt,
        }
    }

    /// Reports every required block that is missing.
    fn require_all(&self, cx: &mut Cx) {
        for s in REQUIRED {
            if self.get(s).is_none() && !self.misspelt.contains(s) {
                cx.push(
                    Diag::error(
                        Code::PlanMissingBlock,
                        format!("the experiment has no `{s}` block"),
                    )
                    .at(
                        self.exp.keyword.span,
                        format!("`{s}` missing in this experiment"),
                    )
                    .with_help(section_example(s)),
                );
            }
        }
    }

    /// The block with this keyword, if written.
    pub(super) fn get(&self, keyword: &str) -> Option<&'a Block> {
        self.found
            .iter()
            .find(|(k, _)| *k == keyword)
            .map(|(_, b)| *b)
    }

    /// The span of `key`'s value in the block `keyword`, else that block's keyword, else
    /// (no such block) `None`.
    pub(super) fn setting_span(&self, keyword: &str, key: &str) -> Option<Span> {
        let b = self.get(keyword)?;
        b.settings()
            .find(|s| s.key.text == key)
            .map(|s| s.value.span)
            .or(Some(b.keyword.span))
    }

    /// The `experiment` keyword.
    pub(super) fn experiment_keyword(&self) -> Span {
        self.exp.keyword.span
    }
}

/// Reports an unknown block; returns the block it is likely a typo of, if any.
fn unknown_section(cx: &mut Cx, b: &Block) -> Option<&'static str> {
    let kw = b.keyword.text.as_str();
    let mut help = format!("an experiment has the blocks: {}", SECTIONS.join(", "));
    let typo_of = suggest(kw, SECTIONS.iter().copied());
    if let Some(s) = typo_of {
        help = format!("did you mean `{s}`? {help}");
    }
    cx.push(
        Diag::error(Code::PlanUnknownBlock, format!("unknown block `{kw}`"))
            .at(b.keyword.span, "unknown block")
            .with_help(help),
    );
    typo_of
}

fn section_example(s: &str) -> String {
    let ex = match s {
        "backbone" => "backbone resnet50 { weights imagenet  cut layer2 }",
        "probe" => "probe linear { epochs 10 }",
        "train" => "train shapes { size 224 }",
        "test" => "test gratings { size 224 }",
        _ => "staircase bisection { target 0.75 }",
    };
    format!("add e.g. `{ex}` (omitted settings take their documented defaults)")
}
