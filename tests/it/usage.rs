//! Last-used tracking and durability (SPEC 4.6, 5 "Durability"): `last_used_at`, `last_used_ip` and
//! `usage.requests_total` change at once, count only requests that passed every check, survive a
//! restart (SIGTERM flushes), and keys and their state survive restarts and crashes.

use serde_json::{json, Value};

use crate::admin_helpers::rotate;
use crate::helpers::{check_proxy_problem, closed_addr, now, parse_rfc3339, yaml, Gateway, RequestExt, WHOAMI};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

fn id(rec: &Value) -> &str {
    rec["id"].as_str().expect("id")
}

fn total(rec: &Value) -> u64 {
    rec["usage"]["requests_total"].as_u64().unwrap_or_else(|| panic!("usage.requests_total: {rec}"))
}

#[test]
fn last_used_shows_at_once() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert!(rec["last_used_at"].is_null() && rec["last_used_ip"].is_null(), "{rec}");
    let before = now().replace_nanosecond(0).unwrap();
    assert_eq!(g.call_from("127.0.0.2", "GET", "/reports").key(secret(&rec)).fetch().status, 200);
    let after = g.key(id(&rec));
    assert_eq!(total(&after), 1, "{after}");
    assert_eq!(after["last_used_ip"], "127.0.0.2");
    let at = parse_rfc3339(after["last_used_at"].as_str().expect("last_used_at"));
    assert!(at >= before && at <= now() + std::time::Duration::from_secs(1), "last_used_at {at} (request at {before})");
}

#[test]
fn every_passing_request_counts() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    for _ in 0..5 {
        assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    }
    assert_eq!(total(&g.key(id(&rec))), 5);
}

#[test]
fn rejected_requests_do_not_count() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"rate_limit": {"per_minute": 1}}));
    check_proxy_problem(&g.get_with(secret(&rec), "/invoices"), 403, "permission_denied");
    let after = g.key(id(&rec));
    assert_eq!(total(&after), 0, "{after}");
    assert!(after["last_used_at"].is_null(), "{after}");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 429, "rate_limited");
    assert_eq!(total(&g.key(id(&rec))), 1, "a rate-limited request does not count");
}

#[test]
fn upstream_errors_still_count() {
    let dead = closed_addr();
    let g = Gateway::start(move |c| c["environments"]["development"]["upstreams"] = yaml(json!([dead])));
    let rec = g.new_key(json!({"environment": "development"}));
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 502, "upstream_unavailable");
    let after = g.key(id(&rec));
    assert_eq!(total(&after), 1, "a 502 passed every check: {after}");
    assert!(after["last_used_at"].is_string(), "{after}");
}

#[test]
fn whoami_counts_as_use() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.call_from("127.0.0.3", "GET", WHOAMI).key(secret(&rec)).fetch().status, 200);
    let after = g.key(id(&rec));
    assert_eq!(total(&after), 1, "{after}");
    assert_eq!(after["last_used_ip"], "127.0.0.3");
}

#[test]
fn usage_survives_a_restart() {
    let mut g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.call_from("127.0.0.2", "GET", "/reports").key(secret(&rec)).fetch().status, 200);
    let before = g.key(id(&rec));
    let status = g.restart();
    assert!(status.success(), "SIGTERM exit status {status}");
    let after = g.key(id(&rec));
    assert_eq!(total(&after), 1, "{after}");
    assert_eq!(after["last_used_ip"], "127.0.0.2");
    let (b, a) = (
        parse_rfc3339(before["last_used_at"].as_str().unwrap()),
        parse_rfc3339(after["last_used_at"].as_str().unwrap()),
    );
    assert!((a - b).abs() <= time::Duration::seconds(1), "last_used_at moved from {b} to {a}");
}

#[test]
fn sigterm_flushes_usage_the_interval_has_not_written_yet() {
    let mut g = Gateway::start(|c| c["storage"]["usage_flush_interval"] = "1h".into());
    let rec = g.new_key(json!({}));
    for _ in 0..3 {
        assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    }
    let status = g.restart();
    assert!(status.success(), "SIGTERM exit status {status}");
    assert_eq!(total(&g.key(id(&rec))), 3, "usage not flushed on SIGTERM");
}

#[test]
fn keys_survive_a_restart_and_still_authenticate() {
    let mut g = Gateway::new();
    let rec = g.new_key(json!({"group": "billing", "ip_allowlist": ["127.0.0.0/8"]}));
    let before = g.key(id(&rec));
    g.restart();
    let strip = |mut v: Value| {
        for volatile in ["usage", "last_used_at", "last_used_ip", "expiration_state", "status"] {
            v.as_object_mut().expect("object").remove(volatile);
        }
        v
    };
    let (after, expected) = (strip(g.key(id(&rec))), strip(before));
    assert_eq!(after, expected, "the record changed across a restart");
    assert_eq!(g.get_with(secret(&rec), "/invoices/1").status, 200, "the key still authenticates and keeps its group");
}

#[test]
fn revocation_and_disabling_survive_a_restart() {
    let mut g = Gateway::new();
    let revoked = g.new_key(json!({}));
    let disabled = g.new_key(json!({}));
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    assert_eq!(g.act(id(&disabled), "disable").status, 200);
    g.restart();
    check_proxy_problem(&g.get_with(secret(&revoked), "/reports"), 401, "key_revoked");
    check_proxy_problem(&g.get_with(secret(&disabled), "/reports"), 401, "key_inactive");
}

#[test]
fn acknowledged_changes_survive_a_crash() {
    let mut g = Gateway::new();
    let kept = g.new_key(json!({}));
    let revoked = g.new_key(json!({}));
    let tenant = g.new_tenant(Some(7));
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    g.kill9();
    g.start_again();
    assert_eq!(g.get_with(secret(&kept), "/reports").status, 200, "a created key was lost in a crash");
    check_proxy_problem(&g.get_with(secret(&revoked), "/reports"), 401, "key_revoked");
    let t = g.api("GET", &format!("/v1/tenants/{tenant}"), None);
    assert_eq!(t.status, 200, "a created tenant was lost in a crash: {t:?}");
    assert_eq!(t.json()["key_limit"], 7);
}

#[test]
fn usage_after_a_rotation_survives_a_restart() {
    let mut g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = rotate(&g, id(&rec), Some(json!({"grace_period": "1h"})));
    assert_eq!(r.status, 200, "rotate: {r:?}");
    let new = r.json();
    for _ in 0..2 {
        assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    }
    assert_eq!(g.get_with(secret(&new), "/reports").status, 200);
    let status = g.restart();
    assert!(status.success(), "SIGTERM exit status {status}");
    let after = g.key(id(&rec));
    assert_eq!(total(&after), 3, "usage after the rotation was not flushed: {after}");
    assert_eq!(after["rotation"]["previous_requests"], 2, "{after}");
}
