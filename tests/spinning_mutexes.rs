//! `install_spinning_mutexes`: installed before SQLite initializes, SQLite's mutexes go
//! through the spinning wrapper, keep their semantics, and a pool under concurrent reads and
//! writes stays correct.
//!
//! One test in this binary on purpose: the installation must happen before any other use of
//! SQLite in the process (the failure case, after initialization, is in
//! `spinning_mutexes_late.rs`).

use std::sync::mpsc;
use std::time::Duration;

use aiolite::rusqlite::ffi;
use aiolite::{ConnectOptions, Pool, PoolOptions, params};

struct RawMutex(*mut ffi::sqlite3_mutex);
// SAFETY: SQLite mutexes are made to be used from any thread.
unsafe impl Send for RawMutex {}
unsafe impl Sync for RawMutex {}

#[test]
fn spinning_mutexes_install_and_keep_sqlite_correct() {
    // SAFETY: first SQLite use of this process; no other test runs in this binary.
    unsafe { aiolite::install_spinning_mutexes() }.expect("installs before initialization");
    // SAFETY: as above.
    unsafe { aiolite::install_spinning_mutexes() }.expect("a second call is a no-op");
    assert_eq!(aiolite::sqlite_mutex_sleeps(), 0);

    // A held mutex: the second thread goes through our `xMutexEnter`, spins, sleeps (counted),
    // and gets the mutex once the holder lets go. The holder lets go only after seeing the
    // sleep counted, so no timing is assumed.
    // SAFETY: plain SQLite mutex API; the mutex is freed at the end and used only meanwhile.
    let m = RawMutex(unsafe { ffi::sqlite3_mutex_alloc(ffi::SQLITE_MUTEX_FAST) });
    assert!(!m.0.is_null());
    let (held_tx, held_rx) = mpsc::channel();
    let (tried_tx, tried_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let m = &m;
        s.spawn(move || {
            // SAFETY: as above.
            unsafe { ffi::sqlite3_mutex_enter(m.0) };
            held_tx.send(()).unwrap();
            tried_rx.recv().unwrap();
            let start = std::time::Instant::now();
            while aiolite::sqlite_mutex_sleeps() == 0 && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // SAFETY: held by this thread.
            unsafe { ffi::sqlite3_mutex_leave(m.0) };
        });
        held_rx.recv().unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(ffi::sqlite3_mutex_try(m.0), ffi::SQLITE_BUSY);
            tried_tx.send(()).unwrap();
            ffi::sqlite3_mutex_enter(m.0);
            ffi::sqlite3_mutex_leave(m.0);
        }
    });
    assert_eq!(
        aiolite::sqlite_mutex_sleeps(),
        1,
        "the blocked enter spun, then slept, in the wrapper"
    );
    // SAFETY: no longer used.
    unsafe { ffi::sqlite3_mutex_free(m.0) };

    // Recursive mutexes stay recursive.
    // SAFETY: as above.
    unsafe {
        let r = ffi::sqlite3_mutex_alloc(ffi::SQLITE_MUTEX_RECURSIVE);
        ffi::sqlite3_mutex_enter(r);
        ffi::sqlite3_mutex_enter(r);
        ffi::sqlite3_mutex_leave(r);
        ffi::sqlite3_mutex_leave(r);
        ffi::sqlite3_mutex_free(r);
    }

    // A pool: 4 readers on 4 threads against a writer appending, through the new mutexes.
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = Pool::open(
            ConnectOptions::new(dir.path().join("m.db")).recommended_pragmas(),
            PoolOptions::default().readers(4),
        )
        .await
        .unwrap();
        pool.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)", ())
            .await
            .unwrap();
        pool.execute_many("INSERT INTO t(v) VALUES (?)", (0..1000).map(|i| [i]))
            .await
            .unwrap();
        let writer = {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..500 {
                    pool.execute("INSERT INTO t(v) VALUES (?)", params![1000 + i])
                        .await
                        .unwrap();
                }
            })
        };
        let mut readers = Vec::new();
        for k in 0..4_i64 {
            let pool = pool.clone();
            readers.push(tokio::spawn(async move {
                let mut last = 0;
                for i in 0..2000_i64 {
                    let id = (i * 4 + k) % 1000 + 1;
                    let v: i64 = pool
                        .fetch_scalar("SELECT v FROM t WHERE id = ?", [id])
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(v, id - 1);
                    let n: i64 = pool.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap().unwrap();
                    assert!(n >= last && (1000..=1500).contains(&n), "count {n} after {last}");
                    last = n;
                }
            }));
        }
        writer.await.unwrap();
        for r in readers {
            r.await.unwrap();
        }
        let n: i64 = pool.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap().unwrap();
        assert_eq!(n, 1500);
        pool.close().await.unwrap();
    });
}
