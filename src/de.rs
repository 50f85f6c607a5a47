//! serde deserialization of rows (`fetch_all_as`, `fetch_one_as`).
//!
//! A row deserializes as a map from column name to value (into structs and maps, fields
//! matched by exact column name) or as a sequence of values (into tuples and `Vec`s). A value
//! deserializes as what it is (`NULL` → `None`/unit, `INTEGER` → any integer type or `bool`,
//! `REAL` → float, `TEXT` → string, char or unit enum variant, `BLOB` → bytes).

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, Result};
use crate::row::Row;
use crate::value::Value;

/// Deserialize one row into `T`.
pub(crate) fn from_row<T: DeserializeOwned>(row: Row) -> Result<T> {
    T::deserialize(RowDeserializer { row }).map_err(|e| Error::Deserialize { message: e.0 })
}

/// The serde error type used inside the deserializers.
#[derive(Debug)]
pub(crate) struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

struct RowDeserializer {
    row: Row,
}

impl<'de> de::Deserializer<'de> for RowDeserializer {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let names: Vec<String> = self.row.column_names().map(str::to_owned).collect();
        visitor.visit_map(RowMap {
            names: names.into_iter(),
            values: self.row.into_values().into_iter(),
            current: None,
            value: None,
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_seq(RowSeq {
            values: self.row.into_values().into_iter(),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct map struct enum identifier ignored_any
    }
}

struct RowMap {
    names: std::vec::IntoIter<String>,
    values: std::vec::IntoIter<Value>,
    current: Option<String>,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for RowMap {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match (self.names.next(), self.values.next()) {
            (Some(name), Some(value)) => {
                self.value = Some(value);
                let key = seed.deserialize(name.as_str().into_deserializer())?;
                self.current = Some(name);
                Ok(Some(key))
            }
            _ => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let value = self.value.take().unwrap_or(Value::Null);
        seed.deserialize(ValueDeserializer(value))
            .map_err(|e| DeError(format!("column {:?}: {}", self.current.as_deref().unwrap_or(""), e.0)))
    }
}

struct RowSeq {
    values: std::vec::IntoIter<Value>,
}

impl<'de> SeqAccess<'de> for RowSeq {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        self.values
            .next()
            .map(|v| seed.deserialize(ValueDeserializer(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.values.len())
    }
}

/// Deserializes one owned [`Value`].
pub(crate) struct ValueDeserializer(pub(crate) Value);

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Integer(i) => visitor.visit_i64(i),
            Value::Real(f) => visitor.visit_f64(f),
            Value::Text(s) => visitor.visit_string(s),
            Value::Blob(b) => visitor.visit_byte_buf(b),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Integer(i) => visitor.visit_bool(i != 0),
            other => Err(DeError(format!(
                "expected a boolean (INTEGER), found {}",
                other.value_type()
            ))),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Integer(i) => visitor.visit_f64(i as f64),
            other => ValueDeserializer(other).deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// A BLOB into a sequence (`Vec<u8>`, `[u8; N]`): its bytes.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Blob(b) => visitor.visit_seq(serde::de::value::SeqDeserializer::new(b.into_iter())),
            other => ValueDeserializer(other).deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Text(s) => visitor.visit_enum(s.into_deserializer()),
            other => Err(DeError(format!(
                "expected an enum variant name (TEXT), found {}",
                other.value_type()
            ))),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string
        bytes byte_buf unit unit_struct tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Column;
    use std::sync::Arc;

    fn row(values: Vec<Value>, names: &[&str]) -> Row {
        let cols: Vec<Column> = names
            .iter()
            .map(|n| Column {
                name: (*n).to_owned(),
                decl_type: None,
            })
            .collect();
        Row::new(Arc::from(cols), values.into_boxed_slice())
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    enum Kind {
        A,
        B,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct User {
        id: i64,
        name: String,
        score: Option<f64>,
        active: bool,
        kind: Kind,
    }

    #[test]
    fn structs_tuples_and_errors() {
        let r = row(
            vec![
                Value::Integer(1),
                Value::Text("ann".into()),
                Value::Integer(3),
                Value::Integer(1),
                Value::Text("B".into()),
            ],
            &["id", "name", "score", "active", "kind"],
        );
        let u: User = from_row(r.clone()).unwrap();
        assert_eq!(
            u,
            User {
                id: 1,
                name: "ann".into(),
                score: Some(3.0),
                active: true,
                kind: Kind::B
            }
        );
        let t: (i64, String) = from_row(row(vec![Value::Integer(2), Value::Text("x".into())], &["a", "b"])).unwrap();
        assert_eq!(t, (2, "x".into()));
        let bad = from_row::<User>(row(vec![Value::Text("x".into())], &["id"])).unwrap_err();
        assert!(bad.to_string().contains("column \"id\""), "{bad}");
        let missing = from_row::<User>(row(vec![Value::Integer(1)], &["id"])).unwrap_err();
        assert!(missing.to_string().contains("missing field"), "{missing}");
        let _ = Kind::A;
    }
}
