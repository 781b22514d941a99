//! Where the settings that run-time diagnostics point at are written, recorded by the
//! lowering itself.
//!
//! A run fails long after the file was read (a weights file that cannot be opened, a
//! learning rate that makes the loss diverge, a CUDA device the machine lacks), and its
//! diagnostic should still point into the experiment. The lowering already holds every
//! setting's span when it reads the value, so it records them in [`Spans`], keyed by the
//! typed [`Setting`]: renaming a setting in the language changes the lowering that records
//! it, and a run-time check asks for a variant, not for a string path that could silently
//! stop matching.
//!
//! The table lives in the [`Plan`](super::Plan) (its `spans` field) rather than beside it:
//! the plan is what every run-time step already receives, it travels with its clones (a
//! TorchScript backbone's resolved plan keeps its spans), and no signature has to carry a
//! second value. It is skipped by serde, so `plan.ron`, `psyrun plan` and the snapshots do
//! not change, and a plan read back from RON simply has an empty table: its diagnostics then
//! carry no label. Spans never make two plans differ (see the `PartialEq` impl): they say
//! where a plan was written, not what it does.

use crate::diag::{Diag, Span};
use crate::source::SourceFile;

/// A setting (or block) of an experiment that run-time diagnostics point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setting {
    /// `device` of the experiment; the `experiment NAME` header when it is the default.
    Device,
    /// The `backbone ARCH` (or `backbone torchscript "FILE"`) header.
    Backbone,
    /// `weights` of the backbone; the backbone's header when not written (a TorchScript
    /// module carries its own).
    Weights,
    /// The `probe KIND` header.
    Probe,
    /// `lr` of the probe's optimizer; the `optimizer` header when the block is written
    /// without it, else the `probe` header (the block that took the default).
    Lr,
}

impl Setting {
    /// Every setting, in the order of the variants (the table's index).
    pub const ALL: [Setting; 5] = [
        Setting::Device,
        Setting::Backbone,
        Setting::Weights,
        Setting::Probe,
        Setting::Lr,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Where each [`Setting`] is written in the experiment's source: the value's span, or the
/// header of the block that took the default. Empty for a plan not lowered from source
/// (read back from `plan.ron`).
#[derive(Clone, Debug, Default)]
pub struct Spans {
    at: [Option<Span>; Setting::ALL.len()],
    /// The file each span is in, when the experiment was built from several files (an
    /// import, a `--set`); `None`: the file the plan was lowered from.
    files: [Option<SourceFile>; Setting::ALL.len()],
}

impl Spans {
    /// Where `setting` is written, or `None` when the plan was not lowered from source.
    pub fn get(&self, setting: Setting) -> Option<Span> {
        self.at[setting.index()]
    }

    /// Records where `setting` is written (the lowering calls this once per setting).
    pub(crate) fn record(&mut self, setting: Setting, span: Span) {
        self.at[setting.index()] = Some(span);
    }

    /// Maps every recorded span (an offset into the texts of an experiment built from
    /// several files) to its file and the span within it (see `plan::sweep`).
    pub(crate) fn localize(&mut self, locate: impl Fn(Span) -> Option<(Span, SourceFile)>) {
        for i in 0..self.at.len() {
            if let Some((span, file)) = self.at[i].and_then(&locate) {
                self.at[i] = Some(span);
                self.files[i] = Some(file);
            }
        }
    }

    /// The file `setting` is written in, when it is not the file the plan was lowered from
    /// (an imported file, or `--set` on the command line).
    pub fn file(&self, setting: Setting) -> Option<&SourceFile> {
        self.files[setting.index()].as_ref()
    }

    /// True when nothing is recorded (a plan read back from RON).
    pub fn is_empty(&self) -> bool {
        self.at.iter().all(Option::is_none)
    }

    /// `diag` pointing at where `setting` is written, with `label` and the source attached:
    /// the file recorded for it (an import, `--set`), else `file` (the source the plan was
    /// lowered from); unchanged when nothing is recorded (a plan read back from RON): the
    /// diagnostic then has no label.
    pub fn label(
        &self,
        diag: Diag,
        setting: Setting,
        file: &SourceFile,
        label: impl Into<String>,
    ) -> Diag {
        match self.get(setting) {
            Some(span) => diag
                .at(span, label)
                .with_source(self.file(setting).unwrap_or(file)),
            None => diag,
        }
    }
}

/// Always equal: spans are where a plan was written, not part of what it does, so a plan
/// read back from `plan.ron` equals the plan it was saved from.
impl PartialEq for Spans {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_its_own_slot() {
        for (i, s) in Setting::ALL.iter().enumerate() {
            assert_eq!(s.index(), i, "{s:?}");
        }
        let mut spans = Spans::default();
        assert!(spans.is_empty());
        for (i, s) in Setting::ALL.iter().enumerate() {
            spans.record(*s, Span::new(i, i + 1));
        }
        for (i, s) in Setting::ALL.iter().enumerate() {
            assert_eq!(spans.get(*s), Some(Span::new(i, i + 1)));
        }
        assert!(!spans.is_empty());
        assert_eq!(spans, Spans::default(), "spans never make plans differ");
    }
}
