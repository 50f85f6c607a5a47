//! The raw front-end API (`aiolite::raw`): `Connection::submit` with callback replies.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use aiolite::raw::{Command, Reply};
use aiolite::{ConnectOptions, Connection, Error, Value};
use futures::executor::block_on;

fn open(opts: ConnectOptions) -> Connection {
    block_on(opts.open()).unwrap()
}

/// Submit and wait for the reply on a plain thread (no executor); also report the thread
/// the callback ran on.
fn submit_wait(db: &Connection, cmd: Command) -> (aiolite::Result<Reply>, Option<String>) {
    let (tx, rx) = mpsc::channel();
    db.submit(cmd, move |outcome| {
        let name = std::thread::current().name().map(str::to_owned);
        tx.send((outcome, name)).unwrap();
    })
    .unwrap();
    rx.recv_timeout(common::NO_HANG).expect("no reply")
}

#[test]
fn submit_from_a_plain_thread_replies_on_the_worker_thread() {
    let db = open(ConnectOptions::new(":memory:"));
    let handle = std::thread::spawn(move || {
        let (r, thread) = submit_wait(&db, Command::execute("CREATE TABLE t(x)", ()));
        assert!(matches!(r, Ok(Reply::Exec(_))), "{r:?}");
        let thread = thread.expect("named thread");
        assert!(thread.starts_with("aiolite-"), "{thread}");
        assert_ne!(Some(thread.as_str()), std::thread::current().name());

        match submit_wait(&db, Command::execute("INSERT INTO t VALUES (?)", [5])).0 {
            Ok(Reply::Exec(e)) => assert_eq!((e.changes, e.last_insert_rowid), (1, 1)),
            other => panic!("{other:?}"),
        }
        match submit_wait(&db, Command::execute_many("INSERT INTO t VALUES (?)", [[6], [7]])).0 {
            Ok(Reply::Changes(n)) => assert_eq!(n, 2),
            other => panic!("{other:?}"),
        }
        match submit_wait(&db, Command::execute_script("INSERT INTO t VALUES (8);")).0 {
            Ok(Reply::Unit) => {}
            other => panic!("{other:?}"),
        }
        match submit_wait(&db, Command::fetch_all("SELECT x FROM t ORDER BY x", ())).0 {
            Ok(Reply::Rows(rows)) => {
                let xs: Vec<i64> = rows.iter().map(|r| r.get(0).unwrap()).collect();
                assert_eq!(xs, vec![5, 6, 7, 8]);
            }
            other => panic!("{other:?}"),
        }
        match submit_wait(&db, Command::fetch_one("SELECT x FROM t WHERE x > ?", [6])).0 {
            Ok(Reply::Row(Some(row))) => assert_eq!(row.get::<i64>(0).unwrap(), 7),
            other => panic!("{other:?}"),
        }
        match submit_wait(&db, Command::fetch_scalar("SELECT sum(x) FROM t", ())).0 {
            Ok(Reply::Scalar(Some(v))) => assert_eq!(v, Value::Integer(26)),
            other => panic!("{other:?}"),
        }
        match submit_wait(&db, Command::call(|c| Box::new(c.is_autocommit()))).0 {
            Ok(Reply::Any(b)) => assert_eq!(b.downcast_ref::<bool>(), Some(&true)),
            other => panic!("{other:?}"),
        }
        match submit_wait(&db, Command::fetch_scalar("SELECT * FROM nope", ())).0 {
            Err(e) => assert!(e.to_string().contains("no such table"), "{e}"),
            other => panic!("{other:?}"),
        }
    });
    handle.join().unwrap();
}

#[test]
fn raw_cursor_commands() {
    let db = open(ConnectOptions::new(":memory:"));
    let id = db.new_cursor_id();
    let sql = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 10) SELECT n FROM c";
    let mut got = Vec::new();
    match submit_wait(&db, Command::query(id, sql, (), 4)).0 {
        Ok(Reply::Chunk(c)) => {
            assert!(!c.done);
            assert_eq!(c.columns.len(), 1);
            got.extend(c.rows.iter().map(|r| r.get::<i64>(0).unwrap()));
        }
        other => panic!("{other:?}"),
    }
    match submit_wait(&db, Command::cursor_next(id, 3)).0 {
        Ok(Reply::Chunk(c)) => got.extend(c.rows.iter().map(|r| r.get::<i64>(0).unwrap())),
        other => panic!("{other:?}"),
    }
    assert!(matches!(submit_wait(&db, Command::cursor_close(id)).0, Ok(Reply::Unit)));
    // A closed (or unknown) cursor answers an empty, finished chunk.
    match submit_wait(&db, Command::cursor_next(id, 3)).0 {
        Ok(Reply::Chunk(c)) => assert!(c.done && c.rows.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(got, (1..=7).collect::<Vec<_>>());
}

#[test]
fn submit_reports_queue_full_when_saturated() {
    let db = open(ConnectOptions::new(":memory:").queue_capacity(1));
    let (release, wait) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let replies = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&replies);
    db.submit(
        Command::call(move |_c| {
            started_tx.send(()).unwrap();
            wait.recv().unwrap();
            Box::new(())
        }),
        move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        },
    )
    .unwrap();
    started.recv().unwrap(); // the worker is busy inside the closure; the queue is empty
    let mut accepted = 0;
    let full = loop {
        let r = Arc::clone(&replies);
        match db.submit(Command::execute("SELECT 1", ()), move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        }) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= 10, "never reported QueueFull");
    };
    assert!(matches!(full, Error::QueueFull), "{full:?}");
    assert_eq!(accepted, 1, "capacity 1");
    // While the queue is full, an async caller waits instead of failing.
    let mut waiting = Box::pin(db.fetch_scalar::<i64>("SELECT 2", ()));
    assert!(block_on(async { futures::poll!(&mut waiting) }).is_pending());
    release.send(()).unwrap();
    assert_eq!(block_on(waiting).unwrap(), Some(2));
    assert!(common::eventually(|| replies.load(Ordering::SeqCst) == 2));
    // The refused command never replied.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(replies.load(Ordering::SeqCst), 2);
}

#[test]
fn submit_after_close_is_closed_and_never_calls_back() {
    let db = open(ConnectOptions::new(":memory:"));
    block_on(common::close(&db));
    let called = Arc::new(AtomicBool::new(false));
    let c = Arc::clone(&called);
    let err = db
        .submit(Command::execute("SELECT 1", ()), move |_| {
            c.store(true, Ordering::SeqCst)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    std::thread::sleep(Duration::from_millis(20));
    assert!(!called.load(Ordering::SeqCst));
}

#[test]
fn commands_queued_before_close_still_reply() {
    let db = open(ConnectOptions::new(":memory:"));
    let (tx, rx) = mpsc::channel();
    for i in 0..50 {
        let tx = tx.clone();
        db.submit(Command::fetch_scalar("SELECT ?", [i]), move |r| {
            tx.send((i, r)).unwrap()
        })
        .unwrap();
    }
    block_on(common::close(&db));
    drop(tx);
    let replies: Vec<_> = rx.iter().collect();
    assert_eq!(replies.len(), 50);
    for (i, r) in replies {
        match r {
            Ok(Reply::Scalar(Some(v))) => assert_eq!(v, Value::Integer(i)),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_panicking_callback_does_not_kill_the_worker() {
    let db = open(ConnectOptions::new(":memory:"));
    db.submit(Command::execute("SELECT 1", ()), |_| panic!("callback panic"))
        .unwrap();
    let (r, _) = submit_wait(&db, Command::fetch_scalar("SELECT 3", ()));
    assert!(matches!(r, Ok(Reply::Scalar(Some(Value::Integer(3))))), "{r:?}");
    assert_eq!(block_on(db.fetch_scalar::<i64>("SELECT 4", ())).unwrap(), Some(4));
}

#[test]
fn a_panicking_raw_call_is_panicked() {
    let db = open(ConnectOptions::new(":memory:"));
    let (r, _) = submit_wait(&db, Command::call(|_c| panic!("raw call panic")));
    assert!(
        matches!(&r, Err(Error::Panicked { message }) if message.contains("raw call panic")),
        "{r:?}"
    );
    assert_eq!(block_on(db.fetch_scalar::<i64>("SELECT 5", ())).unwrap(), Some(5));
}

#[test]
fn raw_commands_wait_behind_another_handles_transaction() {
    let db = open(ConnectOptions::new(":memory:"));
    block_on(db.execute("CREATE TABLE t(x)", ())).unwrap();
    let tx = block_on(db.transaction()).unwrap();
    block_on(tx.execute("INSERT INTO t VALUES ('tx')", ())).unwrap();
    let (sender, rx) = mpsc::channel();
    db.submit(Command::execute("INSERT INTO t VALUES ('raw')", ()), move |r| {
        sender.send(r).unwrap();
    })
    .unwrap();
    // No reply while the transaction is open (the command is held back, not run inside it).
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    assert_eq!(db.pending(), 1);
    block_on(tx.rollback()).unwrap();
    assert!(rx.recv_timeout(common::NO_HANG).expect("no reply").is_ok());
    let xs: Vec<String> = block_on(db.fetch_all("SELECT x FROM t", ()))
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    assert_eq!(xs, vec!["raw"]);
    assert_eq!(db.pending(), 0);
}

#[test]
fn raw_and_async_commands_share_one_order() {
    let db = open(ConnectOptions::new(":memory:"));
    block_on(db.execute("CREATE TABLE t(x)", ())).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..100 {
        let tx = tx.clone();
        db.submit(Command::execute("INSERT INTO t VALUES (?)", [i]), move |r| {
            tx.send(r.is_ok()).unwrap();
        })
        .unwrap();
    }
    // An async read submitted after them sees all of them.
    let n = block_on(db.fetch_scalar::<i64>("SELECT count(*) FROM t", ())).unwrap();
    assert_eq!(n, Some(100));
    drop(tx);
    assert!(rx.iter().all(|ok| ok));
    let xs: Vec<i64> = block_on(db.fetch_all("SELECT x FROM t ORDER BY rowid", ()))
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    assert_eq!(xs, (0..100).collect::<Vec<_>>());
}

/// The `Executed` inside a DB-API command's reply.
fn executed(r: aiolite::Result<Reply>) -> aiolite::raw::Executed {
    match r {
        Ok(Reply::Any(b)) => *b.downcast::<aiolite::raw::Executed>().expect("an Executed"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dbapi_commands_report_rows_changes_and_lastrowid() {
    use aiolite::TransactionBehavior;
    use aiolite::raw::Prelude;

    let db = open(ConnectOptions::new(":memory:"));
    let id = db.new_cursor_id();
    let ex = executed(
        submit_wait(
            &db,
            Command::cursor_execute(id, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)", (), 8, None),
        )
        .0,
    );
    assert!(ex.chunk.done && ex.chunk.rows.is_empty() && ex.chunk.columns.is_empty());
    assert_eq!(ex.changes, 0);

    // An implicit BEGIN before DML, in the same command.
    let begin = Some(Prelude::Begin(TransactionBehavior::Deferred));
    let ex = executed(
        submit_wait(
            &db,
            Command::cursor_execute(
                db.new_cursor_id(),
                "INSERT INTO t(b) VALUES (1), (2), (3)",
                (),
                8,
                begin,
            ),
        )
        .0,
    );
    assert_eq!((ex.changes, ex.last_insert_rowid), (3, 3));
    assert!(db.in_transaction());
    // The prelude is a no-op inside a transaction.
    let ex = executed(
        submit_wait(
            &db,
            Command::cursor_execute(db.new_cursor_id(), "UPDATE t SET b = b + 1 WHERE a > 1", (), 8, begin),
        )
        .0,
    );
    assert_eq!(ex.changes, 2);
    // A statement that changes nothing reports 0, not the previous statement's count.
    let ex = executed(
        submit_wait(
            &db,
            Command::cursor_execute(db.new_cursor_id(), "UPDATE t SET b = 0 WHERE a > 99", (), 8, begin),
        )
        .0,
    );
    assert_eq!(ex.changes, 0);

    // Rows stream: the first chunk with the reply, the rest through cursor_next.
    let cursor = db.new_cursor_id();
    let ex = executed(
        submit_wait(
            &db,
            Command::cursor_execute(cursor, "SELECT a, b FROM t ORDER BY a", (), 2, None),
        )
        .0,
    );
    assert_eq!(
        (ex.chunk.rows.len(), ex.chunk.done, ex.changes, ex.last_insert_rowid),
        (2, false, 0, 3)
    );
    assert_eq!(
        ex.chunk.columns.iter().map(|c| c.name()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    match submit_wait(&db, Command::cursor_next(cursor, 10)).0 {
        Ok(Reply::Chunk(c)) => assert!(c.done && c.rows.len() == 1),
        other => panic!("{other:?}"),
    }

    // RETURNING: rows and changes together.
    let ex = executed(
        submit_wait(
            &db,
            Command::cursor_execute(
                db.new_cursor_id(),
                "INSERT INTO t(b) VALUES (9) RETURNING a",
                (),
                8,
                begin,
            ),
        )
        .0,
    );
    assert_eq!((ex.changes, ex.chunk.rows.len(), ex.last_insert_rowid), (1, 1, 4));

    let ex = executed(
        submit_wait(
            &db,
            Command::cursor_execute_many("INSERT INTO t(b) VALUES (?)", [[5], [6]], begin),
        )
        .0,
    );
    assert_eq!((ex.changes, ex.last_insert_rowid), (2, 6));

    // executescript commits first.
    assert!(db.in_transaction());
    let ex = executed(
        submit_wait(
            &db,
            Command::cursor_execute_script("SELECT 1; SELECT 2;", Some(Prelude::Commit)),
        )
        .0,
    );
    assert_eq!(ex.changes, 0);
    assert!(!db.in_transaction());
    assert_eq!(
        block_on(db.fetch_scalar::<i64>("SELECT count(*) FROM t", ())).unwrap(),
        Some(6)
    );
}

#[test]
fn a_failed_prelude_stops_the_statement() {
    use aiolite::TransactionBehavior;
    use aiolite::raw::Prelude;

    let (_dir, path) = common::temp_db();
    let a = open(ConnectOptions::new(&path));
    let b = open(ConnectOptions::new(&path).busy_timeout(Duration::ZERO));
    block_on(a.execute("CREATE TABLE t(x)", ())).unwrap();
    block_on(a.execute("BEGIN IMMEDIATE", ())).unwrap();
    let begin = Some(Prelude::Begin(TransactionBehavior::Immediate));
    let r = submit_wait(&b, Command::cursor_execute(b.new_cursor_id(), "SELECT 1", (), 8, begin)).0;
    assert!(matches!(&r, Err(e) if e.is_busy()), "{r:?}");
    block_on(a.execute("ROLLBACK", ())).unwrap();
    assert!(!b.in_transaction());
    let ex = executed(submit_wait(&b, Command::cursor_execute(b.new_cursor_id(), "SELECT 1", (), 8, begin)).0);
    assert_eq!(ex.chunk.rows.len(), 1);
    assert!(b.in_transaction());
}
