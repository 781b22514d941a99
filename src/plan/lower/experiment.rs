//! The experiment block: its name, the top-level settings (`seed`, `device`, `precision`),
//! the blocks it holds, and the order in which they are lowered.

use super::read::{header, HOMES};
use super::{backbone, derive, design, fit, observer, probe, staircase, test, train, warnings};
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
    if design::is_design(exp) {
        return lower_design(cx, psy, exp);
    }
    let top = top_level(cx, exp, EXPERIMENT_SETTINGS);
    let sections = Sections::collect(cx, exp);
    sections.require_all(cx, REQUIRED);

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
    if !repeats_fit(cx, &top, &sections, repeats, &backbone) {
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

/// An experiment described by its parts (`stimulus`, `task`, …): the shared blocks
/// (`backbone`, `probe`, `staircase`, `observer`, `fit`) as in [`lower`], the rest in
/// [`design`]; `train` and `test` of the plan are the design's
/// ([`Design::legacy_train`](crate::plan::design::Design::legacy_train)).
fn lower_design(cx: &mut Cx, psy: u32, exp: &Block) -> Option<Plan> {
    let allowed: Vec<&'static str> = EXPERIMENT_SETTINGS
        .iter()
        .chain(design::DESIGN_SETTINGS)
        .copied()
        .collect();
    let top = top_level(cx, exp, &allowed);
    let sections = Sections::collect(cx, exp);
    sections.require_all(cx, &["backbone", "staircase"]);
    let mut mixed = false;
    for (kw, old) in [("train", true), ("test", false)] {
        let Some(b) = sections.get(kw) else { continue };
        if old && b.label.is_none() {
            continue;
        }
        let what = crate::plan::values::block_title(b);
        cx.push(
            Diag::error(
                Code::PlanMixedSections,
                format!("`{what}` belongs to the tutorial's experiment; this one is described by its stimuli and task"),
            )
            .at(b.keyword.span, "an old section")
            .with_help(if old {
                "keep the new blocks and write `train { samples N  level uniform(lo, hi) }` (the probe trains on the task's stimuli), or keep `train shapes`/`test gratings` and remove the `stimulus`, `task`, `level`, `axis` and `display` blocks"
            } else {
                "the `stimulus` and `task` blocks and `axis` say what `test gratings` said: remove `test`, or keep `train shapes`/`test gratings` and remove the new blocks"
            }),
        );
        mixed = true;
    }
    let parts = design::Parts::collect(cx, exp);
    let backbone = sections
        .get("backbone")
        .and_then(|b| backbone::lower(cx, b));
    // `train shapes` (reported above) reaches `design::lower`, which skips it quietly.
    let train_block = sections.get("train");
    let out = design::lower(
        cx,
        exp,
        &parts,
        &top.design,
        sections.get("probe"),
        train_block,
    );
    // A training-free readout has no `probe` block: the plan carries the default probe.
    let default_probe = Block {
        keyword: crate::syntax::ast::Name {
            text: "probe".into(),
            span: exp.keyword.span,
        },
        label: None,
        extends: None,
        items: Vec::new(),
        open: exp.keyword.span,
        span: exp.keyword.span,
    };
    let probe = probe::lower(cx, sections.get("probe").unwrap_or(&default_probe));
    cx.level = out
        .as_ref()
        .map_or(crate::plan::values::LevelDomain::Unknown, |o| o.domain);
    cx.guess = out.as_ref().map(|o| o.design.task.guess_rate());
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
    let (backbone, probe, staircase, design) = (backbone?, probe?, staircase?, out?.design);
    let (observer, fit) = (observer?, fit?);
    if mixed || !repeats_fit(cx, &top, &sections, repeats, &backbone) {
        return None;
    }
    let train = design.legacy_train();
    let test = design.legacy_test();
    let derived = derive::lower_design(
        cx, &sections, &backbone, &probe, &train, &test, &staircase, &design,
    )?;
    // The tutorial's warnings (`warnings::check`) read `train shapes` and `test gratings`:
    // a design has neither.
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
        design: Some(design),
        derived,
        spans: std::mem::take(&mut cx.spans),
    })
}

/// `repeats` needs a frozen backbone.
fn repeats_fit(
    cx: &mut Cx,
    top: &TopLevel<'_>,
    sections: &Sections<'_>,
    repeats: u32,
    backbone: &backbone::BackboneOut,
) -> bool {
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
        return false;
    }
    true
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
struct TopLevel<'a> {
    seed: Option<u64>,
    device: Option<Device>,
    precision: Option<Precision>,
    repeats: Option<u32>,
    repeats_span: Option<Span>,
    design: design::TopSettings<'a>,
}

fn top_level<'a>(cx: &mut Cx, exp: &'a Block, allowed: &[&'static str]) -> TopLevel<'a> {
    let f = Fields::new(cx, exp, allowed, HOMES);
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
        design: design::TopSettings {
            readout: f.get("readout"),
            level: f.get("level"),
            axis: f.get("axis"),
        },
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
            if design::DESIGN_BLOCKS.contains(&kw) {
                continue;
            }
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
    fn require_all(&self, cx: &mut Cx, required: &[&str]) {
        for s in required {
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
