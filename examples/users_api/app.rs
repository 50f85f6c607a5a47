//! The users/tags JSON API: router, handlers and models. `main.rs` serves it; the integration
//! test (`tests/users_api.rs`) includes this file and drives it over loopback HTTP.

use std::time::Instant;

use aiolite::axum::Tx;
use aiolite::{Error, Pool, crud};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// A user as the API returns it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub score: f64,
    pub created_at: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTag {
    pub tag: String,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub min_score: Option<f64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A handler error: an aiolite error (mapped by aiolite's `IntoResponse`) or a 400/404 of ours.
pub enum ApiError {
    Db(Error),
    BadRequest(String),
    NotFound(String),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Db(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Db(e) => e.into_response(),
            ApiError::BadRequest(m) => {
                (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": m }))).into_response()
            }
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": m }))).into_response(),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A `{id}` path segment; a malformed one is a JSON 400 like every other error.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<i64>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Id(id))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// The list query; a malformed one is a JSON 400.
pub struct ListParams(pub ListQuery);

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<ListQuery>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ListParams(q))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Parse a JSON body: any malformed or mistyped body is a 400 with serde's message.
fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
}

fn check_user_fields(name: Option<&str>, email: Option<&str>) -> ApiResult<()> {
    if name.is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::BadRequest("name must not be empty".into()));
    }
    if email.is_some_and(|e| !e.contains('@') || e.trim() != e) {
        return Err(ApiError::BadRequest("email must look like an email address".into()));
    }
    Ok(())
}

const USER_COLUMNS: &str = "id, name, email, score, created_at";

async fn load_user(db: &impl aiolite::Executor, id: i64) -> ApiResult<User> {
    db.fetch_one_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"), [id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
}

// A single INSERT is atomic by itself: no transaction needed, and the read-back goes to a
// reader while the writer serves the next request.
async fn create_user(State(pool): State<Pool>, body: Bytes) -> ApiResult<(StatusCode, Json<User>)> {
    let new: NewUser = parse(&body)?;
    check_user_fields(Some(&new.name), Some(&new.email))?;
    let id = crud::insert(&pool, "users", &new).await?;
    Ok((StatusCode::CREATED, Json(load_user(&pool, id).await?)))
}

async fn upsert_user(State(pool): State<Pool>, body: Bytes) -> ApiResult<Json<User>> {
    let new: NewUser = parse(&body)?;
    check_user_fields(Some(&new.name), Some(&new.email))?;
    let id = crud::upsert(&pool, "users", &new, &["email"]).await?;
    Ok(Json(load_user(&pool, id).await?))
}

async fn get_user(State(pool): State<Pool>, Id(id): Id) -> ApiResult<Json<User>> {
    Ok(Json(load_user(&pool, id).await?))
}

async fn list_users(State(pool): State<Pool>, ListParams(q): ListParams) -> ApiResult<Json<Vec<User>>> {
    let limit = q.limit.unwrap_or(100);
    let offset = q.offset.unwrap_or(0);
    if !(0..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::BadRequest("limit must be 0..=1000 and offset >= 0".into()));
    }
    let users = pool
        .fetch_all_as(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE score >= ? ORDER BY id LIMIT ? OFFSET ?"),
            aiolite::params![q.min_score.unwrap_or(f64::MIN), limit, offset],
        )
        .await?;
    Ok(Json(users))
}

async fn patch_user(tx: Tx, Id(id): Id, body: Bytes) -> ApiResult<Json<User>> {
    let patch: UserPatch = parse(&body)?;
    check_user_fields(patch.name.as_deref(), patch.email.as_deref())?;
    load_user(&*tx, id).await?;
    if patch.name.is_some() || patch.email.is_some() || patch.score.is_some() {
        crud::update(&*tx, "users", &patch, "id = ?", [id]).await?;
    }
    let user = load_user(&*tx, id).await?;
    tx.commit().await?;
    Ok(Json(user))
}

async fn delete_user(State(pool): State<Pool>, Id(id): Id) -> ApiResult<StatusCode> {
    match crud::delete(&pool, "users", "id = ?", [id]).await? {
        0 => Err(ApiError::NotFound(format!("no user {id}"))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

async fn add_tag(tx: Tx, Id(id): Id, body: Bytes) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let new: NewTag = parse(&body)?;
    if new.tag.trim().is_empty() {
        return Err(ApiError::BadRequest("tag must not be empty".into()));
    }
    load_user(&*tx, id).await?;
    crud::insert(&*tx, "tags", &serde_json::json!({"user_id": id, "tag": new.tag})).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"user_id": id, "tag": new.tag})),
    ))
}

async fn list_tags(State(pool): State<Pool>, Id(id): Id) -> ApiResult<Json<Vec<String>>> {
    load_user(&pool, id).await?;
    let tags: Vec<(String,)> = pool
        .fetch_all_as("SELECT tag FROM tags WHERE user_id = ? ORDER BY tag", [id])
        .await?;
    Ok(Json(tags.into_iter().map(|(t,)| t).collect()))
}

/// Log each request: method, path, status, latency.
async fn log_requests(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let start = Instant::now();
    let res = next.run(req).await;
    tracing::info!(%method, %path, status = res.status().as_u16(), micros = start.elapsed().as_micros() as u64, "request");
    res
}

/// The application.
pub fn router(pool: Pool) -> Router {
    Router::new()
        .route("/users", get(list_users).post(create_user).put(upsert_user))
        .route("/users/{id}", get(get_user).patch(patch_user).delete(delete_user))
        .route("/users/{id}/tags", get(list_tags).post(add_tag))
        .layer(middleware::from_fn(log_requests))
        .with_state(pool)
}
