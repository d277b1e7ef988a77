//! The audit log (SPEC 5 "Audit"): mutations newest first with their actor, a SHA-256 hash chain over
//! canonical JSON from 64 zeros, field names but no values or secrets, the `key`/`tenant`/`action`
//! filters, cursor paging, `/v1/audit/verify`, and a tampered entry in the store found by verify.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::admin_helpers::{audit, entries, entry_hash, for_each_page, get_query, id, patched, rotate, secret, verify};
use crate::helpers::{check_admin_problem, Gateway};

const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn actions(items: &[Value]) -> Vec<String> {
    items.iter().map(|e| e["action"].as_str().unwrap_or_default().to_owned()).collect()
}

/// create, disable, patch description of one key; returns its create answer.
fn three_mutations(g: &Gateway) -> Value {
    let rec = g.new_key(json!({"tenant": "acme"}));
    assert_eq!(g.act(id(&rec), "disable").status, 200);
    patched(g, id(&rec), json!({"description": "audited"}));
    rec
}

/// The whole log, oldest first.
fn chain(g: &Gateway) -> Vec<Value> {
    let page = audit(g, &[("limit", "500")]);
    assert!(page["next_cursor"].is_null(), "more than 500 entries: {page}");
    let mut items = entries(&page);
    items.reverse();
    items
}

#[test]
fn the_audit_log_lists_mutations_newest_first_with_the_env_actor() {
    let g = Gateway::new();
    let rec = three_mutations(&g);
    let page = audit(&g, &[("limit", "100")]);
    assert!(page["next_cursor"].is_null(), "{page}");
    let items = entries(&page);
    assert_eq!(actions(&items[..3]), ["key.update", "key.disable", "key.create"], "{page}");
    for e in &items[..3] {
        assert_eq!((e["target"].as_str(), e["tenant"].as_str()), (Some(id(&rec)), Some("acme")), "{e}");
        assert!(e["at"].is_string() && e["id"].is_string(), "{e}");
    }
    assert_eq!(actions(&items[3..]), ["tenant.create", "tenant.create"], "the harness made acme and globex first");
    assert!(items.iter().all(|e| e["actor"] == "env"), "KEYGATE_ADMIN_TOKEN acts as env: {page}");
    let update = &items[0];
    assert!(update["changes"].as_array().is_some_and(|c| c.contains(&json!("description"))), "{update}");
}

#[test]
fn the_audit_log_is_a_sha256_hash_chain_from_64_zeros() {
    let g = Gateway::new();
    three_mutations(&g);
    let chain = chain(&g);
    assert_eq!(chain.len(), 5, "2 tenants + 3 key mutations");
    assert_eq!(chain[0]["prev_hash"], ZEROS);
    for pair in chain.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "broken link at {}", pair[1]);
    }
    for e in &chain {
        let hash = e["hash"].as_str().unwrap_or_else(|| panic!("no hash: {e}"));
        assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{e}");
        assert_eq!(hash, entry_hash(e), "hash is not SHA-256 of the canonical JSON without hash: {e}");
    }
}

#[test]
fn audit_entries_name_changed_fields_but_hold_no_values_or_secrets() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"description": "first-desc-9f2c", "customer_id": "cust-7d1e"}));
    let rotated = rotate(&g, id(&rec), Some(json!({"grace_period": "1h"})));
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let rotated = rotated.json();
    let rotated_again = rotate(&g, id(&rec), None).json();
    patched(&g, id(&rec), json!({"description": "second-desc-b81a", "customer_id": "cust-44aa", "role": "readonly"}));
    let text = get_query(&g, "/v1/audit", &[("limit", "500")], Some(&g.admin_token.clone())).text;
    for s in [secret(&rec), secret(&rotated), secret(&rotated_again)] {
        assert!(!text.contains(s), "a secret is in the audit log");
        let random = &s[s.len() - 38..s.len() - 6];
        assert!(!text.contains(random), "the random part of a secret is in the audit log");
    }
    for value in ["first-desc-9f2c", "second-desc-b81a", "cust-7d1e", "cust-44aa"] {
        assert!(!text.contains(value), "the value {value:?} is in the audit log: {text}");
    }
    let items = entries(&serde_json::from_str(&text).expect("JSON"));
    for e in &items {
        let changes = e["changes"].as_array().unwrap_or_else(|| panic!("changes is not a list: {e}"));
        for c in changes {
            let c = c.as_str().unwrap_or_else(|| panic!("a change is not a string: {e}"));
            assert!(!c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "not a field name: {c:?}");
        }
    }
    let update = items.iter().find(|e| e["action"] == "key.update").expect("a key.update entry");
    let changes: HashSet<&str> = update["changes"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(changes, HashSet::from(["description", "customer_id", "role"]), "{update}");
}

#[test]
fn audit_filters_by_key_tenant_and_action() {
    let g = Gateway::new();
    let a = g.new_key(json!({"tenant": "acme"}));
    let b = g.new_key(json!({"tenant": "globex"}));
    assert_eq!(g.act(id(&a), "disable").status, 200);
    assert_eq!(g.act(id(&b), "revoke").status, 200);
    let by_key = entries(&audit(&g, &[("key", id(&a))]));
    assert_eq!(actions(&by_key), ["key.disable", "key.create"]);
    assert!(by_key.iter().all(|e| e["target"] == a["id"]));
    let by_tenant = entries(&audit(&g, &[("tenant", "globex")]));
    assert!(!by_tenant.is_empty() && by_tenant.iter().all(|e| e["tenant"] == "globex"), "{by_tenant:?}");
    assert!(by_tenant.iter().any(|e| e["action"] == "key.revoke" && e["target"] == b["id"]));
    assert!(!by_tenant.iter().any(|e| e["target"] == a["id"]));
    let by_action = entries(&audit(&g, &[("action", "key.create")]));
    assert_eq!(by_action.len(), 2, "{by_action:?}");
    assert!(by_action.iter().all(|e| e["action"] == "key.create"));
    let combined = entries(&audit(&g, &[("tenant", "acme"), ("action", "key.disable")]));
    assert_eq!(combined.len(), 1);
    assert_eq!(combined[0]["target"], a["id"]);
}

#[test]
fn audit_cursor_paging_with_limit_2_visits_every_entry_once() {
    let g = Gateway::new();
    three_mutations(&g);
    three_mutations(&g);
    let all = chain(&g);
    assert_eq!(all.len(), 8);
    let mut seen = Vec::new();
    for_each_page(&g, audit, &[], 2, 10, |_, page| {
        let items = entries(page);
        assert!(items.len() <= 2, "{page}");
        seen.extend(items.into_iter().map(|e| e["id"].as_str().unwrap_or_default().to_owned()));
        true
    });
    let mut want: Vec<String> = all.iter().map(|e| e["id"].as_str().unwrap_or_default().to_owned()).collect();
    want.reverse();
    assert_eq!(seen, want, "every entry once, newest first");
}

#[test]
fn a_bad_audit_cursor_or_limit_is_422() {
    let g = Gateway::new();
    let token = g.admin_token.clone();
    check_admin_problem(&get_query(&g, "/v1/audit", &[("cursor", "garbage!")], Some(&token)), 422, "validation_failed");
    check_admin_problem(&get_query(&g, "/v1/audit", &[("limit", "0")], Some(&token)), 422, "validation_failed");
}

#[test]
fn verify_answers_ok_with_the_number_of_entries() {
    let g = Gateway::new();
    three_mutations(&g);
    let v = verify(&g);
    assert_eq!(v, json!({"ok": true, "entries": 5, "first_bad": null}));
}

#[test]
fn verify_names_an_entry_tampered_with_in_the_store() {
    let mut g = Gateway::new();
    three_mutations(&g);
    let before = chain(&g);
    assert_eq!(verify(&g)["ok"], true);
    g.stop();
    let path = g.config["storage"]["path"].as_str().expect("storage.path").to_owned();
    let tampered_id = {
        let db = sled::open(&path).unwrap_or_else(|e| panic!("open the store {path}: {e}"));
        let tree = db.open_tree("audit").expect("audit tree");
        let (k, v) = tree.iter().nth(1).expect("a 2nd entry").expect("readable");
        assert_eq!(k.len(), 8, "audit keys are 8-byte big-endian sequence numbers");
        let mut entry: Value = serde_json::from_slice(&v).expect("an entry is JSON");
        assert_eq!(entry["id"], before[1]["id"], "the 2nd stored entry is the 2nd of the log");
        entry["actor"] = json!("mallory");
        tree.insert(k, serde_json::to_vec(&entry).expect("JSON")).expect("write back");
        tree.flush().expect("flush tree");
        db.flush().expect("flush db");
        entry["id"].as_str().expect("id").to_owned()
    };
    g.start_again();
    let v = verify(&g);
    assert_eq!(v, json!({"ok": false, "entries": before.len(), "first_bad": tampered_id}), "{v}");
}
