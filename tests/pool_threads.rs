//! A pool's threads, its read anchor's included, end on close and on drop. One test in its own
//! binary: it counts the process's worker threads.

mod common;

use aiolite::{ConnectOptions, Pool, PoolOptions};

#[test]
fn a_pool_with_a_busy_read_anchor_leaves_no_thread_on_close_or_drop() {
    let (_dir, path) = common::temp_db();
    let rt = common::multi_thread_rt(2);
    assert_eq!(common::worker_threads(), 0);
    for close in [true, false] {
        rt.block_on(async {
            let pool = Pool::open(
                ConnectOptions::new(&path).recommended_pragmas(),
                PoolOptions::default().readers(2),
            )
            .await
            .unwrap();
            pool.execute("CREATE TABLE IF NOT EXISTS t(x)", ()).await.unwrap();
            // writer + 2 readers + the anchor
            assert_eq!(common::worker_threads(), 4);
            let held = pool.reader().await.unwrap();
            pool.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            assert!(common::eventually(|| pool.stats().anchor_holds >= 1));
            // Keep the anchor at work while the pool goes away.
            for _ in 0..100 {
                pool.fetch_one("SELECT count(*) FROM t", ()).await.unwrap();
            }
            drop(held);
            if close {
                pool.close().await.unwrap();
            } else {
                drop(pool);
            }
        });
        assert!(
            common::eventually(|| common::worker_threads() == 0),
            "close: {close}; left: {:?}",
            common::worker_thread_names()
        );
    }
}
