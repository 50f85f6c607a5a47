//! `install_spinning_mutexes` after SQLite has initialized: a typed error, nothing changed,
//! open connections keep working. One test in this binary (see `spinning_mutexes.rs`).

#[test]
fn spinning_mutexes_refused_once_sqlite_is_initialized() {
    futures::executor::block_on(async {
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.close().await.unwrap();
        // SAFETY: SQLite is initialized but nobody uses it now (the connection is closed and
        // its worker done with SQLite).
        let err = unsafe { aiolite::install_spinning_mutexes() }.unwrap_err();
        assert!(matches!(err, aiolite::Error::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("already initialized"), "{err}");
        // Nothing changed: connections open and work as before.
        let db = aiolite::connect(":memory:").await.unwrap();
        db.execute("CREATE TABLE t(x)", ()).await.unwrap();
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let n: Option<i64> = db.fetch_scalar("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(n, Some(1));
        assert_eq!(aiolite::sqlite_mutex_sleeps(), 0);
        db.close().await.unwrap();
    });
}
