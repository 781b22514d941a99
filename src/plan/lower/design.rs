//! An experiment described by its parts (issue 12): the `display`, `stimulus`, `task`,
//! `level` blocks, the `readout`, `level` and `axis` settings and a `train` section
//! without `shapes`, lowered to a [`Design`]. Each stimulus parameter is checked against
//! its kind's table ([`StimulusKind::params`]), defaults written in.

use super::read::{normalize, reject_blocks, size, HOMES};
use crate::diag::{Code, Diag, Span};
use crate::plan::design::*;
use crate::plan::values::{suggest, Cx, Fields, LevelDomain};
use crate::syntax::ast::{Block, SymExpr, Value, ValueKind};
use std::collections::BTreeMap;

/// The blocks only an experiment described by its parts has.
pub(super) const DESIGN_BLOCKS: &[&str] = &["display", "stimulus", "task", "level"];
/// The experiment's own settings such an experiment adds (`readout cosine`, `axis
/// frequency [2, 4]`, `level contrast`).
pub(super) const DESIGN_SETTINGS: &[&str] = &["readout", "level", "axis"];
/// `display { … }`.
pub(super) const DISPLAY_SETTINGS: &[&str] = &["size", "background", "normalize"];
/// `task KIND { … }`.
pub(super) const TASK_SETTINGS: &[&str] = &["stimuli", "answer", "intervals", "position"];
/// `train { … }` of such an experiment (and a nested `task`).
pub(super) const DESIGN_TRAIN_SETTINGS: &[&str] = &["samples", "level"];
/// The task kinds, as written.
const TASK_KINDS: &[(&str, TaskKind)] = &[
    ("2afc", TaskKind::TwoAfc),
    ("nafc", TaskKind::Nafc),
    ("oddity", TaskKind::Oddity),
    ("same_different", TaskKind::SameDifferent),
    ("yes_no", TaskKind::YesNo),
];
const READOUTS: &[(&str, Readout)] = &[
    ("probe", Readout::Probe),
    ("cosine", Readout::Distance(Metric::Cosine)),
    ("l1", Readout::Distance(Metric::L1)),
    ("l2", Readout::Distance(Metric::L2)),
    ("dot", Readout::Distance(Metric::Dot)),
];

/// True when the experiment uses any of the new blocks or settings. A `level` setting
/// counts only with a name (`level contrast`): `level 0.75` is the `fit` setting written in
/// the wrong block, and is reported so.
pub(super) fn is_design(exp: &Block) -> bool {
    exp.blocks()
        .any(|b| DESIGN_BLOCKS.contains(&b.keyword.text.as_str()))
        || exp.settings().any(|s| match s.key.text.as_str() {
            "level" => matches!(s.value.kind, ValueKind::Ident(_)),
            k => DESIGN_SETTINGS.contains(&k),
        })
}

/// The design's blocks, as found in the experiment.
pub(super) struct Parts<'a> {
    pub(super) display: Option<&'a Block>,
    pub(super) stimuli: Vec<&'a Block>,
    pub(super) task: Option<&'a Block>,
    pub(super) level: Option<&'a Block>,
}

impl<'a> Parts<'a> {
    /// Collects the design blocks of `exp`, reporting repeated ones.
    pub(super) fn collect(cx: &mut Cx, exp: &'a Block) -> Self {
        let mut p = Parts {
            display: None,
            stimuli: Vec::new(),
            task: None,
            level: None,
        };
        for b in exp.blocks() {
            let slot = match b.keyword.text.as_str() {
                "stimulus" => {
                    p.stimuli.push(b);
                    continue;
                }
                "display" => &mut p.display,
                "task" => &mut p.task,
                "level" => &mut p.level,
                _ => continue,
            };
            if let Some(first) = slot {
                cx.push(
                    Diag::error(
                        Code::PlanDuplicateBlock,
                        format!("`{}` appears twice", b.keyword.text),
                    )
                    .at(b.keyword.span, "second block")
                    .also(first.keyword.span, "first block")
                    .with_help("merge them into one block"),
                );
            } else {
                *slot = Some(b);
            }
        }
        p
    }
}

/// What the rest of lowering needs besides the design.
pub(super) struct DesignOut {
    pub(super) design: Design,
    /// Whether the level is an angle, a plain number (the staircase reads its values so).
    pub(super) domain: LevelDomain,
}

/// The settings of the experiment block a design reads.
pub(super) struct TopSettings<'a> {
    pub(super) readout: Option<&'a Value>,
    pub(super) level: Option<&'a Value>,
    pub(super) axis: Option<&'a Value>,
}

/// Lowers the design. `probe` is the `probe` block if written, `train` the `train` section.
pub(super) fn lower(
    cx: &mut Cx,
    exp: &Block,
    parts: &Parts<'_>,
    top: &TopSettings<'_>,
    probe: Option<&Block>,
    train: Option<&Block>,
) -> Option<DesignOut> {
    // display
    let (size, background, norm) = match parts.display {
        Some(b) => {
            reject_blocks(cx, b, &[]);
            if let Some(l) = &b.label {
                cx.wrong_type(l, "nothing", "write `display { size 224 }`");
            }
            let f = Fields::new(cx, b, DISPLAY_SETTINGS, HOMES);
            let size = size(cx, &f);
            let background = f.get("background").map_or(Some(0.5), |v| {
                cx.number_in(
                    v,
                    "background",
                    0.0,
                    1.0,
                    "the background is a grey level in [0, 1]",
                )
            });
            (size, background, normalize(cx, f.get("normalize")))
        }
        None => (Some(super::DEFAULT_SIZE), Some(0.5), normalize(cx, None)),
    };
    let size = size?;

    // stimuli
    let mut stimuli: Vec<(StimulusSpec, Span, BTreeMap<String, Span>)> = Vec::new();
    let mut stimuli_ok = true;
    // Every name declared, also of stimuli with errors (reported once, where they are).
    let declared = declared_names(&parts.stimuli);
    for (i, b) in parts.stimuli.iter().enumerate() {
        let earlier = declared_names(&parts.stimuli[..i]);
        match stimulus(cx, b, size, &stimuli, &earlier) {
            Some(s) => stimuli.push(s),
            None => stimuli_ok = false,
        }
    }
    if parts.stimuli.is_empty() {
        cx.push(
            Diag::error(Code::PlanMissingBlock, "the experiment has no `stimulus` block")
                .at(exp.keyword.span, "no stimulus in this experiment")
                .with_help("declare the task's two stimuli, e.g. `stimulus reference gabor { contrast 0.5 }` and `stimulus target gabor { like reference  orientation level }`"),
        );
        return None;
    }
    let names = declared;

    // readout
    let readout = match top.readout {
        Some(v) => cx.choice(v, "readout", READOUTS),
        None => Some(Readout::Probe),
    };

    // task
    let Some(task_block) = parts.task else {
        cx.push(
            Diag::error(Code::PlanMissingBlock, "the experiment has no `task` block")
                .at(exp.keyword.span, "`task` missing in this experiment")
                .with_help("add e.g. `task 2afc { stimuli [reference, target] }`"),
        );
        return None;
    };
    let task = task(cx, task_block, &names);

    // train
    let readout_v = readout?;
    let design_train = match (readout_v, train) {
        (Readout::Probe, Some(b)) => design_train(cx, b, &names),
        (Readout::Probe, None) => {
            cx.push(
                Diag::error(Code::PlanMissingBlock, "the experiment has no `train` block")
                    .at(exp.keyword.span, "`train` missing in this experiment")
                    .with_help("a probe readout trains on trials: add e.g. `train { samples 1000  level loguniform(0.01, 1) }`, or use a training-free readout (`readout cosine`)"),
            );
            None
        }
        (Readout::Distance(m), Some(b)) => {
            // Ignored, so that `--set readout=cosine` works on an experiment with a probe.
            let mut d = Diag::warning(
                Code::PlanUnusedTraining,
                format!(
                    "`readout {}` needs no training: the `train` block is ignored",
                    m.name()
                ),
            )
            .at(b.keyword.span, "unused training")
            .with_help(
                "remove the `train` block, or write `readout probe` to train a linear probe",
            );
            if let Some(v) = top.readout {
                d = d.also(v.span, "a training-free readout");
            }
            cx.push(d);
            Some(None)
        }
        (Readout::Distance(_), None) => Some(None),
    };
    if let (Readout::Distance(m), Some(b)) = (readout_v, probe) {
        let mut d = Diag::warning(
            Code::PlanUnusedTraining,
            format!(
                "`readout {}` needs no probe: the `probe` block is ignored",
                m.name()
            ),
        )
        .at(b.keyword.span, "unused probe")
        .with_help("remove the `probe` block, or write `readout probe`");
        if let Some(v) = top.readout {
            d = d.also(v.span, "a training-free readout");
        }
        cx.push(d);
    }
    if let (Readout::Probe, None) = (readout_v, probe) {
        cx.push(
            Diag::error(Code::PlanMissingBlock, "the experiment has no `probe` block")
                .at(exp.keyword.span, "`probe` missing in this experiment")
                .with_help("add e.g. `probe linear { epochs 10 }`, or use a training-free readout (`readout cosine`)"),
        );
        return None;
    }
    let (task, design_train) = (task?, design_train?);
    if !stimuli_ok {
        return None;
    }
    if let Readout::Distance(m) = readout_v {
        readout_serves(cx, &task, m, task_block, top.readout)?;
    }
    if let Some(t) = design_train.as_ref().and_then(|t| t.task.as_ref()) {
        if t.intervals != task.intervals || t.choices() != task.choices() {
            cx.push(
                Diag::error(
                    Code::PlanIncompatible,
                    format!(
                        "the training task has {} intervals and {} answers, the test task {} and {}",
                        t.intervals,
                        t.choices(),
                        task.intervals,
                        task.choices()
                    ),
                )
                .at(task_block.keyword.span, "the test task")
                .with_help("the probe reads every interval and answers with one of the choices: train on a task with the test's intervals and choices"),
            );
            return None;
        }
    }

    // the measured variable
    let find = |name: &str| stimuli.iter().find(|s| s.0.name == name);
    let target = find(&task.target)?;
    let reference = find(&task.reference)?;
    // The first parameter, in the kind's table order, that depends on the level.
    let level_param = target
        .0
        .kind
        .params()
        .iter()
        .map(|p| p.name)
        .find(|k| matches!(target.0.params.get(*k), Some(Param::Value(e)) if e.uses_level()));
    let Some(level_param) = level_param else {
        cx.push(
            Diag::error(
                Code::PlanNothingMeasured,
                format!("no parameter of the target `{}` depends on `level`: nothing is measured", task.target),
            )
            .at(target.1, "the target")
            .with_help("write the measured variable into the target, e.g. `contrast level` or `orientation 45deg + level`"),
        );
        return None;
    };
    let spec = param_spec(target.0.kind, level_param)?;
    let domain = if spec.ty == ParamType::Angle {
        LevelDomain::Angle
    } else {
        LevelDomain::Number
    };
    let default_unit = if spec.ty == ParamType::Angle {
        "deg"
    } else {
        spec.unit
    };
    let level = level_decl(cx, parts.level, top.level, level_param, default_unit)?;

    // the axis
    let Some(axis_v) = top.axis else {
        cx.push(
            Diag::error(Code::PlanMissingSetting, "the experiment has no `axis`")
                .at(exp.keyword.span, "`axis` missing in this experiment")
                .with_help("write the condition the curve is drawn over, e.g. `axis frequency [2, 4, 8, 16]`, and use `axis` in a stimulus parameter (`frequency axis`)"),
        );
        return None;
    };
    let axis_unit = [&target.0, &reference.0]
        .into_iter()
        .flat_map(|s| {
            s.params
                .iter()
                .filter(|(_, p)| matches!(p, Param::Value(e) if e.uses_axis()))
                .filter_map(|(k, _)| param_spec(s.kind, k))
        })
        .next()
        .map_or("", |p| {
            if p.ty == ParamType::Angle {
                "deg"
            } else {
                p.unit
            }
        });
    let axis = axis(cx, axis_v, axis_unit)?;
    if axis.name == level.name {
        let mut d = Diag::error(
            Code::PlanAxisIsLevel,
            format!("the curve's axis and the measured variable are both `{}`", axis.name),
        )
        .at(axis_v.span, "the axis")
        .with_help("the procedure moves the level at each value of the axis: they are two variables. Name the axis after the condition it sweeps (`axis pedestal [0, 0.1]`) and write both in the stimulus (`contrast axis + level`)");
        if let Some(v) = top.level {
            d = d.also(v.span, "the level");
        } else if let Some(b) = parts.level {
            d = d.also(b.keyword.span, "the level");
        }
        cx.push(d);
        return None;
    }
    lists_agree(cx, &task, &stimuli)?;
    if let Some(t) = design_train.as_ref().and_then(|t| t.task.as_ref()) {
        lists_agree(cx, t, &stimuli)?;
    }
    // The training task's target must carry the level too.
    if let Some(t) = design_train.as_ref().and_then(|t| t.task.as_ref()) {
        if let Some(s) = find(&t.target) {
            if !s
                .0
                .params
                .values()
                .any(|p| matches!(p, Param::Value(e) if e.uses_level()))
            {
                cx.push(
                    Diag::error(
                        Code::PlanNothingMeasured,
                        format!("no parameter of the training target `{}` depends on `level`: the training levels would change nothing", t.target),
                    )
                    .at(s.1, "the training target")
                    .with_help("write the level into the training target, e.g. `contrast level`"),
                );
                return None;
            }
        }
    }
    let train = match design_train {
        Some(t) => Some(train_draw(cx, t, domain)?),
        None => None,
    };
    Some(DesignOut {
        design: Design {
            size,
            background: background?,
            normalize: norm?,
            stimuli: stimuli.into_iter().map(|s| s.0).collect(),
            task,
            level,
            axis,
            readout: readout_v,
            train,
        },
        domain,
    })
}

/// The names of `stimulus NAME KIND` blocks.
fn declared_names<'a>(blocks: &[&'a Block]) -> Vec<&'a str> {
    blocks
        .iter()
        .filter_map(|b| match &b.label {
            Some(Value {
                kind: ValueKind::Tagged { tag, .. },
                ..
            }) => Some(tag.text.as_str()),
            _ => None,
        })
        .collect()
}

fn param_spec(kind: StimulusKind, name: &str) -> Option<&'static ParamSpec> {
    kind.params().iter().find(|p| p.name == name)
}

/// One `stimulus NAME KIND { … }`: its spec, the span of its header, and where each
/// written parameter's value is.
#[allow(clippy::type_complexity)]
fn stimulus(
    cx: &mut Cx,
    b: &Block,
    size: u32,
    before: &[(StimulusSpec, Span, BTreeMap<String, Span>)],
    earlier: &[&str],
) -> Option<(StimulusSpec, Span, BTreeMap<String, Span>)> {
    reject_blocks(cx, b, &[]);
    let header = b
        .label
        .as_ref()
        .map_or(b.keyword.span, |l| b.keyword.span.join(l.span));
    let (name, kind_v) = match &b.label {
        Some(Value {
            kind: ValueKind::Tagged { tag, arg },
            ..
        }) if matches!(arg.kind, ValueKind::Ident(_)) => (tag.clone(), arg.as_ref()),
        _ => {
            cx.push(
                Diag::error(
                    Code::PlanWrongType,
                    "a stimulus needs a name and a kind: `stimulus NAME KIND { … }`",
                )
                .at(header, "expected a name and a kind")
                .with_help(format!(
                    "e.g. `stimulus target gabor {{ contrast level }}`; the kinds are: {}",
                    kind_names().join(", ")
                )),
            );
            return None;
        }
    };
    if let Some((first, at, _)) = before.iter().find(|s| s.0.name == name.text) {
        cx.push(
            Diag::error(
                Code::PlanDuplicateBlock,
                format!("two stimuli are called `{}`", name.text),
            )
            .at(name.span, "second stimulus")
            .also(*at, format!("first `{}`", first.name))
            .with_help("give each stimulus its own name"),
        );
        return None;
    }
    let ValueKind::Ident(kind_word) = &kind_v.kind else {
        return None;
    };
    let Some(kind) = StimulusKind::from_name(kind_word) else {
        let names = kind_names();
        let mut help = format!("the stimulus kinds are: {}", names.join(", "));
        if let Some(s) = suggest(kind_word, names.iter().copied()) {
            help = format!("did you mean `{s}`? {help}");
        }
        cx.push(
            Diag::error(
                Code::PlanUnknownStimulusKind,
                format!("unknown stimulus kind `{kind_word}`"),
            )
            .at(kind_v.span, "no such stimulus")
            .with_help(help),
        );
        return None;
    };
    let table = kind.params();
    let mut params: BTreeMap<String, Param> = BTreeMap::new();
    let mut spans: BTreeMap<String, Span> = BTreeMap::new();
    let mut ok = true;
    // `like OTHER` first, whatever its place: the written parameters override it.
    let mut liked = false;
    for s in b.settings().filter(|s| s.key.text == "like") {
        if liked {
            cx.push(
                Diag::error(Code::PlanDuplicateSetting, "`like` is set twice")
                    .at(s.key.span, "set again here")
                    .with_help("a stimulus is like one other stimulus"),
            );
            ok = false;
            continue;
        }
        liked = true;
        let Some(other) = cx.ident(&s.value, "`like` names a stimulus declared above") else {
            ok = false;
            continue;
        };
        match before.iter().find(|o| o.0.name == other) {
            Some((o, at, _)) if o.kind != kind => {
                cx.push(
                    Diag::error(
                        Code::PlanIncompatible,
                        format!(
                            "`{}` is a {} and `{other}` a {}: a stimulus is like one of its own kind",
                            name.text,
                            kind.name(),
                            o.kind.name()
                        ),
                    )
                    .at(s.value.span, "another kind")
                    .also(*at, format!("`{other}`"))
                    .with_help("write the parameters out, or make both the same kind"),
                );
                ok = false;
            }
            Some((o, _, _)) => params = o.params.clone(),
            // Declared above with an error of its own.
            None if earlier.contains(&other) => ok = false,
            None => {
                unknown_stimulus(
                    cx,
                    &s.value,
                    other,
                    before.iter().map(|o| o.0.name.as_str()).collect(),
                    "`like` names a stimulus declared above it",
                );
                ok = false;
            }
        }
    }
    let names: Vec<&str> = table.iter().map(|p| p.name).collect();
    for s in b.settings().filter(|s| s.key.text != "like") {
        let key = s.key.text.as_str();
        let Some(spec) = table.iter().find(|p| p.name == key) else {
            let mut help = format!("a {} has: {}, and `like`", kind.name(), names.join(", "));
            if let Some(sug) = suggest(key, names.iter().copied()) {
                help = format!("did you mean `{sug}`? {help}");
            }
            cx.push(
                Diag::error(
                    Code::PlanUnknownParameter,
                    format!("a {} has no parameter `{key}`", kind.name()),
                )
                .at(s.key.span, "unknown parameter")
                .also(kind_v.span, format!("a {}", kind.name()))
                .with_help(help),
            );
            ok = false;
            continue;
        };
        if let Some(first) = spans.get(key) {
            cx.push(
                Diag::error(Code::PlanDuplicateSetting, format!("`{key}` is set twice"))
                    .at(s.key.span, "set again here")
                    .also(*first, "first set here")
                    .with_help("keep one of them"),
            );
            ok = false;
            continue;
        }
        spans.insert(key.to_string(), s.value.span);
        match param(cx, spec, &s.value) {
            Some(p) => {
                params.insert(key.to_string(), p);
            }
            None => ok = false,
        }
    }
    for spec in table {
        if params.contains_key(spec.name) {
            continue;
        }
        let p = match spec.default {
            ParamDefault::Num(x) => Param::Value(Expr::Num(x)),
            ParamDefault::SizeOver(k) => Param::Value(Expr::Num(f64::from(size) / k)),
            ParamDefault::Word(w) => Param::Word(w.to_string()),
            ParamDefault::Required => {
                cx.push(
                    Diag::error(
                        Code::PlanMissingSetting,
                        format!("a {} needs `{}`", kind.name(), spec.name),
                    )
                    .at(header, format!("no `{}`", spec.name))
                    .with_help(format!("`{}`: {}", spec.name, spec.doc)),
                );
                ok = false;
                continue;
            }
        };
        params.insert(spec.name.to_string(), p);
    }
    ok.then(|| {
        (
            StimulusSpec {
                name: name.text.clone(),
                kind,
                params,
            },
            header,
            spans,
        )
    })
}

fn kind_names() -> Vec<&'static str> {
    StimulusKind::ALL.iter().map(|k| k.name()).collect()
}

fn unknown_stimulus(cx: &mut Cx, v: &Value, name: &str, declared: Vec<&str>, help: &str) {
    let mut help = if declared.is_empty() {
        format!("{help}; none is declared")
    } else {
        format!("{help}; declared: {}", declared.join(", "))
    };
    if let Some(s) = suggest(name, declared.iter().copied()) {
        help = format!("did you mean `{s}`? {help}");
    }
    cx.push(
        Diag::error(
            Code::PlanUnknownStimulus,
            format!("no stimulus is called `{name}`"),
        )
        .at(v.span, "not declared")
        .with_help(help),
    );
}

/// A parameter's value, checked against its type.
fn param(cx: &mut Cx, spec: &ParamSpec, v: &Value) -> Option<Param> {
    let name = spec.name;
    match spec.ty {
        ParamType::Number | ParamType::Angle => numeric(cx, spec, v),
        ParamType::Word(_) | ParamType::Flag | ParamType::Path
            if matches!(v.kind, ValueKind::Expr(_)) =>
        {
            let what = match spec.ty {
                ParamType::Path => "a path",
                ParamType::Flag => "`true` or `false`",
                _ => "a word",
            };
            cx.push(
                Diag::error(
                    Code::PlanLevelNotNumber,
                    format!("`{name}` is {what}: it cannot depend on `level` or `axis`"),
                )
                .at(v.span, "not a number parameter")
                .with_help("the level and the axis move number and angle parameters (contrast, orientation, frequency, offset, spacing, …)"),
            );
            None
        }
        ParamType::Word(words) => {
            let help = format!("`{name}` is one of: {}", words.join(", "));
            let w = cx.ident(v, &help)?;
            if words.contains(&w) {
                Some(Param::Word(w.to_string()))
            } else {
                cx.unknown_value(v.span, name, w, words);
                None
            }
        }
        ParamType::Flag => {
            let b = cx.choice(v, name, &[("true", "true"), ("false", "false")])?;
            Some(Param::Word(b.to_string()))
        }
        ParamType::Path => match &v.kind {
            ValueKind::Str(s) => folder_exists(cx, v, s).then(|| Param::Path(s.clone())),
            _ => {
                cx.wrong_type(v, "a path in quotes", &format!("e.g. `{name} \"images/\"`"));
                None
            }
        },
    }
}

/// False (and `psy::plan::missing_file`) when files are checked and `folder`, taken from
/// the experiment file's folder as a run takes it, is not a folder.
fn folder_exists(cx: &mut Cx, v: &Value, folder: &str) -> bool {
    let Some(base) = &cx.files else {
        return true;
    };
    let given = std::path::Path::new(folder);
    if given.is_relative() && !base.relative {
        return true;
    }
    let resolved = base.dir.join(given);
    if resolved.is_dir() {
        return true;
    }
    cx.push(
        Diag::error(
            Code::PlanMissingFile,
            format!("the image folder `{}` is not a folder", resolved.display()),
        )
        .at(v.span, "no such folder")
        .with_help("check the path (a relative path is taken from the experiment file's folder); `psyrun check` looks for it where a run will"),
    );
    false
}

/// A number or angle parameter: a constant, an expression, a list or a random draw.
fn numeric(cx: &mut Cx, spec: &ParamSpec, v: &Value) -> Option<Param> {
    let angle = spec.ty == ParamType::Angle;
    match &v.kind {
        ValueKind::Expr(e) => {
            if !angle && e.has_angle() {
                cx.push(
                    Diag::error(
                        Code::PlanWrongType,
                        format!(
                            "`{}` is a number, but the expression holds an angle",
                            spec.name
                        ),
                    )
                    .at(v.span, "remove the unit")
                    .with_help(unit_help(spec)),
                );
                return None;
            }
            if angle && unitless_addend(e) {
                cx.push(
                    Diag::error(
                        Code::PlanWrongType,
                        format!(
                            "`{}` is an angle, but a number added in this expression has no unit",
                            spec.name
                        ),
                    )
                    .at(v.span, "add `deg` to the number")
                    .with_help(format!(
                        "{} (`level` and `axis` are in degrees here: `45deg + level`)",
                        unit_help(spec)
                    )),
                );
                return None;
            }
            Some(Param::Value(expr(e)))
        }
        ValueKind::List(items) => {
            if items.is_empty() {
                cx.push(
                    Diag::error(
                        Code::PlanEmptyList,
                        format!("`{}` lists no values", spec.name),
                    )
                    .at(v.span, "empty list")
                    .with_help("a list is a condition dimension: give at least one value"),
                );
                return None;
            }
            let xs: Option<Vec<f64>> = items.iter().map(|x| constant(cx, spec, x)).collect();
            Some(Param::List(xs?))
        }
        ValueKind::Call { name, args } if name.text == "uniform" || name.text == "loguniform" => {
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
            let lo = constant(cx, spec, lo_v)?;
            let hi = constant(cx, spec, hi_v)?;
            draw_bounds(cx, v, &name.text, lo, hi)?;
            Some(if name.text == "uniform" {
                Param::Uniform { lo, hi }
            } else {
                Param::LogUniform { lo, hi }
            })
        }
        _ => constant(cx, spec, v).map(|x| Param::Value(Expr::Num(x))),
    }
}

/// True when a plain number is added to or subtracted from something (`45 + level`): in an
/// angle parameter it lacks its unit. Factors stay plain (`2 * level`).
fn unitless_addend(e: &SymExpr) -> bool {
    match e {
        SymExpr::Add(a, b) | SymExpr::Sub(a, b) => {
            matches!(**a, SymExpr::Num(_))
                || matches!(**b, SymExpr::Num(_))
                || unitless_addend(a)
                || unitless_addend(b)
        }
        SymExpr::Mul(a, b) | SymExpr::Div(a, b) => unitless_addend(a) || unitless_addend(b),
        SymExpr::Neg(a) => unitless_addend(a),
        SymExpr::Num(_) | SymExpr::Angle(_) | SymExpr::Level | SymExpr::Axis => false,
    }
}

/// `lo < hi`, and `lo > 0` for a log-uniform draw.
fn draw_bounds(cx: &mut Cx, v: &Value, f: &str, lo: f64, hi: f64) -> Option<()> {
    if lo >= hi {
        cx.push(
            Diag::error(Code::PlanEmptyRange, format!("{f}({lo}, {hi}) is empty"))
                .at(v.span, "the lower end must be below the upper end")
                .with_help(format!("write e.g. `{f}(0.1, 1)`")),
        );
        return None;
    }
    if f == "loguniform" && lo <= 0.0 {
        cx.out_of_range(
            v.span,
            format!("loguniform draws positive values: the lower end must be above 0, got {lo}"),
            "must be > 0",
            "write e.g. `loguniform(0.001, 1)`",
        );
        return None;
    }
    Some(())
}

fn unit_help(spec: &ParamSpec) -> String {
    if spec.ty == ParamType::Angle {
        format!(
            "`{}` is an angle: write it with its unit, e.g. `45deg` or `0.5rad`",
            spec.name
        )
    } else {
        format!(
            "`{}` is a number ({}): write it without a unit",
            spec.name, spec.doc
        )
    }
}

/// One constant of a number (plain) or angle (with a unit) parameter.
fn constant(cx: &mut Cx, spec: &ParamSpec, v: &Value) -> Option<f64> {
    let help = unit_help(spec);
    match (&v.kind, spec.ty == ParamType::Angle) {
        (ValueKind::Angle(d), true) => Some(*d),
        (ValueKind::Number(_) | ValueKind::Integer(_), true) => {
            cx.push(
                Diag::error(
                    Code::PlanWrongType,
                    format!("`{}` is an angle, but this number has no unit", spec.name),
                )
                .at(v.span, "add `deg` or `rad`")
                .with_help(help),
            );
            None
        }
        (ValueKind::Ident(w), _) => {
            cx.push(
                Diag::error(
                    Code::PlanWrongType,
                    format!("`{}` is a number, found the word `{w}`", spec.name),
                )
                .at(v.span, "expected a number")
                .with_help(help),
            );
            None
        }
        (_, false) => cx.number(v, &help),
        (_, true) => {
            cx.wrong_type(v, "an angle", &help);
            None
        }
    }
}

/// The syntax tree's expression as the plan's, angles in degrees.
fn expr(e: &SymExpr) -> Expr {
    let b = |e: &SymExpr| Box::new(expr(e));
    match e {
        SymExpr::Num(x) | SymExpr::Angle(x) => Expr::Num(*x),
        SymExpr::Level => Expr::Level,
        SymExpr::Axis => Expr::Axis,
        SymExpr::Add(x, y) => Expr::Add(b(x), b(y)),
        SymExpr::Sub(x, y) => Expr::Sub(b(x), b(y)),
        SymExpr::Mul(x, y) => Expr::Mul(b(x), b(y)),
        SymExpr::Div(x, y) => Expr::Div(b(x), b(y)),
        SymExpr::Neg(x) => Expr::Neg(b(x)),
    }
}

/// `task KIND { stimuli [a, b]  answer …  intervals N  position … }`.
fn task(cx: &mut Cx, b: &Block, names: &[&str]) -> Option<Task> {
    reject_blocks(cx, b, &[]);
    let kind = match &b.label {
        Some(v) => cx.choice(v, "task", TASK_KINDS)?,
        None => {
            cx.push(
                Diag::error(
                    Code::PlanMissingSetting,
                    "a task needs its kind: `task 2afc { … }`",
                )
                .at(b.keyword.span, "which task?")
                .with_help(format!(
                    "the tasks are: {}",
                    TASK_KINDS
                        .iter()
                        .map(|t| t.0)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
            return None;
        }
    };
    let f = Fields::new(cx, b, TASK_SETTINGS, HOMES);
    let forced = matches!(kind, TaskKind::TwoAfc | TaskKind::Nafc | TaskKind::Oddity);
    let pair = match f.get("stimuli") {
        Some(v) => task_stimuli(cx, v, names),
        None => {
            cx.push(
                Diag::error(Code::PlanMissingSetting, "a task needs its `stimuli`")
                    .at(b.keyword.span, "no `stimuli`")
                    .with_help("name the reference and the target: `stimuli [reference, target]`"),
            );
            None
        }
    };
    let fixed = match kind {
        TaskKind::TwoAfc | TaskKind::SameDifferent => Some(2),
        TaskKind::YesNo => Some(1),
        TaskKind::Nafc | TaskKind::Oddity => None,
    };
    let min = if kind == TaskKind::Oddity { 3 } else { 2 };
    let intervals = match (f.get("intervals"), fixed) {
        (None, Some(n)) => Some(n),
        (Some(v), Some(n)) => {
            let w = cx.whole(v, "intervals", 1, 64)?;
            if w != u64::from(n) {
                cx.push(
                    Diag::error(
                        Code::PlanIncompatible,
                        format!(
                            "a `{}` task has {n} interval{}",
                            kind.name(),
                            if n == 1 { "" } else { "s" }
                        ),
                    )
                    .at(v.span, format!("{w} intervals"))
                    .with_help("for more intervals use `nafc` (or `oddity`) with `intervals N`"),
                );
                return None;
            }
            Some(n)
        }
        (Some(v), None) => cx.whole(v, "intervals", min, 64).map(|n| n as u32),
        (None, None) => {
            cx.push(
                Diag::error(
                    Code::PlanMissingSetting,
                    format!("a `{}` task needs `intervals N` (N ≥ {min})", kind.name()),
                )
                .at(b.keyword.span, "how many intervals?")
                .with_help(format!(
                    "e.g. `task {} {{ stimuli [reference, target]  intervals 4 }}`",
                    kind.name()
                )),
            );
            None
        }
    };
    let answer = match f.get("answer") {
        None => Some(Answer::Differs),
        Some(v) if !matches!(kind, TaskKind::TwoAfc | TaskKind::Nafc) => {
            cx.push(
                Diag::error(
                    Code::PlanIncompatible,
                    format!("a `{}` task has no `answer`", kind.name()),
                )
                .at(v.span, "not a choice of intervals")
                .with_help("`answer` says what a 2AFC or N-AFC observer reports: the interval that `differs` or the one that is `higher`"),
            );
            None
        }
        Some(v) => cx.choice(
            v,
            "answer",
            &[("differs", Answer::Differs), ("higher", Answer::Higher)],
        ),
    };
    let position = match f.get("position") {
        None => Some(Position::All),
        Some(v) if !forced => {
            cx.push(
                Diag::error(
                    Code::PlanIncompatible,
                    format!("a `{}` task has no `position`", kind.name()),
                )
                .at(v.span, "no target interval to place")
                .with_help("`position` places the target in a forced choice (2afc, nafc, oddity)"),
            );
            None
        }
        Some(v) => position(cx, v, intervals),
    };
    let (answer, intervals, position) = (answer?, intervals?, position?);
    if answer == Answer::Higher && intervals > 2 {
        cx.push(
            Diag::error(
                Code::PlanAnswerHigher,
                format!("`answer higher` compares two intervals, but this task has {intervals}"),
            )
            .at(f.get("answer").map_or(b.keyword.span, |v| v.span), "two intervals only")
            .also(f.get("intervals").map_or(b.keyword.span, |v| v.span), format!("{intervals} intervals"))
            .with_help("with more intervals the observer reports the one that differs: `answer differs` (the default)"),
        );
        return None;
    }
    let (reference, target) = pair?;
    Some(Task {
        kind,
        reference,
        target,
        answer,
        intervals,
        position,
    })
}

/// `position all | first | second | N` (N counts from 1).
fn position(cx: &mut Cx, v: &Value, intervals: Option<u32>) -> Option<Position> {
    let help = "position is `all` (counterbalanced, the default), `first`, `second` or an interval N counted from 1";
    let n = match &v.kind {
        ValueKind::Ident(w) if w == "all" => return Some(Position::All),
        ValueKind::Ident(w) if w == "first" => 1,
        ValueKind::Ident(w) if w == "second" => 2,
        ValueKind::Ident(w) => {
            cx.unknown_value(v.span, "position", w, &["all", "first", "second"]);
            return None;
        }
        _ => cx.whole(v, "position", 1, 64).map(|n| n as u32)?,
    };
    if let Some(k) = intervals {
        if n > k {
            cx.out_of_range(
                v.span,
                format!("the task has {k} intervals: there is no interval {n}"),
                &format!("1 to {k}"),
                help,
            );
            return None;
        }
    }
    Some(Position::Fixed(n - 1))
}

/// `stimuli [reference, target]`: two declared names.
fn task_stimuli(cx: &mut Cx, v: &Value, names: &[&str]) -> Option<(String, String)> {
    let items = match &v.kind {
        ValueKind::List(items) if items.len() == 2 => items,
        ValueKind::List(items) => {
            cx.push(
                Diag::error(
                    Code::PlanTaskStimuli,
                    format!("a task names two stimuli, the reference and the target; this list has {}", items.len()),
                )
                .at(v.span, "not two names")
                .with_help("write `stimuli [reference, target]`: the target carries the level, the reference is what it is compared with (a blank `patch` for detection)"),
            );
            return None;
        }
        _ => {
            cx.push(
                Diag::error(
                    Code::PlanTaskStimuli,
                    format!(
                        "a task's `stimuli` is a list of two names, found {}",
                        v.kind.describe()
                    ),
                )
                .at(v.span, "expected `[reference, target]`")
                .with_help("write `stimuli [reference, target]`"),
            );
            return None;
        }
    };
    let mut out = Vec::new();
    for it in items {
        let name = cx.ident(it, "a task names declared stimuli")?;
        if !names.contains(&name) {
            unknown_stimulus(
                cx,
                it,
                name,
                names.to_vec(),
                "a task names stimuli declared with `stimulus NAME KIND { … }`",
            );
            return None;
        }
        out.push(name.to_string());
    }
    if out[0] == out[1] {
        cx.push(
            Diag::error(
                Code::PlanTaskStimuli,
                format!("the task compares `{}` with itself", out[0]),
            )
            .at(v.span, "the same stimulus twice")
            .with_help(
                "the reference and the target are two stimuli; the target differs by the level",
            ),
        );
        return None;
    }
    let target = out.pop()?;
    let reference = out.pop()?;
    Some((reference, target))
}

/// A distance readout answers forced choices by "which differs most from the reference",
/// and same/different and yes/no by a criterion on a distance (between the two intervals;
/// between the one interval and the reference it is asked about); it cannot say which is
/// higher.
fn readout_serves(
    cx: &mut Cx,
    task: &Task,
    m: Metric,
    task_block: &Block,
    readout: Option<&Value>,
) -> Option<()> {
    let why = if task.answer == Answer::Higher {
        "a distance is not signed: it tells which interval differs, not which is higher"
    } else {
        return Some(());
    };
    let mut d = Diag::error(
        Code::PlanReadoutTask,
        format!(
            "`readout {}` cannot answer this `{}` task: {why}",
            m.name(),
            task.kind.name()
        ),
    )
    .at(task_block.keyword.span, "the task")
    .with_help("use `answer differs` with a distance readout, or train a probe (`readout probe`)");
    if let Some(v) = readout {
        d = d.also(v.span, "a distance readout");
    }
    cx.push(d);
    None
}

/// `level NAME` or `level NAME { unit U }`; by default the parameter's name and unit.
fn level_decl(
    cx: &mut Cx,
    block: Option<&Block>,
    setting: Option<&Value>,
    param: &str,
    unit: &str,
) -> Option<Level> {
    let mut level = Level {
        name: param.to_string(),
        unit: unit.to_string(),
    };
    if let (Some(b @ Block { label: Some(_), .. }), Some(v)) = (block, setting) {
        cx.push(
            Diag::error(Code::PlanDuplicateSetting, "`level` is written twice")
                .at(v.span, "a `level` setting")
                .also(b.keyword.span, "a `level` block")
                .with_help("write `level NAME { unit U }` once"),
        );
        return None;
    }
    let label = block.and_then(|b| b.label.as_ref()).or(setting);
    if let Some(v) = label {
        level.name = cx
            .ident(
                v,
                "`level NAME` names the measured variable, e.g. `level orientation_offset`",
            )?
            .to_string();
    }
    if let Some(b) = block {
        reject_blocks(cx, b, &[]);
        let f = Fields::new(cx, b, &["unit"], HOMES);
        if let Some(v) = f.get("unit") {
            level.unit = match &v.kind {
                ValueKind::Ident(w) | ValueKind::Str(w) => w.clone(),
                _ => {
                    cx.wrong_type(v, "a unit", "e.g. `unit deg`, `unit px`, `unit \"\"`");
                    return None;
                }
            };
        }
    }
    Some(level)
}

/// `axis NAME [values]`.
fn axis(cx: &mut Cx, v: &Value, unit: &str) -> Option<Axis> {
    let help = "write the curve's axis as a name and its values: `axis frequency [2, 4, 8, 16]`";
    let ValueKind::Tagged { tag, arg } = &v.kind else {
        cx.wrong_type(v, "a name and a list", help);
        return None;
    };
    let ValueKind::List(items) = &arg.kind else {
        cx.wrong_type(arg, "a list", help);
        return None;
    };
    if items.is_empty() {
        cx.push(
            Diag::error(Code::PlanEmptyList, "the axis has no values")
                .at(arg.span, "empty")
                .with_help(help),
        );
        return None;
    }
    let mut values = Vec::new();
    for it in items {
        let x = match it.kind {
            ValueKind::Angle(d) => d,
            _ => cx.number(it, help)?,
        };
        values.push(x);
    }
    Some(Axis {
        name: tag.text.clone(),
        unit: unit.to_string(),
        values,
    })
}

/// Every list parameter is a dimension of the task's conditions; a parameter both stimuli
/// list is one dimension, with the same values.
fn lists_agree(
    cx: &mut Cx,
    task: &Task,
    stimuli: &[(StimulusSpec, Span, BTreeMap<String, Span>)],
) -> Option<()> {
    let (Some(r), Some(t)) = (
        stimuli.iter().find(|s| s.0.name == task.reference),
        stimuli.iter().find(|s| s.0.name == task.target),
    ) else {
        return Some(());
    };
    for (k, p) in &r.0.params {
        if let (Param::List(a), Some(Param::List(b))) = (p, t.0.params.get(k)) {
            if a != b {
                let at = |s: &(StimulusSpec, Span, BTreeMap<String, Span>)| {
                    s.2.get(k).copied().unwrap_or(s.1)
                };
                cx.push(
                    Diag::error(
                        Code::PlanListMismatch,
                        format!("`{}` and `{}` list different values of `{k}`", r.0.name, t.0.name),
                    )
                    .at(at(t), format!("{}'s `{k}`", t.0.name))
                    .also(at(r), format!("{}'s `{k}`", r.0.name))
                    .with_help(format!("a parameter both stimuli list is one condition dimension: list the same values (or write `like {}` and leave `{k}` out of the target)", r.0.name)),
                );
                return None;
            }
        }
    }
    Some(())
}

/// The number of counterbalanced conditions of a task: its target positions (or trial
/// types) times the values of each list dimension.
pub(crate) fn conditions(design: &Design, task: &Task) -> u32 {
    let positions = match (task.kind, task.position) {
        (TaskKind::SameDifferent, _) => 4,
        (TaskKind::YesNo, _) => 2,
        (_, Position::Fixed(_)) => 1,
        (_, Position::All) => task.intervals,
    };
    let mut dims: BTreeMap<&str, usize> = BTreeMap::new();
    for name in [&task.reference, &task.target] {
        if let Some(s) = design.stimulus(name) {
            for (k, p) in &s.params {
                if let Param::List(xs) = p {
                    dims.insert(k, xs.len());
                }
            }
        }
    }
    dims.values()
        .fold(positions, |n, &k| n.saturating_mul(k as u32))
}

/// A training section's settings before the draw is checked against the level.
pub(super) struct TrainIn<'a> {
    samples: u32,
    level: &'a Value,
    task: Option<Task>,
}

fn design_train<'a>(cx: &mut Cx, b: &'a Block, names: &[&str]) -> Option<Option<TrainIn<'a>>> {
    if b.label.is_some() {
        // `train shapes { … }` is reported as a mix of old and new sections.
        return None;
    }
    reject_blocks(cx, b, &["task"]);
    let f = Fields::new(cx, b, DESIGN_TRAIN_SETTINGS, HOMES);
    let samples = f
        .get("samples")
        .map_or(Some(1000), |v| cx.whole(v, "samples", 1, 100_000_000));
    let tasks: Vec<&Block> = b.blocks().filter(|i| i.keyword.text == "task").collect();
    let task = match tasks.as_slice() {
        [] => Some(None),
        [one] => task(cx, one, names).map(Some),
        [first, second, ..] => {
            cx.push(
                Diag::error(Code::PlanDuplicateBlock, "`task` appears twice in `train`")
                    .at(second.keyword.span, "second block")
                    .also(first.keyword.span, "first block")
                    .with_help("the probe trains on one task"),
            );
            None
        }
    };
    let Some(level) = f.get("level") else {
        cx.push(
            Diag::error(Code::PlanMissingSetting, "`train` needs the `level` of its trials")
                .at(b.keyword.span, "no `level`")
                .with_help("draw the training levels so that they reach threshold, e.g. `level loguniform(0.001, 1)` for a contrast or `level uniform(0.5deg, 40deg)` for an angle"),
        );
        return None;
    };
    Some(Some(TrainIn {
        samples: samples? as u32,
        level,
        task: task?,
    }))
}

fn train_draw(cx: &mut Cx, t: TrainIn<'_>, domain: LevelDomain) -> Option<DesignTrain> {
    let v = t.level;
    let help = "the training level is a draw: `uniform(lo, hi)` or `loguniform(lo, hi)`, in the level's unit";
    let ValueKind::Call { name, args } = &v.kind else {
        cx.wrong_type(v, "`uniform(lo, hi)` or `loguniform(lo, hi)`", help);
        return None;
    };
    if name.text != "uniform" && name.text != "loguniform" {
        let mut h = help.to_string();
        if let Some(s) = suggest(&name.text, ["uniform", "loguniform"]) {
            h = format!("did you mean `{s}`? {h}");
        }
        cx.push(
            Diag::error(
                Code::PlanUnknownFunction,
                format!("unknown function `{}`", name.text),
            )
            .at(name.span, "not a draw")
            .with_help(h),
        );
        return None;
    }
    let slots = cx.args(name, args, &["lo", "hi"], &[])?;
    let (Some(lo), Some(hi)) = (slots[0], slots[1]) else {
        cx.missing_arg(
            name,
            v.span,
            if slots[0].is_none() { "lo" } else { "hi" },
            &["lo", "hi"],
            &[],
        );
        return None;
    };
    let lo = level_value(cx, lo, domain, "the lower end")?;
    let hi = level_value(cx, hi, domain, "the upper end")?;
    draw_bounds(cx, v, &name.text, lo, hi)?;
    let level = if name.text == "uniform" {
        Draw::Uniform { lo, hi }
    } else {
        Draw::LogUniform { lo, hi }
    };
    Some(DesignTrain {
        samples: t.samples,
        level,
        task: t.task,
    })
}

/// A value of the level: an angle when the level is an angle (degrees), a plain number
/// otherwise; contrasts (the `test gratings` experiments) in [0, 1].
pub(crate) fn level_value(cx: &mut Cx, v: &Value, domain: LevelDomain, what: &str) -> Option<f64> {
    match (domain, &v.kind) {
        (LevelDomain::Contrast, _) => super::read::contrast(cx, v, what),
        (LevelDomain::Angle, ValueKind::Angle(d)) => Some(*d),
        (LevelDomain::Angle, _) => {
            cx.push(
                Diag::error(
                    Code::PlanWrongType,
                    format!("the level is an angle: {what} needs its unit"),
                )
                .at(v.span, "expected an angle, e.g. `10deg`")
                .with_help("the experiment's level moves an angle parameter; write level values with `deg` or `rad`"),
            );
            None
        }
        (LevelDomain::Unknown, ValueKind::Angle(d)) => Some(*d),
        (LevelDomain::Number | LevelDomain::Unknown, _) => cx.number(
            v,
            "the level is a plain number (the unit of the parameter it moves)",
        ),
    }
}
