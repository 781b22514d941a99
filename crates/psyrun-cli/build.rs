//! Build script of `psyrun-cli` and `psyrun-torch` (both name this file): makes every
//! libtorch-linked target run without `LD_LIBRARY_PATH`.
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

/// `psyrun-cli`'s targets that load libtorch, as the suffix of `cargo:rustc-link-arg…`.
const CLI_TORCH_TARGETS: [&str; 2] = ["-bin=psyrun-torch=", "-tests="];
/// `psyrun-torch`: all of its targets.
const TORCH_CRATE_TARGETS: [&str; 1] = ["="];

/// The libtorch version tch 0.26 binds (the one place a build states it; `./dev` reads it
/// from here too).
const LIBTORCH_VERSION: &str = "2.13.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
        return;
    };
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();

    let version = libtorch_version(&lib).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PSYRUN_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=PSYRUN_LIBTORCH_LIB={}", lib.display());
    let short = version.split('+').next().unwrap_or_default();
    if short != "unknown" && short != LIBTORCH_VERSION {
        println!(
            "cargo:warning=libtorch at {} is {version}; psyrun expects {LIBTORCH_VERSION}",
            lib.display()
        );
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

/// libtorch's version: `build-version` of a libtorch zip, or `version.py` of a PyPI wheel,
/// both in the folder above `lib/`.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    let build_version = root.join("build-version");
    let version_py = root.join("version.py");
    for file in [&build_version, &version_py] {
        // (a missing file would make cargo rerun this script on every build)
        if file.exists() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
    if let Ok(text) = fs::read_to_string(&build_version) {
        let v = text.trim();
        if !v.is_empty() {
            return Some(v.to_owned());
        }
    }
    let text = fs::read_to_string(&version_py).ok()?;
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
