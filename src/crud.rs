//! Injection-safe CRUD helpers over any [`Executor`]: insert, upsert, update, delete, schema
//! introspection and atomic schema application.
//!
//! Table and column names come from your code or your data (struct fields, map keys), so
//! they are never pasted into SQL as given: each one is looked up in the live schema of the
//! database (case-insensitively, as SQLite does) and the statement is built from the name the
//! schema holds, double-quoted. A name the schema does not have — a typo, or an injection
//! attempt like `users; DROP TABLE users` — is [`Error::InvalidIdentifier`] and nothing is
//! written. Values always travel as bound parameters. The lookup and the statement run in one
//! command on the worker, against a per-connection cache of the schema that is refreshed
//! whenever SQLite's `schema_version` changes.
//!
//! ```
//! # futures::executor::block_on(async {
//! use aiolite::crud;
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct NewUser<'a> { name: &'a str, email: &'a str, score: Option<f64> }
//!
//! let db = aiolite::connect(":memory:").await?;
//! crud::apply_schema(&db, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT UNIQUE, score REAL);").await?;
//! let id = crud::insert(&db, "users", &NewUser { name: "Ann", email: "ann@example.com", score: None }).await?;
//! let same = crud::upsert(&db, "users", &NewUser { name: "Anne", email: "ann@example.com", score: Some(1.0) }, &["email"]).await?;
//! assert_eq!(id, same);
//! let n = crud::update(&db, "users", &serde_json::json!({"score": 2.5}), "id = ?", [id]).await?;
//! assert_eq!(n, 1);
//! let bad = crud::insert(&db, "users; DROP TABLE users", &serde_json::json!({})).await.unwrap_err();
//! assert!(matches!(bad, aiolite::Error::InvalidIdentifier { .. }));
//! assert_eq!(crud::delete(&db, "users", "id = ?", [id]).await?, 1);
//! # Ok::<(), aiolite::Error>(()) }).unwrap();
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::executor::{Executor, run_internal};
use crate::params::{ParamValues, Params};
use crate::sql::quote_ident;
use crate::value::Value;
use crate::worker::{ConnState, FetchKind, Reply};

/// A column as `PRAGMA table_info` describes it ([`table_info`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Position in the table, from 0.
    pub cid: i64,
    /// Column name.
    pub name: String,
    /// Declared type (may be empty).
    pub decl_type: String,
    /// `NOT NULL` constraint.
    pub notnull: bool,
    /// Default value expression as SQL text, if any.
    pub default: Option<String>,
    /// 0 when not part of the primary key, else its 1-based position in the key.
    pub pk: i64,
}

/// A table as the CRUD helpers know it.
#[derive(Debug)]
pub(crate) struct TableCols {
    /// The schema (`main`, `temp`, …) and name as SQLite spells them.
    schema: String,
    name: String,
    columns: Vec<String>,
}

impl TableCols {
    /// `"schema"."table"`.
    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The column as the schema spells it, quoted.
    fn column(&self, key: &str) -> Result<String> {
        self.columns
            .iter()
            .find(|c| c.as_str() == key)
            .or_else(|| self.columns.iter().find(|c| c.eq_ignore_ascii_case(key)))
            .map(|c| quote_ident(c))
            .ok_or_else(|| Error::InvalidIdentifier {
                identifier: key.to_owned(),
                reason: format!("table {:?} has no such column", self.name),
            })
    }
}

/// The per-connection cache of table schemas, valid for one `schema_version`.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache {
    version: Option<i64>,
    tables: HashMap<String, Arc<TableCols>>,
}

/// Reject what can never be a table or column name we look up.
pub(crate) fn check_identifier(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty name"
    } else if name.len() > 1024 {
        "name longer than 1024 bytes"
    } else if name.contains('\0') {
        "name contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidIdentifier {
        identifier: name.to_owned(),
        reason: reason.to_owned(),
    })
}

fn scalar(st: &mut ConnState, sql: &str, params: ParamValues) -> Result<Option<Value>> {
    match st.fetch(sql, &params, FetchKind::Scalar)? {
        Reply::Scalar(v) => Ok(v),
        _ => Ok(None),
    }
}

fn rows(st: &mut ConnState, sql: &str, params: ParamValues) -> Result<Vec<crate::Row>> {
    match st.fetch(sql, &params, FetchKind::All)? {
        Reply::Rows(r) => Ok(r),
        _ => Ok(Vec::new()),
    }
}

/// Look `table` up in the live schema (through the cache).
fn table(st: &mut ConnState, table: &str) -> Result<Arc<TableCols>> {
    check_identifier(table)?;
    let version = scalar(st, "PRAGMA schema_version", ParamValues::None)?.and_then(|v| v.as_i64());
    if st.schema.version != version {
        st.schema.tables.clear();
        st.schema.version = version;
    }
    let key = table.to_ascii_lowercase();
    if let Some(t) = st.schema.tables.get(&key) {
        return Ok(Arc::clone(t));
    }
    let found = rows(
        st,
        "SELECT schema, name FROM pragma_table_list WHERE name = ?1 COLLATE NOCASE AND type IN ('table', 'view') \
         ORDER BY schema = 'temp' DESC, schema = 'main' DESC LIMIT 1",
        [table].into_values(),
    )?;
    let Some(row) = found.first() else {
        return Err(Error::InvalidIdentifier {
            identifier: table.to_owned(),
            reason: "no such table".to_owned(),
        });
    };
    let schema: String = row.get(0)?;
    let name: String = row.get(1)?;
    if name.to_ascii_lowercase().starts_with("sqlite_") {
        return Err(Error::InvalidIdentifier {
            identifier: table.to_owned(),
            reason: "internal SQLite tables are not writable through the helpers".to_owned(),
        });
    }
    let columns = rows(
        st,
        "SELECT name FROM pragma_table_info(?1, ?2) ORDER BY cid",
        [name.as_str(), schema.as_str()].into_values(),
    )?
    .iter()
    .map(|r| r.get::<String>(0))
    .collect::<Result<Vec<_>>>()?;
    let t = Arc::new(TableCols { schema, name, columns });
    st.schema.tables.insert(key, Arc::clone(&t));
    Ok(t)
}

/// Serialize `data` (a struct or a map) into `(column, value)` pairs.
pub(crate) fn row_values<T: Serialize + ?Sized>(data: &T) -> Result<Vec<(String, Value)>> {
    data.serialize(ser::RowSerializer)
}

fn insert_sql(t: &TableCols, fields: &[(String, Value)]) -> Result<String> {
    if fields.is_empty() {
        return Ok(format!("INSERT INTO {} DEFAULT VALUES", t.qualified()));
    }
    let mut cols = String::new();
    let mut vals = String::new();
    for (i, (k, _)) in fields.iter().enumerate() {
        if i > 0 {
            cols.push_str(", ");
            vals.push_str(", ");
        }
        cols.push_str(&t.column(k)?);
        let _ = write!(vals, "?{}", i + 1);
    }
    Ok(format!("INSERT INTO {} ({cols}) VALUES ({vals})", t.qualified()))
}

fn positional(fields: Vec<(String, Value)>) -> ParamValues {
    ParamValues::Positional(fields.into_iter().map(|(_, v)| v).collect())
}

/// Insert one row; returns its rowid. `data` is any `serde::Serialize` struct or map
/// (column → value); `None` fields insert `NULL`; an empty struct or map inserts
/// `DEFAULT VALUES`.
///
/// # Failure
/// [`Error::InvalidIdentifier`] for a table or column the schema does not have (nothing is
/// written); [`Error::Serialize`] for data that is not a flat struct or map; SQLite's error
/// (e.g. a constraint violation).
pub async fn insert<E, T>(db: &E, table: &str, data: &T) -> Result<i64>
where
    E: Executor + ?Sized,
    T: Serialize + ?Sized,
{
    let fields = row_values(data)?;
    let name = table.to_owned();
    run_internal(db, true, move |st| {
        let t = self::table(st, &name)?;
        let sql = insert_sql(&t, &fields)?;
        Ok(st.execute(&sql, &positional(fields))?.last_insert_rowid)
    })
    .await
}

/// Insert many rows in one command and one transaction (all or nothing); returns the number
/// inserted. Rows may have different columns. Each row is its own statement execution, so
/// SQLite's limit on bound parameters per statement never applies to the batch.
///
/// # Failure
/// As [`insert`]; a failing row rolls back the whole batch.
pub async fn insert_many<E, T>(db: &E, table: &str, rows: &[T]) -> Result<u64>
where
    E: Executor + ?Sized,
    T: Serialize,
{
    let all = rows.iter().map(row_values).collect::<Result<Vec<_>>>()?;
    let name = table.to_owned();
    run_internal(db, true, move |st| {
        let t = self::table(st, &name)?;
        let mut sqls = Vec::with_capacity(all.len());
        for fields in &all {
            sqls.push(insert_sql(&t, fields)?);
        }
        st.atomically(|st| {
            let mut n = 0;
            for (sql, fields) in sqls.iter().zip(all) {
                n += st.execute(sql, &positional(fields))?.changes;
            }
            Ok(n)
        })
    })
    .await
}

/// Insert a row, or update the existing row that conflicts on `conflict` columns (`INSERT …
/// ON CONFLICT (…) DO UPDATE`); returns the row's rowid in both cases. The conflict columns
/// must have a UNIQUE or PRIMARY KEY constraint and appear in `data`.
///
/// # Failure
/// As [`insert`]; [`Error::InvalidArgument`] when `conflict` is empty or names a column
/// missing from `data`.
pub async fn upsert<E, T>(db: &E, table: &str, data: &T, conflict: &[&str]) -> Result<i64>
where
    E: Executor + ?Sized,
    T: Serialize + ?Sized,
{
    let fields = row_values(data)?;
    if conflict.is_empty() {
        return Err(Error::InvalidArgument {
            message: "upsert needs at least one conflict column".into(),
        });
    }
    for c in conflict {
        if !fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(c)) {
            return Err(Error::InvalidArgument {
                message: format!("conflict column {c:?} is not in the data"),
            });
        }
    }
    let conflict: Vec<String> = conflict.iter().map(|c| (*c).to_owned()).collect();
    let name = table.to_owned();
    run_internal(db, true, move |st| {
        let t = self::table(st, &name)?;
        let mut sql = insert_sql(&t, &fields)?;
        let keys = conflict.iter().map(|c| t.column(c)).collect::<Result<Vec<_>>>()?;
        let is_key = |k: &str| conflict.iter().any(|c| c.eq_ignore_ascii_case(k));
        let mut sets = fields
            .iter()
            .filter(|(k, _)| !is_key(k))
            .map(|(k, _)| t.column(k).map(|c| format!("{c} = excluded.{c}")))
            .collect::<Result<Vec<_>>>()?;
        if sets.is_empty() {
            // Nothing else to change: a no-op update still lets RETURNING report the row.
            sets.push(format!("{0} = excluded.{0}", keys[0]));
        }
        let _ = write!(
            sql,
            " ON CONFLICT ({}) DO UPDATE SET {} RETURNING rowid",
            keys.join(", "),
            sets.join(", ")
        );
        scalar(st, &sql, positional(fields))?
            .and_then(|v| v.as_i64())
            .ok_or_else(|| Error::NotFound {
                message: "upsert returned no row".into(),
            })
    })
    .await
}

fn check_where(filter: &str) -> Result<()> {
    if crate::sql::is_blank(filter) {
        Err(Error::InvalidArgument {
            message: "refusing an empty WHERE clause (it would touch every row); write `1 = 1` to mean it".into(),
        })
    } else {
        Ok(())
    }
}

/// Merge the SET values (numbered `?1…?n`) with the WHERE clause's parameters.
fn merge_params(set: Vec<Value>, filter: ParamValues) -> ParamValues {
    match filter {
        ParamValues::None => ParamValues::Positional(set.into_iter().collect()),
        ParamValues::Positional(more) => ParamValues::Positional(set.into_iter().chain(more).collect()),
        ParamValues::Named(more) => ParamValues::Named(
            set.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("?{}", i + 1).into(), v))
                .chain(more)
                .collect(),
        ),
    }
}

/// Update the rows matching `filter` (a WHERE clause you write, with its values in
/// `params`) with the columns of `data`; `None` fields set `NULL`. Returns the number of rows
/// changed. The SET values are bound as `?1…?n`, so write the WHERE clause's parameters as
/// `?` or by name.
///
/// # Failure
/// As [`insert`]; [`Error::InvalidArgument`] for an empty WHERE clause or empty `data`.
pub async fn update<E, T>(db: &E, table: &str, data: &T, filter: &str, params: impl Params) -> Result<u64>
where
    E: Executor + ?Sized,
    T: Serialize + ?Sized,
{
    check_where(filter)?;
    let fields = row_values(data)?;
    if fields.is_empty() {
        return Err(Error::InvalidArgument {
            message: "nothing to update: the data has no columns".into(),
        });
    }
    let params = params.into_values();
    let (name, filter) = (table.to_owned(), filter.to_owned());
    run_internal(db, true, move |st| {
        let t = self::table(st, &name)?;
        let mut sql = format!("UPDATE {} SET ", t.qualified());
        for (i, (k, _)) in fields.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "{} = ?{}", t.column(k)?, i + 1);
        }
        let _ = write!(sql, " WHERE {filter}");
        let values = fields.into_iter().map(|(_, v)| v).collect();
        Ok(st.execute(&sql, &merge_params(values, params))?.changes)
    })
    .await
}

/// Delete the rows matching `filter` (a WHERE clause you write, with its values in
/// `params`); returns the number deleted.
///
/// # Failure
/// [`Error::InvalidIdentifier`] for an unknown table; [`Error::InvalidArgument`] for an empty
/// WHERE clause; SQLite's error.
pub async fn delete<E>(db: &E, table: &str, filter: &str, params: impl Params) -> Result<u64>
where
    E: Executor + ?Sized,
{
    check_where(filter)?;
    let params = params.into_values();
    let (name, filter) = (table.to_owned(), filter.to_owned());
    run_internal(db, true, move |st| {
        let t = self::table(st, &name)?;
        let sql = format!("DELETE FROM {} WHERE {filter}", t.qualified());
        Ok(st.execute(&sql, &params)?.changes)
    })
    .await
}

/// `true` when a table named `name` exists (SQLite's case-insensitive name match).
///
/// # Failure
/// SQLite's error.
pub async fn table_exists<E: Executor + ?Sized>(db: &E, name: &str) -> Result<bool> {
    check_identifier(name)?;
    let hit: Option<i64> = db
        .fetch_scalar(
            "SELECT 1 FROM pragma_table_list WHERE name = ?1 COLLATE NOCASE AND type = 'table'",
            [name],
        )
        .await?;
    Ok(hit.is_some())
}

/// The columns of a table (`PRAGMA table_info`, queried with the name as a bound
/// parameter).
///
/// # Failure
/// [`Error::InvalidIdentifier`] when there is no such table; SQLite's error.
pub async fn table_info<E: Executor + ?Sized>(db: &E, name: &str) -> Result<Vec<ColumnInfo>> {
    check_identifier(name)?;
    let cols = db
        .fetch_all(
            "SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid",
            [name],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(ColumnInfo {
                cid: r.get(0)?,
                name: r.get(1)?,
                decl_type: r.get(2)?,
                notnull: r.get(3)?,
                default: r.get(4)?,
                pk: r.get(5)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if cols.is_empty() {
        return Err(Error::InvalidIdentifier {
            identifier: name.to_owned(),
            reason: "no such table".to_owned(),
        });
    }
    Ok(cols)
}

/// Apply a schema script atomically: all of it or none of it (in a transaction, or in a
/// savepoint when `db` is already inside one). SQLite's DDL is transactional, so a failing
/// `CREATE` half-way leaves no earlier table behind.
///
/// # Failure
/// The failing statement's error; nothing of the script remains.
pub async fn apply_schema<E: Executor + ?Sized>(db: &E, ddl: &str) -> Result<()> {
    let ddl = ddl.to_owned();
    run_internal(db, true, move |st| st.atomically(|st| st.script(&ddl))).await
}

mod ser {
    //! A serde serializer from a flat struct or map to `(column, value)` pairs.

    use serde::ser::{self, Impossible, Serialize};

    use crate::error::Error;
    use crate::value::Value;

    type Pairs = Vec<(String, Value)>;

    fn err(msg: impl std::fmt::Display) -> Error {
        Error::Serialize {
            message: msg.to_string(),
        }
    }

    impl ser::Error for Error {
        fn custom<T: std::fmt::Display>(msg: T) -> Self {
            err(msg)
        }
    }

    pub(crate) struct RowSerializer;

    macro_rules! not_a_row {
        ($($f:ident($($t:ty),*)),*) => {$(
            fn $f(self, $(_: $t),*) -> Result<Pairs, Error> {
                Err(err("row data must be a struct or a map of column names to values"))
            }
        )*};
    }

    impl ser::Serializer for RowSerializer {
        type Ok = Pairs;
        type Error = Error;
        type SerializeSeq = Impossible<Pairs, Error>;
        type SerializeTuple = Impossible<Pairs, Error>;
        type SerializeTupleStruct = Impossible<Pairs, Error>;
        type SerializeTupleVariant = Impossible<Pairs, Error>;
        type SerializeMap = MapSer;
        type SerializeStruct = MapSer;
        type SerializeStructVariant = Impossible<Pairs, Error>;

        not_a_row!(
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_char(char),
            serialize_str(&str),
            serialize_bytes(&[u8]),
            serialize_none(),
            serialize_unit(),
            serialize_unit_struct(&'static str),
            serialize_unit_variant(&'static str, u32, &'static str)
        );

        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Pairs, Error> {
            v.serialize(self)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<Pairs, Error> {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Pairs, Error> {
            Err(err("row data must be a struct or a map"))
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
            Err(err("row data must be a struct or a map, not a sequence"))
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
            Err(err("row data must be a struct or a map, not a tuple"))
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
            Err(err("row data must be a struct or a map, not a tuple struct"))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Error> {
            Err(err("row data must be a struct or a map"))
        }
        fn serialize_map(self, len: Option<usize>) -> Result<MapSer, Error> {
            Ok(MapSer {
                pairs: Vec::with_capacity(len.unwrap_or(0)),
                key: None,
            })
        }
        fn serialize_struct(self, _: &'static str, len: usize) -> Result<MapSer, Error> {
            Ok(MapSer {
                pairs: Vec::with_capacity(len),
                key: None,
            })
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Error> {
            Err(err("row data must be a struct or a map"))
        }
    }

    pub(crate) struct MapSer {
        pairs: Pairs,
        key: Option<String>,
    }

    impl MapSer {
        fn push(&mut self, key: String, value: Value) -> Result<(), Error> {
            if self.pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key)) {
                return Err(err(format!("column {key:?} given twice")));
            }
            self.pairs.push((key, value));
            Ok(())
        }
    }

    impl ser::SerializeMap for MapSer {
        type Ok = Pairs;
        type Error = Error;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
            match key.serialize(ValueSer)? {
                Value::Text(s) => {
                    self.key = Some(s);
                    Ok(())
                }
                other => Err(err(format!("column names must be strings, not {}", other.value_type()))),
            }
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
            let key = self.key.take().ok_or_else(|| err("value without a key"))?;
            let v = value.serialize(ValueSer)?;
            self.push(key, v)
        }
        fn end(self) -> Result<Pairs, Error> {
            Ok(self.pairs)
        }
    }

    impl ser::SerializeStruct for MapSer {
        type Ok = Pairs;
        type Error = Error;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
            let v = value.serialize(ValueSer)?;
            self.push(key.to_owned(), v)
        }
        fn end(self) -> Result<Pairs, Error> {
            Ok(self.pairs)
        }
    }

    /// One column value.
    pub(crate) struct ValueSer;

    fn nested() -> Error {
        err(
            "column values must be scalars (numbers, strings, bytes, booleans or null); serialize nested data to a string first",
        )
    }

    impl ser::Serializer for ValueSer {
        type Ok = Value;
        type Error = Error;
        type SerializeSeq = Impossible<Value, Error>;
        type SerializeTuple = Impossible<Value, Error>;
        type SerializeTupleStruct = Impossible<Value, Error>;
        type SerializeTupleVariant = Impossible<Value, Error>;
        type SerializeMap = Impossible<Value, Error>;
        type SerializeStruct = Impossible<Value, Error>;
        type SerializeStructVariant = Impossible<Value, Error>;

        fn serialize_bool(self, v: bool) -> Result<Value, Error> {
            Ok(Value::Integer(i64::from(v)))
        }
        fn serialize_i8(self, v: i8) -> Result<Value, Error> {
            Ok(Value::Integer(v.into()))
        }
        fn serialize_i16(self, v: i16) -> Result<Value, Error> {
            Ok(Value::Integer(v.into()))
        }
        fn serialize_i32(self, v: i32) -> Result<Value, Error> {
            Ok(Value::Integer(v.into()))
        }
        fn serialize_i64(self, v: i64) -> Result<Value, Error> {
            Ok(Value::Integer(v))
        }
        fn serialize_u8(self, v: u8) -> Result<Value, Error> {
            Ok(Value::Integer(v.into()))
        }
        fn serialize_u16(self, v: u16) -> Result<Value, Error> {
            Ok(Value::Integer(v.into()))
        }
        fn serialize_u32(self, v: u32) -> Result<Value, Error> {
            Ok(Value::Integer(v.into()))
        }
        fn serialize_u64(self, v: u64) -> Result<Value, Error> {
            i64::try_from(v)
                .map(Value::Integer)
                .map_err(|_| err(format!("integer {v} does not fit SQLite's 64-bit signed INTEGER")))
        }
        fn serialize_f32(self, v: f32) -> Result<Value, Error> {
            Ok(Value::Real(v.into()))
        }
        fn serialize_f64(self, v: f64) -> Result<Value, Error> {
            Ok(Value::Real(v))
        }
        fn serialize_char(self, v: char) -> Result<Value, Error> {
            Ok(Value::Text(v.to_string()))
        }
        fn serialize_str(self, v: &str) -> Result<Value, Error> {
            Ok(Value::Text(v.to_owned()))
        }
        fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
            Ok(Value::Blob(v.to_vec()))
        }
        fn serialize_none(self) -> Result<Value, Error> {
            Ok(Value::Null)
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, Error> {
            v.serialize(self)
        }
        fn serialize_unit(self) -> Result<Value, Error> {
            Ok(Value::Null)
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<Value, Error> {
            Ok(Value::Null)
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<Value, Error> {
            Ok(Value::Text(variant.to_owned()))
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<Value, Error> {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Value, Error> {
            Err(nested())
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
            Err(nested())
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
            Err(nested())
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
            Err(nested())
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Error> {
            Err(nested())
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
            Err(nested())
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
            Err(nested())
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Error> {
            Err(nested())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct U<'a> {
        name: &'a str,
        score: Option<f64>,
        active: bool,
        #[serde(with = "serde_bytes_like")]
        avatar: Vec<u8>,
    }

    mod serde_bytes_like {
        pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    #[test]
    fn rows_from_structs_and_maps() {
        let pairs = row_values(&U {
            name: "a",
            score: None,
            active: true,
            avatar: vec![1, 2],
        })
        .unwrap();
        assert_eq!(
            pairs,
            vec![
                ("name".to_owned(), Value::Text("a".into())),
                ("score".to_owned(), Value::Null),
                ("active".to_owned(), Value::Integer(1)),
                ("avatar".to_owned(), Value::Blob(vec![1, 2])),
            ]
        );
        let mut m = BTreeMap::new();
        m.insert("x", 1_u64);
        assert_eq!(row_values(&m).unwrap(), vec![("x".to_owned(), Value::Integer(1))]);
        assert!(matches!(row_values(&5), Err(Error::Serialize { .. })));
        assert!(matches!(row_values(&vec![1]), Err(Error::Serialize { .. })));
        let mut nested = BTreeMap::new();
        nested.insert("x", vec![1]);
        assert!(matches!(row_values(&nested), Err(Error::Serialize { .. })));
        let mut big = BTreeMap::new();
        big.insert("x", u64::MAX);
        assert!(matches!(row_values(&big), Err(Error::Serialize { .. })));
        let twice: BTreeMap<&str, i32> = [("a", 1), ("A", 2)].into_iter().collect();
        assert!(matches!(row_values(&twice), Err(Error::Serialize { .. })));
    }

    #[test]
    fn identifiers() {
        assert!(check_identifier("users").is_ok());
        assert!(check_identifier("weird \"name\"; --").is_ok());
        assert!(check_identifier("").is_err());
        assert!(check_identifier("a\0b").is_err());
        assert!(check_identifier(&"x".repeat(2000)).is_err());
    }
}
