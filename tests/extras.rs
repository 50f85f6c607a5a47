//! Beyond statements: aggregates, collations, blobs, backup, serialize / deserialize.

mod common;

use std::sync::{Arc, Mutex};

use aiolite::{Aggregate, BackupOptions, ConnectOptions, Error, Value, connect};
use futures::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, SeekFrom};

struct Concat;

impl Aggregate for Concat {
    type State = Vec<String>;
    fn init(&self) -> Vec<String> {
        Vec::new()
    }
    fn step(&self, state: &mut Vec<String>, args: &[Value]) -> aiolite::Result<()> {
        match &args[0] {
            Value::Text(s) if s == "bad" => Err(Error::InvalidArgument {
                message: "bad input".into(),
            }),
            Value::Text(s) => {
                state.push(s.clone());
                Ok(())
            }
            _ => Ok(()),
        }
    }
    fn finalize(&self, state: Vec<String>) -> aiolite::Result<Value> {
        Ok(Value::Text(state.join("+")))
    }
}

#[test]
fn aggregates_group_and_fail_cleanly() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.create_aggregate("concat", 1, true, Concat).await.unwrap();
        db.execute_script("CREATE TABLE t(g, v); INSERT INTO t VALUES (1,'a'),(1,'b'),(2,'c');")
            .await
            .unwrap();
        let rows: Vec<(i64, String)> = db
            .fetch_all_as("SELECT g, concat(v) FROM t GROUP BY g ORDER BY g", ())
            .await
            .unwrap();
        assert_eq!(rows, vec![(1, "a+b".into()), (2, "c".into())]);
        // No rows: finalize of a fresh state.
        let empty: Option<String> = db.fetch_scalar("SELECT concat(v) FROM t WHERE 0", ()).await.unwrap();
        assert_eq!(empty.as_deref(), Some(""));
        db.execute("INSERT INTO t VALUES (3, 'bad')", ()).await.unwrap();
        let e = db.fetch_all("SELECT concat(v) FROM t", ()).await.unwrap_err();
        assert!(e.to_string().contains("bad input"), "{e}");
        db.remove_function("concat", 1).await.unwrap();
        assert!(db.fetch_all("SELECT concat(v) FROM t", ()).await.is_err());
    });
}

#[test]
fn collations_order_rows() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.create_collation("by_len", |a: &str, b: &str| a.len().cmp(&b.len()).then(a.cmp(b)))
            .await
            .unwrap();
        db.execute_script("CREATE TABLE w(x); INSERT INTO w VALUES ('ccc'),('a'),('bb');")
            .await
            .unwrap();
        let got: Vec<(String,)> = db
            .fetch_all_as("SELECT x FROM w ORDER BY x COLLATE by_len", ())
            .await
            .unwrap();
        assert_eq!(got, vec![("a".into(),), ("bb".into(),), ("ccc".into(),)]);
        let e = db
            .fetch_all("SELECT x FROM w ORDER BY x COLLATE nope", ())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no such collation"), "{e}");
    });
}

#[test]
fn blob_read_write_seek() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE f(id INTEGER PRIMARY KEY, data BLOB)", ())
            .await
            .unwrap();
        let size = 600 * 1024; // more than one chunk
        db.execute("INSERT INTO f VALUES (1, zeroblob(?))", [size])
            .await
            .unwrap();
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut blob = db.blob_open("f", "data", 1, false).await.unwrap();
        assert_eq!(blob.len(), size as u64);
        blob.write_all(&payload).await.unwrap();
        blob.flush().await.unwrap();
        assert_eq!(blob.position(), size as u64);
        // Writing past the end fails: a BLOB cannot grow.
        let e = blob.write(b"x").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WriteZero);
        blob.seek(SeekFrom::Start(0)).await.unwrap();
        let mut back = Vec::new();
        blob.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, payload);
        blob.seek(SeekFrom::End(-3)).await.unwrap();
        let mut tail = [0_u8; 3];
        blob.read_exact(&mut tail).await.unwrap();
        assert_eq!(&tail, &payload[size as usize - 3..]);
        assert!(blob.seek(SeekFrom::Current(-(size as i64) - 10)).await.is_err());
        // The same bytes through SQL.
        let stored: Vec<u8> = db
            .fetch_scalar("SELECT data FROM f WHERE id = 1", ())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, payload);
        // Read-only handles refuse writes; missing rows fail to open.
        let mut ro = db.blob_open("f", "data", 1, true).await.unwrap();
        assert_eq!(
            ro.write(b"x").await.unwrap_err().kind(),
            std::io::ErrorKind::PermissionDenied
        );
        assert!(db.blob_open("f", "data", 99, true).await.is_err());
        assert!(db.blob_open("nope", "data", 1, true).await.is_err());
    });
}

#[test]
fn serialize_and_deserialize_round_trip() {
    common::on_all_runtimes(|| async {
        let a = connect(":memory:").await.unwrap();
        a.execute_script("CREATE TABLE t(x, y); INSERT INTO t VALUES (1, 'one'), (2, x'00ff');")
            .await
            .unwrap();
        let bytes = a.serialize().await.unwrap();
        assert_eq!(&bytes[..16], b"SQLite format 3\0");
        let b = connect(":memory:").await.unwrap();
        // A cached statement from before must not survive the swap.
        assert!(b.fetch_all("SELECT * FROM t", ()).await.is_err());
        b.deserialize(bytes.clone()).await.unwrap();
        let rows = b.fetch_all("SELECT x, y FROM t ORDER BY x", ()).await.unwrap();
        assert_eq!(rows[0]["y"], Value::Text("one".into()));
        assert_eq!(rows[1]["y"], Value::Blob(vec![0, 255]));
        // The copy is writable and independent.
        b.execute("INSERT INTO t VALUES (3, NULL)", ()).await.unwrap();
        assert_eq!(
            a.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(2)
        );
        // Garbage is refused when read.
        let c = connect(":memory:").await.unwrap();
        let r = c.deserialize(vec![7_u8; 4096]).await;
        let read = c.fetch_all("SELECT * FROM sqlite_schema", ()).await;
        assert!(r.is_err() || read.is_err());
        // The connection itself is fine: a valid image makes it usable again.
        c.deserialize(bytes).await.unwrap();
        assert_eq!(
            c.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(2)
        );
    });
}

#[test]
fn backup_in_steps_while_the_source_keeps_working() {
    common::on_all_runtimes(|| async {
        let dir = tempfile::tempdir().unwrap();
        let src = ConnectOptions::new(dir.path().join("src.db"))
            .recommended_pragmas()
            .open()
            .await
            .unwrap();
        src.execute("CREATE TABLE t(x)", ()).await.unwrap();
        src.execute_many("INSERT INTO t VALUES (?)", (0..3000).map(|i| [format!("{i:>200}")]))
            .await
            .unwrap();
        let src2 = src.clone();
        let calls = Arc::new(Mutex::new(0));
        let c = Arc::clone(&calls);
        let target = dir.path().join("dst.db");
        let backup = src.backup(
            target.as_path(),
            BackupOptions {
                pages: 10,
                progress: Some(Box::new(move |_| *c.lock().unwrap() += 1)),
                ..Default::default()
            },
        );
        // Other work on the same connection interleaves with the steps (and, being made
        // through the same connection, is copied too).
        let other = async {
            for i in 0..20 {
                src2.execute("INSERT INTO t VALUES (?)", [format!("extra {i}")])
                    .await
                    .unwrap();
            }
        };
        let (r, ()) = futures::join!(backup, other);
        r.unwrap();
        assert!(*calls.lock().unwrap() > 10);
        let dst = connect(&target).await.unwrap();
        let n: Option<i64> = dst.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap();
        assert!(n.unwrap() >= 3000, "{n:?}");
        assert_eq!(
            dst.fetch_scalar::<String>("PRAGMA integrity_check", ())
                .await
                .unwrap()
                .as_deref(),
            Some("ok")
        );
    });
}

#[test]
fn backup_into_a_busy_target_fails_cleanly() {
    common::on_all_runtimes(|| async {
        let src = connect(":memory:").await.unwrap();
        src.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let dst = connect(":memory:").await.unwrap();
        dst.execute("CREATE TABLE d(x)", ()).await.unwrap();
        let tx = dst.transaction().await.unwrap();
        tx.execute("INSERT INTO d VALUES (1)", ()).await.unwrap();
        // The target has a transaction open: SQLite refuses to start the backup.
        let e = src.backup(&dst, BackupOptions::default()).await.unwrap_err();
        assert!(matches!(e, Error::Sqlite { .. }), "{e}");
        tx.rollback().await.unwrap();
        src.backup(&dst, BackupOptions::default()).await.unwrap();
        assert!(dst.fetch_all("SELECT * FROM t", ()).await.unwrap().is_empty());
        let closed = connect(":memory:").await.unwrap();
        closed.close().await.unwrap();
        assert!(matches!(
            src.backup(&closed, BackupOptions::default()).await,
            Err(Error::Closed)
        ));
    });
}

#[test]
fn unknown_pragmas_are_refused_at_open() {
    common::on_all_runtimes(|| async {
        let e = ConnectOptions::new(":memory:")
            .pragma("foreign_key", "ON") // misspelt: SQLite would ignore it silently
            .open()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("foreign_key"), "{e}");
        ConnectOptions::new(":memory:")
            .pragma("main.foreign_keys", "ON")
            .open()
            .await
            .unwrap();
    });
}

#[test]
fn a_vec_of_values_by_reference_is_params() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let v = vec![Value::Integer(1), Value::Text("x".into())];
        let row = db.fetch_one("SELECT ?, ?", &v).await.unwrap().unwrap();
        assert_eq!(row.values(), &v[..]);
        assert_eq!(v.len(), 2); // still usable
    });
}

#[test]
fn a_connection_replaced_inside_call_keeps_timeouts() {
    common::on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_timeout(std::time::Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        db.call(|c| {
            *c = aiolite::rusqlite::Connection::open_in_memory()?;
            Ok(())
        })
        .await
        .unwrap();
        let slow = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT count(*) FROM c";
        let e = db.fetch_scalar::<i64>(slow, ()).await.unwrap_err();
        assert!(matches!(e, Error::StatementTimeout { .. }), "{e}");
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap(), Some(1));
    });
}

#[test]
fn a_fine_progress_handler_keeps_cancellation_and_timeouts() {
    common::on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:")
            .statement_timeout(std::time::Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        let calls = Arc::new(Mutex::new(0_u64));
        let sink = Arc::clone(&calls);
        db.set_progress_handler(
            1,
            Some(move || {
                *sink.lock().unwrap() += 1;
                false
            }),
        )
        .await
        .unwrap();
        // A statement of a few dozen instructions: called at the requested granularity.
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1 + 1", ()).await.unwrap(), Some(2));
        assert!(
            *calls.lock().unwrap() > 0,
            "a 1-instruction handler must run on a short statement"
        );
        // The timeout still reaches SQLite through the same handler.
        let slow = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT count(*) FROM c";
        let e = db.fetch_scalar::<i64>(slow, ()).await.unwrap_err();
        assert!(matches!(e, Error::StatementTimeout { .. }), "{e}");
        // Removing it restores the coarse period: no more calls.
        db.set_progress_handler(0, None::<fn() -> bool>).await.unwrap();
        let before = *calls.lock().unwrap();
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1 + 1", ()).await.unwrap(), Some(2));
        assert_eq!(*calls.lock().unwrap(), before);
        let e = db.fetch_scalar::<i64>(slow, ()).await.unwrap_err();
        assert!(matches!(e, Error::StatementTimeout { .. }), "{e}");
    });
}

#[test]
fn set_authorizer_reauthorizes_cached_statements_and_spares_open_cursors() {
    use aiolite::{AuthRequest, Authorization, auth};
    common::on_all_runtimes(|| async {
        let db = ConnectOptions::new(":memory:").iter_chunk_size(8).open().await.unwrap();
        db.execute_script(
            "CREATE TABLE t(x); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c WHERE n < 100) \
             INSERT INTO t SELECT n FROM c;",
        )
        .await
        .unwrap();
        // Cache the statement, then start a cursor that is mid-way when the authorizer changes.
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(100)
        );
        let mut cur = db.query("SELECT x FROM t ORDER BY x", ()).await.unwrap();
        let first = cur.fetch_many(10).await.unwrap();
        assert_eq!(first.len(), 10);
        db.set_authorizer(Some(|r: &AuthRequest<'_>| {
            if r.action == auth::READ && r.arg1 == Some("t") {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }))
        .await
        .unwrap();
        // The cached statement is prepared again, and denied.
        let e = db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap_err();
        assert!(e.to_string().contains("not authorized"), "{e}");
        // The open cursor runs to its end.
        let rest = cur.fetch_all().await.unwrap();
        assert_eq!(rest.len(), 90);
        assert_eq!(rest[89].get::<i64>(0).unwrap(), 100);
        db.set_authorizer(None::<fn(&AuthRequest<'_>) -> Authorization>)
            .await
            .unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(100)
        );
    });
}
