//! Instruction-count probe: one workload, one engine, a given number of operations, for
//! `valgrind --tool=callgrind` (whose counts are stable on noisy machines, unlike timings).
//!
//! Instructions per operation = (count(k2 ops) - count(k1 ops)) / (k2 - k1), which cancels the
//! setup. `bench/profile.sh` runs the whole comparison.
//!
//! ```sh
//! probe <workload> <engine> <db-path> <ops>
//! # workload: point_select | insert_txn | scan_all | stream ; engine: rusqlite | aiolite
//! ```

use std::path::Path;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT, score REAL)";
const INSERT: &str = "INSERT INTO t(name, score) VALUES (?, ?)";
const SELECT_ONE: &str = "SELECT id, name, score FROM t WHERE id = ?";
const SELECT_ALL: &str = "SELECT id, name, score FROM t";

fn open_r(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    for (k, v) in aiolite::RECOMMENDED_PRAGMAS {
        c.pragma_update(None, k, v).unwrap();
    }
    c.execute_batch(SCHEMA).unwrap();
    c
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, workload, engine, path, ops] = args.as_slice() else {
        eprintln!("usage: probe <point_select|insert_txn|scan_all|stream> <rusqlite|aiolite> <db> <ops>");
        std::process::exit(2);
    };
    let path = Path::new(path);
    let ops: usize = ops.parse().unwrap();
    let rows: usize = std::env::var("PROBE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    {
        // Setup (same for every run): a table with `rows` rows.
        let mut c = open_r(path);
        let have: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        if have == 0 {
            let tx = c.transaction().unwrap();
            for i in 0..rows {
                tx.execute(INSERT, rusqlite::params![format!("name-{i:08}"), i as f64])
                    .unwrap();
            }
            tx.commit().unwrap();
        }
    }
    match engine.as_str() {
        "rusqlite" => {
            let c = open_r(path);
            match workload.as_str() {
                "point_select" => {
                    for i in 0..ops {
                        let t: (i64, String, f64) = c
                            .prepare_cached(SELECT_ONE)
                            .unwrap()
                            .query_row([(i % rows) as i64 + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                            .unwrap();
                        std::hint::black_box(t);
                    }
                }
                "insert_txn" => {
                    c.execute_batch("BEGIN").unwrap();
                    for i in 0..ops {
                        c.prepare_cached(INSERT)
                            .unwrap()
                            .execute(rusqlite::params![format!("name-{i:08}"), i as f64])
                            .unwrap();
                    }
                    c.execute_batch("ROLLBACK").unwrap();
                }
                "scan_all" | "stream" => {
                    let mut st = c.prepare(&format!("{SELECT_ALL} LIMIT {ops}")).unwrap();
                    let v: Vec<(i64, String, f64)> = st
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    std::hint::black_box(v);
                }
                w => panic!("unknown workload {w}"),
            }
        }
        "aiolite" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut opts = aiolite::ConnectOptions::new(path).recommended_pragmas();
                if std::env::var_os("PROBE_NOSPIN").is_some() {
                    // Spinning burns instructions while waiting; count only the work.
                    opts = opts
                        .worker_spin(std::time::Duration::ZERO)
                        .wait_spin(std::time::Duration::ZERO);
                }
                let db = opts.open().await.unwrap();
                match workload.as_str() {
                    "point_select" => {
                        for i in 0..ops {
                            let row = db
                                .fetch_one(SELECT_ONE, [(i % rows) as i64 + 1])
                                .await
                                .unwrap()
                                .unwrap();
                            let t: (i64, String, f64) = (row.get(0).unwrap(), row.get(1).unwrap(), row.get(2).unwrap());
                            std::hint::black_box(t);
                        }
                    }
                    "insert_txn" => {
                        let tx = db.transaction().await.unwrap();
                        for i in 0..ops {
                            tx.execute(INSERT, aiolite::params![format!("name-{i:08}"), i as f64])
                                .await
                                .unwrap();
                        }
                        tx.rollback().await.unwrap();
                    }
                    "scan_all" => {
                        let v = db.fetch_all(&format!("{SELECT_ALL} LIMIT {ops}"), ()).await.unwrap();
                        std::hint::black_box(v);
                    }
                    "stream" => {
                        let mut cur = db.query(&format!("{SELECT_ALL} LIMIT {ops}"), ()).await.unwrap();
                        while let Some(r) = cur.fetch_one().await.unwrap() {
                            std::hint::black_box(r);
                        }
                    }
                    w => panic!("unknown workload {w}"),
                }
                db.close().await.unwrap();
            });
        }
        e => panic!("unknown engine {e}"),
    }
}
