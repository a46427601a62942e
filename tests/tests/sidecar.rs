//! svcplane as the real sidecar (docs/sidecar.md): upstream kube-controller-manager with its
//! EndpointSlice, Endpoints and mirroring controllers off, `svcplane controller-manager
//! --allocation-mode=audit` running them, and svcplane's admission webhook registered in the real
//! kube-apiserver as a URL webhook on 127.0.0.1, which kube-apiserver calls over TLS.
//!
//! There is no kubelet and no scheduler: Pods are created bound to a Node object, and made Ready
//! by patching `pods/status` as a kubelet would. Their IPs (10.244.x.y) are only data in the API.
//! Outside CI a test skips (with the reason) when a binary is missing; under `CI=true` it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allocator::registry::{AllocationMode, RegistryConfig, ServiceRegistry};
use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IPAddress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use svcplane_tests::fixtures::kubelet_status;
use svcplane_tests::real::{self, Component, RealCluster, RealClusterOptions, SidecarOptions};
use webhook::ServiceRanges;
use webhook::server::install::{
    CONFIGURATION_NAME, SERVICES_MUTATING_WEBHOOK, install_configurations,
};
use webhook::server::tls::generate_certificates;
use webhook::server::{
    AdmissionPolicy, CertificateSource, ServiceClusterIpIndex, WebhookConfig, WebhookHandle,
    WebhookServer, WebhookTarget,
};

const CLUSTER_IP_RANGE: &str = "10.0.0.0/24";
const NODE_PORT_RANGE: &str = "30000-32767";
const NODE: &str = "node-1";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";

fn options() -> RealClusterOptions {
    RealClusterOptions {
        service_cluster_ip_range: CLUSTER_IP_RANGE.into(),
        service_node_port_range: NODE_PORT_RANGE.into(),
        ..RealClusterOptions::default()
    }
}

fn from_json<T: k8s_openapi::serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid object literal")
}

/// The IP of pod `i`: data in the API only, never configured on an interface.
fn pod_ip(i: usize) -> String {
    format!("10.244.{}.{}", 1 + i / 200, 1 + i % 200)
}

/// What a kubelet writes for running Pod `i`, Ready or not.
fn pod_status(i: usize, ready: bool) -> Value {
    kubelet_status("10.244.0.1", &pod_ip(i), ready)
}

async fn create_node(client: &kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": NODE,
                "labels": {"kubernetes.io/hostname": NODE}}})),
        )
        .await
        .expect("create the Node");
    nodes
        .patch_status(
            NODE,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "10.244.0.1"},
                              {"type": "Hostname", "address": NODE}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "set by the test"}],
            }})),
        )
        .await
        .expect("patch the Node's status");
}

/// Creates `count` Pods `web-i` bound to the Node, then makes each Running and Ready.
async fn create_ready_pods(client: &kube::Client, count: usize) {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    futures::stream::iter(0..count)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let name = format!("web-{i}");
                let pod: Pod = from_json(json!({
                    "metadata": {"name": name, "labels": {"app": "web"}},
                    "spec": {"nodeName": NODE,
                             "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                             "ports": [{"containerPort": 8080}]}]},
                }));
                pods.create(&PostParams::default(), &pod).await?;
                pods.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(pod_status(i, true)),
                )
                .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .expect("create and ready the Pods");
}

async fn slices_of(client: &kube::Client, service: &str) -> Vec<EndpointSlice> {
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .expect("list EndpointSlices")
        .items
}

fn ready_count(slices: &[EndpointSlice]) -> usize {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .count()
}

fn managers(meta: &kube::api::ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect()
}

/// The endpoints of a slice by their Pod's name, as JSON.
fn endpoints_by_pod(slice: &EndpointSlice) -> BTreeMap<String, Value> {
    slice
        .endpoints
        .iter()
        .map(|e| {
            let pod = e
                .target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .expect("an endpoint of a Pod names it");
            (pod, serde_json::to_value(e).unwrap())
        })
        .collect()
}

async fn eventually<F, Fut, T>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The body of a plain-HTTP GET on 127.0.0.1.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svcplane_writes_the_slices_of_250_pods_in_place_of_kube_controller_manager() {
    let started = Instant::now();
    let Some((cluster, ports)) =
        real::start_sidecar_or_skip("sidecar_250_pods", options(), &SidecarOptions::default())
            .await
    else {
        return;
    };
    eprintln!(
        "etcd, kube-apiserver, kube-controller-manager and svcplane ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let client = cluster.client();

    // kube-controller-manager is alive and acting: its ServiceAccount controller gives the
    // default namespace its `default` ServiceAccount.
    let accounts: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    eventually(
        "kube-controller-manager's default ServiceAccount",
        Duration::from_secs(30),
        || async { accounts.get_opt("default").await.unwrap().map(drop) },
    )
    .await;

    let phase = Instant::now();
    create_node(&client).await;
    create_ready_pods(&client, 250).await;
    eprintln!(
        "250 Pods created and made Ready in {:.1} s",
        phase.elapsed().as_secs_f64()
    );

    let phase = Instant::now();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let created = services
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})),
        )
        .await
        .expect("create Service web");
    let cluster_ip = created.spec.unwrap().cluster_ip.unwrap();
    assert!(
        cluster_ip.starts_with("10.0.0."),
        "kube-apiserver allocated {cluster_ip}"
    );
    let slices = eventually(
        "250 ready endpoints in web's slices",
        Duration::from_secs(60),
        || async {
            let slices = slices_of(&client, "web").await;
            (ready_count(&slices) == 250).then_some(slices)
        },
    )
    .await;
    eprintln!(
        "svcplane wrote web's slices {:.2} s after the Service's create",
        phase.elapsed().as_secs_f64()
    );
    let mut sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100, 100], "slice sizes");
    for slice in &slices {
        let labels = slice.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(MANAGED_BY).map(String::as_str),
            Some(SLICE_CONTROLLER)
        );
        let by = managers(&slice.metadata);
        assert!(
            !by.is_empty() && by.iter().all(|m| m.starts_with("svcplane")),
            "slice {:?} written by {by:?}",
            slice.metadata.name
        );
        assert_eq!(slice.address_type, "IPv4");
        let ports = slice.ports.clone().unwrap_or_default();
        assert_eq!(ports.len(), 1);
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port),
            (Some("http"), Some(8080))
        );
    }
    eprintln!(
        "slice managers: {:?}",
        slices
            .iter()
            .map(|s| managers(&s.metadata))
            .collect::<Vec<_>>()
    );
    let endpoints: Api<Endpoints> = Api::default_namespaced(client.clone());
    let eps = eventually("web's Endpoints", Duration::from_secs(30), || async {
        endpoints.get_opt("web").await.unwrap().filter(|e| {
            e.subsets
                .iter()
                .flatten()
                .flat_map(|s| s.addresses.iter().flatten())
                .count()
                == 250
        })
    })
    .await;
    let by = managers(&eps.metadata);
    assert!(
        by.iter().all(|m| m.starts_with("svcplane")),
        "Endpoints written by {by:?}"
    );

    // audit: kube-apiserver allocated (and claimed) the ClusterIPs; svcplane wrote no claim.
    let ip_addresses: Api<IPAddress> = Api::all(client.clone());
    let claims = ip_addresses
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let claimed: Vec<String> = claims
        .iter()
        .filter_map(|a| a.metadata.name.clone())
        .collect();
    assert!(claimed.contains(&cluster_ip), "IPAddresses {claimed:?}");
    for claim in &claims {
        let labels = claim.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("ipaddress.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("ipallocator.k8s.io"),
            "{:?}",
            claim.metadata
        );
        assert!(
            !managers(&claim.metadata)
                .iter()
                .any(|m| m.starts_with("svcplane"))
        );
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt("nodeportallocations.allocation.svcplane.io")
            .await
            .unwrap()
            .is_none(),
        "audit mode installed the NodePortAllocation CRD"
    );
    // ...and reports what it sees: the kubernetes Service's ClusterIP and web's.
    eventually(
        "svcplane's allocator metrics",
        Duration::from_secs(30),
        || async {
            let metrics = http_get(ports.svcplane, "/metrics");
            let has = |line: &str| metrics.lines().any(|l| l == line);
            (has(&format!(
                "kube_apiserver_clusterip_allocator_allocated_ips{{cidr=\"{CLUSTER_IP_RANGE}\"}} 2"
            )) && has("leader_election_master_status{name=\"svcplane-controller-manager\"} 1"))
            .then_some(())
        },
    )
    .await;

    // One Pod turns unready: exactly its endpoint changes, in its slice only.
    let before: BTreeMap<String, EndpointSlice> = slices
        .into_iter()
        .map(|s| (s.metadata.name.clone().unwrap(), s))
        .collect();
    let victim = "web-137";
    let home = before
        .values()
        .find(|s| endpoints_by_pod(s).contains_key(victim))
        .map(|s| s.metadata.name.clone().unwrap())
        .expect("web-137 has an endpoint");
    let phase = Instant::now();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.patch_status(
        victim,
        &PatchParams::default(),
        &Patch::Merge(pod_status(137, false)),
    )
    .await
    .expect("make web-137 unready");
    let after = eventually(
        "web-137's endpoint turning unready",
        Duration::from_secs(30),
        || async {
            let slices = slices_of(&client, "web").await;
            (ready_count(&slices) == 249).then_some(slices)
        },
    )
    .await;
    eprintln!(
        "svcplane updated the endpoint {:.2} s after the Pod's status patch",
        phase.elapsed().as_secs_f64()
    );
    let after: BTreeMap<String, EndpointSlice> = after
        .into_iter()
        .map(|s| (s.metadata.name.clone().unwrap(), s))
        .collect();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the same slices"
    );
    for (name, old) in &before {
        let new = &after[name];
        if *name != home {
            assert_eq!(
                old.metadata.resource_version, new.metadata.resource_version,
                "slice {name} was rewritten"
            );
            continue;
        }
        assert_ne!(old.metadata.resource_version, new.metadata.resource_version);
        let (old, new) = (endpoints_by_pod(old), endpoints_by_pod(new));
        assert_eq!(
            old.keys().collect::<Vec<_>>(),
            new.keys().collect::<Vec<_>>()
        );
        let changed: Vec<&String> = old.keys().filter(|k| old[*k] != new[*k]).collect();
        assert_eq!(changed, [victim], "the endpoints that changed");
        assert_eq!(
            new[victim]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false}),
            "{}",
            new[victim]
        );
        assert_eq!(new[victim]["addresses"], json!([pod_ip(137)]));
        let by = managers(&after[name].metadata);
        assert!(by.iter().all(|m| m.starts_with("svcplane")), "{by:?}");
    }

    // kube-controller-manager ran its controllers but turned off the three svcplane replaces.
    let kcm_log = std::fs::read_to_string(cluster.log_path("kube-controller-manager")).unwrap();
    let said = |line: &str| {
        assert!(
            kcm_log.contains(line),
            "kube-controller-manager's log lacks {line}:\n{}",
            tail(&cluster.log_path("kube-controller-manager"))
        );
    };
    for disabled in [
        "endpointslice-controller",
        "endpoints-controller",
        "endpointslice-mirroring-controller",
    ] {
        said(&format!(
            "\"Warning: controller is disabled\" controller=\"{disabled}\""
        ));
        assert!(!kcm_log.contains(&format!("\"Started controller\" controller=\"{disabled}\"")));
    }
    said("\"Started controller\" controller=\"serviceaccount-controller\"");
    eprintln!("whole test: {:.1} s", started.elapsed().as_secs_f64());
}

/// svcplane's webhook serving on 127.0.0.1 in this process, as `svcplane webhook
/// --allocation-mode=audit` runs it: an audit registry (kube-apiserver allocates), the ranges
/// of the cluster, and a Service index for ClusterIP warnings.
async fn start_webhook(client: &kube::Client) -> (WebhookHandle, String) {
    let cluster_ips =
        ServiceClusterIpRanges::parse(CLUSTER_IP_RANGE, BitmapSizeLimit::Enforced).unwrap();
    let node_ports = PortRange::parse(NODE_PORT_RANGE).unwrap();
    let registry = ServiceRegistry::start(
        client.clone(),
        RegistryConfig {
            mode: AllocationMode::Audit,
            ..RegistryConfig::new(cluster_ips, node_ports)
        },
    )
    .await
    .expect("start the audit registry");
    let policy = AdmissionPolicy {
        ranges: ServiceRanges {
            cluster_ip: vec![CLUSTER_IP_RANGE.parse().unwrap()],
            node_ports: (30000, 32767),
        },
        ..AdmissionPolicy::default()
    };
    let (ca, cert, key) = generate_certificates(&["127.0.0.1".to_owned()]).unwrap();
    let mut config = WebhookConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        CertificateSource::Pem { cert, key },
        policy,
    );
    config.allocator = Some(Arc::new(registry));
    config.services = Some(Arc::new(ServiceClusterIpIndex::start(client.clone())));
    let handle = WebhookServer::start(config)
        .await
        .expect("start the webhook");
    install_configurations(
        client.clone(),
        ca.as_bytes(),
        &WebhookTarget::Url(format!("https://{}", handle.addr())),
    )
    .await
    .expect("install the webhook configurations");
    (handle, ca)
}

fn kubectl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(!real::is_ci(), "kubectl is not on PATH (CI=true)");
        eprintln!("skipping: kubectl is not on PATH (under CI=true this is a failure)");
    }
    found
}

/// `kubectl create -f` of `object`: its exit status and stderr.
fn kubectl_create(kubectl: &Path, cluster: &RealCluster, object: &Value) -> (bool, String) {
    let file = cluster.dir().join("object.json");
    std::fs::write(&file, object.to_string()).unwrap();
    let output = Command::new(kubectl)
        .arg(format!(
            "--kubeconfig={}",
            cluster.kubeconfig_path().display()
        ))
        .args(["create", "-f"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    )
}

fn bad_service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"ports": [{"name": "123_abc", "port": 80}]}})
}

async fn create_status(
    services: &Api<Service>,
    object: &Value,
) -> Result<Service, Box<kube::core::Status>> {
    match services
        .create(&PostParams::default(), &from_json(object.clone()))
        .await
    {
        Ok(svc) => Ok(svc),
        Err(kube::Error::Api(status)) => Err(status),
        Err(e) => panic!("create: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_service_is_refused_by_the_webhook_through_kube_apiserver_as_kubectl_prints_it()
{
    let Some(kubectl) = kubectl() else { return };
    let started = Instant::now();
    let Some(cluster) = real::start_or_skip("webhook_422", options()).await else {
        return;
    };
    let client = cluster.client();
    let services: Api<Service> = Api::default_namespaced(client.clone());

    // kube-apiserver's own answer, before the webhook is registered.
    let own = create_status(&services, &bad_service("bad"))
        .await
        .expect_err("kube-apiserver refuses port name 123_abc");
    let (ok, own_kubectl) = kubectl_create(&kubectl, &cluster, &bad_service("bad"));
    assert!(!ok);
    eprintln!("kube-apiserver alone: {own:?}\nkubectl: {own_kubectl}");

    let (webhook, _ca) = start_webhook(&client).await;
    let phase = Instant::now();
    let prefix = format!("admission webhook \"{SERVICES_MUTATING_WEBHOOK}\" denied the request: ");
    let theirs = eventually(
        "kube-apiserver calling the webhook",
        Duration::from_secs(30),
        || async {
            let status = create_status(&services, &bad_service("bad"))
                .await
                .expect_err("still refused");
            status.message.starts_with(&prefix).then_some(status)
        },
    )
    .await;
    eprintln!(
        "kube-apiserver called the webhook {:.2} s after its configurations were created",
        phase.elapsed().as_secs_f64()
    );
    let (ok, webhook_kubectl) = kubectl_create(&kubectl, &cluster, &bad_service("bad"));
    assert!(!ok);
    eprintln!("through the webhook: {theirs:?}\nkubectl: {webhook_kubectl}");

    assert_eq!(theirs.code, 422);
    assert_eq!(theirs.code, own.code);
    assert_eq!(theirs.reason, own.reason);
    assert_eq!(theirs.status, own.status);
    assert_eq!(theirs.message, format!("{prefix}{}", own.message));
    assert_eq!(
        serde_json::to_value(&theirs.details).unwrap(),
        serde_json::to_value(&own.details).unwrap(),
        "details"
    );
    assert_eq!(webhook_kubectl, own_kubectl, "kubectl's text");

    webhook.shutdown().await;
    eprintln!("whole test: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_down_fail_refuses_a_service_and_ignore_lets_it_pass() {
    let started = Instant::now();
    let Some(cluster) = real::start_or_skip("webhook_down", options()).await else {
        return;
    };
    let client = cluster.client();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let (webhook, _ca) = start_webhook(&client).await;
    let addr = webhook.addr();
    // Registered and called: an invalid Service is refused by the webhook itself.
    eventually(
        "kube-apiserver calling the webhook",
        Duration::from_secs(30),
        || async {
            let status = create_status(&services, &bad_service("bad"))
                .await
                .expect_err("refused");
            status
                .message
                .contains(SERVICES_MUTATING_WEBHOOK)
                .then_some(())
        },
    )
    .await;
    webhook.shutdown().await;

    let good = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"ports": [{"port": 80}]}})
    };
    let refused = create_status(&services, &good("while-down"))
        .await
        .expect_err("failurePolicy Fail refuses a create while the webhook is down");
    eprintln!("webhook down, failurePolicy Fail: {refused:?}");
    assert_eq!(refused.code, 500, "{refused:?}");
    assert_eq!(refused.reason, "InternalError");
    assert!(
        refused.message.starts_with(&format!(
            "Internal error occurred: failed calling webhook \"{SERVICES_MUTATING_WEBHOOK}\": failed to call webhook: Post \"https://{addr}/mutate?timeout=10s\": "
        )),
        "{}",
        refused.message
    );
    assert!(services.get_opt("while-down").await.unwrap().is_none());

    // failurePolicy Ignore on every webhook of both configurations.
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mut m = mutating.get(CONFIGURATION_NAME).await.unwrap();
    for w in m.webhooks.iter_mut().flatten() {
        w.failure_policy = Some("Ignore".into());
    }
    mutating
        .replace(CONFIGURATION_NAME, &PostParams::default(), &m)
        .await
        .unwrap();
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mut v = validating.get(CONFIGURATION_NAME).await.unwrap();
    for w in v.webhooks.iter_mut().flatten() {
        w.failure_policy = Some("Ignore".into());
    }
    validating
        .replace(CONFIGURATION_NAME, &PostParams::default(), &v)
        .await
        .unwrap();
    let phase = Instant::now();
    let mut refusals = 0;
    let created = eventually(
        "a create passing with failurePolicy Ignore",
        Duration::from_secs(30),
        || {
            refusals += 1;
            let services = services.clone();
            let object = good("while-down");
            async move { create_status(&services, &object).await.ok() }
        },
    )
    .await;
    eprintln!(
        "failurePolicy Ignore in effect {:.2} s after the update ({} tries)",
        phase.elapsed().as_secs_f64(),
        refusals
    );
    let ip = created.spec.unwrap().cluster_ip.unwrap();
    assert!(ip.starts_with("10.0.0."), "kube-apiserver allocated {ip}");
    eprintln!("whole test: {:.1} s", started.elapsed().as_secs_f64());
}

/// The names of the Pods whose `Ready` condition is `True`, as the API has them.
async fn ready_pods(client: &kube::Client) -> std::collections::BTreeSet<String> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .expect("list Pods")
        .items
        .into_iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// The names of the Pods whose endpoints are ready in `service`'s slices.
fn ready_endpoint_pods(slices: &[EndpointSlice]) -> std::collections::BTreeSet<String> {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .filter_map(|e| e.target_ref.as_ref().and_then(|r| r.name.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svcplane_recovers_from_kill_9_of_kube_apiserver_mid_churn_and_nothing_acknowledged_is_lost()
 {
    churn_through_a_kill(Component::KubeApiserver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svcplane_recovers_from_kill_9_of_etcd_mid_churn_and_nothing_acknowledged_is_lost() {
    churn_through_a_kill(Component::Etcd).await;
}

/// A Node, `count` Ready Pods `web-i`, and Service `web` over them, once svcplane's slices list
/// every one of them ready.
async fn serve_ready_pods(client: &kube::Client, count: usize) {
    create_node(client).await;
    create_ready_pods(client, count).await;
    let services: Api<Service> = Api::default_namespaced(client.clone());
    services
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})),
        )
        .await
        .expect("create Service web");
    eventually(
        &format!("{count} ready endpoints"),
        Duration::from_secs(60),
        || async { (ready_count(&slices_of(client, "web").await) == count).then_some(()) },
    )
    .await;
}

/// Readiness churn through kube-apiserver while `component` is killed (-9) and restarted: every
/// acknowledged write survives, svcplane keeps running, and its slices end up following the
/// Pods as the API has them.
async fn churn_through_a_kill(component: Component) {
    const PODS: usize = 40;
    let Some((cluster, ports)) = real::start_sidecar_or_skip(
        &format!("sidecar_{}_kill", component.name()),
        options(),
        &SidecarOptions::default(),
    )
    .await
    else {
        return;
    };
    let client = cluster.client();
    serve_ready_pods(&client, PODS).await;

    // An acknowledged write must survive; a write that failed may or may not have landed.
    #[derive(Default)]
    struct Writes {
        acknowledged: BTreeMap<usize, bool>,
        uncertain: std::collections::BTreeSet<usize>,
        failed: usize,
    }
    let writes = Arc::new(std::sync::Mutex::new(Writes::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (pods, writes, stop) = (
            Api::<Pod>::default_namespaced(client.clone()),
            writes.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut step = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let i = (step * 7) % PODS;
                let ready = (step / PODS) % 2 == 1;
                let patch = Patch::Merge(pod_status(i, ready));
                let result = pods
                    .patch_status(&format!("web-{i}"), &PatchParams::default(), &patch)
                    .await;
                {
                    let mut writes = writes.lock().unwrap();
                    match result {
                        Ok(_) => {
                            writes.acknowledged.insert(i, ready);
                            writes.uncertain.remove(&i);
                        }
                        Err(_) => {
                            writes.failed += 1;
                            writes.uncertain.insert(i);
                        }
                    }
                }
                step += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            step
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    cluster
        .kill_and_restart(component)
        .await
        .unwrap_or_else(|e| panic!("{} starts again: {e}", component.name()));
    eprintln!(
        "{} killed, kube-apiserver ready again in {:.1} s",
        component.name(),
        killed_at.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let steps = churn.await.unwrap();
    let writes = std::mem::take(&mut *writes.lock().unwrap());
    eprintln!(
        "{steps} readiness writes, {} refused while {} was down",
        writes.failed,
        component.name()
    );
    // kube-apiserver retries its etcd writes, so a quick etcd restart may refuse none.
    if component == Component::KubeApiserver {
        assert!(writes.failed > 0, "the churn never saw kube-apiserver down");
    }

    // Nothing acknowledged is lost.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for (i, ready) in &writes.acknowledged {
        if writes.uncertain.contains(i) {
            continue;
        }
        let pod = pods.get(&format!("web-{i}")).await.unwrap();
        let is_ready = pod
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        assert_eq!(is_ready, *ready, "web-{i}: an acknowledged write was lost");
    }
    // svcplane kept running through it, and its slices follow the Pods as the API has them.
    assert!(
        http_get(ports.svcplane, "/healthz").contains("ok"),
        "svcplane's /healthz after the restart"
    );
    ready_endpoints_follow_the_ready_pods(&client).await;
}

/// Waits until web's ready endpoints are exactly the Pods the API shows Ready; returns those.
async fn ready_endpoints_follow_the_ready_pods(
    client: &kube::Client,
) -> std::collections::BTreeSet<String> {
    let want = ready_pods(client).await;
    eventually(
        "web's ready endpoints to be its ready Pods",
        Duration::from_secs(60),
        || async {
            let got = ready_endpoint_pods(&slices_of(client, "web").await);
            (got == want).then_some(())
        },
    )
    .await;
    want
}

/// Sends `signal` (`STOP`, `CONT`) to one process.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {signal} {pid}");
}

/// Whether a watch of Pods from `resource_version` is refused with 410 Gone.
async fn watch_is_gone(pods: &Api<Pod>, resource_version: &str) -> bool {
    let params = kube::api::WatchParams::default().timeout(5);
    let Ok(events) = pods.watch(&params, resource_version).await else {
        return false;
    };
    let mut events = std::pin::pin!(events);
    match events.next().await {
        Some(Ok(kube::api::WatchEvent::Error(status))) => status.code == 410,
        Some(Err(kube::Error::Api(status))) => status.code == 410,
        _ => false,
    }
}

/// etcd compacts (kube-apiserver's compactor every second, and no watch cache, so that watches
/// are etcd's own) while svcplane is paused; when it resumes, its watches come back with a
/// resourceVersion etcd no longer has, get 410 Gone, relist, and its slices catch up with the
/// readiness changes it slept through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_etcd_compaction_svcplane_gets_410_relists_and_catches_up() {
    const PODS: usize = 20;
    let options = RealClusterOptions {
        extra_apiserver_args: vec![
            "--etcd-compaction-interval=1s".into(),
            "--watch-cache=false".into(),
        ],
        ..options()
    };
    let Some((cluster, _ports)) =
        real::start_sidecar_or_skip("sidecar_compaction", options, &SidecarOptions::default())
            .await
    else {
        return;
    };
    let client = cluster.client();
    serve_ready_pods(&client, PODS).await;

    // Paused, svcplane keeps its connections; a restarted kube-apiserver breaks them before
    // anything changes, so every watch must start again from where svcplane was.
    let svcplane = cluster.pid_of("svcplane").expect("svcplane runs");
    signal(svcplane, "STOP");
    cluster
        .kill_and_restart(Component::KubeApiserver)
        .await
        .expect("kube-apiserver starts again");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut last_change = String::new();
    for i in 0..PODS / 2 {
        let changed = pods
            .patch_status(
                &format!("web-{i}"),
                &PatchParams::default(),
                &Patch::Merge(pod_status(i, false)),
            )
            .await
            .expect("make a Pod unready");
        last_change = changed.metadata.resource_version.unwrap_or_default();
    }
    // Writes after the last change (kube-controller-manager's lease renewals, every 2 s) let
    // the compactor pass it.
    eventually(
        "etcd to compact past the changes (a watch from the last one gets 410)",
        Duration::from_secs(30),
        || async { watch_is_gone(&pods, &last_change).await.then_some(()) },
    )
    .await;
    signal(svcplane, "CONT");

    let ready = ready_endpoints_follow_the_ready_pods(&client).await;
    assert_eq!(ready.len(), PODS / 2);
    // The Pod watch in particular came back to a compacted revision (kube-apiserver's text).
    let log = std::fs::read_to_string(cluster.log_path("svcplane")).unwrap_or_default();
    assert!(
        log.lines().any(|line| line.contains("kind=Pod")
            && line.contains("The resourceVersion for the provided watch is too old")),
        "svcplane's log shows no 410 on its Pod watch:\n{}",
        tail(&cluster.log_path("svcplane"))
    );
    // Broken connections and refused watches are told in words, not in Rust's Debug syntax.
    let debug = log
        .lines()
        .find(|line| line.contains(" { ") || line.contains("Custom {"));
    assert_eq!(debug, None, "a log line in Debug syntax");
}
