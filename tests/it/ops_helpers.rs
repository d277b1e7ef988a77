//! Helpers for the operations tests (SPEC 3.5, 6, 7): scraping and parsing the Prometheus exposition of
//! `GET /metrics`, rewriting the config file and sending SIGHUP, finding access-log lines, and running the
//! external checkers (`promtool`, `docker-compose`) that `./scripts/test` installs.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{poll, random_alnum, signal, Gateway, RequestExt};

// ------------------------------------------------------------------------------------------ metrics

/// `GET /metrics` on the metrics listener; asserts 200 and returns the text exposition.
pub(crate) fn scrape(g: &Gateway) -> String {
    let url = format!("http://127.0.0.1:{}/metrics", g.ports.metrics);
    let r = g.client("127.0.0.1").get(url).fetch();
    assert_eq!(r.status, 200, "GET /metrics: {r:?}");
    r.text
}

/// One sample line of the exposition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

impl Sample {
    fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// Every sample line of a text exposition (comments and blank lines skipped).
pub(crate) fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_sample(l).unwrap_or_else(|| panic!("unparsable exposition line {l:?}")))
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                chars.next();
            }
            let (i, c) = *chars.peek()?;
            if c == '}' {
                rest = &after[i + 1..];
                break;
            }
            let mut label = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                label.push(c);
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.insert(label.trim().to_string(), value);
        }
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample { name, labels, value })
}

/// The sum of the samples named `name` whose labels include `labels` (0 when none matches).
pub(crate) fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text).iter().filter(|s| s.matches(name, labels)).map(|s| s.value).sum()
}

/// `# TYPE` of every family: name → type.
pub(crate) fn types(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

/// The non-zero changes of every series of `name` between two scrapes, by the values of `label_names`.
pub(crate) fn deltas(before: &str, after: &str, name: &str, label_names: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let key = |s: &Sample| -> Vec<String> {
        label_names.iter().map(|l| s.labels.get(*l).cloned().unwrap_or_default()).collect()
    };
    let mut out: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for s in samples(after).iter().filter(|s| s.name == name) {
        *out.entry(key(s)).or_default() += s.value;
    }
    for s in samples(before).iter().filter(|s| s.name == name) {
        *out.entry(key(s)).or_default() -= s.value;
    }
    out.retain(|_, v| *v != 0.0);
    out
}

/// Builds a deltas map from `([label values], delta)` pairs, for `assert_eq!` against [`deltas`].
pub(crate) fn expected(pairs: &[(&[&str], f64)]) -> BTreeMap<Vec<String>, f64> {
    pairs.iter().map(|(k, v)| (k.iter().map(|s| s.to_string()).collect(), *v)).collect()
}

/// Scrapes until `keygate_requests_total` has grown by `n` since `before` (requests are counted when
/// they end, which may be just after the client got its answer); returns that scrape.
pub(crate) fn scrape_after_requests(g: &Gateway, before: &str, n: f64) -> String {
    let base = value(before, "keygate_requests_total", &[]);
    let mut last = String::new();
    let got = poll(Duration::from_secs(5), || {
        last = scrape(g);
        (value(&last, "keygate_requests_total", &[]) >= base + n).then(|| last.clone())
    });
    got.unwrap_or_else(|| {
        panic!(
            "keygate_requests_total did not grow by {n} within 5 s (grew by {}):\n{last}",
            value(&last, "keygate_requests_total", &[]) - base
        )
    })
}

// ------------------------------------------------------------------------------------------ reload

/// Writes `g.config` (as the test edited it) to the gateway's config file, without restarting.
pub(crate) fn write_config(g: &Gateway) {
    let text = serde_yaml::to_string(&g.config).expect("config serializes");
    fs::write(g.config_path(), text).expect("write config");
}

/// `keygate_config_reloads_total{result}` now.
pub(crate) fn reloads(g: &Gateway, result: &str) -> f64 {
    value(&scrape(g), "keygate_config_reloads_total", &[("result", result)])
}

/// Writes `g.config` to the config file and sends SIGHUP (does not wait).
pub(crate) fn hup(g: &Gateway) {
    write_config(g);
    signal(g.pid(), "HUP");
}

/// Waits until `keygate_config_reloads_total{result}` reaches `target`.
pub(crate) fn wait_reloads(g: &Gateway, result: &str, target: f64) {
    let mut seen = 0.0;
    let reached = poll(Duration::from_secs(10), || {
        seen = reloads(g, result);
        (seen >= target).then_some(())
    });
    assert!(
        reached.is_some(),
        "keygate_config_reloads_total{{result=\"{result}\"}} stayed at {seen}, expected {target}\n{}",
        g.tail()
    );
}

/// Writes `g.config`, sends SIGHUP and waits until the reload is counted under `result`.
pub(crate) fn reload(g: &Gateway, result: &str) {
    let before = reloads(g, result);
    hup(g);
    wait_reloads(g, result, before + 1.0);
}

// ------------------------------------------------------------------------------------------ access log

/// A fresh, valid client-sent `X-Request-Id`.
pub(crate) fn request_id(tag: &str) -> String {
    format!("{tag}-{}", random_alnum(16))
}

/// Every line of `text` that is a JSON object.
pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok()).filter(Value::is_object).collect()
}

/// The JSON lines of `text` whose `request_id` is `rid`.
pub(crate) fn lines_for(text: &str, rid: &str) -> Vec<Value> {
    json_lines(text).into_iter().filter(|v| v["request_id"] == rid).collect()
}

/// Polls `read` (stdout, a file …) until a line with `request_id == rid` appears; returns every such line.
pub(crate) fn wait_lines(read: impl Fn() -> String, rid: &str) -> Vec<Value> {
    poll(Duration::from_secs(5), || {
        let found = lines_for(&read(), rid);
        (!found.is_empty()).then_some(found)
    })
    .unwrap_or_else(|| panic!("no access-log line with request_id {rid:?} within 5 s:\n{}", read()))
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("read dir {}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits `period` while checking `still` every few milliseconds; returns the first failure's message.
pub(crate) fn holds_for(period: Duration, mut still: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let end = Instant::now() + period;
    loop {
        still()?;
        if Instant::now() >= end {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------------------------------ tools

/// The path of `tool` on PATH; fails (never skips) when it is missing.
pub(crate) fn require_tool(tool: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "`{tool}` is not on PATH: run ./scripts/test (it installs what the tests need) \
             or install Debian's `{debian_package}` package"
        )
    })
}

/// Runs `program args` in `cwd` with `stdin` piped in; fails the test when it does not finish in 60 s.
pub(crate) fn run_tool(program: &Path, args: &[&str], cwd: &Path, stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {} {args:?}: {e}", program.display()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input).expect("write stdin");
    }
    // Collect the output on another thread (so a chatty tool never blocks on a full pipe), with a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("collect output"),
        Err(_) => panic!("{} {args:?} did not finish within 60 s", program.display()),
    }
}

/// `promtool check metrics` on an exposition.
pub(crate) fn promtool_check_metrics(text: &str) -> Output {
    let promtool = require_tool("promtool", "prometheus");
    run_tool(&promtool, &["check", "metrics"], Path::new(env!("CARGO_MANIFEST_DIR")), Some(text.as_bytes()))
}

/// stdout and stderr of a finished tool, for failure messages.
pub(crate) fn output_text(o: &Output) -> String {
    format!(
        "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
