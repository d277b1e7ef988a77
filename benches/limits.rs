//! Question: what do the per-request bookkeeping steps cost — one GCRA rate-limit check, and one
//! usage touch (the in-memory last-used/request-count update)? Both run for every admitted request,
//! so both must stay in the tens of nanoseconds, uncontended and with two threads on one key.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate::index::KeyIndex;
use keygate::key::{KeyId, Secret};
use keygate::limit::{self, Bucket, Gcra};
use keygate::record::{Environment, KeyDoc, RateLimit};

fn rate_limit(c: &mut Criterion) {
    let rate: RateLimit = serde_json::from_str(r#"{"per_second": 1000000000}"#).unwrap();
    let gcra = Gcra::new(&rate);
    let bucket = Bucket::default();
    c.bench_function("rate_limit_check", |b| b.iter(|| black_box(bucket.check(&gcra, limit::now()))));

    let shared = Arc::new(Bucket::default());
    c.bench_function("rate_limit_check_contended_2_threads", |b| {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (other, stop2) = (shared.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                black_box(other.check(&gcra, limit::now()));
            }
        });
        b.iter(|| black_box(shared.check(&gcra, limit::now())));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        handle.join().unwrap();
    });
}

fn usage_touch(c: &mut Criterion) {
    let index = KeyIndex::default();
    let id = KeyId::generate();
    let key = index.publish(KeyDoc::new(
        id,
        1,
        &Secret::generate("kg", Environment::Production, id),
        "k".into(),
        Environment::Production,
        None,
        0,
    ));
    let ip = "127.0.0.1".parse().unwrap();
    let mut now = 1_700_000_000;
    c.bench_function("usage_touch", |b| {
        b.iter(|| {
            now += 1;
            index.touch(&key, ip, now, false)
        })
    });
    // The flusher drains the dirty queue; keep it from growing across iterations.
    black_box(index.take_dirty());
}

criterion_group!(benches, rate_limit, usage_touch);
criterion_main!(benches);
