//! sqllogictest conformance: every `*.test` file under `$AIOLITE_SLT_DIR` (default
//! `../shared/slt`, relative to the crate root), recursively, run through aiolite's async API
//! with the `sqllogictest` crate's runner.
//!
//! - One `aiolite::connect(":memory:")` connection per file; the engine name is `sqlite`, so
//!   `skipif sqlite` / `onlyif sqlite` records are honoured and `onlyif <other>` ones skipped.
//! - Values are formatted as the reference runner (`slt_sqlite.c` of the classic sqllogictest)
//!   formats them, by the column types of the `query` record: `NULL` for NULL whatever the
//!   type; `I` is `sqlite3_column_int` (a 32-bit C `int`: a REAL is truncated, TEXT parsed as
//!   its integer prefix); `R` is `sqlite3_snprintf("%.3f", sqlite3_column_double(..))`; `T` is
//!   `sqlite3_column_text` with `(empty)` for an empty string and every byte outside
//!   `' '..='~'` replaced by `@`. The conversions SQLite performs there (REAL → text, TEXT →
//!   number, `%.3f`) are asked of SQLite itself through the same connection, so the output is
//!   the reference's, not an imitation of it.
//! - Sort modes and hash thresholds are the runner's. Results may be written one value per
//!   line (the classic layout) or one row per line; the crate's `default_validator` decides
//!   either way.
//! - `halt` honours the `skipif` / `onlyif` lines before it (the crate's parser hands them to
//!   the next record instead, and its `run_file` stops at any `halt`), so records are fed to
//!   the runner one at a time by this driver.
//! - A failing record does not stop its file; all failures are reported at the end.
//!
//! Files run two at a time. Set `AIOLITE_SLT_DIR` to choose the folder: when it is set the
//! folder must exist; when it is not and `../shared/slt` is absent, the test says so and passes.

use std::error::Error as StdError;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiolite::{Connection, Value};
use futures::StreamExt;
use sqllogictest::{
    AsyncDB, Condition, DBOutput, DefaultColumnType, ExpectedError, QueryExpect, Record, RecordOutput, Runner,
    StatementExpect, default_validator,
};

/// The engine name the runner matches against `skipif` / `onlyif` labels.
const ENGINE: &str = "sqlite";

/// Files run at the same time (the CI machine has two cores).
const CONCURRENCY: usize = 2;

/// The reference runner hashes results of more than 8 values unless a file says otherwise.
const DEFAULT_HASH_THRESHOLD: usize = 8;

/// At most this many failures are printed per file.
const MAX_REPORTED_FAILURES: usize = 10;

/// What the driver does instead of the file's expectation for a record of [`DEVIATIONS`].
#[derive(Clone, Copy, Debug)]
enum Deviation {
    /// Do not run the record.
    #[allow(dead_code)] // none needed at the moment
    Skip,
    /// Run it and expect it to fail with an error message matching this regex.
    Error(&'static str),
}

/// Records where this driver departs from the file: `(path relative to the slt folder, line of
/// the record, what to do instead, why)`. Only for legitimate differences from the run that
/// wrote the file (another SQLite version, a quirk of the reference runner), never to hide an
/// aiolite bug. An entry that matches no record fails the run, so the list stays honest.
const DEVIATIONS: &[(&str, u32, Deviation, &str)] = &[(
    "evidence/slt_lang_aggfunc.test",
    480,
    Deviation::Error("^integer overflow"),
    "sum() over integers that overflow i64 fails with 'integer overflow' (as documented) while \
     stepping; the reference runner (slt_sqlite.c) never checks the last sqlite3_step() code, so \
     it wrote an empty result for it. aiolite reports the error, which is right: check that error",
)];

// ---------------------------------------------------------------------------------------
// The database under test.

/// What the next `run` call is: the driver says so before handing a record to the runner,
/// because `AsyncDB::run` only receives the SQL, and the reference formats values by the
/// record's column types.
#[derive(Clone, Debug)]
enum Next {
    /// A `statement`: run it, report the rows it changed.
    Statement,
    /// A `query` with these column types.
    Query(Vec<DefaultColumnType>),
    /// A `query error`: run it as a query; the values do not matter.
    QueryAnyTypes,
}

struct AioliteDb {
    conn: Connection,
    next: Arc<Mutex<Next>>,
}

#[derive(Debug)]
enum DbError {
    Sql(aiolite::Error),
    ColumnCount { expected: usize, actual: usize },
    UnknownType(char),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sql(e) => write!(f, "{e}"),
            DbError::ColumnCount { expected, actual } => {
                write!(
                    f,
                    "wrong number of result columns: expected {expected} but got {actual}"
                )
            }
            DbError::UnknownType(c) => write!(f, "unknown character in type-string: {c}"),
        }
    }
}

impl StdError for DbError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            DbError::Sql(e) => Some(e),
            _ => None,
        }
    }
}

impl From<aiolite::Error> for DbError {
    fn from(e: aiolite::Error) -> Self {
        DbError::Sql(e)
    }
}

#[async_trait::async_trait]
impl AsyncDB for AioliteDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let next = std::mem::replace(&mut *self.next.lock().unwrap(), Next::Statement);
        match next {
            Next::Statement => self.statement(sql).await,
            Next::Query(types) => self.query(sql, Some(types)).await,
            Next::QueryAnyTypes => self.query(sql, None).await,
        }
    }

    async fn shutdown(&mut self) {
        if let Err(e) = self.conn.close().await {
            eprintln!("slt: closing the connection failed: {e}");
        }
    }

    fn engine_name(&self) -> &str {
        ENGINE
    }
}

impl AioliteDb {
    async fn statement(&self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        // The reference runs statements with sqlite3_exec, which accepts several at once.
        match self.conn.execute(sql, ()).await {
            Ok(r) => Ok(DBOutput::StatementComplete(r.changes)),
            Err(aiolite::Error::MultipleStatements { .. }) => {
                self.conn.execute_script(sql).await?;
                Ok(DBOutput::StatementComplete(0))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn query(
        &self,
        sql: &str,
        types: Option<Vec<DefaultColumnType>>,
    ) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let mut cursor = self.conn.query(sql, ()).await?;
        let ncols = cursor.columns().len();
        let types = match types {
            Some(types) => {
                if types.len() != ncols {
                    return Err(DbError::ColumnCount {
                        expected: types.len(),
                        actual: ncols,
                    });
                }
                if let Some(t) = types.iter().find(|t| **t == DefaultColumnType::Any) {
                    return Err(DbError::UnknownType(sqllogictest::ColumnType::to_char(t)));
                }
                types
            }
            None => vec![DefaultColumnType::Text; ncols],
        };
        let rows = cursor.fetch_all().await?;
        let rows = self
            .format(&types, rows.into_iter().map(|r| r.into_values()).collect())
            .await?;
        Ok(DBOutput::Rows { types, rows })
    }

    /// Render values as the reference runner does (see the module docs). Conversions that the
    /// reference leaves to SQLite are asked of SQLite, batched, through the same connection.
    async fn format(&self, types: &[DefaultColumnType], rows: Vec<Vec<Value>>) -> Result<Vec<Vec<String>>, DbError> {
        let mut out: Vec<Vec<String>> = Vec::with_capacity(rows.len());
        let mut pending: Vec<(usize, usize, Conv, Value)> = Vec::new();
        for (r, row) in rows.into_iter().enumerate() {
            let mut line = Vec::with_capacity(row.len());
            for (c, (value, ty)) in row.into_iter().zip(types).enumerate() {
                let direct = match (ty, value) {
                    (_, Value::Null) => Some("NULL".to_owned()),
                    // sqlite3_column_int returns a C int: the low 32 bits, as gcc converts.
                    (DefaultColumnType::Integer, Value::Integer(i)) => Some((i as i32).to_string()),
                    (DefaultColumnType::Integer, v) => {
                        pending.push((r, c, Conv::Int, v));
                        None
                    }
                    (DefaultColumnType::FloatingPoint, v) => {
                        pending.push((r, c, Conv::Real3, v));
                        None
                    }
                    (_, Value::Integer(i)) => Some(i.to_string()),
                    (_, Value::Text(s)) => Some(c_text(s.as_bytes())),
                    (_, Value::Blob(b)) => Some(c_text(&b)),
                    (_, v @ Value::Real(_)) => {
                        pending.push((r, c, Conv::Text, v));
                        None
                    }
                };
                line.push(direct.unwrap_or_default());
            }
            out.push(line);
        }
        // SQLite allows 2000 result columns by default; stay well below.
        for chunk in pending.chunks(200) {
            let exprs: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, _, conv, _))| conv.sql(i + 1))
                .collect();
            let sql = format!("SELECT {}", exprs.join(", "));
            let params: Vec<Value> = chunk.iter().map(|(_, _, _, v)| v.clone()).collect();
            let row = self
                .conn
                .fetch_one(&sql, params)
                .await?
                .expect("a SELECT without FROM returns one row");
            for ((r, c, conv, _), v) in chunk.iter().zip(row.into_values()) {
                out[*r][*c] = match (conv, v) {
                    (Conv::Int, Value::Integer(i)) => (i as i32).to_string(),
                    (Conv::Real3, Value::Text(s)) => s,
                    (Conv::Text, Value::Text(s)) => c_text(s.as_bytes()),
                    (conv, v) => panic!("SQLite converted a value with {} to {v:?}", conv.sql(0)),
                };
            }
        }
        Ok(out)
    }
}

/// A conversion left to SQLite, as the reference runner leaves it.
#[derive(Clone, Copy, Debug)]
enum Conv {
    /// `sqlite3_column_int` of a REAL, TEXT or BLOB (same code path as `CAST(.. AS INTEGER)`).
    Int,
    /// `sqlite3_snprintf("%.3f", sqlite3_column_double(..))` (SQLite's own printf).
    Real3,
    /// `sqlite3_column_text` of a REAL (same code path as `CAST(.. AS TEXT)`).
    Text,
}

impl Conv {
    fn sql(self, param: usize) -> String {
        match self {
            Conv::Int => format!("CAST(?{param} AS INTEGER)"),
            Conv::Real3 => format!("printf('%.3f', ?{param})"),
            Conv::Text => format!("CAST(?{param} AS TEXT)"),
        }
    }
}

/// `sqlite3_column_text` as the reference prints it: a C string (up to the first NUL byte),
/// `(empty)` when empty, and every byte outside `' '..='~'` (control characters, DEL, each
/// byte of a multi-byte UTF-8 character) as `@`.
fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if end == 0 {
        return "(empty)".to_owned();
    }
    bytes[..end]
        .iter()
        .map(|&b| if (b' '..=b'~').contains(&b) { b as char } else { '@' })
        .collect()
}

/// Accept results written one value per line (the classic layout) or one row per line; for
/// more than one column the two layouts have different line counts, so no result can match
/// the wrong way.
fn validator(normalizer: sqllogictest::Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    if default_validator(normalizer, actual, expected) {
        return true;
    }
    let values: Vec<Vec<String>> = actual.iter().flatten().map(|v| vec![v.clone()]).collect();
    default_validator(normalizer, &values, expected)
}

// ---------------------------------------------------------------------------------------
// The driver.

#[derive(Debug, Default)]
struct FileReport {
    /// The path relative to the slt folder.
    name: String,
    path: PathBuf,
    /// Statements and queries run.
    run: usize,
    /// Skipped by their `skipif` / `onlyif` conditions.
    skipped: usize,
    /// Lines of the records handled by [`DEVIATIONS`].
    listed: Vec<u32>,
    /// Line of the `halt` that ended the file.
    halted_at: Option<u32>,
    failures: Vec<String>,
    elapsed: Duration,
}

fn condition_skips(c: &Condition) -> bool {
    match c {
        Condition::OnlyIf { label } => label != ENGINE,
        Condition::SkipIf { label } => label == ENGINE,
    }
}

/// Run the records of one file; `path` is the file's path, to match [`DEVIATIONS`] entries
/// (by trailing components, whatever folder the run started from).
async fn run_records(name: String, path: &Path, records: Vec<Record<DefaultColumnType>>) -> FileReport {
    let started = Instant::now();
    let mut report = FileReport {
        name,
        path: path.to_path_buf(),
        ..FileReport::default()
    };
    let next = Arc::new(Mutex::new(Next::Statement));
    let make = {
        let next = Arc::clone(&next);
        move || {
            let next = Arc::clone(&next);
            async move {
                Ok::<_, DbError>(AioliteDb {
                    conn: aiolite::connect(":memory:").await?,
                    next,
                })
            }
        }
    };
    let mut runner = Runner::new(make);
    runner.with_validator(validator);
    // The reference runner's default; `hash-threshold` records change it.
    runner.with_hash_threshold(DEFAULT_HASH_THRESHOLD);

    // The `skipif` / `onlyif` lines seen since the last statement or query, and how many of
    // them (a prefix) were written for `halt` records: the parser hands those to the next
    // statement or query too, where they do not belong.
    let mut pending: Vec<Condition> = Vec::new();
    let mut halt_owned = 0_usize;
    for mut record in records {
        match &mut record {
            Record::Condition(c) => {
                pending.push(c.clone());
                continue;
            }
            Record::Halt { loc } => {
                if !pending[halt_owned..].iter().any(condition_skips) {
                    report.halted_at = Some(loc.line());
                    break;
                }
                halt_owned = pending.len();
                continue;
            }
            Record::Statement { loc, conditions, .. }
            | Record::Query { loc, conditions, .. }
            | Record::System { loc, conditions, .. }
            | Record::Let { loc, conditions, .. } => {
                if halt_owned > 0 && conditions.len() == pending.len() && conditions.starts_with(&pending[..halt_owned])
                {
                    conditions.drain(..halt_owned);
                }
                pending.clear();
                halt_owned = 0;
                let line = loc.line();
                if let Some((_, _, deviation, _)) = DEVIATIONS
                    .iter()
                    .find(|(file, l, _, _)| path.ends_with(file) && *l == line)
                {
                    report.listed.push(line);
                    match *deviation {
                        Deviation::Skip => continue,
                        Deviation::Error(pattern) => expect_error(&mut record, pattern),
                    }
                }
            }
            Record::Include { loc, filename } => {
                // Not a record of the classic format; its files would run unnoticed otherwise.
                report
                    .failures
                    .push(format!("{loc}: include {filename}: not supported by this driver"));
                continue;
            }
            _ => {}
        }
        let counted = match &record {
            Record::Query { expected, .. } => {
                *next.lock().unwrap() = match expected {
                    QueryExpect::Results { types, .. } => Next::Query(types.clone()),
                    QueryExpect::Error(_) => Next::QueryAnyTypes,
                };
                true
            }
            Record::Statement { .. } | Record::System { .. } | Record::Let { .. } => true,
            _ => false,
        };
        let outcome = runner.run_async(record).await;
        *next.lock().unwrap() = Next::Statement;
        match outcome {
            Ok(RecordOutput::Nothing) if counted => report.skipped += 1,
            Ok(_) => report.run += usize::from(counted),
            Err(e) => {
                report.run += usize::from(counted);
                report.failures.push(e.display(false).to_string());
            }
        }
    }
    runner.shutdown_async().await;
    report.elapsed = started.elapsed();
    report
}

/// Make `record` expect an error matching `pattern`.
fn expect_error(record: &mut Record<DefaultColumnType>, pattern: &str) {
    let error = ExpectedError::Inline(regex::Regex::new(pattern).expect("a valid regex in DEVIATIONS"));
    match record {
        Record::Query { expected, .. } => *expected = QueryExpect::Error(error),
        Record::Statement { expected, .. } => *expected = StatementExpect::Error(error),
        other => panic!("DEVIATIONS: cannot expect an error from {other:?}"),
    }
}

async fn run_file(root: PathBuf, path: PathBuf) -> FileReport {
    let name = path
        .strip_prefix(&root)
        .unwrap_or(&path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let parsed = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| {
            sqllogictest::parse_with_name::<DefaultColumnType>(&classic_headers(&text), name.as_str())
                .map_err(|e| format!("parse error: {e}"))
        });
    match parsed {
        Ok(records) => run_records(name, &path, records).await,
        Err(e) => FileReport {
            name,
            path,
            failures: vec![e],
            ..FileReport::default()
        },
    }
}

/// Read record headers as the reference runner does: it looks at the first few tokens of a
/// header line and ignores the rest, so files end such lines with comments
/// (`onlyif mysql # why`); it compares `skipif` / `onlyif` labels with the engine name without
/// regard to case; and it takes a line of blanks for an empty line. The crate's parser and
/// runner do none of that, so drop the comments from header lines, lower-case the labels and
/// empty the blank lines (line numbers stay the same) before parsing. SQL and result lines
/// are left alone.
fn classic_headers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_header = true;
    for line in text.lines() {
        if line.trim().is_empty() {
            at_header = true;
        } else if line.starts_with('#') || !at_header {
            out.push_str(line);
        } else {
            let mut tokens: Vec<String> = line
                .split_whitespace()
                .take_while(|t| !t.starts_with('#'))
                .map(str::to_owned)
                .collect();
            // Conditions stand on lines of their own before the record they apply to.
            at_header = matches!(tokens.first().map(String::as_str), Some("skipif" | "onlyif"));
            if at_header && let Some(label) = tokens.get_mut(1) {
                *label = label.to_ascii_lowercase();
            }
            out.push_str(&tokens.join(" "));
        }
        out.push('\n');
    }
    out
}

fn collect_test_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("slt: cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_test_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "test") {
            out.push(path);
        }
    }
}

/// Print past libtest's output capture, so the summary shows in CI logs without --nocapture.
fn say(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

fn run_all(root: &Path, mut files: Vec<PathBuf>) -> Vec<FileReport> {
    // Longest first, so the two lanes finish together.
    files.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CONCURRENCY)
        .enable_all()
        .build()
        .unwrap();
    let mut reports: Vec<FileReport> = rt.block_on(async {
        futures::stream::iter(files)
            .map(|path| tokio::spawn(run_file(root.to_path_buf(), path)))
            .buffer_unordered(CONCURRENCY)
            .map(|joined| joined.expect("a file's task panicked"))
            .collect()
            .await
    });
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    reports
}

fn summary(reports: &[FileReport], wall: Duration) -> String {
    let mut s = String::from("\nsqllogictest (engine sqlite, aiolite async API):\n");
    s += &format!(
        "{:<45} {:>8} {:>8} {:>6} {:>8}  note\n",
        "file", "run", "skipped", "deviate", "secs"
    );
    for r in reports {
        let mut note = String::new();
        if let Some(line) = r.halted_at {
            note += &format!("halt at line {line}; ");
        }
        if !r.failures.is_empty() {
            note += &format!("{} FAILED", r.failures.len());
        }
        s += &format!(
            "{:<45} {:>8} {:>8} {:>6} {:>8.2}  {}\n",
            r.name,
            r.run,
            r.skipped,
            r.listed.len(),
            r.elapsed.as_secs_f64(),
            note.trim_end_matches("; ")
        );
    }
    let run: usize = reports.iter().map(|r| r.run).sum();
    let skipped: usize = reports.iter().map(|r| r.skipped).sum();
    let listed: usize = reports.iter().map(|r| r.listed.len()).sum();
    let failed: usize = reports.iter().map(|r| r.failures.len()).sum();
    s += &format!(
        "{} files: {run} records run, {skipped} skipped by conditions, {listed} deviating from the file (see DEVIATIONS), {failed} failed; {:.2}s wall\n",
        reports.len(),
        wall.as_secs_f64()
    );
    s
}

/// The whole corpus.
#[test]
fn sqllogictest_files() {
    let configured = std::env::var("AIOLITE_SLT_DIR").ok().filter(|v| !v.is_empty());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(configured.as_deref().unwrap_or("../shared/slt"));
    if !dir.is_dir() {
        assert!(
            configured.is_none(),
            "AIOLITE_SLT_DIR={} is set, but {} is not a folder",
            configured.unwrap_or_default(),
            dir.display()
        );
        say(&format!(
            "\nslt: no sqllogictest folder at {} (set AIOLITE_SLT_DIR to run the conformance files); skipped\n",
            dir.display()
        ));
        return;
    }
    let mut files = Vec::new();
    collect_test_files(&dir, &mut files);
    assert!(!files.is_empty(), "slt: no *.test files under {}", dir.display());

    let started = Instant::now();
    let reports = run_all(&dir, files);
    say(&summary(&reports, started.elapsed()));

    let mut problems = Vec::new();
    for r in &reports {
        for f in r.failures.iter().take(MAX_REPORTED_FAILURES) {
            problems.push(format!("{}: {f}", r.name));
        }
        if r.failures.len() > MAX_REPORTED_FAILURES {
            problems.push(format!(
                "{}: … and {} more",
                r.name,
                r.failures.len() - MAX_REPORTED_FAILURES
            ));
        }
    }
    for (file, line, _, why) in DEVIATIONS {
        let of_file: Vec<&FileReport> = reports.iter().filter(|r| r.path.ends_with(file)).collect();
        if !of_file.is_empty() && !of_file.iter().any(|r| r.listed.contains(line)) {
            problems.push(format!("DEVIATIONS entry {file}:{line} ({why}) matches no record"));
        }
    }
    assert!(problems.is_empty(), "sqllogictest failures:\n\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// The driver's own checks (they run even without the corpus).

async fn run_script(script: &str) -> FileReport {
    let records = sqllogictest::parse_with_name::<DefaultColumnType>(&classic_headers(script), "inline").unwrap();
    run_records("inline".to_owned(), Path::new("inline"), records).await
}

/// Value formatting, layouts, sort modes, the default hash threshold, conditions and `halt`.
#[tokio::test]
async fn driver_follows_the_reference_runner() {
    let report = run_script(
        r#"
onlyif mysql # a condition with a comment, before a halt that is not for sqlite
halt

skipif SQLite
halt

statement ok
CREATE TABLE t(a, b)

statement ok
INSERT INTO t VALUES(NULL, ''), (3.7, 'x' || char(9) || 'é' || char(127)), (-2.5, 12), (4294967301, 1.0), ('12abc', 1e20)

hash-threshold 0

query ITR nosort
SELECT a, b, a FROM t ORDER BY rowid
----
NULL
(empty)
NULL
3
x@@@@
3.700
-2
12
-2.500
5
1.0
4294967301.000
12
1.0e+20
12.000

hash-threshold 8

query RR nosort
SELECT 1.0625, -0.0001
----
1.063
-0.000

query II rowsort
SELECT 2, 1 UNION ALL SELECT 1, 2
----
1 2
2 1

query II rowsort
SELECT 2, 1 UNION ALL SELECT 1, 2
----
1
2
2
1

query II valuesort
SELECT 3, 1 UNION ALL SELECT 2, 4
----
1
2
3
4

query I nosort
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 9) SELECT n FROM c
----
9 values hashing to 22e400a2ddbb013acf2a5852d6ab69fc

onlyif sqlite
query I nosort
SELECT 1
----
1

skipif sqlite
query I nosort
SELECT 1
----
2

onlyif postgresql
statement ok
THIS IS NOT SQL

statement error
SELECT * FROM no_such_table

statement ok
INSERT INTO t VALUES(1, 2); INSERT INTO t VALUES(3, 4)

query I nosort
SELECT count(*) FROM t
----
7

onlyif sqlite
halt

query T nosort
SELECT 'must not run'
----
wrong
"#,
    )
    .await;
    assert_eq!(report.failures, Vec::<String>::new());
    assert_eq!((report.run, report.skipped), (12, 2));
    assert_eq!(report.halted_at, Some(98));
}

/// Wrong results, a wrong column count and an unknown type letter fail (the checks are not
/// vacuous), and a failure does not stop the file.
#[tokio::test]
async fn driver_reports_mismatches() {
    let report = run_script(
        r#"
query I nosort
SELECT 1
----
2

query II nosort
SELECT 1
----
1

query X nosort
SELECT 1
----
1

query I nosort
SELECT 3
----
3
"#,
    )
    .await;
    assert_eq!(report.run, 4);
    assert_eq!(report.failures.len(), 3, "{:#?}", report.failures);
    assert!(report.failures[1].contains("wrong number of result columns"));
    assert!(report.failures[2].contains("unknown character in type-string"));
}

#[test]
fn text_as_the_reference_prints_it() {
    assert_eq!(c_text(b""), "(empty)");
    assert_eq!(c_text(b"\0abc"), "(empty)");
    assert_eq!(c_text(b"ab\0cd"), "ab");
    assert_eq!(c_text("a\tb\nc~\u{7f}é".as_bytes()), "a@b@c~@@@");
}
