//! See `psyrun-build` (crates/psyrun-build): test cfgs, and for libtorch-linked targets the
//! rpath to libtorch and the CUDA link flags.
fn main() {
    psyrun_build::run();
}
