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
use psyrun::plan::{self, Network, Plan};
use psyrun::progress::{Event, Observer};
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
        // Channels-last (NHWC) convolutions are faster on CPU (oneDNN) and on CUDA (cuDNN);
        // results agree with the default layout to float rounding.
        backbone.set_channels_last(true);
        backbone.set_precision(plan.precision);

        let folder = match options.out {
            Some(out) => RunFolder::create(Some(out), &plan.experiment, started_at),
            None => RunFolder::create_default(
                &options.runs_root.join("runs"),
                &plan.experiment,
                started_at,
            ),
        }
        .map_err(|e| {
            Failure::new(
                Diag::error(Code::RunOutputFolder, e.to_string())
                    .with_help("choose a writable, empty or new folder with --out DIR"),
                EXIT_USAGE,
            )
        })?;
        if let Ok(mut slot) = folder_slot.lock() {
            *slot = Some(folder.path().to_path_buf());
        }
        let manifest = Manifest {
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
            warnings: Vec::new(),
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
        };
        it.folder
            .begin(plan, &it.results.manifest)
            .map_err(|e| it.io_failure(&e))?;
        let contrast = plan.staircase.start();
        let sheet = preview_sheet(
            &trials::preview_images(plan, PREVIEW_PAIRS, contrast),
            (2 * PREVIEW_PAIRS as usize).max(4),
        );
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
