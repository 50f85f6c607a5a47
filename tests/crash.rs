//! Crash safety and clean shutdown, with real child processes.
//!
//! The test binary re-runs itself as the child (`AIOLITE_CHILD=…` selects the role); the
//! parent reads what the child acknowledges on stdout, kills it with SIGKILL at different
//! points, and checks the database file afterwards.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiolite::{ConnectOptions, Pool, PoolOptions, connect};

fn child(role: &str, db: &std::path::Path, test: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("AIOLITE_CHILD", role)
        .env("AIOLITE_CHILD_DB", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Child role `writer`: commit rows through a pool forever, printing each acknowledged commit:
/// `ACK <v>` for single rows, `TX <group>` for five-row transactions.
fn writer_child(path: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = Pool::open(
            ConnectOptions::new(path).recommended_pragmas(),
            PoolOptions::default().readers(2),
        )
        .await
        .unwrap();
        pool.execute_script("CREATE TABLE IF NOT EXISTS t(v INTEGER PRIMARY KEY, grp INTEGER, payload TEXT);")
            .await
            .unwrap();
        let start: i64 = pool
            .fetch_scalar("SELECT coalesce(max(v), 0) + 1 FROM t", ())
            .await
            .unwrap()
            .unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "\nREADY").unwrap();
        out.flush().unwrap();
        let mut v = start;
        loop {
            if v % 7 == 0 {
                let group = v;
                pool.with_transaction(|tx| async move {
                    for k in 0..5 {
                        tx.execute(
                            "INSERT INTO t(v, grp, payload) VALUES (?, ?, ?)",
                            aiolite::params![group + k, group, "x".repeat(500)],
                        )
                        .await?;
                    }
                    Ok::<_, aiolite::Error>(())
                })
                .await
                .unwrap();
                writeln!(out, "TX {group}").unwrap();
                v += 5;
            } else {
                pool.execute(
                    "INSERT INTO t(v, grp, payload) VALUES (?, NULL, ?)",
                    aiolite::params![v, "y"],
                )
                .await
                .unwrap();
                writeln!(out, "ACK {v}").unwrap();
                v += 1;
            }
            out.flush().unwrap();
        }
    });
}

/// Child role `dropper`: open connections, clones, a pool, a transaction and a long query,
/// drop nothing explicitly and return from main.
fn dropper_child(path: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = connect(path).await.unwrap();
        db.execute("CREATE TABLE IF NOT EXISTS d(x)", ()).await.unwrap();
        let clone = db.clone();
        let pool = Pool::open(ConnectOptions::new(path), PoolOptions::default().readers(2))
            .await
            .unwrap();
        pool.execute("INSERT INTO d VALUES (1)", ()).await.unwrap();
        let mem = connect(":memory:").await.unwrap();
        let tx = mem.transaction().await.unwrap();
        tx.execute("CREATE TABLE m(x)", ()).await.unwrap();
        // A query that would run for minutes, still running when main returns.
        let busy = connect(":memory:").await.unwrap();
        tokio::spawn(async move {
            let _ = busy
                .fetch_scalar::<i64>(
                    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT count(*) FROM c",
                    (),
                )
                .await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::mem::forget(clone.clone()); // even a leaked handle must not keep the process alive
        println!("DONE");
        let _ = (db, clone, pool, tx);
    });
}

fn role() -> Option<(String, String)> {
    Some((
        std::env::var("AIOLITE_CHILD").ok()?,
        std::env::var("AIOLITE_CHILD_DB").ok()?,
    ))
}

#[test]
fn child_entry() {
    match role() {
        Some((r, db)) if r == "writer" => writer_child(&db),
        Some((r, db)) if r == "dropper" => dropper_child(&db),
        _ => {} // run as a normal test: nothing to do
    }
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut acked: Vec<i64> = Vec::new();
    let mut groups: Vec<i64> = Vec::new();
    // Kill at different points: early, mid-stream, later.
    for (round, kill_after) in [3_usize, 40, 250, 17, 600].into_iter().enumerate() {
        let mut c = child("writer", &path, "child_entry");
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let mut ready = false;
        while let Some(Ok(line)) = lines.next() {
            if line == "READY" {
                ready = true;
                continue;
            }
            if let Some(v) = line.strip_prefix("ACK ") {
                acked.push(v.parse().unwrap());
            } else if let Some(g) = line.strip_prefix("TX ") {
                groups.push(g.parse().unwrap());
            } else {
                continue;
            }
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        assert!(ready, "round {round}: the child never got ready");
        c.kill().unwrap();
        // Whatever the child managed to print before dying was acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Some(v) = line.strip_prefix("ACK ") {
                acked.push(v.parse().unwrap());
            } else if let Some(g) = line.strip_prefix("TX ") {
                groups.push(g.parse().unwrap());
            }
        }
        c.wait().unwrap();

        futures::executor::block_on(async {
            let db = connect(&path).await.unwrap();
            let ok: Option<String> = db.fetch_scalar("PRAGMA integrity_check", ()).await.unwrap();
            assert_eq!(ok.as_deref(), Some("ok"), "round {round}");
            for v in &acked {
                let n: Option<i64> = db
                    .fetch_scalar("SELECT count(*) FROM t WHERE v = ?", [*v])
                    .await
                    .unwrap();
                assert_eq!(n, Some(1), "round {round}: acknowledged row {v} lost");
            }
            for g in &groups {
                let n: Option<i64> = db
                    .fetch_scalar("SELECT count(*) FROM t WHERE grp = ?", [*g])
                    .await
                    .unwrap();
                assert_eq!(n, Some(5), "round {round}: acknowledged transaction {g} incomplete");
            }
            // No transaction is ever half there, acknowledged or not.
            let partial: Option<i64> = db
                .fetch_scalar(
                    "SELECT count(*) FROM (SELECT grp FROM t WHERE grp IS NOT NULL GROUP BY grp HAVING count(*) <> 5)",
                    (),
                )
                .await
                .unwrap();
            assert_eq!(partial, Some(0), "round {round}: a partial transaction survived");
            db.close().await.unwrap();
        });
    }
    assert!(acked.len() + groups.len() > 100);
}

#[test]
fn dropping_everything_without_close_exits_promptly() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drop.db");
    let start = Instant::now();
    let mut c = child("dropper", &path, "child_entry");
    let mut out = String::new();
    std::io::Read::read_to_string(c.stdout.as_mut().unwrap(), &mut out).unwrap();
    // Generous bound: the process must not hang on worker threads (a hang would be forever).
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            c.kill().unwrap();
            panic!("the child did not exit within 30 s: {out}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}: {out}");
    assert!(out.contains("DONE"), "{out}");
    // The committed row is there; the in-memory transaction simply vanished with the process.
    futures::executor::block_on(async {
        let db = connect(&path).await.unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM d", ()).await.unwrap(),
            Some(1)
        );
    });
}
