//! `GET /.well-known/keygate/whoami` (SPEC 4.5): answered by the gateway itself after every check of 4.1,
//! spending one request of the key's rate limit.

use serde_json::{json, Value};

use crate::helpers::{check_proxy_problem, closed_addr, yaml, Gateway, RequestExt, WHOAMI};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

fn id(rec: &Value) -> &str {
    rec["id"].as_str().expect("id")
}

#[test]
fn whoami_describes_the_key() {
    let g = Gateway::new();
    let rec = g.new_key(json!({
        "environment": "development", "group": "billing", "permissions": ["zebra:feed"], "role": "readonly",
        "rate_limit": {"per_hour": 100}
    }));
    let r = g.get_with(secret(&rec), WHOAMI);
    assert_eq!(r.status, 200, "{r:?}");
    let me = r.json();
    assert_eq!(me["id"], id(&rec));
    assert_eq!(me["name"], rec["name"]);
    assert_eq!(me["kind"], "tenant");
    assert_eq!(me["tenant"], "acme");
    assert_eq!(me["environment"], "development");
    assert_eq!(me["role"], "readonly");
    assert_eq!(me["effective_permissions"], json!(["invoices:read", "zebra:feed"]));
    assert!(me.get("expires_at").is_some_and(Value::is_null), "expires_at: null for a key that never expires: {me}");
    assert_eq!(me["rate_limit"]["limit"], 100);
    assert_eq!(me["rate_limit"]["period_seconds"], 3600);
    assert!(me.get("secret").is_none() && !r.text.contains(secret(&rec)), "whoami shows the key: {me}");
}

#[test]
fn whoami_spends_one_request_of_the_rate_limit() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"rate_limit": {"per_minute": 10, "burst": 3}}));
    let me = g.get_with(secret(&rec), WHOAMI).json();
    assert_eq!(me["rate_limit"]["limit"], 10);
    assert_eq!(me["rate_limit"]["period_seconds"], 60);
    assert_eq!(me["rate_limit"]["remaining"], 2, "{me}");
    let reset = me["rate_limit"]["reset_seconds"].as_u64().expect("reset_seconds");
    assert!((5..=6).contains(&reset), "full again in 6 s, got {reset}");
    let me = g.get_with(secret(&rec), WHOAMI).json();
    assert_eq!(me["rate_limit"]["remaining"], 1, "{me}");
    g.get_with(secret(&rec), WHOAMI);
    check_proxy_problem(&g.get_with(secret(&rec), WHOAMI), 429, "rate_limited");
}

#[test]
fn whoami_never_reaches_an_upstream() {
    let dead = closed_addr();
    let g = Gateway::start(move |c| c["environments"]["production"]["upstreams"] = yaml(json!([dead])));
    let rec = g.new_key(json!({}));
    let r = g.get_with(secret(&rec), WHOAMI);
    assert_eq!(r.status, 200, "whoami needs no upstream (this one is down): {r:?}");
    assert!(r.json().get("upstream").is_none(), "an echo answer: {r:?}");
    assert!(r.header("x-request-id").is_some());
}

#[test]
fn whoami_accepts_bearer_and_x_api_key() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let a = g.call("GET", WHOAMI).key(secret(&rec)).fetch();
    let b = g.call("GET", WHOAMI).bearer(secret(&rec)).fetch();
    assert_eq!((a.status, b.status), (200, 200), "{a:?} {b:?}");
    assert_eq!(a.json()["id"], id(&rec));
    assert_eq!(b.json()["id"], id(&rec));
}

#[test]
fn whoami_with_a_revoked_key_is_key_revoked() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.act(id(&rec), "revoke").status, 200);
    check_proxy_problem(&g.get_with(secret(&rec), WHOAMI), 401, "key_revoked");
}

#[test]
fn whoami_without_a_key_is_missing_api_key() {
    let g = Gateway::new();
    check_proxy_problem(&g.call("GET", WHOAMI).fetch(), 401, "missing_api_key");
}

#[test]
fn whoami_passes_the_ip_allowlist_first() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"ip_allowlist": ["127.0.0.2/32"]}));
    check_proxy_problem(&g.get_with(secret(&rec), WHOAMI), 403, "ip_not_allowed");
    assert_eq!(g.call_from("127.0.0.2", "GET", WHOAMI).key(secret(&rec)).fetch().status, 200);
}

#[test]
fn whoami_shows_tenant_null_for_a_service_key_and_the_expiry() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"kind": "service", "expires_at": "2999-01-02T03:04:05Z"}));
    let me = g.get_with(secret(&rec), WHOAMI).json();
    assert_eq!(me["kind"], "service");
    assert!(me.get("tenant").is_some_and(Value::is_null), "{me}");
    let at = crate::helpers::parse_rfc3339(me["expires_at"].as_str().expect("expires_at"));
    assert_eq!(at, crate::helpers::parse_rfc3339("2999-01-02T03:04:05Z"));
}
