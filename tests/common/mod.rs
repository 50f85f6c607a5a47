//! Shared test helpers: run one async test body under several executors.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;

/// Run `f` under tokio multi-thread, tokio current-thread and `futures::executor::block_on`.
pub fn on_all_runtimes<F, Fut>(f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f());
    futures::executor::block_on(f());
}

/// A tokio current-thread runtime with time and I/O.
pub fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A tokio multi-thread runtime with `workers` threads, time and I/O.
pub fn multi_thread_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Frames in a database's `-wal` file (its size only grows: SQLite reuses it from the start
/// after a restart instead of truncating it).
pub fn wal_frames(path: &std::path::Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len()) / (4096 + 24)
}

/// Run `PRAGMA wal_checkpoint(TRUNCATE)` on `db` (which needs every read lock on the file
/// free); its `busy` column: 0 when it went through.
pub async fn truncate_checkpoint(db: &aiolite::Connection) -> i64 {
    db.fetch_one("PRAGMA wal_checkpoint(TRUNCATE)", ())
        .await
        .unwrap()
        .unwrap()
        .get::<i64>(0)
        .unwrap()
}

/// A fresh temp dir and a database path inside it.
pub fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    (dir, path)
}

/// Number of threads in this process (Linux), for leak checks.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// Number of this process's aiolite worker threads (Linux).
pub fn worker_threads() -> usize {
    worker_thread_names().len()
}

/// Names and states (from `/proc/self/task/*/stat`) of this process's aiolite worker
/// threads: what a failed leak check prints.
pub fn worker_thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
                    let name = name.trim_end();
                    name.starts_with("aiolite-").then(|| {
                        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                        let state = stat
                            .rsplit(')')
                            .next()
                            .unwrap_or("")
                            .split_whitespace()
                            .next()
                            .unwrap_or("?");
                        format!("{name} ({state})")
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until `cond` holds: polls every 5 ms, up to 2,000 times (10 s of sleeps). The
/// budget counts polls, not wall-clock time, so a stalled machine (a paused VM, a burst of
/// steal time) cannot use it up before the awaited thread got to run.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..2_000 {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cond()
}

/// A runtime-agnostic sleep: a helper thread completes a oneshot after `d`. Works under
/// tokio (both flavours) and `futures::executor`.
pub async fn delay(d: std::time::Duration) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// Runtime-agnostic timeout: `Some(output)` if `fut` finishes within `d`, `None` otherwise
/// (then `fut` is dropped).
pub async fn within<F: Future>(d: std::time::Duration, fut: F) -> Option<F::Output> {
    use futures::future::{Either, select};
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(delay(d));
    match select(fut, timer).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(((), _)) => None,
    }
}

/// Yield to the executor once.
pub async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// A statement that runs for minutes unless interrupted (counts to 1e9 in a recursive CTE).
pub const SLOW_QUERY: &str =
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) SELECT count(*) FROM c";

/// Generous bound for "does not hang" checks.
pub const NO_HANG: std::time::Duration = std::time::Duration::from_secs(10);

/// `db.close()` for tests where closing is incidental: must be `Ok` within [`NO_HANG`], and
/// the connection is closed afterwards.
pub async fn close(db: &aiolite::Connection) {
    within(NO_HANG, db.close())
        .await
        .expect("close() hung")
        .expect("close() failed");
    assert!(db.is_closed());
}
