//! Migrations: once, no-op re-runs, edits, gaps, downgrades, failures, concurrency, embedding.

mod common;

use std::time::Duration;

use aiolite::migrate::{Migration, Migrator};
use aiolite::{ConnectOptions, Error, Executor, Pool, PoolOptions, connect, crud};

fn steps() -> Vec<Migration> {
    vec![
        Migration::new(1, "users", "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"),
        Migration::new(2, "emails", "ALTER TABLE users ADD COLUMN email TEXT;"),
        Migration::new(3, "tags", "CREATE TABLE tags(user_id INTEGER, tag TEXT);"),
    ]
}

async fn version(db: &impl Executor) -> i64 {
    db.fetch_scalar("PRAGMA user_version", ()).await.unwrap().unwrap()
}

#[test]
fn applies_once_and_reruns_as_a_no_op() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let m = Migrator::new(steps());
        let r = m.run(&db).await.unwrap();
        assert_eq!((r.applied, r.version), (vec![1, 2, 3], 3));
        assert_eq!(version(&db).await, 3);
        let r = m.run(&db).await.unwrap();
        assert_eq!((r.applied, r.version), (vec![], 3));
        let applied = m.applied(&db).await.unwrap();
        assert_eq!(applied.iter().map(|a| a.version).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(applied[1].name, "emails");
        assert_eq!(applied[1].checksum, steps()[1].checksum());
        assert!(applied[0].applied_at.ends_with('Z'), "{}", applied[0].applied_at);
        // Adding a step later applies just that one.
        let mut more = steps();
        more.push(Migration::new(4, "more", "CREATE TABLE more(x);"));
        let r = Migrator::new(more).run(&db).await.unwrap();
        assert_eq!((r.applied, r.version), (vec![4], 4));
        assert!(crud::table_exists(&db, "more").await.unwrap());
    });
}

#[test]
fn an_edited_applied_step_is_refused() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        Migrator::new(steps()[..2].to_vec()).run(&db).await.unwrap();
        let mut edited = steps();
        edited[1] = Migration::new(2, "emails", "ALTER TABLE users ADD COLUMN mail TEXT;");
        let e = Migrator::new(edited).run(&db).await.unwrap_err();
        assert!(matches!(e, Error::Migration { version: 2, .. }), "{e}");
        assert!(e.to_string().contains("edited"), "{e}");
        // Nothing of the later step ran.
        assert!(!crud::table_exists(&db, "tags").await.unwrap());
        assert_eq!(version(&db).await, 2);
    });
}

#[test]
fn gaps_and_downgrades_are_refused() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        Migrator::new([steps()[0].clone(), steps()[2].clone()])
            .run(&db)
            .await
            .unwrap();
        let e = Migrator::new(steps()).run(&db).await.unwrap_err();
        assert!(matches!(e, Error::Migration { version: 2, .. }), "{e}");
        assert!(e.to_string().contains("gap"), "{e}");
        let e = Migrator::new(steps()[..1].to_vec()).run(&db).await.unwrap_err();
        assert!(e.to_string().contains("downgrade"), "{e}");
        // Bad step lists.
        let e = Migrator::new([Migration::new(2, "b", ""), Migration::new(1, "a", "")])
            .run(&db)
            .await;
        assert!(matches!(e, Err(Error::Migration { .. })));
        // A database with a user_version but no history is not ours to migrate.
        let other = connect(":memory:").await.unwrap();
        other.execute("PRAGMA user_version = 9", ()).await.unwrap();
        assert!(matches!(
            Migrator::new(steps()).run(&other).await,
            Err(Error::Migration { .. })
        ));
    });
}

#[test]
fn a_failed_step_is_rolled_back() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let mut bad = steps();
        bad[1] = Migration::new(2, "half", "CREATE TABLE half(x); INSERT INTO nowhere VALUES (1);");
        let e = Migrator::new(bad).run(&db).await.unwrap_err();
        assert!(matches!(e, Error::Migration { version: 2, .. }), "{e}");
        assert!(e.to_string().contains("no such table"), "{e}");
        assert!(!crud::table_exists(&db, "half").await.unwrap());
        assert!(!crud::table_exists(&db, "tags").await.unwrap());
        assert_eq!(version(&db).await, 1);
        assert!(!db.in_transaction());
        // Fixed, it goes through.
        assert_eq!(Migrator::new(steps()).run(&db).await.unwrap().applied, vec![2, 3]);
    });
}

#[test]
fn concurrent_migrators_apply_each_step_once() {
    let (_dir, path) = common::temp_db();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let many: Vec<Migration> = (1..=20)
            .map(|v| {
                Migration::new(
                    v,
                    format!("t{v}"),
                    format!("CREATE TABLE t{v}(x); INSERT INTO t{v} VALUES ({v});"),
                )
            })
            .collect();
        let m = Migrator::new(many);
        let a = ConnectOptions::new(&path).recommended_pragmas().open().await.unwrap();
        let b = ConnectOptions::new(&path)
            .busy_timeout(Duration::from_secs(10))
            .open()
            .await
            .unwrap();
        let pool = Pool::open(ConnectOptions::new(&path), PoolOptions::default().readers(1))
            .await
            .unwrap();
        let (ra, rb, rp) = tokio::join!(m.run(&a), m.run(&b), m.run(&pool));
        let (ra, rb, rp) = (ra.unwrap(), rb.unwrap(), rp.unwrap());
        let mut all: Vec<i64> = ra
            .applied
            .iter()
            .chain(&rb.applied)
            .chain(&rp.applied)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=20).collect::<Vec<_>>());
        let recorded: Option<i64> = a
            .fetch_scalar("SELECT count(*) FROM _aiolite_migrations", ())
            .await
            .unwrap();
        assert_eq!(recorded, Some(20));
        for v in 1..=20 {
            let n: Option<i64> = a.fetch_scalar(&format!("SELECT count(*) FROM t{v}"), ()).await.unwrap();
            assert_eq!(n, Some(1), "t{v}");
        }
        assert_eq!(version(&a).await, 20);
        pool.close().await.unwrap();
    });
}

#[test]
fn embedded_and_folder_migrations_match() {
    let embedded = aiolite::embed_migrations!("tests/migrations");
    let dir = Migrator::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/migrations")).unwrap();
    assert_eq!(embedded.steps(), dir.steps());
    assert_eq!(
        embedded
            .steps()
            .iter()
            .map(|s| (s.version(), s.name()))
            .collect::<Vec<_>>(),
        vec![(1, "users"), (2, "scores"), (3, "tags")]
    );
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let r = aiolite::embed_migrations!("tests/migrations").run(&db).await.unwrap();
        assert_eq!(r.applied, vec![1, 2, 3]);
        let cols = crud::table_info(&db, "users").await.unwrap();
        assert_eq!(cols.last().unwrap().name, "score");
    });
    assert!(Migrator::from_dir("/no/such/dir").is_err());
}

#[test]
fn migrations_inside_a_transaction_use_savepoints() {
    common::on_all_runtimes(|| async {
        let db = connect(":memory:").await.unwrap();
        let tx = db.transaction().await.unwrap();
        Migrator::new(steps()).run(&tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert!(!crud::table_exists(&db, "users").await.unwrap());
        assert_eq!(version(&db).await, 0);
    });
}
