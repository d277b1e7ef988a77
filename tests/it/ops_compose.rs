//! The shipped deployment files agree with each other and with the binary: `docker-compose config -q`
//! passes; the Dockerfile builds and copies every `[[bin]]` of Cargo.toml; docker-compose runs one
//! `keygate-echo` per upstream of `config/keygate.docker.yaml`, which `keygate check-config` accepts; every
//! metric the Grafana dashboard queries exists in a live scrape, and the operator panels are there;
//! `config/prometheus.yml` passes `promtool check config` and scrapes keygate's metrics listener.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::helpers::{run_cli, Gateway};
use crate::ops_helpers::{output_text, require_tool, run_tool, scrape_after_requests, types};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml_file(rel: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// The `name`s of Cargo.toml's `[[bin]]` tables.
fn declared_binaries() -> Vec<String> {
    let toml = read("Cargo.toml");
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if let Some(value) = line.strip_prefix("name").map(str::trim_start).and_then(|l| l.strip_prefix('=')) {
            if in_bin {
                bins.push(value.trim().trim_matches('"').to_string());
            }
        }
    }
    assert!(!bins.is_empty(), "Cargo.toml declares no [[bin]]");
    bins
}

/// The Dockerfile with `\`-continued lines joined.
fn dockerfile_lines() -> Vec<String> {
    read("Dockerfile")
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn string_list(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn docker_compose_config_is_valid() {
    let compose = require_tool("docker-compose", "docker-compose");
    let out = run_tool(&compose, &["config", "-q"], &root(), None);
    assert!(out.status.success(), "docker-compose config -q: {}", output_text(&out));
}

#[test]
fn the_dockerfile_builds_and_installs_every_declared_binary() {
    let bins = declared_binaries();
    let lines = dockerfile_lines();
    let build = lines
        .iter()
        .find(|l| l.starts_with("RUN") && l.contains("cargo build"))
        .unwrap_or_else(|| panic!("no `RUN cargo build` in the Dockerfile"));
    assert!(build.contains("--release"), "the image builds release binaries: {build}");
    let words: Vec<&str> = build.split_whitespace().collect();
    let copies: Vec<&String> = lines.iter().filter(|l| l.starts_with("COPY") && l.contains("--from=")).collect();
    for bin in &bins {
        assert!(
            words.windows(2).any(|w| w[0] == "--bin" && w[1] == bin.as_str()),
            "the cargo build line does not name --bin {bin}: {build}"
        );
        let artifact = format!("target/release/{bin}");
        assert!(
            copies.iter().any(|c| c.split_whitespace().any(|w| w.ends_with(&artifact))),
            "no COPY --from of {artifact} in the Dockerfile: {copies:?}"
        );
    }
}

#[test]
fn compose_runs_an_echo_for_each_upstream_of_the_docker_config() {
    let compose = yaml_file("docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    let mut echoes = BTreeSet::new();
    for (name, service) in services {
        let command = string_list(&service["command"]);
        if command.first().map(String::as_str) != Some("keygate-echo") {
            continue;
        }
        let listen = command
            .windows(2)
            .find(|w| w[0] == "--listen")
            .map(|w| w[1].clone())
            .unwrap_or_else(|| panic!("service {name:?}: keygate-echo without --listen"));
        let port = listen.rsplit(':').next().expect("port").to_string();
        let networks = service["networks"].as_mapping().unwrap_or_else(|| panic!("service {name:?} has no networks"));
        let ip = networks
            .values()
            .find_map(|n| n["ipv4_address"].as_str())
            .unwrap_or_else(|| panic!("service {name:?} has no fixed ipv4_address"));
        echoes.insert(format!("{ip}:{port}"));
    }
    assert_eq!(echoes.len(), 3, "docker-compose should run three keygate-echo upstreams: {echoes:?}");

    let config = yaml_file("config/keygate.docker.yaml");
    let mut upstreams = BTreeSet::new();
    for env in ["production", "staging", "development"] {
        let list = string_list(&config["environments"][env]["upstreams"]);
        assert!(!list.is_empty(), "config/keygate.docker.yaml: environments.{env}.upstreams is empty");
        upstreams.extend(list);
    }
    assert_eq!(echoes, upstreams, "docker-compose echo addresses vs config/keygate.docker.yaml upstreams");
}

#[test]
fn the_docker_config_passes_check_config() {
    let out = run_cli(&["check-config", "--config", "config/keygate.docker.yaml"], None, &[], &root());
    assert!(out.status.success(), "keygate check-config --config config/keygate.docker.yaml: {}", output_text(&out));
}

/// Every `expr` of the dashboard's panels (nested rows included).
fn dashboard_panels() -> Vec<(String, Vec<String>)> {
    let text = read("config/grafana/dashboards/keygate.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    let mut todo: Vec<Value> = dashboard["panels"].as_array().cloned().unwrap_or_default();
    while let Some(panel) = todo.pop() {
        let exprs: Vec<String> = panel["targets"]
            .as_array()
            .map(|ts| ts.iter().filter_map(|t| t["expr"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        out.push((panel["title"].as_str().unwrap_or_default().to_string(), exprs));
        todo.extend(panel["panels"].as_array().cloned().unwrap_or_default());
    }
    assert!(out.iter().any(|(_, e)| !e.is_empty()), "the dashboard queries nothing");
    out
}

/// `keygate_[a-z_]+` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("keygate_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_the_dashboard_queries_exists() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let r = g.call("GET", "/reports").header("x-api-key", rec["secret"].as_str().expect("secret"));
    assert_eq!(r.send().expect("request").status().as_u16(), 200);
    let text = scrape_after_requests(&g, "", 1.0);
    let families = types(&text);
    let mut queried = BTreeSet::new();
    for (_, exprs) in dashboard_panels() {
        for expr in exprs {
            queried.extend(metric_names(&expr));
        }
    }
    assert!(!queried.is_empty(), "the dashboard queries no keygate_ metric");
    for name in queried {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|base| families.get(*base).map(String::as_str) == Some("histogram"))
            .unwrap_or(&name)
            .to_string();
        assert!(families.contains_key(&family), "the dashboard queries {name}, but /metrics has no {family}");
    }
}

#[test]
fn the_dashboard_has_the_operator_panels() {
    let panels = dashboard_panels();
    let has = |what: &str, f: &dyn Fn(&str, &str) -> bool| {
        let found = panels.iter().any(|(title, exprs)| {
            let all = exprs.join("\n");
            f(&title.to_ascii_lowercase(), &all)
        });
        assert!(found, "no dashboard panel for {what}: {panels:?}");
    };
    has("requests by outcome", &|_, e| e.contains("keygate_requests_total") && e.contains("outcome)"));
    has("auth latency p50 and p99", &|_, e| {
        e.contains("keygate_auth_duration_seconds_bucket") && e.contains("0.5") && e.contains("0.99")
    });
    has("rate-limited requests", &|_, e| e.contains("keygate_requests_total") && e.contains("\"rate_limited\""));
    has("upstream errors", &|_, e| e.contains("keygate_requests_total") && e.contains("upstream_unavailable"));
    has("keys by status", &|_, e| e.contains("keygate_keys") && e.contains("status"));
}

#[test]
fn the_prometheus_config_passes_promtool_and_scrapes_keygate() {
    let promtool = require_tool("promtool", "prometheus");
    let out = run_tool(&promtool, &["check", "config", "config/prometheus.yml"], &root(), None);
    assert!(out.status.success(), "promtool check config config/prometheus.yml: {}", output_text(&out));

    // Its target is keygate's metrics listener inside the compose network.
    let prometheus = yaml_file("config/prometheus.yml");
    let targets: Vec<String> = prometheus["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| job["static_configs"].as_sequence().cloned().unwrap_or_default())
        .flat_map(|sc| string_list(&sc["targets"]))
        .collect();
    let compose = yaml_file("docker-compose.yml");
    let keygate_ip = compose["services"]["keygate"]["networks"]
        .as_mapping()
        .and_then(|n| n.values().find_map(|v| v["ipv4_address"].as_str().map(str::to_string)))
        .expect("the keygate service has a fixed ipv4_address");
    let docker = yaml_file("config/keygate.docker.yaml");
    let metrics_port = docker["metrics"]["listen"].as_str().and_then(|l| l.rsplit(':').next()).unwrap_or("9100");
    let want = format!("{keygate_ip}:{metrics_port}");
    assert!(targets.contains(&want), "prometheus.yml scrapes {targets:?}, not keygate's metrics at {want}");
}
