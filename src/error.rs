//! The one error type of the crate.

use std::fmt;
use std::time::Duration;

use crate::value::ValueType;

/// `Result<T, aiolite::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way an aiolite call can fail.
///
/// The enum is `#[non_exhaustive]`: match the variants you care about and keep a `_` arm.
/// The helpers [`sqlite_code`](Error::sqlite_code), [`is_unique_violation`](Error::is_unique_violation),
/// [`is_constraint_violation`](Error::is_constraint_violation) and [`is_busy`](Error::is_busy)
/// answer the common questions without a match.
///
/// `Display` shows SQLite's message and its code (`UNIQUE constraint failed: users.email
/// (SQLITE_CONSTRAINT_UNIQUE, code 2067)`); the SQL that failed is kept in the error
/// ([`Error::sql`]) but is not part of `Display`, so a message can be shown to a user without
/// leaking the query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite reported an error.
    #[error("{message} ({}, code {extended_code})", code_name(*.extended_code))]
    Sqlite {
        /// The primary result code.
        code: ErrorCode,
        /// The extended result code (`code` is its low byte).
        extended_code: i32,
        /// SQLite's message (`sqlite3_errmsg`).
        message: String,
        /// The statement that failed, when there was one.
        sql: Option<String>,
    },
    /// The connection or pool was closed (by `close()`, or its worker is gone).
    #[error("the connection is closed")]
    Closed,
    /// User code run by the worker (a `call` closure or a callback) panicked. The worker caught
    /// the panic, rolled back any open transaction, and the connection is still usable.
    #[error("user code panicked: {message}")]
    Panicked {
        /// The panic payload, when it was a string.
        message: String,
    },
    /// A statement ran longer than the connection's `statement_timeout` and was interrupted.
    #[error("statement timed out after {timeout:?}")]
    StatementTimeout {
        /// The configured limit.
        timeout: Duration,
        /// The statement that was interrupted.
        sql: Option<String>,
    },
    /// More than one SQL statement was given where exactly one is expected. Use
    /// `execute_script` for scripts.
    #[error("more than one SQL statement given (use execute_script for scripts)")]
    MultipleStatements {
        /// The SQL text.
        sql: String,
    },
    /// The number of parameters given does not match the statement.
    #[error("wrong number of parameters: the statement takes {expected}, {given} given")]
    ParameterCount {
        /// Parameters the statement has.
        expected: usize,
        /// Parameters supplied.
        given: usize,
        /// The statement.
        sql: String,
    },
    /// A named parameter was given that the statement does not have, or one it has was not given.
    #[error("{message}")]
    ParameterName {
        /// What is wrong, naming the parameter.
        message: String,
        /// The statement.
        sql: String,
    },
    /// A column could not be converted to the requested Rust type.
    #[error("column \"{column}\": cannot convert {found} to {expected}")]
    ColumnType {
        /// The column name (or index, when unnamed).
        column: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// The SQLite type found.
        found: ValueType,
    },
    /// An integer column value does not fit the requested integer type.
    #[error("column \"{column}\": value {value} out of range for {expected}")]
    OutOfRange {
        /// The column name (or index).
        column: String,
        /// The value found.
        value: i64,
        /// The Rust type asked for.
        expected: &'static str,
    },
    /// A row has no column with this index or name.
    #[error("no such column: {column}")]
    ColumnNotFound {
        /// The index or name asked for.
        column: String,
    },
    /// A TEXT value read from SQLite is not valid UTF-8.
    #[error("column \"{column}\": TEXT value is not valid UTF-8")]
    InvalidUtf8 {
        /// The column name.
        column: String,
    },
    /// A row could not be deserialized into the requested type (`fetch_*_as`).
    #[error("cannot deserialize row: {message}")]
    Deserialize {
        /// The serde error.
        message: String,
    },
    /// A value could not be serialized into SQL parameters (CRUD helpers).
    #[error("cannot serialize value: {message}")]
    Serialize {
        /// The serde error.
        message: String,
    },
    /// The worker's queue is full and the call was not allowed to wait (`try_submit`).
    #[error("the connection's queue is full")]
    QueueFull,
    /// No pooled connection became free within the pool's `acquire_timeout`.
    #[error("timed out after {waited:?} waiting for a pooled connection")]
    PoolTimeout {
        /// How long the caller waited.
        waited: Duration,
    },
    /// A table or column name was refused (unknown to the schema or malformed).
    #[error("invalid identifier {identifier:?}: {reason}")]
    InvalidIdentifier {
        /// The identifier as given.
        identifier: String,
        /// Why it was refused.
        reason: String,
    },
    /// A pragma's value read back after setting it differs from what was asked.
    #[error("pragma {pragma}: asked for {expected:?}, SQLite reports {actual:?}")]
    PragmaMismatch {
        /// The pragma name.
        pragma: String,
        /// The value that was set.
        expected: String,
        /// The value read back.
        actual: String,
    },
    /// A transaction handle was used after its transaction ended (committed, rolled back, or
    /// rolled back by SQLite after an error such as an interrupt).
    #[error("the transaction is no longer active: {reason}")]
    TransactionEnded {
        /// How it ended.
        reason: &'static str,
    },
    /// A migration could not be applied or the recorded history does not match.
    #[error("migration {version}: {message}")]
    Migration {
        /// The version of the step concerned.
        version: i64,
        /// What went wrong.
        message: String,
    },
    /// An argument was refused before anything was sent to SQLite.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// The operation is not available on this backend or build.
    #[error("unsupported: {message}")]
    Unsupported {
        /// What is unsupported.
        message: String,
    },
    /// (dqlite) The cluster's leader changed or the connection to it was lost while a
    /// transaction was open: the transaction is gone; retry it whole.
    #[error("the leader changed: {message}")]
    LeaderChanged {
        /// What happened.
        message: String,
    },
    /// (dqlite) No leader could be reached: the cluster has lost its quorum or no node
    /// answers.
    #[error("the database cluster is unavailable: {message}")]
    Unavailable {
        /// What happened.
        message: String,
    },
    /// (dqlite) The connection was lost while a `COMMIT` was in flight: the transaction may or
    /// may not have been committed.
    #[error("the outcome of the commit is unknown: {message}")]
    CommitOutcomeUnknown {
        /// What happened.
        message: String,
    },
    /// A helper looked for a row that does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// What was looked for.
        message: String,
    },
}

impl Error {
    /// The SQLite primary result code, for errors that came from SQLite.
    ///
    /// A statement timeout reports [`ErrorCode::Interrupt`], as SQLite does.
    pub fn sqlite_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Sqlite { code, .. } => Some(*code),
            Error::StatementTimeout { .. } => Some(ErrorCode::Interrupt),
            _ => None,
        }
    }

    /// The SQLite extended result code, for errors that came from SQLite.
    pub fn extended_code(&self) -> Option<i32> {
        match self {
            Error::Sqlite { extended_code, .. } => Some(*extended_code),
            Error::StatementTimeout { .. } => Some(rusqlite::ffi::SQLITE_INTERRUPT),
            _ => None,
        }
    }

    /// `true` for a UNIQUE or PRIMARY KEY constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self.extended_code(),
            Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
        )
    }

    /// `true` for any constraint violation (UNIQUE, NOT NULL, CHECK, FOREIGN KEY, …).
    pub fn is_constraint_violation(&self) -> bool {
        self.sqlite_code() == Some(ErrorCode::Constraint)
    }

    /// `true` when SQLite gave up waiting for a lock (`SQLITE_BUSY` or `SQLITE_LOCKED`).
    pub fn is_busy(&self) -> bool {
        matches!(self.sqlite_code(), Some(ErrorCode::Busy | ErrorCode::Locked))
    }

    /// The SQL statement the error is about, when known.
    pub fn sql(&self) -> Option<&str> {
        match self {
            Error::Sqlite { sql, .. } | Error::StatementTimeout { sql, .. } => sql.as_deref(),
            Error::MultipleStatements { sql }
            | Error::ParameterCount { sql, .. }
            | Error::ParameterName { sql, .. } => Some(sql),
            _ => None,
        }
    }

    /// Attach the failing SQL to an error that does not carry it yet.
    pub(crate) fn with_sql(mut self, text: &str) -> Self {
        if let Error::Sqlite { sql, .. } | Error::StatementTimeout { sql, .. } = &mut self
            && sql.is_none()
        {
            *sql = Some(text.to_owned());
        }
        self
    }

    /// An error from a SQLite result code and message.
    pub(crate) fn sqlite(extended_code: i32, message: impl Into<String>) -> Self {
        Error::Sqlite {
            code: ErrorCode::from_code(extended_code),
            extended_code,
            message: message.into(),
            sql: None,
        }
    }

    /// Convert a rusqlite error (from the `call` hatch or rusqlite helpers) into ours.
    pub(crate) fn from_rusqlite(err: rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::SqliteFailure(e, msg) => {
                let message = msg.unwrap_or_else(|| e.to_string());
                Error::sqlite(e.extended_code, message)
            }
            rusqlite::Error::MultipleStatement => Error::MultipleStatements { sql: String::new() },
            rusqlite::Error::InvalidParameterCount(given, expected) => Error::ParameterCount {
                expected,
                given,
                sql: String::new(),
            },
            rusqlite::Error::InvalidParameterName(name) => Error::ParameterName {
                message: format!("unknown parameter {name}"),
                sql: String::new(),
            },
            rusqlite::Error::QueryReturnedNoRows => Error::NotFound {
                message: "query returned no rows".into(),
            },
            rusqlite::Error::InvalidColumnIndex(i) => Error::ColumnNotFound { column: i.to_string() },
            rusqlite::Error::InvalidColumnName(name) => Error::ColumnNotFound { column: name },
            other => Error::Sqlite {
                code: ErrorCode::Error,
                extended_code: rusqlite::ffi::SQLITE_ERROR,
                message: other.to_string(),
                sql: None,
            },
        }
    }
}

/// SQLite's primary result codes (<https://sqlite.org/rescode.html>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `SQLITE_ERROR`: generic error (syntax errors, missing tables, …).
    Error,
    /// `SQLITE_INTERNAL`.
    Internal,
    /// `SQLITE_PERM`: access permission denied.
    Permission,
    /// `SQLITE_ABORT`: an operation was aborted (e.g. by a ROLLBACK).
    Abort,
    /// `SQLITE_BUSY`: the database file is locked by another connection.
    Busy,
    /// `SQLITE_LOCKED`: a table is locked (shared cache or same connection).
    Locked,
    /// `SQLITE_NOMEM`.
    NoMemory,
    /// `SQLITE_READONLY`: attempt to write a read-only database.
    ReadOnly,
    /// `SQLITE_INTERRUPT`: interrupted by `interrupt()`, a timeout or a progress handler.
    Interrupt,
    /// `SQLITE_IOERR`.
    IoError,
    /// `SQLITE_CORRUPT`.
    Corrupt,
    /// `SQLITE_NOTFOUND`.
    NotFound,
    /// `SQLITE_FULL`: disk full.
    Full,
    /// `SQLITE_CANTOPEN`: unable to open the database file.
    CantOpen,
    /// `SQLITE_PROTOCOL`.
    Protocol,
    /// `SQLITE_SCHEMA`: the schema changed.
    Schema,
    /// `SQLITE_TOOBIG`: string or blob too big.
    TooBig,
    /// `SQLITE_CONSTRAINT`: a constraint was violated.
    Constraint,
    /// `SQLITE_MISMATCH`: data type mismatch.
    Mismatch,
    /// `SQLITE_MISUSE`: library used incorrectly.
    Misuse,
    /// `SQLITE_NOLFS`.
    NoLargeFileSupport,
    /// `SQLITE_AUTH`: denied by the authorizer.
    Auth,
    /// `SQLITE_RANGE`: parameter index out of range.
    Range,
    /// `SQLITE_NOTADB`: the file is not a database.
    NotADatabase,
    /// Any other code.
    Other(i32),
}

impl ErrorCode {
    /// The primary code of a (possibly extended) SQLite result code.
    pub fn from_code(code: i32) -> Self {
        use rusqlite::ffi as f;
        match code & 0xff {
            f::SQLITE_ERROR => ErrorCode::Error,
            f::SQLITE_INTERNAL => ErrorCode::Internal,
            f::SQLITE_PERM => ErrorCode::Permission,
            f::SQLITE_ABORT => ErrorCode::Abort,
            f::SQLITE_BUSY => ErrorCode::Busy,
            f::SQLITE_LOCKED => ErrorCode::Locked,
            f::SQLITE_NOMEM => ErrorCode::NoMemory,
            f::SQLITE_READONLY => ErrorCode::ReadOnly,
            f::SQLITE_INTERRUPT => ErrorCode::Interrupt,
            f::SQLITE_IOERR => ErrorCode::IoError,
            f::SQLITE_CORRUPT => ErrorCode::Corrupt,
            f::SQLITE_NOTFOUND => ErrorCode::NotFound,
            f::SQLITE_FULL => ErrorCode::Full,
            f::SQLITE_CANTOPEN => ErrorCode::CantOpen,
            f::SQLITE_PROTOCOL => ErrorCode::Protocol,
            f::SQLITE_SCHEMA => ErrorCode::Schema,
            f::SQLITE_TOOBIG => ErrorCode::TooBig,
            f::SQLITE_CONSTRAINT => ErrorCode::Constraint,
            f::SQLITE_MISMATCH => ErrorCode::Mismatch,
            f::SQLITE_MISUSE => ErrorCode::Misuse,
            f::SQLITE_NOLFS => ErrorCode::NoLargeFileSupport,
            f::SQLITE_AUTH => ErrorCode::Auth,
            f::SQLITE_RANGE => ErrorCode::Range,
            f::SQLITE_NOTADB => ErrorCode::NotADatabase,
            _ => ErrorCode::Other(code & 0xff),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// The symbolic name of a SQLite result code, e.g. `SQLITE_CONSTRAINT_UNIQUE`.
pub(crate) fn code_name(code: i32) -> String {
    // `sqlite3_errstr` gives prose; the symbolic names are what people search for.
    let name = match code {
        275 => "SQLITE_CONSTRAINT_CHECK",
        531 => "SQLITE_CONSTRAINT_COMMITHOOK",
        787 => "SQLITE_CONSTRAINT_FOREIGNKEY",
        1043 => "SQLITE_CONSTRAINT_FUNCTION",
        1299 => "SQLITE_CONSTRAINT_NOTNULL",
        1555 => "SQLITE_CONSTRAINT_PRIMARYKEY",
        1811 => "SQLITE_CONSTRAINT_TRIGGER",
        2067 => "SQLITE_CONSTRAINT_UNIQUE",
        2323 => "SQLITE_CONSTRAINT_VTAB",
        2579 => "SQLITE_CONSTRAINT_ROWID",
        3091 => "SQLITE_CONSTRAINT_DATATYPE",
        261 => "SQLITE_BUSY_RECOVERY",
        517 => "SQLITE_BUSY_SNAPSHOT",
        773 => "SQLITE_BUSY_TIMEOUT",
        262 => "SQLITE_LOCKED_SHAREDCACHE",
        264 => "SQLITE_READONLY_RECOVERY",
        520 => "SQLITE_READONLY_CANTLOCK",
        776 => "SQLITE_READONLY_ROLLBACK",
        1032 => "SQLITE_READONLY_DBMOVED",
        1288 => "SQLITE_READONLY_CANTINIT",
        1544 => "SQLITE_READONLY_DIRECTORY",
        516 => "SQLITE_ABORT_ROLLBACK",
        14 | 270 | 526 | 782 | 1038 | 1294 | 1550 => "SQLITE_CANTOPEN",
        _ => match ErrorCode::from_code(code) {
            ErrorCode::Error => "SQLITE_ERROR",
            ErrorCode::Internal => "SQLITE_INTERNAL",
            ErrorCode::Permission => "SQLITE_PERM",
            ErrorCode::Abort => "SQLITE_ABORT",
            ErrorCode::Busy => "SQLITE_BUSY",
            ErrorCode::Locked => "SQLITE_LOCKED",
            ErrorCode::NoMemory => "SQLITE_NOMEM",
            ErrorCode::ReadOnly => "SQLITE_READONLY",
            ErrorCode::Interrupt => "SQLITE_INTERRUPT",
            ErrorCode::IoError => "SQLITE_IOERR",
            ErrorCode::Corrupt => "SQLITE_CORRUPT",
            ErrorCode::NotFound => "SQLITE_NOTFOUND",
            ErrorCode::Full => "SQLITE_FULL",
            ErrorCode::CantOpen => "SQLITE_CANTOPEN",
            ErrorCode::Protocol => "SQLITE_PROTOCOL",
            ErrorCode::Schema => "SQLITE_SCHEMA",
            ErrorCode::TooBig => "SQLITE_TOOBIG",
            ErrorCode::Constraint => "SQLITE_CONSTRAINT",
            ErrorCode::Mismatch => "SQLITE_MISMATCH",
            ErrorCode::Misuse => "SQLITE_MISUSE",
            ErrorCode::NoLargeFileSupport => "SQLITE_NOLFS",
            ErrorCode::Auth => "SQLITE_AUTH",
            ErrorCode::Range => "SQLITE_RANGE",
            ErrorCode::NotADatabase => "SQLITE_NOTADB",
            ErrorCode::Other(_) => return format!("SQLITE_{code}"),
        },
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_code_and_message() {
        let e = Error::sqlite(2067, "UNIQUE constraint failed: t.a").with_sql("INSERT INTO t VALUES (1)");
        assert_eq!(
            e.to_string(),
            "UNIQUE constraint failed: t.a (SQLITE_CONSTRAINT_UNIQUE, code 2067)"
        );
        assert_eq!(e.sql(), Some("INSERT INTO t VALUES (1)"));
        assert!(e.is_unique_violation());
        assert!(e.is_constraint_violation());
        assert!(!e.is_busy());
        assert_eq!(e.sqlite_code(), Some(ErrorCode::Constraint));
    }

    #[test]
    fn codes_map_to_primary() {
        assert_eq!(ErrorCode::from_code(5), ErrorCode::Busy);
        assert_eq!(ErrorCode::from_code(517), ErrorCode::Busy);
        assert_eq!(ErrorCode::from_code(1299), ErrorCode::Constraint);
        assert!(Error::sqlite(6, "locked").is_busy());
        assert!(!Error::sqlite(1299, "NOT NULL").is_unique_violation());
        assert_eq!(code_name(1299), "SQLITE_CONSTRAINT_NOTNULL");
        assert_eq!(code_name(1), "SQLITE_ERROR");
    }
}
