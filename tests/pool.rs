//! The WAL pool: routing, fairness, timeouts, cancellation, snapshots, lifecycle.

mod common;

use std::time::Duration;

use aiolite::{ConnectOptions, Error, ErrorCode, Pool, PoolOptions, params};

async fn pool_at(path: &std::path::Path, readers: usize) -> Pool {
    Pool::open(
        ConnectOptions::new(path).recommended_pragmas(),
        PoolOptions::default()
            .readers(readers)
            .acquire_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap()
}

const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, n INTEGER NOT NULL)";

#[test]
fn writers_and_readers_at_once_lose_nothing() {
    let (_dir, path) = common::temp_db();
    let rt = common::multi_thread_rt(4);
    rt.block_on(async {
        let pool = pool_at(&path, 4).await;
        pool.execute(SCHEMA, ()).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..16_i64 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = 0_i64;
                while i < 200 {
                    if w % 2 == 0 && i % 20 == 0 {
                        // A transaction that reads what it wrote and writes ten rows.
                        let pool2 = pool.clone();
                        pool2
                            .with_transaction(|tx| async move {
                                for k in 0..10 {
                                    tx.execute("INSERT INTO t(writer, n) VALUES (?, ?)", params![w, i + k])
                                        .await?;
                                }
                                let mine: Option<i64> =
                                    tx.fetch_scalar("SELECT count(*) FROM t WHERE writer = ?", [w]).await?;
                                assert!(mine.unwrap() >= i + 10);
                                Ok::<_, Error>(())
                            })
                            .await
                            .unwrap();
                        i += 10;
                    } else {
                        pool.execute("INSERT INTO t(writer, n) VALUES (?, ?)", params![w, i])
                            .await
                            .unwrap();
                        i += 1;
                    }
                }
            }));
        }
        for _ in 0..8 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut last = 0_i64;
                for _ in 0..200 {
                    let n: i64 = pool.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap().unwrap();
                    assert!(n >= last, "a reader went back in time: {n} < {last}");
                    last = n;
                    tokio::task::yield_now().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let total: Option<i64> = pool.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(total, Some(16 * 200));
        for w in 0..16_i64 {
            let n: Option<i64> = pool
                .fetch_scalar("SELECT count(DISTINCT n) FROM t WHERE writer = ?", [w])
                .await
                .unwrap();
            assert_eq!(n, Some(200), "writer {w}");
        }
        let stats = pool.stats();
        assert_eq!(stats.readers, 4);
        assert_eq!(stats.readers_busy, 0);
        assert!(!stats.writer_busy);
        assert_eq!(stats.timeouts, 0);
        pool.close().await.unwrap();
    });
}

#[test]
fn readers_refuse_writes_and_writes_through_fetch_land() {
    common::on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let pool = pool_at(&path, 2).await;
        pool.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())
            .await
            .unwrap();
        let reader = pool.reader().await.unwrap();
        assert!(!reader.is_writer());
        let e = reader.execute("INSERT INTO t(v) VALUES ('x')", ()).await.unwrap_err();
        assert_eq!(e.sqlite_code(), Some(ErrorCode::ReadOnly), "{e}");
        drop(reader);
        // Routed to the writer by its verb…
        let id: Option<i64> = pool
            .fetch_scalar("INSERT INTO t(v) VALUES ('a') RETURNING id", ())
            .await
            .unwrap();
        assert_eq!(id, Some(1));
        let row = pool
            .fetch_one("INSERT INTO t(v) VALUES (?) RETURNING id, v", ["b"])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<String>("v").unwrap(), "b");
        // …or by sqlite3_stmt_readonly when the verb does not tell (a writing pragma).
        pool.fetch_all("PRAGMA user_version = 7", ()).await.unwrap();
        let v: Option<i64> = pool.fetch_scalar("PRAGMA user_version", ()).await.unwrap();
        assert_eq!(v, Some(7));
        let n: Option<i64> = pool.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(n, Some(2));
        pool.close().await.unwrap();
    });
}

#[test]
fn long_write_transaction_does_not_block_readers() {
    common::on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let pool = pool_at(&path, 2).await;
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        pool.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let tx = pool.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        assert_eq!(
            tx.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(2)
        );
        // Readers run while the write transaction is open, and see committed data only.
        assert_eq!(
            pool.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(1)
        );
        assert!(pool.stats().writer_busy);
        tx.commit().await.unwrap();
        assert_eq!(
            pool.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(2)
        );
        assert!(!pool.stats().writer_busy);
        pool.close().await.unwrap();
    });
}

#[test]
fn reader_snapshot_is_stable_inside_a_read_transaction() {
    common::on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let pool = pool_at(&path, 1).await;
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        pool.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let reader = pool.reader().await.unwrap();
        reader.execute("BEGIN", ()).await.unwrap();
        assert_eq!(
            reader.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(1)
        );
        pool.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        assert_eq!(
            reader.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(1)
        );
        assert!(reader.in_transaction());
        // Dropping the guard rolls the read transaction back before the next holder gets it.
        drop(reader);
        let again = pool.reader().await.unwrap();
        assert_eq!(
            again.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(2)
        );
        assert!(!again.in_transaction());
        drop(again);
        pool.close().await.unwrap();
    });
}

#[test]
fn acquire_timeout_and_cancelled_waiters_leave_the_pool_whole() {
    let (_dir, path) = common::temp_db();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = Pool::open(
            ConnectOptions::new(&path),
            PoolOptions::default()
                .readers(1)
                .acquire_timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap();
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let held_writer = pool.writer().await.unwrap();
        let held_reader = pool.reader().await.unwrap();
        let e = pool.execute("INSERT INTO t VALUES (1)", ()).await.unwrap_err();
        assert!(matches!(e, Error::PoolTimeout { .. }), "{e}");
        let e = pool.fetch_all("SELECT * FROM t", ()).await.unwrap_err();
        assert!(matches!(e, Error::PoolTimeout { .. }), "{e}");
        assert_eq!(pool.stats().timeouts, 2);

        // Many waiters, all cancelled (dropped) while queued.
        let mut waiters = Vec::new();
        for _ in 0..20 {
            let p = pool.clone();
            waiters.push(tokio::spawn(async move {
                p.fetch_all("SELECT * FROM t", ()).await.map(drop)
            }));
            let p = pool.clone();
            waiters.push(tokio::spawn(async move {
                p.execute("INSERT INTO t VALUES (9)", ()).await.map(drop)
            }));
        }
        assert!(common::eventually(|| {
            let s = pool.stats();
            s.reader_queue + s.writer_queue > 0
        }));
        for w in &waiters {
            w.abort();
        }
        for w in waiters {
            let _ = w.await;
        }
        drop(held_writer);
        drop(held_reader);
        let s = pool.stats();
        assert_eq!((s.readers_busy, s.readers_idle, s.writer_busy), (0, 1, false), "{s:?}");
        assert_eq!((s.reader_queue, s.writer_queue), (0, 0), "{s:?}");
        // Whole: both kinds of connection can be had again, and nothing cancelled ran.
        pool.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let n: Option<i64> = pool.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(n, Some(1));
        pool.close().await.unwrap();
    });
}

#[test]
fn writers_are_served_in_fifo_order() {
    let (_dir, path) = common::temp_db();
    let rt = common::current_thread_rt();
    rt.block_on(async {
        let pool = pool_at(&path, 1).await;
        pool.execute("CREATE TABLE t(seq INTEGER)", ()).await.unwrap();
        let held = pool.writer().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..10_i64 {
            let p = pool.clone();
            tasks.push(tokio::spawn(async move {
                p.execute("INSERT INTO t VALUES (?)", [i]).await.unwrap();
            }));
            // Let task i enqueue before task i+1.
            while pool.stats().writer_queue < usize::try_from(i).unwrap() + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let seq: Vec<i64> = pool
            .fetch_all("SELECT seq FROM t ORDER BY rowid", ())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(seq, (0..10).collect::<Vec<_>>());
        pool.close().await.unwrap();
    });
}

#[test]
fn transactions_on_the_pool() {
    common::on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let pool = pool_at(&path, 2).await;
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let r: Result<(), Error> = pool
            .with_transaction(|tx| async move {
                tx.execute("INSERT INTO t VALUES (1)", ()).await?;
                Err(Error::InvalidArgument { message: "nope".into() })
            })
            .await;
        assert!(r.is_err());
        pool.with_transaction(|tx| async move { tx.execute("INSERT INTO t VALUES (2)", ()).await })
            .await
            .unwrap();
        let rows: Vec<(i64,)> = pool.fetch_all_as("SELECT x FROM t", ()).await.unwrap();
        assert_eq!(rows, vec![(2,)]);
        // A dropped pool transaction rolls back and frees the writer.
        let tx = pool.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (3)", ()).await.unwrap();
        drop(tx);
        pool.execute("INSERT INTO t VALUES (4)", ()).await.unwrap();
        let sum: Option<i64> = pool.fetch_scalar("SELECT sum(x) FROM t", ()).await.unwrap();
        assert_eq!(sum, Some(6));
        // A writer guard left in a transaction is rolled back on drop.
        let w = pool.writer().await.unwrap();
        w.execute("BEGIN", ()).await.unwrap();
        w.execute("INSERT INTO t VALUES (100)", ()).await.unwrap();
        drop(w);
        let sum: Option<i64> = pool.fetch_scalar("SELECT sum(x) FROM t", ()).await.unwrap();
        assert_eq!(sum, Some(6));
        pool.close().await.unwrap();
    });
}

#[test]
fn cursors_and_call_through_the_pool() {
    common::on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let pool = pool_at(&path, 1).await;
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        pool.execute_many("INSERT INTO t VALUES (?)", (0..500).map(|i| [i]))
            .await
            .unwrap();
        let mut cur = pool.query("SELECT x FROM t ORDER BY x", ()).await.unwrap();
        // The cursor holds the only reader; other reads wait, writes do not.
        assert_eq!(pool.stats().readers_busy, 1);
        pool.execute("INSERT INTO t VALUES (500)", ()).await.unwrap();
        let rows = cur.fetch_all().await.unwrap();
        assert_eq!(rows.len(), 500);
        drop(cur);
        assert_eq!(pool.stats().readers_busy, 0);
        let n: i64 = pool
            .call(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 501);
        pool.close().await.unwrap();
    });
}

#[test]
fn memory_pool_uses_one_connection() {
    common::on_all_runtimes(|| async {
        let pool = Pool::open(ConnectOptions::new(":memory:"), PoolOptions::default().readers(4))
            .await
            .unwrap();
        assert_eq!(pool.stats().readers, 0);
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        pool.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let n: Option<i64> = pool.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(n, Some(1));
        let r = pool.reader().await.unwrap();
        assert!(r.is_writer());
        drop(r);
        pool.close().await.unwrap();
    });
}

#[test]
fn close_refuses_new_work() {
    common::on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let pool = pool_at(&path, 2).await;
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let clone = pool.clone();
        pool.close().await.unwrap();
        pool.close().await.unwrap();
        assert!(clone.is_closed());
        assert!(matches!(
            clone.execute("INSERT INTO t VALUES (1)", ()).await,
            Err(Error::Closed)
        ));
        assert!(matches!(clone.fetch_all("SELECT 1", ()).await, Err(Error::Closed)));
        assert!(matches!(clone.reader().await, Err(Error::Closed)));
        assert!(matches!(clone.transaction().await, Err(Error::Closed)));
    });
}

#[test]
fn pool_and_guards_are_send_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<Pool>();
    let (_dir, path) = common::temp_db();
    futures::executor::block_on(async {
        let pool = pool_at(&path, 1).await;
        let f = pool.fetch_all("SELECT 1", ());
        assert_send(&f);
        drop(f);
        let g = pool.reader().await.unwrap();
        assert_send(&g);
        drop(g);
        pool.close().await.unwrap();
    });
}

#[test]
fn read_anchor_holds_while_reads_overlap_and_never_holds_back_checkpoints() {
    let (_dir, path) = common::temp_db();
    let rt = common::multi_thread_rt(2);
    rt.block_on(async {
        let pool = Pool::open(
            ConnectOptions::new(&path)
                .recommended_pragmas()
                .pragma("wal_autocheckpoint", "16"),
            PoolOptions::default().readers(2),
        )
        .await
        .unwrap();
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        // A lone read starts nothing.
        pool.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(pool.stats().anchor_holds, 0);
        // A read while another reader is busy starts the anchor.
        let held = pool.reader().await.unwrap();
        pool.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
        assert!(common::eventually(|| pool.stats().anchor_holds >= 1));
        // Reads overlapping all the time while the writer commits: every read sees the last
        // commit, and the log still gets checkpointed and restarted (a read transaction held
        // across commits would make it grow by every commit).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reads = {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0_u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    pool.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
                    n += 1;
                    if n % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                n
            })
        };
        for i in 1..=400_i64 {
            pool.execute("INSERT INTO t VALUES (randomblob(3000))", ())
                .await
                .unwrap();
            if i % 50 == 0 {
                assert_eq!(
                    pool.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
                    Some(i),
                    "a read missed a commit"
                );
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reads.await.unwrap() > 0);
        // Each commit adds 3 frames: 1,200 means the log never restarted. Reads that overlap
        // all the time hold restarts back anyway (150-300 frames without the anchor here,
        // 190-450 with it; an anchor holding its snapshot across commits: 1,200).
        let frames = common::wal_frames(&path);
        assert!(
            frames < 900,
            "the log grew to {frames} frames over 400 commits: it never restarted"
        );
        // The reads stopped: the anchor lets go, and a TRUNCATE checkpoint (which needs every
        // read lock free) goes through.
        drop(held);
        assert!(common::eventually(|| !pool.stats().anchor_active));
        let writer = pool.writer().await.unwrap();
        assert_eq!(
            common::truncate_checkpoint(writer.connection()).await,
            0,
            "the checkpoint was blocked"
        );
        drop(writer);
        assert_eq!(common::wal_frames(&path), 0);
        pool.close().await.unwrap();
    });
}

#[test]
fn read_anchor_only_in_wal_mode_and_on_request() {
    let rt = common::current_thread_rt();
    rt.block_on(async {
        for (journal, enabled) in [("DELETE", true), ("WAL", false)] {
            let (_dir, path) = common::temp_db();
            let pool = Pool::open(
                ConnectOptions::new(&path).pragma("journal_mode", journal),
                PoolOptions::default().readers(2).anchor_reads(enabled),
            )
            .await
            .unwrap();
            pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
            let held = pool.reader().await.unwrap();
            pool.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            assert_eq!(pool.stats().anchor_holds, 0, "{journal}");
            // In rollback-journal mode a held read lock would make this fail with BUSY.
            pool.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
            drop(held);
            pool.close().await.unwrap();
        }
    });
}

#[test]
fn read_anchor_starts_for_a_steady_stream_of_reads_not_for_sparse_ones() {
    let (_dir, path) = common::temp_db();
    let rt = common::current_thread_rt();
    rt.block_on(async {
        let pool = pool_at(&path, 2).await;
        pool.execute("CREATE TABLE t(x)", ()).await.unwrap();
        // One task, reads 2 ms apart: each pays its own lock calls, no anchor.
        for _ in 0..20 {
            pool.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            common::delay(Duration::from_millis(2)).await;
        }
        assert_eq!(pool.stats().anchor_holds, 0);
        // One task reading back to back starts it (no read ever overlaps another here).
        let mut reads = 0;
        while pool.stats().anchor_holds == 0 && reads < 100_000 {
            pool.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            reads += 1;
        }
        assert!(pool.stats().anchor_holds >= 1, "after {reads} reads");
        assert!(reads >= 16, "started after {reads} reads");
        pool.close().await.unwrap();
    });
}
