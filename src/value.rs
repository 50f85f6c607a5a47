//! Owned SQLite values and the conversions between them and Rust types.

use std::borrow::Cow;
use std::fmt;

use crate::error::{Error, Result};

/// An owned SQLite value: what crosses the boundary between the worker thread and callers.
///
/// ```
/// use aiolite::Value;
/// let v = Value::from("x");
/// assert_eq!(v.as_str(), Some("x"));
/// assert!(Value::Null.is_null());
/// assert_eq!(Value::from(Some(3_i32)), Value::Integer(3));
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// SQL `NULL`.
    #[default]
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit IEEE float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// The storage class of a [`Value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `NULL`
    Null,
    /// `INTEGER`
    Integer,
    /// `REAL`
    Real,
    /// `TEXT`
    Text,
    /// `BLOB`
    Blob,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Null => "NULL",
            ValueType::Integer => "INTEGER",
            ValueType::Real => "REAL",
            ValueType::Text => "TEXT",
            ValueType::Blob => "BLOB",
        })
    }
}

impl Value {
    /// The storage class.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Null => ValueType::Null,
            Value::Integer(_) => ValueType::Integer,
            Value::Real(_) => ValueType::Real,
            Value::Text(_) => ValueType::Text,
            Value::Blob(_) => ValueType::Blob,
        }
    }

    /// `true` for `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, for `INTEGER` values.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, for `REAL` and `INTEGER` values.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Real(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text, for `TEXT` values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, for `BLOB` values.
    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(b) => Some(b),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// SQL-literal-like rendering: `NULL`, `42`, `1.5`, `'it''s'`, `X'00FF'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Real(r) => write!(f, "{r:?}"),
            Value::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Value::Blob(b) => {
                f.write_str("X'")?;
                for byte in b {
                    write!(f, "{byte:02X}")?;
                }
                f.write_str("'")
            }
        }
    }
}

/// Conversion of a Rust value into a SQL parameter [`Value`].
///
/// Implemented for integers (`i8`…`i64`, `u8`…`u32`; `u64`/`usize` are not, as they may not
/// fit, so convert explicitly), `f32`/`f64`, `bool`, `str`/`String`, `[u8]`/`Vec<u8>`,
/// `Value`, `Option<T>` (`None` is `NULL`), `Cow`, `Box` and references to all of these.
pub trait ToValue {
    /// Convert, borrowing `self`.
    fn to_value(&self) -> Value;

    /// Convert, consuming `self` (moves strings and blobs instead of copying them).
    fn into_value(self) -> Value
    where
        Self: Sized,
    {
        self.to_value()
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue + ?Sized> ToValue for Box<T> {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
    fn into_value(self) -> Value {
        self
    }
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            #[inline]
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
        impl From<$t> for Value {
            #[inline]
            fn from(v: $t) -> Value {
                Value::Integer(i64::from(v))
            }
        }
    )*};
}
int_to_value!(i8, i16, i32, i64, u8, u16, u32, bool);

impl ToValue for f64 {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}
impl ToValue for f32 {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Real(f64::from(*self))
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Real(f64::from(v))
    }
}

impl ToValue for str {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl ToValue for Cow<'_, str> {
    fn to_value(&self) -> Value {
        Value::Text(self.as_ref().to_owned())
    }
    fn into_value(self) -> Value {
        Value::Text(self.into_owned())
    }
}

impl ToValue for [u8] {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
    fn into_value(self) -> Value {
        Value::Blob(self)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}

impl<T: ToValue> ToValue for Option<T> {
    #[inline]
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
    fn into_value(self) -> Value {
        match self {
            Some(v) => v.into_value(),
            None => Value::Null,
        }
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<()> for Value {
    fn from((): ()) -> Value {
        Value::Null
    }
}

/// Conversion of a column [`Value`] into a Rust type, used by [`Row::get`](crate::Row::get)
/// and [`fetch_scalar`](crate::Connection::fetch_scalar).
///
/// Conversions follow rusqlite's: integers from `INTEGER` (range-checked), floats from `REAL`
/// or `INTEGER`, `bool` from `INTEGER` (0 is false), `String` from `TEXT`, `Vec<u8>` from
/// `BLOB` or `TEXT`, `Option<T>` maps `NULL` to `None`, and [`Value`] takes anything.
pub trait FromValue: Sized {
    /// Convert. `column` names the column in errors.
    fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self>;

    /// Convert, consuming the value (avoids copying text and blobs).
    fn from_owned_value(value: Value, column: &dyn fmt::Display) -> Result<Self> {
        Self::from_value(&value, column)
    }
}

fn type_error(value: &Value, column: &dyn fmt::Display, expected: &'static str) -> Error {
    Error::ColumnType {
        column: column.to_string(),
        expected,
        found: value.value_type(),
    }
}

impl FromValue for Value {
    fn from_value(value: &Value, _: &dyn fmt::Display) -> Result<Self> {
        Ok(value.clone())
    }
    fn from_owned_value(value: Value, _: &dyn fmt::Display) -> Result<Self> {
        Ok(value)
    }
}

impl FromValue for i64 {
    #[inline]
    fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => Err(type_error(other, column, "i64")),
        }
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            #[inline]
            fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self> {
                match value {
                    Value::Integer(i) => <$t>::try_from(*i).map_err(|_| Error::OutOfRange {
                        column: column.to_string(),
                        value: *i,
                        expected: stringify!($t),
                    }),
                    other => Err(type_error(other, column, stringify!($t))),
                }
            }
        }
    )*};
}
int_from_value!(i8, i16, i32, u8, u16, u32, u64, usize, isize);

impl FromValue for f64 {
    #[inline]
    fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Real(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            other => Err(type_error(other, column, "f64")),
        }
    }
}
impl FromValue for f32 {
    fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self> {
        f64::from_value(value, column).map(|f| f as f32)
    }
}
impl FromValue for bool {
    fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Integer(i) => Ok(*i != 0),
            other => Err(type_error(other, column, "bool")),
        }
    }
}
impl FromValue for String {
    #[inline]
    fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(type_error(other, column, "String")),
        }
    }
    fn from_owned_value(value: Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(type_error(&other, column, "String")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(type_error(other, column, "Vec<u8>")),
        }
    }
    fn from_owned_value(value: Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Err(type_error(&other, column, "Vec<u8>")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    #[inline]
    fn from_value(value: &Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v, column).map(Some),
        }
    }
    fn from_owned_value(value: Value, column: &dyn fmt::Display) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            v => T::from_owned_value(v, column).map(Some),
        }
    }
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Real(f) => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
            Value::Blob(b) => s.serialize_bytes(b),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SQLite value (null, integer, float, string or bytes)")
            }
            fn visit_unit<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
                serde::Deserialize::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
                Ok(Value::Integer(i64::from(v)))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
                Ok(Value::Integer(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Value, E> {
                i64::try_from(v)
                    .map(Value::Integer)
                    .map_err(|_| E::custom(format!("integer {v} does not fit in i64")))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
                Ok(Value::Real(v))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
                Ok(Value::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
                Ok(Value::Text(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Value, E> {
                Ok(Value::Blob(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Value, E> {
                Ok(Value::Blob(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(5_u8.to_value(), Value::Integer(5));
        assert_eq!(true.to_value(), Value::Integer(1));
        assert_eq!("a".to_value(), Value::Text("a".into()));
        assert_eq!(None::<i32>.to_value(), Value::Null);
        assert_eq!([1_u8, 2][..].to_value(), Value::Blob(vec![1, 2]));
        assert_eq!(i64::from_value(&Value::Integer(7), &"c").unwrap(), 7);
        assert!(matches!(
            u8::from_value(&Value::Integer(300), &"c"),
            Err(Error::OutOfRange { value: 300, .. })
        ));
        assert!(matches!(
            i64::from_value(&Value::Text("x".into()), &"c"),
            Err(Error::ColumnType {
                found: ValueType::Text,
                ..
            })
        ));
        assert_eq!(Option::<i64>::from_value(&Value::Null, &"c").unwrap(), None);
        assert_eq!(f64::from_value(&Value::Integer(2), &"c").unwrap(), 2.0);
    }

    #[test]
    fn display_is_sql_literal() {
        assert_eq!(Value::Text("it's".into()).to_string(), "'it''s'");
        assert_eq!(Value::Blob(vec![0, 255]).to_string(), "X'00FF'");
        assert_eq!(Value::Real(1.0).to_string(), "1.0");
        assert_eq!(Value::Null.to_string(), "NULL");
    }
}
