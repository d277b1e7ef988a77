//! Crash safety (SPEC 5 "Durability" and "Audit", SPEC 4.6 "A crash may lose at most one interval of
//! usage data and nothing else"): the real `keygate serve` is SIGKILLed at random moments while several
//! clients mutate keys and others send proxied requests, then started again on the same store.
//!
//! Every cycle:
//! 1. [`MUTATORS`] admin clients make mixed mutations (create, patch, rotate, revoke, disable, enable,
//!    delete) on keys each of them owns, and from time to time all of them disable or patch the same
//!    "shared" keys at once; [`DRIVERS`] clients send proxied requests, each with its own key, and note
//!    when each answer arrived; a monitor scrapes the usage-flush counter from `/metrics`.
//! 2. After a random time the gateway gets SIGKILL; it starts again on the same store (new ports).
//! 3. Checks, against a model built only from the answers the clients got:
//!    - the key set and every record are exactly as last acknowledged (creates with their fields, PATCH
//!      edits, rotations, revoked and disabled states; deleted keys stay deleted);
//!    - the proxy agrees: active keys pass, revoked ones get 401 `key_revoked`, disabled ones 401
//!      `key_inactive`, deleted keys and rotated-away secrets 401 `invalid_api_key`;
//!    - `GET /v1/audit/verify` is ok and counts exactly the applied mutations; the entries of every key
//!      are exactly its applied mutations, in order (an acknowledged one is always there);
//!    - the tenant's `keys_used` matches the keys found;
//!    - usage lost at most one flush interval, plus the flush time (see [`check_usage`]).
//!
//! Only a 2xx answer is a promise. A request in flight at the kill (at most one per client: a client
//! stops at its first transport error) may or may not have been applied; the check accepts both and
//! then learns which one happened from the store, so the model stays exact for the next cycle.
//!
//! The run is driven by a seeded RNG (printed; `CRASH_SEED=<n>` repeats the choices and kill times,
//! `CRASH_CYCLES=<n>` changes the number of cycles). Thread interleavings are not reproducible.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};

use crate::admin_helpers::{audit, for_each_page, list, verify};
use crate::helpers::{check_proxy_problem, poll, Gateway, RequestExt, ENVIRONMENTS, HTTP_TIMEOUT, WHOAMI};

/// Admin clients making mutations concurrently.
const MUTATORS: usize = 4;
/// Clients sending proxied requests, one key each.
const DRIVERS: usize = 2;
/// Keys that every mutator disables and patches (to the same value) at once, new ones each cycle.
const SHARED: usize = 2;
/// Default number of kill/restart cycles (`CRASH_CYCLES` overrides).
const CYCLES: usize = 20;
/// Random time from the start of a cycle's traffic to the SIGKILL.
const KILL_AFTER_MS: std::ops::Range<u64> = 150..1000;
/// Every this many cycles, a cycle without mutations, killed after [`QUIET_KILL_AFTER_MS`].
const QUIET_EVERY: usize = 4;
const QUIET_KILL_AFTER_MS: std::ops::Range<u64> = 500..1200;
/// `storage.usage_flush_interval` of the gateway under test.
const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// How much more than one flush interval of usage a crash may lose at most, besides twice the longest
/// flush the cycle saw on `/metrics` (see [`check_usage`]): timer lateness and a flush slower than any
/// seen.
const FLUSH_SLACK: Duration = Duration::from_millis(300);
/// The tenant of the tenant keys made here; a big `key_limit` so creates never hit it.
const TENANT: &str = "crash";

// ------------------------------------------------------------------------------------------ HTTP

/// What came back for a request.
enum Answer {
    /// Status and body.
    Full(u16, String),
    /// The status arrived but the body did not (the process died while sending it).
    StatusOnly(u16),
    /// No answer: refused, reset or timed out.
    None,
}

fn send(rb: RequestBuilder) -> Answer {
    match rb.send() {
        Err(_) => Answer::None,
        Ok(r) => {
            let status = r.status().as_u16();
            match r.text() {
                Ok(text) => Answer::Full(status, text),
                Err(_) => Answer::StatusOnly(status),
            }
        }
    }
}

fn http_client() -> Client {
    Client::builder().no_proxy().timeout(HTTP_TIMEOUT).build().expect("http client")
}

fn is_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A random lowercase alphanumeric string from the seeded RNG.
fn word(rng: &mut StdRng, n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

// ------------------------------------------------------------------------------------------ the model

/// The record without what changes by itself: usage, last use, time-dependent state and the secret.
fn stable(rec: &Value) -> Value {
    let mut v = rec.clone();
    let obj = v.as_object_mut().unwrap_or_else(|| panic!("record is not an object: {rec}"));
    for volatile in ["usage", "last_used_at", "last_used_ip", "expiration_state", "secret"] {
        obj.remove(volatile);
    }
    if let Some(rotation) = obj.get_mut("rotation").and_then(Value::as_object_mut) {
        rotation.remove("previous_requests");
    }
    v
}

fn str_of<'a>(rec: &'a Value, field: &str) -> &'a str {
    rec[field].as_str().unwrap_or_else(|| panic!("record without {field}: {rec}"))
}

/// One audit entry a key must have.
#[derive(Clone, Debug, PartialEq)]
struct Expect {
    action: String,
    /// For `key.update`: the fields the edit changed.
    changes: Option<Vec<String>>,
}

impl Expect {
    fn action(action: &str) -> Expect {
        Expect { action: action.to_string(), changes: None }
    }
}

/// A key a mutator owns (only its owner mutates it, so its mutations are ordered).
#[derive(Clone, Debug)]
struct Owned {
    id: String,
    /// `stable()` of the record as last acknowledged (or as found after a restart).
    rec: Value,
    /// The current secret, when an answer told it.
    secret: Option<String>,
    /// The previous secret during a rotation grace period.
    previous: Option<String>,
}

impl Owned {
    fn status(&self) -> &str {
        str_of(&self.rec, "status")
    }
}

/// A mutation, as sent. `SharedDisable` and `SharedPatch` go to a shared key (every mutator sends them,
/// all but the first are no-ops); the patch sets the cycle's description.
#[derive(Clone, Debug)]
enum Op {
    Create { name: String, body: Value },
    Patch { id: String, body: Value },
    Rotate { id: String, grace: bool },
    Revoke { id: String },
    Disable { id: String },
    Enable { id: String },
    Delete { id: String },
    SharedDisable { idx: usize },
    SharedPatch { idx: usize },
}

impl Op {
    fn request(&self, shared: &[Shared]) -> (&'static str, String, Option<Value>) {
        match self {
            Op::Create { body, .. } => ("POST", "/v1/keys".into(), Some(body.clone())),
            Op::Patch { id, body } => ("PATCH", format!("/v1/keys/{id}"), Some(body.clone())),
            Op::Rotate { id, grace } => (
                "POST",
                format!("/v1/keys/{id}/rotate"),
                Some(json!({"grace_period": if *grace { "1h" } else { "0s" }})),
            ),
            Op::Revoke { id } => ("POST", format!("/v1/keys/{id}/revoke"), None),
            Op::Disable { id } => ("POST", format!("/v1/keys/{id}/disable"), None),
            Op::Enable { id } => ("POST", format!("/v1/keys/{id}/enable"), None),
            Op::Delete { id } => ("DELETE", format!("/v1/keys/{id}"), None),
            Op::SharedDisable { idx } => ("POST", format!("/v1/keys/{}/disable", shared[*idx].id), None),
            Op::SharedPatch { idx } => {
                let s = &shared[*idx];
                ("PATCH", format!("/v1/keys/{}", s.id), Some(json!({"description": s.description})))
            }
        }
    }

    /// Short, for the cycle log.
    fn describe(&self) -> String {
        match self {
            Op::Create { name, .. } => format!("create {name}"),
            Op::Patch { id, body } => {
                format!("patch {id} {:?}", body.as_object().map(|o| o.keys().collect::<Vec<_>>()).unwrap_or_default())
            }
            Op::Rotate { id, grace } => format!("rotate {id}{}", if *grace { " with grace" } else { "" }),
            Op::Revoke { id } => format!("revoke {id}"),
            Op::Disable { id } => format!("disable {id}"),
            Op::Enable { id } => format!("enable {id}"),
            Op::Delete { id } => format!("delete {id}"),
            Op::SharedDisable { idx } => format!("disable shared key {idx}"),
            Op::SharedPatch { idx } => format!("patch shared key {idx}"),
        }
    }

    fn expected_status(&self) -> u16 {
        match self {
            Op::Create { .. } => 201,
            Op::Delete { .. } => 204,
            _ => 200,
        }
    }
}

/// The op a mutator had in flight when the gateway died.
#[derive(Clone, Debug)]
struct Pending {
    op: Op,
    /// A 2xx status arrived (the body did not): the op must have been applied.
    acknowledged: bool,
}

/// A mutator's keys and what it learned in the current cycle.
#[derive(Default)]
struct Mutator {
    n: usize,
    counter: u64,
    keys: Vec<Owned>,
    /// Secrets that must now be refused with `invalid_api_key` (deleted or rotated away); checked after
    /// the next restart.
    retired: Vec<String>,
    /// (key id, audit entry) of every mutation acknowledged this cycle, in order.
    applied: Vec<(String, Expect)>,
    pending: Option<Pending>,
    /// Shared-key ops acknowledged this cycle: (index, disable?).
    shared_acks: Vec<(usize, bool)>,
    acks: usize,
    errors: Vec<String>,
}

/// A key every mutator disables and patches at once (SPEC 5: "disabling an inactive key is 200";
/// that 200 is a promise too).
#[derive(Clone, Debug)]
struct Shared {
    id: String,
    secret: String,
    rec: Value,
    description: String,
}

/// A key a driver sends proxied requests with; never mutated.
#[derive(Clone, Debug)]
struct DriverKey {
    id: String,
    secret: String,
    /// `stable()` of its record.
    rec: Value,
    /// Its stored `usage.requests_total` at the start of the cycle.
    base: u64,
}

/// What a driver saw in one cycle.
#[derive(Default)]
struct Traffic {
    /// When each 200 arrived, in order.
    answered: Vec<Instant>,
    /// Requests sent without an answer (the one in flight at the kill).
    unanswered: u64,
    errors: Vec<String>,
}

/// One `/metrics` scrape: when it was sent and `keygate_usage_flushes_total`.
#[derive(Clone, Copy, Debug)]
struct Scrape {
    sent: Instant,
    flushes: u64,
    duration_sum: f64,
    duration_count: u64,
}

// ------------------------------------------------------------------------------------------ the mutators

impl Mutator {
    fn next_name(&mut self, rng: &mut StdRng) -> String {
        self.counter += 1;
        format!("m{}-{}-{}", self.n, self.counter, word(rng, 6))
    }

    fn create_body(&mut self, rng: &mut StdRng) -> (String, Value) {
        let name = self.next_name(rng);
        let service = rng.gen_bool(0.3);
        let mut body = json!({
            "name": name,
            "kind": if service { "service" } else { "tenant" },
            "environment": ENVIRONMENTS[rng.gen_range(0..3)],
            "description": format!("created {}", word(rng, 8)),
            "role": if rng.gen_bool(0.5) { "admin" } else { "readonly" },
            "permissions": permissions(rng),
        });
        if !service {
            body["tenant"] = json!(TENANT);
        }
        if rng.gen_bool(0.4) {
            body["group"] = json!("billing");
        }
        if rng.gen_bool(0.4) {
            body["ip_allowlist"] = json!(["127.0.0.0/8", "::1"]);
        }
        if rng.gen_bool(0.4) {
            body["rate_limit"] = json!({"per_minute": rng.gen_range(600..100_000), "burst": rng.gen_range(50..500)});
        }
        if rng.gen_bool(0.5) {
            body["customer_id"] = json!(format!("cus_{}", word(rng, 10)));
        }
        (name, body)
    }

    /// A PATCH body that really changes every field it names (so each leaves an audit entry).
    fn patch_body(&mut self, rng: &mut StdRng, key: &Owned) -> Value {
        let mut body = json!({});
        let fields = ["name", "description", "customer_id", "role", "group", "permissions"];
        let count = rng.gen_range(1..=3);
        for _ in 0..count {
            match fields[rng.gen_range(0..fields.len())] {
                "name" => body["name"] = json!(self.next_name(rng)),
                "description" => body["description"] = json!(format!("edited {}", word(rng, 10))),
                "customer_id" => body["customer_id"] = json!(format!("cus_{}", word(rng, 10))),
                "role" => {
                    body["role"] = json!(if key.rec["role"] == "admin" { "readonly" } else { "admin" });
                }
                "group" => body["group"] = if key.rec["group"].is_null() { json!("billing") } else { Value::Null },
                _ => loop {
                    let p = permissions(rng);
                    if p != key.rec["permissions"] {
                        body["permissions"] = p;
                        break;
                    }
                },
            }
        }
        body
    }

    /// Picks the next mutation, valid for the key's state as the model knows it.
    fn choose(&mut self, rng: &mut StdRng, shared: &[Shared]) -> Op {
        if !shared.is_empty() && rng.gen_bool(0.15) {
            let idx = rng.gen_range(0..shared.len());
            return if rng.gen_bool(0.5) { Op::SharedDisable { idx } } else { Op::SharedPatch { idx } };
        }
        let n = self.keys.len();
        if n < 3 || (n < 10 && rng.gen_bool(0.2)) {
            let (name, body) = self.create_body(rng);
            return Op::Create { name, body };
        }
        let key = self.keys[rng.gen_range(0..n)].clone();
        let id = key.id.clone();
        let mut choices: Vec<(u32, &str)> = vec![(3, "patch"), (if n > 10 { 3 } else { 1 }, "delete")];
        match key.status() {
            "active" => choices.extend([(2, "rotate"), (1, "revoke"), (3, "disable")]),
            "inactive" => choices.extend([(1, "rotate"), (1, "revoke"), (3, "enable")]),
            _ => choices.push((2, "delete")),
        }
        let total: u32 = choices.iter().map(|c| c.0).sum();
        let mut pick = rng.gen_range(0..total);
        let what = choices
            .iter()
            .find(|(w, _)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|c| c.1)
            .unwrap_or("patch");
        match what {
            "patch" => Op::Patch { body: self.patch_body(rng, &key), id },
            "delete" => Op::Delete { id },
            "rotate" => Op::Rotate { id, grace: rng.gen_bool(0.3) },
            "revoke" => Op::Revoke { id },
            "disable" => Op::Disable { id },
            _ => Op::Enable { id },
        }
    }

    fn index_of(&self, id: &str) -> usize {
        self.keys.iter().position(|k| k.id == id).unwrap_or_else(|| panic!("mutator {} has no key {id}", self.n))
    }

    /// Records an acknowledged op with the record it answered.
    fn acknowledge(&mut self, op: &Op, rec: Option<Value>) {
        self.acks += 1;
        let check = |errors: &mut Vec<String>, ok: bool, what: String| {
            if !ok {
                errors.push(what);
            }
        };
        match op {
            Op::Create { name, .. } => {
                let rec = rec.expect("create answers a record");
                check(&mut self.errors, rec["name"] == *name, format!("create {name} answered {rec}"));
                let id = str_of(&rec, "id").to_string();
                let secret = rec["secret"].as_str().map(str::to_string);
                self.applied.push((id.clone(), Expect::action("key.create")));
                self.keys.push(Owned { id, rec: stable(&rec), secret, previous: None });
            }
            Op::Patch { id, body } => {
                let rec = rec.expect("patch answers a record");
                for (field, value) in body.as_object().expect("object") {
                    check(&mut self.errors, rec[field] == *value, format!("PATCH {id} {body} answered {rec}"));
                }
                let mut fields: Vec<String> = body.as_object().expect("object").keys().cloned().collect();
                fields.sort();
                self.applied.push((id.clone(), Expect { action: "key.update".into(), changes: Some(fields) }));
                let i = self.index_of(id);
                self.keys[i].rec = stable(&rec);
            }
            Op::Rotate { id, grace } => {
                let rec = rec.expect("rotate answers a record");
                let i = self.index_of(id);
                let key = &mut self.keys[i];
                rotated(key, &mut self.retired, *grace, rec["secret"].as_str().map(str::to_string));
                key.rec = stable(&rec);
                self.applied.push((id.clone(), Expect::action("key.rotate")));
            }
            Op::Revoke { id } | Op::Disable { id } | Op::Enable { id } => {
                let rec = rec.expect("a lifecycle change answers a record");
                let (action, status) = match op {
                    Op::Revoke { .. } => ("key.revoke", "revoked"),
                    Op::Disable { .. } => ("key.disable", "inactive"),
                    _ => ("key.enable", "active"),
                };
                check(&mut self.errors, rec["status"] == status, format!("{action} {id} answered {rec}"));
                let i = self.index_of(id);
                if action == "key.revoke" {
                    self.retired.extend(self.keys[i].previous.take());
                }
                self.keys[i].rec = stable(&rec);
                self.applied.push((id.clone(), Expect::action(action)));
            }
            Op::Delete { id } => {
                let i = self.index_of(id);
                let key = self.keys.remove(i);
                self.retired.extend(key.secret.into_iter().chain(key.previous));
                self.applied.push((id.clone(), Expect::action("key.delete")));
            }
            Op::SharedDisable { idx } => self.shared_acks.push((*idx, true)),
            Op::SharedPatch { idx } => self.shared_acks.push((*idx, false)),
        }
    }

    /// Mutates until the gateway stops answering (or `stop`).
    fn run(&mut self, rng: &mut StdRng, admin: &str, token: &str, shared: &[Shared], stop: &AtomicBool) {
        let client = http_client();
        while !stop.load(Ordering::SeqCst) {
            let op = self.choose(rng, shared);
            let (method, path, body) = op.request(shared);
            let mut rb = client.request(method.parse().expect("method"), format!("{admin}{path}")).bearer(token);
            if let Some(body) = &body {
                rb = rb.json(body);
            }
            match send(rb) {
                Answer::None => {
                    self.pending = Some(Pending { op, acknowledged: false });
                    return;
                }
                Answer::StatusOnly(status) => {
                    if !is_2xx(status) {
                        self.errors.push(format!("{method} {path} {body:?}: {status} (body lost)"));
                    }
                    self.pending = Some(Pending { op, acknowledged: is_2xx(status) });
                    return;
                }
                Answer::Full(status, text) if status == op.expected_status() => {
                    let rec = (status != 204).then(|| serde_json::from_str::<Value>(&text));
                    match rec.transpose() {
                        Ok(rec) => self.acknowledge(&op, rec),
                        Err(e) => {
                            self.errors.push(format!("{method} {path}: {status} with a body that is not JSON ({e})"));
                            return;
                        }
                    }
                }
                Answer::Full(status, text) => {
                    self.errors.push(format!(
                        "{method} {path} {body:?}: expected {}, got {status} {text}",
                        op.expected_status()
                    ));
                    return;
                }
            }
        }
    }
}

/// Model of a rotation: the new secret (if known) is current; with a grace period the old one is the
/// previous; every older secret is refused from now on.
fn rotated(key: &mut Owned, retired: &mut Vec<String>, grace: bool, secret: Option<String>) {
    let old = std::mem::replace(&mut key.secret, secret);
    retired.extend(key.previous.take());
    if grace {
        key.previous = old;
    } else {
        retired.extend(old);
    }
}

fn permissions(rng: &mut StdRng) -> Value {
    let all = ["customers:read", "invoices:read", "licenses:manage", "reports:read"];
    let picked: Vec<&str> = all.iter().copied().filter(|_| rng.gen_bool(0.4)).collect();
    json!(picked)
}

// ------------------------------------------------------------------------------------------ drivers, monitor

fn drive(proxy: &str, key: &DriverKey, stop: &AtomicBool) -> Traffic {
    let client = http_client();
    let mut t = Traffic::default();
    while !stop.load(Ordering::SeqCst) {
        match client.get(format!("{proxy}/reports")).key(&key.secret).send() {
            Err(_) => {
                t.unanswered += 1;
                break;
            }
            Ok(r) => {
                // The request was counted before it was answered; the arrival of the status is later.
                let at = Instant::now();
                let status = r.status().as_u16();
                if status != 200 {
                    let text = r.text().unwrap_or_default();
                    t.errors.push(format!("driver key {}: GET /reports answered {status} {text}", key.id));
                    break;
                }
                t.answered.push(at);
                let _ = r.bytes();
            }
        }
    }
    t
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Scrapes the usage-flush metrics every poll step until `stop` (or the gateway is gone).
fn monitor(metrics: &str, stop: &AtomicBool) -> Vec<Scrape> {
    let client = http_client();
    let mut scrapes = Vec::new();
    poll(Duration::from_secs(120), || {
        if stop.load(Ordering::SeqCst) {
            return Some(());
        }
        let sent = Instant::now();
        let text = client.get(format!("{metrics}/metrics")).send().and_then(|r| r.text()).ok()?;
        if let (Some(flushes), Some(sum), Some(count)) = (
            metric(&text, "keygate_usage_flushes_total"),
            metric(&text, "keygate_usage_flush_duration_seconds_sum"),
            metric(&text, "keygate_usage_flush_duration_seconds_count"),
        ) {
            scrapes.push(Scrape { sent, flushes: flushes as u64, duration_sum: sum, duration_count: count as u64 });
        }
        None
    });
    scrapes
}

/// The longest single flush the scrapes can tell (a delta over one flush; over several, an upper bound).
fn longest_flush(scrapes: &[Scrape]) -> Duration {
    scrapes
        .windows(2)
        .filter(|w| w[1].duration_count > w[0].duration_count)
        .map(|w| Duration::from_secs_f64((w[1].duration_sum - w[0].duration_sum).max(0.0)))
        .max()
        .unwrap_or_default()
}

/// SPEC 4.6 after a crash at `kill`: for one driver key, `stored` (its `usage.requests_total` now) must be
///
/// - at most what was sent: the base, every answered request and the ones in flight at the kill
///   (counted before they were answered, perhaps flushed, never answered);
/// - at least the base plus every request answered before `kill − interval − slack`, where
///   `slack = FLUSH_SLACK + 2 × the longest flush seen`. Why: a request is counted in memory before it
///   is answered. Every interval the flusher takes a snapshot of the counters (at `S`), writes and
///   fsyncs it (taking `F`), then waits for the next tick, which fires at `max(S + interval, S + F)`
///   plus the timer's lateness. Let flush `k` be the last one that finished before the kill: all
///   counted before `S_k` is durable. Flush `k+1` did not finish, so `S_{k+1} > kill − F_{k+1}`, and
///   `S_{k+1} ≤ S_k + max(interval, F_k) + lateness`. Hence `S_k > kill − interval − F_k − F_{k+1} −
///   lateness`: the loss reaches back at most one interval, two flush durations and the timer's
///   lateness. The flush durations are taken from `keygate_usage_flush_duration_seconds` (a few ms on
///   an idle machine, up to ~70 ms while `cargo build` runs); [`FLUSH_SLACK`] covers lateness and a
///   flush slower than any seen (the one cut by the kill);
/// - at least the base plus every request answered before a scrape of `/metrics` that saw `n` flushes,
///   when a later scrape saw `n + 2`: flush `n + 1` ended after that scrape was sent, so flush `n + 2`
///   took its snapshot after it, and `keygate_usage_flushes_total` counts a flush after its fsync. This
///   bound needs no timing assumption at all.
///
/// Returns the time before the kill of the first answered request that was lost (zero if none).
fn check_usage(
    key: &DriverKey,
    t: &Traffic,
    scrapes: &[Scrape],
    kill: Instant,
    stored: u64,
) -> Result<Duration, String> {
    let answered = t.answered.len() as u64;
    let upper = key.base + answered + t.unanswered;
    let slack = FLUSH_SLACK + 2 * longest_flush(scrapes);
    let cutoff = kill.checked_sub(FLUSH_INTERVAL + slack);
    let by_time = cutoff.map_or(0, |c| t.answered.iter().filter(|a| **a < c).count() as u64);
    let latest = scrapes.iter().map(|s| s.flushes).max().unwrap_or(0);
    let witness = scrapes.iter().filter(|s| s.flushes + 2 <= latest).map(|s| s.sent).max();
    let by_witness = witness.map_or(0, |w| t.answered.iter().filter(|a| **a < w).count() as u64);
    let lost_from = stored.checked_sub(key.base).and_then(|d| t.answered.get(d as usize));
    let lag = lost_from.map_or(Duration::ZERO, |a| kill.saturating_duration_since(*a));
    let context = || {
        format!(
            "driver key {}: stored {stored}, base {}, answered {answered}, in flight at the kill {}; the first lost \
             request was answered {lag:?} before the kill; flushes seen {latest}, longest flush seen {:?}",
            key.id,
            key.base,
            t.unanswered,
            longest_flush(scrapes)
        )
    };
    if stored > upper {
        return Err(format!("usage counts more requests than were sent: {}", context()));
    }
    if stored < key.base + by_witness {
        return Err(format!(
            "usage lost {} requests answered before a flush that /metrics saw complete: {}",
            key.base + by_witness - stored,
            context()
        ));
    }
    if stored < key.base + by_time {
        return Err(format!(
            "usage lost {} requests answered more than {:?} (interval) + {slack:?} (slack) before the kill: {}",
            key.base + by_time - stored,
            FLUSH_INTERVAL,
            context()
        ));
    }
    Ok(lag)
}

// ------------------------------------------------------------------------------------------ after a restart

/// Every key record, by id (all pages of `GET /v1/keys`).
fn all_keys(g: &Gateway) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for_each_page(g, list, &[], 500, usize::MAX, |_, page| {
        for item in page["items"].as_array().expect("items") {
            out.insert(str_of(item, "id").to_string(), item.clone());
        }
        true
    });
    out
}

/// Adds the audit entries newer than the newest in `seen` (pages newest first).
fn fetch_new_audit(g: &Gateway, seen: &mut BTreeMap<u64, Value>) {
    let newest = seen.keys().next_back().copied().unwrap_or(0);
    for_each_page(g, audit, &[], 500, usize::MAX, |_, page| {
        for entry in page["items"].as_array().expect("items") {
            let id: u64 = str_of(entry, "id").parse().unwrap_or_else(|_| panic!("audit id is not a number: {entry}"));
            if id <= newest {
                return false;
            }
            seen.insert(id, entry.clone());
        }
        true
    });
}

/// Settles what a mutator had in flight at the kill from what the store now holds, or fails when the
/// store holds neither the state before it nor the state after it. Returns what the op did.
fn settle(m: &mut Mutator, keys: &HashMap<String, Value>, claimed: &HashSet<String>) -> Result<Option<String>, String> {
    let Some(Pending { op, acknowledged }) = m.pending.take() else { return Ok(None) };
    let before = |m: &Mutator, id: &str| m.keys[m.index_of(id)].clone();
    let now_rec = |id: &str| keys.get(id).map(stable);
    let applied: bool;
    match &op {
        Op::Create { name, body } => {
            let found: Vec<&Value> =
                keys.values().filter(|r| r["name"] == *name && !claimed.contains(str_of(r, "id"))).collect();
            match found.as_slice() {
                [] => applied = false,
                [rec] => {
                    for (field, value) in body.as_object().expect("object") {
                        if rec[field] != *value && field != "rate_limit" && field != "ip_allowlist" {
                            return Err(format!("in-flight create {body} left {rec}"));
                        }
                    }
                    let id = str_of(rec, "id").to_string();
                    m.applied.push((id.clone(), Expect::action("key.create")));
                    m.keys.push(Owned { id, rec: stable(rec), secret: None, previous: None });
                    applied = true;
                }
                more => return Err(format!("in-flight create {name} made {} keys", more.len())),
            }
        }
        Op::Delete { id } => {
            applied = !keys.contains_key(id);
            if applied {
                let key = m.keys.remove(m.index_of(id));
                m.retired.extend(key.secret.into_iter().chain(key.previous));
                m.applied.push((id.clone(), Expect::action("key.delete")));
            }
        }
        Op::Patch { id, body } => {
            let key = before(m, id);
            let now = now_rec(id).ok_or_else(|| vanished(id, &key.rec, &op))?;
            applied = now != key.rec;
            if applied {
                for (field, value) in body.as_object().expect("object") {
                    if now[field] != *value {
                        return Err(neither(id, &now, &key.rec, &op));
                    }
                }
                let mut fields: Vec<String> = body.as_object().expect("object").keys().cloned().collect();
                fields.sort();
                m.applied.push((id.clone(), Expect { action: "key.update".into(), changes: Some(fields) }));
                let i = m.index_of(id);
                m.keys[i].rec = now;
            }
        }
        Op::Rotate { id, grace } => {
            let key = before(m, id);
            let now = now_rec(id).ok_or_else(|| vanished(id, &key.rec, &op))?;
            applied = now["mark"] != key.rec["mark"];
            if applied {
                let i = m.index_of(id);
                rotated(&mut m.keys[i], &mut m.retired, *grace, None);
                m.keys[i].rec = now;
                m.applied.push((id.clone(), Expect::action("key.rotate")));
            }
        }
        Op::Revoke { id } | Op::Disable { id } | Op::Enable { id } => {
            let (action, status) = match &op {
                Op::Revoke { .. } => ("key.revoke", "revoked"),
                Op::Disable { .. } => ("key.disable", "inactive"),
                _ => ("key.enable", "active"),
            };
            let key = before(m, id);
            let now = now_rec(id).ok_or_else(|| vanished(id, &key.rec, &op))?;
            applied = now["status"] == status;
            if applied {
                let i = m.index_of(id);
                if action == "key.revoke" {
                    m.retired.extend(m.keys[i].previous.take());
                }
                m.keys[i].rec = now;
                m.applied.push((id.clone(), Expect::action(action)));
            } else if now != key.rec {
                return Err(neither(id, &now, &key.rec, &op));
            }
        }
        // Settled with the shared keys.
        Op::SharedDisable { idx } | Op::SharedPatch { idx } => {
            if acknowledged {
                m.shared_acks.push((*idx, matches!(op, Op::SharedDisable { .. })));
            }
            return Ok(Some(format!("{} (settled below)", op.describe())));
        }
    }
    if acknowledged && !applied {
        return Err(format!("{op:?} was answered 2xx (its body was lost at the kill) but is not in the store"));
    }
    Ok(Some(format!("{} ({})", op.describe(), if applied { "applied" } else { "not applied" })))
}

fn vanished(id: &str, acknowledged: &Value, op: &Op) -> String {
    format!(
        "key {id} is gone from the store; its last acknowledged state was {acknowledged}, and the only \
         request in flight on it was {op:?}, which cannot delete it: an acknowledged mutation was lost"
    )
}

fn neither(id: &str, now: &Value, acknowledged: &Value, op: &Op) -> String {
    format!(
        "key {id}: the store holds {now}, which is neither its last acknowledged state {acknowledged} nor \
         that state with the in-flight {op:?} applied: an acknowledged mutation was lost or changed"
    )
}

/// The answer the proxy must give a secret of a key in `status`.
fn check_secret(g: &Gateway, secret: &str, id: &str, status: &str) -> Result<(), String> {
    let r = g.call("GET", WHOAMI).key(secret).fetch();
    let expected = match status {
        "active" => {
            return if r.status == 200 && r.json()["id"] == id {
                Ok(())
            } else {
                Err(format!("key {id} is active but whoami answered {r:?}"))
            };
        }
        "revoked" => "key_revoked",
        "inactive" => "key_inactive",
        _ => "invalid_api_key",
    };
    let code = serde_json::from_str::<Value>(&r.text).ok().map(|b| b["code"].clone());
    if r.status != 401 || code != Some(json!(expected)) {
        return Err(format!("a {status} key {id} (or a retired secret of it) answered {r:?}, expected 401 {expected}"));
    }
    check_proxy_problem(&r, 401, expected);
    Ok(())
}

// ------------------------------------------------------------------------------------------ the test

#[test]
fn acknowledged_mutations_and_usage_survive_sigkill() {
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let cycles: usize = std::env::var("CRASH_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(CYCLES);
    eprintln!("crash test: seed {seed} ({cycles} cycles; CRASH_SEED={seed} repeats the choices and kill times)");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);

    let mut g = Gateway::start(|c| {
        c["storage"]["usage_flush_interval"] = format!("{}ms", FLUSH_INTERVAL.as_millis()).into();
        c["log"]["access"] = "off".into();
    });
    let r = g.api("POST", "/v1/tenants", Some(json!({"id": TENANT, "name": "Crash", "key_limit": 1_000_000})));
    assert_eq!(r.status, 201, "create tenant: {r:?}");
    // Audit entries every key must have, in order; the tenants acme, globex and crash have one each.
    let mut expected: BTreeMap<String, Vec<Expect>> = BTreeMap::new();
    for t in ["acme", "globex", TENANT] {
        expected.insert(t.to_string(), vec![Expect::action("tenant.create")]);
    }

    let mut drivers: Vec<DriverKey> = (0..DRIVERS)
        .map(|_| {
            let rec = g.new_key(json!({"tenant": TENANT}));
            expected.insert(str_of(&rec, "id").to_string(), vec![Expect::action("key.create")]);
            DriverKey {
                id: str_of(&rec, "id").to_string(),
                secret: str_of(&rec, "secret").to_string(),
                rec: stable(&rec),
                base: 0,
            }
        })
        .collect();
    let mut mutators: Vec<Mutator> = (0..MUTATORS).map(|n| Mutator { n, ..Mutator::default() }).collect();
    // Shared keys of earlier cycles: never touched again, must stay as they were.
    let mut frozen: Vec<Value> = Vec::new();
    let mut seen_audit: BTreeMap<u64, Value> = BTreeMap::new();
    let (mut total_acks, mut total_requests, mut max_lag, mut longest) =
        (0usize, 0usize, Duration::ZERO, Duration::ZERO);

    for cycle in 1..=cycles {
        macro_rules! fail {
            ($g:expr, $what:expr) => {
                panic!("crash test seed {seed}, cycle {cycle}: {}\n{}", $what, $g.tail())
            };
        }
        // New shared keys for this cycle.
        let shared: Vec<Shared> = (0..SHARED)
            .map(|i| {
                let rec = g.new_key(json!({"tenant": TENANT}));
                let id = str_of(&rec, "id").to_string();
                expected.insert(id.clone(), vec![Expect::action("key.create")]);
                Shared {
                    id,
                    secret: str_of(&rec, "secret").to_string(),
                    rec: stable(&rec),
                    description: format!("shared {cycle}-{i}"),
                }
            })
            .collect();
        for m in &mut mutators {
            m.applied.clear();
            m.shared_acks.clear();
            m.acks = 0;
        }
        // Every QUIET_EVERY-th cycle has proxied traffic only: no admin fsync then makes usage durable
        // by the way, only the usage flusher's own.
        let quiet = cycle % QUIET_EVERY == 0;
        let kill_after = Duration::from_millis(rng.gen_range(if quiet { QUIET_KILL_AFTER_MS } else { KILL_AFTER_MS }));
        let mut rngs: Vec<StdRng> = (0..MUTATORS).map(|_| StdRng::seed_from_u64(rng.gen())).collect();
        let admin = format!("http://127.0.0.1:{}", g.ports.admin);
        let proxy = format!("http://127.0.0.1:{}", g.ports.proxy);
        let metrics = format!("http://127.0.0.1:{}", g.ports.metrics);
        let token = g.admin_token.clone();
        let stop = AtomicBool::new(false);

        // Run the clients, kill the gateway under them.
        let (kill, traffic, scrapes) = thread::scope(|s| {
            let (stop, shared, admin, proxy, metrics, token) = (&stop, &shared, &admin, &proxy, &metrics, &token);
            let mutating: Vec<_> = mutators
                .iter_mut()
                .zip(rngs.iter_mut())
                .filter(|_| !quiet)
                .map(|(m, rng)| s.spawn(move || m.run(rng, admin, token, shared, stop)))
                .collect();
            let driving: Vec<_> = drivers.iter().map(|k| s.spawn(move || drive(proxy, k, stop))).collect();
            let monitoring = s.spawn(move || monitor(metrics, stop));
            // The random time until the crash is the point of the test, not a wait for state.
            thread::sleep(kill_after);
            let kill = Instant::now();
            g.kill9();
            stop.store(true, Ordering::SeqCst);
            for h in mutating {
                h.join().expect("mutator thread");
            }
            let traffic: Vec<Traffic> = driving.into_iter().map(|h| h.join().expect("driver thread")).collect();
            (kill, traffic, monitoring.join().expect("monitor thread"))
        });
        let mut errors: Vec<String> = mutators.iter_mut().flat_map(|m| m.errors.drain(..)).collect();
        errors.extend(traffic.iter().flat_map(|t| t.errors.iter().cloned()));
        if !errors.is_empty() {
            fail!(&g, format!("unexpected answers before the kill:\n{}", errors.join("\n")));
        }

        g.start_again();
        let keys = all_keys(&g);

        // In-flight ops: settle each from the store.
        let mut settled = Vec::new();
        let mut claimed: HashSet<String> = mutators.iter().flat_map(|m| m.keys.iter().map(|k| k.id.clone())).collect();
        for m in &mut mutators {
            match settle(m, &keys, &claimed) {
                Ok(note) => settled.extend(note),
                Err(e) => fail!(&g, e),
            }
            claimed.extend(m.keys.iter().map(|k| k.id.clone()));
            for (id, e) in m.applied.drain(..) {
                expected.entry(id).or_default().push(e);
            }
        }

        // Shared keys: an acknowledged disable or patch must be there; each leaves one audit entry.
        fetch_new_audit(&g, &mut seen_audit);
        for (i, s) in shared.iter().enumerate() {
            let acked = |disable: bool| mutators.iter().any(|m| m.shared_acks.contains(&(i, disable)));
            let now = keys.get(&s.id).map(stable).unwrap_or_else(|| fail!(&g, format!("shared key {} is gone", s.id)));
            let disabled = now["status"] == "inactive";
            let patched = now["description"] == s.description.as_str();
            if acked(true) && !disabled {
                fail!(&g, format!("a disable of shared key {} was answered 200, yet it is {now}", s.id));
            }
            if acked(false) && !patched {
                fail!(&g, format!("a PATCH of shared key {} was answered 200, yet it is {now}", s.id));
            }
            let mut want = s.rec.clone();
            if disabled {
                want["status"] = json!("inactive");
            }
            if patched {
                want["description"] = json!(s.description);
            }
            want["updated_at"] = now["updated_at"].clone();
            if now != want {
                fail!(&g, format!("shared key {} holds {now}, expected {want}", s.id));
            }
            check_secret(&g, &s.secret, &s.id, str_of(&now, "status")).unwrap_or_else(|e| fail!(&g, e));
            // One entry per change that happened (the no-op repeats leave none), in the order applied.
            let done: Vec<&Value> = seen_audit.values().filter(|e| e["target"] == s.id.as_str()).skip(1).collect();
            let mut have: Vec<&str> = done.iter().filter_map(|e| e["action"].as_str()).collect();
            let mut want: Vec<&str> = [(disabled, "key.disable"), (patched, "key.update")]
                .iter()
                .filter(|(happened, _)| *happened)
                .map(|(_, action)| *action)
                .collect();
            have.sort_unstable();
            want.sort_unstable();
            if have != want {
                fail!(&g, format!("audit of shared key {} holds {have:?} after the create, expected {want:?}", s.id));
            }
            let exp = expected.get_mut(&s.id).expect("shared key expected");
            for e in done {
                let changes = (e["action"] == "key.update").then(|| vec!["description".to_string()]);
                exp.push(Expect { action: str_of(e, "action").to_string(), changes });
            }
            frozen.push(now);
        }

        // Every key is exactly as last acknowledged (or as settled above); nothing else exists.
        let mut want_ids: HashSet<String> = HashSet::new();
        for m in &mutators {
            for k in &m.keys {
                want_ids.insert(k.id.clone());
                let now = keys.get(&k.id).map(stable);
                if now.as_ref() != Some(&k.rec) {
                    fail!(
                        &g,
                        format!(
                            "key {} (mutator {}): the store holds {}, not its last acknowledged state {}",
                            k.id,
                            m.n,
                            now.map_or("nothing (the key is gone)".to_string(), |v| v.to_string()),
                            k.rec
                        )
                    );
                }
            }
        }
        for f in &frozen {
            let id = str_of(f, "id");
            want_ids.insert(id.to_string());
            if keys.get(id).map(stable).as_ref() != Some(f) {
                fail!(&g, format!("shared key {id} changed: was {f}, now {:?}", keys.get(id)));
            }
        }
        for d in &drivers {
            want_ids.insert(d.id.clone());
            if keys.get(&d.id).map(stable).as_ref() != Some(&d.rec) {
                fail!(&g, format!("driver key {} changed: was {}, now {:?}", d.id, d.rec, keys.get(&d.id)));
            }
        }
        let have_ids: HashSet<String> = keys.keys().cloned().collect();
        if have_ids != want_ids {
            let extra: Vec<_> = have_ids.difference(&want_ids).collect();
            let missing: Vec<_> = want_ids.difference(&have_ids).collect();
            fail!(&g, format!("key set differs: unexpected {extra:?} (deleted keys back?), missing {missing:?}"));
        }

        // The tenant's key count is rebuilt from the store (SPEC 5: neither revoked nor expired).
        let used = keys.values().filter(|r| r["tenant"] == TENANT && r["status"] != "revoked").count();
        let t = g.api("GET", &format!("/v1/tenants/{TENANT}"), None);
        if t.status != 200 || t.json()["keys_used"] != used {
            fail!(&g, format!("tenant {TENANT} should have keys_used {used}: {t:?}"));
        }

        // The proxy agrees with the store.
        for m in &mut mutators {
            for k in &m.keys {
                if let Some(secret) = &k.secret {
                    check_secret(&g, secret, &k.id, k.status()).unwrap_or_else(|e| fail!(&g, e));
                }
                if let (Some(previous), "active") = (&k.previous, k.status()) {
                    check_secret(&g, previous, &k.id, "active").unwrap_or_else(|e| fail!(&g, e));
                }
            }
            for secret in m.retired.drain(..) {
                check_secret(&g, &secret, "(retired)", "gone").unwrap_or_else(|e| fail!(&g, e));
            }
        }

        // The audit chain verifies and holds exactly the applied mutations, per key in order.
        let v = verify(&g);
        let want_entries: usize = expected.values().map(Vec::len).sum();
        if v["ok"] != true || !v["first_bad"].is_null() || v["entries"] != want_entries {
            fail!(&g, format!("audit verify answered {v}; expected ok with {want_entries} entries"));
        }
        if seen_audit.len() != want_entries {
            fail!(&g, format!("GET /v1/audit lists {} entries, expected {want_entries}", seen_audit.len()));
        }
        let mut by_target: HashMap<&str, Vec<&Value>> = HashMap::new();
        for e in seen_audit.values() {
            by_target.entry(str_of(e, "target")).or_default().push(e);
        }
        for (target, want) in &expected {
            let have = by_target.remove(target.as_str()).unwrap_or_default();
            let matches = have.len() == want.len()
                && have.iter().zip(want).all(|(h, w)| {
                    let mut changes: Vec<String> = h["changes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect();
                    changes.sort();
                    h["action"] == w.action.as_str()
                        && h["actor"] == "env"
                        && w.changes.as_ref().is_none_or(|c| *c == changes)
                });
            if !matches {
                let have: Vec<String> = have.iter().map(|h| format!("{} {}", h["action"], h["changes"])).collect();
                fail!(&g, format!("audit entries of {target}: have {have:?}, expected {want:?}"));
            }
        }
        if !by_target.is_empty() {
            fail!(&g, format!("audit entries for unexpected targets: {:?}", by_target.keys().collect::<Vec<_>>()));
        }

        // Usage lost at most one flush interval.
        let mut lags = Vec::new();
        for (d, t) in drivers.iter_mut().zip(&traffic) {
            let stored = keys[&d.id]["usage"]["requests_total"]
                .as_u64()
                .unwrap_or_else(|| fail!(&g, format!("no usage.requests_total: {}", keys[&d.id])));
            match check_usage(d, t, &scrapes, kill, stored) {
                Ok(lag) => lags.push(lag),
                Err(e) => fail!(&g, e),
            }
            d.base = stored;
            total_requests += t.answered.len();
        }
        let cycle_acks: usize = mutators.iter().map(|m| m.acks).sum();
        total_acks += cycle_acks;
        let lag = lags.iter().copied().max().unwrap_or_default();
        max_lag = max_lag.max(lag);
        longest = longest.max(longest_flush(&scrapes));
        eprintln!(
            "cycle {cycle:2}{}: kill after {kill_after:?}; {cycle_acks} mutations acknowledged; {} requests answered; \
             usage lost since {lag:?} before the kill; longest flush {:?}; in flight: {}",
            if quiet { " (traffic only)" } else { "" },
            traffic.iter().map(|t| t.answered.len()).sum::<usize>(),
            longest_flush(&scrapes),
            if settled.is_empty() { "none".to_string() } else { settled.join(", ") }
        );
    }
    let live: usize = mutators.iter().map(|m| m.keys.len()).sum();
    eprintln!(
        "crash test: {cycles} cycles in {:?}: {total_acks} mutations acknowledged, {} audit entries, {live} owned keys, \
         {total_requests} proxied requests; usage lost at most {max_lag:?} before a kill; longest flush seen {longest:?}",
        started.elapsed(),
        seen_audit.len()
    );
    g.stop();
}

/// SPEC 5: "a 2xx answer to a mutation is sent only after the change is durable on disk", also when the
/// mutation itself changes nothing. A disable of an already-inactive key is a no-op, and it used to be
/// answered 200 at once while the disable that made the key inactive was still waiting for its fsync,
/// so a crash right after that 200 lost the disable it confirmed. Before the fix this failed in about
/// 5 of 100 rounds.
#[test]
fn a_repeated_disable_is_answered_only_once_the_disable_is_durable() {
    killed_at_the_first_answer("disable", &[200], "inactive");
}

/// A revoke refused with 409 `already_revoked` reports another caller's revoke, and that one may be
/// published and not yet on disk: the refusal used to be sent at once, so a crash right after it
/// brought the key back to life while a client had been told it was revoked. Refusals now wait for
/// durability like writes.
#[test]
fn an_already_revoked_refusal_is_answered_only_once_the_revoke_is_durable() {
    killed_at_the_first_answer("revoke", &[200, 409], "revoked");
}

/// Rounds (`CRASH_ROUNDS`, default 100) of: four clients send `POST /v1/keys/{id}/<action>` for the same
/// new key; at the first answer with a status in `answers` the gateway gets SIGKILL; after the restart
/// the key must have `expected` status.
fn killed_at_the_first_answer(action: &str, answers: &[u16], expected: &str) {
    let rounds: usize = std::env::var("CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let mut g = Gateway::start(|c| c["log"]["access"] = "off".into());
    let mut lost = Vec::new();
    for round in 0..rounds {
        let id = str_of(&g.new_key(json!({})), "id").to_string();
        let url = format!("http://127.0.0.1:{}/v1/keys/{id}/{action}", g.ports.admin);
        let token = g.admin_token.clone();
        let answered = AtomicBool::new(false);
        thread::scope(|s| {
            let (url, token, answered) = (&url, &token, &answered);
            for _ in 0..4 {
                s.spawn(move || {
                    let client = http_client();
                    while !answered.load(Ordering::SeqCst) {
                        match send(client.post(url).bearer(token)) {
                            Answer::Full(status, _) | Answer::StatusOnly(status) if answers.contains(&status) => {
                                answered.store(true, Ordering::SeqCst)
                            }
                            Answer::Full(status, text) => panic!("{action} answered {status} {text}"),
                            Answer::StatusOnly(_) | Answer::None => return,
                        }
                    }
                });
            }
            // SIGKILL as soon as the first answer arrives (spinning, for the shortest delay).
            let end = Instant::now() + HTTP_TIMEOUT;
            while !answered.load(Ordering::SeqCst) && Instant::now() < end {
                std::hint::spin_loop();
            }
            g.kill9();
        });
        assert!(
            answered.load(Ordering::SeqCst),
            "round {round}: no {action} was answered {answers:?} within {HTTP_TIMEOUT:?}"
        );
        g.start_again();
        let status = g.key(&id)["status"].clone();
        if status != expected {
            lost.push(format!("round {round}: key {id} is {status}"));
        }
    }
    assert!(
        lost.is_empty(),
        "a {action} answered {answers:?} did not survive SIGKILL right after the answer:\n{}",
        lost.join("\n")
    );
}
