//! API.md §1: opening connections and `ConnectOptions`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aiolite::{ConnectOptions, Error, ErrorCode, IsolationLevel};
use common::{on_all_runtimes, temp_db};

async fn scalar_i64(db: &aiolite::Connection, sql: &str) -> i64 {
    db.fetch_scalar::<i64>(sql, ()).await.unwrap().unwrap()
}

async fn scalar_text(db: &aiolite::Connection, sql: &str) -> String {
    db.fetch_scalar::<String>(sql, ()).await.unwrap().unwrap()
}

#[test]
fn connect_accepts_str_string_path_and_pathbuf() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let as_str: &str = path.to_str().unwrap();
        let db = aiolite::connect(as_str).await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        common::close(&db).await;

        let as_string: String = as_str.to_owned();
        let db = aiolite::connect(as_string).await.unwrap();
        db.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        common::close(&db).await;

        let as_path: &Path = path.as_path();
        let db = aiolite::connect(as_path).await.unwrap();
        db.execute("INSERT INTO t VALUES (3)", ()).await.unwrap();
        common::close(&db).await;

        let as_pathbuf: PathBuf = path.clone();
        let db = aiolite::connect(as_pathbuf).await.unwrap();
        assert_eq!(scalar_i64(&db, "SELECT sum(x) FROM t").await, 6);
        assert_eq!(db.path(), as_str);
        common::close(&db).await;
    });
}

#[test]
fn memory_databases_are_private() {
    on_all_runtimes(|| async {
        let a = aiolite::connect(":memory:").await.unwrap();
        let b = aiolite::connect(":memory:").await.unwrap();
        a.execute("CREATE TABLE t(x)", ()).await.unwrap();
        a.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let err = b.fetch_all("SELECT * FROM t", ()).await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::Error), "{err}");
        assert!(err.to_string().contains("no such table"), "{err}");
        // Clones share the one in-memory database.
        let a2 = a.clone();
        assert_eq!(scalar_i64(&a2, "SELECT count(*) FROM t").await, 1);
    });
}

#[test]
fn file_uri_with_mode_ro_refuses_writes() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let db = aiolite::connect(&path).await.unwrap();
        db.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (42);")
            .await
            .unwrap();
        common::close(&db).await;

        let uri = format!("file:{}?mode=ro", path.display());
        let ro = aiolite::connect(uri.as_str()).await.unwrap();
        assert_eq!(scalar_i64(&ro, "SELECT x FROM t").await, 42);
        let err = ro.execute("INSERT INTO t VALUES (1)", ()).await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::ReadOnly), "{err}");
        // Still usable after the refused write.
        assert_eq!(scalar_i64(&ro, "SELECT count(*) FROM t").await, 1);
    });
}

#[test]
fn file_uri_without_query_opens_read_write() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let uri = format!("file:{}", path.display());
        let db = aiolite::connect(uri).await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        common::close(&db).await;
        // The URI named the real file (not a file literally called "file:...").
        assert!(path.exists());
    });
}

#[test]
fn busy_timeout_defaults_to_5s_and_is_configurable() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        assert_eq!(scalar_i64(&db, "PRAGMA busy_timeout").await, 5000);
        let db = ConnectOptions::new(":memory:")
            .busy_timeout(Duration::from_millis(1234))
            .open()
            .await
            .unwrap();
        assert_eq!(scalar_i64(&db, "PRAGMA busy_timeout").await, 1234);
    });
}

#[test]
fn isolation_level_option_opens_implicit_transactions() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .isolation_level(Some(IsolationLevel::Immediate))
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        assert!(!db.in_transaction());
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert!(db.in_transaction());
        db.rollback().await.unwrap();
        assert_eq!(scalar_i64(&db, "SELECT count(*) FROM t").await, 0);
    });
}

#[test]
fn pragmas_are_applied_in_order() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .pragma("user_version", "7")
            .pragma("cache_size", "-1234")
            .pragma("user_version", "9")
            .open()
            .await
            .unwrap();
        assert_eq!(scalar_i64(&db, "PRAGMA user_version").await, 9);
        assert_eq!(scalar_i64(&db, "PRAGMA cache_size").await, -1234);
    });
}

#[test]
fn recommended_pragmas_are_read_back_on_a_file_db() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let db = ConnectOptions::new(&path).recommended_pragmas().open().await.unwrap();
        assert_eq!(scalar_text(&db, "PRAGMA journal_mode").await, "wal");
        assert_eq!(scalar_i64(&db, "PRAGMA foreign_keys").await, 1);
        assert_eq!(scalar_i64(&db, "PRAGMA synchronous").await, 1);
        assert_eq!(scalar_i64(&db, "PRAGMA cache_size").await, -64000);
        assert_eq!(scalar_i64(&db, "PRAGMA temp_store").await, 2);
        assert_eq!(aiolite::RECOMMENDED_PRAGMAS.len(), 5);
    });
}

#[test]
fn recommended_pragmas_on_memory_keep_memory_journal() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .recommended_pragmas()
            .open()
            .await
            .unwrap();
        assert_eq!(scalar_text(&db, "PRAGMA journal_mode").await, "memory");
        assert_eq!(scalar_i64(&db, "PRAGMA foreign_keys").await, 1);
    });
}

#[test]
fn journal_mode_wal_on_memory_is_accepted() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .pragma("journal_mode", "WAL")
            .open()
            .await
            .unwrap();
        assert_eq!(scalar_text(&db, "PRAGMA journal_mode").await, "memory");
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
    });
}

#[test]
fn read_only_refuses_writes_but_reads() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let db = aiolite::connect(&path).await.unwrap();
        db.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (5);")
            .await
            .unwrap();
        common::close(&db).await;

        let ro = ConnectOptions::new(&path).read_only(true).open().await.unwrap();
        assert_eq!(scalar_i64(&ro, "SELECT x FROM t").await, 5);
        let err = ro.execute("UPDATE t SET x = 6", ()).await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::ReadOnly), "{err}");
        let err = ro.execute_script("CREATE TABLE u(y);").await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::ReadOnly), "{err}");
        assert_eq!(scalar_i64(&ro, "SELECT x FROM t").await, 5);
    });
}

#[test]
fn read_only_on_a_missing_file_is_cantopen() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let err = ConnectOptions::new(&path).read_only(true).open().await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::CantOpen), "{err}");
        assert!(!path.exists());
    });
}

#[test]
fn create_if_missing_false_on_a_missing_file_is_err() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let err = ConnectOptions::new(&path)
            .create_if_missing(false)
            .open()
            .await
            .unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::CantOpen), "{err}");
        assert!(!path.exists(), "no file may be created");
        // And with an existing file it opens.
        common::close(&aiolite::connect(&path).await.unwrap()).await;
        let db = ConnectOptions::new(&path)
            .create_if_missing(false)
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
    });
}

#[test]
fn statement_cache_capacity_zero_still_works() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_cache_capacity(0)
            .iter_chunk_size(2)
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        for i in 0..20 {
            db.execute("INSERT INTO t VALUES (?)", [i]).await.unwrap();
        }
        assert_eq!(scalar_i64(&db, "SELECT sum(x) FROM t").await, 190);
        // Two cursors over the same SQL text at once, interleaved.
        let sql = "SELECT x FROM t ORDER BY x";
        let mut a = db.query(sql, ()).await.unwrap();
        let mut b = db.query(sql, ()).await.unwrap();
        for i in 0..20 {
            assert_eq!(a.fetch_one().await.unwrap().unwrap().get::<i64>(0).unwrap(), i);
            assert_eq!(b.fetch_one().await.unwrap().unwrap().get::<i64>(0).unwrap(), i);
        }
        assert!(a.fetch_one().await.unwrap().is_none());
        assert!(b.fetch_one().await.unwrap().is_none());
        assert_eq!(db.fetch_all(sql, ()).await.unwrap().len(), 20);
    });
}

#[test]
fn statement_cache_capacity_one_evicts_and_still_works() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_cache_capacity(1)
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        for i in 0..10_i64 {
            db.execute("INSERT INTO t VALUES (?)", [i]).await.unwrap();
            assert_eq!(scalar_i64(&db, "SELECT count(*) FROM t").await, i + 1);
            assert_eq!(
                db.fetch_scalar::<i64>("SELECT max(x) FROM t", ()).await.unwrap(),
                Some(i)
            );
        }
    });
}

#[test]
fn iter_chunk_size_zero_is_clamped_and_streams_everything() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:").iter_chunk_size(0).open().await.unwrap();
        let mut cur = db
            .query(
                "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50) SELECT n FROM c",
                (),
            )
            .await
            .unwrap();
        let rows = cur.fetch_all().await.unwrap();
        let got: Vec<i64> = rows.iter().map(|r| r.get(0).unwrap()).collect();
        assert_eq!(got, (1..=50).collect::<Vec<_>>());
    });
}

#[test]
fn journal_mode_wal_on_a_read_only_non_wal_db_is_an_error() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let db = aiolite::connect(&path).await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        common::close(&db).await;

        // SQLite itself refuses the change (SQLITE_READONLY) before any read-back.
        let err = ConnectOptions::new(&path)
            .read_only(true)
            .pragma("journal_mode", "WAL")
            .open()
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::PragmaMismatch { .. }) || err.sqlite_code() == Some(ErrorCode::ReadOnly),
            "{err:?}"
        );
        assert_eq!(err.sql(), Some("PRAGMA journal_mode = WAL"));
    });
}

#[test]
fn pragma_mismatch_names_pragma_expected_and_actual() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        // An unknown journal mode: SQLite answers with the mode it keeps.
        let err = ConnectOptions::new(&path)
            .pragma("journal_mode", "bogus")
            .open()
            .await
            .unwrap_err();
        match &err {
            Error::PragmaMismatch {
                pragma,
                expected,
                actual,
            } => {
                assert_eq!(pragma, "journal_mode");
                assert_eq!(expected, "bogus");
                assert_eq!(actual.to_ascii_lowercase(), "delete");
            }
            other => panic!("expected PragmaMismatch, got {other:?}"),
        }
        assert!(err.to_string().contains("journal_mode"), "{err}");
    });
}

#[test]
fn pragma_mismatch_when_sqlite_ignores_the_value() {
    on_all_runtimes(|| async {
        // 1000 is not a power of two: SQLite silently keeps its page size.
        let err = ConnectOptions::new(":memory:")
            .pragma("page_size", "1000")
            .open()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::PragmaMismatch { pragma, .. } if pragma == "page_size"),
            "{err:?}"
        );
    });
}

#[test]
fn invalid_pragma_name_is_invalid_argument() {
    on_all_runtimes(|| async {
        for name in ["journal_mode; DROP TABLE t", "", "1abc", "a.b.c", "x y"] {
            let err = ConnectOptions::new(":memory:")
                .pragma(name, "1")
                .open()
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{name:?}: {err:?}");
        }
    });
}

#[test]
fn pragma_values_with_quotes_are_not_injected() {
    on_all_runtimes(|| async {
        // A value that is not a number or a bare word is quoted as a string literal; an
        // injection attempt must not run a second statement.
        let (_dir, path) = temp_db();
        let db = aiolite::connect(&path).await.unwrap();
        db.execute("CREATE TABLE keep(x)", ()).await.unwrap();
        common::close(&db).await;
        let r = ConnectOptions::new(&path)
            .pragma("user_version", "1; DROP TABLE keep")
            .open()
            .await;
        // Whatever the outcome (SQLite rejects a string for user_version or the read-back
        // differs), the table survives.
        if let Ok(db) = r {
            common::close(&db).await;
        }
        let db = aiolite::connect(&path).await.unwrap();
        assert_eq!(
            scalar_i64(&db, "SELECT count(*) FROM sqlite_schema WHERE name = 'keep'").await,
            1
        );
    });
}

#[test]
fn a_directory_cannot_be_opened() {
    on_all_runtimes(|| async {
        let dir = tempfile::tempdir().unwrap();
        let err = aiolite::connect(dir.path()).await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::CantOpen), "{err}");
    });
}

#[test]
fn a_path_under_a_missing_directory_cannot_be_opened() {
    on_all_runtimes(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/test.db");
        let err = aiolite::connect(&path).await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::CantOpen), "{err}");
        assert!(matches!(err, Error::Sqlite { .. }));
        assert!(!path.exists());
    });
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
        // With pragmas, the header is read at open.
        let err = ConnectOptions::new(&path)
            .recommended_pragmas()
            .open()
            .await
            .unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::NotADatabase), "{err}");
        // Without, SQLite opens lazily and the first statement fails.
        let db = aiolite::connect(&path).await.unwrap();
        let err = db.fetch_all("SELECT * FROM sqlite_schema", ()).await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::NotADatabase), "{err}");
    });
}

#[test]
fn busy_timeout_set_by_pragma_survives_reads() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("PRAGMA busy_timeout = 100", ()).await.unwrap();
        assert_eq!(scalar_i64(&db, "PRAGMA busy_timeout").await, 100);
        // A plain SELECT (eligible for the inline fast path)...
        assert_eq!(scalar_i64(&db, "SELECT 1").await, 1);
        // ...must not change the connection's busy timeout.
        assert_eq!(scalar_i64(&db, "PRAGMA busy_timeout").await, 100);
    });
}

#[test]
fn file_uri_parameters_are_honoured() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    on_all_runtimes(|| async {
        // A named, shared in-memory database: only a URI can ask for that.
        let name = format!(
            "file:aiolite_open_test_{}_{}?mode=memory&cache=shared",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let a = aiolite::connect(name.as_str()).await.unwrap();
        let b = aiolite::connect(name.as_str()).await.unwrap();
        a.execute("CREATE TABLE shared(x)", ()).await.unwrap();
        a.execute("INSERT INTO shared VALUES (1)", ()).await.unwrap();
        assert_eq!(scalar_i64(&b, "SELECT count(*) FROM shared").await, 1);
        // ...and nothing was created on disk under that name.
        assert!(!Path::new(&name).exists());
    });
}

#[test]
fn an_empty_path_opens_a_private_temporary_database() {
    on_all_runtimes(|| async {
        let db = aiolite::connect("").await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert_eq!(scalar_i64(&db, "SELECT count(*) FROM t").await, 1);
        let other = aiolite::connect("").await.unwrap();
        assert!(other.fetch_all("SELECT * FROM t", ()).await.is_err());
    });
}

#[test]
fn a_huge_busy_timeout_does_not_hang_open() {
    on_all_runtimes(|| async {
        for timeout in [Duration::MAX, Duration::from_secs(30 * 86_400)] {
            let r = common::within(
                common::NO_HANG,
                ConnectOptions::new(":memory:").busy_timeout(timeout).open(),
            )
            .await;
            // Ok (clamped) or an Err are both fine; waiting forever is not.
            match r.expect("open() hung") {
                Ok(db) => assert_eq!(scalar_i64(&db, "SELECT 1").await, 1),
                Err(e) => assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}"),
            }
        }
    });
}
