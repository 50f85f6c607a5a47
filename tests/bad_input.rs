//! Every kind of bad input, one table: each is a typed error whose message names the problem,
//! nothing is half-applied, and the connection keeps working.

mod common;

use aiolite::{Error, ErrorCode, Value, crud, params};
use serde_json::json;

/// What a case must produce.
enum Want {
    Sqlite(ErrorCode),
    ParameterCount,
    ParameterName,
    MultipleStatements,
    ColumnType,
    ColumnNotFound,
    OutOfRange,
    InvalidIdentifier,
    InvalidArgument,
    Serialize,
    Closed,
}

fn check(case: &str, got: &Error, want: &Want, names: &str) {
    let ok = match want {
        Want::Sqlite(code) => got.sqlite_code() == Some(*code),
        Want::ParameterCount => matches!(got, Error::ParameterCount { .. }),
        Want::ParameterName => matches!(got, Error::ParameterName { .. }),
        Want::MultipleStatements => matches!(got, Error::MultipleStatements { .. }),
        Want::ColumnType => matches!(got, Error::ColumnType { .. }),
        Want::ColumnNotFound => matches!(got, Error::ColumnNotFound { .. }),
        Want::OutOfRange => matches!(got, Error::OutOfRange { .. }),
        Want::InvalidIdentifier => matches!(got, Error::InvalidIdentifier { .. }),
        Want::InvalidArgument => matches!(got, Error::InvalidArgument { .. }),
        Want::Serialize => matches!(got, Error::Serialize { .. }),
        Want::Closed => matches!(got, Error::Closed),
    };
    assert!(ok, "{case}: unexpected error {got:?}");
    let msg = got.to_string();
    assert!(
        msg.to_lowercase().contains(&names.to_lowercase()),
        "{case}: message {msg:?} does not name {names:?}"
    );
}

#[test]
fn every_kind_of_bad_input() {
    common::on_all_runtimes(|| async {
        let db = aiolite::ConnectOptions::new(":memory:")
            .recommended_pragmas()
            .open()
            .await
            .unwrap();
        db.execute_script(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE,
                                age INTEGER CHECK (age >= 0), team INTEGER REFERENCES teams(id));
             CREATE TABLE teams(id INTEGER PRIMARY KEY);
             INSERT INTO teams VALUES (1);
             INSERT INTO users(name, email, age, team) VALUES ('ann', 'a@x', 30, 1);",
        )
        .await
        .unwrap();
        let fingerprint = || async {
            let rows = db.fetch_all("SELECT * FROM users ORDER BY id", ()).await.unwrap();
            let schema: Vec<String> = db
                .fetch_all("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name", ())
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String>(0).unwrap())
                .collect();
            (format!("{rows:?}"), schema)
        };
        let before = fingerprint().await;

        type Case = (&'static str, Want, &'static str);
        let mut cases: Vec<(Case, Result<(), Error>)> = Vec::new();
        macro_rules! case {
            ($name:expr, $want:expr, $names:expr, $e:expr) => {
                cases.push((($name, $want, $names), $e.await.map(drop)));
            };
        }
        // SQL the parser rejects.
        case!(
            "syntax error",
            Want::Sqlite(ErrorCode::Error),
            "near \"VALUS\": syntax error",
            db.execute("INSERT INTO users VALUS (1)", ())
        );
        case!(
            "incomplete SQL",
            Want::Sqlite(ErrorCode::Error),
            "incomplete input",
            db.execute("INSERT INTO users VALUES (", ())
        );
        case!(
            "no such table",
            Want::Sqlite(ErrorCode::Error),
            "no such table: nope",
            db.fetch_all("SELECT * FROM nope", ())
        );
        case!(
            "no such column",
            Want::Sqlite(ErrorCode::Error),
            "no such column: nope",
            db.fetch_one("SELECT nope FROM users", ())
        );
        // Parameters.
        case!(
            "too few parameters",
            Want::ParameterCount,
            "takes 2, 1 given",
            db.execute("INSERT INTO users(name, email) VALUES (?, ?)", ["x"])
        );
        case!(
            "too many parameters",
            Want::ParameterCount,
            "takes 1, 3 given",
            db.fetch_all("SELECT ?", [1, 2, 3])
        );
        case!(
            "unknown named parameter",
            Want::ParameterName,
            ":bogus",
            db.fetch_all("SELECT :a", aiolite::named_params! {":a": 1, ":bogus": 2})
        );
        case!(
            "missing named parameter",
            Want::ParameterName,
            ":b",
            db.fetch_all("SELECT :a, :b", aiolite::named_params! {":a": 1})
        );
        // Two statements where one is expected (the first must not run either).
        case!(
            "two statements in execute",
            Want::MultipleStatements,
            "more than one",
            db.execute("INSERT INTO users(name) VALUES ('x'); DROP TABLE users", ())
        );
        case!(
            "two statements in fetch",
            Want::MultipleStatements,
            "execute_script",
            db.fetch_all("SELECT 1; SELECT 2", ())
        );
        case!(
            "two statements in query",
            Want::MultipleStatements,
            "more than one",
            db.query("SELECT 1; SELECT 2", ())
        );
        // Constraints.
        case!(
            "unique",
            Want::Sqlite(ErrorCode::Constraint),
            "UNIQUE constraint failed: users.email",
            db.execute("INSERT INTO users(name, email) VALUES ('b', 'a@x')", ())
        );
        case!(
            "not null",
            Want::Sqlite(ErrorCode::Constraint),
            "NOT NULL constraint failed: users.name",
            db.execute("INSERT INTO users(email) VALUES ('c@x')", ())
        );
        case!(
            "check",
            Want::Sqlite(ErrorCode::Constraint),
            "CHECK constraint failed",
            db.execute("INSERT INTO users(name, age) VALUES ('d', -1)", ())
        );
        case!(
            "foreign key",
            Want::Sqlite(ErrorCode::Constraint),
            "FOREIGN KEY constraint failed",
            db.execute("INSERT INTO users(name, team) VALUES ('e', 99)", ())
        );
        case!(
            "constraint inside execute_many rolls back with its transaction",
            Want::Sqlite(ErrorCode::Constraint),
            "UNIQUE",
            db.with_transaction(|tx| async move {
                tx.execute_many(
                    "INSERT INTO users(name, email) VALUES (?, ?)",
                    vec![params!["f", "f@x"], params!["g", "a@x"]],
                )
                .await
            })
        );
        // Type mismatches on `get`.
        let row = db
            .fetch_one("SELECT name, age, 300 AS big, NULL AS nul FROM users", ())
            .await
            .unwrap()
            .unwrap();
        cases.push((
            (
                "text into i64",
                Want::ColumnType,
                "\"name\": cannot convert TEXT to i64",
            ),
            row.get::<i64>("name").map(drop),
        ));
        cases.push((
            (
                "integer into String",
                Want::ColumnType,
                "\"age\": cannot convert INTEGER to String",
            ),
            row.get::<String>(1).map(drop),
        ));
        cases.push((
            ("NULL into i64", Want::ColumnType, "cannot convert NULL to i64"),
            row.get::<i64>("nul").map(drop),
        ));
        cases.push((
            ("300 into u8", Want::OutOfRange, "300 out of range for u8"),
            row.get::<u8>("big").map(drop),
        ));
        cases.push((
            ("unknown column name", Want::ColumnNotFound, "no such column: nope"),
            row.get::<i64>("nope").map(drop),
        ));
        cases.push((
            ("column index out of range", Want::ColumnNotFound, "no such column: 9"),
            row.get::<i64>(9).map(drop),
        ));
        // Invalid identifiers and data in the helpers.
        case!(
            "unknown table in insert",
            Want::InvalidIdentifier,
            "no such table",
            crud::insert(&db, "users; DROP TABLE users", &json!({"name": "x"}))
        );
        case!(
            "unknown column in insert",
            Want::InvalidIdentifier,
            "\"bogus\"",
            crud::insert(&db, "users", &json!({"name": "x", "bogus": 1}))
        );
        case!(
            "empty WHERE in delete",
            Want::InvalidArgument,
            "empty WHERE",
            crud::delete(&db, "users", "", ())
        );
        case!(
            "nested data in insert",
            Want::Serialize,
            "scalars",
            crud::insert(&db, "users", &json!({"name": ["x"]}))
        );
        // Oversized values: beyond SQLite's default SQLITE_MAX_LENGTH (1 000 000 000 bytes).
        let huge = "x".repeat(1_000_000_001);
        case!(
            "oversized text",
            Want::Sqlite(ErrorCode::TooBig),
            "too big",
            db.execute("INSERT INTO users(name) VALUES (?)", [huge.as_str()])
        );
        drop(huge);
        let huge_blob = vec![0_u8; 1_000_000_001];
        case!(
            "oversized blob",
            Want::Sqlite(ErrorCode::TooBig),
            "too big",
            db.execute("INSERT INTO users(name) VALUES (?)", [Value::Blob(huge_blob)])
        );
        case!(
            "oversized zeroblob",
            Want::Sqlite(ErrorCode::TooBig),
            "too big",
            db.fetch_all("SELECT zeroblob(2000000000)", ())
        );

        for ((name, want, names), result) in &cases {
            let err = result.as_ref().expect_err(name);
            check(name, err, want, names);
        }
        assert!(cases.len() >= 27);

        // Nothing was half-applied, and the connection works.
        assert_eq!(fingerprint().await, before);
        assert!(!db.in_transaction());
        db.execute("INSERT INTO users(name, email) VALUES ('ok', 'ok@x')", ())
            .await
            .unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM users", ()).await.unwrap(),
            Some(2)
        );

        // Use after close, on the connection and on its clones.
        let clone = db.clone();
        db.close().await.unwrap();
        for r in [
            clone.execute("SELECT 1", ()).await.map(drop),
            clone.fetch_all("SELECT 1", ()).await.map(drop),
            clone.transaction().await.map(drop),
            crud::insert(&clone, "users", &json!({"name": "z"})).await.map(drop),
        ] {
            check("use after close", &r.unwrap_err(), &Want::Closed, "closed");
        }
    });
}
