//! Question: how long does one durable key create take through the registry (state checks, the key
//! record and its audit entry in one sled transaction, publish to the index, flush to disk), and how
//! many per second do 8 concurrent creators reach thanks to group commit? Target (issue 3/4):
//! ≥ 1,000 durable creates/s with 8 concurrent clients. The end-to-end figure over HTTP is in
//! `scripts/bench`; this isolates the store and registry from the HTTP layer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use keygate::audit::Origin;
use keygate::record::Environment;
use keygate::registry::{NewKey, Registry};
use keygate::store::Store;

fn new_key(n: u64) -> NewKey {
    NewKey::service(format!("bench key {n}"), Environment::Production)
}

fn durable_create(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::load(Store::open(dir.path()).unwrap()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let origin = Origin { actor: "bench".into(), client_ip: None };

    let mut group = c.benchmark_group("durable_create");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    group.bench_function("one_client", |b| {
        b.to_async(&runtime).iter(|| {
            let (registry, origin) = (registry.clone(), origin.clone());
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move { registry.create(new_key(n), "kg", &origin, 0).await.unwrap() }
        })
    });
    // 8 concurrent creators: time for a batch of 8 x 25 creates, reported per create.
    group.bench_function("eight_clients_per_create", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (registry, counter, origin) = (registry.clone(), counter.clone(), origin.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters.div_ceil(200) {
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..8)
                        .map(|_| {
                            let (registry, counter, origin) = (registry.clone(), counter.clone(), origin.clone());
                            tokio::spawn(async move {
                                for _ in 0..25 {
                                    let n = counter.fetch_add(1, Ordering::Relaxed);
                                    registry.create(new_key(n), "kg", &origin, 0).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    total += started.elapsed();
                }
                total / 200 * (iters.div_ceil(200) as u32) * 200 / (iters as u32).max(1)
            }
        })
    });
    group.finish();
}

criterion_group!(benches, durable_create);
criterion_main!(benches);
