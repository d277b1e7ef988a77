//! The admin API (SPEC 2.2, 5): create / get / revoke / disable / enable keys, tenants, validation, the
//! error shape, admin authentication, scoped and tenant-restricted tokens.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    check_admin_problem, check_field_error, check_proxy_problem, key_body, new_name, now, parse_rfc3339, poll, rfc3339,
    token_hash, yaml, Gateway, RequestExt,
};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

fn id(rec: &Value) -> &str {
    rec["id"].as_str().expect("id")
}

fn post_key(g: &Gateway, body: Value) -> crate::helpers::Resp {
    g.api("POST", "/v1/keys", Some(body))
}

// --- create and get --------------------------------------------------------------------------------------

#[test]
fn create_answers_201_with_the_documented_defaults() {
    let g = Gateway::new();
    let name = new_name("defaults");
    let r = post_key(&g, json!({"name": name, "tenant": "globex"}));
    assert_eq!(r.status, 201, "{r:?}");
    let created = r.json();
    let expected = json!({
        "name": name, "kind": "tenant", "tenant": "globex", "environment": "development", "role": "admin",
        "status": "active", "expiration_state": "valid", "rate_limit": null, "ip_allowlist": [],
        "last_used_at": null, "last_used_ip": null, "rotation": null, "expires_at": null, "group": null,
        "permissions": [], "effective_permissions": [], "customer_id": null, "description": null,
    });
    for (field, want) in expected.as_object().unwrap() {
        assert_eq!(created.get(field), Some(want), "field {field} of {created}");
    }
    assert_eq!(created["usage"]["requests_total"], 0);
    assert!(created["secret"].as_str().is_some_and(|s| s.starts_with("kg_dev_")), "{created}");
    for ts in ["created_at", "updated_at"] {
        parse_rfc3339(created[ts].as_str().unwrap_or_else(|| panic!("{ts} missing: {created}")));
    }
}

#[test]
fn get_returns_the_record_without_the_secret() {
    let g = Gateway::new();
    let mut created = g.new_key(json!({"description": "for the tests", "customer_id": "c-1"}));
    let got = g.key(id(&created));
    assert!(got.get("secret").is_none(), "{got}");
    created.as_object_mut().unwrap().remove("secret");
    assert_eq!(got, created, "GET differs from the create answer (less the secret)");
}

#[test]
fn get_of_an_unknown_id_is_404_not_found() {
    let g = Gateway::new();
    check_admin_problem(&g.api("GET", "/v1/keys/AAAAAAAAAAAAAAAA", None), 404, "not_found");
    check_admin_problem(&g.act("AAAAAAAAAAAAAAAA", "revoke"), 404, "not_found");
}

#[test]
fn effective_permissions_are_the_sorted_union_of_group_and_direct() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"group": "billing", "permissions": ["zoo:feed", "invoices:read", "accounts:list"]}));
    assert_eq!(rec["effective_permissions"], json!(["accounts:list", "invoices:read", "zoo:feed"]));
    assert_eq!(rec["group"], "billing");
}

#[test]
fn a_service_key_belongs_to_no_tenant() {
    let g = Gateway::new();
    let r = post_key(&g, json!({"name": new_name("svc"), "kind": "service", "environment": "production"}));
    assert_eq!(r.status, 201, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["kind"], "service");
    assert!(rec.get("tenant").is_some_and(Value::is_null), "{rec}");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
}

#[test]
fn a_service_key_with_a_tenant_is_422() {
    let g = Gateway::new();
    let r = post_key(&g, json!({"name": new_name("svc"), "kind": "service", "tenant": "acme"}));
    check_field_error(&r, "tenant");
}

#[test]
fn a_plain_date_expiry_means_the_end_of_that_day() {
    let g = Gateway::new();
    let day = (now() + time::Duration::days(30)).date();
    let text = format!("{:04}-{:02}-{:02}", day.year(), u8::from(day.month()), day.day());
    let rec = g.new_key(json!({"expires_at": text}));
    let at = parse_rfc3339(rec["expires_at"].as_str().expect("expires_at"));
    assert_eq!(at, parse_rfc3339(&format!("{text}T23:59:59Z")), "{}", rec["expires_at"]);
    assert_eq!(rec["expiration_state"], "valid");
}

#[test]
fn a_key_expiring_within_the_warning_window_is_expiring_soon() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"expires_at": rfc3339(now() + time::Duration::days(3))}));
    assert_eq!(rec["expiration_state"], "expiring_soon");
    assert_eq!(rec["status"], "active");
    let later = g.new_key(json!({"expires_at": rfc3339(now() + time::Duration::days(30))}));
    assert_eq!(later["expiration_state"], "valid");
}

// --- admin authentication ---------------------------------------------------------------------------------

#[test]
fn the_admin_api_without_a_token_is_401() {
    let g = Gateway::new();
    let r = g.api_as("POST", "/v1/keys", Some(key_body(json!({}))), None);
    check_admin_problem(&r, 401, "unauthorized");
    check_admin_problem(&g.api_as("GET", "/v1/tenants/acme", None, None), 401, "unauthorized");
}

#[test]
fn the_admin_api_with_a_wrong_token_is_401() {
    let g = Gateway::new();
    check_admin_problem(&g.api_as("GET", "/v1/tenants/acme", None, Some("wrong-token")), 401, "unauthorized");
    let r = g.admin_request("GET", "/v1/tenants/acme", None).header("authorization", g.admin_token.clone()).fetch();
    check_admin_problem(&r, 401, "unauthorized"); // the token without "Bearer "
}

#[test]
fn healthz_and_readyz_need_no_token() {
    let g = Gateway::new();
    assert_eq!(g.api_as("GET", "/healthz", None, None).status, 200);
    // Every listener is bound by now; allow the readiness flag a moment to catch up.
    let ready = poll(Duration::from_secs(2), || (g.api_as("GET", "/readyz", None, None).status == 200).then_some(()));
    assert!(ready.is_some(), "/readyz never answered 200 with every listener bound");
}

// --- revoke, disable, enable -------------------------------------------------------------------------------

#[test]
fn revoke_answers_the_revoked_record() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.act(id(&rec), "revoke");
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    assert_eq!((body["id"].as_str(), body["status"].as_str()), (Some(id(&rec)), Some("revoked")));
    assert!(body.get("secret").is_none(), "{body}");
    assert_eq!(g.key(id(&rec))["status"], "revoked");
}

#[test]
fn revoke_takes_effect_before_the_answer_returns() {
    let g = Gateway::new();
    for _ in 0..5 {
        let rec = g.new_key(json!({}));
        assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
        assert_eq!(g.act(id(&rec), "revoke").status, 200);
        check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "key_revoked");
    }
}

#[test]
fn disable_takes_effect_before_the_answer_returns() {
    let g = Gateway::new();
    for _ in 0..5 {
        let rec = g.new_key(json!({}));
        assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
        assert_eq!(g.act(id(&rec), "disable").status, 200);
        check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "key_inactive");
    }
}

#[test]
fn revoking_twice_is_409_already_revoked() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.act(id(&rec), "revoke").status, 200);
    check_admin_problem(&g.act(id(&rec), "revoke"), 409, "already_revoked");
}

#[test]
fn enabling_or_disabling_a_revoked_key_is_409_invalid_state() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.act(id(&rec), "revoke").status, 200);
    check_admin_problem(&g.act(id(&rec), "enable"), 409, "invalid_state");
    check_admin_problem(&g.act(id(&rec), "disable"), 409, "invalid_state");
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "key_revoked");
}

#[test]
fn disable_and_enable_round_trip() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.act(id(&rec), "disable");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("inactive")), "{r:?}");
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "key_inactive");
    let r = g.act(id(&rec), "enable");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("active")), "{r:?}");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
}

#[test]
fn disabling_an_inactive_key_is_200() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.act(id(&rec), "disable").status, 200);
    let r = g.act(id(&rec), "disable");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("inactive")), "{r:?}");
}

#[test]
fn enabling_an_active_key_is_200() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.act(id(&rec), "enable");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("active")), "{r:?}");
}

// --- tenants ----------------------------------------------------------------------------------------------

#[test]
fn a_new_tenant_gets_the_default_key_limit() {
    let g = Gateway::new();
    let r = g.api("POST", "/v1/tenants", Some(json!({"id": "initech", "name": "Initech"})));
    assert_eq!(r.status, 201, "{r:?}");
    let t = r.json();
    assert_eq!(
        (t["id"].as_str(), t["name"].as_str(), t["key_limit"].as_u64()),
        (Some("initech"), Some("Initech"), Some(100))
    );
}

#[test]
fn a_duplicate_tenant_is_409_conflict() {
    let g = Gateway::new();
    let r = g.api("POST", "/v1/tenants", Some(json!({"id": "acme", "name": "Acme again"})));
    check_admin_problem(&r, 409, "conflict");
}

#[test]
fn an_invalid_tenant_id_is_422() {
    let g = Gateway::new();
    for bad in ["Not_Valid", "-leading-dash", "x", "UPPER"] {
        let r = g.api("POST", "/v1/tenants", Some(json!({"id": bad, "name": "Bad"})));
        check_field_error(&r, "id");
    }
}

#[test]
fn a_tenant_without_a_name_is_422() {
    let g = Gateway::new();
    check_field_error(&g.api("POST", "/v1/tenants", Some(json!({"id": "nameless"}))), "name");
}

#[test]
fn get_tenant_shows_its_key_count() {
    let g = Gateway::new();
    let tenant = g.new_tenant(Some(5));
    g.new_key(json!({"tenant": tenant}));
    let r = g.api("GET", &format!("/v1/tenants/{tenant}"), None);
    assert_eq!(r.status, 200, "{r:?}");
    let t = r.json();
    assert_eq!(
        (t["id"].as_str(), t["key_limit"].as_u64(), t["keys_used"].as_u64()),
        (Some(tenant.as_str()), Some(5), Some(1)),
        "{t}"
    );
    assert!(t["name"].is_string(), "{t}");
    check_admin_problem(&g.api("GET", "/v1/tenants/no-such-tenant", None), 404, "not_found");
}

#[test]
fn the_tenant_key_limit_is_enforced() {
    let g = Gateway::new();
    let tenant = g.new_tenant(Some(2));
    g.new_key(json!({"tenant": tenant}));
    g.new_key(json!({"tenant": tenant}));
    let r = post_key(&g, key_body(json!({"tenant": tenant})));
    check_admin_problem(&r, 409, "key_limit_reached");
}

#[test]
fn revoked_keys_do_not_count_toward_the_key_limit() {
    let g = Gateway::new();
    let tenant = g.new_tenant(Some(2));
    let first = g.new_key(json!({"tenant": tenant}));
    g.new_key(json!({"tenant": tenant}));
    assert_eq!(g.api("GET", &format!("/v1/tenants/{tenant}"), None).json()["keys_used"], 2);
    assert_eq!(g.act(id(&first), "revoke").status, 200);
    assert_eq!(g.api("GET", &format!("/v1/tenants/{tenant}"), None).json()["keys_used"], 1);
    g.new_key(json!({"tenant": tenant}));
}

// --- validation --------------------------------------------------------------------------------------------

#[test]
fn a_missing_name_is_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, json!({"tenant": "acme"})), "name");
}

#[test]
fn a_name_outside_2_to_200_characters_is_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, json!({"name": "a", "tenant": "acme"})), "name");
    check_field_error(&post_key(&g, json!({"name": "a".repeat(201), "tenant": "acme"})), "name");
    assert_eq!(post_key(&g, json!({"name": "ab", "tenant": "acme"})).status, 201, "2 characters are fine");
}

#[test]
fn a_description_over_1000_characters_is_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, key_body(json!({"description": "d".repeat(1001)}))), "description");
}

#[test]
fn an_unknown_tenant_is_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, json!({"name": new_name("k"), "tenant": "nobody-here"})), "tenant");
}

#[test]
fn a_tenant_key_without_a_tenant_is_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, json!({"name": new_name("k")})), "tenant");
}

#[test]
fn an_unknown_field_is_400_bad_request() {
    let g = Gateway::new();
    check_admin_problem(&post_key(&g, key_body(json!({"colour": "red"}))), 400, "bad_request");
}

#[test]
fn a_body_that_is_not_json_is_400_bad_request() {
    let g = Gateway::new();
    let token = g.admin_token.clone();
    let r = g
        .admin_request("POST", "/v1/keys", Some(&token))
        .header("content-type", "application/json")
        .body("{not json")
        .fetch();
    check_admin_problem(&r, 400, "bad_request");
}

#[test]
fn a_field_of_the_wrong_type_is_400_bad_request() {
    let g = Gateway::new();
    check_admin_problem(&post_key(&g, json!({"name": 5, "tenant": "acme"})), 400, "bad_request");
    check_admin_problem(&post_key(&g, key_body(json!({"permissions": "invoices:read"}))), 400, "bad_request");
}

#[test]
fn unknown_enum_values_are_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, key_body(json!({"environment": "moon"}))), "environment");
    check_field_error(&post_key(&g, key_body(json!({"role": "superuser"}))), "role");
    check_field_error(&post_key(&g, key_body(json!({"kind": "robot"}))), "kind");
}

#[test]
fn an_unknown_group_is_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, key_body(json!({"group": "no-such-group"}))), "group");
}

#[test]
fn a_bad_ip_allowlist_entry_is_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, key_body(json!({"ip_allowlist": ["10.0.0.0/33"]}))), "ip_allowlist");
    check_field_error(&post_key(&g, key_body(json!({"ip_allowlist": ["not-an-ip"]}))), "ip_allowlist");
    assert_eq!(post_key(&g, key_body(json!({"ip_allowlist": ["10.0.0.1", "2001:db8::/32"]}))).status, 201);
}

#[test]
fn a_past_expiry_is_422() {
    let g = Gateway::new();
    let past = rfc3339(now() - time::Duration::hours(1));
    check_field_error(&post_key(&g, key_body(json!({"expires_at": past}))), "expires_at");
    check_field_error(&post_key(&g, key_body(json!({"expires_at": "yesterday"}))), "expires_at");
}

#[test]
fn a_bad_rate_limit_is_422() {
    let g = Gateway::new();
    check_field_error(&post_key(&g, key_body(json!({"rate_limit": {"per_second": 0}}))), "rate_limit");
}

#[test]
fn a_duplicate_name_in_the_same_tenant_is_409_name_taken() {
    let g = Gateway::new();
    let name = new_name("twice");
    g.new_key(json!({"name": name}));
    check_admin_problem(&post_key(&g, key_body(json!({"name": name}))), 409, "name_taken");
}

#[test]
fn the_same_name_is_allowed_in_another_tenant() {
    let g = Gateway::new();
    let name = new_name("shared");
    g.new_key(json!({"name": name, "tenant": "acme"}));
    g.new_key(json!({"name": name, "tenant": "globex"}));
}

#[test]
fn a_name_is_free_again_after_revoking_its_key() {
    let g = Gateway::new();
    let name = new_name("reuse");
    let first = g.new_key(json!({"name": name}));
    assert_eq!(g.act(id(&first), "revoke").status, 200);
    let second = g.new_key(json!({"name": name}));
    assert_ne!(first["id"], second["id"]);
}

#[test]
fn a_body_over_64_kib_is_413_payload_too_large() {
    let g = Gateway::new();
    let r = post_key(&g, key_body(json!({"description": "x".repeat(70 * 1024)})));
    check_admin_problem(&r, 413, "payload_too_large");
}

// --- scoped and tenant-restricted tokens ---------------------------------------------------------------------

const READER: &str = "reader-token-7f1c0a";
const GLOBEX: &str = "globex-admin-token-55e2";

fn with_scoped_tokens(c: &mut serde_yaml::Value) {
    c["admin"]["tokens"] = yaml(json!([
        {"name": "reader", "hash": token_hash(READER), "scopes": ["keys:read"]},
        {"name": "globex-admin", "hash": token_hash(GLOBEX), "scopes": ["keys:read", "keys:create", "keys:update"], "tenant": "globex"},
    ]));
}

#[test]
fn a_read_only_token_can_read_but_not_change() {
    let g = Gateway::start(with_scoped_tokens);
    let rec = g.new_key(json!({}));
    let r = g.api_as("GET", &format!("/v1/keys/{}", id(&rec)), None, Some(READER));
    assert_eq!(r.status, 200, "{r:?}");
    check_admin_problem(
        &g.api_as("POST", &format!("/v1/keys/{}/disable", id(&rec)), None, Some(READER)),
        403,
        "forbidden",
    );
    check_admin_problem(&g.api_as("POST", "/v1/keys", Some(key_body(json!({}))), Some(READER)), 403, "forbidden");
    assert_eq!(g.key(id(&rec))["status"], "active", "the forbidden disable changed the key");
}

#[test]
fn a_tenant_token_cannot_see_other_tenants_keys() {
    let g = Gateway::start(with_scoped_tokens);
    let acme = g.new_key(json!({"tenant": "acme"}));
    let globex = g.new_key(json!({"tenant": "globex"}));
    check_admin_problem(&g.api_as("GET", &format!("/v1/keys/{}", id(&acme)), None, Some(GLOBEX)), 404, "not_found");
    check_admin_problem(
        &g.api_as("POST", &format!("/v1/keys/{}/revoke", id(&acme)), None, Some(GLOBEX)),
        404,
        "not_found",
    );
    assert_eq!(g.key(id(&acme))["status"], "active");
    let r = g.api_as("GET", &format!("/v1/keys/{}", id(&globex)), None, Some(GLOBEX));
    assert_eq!(r.status, 200, "its own tenant's key: {r:?}");
}

#[test]
fn a_tenant_token_cannot_see_service_keys() {
    let g = Gateway::start(with_scoped_tokens);
    let svc = g.new_key(json!({"kind": "service"}));
    check_admin_problem(&g.api_as("GET", &format!("/v1/keys/{}", id(&svc)), None, Some(GLOBEX)), 404, "not_found");
}

#[test]
fn a_tenant_token_creates_only_its_own_tenants_keys() {
    let g = Gateway::start(with_scoped_tokens);
    let r = g.api_as("POST", "/v1/keys", Some(key_body(json!({"tenant": "acme"}))), Some(GLOBEX));
    check_admin_problem(&r, 403, "forbidden");
    let r = g.api_as("POST", "/v1/keys", Some(key_body(json!({"kind": "service"}))), Some(GLOBEX));
    check_admin_problem(&r, 403, "forbidden");
    let r = g.api_as("POST", "/v1/keys", Some(key_body(json!({"tenant": "nobody-here"}))), Some(GLOBEX));
    check_admin_problem(&r, 403, "forbidden"); // authorization comes before validation
    let own = g.new_key_as(GLOBEX, json!({"tenant": "globex"}));
    assert_eq!(own["tenant"], "globex");
}
