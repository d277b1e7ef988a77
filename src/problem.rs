//! The RFC 9457 problem+json body every error answer carries, on the proxy and the admin API alike
//! (SPEC §4.2): `{"type", "title", "status", "code", "detail", "request_id"}` plus, for admin
//! validation errors, `"fields"`. The body never contains a presented key or any secret.

use std::collections::BTreeMap;

use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Serialize)]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'a str,
    pub status: u16,
    pub code: &'a str,
    pub detail: &'a str,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Problem<'a> {
    pub fn new(status: u16, code: &'a str, title: &'a str, detail: &'a str, request_id: &'a str) -> Self {
        Problem { kind: format!("urn:keygate:error:{code}"), title, status, code, detail, request_id, fields: None }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A fresh request id: 32 lower-case hex characters.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A client-sent request id is kept when it is 1–128 characters of `[A-Za-z0-9._-]`.
pub fn sane_request_id(value: &[u8]) -> Option<&str> {
    let ok = (1..=128).contains(&value.len()) && value.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    ok.then(|| std::str::from_utf8(value).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_every_field() {
        let body: serde_json::Value =
            serde_json::from_slice(&Problem::new(401, "invalid_api_key", "Invalid", "Check it", "r1").to_json())
                .unwrap();
        assert_eq!(body["type"], "urn:keygate:error:invalid_api_key");
        assert_eq!(
            (body["status"].as_u64(), body["code"].as_str(), body["request_id"].as_str()),
            (Some(401), Some("invalid_api_key"), Some("r1"))
        );
        assert!(body.get("fields").is_none());
    }

    #[test]
    fn request_ids_from_clients_are_checked() {
        assert_eq!(sane_request_id(b"abc-123.x_Y"), Some("abc-123.x_Y"));
        assert_eq!(sane_request_id(b""), None);
        assert_eq!(sane_request_id(b"a b"), None);
        assert_eq!(sane_request_id(&[b'a'; 129]), None);
        assert_eq!(new_request_id().len(), 32);
    }
}
