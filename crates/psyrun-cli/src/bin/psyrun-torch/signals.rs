//! SIGINT (Ctrl-C), SIGTERM and SIGHUP: a run stops at its next safe point.
//!
//! [`install`] is the first thing `main` does. The signals are caught by `signal-hook`,
//! whose handler only writes to a pipe; a thread of ours reads them and does the work, so
//! nothing but async-signal-safe code ever runs inside a handler, and nothing here calls
//! `exit` (whose static destructors would tear libtorch down under a running kernel).
//!
//! - **`run`** (graceful, the default from the start of `main`): the first signal sets
//!   [`STOP`] and records which signal it was; the run stops after the current batch,
//!   writes what it has, reports `psy::run::interrupted` and exits with 128 + the signal's
//!   number (130 SIGINT, 143 SIGTERM, 129 SIGHUP). A second signal only says that the run
//!   is stopping. A third ends the process at once by the signal's default action (no
//!   destructors run; files already written are whole, a temporary file being written may
//!   be left behind).
//! - **`features`, `doctor`** ([`immediate`]): a signal ends the process by its default
//!   action, as if no handler were installed.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// Set by the first signal; a run stops at its next batch.
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// The first signal received (0 for none).
static FIRST: AtomicI32 = AtomicI32::new(0);

/// Signals received so far.
static COUNT: AtomicU32 = AtomicU32::new(0);

/// False once the command does not stop gracefully (`features`, `doctor`).
static GRACEFUL: AtomicBool = AtomicBool::new(true);

/// The signals that stop a run.
const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Catches SIGINT, SIGTERM and SIGHUP and starts the thread that handles them. If they
/// cannot be caught (never on Linux), the signals keep their default action.
pub(crate) fn install() {
    let Ok(mut signals) = Signals::new(SIGNALS) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                received(signal);
            }
        });
    drop(spawned);
}

/// What the handling thread does with each signal.
fn received(signal: i32) {
    let _ = FIRST.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
    let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if !GRACEFUL.load(Ordering::SeqCst) || count >= 3 {
        // Ends the process (no destructors run) and does not return.
        let _ = signal_hook::low_level::emulate_default_handler(signal);
        return;
    }
    let name = name(signal);
    // Not `eprintln!`, which panics when stderr is gone (SIGHUP: the terminal closed).
    let _ = if count == 1 {
        writeln!(
            std::io::stderr(),
            "\n{name}: stopping after this batch (a third signal ends psyrun at once)"
        )
    } else {
        writeln!(
            std::io::stderr(),
            "\n{name} again: still stopping after this batch (once more ends psyrun at once)"
        )
    };
}

/// For commands that do not stop gracefully: signals from now on end the process by their
/// default action, and one received already (while the command line was read) does so now.
pub(crate) fn immediate() {
    GRACEFUL.store(false, Ordering::SeqCst);
    let first = FIRST.load(Ordering::SeqCst);
    if STOP.load(Ordering::SeqCst) && first != 0 {
        let _ = signal_hook::low_level::emulate_default_handler(first);
    }
}

/// The first signal received, by name (`SIGINT`, …), if any.
pub(crate) fn received_name() -> Option<&'static str> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        s => Some(name(s)),
    }
}

/// The exit status of a run stopped by the first signal received: 128 + its number (130
/// when none was recorded, e.g. a download stopped otherwise).
pub(crate) fn exit_code() -> u8 {
    match FIRST.load(Ordering::SeqCst) {
        SIGTERM => psyrun_cli::EXIT_TERMINATED,
        SIGHUP => psyrun_cli::EXIT_HANGUP,
        _ => psyrun_cli::EXIT_INTERRUPTED,
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
