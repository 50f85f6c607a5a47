//! `RawCursor`: a DB-API cursor over one aiolite connection, streaming in chunks.
//!
//! `execute` sends one command that runs the statement and brings back its first chunk of
//! rows, `rowcount` and `lastrowid` ([`Command::cursor_execute`]); the statement then stays
//! open on the worker and further rows come `iter_chunk_size` (or what a fetch asks for) at a
//! time. One request for rows is in flight at most, and the cursor reads ahead only while it
//! holds less than two fetches' worth (two chunks of at least 256 rows), so memory stays bounded by what
//! the caller asks for, not by the size of the result. `fetchall` converts chunk by chunk as
//! they arrive, while the worker reads the next. Rows stay Rust values until a fetch converts
//! them, with the `row_factory` / `text_factory` of that moment, as `sqlite3` does.
//!
//! Fetches served from the buffer complete at once; the others wait, in call order, for the
//! rows they need.

use std::collections::VecDeque;
use std::sync::Arc;

use aiolite::raw::{Command, Executed, Prelude, Reply};
use aiolite::{Column, Row};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::convert::{self, RowConv, programming_error, to_pyerr};
use crate::core::Core;
use crate::hub::{self, Finish, HubInner};
use crate::sqltext;

/// What a fetch asks for.
#[derive(Clone, Copy, Debug)]
enum Want {
    One,
    Many(usize),
    All,
}

/// A fetch waiting for rows.
struct Waiter {
    fut: Py<PyAny>,
    want: Want,
    /// The hub of the loop that awaits `fut`.
    hub: Arc<HubInner>,
    /// `fetchall`: the rows converted so far (chunks are converted as they arrive, while
    /// the worker reads the next one).
    acc: Option<Py<PyList>>,
}

/// Smallest read-ahead request, in rows.
const READ_AHEAD: usize = 256;

/// Rows per `cursor_next` for `fetchall`.
const ALL_CHUNK: usize = 1024;

/// Rows taken from the buffer for one fetch.
enum Taken {
    One(Option<Row>),
    Many(Vec<Row>),
}

#[pyclass(module = "aiolite._aiolite")]
pub(crate) struct RawCursor {
    core: Py<Core>,
    conn: aiolite::Connection,
    /// Bumped by each execute: replies for an older statement are ignored.
    generation: u64,
    /// The worker's id for the current statement.
    id: u64,
    /// The worker keeps the statement open (more rows may come).
    open: bool,
    buf: VecDeque<Row>,
    columns: Option<Arc<Vec<Column>>>,
    /// Caches for `columns`.
    description: Option<Py<PyAny>>,
    desc_cursor: Option<Py<PyAny>>,
    converters: Option<Option<convert::Converters>>,
    /// Fetches waiting for rows, answered in order.
    waiters: VecDeque<Waiter>,
    /// A `cursor_next` is in flight (one at a time).
    inflight: bool,
    /// An execute is in flight: fetches wait for its reply.
    executing: bool,
    /// The error that ended the rows, for the fetch that reaches it.
    error: Option<PyErr>,
    /// Rows to read ahead: the last `fetchmany` size (at least a chunk).
    ahead: usize,
    /// The DB-API `arraysize` (rows per `fetchmany()` without a size).
    #[pyo3(get, set)]
    arraysize: i64,
    rowcount: i64,
    lastrowid: Option<i64>,
    row_factory: Py<PyAny>,
    closed: bool,
}

impl RawCursor {
    pub(crate) fn new(py: Python<'_>, core: &Bound<'_, Core>, row_factory: Py<PyAny>) -> RawCursor {
        let _ = py;
        RawCursor {
            conn: core.get().conn.clone(),
            core: core.clone().unbind(),
            generation: 0,
            id: 0,
            open: false,
            buf: VecDeque::new(),
            columns: None,
            description: None,
            desc_cursor: None,
            converters: None,
            waiters: VecDeque::new(),
            inflight: false,
            executing: false,
            error: None,
            ahead: 0,
            arraysize: 1,
            rowcount: -1,
            lastrowid: None,
            row_factory,
            closed: false,
        }
    }

    fn check(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed {
            return Err(programming_error(py, "Cannot operate on a closed cursor."));
        }
        Ok(())
    }

    /// Forget the current statement (finalizing it on the worker if it is still open).
    fn reset(&mut self) {
        if self.open {
            let _ = self.conn.submit(Command::cursor_close(self.id), |_| {});
        }
        self.open = false;
        self.buf.clear();
        self.columns = None;
        self.description = None;
        self.desc_cursor = None;
        self.converters = None;
        self.inflight = false;
        self.executing = false;
        self.error = None;
        self.generation += 1;
        // Fetches still waiting for the old statement's rows get nothing more.
        for w in self.waiters.drain(..) {
            let result = Python::attach(|py| match w.want {
                Want::One => Ok(py.None()),
                _ => Ok(PyList::empty(py).into_any().unbind()),
            });
            w.hub.push(hub::Item::Ready { fut: w.fut, result });
        }
    }

    /// Accept the reply of an execute.
    fn accept(&mut self, ex: Executed, dml: bool, keep_lastrowid: bool) {
        let Executed {
            chunk,
            changes,
            last_insert_rowid,
            ..
        } = ex;
        self.columns = (!chunk.columns.is_empty()).then_some(chunk.columns);
        self.buf = chunk.rows.into();
        self.open = !chunk.done;
        self.rowcount = if dml { changes as i64 } else { -1 };
        if !keep_lastrowid {
            self.lastrowid = Some(last_insert_rowid);
        }
    }

    fn take(&mut self, want: Want) -> Option<Taken> {
        match want {
            Want::One => {
                if let Some(r) = self.buf.pop_front() {
                    Some(Taken::One(Some(r)))
                } else if !self.open {
                    Some(Taken::One(None))
                } else {
                    None
                }
            }
            Want::Many(n) => {
                if self.buf.len() >= n || !self.open {
                    let n = n.min(self.buf.len());
                    Some(Taken::Many(self.buf.drain(..n).collect()))
                } else {
                    None
                }
            }
            Want::All => (!self.open).then(|| Taken::Many(self.buf.drain(..).collect())),
        }
    }

    /// Rows the next `cursor_next` should bring for `want`.
    fn request_size(&self, want: Want, chunk: usize) -> usize {
        match want {
            Want::One => chunk,
            Want::Many(n) => n.saturating_sub(self.buf.len()).max(chunk),
            Want::All => ALL_CHUNK.max(chunk),
        }
    }

    /// `want` cannot be answered from the buffer alone.
    fn short_for(&self, want: Want) -> bool {
        match want {
            Want::One => self.buf.is_empty(),
            Want::Many(n) => self.buf.len() < n,
            Want::All => true,
        }
    }
}

/// How to convert this cursor's rows now: `(conv, new caches to store)`.
fn conv_for(slf: &Bound<'_, RawCursor>) -> PyResult<RowConv> {
    let py = slf.py();
    let (core, columns, factory, desc_cursor, converters) = {
        let me = slf.borrow();
        (
            me.core.clone_ref(py),
            me.columns.clone(),
            me.row_factory.clone_ref(py),
            me.desc_cursor.as_ref().map(|c| c.clone_ref(py)),
            me.converters.clone(),
        )
    };
    let core = core.bind(py).get();
    let text = core.text(py)?;
    let converters = match (converters, &columns) {
        (Some(c), _) => c,
        (None, Some(cols)) => {
            let c = convert::converters(py, cols, core.detect_types())?;
            slf.borrow_mut().converters = Some(c.clone());
            c
        }
        (None, None) => None,
    };
    let factory = if factory.is_none(py) {
        None
    } else {
        let cursor = match desc_cursor {
            Some(c) => c,
            None => {
                let c = description_cursor(
                    py,
                    columns.as_deref().map_or(&[][..], Vec::as_slice),
                    core.detect_types(),
                )?;
                slf.borrow_mut().desc_cursor = Some(c.clone_ref(py));
                c
            }
        };
        Some((factory, cursor))
    };
    Ok(RowConv {
        text,
        converters,
        factory,
    })
}

/// A real `sqlite3.Cursor` whose `description` names `columns`, for `row_factory(cursor,
/// row)` (`sqlite3.Row` reads only the description).
pub(crate) fn description_cursor(py: Python<'_>, columns: &[Column], detect_types: i32) -> PyResult<Py<PyAny>> {
    let names = PyTuple::new(py, columns.iter().map(|c| convert::column_name(c.name(), detect_types)))?;
    Ok(py
        .import("aiolite._support")?
        .getattr("description_cursor")?
        .call1((names,))?
        .unbind())
}

/// `cursor.description` for `columns`.
pub(crate) fn description(py: Python<'_>, columns: Option<&[Column]>, detect_types: i32) -> PyResult<Py<PyAny>> {
    let Some(columns) = columns else {
        return Ok(py.None());
    };
    let items = columns
        .iter()
        .map(|c| {
            let name = convert::column_name(c.name(), detect_types);
            let none = py.None().into_bound(py);
            PyTuple::new(
                py,
                [
                    name.into_pyobject(py)?.into_any(),
                    none.clone(),
                    none.clone(),
                    none.clone(),
                    none.clone(),
                    none.clone(),
                    none,
                ],
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyTuple::new(py, items)?.into_any().unbind())
}

fn convert_taken(py: Python<'_>, conv: &RowConv, taken: Taken) -> PyResult<Py<PyAny>> {
    Ok(match taken {
        Taken::One(None) => py.None(),
        Taken::One(Some(r)) => conv.row(py, &r)?.unbind(),
        Taken::Many(rows) => conv.rows(py, rows.iter())?.into_any().unbind(),
    })
}

/// Deliver a fetch's result: here if the fetch awaits on this hub's loop, else through its
/// own hub.
fn deliver(py: Python<'_>, current: &Arc<HubInner>, w: Waiter, r: PyResult<Py<PyAny>>) {
    if Arc::ptr_eq(&w.hub, current) {
        hub::resolve(py, &w.fut, r);
    } else {
        w.hub.push(hub::Item::Ready { fut: w.fut, result: r });
    }
}

enum Step {
    Serve(Waiter, Taken),
    Fail(Waiter, PyErr),
    /// `fetchall`: convert these rows into the first waiter's list, keep waiting.
    Gather(Vec<Row>),
}

/// Answer the waiting fetches the buffer can answer, in order, and keep one request for
/// more rows in flight — for the first fetch still waiting, or, when none waits, ahead of
/// need: the worker reads the next chunk while this one is converted and consumed.
fn pump(slf: &Bound<'_, RawCursor>, current: &Arc<HubInner>) {
    let py = slf.py();
    if slf.borrow().executing {
        return; // the execute's reply pumps
    }
    // Ask first, so the worker reads while the rows already here are converted.
    maybe_request(slf, current);
    loop {
        let step = {
            let mut me = slf.borrow_mut();
            let Some(want) = me.waiters.front().map(|w| w.want) else {
                break;
            };
            if me.error.is_some() && me.short_for(want) {
                let e = me.error.take().expect("checked");
                Step::Fail(me.waiters.pop_front().expect("checked"), e)
            } else if let Some(taken) = me.take(want) {
                Step::Serve(me.waiters.pop_front().expect("checked"), taken)
            } else if matches!(want, Want::All) && !me.buf.is_empty() {
                Step::Gather(me.buf.drain(..).collect())
            } else {
                break;
            }
        };
        match step {
            Step::Serve(mut w, taken) => {
                let r = conv_for(slf).and_then(|conv| convert_taken(py, &conv, taken));
                let r = match (w.acc.take(), r) {
                    (Some(acc), Ok(rest)) => acc.bind(py).call_method1("extend", (rest,)).map(|_| acc.into_any()),
                    (_, r) => r,
                };
                deliver(py, current, w, r);
            }
            Step::Fail(w, e) => deliver(py, current, w, Err(e)),
            Step::Gather(rows) => {
                let r = conv_for(slf).and_then(|conv| conv.rows(py, rows.iter()));
                let mut me = slf.borrow_mut();
                match r {
                    Ok(list) => {
                        let w = me.waiters.front_mut().expect("gathering for the first waiter");
                        match &w.acc {
                            Some(acc) => {
                                let acc = acc.clone_ref(py);
                                drop(me);
                                if let Err(e) = acc.bind(py).call_method1("extend", (list,)) {
                                    slf.borrow_mut().error = Some(e);
                                }
                            }
                            None => w.acc = Some(list.unbind()),
                        }
                    }
                    Err(e) => {
                        let w = me.waiters.pop_front().expect("gathering for the first waiter");
                        drop(me);
                        deliver(py, current, w, Err(e));
                    }
                }
            }
        }
    }
    maybe_request(slf, current);
}

/// Send a `cursor_next` if rows are needed and none is in flight.
fn maybe_request(slf: &Bound<'_, RawCursor>, current: &Arc<HubInner>) {
    let py = slf.py();
    let n = {
        let mut me = slf.borrow_mut();
        if me.inflight || !me.open {
            return;
        }
        let chunk = me.core.bind(py).get().chunk;
        let n = match me.waiters.front() {
            Some(w) if me.short_for(w.want) => me.request_size(w.want, chunk),
            Some(_) => return,
            None => {
                // Keep one fetch's worth in hand and read the next while it is consumed:
                // at most two fetches' worth (or two read-ahead chunks) buffered. Replies
                // are delivered when the consumer next waits, so read-ahead chunks are at
                // least READ_AHEAD rows.
                let ahead = me.ahead.max(chunk).max(READ_AHEAD);
                if me.buf.len() >= 2 * ahead {
                    return;
                }
                ahead
            }
        };
        me.inflight = true;
        n
    };
    request(slf, current, n);
}

/// Ask the worker for the next `n` rows; the reply goes through `hub`.
fn request(slf: &Bound<'_, RawCursor>, hub: &Arc<HubInner>, n: usize) {
    let py = slf.py();
    let (id, generation, conn) = {
        let me = slf.borrow();
        (me.id, me.generation, me.conn.clone())
    };
    let this = slf.clone().unbind();
    let finish: Finish = Box::new(move |py, hub, _fut, outcome| {
        let slf = this.bind(py);
        {
            let mut me = slf.borrow_mut();
            if me.generation != generation {
                return; // a new statement replaced this one
            }
            me.inflight = false;
            match outcome {
                Ok(Reply::Chunk(c)) => {
                    me.buf.extend(c.rows);
                    me.open = !c.done;
                }
                Ok(_) => {
                    me.open = false;
                    me.error = Some(convert::internal("cursor_next"));
                }
                Err(e) => {
                    me.open = false;
                    me.error = Some(to_pyerr(py, e));
                }
            }
        }
        pump(slf, hub);
    });
    if let Err(e) = conn.submit(Command::cursor_next(id, n), hub.reply_to(py.None(), finish)) {
        // Refused (the connection is closed): the callback was dropped unused.
        {
            let mut me = slf.borrow_mut();
            me.inflight = false;
            me.open = false;
            me.error = Some(to_pyerr(py, e));
        }
        pump(slf, hub);
    }
}

#[pymethods]
impl RawCursor {
    /// Run one statement; the future completes (with `None`) when its first rows are here.
    #[pyo3(signature = (sql, parameters=None))]
    fn execute(slf: &Bound<'_, Self>, sql: &str, parameters: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let chunk = slf.borrow().core.bind(slf.py()).get().chunk;
        execute(slf, sql, parameters, chunk)
    }

    /// Run one statement once per parameter set.
    fn executemany(slf: &Bound<'_, Self>, sql: &str, seq_of_parameters: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        slf.borrow().check(py)?;
        convert::check_sql(py, sql)?;
        let mut rows = Vec::new();
        for p in seq_of_parameters.try_iter()? {
            rows.push(convert::params(py, sql, Some(&p?))?);
        }
        let core = slf.borrow().core.clone_ref(py);
        let dml = sqltext::is_dml(sql);
        let prelude = if dml {
            core.bind(py).get().isolation().map(Prelude::Begin)
        } else {
            None
        };
        submit_plain(slf, Command::cursor_execute_many(sql, rows, prelude), dml)
    }

    /// Run a script, committing first if a transaction is open.
    fn executescript(slf: &Bound<'_, Self>, sql_script: &str) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        slf.borrow().check(py)?;
        convert::check_sql(py, sql_script)?;
        submit_plain(
            slf,
            Command::cursor_execute_script(sql_script, Some(Prelude::Commit)),
            false,
        )
    }

    fn fetchone(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        fetch(slf, Want::One)
    }

    #[pyo3(signature = (size=None))]
    fn fetchmany(slf: &Bound<'_, Self>, size: Option<i64>) -> PyResult<Py<PyAny>> {
        let n = size.unwrap_or_else(|| slf.borrow().arraysize);
        fetch(slf, Want::Many(usize::try_from(n.max(0)).unwrap_or(0)))
    }

    fn fetchall(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        fetch(slf, Want::All)
    }

    /// Close the cursor (sync: the worker finalizes the statement in the background).
    fn close(&mut self) {
        if !self.closed {
            self.reset();
            self.closed = true;
        }
    }

    #[getter]
    fn rowcount(&self) -> i64 {
        self.rowcount
    }

    #[getter]
    fn lastrowid(&self) -> Option<i64> {
        self.lastrowid
    }

    #[getter]
    fn description(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if let Some(d) = &slf.borrow().description {
            return Ok(d.clone_ref(py));
        }
        let (columns, core) = {
            let me = slf.borrow();
            (me.columns.clone(), me.core.clone_ref(py))
        };
        let d = description(
            py,
            columns.as_deref().map(Vec::as_slice),
            core.bind(py).get().detect_types(),
        )?;
        slf.borrow_mut().description = Some(d.clone_ref(py));
        Ok(d)
    }

    #[getter]
    fn get_row_factory(&self, py: Python<'_>) -> Py<PyAny> {
        self.row_factory.clone_ref(py)
    }

    #[setter]
    fn set_row_factory(&mut self, factory: Py<PyAny>) {
        self.row_factory = factory;
    }

    /// Rows received from the worker and not fetched yet (at most about twice what the last
    /// `fetchmany` asked for, or twice 256).
    #[getter]
    fn buffered(&self) -> usize {
        self.buf.len()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.closed
    }

    #[getter]
    fn connection(&self, py: Python<'_>) -> Py<Core> {
        self.core.clone_ref(py)
    }
}

impl Drop for RawCursor {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.submit(Command::cursor_close(self.id), |_| {});
        }
    }
}

/// `execute` with `chunk` rows in the first reply.
pub(crate) fn execute(
    slf: &Bound<'_, RawCursor>,
    sql: &str,
    parameters: Option<&Bound<'_, PyAny>>,
    chunk: usize,
) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    slf.borrow().check(py)?;
    convert::check_sql(py, sql)?;
    let values = convert::params(py, sql, parameters)?;
    let core = slf.borrow().core.clone_ref(py);
    let core = core.bind(py).get();
    let dml = sqltext::is_dml(sql);
    let prelude = if dml {
        core.isolation().map(Prelude::Begin)
    } else {
        None
    };
    let (hub, fut) = hub::new_future(py)?;
    let (id, generation, conn) = {
        let mut me = slf.borrow_mut();
        me.reset();
        me.id = me.conn.new_cursor_id();
        me.executing = true;
        (me.id, me.generation, me.conn.clone())
    };
    let this = slf.clone().unbind();
    let finish: Finish = Box::new(move |py, hub, fut, outcome| {
        let slf = this.bind(py);
        let r = match executed(py, outcome) {
            Ok(ex) => {
                let mut me = slf.borrow_mut();
                if me.generation == generation {
                    me.executing = false;
                    me.accept(ex, dml, false);
                } else if !ex.chunk.done {
                    let _ = me.conn.submit(Command::cursor_close(id), |_| {});
                }
                Ok(py.None())
            }
            Err(e) => {
                let mut me = slf.borrow_mut();
                if me.generation == generation {
                    me.executing = false;
                    me.rowcount = -1;
                    if !me.waiters.is_empty() {
                        // Fetches issued before the reply (`execute_fetchall`) get the error.
                        me.error = Some(e.clone_ref(py));
                    }
                }
                Err(e)
            }
        };
        pump(slf, hub);
        hub::resolve(py, &fut, r);
    });
    conn.submit(
        Command::cursor_execute(id, sql, values, chunk, prelude),
        hub.reply_to(fut.clone().unbind(), finish),
    )
    .map_err(|e| {
        slf.borrow_mut().executing = false;
        to_pyerr(py, e)
    })?;
    Ok(fut.unbind())
}

/// The `Executed` inside a DB-API command's reply.
pub(crate) fn executed(py: Python<'_>, outcome: aiolite::Result<Reply>) -> PyResult<Executed> {
    match outcome {
        Ok(Reply::Any(b)) => match b.downcast::<Executed>() {
            Ok(ex) => Ok(*ex),
            Err(_) => Err(convert::internal("cursor_execute")),
        },
        Ok(_) => Err(convert::internal("cursor_execute")),
        Err(e) => Err(to_pyerr(py, e)),
    }
}

/// `executemany` / `executescript`: a command whose reply carries no rows.
fn submit_plain(slf: &Bound<'_, RawCursor>, cmd: Command, dml: bool) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    let (hub, fut) = hub::new_future(py)?;
    let (generation, conn) = {
        let mut me = slf.borrow_mut();
        me.reset();
        (me.generation, me.conn.clone())
    };
    let this = slf.clone().unbind();
    let finish: Finish = Box::new(move |py, _hub, fut, outcome| {
        let r = (|| -> PyResult<Py<PyAny>> {
            let ex = executed(py, outcome)?;
            let mut me = this.bind(py).borrow_mut();
            if me.generation == generation {
                me.accept(ex, dml, true);
            }
            Ok(py.None())
        })();
        hub::resolve(py, &fut, r);
    });
    conn.submit(cmd, hub.reply_to(fut.clone().unbind(), finish))
        .map_err(|e| to_pyerr(py, e))?;
    Ok(fut.unbind())
}

fn fetch(slf: &Bound<'_, RawCursor>, want: Want) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    slf.borrow().check(py)?;
    let (hub, fut) = hub::new_future(py)?;
    let fut = fut.unbind();
    {
        let mut me = slf.borrow_mut();
        if let Want::Many(n) = want {
            me.ahead = n;
        }
        me.waiters.push_back(Waiter {
            fut: fut.clone_ref(py),
            want,
            hub: Arc::clone(&hub),
            acc: None,
        });
    }
    pump(slf, &hub);
    Ok(fut)
}

/// `fetchall` (for `execute_fetchall`).
pub(crate) fn fetch_all(slf: &Bound<'_, RawCursor>) -> PyResult<Py<PyAny>> {
    fetch(slf, Want::All)
}
