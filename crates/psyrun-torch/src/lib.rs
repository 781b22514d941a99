//! psyrun on libtorch: catalog and TorchScript backbones, their weights, stimuli as tensor
//! operations for CUDA, the [`interpreter`] that runs a plan, and feature extraction.
//!
//! Everything in psyrun that links libtorch is here; the core crate `psyrun` (language,
//! plans, stimuli, reports) never does, and neither does the `psyrun` binary. The
//! `psyrun-torch` binary of `psyrun-cli` is a thin command-line adapter over this crate:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use psyrun::{plan, progress::Recorder, source::SourceFile};
//! use psyrun_torch::interpreter::{execute, RunOptions};
//! use std::path::Path;
//! use std::sync::atomic::AtomicBool;
//!
//! let path = Path::new("experiments/quick_csf.psy");
//! let file = SourceFile::read(path)?;
//! // `--set probe.epochs=1`; a file with a sweep has several conditions.
//! let overrides = vec!["probe.epochs=1".parse::<plan::sweep::Override>()?];
//! let compiled = plan::sweep::compile_experiment(&file, path, &overrides);
//! let conditions = compiled.conditions.expect("the experiment has no errors");
//! let plan = &conditions[0].plan;
//! let stop = AtomicBool::new(false);
//! let options = RunOptions {
//!     file: &file,
//!     path,
//!     out: Some(Path::new("results")),
//!     runs_root: Path::new("."),
//!     command_line: vec!["example".into()],
//!     stop: &stop,
//!     resume: None,
//!     warnings: Vec::new(),
//!     overrides: overrides.iter().map(ToString::to_string).collect(),
//!     condition: None,
//!     sources: &compiled.sources,
//! };
//! let mut events = Recorder::default();
//! let (folder, results) = execute(plan, &options, &mut events).map_err(|f| f.diags[0].message.clone())?;
//! println!("{} thresholds in {}", results.staircases.len(), folder.display());
//! # Ok(())
//! # }
//! ```
// `Failure` carries diagnostics (a few hundred bytes), returned on cold paths only.
#![allow(clippy::result_large_err)]
#![warn(missing_docs, unreachable_pub)]

pub mod backbone;
mod compat;
pub mod device;
pub mod device_stimuli;
pub mod failure;
pub mod features;
pub mod interpreter;
pub mod script;
pub mod weights;

pub use failure::Failure;

use std::path::{Path, PathBuf};

pub use compat::{LIBTORCH_BUILD_LIB, LIBTORCH_BUILD_VERSION, TCH_VERSION};

/// `--threads N`: libtorch's intra-op threads and rayon's pool (which renders stimuli) get
/// `n` threads each, before either starts. Without it, both take one per core (libtorch
/// also reads `OMP_NUM_THREADS`).
pub fn set_threads(n: Option<u16>) {
    if let Some(n) = n {
        tch::set_num_threads(i32::from(n));
        // Fails only if the pool already exists, which nothing before this creates.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(usize::from(n))
            .build_global();
    }
}

/// Keeps freed memory in the process instead of returning it to the system.
///
/// A forward pass allocates activation buffers of tens to hundreds of megabytes. glibc serves
/// blocks above 32 MB with a fresh `mmap` and unmaps them on free, so every batch touches
/// new pages: on 2 CPU cores the kernel's page-fault work took as long as the network
/// (resnet50 to `layer2` at 224 px: 57 s → 29 s wall time, system time 54 s → 3 s, same
/// results). With mmap off and trimming off, freed buffers are reused; the price is a peak
/// resident size that stays allocated until exit (1.7 → 2.8 GB there).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the run allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

/// What `psyrun doctor` reports about this build and the libtorch it loaded.
#[derive(Clone, Debug)]
pub struct Report {
    /// psyrun's version.
    pub psyrun_version: &'static str,
    /// libtorch's version read next to the loaded library, else the build-time one.
    pub libtorch_version: String,
    /// The loaded `libtorch_cpu` (or the build-time library folder when not found).
    pub libtorch_path: PathBuf,
    /// `tch::Cuda::is_available()`.
    pub cuda_available: bool,
    /// `tch::Cuda::device_count()`.
    pub cuda_devices: i64,
    /// `tch::Cuda::cudnn_is_available()`.
    pub cudnn_available: bool,
    /// cuDNN's version when available (e.g. 92000).
    pub cudnn_version: Option<i64>,
    /// Whether the loaded libtorch has CUDA support compiled in (`libtorch_cuda` loaded).
    pub cuda_built: bool,
    /// Intra-op CPU threads (`tch::get_num_threads()`).
    pub cpu_threads: i32,
    /// Inter-op CPU threads (`tch::get_num_interop_threads()`).
    pub interop_threads: i32,
}

impl Report {
    /// Asks libtorch.
    pub fn collect() -> Self {
        let cuda_available = tch::Cuda::is_available();
        let cudnn_available = cuda_available && tch::Cuda::cudnn_is_available();
        let loaded = loaded_libraries();
        let cpu = loaded.iter().find(|p| file_name_starts(p, "libtorch_cpu."));
        let cuda_built = loaded.iter().any(|p| file_name_starts(p, "libtorch_cuda."));
        let libtorch_path = cpu
            .cloned()
            .unwrap_or_else(|| Path::new(LIBTORCH_BUILD_LIB).join("libtorch_cpu.so"));
        let libtorch_version = cpu
            .and_then(|p| {
                p.parent()?
                    .parent()
                    .and_then(psyrun_build::libtorch_version_in)
            })
            .unwrap_or_else(|| LIBTORCH_BUILD_VERSION.to_owned());
        Report {
            psyrun_version: env!("CARGO_PKG_VERSION"),
            libtorch_version,
            libtorch_path,
            cuda_available,
            cuda_devices: if cuda_available {
                tch::Cuda::device_count()
            } else {
                0
            },
            cudnn_available,
            cudnn_version: cudnn_available.then(tch::utils::version_cudnn),
            cuda_built,
            cpu_threads: tch::get_num_threads(),
            interop_threads: tch::get_num_interop_threads(),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "psyrun            {}", self.psyrun_version)?;
        write!(f, "libtorch          {}", self.libtorch_version)?;
        if self.libtorch_version != LIBTORCH_BUILD_VERSION {
            write!(f, " (built against {LIBTORCH_BUILD_VERSION})")?;
        }
        writeln!(f)?;
        writeln!(f, "tch               {TCH_VERSION}")?;
        writeln!(f, "libtorch library  {}", self.libtorch_path.display())?;
        let cuda_note = match (self.cuda_available, self.cuda_built) {
            (true, _) => "",
            (false, true) => " (libtorch has CUDA; no usable GPU or driver found)",
            (false, false) => " (this libtorch has no CUDA support)",
        };
        writeln!(
            f,
            "CUDA available    {}{cuda_note}",
            yes_no(self.cuda_available)
        )?;
        writeln!(f, "CUDA devices      {}", self.cuda_devices)?;
        match self.cudnn_version {
            Some(v) => writeln!(f, "cuDNN available   yes (version {v})")?,
            None => writeln!(f, "cuDNN available   {}", yes_no(self.cudnn_available))?,
        }
        writeln!(
            f,
            "CPU threads       {} (inter-op {})",
            self.cpu_threads, self.interop_threads
        )
    }
}

fn file_name_starts(path: &Path, prefix: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(prefix))
}

/// Shared libraries mapped into this process (Linux; empty elsewhere).
fn loaded_libraries() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .map(PathBuf::from)
        .collect();
    libs.dedup();
    libs
}
