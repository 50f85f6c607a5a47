//! The WAL pool: one writer connection, N read-only reader connections, fair queues.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::anchor::{AnchorFlags, Inactive};
use crate::connection::{Connection, Target, statement_api};
use crate::cursor::Cursor;
use crate::error::{Error, ErrorCode, Result};
use crate::options::{ConnectOptions, TransactionBehavior};
use crate::params::{ParamValues, Params};
use crate::reply::unexpected;
use crate::row::Row;
use crate::transaction::Transaction;
use crate::value::FromValue;
use crate::worker::{ExecResult, FetchKind, Op, Reply};

/// How a [`Pool`] is sized and how long callers wait.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    readers: usize,
    acquire_timeout: Duration,
    anchor_reads: bool,
}

impl Default for PoolOptions {
    /// [`readers`](PoolOptions::readers): the machine's available parallelism, at least 2 and
    /// at most 8; [`acquire_timeout`](PoolOptions::acquire_timeout): 30 s.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        PoolOptions {
            readers: cores.clamp(2, 8),
            acquire_timeout: Duration::from_secs(30),
            anchor_reads: true,
        }
    }
}

impl PoolOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of read-only connections (each with its own worker thread). `0` sends reads to
    /// the writer too.
    pub fn readers(mut self, n: usize) -> Self {
        self.readers = n;
        self
    }

    /// How long a call waits for a free connection before failing with
    /// [`Error::PoolTimeout`].
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Keep a WAL read lock held for the pool while its readers work concurrently. Default
    /// `true`.
    ///
    /// SQLite takes a WAL read lock at the start of every read transaction and releases it at
    /// the end, and each time it makes an `fcntl` system call (under a mutex every connection
    /// to the file shares) unless another connection of the process holds the same lock. Two
    /// reads that overlap in time skip those calls; two that do not each pay two, which is
    /// most of the cost of a point query. With this option, a read that finds another reader
    /// busy, or the 16th of a steady stream of reads (each within 0.5 ms of the one before),
    /// starts an **anchor**: one more read-only connection that keeps a read transaction open
    /// while reads go on, so the readers' lock calls find the lock held and skip the `fcntl`.
    /// On the project's benchmarks (2 cores), one task's point queries through the pool run
    /// at about 1.8 times the rate of plain rusqlite on one connection (`pool_select`), and
    /// four tasks' at about 0.8–1.0 times that of four rusqlite threads (`concurrent_read`;
    /// 0.5–0.6 without the anchor).
    ///
    /// The anchor never reads for you (every read keeps its own, current snapshot) and holds
    /// one snapshot for about a millisecond at a time. It lets go within about a millisecond
    /// after the reads stop, and as soon as it sees that the database changed (a commit by
    /// any connection), holding nothing again until a millisecond passes without a commit:
    /// a read transaction held across commits would keep checkpoints from catching up with
    /// the log. It exists only for file databases in WAL mode with readers (in
    /// rollback-journal mode a held read lock would block the writer), and costs one more
    /// connection and worker thread, which sleeps while the reads are idle.
    pub fn anchor_reads(mut self, enabled: bool) -> Self {
        self.anchor_reads = enabled;
        self
    }
}

/// A read-only connection that holds a read transaction while the pool's reads overlap or
/// stream (see [`PoolOptions::anchor_reads`]).
struct Anchor {
    conn: Connection,
    flags: Arc<AnchorFlags>,
    epoch: Instant,
}

impl Anchor {
    /// A read is starting; `others`: another reader is busy right now.
    #[inline]
    fn touch(&self, others: bool) {
        let now = || u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if self.flags.touch(now, others) {
            // Clears `active` when the job ends, and also when it never runs (a closed queue
            // drops it).
            let done = Inactive(Arc::clone(&self.flags));
            let hold = Op::Internal(Box::new(move |st| {
                st.hold_read_lock(&done.0);
                drop(done);
                Ok(Box::new(()) as Box<dyn std::any::Any + Send>)
            }));
            self.conn.send_cleanup(0, hold);
        }
    }
}

/// A WAL-mode pool: one read-write **writer** connection and N read-only **reader**
/// connections over one database file.
///
/// - `execute*`, [`transaction`](Pool::transaction) (always `BEGIN IMMEDIATE`),
///   [`writer`](Pool::writer) and [`call`](Pool::call) use the writer. Callers queue for it in
///   FIFO order, so writers never see `SQLITE_BUSY` from each other.
/// - `fetch_*`, [`query`](Pool::query) and [`reader`](Pool::reader) use a free reader. WAL
///   lets readers run beside the writer, each on a consistent snapshot of committed data. A
///   statement that writes (judged by `sqlite3_stmt_readonly`, e.g. `INSERT … RETURNING`
///   through `fetch_one`) is sent to the writer instead.
/// - While reads overlap or come in a steady stream, a read anchor holds the WAL read lock
///   so that they skip SQLite's lock system calls (see [`PoolOptions::anchor_reads`]).
/// - Each wait for a connection is bounded by
///   [`acquire_timeout`](PoolOptions::acquire_timeout) ([`Error::PoolTimeout`]); a caller that
///   gives up (its future dropped) never loses or leaks a connection.
///
/// `Pool` is `Clone + Send + Sync`: keep one in your application state.
///
/// **In-memory databases.** An in-memory database (`:memory:`, `mode=memory` URIs) belongs to
/// one connection, so such a pool has no readers: every call goes to its single connection.
///
/// ```
/// # futures::executor::block_on(async {
/// use aiolite::{ConnectOptions, Pool, PoolOptions, params};
/// let dir = tempfile::tempdir().unwrap();
/// let pool = Pool::open(
///     ConnectOptions::new(dir.path().join("app.db")).recommended_pragmas(),
///     PoolOptions::default().readers(4),
/// )
/// .await?;
/// pool.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ()).await?;
/// pool.execute("INSERT INTO t(v) VALUES (?)", ["a"]).await?;       // the writer
/// let n: Option<i64> = pool.fetch_scalar("SELECT count(*) FROM t", ()).await?; // a reader
/// assert_eq!(n, Some(1));
/// let id: Option<i64> = pool.fetch_scalar("INSERT INTO t(v) VALUES ('b') RETURNING id", ()).await?; // routed to the writer
/// assert_eq!(id, Some(2));
/// pool.close().await?;
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    writer: Connection,
    readers: Vec<Connection>,
    anchor: Option<Anchor>,
    writer_slots: Arc<Slots>,
    reader_slots: Arc<Slots>,
    acquire_timeout: Duration,
    closed: AtomicBool,
    path: String,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("path", &self.inner.path)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A snapshot of a pool's state ([`Pool::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Reader connections in the pool.
    pub readers: usize,
    /// Readers handed out now.
    pub readers_busy: usize,
    /// Readers free now.
    pub readers_idle: usize,
    /// `true` while the writer is handed out.
    pub writer_busy: bool,
    /// Callers waiting for a reader now.
    pub reader_queue: usize,
    /// Callers waiting for the writer now.
    pub writer_queue: usize,
    /// Acquisitions (reader or writer) that had to wait, since the pool opened.
    pub total_waits: u64,
    /// Time spent waiting by those acquisitions.
    pub total_wait_time: Duration,
    /// Acquisitions that gave up with [`Error::PoolTimeout`].
    pub timeouts: u64,
    /// Read transactions the read anchor has begun since the pool opened (one per
    /// millisecond while it holds; see [`PoolOptions::anchor_reads`]).
    pub anchor_holds: u64,
    /// `true` while the read anchor is at work (holding a read lock, about to, or waiting for
    /// commits to stop before it holds one again).
    pub anchor_active: bool,
}

/// A reader's options: `options`, read-only, without `journal_mode`.
fn reader_options(options: &ConnectOptions) -> ConnectOptions {
    let mut ro = options.clone();
    ro.read_only = true;
    ro.create_if_missing = false;
    ro.isolation_level = None;
    ro.reject_writes = true;
    ro.anchor_reads = false;
    ro.pragmas.retain(|(k, _)| {
        !k.rsplit('.')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("journal_mode"))
    });
    ro
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // A hold job running on the anchor's worker ends at its next look.
        if let Some(a) = &self.anchor {
            a.flags.disabled.store(true, Ordering::Release);
        }
    }
}

impl Pool {
    /// Open the writer (switching the database to WAL), then the readers (read-only, with the
    /// same options except `journal_mode`).
    ///
    /// # Failure
    /// Any connection's open error; connections already opened are closed again.
    pub async fn open(options: ConnectOptions, pool: PoolOptions) -> Result<Pool> {
        let memory = options.in_memory();
        let mut writer_opts = options.clone();
        // The pool anchors its readers' locks itself.
        writer_opts.anchor_reads = false;
        if !memory
            && !writer_opts.pragmas.iter().any(|(k, _)| {
                k.rsplit('.')
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("journal_mode"))
            })
        {
            writer_opts.pragmas.insert(0, ("journal_mode".into(), "WAL".into()));
        }
        let writer = writer_opts.open().await?;
        let n = if memory { 0 } else { pool.readers };
        let mut readers = Vec::with_capacity(n);
        for _ in 0..n {
            match reader_options(&options).open().await {
                Ok(c) => readers.push(c),
                Err(e) => {
                    for c in &readers {
                        let _ = c.close().await;
                    }
                    let _ = writer.close().await;
                    return Err(e);
                }
            }
        }
        let anchor = if pool.anchor_reads && !readers.is_empty() {
            // An optimization: without it the pool works the same, only slower.
            Self::open_anchor(&writer, &options).await.unwrap_or_else(|e| {
                tracing::warn!("aiolite: the pool of {} runs without a read anchor: {e}", writer.path());
                None
            })
        } else {
            None
        };
        Ok(Pool {
            inner: Arc::new(PoolInner {
                writer_slots: Arc::new(Slots::new(1)),
                reader_slots: Arc::new(Slots::new(readers.len())),
                path: writer.path().to_owned(),
                writer,
                readers,
                anchor,
                acquire_timeout: pool.acquire_timeout,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The read anchor, when the database is in WAL mode (see [`PoolOptions::anchor_reads`]).
    async fn open_anchor(writer: &Connection, options: &ConnectOptions) -> Result<Option<Anchor>> {
        if options.path.to_string_lossy().starts_with("dqlite://") {
            // A cluster's locks are the server's business.
            return Ok(None);
        }
        let mode: Option<String> = writer.fetch_scalar("PRAGMA journal_mode", ()).await?;
        if !mode.is_some_and(|m| m.eq_ignore_ascii_case("wal")) {
            return Ok(None);
        }
        let conn = reader_options(options).open().await?;
        Ok(Some(Anchor {
            conn,
            flags: Arc::new(AnchorFlags::new(true)),
            epoch: Instant::now(),
        }))
    }

    async fn acquire(&self, write: bool) -> Result<PoolConnection> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let use_writer = write || inner.readers.is_empty();
        let slots = if use_writer {
            &inner.writer_slots
        } else {
            &inner.reader_slots
        };
        let (idx, in_use) = slots.acquire(inner.acquire_timeout).await?;
        if !use_writer && let Some(anchor) = &inner.anchor {
            anchor.touch(in_use >= 2);
        }
        let permit = Permit {
            slots: Arc::clone(slots),
            idx,
        };
        let conn = if use_writer {
            inner.writer.clone()
        } else {
            inner.readers[idx].clone()
        };
        Ok(PoolConnection {
            conn,
            permit: Some(permit),
            writer: use_writer,
        })
    }

    /// A reader connection for several reads (on one snapshot if you open a transaction on
    /// it). It returns to the pool when dropped. Without readers (in-memory pool), the writer.
    ///
    /// # Failure
    /// [`Error::PoolTimeout`], [`Error::Closed`].
    pub async fn reader(&self) -> Result<PoolConnection> {
        self.acquire(false).await
    }

    /// The writer connection, exclusively, until the guard is dropped (an unfinished
    /// transaction on it is rolled back first).
    ///
    /// # Failure
    /// [`Error::PoolTimeout`], [`Error::Closed`].
    pub async fn writer(&self) -> Result<PoolConnection> {
        self.acquire(true).await
    }

    /// Begin a write transaction on the writer (`BEGIN IMMEDIATE`, so it cannot fail with
    /// `SQLITE_BUSY` half-way). The writer stays reserved until the transaction ends.
    ///
    /// # Failure
    /// [`Error::PoolTimeout`], [`Error::Closed`], SQLite's error from `BEGIN`.
    pub async fn transaction(&self) -> Result<Transaction> {
        let mut guard = self.acquire(true).await?;
        let permit = guard.permit.take();
        Transaction::begin_with_permit(guard.conn.clone(), TransactionBehavior::Immediate, permit).await
    }

    /// Run `f` in a write transaction: commit on `Ok`, roll back on `Err` or panic (see
    /// [`Connection::with_transaction`]).
    ///
    /// # Failure
    /// As [`transaction`](Self::transaction), and `f`'s error.
    pub async fn with_transaction<F, Fut, T, E>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(Transaction) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        crate::transaction::scoped(self.transaction().await?, f).await
    }

    /// Current usage and totals (cheap, sync).
    pub fn stats(&self) -> PoolStats {
        let inner = &self.inner;
        let (w_free, w_queue) = inner.writer_slots.usage();
        let (r_free, r_queue) = inner.reader_slots.usage();
        let readers = inner.readers.len();
        let (rw, rt, rto) = inner.reader_slots.totals();
        let (ww, wt, wto) = inner.writer_slots.totals();
        PoolStats {
            readers,
            readers_busy: readers - r_free,
            readers_idle: r_free,
            writer_busy: w_free == 0,
            reader_queue: r_queue,
            writer_queue: w_queue,
            total_waits: rw + ww,
            total_wait_time: Duration::from_nanos(rt + wt),
            timeouts: rto + wto,
            anchor_holds: inner
                .anchor
                .as_ref()
                .map_or(0, |a| a.flags.holds.load(Ordering::Relaxed)),
            anchor_active: inner
                .anchor
                .as_ref()
                .is_some_and(|a| a.flags.active.load(Ordering::Acquire)),
        }
    }

    /// Close the pool: new calls fail with [`Error::Closed`], callers waiting for a connection
    /// are refused, and every connection closes after running what was already sent to it.
    ///
    /// # Failure
    /// The first error from closing a connection.
    pub async fn close(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        inner.writer_slots.close();
        inner.reader_slots.close();
        let mut first = Ok(());
        if let Some(a) = &inner.anchor {
            a.flags.disabled.store(true, Ordering::Release);
            // Runs after the hold ends (within a tick).
            first = a.conn.close().await;
        }
        for c in inner.readers.iter().chain(std::iter::once(&inner.writer)) {
            if let Err(e) = c.close().await
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// `true` once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Interrupt whatever runs on every connection of the pool (see
    /// [`Connection::interrupt`]).
    pub fn interrupt(&self) {
        self.inner.writer.interrupt();
        for r in &self.inner.readers {
            r.interrupt();
        }
    }

    /// A fetch on a reader; a statement that turns out to write goes to the writer.
    async fn fetch_routed(&self, text: &str, params: ParamValues, kind: FetchKind) -> Result<Reply> {
        if !crate::sql::verb(text).is_dml() && !self.inner.readers.is_empty() {
            let retry = params.clone();
            let guard = self.acquire(false).await?;
            match guard.target()?.fetch(text, params, kind).await {
                Err(e) if e.sqlite_code() == Some(ErrorCode::ReadOnly) => {
                    drop(guard);
                    return self.acquire(true).await?.target()?.fetch(text, retry, kind).await;
                }
                other => return other,
            }
        }
        self.acquire(true).await?.target()?.fetch(text, params, kind).await
    }

    /// Execute one statement on the writer. See [`Connection::execute`].
    ///
    /// # Failure
    /// As [`Connection::execute`], plus [`Error::PoolTimeout`].
    pub fn execute<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<ExecResult>> + Send + 'a {
        let params = params.into_values();
        async move { self.acquire(true).await?.target()?.execute(sql, params).await }
    }

    /// See [`Connection::execute_insert`]; runs on the writer.
    ///
    /// # Failure
    /// As [`Connection::execute`], plus [`Error::PoolTimeout`].
    pub fn execute_insert<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<i64>>> + Send + 'a {
        let params = params.into_values();
        async move { self.acquire(true).await?.target()?.execute_insert(sql, params).await }
    }

    /// See [`Connection::execute_many`]; runs on the writer.
    ///
    /// # Failure
    /// As [`Connection::execute`], plus [`Error::PoolTimeout`].
    pub fn execute_many<'a, I>(&'a self, sql: &'a str, rows: I) -> impl Future<Output = Result<u64>> + Send + 'a
    where
        I: IntoIterator,
        I::Item: Params,
    {
        let rows: Vec<ParamValues> = rows.into_iter().map(Params::into_values).collect();
        async move { self.acquire(true).await?.target()?.execute_many(sql, rows).await }
    }

    /// See [`Connection::execute_script`]; runs on the writer.
    ///
    /// # Failure
    /// As [`Connection::execute_script`], plus [`Error::PoolTimeout`].
    pub async fn execute_script(&self, sql: &str) -> Result<()> {
        self.acquire(true).await?.target()?.execute_script(sql).await
    }

    /// See [`Connection::fetch_all`]; runs on a reader (a writing statement on the writer).
    ///
    /// # Failure
    /// As [`Connection::fetch_all`], plus [`Error::PoolTimeout`].
    pub fn fetch_all<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send + 'a {
        let params = params.into_values();
        async move {
            match self.fetch_routed(sql, params, FetchKind::All).await? {
                Reply::Rows(rows) => Ok(rows),
                _ => Err(unexpected("fetch_all")),
            }
        }
    }

    /// See [`Connection::fetch_one`]; runs on a reader (a writing statement on the writer).
    ///
    /// # Failure
    /// As [`Connection::fetch_one`], plus [`Error::PoolTimeout`].
    pub fn fetch_one<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<Row>>> + Send + 'a {
        let params = params.into_values();
        async move {
            match self.fetch_routed(sql, params, FetchKind::One).await? {
                Reply::Row(row) => Ok(row),
                _ => Err(unexpected("fetch_one")),
            }
        }
    }

    /// See [`Connection::fetch_scalar`]; runs on a reader (a writing statement on the writer).
    ///
    /// # Failure
    /// As [`Connection::fetch_scalar`], plus [`Error::PoolTimeout`].
    pub fn fetch_scalar<'a, T: FromValue + Send + 'static>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<T>>> + Send + 'a {
        let params = params.into_values();
        async move {
            match self.fetch_routed(sql, params, FetchKind::Scalar).await? {
                Reply::Scalar(Some(v)) => T::from_owned_value(v, &0_usize).map(Some),
                Reply::Scalar(None) => Ok(None),
                _ => Err(unexpected("fetch_scalar")),
            }
        }
    }

    /// See [`Connection::fetch_all_as`]; runs on a reader (a writing statement on the writer).
    ///
    /// # Failure
    /// As [`Connection::fetch_all_as`], plus [`Error::PoolTimeout`].
    pub fn fetch_all_as<'a, T: DeserializeOwned + Send + 'static>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<T>>> + Send + 'a {
        let rows = self.fetch_all(sql, params);
        async move { rows.await?.into_iter().map(crate::de::from_row).collect() }
    }

    /// See [`Connection::fetch_one_as`]; runs on a reader (a writing statement on the writer).
    ///
    /// # Failure
    /// As [`Connection::fetch_one_as`], plus [`Error::PoolTimeout`].
    pub fn fetch_one_as<'a, T: DeserializeOwned + Send + 'static>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<T>>> + Send + 'a {
        let row = self.fetch_one(sql, params);
        async move { row.await?.map(crate::de::from_row).transpose() }
    }

    /// See [`Connection::query`]; runs on a reader (a writing statement on the writer). The
    /// cursor keeps its connection until it is dropped.
    ///
    /// # Failure
    /// As [`Connection::query`], plus [`Error::PoolTimeout`].
    pub fn query<'a>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Cursor>> + Send + 'a {
        let params = params.into_values();
        async move {
            let write = crate::sql::verb(sql).is_dml() || self.inner.readers.is_empty();
            if !write {
                let retry = params.clone();
                let mut guard = self.acquire(false).await?;
                match guard.target()?.query(sql, params).await {
                    Ok(cur) => return Ok(cur.with_permit(guard.permit.take())),
                    Err(e) if e.sqlite_code() == Some(ErrorCode::ReadOnly) => {
                        drop(guard);
                        return self.query_on_writer(sql, retry).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            self.query_on_writer(sql, params).await
        }
    }

    async fn query_on_writer(&self, sql: &str, params: ParamValues) -> Result<Cursor> {
        let mut guard = self.acquire(true).await?;
        let cur = guard.target()?.query(sql, params).await?;
        Ok(cur.with_permit(guard.permit.take()))
    }

    /// See [`Connection::call`]; runs on the writer.
    ///
    /// # Failure
    /// As [`Connection::call`], plus [`Error::PoolTimeout`].
    pub async fn call<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.acquire(true).await?.target()?.call(f).await
    }
}

/// A connection taken from a [`Pool`] ([`Pool::reader`] / [`Pool::writer`]), with the
/// statement API. It returns to the pool when dropped; a transaction left open on it is
/// rolled back first.
pub struct PoolConnection {
    conn: Connection,
    permit: Option<Permit>,
    writer: bool,
}

impl fmt::Debug for PoolConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConnection")
            .field("writer", &self.writer)
            .field("connection", &self.conn)
            .finish()
    }
}

impl PoolConnection {
    pub(crate) fn target(&self) -> Result<Target<'_>> {
        Ok(Target {
            conn: &self.conn,
            owner: 0,
        })
    }

    statement_api!();

    /// `true` for the writer, `false` for a reader.
    pub fn is_writer(&self) -> bool {
        self.writer
    }

    /// The underlying connection. Clones of it outlive the guard but not its exclusivity:
    /// use them only while the guard is held.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Begin a transaction on this connection (see [`Connection::transaction_with`]).
    ///
    /// # Failure
    /// SQLite's error from `BEGIN`.
    pub async fn transaction_with(&self, behavior: TransactionBehavior) -> Result<Transaction> {
        self.conn.transaction_with(behavior).await
    }

    /// `true` when a transaction is open on this connection.
    pub fn in_transaction(&self) -> bool {
        self.conn.in_transaction()
    }
}

impl Drop for PoolConnection {
    fn drop(&mut self) {
        if self.permit.is_some() && self.conn.in_transaction() {
            // Queued before the permit is released, so it runs before the next holder's work.
            self.conn.send_cleanup(0, Op::Rollback);
        }
    }
}

/// Holds one pool slot; releases it (handing it to the longest waiter) when dropped.
pub(crate) struct Permit {
    slots: Arc<Slots>,
    idx: usize,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("idx", &self.idx).finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.slots.release(self.idx);
    }
}

/// A fair (FIFO) pool of `n` numbered slots.
struct Slots {
    n: usize,
    inner: Mutex<SlotsInner>,
    waits: AtomicU64,
    wait_ns: AtomicU64,
    timeouts: AtomicU64,
}

struct SlotsInner {
    free: Vec<usize>,
    waiters: VecDeque<(u64, Waker)>,
    /// Slots handed to waiters that have not picked them up yet.
    granted: Vec<(u64, usize)>,
    next_ticket: u64,
    closed: bool,
}

impl Slots {
    fn new(n: usize) -> Self {
        Slots {
            n,
            inner: Mutex::new(SlotsInner {
                free: (0..n).rev().collect(),
                waiters: VecDeque::new(),
                granted: Vec::new(),
                next_ticket: 1,
                closed: false,
            }),
            waits: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn usage(&self) -> (usize, usize) {
        let s = self.lock();
        (s.free.len() + s.granted.len(), s.waiters.len())
    }

    fn totals(&self) -> (u64, u64, u64) {
        (
            self.waits.load(Ordering::Relaxed),
            self.wait_ns.load(Ordering::Relaxed),
            self.timeouts.load(Ordering::Relaxed),
        )
    }

    fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        let waiters: Vec<Waker> = s.waiters.drain(..).map(|(_, w)| w).collect();
        drop(s);
        for w in waiters {
            w.wake();
        }
    }

    fn release(&self, idx: usize) {
        let mut s = self.lock();
        if let Some((ticket, waker)) = s.waiters.pop_front() {
            s.granted.push((ticket, idx));
            drop(s);
            waker.wake();
        } else {
            s.free.push(idx);
        }
    }

    /// A free slot, waiting in line for one if needed; with the number of slots in use
    /// counting this one.
    async fn acquire(&self, timeout: Duration) -> Result<(usize, usize)> {
        {
            let mut s = self.lock();
            if s.closed {
                return Err(Error::Closed);
            }
            if s.waiters.is_empty()
                && let Some(idx) = s.free.pop()
            {
                return Ok((idx, self.n - s.free.len() - s.granted.len()));
            }
        }
        let start = Instant::now();
        self.waits.fetch_add(1, Ordering::Relaxed);
        let wait = Acquire {
            slots: self,
            ticket: None,
        };
        let r = futures_util::future::select(wait, futures_timer::Delay::new(timeout)).await;
        let waited = start.elapsed();
        self.wait_ns
            .fetch_add(waited.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
        match r {
            // It waited: every slot was in use.
            futures_util::future::Either::Left((r, _)) => r.map(|idx| (idx, self.n)),
            futures_util::future::Either::Right(((), _)) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(Error::PoolTimeout { waited })
            }
        }
    }
}

/// Waits in line for a slot; dropping it gives up its place (or passes on a slot it was
/// granted but did not pick up).
struct Acquire<'a> {
    slots: &'a Slots,
    ticket: Option<u64>,
}

impl Future for Acquire<'_> {
    type Output = Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        let mut s = self.slots.lock();
        match self.ticket {
            Some(t) => {
                if let Some(pos) = s.granted.iter().position(|(g, _)| *g == t) {
                    let (_, idx) = s.granted.swap_remove(pos);
                    drop(s);
                    self.ticket = None;
                    return Poll::Ready(Ok(idx));
                }
                if s.closed {
                    drop(s);
                    self.ticket = None;
                    return Poll::Ready(Err(Error::Closed));
                }
                if let Some((_, w)) = s.waiters.iter_mut().find(|(g, _)| *g == t) {
                    w.clone_from(cx.waker());
                }
                Poll::Pending
            }
            None => {
                if s.closed {
                    return Poll::Ready(Err(Error::Closed));
                }
                if s.waiters.is_empty()
                    && let Some(idx) = s.free.pop()
                {
                    return Poll::Ready(Ok(idx));
                }
                let t = s.next_ticket;
                s.next_ticket += 1;
                s.waiters.push_back((t, cx.waker().clone()));
                drop(s);
                self.ticket = Some(t);
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(t) = self.ticket else {
            return;
        };
        let mut s = self.slots.lock();
        if let Some(pos) = s.granted.iter().position(|(g, _)| *g == t) {
            let (_, idx) = s.granted.swap_remove(pos);
            drop(s);
            self.slots.release(idx);
        } else {
            s.waiters.retain(|(g, _)| *g != t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_fair_and_never_leak() {
        futures::executor::block_on(async {
            let slots = Slots::new(1);
            let (a, in_use) = slots.acquire(Duration::from_secs(1)).await.unwrap();
            assert_eq!(in_use, 1);
            // A waiter that times out leaves nothing behind.
            let e = slots.acquire(Duration::from_millis(20)).await.unwrap_err();
            assert!(matches!(e, Error::PoolTimeout { .. }));
            assert_eq!(slots.usage(), (0, 0));
            slots.release(a);
            assert_eq!(slots.usage(), (1, 0));
            let (b, in_use) = slots.acquire(Duration::from_secs(1)).await.unwrap();
            assert_eq!((b, in_use), (0, 1));
            slots.release(b);
            assert_eq!(slots.totals().2, 1);
            // The count of slots in use includes the one just taken.
            let two = Slots::new(3);
            let (x, n1) = two.acquire(Duration::from_secs(1)).await.unwrap();
            let (y, n2) = two.acquire(Duration::from_secs(1)).await.unwrap();
            assert_eq!((n1, n2), (1, 2));
            two.release(x);
            let (_, n3) = two.acquire(Duration::from_secs(1)).await.unwrap();
            assert_eq!(n3, 2);
            two.release(y);
        });
    }
}
