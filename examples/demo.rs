//! The seed's flow, end to end, on an embedded database file: migrations → insert → fetch
//! all / one → scalar → upsert → batch insert → update → delete → stream, through the
//! injection-safe CRUD helpers (`aiolite::crud`) and plain SQL side by side.
//!
//! Run with `cargo run --example demo` (optionally `-- PATH`, default `./data/demo.db`,
//! recreated on every run).

use std::path::PathBuf;

use aiolite::{ConnectOptions, crud};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // fields are printed through Debug
struct User {
    id: i64,
    name: String,
    email: String,
    score: f64,
}

#[derive(Serialize)]
struct NewUser {
    name: String,
    email: String,
    score: f64,
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), aiolite::Error> {
    let path = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("data/demo.db"), PathBuf::from);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).expect("create the database directory");
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    section("connect");
    let db = ConnectOptions::new(&path).recommended_pragmas().open().await?;
    let mode: Option<String> = db.fetch_scalar("PRAGMA journal_mode", ()).await?;
    println!("opened {} (journal_mode={})", path.display(), mode.unwrap_or_default());

    section("schema (migrations)");
    let report = aiolite::embed_migrations!("examples/migrations").run(&db).await?;
    println!(
        "applied migrations {:?}; schema version {}",
        report.applied, report.version
    );
    for table in ["users", "tags"] {
        let cols: Vec<String> = crud::table_info(&db, table)
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        println!("{table}: {cols:?}");
    }

    section("insert");
    let ann = crud::insert(
        &db,
        "users",
        &NewUser {
            name: "Ann".into(),
            email: "ann@example.com".into(),
            score: 91.5,
        },
    )
    .await?;
    let bob = crud::insert(
        &db,
        "users",
        &serde_json::json!({"name": "Bob", "email": "bob@example.com", "score": 78.0}),
    )
    .await?;
    println!("inserted Ann (id {ann}) and Bob (id {bob})");
    let dup = crud::insert(
        &db,
        "users",
        &serde_json::json!({"name": "Ann again", "email": "ann@example.com"}),
    )
    .await
    .unwrap_err();
    println!(
        "duplicate email refused: {dup} (unique violation: {})",
        dup.is_unique_violation()
    );
    let evil = crud::insert(&db, "users; DROP TABLE users", &serde_json::json!({"name": "x"}))
        .await
        .unwrap_err();
    println!("injection refused: {evil}");

    section("fetch all");
    for row in db
        .fetch_all("SELECT id, name, email, score FROM users ORDER BY id", ())
        .await?
    {
        println!("{}", serde_json::to_string(&row).expect("rows serialize"));
    }

    section("fetch one");
    let user: Option<User> = db
        .fetch_one_as(
            "SELECT id, name, email, score FROM users WHERE email = ?",
            ["bob@example.com"],
        )
        .await?;
    println!("{user:?}");

    section("scalar");
    let count: Option<i64> = db.fetch_scalar("SELECT count(*) FROM users", ()).await?;
    let avg: Option<f64> = db.fetch_scalar("SELECT avg(score) FROM users", ()).await?;
    println!(
        "users: {}, average score: {:.2}",
        count.unwrap_or(0),
        avg.unwrap_or(0.0)
    );

    section("upsert");
    let again = NewUser {
        name: "Ann B.".into(),
        email: "ann@example.com".into(),
        score: 95.0,
    };
    let id = crud::upsert(&db, "users", &again, &["email"]).await?;
    println!(
        "upserted ann@example.com -> id {id} (same row as before: {})",
        id == ann
    );
    let cy = NewUser {
        name: "Cy".into(),
        email: "cy@example.com".into(),
        score: 60.0,
    };
    println!(
        "upserted cy@example.com -> new id {}",
        crud::upsert(&db, "users", &cy, &["email"]).await?
    );

    section("batch insert");
    let batch: Vec<NewUser> = (1..=1000)
        .map(|i| NewUser {
            name: format!("user{i}"),
            email: format!("user{i}@example.com"),
            score: f64::from(i % 100),
        })
        .collect();
    let inserted = crud::insert_many(&db, "users", &batch).await?;
    println!("inserted {inserted} users in one transaction");
    let tags = [(ann, "admin"), (ann, "early"), (bob, "early")]
        .map(|(user_id, tag)| serde_json::json!({"user_id": user_id, "tag": tag}));
    crud::insert_many(&db, "tags", &tags).await?;

    section("update");
    let n = crud::update(&db, "users", &serde_json::json!({"score": 100.0}), "score >= ?", [99.0]).await?;
    println!("capped {n} top scorers at 100");

    section("delete");
    let n = crud::delete(&db, "users", "email LIKE ?", ["user%@example.com"]).await?;
    println!("deleted {n} batch users");
    let n = crud::delete(&db, "users", "id = ?", [bob]).await?;
    let tags_left: Option<i64> = db.fetch_scalar("SELECT count(*) FROM tags", ()).await?;
    println!(
        "deleted Bob ({n} row); tags left after cascade: {}",
        tags_left.unwrap_or(0)
    );

    section("stream");
    let mut cursor = db
        .query("SELECT id, name, score FROM users ORDER BY score DESC", ())
        .await?;
    while let Some(row) = cursor.fetch_one().await? {
        println!("{}", serde_json::to_string(&row).expect("rows serialize"));
    }

    section("close");
    println!("total changes this session: {}", db.total_changes());
    db.close().await?;
    println!("closed");
    Ok(())
}
