//! axum integration (cargo feature `axum`): errors as HTTP responses, and a per-request
//! transaction extractor — the Rust counterpart of a FastAPI `get_db` dependency.
//!
//! A [`Pool`] is `Clone`, so it is axum state as it is (`Router::with_state(pool)`), or a
//! field of your own state type with `impl FromRef<AppState> for Pool`.
//!
//! ```
//! use axum::{Json, Router, extract::{Path, State}, routing::get};
//! use aiolite::{Pool, axum::Tx};
//!
//! async fn get_name(State(pool): State<Pool>, Path(id): Path<i64>) -> Result<Json<String>, aiolite::Error> {
//!     let name: Option<String> = pool.fetch_scalar("SELECT name FROM users WHERE id = ?", [id]).await?;
//!     name.map(Json).ok_or_else(|| aiolite::Error::NotFound { message: format!("user {id}") })
//! }
//!
//! async fn rename(tx: Tx, Path(id): Path<i64>) -> Result<(), aiolite::Error> {
//!     tx.execute("UPDATE users SET name = upper(name) WHERE id = ?", [id]).await?;
//!     tx.commit().await // dropped without commit (an error, a panic): rolled back
//! }
//!
//! fn app(pool: Pool) -> Router {
//!     Router::new()
//!         .route("/users/{id}", get(get_name).post(rename))
//!         .with_state(pool)
//! }
//! ```

use std::collections::BTreeMap;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorCode};
use crate::pool::Pool;
use crate::transaction::Transaction;

impl Error {
    /// The HTTP status for this error: constraint violation → 409, invalid input or identifier
    /// → 400, not found → 404, busy / pool timeout / closed → 503, anything else → 500.
    pub fn http_status(&self) -> StatusCode {
        match self {
            e if e.is_constraint_violation() => StatusCode::CONFLICT,
            e if e.is_busy() => StatusCode::SERVICE_UNAVAILABLE,
            Error::InvalidIdentifier { .. } | Error::InvalidArgument { .. } | Error::Serialize { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::PoolTimeout { .. } | Error::QueueFull | Error::Closed | Error::StatementTimeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A message safe to show to an HTTP client: it names the problem without SQL text,
    /// schema details or internals.
    pub fn public_message(&self) -> String {
        use rusqlite::ffi;
        match self {
            e if e.is_constraint_violation() => match e.extended_code() {
                Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                    "conflict: a record with the same unique value already exists".into()
                }
                Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                    "conflict: the record refers to, or is referred to by, another record".into()
                }
                Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => "conflict: a required value is missing".into(),
                _ => "conflict: the data breaks a constraint".into(),
            },
            e if e.sqlite_code() == Some(ErrorCode::Busy) || e.sqlite_code() == Some(ErrorCode::Locked) => {
                "the database is busy, retry later".into()
            }
            Error::InvalidIdentifier { identifier, reason } => format!("invalid identifier {identifier:?}: {reason}"),
            Error::InvalidArgument { message } => format!("invalid input: {message}"),
            Error::Serialize { message } => format!("invalid input: {message}"),
            Error::NotFound { message } => format!("not found: {message}"),
            Error::PoolTimeout { .. } | Error::QueueFull | Error::StatementTimeout { .. } => {
                "the database is busy, retry later".into()
            }
            Error::Closed => "the service is shutting down".into(),
            _ => "internal error".into(),
        }
    }
}

impl IntoResponse for Error {
    /// `{"error": "<public message>"}` with [`Error::http_status`]. Server-side errors are
    /// logged (with their SQL) through `tracing`; the body never carries SQL or internals.
    fn into_response(self) -> Response {
        let status = self.http_status();
        if status.is_server_error() {
            tracing::error!(error = %self, sql = ?self.sql(), "request failed");
        }
        let body = BTreeMap::from([("error", self.public_message())]);
        (status, axum::Json(body)).into_response()
    }
}

/// A write transaction on the pool's writer for one request (`BEGIN IMMEDIATE`), extracted
/// from state that holds a [`Pool`]. Call [`Tx::commit`] when the handler succeeds; if the
/// handler returns early or panics, the transaction is rolled back when `Tx` drops. It
/// dereferences to [`Transaction`], so the whole statement API is there.
#[derive(Debug)]
pub struct Tx(Transaction);

impl Tx {
    /// Commit.
    ///
    /// # Failure
    /// SQLite's error; the transaction is then rolled back.
    pub async fn commit(self) -> crate::Result<()> {
        self.0.commit().await
    }

    /// Roll back now (dropping does the same, in the background).
    ///
    /// # Failure
    /// SQLite's error.
    pub async fn rollback(self) -> crate::Result<()> {
        self.0.rollback().await
    }

    /// The transaction.
    pub fn into_inner(self) -> Transaction {
        self.0
    }
}

impl Deref for Tx {
    type Target = Transaction;
    fn deref(&self) -> &Transaction {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Tx
where
    Pool: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(_parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Ok(Tx(Pool::from_ref(state).transaction().await?))
    }
}
