//! The front-end commands: check, plan, layers, and the hand-over to `psyrun-torch`.

use super::{PlanFormat, Ui, EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE};
use psyrun::diag::{Code, Diag};
use psyrun::models::catalog::{self, Arch, ShapeError};
use psyrun::plan::sweep::{compile_experiment, select, Compiled, Condition, Override};
use psyrun::plan::{compile, to_json, to_ron, Lowered};
use psyrun::source::SourceFile;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Reads and compiles one file; I/O problems become diagnostics too.
pub(crate) fn load(path: &Path) -> Result<(SourceFile, Lowered), Diag> {
    let file = SourceFile::read(path)?;
    let lowered = compile(&file);
    Ok((file, lowered))
}

/// Reads and compiles an experiment with its imports, `overrides` and sweep, checking that
/// the weights and TorchScript files it names exist where a run would look
/// (`psy::plan::missing_file`): for `check` and `plan`.
fn load_checked(path: &Path, overrides: &[Override]) -> Result<Compiled, Diag> {
    let file = SourceFile::read(path)?;
    Ok(compile_experiment(&file, path, overrides))
}

/// Checks files; returns the rendered report (diagnostics, then one line per file) and
/// the exit code. Used by `psyrun check` and by tests.
pub fn check_files(paths: &[impl AsRef<Path>], color: bool) -> (String, String, u8) {
    check_files_with(paths, &[], color)
}

/// [`check_files`] with `--set` overrides applied to every file.
pub fn check_files_with(
    paths: &[impl AsRef<Path>],
    overrides: &[Override],
    color: bool,
) -> (String, String, u8) {
    let mut stderr = String::new();
    let mut stdout = String::new();
    let mut code = EXIT_OK;
    for p in paths {
        let p = p.as_ref();
        match load_checked(p, overrides) {
            Err(d) => {
                stderr.push_str(&psyrun::diag::render(&[d], color));
                stdout.push_str(&format!("{}: unreadable\n", p.display()));
                code = code.max(EXIT_USAGE);
            }
            Ok(compiled) => {
                stderr.push_str(&psyrun::diag::render(&compiled.diags, color));
                let (errors, warnings) = psyrun::diag::summary(&compiled.diags);
                let status = if errors > 0 {
                    code = code.max(EXIT_INVALID);
                    format!("{errors} error{}", plural(errors))
                } else {
                    match compiled.conditions.as_ref().map_or(1, Vec::len) {
                        1 => "ok".to_string(),
                        n => format!("ok ({n} conditions)"),
                    }
                };
                let warn = if warnings > 0 {
                    format!(", {warnings} warning{}", plural(warnings))
                } else {
                    String::new()
                };
                stdout.push_str(&format!("{}: {status}{warn}\n", p.display()));
            }
        }
    }
    (stdout, stderr, code)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Writes to stdout, ignoring a closed pipe (`psyrun plan x | head`).
fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

pub(super) fn check(paths: &[std::path::PathBuf], overrides: &[Override], ui: &Ui) -> ExitCode {
    let (stdout, stderr, code) = check_files_with(paths, overrides, ui.color);
    eprint!("{stderr}");
    out(&stdout);
    ExitCode::from(code)
}

/// `psyrun fmt FILE… [--check]`: each file in the layout of `psyrun::syntax::fmt`, written
/// back atomically when it changes (`-`: standard input to standard output). A file with
/// syntax errors is reported and left alone (exit 1); an unreadable one exits 2; with
/// `--check`, a file not in the layout is listed and the exit status is 1.
pub(super) fn fmt(paths: &[std::path::PathBuf], check: bool, ui: &Ui) -> ExitCode {
    let mut code = EXIT_OK;
    let mut stdout = String::new();
    for p in paths {
        let stdin = p.as_os_str() == "-";
        let read = if stdin {
            SourceFile::read_stream("<stdin>".into(), std::io::stdin().lock())
        } else {
            SourceFile::read(p)
        };
        let file = match read {
            Ok(f) => f,
            Err(d) => {
                ui.report(&[d]);
                code = code.max(EXIT_USAGE);
                continue;
            }
        };
        let formatted = match psyrun::syntax::fmt::format(&file) {
            Ok(t) => t,
            Err(diags) => {
                let diags: Vec<Diag> = diags.into_iter().map(|d| d.with_source(&file)).collect();
                ui.report(&diags);
                stdout.push_str(&format!("{}: not formatted (syntax errors)\n", p.display()));
                code = code.max(EXIT_INVALID);
                continue;
            }
        };
        let same = formatted == *file.text;
        if stdin && !check {
            out(&formatted);
            continue;
        }
        if check {
            if !same {
                stdout.push_str(&format!("{}: not in psyrun's layout\n", p.display()));
                code = code.max(EXIT_INVALID);
            }
            continue;
        }
        if same {
            stdout.push_str(&format!("{}: unchanged\n", p.display()));
        } else if let Err(e) = psyrun::report::write_atomic(p, formatted.as_bytes()) {
            ui.report(
                &[Diag::error(Code::RunOutputFolder, e.to_string()).with_help(
                    "check the disk space and the folder's permissions; the file is unchanged",
                )],
            );
            code = code.max(EXIT_USAGE);
        } else {
            stdout.push_str(&format!("{}: formatted\n", p.display()));
        }
    }
    out(&stdout);
    ExitCode::from(code)
}

pub(super) fn plan(
    path: &Path,
    format: PlanFormat,
    overrides: &[Override],
    condition: Option<&str>,
    ui: &Ui,
) -> ExitCode {
    match load_checked(path, overrides) {
        Err(d) => {
            ui.report(&[d]);
            ExitCode::from(EXIT_USAGE)
        }
        Ok(compiled) => {
            ui.report(&compiled.diags);
            match plan_text(&compiled, format, condition) {
                Some(Ok(text)) => {
                    out(&text);
                    ExitCode::from(EXIT_OK)
                }
                Some(Err(d)) => {
                    ui.report(&[d]);
                    ExitCode::from(EXIT_USAGE)
                }
                None => ExitCode::from(EXIT_INVALID),
            }
        }
    }
}

/// What `psyrun plan` prints: the plan (RON or JSON) of an experiment without a sweep, as
/// before sweeps existed; for a sweep, the table of its conditions (index from 1, id,
/// values) and each condition's plan under a `// condition K of N` line (RON), or an array
/// of `{index, id, values, plan}` (JSON); with `condition`, that condition alone (an
/// error, `psy::plan::condition`, when it names none). `None` when the experiment has
/// errors.
pub fn plan_text(
    compiled: &Compiled,
    format: PlanFormat,
    condition: Option<&str>,
) -> Option<Result<String, Diag>> {
    let conditions = compiled.conditions.as_ref()?;
    let n = conditions.len();
    let chosen: Vec<&Condition> = match condition {
        Some(which) => match select(conditions, which) {
            Ok(c) => vec![c],
            Err(d) => return Some(Err(d)),
        },
        None => conditions.iter().collect(),
    };
    // Without a sweep, exactly the plan.
    if n == 1 {
        let plan = &conditions[0].plan;
        return Some(Ok(match format {
            PlanFormat::Ron => to_ron(plan),
            PlanFormat::Json => to_json(plan),
        }));
    }
    Some(Ok(match format {
        PlanFormat::Ron => {
            let mut s = String::new();
            if condition.is_none() {
                s.push_str(&conditions_table(conditions));
            }
            for c in &chosen {
                if !s.is_empty() {
                    s.push('\n');
                }
                s.push_str(&format!(
                    "// condition {} of {n}: {}  {}\n",
                    c.index + 1,
                    c.id,
                    c.label()
                ));
                s.push_str(&to_ron(&c.plan));
            }
            s
        }
        PlanFormat::Json => {
            let item = |c: &Condition| {
                serde_json::json!({
                    "index": c.index + 1,
                    "id": c.id,
                    "values": c.values.iter().map(|(p, v)| serde_json::json!({"path": p, "value": v})).collect::<Vec<_>>(),
                    "plan": c.plan,
                })
            };
            let value = match condition {
                Some(_) => item(chosen[0]),
                None => serde_json::Value::Array(chosen.iter().map(|c| item(c)).collect()),
            };
            let mut s = serde_json::to_string_pretty(&value)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            s.push('\n');
            s
        }
    }))
}

/// The conditions of a sweep as a table in RON comments: index (from 1), id, values.
fn conditions_table(conditions: &[Condition]) -> String {
    let mut s = format!(
        "// {} conditions\n// index  id            values\n",
        conditions.len()
    );
    for c in conditions {
        s.push_str(&format!("// {:<5}  {}  {}\n", c.index + 1, c.id, c.label()));
    }
    s
}

/// The `psyrun layers` table for an architecture at an input size.
pub fn layers_table(arch: Arch, size: u32) -> String {
    let points = catalog::cut_points(arch);
    let width = points
        .iter()
        .map(|p| p.path.len() + 2 * p.depth)
        .max()
        .unwrap_or(10)
        .max(5);
    let mut s = format!(
        "{arch} at {size}x{size} px: cut after any of these (torchvision module paths)\n\n"
    );
    s.push_str(&format!(
        "{:<width$}  {:<20}  {}\n",
        "layer", "module", "output (C×H×W)"
    ));
    for p in &points {
        let shape = match catalog::output_shape(arch, &p.path, size) {
            Ok(v) => v.iter().map(u32::to_string).collect::<Vec<_>>().join("×"),
            Err(ShapeError::TooSmall { min_input, .. }) => format!("needs ≥ {min_input} px"),
            Err(ShapeError::WrongSize { size }) => format!("takes {size} px only"),
            Err(ShapeError::UnknownLayer) => "?".into(),
        };
        let name = format!("{}{}", "  ".repeat(p.depth), p.path);
        s.push_str(&format!("{name:<width$}  {:<20}  {shape}\n", p.module));
    }
    // A transformer's cuts are tokens: say how they read out.
    let grid = points
        .iter()
        .find_map(|p| catalog::token_grid(arch, &p.path, size));
    if grid.is_some_and(|g| g.prefix == 0) {
        s.push_str(
            "\nH×W×C after the patch embedding: patch tokens on their grid, channels last, no \
             class token; a backbone cut there needs `tokens mean` (C features) or `tokens \
             map` (C×H×W, poolable)\n",
        );
    } else if let Some(g) = grid {
        s.push_str(&format!(
            "\nS×D: S tokens of D values, batch first ({} class token{}, then {}×{} patch \
             tokens by rows); a backbone cut there needs `tokens cls` (D features), `tokens \
             mean` (D) or `tokens map` (D×{}×{}, poolable)\n",
            g.prefix,
            if g.prefix == 1 { "" } else { "s" },
            g.rows,
            g.cols,
            g.rows,
            g.cols
        ));
    }
    s
}

pub(super) fn layers(name: &str, size: Option<u32>, ui: &Ui) -> ExitCode {
    let Some(arch) = Arch::from_name(name) else {
        let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
        let mut help = format!("architectures: {}", names.join(", "));
        if let Some(s) = psyrun::plan::suggest_name(name, &names) {
            help = format!("did you mean `{s}`? {help}");
        }
        ui.report(&[Diag::error(
            Code::PlanUnknownBackbone,
            format!("unknown architecture `{name}`"),
        )
        .with_help(help)]);
        return ExitCode::from(EXIT_USAGE);
    };
    let size = size.unwrap_or_else(|| arch.default_input_size());
    if size == 0 || size > 4096 {
        ui.report(&[Diag::error(
            Code::PlanOutOfRange,
            format!("--size must be from 1 to 4096, got {size}"),
        )]);
        return ExitCode::from(EXIT_USAGE);
    }
    out(&layers_table(arch, size));
    ExitCode::from(EXIT_OK)
}

/// Re-runs this command line with `psyrun-torch`. On Unix the process is replaced, so
/// signals and the exit code pass straight through.
pub(super) fn hand_over(ui: &Ui) -> ExitCode {
    let target = match torch_binary() {
        Ok(t) => t,
        Err(d) => {
            ui.report(&[*d]);
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let mut cmd = std::process::Command::new(&target);
    cmd.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        ui.report(&[unavailable(&format!(
            "cannot start `{}`: {err}",
            target.display()
        ))]);
        ExitCode::from(EXIT_UNAVAILABLE)
    }
    #[cfg(not(unix))]
    match cmd.status() {
        Ok(s) => ExitCode::from(s.code().map_or(super::EXIT_RUN, |c| c.clamp(0, 255) as u8)),
        Err(err) => {
            ui.report(&[unavailable(&format!(
                "cannot start `{}`: {err}",
                target.display()
            ))]);
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

/// The `psyrun-torch` binary that runs experiments: `PSYRUN_TORCH_BIN`, else the one next to
/// this executable; `psy::run::unavailable` when it is not there.
pub(crate) fn torch_binary() -> Result<std::path::PathBuf, Box<Diag>> {
    let target = match std::env::var_os("PSYRUN_TORCH_BIN") {
        Some(p) => std::path::PathBuf::from(p),
        None => match std::env::current_exe() {
            Ok(exe) => exe.with_file_name(format!("psyrun-torch{}", std::env::consts::EXE_SUFFIX)),
            Err(e) => {
                return Err(Box::new(unavailable(&format!(
                    "cannot locate this executable: {e}"
                ))))
            }
        },
    };
    if !target.is_file() {
        return Err(Box::new(unavailable(&format!(
            "`{}` is not installed",
            target.display()
        ))));
    }
    Ok(target)
}

fn unavailable(why: &str) -> Diag {
    Diag::error(Code::RunUnavailable, format!("running experiments needs psyrun-torch: {why}")).with_help(
        "this psyrun was built without libtorch; build everything with `./dev setup` (or `cargo build --release` with the torch feature); `check`, `plan` and `layers` work without it",
    )
}
