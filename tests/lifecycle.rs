//! API.md §5 (core): `call`, `close`, dropped futures, concurrency, `interrupt`,
//! `statement_timeout`, cancellation of running reads, back-pressure.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aiolite::{ConnectOptions, Connection, Error, ErrorCode, ExecResult, IsolationLevel, rusqlite};
use common::{NO_HANG, SLOW_QUERY, on_all_runtimes, temp_db, within, yield_now};
use futures::FutureExt;

async fn mem() -> Connection {
    let db = aiolite::connect(":memory:").await.unwrap();
    db.execute("CREATE TABLE t(x)", ()).await.unwrap();
    db
}

async fn count_in(db: &Connection) -> i64 {
    db.fetch_scalar::<i64>("SELECT count(*) FROM t", ())
        .await
        .unwrap()
        .unwrap()
}

async fn works(db: &Connection) {
    let r = within(NO_HANG, db.fetch_scalar::<i64>("SELECT 40 + 2", ())).await;
    assert_eq!(r.expect("the connection hangs").unwrap(), Some(42));
}

// ---------------------------------------------------------------------------------------
// call

#[test]
fn call_returns_values_and_sees_the_same_database() {
    on_all_runtimes(|| async {
        let db = mem().await;
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let v: i64 = db
            .call(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(v, 1);
        let changed = db.call(|c| c.execute("INSERT INTO t VALUES (?1)", [2])).await.unwrap();
        assert_eq!(changed, 1);
        assert_eq!(count_in(&db).await, 2);
        let s: String = db.call(|_c| Ok("owned".to_string())).await.unwrap();
        assert_eq!(s, "owned");
        // Inside a transaction guard, the closure runs inside the transaction.
        let tx = db.transaction().await.unwrap();
        let autocommit = tx.call(|c| Ok(c.is_autocommit())).await.unwrap();
        assert!(!autocommit);
        tx.rollback().await.unwrap();
    });
}

#[test]
fn call_converts_rusqlite_errors() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let err = db
            .call(|c| c.execute("INSERT INTO nope VALUES (1)", []))
            .await
            .unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::Error), "{err:?}");
        assert!(err.to_string().contains("no such table: nope"), "{err}");
        db.execute("CREATE TABLE u(x UNIQUE)", ()).await.unwrap();
        let err = db
            .call(|c| c.execute_batch("INSERT INTO u VALUES (1); INSERT INTO u VALUES (1);"))
            .await
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err:?}");
        let err = db
            .call(|c| c.query_row("SELECT 1 WHERE 0", [], |r| r.get::<_, i64>(0)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let err = db
            .call(|_c| Err::<(), _>(rusqlite::Error::InvalidQuery))
            .await
            .unwrap_err();
        assert!(!err.to_string().is_empty());
        works(&db).await;
    });
}

#[test]
fn a_panicking_call_is_panicked_and_the_connection_keeps_working() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let err = db
            .call(|_c| -> rusqlite::Result<()> { panic!("kaboom {}", 7) })
            .await
            .unwrap_err();
        match &err {
            Error::Panicked { message } => assert!(message.contains("kaboom 7"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("kaboom 7"), "{err}");
        works(&db).await;
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert_eq!(count_in(&db).await, 1);
    });
}

#[test]
fn a_panicking_call_rolls_back_an_implicit_transaction() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .isolation_level(Some(IsolationLevel::Deferred))
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert!(db.in_transaction());
        let err = db.call(|_c| -> rusqlite::Result<()> { panic!("x") }).await.unwrap_err();
        assert!(matches!(err, Error::Panicked { .. }));
        assert!(!db.in_transaction());
        assert_eq!(count_in(&db).await, 0);
        db.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        db.commit().await.unwrap();
        assert_eq!(count_in(&db).await, 1);
    });
}

#[test]
fn a_panicking_call_inside_a_transaction_guard_ends_it() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let err = tx.call(|_c| -> rusqlite::Result<()> { panic!("x") }).await.unwrap_err();
        assert!(matches!(err, Error::Panicked { .. }));
        let err = tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        drop(tx);
        works(&db).await;
        assert_eq!(count_in(&db).await, 0);
    });
}

// ---------------------------------------------------------------------------------------
// close

#[test]
fn close_is_idempotent_and_later_calls_on_any_clone_are_closed() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let other = db.clone();
        assert!(!db.is_closed());
        common::close(&db).await;
        // Closing again, from any clone, is Ok at once.
        db.close().await.unwrap();
        other.close().await.unwrap();
        assert!(db.is_closed() && other.is_closed());
        let closed = |r: Result<(), Error>, what: &str| {
            assert!(matches!(r, Err(Error::Closed)), "{what}: {r:?}");
        };
        closed(other.execute("INSERT INTO t VALUES (1)", ()).await.map(drop), "execute");
        closed(
            other.execute_insert("INSERT INTO t VALUES (1)", ()).await.map(drop),
            "execute_insert",
        );
        closed(
            other.execute_many("INSERT INTO t VALUES (?)", [[1]]).await.map(drop),
            "execute_many",
        );
        closed(other.execute_script("SELECT 1;").await, "execute_script");
        closed(other.fetch_all("SELECT 1", ()).await.map(drop), "fetch_all");
        closed(other.fetch_one("SELECT 1", ()).await.map(drop), "fetch_one");
        closed(
            other.fetch_scalar::<i64>("SELECT 1", ()).await.map(drop),
            "fetch_scalar",
        );
        closed(
            other.fetch_all_as::<(i64,)>("SELECT 1", ()).await.map(drop),
            "fetch_all_as",
        );
        closed(other.query("SELECT 1", ()).await.map(drop), "query");
        closed(other.transaction().await.map(drop), "transaction");
        closed(other.commit().await, "commit");
        closed(other.rollback().await, "rollback");
        closed(other.call(|_c| Ok(())).await, "call");
        closed(
            other.with_transaction(|_tx| async { Ok::<_, Error>(()) }).await,
            "with_transaction",
        );
        // interrupt() after close is a harmless no-op.
        other.interrupt();
    });
}

#[test]
fn close_runs_everything_already_queued() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        // No fsync per commit: the test is about ordering, not about the disk's speed.
        let db = ConnectOptions::new(&path)
            .pragma("synchronous", "OFF")
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        type Fut<'a> = Pin<Box<dyn Future<Output = aiolite::Result<ExecResult>> + Send + 'a>>;
        let mut futs: Vec<Fut<'_>> = (0..1000)
            .map(|i| Box::pin(db.execute("INSERT INTO t VALUES (?)", [i])) as Fut<'_>)
            .collect();
        // Submit every insert (first poll) without waiting for any of them.
        let mut results: Vec<Option<aiolite::Result<ExecResult>>> = futs.iter_mut().map(|f| f.now_or_never()).collect();
        common::close(&db).await;
        for (fut, slot) in futs.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                *slot = Some(within(NO_HANG, fut).await.expect("insert hung"));
            }
        }
        for r in results {
            assert_eq!(r.unwrap().unwrap().changes, 1);
        }
        let db = aiolite::connect(&path).await.unwrap();
        assert_eq!(count_in(&db).await, 1000);
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT sum(x) FROM t", ()).await.unwrap(),
            Some(999 * 1000 / 2)
        );
    });
}

#[test]
fn close_rolls_back_an_open_transaction_guard() {
    on_all_runtimes(|| async {
        let (_dir, path) = temp_db();
        let db = aiolite::connect(&path).await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        common::close(&db).await;
        drop(tx);
        let db = aiolite::connect(&path).await.unwrap();
        assert_eq!(count_in(&db).await, 0);
    });
}

#[test]
fn close_right_after_a_command_returns_ok() {
    // Regression test for a race (fixed in cda6f7d): push_close published the closed state
    // before the queue length, so a worker spinning for its next command could see "closed
    // and empty", exit, and answer the close with Err(Closed). Rare per call (about 1 in
    // 2,000 here), so many short-lived connections on two threads; each close() comes right
    // after an awaited command, while the worker spins.
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                futures::executor::block_on(async {
                    let mut failures = Vec::new();
                    for _ in 0..10_000 {
                        let db = aiolite::connect(":memory:").await.unwrap();
                        db.execute("SELECT 1", ()).await.unwrap();
                        if let Err(e) = db.close().await {
                            failures.push(e);
                        }
                    }
                    failures
                })
            })
        })
        .collect();
    let failures: Vec<Error> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(
        failures.is_empty(),
        "{} of 20000 close() calls failed: {:?}",
        failures.len(),
        failures.first()
    );
}

#[test]
fn in_transaction_is_false_after_close() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .isolation_level(Some(IsolationLevel::Deferred))
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert!(db.in_transaction());
        common::close(&db).await;
        assert!(!db.in_transaction());
    });
}

#[test]
fn fetches_racing_a_close_succeed_or_are_closed() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let fetches = (0..100_i64).map(|i| {
            let db = db.clone();
            async move { db.fetch_scalar::<i64>("SELECT ?", [i]).await.map(|v| (i, v)) }
        });
        let closer = async {
            yield_now().await;
            common::close(&db).await;
        };
        let (results, ()) = within(NO_HANG, async {
            futures::join!(futures::future::join_all(fetches), closer)
        })
        .await
        .expect("hang");
        for r in results {
            match r {
                Ok((i, v)) => assert_eq!(v, Some(i)),
                Err(Error::Closed) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
    });
}

#[test]
fn spawned_fetches_racing_a_close_never_hang() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..5 {
            let db = mem().await;
            let tasks: Vec<_> = (0..100_i64)
                .map(|i| {
                    let db = db.clone();
                    tokio::spawn(async move { db.fetch_scalar::<i64>("SELECT ?", [i]).await.map(|v| (i, v)) })
                })
                .collect();
            let closer = {
                let db = db.clone();
                tokio::spawn(async move { common::close(&db).await })
            };
            let all = async {
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.unwrap());
                }
                (out, closer.await.unwrap())
            };
            let (results, ()) = tokio::time::timeout(NO_HANG, all).await.expect("hang");
            for r in results {
                match r {
                    Ok((i, v)) => assert_eq!(v, Some(i)),
                    Err(Error::Closed) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// dropped futures

#[test]
fn a_future_dropped_before_its_statement_started_never_runs() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let b = db.clone();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES ('a')", ()).await.unwrap();
        {
            // Submitted, then deferred behind A's transaction...
            let mut fut = Box::pin(b.execute("INSERT INTO t VALUES ('b')", ()));
            assert!(futures::poll!(&mut fut).is_pending());
            assert!(db.pending() >= 1);
            // ...then dropped before it could start.
        }
        tx.commit().await.unwrap();
        works(&db).await;
        let xs: Vec<String> = db
            .fetch_all("SELECT x FROM t", ())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(xs, vec!["a"]);
    });
}

#[test]
fn a_future_dropped_while_queued_behind_a_busy_worker_never_runs() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let mut blocker = Box::pin(db.call(move |_c| {
            started_tx.send(()).unwrap();
            wait.recv().unwrap();
            Ok(())
        }));
        assert!(futures::poll!(&mut blocker).is_pending());
        started.recv().unwrap(); // the worker is now inside the closure
        {
            let mut fut = Box::pin(db.execute("INSERT INTO t VALUES (1)", ()));
            assert!(futures::poll!(&mut fut).is_pending());
        }
        // A transaction future dropped the same way must not leave the connection locked.
        {
            let mut fut = Box::pin(db.transaction());
            assert!(futures::poll!(&mut fut).is_pending());
        }
        release.send(()).unwrap();
        within(NO_HANG, blocker).await.expect("hang").unwrap();
        works(&db).await;
        assert_eq!(count_in(&db).await, 0);
        assert!(!db.in_transaction());
        db.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        assert_eq!(count_in(&db).await, 1);
    });
}

#[test]
fn a_future_dropped_by_a_tokio_timeout_never_runs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = mem().await;
        let tx = db.transaction().await.unwrap();
        let b = db.clone();
        let r = tokio::time::timeout(Duration::from_millis(20), b.execute("INSERT INTO t VALUES ('b')", ())).await;
        assert!(r.is_err(), "B must wait for A's transaction");
        tx.commit().await.unwrap();
        assert_eq!(count_in(&db).await, 0);
    });
}

// ---------------------------------------------------------------------------------------
// concurrency

#[test]
fn ten_concurrent_queries_on_one_connection() {
    on_all_runtimes(|| async {
        let db = mem().await;
        db.execute_many("INSERT INTO t VALUES (?)", (0..100).map(|i| [i]))
            .await
            .unwrap();
        let queries = (0..10_i64).map(|k| {
            let db = &db;
            async move {
                let rows = db
                    .fetch_all("SELECT x FROM t WHERE x % 10 = ? ORDER BY x", [k])
                    .await
                    .unwrap();
                (k, rows.iter().map(|r| r.get::<i64>(0).unwrap()).collect::<Vec<_>>())
            }
        });
        let results = within(NO_HANG, futures::future::join_all(queries)).await.expect("hang");
        for (k, xs) in results {
            assert_eq!(xs, (0..10).map(|j| j * 10 + k).collect::<Vec<_>>());
        }
    });
}

#[test]
fn one_connection_used_from_several_threads_and_runtimes_at_once() {
    let (_dir, path) = temp_db();
    let db = futures::executor::block_on(async {
        let db = ConnectOptions::new(&path)
            .pragma("synchronous", "OFF")
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(tid INTEGER, i INTEGER)", ()).await.unwrap();
        db
    });
    async fn work(db: Connection, tid: i64) {
        for i in 0..200_i64 {
            db.execute("INSERT INTO t VALUES (?, ?)", (tid, i)).await.unwrap();
            if i % 20 == 0 {
                let n = db
                    .fetch_scalar::<i64>("SELECT count(*) FROM t WHERE tid = ?", [tid])
                    .await
                    .unwrap();
                assert_eq!(n, Some(i + 1));
            }
        }
    }
    let threads: Vec<_> = (0..4_i64)
        .map(|tid| {
            let db = db.clone();
            std::thread::spawn(move || match tid {
                0 => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(work(db, tid)),
                1 => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move { tokio::spawn(work(db, tid)).await.unwrap() }),
                _ => futures::executor::block_on(work(db, tid)),
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    futures::executor::block_on(async {
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(800)
        );
        for tid in 0..4_i64 {
            let sum = db
                .fetch_scalar::<i64>("SELECT sum(i) FROM t WHERE tid = ?", [tid])
                .await
                .unwrap();
            assert_eq!(sum, Some(199 * 200 / 2));
        }
    });
}

#[test]
fn a_full_queue_makes_async_callers_wait_not_fail() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:").queue_capacity(1).open().await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let inserts = (0..200).map(|i| db.execute("INSERT INTO t VALUES (?)", [i]));
        let results = within(NO_HANG, futures::future::join_all(inserts))
            .await
            .expect("lost wake-up with a full queue");
        assert!(results.iter().all(|r| r.is_ok()));
        assert_eq!(count_in(&db).await, 200);
    });
}

#[test]
fn commands_run_in_submission_order() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let inserts = (0..300).map(|i| db.execute("INSERT INTO t VALUES (?)", [i]));
        futures::future::join_all(inserts).await;
        let xs: Vec<i64> = db
            .fetch_all("SELECT x FROM t ORDER BY rowid", ())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(xs, (0..300).collect::<Vec<_>>());
    });
}

// ---------------------------------------------------------------------------------------
// interrupt, statement timeout, cancellation of running statements

/// Call `db.interrupt()` every few ms from another thread until dropped.
struct Interrupter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Interrupter {
    fn start(db: &Connection) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let db = db.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                db.interrupt();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Interrupter {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Interrupter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[test]
fn interrupt_from_another_thread_ends_a_long_query() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let interrupter = Interrupter::start(&db);
        let r = within(NO_HANG, db.fetch_scalar::<i64>(SLOW_QUERY, ())).await;
        drop(interrupter);
        let err = r.expect("interrupt() did not end the query").unwrap_err();
        assert_eq!(err.sqlite_code(), Some(ErrorCode::Interrupt), "{err:?}");
        assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
        works(&db).await;
        // Also a long statement through execute and through a cursor.
        let interrupter = Interrupter::start(&db);
        let r = within(NO_HANG, db.execute(SLOW_QUERY, ())).await;
        let r2 = within(NO_HANG, async { db.query(SLOW_QUERY, ()).await?.fetch_all().await }).await;
        drop(interrupter);
        assert_eq!(r.expect("hang").unwrap_err().sqlite_code(), Some(ErrorCode::Interrupt));
        assert_eq!(r2.expect("hang").unwrap_err().sqlite_code(), Some(ErrorCode::Interrupt));
        works(&db).await;
    });
}

#[test]
fn interrupt_when_idle_is_a_no_op() {
    on_all_runtimes(|| async {
        let db = mem().await;
        db.interrupt();
        works(&db).await;
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
    });
}

#[test]
fn interrupt_when_idle_with_an_open_cursor_is_a_no_op() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:").iter_chunk_size(2).open().await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", (0..10).map(|i| [i]))
            .await
            .unwrap();
        let mut cur = db.query("SELECT x FROM t", ()).await.unwrap();
        let _ = cur.fetch_one().await.unwrap();
        // A round trip behind the cursor's read-ahead: when it returns, nothing runs any more.
        works(&db).await;
        // Nothing is running now (the cursor is idle, its statement open): documented as a
        // no-op.
        db.interrupt();
        db.execute("INSERT INTO t VALUES (100)", ()).await.unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(11)
        );
        drop(cur);
    });
}

#[test]
fn statement_timeout_interrupts_a_long_statement() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_timeout(Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        let r = within(NO_HANG, db.fetch_scalar::<i64>(SLOW_QUERY, ())).await;
        let err = r.expect("statement_timeout did not fire").unwrap_err();
        match &err {
            Error::StatementTimeout { timeout, sql } => {
                assert_eq!(*timeout, Duration::from_millis(50));
                assert_eq!(sql.as_deref(), Some(SLOW_QUERY));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.sqlite_code(), Some(ErrorCode::Interrupt));
        assert_eq!(err.sql(), Some(SLOW_QUERY));
        works(&db).await;
        let r = within(NO_HANG, db.execute(SLOW_QUERY, ())).await.expect("hang");
        assert!(matches!(r, Err(Error::StatementTimeout { .. })), "{r:?}");
        let r = within(NO_HANG, async { db.query(SLOW_QUERY, ()).await?.fetch_all().await })
            .await
            .expect("hang");
        assert!(matches!(r, Err(Error::StatementTimeout { .. })), "{r:?}");
        let r = within(NO_HANG, db.execute_script(&format!("SELECT 1; {SLOW_QUERY};")))
            .await
            .expect("hang");
        assert!(matches!(r, Err(Error::StatementTimeout { .. })), "{r:?}");
        works(&db).await;
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
    });
}

#[test]
fn statement_timeout_does_not_count_time_spent_queued() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_timeout(Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        let blocker = db.call(|_c| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        let queued = db.fetch_scalar::<i64>("SELECT 1", ());
        let (a, b) = futures::join!(blocker, queued);
        a.unwrap();
        assert_eq!(b.unwrap(), Some(1));
    });
}

#[test]
fn an_interrupt_is_not_reported_as_a_timeout() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_timeout(Duration::from_secs(600))
            .open()
            .await
            .unwrap();
        let interrupter = Interrupter::start(&db);
        let r = within(NO_HANG, db.fetch_scalar::<i64>(SLOW_QUERY, ())).await;
        drop(interrupter);
        let err = r.expect("hang").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Sqlite {
                    code: ErrorCode::Interrupt,
                    ..
                }
            ),
            "{err:?}"
        );
    });
}

#[test]
fn dropping_the_future_of_a_long_read_cancels_it() {
    on_all_runtimes(|| async {
        let db = mem().await;
        // Give up on the slow query after a moment: its future is dropped while it runs.
        assert!(
            within(Duration::from_millis(100), db.fetch_scalar::<i64>(SLOW_QUERY, ()))
                .await
                .is_none()
        );
        // The next statement runs (the cancelled one would take minutes).
        works(&db).await;
        assert!(
            within(Duration::from_millis(100), db.fetch_all(SLOW_QUERY, ()))
                .await
                .is_none()
        );
        works(&db).await;
        assert!(
            within(Duration::from_millis(100), db.execute(SLOW_QUERY, ()))
                .await
                .is_none()
        );
        works(&db).await;
        assert!(
            within(Duration::from_millis(100), db.query(SLOW_QUERY, ()))
                .await
                .is_none()
        );
        works(&db).await;
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert_eq!(count_in(&db).await, 1);
    });
}

#[test]
fn dropping_a_long_read_inside_a_transaction_cancels_it_and_keeps_the_transaction() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert!(
            within(Duration::from_millis(100), tx.fetch_scalar::<i64>(SLOW_QUERY, ()))
                .await
                .is_none()
        );
        let r = within(NO_HANG, tx.execute("INSERT INTO t VALUES (2)", ())).await;
        r.expect("the cancelled read kept running").unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count_in(&db).await, 2);
    });
}

#[test]
fn tokio_timeout_on_a_long_read_cancels_it() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = mem().await;
        let r = tokio::time::timeout(Duration::from_millis(100), db.fetch_scalar::<i64>(SLOW_QUERY, ())).await;
        assert!(r.is_err());
        let next = tokio::time::timeout(NO_HANG, db.fetch_scalar::<i64>("SELECT 1", ())).await;
        assert_eq!(next.expect("the cancelled read kept running").unwrap(), Some(1));
    });
}

#[test]
fn a_full_queue_with_callers_on_many_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = ConnectOptions::new(":memory:").queue_capacity(2).open().await.unwrap();
        db.execute("CREATE TABLE t(task INTEGER, i INTEGER)", ()).await.unwrap();
        let tasks: Vec<_> = (0..8_i64)
            .map(|task| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..100_i64 {
                        db.execute("INSERT INTO t VALUES (?, ?)", (task, i)).await.unwrap();
                    }
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(NO_HANG, all)
            .await
            .expect("lost wake-up with a full queue");
        assert_eq!(count_in(&db).await, 800);
        // Each task's inserts ran in its own order.
        for task in 0..8_i64 {
            let is: Vec<i64> = db
                .fetch_all("SELECT i FROM t WHERE task = ? ORDER BY rowid", [task])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0).unwrap())
                .collect();
            assert_eq!(is, (0..100).collect::<Vec<_>>());
        }
    });
}
