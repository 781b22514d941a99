//! The first step: the device, the backbone with its weights, the run folder with its plan,
//! manifest and preview sheet. A TorchScript module is loaded (and its shapes learnt) before
//! anything is written.

use super::{Interpreter, RunOptions, PREVIEW_PAIRS};
use crate::backbone::Backbone;
use crate::device::stimuli_on;
use crate::device::{device_name, select_device, set_tf32};
use crate::failure::{weights_failure, Failure};
use crate::script::{Net, ScriptNet};
use crate::weights;
use psyrun::diag::{Code, Diag};
use psyrun::exit::{EXIT_RUN, EXIT_USAGE};
use psyrun::plan::to_ron;
use psyrun::plan::{self, Network, Plan};
use psyrun::progress::{Event, Observer};
use psyrun::report::journal::{self, Entry, JournalWriter, Replay, JOURNAL, JOURNAL_VERSION};
use psyrun::report::{self, preview_sheet, Manifest, Results, RunFolder};
use psyrun::trials::{self};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;
use tch::Device;

impl<'a> Interpreter<'a> {
    pub(super) fn new(
        plan: &'a Plan,
        options: &'a RunOptions<'a>,
        observer: &'a mut dyn Observer,
        folder_slot: &Mutex<Option<PathBuf>>,
        script: Option<ScriptNet>,
    ) -> Result<Self, Failure> {
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        if plan.device != plan::Device::Cpu {
            set_tf32(plan.precision);
        }
        let device = select_device(plan, options.file)?;
        let stimuli = stimuli_on(device)?;
        let (mut backbone, weights_path) = match (&plan.backbone.network, script) {
            (Network::Catalog(net), _) => {
                observer.event(Event::Status(format!(
                    "building {} up to `{}` on {}",
                    net.arch,
                    net.cut,
                    device_name(device)
                )));
                let mut backbone =
                    Backbone::from_plan(&plan.backbone, Device::Cpu).map_err(|e| {
                        Failure::new(Diag::error(Code::RunTorch, e.to_string()), EXIT_RUN)
                    })?;
                let base = options
                    .path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let loaded = weights::apply(
                    &mut backbone,
                    &net.weights,
                    plan.seed,
                    &base,
                    &mut *observer,
                    options.stop,
                )
                .map_err(|e| weights_failure(e, Some((plan, options.file))))?;
                if let Some(report) = &loaded {
                    observer.event(Event::Status(format!(
                        "loaded {} tensors ({} past the cut ignored)",
                        report.loaded, report.ignored
                    )));
                }
                let path = loaded.and_then(|r| r.path);
                (Net::Catalog(backbone), path)
            }
            (Network::TorchScript { .. }, Some(mut s)) => {
                observer.event(Event::Status(format!(
                    "TorchScript module {} on {}",
                    s.path().display(),
                    device_name(device)
                )));
                s.set_batchnorm(plan.backbone.batchnorm);
                let path = s.path().to_path_buf();
                (Net::Script(s), Some(path))
            }
            (Network::TorchScript { .. }, None) => {
                return Err(Failure::new(
                    Diag::error(Code::RunTorch, "the TorchScript module was not loaded"),
                    EXIT_RUN,
                ))
            }
        };
        // The exact bytes the weights came from (named torchvision sets included).
        let weights_sha256 = weights_path.and_then(|p| report::sha256_file(p).ok());
        if device != Device::Cpu {
            backbone.to_device(device);
        }
        // Channels-last (NHWC) convolutions are faster on the CPU (oneDNN) and on CUDA with
        // tensor cores (tf32, bf16); in strict float32, cuDNN is faster in the default layout
        // (H200, ResNet-50 to layer2, batch 32: 5 886 images/s against 4 685; with TF32 the
        // other way round, 9 916 against 11 130: docs/performance.md). Results agree across
        // layouts to float rounding.
        let channels_last =
            device == Device::Cpu || plan.precision != psyrun::plan::Precision::Fp32;
        backbone.set_channels_last(channels_last);
        backbone.set_precision(plan.precision);

        let folder = match (options.resume, options.out) {
            (Some(dir), _) => RunFolder::resume(dir),
            (None, Some(out)) => RunFolder::create(Some(out), &plan.experiment, started_at),
            (None, None) => RunFolder::create_default(
                &options.runs_root.join("runs"),
                &plan.experiment,
                started_at,
            ),
        }
        .map_err(|e| {
            let help = if options.resume.is_some() {
                "give the folder of a run that was interrupted or killed (it holds INCOMPLETE)"
            } else {
                "choose a writable, empty or new folder with --out DIR"
            };
            Failure::new(
                Diag::error(
                    if options.resume.is_some() {
                        Code::RunResume
                    } else {
                        Code::RunOutputFolder
                    },
                    e.to_string(),
                )
                .with_help(help),
                EXIT_USAGE,
            )
        })?;
        if let Ok(mut slot) = folder_slot.lock() {
            *slot = Some(folder.path().to_path_buf());
        }
        let mut manifest = Manifest {
            psyrun_version: report::PSYRUN_VERSION.to_string(),
            libtorch_version: crate::Report::collect().libtorch_version,
            device: device_name(device),
            seed: plan.seed,
            experiment_file: options.path.display().to_string(),
            experiment_sha256: report::sha256_bytes(options.file.text.as_bytes()),
            weights: match &plan.backbone.network {
                Network::Catalog(net) => net.weights.to_string(),
                Network::TorchScript { file } => format!("torchscript {file}"),
            },
            weights_sha256,
            started: report::rfc3339(started_at),
            finished: None,
            command_line: options.command_line.clone(),
            threads: usize::try_from(tch::get_num_threads()).unwrap_or(1),
            complete: false,
            phase_seconds: vec![("setup".into(), started.elapsed().as_secs_f64())],
            precision: plan.precision.name().into(),
            peak_rss_bytes: report::peak_rss_bytes(),
            stimuli: stimuli.name().into(),
            decision_noise: None,
            resumed: Vec::new(),
            warnings: options.warnings.clone(),
            overrides: options.overrides.clone(),
            condition: options.condition.clone(),
            sources: options
                .sources
                .iter()
                .map(|s| report::ManifestSource {
                    path: s.path.display().to_string(),
                    copy: format!("{}/{}", report::SOURCES, s.relative.display()),
                    sha256: s.sha256.clone(),
                })
                .collect(),
        };
        let plan_ron = to_ron(plan);
        let (journal, replay) = match options.resume {
            Some(_) => {
                let resumed = resume_journal(&folder, &plan_ron, &mut manifest, started_at)?;
                folder
                    .begin(plan, &manifest)
                    .map_err(|e| output_failure(&folder, &e))?;
                resumed
            }
            None => {
                // plan.ron first: a folder with a journal is always one that can be resumed.
                folder
                    .begin(plan, &manifest)
                    .map_err(|e| output_failure(&folder, &e))?;
                // The files the run was built from, as they were read (a resumed run keeps
                // the copies of its first start).
                for source in options.sources {
                    folder
                        .write_source(&source.relative, source.text.as_bytes())
                        .map_err(|e| output_failure(&folder, &e))?;
                }
                (
                    new_journal(&folder, &plan_ron, plan.seed)?,
                    Replay::default(),
                )
            }
        };
        let results = Results {
            plan: plan.clone(),
            manifest,
            training: Vec::new(),
            staircases: Vec::new(),
            csf: Vec::new(),
        };
        let it = Interpreter {
            plan,
            options,
            observer,
            device,
            stimuli,
            backbone,
            folder,
            results,
            journal,
            replay,
            live: None,
        };
        let contrast = plan.staircase.start();
        let sheet = match &plan.design {
            None => preview_sheet(
                &trials::preview_images(plan, PREVIEW_PAIRS, contrast),
                (2 * PREVIEW_PAIRS as usize).max(4),
            ),
            Some(design) => {
                let (images, columns) = it.design_preview(design, contrast)?;
                preview_sheet(&images, columns)
            }
        };
        it.folder
            .write("preview.png", &sheet)
            .map_err(|e| it.io_failure(&e))?;
        Ok(it)
    }
}

/// The plan to run: as given, or for a TorchScript backbone with the shapes filled in, which
/// only running the module can tell; and the loaded module. Fails before any run folder
/// exists.
pub(super) fn script(
    plan: &Plan,
    options: &RunOptions<'_>,
) -> Result<(Plan, Option<ScriptNet>), Failure> {
    let base = options
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    crate::script::resolve(plan, &base, Some(options.file)).map_err(|d| Failure::new(d, EXIT_RUN))
}

/// `psy::run::output_folder` for a write that failed before the interpreter exists.
fn output_failure(folder: &RunFolder, e: &std::io::Error) -> Failure {
    Failure::new(
        Diag::error(
            Code::RunOutputFolder,
            format!("cannot write to `{}`: {e}", folder.path().display()),
        )
        .with_help("check the disk space and the folder's permissions"),
        EXIT_RUN,
    )
    .in_folder(Some(folder.path().to_path_buf()))
}

/// A new `journal.jsonl` in `folder`, its header naming the plan (`plan_ron`) and seed.
fn new_journal(folder: &RunFolder, plan_ron: &str, seed: u64) -> Result<JournalWriter, Failure> {
    let header = Entry::Header {
        version: JOURNAL_VERSION,
        plan_sha256: report::sha256_bytes(plan_ron.as_bytes()),
        seed,
    };
    JournalWriter::create(folder.path(), &header).map_err(|e| output_failure(folder, &e))
}

/// `psy::run::resume` for a run folder that cannot be continued.
fn resume_failure(folder: &RunFolder, message: String, help: &str) -> Failure {
    Failure::new(
        Diag::error(Code::RunResume, message).with_help(help),
        EXIT_USAGE,
    )
    .in_folder(Some(folder.path().to_path_buf()))
}

/// Resuming the run in `folder`: its plan must be this plan (`plan_ron`), its weights the
/// same bytes, and its journal (when it has one: a run killed before its folder was
/// complete has none) one this psyrun reads; the manifest keeps the first start and adds
/// this one to `resumed`. Returns the journal, reopened for appending, and what to replay.
fn resume_journal(
    folder: &RunFolder,
    plan_ron: &str,
    manifest: &mut Manifest,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(JournalWriter, Replay), Failure> {
    let dir = folder.path();
    let same_plan_help = "resume with the experiment file, psyrun version and options the run \
                          started with (its plan.ron and manifest.json say which), or run the \
                          experiment again into a new folder";
    let old_plan = std::fs::read_to_string(dir.join("plan.ron")).map_err(|e| {
        resume_failure(
            folder,
            format!("cannot read `{}`: {e}", dir.join("plan.ron").display()),
            same_plan_help,
        )
    })?;
    if old_plan != plan_ron {
        let line = old_plan
            .lines()
            .zip(plan_ron.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || old_plan.lines().count().min(plan_ron.lines().count()) + 1,
                |i| i + 1,
            );
        return Err(resume_failure(
            folder,
            format!(
                "the experiment plans differently from the run in `{}` (plan.ron differs from \
                 line {line})",
                dir.display()
            ),
            same_plan_help,
        ));
    }
    let old: Manifest = std::fs::read(dir.join("manifest.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| {
            resume_failure(
                folder,
                format!("cannot read `{}`: {e}", dir.join("manifest.json").display()),
                same_plan_help,
            )
        })?;
    if old.weights_sha256 != manifest.weights_sha256 {
        return Err(resume_failure(
            folder,
            format!(
                "the weights are not the bytes the run started with (SHA-256 {} then, {} now)",
                old.weights_sha256.as_deref().unwrap_or("none"),
                manifest.weights_sha256.as_deref().unwrap_or("none")
            ),
            "resume with the weights file the run started with",
        ));
    }
    manifest.started = old.started;
    manifest.command_line = old.command_line;
    manifest.resumed = old.resumed;
    manifest.resumed.push(report::rfc3339(now));
    let path = dir.join(JOURNAL);
    if !path.exists() {
        return Ok((new_journal(folder, plan_ron, old.seed)?, Replay::default()));
    }
    let read = journal::read(&path).map_err(|e| {
        resume_failure(
            folder,
            e.to_string(),
            "the journal was changed or damaged; run the experiment again into a new folder",
        )
    })?;
    if read.entries.is_empty() {
        // Killed before the header reached the disk: start the journal again.
        std::fs::remove_file(&path).map_err(|e| output_failure(folder, &e))?;
        return Ok((new_journal(folder, plan_ron, old.seed)?, Replay::default()));
    }
    if read.plan_sha256() != Some(report::sha256_bytes(plan_ron.as_bytes()).as_str()) {
        return Err(resume_failure(
            folder,
            format!(
                "`{}` belongs to another plan than this folder's plan.ron",
                path.display()
            ),
            "the folder was changed by hand; run the experiment again into a new folder",
        ));
    }
    let replay = Replay::new(&read.entries);
    let journal =
        JournalWriter::reopen(dir, read.valid_len).map_err(|e| output_failure(folder, &e))?;
    Ok((journal, replay))
}
