//! The bootstrap admin token (SPEC 5): with no `KEYGATE_ADMIN_TOKEN` and no `admin.tokens`, the first
//! `serve` prints `admin token: <token>` once to stderr; the token works, and later starts stay silent.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{check_admin_problem, poll, Gateway};

const LINE: &str = "admin token: ";

fn printed_tokens(stderr: &str) -> Vec<String> {
    stderr.lines().filter_map(|l| l.trim_start().strip_prefix(LINE)).map(|t| t.trim().to_string()).collect()
}

fn wait_for_token(g: &Gateway) -> String {
    poll(Duration::from_secs(5), || printed_tokens(&g.stderr()).into_iter().next())
        .unwrap_or_else(|| panic!("no `{LINE}<token>` line on stderr\n{}", g.tail()))
}

#[test]
fn the_first_serve_prints_a_working_bootstrap_token() {
    let g = Gateway::builder().without_env_token().start();
    let token = wait_for_token(&g);
    assert!(!token.is_empty());
    let r = g.api_as("POST", "/v1/tenants", Some(json!({"id": "acme", "name": "Acme"})), Some(&token));
    assert_eq!(r.status, 201, "the bootstrap token does not work: {r:?}");
    check_admin_problem(&g.api_as("GET", "/v1/tenants/acme", None, Some("not-the-token")), 401, "unauthorized");
    assert!(!g.stdout().contains(&token), "the token is printed on stderr only");
}

#[test]
fn the_bootstrap_token_is_printed_once_and_keeps_working() {
    let mut g = Gateway::builder().without_env_token().start();
    let token = wait_for_token(&g);
    g.restart();
    let r = g.api_as("POST", "/v1/tenants", Some(json!({"id": "acme", "name": "Acme"})), Some(&token));
    assert_eq!(r.status, 201, "the bootstrap token stopped working after a restart: {r:?}");
    assert_eq!(printed_tokens(&g.stderr()).len(), 1, "printed again after a restart:\n{}", g.stderr());
    assert_eq!(g.stderr().matches(&token).count(), 1, "the token appears again on stderr");
}

#[test]
fn no_bootstrap_token_when_keygate_admin_token_is_set() {
    let g = Gateway::builder().without_tenants().start();
    assert_eq!(g.api("GET", "/v1/tenants", None).status, 200);
    assert!(printed_tokens(&g.stderr()).is_empty(), "a bootstrap token was printed:\n{}", g.stderr());
}

#[test]
fn no_bootstrap_token_when_admin_tokens_are_configured() {
    use crate::helpers::{token_hash, yaml};
    let g = Gateway::builder()
        .without_env_token()
        .configure(|c| {
            c["admin"]["tokens"] = yaml(
                json!([{"name": "ops", "hash": token_hash("ops-token-1"), "scopes": ["keys:read", "tenants:manage"]}]),
            )
        })
        .start();
    let r = g.api_as("POST", "/v1/tenants", Some(json!({"id": "acme", "name": "Acme"})), Some("ops-token-1"));
    assert_eq!(r.status, 201, "{r:?}");
    assert!(printed_tokens(&g.stderr()).is_empty(), "a bootstrap token was printed:\n{}", g.stderr());
}
