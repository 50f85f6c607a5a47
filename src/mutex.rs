//! Spinning SQLite mutexes: an opt-in, process-wide setting.
//!
//! SQLite guards its shared state with mutexes; with WAL, every read transaction takes the
//! `-shm` file's mutex twice (to begin and to end), and holds it across an `fcntl` lock call
//! whenever no other connection of the process holds the same read lock. The default pthread
//! mutexes sleep in the kernel as soon as they find the mutex held, and on a virtual machine
//! the wake-up takes tens of microseconds: two threads reading the same file then spend most
//! of their time handing the mutex back and forth through the scheduler. A mutex that retries
//! for a few microseconds first keeps both threads running.
//!
//! SQLite takes its mutex implementation once, before it initializes, for the whole process
//! (it is shared with every other user of the same SQLite library, rusqlite included), so this
//! is an explicit call at program start rather than something a connection could do.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::ffi;

use crate::error::{Error, Result};

/// Attempts (`xMutexTry`) before falling back to the sleeping `xMutexEnter`. Each attempt is
/// followed by a few pause instructions; the whole spin lasts from a few microseconds to ~20 µs
/// depending on how long the CPU's `pause` is, the order of one `fcntl` call, which is the
/// longest thing SQLite does under a contended mutex.
const SPIN_TRIES: u32 = 100;
const PAUSES_PER_TRY: u32 = 4;

/// SQLite's own mutex methods, which ours wrap.
static ORIGINAL: OnceLock<ffi::sqlite3_mutex_methods> = OnceLock::new();
/// `install_spinning_mutexes` succeeded.
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Times a thread spun without getting a mutex and went to sleep on it.
static SLEPT: AtomicU64 = AtomicU64::new(0);
/// `xMutexTry` can succeed in this build (SQLite allows one that always fails, as on Windows
/// builds without `TryEnterCriticalSection`): without it, spinning would only delay.
static TRY_WORKS: AtomicBool = AtomicBool::new(true);

unsafe extern "C" fn spin_enter(m: *mut ffi::sqlite3_mutex) {
    let orig = ORIGINAL.get().expect("installed before use");
    let (Some(try_enter), Some(enter)) = (orig.xMutexTry, orig.xMutexEnter) else {
        unreachable!("checked at install");
    };
    // SAFETY: SQLite calls us with a mutex its own `xMutexAlloc` made; we pass it on.
    unsafe {
        if !TRY_WORKS.load(Ordering::Relaxed) {
            return enter(m);
        }
        if try_enter(m) == ffi::SQLITE_OK {
            return;
        }
        for _ in 0..SPIN_TRIES {
            for _ in 0..PAUSES_PER_TRY {
                std::hint::spin_loop();
            }
            if try_enter(m) == ffi::SQLITE_OK {
                return;
            }
        }
        SLEPT.fetch_add(1, Ordering::Relaxed);
        enter(m);
    }
}

/// Make SQLite's mutexes retry for a few microseconds before they sleep, for the whole
/// process. Call it first thing in `main`, before any database is opened.
///
/// This pays when as many threads as there are cores use the same database file at once,
/// typically a [`Pool`](crate::Pool)'s reads running inline on the threads of a multi-thread
/// runtime: SQLite's WAL bookkeeping serializes every read transaction's start and end on one
/// mutex per file, and the default mutexes put a thread to sleep the moment they find it held.
/// On a 2-core machine with tokio's default runtime, the project's `concurrent_read`
/// benchmark (4 tasks through a pool) read 1.6x faster with it; the pool's read anchor
/// ([`PoolOptions::anchor_reads`](crate::PoolOptions::anchor_reads)) has since removed most
/// of that contention, and the gain is now about 1.1x (see the README).
/// Single-threaded use sees no difference. With many more busy threads than cores it can
/// cost instead (a thread spins while the holder waits for a core): plain rusqlite on 4 OS
/// threads on 2 cores loses about a fifth of its rate in the same benchmark. The wrapped
/// mutexes are SQLite's own (same semantics, recursive ones stay recursive); only the wait
/// changes. [`sqlite_mutex_sleeps`] tells how often the spin was not enough.
///
/// Returns `Ok(())` once installed, and again on later calls.
///
/// When SQLite was never initialized, this initializes and shuts it down once to load its
/// default mutexes, which resets `sqlite3_temp_directory` and `sqlite3_data_directory` if
/// they were assigned before; it leaves SQLite initialized. On a build whose `xMutexTry`
/// always fails the wrapper does not spin.
///
/// # Failure
/// [`Error::Unsupported`] when SQLite is already initialized in this process (a database
/// was opened through aiolite, rusqlite or anything else linking the same SQLite): SQLite
/// accepts a mutex implementation only before that. Nothing is changed then.
///
/// # Safety
/// No other thread may use SQLite (open a connection, call any `sqlite3_*` function) while
/// this runs: SQLite's configuration interface is not thread-safe. Calling it at the start of
/// `main` (an async `main` under `#[tokio::main]` too: the runtime's threads have not touched
/// SQLite yet) satisfies this.
///
/// ```
/// fn main() -> aiolite::Result<()> {
///     // SAFETY: first thing in main; no other thread exists yet.
///     unsafe { aiolite::install_spinning_mutexes()? };
///     // … build the runtime, open the pool …
///     Ok(())
/// }
/// ```
pub unsafe fn install_spinning_mutexes() -> Result<()> {
    let not_now = || Error::Unsupported {
        message: "SQLite is already initialized in this process (or was built without mutexes); \
                  install_spinning_mutexes must run before any database is opened"
            .into(),
    };
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    let mut current = empty_methods();
    // SAFETY: the caller guarantees no concurrent SQLite use; GETMUTEX writes one struct.
    if unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETMUTEX, &mut current as *mut _) } != ffi::SQLITE_OK {
        return Err(not_now());
    }
    if current.xMutexAlloc.is_none() {
        // SQLite loads its default methods when it first initializes: do that (nothing is
        // open, so shutting down again is harmless) and read them.
        // SAFETY: as above; no connection exists while SQLite is not initialized.
        unsafe {
            if ffi::sqlite3_initialize() != ffi::SQLITE_OK || ffi::sqlite3_shutdown() != ffi::SQLITE_OK {
                return Err(not_now());
            }
            if ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETMUTEX, &mut current as *mut _) != ffi::SQLITE_OK {
                return Err(not_now());
            }
        }
    }
    if current.xMutexTry.is_none() || current.xMutexEnter.is_none() {
        return Err(Error::Unsupported {
            message: "this SQLite build has no mutexes to wrap".into(),
        });
    }
    let original = *ORIGINAL.get_or_init(|| current);
    let mut ours = original;
    ours.xMutexEnter = Some(spin_enter);
    // SAFETY: as above; `ours` holds SQLite's own methods except `xMutexEnter`, which
    // delegates to them.
    if unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MUTEX, &ours as *const _) } != ffi::SQLITE_OK {
        return Err(not_now());
    }
    INSTALLED.store(true, Ordering::Release);
    // Check that a free mutex can be taken with `xMutexTry` (this initializes SQLite, with
    // our methods).
    // SAFETY: as above; the mutex is ours from allocation to free.
    unsafe {
        let m = ffi::sqlite3_mutex_alloc(ffi::SQLITE_MUTEX_FAST);
        if !m.is_null() {
            if ffi::sqlite3_mutex_try(m) == ffi::SQLITE_OK {
                ffi::sqlite3_mutex_leave(m);
            } else {
                TRY_WORKS.store(false, Ordering::Relaxed);
            }
            ffi::sqlite3_mutex_free(m);
        }
    }
    Ok(())
}

/// How many times, since [`install_spinning_mutexes`], a thread spun on a held SQLite mutex
/// without getting it and went to sleep (always 0 without it). A diagnostic: a figure that
/// grows by thousands per second says threads hold SQLite's locks longer than the spin, often
/// because there are more busy threads than cores.
pub fn sqlite_mutex_sleeps() -> u64 {
    SLEPT.load(Ordering::Relaxed)
}

fn empty_methods() -> ffi::sqlite3_mutex_methods {
    ffi::sqlite3_mutex_methods {
        xMutexInit: None,
        xMutexEnd: None,
        xMutexAlloc: None,
        xMutexFree: None,
        xMutexEnter: None,
        xMutexTry: None,
        xMutexLeave: None,
        xMutexHeld: None,
        xMutexNotheld: None,
    }
}
