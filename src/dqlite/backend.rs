//! The dqlite [`Backend`]: aiolite's statements, cursors and transactions on a dqlite leader
//! connection, with leader discovery, reconnection and the retry rules of the module docs.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashlink::LruCache;

use super::cluster::Cluster;
use super::conn::{Conn, ConnError};
use super::proto::{Request, Response, Rows};
use super::sqltext::{self, ParamLayout, TxEffect};
use crate::error::{Error, ErrorCode, Result};
use crate::options::{self, ConnectOptions, IsolationLevel};
use crate::params::ParamValues;
use crate::row::{Column, Columns, Row, RowValues};
use crate::sql;
use crate::value::Value;
use crate::worker::{Backend, CursorChunk, ExecResult, FetchKind, Reply};

/// dqlite's "not leader" (`SQLITE_IOERR_NOT_LEADER`) and its legacy form.
const NOT_LEADER: [u64; 2] = [10250, 8202];
/// dqlite's "leadership lost" (`SQLITE_IOERR_LEADERSHIP_LOST`) and its legacy form.
const LEADERSHIP_LOST: [u64; 2] = [10506, 8458];
/// `SQLITE_NOTFOUND`: "no database opened" / "no statement with the given id" (stale ids).
const STALE_IDS: u64 = 12;
/// `DQLITE_PARSE`: the server could not parse the request.
const DQLITE_PARSE: u64 = 1005;
/// `SQLITE_BUSY` and its `SQLITE_BUSY_SNAPSHOT` form (which waiting cannot resolve).
const BUSY: u64 = 5;
const BUSY_SNAPSHOT: u64 = 517;
/// `SQLITE_READONLY`.
const READONLY: i32 = 8;

/// Connections lost in a row (before anything ran) after which a call gives up.
const MAX_LOSSES: u32 = 5;

/// The delays between retries of a statement that met `SQLITE_BUSY`, as SQLite's own busy
/// handler uses them (ms); the last one repeats until the busy timeout.
const BUSY_DELAYS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

/// How one attempt at a request failed.
#[derive(Debug)]
enum Fail {
    /// The server ran the request and reported a SQL error; the connection is fine.
    Sql { code: u64, message: String },
    /// The server refused the request without running it: not the leader, leadership lost (a
    /// write that failed this way is never applied, per dqlite's FAQ), or stale ids. The
    /// connection must be replaced.
    Refused { code: u64, message: String },
    /// The connection broke; `sent`: after the request was written.
    Lost { sent: bool, message: String },
    /// No answer within the request timeout (after sending).
    Timeout(Duration),
    /// An error found on our side before or without involving the server (parameters,
    /// encoding, invalid UTF-8 in a result); the connection is fine.
    Client(Error),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Sql { code, message } | Fail::Refused { code, message } => write!(f, "{message} (code {code})"),
            Fail::Lost { message, .. } => f.write_str(message),
            Fail::Timeout(t) => write!(f, "no answer within {t:?}"),
            Fail::Client(e) => write!(f, "{e}"),
        }
    }
}

impl From<ConnError> for Fail {
    fn from(e: ConnError) -> Fail {
        match e {
            ConnError::NotSent(message) => Fail::Lost { sent: false, message },
            ConnError::Lost(message) | ConnError::Protocol(message) => Fail::Lost { sent: true, message },
            ConnError::Timeout(t) => Fail::Timeout(t),
            ConnError::Encode(e) => Fail::Client(Error::InvalidArgument { message: e.to_string() }),
        }
    }
}

/// A FAILURE response as a [`Fail`].
fn failure(code: u64, message: String) -> Fail {
    if NOT_LEADER.contains(&code) || LEADERSHIP_LOST.contains(&code) || code == STALE_IDS {
        Fail::Refused { code, message }
    } else {
        Fail::Sql { code, message }
    }
}

/// An answer of the wrong type: the connection is out of step.
fn unexpected(what: &str, got: &Response) -> Fail {
    Fail::Lost {
        sent: true,
        message: format!("unexpected answer to {what}: message type {}", got.kind()),
    }
}

/// `true` for the FAILURE dqlite 1.11 gives a QUERY of a statement without result columns
/// (`1 "not an error"`): nothing ran, and the statement must be sent with EXEC.
fn is_zero_column_query(f: &Fail) -> bool {
    matches!(f, Fail::Sql { code: 1, message } if message == "not an error")
}

/// What a failed request means for retrying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Reads only (`SELECT`): may be re-sent outside a transaction.
    Read,
    /// Opens a transaction (`BEGIN`, `SAVEPOINT` outside one): anything it did dies with a
    /// lost connection, so it may always be re-sent outside a transaction.
    Begin,
    /// May write: never re-sent once it may have run.
    Write,
    /// `COMMIT`/`END`, or `RELEASE` of the savepoint that opened the transaction.
    Commit,
    /// `ROLLBACK`: a lost connection rolls back too.
    Rollback,
}

fn class_of(stmt: &str, tx: Option<&Tx>) -> Class {
    match sqltext::tx_effect(stmt) {
        Some(TxEffect::Begin) => Class::Begin,
        Some(TxEffect::Savepoint(_)) if tx.is_none() => Class::Begin,
        Some(TxEffect::Commit) => Class::Commit,
        Some(TxEffect::Release(name)) if tx.is_some_and(|t| t.by_savepoint && t.savepoints.first() == Some(&name)) => {
            Class::Commit
        }
        Some(TxEffect::Rollback) => Class::Rollback,
        _ if sqltext::is_read(stmt) => Class::Read,
        _ => Class::Write,
    }
}

/// An open transaction, as tracked from the statements that ran (dqlite does not report it).
#[derive(Clone, Debug, Default)]
struct Tx {
    /// Open savepoints, outermost first (names folded to lower case).
    savepoints: Vec<String>,
    /// Opened by `SAVEPOINT` (its `RELEASE` commits), not by `BEGIN`.
    by_savepoint: bool,
}

/// A statement prepared on the current leader connection.
#[derive(Clone, Debug)]
struct Prepared {
    id: u32,
    params: usize,
    /// Whether it returns rows, once known (`None`: guess from the text).
    rows: Option<bool>,
    /// Its parameter names, computed when named parameters are first bound.
    layout: Option<Arc<ParamLayout>>,
}

/// The leader connection with its open database and prepared statements.
struct Session {
    conn: Conn,
    db: u32,
    stmts: LruCache<Box<str>, Prepared>,
    capacity: usize,
    last_insert_rowid: i64,
    /// Whether the server reads four-byte parameter counts (schema 1, dqlite >= 1.12), once
    /// asked.
    wide_params: Option<bool>,
}

impl Session {
    /// Make sure the server can take `n` parameters. Above 255 they need schema 1, which dqlite
    /// 1.11 does not know: it ignores the schema byte and binds nothing (silently!). So the
    /// first time, ask with a harmless `SELECT ?` sent as schema 1.
    fn check_params(&mut self, n: usize) -> std::result::Result<(), Fail> {
        if n <= 255 {
            return Ok(());
        }
        let ok = match self.wide_params {
            Some(ok) => ok,
            None => {
                let req = Request::QuerySql {
                    db: self.db,
                    sql: "SELECT ?".into(),
                    params: Cow::Owned(vec![Value::Integer(1)]),
                };
                let ok = match self.conn.call_wide(&req)? {
                    Response::Rows(mut rows) => {
                        let first = rows.rows.first().cloned();
                        while rows.more {
                            rows = self.next_rows()?;
                        }
                        matches!(first.as_deref(), Some([Value::Integer(1)]))
                    }
                    Response::Failure { .. } => false,
                    other => return Err(unexpected("QUERY_SQL", &other)),
                };
                self.wide_params = Some(ok);
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Fail::Client(Error::Unsupported {
                message: format!(
                    "this dqlite server takes at most 255 parameters per statement ({n} given); dqlite >= 1.12 takes more"
                ),
            }))
        }
    }

    fn call(&mut self, req: &Request<'_>) -> std::result::Result<Response, Fail> {
        match self.conn.call(req)? {
            Response::Failure { code, message } => Err(failure(code, message)),
            r => Ok(r),
        }
    }

    /// EXEC_SQL / EXEC: `(last_insert_id, rows_affected)`.
    fn result(&mut self, req: &Request<'_>, what: &str) -> std::result::Result<(i64, u64), Fail> {
        match self.call(req)? {
            Response::Result {
                last_insert_id,
                rows_affected,
            } => {
                self.last_insert_rowid = last_insert_id as i64;
                Ok((last_insert_id as i64, rows_affected))
            }
            other => Err(unexpected(what, &other)),
        }
    }

    fn exec_sql(&mut self, sql: &str) -> std::result::Result<(i64, u64), Fail> {
        let req = Request::ExecSql {
            db: self.db,
            sql: sql.into(),
            params: Cow::Borrowed(&[]),
        };
        self.result(&req, "EXEC_SQL")
    }

    /// The prepared statement for `text` (one statement), from the cache or PREPARE.
    fn prepare(&mut self, text: &str) -> std::result::Result<Prepared, Fail> {
        if let Some(p) = self.stmts.get(text) {
            return Ok(p.clone());
        }
        if self.stmts.len() >= self.capacity
            && let Some((_, old)) = self.stmts.remove_lru()
        {
            let r = self.call(&Request::Finalize {
                db: self.db,
                stmt: old.id,
            });
            match r {
                Ok(_) | Err(Fail::Sql { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        match self.call(&Request::Prepare {
            db: self.db,
            sql: text.into(),
        })? {
            Response::Stmt { id, params, .. } => {
                let p = Prepared {
                    id,
                    params: params as usize,
                    rows: None,
                    layout: None,
                };
                self.stmts.insert(text.into(), p.clone());
                Ok(p)
            }
            other => Err(unexpected("PREPARE", &other)),
        }
    }

    fn remember(&mut self, text: &str, f: impl FnOnce(&mut Prepared)) {
        if let Some(p) = self.stmts.get_mut(text) {
            f(p);
        }
    }

    /// Read one ROWS message of a stream in progress.
    fn next_rows(&mut self) -> std::result::Result<Rows, Fail> {
        match self.conn.recv()? {
            Response::Rows(r) => Ok(r),
            Response::Failure { code, message } => Err(failure(code, message)),
            other => Err(unexpected("QUERY", &other)),
        }
    }

    /// Send a QUERY / QUERY_SQL and read its first ROWS message.
    fn start_query(&mut self, req: &Request<'_>) -> std::result::Result<Rows, Fail> {
        self.conn.send(req, true)?;
        self.next_rows()
    }

    /// `changes()` and `last_insert_rowid()` of this connection.
    fn changes(&mut self) -> std::result::Result<u64, Fail> {
        let rows = drain_collect(self, "SELECT changes(), last_insert_rowid()")?;
        if let Some([Value::Integer(c), Value::Integer(r)]) = rows.first().map(|r| &**r) {
            self.last_insert_rowid = *r;
            return Ok((*c).max(0) as u64);
        }
        Err(Fail::Lost {
            sent: true,
            message: "unexpected answer to SELECT changes()".into(),
        })
    }

    /// Stop a query whose ROWS are still arriving: INTERRUPT, then skip messages up to EMPTY.
    fn interrupt(&mut self) -> std::result::Result<(), Fail> {
        self.conn.send(&Request::Interrupt { db: self.db }, false)?;
        loop {
            match self.conn.recv()? {
                Response::Empty => return Ok(()),
                Response::Rows(_) | Response::Failure { .. } => {}
                other => return Err(unexpected("INTERRUPT", &other)),
            }
        }
    }
}

/// A query's rows, buffered on the worker between `cursor_next` calls.
struct CursorState {
    sql: Box<str>,
    columns: Columns,
    buf: VecDeque<Row>,
    /// The server sent the last batch (or the stream failed).
    done: bool,
    /// The error that ended the stream, reported after the buffered rows.
    error: Option<Error>,
}

/// Column metadata from a ROWS batch (dqlite sends names only: no declared types).
fn columns_of(names: &[String], prev: Option<&Columns>) -> Columns {
    if let Some(p) = prev
        && p.len() == names.len()
        && p.iter().zip(names).all(|(c, n)| c.name == *n)
    {
        return Arc::clone(p);
    }
    names
        .iter()
        .map(|n| Column {
            name: n.clone(),
            decl_type: None,
        })
        .collect::<Vec<_>>()
        .into()
}

fn push_rows(buf: &mut VecDeque<Row>, columns: &Columns, rows: Rows) {
    buf.extend(rows.rows.into_iter().map(|v| Row::from_values(Arc::clone(columns), v)));
}

fn invalid_utf8(columns: &Columns, i: usize) -> Error {
    Error::InvalidUtf8 {
        column: columns.get(i).map_or_else(|| i.to_string(), |c| c.name.clone()),
    }
}

/// Bind `params` to a prepared statement: the values in position order.
fn bind<'p>(text: &str, p: &mut Prepared, params: &'p ParamValues) -> std::result::Result<Cow<'p, [Value]>, Fail> {
    let count = |given: usize| {
        Fail::Client(Error::ParameterCount {
            expected: p.params,
            given,
            sql: text.to_owned(),
        })
    };
    match params {
        ParamValues::None if p.params == 0 => Ok(Cow::Borrowed(&[])),
        ParamValues::None => Err(count(0)),
        ParamValues::Positional(v) if v.len() == p.params => Ok(Cow::Borrowed(&v[..])),
        ParamValues::Positional(v) => Err(count(v.len())),
        ParamValues::Named(pairs) => {
            let layout = Arc::clone(p.layout.get_or_insert_with(|| Arc::new(sqltext::param_layout(text))));
            if layout.count() != p.params {
                return Err(Fail::Client(Error::Unsupported {
                    message: format!(
                        "cannot bind named parameters on dqlite: aiolite finds {} parameters in the statement, \
                         the server {}; use positional parameters",
                        layout.count(),
                        p.params
                    ),
                }));
            }
            let name_error = |message: String| {
                Fail::Client(Error::ParameterName {
                    message,
                    sql: text.to_owned(),
                })
            };
            let mut out: Vec<Option<Value>> = vec![None; p.params];
            for (name, v) in pairs {
                let Some(i) = layout.index(name) else {
                    return Err(name_error(format!("the statement has no parameter named {name}")));
                };
                if out[i].replace(v.clone()).is_some() {
                    return Err(name_error(format!("parameter {name} given more than once")));
                }
            }
            if let Some(missing) = out.iter().position(Option::is_none) {
                let name = layout.names[missing]
                    .clone()
                    .unwrap_or_else(|| format!("?{}", missing + 1));
                return Err(name_error(format!("no value given for parameter {name}")));
            }
            Ok(Cow::Owned(out.into_iter().map(Option::unwrap_or_default).collect()))
        }
    }
}

/// A SQL error from the server as an [`Error::Sqlite`].
fn sql_error(code: u64, message: String, text: &str, nparams: usize) -> Error {
    let (code, message) = match code {
        0 => (1, message),
        DQLITE_PARSE if nparams > 255 => (
            1,
            format!(
                "the dqlite server could not read a statement with {nparams} parameters \
                 (more than 255 need dqlite >= 1.12): {message}"
            ),
        ),
        c => (i32::try_from(c).unwrap_or(1), message),
    };
    Error::Sqlite {
        code: ErrorCode::from_code(code),
        extended_code: code,
        message,
        sql: Some(text.trim().to_owned()),
    }
}

fn writes_refused(text: &str) -> Error {
    Error::sqlite(READONLY, "the statement writes and this connection is read-only").with_sql(text)
}

fn empty_chunk() -> CursorChunk {
    CursorChunk {
        columns: Arc::from(Vec::new()),
        rows: Vec::new(),
        done: true,
    }
}

fn empty_reply(kind: FetchKind) -> Reply {
    match kind {
        FetchKind::All => Reply::Rows(Vec::new()),
        FetchKind::One => Reply::Row(None),
        FetchKind::Scalar => Reply::Scalar(None),
    }
}

/// What to keep of a statement's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    /// Run it to completion, discard the rows (`execute`, scripts).
    Nothing,
    /// The first row only (`fetch_one`, `fetch_scalar`); the others are read and dropped.
    First,
    /// Every row (`fetch_all`).
    All,
    /// The first batch; the rest stays on the connection for a cursor.
    Stream,
}

/// What to send: a prepared statement, or SQL text (scripts).
#[derive(Clone, Copy, Debug)]
enum Target<'a> {
    Prepared(u32),
    Text(&'a str),
}

/// What one statement gave.
#[derive(Debug)]
struct Ran {
    /// Its rows; `None` when it has no result columns (it ran through EXEC). With
    /// [`Keep::Stream`], `more` says whether more batches are coming.
    rows: Option<Rows>,
    /// Rows it changed (DML only).
    changes: u64,
    last_insert_rowid: i64,
}

/// A failure before the COMMIT of the transaction [`attempt`] wrapped around a statement:
/// whatever ran died with the connection, so nothing was applied.
fn not_applied(f: Fail) -> Fail {
    match f {
        Fail::Lost { message, .. } => Fail::Lost { sent: false, message },
        other => other,
    }
}

/// One attempt at one statement: through QUERY when it returns rows (known from an earlier
/// run, or guessed from its text; a QUERY refused for lack of result columns falls back to
/// EXEC), else through EXEC.
///
/// dqlite 1.11 does not replicate a write run through QUERY outside a transaction (the row is
/// lost, and the leader aborts at its next write: `vfsFileShmLock: Assertion wal->n_tx == 0`),
/// while inside a transaction it works and is replicated at COMMIT. So DML with `RETURNING`
/// outside a transaction is wrapped in `BEGIN` … `COMMIT` here.
fn attempt(
    s: &mut Session,
    stmt: &str,
    target: Target<'_>,
    known_rows: Option<bool>,
    values: &[Value],
    keep: Keep,
    in_tx: bool,
) -> std::result::Result<Ran, Fail> {
    let dml = sql::verb(stmt).is_dml();
    let use_query = known_rows.unwrap_or_else(|| sqltext::likely_returns_rows(stmt));
    let wrap = use_query && dml && !in_tx;
    if !wrap {
        return attempt_inner(s, stmt, target, use_query, values, keep, dml);
    }
    s.exec_sql("BEGIN").map_err(not_applied)?;
    let keep = if keep == Keep::Stream { Keep::All } else { keep };
    match attempt_inner(s, stmt, target, use_query, values, keep, dml) {
        Ok(ran) => match s.exec_sql("COMMIT") {
            Ok(_) => Ok(ran),
            // Still open (e.g. SQLITE_BUSY): roll back, so the whole statement can be retried.
            Err(f @ Fail::Sql { .. }) => {
                let _ = s.exec_sql("ROLLBACK");
                Err(f)
            }
            // Lost after COMMIT was sent: unknown outcome. Refused: not applied.
            Err(f) => Err(f),
        },
        Err(f @ (Fail::Sql { .. } | Fail::Client(_))) => {
            // SQLite may have rolled back already; a broken connection shows at the next request.
            let _ = s.exec_sql("ROLLBACK");
            Err(f)
        }
        Err(f) => Err(not_applied(f)),
    }
}

fn attempt_inner(
    s: &mut Session,
    stmt: &str,
    target: Target<'_>,
    use_query: bool,
    values: &[Value],
    keep: Keep,
    dml: bool,
) -> std::result::Result<Ran, Fail> {
    let db = s.db;
    if use_query {
        let req = match target {
            Target::Prepared(id) => Request::Query {
                db,
                stmt: id,
                params: Cow::Borrowed(values),
            },
            Target::Text(t) => Request::QuerySql {
                db,
                sql: t.into(),
                params: Cow::Borrowed(values),
            },
        };
        match s.start_query(&req) {
            Ok(first) => {
                s.remember(stmt, |q| q.rows = Some(true));
                if keep == Keep::Stream {
                    return Ok(Ran {
                        rows: Some(first),
                        changes: 0,
                        last_insert_rowid: s.last_insert_rowid,
                    });
                }
                let rows = finish_rows(s, first, keep)?;
                // `… RETURNING` through QUERY: ask for what EXEC's RESULT would have said.
                let changes = if dml { s.changes()? } else { 0 };
                return Ok(Ran {
                    rows: Some(rows),
                    changes,
                    last_insert_rowid: s.last_insert_rowid,
                });
            }
            Err(f) if is_zero_column_query(&f) => s.remember(stmt, |q| q.rows = Some(false)),
            Err(f) => return Err(f),
        }
    }
    let req = match target {
        Target::Prepared(id) => Request::Exec {
            db,
            stmt: id,
            params: Cow::Borrowed(values),
        },
        Target::Text(t) => Request::ExecSql {
            db,
            sql: t.into(),
            params: Cow::Borrowed(values),
        },
    };
    let (rowid, affected) = s.result(&req, "EXEC")?;
    Ok(Ran {
        rows: None,
        // RESULT repeats the last DML's count after other statements (BEGIN, DDL, …).
        changes: if dml { affected } else { 0 },
        last_insert_rowid: rowid,
    })
}

/// Read the remaining batches of a query, keeping what `keep` says.
fn finish_rows(s: &mut Session, mut rows: Rows, keep: Keep) -> std::result::Result<Rows, Fail> {
    let keep_rows = |rows: &mut Vec<RowValues>, have: usize| match keep {
        Keep::Nothing => rows.clear(),
        Keep::First => rows.truncate(1 - have.min(1)),
        Keep::All | Keep::Stream => {}
    };
    keep_rows(&mut rows.rows, 0);
    while rows.more {
        let mut next = s.next_rows()?;
        keep_rows(&mut next.rows, rows.rows.len());
        rows.rows.append(&mut next.rows);
        rows.bad_utf8 = rows.bad_utf8.or(next.bad_utf8);
        rows.more = next.more;
    }
    Ok(rows)
}

/// aiolite's statement API on a dqlite cluster.
pub(crate) struct DqliteBackend {
    cluster: Cluster,
    session: Option<Session>,
    busy_timeout: Duration,
    isolation: Option<IsolationLevel>,
    pragmas: Vec<(String, String)>,
    read_only: bool,
    cache_capacity: usize,
    tx: Option<Tx>,
    total_changes: i64,
    cursors: HashMap<u64, CursorState>,
    /// The cursor whose ROWS are still arriving on the session (at most one).
    streaming: Option<u64>,
}

impl DqliteBackend {
    /// Parse the URL and connect to the leader (so that `connect()` fails fast on a cluster
    /// that has no leader).
    pub(crate) fn open(opts: &ConnectOptions) -> Result<DqliteBackend> {
        let url = opts.path.to_string_lossy();
        let mut settings = super::cluster::parse_url(&url)?;
        if let Some(t) = opts.statement_timeout {
            settings.request_timeout = t.max(Duration::from_millis(1));
        }
        for (name, _) in &opts.pragmas {
            options::check_pragma_name(name)?;
        }
        let mut b = DqliteBackend {
            cluster: Cluster::new(settings),
            session: None,
            busy_timeout: opts.busy_timeout,
            isolation: opts.isolation_level,
            pragmas: opts.pragmas.clone(),
            read_only: opts.read_only || opts.reject_writes,
            cache_capacity: opts.statement_cache_capacity.max(1),
            tx: None,
            total_changes: 0,
            cursors: HashMap::new(),
            streaming: None,
        };
        let deadline = Instant::now() + b.cluster.settings.leader_timeout;
        b.session = Some(b.open_session(deadline)?);
        Ok(b)
    }

    /// Find the leader, OPEN the database, apply the pragmas. Retries until `deadline`.
    fn open_session(&mut self, deadline: Instant) -> Result<Session> {
        loop {
            let conn = self.cluster.connect(deadline)?;
            let addr = Arc::clone(&conn.addr);
            let mut s = Session {
                conn,
                db: 0,
                stmts: LruCache::new_unbounded(),
                capacity: self.cache_capacity,
                last_insert_rowid: 0,
                wide_params: None,
            };
            let opened = match s.call(&Request::Open {
                name: self.cluster.settings.database.as_str().into(),
                flags: 0,
                vfs: "volatile".into(),
            }) {
                Ok(Response::Db { id }) => {
                    s.db = id;
                    self.apply_pragmas(&mut s)
                }
                Ok(other) => Err(unexpected("OPEN", &other)),
                Err(e) => Err(e),
            };
            match opened {
                Ok(()) => return Ok(s),
                Err(Fail::Sql { code, message }) => {
                    return Err(sql_error(code, message, &self.cluster.settings.database, 0));
                }
                Err(Fail::Client(e)) => return Err(e),
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Unavailable {
                            message: format!("the leader {addr} failed while opening the database: {e}"),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// `PRAGMA name = value` for each configured pragma, read back as the local backend does.
    fn apply_pragmas(&self, s: &mut Session) -> std::result::Result<(), Fail> {
        for (name, value) in &self.pragmas {
            let set = format!("PRAGMA {name} = {}", options::pragma_value_sql(value));
            let echoed = first_value(s, &set)?;
            let actual = match echoed {
                Some(v) => Some(v),
                None => first_value(s, &format!("PRAGMA {name}"))?,
            };
            let Some(actual) = actual else { continue };
            if options::normalize_pragma(name, value) != options::normalize_pragma(name, &actual) {
                return Err(Fail::Client(Error::PragmaMismatch {
                    pragma: name.clone(),
                    expected: value.clone(),
                    actual,
                }));
            }
        }
        Ok(())
    }

    /// Drop the leader connection. An open transaction dies with it (the server rolls it back
    /// when the connection closes, or the node is gone), and a cursor still streaming fails.
    fn lose_session(&mut self, why: &str) {
        self.session = None;
        self.tx = None;
        if let Some(id) = self.streaming.take()
            && let Some(c) = self.cursors.get_mut(&id)
        {
            c.done = true;
            c.error.get_or_insert_with(|| Error::LeaderChanged {
                message: format!("the connection was lost while the cursor was reading ({why}); run the query again"),
            });
        }
    }

    /// Run one request (through `f`) with reconnection and the retry rules: re-send when
    /// nothing ran (not sent, or refused by a non-leader) and the transaction is not lost;
    /// re-send a read once when the connection broke but the same leader is still there;
    /// wait out `SQLITE_BUSY` up to the busy timeout; otherwise map the failure to a typed
    /// error.
    fn run<T>(
        &mut self,
        class: Class,
        text: &str,
        nparams: usize,
        mut f: impl FnMut(&mut Session) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        let start = Instant::now();
        let deadline = start + self.cluster.settings.leader_timeout;
        let busy_deadline = start + self.busy_timeout;
        let mut busy_round = 0;
        let mut refusals = 0_u32;
        let mut losses = 0_u32;
        let mut resent = false;
        loop {
            let in_tx = self.tx.is_some();
            if self.session.is_none() {
                self.session = Some(self.open_session(deadline)?);
            }
            let s = self.session.as_mut().expect("session");
            let addr = Arc::clone(&s.conn.addr);
            let fail = match f(s) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match fail {
                Fail::Client(e) => return Err(e),
                Fail::Sql { code, message } => {
                    let now = Instant::now();
                    if code & 0xff == BUSY && code != BUSY_SNAPSHOT && now < busy_deadline {
                        let ms = BUSY_DELAYS_MS[busy_round.min(BUSY_DELAYS_MS.len() - 1)];
                        std::thread::sleep(Duration::from_millis(ms).min(busy_deadline - now));
                        busy_round += 1;
                        continue;
                    }
                    if in_tx && code & 0xff != 1 {
                        // Some errors make SQLite roll the transaction back by itself.
                        self.probe_transaction();
                    }
                    return Err(sql_error(code, message, text, nparams));
                }
                Fail::Refused { code, message } => {
                    self.lose_session(&message);
                    if in_tx {
                        return Err(Error::LeaderChanged {
                            message: format!(
                                "{addr} answered {message:?} (code {code}); the transaction was rolled back: retry it whole"
                            ),
                        });
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::Unavailable {
                            message: format!("{addr} answered {message:?} (code {code}) and no other leader was found"),
                        });
                    }
                    // Nothing ran: find the leader again and re-send. Don't spin on a node
                    // that says it leads but refuses.
                    refusals += 1;
                    if refusals > 1 {
                        std::thread::sleep(Duration::from_millis(50 * u64::from(refusals.min(20))));
                    }
                }
                Fail::Lost { sent, message } => {
                    self.lose_session(&message);
                    if in_tx {
                        return Err(match class {
                            Class::Commit if sent => Error::CommitOutcomeUnknown {
                                message: format!(
                                    "the connection to {addr} was lost after COMMIT was sent ({message}): \
                                     the transaction may or may not have been committed"
                                ),
                            },
                            _ => Error::LeaderChanged {
                                message: format!(
                                    "the connection to {addr} was lost ({message}); the transaction was rolled back: \
                                     retry it whole"
                                ),
                            },
                        });
                    }
                    if !sent || class == Class::Begin || class == Class::Rollback {
                        // Nothing ran: reconnect and re-send, backing off if it keeps failing.
                        losses += 1;
                        if losses >= MAX_LOSSES {
                            return Err(Error::Unavailable {
                                message: format!(
                                    "the connection to the leader failed {losses} times in a row: {message}"
                                ),
                            });
                        }
                        if losses > 1 {
                            std::thread::sleep(Duration::from_millis(50 << losses.min(4)));
                        }
                        continue;
                    }
                    if class == Class::Read && !resent {
                        let s = self.open_session(deadline)?;
                        let same = s.conn.addr == addr;
                        let new = Arc::clone(&s.conn.addr);
                        self.session = Some(s);
                        if same {
                            resent = true;
                            continue;
                        }
                        return Err(Error::LeaderChanged {
                            message: format!(
                                "the leader {addr} was lost while running this read ({message}) and {new} leads now; \
                                 the read was not re-sent, in case it was what brought {addr} down"
                            ),
                        });
                    }
                    return Err(Error::CommitOutcomeUnknown {
                        message: format!(
                            "the connection to {addr} was lost after the statement was sent ({message}): \
                             it may or may not have been applied"
                        ),
                    });
                }
                Fail::Timeout(t) => {
                    self.lose_session("timeout");
                    let msg = format!("{addr} did not answer within {t:?}; the connection was dropped");
                    return Err(match class {
                        _ if in_tx && class == Class::Commit => Error::CommitOutcomeUnknown {
                            message: format!("{msg}: the transaction may or may not have been committed"),
                        },
                        _ if in_tx => Error::LeaderChanged {
                            message: format!("{msg}, and the transaction with it: retry it whole"),
                        },
                        Class::Read | Class::Begin | Class::Rollback => Error::StatementTimeout {
                            timeout: t,
                            sql: Some(text.trim().to_owned()),
                        },
                        Class::Write | Class::Commit => Error::CommitOutcomeUnknown {
                            message: format!("{msg}: the statement may or may not have been applied"),
                        },
                    });
                }
            }
        }
    }

    /// After a SQL error inside a transaction, find out whether SQLite rolled it back: `BEGIN`
    /// succeeds only outside a transaction (and is rolled back at once).
    fn probe_transaction(&mut self) {
        let Some(s) = self.session.as_mut() else {
            self.tx = None;
            return;
        };
        match s.exec_sql("BEGIN") {
            Ok(_) => {
                let r = s.exec_sql("ROLLBACK");
                self.tx = None;
                if r.is_err() {
                    self.lose_session("rollback failed");
                }
            }
            Err(Fail::Sql { .. }) => {}
            Err(_) => self.lose_session("transaction probe failed"),
        }
    }

    /// Update the tracked transaction state after `stmt` succeeded.
    fn track(&mut self, stmt: &str) {
        let Some(effect) = sqltext::tx_effect(stmt) else {
            return;
        };
        match effect {
            TxEffect::Begin => {
                self.tx = Some(Tx::default());
            }
            TxEffect::Commit | TxEffect::Rollback => self.tx = None,
            TxEffect::Savepoint(name) => match self.tx.as_mut() {
                Some(t) => t.savepoints.push(name),
                None => {
                    self.tx = Some(Tx {
                        savepoints: vec![name],
                        by_savepoint: true,
                    });
                }
            },
            TxEffect::Release(name) => {
                let Some(t) = self.tx.as_mut() else { return };
                match t.savepoints.iter().rposition(|s| *s == name) {
                    Some(0) if t.by_savepoint => self.tx = None,
                    Some(i) => t.savepoints.truncate(i),
                    None => self.probe_transaction(),
                }
            }
            TxEffect::RollbackTo(name) => {
                if let Some(t) = self.tx.as_mut()
                    && let Some(i) = t.savepoints.iter().rposition(|s| *s == name)
                {
                    t.savepoints.truncate(i + 1);
                }
            }
        }
    }

    /// Before any new request: the cursor still streaming reads the rest of its rows into its
    /// buffer (only one request may be in flight on a connection).
    fn settle(&mut self) {
        let Some(id) = self.streaming else { return };
        self.pull(id, usize::MAX);
    }

    /// Read batches of the streaming cursor `id` until it holds `want` rows or its rows end.
    fn pull(&mut self, id: u64, want: usize) {
        if self.streaming != Some(id) {
            return;
        }
        let Some(c) = self.cursors.get_mut(&id) else {
            // Its cursor was closed: stop the stream.
            self.streaming = None;
            if let Some(s) = self.session.as_mut()
                && s.interrupt().is_err()
            {
                self.lose_session("interrupt failed");
            }
            return;
        };
        let s = self.session.as_mut().expect("a streaming cursor has a session");
        while c.buf.len() < want && !c.done {
            match s.next_rows() {
                Ok(rows) => {
                    let more = rows.more;
                    let bad = rows.bad_utf8;
                    c.columns = columns_of(&rows.columns, Some(&c.columns));
                    push_rows(&mut c.buf, &c.columns, rows);
                    if let Some(i) = bad {
                        c.error.get_or_insert_with(|| invalid_utf8(&c.columns, i));
                    }
                    if !more {
                        c.done = true;
                        self.streaming = None;
                    }
                }
                Err(Fail::Sql { code, message }) => {
                    c.done = true;
                    c.error = Some(sql_error(code, message, &c.sql, 0));
                    self.streaming = None;
                }
                Err(e) => {
                    let why = e.to_string();
                    self.lose_session(&why);
                    return;
                }
            }
        }
    }

    /// Refuse writes on a read-only connection.
    fn check_writable(&self, stmt: &str) -> Result<()> {
        if self.read_only && !sqltext::is_read(stmt) && sqltext::tx_effect(stmt).is_none() {
            return Err(writes_refused(stmt));
        }
        Ok(())
    }

    /// The single statement in `text`, or `None` for blank text.
    fn one_statement(text: &str) -> Result<Option<&str>> {
        let (first, rest) = sqltext::split_first(text);
        if sql::is_blank(first) {
            return Ok(None);
        }
        if !sql::is_blank(rest) {
            return Err(Error::MultipleStatements { sql: text.to_owned() });
        }
        Ok(Some(first))
    }

    /// Python sqlite3's legacy transaction control: `BEGIN <level>` before DML outside a
    /// transaction.
    fn implicit_begin(&mut self, stmt: &str) -> Result<()> {
        if let Some(level) = self.isolation
            && self.tx.is_none()
            && sql::verb(stmt).is_dml()
        {
            self.simple_inner(level.begin_sql())?;
        }
        Ok(())
    }

    fn simple_inner(&mut self, text: &str) -> Result<()> {
        self.settle();
        let class = class_of(text, self.tx.as_ref());
        match self.run(class, text, 0, |s| s.exec_sql(text)) {
            Ok(_) => {
                self.track(text);
                Ok(())
            }
            // The connection, and the transaction with it, is gone: that is a rollback.
            Err(Error::LeaderChanged { .. }) if class == Class::Rollback => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Run one statement with its parameters under the retry rules, then account for it.
    fn statement(&mut self, stmt: &str, text: &str, params: &ParamValues, keep: Keep) -> Result<Ran> {
        let class = class_of(stmt, self.tx.as_ref());
        let in_tx = self.tx.is_some();
        let ran = self.run(class, text, param_count(params), |s| {
            let mut p = s.prepare(stmt)?;
            let values = bind(stmt, &mut p, params)?;
            if let Some(layout) = &p.layout {
                let layout = Arc::clone(layout);
                s.remember(stmt, |q| q.layout = Some(layout));
            }
            s.check_params(values.len())?;
            attempt(s, stmt, Target::Prepared(p.id), p.rows, &values, keep, in_tx)
        })?;
        self.total_changes = self.total_changes.saturating_add(ran.changes as i64);
        self.track(stmt);
        Ok(ran)
    }

    /// One statement of a script (SQL text, no parameters).
    fn script_statement(&mut self, stmt: &str) -> Result<()> {
        let class = class_of(stmt, self.tx.as_ref());
        let in_tx = self.tx.is_some();
        let r = self.run(class, stmt, 0, |s| {
            attempt(s, stmt, Target::Text(stmt), None, &[], Keep::Nothing, in_tx)
        });
        let changes = match r {
            Ok(ran) => ran.changes,
            // The connection, and the transaction with it, is gone: that is a rollback.
            Err(Error::LeaderChanged { .. }) if class == Class::Rollback => 0,
            Err(e) => return Err(e),
        };
        self.total_changes = self.total_changes.saturating_add(changes as i64);
        self.track(stmt);
        Ok(())
    }
}

fn param_count(p: &ParamValues) -> usize {
    match p {
        ParamValues::None => 0,
        ParamValues::Positional(v) => v.len(),
        ParamValues::Named(v) => v.len(),
    }
}

/// Run a query given as text (no parameters) and collect its rows' values.
fn drain_collect(s: &mut Session, text: &str) -> std::result::Result<Vec<RowValues>, Fail> {
    let req = Request::QuerySql {
        db: s.db,
        sql: text.into(),
        params: Cow::Borrowed(&[]),
    };
    let mut batch = s.start_query(&req)?;
    let mut out = std::mem::take(&mut batch.rows);
    while batch.more {
        batch = s.next_rows()?;
        out.append(&mut batch.rows);
    }
    Ok(out)
}

/// The first value of the first row of `text` (a pragma), as text; `None` without rows (or
/// without result columns: then the statement is run through EXEC_SQL).
fn first_value(s: &mut Session, text: &str) -> std::result::Result<Option<String>, Fail> {
    match drain_collect(s, text) {
        Ok(rows) => Ok(rows.first().and_then(|r| r.first()).and_then(|v| match v {
            Value::Null => None,
            Value::Integer(i) => Some(i.to_string()),
            Value::Real(f) => Some(f.to_string()),
            Value::Text(t) => Some(t.clone()),
            Value::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
        })),
        Err(f) if is_zero_column_query(&f) => s.exec_sql(text).map(|_| None),
        Err(f) => Err(f),
    }
}

impl Backend for DqliteBackend {
    fn execute(&mut self, text: &str, params: &ParamValues) -> Result<ExecResult> {
        self.settle();
        let Some(stmt) = Self::one_statement(text)? else {
            return Ok(ExecResult {
                changes: 0,
                last_insert_rowid: self.session.as_ref().map_or(0, |s| s.last_insert_rowid),
            });
        };
        self.check_writable(stmt)?;
        self.implicit_begin(stmt)?;
        let ran = self.statement(stmt, text, params, Keep::Nothing)?;
        Ok(ExecResult {
            changes: ran.changes,
            last_insert_rowid: ran.last_insert_rowid,
        })
    }

    fn execute_many(&mut self, text: &str, rows: &[ParamValues]) -> Result<u64> {
        self.settle();
        let Some(stmt) = Self::one_statement(text)? else {
            return Ok(0);
        };
        self.check_writable(stmt)?;
        self.implicit_begin(stmt)?;
        let mut total = 0_u64;
        for params in rows {
            total += self.statement(stmt, text, params, Keep::Nothing)?.changes;
        }
        Ok(total)
    }

    fn script(&mut self, text: &str) -> Result<()> {
        self.settle();
        for stmt in sqltext::statements(text) {
            self.check_writable(stmt)?;
            self.script_statement(stmt)?;
        }
        Ok(())
    }

    fn fetch(&mut self, text: &str, params: &ParamValues, kind: FetchKind) -> Result<Reply> {
        self.settle();
        let Some(stmt) = Self::one_statement(text)? else {
            return Ok(empty_reply(kind));
        };
        self.check_writable(stmt)?;
        self.implicit_begin(stmt)?;
        let keep = if kind == FetchKind::All { Keep::All } else { Keep::First };
        let Some(rows) = self.statement(stmt, text, params, keep)?.rows else {
            return Ok(empty_reply(kind));
        };
        let columns = columns_of(&rows.columns, None);
        if let Some(i) = rows.bad_utf8 {
            return Err(invalid_utf8(&columns, i));
        }
        let mut it = rows.rows.into_iter().map(|v| Row::from_values(Arc::clone(&columns), v));
        Ok(match kind {
            FetchKind::All => Reply::Rows(it.collect()),
            FetchKind::One => Reply::Row(it.next()),
            FetchKind::Scalar => Reply::Scalar(it.next().and_then(|r| r.into_values().into_iter().next())),
        })
    }

    fn query(&mut self, cursor: u64, text: &str, params: ParamValues, chunk: usize) -> Result<CursorChunk> {
        self.settle();
        let Some(stmt) = Self::one_statement(text)? else {
            return Ok(empty_chunk());
        };
        self.check_writable(stmt)?;
        self.implicit_begin(stmt)?;
        let Some(first) = self.statement(stmt, text, &params, Keep::Stream)?.rows else {
            return Ok(empty_chunk());
        };
        let columns = columns_of(&first.columns, None);
        let mut state = CursorState {
            sql: text.into(),
            columns: Arc::clone(&columns),
            buf: VecDeque::new(),
            done: !first.more,
            error: first.bad_utf8.map(|i| invalid_utf8(&columns, i)),
        };
        push_rows(&mut state.buf, &columns, first);
        let streaming = !state.done;
        self.cursors.insert(cursor, state);
        if streaming {
            self.streaming = Some(cursor);
        }
        self.cursor_next(cursor, chunk, Vec::new())
    }

    fn cursor_next(&mut self, cursor: u64, n: usize, mut rows: Vec<Row>) -> Result<CursorChunk> {
        if !self.cursors.contains_key(&cursor) {
            return Ok(empty_chunk());
        }
        self.pull(cursor, n);
        let c = self.cursors.get_mut(&cursor).expect("cursor");
        let take = n.min(c.buf.len());
        rows.clear();
        rows.extend(c.buf.drain(..take));
        let finished = c.done && c.buf.is_empty();
        let columns = Arc::clone(&c.columns);
        if finished {
            let c = self.cursors.remove(&cursor).expect("cursor");
            if let Some(e) = c.error {
                if rows.is_empty() {
                    return Err(e);
                }
                // Report the rows first; the error comes with the next call.
                self.cursors.insert(cursor, CursorState { error: Some(e), ..c });
                return Ok(CursorChunk {
                    columns,
                    rows,
                    done: false,
                });
            }
        }
        Ok(CursorChunk {
            columns,
            rows,
            done: finished,
        })
    }

    fn cursor_close(&mut self, cursor: u64) {
        if self.cursors.remove(&cursor).is_some() && self.streaming == Some(cursor) {
            // Stop the stream now: INTERRUPT, then skip what is still coming.
            self.pull(cursor, 0);
        }
    }

    fn simple(&mut self, text: &str) -> Result<()> {
        self.simple_inner(text)
    }

    fn autocommit(&self) -> bool {
        self.tx.is_none()
    }

    fn total_changes(&self) -> i64 {
        self.total_changes
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Closing the socket ends everything on the server: an open transaction is rolled back
        // and prepared statements are finalized.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The retry and error rules against a scripted fake server.

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::dqlite::proto::{HEADER_LEN, Header, NodeInfo};

    /// What the fake server does with a request.
    enum Act {
        /// The usual answer.
        Default,
        /// These responses.
        Reply(Vec<Response>),
        /// Close the connection without answering.
        Close,
        /// The usual answer, then close the connection.
        DefaultThenClose,
        /// Never answer (until the client gives up).
        Hang,
    }

    type Handler = Box<dyn FnMut(usize, &Request<'static>) -> Act + Send>;

    struct Fake {
        addr: String,
        /// (connection number, request) of every request received.
        log: Arc<Mutex<Vec<(usize, Request<'static>)>>>,
        closed: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(&self.addr);
        }
    }

    fn rows(values: &[i64], more: bool) -> Response {
        Response::Rows(Rows {
            columns: vec!["x".into()],
            rows: values
                .iter()
                .map(|&v| RowValues::from_vec(vec![Value::Integer(v)]))
                .collect(),
            types: None,
            more,
            bad_utf8: None,
        })
    }

    fn default_answer(addr: &str, next_stmt: &mut u32, req: &Request<'_>) -> Vec<Response> {
        vec![match req {
            Request::Leader => Response::Node {
                id: 1,
                address: addr.to_owned(),
            },
            Request::Client { .. } => Response::Welcome {
                heartbeat_timeout: 15000,
            },
            Request::Cluster { .. } => Response::Nodes(vec![NodeInfo {
                id: 1,
                address: addr.to_owned(),
                role: 0,
            }]),
            Request::Open { .. } => Response::Db { id: 0 },
            Request::Prepare { sql, .. } => {
                *next_stmt += 1;
                Response::Stmt {
                    db: 0,
                    id: *next_stmt,
                    params: sql.matches('?').count() as u64,
                    tail: None,
                }
            }
            Request::Exec { .. } | Request::ExecSql { .. } => Response::Result {
                last_insert_id: 7,
                rows_affected: 1,
            },
            Request::QuerySql { sql, .. } if sql.starts_with("SELECT changes()") => Response::Rows(Rows {
                columns: vec!["changes()".into(), "last_insert_rowid()".into()],
                rows: vec![RowValues::from_vec(vec![Value::Integer(1), Value::Integer(7)])],
                types: None,
                more: false,
                bad_utf8: None,
            }),
            Request::Query { .. } | Request::QuerySql { .. } => rows(&[1], false),
            Request::Finalize { .. } | Request::Interrupt { .. } => Response::Empty,
        }]
    }

    fn fake(handler: impl FnMut(usize, &Request<'static>) -> Act + Send + 'static) -> Fake {
        fake_at(TcpListener::bind("127.0.0.1:0").unwrap(), None, handler)
    }

    /// A fake node; `leader`: the address it names as leader (default: itself).
    fn fake_at(
        listener: TcpListener,
        leader: Option<String>,
        handler: impl FnMut(usize, &Request<'static>) -> Act + Send + 'static,
    ) -> Fake {
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Box::new(handler)));
        let (a, l, c, s) = (addr.clone(), Arc::clone(&log), Arc::clone(&closed), Arc::clone(&stop));
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (a, l, c, h, leader) = (
                    a.clone(),
                    Arc::clone(&l),
                    Arc::clone(&c),
                    Arc::clone(&handler),
                    leader.clone(),
                );
                std::thread::spawn(move || serve(stream, n, &a, leader.as_deref(), &l, &c, &h));
            }
        });
        Fake {
            addr,
            log,
            closed,
            stop,
        }
    }

    fn serve(
        mut stream: TcpStream,
        n: usize,
        addr: &str,
        leader: Option<&str>,
        log: &Mutex<Vec<(usize, Request<'static>)>>,
        closed: &AtomicBool,
        handler: &Mutex<Handler>,
    ) {
        let mut version = [0_u8; 8];
        if stream.read_exact(&mut version).is_err() {
            return;
        }
        let mut next_stmt = 0;
        loop {
            let mut head = [0_u8; HEADER_LEN];
            if stream.read_exact(&mut head).is_err() {
                return;
            }
            let h = Header::parse(&head);
            let mut body = vec![0_u8; h.body_len()];
            stream.read_exact(&mut body).unwrap();
            let req = Request::decode(h, &body).unwrap();
            log.lock().unwrap().push((n, req.clone()));
            let act = (handler.lock().unwrap())(n, &req);
            let mut default = || {
                let mut d = default_answer(addr, &mut next_stmt, &req);
                if let (Request::Leader, Some(l)) = (&req, leader) {
                    d = vec![Response::Node {
                        id: 2,
                        address: l.to_owned(),
                    }];
                }
                d
            };
            let (answers, close) = match act {
                Act::Default => (default(), false),
                Act::Reply(r) => (r, false),
                Act::Close => (Vec::new(), true),
                Act::DefaultThenClose => (default(), true),
                Act::Hang => {
                    std::thread::sleep(Duration::from_secs(2));
                    (Vec::new(), true)
                }
            };
            let mut out = Vec::new();
            for a in answers {
                a.encode(&mut out).unwrap();
            }
            if stream.write_all(&out).is_err() {
                return;
            }
            if close {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                closed.store(true, Ordering::SeqCst);
                return;
            }
        }
    }

    fn open(f: &Fake, query: &str) -> DqliteBackend {
        open_with(ConnectOptions::new(format!("dqlite://{}/db{query}", f.addr)))
    }

    fn open_with(opts: ConnectOptions) -> DqliteBackend {
        DqliteBackend::open(&opts).unwrap()
    }

    fn is_sql(r: &Request<'_>, text: &str) -> bool {
        matches!(r, Request::ExecSql { sql, .. } if sql == text)
    }

    /// How many requests matching `pred` the server received.
    fn count(f: &Fake, pred: impl Fn(&Request<'_>) -> bool) -> usize {
        f.log.lock().unwrap().iter().filter(|(_, r)| pred(r)).count()
    }

    fn connections(f: &Fake) -> usize {
        f.log.lock().unwrap().iter().map(|(n, _)| *n).max().map_or(0, |n| n + 1)
    }

    fn params(v: &[i64]) -> ParamValues {
        ParamValues::Positional(v.iter().map(|&i| Value::Integer(i)).collect())
    }

    #[test]
    fn lost_commit_is_outcome_unknown() {
        let f = fake(|_, r| if is_sql(r, "COMMIT") { Act::Close } else { Act::Default });
        let mut b = open(&f, "");
        b.simple("BEGIN").unwrap();
        assert!(!b.autocommit());
        b.execute("INSERT INTO t VALUES (?)", &params(&[1])).unwrap();
        let e = b.simple("COMMIT").unwrap_err();
        assert!(matches!(e, Error::CommitOutcomeUnknown { .. }), "{e:?}");
        assert!(b.autocommit());
        // Never re-sent.
        assert_eq!(count(&f, |r| is_sql(r, "COMMIT")), 1);
    }

    #[test]
    fn lost_autocommit_write_is_outcome_unknown_and_not_resent() {
        let f = fake(|_, r| {
            if matches!(r, Request::Exec { .. }) {
                Act::Close
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "");
        let e = b.execute("INSERT INTO t VALUES (?)", &params(&[1])).unwrap_err();
        assert!(matches!(e, Error::CommitOutcomeUnknown { .. }), "{e:?}");
        assert_eq!(count(&f, |r| matches!(r, Request::Exec { .. })), 1);
    }

    #[test]
    fn lost_read_is_resent_once_to_the_same_leader() {
        let mut first = true;
        let f = fake(move |_, r| {
            if matches!(r, Request::Query { .. }) && std::mem::take(&mut first) {
                Act::Close
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "");
        let r = b
            .fetch("SELECT x FROM t", &ParamValues::None, FetchKind::Scalar)
            .unwrap();
        assert!(matches!(r, Reply::Scalar(Some(Value::Integer(1)))), "{r:?}");
        assert_eq!(count(&f, |r| matches!(r, Request::Query { .. })), 2);
        assert_eq!(connections(&f), 2);
        // Inside a transaction the same loss ends the transaction instead.
        let f = fake(|_, r| {
            if matches!(r, Request::Query { .. }) {
                Act::Close
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "");
        b.simple("BEGIN").unwrap();
        let e = b
            .fetch("SELECT x FROM t", &ParamValues::None, FetchKind::All)
            .unwrap_err();
        assert!(matches!(e, Error::LeaderChanged { .. }), "{e:?}");
        assert!(b.autocommit());
    }

    #[test]
    fn not_leader_outside_a_transaction_is_retried() {
        let mut first = true;
        let f = fake(move |_, r| {
            if matches!(r, Request::Exec { .. }) && std::mem::take(&mut first) {
                Act::Reply(vec![Response::Failure {
                    code: 10250,
                    message: "not leader".into(),
                }])
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "");
        let r = b.execute("INSERT INTO t VALUES (?)", &params(&[1])).unwrap();
        assert_eq!(r.changes, 1);
        assert_eq!(connections(&f), 2);
        // Prepared again on the new connection.
        assert_eq!(count(&f, |r| matches!(r, Request::Prepare { .. })), 2);
        assert_eq!(b.total_changes(), 1);
    }

    #[test]
    fn not_leader_or_leadership_lost_inside_a_transaction_is_leader_changed() {
        for (code, stmt) in [(10250, "INSERT"), (10506, "COMMIT"), (12, "INSERT")] {
            let mut first = true;
            let f = fake(move |_, r| {
                let hit = match stmt {
                    "COMMIT" => is_sql(r, "COMMIT"),
                    _ => matches!(r, Request::Exec { .. }),
                };
                if hit && std::mem::take(&mut first) {
                    Act::Reply(vec![Response::Failure {
                        code,
                        message: "no".into(),
                    }])
                } else {
                    Act::Default
                }
            });
            let mut b = open(&f, "");
            b.simple("BEGIN IMMEDIATE").unwrap();
            let e = if stmt == "COMMIT" {
                b.simple("COMMIT").unwrap_err()
            } else {
                b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap_err()
            };
            assert!(matches!(e, Error::LeaderChanged { .. }), "{code}: {e:?}");
            assert!(b.autocommit());
            // The next statement runs on a new connection.
            b.execute("INSERT INTO t VALUES (2)", &ParamValues::None).unwrap();
            assert_eq!(connections(&f), 2);
        }
    }

    #[test]
    fn busy_is_waited_out_up_to_the_busy_timeout() {
        let mut busy = 3;
        let f = fake(move |_, r| {
            if matches!(r, Request::Exec { .. }) && busy > 0 {
                busy -= 1;
                Act::Reply(vec![Response::Failure {
                    code: 5,
                    message: "database is locked".into(),
                }])
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "");
        b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap();
        assert_eq!(count(&f, |r| matches!(r, Request::Exec { .. })), 4);
        let f = fake(|_, r| {
            if matches!(r, Request::Exec { .. }) {
                Act::Reply(vec![Response::Failure {
                    code: 5,
                    message: "database is locked".into(),
                }])
            } else {
                Act::Default
            }
        });
        let mut b =
            open_with(ConnectOptions::new(format!("dqlite://{}/db", f.addr)).busy_timeout(Duration::from_millis(30)));
        let e = b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap_err();
        assert!(e.is_busy(), "{e:?}");
        assert_eq!(e.sql(), Some("INSERT INTO t VALUES (1)"));
    }

    #[test]
    fn rollback_over_a_lost_connection_succeeds() {
        let f = fake(|_, r| {
            if is_sql(r, "ROLLBACK") {
                Act::Close
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "");
        b.simple("BEGIN").unwrap();
        b.simple("ROLLBACK").unwrap();
        assert!(b.autocommit());
    }

    #[test]
    fn a_connection_closed_while_idle_is_replaced_before_sending() {
        let mut first = true;
        let f = fake(move |_, r| {
            if matches!(r, Request::Exec { .. }) && std::mem::take(&mut first) {
                Act::DefaultThenClose
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "");
        b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap();
        // Wait for the server side to be gone, then write again: not an unknown outcome.
        while !f.closed.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap();
        assert_eq!(count(&f, |r| matches!(r, Request::Exec { .. })), 2);
        assert_eq!(connections(&f), 2);
        // The same inside a transaction: the transaction is reported gone before sending.
        let f = fake(|_, r| {
            if is_sql(r, "BEGIN") {
                Act::DefaultThenClose
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "");
        b.simple("BEGIN").unwrap();
        while !f.closed.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        let e = b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap_err();
        assert!(matches!(e, Error::LeaderChanged { .. }), "{e:?}");
        assert_eq!(count(&f, |r| matches!(r, Request::Exec { .. })), 0);
    }

    #[test]
    fn no_answer_is_a_timeout() {
        let f = fake(|_, r| {
            if matches!(r, Request::Query { .. } | Request::Exec { .. }) {
                Act::Hang
            } else {
                Act::Default
            }
        });
        let mut b = open(&f, "?timeout=100ms");
        let e = b.fetch("SELECT 1", &ParamValues::None, FetchKind::All).unwrap_err();
        assert!(matches!(e, Error::StatementTimeout { .. }), "{e:?}");
        let e = b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap_err();
        assert!(matches!(e, Error::CommitOutcomeUnknown { .. }), "{e:?}");
    }

    #[test]
    fn a_node_naming_another_leader_is_followed() {
        let leader = fake(|_, _| Act::Default);
        let follower = fake_at(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            Some(leader.addr.clone()),
            |_, _| Act::Default,
        );
        let mut b = open(&follower, "");
        b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap();
        assert_eq!(count(&leader, |r| matches!(r, Request::Exec { .. })), 1);
        assert_eq!(count(&follower, |r| matches!(r, Request::Open { .. })), 0);
    }

    #[test]
    fn sql_errors_keep_their_codes_and_the_transaction_state_is_probed() {
        let f = fake(|_, r| match r {
            Request::Exec { .. } => Act::Reply(vec![Response::Failure {
                code: 2067,
                message: "UNIQUE constraint failed: t.a".into(),
            }]),
            // The probe: BEGIN succeeds, so the transaction was rolled back by SQLite.
            _ => Act::Default,
        });
        let mut b = open(&f, "");
        b.simple("BEGIN").unwrap();
        let e = b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap_err();
        assert!(e.is_unique_violation(), "{e:?}");
        assert!(b.autocommit());
        assert_eq!(count(&f, |r| is_sql(r, "BEGIN")), 2);
        assert_eq!(count(&f, |r| is_sql(r, "ROLLBACK")), 1);
    }

    #[test]
    fn cursors_stream_batches_and_drain_before_other_requests() {
        let f = fake(|_, r| match r {
            Request::Query { .. } => Act::Reply(vec![rows(&[1, 2], true), rows(&[3, 4], true), rows(&[5], false)]),
            _ => Act::Default,
        });
        let mut b = open(&f, "");
        let c = b.query(1, "SELECT x FROM t", ParamValues::None, 1).unwrap();
        assert_eq!(c.rows.len(), 1);
        assert!(!c.done);
        // Another statement: the cursor's remaining batches are read into its buffer first.
        b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap();
        let c = b.cursor_next(1, 100, Vec::new()).unwrap();
        let got: Vec<i64> = c.rows.iter().map(|r| r.get(0).unwrap()).collect();
        assert_eq!(got, [2, 3, 4, 5]);
        assert!(c.done);
        // An abandoned cursor: INTERRUPT, and what was still coming is skipped.
        let c = b.query(2, "SELECT x FROM t", ParamValues::None, 1).unwrap();
        assert!(!c.done);
        b.cursor_close(2);
        assert_eq!(count(&f, |r| matches!(r, Request::Interrupt { .. })), 1);
        b.execute("INSERT INTO t VALUES (1)", &ParamValues::None).unwrap();
        // Unknown cursors are empty and done.
        assert!(b.cursor_next(99, 10, Vec::new()).unwrap().done);
    }

    #[test]
    fn returning_outside_a_transaction_is_wrapped() {
        let f = fake(|_, _| Act::Default);
        let mut b = open(&f, "");
        let r = b
            .fetch(
                "INSERT INTO t VALUES (1) RETURNING x",
                &ParamValues::None,
                FetchKind::One,
            )
            .unwrap();
        assert!(matches!(r, Reply::Row(Some(_))), "{r:?}");
        let log: Vec<String> = f
            .log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, r)| match r {
                Request::ExecSql { sql, .. } | Request::QuerySql { sql, .. } => Some(sql.to_string()),
                Request::Query { .. } => Some("QUERY".into()),
                _ => None,
            })
            .collect();
        assert_eq!(
            log,
            ["BEGIN", "QUERY", "SELECT changes(), last_insert_rowid()", "COMMIT"]
        );
        assert!(b.autocommit());
    }

    #[test]
    fn more_than_255_parameters_need_a_server_that_reads_them() {
        // A 1.11 server: the wide probe fails to parse.
        let f = fake(|_, r| match r {
            Request::QuerySql { sql, .. } if sql == "SELECT ?" => Act::Reply(vec![Response::Failure {
                code: 1005,
                message: "bind parameters".into(),
            }]),
            _ => Act::Default,
        });
        let mut b = open(&f, "");
        let sql = format!("SELECT {}", vec!["?"; 256].join(","));
        let p = params(&[1; 256]);
        let e = b.fetch(&sql, &p, FetchKind::All).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
        assert_eq!(count(&f, |r| matches!(r, Request::Query { .. })), 0);
        // Asked once per connection.
        let _ = b.fetch(&sql, &p, FetchKind::All).unwrap_err();
        assert_eq!(count(&f, |r| matches!(r, Request::QuerySql { .. })), 1);
        // A newer server answers the probe.
        let f = fake(|_, _| Act::Default);
        let mut b = open(&f, "");
        b.fetch(&sql, &p, FetchKind::All).unwrap();
        assert_eq!(
            count(
                &f,
                |r| matches!(r, Request::Query { params, .. } if params.len() == 256)
            ),
            1
        );
    }

    #[test]
    fn named_parameters_are_mapped_to_positions() {
        let f = fake(|_, _| Act::Default);
        let mut b = open(&f, "");
        // The fake counts `?` only: give it a statement whose names it cannot see.
        let named = ParamValues::Named(vec![("b".into(), Value::Integer(2)), (":a".into(), Value::Integer(1))]);
        let e = b.fetch("SELECT :a, :b", &named, FetchKind::All).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
        b.fetch("SELECT ?1, ?2 -- :a :b", &ParamValues::Named(vec![]), FetchKind::All)
            .unwrap_err();
        let r = b.fetch("SELECT ?, ?", &params(&[1, 2]), FetchKind::All).unwrap();
        assert!(matches!(r, Reply::Rows(_)));
        let mut p = Prepared {
            id: 1,
            params: 2,
            rows: None,
            layout: None,
        };
        let bound = bind("SELECT :a, :b", &mut p, &named).unwrap();
        assert_eq!(&*bound, &[Value::Integer(1), Value::Integer(2)]);
    }
}
