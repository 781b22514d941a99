//! `psyrun`: the light front end. `check`, `plan` and `layers` run here without loading
//! libtorch; `run` and `doctor` are handed to `psyrun-torch`, installed next to this binary.
fn main() -> std::process::ExitCode {
    psyrun::cli::main(&psyrun::cli::ExecBackend)
}
