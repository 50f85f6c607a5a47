//! users_api: the seed's users/tags schema as a JSON REST API on an embedded SQLite file.
//!
//! ```sh
//! cargo run --release --example users_api --features axum -- --db ./data/app.db --addr 127.0.0.1:3000
//! ```
//!
//! Endpoints: `POST /users`, `GET /users/{id}`, `GET /users?min_score=&limit=&offset=`,
//! `PUT /users` (upsert by email), `PATCH /users/{id}`, `DELETE /users/{id}`,
//! `POST /users/{id}/tags`, `GET /users/{id}/tags`. Migrations run at start; Ctrl-C or
//! SIGTERM shuts down gracefully and closes the pool.

mod app;

use std::net::SocketAddr;
use std::path::PathBuf;

use aiolite::{ConnectOptions, Pool, PoolOptions};

struct Args {
    db: PathBuf,
    addr: SocketAddr,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        db: PathBuf::from("data/app.db"),
        addr: "127.0.0.1:3000".parse().expect("default address"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--db" => out.db = it.next().ok_or("--db takes a path")?.into(),
            "--addr" => {
                out.addr = it
                    .next()
                    .ok_or("--addr takes HOST:PORT")?
                    .parse()
                    .map_err(|e| format!("--addr: {e}"))?;
            }
            "-h" | "--help" => {
                println!("usage: users_api [--db PATH] [--addr HOST:PORT]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(out)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Pool readers on several runtime threads meet on SQLite's per-file mutex; let it spin
    // before sleeping. SAFETY: nothing has used SQLite yet in this process.
    unsafe { aiolite::install_spinning_mutexes()? };
    tracing_subscriber::fmt().with_target(false).init();
    let args = args()?;
    if let Some(dir) = args.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let pool = Pool::open(
        ConnectOptions::new(&args.db).recommended_pragmas(),
        PoolOptions::default(),
    )
    .await?;
    let report = aiolite::embed_migrations!("examples/migrations").run(&pool).await?;
    tracing::info!(
        db = %args.db.display(),
        applied = ?report.applied,
        version = report.version,
        readers = pool.stats().readers,
        "database ready"
    );
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app::router(pool.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    pool.close().await?;
    tracing::info!("pool closed, bye");
    Ok(())
}
