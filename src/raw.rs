//! Low-level access to a connection's worker, for building other front ends.
//!
//! The async API of [`Connection`] is one front end over the worker; this module is the door
//! for others — an asyncio bridge, a callback-based C API, a test harness. A [`Command`] is
//! submitted with [`Connection::submit`] together with any `FnOnce(Result<Reply>)` callback,
//! which the worker calls with the outcome, on its own thread. The worker holds no lock of the
//! front end's while running SQL, and the callback is the only code of the front end it runs:
//! keep it short and non-blocking (push the reply to a queue, write an eventfd, …).
//!
//! Commands from `submit` run in submission order with everything else sent to the
//! connection, and wait behind an open [`Transaction`](crate::Transaction) of another handle
//! like any statement.
//!
//! [`Command::cursor_execute`] and its `_many` / `_script` forms serve DB-API front ends (the
//! Python package `aiolite`): one statement's first rows together with its change count and
//! last insert rowid, after an optional [`Prelude`] (Python's implicit `BEGIN` / `COMMIT`),
//! all in one command.
//!
//! ```
//! # futures::executor::block_on(async {
//! use std::sync::mpsc;
//! use aiolite::raw::{Command, Reply};
//!
//! let db = aiolite::connect(":memory:").await?;
//! let (tx, rx) = mpsc::channel();
//! db.submit(Command::fetch_scalar("SELECT 40 + 2", ()), move |outcome| {
//!     tx.send(outcome).unwrap();
//! })?;
//! match rx.recv().unwrap()? {
//!     Reply::Scalar(Some(v)) => assert_eq!(v.as_i64(), Some(42)),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), aiolite::Error>(()) }).unwrap();
//! ```

use std::any::Any;
use std::fmt;

use crate::connection::Connection;
use crate::error::Result;
use crate::options::TransactionBehavior;
use crate::params::{ParamValues, Params};
use crate::reply::ReplyTo;
use crate::worker::{Backend, ConnState, Job, Op};

pub use crate::worker::{CursorChunk, Reply};

/// One command for a connection's worker. Build it with the constructors below.
pub struct Command {
    pub(crate) op: Op,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.op {
            Op::Execute { .. } => "execute",
            Op::ExecuteInsert { .. } => "execute_insert",
            Op::ExecuteMany { .. } => "execute_many",
            Op::Script { .. } => "execute_script",
            Op::FetchAll { .. } => "fetch_all",
            Op::FetchOne { .. } => "fetch_one",
            Op::FetchScalar { .. } => "fetch_scalar",
            Op::Query { .. } => "query",
            Op::CursorNext { .. } => "cursor_next",
            Op::CursorClose { .. } => "cursor_close",
            Op::Commit => "commit",
            Op::Rollback => "rollback",
            Op::Call(_) => "call",
            _ => "internal",
        };
        f.debug_struct("Command").field("op", &name).finish()
    }
}

impl Command {
    /// `execute` → [`Reply::Exec`].
    pub fn execute(sql: impl Into<Box<str>>, params: impl Params) -> Command {
        Command {
            op: Op::Execute {
                sql: sql.into(),
                params: params.into_values(),
            },
        }
    }

    /// `execute_many` → [`Reply::Changes`].
    pub fn execute_many<I>(sql: impl Into<Box<str>>, rows: I) -> Command
    where
        I: IntoIterator,
        I::Item: Params,
    {
        Command {
            op: Op::ExecuteMany {
                sql: sql.into(),
                rows: rows.into_iter().map(Params::into_values).collect(),
            },
        }
    }

    /// `execute_script` → [`Reply::Unit`].
    pub fn execute_script(sql: impl Into<Box<str>>) -> Command {
        Command {
            op: Op::Script { sql: sql.into() },
        }
    }

    /// `fetch_all` → [`Reply::Rows`].
    pub fn fetch_all(sql: impl Into<Box<str>>, params: impl Params) -> Command {
        Command {
            op: Op::FetchAll {
                sql: sql.into(),
                params: params.into_values(),
                stream: false,
            },
        }
    }

    /// `fetch_one` → [`Reply::Row`].
    pub fn fetch_one(sql: impl Into<Box<str>>, params: impl Params) -> Command {
        Command {
            op: Op::FetchOne {
                sql: sql.into(),
                params: params.into_values(),
            },
        }
    }

    /// `fetch_scalar` → [`Reply::Scalar`].
    pub fn fetch_scalar(sql: impl Into<Box<str>>, params: impl Params) -> Command {
        Command {
            op: Op::FetchScalar {
                sql: sql.into(),
                params: params.into_values(),
            },
        }
    }

    /// Start a streaming query under the caller-chosen id `cursor` (take one from
    /// [`Connection::new_cursor_id`]) → [`Reply::Chunk`] with the first `chunk` rows. Unless
    /// the chunk says `done`, the statement stays open until [`Command::cursor_close`] (or
    /// the end of the rows).
    pub fn query(cursor: u64, sql: impl Into<Box<str>>, params: impl Params, chunk: usize) -> Command {
        Command {
            op: Op::Query {
                cursor,
                sql: sql.into(),
                params: params.into_values(),
                chunk: chunk.max(1),
            },
        }
    }

    /// The next `n` rows of cursor `cursor` → [`Reply::Chunk`] (empty and `done` for an
    /// unknown or finished cursor).
    pub fn cursor_next(cursor: u64, n: usize) -> Command {
        Command {
            op: Op::CursorNext {
                cursor,
                n: n.max(1),
                buf: Vec::new(),
                encoded: None,
            },
        }
    }

    /// Finalize cursor `cursor`'s statement → [`Reply::Unit`].
    pub fn cursor_close(cursor: u64) -> Command {
        Command {
            op: Op::CursorClose { cursor },
        }
    }

    /// Commit the open transaction, if any → [`Reply::Unit`].
    pub fn commit() -> Command {
        Command { op: Op::Commit }
    }

    /// Roll back the open transaction, if any → [`Reply::Unit`].
    pub fn rollback() -> Command {
        Command { op: Op::Rollback }
    }

    /// Run `f` on the worker with the rusqlite connection → [`Reply::Any`] holding `f`'s
    /// return value. A panic becomes [`Error::Panicked`](crate::Error::Panicked).
    pub fn call<F>(f: F) -> Command
    where
        F: FnOnce(&mut rusqlite::Connection) -> Box<dyn Any + Send> + Send + 'static,
    {
        Command {
            op: Op::Call(Box::new(f)),
        }
    }
}

/// Transaction control that a DB-API front end runs before a statement, in the same command
/// (nothing else runs in between): Python `sqlite3`'s legacy implicit transactions. The front
/// end decides per statement (Python begins before `INSERT`/`UPDATE`/`DELETE`/`REPLACE` when
/// an `isolation_level` is set, and commits before `executescript`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prelude {
    /// `BEGIN <behavior>` when no transaction is open.
    Begin(TransactionBehavior),
    /// `COMMIT` when a transaction is open.
    Commit,
}

/// What a [`Command::cursor_execute`] (and its `_many` / `_script` forms) did: the reply of a
/// DB-API cursor, which needs the rows *and* `rowcount` / `lastrowid` of one statement.
#[derive(Debug)]
#[non_exhaustive]
pub struct Executed {
    /// The first rows (a statement that returns none: empty and `done`). Unless `done`, the
    /// statement stays open under the cursor id given, as after [`Command::query`].
    pub chunk: CursorChunk,
    /// Rows inserted, updated or deleted by the statement itself (`execute_many`: by all of
    /// them; a script: `0`), as [`ExecResult::changes`](crate::ExecResult::changes).
    pub changes: u64,
    /// `sqlite3_last_insert_rowid()` afterwards.
    pub last_insert_rowid: i64,
}

fn prelude(st: &mut ConnState, prelude: Option<Prelude>) -> Result<()> {
    match prelude {
        Some(Prelude::Begin(b)) if Backend::autocommit(st) => Backend::simple(st, b.begin_sql()),
        Some(Prelude::Commit) if !Backend::autocommit(st) => Backend::simple(st, "COMMIT"),
        _ => Ok(()),
    }
}

/// What a DB-API command body reports: its rows, and its row count when it knows it better
/// than `sqlite3_changes` (`execute_many`'s total).
type Body = Box<dyn FnOnce(&mut ConnState) -> Result<(CursorChunk, Option<u64>)> + Send>;

/// Run `body` after `p`, and report what it changed.
fn dbapi(p: Option<Prelude>, body: Body) -> Command {
    Command {
        op: Op::Internal(Box::new(move |st| {
            prelude(st, p)?;
            let before = Backend::total_changes(st);
            let (chunk, counted) = body(st)?;
            let changes = match counted {
                Some(n) => n,
                None if Backend::total_changes(st) != before => st.conn().changes(),
                None => 0,
            };
            let last_insert_rowid = st.conn().last_insert_rowid();
            Ok(Box::new(Executed {
                chunk,
                changes,
                last_insert_rowid,
            }) as Box<dyn Any + Send>)
        })),
    }
}

fn no_rows() -> CursorChunk {
    CursorChunk {
        columns: std::sync::Arc::from(Vec::new()),
        rows: Vec::new(),
        done: true,
    }
}

/// Commands for DB-API (PEP 249) front ends such as the Python package: a cursor's `execute`
/// needs the first rows, `rowcount` and `lastrowid` of one statement from one round trip, and
/// Python's implicit transactions need a conditional `BEGIN`/`COMMIT` in the same command
/// (so nothing runs in between, and a failed `BEGIN` stops the statement). They run on local
/// SQLite connections only ([`Error::Unsupported`](crate::Error::Unsupported) elsewhere).
impl Command {
    /// Run one statement like [`Command::query`] (under the caller-chosen id `cursor`, first
    /// `chunk` rows), after `prelude` → [`Reply::Any`] holding an [`Executed`]. A statement
    /// that returns no rows runs to completion and answers an empty, `done` chunk.
    pub fn cursor_execute(
        cursor: u64,
        sql: impl Into<Box<str>>,
        params: impl Params,
        chunk: usize,
        prelude: Option<Prelude>,
    ) -> Command {
        let sql: Box<str> = sql.into();
        let params = params.into_values();
        let chunk = chunk.max(1);
        dbapi(
            prelude,
            Box::new(move |st| Ok((Backend::query(st, cursor, &sql, params, chunk)?, None))),
        )
    }

    /// `execute_many` after `prelude` → [`Reply::Any`] holding an [`Executed`] (no rows;
    /// `changes` is the total of all parameter sets). Like Python's `sqlite3`, it refuses a
    /// read-only statement (`SELECT`, …) with [`Error::InvalidArgument`](crate::Error) before
    /// running anything.
    pub fn cursor_execute_many<I>(sql: impl Into<Box<str>>, rows: I, prelude: Option<Prelude>) -> Command
    where
        I: IntoIterator,
        I::Item: Params,
    {
        let sql: Box<str> = sql.into();
        let rows: Vec<ParamValues> = rows.into_iter().map(Params::into_values).collect();
        dbapi(
            prelude,
            Box::new(move |st| Ok((no_rows(), Some(st.execute_many_as(&sql, &rows, true)?)))),
        )
    }

    /// `execute_script` after `prelude` → [`Reply::Any`] holding an [`Executed`] (no rows,
    /// `changes` 0).
    pub fn cursor_execute_script(sql: impl Into<Box<str>>, prelude: Option<Prelude>) -> Command {
        let sql: Box<str> = sql.into();
        dbapi(
            prelude,
            Box::new(move |st| {
                Backend::script(st, &sql)?;
                Ok((no_rows(), Some(0)))
            }),
        )
    }
}

impl Connection {
    /// Submit a command without waiting: `reply` is called on the worker thread with the
    /// outcome. See the [`raw`](crate::raw) module.
    ///
    /// # Failure
    /// [`Error::QueueFull`](crate::Error::QueueFull) when the queue is at its capacity (the
    /// command was not queued: retry later), [`Error::Closed`](crate::Error::Closed) after
    /// `close()`. In both cases `reply` is not called.
    pub fn submit(&self, command: Command, reply: impl FnOnce(Result<Reply>) + Send + 'static) -> Result<()> {
        let shared = self.shared();
        shared.queue.push_now(Job {
            id: shared.next_id(),
            owner: 0,
            op: command.op,
            reply: ReplyTo::Sink(Box::new(reply)),
        })
    }

    /// A fresh id for [`Command::query`].
    pub fn new_cursor_id(&self) -> u64 {
        self.shared().next_id()
    }

    /// Read transactions this connection's read anchor has begun (one per millisecond while
    /// it holds; see
    /// [`ConnectOptions::anchor_reads`](crate::ConnectOptions::anchor_reads)), and whether it
    /// is at work now.
    pub fn read_anchor(&self) -> (u64, bool) {
        let a = &self.shared().anchor;
        (
            a.holds.load(std::sync::atomic::Ordering::Relaxed),
            a.active.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Commands submitted to this connection and not finished yet (queued, waiting behind a
    /// transaction, or running).
    pub fn pending(&self) -> usize {
        self.shared().queue.pending()
    }
}
