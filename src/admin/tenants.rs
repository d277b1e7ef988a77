//! `/v1/tenants` handlers (SPEC §5): tenants are created with a client-chosen id and a key limit;
//! reads add `keys_used` (keys neither revoked nor expired). A tenant-restricted token sees only
//! its own tenant.

use std::sync::Arc;

use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Actor;
use super::error::{AdminError, JsonBody};
use super::keys::valid_name;
use crate::config::Scope;
use crate::record::{unix_now, valid_tenant_id, TenantDoc};
use crate::state::State;

type Shared = AxumState<Arc<State>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantBody {
    id: Option<String>,
    name: Option<String>,
    key_limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct TenantView {
    id: String,
    name: String,
    key_limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys_used: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct TenantList {
    items: Vec<TenantView>,
}

impl TenantView {
    fn new(doc: TenantDoc, keys_used: Option<usize>) -> Self {
        TenantView {
            id: doc.id,
            name: doc.name,
            key_limit: doc.key_limit,
            keys_used,
        }
    }
}

pub async fn create(
    AxumState(state): Shared,
    actor: Actor,
    JsonBody(body): JsonBody<CreateTenantBody>,
) -> Result<(StatusCode, Json<TenantView>), AdminError> {
    actor.require(Scope::TenantsManage)?;
    if actor.tenant.is_some() {
        return Err(AdminError::Forbidden(
            "a tenant-restricted token cannot create tenants".into(),
        ));
    }
    let mut fields = std::collections::BTreeMap::new();
    let id = body.id.unwrap_or_default();
    if !valid_tenant_id(&id) {
        fields.insert(
            "id".to_owned(),
            "required: 2-63 characters of [a-z0-9-], starting with a letter or digit".to_owned(),
        );
    }
    let name = body.name.unwrap_or_default();
    if !valid_name(&name) {
        fields.insert("name".to_owned(), "required: 2-200 characters".to_owned());
    }
    if body.key_limit == Some(0) {
        fields.insert("key_limit".to_owned(), "must be at least 1".to_owned());
    }
    if !fields.is_empty() {
        return Err(AdminError::Validation(fields));
    }
    let key_limit = body
        .key_limit
        .unwrap_or(state.settings().config.default_key_limit);
    let doc = state
        .registry
        .create_tenant(id, name, key_limit, unix_now())
        .await?;
    Ok((StatusCode::CREATED, Json(TenantView::new(doc, Some(0)))))
}

pub async fn get(
    AxumState(state): Shared,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, AdminError> {
    actor.require_any(&[Scope::TenantsManage, Scope::KeysRead])?;
    if !actor.sees(Some(&id)) {
        return Err(AdminError::NotFound);
    }
    let doc = state.registry.tenant(&id).ok_or(AdminError::NotFound)?;
    let used = state.registry.keys_used(&doc.id, unix_now());
    Ok(Json(TenantView::new(doc, Some(used))))
}

pub async fn list(AxumState(state): Shared, actor: Actor) -> Result<Json<TenantList>, AdminError> {
    actor.require_any(&[Scope::TenantsManage, Scope::KeysRead])?;
    let now = unix_now();
    let items = state
        .registry
        .tenants()
        .into_iter()
        .filter(|t| actor.sees(Some(&t.id)))
        .map(|t| {
            let used = state.registry.keys_used(&t.id, now);
            TenantView::new(t, Some(used))
        })
        .collect();
    Ok(Json(TenantList { items }))
}
