//! The per-event-loop completion hub: how results get from worker threads to asyncio.
//!
//! A worker finishing a command never takes the GIL. Its reply callback pushes the outcome
//! (plain Rust data plus the future to complete, which it only moves) onto the
//! hub's queue and, if the hub is not already armed, writes the hub's eventfd (a pipe where
//! there is no eventfd). The event loop watches that descriptor with `loop.add_reader`; the
//! callback runs on the loop's thread, which holds the GIL anyway, drains the queue, builds
//! the Python objects and completes the futures. Wake-ups coalesce: one write per batch, not
//! per result.
//!
//! Loops that cannot watch a descriptor (the Windows proactor loop) get the fallback: the
//! worker attaches to Python (through [`crate::gate`], which refuses during interpreter
//! shutdown) and schedules the drain with `loop.call_soon_threadsafe`, swallowing the error
//! of a closed loop.
//!
//! The hub also drives Rust futures of the core (open, close, backup, iterdump, hooks) without
//! an executor thread: their wakers push a "poll me" item onto the same queue, and the loop's
//! thread polls them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};

use aiolite::raw::Reply;
use pyo3::exceptions::{PyAttributeError, PyNotImplementedError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::convert::to_pyerr;

/// Completes `fut` from a command's reply, on the loop's thread (with the draining hub).
pub(crate) type Finish = Box<dyn FnOnce(Python<'_>, &Arc<HubInner>, Py<PyAny>, aiolite::Result<Reply>) + Send>;

/// A [`Finish`] that completes the future with `f(reply)`.
pub(crate) fn finish_with<F>(f: F) -> Finish
where
    F: FnOnce(Python<'_>, aiolite::Result<Reply>) -> PyResult<Py<PyAny>> + Send + 'static,
{
    Box::new(move |py, _hub, fut, outcome| {
        let r = f(py, outcome);
        resolve(py, &fut, r);
    })
}

/// Builds a Python result on the loop's thread.
pub(crate) type Conv = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A Rust future driven by a hub.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = aiolite::Result<Conv>> + Send>>;

pub(crate) enum Item {
    /// A command finished: build its result and complete `fut`.
    Done {
        fut: Py<PyAny>,
        outcome: aiolite::Result<Reply>,
        finish: Finish,
    },
    /// A result built elsewhere, for a future of this hub's loop.
    Ready {
        fut: Py<PyAny>,
        result: PyResult<Py<PyAny>>,
    },
    /// A driven future was woken.
    Poll(Arc<Task>),
}

struct State {
    items: Vec<Item>,
    armed: bool,
}

enum Mode {
    /// An eventfd (or pipe) watched with `loop.add_reader`.
    #[cfg(unix)]
    Fd(Fd),
    /// `loop.call_soon_threadsafe(drain)`: the loop, weakly.
    Threadsafe(Py<PyAny>),
}

pub(crate) struct HubInner {
    state: Mutex<State>,
    mode: Mode,
}

impl HubInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue an item for the loop's thread (from any thread, without the GIL).
    pub(crate) fn push(self: &Arc<Self>, item: Item) {
        let mut st = self.lock();
        st.items.push(item);
        if st.armed {
            return;
        }
        st.armed = true;
        match &self.mode {
            #[cfg(unix)]
            Mode::Fd(fd) => fd.notify(),
            Mode::Threadsafe(weak_loop) => {
                drop(st);
                // The only place a worker attaches to Python for plain SQL, and only on loops
                // without descriptor watching. Nothing happens during interpreter shutdown.
                let _ = crate::gate::with_python(|py| {
                    let Ok(lp) = weak_loop.bind(py).call0() else { return };
                    if lp.is_none() {
                        return;
                    }
                    let hub = Hub {
                        inner: Arc::clone(self),
                    };
                    if let Ok(hub) = Py::new(py, hub)
                        && let Ok(drain) = hub.bind(py).getattr("drain")
                    {
                        // A closed loop raises RuntimeError: its results are dropped.
                        let _ = lp.call_method1("call_soon_threadsafe", (drain,));
                    }
                });
            }
        }
    }

    /// A reply callback for `Connection::submit` that completes `fut` with `finish(reply)`.
    pub(crate) fn reply_to(
        self: &Arc<Self>,
        fut: Py<PyAny>,
        finish: Finish,
    ) -> impl FnOnce(aiolite::Result<Reply>) + Send + 'static {
        let hub = Arc::clone(self);
        move |outcome| hub.push(Item::Done { fut, outcome, finish })
    }

    fn drain(self: &Arc<Self>, py: Python<'_>) {
        let items = {
            let mut st = self.lock();
            #[cfg(unix)]
            if let Mode::Fd(fd) = &self.mode {
                fd.clear();
            }
            st.armed = false;
            std::mem::take(&mut st.items)
        };
        crate::future::with_direct(|| {
            for item in items {
                match item {
                    Item::Done { fut, outcome, finish } => finish(py, self, fut, outcome),
                    Item::Ready { fut, result } => resolve(py, &fut, result),
                    Item::Poll(task) => task.poll(py),
                }
            }
        });
    }
}

pub(crate) use crate::future::resolve;

/// The Python face of a hub (kept on its loop).
#[pyclass(frozen, module = "aiolite._aiolite")]
pub(crate) struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

#[pymethods]
impl Hub {
    /// Complete everything that arrived (the loop calls this).
    fn drain(&self, py: Python<'_>) {
        self.inner.drain(py);
    }
}

#[cfg(unix)]
struct Fd {
    read: libc::c_int,
    write: libc::c_int,
}

#[cfg(unix)]
impl Fd {
    fn new() -> std::io::Result<Fd> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: plain syscall; the descriptor is owned by the returned `Fd`.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Fd { read: fd, write: fd })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: `fds` has room for the two descriptors.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for fd in fds {
                // SAFETY: descriptors just created and owned here.
                unsafe {
                    libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(Fd {
                read: fds[0],
                write: fds[1],
            })
        }
    }

    fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a local to our own descriptor. A full pipe or a
        // saturated counter already means "readable": the error is harmless.
        unsafe { libc::write(self.write, (&raw const one).cast(), 8) };
    }

    fn clear(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a local buffer from our own non-blocking descriptor.
        while unsafe { libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) } > 0 {
            if self.read == self.write {
                break; // an eventfd is cleared by one read
            }
        }
    }
}

#[cfg(unix)]
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closing descriptors this struct owns, once.
        unsafe {
            libc::close(self.read);
            if self.write != self.read {
                libc::close(self.write);
            }
        }
    }
}

/// Hubs of loops whose objects take no attributes (e.g. uvloop), weakly keyed.
static FOREIGN_HUBS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// The last (loop, hub) pair used, both weakly: most programs run one loop.
static LAST: Mutex<Option<(Py<PyAny>, Weak<HubInner>)>> = Mutex::new(None);

const HUB_ATTR: &str = "_aiolite_hub";

/// The running event loop, or (outside a coroutine) the current one, as
/// `asyncio.get_event_loop()` finds it.
pub(crate) fn current_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET_RUNNING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static GET_EVENT_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let running = GET_RUNNING.import(py, "asyncio", "_get_running_loop")?.call0()?;
    if !running.is_none() {
        return Ok(running);
    }
    GET_EVENT_LOOP.import(py, "asyncio", "get_event_loop")?.call0()
}

/// The hub of `lp`, created on first use.
pub(crate) fn hub_for(py: Python<'_>, lp: &Bound<'_, PyAny>) -> PyResult<Arc<HubInner>> {
    {
        let last = LAST
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(weak, hub)| (weak.clone_ref(py), hub.clone()));
        if let Some((weak, hub)) = last
            && weak.bind(py).call0()?.is(lp)
            && let Some(hub) = hub.upgrade()
        {
            return Ok(hub);
        }
    }
    let hub = lookup_or_create(py, lp)?;
    if let Ok(weak) = py.import("weakref")?.getattr("ref")?.call1((lp,)) {
        *LAST.lock().unwrap_or_else(|e| e.into_inner()) = Some((weak.unbind(), Arc::downgrade(&hub)));
    }
    Ok(hub)
}

fn lookup_or_create(py: Python<'_>, lp: &Bound<'_, PyAny>) -> PyResult<Arc<HubInner>> {
    match lp.getattr(HUB_ATTR) {
        Ok(h) => return Ok(Arc::clone(&h.cast::<Hub>()?.get().inner)),
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => {}
        Err(e) => return Err(e),
    }
    let foreign = FOREIGN_HUBS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("weakref")?.getattr("WeakKeyDictionary")?.call0()?.unbind())
    })?;
    if let Ok(Some(h)) = foreign
        .bind(py)
        .call_method1("get", (lp,))
        .map(|h| (!h.is_none()).then_some(h))
    {
        return Ok(Arc::clone(&h.cast::<Hub>()?.get().inner));
    }
    let inner = Arc::new(new_hub(py, lp)?);
    let hub = Py::new(
        py,
        Hub {
            inner: Arc::clone(&inner),
        },
    )?;
    #[cfg(unix)]
    if let Mode::Fd(fd) = &inner.mode {
        lp.call_method1("add_reader", (fd.read, hub.bind(py).getattr("drain")?))?;
    }
    if lp.setattr(HUB_ATTR, &hub).is_err() {
        foreign.bind(py).set_item(lp, &hub)?;
    }
    Ok(inner)
}

fn new_hub(py: Python<'_>, lp: &Bound<'_, PyAny>) -> PyResult<HubInner> {
    let state = Mutex::new(State {
        items: Vec::new(),
        armed: false,
    });
    #[cfg(unix)]
    {
        // Probe: can this loop watch a descriptor? (The proactor loop cannot.)
        let fd = Fd::new().map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let probe = lp.call_method1("add_reader", (fd.read, py.None()));
        match probe {
            Ok(_) => {
                lp.call_method1("remove_reader", (fd.read,))?;
                return Ok(HubInner {
                    state,
                    mode: Mode::Fd(fd),
                });
            }
            Err(e) if e.is_instance_of::<PyNotImplementedError>(py) => {}
            Err(e) => return Err(e),
        }
    }
    let weak = py.import("weakref")?.getattr("ref")?.call1((lp,))?.unbind();
    Ok(HubInner {
        state,
        mode: Mode::Threadsafe(weak),
    })
}

/// A new future on the current loop, and that loop's hub.
pub(crate) fn new_future(py: Python<'_>) -> PyResult<(Arc<HubInner>, Bound<'_, PyAny>)> {
    let lp = current_loop(py)?;
    let hub = hub_for(py, &lp)?;
    let fut = Bound::new(py, crate::future::LiteFuture::new(lp.unbind()))?;
    Ok((hub, fut.into_any()))
}

/// A Rust future driven by a hub, completing an asyncio future.
pub(crate) struct Task {
    fut: Mutex<Option<BoxFuture>>,
    py_fut: Py<PyAny>,
    hub: Arc<HubInner>,
    queued: AtomicBool,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            let hub = Arc::clone(&self.hub);
            hub.push(Item::Poll(self));
        }
    }
}

impl Task {
    fn poll(self: Arc<Self>, py: Python<'_>) {
        self.queued.store(false, Ordering::Release);
        let waker = Waker::from(Arc::clone(&self));
        let mut cx = Context::from_waker(&waker);
        let out = {
            let mut slot = self.fut.lock().unwrap_or_else(|e| e.into_inner());
            let Some(f) = slot.as_mut() else { return };
            match f.as_mut().poll(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(out) => {
                    *slot = None;
                    out
                }
            }
        };
        let r = match out {
            Ok(conv) => conv(py),
            Err(e) => Err(to_pyerr(py, e)),
        };
        resolve(py, &self.py_fut, r);
    }
}

/// Drive `f` on the current loop's hub; returns the asyncio future of its result.
pub(crate) fn spawn<F>(py: Python<'_>, f: F) -> PyResult<Py<PyAny>>
where
    F: Future<Output = aiolite::Result<Conv>> + Send + 'static,
{
    let (hub, fut) = new_future(py)?;
    let fut = fut.unbind();
    spawn_into(py, &hub, fut.clone_ref(py), f);
    Ok(fut)
}

/// Drive `f` on `hub`, completing `fut`. The first poll happens on the loop's next turn
/// (from the hub), so the future never completes before the caller awaits it: like every
/// aiosqlite call, these take at least one trip through the loop (closing, for one, must
/// let the calls issued right after it run first).
pub(crate) fn spawn_into<F>(py: Python<'_>, hub: &Arc<HubInner>, fut: Py<PyAny>, f: F)
where
    F: Future<Output = aiolite::Result<Conv>> + Send + 'static,
{
    let _ = py;
    let task = Arc::new(Task {
        fut: Mutex::new(Some(Box::pin(f))),
        py_fut: fut,
        hub: Arc::clone(hub),
        queued: AtomicBool::new(true),
    });
    hub.push(Item::Poll(task));
}

/// `None` as a result.
pub(crate) fn none() -> Conv {
    Box::new(|py| Ok(py.None()))
}
