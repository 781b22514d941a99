//! What depends on the libtorch release psyrun is built against (2.11 with tch 0.24, 2.13 with
//! tch 0.26: Cargo.toml's `[workspace.metadata.psyrun] supported`), kept in this one module.
//!
//! Between tch 0.24 and 0.26 the API psyrun uses is the same: the releases differ in the
//! generated bindings of operators psyrun does not call (0.26 adds the Philox random-number
//! operators, Lanczos upsampling, `Tensor::get_device` and `storage_offset`; 0.24 still has
//! `align_as`), so no code differs today. Code that must differ goes here, behind
//! `cfg(psyrun_tch = "…")` set by the build script from the libtorch it links.

/// libtorch's version as found at build time (`build.rs`, from `build-version` or `version.py`).
pub const LIBTORCH_BUILD_VERSION: &str = env!("PSYRUN_LIBTORCH_VERSION");
/// libtorch's library folder at build time (also the rpath of `psyrun-torch`).
pub const LIBTORCH_BUILD_LIB: &str = env!("PSYRUN_LIBTORCH_LIB");
/// The tch release psyrun is built with (the one that binds [`LIBTORCH_BUILD_VERSION`]).
pub const TCH_VERSION: &str = env!("PSYRUN_TCH_VERSION");
