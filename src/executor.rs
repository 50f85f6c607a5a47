//! `Executor`: the statement API as a trait, so code can be written once for connections,
//! transactions, savepoints, pools and pooled connections.

use std::any::Any;
use std::future::Future;

use serde::de::DeserializeOwned;

use crate::connection::Connection;
use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::params::Params;
use crate::pool::{Pool, PoolConnection};
use crate::reply::unexpected;
use crate::row::Row;
use crate::transaction::{Savepoint, Transaction};
use crate::value::FromValue;
use crate::worker::{ConnState, ExecResult, Op, Reply};

pub(crate) mod sealed {
    use super::{Future, Result};

    /// A command run on the worker with the connection state (crate-internal).
    pub struct Internal(pub(crate) crate::worker::StateFn);

    impl std::fmt::Debug for Internal {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Internal")
        }
    }

    /// Sealed: `Executor` is implemented by aiolite's handle types only.
    pub trait Sealed {
        /// Run an internal command: on the writer when `write`, else anywhere.
        fn run_internal(
            &self,
            write: bool,
            job: Internal,
        ) -> impl Future<Output = Result<Box<dyn std::any::Any + Send>>> + Send;
    }
}

/// The statement API (`execute`, `fetch_*`, `query`, …) of [`Connection`], [`Transaction`],
/// [`Savepoint`], [`Pool`] and [`PoolConnection`], as a trait.
///
/// Each type also has the same methods as inherent methods, so this trait is only needed to
/// write code generic over them — the CRUD helpers of [`crud`](crate::crud) and the
/// [`Migrator`](crate::migrate::Migrator) are written this way:
///
/// ```
/// # futures::executor::block_on(async {
/// use aiolite::Executor;
///
/// async fn count_users(db: &impl Executor) -> aiolite::Result<i64> {
///     Ok(db.fetch_scalar("SELECT count(*) FROM users", ()).await?.unwrap_or(0))
/// }
///
/// let db = aiolite::connect(":memory:").await?;
/// db.execute("CREATE TABLE users(id INTEGER PRIMARY KEY)", ()).await?;
/// assert_eq!(count_users(&db).await?, 0);
/// let tx = db.transaction().await?;
/// tx.execute("INSERT INTO users DEFAULT VALUES", ()).await?;
/// assert_eq!(count_users(&tx).await?, 1);
/// # Ok::<(), aiolite::Error>(()) }).unwrap();
/// ```
///
/// The trait is sealed.
pub trait Executor: sealed::Sealed + Send + Sync {
    /// See [`Connection::execute`].
    fn execute<'a>(&'a self, sql: &'a str, params: impl Params)
    -> impl Future<Output = Result<ExecResult>> + Send + 'a;
    /// See [`Connection::execute_insert`].
    fn execute_insert<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<i64>>> + Send + 'a;
    /// See [`Connection::execute_many`].
    fn execute_many<'a, I>(&'a self, sql: &'a str, rows: I) -> impl Future<Output = Result<u64>> + Send + 'a
    where
        I: IntoIterator,
        I::Item: Params;
    /// See [`Connection::execute_script`].
    fn execute_script<'a>(&'a self, sql: &'a str) -> impl Future<Output = Result<()>> + Send + 'a;
    /// See [`Connection::fetch_all`].
    fn fetch_all<'a>(&'a self, sql: &'a str, params: impl Params)
    -> impl Future<Output = Result<Vec<Row>>> + Send + 'a;
    /// See [`Connection::fetch_one`].
    fn fetch_one<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<Row>>> + Send + 'a;
    // The result types of the generic fetches are `'static` (owned rows): a `T: 'a` bound
    // would make futures of helpers generic over `Executor` unprovably `Send` in contexts such
    // as axum handlers (rustc issue #100013).
    /// See [`Connection::fetch_scalar`].
    fn fetch_scalar<'a, T: FromValue + Send + 'static>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<T>>> + Send + 'a;
    /// See [`Connection::fetch_all_as`].
    fn fetch_all_as<'a, T: DeserializeOwned + Send + 'static>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<T>>> + Send + 'a;
    /// See [`Connection::fetch_one_as`].
    fn fetch_one_as<'a, T: DeserializeOwned + Send + 'static>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<T>>> + Send + 'a;
    /// See [`Connection::query`].
    fn query<'a>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Cursor>> + Send + 'a;
}

macro_rules! delegate_executor {
    ($($ty:ty),*) => {$(
        impl Executor for $ty {
            fn execute<'a>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<ExecResult>> + Send + 'a {
                <$ty>::execute(self, sql, params)
            }
            fn execute_insert<'a>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Option<i64>>> + Send + 'a {
                <$ty>::execute_insert(self, sql, params)
            }
            fn execute_many<'a, I>(&'a self, sql: &'a str, rows: I) -> impl Future<Output = Result<u64>> + Send + 'a
            where
                I: IntoIterator,
                I::Item: Params,
            {
                <$ty>::execute_many(self, sql, rows)
            }
            fn execute_script<'a>(&'a self, sql: &'a str) -> impl Future<Output = Result<()>> + Send + 'a {
                <$ty>::execute_script(self, sql)
            }
            fn fetch_all<'a>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Vec<Row>>> + Send + 'a {
                <$ty>::fetch_all(self, sql, params)
            }
            fn fetch_one<'a>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Option<Row>>> + Send + 'a {
                <$ty>::fetch_one(self, sql, params)
            }
            fn fetch_scalar<'a, T: FromValue + Send + 'static>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Option<T>>> + Send + 'a {
                <$ty>::fetch_scalar(self, sql, params)
            }
            fn fetch_all_as<'a, T: DeserializeOwned + Send + 'static>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Vec<T>>> + Send + 'a {
                <$ty>::fetch_all_as(self, sql, params)
            }
            fn fetch_one_as<'a, T: DeserializeOwned + Send + 'static>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Option<T>>> + Send + 'a {
                <$ty>::fetch_one_as(self, sql, params)
            }
            fn query<'a>(&'a self, sql: &'a str, params: impl Params) -> impl Future<Output = Result<Cursor>> + Send + 'a {
                <$ty>::query(self, sql, params)
            }
        }
    )*};
}

delegate_executor!(Connection, Transaction, Savepoint<'_>, PoolConnection, Pool);

fn any_reply(r: Result<Reply>) -> Result<Box<dyn Any + Send>> {
    match r? {
        Reply::Any(b) => Ok(b),
        _ => Err(unexpected("internal")),
    }
}

macro_rules! sealed_via_target {
    ($($ty:ty),*) => {$(
        impl sealed::Sealed for $ty {
            fn run_internal(
                &self,
                _write: bool,
                job: sealed::Internal,
            ) -> impl Future<Output = Result<Box<dyn Any + Send>>> + Send {
                let target = self.target();
                async move { any_reply(target?.request(Op::Internal(job.0)).await) }
            }
        }
    )*};
}

sealed_via_target!(Connection, Transaction, Savepoint<'_>, PoolConnection);

impl sealed::Sealed for Pool {
    async fn run_internal(&self, write: bool, job: sealed::Internal) -> Result<Box<dyn Any + Send>> {
        let guard = if write {
            self.writer().await?
        } else {
            self.reader().await?
        };
        any_reply(guard.target()?.request(Op::Internal(job.0)).await)
    }
}

/// Run `f` on a worker of `db` with the connection state: on the writer when `write`.
pub(crate) async fn run_internal<E, R, F>(db: &E, write: bool, f: F) -> Result<R>
where
    E: Executor + ?Sized,
    R: Send + 'static,
    F: FnOnce(&mut ConnState) -> Result<R> + Send + 'static,
{
    let job = sealed::Internal(Box::new(move |st| f(st).map(|r| Box::new(r) as Box<dyn Any + Send>)));
    db.run_internal(write, job)
        .await?
        .downcast::<R>()
        .map(|b| *b)
        .map_err(|_| Error::Unsupported {
            message: "internal: unexpected reply type".into(),
        })
}
