//! Parameter binding and value conversion: any list of values, bound positionally or by name,
//! comes back from `SELECT` exactly (floats bit for bit, NaN as NULL, as SQLite stores it),
//! and wrong counts or names are typed errors, never panics.
#![no_main]

use std::sync::OnceLock;

use aiolite::{Connection, Error, Value};
use futures::executor::block_on;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum V {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl V {
    fn value(&self) -> Value {
        match self {
            V::Null => Value::Null,
            V::Int(i) => Value::Integer(*i),
            V::Real(f) => Value::Real(*f),
            V::Text(s) => Value::Text(s.clone()),
            V::Blob(b) => Value::Blob(b.clone()),
        }
    }
}

fn db() -> &'static Connection {
    static DB: OnceLock<Connection> = OnceLock::new();
    DB.get_or_init(|| block_on(aiolite::connect(":memory:")).unwrap())
}

fuzz_target!(|input: (Vec<V>, bool, u8)| {
    let (vals, named, extra) = input;
    if vals.is_empty() || vals.len() > 100 {
        return;
    }
    let db = db();
    let values: Vec<Value> = vals.iter().map(V::value).collect();
    let holders: Vec<String> = (0..values.len())
        .map(|i| if named { format!(":p{i}") } else { "?".to_owned() })
        .collect();
    let sql = format!("SELECT {}", holders.join(", "));
    let result = if named {
        let mut pairs: Vec<(String, Value)> = values.iter().cloned().enumerate().map(|(i, v)| (format!(":p{i}"), v)).collect();
        if extra % 7 == 1 {
            pairs.push(("nope".into(), Value::Null));
        }
        block_on(db.fetch_one(&sql, pairs))
    } else {
        let mut list = values.clone();
        if extra % 7 == 1 {
            list.push(Value::Null);
        }
        block_on(db.fetch_one(&sql, list))
    };
    if extra % 7 == 1 {
        assert!(
            matches!(result, Err(Error::ParameterCount { .. } | Error::ParameterName { .. })),
            "{result:?}"
        );
        return;
    }
    let row = match result {
        Ok(Some(row)) => row,
        // Values beyond SQLite's length limit are refused as SQLITE_TOOBIG.
        Err(Error::Sqlite { .. }) => return,
        other => panic!("{other:?}"),
    };
    for (got, want) in row.values().iter().zip(&values) {
        match (got, want) {
            (Value::Real(a), Value::Real(b)) => assert_eq!(a.to_bits(), b.to_bits()),
            (Value::Null, Value::Real(b)) => assert!(b.is_nan()),
            _ => assert_eq!(got, want),
        }
    }
});
