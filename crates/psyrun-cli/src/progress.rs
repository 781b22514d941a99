//! Progress on the terminal: renders the interpreter's [`Event`]s as progress bars with ETA
//! when stderr is a terminal, and as plain lines otherwise. Numbers follow
//! [`display_number`] (four significant digits), as in the final table.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use psyrun::progress::{Event, Observer};
use psyrun::report::display_number;
use std::io::IsTerminal;
use std::time::Duration;
/// Renders events on stderr: progress bars with ETA on a terminal, plain lines otherwise.
pub struct Terminal {
    bar: Option<ProgressBar>,
    interactive: bool,
    color: bool,
    phase: &'static str,
    done: u64,
    total: u64,
    last_line: u64,
    warnings: Vec<String>,
    /// How a threshold line names its axis value: ` c/img` unless the run said otherwise.
    axis: Option<(String, String)>,
}

/// A warning as one line for the run's files: `code: message`.
pub fn warning_line(d: &psyrun::diag::Diag) -> String {
    format!("{}: {}", d.code.as_str(), d.message)
}

impl Terminal {
    /// A renderer; bars only when stderr is a terminal.
    pub fn new(color: bool) -> Self {
        Self {
            bar: None,
            interactive: std::io::stderr().is_terminal(),
            color,
            phase: "",
            done: 0,
            total: 0,
            last_line: 0,
            warnings: Vec::new(),
            axis: None,
        }
    }

    /// The warnings shown so far, one line each ([`warning_line`]).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Observer for Terminal {
    fn event(&mut self, e: Event) {
        match e {
            Event::Phase { name, total, unit } => {
                self.phase = name;
                self.done = 0;
                self.total = total;
                self.last_line = 0;
                if self.interactive {
                    let bar =
                        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                    let template = format!("{{prefix:>9}} [{{bar:32}}] {{pos}}/{{len}} {unit} · {{elapsed}} · ETA {{eta}}");
                    if let Ok(style) = ProgressStyle::with_template(&template) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.set_prefix(name);
                    bar.enable_steady_tick(Duration::from_millis(200));
                    self.bar = Some(bar);
                } else {
                    eprintln!("{name}: {total} {unit}");
                }
            }
            Event::Advance(n) => {
                self.done += n;
                if let Some(b) = &self.bar {
                    b.inc(n);
                } else if let Some(decile) = (self.done * 10).checked_div(self.total) {
                    // Plain output: a line every 10 %.
                    if decile > self.last_line {
                        self.last_line = decile;
                        eprintln!(
                            "{}: {}/{} ({}%)",
                            self.phase,
                            self.done,
                            self.total,
                            decile * 10
                        );
                    }
                }
            }
            Event::Epoch {
                epoch,
                loss,
                accuracy,
            } => {
                self.println(&format!(
                    "  epoch {:>3}  loss {:>10}  accuracy {:>7}",
                    epoch + 1,
                    display_number(loss),
                    display_number(accuracy)
                ));
            }
            Event::Threshold {
                frequency,
                threshold,
                steps,
            } => {
                let line = match &self.axis {
                    None => format!(
                        "  {frequency:>8} c/img  threshold {:>9}  ({steps} levels)",
                        display_number(threshold),
                    ),
                    Some((name, unit)) => format!(
                        "  {name} {frequency}{}{unit}  threshold {:>9}  ({steps} levels)",
                        if unit.is_empty() { "" } else { " " },
                        display_number(threshold),
                    ),
                };
                self.println(&line);
            }
            Event::Axis { name, unit } => {
                self.axis = Some((name, unit));
            }
            Event::Status(s) => self.println(&s),
            Event::Warning(d) => {
                self.warnings.push(warning_line(&d));
                let text = psyrun::diag::render(std::slice::from_ref(&*d), self.color);
                self.println(text.trim_end());
            }
            Event::PhaseDone => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                eprintln!("{}: done", self.phase);
            }
        }
    }
}
