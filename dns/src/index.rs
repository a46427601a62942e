//! The in-memory index the answers are computed from: Services, EndpointSlices, Namespaces and
//! Pods as plain data, with the lookups CoreDNS's informer indexes give it (by Service, by IP).
//! Fed by watch events in the shell, by hand in tests. Sorted maps throughout, so that answers
//! come out in one order whatever order the events came in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::objects::{PodInfo, ServiceInfo, ServiceKind, SliceInfo};

/// `(namespace, name)`.
pub type Key = (String, String);

/// The objects DNS answers from.
#[derive(Clone, Debug, Default)]
pub struct DnsIndex {
    services: BTreeMap<Key, ServiceInfo>,
    slices: BTreeMap<Key, SliceInfo>,
    slices_by_service: BTreeMap<Key, BTreeSet<String>>,
    namespaces: BTreeSet<String>,
    pods: BTreeMap<Key, PodInfo>,
    services_by_ip: BTreeMap<IpAddr, BTreeSet<Key>>,
    slices_by_ip: BTreeMap<IpAddr, BTreeSet<Key>>,
    pods_by_ip: BTreeMap<String, BTreeSet<Key>>,
    serial: u32,
    synced: bool,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_owned(), name.to_owned())
}

fn unlink<K: Ord, V: Ord>(map: &mut BTreeMap<K, BTreeSet<V>>, k: &K, v: &V) {
    if let Some(set) = map.get_mut(k) {
        set.remove(v);
        if set.is_empty() {
            map.remove(k);
        }
    }
}

impl DnsIndex {
    /// An empty index, not yet synced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a Service; whether anything DNS shows changed.
    pub fn apply_service(&mut self, service: ServiceInfo) -> bool {
        let k = key(&service.namespace, &service.name);
        if self.services.get(&k) == Some(&service) {
            return false;
        }
        self.delete_service(&service.namespace, &service.name);
        if let ServiceKind::ClusterIp(ips) = &service.kind {
            for ip in ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
                self.services_by_ip.entry(ip).or_default().insert(k.clone());
            }
        }
        self.services.insert(k, service);
        true
    }

    /// Removes a Service; whether it was there.
    pub fn delete_service(&mut self, namespace: &str, name: &str) -> bool {
        let k = key(namespace, name);
        let Some(old) = self.services.remove(&k) else {
            return false;
        };
        if let ServiceKind::ClusterIp(ips) = &old.kind {
            for ip in ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
                unlink(&mut self.services_by_ip, &ip, &k);
            }
        }
        true
    }

    /// Adds or replaces an EndpointSlice; whether anything DNS shows changed.
    pub fn apply_slice(&mut self, slice: SliceInfo) -> bool {
        let k = key(&slice.namespace, &slice.name);
        if self.slices.get(&k) == Some(&slice) {
            return false;
        }
        self.delete_slice(&slice.namespace, &slice.name);
        self.slices_by_service
            .entry(key(&slice.namespace, &slice.service))
            .or_default()
            .insert(slice.name.clone());
        for ip in slice.addresses.iter().filter_map(|a| a.ip.parse().ok()) {
            self.slices_by_ip.entry(ip).or_default().insert(k.clone());
        }
        self.slices.insert(k, slice);
        true
    }

    /// Removes an EndpointSlice; whether it was there.
    pub fn delete_slice(&mut self, namespace: &str, name: &str) -> bool {
        let k = key(namespace, name);
        let Some(old) = self.slices.remove(&k) else {
            return false;
        };
        unlink(
            &mut self.slices_by_service,
            &key(namespace, &old.service),
            &old.name,
        );
        for ip in old.addresses.iter().filter_map(|a| a.ip.parse().ok()) {
            unlink(&mut self.slices_by_ip, &ip, &k);
        }
        true
    }

    /// Records that a Namespace exists; whether it is new.
    pub fn apply_namespace(&mut self, name: &str) -> bool {
        self.namespaces.insert(name.to_owned())
    }

    /// Forgets a Namespace; whether it was there.
    pub fn delete_namespace(&mut self, name: &str) -> bool {
        self.namespaces.remove(name)
    }

    /// Adds or replaces a Pod (`pods verified`); whether anything DNS shows changed.
    pub fn apply_pod(&mut self, pod: PodInfo) -> bool {
        let k = key(&pod.namespace, &pod.name);
        if self.pods.get(&k) == Some(&pod) {
            return false;
        }
        self.delete_pod(&pod.namespace, &pod.name);
        for ip in &pod.ips {
            self.pods_by_ip
                .entry(ip.clone())
                .or_default()
                .insert(k.clone());
        }
        self.pods.insert(k, pod);
        true
    }

    /// Removes a Pod; whether it was there.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) -> bool {
        let k = key(namespace, name);
        let Some(old) = self.pods.remove(&k) else {
            return false;
        };
        for ip in &old.ips {
            unlink(&mut self.pods_by_ip, ip, &k);
        }
        true
    }

    /// The SOA serial: Unix seconds of the last change DNS shows (0 before any).
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Sets the SOA serial (the shell's clock; tests pick one).
    pub fn set_serial(&mut self, serial: u32) {
        self.serial = serial;
    }

    /// Whether every watched kind has been listed once; until then would-be NXDOMAINs are
    /// SERVFAIL, as CoreDNS answers before its caches sync.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Marks the index synced (or not).
    pub fn set_synced(&mut self, synced: bool) {
        self.synced = synced;
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.services.get(&key(namespace, name))
    }

    /// Every Service, by namespace and name.
    pub fn services(&self) -> impl Iterator<Item = &ServiceInfo> {
        self.services.values()
    }

    /// Services named `name` in `namespace`, compared case-insensitively as CoreDNS's `match`.
    pub fn services_named(&self, namespace: &str, name: &str) -> Vec<&ServiceInfo> {
        if let Some(exact) = self.service(namespace, name) {
            return vec![exact];
        }
        // API names are lower-case, and so are parsed query names: this is for odd cases only.
        self.services
            .values()
            .filter(|s| {
                s.namespace.eq_ignore_ascii_case(namespace) && s.name.eq_ignore_ascii_case(name)
            })
            .collect()
    }

    /// The slices labelled with Service `namespace/service`, by slice name.
    pub fn slices_of(&self, namespace: &str, service: &str) -> Vec<&SliceInfo> {
        self.slices_by_service
            .get(&key(namespace, service))
            .into_iter()
            .flatten()
            .filter_map(|name| self.slices.get(&key(namespace, name)))
            .collect()
    }

    /// Whether the Namespace exists.
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// Services with `ip` among their ClusterIPs.
    pub fn services_with_ip(&self, ip: IpAddr) -> Vec<&ServiceInfo> {
        self.services_by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|k| self.services.get(k))
            .collect()
    }

    /// Slices with a ready address equal to `ip`.
    pub fn slices_with_ip(&self, ip: IpAddr) -> Vec<&SliceInfo> {
        self.slices_by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|k| self.slices.get(k))
            .collect()
    }

    /// Pods with `ip` (as written) among their IPs.
    pub fn pods_with_ip(&self, ip: &str) -> Vec<&PodInfo> {
        self.pods_by_ip
            .get(ip)
            .into_iter()
            .flatten()
            .filter_map(|k| self.pods.get(k))
            .collect()
    }

    /// Keys of every Service, for a relist to find the deleted ones.
    pub fn service_keys(&self) -> BTreeSet<Key> {
        self.services.keys().cloned().collect()
    }

    /// Keys of every EndpointSlice.
    pub fn slice_keys(&self) -> BTreeSet<Key> {
        self.slices.keys().cloned().collect()
    }

    /// Keys of every Pod.
    pub fn pod_keys(&self) -> BTreeSet<Key> {
        self.pods.keys().cloned().collect()
    }

    /// Every Namespace.
    pub fn namespace_names(&self) -> BTreeSet<String> {
        self.namespaces.clone()
    }
}
