//! Devices: which one a run uses, TF32 on CUDA, and where stimuli are rendered. Shared by
//! the interpreter and feature extraction.

use crate::failure::Failure;
use psyrun::diag::{Code, Diag};
use psyrun::exit::{EXIT_RUN, EXIT_USAGE};
use psyrun::plan::{self, Plan, Setting};
use psyrun::source::SourceFile;
use tch::Device;

/// (`device_stimuli`, identical images). The device when it is CUDA; `PSYRUN_STIMULI=host`
/// or `device` overrides (to compare the two, or to test the device path on a CPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StimuliOn {
    /// On the host, with rayon.
    Host,
    /// As tensor operations on the run's device.
    Device,
}

impl StimuliOn {
    /// `host` or `device`, as the manifest records it.
    pub fn name(self) -> &'static str {
        match self {
            StimuliOn::Host => "host",
            StimuliOn::Device => "device",
        }
    }
}

/// The environment variable that overrides where stimuli are rendered.
pub const STIMULI_VAR: &str = "PSYRUN_STIMULI";

/// Where a run on `device` renders its stimuli, unless `PSYRUN_STIMULI` says otherwise.
pub fn stimuli_on(device: Device) -> Result<StimuliOn, Failure> {
    match std::env::var(STIMULI_VAR).ok().as_deref() {
        None | Some("") => Ok(if device.is_cuda() {
            StimuliOn::Device
        } else {
            StimuliOn::Host
        }),
        Some("host") => Ok(StimuliOn::Host),
        Some("device") => Ok(StimuliOn::Device),
        Some(other) => Err(Failure::new(
            Diag::error(
                Code::PlanUnknownValue,
                format!("{STIMULI_VAR}={other} is not a place to render stimuli"),
            )
            .with_help(format!(
                "set {STIMULI_VAR} to `host` or `device`, or unset it (the device when it is CUDA, else the host)"
            )),
            EXIT_USAGE,
        )),
    }
}

/// `cpu`, `cuda:0`.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The plan's device, checked against the machine.
pub fn select_device(plan: &Plan, file: &SourceFile) -> Result<Device, Failure> {
    check_device(
        plan.device,
        Some((plan, file)),
        "use `device auto` (CUDA when present, else the CPU) or `device cpu`",
    )
    .map_err(|d| Failure::new(d, EXIT_RUN))
}

/// `device` checked against the machine; the error points at the `device` setting of the
/// plan's source when there is one, with `advice` as the first part of its help.
pub fn check_device(
    device: plan::Device,
    source: Option<(&Plan, &SourceFile)>,
    advice: &str,
) -> Result<Device, Diag> {
    let cuda = tch::Cuda::is_available();
    let count = if cuda { tch::Cuda::device_count() } else { 0 };
    match device {
        plan::Device::Cpu => Ok(Device::Cpu),
        plan::Device::Auto => Ok(if cuda { Device::Cuda(0) } else { Device::Cpu }),
        plan::Device::Cuda(n) if i64::from(n) < count => Ok(Device::Cuda(n as usize)),
        plan::Device::Cuda(n) => {
            let why = if count == 0 {
                "this machine has no usable CUDA device (or this libtorch has no CUDA support)"
                    .to_string()
            } else {
                format!(
                    "this machine has {count} CUDA device(s): cuda:0 to cuda:{}",
                    count - 1
                )
            };
            let mut d = Diag::error(Code::RunNoCuda, format!("`cuda:{n}` asked for, but {why}"))
                .with_help(format!(
                    "{advice}; `psyrun doctor` shows what libtorch sees"
                ));
            if let Some((plan, file)) = source {
                d = plan
                    .spans
                    .label(d, Setting::Device, file, "CUDA device asked for here");
            }
            Err(d)
        }
    }
}

/// Whether cuDNN and cuBLAS may use TensorFloat-32 (10-bit mantissa) for float32 work on
/// CUDA. libtorch lets cuDNN use it by default, so a float32 experiment on an Ampere or later
/// GPU would silently compute its convolutions in TF32. For `fp32` and `bf16`,
/// `NVIDIA_TF32_OVERRIDE=0`, which cuDNN and cuBLAS read when they start (before this
/// process's first CUDA operation, hence here), switches it off for every operation,
/// TorchScript modules included; catalog backbones also pass the choice to each convolution
/// ([`Backbone::set_precision`](crate::backbone::Backbone::set_precision)). A value the user set is left alone.
pub fn set_tf32(precision: plan::Precision) {
    const VAR: &str = "NVIDIA_TF32_OVERRIDE";
    if precision != plan::Precision::Tf32 && std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, "0");
    }
}
