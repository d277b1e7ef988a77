//! One test per row of SPEC 4.1 (the order of checks and their answers), plus the error-body rules of
//! 4.2: problem+json, `WWW-Authenticate` on 401, `Retry-After` on 429, `X-Request-Id` on every answer, and
//! never an echo of the presented key.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    add_route, check_proxy_problem, closed_addr, echoed, forge_key, now, poll, random_alnum, rfc3339, seen_headers,
    yaml, FakeMode, FakeUpstream, Gateway, KeyParts, RequestExt,
};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

fn id(rec: &Value) -> &str {
    rec["id"].as_str().expect("id")
}

fn with_hosts(c: &mut serde_yaml::Value) {
    c["environments"]["production"]["hosts"] = yaml(json!(["api.kg.test"]));
    c["environments"]["staging"]["hosts"] = yaml(json!(["staging.kg.test"]));
}

// --- unknown_host ------------------------------------------------------------------------------------

#[test]
fn unknown_host_is_404_when_hosts_are_configured() {
    let g = Gateway::start(with_hosts);
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("host", "other.kg.test").fetch();
    check_proxy_problem(&r, 404, "unknown_host");
    let r = g.call("GET", "/reports").header("host", "other.kg.test").fetch();
    check_proxy_problem(&r, 404, "unknown_host"); // before any key check
    let r = g.call("GET", "/status").header("host", "other.kg.test").fetch();
    check_proxy_problem(&r, 404, "unknown_host"); // before the public-route check
    let r = g.call("GET", "/reports").key(secret(&rec)).header("host", "api.kg.test").fetch();
    assert_eq!(echoed(&r)["upstream"], "production", "a configured host still works");
}

#[test]
fn any_host_is_accepted_when_no_hosts_are_configured() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("host", "whatever.example").fetch();
    assert_eq!(echoed(&r)["upstream"], "production");
}

// --- public routes ---------------------------------------------------------------------------------------

#[test]
fn public_route_is_proxied_without_a_key() {
    let g = Gateway::new();
    let r = g.call("GET", "/status").fetch();
    let seen = echoed(&r);
    assert_eq!(seen["path"], "/status");
    let r = g.call("GET", "/status/deep/path").fetch();
    assert_eq!(echoed(&r)["path"], "/status/deep/path", "a route matches its sub-paths");
}

#[test]
fn public_route_strips_key_headers_and_adds_only_the_environment_header() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"customer_id": "cust-1"}));
    let r = g.call("GET", "/status").key(secret(&rec)).bearer(secret(&rec)).fetch();
    let h = seen_headers(&r);
    assert!(!h.contains_key("x-api-key"), "x-api-key reached the upstream: {h:?}");
    assert!(!h.contains_key("authorization"), "authorization reached the upstream: {h:?}");
    assert_eq!(h.get("x-keygate-environment"), Some(&json!("production")), "{h:?}");
    let identity: Vec<&String> =
        h.keys().filter(|k| k.starts_with("x-keygate-") && *k != "x-keygate-environment").collect();
    assert!(identity.is_empty(), "identity headers on a public route: {identity:?}");
    assert!(!r.text.contains(secret(&rec)), "the key reached the upstream");
    assert_eq!(g.key(id(&rec))["usage"]["requests_total"], 0, "no key is read on a public route");
}

#[test]
fn public_route_does_not_read_even_an_invalid_key() {
    let g = Gateway::new();
    let r = g.call("GET", "/status").key("kg_prod_garbage").fetch();
    assert_eq!(echoed(&r)["upstream"], "production");
}

// --- too_many_failed_attempts -----------------------------------------------------------------------------

fn failed_auth_limit_3(c: &mut serde_yaml::Value) {
    c["proxy"]["failed_auth_limit"] = yaml(json!({"per_minute": 3}));
}

fn bogus_key() -> String {
    forge_key("kg", "prod", &random_alnum(16), &random_alnum(32))
}

#[test]
fn too_many_failed_attempts_after_the_failed_auth_limit() {
    let g = Gateway::start(failed_auth_limit_3);
    let bogus = bogus_key();
    let answers: Vec<_> = (0..4).map(|_| g.call_from("127.0.0.6", "GET", "/reports").key(&bogus).fetch()).collect();
    let codes: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(codes, [401, 401, 401, 429], "{answers:?}");
    for r in &answers[..3] {
        check_proxy_problem(r, 401, "invalid_api_key");
    }
    check_proxy_problem(&answers[3], 429, "too_many_failed_attempts");
}

#[test]
fn a_blocked_address_is_refused_even_with_a_valid_key() {
    let g = Gateway::start(failed_auth_limit_3);
    let good = g.new_key(json!({}));
    assert_eq!(g.call_from("127.0.0.6", "GET", "/reports").key(secret(&good)).fetch().status, 200);
    let bogus = bogus_key();
    for _ in 0..3 {
        check_proxy_problem(&g.call_from("127.0.0.6", "GET", "/reports").key(&bogus).fetch(), 401, "invalid_api_key");
    }
    let r = g.call_from("127.0.0.6", "GET", "/reports").key(secret(&good)).fetch();
    check_proxy_problem(&r, 429, "too_many_failed_attempts");
}

#[test]
fn failed_auth_limit_is_per_client_address() {
    let g = Gateway::start(failed_auth_limit_3);
    let bogus = bogus_key();
    for _ in 0..4 {
        g.call_from("127.0.0.6", "GET", "/reports").key(&bogus).fetch();
    }
    check_proxy_problem(
        &g.call_from("127.0.0.6", "GET", "/reports").key(&bogus).fetch(),
        429,
        "too_many_failed_attempts",
    );
    let good = g.new_key(json!({}));
    assert_eq!(g.call_from("127.0.0.7", "GET", "/reports").key(secret(&good)).fetch().status, 200);
    check_proxy_problem(&g.call_from("127.0.0.7", "GET", "/reports").key(&bogus).fetch(), 401, "invalid_api_key");
}

#[test]
fn only_invalid_api_key_answers_count_toward_the_failed_auth_limit() {
    let g = Gateway::start(failed_auth_limit_3);
    let good = g.new_key(json!({}));
    let revoked = g.new_key(json!({}));
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    for _ in 0..5 {
        check_proxy_problem(&g.call_from("127.0.0.8", "GET", "/reports").fetch(), 401, "missing_api_key");
        let r = g.call_from("127.0.0.8", "GET", "/reports").key(secret(&revoked)).fetch();
        check_proxy_problem(&r, 401, "key_revoked");
    }
    assert_eq!(g.call_from("127.0.0.8", "GET", "/reports").key(secret(&good)).fetch().status, 200);
}

// --- missing_api_key, ambiguous_api_key -------------------------------------------------------------------------

#[test]
fn missing_api_key_without_a_key_header() {
    let g = Gateway::new();
    let body = check_proxy_problem(&g.call("GET", "/reports").fetch(), 401, "missing_api_key");
    assert_eq!(body["status"], 401);
    let r = g.call("GET", "/reports").header("x-other", "kg_prod_x").fetch();
    check_proxy_problem(&r, 401, "missing_api_key");
}

#[test]
fn two_different_keys_in_two_headers_are_ambiguous() {
    let g = Gateway::new();
    let (a, b) = (g.new_key(json!({})), g.new_key(json!({})));
    let r = g.call("GET", "/reports").key(secret(&a)).bearer(secret(&b)).fetch();
    check_proxy_problem(&r, 401, "ambiguous_api_key");
    assert!(!r.text.contains(secret(&a)) && !r.text.contains(secret(&b)), "{r:?}");
    assert_eq!(g.key(id(&a))["usage"]["requests_total"], 0);
    assert_eq!(g.key(id(&b))["usage"]["requests_total"], 0);
}

#[test]
fn a_repeated_key_header_with_different_keys_is_ambiguous() {
    let g = Gateway::new();
    let (a, b) = (g.new_key(json!({})), g.new_key(json!({})));
    let r = g.call("GET", "/reports").key(secret(&a)).key(secret(&b)).fetch();
    check_proxy_problem(&r, 401, "ambiguous_api_key");
}

#[test]
fn comma_joined_keys_in_one_header_are_ambiguous() {
    let g = Gateway::new();
    let (a, b) = (g.new_key(json!({})), g.new_key(json!({})));
    let r = g.call("GET", "/reports").header("x-api-key", format!("{}, {}", secret(&a), secret(&b))).fetch();
    check_proxy_problem(&r, 401, "ambiguous_api_key");
}

#[test]
fn the_same_key_twice_counts_as_one() {
    let g = Gateway::new();
    let a = g.new_key(json!({}));
    let r = g.call("GET", "/reports").key(secret(&a)).bearer(secret(&a)).fetch();
    let h = seen_headers(&r);
    assert_eq!(h.get("x-keygate-key-id"), Some(&json!(id(&a))));
    assert!(!h.contains_key("x-api-key") && !h.contains_key("authorization"), "{h:?}");
}

// --- invalid_api_key -----------------------------------------------------------------------------------------

/// A valid key string with its last character changed: the checksum no longer holds.
fn broken_checksum(key: &str) -> String {
    let last = key.chars().last().unwrap();
    format!("{}{}", &key[..key.len() - 1], if last == 'A' { 'B' } else { 'A' })
}

#[test]
fn a_bad_checksum_is_invalid_api_key() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let broken = broken_checksum(secret(&rec));
    let r = g.get_with(&broken, "/reports");
    check_proxy_problem(&r, 401, "invalid_api_key");
    assert!(!r.text.contains(&broken), "the body echoes the presented key: {}", r.text);
}

#[test]
fn an_unparseable_key_is_invalid_api_key() {
    let g = Gateway::new();
    for bad in ["hello", "kg_prod_short_x", "Bearer"] {
        let r = g.get_with(bad, "/reports");
        check_proxy_problem(&r, 401, "invalid_api_key");
    }
}

#[test]
fn a_well_formed_key_with_an_unknown_id_is_invalid_api_key() {
    let g = Gateway::new();
    let unknown = forge_key("kg", "prod", &random_alnum(16), &random_alnum(32));
    assert!(KeyParts::parse(&unknown).is_some());
    let r = g.get_with(&unknown, "/reports");
    check_proxy_problem(&r, 401, "invalid_api_key");
    assert!(!r.text.contains(&unknown), "the body echoes the presented key: {}", r.text);
}

#[test]
fn the_right_id_with_a_wrong_secret_is_invalid_api_key() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let wrong = forge_key("kg", "prod", id(&rec), &random_alnum(32));
    assert_ne!(wrong, secret(&rec));
    let r = g.get_with(&wrong, "/reports");
    check_proxy_problem(&r, 401, "invalid_api_key");
    assert!(!r.text.contains(&wrong), "the body echoes the presented key: {}", r.text);
    assert_eq!(g.key(id(&rec))["usage"]["requests_total"], 0);
}

#[test]
fn invalid_keys_get_the_same_answer_whatever_failed() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let cases = [
        broken_checksum(secret(&rec)),
        forge_key("kg", "prod", &random_alnum(16), &random_alnum(32)),
        forge_key("kg", "prod", id(&rec), &random_alnum(32)),
    ];
    let shapes: Vec<Value> = cases
        .iter()
        .map(|k| {
            let mut body = check_proxy_problem(&g.get_with(k, "/reports"), 401, "invalid_api_key");
            body.as_object_mut().unwrap().remove("request_id");
            body
        })
        .collect();
    assert_eq!(shapes[0], shapes[1], "bad checksum and unknown id answer differently");
    assert_eq!(shapes[1], shapes[2], "unknown id and wrong secret answer differently");
}

#[test]
fn bearer_key_in_authorization_authenticates() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").bearer(secret(&rec)).fetch();
    assert_eq!(seen_headers(&r).get("x-keygate-key-id"), Some(&json!(id(&rec))));
}

// --- key status ----------------------------------------------------------------------------------------------

#[test]
fn a_revoked_key_is_key_revoked() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    assert_eq!(g.act(id(&rec), "revoke").status, 200);
    let r = g.get_with(secret(&rec), "/reports");
    check_proxy_problem(&r, 401, "key_revoked");
    assert!(!r.text.contains(secret(&rec)));
}

#[test]
fn a_disabled_key_is_key_inactive() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.act(id(&rec), "disable").status, 200);
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 401, "key_inactive");
}

#[test]
fn a_key_past_its_expiry_is_key_expired() {
    let g = Gateway::new();
    let expiry = (now() + Duration::from_secs(4)).replace_nanosecond(0).unwrap();
    let rec = g.new_key(json!({"expires_at": rfc3339(expiry)}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "valid before its expiry");
    let wait = expiry - now();
    if wait.is_positive() {
        std::thread::sleep(wait.unsigned_abs()); // waiting for a wall-clock expiry is inherent (< 4 s)
    }
    let r = poll(Duration::from_secs(3), || {
        let r = g.get_with(secret(&rec), "/reports");
        (r.status != 200).then_some(r)
    })
    .expect("still accepted 3 s after expires_at");
    check_proxy_problem(&r, 401, "key_expired");
    let after = g.key(id(&rec));
    assert_eq!((after["status"].as_str(), after["expiration_state"].as_str()), (Some("expired"), Some("expired")));
}

#[test]
fn revoked_is_reported_before_the_environment() {
    let g = Gateway::start(with_hosts);
    let rec = g.new_key(json!({"environment": "staging"}));
    assert_eq!(g.act(id(&rec), "revoke").status, 200);
    let r = g.call("GET", "/reports").key(secret(&rec)).header("host", "api.kg.test").fetch();
    check_proxy_problem(&r, 401, "key_revoked");
}

// --- environment_mismatch ----------------------------------------------------------------------------------------

#[test]
fn a_key_of_another_environment_is_environment_mismatch() {
    let g = Gateway::start(with_hosts);
    let rec = g.new_key(json!({"environment": "staging"}));
    let r = g.call("GET", "/reports").key(secret(&rec)).header("host", "api.kg.test").fetch();
    check_proxy_problem(&r, 401, "environment_mismatch");
    let r = g.call("GET", "/reports").key(secret(&rec)).header("host", "staging.kg.test").fetch();
    assert_eq!(echoed(&r)["upstream"], "staging");
}

// --- ip_not_allowed ------------------------------------------------------------------------------------------------

#[test]
fn an_allowlisted_key_works_only_from_its_addresses() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"ip_allowlist": ["127.0.0.2/32"]}));
    assert_eq!(g.call_from("127.0.0.2", "GET", "/reports").key(secret(&rec)).fetch().status, 200);
    let r = g.call_from("127.0.0.1", "GET", "/reports").key(secret(&rec)).fetch();
    check_proxy_problem(&r, 403, "ip_not_allowed");
}

#[test]
fn an_allowlist_accepts_plain_addresses_and_ranges() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"ip_allowlist": ["127.0.0.3", "127.0.1.0/24"]}));
    assert_eq!(g.call_from("127.0.0.3", "GET", "/reports").key(secret(&rec)).fetch().status, 200);
    assert_eq!(g.call_from("127.0.1.77", "GET", "/reports").key(secret(&rec)).fetch().status, 200);
    check_proxy_problem(&g.call_from("127.0.0.4", "GET", "/reports").key(secret(&rec)).fetch(), 403, "ip_not_allowed");
}

#[test]
fn ip_allowlist_is_checked_before_permissions() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"ip_allowlist": ["127.0.0.2/32"]}));
    let r = g.call_from("127.0.0.1", "GET", "/invoices/1").key(secret(&rec)).fetch();
    check_proxy_problem(&r, 403, "ip_not_allowed");
}

// --- permission_denied ---------------------------------------------------------------------------------------------

#[test]
fn a_route_permission_is_required() {
    let g = Gateway::new();
    let plain = g.new_key(json!({}));
    check_proxy_problem(&g.get_with(secret(&plain), "/invoices/1"), 403, "permission_denied");
    check_proxy_problem(&g.get_with(secret(&plain), "/invoices"), 403, "permission_denied");
    assert_eq!(g.get_with(secret(&plain), "/reports").status, 200, "no matching route: any valid key passes");
}

#[test]
fn routes_match_whole_path_segments() {
    let g = Gateway::new();
    let plain = g.new_key(json!({}));
    let r = g.get_with(secret(&plain), "/invoicesX");
    assert_eq!(echoed(&r)["path"], "/invoicesX", "/invoices must not match /invoicesX");
}

#[test]
fn a_group_grants_the_route_permission() {
    let g = Gateway::new();
    let billing = g.new_key(json!({"group": "billing"}));
    assert_eq!(billing["effective_permissions"], json!(["invoices:read"]));
    assert_eq!(g.get_with(secret(&billing), "/invoices/1").status, 200);
}

#[test]
fn a_direct_permission_grants_the_route_permission() {
    let g = Gateway::new();
    let direct = g.new_key(json!({"permissions": ["invoices:read"]}));
    assert_eq!(g.get_with(secret(&direct), "/invoices/1").status, 200);
    let other = g.new_key(json!({"permissions": ["invoices:write"]}));
    check_proxy_problem(&g.get_with(secret(&other), "/invoices/1"), 403, "permission_denied");
}

#[test]
fn a_readonly_key_may_only_read() {
    let g = Gateway::new();
    let reader = g.new_key(json!({"role": "readonly", "group": "billing"}));
    assert_eq!(g.get_with(secret(&reader), "/invoices/1").status, 200);
    assert_eq!(g.get_with(secret(&reader), "/reports").status, 200);
    assert_eq!(g.call("HEAD", "/reports").key(secret(&reader)).fetch().status, 200);
    assert_eq!(g.call("OPTIONS", "/reports").key(secret(&reader)).fetch().status, 200);
    for method in ["POST", "DELETE", "PUT", "PATCH"] {
        let r = g.call(method, "/reports").key(secret(&reader)).fetch();
        check_proxy_problem(&r, 403, "permission_denied");
    }
    let admin = g.new_key(json!({}));
    assert_eq!(g.call("POST", "/reports").key(secret(&admin)).fetch().status, 200, "an admin key may POST");
}

#[test]
fn route_methods_deny_other_methods_for_every_key() {
    let g = Gateway::start(|c| add_route(c, json!({"path": "/ledger", "methods": ["GET"]})));
    let plain = g.new_key(json!({}));
    let rich = g.new_key(json!({"group": "billing", "permissions": ["ledger:write"]}));
    for key in [&plain, &rich] {
        assert_eq!(g.get_with(secret(key), "/ledger/1").status, 200);
        check_proxy_problem(&g.call("POST", "/ledger/1").key(secret(key)).fetch(), 403, "permission_denied");
        check_proxy_problem(&g.call("DELETE", "/ledger").key(secret(key)).fetch(), 403, "permission_denied");
    }
}

// --- rate_limited ----------------------------------------------------------------------------------------------

#[test]
fn over_the_key_rate_limit_is_rate_limited() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"rate_limit": {"per_minute": 2}}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let r = g.get_with(secret(&rec), "/reports");
    check_proxy_problem(&r, 429, "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}: one request back every 30 s");
}

// --- upstream_unavailable, upstream_timeout ----------------------------------------------------------------------

#[test]
fn an_unreachable_upstream_is_upstream_unavailable() {
    let dead = closed_addr();
    let g = Gateway::start(move |c| c["environments"]["development"]["upstreams"] = yaml(json!([dead])));
    let rec = g.new_key(json!({"environment": "development"}));
    let r = g.get_with(secret(&rec), "/reports");
    check_proxy_problem(&r, 502, "upstream_unavailable");
    let prod = g.new_key(json!({"environment": "production"}));
    assert_eq!(g.get_with(secret(&prod), "/reports").status, 200, "other environments are unaffected");
}

#[test]
fn an_upstream_that_never_answers_is_upstream_timeout() {
    let hang = FakeUpstream::start(FakeMode::Hang);
    let addr = hang.addr.clone();
    let g = Gateway::start(move |c| {
        c["proxy"]["upstream_timeout"] = "500ms".into();
        c["environments"]["development"]["upstreams"] = yaml(json!([addr]));
    });
    let rec = g.new_key(json!({"environment": "development"}));
    let started = std::time::Instant::now();
    let r = g.get_with(secret(&rec), "/reports");
    check_proxy_problem(&r, 504, "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?} with a 500ms upstream_timeout", started.elapsed());
    drop(hang);
}

// --- X-Request-Id ------------------------------------------------------------------------------------------------

#[test]
fn every_answer_carries_a_request_id() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let answers = [
        g.get_with(secret(&rec), "/reports"),
        g.call("GET", "/status").fetch(),
        g.call("GET", "/reports").fetch(),
        g.get_with("garbage", "/reports"),
        g.get_with(secret(&rec), "/invoices"),
        g.get_with(secret(&rec), "/.well-known/keygate/whoami"),
    ];
    for r in &answers {
        assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()), "no X-Request-Id: {r:?}");
    }
    let mut ids: Vec<String> = answers.iter().map(|r| r.header("x-request-id").unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), answers.len(), "request ids repeat: {ids:?}");
}

#[test]
fn the_problem_body_request_id_is_the_x_request_id() {
    let g = Gateway::new();
    let r = g.call("GET", "/reports").fetch();
    let body = check_proxy_problem(&r, 401, "missing_api_key");
    assert_eq!(body["request_id"].as_str(), r.header("x-request-id").as_deref());
}
