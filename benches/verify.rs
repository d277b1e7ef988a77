//! Question: what does checking one key cost on the request path — parse, CRC check, index lookup,
//! SHA-256 and constant-time digest comparison, allowlist, route, rate-limit bucket — and does it
//! stay flat from 1k to 1M keys? And how cheaply is a garbage key refused?
//!
//! Targets (issue 5): the whole check ≤ 1 µs at 1M keys and ≤ 1.2× its cost at 1k keys; garbage
//! refused cheaper than a valid key is admitted. This measures `proxy::admit::Checks::admit`, the
//! exact function `request_filter` calls, on a prepared request header.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keygate::config::{self, Config};
use keygate::index::KeyIndex;
use keygate::key::{KeyId, Secret};
use keygate::limit::IpBuckets;
use keygate::net::parse_cidr;
use keygate::proxy::admit::{Admission, Checks};
use keygate::record::{unix_now, Environment, KeyDoc, RateLimit, UsageDoc};
use pingora::http::RequestHeader;

const CONFIG: &str =
    "environments:\n  production: {upstreams: [\"127.0.0.1:9001\"]}\nroutes:\n  - {path: /health, public: true}\n";
const SAMPLE: usize = 1024;

/// An index of `n` keys (allowlisted to 127.0.0.0/8, with a limit that never triggers) and the
/// request headers of `SAMPLE` of them.
fn setup(n: usize) -> (KeyIndex, Vec<RequestHeader>) {
    let index = KeyIndex::default();
    let now = unix_now();
    let limit: RateLimit = serde_json::from_str(r#"{"per_second": 1000000000}"#).unwrap();
    let mut requests = Vec::with_capacity(SAMPLE);
    for i in 0..n {
        let id = KeyId::generate();
        let secret = Secret::generate("kg", Environment::Production, id);
        let mut doc =
            KeyDoc::new(id, i as u64, &secret, format!("key {i}"), Environment::Production, Some("acme".into()), now);
        doc.ip_allowlist = vec![parse_cidr("127.0.0.0/8").unwrap()];
        doc.rate_limit = Some(limit);
        index.load(doc, &UsageDoc::default());
        if i % (n / SAMPLE).max(1) == 0 && requests.len() < SAMPLE {
            requests.push(request(secret.expose()));
        }
    }
    (index, requests)
}

fn request(key: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/v1/reports/7", None).unwrap();
    req.insert_header("host", "api.example.com").unwrap();
    req.insert_header("x-api-key", key).unwrap();
    req
}

fn admit(config: &Config, index: &KeyIndex, failed: &IpBuckets, req: &RequestHeader) -> bool {
    let checks =
        Checks { config, index, failed_auth: failed, client_ip: IpAddr::from([127, 0, 0, 1]), now: unix_now() };
    let mut admission = Admission::default();
    checks.admit(black_box(req), &mut admission).is_ok()
}

fn verification_path(c: &mut Criterion) {
    let config = config::parse(CONFIG).unwrap();
    let failed = IpBuckets::default();
    let mut group = c.benchmark_group("verify_valid_key");
    group.throughput(Throughput::Elements(1));
    for n in [1_000, 100_000, 1_000_000] {
        let (index, requests) = setup(n);
        assert!(admit(&config, &index, &failed, &requests[0]), "the sample key must be admitted");
        let mut i = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                admit(&config, &index, &failed, &requests[i])
            })
        });
    }
    group.finish();
}

fn garbage_keys(c: &mut Criterion) {
    let mut config = config::parse(CONFIG).unwrap();
    // A limit that never empties: this measures the refusal itself, not the 429 that would follow.
    config.proxy.failed_auth_limit = serde_json::from_str(r#"{"per_second": 1000000000}"#).unwrap();
    let failed = IpBuckets::default();
    let (index, _) = setup(1_000);
    let mut group = c.benchmark_group("verify_garbage");
    let cases = [
        ("not_a_key", request("hello-world")),
        ("bad_checksum", request("kg_prod_AAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")),
        ("unknown_id", request(Secret::generate("kg", Environment::Production, KeyId::generate()).expose())),
    ];
    for (name, req) in &cases {
        assert!(!admit(&config, &index, &failed, req));
        group.bench_function(*name, |b| b.iter(|| admit(&config, &index, &failed, req)));
    }
    group.finish();
}

criterion_group!(benches, verification_path, garbage_keys);
criterion_main!(benches);
