#![forbid(unsafe_code)]
//! Allocator benchmarks; medians are recorded in BENCHMARKS.md.
//!
//! `next_free/*` time `allocate_next` alone: each batch of at most 100 allocations is timed,
//! then released untimed, so the fill level stays where the benchmark put it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use allocator::{ClusterIpAllocator, PortAllocator, PortRange, ServiceCidr};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

const BATCH: u64 = 100;

fn cluster_ip(cidr: &str) -> ClusterIpAllocator {
    ClusterIpAllocator::with_seed(ServiceCidr::parse(cidr).expect("cidr"), 42)
}

/// Fills `fraction` of the range, leaving the free addresses scattered at random.
fn fill_ip(a: &mut ClusterIpAllocator, fraction: f64) {
    let total = a.free();
    let mut all = Vec::with_capacity(total as usize);
    while let Ok(ip) = a.allocate_next() {
        all.push(ip);
    }
    let keep_free = ((1.0 - fraction) * total as f64) as usize;
    all.shuffle(&mut SmallRng::seed_from_u64(1));
    for ip in all.into_iter().take(keep_free) {
        a.release(ip);
    }
}

fn time_ip_batches(a: &mut ClusterIpAllocator, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut got = Vec::with_capacity(BATCH as usize);
    while done < iters {
        let n = BATCH.min(iters - done);
        let start = Instant::now();
        for _ in 0..n {
            got.push(black_box(a.allocate_next()));
        }
        total += start.elapsed();
        for ip in got.drain(..).flatten() {
            a.release(ip);
        }
        done += n;
    }
    total
}

fn time_port_batches(a: &mut PortAllocator, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut got = Vec::with_capacity(BATCH as usize);
    while done < iters {
        let n = BATCH.min(iters - done);
        let start = Instant::now();
        for _ in 0..n {
            got.push(black_box(a.allocate_next()));
        }
        total += start.elapsed();
        for port in got.drain(..).flatten() {
            a.release(port);
        }
        done += n;
    }
    total
}

fn next_free(c: &mut Criterion) {
    let mut group = c.benchmark_group("next_free");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    let mut empty = cluster_ip("10.96.0.0/12");
    group.bench_function("ipv4_12_empty", |b| {
        b.iter_custom(|iters| time_ip_batches(&mut empty, iters))
    });

    let mut full = cluster_ip("10.96.0.0/12");
    fill_ip(&mut full, 0.99);
    eprintln!("ipv4 /12 at 99%: used {} free {}", full.used(), full.free());
    group.bench_function("ipv4_12_99pct", |b| {
        b.iter_custom(|iters| time_ip_batches(&mut full, iters))
    });

    let mut v6 = cluster_ip("fd00::/64");
    let mut rng = SmallRng::seed_from_u64(9);
    for _ in 0..1_000_000 {
        let offset: u64 = rng.random_range(256..u64::MAX - 1);
        let _ = v6.allocate(v6.cidr().address_at(offset).expect("in range"));
    }
    group.bench_function("ipv6_64_1m_allocated", |b| {
        b.iter_custom(|iters| time_ip_batches(&mut v6, iters))
    });

    let mut ports = PortAllocator::with_seed(PortRange::default(), 42);
    group.bench_function("node_port_default_empty", |b| {
        b.iter_custom(|iters| time_port_batches(&mut ports, iters))
    });
    let mut ports_full = PortAllocator::with_seed(PortRange::default(), 42);
    let mut taken: Vec<i32> = std::iter::from_fn(|| ports_full.allocate_next().ok()).collect();
    taken.shuffle(&mut SmallRng::seed_from_u64(2));
    for port in taken.into_iter().take(28) {
        ports_full.release(port);
    }
    group.bench_function("node_port_default_99pct", |b| {
        b.iter_custom(|iters| time_port_batches(&mut ports_full, iters))
    });
    group.finish();
}

fn allocate_and_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocate_release");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let mut a = cluster_ip("10.96.0.0/12");
    let ip = "10.96.0.10".parse().expect("ip");
    group.bench_function("ipv4_12_static", |b| {
        b.iter(|| {
            let _ = black_box(a.allocate(ip));
            a.release(ip)
        })
    });
    let mut ports = PortAllocator::with_seed(PortRange::default(), 42);
    group.bench_function("node_port_static", |b| {
        b.iter(|| {
            let _ = black_box(ports.allocate(30080));
            ports.release(30080)
        })
    });
    group.finish();
}

/// Not a timing: prints the deterministic heap size of the allocation state.
fn memory(_c: &mut Criterion) {
    let empty = cluster_ip("10.96.0.0/12");
    let mut full = cluster_ip("10.96.0.0/12");
    fill_ip(&mut full, 1.0);
    let mut v6 = cluster_ip("fd00::/64");
    let mut rng = SmallRng::seed_from_u64(9);
    while v6.used() < 1_000_000 {
        let offset: u64 = rng.random_range(256..u64::MAX - 1);
        let _ = v6.allocate(v6.cidr().address_at(offset).expect("in range"));
    }
    let ports = PortAllocator::new(PortRange::default());
    eprintln!(
        "memory: ipv4 /12 empty       {:>10} bytes",
        empty.heap_bytes()
    );
    eprintln!(
        "memory: ipv4 /12 full        {:>10} bytes (used {})",
        full.heap_bytes(),
        full.used()
    );
    eprintln!(
        "memory: ipv6 /64 1,000,000   {:>10} bytes (upper bound)",
        v6.heap_bytes()
    );
    eprintln!(
        "memory: node ports default   {:>10} bytes",
        ports.heap_bytes()
    );
}

criterion_group!(allocator, next_free, allocate_and_release, memory);
criterion_main!(allocator);
