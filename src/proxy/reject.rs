//! THE table of proxy rejections (SPEC §4.1, §4.2): each [`Rejection`] has one status, one stable
//! `code`, a title and a detail that says what to do. Converting is pure; the proxy writes the
//! answer with [`Rejection::response`] and counts it in `logging`.

use std::time::Duration;

use bytes::Bytes;
use pingora::http::ResponseHeader;

use crate::limit::ceil_secs;
use crate::problem::{Problem, CONTENT_TYPE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    UnknownHost,
    TooManyFailedAttempts { retry_after: Duration },
    MissingApiKey,
    AmbiguousApiKey,
    InvalidApiKey,
    KeyRevoked,
    KeyInactive,
    KeyExpired,
    EnvironmentMismatch,
    IpNotAllowed,
    PermissionDenied,
    RateLimited { retry_after: Duration },
    UpstreamUnavailable,
    UpstreamTimeout,
}

impl Rejection {
    /// Every rejection, in the order of SPEC §4.1 (durations are placeholders).
    pub const ALL: [Rejection; 14] = [
        Rejection::UnknownHost,
        Rejection::TooManyFailedAttempts { retry_after: Duration::ZERO },
        Rejection::MissingApiKey,
        Rejection::AmbiguousApiKey,
        Rejection::InvalidApiKey,
        Rejection::KeyRevoked,
        Rejection::KeyInactive,
        Rejection::KeyExpired,
        Rejection::EnvironmentMismatch,
        Rejection::IpNotAllowed,
        Rejection::PermissionDenied,
        Rejection::RateLimited { retry_after: Duration::ZERO },
        Rejection::UpstreamUnavailable,
        Rejection::UpstreamTimeout,
    ];

    /// (status, code, title, detail)
    pub fn describe(self) -> (u16, &'static str, &'static str, &'static str) {
        use Rejection::*;
        match self {
            UnknownHost => (404, "unknown_host", "Unknown host", "This Host is not served by the gateway; call one of the configured API hosts."),
            TooManyFailedAttempts { .. } => (429, "too_many_failed_attempts", "Too many failed attempts", "Too many invalid API keys came from your address; wait for Retry-After seconds and check the key you send."),
            MissingApiKey => (401, "missing_api_key", "API key missing", "Send your API key in the X-API-Key header or as Authorization: Bearer <key>."),
            AmbiguousApiKey => (401, "ambiguous_api_key", "More than one API key", "Send exactly one API key per request."),
            InvalidApiKey => (401, "invalid_api_key", "Invalid API key", "The API key is not valid; check that it was copied completely, or ask for a new one."),
            KeyRevoked => (401, "key_revoked", "API key revoked", "This API key was revoked for good; ask your administrator for a new one."),
            KeyInactive => (401, "key_inactive", "API key disabled", "This API key is disabled; ask your administrator to enable it."),
            KeyExpired => (401, "key_expired", "API key expired", "This API key has expired; ask your administrator to rotate it or issue a new one."),
            EnvironmentMismatch => (401, "environment_mismatch", "Wrong environment", "This API key belongs to another environment; use a key of the environment this host serves."),
            IpNotAllowed => (403, "ip_not_allowed", "Address not allowed", "This API key may not be used from your address; ask your administrator to extend its IP allowlist."),
            PermissionDenied => (403, "permission_denied", "Permission denied", "This API key may not make this request; ask your administrator for a key with the needed permission or role."),
            RateLimited { .. } => (429, "rate_limited", "Rate limit exceeded", "This API key sent too many requests; wait for Retry-After seconds before retrying."),
            UpstreamUnavailable => (502, "upstream_unavailable", "Upstream unavailable", "The service behind the gateway could not be reached; retry later."),
            UpstreamTimeout => (504, "upstream_timeout", "Upstream timed out", "The service behind the gateway did not answer in time; retry later."),
        }
    }

    pub fn code(self) -> &'static str {
        self.describe().1
    }

    pub fn status(self) -> u16 {
        self.describe().0
    }

    /// Only this answer counts toward the client address's failed-auth limit.
    pub fn counts_as_failed_attempt(self) -> bool {
        self == Rejection::InvalidApiKey
    }

    /// The whole answer: header and problem+json body.
    pub fn response(self, request_id: &str) -> pingora::Result<(Box<ResponseHeader>, Bytes)> {
        let (status, code, title, detail) = self.describe();
        let body = Bytes::from(Problem::new(status, code, title, detail, request_id).to_json());
        let mut header = ResponseHeader::build(status, Some(6))?;
        header.insert_header("content-type", CONTENT_TYPE)?;
        header.insert_header("content-length", body.len().to_string())?;
        header.insert_header("x-request-id", request_id)?;
        header.insert_header("cache-control", "no-store")?;
        if status == 401 {
            header.insert_header("www-authenticate", r#"Bearer realm="keygate""#)?;
        }
        if let Rejection::TooManyFailedAttempts { retry_after } | Rejection::RateLimited { retry_after } = self {
            header.insert_header("retry-after", ceil_secs(retry_after).max(1).to_string())?;
        }
        Ok((Box::new(header), body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_spec() {
        let table: Vec<(u16, &str)> = Rejection::ALL.iter().map(|r| (r.status(), r.code())).collect();
        assert_eq!(
            table,
            vec![
                (404, "unknown_host"),
                (429, "too_many_failed_attempts"),
                (401, "missing_api_key"),
                (401, "ambiguous_api_key"),
                (401, "invalid_api_key"),
                (401, "key_revoked"),
                (401, "key_inactive"),
                (401, "key_expired"),
                (401, "environment_mismatch"),
                (403, "ip_not_allowed"),
                (403, "permission_denied"),
                (429, "rate_limited"),
                (502, "upstream_unavailable"),
                (504, "upstream_timeout"),
            ]
        );
    }

    #[test]
    fn headers_follow_the_status() {
        for r in Rejection::ALL {
            let (header, body) = r.response("rid").unwrap();
            let get = |name: &str| header.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(get("content-length"), Some(body.len().to_string()));
            assert_eq!(get("x-request-id").as_deref(), Some("rid"));
            assert_eq!(get("www-authenticate").is_some(), r.status() == 401, "{r:?}");
            assert_eq!(get("retry-after").is_some(), r.status() == 429, "{r:?}");
        }
        let (h, _) = Rejection::RateLimited { retry_after: Duration::from_millis(1500) }.response("x").unwrap();
        assert_eq!(h.headers.get("retry-after").unwrap(), "2");
        let (h, _) = Rejection::TooManyFailedAttempts { retry_after: Duration::from_millis(1) }.response("x").unwrap();
        assert_eq!(h.headers.get("retry-after").unwrap(), "1");
    }
}
