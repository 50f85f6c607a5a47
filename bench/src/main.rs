use std::time::Instant;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for round in 0..3 {
        // rusqlite
        let p = dir.path().join(format!("r{round}.db"));
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)").unwrap();
        let t = Instant::now();
        c.execute_batch("BEGIN").unwrap();
        for i in 0..n {
            c.prepare_cached("INSERT INTO t(name, score) VALUES (?, ?)")
                .unwrap()
                .execute(rusqlite::params![format!("n{i}"), i as f64])
                .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        let r_ins = n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..n {
            let _: (i64, String, f64) = c
                .prepare_cached("SELECT id, name, score FROM t WHERE id = ?")
                .unwrap()
                .query_row([i as i64 + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap();
        }
        let r_sel = n as f64 / t.elapsed().as_secs_f64();
        // aiolite
        let p = dir.path().join(format!("a{round}.db"));
        let (a_ins, a_sel) = rt.block_on(async {
            let db = aiolite::ConnectOptions::new(&p)
                .pragma("journal_mode", "WAL")
                .pragma("synchronous", "NORMAL")
                .inline_reads(std::env::var("NOINLINE").is_err())
                .open()
                .await
                .unwrap();
            db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)", ())
                .await
                .unwrap();
            let t = Instant::now();
            let tx = db.transaction().await.unwrap();
            for i in 0..n {
                tx.execute(
                    "INSERT INTO t(name, score) VALUES (?, ?)",
                    aiolite::params![format!("n{i}"), i as f64],
                )
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
            let a_ins = n as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            for i in 0..n {
                let row = db
                    .fetch_one("SELECT id, name, score FROM t WHERE id = ?", [i as i64 + 1])
                    .await
                    .unwrap()
                    .unwrap();
                let _: (i64, String, f64) = (row.get(0).unwrap(), row.get(1).unwrap(), row.get(2).unwrap());
            }
            let a_sel = n as f64 / t.elapsed().as_secs_f64();
            (a_ins, a_sel)
        });
        println!(
            "round {round}: insert_txn {:.0} vs {:.0} = {:.2}; point_select {:.0} vs {:.0} = {:.2}",
            a_ins,
            r_ins,
            a_ins / r_ins,
            a_sel,
            r_sel,
            a_sel / r_sel
        );
    }
}
