//! `Core`: one aiolite connection (one worker thread) as the Python front end sees it.

use std::any::Any;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aiolite::raw::{Command, Prelude, Reply};
use aiolite::rusqlite;
use aiolite::{AuthRequest, Authorization, BackupOptions, BackupProgress, ConnectOptions, TransactionBehavior, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::convert::{self, Text, sqlite_exc, to_pyerr};
use crate::cursor::{self, RawCursor};
use crate::hub::{self, Conv, finish_with};
use crate::sqltext;

thread_local! {
    /// The worker's rusqlite connection while a Python callable runs on it through
    /// `Core.run_python` (aiosqlite's `_tx` queue): lets the `isolation_level` setter commit
    /// synchronously, as `sqlite3` does.
    static LENT: Cell<*const rusqlite::Connection> = const { Cell::new(std::ptr::null()) };
}

/// Rows in the first reply of `execute_fetchall`.
const FETCHALL_FIRST_CHUNK: usize = 256;

/// Connections still open, for the exit hook.
static LIVE: Mutex<Vec<Weak<LiveConn>>> = Mutex::new(Vec::new());

struct LiveConn {
    conn: aiolite::Connection,
}

#[pyclass(frozen, module = "aiolite._aiolite")]
pub(crate) struct Core {
    pub(crate) conn: aiolite::Connection,
    /// Rows per chunk when a cursor streams (`iter_chunk_size`).
    pub(crate) chunk: usize,
    /// The `isolation_level` for implicit transactions (`None`: autocommit).
    iso: Mutex<Option<TransactionBehavior>>,
    /// `None` for `str`.
    text_factory: Mutex<Option<Py<PyAny>>>,
    detect_types: AtomicI32,
    _live: Arc<LiveConn>,
}

impl Core {
    pub(crate) fn isolation(&self) -> Option<TransactionBehavior> {
        *self.iso.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn detect_types(&self) -> i32 {
        self.detect_types.load(Ordering::Relaxed)
    }

    pub(crate) fn text(&self, py: Python<'_>) -> PyResult<Text> {
        let f = self
            .text_factory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|f| f.clone_ref(py));
        match f {
            None => Ok(Text::Str),
            Some(f) => Text::of(py, f.bind(py)),
        }
    }

    fn submit(&self, py: Python<'_>, cmd: Command, finish: hub::Finish) -> PyResult<Py<PyAny>> {
        let (hub, fut) = hub::new_future(py)?;
        self.conn
            .submit(cmd, hub.reply_to(fut.clone().unbind(), finish))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(fut.unbind())
    }

    /// Run `f` on the worker with the rusqlite connection; its `PyResult` completes the future.
    fn call<F>(&self, py: Python<'_>, f: F) -> PyResult<Py<PyAny>>
    where
        F: FnOnce(&mut rusqlite::Connection) -> PyResult<Py<PyAny>> + Send + 'static,
    {
        let cmd = Command::call(move |c| Box::new(f(c)) as Box<dyn Any + Send>);
        self.submit(
            py,
            cmd,
            finish_with(|py, outcome| match outcome {
                Ok(Reply::Any(b)) => match b.downcast::<PyResult<Py<PyAny>>>() {
                    Ok(r) => *r,
                    Err(_) => Err(convert::internal("call")),
                },
                Ok(_) => Err(convert::internal("call")),
                Err(e) => Err(to_pyerr(py, e)),
            }),
        )
    }

    /// Run `f` on the worker with the rusqlite connection; the future completes with `None`
    /// or `f`'s error (converted on the loop's thread: the worker does not take the GIL).
    fn call_unit<F>(&self, py: Python<'_>, f: F) -> PyResult<Py<PyAny>>
    where
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<()> + Send + 'static,
    {
        let cmd = Command::call(move |c| Box::new(f(c)) as Box<dyn Any + Send>);
        self.submit(
            py,
            cmd,
            finish_with(|py, outcome| match outcome {
                Ok(Reply::Any(b)) => match b.downcast::<rusqlite::Result<()>>() {
                    Ok(r) => (*r).map(|()| py.None()).map_err(|e| rusqlite_err(py, e)),
                    Err(_) => Err(convert::internal("call")),
                },
                Ok(_) => Err(convert::internal("call")),
                Err(e) => Err(to_pyerr(py, e)),
            }),
        )
    }

    fn prelude(&self, sql: &str) -> Option<Prelude> {
        if sqltext::is_dml(sql) {
            self.isolation().map(Prelude::Begin)
        } else {
            None
        }
    }
}

/// A rusqlite error as `sqlite3` raises it.
pub(crate) fn rusqlite_err(py: Python<'_>, e: rusqlite::Error) -> PyErr {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let message = msg.unwrap_or_else(|| f.to_string());
            sqlite_exc(py, f.extended_code, message)
        }
        other => match convert::sqlite3(py) {
            Ok(s) => convert::exc(py, &s.database_error, other.to_string()),
            Err(e) => e,
        },
    }
}

fn parse_isolation(py: Python<'_>, level: Option<&str>) -> PyResult<Option<TransactionBehavior>> {
    let Some(level) = level else { return Ok(None) };
    match level.to_ascii_uppercase().as_str() {
        "" | "DEFERRED" => Ok(Some(TransactionBehavior::Deferred)),
        "IMMEDIATE" => Ok(Some(TransactionBehavior::Immediate)),
        "EXCLUSIVE" => Ok(Some(TransactionBehavior::Exclusive)),
        _ => {
            let _ = py;
            Err(PyValueError::new_err(
                "isolation_level string must be '', 'DEFERRED', 'IMMEDIATE', or 'EXCLUSIVE'",
            ))
        }
    }
}

/// Open a connection: the future completes with a `Core`.
#[pyfunction]
#[pyo3(signature = (path, *, timeout=5.0, detect_types=0, isolation_level=Some(String::new()), cached_statements=128, iter_chunk_size=64, worker_spin_us=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn open(
    py: Python<'_>,
    path: PathBuf,
    timeout: f64,
    detect_types: i32,
    isolation_level: Option<String>,
    cached_statements: usize,
    iter_chunk_size: usize,
    worker_spin_us: Option<u64>,
) -> PyResult<Py<PyAny>> {
    let iso = parse_isolation(py, isolation_level.as_deref())?;
    let timeout = if timeout.is_finite() && timeout > 0.0 {
        Duration::from_secs_f64(timeout.min(1e9))
    } else {
        Duration::ZERO
    };
    let chunk = iter_chunk_size.max(1);
    let mut opts = ConnectOptions::new(path)
        .busy_timeout(timeout)
        // Implicit transactions are the front end's (per statement, see `Prelude`).
        .isolation_level(None)
        .statement_cache_capacity(cached_statements)
        .iter_chunk_size(chunk)
        // aiosqlite's queue is unbounded.
        .queue_capacity(1 << 40)
        // The loop's thread never waits for the worker: no caller-side spin, no inline reads.
        .wait_spin(Duration::ZERO)
        .inline_reads(false);
    // The worker spins briefly before parking (the core's default, 50 µs): a parked thread
    // takes tens of microseconds to wake on virtual machines. `AIOLITE_WORKER_SPIN_US` or
    // `connect(..., aiolite_worker_spin_us=N)` changes it (0 parks at once: better when
    // the CPUs are oversubscribed).
    let spin = worker_spin_us.or_else(|| {
        std::env::var("AIOLITE_WORKER_SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(us) = spin {
        opts = opts.worker_spin(Duration::from_micros(us));
    }
    hub::spawn(py, async move {
        let conn = opts.open().await?;
        let conv: Conv = Box::new(move |py| {
            let live = Arc::new(LiveConn { conn: conn.clone() });
            {
                let mut all = LIVE.lock().unwrap_or_else(|e| e.into_inner());
                all.retain(|w| w.strong_count() > 0);
                all.push(Arc::downgrade(&live));
            }
            let core = Core {
                conn,
                chunk,
                iso: Mutex::new(iso),
                text_factory: Mutex::new(None),
                detect_types: AtomicI32::new(detect_types),
                _live: live,
            };
            Ok(Py::new(py, core)?.into_any())
        });
        Ok(conv)
    })
}

/// At exit: refuse new entries of workers into Python, stop every connection still open,
/// and wait (bounded) for the workers to close and for any Python callback still running on
/// them to return, so no worker runs Python code while the interpreter finalizes. Called from
/// `atexit`.
#[pyfunction]
pub(crate) fn shutdown(py: Python<'_>, timeout: f64) {
    let conns: Vec<aiolite::Connection> = LIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .filter_map(|w| w.upgrade().map(|l| l.conn.clone()))
        .collect();
    let timeout = Duration::from_secs_f64(if timeout.is_finite() {
        timeout.clamp(0.0, 60.0)
    } else {
        0.0
    });
    py.detach(move || {
        let start = std::time::Instant::now();
        // Callbacks fail from now on, so statements calling Python end quickly.
        crate::gate::shut();
        for c in &conns {
            c.stop();
        }
        for c in &conns {
            // `pending()` drops to zero once the worker ran the close.
            while c.pending() != 0 && start.elapsed() < timeout {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        // A callback that was already running must return before finalization starts.
        crate::gate::wait_out(start + timeout * 5);
    });
}

#[pymethods]
impl Core {
    /// A new cursor (no round trip).
    #[pyo3(signature = (row_factory=None))]
    fn cursor(slf: &Bound<'_, Self>, row_factory: Option<Py<PyAny>>) -> PyResult<Py<RawCursor>> {
        let py = slf.py();
        let f = row_factory.unwrap_or_else(|| py.None());
        Py::new(py, RawCursor::new(py, slf, f))
    }

    fn commit(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.submit(py, Command::commit(), unit())
    }

    fn rollback(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.submit(py, Command::rollback(), unit())
    }

    /// Run everything queued, then close; the future completes when SQLite is closed.
    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let conn = self.conn.clone();
        hub::spawn(py, async move {
            conn.close().await?;
            Ok(hub::none())
        })
    }

    /// Close in the background (sync).
    fn stop(&self) {
        self.conn.stop();
    }

    /// Close, completing `fut` (an asyncio future of the current loop) when done; a closed
    /// or dead loop only stops the connection.
    fn close_into(&self, py: Python<'_>, fut: Py<PyAny>) -> PyResult<()> {
        let lp = fut.bind(py).call_method0("get_loop")?;
        let conn = self.conn.clone();
        match hub::hub_for(py, &lp) {
            Ok(hub) => {
                hub::spawn_into(py, &hub, fut, async move {
                    let _ = conn.close().await;
                    Ok(hub::none())
                });
            }
            Err(_) => {
                conn.stop();
                let _ = fut.bind(py).call_method1("set_result", (py.None(),));
            }
        }
        Ok(())
    }

    /// `execute` + `fetchall`: one round trip for up to 256 rows; larger results stream in
    /// chunks converted while the worker reads the next one.
    #[pyo3(signature = (sql, parameters=None, row_factory=None))]
    fn execute_fetchall(
        slf: &Bound<'_, Self>,
        sql: &str,
        parameters: Option<&Bound<'_, PyAny>>,
        row_factory: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let factory = row_factory.unwrap_or_else(|| py.None());
        let cursor = Bound::new(py, RawCursor::new(py, slf, factory))?;
        cursor::execute(&cursor, sql, parameters, FETCHALL_FIRST_CHUNK)?;
        cursor::fetch_all(&cursor)
    }

    /// `execute` then `SELECT last_insert_rowid()`, in one round trip: the row `(rowid,)`.
    #[pyo3(signature = (sql, parameters=None, row_factory=None))]
    fn execute_insert(
        slf: &Bound<'_, Self>,
        sql: &str,
        parameters: Option<&Bound<'_, PyAny>>,
        row_factory: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let me = slf.get();
        convert::check_sql(py, sql)?;
        let values = convert::params(py, sql, parameters)?;
        let id = me.conn.new_cursor_id();
        let factory = row_factory.unwrap_or_else(|| py.None());
        me.submit(
            py,
            Command::cursor_execute(id, sql, values, usize::MAX, me.prelude(sql)),
            finish_with(move |py, outcome| {
                let ex = cursor::executed(py, outcome)?;
                let row = PyTuple::new(py, [ex.last_insert_rowid])?;
                if factory.is_none(py) {
                    return Ok(row.into_any().unbind());
                }
                let cursor = py
                    .import("aiolite._support")?
                    .getattr("description_cursor")?
                    .call1((PyTuple::new(py, ["last_insert_rowid()"])?,))?;
                Ok(factory.bind(py).call1((cursor, row))?.unbind())
            }),
        )
    }

    #[getter]
    fn in_transaction(&self) -> bool {
        self.conn.in_transaction()
    }

    #[getter]
    fn total_changes(&self) -> u64 {
        self.conn.total_changes()
    }

    /// Commands submitted and not finished (aiosqlite's `_tx` queue size).
    fn pending(&self) -> usize {
        self.conn.pending()
    }

    #[getter]
    fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Set the `isolation_level`. `None` commits an open transaction (as `sqlite3` does):
    /// at once when called from a callable running on the worker (`run_python`), otherwise by
    /// queueing a `COMMIT`.
    fn set_isolation_level(&self, py: Python<'_>, level: Option<&str>) -> PyResult<()> {
        let iso = parse_isolation(py, level)?;
        *self.iso.lock().unwrap_or_else(|e| e.into_inner()) = iso;
        if iso.is_none() {
            let lent = LENT.with(Cell::get);
            if lent.is_null() {
                if self.conn.in_transaction() {
                    let _ = self.conn.submit(Command::commit(), |_| {});
                }
            } else {
                // SAFETY: `LENT` is set only while `run_python` runs a callable on this thread
                // with the worker's connection borrowed for it; we are inside that callable.
                let conn = unsafe { &*lent };
                if !conn.is_autocommit() {
                    conn.execute_batch("COMMIT").map_err(|e| rusqlite_err(py, e))?;
                }
            }
        }
        Ok(())
    }

    #[getter]
    fn get_text_factory(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(
            match self.text_factory.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                Some(f) => f.clone_ref(py),
                None => convert::sqlite3(py)?.str_type.clone_ref(py).into_any(),
            },
        )
    }

    #[setter]
    fn set_text_factory(&self, py: Python<'_>, factory: Py<PyAny>) -> PyResult<()> {
        let is_str = factory.bind(py).is(convert::sqlite3(py)?.str_type.bind(py));
        *self.text_factory.lock().unwrap_or_else(|e| e.into_inner()) = (!is_str).then_some(factory);
        Ok(())
    }

    #[getter(detect_types)]
    fn get_detect_types(&self) -> i32 {
        self.detect_types()
    }

    /// Interrupt the statement running now.
    fn interrupt(&self) {
        self.conn.interrupt();
    }

    /// Register a Python function as an SQL function.
    #[pyo3(signature = (name, narg, func, *, deterministic=false))]
    fn create_function(
        &self,
        py: Python<'_>,
        name: String,
        narg: i32,
        func: Py<PyAny>,
        deterministic: bool,
    ) -> PyResult<Py<PyAny>> {
        use rusqlite::functions::FunctionFlags;
        if !(-1..=127).contains(&narg) {
            return Err(convert::programming_error(py, "too many arguments"));
        }
        let mut flags = FunctionFlags::SQLITE_UTF8;
        if deterministic {
            flags |= FunctionFlags::SQLITE_DETERMINISTIC;
        }
        let remove = func.is_none(py);
        self.call_unit(py, move |c| {
            if remove {
                return c.remove_function(name.as_str(), narg);
            }
            c.create_scalar_function(name.as_str(), narg, flags, move |ctx| {
                let args: Vec<Value> = (0..ctx.len()).map(|i| raw_value(ctx.get_raw(i))).collect();
                // The worker attaches to Python for the call, as sqlite3 does; never during
                // interpreter shutdown (the function then fails).
                let out = crate::gate::with_python(|py| -> PyResult<Value> {
                    let pyargs = args
                        .iter()
                        .map(|v| convert::arg_to_py(py, v))
                        .collect::<PyResult<Vec<_>>>()?;
                    let r = func.bind(py).call1(PyTuple::new(py, pyargs)?)?;
                    convert::result_value(py, &r)
                });
                match out {
                    Some(Ok(v)) => Ok(to_rusqlite(v)),
                    _ => Err(rusqlite::Error::UserFunctionError(
                        "user-defined function raised exception".into(),
                    )),
                }
            })
        })
    }

    /// Install (or remove, with `None`) a trace callback: called with each statement's SQL.
    fn set_trace_callback(&self, py: Python<'_>, callback: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let conn = self.conn.clone();
        hub::spawn(py, async move {
            let f = callback.map(|cb| {
                move |sql: &str| {
                    let _ = crate::gate::with_python(|py| {
                        if let Err(e) = cb.bind(py).call1((sql,)) {
                            e.write_unraisable(py, Some(cb.bind(py)));
                        }
                    });
                }
            });
            conn.set_trace_callback(f).await?;
            Ok(hub::none())
        })
    }

    /// Install (or remove) an authorizer `(action, arg1, arg2, db_name, trigger) -> int`.
    fn set_authorizer(&self, py: Python<'_>, callback: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let conn = self.conn.clone();
        hub::spawn(py, async move {
            let f = callback.map(|cb| {
                move |req: &AuthRequest<'_>| -> Authorization {
                    let verdict = crate::gate::with_python(|py| -> PyResult<i64> {
                        cb.bind(py)
                            .call1((req.action, req.arg1, req.arg2, req.database, req.accessor))?
                            .extract::<i64>()
                    });
                    match verdict {
                        Some(Ok(0)) => Authorization::Allow,
                        Some(Ok(2)) => Authorization::Ignore,
                        _ => Authorization::Deny,
                    }
                }
            });
            conn.set_authorizer(f).await?;
            Ok(hub::none())
        })
    }

    /// Install (or remove) a progress handler called every `n` SQLite instructions; a true
    /// result (or an exception) aborts the statement.
    fn set_progress_handler(&self, py: Python<'_>, handler: Option<Py<PyAny>>, n: i32) -> PyResult<Py<PyAny>> {
        let handler = handler.filter(|h| !h.is_none(py)).filter(|_| n > 0);
        let call = |cb: Py<PyAny>| {
            move || -> bool {
                crate::gate::with_python(|py| cb.bind(py).call0().and_then(|r| r.is_truthy()).unwrap_or(true))
                    .unwrap_or(true)
            }
        };
        // The core calls it at the requested granularity, alongside its own work
        // (interrupts by job, cancellation, statement timeouts).
        let conn = self.conn.clone();
        let every = u32::try_from(n.max(1)).unwrap_or(1);
        hub::spawn(py, async move {
            conn.set_progress_handler(every, handler.map(call)).await?;
            Ok(hub::none())
        })
    }

    #[cfg(feature = "load-extension")]
    fn enable_load_extension(&self, py: Python<'_>, enabled: bool) -> PyResult<Py<PyAny>> {
        self.call_unit(py, move |c| {
            if enabled {
                // SAFETY: only allows later loads, each an explicit request of the caller.
                unsafe { c.load_extension_enable() }
            } else {
                c.load_extension_disable()
            }
        })
    }

    #[cfg(feature = "load-extension")]
    #[pyo3(signature = (path, entrypoint=None))]
    fn load_extension(&self, py: Python<'_>, path: PathBuf, entrypoint: Option<String>) -> PyResult<Py<PyAny>> {
        self.call_unit(py, move |c| {
            // SAFETY: loading a library runs its code; the caller asked for this library, as
            // with `sqlite3.Connection.load_extension`.
            unsafe { c.load_extension(&path, entrypoint.as_deref()) }
        })
    }

    /// Online backup to another aiolite connection.
    #[pyo3(signature = (target, *, pages=-1, progress=None, name="main".to_owned(), sleep=0.25))]
    fn backup(
        &self,
        py: Python<'_>,
        target: &Bound<'_, Core>,
        pages: i32,
        progress: Option<Py<PyAny>>,
        name: String,
        sleep: f64,
    ) -> PyResult<Py<PyAny>> {
        let progress = progress.filter(|p| !p.is_none(py));
        if let Some(p) = &progress
            && !p.bind(py).is_callable()
        {
            return Err(PyTypeError::new_err("progress argument must be a callable"));
        }
        let conn = self.conn.clone();
        let dest = target.get().conn.clone();
        let failed: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
        let failed2 = Arc::clone(&failed);
        let progress_fn = progress.map(|cb| {
            Box::new(move |p: BackupProgress| {
                Python::attach(|py| {
                    let status = if p.remaining == 0 { 101 } else { 0 };
                    if let Err(e) = cb.bind(py).call1((status, p.remaining, p.page_count)) {
                        let mut f = failed2.lock().unwrap_or_else(|e| e.into_inner());
                        if f.is_none() {
                            *f = Some(e);
                        }
                    }
                });
            }) as Box<dyn FnMut(BackupProgress) + Send>
        });
        let sleep = Duration::from_secs_f64(if sleep.is_finite() { sleep.clamp(0.0, 1e6) } else { 0.0 });
        hub::spawn(py, async move {
            let opts = BackupOptions {
                pages: if pages <= 0 { -1 } else { pages },
                progress: progress_fn,
                name,
                sleep,
            };
            conn.backup(&dest, opts).await?;
            let conv: Conv = Box::new(
                move |py| match failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(e) => Err(e),
                    None => Ok(py.None()),
                },
            );
            Ok(conv)
        })
    }

    /// Backup to a `sqlite3.Connection`: the database is serialized on the worker, loaded
    /// into a private in-memory `sqlite3` connection and copied with its `backup()`.
    #[pyo3(signature = (target, *, pages=-1, progress=None, name="main".to_owned(), sleep=0.25))]
    fn backup_to_sqlite3(
        &self,
        py: Python<'_>,
        target: Py<PyAny>,
        pages: i32,
        progress: Option<Py<PyAny>>,
        name: String,
        sleep: f64,
    ) -> PyResult<Py<PyAny>> {
        let helper = py.import("aiolite._support")?.getattr("backup_into")?.unbind();
        self.call(py, move |c| {
            let data = if name == "main" {
                c.serialize(rusqlite::MAIN_DB).map(|d| d.to_vec())
            } else {
                c.serialize(name.as_str()).map(|d| d.to_vec())
            };
            match crate::gate::with_python(|py| -> PyResult<Py<PyAny>> {
                let data = data.map_err(|e| rusqlite_err(py, e))?;
                let bytes = PyBytes::new(py, &data);
                helper.bind(py).call1((bytes, target, pages, progress, sleep))?;
                Ok(py.None())
            }) {
                Some(r) => r,
                None => Err(PyValueError::new_err("the interpreter is shutting down")),
            }
        })
    }

    /// The database as bytes (`sqlite3_serialize` of `main`).
    fn serialize(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let conn = self.conn.clone();
        hub::spawn(py, async move {
            let data = conn.serialize().await?;
            let conv: Conv = Box::new(move |py| Ok(PyBytes::new(py, &data).into_any().unbind()));
            Ok(conv)
        })
    }

    /// Replace the `main` database with serialized bytes.
    fn deserialize(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<Py<PyAny>> {
        let conn = self.conn.clone();
        hub::spawn(py, async move {
            conn.deserialize(data).await?;
            Ok(hub::none())
        })
    }

    /// A dump of the database as SQL text (`Dumper.next_batch()` gives the lines).
    fn iterdump(&self) -> crate::dump::Dumper {
        crate::dump::Dumper::new(&self.conn)
    }

    /// Run a Python callable on the worker, in order with the statements (aiosqlite's
    /// `_tx.put_nowait((future, function))`); `fut` gets its result.
    fn run_python(&self, py: Python<'_>, function: Py<PyAny>, fut: Py<PyAny>) -> PyResult<()> {
        let lp = fut.bind(py).call_method0("get_loop")?;
        let hub = hub::hub_for(py, &lp)?;
        let cmd = Command::call(move |c| {
            LENT.with(|l| l.set(std::ptr::from_ref(c)));
            let r = crate::gate::with_python(|py| function.bind(py).call0().map(Bound::unbind));
            LENT.with(|l| l.set(std::ptr::null()));
            Box::new(r.unwrap_or_else(|| Err(PyValueError::new_err("the interpreter is shutting down"))))
                as Box<dyn Any + Send>
        });
        let finish = finish_with(|py, outcome| match outcome {
            Ok(Reply::Any(b)) => match b.downcast::<PyResult<Py<PyAny>>>() {
                Ok(r) => *r,
                Err(_) => Err(convert::internal("call")),
            },
            Ok(_) => Err(convert::internal("call")),
            Err(e) => Err(to_pyerr(py, e)),
        });
        self.conn
            .submit(cmd, hub.reply_to(fut, finish))
            .map_err(|e| to_pyerr(py, e))
    }

    /// The SQLite library version this module runs (bundled).
    #[staticmethod]
    fn sqlite_version() -> &'static str {
        rusqlite::version()
    }

    fn __repr__(&self) -> String {
        format!("<aiolite Core {:?}>", self.conn.path())
    }
}

fn unit() -> hub::Finish {
    finish_with(|py, outcome| match outcome {
        Ok(_) => Ok(py.None()),
        Err(e) => Err(to_pyerr(py, e)),
    })
}

fn raw_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn to_rusqlite(v: Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as R;
    match v {
        Value::Null => R::Null,
        Value::Integer(i) => R::Integer(i),
        Value::Real(f) => R::Real(f),
        Value::Text(s) => R::Text(s),
        Value::Blob(b) => R::Blob(b),
    }
}
