//! The CRUD helpers' identifier handling: any table name, column name and conflict column,
//! however hostile, either resolves to a real table and column of the schema or is refused
//! with a typed error — and never changes anything but the one row it was asked to write.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use aiolite::{Connection, Error, Value, crud};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;

const TABLES: [&str; 3] = ["users", "audit", "we\"ird name"];

fn db() -> &'static Connection {
    static DB: OnceLock<Connection> = OnceLock::new();
    DB.get_or_init(|| {
        block_on(async {
            let db = aiolite::connect(":memory:").await.unwrap();
            db.execute_script(
                "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT UNIQUE);
                 CREATE TABLE audit(x INTEGER);
                 CREATE TABLE \"we\"\"ird name\"(\"co;l\" TEXT);
                 INSERT INTO audit VALUES (42);",
            )
            .await
            .unwrap();
            db
        })
    })
}

fn schema_fingerprint(db: &Connection) -> Vec<String> {
    block_on(db.fetch_all("SELECT type || ':' || name FROM sqlite_schema ORDER BY 1", ()))
        .unwrap()
        .into_iter()
        .map(|r| r.get::<String>(0).unwrap())
        .collect()
}

fuzz_target!(|input: (String, String, String, u8)| {
    let (table, column, conflict, op) = input;
    let db = db();
    let before = schema_fingerprint(db);
    let total_before = db.total_changes();
    let mut data = BTreeMap::new();
    data.insert(column.clone(), Value::Integer(7));
    let r = block_on(async {
        match op % 4 {
            0 => crud::insert(db, &table, &data).await.map(|_| 1),
            1 => crud::upsert(db, &table, &data, &[conflict.as_str()]).await.map(|_| 1),
            2 => crud::update(db, &table, &data, "rowid = -1", ()).await,
            _ => crud::delete(db, &table, "rowid = -1", ()).await,
        }
    });
    let known_table = TABLES.iter().any(|t| t.eq_ignore_ascii_case(&table));
    match r {
        Ok(_) => assert!(known_table, "accepted unknown table {table:?}"),
        Err(Error::InvalidIdentifier { .. } | Error::InvalidArgument { .. } | Error::Serialize { .. }) => {}
        // A known table and column: SQLite may still refuse the row (constraints, conflicts).
        Err(Error::Sqlite { .. }) => assert!(known_table, "SQL ran for unknown table {table:?}"),
        Err(e) => panic!("unexpected error for {table:?}/{column:?}: {e}"),
    }
    assert_eq!(schema_fingerprint(db), before, "schema changed by {table:?}/{column:?}");
    assert!(db.total_changes() <= total_before + 1, "more than one row changed");
});
