//! The EndpointSlice planner: a pure function from a Service, its pods, the nodes and the
//! existing slices to the slices to create, update and delete, reproducing upstream's
//! reconciler (`k8s.io/endpointslice`), with deterministic output.
//!
//! Where upstream's order is random (Go map iteration, `PopAny`), this planner:
//! * walks existing slices in name order;
//! * fills slices with desired endpoints in identity order (sorted addresses, hostname,
//!   namespace, pod name) and writes every slice's endpoints in that order;
//! * keeps Service port order inside a slice (upstream writes its hash order);
//! * walks port groups in port-key order and address types IPv4 then IPv6;
//! * breaks ties between zones (topology hints) by zone name;
//! * returns `create` in the order it planned them, `update` and `delete` sorted by
//!   (address type, name).
//!
//! One deliberate addition: an update whose content (address type, ports, endpoints,
//! labels, ownerReferences, annotations other than the trigger time) equals the existing
//! slice is dropped, so an unchanged slice is never rewritten (kubernetes#108231).

pub mod hints;
pub mod indexed;
pub mod node;
pub mod pod;

mod endpoint;
mod reconcile;
pub(crate) mod slice;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;

pub use hints::TopologyHintsOutcome;
pub use indexed::{IndexedPod, IndexedSlice};
pub use node::NodeInfo;
pub use pod::PodInfo;
pub use slice::format_rfc3339_nano;

/// Label naming the controller that manages a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The managed-by value this controller writes.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label (empty value) on slices of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Annotation carrying the time of the change that triggered the write.
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// How many distinct (shared) pod label sets a plan remembers the selector's verdict on.
const MEMOISED_LABEL_SETS: usize = 8;

/// Default of `--max-endpoints-per-slice`.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: u16 = 100;

/// `--max-endpoints-per-slice`, validated to 1..=1000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MaxEndpointsPerSlice(u16);

/// A `--max-endpoints-per-slice` value outside 1..=1000 (upstream's texts).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaxEndpointsPerSliceError {
    /// Below 1.
    #[error("max-endpoints-per-slice must not be less than 1, but got {0}")]
    TooSmall(i64),
    /// Above 1000.
    #[error("max-endpoints-per-slice must not be more than 1000, but got {0}")]
    TooLarge(i64),
}

impl MaxEndpointsPerSlice {
    /// Validates a configured value.
    pub fn new(value: i64) -> Result<Self, MaxEndpointsPerSliceError> {
        if value < 1 {
            return Err(MaxEndpointsPerSliceError::TooSmall(value));
        }
        match u16::try_from(value) {
            Ok(v) if v <= 1000 => Ok(MaxEndpointsPerSlice(v)),
            _ => Err(MaxEndpointsPerSliceError::TooLarge(value)),
        }
    }

    /// The value as a count.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl Default for MaxEndpointsPerSlice {
    fn default() -> Self {
        MaxEndpointsPerSlice(DEFAULT_MAX_ENDPOINTS_PER_SLICE)
    }
}

/// Inputs of a plan other than the objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// Maximum endpoints per slice.
    pub max_endpoints_per_slice: MaxEndpointsPerSlice,
    /// Accept `PreferSameZone` / `PreferSameNode` trafficDistribution values.
    pub prefer_same_traffic_distribution: bool,
    /// Honour the topology annotation (upstream's topology cache; on in kube-controller-manager).
    pub topology_hints: bool,
    /// Time of the change that triggered this sync (`None`: the annotation is removed).
    pub trigger_time: Option<Timestamp>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_endpoints_per_slice: MaxEndpointsPerSlice::default(),
            prefer_same_traffic_distribution: false,
            topology_hints: true,
            trigger_time: None,
        }
    }
}

/// A problem that leaves the plan usable but asks for a retry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum PlanError {
    /// A pod's node is not in the node cache; the pod was left out (upstream's text).
    #[error("skipping Pod {pod} for Service {namespace}/{service}: Node {node} Not Found")]
    NodeNotFound {
        /// Pod name.
        pod: String,
        /// Service namespace.
        namespace: String,
        /// Service name.
        service: String,
        /// The node name the pod refers to.
        node: String,
    },
}

/// Counters for one address type, feeding upstream's metrics.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AddressTypeStats {
    /// `IPv4` or `IPv6`.
    pub address_type: String,
    /// Endpoints placed that no existing slice held (`endpoints_added_per_sync`).
    pub endpoints_added: usize,
    /// Endpoints dropped from existing slices (`endpoints_removed_per_sync`).
    pub endpoints_removed: usize,
    /// Desired endpoints (`endpoints_desired`).
    pub desired_endpoints: usize,
    /// Slices with perfect packing, at least 1 (`desired_endpoint_slices`).
    pub desired_slices: usize,
    /// Slices that exist once the plan is applied (`num_endpoint_slices`).
    pub actual_slices: usize,
}

/// The writes that bring a Service's EndpointSlices to the desired state.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EndpointSlicePlan {
    /// Slices to create (`metadata.generateName` set, no name).
    pub create: Vec<EndpointSlice>,
    /// Slices to replace, by name (including creates recycled onto slices being deleted).
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
    /// Problems to retry on, sorted; the writes above are still to be made.
    pub errors: Vec<PlanError>,
    /// Counters per address type, for metrics.
    pub stats: Vec<AddressTypeStats>,
    /// Outcome of the `Auto` topology mode per address type (only when it is on).
    pub topology_hints: Vec<(String, TopologyHintsOutcome)>,
}

impl EndpointSlicePlan {
    /// True if the plan writes nothing.
    pub fn is_noop(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The address types a Service's slices use (upstream's `getAddressTypesForService`), in
/// the order IPv4, IPv6.
pub fn address_types_for_service(service: &Service) -> Vec<&'static str> {
    let spec = service.spec.as_ref();
    let families = spec.and_then(|s| s.ip_families.as_deref()).unwrap_or(&[]);
    let v4 = families.iter().any(|f| f == "IPv4");
    let v6 = families.iter().any(|f| f == "IPv6");
    if v4 || v6 {
        return [("IPv4", v4), ("IPv6", v6)]
            .into_iter()
            .filter_map(|(t, on)| on.then_some(t))
            .collect();
    }
    let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
    if !cluster_ip.is_empty() && cluster_ip != "None" {
        // `utilnet.IsIPv6String`: IPv4-mapped IPv6 and unparsable values count as IPv4.
        let is_v6 = gocompat::ip::parse_ip_sloppy(cluster_ip).is_some_and(gocompat::ip::is_ipv6);
        return vec![if is_v6 { "IPv6" } else { "IPv4" }];
    }
    vec!["IPv4", "IPv6"]
}

/// Plans the EndpointSlice writes for one Service; [`plan_indexed`] over inputs hashed on
/// the spot (the controller keeps its inputs hashed, so its re-plans skip that work).
pub fn plan(
    service: &Service,
    pods: &[PodInfo],
    nodes: &BTreeMap<String, NodeInfo>,
    existing: &[EndpointSlice],
    options: &PlanOptions,
) -> EndpointSlicePlan {
    let pods: Vec<IndexedPod> = pods.iter().cloned().map(IndexedPod::new).collect();
    let existing: Vec<IndexedSlice> = existing.iter().cloned().map(IndexedSlice::new).collect();
    let pods: Vec<&IndexedPod> = pods.iter().collect();
    let existing: Vec<&IndexedSlice> = existing.iter().collect();
    plan_indexed(service, &pods, nodes, &existing, options)
}

/// Plans the EndpointSlice writes for one Service.
///
/// `pods` may hold pods of any namespace and labels: those outside the Service's namespace
/// or selector are ignored. `existing` may hold any slices: only those in the Service's
/// namespace carrying its service-name label and this controller's managed-by label, and
/// not being deleted, are considered. Services of type ExternalName or without a selector
/// get an empty plan (upstream leaves their slices alone).
pub fn plan_indexed(
    service: &Service,
    pods: &[&IndexedPod],
    nodes: &BTreeMap<String, NodeInfo>,
    existing: &[&IndexedSlice],
    options: &PlanOptions,
) -> EndpointSlicePlan {
    let Some(spec) = service.spec.as_ref() else {
        return EndpointSlicePlan::default();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return EndpointSlicePlan::default();
    }
    let Some(selector) = spec.selector.as_ref() else {
        return EndpointSlicePlan::default();
    };
    let namespace = service.metadata.namespace.as_deref().unwrap_or("");
    let name = service.metadata.name.as_deref().unwrap_or("");

    // Pods of one template share their label set (the cache interns it), and a Service
    // selects few templates: match each shared set once.
    let mut label_sets: Vec<(*const BTreeMap<String, String>, bool)> = Vec::new();
    let mut matches = |pod: &PodInfo| -> bool {
        let set = Arc::as_ptr(&pod.labels);
        if let Some((_, matched)) = label_sets.iter().find(|(seen, _)| *seen == set) {
            return *matched;
        }
        let matched = pod.matches_selector(selector);
        if label_sets.len() < MEMOISED_LABEL_SETS {
            label_sets.push((set, matched));
        }
        matched
    };
    let selected: Vec<&IndexedPod> = pods
        .iter()
        .copied()
        .filter(|p| *p.namespace == *namespace && matches(p))
        .collect();
    let mut ours: Vec<&IndexedSlice> = existing
        .iter()
        .copied()
        .filter(|s| {
            let labels = s.metadata.labels.as_ref();
            s.metadata.namespace.as_deref().unwrap_or("") == namespace
                && s.metadata.deletion_timestamp.is_none()
                && labels
                    .and_then(|l| l.get(LABEL_SERVICE_NAME))
                    .map(String::as_str)
                    == Some(name)
                && labels
                    .and_then(|l| l.get(LABEL_MANAGED_BY))
                    .map(String::as_str)
                    == Some(CONTROLLER_NAME)
        })
        .collect();
    ours.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let address_types = address_types_for_service(service);
    let mut result = EndpointSlicePlan::default();
    let mut errors = BTreeSet::new();
    let mut deletes: Vec<&IndexedSlice> = Vec::new();
    let context = reconcile::Context::new(service, nodes, options);
    for address_type in &address_types {
        let of_type: Vec<&IndexedSlice> = ours
            .iter()
            .copied()
            .filter(|s| s.address_type == *address_type)
            .collect();
        let outcome = context.reconcile_address_type(address_type, &selected, &of_type);
        result.create.extend(outcome.create);
        result.update.extend(outcome.update);
        deletes.extend(outcome.delete);
        errors.extend(outcome.errors);
        result.stats.push(outcome.stats);
        if let Some(hints) = outcome.topology {
            result
                .topology_hints
                .push(((*address_type).to_owned(), hints));
        }
    }
    deletes.extend(
        ours.iter()
            .copied()
            .filter(|s| !address_types.contains(&s.address_type.as_str())),
    );

    let by_type_and_name = |a: &EndpointSlice, b: &EndpointSlice| {
        (&a.address_type, &a.metadata.name).cmp(&(&b.address_type, &b.metadata.name))
    };
    result.update.sort_by(by_type_and_name);
    result.delete = deletes.into_iter().map(|s| s.slice().clone()).collect();
    result.delete.sort_by(by_type_and_name);
    result.errors = errors.into_iter().collect();
    result
}
