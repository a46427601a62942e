//! Topology hints: the `Auto` topology annotation (zones weighted by allocatable CPU,
//! upstream's topology cache) and `spec.trafficDistribution` (same-zone / same-node hints).
//!
//! Where upstream walks Go maps (ties between zones), zones are taken in name order.

use std::collections::BTreeMap;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointHints, EndpointSlice, ForNode, ForZone};

use super::indexed::IndexedSlice;
use super::node::NodeInfo;

/// The maximum overload any single endpoint should see.
const OVERLOAD_THRESHOLD: f64 = 0.2;

/// Deprecated topology annotation; wins over the newer one when both are set.
pub const ANNOTATION_TOPOLOGY_AWARE_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
/// Topology annotation.
pub const ANNOTATION_TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";

/// Event message: some endpoint has no zone.
pub const NO_ZONE_SPECIFIED: &str = "One or more endpoints do not have a zone specified";
/// Event message: no zone got any hint.
pub const NO_ALLOCATED_HINTS_FOR_ZONES: &str = "No hints allocated for zones";
/// Event message (Normal, `TopologyAwareHintsEnabled`).
pub const TOPOLOGY_AWARE_HINTS_ENABLED: &str = "Topology Aware Hints has been enabled";
/// Event message (Warning, `TopologyAwareHintsDisabled`) when the annotation goes away.
pub const TOPOLOGY_AWARE_HINTS_DISABLED: &str = "Topology Aware Hints has been disabled";
/// Event message: node zone or CPU missing.
pub const INSUFFICIENT_NODE_INFO: &str =
    "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes";
/// Event message: ready nodes in one zone only.
pub const NODES_READY_IN_ONE_ZONE_ONLY: &str = "Nodes only ready in one zone";
/// Event message prefix: fewer endpoints than zones.
pub const INSUFFICIENT_NUMBER_OF_ENDPOINTS: &str = "Insufficient number of endpoints";
/// Event message prefix: minimums exceed the endpoints available.
pub const MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD: &str = "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold";

/// What the `Auto` topology mode decided for one address type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyHintsOutcome {
    /// Hints were written; the number of endpoints hinted to each zone.
    Allocated(BTreeMap<String, usize>),
    /// Hints were removed; the event message, already suffixed with the address type.
    Disabled(String),
}

/// Upstream's `hintsEnabled`: the deprecated annotation if present, else the new one; only
/// `Auto` and `auto` enable.
pub fn topology_annotation_enabled(annotations: Option<&BTreeMap<String, String>>) -> bool {
    let Some(annotations) = annotations else {
        return false;
    };
    let value = annotations
        .get(ANNOTATION_TOPOLOGY_AWARE_HINTS)
        .or_else(|| annotations.get(ANNOTATION_TOPOLOGY_MODE));
    matches!(value.map(String::as_str), Some("Auto" | "auto"))
}

/// Upstream's `validTrafficDistribution`.
pub fn valid_traffic_distribution(value: Option<&str>, prefer_same_enabled: bool) -> bool {
    match value {
        Some("PreferClose") => true,
        Some("PreferSameZone" | "PreferSameNode") => prefer_same_enabled,
        _ => false,
    }
}

/// "<message>, addressType: <type>".
pub(crate) fn with_address_type(message: &str, address_type: &str) -> String {
    format!("{message}, addressType: {address_type}")
}

fn endpoint_ready(endpoint: &Endpoint) -> bool {
    endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(true)
}

/// The slices of one address type as the hint logic sees them.
pub(crate) struct SliceSets<'a> {
    pub(crate) create: Vec<EndpointSlice>,
    pub(crate) update: Vec<EndpointSlice>,
    pub(crate) unchanged: Vec<&'a IndexedSlice>,
}

/// Upstream's `RemoveHintsFromSlices`: clear hints on slices being written; unchanged
/// slices that carry hints are copied into the updates without them.
pub(crate) fn remove_hints(sets: &mut SliceSets<'_>) {
    for slice in sets.create.iter_mut().chain(sets.update.iter_mut()) {
        for endpoint in &mut slice.endpoints {
            endpoint.hints = None;
        }
    }
    let mut still_unchanged = Vec::with_capacity(sets.unchanged.len());
    for slice in sets.unchanged.drain(..) {
        if slice.any_hints() {
            let mut copy = slice.slice().clone();
            for endpoint in &mut copy.endpoints {
                endpoint.hints = None;
            }
            sets.update.push(copy);
        } else {
            still_unchanged.push(slice);
        }
    }
    sets.unchanged = still_unchanged;
}

/// Upstream's `trafficdist.ReconcileHints` for a valid `trafficDistribution`: every ready
/// endpoint is hinted to its own zone (and node, for `PreferSameNode`).
pub(crate) fn reconcile_traffic_distribution(sets: &mut SliceSets<'_>, same_node: bool) {
    let mut still_unchanged = Vec::with_capacity(sets.unchanged.len());
    for slice in sets.unchanged.drain(..) {
        if traffic_hints_need_update(slice, same_node) {
            sets.update.push(slice.slice().clone());
        } else {
            still_unchanged.push(slice);
        }
    }
    sets.unchanged = still_unchanged;
    for slice in sets.create.iter_mut().chain(sets.update.iter_mut()) {
        for endpoint in slice.endpoints.iter_mut().filter(|e| endpoint_ready(e)) {
            let for_zones = endpoint
                .zone
                .as_ref()
                .map(|z| vec![ForZone { name: z.clone() }]);
            let for_nodes = endpoint
                .node_name
                .as_ref()
                .filter(|_| same_node)
                .map(|n| vec![ForNode { name: n.clone() }]);
            endpoint.hints = if for_zones.is_some() || for_nodes.is_some() {
                Some(EndpointHints {
                    for_zones,
                    for_nodes,
                })
            } else {
                None
            };
        }
    }
}

fn traffic_hints_need_update(slice: &EndpointSlice, same_node: bool) -> bool {
    slice
        .endpoints
        .iter()
        .filter(|e| endpoint_ready(e))
        .any(|e| {
            let zones = e.hints.as_ref().and_then(|h| h.for_zones.as_deref());
            let nodes = e.hints.as_ref().and_then(|h| h.for_nodes.as_deref());
            let zone_wrong = match &e.zone {
                Some(zone) => !matches!(zones, Some([only]) if only.name == *zone),
                None => zones.is_some_and(|z| !z.is_empty()),
            };
            let node_wrong = match e.node_name.as_ref().filter(|_| same_node) {
                Some(node) => !matches!(nodes, Some([only]) if only.name == *node),
                None => nodes.is_some_and(|n| !n.is_empty()),
            };
            zone_wrong || node_wrong
        })
}

/// Per-zone share of allocatable CPU (upstream's `SetNodes`), or `None` when the node
/// information is insufficient (a node without zone or CPU, or fewer than two zones).
pub(crate) fn cpu_ratios_by_zone(
    nodes: &BTreeMap<String, NodeInfo>,
) -> Option<BTreeMap<String, f64>> {
    let mut cpu_by_zone: BTreeMap<&str, i64> = BTreeMap::new();
    let mut total: i64 = 0;
    for node in nodes.values() {
        if node.excluded_from_topology || !node.ready {
            continue;
        }
        let zone = node.zone.as_deref().filter(|z| !z.is_empty())?;
        if node.allocatable_cpu_millis == 0 {
            return None;
        }
        total = total.saturating_add(node.allocatable_cpu_millis);
        *cpu_by_zone.entry(zone).or_insert(0) += node.allocatable_cpu_millis;
    }
    if total == 0 || cpu_by_zone.len() < 2 {
        return None;
    }
    Some(
        cpu_by_zone
            .into_iter()
            .map(|(zone, cpu)| (zone.to_owned(), cpu as f64 / total as f64))
            .collect(),
    )
}

#[derive(Clone, Copy, Debug)]
struct Allocation {
    minimum: usize,
    maximum: usize,
    desired: f64,
}

fn allocations(
    ratios: Option<&BTreeMap<String, f64>>,
    endpoints: usize,
) -> Result<BTreeMap<String, Allocation>, String> {
    let Some(ratios) = ratios else {
        return Err(INSUFFICIENT_NODE_INFO.to_owned());
    };
    if ratios.len() < 2 {
        return Err(NODES_READY_IN_ONE_ZONE_ONLY.to_owned());
    }
    let zones = ratios.len();
    if zones > endpoints {
        return Err(format!(
            "{INSUFFICIENT_NUMBER_OF_ENDPOINTS} ({endpoints} endpoints, {zones} zones)"
        ));
    }
    let mut minimum_total = 0usize;
    let mut allocations = BTreeMap::new();
    for (zone, ratio) in ratios {
        let desired = ratio * endpoints as f64;
        let minimum = (desired * (1.0 / (1.0 + OVERLOAD_THRESHOLD))).ceil() as usize;
        minimum_total += minimum;
        if minimum_total > endpoints {
            return Err(format!(
                "{MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD} ({endpoints} endpoints, {zones} zones)"
            ));
        }
        allocations.insert(
            zone.clone(),
            Allocation {
                minimum,
                maximum: 0,
                desired: desired.max(minimum as f64),
            },
        );
    }
    for allocation in allocations.values_mut() {
        allocation.maximum = allocation.minimum + endpoints - minimum_total;
    }
    Ok(allocations)
}

/// Upstream's `getHintsByZone`: the hints an unchanged slice holds, or `None` if the slice
/// must be rewritten (a ready endpoint without hints, a hint for an unknown zone, or a zone
/// pushed past its maximum).
fn hints_by_zone(
    slice: &EndpointSlice,
    allocated: &BTreeMap<String, usize>,
    allocations: &BTreeMap<String, Allocation>,
) -> Option<BTreeMap<String, usize>> {
    let mut by_zone: BTreeMap<String, usize> = BTreeMap::new();
    for endpoint in slice.endpoints.iter().filter(|e| endpoint_ready(e)) {
        let zones = endpoint
            .hints
            .as_ref()
            .and_then(|h| h.for_zones.as_deref())
            .filter(|z| !z.is_empty())?;
        for zone in zones {
            if !allocations.contains_key(&zone.name) {
                return None;
            }
            *by_zone.entry(zone.name.clone()).or_insert(0) += 1;
        }
    }
    for (zone, hints) in &by_zone {
        let already = allocated.get(zone).copied().unwrap_or(0);
        let allocation = allocations.get(zone)?;
        if hints + already > allocation.maximum {
            return None;
        }
    }
    Some(by_zone)
}

/// Upstream's `TopologyCache.AddHints` for one address type.
pub(crate) fn add_topology_hints(
    sets: &mut SliceSets<'_>,
    ratios: Option<&BTreeMap<String, f64>>,
    address_type: &str,
) -> TopologyHintsOutcome {
    let ready_total: usize = sets
        .create
        .iter()
        .chain(sets.update.iter())
        .map(|s| s.endpoints.iter().filter(|e| endpoint_ready(e)).count())
        .sum::<usize>()
        + sets
            .unchanged
            .iter()
            .map(|s| s.endpoints.iter().filter(|e| endpoint_ready(e)).count())
            .sum::<usize>();
    let allocations = match allocations(ratios, ready_total) {
        Ok(a) => a,
        Err(message) => {
            remove_hints(sets);
            return TopologyHintsOutcome::Disabled(with_address_type(&message, address_type));
        }
    };

    let mut allocated: BTreeMap<String, usize> = BTreeMap::new();
    let mut still_unchanged = Vec::with_capacity(sets.unchanged.len());
    for slice in sets.unchanged.drain(..) {
        match hints_by_zone(slice, &allocated, &allocations) {
            None => sets.update.push(slice.slice().clone()),
            Some(by_zone) => {
                for (zone, n) in by_zone {
                    *allocated.entry(zone).or_insert(0) += n;
                }
                still_unchanged.push(slice);
            }
        }
    }
    sets.unchanged = still_unchanged;

    // Step 1: every ready endpoint hinted to its own zone. Not-ready endpoints keep what
    // they have: upstream clears a copy, not the slice.
    let mut missing_zone = false;
    'outer: for slice in sets.create.iter_mut().chain(sets.update.iter_mut()) {
        for endpoint in slice.endpoints.iter_mut().filter(|e| endpoint_ready(e)) {
            let Some(zone) = endpoint.zone.clone().filter(|z| !z.is_empty()) else {
                missing_zone = true;
                break 'outer;
            };
            *allocated.entry(zone.clone()).or_insert(0) += 1;
            endpoint.hints = Some(EndpointHints {
                for_zones: Some(vec![ForZone { name: zone }]),
                for_nodes: None,
            });
        }
    }
    if missing_zone {
        remove_hints(sets);
        return TopologyHintsOutcome::Disabled(with_address_type(NO_ZONE_SPECIFIED, address_type));
    }

    // Steps 2 and 3: move hints from zones above their share to zones below it.
    let (mut giving, mut receiving) = giving_and_receiving_zones(&allocations, &allocated);
    let mut signed: BTreeMap<String, i64> = allocated
        .iter()
        .map(|(z, n)| (z.clone(), i64::try_from(*n).unwrap_or(i64::MAX)))
        .collect();
    'redistribute: for slice in sets.create.iter_mut().chain(sets.update.iter_mut()) {
        for endpoint in slice.endpoints.iter_mut().filter(|e| endpoint_ready(e)) {
            if giving.is_empty() || receiving.is_empty() {
                break 'redistribute;
            }
            let Some(zone) = endpoint.zone.clone().filter(|z| !z.is_empty()) else {
                continue;
            };
            if giving.get(&zone).copied().unwrap_or(0) == 0 {
                continue;
            }
            let Some(target) = receiving
                .iter()
                .find(|(_, n)| **n > 0)
                .map(|(z, _)| z.clone())
            else {
                continue;
            };
            endpoint.hints = Some(EndpointHints {
                for_zones: Some(vec![ForZone {
                    name: target.clone(),
                }]),
                for_nodes: None,
            });
            decrement_or_remove(&mut giving, &zone);
            decrement_or_remove(&mut receiving, &target);
            *signed.entry(target).or_insert(0) += 1;
            *signed.entry(zone).or_insert(0) -= 1;
        }
    }
    if signed.is_empty() {
        remove_hints(sets);
        return TopologyHintsOutcome::Disabled(with_address_type(
            NO_ALLOCATED_HINTS_FOR_ZONES,
            address_type,
        ));
    }
    TopologyHintsOutcome::Allocated(
        signed
            .into_iter()
            .map(|(z, n)| (z, usize::try_from(n).unwrap_or(0)))
            .collect(),
    )
}

fn decrement_or_remove(map: &mut BTreeMap<String, usize>, zone: &str) {
    if let Some(n) = map.get_mut(zone) {
        if *n <= 1 {
            map.remove(zone);
        } else {
            *n -= 1;
        }
    }
}

/// Upstream's `getGivingAndReceivingZones`: whole endpoints each zone gives or receives.
fn giving_and_receiving_zones(
    allocations: &BTreeMap<String, Allocation>,
    allocated: &BTreeMap<String, usize>,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut giving_desired: BTreeMap<&str, f64> = BTreeMap::new();
    let mut receiving_desired: BTreeMap<&str, f64> = BTreeMap::new();
    for (zone, allocation) in allocations {
        let have = allocated.get(zone).copied().unwrap_or(0) as f64;
        if have > allocation.desired {
            giving_desired.insert(zone, have - allocation.desired);
        } else if have < allocation.desired {
            receiving_desired.insert(zone, allocation.desired - have);
        }
    }
    let mut giving = BTreeMap::new();
    let mut receiving = BTreeMap::new();
    loop {
        let (give_zone, to_give) = most(&giving_desired);
        let (receive_zone, to_receive) = most(&receiving_desired);
        let (Some(give_zone), Some(receive_zone)) = (give_zone, receive_zone) else {
            break;
        };
        if (to_give < 1.0 && to_receive < 1.0) || to_give < 0.5 || to_receive < 0.5 {
            break;
        }
        *giving.entry(give_zone.to_owned()).or_insert(0) += 1;
        *receiving.entry(receive_zone.to_owned()).or_insert(0) += 1;
        if let Some(v) = giving_desired.get_mut(give_zone) {
            *v -= 1.0;
        }
        if let Some(v) = receiving_desired.get_mut(receive_zone) {
            *v -= 1.0;
        }
    }
    (giving, receiving)
}

/// The zone with the largest positive value; the first by name on ties.
fn most<'a>(zones: &BTreeMap<&'a str, f64>) -> (Option<&'a str>, f64) {
    let mut best = (None, 0.0);
    for (zone, n) in zones {
        if *n > best.1 {
            best = (Some(*zone), *n);
        }
    }
    best
}
