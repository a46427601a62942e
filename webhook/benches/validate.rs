//! Validating a typical Service end to end (family defaulting, static claims, field rules).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Service;
use webhook::{
    AllocationSnapshot, ServiceRanges, ValidationOptions, check_service_create, default_service,
    validate_service,
};

fn typical_service() -> Service {
    let mut svc: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop"},
            "annotations": {"example.com/owner": "team-a"}
        },
        "spec": {
            "type": "NodePort",
            "selector": {"app.kubernetes.io/name": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                {"name": "https", "port": 443, "targetPort": 8443, "appProtocol": "kubernetes.io/h2c"}
            ]
        }
    }))
    .unwrap_or_default();
    default_service(&mut svc);
    svc
}

fn bench_validate(c: &mut Criterion) {
    let svc = typical_service();
    let ranges = ServiceRanges::default();
    let taken = AllocationSnapshot::default();
    let opts = ValidationOptions::default();
    assert!(check_service_create(&svc, &ranges, &taken, &opts).is_ok());
    let mut group = c.benchmark_group("validate");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("typical_service", |b| {
        b.iter(|| validate_service(std::hint::black_box(&svc), &ranges))
    });
    group.finish();
}

criterion_group!(benches, bench_validate);
criterion_main!(benches);
