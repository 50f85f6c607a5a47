//! How to open a connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::connection::Connection;
use crate::error::{Error, Result};

/// How a transaction starts: `BEGIN DEFERRED`, `BEGIN IMMEDIATE` or `BEGIN EXCLUSIVE`.
///
/// See <https://sqlite.org/lang_transaction.html>. `Deferred` takes locks when first needed;
/// `Immediate` takes the write lock at once (use it for read-then-write transactions, so they
/// cannot fail with `SQLITE_BUSY` half-way); `Exclusive` also keeps readers out in
/// rollback-journal mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TransactionBehavior {
    /// `BEGIN DEFERRED` (SQLite's default).
    #[default]
    Deferred,
    /// `BEGIN IMMEDIATE`.
    Immediate,
    /// `BEGIN EXCLUSIVE`.
    Exclusive,
}

/// The `isolation_level` of Python's `sqlite3`: with `Some(level)`, an implicit
/// `BEGIN <level>` is issued before `INSERT`/`UPDATE`/`DELETE`/`REPLACE` when no transaction is
/// open, and `commit()` ends it. Same variants as [`TransactionBehavior`].
pub type IsolationLevel = TransactionBehavior;

impl TransactionBehavior {
    pub(crate) fn begin_sql(self) -> &'static str {
        match self {
            TransactionBehavior::Deferred => "BEGIN DEFERRED",
            TransactionBehavior::Immediate => "BEGIN IMMEDIATE",
            TransactionBehavior::Exclusive => "BEGIN EXCLUSIVE",
        }
    }
}

/// The pragmas [`ConnectOptions::recommended_pragmas`] applies, in order.
pub const RECOMMENDED_PRAGMAS: [(&str, &str); 5] = [
    ("journal_mode", "WAL"),
    ("foreign_keys", "ON"),
    ("synchronous", "NORMAL"),
    ("cache_size", "-64000"),
    ("temp_store", "MEMORY"),
];

/// Options for opening a [`Connection`]; [`aiolite::connect`](crate::connect) uses the defaults.
///
/// ```
/// # futures::executor::block_on(async {
/// use std::time::Duration;
/// use aiolite::{ConnectOptions, IsolationLevel};
/// let dir = tempfile::tempdir().unwrap();
/// let db = ConnectOptions::new(dir.path().join("app.db"))
///     .busy_timeout(Duration::from_secs(5))
///     .isolation_level(Some(IsolationLevel::Deferred))
///     .recommended_pragmas()
///     .statement_cache_capacity(128)
///     .iter_chunk_size(64)
///     .open()
///     .await?;
/// let mode: Option<String> = db.fetch_scalar("PRAGMA journal_mode", ()).await?;
/// assert_eq!(mode.as_deref(), Some("wal"));
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub(crate) path: PathBuf,
    pub(crate) busy_timeout: Duration,
    pub(crate) isolation_level: Option<IsolationLevel>,
    pub(crate) pragmas: Vec<(String, String)>,
    pub(crate) read_only: bool,
    pub(crate) create_if_missing: bool,
    pub(crate) statement_cache_capacity: usize,
    pub(crate) iter_chunk_size: usize,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) queue_capacity: usize,
    pub(crate) worker_spin: Duration,
    pub(crate) wait_spin: Duration,
    pub(crate) inline_reads: bool,
    pub(crate) inline_budget: Duration,
    /// Pool readers: refuse statements that write (`sqlite3_stmt_readonly`) before running
    /// them, so the pool can send them to the writer.
    pub(crate) reject_writes: bool,
    pub(crate) anchor_reads: bool,
}

impl ConnectOptions {
    /// Options for the database at `path`: a file path (`&str`, `String`, `&Path`, `PathBuf`),
    /// `":memory:"` for a private in-memory database, or a `file:` URI
    /// (<https://sqlite.org/uri.html>, e.g. `file:app.db?mode=ro`).
    pub fn new(path: impl AsRef<Path>) -> Self {
        ConnectOptions {
            path: path.as_ref().to_path_buf(),
            busy_timeout: Duration::from_secs(5),
            isolation_level: None,
            pragmas: Vec::new(),
            read_only: false,
            create_if_missing: true,
            statement_cache_capacity: 128,
            iter_chunk_size: 64,
            statement_timeout: None,
            queue_capacity: 1024,
            worker_spin: Duration::from_micros(50),
            wait_spin: Duration::from_micros(20),
            inline_reads: true,
            inline_budget: Duration::from_micros(50),
            reject_writes: false,
            anchor_reads: false,
        }
    }

    /// The database path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long SQLite waits for a lock held by another connection before failing with
    /// `SQLITE_BUSY` (`sqlite3_busy_timeout`). Default 5 s, like aiosqlite's `timeout=5.0`.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Python `sqlite3`-style implicit transactions (see [`IsolationLevel`]). Default `None`:
    /// autocommit, every statement commits unless a transaction was begun.
    pub fn isolation_level(mut self, level: Option<IsolationLevel>) -> Self {
        self.isolation_level = level;
        self
    }

    /// Set a pragma at open (`PRAGMA name = value`), in the order given. After setting, the
    /// value is read back; a difference is [`Error::PragmaMismatch`] at open (except
    /// `journal_mode=WAL` on an in-memory database, which SQLite keeps as `memory`).
    ///
    /// The name must be an identifier (optionally `schema.name`); a value that is not a number
    /// or a bare word is quoted as a string literal.
    pub fn pragma(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.pragmas.push((name.into(), value.into()));
        self
    }

    /// The recommended pragmas: `journal_mode=WAL`, `foreign_keys=ON`, `synchronous=NORMAL`,
    /// `cache_size=-64000` (64 MB), `temp_store=MEMORY` ([`RECOMMENDED_PRAGMAS`]).
    pub fn recommended_pragmas(mut self) -> Self {
        for (k, v) in RECOMMENDED_PRAGMAS {
            self.pragmas.push((k.to_owned(), v.to_owned()));
        }
        self
    }

    /// Open read-only (`SQLITE_OPEN_READONLY`). Default `false`.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Create the database file if it does not exist (`SQLITE_OPEN_CREATE`). Default `true`.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// How many prepared statements the connection keeps (LRU, keyed by SQL text). Default
    /// 128; `0` disables the cache.
    pub fn statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.statement_cache_capacity = capacity;
        self
    }

    /// Rows per hop when a [`Cursor`](crate::Cursor) streams (aiosqlite's `iter_chunk_size`).
    /// Default 64. A cursor holds at most three chunks in memory (see [`Cursor`](crate::Cursor)).
    pub fn iter_chunk_size(mut self, rows: usize) -> Self {
        self.iter_chunk_size = rows.max(1);
        self
    }

    /// Interrupt any statement that runs longer than `timeout`; it fails with
    /// [`Error::StatementTimeout`]. The limit applies to each statement execution (each row of
    /// `execute_many`, each statement of a script, each chunk of a cursor), not to time spent
    /// queued. Interrupting a write inside an explicit transaction may make SQLite roll the
    /// whole transaction back; the transaction handle then reports
    /// [`Error::TransactionEnded`]. Default: none.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// How many commands may wait in the worker's queue; further callers wait (asynchronously)
    /// for room. Default 1024.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// How long the worker thread spins, looking for the next command, before it parks. A
    /// parked thread takes tens of microseconds to wake on virtual machines, so a short spin
    /// makes back-to-back awaited calls several times faster, at the cost of that much CPU
    /// after each burst. The spin is adaptive: a few rounds of `pause`, then
    /// `std::thread::yield_now()`, so a thread that shares the core is not starved. A yield
    /// slower than 50 µs (a busy machine: it waited out someone's time slice) makes the waits
    /// park at once for a while (10 ms, doubling up to 1 s while yields stay slow); a worker
    /// that finds itself on the core of the thread that submitted the last command moves to
    /// another core it may use, at most every 5 ms (Linux: its affinity mask is narrowed for
    /// the move and put back). Default 50 µs; `Duration::ZERO` parks at once (and never moves).
    pub fn worker_spin(mut self, spin: Duration) -> Self {
        self.worker_spin = spin;
        self
    }

    /// Upper bound of the caller-side spin: a future waiting for its reply may spin up to this
    /// long before it yields to the executor — only when the worker was awake and recent
    /// commands finished well within the bound, so it never spins on long statements. Like
    /// [`worker_spin`](Self::worker_spin) it turns into `yield_now()` after a few rounds, and
    /// parks at once for a while after a slow yield. It holds the executor thread for at most
    /// this long, plus one yield on a busy machine. Default 20 µs; `Duration::ZERO` disables it.
    pub fn wait_spin(mut self, spin: Duration) -> Self {
        self.wait_spin = spin;
        self
    }

    /// Run short read-only statements (`fetch_*` of a `SELECT`) directly on the calling thread
    /// when the connection is idle and nothing is queued, instead of a round trip to the
    /// worker. A statement that runs past [`inline_budget`](Self::inline_budget) (or meets a
    /// lock) is aborted and re-queued to the worker, so the executor is never held longer than
    /// the budget. The cached statement remembers that it ran too long: its next 63 runs go
    /// straight to the worker without spending the budget first, then one tries inline again.
    /// Default `true`.
    pub fn inline_reads(mut self, enabled: bool) -> Self {
        self.inline_reads = enabled;
        self
    }

    /// Keep SQLite's WAL read lock held while inline reads come in a steady stream. Default
    /// `false` (opt-in, see below).
    ///
    /// SQLite takes a WAL read lock at the start of every read transaction and releases it at
    /// the end, each time with an `fcntl` system call unless another connection of the process
    /// holds the same lock; for a point query those two calls are most of the cost. With this
    /// option, when 16 reads in a row run inline ([`inline_reads`](Self::inline_reads)), each
    /// within 0.5 ms of the one before, the worker thread opens a second, read-only handle to
    /// the file (once) and keeps it in a read transaction while it is otherwise idle, so the
    /// reads skip the calls: a loop of point queries runs about twice as fast (the project's
    /// `point_select` benchmark: 2.1 times plain rusqlite, against 0.96 without). The second
    /// handle never reads for you (every read keeps its own, current snapshot); it holds one
    /// snapshot for about a millisecond at a time, lets go about a millisecond after the
    /// reads stop, holds nothing while another connection commits, and lets go before every
    /// command the worker runs. Only for file databases in WAL mode.
    ///
    /// Why opt-in: once opened, the second handle stays open with the connection, and SQLite
    /// counts it as another connection to the file. A connection that changes `journal_mode`
    /// out of WAL needs to be the only one, and gets `SQLITE_BUSY` while it is open; a
    /// checkpoint that needs every reader gone (`RESTART`, `TRUNCATE`) waits until the reads
    /// pause. The second handle never waits for a lock itself (with `locking_mode=EXCLUSIVE`
    /// it simply finds the file locked and holds nothing), and there is none for shared-cache
    /// URIs (`cache=shared`: one page cache would give the reads its snapshot). A [`Pool`](crate::Pool) has other connections anyway
    /// and does the same across its readers by default
    /// ([`PoolOptions::anchor_reads`](crate::PoolOptions::anchor_reads)).
    pub fn anchor_reads(mut self, enabled: bool) -> Self {
        self.anchor_reads = enabled;
        self
    }

    /// An in-memory database (`:memory:`, an empty path, `mode=memory` URIs), private to its
    /// connection.
    pub(crate) fn in_memory(&self) -> bool {
        let p = self.path.to_string_lossy();
        p == ":memory:"
            || p.is_empty()
            || (p.starts_with("file:") && (p.contains("mode=memory") || p.starts_with("file::memory:")))
    }

    /// The time limit of an inline read before it moves to the worker. Default 50 µs.
    pub fn inline_budget(mut self, budget: Duration) -> Self {
        self.inline_budget = budget;
        self
    }

    /// Open the connection: start its worker thread, open the database there and apply the
    /// pragmas.
    ///
    /// # Failure
    /// [`Error::Sqlite`] with [`ErrorCode::CantOpen`](crate::ErrorCode::CantOpen) when the file
    /// cannot be opened; [`Error::PragmaMismatch`] or [`Error::InvalidArgument`] for pragmas.
    /// The worker thread is gone when an error is returned.
    pub async fn open(self) -> Result<Connection> {
        Connection::open(self).await
    }
}

/// Validate a pragma name: `name` or `schema.name`, identifier characters only.
pub(crate) fn check_pragma_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.split('.').count() <= 2
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            message: format!("invalid pragma name {name:?}"),
        })
    }
}

/// Render a pragma value: numbers and bare words as they are, anything else quoted.
pub(crate) fn pragma_value_sql(value: &str) -> String {
    let v = value.trim();
    let number = {
        let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.') && digits.matches('.').count() <= 1
    };
    let word = v.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if number || word {
        v.to_owned()
    } else {
        crate::sql::quote_literal(v)
    }
}

/// Normalise a pragma value for the read-back comparison.
pub(crate) fn normalize_pragma(name: &str, value: &str) -> String {
    let v = value
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .to_ascii_lowercase();
    let base = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    let mapped = match (base.as_str(), v.as_str()) {
        ("synchronous", "off") => "0",
        ("synchronous", "normal") => "1",
        ("synchronous", "full") => "2",
        ("synchronous", "extra") => "3",
        ("temp_store", "default") => "0",
        ("temp_store", "file") => "1",
        ("temp_store", "memory") => "2",
        ("auto_vacuum", "none") => "0",
        ("auto_vacuum", "full") => "1",
        ("auto_vacuum", "incremental") => "2",
        ("secure_delete", "fast") => "2",
        (_, "on" | "true" | "yes") => "1",
        (_, "off" | "false" | "no") => "0",
        _ => return v,
    };
    mapped.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pragma_rendering() {
        assert!(check_pragma_name("journal_mode").is_ok());
        assert!(check_pragma_name("main.cache_size").is_ok());
        assert!(check_pragma_name("x; DROP TABLE t").is_err());
        assert!(check_pragma_name("").is_err());
        assert_eq!(pragma_value_sql("-64000"), "-64000");
        assert_eq!(pragma_value_sql("WAL"), "WAL");
        assert_eq!(pragma_value_sql("a'b c"), "'a''b c'");
        assert_eq!(normalize_pragma("synchronous", "NORMAL"), "1");
        assert_eq!(normalize_pragma("foreign_keys", "ON"), "1");
        assert_eq!(normalize_pragma("temp_store", "MEMORY"), "2");
        assert_eq!(normalize_pragma("journal_mode", "WAL"), "wal");
        assert_eq!(normalize_pragma("main.synchronous", "full"), "2");
    }
}
