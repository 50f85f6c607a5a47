//! The CRUD helpers: the seed's flow, injection safety, atomic schema, generic executors.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aiolite::crud::{self, ColumnInfo};
use aiolite::{ConnectOptions, Error, Executor, Pool, PoolOptions, Value, connect, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

const SCHEMA: &str = "
CREATE TABLE users (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    name  TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    score REAL NOT NULL DEFAULT 0,
    note  TEXT
);
CREATE TABLE tags (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (user_id, tag)
);
";

#[derive(Serialize)]
struct NewUser<'a> {
    name: &'a str,
    email: &'a str,
    score: f64,
}

#[derive(Deserialize, Debug, PartialEq)]
struct User {
    id: i64,
    name: String,
    email: String,
    score: f64,
    note: Option<String>,
}

async fn count(db: &impl Executor, table: &str) -> i64 {
    db.fetch_scalar(&format!("SELECT count(*) FROM {table}"), ())
        .await
        .unwrap()
        .unwrap()
}

/// The seed's flow through the helpers, on any executor.
async fn seed_flow(db: &impl Executor) {
    assert!(!crud::table_exists(db, "users").await.unwrap());
    crud::apply_schema(db, SCHEMA).await.unwrap();
    assert!(crud::table_exists(db, "users").await.unwrap());
    assert!(crud::table_exists(db, "USERS").await.unwrap());
    let info = crud::table_info(db, "users").await.unwrap();
    assert_eq!(
        info[0],
        ColumnInfo {
            cid: 0,
            name: "id".into(),
            decl_type: "INTEGER".into(),
            notnull: false,
            default: None,
            pk: 1
        }
    );
    assert_eq!(info[3].default.as_deref(), Some("0"));
    assert!(info[2].notnull);

    let ann = crud::insert(
        db,
        "users",
        &NewUser {
            name: "Ann",
            email: "ann@x",
            score: 90.0,
        },
    )
    .await
    .unwrap();
    let bob = crud::insert(db, "users", &json!({"name": "Bob", "email": "bob@x", "note": "hi"}))
        .await
        .unwrap();
    assert_eq!((ann, bob), (1, 2));
    let users: Vec<User> = db.fetch_all_as("SELECT * FROM users ORDER BY id", ()).await.unwrap();
    assert_eq!(users[1].note.as_deref(), Some("hi"));
    assert_eq!(users[1].score, 0.0);

    // Upsert: update path returns the existing id; insert path a new one.
    let same = crud::upsert(
        db,
        "users",
        &NewUser {
            name: "Ann B",
            email: "ann@x",
            score: 95.0,
        },
        &["email"],
    )
    .await
    .unwrap();
    assert_eq!(same, ann);
    let cy = crud::upsert(
        db,
        "users",
        &NewUser {
            name: "Cy",
            email: "cy@x",
            score: 1.0,
        },
        &["email"],
    )
    .await
    .unwrap();
    assert_ne!(cy, ann);
    let ann_row: User = db
        .fetch_one_as("SELECT * FROM users WHERE id = ?", [ann])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ann_row.name.as_str(), ann_row.score), ("Ann B", 95.0));

    // Batch insert.
    let batch: Vec<_> = (0..100)
        .map(|i| json!({"name": format!("u{i}"), "email": format!("u{i}@x")}))
        .collect();
    assert_eq!(crud::insert_many(db, "users", &batch).await.unwrap(), 100);
    assert_eq!(count(db, "users").await, 103);

    // Update: None sets NULL; WHERE params positional or named.
    let n = crud::update(db, "users", &json!({"note": null, "score": 7}), "id = ?", [bob])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let bob_row: User = db
        .fetch_one_as("SELECT * FROM users WHERE id = ?", [bob])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((bob_row.note, bob_row.score), (None, 7.0));
    let n = crud::update(
        db,
        "users",
        &json!({"score": 1}),
        "email LIKE :pattern",
        aiolite::named_params! {":pattern": "u1%"},
    )
    .await
    .unwrap();
    assert_eq!(n, 11);

    // Tags with a composite key, then delete with cascade.
    crud::insert(db, "tags", &json!({"user_id": ann, "tag": "admin"}))
        .await
        .unwrap();
    let dup = crud::insert(db, "tags", &json!({"user_id": ann, "tag": "admin"}))
        .await
        .unwrap_err();
    assert!(dup.is_unique_violation(), "{dup}");
    assert_eq!(crud::delete(db, "users", "email LIKE ?", ["u%"]).await.unwrap(), 100);
    assert_eq!(count(db, "users").await, 3);
}

#[test]
fn seed_flow_on_a_connection() {
    common::on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .recommended_pragmas()
            .open()
            .await
            .unwrap();
        seed_flow(&db).await;
    });
}

#[test]
fn seed_flow_in_a_transaction_and_rolled_back() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let tx = db.transaction().await.unwrap();
        seed_flow(&tx).await;
        tx.rollback().await.unwrap();
        assert!(!crud::table_exists(&db, "users").await.unwrap());
    });
}

#[test]
fn seed_flow_on_a_pool_and_its_guards() {
    common::on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let pool = Pool::open(
            ConnectOptions::new(&path).recommended_pragmas(),
            PoolOptions::default()
                .readers(2)
                .acquire_timeout(Duration::from_secs(10)),
        )
        .await
        .unwrap();
        seed_flow(&pool).await;
        let w = pool.writer().await.unwrap();
        crud::insert(&w, "users", &json!({"name": "W", "email": "w@x"}))
            .await
            .unwrap();
        drop(w);
        let r = pool.reader().await.unwrap();
        assert!(crud::table_exists(&r, "users").await.unwrap());
        assert_eq!(crud::table_info(&r, "tags").await.unwrap().len(), 2);
        drop(r);
        assert_eq!(count(&pool, "users").await, 4);
        pool.close().await.unwrap();
    });
}

#[test]
fn injection_attempts_are_refused_and_nothing_is_written() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        crud::apply_schema(&db, SCHEMA).await.unwrap();
        let before = db.total_changes();
        let good = json!({"name": "A", "email": "a@x"});
        let bad_tables = [
            "users; DROP TABLE users",
            "users\"; DROP TABLE users; --",
            "users --",
            "main.users",
            "\"users\"",
            "sqlite_schema",
            "sqlite_sequence",
            "",
            "users\0",
            "nope",
        ];
        for t in bad_tables {
            let e = crud::insert(&db, t, &good).await.unwrap_err();
            assert!(matches!(e, Error::InvalidIdentifier { .. }), "{t:?}: {e}");
            let e = crud::upsert(&db, t, &good, &["email"]).await.unwrap_err();
            assert!(matches!(e, Error::InvalidIdentifier { .. }), "{t:?}: {e}");
            let e = crud::update(&db, t, &good, "1 = 1", ()).await.unwrap_err();
            assert!(matches!(e, Error::InvalidIdentifier { .. }), "{t:?}: {e}");
            let e = crud::delete(&db, t, "1 = 1", ()).await.unwrap_err();
            assert!(matches!(e, Error::InvalidIdentifier { .. }), "{t:?}: {e}");
        }
        let bad_columns = [
            "name) VALUES ('x', 'y'); DROP TABLE users; --",
            "name\"",
            "\"name\"",
            "email = 'x' --",
            "rowid",
            "nope",
            "",
        ];
        for c in bad_columns {
            let mut data = BTreeMap::new();
            data.insert("email", Value::Text("z@x".into()));
            data.insert(c, Value::Text("evil".into()));
            let e = crud::insert(&db, "users", &data).await.unwrap_err();
            assert!(
                matches!(e, Error::InvalidIdentifier { .. } | Error::Serialize { .. }),
                "{c:?}: {e}"
            );
            let e = crud::update(&db, "users", &data, "id = ?", [1]).await.unwrap_err();
            assert!(
                matches!(e, Error::InvalidIdentifier { .. } | Error::Serialize { .. }),
                "{c:?}: {e}"
            );
            let e = crud::upsert(&db, "users", &data, &["email"]).await.unwrap_err();
            assert!(
                matches!(e, Error::InvalidIdentifier { .. } | Error::Serialize { .. }),
                "{c:?}: {e}"
            );
        }
        // Conflict columns: unknown, malformed, or not in the data.
        for k in ["email; DROP TABLE users", "nope", "\"email\""] {
            let e = crud::upsert(&db, "users", &good, &[k]).await.unwrap_err();
            assert!(
                matches!(e, Error::InvalidIdentifier { .. } | Error::InvalidArgument { .. }),
                "{k:?}: {e}"
            );
        }
        assert!(matches!(
            crud::upsert(&db, "users", &good, &[]).await,
            Err(Error::InvalidArgument { .. })
        ));
        // Empty WHERE clauses are refused; a WHERE with a second statement too.
        assert!(matches!(
            crud::delete(&db, "users", "  ", ()).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            crud::update(&db, "users", &good, "", ()).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            crud::delete(&db, "users", "1 = 1; DROP TABLE users", ()).await,
            Err(Error::MultipleStatements { .. })
        ));
        // Nothing was written, and both tables are still there.
        assert_eq!(db.total_changes(), before);
        assert_eq!(count(&db, "users").await, 0);
        assert!(crud::table_exists(&db, "users").await.unwrap());
        assert!(crud::table_exists(&db, "tags").await.unwrap());
        // Case-insensitive names resolve to the schema's spelling.
        crud::insert(&db, "USERS", &json!({"NAME": "A", "Email": "a@x"}))
            .await
            .unwrap();
        assert_eq!(count(&db, "users").await, 1);
    });
}

#[test]
fn apply_schema_is_all_or_nothing() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let broken = "CREATE TABLE a(x); CREATE TABLE b(y); CREATE TABLE a(z); CREATE TABLE c(w);";
        let e = crud::apply_schema(&db, broken).await.unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        for t in ["a", "b", "c"] {
            assert!(!crud::table_exists(&db, t).await.unwrap(), "{t} left behind");
        }
        assert!(!db.in_transaction());
        // Inside a transaction it uses a savepoint: the failure leaves the transaction usable.
        let tx = db.transaction().await.unwrap();
        tx.execute("CREATE TABLE kept(x)", ()).await.unwrap();
        assert!(crud::apply_schema(&tx, broken).await.is_err());
        crud::apply_schema(&tx, "CREATE TABLE d(x);").await.unwrap();
        tx.commit().await.unwrap();
        assert!(crud::table_exists(&db, "kept").await.unwrap());
        assert!(crud::table_exists(&db, "d").await.unwrap());
        assert!(!crud::table_exists(&db, "b").await.unwrap());
    });
}

#[test]
fn defaults_nulls_and_schema_changes() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        crud::apply_schema(
            &db,
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT DEFAULT 'dflt', b INTEGER)",
        )
        .await
        .unwrap();
        let id = crud::insert(&db, "t", &json!({})).await.unwrap();
        let row = db
            .fetch_one("SELECT a, b FROM t WHERE id = ?", [id])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row[0].clone(), row[1].clone()),
            (Value::Text("dflt".into()), Value::Null)
        );
        // The cached schema follows ALTER TABLE.
        assert!(crud::insert(&db, "t", &json!({"c": 1})).await.is_err());
        db.execute("ALTER TABLE t ADD COLUMN c INTEGER", ()).await.unwrap();
        crud::insert(&db, "t", &json!({"c": 1})).await.unwrap();
        db.execute("ALTER TABLE t DROP COLUMN c", ()).await.unwrap();
        assert!(matches!(
            crud::insert(&db, "t", &json!({"c": 1})).await,
            Err(Error::InvalidIdentifier { .. })
        ));
        // Nested or non-map data is refused before anything runs.
        assert!(matches!(
            crud::insert(&db, "t", &json!({"a": [1, 2]})).await,
            Err(Error::Serialize { .. })
        ));
        assert!(matches!(
            crud::insert(&db, "t", &json!([1, 2])).await,
            Err(Error::Serialize { .. })
        ));
        assert!(matches!(
            crud::update(&db, "t", &json!({}), "id = ?", [id]).await,
            Err(Error::InvalidArgument { .. })
        ));
    });
}

#[test]
fn bulk_insert_beyond_the_parameter_limit() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        crud::apply_schema(&db, "CREATE TABLE t(a INTEGER, b TEXT, c REAL)")
            .await
            .unwrap();
        // 40 000 rows x 3 columns = 120 000 values, far above SQLite's 32 766 per statement.
        let rows: Vec<_> = (0..40_000)
            .map(|i| json!({"a": i, "b": format!("r{i}"), "c": i as f64 / 2.0}))
            .collect();
        assert_eq!(crud::insert_many(&db, "t", &rows).await.unwrap(), 40_000);
        assert_eq!(count(&db, "t").await, 40_000);
        // A failing row rolls the whole batch back.
        crud::apply_schema(&db, "CREATE UNIQUE INDEX t_a ON t(a)")
            .await
            .unwrap();
        let clash = vec![json!({"a": -1}), json!({"a": -2}), json!({"a": 5})];
        assert!(
            crud::insert_many(&db, "t", &clash)
                .await
                .unwrap_err()
                .is_unique_violation()
        );
        assert_eq!(count(&db, "t").await, 40_000);
        let mixed = vec![json!({"a": -1}), json!({"b": "only b"})];
        assert_eq!(crud::insert_many(&db, "t", &mixed).await.unwrap(), 2);
    });
}

#[test]
fn upsert_with_only_key_columns_returns_the_row() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        crud::apply_schema(&db, "CREATE TABLE k(id INTEGER PRIMARY KEY, code TEXT UNIQUE)")
            .await
            .unwrap();
        let a = crud::upsert(&db, "k", &json!({"code": "x"}), &["code"]).await.unwrap();
        let b = crud::upsert(&db, "k", &json!({"code": "x"}), &["code"]).await.unwrap();
        assert_eq!(a, b);
        // A conflict target without a UNIQUE constraint is SQLite's error.
        crud::apply_schema(&db, "CREATE TABLE n(id INTEGER PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
        let e = crud::upsert(&db, "n", &json!({"v": "x"}), &["v"]).await.unwrap_err();
        assert!(matches!(e, Error::Sqlite { .. }), "{e}");
        let _ = params![1];
    });
}
