//! Upstream's `reconcileByAddressType`, `reconcileByPortMapping` and `finalize` over
//! borrowed inputs: desired endpoints are only materialised for slices being written.

use std::collections::{BTreeMap, HashMap, btree_map};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::endpoint::{Addresses, DesiredEndpoint, IdentityKey, PrehashedBuild};
use super::hints::{self, SliceSets, TopologyHintsOutcome};
use super::indexed::{
    EndpointHashes, IndexedPod, IndexedSlice, condition_word, details_digest, hash_opt, hash_str,
    identity_digest,
};
use super::node::NodeInfo;
use super::pod::{PodInfo, is_ipv6_canonical, service_port_protocol};
use super::slice::{self, PortKey};
use super::{ANNOTATION_TRIGGER_TIME, AddressTypeStats, PlanError, PlanOptions};

/// What one address type contributes to the plan.
pub(crate) struct AddressTypeOutcome<'a> {
    pub(crate) create: Vec<EndpointSlice>,
    pub(crate) update: Vec<EndpointSlice>,
    pub(crate) delete: Vec<&'a IndexedSlice>,
    pub(crate) errors: Vec<PlanError>,
    pub(crate) stats: AddressTypeStats,
    pub(crate) topology: Option<TopologyHintsOutcome>,
}

/// Everything constant across the address types of one plan.
pub(crate) struct Context<'a> {
    service: &'a Service,
    nodes: &'a BTreeMap<String, NodeInfo>,
    options: &'a PlanOptions,
    max: usize,
    publish_not_ready: bool,
    namespace: &'a str,
    name: &'a str,
    /// The Service's ports when no targetPort is a name (then every pod shares them).
    shared_ports: Option<Vec<EndpointPort>>,
    /// The hash of "", the hostname of endpoints without one.
    no_hostname: u64,
}

/// A node as the pods on it see it, looked up once per plan.
#[derive(Clone, Copy)]
struct NodeEntry<'a> {
    /// The node name looked up (pods share it through the cache's interner).
    name: &'a str,
    found: bool,
    zone: Option<&'a str>,
    zone_hash: u64,
}

/// No further position in a chain of existing endpoints.
const END_OF_CHAIN: u32 = u32::MAX;
/// No desired endpoint has this pod name (yet).
const NO_DESIRED: u32 = u32::MAX;

/// What one pod name stands for in a port group.
#[derive(Clone, Copy)]
struct NameSlot {
    /// The desired endpoint of the pod with this name (the last one wins).
    desired: u32,
    /// The first existing endpoint with this pod name; `DesiredSet::next` chains the rest.
    first_existing: u32,
}

/// The desired endpoints of one port group, with ordered popping, matched against the
/// group's existing endpoints.
///
/// One map from pod name serves both sides: existing endpoints are entered first, and
/// each desired endpoint claims its existing twin as it is inserted, while the pod's
/// strings are still in cache; the slice walk then only reads the claims.
struct DesiredSet<'a> {
    endpoints: Vec<DesiredEndpoint<'a>>,
    /// By the hash of the pod name.
    names: HashMap<u64, NameSlot, PrehashedBuild>,
    taken: Vec<bool>,
    /// Per desired endpoint, the existing position it claimed.
    claimed: Vec<Option<u32>>,
    /// The hashes of the group's existing endpoints, in slice order.
    existing: Vec<EndpointHashes>,
    next: Vec<u32>,
    /// Per existing position: the desired endpoint that claimed it and whether the two are
    /// equal beyond identity.
    claims: Vec<Option<(usize, bool)>>,
    remaining: usize,
    order: Option<Vec<usize>>,
    cursor: usize,
}

impl<'a> DesiredSet<'a> {
    fn new(capacity: usize, existing_slices: &[&'a IndexedSlice]) -> Self {
        let existing: Vec<EndpointHashes> = existing_slices
            .iter()
            .flat_map(|s| s.endpoint_hashes().iter().copied())
            .collect();
        let mut names: HashMap<u64, NameSlot, PrehashedBuild> = HashMap::with_capacity_and_hasher(
            capacity.max(existing.len()),
            PrehashedBuild::default(),
        );
        let mut next = vec![END_OF_CHAIN; existing.len()];
        // Walking backwards and pushing onto the heads leaves every chain in slice order.
        for (position, endpoint) in existing.iter().enumerate().rev() {
            // An endpoint without a pod name is never kept (no pod shares its identity).
            let Some(name) = endpoint.name else {
                continue;
            };
            let Ok(at) = u32::try_from(position) else {
                continue;
            };
            let slot = names.entry(name).or_insert(NameSlot {
                desired: NO_DESIRED,
                first_existing: END_OF_CHAIN,
            });
            next[position] = slot.first_existing;
            slot.first_existing = at;
        }
        let claims = vec![None; existing.len()];
        DesiredSet {
            endpoints: Vec::with_capacity(capacity),
            names,
            taken: Vec::with_capacity(capacity),
            claimed: Vec::with_capacity(capacity),
            existing,
            next,
            claims,
            remaining: 0,
            order: None,
            cursor: 0,
        }
    }

    /// Adds a desired endpoint with the hashes of its pod name, identity and details.
    fn insert(&mut self, endpoint: DesiredEndpoint<'a>, name: u64, identity: u64, details: u64) {
        let position = self.endpoints.len();
        let slot = self.names.entry(name).or_insert(NameSlot {
            desired: NO_DESIRED,
            first_existing: END_OF_CHAIN,
        });
        let collides = slot.desired != NO_DESIRED
            && self.endpoints[slot.desired as usize].pod.name != endpoint.pod.name;
        let Ok(slotted) = u32::try_from(position) else {
            return self.insert_unmatched(endpoint);
        };
        if collides {
            // Two pod names with one hash: the second is kept too, but not matched to an
            // existing endpoint, so at worst its slice is rewritten, never wrong.
            return self.insert_unmatched(endpoint);
        }
        // A later endpoint with the same identity replaces the earlier one, as in a Go map.
        let previous = std::mem::replace(&mut slot.desired, slotted);
        match (previous != NO_DESIRED).then_some(previous as usize) {
            Some(previous) => {
                self.taken[previous] = true;
                if let Some(at) = self.claimed[previous].take() {
                    self.claims[at as usize] = None;
                }
            }
            None => self.remaining += 1,
        }
        // The first existing endpoint with this identity is kept; later duplicates are not
        // (upstream's set lookup finds the desired endpoint only once).
        let mut at = slot.first_existing;
        let mut claim = None;
        while at != END_OF_CHAIN {
            let i = at as usize;
            let existing = &self.existing[i];
            if self.claims[i].is_none() && existing.identity == identity {
                self.claims[i] = Some((position, existing.details == details));
                claim = Some(at);
                break;
            }
            at = self.next[i];
        }
        self.endpoints.push(endpoint);
        self.taken.push(false);
        self.claimed.push(claim);
    }

    /// Adds a desired endpoint that claims no existing one.
    fn insert_unmatched(&mut self, endpoint: DesiredEndpoint<'a>) {
        self.endpoints.push(endpoint);
        self.taken.push(false);
        self.claimed.push(None);
        self.remaining += 1;
    }

    fn take(&mut self, i: usize) {
        if !self.taken[i] {
            self.taken[i] = true;
            self.remaining -= 1;
        }
    }

    /// The next endpoint in identity order (upstream pops an arbitrary one).
    fn pop(&mut self) -> Option<usize> {
        if self.order.is_none() {
            // Sorting compact prefixes keeps the comparisons in cache; only equal prefixes
            // reach the strings.
            let endpoints = &self.endpoints;
            let mut keyed: Vec<(u128, usize)> = (0..endpoints.len())
                .filter(|i| !self.taken[*i])
                .map(|i| (endpoints[i].sort_prefix(), i))
                .collect();
            keyed.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| endpoints[a.1].cmp_identity(&endpoints[b.1]))
                    .then(a.1.cmp(&b.1))
            });
            self.order = Some(keyed.into_iter().map(|(_, i)| i).collect());
        }
        let order = self.order.as_ref()?;
        while let Some(&i) = order.get(self.cursor) {
            self.cursor += 1;
            if !self.taken[i] {
                self.taken[i] = true;
                self.remaining -= 1;
                return Some(i);
            }
        }
        None
    }
}

/// An endpoint of a slice being written: kept as it was, or the desired version.
#[derive(Clone, Copy)]
enum Entry<'a> {
    Existing(&'a Endpoint),
    Desired(usize),
}

/// A slice being written: an existing one (with new labels, or keeping its own) or a new one.
struct WorkingSlice<'a> {
    base: Option<&'a IndexedSlice>,
    labels: Option<BTreeMap<String, String>>,
    entries: Vec<Entry<'a>>,
}

struct Group<'a> {
    ports: Vec<EndpointPort>,
    desired: DesiredSet<'a>,
}

struct PortMappingOutcome<'a> {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<&'a IndexedSlice>,
    added: usize,
    removed: usize,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        service: &'a Service,
        nodes: &'a BTreeMap<String, NodeInfo>,
        options: &'a PlanOptions,
    ) -> Self {
        let spec = service.spec.as_ref();
        let service_ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or(&[]);
        let any_named = service_ports
            .iter()
            .any(|p| matches!(p.target_port, Some(IntOrString::String(_))));
        let mut context = Context {
            service,
            nodes,
            options,
            max: options.max_endpoints_per_slice.get(),
            publish_not_ready: spec
                .and_then(|s| s.publish_not_ready_addresses)
                .unwrap_or(false),
            namespace: service.metadata.namespace.as_deref().unwrap_or(""),
            name: service.metadata.name.as_deref().unwrap_or(""),
            shared_ports: None,
            no_hostname: hash_str(""),
        };
        if !any_named {
            context.shared_ports = Some(context.endpoint_ports(None));
        }
        context
    }

    /// Upstream's `getEndpointPorts`, in the order upstream writes them (see
    /// [`super::slice::sort_ports_as_upstream`]); `pod` is only needed for named targetPorts.
    fn endpoint_ports(&self, pod: Option<&PodInfo>) -> Vec<EndpointPort> {
        let spec = self.service.spec.as_ref();
        let service_ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or(&[]);
        let mut ports: Vec<EndpointPort> = service_ports
            .iter()
            .filter_map(|sp| {
                let port = match pod {
                    Some(pod) => pod.find_port(sp).ok()?,
                    None => super::pod::find_port(&[], "", sp).ok()?,
                };
                Some(EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(port),
                    protocol: Some(service_port_protocol(sp).to_owned()),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        super::slice::sort_ports_as_upstream(&mut ports);
        ports
    }

    fn node_entry(&self, name: &'a str) -> NodeEntry<'a> {
        let node = self.nodes.get(name);
        let zone = node
            .and_then(|n| n.zone.as_deref())
            .filter(|z| !z.is_empty());
        NodeEntry {
            name,
            found: node.is_some(),
            zone,
            zone_hash: hash_opt(zone),
        }
    }

    /// The endpoint a pod becomes for one address type (upstream's `podToEndpoint`), with
    /// the digests of its identity and details; `None` if it has no address of the type.
    fn desired_endpoint(
        &self,
        indexed: &'a IndexedPod,
        want_v6: bool,
        node: NodeEntry<'a>,
    ) -> Option<(DesiredEndpoint<'a>, u64, u64)> {
        let pod: &'a PodInfo = indexed.info();
        let hashes = indexed.hashes();
        let addresses_hash = hashes.addresses[usize::from(want_v6)]?;
        let addresses = match pod.ips.as_slice() {
            // The pod has an address of this type, so its only one is it.
            [only] => Addresses::One(only),
            ips => Addresses::from_iter(
                ips.iter()
                    .map(|ip| &**ip)
                    .filter(|ip| is_ipv6_canonical(ip) == want_v6),
            ),
        };
        let conditions = pod.endpoint_conditions(self.publish_not_ready);
        let (ready, serving) = (conditions.ready, conditions.serving);
        let hostname = pod
            .should_set_hostname(self.name, self.namespace)
            .then_some(&*pod.hostname);
        let identity = identity_digest(
            addresses_hash,
            if hostname.is_some() {
                hashes.hostname
            } else {
                self.no_hostname
            },
            hashes.namespace,
            hashes.name,
        );
        let details = details_digest(
            condition_word(Some(ready), Some(serving), Some(pod.terminating), true),
            hashes.node_name,
            node.zone_hash,
            hashes.uid,
        );
        let desired = DesiredEndpoint {
            pod,
            addresses,
            ready,
            serving,
            terminating: pod.terminating,
            zone: node.zone,
            hostname,
        };
        Some((desired, identity, details))
    }

    /// The endpoint a pod becomes, with its digests, looking its node up.
    #[cfg(test)]
    pub(crate) fn desired_endpoint_for_test(
        &self,
        indexed: &'a IndexedPod,
        want_v6: bool,
    ) -> Option<(DesiredEndpoint<'a>, u64, u64)> {
        let node = self.node_entry(&indexed.info().node_name);
        self.desired_endpoint(indexed, want_v6, node)
    }

    pub(crate) fn reconcile_address_type(
        &self,
        address_type: &str,
        pods: &[&'a IndexedPod],
        existing: &[&'a IndexedSlice],
    ) -> AddressTypeOutcome<'a> {
        let want_v6 = address_type == "IPv6";
        let mut errors = Vec::new();
        let mut to_delete: Vec<&'a IndexedSlice> = Vec::new();
        let mut existing_by_ports: BTreeMap<&'a PortKey, Vec<&'a IndexedSlice>> = BTreeMap::new();
        for &slice in existing {
            if slice::owned_by(slice, self.service) {
                existing_by_ports
                    .entry(slice.port_key())
                    .or_default()
                    .push(slice);
            } else {
                to_delete.push(slice);
            }
        }

        let mut groups: BTreeMap<PortKey, Group<'a>> = BTreeMap::new();
        let mut shared: Option<Group<'a>> = None;
        let shared_key = self
            .shared_ports
            .as_ref()
            .map(|ports| PortKey::of(Some(ports)));
        // Pods share few nodes: one probe by the node name's hash instead of a tree walk.
        let mut node_memo: HashMap<u64, NodeEntry<'a>, PrehashedBuild> = HashMap::default();
        for &indexed in pods {
            let pod: &'a PodInfo = indexed.info();
            let hashes = indexed.hashes();
            if !pod.should_be_in_endpoints(true) {
                continue;
            }
            let group = match &self.shared_ports {
                // Every pod shares the Service's ports: one group, no per-pod key.
                Some(ports) => shared.get_or_insert_with(|| Group {
                    ports: ports.clone(),
                    desired: DesiredSet::new(
                        pods.len(),
                        shared_key
                            .as_ref()
                            .and_then(|key| existing_by_ports.get(key))
                            .map(Vec::as_slice)
                            .unwrap_or(&[]),
                    ),
                }),
                None => {
                    let ports = self.endpoint_ports(Some(pod));
                    let key = PortKey::of(Some(&ports));
                    match groups.entry(key) {
                        btree_map::Entry::Occupied(group) => group.into_mut(),
                        btree_map::Entry::Vacant(slot) => {
                            let existing = existing_by_ports
                                .get(slot.key())
                                .map(Vec::as_slice)
                                .unwrap_or(&[]);
                            slot.insert(Group {
                                ports,
                                desired: DesiredSet::new(0, existing),
                            })
                        }
                    }
                }
            };
            let node = match node_memo.get(&hashes.node_name) {
                Some(entry) if entry.name == &*pod.node_name => *entry,
                // First pod on this node, or (never seen) another name with the same hash.
                _ => {
                    let entry = self.node_entry(&pod.node_name);
                    node_memo.entry(hashes.node_name).or_insert(entry);
                    entry
                }
            };
            if !node.found && !self.publish_not_ready {
                errors.push(PlanError::NodeNotFound {
                    pod: pod.name.clone(),
                    namespace: self.namespace.to_owned(),
                    service: self.name.to_owned(),
                    node: pod.node_name.to_string(),
                });
                continue;
            }
            let Some((desired, identity, details)) = self.desired_endpoint(indexed, want_v6, node)
            else {
                continue;
            };
            group
                .desired
                .insert(desired, hashes.name, identity, details);
        }

        if let (Some(group), Some(key)) = (shared, shared_key) {
            groups.insert(key, group);
        }

        let mut create = Vec::new();
        let mut update = Vec::new();
        let mut stats = AddressTypeStats {
            address_type: address_type.to_owned(),
            ..AddressTypeStats::default()
        };
        for (key, group) in groups.iter_mut() {
            let in_group = existing_by_ports.get(key).map(Vec::as_slice).unwrap_or(&[]);
            let desired_count = group.desired.remaining;
            let outcome = self.reconcile_port_mapping(address_type, group, in_group);
            stats.endpoints_added += outcome.added;
            stats.endpoints_removed += outcome.removed;
            stats.desired_endpoints += desired_count;
            stats.desired_slices += desired_count.div_ceil(self.max);
            stats.actual_slices +=
                (in_group.len() + outcome.create.len()).saturating_sub(outcome.delete.len());
            create.extend(outcome.create);
            update.extend(outcome.update);
            to_delete.extend(outcome.delete);
        }
        for (key, slices) in &existing_by_ports {
            if !groups.contains_key(*key) {
                to_delete.extend(slices.iter().copied());
            }
        }

        if existing.len() == to_delete.len() && create.is_empty() {
            let placeholder = slice::new_slice(self.service, address_type, Vec::new());
            if to_delete.len() == 1 && slice::equals_placeholder(to_delete[0], &placeholder) {
                to_delete.clear();
            } else {
                create.push(placeholder);
            }
            stats.actual_slices = 1;
        }
        stats.desired_slices = stats.desired_slices.max(1);

        let (create, update, topology) =
            self.apply_hints(address_type, existing, create, update, &to_delete);
        let (create, update, delete) = self.finalize(existing, create, update, to_delete);
        AddressTypeOutcome {
            create,
            update,
            delete,
            errors,
            stats,
            topology,
        }
    }

    /// Upstream's `reconcileByPortMapping`: keep and refresh endpoints of existing slices,
    /// top up slices already being updated, then fit the rest into the unchanged slice that
    /// ends up closest to full or into new slices.
    fn reconcile_port_mapping(
        &self,
        address_type: &str,
        group: &mut Group<'a>,
        existing: &[&'a IndexedSlice],
    ) -> PortMappingOutcome<'a> {
        let desired = &mut group.desired;
        let mut updating: Vec<WorkingSlice<'a>> = Vec::new();
        let mut unchanged: Vec<&'a IndexedSlice> = Vec::new();
        let mut delete: Vec<&'a IndexedSlice> = Vec::new();
        let mut removed = 0;

        let claims = std::mem::take(&mut desired.claims);
        let mut position = 0;
        for slice in existing {
            let mut kept: Vec<Entry<'a>> = Vec::with_capacity(slice.endpoints.len());
            let mut changed = false;
            for _ in &slice.endpoints {
                if let Some(Some((i, equal))) = claims.get(position) {
                    changed |= !equal;
                    kept.push(Entry::Desired(*i));
                    desired.take(*i);
                }
                position += 1;
            }
            let (labels, labels_changed) =
                slice::slice_labels(slice.metadata.labels.as_ref(), self.service);
            if changed || kept.len() != slice.endpoints.len() {
                removed += slice.endpoints.len().saturating_sub(kept.len());
                if kept.is_empty() {
                    delete.push(slice);
                } else {
                    updating.push(WorkingSlice {
                        base: Some(slice),
                        labels: Some(labels),
                        entries: kept,
                    });
                }
            } else if labels_changed {
                updating.push(WorkingSlice {
                    base: Some(slice),
                    labels: Some(labels),
                    entries: slice.endpoints.iter().map(Entry::Existing).collect(),
                });
            } else {
                unchanged.push(slice);
            }
        }

        let added = desired.remaining;

        if desired.remaining > 0 && !updating.is_empty() {
            // Fullest first; the sort is stable, so ties stay in name order.
            updating.sort_by_key(|w| std::cmp::Reverse(w.entries.len()));
            for working in &mut updating {
                fill(working, desired, self.max);
            }
        }

        let mut creating: Vec<WorkingSlice<'a>> = Vec::new();
        while desired.remaining > 0 {
            let mut target = None;
            if desired.remaining < self.max && !unchanged.is_empty() {
                target = slice_to_fill(&unchanged, desired.remaining, self.max);
            }
            match target {
                Some(position) => {
                    let slice = unchanged.remove(position);
                    let mut working = WorkingSlice {
                        base: Some(slice),
                        labels: None,
                        entries: slice.endpoints.iter().map(Entry::Existing).collect(),
                    };
                    fill(&mut working, desired, self.max);
                    updating.push(working);
                }
                None => {
                    let mut working = WorkingSlice {
                        base: None,
                        labels: None,
                        entries: Vec::with_capacity(self.max.min(desired.remaining)),
                    };
                    fill(&mut working, desired, self.max);
                    creating.push(working);
                }
            }
        }

        let desired = &group.desired;
        let ports = &group.ports;
        PortMappingOutcome {
            create: creating
                .into_iter()
                .map(|w| self.materialize(w, desired, address_type, ports))
                .collect(),
            update: updating
                .into_iter()
                .map(|w| self.materialize(w, desired, address_type, ports))
                .collect(),
            delete,
            added,
            removed,
        }
    }

    fn materialize(
        &self,
        working: WorkingSlice<'a>,
        desired: &DesiredSet<'a>,
        address_type: &str,
        ports: &[EndpointPort],
    ) -> EndpointSlice {
        let mut entries = working.entries;
        // New slices are filled in identity order already; existing ones mix kept and
        // added endpoints.
        if working.base.is_some() {
            entries.sort_by_cached_key(|e| match e {
                Entry::Existing(endpoint) => IdentityKey::of_endpoint(endpoint),
                Entry::Desired(i) => desired.endpoints[*i].key(),
            });
        }
        let endpoints: Vec<Endpoint> = entries
            .iter()
            .map(|e| match e {
                Entry::Existing(endpoint) => (*endpoint).clone(),
                Entry::Desired(i) => desired.endpoints[*i].to_endpoint(),
            })
            .collect();
        let mut slice = match working.base {
            Some(base) => EndpointSlice {
                metadata: base.metadata.clone(),
                address_type: base.address_type.clone(),
                ports: base.ports.clone(),
                endpoints: Vec::new(),
            },
            None => slice::new_slice(self.service, address_type, ports.to_vec()),
        };
        if let Some(labels) = working.labels {
            slice.metadata.labels = Some(labels);
        }
        slice.endpoints = endpoints;
        slice
    }

    /// Upstream's hint handling between planning and finalize.
    fn apply_hints(
        &self,
        address_type: &str,
        existing: &[&'a IndexedSlice],
        create: Vec<EndpointSlice>,
        update: Vec<EndpointSlice>,
        to_delete: &[&'a IndexedSlice],
    ) -> (
        Vec<EndpointSlice>,
        Vec<EndpointSlice>,
        Option<TopologyHintsOutcome>,
    ) {
        let unchanged_now = |update: &[EndpointSlice]| -> Vec<&'a IndexedSlice> {
            existing
                .iter()
                .copied()
                .filter(|s| {
                    let name = &s.metadata.name;
                    !update.iter().any(|u| u.metadata.name == *name)
                        && !to_delete.iter().any(|d| d.metadata.name == *name)
                })
                .collect()
        };
        let spec = self.service.spec.as_ref();
        let annotation_on =
            hints::topology_annotation_enabled(self.service.metadata.annotations.as_ref());
        let traffic_distribution = spec.and_then(|s| s.traffic_distribution.as_deref());
        let use_traffic_distribution = !annotation_on
            && hints::valid_traffic_distribution(
                traffic_distribution,
                self.options.prefer_same_traffic_distribution,
            );
        let mut sets = SliceSets {
            unchanged: unchanged_now(&update),
            create,
            update,
        };
        let mut topology = None;
        if self.options.topology_hints && annotation_on {
            let ratios = hints::cpu_ratios_by_zone(self.nodes);
            topology = Some(hints::add_topology_hints(
                &mut sets,
                ratios.as_ref(),
                address_type,
            ));
        } else if !use_traffic_distribution {
            hints::remove_hints(&mut sets);
        }
        if use_traffic_distribution {
            sets.unchanged = unchanged_now(&sets.update);
            hints::reconcile_traffic_distribution(
                &mut sets,
                traffic_distribution == Some("PreferSameNode"),
            );
        }
        (sets.create, sets.update, topology)
    }

    /// Upstream's `finalize` without the API calls: recycle creates onto owned slices
    /// being deleted, drop creates while the Service is being deleted, stamp the trigger
    /// time, and drop updates that would not change anything.
    pub(crate) fn finalize(
        &self,
        existing: &[&'a IndexedSlice],
        mut create: Vec<EndpointSlice>,
        mut update: Vec<EndpointSlice>,
        mut delete: Vec<&'a IndexedSlice>,
    ) -> (
        Vec<EndpointSlice>,
        Vec<EndpointSlice>,
        Vec<&'a IndexedSlice>,
    ) {
        let mut i = 0;
        while i < delete.len() {
            let Some(last) = create.last() else { break };
            let candidate = delete[i];
            if candidate.address_type == last.address_type
                && slice::owned_by(candidate, self.service)
            {
                if let Some(mut recycled) = create.pop() {
                    recycled.metadata.name = candidate.metadata.name.clone();
                    update.push(recycled);
                }
                delete.remove(i);
            } else {
                i += 1;
            }
        }
        if self.service.metadata.deletion_timestamp.is_some() {
            create.clear();
        }
        for slice in create.iter_mut().chain(update.iter_mut()) {
            slice::set_trigger_time(slice, self.options.trigger_time);
        }
        update.retain(|u| {
            !existing
                .iter()
                .any(|e| e.metadata.name == u.metadata.name && same_content(e, u))
        });
        (create, update, delete)
    }
}

/// Moves desired endpoints into the slice until it is full or none are left.
fn fill<'a>(working: &mut WorkingSlice<'a>, desired: &mut DesiredSet<'a>, max: usize) {
    while working.entries.len() < max {
        match desired.pop() {
            Some(i) => working.entries.push(Entry::Desired(i)),
            None => break,
        }
    }
}

/// Upstream's `getSliceToFill`: the slice closest to full after taking `count` endpoints,
/// the first exact fit winning.
fn slice_to_fill(slices: &[&IndexedSlice], count: usize, max: usize) -> Option<usize> {
    let mut closest_diff = max;
    let mut closest = None;
    for (position, slice) in slices.iter().enumerate() {
        let Some(diff) = max.checked_sub(count + slice.endpoints.len()) else {
            continue;
        };
        if diff < closest_diff {
            closest_diff = diff;
            closest = Some(position);
            if diff == 0 {
                break;
            }
        }
    }
    closest
}

/// Whether writing `new` over `old` would change nothing that matters: address type,
/// ports (as a set), endpoints (as a multiset), labels, ownerReferences and annotations
/// other than the trigger time.
fn same_content(old: &EndpointSlice, new: &EndpointSlice) -> bool {
    let annotations = |s: &EndpointSlice| -> BTreeMap<String, String> {
        s.metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != ANNOTATION_TRIGGER_TIME)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    fn sorted(s: &EndpointSlice) -> Vec<&Endpoint> {
        let mut endpoints: Vec<&Endpoint> = s.endpoints.iter().collect();
        endpoints.sort_by(|a, b| IdentityKey::of_endpoint(a).cmp(&IdentityKey::of_endpoint(b)));
        endpoints
    }
    old.address_type == new.address_type
        && PortKey::of(old.ports.as_deref()) == PortKey::of(new.ports.as_deref())
        && old.metadata.labels.clone().unwrap_or_default()
            == new.metadata.labels.clone().unwrap_or_default()
        && old.metadata.owner_references.as_deref().unwrap_or(&[])
            == new.metadata.owner_references.as_deref().unwrap_or(&[])
        && annotations(old) == annotations(new)
        && old.endpoints.len() == new.endpoints.len()
        && sorted(old) == sorted(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(pod: &PodInfo) -> DesiredEndpoint<'_> {
        DesiredEndpoint {
            pod,
            addresses: Addresses::One("10.0.0.1"),
            ready: true,
            serving: true,
            terminating: false,
            zone: None,
            hostname: None,
        }
    }

    #[test]
    fn pod_names_sharing_a_hash_both_stay_desired() {
        let a = PodInfo {
            name: "a".into(),
            ..PodInfo::default()
        };
        let b = PodInfo {
            name: "b".into(),
            ..PodInfo::default()
        };
        let mut set = DesiredSet::new(2, &[]);
        set.insert(desired(&a), 7, 1, 1);
        set.insert(desired(&b), 7, 2, 2);
        let mut names = Vec::new();
        while let Some(i) = set.pop() {
            names.push(set.endpoints[i].pod.name.clone());
        }
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_repeated_pod_name_replaces_its_earlier_endpoint() {
        let a = PodInfo {
            name: "a".into(),
            ..PodInfo::default()
        };
        let mut set = DesiredSet::new(2, &[]);
        set.insert(desired(&a), 7, 1, 1);
        set.insert(desired(&a), 7, 1, 1);
        assert_eq!(set.remaining, 1);
        assert_eq!(set.pop(), Some(1));
        assert_eq!(set.pop(), None);
    }
}
