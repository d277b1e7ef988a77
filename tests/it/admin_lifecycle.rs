//! Key and tenant lifecycle in the admin API (SPEC 5): `DELETE` forgets a key but not its audit
//! history, disabling an expired key is refused, tenants list their `keys_used` and take a new
//! `key_limit`, service keys belong to no tenant, and a revoked key's name is free again.

use serde_json::json;

use crate::admin_helpers::{audit, entries, expired_key, id, id_set, list, secret};
use crate::helpers::{check_admin_problem, check_field_error, check_proxy_problem, key_body, new_name, Gateway};

#[test]
fn delete_answers_204_with_an_empty_body() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.api("DELETE", &format!("/v1/keys/{}", id(&rec)), None);
    assert_eq!(r.status, 204, "{r:?}");
    assert!(r.text.is_empty(), "204 with a body: {r:?}");
}

#[test]
fn a_deleted_key_is_gone_from_the_api_and_the_proxy() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    assert_eq!(g.api("DELETE", &format!("/v1/keys/{}", id(&rec)), None).status, 204);
    check_admin_problem(&g.api("GET", &format!("/v1/keys/{}", id(&rec)), None), 404, "not_found");
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "invalid_api_key");
    assert!(!id_set(&list(&g, &[("limit", "500")])).contains(id(&rec)), "a deleted key is still listed");
    check_admin_problem(&g.api("DELETE", &format!("/v1/keys/{}", id(&rec)), None), 404, "not_found");
}

#[test]
fn the_audit_log_keeps_a_deleted_keys_history() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.api("DELETE", &format!("/v1/keys/{}", id(&rec)), None).status, 204);
    let page = audit(&g, &[("key", id(&rec))]);
    let actions: Vec<String> =
        entries(&page).iter().map(|e| e["action"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(actions, ["key.delete", "key.create"], "{page}");
    assert!(entries(&page).iter().all(|e| e["target"] == rec["id"]), "{page}");
}

#[test]
fn disabling_or_enabling_an_expired_key_is_409_invalid_state() {
    let g = Gateway::new();
    let rec = expired_key(&g, json!({}));
    check_admin_problem(&g.act(id(&rec), "disable"), 409, "invalid_state");
    check_admin_problem(&g.act(id(&rec), "enable"), 409, "invalid_state");
    assert_eq!(g.key(id(&rec))["status"], "expired");
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "key_expired");
}

#[test]
fn the_tenant_list_shows_every_tenant_with_keys_used() {
    let g = Gateway::new();
    let t = g.new_tenant(Some(7));
    g.new_key(json!({"tenant": t}));
    g.new_key(json!({"tenant": t}));
    let revoked = g.new_key(json!({"tenant": t}));
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    g.new_key(json!({"tenant": "globex"}));
    let r = g.api("GET", "/v1/tenants", None);
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    let items = body["items"].as_array().unwrap_or_else(|| panic!("no items: {body}"));
    let find = |tid: &str| {
        items.iter().find(|i| i["id"] == tid).cloned().unwrap_or_else(|| panic!("tenant {tid} not listed: {body}"))
    };
    let mine = find(&t);
    assert_eq!((mine["key_limit"].as_u64(), mine["keys_used"].as_u64()), (Some(7), Some(2)), "{mine}");
    assert!(mine["name"].is_string(), "{mine}");
    assert_eq!(find("globex")["keys_used"], 1);
    assert_eq!(find("acme")["keys_used"], 0);
}

#[test]
fn raising_the_key_limit_lets_a_refused_create_succeed() {
    let g = Gateway::new();
    let t = g.new_tenant(Some(1));
    g.new_key(json!({"tenant": t}));
    check_admin_problem(&g.api("POST", "/v1/keys", Some(key_body(json!({"tenant": t})))), 409, "key_limit_reached");
    let r = g.api("PATCH", &format!("/v1/tenants/{t}"), Some(json!({"key_limit": 2})));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!((r.json()["key_limit"].as_u64(), r.json()["keys_used"].as_u64()), (Some(2), Some(1)), "{r:?}");
    g.new_key(json!({"tenant": t}));
    check_admin_problem(&g.api("POST", "/v1/keys", Some(key_body(json!({"tenant": t})))), 409, "key_limit_reached");
}

#[test]
fn patching_an_unknown_tenant_is_404() {
    let g = Gateway::new();
    let r = g.api("PATCH", "/v1/tenants/no-such-tenant", Some(json!({"key_limit": 5})));
    check_admin_problem(&r, 404, "not_found");
}

#[test]
fn a_service_key_without_a_tenant_is_created_and_works() {
    let g = Gateway::new();
    let r = g.api("POST", "/v1/keys", Some(json!({"name": new_name("svc"), "kind": "service"})));
    assert_eq!(r.status, 201, "{r:?}");
    let rec = r.json();
    assert_eq!((rec["kind"].as_str(), rec["tenant"].is_null()), (Some("service"), true), "{rec}");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "{rec}");
}

#[test]
fn a_service_key_with_a_tenant_is_422() {
    let g = Gateway::new();
    let r = g.api("POST", "/v1/keys", Some(json!({"name": new_name("svc"), "kind": "service", "tenant": "acme"})));
    check_field_error(&r, "tenant");
}

#[test]
fn a_name_is_free_again_after_its_key_is_revoked() {
    let g = Gateway::new();
    let name = new_name("again");
    let first = g.new_key(json!({"name": name}));
    check_admin_problem(&g.api("POST", "/v1/keys", Some(key_body(json!({"name": name})))), 409, "name_taken");
    assert_eq!(g.act(id(&first), "revoke").status, 200);
    let second = g.new_key(json!({"name": name}));
    assert_ne!(second["id"], first["id"]);
    assert_eq!(g.get_with(secret(&second), "/reports").status, 200);
}
