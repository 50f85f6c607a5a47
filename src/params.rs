//! Statement parameters, positional and named, in one trait.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use smallvec::SmallVec;

use crate::value::{ToValue, Value};

/// The owned parameter list of one statement, as it crosses to the worker.
#[derive(Clone, Debug, Default, PartialEq)]
#[doc(hidden)]
pub enum ParamValues {
    /// No parameters.
    #[default]
    None,
    /// Bound by position, `?1`, `?2`, … (also `?`, `?NNN` and, in order, named ones).
    /// Two values inline: an `execute_many` holds one of these per row (80 bytes with two
    /// inline, 144 with four: 200 000 rows then took 29 MB instead of 16, and the bench's
    /// `insert_batch` measured 5–7% slower); a longer list costs one allocation per call.
    Positional(SmallVec<[Value; 2]>),
    /// Bound by name: `:name`, `@name` or `$name`. A name given without its prefix matches any
    /// of the three.
    Named(Vec<(Cow<'static, str>, Value)>),
}

mod sealed {
    pub trait Sealed {}
}

/// Anything that can be bound to a statement's parameters.
///
/// - nothing: `()`;
/// - positional: `params![1, "x"]`, tuples up to 16 elements (`(1, "x", 2.5)`), arrays
///   (`[1, 2, 3]`), slices (`&[1, 2][..]`, `&[&dyn ToValue]`), `Vec<T>` (`Vec<Value>` moves);
/// - named: `named_params! { ":id": 1, ":name": "x" }`, arrays / `Vec`s of `(name, value)`
///   pairs, `HashMap<String, T>` and `BTreeMap<String, T>`. Names are written with their
///   prefix (`:id`, `@id`, `$id`); a name without a prefix matches any of the three.
///
/// A wrong number of positional parameters is [`Error::ParameterCount`](crate::Error::ParameterCount);
/// an unknown or missing name is [`Error::ParameterName`](crate::Error::ParameterName).
/// The trait is sealed: its implementations are the list above.
pub trait Params: sealed::Sealed {
    /// Convert into owned values.
    #[doc(hidden)]
    fn into_values(self) -> ParamValues;
}

impl sealed::Sealed for () {}
impl Params for () {
    #[inline]
    fn into_values(self) -> ParamValues {
        ParamValues::None
    }
}

impl sealed::Sealed for ParamValues {}
impl Params for ParamValues {
    fn into_values(self) -> ParamValues {
        self
    }
}

impl<T: ToValue, const N: usize> sealed::Sealed for [T; N] {}
impl<T: ToValue, const N: usize> Params for [T; N] {
    #[inline]
    fn into_values(self) -> ParamValues {
        ParamValues::Positional(self.into_iter().map(ToValue::into_value).collect())
    }
}

impl<T: ToValue> sealed::Sealed for &[T] {}
impl<T: ToValue> Params for &[T] {
    fn into_values(self) -> ParamValues {
        ParamValues::Positional(self.iter().map(ToValue::to_value).collect())
    }
}

impl<T: ToValue> sealed::Sealed for &Vec<T> {}
impl<T: ToValue> Params for &Vec<T> {
    fn into_values(self) -> ParamValues {
        ParamValues::Positional(self.iter().map(ToValue::to_value).collect())
    }
}

impl<T: ToValue> sealed::Sealed for Vec<T> {}
impl<T: ToValue> Params for Vec<T> {
    fn into_values(self) -> ParamValues {
        ParamValues::Positional(self.into_iter().map(ToValue::into_value).collect())
    }
}

impl<T: ToValue, const N: usize> sealed::Sealed for [(&'static str, T); N] {}
impl<T: ToValue, const N: usize> Params for [(&'static str, T); N] {
    #[inline]
    fn into_values(self) -> ParamValues {
        ParamValues::Named(
            self.into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v.into_value()))
                .collect(),
        )
    }
}

impl<T: ToValue> sealed::Sealed for &[(&str, T)] {}
impl<T: ToValue> Params for &[(&str, T)] {
    fn into_values(self) -> ParamValues {
        ParamValues::Named(
            self.iter()
                .map(|(k, v)| (Cow::Owned((*k).to_owned()), v.to_value()))
                .collect(),
        )
    }
}

impl<T: ToValue> sealed::Sealed for Vec<(String, T)> {}
impl<T: ToValue> Params for Vec<(String, T)> {
    fn into_values(self) -> ParamValues {
        ParamValues::Named(self.into_iter().map(|(k, v)| (Cow::Owned(k), v.into_value())).collect())
    }
}

impl<T: ToValue> sealed::Sealed for Vec<(&'static str, T)> {}
impl<T: ToValue> Params for Vec<(&'static str, T)> {
    fn into_values(self) -> ParamValues {
        ParamValues::Named(
            self.into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v.into_value()))
                .collect(),
        )
    }
}

impl<T: ToValue, S> sealed::Sealed for HashMap<String, T, S> {}
impl<T: ToValue, S> Params for HashMap<String, T, S> {
    fn into_values(self) -> ParamValues {
        ParamValues::Named(self.into_iter().map(|(k, v)| (Cow::Owned(k), v.into_value())).collect())
    }
}

impl<T: ToValue> sealed::Sealed for BTreeMap<String, T> {}
impl<T: ToValue> Params for BTreeMap<String, T> {
    fn into_values(self) -> ParamValues {
        ParamValues::Named(self.into_iter().map(|(k, v)| (Cow::Owned(k), v.into_value())).collect())
    }
}

macro_rules! tuple_params {
    ($($name:ident)+) => {
        impl<$($name: ToValue),+> sealed::Sealed for ($($name,)+) {}
        impl<$($name: ToValue),+> Params for ($($name,)+) {
            #[inline]
            #[allow(non_snake_case)]
            fn into_values(self) -> ParamValues {
                let ($($name,)+) = self;
                ParamValues::Positional(smallvec::smallvec![$($name.into_value()),+])
            }
        }
    };
}
tuple_params!(A);
tuple_params!(A B);
tuple_params!(A B C);
tuple_params!(A B C D);
tuple_params!(A B C D E);
tuple_params!(A B C D E F);
tuple_params!(A B C D E F G);
tuple_params!(A B C D E F G H);
tuple_params!(A B C D E F G H I);
tuple_params!(A B C D E F G H I J);
tuple_params!(A B C D E F G H I J K);
tuple_params!(A B C D E F G H I J K L);
tuple_params!(A B C D E F G H I J K L M);
tuple_params!(A B C D E F G H I J K L M N);
tuple_params!(A B C D E F G H I J K L M N O);
tuple_params!(A B C D E F G H I J K L M N O P);

/// Positional parameters of mixed types, converted to owned [`Value`](crate::Value)s.
///
/// The arguments are borrowed (like rusqlite's `params!`), so variables stay usable.
///
/// ```
/// # futures::executor::block_on(async {
/// use aiolite::params;
/// let db = aiolite::connect(":memory:").await?;
/// db.execute("CREATE TABLE t(a INTEGER, b TEXT)", ()).await?;
/// let name = String::from("x");
/// db.execute("INSERT INTO t VALUES (?, ?)", params![1, name]).await?;
/// assert_eq!(name, "x");
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
#[macro_export]
macro_rules! params {
    () => {
        ()
    };
    ($($value:expr),+ $(,)?) => {
        [$($crate::ToValue::to_value(&$value)),+]
    };
}

/// Named parameters of mixed types: `named_params! { ":id": 1, ":name": "x" }`.
///
/// Keys are string literals including their prefix (`:`, `@` or `$`); values are borrowed and
/// converted to owned [`Value`](crate::Value)s.
///
/// ```
/// # futures::executor::block_on(async {
/// use aiolite::named_params;
/// let db = aiolite::connect(":memory:").await?;
/// let n: Option<i64> = db
///     .fetch_scalar("SELECT :a + @b", named_params! { ":a": 1, "@b": 2 })
///     .await?;
/// assert_eq!(n, Some(3));
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
#[macro_export]
macro_rules! named_params {
    () => {
        ()
    };
    ($($name:literal : $value:expr),+ $(,)?) => {
        [$(($name, $crate::ToValue::to_value(&$value))),+]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_list_stays_small() {
        // One per row of an `execute_many`: see `ParamValues::Positional`.
        assert_eq!(std::mem::size_of::<ParamValues>(), 80);
        let p = ("a", 2.5).into_values();
        assert!(matches!(&p, ParamValues::Positional(v) if !v.spilled()));
    }

    #[test]
    fn shapes() {
        assert_eq!(().into_values(), ParamValues::None);
        let p = (1, "a", 2.5, None::<i32>).into_values();
        assert_eq!(
            p,
            ParamValues::Positional(smallvec::smallvec![
                Value::Integer(1),
                Value::Text("a".into()),
                Value::Real(2.5),
                Value::Null
            ])
        );
        let name = String::from("n");
        let p = crate::params![1, name].into_values();
        assert!(matches!(p, ParamValues::Positional(v) if v.len() == 2));
        assert_eq!(name, "n");
        let p = crate::named_params! {":a": 1, "@b": "x"}.into_values();
        match p {
            ParamValues::Named(v) => {
                assert_eq!(v[0].0, ":a");
                assert_eq!(v[1].1, Value::Text("x".into()));
            }
            other => panic!("{other:?}"),
        }
        let dynamic: &[&dyn ToValue] = &[&1, &"x"];
        assert!(matches!(dynamic.into_values(), ParamValues::Positional(v) if v.len() == 2));
        assert!(matches!(vec![Value::Null].into_values(), ParamValues::Positional(v) if v.len() == 1));
    }
}
