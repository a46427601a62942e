//! The `kubernetes` Service maintainer against testenv: created with the first IP, recreated after
//! deletion, and its endpoints follow apiservers joining, expiring and shutting down.
//!
//! testenv only: kube-apiserver maintains `default/kubernetes` itself (its bootstrap
//! controller), so svcplane's maintainer would fight it; the maintainer is the embedded API
//! server's.

use std::net::IpAddr;
use std::time::Duration;

use controllers::kubernetes_service_controller::{self as maintainer, KubernetesServiceConfig};
use controllers::runtime::{ShutdownTrigger, shutdown_channel};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams};
use testenv::TestEnv;

const WAIT: Duration = Duration::from_secs(10);

fn config(ip: &str) -> KubernetesServiceConfig {
    KubernetesServiceConfig {
        advertise_addresses: vec![ip.parse().unwrap()],
        interval: Duration::from_millis(100),
        ..Default::default()
    }
}

fn start(
    env: &TestEnv,
    ip: &str,
) -> (
    ShutdownTrigger,
    tokio::task::JoinHandle<Result<(), maintainer::MaintainerError>>,
) {
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(maintainer::run(env.client(), config(ip), shutdown));
    (stop, task)
}

async fn endpoint_ips(env: &TestEnv) -> (Vec<String>, Vec<String>) {
    let eps: Api<Endpoints> = Api::namespaced(env.client(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(env.client(), "default");
    let from_eps = eps
        .get_opt("kubernetes")
        .await
        .unwrap()
        .and_then(|e| e.subsets)
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.addresses.clone().unwrap_or_default())
        .map(|a| a.ip)
        .collect();
    let from_slice = slices
        .get_opt("kubernetes")
        .await
        .unwrap()
        .map(|s| {
            s.endpoints
                .iter()
                .flat_map(|e| e.addresses.clone())
                .collect()
        })
        .unwrap_or_default();
    (from_eps, from_slice)
}

async fn wait_for_ips(env: &TestEnv, want: &[&str]) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    let result = env
        .wait_until("kubernetes endpoints", WAIT, || {
            let want = want.clone();
            async move {
                let (eps, slice) = endpoint_ips(env).await;
                eps == want && slice == want
            }
        })
        .await;
    if let Err(e) = result {
        panic!("{e}: have {:?}, want {want:?}", endpoint_ips(env).await);
    }
}

#[tokio::test]
async fn service_is_created_recreated_and_endpoints_follow_apiservers() {
    let env = TestEnv::start().await.unwrap();
    let services: Api<Service> = Api::namespaced(env.client(), "default");
    let (stop_a, task_a) = start(&env, "10.0.0.1");

    env.wait_until("kubernetes service", WAIT, || {
        let services = services.clone();
        async move { services.get_opt("kubernetes").await.unwrap().is_some() }
    })
    .await
    .unwrap();
    let svc = services.get("kubernetes").await.unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("https"), 443));
    assert_eq!(svc.metadata.labels.unwrap()["component"], "apiserver");
    wait_for_ips(&env, &["10.0.0.1"]).await;

    // Deleted: recreated well within the interval upstream would take.
    services
        .delete("kubernetes", &DeleteParams::default())
        .await
        .unwrap();
    let deleted_at = std::time::Instant::now();
    env.wait_until("kubernetes service recreated", WAIT, || {
        let services = services.clone();
        async move { services.get_opt("kubernetes").await.unwrap().is_some() }
    })
    .await
    .unwrap();
    assert!(deleted_at.elapsed() < Duration::from_secs(3));

    // A second apiserver joins.
    let (stop_b, task_b) = start(&env, "10.0.0.2");
    wait_for_ips(&env, &["10.0.0.1", "10.0.0.2"]).await;

    // An apiserver whose lease expired (renewed a minute ago) is not listed.
    let leases: Api<Lease> = Api::namespaced(env.client(), "kube-system");
    let stale_ip: IpAddr = "10.0.0.3".parse().unwrap();
    leases
        .create(
            &PostParams::default(),
            &Lease {
                metadata: ObjectMeta {
                    name: Some(maintainer::lease_name(stale_ip)),
                    labels: Some(
                        [(maintainer::LEASE_LABEL.to_string(), "true".to_string())].into(),
                    ),
                    annotations: Some(
                        [(
                            maintainer::LEASE_IPS_ANNOTATION.to_string(),
                            stale_ip.to_string(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    renew_time: Some(MicroTime(
                        jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60),
                    )),
                    lease_duration_seconds: Some(15),
                    ..Default::default()
                }),
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    wait_for_ips(&env, &["10.0.0.1", "10.0.0.2"]).await;

    // A clean shutdown removes the apiserver first.
    stop_b.fire();
    task_b.await.unwrap().unwrap();
    wait_for_ips(&env, &["10.0.0.1"]).await;

    // The last one leaves nothing listed (kubernetes#115804).
    stop_a.fire();
    task_a.await.unwrap().unwrap();
    wait_for_ips(&env, &[]).await;
}

#[tokio::test]
async fn system_namespaces_are_created_when_missing() {
    let env = TestEnv::start_with(testenv::TestEnvOptions {
        system_namespaces: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client());
    assert!(namespaces.get_opt("kube-system").await.unwrap().is_none());
    let (stop, task) = start(&env, "10.0.0.1");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        env.wait_until(ns, WAIT, || {
            let namespaces = namespaces.clone();
            async move { namespaces.get_opt(ns).await.unwrap().is_some() }
        })
        .await
        .unwrap();
    }
    stop.fire();
    task.await.unwrap().unwrap();
}
