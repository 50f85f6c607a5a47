//! aiolite on a dqlite cluster against aiolite on a local SQLite file: the same workloads
//! through the same API, interleaved over several rounds, medians reported.
//!
//! ```sh
//! # starts a 3-node dqlite-demo cluster on loopback (apt-get install -y go-dqlite)
//! cargo run --release -p aiolite-bench --features dqlite --bin dqlite
//! # or against a running cluster
//! cargo run --release -p aiolite-bench --features dqlite --bin dqlite -- --url dqlite://10.0.0.1:9001/bench
//! cargo run --release -p aiolite-bench --features dqlite --bin dqlite -- --n 500 --rounds 3
//! ```
//!
//! Workloads (table `t(id INTEGER PRIMARY KEY, name TEXT, score REAL)` holding 10 000 rows):
//! - `point_select`: `fetch_one("SELECT id, name, score FROM t WHERE id = ?")`, N sequential
//!   awaited calls;
//! - `insert_txn`: `BEGIN`, N single-row `INSERT`s each awaited, `COMMIT`;
//! - `scan_10k`: `fetch_all` of the 10 000 rows, and the same through a `Cursor`.
//!
//! The local side uses a fresh file in a temp dir with the recommended pragmas (WAL,
//! synchronous=NORMAL, …). Latencies are per call (median and 99th percentile of every call in
//! every round); throughput is calls (or rows) per second, the median over rounds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiolite::{ConnectOptions, Connection, params};
use futures::StreamExt;

const SCAN_ROWS: usize = 10_000;

struct Cluster {
    children: Vec<Child>,
    _dir: tempfile::TempDir,
    url: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// LEADER on a fresh connection: the leader's address, "" for none.
fn leader_of(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut msg = 1u64.to_le_bytes().to_vec();
    msg.extend([1, 0, 0, 0, 0, 0, 0, 0]);
    msg.extend(0u64.to_le_bytes());
    s.write_all(&msg).ok()?;
    let mut head = [0u8; 8];
    s.read_exact(&mut head).ok()?;
    let mut body = vec![0u8; u32::from_le_bytes(head[..4].try_into().unwrap()) as usize * 8];
    s.read_exact(&mut body).ok()?;
    let text = &body[8..];
    let end = text.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&text[..end]).into_owned())
}

fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster {
        children: Vec::new(),
        url: String::new(),
        _dir: dir,
    };
    let mut addrs: Vec<String> = Vec::new();
    for i in 0..3 {
        let addr = format!("127.0.0.1:{}", free_port());
        let data = c._dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&data).unwrap();
        let mut cmd = Command::new("dqlite-demo");
        cmd.args(["--api", &format!("127.0.0.1:{}", free_port()), "--db", &addr])
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if i > 0 {
            cmd.args(["--join", &addrs[0]]);
        }
        c.children
            .push(cmd.spawn().expect("dqlite-demo (apt-get install -y go-dqlite)"));
        addrs.push(addr.clone());
        if i == 0 {
            wait("the first node", || leader_of(&addr).as_deref() == Some(addr.as_str()));
        }
    }
    wait("the cluster", || {
        let l = leader_of(&addrs[0]).unwrap_or_default();
        !l.is_empty() && addrs.iter().all(|a| leader_of(a).as_deref() == Some(l.as_str()))
    });
    // Joining nodes become voters shortly after.
    std::thread::sleep(Duration::from_secs(2));
    c.url = format!("dqlite://{}/bench", addrs.join(","));
    c
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[derive(Default)]
struct Stats {
    /// Per-call latencies, every round.
    calls: Vec<Duration>,
    /// Throughput of each round (calls or rows per second).
    rates: Vec<f64>,
}

impl Stats {
    fn pct(&mut self, p: f64) -> Duration {
        self.calls.sort_unstable();
        if self.calls.is_empty() {
            return Duration::ZERO;
        }
        self.calls[((self.calls.len() - 1) as f64 * p).round() as usize]
    }
    fn rate(&mut self) -> f64 {
        self.rates.sort_by(f64::total_cmp);
        self.rates.get(self.rates.len() / 2).copied().unwrap_or(0.0)
    }
}

async fn prepare(db: &Connection) {
    db.execute_script("DROP TABLE IF EXISTS t; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL);")
        .await
        .unwrap();
    let tx = db.transaction().await.unwrap();
    tx.execute_many(
        "INSERT INTO t(id, name, score) VALUES (?, ?, ?)",
        (1..=SCAN_ROWS as i64).map(|i| params![i, format!("name {i}"), i as f64 / 7.0]),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn point_select(db: &Connection, n: usize, s: &mut Stats) {
    let start = Instant::now();
    for i in 0..n {
        let id = (i * 7919) % SCAN_ROWS + 1;
        let t = Instant::now();
        let row = db
            .fetch_one("SELECT id, name, score FROM t WHERE id = ?", [id as i64])
            .await
            .unwrap();
        s.calls.push(t.elapsed());
        assert!(row.is_some());
    }
    s.rates.push(n as f64 / start.elapsed().as_secs_f64());
}

async fn insert_txn(db: &Connection, n: usize, s: &mut Stats) {
    db.execute("DELETE FROM t WHERE id > ?", [SCAN_ROWS as i64])
        .await
        .unwrap();
    let start = Instant::now();
    let tx = db.transaction().await.unwrap();
    for i in 0..n {
        let t = Instant::now();
        tx.execute(
            "INSERT INTO t(name, score) VALUES (?, ?)",
            params![format!("new {i}"), i as f64],
        )
        .await
        .unwrap();
        s.calls.push(t.elapsed());
    }
    tx.commit().await.unwrap();
    s.rates.push(n as f64 / start.elapsed().as_secs_f64());
}

async fn scan(db: &Connection, s: &mut Stats) {
    let t = Instant::now();
    let rows = db
        .fetch_all("SELECT id, name, score FROM t WHERE id <= ?", [SCAN_ROWS as i64])
        .await
        .unwrap();
    let d = t.elapsed();
    assert_eq!(rows.len(), SCAN_ROWS);
    s.calls.push(d);
    s.rates.push(SCAN_ROWS as f64 / d.as_secs_f64());
}

async fn scan_cursor(db: &Connection, s: &mut Stats) {
    let t = Instant::now();
    let mut cur = db
        .query("SELECT id, name, score FROM t WHERE id <= ?", [SCAN_ROWS as i64])
        .await
        .unwrap();
    let mut n = 0;
    while let Some(r) = cur.next().await {
        r.unwrap();
        n += 1;
    }
    let d = t.elapsed();
    assert_eq!(n, SCAN_ROWS);
    s.calls.push(d);
    s.rates.push(SCAN_ROWS as f64 / d.as_secs_f64());
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let mut url = None;
    let mut n = 2_000;
    let mut rounds = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--url" => url = args.next(),
            "--n" => n = args.next().and_then(|v| v.parse().ok()).expect("--n takes a number"),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds takes a number")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let cluster = url.is_none().then(start_cluster);
    let url = url.unwrap_or_else(|| cluster.as_ref().unwrap().url.clone());
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let names = ["point_select", "insert_txn", "scan_10k fetch_all", "scan_10k cursor"];
    let mut local: Vec<Stats> = names.iter().map(|_| Stats::default()).collect();
    let mut remote: Vec<Stats> = names.iter().map(|_| Stats::default()).collect();
    rt.block_on(async {
        let l = ConnectOptions::new(dir.path().join("bench.db"))
            .recommended_pragmas()
            .open()
            .await
            .unwrap();
        let r = aiolite::connect(&url).await.unwrap();
        prepare(&l).await;
        prepare(&r).await;
        // Warm-up (statement caches, connections).
        point_select(&l, 100, &mut Stats::default()).await;
        point_select(&r, 100, &mut Stats::default()).await;
        for round in 0..rounds {
            for (db, st) in [(&l, &mut local), (&r, &mut remote)] {
                point_select(db, n, &mut st[0]).await;
                insert_txn(db, n, &mut st[1]).await;
                scan(db, &mut st[2]).await;
                scan_cursor(db, &mut st[3]).await;
            }
            eprintln!("round {} of {rounds} done", round + 1);
        }
        l.close().await.unwrap();
        r.close().await.unwrap();
    });
    println!("dqlite: {url}; local: WAL file with the recommended pragmas; N = {n}, {rounds} rounds, medians");
    println!(
        "{:<20} {:>14} {:>12} {:>14} {:>12} {:>14} {:>14} {:>8}",
        "workload", "local p50 µs", "local p99", "dqlite p50 µs", "dqlite p99", "local /s", "dqlite /s", "ratio"
    );
    for (i, name) in names.iter().enumerate() {
        let (lo, re) = (&mut local[i], &mut remote[i]);
        let (lr, rr) = (lo.rate(), re.rate());
        println!(
            "{:<20} {:>14} {:>12} {:>14} {:>12} {:>14.0} {:>14.0} {:>8.3}",
            name,
            us(lo.pct(0.5)),
            us(lo.pct(0.99)),
            us(re.pct(0.5)),
            us(re.pct(0.99)),
            lr,
            rr,
            rr / lr
        );
    }
    println!(
        "(/s: calls per second for point_select and insert_txn, rows per second for the scans; ratio = dqlite / local)"
    );
    drop(cluster);
}
