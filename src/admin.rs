//! The admin API (SPEC §5) on its own listener, served by axum. The route table below is the whole
//! API; handlers live in `admin/keys.rs` and `admin/tenants.rs`.
//!
//! | method, path                      | scope            |
//! |-----------------------------------|------------------|
//! | `GET /healthz`                    | none             |
//! | `GET /readyz`                     | none             |
//! | `POST /v1/keys`                   | keys:create      |
//! | `GET /v1/keys/{id}`               | keys:read        |
//! | `POST /v1/keys/{id}/revoke`       | keys:update      |
//! | `POST /v1/keys/{id}/disable`      | keys:update      |
//! | `POST /v1/keys/{id}/enable`       | keys:update      |
//! | `POST /v1/tenants`                | tenants:manage   |
//! | `GET /v1/tenants`                 | tenants:manage or keys:read |
//! | `GET /v1/tenants/{id}`            | tenants:manage or keys:read |
//! | `GET /v1/groups`                  | keys:read        |
//!
//! Every answer carries `X-Request-Id`; errors are problem+json (`admin/error.rs`). The admin API
//! writes only through the registry and never blocks the proxy.

pub mod auth;
pub mod error;
pub mod keys;
pub mod tenants;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State as AxumState};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use self::auth::Actor;
use self::error::{AdminError, REQUEST_ID};
use crate::config::Scope;
use crate::problem;
use crate::state::State;

/// The admin router with every route of the table above.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/keys", post(keys::create))
        .route("/v1/keys/{id}", get(keys::get))
        .route("/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/v1/keys/{id}/disable", post(keys::disable))
        .route("/v1/keys/{id}/enable", post(keys::enable))
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route("/v1/tenants/{id}", get(tenants::get))
        .route("/v1/groups", get(groups))
        .fallback(|| async { AdminError::NotFound })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Gives every admin request an id (the client's when sane), visible to error bodies and echoed
/// in `X-Request-Id`.
async fn request_id(request: Request, next: Next) -> Response {
    let id = match request
        .headers()
        .get("x-request-id")
        .and_then(|v| problem::sane_request_id(v.as_bytes()))
    {
        Some(id) => id.to_owned(),
        None => problem::new_request_id(),
    };
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 when the store is open (it is, or the process would not run) and every listener is bound.
async fn readyz(AxumState(state): AxumState<Arc<State>>) -> Response {
    if state.proxy_ready.load(Ordering::Acquire) {
        Json(Health { status: "ready" }).into_response()
    } else {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "starting" }),
        )
            .into_response()
    }
}

#[derive(Serialize)]
struct GroupView {
    name: String,
    permissions: Vec<String>,
}

#[derive(Serialize)]
struct GroupList {
    items: Vec<GroupView>,
}

async fn groups(
    AxumState(state): AxumState<Arc<State>>,
    actor: Actor,
) -> Result<Json<GroupList>, AdminError> {
    actor.require(Scope::KeysRead)?;
    let settings = state.settings();
    let items = settings
        .config
        .groups
        .iter()
        .map(|(name, permissions)| GroupView {
            name: name.clone(),
            permissions: permissions.clone(),
        })
        .collect();
    Ok(Json(GroupList { items }))
}
