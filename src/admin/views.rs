//! What the admin API answers with: the key record of SPEC §2.2, list pages, and the problem body
//! (documented here for the OpenAPI schema; produced by `admin/error.rs`).

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::AuditEntry;
use crate::config::Config;
use crate::index::LiveKey;
use crate::record::{rfc3339, Environment, ExpirationState, Kind, RateLimit, RateLimitWire, Role, Status};

/// The key record (SPEC §2.2). Every field but `secret` is always present (null when unset); `secret`
/// appears only in create and rotate answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    #[schema(required)]
    pub description: Option<String>,
    pub kind: Kind,
    #[schema(required)]
    pub tenant: Option<String>,
    pub environment: Environment,
    pub role: Role,
    #[schema(required)]
    pub group: Option<String>,
    pub permissions: Vec<String>,
    /// Union of the group's and the direct permissions, sorted.
    pub effective_permissions: Vec<String>,
    pub ip_allowlist: Vec<String>,
    /// null: the environment's default.
    #[schema(value_type = Option<RateLimitWire>, required)]
    pub rate_limit: Option<RateLimit>,
    #[schema(required)]
    pub customer_id: Option<String>,
    #[schema(required)]
    pub expires_at: Option<String>,
    pub status: Status,
    pub expiration_state: ExpirationState,
    /// The last 4 characters of the key.
    pub mark: String,
    /// `<prefix>_<env>_<id>`, the non-secret start of the key.
    pub prefix: String,
    pub created_at: String,
    pub updated_at: String,
    #[schema(required)]
    pub last_used_at: Option<String>,
    #[schema(required)]
    pub last_used_ip: Option<String>,
    pub usage: UsageView,
    #[schema(required)]
    pub rotation: Option<RotationView>,
    /// The full key, only in the create and rotate answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub requests_total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotationView {
    pub rotated_at: String,
    pub previous_valid_until: String,
    /// Requests authenticated with the previous key since the rotation.
    pub previous_requests: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    pub items: Vec<KeyView>,
    /// null on the last page.
    #[schema(required)]
    pub next_cursor: Option<String>,
    /// Keys matching the filters (visible to the token), across all pages.
    pub total: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// null on the last page.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub name: String,
    pub permissions: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub items: Vec<GroupView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// RFC 9457 problem body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemView {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Stable error code, e.g. `validation_failed`, `name_taken`, `not_found`.
    pub code: String,
    pub detail: String,
    pub request_id: String,
    /// Only for `validation_failed`: field name → what is allowed.
    #[schema(value_type = BTreeMap<String, String>, required = false)]
    pub fields: Option<BTreeMap<String, String>>,
}

impl KeyView {
    pub fn new(key: &LiveKey, config: &Config, now: i64) -> Self {
        let doc = &key.doc;
        let usage = key.state.usage.snapshot();
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
            mark: doc.mark.to_string(),
            prefix: doc.prefix(&config.key_prefix),
            created_at: rfc3339(doc.created_at),
            updated_at: rfc3339(doc.updated_at),
            last_used_at: usage.last_used_at.map(rfc3339),
            last_used_ip: usage.last_used_ip.map(|ip| ip.to_string()),
            usage: UsageView { requests_total: usage.requests_total },
            rotation: doc.previous_valid(now).map(|r| RotationView {
                rotated_at: rfc3339(r.rotated_at),
                previous_valid_until: rfc3339(r.previous_valid_until),
                previous_requests: usage.previous_requests,
            }),
            secret: None,
        }
    }
}
