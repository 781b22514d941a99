//! How the libtorch half fails, in one place: the [`Failure`] every step returns, the
//! catching of panics (a libtorch exception, which tch raises as a panic, or a bug in
//! psyrun, told apart), and the diagnostics for weights and TorchScript files.

// `Failure` carries diagnostics (a few hundred bytes), returned on cold paths only.
#![allow(clippy::result_large_err)]

use crate::script::ScriptError;
use crate::weights::WeightsError;
use psyrun::diag::{Code, Diag};
use psyrun::exit::{EXIT_INTERRUPTED, EXIT_RUN};
use psyrun::plan::{Plan, Setting};
use psyrun::source::SourceFile;
use std::path::PathBuf;
use std::sync::Mutex;

/// Why a run or an extraction stopped: the diagnostics to show, the process exit code, and
/// the run folder when one exists (kept with its `INCOMPLETE` marker).
#[derive(Debug)]
pub struct Failure {
    /// What went wrong (every problem found, errors first).
    pub diags: Vec<Diag>,
    /// The process exit code ([`psyrun::exit`]).
    pub exit: u8,
    /// The run folder, kept with its `INCOMPLETE` marker.
    pub folder: Option<PathBuf>,
}

impl Failure {
    /// One diagnostic and its exit code, no run folder.
    pub fn new(diag: Diag, exit: u8) -> Self {
        Failure {
            diags: vec![diag],
            exit,
            folder: None,
        }
    }

    /// The same failure, with the run folder it left behind.
    #[must_use]
    pub fn in_folder(mut self, folder: Option<PathBuf>) -> Self {
        self.folder = folder;
        self
    }
}

/// A panic caught by [`guarded`]: libtorch's exception (tch raises them as `unwrap` panics
/// on `Err(Torch("…"))`) or anything else, which is a bug in psyrun.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caught {
    /// libtorch's message, or the panic's.
    pub message: String,
    /// Where the panic was raised (`file:line`).
    pub location: String,
    /// Whether libtorch raised it (else it is a bug in psyrun).
    pub from_libtorch: bool,
}

impl Caught {
    /// The failure to report: `psy::run::torch` for libtorch's errors (with `oom_advice`,
    /// what to shrink when it says out of memory), `psy::run::bug` for psyrun's own.
    pub fn failure(&self, oom_advice: &str) -> Failure {
        let diag = if self.from_libtorch {
            Diag::error(
                Code::RunTorch,
                format!("libtorch failed: {}", first_lines(&self.message, 12)),
            )
            .with_help(format!(
                "if this says out of memory, {oom_advice}; otherwise please report it with \
                 the experiment file or command line (raised at {})",
                self.location
            ))
        } else {
            Diag::error(
                Code::RunBug,
                format!("psyrun failed: {}", first_lines(&self.message, 12)),
            )
            .with_help(format!(
                "this is a bug in psyrun, not in your experiment: please report it with the \
                 experiment file, `psyrun doctor`'s output and this message (at {})",
                self.location
            ))
        };
        Failure::new(diag, EXIT_RUN)
    }
}

/// Runs `f`, catching any panic without printing it.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Caught> {
    quietly(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))).map_err(
        |(payload, location)| {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            // tch raises libtorch errors as `….unwrap()` panics on `Err(Torch("…"))`.
            let torch = message
                .split_once("Torch(\"")
                .and_then(|(_, rest)| rest.rsplit_once("\")"))
                .map(|(inner, _)| inner.replace("\\n", "\n").replace("\\\"", "\""));
            Caught {
                from_libtorch: torch.is_some(),
                message: torch.unwrap_or_else(|| message.to_owned()),
                location,
            }
        },
    )
}

type Payload = (Box<dyn std::any::Any + Send>, String);

/// Runs `f` with a panic hook that records the location instead of printing.
fn quietly<T>(f: impl FnOnce() -> std::thread::Result<T>) -> Result<T, Payload> {
    static LOCATION: Mutex<String> = Mutex::new(String::new());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut l) = LOCATION.lock() {
            *l = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
        }
    }));
    let r = f();
    std::panic::set_hook(previous);
    r.map_err(|p| {
        let loc = LOCATION.lock().map(|l| l.clone()).unwrap_or_default();
        (p, loc)
    })
}

fn first_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= n {
        s.trim_end().to_owned()
    } else {
        format!(
            "{}\n… ({} more lines)",
            lines[..n].join("\n"),
            lines.len() - n
        )
    }
}

/// A TorchScript error as a diagnostic pointing at the `backbone torchscript "…"` line of
/// the plan's source, when there is one.
pub fn script_diag(e: &ScriptError, source: Option<(&Plan, &SourceFile)>) -> Diag {
    let d = Diag::error(Code::RunTorchScript, e.to_string()).with_help(e.help());
    let Some((plan, file)) = source else {
        return d;
    };
    let label = match e {
        ScriptError::Io { .. } => "this file cannot be read",
        ScriptError::NotTorchScript { .. } => "not a TorchScript module",
        ScriptError::Load { .. } => "libtorch cannot load this module",
        ScriptError::Output { .. } => "this module's output does not fit",
    };
    plan.spans.label(d, Setting::Backbone, file, label)
}

/// A weights error as a run failure, pointing at the `weights` setting.
pub fn weights_failure(e: WeightsError, source: Option<(&Plan, &SourceFile)>) -> Failure {
    let (diag, exit) = weights_diag(e, source);
    Failure::new(diag, exit)
}

/// A weights error as a diagnostic and an exit code, pointing at the `weights` setting of
/// the plan's source when there is one.
pub fn weights_diag(e: WeightsError, source: Option<(&Plan, &SourceFile)>) -> (Diag, u8) {
    use psyrun::checkpoint::CheckpointError;
    use psyrun::hub::{HubError, BASE_URL_VAR, DEFAULT_BASE_URL};
    let (code, label, help, exit) = match &e {
        WeightsError::Io { .. } => (
            Code::RunWeightsFile,
            "this weights file cannot be read",
            "a relative path is taken from the experiment file's folder (for `psyrun features` without \
             --experiment, from the working directory)"
                .to_string(),
            EXIT_RUN,
        ),
        WeightsError::Format { .. } | WeightsError::UnknownFormat { .. } => (
            Code::RunWeightsFile,
            "not a usable weights file",
            "psyrun reads .safetensors files and PyTorch checkpoints (.pth, .pt) holding a torchvision state_dict".to_string(),
            EXIT_RUN,
        ),
        WeightsError::Checkpoint { source, .. } => (
            Code::RunWeightsFile,
            match source {
                CheckpointError::Io { .. } => "this weights file cannot be read",
                CheckpointError::Forbidden { .. } => "this checkpoint holds more than tensors",
                _ => "not a usable PyTorch checkpoint",
            },
            source.help().to_string(),
            EXIT_RUN,
        ),
        WeightsError::Hub(h) => match h {
            HubError::Download { .. } => (
                Code::RunWeightsDownload,
                "not in torch's cache, and the download failed",
                format!("the folder is torchvision's own cache ($TORCH_HOME/hub/checkpoints); a file copied there \
                         by hand is used without downloading; set {BASE_URL_VAR} to download from a mirror instead \
                         of {DEFAULT_BASE_URL}"),
                EXIT_RUN,
            ),
            HubError::Corrupt { .. } => (
                Code::RunWeightsDownload,
                "the downloaded torchvision weights are corrupt",
                "run again to download them again; the file's name carries the start of its SHA-256".to_string(),
                EXIT_RUN,
            ),
            HubError::CachedCorrupt { .. } => (
                Code::RunWeightsDownload,
                "the cached file of these torchvision weights is corrupt",
                "delete the file named above (an interrupted copy?); the next run downloads it again".to_string(),
                EXIT_RUN,
            ),
            HubError::NoCacheFolder | HubError::Folder { .. } | HubError::Io { .. } => (
                Code::RunWeightsDownload,
                "torch's weights cache cannot be used",
                "set TORCH_HOME to a writable folder; weights are kept in $TORCH_HOME/hub/checkpoints".to_string(),
                EXIT_RUN,
            ),
            HubError::UnknownSet { .. } => (
                Code::RunWeightsDownload,
                "torchvision publishes no such weight set",
                "`psyrun check` lists the weight sets of each architecture".to_string(),
                EXIT_RUN,
            ),
            HubError::Cancelled { .. } => (
                Code::RunInterrupted,
                "interrupted while downloading these weights",
                "run again to download them".to_string(),
                EXIT_INTERRUPTED,
            ),
        },
        WeightsError::Mismatch(_) => (
            Code::RunWeightsMismatch,
            "these weights do not fit the backbone",
            "the file must hold the torchvision state_dict of exactly this architecture (keys past the cut may be missing)".to_string(),
            EXIT_RUN,
        ),
        WeightsError::Torch(_) => (
            Code::RunTorch,
            "libtorch failed while loading these weights",
            "please report this with the weights file's origin".to_string(),
            EXIT_RUN,
        ),
    };
    let mut d = Diag::error(code, e.to_string()).with_help(help);
    if let Some((plan, file)) = source {
        d = plan.spans.label(d, Setting::Weights, file, label);
    }
    (d, exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_errors_and_psyrun_bugs_are_told_apart() {
        // A libtorch exception, as tch raises it.
        let torch = guarded(|| {
            tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu)).matmul(
                &tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu)),
            )
        })
        .unwrap_err();
        assert!(torch.from_libtorch, "{torch:?}");
        assert!(!torch.message.contains("Torch(\""), "{}", torch.message);
        let f = torch.failure("use less");
        assert!(f.diags[0]
            .help
            .as_deref()
            .unwrap()
            .contains("out of memory, use less;"));
        assert_eq!(f.diags[0].code, Code::RunTorch);
        assert_eq!(f.exit, EXIT_RUN);
        // Anything else is psyrun's own bug: psy::run::bug, never "libtorch failed".
        let bug = guarded(|| {
            let v: Vec<u8> = Vec::new();
            v[3]
        })
        .unwrap_err();
        assert!(!bug.from_libtorch);
        assert!(bug.location.contains("failure.rs"), "{}", bug.location);
        let f = bug.failure("use less");
        assert_eq!(f.diags[0].code.as_str(), "psy::run::bug");
        assert!(f.diags[0]
            .message
            .starts_with("psyrun failed: index out of bounds"));
        assert_eq!(guarded(|| 7).unwrap(), 7);
    }
}
