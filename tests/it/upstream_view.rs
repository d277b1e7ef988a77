//! What the upstream sees (SPEC 4.3): the key header removed, identity headers added and unforgeable,
//! `X-Forwarded-For` extended, `X-Request-Id` kept or replaced, path and query untouched; and the client IP
//! taken from `X-Forwarded-For` only behind a trusted proxy.

use serde_json::{json, Value};

use crate::helpers::{echoed, percent_decode, seen_headers, yaml, Gateway, RequestExt};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

fn id(rec: &Value) -> &str {
    rec["id"].as_str().expect("id")
}

fn h<'a>(headers: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(Value::as_str)
}

fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[test]
fn x_api_key_is_removed() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.get_with(secret(&rec), "/reports");
    let headers = seen_headers(&r);
    assert!(!headers.contains_key("x-api-key"), "{headers:?}");
    assert!(!r.text.contains(secret(&rec)), "the key reached the upstream");
}

#[test]
fn authorization_carrying_the_key_is_removed() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").bearer(secret(&rec)).fetch();
    let headers = seen_headers(&r);
    assert!(!headers.contains_key("authorization"), "{headers:?}");
    assert!(!r.text.contains(secret(&rec)), "the key reached the upstream");
}

#[test]
fn identity_headers_are_added() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"customer_id": "cust-9", "environment": "staging"}));
    let headers = seen_headers(&g.get_with(secret(&rec), "/reports"));
    assert_eq!(h(&headers, "x-keygate-key-id"), Some(id(&rec)));
    assert_eq!(h(&headers, "x-keygate-environment"), Some("staging"));
    assert_eq!(h(&headers, "x-keygate-tenant"), Some("acme"));
    assert_eq!(h(&headers, "x-keygate-customer"), Some("cust-9"));
    assert_eq!(h(&headers, "x-keygate-key-name").map(percent_decode).as_deref(), rec["name"].as_str());
}

#[test]
fn key_name_header_is_percent_encoded() {
    let g = Gateway::new();
    let name = format!("billing bot {}", crate::helpers::random_alnum(6));
    let rec = g.new_key(json!({"name": name}));
    let headers = seen_headers(&g.get_with(secret(&rec), "/reports"));
    let sent = h(&headers, "x-keygate-key-name").expect("X-Keygate-Key-Name");
    assert!(sent.contains("%20") && !sent.contains(' '), "not percent-encoded: {sent:?}");
    assert_eq!(percent_decode(sent), name);
}

#[test]
fn service_keys_carry_no_tenant_and_no_customer_header() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"kind": "service"}));
    let headers = seen_headers(&g.get_with(secret(&rec), "/reports"));
    assert_eq!(h(&headers, "x-keygate-key-id"), Some(id(&rec)));
    assert!(!headers.contains_key("x-keygate-tenant"), "{headers:?}");
    assert!(!headers.contains_key("x-keygate-customer"), "{headers:?}");
}

#[test]
fn client_sent_keygate_headers_are_dropped() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"kind": "service"}));
    let r = g
        .call("GET", "/reports")
        .key(secret(&rec))
        .header("X-Keygate-Key-Id", "AAAAAAAAAAAAAAAA")
        .header("X-Keygate-Tenant", "globex")
        .header("X-Keygate-Customer", "forged")
        .header("X-Keygate-Environment", "development")
        .header("X-Keygate-Role", "admin")
        .fetch();
    let headers = seen_headers(&r);
    assert_eq!(h(&headers, "x-keygate-key-id"), Some(id(&rec)));
    assert_eq!(h(&headers, "x-keygate-environment"), Some("production"));
    for forged in ["x-keygate-tenant", "x-keygate-customer", "x-keygate-role"] {
        assert!(!headers.contains_key(forged), "{forged} forged through: {headers:?}");
    }
}

#[test]
fn forged_keygate_headers_are_dropped_on_public_routes_too() {
    let g = Gateway::new();
    let r =
        g.call("GET", "/status").header("X-Keygate-Key-Id", "AAAAAAAAAAAAAAAA").header("X-Keygate-Tenant", "x").fetch();
    let headers = seen_headers(&r);
    assert!(!headers.contains_key("x-keygate-key-id") && !headers.contains_key("x-keygate-tenant"), "{headers:?}");
}

fn forwarded_for(headers: &serde_json::Map<String, Value>) -> Vec<String> {
    h(headers, "x-forwarded-for")
        .unwrap_or_else(|| panic!("no X-Forwarded-For upstream: {headers:?}"))
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn x_forwarded_for_gets_the_peer_appended() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call_from("127.0.0.2", "GET", "/reports").key(secret(&rec)).header("x-forwarded-for", "10.9.9.9").fetch();
    assert_eq!(forwarded_for(&seen_headers(&r)), ["10.9.9.9", "127.0.0.2"]);
    let r = g.call_from("127.0.0.3", "GET", "/reports").key(secret(&rec)).fetch();
    assert_eq!(forwarded_for(&seen_headers(&r)), ["127.0.0.3"]);
}

#[test]
fn a_sane_request_id_is_kept() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("x-request-id", "abc-123.x_Y").fetch();
    assert_eq!(h(&seen_headers(&r), "x-request-id"), Some("abc-123.x_Y"));
    assert_eq!(r.header("x-request-id").as_deref(), Some("abc-123.x_Y"), "the client sees its own id back");
    let long = "a".repeat(128);
    let r = g.call("GET", "/reports").key(secret(&rec)).header("x-request-id", &long).fetch();
    assert_eq!(h(&seen_headers(&r), "x-request-id"), Some(long.as_str()), "128 characters are still sane");
}

#[test]
fn an_insane_request_id_is_replaced() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    for bad in ["a".repeat(129), "has space".to_string(), "semi;colon".to_string(), "slash/id".to_string()] {
        let r = g.call("GET", "/reports").key(secret(&rec)).header("x-request-id", bad.as_str()).fetch();
        let upstream = h(&seen_headers(&r), "x-request-id").map(str::to_string).expect("an X-Request-Id upstream");
        assert_ne!(upstream, bad, "kept an insane X-Request-Id");
        assert!(!upstream.is_empty());
        assert_eq!(r.header("x-request-id"), Some(upstream), "client and upstream see the same id");
    }
}

#[test]
fn a_generated_request_id_is_sent_upstream_and_back() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.get_with(secret(&rec), "/reports");
    let upstream = h(&seen_headers(&r), "x-request-id").map(str::to_string).expect("an X-Request-Id upstream");
    assert!(sane(&upstream), "a generated id should itself be sane: {upstream:?}");
    assert_eq!(r.header("x-request-id"), Some(upstream));
}

#[test]
fn path_query_and_method_are_preserved() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call("POST", "/reports/1/a%20b?x=1&y=two&x=3").key(secret(&rec)).body("{}").fetch();
    let seen = echoed(&r);
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/reports/1/a%20b");
    assert_eq!(seen["query"], "x=1&y=two&x=3");
    let seen = echoed(&g.get_with(secret(&rec), "/reports"));
    assert_eq!(seen["query"], "", "no query string");
}

#[test]
fn the_upstream_status_is_passed_through() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("x-echo-status", "418").fetch();
    assert_eq!(r.status, 418, "{r:?}");
    assert!(r.header("x-request-id").is_some(), "X-Request-Id on a proxied answer");
}

// --- the client IP behind trusted proxies ----------------------------------------------------------------

#[test]
fn x_forwarded_for_from_a_trusted_proxy_sets_the_client_ip() {
    let g = Gateway::start(|c| c["proxy"]["trusted_proxies"] = yaml(json!(["127.0.0.1/32"])));
    let rec = g.new_key(json!({"ip_allowlist": ["10.1.2.3/32"]}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("x-forwarded-for", "10.1.2.3").fetch();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(g.key(id(&rec))["last_used_ip"], "10.1.2.3");
}

#[test]
fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"ip_allowlist": ["10.1.2.3/32"]}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("x-forwarded-for", "10.1.2.3").fetch();
    crate::helpers::check_proxy_problem(&r, 403, "ip_not_allowed");
}

#[test]
fn the_client_ip_is_the_rightmost_untrusted_forwarded_entry() {
    let g = Gateway::start(|c| c["proxy"]["trusted_proxies"] = yaml(json!(["127.0.0.1/32", "10.0.0.0/8"])));
    let rec = g.new_key(json!({}));
    let r = g
        .call("GET", "/reports")
        .key(secret(&rec))
        .header("x-forwarded-for", "203.0.113.9, 192.0.2.7, 10.1.1.1")
        .fetch();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(g.key(id(&rec))["last_used_ip"], "192.0.2.7");
}

#[test]
fn the_leftmost_entry_wins_when_every_entry_is_trusted() {
    let g = Gateway::start(|c| c["proxy"]["trusted_proxies"] = yaml(json!(["127.0.0.1/32", "10.0.0.0/8"])));
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("x-forwarded-for", "10.0.0.5, 10.1.1.1").fetch();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(g.key(id(&rec))["last_used_ip"], "10.0.0.5");
}

#[test]
fn an_unparsable_forwarded_header_falls_back_to_the_peer() {
    let g = Gateway::start(|c| c["proxy"]["trusted_proxies"] = yaml(json!(["127.0.0.1/32"])));
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("x-forwarded-for", "not-an-ip").fetch();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(g.key(id(&rec))["last_used_ip"], "127.0.0.1");
}

#[test]
fn an_authorization_header_that_did_not_carry_the_key_is_kept() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("authorization", "Basic dXNlcjpwYXNz").fetch();
    let headers = seen_headers(&r);
    assert_eq!(h(&headers, "authorization"), Some("Basic dXNlcjpwYXNz"), "{headers:?}");
    assert!(!headers.contains_key("x-api-key"), "{headers:?}");
}

#[test]
fn configured_key_headers_are_the_only_ones_read_and_are_stripped() {
    let g = Gateway::start(|c| c["proxy"]["key_headers"] = yaml(json!(["x-custom-key"])));
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").header("x-custom-key", secret(&rec)).fetch();
    let headers = seen_headers(&r);
    assert_eq!(h(&headers, "x-keygate-key-id"), Some(id(&rec)));
    assert!(!headers.contains_key("x-custom-key"), "{headers:?}");
    let r = g.get_with(secret(&rec), "/reports");
    crate::helpers::check_proxy_problem(&r, 401, "missing_api_key"); // x-api-key is not a key header here
}
