//! The access log (SPEC 7): one JSON line per proxied or rejected request with exactly the contract's
//! fields, the path without its query string, never a key, an admin token or a query string anywhere the
//! gateway writes (stdout, stderr, the store), and `log.access: off` / a file path.

use std::collections::BTreeSet;
use std::fs;

use serde_json::{json, Value};

use crate::helpers::{check_proxy_problem, forge_key, parse_rfc3339, random_alnum, yaml, Gateway, RequestExt, WHOAMI};
use crate::ops_helpers::{contains_bytes, files_under, json_lines, lines_for, request_id, wait_lines};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

fn id(rec: &Value) -> &str {
    rec["id"].as_str().expect("id")
}

/// SPEC 7, exactly.
const FIELDS: [&str; 12] = [
    "ts",
    "request_id",
    "method",
    "path",
    "status",
    "outcome",
    "key_id",
    "tenant",
    "environment",
    "client_ip",
    "duration_ms",
    "upstream_ms",
];

/// The single stdout line of request `rid`, checked for exactly the contract's fields and their types.
fn the_line(g: &Gateway, rid: &str) -> Value {
    let lines = wait_lines(|| g.stdout(), rid);
    assert_eq!(lines.len(), 1, "expected one access-log line for {rid}, got {lines:?}");
    let line = lines.into_iter().next().expect("one line");
    let fields: BTreeSet<&str> = line.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(fields, FIELDS.into_iter().collect::<BTreeSet<_>>(), "access-log fields of {line}");
    parse_rfc3339(line["ts"].as_str().unwrap_or_else(|| panic!("ts is not a string: {line}")));
    assert!(line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "duration_ms: {line}");
    assert!(line["status"].is_u64(), "status is a number: {line}");
    line
}

#[test]
fn a_proxied_request_logs_one_line_with_the_contract_fields() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let rid = request_id("proxied");
    let r = g.call_from("127.0.0.2", "GET", "/reports/7").key(secret(&rec)).header("x-request-id", &rid).fetch();
    assert_eq!(r.status, 200, "{r:?}");
    let line = the_line(&g, &rid);
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["path"], "/reports/7", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["outcome"], "proxied", "{line}");
    assert_eq!(line["key_id"], id(&rec), "{line}");
    assert_eq!(line["tenant"], "acme", "{line}");
    assert_eq!(line["environment"], "production", "{line}");
    assert_eq!(line["client_ip"], "127.0.0.2", "{line}");
    assert!(line["upstream_ms"].as_f64().is_some_and(|u| u >= 0.0), "a proxied request has upstream_ms: {line}");
}

#[test]
fn a_rejected_request_logs_its_code() {
    let g = Gateway::new();
    let missing = request_id("missing");
    let r = g.call("POST", "/reports").header("x-request-id", &missing).fetch();
    check_proxy_problem(&r, 401, "missing_api_key");
    let line = the_line(&g, &missing);
    assert_eq!(line["method"], "POST", "{line}");
    assert_eq!(line["status"], 401, "{line}");
    assert_eq!(line["outcome"], "missing_api_key", "{line}");
    assert_eq!(line["environment"], "none", "no hosts and no key: {line}");
    assert!(line["key_id"].is_null() && line["tenant"].is_null(), "no key, no key_id/tenant: {line}");
    assert!(line["upstream_ms"].is_null(), "no upstream was called: {line}");
    assert_eq!(line["client_ip"], "127.0.0.1", "{line}");

    let rec = g.new_key(json!({"environment": "staging"}));
    let denied = request_id("denied");
    let r = g.call("GET", "/invoices/1").key(secret(&rec)).header("x-request-id", &denied).fetch();
    check_proxy_problem(&r, 403, "permission_denied");
    let line = the_line(&g, &denied);
    assert_eq!(line["status"], 403, "{line}");
    assert_eq!(line["outcome"], "permission_denied", "{line}");
    assert_eq!(line["key_id"], id(&rec), "the key was known: {line}");
    assert_eq!(line["environment"], "staging", "{line}");
    assert!(line["upstream_ms"].is_null(), "no upstream was called: {line}");
}

#[test]
fn whoami_logs_as_proxied() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"kind": "service", "environment": "development"}));
    let rid = request_id("whoami");
    assert_eq!(g.call("GET", WHOAMI).bearer(secret(&rec)).header("x-request-id", &rid).fetch().status, 200);
    let line = the_line(&g, &rid);
    assert_eq!(line["path"], WHOAMI, "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["outcome"], "proxied", "{line}");
    assert_eq!(line["key_id"], id(&rec), "{line}");
    assert!(line["tenant"].is_null(), "a service key has no tenant: {line}");
    assert_eq!(line["environment"], "development", "{line}");
    assert!(line["upstream_ms"].is_null(), "whoami calls no upstream: {line}");
}

#[test]
fn the_path_has_no_query_string() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let marker = format!("qv{}", random_alnum(12));
    let rid = request_id("query");
    let path = format!("/reports/q?alpha={marker}&beta=two");
    let r = g.call("GET", &path).key(secret(&rec)).header("x-request-id", &rid).fetch();
    assert_eq!(r.status, 200, "{r:?}");
    let line = the_line(&g, &rid);
    assert_eq!(line["path"], "/reports/q", "{line}");
    assert!(!g.stdout().contains(&marker), "the query string reached stdout:\n{}", g.stdout());
}

#[test]
fn no_secret_token_or_query_string_is_written_anywhere() {
    let mut g = Gateway::new(); // with KEYGATE_ADMIN_TOKEN
    let tenant_key = g.new_key(json!({}));
    let service_key = g.new_key(json!({"kind": "service", "environment": "staging"}));
    let revoked = g.new_key(json!({}));
    assert_eq!(g.act(id(&revoked), "revoke").status, 200);
    let rotated = g.new_key(json!({"tenant": "globex"}));
    let r = g.api("POST", &format!("/v1/keys/{}/rotate", id(&rotated)), Some(json!({"grace_period": "1h"})));
    assert_eq!(r.status, 200, "rotate: {r:?}");
    let new_secret = r.json()["secret"].as_str().expect("rotate answer has the secret").to_string();
    let old_secret = secret(&rotated).to_string();

    let wrong_secret = forge_key("kg", "prod", id(&tenant_key), &random_alnum(32));
    let unknown = forge_key("kg", "prod", &random_alnum(16), &random_alnum(32));
    let garbage = format!("not-a-key-{}", random_alnum(24));
    let wrong_token = format!("it-wrong-{}", random_alnum(24));
    let q1 = format!("s3cr3t{}", random_alnum(12));
    let q2 = format!("qv{}", random_alnum(12));

    let a = secret(&tenant_key).to_string();
    let b = secret(&service_key).to_string();
    let queries = [format!("?secret={q1}"), format!("?api_key={a}"), format!("?x={q2}&secret={q1}")];
    let mut statuses = Vec::new();
    for q in &queries {
        let p = |path: &str| format!("{path}{q}");
        statuses.push(("valid x-api-key", g.call("GET", &p("/reports")).key(&a).fetch().status, 200));
        statuses.push(("valid bearer", g.call("POST", &p("/reports")).bearer(&b).fetch().status, 200));
        statuses.push(("key in the query only", g.call("GET", &p("/reports")).fetch().status, 401));
        statuses.push(("wrong secret", g.call("GET", &p("/reports")).key(&wrong_secret).fetch().status, 401));
        statuses.push(("unknown id", g.call("GET", &p("/reports")).bearer(&unknown).fetch().status, 401));
        statuses.push(("garbage", g.call("GET", &p("/reports")).key(&garbage).fetch().status, 401));
        statuses.push(("revoked", g.call("GET", &p("/reports")).key(secret(&revoked)).fetch().status, 401));
        statuses.push(("ambiguous", g.call("GET", &p("/reports")).key(&a).bearer(&b).fetch().status, 401));
        statuses.push(("old key in grace", g.call("GET", &p("/reports")).key(&old_secret).fetch().status, 200));
        statuses.push(("new key", g.call("GET", &p("/reports")).bearer(&new_secret).fetch().status, 200));
        statuses.push(("whoami", g.call("GET", &p(WHOAMI)).key(&a).fetch().status, 200));
        statuses.push(("permission denied", g.call("GET", &p("/invoices")).key(&a).fetch().status, 403));
        statuses.push(("public", g.call("GET", &p("/status")).key(&a).fetch().status, 200));
    }
    let r = g.api_as("GET", "/v1/keys?q=key", None, Some(&wrong_token));
    statuses.push(("admin with a wrong token", r.status, 401));
    statuses.push(("admin list", g.api("GET", &format!("/v1/keys?q={q2}"), None).status, 200));
    for (what, got, want) in &statuses {
        assert_eq!(got, want, "{what}");
    }
    let status = g.stop();
    assert!(status.success(), "exit after SIGTERM: {status}\n{}", g.tail());

    let mut forbidden: Vec<(&str, String)> = vec![
        ("the admin token", g.admin_token.clone()),
        ("a wrong admin token", wrong_token),
        ("a wrong secret for a real id", wrong_secret),
        ("an unknown key", unknown),
        ("a garbage key", garbage),
        ("a rotated-out key", old_secret.clone()),
        ("a rotated-in key", new_secret.clone()),
        ("a query value", q1),
        ("a query value", q2),
        ("a query string", "secret=".into()),
        ("a query string", "api_key=".into()),
    ];
    for rec in [&tenant_key, &service_key, &revoked] {
        forbidden.push(("a key", secret(rec).to_string()));
    }
    // The secret part alone (random + check) must not be written either.
    for key in [a.as_str(), b.as_str(), secret(&revoked), old_secret.as_str(), new_secret.as_str()] {
        forbidden.push(("the secret part of a key", key.rsplit('_').next().expect("tail").to_string()));
    }

    let mut written: Vec<(String, Vec<u8>)> =
        vec![("stdout".into(), g.stdout().into_bytes()), ("stderr".into(), g.stderr().into_bytes())];
    let storage = g.dir().join("data");
    let files = files_under(&storage);
    assert!(!files.is_empty(), "the store wrote no file under {}", storage.display());
    for f in files {
        let bytes = fs::read(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        written.push((f.display().to_string(), bytes));
    }
    assert!(
        json_lines(&g.stdout()).len() >= statuses.len() - 2,
        "the access log should have a line per proxy request:\n{}",
        g.stdout()
    );
    // Controls: the public key id is in the access log and in the store, so the bytes read are the right ones.
    let public_id = id(&tenant_key).as_bytes();
    assert!(contains_bytes(&written[0].1, public_id), "control: the key id is not in the access log");
    assert!(
        written[2..].iter().any(|(_, bytes)| contains_bytes(bytes, public_id)),
        "control: no store file holds the key id; is {} the store?",
        storage.display()
    );
    for (what, s) in &forbidden {
        for (place, bytes) in &written {
            assert!(!contains_bytes(bytes, s.as_bytes()), "{what} ({s}) was written to {place}");
        }
    }
}

#[test]
fn access_off_writes_no_access_lines() {
    let mut g = Gateway::start(|c| c["log"] = yaml(json!({"access": "off"})));
    let rec = g.new_key(json!({}));
    let rids: Vec<String> = (0..3).map(|i| request_id(&format!("off{i}"))).collect();
    assert_eq!(g.call("GET", "/reports").key(secret(&rec)).header("x-request-id", &rids[0]).fetch().status, 200);
    assert_eq!(g.call("GET", "/reports").header("x-request-id", &rids[1]).fetch().status, 401);
    assert_eq!(g.call("GET", WHOAMI).key(secret(&rec)).header("x-request-id", &rids[2]).fetch().status, 200);
    g.stop(); // flushes whatever an access log would have buffered
    let out = g.stdout();
    for rid in &rids {
        assert!(!out.contains(rid.as_str()), "log.access: off, yet {rid} was logged:\n{out}");
    }
    let lines = json_lines(&out);
    assert!(lines.iter().all(|l| l.get("outcome").is_none()), "access-log lines on stdout: {lines:?}");
}

#[test]
fn access_to_a_file_writes_there_and_not_to_stdout() {
    let logs = tempfile::tempdir().expect("temp dir");
    let file = logs.path().join("access.log");
    let path = file.to_string_lossy().into_owned();
    let mut g = Gateway::start(move |c| c["log"] = yaml(json!({"access": path})));
    let rec = g.new_key(json!({}));
    let ok = request_id("file-ok");
    let missing = request_id("file-missing");
    assert_eq!(g.call("GET", "/reports").key(secret(&rec)).header("x-request-id", &ok).fetch().status, 200);
    assert_eq!(g.call("GET", "/reports").header("x-request-id", &missing).fetch().status, 401);
    let read = || fs::read_to_string(&file).unwrap_or_default();
    let line = wait_lines(read, &ok);
    assert_eq!(line.len(), 1, "{line:?}");
    assert_eq!((line[0]["outcome"].as_str(), line[0]["key_id"].as_str()), (Some("proxied"), Some(id(&rec))));
    let line = wait_lines(read, &missing);
    assert_eq!(line[0]["outcome"], "missing_api_key", "{line:?}");
    g.stop();
    for rid in [&ok, &missing] {
        assert!(lines_for(&g.stdout(), rid).is_empty(), "{rid} also went to stdout:\n{}", g.stdout());
    }
}
