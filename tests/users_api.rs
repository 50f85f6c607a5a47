//! The users_api example, served on a loopback port and driven with a real HTTP client.

#[path = "../examples/users_api/app.rs"]
#[allow(dead_code, unreachable_pub)]
mod app;
mod common;

use std::net::SocketAddr;

use aiolite::{ConnectOptions, Pool, PoolOptions};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pool: Pool,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let (dir, path) = common::temp_db();
        let pool = Pool::open(ConnectOptions::new(&path).recommended_pragmas(), PoolOptions::default())
            .await
            .unwrap();
        aiolite::embed_migrations!("examples/migrations")
            .run(&pool)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = app::router(pool.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Server {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(tx),
            task: Some(task),
            pool,
            _dir: dir,
        }
    }

    /// Send a request; returns the status and the JSON body (`Null` when empty).
    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .unwrap();
        let res = self.client.request(request).await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {path}: non-JSON body {bytes:?}: {e}"))
        };
        (status, value)
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        self.pool.close().await.unwrap();
        assert!(self.pool.is_closed());
    }
}

fn no_internals(v: &Value) {
    let text = v.to_string().to_ascii_uppercase();
    for word in [
        "SELECT ",
        "INSERT ",
        "UPDATE ",
        "DELETE ",
        "SQLITE_",
        "USERS.EMAIL",
        "PANICK",
    ] {
        assert!(!text.contains(word), "error body leaks {word:?}: {v}");
    }
    assert!(
        v.get("error").and_then(Value::as_str).is_some(),
        "no error message: {v}"
    );
}

#[test]
fn every_endpoint_and_status() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Server::start().await;

        // POST /users
        let (st, ann) = s
            .call(
                "POST",
                "/users",
                Some(r#"{"name":"Ann","email":"ann@x.io","score":9.5}"#),
            )
            .await;
        assert_eq!(st, 201, "{ann}");
        let ann_id = ann["id"].as_i64().unwrap();
        assert_eq!((ann["name"].as_str(), ann["score"].as_f64()), (Some("Ann"), Some(9.5)));
        assert!(ann["created_at"].as_str().unwrap().ends_with('Z'));
        let (st, bob) = s
            .call("POST", "/users", Some(r#"{"name":"Bob","email":"bob@x.io"}"#))
            .await;
        assert_eq!((st, bob["score"].as_f64()), (201, Some(0.0)));
        let bob_id = bob["id"].as_i64().unwrap();
        let (st, e) = s
            .call("POST", "/users", Some(r#"{"name":"Ann2","email":"ann@x.io"}"#))
            .await;
        assert_eq!(st, 409, "{e}");
        no_internals(&e);
        for bad in [
            r#"{"name":"x","email":"#,
            "not json",
            "",
            r#"{"name":"x"}"#,
            r#"{"name":"x","email":"y@z","extra":1}"#,
            r#"{"name":"","email":"y@z"}"#,
            r#"{"name":"x","email":"no-at-sign"}"#,
            r#"{"name":1,"email":"y@z"}"#,
        ] {
            let (st, e) = s.call("POST", "/users", Some(bad)).await;
            assert_eq!(st, 400, "{bad}: {e}");
            no_internals(&e);
        }

        // GET /users/{id}
        let (st, got) = s.call("GET", &format!("/users/{ann_id}"), None).await;
        assert_eq!((st, got.clone()), (200, ann.clone()));
        let (st, e) = s.call("GET", "/users/99999", None).await;
        assert_eq!(st, 404, "{e}");
        no_internals(&e);
        let (st, _) = s.call("GET", "/users/not-a-number", None).await;
        assert_eq!(st, 400);

        // GET /users?min_score=&limit=&offset=
        let (st, list) = s.call("GET", "/users", None).await;
        assert_eq!((st, list.as_array().unwrap().len()), (200, 2));
        let (_, list) = s.call("GET", "/users?min_score=5", None).await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["id"].as_i64(), Some(ann_id));
        let (_, list) = s.call("GET", "/users?limit=1&offset=1", None).await;
        assert_eq!(list[0]["id"].as_i64(), Some(bob_id));
        let (st, _) = s.call("GET", "/users?limit=5000", None).await;
        assert_eq!(st, 400);

        // PUT /users (upsert by email)
        let (st, up) = s
            .call(
                "PUT",
                "/users",
                Some(r#"{"name":"Ann B","email":"ann@x.io","score":1}"#),
            )
            .await;
        assert_eq!(
            (st, up["id"].as_i64(), up["name"].as_str()),
            (200, Some(ann_id), Some("Ann B"))
        );
        let (st, cy) = s
            .call("PUT", "/users", Some(r#"{"name":"Cy","email":"cy@x.io"}"#))
            .await;
        assert_eq!(st, 200);
        assert_ne!(cy["id"].as_i64(), Some(ann_id));
        let (st, _) = s.call("PUT", "/users", Some(r#"{"name":"Cy"}"#)).await;
        assert_eq!(st, 400);

        // PATCH /users/{id}
        let (st, p) = s
            .call("PATCH", &format!("/users/{bob_id}"), Some(r#"{"score":7}"#))
            .await;
        assert_eq!(
            (st, p["score"].as_f64(), p["name"].as_str()),
            (200, Some(7.0), Some("Bob"))
        );
        let (st, p) = s.call("PATCH", &format!("/users/{bob_id}"), Some("{}")).await;
        assert_eq!((st, p["score"].as_f64()), (200, Some(7.0)));
        let (st, e) = s.call("PATCH", "/users/99999", Some(r#"{"score":1}"#)).await;
        assert_eq!(st, 404, "{e}");
        let (st, e) = s
            .call("PATCH", &format!("/users/{bob_id}"), Some(r#"{"email":"ann@x.io"}"#))
            .await;
        assert_eq!(st, 409, "{e}");
        no_internals(&e);
        let (st, _) = s
            .call("PATCH", &format!("/users/{bob_id}"), Some(r#"{"nope":1}"#))
            .await;
        assert_eq!(st, 400);

        // Tags
        let (st, t) = s
            .call("POST", &format!("/users/{ann_id}/tags"), Some(r#"{"tag":"admin"}"#))
            .await;
        assert_eq!((st, t["tag"].as_str()), (201, Some("admin")));
        s.call("POST", &format!("/users/{ann_id}/tags"), Some(r#"{"tag":"early"}"#))
            .await;
        let (st, e) = s
            .call("POST", &format!("/users/{ann_id}/tags"), Some(r#"{"tag":"admin"}"#))
            .await;
        assert_eq!(st, 409, "{e}");
        no_internals(&e);
        let (st, e) = s.call("POST", "/users/99999/tags", Some(r#"{"tag":"x"}"#)).await;
        assert_eq!(st, 404, "{e}");
        let (st, _) = s
            .call("POST", &format!("/users/{ann_id}/tags"), Some(r#"{"tag":""}"#))
            .await;
        assert_eq!(st, 400);
        let (st, tags) = s.call("GET", &format!("/users/{ann_id}/tags"), None).await;
        assert_eq!((st, tags), (200, json!(["admin", "early"])));
        let (st, _) = s.call("GET", "/users/99999/tags", None).await;
        assert_eq!(st, 404);

        // DELETE /users/{id} (cascades to tags)
        let (st, body) = s.call("DELETE", &format!("/users/{ann_id}"), None).await;
        assert_eq!((st, body), (204, Value::Null));
        let (st, _) = s.call("DELETE", &format!("/users/{ann_id}"), None).await;
        assert_eq!(st, 404);
        let n: Option<i64> = s.pool.fetch_scalar("SELECT count(*) FROM tags", ()).await.unwrap();
        assert_eq!(n, Some(0));

        s.shutdown().await;
    });
}

#[test]
fn concurrent_creates_lose_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = std::sync::Arc::new(Server::start().await);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = std::sync::Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                let body = format!(r#"{{"name":"user{i}","email":"user{i}@x.io","score":{i}}}"#);
                s.call("POST", "/users", Some(&body)).await
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            let (st, user) = t.await.unwrap();
            assert_eq!(st, 201, "{user}");
            ids.push(user["id"].as_i64().unwrap());
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        let (st, list) = s.call("GET", "/users?limit=1000", None).await;
        assert_eq!((st, list.as_array().unwrap().len()), (200, 200));
        let s = std::sync::Arc::into_inner(s).expect("all tasks done");
        s.shutdown().await;
    });
}

/// Compile-time check: helpers generic over `Executor` (including the generic `fetch_*_as` /
/// `fetch_scalar` methods and the CRUD helpers) can be used inside axum handlers, whose
/// futures must be `Send` for every lifetime.
#[allow(dead_code)]
mod generic_handlers {
    use aiolite::{Executor, Pool, Row, crud};
    use axum::extract::State;

    async fn row(db: &impl Executor, id: i64) -> aiolite::Result<Option<Row>> {
        db.fetch_one("SELECT ?", [id]).await
    }
    async fn typed(db: &impl Executor) -> aiolite::Result<Option<(i64, String)>> {
        db.fetch_one_as("SELECT 1, 'x'", ()).await
    }
    async fn scalar(db: &impl Executor) -> aiolite::Result<Option<i64>> {
        db.fetch_scalar(&format!("SELECT {}", 1), ()).await
    }
    async fn handler(State(pool): State<Pool>) -> Result<String, aiolite::Error> {
        let a = row(&pool, 1).await?;
        let b = typed(&pool).await?;
        let c = scalar(&pool).await?;
        let d = crud::insert(&pool, "t", &serde_json::json!({"a": 1})).await?;
        Ok(format!("{a:?} {b:?} {c:?} {d}"))
    }
    async fn tx_handler(tx: aiolite::axum::Tx) -> Result<String, aiolite::Error> {
        let b = typed(&*tx).await?;
        tx.commit().await?;
        Ok(format!("{b:?}"))
    }

    fn router() -> axum::Router<Pool> {
        axum::Router::new()
            .route("/a", axum::routing::get(handler))
            .route("/b", axum::routing::post(tx_handler))
    }
}
