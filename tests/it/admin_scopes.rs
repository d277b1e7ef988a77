//! Admin tokens from `admin.tokens` (SPEC 5): each scope gates its endpoints (403 `forbidden` without
//! it), a missing or unknown token is 401 with the admin realm, and a token restricted to tenant
//! globex sees and touches only globex keys, entries and tenants — never another tenant's keys nor
//! service keys (404, not listed, not counted).

use serde_json::{json, Value};

use crate::admin_helpers::{audit_as, entries, get_query, id, id_set, list_as, secret};
use crate::helpers::{check_admin_problem, key_body, token_hash, yaml, Gateway, Resp};

const READER: &str = "scope-reader-3c9d41f0";
const CREATOR: &str = "scope-creator-a81e22b7";
const UPDATER: &str = "scope-updater-5f60c3d9";
const DELETER: &str = "scope-deleter-0b7e94aa";
const TENANTS: &str = "scope-tenants-91d2e6c4";
const AUDITOR: &str = "scope-auditor-6e1f08b3";
const GLOBEX: &str = "scope-globex-d47a15e2";

fn tokens(c: &mut serde_yaml::Value) {
    let t =
        |name: &str, token: &str, scopes: &[&str]| json!({"name": name, "hash": token_hash(token), "scopes": scopes});
    let mut globex =
        t("globex-admin", GLOBEX, &["keys:read", "keys:create", "keys:update", "keys:delete", "audit:read"]);
    globex["tenant"] = json!("globex");
    c["admin"]["tokens"] = yaml(json!([
        t("reader", READER, &["keys:read"]),
        t("creator", CREATOR, &["keys:create"]),
        t("updater", UPDATER, &["keys:read", "keys:update"]),
        t("deleter", DELETER, &["keys:delete"]),
        t("tenant-manager", TENANTS, &["tenants:manage"]),
        t("auditor", AUDITOR, &["audit:read"]),
        globex,
    ]));
}

fn as_(g: &Gateway, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    g.api_as(method, path, body, Some(token))
}

/// Every key mutation of SPEC 5 on `key_id`, with a body where one is needed.
fn key_mutations(key_id: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("PATCH", format!("/v1/keys/{key_id}"), Some(json!({"description": "changed"}))),
        ("POST", format!("/v1/keys/{key_id}/rotate"), Some(json!({"grace_period": "1h"}))),
        ("POST", format!("/v1/keys/{key_id}/revoke"), None),
        ("POST", format!("/v1/keys/{key_id}/disable"), None),
        ("POST", format!("/v1/keys/{key_id}/enable"), None),
        ("DELETE", format!("/v1/keys/{key_id}"), None),
    ]
}

/// The record minus what moves by itself.
fn stable(rec: &Value) -> Value {
    let mut v = rec.clone();
    for f in ["secret", "usage", "last_used_at", "last_used_ip"] {
        v.as_object_mut().expect("object").remove(f);
    }
    v
}

#[test]
fn a_keys_read_token_cannot_create_edit_rotate_or_delete() {
    let g = Gateway::start(tokens);
    let rec = g.new_key(json!({}));
    assert_eq!(as_(&g, READER, "GET", &format!("/v1/keys/{}", id(&rec)), None).status, 200);
    check_admin_problem(&as_(&g, READER, "POST", "/v1/keys", Some(key_body(json!({})))), 403, "forbidden");
    // The scope is checked before the id is looked at, even one that is not UTF-8.
    for (method, path, body) in key_mutations(id(&rec)).into_iter().chain(key_mutations("%FF")) {
        check_admin_problem(&as_(&g, READER, method, &path, body), 403, "forbidden");
    }
    assert_eq!(stable(&g.key(id(&rec))), stable(&rec), "a forbidden call changed the key");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
}

#[test]
fn a_keys_create_token_without_keys_read_cannot_read() {
    let g = Gateway::start(tokens);
    let rec = g.new_key_as(CREATOR, json!({}));
    check_admin_problem(&as_(&g, CREATOR, "GET", &format!("/v1/keys/{}", id(&rec)), None), 403, "forbidden");
    check_admin_problem(&as_(&g, CREATOR, "GET", "/v1/keys", None), 403, "forbidden");
    check_admin_problem(&as_(&g, CREATOR, "GET", "/v1/groups", None), 403, "forbidden");
}

#[test]
fn delete_needs_keys_delete() {
    let g = Gateway::start(tokens);
    let rec = g.new_key(json!({}));
    let path = format!("/v1/keys/{}", id(&rec));
    check_admin_problem(&as_(&g, UPDATER, "DELETE", &path, None), 403, "forbidden");
    assert_eq!(g.key(id(&rec))["id"], rec["id"], "still there");
    let r = as_(&g, DELETER, "DELETE", &path, None);
    assert_eq!(r.status, 204, "{r:?}");
    check_admin_problem(&g.api("GET", &path, None), 404, "not_found");
}

#[test]
fn keys_update_allows_edits_rotations_and_state_changes() {
    let g = Gateway::start(tokens);
    let rec = g.new_key(json!({}));
    let path = format!("/v1/keys/{}", id(&rec));
    let calls = [
        ("PATCH", path.clone(), Some(json!({"description": "changed"}))),
        ("POST", format!("{path}/rotate"), Some(json!({"grace_period": "1h"}))),
        ("POST", format!("{path}/disable"), None),
        ("POST", format!("{path}/enable"), None),
        ("POST", format!("{path}/revoke"), None),
    ];
    for (method, path, body) in calls {
        let r = as_(&g, UPDATER, method, &path, body);
        assert_eq!(r.status, 200, "{method} {path}: {r:?}");
    }
    let after = g.key(id(&rec));
    assert_eq!((after["description"].as_str(), after["status"].as_str()), (Some("changed"), Some("revoked")));
}

#[test]
fn tenant_management_needs_tenants_manage() {
    let g = Gateway::start(tokens);
    for token in [READER, CREATOR, UPDATER, AUDITOR] {
        let r = as_(&g, token, "POST", "/v1/tenants", Some(json!({"id": "initech", "name": "Initech"})));
        check_admin_problem(&r, 403, "forbidden");
        let r = as_(&g, token, "PATCH", "/v1/tenants/acme", Some(json!({"key_limit": 3})));
        check_admin_problem(&r, 403, "forbidden");
    }
    let r = as_(&g, TENANTS, "POST", "/v1/tenants", Some(json!({"id": "initech", "name": "Initech"})));
    assert_eq!(r.status, 201, "{r:?}");
    let r = as_(&g, TENANTS, "PATCH", "/v1/tenants/acme", Some(json!({"key_limit": 3})));
    assert_eq!((r.status, r.json()["key_limit"].as_u64()), (200, Some(3)), "{r:?}");
    assert_eq!(as_(&g, TENANTS, "GET", "/v1/tenants", None).status, 200);
    // tenants:manage does not give keys.
    check_admin_problem(&as_(&g, TENANTS, "GET", "/v1/keys", None), 403, "forbidden");
}

#[test]
fn the_audit_log_needs_audit_read() {
    let g = Gateway::start(tokens);
    g.new_key(json!({}));
    for token in [READER, CREATOR, UPDATER, DELETER, TENANTS] {
        check_admin_problem(&as_(&g, token, "GET", "/v1/audit", None), 403, "forbidden");
        check_admin_problem(&as_(&g, token, "GET", "/v1/audit/verify", None), 403, "forbidden");
    }
    assert_eq!(as_(&g, AUDITOR, "GET", "/v1/audit", None).status, 200);
    let r = as_(&g, AUDITOR, "GET", "/v1/audit/verify", None);
    assert_eq!((r.status, r.json()["ok"].as_bool()), (200, Some(true)), "{r:?}");
    check_admin_problem(&as_(&g, AUDITOR, "GET", "/v1/keys", None), 403, "forbidden");
}

#[test]
fn a_missing_or_unknown_token_is_401_with_the_admin_realm() {
    let g = Gateway::start(tokens);
    let rec = g.new_key(json!({}));
    let key_path = format!("/v1/keys/{}", id(&rec));
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1/keys".into(), None),
        ("POST", "/v1/keys".into(), Some(key_body(json!({})))),
        ("GET", key_path.clone(), None),
        ("PATCH", key_path.clone(), Some(json!({"description": "x"}))),
        ("POST", format!("{key_path}/revoke"), None),
        ("DELETE", key_path.clone(), None),
        ("GET", "/v1/tenants".into(), None),
        ("GET", "/v1/groups".into(), None),
        ("GET", "/v1/audit".into(), None),
        ("GET", "/v1/audit/verify".into(), None),
    ];
    for (method, path, body) in calls {
        check_admin_problem(&g.api_as(method, &path, body.clone(), None), 401, "unauthorized");
        check_admin_problem(&g.api_as(method, &path, body, Some("not-a-configured-token")), 401, "unauthorized");
    }
    assert_eq!(g.key(id(&rec))["status"], "active");
}

// --- the globex-restricted token ---------------------------------------------------------------------------

#[test]
fn a_tenant_token_gets_404_for_another_tenants_key_on_every_endpoint() {
    let g = Gateway::start(tokens);
    let acme = g.new_key(json!({"tenant": "acme"}));
    check_admin_problem(&as_(&g, GLOBEX, "GET", &format!("/v1/keys/{}", id(&acme)), None), 404, "not_found");
    for (method, path, body) in key_mutations(id(&acme)) {
        check_admin_problem(&as_(&g, GLOBEX, method, &path, body), 404, "not_found");
    }
    assert_eq!(stable(&g.key(id(&acme))), stable(&acme), "the acme key was touched");
    assert_eq!(g.get_with(secret(&acme), "/reports").status, 200);
}

#[test]
fn a_tenant_token_cannot_see_or_touch_service_keys() {
    let g = Gateway::start(tokens);
    let svc = g.new_key(json!({"kind": "service"}));
    check_admin_problem(&as_(&g, GLOBEX, "GET", &format!("/v1/keys/{}", id(&svc)), None), 404, "not_found");
    for (method, path, body) in key_mutations(id(&svc)) {
        check_admin_problem(&as_(&g, GLOBEX, method, &path, body), 404, "not_found");
    }
    let page = list_as(&g, GLOBEX, &[("limit", "500")]);
    assert!(!id_set(&page).contains(id(&svc)), "a service key is listed: {page}");
    let page = list_as(&g, GLOBEX, &[("kind", "service")]);
    assert_eq!(page["total"], 0, "{page}");
    assert_eq!(stable(&g.key(id(&svc))), stable(&svc));
}

#[test]
fn a_tenant_tokens_list_and_total_hold_only_its_tenants_keys() {
    let g = Gateway::start(tokens);
    for _ in 0..3 {
        g.new_key(json!({"tenant": "acme"}));
    }
    g.new_key(json!({"kind": "service"}));
    let own: Vec<Value> = (0..2).map(|_| g.new_key_as(GLOBEX, json!({"tenant": "globex"}))).collect();
    let page = list_as(&g, GLOBEX, &[]);
    assert_eq!(page["total"], 2, "total counts only globex keys: {page}");
    assert_eq!(id_set(&page), own.iter().map(|r| id(r).to_owned()).collect(), "{page}");
    let everything = list_as(&g, &g.admin_token.clone(), &[]);
    assert_eq!(everything["total"], 6, "the unrestricted token sees all: {everything}");
}

#[test]
fn a_tenant_token_asking_for_another_tenant_matches_nothing() {
    let g = Gateway::start(tokens);
    g.new_key(json!({"tenant": "acme"}));
    g.new_key_as(GLOBEX, json!({"tenant": "globex"}));
    let page = list_as(&g, GLOBEX, &[("tenant", "acme")]);
    assert_eq!((page["total"].as_u64(), page["items"].as_array().map(Vec::len)), (Some(0), Some(0)), "{page}");
}

#[test]
fn a_tenant_token_cannot_create_another_tenants_key_or_a_service_key() {
    let g = Gateway::start(tokens);
    let r = as_(&g, GLOBEX, "POST", "/v1/keys", Some(key_body(json!({"tenant": "acme"}))));
    check_admin_problem(&r, 403, "forbidden");
    let r = as_(&g, GLOBEX, "POST", "/v1/keys", Some(key_body(json!({"kind": "service"}))));
    check_admin_problem(&r, 403, "forbidden");
    let all = list_as(&g, &g.admin_token.clone(), &[]);
    assert_eq!(all["total"], 0, "a refused create made a key: {all}");
}

#[test]
fn a_tenant_token_sees_only_its_own_tenant() {
    let g = Gateway::start(tokens);
    let r = as_(&g, GLOBEX, "GET", "/v1/tenants", None);
    assert_eq!(r.status, 200, "{r:?}");
    let ids: Vec<Value> = r.json()["items"].as_array().expect("items").iter().map(|t| t["id"].clone()).collect();
    assert_eq!(ids, vec![json!("globex")], "{r:?}");
    check_admin_problem(&as_(&g, GLOBEX, "GET", "/v1/tenants/acme", None), 404, "not_found");
    assert_eq!(as_(&g, GLOBEX, "GET", "/v1/tenants/globex", None).status, 200);
}

#[test]
fn a_tenant_tokens_audit_list_holds_only_its_tenants_entries() {
    let g = Gateway::start(tokens);
    let acme = g.new_key(json!({"tenant": "acme"}));
    assert_eq!(g.act(id(&acme), "disable").status, 200);
    let own = g.new_key_as(GLOBEX, json!({"tenant": "globex"}));
    g.new_key(json!({"kind": "service"}));
    let page = audit_as(&g, GLOBEX, &[("limit", "500")]);
    let items = entries(&page);
    assert!(items.iter().any(|e| e["target"] == own["id"] && e["action"] == "key.create"), "{page}");
    assert!(items.iter().all(|e| e["tenant"] == "globex"), "another tenant's entry is visible: {page}");
    let r = get_query(&g, "/v1/audit", &[("key", id(&acme))], Some(GLOBEX));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["items"], json!([]), "acme history through the key filter: {r:?}");
}
