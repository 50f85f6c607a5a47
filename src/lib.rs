//! # aiolite — async SQLite for Rust
//!
//! aiolite brings Python's aiosqlite to Rust: `connect`, `execute`, `fetch_one` / `fetch_all`,
//! `execute_many`, `execute_script`, `commit`, rows by column name — every call `async`, none
//! blocking the executor, on any runtime (tokio, async-std, smol, `futures::executor`).
//!
//! ```
//! # futures::executor::block_on(async {
//! use aiolite::params;
//!
//! let db = aiolite::connect(":memory:").await?;
//! db.execute_script(
//!     "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE);",
//! )
//! .await?;
//! let id = db
//!     .execute_insert("INSERT INTO users(name, email) VALUES (?, ?)", params!["Ann", "ann@example.com"])
//!     .await?;
//! let row = db.fetch_one("SELECT * FROM users WHERE id = ?", [id]).await?.unwrap();
//! assert_eq!(row.get::<String>("name")?, "Ann");
//!
//! let err = db
//!     .execute("INSERT INTO users(name, email) VALUES (?, ?)", params!["Bob", "ann@example.com"])
//!     .await
//!     .unwrap_err();
//! assert!(err.is_unique_violation());
//!
//! db.with_transaction(|tx| async move {
//!     tx.execute("UPDATE users SET name = ? WHERE id = ?", params!["Anne", id]).await?;
//!     Ok::<_, aiolite::Error>(())
//! })
//! .await?;
//! db.close().await?;
//! # Ok::<(), aiolite::Error>(()) }).unwrap();
//! ```
//!
//! # Features
//! - `load-extension`: `Connection::enable_load_extension` / `load_extension` (off by default).
//! - `axum`: [`Error`] as an axum response (409 / 400 / 404 / 503 / 500 with a JSON body that
//!   never carries SQL) and the [`axum::Tx`] per-request transaction extractor.
//! - `dqlite`: the same API on a replicated [dqlite](https://dqlite.io) cluster,
//!   `connect("dqlite://host:port,…/db")`, through a pure-Rust client (see [`dqlite`]).
//!
//! # Design
//!
//! **One worker thread per connection.** [`connect`] starts a named thread (`aiolite-N`)
//! that opens the database and owns the SQLite handle for its whole life. Callers never touch
//! SQLite directly: every call becomes a *command* (an enum with owned SQL and owned parameter
//! [`Value`]s) pushed onto a bounded FIFO queue. The worker runs commands one at a time in
//! submission order, so SQLite is used from one thread at a time (it is opened in
//! `NOMUTEX` mode). A full queue makes callers wait asynchronously for room; it never blocks
//! a thread.
//!
//! **Replies.** Each command carries its own reply path. For Rust futures this is a one-shot
//! slot with an atomic "ready" flag and a waker; the worker fills it and wakes the task. The
//! path is pluggable (any `FnOnce(outcome)` callback), so other front ends, such as an asyncio
//! bridge that completes Python futures through an eventfd, reuse the same worker without
//! taking a lock of theirs on the worker thread. Replies are owned data ([`Row`] holds owned
//! values plus column names shared by all rows of a result), so nothing borrowed crosses the
//! thread boundary, and no rusqlite type appears in the API except in the [`call`](Connection::call) hatch.
//!
//! **Statements.** The worker keeps an LRU cache of prepared statements keyed by SQL text
//! (128 by default), binds parameters without copying them, and reads columns straight into
//! [`Value`]s. A [`Cursor`] keeps its statement open on the worker and streams rows in chunks
//! of `iter_chunk_size`; the first chunk comes back with the `query` reply (one round trip for
//! small results), and the next chunk is read while the current one is consumed. A reader that
//! finds the next chunk not there yet gets bigger chunks and keeps a second request queued, so
//! the worker never waits for it to ask. After the first chunk the worker writes each chunk's
//! values into one reused byte buffer and the cursor builds each [`Row`] when it is read, on
//! the reader's thread. A cursor holds at most three chunks whatever the size of the result.
//!
//! **Big results.** A `fetch_all` that returns more than 256 rows answers with those rows
//! at once and keeps stepping in the same command, sending the rest as encoded chunks; the
//! awaiting future builds the rows as the chunks arrive. The two threads share the work, and
//! the result's memory comes from the thread that will use and free it (a new worker thread's
//! malloc arena would otherwise have to grow for it). The command still ends before the next
//! one starts; dropping the future stops the statement. A read that ran past its inline
//! budget is remembered by its cached statement, which then goes straight to the worker.
//!
//! **Cancellation.** Dropping a call's future before its command started means the command
//! never runs. Dropping it while the command runs aborts the statement through SQLite's
//! progress handler when that is harmless (a read-only statement, or no explicit transaction
//! open); a write inside a transaction runs to completion, because interrupting it could roll
//! back the whole transaction behind its owner's back. [`Connection::interrupt`] (from any
//! thread) and [`statement_timeout`](ConnectOptions::statement_timeout) abort the running
//! command through the same handler, targeted by command id, so they never touch the next
//! command or an open cursor's statement, and without a timer thread. SQLite calls the
//! handler one last time after a statement has already finished (an autocommit write is
//! committed by then); the handler never aborts there, so no completed work is reported as
//! interrupted.
//!
//! **Transactions.** [`Connection::transaction`] returns a [`Transaction`] guard; while it is
//! open, commands from other handles are held back by the worker (in order) until it ends, so
//! nobody else's statement runs inside it. Dropping the guard rolls back.
//! [`Connection::with_transaction`] commits on `Ok` and rolls back on `Err` or panic. Python's
//! implicit transactions are available with [`ConnectOptions::isolation_level`].
//!
//! **Latency.** On virtual machines a parked thread takes tens of microseconds to wake, which
//! would dominate a round trip. Three bounded measures cut it: the worker spins briefly
//! before parking ([`ConnectOptions::worker_spin`]); a waiting caller spins briefly when the
//! reply is expected within microseconds ([`ConnectOptions::wait_spin`]); and short read-only
//! queries run directly on the caller's thread when the connection is idle
//! ([`ConnectOptions::inline_reads`]), aborted and re-queued to the worker if they exceed a
//! 50 µs budget, so the executor is never held longer than that. The waits adapt: a yield that
//! hands the core to a whole time slice of another thread (a busy machine) makes waits park at
//! once for a while, and a worker that finds itself on its caller's core moves to another core
//! it may use, at most every 5 ms (Linux; its affinity mask is narrowed for the move and put
//! back). For reads on several
//! threads at once, [`install_spinning_mutexes`] makes SQLite's own mutexes spin before they
//! sleep (process-wide, opt-in).
//!
//! **Backends.** The worker runs commands against a backend: local SQLite, or (feature
//! `dqlite`) a remote dqlite cluster over its wire protocol. The transaction gate,
//! cancellation of queued work and the reply paths belong to the worker, so every backend
//! gets them; features that need a local SQLite handle (`call`, hooks, blobs, backups, the
//! CRUD helpers' schema lookups) return [`Error::Unsupported`] on a remote one.
//!
//! **Lifecycle.** [`Connection::close`] runs everything queued before it, rolls back an open
//! transaction, closes SQLite and ends the thread; later calls fail with [`Error::Closed`].
//! Dropping the last handle (clones, transactions and cursors count) does the same in the
//! background. A panic in user code run by the worker ([`call`](Connection::call) closures,
//! callbacks) is caught and reported as [`Error::Panicked`]; the connection stays usable. A
//! panic in the worker itself fails every waiting call instead of leaving it hanging. Worker
//! threads never keep a process alive at exit.
//!
//! **Notes.** The bundled SQLite enforces foreign keys by default (`SQLITE_DEFAULT_FOREIGN_KEYS=1`;
//! Python's `sqlite3` does not). `fetch_*_as` matches struct fields to column names exactly,
//! while [`Row::get`] ignores ASCII case.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(clippy::all)]

mod anchor;
#[cfg(feature = "axum")]
pub mod axum;
mod backup;
mod blob;
mod connection;
pub mod crud;
mod cursor;
mod de;
#[cfg(feature = "dqlite")]
pub mod dqlite;
mod dump;
mod error;
mod executor;
mod functions;
mod hooks;
pub mod migrate;
mod mutex;
mod options;
#[doc(hidden)]
pub mod params;
mod pipe;
mod pool;
mod queue;
pub mod raw;
mod reply;
mod row;
mod spin;
mod sql;
mod stmt;
mod transaction;
mod value;
mod worker;

pub use backup::{BackupOptions, BackupProgress, BackupTarget};
pub use blob::Blob;
pub use connection::{Connection, connect};
pub use cursor::Cursor;
pub use error::{Error, ErrorCode, Result};
pub use executor::Executor;
pub use functions::Aggregate;
pub use hooks::{AuthRequest, Authorization, auth};
pub use mutex::{install_spinning_mutexes, sqlite_mutex_sleeps};
pub use options::{ConnectOptions, IsolationLevel, RECOMMENDED_PRAGMAS, TransactionBehavior};
pub use params::Params;
pub use pool::{Pool, PoolConnection, PoolOptions, PoolStats};
pub use row::{Column, Row, RowIndex};
pub use transaction::{Savepoint, Transaction};
pub use value::{FromValue, ToValue, Value, ValueType};
pub use worker::ExecResult;

/// Embed a folder of `<version>_<name>.sql` files as a [`migrate::Migrator`] at compile
/// time (path relative to the crate's `Cargo.toml`, default `"migrations"`).
///
/// ```
/// # futures::executor::block_on(async {
/// let db = aiolite::connect(":memory:").await?;
/// let migrator = aiolite::embed_migrations!("examples/migrations");
/// migrator.run(&db).await?;
/// assert!(aiolite::crud::table_exists(&db, "users").await?);
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
pub use aiolite_macros::embed_migrations;

/// The rusqlite crate aiolite is built on (with SQLite bundled), for the
/// [`call`](Connection::call) hatch.
pub use rusqlite;
