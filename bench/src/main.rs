//! aiolite against plain synchronous rusqlite: the workloads of the project's BENCH.md, run in
//! one process, interleaved over several rounds, medians reported as ops/s and as the ratio
//! aiolite / rusqlite.
//!
//! ```sh
//! cargo run --release -p aiolite-bench                 # full run (N=20 000, M=200 000, 5 rounds)
//! cargo run --release -p aiolite-bench -- --rounds 15  # the README's figures
//! cargo run --release -p aiolite-bench -- --quick      # small sizes, 1 round (CI smoke)
//! cargo run --release -p aiolite-bench -- --load 2     # with 2 busy threads competing for CPU
//! cargo run --release -p aiolite-bench -- --only point_select,insert_txn --rounds 9
//! cargo run --release -p aiolite-bench -- --only concurrent_read --runtime-threads 4
//! cargo run --release -p aiolite-bench -- --only pool_select --rounds 15
//! ```
//!
//! `pool_select` (point_select's loop through a pool from one task; not in BENCH.md) runs
//! only when named in `--only`: a pool's threads ending every round would change which malloc
//! arena the other workloads' fresh worker threads start with.
//!
//! `--runtime-threads T` sets the tokio runtime's worker threads (default: one per core);
//! `--no-spin` opens aiolite's connections with `worker_spin` and `wait_spin` at zero (every
//! hand-off parks and wakes a thread), to see what the spinning buys. `--conn-anchor` opens
//! aiolite's connections with `anchor_reads(true)` (opt-in; pools anchor by default).
//!
//! The bench calls `aiolite::install_spinning_mutexes()` before anything else, as the README
//! recommends for services; SQLite's mutexes are process-wide, so the rusqlite side runs with
//! them too. `--default-mutexes` leaves SQLite's own. It matters for concurrent_read: its
//! rusqlite side runs 4 OS threads, aiolite's reads run inline on the runtime's threads, and
//! both meet on SQLite's per-file WAL mutex at the start and end of every read.
//!
//! Each workload's table row gives the median ratio and the range over the rounds: on a shared
//! VM some workloads run in two modes (see the README).
//!
//! Both sides use the same bundled SQLite, the same pragmas (the recommended set: WAL,
//! synchronous=NORMAL, foreign_keys, 64 MB cache, temp_store=MEMORY), a prepared-statement
//! cache, and a fresh database file in a temp dir.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aiolite::{ConnectOptions, Pool, PoolOptions, params};

const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)";
const INSERT: &str = "INSERT INTO t(name, score) VALUES (?, ?)";
const SELECT_ONE: &str = "SELECT id, name, score FROM t WHERE id = ?";
const SELECT_ALL: &str = "SELECT id, name, score FROM t";

#[derive(Clone)]
struct Config {
    n: usize,
    m: usize,
    stream_rows: usize,
    rounds: usize,
    readers: usize,
    tasks: usize,
    only: Option<Vec<String>>,
    load: usize,
    multi_thread: bool,
}

fn parse_args() -> Config {
    let mut cfg = Config {
        n: 20_000,
        m: 200_000,
        stream_rows: 2_000_000,
        rounds: 5,
        readers: 4,
        tasks: 4,
        only: None,
        load: 0,
        multi_thread: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match a.as_str() {
            "--quick" => {
                cfg.n = 2_000;
                cfg.m = 20_000;
                cfg.stream_rows = 100_000;
                cfg.rounds = 1;
            }
            "--n" => cfg.n = num("--n"),
            "--m" => cfg.m = num("--m"),
            "--stream-rows" => cfg.stream_rows = num("--stream-rows"),
            "--rounds" => cfg.rounds = num("--rounds").max(1),
            "--readers" => cfg.readers = num("--readers").max(1),
            "--load" => cfg.load = num("--load"),
            "--current-thread" => cfg.multi_thread = false,
            "--no-spin" => NO_SPIN.store(true, Ordering::Relaxed),
            "--conn-anchor" => CONN_ANCHOR.store(true, Ordering::Relaxed),
            "--default-mutexes" => DEFAULT_MUTEXES.store(true, Ordering::Relaxed),
            "--runtime-threads" => {
                let t = num("--runtime-threads");
                RUNTIME_THREADS.store(t, Ordering::Relaxed);
            }
            "--only" => {
                cfg.only = Some(
                    args.next()
                        .expect("--only takes a comma-separated list")
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                );
            }
            "--stream-child" => {
                // Internal: one stream_memory run in a fresh process, for a clean peak RSS.
                let engine = args.next().expect("engine");
                let path = PathBuf::from(args.next().expect("path"));
                stream_child(&engine, &path);
                std::process::exit(0);
            }
            "--help" | "-h" => {
                println!(
                    "usage: aiolite-bench [--quick] [--rounds R] [--n N] [--m M] [--stream-rows S] \
                     [--readers K] [--load THREADS] [--current-thread] [--runtime-threads T] \
                     [--no-spin] [--conn-anchor] [--default-mutexes] [--only w1,w2]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (try --help)"),
        }
    }
    cfg
}

/// `--no-spin`: connections open with `worker_spin` and `wait_spin` zero (park at once).
static NO_SPIN: AtomicBool = AtomicBool::new(false);
/// `--conn-anchor`: aiolite's connections opt in to `ConnectOptions::anchor_reads`.
static CONN_ANCHOR: AtomicBool = AtomicBool::new(false);

/// `--default-mutexes`: leave SQLite's mutexes as they are (no
/// `aiolite::install_spinning_mutexes`).
static DEFAULT_MUTEXES: AtomicBool = AtomicBool::new(false);

/// Worker threads of the multi-thread runtime (`--runtime-threads`); 0: tokio's default (one
/// per core).
static RUNTIME_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The tokio runtime of the run (one per flavour, built on first use and kept, as an
/// application keeps its runtime: threads created and ended every round would also decide
/// which malloc arena each round's worker thread starts with).
fn runtime(multi: bool) -> &'static tokio::runtime::Runtime {
    static MULTI: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    static CURRENT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if multi {
        MULTI.get_or_init(|| {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            let threads = RUNTIME_THREADS.load(Ordering::Relaxed);
            if threads > 0 {
                b.worker_threads(threads);
            }
            b.enable_all().build().unwrap()
        })
    } else {
        CURRENT.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        })
    }
}

fn rusqlite_open(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    for (k, v) in aiolite::RECOMMENDED_PRAGMAS {
        c.pragma_update(None, k, v).unwrap();
    }
    c.set_prepared_statement_cache_capacity(128);
    c
}

async fn aiolite_open(path: &Path) -> aiolite::Connection {
    let mut o = ConnectOptions::new(path).recommended_pragmas();
    if NO_SPIN.load(Ordering::Relaxed) {
        o = o.worker_spin(Duration::ZERO).wait_spin(Duration::ZERO);
    }
    if CONN_ANCHOR.load(Ordering::Relaxed) {
        o = o.anchor_reads(true);
    }
    o.open().await.unwrap()
}

fn name(i: usize) -> String {
    format!("name-{i:08}")
}

/// Fill `t` with `rows` rows using plain rusqlite (setup, not measured).
fn populate(path: &Path, rows: usize) {
    let mut c = rusqlite_open(path);
    c.execute_batch(SCHEMA).unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut st = tx.prepare(INSERT).unwrap();
        for i in 0..rows {
            st.execute(rusqlite::params![name(i), i as f64 * 0.5]).unwrap();
        }
    }
    tx.commit().unwrap();
}

struct Temp {
    dir: tempfile::TempDir,
    seq: usize,
}

impl Temp {
    fn file(&mut self, tag: &str) -> PathBuf {
        self.seq += 1;
        self.dir.path().join(format!("{tag}-{}.db", self.seq))
    }
}

/// One measurement: operations per second.
type Measure = Box<dyn FnMut(&mut Temp) -> f64>;

struct Workload {
    name: &'static str,
    /// Runs only when named in `--only`.
    on_request: bool,
    target: f64,
    rusqlite: Measure,
    aiolite: Measure,
}

fn workloads(cfg: &Config) -> Vec<Workload> {
    let n = cfg.n;
    let m = cfg.m;
    let multi = cfg.multi_thread;
    let readers = cfg.readers;
    let tasks = cfg.tasks;
    vec![
        Workload {
            on_request: false,
            name: "insert_txn",
            target: 0.35,
            rusqlite: Box::new(move |tmp| {
                let p = tmp.file("r-ins");
                let c = rusqlite_open(&p);
                c.execute_batch(SCHEMA).unwrap();
                let t = Instant::now();
                c.execute_batch("BEGIN").unwrap();
                for i in 0..n {
                    c.prepare_cached(INSERT)
                        .unwrap()
                        .execute(rusqlite::params![name(i), i as f64])
                        .unwrap();
                }
                c.execute_batch("COMMIT").unwrap();
                n as f64 / t.elapsed().as_secs_f64()
            }),
            aiolite: Box::new(move |tmp| {
                let p = tmp.file("a-ins");
                runtime(multi).block_on(async {
                    let db = aiolite_open(&p).await;
                    db.execute(SCHEMA, ()).await.unwrap();
                    let t = Instant::now();
                    let tx = db.transaction().await.unwrap();
                    for i in 0..n {
                        tx.execute(INSERT, params![name(i), i as f64]).await.unwrap();
                    }
                    tx.commit().await.unwrap();
                    let r = n as f64 / t.elapsed().as_secs_f64();
                    db.close().await.unwrap();
                    r
                })
            }),
        },
        Workload {
            on_request: false,
            name: "insert_batch",
            target: 0.95,
            rusqlite: Box::new(move |tmp| {
                let p = tmp.file("r-batch");
                let mut c = rusqlite_open(&p);
                c.execute_batch(SCHEMA).unwrap();
                let t = Instant::now();
                let tx = c.transaction().unwrap();
                {
                    let mut st = tx.prepare_cached(INSERT).unwrap();
                    for i in 0..m {
                        st.execute(rusqlite::params![name(i), i as f64]).unwrap();
                    }
                }
                tx.commit().unwrap();
                m as f64 / t.elapsed().as_secs_f64()
            }),
            aiolite: Box::new(move |tmp| {
                let p = tmp.file("a-batch");
                runtime(multi).block_on(async {
                    let db = aiolite_open(&p).await;
                    db.execute(SCHEMA, ()).await.unwrap();
                    let t = Instant::now();
                    let rows = (0..m).map(|i| (name(i), i as f64));
                    let tx = db.transaction().await.unwrap();
                    let changed = tx.execute_many(INSERT, rows).await.unwrap();
                    tx.commit().await.unwrap();
                    assert_eq!(changed, m as u64);
                    let r = m as f64 / t.elapsed().as_secs_f64();
                    db.close().await.unwrap();
                    r
                })
            }),
        },
        Workload {
            on_request: false,
            name: "point_select",
            target: 0.50,
            rusqlite: Box::new(move |tmp| rusqlite_point_select(tmp, n)),
            aiolite: Box::new(move |tmp| {
                let p = tmp.file("a-sel");
                populate(&p, n);
                runtime(multi).block_on(async {
                    let db = aiolite_open(&p).await;
                    let t = Instant::now();
                    let mut sum = 0.0;
                    for i in 0..n {
                        let row = db.fetch_one(SELECT_ONE, [i as i64 + 1]).await.unwrap().unwrap();
                        let (id, nm, score): (i64, String, f64) =
                            (row.get(0).unwrap(), row.get(1).unwrap(), row.get(2).unwrap());
                        sum += id as f64 + score + nm.len() as f64;
                    }
                    std::hint::black_box(sum);
                    let r = n as f64 / t.elapsed().as_secs_f64();
                    db.close().await.unwrap();
                    r
                })
            }),
        },
        Workload {
            on_request: false,
            name: "scan_all",
            target: 0.90,
            rusqlite: Box::new(move |tmp| rusqlite_scan(tmp, m, 1)),
            aiolite: Box::new(move |tmp| aiolite_scan(tmp, m, 1, multi)),
        },
        Workload {
            // Not in BENCH.md: scan_all's query run three times on one connection, the third
            // timed (a service repeating its queries; fetch_all then reserves the row count).
            on_request: false,
            name: "scan_all_repeat",
            target: 0.90,
            rusqlite: Box::new(move |tmp| rusqlite_scan(tmp, m, 3)),
            aiolite: Box::new(move |tmp| aiolite_scan(tmp, m, 3, multi)),
        },
        Workload {
            on_request: false,
            name: "concurrent_read",
            target: 0.60,
            rusqlite: Box::new(move |tmp| {
                let p = tmp.file("r-conc");
                populate(&p, n);
                let per = n / tasks;
                let conns: Vec<_> = (0..tasks).map(|_| rusqlite_open(&p)).collect();
                let t = Instant::now();
                std::thread::scope(|s| {
                    for (k, c) in conns.into_iter().enumerate() {
                        s.spawn(move || {
                            let mut sum = 0.0;
                            for i in 0..per {
                                let id = ((i * tasks + k) % n) as i64 + 1;
                                let (a, nm, score): (i64, String, f64) = c
                                    .prepare_cached(SELECT_ONE)
                                    .unwrap()
                                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                                    .unwrap();
                                sum += a as f64 + score + nm.len() as f64;
                            }
                            std::hint::black_box(sum);
                        });
                    }
                });
                (per * tasks) as f64 / t.elapsed().as_secs_f64()
            }),
            aiolite: Box::new(move |tmp| {
                let p = tmp.file("a-conc");
                populate(&p, n);
                let per = n / tasks;
                runtime(true).block_on(async {
                    let pool = Pool::open(
                        ConnectOptions::new(&p).recommended_pragmas(),
                        PoolOptions::default().readers(readers),
                    )
                    .await
                    .unwrap();
                    // Warm every reader's statement cache once, outside the timing.
                    for _ in 0..readers {
                        pool.fetch_one(SELECT_ONE, [1]).await.unwrap();
                    }
                    let t = Instant::now();
                    let mut handles = Vec::new();
                    for k in 0..tasks {
                        let pool = pool.clone();
                        handles.push(tokio::spawn(async move {
                            let mut sum = 0.0;
                            for i in 0..per {
                                let id = ((i * tasks + k) % n) as i64 + 1;
                                let row = pool.fetch_one(SELECT_ONE, [id]).await.unwrap().unwrap();
                                let (a, nm, score): (i64, String, f64) =
                                    (row.get(0).unwrap(), row.get(1).unwrap(), row.get(2).unwrap());
                                sum += a as f64 + score + nm.len() as f64;
                            }
                            std::hint::black_box(sum);
                        }));
                    }
                    for h in handles {
                        h.await.unwrap();
                    }
                    let r = (per * tasks) as f64 / t.elapsed().as_secs_f64();
                    pool.close().await.unwrap();
                    r
                })
            }),
        },
        Workload {
            // Not in BENCH.md: point_select's loop through a pool, one task (a request handler
            // reading in a loop); rusqlite as in point_select. On request only: a pool's six
            // threads ending in every round change which malloc arena the next fresh worker
            // threads get, and with them scan_all's and insert_txn's results (see the README).
            on_request: true,
            name: "pool_select",
            target: 0.50,
            rusqlite: Box::new(move |tmp| rusqlite_point_select(tmp, n)),
            aiolite: Box::new(move |tmp| {
                let p = tmp.file("a-psel");
                populate(&p, n);
                runtime(multi).block_on(async {
                    let pool = Pool::open(
                        ConnectOptions::new(&p).recommended_pragmas(),
                        PoolOptions::default().readers(readers),
                    )
                    .await
                    .unwrap();
                    let t = Instant::now();
                    let mut sum = 0.0;
                    for i in 0..n {
                        let row = pool.fetch_one(SELECT_ONE, [i as i64 + 1]).await.unwrap().unwrap();
                        let (id, nm, score): (i64, String, f64) =
                            (row.get(0).unwrap(), row.get(1).unwrap(), row.get(2).unwrap());
                        sum += id as f64 + score + nm.len() as f64;
                    }
                    std::hint::black_box(sum);
                    let r = n as f64 / t.elapsed().as_secs_f64();
                    pool.close().await.unwrap();
                    r
                })
            }),
        },
    ]
}

/// `n` point selects by id on one rusqlite connection (a fresh `n`-row table); selects/s.
fn rusqlite_point_select(tmp: &mut Temp, n: usize) -> f64 {
    let p = tmp.file("r-sel");
    populate(&p, n);
    let c = rusqlite_open(&p);
    let t = Instant::now();
    let mut sum = 0.0;
    for i in 0..n {
        let (id, nm, score): (i64, String, f64) = c
            .prepare_cached(SELECT_ONE)
            .unwrap()
            .query_row([i as i64 + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        sum += id as f64 + score + nm.len() as f64;
    }
    std::hint::black_box(sum);
    n as f64 / t.elapsed().as_secs_f64()
}

/// `times` scans of a fresh `rows`-row table on one rusqlite connection; rows/s of the last.
fn rusqlite_scan(tmp: &mut Temp, rows: usize, times: usize) -> f64 {
    let p = tmp.file("r-scan");
    populate(&p, rows);
    let c = rusqlite_open(&p);
    let mut r = 0.0;
    for _ in 0..times {
        let t = Instant::now();
        let got: Vec<(i64, String, f64)> = c
            .prepare_cached(SELECT_ALL)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got.len(), rows);
        r = rows as f64 / t.elapsed().as_secs_f64();
        drop(got);
    }
    r
}

/// `times` `fetch_all` scans of a fresh `rows`-row table on one aiolite connection; rows/s of
/// the last.
fn aiolite_scan(tmp: &mut Temp, rows: usize, times: usize, multi: bool) -> f64 {
    let p = tmp.file("a-scan");
    populate(&p, rows);
    runtime(multi).block_on(async {
        let db = aiolite_open(&p).await;
        let mut r = 0.0;
        for _ in 0..times {
            let t = Instant::now();
            let got = db.fetch_all(SELECT_ALL, ()).await.unwrap();
            assert_eq!(got.len(), rows);
            r = rows as f64 / t.elapsed().as_secs_f64();
            drop(got);
        }
        db.close().await.unwrap();
        r
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    }
}

/// Peak RSS (VmHWM) of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn stream_child(engine: &str, path: &Path) {
    let t = Instant::now();
    let count = match engine {
        "rusqlite" => {
            let c = rusqlite_open(path);
            let mut st = c.prepare(SELECT_ALL).unwrap();
            let mut rows = st.query([]).unwrap();
            let mut k = 0_u64;
            while let Some(r) = rows.next().unwrap() {
                let nm: String = r.get(1).unwrap();
                k += 1;
                std::hint::black_box(nm);
            }
            k
        }
        _ => runtime(false).block_on(async {
            let db = aiolite_open(path).await;
            let mut cur = db.query(SELECT_ALL, ()).await.unwrap();
            let mut k = 0_u64;
            while let Some(r) = cur.fetch_one().await.unwrap() {
                let nm: String = r.get(1).unwrap();
                k += 1;
                std::hint::black_box(nm);
            }
            drop(cur);
            db.close().await.unwrap();
            k
        }),
    };
    let secs = t.elapsed().as_secs_f64();
    println!("{count} {} {}", count as f64 / secs, peak_rss_kib());
}

fn stream_memory(cfg: &Config, tmp: &mut Temp) -> Option<(f64, f64, u64, u64)> {
    let p = tmp.file("stream");
    eprint!("  preparing {} rows for stream_memory… ", cfg.stream_rows);
    populate(&p, cfg.stream_rows);
    eprintln!("done");
    let exe = std::env::current_exe().ok()?;
    let run = |engine: &str| -> Option<(f64, u64)> {
        let out = std::process::Command::new(&exe)
            .args(["--stream-child", engine])
            .arg(&p)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let count: usize = it.next()?.parse().ok()?;
        assert_eq!(count, cfg.stream_rows, "{engine} streamed {count} rows");
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    let mut r_rate = Vec::new();
    let mut a_rate = Vec::new();
    let mut r_rss = 0;
    let mut a_rss = 0;
    for _ in 0..cfg.rounds.min(3) {
        let (rr, rk) = run("rusqlite")?;
        let (ar, ak) = run("aiolite")?;
        r_rate.push(rr);
        a_rate.push(ar);
        r_rss = r_rss.max(rk);
        a_rss = a_rss.max(ak);
    }
    Some((median(&mut r_rate), median(&mut a_rate), r_rss, a_rss))
}

fn main() {
    let cfg = parse_args();
    let mutexes = if DEFAULT_MUTEXES.load(Ordering::Relaxed) {
        "default"
    } else {
        // SAFETY: no thread has been started and SQLite has not been used yet.
        unsafe { aiolite::install_spinning_mutexes() }.expect("SQLite not initialized yet");
        "spinning"
    };
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..cfg.load)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();

    let mut tmp = Temp {
        dir: tempfile::tempdir().unwrap(),
        seq: 0,
    };
    let wanted = |name: &str, on_request: bool| match &cfg.only {
        Some(only) => only.iter().any(|w| w == name),
        None => !on_request,
    };
    let mut work: Vec<Workload> = workloads(&cfg)
        .into_iter()
        .filter(|w| wanted(w.name, w.on_request))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "aiolite-bench: N={} M={} stream={} rounds={} readers={} runtime={} runtime_threads={} load_threads={} sqlite_mutexes={mutexes} cores={cores}",
        cfg.n,
        cfg.m,
        cfg.stream_rows,
        cfg.rounds,
        cfg.readers,
        if cfg.multi_thread {
            "tokio-multi"
        } else {
            "tokio-current"
        },
        match RUNTIME_THREADS.load(Ordering::Relaxed) {
            0 => "default".to_owned(),
            t => t.to_string(),
        },
        cfg.load
    );
    let mut results: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); work.len()];
    for round in 0..cfg.rounds {
        for (k, w) in work.iter_mut().enumerate() {
            // Alternate which side goes first, so neither always gets the warmer machine.
            let (r, a) = if round % 2 == 0 {
                let r = (w.rusqlite)(&mut tmp);
                (r, (w.aiolite)(&mut tmp))
            } else {
                let a = (w.aiolite)(&mut tmp);
                ((w.rusqlite)(&mut tmp), a)
            };
            eprintln!(
                "  round {round} {:<16} rusqlite {:>12.0}/s  aiolite {:>12.0}/s  ratio {:.2}",
                w.name,
                r,
                a,
                a / r
            );
            results[k].0.push(r);
            results[k].1.push(a);
        }
    }
    println!();
    println!("| workload | rusqlite ops/s | aiolite ops/s | ratio (median) | ratio range | target | |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (w, (r, a)) in work.iter().zip(results.iter_mut()) {
        let mut ratios: Vec<f64> = a.iter().zip(r.iter()).map(|(a, r)| a / r).collect();
        let ratio = median(&mut ratios);
        // `median` sorted the ratios: the range shows a workload that runs in two modes.
        let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {lo:.2}–{hi:.2} | ≥ {:.2} | {} |",
            w.name,
            median(r),
            median(a),
            ratio,
            w.target,
            if ratio >= w.target { "ok" } else { "BELOW" }
        );
    }
    if wanted("stream_memory", false) {
        match stream_memory(&cfg, &mut tmp) {
            Some((r_rate, a_rate, r_rss, a_rss)) => {
                println!(
                    "| stream_memory ({} rows) | {:.0} rows/s, peak RSS {:.1} MiB | {:.0} rows/s, peak RSS {:.1} MiB | {:.2} | | RSS < 64 MiB | {} |",
                    cfg.stream_rows,
                    r_rate,
                    r_rss as f64 / 1024.0,
                    a_rate,
                    a_rss as f64 / 1024.0,
                    a_rate / r_rate,
                    if a_rss < 64 * 1024 { "ok" } else { "BELOW" }
                );
            }
            None => println!("| stream_memory | (child run failed) | | | | | |"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    // Keep the temp dir until the end (child processes read from it).
    let _ = Duration::ZERO;
}
