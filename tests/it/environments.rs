//! Which environment, and so which upstream pool, a request goes to (SPEC 3.1, 3.2): environment routing by
//! the key when no `hosts` are configured, the Host header when they are, public routes, round robin and
//! passive health.

use serde_json::{json, Value};

use crate::helpers::{add_route, closed_addr, echoed, yaml, Echo, Gateway, RequestExt, ENVIRONMENTS};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

#[test]
fn each_key_reaches_the_upstream_of_its_environment() {
    let g = Gateway::new();
    for env in ENVIRONMENTS {
        let rec = g.new_key(json!({"environment": env}));
        let seen = echoed(&g.get_with(secret(&rec), "/reports"));
        assert_eq!(seen["upstream"], env, "a {env} key went to {}", seen["upstream"]);
        assert_eq!(seen["headers"]["x-keygate-environment"], env);
    }
}

#[test]
fn a_public_route_goes_to_production_by_default() {
    let g = Gateway::new();
    let seen = echoed(&g.call("GET", "/status").fetch());
    assert_eq!(seen["upstream"], "production");
    assert_eq!(seen["headers"]["x-keygate-environment"], "production");
}

#[test]
fn a_public_route_goes_to_its_environment_field() {
    let g =
        Gateway::start(|c| add_route(c, json!({"path": "/devstatus", "public": true, "environment": "development"})));
    let seen = echoed(&g.call("GET", "/devstatus").fetch());
    assert_eq!(seen["upstream"], "development");
    assert_eq!(seen["headers"]["x-keygate-environment"], "development");
}

fn with_hosts(c: &mut serde_yaml::Value) {
    c["environments"]["production"]["hosts"] = yaml(json!(["api.kg.test"]));
    c["environments"]["staging"]["hosts"] = yaml(json!(["staging.kg.test"]));
    c["environments"]["development"]["hosts"] = yaml(json!(["dev.kg.test", "dev2.kg.test"]));
}

#[test]
fn hosts_select_the_environment() {
    let g = Gateway::start(with_hosts);
    for (env, host) in [("production", "api.kg.test"), ("staging", "staging.kg.test"), ("development", "dev2.kg.test")]
    {
        let rec = g.new_key(json!({"environment": env}));
        let r = g.call("GET", "/reports").key(secret(&rec)).header("host", host).fetch();
        assert_eq!(echoed(&r)["upstream"], env, "Host {host}");
    }
}

#[test]
fn host_matching_ignores_case_and_port() {
    let g = Gateway::start(with_hosts);
    let rec = g.new_key(json!({"environment": "staging"}));
    for host in ["Staging.KG.Test", "staging.kg.test:8443", "STAGING.KG.TEST:80"] {
        let r = g.call("GET", "/reports").key(secret(&rec)).header("host", host).fetch();
        assert_eq!(echoed(&r)["upstream"], "staging", "Host {host}");
    }
}

#[test]
fn a_public_route_follows_the_host_when_hosts_are_configured() {
    let g = Gateway::start(with_hosts);
    let r = g.call("GET", "/status").header("host", "dev.kg.test").fetch();
    let seen = echoed(&r);
    assert_eq!(seen["upstream"], "development");
    assert_eq!(seen["headers"]["x-keygate-environment"], "development");
}

#[test]
fn upstreams_of_a_pool_are_used_round_robin() {
    let second = Echo::spawn("production-b");
    let second_addr = second.addr.clone();
    let g = Gateway::start(move |c| {
        let first = c["environments"]["production"]["upstreams"][0].clone();
        c["environments"]["production"]["upstreams"] =
            serde_yaml::Value::Sequence(vec![first, yaml(json!(second_addr))]);
    });
    let rec = g.new_key(json!({}));
    let names: Vec<String> = (0..6)
        .map(|_| echoed(&g.get_with(secret(&rec), "/reports"))["upstream"].as_str().unwrap().to_string())
        .collect();
    let a = names.iter().filter(|n| *n == "production").count();
    let b = names.iter().filter(|n| *n == "production-b").count();
    assert!(a >= 2 && b >= 2 && a + b == 6, "round robin over two upstreams: {names:?}");
    drop(second);
}

#[test]
fn a_dead_upstream_is_skipped_and_the_request_retried() {
    let dead = closed_addr();
    let g = Gateway::start(move |c| {
        let live = c["environments"]["production"]["upstreams"][0].clone();
        c["environments"]["production"]["upstreams"] = serde_yaml::Value::Sequence(vec![yaml(json!(dead)), live]);
    });
    let rec = g.new_key(json!({}));
    for i in 0..6 {
        let r = g.get_with(secret(&rec), "/reports");
        assert_eq!(echoed(&r)["upstream"], "production", "request {i}");
    }
}
