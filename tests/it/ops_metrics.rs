//! Metrics (SPEC 6): every contract family with its type, each proxy request counted exactly once under its
//! `(environment, outcome)` (`none` before the environment is known), the key gauge following mutations and
//! expiry at once, admin requests by operation and status, usage flushes only when something was written,
//! bounded label values (never a key id, name, tenant, path or IP), and `promtool check metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    check_proxy_problem, closed_addr, forge_key, now, poll, random_alnum, rfc3339, yaml, Gateway, RequestExt, WHOAMI,
};
use crate::ops_helpers::{
    deltas, expected, holds_for, output_text, promtool_check_metrics, samples, scrape, scrape_after_requests, types,
    value,
};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

fn id(rec: &Value) -> &str {
    rec["id"].as_str().expect("id")
}

/// SPEC 6: family → `# TYPE`.
const FAMILIES: [(&str, &str); 9] = [
    ("keygate_requests_total", "counter"),
    ("keygate_request_duration_seconds", "histogram"),
    ("keygate_auth_duration_seconds", "histogram"),
    ("keygate_upstream_duration_seconds", "histogram"),
    ("keygate_keys", "gauge"),
    ("keygate_admin_requests_total", "counter"),
    ("keygate_usage_flushes_total", "counter"),
    ("keygate_usage_flush_duration_seconds", "histogram"),
    ("keygate_config_reloads_total", "counter"),
];

/// The non-zero changes of `keygate_requests_total` by `(environment, outcome)`.
fn request_deltas(before: &str, after: &str) -> BTreeMap<Vec<String>, f64> {
    deltas(before, after, "keygate_requests_total", &["environment", "outcome"])
}

/// The `keygate_keys` series that are not zero, by `(environment, status)`.
fn key_gauge(g: &Gateway) -> BTreeMap<Vec<String>, f64> {
    deltas("", &scrape(g), "keygate_keys", &["environment", "status"])
}

/// A well-formed key with a valid checksum whose id no key has.
fn unknown_key() -> String {
    forge_key("kg", "prod", &random_alnum(16), &random_alnum(32))
}

#[test]
fn every_contract_family_is_exposed_with_its_type() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let text = scrape_after_requests(&g, "", 1.0);
    let types = types(&text);
    let all = samples(&text);
    for (family, kind) in FAMILIES {
        assert_eq!(types.get(family).map(String::as_str), Some(kind), "`# TYPE {family} {kind}` missing:\n{text}");
        let sample = if kind == "histogram" { format!("{family}_count") } else { family.to_string() };
        assert!(all.iter().any(|s| s.name == sample), "no {sample} sample in the exposition:\n{text}");
    }
}

#[test]
fn each_request_is_counted_once_under_its_outcome() {
    let dead = closed_addr();
    let g = Gateway::start(move |c| c["environments"]["development"]["upstreams"] = yaml(json!([dead])));
    let plain = g.new_key(json!({}));
    let limited = g.new_key(json!({"environment": "staging", "rate_limit": {"per_minute": 1}}));
    let revoked = g.new_key(json!({}));
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    let inactive = g.new_key(json!({}));
    assert_eq!(g.act(id(&inactive), "disable").status, 200);
    let fenced = g.new_key(json!({"ip_allowlist": ["10.1.2.3"]}));
    let dev = g.new_key(json!({"environment": "development"}));

    let before = scrape(&g);
    assert_eq!(g.get_with(secret(&plain), "/reports").status, 200);
    check_proxy_problem(&g.call("GET", "/reports").fetch(), 401, "missing_api_key");
    check_proxy_problem(&g.get_with(&unknown_key(), "/reports"), 401, "invalid_api_key");
    check_proxy_problem(
        &g.call("GET", "/reports").key(secret(&plain)).bearer(secret(&limited)).fetch(),
        401,
        "ambiguous_api_key",
    );
    check_proxy_problem(&g.get_with(secret(&revoked), "/reports"), 401, "key_revoked");
    check_proxy_problem(&g.get_with(secret(&inactive), "/reports"), 401, "key_inactive");
    check_proxy_problem(&g.get_with(secret(&fenced), "/reports"), 403, "ip_not_allowed");
    check_proxy_problem(&g.get_with(secret(&plain), "/invoices"), 403, "permission_denied");
    assert_eq!(g.get_with(secret(&limited), "/reports").status, 200);
    check_proxy_problem(&g.get_with(secret(&limited), "/reports"), 429, "rate_limited");
    check_proxy_problem(&g.get_with(secret(&dev), "/reports"), 502, "upstream_unavailable");
    let requests = 11.0;

    let after = scrape_after_requests(&g, &before, requests);
    let mut got = request_deltas(&before, &after);
    // Which environment a rejected verified key carries is checked by its own test; here: counted once.
    for code in ["key_revoked", "key_inactive"] {
        let n: f64 = got.iter().filter(|(k, _)| k[1] == code).map(|(_, v)| *v).sum();
        assert_eq!(n, 1.0, "{code} counted {n} times: {got:?}");
        got.retain(|k, _| k[1] != code);
    }
    assert_eq!(
        got,
        expected(&[
            (&["development", "upstream_unavailable"], 1.0),
            (&["none", "ambiguous_api_key"], 1.0),
            (&["none", "invalid_api_key"], 1.0),
            (&["none", "missing_api_key"], 1.0),
            (&["production", "ip_not_allowed"], 1.0),
            (&["production", "permission_denied"], 1.0),
            (&["production", "proxied"], 1.0),
            (&["staging", "proxied"], 1.0),
            (&["staging", "rate_limited"], 1.0),
        ]),
        "keygate_requests_total changes by (environment, outcome)"
    );
    let timed = value(&after, "keygate_request_duration_seconds_count", &[])
        - value(&before, "keygate_request_duration_seconds_count", &[]);
    assert_eq!(timed, requests, "keygate_request_duration_seconds observes each request once");
}

#[test]
fn rejections_of_a_verified_key_carry_its_environment() {
    let g = Gateway::new();
    let revoked = g.new_key(json!({"environment": "staging"}));
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    let inactive = g.new_key(json!({"environment": "staging"}));
    assert_eq!(g.act(id(&inactive), "disable").status, 200);
    let before = scrape(&g);
    check_proxy_problem(&g.get_with(secret(&revoked), "/reports"), 401, "key_revoked");
    check_proxy_problem(&g.get_with(secret(&inactive), "/reports"), 401, "key_inactive");
    let after = scrape_after_requests(&g, &before, 2.0);
    assert_eq!(
        request_deltas(&before, &after),
        expected(&[(&["staging", "key_inactive"], 1.0), (&["staging", "key_revoked"], 1.0)]),
        "a key that verified names the request's environment (SPEC 6: `none` only before it is known)"
    );
}

#[test]
fn whoami_counts_as_proxied() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"environment": "staging"}));
    let before = scrape(&g);
    assert_eq!(g.get_with(secret(&rec), WHOAMI).status, 200);
    let after = scrape_after_requests(&g, &before, 1.0);
    assert_eq!(request_deltas(&before, &after), expected(&[(&["staging", "proxied"], 1.0)]));
}

#[test]
fn with_hosts_unknown_host_is_none_and_the_host_names_the_environment() {
    let g = Gateway::start(|c| {
        c["environments"]["production"]["hosts"] = yaml(json!(["api.kg.test"]));
        c["environments"]["staging"]["hosts"] = yaml(json!(["staging.kg.test"]));
    });
    let prod = g.new_key(json!({}));
    let stg = g.new_key(json!({"environment": "staging"}));
    let before = scrape(&g);
    let on = |host: &str, key: Option<&str>| {
        let rb = g.call("GET", "/reports").header("host", host);
        match key {
            Some(k) => rb.key(k).fetch(),
            None => rb.fetch(),
        }
    };
    check_proxy_problem(&on("nowhere.kg.test", Some(secret(&prod))), 404, "unknown_host");
    check_proxy_problem(&on("api.kg.test", Some(secret(&stg))), 401, "environment_mismatch");
    check_proxy_problem(&on("api.kg.test", None), 401, "missing_api_key");
    assert_eq!(on("api.kg.test", Some(secret(&prod))).status, 200);
    let after = scrape_after_requests(&g, &before, 4.0);
    assert_eq!(
        request_deltas(&before, &after),
        expected(&[
            (&["none", "unknown_host"], 1.0),
            (&["production", "environment_mismatch"], 1.0),
            (&["production", "missing_api_key"], 1.0),
            (&["production", "proxied"], 1.0),
        ])
    );
}

#[test]
fn the_key_gauge_follows_every_mutation_at_once() {
    let g = Gateway::new();
    assert_eq!(key_gauge(&g), expected(&[]), "a new gateway has no keys");
    let rec = g.new_key(json!({"environment": "staging"}));
    assert_eq!(key_gauge(&g), expected(&[(&["staging", "active"], 1.0)]), "after create");
    assert_eq!(g.act(id(&rec), "disable").status, 200);
    assert_eq!(key_gauge(&g), expected(&[(&["staging", "inactive"], 1.0)]), "after disable");
    assert_eq!(g.act(id(&rec), "enable").status, 200);
    assert_eq!(key_gauge(&g), expected(&[(&["staging", "active"], 1.0)]), "after enable");
    assert_eq!(g.act(id(&rec), "revoke").status, 200);
    assert_eq!(key_gauge(&g), expected(&[(&["staging", "revoked"], 1.0)]), "after revoke");
    assert_eq!(g.api("DELETE", &format!("/v1/keys/{}", id(&rec)), None).status, 204);
    assert_eq!(key_gauge(&g), expected(&[]), "after delete");
}

#[test]
fn the_key_gauge_shows_expiry_without_a_mutation() {
    let g = Gateway::new();
    let expires = rfc3339(now() + Duration::from_secs(5));
    g.new_key(json!({"environment": "development", "expires_at": expires}));
    assert_eq!(key_gauge(&g), expected(&[(&["development", "active"], 1.0)]));
    let mut last = BTreeMap::new();
    let moved = poll(Duration::from_secs(10), || {
        last = key_gauge(&g);
        (last == expected(&[(&["development", "expired"], 1.0)])).then_some(())
    });
    assert!(moved.is_some(), "the key expired at {expires} but keygate_keys shows {last:?}");
}

#[test]
fn admin_requests_are_counted_by_operation_and_status() {
    let g = Gateway::new();
    let before = scrape(&g);
    let rec = g.new_key(json!({}));
    assert_eq!(g.api("GET", &format!("/v1/keys/{}", id(&rec)), None).status, 200);
    assert_eq!(g.api("GET", "/v1/keys/AAAAAAAAAAAAAAAA", None).status, 404);
    assert_eq!(g.api("POST", "/v1/keys", Some(json!({"name": "x", "tenant": "acme"}))).status, 422);
    let mut got = BTreeMap::new();
    let want = expected(&[
        (&["GET /v1/keys/{id}", "200"], 1.0),
        (&["GET /v1/keys/{id}", "404"], 1.0),
        (&["POST /v1/keys", "201"], 1.0),
        (&["POST /v1/keys", "422"], 1.0),
    ]);
    let counted = poll(Duration::from_secs(5), || {
        got = deltas(&before, &scrape(&g), "keygate_admin_requests_total", &["operation", "status"]);
        (got == want).then_some(())
    });
    assert!(counted.is_some(), "keygate_admin_requests_total changes {got:?}, expected {want:?}");
}

#[test]
fn usage_flushes_count_writes_and_not_idle_ticks() {
    let g = Gateway::new(); // storage.usage_flush_interval: 200ms
    let rec = g.new_key(json!({}));
    let flushes = |g: &Gateway| value(&scrape(g), "keygate_usage_flushes_total", &[]);
    let start = flushes(&g);
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let grown = poll(Duration::from_secs(5), || {
        let now = flushes(&g);
        (now > start).then_some(now)
    });
    let idle = grown.unwrap_or_else(|| panic!("keygate_usage_flushes_total stayed at {start} after a request"));
    let held = holds_for(Duration::from_millis(800), || {
        let now = flushes(&g);
        if now == idle {
            Ok(())
        } else {
            Err(format!("keygate_usage_flushes_total went from {idle} to {now} with no traffic"))
        }
    });
    held.unwrap_or_else(|e| panic!("{e}: only flushes that wrote something count"));
}

#[test]
fn no_label_value_is_a_key_id_name_tenant_path_or_ip() {
    let g = Gateway::new();
    let tag = format!("zq{}", random_alnum(8).to_lowercase());
    let tenant = format!("ten-{tag}");
    let r = g.api("POST", "/v1/tenants", Some(json!({"id": tenant, "name": format!("Tenant {tag}")})));
    assert_eq!(r.status, 201, "{r:?}");
    let tenant_key = g.new_key(json!({"tenant": tenant, "name": format!("name-{tag}-a")}));
    let service_key = g.new_key(json!({"kind": "service", "name": format!("name-{tag}-b"), "environment": "staging"}));
    let revoked = g.new_key(json!({"tenant": tenant, "name": format!("name-{tag}-c")}));
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    let forged = unknown_key();

    let before = scrape(&g);
    let from = |path: &str| g.call_from("127.0.0.2", "GET", path);
    assert_eq!(from(&format!("/path-{tag}/1")).key(secret(&tenant_key)).fetch().status, 200);
    assert_eq!(from(&format!("/path-{tag}/2?q={tag}")).bearer(secret(&service_key)).fetch().status, 200);
    assert_eq!(from(WHOAMI).key(secret(&tenant_key)).fetch().status, 200);
    assert_eq!(from(&format!("/path-{tag}/3")).key(&forged).fetch().status, 401);
    assert_eq!(from(&format!("/path-{tag}/4")).key(secret(&revoked)).fetch().status, 401);
    assert_eq!(from(&format!("/path-{tag}/5")).fetch().status, 401);
    assert_eq!(from(&format!("/invoices/{tag}")).key(secret(&tenant_key)).fetch().status, 403);
    assert_eq!(g.api("GET", &format!("/v1/keys/{}", id(&tenant_key)), None).status, 200);
    assert_eq!(g.api("GET", &format!("/v1/tenants/{tenant}"), None).status, 200);
    assert_eq!(g.api("GET", &format!("/v1/keys?q={tag}&tenant={tenant}"), None).status, 200);
    assert_eq!(g.api("GET", &format!("/v1/nothing-{tag}"), None).status, 404);
    let text = scrape_after_requests(&g, &before, 7.0);

    let forged_id = forged.split('_').nth(2).expect("id part").to_string();
    let mut forbidden = vec![tag.clone(), tenant.clone(), forged_id, "127.0.0.2".into(), "127.0.0.1".into()];
    for rec in [&tenant_key, &service_key, &revoked] {
        forbidden.push(id(rec).to_string());
        forbidden.push(rec["name"].as_str().expect("name").to_string());
        forbidden.push(secret(rec).to_string());
    }
    for s in &forbidden {
        assert!(!text.contains(s.as_str()), "the exposition holds {s:?} (unbounded label value):\n{text}");
    }
}

#[test]
fn the_live_exposition_passes_promtool_check_metrics() {
    let dead = closed_addr();
    let g = Gateway::start(move |c| c["environments"]["development"]["upstreams"] = yaml(json!([dead])));
    let rec = g.new_key(json!({}));
    let dev = g.new_key(json!({"environment": "development"}));
    let before = scrape(&g);
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    assert_eq!(g.get_with(secret(&rec), WHOAMI).status, 200);
    assert_eq!(g.call("GET", "/reports").fetch().status, 401);
    assert_eq!(g.get_with(secret(&dev), "/reports").status, 502);
    let text = scrape_after_requests(&g, &before, 4.0);
    let out = promtool_check_metrics(&text);
    assert!(out.status.success(), "promtool check metrics failed: {}\n--- exposition ---\n{text}", output_text(&out));
}
