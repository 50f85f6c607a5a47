//! The bounded command queue between callers and a connection's worker thread.
//!
//! A `Mutex<VecDeque>` with two atomics beside it: `len`, so the worker can spin on the queue
//! without taking the lock, and `pending`, the number of commands submitted and not yet
//! finished (queued, deferred or running), which tells callers when the connection is idle.
//! The worker spins (then yields, see `spin`) for a bounded time when the queue runs dry, then parks; submitters unpark
//! it only when it is parked (a Dekker-style handshake on `parked` and `len`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::spin::Backoff;
use crate::worker::Job;

const OPEN: u8 = 0;
/// `close()` was called: no new commands; the worker drains and exits.
const CLOSED: u8 = 1;
/// Every handle is gone: the worker drains and exits.
const DROPPED: u8 = 2;

pub(crate) struct Queue {
    inner: Mutex<Inner>,
    len: AtomicUsize,
    pending: AtomicUsize,
    parked: AtomicBool,
    state: AtomicU8,
    thread: OnceLock<Thread>,
    capacity: usize,
    /// The worker's spin-then-yield state while it waits for commands.
    backoff: Backoff,
    /// The core the last command was submitted from (-1: unknown), see `spin`.
    submitter_cpu: AtomicI32,
}

/// What the worker's wait ended with.
// Returned once per command and taken apart at once, like the `Option<Job>` it replaces:
// boxing the job would cost an allocation per command.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Next {
    Job(Job),
    /// Closed or dropped, and nothing left.
    Closed,
    /// Nothing to run: a tick passed, or the read anchor wants a look.
    Idle,
}

struct Inner {
    jobs: VecDeque<Job>,
    /// Callers waiting for room, in arrival order.
    waiters: VecDeque<(u64, Waker)>,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Queue {
            inner: Mutex::new(Inner {
                jobs: VecDeque::with_capacity(capacity.min(64)),
                waiters: VecDeque::new(),
            }),
            len: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            state: AtomicU8::new(OPEN),
            thread: OnceLock::new(),
            capacity,
            backoff: Backoff::new(),
            submitter_cpu: AtomicI32::new(-1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by the worker thread once, before it first parks.
    pub(crate) fn set_thread(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    /// Commands submitted and not yet finished.
    #[inline]
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// `true` while the worker is parked (a new command will pay a thread wake-up).
    #[inline]
    pub(crate) fn worker_parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) != OPEN
    }

    fn wake_worker(&self) {
        if self.parked.load(Ordering::SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    /// Push unless the queue is closed or (when not `force`d) full; a refused job comes back.
    fn try_push(&self, mut job: Job, force: bool) -> std::result::Result<(), Refused> {
        let mut q = self.lock();
        if self.state.load(Ordering::Acquire) != OPEN {
            job.reply.disarm();
            return Err(Refused::Closed);
        }
        if !force && q.jobs.len() >= self.capacity {
            return Err(Refused::Full(Box::new(job)));
        }
        // Count it before it becomes visible, so the worker cannot finish it first.
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.submitter_cpu.store(crate::spin::current_cpu(), Ordering::Relaxed);
        q.jobs.push_back(job);
        self.len.store(q.jobs.len(), Ordering::SeqCst);
        drop(q);
        self.wake_worker();
        Ok(())
    }

    /// Push without waiting: `Err(QueueFull)` or `Err(Closed)`.
    pub(crate) fn push_now(&self, job: Job) -> Result<()> {
        self.try_push(job, false).map_err(|r| match r {
            Refused::Closed => Error::Closed,
            Refused::Full(mut job) => {
                job.reply.disarm();
                Error::QueueFull
            }
        })
    }

    /// Push past the capacity bound (cleanup commands from `Drop`, which cannot wait). Returns
    /// `false` when the queue is closed.
    pub(crate) fn push_force(&self, job: Job) -> bool {
        self.try_push(job, true).is_ok()
    }

    /// Push `close` and mark the queue closed in one step, so every command submitted before
    /// it runs and every later one is refused. `false` when already closed.
    pub(crate) fn push_close(&self, mut job: Job) -> bool {
        let mut q = self.lock();
        if self.state.load(Ordering::Acquire) != OPEN {
            job.reply.disarm();
            return false;
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.submitter_cpu.store(crate::spin::current_cpu(), Ordering::Relaxed);
        q.jobs.push_back(job);
        // `len` first: a worker that sees the queue closed must also see the close command.
        self.len.store(q.jobs.len(), Ordering::SeqCst);
        self.state.store(CLOSED, Ordering::SeqCst);
        let waiters: Vec<Waker> = q.waiters.drain(..).map(|(_, w)| w).collect();
        drop(q);
        for w in waiters {
            w.wake();
        }
        self.wake_worker();
        true
    }

    /// Every handle is gone: let the worker finish what is queued and exit.
    pub(crate) fn mark_dropped(&self) {
        let _q = self.lock();
        let _ = self
            .state
            .compare_exchange(OPEN, DROPPED, Ordering::AcqRel, Ordering::Acquire);
        drop(_q);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// The worker failed to start or stopped: refuse everything from now on.
    pub(crate) fn shut(&self) -> Vec<Job> {
        let mut q = self.lock();
        self.state.store(CLOSED, Ordering::Release);
        let jobs: Vec<Job> = q.jobs.drain(..).collect();
        self.len.store(0, Ordering::SeqCst);
        let waiters: Vec<Waker> = q.waiters.drain(..).map(|(_, w)| w).collect();
        drop(q);
        for w in waiters {
            w.wake();
        }
        jobs
    }

    /// A command finished (ran, was skipped or refused).
    #[inline]
    pub(crate) fn finished(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    fn pop(&self) -> Option<Job> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = self.lock();
        let job = q.jobs.pop_front();
        self.len.store(q.jobs.len(), Ordering::SeqCst);
        if job.is_some()
            && q.jobs.len() < self.capacity
            && let Some((_, w)) = q.waiters.pop_front()
        {
            drop(q);
            w.wake();
        }
        job
    }

    /// The worker's wait for the next command: spin up to `spin`, then park — for at most
    /// `tick` when given, and never while `attention` is set (it is the read anchor's
    /// `active` flag, which inline reads set, then wake the worker with `wake_for`).
    pub(crate) fn next(&self, spin: Duration, tick: Option<Duration>, attention: &AtomicBool) -> Next {
        loop {
            if let Some(job) = self.pop() {
                return Next::Job(job);
            }
            if self.state.load(Ordering::Acquire) != OPEN {
                // Decide under the lock: the atomics alone may lag behind a push.
                if self.lock().jobs.is_empty() {
                    return Next::Closed;
                }
                continue;
            }
            if tick.is_none() && attention.load(Ordering::SeqCst) {
                return Next::Idle;
            }
            if !spin.is_zero() {
                let limit = spin.as_nanos().min(u128::from(u64::MAX)) as u64;
                let ready = || self.len.load(Ordering::Relaxed) != 0 || self.state.load(Ordering::Relaxed) != OPEN;
                if self.backoff.wait_for(limit, ready, Some(&self.submitter_cpu)) {
                    continue;
                }
            }
            self.parked.store(true, Ordering::SeqCst);
            let idle = self.len.load(Ordering::SeqCst) == 0 && self.state.load(Ordering::SeqCst) == OPEN;
            match tick {
                Some(t) if idle => std::thread::park_timeout(t),
                None if idle && !attention.load(Ordering::SeqCst) => std::thread::park(),
                _ => {}
            }
            self.parked.store(false, Ordering::SeqCst);
            if tick.is_some() && self.len.load(Ordering::SeqCst) == 0 && self.state.load(Ordering::SeqCst) == OPEN {
                return Next::Idle;
            }
        }
    }

    /// Wake the worker after setting the flag it watches in [`next`](Self::next) (SeqCst on
    /// both sides: either it sees the flag before parking, or we see it parked).
    pub(crate) fn wake_for(&self) {
        self.wake_worker();
    }

    /// A future that submits `job`, waiting (FIFO) for room when the queue is full.
    pub(crate) fn submit(&self, job: Job, ticket: u64) -> Submit<'_> {
        Submit {
            queue: self,
            job: Some(job),
            ticket,
            waiting: false,
        }
    }
}

/// Why a push was refused.
enum Refused {
    Closed,
    Full(Box<Job>),
}

/// See [`Queue::submit`].
pub(crate) struct Submit<'a> {
    queue: &'a Queue,
    job: Option<Job>,
    ticket: u64,
    waiting: bool,
}

impl Future for Submit<'_> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(job) = self.job.take() else {
            return Poll::Ready(Ok(()));
        };
        match self.queue.try_push(job, false) {
            Ok(()) => {
                if self.waiting {
                    self.waiting = false;
                    self.queue.lock().waiters.retain(|(t, _)| *t != self.ticket);
                }
                Poll::Ready(Ok(()))
            }
            Err(Refused::Closed) => Poll::Ready(Err(Error::Closed)),
            Err(Refused::Full(job)) => {
                let job = *job;
                let mut q = self.queue.lock();
                // Re-check under the lock: the worker may have made room meanwhile.
                if q.jobs.len() < self.queue.capacity || self.queue.state.load(Ordering::Acquire) != OPEN {
                    drop(q);
                    self.job = Some(job);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                let ticket = self.ticket;
                match q.waiters.iter_mut().find(|(t, _)| *t == ticket) {
                    Some((_, w)) => w.clone_from(cx.waker()),
                    None => q.waiters.push_back((ticket, cx.waker().clone())),
                }
                drop(q);
                self.waiting = true;
                self.job = Some(job);
                Poll::Pending
            }
        }
    }
}

impl Drop for Submit<'_> {
    fn drop(&mut self) {
        if self.waiting {
            let mut q = self.queue.lock();
            let before = q.waiters.len();
            q.waiters.retain(|(t, _)| *t != self.ticket);
            let was_woken = q.waiters.len() == before;
            // We were woken for a free place we will not take: pass it on.
            let next = if was_woken && q.jobs.len() < self.queue.capacity {
                q.waiters.front().map(|(_, w)| w.clone())
            } else {
                None
            };
            drop(q);
            if let Some(w) = next {
                w.wake();
            }
        }
    }
}
