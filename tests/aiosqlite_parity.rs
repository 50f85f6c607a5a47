//! One test per behaviour aiosqlite's own smoke suite (`aiosqlite/tests/smoke.py`, 0.22.1)
//! checks, named after it, asserting the aiolite equivalent.
//!
//! The tests take a global lock so they run one at a time: several count the process's
//! worker threads, which parallel tests would disturb.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aiolite::{
    AuthRequest, Authorization, BackupOptions, ConnectOptions, Error, ErrorCode, Value, auth, connect, params,
};
use futures::StreamExt;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs tests one at a time, and lets each start with no worker thread of an earlier test
/// still winding down (so thread counts compare exactly).
struct Serial(#[allow(dead_code)] MutexGuard<'static, ()>);

fn serial() -> Serial {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        common::eventually(|| common::worker_threads() == 0),
        "a worker thread of an earlier test did not exit: {:?}",
        common::worker_thread_names()
    );
    Serial(guard)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn test_connection_await() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap(), Some(1));
        db.close().await.unwrap();
    });
}

#[test]
fn test_connection_context() {
    // `async with connect() as db:` — in Rust the scope is the handle's lifetime: the worker
    // closes SQLite and exits when the last handle drops.
    let _g = serial();
    let before = common::worker_threads();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
    });
    assert!(
        common::eventually(|| common::worker_threads() == before),
        "worker threads left behind: {:?}",
        common::worker_thread_names()
    );
}

#[test]
fn test_connection_locations() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("loc.db");
        let as_str = path.to_str().unwrap();
        let db = connect(as_str).await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        db.close().await.unwrap();
        // String, &Path, PathBuf, and a path built from raw bytes (Python's bytes paths).
        for db in [
            connect(as_str.to_string()).await.unwrap(),
            connect(path.as_path()).await.unwrap(),
            connect(path.clone()).await.unwrap(),
            connect(std::path::Path::new(
                std::ffi::OsStr::from_encoded_bytes_unchecked_safe(path.as_os_str().as_encoded_bytes()),
            ))
            .await
            .unwrap(),
        ] {
            assert_eq!(
                db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
                Some(1)
            );
            db.close().await.unwrap();
        }
    });
}

/// `OsStr::from_encoded_bytes_unchecked` is unsafe; on Unix any bytes are a valid `OsStr`.
trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b)
    }
}

#[test]
fn test_multiple_connections() {
    let _g = serial();
    let (_dir, path) = common::temp_db();
    rt().block_on(async {
        let db = connect(&path).await.unwrap();
        db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)", ())
            .await
            .unwrap();
        db.close().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..10 {
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let db = connect(&path).await.unwrap();
                db.execute("INSERT INTO t(v) VALUES (?)", [format!("c{i}")])
                    .await
                    .unwrap();
                db.close().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let db = connect(&path).await.unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(10)
        );
    });
}

#[test]
fn test_multiple_queries() {
    let _g = serial();
    rt().block_on(async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)", ())
            .await
            .unwrap();
        let futs: Vec<_> = (0..10)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { db.execute("INSERT INTO t(v) VALUES (?)", [format!("q{i}")]).await })
            })
            .collect();
        for f in futs {
            f.await.unwrap().unwrap();
        }
        let rows = db.fetch_all("SELECT * FROM t", ()).await.unwrap();
        assert_eq!(rows.len(), 10);
    });
}

#[test]
fn test_iterable_cursor() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:").iter_chunk_size(2).open().await.unwrap();
        db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)", ())
            .await
            .unwrap();
        db.execute_many("INSERT INTO t(v) VALUES (?)", (0..5).map(|i| [format!("v{i}")]))
            .await
            .unwrap();
        let cur = db.query("SELECT v FROM t ORDER BY k", ()).await.unwrap();
        let got: Vec<String> = cur.map(|r| r.unwrap().get::<String>(0).unwrap()).collect().await;
        assert_eq!(got, ["v0", "v1", "v2", "v3", "v4"]);
    });
}

#[test]
fn test_multi_loop_usage() {
    // One connection, four OS threads each with its own runtime.
    let _g = serial();
    let db = futures::executor::block_on(async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v INTEGER)", ())
            .await
            .unwrap();
        db
    });
    std::thread::scope(|s| {
        for i in 0..4_i64 {
            let db = db.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for j in 0..25 {
                        db.execute("INSERT INTO t(v) VALUES (?)", [i * 100 + j]).await.unwrap();
                    }
                });
            });
        }
    });
    let n = futures::executor::block_on(db.fetch_scalar::<i64>("SELECT count(*) FROM t", ())).unwrap();
    assert_eq!(n, Some(100));
}

#[test]
fn test_context_cursor() {
    // A cursor finalizes its statement when it goes out of scope: a table it was reading can
    // be dropped afterwards, not before.
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:").iter_chunk_size(1).open().await.unwrap();
        db.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3), (4);")
            .await
            .unwrap();
        {
            let mut cur = db.query("SELECT x FROM t", ()).await.unwrap();
            assert!(cur.fetch_one().await.unwrap().is_some());
            let e = db.execute("DROP TABLE t", ()).await.unwrap_err();
            assert_eq!(e.sqlite_code(), Some(ErrorCode::Locked), "{e}");
        }
        db.execute("DROP TABLE t", ()).await.unwrap();
    });
}

#[test]
fn test_cursor_return_self() {
    // Python chains `await (await db.execute(..)).fetchall()`; Rust chains the futures.
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let rows = db
            .query("SELECT 1 UNION ALL SELECT 2", ())
            .await
            .unwrap()
            .fetch_all()
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
    });
}

#[test]
fn test_connection_properties() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .isolation_level(Some(aiolite::IsolationLevel::Deferred))
            .open()
            .await
            .unwrap();
        assert_eq!(db.total_changes(), 0);
        assert!(!db.in_transaction());
        db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)", ())
            .await
            .unwrap();
        assert!(!db.in_transaction());
        db.execute("INSERT INTO t(v) VALUES ('a')", ()).await.unwrap();
        assert!(db.in_transaction());
        assert_eq!(db.total_changes(), 1);
        db.commit().await.unwrap();
        assert!(!db.in_transaction());
        // Row factory: rows are always addressable by (case-insensitive) name and index.
        let row = db.fetch_one("SELECT k, v FROM t", ()).await.unwrap().unwrap();
        assert_eq!(row["V"], Value::Text("a".into()));
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert_eq!(row.column_names().collect::<Vec<_>>(), ["k", "v"]);
    });
}

#[test]
fn test_fetch_all() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)", ())
            .await
            .unwrap();
        db.execute_many(
            "INSERT INTO t(k, v) VALUES (?, ?)",
            vec![params![10, "a"], params![20, "b"], params![30, "c"]],
        )
        .await
        .unwrap();
        let rows = db.fetch_all("SELECT k, v FROM t ORDER BY k DESC", ()).await.unwrap();
        let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0).unwrap(), r.get(1).unwrap())).collect();
        assert_eq!(got, vec![(30, "c".into()), (20, "b".into()), (10, "a".into())]);
    });
}

#[test]
fn test_enable_load_extension() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        // Off by default: the SQL function refuses.
        let e = db
            .fetch_all("SELECT load_extension('does-not-exist')", ())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not authorized"), "{e}");
        #[cfg(feature = "load-extension")]
        {
            db.enable_load_extension(true).await.unwrap();
            // SAFETY: the file does not exist, so nothing is loaded.
            let e = unsafe { db.load_extension("/nonexistent/libnothing.so", None).await }.unwrap_err();
            assert!(matches!(e, Error::Sqlite { .. }), "{e}");
            db.enable_load_extension(false).await.unwrap();
        }
    });
}

#[test]
fn test_set_progress_handler() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        db.set_progress_handler(
            1,
            Some(move || {
                c.fetch_add(1, Ordering::Relaxed);
                true
            }),
        )
        .await
        .unwrap();
        let long = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c LIMIT 1000000) SELECT count(*) FROM c";
        let e = db.fetch_scalar::<i64>(long, ()).await.unwrap_err();
        assert_eq!(e.sqlite_code(), Some(ErrorCode::Interrupt), "{e}");
        assert!(calls.load(Ordering::Relaxed) >= 1);
        db.set_progress_handler(0, None::<fn() -> bool>).await.unwrap();
        assert_eq!(db.fetch_scalar::<i64>(long, ()).await.unwrap(), Some(1_000_000));
    });
}

#[test]
fn test_create_function() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.create_function("no_arg", 0, false, |_: &[Value]| Ok("no arg"))
            .await
            .unwrap();
        db.create_function("one_arg", 1, false, |args: &[Value]| {
            Ok(args[0].as_i64().unwrap_or(0) * 2)
        })
        .await
        .unwrap();
        assert_eq!(
            db.fetch_scalar::<String>("SELECT no_arg()", ())
                .await
                .unwrap()
                .as_deref(),
            Some("no arg")
        );
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT one_arg(21)", ()).await.unwrap(),
            Some(42)
        );
        // A wrong argument count is SQLite's error, and a failing or panicking function is an
        // error for that statement only.
        assert!(db.fetch_scalar::<i64>("SELECT one_arg()", ()).await.is_err());
        db.create_function("fails", 0, false, |_: &[Value]| {
            Err::<Value, _>(Error::InvalidArgument { message: "boom".into() })
        })
        .await
        .unwrap();
        let e = db.fetch_scalar::<i64>("SELECT fails()", ()).await.unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        db.create_function("panics", 0, false, |_: &[Value]| -> aiolite::Result<i64> {
            panic!("in udf")
        })
        .await
        .unwrap();
        assert!(db.fetch_scalar::<i64>("SELECT panics()", ()).await.is_err());
        assert_eq!(db.fetch_scalar::<i64>("SELECT one_arg(1)", ()).await.unwrap(), Some(2));
    });
}

#[test]
fn test_create_function_deterministic() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.create_function("det", 1, true, |a: &[Value]| Ok(a[0].as_i64().unwrap_or(0) % 7))
            .await
            .unwrap();
        db.create_function("nondet", 1, false, |a: &[Value]| Ok(a[0].as_i64().unwrap_or(0) % 7))
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x INTEGER)", ()).await.unwrap();
        db.execute("CREATE INDEX t_det ON t(det(x))", ()).await.unwrap();
        let e = db
            .execute("CREATE INDEX t_nondet ON t(nondet(x))", ())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("non-deterministic"), "{e}");
        db.execute_many("INSERT INTO t VALUES (?)", (0..20).map(|i| [i]))
            .await
            .unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t WHERE det(x) = 3", ())
                .await
                .unwrap(),
            Some(3)
        );
    });
}

#[test]
fn test_set_trace_callback() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = Arc::clone(&seen);
        db.set_trace_callback(Some(move |sql: &str| sink.lock().unwrap().push(sql.to_owned())))
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (?)", [5]).await.unwrap();
        {
            let seen = seen.lock().unwrap();
            assert!(seen.iter().any(|s| s == "CREATE TABLE t(x)"), "{seen:?}");
            assert!(seen.iter().any(|s| s == "INSERT INTO t VALUES (5)"), "{seen:?}");
        }
        db.set_trace_callback(None::<fn(&str)>).await.unwrap();
        let before = seen.lock().unwrap().len();
        db.execute("INSERT INTO t VALUES (6)", ()).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), before);
    });
}

fn deny_drop(req: &AuthRequest<'_>) -> Authorization {
    if req.action == auth::DROP_TABLE {
        Authorization::Deny
    } else {
        Authorization::Allow
    }
}

#[test]
fn test_set_authorizer_deny_drop() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.set_authorizer(Some(deny_drop)).await.unwrap();
        let e = db.execute("DROP TABLE t", ()).await.unwrap_err();
        assert_eq!(e.sqlite_code(), Some(ErrorCode::Auth), "{e}");
        assert!(e.to_string().contains("not authorized"), "{e}");
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(1)
        );
    });
}

#[test]
fn test_set_authorizer_reset() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.set_authorizer(Some(deny_drop)).await.unwrap();
        assert!(db.execute("DROP TABLE t", ()).await.is_err());
        db.set_authorizer(None::<fn(&AuthRequest<'_>) -> Authorization>)
            .await
            .unwrap();
        db.execute("DROP TABLE t", ()).await.unwrap();
    });
}

#[test]
fn test_set_authorizer_exception_propagates() {
    // Python: an exception in the authorizer fails the statement. Rust: a panic denies.
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.set_authorizer(Some(|_: &AuthRequest<'_>| -> Authorization {
            panic!("authorizer bug")
        }))
        .await
        .unwrap();
        let e = db.fetch_all("SELECT * FROM t", ()).await.unwrap_err();
        assert_eq!(e.sqlite_code(), Some(ErrorCode::Auth), "{e}");
        db.set_authorizer(None::<fn(&AuthRequest<'_>) -> Authorization>)
            .await
            .unwrap();
        assert!(db.fetch_all("SELECT * FROM t", ()).await.unwrap().is_empty());
    });
}

#[test]
fn test_connect_error() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let e = connect("/definitely/not/a/dir/x.db").await.unwrap_err();
        assert_eq!(e.sqlite_code(), Some(ErrorCode::CantOpen), "{e}");
    });
}

#[test]
fn test_connect_base_exception() {
    // A failure inside connect leaves no worker thread behind.
    let _g = serial();
    let before = common::worker_threads();
    common::on_all_runtimes(|| async {
        for _ in 0..5 {
            assert!(connect("/definitely/not/a/dir/x.db").await.is_err());
            assert!(
                ConnectOptions::new(":memory:")
                    .pragma("no such; pragma", "1")
                    .open()
                    .await
                    .is_err()
            );
        }
    });
    assert!(
        common::eventually(|| common::worker_threads() == before),
        "worker threads left behind: {:?}",
        common::worker_thread_names()
    );
}

#[test]
fn test_iterdump() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.execute_script("CREATE TABLE foo (i integer primary key, k text); INSERT INTO foo VALUES (1, 'hello'); INSERT INTO foo VALUES (2, 'world');")
            .await
            .unwrap();
        let lines: Vec<String> = db.iterdump().map(|l| l.unwrap()).collect().await;
        assert_eq!(
            lines,
            [
                "BEGIN TRANSACTION;",
                "CREATE TABLE foo (i integer primary key, k text);",
                "INSERT INTO \"foo\" VALUES(1,'hello');",
                "INSERT INTO \"foo\" VALUES(2,'world');",
                "COMMIT;",
            ]
        );
    });
}

#[test]
fn test_cursor_on_closed_connection() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:").iter_chunk_size(1).open().await.unwrap();
        let mut cur = db
            .query("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4", ())
            .await
            .unwrap();
        db.close().await.unwrap();
        // What was read ahead before the close may still come out; then every call errors.
        let mut errors = 0;
        for _ in 0..6 {
            match cur.fetch_one().await {
                Err(Error::Closed) => errors += 1,
                Ok(Some(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(errors >= 2);
        assert!(matches!(db.execute("SELECT 1", ()).await, Err(Error::Closed)));
        assert!(matches!(db.fetch_all("SELECT 1", ()).await, Err(Error::Closed)));
    });
}

#[test]
fn test_cursor_on_closed_connection_loop() {
    let _g = serial();
    rt().block_on(async {
        let db = connect(":memory:").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..100 {
            let d = db.clone();
            tasks.push(tokio::spawn(async move { d.fetch_all("SELECT ?", [i]).await }));
            if i == 50 {
                let d = db.clone();
                tasks.push(tokio::spawn(async move { d.close().await.map(|()| Vec::new()) }));
            }
        }
        for t in tasks {
            let r = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("no hang")
                .unwrap();
            assert!(matches!(r, Ok(_) | Err(Error::Closed)), "{r:?}");
        }
    });
}

#[test]
fn test_close_blocking_until_transactions_queue_empty() {
    let _g = serial();
    let (_dir, path) = common::temp_db();
    common::on_all_runtimes(|| {
        let path = path.clone();
        async move {
            // WAL without fsync per commit: the test is about ordering, not durability.
            let db = ConnectOptions::new(&path)
                .recommended_pragmas()
                .pragma("synchronous", "OFF")
                .worker_spin(Duration::ZERO)
                .open()
                .await
                .unwrap();
            db.execute("CREATE TABLE IF NOT EXISTS t(x)", ()).await.unwrap();
            db.execute("DELETE FROM t", ()).await.unwrap();
            let all: Vec<_> = (0..1000)
                .map(|i| Box::pin(db.execute("INSERT INTO t VALUES (?)", [i])))
                .collect();
            // Poll each once: that submits every statement (the queue holds 1024). One may
            // already be answered (the caller waits a few µs for a fast reply); a finished
            // future must not be polled again.
            let mut results = Vec::new();
            let mut pending = Vec::new();
            for mut f in all {
                match futures::poll!(f.as_mut()) {
                    std::task::Poll::Ready(r) => results.push(r),
                    std::task::Poll::Pending => pending.push(f),
                }
            }
            assert!(db.pending() + results.len() > 0);
            // close() queued now runs after all of them, and waits for them.
            let (closed, rest) = futures::join!(db.close(), futures::future::join_all(pending));
            closed.unwrap();
            results.extend(rest);
            assert_eq!(results.len(), 1000);
            assert!(results.iter().all(Result::is_ok), "a queued statement did not run");
            let db = connect(&path).await.unwrap();
            assert_eq!(
                db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
                Some(1000)
            );
            db.close().await.unwrap();
        }
    });
}

#[test]
fn test_close_twice() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.close().await.unwrap();
        db.close().await.unwrap();
    });
}

#[test]
fn test_backup_aiosqlite() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let src = connect(":memory:").await.unwrap();
        src.execute("CREATE TABLE t(x)", ()).await.unwrap();
        src.execute_many(
            "INSERT INTO t VALUES (?)",
            (0..2000).map(|i| [format!("row {i} {}", "x".repeat(100))]),
        )
        .await
        .unwrap();
        let dst = connect(":memory:").await.unwrap();
        let steps = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&steps);
        src.backup(
            &dst,
            BackupOptions {
                pages: 5,
                progress: Some(Box::new(move |p| s.lock().unwrap().push(p))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            dst.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(2000)
        );
        let steps = steps.lock().unwrap().clone();
        assert!(steps.len() > 2, "{} steps", steps.len());
        assert_eq!(steps.last().unwrap().remaining, 0);
        assert!(steps.windows(2).all(|w| w[0].remaining >= w[1].remaining));
        // Onto itself is refused.
        assert!(matches!(
            src.backup(&src, BackupOptions::default()).await,
            Err(Error::InvalidArgument { .. })
        ));
    });
}

#[test]
fn test_backup_sqlite() {
    let _g = serial();
    common::on_all_runtimes(|| async {
        let dir = tempfile::tempdir().unwrap();
        let src = connect(":memory:").await.unwrap();
        src.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);")
            .await
            .unwrap();
        let target = dir.path().join("copy.db");
        src.backup(target.as_path(), BackupOptions::default()).await.unwrap();
        let copy = rusqlite::Connection::open(&target).unwrap();
        let n: i64 = copy.query_row("SELECT sum(x) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 6);
    });
}

/// Collects tracing events (debug level and above) for `test_emits_warning_when_left_open`.
struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct V<'a>(&'a mut String);
        impl tracing::field::Visit for V<'_> {
            fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{value:?}"));
            }
        }
        let mut s = String::new();
        event.record(&mut V(&mut s));
        self.0.lock().unwrap().push(s);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn test_emits_warning_when_left_open() {
    let _g = serial();
    let events = Arc::new(Mutex::new(Vec::new()));
    let before = common::worker_threads();
    tracing::subscriber::with_default(Capture(Arc::clone(&events)), || {
        futures::executor::block_on(async {
            let db = connect(":memory:").await.unwrap();
            db.execute("CREATE TABLE t(x)", ()).await.unwrap();
            drop(db);
        });
    });
    let events = events.lock().unwrap();
    assert!(events.iter().any(|e| e.contains("dropped without close")), "{events:?}");
    assert!(
        common::eventually(|| common::worker_threads() == before),
        "worker threads left behind: {:?}",
        common::worker_thread_names()
    );
}

#[test]
fn test_stop_without_close() {
    let _g = serial();
    let before = common::worker_threads();
    futures::executor::block_on(async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.stop();
        assert!(db.is_closed());
        assert!(matches!(db.execute("SELECT 1", ()).await, Err(Error::Closed)));
        db.stop();
    });
    assert!(
        common::eventually(|| common::worker_threads() == before),
        "worker threads left behind: {:?}",
        common::worker_thread_names()
    );
}

#[test]
fn test_stop_after_event_loop_closed() {
    let _g = serial();
    let before = common::worker_threads();
    let db = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = rt.block_on(async { connect(":memory:").await.unwrap() });
        drop(rt);
        db
    };
    db.stop();
    drop(db);
    assert!(
        common::eventually(|| common::worker_threads() == before),
        "worker threads left behind: {:?}",
        common::worker_thread_names()
    );
}
