//! Benchmarks of the EndpointSlice planner on a 10,000-pod Service: planning from scratch,
//! a no-op re-plan, and a single pod changing readiness, over inputs indexed as the
//! controller caches them (`plan_indexed`); plus what indexing costs (once per object
//! version, when the cache receives it) and `plan` over plain inputs, which indexes them
//! on every call.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use controllers::endpointslice::pod::PodInterner;
use controllers::endpointslice::{
    EndpointSlicePlan, IndexedPod, IndexedSlice, NodeInfo, PlanOptions, PodInfo, plan, plan_indexed,
};
use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

const PODS: usize = 10_000;

fn service() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("big".into()),
            namespace: Some("bench".into()),
            uid: Some("big-uid".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".into(), "big".into())])),
            ip_families: Some(vec!["IPv4".into()]),
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn nodes() -> BTreeMap<String, NodeInfo> {
    (0..100)
        .map(|i| {
            let name = format!("node-{i}");
            let info = NodeInfo {
                name: name.clone(),
                zone: Some(format!("zone-{}", i % 3)),
                ready: true,
                allocatable_cpu_millis: 4000,
                excluded_from_topology: false,
            };
            (name, info)
        })
        .collect()
}

/// The pods as the controller's cache holds them: label sets, namespace and node names shared
/// through its interner.
fn pods() -> Vec<PodInfo> {
    let mut interner = PodInterner::default();
    let labels = BTreeMap::from([("app".to_owned(), "big".to_owned())]);
    (0..PODS)
        .map(|i| PodInfo {
            namespace: interner.string("bench"),
            name: format!("big-{i}"),
            uid: format!("uid-{i}"),
            labels: interner.labels(&labels),
            has_ip: true,
            ips: vec![format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)],
            ready: true,
            node_name: interner.string(&format!("node-{}", i % 100)),
            ..PodInfo::default()
        })
        .collect()
}

/// The slices the API server would hold after the plan: creates named, updates applied.
fn apply(existing: &[EndpointSlice], plan: &EndpointSlicePlan) -> Vec<EndpointSlice> {
    let mut result: Vec<EndpointSlice> = existing
        .iter()
        .filter(|s| {
            !plan
                .delete
                .iter()
                .any(|d| d.metadata.name == s.metadata.name)
        })
        .map(|s| {
            plan.update
                .iter()
                .find(|u| u.metadata.name == s.metadata.name)
                .cloned()
                .unwrap_or_else(|| s.clone())
        })
        .collect();
    for (i, created) in plan.create.iter().enumerate() {
        let mut slice = created.clone();
        slice.metadata.name = Some(format!("big-{i:05}"));
        result.push(slice);
    }
    result
}

fn planner(c: &mut Criterion) {
    let service = service();
    let nodes = nodes();
    let pods = pods();
    let options = PlanOptions::default();

    let initial = plan(&service, &pods, &nodes, &[], &options);
    assert_eq!(initial.create.len(), PODS / 100);
    let stored = apply(&[], &initial);
    assert!(plan(&service, &pods, &nodes, &stored, &options).is_noop());

    let mut changed = pods.clone();
    changed[4321].ready = false;
    let one = plan(&service, &changed, &nodes, &stored, &options);
    assert_eq!(
        (one.create.len(), one.update.len(), one.delete.len()),
        (0, 1, 0)
    );

    // As the controller's caches hold them: each object indexed once.
    let indexed_pods: Vec<IndexedPod> = pods.iter().cloned().map(IndexedPod::new).collect();
    let indexed_changed: Vec<IndexedPod> = changed.iter().cloned().map(IndexedPod::new).collect();
    let indexed_stored: Vec<IndexedSlice> = stored.iter().cloned().map(IndexedSlice::new).collect();
    let pod_refs: Vec<&IndexedPod> = indexed_pods.iter().collect();
    let changed_refs: Vec<&IndexedPod> = indexed_changed.iter().collect();
    let stored_refs: Vec<&IndexedSlice> = indexed_stored.iter().collect();
    assert_eq!(
        plan_indexed(&service, &changed_refs, &nodes, &stored_refs, &options),
        one
    );

    let mut group = c.benchmark_group("endpointslice_plan");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    group.bench_function("10k_pods_from_scratch", |b| {
        b.iter(|| {
            plan_indexed(
                black_box(&service),
                black_box(&pod_refs),
                &nodes,
                &[],
                &options,
            )
        })
    });
    group.bench_function("10k_pods_noop_replan", |b| {
        b.iter(|| {
            plan_indexed(
                black_box(&service),
                black_box(&pod_refs),
                &nodes,
                &stored_refs,
                &options,
            )
        })
    });
    group.bench_function("10k_pods_one_pod_changed", |b| {
        b.iter(|| {
            plan_indexed(
                black_box(&service),
                black_box(&changed_refs),
                &nodes,
                &stored_refs,
                &options,
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("endpointslice_index");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    group.bench_function("one_pod", |b| {
        b.iter(|| IndexedPod::new(black_box(&pods[4321]).clone()))
    });
    group.bench_function("one_100_endpoint_slice", |b| {
        b.iter(|| IndexedSlice::new(black_box(&stored[0]).clone()))
    });
    group.bench_function("10k_pods_noop_replan_unindexed", |b| {
        b.iter(|| {
            plan(
                black_box(&service),
                black_box(&pods),
                &nodes,
                &stored,
                &options,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, planner);
criterion_main!(benches);

/// The allocator the `svcplane` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
