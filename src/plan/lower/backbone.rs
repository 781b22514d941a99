//! The `backbone` block: a catalog network (architecture, `weights`, `cut`) or a
//! TorchScript module, with `pooling` and `batchnorm`.

use super::read::{header, reject_blocks, HOMES};
use crate::diag::{Code, Diag, Span};
use crate::models::catalog::{self, Arch};
use crate::plan::spans::Setting;
use crate::plan::types::{
    Backbone, BatchNorm, CatalogNet, Network, Pooling, TokenReadout, Weights,
};
use crate::plan::values::{missing, suggest, Cx, Fields};
use crate::syntax::ast::{Block, Value, ValueKind};

pub(super) const BACKBONE_SETTINGS: &[&str] = &["weights", "cut", "pooling", "batchnorm", "tokens"];

/// The backbone with the spans later checks point at.
pub(super) struct BackboneOut {
    /// The backbone as the plan holds it.
    pub(super) plan: Backbone,
    /// The `cut` (a TorchScript backbone's label; the keyword when `cut` is missing).
    pub(super) cut_span: Span,
    /// The `pooling` setting, if written.
    pub(super) pooling_span: Option<Span>,
    /// The `tokens` setting, if written.
    pub(super) tokens_span: Option<Span>,
}

/// The settings every backbone has, each `None` when unusable (already reported).
struct Common<'a> {
    f: Fields<'a>,
    /// The label (`resnet50`, `torchscript "net.pt"`), else the keyword.
    label_span: Span,
    pooling: Option<Pooling>,
    batchnorm: Option<BatchNorm>,
    /// `tokens cls | mean | map` (`Some(None)` when not written; `None` when unusable).
    tokens: Option<Option<TokenReadout>>,
}

impl Common<'_> {
    fn pooling_span(&self) -> Option<Span> {
        self.f.get("pooling").map(|v| v.span)
    }
}

/// What the label says the network is.
enum Kind {
    /// `backbone ARCH` (or no label, reported later).
    Catalog,
    /// `backbone torchscript "FILE"`.
    Script(String),
}

pub(super) fn lower(cx: &mut Cx, b: &Block) -> Option<BackboneOut> {
    let f = Fields::new(cx, b, BACKBONE_SETTINGS, HOMES);
    reject_blocks(cx, b, &[]);
    cx.spans.record(Setting::Backbone, header(b));
    cx.spans.record(
        Setting::Weights,
        f.get("weights").map_or(header(b), |v| v.span),
    );
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
    let tokens = match f.get("tokens") {
        None => Some(None),
        Some(v) => cx
            .choice(
                v,
                "token read-out",
                &[
                    ("cls", TokenReadout::Cls),
                    ("mean", TokenReadout::Mean),
                    ("map", TokenReadout::Map),
                ],
            )
            .map(Some),
    };
    let common = Common {
        f,
        label_span: b.label.as_ref().map_or(b.keyword.span, |l| l.span),
        pooling,
        batchnorm,
        tokens,
    };
    match kind(cx, b, common.label_span)? {
        Kind::Script(file) => torchscript(cx, &common, file),
        Kind::Catalog => catalog_net(cx, b, &common),
    }
}

/// The label's kind; `None` for a TorchScript label without a usable file (reported).
fn kind(cx: &mut Cx, b: &Block, label_span: Span) -> Option<Kind> {
    match b.label.as_ref().map(|l| &l.kind) {
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
            // A missing file is an error of its own; the block's other settings are still
            // checked.
            cx.file_readable(arg.span, file, "TorchScript file");
            Some(Kind::Script(file.clone()))
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
            None
        }
        _ => Some(Kind::Catalog),
    }
}

/// `backbone torchscript "FILE"`: the module is already cut and carries its weights.
fn torchscript(cx: &mut Cx, common: &Common<'_>, file: String) -> Option<BackboneOut> {
    let f = &common.f;
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
                .also(common.label_span, "this backbone")
                .with_help(format!(
                    "remove `{key}`; to use another cut or other weights, export the module again (see docs/language.md, TorchScript backbones)"
                )),
            );
        }
    }
    if f.get("weights").is_some() || f.get("cut").is_some() {
        return None;
    }
    Some(BackboneOut {
        cut_span: common.label_span,
        pooling_span: common.pooling_span(),
        tokens_span: common.f.get("tokens").map(|v| v.span),
        plan: Backbone {
            network: Network::TorchScript { file },
            pooling: common.pooling?,
            batchnorm: common.batchnorm?,
            tokens: common.tokens?,
            sidecar: None,
        },
    })
}

/// `backbone ARCH { weights … cut … }`: a network of the catalog.
fn catalog_net(cx: &mut Cx, b: &Block, common: &Common<'_>) -> Option<BackboneOut> {
    let f = &common.f;
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
    // CLIP's encoders expect CLIP's normalisation: the default of every `normalize`.
    if arch
        .is_some_and(|a| crate::models::catalog::family(a) == crate::models::catalog::Family::Clip)
    {
        cx.normalize = Some(crate::plan::Normalize::MeanStd {
            mean: super::CLIP_MEAN,
            std: super::CLIP_STD,
        });
    }
    let weights = match f.get("weights") {
        None => {
            // The usual weights of the architecture, once it is known.
            let usual = arch.map_or("imagenet", |a| crate::hub::usual_weights(a).0);
            missing(cx, b, "weights", &format!("weights {usual}"));
            None
        }
        Some(v) => arch.and_then(|a| weights(cx, a, v)),
    };
    let cut_v = f.get("cut");
    if cut_v.is_none() {
        missing(cx, b, "cut", "cut layer2");
    }
    let cut = match (arch, cut_v) {
        (Some(a), Some(v)) => cut(cx, a, common.label_span, v),
        _ => None,
    };
    // Whether `tokens` fits the cut is checked with the shapes (see derive.rs).
    let (arch, weights, cut) = (arch?, weights?, cut?);
    let (pooling, batchnorm, tokens) = (common.pooling?, common.batchnorm?, common.tokens?);
    if batchnorm == BatchNorm::Train && !arch.has_batchnorm() {
        no_batchnorm(cx, b, common, arch);
        return None;
    }
    Some(BackboneOut {
        cut_span: cut_v.map_or(b.keyword.span, |v| v.span),
        pooling_span: common.pooling_span(),
        tokens_span: f.get("tokens").map(|v| v.span),
        plan: Backbone {
            network: Network::Catalog(CatalogNet { arch, weights, cut }),
            pooling,
            batchnorm,
            tokens,
            sidecar: None,
        },
    })
}

fn no_batchnorm(cx: &mut Cx, b: &Block, common: &Common<'_>, arch: Arch) {
    let d = Diag::error(
        Code::PlanIncompatible,
        format!("`{arch}` has no BatchNorm layers"),
    )
    .at(
        common.f.get("batchnorm").map_or(b.keyword.span, |v| v.span),
        "`batchnorm train` has nothing to act on",
    )
    .also(common.label_span, "this backbone")
    .with_help(
        "remove `batchnorm train`, or pick an architecture with BatchNorm (resnet*, vgg*_bn)",
    );
    cx.push(d);
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

/// torchvision's weight sets of an architecture: those of the hub table (`src/hub.rs`, the one
/// list, written by `scripts/hub_table.py`), in its order.
fn weight_sets(arch: Arch) -> Vec<&'static str> {
    crate::hub::TABLE
        .iter()
        .filter(|w| w.arch == arch)
        .map(|w| w.set)
        .collect()
}

fn weights(cx: &mut Cx, arch: Arch, v: &Value) -> Option<Weights> {
    let sets = weight_sets(arch);
    // `imagenet` for torchvision's networks, `openai` for CLIP's, `dinov2` for DINOv2's.
    let (usual, usual_set) = crate::hub::usual_weights(arch);
    let publisher = match usual {
        "imagenet" => "a torchvision",
        "openai" => "an OpenAI",
        _ => "a Meta",
    };
    let help = format!(
        "weights are `random`, `{usual}` (= {usual_set}), {publisher} set of {arch} ({}), or a file path in quotes",
        sets.join(", ")
    );
    match &v.kind {
        ValueKind::Str(path) => {
            let ok = [".pth", ".pt", ".safetensors", ".ckpt", ".bin"]
                .iter()
                .any(|ext| path.to_ascii_lowercase().ends_with(ext));
            let always = ["random", usual];
            let named = always
                .iter()
                .chain(&sets)
                .find(|n| n.eq_ignore_ascii_case(path));
            if let Some(named) = named {
                cx.push(
                    Diag::error(
                        Code::PlanUnknownValue,
                        format!("`\"{path}\"` is quoted, so it is read as a file path"),
                    )
                    .at(v.span, "a file path, not a named weight set")
                    .with_help(format!(
                        "named weight sets are written without quotes: `weights {named}`; a quoted string is the path of a weights file (`weights \"nets/my_resnet.pth\"`)"
                    )),
                );
                return None;
            }
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
            cx.file_readable(v.span, path, "weights file");
            Some(Weights::File(path.clone()))
        }
        ValueKind::Ident(w) => match w.as_str() {
            "random" => Some(Weights::Random),
            _ if w == usual => Some(Weights::Torchvision(usual_set.into())),
            _ if sets.contains(&w.as_str()) => Some(Weights::Torchvision(w.clone())),
            _ => {
                let mut choices = vec!["random", usual];
                choices.extend_from_slice(&sets);
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
                ref k if k.as_number().is_some_and(|n| n.fract() == 0.0 && n >= 0.0) => {
                    let n = k.as_number().unwrap_or(0.0) as u64;
                    (n, n)
                }
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
