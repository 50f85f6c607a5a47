//! The only door through which worker threads enter Python (user callbacks: functions,
//! authorizer, trace, progress handler, `run_python`, the fallback hub wake-up).
//!
//! On CPython ≤ 3.13 a thread that waits for the GIL after finalization started is ended with
//! `pthread_exit`, and that forced unwind aborts the process when it meets Rust frames. So at
//! exit (an `atexit` hook, while the interpreter is still whole) the door is shut — callbacks
//! then fail at once (a function raises, the authorizer denies, the progress handler aborts)
//! — and the hook waits, with the GIL released, for workers still inside Python to leave.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

static SHUT: AtomicBool = AtomicBool::new(false);
static INSIDE: AtomicUsize = AtomicUsize::new(0);

/// Run `f` attached to Python, unless the interpreter is exiting (`None`).
pub(crate) fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    if SHUT.load(Ordering::Acquire) {
        return None;
    }
    INSIDE.fetch_add(1, Ordering::SeqCst);
    // Re-check after announcing ourselves: `shut()` sets the flag, then waits for INSIDE.
    let r = if SHUT.load(Ordering::SeqCst) {
        None
    } else {
        Python::try_attach(f)
    };
    INSIDE.fetch_sub(1, Ordering::SeqCst);
    r
}

/// Shut the door: from now on no worker enters Python.
pub(crate) fn shut() {
    SHUT.store(true, Ordering::SeqCst);
}

/// Wait (until `deadline`) for the threads still inside Python to leave; `false` on timeout.
/// Call without the GIL.
pub(crate) fn wait_out(deadline: Instant) -> bool {
    while INSIDE.load(Ordering::SeqCst) != 0 {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}
