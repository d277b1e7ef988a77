//! `GET /.well-known/keygate/whoami` (SPEC §4.5): the key describes itself, after passing every
//! check and spending one request of its rate limit. Answered in `request_filter`; never proxied.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use serde::Serialize;

use super::admit::Admission;
use crate::config::Config;
use crate::limit::ceil_secs;
use crate::record::{rfc3339, Environment, Kind, Role};

#[derive(Serialize)]
struct Whoami<'a> {
    id: &'a str,
    name: &'a str,
    kind: Kind,
    tenant: Option<&'a str>,
    environment: Environment,
    role: Role,
    effective_permissions: Vec<String>,
    expires_at: Option<String>,
    rate_limit: Option<RateLimitView>,
}

#[derive(Serialize)]
struct RateLimitView {
    limit: u32,
    period_seconds: u64,
    remaining: u32,
    reset_seconds: u64,
}

/// The answer for an admitted request with a key (`admission.key` is set by the caller's check).
pub(super) fn response(
    config: &Config,
    admission: &Admission,
    request_id: &str,
) -> pingora::Result<(Box<ResponseHeader>, Bytes)> {
    let key = admission
        .key
        .as_ref()
        .ok_or_else(|| pingora::Error::explain(pingora::ErrorType::InternalError, "whoami without a key"))?;
    let doc = &key.doc;
    let body = Whoami {
        id: doc.id.as_str(),
        name: &doc.name,
        kind: doc.kind,
        tenant: doc.tenant.as_deref(),
        environment: doc.environment,
        role: doc.role,
        effective_permissions: config.effective_permissions(doc),
        expires_at: doc.expires_at.map(rfc3339),
        rate_limit: admission.rate.map(|r| RateLimitView {
            limit: r.limit,
            period_seconds: r.period.seconds(),
            remaining: r.remaining,
            reset_seconds: ceil_secs(r.reset),
        }),
    };
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let mut header = ResponseHeader::build(200, Some(6))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "no-store")?;
    header.insert_header("x-request-id", request_id)?;
    if let Some((deprecation, sunset)) = admission.deprecation_fields() {
        header.insert_header("deprecation", deprecation)?;
        header.insert_header("sunset", sunset)?;
    }
    if let Some(rate) = admission.rate {
        header.insert_header("ratelimit-policy", rate.policy_field())?;
        header.insert_header("ratelimit", rate.state_field())?;
    }
    Ok((Box::new(header), body))
}
