//! `GET /v1/keys` (SPEC 5 "List filters"): every filter (`status`, `expiration`, `q`, `tenant`, `kind`,
//! `environment`, `unused_since`), `limit` and its bounds, the cursor, unknown parameters, newest-first
//! order, `total`, and cursor walks over 1,000 keys — also while new keys are being created.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use crate::admin_helpers::{create_many, expired_key, get_query, id, id_set, ids, list, secret, set_of, walk};
use crate::helpers::{check_admin_problem, check_field_error, now, rfc3339, Gateway};

#[test]
fn status_filter_takes_a_comma_list_including_inactive_and_revoked() {
    let g = Gateway::new();
    let t = g.new_tenant(None);
    let active = g.new_key(json!({"tenant": t}));
    let inactive = g.new_key(json!({"tenant": t}));
    let revoked = g.new_key(json!({"tenant": t}));
    assert_eq!(g.act(id(&inactive), "disable").status, 200);
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    let (a, i, r) = (id(&active), id(&inactive), id(&revoked));
    for (status, want) in [
        ("active", vec![a]),
        ("inactive", vec![i]),
        ("revoked", vec![r]),
        ("inactive,revoked", vec![i, r]),
        ("active,inactive,revoked", vec![a, i, r]),
    ] {
        let page = list(&g, &[("tenant", &t), ("status", status)]);
        assert_eq!(id_set(&page), set_of(&want), "status={status}: {page}");
        assert_eq!(page["total"], want.len(), "status={status}: {page}");
    }
}

#[test]
fn expiration_filter_tells_valid_expiring_soon_and_expired_apart() {
    let g = Gateway::new();
    let t = g.new_tenant(None);
    let never = g.new_key(json!({"tenant": t}));
    let later = g.new_key(json!({"tenant": t, "expires_at": rfc3339(now() + time::Duration::days(30))}));
    let soon = g.new_key(json!({"tenant": t, "expires_at": rfc3339(now() + time::Duration::days(2))}));
    let gone = expired_key(&g, json!({"tenant": t}));
    for (state, want) in
        [("valid", vec![id(&never), id(&later)]), ("expiring_soon", vec![id(&soon)]), ("expired", vec![id(&gone)])]
    {
        let page = list(&g, &[("tenant", &t), ("expiration", state)]);
        assert_eq!(id_set(&page), set_of(&want), "expiration={state}: {page}");
        assert_eq!(page["total"], want.len(), "expiration={state}: {page}");
    }
    let page = list(&g, &[("tenant", &t), ("status", "expired")]);
    assert_eq!(id_set(&page), set_of(&[id(&gone)]), "status=expired: {page}");
}

#[test]
fn q_matches_a_case_insensitive_substring_of_name_or_description() {
    let g = Gateway::new();
    let t = g.new_tenant(None);
    let by_name = g.new_key(json!({"tenant": t, "name": "Nightly-Export runner"}));
    let by_description = g.new_key(json!({"tenant": t, "description": "feeds the NIGHTLY-export dashboard"}));
    let neither = g.new_key(json!({"tenant": t, "name": "ledger sync", "description": "hourly"}));
    let page = list(&g, &[("tenant", &t), ("q", "nightly-EXPORT")]);
    assert_eq!(id_set(&page), set_of(&[id(&by_name), id(&by_description)]), "{page}");
    assert_eq!(page["total"], 2);
    let page = list(&g, &[("tenant", &t), ("q", "LEDGER SY")]);
    assert_eq!(id_set(&page), set_of(&[id(&neither)]), "{page}");
    let page = list(&g, &[("tenant", &t), ("q", "no such text anywhere")]);
    assert_eq!((ids(&page).len(), page["total"].as_u64()), (0, Some(0)), "{page}");
}

#[test]
fn tenant_filter_matches_only_that_tenants_keys() {
    let g = Gateway::new();
    let acme = g.new_key(json!({"tenant": "acme"}));
    let globex: Vec<_> = (0..2).map(|_| g.new_key(json!({"tenant": "globex"}))).collect();
    g.new_key(json!({"kind": "service"}));
    let page = list(&g, &[("tenant", "globex")]);
    assert_eq!(id_set(&page), set_of(&[id(&globex[0]), id(&globex[1])]), "{page}");
    assert_eq!(page["total"], 2);
    let page = list(&g, &[("tenant", "acme")]);
    assert_eq!(id_set(&page), set_of(&[id(&acme)]), "{page}");
}

#[test]
fn kind_filter_separates_service_and_tenant_keys() {
    let g = Gateway::new();
    let tenant_key = g.new_key(json!({"tenant": "acme"}));
    let service = g.new_key(json!({"kind": "service"}));
    let page = list(&g, &[("kind", "service")]);
    assert_eq!(id_set(&page), set_of(&[id(&service)]), "{page}");
    assert_eq!(page["total"], 1);
    let page = list(&g, &[("kind", "tenant")]);
    assert_eq!(id_set(&page), set_of(&[id(&tenant_key)]), "{page}");
}

#[test]
fn environment_filter_matches_only_that_environment() {
    let g = Gateway::new();
    let t = g.new_tenant(None);
    let mut by_env = HashMap::new();
    for env in ["production", "staging", "development"] {
        by_env.insert(env, g.new_key(json!({"tenant": t, "environment": env})));
    }
    for env in ["production", "staging", "development"] {
        let page = list(&g, &[("tenant", &t), ("environment", env)]);
        assert_eq!(id_set(&page), set_of(&[id(&by_env[env])]), "environment={env}: {page}");
        assert_eq!(page["items"][0]["environment"], env);
    }
}

#[test]
fn unused_since_matches_never_used_keys_but_not_a_key_used_just_now() {
    let g = Gateway::new();
    let t = g.new_tenant(None);
    let used = g.new_key(json!({"tenant": t}));
    let unused = g.new_key(json!({"tenant": t}));
    assert_eq!(g.get_with(secret(&used), "/reports").status, 200);
    let page = list(&g, &[("tenant", &t), ("unused_since", "1h")]);
    assert_eq!(id_set(&page), set_of(&[id(&unused)]), "{page}");
    assert_eq!(page["total"], 1);
}

#[test]
fn limit_defaults_to_50() {
    let g = Gateway::new();
    let t = g.new_tenant(Some(100));
    create_many(&g, &t, 51, 4);
    let page = list(&g, &[("tenant", &t)]);
    assert_eq!(ids(&page).len(), 50, "default page size");
    assert_eq!(page["total"], 51);
    assert!(page["next_cursor"].is_string(), "a 51st key remains: {}", page["next_cursor"]);
}

#[test]
fn limit_outside_1_to_500_is_422_naming_limit() {
    let g = Gateway::new();
    let token = g.admin_token.clone();
    for bad in ["0", "501"] {
        let r = get_query(&g, "/v1/keys", &[("limit", bad)], Some(&token));
        check_field_error(&r, "limit");
    }
    for good in ["1", "500"] {
        let r = get_query(&g, "/v1/keys", &[("limit", good)], Some(&token));
        assert_eq!(r.status, 200, "limit={good}: {r:?}");
    }
}

#[test]
fn a_bad_cursor_is_422() {
    let g = Gateway::new();
    g.new_key(json!({}));
    let token = g.admin_token.clone();
    let r = get_query(&g, "/v1/keys", &[("cursor", "not-a-cursor!")], Some(&token));
    check_admin_problem(&r, 422, "validation_failed");
}

#[test]
fn an_unknown_query_parameter_is_400_bad_request() {
    let g = Gateway::new();
    let token = g.admin_token.clone();
    let r = get_query(&g, "/v1/keys", &[("colour", "red")], Some(&token));
    check_admin_problem(&r, 400, "bad_request");
}

#[test]
fn the_list_is_newest_first() {
    let g = Gateway::new();
    let t = g.new_tenant(None);
    let created: Vec<String> = (0..5).map(|_| id(&g.new_key(json!({"tenant": t}))).to_owned()).collect();
    let page = list(&g, &[("tenant", &t)]);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(ids(&page), newest_first, "{page}");
    // Across pages too.
    let first = list(&g, &[("tenant", &t), ("limit", "2")]);
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let second = list(&g, &[("tenant", &t), ("limit", "2"), ("cursor", &cursor)]);
    assert_eq!([ids(&first), ids(&second)].concat(), newest_first[..4].to_vec());
}

#[test]
fn total_counts_every_match_not_just_the_page() {
    let g = Gateway::new();
    let t = g.new_tenant(None);
    for _ in 0..7 {
        g.new_key(json!({"tenant": t}));
    }
    let page = list(&g, &[("tenant", &t), ("limit", "3")]);
    assert_eq!((ids(&page).len(), page["total"].as_u64()), (3, Some(7)), "{page}");
    let cursor = page["next_cursor"].as_str().expect("next page").to_owned();
    let next = list(&g, &[("tenant", &t), ("limit", "3"), ("cursor", &cursor)]);
    assert_eq!(next["total"], 7, "total is the same on every page: {next}");
}

/// Asserts `seen` holds no id twice.
fn assert_no_duplicates(seen: &[String]) {
    let mut once = HashSet::new();
    let twice: Vec<&String> = seen.iter().filter(|i| !once.insert(*i)).collect();
    assert!(twice.is_empty(), "ids returned more than once: {twice:?}");
}

#[test]
fn a_cursor_walk_over_1000_keys_returns_every_key_exactly_once() {
    let g = Gateway::new();
    let t = g.new_tenant(Some(2000));
    let created: HashSet<String> = create_many(&g, &t, 1000, 8).iter().map(|r| id(r).to_owned()).collect();
    assert_eq!(created.len(), 1000);
    let seen = walk(&g, &[("tenant", &t)], 100, 20, |_| {});
    assert_no_duplicates(&seen);
    assert_eq!(seen.len(), 1000, "keys seen in the walk");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), created);
}

#[test]
fn a_cursor_walk_while_keys_are_created_returns_every_earlier_key_exactly_once() {
    let g = Gateway::new();
    let t = g.new_tenant(Some(2000));
    let before: HashSet<String> = create_many(&g, &t, 1000, 8).iter().map(|r| id(r).to_owned()).collect();
    let mut added = HashSet::new();
    let seen = walk(&g, &[("tenant", &t)], 100, 30, |_| {
        for rec in create_many(&g, &t, 10, 2) {
            added.insert(id(&rec).to_owned());
        }
    });
    assert!(!added.is_empty());
    assert_no_duplicates(&seen);
    let seen: HashSet<String> = seen.into_iter().collect();
    let missing: Vec<&String> = before.difference(&seen).collect();
    assert!(missing.is_empty(), "{} earlier keys never listed, e.g. {:?}", missing.len(), missing.first());
    let strangers: Vec<&String> = seen.difference(&before).filter(|i| !added.contains(*i)).collect();
    assert!(strangers.is_empty(), "ids that were never created: {strangers:?}");
}
