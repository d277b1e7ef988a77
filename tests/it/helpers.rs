//! The black-box harness: a `keygate serve` child process in its own temp dir, with its own echo upstreams
//! (`keygate-echo`, one per environment), its own ports, config and admin token.
//!
//! Tests talk to the gateway only through the contract of SPEC.md: the command line, the YAML config,
//! signals and the HTTP listeners. Nothing is shared between tests: every test starts its own gateway.
//! Waiting for state is always a poll with a deadline, never a fixed sleep.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The three environments, in SPEC order.
pub(crate) const ENVIRONMENTS: [&str; 3] = ["production", "staging", "development"];
/// SPEC 4.5.
pub(crate) const WHOAMI: &str = "/.well-known/keygate/whoami";
/// Every HTTP call: a hang is a failure, never a stuck run.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_STEP: Duration = Duration::from_millis(20);
/// SPEC 2.1: `0-9 A-Z a-z`, in that order.
pub(crate) const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The environment tag of a key string (SPEC 2.1).
pub(crate) fn env_tag(environment: &str) -> &'static str {
    match environment {
        "production" => "prod",
        "staging" => "stg",
        "development" => "dev",
        other => panic!("no such environment {other}"),
    }
}

// ------------------------------------------------------------------------------------------ small helpers

/// Calls `f` every few milliseconds until it returns `Some` or `timeout` passes.
pub(crate) fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(POLL_STEP);
    }
}

pub(crate) fn random_alnum(n: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

/// A unique key name.
pub(crate) fn new_name(prefix: &str) -> String {
    format!("{prefix}-{}", random_alnum(10).to_lowercase())
}

/// `sha256:<hex>` of an admin token, the form `admin.tokens[].hash` takes.
pub(crate) fn token_hash(token: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(token.as_bytes())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes `%XX` escapes (for `X-Keygate-Key-Name`).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = h {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// RFC 3339 UTC, whole seconds.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).expect("0 ns is valid").format(&Rfc3339).expect("formattable")
}

pub(crate) fn parse_rfc3339(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("not an RFC 3339 timestamp: {s:?}: {e}"))
}

/// Converts a JSON literal into a YAML value for config edits: `c["proxy"]["x"] = yaml(json!(...))`.
pub(crate) fn yaml(v: Value) -> serde_yaml::Value {
    serde_yaml::to_value(v).expect("JSON converts to YAML")
}

// ------------------------------------------------------------------------------------------ key strings

/// SPEC 2.1: the check of `body` = base62 of its IEEE CRC32, most significant digit first, padded to 6.
pub(crate) fn expected_check(body: &str) -> String {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(BASE62[(n % 62) as usize]);
        n /= 62;
    }
    while digits.len() < 6 {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII")
}

/// A key string split into its parts: `<prefix>_<env>_<id>_<random><check>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyParts {
    pub(crate) prefix: String,
    pub(crate) env: String,
    pub(crate) id: String,
    pub(crate) random: String,
    pub(crate) check: String,
}

impl KeyParts {
    /// Parses the secret-scanner shape `<prefix>_(prod|stg|dev)_[0-9A-Za-z]{16}_[0-9A-Za-z]{38}`.
    pub(crate) fn parse(key: &str) -> Option<KeyParts> {
        let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        let parts: Vec<&str> = key.split('_').collect();
        let [prefix, env, id, tail] = parts.as_slice() else {
            return None;
        };
        if !alnum(prefix) || !matches!(*env, "prod" | "stg" | "dev") {
            return None;
        }
        if id.len() != 16 || !alnum(id) || tail.len() != 38 || !alnum(tail) {
            return None;
        }
        Some(KeyParts {
            prefix: prefix.to_string(),
            env: env.to_string(),
            id: id.to_string(),
            random: tail[..32].to_string(),
            check: tail[32..].to_string(),
        })
    }
}

/// A well-formed key with a valid checksum (it parses; whether it is known is up to the gateway).
pub(crate) fn forge_key(prefix: &str, tag: &str, id: &str, random: &str) -> String {
    let body = format!("{prefix}_{tag}_{id}_{random}");
    let check = expected_check(&body);
    format!("{body}{check}")
}

// ------------------------------------------------------------------------------------------ ports

fn taken_ports() -> &'static Mutex<HashSet<u16>> {
    static TAKEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    TAKEN.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A port nobody listens on right now, never handed out twice in this process.
///
/// Taken from below the kernel's ephemeral range: every `bind(:0)` (echo upstreams, fake upstreams)
/// and every client socket of the tests running in parallel draws from that range, and could take a
/// freed ephemeral port before the gateway binds it. Falls back to `bind(:0)` if that range is tiny.
pub(crate) fn free_port() -> u16 {
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let range = 10_000u16.max(low.saturating_sub(15_000))..low;
    let mut taken = taken_ports().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..200 {
        if range.len() < 1000 {
            break;
        }
        let port = rand::thread_rng().gen_range(range.clone());
        if taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        drop(listener);
        if taken.insert(port) {
            return port;
        }
    }
}

/// An address where nothing listens: an upstream that refuses connections.
///
/// Port 1 (tcpmux) on loopback, not a port freed after `bind(:0)`: the ephemeral range is shared with
/// every echo upstream and client socket of the tests running in parallel, so a freed port can be
/// taken again before the gateway connects to it (a 200 where a 502 was expected). Nothing binds a
/// privileged port here.
pub(crate) fn closed_addr() -> String {
    "127.0.0.1:1".to_string()
}

fn port_is_open(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(300)).is_ok()
}

// ------------------------------------------------------------------------------------------ upstreams

/// A `keygate-echo --listen 127.0.0.1:0 --name NAME` child process.
pub(crate) struct Echo {
    child: Child,
    pub(crate) addr: String,
    pub(crate) name: String,
}

impl Echo {
    pub(crate) fn spawn(name: &str) -> Echo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keygate-echo"))
            .args(["--listen", "127.0.0.1:0", "--name", name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn keygate-echo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {} // keep draining so the echo never blocks on a full pipe
        });
        let line = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => "printed nothing within 10 s",
                    mpsc::RecvTimeoutError::Disconnected => "closed stdout without a line",
                };
                panic!("keygate-echo {name} {why}; expected `listening on ADDR` (exit: {status:?})");
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("keygate-echo printed {line:?}, not `listening on ADDR`"))
            .to_string();
        addr.parse::<SocketAddr>().unwrap_or_else(|e| panic!("keygate-echo address {addr:?}: {e}"));
        Echo { child, addr, name: name.to_string() }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a [`FakeUpstream`] does with each connection.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FakeMode {
    /// Accepts and holds the connection, never answers.
    Hang,
    /// Reads the request head, waits, then answers 200 `slow` with a Content-Length.
    AnswerAfter(Duration),
}

/// A tiny std-only upstream on 127.0.0.1 for timeouts and shutdown tests. Stops when dropped.
pub(crate) struct FakeUpstream {
    pub(crate) addr: String,
    /// Connections accepted so far.
    pub(crate) accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FakeUpstream {
    pub(crate) fn start(mode: FakeMode) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, stp) = (accepted.clone(), stop.clone());
        thread::spawn(move || {
            let mut held = Vec::new();
            while !stp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        acc.fetch_add(1, Ordering::SeqCst);
                        match mode {
                            FakeMode::Hang => held.push(stream),
                            FakeMode::AnswerAfter(delay) => {
                                thread::spawn(move || answer_after(stream, delay));
                            }
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeUpstream { addr, accepted, stop }
    }
}

fn answer_after(mut stream: TcpStream, delay: Duration) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    thread::sleep(delay);
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
    );
    let _ = stream.flush();
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

// ------------------------------------------------------------------------------------------ responses

/// A response read in full, so assertions can look at it as often as they like.
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, &self.text[..self.text.len().min(800)])
    }
}

impl Resp {
    pub(crate) fn from(r: reqwest::blocking::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().unwrap_or_else(|e| panic!("reading a {status} body: {e}"));
        Resp { status, headers, text }
    }

    /// The header's value (the first one), if present.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Sending a request and sending a key with it.
pub(crate) trait RequestExt {
    /// `X-API-Key: <key>`.
    fn key(self, key: &str) -> Self;
    /// `Authorization: Bearer <key>`.
    fn bearer(self, key: &str) -> Self;
    /// Sends and reads the whole answer; a transport error fails the test.
    fn fetch(self) -> Resp;
}

impl RequestExt for RequestBuilder {
    fn key(self, key: &str) -> Self {
        self.header("x-api-key", key)
    }
    fn bearer(self, key: &str) -> Self {
        self.header("authorization", format!("Bearer {key}"))
    }
    fn fetch(self) -> Resp {
        Resp::from(self.send().unwrap_or_else(|e| panic!("request failed: {e:?}")))
    }
}

/// What the echo upstream saw (it answers it back); asserts the request reached an upstream.
pub(crate) fn echoed(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "expected the upstream's 200, got {r:?}");
    let v = r.json();
    assert!(v.get("upstream").is_some(), "not an echo answer: {r:?}");
    v
}

/// The lower-case request headers the echo upstream saw.
pub(crate) fn seen_headers(r: &Resp) -> serde_json::Map<String, Value> {
    echoed(r)["headers"].as_object().cloned().unwrap_or_else(|| panic!("echo without headers: {r:?}"))
}

// ------------------------------------------------------------------------------------------ problem+json

/// SPEC 4.2 / 5: an RFC 9457 body with the stable code; 429s carry `Retry-After` >= 1.
pub(crate) fn check_problem(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "expected {status} {code}, got {r:?}");
    let ctype = r.header("content-type").unwrap_or_default();
    let ctype = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    assert_eq!(ctype, "application/problem+json", "Content-Type of {r:?}");
    let body = r.json();
    for field in ["type", "title", "status", "code", "detail", "request_id"] {
        assert!(body.get(field).is_some(), "problem body lacks {field:?}: {body}");
    }
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("urn:keygate:error:{code}"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    for field in ["title", "detail", "request_id"] {
        assert!(body[field].as_str().is_some_and(|s| !s.is_empty()), "{field} is not a non-empty string: {body}");
    }
    if status == 429 {
        let retry = r.header("retry-after").unwrap_or_default();
        let secs: u64 = retry.parse().unwrap_or_else(|_| panic!("429 without a numeric Retry-After: {r:?}"));
        assert!(secs >= 1, "Retry-After must be at least 1: {r:?}");
    }
    body
}

/// A proxy-listener problem: also `WWW-Authenticate: Bearer realm="keygate"` on 401 and `X-Request-Id`.
pub(crate) fn check_proxy_problem(r: &Resp, status: u16, code: &str) -> Value {
    let body = check_problem(r, status, code);
    if status == 401 {
        assert_eq!(r.header("www-authenticate").as_deref(), Some(r#"Bearer realm="keygate""#), "{r:?}");
    }
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()), "no X-Request-Id on {r:?}");
    body
}

/// An admin-listener problem: also `WWW-Authenticate: Bearer realm="keygate-admin"` on 401.
pub(crate) fn check_admin_problem(r: &Resp, status: u16, code: &str) -> Value {
    let body = check_problem(r, status, code);
    if status == 401 {
        assert_eq!(r.header("www-authenticate").as_deref(), Some(r#"Bearer realm="keygate-admin""#), "{r:?}");
    }
    body
}

/// A 422 `validation_failed` that names `field` in `fields`.
pub(crate) fn check_field_error(r: &Resp, field: &str) -> Value {
    let body = check_admin_problem(r, 422, "validation_failed");
    assert!(body["fields"].get(field).is_some(), "fields does not name {field:?}: {body}");
    body
}

// ------------------------------------------------------------------------------------------ config

/// The three listener ports of one run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ports {
    pub(crate) proxy: u16,
    pub(crate) admin: u16,
    pub(crate) metrics: u16,
}

impl Ports {
    pub(crate) fn pick() -> Ports {
        Ports { proxy: free_port(), admin: free_port(), metrics: free_port() }
    }
}

/// The default test config (like the conformance harness's `default_config`).
/// `upstreams` holds one `host:port` per environment, in [`ENVIRONMENTS`] order.
pub(crate) fn default_config(ports: Ports, upstreams: [&str; 3], store: &Path) -> serde_yaml::Value {
    let mut environments = serde_json::Map::new();
    for (env, up) in ENVIRONMENTS.iter().zip(upstreams) {
        environments.insert(env.to_string(), json!({"upstreams": [up], "rate_limit": {"per_second": 5000}}));
    }
    yaml(json!({
        "proxy": {
            "listen": [format!("127.0.0.1:{}", ports.proxy)],
            "key_headers": ["x-api-key", "authorization"],
            "trusted_proxies": [],
            "upstream_timeout": "5s",
            "failed_auth_limit": {"per_minute": 10000},
        },
        "environments": environments,
        "routes": [
            {"path": "/invoices", "permission": "invoices:read"},
            {"path": "/status", "public": true},
        ],
        "groups": {"billing": {"permissions": ["invoices:read"]}},
        "tenants": {"default_key_limit": 100},
        "keys": {"prefix": "kg", "expiring_soon_days": 7},
        "admin": {"listen": format!("127.0.0.1:{}", ports.admin), "tokens": []},
        "metrics": {"listen": format!("127.0.0.1:{}", ports.metrics)},
        "storage": {"path": store.to_string_lossy(), "usage_flush_interval": "200ms"},
    }))
}

/// Appends a route to `routes`.
pub(crate) fn add_route(config: &mut serde_yaml::Value, route: Value) {
    match &mut config["routes"] {
        serde_yaml::Value::Sequence(seq) => seq.push(yaml(route)),
        other => *other = yaml(json!([route])),
    }
}

/// Runs the keygate binary with a clean `KEYGATE_*` environment plus `env`, stdin `stdin`, in `cwd`.
pub(crate) fn run_cli(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)], cwd: &Path) -> std::process::Output {
    let mut cmd = keygate_command();
    cmd.args(args).current_dir(cwd).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("spawn keygate");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let end = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("keygate {args:?} did not exit within 20 s");
        }
        thread::sleep(POLL_STEP);
    }
    child.wait_with_output().expect("collect output")
}

/// The keygate binary, without any `KEYGATE_*` variable of the test's own environment.
pub(crate) fn keygate_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KEYGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

// ------------------------------------------------------------------------------------------ the gateway

/// A config edit, applied before the first start.
type Configure = Box<dyn FnOnce(&mut serde_yaml::Value)>;

/// How to start a [`Gateway`].
pub(crate) struct Builder {
    configure: Vec<Configure>,
    env_token: bool,
    tenants: bool,
}

impl Builder {
    /// Edits the config before the first start.
    pub(crate) fn configure(mut self, f: impl FnOnce(&mut serde_yaml::Value) + 'static) -> Builder {
        self.configure.push(Box::new(f));
        self
    }

    /// Starts without `KEYGATE_ADMIN_TOKEN` (and so without the tenants acme and globex).
    pub(crate) fn without_env_token(mut self) -> Builder {
        self.env_token = false;
        self.tenants = false;
        self
    }

    /// Starts without creating the tenants acme and globex.
    pub(crate) fn without_tenants(mut self) -> Builder {
        self.tenants = false;
        self
    }

    pub(crate) fn start(self) -> Gateway {
        let dir = tempfile::Builder::new().prefix("keygate-it-").tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let echoes: Vec<Echo> = ENVIRONMENTS.iter().map(|env| Echo::spawn(env)).collect();
        let ports = Ports::pick();
        let store = dir.path().join("data").join("keygate.db");
        let mut config =
            default_config(ports, [echoes[0].addr.as_str(), echoes[1].addr.as_str(), echoes[2].addr.as_str()], &store);
        for f in self.configure {
            f(&mut config);
        }
        let env_token = self.env_token.then(|| format!("it-{}", random_alnum(32)));
        let mut g = Gateway {
            config_path: dir.path().join("keygate.yaml"),
            dir,
            config,
            ports,
            admin_token: env_token.clone().unwrap_or_default(),
            env_token,
            child: None,
            echoes,
            clients: Mutex::new(HashMap::new()),
            stderr_mark: 0,
        };
        g.spawn_with_port_retry();
        if self.tenants {
            for (id, name) in [("acme", "Acme"), ("globex", "Globex")] {
                let r = g.api("POST", "/v1/tenants", Some(json!({"id": id, "name": name})));
                assert_eq!(r.status, 201, "create tenant {id}: {r:?}");
            }
        }
        g
    }
}

/// One `keygate serve` child with its temp dir, echo upstreams, config and admin token.
pub(crate) struct Gateway {
    dir: tempfile::TempDir,
    /// The config as written on the last (re)start.
    pub(crate) config: serde_yaml::Value,
    config_path: PathBuf,
    pub(crate) ports: Ports,
    /// The token [`Gateway::api`] sends (`KEYGATE_ADMIN_TOKEN`, empty without one).
    pub(crate) admin_token: String,
    env_token: Option<String>,
    child: Option<Child>,
    echoes: Vec<Echo>,
    clients: Mutex<HashMap<IpAddr, Client>>,
    /// Length of `stderr.log` when the current process was spawned.
    stderr_mark: usize,
}

impl Gateway {
    pub(crate) fn builder() -> Builder {
        Builder { configure: Vec::new(), env_token: true, tenants: true }
    }

    /// A started gateway with the default config edited by `configure`, and the tenants acme and globex.
    pub(crate) fn start(configure: impl FnOnce(&mut serde_yaml::Value) + 'static) -> Gateway {
        Gateway::builder().configure(configure).start()
    }

    /// A started gateway with the default config.
    pub(crate) fn new() -> Gateway {
        Gateway::builder().start()
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file `keygate serve --config` reads (and re-reads on SIGHUP).
    pub(crate) fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The echo upstream address of an environment.
    pub(crate) fn echo_addr(&self, environment: &str) -> String {
        let i = ENVIRONMENTS.iter().position(|e| *e == environment).expect("known environment");
        self.echoes[i].addr.clone()
    }

    fn write_config(&mut self) {
        let p = self.ports;
        self.config["proxy"]["listen"] = yaml(json!([format!("127.0.0.1:{}", p.proxy)]));
        self.config["admin"]["listen"] = yaml(json!(format!("127.0.0.1:{}", p.admin)));
        self.config["metrics"]["listen"] = yaml(json!(format!("127.0.0.1:{}", p.metrics)));
        let text = serde_yaml::to_string(&self.config).expect("config serializes");
        fs::write(&self.config_path, text).expect("write config");
    }

    fn spawn_and_wait_once(&mut self) {
        self.write_config();
        let open = |name: &str| {
            OpenOptions::new().create(true).append(true).open(self.dir.path().join(name)).expect("open log file")
        };
        let mut cmd = keygate_command();
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(open("stdout.log"))
            .stderr(open("stderr.log"));
        if let Some(token) = &self.env_token {
            cmd.env("KEYGATE_ADMIN_TOKEN", token);
        }
        self.stderr_mark = self.stderr().len();
        self.child = Some(cmd.spawn().expect("spawn keygate serve"));
        self.wait_ready();
    }

    /// Starts keygate; when a port picked for it was taken meanwhile by another process (echo
    /// upstreams of parallel tests bind `:0` too), starts again on fresh ports.
    fn spawn_with_port_retry(&mut self) {
        for _ in 0..3 {
            self.spawn_and_wait_once();
            if self.child.is_some() {
                return;
            }
            self.ports = Ports::pick();
        }
        panic!("keygate could not bind its ports three times\n{}", self.tail());
    }

    fn wait_ready(&mut self) {
        let probe = Client::builder().no_proxy().timeout(Duration::from_millis(500)).build().expect("probe client");
        let url = format!("http://127.0.0.1:{}/healthz", self.ports.admin);
        let end = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                // Only this attempt's output counts: the log file is appended across (re)starts.
                let this_attempt = self.stderr().get(self.stderr_mark..).unwrap_or_default().to_string();
                if this_attempt.contains("cannot listen on") || this_attempt.contains("Address already in use") {
                    self.child = None;
                    return;
                }
                panic!("keygate exited with {status} at startup\n{}", self.tail());
            }
            let healthy = probe.get(&url).send().map(|r| r.status().as_u16() == 200).unwrap_or(false);
            if healthy && port_is_open(self.ports.proxy) {
                // The proxy port accepts connections, but is it this gateway? Pingora may fail to bind
                // after another process took the port; every keygate answer carries X-Request-Id.
                let proxy = format!("http://127.0.0.1:{}{WHOAMI}", self.ports.proxy);
                match probe.get(&proxy).send() {
                    Ok(r) if r.headers().contains_key("x-request-id") => return,
                    Ok(_) => {
                        eprintln!("port {} is held by another process; starting again", self.ports.proxy);
                        if let Some(mut child) = self.child.take() {
                            let _ = child.kill();
                            let _ = child.wait();
                        }
                        return;
                    }
                    Err(_) => {}
                }
            }
            if Instant::now() > end {
                panic!("keygate not ready within {STARTUP_TIMEOUT:?}\n{}", self.tail());
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// The process id of the running gateway.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after 10 s); returns the exit status.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("gateway is running");
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        signal(child.id(), "TERM");
        let end = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                eprintln!("keygate ignored SIGTERM for {STOP_TIMEOUT:?}; killed\n{}", self.tail());
                return status;
            }
            thread::sleep(POLL_STEP);
        }
    }

    /// Sends SIGKILL (a crash) and reaps the process.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().expect("gateway is running");
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts again (after [`Gateway::stop`] or [`Gateway::kill9`]) on new ports, same store and config.
    pub(crate) fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.ports = Ports::pick();
        self.spawn_with_port_retry();
    }

    /// SIGTERM, wait, then start again on new ports with the same store dir and config.
    pub(crate) fn restart(&mut self) -> ExitStatus {
        let status = self.stop();
        self.start_again();
        status
    }

    pub(crate) fn stdout(&self) -> String {
        fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub(crate) fn tail(&self) -> String {
        let cut = |s: String| s.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect::<String>();
        format!("--- stderr ---\n{}\n--- stdout ---\n{}", cut(self.stderr()), cut(self.stdout()))
    }

    // -- HTTP

    /// A client connecting from `source` (any 127/8 address works on Linux).
    pub(crate) fn client(&self, source: &str) -> Client {
        let ip: IpAddr = source.parse().expect("an IP address");
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(ip)
            .or_insert_with(|| {
                Client::builder()
                    .no_proxy()
                    .timeout(HTTP_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .local_address(ip)
                    .build()
                    .expect("http client")
            })
            .clone()
    }

    fn method(method: &str) -> reqwest::Method {
        reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method")
    }

    /// A request to the proxy listener from 127.0.0.1.
    pub(crate) fn call(&self, method: &str, path: &str) -> RequestBuilder {
        self.call_from("127.0.0.1", method, path)
    }

    /// A request to the proxy listener from `source`.
    pub(crate) fn call_from(&self, source: &str, method: &str, path: &str) -> RequestBuilder {
        self.client(source).request(Self::method(method), format!("http://127.0.0.1:{}{path}", self.ports.proxy))
    }

    /// `GET path` on the proxy with `X-API-Key: key`.
    pub(crate) fn get_with(&self, key: &str, path: &str) -> Resp {
        self.call("GET", path).key(key).fetch()
    }

    /// A call to the admin API with `KEYGATE_ADMIN_TOKEN`.
    pub(crate) fn api(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let token = self.admin_token.clone();
        self.api_as(method, path, body, Some(&token))
    }

    /// A call to the admin API with `token` (None: no Authorization header).
    pub(crate) fn api_as(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> Resp {
        let mut rb = self.admin_request(method, path, token);
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        rb.fetch()
    }

    /// An admin request builder, for raw bodies.
    pub(crate) fn admin_request(&self, method: &str, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut rb = self
            .client("127.0.0.1")
            .request(Self::method(method), format!("http://127.0.0.1:{}{path}", self.ports.admin));
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        rb
    }

    /// `POST /v1/keys` with defaults tenant acme, production and a unique name, overridden by `fields`
    /// (`kind: service` drops the default tenant); asserts 201.
    pub(crate) fn new_key(&self, fields: Value) -> Value {
        let token = self.admin_token.clone();
        self.new_key_as(&token, fields)
    }

    /// Like [`Gateway::new_key`] with another admin token.
    pub(crate) fn new_key_as(&self, token: &str, fields: Value) -> Value {
        let r = self.api_as("POST", "/v1/keys", Some(key_body(fields)), Some(token));
        assert_eq!(r.status, 201, "create key: {r:?}");
        let v = r.json();
        assert!(v["secret"].is_string(), "create answer without secret: {v}");
        v
    }

    /// A new tenant with a unique id; returns the id.
    pub(crate) fn new_tenant(&self, key_limit: Option<u64>) -> String {
        let id = format!("t-{}", random_alnum(10).to_lowercase());
        let mut body = json!({"id": id, "name": format!("Tenant {id}")});
        if let Some(limit) = key_limit {
            body["key_limit"] = json!(limit);
        }
        let r = self.api("POST", "/v1/tenants", Some(body));
        assert_eq!(r.status, 201, "create tenant: {r:?}");
        id
    }

    /// `GET /v1/keys/{id}`; asserts 200.
    pub(crate) fn key(&self, id: &str) -> Value {
        let r = self.api("GET", &format!("/v1/keys/{id}"), None);
        assert_eq!(r.status, 200, "GET key {id}: {r:?}");
        r.json()
    }

    /// `POST /v1/keys/{id}/{action}` without a body.
    pub(crate) fn act(&self, id: &str, action: &str) -> Resp {
        self.api("POST", &format!("/v1/keys/{id}/{action}"), None)
    }
}

/// The create body of [`Gateway::new_key`].
pub(crate) fn key_body(fields: Value) -> Value {
    let mut body = json!({"name": new_name("key"), "tenant": "acme", "environment": "production"});
    if fields.get("kind").and_then(Value::as_str) == Some("service") {
        body.as_object_mut().expect("object").remove("tenant");
    }
    if let Value::Object(extra) = fields {
        for (k, v) in extra {
            body[k] = v;
        }
    }
    body
}

/// Sends a signal with `kill(1)` (the crate forbids `unsafe`, so no `libc::kill`).
pub(crate) fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for a child's exit with a deadline (for exit-status assertions).
pub(crate) fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll(timeout, || child.try_wait().ok().flatten())
}
