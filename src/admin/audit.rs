//! `/v1/audit` handlers (SPEC §5): the audit log newest first, with filters and a cursor, and a
//! verification of the whole hash chain. A tenant-restricted token sees only its tenant's entries.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Actor;
use super::error::{AdminError, QueryParams};
use super::validate::Fields;
use super::views::{AuditPage, ProblemView};
use crate::audit::{self, Verdict};
use crate::config::Scope;
use crate::state::State;

type Shared = AxumState<Arc<State>>;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries about this key id.
    key: Option<String>,
    tenant: Option<String>,
    /// e.g. `key.rotate`.
    action: Option<String>,
    /// 1-500, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit", operation_id = "list_audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of entries, newest first", body = AuditPage),
              (status = "4XX", description = "400, 401, 403, 422", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn list(
    AxumState(state): Shared,
    actor: Actor,
    query: QueryParams<AuditQuery>,
) -> Result<Json<AuditPage>, AdminError> {
    actor.require(Scope::AuditRead)?;
    let q = query.parse()?;
    let mut fields = Fields::default();
    let limit = fields.page_limit(q.limit.as_deref());
    let before = fields.cursor(q.cursor.as_deref());
    fields.finish()?;
    let mut items = Vec::with_capacity(limit + 1);
    for item in state.registry.store().audit_newest_first(before) {
        let (_, entry) = item.map_err(|e| AdminError::Internal(e.to_string()))?;
        let visible = actor.tenant.is_none() || entry.tenant == actor.tenant;
        let wanted = q.key.as_ref().is_none_or(|k| entry.target == *k && entry.action.starts_with("key."))
            && q.tenant.as_ref().is_none_or(|t| entry.tenant.as_ref() == Some(t))
            && q.action.as_ref().is_none_or(|a| entry.action == *a);
        if visible && wanted {
            items.push(entry);
            if items.len() > limit {
                break;
            }
        }
    }
    let next_cursor = (items.len() > limit).then(|| items[limit - 1].id.clone());
    items.truncate(limit);
    Ok(Json(AuditPage { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/audit/verify", operation_id = "verify_audit", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "The verdict on the whole hash chain", body = Verdict),
              (status = "4XX", description = "401, 403", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn verify(AxumState(state): Shared, actor: Actor) -> Result<Json<Verdict>, AdminError> {
    actor.require(Scope::AuditRead)?;
    let log: Result<Vec<_>, _> = state.registry.store().audit_in_order().collect();
    let log = log.map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok(Json(audit::verify(log)))
}
