//! `/v1/keys` handlers: request bodies, their validation (SPEC §2.2, §5), and the key record view.
//!
//! Order of answers for a mutation: 401/403 (who may do this) → 400 (body shape) → 422 (field
//! values, every bad field at once) → 404/409 (state, decided by the registry under its lock).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Actor;
use super::error::{AdminError, JsonBody};
use crate::config::{valid_identifier, Config, Scope};
use crate::index::LiveKey;
use crate::key::KeyId;
use crate::net;
use crate::record::{
    parse_timestamp, rfc3339, unix_now, Environment, ExpirationState, Kind, RateLimit, Role, Status,
};
use crate::registry::NewKey;
use crate::state::State;

type Shared = AxumState<Arc<State>>;

/// `POST /v1/keys` body. Enum-valued fields arrive as strings so an unknown value is a 422 naming
/// the field, not a 400.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    name: Option<String>,
    kind: Option<String>,
    tenant: Option<String>,
    environment: Option<String>,
    description: Option<String>,
    role: Option<String>,
    group: Option<String>,
    permissions: Option<Vec<String>>,
    ip_allowlist: Option<Vec<String>>,
    rate_limit: Option<serde_json::Value>,
    customer_id: Option<String>,
    expires_at: Option<String>,
}

/// The key record of SPEC §2.2 as the API shows it.
#[derive(Debug, Serialize)]
pub struct KeyView {
    id: String,
    name: String,
    description: Option<String>,
    kind: Kind,
    tenant: Option<String>,
    environment: Environment,
    role: Role,
    group: Option<String>,
    permissions: Vec<String>,
    effective_permissions: Vec<String>,
    ip_allowlist: Vec<String>,
    rate_limit: Option<RateLimit>,
    customer_id: Option<String>,
    expires_at: Option<String>,
    status: Status,
    expiration_state: ExpirationState,
    mark: String,
    prefix: String,
    created_at: String,
    updated_at: String,
    last_used_at: Option<String>,
    last_used_ip: Option<String>,
    usage: UsageView,
    rotation: Option<RotationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Debug, Serialize)]
struct UsageView {
    requests_total: u64,
}

#[derive(Debug, Serialize)]
struct RotationView {
    rotated_at: String,
    previous_valid_until: String,
    previous_requests: u64,
}

impl KeyView {
    pub fn new(key: &LiveKey, config: &Config, now: i64) -> Self {
        let doc = &key.doc;
        let usage = key.usage.snapshot();
        KeyView {
            id: doc.id.to_string(),
            name: doc.name.clone(),
            description: doc.description.clone(),
            kind: doc.kind,
            tenant: doc.tenant.clone(),
            environment: doc.environment,
            role: doc.role,
            group: doc.group.clone(),
            permissions: doc.permissions.clone(),
            effective_permissions: config.effective_permissions(doc),
            ip_allowlist: doc.ip_allowlist.iter().map(ToString::to_string).collect(),
            rate_limit: doc.rate_limit,
            customer_id: doc.customer_id.clone(),
            expires_at: doc.expires_at.map(rfc3339),
            status: doc.status(now),
            expiration_state: doc.expiration_state(now, config.expiring_soon_days),
            mark: doc.mark.clone(),
            prefix: doc.prefix(&config.key_prefix),
            created_at: rfc3339(doc.created_at),
            updated_at: rfc3339(doc.updated_at),
            last_used_at: usage.last_used_at.map(rfc3339),
            last_used_ip: usage.last_used_ip.map(|ip| ip.to_string()),
            usage: UsageView {
                requests_total: usage.requests_total,
            },
            rotation: doc.previous_valid(now).map(|r| RotationView {
                rotated_at: rfc3339(r.rotated_at),
                previous_valid_until: rfc3339(r.previous_valid_until),
                previous_requests: usage.previous_requests,
            }),
            secret: None,
        }
    }
}

// === handlers ===

pub async fn create(
    AxumState(state): Shared,
    actor: Actor,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> Result<(StatusCode, Json<KeyView>), AdminError> {
    actor.require(Scope::KeysCreate)?;
    let settings = state.settings();
    let config = &settings.config;
    let now = unix_now();
    let new = validate_create(body, &actor, config, now)?;
    let (key, secret) = state.registry.create(new, &config.key_prefix, now).await?;
    let mut view = KeyView::new(&key, config, now);
    view.secret = Some(secret.expose().to_owned());
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn get(
    AxumState(state): Shared,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, AdminError> {
    actor.require(Scope::KeysRead)?;
    let key = visible_key(&state, &actor, &id)?;
    Ok(Json(KeyView::new(
        &key,
        &state.settings().config,
        unix_now(),
    )))
}

pub async fn revoke(
    AxumState(state): Shared,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, AdminError> {
    actor.require(Scope::KeysUpdate)?;
    let key = visible_key(&state, &actor, &id)?;
    let now = unix_now();
    let key = state.registry.revoke(key.doc.id, now).await?;
    Ok(Json(KeyView::new(&key, &state.settings().config, now)))
}

pub async fn disable(
    state: Shared,
    actor: Actor,
    id: Path<String>,
) -> Result<Json<KeyView>, AdminError> {
    set_disabled(state, actor, id, true).await
}

pub async fn enable(
    state: Shared,
    actor: Actor,
    id: Path<String>,
) -> Result<Json<KeyView>, AdminError> {
    set_disabled(state, actor, id, false).await
}

async fn set_disabled(
    AxumState(state): Shared,
    actor: Actor,
    Path(id): Path<String>,
    disabled: bool,
) -> Result<Json<KeyView>, AdminError> {
    actor.require(Scope::KeysUpdate)?;
    let key = visible_key(&state, &actor, &id)?;
    let now = unix_now();
    let key = state
        .registry
        .set_disabled(key.doc.id, disabled, now)
        .await?;
    Ok(Json(KeyView::new(&key, &state.settings().config, now)))
}

/// The key with this id if the actor may see it; 404 otherwise (never 403: no existence leak).
fn visible_key(state: &State, actor: &Actor, id: &str) -> Result<Arc<LiveKey>, AdminError> {
    let id = KeyId::parse(id).ok_or(AdminError::NotFound)?;
    let key = state.registry.get(id).ok_or(AdminError::NotFound)?;
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
    now: i64,
) -> Result<NewKey, AdminError> {
    let mut fields = Fields::default();
    let kind = match body.kind.as_deref() {
        None => Some(Kind::Tenant),
        Some("tenant") => Some(Kind::Tenant),
        Some("service") => Some(Kind::Service),
        Some(other) => fields.bad("kind", format!("{other:?} is not a kind (tenant, service)")),
    };
    // Authorization first: a tenant-restricted token may only create keys of its own tenant.
    if let Some(own) = &actor.tenant {
        if kind == Some(Kind::Service) {
            return Err(AdminError::Forbidden(
                "a tenant-restricted token cannot create service keys".into(),
            ));
        }
        if body.tenant.as_deref().is_some_and(|t| t != own) {
            return Err(AdminError::Forbidden(format!(
                "this token may only create keys of tenant {own:?}"
            )));
        }
    }
    let tenant = match (kind, body.tenant) {
        (Some(Kind::Tenant), None) => match &actor.tenant {
            Some(own) => Some(own.clone()),
            None => fields.bad("tenant", "required for tenant keys"),
        },
        (Some(Kind::Service), Some(_)) => fields.bad(
            "tenant",
            "service keys belong to no tenant; leave tenant out",
        ),
        (_, tenant) => tenant,
    };
    let name = match body.name {
        None => fields.bad("name", "required: 2-200 characters"),
        Some(name) => fields.check(
            "name",
            name,
            |n| valid_name(n),
            "must be 2-200 characters, not blank",
        ),
    };
    let description = body.description.and_then(|d| {
        fields.check(
            "description",
            d,
            |d| d.chars().count() <= 1000,
            "must be at most 1000 characters",
        )
    });
    let environment = match body.environment.as_deref() {
        None => Some(Environment::Development),
        Some(name) => Environment::from_name(name).or_else(|| {
            fields.bad(
                "environment",
                format!("{name:?} is not an environment (production, staging, development)"),
            )
        }),
    };
    let role = match body.role.as_deref() {
        None | Some("admin") => Some(Role::Admin),
        Some("readonly") => Some(Role::Readonly),
        Some(other) => fields.bad("role", format!("{other:?} is not a role (admin, readonly)")),
    };
    let group = body.group.and_then(|g| {
        let known = config.groups.contains_key(&g);
        fields.check("group", g, |_| known, "unknown group; see GET /v1/groups")
    });
    let permissions = body.permissions.unwrap_or_default();
    if let Some(bad) = permissions.iter().find(|p| !valid_identifier(p)) {
        fields.bad::<()>(
            "permissions",
            format!("{bad:?} is not a permission name (1-64 of [A-Za-z0-9_.:-])"),
        );
    }
    let mut ip_allowlist = Vec::new();
    for item in body.ip_allowlist.unwrap_or_default() {
        match net::parse_cidr(&item) {
            Ok(net) => ip_allowlist.push(net),
            Err(e) => {
                fields.bad::<()>("ip_allowlist", e);
            }
        }
    }
    let rate_limit = match body.rate_limit {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => serde_json::from_value::<RateLimit>(value).map_err(|_| ()).ok().or_else(|| {
            fields.bad("rate_limit", r#"must be {"per_second"|"per_minute"|"per_hour": N} with N >= 1, and optionally "burst": B >= 1"#)
        }),
    };
    let customer_id = body.customer_id.and_then(|c| {
        fields.check(
            "customer_id",
            c,
            |c| (1..=200).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_graphic()),
            "must be 1-200 visible ASCII characters",
        )
    });
    let expires_at = match body.expires_at {
        None => None,
        Some(text) => match parse_timestamp(&text) {
            Some(at) if at > now => Some(at),
            Some(_) => fields.bad("expires_at", "must be in the future"),
            None => fields.bad(
                "expires_at",
                "must be an RFC 3339 timestamp or a date YYYY-MM-DD",
            ),
        },
    };
    if let Some(t) = &tenant {
        if !crate::record::valid_tenant_id(t) {
            fields.bad::<()>("tenant", format!("{t:?} is not a tenant id"));
        }
    }
    fields.finish()?;
    Ok(NewKey {
        name: name.unwrap_or_default(),
        description,
        kind: kind.unwrap_or_default(),
        tenant,
        environment: environment.unwrap_or(Environment::Development),
        role: role.unwrap_or_default(),
        group,
        permissions,
        ip_allowlist,
        rate_limit,
        customer_id,
        expires_at,
    })
}

/// Key names: 2-200 characters, not only whitespace, no control characters.
pub fn valid_name(name: &str) -> bool {
    (2..=200).contains(&name.chars().count())
        && !name.trim().is_empty()
        && !name.chars().any(char::is_control)
}

/// Collects field errors for a 422.
#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Fields {
    /// Records a problem; returns `None` so it can stand in for the missing value.
    fn bad<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| message.into());
        None
    }

    fn check<T>(
        &mut self,
        field: &str,
        value: T,
        ok: impl Fn(&T) -> bool,
        message: &str,
    ) -> Option<T> {
        if ok(&value) {
            Some(value)
        } else {
            self.bad(field, message)
        }
    }

    fn finish(self) -> Result<(), AdminError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AdminError::Validation(self.0))
        }
    }
}
