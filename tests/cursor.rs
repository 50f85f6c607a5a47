//! API.md §2: `query` and `Cursor`.

mod common;

use aiolite::{ConnectOptions, Connection, Error};
use common::on_all_runtimes;
use futures::{StreamExt, TryStreamExt};

const N: i64 = 10_000;

fn series(n: i64) -> String {
    format!("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {n}) SELECT n FROM c")
}

async fn chunked(chunk: usize) -> Connection {
    ConnectOptions::new(":memory:")
        .iter_chunk_size(chunk)
        .open()
        .await
        .unwrap()
}

fn ints(rows: &[aiolite::Row]) -> Vec<i64> {
    rows.iter().map(|r| r.get::<i64>(0).unwrap()).collect()
}

#[test]
fn columns_report_names_and_declared_types() {
    on_all_runtimes(|| async {
        let db = chunked(4).await;
        db.execute(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, price REAL, raw BLOB, any_col)",
            (),
        )
        .await
        .unwrap();
        let cur = db
            .query("SELECT id, name AS label, price, raw, any_col, 1 + 1 AS two FROM t", ())
            .await
            .unwrap();
        let cols: Vec<(&str, Option<&str>)> = cur.columns().iter().map(|c| (c.name(), c.decl_type())).collect();
        assert_eq!(
            cols,
            vec![
                ("id", Some("INTEGER")),
                ("label", Some("TEXT")),
                ("price", Some("REAL")),
                ("raw", Some("BLOB")),
                ("any_col", None),
                ("two", None),
            ]
        );
    });
}

#[test]
fn cursor_over_an_empty_result() {
    on_all_runtimes(|| async {
        let db = chunked(3).await;
        db.execute("CREATE TABLE t(a INTEGER, b TEXT)", ()).await.unwrap();
        let mut cur = db.query("SELECT a, b FROM t", ()).await.unwrap();
        assert_eq!(cur.columns().len(), 2, "columns known without rows");
        assert!(cur.fetch_one().await.unwrap().is_none());
        assert!(cur.fetch_one().await.unwrap().is_none(), "stays exhausted");
        assert!(cur.fetch_many(5).await.unwrap().is_empty());
        assert!(cur.fetch_all().await.unwrap().is_empty());
        assert!(cur.next().await.is_none());
        let mut cur = db.query("SELECT a FROM t", ()).await.unwrap();
        assert!(cur.fetch_all().await.unwrap().is_empty());
    });
}

#[test]
fn fetch_one_many_all_in_sequence_are_contiguous() {
    on_all_runtimes(|| async {
        let db = chunked(7).await;
        let mut cur = db.query(&series(1000), ()).await.unwrap();
        let mut got = Vec::new();
        got.push(cur.fetch_one().await.unwrap().unwrap().get::<i64>(0).unwrap());
        got.extend(ints(&cur.fetch_many(13).await.unwrap()));
        got.extend(ints(&cur.fetch_many(0).await.unwrap()));
        for _ in 0..5 {
            got.push(cur.next().await.unwrap().unwrap().get::<i64>(0).unwrap());
        }
        got.extend(ints(&cur.fetch_many(100).await.unwrap()));
        got.extend(ints(&cur.fetch_all().await.unwrap()));
        assert_eq!(got, (1..=1000).collect::<Vec<_>>());
        assert!(cur.fetch_one().await.unwrap().is_none());
        assert!(cur.fetch_many(3).await.unwrap().is_empty());
    });
}

#[test]
fn fetch_many_returns_fewer_only_at_the_end() {
    on_all_runtimes(|| async {
        let db = chunked(4).await;
        let mut cur = db.query(&series(10), ()).await.unwrap();
        assert_eq!(ints(&cur.fetch_many(6).await.unwrap()), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(ints(&cur.fetch_many(6).await.unwrap()), vec![7, 8, 9, 10]);
        assert!(cur.fetch_many(6).await.unwrap().is_empty());
    });
}

#[test]
fn streams_many_chunks_in_exact_order() {
    on_all_runtimes(|| async {
        let db = chunked(7).await;
        let cur = db.query(&series(N), ()).await.unwrap();
        let rows: Vec<aiolite::Row> = cur.try_collect().await.unwrap();
        assert_eq!(rows.len(), N as usize);
        assert!(ints(&rows).iter().copied().eq(1..=N));
    });
}

#[test]
fn stream_with_stream_ext_next() {
    on_all_runtimes(|| async {
        let db = chunked(7).await;
        let mut cur = db.query(&series(N), ()).await.unwrap();
        let mut expected = 1;
        while let Some(row) = cur.next().await {
            assert_eq!(row.unwrap().get::<i64>(0).unwrap(), expected);
            expected += 1;
        }
        assert_eq!(expected, N + 1);
    });
}

#[test]
fn fetch_all_over_many_chunks() {
    on_all_runtimes(|| async {
        let db = chunked(7).await;
        let mut cur = db.query(&series(N), ()).await.unwrap();
        let rows = cur.fetch_all().await.unwrap();
        assert!(ints(&rows).iter().copied().eq(1..=N));
        // Read one row, then all the rest.
        let mut cur = db.query(&series(N), ()).await.unwrap();
        assert_eq!(cur.fetch_one().await.unwrap().unwrap().get::<i64>(0).unwrap(), 1);
        let rows = cur.fetch_all().await.unwrap();
        assert!(ints(&rows).iter().copied().eq(2..=N));
    });
}

#[test]
fn query_with_parameters_and_a_table() {
    on_all_runtimes(|| async {
        let db = chunked(5).await;
        db.execute("CREATE TABLE t(x INTEGER)", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", (0..100).map(|i| [i]))
            .await
            .unwrap();
        let cur = db
            .query("SELECT x FROM t WHERE x % ? = 0 ORDER BY x", [10])
            .await
            .unwrap();
        let xs: Vec<i64> = cur.map(|r| r.unwrap().get::<i64>(0).unwrap()).collect().await;
        assert_eq!(xs, (0..100).step_by(10).collect::<Vec<_>>());
    });
}

#[test]
fn dropping_a_cursor_early_leaves_the_connection_usable() {
    on_all_runtimes(|| async {
        let db = chunked(7).await;
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", (0..1000).map(|i| [i]))
            .await
            .unwrap();
        for _ in 0..3 {
            let mut cur = db.query("SELECT x FROM t ORDER BY x", ()).await.unwrap();
            assert_eq!(cur.fetch_many(10).await.unwrap().len(), 10);
            drop(cur);
            // The statement was finalized: writes (which need no pending reads in some
            // journal modes) and new reads work.
            db.execute("INSERT INTO t VALUES (-1)", ()).await.unwrap();
            db.execute("DELETE FROM t WHERE x = -1", ()).await.unwrap();
            assert_eq!(
                db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
                Some(1000)
            );
        }
        let cur = db.query("SELECT x FROM t", ()).await.unwrap();
        cur.close();
        // DDL needs the table to be unused by any statement.
        db.execute("DROP TABLE t", ()).await.unwrap();
    });
}

#[test]
fn two_cursors_interleaved() {
    on_all_runtimes(|| async {
        let db = chunked(3).await;
        let mut a = db.query(&series(50), ()).await.unwrap();
        let b_sql = format!("SELECT n * 10 FROM ({})", series(40));
        let mut b = db.query(&b_sql, ()).await.unwrap();
        // Same SQL text as `a`, at the same time.
        let mut c = db.query(&series(50), ()).await.unwrap();
        let (mut va, mut vb, mut vc) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let ra = a.fetch_one().await.unwrap();
            let rb = b.fetch_one().await.unwrap();
            let rc = c.fetch_one().await.unwrap();
            // Another statement in between.
            assert_eq!(db.fetch_scalar::<i64>("SELECT 7", ()).await.unwrap(), Some(7));
            if ra.is_none() && rb.is_none() && rc.is_none() {
                break;
            }
            va.extend(ra.map(|r| r.get::<i64>(0).unwrap()));
            vb.extend(rb.map(|r| r.get::<i64>(0).unwrap()));
            vc.extend(rc.map(|r| r.get::<i64>(0).unwrap()));
        }
        assert_eq!(va, (1..=50).collect::<Vec<_>>());
        assert_eq!(vb, (1..=40).map(|n| n * 10).collect::<Vec<_>>());
        assert_eq!(vc, va);
    });
}

#[test]
fn a_cursor_sees_a_consistent_result_while_the_same_connection_writes() {
    on_all_runtimes(|| async {
        let db = chunked(2).await;
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", (0..20).map(|i| [i]))
            .await
            .unwrap();
        let mut cur = db.query("SELECT x FROM t ORDER BY x", ()).await.unwrap();
        let first = cur.fetch_many(5).await.unwrap();
        db.execute("CREATE TABLE other(y)", ()).await.unwrap();
        db.execute("INSERT INTO other VALUES (1)", ()).await.unwrap();
        let rest = cur.fetch_all().await.unwrap();
        assert_eq!(first.len() + rest.len(), 20);
    });
}

#[test]
fn query_errors_are_reported() {
    on_all_runtimes(|| async {
        let db = chunked(3).await;
        let err = db.query("SELECT * FROM missing", ()).await.unwrap_err();
        assert!(err.to_string().contains("no such table"), "{err}");
        assert_eq!(err.sql(), Some("SELECT * FROM missing"));
        let err = db.query("SELECT ?", ()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ParameterCount {
                    expected: 1,
                    given: 0,
                    ..
                }
            ),
            "{err:?}"
        );
        // An error while stepping a later chunk surfaces from the stream.
        db.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3), (4), (5), ('boom');")
            .await
            .unwrap();
        let failing = "SELECT CASE WHEN typeof(x) = 'text' THEN abs(-9223372036854775807 - 1) ELSE x END FROM t";
        let cur = db.query(failing, ()).await.unwrap();
        let items: Vec<aiolite::Result<aiolite::Row>> = cur.collect().await;
        let (last, ok) = items.split_last().unwrap();
        let err = last.as_ref().unwrap_err();
        assert!(err.to_string().contains("integer overflow"), "{err}");
        // Every row read before the error arrives first, in order, even those read in the
        // same chunk as the failing step.
        let ok: Vec<i64> = ok.iter().map(|r| r.as_ref().unwrap().get::<i64>(0).unwrap()).collect();
        assert_eq!(ok, vec![1, 2, 3, 4, 5]);
        // The same with one row per chunk (whatever the chunks grow to).
        let one = chunked(1).await;
        one.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3), (4), (5), ('boom');")
            .await
            .unwrap();
        let items: Vec<aiolite::Result<aiolite::Row>> = one.query(failing, ()).await.unwrap().collect().await;
        assert_eq!(items.len(), 6, "five rows then the error");
        assert!(items[..5].iter().all(|r| r.is_ok()));
        assert!(items[5].is_err());
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap(), Some(1));
    });
}

#[test]
fn reading_a_cursor_after_close_does_not_silently_truncate() {
    on_all_runtimes(|| async {
        let db = chunked(2).await;
        let cur = db.query(&series(100), ()).await.unwrap();
        common::close(&db).await;
        // Bounded: a cursor that never ends must not hang the test.
        let items: Vec<aiolite::Result<aiolite::Row>> = cur.take(500).collect().await;
        let ok: Vec<i64> = items
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|r| r.get::<i64>(0).unwrap())
            .collect();
        assert!(ok.iter().copied().eq(1..=ok.len() as i64), "rows out of order: {ok:?}");
        let closed = items.iter().any(|r| matches!(r, Err(Error::Closed)));
        assert!(
            ok.len() == 100 || closed,
            "got {} of 100 rows and no error: the result was truncated silently",
            ok.len()
        );
    });
}

#[test]
fn a_cursor_is_finished_after_a_step_error() {
    on_all_runtimes(|| async {
        let db = chunked(2).await;
        db.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3), ('boom'), (5);")
            .await
            .unwrap();
        let mut cur = db
            .query(
                "SELECT CASE WHEN typeof(x) = 'text' THEN abs(-9223372036854775807 - 1) ELSE x END FROM t",
                (),
            )
            .await
            .unwrap();
        let mut errors = 0;
        for _ in 0..10 {
            match cur.fetch_one().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => errors += 1,
            }
        }
        assert_eq!(errors, 1, "one error, then the cursor is finished");
        assert!(cur.fetch_one().await.unwrap().is_none());
        assert!(cur.next().await.is_none());
    });
}

#[test]
fn a_cursor_is_finished_after_reporting_closed() {
    // As a Stream, a cursor of a closed connection reports `Closed` once and ends; its
    // `fetch_*` methods keep reporting it, like aiosqlite's cursor methods after close.
    on_all_runtimes(|| async {
        let db = chunked(2).await;
        let mut cur = db.query(&series(100), ()).await.unwrap();
        common::close(&db).await;
        let mut errors = 0;
        let mut ended = false;
        for _ in 0..200 {
            match cur.next().await {
                Some(Ok(_)) => {}
                Some(Err(_)) => errors += 1,
                None => {
                    ended = true;
                    break;
                }
            }
        }
        assert!(ended, "the stream never ends");
        assert_eq!(errors, 1, "{errors} errors");
        for _ in 0..2 {
            assert!(matches!(cur.fetch_one().await, Err(Error::Closed)));
        }
    });
}

/// A connection whose `slow(x)` takes `micros` per call: the worker fills chunks slower than
/// the reader empties them, so the reader is starved and keeps two requests in flight.
async fn slow_worker(chunk: usize, micros: u64) -> Connection {
    let db = chunked(chunk).await;
    db.create_function("slow", 1, false, move |args: &[aiolite::Value]| {
        std::thread::sleep(std::time::Duration::from_micros(micros));
        Ok(args[0].clone())
    })
    .await
    .unwrap();
    db
}

#[test]
fn a_starved_reader_keeps_two_requests_in_flight_and_no_more() {
    on_all_runtimes(|| async {
        let db = slow_worker(4, 150).await;
        let mut cur = db
            .query(&format!("SELECT slow(n) FROM ({})", series(200)), ())
            .await
            .unwrap();
        let (mut seen, mut most) = (Vec::new(), 0);
        while let Some(row) = cur.fetch_one().await.unwrap() {
            seen.push(row.get::<i64>(0).unwrap());
            most = most.max(db.pending());
        }
        assert!(seen.iter().copied().eq(1..=200), "rows out of order or missing");
        // Two: the worker never waits for the reader to ask; never more: memory stays bounded.
        assert_eq!(most, 2, "requests in flight at most");
        // A request queued behind the last chunk is skipped.
        assert!(common::eventually(|| db.pending() == 0));
    });
}

#[test]
fn read_ahead_requests_end_cleanly_on_error_drop_and_fetch_all() {
    on_all_runtimes(|| async {
        let db = slow_worker(2, 100).await;
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", (1..=60).map(|i| [i]))
            .await
            .unwrap();
        db.execute("INSERT INTO t VALUES ('boom')", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", (61..=80).map(|i| [i]))
            .await
            .unwrap();
        let failing = "SELECT CASE WHEN typeof(x) = 'text' THEN abs(-9223372036854775807 - 1) ELSE slow(x) END FROM t ORDER BY rowid";
        // A step error with requests queued behind it: the rows before it, the error, the end.
        let items: Vec<aiolite::Result<aiolite::Row>> = db.query(failing, ()).await.unwrap().collect().await;
        let (last, ok) = items.split_last().unwrap();
        assert!(last.as_ref().unwrap_err().to_string().contains("integer overflow"));
        let ok: Vec<i64> = ok.iter().map(|r| r.as_ref().unwrap().get(0).unwrap()).collect();
        assert!(ok.iter().copied().eq(1..=60), "{ok:?}");
        // fetch_all with two requests in flight: contiguous, then the error.
        let mut cur = db.query(failing, ()).await.unwrap();
        let head = cur.fetch_many(30).await.unwrap();
        assert!(ints(&head).into_iter().eq(1..=30));
        assert!(cur.fetch_all().await.is_err(), "the step error reaches fetch_all");
        let mut cur = db
            .query("SELECT slow(x) FROM t WHERE typeof(x) = 'integer' ORDER BY rowid", ())
            .await
            .unwrap();
        let mut all = cur.fetch_many(25).await.unwrap();
        all.extend(cur.fetch_all().await.unwrap());
        assert!(ints(&all).into_iter().eq(1..=80));
        assert!(cur.fetch_one().await.unwrap().is_none());
        // Dropped with requests in flight: they are skipped, the statement is finalized (DDL
        // needs the table unused) and nothing is left queued.
        let mut cur = db.query("SELECT slow(x) FROM t ORDER BY rowid", ()).await.unwrap();
        assert_eq!(cur.fetch_many(9).await.unwrap().len(), 9);
        drop(cur);
        db.execute("DROP TABLE t", ()).await.unwrap();
        assert!(common::eventually(|| db.pending() == 0));
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap(), Some(1));
    });
}

#[test]
fn a_cursor_of_an_ended_transaction_keeps_no_snapshot_open() {
    on_all_runtimes(|| async {
        let (_dir, path) = common::temp_db();
        let db = ConnectOptions::new(&path)
            .recommended_pragmas()
            .iter_chunk_size(4)
            .open()
            .await
            .unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute_many("INSERT INTO t VALUES (?)", (0..100).map(|i| [i]))
            .await
            .unwrap();
        let tx = db.transaction().await.unwrap();
        let mut cur = tx.query("SELECT x FROM t", ()).await.unwrap();
        tx.commit().await.unwrap();
        // The rows read before the commit, then the refusal.
        let mut read = 0;
        let err = loop {
            match cur.fetch_one().await {
                Ok(Some(_)) => read += 1,
                Ok(None) => panic!("the whole result after the commit"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::TransactionEnded { .. }), "{err:?}");
        assert!(read < 100);
        // With the cursor still alive, the connection is on no old snapshot: it sees another
        // connection's commit, writes, and a TRUNCATE checkpoint (which needs every read lock
        // free) goes through.
        let other = aiolite::connect(&path).await.unwrap();
        other.execute("INSERT INTO t VALUES (100)", ()).await.unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(101)
        );
        db.execute("INSERT INTO t VALUES (101)", ()).await.unwrap();
        assert_eq!(
            common::truncate_checkpoint(&other).await,
            0,
            "a read lock is still held"
        );
        drop(cur);
        other.close().await.unwrap();
        db.close().await.unwrap();
    });
}

#[test]
fn invalid_utf8_in_a_later_chunk_comes_after_the_rows_before_it() {
    // Past the first chunk, rows travel encoded and are built as they are read: a text value
    // that is not UTF-8 is found then. It comes after every row before it, finishes the
    // cursor, and closes its statement (the table can be dropped right after).
    on_all_runtimes(|| async {
        for read_all in [false, true] {
            let db = chunked(8).await;
            db.execute_script(&format!(
                "CREATE TABLE t(n INTEGER PRIMARY KEY, s TEXT); INSERT INTO t SELECT n, 'ok' FROM ({});",
                series(3_000)
            ))
            .await
            .unwrap();
            db.execute("UPDATE t SET s = CAST(x'ff' AS TEXT) WHERE n = 2000", ())
                .await
                .unwrap();
            let mut cur = db.query("SELECT n, s AS label FROM t ORDER BY n", ()).await.unwrap();
            let mut read = 0_i64;
            let err = if read_all {
                // fetch_all after some rows: the rows read before the error stay in the cursor.
                for _ in 0..100 {
                    cur.fetch_one().await.unwrap().unwrap();
                    read += 1;
                }
                cur.fetch_all().await.unwrap_err()
            } else {
                loop {
                    match cur.fetch_one().await {
                        Ok(Some(row)) => {
                            read += 1;
                            assert_eq!(row.get::<i64>(0).unwrap(), read);
                        }
                        Ok(None) => panic!("the rows ended without the error"),
                        Err(e) => break e,
                    }
                }
            };
            assert!(
                matches!(&err, Error::InvalidUtf8 { column } if column.contains("label")),
                "{err:?}"
            );
            if read_all {
                // The rows before the error are still there, then the cursor is finished.
                while let Some(row) = cur.next().await {
                    read += 1;
                    assert_eq!(row.unwrap().get::<i64>(0).unwrap(), read);
                }
            }
            assert_eq!(read, 1_999);
            assert!(cur.next().await.is_none(), "the cursor is finished");
            // Its statement is closed while the cursor is still around.
            db.execute("DROP TABLE t", ()).await.unwrap();
            drop(cur);
            common::close(&db).await;
        }
    });
}

#[test]
fn fetch_all_reports_an_error_after_the_rows_of_its_last_command() {
    // The last command of `fetch_all` reads everything left. When a step fails partway
    // (within its first 256 rows, built on the worker, or past them, streamed), fetch_all
    // reports the error rather than a shortened result, and every row before the failure
    // stays in the cursor, in order.
    on_all_runtimes(|| async {
        for fail_at in [200, 5_000] {
            let db = chunked(8).await;
            let sql = format!(
                "SELECT CASE WHEN n < {fail_at} THEN n ELSE abs(-9223372036854775807 - 1) END FROM ({})",
                series(6_000)
            );
            let mut cur = db.query(&sql, ()).await.unwrap();
            assert_eq!(ints(&cur.fetch_many(20).await.unwrap()), (1..=20).collect::<Vec<_>>());
            let err = cur.fetch_all().await.unwrap_err();
            assert!(err.to_string().contains("integer overflow"), "{err}");
            let mut rest = Vec::new();
            while let Some(row) = cur.next().await {
                rest.push(row.unwrap().get::<i64>(0).unwrap());
            }
            assert_eq!(rest, (21..fail_at).collect::<Vec<_>>(), "failing at {fail_at}");
            drop(cur);
            assert_eq!(db.fetch_scalar::<i64>("SELECT 5", ()).await.unwrap(), Some(5));
            common::close(&db).await;
        }
    });
}

#[test]
fn dropping_fetch_all_stops_the_statement() {
    // The rest of a cursor is read in one command; dropping `fetch_all` stops it (without
    // that, the worker would step this query forever).
    on_all_runtimes(|| async {
        let db = chunked(8).await;
        let endless = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n, 'text ' || n FROM c";
        let mut cur = db.query(endless, ()).await.unwrap();
        assert_eq!(ints(&cur.fetch_many(3).await.unwrap()), vec![1, 2, 3]);
        let stopped = common::within(std::time::Duration::from_millis(150), cur.fetch_all()).await;
        assert!(stopped.is_none());
        // The rows received before the drop are still in the cursor, in order; then it ends.
        let mut expect = 4;
        while let Some(row) = cur.next().await {
            assert_eq!(row.unwrap().get::<i64>(0).unwrap(), expect);
            expect += 1;
        }
        drop(cur);
        let next = common::within(common::NO_HANG, db.fetch_scalar::<i64>("SELECT 6", ())).await;
        assert_eq!(
            next.expect("the worker is still on the dropped query").unwrap(),
            Some(6)
        );
        common::close(&db).await;
    });
}

#[test]
fn fetch_all_of_a_big_rest_is_whole_and_in_order() {
    // With chunks of 64 rows, `query` brings 64 and the read-ahead 64 more: the final
    // command reads n - 128 rows, here 255 to 257 around the 256 built on the worker, or
    // many more.
    on_all_runtimes(|| async {
        for (before, n) in [(0, 383), (5, 384), (64, 385), (70, 40_000), (1, 2)] {
            let db = chunked(64).await;
            db.execute_script(&format!(
                "CREATE TABLE t(n INTEGER PRIMARY KEY, s TEXT); INSERT INTO t SELECT n, 'label ' || n FROM ({});",
                series(n)
            ))
            .await
            .unwrap();
            let mut cur = db.query("SELECT n, s FROM t ORDER BY n", ()).await.unwrap();
            let first = cur.fetch_many(before).await.unwrap();
            let rest = cur.fetch_all().await.unwrap();
            let all: Vec<i64> = first.iter().chain(&rest).map(|r| r.get::<i64>(0).unwrap()).collect();
            assert_eq!(all, (1..=n).collect::<Vec<_>>(), "{before} then the rest of {n}");
            let labels_match = rest
                .iter()
                .all(|r| r.get::<String>(1).unwrap() == format!("label {}", r.get::<i64>(0).unwrap()));
            assert!(labels_match);
            assert!(cur.next().await.is_none());
            // The statement is closed while the cursor is still around: the table can go.
            db.execute("DROP TABLE t", ()).await.unwrap();
            drop(cur);
            common::close(&db).await;
        }
    });
}
