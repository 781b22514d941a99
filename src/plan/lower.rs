//! The lowering pass itself. Defaults live here and nowhere else; `docs/language.md`
//! documents each one (a test checks the documented examples against this code).

use super::types::*;
use super::values::{missing, suggest, Cx, Fields};
use crate::diag::{Code, Diag, Span};
use crate::models::catalog::{self, Arch, ShapeError};
use crate::syntax::ast::{Arg, Ast, Block, Name, Value, ValueKind};

/// The result of lowering: a plan when there is no error, and every diagnostic.
#[derive(Debug)]
pub struct Lowered {
    /// The plan, present only when no error was found.
    pub plan: Option<Plan>,
    /// Errors and warnings, in source order of discovery.
    pub diags: Vec<Diag>,
}

impl Lowered {
    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diag::is_error)
    }
}

/// Default image size (torchvision ImageNet models).
pub const DEFAULT_SIZE: u32 = 224;
/// ImageNet channel means.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

const SECTIONS: &[&str] = &["backbone", "probe", "train", "test", "staircase"];
const EXPERIMENT_SETTINGS: &[&str] = &["seed", "device", "precision"];
const BACKBONE_SETTINGS: &[&str] = &["weights", "cut", "pooling", "batchnorm"];
const PROBE_SETTINGS: &[&str] = &["paradigm", "epochs", "batch"];
const SGD_SETTINGS: &[&str] = &["lr", "momentum", "weight_decay", "nesterov"];
const ADAM_SETTINGS: &[&str] = &["lr", "betas", "weight_decay"];
const TRAIN_SETTINGS: &[&str] = &[
    "size",
    "samples",
    "shapes",
    "background",
    "contrast",
    "normalize",
];
const TEST_SETTINGS: &[&str] = &[
    "size",
    "frequencies",
    "orientations",
    "phases",
    "envelope",
    "reference",
    "target_interval",
    "normalize",
];
const BISECTION_SETTINGS: &[&str] = &["start", "range", "target", "tolerance", "max_steps"];

/// Where settings of other blocks belong, for "`lr` belongs in …" messages.
const HOMES: &[(&str, &str)] = &[
    ("seed", "the experiment block"),
    ("device", "the experiment block"),
    ("precision", "the experiment block"),
    ("weights", "`backbone`"),
    ("cut", "`backbone`"),
    ("pooling", "`backbone`"),
    ("batchnorm", "`backbone`"),
    ("paradigm", "`probe`"),
    ("epochs", "`probe`"),
    ("batch", "`probe`"),
    ("lr", "`optimizer sgd { … }` inside `probe`"),
    ("momentum", "`optimizer sgd { … }` inside `probe`"),
    ("weight_decay", "`optimizer sgd { … }` inside `probe`"),
    ("samples", "`train`"),
    ("shapes", "`train`"),
    ("background", "`train`"),
    ("contrast", "`train`"),
    ("frequencies", "`test`"),
    ("orientations", "`test`"),
    ("phases", "`test`"),
    ("envelope", "`test`"),
    ("reference", "`test`"),
    ("target_interval", "`test`"),
    ("start", "`staircase`"),
    ("range", "`staircase`"),
    ("target", "`staircase`"),
    ("tolerance", "`staircase`"),
    ("max_steps", "`staircase`"),
];

/// Lowers a syntax tree to a plan, collecting every error and warning.
pub fn lower(ast: &Ast) -> Lowered {
    let mut cx = Cx::default();
    let plan = match ast.experiments.as_slice() {
        [] => {
            cx.push(
                Diag::error(Code::PlanNoExperiment, "the file has no `experiment` block")
                    .with_help(
                        "add `experiment NAME { … }` after `psy 1`; see experiments/quick_csf.psy",
                    ),
            );
            None
        }
        [one] => experiment(&mut cx, ast.header.as_ref().map_or(1, |h| h.version), one),
        [first, second, ..] => {
            cx.push(
                Diag::error(
                    Code::PlanMultipleExperiments,
                    "one file holds one experiment",
                )
                .at(second.keyword.span, "a second experiment")
                .also(first.keyword.span, "the first experiment")
                .with_help("put each experiment in its own file"),
            );
            None
        }
    };
    let plan = if cx.diags.iter().any(Diag::is_error) {
        None
    } else {
        plan
    };
    Lowered {
        plan,
        diags: cx.diags,
    }
}

fn experiment(cx: &mut Cx, psy: u32, exp: &Block) -> Option<Plan> {
    let name = match &exp.label {
        Some(Value {
            kind: ValueKind::Ident(n),
            ..
        }) => n.clone(),
        _ => String::new(),
    };
    let f = Fields::new(cx, exp, EXPERIMENT_SETTINGS, HOMES);
    let seed = f
        .get("seed")
        .map_or(Some(0), |v| cx.whole(v, "seed", 0, u64::MAX >> 11));
    let device = f
        .get("device")
        .map_or(Some(Device::Auto), |v| device(cx, v));
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

    // Sections: each at most once; all required.
    let mut found: Vec<(&str, &Block)> = Vec::new();
    for b in exp.blocks() {
        let kw = b.keyword.text.as_str();
        if !SECTIONS.contains(&kw) {
            let mut help = format!("an experiment has the blocks: {}", SECTIONS.join(", "));
            if let Some(s) = suggest(kw, SECTIONS.iter().copied()) {
                help = format!("did you mean `{s}`? {help}");
            }
            cx.push(
                Diag::error(Code::PlanUnknownBlock, format!("unknown block `{kw}`"))
                    .at(b.keyword.span, "unknown block")
                    .with_help(help),
            );
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
    let get = |k: &str| found.iter().find(|(n, _)| *n == k).map(|(_, b)| *b);
    for s in SECTIONS {
        if get(s).is_none() {
            cx.push(
                Diag::error(
                    Code::PlanMissingBlock,
                    format!("the experiment has no `{s}` block"),
                )
                .at(
                    exp.keyword.span,
                    format!("`{s}` missing in this experiment"),
                )
                .with_help(section_example(s)),
            );
        }
    }

    // In the order the sections are documented and usually written, so that independent
    // errors come out top to bottom.
    let backbone = get("backbone").and_then(|b| backbone(cx, b));
    let probe = get("probe").and_then(|b| probe(cx, b));
    let train = get("train").and_then(|b| train(cx, b));
    let test = get("test").and_then(|b| test(cx, b));
    let staircase = get("staircase").and_then(|b| staircase(cx, b));

    let (seed, device, precision, backbone, probe, train, test, staircase) = (
        seed?, device?, precision?, backbone?, probe?, train?, test?, staircase?,
    );
    let derived = derive(
        cx, exp, &found, &backbone, &probe, &train, &test, &staircase,
    )?;
    warnings(cx, &found, &test, &staircase, &derived);
    Some(Plan {
        psy,
        experiment: name,
        seed,
        device,
        precision,
        backbone: backbone.plan,
        probe,
        train,
        test,
        staircase,
        derived,
    })
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

/// The backbone with the spans later checks point at.
struct BackboneOut {
    plan: Backbone,
    cut_span: Span,
    pooling_span: Option<Span>,
}

fn backbone(cx: &mut Cx, b: &Block) -> Option<BackboneOut> {
    let f = Fields::new(cx, b, BACKBONE_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let label_span = b.label.as_ref().map_or(b.keyword.span, |l| l.span);
    let pooling = f
        .get("pooling")
        .map_or(Some(Pooling::Off), |v| pooling(cx, v));
    let batchnorm = f.get("batchnorm").map_or(Some(BatchNorm::Eval), |v| {
        cx.choice(
            v,
            "batchnorm mode",
            &[("eval", BatchNorm::Eval), ("train", BatchNorm::Train)],
        )
    });
    // `backbone torchscript "net.pt"`: the file is the network, weights and cut included.
    let script = match b.label.as_ref().map(|l| &l.kind) {
        Some(ValueKind::Tagged { tag, arg }) => {
            let ValueKind::Str(file) = &arg.kind else {
                // The grammar only lets a string follow the name; kept total all the same.
                cx.wrong_type(
                    arg,
                    "a quoted file path",
                    "write `backbone torchscript \"net.pt\"`",
                );
                return None;
            };
            if tag.text != "torchscript" {
                cx.push(
                    Diag::error(
                        Code::PlanWrongType,
                        format!("`backbone {}` does not take a file", tag.text),
                    )
                    .at(arg.span, "unexpected file")
                    .with_help(format!(
                        "a catalog network's weights file goes in the block: `backbone {} {{ weights \"{file}\" … }}`; a TorchScript module is `backbone torchscript \"{file}\"`",
                        tag.text
                    )),
                );
                return None;
            }
            if file.trim().is_empty() {
                cx.push(
                    Diag::error(Code::PlanUnknownValue, "the TorchScript file name is empty")
                        .at(arg.span, "no file")
                        .with_help("write the path of a file saved by `torch.jit.save`, relative to the experiment, e.g. `backbone torchscript \"models/net.pt\"`"),
                );
                return None;
            }
            Some(file.clone())
        }
        Some(ValueKind::Ident(w)) if w == "torchscript" => {
            cx.push(
                Diag::error(
                    Code::PlanMissingSetting,
                    "`backbone torchscript` needs the module's file",
                )
                .at(label_span, "which file?")
                .with_help(
                    "write `backbone torchscript \"net.pt\" { … }` with a file saved by `torch.jit.save`, relative to the experiment",
                ),
            );
            return None;
        }
        _ => None,
    };
    if let Some(file) = script {
        // The module is already cut and carries its weights.
        for (key, why) in [
            ("weights", "a TorchScript file carries its own weights"),
            (
                "cut",
                "a TorchScript module is used whole: export it already cut",
            ),
        ] {
            if let Some(v) = f.get(key) {
                cx.push(
                    Diag::error(
                        Code::PlanIncompatible,
                        format!("`{key}` does not apply to a TorchScript backbone"),
                    )
                    .at(v.span, why)
                    .also(label_span, "this backbone")
                    .with_help(format!(
                        "remove `{key}`; to use another cut or other weights, export the module again (see docs/language.md, TorchScript backbones)"
                    )),
                );
            }
        }
        if f.get("weights").is_some() || f.get("cut").is_some() {
            return None;
        }
        return Some(BackboneOut {
            cut_span: label_span,
            pooling_span: f.get("pooling").map(|v| v.span),
            plan: Backbone {
                network: Network::TorchScript { file },
                pooling: pooling?,
                batchnorm: batchnorm?,
            },
        });
    }
    let arch = match &b.label {
        None => {
            cx.push(
                Diag::error(Code::PlanMissingSetting, "`backbone` needs an architecture")
                    .at(b.keyword.span, "which network?")
                    .with_help(format!(
                        "write e.g. `backbone resnet50 {{ … }}`; architectures: {}, or `torchscript \"file.pt\"`",
                        arch_names()
                    )),
            );
            None
        }
        Some(v) => arch(cx, v),
    };
    let weights = match f.get("weights") {
        None => {
            missing(cx, b, "weights", "weights imagenet");
            None
        }
        Some(v) => arch.and_then(|a| weights(cx, a, v)),
    };
    let cut_v = f.get("cut");
    if cut_v.is_none() {
        missing(cx, b, "cut", "cut layer2");
    }
    let cut = match (arch, cut_v) {
        (Some(a), Some(v)) => cut(cx, a, label_span, v),
        _ => None,
    };
    let (arch, weights, cut, pooling, batchnorm) = (arch?, weights?, cut?, pooling?, batchnorm?);
    if batchnorm == BatchNorm::Train && !arch.has_batchnorm() {
        let d = Diag::error(
            Code::PlanIncompatible,
            format!("`{arch}` has no BatchNorm layers"),
        )
        .at(
            f.get("batchnorm").map_or(b.keyword.span, |v| v.span),
            "`batchnorm train` has nothing to act on",
        )
        .also(label_span, "this backbone")
        .with_help(
            "remove `batchnorm train`, or pick an architecture with BatchNorm (resnet*, vgg*_bn)",
        );
        cx.push(d);
        return None;
    }
    Some(BackboneOut {
        cut_span: cut_v.map_or(b.keyword.span, |v| v.span),
        pooling_span: f.get("pooling").map(|v| v.span),
        plan: Backbone {
            network: Network::Catalog(CatalogNet { arch, weights, cut }),
            pooling,
            batchnorm,
        },
    })
}

fn arch_names() -> String {
    Arch::ALL
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn arch(cx: &mut Cx, v: &Value) -> Option<Arch> {
    let help = format!("architectures: {}", arch_names());
    let word = cx.ident(v, &help)?;
    if let Some(a) = Arch::from_name(word) {
        return Some(a);
    }
    let lower = word.to_ascii_lowercase().replace('-', "_");
    let mut help = help;
    if let Some(a) = Arch::from_name(&lower) {
        help = format!("did you mean `{}`? names are lower case", a.name());
    } else if let Some(s) = suggest(&lower, Arch::ALL.iter().map(|a| a.name())) {
        help = format!("did you mean `{s}`? {help}");
    }
    cx.push(
        Diag::error(
            Code::PlanUnknownBackbone,
            format!("unknown architecture `{word}`"),
        )
        .at(v.span, "not in the catalog")
        .with_help(help),
    );
    None
}

/// torchvision's weight sets per architecture.
fn weight_sets(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Resnet50 | Arch::Resnet101 | Arch::Resnet152 => &["IMAGENET1K_V1", "IMAGENET1K_V2"],
        Arch::Vgg16 => &["IMAGENET1K_V1", "IMAGENET1K_FEATURES"],
        _ => &["IMAGENET1K_V1"],
    }
}

fn weights(cx: &mut Cx, arch: Arch, v: &Value) -> Option<Weights> {
    let sets = weight_sets(arch);
    let help = format!(
        "weights are `random`, `imagenet` (= IMAGENET1K_V1), a torchvision set of {arch} ({}), or a file path in quotes",
        sets.join(", ")
    );
    match &v.kind {
        ValueKind::Str(path) => {
            let ok = [".pth", ".pt", ".safetensors", ".ckpt", ".bin"]
                .iter()
                .any(|ext| path.to_ascii_lowercase().ends_with(ext));
            if path.is_empty() || !ok {
                cx.push(
                    Diag::error(
                        Code::PlanUnknownValue,
                        format!("`{path}` is not a weights file psyrun reads"),
                    )
                    .at(v.span, "unknown file type")
                    .with_help(
                        "weights files end in `.safetensors`, `.pth`, `.pt`, `.ckpt` or `.bin`",
                    ),
                );
                return None;
            }
            Some(Weights::File(path.clone()))
        }
        ValueKind::Ident(w) => match w.as_str() {
            "random" => Some(Weights::Random),
            "imagenet" => Some(Weights::Torchvision("IMAGENET1K_V1".into())),
            _ if sets.contains(&w.as_str()) => Some(Weights::Torchvision(w.clone())),
            _ => {
                let mut choices = vec!["random", "imagenet"];
                choices.extend_from_slice(sets);
                let mut h = help.clone();
                if let Some(s) = suggest(w, choices.iter().copied()) {
                    h = format!("did you mean `{s}`? {h}");
                } else if !w.contains('_') && !w.chars().any(|c| c.is_ascii_uppercase()) {
                    h = format!("{h}; a file path must be quoted: `weights \"{w}\"`");
                }
                cx.push(
                    Diag::error(
                        Code::PlanUnknownValue,
                        format!("unknown weights `{w}` for {arch}"),
                    )
                    .at(v.span, "not a weight set of this architecture")
                    .with_help(h),
                );
                None
            }
        },
        _ => {
            cx.wrong_type(v, "a weight set or a quoted file path", &help);
            None
        }
    }
}

fn cut(cx: &mut Cx, arch: Arch, arch_span: Span, v: &Value) -> Option<String> {
    let path = match &v.kind {
        ValueKind::Ident(s) | ValueKind::Str(s) => s.as_str(),
        _ => {
            cx.wrong_type(
                v,
                "a layer name",
                &format!("`psyrun layers {arch}` lists the layers"),
            );
            return None;
        }
    };
    if catalog::find(arch, path).is_some() {
        return Some(path.to_string());
    }
    let top = catalog::top_level(arch);
    let points = catalog::cut_points(arch);
    let examples: Vec<&str> = points
        .iter()
        .filter(|p| p.depth > 0)
        .map(|p| p.path.as_str())
        .step_by(points.len().max(8) / 8)
        .take(3)
        .collect();
    let mut help = format!(
        "{arch} can be cut after: {}, or inside a block ({} …); `psyrun layers {arch}` lists them all",
        top.join(", "),
        examples.join(", ")
    );
    // For structured names (layer5, features.40) list the choices; a near-miss spelling
    // (`layr2`) gets a suggestion.
    let strip = |s: &str| {
        s.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
            .to_string()
    };
    let structured = points.iter().any(|p| strip(&p.path) == strip(path));
    if !structured {
        if let Some(s) = suggest(path, points.iter().map(|p| p.path.as_str())) {
            help = format!("did you mean `{s}`? {help}");
        }
    }
    cx.push(
        Diag::error(
            Code::PlanUnknownLayer,
            format!("`{arch}` has no layer `{path}`"),
        )
        .at(v.span, "no such layer")
        .also(arch_span, "layers come from this backbone")
        .with_help(help),
    );
    None
}

fn pooling(cx: &mut Cx, v: &Value) -> Option<Pooling> {
    let help = "pooling is `none`, `avg HxW` or `max HxW` (adaptive, e.g. `avg 2x2`)";
    match &v.kind {
        ValueKind::Ident(w) if w == "none" => Some(Pooling::Off),
        ValueKind::Ident(w) if w == "avg" || w == "max" => {
            cx.push(
                Diag::error(
                    Code::PlanWrongType,
                    format!("`{w}` pooling needs an output size"),
                )
                .at(v.span, "size missing")
                .with_help(format!("write e.g. `pooling {w} 2x2`")),
            );
            None
        }
        ValueKind::Ident(w) => {
            cx.unknown_value(v.span, "pooling", w, &["none", "avg", "max"]);
            None
        }
        ValueKind::Tagged { tag, arg } => {
            let (h, w) = match arg.kind {
                ValueKind::Dims(h, w) => (h, w),
                ValueKind::Number(n) if n.fract() == 0.0 && n >= 0.0 => (n as u64, n as u64),
                _ => {
                    cx.wrong_type(arg, "an output size like 2x2", help);
                    return None;
                }
            };
            if h == 0 || w == 0 || h > 4096 || w > 4096 {
                cx.out_of_range(
                    arg.span,
                    format!("pooling size {h}x{w} is not allowed"),
                    "each side from 1 to 4096",
                    help,
                );
                return None;
            }
            let (h, w) = (h as u32, w as u32);
            match tag.text.as_str() {
                "avg" => Some(Pooling::Avg { h, w }),
                "max" => Some(Pooling::Max { h, w }),
                other => {
                    cx.unknown_value(tag.span, "pooling", other, &["none", "avg", "max"]);
                    None
                }
            }
        }
        _ => {
            cx.wrong_type(v, "a pooling", help);
            None
        }
    }
}

/// Nested blocks are allowed only where listed.
fn reject_blocks(cx: &mut Cx, b: &Block, allowed: &[&str]) {
    for inner in b.blocks() {
        if allowed.contains(&inner.keyword.text.as_str()) {
            continue;
        }
        let help = if allowed.is_empty() {
            format!("`{}` has no nested blocks", b.keyword.text)
        } else {
            format!(
                "`{}` has the blocks: {}",
                b.keyword.text,
                allowed.join(", ")
            )
        };
        cx.push(
            Diag::error(
                Code::PlanUnknownBlock,
                format!(
                    "unknown block `{}` in `{}`",
                    inner.keyword.text, b.keyword.text
                ),
            )
            .at(inner.keyword.span, "unknown block")
            .with_help(help),
        );
    }
}

fn label_choice<T: Copy>(cx: &mut Cx, b: &Block, what: &str, choices: &[(&str, T)]) -> Option<T> {
    match &b.label {
        None => Some(choices[0].1),
        Some(v) => cx.choice(v, what, choices),
    }
}

fn probe(cx: &mut Cx, b: &Block) -> Option<Probe> {
    label_choice(cx, b, "probe kind", &[("linear", ())])?;
    let f = Fields::new(cx, b, PROBE_SETTINGS, HOMES);
    reject_blocks(cx, b, &["optimizer"]);
    let paradigm = f.get("paradigm").map_or(Some(Paradigm::TwoAfc), |v| {
        cx.choice(v, "paradigm", &[("2afc", Paradigm::TwoAfc)])
    });
    let epochs = f
        .get("epochs")
        .map_or(Some(10), |v| cx.whole(v, "epochs", 1, 100_000));
    let batch = f
        .get("batch")
        .map_or(Some(32), |v| cx.whole(v, "batch", 1, 1_000_000));
    let mut optimizers = b.blocks().filter(|x| x.keyword.text == "optimizer");
    let optimizer = match optimizers.next() {
        None => Some(default_sgd()),
        Some(o) => {
            if let Some(second) = optimizers.next() {
                cx.push(
                    Diag::error(Code::PlanDuplicateBlock, "`optimizer` appears twice")
                        .at(second.keyword.span, "second optimizer")
                        .also(o.keyword.span, "first optimizer")
                        .with_help("a probe has one optimizer"),
                );
            }
            optimizer(cx, o)
        }
    };
    Some(Probe {
        paradigm: paradigm?,
        optimizer: optimizer?,
        epochs: epochs? as u32,
        batch: batch? as u32,
    })
}

fn default_sgd() -> Optimizer {
    Optimizer::Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-4,
        nesterov: false,
    }
}

#[derive(Clone, Copy)]
enum OptKind {
    Sgd,
    Adam,
}

fn optimizer(cx: &mut Cx, b: &Block) -> Option<Optimizer> {
    let kind = label_choice(
        cx,
        b,
        "optimizer",
        &[("sgd", OptKind::Sgd), ("adam", OptKind::Adam)],
    )?;
    let allowed = match kind {
        OptKind::Sgd => SGD_SETTINGS,
        OptKind::Adam => ADAM_SETTINGS,
    };
    let f = Fields::new(cx, b, allowed, &[]);
    let lr = f.get("lr").map_or(
        Some(match kind {
            OptKind::Sgd => 0.1,
            OptKind::Adam => 1e-3,
        }),
        |v| positive(cx, v, "the learning rate lr"),
    );
    let wd = f.get("weight_decay").map_or(
        Some(match kind {
            OptKind::Sgd => 1e-4,
            OptKind::Adam => 0.0,
        }),
        |v| {
            let x = cx.number(v, "weight_decay is a number ≥ 0, e.g. 1e-4")?;
            if x < 0.0 {
                cx.out_of_range(
                    v.span,
                    format!("weight_decay must not be negative, got {x}"),
                    "negative",
                    "use 0 for no weight decay",
                );
                return None;
            }
            Some(x)
        },
    );
    match kind {
        OptKind::Sgd => {
            let momentum = f
                .get("momentum")
                .map_or(Some(0.9), |v| half_open_unit(cx, v, "momentum"));
            let nesterov = f.get("nesterov").map_or(Some(false), |v| {
                cx.choice(v, "nesterov flag", &[("false", false), ("true", true)])
            });
            Some(Optimizer::Sgd {
                lr: lr?,
                momentum: momentum?,
                weight_decay: wd?,
                nesterov: nesterov?,
            })
        }
        OptKind::Adam => {
            let betas = match f.get("betas") {
                None => Some((0.9, 0.999)),
                Some(v) => match &v.kind {
                    ValueKind::List(items) if items.len() == 2 => {
                        let b1 = half_open_unit(cx, &items[0], "beta1");
                        let b2 = half_open_unit(cx, &items[1], "beta2");
                        b1.zip(b2)
                    }
                    _ => {
                        cx.wrong_type(
                            v,
                            "a list of two numbers",
                            "write e.g. `betas [0.9, 0.999]`",
                        );
                        None
                    }
                },
            };
            Some(Optimizer::Adam {
                lr: lr?,
                betas: betas?,
                weight_decay: wd?,
            })
        }
    }
}

fn positive(cx: &mut Cx, v: &Value, what: &str) -> Option<f64> {
    let x = cx.number(v, &format!("{what} is a positive number"))?;
    if x <= 0.0 {
        cx.out_of_range(
            v.span,
            format!("{what} must be positive, got {x}"),
            "must be > 0",
            &format!("{what} is a positive number, e.g. 0.1"),
        );
        return None;
    }
    Some(x)
}

fn half_open_unit(cx: &mut Cx, v: &Value, what: &str) -> Option<f64> {
    let x = cx.number(v, &format!("{what} is a number in [0, 1)"))?;
    if !(0.0..1.0).contains(&x) {
        cx.out_of_range(
            v.span,
            format!("{what} must be in [0, 1), got {x}"),
            "outside [0, 1)",
            &format!("{what} is a number in [0, 1), e.g. 0.9"),
        );
        return None;
    }
    Some(x)
}

fn contrast(cx: &mut Cx, v: &Value, what: &str) -> Option<f64> {
    cx.number_in(v, what, 0.0, 1.0, "contrasts are proportions in [0, 1]")
}

fn size(cx: &mut Cx, f: &Fields<'_>) -> Option<u32> {
    f.get("size").map_or(Some(DEFAULT_SIZE), |v| {
        cx.whole(v, "size", 1, 4096).map(|x| x as u32)
    })
}

fn normalize(cx: &mut Cx, v: Option<&Value>) -> Option<Normalize> {
    let imagenet = Normalize::MeanStd {
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    };
    let Some(v) = v else { return Some(imagenet) };
    match &v.kind {
        ValueKind::Ident(w) if w == "imagenet" => Some(imagenet),
        ValueKind::Ident(w) if w == "none" => Some(Normalize::Off),
        ValueKind::Ident(w) => {
            cx.unknown_value(
                v.span,
                "normalisation",
                w,
                &["imagenet", "none", "custom(mean: […], std: […])"],
            );
            None
        }
        ValueKind::Call { name, args } if name.text == "custom" => {
            let slots = cx.args(name, args, &[], &["mean", "std"])?;
            let mut triple =
                |slot: Option<&Value>, what: &str, min_excl: Option<f64>| -> Option<[f64; 3]> {
                    let Some(v) = slot else {
                        cx.missing_arg(name, v.span, what, &[], &["mean", "std"]);
                        return None;
                    };
                    let ValueKind::List(items) = &v.kind else {
                        cx.wrong_type(
                            v,
                            "a list of three numbers (R, G, B)",
                            "e.g. `mean: [0.5, 0.5, 0.5]`",
                        );
                        return None;
                    };
                    if items.len() != 3 {
                        cx.wrong_type(
                            v,
                            "a list of three numbers (R, G, B)",
                            "one number per channel",
                        );
                        return None;
                    }
                    let mut out = [0.0; 3];
                    for (o, item) in out.iter_mut().zip(items) {
                        let x = cx.number(item, "channel values are numbers")?;
                        if min_excl.is_some_and(|m| x <= m) {
                            cx.out_of_range(
                                item.span,
                                format!("std must be positive, got {x}"),
                                "must be > 0",
                                "a standard deviation is positive",
                            );
                            return None;
                        }
                        *o = x;
                    }
                    Some(out)
                };
            let mean = triple(slots[0], "mean", None);
            let std = triple(slots[1], "std", Some(0.0));
            Some(Normalize::MeanStd {
                mean: mean?,
                std: std?,
            })
        }
        ValueKind::Call { name, .. } => {
            unknown_function(cx, name, &["custom"]);
            None
        }
        _ => {
            cx.wrong_type(
                v,
                "`imagenet`, `none` or `custom(…)`",
                "normalisation is applied after the contrast manipulation",
            );
            None
        }
    }
}

fn unknown_function(cx: &mut Cx, name: &Name, known: &[&str]) {
    let mut help = format!("here you can use: {}", known.join(", "));
    if let Some(s) = suggest(&name.text, known.iter().copied()) {
        help = format!("did you mean `{s}`? {help}");
    }
    cx.push(
        Diag::error(
            Code::PlanUnknownFunction,
            format!("no function `{}` here", name.text),
        )
        .at(name.span, "unknown function")
        .with_help(help),
    );
}

fn train(cx: &mut Cx, b: &Block) -> Option<Train> {
    label_choice(cx, b, "training stimuli", &[("shapes", ())])?;
    let f = Fields::new(cx, b, TRAIN_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let size = size(cx, &f);
    let samples = f
        .get("samples")
        .map_or(Some(1000), |v| cx.whole(v, "samples", 1, 100_000_000));
    let shapes = match f.get("shapes") {
        None => Some(vec![Shape::Circle, Shape::Ellipse, Shape::Rectangle]),
        Some(v) => match &v.kind {
            ValueKind::List(items) if items.is_empty() => {
                empty_list(
                    cx,
                    v,
                    "shapes",
                    "e.g. `shapes [circle, ellipse, rectangle]`",
                );
                None
            }
            ValueKind::List(items) => {
                let choices = [
                    ("circle", Shape::Circle),
                    ("ellipse", Shape::Ellipse),
                    ("rectangle", Shape::Rectangle),
                ];
                let all: Vec<Option<Shape>> = items
                    .iter()
                    .map(|i| cx.choice(i, "shape", &choices))
                    .collect();
                all.into_iter().collect()
            }
            _ => {
                cx.wrong_type(
                    v,
                    "a list of shapes",
                    "e.g. `shapes [circle, ellipse, rectangle]`",
                );
                None
            }
        },
    };
    let background = f.get("background").map_or(Some(128.0 / 255.0), |v| {
        cx.number_in(
            v,
            "background",
            0.0,
            1.0,
            "the background grey level is in [0, 1]; the tutorial's is 128/255",
        )
    });
    let contrast = match f.get("contrast") {
        None => Some(Uniform { lo: 0.04, hi: 1.0 }),
        Some(v) => uniform(cx, v),
    };
    let normalize = normalize(cx, f.get("normalize"));
    Some(Train {
        size: size?,
        samples: samples? as u32,
        shapes: shapes?,
        background: background?,
        contrast: contrast?,
        normalize: normalize?,
    })
}

fn empty_list(cx: &mut Cx, v: &Value, what: &str, help: &str) {
    cx.push(
        Diag::error(Code::PlanEmptyList, format!("`{what}` is empty"))
            .at(v.span, "needs at least one value")
            .with_help(help.to_string()),
    );
}

fn uniform(cx: &mut Cx, v: &Value) -> Option<Uniform> {
    let ValueKind::Call { name, args } = &v.kind else {
        cx.wrong_type(
            v,
            "a distribution",
            "write e.g. `contrast uniform(0.04, 1.0)`",
        );
        return None;
    };
    if name.text != "uniform" {
        unknown_function(cx, name, &["uniform"]);
        return None;
    }
    let slots = cx.args(name, args, &["lo", "hi"], &[])?;
    let (Some(lo_v), Some(hi_v)) = (slots[0], slots[1]) else {
        cx.missing_arg(
            name,
            v.span,
            if slots[0].is_none() { "lo" } else { "hi" },
            &["lo", "hi"],
            &[],
        );
        return None;
    };
    let lo = contrast(cx, lo_v, "the lowest contrast");
    let hi = contrast(cx, hi_v, "the highest contrast");
    let (lo, hi) = (lo?, hi?);
    if lo >= hi {
        cx.push(
            Diag::error(
                Code::PlanEmptyRange,
                format!("uniform({lo}, {hi}) is empty"),
            )
            .at(v.span, "lower end must be below the upper end")
            .with_help("write the lower contrast first, e.g. `uniform(0.04, 1.0)`"),
        );
        return None;
    }
    Some(Uniform { lo, hi })
}

fn test(cx: &mut Cx, b: &Block) -> Option<Test> {
    label_choice(cx, b, "test stimuli", &[("gratings", ())])?;
    let f = Fields::new(cx, b, TEST_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let size = size(cx, &f);
    let frequencies = match (f.get("frequencies"), size) {
        (None, Some(s)) => Some(
            divisors(u64::from(s), u64::from(s) / 2)
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        ),
        (None, None) => None,
        (Some(v), _) => numbers(cx, v, "frequencies", "cycles per image"),
    };
    if let (Some(freqs), Some(size), Some(v)) = (&frequencies, size, f.get("frequencies")) {
        let nyquist = f64::from(size) / 2.0;
        let bad: Vec<String> = freqs
            .iter()
            .filter(|x| **x <= 0.0 || **x > nyquist)
            .map(|x| fmt_num(*x))
            .collect();
        if !bad.is_empty() {
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
    }
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

/// Longest list a generator may produce.
const MAX_VALUES: usize = 10_000;

/// A list of plain numbers, or a generator (`divisors`, `steps`, `logspace`).
fn numbers(cx: &mut Cx, v: &Value, what: &str, unit: &str) -> Option<Vec<f64>> {
    let out = match &v.kind {
        ValueKind::List(items) => {
            let xs: Vec<Option<f64>> = items
                .iter()
                .map(|i| cx.number(i, &format!("{what} are numbers ({unit})")))
                .collect();
            xs.into_iter().collect::<Option<Vec<f64>>>()?
        }
        ValueKind::Call { name, args } => match name.text.as_str() {
            "divisors" => {
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
                divisors(n, max).into_iter().map(|x| x as f64).collect()
            }
            "steps" => match steps(cx, name, v.span, args)? {
                (xs, false) => xs,
                (_, true) => {
                    cx.wrong_type(
                        v,
                        "numbers",
                        &format!("{what} are plain numbers ({unit}), without a unit"),
                    );
                    return None;
                }
            },
            "logspace" => {
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
                (0..n)
                    .map(|i| match i {
                        0 => lo_x,
                        _ if i == n - 1 => hi_x,
                        _ => (a + (b - a) * i as f64 / (n - 1) as f64).exp(),
                    })
                    .collect()
            }
            _ => {
                unknown_function(cx, name, &["divisors", "steps", "logspace"]);
                return None;
            }
        },
        ValueKind::Number(x) => vec![*x],
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
    Some(out)
}

/// A list of angles, or `steps` over angles.
fn angles(cx: &mut Cx, v: &Value, what: &str) -> Option<Vec<f64>> {
    let help = format!(
        "{what} are angles with a unit, e.g. `[0deg, 90deg]` or `steps(0deg, 180deg, 15deg)`"
    );
    let out = match &v.kind {
        ValueKind::List(items) => {
            let mut xs = Vec::with_capacity(items.len());
            let mut ok = true;
            for i in items {
                match i.kind {
                    ValueKind::Angle(a) => xs.push(a),
                    ValueKind::Number(_) => {
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
    Some(out)
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
    let n = if inclusive {
        (ratio + eps).floor() as i64 + 1
    } else {
        (ratio - eps).ceil() as i64
    };
    if n < 1 || n as usize > MAX_VALUES {
        cx.out_of_range(
            span,
            format!("`steps` would make {n} values"),
            "too many values",
            &format!("at most {MAX_VALUES} values"),
        );
        return None;
    }
    Some(((0..n).map(|i| a0 + s0 * i as f64).collect(), ua))
}

/// Divisors of n up to max, ascending.
fn divisors(n: u64, max: u64) -> Vec<u64> {
    (1..=n.min(max)).filter(|d| n % d == 0).collect()
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn staircase(cx: &mut Cx, b: &Block) -> Option<Staircase> {
    label_choice(cx, b, "staircase", &[("bisection", ())])?;
    let f = Fields::new(cx, b, BISECTION_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    let range = match f.get("range") {
        None => Some((0.0, 1.0)),
        Some(v) => match &v.kind {
            ValueKind::Range(lo, hi) => {
                let l = contrast(cx, lo, "the range's lower end");
                let h = contrast(cx, hi, "the range's upper end");
                match (l, h) {
                    (Some(l), Some(h)) if l >= h => {
                        cx.push(
                            Diag::error(
                                Code::PlanEmptyRange,
                                format!("the range {l}..{h} is empty"),
                            )
                            .at(v.span, "lower end must be below the upper end")
                            .with_help("write e.g. `range 0.0..1.0`"),
                        );
                        None
                    }
                    (l, h) => l.zip(h),
                }
            }
            _ => {
                cx.wrong_type(v, "a range", "write e.g. `range 0.0..1.0`");
                None
            }
        },
    };
    let start = match (f.get("start"), range) {
        (None, Some((l, h))) => Some((l + h) / 2.0),
        (None, None) => None,
        (Some(v), r) => {
            let s = contrast(cx, v, "the start contrast")?;
            if let Some((l, h)) = r {
                if s <= l || s >= h {
                    let mut d = Diag::error(Code::PlanOutOfRange, format!("start {s} is not inside the range {l}..{h}"))
                        .at(v.span, "outside the search range")
                        .with_help("bisection starts strictly inside its range; the tutorial starts at the middle");
                    if let Some(r) = f.get("range") {
                        d = d.also(r.span, "the range");
                    }
                    cx.push(d);
                    return None;
                }
            }
            Some(s)
        }
    };
    let target = f.get("target").map_or(Some(0.75), |v| {
        let x = cx.number(v, "target is a proportion correct in (0.5, 1)")?;
        if x <= 0.5 || x >= 1.0 {
            cx.out_of_range(
                v.span,
                format!("a 2AFC target must lie strictly between chance (0.5) and 1, got {x}"),
                "outside (0.5, 1)",
                "in two-alternative forced choice chance is 0.5; 0.75 is the usual threshold",
            );
            return None;
        }
        Some(x)
    });
    let tolerance = f
        .get("tolerance")
        .map_or(Some(1e-4), |v| positive(cx, v, "tolerance"));
    let max_steps = f
        .get("max_steps")
        .map_or(Some(20), |v| cx.whole(v, "max_steps", 1, 10_000));
    let (low, high) = range?;
    Some(Staircase::Bisection {
        start: start?,
        low,
        high,
        target: target?,
        tolerance: tolerance?,
        max_steps: max_steps? as u32,
    })
}

#[allow(clippy::too_many_arguments)]
fn derive(
    cx: &mut Cx,
    exp: &Block,
    sections: &[(&str, &Block)],
    bb: &BackboneOut,
    probe: &Probe,
    train: &Train,
    test: &Test,
    staircase: &Staircase,
) -> Option<Derived> {
    let _ = probe;
    let intervals: u32 = if test.target_interval == TargetInterval::Both {
        2
    } else {
        1
    };
    let trials = (test.orientations.len() * test.phases.len()) as u64 * u64::from(intervals);
    let Staircase::Bisection { max_steps, .. } = staircase;
    let mut derived = Derived {
        cut_shape: None,
        feature_shape: None,
        features_per_image: None,
        probe_inputs: None,
        probe_parameters: None,
        trials_per_level: u32::try_from(trials).unwrap_or(u32::MAX),
        max_levels_per_frequency: max_steps.saturating_add(1),
        train_images_per_epoch: 2 * u64::from(train.samples),
    };
    // A TorchScript module's shapes are known only once it is loaded (at run time).
    let Network::Catalog(net) = &bb.plan.network else {
        return Some(derived);
    };
    let (arch, cut) = (net.arch, net.cut.as_str());
    let size_span = |name: &str| -> Span {
        sections
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, b)| {
                b.settings()
                    .find(|s| s.key.text == "size")
                    .map(|s| s.value.span)
            })
            .or_else(|| {
                sections
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, b)| b.keyword.span)
            })
            .unwrap_or(exp.keyword.span)
    };
    let shape_at = |cx: &mut Cx, size: u32, which: &str| -> Option<Vec<u32>> {
        match catalog::output_shape(arch, cut, size) {
            Ok(s) => Some(s),
            Err(ShapeError::TooSmall { module, min_input }) => {
                cx.push(
                    Diag::error(
                        Code::PlanInputTooSmall,
                        format!(
                            "{size} px {which} images are too small to reach `{}` of {arch}",
                            cut
                        ),
                    )
                    .at(size_span(which), format!("{size} px"))
                    .also(bb.cut_span, "cut here")
                    .with_help(format!(
                        "the feature map vanishes at `{module}`; use at least {min_input} px"
                    )),
                );
                None
            }
            Err(ShapeError::UnknownLayer) => None,
        }
    };
    let cut_shape = shape_at(cx, train.size, "train");
    let test_shape = if test.size == train.size {
        cut_shape.clone()
    } else {
        shape_at(cx, test.size, "test")
    };
    let cut_shape = cut_shape?;
    let test_shape = test_shape?;
    let pool = |cx: &mut Cx, shape: &[u32]| -> Option<Vec<u32>> {
        match bb.plan.pooling {
            Pooling::Off => Some(shape.to_vec()),
            Pooling::Avg { h, w } | Pooling::Max { h, w } => {
                let span = bb.pooling_span.unwrap_or(bb.cut_span);
                if shape.len() != 3 {
                    cx.push(
                        Diag::error(Code::PlanIncompatible, format!("`{}` outputs a flat vector of {} values; there is nothing spatial to pool", cut, shape[0]))
                            .at(span, "pooling needs a feature map")
                            .also(bb.cut_span, "flat output")
                            .with_help("use `pooling none`, or cut at a convolutional layer"),
                    );
                    return None;
                }
                if h > shape[1] || w > shape[2] {
                    cx.push(
                        Diag::error(
                            Code::PlanPoolingTooLarge,
                            format!(
                                "pooling to {h}x{w} is larger than the {}x{} feature map of `{}`",
                                shape[1], shape[2], cut
                            ),
                        )
                        .at(span, format!("{h}x{w}"))
                        .also(
                            bb.cut_span,
                            format!("{}x{}x{} here", shape[0], shape[1], shape[2]),
                        )
                        .with_help(format!(
                            "adaptive pooling reduces; use at most {}x{}",
                            shape[1], shape[2]
                        )),
                    );
                    return None;
                }
                Some(vec![shape[0], h, w])
            }
        }
    };
    let feature_shape = pool(cx, &cut_shape)?;
    let test_features = if test_shape == cut_shape {
        feature_shape.clone()
    } else {
        pool(cx, &test_shape)?
    };
    if test_features != feature_shape {
        cx.push(
            Diag::error(
                Code::PlanIncompatible,
                format!("train ({} px) and test ({} px) images give different feature shapes ({} vs {})", train.size, test.size, dims(&feature_shape), dims(&test_features)),
            )
            .at(size_span("test"), format!("{} px", test.size))
            .also(size_span("train"), format!("{} px", train.size))
            .with_help("use the same size for both, or adaptive pooling (`pooling avg 4x4`) so the probe sees a fixed shape"),
        );
        return None;
    }
    derived.set_shapes(cut_shape, feature_shape);
    Some(derived)
}

fn dims(s: &[u32]) -> String {
    s.iter().map(u32::to_string).collect::<Vec<_>>().join("×")
}

fn warnings(
    cx: &mut Cx,
    sections: &[(&str, &Block)],
    test: &Test,
    staircase: &Staircase,
    derived: &Derived,
) {
    let block = |name: &str| sections.iter().find(|(k, _)| *k == name).map(|(_, b)| *b);
    let setting_span = |b: Option<&Block>, key: &str| -> Option<Span> {
        let b = b?;
        b.settings()
            .find(|s| s.key.text == key)
            .map(|s| s.value.span)
            .or(Some(b.keyword.span))
    };
    let test_b = block("test");
    if test.target_interval != TargetInterval::Both {
        let which = if test.target_interval == TargetInterval::First {
            "first"
        } else {
            "second"
        };
        let mut d = Diag::warning(Code::PlanConstantTarget, format!("the grating is always in the {which} interval"))
            .with_help(format!(
                "a probe that always answers \"{which}\" scores 100% here whatever it sees; use `target_interval both` to counterbalance (keep `{which}` only to reproduce the tutorial)"
            ));
        if let Some(s) = setting_span(test_b, "target_interval") {
            d = d.at(s, "the correct answer never changes");
        }
        cx.push(d);
    }
    let Staircase::Bisection {
        target,
        tolerance,
        max_steps,
        ..
    } = *staircase;
    let n = derived.trials_per_level.max(1);
    let (best_k, gap) = (0..=n)
        .map(|k| (k, (f64::from(k) / f64::from(n) - target).abs()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 1.0));
    if gap >= tolerance {
        let sc = block("staircase");
        let mut d = Diag::warning(
            Code::PlanToleranceUnreachable,
            format!("the staircase tolerance {tolerance} can never be met with {n} trials per level"),
        )
        .with_help(format!(
            "accuracy moves in steps of 1/{n}; the nearest to the target {target} is {best_k}/{n} = {:.4}, {gap:.4} away, so every staircase runs all {} evaluations and stops on max_steps. Raise tolerance above {gap:.4}, or change the number of trials (orientations × phases × intervals)",
            f64::from(best_k) / f64::from(n),
            max_steps + 1
        ));
        if let Some(s) = setting_span(sc, "tolerance") {
            d = d.at(s, "unreachable");
        }
        cx.push(d);
    }
    // θ and θ+180° draw the same grating when the phases are symmetric (cos is even).
    let norm = |a: f64| a.rem_euclid(360.0);
    let close = |a: f64, b: f64| {
        let d = (norm(a) - norm(b)).abs();
        d < 1e-9 || (360.0 - d) < 1e-9
    };
    let symmetric = test
        .phases
        .iter()
        .all(|p| test.phases.iter().any(|q| close(*q, -p)));
    if symmetric {
        let pairs: Vec<String> = test
            .orientations
            .iter()
            .enumerate()
            .flat_map(|(i, a)| test.orientations[i + 1..].iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| close(*a + 180.0, *b) || close(*a, *b))
            .map(|(a, b)| format!("{}° and {}°", fmt_num(a), fmt_num(b)))
            .collect();
        if !pairs.is_empty() {
            let mut d = Diag::warning(Code::PlanDuplicateStimuli, format!("orientations {} draw the same grating", pairs.join(", ")))
                .with_help("a grating at θ + 180° with phase −φ is the grating at θ with phase φ, so these trials count one stimulus twice; use `steps(0deg, 180deg, 15deg)` (180° excluded), or keep it to reproduce the tutorial");
            if let Some(s) = setting_span(test_b, "orientations") {
                d = d.at(s, "duplicate orientations");
            }
            cx.push(d);
        }
    }
}
