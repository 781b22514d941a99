//! The build scripts of psyrun's three crates, shared: each crate's `build.rs` is one call of
//! [`run`] (a build-dependency rather than one file named by all three, because cargo
//! fingerprints a build script outside its package by absolute path, and clones sharing a
//! target dir would then reuse each other's scripts). It tells the tests what this machine
//! can check, and makes every libtorch-linked target run without `LD_LIBRARY_PATH`.
//!
//! Tests that need a CUDA GPU or a Python with torch (parity with torchvision) are marked
//! `#[cfg_attr(not(psyrun_cuda_tests), ignore = …)]` or `…psyrun_python_tests…`, so that a
//! machine without them shows them as *ignored*, and a machine with them fails them when they
//! fail (instead of a test that passes after printing "skipped"). This script sets the cfgs:
//! `psyrun_cuda_tests` when `nvidia-smi -L` lists a GPU, `psyrun_python_tests` when
//! `$PSYRUN_PYTHON` (else `python3`) imports numpy, torch and torchvision;
//! `PSYRUN_TEST_CUDA=0|1` and `PSYRUN_TEST_PYTHON=0|1` override either (`./dev` sets
//! `PSYRUN_PYTHON` to its venv's python and `PSYRUN_TEST_PYTHON=1`).
//!
//! For `psyrun-cli` it does something only with the `torch` feature. Then `torch-sys` (which
//! has `links = "tch"`, a direct dependency of both crates) hands us the libtorch library
//! folder as `DEP_TCH_LIBTORCH_LIB`, and we
//!
//! * add an rpath to that folder to every binary, so `psyrun-torch` and the tests find
//!   `libtorch*.so` at run time (libtorch's own rpath then finds the CUDA libraries of a
//!   PyPI wheel); it loads nothing by itself;
//! * re-add `libtorch_cuda` (when present) after `-Wl,--no-as-needed` for the same targets:
//!   nothing references its symbols directly, so the default `--as-needed` would drop it and
//!   CUDA would never register (`tch::Cuda::is_available()` false on a GPU machine);
//! * bake libtorch's version and library folder into the crate (`PSYRUN_LIBTORCH_VERSION`,
//!   `PSYRUN_LIBTORCH_LIB`) for `psyrun doctor`.
//!
//! The front end `psyrun` gets none of this: it never calls into libtorch, so `--as-needed`
//! keeps libtorch out of its `DT_NEEDED` list. In `psyrun-torch` every target (unit tests,
//! the forward benchmark) links libtorch, so each gets all of it.
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `psyrun-cli`'s targets that load libtorch, as the suffix of `cargo:rustc-link-arg…`.
const CLI_TORCH_TARGETS: [&str; 2] = ["-bin=psyrun-torch=", "-tests="];
/// `psyrun-torch`: all of its targets.
const TORCH_CRATE_TARGETS: [&str; 1] = ["="];

/// Everything a crate's build script does (the crate is told apart by `CARGO_PKG_NAME`).
pub fn run() {
    println!("cargo:rerun-if-changed=build.rs");
    test_cfgs();
    if env::var("CARGO_PKG_NAME").is_ok_and(|n| n == "psyrun") {
        return; // the core crate never links libtorch
    }
    for var in ["LIBTORCH", "LIBTORCH_LIB", "LIBTORCH_USE_PYTORCH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let torch_crate = env::var("CARGO_PKG_NAME").is_ok_and(|n| n == "psyrun-torch");
    if !torch_crate && env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return; // the libtorch-free front end needs nothing from here
    }
    let targets: &[&str] = if torch_crate {
        &TORCH_CRATE_TARGETS
    } else {
        &CLI_TORCH_TARGETS
    };
    let Some(lib) = env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        // torch-sys only reports its folder on Linux and macOS.
        println!("cargo:warning=torch-sys did not report a libtorch folder; no rpath set");
        println!("cargo:rustc-env=PSYRUN_LIBTORCH_VERSION=unknown");
        println!("cargo:rustc-env=PSYRUN_LIBTORCH_LIB=unknown");
        println!("cargo:rustc-env=PSYRUN_TCH_VERSION=unknown");
        return;
    };
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();

    let version = libtorch_version(&lib).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PSYRUN_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=PSYRUN_LIBTORCH_LIB={}", lib.display());
    let short = version.split('+').next().unwrap_or_default();
    let supported = supported_libtorch();
    let releases: Vec<String> = supported.iter().map(|s| format!("\"{}\"", s.tch)).collect();
    println!(
        "cargo:rustc-check-cfg=cfg(psyrun_tch, values({}))",
        releases.join(", ")
    );
    match supported.iter().find(|s| s.libtorch == short) {
        Some(s) => {
            println!("cargo:rustc-env=PSYRUN_TCH_VERSION={}", s.tch);
            // For code that differs between tch releases (psyrun-torch's `compat` module).
            println!("cargo:rustc-cfg=psyrun_tch=\"{}\"", s.tch);
        }
        None if short == "unknown" => {
            println!(
                "cargo:warning=cannot tell libtorch's version at {}",
                lib.display()
            );
            println!("cargo:rustc-env=PSYRUN_TCH_VERSION=unknown");
        }
        None => {
            // torch-sys refuses a libtorch other than its release's, unless
            // LIBTORCH_BYPASS_VERSION_CHECK is set: psyrun refuses one it does not support.
            let names: Vec<&str> = supported.iter().map(|s| s.libtorch.as_str()).collect();
            eprintln!(
                "error: libtorch {version} at {} is not supported: psyrun builds against \
                 libtorch {} (Cargo.toml's [workspace.metadata.psyrun] supported); \
                 e.g. PSYRUN_LIBTORCH={} ./dev test installs and uses one (docs/setup.md)",
                lib.display(),
                names.join(", "),
                names.first().copied().unwrap_or("2.13.0"),
            );
            std::process::exit(1);
        }
    }

    if os == "linux" || os == "macos" {
        // For every target, including the library's unit tests (which `-tests=` misses). An
        // rpath alone loads nothing: `psyrun` still does not load libtorch.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    if os == "linux" && lib.join("libtorch_cuda.so").exists() {
        for target in targets {
            println!("cargo:rustc-link-arg{target}-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg{target}-L{}", lib.display());
            println!("cargo:rustc-link-arg{target}-ltorch_cuda");
            println!("cargo:rustc-link-arg{target}-Wl,--as-needed");
        }
    }
}

/// Sets `psyrun_cuda_tests` and `psyrun_python_tests` (see the top of this file).
fn test_cfgs() {
    println!("cargo:rustc-check-cfg=cfg(psyrun_cuda_tests)");
    println!("cargo:rustc-check-cfg=cfg(psyrun_python_tests)");
    for var in ["PSYRUN_TEST_CUDA", "PSYRUN_TEST_PYTHON", "PSYRUN_PYTHON"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let forced = |var: &str| match env::var(var).as_deref() {
        Ok("1") => Some(true),
        Ok("0") => Some(false),
        _ => None,
    };
    let cuda = forced("PSYRUN_TEST_CUDA").unwrap_or_else(|| {
        Command::new("nvidia-smi")
            .arg("-L")
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GPU"))
    });
    let python = forced("PSYRUN_TEST_PYTHON").unwrap_or_else(|| {
        let python = env::var_os("PSYRUN_PYTHON").unwrap_or_else(|| "python3".into());
        Command::new(python)
            .args(["-c", "import numpy, torch, torchvision"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if cuda {
        println!("cargo:rustc-cfg=psyrun_cuda_tests");
    }
    if python {
        println!("cargo:rustc-cfg=psyrun_python_tests");
    }
}

/// One libtorch psyrun builds against, with the tch release that binds it.
struct Supported {
    /// libtorch's version, e.g. `2.11.0`.
    libtorch: String,
    /// The tch (and torch-sys) release for it, e.g. `0.24.0`.
    tch: String,
}

/// `[workspace.metadata.psyrun] supported` of the workspace's Cargo.toml: entries
/// `"libtorch tch torchvision"`.
fn supported_libtorch() -> Vec<Supported> {
    let Some(list) = workspace_metadata("supported") else {
        return Vec::new();
    };
    list.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter_map(|entry| {
            let mut words = entry.trim().trim_matches('"').split_whitespace();
            Some(Supported {
                libtorch: words.next()?.to_owned(),
                tch: words.next()?.to_owned(),
            })
        })
        .collect()
}

/// A `key = value` line of `[workspace.metadata.psyrun]` in the workspace's Cargo.toml (the
/// value's text), telling cargo to rerun when that file changes.
fn workspace_metadata(key: &str) -> Option<String> {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    for root in dir.ancestors() {
        let manifest = root.join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        if !text.contains("[workspace]") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", manifest.display());
        let section = text.split("[workspace.metadata.psyrun]").nth(1)?;
        return section
            .lines()
            .take_while(|l| !l.trim_start().starts_with('['))
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            });
    }
    None
}

/// libtorch's version in the folder above `lib/`, telling cargo to rerun when it changes.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    for name in ["build-version", "version.py"] {
        let file = root.join(name);
        // (a missing file would make cargo rerun this script on every build)
        if file.exists() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
    libtorch_version_in(root)
}

/// libtorch's version in its root folder (the one above `lib/`): `build-version` of a
/// libtorch zip, or `__version__` in `version.py` of a PyPI wheel. Also used at run time by
/// `psyrun doctor` (`psyrun-torch` depends on this crate for it).
pub fn libtorch_version_in(root: &Path) -> Option<String> {
    if let Ok(text) = fs::read_to_string(root.join("build-version")) {
        let v = text.trim();
        if !v.is_empty() {
            return Some(v.to_owned());
        }
    }
    let text = fs::read_to_string(root.join("version.py")).ok()?;
    text.lines().find_map(|line| {
        let rest = line
            .strip_prefix("__version__")?
            .trim_start()
            .strip_prefix('=')?;
        Some(
            rest.trim()
                .trim_matches(|c| c == '\'' || c == '"')
                .to_owned(),
        )
    })
}
