//! The admin API (SPEC §5) on its own listener, served by axum. The route table in [`api`] is the
//! whole API, and the OpenAPI document is generated from the same table and the handlers' types,
//! so the two cannot drift apart.
//!
//! | method, path                         | scope                        |
//! |--------------------------------------|------------------------------|
//! | `GET /healthz`, `GET /readyz`        | none                         |
//! | `GET /openapi.json`                  | none                         |
//! | `POST /v1/keys`                      | keys:create                  |
//! | `GET /v1/keys`, `GET /v1/keys/{id}`  | keys:read                    |
//! | `PATCH /v1/keys/{id}`                | keys:update                  |
//! | `POST /v1/keys/{id}/rotate`          | keys:update                  |
//! | `POST /v1/keys/{id}/revoke`          | keys:update                  |
//! | `POST /v1/keys/{id}/disable`         | keys:update                  |
//! | `POST /v1/keys/{id}/enable`          | keys:update                  |
//! | `DELETE /v1/keys/{id}`               | keys:delete                  |
//! | `POST /v1/tenants`                   | tenants:manage               |
//! | `GET /v1/tenants`, `GET /v1/tenants/{id}` | tenants:manage or keys:read |
//! | `PATCH /v1/tenants/{id}`             | tenants:manage               |
//! | `GET /v1/groups`                     | keys:read                    |
//! | `GET /v1/audit`, `GET /v1/audit/verify` | audit:read                |
//!
//! Every answer carries `X-Request-Id`; errors are problem+json (`admin/error.rs`). The admin API
//! writes only through the registry and never blocks the proxy.

pub mod audit;
pub mod auth;
pub mod error;
pub mod keys;
pub mod tenants;
pub mod validate;
pub mod views;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State as AxumState};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use utoipa::openapi::header::Header;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, ObjectBuilder, OpenApi, RefOr, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::auth::Actor;
use self::error::{AdminError, REQUEST_ID};
use self::views::{GroupList, GroupView, Health, ProblemView};
use crate::config::Scope;
use crate::problem;
use crate::state::State;

/// The admin router: every route of [`api`], the OpenAPI document among them.
pub fn router(state: Arc<State>) -> Router {
    let (router, document) = parts();
    let document = OpenApiJson(Arc::new(document.to_json().unwrap_or_default()));
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), count))
        .fallback(|| async { AdminError::NotFound })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .layer(axum::Extension(document))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// The OpenAPI document of the admin API.
pub fn openapi() -> OpenApi {
    parts().1
}

/// The router and its document, with what the middleware and the error type add described on every
/// answer (the handlers' annotations describe only what differs between them).
fn parts() -> (Router<Arc<State>>, OpenApi) {
    let (router, mut document) = api().split_for_parts();
    let schema = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[A-Za-z0-9._-]{1,128}$")).build();
    let mut request_id = Header::new(schema);
    request_id.description = Some("The request's id: the client's `X-Request-Id` when sane, else generated".into());
    let is_problem = |body: &RefOr<Content>| matches!(body, RefOr::T(Content { schema: Some(RefOr::Ref(r)), .. }) if r.ref_location.ends_with("/ProblemView"));
    for item in document.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else { continue };
                // Every answer carries `X-Request-Id` (the [`request_id`] middleware).
                response.headers.insert("X-Request-Id".into(), RefOr::T(request_id.clone()));
                // A `ProblemView` body is sent as problem+json (`AdminError`), not utoipa's default JSON.
                if let Some(body) = response.content.shift_remove("application/json") {
                    let content_type = if is_problem(&body) { problem::CONTENT_TYPE } else { "application/json" };
                    response.content.insert(content_type.into(), body);
                }
            }
        }
    }
    (router, document)
}

/// THE route table.
fn api() -> OpenApiRouter<Arc<State>> {
    let mut document = OpenApi::builder()
        .info(utoipa::openapi::InfoBuilder::new().title("keygate admin API").version(env!("CARGO_PKG_VERSION")).build())
        .build();
    let components = document.components.get_or_insert_with(Default::default);
    components
        .add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    OpenApiRouter::with_openapi(document)
        .routes(routes!(openapi_json))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::get, keys::patch, keys::delete))
        .routes(routes!(keys::rotate))
        .routes(routes!(keys::revoke))
        .routes(routes!(keys::disable))
        .routes(routes!(keys::enable))
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get, tenants::patch))
        .routes(routes!(groups))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
}

/// Gives every admin request an id (the client's when sane), visible to error bodies and echoed
/// in `X-Request-Id`.
async fn request_id(request: Request, next: Next) -> Response {
    let id = match request.headers().get("x-request-id").and_then(|v| problem::sane_request_id(v.as_bytes())) {
        Some(id) => id.to_owned(),
        None => problem::new_request_id(),
    };
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Counts every routed admin request by route template and status.
async fn count(AxumState(state): AxumState<Arc<State>>, request: Request, next: Next) -> Response {
    let operation = match request.extensions().get::<MatchedPath>() {
        Some(path) => format!("{} {}", request.method(), path.as_str()),
        None => "unmatched".to_owned(),
    };
    let response = next.run(request).await;
    state.metrics.observe_admin(&operation, response.status().as_u16());
    response
}

/// The rendered OpenAPI document, shared by the `/openapi.json` handler.
#[derive(Clone)]
struct OpenApiJson(Arc<String>);

#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "This OpenAPI 3 document, generated from the route table and the handlers' types",
        body = Object, content_type = "application/json")))]
async fn openapi_json(axum::Extension(OpenApiJson(document)): axum::Extension<OpenApiJson>) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], document.as_ref().clone()).into_response()
}

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 when the store is open (it is, or the process would not run) and every listener is bound.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Store open, listeners bound", body = Health), (status = 503, description = "Starting", body = Health)))]
async fn readyz(AxumState(state): AxumState<Arc<State>>) -> Response {
    if state.proxy_ready.load(Ordering::Acquire) {
        Json(Health { status: "ready" }).into_response()
    } else {
        (http::StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "starting" })).into_response()
    }
}

#[utoipa::path(get, path = "/v1/groups", operation_id = "list_groups", tag = "groups", security(("bearer" = [])),
    responses((status = 200, description = "The groups of the current config, sorted by name", body = GroupList),
              (status = "4XX", description = "401, 403", body = ProblemView)))]
async fn groups(AxumState(state): AxumState<Arc<State>>, actor: Actor) -> Result<Json<GroupList>, AdminError> {
    actor.require(Scope::KeysRead)?;
    let settings = state.settings();
    let items = settings
        .config
        .groups
        .iter()
        .map(|(name, permissions)| GroupView { name: name.clone(), permissions: permissions.clone() })
        .collect();
    Ok(Json(GroupList { items }))
}
