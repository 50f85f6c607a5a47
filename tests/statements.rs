//! API.md §2: execute, execute_insert, execute_many, execute_script, fetch_*.

mod common;

use aiolite::{Error, ExecResult, Value, named_params, params};
use common::on_all_runtimes;
use serde::Deserialize;

async fn mem() -> aiolite::Connection {
    let db = aiolite::connect(":memory:").await.unwrap();
    db.execute(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT UNIQUE, n INTEGER DEFAULT 0)",
        (),
    )
    .await
    .unwrap();
    db
}

async fn count(db: &aiolite::Connection, table: &str) -> i64 {
    db.fetch_scalar::<i64>(&format!("SELECT count(*) FROM {table}"), ())
        .await
        .unwrap()
        .unwrap()
}

#[test]
fn execute_reports_changes_and_last_insert_rowid() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let r = db
            .execute("INSERT INTO t(a, b) VALUES (?, ?)", params![1, "x"])
            .await
            .unwrap();
        assert_eq!(
            r,
            ExecResult {
                changes: 1,
                last_insert_rowid: 1
            }
        );
        let r = db
            .execute("INSERT INTO t(id, a, b) VALUES (?, ?, ?)", params![10, 2, "y"])
            .await
            .unwrap();
        assert_eq!((r.changes, r.last_insert_rowid), (1, 10));
        let r = db
            .execute("INSERT INTO t(a, b) SELECT a + 100, b || '2' FROM t", ())
            .await
            .unwrap();
        assert_eq!((r.changes, r.last_insert_rowid), (2, 12));
        let r = db.execute("UPDATE t SET n = n + 1 WHERE a > 100", ()).await.unwrap();
        assert_eq!(r.changes, 2);
        // Both fields always present: last_insert_rowid is the connection's, after an UPDATE too.
        assert_eq!(r.last_insert_rowid, 12);
        let r = db.execute("DELETE FROM t", ()).await.unwrap();
        assert_eq!(r.changes, 4);
    });
}

#[test]
fn execute_changes_is_zero_for_ddl_select_and_no_match_not_stale() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let r = db
            .execute("INSERT INTO t(a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')", ())
            .await
            .unwrap();
        assert_eq!(r.changes, 3);
        let r = db.execute("CREATE TABLE u(x)", ()).await.unwrap();
        assert_eq!(r.changes, 0, "DDL after an insert");
        db.execute("INSERT INTO t(a, b) VALUES (4, 'w')", ()).await.unwrap();
        let r = db.execute("SELECT * FROM t", ()).await.unwrap();
        assert_eq!(r.changes, 0, "SELECT after an insert");
        db.execute("INSERT INTO t(a, b) VALUES (5, 'v')", ()).await.unwrap();
        let r = db.execute("UPDATE t SET a = 0 WHERE a = 999", ()).await.unwrap();
        assert_eq!(r.changes, 0, "UPDATE matching nothing after an insert");
        let r = db.execute("DELETE FROM t WHERE a = 999", ()).await.unwrap();
        assert_eq!(r.changes, 0, "DELETE matching nothing");
        let r = db.execute("DROP TABLE u", ()).await.unwrap();
        assert_eq!(r.changes, 0);
        let r = db
            .execute("INSERT OR IGNORE INTO t(a, b) VALUES (6, 'x')", ())
            .await
            .unwrap();
        assert_eq!(r.changes, 0, "ignored insert");
    });
}

#[test]
fn execute_of_a_statement_returning_rows_works() {
    on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let db = aiolite::connect(&path).await.unwrap();
        let r = db.execute("PRAGMA journal_mode=WAL", ()).await.unwrap();
        assert_eq!(r.changes, 0);
        let mode: Option<String> = db.fetch_scalar("PRAGMA journal_mode", ()).await.unwrap();
        assert_eq!(mode.as_deref(), Some("wal"));
        // A SELECT through execute runs and its rows are discarded.
        db.execute("SELECT 1 UNION ALL SELECT 2", ()).await.unwrap();
    });
}

#[test]
fn execute_insert_returns_rowid_only_when_a_row_was_inserted() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let id = db
            .execute_insert("INSERT INTO t(a, b) VALUES (?, ?)", params![1, "x"])
            .await
            .unwrap();
        assert_eq!(id, Some(1));
        let id = db
            .execute_insert("INSERT INTO t(id, a, b) VALUES (?, ?, ?)", params![77, 2, "y"])
            .await
            .unwrap();
        assert_eq!(id, Some(77));
        let id = db.execute_insert("UPDATE t SET a = 5 WHERE id = 1", ()).await.unwrap();
        assert_eq!(id, None, "UPDATE");
        let id = db
            .execute_insert("INSERT OR IGNORE INTO t(a, b) VALUES (3, 'x')", ())
            .await
            .unwrap();
        assert_eq!(id, None, "INSERT OR IGNORE that inserted nothing");
        let id = db
            .execute_insert("REPLACE INTO t(id, a, b) VALUES (500, 9, 'z')", ())
            .await
            .unwrap();
        assert_eq!(id, Some(500), "REPLACE inserting");
        let id = db.execute_insert("DELETE FROM t WHERE id = 500", ()).await.unwrap();
        assert_eq!(id, None, "DELETE");
        let id = db.execute_insert("CREATE TABLE u(x)", ()).await.unwrap();
        assert_eq!(id, None, "DDL");
    });
}

#[test]
fn execute_insert_upsert_that_updates_is_not_a_stale_rowid() {
    on_all_runtimes(|| async {
        let db = mem().await;
        db.execute_insert("INSERT INTO t(a, b) VALUES (1, 'x')", ())
            .await
            .unwrap(); // id 1
        db.execute_insert("INSERT INTO t(a, b) VALUES (2, 'y')", ())
            .await
            .unwrap(); // id 2
        // Updates row 1; no row is inserted.
        let id = db
            .execute_insert(
                "INSERT INTO t(a, b) VALUES (3, 'x') ON CONFLICT(b) DO UPDATE SET n = n + 1",
                (),
            )
            .await
            .unwrap();
        assert_ne!(id, Some(2), "rowid 2 belongs to an unrelated, earlier insert");
        assert!(id.is_none() || id == Some(1), "{id:?}");
    });
}

#[test]
fn execute_many_runs_all_parameter_shapes_and_totals_changes() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let n = db
            .execute_many(
                "INSERT INTO t(a, b) VALUES (?, ?)",
                vec![params![1, "a"], params![2, "b"]],
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        let n = db
            .execute_many("INSERT INTO t(a, b) VALUES (?, ?)", vec![(3, "c"), (4, "d"), (5, "e")])
            .await
            .unwrap();
        assert_eq!(n, 3);
        let n = db
            .execute_many(
                "INSERT INTO t(a, b) VALUES (?, ?)",
                vec![vec![Value::Integer(6), Value::Text("f".into())]],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
        let n = db
            .execute_many(
                "INSERT INTO t(a, b) VALUES (:a, :b)",
                vec![named_params! {":a": 7, ":b": "g"}, named_params! {":a": 8, ":b": "h"}],
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(count(&db, "t").await, 8);
        // Total changes: each UPDATE touches several rows.
        let n = db
            .execute_many("UPDATE t SET n = n + 1 WHERE a <= ?", [[2], [4], [100]])
            .await
            .unwrap();
        assert_eq!(n, 2 + 4 + 8);
        // Nothing to do.
        let n = db
            .execute_many("INSERT INTO t(a) VALUES (?)", Vec::<[i64; 1]>::new())
            .await
            .unwrap();
        assert_eq!(n, 0);
        let sum: Option<i64> = db.fetch_scalar("SELECT sum(a) FROM t", ()).await.unwrap();
        assert_eq!(sum, Some(36));
    });
}

#[test]
fn execute_many_stops_at_the_failing_row() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let err = db
            .execute_many(
                "INSERT INTO t(a, b) VALUES (?, ?)",
                vec![params![1, "a"], params![2, "b"], params![3, "a"], params![4, "d"]],
            )
            .await
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        assert_eq!(err.sql(), Some("INSERT INTO t(a, b) VALUES (?, ?)"));
        // Rows before the failing one stay applied (autocommit), later ones never ran.
        let got: Vec<i64> = db
            .fetch_all("SELECT a FROM t ORDER BY a", ())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(got, vec![1, 2]);
    });
}

#[test]
fn execute_script_runs_several_statements() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute_script(
            "CREATE TABLE a(x); -- a comment; with a semicolon
             INSERT INTO a VALUES (1);
             /* block; comment */ INSERT INTO a VALUES ('two;three');
             CREATE TABLE b(y);;
             INSERT INTO b SELECT x FROM a;",
        )
        .await
        .unwrap();
        assert_eq!(count(&db, "a").await, 2);
        assert_eq!(count(&db, "b").await, 2);
        let s: Option<String> = db
            .fetch_scalar("SELECT x FROM a WHERE typeof(x) = 'text'", ())
            .await
            .unwrap();
        assert_eq!(s.as_deref(), Some("two;three"));
        // A blank script is fine.
        db.execute_script("  -- nothing\n ; ").await.unwrap();
        db.execute_script("").await.unwrap();
    });
}

#[test]
fn execute_script_does_not_commit_an_open_transaction() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE a(x)", ()).await.unwrap();
        // Inside a transaction guard: rolled back with it.
        let tx = db.transaction().await.unwrap();
        tx.execute_script("INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);")
            .await
            .unwrap();
        assert_eq!(
            tx.fetch_scalar::<i64>("SELECT count(*) FROM a", ()).await.unwrap(),
            Some(2)
        );
        tx.rollback().await.unwrap();
        assert_eq!(count(&db, "a").await, 0);
        // Inside a manual BEGIN: still open after the script.
        db.execute("BEGIN", ()).await.unwrap();
        db.execute_script("INSERT INTO a VALUES (3);").await.unwrap();
        assert!(db.in_transaction());
        db.rollback().await.unwrap();
        assert_eq!(count(&db, "a").await, 0);
    });
}

#[test]
fn execute_script_stops_at_the_failing_statement() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE a(x UNIQUE)", ()).await.unwrap();
        let err = db
            .execute_script(
                "INSERT INTO a VALUES (1);
                 INSERT INTO a VALUES (1);
                 INSERT INTO a VALUES (3);",
            )
            .await
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        assert_eq!(err.sql(), Some("INSERT INTO a VALUES (1);"));
        let got: Vec<i64> = db
            .fetch_all("SELECT x FROM a", ())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(got, vec![1]);
        // A syntax error in the middle stops it too.
        let err = db
            .execute_script("INSERT INTO a VALUES (10); SELEC 1; INSERT INTO a VALUES (11);")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("syntax error"), "{err}");
        assert_eq!(count(&db, "a").await, 2);
    });
}

#[test]
fn fetch_all_one_and_scalar() {
    on_all_runtimes(|| async {
        let db = mem().await;
        db.execute_many("INSERT INTO t(a, b) VALUES (?, ?)", [(1, "x"), (2, "y"), (3, "z")])
            .await
            .unwrap();
        let rows = db.fetch_all("SELECT a, b FROM t ORDER BY a", ()).await.unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].get::<String>("b").unwrap(), "z");
        let rows = db.fetch_all("SELECT a FROM t WHERE a > ?", [10]).await.unwrap();
        assert!(rows.is_empty());

        let row = db
            .fetch_one("SELECT a, b FROM t WHERE a >= ? ORDER BY a", [2])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 2);
        assert!(
            db.fetch_one("SELECT a FROM t WHERE a > 10", ())
                .await
                .unwrap()
                .is_none()
        );

        assert_eq!(
            db.fetch_scalar::<i64>("SELECT max(a) FROM t", ()).await.unwrap(),
            Some(3)
        );
        assert_eq!(
            db.fetch_scalar::<String>("SELECT b FROM t ORDER BY a DESC", ())
                .await
                .unwrap()
                .as_deref(),
            Some("z")
        );
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT a FROM t WHERE a > 10", ())
                .await
                .unwrap(),
            None,
            "no row"
        );
    });
}

#[test]
fn fetch_scalar_null_is_a_conversion_error_for_i64_but_some_none_for_option() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let err = db.fetch_scalar::<i64>("SELECT NULL", ()).await.unwrap_err();
        assert!(matches!(err, Error::ColumnType { .. }), "{err:?}");
        let v = db.fetch_scalar::<Option<i64>>("SELECT NULL", ()).await.unwrap();
        assert_eq!(v, Some(None));
        // max() over no rows is one row holding NULL, not "no row".
        let v = db
            .fetch_scalar::<Option<i64>>("SELECT max(a) FROM t", ())
            .await
            .unwrap();
        assert_eq!(v, Some(None));
        let v = db
            .fetch_scalar::<Option<i64>>("SELECT a FROM t WHERE 0", ())
            .await
            .unwrap();
        assert_eq!(v, None);
        let v = db.fetch_scalar::<Value>("SELECT NULL", ()).await.unwrap();
        assert_eq!(v, Some(Value::Null));
    });
}

#[derive(Debug, Deserialize, PartialEq)]
enum Kind {
    Admin,
    Member,
}

#[derive(Debug, Deserialize, PartialEq)]
struct User {
    id: i64,
    name: String,
    email: Option<String>,
    active: bool,
    kind: Kind,
    score: f64,
}

#[test]
fn fetch_all_as_and_fetch_one_as_deserialize_by_column_name() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute_script(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT, active INTEGER, kind TEXT, score REAL);
             INSERT INTO users VALUES (1, 'ann', 'ann@x', 1, 'Admin', 1.5);
             INSERT INTO users VALUES (2, 'bob', NULL, 0, 'Member', 3);",
        )
        .await
        .unwrap();
        // Column order differs from field order: fields match by name.
        let users: Vec<User> = db
            .fetch_all_as("SELECT score, kind, active, email, name, id FROM users ORDER BY id", ())
            .await
            .unwrap();
        assert_eq!(
            users,
            vec![
                User {
                    id: 1,
                    name: "ann".into(),
                    email: Some("ann@x".into()),
                    active: true,
                    kind: Kind::Admin,
                    score: 1.5
                },
                User {
                    id: 2,
                    name: "bob".into(),
                    email: None,
                    active: false,
                    kind: Kind::Member,
                    score: 3.0
                },
            ]
        );
        let one: Option<User> = db.fetch_one_as("SELECT * FROM users WHERE id = ?", [2]).await.unwrap();
        assert_eq!(one.unwrap().name, "bob");
        let none: Option<User> = db.fetch_one_as("SELECT * FROM users WHERE id = ?", [99]).await.unwrap();
        assert!(none.is_none());
        // Tuples deserialize by position.
        let pairs: Vec<(i64, String)> = db
            .fetch_all_as("SELECT id, name FROM users ORDER BY id", ())
            .await
            .unwrap();
        assert_eq!(pairs, vec![(1, "ann".to_string()), (2, "bob".to_string())]);
        let t: Option<(i64, Option<String>, bool)> = db
            .fetch_one_as("SELECT id, email, active FROM users WHERE id = 2", ())
            .await
            .unwrap();
        assert_eq!(t, Some((2, None, false)));
    });
}

#[test]
fn fetch_as_errors_name_the_column_and_leave_the_connection_usable() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        let err = db
            .fetch_one_as::<User>(
                "SELECT 'x' AS id, 'n' AS name, 1 AS active, 'Admin' AS kind, 1.0 AS score",
                (),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Deserialize { .. }), "{err:?}");
        assert!(err.to_string().contains("id"), "{err}");
        let err = db
            .fetch_one_as::<User>(
                "SELECT 1 AS id, 'n' AS name, 1 AS active, 'Boss' AS kind, 1.0 AS score",
                (),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Deserialize { .. }), "{err:?}");
        let err = db.fetch_one_as::<User>("SELECT 1 AS id", ()).await.unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap(), Some(1));
    });
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithBlob {
    data: Vec<u8>,
}

#[test]
fn fetch_as_blob_into_vec_u8() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        let v: Option<WithBlob> = db.fetch_one_as("SELECT x'0102ff' AS data", ()).await.unwrap();
        assert_eq!(v, Some(WithBlob { data: vec![1, 2, 255] }));
    });
}

#[test]
fn more_than_one_statement_is_refused_everywhere_and_nothing_runs() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let two = "INSERT INTO t(a) VALUES (1); DROP TABLE t";
        let is_multi = |e: Error| assert!(matches!(e, Error::MultipleStatements { .. }), "{e:?}");
        is_multi(db.execute(two, ()).await.unwrap_err());
        is_multi(db.execute_insert(two, ()).await.unwrap_err());
        is_multi(db.execute_many(two, [(); 2]).await.unwrap_err());
        let read_two = "SELECT 1; DROP TABLE t";
        is_multi(db.fetch_all(read_two, ()).await.unwrap_err());
        is_multi(db.fetch_one(read_two, ()).await.unwrap_err());
        is_multi(db.fetch_scalar::<i64>(read_two, ()).await.unwrap_err());
        is_multi(db.fetch_all_as::<(i64,)>(read_two, ()).await.unwrap_err());
        is_multi(db.query(read_two, ()).await.unwrap_err());
        let err = db.execute("SELECT 1; SELECT 2", ()).await.unwrap_err();
        assert_eq!(err.sql(), Some("SELECT 1; SELECT 2"));
        // Nothing ran: the table exists and is empty.
        assert_eq!(count(&db, "t").await, 0);
        // A trailing semicolon, comment or leading empty statement is still one statement.
        db.execute("INSERT INTO t(a) VALUES (1);", ()).await.unwrap();
        db.execute("INSERT INTO t(a) VALUES (2); -- done", ()).await.unwrap();
        db.execute("; INSERT INTO t(a) VALUES (3)", ()).await.unwrap();
        assert_eq!(count(&db, "t").await, 3);
    });
}

#[test]
fn blank_sql_is_a_no_op() {
    on_all_runtimes(|| async {
        let db = mem().await;
        for blank in ["", "   ", ";", "-- just a comment", "/* c */ ;"] {
            let r = db.execute(blank, ()).await.unwrap();
            assert_eq!(r.changes, 0, "{blank:?}");
            assert!(db.fetch_all(blank, ()).await.unwrap().is_empty(), "{blank:?}");
            assert!(db.fetch_one(blank, ()).await.unwrap().is_none(), "{blank:?}");
            assert_eq!(db.fetch_scalar::<i64>(blank, ()).await.unwrap(), None, "{blank:?}");
            let mut cur = db.query(blank, ()).await.unwrap();
            assert!(cur.fetch_one().await.unwrap().is_none(), "{blank:?}");
        }
        assert_eq!(count(&db, "t").await, 0);
    });
}

#[test]
fn insert_returning_through_fetch_inserts() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db
            .fetch_one("INSERT INTO t(a, b) VALUES (?, ?) RETURNING id, b", params![1, "x"])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<i64>("id").unwrap(), 1);
        assert_eq!(row.get::<String>("b").unwrap(), "x");
        let id: Option<i64> = db
            .fetch_scalar("INSERT INTO t(a, b) VALUES (2, 'y') RETURNING id", ())
            .await
            .unwrap();
        assert_eq!(id, Some(2));
        // fetch_one of a multi-row INSERT ... RETURNING still inserts every row.
        let first = db
            .fetch_one(
                "INSERT INTO t(a, b) VALUES (3, 'p'), (4, 'q'), (5, 'r') RETURNING a",
                (),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.get::<i64>(0).unwrap(), 3);
        let rows = db
            .fetch_all("UPDATE t SET n = 1 WHERE a >= 3 RETURNING a", ())
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(count(&db, "t").await, 5);
        let n: Option<i64> = db.fetch_scalar("SELECT sum(n) FROM t", ()).await.unwrap();
        assert_eq!(n, Some(3));
        // DELETE ... RETURNING through fetch_scalar deletes all matching rows.
        let _ = db
            .fetch_scalar::<i64>("DELETE FROM t WHERE a >= 3 RETURNING a", ())
            .await
            .unwrap();
        assert_eq!(count(&db, "t").await, 2);
    });
}

#[test]
fn with_clause_statements_work_through_every_entry_point() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let r = db
            .execute("WITH v(x) AS (VALUES (1), (2)) INSERT INTO t(a) SELECT x FROM v", ())
            .await
            .unwrap();
        assert_eq!(r.changes, 2);
        let n: Option<i64> = db
            .fetch_scalar("WITH v(x) AS (SELECT a FROM t) SELECT sum(x) FROM v", ())
            .await
            .unwrap();
        assert_eq!(n, Some(3));
    });
}

#[test]
fn cached_statements_follow_schema_changes() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE s(a)", ()).await.unwrap();
        db.execute("INSERT INTO s VALUES (1)", ()).await.unwrap();
        let row = db.fetch_one("SELECT * FROM s", ()).await.unwrap().unwrap();
        assert_eq!(row.len(), 1);
        db.execute("ALTER TABLE s ADD COLUMN b DEFAULT 'bee'", ())
            .await
            .unwrap();
        // Same SQL text (a cached statement): the new column is there, with its name.
        let row = db.fetch_one("SELECT * FROM s", ()).await.unwrap().unwrap();
        assert_eq!(row.len(), 2);
        assert_eq!(row.get::<String>("b").unwrap(), "bee");
        let rows = db.fetch_all("SELECT * FROM s", ()).await.unwrap();
        assert_eq!(rows[0].get::<String>("b").unwrap(), "bee");
        let mut cur = db.query("SELECT * FROM s", ()).await.unwrap();
        assert_eq!(cur.columns().len(), 2);
        assert_eq!(cur.fetch_one().await.unwrap().unwrap().get::<String>(1).unwrap(), "bee");
        drop(cur);
        // Dropped and re-created with other columns.
        db.execute_script("DROP TABLE s; CREATE TABLE s(z, y, x); INSERT INTO s VALUES (1, 2, 3);")
            .await
            .unwrap();
        let row = db.fetch_one("SELECT * FROM s", ()).await.unwrap().unwrap();
        assert_eq!(row.column_names().collect::<Vec<_>>(), vec!["z", "y", "x"]);
        assert_eq!(row.get::<i64>("x").unwrap(), 3);
    });
}

#[test]
fn execute_script_error_names_only_the_failing_statement() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE a(x)", ()).await.unwrap();
        // Fails while stepping: reported as the statement alone (this part works).
        let err = db
            .execute_script("INSERT INTO a VALUES (1); INSERT INTO a VALUES (abs(-9223372036854775807 - 1)); SELECT 2;")
            .await
            .unwrap_err();
        assert_eq!(err.sql(), Some("INSERT INTO a VALUES (abs(-9223372036854775807 - 1));"));
        // Fails while preparing (unknown table): must be reported the same way.
        let err = db
            .execute_script("INSERT INTO a VALUES (1); INSERT INTO nope VALUES (1); INSERT INTO a VALUES (2);")
            .await
            .unwrap_err();
        assert_eq!(err.sql(), Some("INSERT INTO nope VALUES (1);"));
    });
}
