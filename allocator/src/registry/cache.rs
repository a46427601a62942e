//! The in-memory allocators as a cache of the objects of record, fed by watch events.
//!
//! The cache only steers the search: the API's AlreadyExists decides. Claims this process has
//! in flight are kept marked across a relist so that a rebuilt cache does not offer them again.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::IPAddress;
use kube::runtime::watcher::Event;

use crate::cluster_ip::ClusterIpAllocator;
use crate::node_port::PortAllocator;
use crate::port_range::PortRange;
use crate::registry::objects::{NodePortAllocation, ip_address_ip};
use crate::service_cidr::{IpFamily, ServiceClusterIpRanges};

/// One allocator per configured family plus the NodePort allocator, mirroring the API.
#[derive(Debug)]
pub struct ClaimCache {
    ranges: ServiceClusterIpRanges,
    ips: Vec<ClusterIpAllocator>,
    ports: PortAllocator,
    pending_ips: BTreeMap<IpAddr, usize>,
    pending_ports: BTreeMap<i32, usize>,
    ip_relist: Option<Vec<IpAddr>>,
    port_relist: Option<Vec<i32>>,
    ips_synced: bool,
    ports_synced: bool,
}

impl ClaimCache {
    /// An empty, unsynced cache over the configured ranges.
    pub fn new(ranges: &ServiceClusterIpRanges, node_ports: PortRange) -> Self {
        ClaimCache {
            ranges: ranges.clone(),
            ips: fresh_ip_allocators(ranges),
            ports: PortAllocator::new(node_ports),
            pending_ips: BTreeMap::new(),
            pending_ports: BTreeMap::new(),
            ip_relist: None,
            port_relist: None,
            ips_synced: false,
            ports_synced: false,
        }
    }

    /// Whether both watches have listed once.
    pub fn is_synced(&self) -> bool {
        self.ips_synced && self.ports_synced
    }

    /// The allocator of `family`, if configured.
    pub fn ip_allocator(&mut self, family: IpFamily) -> Option<&mut ClusterIpAllocator> {
        self.ips.iter_mut().find(|a| a.cidr().family() == family)
    }

    /// All ClusterIP allocators, primary first.
    pub fn ip_allocators(&self) -> &[ClusterIpAllocator] {
        &self.ips
    }

    /// The NodePort allocator.
    pub fn ports(&mut self) -> &mut PortAllocator {
        &mut self.ports
    }

    /// The NodePort allocator, read-only.
    pub fn port_allocator(&self) -> &PortAllocator {
        &self.ports
    }

    /// Marks `ip` as taken, whatever the allocator thinks.
    pub fn mark_ip(&mut self, ip: IpAddr) {
        if let Some(a) = self.ip_allocator(IpFamily::of(&ip)) {
            let _already_taken = a.allocate(ip);
        }
    }

    /// Frees `ip` unless a claim for it is in flight here.
    pub fn unmark_ip(&mut self, ip: IpAddr) {
        if self.pending_ips.contains_key(&ip) {
            return;
        }
        if let Some(a) = self.ip_allocator(IpFamily::of(&ip)) {
            a.release(ip);
        }
    }

    /// Marks `port` as taken.
    pub fn mark_port(&mut self, port: i32) {
        let _already_taken = self.ports.allocate(port);
    }

    /// Frees `port` unless a claim for it is in flight here.
    pub fn unmark_port(&mut self, port: i32) {
        if !self.pending_ports.contains_key(&port) {
            self.ports.release(port);
        }
    }

    /// Notes that a create for `ip` is in flight.
    pub fn begin_ip(&mut self, ip: IpAddr) {
        *self.pending_ips.entry(ip).or_default() += 1;
    }

    /// Notes that the create for `ip` finished.
    pub fn end_ip(&mut self, ip: IpAddr) {
        end(&mut self.pending_ips, &ip);
    }

    /// Notes that a create for `port` is in flight.
    pub fn begin_port(&mut self, port: i32) {
        *self.pending_ports.entry(port).or_default() += 1;
    }

    /// Notes that the create for `port` finished.
    pub fn end_port(&mut self, port: i32) {
        end(&mut self.pending_ports, &port);
    }

    /// Applies one watch event over IPAddresses.
    pub fn apply_ip_event(&mut self, event: &Event<IPAddress>) {
        match event {
            Event::Apply(obj) => {
                if let Some(ip) = ip_address_ip(obj) {
                    self.mark_ip(ip);
                }
            }
            Event::Delete(obj) => {
                if let Some(ip) = ip_address_ip(obj) {
                    self.unmark_ip(ip);
                }
            }
            Event::Init => self.ip_relist = Some(Vec::new()),
            Event::InitApply(obj) => {
                if let (Some(buffer), Some(ip)) = (self.ip_relist.as_mut(), ip_address_ip(obj)) {
                    buffer.push(ip);
                }
            }
            Event::InitDone => {
                let listed = self.ip_relist.take().unwrap_or_default();
                self.ips = fresh_ip_allocators(&self.ranges);
                let pending: Vec<IpAddr> = self.pending_ips.keys().copied().collect();
                for ip in listed.into_iter().chain(pending) {
                    self.mark_ip(ip);
                }
                self.ips_synced = true;
            }
        }
    }

    /// Applies one watch event over NodePortAllocations.
    pub fn apply_port_event(&mut self, event: &Event<NodePortAllocation>) {
        match event {
            Event::Apply(obj) => self.mark_port(obj.spec.port),
            Event::Delete(obj) => self.unmark_port(obj.spec.port),
            Event::Init => self.port_relist = Some(Vec::new()),
            Event::InitApply(obj) => {
                if let Some(buffer) = self.port_relist.as_mut() {
                    buffer.push(obj.spec.port);
                }
            }
            Event::InitDone => {
                let listed = self.port_relist.take().unwrap_or_default();
                self.ports = PortAllocator::new(self.ports.range());
                let pending: Vec<i32> = self.pending_ports.keys().copied().collect();
                for port in listed.into_iter().chain(pending) {
                    self.mark_port(port);
                }
                self.ports_synced = true;
            }
        }
    }
}

fn end<K: Ord>(pending: &mut BTreeMap<K, usize>, key: &K) {
    if let Some(count) = pending.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            pending.remove(key);
        }
    }
}

fn fresh_ip_allocators(ranges: &ServiceClusterIpRanges) -> Vec<ClusterIpAllocator> {
    ranges
        .all()
        .into_iter()
        .map(|cidr| ClusterIpAllocator::new(cidr.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::objects::{ServiceRef, ip_address_claim};
    use crate::service_cidr::BitmapSizeLimit;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn relist_rebuilds_but_keeps_claims_in_flight() {
        let ranges =
            ServiceClusterIpRanges::parse("10.96.0.0/24", BitmapSizeLimit::Enforced).unwrap();
        let mut cache = ClaimCache::new(&ranges, PortRange::default());
        let parent = ServiceRef {
            namespace: "default".into(),
            name: "a".into(),
            uid: None,
        };
        assert!(!cache.is_synced());
        cache.apply_ip_event(&Event::Init);
        cache.apply_ip_event(&Event::InitApply(ip_address_claim(
            ip("10.96.0.5"),
            &parent,
        )));
        cache.apply_ip_event(&Event::InitDone);
        assert!(cache.ip_allocators()[0].contains(ip("10.96.0.5")));

        cache.mark_ip(ip("10.96.0.7"));
        cache.begin_ip(ip("10.96.0.7"));
        // A relist that does not yet show the in-flight claim and drops .5.
        cache.apply_ip_event(&Event::Init);
        cache.apply_ip_event(&Event::InitDone);
        assert!(!cache.ip_allocators()[0].contains(ip("10.96.0.5")));
        assert!(cache.ip_allocators()[0].contains(ip("10.96.0.7")));
        // A delete seen while the claim is in flight does not free it.
        cache.apply_ip_event(&Event::Delete(ip_address_claim(ip("10.96.0.7"), &parent)));
        assert!(cache.ip_allocators()[0].contains(ip("10.96.0.7")));
        cache.end_ip(ip("10.96.0.7"));
        cache.apply_ip_event(&Event::Delete(ip_address_claim(ip("10.96.0.7"), &parent)));
        assert!(!cache.ip_allocators()[0].contains(ip("10.96.0.7")));
        // Addresses outside the range are ignored.
        cache.apply_ip_event(&Event::Apply(ip_address_claim(ip("192.168.0.1"), &parent)));
        assert_eq!(cache.ip_allocators()[0].used(), 0);
    }
}
