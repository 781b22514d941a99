//! `psyrun`: the light front end. `check`, `plan`, `layers` and `stimuli` run here without
//! loading libtorch; `run`, `features` and `doctor` are handed to `psyrun-torch`, installed
//! next to this binary.
fn main() -> std::process::ExitCode {
    psyrun_cli::main(&psyrun_cli::ExecBackend)
}
