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
    #[cfg(test)]
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

    /// A prefix of [`Self::key`]'s order packed into an integer: the variant of the
    /// addresses, then the first 15 bytes of the first address, zero-padded. A smaller
    /// prefix means a smaller key; equal prefixes need [`Self::cmp_identity`].
    pub(crate) fn sort_prefix(&self) -> u128 {
        let (variant, first) = match &self.addresses {
            Addresses::One(a) => (0u8, *a),
            Addresses::Many(all) => (1u8, all.first().copied().unwrap_or("")),
        };
        let mut bytes = [0u8; 16];
        bytes[0] = variant;
        let len = first.len().min(15);
        bytes[1..=len].copy_from_slice(&first.as_bytes()[..len]);
        u128::from_be_bytes(bytes)
    }

    /// The order of [`Self::key`] without building the keys.
    pub(crate) fn cmp_identity(&self, other: &Self) -> std::cmp::Ordering {
        self.addresses
            .cmp(&other.addresses)
            .then_with(|| {
                self.hostname
                    .unwrap_or("")
                    .cmp(other.hostname.unwrap_or(""))
            })
            .then_with(|| self.pod.namespace.cmp(&other.pod.namespace))
            .then_with(|| self.pod.name.cmp(&other.pod.name))
    }

    /// Compares with an existing endpoint field by field: `None` when the identity differs,
    /// else whether they are also equal beyond identity (upstream's
    /// `EndpointsEqualBeyondHash`: node, zone, the three conditions with unset counting as
    /// different, and the targetRef ignoring resourceVersion; hints are not compared).
    /// The planner decides this on hashes (`indexed`); this is the oracle they are tested
    /// against.
    #[cfg(test)]
    pub(crate) fn compare(&self, existing: &Endpoint) -> Option<bool> {
        let target = existing.target_ref.as_ref();
        let namespace = target.and_then(|t| t.namespace.as_deref());
        let name = target.and_then(|t| t.name.as_deref());
        let same_identity = name.unwrap_or("") == self.pod.name
            && namespace.unwrap_or("") == &*self.pod.namespace
            && existing.hostname.as_deref().unwrap_or("") == self.hostname.unwrap_or("")
            && self.addresses.matches(&existing.addresses);
        if !same_identity {
            return None;
        }
        let conditions = existing.conditions.as_ref();
        Some(
            conditions.and_then(|c| c.ready) == Some(self.ready)
                && conditions.and_then(|c| c.serving) == Some(self.serving)
                && conditions.and_then(|c| c.terminating) == Some(self.terminating)
                && existing.node_name.as_deref() == self.node_name()
                && existing.zone.as_deref() == self.zone
                && target.is_some_and(|t| {
                    // Namespace and name values already matched as part of the identity.
                    t.kind.as_deref() == Some("Pod")
                        && namespace.is_some()
                        && name.is_some()
                        && t.uid.as_deref() == Some(self.pod.uid.as_str())
                        && t.api_version.as_deref().unwrap_or("").is_empty()
                        && t.field_path.as_deref().unwrap_or("").is_empty()
                }),
        )
    }

    fn node_name(&self) -> Option<&'a str> {
        Some(&*self.pod.node_name).filter(|n| !n.is_empty())
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
                namespace: Some(self.pod.namespace.to_string()),
                name: Some(self.pod.name.clone()),
                uid: Some(self.pod.uid.clone()),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        }
    }
}

/// A word-at-a-time string hasher for lookup-only maps (iteration order never leaves the
/// planner). The final avalanche matters: hashbrown filters candidates by the hash's top
/// bits, and names that differ only in their last characters (`web-1`, `web-2`) must not
/// share them, or every probe ends in a string comparison.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

const HASH_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(HASH_MULTIPLIER);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // murmur3's fmix64.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        // The tail (0..=7 bytes) as at most two overlapping 4-byte reads, or three single
        // bytes, plus its length: no variable-length copy.
        let tail = match rest.len() {
            0 => return,
            len @ 4.. => {
                let first = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let last = u32::from_le_bytes([
                    rest[len - 4],
                    rest[len - 3],
                    rest[len - 2],
                    rest[len - 1],
                ]);
                u64::from(first) | (u64::from(last) << 32)
            }
            len => {
                u64::from(rest[0])
                    | (u64::from(rest[len / 2]) << 8)
                    | (u64::from(rest[len - 1]) << 16)
            }
        };
        self.mix(tail ^ ((rest.len() as u64) << 59));
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte) | 0x100);
    }

    fn write_usize(&mut self, value: usize) {
        self.mix(value as u64);
    }

    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }
}

/// A hasher for keys that are already well-mixed 64-bit hashes: it passes them through.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with this; anything else still gets a usable hash.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(HASH_MULTIPLIER);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Hash-map builder for [`PrehashedHasher`].
pub(crate) type PrehashedBuild = BuildHasherDefault<PrehashedHasher>;
