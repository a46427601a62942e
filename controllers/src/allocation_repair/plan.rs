//! The repair decision as a pure function (upstream's `repairip.go` for ClusterIPs and the
//! NodePort `repair.go`): which claims to delete or create and which events to record.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use allocator::registry::{
    AllocationMode, IP_FAMILY_LABEL, MANAGED_BY_LABEL, NodePortAllocation, SVCPLANE_MANAGED_BY,
    ServiceRef, UPSTREAM_MANAGED_BY, ip_address_claim, ip_address_ip, node_port_claim,
};
use allocator::{IpFamily, PortRange, ServiceClusterIpRanges, held_node_ports};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IPAddress;

/// A value a Service holds, named by the Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    /// A ClusterIP.
    Ip(IpAddr),
    /// A NodePort (or healthCheckNodePort).
    Port(i32),
}

/// `namespace/name` of a Service.
pub type ServiceKey = (String, String);

/// What the repair pass sees.
#[derive(Debug, Clone)]
pub struct RepairInput<'a> {
    /// Every stored Service, shared with the informer's store (a pass copies none of them).
    pub services: &'a [Arc<Service>],
    /// Every IPAddress, whoever manages it.
    pub ip_addresses: &'a [Arc<IPAddress>],
    /// Every NodePortAllocation.
    pub node_port_allocations: &'a [Arc<NodePortAllocation>],
    /// Values whose Service was seen deleted or seen dropping them, by Service.
    pub dropped: &'a BTreeSet<(ServiceKey, Claim)>,
    /// The ClusterIP ranges.
    pub ranges: &'a ServiceClusterIpRanges,
    /// The NodePort range.
    pub node_ports: PortRange,
    /// Authoritative (fix) or audit (report only).
    pub mode: AllocationMode,
    /// How long a claim without its Service is left alone (upstream: 60 s), because a claim is
    /// made before its Service is stored.
    pub grace_period: Duration,
    /// Now.
    pub now: jiff::Timestamp,
}

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Regarding {
    /// A Service.
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Uid.
        uid: Option<String>,
    },
    /// An IPAddress.
    IpAddress {
        /// Name (the address).
        name: String,
        /// Uid.
        uid: Option<String>,
    },
}

/// One event to record, with upstream's reason and message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RepairEvent {
    /// The object.
    pub regarding: Regarding,
    /// `ClusterIPOutOfRange`, `PortNotAllocated`, ...
    pub reason: &'static str,
    /// `ClusterIPAllocation`, `IPAddressAllocation` or `PortAllocation`.
    pub action: &'static str,
    /// The message.
    pub message: String,
}

/// One write the pass wants.
#[derive(Debug, Clone)]
pub enum RepairAction {
    /// Delete an IPAddress, only if its uid is still this one.
    DeleteIpAddress {
        /// Name.
        name: String,
        /// The uid seen.
        uid: Option<String>,
    },
    /// Delete a NodePortAllocation, only if its uid is still this one.
    DeleteNodePort {
        /// Name.
        name: String,
        /// The uid seen.
        uid: Option<String>,
    },
    /// Create a missing IPAddress.
    CreateIpAddress(Box<IPAddress>),
    /// Create a missing NodePortAllocation.
    CreateNodePort(Box<NodePortAllocation>),
}

/// What the write does, for logs: `delete IPAddress 10.96.0.10`.
impl std::fmt::Display for RepairAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.name.clone().unwrap_or_default()
        };
        match self {
            RepairAction::DeleteIpAddress { name, .. } => write!(f, "delete IPAddress {name}"),
            RepairAction::DeleteNodePort { name, .. } => {
                write!(f, "delete NodePortAllocation {name}")
            }
            RepairAction::CreateIpAddress(obj) => {
                write!(f, "create IPAddress {}", name(&obj.metadata))
            }
            RepairAction::CreateNodePort(obj) => {
                write!(f, "create NodePortAllocation {}", name(&obj.metadata))
            }
        }
    }
}

/// Counters by upstream's repair error `type` label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairCounts {
    /// `apiserver_clusterip_repair_ip_errors_total` increments.
    pub ip_errors: BTreeMap<&'static str, u64>,
    /// `apiserver_nodeport_repair_port_errors_total` increments.
    pub port_errors: BTreeMap<&'static str, u64>,
}

/// The outcome of one repair pass.
#[derive(Debug, Clone, Default)]
pub struct RepairPlan {
    /// Writes, deletes first.
    pub actions: Vec<RepairAction>,
    /// Events, in a stable order.
    pub events: Vec<RepairEvent>,
    /// Claims without a Service that are still within their grace period: check again then.
    pub recheck_after: Option<Duration>,
    /// Distinct in-range ClusterIPs held by Services, per CIDR (for the gauges).
    pub allocated_ips: BTreeMap<String, u64>,
    /// Distinct in-range NodePorts held by Services.
    pub allocated_ports: u64,
    /// Repair error counts.
    pub counts: RepairCounts,
}

/// A Service's `(namespace, name)`.
pub(crate) fn key_of(service: &Service) -> ServiceKey {
    (
        service
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

fn regarding_service(service: &Service) -> Regarding {
    let (namespace, name) = key_of(service);
    Regarding::Service {
        namespace,
        name,
        uid: service.metadata.uid.clone(),
    }
}

fn listed_cluster_ips(service: &Service) -> Vec<String> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let listed = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.clone(),
        _ => spec.cluster_ip.iter().cloned().collect(),
    };
    listed
        .into_iter()
        .filter(|ip| !ip.is_empty() && ip != "None")
        .collect()
}

fn label<'a>(obj: &'a IPAddress, key: &str) -> Option<&'a str> {
    obj.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The Service an IPAddress points at; `None` when the parent is not a core Service.
fn service_parent(obj: &IPAddress) -> Option<ServiceKey> {
    let parent = &obj.spec.as_ref()?.parent_ref;
    (parent.group.as_deref().unwrap_or_default().is_empty() && parent.resource == "services").then(
        || {
            (
                parent.namespace.clone().unwrap_or_default(),
                parent.name.clone(),
            )
        },
    )
}

/// Go's `%v` of a `*ParentReference`: `&{group resource namespace name}`.
fn parent_go_value(obj: &IPAddress) -> String {
    match obj.spec.as_ref() {
        Some(spec) => {
            let p = &spec.parent_ref;
            format!(
                "&{{{} {} {} {}}}",
                p.group.as_deref().unwrap_or_default(),
                p.resource,
                p.namespace.as_deref().unwrap_or_default(),
                p.name
            )
        }
        None => "<nil>".into(),
    }
}

fn age(
    created: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    now: jiff::Timestamp,
) -> Duration {
    created
        .and_then(|t| now.duration_since(t.0).try_into().ok())
        .unwrap_or_default()
}

struct Pass<'a> {
    input: &'a RepairInput<'a>,
    plan: RepairPlan,
    authoritative: bool,
}

impl Pass<'_> {
    fn event(
        &mut self,
        regarding: Regarding,
        reason: &'static str,
        action: &'static str,
        message: String,
    ) {
        self.plan.events.push(RepairEvent {
            regarding,
            reason,
            action,
            message,
        });
    }

    fn ip_error(&mut self, kind: &'static str) {
        *self.plan.counts.ip_errors.entry(kind).or_default() += 1;
    }

    fn port_error(&mut self, kind: &'static str) {
        *self.plan.counts.port_errors.entry(kind).or_default() += 1;
    }

    fn recheck(&mut self, after: Duration) {
        let after = after.max(Duration::from_millis(10));
        self.plan.recheck_after = Some(self.plan.recheck_after.map_or(after, |d| d.min(after)));
    }

    /// Whether a claim without a rightful holder may go now: its holder was seen letting go
    /// of it, or it has outlived the grace period (otherwise a recheck is scheduled).
    fn may_release(
        &mut self,
        holder: &ServiceKey,
        claim: Claim,
        created: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    ) -> bool {
        if self.input.dropped.contains(&(holder.clone(), claim)) {
            return true;
        }
        let lived = age(created, self.input.now);
        if lived > self.input.grace_period {
            return true;
        }
        self.recheck(self.input.grace_period - lived);
        false
    }
}

impl Pass<'_> {
    /// Reports `service`'s ClusterIP `ip` as held by another Service too, in upstream's words.
    fn duplicate_cluster_ip(&mut self, service: &Service, family: IpFamily, ip: IpAddr) {
        self.ip_error("duplicate");
        self.event(
            regarding_service(service),
            "ClusterIPAlreadyAllocated",
            "ClusterIPAllocation",
            format!(
                "Cluster IP [{family}]:{ip} was assigned to multiple services; please recreate service"
            ),
        );
    }

    /// Services → their ClusterIPs: invalid, out-of-range and duplicate addresses reported,
    /// missing and mislabelled claims repaired. Returns which Service holds each address.
    fn services_to_cluster_ips(&mut self, inv: &Inventory<'_>) -> BTreeMap<IpAddr, ServiceKey> {
        let mut ip_holder: BTreeMap<IpAddr, ServiceKey> = BTreeMap::new();
        for service in &inv.services {
            let key = key_of(service);
            for text in listed_cluster_ips(service) {
                let Ok(ip) = text.parse::<IpAddr>() else {
                    self.ip_error("invalid");
                    self.event(
                        regarding_service(service),
                        "ClusterIPNotValid",
                        "ClusterIPValidation",
                        format!("Cluster IP {text} is not a valid IP; please recreate Service"),
                    );
                    continue;
                };
                let family = IpFamily::of(&ip);
                let in_range = self
                    .input
                    .ranges
                    .for_family(family)
                    .and_then(|cidr| cidr.offset_of(ip).map(|_| cidr.to_string()));
                let Some(cidr) = in_range else {
                    self.ip_error("outOfRange");
                    self.event(
                        regarding_service(service),
                        "ClusterIPOutOfRange",
                        "ClusterIPAllocation",
                        format!(
                            "Cluster IP [{family}]: {ip} is not within any configured Service CIDR; please recreate service"
                        ),
                    );
                    continue;
                };
                if let Some(first) = ip_holder.get(&ip) {
                    if first != &key {
                        self.duplicate_cluster_ip(service, family, ip);
                    }
                    continue;
                }
                ip_holder.insert(ip, key.clone());
                *self.plan.allocated_ips.entry(cidr).or_default() += 1;
                let parent = ServiceRef {
                    namespace: key.0.clone(),
                    name: key.1.clone(),
                    uid: service.metadata.uid.clone(),
                };
                match inv.ip_objects.get(&ip) {
                    None => {
                        self.ip_error("repair");
                        self.event(
                            regarding_service(service),
                            "ClusterIPNotAllocated",
                            "ClusterIPAllocation",
                            format!("Cluster IP [{family}]: {ip} is not allocated; repairing"),
                        );
                        if self.authoritative {
                            self.plan
                                .actions
                                .push(RepairAction::CreateIpAddress(Box::new(ip_address_claim(
                                    ip, &parent,
                                ))));
                        }
                    }
                    Some(obj) => {
                        let managed = label(obj, MANAGED_BY_LABEL) == Some(inv.ours);
                        let labels_right =
                            label(obj, IP_FAMILY_LABEL) == Some(family.as_str()) && managed;
                        let wrong_reference = match service_parent(obj) {
                            None => true,
                            Some(owner) if owner == key => false,
                            Some(owner) => match inv.by_key.get(&owner) {
                                Some(other)
                                    if listed_cluster_ips(other).contains(&ip.to_string()) =>
                                {
                                    self.duplicate_cluster_ip(service, family, ip);
                                    continue;
                                }
                                _ => true,
                            },
                        };
                        if wrong_reference {
                            self.event(
                                regarding_service(service),
                                "ClusterIPNotAllocated",
                                "ClusterIPAllocation",
                                format!(
                                    "the ClusterIP [{family}]: {ip} for Service {}/{} has a wrong reference; repairing",
                                    key.0, key.1
                                ),
                            );
                        }
                        // Someone else's object is reported, never rewritten.
                        if (wrong_reference || !labels_right) && managed && self.authoritative {
                            self.plan.actions.push(RepairAction::DeleteIpAddress {
                                name: ip.to_string(),
                                uid: obj.metadata.uid.clone(),
                            });
                            self.plan
                                .actions
                                .push(RepairAction::CreateIpAddress(Box::new(ip_address_claim(
                                    ip, &parent,
                                ))));
                        }
                    }
                }
            }
        }
        ip_holder
    }

    /// Managed IPAddresses → their Service: claims whose Service is gone, or holds another
    /// address, are freed once their grace period is over.
    fn ip_addresses_to_services(
        &mut self,
        inv: &Inventory<'_>,
        ip_holder: &BTreeMap<IpAddr, ServiceKey>,
    ) {
        for (ip, obj) in &inv.ip_objects {
            if label(obj, MANAGED_BY_LABEL) != Some(inv.ours) {
                continue;
            }
            let name = ip.to_string();
            let regarding = Regarding::IpAddress {
                name: name.clone(),
                uid: obj.metadata.uid.clone(),
            };
            let delete = RepairAction::DeleteIpAddress {
                name: name.clone(),
                uid: obj.metadata.uid.clone(),
            };
            let Some(owner) = service_parent(obj) else {
                self.ip_error("invalid");
                self.event(
                    regarding,
                    "IPAddressNotAllocated",
                    "IPAddressAllocation",
                    format!(
                        "IPAddress {name} appears to have been modified, not referencing a Service {}: cleaning up",
                        parent_go_value(obj)
                    ),
                );
                if self.authoritative {
                    self.plan.actions.push(delete);
                }
                continue;
            };
            let created = obj.metadata.creation_timestamp.as_ref();
            match inv.by_key.get(&owner) {
                None => {
                    if !self.may_release(&owner, Claim::Ip(*ip), created) {
                        continue;
                    }
                    let seen_go = self
                        .input
                        .dropped
                        .contains(&(owner.clone(), Claim::Ip(*ip)));
                    if !seen_go {
                        self.ip_error("leak");
                        let message = if self.authoritative {
                            format!(
                                "IPAddress: {name} for Service {}/{} appears to have leaked: cleaning up",
                                owner.0, owner.1
                            )
                        } else {
                            format!(
                                "IPAddress: {name} for Service {}/{} appears to have leaked",
                                owner.0, owner.1
                            )
                        };
                        self.event(
                            regarding,
                            "IPAddressNotAllocated",
                            "IPAddressAllocation",
                            message,
                        );
                    }
                    if self.authoritative {
                        self.plan.actions.push(delete);
                    }
                }
                Some(service) => {
                    if listed_cluster_ips(service).contains(&name)
                        || ip_holder.get(ip) == Some(&owner)
                    {
                        continue;
                    }
                    if !self.may_release(&owner, Claim::Ip(*ip), created) {
                        continue;
                    }
                    if !self
                        .input
                        .dropped
                        .contains(&(owner.clone(), Claim::Ip(*ip)))
                    {
                        self.ip_error("wrongReference");
                        self.event(
                            regarding,
                            "IPAddressWrongReference",
                            "IPAddressAllocation",
                            format!(
                                "IPAddress: {name} for Service {}/{} has a wrong reference; cleaning up",
                                owner.0, owner.1
                            ),
                        );
                    }
                    if self.authoritative {
                        self.plan.actions.push(delete);
                    }
                }
            }
        }
    }

    /// Services → their NodePorts: out-of-range and duplicate ports reported, missing claims
    /// repaired. Returns which Service holds each port.
    fn services_to_node_ports(&mut self, inv: &Inventory<'_>) -> BTreeMap<i32, ServiceKey> {
        let range = self.input.node_ports;
        let mut port_holder: BTreeMap<i32, ServiceKey> = BTreeMap::new();
        for service in &inv.services {
            let key = key_of(service);
            let ports: BTreeSet<i32> = held_node_ports(service).into_iter().collect();
            for port in ports {
                if !range.contains(i64::from(port)) {
                    self.port_error("outOfRange");
                    self.event(
                        regarding_service(service),
                        "PortOutOfRange",
                        "PortAllocation",
                        format!(
                            "Port {port} is not within the port range {range}; please recreate service"
                        ),
                    );
                    continue;
                }
                if port_holder.contains_key(&port) {
                    self.port_error("duplicate");
                    self.event(
                        regarding_service(service),
                        "PortAlreadyAllocated",
                        "PortAllocation",
                        format!(
                            "Port {port} was assigned to multiple services; please recreate service"
                        ),
                    );
                    continue;
                }
                port_holder.insert(port, key.clone());
                self.plan.allocated_ports += 1;
                if !self.authoritative {
                    continue;
                }
                match inv.port_objects.get(&port) {
                    None => {
                        self.port_error("repair");
                        self.event(
                            regarding_service(service),
                            "PortNotAllocated",
                            "PortAllocation",
                            format!("Port {port} is not allocated; repairing"),
                        );
                        let parent = ServiceRef {
                            namespace: key.0.clone(),
                            name: key.1.clone(),
                            uid: service.metadata.uid.clone(),
                        };
                        self.plan
                            .actions
                            .push(RepairAction::CreateNodePort(Box::new(node_port_claim(
                                port, &parent,
                            ))));
                    }
                    Some(obj) => {
                        let held = &obj.spec.parent_ref;
                        let owner = (held.namespace.clone(), held.name.clone());
                        if owner != key
                            && inv
                                .by_key
                                .get(&owner)
                                .is_some_and(|other| held_node_ports(other).contains(&port))
                        {
                            self.port_error("duplicate");
                            self.event(
                                regarding_service(service),
                                "PortAlreadyAllocated",
                                "PortAllocation",
                                format!("Port {port} was assigned to multiple services; please recreate service"),
                            );
                        }
                    }
                }
            }
        }
        port_holder
    }

    /// NodePortAllocations → their Service: claims nobody rightfully holds are freed once
    /// their grace period is over.
    fn node_port_allocations_to_services(
        &mut self,
        inv: &Inventory<'_>,
        port_holder: &BTreeMap<i32, ServiceKey>,
    ) {
        if self.authoritative {
            for (port, obj) in &inv.port_objects {
                let held = &obj.spec.parent_ref;
                let owner = (held.namespace.clone(), held.name.clone());
                let rightful = inv.by_key.get(&owner).is_some_and(|service| {
                    let same_uid = match (&held.uid, &service.metadata.uid) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    };
                    same_uid && port_holder.get(port) == Some(&owner)
                });
                if rightful
                    || !self.may_release(
                        &owner,
                        Claim::Port(*port),
                        obj.metadata.creation_timestamp.as_ref(),
                    )
                {
                    continue;
                }
                if !self
                    .input
                    .dropped
                    .contains(&(owner.clone(), Claim::Port(*port)))
                {
                    self.port_error("leak");
                    tracing::warn!("the node port {port} appears to have leaked: cleaning up");
                }
                self.plan.actions.push(RepairAction::DeleteNodePort {
                    name: port.to_string(),
                    uid: obj.metadata.uid.clone(),
                });
            }
        }
    }
}

/// What one pass looks at, indexed: the live Services in key order, and the claims by value.
struct Inventory<'a> {
    services: Vec<&'a Service>,
    by_key: BTreeMap<ServiceKey, &'a Service>,
    ip_objects: BTreeMap<IpAddr, &'a IPAddress>,
    port_objects: BTreeMap<i32, &'a NodePortAllocation>,
    /// The `managed-by` value of the IPAddresses the pass judges (svcplane's, or upstream's in
    /// audit mode).
    ours: &'static str,
}

impl<'a> Inventory<'a> {
    fn of(input: &'a RepairInput<'a>, authoritative: bool) -> Self {
        let mut services: Vec<&Service> = input
            .services
            .iter()
            .map(Arc::as_ref)
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .collect();
        services.sort_by_key(|s| key_of(s));
        let by_key = services.iter().map(|s| (key_of(s), *s)).collect();
        let ip_objects = input
            .ip_addresses
            .iter()
            .map(Arc::as_ref)
            .filter_map(|o| ip_address_ip(o).map(|ip| (ip, o)))
            .collect();
        let port_objects = input
            .node_port_allocations
            .iter()
            .map(Arc::as_ref)
            .map(|o| (o.spec.port, o))
            .collect();
        let ours = if authoritative {
            SVCPLANE_MANAGED_BY
        } else {
            UPSTREAM_MANAGED_BY
        };
        Inventory {
            services,
            by_key,
            ip_objects,
            port_objects,
            ours,
        }
    }
}

/// Plans one repair pass. Only IPAddresses labelled `managed-by` svcplane and svcplane's
/// NodePortAllocations are ever written; in audit mode nothing is, and only upstream-managed
/// IPAddresses are judged.
pub fn plan_repair(input: &RepairInput<'_>) -> RepairPlan {
    let mut pass = Pass {
        input,
        plan: RepairPlan::default(),
        authoritative: input.mode == AllocationMode::Authoritative,
    };
    let inv = Inventory::of(input, pass.authoritative);
    let ip_holder = pass.services_to_cluster_ips(&inv);
    pass.ip_addresses_to_services(&inv, &ip_holder);
    let port_holder = pass.services_to_node_ports(&inv);
    pass.node_port_allocations_to_services(&inv, &port_holder);

    // Deletes before creates, so that a recreated claim does not collide with its old self.
    pass.plan.actions.sort_by_key(|a| match a {
        RepairAction::DeleteIpAddress { .. } | RepairAction::DeleteNodePort { .. } => 0,
        _ => 1,
    });
    pass.plan.events.sort();
    pass.plan
}
