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
//!
//! **A busy machine.** When every core has work, a `yield_now()` hands the core to another
//! thread for a whole time slice (milliseconds): yielding until the reply came would make each
//! call wait that long. A yield slower than 50 µs starts a quiet window (10 ms, doubling while
//! yields stay that slow, up to 1 s) in which waits skip the yield phase and park at once; a
//! parked thread that is woken gets a core back sooner.
//!
//! **Sharing a core with the caller.** When the worker and its caller end up on the same core
//! while another one is free, the scheduler tends to keep them together for as long as both
//! stay runnable (and a spinning pair always is): every hand-off then costs two context
//! switches, and a run of awaited calls goes at half speed or less. The worker notices (its
//! yield gave the core away, and the last command was submitted from the core it runs on)
//! and, at most every few milliseconds, hops to another core it is allowed on: it takes its
//! current core out of its affinity mask, which makes the kernel move it at once, and puts the
//! mask back as it was (Linux; elsewhere it does nothing). Nothing is pinned; a caller's
//! threads are never touched.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

const MIN_PURE: u32 = 4;
const MAX_PURE: u32 = 128;
/// A `yield_now()` slower than this handed the core to another thread.
const SHARED_CORE_NS: u64 = 1_500;

/// At most one hop to another core per this many nanoseconds per worker.
const HOP_INTERVAL_NS: u64 = 5_000_000;
/// A `yield_now()` slower than this gave the core to a thread that ran a whole time slice: the
/// machine is busy, and yielding again would wait as long.
const EXPENSIVE_YIELD_NS: u64 = 50_000;
/// How long a waiter parks straight away after an expensive yield: doubling from the first
/// while yields stay expensive, back to the first after a cheap one.
const QUIET_MIN_NS: u64 = 10_000_000;
const QUIET_MAX_NS: u64 = 1_000_000_000;

/// Per-waiter adaptive state (one per connection for callers, one for the worker).
pub(crate) struct Backoff {
    pure: AtomicU32,
    /// When the worker last hopped to another core (`now_ns`); 0: never.
    last_hop: AtomicU64,
    /// Until when (`now_ns`) waits skip the yield phase and park at once.
    quiet_until: AtomicU64,
    /// The length of the next quiet window.
    quiet_len: AtomicU64,
}

impl Backoff {
    pub(crate) const fn new() -> Self {
        Backoff {
            pure: AtomicU32::new(64),
            last_hop: AtomicU64::new(0),
            quiet_until: AtomicU64::new(0),
            quiet_len: AtomicU64::new(QUIET_MIN_NS),
        }
    }

    /// A yield just took `took_ns`. When that was a whole time slice of someone else's, start
    /// a quiet window (see `wait_for`) and say so.
    #[inline]
    fn yield_was_expensive(&self, took_ns: u64) -> bool {
        if took_ns < EXPENSIVE_YIELD_NS {
            return false;
        }
        let len = self.quiet_len.load(Ordering::Relaxed);
        self.quiet_until.store(now_ns() + len, Ordering::Relaxed);
        self.quiet_len.store((len * 2).min(QUIET_MAX_NS), Ordering::Relaxed);
        true
    }

    /// Wait up to `limit_ns` for `ready()`; `true` when it became ready.
    #[inline]
    pub(crate) fn wait(&self, limit_ns: u64, ready: impl FnMut() -> bool) -> bool {
        self.wait_for(limit_ns, ready, None)
    }

    /// [`wait`](Self::wait) for the worker: `peer_cpu` is the core the last command was
    /// submitted from; sharing it is a reason to hop (see the module docs).
    #[inline]
    pub(crate) fn wait_for(
        &self,
        limit_ns: u64,
        mut ready: impl FnMut() -> bool,
        peer_cpu: Option<&AtomicI32>,
    ) -> bool {
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
        // Yield phase, unless a recent yield showed a busy machine: there a yield waits for
        // other threads' whole time slices (milliseconds), while a parked thread that is woken
        // gets the core back soon, so park at once until the quiet window ends.
        let quiet_until = self.quiet_until.load(Ordering::Relaxed);
        if quiet_until != 0 {
            if now_ns() < quiet_until {
                return ready();
            }
            // Over (unless another waiter of this connection just opened a new window).
            let _ = self
                .quiet_until
                .compare_exchange(quiet_until, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        // A first yield that took a while means another thread ran on this core (often the
        // very thread being waited for): pure spinning would have starved it.
        let before = Instant::now();
        std::thread::yield_now();
        let took = before.elapsed().as_nanos() as u64;
        if self.yield_was_expensive(took) {
            return ready();
        }
        // A cheap yield: the machine has room again.
        self.quiet_len.store(QUIET_MIN_NS, Ordering::Relaxed);
        let shared_core = took >= SHARED_CORE_NS;
        let next = if shared_core {
            (pure / 2).max(MIN_PURE)
        } else {
            (pure + 1).min(MAX_PURE)
        };
        self.pure.store(next, Ordering::Relaxed);
        // Sharing a core with the thread that submitted the last command: hop. (Only after a
        // cheap yield: a slow one already sends this waiter to park, and hopping on every
        // slow yield measured worse.)
        if shared_core && let Some(peer) = peer_cpu {
            let cpu = current_cpu();
            if cpu >= 0 && peer.load(Ordering::Relaxed) == cpu {
                let now = now_ns();
                let last = self.last_hop.load(Ordering::Relaxed);
                if last == 0 || now.saturating_sub(last) >= HOP_INTERVAL_NS {
                    self.last_hop.store(now.max(1), Ordering::Relaxed);
                    hop_off(cpu);
                }
            }
        }
        loop {
            if ready() {
                return true;
            }
            if start.elapsed().as_nanos() as u64 >= limit_ns {
                return false;
            }
            let before = Instant::now();
            std::thread::yield_now();
            if self.yield_was_expensive(before.elapsed().as_nanos() as u64) {
                return ready();
            }
        }
    }
}

fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The core this thread runs on, -1 when unknown.
#[inline]
pub(crate) fn current_cpu() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no arguments, no memory.
        unsafe { libc::sched_getcpu() }
    }
    #[cfg(not(target_os = "linux"))]
    {
        -1
    }
}

/// Move this thread off core `cpu` to another core of its affinity mask, then put the mask
/// back. Returns the core it moved to (read while the narrowed mask was in force). Does
/// nothing when `cpu` is the only allowed core, when the mask cannot be read or narrowed (a
/// cgroup's cpuset may refuse), or off Linux.
///
/// The mask put back is the one read before, which is the thread's effective mask: on kernels
/// that keep a separate requested mask, CPUs brought online later are then not added to this
/// worker by themselves.
pub(crate) fn hop_off(cpu: i32) -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        let cpu_idx = usize::try_from(cpu).ok()?;
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `cpu_set_t` is plain data (all-zero is the empty set); the libc calls get
        // pointers to live sets of the size passed, and pid 0 (this thread).
        unsafe {
            let mut mask: libc::cpu_set_t = std::mem::zeroed();
            if cpu_idx >= libc::CPU_SETSIZE as usize || libc::sched_getaffinity(0, size, &mut mask) != 0 {
                return None;
            }
            if !libc::CPU_ISSET(cpu_idx, &mask) {
                return None;
            }
            let mut others = mask;
            libc::CPU_CLR(cpu_idx, &mut others);
            if libc::CPU_COUNT(&others) == 0 || libc::sched_setaffinity(0, size, &others) != 0 {
                return None;
            }
            // The kernel has moved this thread before returning.
            let moved_to = current_cpu();
            // The old mask lets it stay where it is now and go anywhere it could before.
            if libc::sched_setaffinity(0, size, &mask) != 0 && libc::sched_setaffinity(0, size, &mask) != 0 {
                tracing::warn!(
                    "aiolite: could not restore a worker thread's CPU affinity after moving it off CPU {cpu}"
                );
            }
            Some(moved_to)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn hop_off_moves_the_thread_and_keeps_its_mask() {
        std::thread::spawn(|| {
            let size = std::mem::size_of::<libc::cpu_set_t>();
            let mask = || {
                // SAFETY: as in `hop_off`.
                unsafe {
                    let mut m: libc::cpu_set_t = std::mem::zeroed();
                    assert_eq!(libc::sched_getaffinity(0, size, &mut m), 0);
                    m
                }
            };
            let before = mask();
            // SAFETY: reads a live set.
            if unsafe { libc::CPU_COUNT(&before) } < 2 {
                eprintln!("one core allowed: nothing to hop to");
                assert_eq!(hop_off(current_cpu()), None);
                return;
            }
            let cpu = current_cpu();
            let moved_to = hop_off(cpu).expect("another core is allowed");
            assert_ne!(moved_to, cpu, "moved off the core it was on");
            // SAFETY: reads two live sets.
            assert!(
                unsafe { libc::CPU_EQUAL(&before, &mask()) },
                "the mask is back as it was"
            );
            assert_eq!(hop_off(-1), None);
        })
        .join()
        .unwrap();
    }

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
        // A busy test machine may make a yield expensive: the wait then ends early (the real
        // callers park and come back), so wait again until ready, as they do.
        while !b.wait(u64::MAX, || {
            calls += 1;
            calls > 500
        }) {}
        assert!(calls > 500);
        let pure = b.pure.load(Ordering::Relaxed);
        assert!((MIN_PURE..=MAX_PURE).contains(&pure), "{pure}");
    }

    #[test]
    fn an_expensive_yield_makes_waits_park_at_once() {
        let b = Backoff::new();
        assert!(!b.yield_was_expensive(SHARED_CORE_NS));
        assert_eq!(b.quiet_until.load(Ordering::Relaxed), 0);
        assert!(b.yield_was_expensive(EXPENSIVE_YIELD_NS));
        assert_eq!(b.quiet_len.load(Ordering::Relaxed), 2 * QUIET_MIN_NS);
        assert!(b.quiet_until.load(Ordering::Relaxed) > now_ns());
        // No time limit and never ready: only the quiet window ends this wait (after the
        // pure spin), instead of yielding forever. (The window is made endless here so that
        // a test thread descheduled for 10 ms cannot see it close.)
        b.quiet_until.store(u64::MAX, Ordering::Relaxed);
        assert!(!b.wait(u64::MAX, || false));
        assert!(b.wait(u64::MAX, || true));
        // The window doubles while yields stay expensive, up to the cap.
        for _ in 0..40 {
            b.yield_was_expensive(EXPENSIVE_YIELD_NS);
        }
        assert_eq!(b.quiet_len.load(Ordering::Relaxed), QUIET_MAX_NS);
    }

    #[test]
    fn times_out() {
        let b = Backoff::new();
        let start = Instant::now();
        assert!(!b.wait(200_000, || false));
        // The limit, or earlier when a yield was slow enough to open a quiet window (a busy
        // test machine).
        assert!(start.elapsed().as_nanos() >= 200_000 || b.quiet_until.load(Ordering::Relaxed) != 0);
    }
}
