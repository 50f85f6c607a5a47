//! Compile-time guarantees: handles are Send + Sync, futures are Send, public types are Debug.
//! A regression here is a compile error of this test binary.

use std::fmt::Debug;

use aiolite::raw::{Command, CursorChunk, Reply};
use aiolite::{
    Column, ConnectOptions, Connection, Cursor, Error, ErrorCode, ExecResult, Row, Savepoint, Transaction,
    TransactionBehavior, Value, ValueType,
};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send_val<T: Send>(_: &T) {}
fn assert_debug<T: Debug + ?Sized>() {}
fn assert_clone<T: Clone>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Connection>();
    assert_send_sync::<Transaction>();
    assert_send_sync::<Cursor>();
    assert_send_sync::<Row>();
    assert_send_sync::<Value>();
    assert_send_sync::<Error>();
    assert_send_sync::<ExecResult>();
    assert_send_sync::<ConnectOptions>();
    fn assert_send<T: Send>() {}
    assert_send::<Savepoint<'static>>();
    assert_clone::<Connection>();
    assert_clone::<Value>();
    assert_clone::<Row>();
    fn value_is_partial_eq<T: PartialEq>() {}
    value_is_partial_eq::<Value>();
}

#[test]
fn public_types_are_debug() {
    assert_debug::<Connection>();
    assert_debug::<Transaction>();
    assert_debug::<Savepoint<'static>>();
    assert_debug::<Cursor>();
    assert_debug::<Row>();
    assert_debug::<Column>();
    assert_debug::<Value>();
    assert_debug::<ValueType>();
    assert_debug::<Error>();
    assert_debug::<ErrorCode>();
    assert_debug::<ExecResult>();
    assert_debug::<ConnectOptions>();
    assert_debug::<TransactionBehavior>();
    assert_debug::<Command>();
    assert_debug::<Reply>();
    assert_debug::<CursorChunk>();
}

#[test]
fn futures_are_send() {
    futures::executor::block_on(async {
        let db = aiolite::connect(":memory:").await.unwrap();
        assert_send_val(&aiolite::connect(":memory:"));
        assert_send_val(&ConnectOptions::new(":memory:").open());
        // Created and dropped without being polled: only their types matter.
        assert_send_val(&db.execute("SELECT 1", ()));
        assert_send_val(&db.execute_insert("SELECT 1", aiolite::params![1, "x"]));
        assert_send_val(&db.execute_many("SELECT ?", vec![[1], [2]]));
        assert_send_val(&db.execute_script("SELECT 1;"));
        assert_send_val(&db.fetch_all("SELECT 1", ()));
        assert_send_val(&db.fetch_one("SELECT 1", ()));
        assert_send_val(&db.fetch_scalar::<i64>("SELECT 1", ()));
        assert_send_val(&db.fetch_all_as::<(i64,)>("SELECT 1", ()));
        assert_send_val(&db.fetch_one_as::<(i64,)>("SELECT 1", ()));
        assert_send_val(&db.query("SELECT 1", ()));
        assert_send_val(&db.call(|c| {
            c.is_autocommit()
                .then_some(1)
                .ok_or(aiolite::rusqlite::Error::InvalidQuery)
        }));
        assert_send_val(&db.transaction());
        assert_send_val(&db.transaction_with(TransactionBehavior::Immediate));
        assert_send_val(&db.with_transaction(|tx| async move {
            tx.execute("SELECT 1", ()).await?;
            Ok::<_, Error>(())
        }));
        assert_send_val(&db.commit());
        assert_send_val(&db.rollback());
        assert_send_val(&db.close());

        let mut tx = db.transaction().await.unwrap();
        assert_send_val(&tx.execute("SELECT 1", ()));
        assert_send_val(&tx.query("SELECT 1", ()));
        {
            let sp_fut = tx.savepoint();
            assert_send_val(&sp_fut);
        }
        {
            let sp = tx.savepoint().await.unwrap();
            assert_send_val(&sp.execute("SELECT 1", ()));
            sp.rollback().await.unwrap();
        }
        assert_send_val(&tx.fetch_all("SELECT 1", ()));
        tx.rollback().await.unwrap();

        let mut cur = db.query("SELECT 1", ()).await.unwrap();
        assert_send_val(&cur.fetch_one());
        assert_send_val(&cur.fetch_many(2));
        assert_send_val(&cur.fetch_all());
    });
}

#[test]
fn futures_can_be_spawned_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = aiolite::connect(":memory:").await.unwrap();
        let d = db.clone();
        let n = tokio::spawn(async move {
            d.execute("CREATE TABLE t(x)", ()).await?;
            d.with_transaction(|tx| async move {
                tx.execute("INSERT INTO t VALUES (1)", ()).await?;
                let mut cur = tx.query("SELECT x FROM t", ()).await?;
                let rows = cur.fetch_all().await?;
                Ok::<_, Error>(rows.len())
            })
            .await
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(n, 1);
    });
}
