//! Progress reporting. The interpreter never prints: it sends [`Event`]s to an
//! [`Observer`]. The CLI renders them as progress bars on a terminal and as plain lines
//! otherwise (`psyrun_cli::progress::Terminal`); tests record them ([`Recorder`]).

use crate::diag::Diag;

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
    /// What the thresholds that follow are measured against, for an experiment with a
    /// design (`frequency` in [`Event::Threshold`] is then the axis value): the axis's name
    /// and unit (`pedestal`, ``; `spacing`, `px`). Never sent for the tutorial's kind.
    Axis {
        /// The axis's name.
        name: String,
        /// Its unit (empty for none).
        unit: String,
    },
    /// A staircase finished.
    Threshold {
        /// Spatial frequency (cycles per image), or the design's axis value.
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
