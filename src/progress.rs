//! Progress reporting. The interpreter never prints: it sends [`Event`]s to an
//! [`Observer`]. The CLI renders them as progress bars on a terminal and as plain lines
//! otherwise ([`Terminal`]); tests record them ([`Recorder`]).

use crate::diag::Diag;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Something that happened during a run.
#[derive(Clone, Debug)]
pub enum Event {
    /// A phase starts (`"training"`, `"testing"`) with its amount of work in units.
    Phase {
        /// Name of the phase.
        name: &'static str,
        /// Total units (trials for training, measurements for testing; an upper bound).
        total: u64,
        /// What a unit is, for the display ("trials", "levels").
        unit: &'static str,
    },
    /// `n` more units are done in the current phase.
    Advance(u64),
    /// An epoch of probe training ended.
    Epoch {
        /// 0-based epoch.
        epoch: u32,
        /// Mean cross-entropy.
        loss: f64,
        /// Proportion correct.
        accuracy: f64,
    },
    /// A staircase finished.
    Threshold {
        /// Spatial frequency (cycles per image).
        frequency: f64,
        /// Threshold contrast.
        threshold: f64,
        /// Measurements taken.
        steps: usize,
    },
    /// Free-form status ("loading weights …").
    Status(String),
    /// A warning found at run time.
    Warning(Box<Diag>),
    /// The current phase ended.
    PhaseDone,
}

/// Receives events from a run.
pub trait Observer {
    /// Called for every event, in order.
    fn event(&mut self, e: Event);
}

/// Records events (for tests).
#[derive(Default, Debug)]
pub struct Recorder {
    /// Every event so far.
    pub events: Vec<Event>,
}

impl Observer for Recorder {
    fn event(&mut self, e: Event) {
        self.events.push(e);
    }
}

/// Renders events on stderr: progress bars with ETA on a terminal, plain lines otherwise.
pub struct Terminal {
    bar: Option<ProgressBar>,
    interactive: bool,
    color: bool,
    phase: &'static str,
    done: u64,
    total: u64,
    last_line: u64,
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
        }
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
                    "  epoch {:>3}  loss {loss:>10.4}  accuracy {:>6.2}%",
                    epoch + 1,
                    accuracy * 100.0
                ));
            }
            Event::Threshold {
                frequency,
                threshold,
                steps,
            } => {
                self.println(&format!(
                    "  {frequency:>8} cycles/image  threshold {threshold:.6}  sensitivity {:>9.2}  ({steps} levels)",
                    1.0 / threshold
                ));
            }
            Event::Status(s) => self.println(&s),
            Event::Warning(d) => {
                let text = crate::diag::render(std::slice::from_ref(&*d), self.color);
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
