//! Pods and slices with the hashes the planner matches them on, computed once per object
//! version (when the controller caches it) instead of on every plan.
//!
//! A re-plan of an unchanged 10,000-pod Service spends its time matching each pod to the
//! existing endpoint with the same identity and asking whether the two are equal. Reading
//! the strings of both sides for that touches a dozen scattered allocations per pod; with
//! these hashes a pod costs one table probe and two integer comparisons.
//!
//! Endpoint identity and equality are then decided on 64-bit digests of exactly the fields
//! upstream compares (identity: sorted addresses, hostname, targetRef namespace and name,
//! the fields of upstream's `endpointHash`, which itself is a 32-bit FNV hash; equality
//! beyond identity: conditions, node, zone, targetRef uid and shape). Two different
//! endpoints of one Service would have to collide in both the name hash and a digest to be
//! taken for each other.

use std::hash::Hasher;
use std::ops::Deref;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use super::endpoint::FastHasher;
use super::pod::{PodInfo, is_ipv6_canonical};
use super::slice::PortKey;

/// The hash of a string (length-delimited, so `"ab" + "c"` and `"a" + "bc"` differ).
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write(s.as_bytes());
    hasher.write_usize(s.len());
    hasher.finish()
}

/// The hash of an optional string; unset differs from empty.
pub(crate) fn hash_opt(s: Option<&str>) -> u64 {
    match s {
        Some(s) => hash_str(s),
        None => UNSET,
    }
}

/// Stands for an unset string in a digest.
const UNSET: u64 = 0x6a09_e667_f3bc_c908;

/// One digest of several hashes, order-sensitive.
pub(crate) fn combine(parts: &[u64]) -> u64 {
    let mut hasher = FastHasher::default();
    for part in parts {
        hasher.write_u64(*part);
    }
    hasher.finish()
}

/// The hash of an address list as upstream's endpoint hash sees it: sorted.
fn hash_addresses<'a>(addresses: impl Iterator<Item = &'a str>) -> u64 {
    let mut sorted: Vec<&str> = addresses.collect();
    sorted.sort_unstable();
    let mut parts: Vec<u64> = Vec::with_capacity(sorted.len() + 1);
    parts.push(sorted.len() as u64);
    parts.extend(sorted.iter().map(|a| hash_str(a)));
    combine(&parts)
}

/// The three conditions and the targetRef's shape, packed: each condition is unset (0),
/// false (1) or true (2), as upstream compares the pointers' values.
pub(crate) fn condition_word(
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
    target_is_pod: bool,
) -> u64 {
    let state = |c: Option<bool>| match c {
        None => 0u64,
        Some(false) => 1,
        Some(true) => 2,
    };
    state(ready) | state(serving) << 2 | state(terminating) << 4 | u64::from(target_is_pod) << 6
}

/// The digest of everything [`Endpoint`] equality compares beyond identity.
pub(crate) fn details_digest(conditions: u64, node_name: u64, zone: u64, uid: u64) -> u64 {
    combine(&[conditions, node_name, zone, uid])
}

/// The digest of an endpoint's identity (upstream's `endpointHash` fields).
pub(crate) fn identity_digest(addresses: u64, hostname: u64, namespace: u64, name: u64) -> u64 {
    combine(&[addresses, hostname, namespace, name])
}

/// What the planner matches a pod on, per address type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodHashes {
    pub(crate) name: u64,
    pub(crate) namespace: u64,
    pub(crate) uid: u64,
    /// `node_name`, or [`UNSET`] when the pod is not scheduled (the endpoint has no node).
    pub(crate) node_name: u64,
    pub(crate) hostname: u64,
    /// The pod's addresses of each type (IPv4, IPv6): sorted-list hash, `None` if none.
    pub(crate) addresses: [Option<u64>; 2],
}

impl PodHashes {
    fn of(pod: &PodInfo) -> Self {
        let of_type = |v6: bool| {
            let mut ips = pod
                .ips
                .iter()
                .map(String::as_str)
                .filter(|ip| is_ipv6_canonical(ip) == v6)
                .peekable();
            ips.peek().is_some().then(|| hash_addresses(ips))
        };
        PodHashes {
            name: hash_str(&pod.name),
            namespace: hash_str(&pod.namespace),
            uid: hash_str(&pod.uid),
            node_name: hash_opt(Some(&*pod.node_name).filter(|n| !n.is_empty())),
            hostname: hash_str(&pod.hostname),
            addresses: [of_type(false), of_type(true)],
        }
    }
}

/// A [`PodInfo`] with the hashes the planner matches it on. Read-only, so the hashes
/// cannot go stale: build a new one when the pod changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedPod {
    info: PodInfo,
    hashes: PodHashes,
}

impl IndexedPod {
    /// Hashes a pod's fields once.
    pub fn new(info: PodInfo) -> Self {
        let hashes = PodHashes::of(&info);
        IndexedPod { info, hashes }
    }

    /// The pod.
    pub fn info(&self) -> &PodInfo {
        &self.info
    }

    pub(crate) fn hashes(&self) -> &PodHashes {
        &self.hashes
    }
}

impl Deref for IndexedPod {
    type Target = PodInfo;

    fn deref(&self) -> &PodInfo {
        &self.info
    }
}

/// What the planner matches an existing endpoint on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EndpointHashes {
    /// The targetRef's name; `None` when it has none (such an endpoint is never kept).
    pub(crate) name: Option<u64>,
    pub(crate) identity: u64,
    pub(crate) details: u64,
}

impl EndpointHashes {
    pub(crate) fn of(endpoint: &Endpoint) -> Self {
        let target = endpoint.target_ref.as_ref();
        let namespace = target.and_then(|t| t.namespace.as_deref());
        let name = target.and_then(|t| t.name.as_deref());
        let conditions = endpoint.conditions.as_ref();
        let target_is_pod = target.is_some_and(|t| {
            t.kind.as_deref() == Some("Pod")
                && namespace.is_some()
                && name.is_some()
                && t.api_version.as_deref().unwrap_or("").is_empty()
                && t.field_path.as_deref().unwrap_or("").is_empty()
        });
        EndpointHashes {
            name: name.map(hash_str),
            identity: identity_digest(
                hash_addresses(endpoint.addresses.iter().map(String::as_str)),
                hash_str(endpoint.hostname.as_deref().unwrap_or("")),
                hash_str(namespace.unwrap_or("")),
                hash_str(name.unwrap_or("")),
            ),
            details: details_digest(
                condition_word(
                    conditions.and_then(|c| c.ready),
                    conditions.and_then(|c| c.serving),
                    conditions.and_then(|c| c.terminating),
                    target_is_pod,
                ),
                hash_opt(endpoint.node_name.as_deref()),
                hash_opt(endpoint.zone.as_deref()),
                hash_opt(target.and_then(|t| t.uid.as_deref())),
            ),
        }
    }
}

/// An [`EndpointSlice`] with its port-group key and the hashes of its endpoints. Read-only:
/// build a new one when the slice changes.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedSlice {
    slice: EndpointSlice,
    port_key: PortKey,
    endpoints: Vec<EndpointHashes>,
    any_hints: bool,
}

impl IndexedSlice {
    /// Hashes a slice's endpoints once.
    pub fn new(slice: EndpointSlice) -> Self {
        IndexedSlice {
            port_key: PortKey::of(slice.ports.as_deref()),
            endpoints: slice.endpoints.iter().map(EndpointHashes::of).collect(),
            any_hints: slice.endpoints.iter().any(|e| e.hints.is_some()),
            slice,
        }
    }

    /// The slice.
    pub fn slice(&self) -> &EndpointSlice {
        &self.slice
    }

    pub(crate) fn port_key(&self) -> &PortKey {
        &self.port_key
    }

    pub(crate) fn endpoint_hashes(&self) -> &[EndpointHashes] {
        &self.endpoints
    }

    /// Whether any endpoint carries hints.
    pub(crate) fn any_hints(&self) -> bool {
        self.any_hints
    }
}

impl Deref for IndexedSlice {
    type Target = EndpointSlice;

    fn deref(&self) -> &EndpointSlice {
        &self.slice
    }
}
