//! The worker thread that owns a connection's SQLite handle, and the commands it runs.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::ffi;

use crate::error::{Error, Result};
use crate::options::{self, ConnectOptions, IsolationLevel, TransactionBehavior};
use crate::params::ParamValues;
use crate::pipe::{self, Pipe};
use crate::queue::{Next, Queue};
use crate::reply::{Outcome, ReplyTo, Slot};
use crate::row::{Column, Columns, Row};
use crate::sql::{self, Verb};
use crate::stmt::{Stmt, StmtCache};
use crate::value::Value;

/// What `execute` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ExecResult {
    /// Rows inserted, updated or deleted by the statement itself (not by triggers); `0` for
    /// statements that change no rows (DDL, `SELECT`, …).
    pub changes: u64,
    /// `sqlite3_last_insert_rowid()` after the statement: the rowid of the most recent
    /// successful `INSERT` on this connection (by this statement, or an earlier one).
    pub last_insert_rowid: i64,
}

/// A chunk of a streaming query's rows.
#[derive(Debug)]
pub struct CursorChunk {
    /// The result columns.
    pub columns: Arc<Vec<Column>>,
    /// The rows of this chunk.
    pub rows: Vec<Row>,
    /// `true` when the statement finished (no more chunks; the cursor is closed).
    pub done: bool,
}

/// A closure for the `call` hatch.
pub(crate) type CallFn = Box<dyn FnOnce(&mut rusqlite::Connection) -> Box<dyn Any + Send> + Send>;

/// A closure run on the worker with the whole connection state (crate-internal features:
/// user functions, hooks, backups, blobs).
pub(crate) type StateFn = Box<dyn FnOnce(&mut ConnState) -> Result<Box<dyn Any + Send>> + Send>;

/// A command for the worker.
pub(crate) enum Op {
    Execute {
        sql: Box<str>,
        params: ParamValues,
    },
    ExecuteInsert {
        sql: Box<str>,
        params: ParamValues,
    },
    ExecuteMany {
        sql: Box<str>,
        rows: Vec<ParamValues>,
    },
    Script {
        sql: Box<str>,
    },
    FetchAll {
        sql: Box<str>,
        params: ParamValues,
        /// The reply may be a [`Reply::Streaming`] (a Rust future collects the rows).
        stream: bool,
    },
    FetchOne {
        sql: Box<str>,
        params: ParamValues,
    },
    FetchScalar {
        sql: Box<str>,
        params: ParamValues,
    },
    Query {
        cursor: u64,
        sql: Box<str>,
        params: ParamValues,
        chunk: usize,
    },
    CursorNext {
        cursor: u64,
        n: usize,
        /// An emptied vector of an earlier chunk to fill (no allocation per chunk).
        buf: Vec<Row>,
        /// Send the rows encoded, in this (emptied) buffer: a [`Reply::Encoded`] when the
        /// backend can (a Rust `Cursor` builds its rows as they are read).
        encoded: Option<Vec<u8>>,
    },
    /// Everything left of a cursor (its `fetch_all`), sent as a `fetch_all` result; the
    /// cursor is closed after it.
    CursorRest {
        cursor: u64,
    },
    CursorClose {
        cursor: u64,
    },
    /// Begin a transaction owned by the job's owner id (takes the exclusivity gate).
    Begin(TransactionBehavior),
    Commit,
    Rollback,
    /// A transaction handle was dropped: roll back if still open and release the gate.
    EndTx,
    Savepoint {
        name: Box<str>,
    },
    Release {
        name: Box<str>,
    },
    /// `ROLLBACK TO name; RELEASE name`.
    RollbackTo {
        name: Box<str>,
    },
    Call(CallFn),
    Internal(StateFn),
    Close,
}

impl Op {
    /// Cleanups that pass the transaction gate (they never wait, and run nothing of anyone's
    /// inside a transaction). A cursor's next chunk is not exempt: it reads, so it waits like
    /// any statement of its handle.
    fn exempt(&self) -> bool {
        matches!(self, Op::CursorClose { .. } | Op::Close)
    }
}

/// What the worker answers to a [`Command`](crate::raw::Command).
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply {
    /// Done, nothing to report (`execute_script`, `commit`, `cursor_close`, …).
    Unit,
    /// `execute`.
    Exec(ExecResult),
    /// `execute_many`: total rows changed.
    Changes(u64),
    /// `fetch_all`.
    Rows(Vec<Row>),
    /// `fetch_one`.
    Row(Option<Row>),
    /// `fetch_scalar`: the first column of the first row, `None` when there is no row.
    Scalar(Option<Value>),
    /// `query` and `cursor_next`.
    Chunk(CursorChunk),
    /// `call`: the closure's return value.
    Any(Box<dyn Any + Send>),
    /// A `fetch_all` whose rows are still coming (crate-internal; see `pipe`).
    #[doc(hidden)]
    Streaming(crate::pipe::RowStream),
    /// A cursor's chunk of encoded rows (crate-internal; see `pipe`).
    #[doc(hidden)]
    Encoded(crate::pipe::EncodedChunk),
}

/// One queued command with its reply path.
pub(crate) struct Job {
    pub(crate) id: u64,
    /// `0`, or the id of the transaction the command belongs to.
    pub(crate) owner: u64,
    pub(crate) op: Op,
    pub(crate) reply: ReplyTo,
}

/// State shared between a connection's handles, its worker and the progress handler.
pub(crate) struct Shared {
    pub(crate) queue: Queue,
    conn: Mutex<Option<Engine>>,
    pub(crate) ctx: Arc<Ctx>,
    in_tx: AtomicBool,
    total_changes: AtomicI64,
    next_id: AtomicU64,
    /// Moving average of how long the worker takes per command, in ns.
    service_ns: AtomicU64,
    pub(crate) chunk_size: usize,
    pub(crate) wait_spin_ns: u64,
    /// Callers' spin-then-yield state while they wait for replies.
    pub(crate) caller_backoff: crate::spin::Backoff,
    pub(crate) inline_reads: bool,
    inline_budget_ns: u64,
    pub(crate) path: String,
    /// The callers' side of the read anchor (see `anchor`).
    pub(crate) anchor: crate::anchor::AnchorFlags,
}

impl Shared {
    pub(crate) fn new(opts: &ConnectOptions) -> Self {
        Shared {
            queue: Queue::new(opts.queue_capacity),
            conn: Mutex::new(None),
            ctx: Arc::new(Ctx::new()),
            in_tx: AtomicBool::new(false),
            total_changes: AtomicI64::new(0),
            next_id: AtomicU64::new(1),
            service_ns: AtomicU64::new(u64::MAX),
            chunk_size: opts.iter_chunk_size,
            wait_spin_ns: opts.wait_spin.as_nanos().min(u128::from(u64::MAX)) as u64,
            caller_backoff: crate::spin::Backoff::new(),
            inline_reads: opts.inline_reads,
            inline_budget_ns: opts.inline_budget.as_nanos().min(u128::from(u64::MAX)) as u64,
            path: opts.path.to_string_lossy().into_owned(),
            anchor: crate::anchor::AnchorFlags::new(
                opts.anchor_reads
                    && opts.inline_reads
                    && !opts.in_memory()
                    && !opts.path.to_string_lossy().starts_with("dqlite://")
                    // Shared-cache handles share one page cache, and with it the anchor's
                    // snapshot: reads would not be current.
                    && !opts.path.to_string_lossy().to_ascii_lowercase().contains("cache=shared"),
            ),
        }
    }

    /// A fresh id for a job, a transaction or a cursor.
    #[inline]
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.in_tx.load(Ordering::Acquire)
    }

    pub(crate) fn total_changes(&self) -> u64 {
        self.total_changes.load(Ordering::Acquire).max(0) as u64
    }

    pub(crate) fn lock_conn(&self) -> MutexGuard<'_, Option<Engine>> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, backend: &dyn Backend) {
        self.in_tx.store(!backend.autocommit(), Ordering::Release);
        self.total_changes.store(backend.total_changes(), Ordering::Release);
    }

    /// Whether a waiting caller should spin for its reply (see `ConnectOptions::wait_spin`).
    #[inline]
    pub(crate) fn should_spin(&self) -> bool {
        self.wait_spin_ns != 0
            && !self.queue.worker_parked()
            && self.service_ns.load(Ordering::Relaxed).saturating_mul(2) < self.wait_spin_ns
    }

    fn record_service(&self, ns: u64) {
        let old = self.service_ns.load(Ordering::Relaxed);
        let new = if old == u64::MAX { ns } else { old - old / 8 + ns / 8 };
        self.service_ns.store(new, Ordering::Relaxed);
    }

    /// Run a short read-only fetch on the calling thread when the connection is idle (nothing
    /// queued or running, no other transaction holding the gate). `None` means "send it to the
    /// worker": not idle, not read-only, over the time budget, or a lock was met.
    pub(crate) fn try_inline(&self, owner: u64, text: &str, params: &ParamValues, kind: FetchKind) -> Option<Outcome> {
        if !self.inline_reads || self.queue.pending() != 0 || sql::verb(text) != Verb::Select {
            return None;
        }
        if self.anchor.touch(|| self.ctx.now_ns(), false) {
            self.queue.wake_for();
        }
        let mut guard = self.conn.try_lock().ok()?;
        // Re-check under the lock: anything submitted from now on runs after us.
        if self.queue.pending() != 0 {
            return None;
        }
        let engine = guard.as_mut()?;
        if engine.gate != owner || engine.gate_ended.is_some() {
            return None;
        }
        let state = engine.local()?;
        let out = state.fetch_inline(text, params, kind, self.inline_budget_ns)?;
        self.publish(state);
        Some(out)
    }
}

/// Which fetch a command is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FetchKind {
    All,
    One,
    Scalar,
}

/// State read by the progress handler, which SQLite calls every [`PROGRESS_PERIOD`] virtual
/// machine instructions on whatever thread is stepping a statement.
///
/// It implements three things without any timer thread: cancellation of the running command
/// when its future is dropped (`cancel_job == current_job`, only when aborting is harmless:
/// read-only statements, or no explicit transaction open), the statement timeout
/// (`deadline`), and the time budget of inline reads (`inline_deadline`). A user progress
/// handler is called from here too.
pub(crate) struct Ctx {
    epoch: Instant,
    current_job: AtomicU64,
    cancel_job: AtomicU64,
    /// `Connection::interrupt` asked to abort this job (whatever it is).
    interrupt_job: AtomicU64,
    cancellable: AtomicBool,
    deadline: AtomicU64,
    inline_deadline: AtomicU64,
    timed_out: AtomicBool,
    inline_aborted: AtomicBool,
    has_user: AtomicBool,
    user: Mutex<Option<UserProgress>>,
    /// The period SQLite calls the handler with: [`PROGRESS_PERIOD`], or finer while a user
    /// handler asks for it.
    period: AtomicU32,
}

/// A user progress handler: called every `every` instructions; `true` aborts.
pub(crate) struct UserProgress {
    pub(crate) every: u32,
    pub(crate) count: u32,
    pub(crate) f: Box<dyn FnMut() -> bool + Send>,
}

/// Instructions between progress-handler calls.
pub(crate) const PROGRESS_PERIOD: u32 = 1000;

impl Ctx {
    pub(crate) fn new() -> Self {
        Ctx {
            epoch: Instant::now(),
            current_job: AtomicU64::new(0),
            cancel_job: AtomicU64::new(0),
            interrupt_job: AtomicU64::new(0),
            cancellable: AtomicBool::new(false),
            deadline: AtomicU64::new(0),
            inline_deadline: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
            inline_aborted: AtomicBool::new(false),
            has_user: AtomicBool::new(false),
            user: Mutex::new(None),
            period: AtomicU32::new(PROGRESS_PERIOD),
        }
    }

    #[inline]
    fn now_ns(&self) -> u64 {
        (self.epoch.elapsed().as_nanos() as u64).max(1)
    }

    /// `Connection::interrupt`: abort the job running now, if any. Targeting the job by id
    /// (rather than `sqlite3_interrupt`, whose flag outlives the statement while another
    /// statement of the connection — an open cursor — is active) affects nothing else.
    pub(crate) fn interrupt_current(&self) {
        let cur = self.current_job.load(Ordering::Acquire);
        if cur != 0 {
            self.interrupt_job.store(cur, Ordering::Release);
        }
    }

    /// The future waiting for job `id` was dropped: abort it if it is running (and safe).
    pub(crate) fn request_cancel(&self, id: u64) {
        if id != 0 && self.current_job.load(Ordering::Acquire) == id {
            self.cancel_job.store(id, Ordering::Release);
        }
    }

    /// The job running now (`0` when none).
    pub(crate) fn current_job(&self) -> u64 {
        self.current_job.load(Ordering::Acquire)
    }

    fn start_job(&self, id: u64) {
        self.cancellable.store(false, Ordering::Relaxed);
        self.current_job.store(id, Ordering::Release);
    }

    fn end_job(&self) {
        self.current_job.store(0, Ordering::Release);
        self.cancellable.store(false, Ordering::Relaxed);
    }

    #[inline]
    fn set_cancellable(&self, yes: bool) {
        self.cancellable.store(yes, Ordering::Relaxed);
    }

    fn arm(&self, timeout: Option<Duration>) {
        if let Some(t) = timeout {
            let ns = self
                .now_ns()
                .saturating_add(t.as_nanos().min(u128::from(u64::MAX)) as u64);
            self.deadline.store(ns, Ordering::Relaxed);
        }
    }

    fn disarm(&self) {
        self.deadline.store(0, Ordering::Relaxed);
    }

    pub(crate) fn set_user(&self, handler: Option<UserProgress>) {
        let has = handler.is_some();
        *self.user.lock().unwrap_or_else(|e| e.into_inner()) = handler;
        self.has_user.store(has, Ordering::Release);
    }

    /// Instructions between two calls of the progress handler.
    pub(crate) fn period(&self) -> u32 {
        self.period.load(Ordering::Relaxed)
    }

    /// The progress handler body: `true` aborts the statement with `SQLITE_INTERRUPT`.
    fn on_progress(&self) -> bool {
        if crate::stmt::stepping_has_halted() {
            // The statement's work is done (see `stepping_has_halted`): never turn it into an
            // error.
            return false;
        }
        let cur = self.current_job.load(Ordering::Relaxed);
        if cur != 0
            && (self.interrupt_job.load(Ordering::Relaxed) == cur
                || (self.cancel_job.load(Ordering::Relaxed) == cur && self.cancellable.load(Ordering::Relaxed)))
        {
            return true;
        }
        let deadline = self.deadline.load(Ordering::Relaxed);
        let inline = self.inline_deadline.load(Ordering::Relaxed);
        if deadline != 0 || inline != 0 {
            let now = self.now_ns();
            if inline != 0 && now > inline {
                self.inline_aborted.store(true, Ordering::Relaxed);
                return true;
            }
            if deadline != 0 && now > deadline {
                self.timed_out.store(true, Ordering::Relaxed);
                return true;
            }
        }
        if self.has_user.load(Ordering::Relaxed) {
            let mut guard = self.user.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(u) = guard.as_mut() {
                u.count = u.count.saturating_add(self.period.load(Ordering::Relaxed));
                if u.count >= u.every {
                    u.count = 0;
                    return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (u.f)())).unwrap_or(true);
                }
            }
        }
        false
    }
}

/// A statement kept open by a streaming cursor.
struct OpenCursor {
    sql: Box<str>,
    stmt: Stmt,
    /// The bound values: they must live as long as the statement is stepped.
    _params: ParamValues,
}

/// The connection as the worker owns it. Field order matters: statements are dropped
/// (finalized) before the connection.
pub(crate) struct ConnState {
    cursors: HashMap<u64, OpenCursor>,
    /// Cursors whose statement failed after some rows of a chunk: those rows went out first,
    /// the error is the answer to the cursor's next request.
    failed_cursors: HashMap<u64, Error>,
    cache: StmtCache,
    conn: rusqlite::Connection,
    /// `conn`'s handle, cached (refreshed after `call`).
    db: *mut ffi::sqlite3,
    isolation: Option<IsolationLevel>,
    statement_timeout: Option<Duration>,
    busy_timeout: Duration,
    reject_writes: bool,
    ctx: Arc<Ctx>,
    /// Running online backups, by id (see `backup.rs`); finished before the connection closes.
    pub(crate) backups: HashMap<u64, crate::backup::RawBackup>,
    /// The authorizer callback registered with SQLite (see `hooks.rs`). Declared after `conn`
    /// so that it outlives the registration.
    pub(crate) authorizer: Option<Box<Box<crate::hooks::AuthorizerFn>>>,
    /// Tables and columns known to the CRUD helpers (see `crud.rs`).
    pub(crate) schema: crate::crud::SchemaCache,
}

// SAFETY: `db` is the handle owned by `conn` (which is `Send`), and the state is only used by
// the thread holding the `Shared::conn` lock.
unsafe impl Send for ConnState {}

/// A failed statement: the error, with the SQL attached and interrupts mapped to timeouts.
type StmtResult<T> = Result<T>;

impl ConnState {
    fn open(opts: &ConnectOptions, ctx: Arc<Ctx>) -> Result<ConnState> {
        use rusqlite::OpenFlags as F;
        let mut flags = F::SQLITE_OPEN_URI | F::SQLITE_OPEN_NO_MUTEX;
        if opts.read_only {
            flags |= F::SQLITE_OPEN_READ_ONLY;
        } else {
            flags |= F::SQLITE_OPEN_READ_WRITE;
            if opts.create_if_missing {
                flags |= F::SQLITE_OPEN_CREATE;
            }
        }
        let mut conn = rusqlite::Connection::open_with_flags(&opts.path, flags).map_err(|e| {
            let e = Error::from_rusqlite(e);
            match e {
                Error::Sqlite {
                    code,
                    extended_code,
                    message,
                    ..
                } => Error::Sqlite {
                    code,
                    extended_code,
                    message: format!("{message}: {}", opts.path.display()),
                    sql: None,
                },
                other => other,
            }
        })?;
        // SQLite takes the timeout in milliseconds as a C int.
        let busy_timeout = opts.busy_timeout.min(Duration::from_millis(i32::MAX as u64));
        conn.busy_timeout(busy_timeout).map_err(Error::from_rusqlite)?;
        let handler_ctx = Arc::clone(&ctx);
        conn.progress_handler(ctx.period() as i32, Some(move || handler_ctx.on_progress()))
            .map_err(Error::from_rusqlite)?;
        // SAFETY: rusqlite documents `handle()` as the raw handle of this open connection; we
        // only use it while owning `conn`.
        let db = unsafe { conn.handle() };
        let mut state = ConnState {
            cursors: HashMap::new(),
            failed_cursors: HashMap::new(),
            cache: StmtCache::new(opts.statement_cache_capacity),
            conn,
            db,
            isolation: opts.isolation_level,
            statement_timeout: opts.statement_timeout,
            busy_timeout,
            reject_writes: opts.reject_writes,
            ctx,
            backups: HashMap::new(),
            authorizer: None,
            schema: crate::crud::SchemaCache::default(),
        };
        for (name, value) in &opts.pragmas {
            state.apply_pragma(name, value)?;
        }
        Ok(state)
    }

    fn apply_pragma(&mut self, name: &str, value: &str) -> Result<()> {
        options::check_pragma_name(name)?;
        // A misspelt pragma is a silent no-op in SQLite: refuse names it does not know.
        let base = name.rsplit('.').next().unwrap_or(name);
        let known: bool = self
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM pragma_pragma_list WHERE name = ?1 COLLATE NOCASE",
                [base],
                |r| r.get(0),
            )
            .map_err(Error::from_rusqlite)?;
        if !known {
            return Err(Error::InvalidArgument {
                message: format!("unknown pragma {name:?}"),
            });
        }
        let set = format!("PRAGMA {name} = {}", options::pragma_value_sql(value));
        let first = |conn: &rusqlite::Connection, text: &str| -> Result<Option<String>> {
            let mut st = conn.prepare(text).map_err(|e| Error::from_rusqlite(e).with_sql(text))?;
            let mut rows = st.query([]).map_err(|e| Error::from_rusqlite(e).with_sql(text))?;
            let row = rows.next().map_err(|e| Error::from_rusqlite(e).with_sql(text))?;
            Ok(row.and_then(|r| match r.get_ref(0).ok()? {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
                rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    Some(String::from_utf8_lossy(t).into_owned())
                }
            }))
        };
        let echoed = first(&self.conn, &set)?;
        let actual = match echoed {
            Some(v) => Some(v),
            None => first(&self.conn, &format!("PRAGMA {name}"))?,
        };
        let Some(actual) = actual else {
            return Ok(()); // write-only pragma: nothing to compare
        };
        let want = options::normalize_pragma(name, value);
        let got = options::normalize_pragma(name, &actual);
        let base = name.rsplit('.').next().unwrap_or(name);
        let wal_on_memory = base.eq_ignore_ascii_case("journal_mode") && want == "wal" && got == "memory";
        if want != got && !wal_on_memory {
            return Err(Error::PragmaMismatch {
                pragma: name.to_owned(),
                expected: value.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    /// The rusqlite connection.
    pub(crate) fn conn(&mut self) -> &mut rusqlite::Connection {
        &mut self.conn
    }

    /// The raw handle (valid while the state lives; use only under the connection lock).
    pub(crate) fn handle(&self) -> *mut ffi::sqlite3 {
        self.db
    }

    /// Call the progress handler every `period` instructions.
    pub(crate) fn set_progress_period(&mut self, period: u32) {
        self.ctx.period.store(period, Ordering::Relaxed);
        let ctx = Arc::clone(&self.ctx);
        let _ = self
            .conn
            .progress_handler(period as i32, Some(move || ctx.on_progress()));
    }

    /// Finalize every cached statement and open cursor (after the database was replaced).
    pub(crate) fn clear_statements(&mut self) {
        self.cursors.clear();
        self.failed_cursors.clear();
        self.cache.clear();
    }

    #[inline]
    fn autocommit(&self) -> bool {
        // SAFETY: `db` is the open handle of `conn`.
        unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
    }

    /// Map an error of statement `text`: interrupts caused by the timeout become
    /// `StatementTimeout`, and the SQL is attached.
    fn fail(&self, e: Error, text: &str) -> Error {
        if e.sqlite_code() == Some(crate::ErrorCode::Interrupt) && self.ctx.timed_out.swap(false, Ordering::Relaxed) {
            return Error::StatementTimeout {
                timeout: self.statement_timeout.unwrap_or_default(),
                sql: Some(text.to_owned()),
            };
        }
        e.with_sql(text)
    }

    /// Run `f` on the cached statement for `text`, with the statement timeout armed.
    /// `Ok(None)` for blank SQL.
    #[inline]
    fn with_stmt<R>(
        &mut self,
        text: &str,
        f: impl FnOnce(&mut Stmt, &Ctx, bool) -> Result<R>,
    ) -> StmtResult<Option<R>> {
        let autocommit = self.autocommit();
        let ctx = &*self.ctx;
        ctx.arm(self.statement_timeout);
        // SAFETY: `db` is the open handle of `conn`, used only under the connection lock;
        // cached statements are finalized before the connection closes.
        let r = unsafe { self.cache.with(self.db, text, |st| f(st, ctx, autocommit)) };
        ctx.disarm();
        r.map_err(|e| self.fail(e, text))
    }

    /// Python sqlite3's legacy transaction control: `BEGIN <level>` before DML when no
    /// transaction is open.
    fn implicit_begin(&mut self, text: &str) -> Result<()> {
        if let Some(level) = self.isolation
            && self.autocommit()
            && sql::verb(text).is_dml()
        {
            self.simple(level.begin_sql())?;
        }
        Ok(())
    }

    /// A statement may have changed the busy timeout (`PRAGMA busy_timeout = …`): remember the
    /// connection's value, which inline reads restore after running with none.
    fn track_busy_timeout(&mut self, text: &str) {
        let pragma = sql::skip_trivia(text)
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("pragma"));
        if pragma && text.to_ascii_lowercase().contains("busy_timeout") {
            self.refresh_busy_timeout();
        }
    }

    fn refresh_busy_timeout(&mut self) {
        if let Ok(Some(Some(ms))) = self.with_stmt("PRAGMA busy_timeout", |st, _, _| {
            Ok(if st.step()? { st.value(0)?.as_i64() } else { None })
        }) {
            self.busy_timeout = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        }
    }

    /// Run a fixed statement (BEGIN, COMMIT, …).
    fn simple(&mut self, text: &str) -> Result<()> {
        self.with_stmt(text, |st, _, _| st.run()).map(drop)
    }

    /// Run a pool's read anchor on this (read-only) connection: see
    /// [`anchor::hold_while_reads_go_on`](crate::anchor::hold_while_reads_go_on).
    pub(crate) fn hold_read_lock(&mut self, flags: &crate::anchor::AnchorFlags) {
        crate::anchor::hold_while_reads_go_on(&self.conn, self.busy_timeout, flags);
    }

    pub(crate) fn execute(&mut self, text: &str, params: &ParamValues) -> Result<ExecResult> {
        self.implicit_begin(text)?;
        let db = self.db;
        let r = self.with_stmt(text, |st, ctx, autocommit| {
            st.bind(params, text)?;
            ctx.set_cancellable(autocommit || st.readonly());
            // SAFETY: `db` is the open handle (see `with_stmt`).
            let before = unsafe { ffi::sqlite3_total_changes64(db) };
            st.run()?;
            Ok(before)
        })?;
        // SAFETY: as above.
        unsafe {
            let last_insert_rowid = ffi::sqlite3_last_insert_rowid(db);
            let changes = match r {
                Some(before) if ffi::sqlite3_total_changes64(db) != before => ffi::sqlite3_changes64(db).max(0) as u64,
                _ => 0,
            };
            Ok(ExecResult {
                changes,
                last_insert_rowid,
            })
        }
    }

    fn execute_many(&mut self, text: &str, rows: &[ParamValues]) -> Result<u64> {
        self.execute_many_as(text, rows, false)
    }

    /// `execute_many`; with `dml_only`, a read-only statement (`sqlite3_stmt_readonly`) is
    /// refused before anything runs, as Python's `sqlite3` refuses it in `executemany`.
    pub(crate) fn execute_many_as(&mut self, text: &str, rows: &[ParamValues], dml_only: bool) -> Result<u64> {
        self.implicit_begin(text)?;
        let db = self.db;
        let timeout = self.statement_timeout;
        let total = self.with_stmt(text, |st, ctx, autocommit| {
            if dml_only && st.readonly() {
                return Err(Error::InvalidArgument {
                    message: "executemany() can only execute DML statements.".into(),
                });
            }
            ctx.set_cancellable(autocommit || st.readonly());
            let mut total = 0_u64;
            for (i, params) in rows.iter().enumerate() {
                if i > 0 {
                    st.reset();
                    ctx.arm(timeout);
                }
                st.bind(params, text)?;
                // SAFETY: `db` is the open handle (see `with_stmt`).
                let before = unsafe { ffi::sqlite3_total_changes64(db) };
                st.run()?;
                // SAFETY: as above.
                unsafe {
                    if ffi::sqlite3_total_changes64(db) != before {
                        total += ffi::sqlite3_changes64(db).max(0) as u64;
                    }
                }
            }
            Ok(total)
        })?;
        Ok(total.unwrap_or(0))
    }

    pub(crate) fn script(&mut self, text: &str) -> Result<()> {
        let mut rest = text;
        while !sql::is_blank(rest) {
            self.ctx.arm(self.statement_timeout);
            // SAFETY: `db` is the open handle; the statement is dropped before we return.
            let r = unsafe { Stmt::prepare_next(self.db, rest) };
            let (stmt, consumed) = match r {
                Ok(v) => v,
                Err(e) => {
                    self.ctx.disarm();
                    return Err(self.fail(e, crate::stmt::first_statement(rest)));
                }
            };
            let stmt_text = &rest[..consumed];
            if let Some(mut st) = stmt {
                self.ctx.set_cancellable(self.autocommit() || st.readonly());
                let r = st.run();
                self.ctx.disarm();
                if let Err(e) = r {
                    return Err(self.fail(e, stmt_text.trim()));
                }
            }
            self.ctx.disarm();
            if consumed == 0 {
                break;
            }
            rest = &rest[consumed..];
        }
        Ok(())
    }

    /// Run `f` so that its changes apply entirely or not at all: in a transaction (`BEGIN
    /// IMMEDIATE`), or in a savepoint when a transaction is already open.
    pub(crate) fn atomically<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        if self.autocommit() {
            self.simple("BEGIN IMMEDIATE")?;
            match f(self) {
                Ok(v) => match self.simple("COMMIT") {
                    Ok(()) => Ok(v),
                    Err(e) => {
                        if !self.autocommit() {
                            let _ = self.simple("ROLLBACK");
                        }
                        Err(e)
                    }
                },
                Err(e) => {
                    if !self.autocommit() {
                        let _ = self.simple("ROLLBACK");
                    }
                    Err(e)
                }
            }
        } else {
            self.simple("SAVEPOINT aiolite_atomic")?;
            match f(self) {
                Ok(v) => self.simple("RELEASE aiolite_atomic").map(|()| v),
                Err(e) => {
                    let _ = self.simple("ROLLBACK TO aiolite_atomic");
                    let _ = self.simple("RELEASE aiolite_atomic");
                    Err(e)
                }
            }
        }
    }

    pub(crate) fn fetch(&mut self, text: &str, params: &ParamValues, kind: FetchKind) -> Result<Reply> {
        self.implicit_begin(text)?;
        let reject_writes = self.reject_writes;
        let r = self.with_stmt(text, |st, ctx, autocommit| {
            if reject_writes && !st.readonly() {
                return Err(writes_refused());
            }
            st.bind(params, text)?;
            ctx.set_cancellable(autocommit || st.readonly());
            fetch_rows(st, kind)
        })?;
        Ok(r.unwrap_or(match kind {
            FetchKind::All => Reply::Rows(Vec::new()),
            FetchKind::One => Reply::Row(None),
            FetchKind::Scalar => Reply::Scalar(None),
        }))
    }

    /// `fetch_all` for a Rust future: up to [`pipe::FIRST_ROWS`] rows are built here as
    /// usual; when there are more, the reply goes out at once with those rows and a pipe,
    /// and the rest follow as encoded chunks (see [`crate::pipe`]). The statement still runs
    /// to its end (or its error) within this job.
    pub(crate) fn fetch_all_streamed(
        &mut self,
        text: &str,
        params: &ParamValues,
        reply: &mut ReplyTo,
    ) -> Result<Reply> {
        self.implicit_begin(text)?;
        let reject_writes = self.reject_writes;
        let mut streaming: Option<Arc<Pipe>> = None;
        let r = self.with_stmt(text, |st, ctx, autocommit| {
            if reject_writes && !st.readonly() {
                return Err(writes_refused());
            }
            st.bind(params, text)?;
            let may_stop = autocommit || st.readonly();
            ctx.set_cancellable(may_stop);
            let mut hint = st.rows_hint;
            let r = rows_or_stream(st, ctx, may_stop, reply, &mut streaming, &mut hint);
            st.rows_hint = hint;
            r.map_err(|(_, e)| e)
        });
        end_stream(reply, streaming, r.map(|r| r.unwrap_or(Reply::Rows(Vec::new()))))
    }

    /// The rest of cursor `id` for its `fetch_all`, as [`fetch_all_streamed`]
    /// (Self::fetch_all_streamed) sends a result; the cursor is closed after it.
    pub(crate) fn cursor_rest_streamed(&mut self, id: u64, reply: &mut ReplyTo) -> Result<Reply> {
        if let Some(e) = self.failed_cursors.remove(&id) {
            return Err(e);
        }
        let Some(mut cur) = self.cursors.remove(&id) else {
            return Ok(Reply::Rows(Vec::new()));
        };
        let mut streaming: Option<Arc<Pipe>> = None;
        let ctx = Arc::clone(&self.ctx);
        ctx.set_cancellable(true);
        ctx.arm(self.statement_timeout);
        // The statement's row hint is for its `fetch_all`s: a cursor's rest leaves it alone.
        let r = rows_or_stream(&mut cur.stmt, &ctx, true, reply, &mut streaming, &mut 0);
        ctx.disarm();
        let r = match r {
            Ok(reply) => Ok(reply),
            Err((rows, e)) if !rows.is_empty() => {
                // The rows before the failing step first; the error answers the next request.
                let e = self.fail(e, &cur.sql);
                self.failed_cursors.insert(id, e);
                Ok(Reply::Chunk(CursorChunk {
                    columns: Arc::clone(cur.stmt.columns()),
                    rows,
                    done: false,
                }))
            }
            Err((_, e)) => Err(self.fail(e, &cur.sql)),
        };
        self.cache.give_back(cur.sql, cur.stmt);
        end_stream(reply, streaming, r)
    }

    /// See [`Shared::try_inline`].
    fn fetch_inline(&mut self, text: &str, params: &ParamValues, kind: FetchKind, budget_ns: u64) -> Option<Outcome> {
        let ctx = Arc::clone(&self.ctx);
        let db = self.db;
        ctx.inline_deadline
            .store(ctx.now_ns().saturating_add(budget_ns), Ordering::Relaxed);
        // No busy waiting on the caller's thread: a lock sends the statement to the worker.
        // SAFETY: `db` is the open handle; we hold the connection lock.
        unsafe { ffi::sqlite3_busy_timeout(db, 0) };
        let mut requeue = false;
        // SAFETY: as for `with_stmt`.
        let r = unsafe {
            self.cache.with(db, text, |st| {
                if !st.readonly() || st.inline_skips > 0 {
                    st.inline_skips = st.inline_skips.saturating_sub(1);
                    requeue = true;
                    return Ok(Reply::Unit);
                }
                st.bind(params, text)?;
                let r = fetch_rows(st, kind);
                if r.is_err() && ctx.inline_aborted.load(Ordering::Relaxed) {
                    // Too long to run inline: the next runs go straight to the worker.
                    st.inline_skips = crate::stmt::INLINE_RETRY - 1;
                }
                r
            })
        };
        ctx.inline_deadline.store(0, Ordering::Relaxed);
        let busy_ms = self.busy_timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: as above.
        unsafe { ffi::sqlite3_busy_timeout(db, busy_ms) };
        let aborted = ctx.inline_aborted.swap(false, Ordering::Relaxed);
        match r {
            _ if requeue => None,
            Err(e) if aborted && e.sqlite_code() == Some(crate::ErrorCode::Interrupt) => None,
            Err(e) if e.is_busy() => None,
            Err(e) => Some(Err(e.with_sql(text))),
            Ok(Some(resp)) => Some(Ok(resp)),
            Ok(None) => Some(Ok(match kind {
                FetchKind::All => Reply::Rows(Vec::new()),
                FetchKind::One => Reply::Row(None),
                FetchKind::Scalar => Reply::Scalar(None),
            })),
        }
    }

    fn query(&mut self, id: u64, text: &str, params: ParamValues, chunk: usize) -> Result<CursorChunk> {
        self.implicit_begin(text)?;
        // SAFETY: as for `with_stmt`; the statement lives in `self.cursors` or goes back to the
        // cache, both finalized before the connection closes.
        let taken = unsafe { self.cache.take(self.db, text) };
        let Some(mut stmt) = taken.map_err(|e| self.fail(e, text))? else {
            return Ok(CursorChunk {
                columns: Arc::from(Vec::new()),
                rows: Vec::new(),
                done: true,
            });
        };
        if self.reject_writes && !stmt.readonly() {
            self.cache.give_back(text.into(), stmt);
            return Err(writes_refused().with_sql(text));
        }
        if let Err(e) = stmt.bind(&params, text) {
            self.cache.give_back(text.into(), stmt);
            return Err(e);
        }
        self.ctx.set_cancellable(self.autocommit() || stmt.readonly());
        self.ctx.arm(self.statement_timeout);
        let (rows, r) = read_chunk(&mut stmt, chunk, Vec::new());
        self.ctx.disarm();
        let columns = Arc::clone(stmt.columns());
        match r {
            Err(e) if !rows.is_empty() => {
                // Deliver the rows read before the error; the error comes next.
                let e = self.fail(e, text);
                self.cache.give_back(text.into(), stmt);
                self.failed_cursors.insert(id, e);
                Ok(CursorChunk {
                    columns,
                    rows,
                    done: false,
                })
            }
            Ok(done) => {
                if done {
                    self.cache.give_back(text.into(), stmt);
                } else {
                    self.cursors.insert(
                        id,
                        OpenCursor {
                            sql: text.into(),
                            stmt,
                            _params: params,
                        },
                    );
                }
                Ok(CursorChunk { columns, rows, done })
            }
            Err(e) => {
                self.cache.give_back(text.into(), stmt);
                Err(self.fail(e, text))
            }
        }
    }

    fn cursor_next(&mut self, id: u64, n: usize, buf: Vec<Row>) -> Result<CursorChunk> {
        let (columns, rows, done) = self.cursor_read(id, n, buf)?;
        Ok(CursorChunk { columns, rows, done })
    }

    /// [`cursor_next`](Self::cursor_next), the rows encoded into `bytes` (see `pipe`).
    pub(crate) fn cursor_next_encoded(&mut self, id: u64, n: usize, bytes: Vec<u8>) -> Result<pipe::EncodedChunk> {
        let (_, rows, done) = self.cursor_read(id, n, pipe::Encoded { bytes, rows: 0 })?;
        Ok(pipe::EncodedChunk {
            bytes: rows.bytes,
            rows: rows.rows,
            done,
        })
    }

    /// The next rows of cursor `id`, into `buf`; whether the cursor is done.
    fn cursor_read<B: ChunkRows>(&mut self, id: u64, n: usize, buf: B) -> Result<(Columns, B, bool)> {
        if let Some(e) = self.failed_cursors.remove(&id) {
            return Err(e);
        }
        let Some(cur) = self.cursors.get_mut(&id) else {
            return Ok((Arc::from(Vec::new()), B::default(), true));
        };
        self.ctx.set_cancellable(true);
        self.ctx.arm(self.statement_timeout);
        let (rows, r) = read_chunk(&mut cur.stmt, n, buf);
        self.ctx.disarm();
        let columns = Arc::clone(cur.stmt.columns());
        match r {
            Ok(false) => Ok((columns, rows, false)),
            Err(e) if rows.count() > 0 => {
                // Deliver the rows read before the error; the error comes next.
                let text = cur.sql.clone();
                let e = self.fail(e, &text);
                self.cursor_close(id);
                self.failed_cursors.insert(id, e);
                Ok((columns, rows, false))
            }
            Ok(true) => {
                self.cursor_close(id);
                Ok((columns, rows, true))
            }
            Err(e) => {
                let text = cur.sql.clone();
                self.cursor_close(id);
                Err(self.fail(e, &text))
            }
        }
    }

    fn cursor_close(&mut self, id: u64) {
        self.failed_cursors.remove(&id);
        if let Some(cur) = self.cursors.remove(&id) {
            self.cache.give_back(cur.sql, cur.stmt);
        }
    }

    fn call(&mut self, f: CallFn) -> Result<Box<dyn Any + Send>> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut self.conn)));
        // SAFETY: rusqlite's documented raw handle of the (possibly replaced) connection.
        let db = unsafe { self.conn.handle() };
        if db != self.db {
            // The closure swapped the connection out. Our statements belong to the old handle,
            // which rusqlite could not close while they exist: finalize them there.
            tracing::warn!("aiolite: the connection was replaced inside call(); statement cache cleared");
            self.cursors.clear();
            self.failed_cursors.clear();
            self.cache.clear();
            self.db = db;
            // Cancellation, interrupts and timeouts run through the progress handler: give the
            // new connection ours.
            self.set_progress_period(self.ctx.period());
        }
        // The closure may have changed the busy timeout.
        self.refresh_busy_timeout();
        match r {
            Ok(v) => Ok(v),
            Err(payload) => {
                if !self.autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                Err(Error::Panicked {
                    message: panic_message(payload.as_ref()),
                })
            }
        }
    }

    /// Roll back what is open and close SQLite.
    fn close_local(mut self) -> Result<()> {
        self.backups.clear();
        self.cursors.clear();
        self.failed_cursors.clear();
        self.cache.clear();
        if !self.autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.conn.close().map_err(|(_, e)| Error::from_rusqlite(e))
    }
}

impl Backend for ConnState {
    fn execute(&mut self, sql: &str, params: &ParamValues) -> Result<ExecResult> {
        let r = ConnState::execute(self, sql, params);
        self.track_busy_timeout(sql);
        r
    }
    fn execute_insert(&mut self, sql: &str, params: &ParamValues) -> Result<Option<i64>> {
        // Whether a row was inserted shows only in last_insert_rowid changing: an upsert that
        // took its DO UPDATE path changes a row without inserting one. Set a sentinel, run,
        // and put the old value back when nothing was inserted.
        let db = self.db;
        // SAFETY: `db` is the open handle owned by `conn`; we hold the connection lock.
        let before = unsafe { ffi::sqlite3_last_insert_rowid(db) };
        // SAFETY: as above.
        unsafe { ffi::sqlite3_set_last_insert_rowid(db, i64::MIN) };
        let r = ConnState::execute(self, sql, params);
        // SAFETY: as above.
        let after = unsafe { ffi::sqlite3_last_insert_rowid(db) };
        if after == i64::MIN {
            // SAFETY: as above.
            unsafe { ffi::sqlite3_set_last_insert_rowid(db, before) };
        }
        r?;
        Ok((after != i64::MIN).then_some(after))
    }
    fn execute_many(&mut self, sql: &str, rows: &[ParamValues]) -> Result<u64> {
        ConnState::execute_many(self, sql, rows)
    }
    fn script(&mut self, sql: &str) -> Result<()> {
        let r = ConnState::script(self, sql);
        self.track_busy_timeout(sql);
        r
    }
    fn fetch(&mut self, sql: &str, params: &ParamValues, kind: FetchKind) -> Result<Reply> {
        let r = ConnState::fetch(self, sql, params, kind);
        self.track_busy_timeout(sql);
        r
    }
    fn query(&mut self, cursor: u64, sql: &str, params: ParamValues, chunk: usize) -> Result<CursorChunk> {
        ConnState::query(self, cursor, sql, params, chunk)
    }
    fn cursor_next(&mut self, cursor: u64, n: usize, buf: Vec<Row>) -> Result<CursorChunk> {
        ConnState::cursor_next(self, cursor, n, buf)
    }
    fn cursor_close(&mut self, cursor: u64) {
        ConnState::cursor_close(self, cursor);
    }
    fn simple(&mut self, sql: &str) -> Result<()> {
        ConnState::simple(self, sql)
    }
    fn autocommit(&self) -> bool {
        ConnState::autocommit(self)
    }
    fn total_changes(&self) -> i64 {
        // SAFETY: `db` is the open handle owned by `conn`; the caller holds the lock.
        unsafe { ffi::sqlite3_total_changes64(self.db) }
    }
    fn local(&mut self) -> Option<&mut ConnState> {
        Some(self)
    }
    fn close(self: Box<Self>) -> Result<()> {
        (*self).close_local()
    }
}

/// What the worker runs commands against: local SQLite ([`ConnState`]) or a remote engine.
/// The transaction gate, cancellation and replies are the worker's, shared by every backend;
/// a backend only runs statements.
pub(crate) trait Backend: Send {
    /// One statement, to completion.
    fn execute(&mut self, sql: &str, params: &ParamValues) -> Result<ExecResult>;
    /// One statement; the rowid of the row it inserted, `None` when it inserted none.
    fn execute_insert(&mut self, sql: &str, params: &ParamValues) -> Result<Option<i64>> {
        let r = self.execute(sql, params)?;
        Ok((r.changes > 0 && sql::verb(sql) == Verb::Insert).then_some(r.last_insert_rowid))
    }
    /// One statement per parameter set; total changes.
    fn execute_many(&mut self, sql: &str, rows: &[ParamValues]) -> Result<u64>;
    /// Any number of statements.
    fn script(&mut self, sql: &str) -> Result<()>;
    /// One query, collected as `kind` says.
    fn fetch(&mut self, sql: &str, params: &ParamValues, kind: FetchKind) -> Result<Reply>;
    /// Start a streaming query under id `cursor`: its first `chunk` rows.
    fn query(&mut self, cursor: u64, sql: &str, params: ParamValues, chunk: usize) -> Result<CursorChunk>;
    /// The next `n` rows of a cursor (empty and done for an unknown one), in `buf` (an empty
    /// vector to reuse) when that suits the backend.
    fn cursor_next(&mut self, cursor: u64, n: usize, buf: Vec<Row>) -> Result<CursorChunk>;
    /// Abandon a cursor.
    fn cursor_close(&mut self, cursor: u64);
    /// A transaction-control statement: `BEGIN …`, `COMMIT`, `ROLLBACK`, `SAVEPOINT x`,
    /// `RELEASE x`, `ROLLBACK TO x`.
    fn simple(&mut self, sql: &str) -> Result<()>;
    /// `true` when no transaction is open.
    fn autocommit(&self) -> bool;
    /// Rows changed since the connection opened.
    fn total_changes(&self) -> i64;
    /// The local SQLite state, for commands that need it (`call`, hooks, backups, …).
    fn local(&mut self) -> Option<&mut ConnState> {
        None
    }
    /// Roll back what is open and close.
    fn close(self: Box<Self>) -> Result<()>;
}

/// The worker's state behind the connection lock: the backend and the transaction gate.
pub(crate) struct Engine {
    pub(crate) backend: Box<dyn Backend>,
    /// The transaction holding exclusivity (0: none).
    gate: u64,
    /// Set when the gate's transaction ended without its handle (an error made the database
    /// roll it back, or a COMMIT/ROLLBACK statement was run through it).
    gate_ended: Option<&'static str>,
}

fn local_only() -> Error {
    Error::Unsupported {
        message: "this operation needs a local SQLite connection".into(),
    }
}

impl Engine {
    pub(crate) fn new(backend: Box<dyn Backend>) -> Engine {
        Engine {
            backend,
            gate: 0,
            gate_ended: None,
        }
    }

    /// The local SQLite state, when the backend is local.
    pub(crate) fn local(&mut self) -> Option<&mut ConnState> {
        self.backend.local()
    }

    /// Decide whether a job may run now (the transaction gate).
    fn admit(&self, job: &Job, closing: bool) -> Admit {
        if job.op.exempt() {
            return Admit::Run;
        }
        if let Op::Begin(_) = job.op {
            return if closing {
                Admit::Reject(Error::Closed)
            } else if self.gate == 0 {
                Admit::Run
            } else {
                Admit::Defer
            };
        }
        match (job.owner, self.gate) {
            (0, 0) => Admit::Run,
            (0, _) => Admit::Defer,
            (o, g) if o == g => Admit::Run,
            // A transaction handle whose transaction is over (e.g. used after close()).
            (_, _) if matches!(job.op, Op::EndTx | Op::RollbackTo { .. }) => Admit::Skip,
            (_, _) => Admit::Reject(Error::TransactionEnded {
                reason: "it was already committed or rolled back",
            }),
        }
    }

    /// Run one admitted job. `reply` is the job's reply path, for a command that answers
    /// before it ends (a streaming `fetch_all`); it is sent the outcome after this returns.
    /// A command's SQL and parameters are left in `spent`, for the worker to drop after it
    /// replied: freeing them (memory the caller's thread allocated) is no reason to keep the
    /// caller waiting.
    fn run(&mut self, owner: u64, op: Op, reply: &mut ReplyTo, spent: &mut Option<Op>) -> Result<Reply> {
        if owner != 0
            && owner == self.gate
            && let Some(reason) = self.gate_ended
        {
            return match op {
                Op::EndTx | Op::Rollback => {
                    self.release_gate();
                    Ok(Reply::Unit)
                }
                Op::Commit => {
                    self.release_gate();
                    Err(Error::TransactionEnded { reason })
                }
                _ => Err(Error::TransactionEnded { reason }),
            };
        }
        let r = self.run_op(owner, op, reply, spent);
        if self.gate != 0 && self.gate_ended.is_none() && self.backend.autocommit() {
            self.gate_ended =
                Some("the database rolled it back after an error, or a COMMIT/ROLLBACK statement ended it");
        }
        r
    }

    fn release_gate(&mut self) {
        self.gate = 0;
        self.gate_ended = None;
    }

    /// Roll back the gate's transaction (at close).
    fn abort_gate(&mut self) {
        if self.gate != 0 {
            if !self.backend.autocommit() {
                let _ = self.backend.simple("ROLLBACK");
            }
            self.release_gate();
        }
    }

    fn run_op(&mut self, owner: u64, op: Op, reply: &mut ReplyTo, spent: &mut Option<Op>) -> Result<Reply> {
        let b = &mut *self.backend;
        // Statements that only read their SQL and parameters leave them in `spent`.
        let by_ref = match &op {
            Op::Execute { sql, params } => Some(b.execute(sql, params).map(Reply::Exec)),
            Op::ExecuteInsert { sql, params } => Some(
                b.execute_insert(sql, params)
                    .map(|id| Reply::Scalar(id.map(Value::Integer))),
            ),
            Op::ExecuteMany { sql, rows } => Some(b.execute_many(sql, rows).map(Reply::Changes)),
            Op::FetchAll { sql, params, stream } => Some(match b.local() {
                Some(local) if *stream => local.fetch_all_streamed(sql, params, reply),
                _ => b.fetch(sql, params, FetchKind::All),
            }),
            Op::FetchOne { sql, params } => Some(b.fetch(sql, params, FetchKind::One)),
            Op::FetchScalar { sql, params } => Some(b.fetch(sql, params, FetchKind::Scalar)),
            _ => None,
        };
        if let Some(r) = by_ref {
            *spent = Some(op);
            return r;
        }
        match op {
            Op::Execute { .. }
            | Op::ExecuteInsert { .. }
            | Op::ExecuteMany { .. }
            | Op::FetchAll { .. }
            | Op::FetchOne { .. }
            | Op::FetchScalar { .. } => unreachable!("run above"),
            Op::Script { sql } => b.script(&sql).map(|()| Reply::Unit),
            Op::Query {
                cursor,
                sql,
                params,
                chunk,
            } => b.query(cursor, &sql, params, chunk).map(Reply::Chunk),
            Op::CursorNext {
                cursor,
                n,
                buf,
                encoded,
            } => match (encoded, b.local()) {
                (Some(bytes), Some(local)) => local.cursor_next_encoded(cursor, n, bytes).map(Reply::Encoded),
                (_, _) => b.cursor_next(cursor, n, buf).map(Reply::Chunk),
            },
            Op::CursorRest { cursor } => match b.local() {
                Some(local) => local.cursor_rest_streamed(cursor, reply),
                None => b.cursor_next(cursor, usize::MAX, Vec::new()).map(Reply::Chunk),
            },
            Op::CursorClose { cursor } => {
                b.cursor_close(cursor);
                Ok(Reply::Unit)
            }
            Op::Begin(behavior) => {
                b.simple(behavior.begin_sql())?;
                self.gate = owner;
                self.gate_ended = None;
                Ok(Reply::Unit)
            }
            Op::Commit => {
                if !b.autocommit() {
                    b.simple("COMMIT")?;
                }
                if owner != 0 {
                    self.release_gate();
                }
                Ok(Reply::Unit)
            }
            Op::Rollback | Op::EndTx => {
                let r = if b.autocommit() { Ok(()) } else { b.simple("ROLLBACK") };
                if owner != 0 {
                    self.release_gate();
                }
                r.map(|()| Reply::Unit)
            }
            Op::Savepoint { name } => b.simple(&format!("SAVEPOINT {name}")).map(|()| Reply::Unit),
            Op::Release { name } => b.simple(&format!("RELEASE {name}")).map(|()| Reply::Unit),
            Op::RollbackTo { name } => {
                b.simple(&format!("ROLLBACK TO {name}"))?;
                b.simple(&format!("RELEASE {name}")).map(|()| Reply::Unit)
            }
            Op::Call(f) => b.local().ok_or_else(local_only)?.call(f).map(Reply::Any),
            Op::Internal(f) => f(b.local().ok_or_else(local_only)?).map(Reply::Any),
            Op::Close => Ok(Reply::Unit),
        }
    }
}

enum Admit {
    Run,
    Defer,
    Skip,
    Reject(Error),
}

/// A read-only pool connection refused a statement that writes (the pool then sends it to the
/// writer). Same code as SQLite's own refusal on a read-only connection.
fn writes_refused() -> Error {
    Error::sqlite(
        ffi::SQLITE_READONLY,
        "the statement writes and this connection is read-only",
    )
}

/// Step a bound statement and collect what `kind` asks for.
#[inline]
fn fetch_rows(st: &mut Stmt, kind: FetchKind) -> Result<Reply> {
    match kind {
        FetchKind::All => {
            // Size the vector like last time (bounded, and trimmed when it was far too big).
            let mut rows = Vec::with_capacity(st.rows_hint.min(1 << 20));
            while st.step()? {
                st.push_row(&mut rows)?;
            }
            st.rows_hint = rows.len();
            if rows.len() < rows.capacity() / 2 {
                rows.shrink_to_fit();
            }
            Ok(Reply::Rows(rows))
        }
        FetchKind::One | FetchKind::Scalar => {
            let out = if st.step()? {
                Some(if kind == FetchKind::One {
                    Reply::Row(Some(st.row()?))
                } else if st.columns().is_empty() {
                    Reply::Scalar(None)
                } else {
                    Reply::Scalar(Some(st.value(0)?))
                })
            } else {
                None
            };
            // A writing statement (`INSERT … RETURNING`) runs to completion.
            if !st.readonly() {
                st.run()?;
            }
            Ok(out.unwrap_or(if kind == FetchKind::One {
                Reply::Row(None)
            } else {
                Reply::Scalar(None)
            }))
        }
    }
}

/// Step a bound statement to its end for a `fetch_all`: up to [`pipe::FIRST_ROWS`] rows come
/// back as [`Reply::Rows`]. When there are more, the reply is sent at once (rows and a pipe,
/// [`Reply::Streaming`]; `streaming` is set) and the rest go through the pipe as encoded
/// chunks; [`end_stream`] then ends it. With `may_stop`, a collector that went away stops the
/// statement; otherwise (a write inside a transaction) it runs to its end.
///
/// `hint` sizes the first rows and receives the number of rows. An error before the reply
/// was sent comes with the rows built before it; after, those rows went through the pipe.
fn rows_or_stream(
    st: &mut Stmt,
    ctx: &Ctx,
    may_stop: bool,
    reply: &mut ReplyTo,
    streaming: &mut Option<Arc<Pipe>>,
    hint: &mut usize,
) -> std::result::Result<Reply, (Vec<Row>, Error)> {
    let mut rows = Vec::with_capacity((*hint).min(pipe::FIRST_ROWS));
    loop {
        match st.step() {
            Ok(true) => {}
            Ok(false) => {
                *hint = rows.len();
                return Ok(Reply::Rows(rows));
            }
            Err(e) => return Err((rows, e)),
        }
        if rows.len() == pipe::FIRST_ROWS {
            break;
        }
        if let Err(e) = st.push_row(&mut rows) {
            return Err((rows, e));
        }
    }
    // More rows than the first batch, and the statement is on one of them.
    let pipe = Pipe::new();
    *streaming = Some(Arc::clone(&pipe));
    reply.take().send(Ok(Reply::Streaming(pipe::RowStream {
        first: rows,
        columns: Arc::clone(st.columns()),
        pipe: Arc::clone(&pipe),
        hint: *hint,
        job: ctx.current_job(),
    })));
    let mut chunk = Pipe::new_chunk();
    let mut count = pipe::FIRST_ROWS;
    let mut send_at = pipe::FIRST_CHUNK_BYTES;
    loop {
        let len = chunk.len();
        if let Err(e) = st.encode_row(&mut chunk) {
            chunk.truncate(len);
            // The rows before the failing one still arrive (then the error, at the end).
            let _ = pipe.push(chunk, false);
            return Err((Vec::new(), e));
        }
        count += 1;
        if chunk.len() >= send_at {
            send_at = (send_at * 2).min(pipe::CHUNK_BYTES);
            if pipe.is_gone() {
                if may_stop {
                    return Ok(Reply::Unit);
                }
                // A write that must finish: step on, keep nothing.
                chunk.clear();
            } else {
                chunk = pipe.push(chunk, true).unwrap_or_else(Pipe::new_chunk);
            }
        }
        match st.step() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let _ = pipe.push(chunk, false);
                return Err((Vec::new(), e));
            }
        }
    }
    *hint = count;
    let _ = pipe.push(chunk, false);
    Ok(Reply::Unit)
}

/// After [`rows_or_stream`]: when it streamed, the end of the stream goes where the reply
/// would have gone. The worker sends it once the command is over (state published, lock
/// released), as for any command; a worker lost mid-stream ends it with `Err(Closed)`.
fn end_stream(reply: &mut ReplyTo, streaming: Option<Arc<Pipe>>, r: Result<Reply>) -> Result<Reply> {
    match streaming {
        Some(pipe) => {
            *reply = ReplyTo::Sink(Box::new(move |outcome: Outcome| pipe.finish(outcome.map(drop))));
            r.map(|_| Reply::Unit)
        }
        None => r,
    }
}

/// A chunk of a cursor's rows as the worker fills it: built rows, or encoded ones.
trait ChunkRows: Default {
    /// Empty it, with room for about `n` rows.
    fn reset(&mut self, n: usize);
    /// Append the statement's current row; on error nothing of it is kept.
    fn push(&mut self, st: &Stmt) -> Result<()>;
    fn count(&self) -> usize;
}

impl ChunkRows for Vec<Row> {
    fn reset(&mut self, n: usize) {
        self.clear();
        self.reserve(n.min(1024));
    }

    #[inline]
    fn push(&mut self, st: &Stmt) -> Result<()> {
        st.push_row(self)
    }

    fn count(&self) -> usize {
        self.len()
    }
}

impl ChunkRows for pipe::Encoded {
    fn reset(&mut self, _n: usize) {
        self.bytes.clear();
        self.rows = 0;
    }

    #[inline]
    fn push(&mut self, st: &Stmt) -> Result<()> {
        let len = self.bytes.len();
        match st.encode_row(&mut self.bytes) {
            Ok(()) => {
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(len);
                Err(e)
            }
        }
    }

    fn count(&self) -> usize {
        self.rows
    }
}

/// Up to `n` rows, and whether the statement finished (`Ok(true)`), has more (`Ok(false)`) or
/// failed after the rows returned.
fn read_chunk<B: ChunkRows>(st: &mut Stmt, n: usize, mut rows: B) -> (B, Result<bool>) {
    rows.reset(n);
    while rows.count() < n {
        match st.step() {
            Ok(true) => {
                if let Err(e) = rows.push(st) {
                    return (rows, Err(e));
                }
            }
            Ok(false) => return (rows, Ok(true)),
            Err(e) => return (rows, Err(e)),
        }
    }
    (rows, Ok(false))
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Open the backend `opts` names: a local SQLite database, or a `dqlite://` cluster.
fn open_backend(opts: &ConnectOptions, ctx: &Arc<Ctx>) -> Result<Box<dyn Backend>> {
    let path = opts.path.to_string_lossy();
    if path.starts_with("dqlite://") {
        #[cfg(feature = "dqlite")]
        return crate::dqlite::open_backend(opts);
        #[cfg(not(feature = "dqlite"))]
        return Err(Error::Unsupported {
            message: "dqlite:// addresses need aiolite's `dqlite` cargo feature".into(),
        });
    }
    Ok(Box::new(ConnState::open(opts, Arc::clone(ctx))?))
}

/// Start a worker thread for `opts`. The returned slot receives the outcome of opening.
pub(crate) fn spawn(opts: ConnectOptions, shared: Arc<Shared>) -> Result<Arc<Slot>> {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let slot = Slot::new();
    let reply = Arc::clone(&slot);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::thread::Builder::new()
        .name(format!("aiolite-{n}"))
        .spawn(move || worker_main(&shared, &opts, &reply))
        .map_err(|e| Error::Sqlite {
            code: crate::ErrorCode::CantOpen,
            extended_code: ffi::SQLITE_CANTOPEN,
            message: format!("cannot start the worker thread: {e}"),
            sql: None,
        })?;
    Ok(slot)
}

fn worker_main(shared: &Arc<Shared>, opts: &ConnectOptions, opened: &Slot) {
    shared.queue.set_thread();
    let body = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker_body(shared, opts, opened)));
    if let Err(payload) = body {
        // A bug in the worker, or a panic in code it called outside the places that catch
        // them: fail everything that waits (commands dropped in the unwind answer
        // `Err(Closed)` by themselves) and close the database.
        let message = panic_message(payload.as_ref());
        tracing::error!("aiolite: the worker of {} panicked: {message}", shared.path);
        if !opened.is_ready() {
            opened.complete(Err(Error::Panicked { message }));
        }
        for job in shared.queue.shut() {
            shared.queue.finished();
            job.reply.send(Err(Error::Closed));
        }
        let engine = shared.lock_conn().take();
        drop(engine);
        shared.in_tx.store(false, Ordering::Release);
    }
}

fn worker_body(shared: &Arc<Shared>, opts: &ConnectOptions, opened: &Slot) {
    let opened_backend = open_backend(opts, &shared.ctx);
    let engine = match opened_backend {
        Ok(b) => Engine::new(b),
        Err(e) => {
            for job in shared.queue.shut() {
                shared.queue.finished();
                job.reply.send(Err(Error::Closed));
            }
            opened.complete(Err(e));
            return;
        }
    };
    shared.publish(&*engine.backend);
    let mut engine = engine;
    // The second handle of the read anchor opens the file by the name SQLite resolved now.
    let anchor_uri = if shared.anchor.disabled.load(Ordering::Relaxed) {
        None
    } else {
        let filename = engine.backend.local().and_then(|st| st.conn.path().map(str::to_owned));
        crate::anchor::sibling_uri(&opts.path.to_string_lossy(), filename.as_deref())
    };
    *shared.lock_conn() = Some(engine);
    opened.complete(Ok(Reply::Unit));

    let spin = opts.worker_spin;
    let mut deferred: VecDeque<Job> = VecDeque::new();
    let mut gate_open = true;
    let mut closing: Option<Job> = None;
    let mut anchor = crate::anchor::ConnAnchor::new(anchor_uri);
    // No spin right after looking at the anchor: nothing came during the tick.
    let mut spin_now = spin;
    loop {
        let next = if gate_open && !deferred.is_empty() {
            deferred.pop_front()
        } else if closing.is_some() {
            None
        } else {
            let tick = shared
                .anchor
                .active
                .load(Ordering::SeqCst)
                .then_some(crate::anchor::TICK);
            match shared.queue.next(spin_now, tick, &shared.anchor.active) {
                Next::Job(job) => Some(job),
                Next::Closed => None,
                Next::Idle => {
                    anchor.tick(&shared.anchor);
                    spin_now = Duration::ZERO;
                    continue;
                }
            }
        };
        spin_now = spin;
        let Some(job) = next else {
            break;
        };
        // A command may need the database to itself, and nothing looks after the anchor
        // while it runs.
        anchor.pause();
        if job.reply.is_cancelled() && !matches!(job.op, Op::Close) {
            shared.queue.finished();
            continue;
        }
        let mut guard = shared.lock_conn();
        let Some(engine) = guard.as_mut() else {
            drop(guard);
            shared.queue.finished();
            job.reply.send(Err(Error::Closed));
            continue;
        };
        if matches!(job.op, Op::Close) {
            // Roll back a transaction still holding the gate, then let what was deferred
            // behind it run before closing.
            engine.abort_gate();
            gate_open = true;
            closing = Some(job);
            continue;
        }
        match engine.admit(&job, closing.is_some()) {
            Admit::Run => {}
            Admit::Defer => {
                drop(guard);
                deferred.push_back(job);
                gate_open = false;
                continue;
            }
            Admit::Skip => {
                drop(guard);
                shared.queue.finished();
                job.reply.send(Ok(Reply::Unit));
                continue;
            }
            Admit::Reject(e) => {
                if let Op::CursorNext { cursor, .. } | Op::CursorRest { cursor } = job.op {
                    // The cursor's transaction is over: finalize its statement now, which
                    // also ends the read transaction it would keep open.
                    engine.backend.cursor_close(cursor);
                }
                drop(guard);
                shared.queue.finished();
                job.reply.send(Err(e));
                continue;
            }
        }
        let ctx = &shared.ctx;
        ctx.start_job(job.id);
        let start = Instant::now();
        let Job {
            owner, op, mut reply, ..
        } = job;
        let mut spent = None;
        let outcome = engine.run(owner, op, &mut reply, &mut spent);
        ctx.end_job();
        gate_open = engine.gate == 0;
        shared.publish(&*engine.backend);
        drop(guard);
        shared.record_service(start.elapsed().as_nanos() as u64);
        shared.queue.finished();
        reply.send(outcome);
        drop(spent);
    }

    // Drain is over: close SQLite.
    anchor.release();
    drop(anchor);
    for job in deferred.drain(..) {
        shared.queue.finished();
        job.reply.send(Err(Error::Closed));
    }
    let engine = shared.lock_conn().take();
    let result = engine.map_or(Ok(()), |e| e.backend.close());
    // Closing rolled back whatever was open.
    shared.in_tx.store(false, Ordering::Release);
    for job in shared.queue.shut() {
        shared.queue.finished();
        job.reply.send(Err(Error::Closed));
    }
    match closing {
        Some(job) => {
            shared.queue.finished();
            job.reply.send(result.map(|()| Reply::Unit));
        }
        None => {
            if let Err(e) = result {
                tracing::warn!("aiolite: closing {} failed: {e}", shared.path);
            }
        }
    }
}
