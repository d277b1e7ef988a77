//! `PATCH /v1/keys/{id}` (SPEC 2.2, 5): every editable field changes the record; allowlist, group,
//! permissions, role and rate-limit changes are in force in the proxy on the very next request after
//! the 200; fixed fields are 422, unknown fields and wrong types 400, a clashing name 409 `name_taken`;
//! `updated_at` moves.

use std::time::Duration;

use serde_json::{json, Value};

use crate::admin_helpers::{id, patch, patched, secret};
use crate::helpers::{
    check_admin_problem, check_field_error, check_proxy_problem, now, parse_rfc3339, percent_decode, poll,
    seen_headers, Gateway, RequestExt,
};

/// The record minus the fields that change on their own (usage, timestamps of use).
fn stable(rec: &Value) -> Value {
    let mut v = rec.clone();
    let m = v.as_object_mut().expect("record object");
    for f in ["secret", "usage", "last_used_at", "last_used_ip", "status", "expiration_state"] {
        m.remove(f);
    }
    v
}

#[test]
fn patch_name_changes_the_record() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let after = patched(&g, id(&rec), json!({"name": "renamed key"}));
    assert_eq!(after["name"], "renamed key");
    assert_eq!(g.key(id(&rec))["name"], "renamed key");
    let r = g.get_with(secret(&rec), "/reports");
    let seen = seen_headers(&r)["x-keygate-key-name"].as_str().map(percent_decode);
    assert_eq!(seen.as_deref(), Some("renamed key"), "the upstream sees the new name");
}

#[test]
fn patch_description_sets_it_and_null_clears_it() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"description": "first"}));
    assert_eq!(patched(&g, id(&rec), json!({"description": "second"}))["description"], "second");
    assert_eq!(g.key(id(&rec))["description"], "second");
    let cleared = patched(&g, id(&rec), json!({"description": null}));
    assert!(cleared["description"].is_null(), "{cleared}");
    assert!(g.key(id(&rec))["description"].is_null());
}

#[test]
fn patch_group_changes_the_record_and_the_next_proxied_request() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    check_proxy_problem(&g.get_with(secret(&rec), "/invoices"), 403, "permission_denied");
    let after = patched(&g, id(&rec), json!({"group": "billing"}));
    assert_eq!(
        (after["group"].as_str(), after["effective_permissions"].clone()),
        (Some("billing"), json!(["invoices:read"]))
    );
    assert_eq!(g.get_with(secret(&rec), "/invoices").status, 200, "the group grants invoices:read at once");
    let after = patched(&g, id(&rec), json!({"group": null}));
    assert!(after["group"].is_null(), "{after}");
    check_proxy_problem(&g.get_with(secret(&rec), "/invoices"), 403, "permission_denied");
}

#[test]
fn patch_permissions_changes_the_record_and_the_next_proxied_request() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    check_proxy_problem(&g.get_with(secret(&rec), "/invoices"), 403, "permission_denied");
    let after = patched(&g, id(&rec), json!({"permissions": ["invoices:read", "audit:peek"]}));
    assert_eq!(after["effective_permissions"], json!(["audit:peek", "invoices:read"]), "{after}");
    assert_eq!(g.get_with(secret(&rec), "/invoices").status, 200);
    let after = patched(&g, id(&rec), json!({"permissions": []}));
    assert_eq!(after["permissions"], json!([]), "{after}");
    check_proxy_problem(&g.get_with(secret(&rec), "/invoices"), 403, "permission_denied");
}

#[test]
fn patch_role_readonly_refuses_the_next_post() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.call("POST", "/reports").key(secret(&rec)).fetch().status, 200);
    assert_eq!(patched(&g, id(&rec), json!({"role": "readonly"}))["role"], "readonly");
    check_proxy_problem(&g.call("POST", "/reports").key(secret(&rec)).fetch(), 403, "permission_denied");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "GET stays allowed");
    assert_eq!(patched(&g, id(&rec), json!({"role": "admin"}))["role"], "admin");
    assert_eq!(g.call("POST", "/reports").key(secret(&rec)).fetch().status, 200);
}

#[test]
fn patch_ip_allowlist_applies_to_the_next_request() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let after = patched(&g, id(&rec), json!({"ip_allowlist": ["127.0.0.2/32"]}));
    assert_eq!(after["ip_allowlist"], json!(["127.0.0.2/32"]), "{after}");
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 403, "ip_not_allowed");
    assert_eq!(g.call_from("127.0.0.2", "GET", "/reports").key(secret(&rec)).fetch().status, 200);
    assert_eq!(patched(&g, id(&rec), json!({"ip_allowlist": []}))["ip_allowlist"], json!([]));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "an empty allowlist admits any address");
}

#[test]
fn patch_rate_limit_applies_to_the_next_requests() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    for _ in 0..3 {
        assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    }
    let after = patched(&g, id(&rec), json!({"rate_limit": {"per_minute": 1}}));
    assert_eq!(after["rate_limit"]["per_minute"], 1, "{after}");
    let first = g.get_with(secret(&rec), "/reports");
    assert!(matches!(first.status, 200 | 429), "{first:?}");
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 429, "rate_limited");
}

#[test]
fn patch_rate_limit_null_restores_the_environment_default_at_once() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"rate_limit": {"per_minute": 1}}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 429, "rate_limited");
    let after = patched(&g, id(&rec), json!({"rate_limit": null}));
    assert!(after["rate_limit"].is_null(), "{after}");
    // Two requests in a few seconds are far within the environment's 5000 per second (burst 5000).
    let r = g.get_with(secret(&rec), "/reports");
    assert_eq!(r.status, 200, "still limited after the limit was lifted to the environment's 5000/s: {r:?}");
}

#[test]
fn patch_customer_id_changes_the_record_and_the_forwarded_header() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(patched(&g, id(&rec), json!({"customer_id": "cust-42"}))["customer_id"], "cust-42");
    let r = g.get_with(secret(&rec), "/reports");
    assert_eq!(seen_headers(&r)["x-keygate-customer"], "cust-42");
    assert!(patched(&g, id(&rec), json!({"customer_id": null}))["customer_id"].is_null());
    let r = g.get_with(secret(&rec), "/reports");
    assert!(seen_headers(&r).get("x-keygate-customer").is_none(), "cleared customer still forwarded: {r:?}");
}

#[test]
fn patch_of_a_fixed_field_is_422_naming_it() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"environment": "production"}));
    let before = stable(&g.key(id(&rec)));
    for (field, value) in [
        ("expires_at", json!("2099-01-01T00:00:00Z")),
        ("environment", json!("staging")),
        ("kind", json!("service")),
        ("tenant", json!("globex")),
    ] {
        check_field_error(&patch(&g, id(&rec), json!({ field: value })), field);
    }
    assert_eq!(stable(&g.key(id(&rec))), before, "a refused patch changed the record");
}

#[test]
fn patch_with_an_unknown_field_is_400() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    check_admin_problem(&patch(&g, id(&rec), json!({"colour": "red"})), 400, "bad_request");
}

#[test]
fn patch_with_a_wrong_type_is_400() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    check_admin_problem(&patch(&g, id(&rec), json!({"name": 5})), 400, "bad_request");
    check_admin_problem(&patch(&g, id(&rec), json!({"ip_allowlist": "10.0.0.1"})), 400, "bad_request");
    assert_eq!(g.key(id(&rec))["name"], rec["name"]);
}

#[test]
fn renaming_to_another_live_keys_name_is_409_name_taken() {
    let g = Gateway::new();
    let first = g.new_key(json!({"tenant": "acme"}));
    let second = g.new_key(json!({"tenant": "acme"}));
    let r = patch(&g, id(&second), json!({"name": first["name"]}));
    check_admin_problem(&r, 409, "name_taken");
    assert_eq!(g.key(id(&second))["name"], second["name"], "the refused rename changed the name");
    // Another tenant's key may take that name.
    let other = g.new_key(json!({"tenant": "globex"}));
    assert_eq!(patched(&g, id(&other), json!({"name": first["name"]}))["name"], first["name"]);
}

#[test]
fn patch_moves_updated_at() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let created = parse_rfc3339(rec["updated_at"].as_str().expect("updated_at"));
    // Timestamps may have whole seconds: wait (bounded) until the clock is past the next second.
    poll(Duration::from_secs(3), || (now() > created + Duration::from_millis(1100)).then_some(()))
        .expect("the clock moves");
    let after = patched(&g, id(&rec), json!({"description": "touched"}));
    let updated = parse_rfc3339(after["updated_at"].as_str().expect("updated_at"));
    assert!(updated > created, "updated_at {updated} did not move past {created}");
    assert_eq!(after["created_at"], rec["created_at"], "created_at must not move");
    assert_eq!(g.key(id(&rec))["updated_at"], after["updated_at"]);
}
