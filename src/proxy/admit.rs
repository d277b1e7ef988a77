//! Every check of SPEC §4.1, in order, as one function over the request header and shared state.
//! Called from `request_filter`; touches memory only (index, buckets), never the store.
//!
//! ```text
//! Host → environment ─✗ unknown_host        key present ─✗ missing_api_key
//! public route? ──────→ admitted, no key    exactly one ─✗ ambiguous_api_key
//! failed-auth bucket ─✗ too_many_failed…    parse + checksum + id + digest ─✗ invalid_api_key
//! status ─✗ key_revoked/inactive/expired    environment ─✗ environment_mismatch
//! allowlist ─✗ ip_not_allowed               role + route ─✗ permission_denied
//! rate limit ─✗ rate_limited                → admitted with the key
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header::AUTHORIZATION, HeaderName};
use pingora::http::RequestHeader;

use super::reject::Rejection;
use crate::config::Config;
use crate::index::{KeyIndex, LiveKey};
use crate::key::{self, Digest};
use crate::limit::{self, Decision, Gcra, IpBuckets};
use crate::net;
use crate::record::{Environment, Period, Status};
use crate::routes::{self, Route};

/// At most this many key values are looked at in one request (more is ambiguous anyway).
const MAX_PRESENTED: usize = 8;

/// What the checks learned about a request, filled in as far as they got.
#[derive(Debug, Default)]
pub struct Admission {
    pub environment: Option<Environment>,
    pub key: Option<Arc<LiveKey>>,
    /// The key was presented with its previous secret during a rotation grace period.
    pub with_previous_secret: bool,
    pub rate: Option<RateInfo>,
    /// Key headers to remove before proxying (whatever the outcome of the checks).
    pub credential_headers: Vec<HeaderName>,
}

/// The key's bucket after this request, for `RateLimit` fields and whoami.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub period: Period,
    pub remaining: u32,
    pub reset: Duration,
}

impl RateInfo {
    /// `RateLimit-Policy: "key";q=<N>;w=<period seconds>`
    pub fn policy_field(&self) -> String {
        format!("\"key\";q={};w={}", self.limit, self.period.seconds())
    }

    /// `RateLimit: "key";r=<remaining>;t=<seconds until full>`
    pub fn state_field(&self) -> String {
        format!("\"key\";r={};t={}", self.remaining, crate::limit::ceil_secs(self.reset))
    }
}

impl Admission {
    /// `Deprecation` and `Sunset` (RFC 9745, RFC 8594) for an answer to a request made with a
    /// rotated-out secret during its grace period.
    pub fn deprecation_fields(&self) -> Option<(String, String)> {
        if !self.with_previous_secret {
            return None;
        }
        let rotation = self.key.as_ref()?.doc.rotation.as_ref()?;
        let sunset = std::time::UNIX_EPOCH + Duration::from_secs(rotation.previous_valid_until.max(0) as u64);
        Some((format!("@{}", rotation.rotated_at), httpdate::fmt_http_date(sunset)))
    }
}

/// Borrowed inputs of one admission.
pub struct Checks<'a> {
    pub config: &'a Config,
    pub index: &'a KeyIndex,
    pub failed_auth: &'a IpBuckets,
    pub client_ip: IpAddr,
    /// Unix seconds (expiry, rotation grace).
    pub now: i64,
}

impl Checks<'_> {
    /// Runs the checks; on `Ok` the request may be proxied (or answered by whoami).
    pub fn admit(&self, req: &RequestHeader, out: &mut Admission) -> Result<(), Rejection> {
        let config = self.config;
        let host_environment = if config.routes_by_host() {
            let env = request_host(req).and_then(|h| config.environment_for_host(&h)).ok_or(Rejection::UnknownHost)?;
            out.environment = Some(env);
            Some(env)
        } else {
            None
        };

        let route = config.routes.find(req.uri.path());
        let presented = presented_keys(req, &config.proxy.key_headers, &mut out.credential_headers);
        if let Some(route) = route.filter(|r| r.public) {
            out.environment = Some(host_environment.unwrap_or(route.environment));
            return Ok(());
        }

        let failed_auth_quota = Gcra::new(&config.proxy.failed_auth_limit);
        if let Some(retry_after) = self.failed_auth.empty_for(self.client_ip, &failed_auth_quota, limit::now()) {
            return Err(Rejection::TooManyFailedAttempts { retry_after });
        }

        let presented = match presented.as_slice() {
            [] => return Err(Rejection::MissingApiKey),
            [one] => *one,
            _ => return Err(Rejection::AmbiguousApiKey),
        };
        let (key, with_previous_secret) = self.verify(presented).ok_or_else(|| {
            self.failed_auth.record(self.client_ip, &failed_auth_quota, limit::now());
            Rejection::InvalidApiKey
        })?;
        out.with_previous_secret = with_previous_secret;
        let doc = &key.doc;
        // The key is verified: its environment is known, even if the status check fails next.
        out.environment = host_environment.or(Some(doc.environment));

        match doc.status(self.now) {
            Status::Active => {}
            Status::Revoked => return Err(Rejection::KeyRevoked),
            Status::Inactive => return Err(Rejection::KeyInactive),
            Status::Expired => return Err(Rejection::KeyExpired),
        }
        if host_environment.is_some_and(|env| env != doc.environment) {
            return Err(Rejection::EnvironmentMismatch);
        }
        out.key = Some(key.clone());

        if !net::allowed(&doc.ip_allowlist, self.client_ip) {
            return Err(Rejection::IpNotAllowed);
        }
        self.authorize(route, req, &key)?;
        out.rate = self.rate_limit(&key)?;
        Ok(())
    }

    /// The key and whether its previous (rotated-out) secret was used; `None` if it does not verify.
    /// The digest is computed before the lookup so an unknown id costs what a wrong secret costs.
    fn verify(&self, presented: &[u8]) -> Option<(Arc<LiveKey>, bool)> {
        let parsed = key::parse(&self.config.key_prefix, presented)?;
        let digest = Digest::of(presented);
        let key = self.index.get(&parsed.id)?;
        if key.doc.environment != parsed.environment {
            return None;
        }
        if key.doc.digest.matches(&digest) {
            return Some((key, false));
        }
        let previous = key.doc.previous_valid(self.now).is_some_and(|r| r.previous_digest.matches(&digest));
        previous.then_some((key, true))
    }

    fn authorize(&self, route: Option<&Route>, req: &RequestHeader, key: &LiveKey) -> Result<(), Rejection> {
        let doc = &key.doc;
        let group = doc.group.as_deref().map_or(&[][..], |g| self.config.group_permissions(g));
        let has = |p: &str| doc.permissions.iter().any(|x| x == p) || group.iter().any(|x| x == p);
        routes::authorize(route, &req.method, doc.role, has).map_err(|_| Rejection::PermissionDenied)
    }

    fn rate_limit(&self, key: &LiveKey) -> Result<Option<RateInfo>, Rejection> {
        let doc = &key.doc;
        let Some(rate) = doc.rate_limit.or_else(|| self.config.environment(doc.environment)?.rate_limit) else {
            return Ok(None);
        };
        let gcra = Gcra::new(&rate);
        match key.state.bucket.check(&gcra, limit::now()) {
            Decision::Allowed { remaining, reset } => {
                Ok(Some(RateInfo { limit: gcra.limit, period: gcra.period, remaining, reset }))
            }
            Decision::Limited { retry_after } => Err(Rejection::RateLimited { retry_after }),
        }
    }
}

/// The request's host, lower-case, without port: the Host header, else the URI authority.
fn request_host(req: &RequestHeader) -> Option<String> {
    let raw = match req.headers.get(http::header::HOST) {
        Some(value) => value.to_str().ok()?,
        None => req.uri.authority()?.as_str(),
    };
    let host = match raw.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => raw.rsplit_once(':').map_or(raw, |(h, _)| h),
    };
    Some(host.trim().trim_end_matches('.').to_ascii_lowercase())
}

/// Every distinct key value presented in the configured key headers. `Authorization` presents a
/// key only as `Bearer <key>`; other schemes are someone else's credentials and stay untouched.
/// The headers that carried keys are added to `carried` so they can be removed before proxying.
fn presented_keys<'r>(
    req: &'r RequestHeader,
    key_headers: &[HeaderName],
    carried: &mut Vec<HeaderName>,
) -> Vec<&'r [u8]> {
    let mut keys: Vec<&[u8]> = Vec::new();
    for name in key_headers {
        for value in req.headers.get_all(name) {
            let bytes = value.as_bytes();
            let bytes = if *name == AUTHORIZATION {
                match strip_bearer(bytes) {
                    Some(token) => token,
                    None => continue,
                }
            } else {
                bytes
            };
            if !carried.contains(name) {
                carried.push(name.clone());
            }
            for part in bytes.split(|b| *b == b',').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()) {
                if !keys.contains(&part) && keys.len() < MAX_PRESENTED {
                    keys.push(part);
                }
            }
        }
    }
    keys
}

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    (scheme.eq_ignore_ascii_case(b"bearer") && rest.first().is_some_and(|b| *b == b' ')).then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        for (name, value) in headers {
            req.append_header(*name, *value).unwrap();
        }
        req
    }

    fn key_headers() -> Vec<HeaderName> {
        vec![HeaderName::from_static("x-api-key"), AUTHORIZATION]
    }

    #[test]
    fn keys_come_from_either_header_and_duplicates_count_once() {
        let mut carried = vec![];
        let req = request(&[("x-api-key", "k1"), ("authorization", "Bearer k1")]);
        assert_eq!(presented_keys(&req, &key_headers(), &mut carried), vec![&b"k1"[..]]);
        assert_eq!(carried.len(), 2);
    }

    #[test]
    fn two_values_in_any_form_are_two_keys() {
        for headers in [
            &[("x-api-key", "k1"), ("authorization", "Bearer k2")][..],
            &[("x-api-key", "k1"), ("x-api-key", "k2")][..],
            &[("x-api-key", "k1, k2")][..],
        ] {
            let mut carried = vec![];
            assert_eq!(presented_keys(&request(headers), &key_headers(), &mut carried).len(), 2, "{headers:?}");
        }
    }

    #[test]
    fn other_authorization_schemes_are_not_keys() {
        let mut carried = vec![];
        let req = request(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert!(presented_keys(&req, &key_headers(), &mut carried).is_empty());
        assert!(carried.is_empty(), "a Basic credential is passed on untouched");
        assert_eq!(strip_bearer(b"bearer   abc "), Some(&b"abc"[..]));
        assert_eq!(strip_bearer(b"Bearerabc"), None);
    }

    #[test]
    fn hosts_are_normalised() {
        let host = |h: &str| request_host(&request(&[("host", h)]));
        assert_eq!(host("API.Example.com:8443").as_deref(), Some("api.example.com"));
        assert_eq!(host("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(host("example.com.").as_deref(), Some("example.com"));
    }
}
