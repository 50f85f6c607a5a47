//! Prepared statements over SQLite's C API, and the per-connection statement cache.
//!
//! rusqlite's `Statement<'conn>` borrows its connection and its `Rows` borrow the statement,
//! so a statement cannot stay open across worker commands (a streaming [`Cursor`] needs
//! exactly that). This module owns `sqlite3_stmt` handles directly. It is the crate's only
//! `unsafe` code besides the callback registrations; the invariants are:
//!
//! 1. A [`Stmt`] is only touched by the thread that holds the connection's lock
//!    (`worker::ConnState` lives behind a `Mutex`), so SQLite's `NOMUTEX` mode is sound.
//! 2. Every `Stmt` is finalized before the connection is closed: statements live in
//!    `ConnState` fields declared before the `rusqlite::Connection`, and `ConnState::close`
//!    clears them first.
//! 3. Parameters are bound with `SQLITE_STATIC`: the bound buffers belong to the
//!    [`ParamValues`] of the command, which outlives every step of the statement, and
//!    [`Stmt::reset`] clears the bindings before the values are dropped.
//!
//! [`Cursor`]: crate::Cursor

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;
use std::sync::Arc;

use hashlink::LruCache;
use rusqlite::ffi;
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::params::ParamValues;
use crate::row::{Column, ColumnLabel, Columns, Row};
use crate::sql;
use crate::value::Value;

thread_local! {
    /// The statement this thread is stepping now (null outside `Stmt::step`).
    static STEPPING: std::cell::Cell<*mut ffi::sqlite3_stmt> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// `true` when the statement this thread is stepping has already halted.
///
/// SQLite calls the progress handler one last time when a statement returns, *after* `OP_Halt`
/// has finished it (an autocommit write is committed by then). Aborting there would report
/// `SQLITE_INTERRUPT` for work that was done; the progress handler asks this first. Unknown
/// statements (stepped by user code through `call`) count as running.
pub(crate) fn stepping_has_halted() -> bool {
    STEPPING.with(|s| {
        let p = s.get();
        // SAFETY: `p` is the statement being stepped on this thread right now (set around
        // `sqlite3_step` in `Stmt::step`), so it is alive; sqlite3_stmt_busy only reads it.
        !p.is_null() && unsafe { ffi::sqlite3_stmt_busy(p) } == 0
    })
}

/// The last error on a connection handle.
///
/// # Safety
/// `db` must be a valid, open connection handle.
pub(crate) unsafe fn last_error(db: *mut ffi::sqlite3) -> Error {
    // SAFETY: `db` is valid (caller); sqlite3_errmsg returns a NUL-terminated string owned by
    // SQLite, valid until the next call on this connection, which we copy right away.
    unsafe {
        let code = ffi::sqlite3_extended_errcode(db);
        let msg = ffi::sqlite3_errmsg(db);
        let message = if msg.is_null() {
            String::from("unknown error")
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        };
        Error::sqlite(code, message)
    }
}

/// A prepared statement with its cached metadata.
pub(crate) struct Stmt {
    raw: NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
    columns: Columns,
    param_names: Box<[Option<Box<str>>]>,
    readonly: bool,
    reprepares: c_int,
    /// No step since the last reset: the next `SQLITE_ROW` checks for a re-prepare.
    fresh: bool,
    /// Rows the last `fetch_all` of this statement returned: the next one reserves that much
    /// room up front instead of growing (and copying) its vector step by step.
    pub(crate) rows_hint: usize,
    /// Inline attempts to skip: set when an inline run of this statement went past its time
    /// budget (it then went to the worker after the time was spent), so that the next runs go
    /// straight to the worker; one in [`INLINE_RETRY`] tries inline again.
    pub(crate) inline_skips: u8,
}

/// See [`Stmt::inline_skips`].
pub(crate) const INLINE_RETRY: u8 = 64;

// SAFETY: a `Stmt` is only used by the thread holding the connection lock (invariant 1 of
// the module docs); the raw pointers are never shared outside that lock.
unsafe impl Send for Stmt {}

impl Stmt {
    /// Prepare one statement. `Ok(None)` when `text` holds no statement (blank or comments);
    /// [`Error::MultipleStatements`] when it holds more than one.
    ///
    /// # Safety
    /// `db` must be a valid, open connection handle used only by the calling thread for the
    /// lifetime of the returned statement, and the statement must be dropped before `db` is
    /// closed.
    pub(crate) unsafe fn prepare(db: *mut ffi::sqlite3, text: &str, persistent: bool) -> Result<Option<Stmt>> {
        let mut offset = 0;
        loop {
            let rest = &text[offset..];
            // SAFETY: forwarded from the caller.
            let (stmt, consumed) =
                unsafe { Stmt::prepare_inner(db, rest, persistent) }.map_err(|e| e.with_sql(text))?;
            offset += consumed;
            let tail = &text[offset..];
            match stmt {
                Some(stmt) => {
                    if !sql::is_blank(tail) {
                        return Err(Error::MultipleStatements { sql: text.to_owned() });
                    }
                    return Ok(Some(stmt));
                }
                // An empty statement (`;`) before the real one: keep going.
                None if consumed > 0 && !sql::is_blank(tail) => {}
                None => return Ok(None),
            }
        }
    }

    /// Prepare the first statement of `text`: the statement (`None` for an empty one) and how
    /// many bytes of `text` it consumed. Used for scripts.
    ///
    /// # Safety
    /// As for [`Stmt::prepare`].
    pub(crate) unsafe fn prepare_next(db: *mut ffi::sqlite3, text: &str) -> Result<(Option<Stmt>, usize)> {
        // SAFETY: forwarded from the caller.
        unsafe { Stmt::prepare_inner(db, text, false) }
    }

    /// # Safety
    /// As for [`Stmt::prepare`].
    unsafe fn prepare_inner(db: *mut ffi::sqlite3, text: &str, persistent: bool) -> Result<(Option<Stmt>, usize)> {
        let len = c_int::try_from(text.len()).map_err(|_| Error::sqlite(ffi::SQLITE_TOOBIG, "SQL text too long"))?;
        let mut raw = std::ptr::null_mut();
        let mut tail: *const c_char = std::ptr::null();
        let flags = if persistent { ffi::SQLITE_PREPARE_PERSISTENT } else { 0 };
        // SAFETY: `db` is valid (caller); `text` is valid for `len` bytes; SQLite writes the
        // statement and a tail pointer inside `text`.
        let rc = unsafe { ffi::sqlite3_prepare_v3(db, text.as_ptr().cast(), len, flags, &mut raw, &mut tail) };
        if rc != ffi::SQLITE_OK {
            // SAFETY: `db` is valid.
            return Err(unsafe { last_error(db) });
        }
        let consumed = if tail.is_null() {
            text.len()
        } else {
            // SAFETY: SQLite sets `tail` to a position inside `text` (or its end).
            usize::try_from(unsafe { tail.offset_from(text.as_ptr().cast::<c_char>()) }).unwrap_or(text.len())
        };
        // SQLite stops after a token, so this is a char boundary; be defensive anyway.
        let consumed = if text.is_char_boundary(consumed) {
            consumed
        } else {
            text.len()
        };
        let Some(raw) = NonNull::new(raw) else {
            return Ok((None, consumed));
        };
        let mut stmt = Stmt {
            raw,
            db,
            columns: Arc::from(Vec::new()),
            param_names: Box::default(),
            readonly: false,
            reprepares: 0,
            fresh: true,
            rows_hint: 0,
            inline_skips: 0,
        };
        stmt.load_metadata();
        Ok((Some(stmt), consumed))
    }

    fn load_metadata(&mut self) {
        let raw = self.raw.as_ptr();
        // SAFETY: `raw` is a valid statement (invariant 1). Names returned by SQLite are
        // NUL-terminated and copied before the next call.
        unsafe {
            let n = ffi::sqlite3_column_count(raw);
            let mut cols = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for i in 0..n {
                let name = cstr_to_string(ffi::sqlite3_column_name(raw, i)).unwrap_or_default();
                let decl_type = cstr_to_string(ffi::sqlite3_column_decltype(raw, i));
                cols.push(Column { name, decl_type });
            }
            self.columns = Arc::from(cols);
            let np = ffi::sqlite3_bind_parameter_count(raw);
            self.param_names = (1..=np)
                .map(|i| cstr_to_string(ffi::sqlite3_bind_parameter_name(raw, i)).map(String::into_boxed_str))
                .collect();
            self.readonly = ffi::sqlite3_stmt_readonly(raw) != 0;
            self.reprepares = ffi::sqlite3_stmt_status(raw, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
        }
    }

    /// Reload column metadata if SQLite re-prepared the statement after a schema change
    /// (e.g. `SELECT *` after `ALTER TABLE … ADD COLUMN`). Call after the first step.
    #[inline]
    fn check_reprepared(&mut self) {
        // SAFETY: valid statement (invariant 1).
        let n = unsafe { ffi::sqlite3_stmt_status(self.raw.as_ptr(), ffi::SQLITE_STMTSTATUS_REPREPARE, 0) };
        if n != self.reprepares {
            self.load_metadata();
        }
    }

    /// The result columns.
    pub(crate) fn columns(&self) -> &Columns {
        &self.columns
    }

    /// `sqlite3_stmt_readonly`: the statement makes no direct change to the database file.
    pub(crate) fn readonly(&self) -> bool {
        self.readonly
    }

    /// Number of parameters.
    pub(crate) fn param_count(&self) -> usize {
        self.param_names.len()
    }

    fn param_index(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.param_names.iter().position(|n| n.as_deref() == Some(name)) {
            return Some(i);
        }
        if name.starts_with([':', '@', '$', '?']) {
            return None;
        }
        self.param_names.iter().position(|n| {
            n.as_deref()
                .is_some_and(|n| n.len() == name.len() + 1 && n.starts_with([':', '@', '$']) && &n[1..] == name)
        })
    }

    /// Bind all parameters. The values must stay alive and unmoved until [`Stmt::reset`].
    pub(crate) fn bind(&mut self, params: &ParamValues, text: &str) -> Result<()> {
        let expected = self.param_count();
        match params {
            ParamValues::None => {
                if expected != 0 {
                    return Err(Error::ParameterCount {
                        expected,
                        given: 0,
                        sql: text.to_owned(),
                    });
                }
            }
            ParamValues::Positional(values) => {
                if values.len() != expected {
                    return Err(Error::ParameterCount {
                        expected,
                        given: values.len(),
                        sql: text.to_owned(),
                    });
                }
                for (i, v) in values.iter().enumerate() {
                    self.bind_value(i + 1, v).map_err(|e| e.with_sql(text))?;
                }
            }
            ParamValues::Named(pairs) => {
                let mut bound: SmallVec<[bool; 16]> = smallvec::smallvec![false; expected];
                for (name, v) in pairs {
                    let Some(i) = self.param_index(name) else {
                        return Err(Error::ParameterName {
                            message: format!("the statement has no parameter named {name}"),
                            sql: text.to_owned(),
                        });
                    };
                    if std::mem::replace(&mut bound[i], true) {
                        return Err(Error::ParameterName {
                            message: format!("parameter {name} given more than once"),
                            sql: text.to_owned(),
                        });
                    }
                    self.bind_value(i + 1, v).map_err(|e| e.with_sql(text))?;
                }
                if let Some(missing) = bound.iter().position(|b| !b) {
                    let name = self.param_names[missing]
                        .as_deref()
                        .map_or_else(|| format!("?{}", missing + 1), str::to_owned);
                    return Err(Error::ParameterName {
                        message: format!("no value given for parameter {name}"),
                        sql: text.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    fn bind_value(&mut self, index: usize, value: &Value) -> Result<()> {
        let raw = self.raw.as_ptr();
        let i = c_int::try_from(index).map_err(|_| Error::sqlite(ffi::SQLITE_RANGE, "parameter index out of range"))?;
        // SAFETY: valid statement (invariant 1). Text and blob buffers are bound with
        // SQLITE_STATIC and stay alive until `reset` clears the bindings (invariant 3). Empty
        // slices have a non-null dangling pointer, which SQLite reads zero bytes from.
        let rc = unsafe {
            match value {
                Value::Null => ffi::sqlite3_bind_null(raw, i),
                Value::Integer(v) => ffi::sqlite3_bind_int64(raw, i, *v),
                Value::Real(v) => ffi::sqlite3_bind_double(raw, i, *v),
                Value::Text(s) => ffi::sqlite3_bind_text64(
                    raw,
                    i,
                    s.as_ptr().cast(),
                    s.len() as u64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                Value::Blob(b) => {
                    ffi::sqlite3_bind_blob64(raw, i, b.as_ptr().cast(), b.len() as u64, ffi::SQLITE_STATIC())
                }
            }
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            // SAFETY: `db` is the statement's valid connection.
            Err(unsafe { last_error(self.db) })
        }
    }

    /// Advance: `Ok(true)` when a row is available, `Ok(false)` when done.
    #[inline]
    pub(crate) fn step(&mut self) -> Result<bool> {
        let raw = self.raw.as_ptr();
        STEPPING.with(|s| s.set(raw));
        // SAFETY: valid statement (invariant 1).
        let rc = unsafe { ffi::sqlite3_step(raw) };
        STEPPING.with(|s| s.set(std::ptr::null_mut()));
        match rc {
            ffi::SQLITE_ROW => {
                if self.fresh {
                    self.fresh = false;
                    self.check_reprepared();
                }
                Ok(true)
            }
            ffi::SQLITE_DONE => Ok(false),
            // SAFETY: `db` is valid.
            _ => Err(unsafe { last_error(self.db) }),
        }
    }

    /// Run to completion, discarding any rows.
    pub(crate) fn run(&mut self) -> Result<()> {
        while self.step()? {}
        Ok(())
    }

    /// The bytes of the current row's text (`text`) or blob value in column `col`.
    ///
    /// # Safety
    /// The statement is positioned on a row (after `step` returned `true`), `col` is below the
    /// column count and the column holds text or a blob. The slice is valid until the next
    /// call on the statement: callers copy it at once.
    #[inline]
    unsafe fn column_bytes(&self, col: c_int, text: bool) -> Result<&[u8]> {
        let raw = self.raw.as_ptr();
        // SAFETY: as the caller promises. The pointer is taken before the length, as SQLite
        // asks; it is NULL with a non-zero length only on out-of-memory.
        unsafe {
            let p = if text {
                ffi::sqlite3_column_text(raw, col)
            } else {
                ffi::sqlite3_column_blob(raw, col).cast::<u8>()
            };
            let n = ffi::sqlite3_column_bytes(raw, col) as usize;
            if p.is_null() {
                return if n == 0 {
                    Ok(&[])
                } else {
                    Err(Error::sqlite(ffi::SQLITE_NOMEM, "out of memory reading a column"))
                };
            }
            Ok(std::slice::from_raw_parts(p, n))
        }
    }

    /// The current row's value in column `i`.
    #[inline]
    pub(crate) fn value(&self, i: usize) -> Result<Value> {
        let raw = self.raw.as_ptr();
        let col = i as c_int;
        // SAFETY: valid statement positioned on a row (callers only read after `step`
        // returned `true`); `i` < column count; text and blob bytes are copied at once.
        unsafe {
            match ffi::sqlite3_column_type(raw, col) {
                ffi::SQLITE_INTEGER => Ok(Value::Integer(ffi::sqlite3_column_int64(raw, col))),
                ffi::SQLITE_FLOAT => Ok(Value::Real(ffi::sqlite3_column_double(raw, col))),
                ffi::SQLITE_TEXT => match std::str::from_utf8(self.column_bytes(col, true)?) {
                    Ok(s) => Ok(Value::Text(s.to_owned())),
                    Err(_) => Err(Error::InvalidUtf8 {
                        column: ColumnLabel(&self.columns[i].name, i).to_string(),
                    }),
                },
                ffi::SQLITE_BLOB => Ok(Value::Blob(self.column_bytes(col, false)?.to_vec())),
                _ => Ok(Value::Null),
            }
        }
    }

    /// The current row.
    #[inline]
    pub(crate) fn row(&self) -> Result<Row> {
        let n = self.columns.len();
        let mut values = crate::row::RowValues::with_capacity(n);
        for i in 0..n {
            values.push(self.value(i)?);
        }
        Ok(Row::from_values(Arc::clone(&self.columns), values))
    }

    /// Append the current row to `rows`, built in place. On error `rows` is unchanged.
    #[inline]
    pub(crate) fn push_row(&self, rows: &mut Vec<Row>) -> Result<()> {
        rows.push(Row::empty(Arc::clone(&self.columns)));
        let row = rows.last_mut().expect("just pushed");
        for i in 0..self.columns.len() {
            match self.value(i) {
                Ok(v) => row.push_value(v),
                Err(e) => {
                    rows.pop();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Append the current row to `buf` in the chunk encoding of [`crate::pipe`]. On error
    /// `buf` may hold part of the row (the whole chunk is then abandoned).
    #[inline]
    pub(crate) fn encode_row(&self, buf: &mut Vec<u8>) -> Result<()> {
        let raw = self.raw.as_ptr();
        let mut e = crate::pipe::Encoder(buf);
        for i in 0..self.columns.len() {
            let col = i as c_int;
            // SAFETY: as in `value`: a valid statement positioned on a row, `i` < column
            // count, and text and blob bytes are copied at once.
            unsafe {
                match ffi::sqlite3_column_type(raw, col) {
                    ffi::SQLITE_INTEGER => e.integer(ffi::sqlite3_column_int64(raw, col)),
                    ffi::SQLITE_FLOAT => e.real(ffi::sqlite3_column_double(raw, col)),
                    ffi::SQLITE_TEXT => e.text(self.column_bytes(col, true)?)?,
                    ffi::SQLITE_BLOB => e.blob(self.column_bytes(col, false)?)?,
                    _ => e.null(),
                }
            }
        }
        Ok(())
    }

    /// Reset for the next execution and clear the bindings (invariant 3).
    #[inline]
    pub(crate) fn reset(&mut self) {
        // SAFETY: valid statement (invariant 1). The return codes repeat the last step's
        // error, which was already reported.
        unsafe {
            ffi::sqlite3_reset(self.raw.as_ptr());
            ffi::sqlite3_clear_bindings(self.raw.as_ptr());
        }
        self.fresh = true;
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement is valid and its connection still open (invariant 2).
        unsafe {
            ffi::sqlite3_finalize(self.raw.as_ptr());
        }
    }
}

/// # Safety
/// `p` must be null or point to a NUL-terminated string.
unsafe fn cstr_to_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated (caller).
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// The first complete statement of a script (for error reports when it fails to prepare):
/// the shortest prefix ending in `;` that SQLite considers complete (`sqlite3_complete`, which
/// knows about strings, comments and trigger bodies), or the whole text.
pub(crate) fn first_statement(text: &str) -> &str {
    for (i, _) in text.match_indices(';') {
        let candidate = &text[..=i];
        if let Ok(c) = std::ffi::CString::new(candidate) {
            // SAFETY: `c` is a NUL-terminated string; sqlite3_complete only reads it.
            if unsafe { ffi::sqlite3_complete(c.as_ptr()) } != 0 {
                return candidate.trim();
            }
        }
    }
    text.trim()
}

/// An LRU cache of prepared statements keyed by SQL text.
pub(crate) struct StmtCache {
    map: LruCache<Box<str>, Stmt>,
    capacity: usize,
}

impl StmtCache {
    pub(crate) fn new(capacity: usize) -> Self {
        StmtCache {
            map: LruCache::new(capacity.max(1)),
            capacity,
        }
    }

    /// Run `f` on the statement for `text` (cached, or prepared now and then cached), then
    /// reset it. `Ok(None)` when `text` holds no statement.
    ///
    /// # Safety
    /// As for [`Stmt::prepare`].
    #[inline]
    pub(crate) unsafe fn with<R>(
        &mut self,
        db: *mut ffi::sqlite3,
        text: &str,
        f: impl FnOnce(&mut Stmt) -> Result<R>,
    ) -> Result<Option<R>> {
        if let Some(stmt) = self.map.get_mut(text) {
            let r = f(stmt);
            stmt.reset();
            return r.map(Some);
        }
        // SAFETY: forwarded from the caller.
        let Some(mut stmt) = (unsafe { Stmt::prepare(db, text, self.capacity > 0) })? else {
            return Ok(None);
        };
        let r = f(&mut stmt);
        stmt.reset();
        if self.capacity > 0 {
            self.map.insert(text.into(), stmt);
        }
        r.map(Some)
    }

    /// Take the statement for `text` out of the cache (or prepare it), for a cursor that keeps
    /// it across commands. Give it back with [`StmtCache::give_back`].
    ///
    /// # Safety
    /// As for [`Stmt::prepare`].
    pub(crate) unsafe fn take(&mut self, db: *mut ffi::sqlite3, text: &str) -> Result<Option<Stmt>> {
        if let Some(stmt) = self.map.remove(text) {
            return Ok(Some(stmt));
        }
        // SAFETY: forwarded from the caller.
        unsafe { Stmt::prepare(db, text, self.capacity > 0) }
    }

    /// Return a statement taken with [`StmtCache::take`].
    pub(crate) fn give_back(&mut self, text: Box<str>, mut stmt: Stmt) {
        stmt.reset();
        if self.capacity > 0 {
            self.map.insert(text, stmt);
        }
    }

    /// Finalize every cached statement.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }

    /// Number of cached statements.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t(a INTEGER, b TEXT)").unwrap();
        c
    }

    #[test]
    fn cache_prepares_once_and_evicts_lru() {
        let c = db();
        // SAFETY: `c` outlives the cache (dropped at the end of the test, after `cache`).
        let db = unsafe { c.handle() };
        let mut cache = StmtCache::new(2);
        for text in ["SELECT 1", "SELECT 2", "SELECT 1", "SELECT 3"] {
            // SAFETY: as above.
            let r = unsafe { cache.with(db, text, |st| st.run()) };
            assert!(matches!(r, Ok(Some(()))));
        }
        assert_eq!(cache.len(), 2);
        // SAFETY: as above.
        let blank = unsafe { cache.with(db, " -- nothing\n ;", |st| st.run()) };
        assert!(matches!(blank, Ok(None)));
        // SAFETY: as above.
        let two = unsafe { cache.with(db, "SELECT 1; SELECT 2", |st| st.run()) };
        assert!(matches!(two, Err(Error::MultipleStatements { .. })));
        // SAFETY: as above.
        let lead = unsafe { cache.with(db, "; SELECT 5", |st| st.run()) };
        assert!(matches!(lead, Ok(Some(()))));
        drop(cache);
    }

    #[test]
    fn binding_checks_count_and_names() {
        let c = db();
        // SAFETY: the statement is dropped before `c`.
        let mut st = unsafe { Stmt::prepare(c.handle(), "SELECT :a, @b, $c", false) }
            .unwrap()
            .unwrap();
        let named = |pairs: &[(&'static str, i64)]| {
            ParamValues::Named(pairs.iter().map(|(k, v)| ((*k).into(), Value::Integer(*v))).collect())
        };
        assert!(st.bind(&named(&[(":a", 1), ("b", 2), ("$c", 3)]), "q").is_ok());
        st.reset();
        let e = st.bind(&named(&[(":a", 1), ("@b", 2)]), "q").unwrap_err();
        assert!(e.to_string().contains("no value given for parameter $c"), "{e}");
        st.reset();
        let e = st.bind(&named(&[(":a", 1), (":zz", 2)]), "q").unwrap_err();
        assert!(e.to_string().contains(":zz"), "{e}");
        st.reset();
        let e = st.bind(&named(&[(":a", 1), (":a", 2)]), "q").unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
        st.reset();
        let e = st.bind(&ParamValues::None, "q").unwrap_err();
        assert!(matches!(
            e,
            Error::ParameterCount {
                expected: 3,
                given: 0,
                ..
            }
        ));
        drop(st);
    }

    #[test]
    fn columns_follow_schema_changes() {
        let c = db();
        // SAFETY: the statement is dropped before `c`.
        let mut st = unsafe { Stmt::prepare(c.handle(), "SELECT * FROM t", true) }
            .unwrap()
            .unwrap();
        assert_eq!(st.columns().len(), 2);
        c.execute_batch("ALTER TABLE t ADD COLUMN z REAL; INSERT INTO t VALUES (1, 'x', 2.5)")
            .unwrap();
        assert!(st.step().unwrap());
        assert_eq!(st.columns().len(), 3);
        assert_eq!(st.row().unwrap().get::<f64>("z").unwrap(), 2.5);
        st.reset();
        drop(st);
    }
}
