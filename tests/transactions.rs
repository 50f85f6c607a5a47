//! API.md §4: autocommit, implicit transactions, transaction guards, savepoints, exclusivity,
//! `with_transaction`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiolite::{ConnectOptions, Connection, Error, IsolationLevel, Transaction, TransactionBehavior};
use common::{NO_HANG, on_all_runtimes, temp_db, within, yield_now};
use futures::FutureExt;

async fn mem() -> Connection {
    let db = aiolite::connect(":memory:").await.unwrap();
    db.execute("CREATE TABLE t(x)", ()).await.unwrap();
    db
}

async fn xs(db: &Connection) -> Vec<String> {
    db.fetch_all("SELECT CAST(x AS TEXT) FROM t ORDER BY rowid", ())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String>(0).unwrap())
        .collect()
}

async fn count_in(db: &Connection) -> i64 {
    db.fetch_scalar::<i64>("SELECT count(*) FROM t", ())
        .await
        .unwrap()
        .unwrap()
}

/// A file database with table `t`, plus a second, independent connection to it.
async fn file_pair(isolation: Option<IsolationLevel>) -> (tempfile::TempDir, Connection, Connection) {
    let (dir, path) = temp_db();
    let db = ConnectOptions::new(&path)
        .isolation_level(isolation)
        .open()
        .await
        .unwrap();
    db.execute("CREATE TABLE t(x)", ()).await.unwrap();
    let other = ConnectOptions::new(&path)
        .busy_timeout(Duration::ZERO)
        .open()
        .await
        .unwrap();
    (dir, db, other)
}

#[test]
fn autocommit_is_the_default() {
    on_all_runtimes(|| async {
        let (_dir, db, other) = file_pair(None).await;
        assert!(!db.in_transaction());
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert!(!db.in_transaction());
        assert_eq!(count_in(&other).await, 1, "committed at once");
    });
}

#[test]
fn isolation_level_deferred_begins_before_dml_and_commit_ends_it() {
    on_all_runtimes(|| async {
        let (_dir, db, other) = file_pair(Some(IsolationLevel::Deferred)).await;
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert!(db.in_transaction());
        assert_eq!(count_in(&other).await, 0, "not committed yet");
        assert_eq!(count_in(&db).await, 1, "visible inside");
        db.commit().await.unwrap();
        assert!(!db.in_transaction());
        assert_eq!(count_in(&other).await, 1);
    });
}

#[test]
fn isolation_level_rollback_undoes() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .isolation_level(Some(IsolationLevel::Deferred))
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", [[2], [3]]).await.unwrap();
        assert!(db.in_transaction());
        db.rollback().await.unwrap();
        assert!(!db.in_transaction());
        assert_eq!(count_in(&db).await, 0);
    });
}

#[test]
fn isolation_level_begins_for_each_dml_verb_but_not_for_select_or_ddl() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .isolation_level(Some(IsolationLevel::Deferred))
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)", ())
            .await
            .unwrap();
        assert!(!db.in_transaction(), "DDL");
        db.execute("INSERT INTO t VALUES (1, 1)", ()).await.unwrap();
        db.commit().await.unwrap();
        for sql in [
            "INSERT INTO t VALUES (2, 2)",
            "UPDATE t SET x = 5",
            "DELETE FROM t WHERE id = 1",
            "REPLACE INTO t VALUES (1, 9)",
            "  /* c */ insert into t(x) values (3)",
            "WITH v(a) AS (SELECT 4) INSERT INTO t(x) SELECT a FROM v",
        ] {
            db.execute(sql, ()).await.unwrap();
            assert!(db.in_transaction(), "{sql}");
            db.rollback().await.unwrap();
            assert!(!db.in_transaction(), "{sql}");
        }
        let _ = db.fetch_all("SELECT * FROM t", ()).await.unwrap();
        assert!(!db.in_transaction(), "fetch_all SELECT");
        let _ = db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap();
        assert!(!db.in_transaction(), "fetch_scalar SELECT");
        let mut cur = db.query("SELECT * FROM t", ()).await.unwrap();
        let _ = cur.fetch_all().await.unwrap();
        let _ = db.execute("SELECT 1", ()).await.unwrap();
        assert!(!db.in_transaction(), "query SELECT");
        let _ = db
            .fetch_one("INSERT INTO t(x) VALUES (7) RETURNING id", ())
            .await
            .unwrap();
        assert!(db.in_transaction(), "INSERT ... RETURNING through fetch_one");
        db.rollback().await.unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT x FROM t WHERE id = 1", ())
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(1)
        );
    });
}

#[test]
fn commit_and_rollback_are_no_ops_outside_a_transaction() {
    on_all_runtimes(|| async {
        let db = mem().await;
        db.commit().await.unwrap();
        db.rollback().await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        db.rollback().await.unwrap();
        assert_eq!(count_in(&db).await, 1, "autocommitted row survives a stray rollback");
        db.commit().await.unwrap();
        assert!(!db.in_transaction());
    });
}

#[test]
fn total_changes_counts_rows_changed() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        assert_eq!(db.total_changes(), 0);
        db.execute("CREATE TABLE t(x UNIQUE)", ()).await.unwrap();
        assert_eq!(db.total_changes(), 0, "DDL");
        db.execute("INSERT INTO t VALUES (1), (2), (3)", ()).await.unwrap();
        assert_eq!(db.total_changes(), 3);
        db.execute("UPDATE t SET x = x + 10 WHERE x < 3", ()).await.unwrap();
        assert_eq!(db.total_changes(), 5);
        let _ = db.execute("INSERT INTO t VALUES (3)", ()).await.unwrap_err();
        assert_eq!(db.total_changes(), 5, "failed insert");
        db.execute_many("DELETE FROM t WHERE x = ?", [[11], [12]])
            .await
            .unwrap();
        assert_eq!(db.total_changes(), 7);
        let clone = db.clone();
        assert_eq!(clone.total_changes(), 7, "shared by clones");
    });
}

#[test]
fn transaction_guard_commit() {
    on_all_runtimes(|| async {
        let (_dir, db, other) = file_pair(None).await;
        let tx = db.transaction().await.unwrap();
        assert!(db.in_transaction());
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert_eq!(
            tx.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(1)
        );
        assert_eq!(count_in(&other).await, 0);
        assert!(!tx.is_finished());
        tx.commit().await.unwrap();
        assert!(!db.in_transaction());
        assert_eq!(count_in(&other).await, 1);
    });
}

#[test]
fn transaction_guard_rollback() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        tx.execute_many("INSERT INTO t VALUES (?)", [[2], [3]]).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count_in(&db).await, 0);
        assert!(!db.in_transaction());
    });
}

#[test]
fn dropping_a_transaction_rolls_back() {
    on_all_runtimes(|| async {
        let db = mem().await;
        {
            let tx = db.transaction().await.unwrap();
            tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        }
        assert_eq!(count_in(&db).await, 0);
        assert!(!db.in_transaction());
        // The connection is free again for a new transaction.
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(xs(&db).await, vec!["2"]);
    });
}

#[test]
fn transaction_with_immediate_takes_the_write_lock_at_once() {
    on_all_runtimes(|| async {
        let (_dir, db, other) = file_pair(None).await;
        // Deferred: no lock until the first write.
        let tx = db.transaction_with(TransactionBehavior::Deferred).await.unwrap();
        other.execute("INSERT INTO t VALUES ('other1')", ()).await.unwrap();
        tx.rollback().await.unwrap();
        // Immediate: the other connection cannot write while it is open.
        let tx = db.transaction_with(TransactionBehavior::Immediate).await.unwrap();
        let err = other.execute("INSERT INTO t VALUES ('other2')", ()).await.unwrap_err();
        assert!(err.is_busy(), "{err}");
        assert_eq!(count_in(&other).await, 1, "readers still read (rollback journal)");
        tx.commit().await.unwrap();
        // Exclusive: not even reads.
        let tx = db.transaction_with(TransactionBehavior::Exclusive).await.unwrap();
        let err = other.fetch_all("SELECT * FROM t", ()).await.unwrap_err();
        assert!(err.is_busy(), "{err}");
        tx.commit().await.unwrap();
        assert_eq!(count_in(&other).await, 1);
    });
}

#[test]
fn savepoints_commit_rollback_nest_and_drop() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let mut tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        {
            let sp = tx.savepoint().await.unwrap();
            sp.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
            sp.commit().await.unwrap();
        }
        {
            let sp = tx.savepoint().await.unwrap();
            sp.execute("INSERT INTO t VALUES (3)", ()).await.unwrap();
            assert_eq!(
                sp.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
                Some(3)
            );
            sp.rollback().await.unwrap();
        }
        {
            let sp = tx.savepoint().await.unwrap();
            sp.execute("INSERT INTO t VALUES (4)", ()).await.unwrap();
            // dropped unfinished: rolled back to the savepoint
        }
        {
            let mut sp = tx.savepoint().await.unwrap();
            sp.execute("INSERT INTO t VALUES (5)", ()).await.unwrap();
            {
                let inner = sp.savepoint().await.unwrap();
                inner.execute("INSERT INTO t VALUES (6)", ()).await.unwrap();
                inner.rollback().await.unwrap();
            }
            {
                let inner = sp.savepoint().await.unwrap();
                inner.execute("INSERT INTO t VALUES (7)", ()).await.unwrap();
                inner.commit().await.unwrap();
            }
            sp.commit().await.unwrap();
        }
        {
            // Rolling back an outer savepoint undoes a released inner one.
            let mut sp = tx.savepoint().await.unwrap();
            sp.execute("INSERT INTO t VALUES (8)", ()).await.unwrap();
            {
                let inner = sp.savepoint().await.unwrap();
                inner.execute("INSERT INTO t VALUES (9)", ()).await.unwrap();
                inner.commit().await.unwrap();
            }
            sp.rollback().await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(xs(&db).await, vec!["1", "2", "5", "7"]);
    });
}

#[test]
fn rolling_back_the_transaction_undoes_released_savepoints() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let mut tx = db.transaction().await.unwrap();
        let sp = tx.savepoint().await.unwrap();
        sp.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        sp.commit().await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count_in(&db).await, 0);
    });
}

#[test]
fn other_clones_wait_while_a_transaction_is_open() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let a = db.clone();
        let b = db.clone();
        let tx = a.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES ('a')", ()).await.unwrap();
        let b_done = AtomicBool::new(false);
        let b_side = async {
            b.execute("INSERT INTO t VALUES ('b')", ()).await.unwrap();
            b_done.store(true, Ordering::SeqCst);
        };
        let a_side = async {
            // Let B submit its insert.
            while db.pending() == 0 {
                yield_now().await;
            }
            for _ in 0..5 {
                // B's row is never inside A's transaction, and B has not finished.
                assert_eq!(xs_tx(&tx).await, vec!["a"]);
                assert!(!b_done.load(Ordering::SeqCst));
                yield_now().await;
            }
            tx.rollback().await.unwrap();
        };
        within(NO_HANG, async { futures::join!(a_side, b_side) })
            .await
            .expect("hang");
        assert!(b_done.load(Ordering::SeqCst));
        assert_eq!(xs(&db).await, vec!["b"], "B's row survives A's rollback");
    });
}

async fn xs_tx(tx: &Transaction) -> Vec<String> {
    tx.fetch_all("SELECT CAST(x AS TEXT) FROM t ORDER BY rowid", ())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String>(0).unwrap())
        .collect()
}

#[test]
fn a_spawned_task_on_another_clone_waits_for_the_transaction() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = mem().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES ('a')", ()).await.unwrap();
        let b = db.clone();
        let b_done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&b_done);
        let task = tokio::spawn(async move {
            b.execute("INSERT INTO t VALUES ('b')", ()).await.unwrap();
            // A read on B right after its insert: never sees A's rolled-back row.
            let seen = b.fetch_all("SELECT x FROM t", ()).await.unwrap().len();
            flag.store(true, Ordering::SeqCst);
            seen
        });
        while db.pending() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!b_done.load(Ordering::SeqCst), "B ran while A's transaction was open");
        assert_eq!(xs_tx(&tx).await, vec!["a"]);
        tx.rollback().await.unwrap();
        let seen = tokio::time::timeout(NO_HANG, task).await.expect("hang").unwrap();
        assert_eq!(seen, 1);
        assert_eq!(xs(&db).await, vec!["b"]);
    });
}

#[test]
fn another_clones_commit_waits_and_does_not_commit_the_transaction() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let b = db.clone();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES ('a')", ()).await.unwrap();
        let b_side = async { b.commit().await.unwrap() };
        let a_side = async {
            while db.pending() == 0 {
                yield_now().await;
            }
            tx.rollback().await.unwrap();
        };
        within(NO_HANG, async { futures::join!(a_side, b_side) })
            .await
            .expect("hang");
        assert_eq!(count_in(&db).await, 0);
    });
}

#[test]
fn with_transaction_commits_on_ok() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let n = db
            .with_transaction(|tx| async move {
                tx.execute("INSERT INTO t VALUES (1)", ()).await?;
                tx.execute("INSERT INTO t VALUES (2)", ()).await?;
                tx.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await
            })
            .await
            .unwrap();
        assert_eq!(n, Some(2));
        assert!(!db.in_transaction());
        assert_eq!(count_in(&db).await, 2);
    });
}

#[test]
fn with_transaction_rolls_back_on_err() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let err = db
            .with_transaction(|tx| async move {
                tx.execute("INSERT INTO t VALUES (1)", ()).await?;
                tx.execute("INSERT INTO nope VALUES (2)", ()).await?;
                Ok::<_, Error>(())
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no such table"), "{err}");
        assert_eq!(count_in(&db).await, 0);
        // A user error type works too.
        #[derive(Debug)]
        enum AppError {
            Db(#[allow(dead_code)] Error),
            Invalid,
        }
        impl From<Error> for AppError {
            fn from(e: Error) -> Self {
                AppError::Db(e)
            }
        }
        let r: Result<(), AppError> = db
            .with_transaction(|tx| async move {
                tx.execute("INSERT INTO t VALUES (1)", ()).await?;
                Err(AppError::Invalid)
            })
            .await;
        assert!(matches!(r, Err(AppError::Invalid)));
        assert_eq!(count_in(&db).await, 0);
        assert!(!db.in_transaction());
    });
}

#[test]
fn with_transaction_rolls_back_on_panic_and_the_connection_keeps_working() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let r = std::panic::AssertUnwindSafe(db.with_transaction(|tx| async move {
            tx.execute("INSERT INTO t VALUES (1)", ()).await?;
            if tx.is_finished() {
                return Ok::<_, Error>(());
            }
            panic!("boom in the transaction");
        }))
        .catch_unwind()
        .await;
        let payload = r.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in the transaction"));
        assert_eq!(count_in(&db).await, 0);
        assert!(!db.in_transaction());
        db.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        let tx = db.transaction().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(xs(&db).await, vec!["2"]);
    });
}

#[test]
fn with_transaction_panic_in_a_spawned_task() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = mem().await;
        let d = db.clone();
        let join = tokio::spawn(async move {
            d.with_transaction(|tx| async move {
                tx.execute("INSERT INTO t VALUES (1)", ()).await?;
                if tx.is_finished() {
                    return Ok::<_, Error>(());
                }
                panic!("boom");
            })
            .await
        })
        .await;
        assert!(join.unwrap_err().is_panic());
        assert_eq!(count_in(&db).await, 0);
        db.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        assert_eq!(count_in(&db).await, 1);
    });
}

#[test]
fn a_transaction_leaked_out_of_with_transaction_is_ended() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let leak: Arc<Mutex<Option<Transaction>>> = Arc::default();
        let l2 = Arc::clone(&leak);
        db.with_transaction(move |tx| async move {
            tx.execute("INSERT INTO t VALUES (1)", ()).await?;
            *l2.lock().unwrap() = Some(tx);
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        assert_eq!(count_in(&db).await, 1, "committed");
        let tx = leak.lock().unwrap().take().unwrap();
        assert!(tx.is_finished());
        let err = tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        let err = tx.fetch_all("SELECT * FROM t", ()).await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        assert_eq!(count_in(&db).await, 1);
        db.execute("INSERT INTO t VALUES (3)", ()).await.unwrap();
    });
}

#[test]
fn a_commit_statement_through_the_transaction_ends_it() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        tx.execute("COMMIT", ()).await.unwrap();
        let err = tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        let err = tx.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        // Row 1 was committed by the COMMIT statement; row 2 never ran.
        assert_eq!(xs(&db).await, vec!["1"]);
        assert!(!db.in_transaction());
    });
}

#[test]
fn a_rollback_statement_through_the_transaction_ends_it_and_drop_frees_the_connection() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        tx.execute("ROLLBACK", ()).await.unwrap();
        let err = tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        drop(tx);
        let r = within(NO_HANG, db.execute("INSERT INTO t VALUES (3)", ())).await;
        r.expect("the connection stayed locked").unwrap();
        assert_eq!(xs(&db).await, vec!["3"]);
    });
}

#[test]
fn beginning_inside_an_open_transaction_fails_without_ending_it() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .isolation_level(Some(IsolationLevel::Deferred))
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert!(db.in_transaction());
        let err = db.transaction().await.unwrap_err();
        assert!(err.to_string().contains("within a transaction"), "{err}");
        // The implicit transaction is still open and nothing is locked.
        let r = within(NO_HANG, db.execute("INSERT INTO t VALUES (2)", ())).await;
        r.expect("hang").unwrap();
        assert!(db.in_transaction());
        db.commit().await.unwrap();
        assert_eq!(count_in(&db).await, 2);
    });
}

#[test]
fn transaction_handles_fail_after_close() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let closer = db.clone();
        common::close(&closer).await;
        let err = tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap_err();
        assert!(matches!(err, Error::Closed), "{err:?}");
        assert!(tx.commit().await.is_err());
    });
}

#[test]
fn a_cursor_from_another_clone_does_not_read_inside_a_transaction() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:").iter_chunk_size(2).open().await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", (0..10).map(|i| [i]))
            .await
            .unwrap();
        let b = db.clone();
        let mut cur = b.query("SELECT x FROM t", ()).await.unwrap();
        let first = cur.fetch_many(2).await.unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute_many("INSERT INTO t VALUES (?)", (100..200).map(|i| [i]))
            .await
            .unwrap();
        // B reads on; A rolls back once B is done, or after a second if B is (rightly) held
        // back by the transaction.
        let (done_tx, done_rx) = futures::channel::oneshot::channel::<()>();
        let b_side = async {
            let mut seen: Vec<i64> = first.iter().map(|r| r.get(0).unwrap()).collect();
            let rest = cur.fetch_all().await.unwrap();
            seen.extend(rest.iter().map(|r| r.get::<i64>(0).unwrap()));
            let _ = done_tx.send(());
            seen
        };
        let a_side = async {
            let _ = within(Duration::from_secs(1), done_rx).await;
            tx.rollback().await.unwrap();
        };
        let (seen, ()) = within(NO_HANG, async { futures::join!(b_side, a_side) })
            .await
            .expect("hang");
        let dirty: Vec<i64> = seen.iter().copied().filter(|x| *x >= 100).collect();
        assert!(dirty.is_empty(), "B saw {} rows that were never committed", dirty.len());
    });
}

#[test]
fn concurrent_read_modify_write_transactions_lose_no_update() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute_script("CREATE TABLE c(n INTEGER); INSERT INTO c VALUES (0);")
            .await
            .unwrap();
        let workers = (0..10).map(|_| {
            let db = db.clone();
            async move {
                for _ in 0..5 {
                    db.with_transaction(|tx| async move {
                        let n: i64 = tx.fetch_scalar("SELECT n FROM c", ()).await?.unwrap();
                        yield_now().await; // let the others try to get in between
                        tx.execute("UPDATE c SET n = ?", [n + 1]).await?;
                        Ok::<_, Error>(())
                    })
                    .await
                    .unwrap();
                }
            }
        });
        within(NO_HANG, futures::future::join_all(workers)).await.expect("hang");
        assert_eq!(db.fetch_scalar::<i64>("SELECT n FROM c", ()).await.unwrap(), Some(50));
    });
}

#[test]
fn dropping_a_transaction_releases_statements_waiting_behind_it() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let b = db.clone();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES ('a')", ()).await.unwrap();
        let b_side = async { b.execute("INSERT INTO t VALUES ('b')", ()).await.unwrap() };
        let a_side = async {
            while db.pending() == 0 {
                yield_now().await;
            }
            drop(tx);
        };
        within(NO_HANG, async { futures::join!(a_side, b_side) })
            .await
            .expect("B stayed blocked after the transaction was dropped");
        assert_eq!(xs(&db).await, vec!["b"]);
    });
}

#[test]
fn statements_wait_for_another_connections_lock_up_to_busy_timeout() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let a = aiolite::connect(&path).await.unwrap();
        a.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .await
            .unwrap();
        let b = aiolite::connect(&path).await.unwrap(); // busy_timeout 5 s
        for write in [false, true] {
            a.execute("BEGIN EXCLUSIVE", ()).await.unwrap();
            let release = async {
                common::delay(Duration::from_millis(100)).await;
                a.rollback().await.unwrap();
            };
            let blocked = async {
                if write {
                    b.execute("INSERT INTO t VALUES (2)", ()).await.map(drop)
                } else {
                    b.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.map(drop)
                }
            };
            let ((), r) = within(NO_HANG, async { futures::join!(release, blocked) })
                .await
                .expect("hang");
            r.unwrap_or_else(|e| panic!("write={write}: {e}"));
        }
        assert_eq!(count_in(&b).await, 2);
    });
}

async fn deferred_fk_db() -> Connection {
    let db = ConnectOptions::new(":memory:")
        .pragma("foreign_keys", "ON")
        .open()
        .await
        .unwrap();
    db.execute_script(
        "CREATE TABLE parent(id INTEGER PRIMARY KEY);
         CREATE TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
    )
    .await
    .unwrap();
    db
}

async fn children(db: &Connection) -> i64 {
    db.fetch_scalar::<i64>("SELECT count(*) FROM child", ())
        .await
        .unwrap()
        .unwrap()
}

#[test]
fn a_failed_commit_rolls_the_guard_back_and_frees_the_connection() {
    on_all_runtimes(|| async {
        let db = deferred_fk_db().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO child VALUES (99)", ()).await.unwrap(); // checked at COMMIT
        let err = tx.commit().await.unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
        let r = within(NO_HANG, children(&db))
            .await
            .expect("the connection stayed locked");
        assert_eq!(r, 0);
        assert!(!db.in_transaction());
    });
}

#[test]
fn with_transaction_returns_the_commit_error_and_rolls_back() {
    on_all_runtimes(|| async {
        let db = deferred_fk_db().await;
        let err = db
            .with_transaction(|tx| async move {
                tx.execute("INSERT INTO child VALUES (99)", ()).await?;
                Ok::<_, Error>(())
            })
            .await
            .unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
        assert_eq!(children(&db).await, 0);
        assert!(!db.in_transaction());
        db.execute("INSERT INTO parent VALUES (1)", ()).await.unwrap();
    });
}

#[test]
fn a_failed_implicit_commit_keeps_the_transaction_open() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .pragma("foreign_keys", "ON")
            .isolation_level(Some(IsolationLevel::Deferred))
            .open()
            .await
            .unwrap();
        db.execute_script(
            "CREATE TABLE parent(id INTEGER PRIMARY KEY);
             CREATE TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .await
        .unwrap();
        db.execute("INSERT INTO child VALUES (7)", ()).await.unwrap();
        let err = db.commit().await.unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
        // Documented: the transaction stays open, so it can be repaired and committed.
        assert!(db.in_transaction());
        db.execute("INSERT INTO parent VALUES (7)", ()).await.unwrap();
        db.commit().await.unwrap();
        assert!(!db.in_transaction());
        assert_eq!(children(&db).await, 1);
    });
}

#[test]
fn sqlite_rolling_back_on_its_own_ends_the_guard() {
    on_all_runtimes(|| async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE u(x UNIQUE)", ()).await.unwrap();
        let b = db.clone();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO u VALUES (1)", ()).await.unwrap();
        // OR ROLLBACK: the conflict makes SQLite roll back the whole transaction.
        let err = tx
            .execute("INSERT OR ROLLBACK INTO u VALUES (1)", ())
            .await
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        let err = tx.execute("INSERT INTO u VALUES (2)", ()).await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        let n = within(NO_HANG, b.fetch_scalar::<i64>("SELECT count(*) FROM u", ()))
            .await
            .expect("the connection stayed locked")
            .unwrap();
        assert_eq!(n, Some(0));
    });
}

#[test]
fn a_timed_out_write_inside_a_transaction_ends_it() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_timeout(Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (-1)", ()).await.unwrap();
        let slow_write = "INSERT INTO t WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) SELECT n FROM c";
        let r = within(NO_HANG, tx.execute(slow_write, ())).await.expect("hang");
        assert!(matches!(r, Err(Error::StatementTimeout { .. })), "{r:?}");
        // SQLite rolls back a transaction whose write was interrupted; the guard says so.
        let r = tx.execute("INSERT INTO t VALUES (-2)", ()).await;
        assert!(matches!(r, Err(Error::TransactionEnded { .. })), "{r:?}");
        drop(tx);
        let n = within(NO_HANG, db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()))
            .await
            .expect("hang")
            .unwrap();
        assert_eq!(n, Some(0));
    });
}
