//! User-defined SQL functions, aggregates and collations.

use std::cmp::Ordering;
use std::fmt;
use std::panic::AssertUnwindSafe;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::value::{ToValue, Value};

/// A user-defined aggregate function (`create_aggregate`), like Python's aggregate classes
/// with `step` and `finalize`.
///
/// ```
/// # futures::executor::block_on(async {
/// use aiolite::{Aggregate, Value};
/// struct Product;
/// impl Aggregate for Product {
///     type State = i64;
///     fn init(&self) -> i64 { 1 }
///     fn step(&self, acc: &mut i64, args: &[Value]) -> aiolite::Result<()> {
///         *acc *= args[0].as_i64().unwrap_or(1);
///         Ok(())
///     }
///     fn finalize(&self, acc: i64) -> aiolite::Result<Value> { Ok(Value::Integer(acc)) }
/// }
/// let db = aiolite::connect(":memory:").await?;
/// db.create_aggregate("product", 1, true, Product).await?;
/// let p: Option<i64> = db.fetch_scalar("SELECT product(x) FROM (SELECT 2 AS x UNION ALL SELECT 3 UNION ALL SELECT 7)", ()).await?;
/// assert_eq!(p, Some(42));
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
pub trait Aggregate: Send + 'static {
    /// The running state of one group.
    type State: Send + 'static;
    /// A fresh state, for each group (also for an empty input, before `finalize`).
    fn init(&self) -> Self::State;
    /// Add one row's arguments.
    ///
    /// # Failure
    /// An error fails the statement with its message.
    fn step(&self, state: &mut Self::State, args: &[Value]) -> Result<()>;
    /// The group's result.
    ///
    /// # Failure
    /// An error fails the statement with its message.
    fn finalize(&self, state: Self::State) -> Result<Value>;
}

/// A user error inside a function, reported to SQLite as the statement's error message.
#[derive(Debug)]
struct UserError(String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

fn user_error(e: &Error) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(UserError(e.to_string())))
}

fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn args_of(ctx: &Context<'_>) -> Vec<Value> {
    (0..ctx.len()).map(|i| value_of(ctx.get_raw(i))).collect()
}

/// A `Value` as rusqlite's function output.
struct Out(Value);

impl rusqlite::ToSql for Out {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as R;
        Ok(ToSqlOutput::Owned(match &self.0 {
            Value::Null => R::Null,
            Value::Integer(i) => R::Integer(*i),
            Value::Real(f) => R::Real(*f),
            Value::Text(s) => R::Text(s.clone()),
            Value::Blob(b) => R::Blob(b.clone()),
        }))
    }
}

fn flags(deterministic: bool) -> FunctionFlags {
    let mut f = FunctionFlags::SQLITE_UTF8;
    if deterministic {
        f |= FunctionFlags::SQLITE_DETERMINISTIC;
    }
    f
}

fn check_args(n_args: i32) -> Result<()> {
    if (-1..=127).contains(&n_args) {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            message: format!("a function takes -1 (any) to 127 arguments, not {n_args}"),
        })
    }
}

struct AggregateAdapter<A>(A);

impl<A: Aggregate> rusqlite::functions::Aggregate<AssertUnwindSafe<A::State>, Out> for AggregateAdapter<A> {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<AssertUnwindSafe<A::State>> {
        Ok(AssertUnwindSafe(self.0.init()))
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut AssertUnwindSafe<A::State>) -> rusqlite::Result<()> {
        self.0.step(&mut acc.0, &args_of(ctx)).map_err(|e| user_error(&e))
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<AssertUnwindSafe<A::State>>) -> rusqlite::Result<Out> {
        let state = acc.map_or_else(|| self.0.init(), |a| a.0);
        self.0.finalize(state).map(Out).map_err(|e| user_error(&e))
    }
}

impl Connection {
    /// Register a scalar SQL function `name` taking `n_args` arguments (`-1`: any number).
    /// `deterministic` lets SQLite use it in indexes and optimise repeated calls. An `Err` or
    /// a panic in `f` fails the statement that called it with an error naming it; the
    /// connection stays usable. Registering a name again replaces the function.
    ///
    /// `f` runs on the thread that steps the statement (the worker, or the caller for an
    /// inline read).
    ///
    /// # Failure
    /// [`Error::InvalidArgument`] for a bad argument count; SQLite's error.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// use aiolite::Value;
    /// let db = aiolite::connect(":memory:").await?;
    /// db.create_function("twice", 1, true, |args: &[Value]| Ok(Value::Integer(args[0].as_i64().unwrap_or(0) * 2)))
    ///     .await?;
    /// assert_eq!(db.fetch_scalar::<i64>("SELECT twice(21)", ()).await?, Some(42));
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn create_function<F, V>(&self, name: &str, n_args: i32, deterministic: bool, f: F) -> Result<()>
    where
        F: Fn(&[Value]) -> Result<V> + Send + Sync + 'static,
        V: ToValue,
    {
        check_args(n_args)?;
        let name = name.to_owned();
        self.with_state(move |st| {
            st.conn()
                .create_scalar_function(name.as_str(), n_args, flags(deterministic), move |ctx| {
                    f(&args_of(ctx))
                        .map(|v| Out(v.into_value()))
                        .map_err(|e| user_error(&e))
                })
                .map_err(Error::from_rusqlite)
        })
        .await
    }

    /// Remove a function registered with [`create_function`](Self::create_function) or
    /// [`create_aggregate`](Self::create_aggregate).
    ///
    /// # Failure
    /// SQLite's error.
    pub async fn remove_function(&self, name: &str, n_args: i32) -> Result<()> {
        check_args(n_args)?;
        let name = name.to_owned();
        self.with_state(move |st| {
            st.conn()
                .remove_function(name.as_str(), n_args)
                .map_err(Error::from_rusqlite)
        })
        .await
    }

    /// Register an aggregate SQL function (see [`Aggregate`]).
    ///
    /// # Failure
    /// [`Error::InvalidArgument`] for a bad argument count; SQLite's error.
    pub async fn create_aggregate<A: Aggregate>(
        &self,
        name: &str,
        n_args: i32,
        deterministic: bool,
        aggregate: A,
    ) -> Result<()> {
        check_args(n_args)?;
        let name = name.to_owned();
        self.with_state(move |st| {
            st.conn()
                .create_aggregate_function(name.as_str(), n_args, flags(deterministic), AggregateAdapter(aggregate))
                .map_err(Error::from_rusqlite)
        })
        .await
    }

    /// Register a collation: `ORDER BY x COLLATE name` compares with `compare`. A panic in it
    /// counts as "equal".
    ///
    /// # Failure
    /// SQLite's error.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// let db = aiolite::connect(":memory:").await?;
    /// db.create_collation("reverse", |a: &str, b: &str| b.cmp(a)).await?;
    /// let rows = db.fetch_all("SELECT x FROM (SELECT 'a' AS x UNION SELECT 'b') ORDER BY x COLLATE reverse", ()).await?;
    /// assert_eq!(rows[0].get::<String>(0)?, "b");
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn create_collation<F>(&self, name: &str, compare: F) -> Result<()>
    where
        F: Fn(&str, &str) -> Ordering + Send + 'static,
    {
        let name = name.to_owned();
        self.with_state(move |st| {
            st.conn()
                .create_collation(name.as_str(), compare)
                .map_err(Error::from_rusqlite)
        })
        .await
    }
}

#[cfg(feature = "load-extension")]
impl Connection {
    /// Allow (`true`) or forbid (`false`, the default) loading SQLite extensions, with
    /// [`load_extension`](Self::load_extension) or the `load_extension()` SQL function
    /// (cargo feature `load-extension`).
    ///
    /// # Failure
    /// SQLite's error; `Closed`.
    pub async fn enable_load_extension(&self, enabled: bool) -> Result<()> {
        self.with_state(move |st| {
            let conn = st.conn();
            let r = if enabled {
                // SAFETY: enabling only allows later loads; each load is itself `unsafe` in
                // our API (`load_extension`) or an explicit SQL call the user makes.
                unsafe { conn.load_extension_enable() }
            } else {
                conn.load_extension_disable()
            };
            r.map_err(Error::from_rusqlite)
        })
        .await
    }

    /// Load the SQLite extension at `path` (a shared library), with an optional entry point
    /// (cargo feature `load-extension`). Loading must have been enabled with
    /// [`enable_load_extension`](Self::enable_load_extension).
    ///
    /// # Safety
    /// The library is native code run inside this process with the connection's privileges:
    /// only load libraries you trust, built for this SQLite.
    ///
    /// # Failure
    /// SQLite's error (loading disabled, file not found, no entry point); `Closed`.
    pub async unsafe fn load_extension(
        &self,
        path: impl AsRef<std::path::Path>,
        entry_point: Option<&str>,
    ) -> Result<()> {
        let path = path.as_ref().to_path_buf();
        let entry = entry_point.map(str::to_owned);
        self.with_state(move |st| {
            // SAFETY: the caller vouches for the library (this fn's contract).
            unsafe { st.conn().load_extension(&path, entry.as_deref()) }.map_err(Error::from_rusqlite)
        })
        .await
    }
}
