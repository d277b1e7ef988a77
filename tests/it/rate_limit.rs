//! Per-key rate limits (SPEC 2.2 `rate_limit`, 4.1 `rate_limited`, 4.4 `RateLimit-Policy` / `RateLimit`):
//! the bucket, its headers, the environment default, and the 429 with `Retry-After`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{check_proxy_problem, poll, yaml, Gateway, Resp};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

/// `RateLimit: "key";r=<r>;t=<t>` → (r, t).
fn ratelimit(r: &Resp) -> (u64, u64) {
    let v = r.header("ratelimit").unwrap_or_else(|| panic!("no RateLimit header: {r:?}"));
    let rest = v.strip_prefix("\"key\";r=").unwrap_or_else(|| panic!("RateLimit {v:?}"));
    let (remaining, t) = rest.split_once(";t=").unwrap_or_else(|| panic!("RateLimit {v:?}"));
    (
        remaining.parse().unwrap_or_else(|_| panic!("RateLimit {v:?}")),
        t.parse().unwrap_or_else(|_| panic!("RateLimit {v:?}")),
    )
}

#[test]
fn rate_limit_headers_count_down_then_429() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"rate_limit": {"per_minute": 10, "burst": 3}})); // one back every 6 s
    let answers: Vec<Resp> = (0..3).map(|_| g.get_with(secret(&rec), "/reports")).collect();
    assert_eq!(answers.iter().map(|a| a.status).collect::<Vec<_>>(), [200, 200, 200], "{answers:?}");
    for a in &answers {
        assert_eq!(a.header("ratelimit-policy").as_deref(), Some(r#""key";q=10;w=60"#), "{a:?}");
    }
    let fields: Vec<(u64, u64)> = answers.iter().map(ratelimit).collect();
    assert_eq!(fields.iter().map(|f| f.0).collect::<Vec<_>>(), [2, 1, 0], "r = requests left: {fields:?}");
    assert!((5..=6).contains(&fields[0].1), "one short of full at 10/min: full again in 6 s, got {fields:?}");
    assert!(fields[2].1 >= fields[0].1, "t grows as the bucket empties: {fields:?}");
    let r = g.get_with(secret(&rec), "/reports");
    check_proxy_problem(&r, 429, "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry), "Retry-After {retry}: the next request is admitted within 6 s");
}

#[test]
fn burst_defaults_to_the_limit() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"rate_limit": {"per_hour": 100}}));
    let r = g.get_with(secret(&rec), "/reports");
    assert_eq!(r.header("ratelimit-policy").as_deref(), Some(r#""key";q=100;w=3600"#), "{r:?}");
    let (remaining, t) = ratelimit(&r);
    assert_eq!(remaining, 99, "burst defaults to N");
    assert!((1..=36).contains(&t), "one request back every 36 s, got t={t}");
}

#[test]
fn the_policy_window_follows_the_period() {
    let g = Gateway::new();
    for (limit, policy) in [
        (json!({"per_second": 7}), r#""key";q=7;w=1"#),
        (json!({"per_minute": 30}), r#""key";q=30;w=60"#),
        (json!({"per_hour": 500, "burst": 10}), r#""key";q=500;w=3600"#),
    ] {
        let rec = g.new_key(json!({"rate_limit": limit}));
        let r = g.get_with(secret(&rec), "/reports");
        assert_eq!(r.header("ratelimit-policy").as_deref(), Some(policy), "{limit}: {r:?}");
    }
}

#[test]
fn the_environment_default_applies_without_a_key_limit() {
    let g =
        Gateway::start(|c| c["environments"]["development"]["rate_limit"] = yaml(json!({"per_minute": 2, "burst": 2})));
    let rec = g.new_key(json!({"environment": "development"}));
    assert!(rec["rate_limit"].is_null());
    let first = g.get_with(secret(&rec), "/reports");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("ratelimit-policy").as_deref(), Some(r#""key";q=2;w=60"#), "{first:?}");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 429, "rate_limited");
    let prod = g.new_key(json!({"environment": "production"}));
    for _ in 0..4 {
        assert_eq!(g.get_with(secret(&prod), "/reports").status, 200, "production keeps its own default");
    }
}

#[test]
fn a_key_limit_overrides_the_environment_default() {
    let g =
        Gateway::start(|c| c["environments"]["development"]["rate_limit"] = yaml(json!({"per_second": 1, "burst": 1})));
    let rec = g.new_key(json!({"environment": "development", "rate_limit": {"per_second": 100}}));
    for i in 0..5 {
        assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "request {i}");
    }
}

#[test]
fn each_key_has_its_own_bucket() {
    let g = Gateway::new();
    let a = g.new_key(json!({"rate_limit": {"per_minute": 1}}));
    let b = g.new_key(json!({"rate_limit": {"per_minute": 1}}));
    assert_eq!(g.get_with(secret(&a), "/reports").status, 200);
    check_proxy_problem(&g.get_with(secret(&a), "/reports"), 429, "rate_limited");
    assert_eq!(g.get_with(secret(&b), "/reports").status, 200, "b is not limited by a's requests");
}

#[test]
fn denied_requests_do_not_spend_the_rate_limit() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"rate_limit": {"per_minute": 2}}));
    for _ in 0..3 {
        check_proxy_problem(&g.get_with(secret(&rec), "/invoices"), 403, "permission_denied");
    }
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
}

#[test]
fn the_bucket_refills_over_time() {
    let g = Gateway::new();
    // One request every 2 s: the second request must land within 2 s of the first, even on a busy machine.
    let rec = g.new_key(json!({"rate_limit": {"per_minute": 30, "burst": 1}}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    check_proxy_problem(&g.get_with(secret(&rec), "/reports"), 429, "rate_limited");
    let again = poll(Duration::from_secs(6), || (g.get_with(secret(&rec), "/reports").status == 200).then_some(()));
    assert!(again.is_some(), "the bucket never refilled");
}
