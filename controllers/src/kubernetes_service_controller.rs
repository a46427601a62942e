//! The shell of the default `kubernetes` Service maintainer: ensures the system namespaces and
//! `default/kubernetes` exist, and keeps its Endpoints and EndpointSlice(s) listing the live
//! apiservers through the `lease`, `master-count` or `none` endpoint reconciler.
//!
//! Every decision is made by the pure planners in [`crate::kubernetes_service`]; this module only
//! reads, writes and waits. Upstream keeps apiserver leases in etcd under `/masterleases/`; here a
//! lease is a `coordination.k8s.io/v1` Lease in `--lease-namespace` (default `kube-system`), named
//! `svcplane-apiserver-<ip>`, labelled `svcplane.io/apiserver-endpoint=true`, with the apiserver's IPs
//! in the annotation `svcplane.io/apiserver-ips` and its TTL as `leaseDurationSeconds` (15 s).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::api::core::v1::{EndpointPort, Endpoints, Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::watcher;
use kuberun::Shutdown;
use tokio::sync::Notify;

use crate::kubernetes_service::{
    self as planner, ApiServerEndpoints, ApiServerWrite, EndpointsTarget, KubernetesServiceError,
    Lease, ReconcilerType, SERVICE_NAME, SERVICE_NAMESPACE,
};
use crate::leader_election::WriteGate;

/// The label that marks apiserver endpoint leases.
pub const LEASE_LABEL: &str = "svcplane.io/apiserver-endpoint";
/// The annotation that carries a lease's apiserver IPs, primary first.
pub const LEASE_IPS_ANNOTATION: &str = "svcplane.io/apiserver-ips";

/// Settings, named after kube-apiserver's flags.
#[derive(Debug, Clone)]
pub struct KubernetesServiceConfig {
    /// `--service-cluster-ip-range`: one range, or two for dual stack.
    pub service_cluster_ip_ranges: Vec<IpNet>,
    /// `--advertise-address` (plus the second family's address for dual stack).
    pub advertise_addresses: Vec<IpAddr>,
    /// `--secure-port`: the Service's targetPort.
    pub secure_port: i32,
    /// `--kubernetes-service-node-port` (0: ClusterIP).
    pub node_port: i32,
    /// `--endpoint-reconciler-type` with `--apiserver-count`.
    pub reconciler: ReconcilerType,
    /// How often to reconcile (10 s upstream).
    pub interval: Duration,
    /// Where apiserver leases live.
    pub lease_namespace: String,
    /// Whether to create the system namespaces (`default`, `kube-system`, `kube-public`, `kube-node-lease`).
    pub ensure_system_namespaces: bool,
    /// Writes only while this replica holds the leader lease (in `svcplane controller-manager`).
    pub write_gate: WriteGate,
}

impl Default for KubernetesServiceConfig {
    fn default() -> Self {
        Self {
            service_cluster_ip_ranges: vec![IpNet::V4(
                "10.96.0.0/12".parse().expect("constant CIDR"),
            )],
            advertise_addresses: vec![IpAddr::from([127, 0, 0, 1])],
            secure_port: planner::DEFAULT_SECURE_PORT,
            node_port: 0,
            reconciler: ReconcilerType::Lease,
            interval: planner::RECONCILE_INTERVAL,
            lease_namespace: "kube-system".to_string(),
            ensure_system_namespaces: true,
            write_gate: WriteGate::always(),
        }
    }
}

/// Why the maintainer could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum MaintainerError {
    /// A planner rejected the configuration or the state.
    #[error(transparent)]
    Plan(#[from] KubernetesServiceError),
    /// The API answered with an error.
    #[error("{what}: {}", gocompat::api_error_text(source))]
    Api {
        what: &'static str,
        source: kube::Error,
    },
    /// No advertise address was configured.
    #[error("no advertise address configured")]
    NoAdvertiseAddress,
}

fn api_err(what: &'static str) -> impl FnOnce(kube::Error) -> MaintainerError {
    move |source| MaintainerError::Api { what, source }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The maintainer's fixed inputs, derived once from the config.
struct Plan {
    service: Service,
    target: EndpointsTarget,
}

fn plan_from(config: &KubernetesServiceConfig) -> Result<Plan, MaintainerError> {
    let primary = config
        .service_cluster_ip_ranges
        .first()
        .ok_or(MaintainerError::NoAdvertiseAddress)?;
    let primary_ip = planner::first_usable_ip(primary)?;
    let secondary_ip = match config.service_cluster_ip_ranges.get(1) {
        Some(r) => Some(planner::first_usable_ip(r)?),
        None => None,
    };
    let (ports, service_type) =
        planner::kubernetes_service_ports(config.secure_port, Some(config.node_port));
    let endpoint_ports = vec![EndpointPort {
        name: Some(planner::SERVICE_PORT_NAME.to_string()),
        port: config.secure_port,
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }];
    Ok(Plan {
        service: planner::desired_service(primary_ip, ports, service_type),
        target: EndpointsTarget {
            primary_service_ip: primary_ip,
            secondary_service_ip: secondary_ip,
            ports: endpoint_ports,
        },
    })
}

/// Runs until `shutdown`; then removes this apiserver from the endpoints first, so the last one
/// to stop does not stay listed (kubernetes#115804).
pub async fn run(
    client: kube::Client,
    config: KubernetesServiceConfig,
    shutdown: Shutdown,
) -> Result<(), MaintainerError> {
    if config.advertise_addresses.is_empty() {
        return Err(MaintainerError::NoAdvertiseAddress);
    }
    let plan = plan_from(&config)?;
    let maintainer = Maintainer {
        client: client.clone(),
        config,
        plan,
    };

    // Clean up after an unclean shutdown: our lease may still be listed.
    match maintainer.remove_endpoints().await {
        Ok(true) => tracing::error!(
            "Found stale data, removed previous endpoints on kubernetes service, apiserver didn't exit successfully previously"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "removing stale endpoints at start-up"),
    }

    // Deleting the Service wakes the loop at once instead of waiting for the interval.
    let deleted = Arc::new(Notify::new());
    let watch_deletions = {
        let deleted = deleted.clone();
        kuberun::watch_events(
            Api::<Service>::namespaced(client, SERVICE_NAMESPACE),
            watcher::Config::default().fields(&format!("metadata.name={SERVICE_NAME}")),
            shutdown.clone(),
            move |event| {
                if let watcher::Event::Delete(_) = event {
                    deleted.notify_one();
                }
            },
        )
    };
    let reconcile_loop = async {
        let mut ticker = tokio::time::interval(maintainer.config.interval);
        let mut stop = std::pin::pin!(shutdown.wait());
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                _ = ticker.tick() => {}
                () = deleted.notified() => {}
            }
            if let Err(e) = maintainer.reconcile_once().await {
                tracing::warn!(error = %e, "kubernetes service reconcile failed");
            }
        }
    };
    // Both end on the same shutdown token.
    tokio::join!(watch_deletions, reconcile_loop);
    match tokio::time::timeout(
        2 * maintainer.config.interval,
        maintainer.remove_endpoints(),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tracing::error!("RemoveEndpoints() timed out");
            Ok(())
        }
    }
}

struct Maintainer {
    client: kube::Client,
    config: KubernetesServiceConfig,
    plan: Plan,
}

impl Maintainer {
    /// One pass: namespaces, the Service, then the endpoints.
    async fn reconcile_once(&self) -> Result<(), MaintainerError> {
        if !self.config.write_gate.allows_writes() {
            return Ok(());
        }
        if self.config.ensure_system_namespaces {
            self.ensure_namespaces().await?;
        }
        self.ensure_service().await?;
        let current = self.current_endpoints().await?;
        let writes = match &self.config.reconciler {
            ReconcilerType::None => Vec::new(),
            ReconcilerType::Lease => {
                let leases = self.leases().await?;
                planner::lease_reconcile(
                    &self.config.advertise_addresses,
                    &leases,
                    jiff::Timestamp::now(),
                    &self.plan.target,
                    false,
                    &current,
                )?
            }
            ReconcilerType::MasterCount(count) => planner::master_count_reconcile(
                self.config.advertise_addresses[0],
                *count,
                &self.plan.target,
                false,
                &current,
            ),
        };
        self.write(writes).await
    }

    /// Removes this apiserver from the endpoints; `Ok(true)` when there was something to remove.
    async fn remove_endpoints(&self) -> Result<bool, MaintainerError> {
        if !self.config.write_gate.allows_writes() {
            return Ok(false);
        }
        let current = self.current_endpoints().await?;
        let writes = match &self.config.reconciler {
            ReconcilerType::None => return Ok(false),
            ReconcilerType::Lease => {
                let leases = self.leases().await?;
                match planner::lease_remove(
                    &self.config.advertise_addresses,
                    &leases,
                    jiff::Timestamp::now(),
                    &self.plan.target,
                    &current,
                ) {
                    Ok(w) => w,
                    Err(KubernetesServiceError::LeaseNotFound { .. }) => return Ok(false),
                    Err(e) => return Err(e.into()),
                }
            }
            ReconcilerType::MasterCount(_) => planner::master_count_remove(
                self.config.advertise_addresses[0],
                &self.plan.target,
                &current,
            ),
        };
        let changed = !writes.is_empty();
        self.write(writes).await?;
        Ok(changed)
    }

    async fn ensure_namespaces(&self) -> Result<(), MaintainerError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let existing: Vec<String> = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(api_err("listing namespaces"))?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        for ns in planner::missing_system_namespaces(&existing) {
            match api.create(&crate::runtime::write_params(), &ns).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 409) => {}
                Err(e) => {
                    tracing::error!(error = %gocompat::api_error_text(&e), "Unable to create required kubernetes system namespace")
                }
            }
        }
        Ok(())
    }

    async fn ensure_service(&self) -> Result<(), MaintainerError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), SERVICE_NAMESPACE);
        let existing = api
            .get_opt(SERVICE_NAME)
            .await
            .map_err(api_err("reading the kubernetes service"))?;
        match planner::plan_service(existing.as_ref(), &self.plan.service, false) {
            planner::ServiceAction::NoOp => Ok(()),
            planner::ServiceAction::Create(svc) => {
                match api.create(&crate::runtime::write_params(), &svc).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_status(&e, 409) => Ok(()),
                    Err(e) => Err(api_err("creating the kubernetes service")(e)),
                }
            }
            planner::ServiceAction::Update(svc) => {
                api.replace(SERVICE_NAME, &crate::runtime::write_params(), &svc)
                    .await
                    .map_err(api_err("updating the kubernetes service"))?;
                Ok(())
            }
        }
    }

    async fn current_endpoints(&self) -> Result<ApiServerEndpoints, MaintainerError> {
        let endpoints: Api<Endpoints> = Api::namespaced(self.client.clone(), SERVICE_NAMESPACE);
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), SERVICE_NAMESPACE);
        let endpoints = endpoints
            .get_opt(SERVICE_NAME)
            .await
            .map_err(api_err("reading the kubernetes endpoints"))?;
        let slices = slices
            .list(
                &ListParams::default()
                    .labels(&format!("{}={SERVICE_NAME}", planner::SERVICE_NAME_LABEL)),
            )
            .await
            .map_err(api_err("listing the kubernetes endpointslices"))?
            .items;
        Ok(ApiServerEndpoints { endpoints, slices })
    }

    fn lease_api(&self) -> Api<LeaseObject> {
        Api::namespaced(self.client.clone(), &self.config.lease_namespace)
    }

    async fn leases(&self) -> Result<Vec<Lease>, MaintainerError> {
        let objects = self
            .lease_api()
            .list(&ListParams::default().labels(&format!("{LEASE_LABEL}=true")))
            .await
            .map_err(api_err("listing apiserver leases"))?
            .items;
        Ok(objects.iter().filter_map(lease_from_object).collect())
    }

    async fn write(&self, writes: Vec<ApiServerWrite>) -> Result<(), MaintainerError> {
        let endpoints: Api<Endpoints> = Api::namespaced(self.client.clone(), SERVICE_NAMESPACE);
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), SERVICE_NAMESPACE);
        let pp = crate::runtime::write_params();
        for w in writes {
            let result = match w {
                ApiServerWrite::PutLease(lease) => self.put_lease(&lease).await,
                ApiServerWrite::DeleteLease(ip) => {
                    match self
                        .lease_api()
                        .delete(&lease_name(ip), &DeleteParams::default())
                        .await
                    {
                        Err(e) if !is_status(&e, 404) => Err(e),
                        _ => Ok(()),
                    }
                }
                ApiServerWrite::CreateEndpoints(e) => endpoints.create(&pp, &e).await.map(drop),
                ApiServerWrite::UpdateEndpoints(e) => {
                    endpoints.replace(SERVICE_NAME, &pp, &e).await.map(drop)
                }
                ApiServerWrite::CreateEndpointSlice(s) => slices.create(&pp, &s).await.map(drop),
                ApiServerWrite::UpdateEndpointSlice(s) => {
                    let name = s.metadata.name.clone().unwrap_or_default();
                    slices.replace(&name, &pp, &s).await.map(drop)
                }
                ApiServerWrite::DeleteEndpointSlice(name) => {
                    match slices.delete(&name, &DeleteParams::default()).await {
                        Err(e) if !is_status(&e, 404) => Err(e),
                        _ => Ok(()),
                    }
                }
            };
            // Conflicts and already-exists are settled by the next pass, as upstream retries them.
            match result {
                Ok(()) => {}
                Err(e) if is_status(&e, 409) => {
                    tracing::debug!(error = %gocompat::api_error_text(&e), "kubernetes endpoints write raced; retrying next pass")
                }
                Err(e) => return Err(api_err("writing the kubernetes endpoints")(e)),
            }
        }
        Ok(())
    }

    async fn put_lease(&self, lease: &Lease) -> Result<(), kube::Error> {
        let Some(key) = lease.key() else {
            return Ok(());
        };
        let name = lease_name(key);
        let ips: Vec<String> = lease.ips.iter().map(IpAddr::to_string).collect();
        let object = LeaseObject {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(LEASE_LABEL.to_string(), "true".to_string())].into()),
                annotations: Some([(LEASE_IPS_ANNOTATION.to_string(), ips.join(","))].into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(ips.join(",")),
                lease_duration_seconds: Some(planner::LEASE_TTL.as_secs() as i32),
                renew_time: Some(MicroTime(lease.renew_time)),
                ..Default::default()
            }),
        };
        let api = self.lease_api();
        match api.get_opt(&name).await? {
            None => api
                .create(&crate::runtime::write_params(), &object)
                .await
                .map(drop),
            Some(existing) => {
                let mut updated = object;
                updated.metadata.resource_version = existing.metadata.resource_version;
                api.replace(&name, &crate::runtime::write_params(), &updated)
                    .await
                    .map(drop)
            }
        }
    }
}

/// `svcplane-apiserver-<ip>` with `.`/`:` made DNS-safe.
pub fn lease_name(ip: IpAddr) -> String {
    let safe: String = ip
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("svcplane-apiserver-{}", safe.trim_matches('-'))
}

/// Reads a planner lease from a Lease object; unreadable ones are ignored.
pub fn lease_from_object(object: &LeaseObject) -> Option<Lease> {
    let ips: Vec<IpAddr> = object
        .metadata
        .annotations
        .as_ref()?
        .get(LEASE_IPS_ANNOTATION)?
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if ips.is_empty() {
        return None;
    }
    let renew_time = object.spec.as_ref()?.renew_time.as_ref()?.0;
    Some(Lease { ips, renew_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_dns_safe_and_round_trip_their_ips() {
        assert_eq!(
            lease_name("10.0.0.5".parse().unwrap()),
            "svcplane-apiserver-10-0-0-5"
        );
        assert_eq!(
            lease_name("fd00::1".parse().unwrap()),
            "svcplane-apiserver-fd00--1"
        );
        let object = LeaseObject {
            metadata: ObjectMeta {
                annotations: Some(
                    [(
                        LEASE_IPS_ANNOTATION.to_string(),
                        "10.0.0.5,fd00::5".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(100).unwrap())),
                ..Default::default()
            }),
        };
        let lease = lease_from_object(&object).unwrap();
        assert_eq!(lease.ips.len(), 2);
        assert_eq!(lease.key(), Some("10.0.0.5".parse().unwrap()));
    }

    #[test]
    fn the_service_takes_the_first_address_of_the_range() {
        let config = KubernetesServiceConfig::default();
        let plan = plan_from(&config).unwrap();
        let spec = plan.service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let small = KubernetesServiceConfig {
            service_cluster_ip_ranges: vec!["10.0.0.0/30".parse().unwrap()],
            ..Default::default()
        };
        assert!(matches!(
            plan_from(&small),
            Err(MaintainerError::Plan(KubernetesServiceError::RangeTooSmall))
        ));
    }
}
