//! Endpoints planner: 1,000- and 10,000-pod Services, from scratch and re-sync of an
//! up-to-date object (a true no-op at 1,000; a truncating rewrite at 10,000). The pods are
//! `PodInfo`s built through an interner and passed by reference, as the controller's cache
//! holds and passes them.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use controllers::endpoints::{EndpointsOptions, EndpointsPlan, plan};
use controllers::endpointslice::pod::{PodInfo, PodInterner};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodCondition, PodIP, PodSpec, PodStatus, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn service() -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".into(), "web".into())])),
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(i: usize) -> Pod {
    let ip = format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
    Pod {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(format!("web-{i}")),
            uid: Some(format!("uid-{i}")),
            labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(format!("node-{}", i % 100)),
            containers: vec![Container {
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if i.is_multiple_of(10) {
                    "False"
                } else {
                    "True"
                }
                .into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// What the controller hands the planner: references to the cached pods it selected.
fn selected(cached: &[PodInfo]) -> Vec<&PodInfo> {
    cached.iter().collect()
}

fn endpoints_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("endpoints_plan");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    let svc = service();
    let options = EndpointsOptions::default();
    for n in [1_000usize, 10_000] {
        let mut interner = PodInterner::default();
        let cached: Vec<PodInfo> = (0..n)
            .map(|i| PodInfo::from_pod_interned(&pod(i), &mut interner))
            .collect();
        group.bench_with_input(BenchmarkId::new("from_scratch", n), &cached, |b, cached| {
            b.iter(|| {
                let pods = selected(black_box(cached));
                plan(Some(black_box(&svc)), &pods, &[], None, &options)
            })
        });
        let EndpointsPlan::Create(mut existing) = plan(Some(&svc), &cached, &[], None, &options)
        else {
            panic!("expected a create for the no-op fixture");
        };
        existing.metadata.resource_version = Some("1".into());
        // Above 1,000 addresses upstream rewrites on every sync (the stored object is
        // truncated and annotated), so the 10,000-pod "no-op" measures that steady state.
        let resync = plan(Some(&svc), &cached, &[], Some(&existing), &options);
        assert_eq!(resync == EndpointsPlan::NoOp, n <= 1_000);
        group.bench_with_input(BenchmarkId::new("no_op", n), &cached, |b, cached| {
            b.iter(|| {
                let pods = selected(black_box(cached));
                plan(Some(black_box(&svc)), &pods, &[], Some(&existing), &options)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, endpoints_plan);
criterion_main!(benches);

/// The allocator the `svcplane` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
