//! `journal.jsonl`: the run's append-only log of what it measured, written as it is measured,
//! from which an interrupted or killed run is resumed (`psyrun run --resume DIR`).
//!
//! One JSON object a line, each written with a single `write` to a file opened for
//! appending, so a line is either whole or, after a kill or a power loss, a torn last line
//! that [`read`] drops (and [`JournalWriter::reopen`] cuts off before appending). The data
//! reach the disk (`fsync`) at most two seconds after they are written, and at every phase's
//! end. Writing a round costs its own rows, whatever the run has measured before.
//!
//! The lines, by `kind`:
//! - `header`: the journal's format `version`, the SHA-256 of the run's `plan.ron` and the
//!   seed. Always the first line.
//! - `epoch`: one training epoch's record (repeat, epoch, loss, accuracy).
//! - `round`: one round of test measurements of one repeat: each request (frequency index,
//!   contrast, trials, correct) and the decision variables computed in that round (frequency
//!   index, contrast, condition, value), which a resumed run takes instead of recomputing
//!   them, so that it continues with exactly the numbers the first run had.
//!
//! Floats are written in shortest round-trip form and read back exactly.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The journal's file name in a run folder.
pub const JOURNAL: &str = "journal.jsonl";

/// The format version this psyrun writes and reads.
pub const JOURNAL_VERSION: u32 = 1;

/// Longest time written data may wait for `fsync`.
const SYNC_EVERY: Duration = Duration::from_secs(2);

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// The first line.
    Header {
        /// [`JOURNAL_VERSION`] of the psyrun that wrote it.
        version: u32,
        /// SHA-256 of the run's `plan.ron`.
        plan_sha256: String,
        /// The plan's seed.
        seed: u64,
    },
    /// One training epoch.
    Epoch {
        /// Repeat, from 0.
        repeat: u32,
        /// Epoch, from 1.
        epoch: u32,
        /// Mean training loss.
        loss: f64,
        /// Proportion correct.
        accuracy: f64,
    },
    /// One round of test measurements.
    Round(Round),
}

/// One round of a repeat's test: every procedure's request and its outcome, in the order the
/// interpreter asked them, and the decision variables it computed for them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Round {
    /// Repeat, from 0.
    pub repeat: u32,
    /// The requests, in order.
    pub requests: Vec<Measured>,
    /// Decision variables computed in this round (none under stimulus noise, where trials
    /// are not cached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dvs: Vec<DecisionValue>,
}

/// One request of a round and its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measured {
    /// Index of the frequency in the plan's test frequencies.
    pub frequency: usize,
    /// The contrast shown.
    pub contrast: f64,
    /// Trials shown.
    pub trials: u32,
    /// Trials answered correctly.
    pub correct: u32,
}

/// A decision variable (second logit minus first) of one test condition at one contrast.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionValue {
    /// Index of the frequency in the plan's test frequencies.
    pub frequency: usize,
    /// The contrast.
    pub contrast: f64,
    /// Index of the test condition (orientation, phase, interval).
    pub condition: usize,
    /// The value (a `f32`, held exactly).
    pub value: f64,
}

/// Why a journal cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file cannot be read.
    #[error("cannot read `{path}`: {source}", path = .path.display())]
    Io {
        /// The journal.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line before the last is not a journal entry: the file was changed by hand or is
    /// not psyrun's.
    #[error("`{path}` line {line} is not a journal entry ({message})", path = .path.display())]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The first line is not a header of a version this psyrun reads.
    #[error("`{path}` does not start with a journal header of version {JOURNAL_VERSION}", path = .path.display())]
    Header {
        /// The journal.
        path: PathBuf,
    },
}

/// A journal as read: its entries (header first) and the length in bytes of the whole lines
/// they came from (a torn last line is not counted).
#[derive(Clone, Debug, PartialEq)]
pub struct Journal {
    /// The entries, header first.
    pub entries: Vec<Entry>,
    /// Bytes of whole, valid lines.
    pub valid_len: u64,
}

impl Journal {
    /// The header's plan hash.
    pub fn plan_sha256(&self) -> Option<&str> {
        match self.entries.first() {
            Some(Entry::Header { plan_sha256, .. }) => Some(plan_sha256),
            _ => None,
        }
    }
}

/// Reads a journal. A last line that is incomplete (no line end) or unreadable is a write cut
/// short by a kill and is dropped; any other unreadable line is an error.
pub fn read(path: &Path) -> Result<Journal, JournalError> {
    let bytes = fs::read(path).map_err(|source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes, path)
}

fn parse(bytes: &[u8], path: &Path) -> Result<Journal, JournalError> {
    let mut entries = Vec::new();
    let mut valid_len = 0u64;
    let mut rest = bytes;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            break; // torn last line
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) => {
                entries.push(e);
                valid_len += end as u64 + 1;
            }
            // A whole last line that does not parse: also a torn write (the line end of a
            // later write can follow a partial one only if a write was split, which appends
            // never are; treat it as torn rather than refuse to resume).
            Err(_) if rest.is_empty() => break,
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line: line_no,
                    message: e.to_string(),
                })
            }
        }
    }
    match entries.first() {
        Some(Entry::Header { version, .. }) if *version == JOURNAL_VERSION => {}
        None if valid_len == 0 => {}
        _ => {
            return Err(JournalError::Header {
                path: path.to_path_buf(),
            })
        }
    }
    Ok(Journal { entries, valid_len })
}

/// Appends entries to a run's journal.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    last_sync: Instant,
    unsynced: bool,
}

impl JournalWriter {
    /// Creates `journal.jsonl` in `folder` (which must not hold one) and writes `header`.
    pub fn create(folder: &Path, header: &Entry) -> io::Result<JournalWriter> {
        let path = folder.join(JOURNAL);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| named(&path, e))?;
        let mut w = JournalWriter {
            file,
            path,
            last_sync: Instant::now(),
            unsynced: false,
        };
        w.append(header)?;
        w.sync()?;
        Ok(w)
    }

    /// Opens an existing journal for appending after its first `valid_len` bytes (what
    /// [`read`] accepted): a torn last line is cut off first.
    pub fn reopen(folder: &Path, valid_len: u64) -> io::Result<JournalWriter> {
        let path = folder.join(JOURNAL);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| named(&path, e))?;
        if file.metadata().map_err(|e| named(&path, e))?.len() != valid_len {
            file.set_len(valid_len).map_err(|e| named(&path, e))?;
            file.sync_all().map_err(|e| named(&path, e))?;
        }
        Ok(JournalWriter {
            file,
            path,
            last_sync: Instant::now(),
            unsynced: false,
        })
    }

    /// Appends one entry as one line, in one write; synced to disk if the last sync is more
    /// than two seconds old.
    pub fn append(&mut self, entry: &Entry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| named(&self.path, e))?;
        self.unsynced = true;
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Flushes what was appended to the disk.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data().map_err(|e| named(&self.path, e))?;
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write `{}`: {e}", path.display()))
}

/// What a resumed run takes from a journal, by repeat: the epochs to check its retraining
/// against and the test rounds to replay, each in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    epochs: Vec<std::collections::VecDeque<(u32, f64, f64)>>,
    rounds: Vec<std::collections::VecDeque<Round>>,
}

impl Replay {
    /// The entries of a journal, sorted by repeat (their order within a repeat kept).
    pub fn new(entries: &[Entry]) -> Replay {
        let mut r = Replay::default();
        for e in entries {
            match e {
                Entry::Header { .. } => {}
                Entry::Epoch {
                    repeat,
                    epoch,
                    loss,
                    accuracy,
                } => r.epochs_mut(*repeat).push_back((*epoch, *loss, *accuracy)),
                Entry::Round(round) => r.rounds_mut(round.repeat).push_back(round.clone()),
            }
        }
        r
    }

    fn epochs_mut(&mut self, repeat: u32) -> &mut std::collections::VecDeque<(u32, f64, f64)> {
        let i = repeat as usize;
        if self.epochs.len() <= i {
            self.epochs.resize_with(i + 1, Default::default);
        }
        &mut self.epochs[i]
    }

    fn rounds_mut(&mut self, repeat: u32) -> &mut std::collections::VecDeque<Round> {
        let i = repeat as usize;
        if self.rounds.len() <= i {
            self.rounds.resize_with(i + 1, Default::default);
        }
        &mut self.rounds[i]
    }

    /// The next journaled epoch of `repeat` (`(epoch, loss, accuracy)`), taken.
    pub fn next_epoch(&mut self, repeat: u32) -> Option<(u32, f64, f64)> {
        self.epochs.get_mut(repeat as usize)?.pop_front()
    }

    /// The next journaled test round of `repeat`, taken.
    pub fn next_round(&mut self, repeat: u32) -> Option<Round> {
        self.rounds.get_mut(repeat as usize)?.pop_front()
    }

    /// Journaled epochs and rounds not taken yet.
    pub fn remaining(&self) -> usize {
        self.epochs.iter().map(|e| e.len()).sum::<usize>()
            + self.rounds.iter().map(|r| r.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Entry {
        Entry::Header {
            version: JOURNAL_VERSION,
            plan_sha256: "ab".repeat(32),
            seed: u64::MAX,
        }
    }

    fn round(repeat: u32, contrast: f64) -> Entry {
        Entry::Round(Round {
            repeat,
            requests: vec![Measured {
                frequency: 1,
                contrast,
                trials: 24,
                correct: 17,
            }],
            dvs: vec![DecisionValue {
                frequency: 1,
                contrast,
                condition: 3,
                value: f64::from(-1.234_567_9e-7f32),
            }],
        })
    }

    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("psyrun-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn entries_come_back_exactly_whatever_the_floats() {
        let dir = folder("exact");
        let mut w = JournalWriter::create(&dir, &header()).unwrap();
        // Values whose shortest decimal form needs 17 digits, subnormals, extremes.
        let contrasts = [
            0.1 + 0.2,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            5e-324,
            0.999_999_999_999_999_9,
            std::f64::consts::PI * 1e-3,
        ];
        let mut written = vec![header()];
        for (i, &c) in contrasts.iter().enumerate() {
            let e = round(i as u32 % 2, c);
            w.append(&e).unwrap();
            written.push(e);
            let epoch = Entry::Epoch {
                repeat: 0,
                epoch: i as u32 + 1,
                loss: c * 7.0,
                accuracy: 1.0 - c,
            };
            w.append(&epoch).unwrap();
            written.push(epoch);
        }
        w.sync().unwrap();
        let j = read(&dir.join(JOURNAL)).unwrap();
        assert_eq!(j.entries, written);
        for (a, b) in j.entries.iter().zip(&written) {
            if let (Entry::Round(a), Entry::Round(b)) = (a, b) {
                assert_eq!(
                    a.requests[0].contrast.to_bits(),
                    b.requests[0].contrast.to_bits()
                );
            }
        }
        assert_eq!(j.valid_len, fs::metadata(dir.join(JOURNAL)).unwrap().len());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_cut_before_appending() {
        let dir = folder("torn");
        let path = dir.join(JOURNAL);
        let mut w = JournalWriter::create(&dir, &header()).unwrap();
        w.append(&round(0, 0.25)).unwrap();
        drop(w);
        let whole = fs::metadata(&path).unwrap().len();
        // A kill in the middle of a write: half a line, no line end.
        let line = serde_json::to_vec(&round(0, 0.5)).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&line[..line.len() / 2]).unwrap();
        drop(f);
        let j = read(&path).unwrap();
        assert_eq!(j.entries, vec![header(), round(0, 0.25)]);
        assert_eq!(j.valid_len, whole);
        let mut w = JournalWriter::reopen(&dir, j.valid_len).unwrap();
        w.append(&round(1, 0.125)).unwrap();
        drop(w);
        let j = read(&path).unwrap();
        assert_eq!(
            j.entries,
            vec![header(), round(0, 0.25), round(1, 0.125)],
            "the torn half line is gone, the new line follows the last whole one"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_damaged_line_before_the_last_is_an_error_not_a_silent_gap() {
        let dir = folder("corrupt");
        let path = dir.join(JOURNAL);
        let mut text = serde_json::to_string(&header()).unwrap();
        text.push('\n');
        text.push_str("{\"kind\":\"round\",\"repeat\":0,\"requests\":[{\"frequency\":1\n");
        text.push_str(&serde_json::to_string(&round(0, 0.5)).unwrap());
        text.push('\n');
        fs::write(&path, text).unwrap();
        match read(&path) {
            Err(JournalError::Corrupt { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected a corrupt journal, got {other:?}"),
        }
        // No header: not a journal.
        fs::write(
            &path,
            format!("{}\n", serde_json::to_string(&round(0, 0.5)).unwrap()),
        )
        .unwrap();
        assert!(matches!(read(&path), Err(JournalError::Header { .. })));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn replay_hands_back_each_repeats_entries_in_order() {
        let entries = vec![
            header(),
            Entry::Epoch {
                repeat: 0,
                epoch: 1,
                loss: 0.7,
                accuracy: 0.5,
            },
            round(0, 0.5),
            round(1, 0.25),
            round(0, 0.125),
        ];
        let mut r = Replay::new(&entries);
        assert_eq!(r.remaining(), 4);
        assert_eq!(r.next_epoch(0), Some((1, 0.7, 0.5)));
        assert_eq!(r.next_epoch(0), None);
        assert_eq!(r.next_epoch(3), None);
        assert_eq!(
            r.next_round(1),
            Some(match round(1, 0.25) {
                Entry::Round(x) => x,
                _ => unreachable!(),
            })
        );
        let first = r.next_round(0).unwrap();
        assert_eq!(first.requests[0].contrast, 0.5);
        assert_eq!(r.next_round(0).unwrap().requests[0].contrast, 0.125);
        assert_eq!(r.next_round(0), None);
        assert_eq!(r.remaining(), 0);
    }
}
