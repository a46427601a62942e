//! The legacy Endpoints controller against both backends, with the node simulator.

use std::time::Duration;

use controllers::endpoints_controller::{EndpointsController, EndpointsControllerConfig};
use controllers::runtime::EventRecorder;
use k8s_openapi::api::core::v1::Endpoints;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use svcplane_tests::fixtures::{eventually, field_managers, pod, service};
use svcplane_tests::{Backend, BackendKind, Harness, HarnessOptions, on_both_backends};
use testenv::nodesim::NodeSimConfig;

const WAIT: Duration = Duration::from_secs(60);

async fn start(kind: BackendKind, nodes: NodeSimConfig) -> Option<Harness> {
    start_recording_events(kind, nodes).await.map(|(h, _)| h)
}

/// [`start`], with the events the controller records.
async fn start_recording_events(
    kind: BackendKind,
    nodes: NodeSimConfig,
) -> Option<(Harness, EventRecorder)> {
    let options = HarnessOptions {
        nodes: Some(nodes),
        garbage_collection: false,
    };
    let mut harness = Harness::start(kind, options).await?;
    let controller = EndpointsController::new(
        harness.controller_client(),
        EndpointsControllerConfig::default(),
    );
    let events = controller.events();
    harness.spawn(controller.run(controllers::runtime::Shutdown::never()));
    Some((harness, events))
}

fn address_count(e: &Endpoints) -> (usize, usize) {
    let subsets = e.subsets.clone().unwrap_or_default();
    let ready = subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    let not_ready = subsets
        .iter()
        .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        .sum();
    (ready, not_ready)
}

async fn endpoints_follow_pods_and_go_with_the_service(kind: BackendKind) {
    let Some(h) = start(kind, NodeSimConfig::with_node_count(2)).await else {
        return;
    };
    h.create_service(service("web", "web", json!("http"))).await;
    h.create_pods((0..3).map(|i| pod(&format!("web-{i}"), "web")).collect())
        .await;
    let api: Api<Endpoints> = Api::namespaced(h.client.clone(), "default");
    let endpoints = eventually("3 ready addresses", WAIT, || async {
        let e = api.get_opt("web").await.ok().flatten()?;
        (address_count(&e) == (3, 0)).then_some(e)
    })
    .await;
    let labels = endpoints.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("endpoints.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpoint-controller")
    );
    let managers = field_managers(&endpoints.metadata);
    assert_eq!(
        managers,
        [Some("svcplane".to_owned())],
        "a named field manager"
    );
    let subset = &endpoints.subsets.clone().unwrap_or_default()[0];
    let port = &subset.ports.clone().unwrap_or_default()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), 8080, Some("TCP"))
    );
    let mut ips: Vec<String> = subset
        .addresses
        .iter()
        .flatten()
        .map(|a| a.ip.clone())
        .collect();
    let sorted = {
        let mut s = ips.clone();
        s.sort();
        s
    };
    assert_eq!(ips, sorted, "addresses sorted as upstream's repack does");
    ips.dedup();
    assert_eq!(ips.len(), 3);

    h.services()
        .delete("web", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("Endpoints deleted with the Service", WAIT, || async {
        api.get_opt("web")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
}

async fn thousand_and_one_pods_are_truncated_with_the_annotation(kind: BackendKind) {
    let Some(h) = start(kind, NodeSimConfig::with_node_count(10)).await else {
        return;
    };
    h.create_service(service("big", "big", json!(8080))).await;
    h.create_pods(
        (0..1001)
            .map(|i| pod(&format!("big-{i:04}"), "big"))
            .collect(),
    )
    .await;
    let api: Api<Endpoints> = Api::namespaced(h.client.clone(), "default");
    let endpoints = eventually("1,000 addresses, truncated", WAIT, || async {
        let e = api.get_opt("big").await.ok().flatten()?;
        let (ready, not_ready) = address_count(&e);
        let truncated = e
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("endpoints.kubernetes.io/over-capacity"))
            .is_some_and(|v| v == "truncated");
        (ready == 1000 && not_ready == 0 && truncated).then_some(e)
    })
    .await;
    assert!(
        endpoints
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("endpoints.kubernetes.io/last-change-trigger-time")
    );
}

/// A sync that runs before the watch delivers the Endpoints the controller has just created
/// waits for its cache instead of creating again: no `409 AlreadyExists`, and so no
/// `FailedToCreateEndpoint` Warning on the Service (upstream creates again and records one;
/// `kubectl describe svc` then shows it on a loaded machine). testenv only: it holds back the
/// Endpoints watch events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_endpoints_watch_gets_no_second_create() {
    let Some((h, events)) =
        start_recording_events(BackendKind::Testenv, NodeSimConfig::with_node_count(2)).await
    else {
        return;
    };
    let Backend::Testenv(env) = &h.backend else {
        unreachable!("started on testenv")
    };
    env.faults()
        .lag_watch_events("endpoints", Duration::from_secs(2));
    h.create_service(service("web", "web", json!("http"))).await;
    let api: Api<Endpoints> = Api::namespaced(h.client.clone(), "default");
    eventually("the Endpoints created", WAIT, || async {
        api.get_opt("web").await.ok().flatten()
    })
    .await;
    // Its watch event is still held back: these pods' syncs find no Endpoints in the cache.
    h.create_pods((0..3).map(|i| pod(&format!("web-{i}"), "web")).collect())
        .await;
    eventually("3 ready addresses", WAIT, || async {
        let e = api.get_opt("web").await.ok().flatten()?;
        (address_count(&e) == (3, 0)).then_some(())
    })
    .await;
    let creates: Vec<_> = h
        .requests()
        .since(0)
        .into_iter()
        .filter(|r| r.method == "POST" && r.is_on("endpoints"))
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(creates[0].status, 201);
    let warnings: Vec<_> = events
        .recent()
        .into_iter()
        .filter(|e| e.reason == "FailedToCreateEndpoint")
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

on_both_backends!(
    endpoints_follow_pods_and_go_with_the_service,
    thousand_and_one_pods_are_truncated_with_the_annotation,
);
