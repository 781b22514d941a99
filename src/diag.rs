//! Diagnostics: one type for every error and warning a user can cause, each with a stable
//! code, a primary label, secondary labels where a second place matters, and help.
//!
//! Every stage returns [`Diag`]s; the CLI renders them with miette's graphical handler
//! (with or without colour: snapshots use the colourless rendering the user sees with
//! `--color never`).

mod excerpt;

use miette::{Diagnostic, LabeledSpan, SourceSpan};
use std::fmt;
use std::sync::Arc;

/// A byte range in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from byte `start` to byte `end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl From<Span> for SourceSpan {
    fn from(s: Span) -> Self {
        SourceSpan::new(s.start.into(), s.end.saturating_sub(s.start))
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident => $code:literal, )*) => {
        /// Every diagnostic code psyrun emits. The strings are stable: scripts and
        /// `docs/diagnostics.md` refer to them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }
        impl Code {
            /// All codes, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];
            /// The stable code string, e.g. `psy::plan::unknown_layer`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }
        }
    };
}

codes! {
    /// A path that cannot be read.
    IoRead => "psy::io::read",
    /// A directory where a file was expected.
    IoIsDirectory => "psy::io::is_directory",
    /// A file far larger than any experiment.
    IoTooLarge => "psy::io::too_large",
    /// A file that is not UTF-8 text.
    IoNotUtf8 => "psy::io::not_utf8",
    /// A FIFO, socket or device where a file was expected.
    IoNotAFile => "psy::io::not_a_file",
    /// A binary file (a checkpoint, a model) where an experiment file was expected.
    IoBinary => "psy::io::binary",
    /// A file with nothing but whitespace and comments.
    SyntaxEmpty => "psy::syntax::empty_file",
    /// A token the grammar does not allow here.
    SyntaxUnexpected => "psy::syntax::unexpected_token",
    /// A `{` without its `}`.
    SyntaxUnclosedBlock => "psy::syntax::unclosed_block",
    /// A `}`, `]` or `)` without its opening bracket.
    SyntaxUnmatchedClose => "psy::syntax::unmatched_close",
    /// Something that starts like a number but is not one.
    SyntaxBadNumber => "psy::syntax::bad_number",
    /// A string without its closing quote on the same line.
    SyntaxUnterminatedString => "psy::syntax::unterminated_string",
    /// An unknown escape sequence in a string.
    SyntaxBadEscape => "psy::syntax::bad_escape",
    /// No `psy 1` line at the top.
    SyntaxMissingVersion => "psy::syntax::missing_version",
    /// A language version this psyrun does not know.
    SyntaxUnsupportedVersion => "psy::syntax::unsupported_version",
    /// Brackets nested deeper than any experiment needs.
    SyntaxTooDeep => "psy::syntax::too_deep",
    /// Division by zero in an arithmetic expression.
    SyntaxDivisionByZero => "psy::syntax::division_by_zero",
    /// Arithmetic that mixes angles and plain numbers wrongly.
    SyntaxUnitMismatch => "psy::syntax::unit_mismatch",
    /// No experiment block in the file.
    PlanNoExperiment => "psy::plan::no_experiment",
    /// More than one experiment block in one file.
    PlanMultipleExperiments => "psy::plan::multiple_experiments",
    /// A block psyrun does not know.
    PlanUnknownBlock => "psy::plan::unknown_block",
    /// The same block twice.
    PlanDuplicateBlock => "psy::plan::duplicate_block",
    /// A required block is missing.
    PlanMissingBlock => "psy::plan::missing_block",
    /// A setting the block does not have.
    PlanUnknownSetting => "psy::plan::unknown_setting",
    /// The same setting twice in one block.
    PlanDuplicateSetting => "psy::plan::duplicate_setting",
    /// A required setting is missing.
    PlanMissingSetting => "psy::plan::missing_setting",
    /// A value of the wrong type (a string where a number belongs, …).
    PlanWrongType => "psy::plan::wrong_type",
    /// A number outside its allowed range.
    PlanOutOfRange => "psy::plan::out_of_range",
    /// A range or interval whose lower end is not below its upper end.
    PlanEmptyRange => "psy::plan::empty_range",
    /// A list that must not be empty is empty.
    PlanEmptyList => "psy::plan::empty_list",
    /// A name that is not one of the setting's choices.
    PlanUnknownValue => "psy::plan::unknown_value",
    /// A generator function psyrun does not know, or one used where it does not fit.
    PlanUnknownFunction => "psy::plan::unknown_function",
    /// A generator called with wrong arguments.
    PlanBadArgument => "psy::plan::bad_argument",
    /// An architecture not in the catalog.
    PlanUnknownBackbone => "psy::plan::unknown_backbone",
    /// A cut layer the architecture does not have.
    PlanUnknownLayer => "psy::plan::unknown_layer",
    /// An input too small to reach the cut layer.
    PlanInputTooSmall => "psy::plan::input_too_small",
    /// An image size the network does not accept (the Vision Transformers take 224 px
    /// only).
    PlanInputSize => "psy::plan::input_size",
    /// Adaptive pooling larger than the feature map it pools.
    PlanPoolingTooLarge => "psy::plan::pooling_too_large",
    /// A grating frequency above the Nyquist limit (size / 2 cycles per image).
    PlanAboveNyquist => "psy::plan::above_nyquist",
    /// A grating whose samples are all zero: at size / 2 cycles per image, orientation 0° or
    /// 90° (or 180°, 270°) and phase 90° or 270°, `cos(π·x + φ)` vanishes at every pixel.
    PlanBlankGrating => "psy::plan::blank_grating",
    /// Settings that each make sense but not together.
    PlanIncompatible => "psy::plan::incompatible",
    /// A weights or TorchScript file that does not exist or cannot be read (`psyrun check`
    /// and `plan`).
    PlanMissingFile => "psy::plan::missing_file",
    /// The run's estimated peak memory is past the hard limit (1 TiB).
    PlanMemoryLimit => "psy::plan::memory_limit",
    /// Warning: the run's estimated peak memory exceeds this machine's memory.
    PlanMemory => "psy::plan::memory",
    /// Warning: the linear probe would have more than 10⁷ parameters (an unpooled early or
    /// wide layer); pooling suggested.
    PlanHugeProbe => "psy::plan::huge_probe",
    /// Warning: `decision deterministic` (the tutorial's noiseless observer).
    PlanDeterministicObserver => "psy::plan::deterministic_observer",
    /// Warning: the target is always in the same interval.
    PlanConstantTarget => "psy::plan::constant_target",
    /// Warning: the staircase tolerance can never be met with this many trials.
    PlanToleranceUnreachable => "psy::plan::tolerance_unreachable",
    /// Warning: two test conditions draw the same stimulus.
    PlanDuplicateStimuli => "psy::plan::duplicate_stimuli",
    /// Warning: a frequency, orientation or phase listed twice (angles modulo 360°), whose
    /// trials would run twice.
    PlanDuplicateCondition => "psy::plan::duplicate_condition",
    /// Warning: the training contrast pivots at a grey level other than the background, so
    /// the background's grey changes with the contrast (a cue to the label outside the shape).
    PlanContrastPivot => "psy::plan::contrast_pivot",
    /// Warning: the training and test images are normalised differently, so the probe is
    /// tested on inputs whose mean and scale differ from those it learnt on.
    PlanNormalizeMismatch => "psy::plan::normalize_mismatch",
    /// Warning: `batchnorm train` on a TorchScript backbone puts the whole module in
    /// training mode, Dropout included (libtorch's C API switches a module's mode as a whole).
    PlanTorchscriptTrainMode => "psy::plan::torchscript_train_mode",
    /// `batchnorm train` with a BatchNorm layer that would normalise one value per channel
    /// (batch × height × width = 1): its variance is undefined and turns the running
    /// statistics into NaN.
    PlanBatchnormSingleValue => "psy::plan::batchnorm_single_value",
    /// An `import` whose file cannot be read or is not an experiment file.
    PlanImport => "psy::plan::import",
    /// Files that import each other in a cycle.
    PlanImportCycle => "psy::plan::import_cycle",
    /// `extends NAME` where no experiment of that name is in the file or its imports.
    PlanUnknownExperiment => "psy::plan::unknown_experiment",
    /// Experiments that extend each other in a cycle.
    PlanExtendsCycle => "psy::plan::extends_cycle",
    /// A `--set` or `sweep` path that names no setting (`probe.epoch`).
    PlanUnknownPath => "psy::plan::unknown_path",
    /// A sweep that cannot be expanded: a value that is not a list, an empty list, a path
    /// swept twice, too many conditions.
    PlanBadSweep => "psy::plan::bad_sweep",
    /// `sweep zip { … }` with lists of different lengths.
    PlanZipLengths => "psy::plan::zip_lengths",
    /// Two conditions of a sweep with the same plan.
    PlanSameConditions => "psy::plan::same_conditions",
    /// A sweep's condition that is needed (`psyrun run` of a sweep) or asked for
    /// (`--condition`) and not found.
    PlanCondition => "psy::plan::condition",
    /// A `stimulus` names a kind no generator has.
    PlanUnknownStimulusKind => "psy::plan::unknown_stimulus_kind",
    /// A stimulus sets a parameter its kind does not have.
    PlanUnknownParameter => "psy::plan::unknown_parameter",
    /// `level` or `axis` in a parameter that is not a number (a word, a flag, a path).
    PlanLevelNotNumber => "psy::plan::level_not_number",
    /// A task or `like` names a stimulus that is not declared.
    PlanUnknownStimulus => "psy::plan::unknown_stimulus",
    /// A task's `stimuli` is not a list of two names.
    PlanTaskStimuli => "psy::plan::task_stimuli",
    /// The readout cannot answer the task.
    PlanReadoutTask => "psy::plan::readout_task",
    /// The curve's axis has the measured variable's name.
    PlanAxisIsLevel => "psy::plan::axis_is_level",
    /// No parameter of the target depends on `level`.
    PlanNothingMeasured => "psy::plan::nothing_measured",
    /// `train shapes` / `test gratings` mixed with `stimulus` and `task` blocks.
    PlanMixedSections => "psy::plan::mixed_sections",
    /// `answer higher` in a task of more than two intervals.
    PlanAnswerHigher => "psy::plan::answer_higher",
    /// Two stimuli of a task list the same parameter with different values.
    PlanListMismatch => "psy::plan::list_mismatch",
    /// A `probe` or `train` block with a training-free readout (ignored; a warning).
    PlanUnusedTraining => "psy::plan::unused_training",
    /// `run` or `doctor` in a build without libtorch.
    RunUnavailable => "psy::run::unavailable",
    /// A weights file that is missing, unreadable or of an unknown format.
    RunWeightsFile => "psy::run::weights_file",
    /// A weights file whose keys or shapes do not fit the architecture.
    RunWeightsMismatch => "psy::run::weights_mismatch",
    /// Named torchvision weights that cannot be found in the cache nor downloaded, or a
    /// cached or downloaded file whose hash is wrong.
    RunWeightsDownload => "psy::run::weights_download",
    /// A `backbone torchscript "…"` file that is missing, is not TorchScript (a state dict,
    /// safetensors, …), fails to load, or whose output does not fit the experiment (not one
    /// tensor with the batch first, nothing to pool, train and test shapes differ).
    RunTorchScript => "psy::run::torchscript",
    /// CUDA asked for but not available.
    RunNoCuda => "psy::run::no_cuda",
    /// The results folder cannot be created or written.
    RunOutputFolder => "psy::run::output_folder",
    /// The probe's loss became NaN or infinite.
    RunNanLoss => "psy::run::nan_loss",
    /// The run was interrupted (Ctrl-C).
    RunInterrupted => "psy::run::interrupted",
    /// libtorch reported an error (out of memory, …).
    RunTorch => "psy::run::torch",
    /// A bug in psyrun caught at run time (a panic that is not a libtorch error).
    RunBug => "psy::run::bug",
    /// Warning: the probe learnt the training task barely above chance.
    RunProbeAtChance => "psy::run::probe_at_chance",
    /// After training, the backbone's BatchNorm running statistics or the probe's
    /// parameters are not finite (NaN or infinite), or test features are: every result
    /// would be meaningless.
    RunNonFinite => "psy::run::non_finite",
    /// Warning: a frequency's test accuracy stays at chance at every contrast tested.
    RunTestAtChance => "psy::run::test_at_chance",
    /// The observer's noise cannot be calibrated to the accuracy asked for.
    RunCalibration => "psy::run::calibration",
    /// `psyrun run --resume DIR` cannot continue that run (a finished or foreign folder, an
    /// experiment or plan that changed, a journal that does not match what the run does).
    RunResume => "psy::run::resume",
    /// A trial of an experiment with a design cannot be made at the level a procedure asked
    /// for (a stimulus parameter out of its range), or its image folder cannot be read.
    RunStimulus => "psy::run::stimulus",
    /// `psyrun run --condition` names a condition the experiment's sweep does not have.
    SweepCondition => "psy::sweep::condition",
    /// A sweep folder that cannot be used: another experiment's sweep, a folder with other
    /// files, or one that cannot be written.
    SweepFolder => "psy::sweep::folder",
    /// `psyrun collect DIR` (or `sweep-task`) on a folder that holds no readable
    /// `sweep.json`.
    SweepNotASweep => "psy::sweep::not_a_sweep",
    /// `--slurm`: `sbatch` cannot be found or refused the job.
    SweepSlurm => "psy::sweep::slurm",
    /// Conditions of a sweep failed (each with its exit status and log).
    SweepFailed => "psy::sweep::failed",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error or warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Stops the experiment from running.
    Error,
    /// Worth reading; the experiment still runs.
    Warning,
}

/// A labelled place in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there.
    pub text: String,
}

/// One error or warning.
#[derive(Clone, Debug)]
pub struct Diag {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// The one-line message.
    pub message: String,
    /// The main place, if the diagnostic has one.
    pub primary: Option<Label>,
    /// Other places that explain it ("first set here").
    pub secondary: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
    /// The file's name and text, once attached.
    source: Option<(String, Arc<str>)>,
}

impl Diag {
    /// A new error.
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: None,
            source: None,
        }
    }
    /// A new warning.
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }
    /// Sets the primary label.
    pub fn at(mut self, span: Span, text: impl Into<String>) -> Self {
        self.primary = Some(Label {
            span,
            text: text.into(),
        });
        self
    }
    /// Adds a secondary label.
    pub fn also(mut self, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            text: text.into(),
        });
        self
    }
    /// Sets the help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Attaches the source file (a [`crate::source::SourceFile`]), so that labels can be
    /// shown.
    pub fn with_source(mut self, file: &impl SourceText) -> Self {
        self.source = Some((file.source_name(), file.source_text()));
        self
    }
    /// True once a source is attached.
    pub fn has_source(&self) -> bool {
        self.source.is_some()
    }
    /// The name of the attached source (the path as shown), if any.
    pub fn source_name(&self) -> Option<&str> {
        self.source.as_ref().map(|(n, _)| n.as_str())
    }
    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A named text that diagnostics can point into. Implemented by
/// [`SourceFile`](crate::source::SourceFile); defined here so that `diag`, which every stage
/// uses, depends on no other module of psyrun.
pub trait SourceText {
    /// The name shown above the excerpt (the path as the user gave it).
    fn source_name(&self) -> String;
    /// The whole text.
    fn source_text(&self) -> Arc<str>;
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diag {}

/// Most diagnostics [`render`] shows; the others are counted on one line after them.
pub const MAX_SHOWN: usize = 50;
/// Longest line of a message, label or help shown, in characters (a message may quote a
/// word of the file, and a file may hold a word of megabytes).
const MAX_TEXT_LINE: usize = 1_000;
/// Longest message, label or help shown, in characters (a list of weight keys is long).
const MAX_TEXT: usize = 100_000;

/// Renders diagnostics as the user sees them: miette's graphical report, Unicode, with or
/// without colour. Snapshot tests use `color = false`, the same path as `--color never`.
///
/// The cost does not grow with the file: at most [`MAX_SHOWN`] diagnostics are shown (the
/// first in source order; one line counts the rest), each shows only the lines around its
/// labels, and a long line only a window around the label (see `excerpt`).
pub fn render(diags: &[Diag], color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut shown: Vec<&Diag> = diags.iter().collect();
    if shown.len() > MAX_SHOWN {
        // Stable: diagnostics at the same place (or without one) keep their order.
        shown.sort_by_key(|d| d.primary.as_ref().map_or(0, |l| l.span.start));
        shown.truncate(MAX_SHOWN);
    }
    let mut out = String::new();
    // One line index per file, shared by its diagnostics.
    let mut index: Option<(Arc<str>, excerpt::LineIndex)> = None;
    for d in &shown {
        let view = View::new(d, &mut index);
        // Rendering into a String cannot fail for our own Diagnostic impl; if miette ever
        // reports an error, fall back to the plain message rather than lose the diagnostic.
        if handler.render_report(&mut out, &view).is_err() {
            out.push_str(&format!("{}[{}]: {}\n", sev_word(d), d.code, view.message));
        }
    }
    if diags.len() > shown.len() {
        let (errors, warnings) = summary(diags);
        let (shown_errors, shown_warnings) = summary_of(shown.iter().copied());
        out.push_str(&format!(
            "… and {} not shown (psyrun shows the first {MAX_SHOWN} in source order)\n",
            counted(errors - shown_errors, warnings - shown_warnings, " more")
        ));
    }
    out
}

/// "3 errors and 1 warning", with `more` after each number.
fn counted(errors: usize, warnings: usize, more: &str) -> String {
    let e = format!("{errors}{more} error{}", if errors == 1 { "" } else { "s" });
    let w = format!(
        "{warnings}{more} warning{}",
        if warnings == 1 { "" } else { "s" }
    );
    match (errors, warnings) {
        (_, 0) => e,
        (0, _) => w,
        _ => format!("{e} and {w}"),
    }
}

/// What miette renders for one diagnostic: its texts clipped to [`MAX_TEXT`] and, when it
/// has labels, an [`excerpt::Excerpt`] of its file with the labels moved into it.
#[derive(Debug)]
struct View<'d> {
    diag: &'d Diag,
    message: String,
    help: Option<String>,
    excerpt: Option<(excerpt::Excerpt, Vec<excerpt::Mark>)>,
}

impl<'d> View<'d> {
    fn new(diag: &'d Diag, index: &mut Option<(Arc<str>, excerpt::LineIndex)>) -> Self {
        let excerpt = diag.source.as_ref().and_then(|(name, text)| {
            let mut marks: Vec<excerpt::Mark> = diag
                .primary
                .iter()
                .map(|l| (l, true))
                .chain(diag.secondary.iter().map(|l| (l, false)))
                .map(|(l, primary)| excerpt::Mark {
                    start: l.span.start,
                    end: l.span.end,
                    text: clip(&l.text),
                    primary,
                })
                .collect();
            if marks.is_empty() {
                return None;
            }
            if !matches!(index, Some((t, _)) if Arc::ptr_eq(t, text)) {
                *index = Some((text.clone(), excerpt::LineIndex::new(text)));
            }
            let (_, lines) = index.as_ref()?;
            let excerpt = excerpt::Excerpt::new(name, text, lines, &mut marks);
            Some((excerpt, marks))
        });
        View {
            diag,
            message: clip(&diag.message),
            help: diag.help.as_deref().map(clip),
            excerpt,
        }
    }
}

/// `text` with each line cut to [`MAX_TEXT_LINE`] characters and the whole to
/// [`MAX_TEXT`], with `…` where it was cut.
fn clip(text: &str) -> String {
    let cut = |s: &str, max: usize| match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    };
    let lines: Vec<String> = text.split('\n').map(|l| cut(l, MAX_TEXT_LINE)).collect();
    cut(&lines.join("\n"), MAX_TEXT)
}

impl fmt::Display for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for View<'_> {}

impl Diagnostic for View<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diag.code.as_str()))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.excerpt
            .as_ref()
            .map(|(e, _)| e as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (_, marks) = self.excerpt.as_ref()?;
        Some(Box::new(marks.iter().map(|m| {
            let span = SourceSpan::new(m.start.into(), m.end - m.start);
            if m.primary {
                LabeledSpan::new_primary_with_span(Some(m.text.clone()), span)
            } else {
                LabeledSpan::new_with_span(Some(m.text.clone()), span)
            }
        })))
    }
}

fn sev_word(d: &Diag) -> &'static str {
    match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// Counts errors and warnings for the summary line.
pub fn summary(diags: &[Diag]) -> (usize, usize) {
    summary_of(diags.iter())
}

fn summary_of<'a>(diags: impl Iterator<Item = &'a Diag>) -> (usize, usize) {
    diags.fold(
        (0, 0),
        |(e, w), d| {
            if d.is_error() {
                (e + 1, w)
            } else {
                (e, w + 1)
            }
        },
    )
}

#[cfg(test)]
mod tests;
