//! Replies from the worker: a one-shot slot for Rust futures, or any callback (the pluggable
//! reply path that other front ends, such as an asyncio bridge, plug into).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use crate::error::{Error, Result};
use crate::worker::{Reply, Shared};

/// What a command produces.
pub(crate) type Outcome = Result<Reply>;

/// A one-shot reply slot shared by a waiting future and the worker.
pub(crate) struct Slot {
    ready: AtomicBool,
    cancelled: AtomicBool,
    value: Mutex<Option<Outcome>>,
    waker: AtomicWaker,
}

impl Slot {
    pub(crate) fn new() -> Arc<Slot> {
        Arc::new(Slot {
            ready: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            value: Mutex::new(None),
            waker: AtomicWaker::new(),
        })
    }

    pub(crate) fn complete(&self, outcome: Outcome) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        self.ready.store(true, Ordering::Release);
        self.waker.wake();
    }

    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn try_take(&self) -> Option<Outcome> {
        if self.is_ready() {
            self.value.lock().unwrap_or_else(|e| e.into_inner()).take()
        } else {
            None
        }
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    pub(crate) fn register(&self, cx: &Context<'_>) {
        self.waker.register(cx.waker());
    }

    /// The outcome when it is there; otherwise register the task to be woken for it.
    pub(crate) fn poll(&self, cx: &Context<'_>) -> Poll<Outcome> {
        if let Some(o) = self.try_take() {
            return Poll::Ready(o);
        }
        self.register(cx);
        self.try_take().map_or(Poll::Pending, Poll::Ready)
    }
}

/// A reply sink: receives the outcome of one command, on the worker thread.
pub(crate) type Sink = Box<dyn FnOnce(Outcome) + Send>;

/// Where the worker sends a command's outcome. A reply path dropped without an outcome (the
/// command was lost, e.g. to a worker panic) answers `Err(Closed)`, so no caller waits forever.
pub(crate) struct ReplyTo(Option<Path>);

enum Path {
    /// A Rust future waiting on a slot.
    Slot(Arc<Slot>),
    /// A callback (other front ends). It runs on the worker thread and must not block.
    Sink(Sink),
}

impl ReplyTo {
    /// Reply to a waiting future.
    #[allow(non_snake_case)]
    pub(crate) fn Slot(slot: Arc<Slot>) -> ReplyTo {
        ReplyTo(Some(Path::Slot(slot)))
    }

    /// Reply through a callback.
    #[allow(non_snake_case)]
    pub(crate) fn Sink(sink: Sink) -> ReplyTo {
        ReplyTo(Some(Path::Sink(sink)))
    }

    /// Nobody: fire-and-forget cleanup commands.
    #[allow(non_upper_case_globals)]
    pub(crate) const Nobody: ReplyTo = ReplyTo(None);

    /// Drop the reply path without answering: for a command refused before it was queued,
    /// whose submitter learns of the refusal from the submit call itself.
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }

    /// Take the reply path out, leaving nobody to answer: for a command that answers before
    /// it ends.
    pub(crate) fn take(&mut self) -> ReplyTo {
        ReplyTo(self.0.take())
    }

    /// `true` when the waiting future was dropped: the command need not run.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        match &self.0 {
            Some(Path::Slot(s)) => s.cancelled.load(Ordering::Acquire),
            Some(Path::Sink(_)) | None => false,
        }
    }

    #[inline]
    pub(crate) fn send(mut self, outcome: Outcome) {
        match self.0.take() {
            Some(Path::Slot(s)) => s.complete(outcome),
            Some(Path::Sink(f)) => {
                // A panicking sink must not take the worker down.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(outcome)));
                if outcome.is_err() {
                    tracing::error!("aiolite: a reply sink panicked");
                }
            }
            None => {}
        }
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        if self.0.is_some() {
            ReplyTo(self.0.take()).send(Err(Error::Closed));
        }
    }
}

/// Waits for the reply to job `id`. Dropping it before the reply arrives cancels the job: a
/// job that has not started never runs, and one that is running is interrupted when that is
/// safe (see `worker::Ctx`).
pub(crate) struct WaitReply<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) slot: Arc<Slot>,
    pub(crate) id: u64,
    pub(crate) may_spin: bool,
    pub(crate) done: bool,
}

impl Future for WaitReply<'_> {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        if let Some(v) = self.slot.try_take() {
            self.done = true;
            return Poll::Ready(v);
        }
        if std::mem::take(&mut self.may_spin) {
            // Bounded, adaptive spin-then-yield (see `ConnectOptions::wait_spin` and
            // `spin`): only when the worker was awake and recent commands finished well
            // within the bound.
            let slot = &self.slot;
            self.shared
                .caller_backoff
                .wait(self.shared.wait_spin_ns, || slot.is_ready());
            if let Some(v) = self.slot.try_take() {
                self.done = true;
                return Poll::Ready(v);
            }
        }
        let r = self.slot.poll(cx);
        self.done = r.is_ready();
        r
    }
}

impl Drop for WaitReply<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.slot.cancel();
            self.shared.ctx.request_cancel(self.id);
        }
    }
}

/// Turn a worker outcome of the wrong shape into an internal error (never expected).
pub(crate) fn unexpected(what: &str) -> Error {
    Error::Unsupported {
        message: format!("internal: unexpected reply to {what}"),
    }
}
