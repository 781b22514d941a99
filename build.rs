//! Build script: makes the libtorch-linked binaries run without `LD_LIBRARY_PATH`.
//!
//! Only does something with the `torch` feature. Then `torch-sys` (which has
//! `links = "tch"`) hands us the libtorch library folder as `DEP_TCH_LIBTORCH_LIB`, and we
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
//! keeps libtorch out of its `DT_NEEDED` list.
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// Targets that may load libtorch, as the suffix of `cargo:rustc-link-arg…`. (Cargo rejects
/// `-benches=` while the package has no bench target; add it with the first bench.)
const TORCH_TARGETS: [&str; 2] = ["-bin=psyrun-torch=", "-tests="];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["LIBTORCH", "LIBTORCH_LIB", "LIBTORCH_USE_PYTORCH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return; // the libtorch-free build needs nothing from here
    }
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
    if short != "unknown" && short != "2.13.0" {
        println!(
            "cargo:warning=libtorch at {} is {version}; psyrun expects 2.13.0",
            lib.display()
        );
    }

    if os == "linux" || os == "macos" {
        // For every target, including the library's unit tests (which `-tests=` misses). An
        // rpath alone loads nothing: `psyrun` still does not load libtorch.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    if os == "linux" && lib.join("libtorch_cuda.so").exists() {
        for target in TORCH_TARGETS {
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
