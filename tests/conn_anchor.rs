//! A connection's read anchor (`ConnectOptions::anchor_reads`): when it starts, that reads stay
//! fresh and checkpoints are not held back, that commands needing the database to themselves
//! still run, and that it leaves no thread or handle behind. Its own binary: it counts the
//! process's threads and file descriptors.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aiolite::{ConnectOptions, Connection};

async fn wal(path: &std::path::Path) -> Connection {
    ConnectOptions::new(path)
        .recommended_pragmas()
        .anchor_reads(true)
        .open()
        .await
        .unwrap()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn read_anchor_of_a_connection() {
    let (_dir, path) = common::temp_db();
    let rt = common::multi_thread_rt(2);
    rt.block_on(async {
        let before_fds = fds();
        let db = wal(&path).await;
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        // Sparse reads start nothing.
        for _ in 0..20 {
            db.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            common::delay(Duration::from_millis(2)).await;
        }
        assert_eq!(db.read_anchor(), (0, false));
        // A steady stream does, on the connection's own worker thread: no new thread.
        let mut reads = 0;
        while db.read_anchor().0 == 0 && reads < 100_000 {
            db.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            reads += 1;
        }
        assert!(db.read_anchor().0 >= 1, "no hold after {reads} reads");
        assert!(reads >= 16, "started after {reads} reads");
        assert_eq!(common::worker_threads(), 1);

        // Reads go on in a task while another connection commits 400 times: each read sees
        // the commits made before it, and the log still restarts (a read transaction held
        // across commits would keep it growing by every commit: 1,200 frames).
        let other = ConnectOptions::new(&path)
            .recommended_pragmas()
            .pragma("wal_autocheckpoint", "16")
            .open()
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    db.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        for i in 1..=400_i64 {
            other
                .execute("INSERT INTO t VALUES (randomblob(3000))", ())
                .await
                .unwrap();
            if i % 50 == 0 {
                let n = db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap();
                assert_eq!(n, Some(i), "a read missed a commit");
            }
        }
        stop.store(true, Ordering::Relaxed);
        reads.await.unwrap();
        let frames = common::wal_frames(&path);
        assert!(frames < 900, "the log grew to {frames} frames: it never restarted");
        // The reads stopped: the anchor lets go, and a TRUNCATE checkpoint (every read lock
        // free) goes through.
        assert!(common::eventually(|| !db.read_anchor().1));
        assert_eq!(
            common::truncate_checkpoint(&other).await,
            0,
            "the checkpoint was blocked"
        );
        other.close().await.unwrap();

        // Commands run while reads stream (the anchor lets go before each): every write
        // lands and every read after it sees it.
        for i in 401..=450_i64 {
            for _ in 0..20 {
                db.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            }
            db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
            assert_eq!(
                db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
                Some(i)
            );
        }
        db.close().await.unwrap();
        assert!(common::eventually(|| common::worker_threads() == 0));
        assert!(common::eventually(|| fds() <= before_fds), "{} > {before_fds}", fds());

        // A `mode=rwc` URI: the second handle opens the file read-only all the same.
        let uri = format!("file:{}?mode=rwc", path.display());
        let db = ConnectOptions::new(&uri).anchor_reads(true).open().await.unwrap();
        let mut reads = 0;
        while db.read_anchor().0 == 0 && reads < 100_000 {
            db.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            reads += 1;
        }
        assert!(db.read_anchor().0 >= 1, "no hold after {reads} reads");
        db.close().await.unwrap();

        // A database this connection holds exclusively (`locking_mode=EXCLUSIVE` after a
        // write): the second handle finds it locked and skips its rounds without waiting, so
        // commands between the reads run at once (a busy wait would hold the worker 5 s).
        let (_dir3, excl) = common::temp_db();
        let db = ConnectOptions::new(&excl)
            .recommended_pragmas()
            .pragma("locking_mode", "EXCLUSIVE")
            .anchor_reads(true)
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let t = std::time::Instant::now();
        for i in 1..=20_i64 {
            for _ in 0..50 {
                db.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            }
            db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
            assert_eq!(
                db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
                Some(i)
            );
        }
        assert!(t.elapsed() < Duration::from_secs(4), "took {:?}", t.elapsed());
        assert_eq!(db.read_anchor().0, 0, "held a lock on a database held exclusively");
        db.close().await.unwrap();

        // Never for in-memory databases, shared-cache URIs (one page cache: the anchor's
        // snapshot would be the reads'), outside WAL mode, or by default.
        let (_dir2, rollback) = common::temp_db();
        let shared_cache = format!("file:{}?cache=shared", path.display());
        for db in [
            ConnectOptions::new(":memory:").anchor_reads(true).open().await.unwrap(),
            ConnectOptions::new(&shared_cache)
                .anchor_reads(true)
                .open()
                .await
                .unwrap(),
            ConnectOptions::new(&rollback)
                .pragma("journal_mode", "DELETE")
                .anchor_reads(true)
                .open()
                .await
                .unwrap(),
            ConnectOptions::new(&path).open().await.unwrap(),
        ] {
            for _ in 0..500 {
                db.fetch_one("SELECT 1", ()).await.unwrap();
            }
            assert!(common::eventually(|| !db.read_anchor().1));
            assert_eq!(db.read_anchor().0, 0);
            db.close().await.unwrap();
        }
    });
}
