//! Callbacks SQLite calls while statements run: trace, authorizer, progress.

use std::ffi::{CStr, c_char, c_int, c_void};

use rusqlite::ffi;
use rusqlite::trace::{TraceEvent, TraceEventCodes};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::worker;

/// What the authorizer is asked about: SQLite's action code and its four arguments
/// (<https://sqlite.org/c3ref/set_authorizer.html>). The codes are SQLite's own numbers,
/// listed in [`auth`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthRequest<'a> {
    /// The action code, e.g. [`auth::DROP_TABLE`] or [`auth::READ`].
    pub action: i32,
    /// The first argument (e.g. the table name), per action.
    pub arg1: Option<&'a str>,
    /// The second argument (e.g. the column name), per action.
    pub arg2: Option<&'a str>,
    /// The database name (`main`, `temp`, an attached name).
    pub database: Option<&'a str>,
    /// The innermost trigger or view responsible, if any.
    pub accessor: Option<&'a str>,
}

/// The authorizer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// `SQLITE_OK`: allow.
    Allow,
    /// `SQLITE_IGNORE`: for reads, the column reads as NULL; for other actions, the action is
    /// silently skipped.
    Ignore,
    /// `SQLITE_DENY`: the statement fails to prepare with "not authorized".
    Deny,
}

/// SQLite's authorizer action codes (the same numbers in every SQLite build).
pub mod auth {
    use rusqlite::ffi;
    /// `SQLITE_CREATE_INDEX`
    pub const CREATE_INDEX: i32 = ffi::SQLITE_CREATE_INDEX;
    /// `SQLITE_CREATE_TABLE`
    pub const CREATE_TABLE: i32 = ffi::SQLITE_CREATE_TABLE;
    /// `SQLITE_CREATE_TEMP_TABLE`
    pub const CREATE_TEMP_TABLE: i32 = ffi::SQLITE_CREATE_TEMP_TABLE;
    /// `SQLITE_CREATE_TRIGGER`
    pub const CREATE_TRIGGER: i32 = ffi::SQLITE_CREATE_TRIGGER;
    /// `SQLITE_CREATE_VIEW`
    pub const CREATE_VIEW: i32 = ffi::SQLITE_CREATE_VIEW;
    /// `SQLITE_DELETE`
    pub const DELETE: i32 = ffi::SQLITE_DELETE;
    /// `SQLITE_DROP_INDEX`
    pub const DROP_INDEX: i32 = ffi::SQLITE_DROP_INDEX;
    /// `SQLITE_DROP_TABLE`
    pub const DROP_TABLE: i32 = ffi::SQLITE_DROP_TABLE;
    /// `SQLITE_DROP_TRIGGER`
    pub const DROP_TRIGGER: i32 = ffi::SQLITE_DROP_TRIGGER;
    /// `SQLITE_DROP_VIEW`
    pub const DROP_VIEW: i32 = ffi::SQLITE_DROP_VIEW;
    /// `SQLITE_INSERT`
    pub const INSERT: i32 = ffi::SQLITE_INSERT;
    /// `SQLITE_PRAGMA`
    pub const PRAGMA: i32 = ffi::SQLITE_PRAGMA;
    /// `SQLITE_READ`
    pub const READ: i32 = ffi::SQLITE_READ;
    /// `SQLITE_SELECT`
    pub const SELECT: i32 = ffi::SQLITE_SELECT;
    /// `SQLITE_TRANSACTION`
    pub const TRANSACTION: i32 = ffi::SQLITE_TRANSACTION;
    /// `SQLITE_UPDATE`
    pub const UPDATE: i32 = ffi::SQLITE_UPDATE;
    /// `SQLITE_ATTACH`
    pub const ATTACH: i32 = ffi::SQLITE_ATTACH;
    /// `SQLITE_DETACH`
    pub const DETACH: i32 = ffi::SQLITE_DETACH;
    /// `SQLITE_ALTER_TABLE`
    pub const ALTER_TABLE: i32 = ffi::SQLITE_ALTER_TABLE;
    /// `SQLITE_REINDEX`
    pub const REINDEX: i32 = ffi::SQLITE_REINDEX;
    /// `SQLITE_ANALYZE`
    pub const ANALYZE: i32 = ffi::SQLITE_ANALYZE;
    /// `SQLITE_FUNCTION`
    pub const FUNCTION: i32 = ffi::SQLITE_FUNCTION;
    /// `SQLITE_SAVEPOINT`
    pub const SAVEPOINT: i32 = ffi::SQLITE_SAVEPOINT;
    /// `SQLITE_RECURSIVE`
    pub const RECURSIVE: i32 = ffi::SQLITE_RECURSIVE;
}

/// The boxed authorizer the connection state keeps while it is registered.
pub(crate) type AuthorizerFn = dyn FnMut(&AuthRequest<'_>) -> Authorization + Send;

/// # Safety
/// `p` must be null or a NUL-terminated string valid for the call.
unsafe fn opt_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated (caller).
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// The C trampoline for `sqlite3_set_authorizer`.
unsafe extern "C" fn authorizer_trampoline(
    user: *mut c_void,
    action: c_int,
    a1: *const c_char,
    a2: *const c_char,
    a3: *const c_char,
    a4: *const c_char,
) -> c_int {
    // SAFETY: `user` is the `Box<AuthorizerFn>` registered by `set_authorizer`, kept alive by
    // the connection state until it is unregistered; SQLite calls the authorizer only on the
    // thread that holds the connection (while preparing), so the `&mut` is exclusive. The
    // strings are NUL-terminated or null, valid for this call.
    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        let f = &mut *user.cast::<Box<AuthorizerFn>>();
        f(&AuthRequest {
            action,
            arg1: opt_str(a1),
            arg2: opt_str(a2),
            database: opt_str(a3),
            accessor: opt_str(a4),
        })
    }));
    match verdict {
        Ok(Authorization::Allow) => ffi::SQLITE_OK,
        Ok(Authorization::Ignore) => ffi::SQLITE_IGNORE,
        // A panicking authorizer denies.
        Ok(Authorization::Deny) | Err(_) => ffi::SQLITE_DENY,
    }
}

impl Connection {
    /// Install (`Some`) or remove (`None`) a callback that receives the text of every
    /// statement SQLite runs (with bound parameters expanded where SQLite can), like
    /// Python's `set_trace_callback`. It runs on the thread that steps the statement; a panic
    /// in it is caught and ignored.
    ///
    /// # Failure
    /// SQLite's error, `Closed`.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// use std::sync::{Arc, Mutex};
    /// let db = aiolite::connect(":memory:").await?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&seen);
    /// db.set_trace_callback(Some(move |sql: &str| sink.lock().unwrap().push(sql.to_owned()))).await?;
    /// db.execute("CREATE TABLE t(x)", ()).await?;
    /// assert!(seen.lock().unwrap().iter().any(|s| s == "CREATE TABLE t(x)"));
    /// db.set_trace_callback(None::<fn(&str)>).await?;
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn set_trace_callback<F>(&self, callback: Option<F>) -> Result<()>
    where
        F: FnMut(&str) + Send + 'static,
    {
        self.with_state(move |st| {
            let hook = callback.map(|mut f| {
                move |event: TraceEvent<'_>| {
                    if let TraceEvent::Stmt(stmt, text) = event {
                        match stmt.expanded_sql() {
                            Some(expanded) => f(&expanded),
                            None => f(text),
                        }
                    }
                }
            });
            st.conn()
                .trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, hook)
                .map_err(Error::from_rusqlite)
        })
        .await
    }

    /// Install (`Some`) or remove (`None`) an authorizer: SQLite asks it about every action a
    /// statement performs while the statement is prepared (see [`AuthRequest`] and the codes
    /// in [`auth`]). [`Authorization::Deny`] makes the statement fail with "not authorized";
    /// a panicking authorizer denies. Installing or removing an authorizer marks every
    /// prepared statement expired (SQLite does this), so cached statements are prepared, and
    /// authorized, again on their next use; a cursor already running keeps going.
    ///
    /// # Failure
    /// SQLite's error, `Closed`.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// use aiolite::{auth, Authorization, AuthRequest};
    /// let db = aiolite::connect(":memory:").await?;
    /// db.execute("CREATE TABLE t(x)", ()).await?;
    /// db.set_authorizer(Some(|req: &AuthRequest<'_>| {
    ///     if req.action == auth::DROP_TABLE { Authorization::Deny } else { Authorization::Allow }
    /// }))
    /// .await?;
    /// assert!(db.execute("DROP TABLE t", ()).await.is_err());
    /// db.set_authorizer(None::<fn(&AuthRequest<'_>) -> Authorization>).await?;
    /// db.execute("DROP TABLE t", ()).await?;
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn set_authorizer<F>(&self, authorizer: Option<F>) -> Result<()>
    where
        F: FnMut(&AuthRequest<'_>) -> Authorization + Send + 'static,
    {
        self.with_state(move |st| {
            let db = st.handle();
            // Unregister first, then drop the old box, then register the new one.
            // SAFETY: `db` is the open handle, used under the connection lock; a null callback
            // unregisters.
            unsafe { ffi::sqlite3_set_authorizer(db, None, std::ptr::null_mut()) };
            st.authorizer = None;
            if let Some(f) = authorizer {
                // A thin pointer for C: the outer box holds the (fat) inner box on the heap.
                let mut outer: Box<Box<AuthorizerFn>> = Box::new(Box::new(f));
                let user: *mut Box<AuthorizerFn> = &mut *outer;
                // SAFETY: `user` points to the outer box's heap content, which stays in place
                // while the state keeps `outer` (until the callback is unregistered); the
                // trampoline matches SQLite's signature.
                let rc = unsafe { ffi::sqlite3_set_authorizer(db, Some(authorizer_trampoline), user.cast()) };
                if rc != ffi::SQLITE_OK {
                    return Err(Error::sqlite(rc, "cannot install the authorizer"));
                }
                st.authorizer = Some(outer);
            }
            Ok(())
        })
        .await
    }

    /// Install (`Some`) or remove (`None`) a progress handler: SQLite calls it about every
    /// `every` virtual-machine instructions while a statement runs (rounded to a multiple of
    /// 1000 above 1000; exact below, at the cost of checking more often); returning `true`
    /// aborts the statement with `SQLITE_INTERRUPT`. Cancellation, `interrupt()` and statement
    /// timeouts keep working alongside it. A panicking handler aborts
    /// the statement too. It runs on whichever thread steps the statement.
    ///
    /// # Failure
    /// `Closed`.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// let db = aiolite::connect(":memory:").await?;
    /// db.set_progress_handler(1000, Some(|| true)).await?;
    /// let slow = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT count(*) FROM c";
    /// let err = db.fetch_scalar::<i64>(slow, ()).await.unwrap_err();
    /// assert_eq!(err.sqlite_code(), Some(aiolite::ErrorCode::Interrupt));
    /// db.set_progress_handler(0, None::<fn() -> bool>).await?;
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn set_progress_handler<F>(&self, every: u32, handler: Option<F>) -> Result<()>
    where
        F: FnMut() -> bool + Send + 'static,
    {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let every = every.max(1);
        let period = if handler.is_some() {
            every.min(worker::PROGRESS_PERIOD)
        } else {
            worker::PROGRESS_PERIOD
        };
        self.shared().ctx.set_user(handler.map(|f| worker::UserProgress {
            every,
            count: 0,
            f: Box::new(f),
        }));
        if self.shared().ctx.period() != period {
            // SQLite's own period must change: only the worker may touch the handle.
            self.with_state(move |st| {
                st.set_progress_period(period);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}
