//! One AdmissionReview in, one answer out: the per-kind handlers of `/validate` and `/mutate`.
//! Validating sees Services after allocation (§0.2 step 6); mutating allocates (step 4) and
//! reports allocation errors first and alone, then the full validation.

use std::net::IpAddr;
use std::sync::Arc;

use gocompat::ip::parse_ip_sloppy;
use json_patch::Patch;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::admission_review::{
    AdmissionRequest, AdmissionResponse, Operation, ReviewDecodeError, decode_request,
};
use crate::endpoints::{
    validate_container_ports, validate_endpoint_slice, validate_endpoint_subsets,
};
use crate::field::{FieldError, FieldPath, FieldValue, ValueRendering};
use crate::ip::LOOPBACK_DETAIL;
use crate::server::allocation::{Allocation, HeldValues, ServiceAllocator};
use crate::server::lookup::ClusterIpLookup;
use crate::status::{Status, StatusDetails};
use crate::{
    AllocationSnapshot, ServiceRanges, ValidationOptions, check_before_allocation,
    check_service_create, check_service_update, default_service,
};

/// The Service the API server maintains for itself.
const KUBERNETES_SERVICE: &str = "kubernetes";
/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What to do with a kind no handler knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownKindPolicy {
    /// Admit it, with a warning naming the kind (a misconfigured rule should not block writes).
    #[default]
    AllowWithWarning,
    /// Refuse it with a 400.
    Deny,
}

/// The two admission endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `/mutate`: allocation and defaulting.
    Mutate,
    /// `/validate`: validation of the allocated object.
    Validate,
}

/// How an answered review is counted in the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// Admitted.
    Allowed,
    /// Refused with a 4xx Status.
    Denied,
    /// Refused with a 5xx Status (the allocator or the object failed us).
    Error,
}

impl ReviewOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewOutcome::Allowed => "allowed",
            ReviewOutcome::Denied => "denied",
            ReviewOutcome::Error => "error",
        }
    }

    fn of(response: &AdmissionResponse) -> Self {
        match (&response.status, response.allowed) {
            (_, true) => ReviewOutcome::Allowed,
            (Some(s), false) if s.code >= 500 => ReviewOutcome::Error,
            _ => ReviewOutcome::Denied,
        }
    }
}

/// An answered review: the response and how to count it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewAnswer {
    /// The response to send.
    pub response: AdmissionResponse,
    /// `Kind/OPERATION`, e.g. `Service/CREATE`.
    pub operation: String,
    /// Allowed, denied or error.
    pub outcome: ReviewOutcome,
}

/// The rules the handlers apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionPolicy {
    /// `--service-cluster-ip-range` / `--service-node-port-range` as the validator sees them.
    pub ranges: ServiceRanges,
    /// Feature switches of validation.
    pub options: ValidationOptions,
    /// Field-error value rendering (1.34+ JSON by default).
    pub rendering: ValueRendering,
    /// What to do with kinds no handler knows.
    pub unknown_kinds: UnknownKindPolicy,
    /// The loopback addresses an embedded API server (`svcplane up`) lists for itself in the
    /// `default/kubernetes` Endpoints and EndpointSlice. No real cluster can advertise a
    /// loopback address, so the loopback rule is waived for exactly these addresses on exactly
    /// that object, and for nothing else; empty (the default) against a real API server.
    pub apiserver_addresses: Vec<IpAddr>,
}

/// Answers AdmissionReviews.
#[derive(Clone)]
pub struct AdmissionHandler {
    policy: AdmissionPolicy,
    allocator: Option<Arc<dyn ServiceAllocator>>,
    services: Option<Arc<dyn ClusterIpLookup>>,
}

impl AdmissionHandler {
    /// A handler with `policy`; without an allocator `/mutate` admits Services unchanged, without
    /// a Service lookup no ClusterIP warnings are given.
    pub fn new(
        policy: AdmissionPolicy,
        allocator: Option<Arc<dyn ServiceAllocator>>,
        services: Option<Arc<dyn ClusterIpLookup>>,
    ) -> Self {
        AdmissionHandler {
            policy,
            allocator,
            services,
        }
    }

    /// Whether the allocator and the Service cache can answer.
    pub fn is_ready(&self) -> bool {
        self.allocator.as_ref().is_none_or(|a| a.is_ready())
            && self.services.as_ref().is_none_or(|s| s.is_ready())
    }

    /// Decodes `body` and answers it; a body that is no AdmissionReview is an error (HTTP 400).
    pub async fn review(
        &self,
        phase: Phase,
        body: &[u8],
    ) -> Result<ReviewAnswer, ReviewDecodeError> {
        let request = decode_request(body)?;
        Ok(self.answer(phase, &request).await)
    }

    /// Answers one decoded request.
    pub async fn answer(&self, phase: Phase, request: &AdmissionRequest) -> ReviewAnswer {
        let kind = request.kind.kind.as_str();
        let operation = format!("{kind}/{}", request.operation.as_str());
        let status_update = request.sub_resource.as_deref() == Some("status");
        let response = match (phase, request.kind.group.as_str(), kind) {
            (Phase::Validate, "", "Service") if status_update => {
                self.validate_service_status(request)
            }
            // A status update allocates nothing.
            (Phase::Mutate, "", "Service") if status_update => {
                AdmissionResponse::allow(&request.uid)
            }
            (Phase::Validate, "", "Service") => self.validate_service(request),
            (Phase::Mutate, "", "Service") => self.mutate_service(request).await,
            (Phase::Validate, "", "Endpoints") => self.validate_endpoints(request),
            (Phase::Validate, "discovery.k8s.io", "EndpointSlice") => {
                self.validate_endpoint_slice(request)
            }
            (Phase::Validate, "", "Pod") => validate_pod(request, self.policy.rendering),
            (Phase::Mutate, "", "Endpoints" | "Pod")
            | (Phase::Mutate, "discovery.k8s.io", "EndpointSlice") => {
                AdmissionResponse::allow(&request.uid)
            }
            _ => self.unknown_kind(request),
        };
        ReviewAnswer {
            outcome: ReviewOutcome::of(&response),
            response,
            operation,
        }
    }

    fn unknown_kind(&self, request: &AdmissionRequest) -> AdmissionResponse {
        let gvk = &request.kind;
        let what = if gvk.group.is_empty() {
            format!("{}/{}", gvk.version, gvk.kind)
        } else {
            format!("{}/{}, Kind={}", gvk.group, gvk.version, gvk.kind)
        };
        let text = format!("svcplane-webhook has no admission rules for {what}");
        match self.policy.unknown_kinds {
            UnknownKindPolicy::AllowWithWarning => {
                AdmissionResponse::allow(&request.uid).with_warnings(vec![text])
            }
            UnknownKindPolicy::Deny => AdmissionResponse::deny(&request.uid, bad_request(&text)),
        }
    }

    /// `ValidateServiceStatusUpdate` beyond ObjectMeta: the load balancer's status.
    fn validate_service_status(&self, request: &AdmissionRequest) -> AdmissionResponse {
        let svc = match decode_object::<Service>(request, "Service") {
            Ok(svc) => svc,
            Err(status) => return AdmissionResponse::deny(&request.uid, *status),
        };
        let errs = crate::service::validate_service_status(&svc);
        if errs.is_empty() {
            return AdmissionResponse::allow(&request.uid);
        }
        let status = invalid_status(
            "Service",
            "",
            &request.object_name(),
            &errs,
            self.policy.rendering,
        );
        AdmissionResponse::deny(&request.uid, status)
    }

    fn validate_service(&self, request: &AdmissionRequest) -> AdmissionResponse {
        let name = request.object_name();
        let result = match request.operation {
            Operation::Create => decode_object::<Service>(request, "Service").map(|svc| {
                check_service_create(
                    &svc,
                    &self.policy.ranges,
                    &AllocationSnapshot::default(),
                    &self.policy.options,
                )
            }),
            Operation::Update => decode_pair::<Service>(request, "Service").map(|(old, new)| {
                check_service_update(&old, &new, &self.policy.ranges, &self.policy.options)
            }),
            Operation::Delete | Operation::Connect => {
                return AdmissionResponse::allow(&request.uid);
            }
        };
        match result {
            Err(status) => AdmissionResponse::deny(&request.uid, *status),
            Ok(Ok(_)) => AdmissionResponse::allow(&request.uid),
            Ok(Err(rejection)) => AdmissionResponse::deny(
                &request.uid,
                rejection.to_status("Service", &name, self.policy.rendering),
            ),
        }
    }

    async fn mutate_service(&self, request: &AdmissionRequest) -> AdmissionResponse {
        let Some(allocator) = &self.allocator else {
            return AdmissionResponse::allow(&request.uid);
        };
        let uid = request.uid.as_str();
        let name = request.object_name();
        let dry_run = request.is_dry_run();
        let style = self.policy.rendering;
        match request.operation {
            Operation::Create => {
                let mut svc = match decode_object::<Service>(request, "Service") {
                    Ok(svc) => svc,
                    Err(status) => return AdmissionResponse::deny(uid, *status),
                };
                default_service(&mut svc);
                fill_namespace(&mut svc, request);
                // Only where a claim would outlive the refused write: elsewhere the API server's
                // own 409 (without this webhook's name in it) is the better answer.
                if !dry_run
                    && allocator.makes_claims()
                    && let Some(status) = self.already_exists(&svc).await
                {
                    return AdmissionResponse::deny(uid, status);
                }
                // Upstream judges families and clusterIPs before it allocates anything.
                if let Err(rejection) = check_before_allocation(None, &svc, &self.policy.ranges) {
                    return AdmissionResponse::deny(
                        uid,
                        rejection.to_status("Service", &name, style),
                    );
                }
                let allocation = match allocator.allocate_for_create(&svc, dry_run).await {
                    Ok(a) => a,
                    Err(rejection) => {
                        return AdmissionResponse::deny(uid, rejection.to_status(&name, style));
                    }
                };
                let checked = check_service_create(
                    &allocation.service,
                    &self.policy.ranges,
                    &AllocationSnapshot::default(),
                    &self.policy.options,
                );
                if let Err(rejection) = checked {
                    return self
                        .revert(allocator.as_ref(), &allocation, &rejection, request)
                        .await;
                }
                let original = request.object.clone().unwrap_or(Value::Null);
                AdmissionResponse::allow(uid)
                    .with_patch(&allocation_patch(&original, &allocation.service))
            }
            Operation::Update => {
                let (old, mut new) = match decode_pair::<Service>(request, "Service") {
                    Ok(pair) => pair,
                    Err(status) => return AdmissionResponse::deny(uid, *status),
                };
                default_service(&mut new);
                fill_namespace(&mut new, request);
                if let Err(rejection) =
                    check_before_allocation(Some(&old), &new, &self.policy.ranges)
                {
                    return AdmissionResponse::deny(
                        uid,
                        rejection.to_status("Service", &name, style),
                    );
                }
                let allocation = match allocator.allocate_for_update(&old, &new, dry_run).await {
                    Ok(a) => a,
                    Err(rejection) => {
                        return AdmissionResponse::deny(uid, rejection.to_status(&name, style));
                    }
                };
                let checked = check_service_update(
                    &old,
                    &allocation.service,
                    &self.policy.ranges,
                    &self.policy.options,
                );
                // The prepared object, not the allocated one, is what gets stored: it is the one
                // `dropTypeDependentFields` wiped, and the allocator released what it wiped.
                let prepared = match checked {
                    Ok(prepared) => prepared,
                    Err(rejection) => {
                        return self
                            .revert(allocator.as_ref(), &allocation, &rejection, request)
                            .await;
                    }
                };
                // A webhook never learns whether the write commits; releasing what the update
                // drops now is the best it can do (the repair controller fixes a lost race).
                self.release(allocator.as_ref(), &old, &allocation.dropped, dry_run)
                    .await;
                let original = request.object.clone().unwrap_or(Value::Null);
                AdmissionResponse::allow(uid).with_patch(&allocation_patch(&original, &prepared))
            }
            Operation::Delete => {
                if let Ok(old) = decode_old::<Service>(request, "Service") {
                    let held = HeldValues::of(&old);
                    self.release(allocator.as_ref(), &old, &held, dry_run).await;
                }
                AdmissionResponse::allow(uid)
            }
            Operation::Connect => AdmissionResponse::allow(uid),
        }
    }

    /// Validation refused what was allocated: upstream reverts the allocation transaction, so
    /// what this write claimed is released before the refusal is answered.
    async fn revert(
        &self,
        allocator: &dyn ServiceAllocator,
        allocation: &Allocation,
        rejection: &crate::Rejection,
        request: &AdmissionRequest,
    ) -> AdmissionResponse {
        self.release(
            allocator,
            &allocation.service,
            &allocation.claimed,
            request.is_dry_run(),
        )
        .await;
        let status = rejection.to_status("Service", &request.object_name(), self.policy.rendering);
        AdmissionResponse::deny(&request.uid, status)
    }

    /// The apiserver's 409 for a create of a name another Service holds. Upstream allocates,
    /// fails to store and reverts at once; a webhook is never told that the write failed, so
    /// it must not claim at all: each such claim would hold an address until the repair loop's
    /// grace period ends (and a small range fills up with them). Asked of the API server, not
    /// a cache, so that `kubectl delete svc x && kubectl create svc x` is never refused.
    async fn already_exists(&self, svc: &Service) -> Option<Status> {
        let lookup = self.services.as_ref()?;
        let namespace = svc.metadata.namespace.as_deref().unwrap_or_default();
        let name = svc.metadata.name.as_deref().filter(|n| !n.is_empty())?;
        lookup.current_uid(namespace, name).await?;
        Some(Status::already_exists("services", name))
    }

    async fn release(
        &self,
        allocator: &dyn ServiceAllocator,
        owner: &Service,
        values: &HeldValues,
        dry_run: bool,
    ) {
        if dry_run || values.is_empty() {
            return;
        }
        if let Err(e) = allocator.release(owner, values).await {
            tracing::warn!(error = %e, ips = %values.ips_text(), ports = %values.ports_text(), "releasing allocations failed; the repair controller will reclaim them");
        }
    }

    fn validate_endpoints(&self, request: &AdmissionRequest) -> AdmissionResponse {
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return AdmissionResponse::allow(&request.uid);
        }
        let endpoints = match decode_object::<Endpoints>(request, "Endpoints") {
            Ok(e) => e,
            Err(status) => return AdmissionResponse::deny(&request.uid, *status),
        };
        let subsets = endpoints.subsets.as_deref().unwrap_or(&[]);
        let mut errs = validate_endpoint_subsets(subsets);
        // On an update that leaves the subsets as they were, their errors are ignored, as
        // upstream's ValidateEndpoints ignores them ("older versions considered the data valid").
        if !errs.is_empty()
            && let Some(old) = decode_old_object::<Endpoints>(request)
            && old.subsets.as_deref().unwrap_or(&[]) == subsets
        {
            errs.clear();
        }
        let mut addresses = Vec::new();
        for (i, subset) in subsets.iter().enumerate() {
            let subset_path = FieldPath::new("subsets").index(i);
            for (list, field) in [
                (&subset.addresses, "addresses"),
                (&subset.not_ready_addresses, "notReadyAddresses"),
            ] {
                for (j, address) in list.iter().flatten().enumerate() {
                    let path = subset_path.child(field).index(j);
                    addresses.push((path.child("ip").to_string(), address.ip.clone()));
                }
            }
        }
        let namespace = namespace_of(request, endpoints.metadata.namespace.as_deref());
        if namespace == "default" && request.object_name() == KUBERNETES_SERVICE {
            self.waive_apiserver_loopback(&mut errs);
        }
        self.endpoint_answer(request, "Endpoints", "", errs, &namespace, &addresses)
    }

    fn validate_endpoint_slice(&self, request: &AdmissionRequest) -> AdmissionResponse {
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return AdmissionResponse::allow(&request.uid);
        }
        let slice = match decode_object::<EndpointSlice>(request, "EndpointSlice") {
            Ok(s) => s,
            Err(status) => return AdmissionResponse::deny(&request.uid, *status),
        };
        let old = decode_old_object::<EndpointSlice>(request);
        let mut errs = validate_endpoint_slice(&slice, old.as_ref());
        let mut addresses = Vec::new();
        if matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            for (i, endpoint) in slice.endpoints.iter().enumerate() {
                for (j, address) in endpoint.addresses.iter().enumerate() {
                    let path = FieldPath::new("endpoints")
                        .index(i)
                        .child("addresses")
                        .index(j);
                    addresses.push((path.to_string(), address.clone()));
                }
            }
        }
        let namespace = namespace_of(request, slice.metadata.namespace.as_deref());
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        if namespace == "default" && service.is_some_and(|s| s == KUBERNETES_SERVICE) {
            self.waive_apiserver_loopback(&mut errs);
        }
        self.endpoint_answer(
            request,
            "EndpointSlice",
            "discovery.k8s.io",
            errs,
            &namespace,
            &addresses,
        )
    }

    /// Drops the loopback errors about the embedded API server's own addresses (see
    /// [`AdmissionPolicy::apiserver_addresses`]); every other error stays.
    fn waive_apiserver_loopback(&self, errs: &mut Vec<FieldError>) {
        let own = &self.policy.apiserver_addresses;
        errs.retain(|e| {
            let FieldValue::Str(value) = &e.value else {
                return true;
            };
            let listed = parse_ip_sloppy(value).is_some_and(|ip| own.contains(&ip));
            !(listed && e.detail == LOOPBACK_DETAIL)
        });
    }

    fn endpoint_answer(
        &self,
        request: &AdmissionRequest,
        kind: &str,
        group: &str,
        errs: Vec<FieldError>,
        namespace: &str,
        addresses: &[(String, String)],
    ) -> AdmissionResponse {
        if !errs.is_empty() {
            let status = invalid_status(
                kind,
                group,
                &request.object_name(),
                &errs,
                self.policy.rendering,
            );
            return AdmissionResponse::deny(&request.uid, status);
        }
        let warnings = match &self.services {
            Some(lookup) => cluster_ip_warnings(lookup.as_ref(), namespace, addresses),
            None => Vec::new(),
        };
        AdmissionResponse::allow(&request.uid).with_warnings(warnings)
    }
}

/// The warnings for endpoint addresses that are ClusterIPs of Services in `namespace`:
/// kube-proxy does not route to them, and upstream accepts them silently.
pub fn cluster_ip_warnings(
    lookup: &dyn ClusterIpLookup,
    namespace: &str,
    addresses: &[(String, String)],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (path, address) in addresses {
        let Some(ip) = parse_ip_sloppy(address) else {
            continue;
        };
        for service in lookup.services_with_cluster_ip(namespace, ip) {
            warnings.push(cluster_ip_warning(path, ip, namespace, &service));
        }
    }
    warnings
}

/// The text of one ClusterIP-as-endpoint warning.
pub fn cluster_ip_warning(path: &str, ip: IpAddr, namespace: &str, service: &str) -> String {
    format!(
        "{path}: {ip} is the ClusterIP of Service \"{namespace}/{service}\"; kube-proxy does not route traffic to a ClusterIP used as an endpoint address"
    )
}

fn validate_pod(request: &AdmissionRequest, style: ValueRendering) -> AdmissionResponse {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return AdmissionResponse::allow(&request.uid);
    }
    let pod = match decode_object::<Pod>(request, "Pod") {
        Ok(p) => p,
        Err(status) => return AdmissionResponse::deny(&request.uid, *status),
    };
    let Some(spec) = &pod.spec else {
        return AdmissionResponse::allow(&request.uid);
    };
    let mut errs = validate_container_ports(
        &spec.containers,
        &FieldPath::new("spec").child("containers"),
    );
    if let Some(init) = &spec.init_containers {
        errs.extend(validate_container_ports(
            init,
            &FieldPath::new("spec").child("initContainers"),
        ));
    }
    if errs.is_empty() {
        return AdmissionResponse::allow(&request.uid);
    }
    AdmissionResponse::deny(
        &request.uid,
        invalid_status("Pod", "", &request.object_name(), &errs, style),
    )
}

/// `errors.NewInvalid` for any group: the message names `Kind.group`, the details keep both.
pub fn invalid_status(
    kind: &str,
    group: &str,
    name: &str,
    errs: &[FieldError],
    style: ValueRendering,
) -> Status {
    if group.is_empty() {
        return Status::invalid(kind, name, errs, style);
    }
    let mut status = Status::invalid(&format!("{kind}.{group}"), name, errs, style);
    if let Some(details) = status.details.as_mut() {
        details.kind = kind.to_owned();
        details.group = group.to_owned();
    }
    status
}

/// A 400 `BadRequest` Status.
pub fn bad_request(message: &str) -> Status {
    let mut status = Status::internal_error(message);
    status.message = message.to_owned();
    status.reason = "BadRequest".to_owned();
    status.details = None::<StatusDetails>;
    status.code = 400;
    status
}

fn decode_value<T: DeserializeOwned>(
    value: Option<&Value>,
    what: &str,
    kind: &str,
) -> Result<T, Box<Status>> {
    let value = value.ok_or_else(|| {
        Box::new(bad_request(&format!(
            "the AdmissionReview carries no {what}"
        )))
    })?;
    T::deserialize(value).map_err(|e| {
        Box::new(bad_request(&format!(
            "the {what} is not a valid {kind}: {e}"
        )))
    })
}

fn decode_object<T: DeserializeOwned>(
    request: &AdmissionRequest,
    kind: &str,
) -> Result<T, Box<Status>> {
    decode_value(request.object.as_ref(), "object", kind)
}

fn decode_old<T: DeserializeOwned>(
    request: &AdmissionRequest,
    kind: &str,
) -> Result<T, Box<Status>> {
    decode_value(request.old_object.as_ref(), "oldObject", kind)
}

/// An update's old object, if the review carries one that decodes.
fn decode_old_object<T: DeserializeOwned>(request: &AdmissionRequest) -> Option<T> {
    if request.operation != Operation::Update {
        return None;
    }
    decode_old(request, "").ok()
}

fn decode_pair<T: DeserializeOwned>(
    request: &AdmissionRequest,
    kind: &str,
) -> Result<(T, T), Box<Status>> {
    Ok((decode_old(request, kind)?, decode_object(request, kind)?))
}

fn namespace_of(request: &AdmissionRequest, from_object: Option<&str>) -> String {
    match from_object {
        Some(ns) if !ns.is_empty() => ns.to_owned(),
        _ => request.namespace.clone(),
    }
}

// The apiserver fills the namespace from the URL; a review may still carry an object without.
fn fill_namespace(svc: &mut Service, request: &AdmissionRequest) {
    if svc.metadata.namespace.as_deref().unwrap_or("").is_empty() && !request.namespace.is_empty() {
        svc.metadata.namespace = Some(request.namespace.clone());
    }
    if svc.metadata.name.as_deref().unwrap_or("").is_empty() && !request.name.is_empty() {
        svc.metadata.name = Some(request.name.clone());
    }
}

/// The JSON Patch that turns `original` (the object as the apiserver sent it) into one carrying
/// the allocated and type-dependent fields of `allocated`: the ClusterIPs and families, the
/// NodePorts, and what a type change wipes (`externalTrafficPolicy`,
/// `allocateLoadBalancerNodePorts`, `loadBalancerClass`). A value that is absent (or a port
/// number 0, which Go omits) removes the field. Nothing else is touched, so fields this build
/// of the API types does not know survive.
pub fn allocation_patch(original: &Value, allocated: &Service) -> Patch {
    let mut target = original.clone();
    let spec = allocated.spec.clone().unwrap_or_default();
    let Some(root) = target.as_object_mut() else {
        return Patch(Vec::new());
    };
    let spec_value = root
        .entry("spec")
        .or_insert_with(|| Value::Object(Default::default()));
    if !spec_value.is_object() {
        *spec_value = Value::Object(Default::default());
    }
    let Some(target_spec) = spec_value.as_object_mut() else {
        return Patch(Vec::new());
    };
    let mut set = |key: &str, value: Option<Value>| match value {
        Some(v) => {
            target_spec.insert(key.to_owned(), v);
        }
        None => {
            target_spec.remove(key);
        }
    };
    set("clusterIP", spec.cluster_ip.clone().map(Value::from));
    set("clusterIPs", spec.cluster_ips.clone().map(Value::from));
    set("ipFamilies", spec.ip_families.clone().map(Value::from));
    set(
        "ipFamilyPolicy",
        spec.ip_family_policy.clone().map(Value::from),
    );
    set(
        "healthCheckNodePort",
        spec.health_check_node_port
            .filter(|&p| p != 0)
            .map(Value::from),
    );
    set(
        "externalTrafficPolicy",
        spec.external_traffic_policy.clone().map(Value::from),
    );
    set(
        "allocateLoadBalancerNodePorts",
        spec.allocate_load_balancer_node_ports.map(Value::from),
    );
    set(
        "loadBalancerClass",
        spec.load_balancer_class.clone().map(Value::from),
    );
    if let Some(ports) = target_spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (port, allocated) in ports.iter_mut().zip(spec.ports.iter().flatten()) {
            let Some(port) = port.as_object_mut() else {
                continue;
            };
            match allocated.node_port.filter(|&p| p != 0) {
                Some(node_port) => port.insert("nodePort".to_owned(), Value::from(node_port)),
                None => port.remove("nodePort"),
            };
        }
    }
    json_patch::diff(original, &target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allocation_patch_touches_only_allocated_fields() {
        let original = json!({"metadata":{"name":"web"},"spec":{"type":"NodePort","x-future":1,
            "ports":[{"port":80,"protocol":"TCP"}]}});
        let allocated: Service = serde_json::from_value(json!({"metadata":{"name":"web"},
            "spec":{"type":"NodePort","clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],
            "ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack",
            "ports":[{"port":80,"protocol":"TCP","nodePort":30080}]}}))
        .unwrap();
        let patch = allocation_patch(&original, &allocated);
        let mut patched = original.clone();
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(
            patched,
            json!({"metadata":{"name":"web"},"spec":{"type":"NodePort","x-future":1,
                "ports":[{"port":80,"protocol":"TCP","nodePort":30080}],
                "clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"ipFamilies":["IPv4"],
                "ipFamilyPolicy":"SingleStack"}})
        );
    }

    fn review(kind: (&str, &str), name: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
                "resource": {"group": kind.0, "version": "v1", "resource": "x"},
                "name": name, "namespace": "default", "operation": "CREATE",
                "userInfo": {"username": "admin"}, "object": object}}),
        )
        .unwrap()
    }

    fn endpoints(name: &str, ip: &str) -> Vec<u8> {
        review(
            ("", "Endpoints"),
            name,
            json!({"metadata": {"name": name, "namespace": "default"},
                // As the API server hands it over: defaulted (the protocol).
                "subsets": [{"addresses": [{"ip": ip}],
                    "ports": [{"port": 6443, "protocol": "TCP"}]}]}),
        )
    }

    fn slice(service: &str, ip: &str) -> Vec<u8> {
        review(
            ("discovery.k8s.io", "EndpointSlice"),
            service,
            json!({"metadata": {"name": service, "namespace": "default",
                    "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "endpoints": [{"addresses": [ip]}],
                "ports": [{"name": "", "port": 6443, "protocol": "TCP"}]}),
        )
    }

    #[test]
    fn only_the_embedded_apiservers_own_address_on_its_own_endpoints_may_be_loopback() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let allowed = |handler: &AdmissionHandler, body: Vec<u8>| {
            let answer = runtime
                .block_on(handler.review(Phase::Validate, &body))
                .unwrap();
            answer.response.allowed
        };
        let playground = AdmissionHandler::new(
            AdmissionPolicy {
                apiserver_addresses: vec!["127.0.0.1".parse().unwrap()],
                ..AdmissionPolicy::default()
            },
            None,
            None,
        );
        assert!(allowed(&playground, endpoints("kubernetes", "127.0.0.1")));
        assert!(allowed(&playground, slice("kubernetes", "127.0.0.1")));
        // Another address, another object, or a webhook in front of a real API server: refused.
        assert!(!allowed(&playground, endpoints("kubernetes", "127.0.0.2")));
        assert!(!allowed(&playground, endpoints("web", "127.0.0.1")));
        assert!(!allowed(&playground, slice("web", "127.0.0.1")));
        let real = AdmissionHandler::new(AdmissionPolicy::default(), None, None);
        assert!(!allowed(&real, endpoints("kubernetes", "127.0.0.1")));
        assert!(!allowed(&real, slice("kubernetes", "127.0.0.1")));
    }

    #[test]
    fn endpoint_slice_status_names_the_group() {
        let errs = vec![FieldError::invalid(
            FieldPath::new("endpoints")
                .index(0)
                .child("addresses")
                .index(0),
            crate::field::FieldValue::Str("127.0.0.1".into()),
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        )];
        let status = invalid_status(
            "EndpointSlice",
            "discovery.k8s.io",
            "s",
            &errs,
            ValueRendering::Json,
        );
        assert_eq!(
            status.message,
            "EndpointSlice.discovery.k8s.io \"s\" is invalid: endpoints[0].addresses[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
        );
        let details = status.details.unwrap();
        assert_eq!(
            (details.kind.as_str(), details.group.as_str()),
            ("EndpointSlice", "discovery.k8s.io")
        );
    }
}
