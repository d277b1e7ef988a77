//! Request validation and the error shape of the admin API (SPEC 4.2, 5 "Errors"): 413 over 64 KiB,
//! 400 for bodies that are not a JSON object, 422 naming every bad field at once, 404 and 405 as
//! problem+json, and every error's `request_id` equal to its `X-Request-Id` header.

use serde_json::{json, Value};

use crate::admin_helpers::id;
use crate::helpers::{check_admin_problem, key_body, Gateway, RequestExt, Resp};

/// A raw admin request with the env token, `Content-Type: application/json` and `body`.
fn raw(g: &Gateway, method: &str, path: &str, body: &str) -> Resp {
    let token = g.admin_token.clone();
    g.admin_request(method, path, Some(&token)).header("content-type", "application/json").body(body.to_owned()).fetch()
}

/// The generic problem+json shape (for answers whose code SPEC does not name, like 405).
fn check_problem_shape(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{r:?}");
    let ctype = r.header("content-type").unwrap_or_default();
    assert_eq!(ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase(), "application/problem+json", "{r:?}");
    let body = r.json();
    let code = body["code"].as_str().unwrap_or_else(|| panic!("no code: {body}"));
    assert!(!code.is_empty(), "{body}");
    assert_eq!(body["type"], format!("urn:keygate:error:{code}"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    for field in ["title", "detail", "request_id"] {
        assert!(body[field].as_str().is_some_and(|s| !s.is_empty()), "{field}: {body}");
    }
    body
}

#[test]
fn a_body_over_64_kib_is_413_payload_too_large() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let big = json!({"name": "big", "tenant": "acme", "description": "x".repeat(65 * 1024)}).to_string();
    check_admin_problem(&raw(&g, "POST", "/v1/keys", &big), 413, "payload_too_large");
    let big_patch = json!({"description": "y".repeat(65 * 1024)}).to_string();
    check_admin_problem(&raw(&g, "PATCH", &format!("/v1/keys/{}", id(&rec)), &big_patch), 413, "payload_too_large");
    assert!(g.key(id(&rec))["description"].is_null(), "the oversized patch was applied");
}

#[test]
fn a_body_that_is_not_json_is_400_bad_request() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    for body in ["{not json", "name=x&tenant=acme", "{\"name\": \"ok name\", \"tenant\": \"acme\""] {
        check_admin_problem(&raw(&g, "POST", "/v1/keys", body), 400, "bad_request");
        check_admin_problem(&raw(&g, "PATCH", &format!("/v1/keys/{}", id(&rec)), body), 400, "bad_request");
    }
}

#[test]
fn a_json_array_body_is_400_bad_request() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let array = json!([key_body(json!({}))]).to_string();
    check_admin_problem(&raw(&g, "POST", "/v1/keys", &array), 400, "bad_request");
    check_admin_problem(&raw(&g, "PATCH", &format!("/v1/keys/{}", id(&rec)), "[]"), 400, "bad_request");
    check_admin_problem(&raw(&g, "POST", "/v1/tenants", "[]"), 400, "bad_request");
}

#[test]
fn an_empty_body_on_create_is_400_bad_request() {
    let g = Gateway::new();
    check_admin_problem(&raw(&g, "POST", "/v1/keys", ""), 400, "bad_request");
    let token = g.admin_token.clone();
    let r = g.admin_request("POST", "/v1/keys", Some(&token)).fetch(); // no body, no content type
    check_admin_problem(&r, 400, "bad_request");
}

#[test]
fn a_422_names_every_bad_field_at_once() {
    let g = Gateway::new();
    let r = g.api(
        "POST",
        "/v1/keys",
        Some(json!({"name": "x", "tenant": "acme", "role": "superuser", "ip_allowlist": ["10.0.0.0/33"]})),
    );
    let body = check_admin_problem(&r, 422, "validation_failed");
    let fields = body["fields"].as_object().unwrap_or_else(|| panic!("fields is not an object: {body}"));
    for f in ["name", "role", "ip_allowlist"] {
        assert!(fields.get(f).and_then(Value::as_str).is_some_and(|m| !m.is_empty()), "fields lacks {f}: {body}");
    }
}

#[test]
fn an_unknown_route_is_404_not_found_problem_json() {
    let g = Gateway::new();
    for path in ["/v1/nothing-here", "/v2/keys", "/v1/keys/AAAAAAAAAAAAAAAA/explode"] {
        check_admin_problem(&g.api("GET", path, None), 404, "not_found");
    }
    check_admin_problem(&g.api_as("GET", "/no/such/route", None, None), 404, "not_found");
}

#[test]
fn an_id_that_is_not_utf8_is_404_not_found_problem_json_on_every_id_route() {
    // Found by the admin_decode fuzz target: axum answered these with a text/plain 400 of its own.
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    for bad_id in ["%FF", "%C3%28", "AAAA%80AAAAAAAAAAAA"] {
        for (method, path, body) in [
            ("GET", format!("/v1/keys/{bad_id}"), None),
            ("PATCH", format!("/v1/keys/{bad_id}"), Some(json!({"description": "x"}))),
            ("DELETE", format!("/v1/keys/{bad_id}"), None),
            ("POST", format!("/v1/keys/{bad_id}/rotate"), Some(json!({}))),
            ("POST", format!("/v1/keys/{bad_id}/revoke"), None),
            ("POST", format!("/v1/keys/{bad_id}/disable"), None),
            ("POST", format!("/v1/keys/{bad_id}/enable"), None),
            ("GET", format!("/v1/tenants/{bad_id}"), None),
            ("PATCH", format!("/v1/tenants/{bad_id}"), Some(json!({"name": "Renamed"}))),
        ] {
            check_admin_problem(&g.api(method, &path, body), 404, "not_found");
        }
        check_admin_problem(&g.api_as("GET", &format!("/v1/keys/{bad_id}"), None, None), 401, "unauthorized");
    }
    assert_eq!(g.key(id(&rec))["status"], "active");
}

#[test]
fn an_unknown_id_is_404_before_its_body_is_looked_at() {
    let g = Gateway::new();
    for path in ["/v1/keys/AAAAAAAAAAAAAAAA", "/v1/keys/nope", "/v1/tenants/nope", "/v1/tenants/%FF"] {
        check_admin_problem(&raw(&g, "PATCH", path, "[not json"), 404, "not_found");
    }
    check_admin_problem(&raw(&g, "POST", "/v1/keys/AAAAAAAAAAAAAAAA/rotate", "[not json"), 404, "not_found");
}

#[test]
fn a_wrong_method_on_a_route_is_405_problem_json() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    for (method, path) in [
        ("PUT", "/v1/keys".to_owned()),
        ("DELETE", "/v1/keys".to_owned()),
        ("PUT", format!("/v1/keys/{}", id(&rec))),
        ("GET", format!("/v1/keys/{}/rotate", id(&rec))),
        ("DELETE", "/v1/tenants/acme".to_owned()),
        ("POST", "/v1/audit".to_owned()),
    ] {
        check_problem_shape(&g.api(method, &path, None), 405);
    }
    assert_eq!(g.key(id(&rec))["status"], "active");
}

#[test]
fn every_error_answer_is_problem_json_with_the_request_id_of_its_header() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.act(id(&rec), "revoke").status, 200);
    let big = json!({"name": "big", "tenant": "acme", "description": "x".repeat(65 * 1024)}).to_string();
    let answers: Vec<(u16, Resp)> = vec![
        (400, raw(&g, "POST", "/v1/keys", "{oops")),
        (401, g.api_as("GET", "/v1/keys", None, None)),
        (404, g.api("GET", "/v1/keys/AAAAAAAAAAAAAAAA", None)),
        (404, g.api("GET", "/v1/unknown", None)),
        (405, g.api("PUT", "/v1/keys", None)),
        (409, g.act(id(&rec), "revoke")),
        (413, raw(&g, "POST", "/v1/keys", &big)),
        (422, g.api("POST", "/v1/keys", Some(json!({"name": "x", "tenant": "acme"})))),
    ];
    for (status, r) in answers {
        let body = check_problem_shape(&r, status);
        let header = r.header("x-request-id").unwrap_or_else(|| panic!("no X-Request-Id on {r:?}"));
        assert_eq!(body["request_id"].as_str(), Some(header.as_str()), "{r:?}");
    }
    // A sane client-sent X-Request-Id is the one reported.
    let token = g.admin_token.clone();
    let r = g
        .admin_request("GET", "/v1/keys/AAAAAAAAAAAAAAAA", Some(&token))
        .header("x-request-id", "trace-abc.123")
        .fetch();
    let body = check_admin_problem(&r, 404, "not_found");
    assert_eq!(body["request_id"], r.header("x-request-id").unwrap_or_default(), "{r:?}");
}

// Found by scripts/schemathesis: serde's derived structs also read a JSON array of the fields in order.
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
