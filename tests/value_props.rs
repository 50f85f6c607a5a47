//! Property tests: any `Value` round-trips through SQLite exactly.
//!
//! What was verified about floats (SQLite 3 bundled with rusqlite 0.43):
//! - `SELECT ?` returns every finite f64 bit for bit, **including -0.0** (the sign survives);
//!   so does storage in a column without affinity.
//! - A column with REAL affinity normalises -0.0 to +0.0 (SQLite stores integral reals as
//!   integers on disk); arithmetic does too (`-0.0 + 0` is +0.0, as IEEE says).
//! - NaN is bound as NULL (SQLite's `sqlite3_bind_double` turns NaN into NULL).
//! - ±infinity round-trip.

use aiolite::{Connection, Value};
use futures::executor::block_on;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const CASES: u32 = 64;

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        proptest::num::f64::ANY
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Real),
        any::<String>().prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Value::Blob),
    ]
}

/// Equality that compares floats bit for bit.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

fn open() -> Connection {
    block_on(async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE untyped(x)", ()).await.unwrap();
        db
    })
}

#[test]
fn any_value_round_trips_through_select() {
    let db = open();
    runner()
        .run(&value(), |v| {
            let got = block_on(db.fetch_scalar::<Value>("SELECT ?", [v.clone()]))
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .expect("one row");
            prop_assert!(same(&got, &v), "sent {:?}, got {:?}", v, got);
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_value_round_trips_through_an_untyped_column() {
    let db = open();
    runner()
        .run(&value(), |v| {
            let got = block_on(async {
                db.execute("DELETE FROM untyped", ()).await?;
                db.execute("INSERT INTO untyped VALUES (?)", [v.clone()]).await?;
                db.fetch_scalar::<Value>("SELECT x FROM untyped", ()).await
            })
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .expect("one row");
            prop_assert!(same(&got, &v), "stored {:?}, got {:?}", v, got);
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_row_of_values_round_trips_through_named_and_positional_params() {
    let db = open();
    runner()
        .run(&proptest::collection::vec(value(), 1..8), |vs| {
            let sql = format!(
                "SELECT {}",
                (1..=vs.len()).map(|i| format!(":p{i}")).collect::<Vec<_>>().join(", ")
            );
            let named: Vec<(String, Value)> = vs
                .iter()
                .enumerate()
                .map(|(i, v)| (format!(":p{}", i + 1), v.clone()))
                .collect();
            let by_name = block_on(db.fetch_one(&sql, named))
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .expect("one row")
                .into_values();
            let by_pos = block_on(db.fetch_one(&sql, vs.clone()))
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .expect("one row")
                .into_values();
            prop_assert_eq!(by_name.len(), vs.len());
            for ((a, b), v) in by_name.iter().zip(&by_pos).zip(&vs) {
                prop_assert!(same(a, v) && same(b, v), "{:?} / {:?} / {:?}", a, b, v);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn float_special_cases_as_verified() {
    let db = open();
    block_on(async {
        db.execute("CREATE TABLE r(x REAL)", ()).await.unwrap();
        let select = |v: f64| {
            let db = &db;
            async move { db.fetch_scalar::<Value>("SELECT ?", [v]).await.unwrap().unwrap() }
        };
        // -0.0 keeps its sign through a bound parameter...
        match select(-0.0).await {
            Value::Real(f) => assert!(f == 0.0 && f.is_sign_negative(), "{f:?}"),
            other => panic!("{other:?}"),
        }
        // ...and through a column without affinity...
        db.execute("INSERT INTO untyped VALUES (?)", [-0.0_f64]).await.unwrap();
        match db
            .fetch_scalar::<Value>("SELECT x FROM untyped", ())
            .await
            .unwrap()
            .unwrap()
        {
            Value::Real(f) => assert!(f.is_sign_negative(), "{f:?}"),
            other => panic!("{other:?}"),
        }
        // ...but a REAL column normalises it to +0.0 (SQLite's storage, not aiolite).
        db.execute("INSERT INTO r VALUES (?)", [-0.0_f64]).await.unwrap();
        match db.fetch_scalar::<Value>("SELECT x FROM r", ()).await.unwrap().unwrap() {
            Value::Real(f) => assert!(f == 0.0 && !f.is_sign_negative(), "{f:?}"),
            other => panic!("{other:?}"),
        }
        // NaN becomes NULL.
        assert_eq!(select(f64::NAN).await, Value::Null);
        assert_eq!(
            db.fetch_scalar::<Option<f64>>("SELECT ?", [f64::NAN]).await.unwrap(),
            Some(None)
        );
        // Infinities survive.
        assert_eq!(select(f64::INFINITY).await, Value::Real(f64::INFINITY));
        assert_eq!(select(f64::NEG_INFINITY).await, Value::Real(f64::NEG_INFINITY));
        // Integral reals stay REAL through SELECT ? and a REAL column.
        assert_eq!(select(3.0).await, Value::Real(3.0));
        db.execute("DELETE FROM r", ()).await.unwrap();
        db.execute("INSERT INTO r VALUES (?)", [3.0_f64]).await.unwrap();
        assert_eq!(
            db.fetch_scalar::<Value>("SELECT x FROM r", ()).await.unwrap(),
            Some(Value::Real(3.0))
        );
    });
}
