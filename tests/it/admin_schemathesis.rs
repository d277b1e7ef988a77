//! Regressions found by `scripts/schemathesis` (hostile input against `/openapi.json`): a JSON array
//! holding a body's fields in order was taken for the object, and the document described error
//! answers as `application/json`, reused operation ids and left out the 500 the store can cause.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::admin_helpers::id;
use crate::helpers::{check_admin_problem, Gateway, RequestExt, Resp};

/// A raw admin request with the env token and a JSON content type.
fn raw(g: &Gateway, method: &str, path: &str, body: &str) -> Resp {
    let token = g.admin_token.clone();
    g.admin_request(method, path, Some(&token)).header("content-type", "application/json").body(body.to_owned()).fetch()
}

#[test]
fn an_array_of_a_bodys_fields_in_order_is_400_not_the_object() {
    let g = Gateway::new();
    // CreateTenantBody is {id, name, key_limit}: serde's derive would read this array as one.
    check_admin_problem(&raw(&g, "POST", "/v1/tenants", r#"["arr", "Array Corp", 5]"#), 400, "bad_request");
    check_admin_problem(&g.api("GET", "/v1/tenants/arr", None), 404, "not_found");

    // PatchTenantBody is {name, key_limit}.
    check_admin_problem(&raw(&g, "PATCH", "/v1/tenants/acme", r#"["Renamed", 7]"#), 400, "bad_request");
    let acme = g.api("GET", "/v1/tenants/acme", None).json();
    assert_eq!((acme["name"].as_str(), acme["key_limit"].as_u64()), (Some("Acme"), Some(100)), "{acme}");

    // RotateBody is {expires_at, grace_period}: an array must not rotate the key.
    let rec = g.new_key(json!({}));
    let path = format!("/v1/keys/{}/rotate", id(&rec));
    check_admin_problem(&raw(&g, "POST", &path, "[null, null]"), 400, "bad_request");
    let after = g.key(id(&rec));
    assert_eq!(after["mark"], rec["mark"], "the key was rotated by an array body: {after}");
    assert!(after["rotation"].is_null(), "{after}");

    // Other JSON values that are not objects, with and without leading whitespace.
    for body in ["null", "5", "\"name\"", "true", " \n[]", "\t[{}]"] {
        check_admin_problem(&raw(&g, "POST", "/v1/tenants", body), 400, "bad_request");
        check_admin_problem(&raw(&g, "POST", &path, body), 400, "bad_request");
    }
    // An object after leading whitespace is still a body.
    let r = raw(&g, "POST", "/v1/tenants", " \r\n\t{\"id\": \"spaced\", \"name\": \"Spaced\"}");
    assert_eq!(r.status, 201, "{r:?}");
}

fn document(g: &Gateway) -> Value {
    let r = g.api_as("GET", "/openapi.json", None, None);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[test]
fn error_answers_are_documented_as_problem_json_and_the_ids_are_unique() {
    let g = Gateway::new();
    let doc = document(&g);
    let mut ids = HashSet::new();
    for (method, path, op) in operations(&doc) {
        let op_id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(op_id.to_owned()), "operationId {op_id:?} is used twice ({method} {path})");
        for (status, response) in op["responses"].as_object().expect("responses") {
            assert!(
                response["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{method} {path} {status}: a response needs a description"
            );
            assert!(
                response["headers"].get("X-Request-Id").is_some(),
                "{method} {path} {status}: every answer carries X-Request-Id"
            );
            // `/readyz`'s 503 is its `{"status": "starting"}` JSON; every other error is a problem.
            if (status.starts_with('4') || status.starts_with('5')) && path != "/readyz" {
                let content = response["content"].as_object().unwrap_or_else(|| panic!("{method} {path} {status}"));
                let types: Vec<&String> = content.keys().collect();
                assert_eq!(types, ["application/problem+json"], "{method} {path} {status}");
            }
        }
    }
    // The store can fail under every mutation and the audit reads: 500 internal_error is documented.
    for (method, path) in
        [("post", "/v1/keys"), ("delete", "/v1/keys/{id}"), ("patch", "/v1/tenants/{id}"), ("get", "/v1/audit")]
    {
        assert!(doc["paths"][path][method]["responses"].get("500").is_some(), "{method} {path}: no 500");
    }
}

#[test]
fn an_error_answer_matches_its_documented_content_type() {
    let g = Gateway::new();
    let r = g.api_as("POST", "/v1/keys/AAAAAAAAAAAAAAAA/revoke", None, None);
    check_admin_problem(&r, 401, "unauthorized");
    let r = g.api("POST", "/v1/keys/AAAAAAAAAAAAAAAA/revoke", None);
    check_admin_problem(&r, 404, "not_found");
}
