//! The shape of slices the controller writes: labels, owner reference, new and placeholder
//! slices, the port-group key and the trigger-time annotation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use super::{
    ANNOTATION_TRIGGER_TIME, CONTROLLER_NAME, LABEL_HEADLESS, LABEL_MANAGED_BY, LABEL_SERVICE_NAME,
};

/// Labels a Service cannot pass on to its slices.
fn is_reserved_label(key: &str) -> bool {
    key == LABEL_SERVICE_NAME || key == LABEL_MANAGED_BY || key == LABEL_HEADLESS
}

/// True unless clusterIP is `None` or empty (upstream's `isServiceIPSet`).
pub(crate) fn has_cluster_ip(service: &Service) -> bool {
    let ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != "None"
}

/// Upstream's `setEndpointSliceLabels`: the labels a slice should carry, and whether its
/// non-reserved labels differ from the Service's (which alone triggers an update).
pub(crate) fn slice_labels(
    current: Option<&BTreeMap<String, String>>,
    service: &Service,
) -> (BTreeMap<String, String>, bool) {
    let service_labels = service.metadata.labels.as_ref();
    let mut wanted: BTreeMap<String, String> = service_labels
        .into_iter()
        .flatten()
        .filter(|(k, _)| !is_reserved_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let have = current
        .into_iter()
        .flatten()
        .filter(|(k, _)| !is_reserved_label(k));
    let changed = !have.eq(wanted.iter());
    if !has_cluster_ip(service) {
        wanted.insert(LABEL_HEADLESS.to_owned(), String::new());
    }
    wanted.insert(
        LABEL_SERVICE_NAME.to_owned(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    wanted.insert(LABEL_MANAGED_BY.to_owned(), CONTROLLER_NAME.to_owned());
    (wanted, changed)
}

/// The controller ownerReference upstream's `NewControllerRef` builds for a Service.
pub(crate) fn owner_reference(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: service.metadata.name.clone().unwrap_or_default(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Upstream's `ownedBy`: an ownerReference with the Service's UID, kind Service, apiVersion v1.
pub(crate) fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref().unwrap_or("");
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

/// `<service>-`, or the bare name when that is not a valid DNS-subdomain prefix.
pub(crate) fn generate_name(service_name: &str) -> String {
    // A prefix is checked with its trailing dash masked, so "<name>-" is valid exactly
    // when "<name>a" is a DNS subdomain of at most 253 characters.
    let valid_chars = service_name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let starts_alnum = service_name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid_chars && starts_alnum && service_name.len() < 253 {
        format!("{service_name}-")
    } else {
        service_name.to_owned()
    }
}

/// A new slice for the Service (upstream's `newEndpointSlice`), without endpoints.
pub(crate) fn new_slice(
    service: &Service,
    address_type: &str,
    ports: Vec<EndpointPort>,
) -> EndpointSlice {
    let name = service.metadata.name.as_deref().unwrap_or("");
    let (labels, _) = slice_labels(None, service);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(generate_name(name)),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(service)]),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_owned(),
        ports: Some(ports),
        endpoints: Vec::new(),
    }
}

/// Upstream's `placeholderSliceCompare`: namespace, exact labels, ownerReferences, address
/// type, ports and endpoints (nil == empty); name, annotations and the rest are ignored.
pub(crate) fn equals_placeholder(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    let empty_labels = BTreeMap::new();
    slice.metadata.namespace.as_deref().unwrap_or("")
        == placeholder.metadata.namespace.as_deref().unwrap_or("")
        && slice.metadata.labels.as_ref().unwrap_or(&empty_labels)
            == placeholder
                .metadata
                .labels
                .as_ref()
                .unwrap_or(&empty_labels)
        && slice.metadata.owner_references.as_deref().unwrap_or(&[])
            == placeholder
                .metadata
                .owner_references
                .as_deref()
                .unwrap_or(&[])
        && slice.address_type == placeholder.address_type
        && slice.ports.as_deref().unwrap_or(&[]) == placeholder.ports.as_deref().unwrap_or(&[])
        && slice.endpoints == placeholder.endpoints
}

/// Upstream's order of a slice's ports: `NewPortMapKey` sorts the list it is given in place
/// (by the MD5 of each port's go-spew dump) and that sorted list is the one written, by the
/// EndpointSlice controller and by the mirroring controller alike.
pub(crate) fn sort_ports_as_upstream(ports: &mut [EndpointPort]) {
    gocompat::hash_order::sort_by_dump_hash(ports, |p| {
        gocompat::hash_order::discovery_port_dump(
            p.name.as_deref(),
            p.protocol.as_deref(),
            p.port,
            p.app_protocol.as_deref(),
        )
    });
}

/// One port as it takes part in the port-group key.
type PortTuple = (Option<String>, Option<i32>, Option<String>, Option<String>);

/// The key slices and pods are grouped by: the port list as a sorted multiset, so order
/// does not matter and nil equals empty (upstream hashes the sorted list).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PortKey(Vec<PortTuple>);

impl PortKey {
    pub(crate) fn of(ports: Option<&[EndpointPort]>) -> Self {
        let mut tuples: Vec<PortTuple> = ports
            .unwrap_or(&[])
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.port,
                    p.protocol.clone(),
                    p.app_protocol.clone(),
                )
            })
            .collect();
        tuples.sort();
        PortKey(tuples)
    }
}

/// Upstream's `addTriggerTimeAnnotation`: set to the time in RFC3339Nano UTC, or removed
/// when there is no trigger time.
pub(crate) fn set_trigger_time(slice: &mut EndpointSlice, trigger_time: Option<Timestamp>) {
    match trigger_time {
        Some(t) => {
            slice
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(ANNOTATION_TRIGGER_TIME.to_owned(), format_rfc3339_nano(t));
        }
        None => {
            if let Some(annotations) = slice.metadata.annotations.as_mut() {
                annotations.remove(ANNOTATION_TRIGGER_TIME);
            }
        }
    }
}

/// Go's `time.RFC3339Nano` in UTC: fractional seconds only when non-zero, trailing zeros
/// trimmed, `Z` suffix.
pub fn format_rfc3339_nano(t: Timestamp) -> String {
    let seconds = t.as_second();
    let nanos = t.subsec_nanosecond();
    let whole = Timestamp::from_second(seconds).unwrap_or(t);
    let base = whole.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let fraction = format!("{:09}", nanos.unsigned_abs());
        format!("{base}.{}Z", fraction.trim_end_matches('0'))
    }
}
