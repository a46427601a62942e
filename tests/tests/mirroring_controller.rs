//! The EndpointSlice-mirroring controller against both backends.

use std::time::Duration;

use controllers::mirroring_controller::{MirroringController, MirroringControllerConfig};
use k8s_openapi::api::core::v1::Endpoints;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use svcplane_tests::fixtures::eventually;
use svcplane_tests::{BackendKind, Harness, HarnessOptions, on_both_backends};

const WAIT: Duration = Duration::from_secs(30);

async fn selector_less_service_endpoints_are_mirrored_and_unmirrored(kind: BackendKind) {
    let Some(mut h) = Harness::start(kind, HarnessOptions::default()).await else {
        return;
    };
    let controller =
        MirroringController::new(h.controller_client(), MirroringControllerConfig::default());
    h.spawn(
        controller
            .clone()
            .run(controllers::runtime::Shutdown::never()),
    );
    h.create_service(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "external", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.30", "ipFamilies": ["IPv4"],
            "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]}
    }))
    .await;
    let endpoints: Endpoints = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "external", "namespace": "default", "labels": {"team": "data"}},
        "subsets": [{
            "addresses": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}],
            "notReadyAddresses": [{"ip": "192.0.2.12"}],
            "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]
        }]
    }))
    .expect("endpoints JSON");
    let api: Api<Endpoints> = Api::namespaced(h.client.clone(), "default");
    api.create(&PostParams::default(), &endpoints)
        .await
        .expect("created");

    let slices = eventually("a mirrored slice", WAIT, || async {
        let s = h.slices("external").await;
        (s.len() == 1 && s[0].endpoints.len() == 3).then_some(s)
    })
    .await;
    let slice = &slices[0];
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslicemirroring-controller.k8s.io")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("data"));
    assert_eq!(slice.address_type, "IPv4");
    let owner = &slice.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Endpoints", "external")
    );
    let mut ready: Vec<(String, bool)> = slice
        .endpoints
        .iter()
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false),
            )
        })
        .collect();
    ready.sort();
    assert_eq!(
        ready,
        [
            ("192.0.2.10".to_owned(), true),
            ("192.0.2.11".to_owned(), true),
            ("192.0.2.12".to_owned(), false)
        ]
    );

    // skip-mirror: the mirrored slices go away.
    let patch =
        json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}});
    api.patch("external", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patched");
    eventually("mirrored slice deleted", WAIT, || async {
        h.slices("external").await.is_empty().then_some(())
    })
    .await;
}

on_both_backends!(selector_less_service_endpoints_are_mirrored_and_unmirrored,);
