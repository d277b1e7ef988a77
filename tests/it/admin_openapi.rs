//! `GET /openapi.json` (SPEC 5): served without a token, an OpenAPI 3 document that lists every route
//! of SPEC 5's table with its methods, whose create-key body schema describes `name`, and which
//! describes what the server really answers (found by `scripts/schemathesis`): unique operation ids,
//! `X-Request-Id` on every answer, errors as problem+json, the 500 the store can cause, a rate limit
//! as exactly one period.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::{check_admin_problem, key_body, Gateway};

/// SPEC 5's route table: (method, path) with `{id}` path parameters.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("get", "/v1/keys/{id}"),
    ("patch", "/v1/keys/{id}"),
    ("delete", "/v1/keys/{id}"),
    ("post", "/v1/keys/{id}/rotate"),
    ("post", "/v1/keys/{id}/revoke"),
    ("post", "/v1/keys/{id}/disable"),
    ("post", "/v1/keys/{id}/enable"),
    ("post", "/v1/tenants"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{id}"),
    ("patch", "/v1/tenants/{id}"),
    ("get", "/v1/groups"),
    ("get", "/v1/audit"),
    ("get", "/v1/audit/verify"),
];

fn document(g: &Gateway) -> Value {
    let r = g.api_as("GET", "/openapi.json", None, None);
    assert_eq!(r.status, 200, "/openapi.json without a token: {r:?}");
    r.json()
}

/// Follows a local `$ref` (`#/components/schemas/X`) if `v` is one.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {r}"));
            doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {r}"))
        }
        None => v,
    }
}

#[test]
fn openapi_json_is_served_without_a_token_as_openapi_3() {
    let g = Gateway::new();
    let doc = document(&g);
    let version = doc["openapi"].as_str().unwrap_or_else(|| panic!("no openapi version: {doc}"));
    assert!(version.starts_with('3'), "openapi {version:?}");
    assert!(doc["paths"].is_object(), "no paths object");
    assert!(doc["info"]["title"].is_string(), "no info.title");
}

#[test]
fn openapi_lists_every_route_and_method_of_the_admin_api() {
    let g = Gateway::new();
    let doc = document(&g);
    let paths = doc["paths"].as_object().expect("paths");
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|(method, path)| paths.get(*path).and_then(|p| p.get(*method)).is_none())
        .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert!(missing.is_empty(), "routes missing from the OpenAPI document: {missing:?}");
}

#[test]
fn openapi_lists_its_own_route() {
    // SPEC 5's table has `GET /openapi.json` among the routes of the admin API.
    let g = Gateway::new();
    let doc = document(&g);
    assert!(doc["paths"]["/openapi.json"].get("get").is_some(), "GET /openapi.json is not in its own document");
}

#[test]
fn the_create_key_body_schema_describes_name() {
    let g = Gateway::new();
    let doc = document(&g);
    let body = &doc["paths"]["/v1/keys"]["post"]["requestBody"];
    let body = resolve(&doc, body);
    let schema = resolve(&doc, &body["content"]["application/json"]["schema"]);
    assert!(schema.is_object(), "no JSON schema for the create body: {body}");
    let props = schema["properties"].as_object().unwrap_or_else(|| panic!("create body without properties: {schema}"));
    assert!(props.contains_key("name"), "the create body schema does not mention name: {schema}");
    for field in ["kind", "tenant", "environment", "expires_at"] {
        assert!(props.contains_key(field), "the create body schema lacks {field}: {schema}");
    }
}

#[test]
fn the_rate_limit_schema_is_exactly_one_period_of_at_least_1_as_the_server_checks() {
    let g = Gateway::new();
    let doc = document(&g);
    let create = &doc["paths"]["/v1/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let create = resolve(&doc, create);
    assert!(create["properties"]["rate_limit"].to_string().contains("#/components/schemas/RateLimitWire"), "{create}");
    let schema = &doc["components"]["schemas"]["RateLimitWire"];
    let branches = schema["oneOf"].as_array().unwrap_or_else(|| panic!("not a oneOf: {schema}"));
    let mut periods = Vec::new();
    for branch in branches {
        let period = branch["required"][0].as_str().unwrap_or_else(|| panic!("no required period: {branch}"));
        assert_eq!(branch["required"].as_array().map(Vec::len), Some(1), "{branch}");
        assert_eq!(branch["additionalProperties"], false, "{branch}");
        let mut names: Vec<&str> =
            branch["properties"].as_object().expect("properties").keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        let mut expected = vec!["burst", period];
        expected.sort_unstable();
        assert_eq!(names, expected, "{branch}");
        for name in names {
            assert_eq!(branch["properties"][name]["minimum"], 1, "{branch}");
        }
        // The server takes what the branch admits, and refuses what it does not.
        let limit = json!({period: 7, "burst": 3});
        let rec = g.new_key(json!({"rate_limit": limit}));
        assert_eq!(rec["rate_limit"], limit);
        for refused in [json!({period: 0}), json!({period: 7, "burst": 0}), json!({period: 7, "per_day": 7})] {
            let r = g.api("POST", "/v1/keys", Some(key_body(json!({"rate_limit": refused}))));
            check_admin_problem(&r, 422, "validation_failed");
        }
        periods.push(period);
    }
    periods.sort_unstable();
    assert_eq!(periods, ["per_hour", "per_minute", "per_second"]);
    let two = json!({"per_second": 1, "per_minute": 1});
    check_admin_problem(
        &g.api("POST", "/v1/keys", Some(key_body(json!({"rate_limit": two})))),
        422,
        "validation_failed",
    );
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
