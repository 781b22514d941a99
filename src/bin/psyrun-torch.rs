//! The libtorch-linked half of psyrun: `run` and `doctor`. Users call `psyrun`, which hands
//! these commands over to this binary (it sits next to `psyrun`).
fn main() -> std::process::ExitCode {
    psyrun::cli::main(&psyrun::torch::TorchBackend)
}
