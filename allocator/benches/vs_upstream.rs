#![forbid(unsafe_code)]
//! svcplane's allocators on exactly the cases `realk8s/kube/allocatorbench` times upstream's on
//! (issue 13, item 2); `scripts/bench-vs-upstream --only allocator` runs both and prints the
//! ns/op side by side. Criterion's group is `vs_upstream`; each benchmark's id is the case name
//! the Go benchmark uses (`BenchmarkClusterIP/<case>/<allocator>`).
//!
//! Every case: fill the range to the stated fraction with the free values scattered at random
//! (untimed), then time operations in batches (100, or half the free values when fewer than 200
//! are free) and undo each batch untimed, so the fill level stays where the case put it.
//! Warm-up and measurement times come from the command line (`--warm-up-time`,
//! `--measurement-time`), so that the smoke run can shorten them.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use allocator::{ClusterIpAllocator, PortAllocator, PortRange, ServiceCidr};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

const IPV4_RANGE: &str = "10.96.0.0/12";
const IPV6_SMALL: &str = "fd00::/112";
const IPV6_LARGE: &str = "fd00::/64";
const IPV6_MILLION: usize = 1_000_000;

/// Operations timed between two untimed undos (the Go side's `batchFor`).
fn batch_for(free: u64) -> u64 {
    (free / 2).clamp(1, 100)
}

/// An allocator over `cidr` with `fraction` of its addresses held, chosen at random; returns it
/// with the held and the free addresses (each in random order).
fn filled(cidr: &str, fraction: f64) -> (ClusterIpAllocator, Vec<IpAddr>, Vec<IpAddr>) {
    let mut a = ClusterIpAllocator::with_seed(ServiceCidr::parse(cidr).expect("cidr"), 42);
    let mut all: Vec<IpAddr> = (0..a.cidr().usable_size())
        .map(|offset| a.cidr().address_at(offset).expect("in range"))
        .collect();
    all.shuffle(&mut SmallRng::seed_from_u64(1));
    let held_count = (fraction * all.len() as f64) as usize;
    let free = all.split_off(held_count);
    for ip in &all {
        a.allocate(*ip).expect("fill");
    }
    (a, all, free)
}

fn time_next_free(a: &mut ClusterIpAllocator, batch: u64, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut got = Vec::with_capacity(batch as usize);
    while done < iters {
        let n = batch.min(iters - done);
        let start = Instant::now();
        for _ in 0..n {
            got.push(black_box(a.allocate_next().expect("a free address")));
        }
        total += start.elapsed();
        for ip in got.drain(..) {
            a.release(ip);
        }
        done += n;
    }
    total
}

/// Allocates given free addresses in (their random) order, releasing each batch untimed.
fn time_allocate_random(a: &mut ClusterIpAllocator, free: &[IpAddr], iters: u64) -> Duration {
    let batch = batch_for(free.len() as u64) as usize;
    let mut total = Duration::ZERO;
    let mut next = 0;
    let mut done = 0;
    while done < iters {
        let n = (batch as u64).min(iters - done) as usize;
        let start_at = next;
        let start = Instant::now();
        for _ in 0..n {
            black_box(a.allocate(free[next])).expect("a free address");
            next = (next + 1) % free.len();
        }
        total += start.elapsed();
        for i in 0..n {
            a.release(free[(start_at + i) % free.len()]);
        }
        done += n as u64;
    }
    total
}

/// Releases held addresses, allocating each batch back untimed.
fn time_release(a: &mut ClusterIpAllocator, held: &[IpAddr], iters: u64) -> Duration {
    let batch = batch_for(held.len() as u64) as usize;
    let mut total = Duration::ZERO;
    let mut next = 0;
    let mut done = 0;
    while done < iters {
        let n = (batch as u64).min(iters - done) as usize;
        let start_at = next;
        let start = Instant::now();
        for _ in 0..n {
            assert!(black_box(a.release(held[next])), "held");
            next = (next + 1) % held.len();
        }
        total += start.elapsed();
        for i in 0..n {
            a.allocate(held[(start_at + i) % held.len()])
                .expect("re-allocate");
        }
        done += n as u64;
    }
    total
}

fn time_port_next_free(a: &mut PortAllocator, batch: u64, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut got = Vec::with_capacity(batch as usize);
    while done < iters {
        let n = batch.min(iters - done);
        let start = Instant::now();
        for _ in 0..n {
            got.push(black_box(a.allocate_next().expect("a free port")));
        }
        total += start.elapsed();
        for port in got.drain(..) {
            a.release(port);
        }
        done += n;
    }
    total
}

fn cluster_ip(c: &mut Criterion) {
    let mut group = c.benchmark_group("vs_upstream");
    for pct in [0, 50, 99] {
        let (mut a, held, free) = filled(IPV4_RANGE, f64::from(pct) / 100.0);
        let batch = batch_for(a.free());
        group.bench_function(format!("ipv4_12_next_free_{pct}pct"), |b| {
            b.iter_custom(|iters| time_next_free(&mut a, batch, iters))
        });
        if pct == 50 {
            group.bench_function("ipv4_12_allocate_random_50pct", |b| {
                b.iter_custom(|iters| time_allocate_random(&mut a, &free, iters))
            });
            group.bench_function("ipv4_12_release_50pct", |b| {
                b.iter_custom(|iters| time_release(&mut a, &held, iters))
            });
        }
    }

    let (mut small, _, _) = filled(IPV6_SMALL, 0.5);
    let batch = batch_for(small.free());
    group.bench_function("ipv6_112_next_free_50pct", |b| {
        b.iter_custom(|iters| time_next_free(&mut small, batch, iters))
    });

    // A /64 holding a million random addresses: beyond any bitmap (upstream's caps an IPv6
    // range at 65,536 addresses); upstream serves it with its IPAddress allocator only.
    let mut large =
        ClusterIpAllocator::with_seed(ServiceCidr::parse(IPV6_LARGE).expect("cidr"), 42);
    let mut rng = SmallRng::seed_from_u64(9);
    while large.used() < IPV6_MILLION as u64 {
        let offset: u64 = rng.random_range(256..u64::MAX - 1);
        let _ = large.allocate(large.cidr().address_at(offset).expect("in range"));
    }
    group.bench_function("ipv6_64_next_free_1m", |b| {
        b.iter_custom(|iters| time_next_free(&mut large, 100, iters))
    });
    group.finish();
}

fn node_port(c: &mut Criterion) {
    let mut group = c.benchmark_group("vs_upstream");
    for pct in [0, 50, 99] {
        let mut ports = PortAllocator::with_seed(PortRange::default(), 42);
        let mut all: Vec<i32> = std::iter::from_fn(|| ports.allocate_next().ok()).collect();
        all.shuffle(&mut SmallRng::seed_from_u64(2));
        let held = (f64::from(pct) / 100.0 * all.len() as f64) as usize;
        for port in &all[held..] {
            ports.release(*port);
        }
        let batch = batch_for(ports.free());
        group.bench_function(format!("node_port_next_free_{pct}pct"), |b| {
            b.iter_custom(|iters| time_port_next_free(&mut ports, batch, iters))
        });
    }
    group.finish();
}

criterion_group!(vs_upstream, cluster_ip, node_port);
criterion_main!(vs_upstream);
