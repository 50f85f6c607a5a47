//! Adaptive spin-then-yield waiting, used on both sides of a connection's queue (the worker
//! looking for its next command, a caller looking for its reply).
//!
//! A cross-thread hand-off costs a fraction of a microsecond when both threads are on their
//! own cores and spinning, and tens of microseconds when the waiter has parked. Spinning is
//! only a win while the other thread can run: when both share one core (a busy 2-core
//! machine), a pure spin burns the very time slice the other thread needs. So a wait spins
//! on `pause` for a short, adaptive number of rounds and then falls back to
//! `std::thread::yield_now()`, which hands the core over when someone else wants it and
//! returns at once when nobody does.
//!
//! The pure-spin budget adapts per waiter: it grows when the other side answers within it
//! (hand-offs between cores are fast: spin more), and halves when the first yield actually
//! gave the core away (another thread was waiting for it: spin less).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const MIN_PURE: u32 = 4;
const MAX_PURE: u32 = 128;
/// A `yield_now()` slower than this handed the core to another thread.
const SHARED_CORE_NS: u64 = 1_500;

/// Per-waiter adaptive state (one per connection for callers, one for the worker).
pub(crate) struct Backoff {
    pure: AtomicU32,
}

impl Backoff {
    pub(crate) const fn new() -> Self {
        Backoff {
            pure: AtomicU32::new(64),
        }
    }

    /// Wait up to `limit_ns` for `ready()`; `true` when it became ready.
    #[inline]
    pub(crate) fn wait(&self, limit_ns: u64, mut ready: impl FnMut() -> bool) -> bool {
        let pure = self.pure.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut i = 0_u32;
        while i < pure {
            std::hint::spin_loop();
            if ready() {
                self.pure.store((pure * 2).min(MAX_PURE), Ordering::Relaxed);
                return true;
            }
            i += 1;
            if i % 16 == 0 && start.elapsed().as_nanos() as u64 >= limit_ns {
                return false;
            }
        }
        // Yield phase. A first yield that took a while means another thread ran on this
        // core (often the very thread being waited for): pure spinning would have starved it.
        let before = Instant::now();
        std::thread::yield_now();
        let shared_core = before.elapsed().as_nanos() as u64 >= SHARED_CORE_NS;
        let next = if shared_core {
            (pure / 2).max(MIN_PURE)
        } else {
            (pure + 1).min(MAX_PURE)
        };
        self.pure.store(next, Ordering::Relaxed);
        loop {
            if ready() {
                return true;
            }
            if start.elapsed().as_nanos() as u64 >= limit_ns {
                return false;
            }
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_at_once_grows_the_budget() {
        let b = Backoff::new();
        assert!(b.wait(1_000_000, || true));
        assert_eq!(b.pure.load(Ordering::Relaxed), 128);
    }

    #[test]
    fn a_long_wait_ends_in_the_yield_phase() {
        let b = Backoff::new();
        let mut calls = 0;
        assert!(b.wait(u64::MAX, || {
            calls += 1;
            calls > 500
        }));
        let pure = b.pure.load(Ordering::Relaxed);
        assert!((MIN_PURE..=MAX_PURE).contains(&pure), "{pure}");
    }

    #[test]
    fn times_out() {
        let b = Backoff::new();
        let start = Instant::now();
        assert!(!b.wait(200_000, || false));
        assert!(start.elapsed().as_nanos() >= 200_000);
    }
}
