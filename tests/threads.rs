//! Worker-thread lifecycle: every way a connection ends (close, last handle dropped, failed
//! open) ends its `aiolite-*` thread. One #[test] in its own binary, because the counts are
//! per process and tests of one binary run in parallel.

mod common;

use std::time::Duration;

use aiolite::{ConnectOptions, ErrorCode};
use common::{SLOW_QUERY, eventually, temp_db, worker_threads};
use futures::FutureExt;
use futures::executor::block_on;

fn back_to(baseline: usize, what: &str) {
    assert!(
        eventually(|| worker_threads() == baseline),
        "{what}: {} aiolite threads, expected {baseline}",
        worker_threads()
    );
}

#[test]
fn worker_threads_end_with_their_connection() {
    let baseline = worker_threads();

    // close()
    let db = block_on(aiolite::connect(":memory:")).unwrap();
    assert_eq!(worker_threads(), baseline + 1, "one named thread per connection");
    block_on(common::close(&db));
    back_to(baseline, "after close");

    // The last handle dropped without close(), clones included.
    let db = block_on(aiolite::connect(":memory:")).unwrap();
    let clone = db.clone();
    block_on(clone.execute("CREATE TABLE t(x)", ())).unwrap();
    drop(db);
    assert!(
        block_on(clone.fetch_all("SELECT * FROM t", ())).is_ok(),
        "a clone keeps it alive"
    );
    drop(clone);
    back_to(baseline, "after dropping every handle");

    // A cursor and a transaction keep the worker alive, and dropping them ends it.
    let db = block_on(aiolite::connect(":memory:")).unwrap();
    let mut cur = block_on(db.query(
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000) SELECT n FROM c",
        (),
    ))
    .unwrap();
    drop(db);
    assert_eq!(
        block_on(cur.fetch_all()).unwrap().len(),
        1000,
        "the cursor outlives the handle"
    );
    assert_eq!(worker_threads(), baseline + 1);
    drop(cur);
    back_to(baseline, "after dropping a cursor that outlived its connection");

    let db = block_on(aiolite::connect(":memory:")).unwrap();
    let tx = block_on(db.transaction()).unwrap();
    drop(db);
    block_on(tx.execute("CREATE TABLE t(x)", ())).unwrap();
    drop(tx);
    back_to(baseline, "after dropping a transaction that outlived its connection");

    // Dropped while a long statement runs: the statement is cancelled and the thread ends.
    let db = block_on(aiolite::connect(":memory:")).unwrap();
    {
        let mut slow = Box::pin(db.fetch_scalar::<i64>(SLOW_QUERY, ()));
        assert!((&mut slow).now_or_never().is_none());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(db);
    back_to(baseline, "after dropping a connection whose long read was abandoned");

    // A connect future dropped half-way.
    {
        let mut fut = Box::pin(aiolite::connect(":memory:"));
        let _ = (&mut fut).now_or_never();
    }
    back_to(baseline, "after dropping a connect future");

    // Every failed open leaves no thread behind.
    let (dir, path) = temp_db();
    let failures: Vec<(&str, ConnectOptions)> = vec![
        ("a directory", ConnectOptions::new(dir.path())),
        (
            "a missing directory",
            ConnectOptions::new(dir.path().join("no/such/x.db")),
        ),
        (
            "create_if_missing(false)",
            ConnectOptions::new(&path).create_if_missing(false),
        ),
        (
            "an invalid pragma name",
            ConnectOptions::new(":memory:").pragma("a b", "1"),
        ),
        (
            "a pragma mismatch",
            ConnectOptions::new(":memory:").pragma("page_size", "1000"),
        ),
    ];
    for (what, opts) in failures {
        let err = block_on(opts.open()).unwrap_err();
        if what.contains("directory") || what.contains("create") {
            assert_eq!(err.sqlite_code(), Some(ErrorCode::CantOpen), "{what}: {err}");
        }
        back_to(baseline, what);
    }

    // Many connections opened and closed in a row.
    for _ in 0..20 {
        let db = block_on(aiolite::connect(":memory:")).unwrap();
        block_on(db.execute("SELECT 1", ())).unwrap();
    }
    back_to(baseline, "after 20 dropped connections");
}
