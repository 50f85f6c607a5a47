//! `Future`: a light asyncio-compatible future for results that come through a hub.
//!
//! It speaks the protocol asyncio's `Task` uses for foreign futures
//! (`_asyncio_future_blocking`, `get_loop`, `add_done_callback(fn, context=)`, `result`,
//! `cancel`, …), so `await fut` works in any task. Two things make it cheaper than
//! `loop.create_future()` + `set_result()`:
//!
//! - no source traceback is captured in debug mode (asyncio captures one per future and one
//!   per scheduled callback, tens of microseconds each);
//! - when the hub completes it (its drain runs as a plain loop callback, with no task
//!   running), the done callbacks — normally the waiting task's wake-up — are called right
//!   there instead of being scheduled for the next loop iteration. Completion anywhere else
//!   (cancellation, a result available at once) schedules them with `loop.call_soon`, as
//!   asyncio does.

use std::cell::Cell;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use pyo3::{PyTraverseError, PyVisit};

thread_local! {
    /// Set while the hub drains (a plain loop callback): completions may call done
    /// callbacks directly. Cleared while a callback runs.
    static DIRECT: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with direct completion allowed (the hub's drain).
pub(crate) fn with_direct<R>(f: impl FnOnce() -> R) -> R {
    let old = DIRECT.with(|d| d.replace(true));
    let r = f();
    DIRECT.with(|d| d.set(old));
    r
}

enum State {
    Pending,
    Result(Py<PyAny>),
    Error(PyErr),
    Cancelled(Option<Py<PyAny>>),
}

type Callback = (Py<PyAny>, Option<Py<PyAny>>);

#[pyclass(module = "aiolite._aiolite", name = "Future")]
pub(crate) struct LiteFuture {
    lp: Py<PyAny>,
    state: State,
    callbacks: Vec<Callback>,
    blocking: bool,
}

fn cancelled_error(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CANCELLED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CANCELLED.import(py, "asyncio", "CancelledError")
}

fn invalid_state(py: Python<'_>, message: &str) -> PyErr {
    static INVALID: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    match INVALID
        .import(py, "asyncio", "InvalidStateError")
        .and_then(|c| c.call1((message,)))
    {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

fn cancel_err(py: Python<'_>, msg: &Option<Py<PyAny>>) -> PyErr {
    let r = match msg {
        Some(m) => cancelled_error(py).and_then(|c| c.call1((m.bind(py),))),
        None => cancelled_error(py).and_then(|c| c.call0()),
    };
    match r {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

impl LiteFuture {
    pub(crate) fn new(lp: Py<PyAny>) -> LiteFuture {
        LiteFuture {
            lp,
            state: State::Pending,
            callbacks: Vec::new(),
            blocking: false,
        }
    }

    fn outcome(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.state {
            State::Pending => Err(invalid_state(py, "Result is not set.")),
            State::Result(v) => Ok(v.clone_ref(py)),
            State::Error(e) => Err(e.clone_ref(py)),
            State::Cancelled(msg) => Err(cancel_err(py, msg)),
        }
    }
}

/// Complete `fut` (a `LiteFuture`) unless it is done already; run or schedule its callbacks.
pub(crate) fn complete(fut: &Bound<'_, LiteFuture>, result: PyResult<Py<PyAny>>) {
    let py = fut.py();
    let (callbacks, lp) = {
        let Ok(mut me) = fut.try_borrow_mut() else { return };
        if !matches!(me.state, State::Pending) {
            return;
        }
        me.state = match result {
            Ok(v) => State::Result(v),
            Err(e) => State::Error(e),
        };
        (std::mem::take(&mut me.callbacks), me.lp.clone_ref(py))
    };
    run_callbacks(fut.as_any(), &lp, callbacks);
}

fn run_callbacks(fut: &Bound<'_, PyAny>, lp: &Py<PyAny>, callbacks: Vec<Callback>) {
    if callbacks.is_empty() {
        return;
    }
    let py = fut.py();
    if DIRECT.with(Cell::get) {
        for (cb, ctx) in callbacks {
            let old = DIRECT.with(|d| d.replace(false));
            let r = match &ctx {
                Some(ctx) => ctx.bind(py).call_method1("run", (cb.bind(py), fut)),
                None => cb.bind(py).call1((fut,)),
            };
            DIRECT.with(|d| d.set(old));
            if let Err(e) = r {
                report(py, lp, e, fut);
            }
        }
    } else {
        schedule(py, lp, fut, callbacks);
    }
}

fn schedule(py: Python<'_>, lp: &Py<PyAny>, fut: &Bound<'_, PyAny>, callbacks: Vec<Callback>) {
    for (cb, ctx) in callbacks {
        let kwargs = PyDict::new(py);
        let r = kwargs
            .set_item("context", ctx.as_ref().map(|c| c.bind(py)))
            .and_then(|()| lp.bind(py).call_method("call_soon", (cb.bind(py), fut), Some(&kwargs)));
        if let Err(e) = r {
            report(py, lp, e, fut);
        }
    }
}

/// An exception from a done callback goes to the loop's exception handler, as asyncio's
/// `Handle._run` does.
fn report(py: Python<'_>, lp: &Py<PyAny>, e: PyErr, fut: &Bound<'_, PyAny>) {
    let ctx = PyDict::new(py);
    let _ = ctx.set_item("message", "Exception in callback of an aiolite future");
    let _ = ctx.set_item("exception", e.value(py));
    let _ = ctx.set_item("future", fut);
    if lp.bind(py).call_method1("call_exception_handler", (ctx,)).is_err() {
        e.write_unraisable(py, Some(fut));
    }
}

#[pymethods]
impl LiteFuture {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Yield the future while pending (the task waits on it), then return its result.
    fn __next__(slf: Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let mut me = slf.borrow_mut();
        if matches!(me.state, State::Pending) {
            me.blocking = true;
            drop(me);
            return Ok(slf.into_any().unbind());
        }
        match me.outcome(py) {
            Ok(v) => Err(PyStopIteration::new_err((v,))),
            Err(e) => Err(e),
        }
    }

    #[getter(_asyncio_future_blocking)]
    fn get_blocking(&self) -> bool {
        self.blocking
    }

    #[setter(_asyncio_future_blocking)]
    fn set_blocking(&mut self, value: bool) {
        self.blocking = value;
    }

    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.lp.clone_ref(py)
    }

    #[getter(_loop)]
    fn loop_attr(&self, py: Python<'_>) -> Py<PyAny> {
        self.lp.clone_ref(py)
    }

    fn done(&self) -> bool {
        !matches!(self.state, State::Pending)
    }

    fn cancelled(&self) -> bool {
        matches!(self.state, State::Cancelled(_))
    }

    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.outcome(py)
    }

    fn exception(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.state {
            State::Pending => Err(invalid_state(py, "Exception is not set.")),
            State::Result(_) => Ok(py.None()),
            State::Error(e) => Ok(e.value(py).clone().into_any().unbind()),
            State::Cancelled(msg) => Err(cancel_err(py, msg)),
        }
    }

    #[pyo3(signature = (callback, *, context=None))]
    fn add_done_callback(slf: Bound<'_, Self>, callback: Py<PyAny>, context: Option<Py<PyAny>>) {
        let py = slf.py();
        let mut me = slf.borrow_mut();
        if matches!(me.state, State::Pending) {
            me.callbacks.push((callback, context));
            return;
        }
        let lp = me.lp.clone_ref(py);
        drop(me);
        schedule(py, &lp, slf.as_any(), vec![(callback, context)]);
    }

    fn remove_done_callback(&mut self, py: Python<'_>, callback: Bound<'_, PyAny>) -> usize {
        let before = self.callbacks.len();
        self.callbacks
            .retain(|(cb, _)| !cb.bind(py).eq(&callback).unwrap_or(false));
        before - self.callbacks.len()
    }

    #[pyo3(signature = (msg=None))]
    fn cancel(slf: Bound<'_, Self>, msg: Option<Py<PyAny>>) -> bool {
        let py = slf.py();
        let (callbacks, lp) = {
            let mut me = slf.borrow_mut();
            if !matches!(me.state, State::Pending) {
                return false;
            }
            me.state = State::Cancelled(msg);
            (std::mem::take(&mut me.callbacks), me.lp.clone_ref(py))
        };
        schedule(py, &lp, slf.as_any(), callbacks);
        true
    }

    fn __repr__(&self) -> String {
        let state = match self.state {
            State::Pending => "pending",
            State::Result(_) => "finished",
            State::Error(_) => "finished (exception)",
            State::Cancelled(_) => "cancelled",
        };
        format!("<aiolite Future {state}>")
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lp)?;
        for (cb, ctx) in &self.callbacks {
            visit.call(cb)?;
            if let Some(c) = ctx {
                visit.call(c)?;
            }
        }
        if let State::Result(v) = &self.state {
            visit.call(v)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.callbacks.clear();
    }
}

/// Complete any future: a `LiteFuture`, or an asyncio future (`done()` / `set_result()`).
pub(crate) fn resolve(py: Python<'_>, fut: &Py<PyAny>, result: PyResult<Py<PyAny>>) {
    let fut = fut.bind(py);
    if let Ok(lf) = fut.cast::<LiteFuture>() {
        complete(lf, result);
        return;
    }
    match fut.call_method0(pyo3::intern!(py, "done")).and_then(|d| d.is_truthy()) {
        Ok(false) => {}
        _ => return,
    }
    let r = match result {
        Ok(v) => fut.call_method1(pyo3::intern!(py, "set_result"), (v,)),
        Err(e) => fut.call_method1(pyo3::intern!(py, "set_exception"), (e.into_value(py),)),
    };
    if let Err(e) = r {
        e.write_unraisable(py, Some(fut));
    }
}
