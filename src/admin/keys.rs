//! `/v1/keys` handlers (SPEC §5): create, list, get, edit, rotate, revoke, disable, enable, delete.
//!
//! Order of answers: 401/403 (who may do this; bodies are read but parsed only after) → 404 (a key
//! the token cannot see) → 400 (body shape) → 422 (field values, every bad field at once) → 409
//! (state, decided by the registry under its lock).
//! A tenant-restricted token sees only its tenant's keys: any other key answers 404.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

use super::auth::Actor;
use super::error::{AdminError, IdPath, JsonBody, QueryParams};
use super::validate::{Fields, Name};
use super::views::{KeyPage, KeyView, ProblemView};
use crate::config::{Config, Scope};
use crate::index::LiveKey;
use crate::key::KeyId;
use crate::record::{unix_now, Environment, ExpirationState, Kind, RateLimitWire, Role, Status};
use crate::registry::{KeyPatch, NewKey};
use crate::state::State;

type Shared = AxumState<Arc<State>>;

/// The longest rotation grace period.
const MAX_GRACE: Duration = Duration::from_secs(24 * 3600);

/// `POST /v1/keys`. Enum-valued fields arrive as strings so an unknown value is a 422 naming the
/// field, not a 400.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// 2-200 characters, not blank, no control characters; unique among the owner's non-revoked keys.
    #[schema(value_type = Name, required = true)]
    name: Option<String>,
    /// `tenant` (default) or `service`.
    #[schema(value_type = Option<Kind>)]
    kind: Option<String>,
    /// An existing tenant's id. Required for tenant keys (a tenant-restricted token's own tenant when
    /// absent), absent or null for service keys.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{1,62}$")]
    tenant: Option<String>,
    /// `production`, `staging` or `development` (default).
    #[schema(value_type = Option<Environment>)]
    environment: Option<String>,
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// `admin` (default) or `readonly`.
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
    /// A group of the config (`GET /v1/groups`).
    group: Option<String>,
    /// Permission names, 1-64 characters of `[A-Za-z0-9_.:-]` each.
    permissions: Option<Vec<String>>,
    /// IP addresses or CIDR ranges; empty: any address.
    ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<RateLimitWire>)]
    rate_limit: Option<serde_json::Value>,
    /// 1-200 visible ASCII characters.
    #[schema(pattern = "^[!-~]{1,200}$")]
    customer_id: Option<String>,
    /// RFC 3339, or `YYYY-MM-DD` (23:59:59Z that day); in the future.
    expires_at: Option<String>,
}

/// `PATCH /v1/keys/{id}`: only the editable fields; `null` clears a nullable one. `expires_at`,
/// `environment`, `kind`, `tenant` and read-only fields are refused with 422.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchKeyBody {
    /// Not null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Name, required = false)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    group: Option<Option<String>>,
    /// Not null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Vec<String>, required = false)]
    permissions: Option<Option<Vec<String>>>,
    /// Not null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Role, required = false)]
    role: Option<Option<String>>,
    /// Not null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Vec<String>, required = false)]
    ip_allowlist: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<RateLimitWire>)]
    rate_limit: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^[!-~]{1,200}$")]
    customer_id: Option<Option<String>>,
    // Known record fields that cannot be edited: accepted by the parser only to answer 422, not 400.
    #[schema(ignore)]
    expires_at: Option<serde::de::IgnoredAny>,
    #[schema(ignore)]
    environment: Option<serde::de::IgnoredAny>,
    #[schema(ignore)]
    kind: Option<serde::de::IgnoredAny>,
    #[schema(ignore)]
    tenant: Option<serde::de::IgnoredAny>,
    #[schema(ignore)]
    id: Option<serde::de::IgnoredAny>,
    #[schema(ignore)]
    status: Option<serde::de::IgnoredAny>,
    #[schema(ignore)]
    secret: Option<serde::de::IgnoredAny>,
}

/// `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// A new expiry (RFC 3339 or `YYYY-MM-DD`); absent: unchanged.
    expires_at: Option<String>,
    /// How long the previous key keeps working, `0s` (default) to `24h`.
    grace_period: Option<String>,
}

/// Filters of `GET /v1/keys`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Comma list of `active`, `inactive`, `revoked`, `expired`.
    #[param(pattern = r"^ *(active|inactive|revoked|expired) *(, *(active|inactive|revoked|expired) *)*$")]
    status: Option<String>,
    /// `valid`, `expiring_soon` or `expired`.
    #[param(value_type = Option<ExpirationState>)]
    expiration: Option<String>,
    /// Case-insensitive substring of the name or the description.
    q: Option<String>,
    tenant: Option<String>,
    /// `tenant` or `service`.
    #[param(value_type = Option<Kind>)]
    kind: Option<String>,
    #[param(value_type = Option<Environment>)]
    environment: Option<String>,
    /// A duration: keys never used, or last used before now minus it.
    unused_since: Option<String>,
    /// 1-500, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    cursor: Option<String>,
}

// === handlers ===

#[utoipa::path(post, path = "/v1/keys", operation_id = "create_key", tag = "keys", request_body = CreateKeyBody, security(("bearer" = [])),
    responses((status = 201, description = "Created; the answer holds `secret`", body = KeyView),
              (status = "4XX", description = "400, 401, 403, 409 (name_taken, key_limit_reached), 413, 422", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn create(
    AxumState(state): Shared,
    actor: Actor,
    body: JsonBody<CreateKeyBody>,
) -> Result<(StatusCode, Json<KeyView>), AdminError> {
    actor.require(Scope::KeysCreate)?;
    let body = body.parse()?;
    let settings = state.settings();
    let config = &settings.config;
    let now = unix_now();
    let new = validate_create(body, &actor, config, |t| state.registry.tenant(t).is_some(), now)?;
    let (key, secret) = state.registry.create(new, &config.key_prefix, &actor.origin(), now).await?;
    let mut view = KeyView::new(&key, config, now);
    view.secret = Some(secret.expose().to_owned());
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/v1/keys", operation_id = "list_keys", tag = "keys", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of matching keys, newest first", body = KeyPage),
              (status = "4XX", description = "400, 401, 403, 422", body = ProblemView)))]
pub async fn list(
    AxumState(state): Shared,
    actor: Actor,
    query: QueryParams<ListQuery>,
) -> Result<Json<KeyPage>, AdminError> {
    actor.require(Scope::KeysRead)?;
    let query = query.parse()?;
    let settings = state.settings();
    let config = &settings.config;
    let now = unix_now();
    let filter = Filter::parse(query, &actor, now)?;
    let mut matching: Vec<Arc<LiveKey>> = state
        .index()
        .all()
        .into_iter()
        .filter(|k| actor.sees(k.doc.tenant.as_deref()) && filter.matches(k, config, now))
        .collect();
    let total = matching.len();
    matching.sort_unstable_by_key(|k| std::cmp::Reverse(k.doc.seq));
    let page: Vec<&Arc<LiveKey>> =
        matching.iter().filter(|k| filter.before.is_none_or(|b| k.doc.seq < b)).take(filter.limit + 1).collect();
    let next_cursor = (page.len() > filter.limit).then(|| page[filter.limit - 1].doc.seq.to_string());
    let items = page.into_iter().take(filter.limit).map(|k| KeyView::new(k, config, now)).collect();
    Ok(Json(KeyPage { items, next_cursor, total }))
}

#[utoipa::path(get, path = "/v1/keys/{id}", operation_id = "get_key", tag = "keys", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The key", body = KeyView),
              (status = "4XX", description = "401, 403, 404", body = ProblemView)))]
pub async fn get(AxumState(state): Shared, actor: Actor, IdPath(id): IdPath) -> Result<Json<KeyView>, AdminError> {
    actor.require(Scope::KeysRead)?;
    let key = visible_key(&state, &actor, &id)?;
    Ok(Json(KeyView::new(&key, &state.settings().config, unix_now())))
}

#[utoipa::path(patch, path = "/v1/keys/{id}", operation_id = "patch_key", tag = "keys", params(("id" = String, Path)), request_body = PatchKeyBody, security(("bearer" = [])),
    responses((status = 200, description = "The edited key", body = KeyView),
              (status = "4XX", description = "400, 401, 403, 404, 409 name_taken, 413, 422", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn patch(
    AxumState(state): Shared,
    actor: Actor,
    IdPath(id): IdPath,
    body: JsonBody<PatchKeyBody>,
) -> Result<Json<KeyView>, AdminError> {
    actor.require(Scope::KeysUpdate)?;
    let key = visible_key(&state, &actor, &id)?;
    let body = body.parse()?;
    let settings = state.settings();
    let patch = validate_patch(body, &settings.config)?;
    let now = unix_now();
    let key = state.registry.update(key.doc.id, patch, &actor.origin(), now).await?;
    Ok(Json(KeyView::new(&key, &settings.config, now)))
}

#[utoipa::path(post, path = "/v1/keys/{id}/rotate", operation_id = "rotate_key", tag = "keys", params(("id" = String, Path)), request_body = RotateBody, security(("bearer" = [])),
    responses((status = 200, description = "Rotated; the answer holds the new `secret`", body = KeyView),
              (status = "4XX", description = "400, 401, 403, 404, 409 invalid_state, 413, 422", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn rotate(
    AxumState(state): Shared,
    actor: Actor,
    IdPath(id): IdPath,
    body: JsonBody<RotateBody>,
) -> Result<Json<KeyView>, AdminError> {
    actor.require(Scope::KeysUpdate)?;
    let key = visible_key(&state, &actor, &id)?;
    let body = body.parse_or_default()?;
    let now = unix_now();
    let mut fields = Fields::default();
    let expires_at = body.expires_at.and_then(|t| fields.expires_at(&t, now));
    let grace = match body.grace_period {
        None => Some(Duration::ZERO),
        Some(text) => fields.duration("grace_period", &text, Duration::ZERO, MAX_GRACE),
    };
    fields.finish()?;
    let grace_seconds = grace.map_or(0, |g| g.as_secs() as i64);
    let settings = state.settings();
    let config = &settings.config;
    let (key, secret) =
        state.registry.rotate(key.doc.id, expires_at, grace_seconds, &config.key_prefix, &actor.origin(), now).await?;
    let mut view = KeyView::new(&key, config, now);
    view.secret = Some(secret.expose().to_owned());
    Ok(Json(view))
}

#[utoipa::path(post, path = "/v1/keys/{id}/revoke", operation_id = "revoke_key", tag = "keys", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The key, now revoked", body = KeyView),
              (status = "4XX", description = "401, 403, 404, 409 already_revoked", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn revoke(AxumState(state): Shared, actor: Actor, IdPath(id): IdPath) -> Result<Json<KeyView>, AdminError> {
    actor.require(Scope::KeysUpdate)?;
    let key = visible_key(&state, &actor, &id)?;
    let now = unix_now();
    let key = state.registry.revoke(key.doc.id, &actor.origin(), now).await?;
    Ok(Json(KeyView::new(&key, &state.settings().config, now)))
}

#[utoipa::path(post, path = "/v1/keys/{id}/disable", operation_id = "disable_key", tag = "keys", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The key, now inactive (already inactive: unchanged)", body = KeyView),
              (status = "4XX", description = "401, 403, 404, 409 invalid_state", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn disable(state: Shared, actor: Actor, id: IdPath) -> Result<Json<KeyView>, AdminError> {
    set_disabled(state, actor, id, true).await
}

#[utoipa::path(post, path = "/v1/keys/{id}/enable", operation_id = "enable_key", tag = "keys", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The key, now active (already active: unchanged)", body = KeyView),
              (status = "4XX", description = "401, 403, 404, 409 invalid_state", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn enable(state: Shared, actor: Actor, id: IdPath) -> Result<Json<KeyView>, AdminError> {
    set_disabled(state, actor, id, false).await
}

#[utoipa::path(delete, path = "/v1/keys/{id}", operation_id = "delete_key", tag = "keys", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted; the audit log keeps its history"),
              (status = "4XX", description = "401, 403, 404", body = ProblemView),
              (status = 500, description = "internal_error: the store failed (details in the gateway log)", body = ProblemView)))]
pub async fn delete(AxumState(state): Shared, actor: Actor, IdPath(id): IdPath) -> Result<StatusCode, AdminError> {
    actor.require(Scope::KeysDelete)?;
    let key = visible_key(&state, &actor, &id)?;
    state.registry.delete(key.doc.id, &actor.origin(), unix_now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_disabled(
    AxumState(state): Shared,
    actor: Actor,
    IdPath(id): IdPath,
    disabled: bool,
) -> Result<Json<KeyView>, AdminError> {
    actor.require(Scope::KeysUpdate)?;
    let key = visible_key(&state, &actor, &id)?;
    let now = unix_now();
    let key = state.registry.set_disabled(key.doc.id, disabled, &actor.origin(), now).await?;
    Ok(Json(KeyView::new(&key, &state.settings().config, now)))
}

/// The key with this id if the actor may see it; 404 otherwise (never 403: no existence leak).
fn visible_key(state: &State, actor: &Actor, id: &str) -> Result<Arc<LiveKey>, AdminError> {
    let key = KeyId::parse(id).and_then(|id| state.registry.get(id)).ok_or(AdminError::NotFound)?;
    if actor.sees(key.doc.tenant.as_deref()) {
        Ok(key)
    } else {
        Err(AdminError::NotFound)
    }
}

// === validation ===

/// Checks every field of a create body; all problems are reported together.
fn validate_create(
    body: CreateKeyBody,
    actor: &Actor,
    config: &Config,
    tenant_exists: impl Fn(&str) -> bool,
    now: i64,
) -> Result<NewKey, AdminError> {
    let mut fields = Fields::default();
    let kind = body.kind.as_deref().map_or(Some(Kind::Tenant), |k| fields.kind(k));
    // Authorization first: a tenant-restricted token may only create keys of its own tenant.
    if let Some(own) = &actor.tenant {
        if kind == Some(Kind::Service) {
            return Err(AdminError::Forbidden("a tenant-restricted token cannot create service keys".into()));
        }
        if body.tenant.as_deref().is_some_and(|t| t != own) {
            return Err(AdminError::Forbidden(format!("this token may only create keys of tenant {own:?}")));
        }
    }
    let tenant = match (kind, body.tenant) {
        (Some(Kind::Tenant), None) => match &actor.tenant {
            Some(own) => Some(own.clone()),
            None => fields.bad("tenant", "required for tenant keys"),
        },
        (Some(Kind::Service), Some(_)) => fields.bad("tenant", "service keys belong to no tenant; leave tenant out"),
        (_, tenant) => tenant.and_then(|t| fields.tenant_id(t)),
    };
    let tenant = tenant.and_then(|t| {
        if tenant_exists(&t) {
            Some(t)
        } else {
            fields.bad("tenant", format!("unknown tenant {t:?}; create it first"))
        }
    });
    let name = match body.name {
        None => fields.bad("name", "required: 2-200 characters"),
        Some(name) => fields.name(name),
    };
    let new = NewKey {
        description: body.description.and_then(|d| fields.description(d)),
        environment: body
            .environment
            .as_deref()
            .map_or(Some(Environment::Development), |e| fields.environment(e))
            .unwrap_or(Environment::Development),
        role: body.role.as_deref().and_then(|r| fields.role(r)).unwrap_or_default(),
        group: body.group.and_then(|g| fields.group(g, config)),
        permissions: body.permissions.and_then(|p| fields.permissions(p)).unwrap_or_default(),
        ip_allowlist: body.ip_allowlist.and_then(|i| fields.ip_allowlist(i)).unwrap_or_default(),
        rate_limit: body.rate_limit.filter(|v| !v.is_null()).and_then(|v| fields.rate_limit(v)),
        customer_id: body.customer_id.and_then(|c| fields.customer_id(c)),
        expires_at: body.expires_at.and_then(|e| fields.expires_at(&e, now)),
        name: name.unwrap_or_default(),
        kind: kind.unwrap_or_default(),
        tenant,
    };
    fields.finish()?;
    Ok(new)
}

fn validate_patch(body: PatchKeyBody, config: &Config) -> Result<KeyPatch, AdminError> {
    let mut fields = Fields::default();
    if body.expires_at.is_some() {
        fields.bad::<()>("expires_at", "cannot be edited; rotate the key to change its expiry");
    }
    let fixed =
        [("environment", body.environment.is_some()), ("kind", body.kind.is_some()), ("tenant", body.tenant.is_some())];
    for (name, _) in fixed.iter().filter(|(_, given)| *given) {
        fields.bad::<()>(name, "is fixed at creation; create a new key instead");
    }
    let read_only = [("id", body.id.is_some()), ("status", body.status.is_some()), ("secret", body.secret.is_some())];
    for (name, _) in read_only.iter().filter(|(_, given)| *given) {
        fields.bad::<()>(name, "is read-only; use revoke, disable, enable or rotate");
    }
    let patch = KeyPatch {
        name: not_null(&mut fields, "name", body.name).and_then(|n| fields.name(n)),
        description: body.description.map(|d| d.and_then(|d| fields.description(d))),
        group: body.group.map(|g| g.and_then(|g| fields.group(g, config))),
        permissions: not_null(&mut fields, "permissions", body.permissions).and_then(|p| fields.permissions(p)),
        role: not_null(&mut fields, "role", body.role).and_then(|r| fields.role(&r)),
        ip_allowlist: not_null(&mut fields, "ip_allowlist", body.ip_allowlist).and_then(|i| fields.ip_allowlist(i)),
        rate_limit: body.rate_limit.map(|r| r.and_then(|v| fields.rate_limit(v))),
        customer_id: body.customer_id.map(|c| c.and_then(|c| fields.customer_id(c))),
    };
    fields.finish()?;
    Ok(patch)
}

/// A field that may be left out but not set to `null`.
fn not_null<T>(fields: &mut Fields, field: &str, value: Option<Option<T>>) -> Option<T> {
    match value {
        Some(None) => fields.bad(field, "cannot be null; send a value or leave the field out"),
        other => other.flatten(),
    }
}

/// `Some(None)` for an explicit `null`, `Some(Some(v))` for a value; absent fields stay `None`
/// through `#[serde(default)]`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The list filters, parsed.
struct Filter {
    statuses: Option<Vec<Status>>,
    expiration: Option<ExpirationState>,
    q: Option<String>,
    tenant: Option<String>,
    kind: Option<Kind>,
    environment: Option<Environment>,
    /// Unix seconds: keys used at or after this do not match.
    unused_since: Option<i64>,
    limit: usize,
    /// Only keys created before this sequence number (the cursor).
    before: Option<u64>,
}

impl Filter {
    fn parse(q: ListQuery, actor: &Actor, now: i64) -> Result<Self, AdminError> {
        let mut fields = Fields::default();
        let statuses = q.status.map(|list| {
            list.split(',')
                .filter_map(|s| match s.trim() {
                    "active" => Some(Status::Active),
                    "inactive" => Some(Status::Inactive),
                    "revoked" => Some(Status::Revoked),
                    "expired" => Some(Status::Expired),
                    other => {
                        fields.bad("status", format!("{other:?} is not a status (active, inactive, revoked, expired)"))
                    }
                })
                .collect()
        });
        let expiration = q.expiration.as_deref().and_then(|e| match e {
            "valid" => Some(ExpirationState::Valid),
            "expiring_soon" => Some(ExpirationState::ExpiringSoon),
            "expired" => Some(ExpirationState::Expired),
            other => fields.bad("expiration", format!("{other:?} is not valid, expiring_soon or expired")),
        });
        let kind = q.kind.as_deref().and_then(|k| fields.kind(k));
        let environment = q.environment.as_deref().and_then(|e| fields.environment(e));
        let unused_since = q.unused_since.as_deref().and_then(|d| {
            fields
                .duration("unused_since", d, Duration::ZERO, Duration::from_secs(100 * 365 * 86_400))
                .map(|d| now - d.as_secs() as i64)
        });
        let limit = fields.page_limit(q.limit.as_deref());
        let before = fields.cursor(q.cursor.as_deref());
        fields.finish()?;
        // A tenant-restricted token asking for another tenant gets nothing, not an error.
        let tenant = match (&actor.tenant, q.tenant) {
            (Some(own), Some(asked)) if *own != asked => Some(String::new()),
            (_, asked) => asked,
        };
        Ok(Filter {
            statuses,
            expiration,
            q: q.q.map(|s| s.to_lowercase()),
            tenant,
            kind,
            environment,
            unused_since,
            limit,
            before,
        })
    }

    fn matches(&self, key: &LiveKey, config: &Config, now: i64) -> bool {
        let doc = &key.doc;
        self.statuses.as_ref().is_none_or(|s| s.contains(&doc.status(now)))
            && self.expiration.is_none_or(|e| doc.expiration_state(now, config.expiring_soon_days) == e)
            && self.tenant.as_ref().is_none_or(|t| doc.tenant.as_ref() == Some(t))
            && self.kind.is_none_or(|k| doc.kind == k)
            && self.environment.is_none_or(|e| doc.environment == e)
            && self.unused_since.is_none_or(|since| key.state.usage.snapshot().last_used_at.is_none_or(|at| at < since))
            && self.q.as_ref().is_none_or(|q| {
                doc.name.to_lowercase().contains(q)
                    || doc.description.as_ref().is_some_and(|d| d.to_lowercase().contains(q))
            })
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ -~]{0,30}".prop_map(serde_json::Value::from),
            prop::sample::select(vec![
                "tenant",
                "service",
                "production",
                "readonly",
                "acme",
                "10.0.0.0/8",
                "2030-01-01",
                "1h"
            ])
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec(("[a-z_]{1,12}", inner), 0..4)
                    .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Objects with the create body's own field names and arbitrary values.
    fn create_body() -> impl Strategy<Value = serde_json::Value> {
        let field = prop::sample::select(vec![
            "name",
            "kind",
            "tenant",
            "environment",
            "description",
            "role",
            "group",
            "permissions",
            "ip_allowlist",
            "rate_limit",
            "customer_id",
            "expires_at",
        ]);
        prop::collection::vec((field, json()), 0..8)
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    }

    fn actor(tenant: Option<&str>) -> Actor {
        Actor { name: "p".into(), scopes: Scope::ALL.to_vec(), tenant: tenant.map(str::to_owned), client_ip: None }
    }

    proptest! {
        #[test]
        fn create_bodies_never_panic_and_every_refusal_names_a_field(body in create_body(), restricted in any::<bool>()) {
            let config = crate::config::parse("environments:\n  production: {upstreams: [\"127.0.0.1:1\"]}\ngroups: {billing: {permissions: [a]}}\n").unwrap();
            let Ok(body) = serde_json::from_value::<CreateKeyBody>(body) else { return Ok(()) };
            let actor = actor(restricted.then_some("acme"));
            match validate_create(body, &actor, &config, |t| t == "acme", 1_700_000_000) {
                Ok(new) => prop_assert!(super::super::validate::valid_name(&new.name)),
                Err(AdminError::Validation(fields)) => prop_assert!(!fields.is_empty()),
                Err(AdminError::Forbidden(_)) => prop_assert!(restricted),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn patch_and_rotate_bodies_never_panic(body in json()) {
            let config = crate::config::parse("environments:\n  production: {upstreams: [\"127.0.0.1:1\"]}\n").unwrap();
            if let Ok(patch) = serde_json::from_value::<PatchKeyBody>(body.clone()) {
                let _ = validate_patch(patch, &config);
            }
            if let Ok(rotate) = serde_json::from_value::<RotateBody>(body) {
                let mut fields = Fields::default();
                let _ = rotate.expires_at.and_then(|t| fields.expires_at(&t, 0));
                let _ = rotate.grace_period.and_then(|g| fields.duration("grace_period", &g, Duration::ZERO, MAX_GRACE));
            }
        }

        #[test]
        fn list_queries_never_panic(query in "[ -~]{0,80}") {
            if let Ok(q) = serde_urlencoded::from_str::<ListQuery>(&query) {
                let _ = Filter::parse(q, &actor(None), 1_700_000_000);
            }
        }
    }
}
