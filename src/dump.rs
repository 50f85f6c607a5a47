//! `Connection::iterdump`: the database as SQL text, line for line as Python's
//! `sqlite3.Connection.iterdump()` gives it.
//!
//! The reference is CPython 3.11's `sqlite3/dump.py` running on SQLite 3.40.1. Its structure is
//! followed step by step (same schema queries, same order, same special cases); the one part
//! that cannot be borrowed from the bundled SQLite is `quote()` of `REAL` values, whose text
//! changed in SQLite 3.43 (3.40.1 prints `1.0/3` as `3.33333333333333314829e-01`, 3.43+ as
//! `0.33333333333333332`). Row values are therefore read as values through a [`Cursor`]
//! and quoted here, with the 3.40.1 float printer reproduced exactly: its `%!.15g` /
//! `%!.20e` conversions and its `sqlite3AtoF` round-trip check run on an emulation of the x87
//! 80-bit `long double` arithmetic SQLite uses for them on x86-64.

use std::collections::VecDeque;
use std::fmt::Write as _;

use futures_core::Stream;
use futures_util::StreamExt;

use crate::connection::Connection;
use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::value::Value;

/// Python's first schema query: the tables, by name.
const TABLES_SQL: &str = r#"
        SELECT "name", "type", "sql"
        FROM "sqlite_master"
            WHERE "sql" NOT NULL AND
            "type" == 'table'
            ORDER BY "name"
        "#;

/// Python's second schema query: indexes, triggers and views, in `sqlite_master` order (it has
/// no `ORDER BY`, so the order is the rowid order of `sqlite_master`).
const OTHERS_SQL: &str = r#"
        SELECT "name", "type", "sql"
        FROM "sqlite_master"
            WHERE "sql" NOT NULL AND
            "type" IN ('index', 'trigger', 'view')
        "#;

impl Connection {
    /// Dump the database as SQL text, one statement per item: the lines Python's
    /// `sqlite3.Connection.iterdump()` gives (as of CPython 3.11), in the same order —
    /// `BEGIN TRANSACTION;`, each table (by name) with its rows as `INSERT` statements,
    /// `ANALYZE "sqlite_master";` for `sqlite_stat1`, virtual tables through
    /// `PRAGMA writable_schema`, then indexes, triggers and views, the `sqlite_sequence`
    /// statements of `AUTOINCREMENT` tables, and `COMMIT;`. Joined with newlines, the lines
    /// form a script that [`execute_script`](Self::execute_script) replays into an empty
    /// database.
    ///
    /// Nothing runs until the stream is first polled; the stream holds its own handle to the
    /// connection. Rows are streamed through a [`Cursor`], so a large table is never held in
    /// memory at once; dropping the stream early closes its cursor. Values are written as
    /// `quote()` of SQLite 3.40.1 (the SQLite of the reference Python) writes them, whatever
    /// the bundled SQLite's own `quote()` does, so `REAL`s keep their exact bits when
    /// replayed — except infinities, written `Inf` / `-Inf` as 3.40.1 does, which do not
    /// replay (nor do they from Python). Like Python's, the dump does not run in a
    /// transaction of its own: rows written meanwhile may or may not appear in it.
    ///
    /// One deliberate difference: Python 3.11 fails (`OperationalError`) on a table whose
    /// name contains a single quote, because it pastes the name into a SQL string literal;
    /// aiolite writes that table's rows normally (`INSERT INTO "it's" VALUES(..);`), as later
    /// Python versions do.
    ///
    /// # Failure
    /// The stream yields one error and ends: [`Error::Closed`](crate::Error::Closed) when the
    /// connection is closed, SQLite's error when a query fails (e.g. a virtual table whose
    /// module is not available), [`Error::InvalidUtf8`](crate::Error::InvalidUtf8) for text
    /// that is not UTF-8 (Python fails there too).
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// use futures::TryStreamExt;
    /// let db = aiolite::connect(":memory:").await?;
    /// db.execute_script("CREATE TABLE t(x, y); INSERT INTO t VALUES (0.5, 'it''s');").await?;
    /// let lines: Vec<String> = db.iterdump().try_collect().await?;
    /// assert_eq!(
    ///     lines,
    ///     [
    ///         "BEGIN TRANSACTION;",
    ///         "CREATE TABLE t(x, y);",
    ///         "INSERT INTO \"t\" VALUES(0.5,'it''s');",
    ///         "COMMIT;",
    ///     ]
    /// );
    ///
    /// let copy = aiolite::connect(":memory:").await?;
    /// copy.execute_script(&lines.join("\n")).await?;
    /// assert_eq!(copy.fetch_scalar::<String>("SELECT y FROM t", ()).await?.as_deref(), Some("it's"));
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub fn iterdump(&self) -> impl Stream<Item = Result<String>> + Send + Unpin + 'static {
        let dump = Dump {
            conn: self.clone(),
            pending: VecDeque::new(),
            stage: Stage::Start,
            sequence: Vec::new(),
            writable_schema: false,
        };
        Box::pin(futures_util::stream::try_unfold(dump, Dump::next_line))
    }
}

/// The state of a dump between two lines.
struct Dump {
    conn: Connection,
    /// Lines ready to be yielded.
    pending: VecDeque<String>,
    stage: Stage,
    /// The `sqlite_sequence` statements, yielded at the end.
    sequence: Vec<String>,
    /// `PRAGMA writable_schema=ON;` was yielded.
    writable_schema: bool,
}

enum Stage {
    Start,
    ListTables,
    /// The tables still to dump: `(name, sql)`.
    Tables(std::vec::IntoIter<(String, String)>),
    /// Streaming the rows of one table.
    Rows {
        cursor: Box<Cursor>,
        /// `INSERT INTO "t" VALUES(`
        prefix: String,
        /// Values per row (the query selects `1` for a table without visible columns).
        width: usize,
        tables: std::vec::IntoIter<(String, String)>,
    },
    Others,
    Done,
}

/// `name` as a double-quoted identifier body (Python's `name.replace('"', '""')`).
fn ident(name: &str) -> String {
    name.replace('"', "\"\"")
}

/// Column `i` of a schema row as text.
fn text(row: &crate::Row, i: usize) -> String {
    match row.values().get(i) {
        Some(Value::Text(s)) => s.clone(),
        Some(v) => py_str(v),
        None => String::new(),
    }
}

impl Dump {
    async fn next_line(mut self) -> Result<Option<(String, Dump)>> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Ok(Some((line, self)));
            }
            match std::mem::replace(&mut self.stage, Stage::Done) {
                Stage::Start => {
                    // Python opens its cursor before yielding anything.
                    if self.conn.is_closed() {
                        return Err(Error::Closed);
                    }
                    self.pending.push_back("BEGIN TRANSACTION;".into());
                    self.stage = Stage::ListTables;
                }
                Stage::ListTables => {
                    let rows = self.conn.fetch_all(TABLES_SQL, ()).await?;
                    let tables: Vec<(String, String)> = rows.iter().map(|r| (text(r, 0), text(r, 2))).collect();
                    self.stage = Stage::Tables(tables.into_iter());
                }
                Stage::Tables(mut tables) => match tables.next() {
                    None => self.stage = Stage::Others,
                    Some((name, sql)) => {
                        self.stage = self.start_table(name, sql, tables).await?;
                    }
                },
                Stage::Rows {
                    mut cursor,
                    prefix,
                    width,
                    tables,
                } => match cursor.next().await {
                    Some(row) => {
                        let row = row?;
                        let mut line = prefix.clone();
                        for (i, v) in row.values().iter().take(width).enumerate() {
                            if i > 0 {
                                line.push(',');
                            }
                            quote_value(&mut line, v);
                        }
                        line.push_str(");");
                        self.pending.push_back(line);
                        self.stage = Stage::Rows {
                            cursor,
                            prefix,
                            width,
                            tables,
                        };
                    }
                    None => self.stage = Stage::Tables(tables),
                },
                Stage::Others => {
                    for row in self.conn.fetch_all(OTHERS_SQL, ()).await? {
                        self.pending.push_back(format!("{};", text(&row, 2)));
                    }
                    if self.writable_schema {
                        self.pending.push_back("PRAGMA writable_schema=OFF;".into());
                    }
                    for line in self.sequence.drain(..) {
                        self.pending.push_back(format!("{line};"));
                    }
                    self.pending.push_back("COMMIT;".into());
                }
                Stage::Done => return Ok(None),
            }
        }
    }

    /// The statements that create table `name`, then the stage that streams its rows.
    async fn start_table(
        &mut self,
        name: String,
        sql: String,
        tables: std::vec::IntoIter<(String, String)>,
    ) -> Result<Stage> {
        if name == "sqlite_sequence" {
            let rows = self.conn.fetch_all(r#"SELECT * FROM "sqlite_sequence";"#, ()).await?;
            self.sequence = vec![r#"DELETE FROM "sqlite_sequence""#.to_string()];
            for row in rows {
                let v = row.values();
                let (a, b) = (
                    v.first().map_or_else(String::new, py_str),
                    v.get(1).map_or_else(String::new, py_str),
                );
                self.sequence
                    .push(format!(r#"INSERT INTO "sqlite_sequence" VALUES('{a}',{b})"#));
            }
            return Ok(Stage::Tables(tables));
        } else if name == "sqlite_stat1" {
            self.pending.push_back(r#"ANALYZE "sqlite_master";"#.into());
        } else if name.starts_with("sqlite_") {
            return Ok(Stage::Tables(tables));
        } else if sql.starts_with("CREATE VIRTUAL TABLE") {
            if !self.writable_schema {
                self.writable_schema = true;
                self.pending.push_back("PRAGMA writable_schema=ON;".into());
            }
            self.pending.push_back(format!(
                "INSERT INTO sqlite_master(type,name,tbl_name,rootpage,sql)VALUES('table','{0}','{0}',0,'{1}');",
                name.replace('\'', "''"),
                sql.replace('\'', "''"),
            ));
        } else {
            self.pending.push_back(format!("{sql};"));
        }

        let ident = ident(&name);
        let info = self
            .conn
            .fetch_all(&format!("PRAGMA table_info(\"{ident}\")"), ())
            .await?;
        let columns: Vec<String> = info.iter().map(|r| text(r, 1)).collect();
        let select = if columns.is_empty() {
            // Python's query then makes `INSERT INTO "t" VALUES();` for each row.
            format!("SELECT 1 FROM \"{ident}\";")
        } else {
            let list: Vec<String> = columns.iter().map(|c| format!("\"{}\"", self::ident(c))).collect();
            format!("SELECT {} FROM \"{ident}\";", list.join(","))
        };
        let cursor = Box::new(self.conn.query(&select, ()).await?);
        Ok(Stage::Rows {
            cursor,
            prefix: format!("INSERT INTO \"{ident}\" VALUES("),
            width: columns.len(),
            tables,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// quote(), as SQLite 3.40.1 writes it
// ---------------------------------------------------------------------------------------------

/// Append `v` as SQLite 3.40.1's `quote(v)` writes it.
fn quote_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Real(r) => out.push_str(&quote_real(*r)),
        Value::Text(s) => {
            // `%Q` reads a C string: the text ends at its first NUL.
            let s = s.split('\0').next().unwrap_or("");
            out.push('\'');
            for (i, part) in s.split('\'').enumerate() {
                if i > 0 {
                    out.push_str("''");
                }
                out.push_str(part);
            }
            out.push('\'');
        }
        Value::Blob(b) => {
            out.reserve(b.len() * 2 + 3);
            out.push_str("X'");
            for byte in b {
                let _ = write!(out, "{byte:02X}");
            }
            out.push('\'');
        }
    }
}

/// A `REAL` as SQLite 3.40.1's `quote()` writes it: `%!.15g`, or `%!.20e` when the 15-digit
/// text does not read back (with SQLite's own `sqlite3AtoF`) as the same double.
fn quote_real(r: f64) -> String {
    let short = sqlite_printf_float(r, 15, true);
    if atof(short.as_bytes()) == r {
        short
    } else {
        sqlite_printf_float(r, 20, false)
    }
}

/// SQLite 3.40's `printf` for `%!.{precision}g` (`generic`) or `%!.{precision}e`: the `!`
/// flag (up to 26 significant digits, always a decimal point, trailing zeros removed), no
/// width, no other flags. Digits come from `long double` arithmetic, emulated by [`F80`].
fn sqlite_printf_float(value: f64, precision: i32, generic: bool) -> String {
    const AR_ROUND: [f64; 10] = [
        5.0e-01, 5.0e-02, 5.0e-03, 5.0e-04, 5.0e-05, 5.0e-06, 5.0e-07, 5.0e-08, 5.0e-09, 5.0e-10,
    ];
    if value.is_nan() {
        return "NaN".into();
    }
    let mut out = String::with_capacity(32);
    if value < 0.0 {
        out.push('-');
    }
    if value.is_infinite() {
        // SQLite's normalisation runs `exp` past 350 and prints this.
        out.push_str("Inf");
        return out;
    }
    let mut real = F80::from_f64(value.abs());
    let mut precision = precision;
    if generic && precision > 0 {
        precision -= 1;
    }
    let mut idx = (precision & 0xfff) as usize;
    let mut rounder = AR_ROUND[idx % 10];
    while idx >= 10 {
        rounder *= 1.0e-10;
        idx -= 10;
    }
    let mut exp: i32 = 0;
    if real.gt_zero() {
        let mut scale = F80::from_f64(1.0);
        let (e100, e10, ten) = (F80::from_f64(1e100), F80::from_f64(1e10), F80::from_f64(10.0));
        while real.ge(e100.mul(scale)) && exp <= 350 {
            scale = scale.mul(e100);
            exp += 100;
        }
        while real.ge(e10.mul(scale)) && exp <= 350 {
            scale = scale.mul(e10);
            exp += 10;
        }
        while real.ge(ten.mul(scale)) && exp <= 350 {
            scale = scale.mul(ten);
            exp += 1;
        }
        real = real.div(scale);
        let (em8, e8, one) = (F80::from_f64(1e-8), F80::from_f64(1e8), F80::from_f64(1.0));
        while real.lt(em8) {
            real = real.mul(e8);
            exp -= 8;
        }
        while real.lt(one) {
            real = real.mul(ten);
            exp -= 1;
        }
    }
    // etGENERIC and etEXP round here.
    real = real.add(F80::from_f64(rounder));
    if real.ge(F80::from_f64(10.0)) {
        real = real.mul(F80::from_f64(0.1));
        exp += 1;
    }
    let exp_form = if generic {
        if exp < -4 || exp > precision {
            true
        } else {
            precision -= exp;
            false
        }
    } else {
        true
    };
    let mut e2 = if exp_form { 0 } else { exp };
    let mut nsd = 26; // 16 + 10 for the `!` flag
    let mut digit = |real: &mut F80| -> char {
        if nsd <= 0 {
            return '0';
        }
        nsd -= 1;
        let d = real.trunc_i32();
        *real = real.sub(F80::from_i64(i64::from(d))).mul(F80::from_f64(10.0));
        char::from((b'0' as i32 + d) as u8)
    };
    if e2 < 0 {
        out.push('0');
    } else {
        while e2 >= 0 {
            out.push(digit(&mut real));
            e2 -= 1;
        }
    }
    out.push('.');
    e2 += 1;
    while e2 < 0 {
        out.push('0');
        precision -= 1;
        e2 += 1;
    }
    while precision > 0 {
        precision -= 1;
        out.push(digit(&mut real));
    }
    // Trailing zeros go; with `!`, a bare "." keeps one zero.
    while out.ends_with('0') {
        out.pop();
    }
    if out.ends_with('.') {
        out.push('0');
    }
    if exp_form {
        out.push('e');
        if exp < 0 {
            out.push('-');
            exp = -exp;
        } else {
            out.push('+');
        }
        if exp >= 100 {
            out.push(char::from(b'0' + (exp / 100) as u8));
            exp %= 100;
        }
        out.push(char::from(b'0' + (exp / 10) as u8));
        out.push(char::from(b'0' + (exp % 10) as u8));
    }
    out
}

/// SQLite 3.40's `sqlite3AtoF` for UTF-8 text (the value only; validity is not needed here).
fn atof(z: &[u8]) -> f64 {
    const LARGEST: i64 = i64::MAX;
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut i = 0;
    while i < z.len() && is_space(z[i]) {
        i += 1;
    }
    if i >= z.len() {
        return 0.0;
    }
    let mut sign = 1;
    if z[i] == b'-' {
        sign = -1;
        i += 1;
    } else if z[i] == b'+' {
        i += 1;
    }
    let (mut s, mut d, mut esign, mut e) = (0_i64, 0_i32, 1_i32, 0_i32);
    while i < z.len() && z[i].is_ascii_digit() {
        s = s * 10 + i64::from(z[i] - b'0');
        i += 1;
        if s >= (LARGEST - 9) / 10 {
            while i < z.len() && z[i].is_ascii_digit() {
                i += 1;
                d += 1;
            }
        }
    }
    if i < z.len() && z[i] == b'.' {
        i += 1;
        while i < z.len() && z[i].is_ascii_digit() {
            if s < (LARGEST - 9) / 10 {
                s = s * 10 + i64::from(z[i] - b'0');
                d -= 1;
            }
            i += 1;
        }
    }
    if i < z.len() && (z[i] == b'e' || z[i] == b'E') {
        i += 1;
        if i < z.len() {
            if z[i] == b'-' {
                esign = -1;
                i += 1;
            } else if z[i] == b'+' {
                i += 1;
            }
            while i < z.len() && z[i].is_ascii_digit() {
                e = if e < 10000 {
                    e * 10 + i32::from(z[i] - b'0')
                } else {
                    10000
                };
                i += 1;
            }
        }
    }
    e = e * esign + d;
    if e < 0 {
        esign = -1;
        e = -e;
    } else {
        esign = 1;
    }
    if s == 0 {
        return if sign < 0 { -0.0 } else { 0.0 };
    }
    while e > 0 {
        if esign > 0 {
            if s >= LARGEST / 10 {
                break;
            }
            s *= 10;
        } else {
            if s % 10 != 0 {
                break;
            }
            s /= 10;
        }
        e -= 1;
    }
    let s = if sign < 0 { -s } else { s };
    if e == 0 {
        s as f64
    } else if e > 307 {
        if e < 342 {
            let scale = pow10(e - 308);
            if esign < 0 {
                F80::from_i64(s).div(scale).to_f64() / 1.0e308
            } else {
                F80::from_i64(s).mul(scale).to_f64() * 1.0e308
            }
        } else if esign < 0 {
            0.0 * s as f64
        } else {
            f64::INFINITY * s as f64
        }
    } else {
        let scale = pow10(e);
        if esign < 0 {
            F80::from_i64(s).div(scale).to_f64()
        } else {
            F80::from_i64(s).mul(scale).to_f64()
        }
    }
}

/// SQLite 3.40's `sqlite3Pow10` (square-and-multiply in `long double`).
fn pow10(mut e: i32) -> F80 {
    let mut x = F80::from_f64(10.0);
    let mut r = F80::from_f64(1.0);
    loop {
        if e & 1 != 0 {
            r = r.mul(x);
        }
        e >>= 1;
        if e == 0 {
            break;
        }
        x = x.mul(x);
    }
    r
}

/// An x87 80-bit extended-precision value (64-bit significand, round to nearest even), enough
/// of it to replay SQLite's `long double` code: finite values only, and an exponent range
/// wider than the real one (never reached by that code).
#[derive(Clone, Copy, Debug, PartialEq)]
struct F80 {
    neg: bool,
    /// Significand with its top bit set; 0 for zero.
    mant: u64,
    /// The value is `mant * 2^exp`.
    exp: i32,
}

impl F80 {
    fn zero(neg: bool) -> F80 {
        F80 { neg, mant: 0, exp: 0 }
    }

    fn from_f64(x: f64) -> F80 {
        debug_assert!(x.is_finite());
        let bits = x.to_bits();
        let neg = bits >> 63 == 1;
        let biased = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1 << 52) - 1);
        let (m, e) = if biased == 0 {
            (frac, -1074)
        } else {
            (frac | (1 << 52), biased - 1075)
        };
        if m == 0 {
            return F80::zero(neg);
        }
        let lz = m.leading_zeros();
        F80 {
            neg,
            mant: m << lz,
            exp: e - lz as i32,
        }
    }

    fn from_i64(v: i64) -> F80 {
        F80::round(v < 0, u128::from(v.unsigned_abs()), 0)
    }

    /// Round `x * 2^exp` to 64 significant bits. The lowest bit of `x` may be a sticky bit
    /// standing for "something non-zero below", as long as `x` has at least two bits more
    /// than the 64 kept.
    fn round(neg: bool, x: u128, exp: i32) -> F80 {
        if x == 0 {
            return F80::zero(neg);
        }
        let bits = 128 - x.leading_zeros() as i32;
        if bits <= 64 {
            let sh = 64 - bits;
            return F80 {
                neg,
                mant: (x as u64) << sh,
                exp: exp - sh,
            };
        }
        let sh = (bits - 64) as u32;
        let mut mant = (x >> sh) as u64;
        let rem = x & ((1_u128 << sh) - 1);
        let half = 1_u128 << (sh - 1);
        let mut exp = exp + sh as i32;
        if rem > half || (rem == half && mant & 1 == 1) {
            mant = mant.wrapping_add(1);
            if mant == 0 {
                mant = 1 << 63;
                exp += 1;
            }
        }
        F80 { neg, mant, exp }
    }

    fn neg(self) -> F80 {
        F80 { neg: !self.neg, ..self }
    }

    fn is_zero(self) -> bool {
        self.mant == 0
    }

    fn gt_zero(self) -> bool {
        !self.neg && !self.is_zero()
    }

    /// Compare magnitudes.
    fn cmp_abs(self, o: F80) -> std::cmp::Ordering {
        match (self.is_zero(), o.is_zero()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (false, false) => (self.exp, self.mant).cmp(&(o.exp, o.mant)),
        }
    }

    fn cmp(self, o: F80) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        let sa = if self.is_zero() {
            0
        } else if self.neg {
            -1
        } else {
            1
        };
        let sb = if o.is_zero() {
            0
        } else if o.neg {
            -1
        } else {
            1
        };
        match sa.cmp(&sb) {
            Equal if sa > 0 => self.cmp_abs(o),
            Equal if sa < 0 => o.cmp_abs(self),
            Equal => Equal,
            other => other,
        }
    }

    fn ge(self, o: F80) -> bool {
        self.cmp(o) != std::cmp::Ordering::Less
    }

    fn lt(self, o: F80) -> bool {
        self.cmp(o) == std::cmp::Ordering::Less
    }

    fn add(self, o: F80) -> F80 {
        if o.is_zero() {
            return if self.is_zero() {
                F80::zero(self.neg && o.neg)
            } else {
                self
            };
        }
        if self.is_zero() {
            return o;
        }
        let (big, small) = if self.cmp_abs(o) == std::cmp::Ordering::Less {
            (o, self)
        } else {
            (self, o)
        };
        let diff = (big.exp - small.exp) as u32; // >= 0 for normalized values with |big| >= |small|
        let bx = u128::from(big.mant) << 62;
        let sx = if diff <= 62 {
            u128::from(small.mant) << (62 - diff)
        } else {
            let sh = diff - 62;
            let (kept, lost) = if sh >= 64 {
                (0, true)
            } else {
                (small.mant >> sh, small.mant & ((1_u64 << sh) - 1) != 0)
            };
            u128::from(kept | u64::from(lost))
        };
        let exp = big.exp - 62;
        if big.neg == small.neg {
            F80::round(big.neg, bx + sx, exp)
        } else if bx == sx {
            F80::zero(false)
        } else {
            F80::round(big.neg, bx - sx, exp)
        }
    }

    fn sub(self, o: F80) -> F80 {
        self.add(o.neg())
    }

    fn mul(self, o: F80) -> F80 {
        F80::round(
            self.neg != o.neg,
            u128::from(self.mant) * u128::from(o.mant),
            self.exp + o.exp,
        )
    }

    fn div(self, o: F80) -> F80 {
        debug_assert!(!o.is_zero());
        let m = u128::from(o.mant);
        let n = u128::from(self.mant) << 64;
        let (q, r) = (n / m, n % m);
        // Two more quotient bits, then a sticky bit for the rest.
        let (q2, r2) = ((r << 2) / m, (r << 2) % m);
        let x = (((q << 2) | q2) << 1) | u128::from(r2 != 0);
        F80::round(self.neg != o.neg, x, self.exp - 64 - o.exp - 3)
    }

    /// `(int)x` for |x| < 2^31 (truncation toward zero).
    fn trunc_i32(self) -> i32 {
        if self.is_zero() || self.exp <= -64 {
            return 0;
        }
        let mag = if self.exp >= 0 {
            self.mant << self.exp.min(63)
        } else {
            self.mant >> -self.exp
        };
        let v = mag as i64 as i32;
        if self.neg { -v } else { v }
    }

    /// Round to the nearest double (ties to even), overflowing to infinity.
    fn to_f64(self) -> f64 {
        let sign = if self.neg { -1.0 } else { 1.0 };
        if self.is_zero() {
            return sign * 0.0;
        }
        let mut e = self.exp + 63; // unbiased exponent of the leading bit
        let bits = if e >= -1022 {
            let mut m = self.mant >> 11;
            let rem = self.mant & 0x7ff;
            if rem > 0x400 || (rem == 0x400 && m & 1 == 1) {
                m += 1;
                if m == 1 << 53 {
                    m >>= 1;
                    e += 1;
                }
            }
            if e > 1023 {
                return sign * f64::INFINITY;
            }
            ((e + 1023) as u64) << 52 | (m & ((1 << 52) - 1))
        } else {
            // Subnormal: the value is `m * 2^-1074`.
            let sh = (-1074 - self.exp) as u32;
            if sh > 64 {
                0
            } else {
                let x = u128::from(self.mant);
                let mut m = (x >> sh) as u64;
                let rem = x & ((1_u128 << sh) - 1);
                let half = 1_u128 << (sh - 1);
                if rem > half || (rem == half && m & 1 == 1) {
                    m += 1;
                }
                m
            }
        };
        let x = f64::from_bits(bits);
        if self.neg { -x } else { x }
    }
}

// ---------------------------------------------------------------------------------------------
// Python's str() of a value, for the sqlite_sequence lines (Python formats those itself)
// ---------------------------------------------------------------------------------------------

/// `str(v)` in Python for the value the sqlite3 module reads: `None`, `int`, `float`, `str`,
/// `bytes`.
fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => py_float_repr(*r),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => py_bytes_repr(b),
    }
}

/// Python's `repr(float)`: the shortest digits that read back, in fixed notation when the
/// decimal exponent is in `-4..16`, else as `1e+16` / `1.5e-05`.
fn py_float_repr(r: f64) -> String {
    if r.is_nan() {
        return "nan".into();
    }
    if r.is_infinite() {
        return if r < 0.0 { "-inf".into() } else { "inf".into() };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{:e}", r.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1; // value = 0.DIGITS * 10^decpt
    let mut out = String::new();
    if r.is_sign_negative() {
        out.push('-');
    }
    if (-4 < decpt) && (decpt <= 16) {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if digits.len() as i32 <= decpt {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - digits.len() as i32) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    out
}

/// Python's `repr(bytes)`: `b'..'` (or `b".."` when only that avoids escaping a quote).
fn py_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(char::from(quote));
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(char::from(c));
            }
            0x20..=0x7e => out.push(char::from(c)),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(char::from(quote));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outputs of `SELECT quote(?)` from SQLite 3.40.1 (Python 3.11's sqlite3 on Debian 12).
    #[test]
    fn dump_quote_real_matches_sqlite_3_40() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0 / 3.0, "3.33333333333333314829e-01"),
            (1e300, "1.0e+300"),
            (-0.0, "0.0"),
            (0.0, "0.0"),
            (1e-7, "1.0e-07"),
            (123456789012345678.0, "1.23456789012345680004e+17"),
            (1.0, "1.0"),
            (2.0, "2.0"),
            (100.0, "100.0"),
            (1e15, "1.0e+15"),
            (1e16, "1.0e+16"),
            (1e17, "1.0e+17"),
            (123.456, "123.456"),
            (f64::INFINITY, "Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (5e-324, "4.94065645841247e-324"),
            (f64::MAX, "1.79769313486231562234e+308"),
            (2.5, "2.5"),
            (0.5, "0.5"),
            (1e-5, "1.0e-05"),
            (1e-4, "0.0001"),
            (12345678901234567890.0, "1.23456789012345671677e+19"),
            (9007199254740993.0, "9.00719925474099199994e+15"),
            (3.25159, "3.25159"),
            (0.30000000000000004, "3.00000000000000044408e-01"),
            (1e22, "1.0e+22"),
            (1e21, "1.0e+21"),
            (4.35, "4.35"),
            (1e100, "1.0e+100"),
            (-1.5, "-1.5"),
        ];
        for &(v, want) in cases {
            assert_eq!(quote_real(v), want, "quote({v:?})");
        }
    }

    #[test]
    fn dump_quote_text_and_blob() {
        let mut s = String::new();
        quote_value(&mut s, &Value::Text("it's\na\0b".into()));
        s.push(' ');
        quote_value(&mut s, &Value::Blob(vec![0, 0xab, 0x10]));
        s.push(' ');
        quote_value(&mut s, &Value::Blob(vec![]));
        s.push(' ');
        quote_value(&mut s, &Value::Integer(i64::MIN));
        assert_eq!(s, "'it''s\na' X'00AB10' X'' -9223372036854775808");
    }

    #[test]
    fn dump_python_repr() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (-0.0, "-0.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.5e300, "1.5e+300"),
            (123.0, "123.0"),
            (f64::INFINITY, "inf"),
            (5e-324, "5e-324"),
        ];
        for &(v, want) in cases {
            assert_eq!(py_float_repr(v), want, "repr({v:?})");
        }
        assert_eq!(py_bytes_repr(b"a'b\x00\\\n"), r#"b"a'b\x00\\\n""#);
        assert_eq!(py_bytes_repr(b"x\"'"), r#"b'x"\''"#);
        assert_eq!(py_str(&Value::Null), "None");
    }

    #[test]
    fn dump_f80_arithmetic() {
        // 1/3 in extended precision, rounded back, is the double 1/3.
        let third = F80::from_f64(1.0).div(F80::from_f64(3.0));
        assert_eq!(third.to_f64(), 1.0 / 3.0);
        assert_eq!(third.mant, 0xAAAA_AAAA_AAAA_AAAB);
        assert_eq!(pow10(22).to_f64(), 1e22);
        assert_eq!(atof(b"0.1"), 0.1);
        assert_eq!(atof(b"1.0e+300"), 1e300);
        assert_eq!(atof(b"1.79769313486232e+308"), f64::INFINITY);
        assert_eq!(atof(b"Inf"), 0.0);
        assert_eq!(F80::from_f64(7.9).trunc_i32(), 7);
        // SQLite 3.40's atof is not correctly rounded: this text reads as the double after the
        // nearest one, and quote() then prints that double in 15 digits, the nearest in 21.
        let (nearest, next) = (8.15167840568222e-300, f64::from_bits(0x01d5_d623_cfb0_0085));
        assert_eq!(atof(b"8.15167840568222e-300"), next);
        assert_eq!(quote_real(next), "8.15167840568222e-300");
        assert_eq!(quote_real(nearest), "8.15167840568221959297e-300");
    }
}
