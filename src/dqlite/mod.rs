//! dqlite backend (cargo feature `dqlite`): aiolite's API on a [dqlite](https://dqlite.io)
//! cluster, through a pure-Rust client of dqlite's wire protocol (no C code, no second SQLite).
//!
//! When one SQLite file on one machine is no longer enough, dqlite replicates real SQLite
//! through Raft, with interactive transactions and automatic leader failover. Open it like any
//! database, with every node you know (any of them is enough to find the others):
//!
//! ```no_run
//! # futures::executor::block_on(async {
//! let db = aiolite::connect("dqlite://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003/app").await?;
//! db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT)", ()).await?;
//! db.with_transaction(|tx| async move {
//!     tx.execute("INSERT INTO t(name) VALUES (?)", ["ann"]).await?;
//!     Ok::<_, aiolite::Error>(())
//! })
//! .await?;
//! # Ok::<(), aiolite::Error>(()) }).unwrap();
//! ```
//!
//! # Address
//!
//! `dqlite://host:port[,host:port…]/database[?option=value&…]`, hosts by name, IPv4 or
//! `[IPv6]`. Give the addresses exactly as the nodes advertise them (`127.0.0.1:9001` is not
//! `localhost:9001` for dqlite; a node that names another address as leader is followed once).
//! Options, as durations (`250ms`, `3s`, or bare seconds):
//! - `leader_timeout` (default 20 s): how long a call looks for a leader (including
//!   `connect`) before failing with [`Error::Unavailable`](crate::Error::Unavailable);
//! - `connect_timeout` (default 5 s): dialing a node, and its answer to a leader probe;
//! - `timeout` (default 60 s, or [`statement_timeout`](crate::ConnectOptions::statement_timeout)
//!   when set): how long to wait for any answer once a request is sent.
//!
//! A malformed URL is [`Error::InvalidArgument`](crate::Error::InvalidArgument). Of
//! [`ConnectOptions`], the backend uses `busy_timeout`,
//! `isolation_level`, `pragmas` (re-applied on every reconnection), `read_only`,
//! `statement_cache_capacity`, `statement_timeout` and `iter_chunk_size`.
//!
//! # What works, what does not
//!
//! The statement API: `execute`, `execute_insert`, `execute_many`, `execute_script`,
//! `fetch_all` / `fetch_one` / `fetch_scalar`, `fetch_*_as`, `query` (a [`Cursor`](crate::Cursor)
//! streaming dqlite's ROWS batches), and transactions: `transaction()`, `commit` / `rollback`,
//! savepoints, `with_transaction`, Python-style implicit transactions. Positional parameters;
//! named ones (`:a`, `@a`, `$a`) are mapped to positions by aiolite, following SQLite's
//! numbering rules, since dqlite gives only the parameter count (a statement aiolite cannot
//! number the same way as the server is an `Unsupported` error: use positional parameters).
//!
//! What needs a local SQLite handle is [`Error::Unsupported`](crate::Error::Unsupported):
//! `call`, user functions, aggregates and collations, hooks, the authorizer, progress
//! handlers, trace, blobs, backups, `serialize`, `iterdump`, and the CRUD helpers and
//! migrations that read the local schema. `Connection::interrupt` does nothing, and dropping a
//! call's future does not stop a statement already sent (it runs to completion). Column
//! declared types are unknown ([`Column::decl_type`](crate::Column::decl_type) is `None`).
//! dqlite 1.11 (Debian 12) takes at most 255 parameters per statement (a clear error says so);
//! newer servers take more.
//!
//! # Values
//!
//! `Null`, `Integer`, `Real`, `Text` and `Blob` round-trip exactly (floats bit for bit; NaN is
//! stored as NULL, as by SQLite). Text cannot contain a NUL character on dqlite's wire: such a
//! value is an `InvalidArgument` error before anything is sent. dqlite re-labels values by
//! the column's declared type: in `DATETIME`/`DATE`/`TIMESTAMP` columns an integer comes back
//! as `Integer` (dqlite's UNIXTIME code) and text as `Text` (ISO8601), in `BOOLEAN` columns
//! an integer comes back as `Integer` (the stored value, not just 0/1). dqlite also turns a
//! NULL in those columns into `""` (date columns) or `0` (BOOLEAN): aiolite reads the `""` of
//! a date column back as `Null` (as go-dqlite does), but a BOOLEAN NULL stays `0`.
//!
//! **Server crash.** A `SELECT` returning a REAL or a BLOB from a `DATETIME`/`DATE`/`TIMESTAMP`
//! column, or anything but an integer (or NULL) from a `BOOLEAN` column, fails an assertion in
//! the server (`query.c` in dqlite 1.11.1 and later) and **aborts the leader node**; after
//! failover the same query aborts the next leader. Never store such values. aiolite cannot see
//! the declared types before the server does; it only avoids making it worse: a read whose
//! connection dropped is re-sent only to the same, still-running leader.
//!
//! # Connections, leader discovery, reconnection
//!
//! Every aiolite connection is one TCP connection to the leader, owned by the connection's
//! worker thread (blocking I/O there; the async API, ordering and queueing come from the
//! worker). To find the leader, the last known leader is asked first; otherwise every known
//! node is probed in parallel (dial, handshake, LEADER), and the first that names itself wins
//! (a node naming another address sends the probe there once). The node list is refreshed
//! from the leader's CLUSTER answer, voters first. Without a leader, probing is repeated with
//! a backoff of 100 ms doubling to 1 s until `leader_timeout`. Statements are prepared once
//! per leader connection (an LRU cache of `statement_cache_capacity`); after reconnection they
//! are prepared again.
//!
//! Before each request the idle connection is checked: one closed by the server (a node that
//! died or lost leadership while idle) is replaced before anything is sent.
//!
//! # Failures and retries
//!
//! | what happens | outside a transaction | inside a transaction |
//! |---|---|---|
//! | no leader found within `leader_timeout` | [`Unavailable`](crate::Error::Unavailable) | [`Unavailable`](crate::Error::Unavailable) (after the transaction was lost) |
//! | connection found dead before sending | reconnect, re-send | [`LeaderChanged`](crate::Error::LeaderChanged) (transaction gone) |
//! | "not leader" (10250), stale ids (12) | reconnect, re-send (nothing ran) | [`LeaderChanged`](crate::Error::LeaderChanged) |
//! | "leadership lost" (10506) | reconnect, re-send (per dqlite's FAQ such a write is never applied) | [`LeaderChanged`](crate::Error::LeaderChanged), also for `COMMIT` (not applied) |
//! | connection lost after sending a read | re-sent once if the same node still leads, else [`LeaderChanged`](crate::Error::LeaderChanged) | [`LeaderChanged`](crate::Error::LeaderChanged) |
//! | connection lost after sending a write | [`CommitOutcomeUnknown`](crate::Error::CommitOutcomeUnknown) | [`LeaderChanged`](crate::Error::LeaderChanged) |
//! | connection lost after sending `COMMIT` | — | [`CommitOutcomeUnknown`](crate::Error::CommitOutcomeUnknown) |
//! | connection lost during `ROLLBACK` | — | success (the transaction is rolled back either way) |
//! | no answer within `timeout` | reads: [`StatementTimeout`](crate::Error::StatementTimeout); writes: [`CommitOutcomeUnknown`](crate::Error::CommitOutcomeUnknown) | [`LeaderChanged`](crate::Error::LeaderChanged); `COMMIT`: [`CommitOutcomeUnknown`](crate::Error::CommitOutcomeUnknown) |
//! | `SQLITE_BUSY` (dqlite has no busy timeout) | re-sent with SQLite's backoff until `busy_timeout`, then the `SQLITE_BUSY` error | same |
//! | SQL error | [`Error::Sqlite`](crate::Error::Sqlite) with the server's code (`is_unique_violation()`, `is_busy()` work) | same; if SQLite rolled the transaction back, the transaction handle reports it ended |
//!
//! A transaction is never replayed: after [`LeaderChanged`](crate::Error::LeaderChanged) its
//! handle reports [`TransactionEnded`](crate::Error::TransactionEnded), and the application
//! retries the whole transaction.
//!
//! # Transactions
//!
//! dqlite does not report whether a transaction is open, so aiolite tracks it from the
//! statements that succeed (`BEGIN`, `COMMIT`/`END`, `ROLLBACK`, `SAVEPOINT`, `RELEASE`,
//! `ROLLBACK TO`, whether run through the transaction API, `execute` or `execute_script`),
//! from connection losses (which roll back), and, after a SQL error inside a transaction that
//! may have made SQLite roll back (any but `SQLITE_ERROR`), by asking the server (`BEGIN`
//! succeeds only outside a transaction, and is rolled back at once). Writes are replicated at
//! `COMMIT`; there is one writer at a time in the cluster.
//!
//! # Cursors
//!
//! A query's rows arrive in ROWS batches (about 4 KB each) that dqlite sends without further
//! requests, and only one request may be in flight on a connection. A cursor read to the end
//! without other statements in between holds at most `iter_chunk_size` rows plus one batch.
//! When another command arrives on the same connection while a cursor's rows are still
//! arriving, that cursor's remaining rows are read into its buffer first (memory grows with the
//! rest of the result), so both keep working. Dropping or closing a cursor early sends
//! INTERRUPT and skips the batches still coming (dqlite 1.11 sends them all anyway), so the
//! connection stays usable. A cursor whose connection is lost mid-stream returns its buffered
//! rows, then [`LeaderChanged`](crate::Error::LeaderChanged).

mod backend;
mod cluster;
mod conn;
mod proto;
mod sqltext;

use crate::error::Result;
use crate::options::ConnectOptions;
use crate::worker::Backend;

/// Open a `dqlite://host:port[,host:port…]/database` connection.
pub(crate) fn open_backend(opts: &ConnectOptions) -> Result<Box<dyn Backend>> {
    Ok(Box::new(backend::DqliteBackend::open(opts)?))
}

/// Fuzzing entry point (not API): split `bytes` into frames and decode each as a dqlite
/// response (and request). Panics only on a decoder bug: a frame that decodes but does not
/// re-encode to the same message.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) -> usize {
    proto::decode_stream(bytes)
}
