//! `fetch_all` of big results: past the first rows, the worker sends encoded chunks and the
//! awaiting future builds the rows (see `src/pipe.rs`). Everything a `fetch_all` promises
//! holds across that boundary: every row in order with its exact values, errors after the
//! first rows, invalid UTF-8, cancellation by dropping the future, statement timeouts,
//! ordering against later commands, transactions, `RETURNING`, pools and the raw API.

mod common;

use std::time::Duration;

use aiolite::raw::{Command, Reply};
use aiolite::{ConnectOptions, Connection, Error, Pool, PoolOptions, Value};
use common::{NO_HANG, on_all_runtimes, within};

/// Around the first batch (256 rows), and well past it.
const SIZES: [i64; 9] = [0, 1, 255, 256, 257, 258, 513, 4_099, 30_000];

fn series(n: i64) -> String {
    format!("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {n})")
}

/// Never ends unless stopped.
const ENDLESS: &str =
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n, 'some text ' || n FROM c";

async fn worker_only() -> Connection {
    // No inline reads: every statement runs on the worker, where results stream.
    ConnectOptions::new(":memory:")
        .inline_reads(false)
        .open()
        .await
        .unwrap()
}

/// The row `n` of the mixed-type query below.
fn expected(n: i64) -> Vec<Value> {
    vec![
        Value::Integer(n),
        Value::Text(format!("row-{n}")),
        Value::Real(n as f64 * 0.5),
        if n % 3 == 0 {
            Value::Null
        } else {
            Value::Blob(vec![(n % 256) as u8, 0, 0xff])
        },
        if n % 5 == 0 {
            Value::Text(String::new())
        } else {
            Value::Integer(-n)
        },
    ]
}

fn mixed(n: i64) -> String {
    format!(
        "{} SELECT n, 'row-' || n AS label, n * 0.5, \
         CASE WHEN n % 3 = 0 THEN NULL ELSE CAST(char(n % 256) AS BLOB) END, \
         CASE WHEN n % 5 = 0 THEN '' ELSE -n END FROM c WHERE n <= {n}",
        series(n.max(1))
    )
}

fn check(rows: &[aiolite::Row], n: i64) {
    assert_eq!(rows.len() as i64, n);
    for (i, row) in rows.iter().enumerate() {
        let k = i as i64 + 1;
        let got: Vec<Value> = (0..5).map(|c| row.get::<Value>(c).unwrap()).collect();
        let mut want = expected(k);
        // char(n) is UTF-8 text; as a blob it holds the UTF-8 bytes.
        if let Value::Blob(_) = want[3] {
            want[3] = Value::Blob(char::from_u32((k % 256) as u32).unwrap().to_string().into_bytes());
        }
        assert_eq!(got, want, "row {k}");
        assert_eq!(row.get::<String>("label").unwrap(), format!("row-{k}"));
    }
}

#[test]
fn every_row_arrives_in_order_with_its_values() {
    on_all_runtimes(|| async {
        for db in [worker_only().await, aiolite::connect(":memory:").await.unwrap()] {
            for n in SIZES {
                let rows = db.fetch_all(&mixed(n), ()).await.unwrap();
                check(&rows, n);
                // Again on the same statement (sized from the last run).
                check(&db.fetch_all(&mixed(n), ()).await.unwrap(), n);
            }
            common::close(&db).await;
        }
    });
}

#[test]
fn values_bigger_than_a_chunk() {
    on_all_runtimes(|| async {
        let db = worker_only().await;
        let sql = format!(
            "{} SELECT n, CASE WHEN n % 50 = 0 THEN printf('%.*c', 150000, 'x') ELSE 'small' END, \
             CASE WHEN n % 70 = 0 THEN zeroblob(100000) ELSE x'01' END FROM c",
            series(1_000)
        );
        let rows = db.fetch_all(&sql, ()).await.unwrap();
        assert_eq!(rows.len(), 1_000);
        for (i, row) in rows.iter().enumerate() {
            let k = i + 1;
            let text: String = row.get(1).unwrap();
            let blob: Vec<u8> = row.get(2).unwrap();
            assert_eq!(text.len(), if k % 50 == 0 { 150_000 } else { 5 }, "row {k}");
            assert_eq!(blob.len(), if k % 70 == 0 { 100_000 } else { 1 }, "row {k}");
        }
        common::close(&db).await;
    });
}

#[test]
fn an_error_after_the_first_rows_fails_the_call_and_nothing_else() {
    on_all_runtimes(|| async {
        let db = worker_only().await;
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        // abs() of the smallest integer overflows: a runtime error at row 5,000.
        let sql = format!(
            "{} SELECT CASE WHEN n < 5000 THEN n ELSE abs(-9223372036854775807 - 1) END, 'text' FROM c",
            series(10_000)
        );
        let err = tx.fetch_all(&sql, ()).await.unwrap_err();
        assert!(err.to_string().contains("integer overflow"), "{err}");
        assert_eq!(err.sql(), Some(sql.as_str()));
        // The transaction and the connection go on.
        assert_eq!(
            tx.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(1)
        );
        tx.commit().await.unwrap();
        check(&db.fetch_all(&mixed(1_000), ()).await.unwrap(), 1_000);
        common::close(&db).await;
    });
}

#[test]
fn invalid_utf8_after_the_first_rows_names_the_column() {
    on_all_runtimes(|| async {
        let db = worker_only().await;
        let sql = format!(
            "{} SELECT n, CASE WHEN n = 3000 THEN CAST(x'ff' AS TEXT) ELSE 'ok' END AS label FROM c",
            series(5_000)
        );
        match db.fetch_all(&sql, ()).await {
            Err(Error::InvalidUtf8 { column }) => assert!(column.contains("label"), "{column}"),
            other => panic!("expected InvalidUtf8, got {other:?}"),
        }
        assert_eq!(db.fetch_scalar::<i64>("SELECT 7", ()).await.unwrap(), Some(7));
        common::close(&db).await;
    });
}

#[test]
fn dropping_the_future_stops_the_statement() {
    on_all_runtimes(|| async {
        for db in [worker_only().await, aiolite::connect(":memory:").await.unwrap()] {
            // Without the stop the worker would step this query forever.
            assert!(
                within(Duration::from_millis(150), db.fetch_all(ENDLESS, ()))
                    .await
                    .is_none()
            );
            let next = within(NO_HANG, db.fetch_scalar::<i64>("SELECT 42", ())).await;
            assert_eq!(
                next.expect("the worker is still on the dropped query").unwrap(),
                Some(42)
            );

            // The same inside a transaction (a read may stop there too).
            db.execute("CREATE TABLE IF NOT EXISTS t(x)", ()).await.unwrap();
            let tx = db.transaction().await.unwrap();
            tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
            assert!(
                within(Duration::from_millis(150), tx.fetch_all(ENDLESS, ()))
                    .await
                    .is_none()
            );
            let n = within(NO_HANG, tx.fetch_scalar::<i64>("SELECT count(*) FROM t", ())).await;
            assert_eq!(n.expect("hung").unwrap(), Some(1));
            tx.commit().await.unwrap();
            common::close(&db).await;
        }
    });
}

#[test]
fn a_statement_timeout_covers_the_whole_result() {
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_timeout(Duration::from_millis(100))
            .open()
            .await
            .unwrap();
        match within(NO_HANG, db.fetch_all(ENDLESS, ())).await.expect("hung") {
            Err(Error::StatementTimeout { .. }) => {}
            other => panic!("expected StatementTimeout, got {:?}", other.map(|r| r.len())),
        }
        check(&db.fetch_all(&mixed(600), ()).await.unwrap(), 600);
        common::close(&db).await;
    });
}

#[test]
fn commands_sent_during_a_big_result_run_after_it() {
    on_all_runtimes(|| async {
        let db = worker_only().await;
        db.execute_script(&format!(
            "CREATE TABLE t(x); INSERT INTO t {} SELECT n FROM c;",
            series(20_000)
        ))
        .await
        .unwrap();
        let (rows, inserted) = futures::join!(
            db.fetch_all("SELECT x, 'padding padding' FROM t", ()),
            db.execute("INSERT INTO t VALUES (0)", ())
        );
        // The insert was sent while the rows were on their way: it ran after the query.
        assert_eq!(rows.unwrap().len(), 20_000);
        assert_eq!(inserted.unwrap().changes, 1);
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(20_001)
        );
        common::close(&db).await;
    });
}

#[test]
fn returning_rows_of_a_big_insert() {
    on_all_runtimes(|| async {
        let db = worker_only().await;
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)", ())
            .await
            .unwrap();
        let tx = db.transaction().await.unwrap();
        let sql = format!("INSERT INTO t(x) {} SELECT n * 2 FROM c RETURNING id, x", series(3_000));
        let rows = tx.fetch_all(&sql, ()).await.unwrap();
        assert_eq!(rows.len(), 3_000);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(
                (r.get::<i64>(0).unwrap(), r.get::<i64>(1).unwrap()),
                (i as i64 + 1, (i as i64 + 1) * 2)
            );
        }
        tx.commit().await.unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(3_000)
        );
        common::close(&db).await;
    });
}

#[test]
fn pools_and_fetch_all_as_stream_too() {
    #[derive(serde::Deserialize)]
    struct Item {
        n: i64,
        label: String,
    }
    on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let pool = Pool::open(
            ConnectOptions::new(&path).recommended_pragmas(),
            PoolOptions::default().readers(2),
        )
        .await
        .unwrap();
        pool.execute_script(&format!(
            "CREATE TABLE t(n INTEGER PRIMARY KEY, label TEXT); INSERT INTO t {} SELECT n, 'l' || n FROM c;",
            series(12_000)
        ))
        .await
        .unwrap();
        let rows = pool.fetch_all("SELECT n, label FROM t ORDER BY n", ()).await.unwrap();
        assert_eq!(rows.len(), 12_000);
        assert_eq!(rows[11_999].get::<String>("label").unwrap(), "l12000");
        let items: Vec<Item> = pool
            .fetch_all_as("SELECT n, label FROM t ORDER BY n", ())
            .await
            .unwrap();
        assert_eq!(items.len(), 12_000);
        assert!(
            items
                .iter()
                .enumerate()
                .all(|(i, it)| it.n == i as i64 + 1 && it.label == format!("l{}", i + 1))
        );
        pool.close().await.unwrap();
    });
}

#[test]
fn the_raw_api_gets_every_row_in_one_reply() {
    let db = futures::executor::block_on(worker_only());
    let (tx, rx) = std::sync::mpsc::channel();
    db.submit(Command::fetch_all(mixed(2_000), ()), move |r| tx.send(r).unwrap())
        .unwrap();
    match rx.recv_timeout(NO_HANG).expect("no reply") {
        Ok(Reply::Rows(rows)) => check(&rows, 2_000),
        other => panic!("expected every row in one reply, got {other:?}"),
    }
    futures::executor::block_on(common::close(&db));
}

#[test]
fn a_read_too_long_to_run_inline_goes_straight_to_the_worker_next_time() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A read-only statement may first run on the caller's thread; past its time budget it is
    // stopped and sent to the worker. The statement remembers that: its next runs go to the
    // worker at once instead of spending the budget again.
    common::current_thread_rt().block_on(async {
        let db = ConnectOptions::new(":memory:")
            .inline_budget(Duration::from_micros(200))
            .open()
            .await
            .unwrap();
        let off_worker = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&off_worker);
        db.create_function("mark", 1, false, move |args: &[Value]| {
            let on_worker = std::thread::current().name().is_some_and(|n| n.starts_with("aiolite-"));
            if !on_worker {
                seen.fetch_add(1, Ordering::Relaxed);
            }
            Ok(args[0].clone())
        })
        .await
        .unwrap();
        let sql = format!("{} SELECT mark(n), randomblob(2000) FROM c", series(20_000));
        let rows = db.fetch_all(&sql, ()).await.unwrap();
        assert_eq!(rows.len(), 20_000);
        assert!(
            off_worker.load(Ordering::Relaxed) > 0,
            "the first run did not start inline"
        );
        for _ in 0..3 {
            let before = off_worker.load(Ordering::Relaxed);
            assert_eq!(db.fetch_all(&sql, ()).await.unwrap().len(), 20_000);
            assert_eq!(
                off_worker.load(Ordering::Relaxed),
                before,
                "a later run started inline again"
            );
        }
        // A quick statement still runs inline.
        let before = off_worker.load(Ordering::Relaxed);
        db.fetch_one("SELECT mark(1)", ()).await.unwrap();
        assert_eq!(off_worker.load(Ordering::Relaxed), before + 1);
        common::close(&db).await;
    });
}

#[test]
fn the_call_returns_after_the_command_is_over() {
    // The rows may all have arrived before the worker has finished the command; the call
    // returns only once it has (the connection's state is then up to date: here the
    // transaction the Python-style isolation level opened, and the changes).
    on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .inline_reads(false)
            .isolation_level(Some(aiolite::IsolationLevel::Deferred))
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)", ())
            .await
            .unwrap();
        db.commit().await.unwrap();
        for round in 1..=20_u64 {
            let sql = format!("INSERT INTO t(x) {} SELECT n FROM c RETURNING id", series(2_000));
            assert_eq!(db.fetch_all(&sql, ()).await.unwrap().len(), 2_000);
            assert!(
                db.in_transaction(),
                "round {round}: the implicit transaction is not visible yet"
            );
            assert_eq!(db.total_changes(), round * 2_000, "round {round}");
            db.commit().await.unwrap();
            assert!(!db.in_transaction());
        }
        common::close(&db).await;
    });
}
