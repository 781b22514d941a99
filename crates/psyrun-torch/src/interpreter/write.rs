//! The last step: every result file written, `INCOMPLETE` removed.

use super::Interpreter;
use crate::failure::Failure;
use psyrun::diag::{Code, Diag};
use psyrun::exit::EXIT_RUN;
use psyrun::progress::Event;
use psyrun::report::Results;
use std::path::PathBuf;
use std::time::Instant;

impl Interpreter<'_> {
    /// Writes every result file and removes `INCOMPLETE`; returns the run folder's final
    /// path and the results.
    pub(super) fn write(self) -> Result<(PathBuf, Results), Failure> {
        let t = Instant::now();
        let Interpreter {
            folder,
            mut results,
            observer,
            ..
        } = self;
        let path = folder.path().to_path_buf();
        let finished = folder
            .finish(&mut results, chrono::Utc::now())
            .map_err(|e| {
                Failure::new(
                    Diag::error(Code::RunOutputFolder, format!("cannot write results: {e}")),
                    EXIT_RUN,
                )
                .in_folder(Some(path))
            })?;
        observer.event(Event::Status(format!(
            "done ({}, writing {:.1} s)",
            results
                .manifest
                .phase_seconds
                .iter()
                .map(|(p, s)| format!("{p} {s:.1} s"))
                .collect::<Vec<_>>()
                .join(", "),
            t.elapsed().as_secs_f64()
        )));
        Ok((finished, results))
    }
}
