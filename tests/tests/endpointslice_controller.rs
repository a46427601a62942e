//! The EndpointSlice controller against both backends (testenv and the real kube-apiserver),
//! with the node simulator playing scheduler and kubelet.

use std::time::Duration;

use controllers::endpointslice_controller::{
    EndpointSliceController, EndpointSliceControllerConfig,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::json;
use svcplane_tests::fixtures::{
    all_ready, endpoint_counts, eventually, field_managers, pod, pod_names, service,
};
use svcplane_tests::{BackendKind, Harness, HarnessOptions, on_both_backends};
use testenv::nodesim::NodeSimConfig;

const WAIT: Duration = Duration::from_secs(30);

/// The backend with `nodes` and garbage collection, and the controller under test on the
/// harness's recording client.
async fn start_with(
    kind: BackendKind,
    nodes: NodeSimConfig,
    config: EndpointSliceControllerConfig,
) -> Option<(Harness, EndpointSliceController)> {
    let options = HarnessOptions {
        nodes: Some(nodes),
        garbage_collection: true,
    };
    let mut harness = Harness::start(kind, options).await?;
    let mut registry = Registry::default();
    let controller =
        EndpointSliceController::new(harness.controller_client(), config, &mut registry)
            .expect("valid config");
    harness.spawn(
        controller
            .clone()
            .run(controllers::runtime::Shutdown::never()),
    );
    Some((harness, controller))
}

async fn start(
    kind: BackendKind,
    nodes: NodeSimConfig,
) -> Option<(Harness, EndpointSliceController)> {
    start_with(kind, nodes, EndpointSliceControllerConfig::default()).await
}

fn pods(prefix: &str, app: &str, count: usize) -> Vec<serde_json::Value> {
    (0..count)
        .map(|i| pod(&format!("{prefix}-{i:04}"), app))
        .collect()
}

async fn set_ready(h: &Harness, name: &str, ready: bool) {
    let patch =
        json!({"metadata": {"annotations": {"testenv.svcplane.io/ready": ready.to_string()}}});
    h.pods()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("pod patched");
}

fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn endpoint_ready(slices: &[EndpointSlice], pod: &str) -> Option<bool> {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
        .map(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
}

async fn ready_pods_fill_slices_of_100_and_one_unready_pod_is_one_write(kind: BackendKind) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(3)).await else {
        return;
    };
    // Pods first, all Ready, then the Service: the planner packs a cold start perfectly
    // (pods trickling in one by one fill slices as they come, as upstream does).
    h.create_pods(pods("web", "web", 250)).await;
    eventually("250 pods ready", WAIT, || async {
        let list = h.pods().list(&Default::default()).await.ok()?;
        let ready = list.items.iter().filter(|p| pod_is_ready(p)).count();
        (ready == 250).then_some(())
    })
    .await;
    h.create_service(service("web", "web", json!(8080))).await;
    let slices = eventually("250 ready endpoints in 100/100/50", WAIT, || async {
        let slices = h.slices("web").await;
        (endpoint_counts(&slices) == [50, 100, 100] && all_ready(&slices)).then_some(slices)
    })
    .await;
    for slice in &slices {
        let labels = slice.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("endpointslice.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("endpointslice-controller.k8s.io")
        );
        assert_eq!(
            labels.get("kubernetes.io/service-name").map(String::as_str),
            Some("web")
        );
        let owner = &slice.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Service", "web", Some(true))
        );
        assert_eq!(slice.ports.as_ref().map(|p| p[0].port), Some(Some(8080)));
        // Written under a named field manager, as kube-controller-manager's are.
        let managers = field_managers(&slice.metadata);
        assert_eq!(managers, [Some("svcplane".to_owned())]);
    }

    // Quiet period: the controller settles (slice-triggered syncs run after 1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mark = h.requests().len();
    set_ready(&h, "web-0007", false).await;
    eventually("web-0007 unready in its slice", WAIT, || async {
        (endpoint_ready(&h.slices("web").await, "web-0007") == Some(false)).then_some(())
    })
    .await;
    // Any echo of our own write would show up within the 1 s slice-event delay.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let writes = h.requests().writes_since(mark, "endpointslices");
    assert_eq!(writes.len(), 1, "exactly one slice write: {writes:?}");
    assert_eq!(writes[0].method, "PUT");
}

async fn rolling_replacement_of_all_pods(kind: BackendKind) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(3)).await else {
        return;
    };
    h.create_service(service("web", "web", json!("http"))).await;
    h.create_pods(pods("old", "web", 20)).await;
    eventually("20 old endpoints", WAIT, || async {
        let s = h.slices("web").await;
        (endpoint_counts(&s) == [20] && all_ready(&s)).then_some(())
    })
    .await;
    let mark = h.requests().len();
    for batch in 0..4 {
        let new: Vec<_> = (batch * 5..batch * 5 + 5)
            .map(|i| pod(&format!("new-{i:04}"), "web"))
            .collect();
        h.create_pods(new).await;
        for i in batch * 5..batch * 5 + 5 {
            h.pods()
                .delete(&format!("old-{i:04}"), &DeleteParams::default())
                .await
                .expect("deleted");
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("new-{i:04}")).collect();
    eventually("only the 20 new pods, ready", WAIT, || async {
        let s = h.slices("web").await;
        (pod_names(&s) == expected && all_ready(&s)).then_some(())
    })
    .await;
    let conflicts = h
        .requests()
        .since(mark)
        .into_iter()
        .filter(|r| r.is_on("endpointslices") && r.status == 409)
        .count();
    assert_eq!(conflicts, 0, "no 409s from stale caches");
}

async fn selector_change_moves_endpoints(kind: BackendKind) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(2)).await else {
        return;
    };
    h.create_service(service("web", "a", json!(8080))).await;
    h.create_pods(pods("a", "a", 3)).await;
    h.create_pods(pods("b", "b", 2)).await;
    eventually("3 endpoints of app=a", WAIT, || async {
        (pod_names(&h.slices("web").await) == ["a-0000", "a-0001", "a-0002"]).then_some(())
    })
    .await;
    let patch = json!({"spec": {"selector": {"app": "b"}}});
    h.services()
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patched");
    eventually("2 endpoints of app=b", WAIT, || async {
        (pod_names(&h.slices("web").await) == ["b-0000", "b-0001"]).then_some(())
    })
    .await;
}

async fn named_port_defined_by_some_pods_splits_slices_by_port_set(kind: BackendKind) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(2)).await else {
        return;
    };
    h.create_service(service("web", "web", json!("http"))).await;
    let mut list = pods("named", "web", 2);
    list.push(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "unnamed-0", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 9090}]}]}
    }));
    h.create_pods(list).await;
    let slices = eventually("two slices by port set", WAIT, || async {
        let s = h.slices("web").await;
        (endpoint_counts(&s) == [1, 2] && all_ready(&s)).then_some(s)
    })
    .await;
    for slice in &slices {
        let ports = slice.ports.clone().unwrap_or_default();
        if slice.endpoints.len() == 2 {
            assert_eq!(ports.len(), 1);
            assert_eq!(
                (ports[0].name.as_deref(), ports[0].port),
                (Some("http"), Some(8080))
            );
            assert_eq!(
                pod_names(std::slice::from_ref(slice)),
                ["named-0000", "named-0001"]
            );
        } else {
            assert!(
                ports.is_empty(),
                "the pod without the named port gets a port-less slice"
            );
            assert_eq!(pod_names(std::slice::from_ref(slice)), ["unnamed-0"]);
        }
    }
}

async fn dual_stack_service_gets_a_slice_per_family(kind: BackendKind) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(2).dual_stack()).await
    else {
        return;
    };
    h.create_service(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.20",
            "clusterIPs": ["10.96.0.20", "fd00:10:96::20"], "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "RequireDualStack",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}
    }))
    .await;
    h.create_pods(pods("web", "web", 3)).await;
    let slices = eventually(
        "IPv4 and IPv6 slices with 3 endpoints each",
        WAIT,
        || async {
            let s = h.slices("web").await;
            (endpoint_counts(&s) == [3, 3] && all_ready(&s)).then_some(s)
        },
    )
    .await;
    let mut types: Vec<&str> = slices.iter().map(|s| s.address_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["IPv4", "IPv6"]);
    for slice in &slices {
        let v6 = slice.address_type == "IPv6";
        for endpoint in &slice.endpoints {
            assert_eq!(endpoint.addresses.len(), 1);
            assert_eq!(
                endpoint.addresses[0].contains(':'),
                v6,
                "{:?}",
                endpoint.addresses
            );
        }
    }
}

async fn publish_not_ready_addresses_marks_unready_pods_ready(kind: BackendKind) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(2)).await else {
        return;
    };
    let mut svc = service("web", "web", json!(8080));
    svc["spec"]["publishNotReadyAddresses"] = json!(true);
    h.create_service(svc).await;
    let mut list = pods("web", "web", 3);
    for p in &mut list {
        p["metadata"]["annotations"]["testenv.svcplane.io/ready"] = json!("false");
    }
    h.create_pods(list).await;
    eventually("3 unready pods published ready", WAIT, || async {
        let s = h.slices("web").await;
        (endpoint_counts(&s) == [3] && all_ready(&s)).then_some(())
    })
    .await;
    let pod = h.pods().get("web-0000").await.expect("pod");
    let ready = pod
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready");
    assert_eq!(
        ready.map(|c| c.status),
        Some("False".to_owned()),
        "the pod itself stays unready"
    );
}

async fn headless_service_endpoints_carry_hostnames(kind: BackendKind) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(2)).await else {
        return;
    };
    h.create_service(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"selector": {"app": "db"}, "clusterIP": "None", "ipFamilies": ["IPv4"],
            "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}]}
    }))
    .await;
    let list: Vec<_> = (0..2)
        .map(|i| {
            let mut p = pod(&format!("db-{i}"), "db");
            p["spec"]["hostname"] = json!(format!("db-{i}"));
            p["spec"]["subdomain"] = json!("db");
            p
        })
        .collect();
    h.create_pods(list).await;
    let slices = eventually("2 endpoints with hostnames", WAIT, || async {
        let s = h.slices("db").await;
        let hostnames: Vec<Option<String>> = s
            .iter()
            .flat_map(|s| &s.endpoints)
            .map(|e| e.hostname.clone())
            .collect();
        (hostnames.len() == 2 && hostnames.iter().all(Option::is_some)).then_some(s)
    })
    .await;
    let mut hostnames: Vec<String> = slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter_map(|e| e.hostname.clone())
        .collect();
    hostnames.sort();
    assert_eq!(hostnames, ["db-0", "db-1"]);
    let labels = slices[0].metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );
}

async fn hand_deleted_and_hand_edited_slices_are_restored(kind: BackendKind) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(2)).await else {
        return;
    };
    h.create_service(service("web", "web", json!(8080))).await;
    h.create_pods(pods("web", "web", 4)).await;
    let expected: Vec<String> = (0..4).map(|i| format!("web-{i:04}")).collect();
    let slices = eventually("4 ready endpoints", WAIT, || async {
        let s = h.slices("web").await;
        (pod_names(&s) == expected && all_ready(&s)).then_some(s)
    })
    .await;
    let name = slices[0].metadata.name.clone().unwrap_or_default();

    // A user empties the slice: the controller puts the endpoints back.
    let mut edited = slices[0].clone();
    edited.endpoints.truncate(1);
    h.slice_api()
        .replace(&name, &PostParams::default(), &edited)
        .await
        .expect("edited");
    eventually("edited slice restored", WAIT, || async {
        let s = h.slices("web").await;
        (pod_names(&s) == expected && s.len() == 1).then_some(())
    })
    .await;

    // A user deletes the slice: the controller recreates it.
    h.slice_api()
        .delete(&name, &DeleteParams::default())
        .await
        .expect("deleted");
    let restored = eventually("deleted slice recreated", WAIT, || async {
        let s = h.slices("web").await;
        (pod_names(&s) == expected
            && s.len() == 1
            && s[0].metadata.name.as_deref() != Some(name.as_str()))
        .then_some(s)
    })
    .await;
    assert!(all_ready(&restored));
}

async fn deleted_service_slices_are_garbage_collected_not_deleted_by_the_controller(
    kind: BackendKind,
) {
    let Some((h, _controller)) = start(kind, NodeSimConfig::with_node_count(2)).await else {
        return;
    };
    h.create_service(service("web", "web", json!(8080))).await;
    h.create_pods(pods("web", "web", 3)).await;
    eventually("3 endpoints", WAIT, || async {
        (endpoint_counts(&h.slices("web").await) == [3]).then_some(())
    })
    .await;
    let mark = h.requests().len();
    h.services()
        .delete("web", &DeleteParams::default())
        .await
        .expect("service deleted");
    eventually("slices garbage-collected", WAIT, || async {
        h.slices("web").await.is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deletes: Vec<_> = h
        .requests()
        .since(mark)
        .into_iter()
        .filter(|r| r.is_on("endpointslices") && r.method == "DELETE")
        .collect();
    assert!(
        deletes.is_empty(),
        "the controller issued slice deletes: {deletes:?}"
    );
}

async fn pod_on_a_missing_node_is_skipped_until_the_node_appears(kind: BackendKind) {
    let Some((h, controller)) = start(kind, NodeSimConfig::with_node_count(1)).await else {
        return;
    };
    h.create_service(service("web", "web", json!(8080))).await;
    h.create_pods(pods("web", "web", 1)).await;
    let mut ghost = pod("ghost", "web");
    ghost["spec"]["nodeName"] = json!("ghost-node");
    h.create_pods(vec![ghost]).await;
    let status = json!({"status": {"phase": "Running", "podIP": "10.250.0.5", "podIPs": [{"ip": "10.250.0.5"}],
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    h.pods()
        .patch_status("ghost", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    eventually("only the pod on a known node", WAIT, || async {
        let s = h.slices("web").await;
        (pod_names(&s) == ["web-0000"] && all_ready(&s)).then_some(())
    })
    .await;
    let event = eventually("FailedToUpdateEndpointSlices event", WAIT, || async {
        controller
            .events()
            .recent()
            .into_iter()
            .find(|e| e.reason == "FailedToUpdateEndpointSlices")
    })
    .await;
    assert_eq!(
        event.message,
        "Error updating Endpoint Slices for Service default/web: skipping Pod ghost for Service default/web: Node ghost-node Not Found"
    );
    assert_eq!(
        (event.type_, event.object.as_str()),
        ("Warning", "default/web")
    );

    let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "ghost-node", "labels": {"topology.kubernetes.io/zone": "zone-z"}}}))
    .expect("node");
    Api::<Node>::all(h.client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    let slices = eventually("ghost pod included once its node exists", WAIT, || async {
        let s = h.slices("web").await;
        (pod_names(&s) == ["ghost", "web-0000"]).then_some(s)
    })
    .await;
    let ghost_endpoint = slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| e.addresses == ["10.250.0.5"]);
    assert_eq!(
        ghost_endpoint.and_then(|e| e.zone.clone()).as_deref(),
        Some("zone-z")
    );
}

/// A dual-stack headless Service has slices of both address types: the IPv4 placeholder is
/// recycled into the first filled slice, the IPv6 one stays an empty placeholder, as upstream.
async fn placeholder_of_each_address_type_until_it_has_endpoints(kind: BackendKind) {
    placeholders_of(
        kind,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}],
                "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}
        }),
    )
    .await;
}

/// The same for a headless Service without `ipFamilies`, whose address types upstream's
/// controller infers as both. testenv only: kube-apiserver's registry defaults `ipFamilies` at
/// create, so such a Service never reaches a controller there (and on testenv, svcplane's
/// registry does the same in `svcplane up`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_of_each_address_type_without_ip_families_testenv_only() {
    svcplane_tests::backend::run_if_selected(BackendKind::Testenv, |kind| {
        placeholders_of(
            kind,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}
            }),
        )
    })
    .await;
}

async fn placeholders_of(kind: BackendKind, service: serde_json::Value) {
    let config = EndpointSliceControllerConfig {
        max_endpoints_per_slice: controllers::endpointslice::MaxEndpointsPerSlice::new(2)
            .expect("valid"),
        ..EndpointSliceControllerConfig::default()
    };
    let Some((h, _controller)) = start_with(kind, NodeSimConfig::with_node_count(2), config).await
    else {
        return;
    };
    h.create_service(service).await;
    eventually("an empty placeholder per address type", WAIT, || async {
        let mut shapes: Vec<(String, usize, usize)> = h
            .slices("web")
            .await
            .iter()
            .map(|s| {
                let ports = s.ports.as_ref().map_or(0, Vec::len);
                (s.address_type.clone(), ports, s.endpoints.len())
            })
            .collect();
        shapes.sort();
        (shapes == [("IPv4".into(), 0, 0), ("IPv6".into(), 0, 0)]).then_some(())
    })
    .await;
    let placeholders: Vec<String> = h
        .slices("web")
        .await
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    h.create_pods(pods("web", "web", 5)).await;
    let slices = eventually("IPv4 2+2+1, IPv6 still a placeholder", WAIT, || async {
        let s = h.slices("web").await;
        let of = |family: &str| -> Vec<EndpointSlice> {
            s.iter()
                .filter(|x| x.address_type == family)
                .cloned()
                .collect()
        };
        (endpoint_counts(&of("IPv4")) == [1, 2, 2]
            && all_ready(&of("IPv4"))
            && endpoint_counts(&of("IPv6")) == [0])
        .then_some(s)
    })
    .await;
    // Both placeholders were kept: the IPv4 one now holds endpoints.
    for name in &placeholders {
        assert!(
            slices
                .iter()
                .any(|s| s.metadata.name.as_ref() == Some(name)),
            "{name} was replaced"
        );
    }
}

on_both_backends!(
    ready_pods_fill_slices_of_100_and_one_unready_pod_is_one_write,
    rolling_replacement_of_all_pods,
    selector_change_moves_endpoints,
    named_port_defined_by_some_pods_splits_slices_by_port_set,
    dual_stack_service_gets_a_slice_per_family,
    publish_not_ready_addresses_marks_unready_pods_ready,
    headless_service_endpoints_carry_hostnames,
    hand_deleted_and_hand_edited_slices_are_restored,
    deleted_service_slices_are_garbage_collected_not_deleted_by_the_controller,
    pod_on_a_missing_node_is_skipped_until_the_node_appears,
    placeholder_of_each_address_type_until_it_has_endpoints,
);
