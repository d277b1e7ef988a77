//! `/v1/tenants` handlers (SPEC §5): tenants have a client-chosen id and a key limit; reads add
//! `keys_used` (keys neither revoked nor expired). A tenant-restricted token sees only its own
//! tenant and cannot create or change tenants.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Actor;
use super::error::{AdminError, IdPath, JsonBody};
use super::validate::{valid_name, Fields, Name};
use super::views::ProblemView;
use crate::config::Scope;
use crate::record::{unix_now, valid_tenant_id, TenantDoc};
use crate::state::State;

type Shared = AxumState<Arc<State>>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantBody {
    /// `[a-z0-9][a-z0-9-]{1,62}`, chosen by the client.
    #[schema(value_type = String, required = true, pattern = "^[a-z0-9][a-z0-9-]{1,62}$")]
    id: Option<String>,
    /// 2-200 characters, not blank, no control characters.
    #[schema(value_type = Name, required = true)]
    name: Option<String>,
    /// Default: `tenants.default_key_limit` of the config.
    #[schema(minimum = 1, maximum = 4294967295_u64, format = Int64)]
    key_limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenantBody {
    /// null or absent: unchanged.
    #[schema(value_type = Option<Name>)]
    name: Option<String>,
    /// null or absent: unchanged. May be below `keys_used`: existing keys keep working.
    #[schema(minimum = 1, maximum = 4294967295_u64, format = Int64)]
    key_limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    id: String,
    name: String,
    #[schema(maximum = 4294967295_u64, format = Int64)]
    key_limit: u32,
    /// Keys of the tenant that are neither revoked nor expired.
    keys_used: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    items: Vec<TenantView>,
}

impl TenantView {
    fn new(state: &State, doc: TenantDoc) -> Self {
        let keys_used = state.registry.keys_used(&doc.id, unix_now());
        TenantView { id: doc.id, name: doc.name, key_limit: doc.key_limit, keys_used }
    }
}

#[utoipa::path(post, path = "/v1/tenants", operation_id = "create_tenant", tag = "tenants", request_body = CreateTenantBody, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = TenantView),
              (status = "4XX", description = "400, 401, 403, 409 conflict, 413, 422", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn create(
    AxumState(state): Shared,
    actor: Actor,
    body: JsonBody<CreateTenantBody>,
) -> Result<(StatusCode, Json<TenantView>), AdminError> {
    require_unrestricted_manager(&actor)?;
    let body = body.parse()?;
    let mut fields = Fields::default();
    let id = match body.id {
        Some(id) if valid_tenant_id(&id) => Some(id),
        _ => fields.bad("id", "required: 2-63 characters of [a-z0-9-], starting with a letter or digit"),
    };
    let name = match body.name {
        Some(name) if valid_name(&name) => Some(name),
        _ => fields.bad("name", "required: 2-200 characters"),
    };
    if body.key_limit == Some(0) {
        fields.bad::<()>("key_limit", "must be at least 1");
    }
    fields.finish()?;
    let key_limit = body.key_limit.unwrap_or(state.settings().config.default_key_limit);
    let (id, name) = (id.unwrap_or_default(), name.unwrap_or_default());
    let doc = state.registry.create_tenant(id, name, key_limit, &actor.origin(), unix_now()).await?;
    Ok((StatusCode::CREATED, Json(TenantView::new(&state, doc))))
}

#[utoipa::path(get, path = "/v1/tenants", operation_id = "list_tenants", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, description = "Every tenant the token may see, sorted by id", body = TenantList),
              (status = "4XX", description = "401, 403", body = ProblemView)))]
pub async fn list(AxumState(state): Shared, actor: Actor) -> Result<Json<TenantList>, AdminError> {
    actor.require_any(&[Scope::TenantsManage, Scope::KeysRead])?;
    let items = state
        .registry
        .tenants()
        .into_iter()
        .filter(|t| actor.sees(Some(&t.id)))
        .map(|t| TenantView::new(&state, t))
        .collect();
    Ok(Json(TenantList { items }))
}

#[utoipa::path(get, path = "/v1/tenants/{id}", operation_id = "get_tenant", tag = "tenants", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The tenant", body = TenantView),
              (status = "4XX", description = "401, 403, 404", body = ProblemView)))]
pub async fn get(AxumState(state): Shared, actor: Actor, IdPath(id): IdPath) -> Result<Json<TenantView>, AdminError> {
    actor.require_any(&[Scope::TenantsManage, Scope::KeysRead])?;
    if !actor.sees(Some(&id)) {
        return Err(AdminError::NotFound);
    }
    let doc = state.registry.tenant(&id).ok_or(AdminError::NotFound)?;
    Ok(Json(TenantView::new(&state, doc)))
}

#[utoipa::path(patch, path = "/v1/tenants/{id}", operation_id = "patch_tenant", tag = "tenants", params(("id" = String, Path)), request_body = PatchTenantBody, security(("bearer" = [])),
    responses((status = 200, description = "The edited tenant", body = TenantView),
              (status = "4XX", description = "400, 401, 403, 404, 413, 422", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn patch(
    AxumState(state): Shared,
    actor: Actor,
    IdPath(id): IdPath,
    body: JsonBody<PatchTenantBody>,
) -> Result<Json<TenantView>, AdminError> {
    require_unrestricted_manager(&actor)?;
    // Tenants are never deleted, so a tenant found here is still there for the update.
    state.registry.tenant(&id).ok_or(AdminError::NotFound)?;
    let body = body.parse()?;
    let mut fields = Fields::default();
    let name =
        body.name.and_then(|n| if valid_name(&n) { Some(n) } else { fields.bad("name", "must be 2-200 characters") });
    let key_limit =
        body.key_limit.and_then(|l| if l >= 1 { Some(l) } else { fields.bad("key_limit", "must be at least 1") });
    fields.finish()?;
    let doc = state.registry.update_tenant(&id, name, key_limit, &actor.origin(), unix_now()).await?;
    Ok(Json(TenantView::new(&state, doc)))
}

/// Creating and changing tenants needs `tenants:manage` and a token not restricted to a tenant.
fn require_unrestricted_manager(actor: &Actor) -> Result<(), AdminError> {
    actor.require(Scope::TenantsManage)?;
    match actor.tenant {
        Some(_) => Err(AdminError::Forbidden("a tenant-restricted token cannot create or change tenants".into())),
        None => Ok(()),
    }
}
