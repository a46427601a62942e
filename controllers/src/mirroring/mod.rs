//! The EndpointSlice mirroring controller's planner (upstream
//! `pkg/controller/endpointslicemirroring`): user-managed Endpoints of a selector-less Service
//! mirrored into EndpointSlices.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, Endpoints, ObjectReference, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::endpoints::repack_subsets;
use crate::endpointslice::pod::parse_ip_sloppy;

/// Value of the managed-by label on mirrored slices.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Endpoints carrying this label with value `true` are not mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Endpoints used as leader-election locks carry this annotation and are not mirrored.
pub use crate::endpoints::LEADER_ANNOTATION;
/// Endpoints annotation not copied to slices: the trigger time.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Endpoints annotation not copied to slices: kubectl's last applied configuration.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Default of `--mirroring-max-endpoints-per-subset`.
pub const DEFAULT_MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
/// Event reason when addresses were not IPs.
pub const INVALID_IP_ADDRESS_REASON: &str = "InvalidIPAddress";
/// Event reason when a subset held more addresses than may be mirrored.
pub const TOO_MANY_ADDRESSES_REASON: &str = "TooManyAddressesToMirror";

/// Settings of the mirroring planner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirroringOptions {
    /// `--mirroring-max-endpoints-per-subset`: addresses mirrored per subset (and per slice).
    pub max_endpoints_per_subset: usize,
}

impl Default for MirroringOptions {
    fn default() -> Self {
        MirroringOptions {
            max_endpoints_per_subset: DEFAULT_MAX_ENDPOINTS_PER_SUBSET,
        }
    }
}

/// A Warning event to record on the Endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirroringEvent {
    /// Event reason (`InvalidIPAddress` or `TooManyAddressesToMirror`).
    pub reason: &'static str,
    /// Event message, upstream's text.
    pub message: String,
}

/// The writes that bring one Endpoints' mirrored slices up to date, in upstream call order:
/// creates, then updates, then deletes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MirroringPlan {
    /// Slices to POST (generateName set, name unset).
    pub create: Vec<EndpointSlice>,
    /// Slices to PUT (name set).
    pub update: Vec<EndpointSlice>,
    /// Names of slices to DELETE.
    pub delete: Vec<String>,
    /// Warning events for the Endpoints.
    pub events: Vec<MirroringEvent>,
    /// Addresses not mirrored (invalid or over the per-subset maximum).
    pub addresses_skipped: usize,
}

impl MirroringPlan {
    /// True if the plan issues no API call.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Upstream `shouldMirror`: no skip-mirror label set to `true`, no leader-election annotation.
pub fn should_mirror(endpoints: &Endpoints) -> bool {
    let skip = endpoints
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true");
    let leader = endpoints
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
    !skip && !leader
}

fn label(slice: &EndpointSlice, key: &str) -> Option<String> {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .cloned()
}

/// Plans one sync of the Endpoints `namespace/name` (upstream `syncEndpoints`).
///
/// `existing_slices` may contain any slices of the namespace; only those labelled with this
/// Endpoints' name and managed by this controller are considered. Mirrored slices are all
/// deleted when the Endpoints or Service is gone, the Endpoints opts out, or the Service has
/// a selector.
pub fn plan(
    name: &str,
    endpoints: Option<&Endpoints>,
    service: Option<&Service>,
    existing_slices: &[EndpointSlice],
    options: &MirroringOptions,
) -> MirroringPlan {
    let mut mirrored: Vec<&EndpointSlice> = existing_slices
        .iter()
        .filter(|s| {
            label(s, SERVICE_NAME_LABEL).as_deref() == Some(name)
                && label(s, MANAGED_BY_LABEL).as_deref() == Some(CONTROLLER_NAME)
        })
        .collect();
    mirrored.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let delete_all = || MirroringPlan {
        delete: mirrored
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect(),
        ..Default::default()
    };
    let Some(endpoints) = endpoints.filter(|e| should_mirror(e)) else {
        return delete_all();
    };
    let Some(service) = service else {
        return delete_all();
    };
    if service.spec.as_ref().is_some_and(|s| s.selector.is_some()) {
        return delete_all();
    }
    reconcile(endpoints, &mirrored, options)
}

/// A port as a sortable key; the slice's port list is compared as a set.
type PortKey = (Option<String>, Option<i32>, Option<String>, Option<String>);

fn port_key(port: &SlicePort) -> PortKey {
    (
        port.name.clone(),
        port.port,
        port.protocol.clone(),
        port.app_protocol.clone(),
    )
}

/// Upstream `addrTypePortMapKey`: address type plus the set of ports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    address_type: String,
    ports: Vec<PortKey>,
}

impl GroupKey {
    fn new(address_type: &str, ports: &[SlicePort]) -> Self {
        let mut keys: Vec<PortKey> = ports.iter().map(port_key).collect();
        keys.sort();
        GroupKey {
            address_type: address_type.to_string(),
            ports: keys,
        }
    }
}

/// Upstream endpoint hash: sorted addresses, hostname, targetRef namespace and name.
type Identity = (Vec<String>, String, String, String);

fn identity(endpoint: &Endpoint) -> Identity {
    let mut addresses = endpoint.addresses.clone();
    addresses.sort();
    let target = endpoint.target_ref.as_ref();
    (
        addresses,
        endpoint.hostname.clone().unwrap_or_default(),
        target.and_then(|r| r.namespace.clone()).unwrap_or_default(),
        target.and_then(|r| r.name.clone()).unwrap_or_default(),
    )
}

fn target_ref_without_version(r: &Option<ObjectReference>) -> Option<ObjectReference> {
    r.as_ref().map(|r| ObjectReference {
        resource_version: None,
        ..r.clone()
    })
}

/// Upstream `EndpointsEqualBeyondHash`: node, zone, conditions and targetRef (its
/// resourceVersion aside).
fn equal_beyond_identity(a: &Endpoint, b: &Endpoint) -> bool {
    let conditions = |e: &Endpoint| e.conditions.clone().unwrap_or_default();
    a.node_name == b.node_name
        && a.zone == b.zone
        && conditions(a) == conditions(b)
        && target_ref_without_version(&a.target_ref) == target_ref_without_version(&b.target_ref)
}

#[derive(Default)]
struct Group {
    ports: Vec<SlicePort>,
    endpoints: BTreeMap<Identity, Endpoint>,
}

/// Upstream `epPortsToEpsPorts`, in the order upstream writes them (its port-map key sorts the
/// list in place: [`crate::endpointslice::slice::sort_ports_as_upstream`]).
fn slice_ports(ports: &[EndpointPort]) -> Vec<SlicePort> {
    let mut ports: Vec<SlicePort> = ports
        .iter()
        .map(|p| SlicePort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: Some(p.port),
            protocol: Some(p.protocol.clone().unwrap_or_default()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    crate::endpointslice::slice::sort_ports_as_upstream(&mut ports);
    ports
}

/// Upstream `addressToEndpoint`: the IP re-stringified, ready from the list it came from.
fn address_to_endpoint(address: &EndpointAddress, ready: bool) -> Option<(String, Endpoint)> {
    let ip = parse_ip_sloppy(&address.ip)?;
    let address_type = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let endpoint = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        target_ref: address.target_ref.clone(),
        node_name: address.node_name.clone(),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        ..Default::default()
    };
    Some((address_type.to_string(), endpoint))
}

fn without_keys(map: Option<&BTreeMap<String, String>>, keys: &[&str]) -> BTreeMap<String, String> {
    let mut out = map.cloned().unwrap_or_default();
    for key in keys {
        out.remove(*key);
    }
    out
}

fn mirrored_annotations(endpoints: &Endpoints) -> BTreeMap<String, String> {
    without_keys(
        endpoints.metadata.annotations.as_ref(),
        &[TRIGGER_TIME_ANNOTATION, LAST_APPLIED_ANNOTATION],
    )
}

fn owner_reference(endpoints: &Endpoints) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_string(),
        kind: "Endpoints".to_string(),
        name: endpoints.metadata.name.clone().unwrap_or_default(),
        uid: endpoints.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Upstream `newEndpointSlice`: all Endpoints labels plus service-name and managed-by, all
/// annotations but the two reserved ones, a controller reference to the Endpoints.
fn new_slice(
    endpoints: &Endpoints,
    ports: &[SlicePort],
    address_type: &str,
    name: Option<String>,
) -> EndpointSlice {
    let endpoints_name = endpoints.metadata.name.clone().unwrap_or_default();
    let mut labels = endpoints.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.to_string(), endpoints_name.clone());
    labels.insert(MANAGED_BY_LABEL.to_string(), CONTROLLER_NAME.to_string());
    let generate_name = name.is_none().then(|| format!("{endpoints_name}-"));
    EndpointSlice {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: endpoints.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(mirrored_annotations(endpoints)),
            owner_references: Some(vec![owner_reference(endpoints)]),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        ports: Some(ports.to_vec()),
        endpoints: Vec::new(),
    }
}

/// Whether an existing slice's Endpoints owner references (if any) name this Endpoints' UID;
/// a slice left over from a deleted and recreated Endpoints is rewritten.
fn owned_by(slice: &EndpointSlice, endpoints: &Endpoints) -> bool {
    let uid = endpoints.metadata.uid.clone().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.kind == "Endpoints")
        .all(|r| r.uid == uid)
}

fn reconcile(
    endpoints: &Endpoints,
    mirrored: &[&EndpointSlice],
    options: &MirroringOptions,
) -> MirroringPlan {
    let max = options.max_endpoints_per_subset;
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    let mut invalid = 0usize;
    let mut skipped = 0usize;

    for subset in repack_subsets(endpoints.subsets.as_deref().unwrap_or_default()) {
        let ports = slice_ports(subset.ports.as_deref().unwrap_or_default());
        // Both address types are registered even if unused, so stale slices of either type
        // with these ports are deleted.
        for address_type in ["IPv4", "IPv6"] {
            let group = groups
                .entry(GroupKey::new(address_type, &ports))
                .or_default();
            group.ports = ports.clone();
        }
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        let total = subset.addresses.as_ref().map_or(0, Vec::len)
            + subset.not_ready_addresses.as_ref().map_or(0, Vec::len);
        let mut added = 0usize;
        // Ready and not-ready lists each stop at the maximum, as upstream's two loops do.
        for (address, is_ready) in ready.chain(not_ready) {
            if added >= max {
                continue;
            }
            match address_to_endpoint(address, is_ready) {
                Some((address_type, endpoint)) => {
                    let key = GroupKey::new(&address_type, &ports);
                    let group = groups.entry(key).or_default();
                    group.endpoints.insert(identity(&endpoint), endpoint);
                    added += 1;
                }
                None => invalid += 1,
            }
        }
        skipped += total - added;
    }

    let mut plan = MirroringPlan {
        addresses_skipped: skipped,
        ..Default::default()
    };
    if invalid > 0 {
        plan.events.push(MirroringEvent {
            reason: INVALID_IP_ADDRESS_REASON,
            message: format!(
                "Skipped {invalid} invalid IP addresses when mirroring to EndpointSlices"
            ),
        });
    }
    if skipped > invalid {
        plan.events.push(MirroringEvent {
            reason: TOO_MANY_ADDRESSES_REASON,
            message: format!(
                "A max of {max} addresses can be mirrored to EndpointSlices per Endpoints subset. {skipped} addresses were skipped"
            ),
        });
    }

    let mut existing_by_key: BTreeMap<GroupKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in mirrored {
        let key = GroupKey::new(
            &slice.address_type,
            slice.ports.as_deref().unwrap_or_default(),
        );
        existing_by_key.entry(key).or_default().push(slice);
    }

    let mut deletes: Vec<&EndpointSlice> = Vec::new();
    for (key, group) in &groups {
        let existing = existing_by_key
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        reconcile_group(
            endpoints,
            key,
            group,
            existing,
            max,
            &mut plan,
            &mut deletes,
        );
    }
    for (key, slices) in &existing_by_key {
        if !groups.contains_key(key) {
            deletes.extend(slices.iter().copied());
        }
    }

    recycle(&mut plan, &mut deletes);
    if endpoints.metadata.deletion_timestamp.is_some() {
        plan.create.clear();
    }
    plan.delete = deletes
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    plan
}

/// Upstream `reconcileByPortMapping`: one slice per group, the first existing one kept (and
/// rewritten if anything differs), any others deleted.
fn reconcile_group<'a>(
    endpoints: &Endpoints,
    key: &GroupKey,
    group: &Group,
    existing: &[&'a EndpointSlice],
    max: usize,
    plan: &mut MirroringPlan,
    deletes: &mut Vec<&'a EndpointSlice>,
) {
    if group.endpoints.is_empty() {
        deletes.extend(existing.iter().copied());
        return;
    }
    let mut name = None;
    if let Some((first, rest)) = existing.split_first() {
        deletes.extend(rest.iter().copied());
        if slice_matches(first, group, endpoints) {
            return;
        }
        name = first.metadata.name.clone();
    }
    let mut slice = new_slice(endpoints, &group.ports, &key.address_type, name);
    slice.endpoints = group.endpoints.values().take(max).cloned().collect();
    if slice.metadata.name.is_some() {
        plan.update.push(slice);
    } else {
        plan.create.push(slice);
    }
}

fn slice_matches(existing: &EndpointSlice, group: &Group, endpoints: &Endpoints) -> bool {
    let mut matches = 0usize;
    for endpoint in &existing.endpoints {
        match group.endpoints.get(&identity(endpoint)) {
            Some(desired) if equal_beyond_identity(desired, endpoint) => matches += 1,
            _ => return false,
        }
    }
    let labels = without_keys(
        existing.metadata.labels.as_ref(),
        &[MANAGED_BY_LABEL, SERVICE_NAME_LABEL],
    );
    let annotations = existing.metadata.annotations.clone().unwrap_or_default();
    matches == group.endpoints.len()
        && labels == endpoints.metadata.labels.clone().unwrap_or_default()
        && annotations == mirrored_annotations(endpoints)
        && owned_by(existing, endpoints)
}

/// Upstream `recycleSlices`: per address type, the i-th create takes the name of the i-th
/// slice marked for deletion and becomes an update (its `generateName` kept, as upstream's).
fn recycle(plan: &mut MirroringPlan, deletes: &mut Vec<&EndpointSlice>) {
    let creates = std::mem::take(&mut plan.create);
    for mut slice in creates {
        let reusable = deletes
            .iter()
            .position(|d| d.address_type == slice.address_type && d.metadata.name.is_some());
        match reusable {
            Some(index) => {
                let old = deletes.remove(index);
                // Upstream sets only the name: the slice keeps the `generateName` it was built
                // with for a create, and the update (a PUT of the whole object) stores it.
                slice.metadata.name = old.metadata.name.clone();
                plan.update.push(slice);
            }
            None => plan.create.push(slice),
        }
    }
}
