//! dqlite's client wire protocol (version 1): framing, primitive encodings, and the messages a
//! SQL client sends and receives.
//!
//! Everything is little-endian and aligned to 8-byte words. A frame is an 8-byte header (body
//! length in words as a u32, the message type, the schema byte, two zero bytes) followed by the
//! body. Requests are encoded here and responses decoded; the reverse directions exist too, for
//! golden tests, the fuzz target and the fake server of the unit tests.
//!
//! Sources: canonical/dqlite `src/lib/serialize.h`, `src/tuple.c`, `src/query.c`,
//! `src/protocol.h`, go-dqlite `internal/protocol/message.go`, and the summary in aiolite's
//! design notes (`DQLITE.md`).

use std::borrow::Cow;
use std::fmt;

use crate::row::RowValues;
use crate::value::Value;

/// The protocol version sent right after connecting (no reply).
pub(crate) const PROTOCOL_VERSION: u64 = 1;
/// Frame header length.
pub(crate) const HEADER_LEN: usize = 8;
/// The largest frame body aiolite accepts or sends (SQLite's own limit on a value is 1 GB).
pub(crate) const MAX_BODY: usize = 1 << 31;

/// ROWS trailer: no more rows.
pub(crate) const ROWS_DONE: u64 = 0xFFFF_FFFF_FFFF_FFFF;
/// ROWS trailer: more ROWS messages follow for the same request.
pub(crate) const ROWS_PART: u64 = 0xEEEE_EEEE_EEEE_EEEE;

/// Request types.
pub(crate) mod req {
    pub(crate) const LEADER: u8 = 0;
    pub(crate) const CLIENT: u8 = 1;
    pub(crate) const OPEN: u8 = 3;
    pub(crate) const PREPARE: u8 = 4;
    pub(crate) const EXEC: u8 = 5;
    pub(crate) const QUERY: u8 = 6;
    pub(crate) const FINALIZE: u8 = 7;
    pub(crate) const EXEC_SQL: u8 = 8;
    pub(crate) const QUERY_SQL: u8 = 9;
    pub(crate) const INTERRUPT: u8 = 10;
    pub(crate) const CLUSTER: u8 = 16;
}

/// Response types.
pub(crate) mod resp {
    pub(crate) const FAILURE: u8 = 0;
    pub(crate) const NODE: u8 = 1;
    pub(crate) const WELCOME: u8 = 2;
    pub(crate) const NODES: u8 = 3;
    pub(crate) const DB: u8 = 4;
    pub(crate) const STMT: u8 = 5;
    pub(crate) const RESULT: u8 = 6;
    pub(crate) const ROWS: u8 = 7;
    pub(crate) const EMPTY: u8 = 8;
}

/// Value type codes, in parameter and row tuples.
pub(crate) mod ty {
    pub(crate) const INTEGER: u8 = 1;
    pub(crate) const FLOAT: u8 = 2;
    pub(crate) const TEXT: u8 = 3;
    pub(crate) const BLOB: u8 = 4;
    pub(crate) const NULL: u8 = 5;
    /// Seconds since the epoch: an INTEGER in a DATETIME/DATE/TIMESTAMP column (server → client).
    pub(crate) const UNIXTIME: u8 = 9;
    /// Text in a DATETIME/DATE/TIMESTAMP column (and NULL there, as `""`).
    pub(crate) const ISO8601: u8 = 10;
    /// An INTEGER (or NULL, as 0) in a BOOLEAN column.
    pub(crate) const BOOLEAN: u8 = 11;
}

/// Round `n` up to a multiple of 8.
#[inline]
pub(crate) const fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EncodeError {
    /// A text (SQL, name or TEXT value) holds a NUL character, which dqlite's text encoding
    /// cannot carry.
    Nul,
    /// More than 2³²−1 parameters.
    TooManyParams,
    /// The body would exceed [`MAX_BODY`].
    TooBig,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::Nul => "dqlite's wire protocol cannot carry a NUL character inside text",
            EncodeError::TooManyParams => "too many parameters for dqlite's wire protocol",
            EncodeError::TooBig => "the message is too large for dqlite's wire protocol",
        })
    }
}

/// Why a frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed dqlite message: {}", self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Body length in 8-byte words.
    pub(crate) words: u32,
    pub(crate) kind: u8,
    pub(crate) schema: u8,
}

impl Header {
    pub(crate) fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            words: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            kind: b[4],
            schema: b[5],
        }
    }

    /// Body length in bytes.
    pub(crate) fn body_len(&self) -> usize {
        self.words as usize * 8
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Appends primitives to a buffer.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn pad(&mut self) {
        let n = pad8(self.0.len()) - self.0.len();
        self.0.extend(std::iter::repeat_n(0, n));
    }
    /// UTF-8, NUL, zero padding to a word.
    fn text(&mut self, s: &str) -> Result<(), EncodeError> {
        if s.as_bytes().contains(&0) {
            return Err(EncodeError::Nul);
        }
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self.pad();
        Ok(())
    }
    /// u64 length, bytes, zero padding.
    fn blob(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
        self.pad();
    }
    fn value(&mut self, v: &Value) -> Result<(), EncodeError> {
        match v {
            Value::Null => self.u64(0),
            Value::Integer(i) => self.i64(*i),
            Value::Real(f) => self.f64(*f),
            Value::Text(s) => self.text(s)?,
            Value::Blob(b) => self.blob(b),
        }
        Ok(())
    }
}

/// The type code a value is sent with.
pub(crate) fn type_code(v: &Value) -> u8 {
    match v {
        Value::Null => ty::NULL,
        Value::Integer(_) => ty::INTEGER,
        Value::Real(_) => ty::FLOAT,
        Value::Text(_) => ty::TEXT,
        Value::Blob(_) => ty::BLOB,
    }
}

/// The schema a parameter tuple of `n` values needs: 0 (one-byte count) up to 255, 1 (four-byte
/// count, dqlite ≥ 1.12) above, as go-dqlite does.
pub(crate) fn params_schema(n: usize) -> u8 {
    u8::from(n > 255)
}

/// A parameter tuple: count (1 byte for schema 0, 4 for schema 1), type codes, padding, values.
/// Nothing at all for no parameters.
fn write_params(w: &mut Writer<'_>, params: &[Value], schema: u8) -> Result<(), EncodeError> {
    if params.is_empty() {
        return Ok(());
    }
    let start = w.0.len();
    if schema == 0 {
        w.0.push(params.len() as u8);
    } else {
        let n = u32::try_from(params.len()).map_err(|_| EncodeError::TooManyParams)?;
        w.0.extend_from_slice(&n.to_le_bytes());
    }
    w.0.extend(params.iter().map(type_code));
    debug_assert_eq!(start % 8, 0);
    w.pad();
    for v in params {
        w.value(v)?;
    }
    Ok(())
}

/// A row tuple: 4-bit type codes (column `i` in byte `i/2`, even columns in the low nibble),
/// padded to a word, then the values.
pub(crate) fn write_row(out: &mut Vec<u8>, types: &[u8], values: &[Value]) -> Result<(), EncodeError> {
    let mut w = Writer(out);
    let start = w.0.len();
    let header = pad8(types.len().div_ceil(2));
    w.0.resize(start + header, 0);
    for (i, t) in types.iter().enumerate() {
        w.0[start + i / 2] |= (t & 0x0f) << (4 * (i % 2));
    }
    for (t, v) in types.iter().zip(values) {
        match (*t, v) {
            (ty::BOOLEAN, Value::Integer(i)) => w.u64(*i as u64),
            (ty::ISO8601, Value::Null) => w.text("")?,
            _ => w.value(v)?,
        }
    }
    Ok(())
}

/// Write a header for a body of `body_len` bytes (a multiple of 8).
fn header(out: &mut [u8], body_len: usize, kind: u8, schema: u8) -> Result<(), EncodeError> {
    if body_len > MAX_BODY {
        return Err(EncodeError::TooBig);
    }
    debug_assert_eq!(body_len % 8, 0);
    out[..4].copy_from_slice(&((body_len / 8) as u32).to_le_bytes());
    out[4] = kind;
    out[5] = schema;
    out[6] = 0;
    out[7] = 0;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Reads primitives from a body, with bounds checks.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return err(format!("truncated {what}"));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let s = self.take(8, what)?;
        Ok(u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }
    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes(s.try_into().expect("4 bytes")))
    }
    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        self.u64(what).map(|v| v as i64)
    }
    fn f64(&mut self, what: &str) -> Result<f64, DecodeError> {
        self.u64(what).map(f64::from_bits)
    }
    fn skip_pad(&mut self, what: &str) -> Result<(), DecodeError> {
        let n = pad8(self.pos) - self.pos;
        self.take(n, what).map(drop)
    }
    /// Text as raw bytes (up to the NUL), with its padding consumed.
    fn text_bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let rest = &self.b[self.pos..];
        let Some(nul) = rest.iter().position(|&c| c == 0) else {
            return err(format!("unterminated {what}"));
        };
        let len = pad8(nul + 1);
        if len > rest.len() {
            return err(format!("truncated padding of {what}"));
        }
        self.pos += len;
        Ok(&rest[..nul])
    }
    fn text(&mut self, what: &str) -> Result<String, DecodeError> {
        let bytes = self.text_bytes(what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => err(format!("{what} is not UTF-8")),
        }
    }
    fn blob(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).ok().filter(|&n| n <= self.remaining());
        let Some(n) = n else {
            return err(format!("{what} longer than the message"));
        };
        let s = self.take(n, what)?;
        self.skip_pad(what)?;
        Ok(s)
    }
    fn end(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            err(format!("{} unexpected trailing bytes after {what}", self.remaining()))
        }
    }
}

/// A parameter tuple (schema 0 or 1); an absent tuple is no parameters.
fn read_params(r: &mut Reader<'_>, schema: u8) -> Result<Vec<Value>, DecodeError> {
    if r.remaining() == 0 {
        return Ok(Vec::new());
    }
    let n = match schema {
        0 => r.take(1, "parameter count")?[0] as usize,
        1 => r.u32("parameter count")? as usize,
        s => return err(format!("unknown parameter schema {s}")),
    };
    if n > r.remaining() {
        return err("parameter count larger than the message");
    }
    let types = r.take(n, "parameter types")?.to_vec();
    r.skip_pad("parameter types")?;
    let mut out = Vec::with_capacity(n);
    for t in types {
        out.push(match t {
            ty::INTEGER => Value::Integer(r.i64("integer")?),
            ty::FLOAT => Value::Real(r.f64("float")?),
            ty::TEXT | ty::ISO8601 => Value::Text(r.text("text parameter")?),
            ty::BLOB => Value::Blob(r.blob("blob")?.to_vec()),
            ty::NULL => {
                r.u64("null")?;
                Value::Null
            }
            ty::BOOLEAN => Value::Integer(i64::from(r.u64("boolean")? != 0)),
            t => return err(format!("unknown parameter type {t}")),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A request from client to server (only those a SQL client needs).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Request<'a> {
    /// Who is the leader? Answered with NODE.
    Leader,
    /// Register the client; answered with WELCOME.
    Client { id: u64 },
    /// Open a database (one per connection); answered with DB.
    Open {
        name: Cow<'a, str>,
        flags: u64,
        vfs: Cow<'a, str>,
    },
    /// Prepare one statement; answered with STMT.
    Prepare { db: u32, sql: Cow<'a, str> },
    /// Run a prepared statement; answered with RESULT.
    Exec {
        db: u32,
        stmt: u32,
        params: Cow<'a, [Value]>,
    },
    /// Run a prepared query; answered with one or more ROWS.
    Query {
        db: u32,
        stmt: u32,
        params: Cow<'a, [Value]>,
    },
    /// Finalize a prepared statement; answered with EMPTY.
    Finalize { db: u32, stmt: u32 },
    /// Run SQL text (several statements allowed); answered with RESULT.
    ExecSql {
        db: u32,
        sql: Cow<'a, str>,
        params: Cow<'a, [Value]>,
    },
    /// Run a query given as text; answered with ROWS.
    QuerySql {
        db: u32,
        sql: Cow<'a, str>,
        params: Cow<'a, [Value]>,
    },
    /// Stop the query being streamed; answered with EMPTY after the remaining ROWS.
    Interrupt { db: u32 },
    /// The cluster's nodes; answered with NODES. aiolite always asks for format 1 (with roles).
    Cluster { format: u64 },
}

impl Request<'_> {
    /// The message type.
    pub(crate) fn kind(&self) -> u8 {
        match self {
            Request::Leader => req::LEADER,
            Request::Client { .. } => req::CLIENT,
            Request::Open { .. } => req::OPEN,
            Request::Prepare { .. } => req::PREPARE,
            Request::Exec { .. } => req::EXEC,
            Request::Query { .. } => req::QUERY,
            Request::Finalize { .. } => req::FINALIZE,
            Request::ExecSql { .. } => req::EXEC_SQL,
            Request::QuerySql { .. } => req::QUERY_SQL,
            Request::Interrupt { .. } => req::INTERRUPT,
            Request::Cluster { .. } => req::CLUSTER,
        }
    }

    /// Append the frame (header and body) to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_with(out, false)
    }

    /// As [`encode`](Self::encode), but with schema 1 (four-byte parameter count) even for
    /// 255 parameters or fewer: how aiolite asks a server whether it knows schema 1.
    pub(crate) fn encode_wide(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_with(out, true)
    }

    fn encode_with(&self, out: &mut Vec<u8>, wide: bool) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let mut w = Writer(out);
        let mut schema = 0;
        match self {
            Request::Leader => w.u64(0),
            Request::Client { id } => w.u64(*id),
            Request::Open { name, flags, vfs } => {
                w.text(name)?;
                w.u64(*flags);
                w.text(vfs)?;
            }
            Request::Prepare { db, sql } => {
                w.u64(u64::from(*db));
                w.text(sql)?;
            }
            Request::Exec { db, stmt, params } | Request::Query { db, stmt, params } => {
                w.u32(*db);
                w.u32(*stmt);
                schema = params_schema(params.len()).max(u8::from(wide));
                write_params(&mut w, params, schema)?;
            }
            Request::Finalize { db, stmt } => {
                w.u32(*db);
                w.u32(*stmt);
            }
            Request::ExecSql { db, sql, params } | Request::QuerySql { db, sql, params } => {
                w.u64(u64::from(*db));
                w.text(sql)?;
                schema = params_schema(params.len()).max(u8::from(wide));
                write_params(&mut w, params, schema)?;
            }
            Request::Interrupt { db } => w.u64(u64::from(*db)),
            Request::Cluster { format } => w.u64(*format),
        }
        let body = out.len() - start - HEADER_LEN;
        let r = header(&mut out[start..start + HEADER_LEN], body, self.kind(), schema);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// Decode a request frame body (the server's side; for tests and the fake server).
    pub(crate) fn decode(h: Header, body: &[u8]) -> Result<Request<'static>, DecodeError> {
        let mut r = Reader::new(body);
        let db32 = |r: &mut Reader<'_>| -> Result<u32, DecodeError> {
            let v = r.u64("database id")?;
            u32::try_from(v).or_else(|_| err("database id out of range"))
        };
        let req = match h.kind {
            req::LEADER => {
                r.u64("leader request")?;
                Request::Leader
            }
            req::CLIENT => Request::Client {
                id: r.u64("client id")?,
            },
            req::OPEN => Request::Open {
                name: r.text("database name")?.into(),
                flags: r.u64("flags")?,
                vfs: r.text("vfs")?.into(),
            },
            req::PREPARE => Request::Prepare {
                db: db32(&mut r)?,
                sql: r.text("sql")?.into(),
            },
            req::EXEC | req::QUERY => {
                let db = r.u32("database id")?;
                let stmt = r.u32("statement id")?;
                let params = read_params(&mut r, h.schema)?.into();
                if h.kind == req::EXEC {
                    Request::Exec { db, stmt, params }
                } else {
                    Request::Query { db, stmt, params }
                }
            }
            req::FINALIZE => Request::Finalize {
                db: r.u32("database id")?,
                stmt: r.u32("statement id")?,
            },
            req::EXEC_SQL | req::QUERY_SQL => {
                let db = db32(&mut r)?;
                let sql = r.text("sql")?.into();
                let params = read_params(&mut r, h.schema)?.into();
                if h.kind == req::EXEC_SQL {
                    Request::ExecSql { db, sql, params }
                } else {
                    Request::QuerySql { db, sql, params }
                }
            }
            req::INTERRUPT => Request::Interrupt { db: db32(&mut r)? },
            req::CLUSTER => Request::Cluster {
                format: r.u64("format")?,
            },
            k => return err(format!("unknown request type {k}")),
        };
        r.end("request")?;
        Ok(req)
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

/// A node of the cluster, as CLUSTER (format 1) describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeInfo {
    pub(crate) id: u64,
    pub(crate) address: String,
    /// 0 voter, 1 standby, 2 spare.
    pub(crate) role: u64,
}

/// One ROWS message: a batch of a query's rows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rows {
    /// Column names (repeated by every batch).
    pub(crate) columns: Vec<String>,
    /// The rows, each `columns.len()` values, with dqlite's date and boolean codes already
    /// mapped to `Integer`/`Text` (see [`decode_value`]).
    pub(crate) rows: Vec<RowValues>,
    /// The type code of each column in each row, when kept (`decode_rows(.., true)`).
    pub(crate) types: Option<Vec<Vec<u8>>>,
    /// `true`: more ROWS messages follow (PART); `false`: the query is done (DONE).
    pub(crate) more: bool,
    /// The first column holding TEXT that is not valid UTF-8 (its value is replaced by NULL).
    pub(crate) bad_utf8: Option<usize>,
}

/// A response from server to client.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Response {
    /// The request failed: a SQLite (extended) result code or a dqlite code, and a message.
    Failure { code: u64, message: String },
    /// LEADER's answer: `(0, "")` when no leader is known.
    Node { id: u64, address: String },
    /// CLIENT's answer.
    Welcome { heartbeat_timeout: u64 },
    /// CLUSTER's answer.
    Nodes(Vec<NodeInfo>),
    /// OPEN's answer.
    Db { id: u32 },
    /// PREPARE's answer. `tail` (schema 1, dqlite ≥ 1.15.1): the byte offset of the unprepared
    /// rest of the SQL.
    Stmt {
        db: u32,
        id: u32,
        params: u64,
        tail: Option<u64>,
    },
    /// EXEC's answer.
    Result { last_insert_id: u64, rows_affected: u64 },
    /// QUERY's answer (one batch).
    Rows(Rows),
    /// FINALIZE's and INTERRUPT's answer.
    Empty,
}

/// Decode one row value of type code `t`. UNIXTIME and BOOLEAN become `Integer`, ISO8601
/// becomes `Text`, except the empty string, which is how dqlite sends a NULL from a
/// date-declared column: it becomes `Null` (as go-dqlite does). `Ok(None)` for text that is
/// not UTF-8.
fn decode_value(r: &mut Reader<'_>, t: u8) -> Result<Option<Value>, DecodeError> {
    Ok(Some(match t {
        ty::INTEGER | ty::UNIXTIME => Value::Integer(r.i64("integer")?),
        ty::FLOAT => Value::Real(r.f64("float")?),
        ty::TEXT | ty::ISO8601 => {
            let b = r.text_bytes("text")?;
            if t == ty::ISO8601 && b.is_empty() {
                Value::Null
            } else {
                match std::str::from_utf8(b) {
                    Ok(s) => Value::Text(s.to_owned()),
                    Err(_) => return Ok(None),
                }
            }
        }
        ty::BLOB => Value::Blob(r.blob("blob")?.to_vec()),
        ty::NULL => {
            r.u64("null")?;
            Value::Null
        }
        ty::BOOLEAN => Value::Integer(r.u64("boolean")? as i64),
        t => return err(format!("unknown column type {t}")),
    }))
}

/// Decode a ROWS body: u64 column count, column names, row tuples, then the DONE/PART marker
/// (always the last word). `keep_types` records each row's type codes (for tests).
pub(crate) fn decode_rows(body: &[u8], keep_types: bool) -> Result<Rows, DecodeError> {
    let mut r = Reader::new(body);
    let n = r.u64("column count")?;
    // Every name takes at least one word.
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= r.remaining() / 8)
        .map_or_else(|| err("column count larger than the message"), Ok)?;
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        columns.push(r.text("column name")?);
    }
    let mut rows = Vec::new();
    let mut types = keep_types.then(Vec::new);
    let mut bad_utf8 = None;
    while r.remaining() > 8 {
        if n == 0 {
            return err("rows in a result without columns");
        }
        let head = r.take(pad8(n.div_ceil(2)), "row header")?;
        let codes: Vec<u8> = (0..n).map(|i| (head[i / 2] >> (4 * (i % 2))) & 0x0f).collect();
        let mut values = RowValues::with_capacity(n);
        for (i, &t) in codes.iter().enumerate() {
            match decode_value(&mut r, t)? {
                Some(v) => values.push(v),
                None => {
                    bad_utf8.get_or_insert(i);
                    values.push(Value::Null);
                }
            }
        }
        rows.push(values);
        if let Some(t) = types.as_mut() {
            t.push(codes);
        }
    }
    let more = match r.u64("end-of-rows marker")? {
        ROWS_DONE => false,
        ROWS_PART => true,
        m => return err(format!("bad end-of-rows marker {m:#x}")),
    };
    Ok(Rows {
        columns,
        rows,
        types,
        more,
        bad_utf8,
    })
}

impl Response {
    /// The message type.
    pub(crate) fn kind(&self) -> u8 {
        match self {
            Response::Failure { .. } => resp::FAILURE,
            Response::Node { .. } => resp::NODE,
            Response::Welcome { .. } => resp::WELCOME,
            Response::Nodes(_) => resp::NODES,
            Response::Db { .. } => resp::DB,
            Response::Stmt { .. } => resp::STMT,
            Response::Result { .. } => resp::RESULT,
            Response::Rows(_) => resp::ROWS,
            Response::Empty => resp::EMPTY,
        }
    }

    /// Decode a response frame body. NODES is read as format 1 (with roles), the only format
    /// aiolite asks for.
    pub(crate) fn decode(h: Header, body: &[u8]) -> Result<Response, DecodeError> {
        if body.len() % 8 != 0 {
            return err("body is not a whole number of words");
        }
        let mut r = Reader::new(body);
        let resp = match h.kind {
            resp::FAILURE => {
                let code = r.u64("failure code")?;
                // The message is informational: keep it even when it is not UTF-8.
                let message = String::from_utf8_lossy(r.text_bytes("failure message")?).into_owned();
                Response::Failure { code, message }
            }
            resp::NODE => Response::Node {
                id: r.u64("node id")?,
                address: r.text("node address")?,
            },
            resp::WELCOME => Response::Welcome {
                heartbeat_timeout: r.u64("heartbeat timeout")?,
            },
            resp::NODES => {
                let n = r.u64("node count")?;
                // Every node takes at least three words.
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= r.remaining() / 24)
                    .map_or_else(|| err("node count larger than the message"), Ok)?;
                let mut nodes = Vec::with_capacity(n);
                for _ in 0..n {
                    nodes.push(NodeInfo {
                        id: r.u64("node id")?,
                        address: r.text("node address")?,
                        role: r.u64("node role")?,
                    });
                }
                Response::Nodes(nodes)
            }
            resp::DB => {
                let id = r.u32("database id")?;
                r.u32("padding")?;
                Response::Db { id }
            }
            resp::STMT => {
                let db = r.u32("database id")?;
                let id = r.u32("statement id")?;
                let params = r.u64("parameter count")?;
                let tail = if h.schema >= 1 {
                    Some(r.u64("tail offset")?)
                } else {
                    None
                };
                Response::Stmt { db, id, params, tail }
            }
            resp::RESULT => Response::Result {
                last_insert_id: r.u64("last insert id")?,
                rows_affected: r.u64("rows affected")?,
            },
            resp::ROWS => return decode_rows(body, false).map(Response::Rows),
            resp::EMPTY => {
                r.u64("empty")?;
                Response::Empty
            }
            k => return err(format!("unknown response type {k}")),
        };
        r.end("response")?;
        Ok(resp)
    }

    /// Append the frame (header and body) to `out`: the server's side, for tests and the fake
    /// server. ROWS are written with the types in `Rows::types` when present, else the plain
    /// types of the values.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let mut schema = 0;
        {
            let mut w = Writer(out);
            match self {
                Response::Failure { code, message } => {
                    w.u64(*code);
                    w.text(message)?;
                }
                Response::Node { id, address } => {
                    w.u64(*id);
                    w.text(address)?;
                }
                Response::Welcome { heartbeat_timeout } => w.u64(*heartbeat_timeout),
                Response::Nodes(nodes) => {
                    w.u64(nodes.len() as u64);
                    for n in nodes {
                        w.u64(n.id);
                        w.text(&n.address)?;
                        w.u64(n.role);
                    }
                }
                Response::Db { id } => {
                    w.u32(*id);
                    w.u32(0);
                }
                Response::Stmt { db, id, params, tail } => {
                    w.u32(*db);
                    w.u32(*id);
                    w.u64(*params);
                    if let Some(t) = tail {
                        w.u64(*t);
                        schema = 1;
                    }
                }
                Response::Result {
                    last_insert_id,
                    rows_affected,
                } => {
                    w.u64(*last_insert_id);
                    w.u64(*rows_affected);
                }
                Response::Rows(rows) => {
                    w.u64(rows.columns.len() as u64);
                    for c in &rows.columns {
                        w.text(c)?;
                    }
                    for (i, row) in rows.rows.iter().enumerate() {
                        let types: Vec<u8> = match &rows.types {
                            Some(t) => t[i].clone(),
                            None => row.iter().map(type_code).collect(),
                        };
                        write_row(w.0, &types, row)?;
                    }
                    w.u64(if rows.more { ROWS_PART } else { ROWS_DONE });
                }
                Response::Empty => w.u64(0),
            }
        }
        let body = out.len() - start - HEADER_LEN;
        let r = header(&mut out[start..start + HEADER_LEN], body, self.kind(), schema);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }
}

/// Split `bytes` into frames and decode each as a response; the fuzz target's entry point.
/// Never panics; returns how many frames decoded.
pub(crate) fn decode_stream(mut bytes: &[u8]) -> usize {
    let mut ok = 0;
    while bytes.len() >= HEADER_LEN {
        let h = Header::parse(bytes[..HEADER_LEN].try_into().expect("header"));
        let rest = &bytes[HEADER_LEN..];
        let len = h.body_len().min(rest.len());
        let body = &rest[..len];
        if let Ok(resp) = Response::decode(h, body) {
            ok += 1;
            // What decodes re-encodes to a frame that decodes to the same thing.
            let mut again = Vec::new();
            if resp.encode(&mut again).is_ok() {
                let h2 = Header::parse(again[..HEADER_LEN].try_into().expect("header"));
                let back = Response::decode(h2, &again[HEADER_LEN..]);
                assert!(
                    matches!(&back, Ok(b) if same_response(b, &resp)),
                    "re-encoding changed {resp:?} into {back:?}"
                );
            }
        }
        let _ = Request::decode(h, body);
        bytes = &rest[len..];
    }
    ok
}

/// Equality that compares floats by bits (NaN round-trips) and ignores what re-encoding cannot
/// keep (the ROWS types, which `encode` derives from the values, and lossy failure messages).
fn same_response(a: &Response, b: &Response) -> bool {
    match (a, b) {
        (Response::Rows(x), Response::Rows(y)) => {
            x.columns == y.columns
                && x.more == y.more
                && x.rows.len() == y.rows.len()
                && x.rows.iter().zip(&y.rows).all(|(r1, r2)| {
                    r1.len() == r2.len()
                        && r1.iter().zip(r2.iter()).all(|(v1, v2)| match (v1, v2) {
                            (Value::Real(f1), Value::Real(f2)) => f1.to_bits() == f2.to_bits(),
                            _ => v1 == v2,
                        })
                })
        }
        (Response::Failure { code: c1, .. }, Response::Failure { code: c2, .. }) => c1 == c2,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex of 8-byte words separated by spaces, as in DQLITE.md's appendix.
    fn hex(bytes: &[u8]) -> String {
        bytes
            .chunks(8)
            .map(|w| w.iter().map(|b| format!("{b:02x}")).collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn enc(r: &Request<'_>) -> String {
        let mut out = Vec::new();
        r.encode(&mut out).unwrap();
        // Every request decodes back to itself.
        let h = Header::parse(out[..8].try_into().unwrap());
        assert_eq!(h.body_len(), out.len() - 8);
        let back = Request::decode(h, &out[8..]).unwrap();
        assert_eq!(&back, r);
        hex(&out)
    }

    fn dec(frame: &str) -> Response {
        let b = unhex(frame);
        let h = Header::parse(b[..8].try_into().unwrap());
        assert_eq!(h.body_len(), b.len() - 8, "golden frame length");
        let r = Response::decode(h, &b[8..]).unwrap();
        // And every response encodes back to the same bytes.
        let mut again = Vec::new();
        r.encode(&mut again).unwrap();
        if !matches!(r, Response::Rows(_)) {
            assert_eq!(hex(&again), hex(&b), "{r:?}");
        }
        r
    }

    fn text_words(s: &str) -> String {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        b.resize(pad8(b.len()), 0);
        hex(&b)
    }

    fn no_params() -> Cow<'static, [Value]> {
        Cow::Owned(Vec::new())
    }

    #[test]
    fn golden_requests() {
        assert_eq!(enc(&Request::Leader), "0100000000000000 0000000000000000");
        assert_eq!(enc(&Request::Client { id: 0 }), "0100000001000000 0000000000000000");
        assert_eq!(
            enc(&Request::Cluster { format: 1 }),
            "0100000010000000 0100000000000000"
        );
        assert_eq!(
            enc(&Request::Open {
                name: "probe".into(),
                flags: 0,
                vfs: "volatile".into()
            }),
            "0400000003000000 70726f6265000000 0000000000000000 766f6c6174696c65 0000000000000000"
        );
        assert_eq!(
            enc(&Request::Prepare {
                db: 0,
                sql: "INSERT INTO t(i,s) VALUES(?,?)".into()
            }),
            format!(
                "0500000004000000 0000000000000000 {}",
                text_words("INSERT INTO t(i,s) VALUES(?,?)")
            )
        );
        assert_eq!(
            enc(&Request::Exec {
                db: 0,
                stmt: 0,
                params: vec![Value::Integer(42), Value::Text("x".into())].into()
            }),
            "0400000005000000 0000000000000000 0201030000000000 2a00000000000000 7800000000000000"
        );
        assert_eq!(
            enc(&Request::Query {
                db: 0,
                stmt: 1,
                params: vec![Value::Integer(41)].into()
            }),
            "0300000006000000 0000000001000000 0101000000000000 2900000000000000"
        );
        assert_eq!(
            enc(&Request::Finalize { db: 0, stmt: 1 }),
            "0100000007000000 0000000001000000"
        );
        assert_eq!(enc(&Request::Interrupt { db: 0 }), "010000000a000000 0000000000000000");
        assert_eq!(
            enc(&Request::ExecSql {
                db: 0,
                sql: "BEGIN".into(),
                params: no_params()
            }),
            "0200000008000000 0000000000000000 424547494e000000"
        );
        assert_eq!(
            enc(&Request::QuerySql {
                db: 0,
                sql: "SELECT ?".into(),
                params: vec![Value::Null].into()
            }),
            format!(
                "0500000009000000 0000000000000000 {} 0105000000000000 0000000000000000",
                text_words("SELECT ?")
            )
        );
        // Empty EXEC: the ids only, no parameter tuple.
        assert_eq!(
            enc(&Request::Exec {
                db: 0,
                stmt: 7,
                params: no_params()
            }),
            "0100000005000000 0000000007000000"
        );
    }

    #[test]
    fn nine_parameter_tuple_matches_capture() {
        // DQLITE.md: 9 parameters give `09 01 02 03 04 0b 0a 01 | 03 05 00…` (go-dqlite sends
        // bool as 11 and time as 10; aiolite never does, but the server-side reader takes them).
        let tuple = unhex(
            "0901020304 0b0a01 0305000000000000 \
             0700000000000000 000000000000f83f 6100000000000000 0100000000000000 ab00000000000000 \
             0100000000000000 3230323400000000 0800000000000000 6200000000000000 0000000000000000",
        );
        let vals = read_params(&mut Reader::new(&tuple), 0).unwrap();
        assert_eq!(
            vals,
            [
                Value::Integer(7),
                Value::Real(1.5),
                Value::Text("a".into()),
                Value::Blob(vec![0xab]),
                Value::Integer(1),
                Value::Text("2024".into()),
                Value::Integer(8),
                Value::Text("b".into()),
                Value::Null,
            ]
        );
        // Our writer produces the same layout for the value kinds it sends.
        let vals: Vec<Value> = vec![
            Value::Integer(1),
            Value::Real(1.5),
            Value::Text(String::new()),
            Value::Blob(vec![]),
            Value::Null,
        ];
        let mut out = Vec::new();
        write_params(&mut Writer(&mut out), &vals, 0).unwrap();
        assert_eq!(
            hex(&out),
            "0501020304050000 0100000000000000 000000000000f83f 0000000000000000 0000000000000000 0000000000000000"
        );
    }

    #[test]
    fn wide_parameter_probe() {
        let req = Request::QuerySql {
            db: 0,
            sql: "SELECT ?".into(),
            params: vec![Value::Integer(1)].into(),
        };
        let mut out = Vec::new();
        req.encode_wide(&mut out).unwrap();
        assert_eq!(
            hex(&out),
            format!(
                "0500000009010000 0000000000000000 {} 0100000001000000 0100000000000000",
                text_words("SELECT ?")
            )
        );
        let h = Header::parse(out[..8].try_into().unwrap());
        assert_eq!(Request::decode(h, &out[8..]).unwrap(), req);
    }

    #[test]
    fn text_padding() {
        for (s, words) in [
            ("", 1),
            ("1234567", 1),
            ("12345678", 2),
            ("123456789012345", 2),
            ("1234567890123456", 3),
        ] {
            let mut out = Vec::new();
            Writer(&mut out).text(s).unwrap();
            assert_eq!(out.len(), words * 8, "{s:?}");
            assert_eq!(&out[..s.len()], s.as_bytes());
            assert!(out[s.len()..].iter().all(|&b| b == 0));
            let mut r = Reader::new(&out);
            assert_eq!(r.text("t").unwrap(), s);
            assert_eq!(r.remaining(), 0);
        }
        assert_eq!(Writer(&mut Vec::new()).text("a\0b"), Err(EncodeError::Nul));
    }

    #[test]
    fn blob_padding() {
        for (n, words) in [(0, 1), (1, 2), (8, 2), (9, 3)] {
            let mut out = Vec::new();
            Writer(&mut out).blob(&vec![0xab; n]);
            assert_eq!(out.len(), words * 8, "{n}");
            assert_eq!(Reader::new(&out).blob("b").unwrap(), &vec![0xab; n][..]);
        }
    }

    #[test]
    fn parameter_counts_and_schemas() {
        for n in [0_usize, 1, 7, 8, 255, 256, 300] {
            let params: Vec<Value> = (0..n as i64).map(Value::Integer).collect();
            let req = Request::Exec {
                db: 0,
                stmt: 3,
                params: params.clone().into(),
            };
            let mut out = Vec::new();
            req.encode(&mut out).unwrap();
            let h = Header::parse(out[..8].try_into().unwrap());
            let (count_len, schema) = if n > 255 { (4, 1) } else { (1, 0) };
            assert_eq!(h.schema, schema, "{n}");
            let tuple = if n == 0 { 0 } else { pad8(count_len + n) + 8 * n };
            assert_eq!(h.body_len(), 8 + tuple, "{n}");
            if n > 0 {
                let body = &out[16..];
                if schema == 0 {
                    assert_eq!(body[0] as usize, n);
                    assert!(body[1..=n].iter().all(|&t| t == ty::INTEGER));
                    assert!(body[1 + n..pad8(1 + n)].iter().all(|&b| b == 0));
                } else {
                    assert_eq!(u32::from_le_bytes(body[..4].try_into().unwrap()) as usize, n);
                    assert!(body[4..4 + n].iter().all(|&t| t == ty::INTEGER));
                }
            }
            assert_eq!(Request::decode(h, &out[8..]).unwrap(), req);
        }
    }

    #[test]
    fn golden_responses() {
        assert_eq!(
            dec("0300000001000000 be55318c8571c12d 3132372e302e302e 313a313930303100"),
            Response::Node {
                id: 0x2dc1_7185_8c31_55be,
                address: "127.0.0.1:19001".into()
            }
        );
        assert_eq!(
            dec("0200000001000000 0000000000000000 0000000000000000"),
            Response::Node {
                id: 0,
                address: String::new()
            }
        );
        assert_eq!(
            dec("0100000002000000 983a000000000000"),
            Response::Welcome {
                heartbeat_timeout: 15000
            }
        );
        assert_eq!(
            dec(
                "0d00000003000000 0300000000000000 be55318c8571c12d 3132372e302e302e 313a313930303100 0000000000000000 0200000000000000 3132372e302e302e 313a313930303200 0000000000000000 0300000000000000 3132372e302e302e 313a313930303300 0100000000000000"
            ),
            Response::Nodes(vec![
                NodeInfo {
                    id: 0x2dc1_7185_8c31_55be,
                    address: "127.0.0.1:19001".into(),
                    role: 0
                },
                NodeInfo {
                    id: 2,
                    address: "127.0.0.1:19002".into(),
                    role: 0
                },
                NodeInfo {
                    id: 3,
                    address: "127.0.0.1:19003".into(),
                    role: 1
                },
            ])
        );
        assert_eq!(dec("0100000004000000 0000000000000000"), Response::Db { id: 0 });
        assert_eq!(
            dec("0200000005000000 0000000000000000 0200000000000000"),
            Response::Stmt {
                db: 0,
                id: 0,
                params: 2,
                tail: None
            }
        );
        assert_eq!(
            dec("0300000005010000 0000000004000000 0100000000000000 1500000000000000"),
            Response::Stmt {
                db: 0,
                id: 4,
                params: 1,
                tail: Some(21)
            }
        );
        assert_eq!(
            dec("0200000006000000 0600000000000000 0100000000000000"),
            Response::Result {
                last_insert_id: 6,
                rows_affected: 1
            }
        );
        assert_eq!(dec("0100000008000000 0000000000000000"), Response::Empty);
        assert_eq!(
            dec(
                "0500000000000000 0100000000000000 6e65617220225345 4c4543223a207379 6e74617820657272 6f72000000000000"
            ),
            Response::Failure {
                code: 1,
                message: "near \"SELEC\": syntax error".into()
            }
        );
        assert_eq!(
            dec("0300000000000000 0a28000000000000 6e6f74206c656164 6572000000000000"),
            Response::Failure {
                code: 10250,
                message: "not leader".into()
            }
        );
    }

    #[test]
    fn golden_rows_one_column() {
        // `SELECT i FROM t` with 100, then DONE.
        let r = dec(
            "0500000007000000 0100000000000000 6900000000000000 0100000000000000 6400000000000000 ffffffffffffffff",
        );
        let Response::Rows(rows) = r else { panic!() };
        assert_eq!(rows.columns, ["i"]);
        assert_eq!(rows.rows, vec![RowValues::from_vec(vec![Value::Integer(100)])]);
        assert!(!rows.more);
    }

    #[test]
    fn golden_row_of_ten_columns() {
        // DQLITE.md's captured row: id,i,f,s,b,bo,dt,ts,d,u.
        let row = "1132b49a5a000000 0100000000000000 feffffffffffffff 000000000000f83f 68c3a96c6c6f0000 \
                   0300000000000000 0001020000000000 0100000000000000 \
                   323032342d30312d 30322030333a3034 3a30352e31323334 35363738392b3030 3a30300000000000 \
                   00f1536500000000 323032342d30352d 3036000000000000 0000000000000000";
        let names = ["id", "i", "f", "s", "b", "bo", "dt", "ts", "d", "u"];
        let mut body = 10u64.to_le_bytes().to_vec();
        for n in names {
            body.extend(unhex(&text_words(n)));
        }
        body.extend(unhex(row));
        body.extend(ROWS_DONE.to_le_bytes());
        let rows = decode_rows(&body, true).unwrap();
        assert_eq!(rows.columns, names);
        assert_eq!(rows.types.as_ref().unwrap()[0], [1, 1, 2, 3, 4, 11, 10, 9, 10, 5]);
        assert_eq!(
            &*rows.rows[0],
            &[
                Value::Integer(1),
                Value::Integer(-2),
                Value::Real(1.5),
                Value::Text("héllo".into()),
                Value::Blob(vec![0, 1, 2]),
                Value::Integer(1),
                Value::Text("2024-01-02 03:04:05.123456789+00:00".into()),
                Value::Integer(1_700_000_000),
                Value::Text("2024-05-06".into()),
                Value::Null,
            ]
        );
        // Re-encoded with the same type codes, the bytes are the capture's.
        let mut out = Vec::new();
        write_row(&mut out, &rows.types.as_ref().unwrap()[0], &rows.rows[0]).unwrap();
        assert_eq!(hex(&out), hex(&unhex(row)));
    }

    fn rows_body(ncols: usize, nrows: usize, more: bool) -> Vec<u8> {
        let rows = Rows {
            columns: (0..ncols).map(|i| format!("c{i}")).collect(),
            rows: (0..nrows)
                .map(|r| {
                    (0..ncols)
                        .map(|c| match c % 5 {
                            0 => Value::Integer((r * c) as i64),
                            1 => Value::Real(r as f64 / 3.0),
                            2 => Value::Text("x".repeat(c)),
                            3 => Value::Blob(vec![r as u8; c]),
                            _ => Value::Null,
                        })
                        .collect::<RowValues>()
                })
                .collect(),
            types: None,
            more,
            bad_utf8: None,
        };
        let mut out = Vec::new();
        Response::Rows(rows).encode(&mut out).unwrap();
        out
    }

    #[test]
    fn row_headers_for_1_2_16_17_columns() {
        for (ncols, header_words) in [(1, 1), (2, 1), (16, 1), (17, 2)] {
            let frame = rows_body(ncols, 2, false);
            let h = Header::parse(frame[..8].try_into().unwrap());
            let body = &frame[8..];
            let rows = decode_rows(body, true).unwrap();
            assert_eq!(rows.rows.len(), 2);
            assert_eq!(rows.columns.len(), ncols);
            // Where the first row's header starts: after the count and the names.
            let names: usize = (0..ncols).map(|i| pad8(format!("c{i}").len() + 1)).sum();
            let head = &body[8 + names..8 + names + 8 * header_words];
            for c in 0..ncols {
                let code = (head[c / 2] >> (4 * (c % 2))) & 0x0f;
                assert_eq!(code, rows.types.as_ref().unwrap()[0][c], "{ncols} cols, col {c}");
            }
            // Unused nibbles and header padding are zero.
            for c in ncols..8 * header_words * 2 {
                assert_eq!((head[c / 2] >> (4 * (c % 2))) & 0x0f, 0, "{ncols} cols, nibble {c}");
            }
            assert_eq!(
                Response::decode(h, body).unwrap(),
                Response::Rows(Rows { types: None, ..rows })
            );
        }
    }

    #[test]
    fn rows_markers_and_empty_results() {
        let part = rows_body(3, 5, true);
        let Response::Rows(r) = Response::decode(Header::parse(part[..8].try_into().unwrap()), &part[8..]).unwrap()
        else {
            panic!()
        };
        assert!(r.more);
        assert_eq!(r.rows.len(), 5);
        let none = rows_body(2, 0, false);
        let r = decode_rows(&none[8..], false).unwrap();
        assert_eq!((r.columns.len(), r.rows.len(), r.more), (2, 0, false));
        // Zero columns: the count, then the marker.
        let r = decode_rows(&unhex("0000000000000000 ffffffffffffffff"), false).unwrap();
        assert!(r.columns.is_empty() && r.rows.is_empty());
        // A bad marker.
        assert!(decode_rows(&unhex("0000000000000000 0100000000000000"), false).is_err());
        // Rows without columns.
        assert!(decode_rows(&unhex("0000000000000000 0100000000000000 ffffffffffffffff"), false).is_err());
    }

    #[test]
    fn special_codes_decode_to_plain_values() {
        // One column of each special code, and the coerced NULLs of date/boolean columns.
        let mut body = 1u64.to_le_bytes().to_vec();
        body.extend(unhex(&text_words("v")));
        let cases: [(u8, &str, Value); 5] = [
            (ty::UNIXTIME, "ffffffffffffffff", Value::Integer(-1)),
            (ty::BOOLEAN, "0500000000000000", Value::Integer(5)),
            (ty::BOOLEAN, "0000000000000000", Value::Integer(0)),
            (ty::ISO8601, "3230323400000000", Value::Text("2024".into())),
            (ty::ISO8601, "0000000000000000", Value::Null),
        ];
        for (t, v, _) in &cases {
            body.extend([*t, 0, 0, 0, 0, 0, 0, 0]);
            body.extend(unhex(v));
        }
        body.extend(ROWS_DONE.to_le_bytes());
        let rows = decode_rows(&body, false).unwrap();
        let got: Vec<Value> = rows.rows.iter().map(|r| r[0].clone()).collect();
        let want: Vec<Value> = cases.iter().map(|c| c.2.clone()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn invalid_utf8_is_flagged_not_fatal() {
        let mut body = 2u64.to_le_bytes().to_vec();
        body.extend(unhex(&text_words("a")));
        body.extend(unhex(&text_words("b")));
        body.extend([0x31, 0, 0, 0, 0, 0, 0, 0]); // INTEGER, TEXT
        body.extend(7i64.to_le_bytes());
        body.extend([0xff, 0xfe, 0, 0, 0, 0, 0, 0]);
        body.extend(ROWS_DONE.to_le_bytes());
        let rows = decode_rows(&body, false).unwrap();
        assert_eq!(rows.bad_utf8, Some(1));
        assert_eq!(&*rows.rows[0], &[Value::Integer(7), Value::Null]);
    }

    #[test]
    fn truncated_frames_are_errors() {
        let frames = [
            "0300000001000000 be55318c8571c12d 3132372e302e302e 313a313930303100",
            "0d00000003000000 0100000000000000 be55318c8571c12d 3132372e302e302e 313a313930303100 0000000000000000",
            "0200000005000000 0000000000000000 0200000000000000",
            "0200000006000000 0600000000000000 0100000000000000",
            "0500000000000000 0100000000000000 6e65617220225345 4c4543223a207379 6e74617820657272 6f72000000000000",
        ];
        for f in frames {
            let b = unhex(f);
            let h = Header::parse(b[..8].try_into().unwrap());
            let body = &b[8..];
            assert!(Response::decode(h, body).is_ok());
            for cut in 0..body.len() {
                assert!(Response::decode(h, &body[..cut]).is_err(), "{f} cut at {cut}");
            }
        }
        // Every proper prefix of a ROWS body fails too (the marker is the last word).
        let rows = rows_body(3, 4, false);
        let body = &rows[8..];
        for cut in 0..body.len() {
            assert!(decode_rows(&body[..cut], false).is_err(), "rows cut at {cut}");
        }
        // Absurd counts are refused before allocating.
        assert!(decode_rows(&unhex("ffffffffffffffff ffffffffffffffff"), false).is_err());
        let nodes = unhex("ffffffff00000000 0000000000000000");
        assert!(
            Response::decode(
                Header {
                    words: 2,
                    kind: resp::NODES,
                    schema: 0
                },
                &nodes
            )
            .is_err()
        );
        let blob = unhex("0400000000000000 0000000000000000 ffffffffffffff7f ffffffffffffffff");
        assert!(decode_rows(&blob[..], false).is_err());
        // Unknown types and trailing garbage.
        assert!(
            Response::decode(
                Header {
                    words: 1,
                    kind: 99,
                    schema: 0
                },
                &[0; 8]
            )
            .is_err()
        );
        assert!(
            Response::decode(
                Header {
                    words: 2,
                    kind: resp::EMPTY,
                    schema: 0
                },
                &[0; 16]
            )
            .is_err()
        );
        assert_eq!(decode_stream(&unhex("0100000008000000 0000000000000000 01000000")), 1);
    }
}
