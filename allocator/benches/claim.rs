//! A claim through testenv: one ClusterIP Service allocated by the registry, i.e. one
//! IPAddress create answered by the in-memory API server over loopback HTTP.
//!
//! Besides criterion's median, prints p50/p99 over 2,000 individually timed claims (criterion
//! reports no percentiles).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use allocator::registry::{RegistryConfig, ServiceRegistry};
use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

fn service(n: usize) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{n}"), "namespace": "default"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .expect("a valid Service")
}

fn claim(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (env, registry) = rt.block_on(async {
        let env = testenv::TestEnv::start().await.expect("testenv");
        let ranges = ServiceClusterIpRanges::parse("10.96.0.0/12", BitmapSizeLimit::Enforced)
            .expect("range");
        let registry = ServiceRegistry::start(
            env.client(),
            RegistryConfig::new(ranges, PortRange::default()),
        )
        .await
        .expect("registry");
        (env, registry)
    });
    let counter = AtomicUsize::new(0);

    let mut samples = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        rt.block_on(registry.allocate_for_create(&service(n)))
            .expect("claim");
        samples.push(started.elapsed());
    }
    samples.sort();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!(
        "claim/ip_address_create over {} claims: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        pct(50),
        pct(99),
        samples[samples.len() - 1]
    );

    let mut group = c.benchmark_group("claim");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("ip_address_create", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            rt.block_on(registry.allocate_for_create(&service(n)))
                .expect("claim")
        })
    });
    group.finish();
    drop(registry);
    rt.block_on(env.stop());
}

criterion_group!(benches, claim);
criterion_main!(benches);
