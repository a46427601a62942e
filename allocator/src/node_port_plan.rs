//! Which nodePorts a Service write needs (`initNodePorts`, `updateNodePorts`,
//! `updateHealthCheckNodePort`, `patchAllocatedValues` of upstream's `storage/alloc.go`).
//!
//! The plan functions claim ports in the in-memory [`PortAllocator`] as upstream's operation
//! does (claims are immediate, releases deferred to commit) and return a [`NodePortPlan`]
//! listing what the registry must make durable; on failure they undo their own claims.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};

use crate::error::AllocationError;
use crate::node_port::PortAllocator;
use crate::outcome::ServiceAllocationError;

/// The first fake port a dry-run `AllocateNext` returns, minus one (upstream's guess).
const DRY_RUN_PORT_BASE: i32 = 32768;

/// The nodePort side of one Service write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePortPlan {
    /// `spec.ports[i].nodePort` after allocation, in `spec.ports` order.
    pub node_ports: Vec<Option<i32>>,
    /// `spec.healthCheckNodePort` after allocation.
    pub health_check_node_port: Option<i32>,
    /// Ports this write claimed, in claim order (empty on dry-run).
    pub claimed: Vec<i32>,
    /// Ports the old object held that are to be released once the write commits, ascending.
    pub release_on_commit: Vec<i32>,
}

impl NodePortPlan {
    /// Writes the planned nodePorts and healthCheckNodePort into `service`.
    pub fn apply_to(&self, service: &mut Service) {
        let spec = service.spec.get_or_insert_with(ServiceSpec::default);
        if let Some(ports) = spec.ports.as_mut() {
            for (port, node_port) in ports.iter_mut().zip(&self.node_ports) {
                port.node_port = *node_port;
            }
        }
        spec.health_check_node_port = self.health_check_node_port;
    }

    /// Executes the deferred releases after the write committed.
    pub fn commit(&self, ports: &mut PortAllocator) {
        for port in &self.release_on_commit {
            ports.release(*port);
        }
    }

    /// Undoes this write's claims after the write failed.
    pub fn revert(&self, ports: &mut PortAllocator) {
        for port in &self.claimed {
            ports.release(*port);
        }
    }
}

/// One transaction against the allocator (upstream's `PortAllocationOperation`).
struct PortOperation<'a> {
    ports: &'a mut PortAllocator,
    dry_run: bool,
    allocated: Vec<i32>,
    release_deferred: BTreeSet<i32>,
}

impl<'a> PortOperation<'a> {
    fn new(ports: &'a mut PortAllocator, dry_run: bool) -> Self {
        PortOperation {
            ports,
            dry_run,
            allocated: Vec::new(),
            release_deferred: BTreeSet::new(),
        }
    }

    /// Dry-run only refuses ports that are taken; it does not check the range.
    fn allocate(&mut self, port: i32) -> Result<(), AllocationError> {
        if self.dry_run {
            if self.ports.contains(port) || self.allocated.contains(&port) {
                return Err(AllocationError::PortAllocated);
            }
        } else {
            self.ports.allocate(port)?;
        }
        self.allocated.push(port);
        Ok(())
    }

    /// Dry-run hands out fake ports above everything this operation holds (32769, 32770, ...).
    fn allocate_next(&mut self) -> Result<i32, AllocationError> {
        let port = if self.dry_run {
            self.allocated
                .iter()
                .copied()
                .max()
                .unwrap_or(DRY_RUN_PORT_BASE)
                .saturating_add(1)
        } else {
            self.ports.allocate_next()?
        };
        self.allocated.push(port);
        Ok(port)
    }

    fn release_deferred(&mut self, port: i32) {
        self.release_deferred.insert(port);
    }

    fn revert(self) {
        if !self.dry_run {
            for port in self.allocated {
                self.ports.release(port);
            }
        }
    }

    fn finish(self, node_ports: Vec<Option<i32>>, health: Option<i32>) -> NodePortPlan {
        NodePortPlan {
            node_ports,
            health_check_node_port: health,
            claimed: if self.dry_run {
                Vec::new()
            } else {
                self.allocated
            },
            release_on_commit: if self.dry_run {
                Vec::new()
            } else {
                self.release_deferred.into_iter().collect()
            },
        }
    }
}

fn spec(service: &Service) -> Option<&ServiceSpec> {
    service.spec.as_ref()
}

fn service_type(service: &Service) -> &str {
    spec(service)
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

fn ports(service: &Service) -> &[ServicePort] {
    spec(service)
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

fn node_port_of(port: &ServicePort) -> i32 {
    port.node_port.unwrap_or(0)
}

/// Whether the type carries nodePorts (`NodePort` or `LoadBalancer`).
pub fn needs_node_ports(service: &Service) -> bool {
    matches!(service_type(service), "NodePort" | "LoadBalancer")
}

/// Whether nodePorts are allocated automatically (`shouldAllocateNodePorts`):
/// `NodePort`, or `LoadBalancer` unless `allocateLoadBalancerNodePorts: false`.
pub fn allocates_node_ports(service: &Service) -> bool {
    match service_type(service) {
        "NodePort" => true,
        "LoadBalancer" => spec(service)
            .and_then(|s| s.allocate_load_balancer_node_ports)
            .unwrap_or(true),
        _ => false,
    }
}

/// Whether a healthCheckNodePort is needed (`NeedsHealthCheck`): LoadBalancer with
/// `externalTrafficPolicy: Local`.
pub fn needs_health_check(service: &Service) -> bool {
    service_type(service) == "LoadBalancer"
        && spec(service).and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local")
}

/// The ports a stored Service holds: every non-zero nodePort plus the healthCheckNodePort
/// when it needs one (what delete releases and repair counts).
pub fn held_node_ports(service: &Service) -> Vec<i32> {
    let mut held: Vec<i32> = ports(service)
        .iter()
        .map(node_port_of)
        .filter(|p| *p != 0)
        .collect();
    if needs_health_check(service)
        && let Some(hc) = spec(service).and_then(|s| s.health_check_node_port)
        && hc > 0
    {
        held.push(hc);
    }
    held
}

/// Plans the nodePorts of a Service being created (`initNodePorts` + health check).
pub fn plan_node_ports_for_create(
    service: &Service,
    allocator: &mut PortAllocator,
    dry_run: bool,
) -> Result<NodePortPlan, ServiceAllocationError> {
    let mut op = PortOperation::new(allocator, dry_run);
    let mut node_ports: Vec<Option<i32>> = ports(service).iter().map(|p| p.node_port).collect();
    let mut health = spec(service).and_then(|s| s.health_check_node_port);
    let result = init_node_ports(service, &mut op, &mut node_ports).and_then(|()| {
        if needs_health_check(service) {
            health = Some(alloc_health_check(health.unwrap_or(0), &mut op)?);
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(op.finish(node_ports, health)),
        Err(e) => {
            op.revert();
            Err(e)
        }
    }
}

fn init_node_ports(
    service: &Service,
    op: &mut PortOperation<'_>,
    node_ports: &mut [Option<i32>],
) -> Result<(), ServiceAllocationError> {
    if !needs_node_ports(service) {
        return Ok(());
    }
    let all = ports(service);
    let automatic = allocates_node_ports(service);
    // One nodePort per Service port number, shared by its TCP and UDP entries.
    let mut by_port: BTreeMap<i32, i32> = BTreeMap::new();
    for (index, port) in all.iter().enumerate() {
        let requested = node_port_of(port);
        if requested == 0 && !automatic {
            continue;
        }
        match by_port.get(&port.port).copied() {
            None => {
                // Earlier entries would be in `by_port`, so this finds later explicit requests.
                let wanted = all
                    .iter()
                    .find(|p| p.port == port.port && node_port_of(p) != 0)
                    .map(node_port_of);
                let chosen = match wanted {
                    Some(np) => {
                        op.allocate(np)
                            .map_err(|source| ServiceAllocationError::NodePort {
                                index,
                                node_port: np,
                                source,
                            })?;
                        np
                    }
                    None => op
                        .allocate_next()
                        .map_err(ServiceAllocationError::NodePortDynamic)?,
                };
                set(node_ports, index, chosen);
                by_port.insert(port.port, chosen);
            }
            Some(shared) if requested != shared => {
                if requested == 0 {
                    set(node_ports, index, shared);
                } else {
                    op.allocate(requested)
                        .map_err(|source| ServiceAllocationError::NodePort {
                            index,
                            node_port: requested,
                            source,
                        })?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn set(node_ports: &mut [Option<i32>], index: usize, value: i32) {
    if let Some(slot) = node_ports.get_mut(index) {
        *slot = Some(value);
    }
}

fn alloc_health_check(
    requested: i32,
    op: &mut PortOperation<'_>,
) -> Result<i32, ServiceAllocationError> {
    if requested != 0 {
        op.allocate(requested)
            .map_err(|source| ServiceAllocationError::HealthCheckRequested {
                port: requested,
                source,
            })?;
        Ok(requested)
    } else {
        op.allocate_next()
            .map_err(ServiceAllocationError::HealthCheckDynamic)
    }
}

/// Plans the nodePorts of an update (`txnUpdateNodePorts`). Call [`patch_allocated_values`]
/// on `new` first, as upstream's `beginUpdate` does.
pub fn plan_node_ports_for_update(
    old: &Service,
    new: &Service,
    allocator: &mut PortAllocator,
    dry_run: bool,
) -> Result<NodePortPlan, ServiceAllocationError> {
    let mut op = PortOperation::new(allocator, dry_run);
    let mut node_ports: Vec<Option<i32>> = ports(new).iter().map(|p| p.node_port).collect();
    let mut health = spec(new).and_then(|s| s.health_check_node_port);

    if needs_node_ports(old) && matches!(service_type(new), "ExternalName" | "ClusterIP") {
        for port in ports(old).iter().map(node_port_of).filter(|p| *p != 0) {
            op.release_deferred(port);
        }
    }
    let mut result = Ok(());
    if needs_node_ports(new) {
        result = update_node_ports(old, new, &mut op, &mut node_ports);
    }
    if result.is_ok() {
        let needed = needs_health_check(old);
        let needs = needs_health_check(new);
        if !needed && needs {
            match alloc_health_check(health.unwrap_or(0), &mut op) {
                Ok(port) => health = Some(port),
                Err(e) => result = Err(e),
            }
        } else if needed && !needs {
            let old_health = spec(old)
                .and_then(|s| s.health_check_node_port)
                .unwrap_or(0);
            op.release_deferred(old_health);
        }
    }
    match result {
        Ok(()) => Ok(op.finish(node_ports, health)),
        Err(e) => {
            op.revert();
            Err(e)
        }
    }
}

fn update_node_ports(
    old: &Service,
    new: &Service,
    op: &mut PortOperation<'_>,
    node_ports: &mut [Option<i32>],
) -> Result<(), ServiceAllocationError> {
    let old_numbers: Vec<i32> = ports(old)
        .iter()
        .map(node_port_of)
        .filter(|p| *p != 0)
        .collect();
    let automatic = allocates_node_ports(new);
    let mut seen: Vec<(String, i32)> = Vec::new();
    let mut claimed_here: BTreeSet<i32> = BTreeSet::new();
    for (index, port) in ports(new).iter().enumerate() {
        let mut node_port = node_port_of(port);
        if node_port == 0 && !automatic {
            continue;
        }
        if node_port != 0 {
            if !old_numbers.contains(&node_port) && !claimed_here.contains(&node_port) {
                op.allocate(node_port)
                    .map_err(|source| ServiceAllocationError::NodePort {
                        index,
                        node_port,
                        source,
                    })?;
                claimed_here.insert(node_port);
            }
        } else {
            node_port = op
                .allocate_next()
                .map_err(ServiceAllocationError::NodePortDynamic)?;
            set(node_ports, index, node_port);
        }
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        let key = (protocol, node_port);
        if seen.contains(&key) {
            return Err(ServiceAllocationError::DuplicateNodePort {
                protocol: key.0,
                node_port,
            });
        }
        seen.push(key);
    }
    let new_numbers: BTreeSet<i32> = node_ports.iter().flatten().copied().collect();
    for number in old_numbers {
        if !new_numbers.contains(&number) {
            op.release_deferred(number);
        }
    }
    Ok(())
}

/// Copies values the old object had allocated into `new` where the client omitted them
/// (`patchAllocatedValues`), so that re-applying the original YAML is idempotent:
/// clusterIP/clusterIPs, nodePorts matched by port name (unless the old value is still used
/// by another new port), and the healthCheckNodePort.
pub fn patch_allocated_values(old: &Service, new: &mut Service) {
    let (needs_ip_old, needs_ip_new) = (
        service_type(old) != "ExternalName",
        service_type(new) != "ExternalName",
    );
    let (np_old, np_new) = (needs_node_ports(old), needs_node_ports(new));
    let (hc_old, hc_new) = (needs_health_check(old), needs_health_check(new));
    let Some(old_spec) = spec(old) else {
        return;
    };
    let new_spec = new.spec.get_or_insert_with(ServiceSpec::default);

    if needs_ip_old && needs_ip_new {
        if new_spec
            .cluster_ip
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            new_spec.cluster_ip.clone_from(&old_spec.cluster_ip);
        }
        let old_ips = old_spec.cluster_ips.as_deref().unwrap_or_default();
        if new_spec
            .cluster_ips
            .as_deref()
            .unwrap_or_default()
            .is_empty()
            && !old_ips.is_empty()
        {
            new_spec.cluster_ips = Some(old_ips.to_vec());
        }
    }

    if np_old && np_new {
        let used_by = |ps: Option<&Vec<ServicePort>>| -> BTreeSet<i32> {
            ps.into_iter()
                .flatten()
                .map(node_port_of)
                .filter(|p| *p != 0)
                .collect()
        };
        let old_used = used_by(old_spec.ports.as_ref());
        let new_used = used_by(new_spec.ports.as_ref());
        let still_used: BTreeSet<i32> = old_used.intersection(&new_used).copied().collect();
        // Go map semantics: a later old port with the same name wins.
        let by_name: BTreeMap<String, i32> = old_spec
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), node_port_of(p)))
            .collect();
        for port in new_spec.ports.iter_mut().flatten() {
            if node_port_of(port) == 0 {
                let old_value = by_name
                    .get(port.name.as_deref().unwrap_or_default())
                    .copied()
                    .unwrap_or(0);
                if old_value != 0 && !still_used.contains(&old_value) {
                    port.node_port = Some(old_value);
                }
            }
        }
    }

    if hc_old && hc_new && new_spec.health_check_node_port.unwrap_or(0) == 0 {
        new_spec.health_check_node_port = old_spec.health_check_node_port;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_range::PortRange;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "svc"}, "spec": spec})).unwrap()
    }

    fn allocator() -> PortAllocator {
        PortAllocator::with_seed(PortRange::default(), 5)
    }

    fn outcome_text(e: &ServiceAllocationError) -> (u16, String) {
        let o = e.outcome();
        (o.code(), o.to_string())
    }

    /// E1.
    #[test]
    fn e1_node_port_out_of_range() {
        let svc = service(
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80, "protocol": "TCP", "targetPort": 80}]}),
        );
        let mut ports = allocator();
        let err = plan_node_ports_for_create(&svc, &mut ports, false).unwrap_err();
        assert_eq!(
            outcome_text(&err),
            (422, "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767".into())
        );
        assert_eq!(ports.used(), 0);
    }

    /// E2.
    #[test]
    fn e2_node_port_taken() {
        let svc = service(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        let mut ports = allocator();
        ports.allocate(30080).unwrap();
        let err = plan_node_ports_for_create(&svc, &mut ports, false).unwrap_err();
        assert_eq!(
            err.outcome().cause_message().unwrap(),
            "Invalid value: 30080: provided port is already allocated"
        );
    }

    /// E6: dynamic failure is a 500.
    #[test]
    fn e6_node_port_range_full() {
        let mut ports = PortAllocator::with_seed(PortRange::parse("30000-30001").unwrap(), 1);
        ports.allocate(30000).unwrap();
        ports.allocate(30001).unwrap();
        let svc = service(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        let err = plan_node_ports_for_create(&svc, &mut ports, false).unwrap_err();
        assert_eq!(
            outcome_text(&err),
            (500, "failed to allocate a nodePort: range is full".into())
        );
    }

    /// E25: TCP and UDP of one port number share one nodePort, allocated once.
    #[test]
    fn e25_tcp_udp_share_a_node_port() {
        let svc = service(json!({"type": "NodePort", "ports": [
            {"name": "p", "port": 53, "protocol": "TCP"},
            {"name": "q", "port": 53, "protocol": "UDP"}]}));
        let mut ports = allocator();
        let plan = plan_node_ports_for_create(&svc, &mut ports, false).unwrap();
        let n = plan.node_ports[0].unwrap();
        assert_eq!(plan.node_ports, vec![Some(n), Some(n)]);
        assert!((30086..=32767).contains(&n));
        assert_eq!(plan.claimed, vec![n]);
        assert_eq!(ports.used(), 1);
        let mut applied = svc.clone();
        plan.apply_to(&mut applied);
        assert_eq!(held_node_ports(&applied), vec![n, n]);
    }

    /// E26: the same requested nodePort on TCP/UDP of one port number.
    #[test]
    fn e26_same_requested_on_tcp_udp() {
        let svc = service(json!({"type": "NodePort", "ports": [
            {"name": "p", "port": 53, "protocol": "TCP", "nodePort": 30053},
            {"name": "q", "port": 53, "protocol": "UDP", "nodePort": 30053}]}));
        let mut ports = allocator();
        let plan = plan_node_ports_for_create(&svc, &mut ports, false).unwrap();
        assert_eq!(plan.node_ports, vec![Some(30053), Some(30053)]);
        assert_eq!(plan.claimed, vec![30053]);
        // Only the second entry requested it: the first borrows it (look-ahead).
        let svc = service(json!({"type": "NodePort", "ports": [
            {"name": "p", "port": 53, "protocol": "TCP"},
            {"name": "q", "port": 53, "protocol": "UDP", "nodePort": 30054}]}));
        let plan = plan_node_ports_for_create(&svc, &mut ports, false).unwrap();
        assert_eq!(plan.node_ports, vec![Some(30054), Some(30054)]);
    }

    /// E27 and E28: one nodePort requested by two port numbers fails on the second entry.
    #[test]
    fn e27_e28_conflicting_requests() {
        for spec in [
            json!({"type": "NodePort", "ports": [
                {"name": "a", "port": 93, "protocol": "TCP", "nodePort": 30093},
                {"name": "b", "port": 76, "protocol": "UDP", "nodePort": 30093}]}),
            json!({"type": "NodePort", "ports": [
                {"name": "a", "port": 80, "protocol": "TCP", "nodePort": 30093},
                {"name": "b", "port": 443, "protocol": "TCP", "nodePort": 30093}]}),
        ] {
            let mut ports = allocator();
            let err = plan_node_ports_for_create(&service(spec), &mut ports, false).unwrap_err();
            assert_eq!(
                outcome_text(&err),
                (422, "spec.ports[1].nodePort: Invalid value: 30093: provided port is already allocated".into())
            );
            assert_eq!(ports.used(), 0, "the failed write's claims are undone");
        }
    }

    /// E29.
    #[test]
    fn e29_load_balancer_without_node_ports() {
        let svc = service(
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30002}]}),
        );
        let mut ports = allocator();
        let plan = plan_node_ports_for_create(&svc, &mut ports, false).unwrap();
        assert_eq!(plan.node_ports, vec![None, Some(30002)]);
        assert_eq!(plan.claimed, vec![30002]);
        assert_eq!(plan.health_check_node_port, None);
    }

    /// E30 and the health-check allocation.
    #[test]
    fn e30_health_check_node_port() {
        let svc = service(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 80, "ports": [{"port": 80}]}),
        );
        let mut ports = allocator();
        let err = plan_node_ports_for_create(&svc, &mut ports, false).unwrap_err();
        assert_eq!(
            outcome_text(&err),
            (500, "failed to allocate requested HealthCheck NodePort 80: provided port is not in the valid range. The range of valid ports is 30000-32767".into())
        );
        assert_eq!(ports.used(), 0, "the port 80's nodePort claim was reverted");

        let svc = service(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80}]}),
        );
        let plan = plan_node_ports_for_create(&svc, &mut ports, false).unwrap();
        let hc = plan.health_check_node_port.unwrap();
        assert_eq!(plan.claimed.len(), 2);
        assert!(plan.claimed.contains(&hc));

        let mut full = PortAllocator::with_seed(PortRange::parse("30000").unwrap(), 1);
        let err = plan_node_ports_for_create(&svc, &mut full, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to allocate a HealthCheck NodePort 0: range is full"
        );
        assert_eq!(full.used(), 0);
    }

    /// P6 and §3.5: dry-run claims nothing, fakes dynamic ports, skips the range check.
    #[test]
    fn p6_dry_run() {
        let svc = service(json!({"type": "NodePort", "ports": [
            {"name": "a", "port": 80}, {"name": "b", "port": 81}, {"name": "c", "port": 82, "nodePort": 80}]}));
        let mut ports = allocator();
        let plan = plan_node_ports_for_create(&svc, &mut ports, true).unwrap();
        assert_eq!(plan.node_ports, vec![Some(32769), Some(32770), Some(80)]);
        assert!(plan.claimed.is_empty());
        assert_eq!(ports.used(), 0);
        ports.allocate(30080).unwrap();
        let taken =
            service(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        assert!(plan_node_ports_for_create(&taken, &mut ports, true).is_err());
    }

    /// E35 and §3.4: NodePort→ClusterIP releases on commit; re-applying keeps the ports.
    #[test]
    fn e35_type_change_and_reapply() {
        let mut ports = allocator();
        let original = service(json!({"type": "NodePort", "ports": [
            {"name": "http", "port": 80}, {"name": "https", "port": 443}]}));
        let plan = plan_node_ports_for_create(&original, &mut ports, false).unwrap();
        let mut stored = original.clone();
        plan.apply_to(&mut stored);
        let held = held_node_ports(&stored);

        // Re-applying the original YAML keeps the previous nodePorts, matched by name.
        let mut reapplied = original.clone();
        patch_allocated_values(&stored, &mut reapplied);
        let plan = plan_node_ports_for_update(&stored, &reapplied, &mut ports, false).unwrap();
        assert!(plan.claimed.is_empty());
        assert!(plan.release_on_commit.is_empty());
        assert_eq!(
            plan.node_ports,
            stored
                .spec
                .as_ref()
                .unwrap()
                .ports
                .as_ref()
                .unwrap()
                .iter()
                .map(|p| p.node_port)
                .collect::<Vec<_>>()
        );

        // To ClusterIP with the nodePorts still in the body: released on commit only.
        let mut to_cluster_ip = stored.clone();
        to_cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        let plan = plan_node_ports_for_update(&stored, &to_cluster_ip, &mut ports, false).unwrap();
        let mut sorted = held.clone();
        sorted.sort();
        assert_eq!(plan.release_on_commit, sorted);
        assert_eq!(ports.used(), 2);
        plan.commit(&mut ports);
        assert_eq!(ports.used(), 0);
    }

    /// §3.4: a changed nodePort is claimed and the old one released; duplicates are a 500.
    #[test]
    fn update_changes_and_duplicates() {
        let mut ports = allocator();
        let old = service(
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}]}),
        );
        ports.allocate(30080).unwrap();
        let new = service(
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30081}]}),
        );
        let plan = plan_node_ports_for_update(&old, &new, &mut ports, false).unwrap();
        assert_eq!(plan.claimed, vec![30081]);
        assert_eq!(plan.release_on_commit, vec![30080]);

        let dup = service(json!({"type": "NodePort", "ports": [
            {"name": "a", "port": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "b", "port": 81, "protocol": "TCP", "nodePort": 30080}]}));
        let err = plan_node_ports_for_update(&old, &dup, &mut ports, false).unwrap_err();
        assert_eq!(
            outcome_text(&err),
            (500, "duplicate nodePort: {TCP 30080}".into())
        );
        assert_eq!(
            err.outcome(),
            crate::Outcome::Unknown {
                message: "duplicate nodePort: {TCP 30080}".into()
            }
        );
        assert!(!ports.contains(30082));

        // ClusterIP → NodePort with a taken port: 422 on that entry, nothing leaked.
        let plain = service(json!({"type": "ClusterIP", "ports": [{"name": "a", "port": 80}]}));
        let taken = service(json!({"type": "NodePort", "ports": [
            {"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30081}]}));
        let before = ports.used();
        let err = plan_node_ports_for_update(&plain, &taken, &mut ports, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.ports[1].nodePort: Invalid value: 30081: provided port is already allocated"
        );
        assert_eq!(ports.used(), before);
    }

    /// §3.4: health-check transitions.
    #[test]
    fn health_check_transitions() {
        let mut ports = allocator();
        let cluster = service(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
            "ports": [{"name": "a", "port": 80, "nodePort": 30080}]}),
        );
        ports.allocate(30080).unwrap();
        let local = service(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"name": "a", "port": 80, "nodePort": 30080}]}),
        );
        let plan = plan_node_ports_for_update(&cluster, &local, &mut ports, false).unwrap();
        let hc = plan.health_check_node_port.unwrap();
        assert_eq!(plan.claimed, vec![hc]);
        let mut stored = local.clone();
        plan.apply_to(&mut stored);
        assert_eq!(held_node_ports(&stored), vec![30080, hc]);

        let plan = plan_node_ports_for_update(&stored, &cluster, &mut ports, false).unwrap();
        assert_eq!(plan.release_on_commit, vec![hc]);
    }

    #[test]
    fn patch_skips_ports_still_in_use() {
        let old = service(
            json!({"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
            "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30081}]}),
        );
        let mut new = service(json!({"type": "NodePort",
            "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30080}]}));
        patch_allocated_values(&old, &mut new);
        let spec = new.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.5"));
        assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.5".to_string()]));
        let got: Vec<Option<i32>> = spec.ports.unwrap().iter().map(|p| p.node_port).collect();
        assert_eq!(got, vec![None, Some(30080)]);
    }
}
