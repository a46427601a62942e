//! A test fixture (feature `testing`): a [`ServiceAllocator`] over the pure allocators held in
//! process memory, so the admission server's tests need no API server behind their allocations.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use allocator::{
    AllocationError, ClusterIpAllocator, IpFamily, IpRequest, PortAllocator, PortRange,
    ServiceAllocationError, ServiceClusterIpRanges, held_cluster_ips, held_node_ports,
    patch_allocated_values, plan_cluster_ips_for_create, plan_cluster_ips_for_update,
    plan_node_ports_for_create, plan_node_ports_for_update,
};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;

use crate::server::allocation::{Allocation, AllocationRejection, HeldValues, ServiceAllocator};

type Owner = (String, String);

fn owner_of(service: &Service) -> Owner {
    (
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

struct MemoryState {
    ips: Vec<ClusterIpAllocator>,
    ports: PortAllocator,
    ip_owners: BTreeMap<IpAddr, Owner>,
    port_owners: BTreeMap<i32, Owner>,
}

/// An allocator kept in process memory, for the webhook's own tests, benches and fuzzing
/// (feature `testing`): nothing is durable and replicas do not agree, so the webhook in
/// production and in `svcplane up` allocates through the registry instead.
pub struct InMemoryAllocator {
    ranges: ServiceClusterIpRanges,
    state: Mutex<MemoryState>,
}

impl InMemoryAllocator {
    /// An empty allocator over `ranges` and `node_ports`.
    pub fn new(ranges: ServiceClusterIpRanges, node_ports: PortRange) -> Self {
        let ips = ranges
            .all()
            .into_iter()
            .map(|cidr| ClusterIpAllocator::new(cidr.clone()))
            .collect();
        InMemoryAllocator {
            ranges,
            state: Mutex::new(MemoryState {
                ips,
                ports: PortAllocator::new(node_ports),
                ip_owners: BTreeMap::new(),
                port_owners: BTreeMap::new(),
            }),
        }
    }

    /// Marks what existing Services hold (e.g. after listing them at start-up).
    pub fn restore<'a>(&self, services: impl IntoIterator<Item = &'a Service>) {
        let mut state = self.lock();
        for service in services {
            let owner = owner_of(service);
            for ip in held_cluster_ips(service) {
                if let Some(a) = state.ips.iter_mut().find(|a| a.cidr().net().contains(&ip)) {
                    let _ = a.allocate(ip);
                }
                state.ip_owners.insert(ip, owner.clone());
            }
            for port in held_node_ports(service) {
                let _ = state.ports.allocate(port);
                state.port_owners.insert(port, owner.clone());
            }
        }
    }

    /// Whether `ip` is held.
    pub fn holds_ip(&self, ip: IpAddr) -> bool {
        self.lock().ips.iter().any(|a| a.contains(ip))
    }

    /// Whether `port` is held.
    pub fn holds_port(&self, port: i32) -> bool {
        self.lock().ports.contains(port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // The state stays consistent between statements; a panic elsewhere does not poison it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // A dry run allocates for real and undoes it under the same lock, so nobody sees the claims
    // and the answer carries addresses and ports that later validation accepts (upstream's
    // dry-run fakes, the network address and ports above the range, would not pass it).
    fn allocate(
        &self,
        old: Option<&Service>,
        new: &Service,
        dry_run: bool,
    ) -> Result<Allocation, AllocationRejection> {
        let mut guard = self.lock();
        let mut allocation = self.allocate_locked(&mut guard, old, new)?;
        if dry_run {
            let claimed = std::mem::take(&mut allocation.claimed);
            for ip in &claimed.ips {
                release_ip(&mut guard, *ip);
            }
            for port in &claimed.ports {
                guard.ports.release(*port);
                guard.port_owners.remove(port);
            }
        }
        Ok(allocation)
    }

    fn allocate_locked(
        &self,
        state: &mut MemoryState,
        old: Option<&Service>,
        new: &Service,
    ) -> Result<Allocation, AllocationRejection> {
        let mut new = new.clone();
        let ip_plan = match old {
            None => plan_cluster_ips_for_create(&new, &self.ranges)?,
            Some(old) => {
                patch_allocated_values(old, &mut new);
                plan_cluster_ips_for_update(old, &new, &self.ranges)?
            }
        };
        let owner = owner_of(&new);
        let old_ips = old.map(held_cluster_ips).unwrap_or_default();
        let mut ips = Vec::with_capacity(ip_plan.requests.len());
        let mut claimed_ips = Vec::new();
        let mut outcome = Ok(());
        for (family, request) in &ip_plan.requests {
            match claim_ip(
                state,
                *family,
                request,
                &ip_plan.printed_cluster_ips,
                &old_ips,
            ) {
                Ok((ip, claimed)) => {
                    ips.push(ip);
                    if claimed {
                        claimed_ips.push(ip);
                    }
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        let port_plan = outcome.and_then(|()| match old {
            None => plan_node_ports_for_create(&new, &mut state.ports, false),
            Some(old) => plan_node_ports_for_update(old, &new, &mut state.ports, false),
        });
        let port_plan = match port_plan {
            Ok(plan) => plan,
            Err(e) => {
                for ip in &claimed_ips {
                    release_ip(state, *ip);
                }
                return Err(e.into());
            }
        };
        for ip in &claimed_ips {
            state.ip_owners.insert(*ip, owner.clone());
        }
        for port in &port_plan.claimed {
            state.port_owners.insert(*port, owner.clone());
        }
        let mut service = new;
        ip_plan.apply_to(&mut service, &ips);
        port_plan.apply_to(&mut service);
        let dropped = match old {
            None => HeldValues::default(),
            Some(old) => {
                let now = HeldValues::of(&service);
                let before = HeldValues::of(old);
                HeldValues {
                    ips: before
                        .ips
                        .into_iter()
                        .filter(|ip| !now.ips.contains(ip))
                        .collect(),
                    ports: before
                        .ports
                        .into_iter()
                        .filter(|p| !now.ports.contains(p))
                        .collect(),
                }
            }
        };
        Ok(Allocation {
            service,
            claimed: HeldValues {
                ips: claimed_ips,
                ports: port_plan.claimed,
            },
            dropped,
        })
    }
}

// Returns the address and whether this write claimed it.
fn claim_ip(
    state: &mut MemoryState,
    family: IpFamily,
    request: &IpRequest,
    printed: &[String],
    old_ips: &[IpAddr],
) -> Result<(IpAddr, bool), ServiceAllocationError> {
    let allocator = state.ips.iter_mut().find(|a| a.cidr().family() == family);
    match request {
        IpRequest::Static { ip, .. } if old_ips.contains(ip) => Ok((*ip, false)),
        IpRequest::Static { ip, requested } => {
            let refusal = |source| ServiceAllocationError::ClusterIp {
                cluster_ips: printed.to_vec(),
                requested: requested.clone(),
                source,
            };
            let Some(allocator) = allocator else {
                return Err(refusal(AllocationError::MismatchedNetwork));
            };
            // The IPAddress allocator finds no range for an address outside every CIDR.
            if allocator.dry_run_allocate(*ip).is_err() {
                return Err(refusal(AllocationError::MismatchedNetwork));
            }
            allocator.allocate(*ip).map_err(refusal)?;
            Ok((*ip, true))
        }
        IpRequest::Dynamic => {
            let Some(allocator) = allocator else {
                return Err(ServiceAllocationError::ClusterIpDynamic(
                    AllocationError::Full,
                ));
            };
            let ip = allocator
                .allocate_next()
                .map_err(ServiceAllocationError::ClusterIpDynamic)?;
            Ok((ip, true))
        }
    }
}

fn release_ip(state: &mut MemoryState, ip: IpAddr) {
    for a in &mut state.ips {
        a.release(ip);
    }
    state.ip_owners.remove(&ip);
}

impl ServiceAllocator for InMemoryAllocator {
    fn allocate_for_create<'a>(
        &'a self,
        service: &'a Service,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Allocation, AllocationRejection>> {
        Box::pin(async move { self.allocate(None, service, dry_run) })
    }

    fn allocate_for_update<'a>(
        &'a self,
        old: &'a Service,
        new: &'a Service,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Allocation, AllocationRejection>> {
        Box::pin(async move { self.allocate(Some(old), new, dry_run) })
    }

    fn release<'a>(
        &'a self,
        owner: &'a Service,
        values: &'a HeldValues,
    ) -> BoxFuture<'a, Result<(), AllocationRejection>> {
        Box::pin(async move {
            let owner = owner_of(owner);
            let mut state = self.lock();
            for ip in &values.ips {
                if state.ip_owners.get(ip) == Some(&owner) {
                    release_ip(&mut state, *ip);
                }
            }
            for port in &values.ports {
                if state.port_owners.get(port) == Some(&owner) {
                    state.ports.release(*port);
                    state.port_owners.remove(port);
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::ValueRendering;
    use allocator::BitmapSizeLimit;
    use serde_json::{Value, json};

    fn memory() -> InMemoryAllocator {
        InMemoryAllocator::new(
            ServiceClusterIpRanges::parse("10.96.0.0/12", BitmapSizeLimit::Enforced).unwrap(),
            PortRange::parse("30000-32767").unwrap(),
        )
    }

    fn service(v: Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn create_fills_in_families_ip_and_node_port_and_release_frees_them() {
        let a = memory();
        let svc = service(json!({"metadata":{"name":"web","namespace":"default"},
            "spec":{"type":"NodePort","ports":[{"port":80,"protocol":"TCP"}]}}));
        let out = block_on(a.allocate_for_create(&svc, false)).unwrap();
        let spec = out.service.spec.clone().unwrap();
        let ip: IpAddr = spec.cluster_ip.clone().unwrap().parse().unwrap();
        assert!(
            "10.96.0.0/12"
                .parse::<ipnet::IpNet>()
                .unwrap()
                .contains(&ip)
        );
        assert_eq!(spec.cluster_ips, Some(vec![ip.to_string()]));
        assert_eq!(spec.ip_families, Some(vec!["IPv4".to_owned()]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        let np = spec.ports.unwrap()[0].node_port.unwrap();
        assert!((30000..=32767).contains(&np));
        assert_eq!(
            out.claimed,
            HeldValues {
                ips: vec![ip],
                ports: vec![np]
            }
        );
        assert!(a.holds_ip(ip) && a.holds_port(np));
        block_on(a.release(&out.service, &out.claimed)).unwrap();
        assert!(!a.holds_ip(ip) && !a.holds_port(np));
    }

    #[test]
    fn static_claims_are_judged_in_upstream_words() {
        let a = memory();
        let first = service(json!({"metadata":{"name":"a","namespace":"default"},
            "spec":{"clusterIP":"10.96.0.10","ports":[{"port":80}]}}));
        block_on(a.allocate_for_create(&first, false)).unwrap();
        let second = service(json!({"metadata":{"name":"b","namespace":"default"},
            "spec":{"clusterIP":"10.96.0.10","ports":[{"port":80}]}}));
        let err = block_on(a.allocate_for_create(&second, false)).unwrap_err();
        assert_eq!(
            err.to_status("b", ValueRendering::Json).message,
            "Service \"b\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated"
        );
        let outside = service(json!({"metadata":{"name":"c","namespace":"default"},
            "spec":{"clusterIP":"192.168.0.10","ports":[{"port":80}]}}));
        let err = block_on(a.allocate_for_create(&outside, false)).unwrap_err();
        assert_eq!(
            err.to_status("c", ValueRendering::Json).message,
            "Service \"c\" is invalid: spec.clusterIPs: Invalid value: [\"192.168.0.10\"]: failed to allocate IP 192.168.0.10: the provided network does not match the current range"
        );
        let low = service(json!({"metadata":{"name":"d","namespace":"default"},
            "spec":{"type":"NodePort","ports":[{"port":80,"nodePort":80}]}}));
        let err = block_on(a.allocate_for_create(&low, false)).unwrap_err();
        assert_eq!(
            err.to_status("d", ValueRendering::Json).to_json(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Service \"d\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767","reason":"Invalid","details":{"name":"d","kind":"Service","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767","field":"spec.ports[0].nodePort"}]},"code":422}"#
        );
        // A failed write leaves nothing behind: the ClusterIP of `d` was released again.
        assert_eq!(a.lock().ips[0].used(), 1);
    }

    #[test]
    fn dry_run_claims_nothing() {
        let a = memory();
        let svc = service(json!({"metadata":{"name":"web","namespace":"default"},
            "spec":{"type":"NodePort","clusterIP":"10.96.0.20","ports":[{"port":80,"nodePort":30080}]}}));
        let out = block_on(a.allocate_for_create(&svc, true)).unwrap();
        assert!(out.claimed.is_empty());
        assert!(!a.holds_ip("10.96.0.20".parse().unwrap()) && !a.holds_port(30080));
    }
}
