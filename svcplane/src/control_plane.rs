//! svcplane's parts as [`Component`]s: the allocator registry, the admission webhook and each
//! controller. `svcplane up` lists them one by one; each start returns once the part is ready
//! (caches synced, server listening, configurations installed).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use allocator::registry::{AllocationMode, RegistryConfig, ServiceRegistry};
use allocator::{PortRange, ServiceClusterIpRanges};
use controllers::allocation_repair::{AllocationRepair, RepairConfig, RepairMetrics};
use controllers::deployment_controller::{DeploymentController, DeploymentControllerConfig};
use controllers::endpoints_controller::{EndpointsController, EndpointsControllerConfig};
use controllers::endpointslice_controller::{
    EndpointSliceController, EndpointSliceControllerConfig,
};
use controllers::kubernetes_service_controller::{
    self as kubernetes_service, KubernetesServiceConfig,
};
use controllers::loadbalancer_controller::{LoadBalancerController, LoadBalancerControllerConfig};
use controllers::mirroring_controller::{MirroringController, MirroringControllerConfig};
use controllers::replicaset_controller::{ReplicaSetController, ReplicaSetControllerConfig};
use controllers::runtime::CacheSyncSignal;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::Api;
use kube::api::PostParams;
use prometheus_client::registry::Registry;
use testenv::admission::in_process::{InProcessAdmission, ReviewFuture};
use webhook::admission_review::{AdmissionResponse, AdmissionReview};
use webhook::server::install::uninstall_configurations;
use webhook::server::tls::generate_certificates;
use webhook::server::{
    AdmissionHandler, AdmissionPolicy, CertificateSource, Phase, ServiceClusterIpIndex,
    WebhookConfig, WebhookServer, WebhookTarget, install_configurations,
};

use crate::component::{Component, Shutdown};

/// How long a controller may take to sync its caches before its start counts as failed.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `signal` is set; fails after [`SYNC_TIMEOUT`] or when the task ended first.
pub async fn wait_for_sync(
    name: &str,
    signal: &CacheSyncSignal,
    task: &tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
    while !signal.is_synced() {
        if task.is_finished() {
            anyhow::bail!("{name} stopped before its caches synced");
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{name}: caches not synced after {}s",
                SYNC_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The allocator registry of record, handed from its component to the webhook's.
pub type SharedRegistry = Arc<OnceLock<ServiceRegistry>>;

/// Starts the authoritative (or audit) allocator registry and publishes it in `slot`.
pub fn allocator_registry(config: RegistryConfig, slot: SharedRegistry) -> Component {
    Component::new("allocator-registry", move |client, shutdown| async move {
        let registry = ServiceRegistry::start(client, config).await?;
        if slot.set(registry.clone()).is_err() {
            anyhow::bail!("the allocator registry was started twice");
        }
        Ok(tokio::spawn(async move {
            shutdown.wait().await;
            registry.stop();
            Ok(())
        }))
    })
}

/// The admission webhook on loopback for a real kube-apiserver beside `svcplane up`: a fresh
/// CA and serving certificate, the registry of `slot` as allocator, and both webhook
/// configurations installed with the CA bundle (they go with etcd's data when the control plane
/// is removed at exit).
pub fn embedded_webhook(
    bind: SocketAddr,
    ranges: ServiceClusterIpRanges,
    node_ports: PortRange,
    slot: SharedRegistry,
) -> Component {
    Component::new("webhook", move |client, shutdown| async move {
        let registry = slot
            .get()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the webhook needs the allocator registry first"))?;
        let (ca, cert, key) =
            generate_certificates(&[bind.ip().to_string(), "localhost".to_string()])?;
        let policy = AdmissionPolicy {
            ranges: crate::flags::validation_ranges(&ranges, node_ports),
            ..AdmissionPolicy::default()
        };
        let mut config = WebhookConfig::new(bind, CertificateSource::Pem { cert, key }, policy);
        config.allocator = Some(Arc::new(registry.clone()));
        config.services = Some(Arc::new(ServiceClusterIpIndex::start(client.clone())));
        let handle = WebhookServer::start(config).await?;
        let target = WebhookTarget::Url(format!("https://{}", handle.addr()));
        install_configurations(client.clone(), ca.as_bytes(), &target).await?;
        tracing::info!(url = %handle.url(""), "webhook configurations installed");
        readmit_kubernetes_service(&client, &registry).await?;
        Ok(tokio::spawn(async move {
            shutdown.wait().await;
            handle.shutdown().await;
            Ok(())
        }))
    })
}

/// The webhook's admission run inside the embedded API server, as kube-apiserver's registry
/// allocates and validates its own kinds: the same handlers answer the same AdmissionReviews,
/// but a refused Service gets the API's own 422 (`Service "x" is invalid: ...`), not one
/// prefixed with a webhook's name, and nothing depends on a loopback HTTPS port. Webhook
/// configurations left by an older `--data-dir` playground are removed.
pub fn in_process_admission(
    server: Arc<testenv::ApiServer>,
    ranges: ServiceClusterIpRanges,
    node_ports: PortRange,
    apiserver_addresses: Vec<std::net::IpAddr>,
    slot: SharedRegistry,
) -> Component {
    Component::new("admission", move |client, shutdown| async move {
        let registry = slot
            .get()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("admission needs the allocator registry first"))?;
        let policy = AdmissionPolicy {
            ranges: crate::flags::validation_ranges(&ranges, node_ports),
            apiserver_addresses,
            ..AdmissionPolicy::default()
        };
        let handler = AdmissionHandler::new(
            policy,
            Some(Arc::new(registry.clone())),
            Some(Arc::new(ServiceClusterIpIndex::start(client.clone()))),
        );
        let step: Arc<dyn InProcessAdmission> = Arc::new(RegistryAdmission(handler));
        let chain = server.admission();
        for (group, plural) in [
            ("", "services"),
            ("", "endpoints"),
            ("", "pods"),
            ("discovery.k8s.io", "endpointslices"),
        ] {
            chain.register_in_process(group, plural, step.clone());
        }
        // Status writes of Services: kube-apiserver's registry validates the load balancer's.
        chain.register_in_process_subresource("", "services", "status", step.clone());
        uninstall_configurations(client.clone()).await?;
        readmit_kubernetes_service(&client, &registry).await?;
        Ok(tokio::spawn(async move {
            shutdown.wait().await;
            Ok(())
        }))
    })
}

/// The webhook's handlers as an in-process admission step.
struct RegistryAdmission(AdmissionHandler);

impl InProcessAdmission for RegistryAdmission {
    fn review(&self, mutating: bool, review: serde_json::Value) -> ReviewFuture {
        let handler = self.0.clone();
        Box::pin(async move {
            let phase = if mutating {
                Phase::Mutate
            } else {
                Phase::Validate
            };
            let body = serde_json::to_vec(&review).unwrap_or_default();
            let response = match handler.review(phase, &body).await {
                Ok(answer) => answer.response,
                // testenv built the review; one it cannot decode is answered as a webhook
                // would answer it, so the client sees why.
                Err(e) => AdmissionResponse::deny(
                    review["request"]["uid"].as_str().unwrap_or_default(),
                    webhook::server::admission::bad_request(&e.to_string()),
                ),
            };
            serde_json::from_slice(&AdmissionReview::answer(response).to_json()).unwrap_or_default()
        })
    }
}

/// Sends the `kubernetes` Service, created before the webhook was installed, through allocation
/// and admission once, as kube-apiserver's create would have: its ClusterIP is claimed (an
/// IPAddress naming the Service, so the repair loop does not find it in use but unallocated)
/// and the mutating webhook defaults `clusterIPs` and `ipFamilies`.
async fn readmit_kubernetes_service(
    client: &kube::Client,
    allocator: &ServiceRegistry,
) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let Some(service) = services.get_opt("kubernetes").await? else {
        return Ok(());
    };
    if service
        .spec
        .as_ref()
        .is_none_or(|s| s.cluster_ips.is_some())
    {
        // Admitted on an earlier start (a `--data-dir` playground).
        return Ok(());
    }
    let admitted = match allocator.allocate_for_create(&service).await {
        Ok(allocated) => allocated.service,
        Err(error) => {
            // Already held (e.g. repaired on an earlier start): admission still defaults it.
            tracing::warn!(%error, "the kubernetes Service's ClusterIP was not claimed");
            service
        }
    };
    services
        .replace("kubernetes", &PostParams::default(), &admitted)
        .await?;
    Ok(())
}

/// The `kubernetes` Service maintainer. With `wait_until_listed`, its start returns only once
/// the `kubernetes` Endpoints list the first advertise address, so that this first write,
/// like kube-apiserver's own bootstrap, happens before admission webhooks are installed.
pub fn kubernetes_service(config: KubernetesServiceConfig, wait_until_listed: bool) -> Component {
    Component::new("kubernetes-service", move |client, shutdown| async move {
        let listed = config.advertise_addresses.first().map(ToString::to_string);
        let task_client = client.clone();
        let task = tokio::spawn(async move {
            kubernetes_service::run(task_client, config, shutdown)
                .await
                .map_err(Into::into)
        });
        if let (true, Some(ip)) = (wait_until_listed, listed) {
            let endpoints: Api<Endpoints> = Api::namespaced(client, "default");
            let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
            loop {
                let current = endpoints.get_opt("kubernetes").await?;
                let addresses = current
                    .iter()
                    .flat_map(|e| e.subsets.iter().flatten())
                    .flat_map(|s| s.addresses.iter().flatten());
                if addresses.into_iter().any(|a| a.ip == ip) {
                    break;
                }
                if task.is_finished() || tokio::time::Instant::now() >= deadline {
                    anyhow::bail!("the kubernetes Endpoints do not list {ip}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(task)
    })
}

/// Spawns a controller's run future and waits for its caches.
async fn start_synced<F>(
    name: &'static str,
    signal: CacheSyncSignal,
    run: F,
) -> anyhow::Result<crate::component::Running>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let task = tokio::spawn(run);
    wait_for_sync(name, &signal, &task).await?;
    Ok(task)
}

/// The EndpointSlice controller; its metrics go to `registry`.
pub fn endpointslice(
    config: EndpointSliceControllerConfig,
    registry: Arc<std::sync::Mutex<Registry>>,
) -> Component {
    Component::new("endpointslice", move |client, shutdown| async move {
        let signal = config.caches_synced.clone();
        let controller = {
            let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
            EndpointSliceController::new(client, config, &mut registry)?
        };
        start_synced("endpointslice", signal, async move {
            controller.run(shutdown).await;
            Ok(())
        })
        .await
    })
}

/// The Endpoints controller.
pub fn endpoints(config: EndpointsControllerConfig) -> Component {
    Component::new("endpoint", move |client, shutdown: Shutdown| async move {
        let signal = config.caches_synced.clone();
        let controller = EndpointsController::new(client, config);
        start_synced("endpoint", signal, async move {
            controller.run(shutdown).await;
            Ok(())
        })
        .await
    })
}

/// The ReplicaSet controller (the playground on testenv; kube-controller-manager runs upstream's
/// beside a real kube-apiserver).
pub fn replicaset(config: ReplicaSetControllerConfig) -> Component {
    Component::new("replicaset", move |client, shutdown| async move {
        let signal = config.caches_synced.clone();
        let controller = ReplicaSetController::new(client, config);
        start_synced("replicaset", signal, async move {
            controller.run(shutdown).await;
            Ok(())
        })
        .await
    })
}

/// The Deployment controller (the playground on testenv, as the ReplicaSet controller).
pub fn deployment(config: DeploymentControllerConfig) -> Component {
    Component::new("deployment", move |client, shutdown| async move {
        let signal = config.caches_synced.clone();
        let controller = DeploymentController::new(client, config);
        start_synced("deployment", signal, async move {
            controller.run(shutdown).await;
            Ok(())
        })
        .await
    })
}

/// The LoadBalancer IP controller: `status.loadBalancer.ingress` from its pool.
pub fn load_balancer(config: LoadBalancerControllerConfig) -> Component {
    Component::new("loadbalancer", move |client, shutdown| async move {
        let signal = config.caches_synced.clone();
        let controller = LoadBalancerController::new(client, config)?;
        start_synced("loadbalancer", signal, async move {
            controller.run(shutdown).await;
            Ok(())
        })
        .await
    })
}

/// The EndpointSlice-mirroring controller.
pub fn mirroring(config: MirroringControllerConfig) -> Component {
    Component::new(
        "endpointslicemirroring",
        move |client, shutdown| async move {
            let signal = config.caches_synced.clone();
            let controller = MirroringController::new(client, config);
            start_synced("endpointslicemirroring", signal, async move {
                controller.run(shutdown).await;
                Ok(())
            })
            .await
        },
    )
}

/// The allocation release-and-repair controller.
pub fn allocation_repair(config: RepairConfig, metrics: RepairMetrics) -> Component {
    Component::new("allocation-repair", move |client, shutdown| async move {
        let signal = config.caches_synced.clone();
        let repair = AllocationRepair::new(client, config, metrics);
        start_synced("allocation-repair", signal, async move {
            repair.run(shutdown).await.map_err(Into::into)
        })
        .await
    })
}

/// A registry config for `mode` over the ranges.
pub fn registry_config(
    ranges: ServiceClusterIpRanges,
    node_ports: PortRange,
    mode: AllocationMode,
) -> RegistryConfig {
    RegistryConfig {
        mode,
        ..RegistryConfig::new(ranges, node_ports)
    }
}
