//! Small helpers shared by the `admin_*` test modules (SPEC 5): record accessors, list and audit
//! queries with assertions on their shape, bulk key creation from a few threads, a key that has
//! expired, and the audit hash of an entry as SPEC 5 defines it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{hex, key_body, now, poll, rfc3339, Gateway, RequestExt, Resp};

/// The id of a record.
pub(crate) fn id(rec: &Value) -> &str {
    rec["id"].as_str().unwrap_or_else(|| panic!("record without id: {rec}"))
}

/// The secret of a create or rotate answer.
pub(crate) fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().unwrap_or_else(|| panic!("answer without secret: {rec}"))
}

/// `GET path` on the admin API with `token` and the query parameters `params` (URL-encoded).
pub(crate) fn get_query(g: &Gateway, path: &str, params: &[(&str, &str)], token: Option<&str>) -> Resp {
    g.admin_request("GET", path, token).query(params).fetch()
}

/// `GET /v1/keys?params` with `token`; asserts 200 and the page shape `{items, next_cursor, total}`.
pub(crate) fn list_as(g: &Gateway, token: &str, params: &[(&str, &str)]) -> Value {
    let r = get_query(g, "/v1/keys", params, Some(token));
    assert_eq!(r.status, 200, "GET /v1/keys {params:?}: {r:?}");
    let page = r.json();
    assert!(page["items"].is_array(), "no items array: {page}");
    assert!(page.get("next_cursor").is_some_and(|c| c.is_null() || c.is_string()), "next_cursor: {page}");
    assert!(page["total"].is_u64(), "total: {page}");
    page
}

/// `GET /v1/keys?params` with the env token.
pub(crate) fn list(g: &Gateway, params: &[(&str, &str)]) -> Value {
    let token = g.admin_token.clone();
    list_as(g, &token, params)
}

/// The ids of a page's items, in order.
pub(crate) fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap_or_else(|| panic!("no items: {page}")).iter().map(|i| id(i).to_owned()).collect()
}

/// The ids of a page's items, as a set.
pub(crate) fn id_set(page: &Value) -> HashSet<String> {
    ids(page).into_iter().collect()
}

/// A set of ids from string slices.
pub(crate) fn set_of(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `PATCH /v1/keys/{id}` with the env token.
pub(crate) fn patch(g: &Gateway, key_id: &str, body: Value) -> Resp {
    g.api("PATCH", &format!("/v1/keys/{key_id}"), Some(body))
}

/// `PATCH /v1/keys/{id}`; asserts 200 and returns the record.
pub(crate) fn patched(g: &Gateway, key_id: &str, body: Value) -> Value {
    let r = patch(g, key_id, body.clone());
    assert_eq!(r.status, 200, "PATCH {key_id} {body}: {r:?}");
    r.json()
}

/// `POST /v1/keys/{id}/rotate` with an optional body.
pub(crate) fn rotate(g: &Gateway, key_id: &str, body: Option<Value>) -> Resp {
    g.api("POST", &format!("/v1/keys/{key_id}/rotate"), body)
}

/// `GET /v1/audit?params` with `token`; asserts 200 and the shape `{items, next_cursor}`.
pub(crate) fn audit_as(g: &Gateway, token: &str, params: &[(&str, &str)]) -> Value {
    let r = get_query(g, "/v1/audit", params, Some(token));
    assert_eq!(r.status, 200, "GET /v1/audit {params:?}: {r:?}");
    let page = r.json();
    assert!(page["items"].is_array(), "no items array: {page}");
    assert!(page.get("next_cursor").is_some_and(|c| c.is_null() || c.is_string()), "next_cursor: {page}");
    page
}

/// `GET /v1/audit?params` with the env token.
pub(crate) fn audit(g: &Gateway, params: &[(&str, &str)]) -> Value {
    let token = g.admin_token.clone();
    audit_as(g, &token, params)
}

/// The audit entries of a page.
pub(crate) fn entries(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_else(|| panic!("no items: {page}"))
}

/// `GET /v1/audit/verify`; asserts 200.
pub(crate) fn verify(g: &Gateway) -> Value {
    let r = g.api("GET", "/v1/audit/verify", None);
    assert_eq!(r.status, 200, "GET /v1/audit/verify: {r:?}");
    r.json()
}

/// SPEC 5: the lowercase hex SHA-256 of the entry's canonical JSON without its `hash` member (keys
/// sorted — serde_json's default map is a BTreeMap — and no whitespace).
pub(crate) fn entry_hash(entry: &Value) -> String {
    let mut v = entry.clone();
    v.as_object_mut().unwrap_or_else(|| panic!("entry is not an object: {entry}")).remove("hash");
    let canonical = serde_json::to_string(&v).expect("serializable");
    hex(&Sha256::digest(canonical.as_bytes()))
}

/// Creates `n` keys of `tenant` (environment production) from `threads` concurrent clients;
/// returns the create answers in no particular order.
pub(crate) fn create_many(g: &Gateway, tenant: &str, n: usize, threads: usize) -> Vec<Value> {
    let client = g.client("127.0.0.1");
    let url = format!("http://127.0.0.1:{}/v1/keys", g.ports.admin);
    let token = g.admin_token.clone();
    let per = n.div_ceil(threads);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                let count = per.min(n.saturating_sub(t * per));
                s.spawn(move || {
                    (0..count)
                        .map(|_| {
                            let body = key_body(json!({"tenant": tenant}));
                            let r = client.post(&url).bearer(&token).json(&body).fetch();
                            assert_eq!(r.status, 201, "bulk create: {r:?}");
                            r.json()
                        })
                        .collect::<Vec<Value>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("create thread")).collect()
    })
}

/// A key (created with `fields`) whose expiry has passed: created to expire about four seconds from
/// now (time enough for the create on a busy machine), then polled until the admin API shows it `expired`.
pub(crate) fn expired_key(g: &Gateway, fields: Value) -> Value {
    let mut fields = fields;
    fields["expires_at"] = json!(rfc3339(now() + time::Duration::seconds(4)));
    let rec = g.new_key(fields);
    let key_id = id(&rec).to_owned();
    poll(Duration::from_secs(8), || (g.key(&key_id)["status"] == "expired").then_some(()))
        .unwrap_or_else(|| panic!("key {key_id} never became expired: {}", g.key(&key_id)));
    rec
}

/// Fetches a cursor-paged list (`fetch` is [`list`] or [`audit`]) page by page with `params` plus
/// `limit`, handing each page to `visit` (with its number) until the last page or until `visit`
/// returns false. Fails after `max_pages` pages.
pub(crate) fn for_each_page(
    g: &Gateway,
    fetch: fn(&Gateway, &[(&str, &str)]) -> Value,
    params: &[(&str, &str)],
    limit: usize,
    max_pages: usize,
    mut visit: impl FnMut(usize, &Value) -> bool,
) {
    let limit = limit.to_string();
    let mut cursor: Option<String> = None;
    for page_no in 0..max_pages {
        let mut q: Vec<(&str, &str)> = params.to_vec();
        q.push(("limit", &limit));
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let page = fetch(g, &q);
        if !visit(page_no, &page) {
            return;
        }
        match page["next_cursor"].as_str() {
            None => return,
            Some(c) => cursor = Some(c.to_owned()),
        }
    }
    panic!("the walk did not end within {max_pages} pages");
}

/// Walks `GET /v1/keys` page by page with `params` plus `limit`; calls `between` after each page
/// that has a next one; returns the ids in the order seen. Fails after `max_pages` pages.
pub(crate) fn walk(
    g: &Gateway,
    params: &[(&str, &str)],
    limit: usize,
    max_pages: usize,
    mut between: impl FnMut(usize),
) -> Vec<String> {
    let mut seen = Vec::new();
    for_each_page(g, list, params, limit, max_pages, |page_no, page| {
        let items = ids(page);
        assert!(items.len() <= limit, "page larger than limit: {}", items.len());
        seen.extend(items);
        if page["next_cursor"].is_string() {
            between(page_no);
        }
        true
    });
    seen
}
