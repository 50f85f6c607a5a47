//! API.md §3: the error type and its helpers.

mod common;

use std::time::Duration;

use aiolite::{ConnectOptions, Error, ErrorCode, TransactionBehavior, named_params, params};
use common::{on_all_runtimes, temp_db};

async fn schema() -> aiolite::Connection {
    let db = ConnectOptions::new(":memory:")
        .pragma("foreign_keys", "ON")
        .open()
        .await
        .unwrap();
    db.execute_script(
        "CREATE TABLE parent(id INTEGER PRIMARY KEY);
         CREATE TABLE t(
             id INTEGER PRIMARY KEY,
             email TEXT UNIQUE,
             name TEXT NOT NULL DEFAULT 'n',
             age INTEGER CHECK (age >= 0),
             parent_id INTEGER REFERENCES parent(id)
         );
         CREATE TABLE k(code TEXT PRIMARY KEY) WITHOUT ROWID;
         INSERT INTO parent VALUES (1);
         INSERT INTO t(id, email) VALUES (1, 'a@x');
         INSERT INTO k VALUES ('A');",
    )
    .await
    .unwrap();
    db
}

async fn still_works(db: &aiolite::Connection) {
    assert_eq!(db.fetch_scalar::<i64>("SELECT 41 + 1", ()).await.unwrap(), Some(42));
    db.execute("INSERT INTO parent VALUES (NULL)", ()).await.unwrap();
}

#[test]
fn sqlite_error_has_codes_message_and_sql() {
    on_all_runtimes(|| async {
        let db = schema().await;
        let sql = "INSERT INTO t(email) VALUES (?)";
        let err = db.execute(sql, ["a@x"]).await.unwrap_err();
        match &err {
            Error::Sqlite {
                code,
                extended_code,
                message,
                sql: failing,
            } => {
                assert_eq!(*code, ErrorCode::Constraint);
                assert_eq!(*extended_code, 2067);
                assert_eq!(message, "UNIQUE constraint failed: t.email");
                assert_eq!(failing.as_deref(), Some(sql));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.sqlite_code(), Some(ErrorCode::Constraint));
        assert_eq!(err.extended_code(), Some(2067));
        assert_eq!(err.sql(), Some(sql));
        let shown = err.to_string();
        assert!(shown.contains("UNIQUE constraint failed: t.email"), "{shown}");
        assert!(shown.contains("SQLITE_CONSTRAINT_UNIQUE"), "{shown}");
        // The SQL is kept out of Display.
        assert!(!shown.contains("INSERT INTO"), "{shown}");
    });
}

#[test]
fn syntax_and_schema_errors() {
    on_all_runtimes(|| async {
        let db = schema().await;
        let err = db.execute("SELEC 1", ()).await.unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::Error));
        assert_eq!(err.sql(), Some("SELEC 1"));
        assert!(err.to_string().contains("syntax error"), "{err}");
        assert!(err.to_string().contains("SQLITE_ERROR"), "{err}");
        let err = db.fetch_all("SELECT nope FROM t", ()).await.unwrap_err();
        assert!(err.to_string().contains("no such column: nope"), "{err}");
        assert_eq!(err.sql(), Some("SELECT nope FROM t"));
        still_works(&db).await;
    });
}

#[test]
fn unique_violation_covers_unique_and_primary_key() {
    on_all_runtimes(|| async {
        let db = schema().await;
        let err = db.execute("INSERT INTO t(email) VALUES ('a@x')", ()).await.unwrap_err();
        assert!(err.is_unique_violation() && err.is_constraint_violation(), "{err}");
        let err = db.execute("INSERT INTO t(id) VALUES (1)", ()).await.unwrap_err();
        assert!(err.is_unique_violation(), "INTEGER PRIMARY KEY: {err}");
        assert_eq!(err.extended_code(), Some(1555));
        let err = db.execute("INSERT INTO k VALUES ('A')", ()).await.unwrap_err();
        assert!(err.is_unique_violation(), "TEXT PRIMARY KEY: {err}");
        assert!(err.to_string().contains("SQLITE_CONSTRAINT_PRIMARYKEY"), "{err}");
        still_works(&db).await;
    });
}

#[test]
fn constraint_violations_that_are_not_unique() {
    on_all_runtimes(|| async {
        let db = schema().await;
        let cases = [
            ("INSERT INTO t(name) VALUES (NULL)", 1299, "NOT NULL"),
            ("INSERT INTO t(age) VALUES (-1)", 275, "CHECK"),
            ("INSERT INTO t(parent_id) VALUES (99)", 787, "FOREIGN KEY"),
        ];
        for (sql, ext, what) in cases {
            let err = db.execute(sql, ()).await.unwrap_err();
            assert!(err.is_constraint_violation(), "{what}: {err}");
            assert!(!err.is_unique_violation(), "{what}: {err}");
            assert!(!err.is_busy(), "{what}: {err}");
            assert_eq!(err.extended_code(), Some(ext), "{what}: {err}");
            assert!(err.to_string().contains(what), "{what}: {err}");
        }
        still_works(&db).await;
    });
}

#[test]
fn foreign_key_enforcement_follows_the_pragma() {
    on_all_runtimes(|| async {
        // Note: the bundled SQLite (libsqlite3-sys) enforces foreign keys by default, unlike
        // Python's sqlite3; the pragma turns it off.
        let db = ConnectOptions::new(":memory:")
            .pragma("foreign_keys", "OFF")
            .open()
            .await
            .unwrap();
        db.execute_script(
            "CREATE TABLE parent(id INTEGER PRIMARY KEY);
             CREATE TABLE child(p INTEGER REFERENCES parent(id));",
        )
        .await
        .unwrap();
        db.execute("INSERT INTO child VALUES (99)", ()).await.unwrap();
        db.execute("PRAGMA foreign_keys = ON", ()).await.unwrap();
        let err = db.execute("INSERT INTO child VALUES (98)", ()).await.unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
    });
}

#[test]
fn busy_with_two_connections_to_one_file() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let a = aiolite::connect(&path).await.unwrap();
        a.execute("CREATE TABLE t(x)", ()).await.unwrap();
        for timeout in [Duration::ZERO, Duration::from_millis(50)] {
            let b = ConnectOptions::new(&path).busy_timeout(timeout).open().await.unwrap();
            a.execute("BEGIN IMMEDIATE", ()).await.unwrap();
            let err = b.execute("INSERT INTO t VALUES (1)", ()).await.unwrap_err();
            assert!(err.is_busy(), "{timeout:?}: {err}");
            assert_eq!(err.sqlite_code(), Some(ErrorCode::Busy));
            assert!(!err.is_constraint_violation());
            assert!(err.to_string().contains("SQLITE_BUSY"), "{err}");
            let err = b.transaction_with(TransactionBehavior::Immediate).await.unwrap_err();
            assert!(err.is_busy(), "{err}");
            a.rollback().await.unwrap();
            // Once the lock is gone, B works.
            b.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
            common::close(&b).await;
        }
        assert_eq!(
            a.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(2)
        );
    });
}

#[test]
fn non_sqlite_errors_have_no_code() {
    on_all_runtimes(|| async {
        let db = schema().await;
        let errs = vec![
            db.execute("SELECT 1; SELECT 2", ()).await.unwrap_err(),
            db.execute("SELECT ?", ()).await.unwrap_err(),
            db.execute("SELECT :a", named_params! {":b": 1}).await.unwrap_err(),
            db.fetch_scalar::<i64>("SELECT 'x'", ()).await.unwrap_err(),
        ];
        for err in errs {
            assert_eq!(err.sqlite_code(), None, "{err:?}");
            assert_eq!(err.extended_code(), None, "{err:?}");
            assert!(!err.is_busy() && !err.is_unique_violation() && !err.is_constraint_violation());
            assert!(!err.to_string().is_empty());
        }
        common::close(&db).await;
        let err = db.execute("SELECT 1", ()).await.unwrap_err();
        assert!(matches!(err, Error::Closed));
        assert_eq!(err.sqlite_code(), None);
        assert!(err.to_string().contains("closed"), "{err}");
    });
}

#[test]
fn connection_keeps_working_after_every_kind_of_bad_input() {
    on_all_runtimes(|| async {
        let db = schema().await;
        let _ = db.execute("SELEC 1", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db.execute("INSERT INTO nope VALUES (1)", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db.execute("INSERT INTO t(email) VALUES ('a@x')", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db
            .execute("INSERT INTO t(id) VALUES (?, ?)", params![1, 2])
            .await
            .unwrap_err();
        still_works(&db).await;
        let _ = db.fetch_all("SELECT :a", named_params! {":zz": 1}).await.unwrap_err();
        still_works(&db).await;
        let _ = db.fetch_all("SELECT 1; SELECT 2", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db.fetch_scalar::<i64>("SELECT 'text'", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db.fetch_scalar::<u8>("SELECT 300", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db
            .execute_many("INSERT INTO t(age) VALUES (?)", [[1], [-1]])
            .await
            .unwrap_err();
        still_works(&db).await;
        let _ = db
            .execute_script("INSERT INTO parent VALUES (NULL); BOGUS;")
            .await
            .unwrap_err();
        still_works(&db).await;
        let _ = db.query("SELECT * FROM nope", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db.fetch_one_as::<(i64, i64)>("SELECT 'a', 'b'", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db.execute("COMMIT", ()).await.unwrap_err(); // no transaction is active
        still_works(&db).await;
        let _ = db
            .call(|c| c.execute("INSERT INTO nope VALUES (1)", []))
            .await
            .unwrap_err();
        still_works(&db).await;
        let _ = db.fetch_one("SELECT CAST(x'ff' AS TEXT)", ()).await.unwrap_err();
        still_works(&db).await;
        let _ = db.execute("ATTACH '/nonexistent/dir/x.db' AS x", ()).await.unwrap_err();
        still_works(&db).await;
        assert!(!db.in_transaction());
    });
}

#[test]
fn a_failed_statement_inside_a_transaction_keeps_the_transaction() {
    on_all_runtimes(|| async {
        let db = schema().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO parent VALUES (10)", ()).await.unwrap();
        let err = tx.execute("INSERT INTO t(email) VALUES ('a@x')", ()).await.unwrap_err();
        assert!(err.is_unique_violation());
        // A constraint error aborts the statement, not the transaction.
        tx.execute("INSERT INTO parent VALUES (11)", ()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM parent WHERE id IN (10, 11)", ())
                .await
                .unwrap(),
            Some(2)
        );
    });
}

#[test]
fn errors_are_std_errors_and_debug() {
    fn is_std_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let e = Error::Closed;
    is_std_error(&e);
    assert!(!format!("{e:?}").is_empty());
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
    assert!(boxed.to_string().contains("closed"));
}
