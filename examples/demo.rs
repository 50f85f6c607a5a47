//! The seed's flow, end to end, on an embedded database file:
//! schema → insert → fetch all / one → scalar → upsert → batch insert → update → delete.
//!
//! Run with `cargo run --example demo` (optionally `-- PATH`, default `./data/demo.db`,
//! recreated on every run).

use std::path::PathBuf;

use aiolite::{ConnectOptions, named_params, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL UNIQUE,
    score      REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS tags (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (user_id, tag)
);
CREATE INDEX IF NOT EXISTS idx_users_score ON users(score);
";

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)] // fields are printed through Debug
struct User {
    id: i64,
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

    section("schema");
    db.with_transaction(|tx| async move { tx.execute_script(SCHEMA).await })
        .await?;
    let tables = db
        .fetch_all(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            (),
        )
        .await?;
    let names: Vec<String> = tables.iter().map(|r| r.get("name")).collect::<Result<_, _>>()?;
    println!("tables: {names:?}");

    section("insert");
    let ann = db
        .execute_insert(
            "INSERT INTO users(name, email, score) VALUES (?, ?, ?)",
            params!["Ann", "ann@example.com", 91.5],
        )
        .await?
        .expect("a row was inserted");
    let bob = db
        .execute_insert(
            "INSERT INTO users(name, email, score) VALUES (:name, :email, :score)",
            named_params! {":name": "Bob", ":email": "bob@example.com", ":score": 78.0},
        )
        .await?
        .expect("a row was inserted");
    println!("inserted Ann (id {ann}) and Bob (id {bob})");
    let dup = db
        .execute(
            "INSERT INTO users(name, email) VALUES (?, ?)",
            params!["Ann again", "ann@example.com"],
        )
        .await
        .unwrap_err();
    println!(
        "duplicate email refused: {dup} (unique violation: {})",
        dup.is_unique_violation()
    );

    section("fetch all");
    for row in db
        .fetch_all("SELECT id, name, email, score FROM users ORDER BY id", ())
        .await?
    {
        println!("{}", serde_json_like(&row));
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
    let upsert = "INSERT INTO users(name, email, score) VALUES (?, ?, ?)
                  ON CONFLICT(email) DO UPDATE SET name = excluded.name, score = excluded.score
                  RETURNING id";
    let id: Option<i64> = db
        .fetch_scalar(upsert, params!["Ann B.", "ann@example.com", 95.0])
        .await?;
    println!(
        "upserted ann@example.com -> id {} (same row as before: {})",
        id.unwrap_or(-1),
        id == Some(ann)
    );
    let id: Option<i64> = db.fetch_scalar(upsert, params!["Cy", "cy@example.com", 60.0]).await?;
    println!("upserted cy@example.com -> new id {}", id.unwrap_or(-1));

    section("batch insert");
    let batch: Vec<_> = (1..=1000)
        .map(|i| params![format!("user{i}"), format!("user{i}@example.com"), f64::from(i % 100)])
        .collect();
    let inserted = db
        .with_transaction(|tx| async move {
            tx.execute_many("INSERT INTO users(name, email, score) VALUES (?, ?, ?)", batch)
                .await
        })
        .await?;
    println!("inserted {inserted} users in one transaction");
    let tags: Vec<_> = [(ann, "admin"), (ann, "early"), (bob, "early")]
        .iter()
        .map(|(u, t)| params![*u, *t])
        .collect();
    db.execute_many("INSERT INTO tags(user_id, tag) VALUES (?, ?)", tags)
        .await?;

    section("update");
    let r = db
        .execute("UPDATE users SET score = score + 1 WHERE score >= ?", [90.0])
        .await?;
    println!("bumped {} high scorers", r.changes);

    section("delete");
    let r = db
        .execute("DELETE FROM users WHERE email LIKE ?", ["user%@example.com"])
        .await?;
    println!("deleted {} batch users", r.changes);
    let r = db.execute("DELETE FROM users WHERE id = ?", [bob]).await?;
    let tags_left: Option<i64> = db.fetch_scalar("SELECT count(*) FROM tags", ()).await?;
    println!(
        "deleted Bob ({} row); tags left after cascade: {}",
        r.changes,
        tags_left.unwrap_or(0)
    );

    section("stream");
    let mut cursor = db
        .query("SELECT id, name, score FROM users ORDER BY score DESC", ())
        .await?;
    while let Some(row) = cursor.fetch_one().await? {
        println!("{}", serde_json_like(&row));
    }

    section("close");
    println!("total changes this session: {}", db.total_changes());
    db.close().await?;
    println!("closed");
    Ok(())
}

/// A row as `{"col": value, ...}` (Row is serde::Serialize; this avoids a JSON dependency).
fn serde_json_like(row: &aiolite::Row) -> String {
    let fields: Vec<String> = row.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
    format!("{{{}}}", fields.join(", "))
}
