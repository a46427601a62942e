//! `ServiceRegistry`: claims ClusterIPs and NodePorts by creating their objects of record.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IPAddress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use kuberun::{ShutdownTrigger, shutdown_channel, store_reflector};

use crate::cluster_ip_plan::{
    ClusterIpPlan, IpRequest, held_cluster_ips, plan_cluster_ips_for_create,
    plan_cluster_ips_for_update,
};
use crate::error::AllocationError;
use crate::node_port::PortAllocator;
use crate::node_port_plan::{
    NodePortPlan, held_node_ports, needs_health_check, needs_node_ports, patch_allocated_values,
    plan_node_ports_for_create, plan_node_ports_for_update,
};
use crate::outcome::ServiceAllocationError;
use crate::port_range::PortRange;
use crate::registry::cache::ClaimCache;
use crate::registry::error::RegistryError;
use crate::registry::metrics::{AllocatorMetrics, Scope};
use crate::registry::objects::{
    NodePortAllocation, ServiceRef, crd, ip_address_claim, ip_address_parent, managed_by_svcplane,
    node_port_claim,
};
use crate::service_cidr::{IpFamily, ServiceClusterIpRanges};

const CLUSTER_IP_CONTEXT: &str = "failed to allocate a serviceIP";
const NODE_PORT_CONTEXT: &str = "failed to allocate a nodePort";
const RELEASE_CONTEXT: &str = "failed to release";
/// A NodePort plan is retried after each mid-air collision; every retry marks one more port
/// taken, so this only bounds a pathological stream of collisions.
const MAX_NODE_PORT_ROUNDS: usize = 64;

/// Who allocates: svcplane, or a kube-apiserver next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllocationMode {
    /// svcplane is the allocator (testenv, `svcplane up`, generic control planes): it writes
    /// IPAddress and NodePortAllocation objects and fills in ClusterIPs and NodePorts.
    #[default]
    Authoritative,
    /// A real kube-apiserver allocates: svcplane writes nothing, only checks requested values
    /// against its ranges; the repair loop reports what it finds.
    Audit,
}

/// What a registry serves.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `--service-cluster-ip-range`.
    pub ranges: ServiceClusterIpRanges,
    /// `--service-node-port-range`.
    pub node_ports: PortRange,
    /// Authoritative or audit.
    pub mode: AllocationMode,
    /// How long `start` waits for the CRD to be served and the caches to list.
    pub start_timeout: Duration,
}

impl RegistryConfig {
    /// An authoritative registry over `ranges` and `node_ports`, waiting up to 30 s to start.
    pub fn new(ranges: ServiceClusterIpRanges, node_ports: PortRange) -> Self {
        RegistryConfig {
            ranges,
            node_ports,
            mode: AllocationMode::Authoritative,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// A Service with its ClusterIPs and NodePorts filled in, and what the write changed.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocatedService {
    /// The Service to store.
    pub service: Service,
    /// Addresses claimed by this write.
    pub claimed_ips: Vec<IpAddr>,
    /// Ports claimed by this write.
    pub claimed_ports: Vec<i32>,
    /// Addresses the old object held that the new one drops (release once the write is stored).
    pub release_ips: Vec<IpAddr>,
    /// Ports the old object held that the new one drops.
    pub release_ports: Vec<i32>,
}

/// One object this operation created, for rollback.
#[derive(Debug, Clone)]
enum Created {
    Ip { ip: IpAddr, uid: Option<String> },
    Port { port: i32, uid: Option<String> },
}

struct Inner {
    config: RegistryConfig,
    ip_api: Api<IPAddress>,
    port_api: Api<NodePortAllocation>,
    cache: Arc<Mutex<ClaimCache>>,
    ip_store: Option<Store<IPAddress>>,
    port_store: Option<Store<NodePortAllocation>>,
    metrics: AllocatorMetrics,
    /// Stops the watches that keep the cache; dropped with the last handle, which stops
    /// them too.
    stop_watches: ShutdownTrigger,
}

/// The registry of record for ClusterIPs and NodePorts. Cloning shares one registry.
#[derive(Clone)]
pub struct ServiceRegistry {
    inner: Arc<Inner>,
}

fn lock(cache: &Mutex<ClaimCache>) -> MutexGuard<'_, ClaimCache> {
    // A panic while holding the lock leaves a cache that is still a valid hint.
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

impl ServiceRegistry {
    /// Starts a registry: installs the NodePortAllocation CRD if absent (authoritative mode),
    /// starts the watches that feed the cache and waits until they have listed.
    pub async fn start(client: Client, config: RegistryConfig) -> Result<Self, RegistryError> {
        Self::start_with_metrics(client, config, AllocatorMetrics::default()).await
    }

    /// [`ServiceRegistry::start`] recording into `metrics`.
    pub async fn start_with_metrics(
        client: Client,
        config: RegistryConfig,
        metrics: AllocatorMetrics,
    ) -> Result<Self, RegistryError> {
        let ip_api: Api<IPAddress> = Api::all(client.clone());
        let port_api: Api<NodePortAllocation> = Api::all(client.clone());
        let cache = Arc::new(Mutex::new(ClaimCache::new(
            &config.ranges,
            config.node_ports,
        )));
        let (stop_watches, shutdown) = shutdown_channel();
        let (mut ip_store, mut port_store) = (None, None);
        if config.mode == AllocationMode::Authoritative {
            install_crd(&client, &port_api, config.start_timeout).await?;
            let (c, m) = (cache.clone(), metrics.clone());
            let (store, keep) = store_reflector(
                ip_api.clone(),
                watcher::Config::default(),
                shutdown.clone(),
                move |event| {
                    let mut cache = lock(&c);
                    cache.apply_ip_event(event);
                    m.observe(cache.ip_allocators(), cache.port_allocator());
                },
            );
            tokio::spawn(keep);
            ip_store = Some(store);

            let (c, m) = (cache.clone(), metrics.clone());
            let (store, keep) = store_reflector(
                port_api.clone(),
                watcher::Config::default(),
                shutdown,
                move |event| {
                    let mut cache = lock(&c);
                    cache.apply_port_event(event);
                    m.observe(cache.ip_allocators(), cache.port_allocator());
                },
            );
            tokio::spawn(keep);
            port_store = Some(store);
        }
        let registry = ServiceRegistry {
            inner: Arc::new(Inner {
                config,
                ip_api,
                port_api,
                cache,
                ip_store,
                port_store,
                metrics,
                stop_watches,
            }),
        };
        if registry.inner.config.mode == AllocationMode::Authoritative {
            let deadline = tokio::time::Instant::now() + registry.inner.config.start_timeout;
            while !lock(&registry.inner.cache).is_synced() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(RegistryError::NotReady);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(registry)
    }

    /// Stops the watches that keep the cache (at process shutdown); the registry still
    /// answers from what it last saw. Dropping the last handle does the same.
    pub fn stop(&self) {
        self.inner.stop_watches.fire();
    }

    /// The configuration the registry serves.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// The metrics this registry records.
    pub fn metrics(&self) -> &AllocatorMetrics {
        &self.inner.metrics
    }

    /// The IPAddress objects as last watched (authoritative mode only).
    pub fn ip_addresses(&self) -> Vec<Arc<IPAddress>> {
        self.inner
            .ip_store
            .as_ref()
            .map(Store::state)
            .unwrap_or_default()
    }

    /// The NodePortAllocation objects as last watched (authoritative mode only).
    pub fn node_port_allocations(&self) -> Vec<Arc<NodePortAllocation>> {
        self.inner
            .port_store
            .as_ref()
            .map(Store::state)
            .unwrap_or_default()
    }

    /// Whether the cache holds `ip` (claimed here or seen through the watch).
    pub fn cache_holds_ip(&self, ip: IpAddr) -> bool {
        lock(&self.inner.cache)
            .ip_allocators()
            .iter()
            .any(|a| a.contains(ip))
    }

    /// Fills in the ClusterIPs and NodePorts of a Service being created and claims them; on
    /// any failure the claims made so far are deleted again. In audit mode only the requested
    /// values are checked against the ranges and the Service is returned unchanged.
    pub async fn allocate_for_create(
        &self,
        service: &Service,
    ) -> Result<AllocatedService, RegistryError> {
        let ip_plan = plan_cluster_ips_for_create(service, &self.inner.config.ranges)?;
        if self.inner.config.mode == AllocationMode::Audit {
            self.audit(service, &ip_plan)?;
            return Ok(unchanged(service));
        }
        let parent = ServiceRef::of(service);
        let mut created = Vec::new();
        let result = self
            .claim(service, None, &ip_plan, &parent, &mut created)
            .await;
        if result.is_err() {
            self.rollback(&created).await;
        }
        result
    }

    /// Allocates what an update adds (new families, NodePorts, the health-check port) after
    /// upstream's `patchAllocatedValues`; what `old` held and `new` drops is returned in
    /// `release_*` for [`ServiceRegistry::release_values`] once the update is stored.
    pub async fn allocate_for_update(
        &self,
        old: &Service,
        new: &Service,
    ) -> Result<AllocatedService, RegistryError> {
        let mut new = new.clone();
        patch_allocated_values(old, &mut new);
        let ip_plan = plan_cluster_ips_for_update(old, &new, &self.inner.config.ranges)?;
        if self.inner.config.mode == AllocationMode::Audit {
            self.audit(&new, &ip_plan)?;
            return Ok(unchanged(&new));
        }
        let mut parent = ServiceRef::of(&new);
        if parent.uid.is_none() {
            parent.uid = old.metadata.uid.clone();
        }
        let mut created = Vec::new();
        let result = self
            .claim(&new, Some(old), &ip_plan, &parent, &mut created)
            .await;
        if result.is_err() {
            self.rollback(&created).await;
        }
        result
    }

    /// Deletes the claims of every ClusterIP and NodePort `service` holds.
    pub async fn release(&self, service: &Service) -> Result<(), RegistryError> {
        self.release_values(
            &ServiceRef::of(service),
            &held_cluster_ips(service),
            &held_node_ports(service),
        )
        .await
    }

    /// Deletes the claims of `ips` and `ports` that `parent` holds; claims held by another
    /// parent or by another manager are left alone, and each delete carries the uid it saw so
    /// that a claim re-made in between is never freed.
    pub async fn release_values(
        &self,
        parent: &ServiceRef,
        ips: &[IpAddr],
        ports: &[i32],
    ) -> Result<(), RegistryError> {
        if self.inner.config.mode == AllocationMode::Audit {
            return Ok(());
        }
        for ip in ips {
            let name = ip.to_string();
            let found = match self.inner.ip_api.get_opt(&name).await {
                Ok(found) => found,
                Err(source) => return Err(api_error(RELEASE_CONTEXT, source)),
            };
            let Some(obj) = found else { continue };
            let ours = managed_by_svcplane(&obj)
                && ip_address_parent(&obj) == Some((parent.namespace.clone(), parent.name.clone()));
            if ours {
                self.delete_ip(*ip, obj.metadata.uid.clone()).await?;
            }
        }
        for port in ports {
            let found = match self.inner.port_api.get_opt(&port.to_string()).await {
                Ok(found) => found,
                Err(source) => return Err(api_error(RELEASE_CONTEXT, source)),
            };
            let Some(obj) = found else { continue };
            let held = &obj.spec.parent_ref;
            let uid_matches = match (&held.uid, &parent.uid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if held.namespace == parent.namespace && held.name == parent.name && uid_matches {
                self.delete_port(*port, obj.metadata.uid.clone()).await?;
            }
        }
        Ok(())
    }

    async fn delete_ip(&self, ip: IpAddr, uid: Option<String>) -> Result<(), RegistryError> {
        match self
            .inner
            .ip_api
            .delete(&ip.to_string(), &precondition(uid))
            .await
        {
            Ok(_) => {
                lock(&self.inner.cache).unmark_ip(ip);
                Ok(())
            }
            Err(e) if is_not_found(&e) || is_already_exists(&e) => Ok(()),
            Err(source) => Err(api_error(RELEASE_CONTEXT, source)),
        }
    }

    async fn delete_port(&self, port: i32, uid: Option<String>) -> Result<(), RegistryError> {
        match self
            .inner
            .port_api
            .delete(&port.to_string(), &precondition(uid))
            .await
        {
            Ok(_) => {
                lock(&self.inner.cache).unmark_port(port);
                Ok(())
            }
            Err(e) if is_not_found(&e) || is_already_exists(&e) => Ok(()),
            Err(source) => Err(api_error(RELEASE_CONTEXT, source)),
        }
    }

    fn audit(&self, service: &Service, ip_plan: &ClusterIpPlan) -> Result<(), RegistryError> {
        let mut cache = lock(&self.inner.cache);
        for (family, request) in &ip_plan.requests {
            if let IpRequest::Static { ip, requested } = request {
                let in_range = cache
                    .ip_allocator(*family)
                    .is_some_and(|a| a.dry_run_allocate(*ip).is_ok());
                if !in_range {
                    return Err(ServiceAllocationError::ClusterIp {
                        cluster_ips: ip_plan.printed_cluster_ips.clone(),
                        requested: requested.clone(),
                        source: AllocationError::MismatchedNetwork,
                    }
                    .into());
                }
            }
        }
        let range = cache.ports().range();
        let not_in_range = || AllocationError::PortNotInRange {
            valid_ports: range.to_string(),
        };
        if needs_node_ports(service) {
            let ports = service
                .spec
                .as_ref()
                .and_then(|s| s.ports.clone())
                .unwrap_or_default();
            for (index, port) in ports.iter().enumerate() {
                let node_port = port.node_port.unwrap_or(0);
                if node_port != 0 && !range.contains(i64::from(node_port)) {
                    return Err(ServiceAllocationError::NodePort {
                        index,
                        node_port,
                        source: not_in_range(),
                    }
                    .into());
                }
            }
        }
        if needs_health_check(service)
            && let Some(port) = service.spec.as_ref().and_then(|s| s.health_check_node_port)
            && port != 0
            && !range.contains(i64::from(port))
        {
            return Err(ServiceAllocationError::HealthCheckRequested {
                port,
                source: not_in_range(),
            }
            .into());
        }
        Ok(())
    }

    async fn claim(
        &self,
        service: &Service,
        old: Option<&Service>,
        ip_plan: &ClusterIpPlan,
        parent: &ServiceRef,
        created: &mut Vec<Created>,
    ) -> Result<AllocatedService, RegistryError> {
        let old_ips = old.map(held_cluster_ips).unwrap_or_default();
        let mut ips = Vec::with_capacity(ip_plan.requests.len());
        let mut claimed_ips = Vec::new();
        for (family, request) in &ip_plan.requests {
            let ip = match request {
                IpRequest::Static { ip, .. } if old_ips.contains(ip) => *ip,
                IpRequest::Static { ip, requested } => {
                    let ip = self
                        .claim_static_ip(*family, *ip, requested, ip_plan, parent, created)
                        .await?;
                    claimed_ips.push(ip);
                    ip
                }
                IpRequest::Dynamic => {
                    let ip = self.claim_dynamic_ip(*family, parent, created).await?;
                    claimed_ips.push(ip);
                    ip
                }
            };
            ips.push(ip);
        }
        let requested_ports = requested_node_ports(service);
        let port_plan = match old {
            None => {
                self.claim_ports(parent, &requested_ports, created, |ports| {
                    plan_node_ports_for_create(service, ports, false)
                })
                .await?
            }
            Some(old) => {
                self.claim_ports(parent, &requested_ports, created, |ports| {
                    plan_node_ports_for_update(old, service, ports, false)
                })
                .await?
            }
        };
        let mut out = service.clone();
        ip_plan.apply_to(&mut out, &ips);
        port_plan.apply_to(&mut out);
        let release_ips = old_ips
            .iter()
            .filter(|ip| !ips.contains(ip))
            .copied()
            .collect();
        let release_ports = match old {
            Some(old) => {
                let kept: BTreeSet<i32> = held_node_ports(&out).into_iter().collect();
                let mut dropped: BTreeSet<i32> =
                    port_plan.release_on_commit.iter().copied().collect();
                dropped.extend(
                    held_node_ports(old)
                        .into_iter()
                        .filter(|p| !kept.contains(p)),
                );
                dropped.into_iter().collect()
            }
            None => Vec::new(),
        };
        Ok(AllocatedService {
            service: out,
            claimed_ips,
            claimed_ports: port_plan.claimed,
            release_ips,
            release_ports,
        })
    }

    async fn claim_static_ip(
        &self,
        family: IpFamily,
        ip: IpAddr,
        requested: &str,
        ip_plan: &ClusterIpPlan,
        parent: &ServiceRef,
        created: &mut Vec<Created>,
    ) -> Result<IpAddr, RegistryError> {
        let refusal = |source| ServiceAllocationError::ClusterIp {
            cluster_ips: ip_plan.printed_cluster_ips.clone(),
            requested: requested.to_string(),
            source,
        };
        let cidr = {
            let mut cache = lock(&self.inner.cache);
            let Some(allocator) = cache.ip_allocator(family) else {
                return Err(refusal(AllocationError::MismatchedNetwork).into());
            };
            let cidr = allocator.cidr().to_string();
            if allocator.dry_run_allocate(ip).is_err() {
                // The IPAddress allocator's MetaAllocator finds no range for the address.
                self.inner.metrics.ip_error(&cidr, Scope::Static);
                return Err(refusal(AllocationError::MismatchedNetwork).into());
            }
            // Upstream asks the API, not its cache, for a requested address.
            cache.mark_ip(ip);
            cache.begin_ip(ip);
            cidr
        };
        let result = self
            .inner
            .ip_api
            .create(&super::write_params(), &ip_address_claim(ip, parent))
            .await;
        let mut cache = lock(&self.inner.cache);
        cache.end_ip(ip);
        match result {
            Ok(obj) => {
                created.push(Created::Ip {
                    ip,
                    uid: obj.metadata.uid,
                });
                self.inner.metrics.ip_allocated_once(&cidr, Scope::Static);
                Ok(ip)
            }
            Err(e) if is_already_exists(&e) => {
                self.inner.metrics.ip_error(&cidr, Scope::Static);
                Err(refusal(AllocationError::IpAllocated).into())
            }
            Err(source) => {
                cache.unmark_ip(ip);
                self.inner.metrics.ip_error(&cidr, Scope::Static);
                Err(api_error(CLUSTER_IP_CONTEXT, source))
            }
        }
    }

    async fn claim_dynamic_ip(
        &self,
        family: IpFamily,
        parent: &ServiceRef,
        created: &mut Vec<Created>,
    ) -> Result<IpAddr, RegistryError> {
        loop {
            let (ip, cidr) = {
                let mut cache = lock(&self.inner.cache);
                let Some(allocator) = cache.ip_allocator(family) else {
                    return Err(
                        ServiceAllocationError::ClusterIpDynamic(AllocationError::Full).into(),
                    );
                };
                let cidr = allocator.cidr().to_string();
                match allocator.allocate_next() {
                    Ok(ip) => {
                        cache.begin_ip(ip);
                        (ip, cidr)
                    }
                    Err(e) => {
                        self.inner.metrics.ip_error(&cidr, Scope::Dynamic);
                        return Err(ServiceAllocationError::ClusterIpDynamic(e).into());
                    }
                }
            };
            let result = self
                .inner
                .ip_api
                .create(&super::write_params(), &ip_address_claim(ip, parent))
                .await;
            let mut cache = lock(&self.inner.cache);
            cache.end_ip(ip);
            match result {
                Ok(obj) => {
                    created.push(Created::Ip {
                        ip,
                        uid: obj.metadata.uid,
                    });
                    self.inner.metrics.ip_allocated_once(&cidr, Scope::Dynamic);
                    return Ok(ip);
                }
                // A mid-air collision: someone else holds it; it stays marked, try the next.
                Err(e) if is_already_exists(&e) => continue,
                Err(source) => {
                    cache.unmark_ip(ip);
                    self.inner.metrics.ip_error(&cidr, Scope::Dynamic);
                    return Err(api_error(CLUSTER_IP_CONTEXT, source));
                }
            }
        }
    }

    async fn claim_ports<F>(
        &self,
        parent: &ServiceRef,
        requested: &BTreeSet<i32>,
        created: &mut Vec<Created>,
        mut plan: F,
    ) -> Result<NodePortPlan, RegistryError>
    where
        F: FnMut(&mut PortAllocator) -> Result<NodePortPlan, ServiceAllocationError>,
    {
        let scope = |port: &i32| {
            if requested.contains(port) {
                Scope::Static
            } else {
                Scope::Dynamic
            }
        };
        for _ in 0..MAX_NODE_PORT_ROUNDS {
            let planned = {
                let mut cache = lock(&self.inner.cache);
                match plan(cache.ports()) {
                    Ok(planned) => {
                        for port in &planned.claimed {
                            cache.begin_port(*port);
                        }
                        planned
                    }
                    Err(e) => {
                        self.inner.metrics.port_error(port_error_scope(&e));
                        return Err(e.into());
                    }
                }
            };
            let mut round = Vec::new();
            let mut collision = None;
            let mut failure = None;
            for port in &planned.claimed {
                match self
                    .inner
                    .port_api
                    .create(&super::write_params(), &node_port_claim(*port, parent))
                    .await
                {
                    Ok(obj) => round.push(Created::Port {
                        port: *port,
                        uid: obj.metadata.uid,
                    }),
                    Err(e) if is_already_exists(&e) => {
                        collision = Some(*port);
                        break;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            if collision.is_none() && failure.is_none() {
                let mut cache = lock(&self.inner.cache);
                for port in &planned.claimed {
                    cache.end_port(*port);
                    self.inner.metrics.port_allocated_once(scope(port));
                }
                created.extend(round);
                return Ok(planned);
            }
            // Undo this round; the colliding port stays marked, so the next plan avoids it
            // (or refuses it, when it was requested).
            self.rollback(&round).await;
            {
                let mut cache = lock(&self.inner.cache);
                for port in &planned.claimed {
                    cache.end_port(*port);
                    if Some(*port) != collision {
                        cache.unmark_port(*port);
                    }
                }
            }
            if let Some(source) = failure {
                self.inner.metrics.port_error(Scope::Dynamic);
                return Err(api_error(NODE_PORT_CONTEXT, source));
            }
        }
        self.inner.metrics.port_error(Scope::Dynamic);
        Err(ServiceAllocationError::NodePortDynamic(AllocationError::Full).into())
    }

    async fn rollback(&self, created: &[Created]) {
        for claim in created.iter().rev() {
            // Best effort, as upstream's revert: a claim left behind is a leak the repair loop
            // frees, never a double allocation.
            let _ignored = match claim {
                Created::Ip { ip, uid } => self.delete_ip(*ip, uid.clone()).await,
                Created::Port { port, uid } => self.delete_port(*port, uid.clone()).await,
            };
        }
    }
}

fn port_error_scope(error: &ServiceAllocationError) -> Scope {
    match error {
        ServiceAllocationError::NodePort { .. }
        | ServiceAllocationError::HealthCheckRequested { .. } => Scope::Static,
        _ => Scope::Dynamic,
    }
}

fn requested_node_ports(service: &Service) -> BTreeSet<i32> {
    let spec = service.spec.as_ref();
    spec.and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| p.node_port)
        .chain(spec.and_then(|s| s.health_check_node_port))
        .filter(|p| *p != 0)
        .collect()
}

fn unchanged(service: &Service) -> AllocatedService {
    AllocatedService {
        service: service.clone(),
        claimed_ips: Vec::new(),
        claimed_ports: Vec::new(),
        release_ips: Vec::new(),
        release_ports: Vec::new(),
    }
}

fn precondition(uid: Option<String>) -> DeleteParams {
    DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

fn api_error(context: &'static str, source: kube::Error) -> RegistryError {
    RegistryError::Api { context, source }
}

async fn install_crd(
    client: &Client,
    port_api: &Api<NodePortAllocation>,
    timeout: Duration,
) -> Result<(), RegistryError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let not_served = |detail: String| RegistryError::CrdNotServed {
        waited: timeout,
        detail,
    };
    match crds.create(&super::write_params(), &crd()).await {
        Ok(_) => {}
        Err(e) if is_already_exists(&e) => {}
        Err(e) => return Err(not_served(gocompat::api_error_text(&e))),
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match port_api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(not_served(e.to_string()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// All IPAddress objects (whoever manages them).
pub async fn list_ip_addresses(client: Client) -> Result<Vec<IPAddress>, kube::Error> {
    let api: Api<IPAddress> = Api::all(client);
    api.list(&ListParams::default()).await.map(|l| l.items)
}

/// All NodePortAllocation objects.
pub async fn list_node_port_allocations(
    client: Client,
) -> Result<Vec<NodePortAllocation>, kube::Error> {
    let api: Api<NodePortAllocation> = Api::all(client);
    api.list(&ListParams::default()).await.map(|l| l.items)
}
