//! Result rows: owned values with shared column metadata.

use std::fmt;
use std::ops::Index;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::value::{FromValue, Value};

/// A result column: its name and declared type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub(crate) name: String,
    pub(crate) decl_type: Option<String>,
}

impl Column {
    /// The column's name (`AS` alias, or as SQLite names it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared type of the table column behind it (`INTEGER`, `TEXT`, …), `None` for
    /// expressions.
    pub fn decl_type(&self) -> Option<&str> {
        self.decl_type.as_deref()
    }
}

/// The columns of a result, shared by all its rows (a thin pointer: 8 bytes per row, not 16).
pub(crate) type Columns = Arc<Vec<Column>>;

/// A row of a result: owned values plus the (shared) column metadata.
///
/// Access by position or by column name (names are matched ASCII-case-insensitively, as
/// Python's `sqlite3.Row` does):
///
/// ```
/// # futures::executor::block_on(async {
/// let db = aiolite::connect(":memory:").await?;
/// let row = db.fetch_one("SELECT 1 AS id, 'ann' AS name", ()).await?.unwrap();
/// let id: i64 = row.get(0)?;
/// let name: String = row.get("NAME")?;
/// assert_eq!((id, name.as_str()), (1, "ann"));
/// assert_eq!(row["id"], aiolite::Value::Integer(1));
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
///
/// `Row` serializes (serde) as a map from column name to value, so it can go straight into JSON.
#[derive(Clone, PartialEq)]
pub struct Row {
    columns: Columns,
    values: RowValues,
}

/// A row's values: up to three columns inline, without an allocation of their own. With the
/// thin column pointer a `Row` is 112 bytes (a unit test holds it there): a larger inline size
/// costs more in page faults and copies for big results than it saves in allocations, and
/// 200 000 three-column rows then fit under glibc's 32 MiB mmap threshold, so a repeated big
/// `fetch_all` reuses heap memory instead of faulting in fresh pages each time.
pub(crate) type RowValues = smallvec::SmallVec<[Value; 3]>;

impl Row {
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn new(columns: Columns, values: Box<[Value]>) -> Self {
        Row::from_values(columns, RowValues::from_vec(values.into_vec()))
    }

    pub(crate) fn from_values(columns: Columns, values: RowValues) -> Self {
        debug_assert_eq!(columns.len(), values.len());
        Row { columns, values }
    }

    /// Convert the value of a column, by index (`0`-based) or name.
    ///
    /// # Failure
    /// [`Error::ColumnNotFound`] when there is no such column; [`Error::ColumnType`] or
    /// [`Error::OutOfRange`] when the value does not convert.
    pub fn get<T: FromValue>(&self, index: impl RowIndex) -> Result<T> {
        let i = index.idx(self)?;
        T::from_value(&self.values[i], &ColumnLabel(&self.columns[i].name, i))
    }

    /// The value of a column, by index or name, without conversion.
    pub fn get_value(&self, index: impl RowIndex) -> Result<&Value> {
        let i = index.idx(self)?;
        Ok(&self.values[i])
    }

    /// Move a column's value out and convert it (no copy of text or blobs); the row keeps a
    /// `NULL` in its place.
    pub fn take<T: FromValue>(&mut self, index: impl RowIndex) -> Result<T> {
        let i = index.idx(self)?;
        let v = std::mem::take(&mut self.values[i]);
        T::from_owned_value(v, &ColumnLabel(&self.columns[i].name, i))
    }

    /// The columns (name and declared type).
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column names, in order.
    pub fn column_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// A row with no values yet, to be filled in place with [`push_value`](Row::push_value)
    /// (a big result is built straight in its vector, without moving each row through the
    /// stack).
    #[inline]
    pub(crate) fn empty(columns: Columns) -> Self {
        Row {
            columns,
            values: RowValues::new(),
        }
    }

    #[inline]
    pub(crate) fn push_value(&mut self, v: Value) {
        self.values.push(v);
    }

    /// Bytes this row holds, roughly (values plus text and blob contents).
    pub(crate) fn approx_size(&self) -> usize {
        self.values
            .iter()
            .map(|v| {
                std::mem::size_of::<Value>()
                    + match v {
                        Value::Text(t) => t.len(),
                        Value::Blob(b) => b.len(),
                        _ => 0,
                    }
            })
            .sum()
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Take the values, in column order.
    pub fn into_values(self) -> Vec<Value> {
        self.values.into_vec()
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// `true` if the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The index of a column name (exact match first, then ASCII-case-insensitive).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)))
    }

    /// Iterate over `(column name, value)` pairs.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.columns.iter().map(|c| c.name.as_str()).zip(self.values.iter())
    }
}

/// Column label for errors: its name, or its index when unnamed.
pub(crate) struct ColumnLabel<'a>(pub(crate) &'a str, pub(crate) usize);

impl fmt::Display for ColumnLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            write!(f, "{}", self.1)
        } else {
            f.write_str(self.0)
        }
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A column index: `usize` (position) or `&str` (name). Sealed.
pub trait RowIndex: sealed::Sealed {
    /// Resolve to a position in `row`.
    #[doc(hidden)]
    fn idx(&self, row: &Row) -> Result<usize>;
}

impl sealed::Sealed for usize {}
impl RowIndex for usize {
    #[inline]
    fn idx(&self, row: &Row) -> Result<usize> {
        if *self < row.len() {
            Ok(*self)
        } else {
            Err(Error::ColumnNotFound {
                column: self.to_string(),
            })
        }
    }
}

impl sealed::Sealed for &str {}
impl RowIndex for &str {
    #[inline]
    fn idx(&self, row: &Row) -> Result<usize> {
        row.column_index(self).ok_or_else(|| Error::ColumnNotFound {
            column: (*self).to_owned(),
        })
    }
}

impl sealed::Sealed for &String {}
impl RowIndex for &String {
    fn idx(&self, row: &Row) -> Result<usize> {
        self.as_str().idx(row)
    }
}

impl Index<usize> for Row {
    type Output = Value;
    /// # Panics
    /// When the index is out of range.
    fn index(&self, i: usize) -> &Value {
        &self.values[i]
    }
}

impl Index<&str> for Row {
    type Output = Value;
    /// # Panics
    /// When there is no column of that name.
    fn index(&self, name: &str) -> &Value {
        match self.column_index(name) {
            Some(i) => &self.values[i],
            None => panic!("no such column: {name:?}"),
        }
    }
}

impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size big results are made of (see `RowValues`): a regression here shows in the
    /// scan benchmarks as page faults.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn row_is_112_bytes() {
        assert_eq!(std::mem::size_of::<Value>(), 32);
        assert_eq!(std::mem::size_of::<Row>(), 112);
    }

    fn row() -> Row {
        let cols: Columns = vec![
            Column {
                name: "id".into(),
                decl_type: Some("INTEGER".into()),
            },
            Column {
                name: "Name".into(),
                decl_type: None,
            },
        ]
        .into();
        Row::new(cols, vec![Value::Integer(1), Value::Text("a".into())].into())
    }

    #[test]
    fn access() {
        let mut r = row();
        assert_eq!(r.get::<i64>(0).unwrap(), 1);
        assert_eq!(r.get::<String>("name").unwrap(), "a");
        assert_eq!(r.get::<String>("NAME").unwrap(), "a");
        assert!(matches!(r.get::<i64>(5), Err(Error::ColumnNotFound { .. })));
        assert!(matches!(r.get::<i64>("nope"), Err(Error::ColumnNotFound { .. })));
        let e = r.get::<i64>("name").unwrap_err();
        assert_eq!(e.to_string(), "column \"Name\": cannot convert TEXT to i64");
        assert_eq!(r["id"], Value::Integer(1));
        assert_eq!(r[1], Value::Text("a".into()));
        assert_eq!(r.take::<String>(1).unwrap(), "a");
        assert_eq!(r[1], Value::Null);
        assert_eq!(format!("{:?}", row()), r#"{"id": Integer(1), "Name": Text("a")}"#);
    }

    #[test]
    #[should_panic(expected = "no such column")]
    fn index_panics_on_unknown_name() {
        let _ = &row()["missing"];
    }
}
