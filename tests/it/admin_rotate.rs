//! `POST /v1/keys/{id}/rotate` (SPEC 2.2, 4.4, 5): a new secret under the same id; with a grace period
//! the previous secret keeps working, its answers carry `Deprecation` and `Sunset`, and its uses are
//! counted; without one it ends at once. A new expiry is applied; bad grace periods are 422; a revoked
//! key cannot be rotated; revoking during a grace period ends both secrets.

use std::time::UNIX_EPOCH;

use serde_json::json;

use crate::admin_helpers::{id, rotate, secret};
use crate::helpers::{
    check_admin_problem, check_field_error, check_proxy_problem, now, parse_rfc3339, rfc3339, Gateway, KeyParts,
};

/// Rotates with a JSON body; asserts 200 and returns the answer.
fn rotated(g: &Gateway, key_id: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let r = rotate(g, key_id, body);
    assert_eq!(r.status, 200, "rotate {key_id}: {r:?}");
    r.json()
}

#[test]
fn rotate_answers_a_new_secret_with_the_same_id_and_its_mark() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let new = rotated(&g, id(&rec), Some(json!({"grace_period": "1h"})));
    assert_eq!(new["id"], rec["id"]);
    assert_ne!(secret(&new), secret(&rec));
    let parts = KeyParts::parse(secret(&new)).unwrap_or_else(|| panic!("malformed secret {}", secret(&new)));
    assert_eq!(parts.id, id(&rec), "the new secret carries the same id");
    assert_eq!(new["mark"].as_str(), Some(&secret(&new)[secret(&new).len() - 4..]), "{new}");
    assert_eq!(g.key(id(&rec))["mark"], new["mark"]);
    assert!(g.key(id(&rec)).get("secret").is_none());
    for field in ["name", "tenant", "environment", "role", "kind", "created_at"] {
        assert_eq!(new[field], rec[field], "rotation changed {field}");
    }
}

#[test]
fn the_previous_key_works_during_the_grace_period_with_deprecation_and_sunset() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let new = rotated(&g, id(&rec), Some(json!({"grace_period": "1h"})));
    let rotation = &new["rotation"];
    let rotated_at = parse_rfc3339(rotation["rotated_at"].as_str().unwrap_or_else(|| panic!("rotation: {new}")));
    let until = parse_rfc3339(rotation["previous_valid_until"].as_str().expect("previous_valid_until"));
    assert_eq!((until - rotated_at).whole_seconds(), 3600, "grace 1h: {rotation}");

    let old = g.get_with(secret(&rec), "/reports");
    assert_eq!(old.status, 200, "the previous key works in the grace period: {old:?}");
    let deprecation = old.header("deprecation").unwrap_or_else(|| panic!("no Deprecation: {old:?}"));
    let at: i64 = deprecation
        .strip_prefix('@')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("Deprecation is not @<unix seconds>: {deprecation:?}"));
    assert!((at - rotated_at.unix_timestamp()).abs() <= 1, "Deprecation {at} vs rotated_at {rotated_at}");
    let sunset = old.header("sunset").unwrap_or_else(|| panic!("no Sunset: {old:?}"));
    let sunset =
        httpdate::parse_http_date(&sunset).unwrap_or_else(|e| panic!("Sunset {sunset:?} is no HTTP-date: {e}"));
    let sunset = sunset.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    assert!((sunset - until.unix_timestamp()).abs() <= 1, "Sunset {sunset} vs previous_valid_until {until}");
}

#[test]
fn the_new_key_works_without_deprecation() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let new = rotated(&g, id(&rec), Some(json!({"grace_period": "1h"})));
    let r = g.get_with(secret(&new), "/reports");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("deprecation").is_none() && r.header("sunset").is_none(), "{r:?}");
}

#[test]
fn previous_requests_counts_uses_of_the_previous_key() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "a use before the rotation does not count");
    let new = rotated(&g, id(&rec), Some(json!({"grace_period": "1h"})));
    assert_eq!(new["rotation"]["previous_requests"], 0, "{new}");
    for _ in 0..3 {
        assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(g.get_with(secret(&new), "/reports").status, 200);
    }
    let after = g.key(id(&rec));
    assert_eq!(after["rotation"]["previous_requests"], 3, "{after}");
}

#[test]
fn rotate_without_a_body_ends_the_previous_key_at_once() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let new = rotated(&g, id(&rec), None);
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "invalid_api_key");
    assert_eq!(g.get_with(secret(&new), "/reports").status, 200);
    assert!(new["rotation"].is_null(), "no grace period, no rotation object: {new}");
}

#[test]
fn rotate_with_a_zero_grace_period_ends_the_previous_key_at_once() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let new = rotated(&g, id(&rec), Some(json!({"grace_period": "0s"})));
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "invalid_api_key");
    assert_eq!(g.get_with(secret(&new), "/reports").status, 200);
}

#[test]
fn rotate_applies_a_new_expires_at() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"expires_at": rfc3339(now() + time::Duration::days(3))}));
    assert_eq!(rec["expiration_state"], "expiring_soon");
    let want = now() + time::Duration::days(90);
    let new = rotated(&g, id(&rec), Some(json!({"expires_at": rfc3339(want)})));
    let got = parse_rfc3339(g.key(id(&rec))["expires_at"].as_str().expect("expires_at"));
    assert!((got - want).whole_seconds().abs() <= 1, "expires_at {got}, asked {want}");
    assert_eq!(new["expiration_state"], "valid", "{new}");
}

#[test]
fn a_grace_period_over_24h_or_unparsable_is_422() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    for bad in ["25h", "soon"] {
        check_field_error(&rotate(&g, id(&rec), Some(json!({"grace_period": bad}))), "grace_period");
    }
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "a refused rotation changed the secret");
    assert_eq!(g.key(id(&rec))["mark"], rec["mark"]);
    assert_eq!(rotate(&g, id(&rec), Some(json!({"grace_period": "24h"}))).status, 200, "24h is the maximum");
}

#[test]
fn rotating_a_revoked_key_is_409_invalid_state() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.act(id(&rec), "revoke").status, 200);
    check_admin_problem(&rotate(&g, id(&rec), Some(json!({"grace_period": "1h"}))), 409, "invalid_state");
    check_admin_problem(&rotate(&g, id(&rec), None), 409, "invalid_state");
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "key_revoked");
}

#[test]
fn revoking_during_a_grace_period_ends_both_secrets() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let new = rotated(&g, id(&rec), Some(json!({"grace_period": "1h"})));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let r = g.act(id(&rec), "revoke");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["rotation"].is_null(), "a revoked key has no grace period: {r:?}");
    check_proxy_problem(&g.get_with(secret(&new), "/reports"), 401, "key_revoked");
    let old = g.get_with(secret(&rec), "/reports");
    assert_eq!(old.status, 401, "the previous secret outlived the revoke: {old:?}");
    let code = old.json()["code"].as_str().unwrap_or_default().to_owned();
    assert!(matches!(code.as_str(), "key_revoked" | "invalid_api_key"), "previous secret after revoke: {old:?}");
}
