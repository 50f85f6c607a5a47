//! Concurrency stress: many tasks mixing reads, writes, transactions, dropped futures,
//! timeouts and interrupts, on one connection and on a pool. Every operation's outcome is
//! recorded and the final table is checked against it exactly: what succeeded is there in
//! full, what failed is absent, what was cancelled is all there or not at all.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiolite::{ConnectOptions, Error, Executor, Pool, PoolOptions, Transaction, params};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// Succeeded: exactly `n` rows must exist.
    Done(i64),
    /// Failed: no rows.
    Failed,
    /// Cancelled while in flight: all `n` rows or none.
    Cancelled(i64),
}

type Log = Arc<Mutex<HashMap<i64, Outcome>>>;

const LONG_READ: &str =
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c LIMIT 3000000) SELECT count(*) FROM c";

/// What each kind of handle offers the workload beyond `Executor`.
trait Handle: Executor + Clone + Send + Sync + 'static {
    fn begin(&self) -> impl std::future::Future<Output = aiolite::Result<Transaction>> + Send;
    fn interrupt_all(&self);
}

impl Handle for aiolite::Connection {
    async fn begin(&self) -> aiolite::Result<Transaction> {
        self.transaction().await
    }
    fn interrupt_all(&self) {
        self.interrupt();
    }
}

impl Handle for Pool {
    async fn begin(&self) -> aiolite::Result<Transaction> {
        self.transaction().await
    }
    fn interrupt_all(&self) {
        self.interrupt();
    }
}

async fn worker<H: Handle>(db: H, task: i64, log: Log) {
    for j in 0..120_i64 {
        let op = task * 100_000 + j;
        let record = |o| {
            log.lock().unwrap().insert(op, o);
        };
        match j % 6 {
            0 => match db.execute("INSERT INTO t(op, k) VALUES (?, 0)", [op]).await {
                Ok(_) => record(Outcome::Done(1)),
                Err(_) => record(Outcome::Failed),
            },
            1 => {
                let tx = match db.begin().await {
                    Ok(tx) => tx,
                    Err(_) => {
                        record(Outcome::Failed);
                        continue;
                    }
                };
                let body = async {
                    for k in 0..3 {
                        tx.execute("INSERT INTO t(op, k) VALUES (?, ?)", params![op, k]).await?;
                    }
                    tx.fetch_scalar::<i64>("SELECT count(*) FROM t WHERE op = ?", [op])
                        .await
                };
                match body.await {
                    Ok(Some(3)) => match tx.commit().await {
                        Ok(()) => record(Outcome::Done(3)),
                        Err(_) => record(Outcome::Failed),
                    },
                    _ => record(Outcome::Failed),
                }
            }
            2 => {
                // A write whose future may be dropped at any point.
                let limit = Duration::from_micros(u64::try_from(j * 7 % 300).unwrap());
                match tokio::time::timeout(limit, db.execute("INSERT INTO t(op, k) VALUES (?, 0)", [op])).await {
                    Ok(Ok(_)) => record(Outcome::Done(1)),
                    Ok(Err(_)) => record(Outcome::Failed),
                    Err(_) => record(Outcome::Cancelled(1)),
                }
            }
            3 => {
                // A long read, abandoned by a timeout (cancellation reaches SQLite).
                let _ = tokio::time::timeout(Duration::from_millis(2), db.fetch_scalar::<i64>(LONG_READ, ())).await;
                let n = db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await;
                assert!(matches!(n, Ok(Some(_)) | Err(Error::Sqlite { .. })), "{n:?}");
            }
            4 => {
                // A transaction dropped without commit leaves nothing.
                if let Ok(tx) = db.begin().await {
                    let _ = tx.execute("INSERT INTO t(op, k) VALUES (?, 0)", [op]).await;
                    let _ = tx.execute("INSERT INTO t(op, k) VALUES (?, 1)", [op]).await;
                    drop(tx);
                }
                record(Outcome::Failed);
            }
            _ => {
                // A transaction that may be dropped mid-way by a timeout.
                let limit = Duration::from_micros(u64::try_from(j * 13 % 500).unwrap());
                let db2 = db.clone();
                let r = tokio::time::timeout(limit, async move {
                    let tx = db2.begin().await?;
                    tx.execute("INSERT INTO t(op, k) VALUES (?, 0)", [op]).await?;
                    tx.execute("INSERT INTO t(op, k) VALUES (?, 1)", [op]).await?;
                    tx.commit().await
                })
                .await;
                match r {
                    Ok(Ok(())) => record(Outcome::Done(2)),
                    Ok(Err(_)) => record(Outcome::Failed),
                    Err(_) => record(Outcome::Cancelled(2)),
                }
            }
        }
    }
}

async fn run<H: Handle>(db: H, tasks: i64) {
    db.execute_script("CREATE TABLE IF NOT EXISTS t(op INTEGER NOT NULL, k INTEGER NOT NULL, UNIQUE(op, k));")
        .await
        .unwrap();
    let log: Log = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // interrupt() is sync and callable from any thread: hammer it from a plain thread.
    let interrupter = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                db.interrupt_all();
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let handles: Vec<_> = (0..tasks)
        .map(|t| tokio::spawn(worker(db.clone(), t, Arc::clone(&log))))
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    interrupter.join().unwrap();

    // The connection is whole: no transaction left open, statements run.
    let rows: Vec<(i64, i64)> = db
        .fetch_all_as("SELECT op, count(*) FROM t GROUP BY op", ())
        .await
        .unwrap();
    let present: HashMap<i64, i64> = rows.into_iter().collect();
    let log = log.lock().unwrap().clone();
    let mut done = 0;
    for (op, outcome) in log.iter() {
        let n = present.get(op).copied().unwrap_or(0);
        match outcome {
            Outcome::Done(want) => {
                assert_eq!(n, *want, "op {op}: succeeded but {n} rows");
                done += 1;
            }
            Outcome::Failed => assert_eq!(n, 0, "op {op}: failed but {n} rows"),
            Outcome::Cancelled(all) => assert!(n == 0 || n == *all, "op {op}: cancelled with {n} of {all} rows"),
        }
    }
    for op in present.keys() {
        assert!(log.contains_key(op), "rows of unknown op {op}");
    }
    let total: Option<i64> = db.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(total, Some(present.values().sum()));
    assert!(done > 0, "nothing succeeded");
    let cancelled = log.values().filter(|o| matches!(o, Outcome::Cancelled(_))).count();
    let failed = log.values().filter(|o| matches!(o, Outcome::Failed)).count();
    println!(
        "ops: {} done, {failed} failed, {cancelled} cancelled; {} rows",
        done,
        present.values().sum::<i64>()
    );
}

#[test]
fn stress_one_connection() {
    let (_dir, path) = common::temp_db();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = ConnectOptions::new(&path).recommended_pragmas().open().await.unwrap();
        run(db.clone(), 12).await;
        assert!(!db.in_transaction());
        db.close().await.unwrap();
    });
}

#[test]
fn stress_pool() {
    let (_dir, path) = common::temp_db();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = Pool::open(
            ConnectOptions::new(&path).recommended_pragmas(),
            PoolOptions::default()
                .readers(3)
                .acquire_timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap();
        run(pool.clone(), 12).await;
        let s = pool.stats();
        assert_eq!(
            (s.readers_busy, s.writer_busy, s.reader_queue, s.writer_queue),
            (0, false, 0, 0),
            "{s:?}"
        );
        pool.close().await.unwrap();
    });
}

/// SQLite calls the progress handler one last time after a statement has halted (an
/// autocommit write is committed by then): an abort there must not turn finished work into
/// an error. With a statement timeout that has always already passed, every execution that
/// reaches the handler is aborted — unless it has already completed; either way the reported
/// outcome must match the table.
#[test]
fn timeouts_never_report_completed_writes_as_failed() {
    common::on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let db = ConnectOptions::new(&path)
            .recommended_pragmas()
            .statement_timeout(Duration::from_nanos(1))
            .open()
            .await
            .unwrap();
        let check = aiolite::connect(&path).await.unwrap();
        check
            .execute("CREATE TABLE w(i INTEGER PRIMARY KEY)", ())
            .await
            .unwrap();
        let mut ok = Vec::new();
        let mut timed_out = 0;
        for i in 0..2000_i64 {
            // A write of a few hundred VM steps: the progress handler runs in the middle of
            // some executions and after the halt of others.
            let r = if i % 2 == 0 {
                db.execute("INSERT INTO w(i) VALUES (?)", [i]).await
            } else {
                let write = "INSERT INTO w(i) WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT ?2) \
                             SELECT ?1 FROM c WHERE n = ?2";
                db.execute(write, [i, 1 + i % 37]).await
            };
            match r {
                Ok(_) => ok.push(i),
                Err(Error::StatementTimeout { .. }) => timed_out += 1,
                Err(e) => panic!("{e}"),
            }
        }
        let rows: Vec<(i64,)> = check.fetch_all_as("SELECT i FROM w ORDER BY i", ()).await.unwrap();
        let rows: Vec<i64> = rows.into_iter().map(|(i,)| i).collect();
        assert_eq!(
            (rows.len(), ok.len()),
            (ok.len(), ok.len()),
            "writes reported as timed out were committed ({timed_out} timed out)"
        );
        assert_eq!(rows, ok);
        assert!(timed_out > 0, "the timeout never fired");
    });
}
