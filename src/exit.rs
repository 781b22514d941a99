//! psyrun's process exit codes, shared by both binaries (the README's table).
//!
//! 0 ok · 1 invalid experiment · 2 usage or I/O error · 3 run failed · 4 not available in
//! this build · 130 interrupted (SIGINT, Ctrl-C) · 143 stopped by SIGTERM · 129 stopped by
//! SIGHUP (128 + the signal's number, as a shell reports a process the signal killed).

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the experiment file has errors.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: bad command line, or a file that cannot be read or written.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the run failed at run time.
pub const EXIT_RUN: u8 = 3;
/// Exit code: the command is not available in this build (e.g. no libtorch).
pub const EXIT_UNAVAILABLE: u8 = 4;
/// Exit code: interrupted (Ctrl-C, SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code: a run stopped by SIGTERM (a scheduler, `kill`).
pub const EXIT_TERMINATED: u8 = 143;
/// Exit code: a run stopped by SIGHUP (its terminal closed).
pub const EXIT_HANGUP: u8 = 129;
