//! The libtorch-linked half of psyrun: `run` and `doctor`. Users call `psyrun`, which hands
//! these commands over to this binary (it sits next to `psyrun`).
//!
//! Everything that uses tch lives in this binary's module tree (`src/torch/`), never in the
//! `psyrun` library: torch-sys's exported symbols would otherwise make the linker keep
//! libtorch in the front end too, and every `psyrun check` would pay for loading it.
use psyrun::cli;

#[path = "../torch/mod.rs"]
mod torch;

fn main() -> std::process::ExitCode {
    cli::main(&torch::TorchBackend)
}
