//! `Connection`: the async handle to one SQLite connection and its worker thread.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::options::{ConnectOptions, TransactionBehavior};
use crate::params::ParamValues;
use crate::reply::{ReplyTo, Slot, WaitReply, unexpected};
use crate::row::Row;
use crate::transaction::Transaction;
use crate::value::FromValue;
use crate::worker::{self, ExecResult, FetchKind, Job, Op, Reply, Shared};

/// Open a connection with default options: `aiolite::connect("app.db")`.
///
/// `path` is a file path (`&str`, `String`, `&Path`, `PathBuf`), `":memory:"` or a `file:`
/// URI. See [`ConnectOptions`] for everything that can be configured.
///
/// ```
/// # futures::executor::block_on(async {
/// let db = aiolite::connect(":memory:").await?;
/// db.execute("CREATE TABLE t(x)", ()).await?;
/// db.close().await?;
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
///
/// # Failure
/// An [`Error::Sqlite`] with code [`CantOpen`](crate::ErrorCode::CantOpen) when the database
/// cannot be opened. No thread is left behind.
pub async fn connect(path: impl AsRef<Path>) -> Result<Connection> {
    ConnectOptions::new(path).open().await
}

/// An async SQLite connection.
///
/// Each connection owns one worker thread, which owns the SQLite handle and runs commands one
/// at a time, in the order they were submitted. `Connection` is `Clone + Send + Sync`: clones
/// share the worker (and therefore see each other's transactions, like sqlite3 connections
/// shared between Python coroutines). The worker closes SQLite and exits when
/// [`close`](Connection::close) is called or the last handle (clones, transactions and cursors
/// included) is dropped.
///
/// Every method that touches the database is `async`; none blocks the caller's thread (see
/// [`ConnectOptions::inline_reads`] and [`ConnectOptions::wait_spin`] for the two bounded
/// exceptions made for speed).
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Handle>,
}

/// The last clone of a connection handle to go tells the worker to finish.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.shared.queue.is_closed() {
            tracing::debug!(
                "aiolite: connection to {} dropped without close(); closing it in the background",
                self.shared.path
            );
        }
        self.shared.queue.mark_dropped();
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("path", &self.inner.shared.path)
            .field("in_transaction", &self.in_transaction())
            .field("closed", &self.inner.shared.queue.is_closed())
            .finish()
    }
}

/// Where a statement goes: a connection, and the transaction it belongs to (0 for none).
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) owner: u64,
}

impl Target<'_> {
    pub(crate) async fn request(self, op: Op) -> Result<Reply> {
        self.conn.request(self.owner, op).await
    }

    pub(crate) async fn execute(self, text: &str, params: ParamValues) -> Result<ExecResult> {
        match self
            .request(Op::Execute {
                sql: text.into(),
                params,
            })
            .await?
        {
            Reply::Exec(r) => Ok(r),
            _ => Err(unexpected("execute")),
        }
    }

    pub(crate) async fn execute_insert(self, text: &str, params: ParamValues) -> Result<Option<i64>> {
        match self
            .request(Op::ExecuteInsert {
                sql: text.into(),
                params,
            })
            .await?
        {
            Reply::Scalar(id) => Ok(id.and_then(|v| v.as_i64())),
            _ => Err(unexpected("execute_insert")),
        }
    }

    pub(crate) async fn execute_many(self, text: &str, rows: Vec<ParamValues>) -> Result<u64> {
        match self.request(Op::ExecuteMany { sql: text.into(), rows }).await? {
            Reply::Changes(n) => Ok(n),
            _ => Err(unexpected("execute_many")),
        }
    }

    pub(crate) async fn execute_script(self, text: &str) -> Result<()> {
        match self.request(Op::Script { sql: text.into() }).await? {
            Reply::Unit => Ok(()),
            _ => Err(unexpected("execute_script")),
        }
    }

    pub(crate) async fn fetch(self, text: &str, params: ParamValues, kind: FetchKind) -> Result<Reply> {
        if let Some(out) = self.conn.shared().try_inline(self.owner, text, &params, kind) {
            return out;
        }
        let sql: Box<str> = text.into();
        let op = match kind {
            FetchKind::All => Op::FetchAll {
                sql,
                params,
                stream: true,
            },
            FetchKind::One => Op::FetchOne { sql, params },
            FetchKind::Scalar => Op::FetchScalar { sql, params },
        };
        match self.request(op).await? {
            // A big result: its rows are built here as the worker sends them.
            Reply::Streaming(rows) => {
                let shared = self.conn.shared();
                let spin = (shared.wait_spin_ns != 0).then_some((&shared.caller_backoff, shared.wait_spin_ns));
                rows.collect(&shared.ctx, spin).await.map(Reply::Rows)
            }
            other => Ok(other),
        }
    }

    pub(crate) async fn fetch_all(self, text: &str, params: ParamValues) -> Result<Vec<Row>> {
        match self.fetch(text, params, FetchKind::All).await? {
            Reply::Rows(rows) => Ok(rows),
            _ => Err(unexpected("fetch_all")),
        }
    }

    pub(crate) async fn fetch_one(self, text: &str, params: ParamValues) -> Result<Option<Row>> {
        match self.fetch(text, params, FetchKind::One).await? {
            Reply::Row(row) => Ok(row),
            _ => Err(unexpected("fetch_one")),
        }
    }

    pub(crate) async fn fetch_scalar<T: FromValue>(self, text: &str, params: ParamValues) -> Result<Option<T>> {
        match self.fetch(text, params, FetchKind::Scalar).await? {
            Reply::Scalar(Some(v)) => T::from_owned_value(v, &0_usize).map(Some),
            Reply::Scalar(None) => Ok(None),
            _ => Err(unexpected("fetch_scalar")),
        }
    }

    pub(crate) async fn fetch_all_as<T: DeserializeOwned>(self, text: &str, params: ParamValues) -> Result<Vec<T>> {
        self.fetch_all(text, params)
            .await?
            .into_iter()
            .map(crate::de::from_row)
            .collect()
    }

    pub(crate) async fn fetch_one_as<T: DeserializeOwned>(self, text: &str, params: ParamValues) -> Result<Option<T>> {
        self.fetch_one(text, params).await?.map(crate::de::from_row).transpose()
    }

    pub(crate) async fn query(self, text: &str, params: ParamValues) -> Result<Cursor> {
        let shared = self.conn.shared();
        let id = shared.next_id();
        // If this future is dropped after the worker opened the cursor, close it.
        let guard = CursorGuard { conn: self.conn, id };
        let chunk = shared.chunk_size;
        match self
            .request(Op::Query {
                cursor: id,
                sql: text.into(),
                params,
                chunk,
            })
            .await?
        {
            Reply::Chunk(first) => {
                std::mem::forget(guard);
                Ok(Cursor::new(self.conn.clone(), self.owner, id, first, chunk))
            }
            _ => Err(unexpected("query")),
        }
    }

    pub(crate) async fn call<F, R>(self, f: F) -> Result<R>
    where
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let op = Op::Call(Box::new(move |c| Box::new(f(c)) as Box<dyn Any + Send>));
        match self.request(op).await? {
            Reply::Any(b) => match b.downcast::<rusqlite::Result<R>>() {
                Ok(r) => (*r).map_err(Error::from_rusqlite),
                Err(_) => Err(unexpected("call")),
            },
            _ => Err(unexpected("call")),
        }
    }
}

struct CursorGuard<'a> {
    conn: &'a Connection,
    id: u64,
}

impl Drop for CursorGuard<'_> {
    fn drop(&mut self) {
        self.conn.send_cleanup(0, Op::CursorClose { cursor: self.id });
    }
}

/// The statement API (API.md §2), written once and stamped onto every handle type.
macro_rules! statement_api {
    () => {
        /// Execute one statement; returns the number of rows it changed and the connection's
        /// last insert rowid. A statement that returns rows (e.g. `PRAGMA journal_mode=WAL`) is
        /// run to completion and its rows discarded.
        ///
        /// # Failure
        /// [`Error::Sqlite`](crate::Error::Sqlite) for SQL errors and constraint violations;
        /// [`Error::MultipleStatements`](crate::Error::MultipleStatements) when `sql` holds more
        /// than one statement; [`Error::ParameterCount`](crate::Error::ParameterCount) /
        /// [`Error::ParameterName`](crate::Error::ParameterName) for parameters that do not fit;
        /// [`Error::Closed`](crate::Error::Closed) after `close()`.
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// db.execute("CREATE TABLE t(a INTEGER, b TEXT)", ()).await?;
        /// let r = db.execute("INSERT INTO t(a, b) VALUES (?, ?)", aiolite::params![1, "x"]).await?;
        /// assert_eq!((r.changes, r.last_insert_rowid), (1, 1));
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn execute<'q>(
            &'q self,
            sql: &'q str,
            params: impl $crate::Params,
        ) -> impl ::std::future::Future<Output = $crate::Result<$crate::ExecResult>> + Send + 'q {
            let params = $crate::Params::into_values(params);
            let target = self.target();
            async move { target?.execute(sql, params).await }
        }

        /// Execute one statement and return the rowid it inserted: `Some(rowid)` when the
        /// statement is an `INSERT`/`REPLACE` that inserted a row, `None` otherwise (aiosqlite's
        /// `execute_insert`).
        ///
        /// # Failure
        /// As [`execute`](Self::execute).
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a)", ()).await?;
        /// let id = db.execute_insert("INSERT INTO t(a) VALUES (?)", [5]).await?;
        /// assert_eq!(id, Some(1));
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn execute_insert<'q>(
            &'q self,
            sql: &'q str,
            params: impl $crate::Params,
        ) -> impl ::std::future::Future<Output = $crate::Result<Option<i64>>> + Send + 'q {
            let params = $crate::Params::into_values(params);
            let target = self.target();
            async move { target?.execute_insert(sql, params).await }
        }

        /// Execute one statement once per parameter set, in one hop to the worker and with one
        /// prepared statement; returns the total number of rows changed (aiosqlite's
        /// `executemany`). It does not open a transaction by itself: run it inside one for
        /// atomicity and speed.
        ///
        /// # Failure
        /// As [`execute`](Self::execute). Rows before the failing one stay applied unless
        /// a transaction is rolled back.
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// db.execute("CREATE TABLE t(a INTEGER, b TEXT)", ()).await?;
        /// let n = db
        ///     .execute_many("INSERT INTO t VALUES (?, ?)", vec![aiolite::params![1, "a"], aiolite::params![2, "b"]])
        ///     .await?;
        /// assert_eq!(n, 2);
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn execute_many<'q, I>(
            &'q self,
            sql: &'q str,
            rows: I,
        ) -> impl ::std::future::Future<Output = $crate::Result<u64>> + Send + 'q
        where
            I: IntoIterator,
            I::Item: $crate::Params,
        {
            let rows: Vec<$crate::params::ParamValues> = rows.into_iter().map($crate::Params::into_values).collect();
            let target = self.target();
            async move { target?.execute_many(sql, rows).await }
        }

        /// Execute a script of any number of statements (aiosqlite's `executescript`). Unlike
        /// Python's `executescript`, it does not commit first: it runs inside the current
        /// transaction, if any. A failing statement stops the script; the ones before it stay
        /// applied unless a transaction is rolled back.
        ///
        /// # Failure
        /// The first statement's error.
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// db.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);").await?;
        /// assert_eq!(db.fetch_scalar::<i64>("SELECT sum(x) FROM t", ()).await?, Some(3));
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn execute_script<'q>(
            &'q self,
            sql: &'q str,
        ) -> impl ::std::future::Future<Output = $crate::Result<()>> + Send + 'q {
            let target = self.target();
            async move { target?.execute_script(sql).await }
        }

        /// Run one query and return all its rows.
        ///
        /// The statement runs to its end as one command. Past its first 256 rows the worker
        /// sends the values in chunks and this future builds the rows as they arrive, on the
        /// thread that polls it, while the worker steps on: a big result is built in two
        /// threads at once, in the memory of the thread that will use it. Dropping the future
        /// stops the statement (unless it writes inside a transaction, which must finish).
        /// For results too big to hold at once, use [`query`](Self::query).
        ///
        /// # Failure
        /// As [`execute`](Self::execute).
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// let rows = db.fetch_all("SELECT 1 AS a UNION ALL SELECT 2", ()).await?;
        /// assert_eq!(rows.len(), 2);
        /// assert_eq!(rows[1].get::<i64>("a")?, 2);
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn fetch_all<'q>(
            &'q self,
            sql: &'q str,
            params: impl $crate::Params,
        ) -> impl ::std::future::Future<Output = $crate::Result<Vec<$crate::Row>>> + Send + 'q {
            let params = $crate::Params::into_values(params);
            let target = self.target();
            async move { target?.fetch_all(sql, params).await }
        }

        /// Run one query and return its first row, `None` when there is none.
        ///
        /// # Failure
        /// As [`execute`](Self::execute).
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// let row = db.fetch_one("SELECT ? AS v", [7]).await?.expect("one row");
        /// assert_eq!(row.get::<i64>("v")?, 7);
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn fetch_one<'q>(
            &'q self,
            sql: &'q str,
            params: impl $crate::Params,
        ) -> impl ::std::future::Future<Output = $crate::Result<Option<$crate::Row>>> + Send + 'q {
            let params = $crate::Params::into_values(params);
            let target = self.target();
            async move { target?.fetch_one(sql, params).await }
        }

        /// Run one query and convert the first column of its first row; `None` only when there
        /// is no row (a `NULL` converts like any value: ask for `Option<T>` to accept it).
        ///
        /// # Failure
        /// As [`execute`](Self::execute), plus conversion errors.
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// let n: Option<i64> = db.fetch_scalar("SELECT 40 + 2", ()).await?;
        /// assert_eq!(n, Some(42));
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn fetch_scalar<'q, T: $crate::FromValue + Send + 'static>(
            &'q self,
            sql: &'q str,
            params: impl $crate::Params,
        ) -> impl ::std::future::Future<Output = $crate::Result<Option<T>>> + Send + 'q {
            let params = $crate::Params::into_values(params);
            let target = self.target();
            async move { target?.fetch_scalar(sql, params).await }
        }

        /// Run one query and deserialize every row into `T` (serde, fields by column name;
        /// tuples by position).
        ///
        /// # Failure
        /// As [`execute`](Self::execute), plus [`Error::Deserialize`](crate::Error::Deserialize).
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// #[derive(serde::Deserialize)]
        /// struct User { id: i64, name: String }
        /// let db = aiolite::connect(":memory:").await?;
        /// let users: Vec<User> = db.fetch_all_as("SELECT 1 AS id, 'ann' AS name", ()).await?;
        /// assert_eq!((users[0].id, users[0].name.as_str()), (1, "ann"));
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn fetch_all_as<'q, T: ::serde::de::DeserializeOwned + Send + 'static>(
            &'q self,
            sql: &'q str,
            params: impl $crate::Params,
        ) -> impl ::std::future::Future<Output = $crate::Result<Vec<T>>> + Send + 'q {
            let params = $crate::Params::into_values(params);
            let target = self.target();
            async move { target?.fetch_all_as(sql, params).await }
        }

        /// Run one query and deserialize its first row into `T`.
        ///
        /// # Failure
        /// As [`fetch_all_as`](Self::fetch_all_as).
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// let pair: Option<(i64, String)> = db.fetch_one_as("SELECT 1, 'x'", ()).await?;
        /// assert_eq!(pair, Some((1, "x".to_string())));
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn fetch_one_as<'q, T: ::serde::de::DeserializeOwned + Send + 'static>(
            &'q self,
            sql: &'q str,
            params: impl $crate::Params,
        ) -> impl ::std::future::Future<Output = $crate::Result<Option<T>>> + Send + 'q {
            let params = $crate::Params::into_values(params);
            let target = self.target();
            async move { target?.fetch_one_as(sql, params).await }
        }

        /// Start a query and return a [`Cursor`](crate::Cursor) that streams its rows in chunks
        /// of [`iter_chunk_size`](crate::ConnectOptions::iter_chunk_size) (the first chunk comes
        /// with this reply), so memory stays bounded whatever the result size.
        ///
        /// # Failure
        /// As [`execute`](Self::execute).
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// use futures::TryStreamExt;
        /// let db = aiolite::connect(":memory:").await?;
        /// let mut cur = db.query("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c LIMIT 1000) SELECT n FROM c", ()).await?;
        /// let mut sum = 0;
        /// while let Some(row) = cur.try_next().await? {
        ///     sum += row.get::<i64>(0)?;
        /// }
        /// assert_eq!(sum, 500_500);
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn query<'q>(
            &'q self,
            sql: &'q str,
            params: impl $crate::Params,
        ) -> impl ::std::future::Future<Output = $crate::Result<$crate::Cursor>> + Send + 'q {
            let params = $crate::Params::into_values(params);
            let target = self.target();
            async move { target?.query(sql, params).await }
        }

        /// Run a closure on the worker thread with the underlying `rusqlite::Connection` (the
        /// escape hatch for anything aiolite does not wrap). A panic inside becomes
        /// [`Error::Panicked`](crate::Error::Panicked), an open transaction is rolled back, and the
        /// connection stays usable.
        ///
        /// # Failure
        /// The closure's rusqlite error, converted; `Panicked`; `Closed`.
        ///
        /// # Example
        /// ```
        /// # futures::executor::block_on(async {
        /// let db = aiolite::connect(":memory:").await?;
        /// let v: i64 = db.call(|conn| conn.query_row("SELECT 6 * 7", [], |r| r.get(0))).await?;
        /// assert_eq!(v, 42);
        /// # Ok::<(), aiolite::Error>(()) }).unwrap();
        /// ```
        pub fn call<'q, F, R>(&'q self, f: F) -> impl ::std::future::Future<Output = $crate::Result<R>> + Send + 'q
        where
            F: FnOnce(&mut $crate::rusqlite::Connection) -> $crate::rusqlite::Result<R> + Send + 'static,
            R: Send + 'static,
        {
            let target = self.target();
            async move { target?.call(f).await }
        }
    };
}
pub(crate) use statement_api;

impl Connection {
    pub(crate) async fn open(opts: ConnectOptions) -> Result<Connection> {
        let shared = Arc::new(Shared::new(&opts));
        // Created first: if this future is dropped, the handle's drop tells the worker to stop.
        let conn = Connection {
            inner: Arc::new(Handle {
                shared: Arc::clone(&shared),
            }),
        };
        let slot = worker::spawn(opts, Arc::clone(&shared))?;
        WaitReply {
            shared: &shared,
            slot,
            id: 0,
            may_spin: false,
            done: false,
        }
        .await?;
        Ok(conn)
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        Arc::clone(&self.inner.shared)
    }

    #[inline]
    pub(crate) fn target(&self) -> Result<Target<'_>> {
        Ok(Target { conn: self, owner: 0 })
    }

    /// Submit `op` for transaction `owner` (0: none) and wait for its outcome.
    pub(crate) async fn request(&self, owner: u64, op: Op) -> Result<Reply> {
        let shared = self.shared();
        let id = shared.next_id();
        let slot = Slot::new();
        let job = Job {
            id,
            owner,
            op,
            reply: ReplyTo::Slot(Arc::clone(&slot)),
        };
        shared.queue.submit(job, id).await?;
        let may_spin = shared.should_spin();
        WaitReply {
            shared,
            slot,
            id,
            may_spin,
            done: false,
        }
        .await
    }

    /// Run `f` on the worker with the connection state (crate-internal features).
    pub(crate) async fn with_state<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut worker::ConnState) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let op = Op::Internal(Box::new(move |st| f(st).map(|r| Box::new(r) as Box<dyn Any + Send>)));
        match self.request(0, op).await? {
            Reply::Any(b) => b.downcast::<R>().map(|b| *b).map_err(|_| unexpected("internal")),
            _ => Err(unexpected("internal")),
        }
    }

    /// Queue an internal command without waiting for room (one per caller at a time, from
    /// `poll` functions); its outcome arrives in the returned slot.
    pub(crate) fn start_internal(&self, f: worker::StateFn) -> Result<Arc<Slot>> {
        let shared = self.shared();
        let slot = Slot::new();
        let job = Job {
            id: shared.next_id(),
            owner: 0,
            op: Op::Internal(f),
            reply: ReplyTo::Slot(Arc::clone(&slot)),
        };
        if shared.queue.push_force(job) {
            Ok(slot)
        } else {
            Err(Error::Closed)
        }
    }

    /// Queue a cleanup command that nobody waits for (from `Drop`).
    pub(crate) fn send_cleanup(&self, owner: u64, op: Op) {
        let shared = self.shared();
        let job = Job {
            id: shared.next_id(),
            owner,
            op,
            reply: ReplyTo::Nobody,
        };
        shared.queue.push_force(job);
    }

    statement_api!();

    /// Commit the open transaction, if any (a no-op in autocommit mode) — the way to end an
    /// implicit transaction opened under [`isolation_level`](ConnectOptions::isolation_level)
    /// or a `BEGIN` statement. Waits while another handle's [`Transaction`] is open.
    ///
    /// # Failure
    /// SQLite's error (e.g. a deferred foreign key violation); the transaction stays open.
    pub async fn commit(&self) -> Result<()> {
        self.request(0, Op::Commit).await.map(drop)
    }

    /// Roll back the open transaction, if any (a no-op in autocommit mode).
    ///
    /// # Failure
    /// SQLite's error.
    pub async fn rollback(&self) -> Result<()> {
        self.request(0, Op::Rollback).await.map(drop)
    }

    /// `true` when a transaction is open, as of the last completed call (cheap, sync).
    pub fn in_transaction(&self) -> bool {
        self.shared().in_transaction()
    }

    /// Rows changed by `INSERT`/`UPDATE`/`DELETE` since the connection opened
    /// (`sqlite3_total_changes64`), as of the last completed call (cheap, sync).
    pub fn total_changes(&self) -> u64 {
        self.shared().total_changes()
    }

    /// Begin a transaction (`BEGIN DEFERRED`). See [`Transaction`].
    ///
    /// # Failure
    /// SQLite's error (e.g. `cannot start a transaction within a transaction` after a manual
    /// `BEGIN`).
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// let db = aiolite::connect(":memory:").await?;
    /// db.execute("CREATE TABLE t(x)", ()).await?;
    /// let tx = db.transaction().await?;
    /// tx.execute("INSERT INTO t VALUES (1)", ()).await?;
    /// tx.commit().await?;
    /// assert_eq!(db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await?, Some(1));
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn transaction(&self) -> Result<Transaction> {
        self.transaction_with(TransactionBehavior::Deferred).await
    }

    /// Begin a transaction with the given behavior (`BEGIN IMMEDIATE` for read-then-write
    /// transactions). See [`Transaction`].
    ///
    /// # Failure
    /// As [`transaction`](Self::transaction); `SQLITE_BUSY` if another connection holds the
    /// write lock longer than the busy timeout.
    pub async fn transaction_with(&self, behavior: TransactionBehavior) -> Result<Transaction> {
        Transaction::begin(self.clone(), behavior).await
    }

    /// Run `f` in a transaction: commit when it returns `Ok`, roll back when it returns `Err`
    /// or panics (the panic then continues). This is the scoped form of Python's FastAPI
    /// `get_db` dependency.
    ///
    /// `f` receives the [`Transaction`] by value; handles it leaks beyond the closure fail with
    /// [`Error::TransactionEnded`] once the transaction is over.
    ///
    /// # Failure
    /// `f`'s error (after rollback), or the error of `BEGIN` / `COMMIT`.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// let db = aiolite::connect(":memory:").await?;
    /// db.execute("CREATE TABLE t(x)", ()).await?;
    /// let n = db
    ///     .with_transaction(|tx| async move {
    ///         tx.execute("INSERT INTO t VALUES (1)", ()).await?;
    ///         tx.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await
    ///     })
    ///     .await?;
    /// assert_eq!(n, Some(1));
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn with_transaction<F, Fut, T, E>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(Transaction) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        crate::transaction::scoped(self.transaction().await?, f).await
    }

    /// Interrupt the command running now on the worker: its statement fails with
    /// `SQLITE_INTERRUPT` (within about a thousand SQLite virtual-machine instructions) and the
    /// connection stays usable. Sync; callable from any thread. A no-op when nothing runs;
    /// commands still queued, and other statements such as an open cursor's, are not
    /// affected. An interrupted write inside an explicit transaction may make SQLite roll the
    /// transaction back (its handle then reports [`Error::TransactionEnded`]).
    pub fn interrupt(&self) {
        self.shared().ctx.interrupt_current();
    }

    /// Close the connection: every command submitted before runs first (a transaction still
    /// open is rolled back), then SQLite is closed and the worker thread exits. Later calls on
    /// any clone fail with [`Error::Closed`]; a second `close` returns `Ok` at once.
    ///
    /// # Failure
    /// SQLite's error from closing.
    pub async fn close(&self) -> Result<()> {
        let shared = self.shared();
        let slot = Slot::new();
        let job = Job {
            id: shared.next_id(),
            owner: 0,
            op: Op::Close,
            reply: ReplyTo::Slot(Arc::clone(&slot)),
        };
        if !shared.queue.push_close(job) {
            return Ok(());
        }
        WaitReply {
            shared,
            slot,
            id: 0,
            may_spin: false,
            done: false,
        }
        .await
        .map(drop)
    }

    /// Close without waiting (sync, like aiosqlite's `stop()`): refuse new calls at once, let
    /// the worker run what is already queued, roll back an open transaction and close SQLite
    /// in the background. Safe to call from `Drop`, from any thread, and after the async
    /// runtime is gone.
    pub fn stop(&self) {
        let shared = self.shared();
        let job = Job {
            id: shared.next_id(),
            owner: 0,
            op: Op::Close,
            reply: ReplyTo::Nobody,
        };
        shared.queue.push_close(job);
    }

    /// `true` once [`close`](Self::close) was called (or the worker stopped).
    pub fn is_closed(&self) -> bool {
        self.shared().queue.is_closed()
    }

    /// The path (or URI) the connection was opened with.
    pub fn path(&self) -> &str {
        &self.shared().path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_sync() {
        assert_send_sync::<Connection>();
        assert_send_sync::<Transaction>();
        assert_send_sync::<Row>();
        assert_send_sync::<Value>();
        assert_send_sync::<Error>();
    }
}
