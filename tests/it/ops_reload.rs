//! Reload (SPEC 3.5, 3.4, 6): SIGHUP re-reads the config file. A valid file replaces routes, upstreams,
//! default limits and groups at once and counts `keygate_config_reloads_total{result="ok"}`; an invalid one
//! is logged with its YAML paths, counted as `error`, and the old config stays; start-only settings are
//! kept with a warning; and no request fails while configs are swapped under load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::helpers::{add_route, check_proxy_problem, echoed, free_port, poll, yaml, Echo, Gateway, Resp};
use crate::ops_helpers::{hup, reload, reloads, wait_reloads};

fn secret(rec: &Value) -> &str {
    rec["secret"].as_str().expect("secret")
}

fn id(rec: &Value) -> &str {
    rec["id"].as_str().expect("id")
}

/// Polls `GET path` with `key` until `want` holds for the answer; returns that answer.
fn poll_until(g: &Gateway, key: &str, path: &str, want: impl Fn(&Resp) -> bool) -> Option<Resp> {
    poll(Duration::from_secs(10), || Some(g.get_with(key, path)).filter(|r| want(r)))
}

#[test]
fn sighup_applies_a_valid_config() {
    let mut g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let ok0 = reloads(&g, "ok");
    add_route(&mut g.config, json!({"path": "/reports", "permission": "reports:read"}));
    hup(&g);
    let denied = poll_until(&g, secret(&rec), "/reports", |r| r.status == 403);
    let denied = denied.unwrap_or_else(|| panic!("the new route was not applied after SIGHUP\n{}", g.tail()));
    check_proxy_problem(&denied, 403, "permission_denied");
    wait_reloads(&g, "ok", ok0 + 1.0);
    assert_eq!(reloads(&g, "ok"), ok0 + 1.0, "one SIGHUP, one reload");
}

#[test]
fn sighup_with_an_invalid_file_keeps_the_old_config() {
    let mut g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200);
    let ok0 = reloads(&g, "ok");
    // A change that would show if the file were applied in part, plus an unknown key that makes it invalid.
    add_route(&mut g.config, json!({"path": "/reports", "permission": "reports:read"}));
    g.config["proxy"]["no_such_setting"] = yaml(json!(true));
    reload(&g, "error");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "the previous config must stay in force");
    assert_eq!(reloads(&g, "ok"), ok0, "a rejected reload is not ok");
    let logged = poll(Duration::from_secs(5), || g.stderr().contains("proxy.no_such_setting").then_some(()));
    assert!(logged.is_some(), "the error is not logged with its YAML path on stderr:\n{}", g.stderr());
}

#[test]
fn sighup_moves_an_environment_to_new_upstreams() {
    let mut g = Gateway::new();
    let replacement = Echo::spawn("replacement");
    let rec = g.new_key(json!({}));
    assert_eq!(echoed(&g.get_with(secret(&rec), "/reports"))["upstream"], "production");
    g.config["environments"]["production"]["upstreams"] = yaml(json!([replacement.addr]));
    hup(&g);
    let moved = poll_until(&g, secret(&rec), "/reports", |r| {
        r.status == 200 && r.json().get("upstream").is_some_and(|u| u == "replacement")
    });
    assert!(moved.is_some(), "requests still do not reach the new upstream after SIGHUP\n{}", g.tail());
    for _ in 0..5 {
        assert_eq!(echoed(&g.get_with(secret(&rec), "/reports"))["upstream"], "replacement", "the old pool is gone");
    }
}

#[test]
fn sighup_changes_the_default_rate_limit_of_keys_without_their_own() {
    let mut g = Gateway::new();
    let default = g.new_key(json!({}));
    let own = g.new_key(json!({"rate_limit": {"per_second": 1000}}));
    for _ in 0..5 {
        assert_eq!(g.get_with(secret(&default), "/reports").status, 200);
    }
    g.config["environments"]["production"]["rate_limit"] = yaml(json!({"per_minute": 2}));
    reload(&g, "ok");
    let r = g.get_with(secret(&default), "/reports");
    assert!(
        r.status == 429 || r.header("ratelimit-policy").is_some_and(|p| p.contains("q=2") && p.contains("w=60")),
        "the new default limit is not in force: {r:?}"
    );
    let limited = (0..4).map(|_| g.get_with(secret(&default), "/reports")).find(|r| r.status == 429);
    let limited = limited.unwrap_or_else(|| panic!("no 429 within a few requests at {{per_minute: 2}}"));
    check_proxy_problem(&limited, 429, "rate_limited");
    for _ in 0..10 {
        assert_eq!(g.get_with(secret(&own), "/reports").status, 200, "a key with its own limit keeps it");
    }
}

#[test]
fn sighup_group_edit_changes_every_key_of_the_group() {
    let mut g = Gateway::new();
    let first = g.new_key(json!({"group": "billing"}));
    let second = g.new_key(json!({"group": "billing", "kind": "service", "environment": "staging"}));
    for rec in [&first, &second] {
        assert_eq!(g.get_with(secret(rec), "/invoices").status, 200);
    }
    add_route(&mut g.config, json!({"path": "/ledger", "permission": "ledger:read"}));
    g.config["groups"]["billing"] = yaml(json!({"permissions": ["ledger:read"]}));
    reload(&g, "ok");
    for rec in [&first, &second] {
        check_proxy_problem(&g.get_with(secret(rec), "/invoices"), 403, "permission_denied");
        assert_eq!(g.get_with(secret(rec), "/ledger").status, 200, "the group's new permission");
        assert_eq!(g.key(id(rec))["effective_permissions"], json!(["ledger:read"]), "effective_permissions");
    }
}

#[test]
fn a_start_only_change_is_not_applied_and_is_warned_about() {
    let mut g = Gateway::new();
    let rec = g.new_key(json!({}));
    let other = free_port();
    g.config["proxy"]["listen"] = yaml(json!([format!("127.0.0.1:{other}")]));
    reload(&g, "ok");
    assert_eq!(g.get_with(secret(&rec), "/reports").status, 200, "the proxy keeps answering on its port");
    let moved = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], other).into(), Duration::from_millis(300));
    assert!(moved.is_err(), "the proxy started listening on the new port without a restart");
    let warned = poll(Duration::from_secs(5), || {
        g.stderr().lines().any(|l| l.contains("proxy.listen") && l.to_ascii_uppercase().contains("WARN")).then_some(())
    });
    assert!(warned.is_some(), "no warning naming proxy.listen on stderr:\n{}", g.stderr());
}

#[test]
fn reloads_under_load_drop_no_request() {
    let mut g = Gateway::new();
    let second = Echo::spawn("second");
    let rec = g.new_key(json!({}));
    let base = g.config.clone();
    let mut alternate = g.config.clone();
    add_route(&mut alternate, json!({"path": "/elsewhere", "permission": "elsewhere:read"}));
    alternate["environments"]["production"]["upstreams"] = yaml(json!([g.echo_addr("production"), second.addr]));

    let url = format!("http://127.0.0.1:{}/reports", g.ports.proxy);
    let key = secret(&rec).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        thread::spawn(move || {
            // One keep-alive connection pool for the whole run.
            let client = Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
            let (mut ok, mut bad) = (0u64, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match client.get(&url).header("x-api-key", &key).send() {
                    Ok(r) if r.status().as_u16() == 200 => match r.bytes() {
                        Ok(_) => ok += 1,
                        Err(e) => bad.push(format!("body: {e}")),
                    },
                    Ok(r) => bad.push(format!("status {}", r.status())),
                    Err(e) => bad.push(format!("error: {e:?}")),
                }
            }
            (ok, bad)
        })
    };
    let started = Instant::now();
    let ok0 = reloads(&g, "ok");
    for i in 0..5 {
        g.config = if i % 2 == 0 { alternate.clone() } else { base.clone() };
        hup(&g);
        wait_reloads(&g, "ok", ok0 + 1.0 + i as f64);
        let pause = Instant::now() + Duration::from_millis(300);
        // Let traffic run between reloads: poll the load thread's liveness instead of a bare sleep.
        poll(Duration::from_millis(400), || (Instant::now() >= pause || load.is_finished()).then_some(()));
    }
    poll(Duration::from_secs(3), || (started.elapsed() >= Duration::from_secs(2)).then_some(()));
    stop.store(true, Ordering::SeqCst);
    let (ok, bad) = load.join().expect("load thread");
    assert!(
        bad.is_empty(),
        "{} failed requests across reloads (and {ok} good): {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    assert!(ok >= 10, "only {ok} requests in ~2 s");
}
