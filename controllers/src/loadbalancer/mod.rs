//! LoadBalancer IPs for the playground, as MetalLB or cloud-provider-kind give them: a Service of
//! type LoadBalancer without `spec.loadBalancerClass` gets `status.loadBalancer.ingress` with
//! one IP per IP family of the Service (`ipMode: VIP`) from a configured pool; the IPs go back
//! to the pool when the Service stops being a LoadBalancer or is deleted. An exhausted pool
//! leaves the Service without IPs and says so in a Warning event.
//!
//! The pool is pure: [`LoadBalancerPool`] holds which Service has which IP, and
//! [`plan_service`] decides one Service's ingress. Assignments of record live in the Services'
//! status; a restarted controller restores them from there ([`LoadBalancerPool::restore`],
//! oldest Service first, so that two Services never share an IP).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, Service};

use crate::runtime::ObjectKey;

#[cfg(test)]
mod tests;

/// The playground's default pool: a block of the benchmarking range (RFC 2544) and of the IPv6
/// documentation range (RFC 3849), which no real network routes.
pub const DEFAULT_POOL: &[&str] = &["198.18.100.0/24", "2001:db8:18:100::/120"];

/// The event reason of an exhausted pool (MetalLB's).
pub const ALLOCATION_FAILED: &str = "AllocationFailed";
/// The event reason of a new assignment (MetalLB's).
pub const IP_ALLOCATED: &str = "IPAllocated";
/// `ipMode` of every ingress: the IP is a virtual IP the proxy handles on the nodes.
pub const IP_MODE_VIP: &str = "VIP";

/// A pool entry that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// Neither a CIDR nor a `first-last` range.
    #[error(
        "invalid LoadBalancer IP pool entry {0:?}: expected a CIDR (198.18.100.0/24) or a range (198.18.100.10-198.18.100.20)"
    )]
    Invalid(String),
    /// A range whose ends are of different families or in the wrong order.
    #[error("invalid LoadBalancer IP range {0:?}: both ends must be of one family, first <= last")]
    BadRange(String),
}

/// An IP family, as `spec.ipFamilies` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    fn parse(name: &str) -> Option<Family> {
        match name {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }

    /// `IPv4` or `IPv6`.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// An inclusive range of addresses of one family, as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PoolRange {
    family: Family,
    first: u128,
    last: u128,
}

fn to_number(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

fn from_number(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(std::net::Ipv4Addr::from(n as u32)),
        Family::V6 => IpAddr::V6(std::net::Ipv6Addr::from(n)),
    }
}

impl PoolRange {
    /// A CIDR (its IPv4 network and broadcast addresses left out, as MetalLB's
    /// `avoidBuggyIPs`, up to /30; its IPv6 subnet-router anycast address, up to /126) or
    /// `first-last`.
    fn parse(entry: &str) -> Result<PoolRange, PoolError> {
        let entry = entry.trim();
        if let Some((first, last)) = entry.split_once('-') {
            let parse = |s: &str| {
                s.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| PoolError::Invalid(entry.to_string()))
            };
            let (first, last) = (parse(first)?, parse(last)?);
            if Family::of(&first) != Family::of(&last) || to_number(&first) > to_number(&last) {
                return Err(PoolError::BadRange(entry.to_string()));
            }
            return Ok(PoolRange {
                family: Family::of(&first),
                first: to_number(&first),
                last: to_number(&last),
            });
        }
        let net: ipnet::IpNet = entry
            .parse()
            .map_err(|_| PoolError::Invalid(entry.to_string()))?;
        let family = Family::of(&net.network());
        let (mut first, mut last) = (to_number(&net.network()), to_number(&net.broadcast()));
        match family {
            Family::V4 if net.prefix_len() <= 30 => {
                first += 1;
                last -= 1;
            }
            // The all-zero interface ID is the Subnet-Router anycast address (RFC 4291).
            Family::V6 if net.prefix_len() <= 126 => first += 1,
            _ => {}
        }
        Ok(PoolRange {
            family,
            first,
            last,
        })
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        Family::of(ip) == self.family && (self.first..=self.last).contains(&to_number(ip))
    }
}

/// Which Service holds which IP of the pool.
#[derive(Clone, Debug, Default)]
pub struct LoadBalancerPool {
    ranges: Vec<PoolRange>,
    holders: BTreeMap<IpAddr, ObjectKey>,
}

impl LoadBalancerPool {
    /// A pool of CIDRs and `first-last` ranges, handed out in the order given.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, PoolError> {
        let ranges = entries
            .iter()
            .map(|e| PoolRange::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(LoadBalancerPool {
            ranges,
            holders: BTreeMap::new(),
        })
    }

    /// Whether `ip` is one the pool hands out.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// The IPs `service` holds, in address order.
    pub fn assigned_to(&self, service: &ObjectKey) -> Vec<IpAddr> {
        self.holders
            .iter()
            .filter(|(_, k)| *k == service)
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// Who holds `ip`.
    pub fn holder(&self, ip: &IpAddr) -> Option<&ObjectKey> {
        self.holders.get(ip)
    }

    /// Claims `ip` for `service` if it is in the pool and free (or already its own).
    pub fn claim(&mut self, service: &ObjectKey, ip: IpAddr) -> bool {
        if !self.contains(&ip) {
            return false;
        }
        match self.holders.get(&ip) {
            Some(holder) => holder == service,
            None => {
                self.holders.insert(ip, service.clone());
                true
            }
        }
    }

    /// The lowest free IP of `family`, claimed for `service`; `None` when the pool has none.
    pub fn allocate(&mut self, service: &ObjectKey, family: Family) -> Option<IpAddr> {
        for range in self.ranges.iter().filter(|r| r.family == family) {
            let mut n = range.first;
            loop {
                let ip = from_number(family, n);
                if let std::collections::btree_map::Entry::Vacant(free) = self.holders.entry(ip) {
                    free.insert(service.clone());
                    return Some(ip);
                }
                if n == range.last {
                    break;
                }
                n += 1;
            }
        }
        None
    }

    /// Gives back every IP `service` holds; what was released.
    pub fn release(&mut self, service: &ObjectKey) -> Vec<IpAddr> {
        let released = self.assigned_to(service);
        for ip in &released {
            self.holders.remove(ip);
        }
        released
    }

    /// Rebuilds the assignments from Services' status at start: every LoadBalancer Service's
    /// ingress IPs that are in the pool, claimed oldest Service first; an IP already claimed
    /// stays with the older Service (the younger one gets a new IP when it syncs).
    pub fn restore(&mut self, services: &[&Service]) {
        let mut ordered: Vec<&Service> = services
            .iter()
            .copied()
            .filter(|s| wants_load_balancer(s))
            .collect();
        ordered.sort_by_key(|s| {
            (
                s.metadata.creation_timestamp.as_ref().map(|t| t.0),
                ObjectKey::of(*s),
            )
        });
        for service in ordered {
            let key = ObjectKey::of(service);
            for ip in ingress_ips(service) {
                self.claim(&key, ip);
            }
        }
    }
}

/// Whether the Service should have an IP from this pool: type LoadBalancer, no
/// `loadBalancerClass` (another implementation's), not being deleted.
pub fn wants_load_balancer(service: &Service) -> bool {
    let Some(spec) = service.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.load_balancer_class.is_none()
        && service.metadata.deletion_timestamp.is_none()
}

/// The Service's IP families: `spec.ipFamilies`, else those of its ClusterIPs, else IPv4.
pub fn service_families(service: &Service) -> Vec<Family> {
    let spec = service.spec.as_ref();
    let mut families: Vec<Family> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|f| Family::parse(f))
        .collect();
    if families.is_empty() {
        families = spec
            .and_then(|s| s.cluster_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| Family::of(&ip))
            .collect();
    }
    families.dedup();
    if families.is_empty() {
        families.push(Family::V4);
    }
    families
}

/// The IPs in the Service's `status.loadBalancer.ingress`.
pub fn ingress_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// An event about the Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancerEvent {
    /// Warning rather than Normal.
    pub warning: bool,
    /// The reason.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// What one sync of a Service decides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadBalancerDecision {
    /// The ingress to write, when it differs from the Service's (an empty list clears it).
    pub ingress: Option<Vec<LoadBalancerIngress>>,
    /// An event to record.
    pub event: Option<LoadBalancerEvent>,
    /// IPs released: other Services waiting for an IP may get one now.
    pub released: Vec<IpAddr>,
}

/// The ingress entries of `ips`, as MetalLB writes them, with `ipMode: VIP`.
pub fn ingress_of(ips: &[IpAddr]) -> Vec<LoadBalancerIngress> {
    ips.iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.to_string()),
            ip_mode: Some(IP_MODE_VIP.to_string()),
            ..LoadBalancerIngress::default()
        })
        .collect()
}

fn current_ingress(service: &Service) -> Vec<LoadBalancerIngress> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
}

/// Decides the ingress of the Service at `key` (`None`: deleted), updating `pool`.
pub fn plan_service(
    key: &ObjectKey,
    service: Option<&Service>,
    pool: &mut LoadBalancerPool,
) -> LoadBalancerDecision {
    let Some(service) = service.filter(|s| wants_load_balancer(s)) else {
        let released = pool.release(key);
        // A Service that stopped being a LoadBalancer loses the ingress this pool gave it.
        let ingress = service
            .filter(|s| ingress_ips(s).iter().any(|ip| pool.contains(ip)))
            .map(|_| Vec::new());
        return LoadBalancerDecision {
            ingress,
            event: None,
            released,
        };
    };
    let name = format!("{}/{}", key.namespace, key.name);
    let families = service_families(service);
    // Keep what the Service holds (or shows in its status and may still claim), per family.
    let held = pool.assigned_to(key);
    let shown = ingress_ips(service);
    let requested = service
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .filter(|ip| !ip.is_empty());
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut newly_allocated = false;
    for family in &families {
        if let Some(requested) = requested.and_then(|r| r.parse::<IpAddr>().ok())
            && Family::of(&requested) == *family
        {
            if pool.claim(key, requested) {
                newly_allocated |= !held.contains(&requested);
                ips.push(requested);
                continue;
            }
            let why = match pool.holder(&requested) {
                Some(holder) => format!("{requested} is already in use by {holder}"),
                None => format!("{requested} is not in the LoadBalancer IP pool"),
            };
            return fail(key, service, pool, &name, why);
        }
        let keep = held
            .iter()
            .chain(shown.iter())
            .find(|ip| Family::of(ip) == *family && pool.claim(key, **ip))
            .copied();
        match keep.or_else(|| pool.allocate(key, *family)) {
            Some(ip) => {
                newly_allocated |= !held.contains(&ip);
                ips.push(ip);
            }
            None => return fail(key, service, pool, &name, "no available IPs".into()),
        }
    }
    // IPs of families the Service no longer has (or an old requested IP) go back.
    let mut released = Vec::new();
    for ip in pool.assigned_to(key) {
        if !ips.contains(&ip) {
            pool.holders.remove(&ip);
            released.push(ip);
        }
    }
    let wanted = ingress_of(&ips);
    let ingress = (current_ingress(service) != wanted).then_some(wanted);
    let event = (newly_allocated && ingress.is_some()).then(|| LoadBalancerEvent {
        warning: false,
        reason: IP_ALLOCATED,
        message: format!(
            "Assigned IP [{}]",
            ips.iter()
                .map(|ip| format!("\"{ip}\""))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    });
    LoadBalancerDecision {
        ingress,
        event,
        released,
    }
}

/// All or nothing: a Service that cannot get every family gets no IP (what it showed from the
/// pool is cleared), and a Warning event.
fn fail(
    key: &ObjectKey,
    service: &Service,
    pool: &mut LoadBalancerPool,
    name: &str,
    why: String,
) -> LoadBalancerDecision {
    let released = pool.release(key);
    let ingress = ingress_ips(service)
        .iter()
        .any(|ip| pool.contains(ip))
        .then(Vec::new);
    LoadBalancerDecision {
        ingress,
        event: Some(LoadBalancerEvent {
            warning: true,
            reason: ALLOCATION_FAILED,
            message: format!("Failed to allocate IP for \"{name}\": {why}"),
        }),
        released,
    }
}
