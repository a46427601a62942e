//! Desired endpoints (borrowed from the pods, materialised only when written), their
//! identity and the "equal beyond identity" comparison of upstream's EndpointSet.

use std::hash::{BuildHasherDefault, Hasher};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

use super::pod::PodInfo;

/// The sorted addresses of an endpoint; one address is the common case and allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Addresses<'a> {
    One(&'a str),
    Many(Vec<&'a str>),
}

impl<'a> Addresses<'a> {
    pub(crate) fn from_iter(mut iter: impl Iterator<Item = &'a str>) -> Self {
        let Some(first) = iter.next() else {
            return Addresses::Many(Vec::new());
        };
        let Some(second) = iter.next() else {
            return Addresses::One(first);
        };
        let mut all = vec![first, second];
        all.extend(iter);
        all.sort_unstable();
        Addresses::Many(all)
    }

    /// Compares with an endpoint's address list as upstream's hash does (sorted).
    fn matches(&self, addresses: &[String]) -> bool {
        match (self, addresses) {
            (Addresses::One(a), [b]) => *a == b.as_str(),
            (Addresses::One(_), _) => false,
            (Addresses::Many(mine), theirs) => {
                let mut theirs: Vec<&str> = theirs.iter().map(String::as_str).collect();
                theirs.sort_unstable();
                *mine == theirs
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Addresses::Many(v) if v.is_empty())
    }

    fn to_vec(&self) -> Vec<String> {
        match self {
            Addresses::One(a) => vec![(*a).to_owned()],
            Addresses::Many(v) => v.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

/// Upstream's endpoint hash: sorted addresses, hostname (or ""), targetRef namespace and
/// name. UID, node, zone and conditions are not part of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct IdentityKey<'a> {
    addresses: Addresses<'a>,
    hostname: &'a str,
    namespace: &'a str,
    name: &'a str,
}

impl<'a> IdentityKey<'a> {
    /// The identity of an endpoint read from an existing slice.
    pub(crate) fn of_endpoint(endpoint: &'a Endpoint) -> Self {
        let target = endpoint.target_ref.as_ref();
        IdentityKey {
            addresses: Addresses::from_iter(endpoint.addresses.iter().map(String::as_str)),
            hostname: endpoint.hostname.as_deref().unwrap_or(""),
            namespace: target.and_then(|t| t.namespace.as_deref()).unwrap_or(""),
            name: target.and_then(|t| t.name.as_deref()).unwrap_or(""),
        }
    }
}

/// An endpoint the planner wants, borrowing its strings from the pod and node inputs.
#[derive(Clone, Debug)]
pub(crate) struct DesiredEndpoint<'a> {
    pub(crate) pod: &'a PodInfo,
    pub(crate) addresses: Addresses<'a>,
    pub(crate) ready: bool,
    pub(crate) serving: bool,
    pub(crate) terminating: bool,
    pub(crate) zone: Option<&'a str>,
    pub(crate) hostname: Option<&'a str>,
}

impl<'a> DesiredEndpoint<'a> {
    pub(crate) fn key(&self) -> IdentityKey<'a> {
        IdentityKey {
            addresses: self.addresses.clone(),
            hostname: self.hostname.unwrap_or(""),
            namespace: &self.pod.namespace,
            name: &self.pod.name,
        }
    }

    /// Same identity as an existing endpoint, without building its key.
    pub(crate) fn same_identity(&self, endpoint: &Endpoint) -> bool {
        let target = endpoint.target_ref.as_ref();
        endpoint.hostname.as_deref().unwrap_or("") == self.hostname.unwrap_or("")
            && target.and_then(|t| t.namespace.as_deref()).unwrap_or("") == self.pod.namespace
            && target.and_then(|t| t.name.as_deref()).unwrap_or("") == self.pod.name
            && self.addresses.matches(&endpoint.addresses)
    }

    fn node_name(&self) -> Option<&'a str> {
        Some(self.pod.node_name.as_str()).filter(|n| !n.is_empty())
    }

    /// Upstream's `EndpointsEqualBeyondHash`: node, zone, the three conditions (unset counts
    /// as different) and the targetRef ignoring resourceVersion. Hints are not compared.
    pub(crate) fn equal_beyond_identity(&self, existing: &Endpoint) -> bool {
        let conditions = existing.conditions.as_ref();
        existing.node_name.as_deref() == self.node_name()
            && existing.zone.as_deref() == self.zone
            && conditions.and_then(|c| c.ready) == Some(self.ready)
            && conditions.and_then(|c| c.serving) == Some(self.serving)
            && conditions.and_then(|c| c.terminating) == Some(self.terminating)
            && existing
                .target_ref
                .as_ref()
                .is_some_and(|t| self.target_ref_matches(t))
    }

    fn target_ref_matches(&self, t: &ObjectReference) -> bool {
        t.kind.as_deref() == Some("Pod")
            && t.namespace.as_deref() == Some(self.pod.namespace.as_str())
            && t.name.as_deref() == Some(self.pod.name.as_str())
            && t.uid.as_deref() == Some(self.pod.uid.as_str())
            && t.api_version.as_deref().unwrap_or("").is_empty()
            && t.field_path.as_deref().unwrap_or("").is_empty()
    }

    /// The discovery/v1 Endpoint upstream's `podToEndpoint` builds (no hints).
    pub(crate) fn to_endpoint(&self) -> Endpoint {
        Endpoint {
            addresses: self.addresses.to_vec(),
            conditions: Some(EndpointConditions {
                ready: Some(self.ready),
                serving: Some(self.serving),
                terminating: Some(self.terminating),
            }),
            hostname: self.hostname.map(str::to_owned),
            node_name: self.node_name().map(str::to_owned),
            zone: self.zone.map(str::to_owned),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: Some(self.pod.namespace.clone()),
                name: Some(self.pod.name.clone()),
                uid: Some(self.pod.uid.clone()),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        }
    }
}

/// FNV-1a: a fast hasher for lookup-only maps (iteration order never leaves the planner).
#[derive(Default)]
pub(crate) struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// Hash-map builder for [`FnvHasher`].
pub(crate) type FnvBuild = BuildHasherDefault<FnvHasher>;
