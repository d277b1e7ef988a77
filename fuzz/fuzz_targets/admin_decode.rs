//! Fuzz target `admin_decode`: admin API request decoding, through the real axum router
//! (`keygate::admin::router`) in-process, on a store in a temporary directory (on /dev/shm when it
//! exists, so the store's fsyncs are cheap).
//!
//! Input: the first byte picks the request, the rest is its JSON body or query string.
//!
//! | first byte & 7 | request                                    | rest of the input |
//! |----------------|--------------------------------------------|-------------------|
//! | 0              | `POST /v1/keys` (create key)               | JSON body         |
//! | 1              | `PATCH /v1/keys/{id}` (edit key)           | JSON body         |
//! | 2              | `POST /v1/keys/{id}/rotate`                | JSON body         |
//! | 3              | `POST /v1/tenants` (create tenant)         | JSON body         |
//! | 4              | `PATCH /v1/tenants/acme` (edit tenant)     | JSON body         |
//! | 5              | `GET /v1/keys?…` (list keys)               | query string      |
//! | 6              | `GET /v1/audit?…` (list audit entries)     | query string      |
//! | 7              | any request                                | `METHOD /path?query\n` then the body |
//!
//! Bit 3 of the first byte (`& 8`) sends a token restricted to tenant `acme` instead of one with
//! every scope. So the ASCII digits `0`-`7` are the eight requests with the full token, `8`, `9`,
//! `:`, `;`, `<`, `=`, `>`, `?` the same with the restricted one. `{id}` is an existing key of
//! tenant `acme` (re-created if a request revoked or deleted it), so a patch or rotate body is
//! decoded and validated rather than stopped by a 404.
//!
//! Properties checked on every request:
//! 1. Nothing panics (in the handlers, extractors, validators or the registry behind them).
//! 2. No answer is a 5xx.
//! 3. Every 4xx is a problem+json body (RFC 9457, SPEC §4.2): `Content-Type:
//!    application/problem+json`, a JSON object whose `status` is the answer's status, a non-empty
//!    `code` with `type` = `urn:keygate:error:<code>`, string `title` and `detail`, and `request_id`
//!    equal to the `X-Request-Id` header; a 422 also has a non-empty `fields` object; a 401 has a
//!    `WWW-Authenticate` header.
//! 4. Every answer carries `X-Request-Id`, and every 2xx with a body is JSON.
//!
//! Set `KEYGATE_FUZZ_TRACE=1` to print each request and its answer (handy with a reproducer).
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use http::{header, Method, Request, StatusCode};
use keygate::access_log::AccessLog;
use keygate::admin::auth::AdminSecrets;
use keygate::audit::Origin;
use keygate::config::{self, AccessLog as AccessLogDestination};
use keygate::key::{Digest, KeyId};
use keygate::metrics::Metrics;
use keygate::record::{Environment, Kind};
use keygate::registry::{NewKey, Registry};
use keygate::state::State;
use keygate::store::Store;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// Bearer token with every scope (`KEYGATE_ADMIN_TOKEN`'s role).
const FULL_TOKEN: &str = "fuzz-full-token";
/// Bearer token with every scope, restricted to tenant `acme` (from `admin.tokens`).
const TENANT_TOKEN: &str = "fuzz-acme-token";
/// Prefix of the store directories this target makes; stale ones of dead runs are removed.
const DIR_PREFIX: &str = "keygate-fuzz-admin-";

struct World {
    runtime: tokio::runtime::Runtime,
    state: Arc<State>,
    router: axum::Router,
    /// The key patch and rotate requests address.
    key: Mutex<KeyId>,
    /// `KEYGATE_FUZZ_TRACE` is set: print every request and its answer (for reading a reproducer).
    trace: bool,
    /// Keeps the store directory alive for the whole run.
    _dir: tempfile::TempDir,
}

static WORLD: OnceLock<World> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let world = WORLD.get_or_init(World::new);
    let key = world.fixed_key();
    let Some(request) = build_request(first, rest, key, first & 8 != 0) else { return };
    let (method, uri) = (request.method().clone(), request.uri().clone());
    world.runtime.block_on(async {
        let response = world.router.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("an in-memory body");
        if world.trace {
            eprintln!("{method} {uri} → {status} {}", String::from_utf8_lossy(&body));
        }
        check_answer(&method, &uri, status, &headers, &body);
    });
});

fn build_request(first: u8, rest: &[u8], key: KeyId, restricted: bool) -> Option<Request<Body>> {
    let query = |path: &str| {
        let q = std::str::from_utf8(rest).ok()?;
        Some(format!("{path}?{q}"))
    };
    let (method, uri, body) = match first & 7 {
        0 => (Method::POST, "/v1/keys".to_owned(), rest),
        1 => (Method::PATCH, format!("/v1/keys/{key}"), rest),
        2 => (Method::POST, format!("/v1/keys/{key}/rotate"), rest),
        3 => (Method::POST, "/v1/tenants".to_owned(), rest),
        4 => (Method::PATCH, "/v1/tenants/acme".to_owned(), rest),
        5 => (Method::GET, query("/v1/keys")?, &[][..]),
        6 => (Method::GET, query("/v1/audit")?, &[][..]),
        _ => {
            let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let line = std::str::from_utf8(&rest[..end]).ok()?;
            let (method, target) = line.split_once(' ')?;
            let target = target.replace("{id}", key.as_str());
            (Method::from_bytes(method.as_bytes()).ok()?, target, rest.get(end + 1..).unwrap_or_default())
        }
    };
    let token = if restricted { TENANT_TOKEN } else { FULL_TOKEN };
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .ok()
}

fn check_answer(method: &Method, uri: &http::Uri, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) {
    let what = format!("{method} {uri} → {status}: {}", String::from_utf8_lossy(body));
    assert!(!status.is_server_error(), "5xx answer: {what}");
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    assert!(request_id.is_some_and(|id| !id.is_empty()), "no X-Request-Id: {what}");
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if status.is_client_error() {
        assert_eq!(content_type, "application/problem+json", "4xx without problem+json: {what}");
        let problem: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {what}"));
        assert_eq!(problem["status"].as_u64(), Some(u64::from(status.as_u16())), "{what}");
        let code = problem["code"].as_str().unwrap_or_default();
        assert!(!code.is_empty(), "no code: {what}");
        assert_eq!(problem["type"].as_str(), Some(format!("urn:keygate:error:{code}").as_str()), "{what}");
        assert!(problem["title"].is_string() && problem["detail"].is_string(), "{what}");
        assert_eq!(problem["request_id"].as_str(), request_id, "{what}");
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert!(problem["fields"].as_object().is_some_and(|f| !f.is_empty()), "422 without fields: {what}");
        }
        if status == StatusCode::UNAUTHORIZED {
            assert!(headers.contains_key(header::WWW_AUTHENTICATE), "401 without WWW-Authenticate: {what}");
        }
    } else if status.is_success() && !body.is_empty() {
        assert!(content_type.starts_with("application/json"), "2xx body not JSON: {what}");
        serde_json::from_slice::<serde_json::Value>(body).unwrap_or_else(|e| panic!("{e}: {what}"));
    }
}

impl World {
    fn new() -> Self {
        remove_stale_dirs();
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir_in(base)
            .expect("a temporary directory for the store");
        let tenant_hash = Digest::of(TENANT_TOKEN.as_bytes()).to_hex();
        let config = config::parse(&format!(
            "environments:\n  production: {{upstreams: [\"127.0.0.1:1\"]}}\n  staging: {{upstreams: [\"127.0.0.1:2\"]}}\n\
             groups: {{billing: {{permissions: [\"invoices:read\"]}}}}\n\
             admin:\n  tokens:\n    - {{name: acme-ops, hash: \"sha256:{tenant_hash}\", tenant: acme,\n       \
             scopes: [\"keys:read\", \"keys:create\", \"keys:update\", \"keys:delete\", \"tenants:manage\", \"audit:read\"]}}\n\
             log: {{access: \"off\"}}\n"
        ))
        .unwrap_or_else(|e| panic!("fuzz config: {e:?}"));
        let registry = Registry::load(Store::open(dir.path()).expect("store")).expect("registry");
        let secrets = AdminSecrets { env_token: Some(Digest::of(FULL_TOKEN.as_bytes())), bootstrap_token: None };
        let (access_log, _) = AccessLog::open(&AccessLogDestination::Off).expect("access log off");
        let state = Arc::new(State::new(config, registry, secrets, Metrics::new().expect("metrics"), access_log));
        // `/readyz` answers 503 until the proxy listens: here it "does", so a 5xx is always a finding.
        state.proxy_ready.store(true, std::sync::atomic::Ordering::Release);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let origin = Origin { actor: "fuzz".into(), client_ip: None };
        runtime
            .block_on(state.registry.create_tenant("acme".into(), "Acme".into(), 1000, &origin, unix_now()))
            .expect("tenant acme");
        let router = keygate::admin::router(state.clone());
        let world = World {
            runtime,
            state,
            router,
            key: Mutex::new(KeyId::parse("0000000000000000").expect("id")),
            trace: std::env::var_os("KEYGATE_FUZZ_TRACE").is_some(),
            _dir: dir,
        };
        world.fixed_key();
        world
    }

    /// The key patch and rotate address; a new one when a request revoked or deleted it.
    fn fixed_key(&self) -> KeyId {
        let mut id = self.key.lock().unwrap_or_else(|e| e.into_inner());
        let usable = self.state.registry.get(*id).is_some_and(|k| k.doc.revoked_at.is_none());
        if !usable {
            // A tenant key of acme, or (if a request lowered acme's key limit) a service key.
            let origin = Origin { actor: "fuzz".into(), client_ip: None };
            let n = self.state.registry.index().len();
            let tenant_key = NewKey {
                kind: Kind::Tenant,
                tenant: Some("acme".into()),
                ..NewKey::service(format!("fuzz fixed key {n}"), Environment::Production)
            };
            let service_key = NewKey::service(format!("fuzz fixed service key {n}"), Environment::Production);
            let created = [tenant_key, service_key]
                .into_iter()
                .find_map(|new| self.runtime.block_on(self.state.registry.create(new, "kg", &origin, unix_now())).ok());
            *id = created.expect("a fixed key").0.doc.id;
        }
        *id
    }
}

fn unix_now() -> i64 {
    keygate::record::unix_now()
}

/// Removes store directories left by earlier runs whose process is gone (libFuzzer exits without
/// running destructors).
fn remove_stale_dirs() {
    for base in [std::path::PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        let Ok(entries) = std::fs::read_dir(&base) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(DIR_PREFIX).and_then(|r| r.split('-').next()) else { continue };
            if !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
