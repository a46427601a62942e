#![forbid(unsafe_code)]
//! Service validation as kube-apiserver does it: defaulting, field rules, the registry's
//! pre-validation checks, and the 422/500 `Status` bodies — pure functions over plain data.

pub mod admission_review;
pub mod defaults;
pub mod endpoints;
pub mod families;
pub mod field;
pub mod ip;
pub mod meta;
pub mod names;
pub mod offline;
pub mod prepare;
pub mod server;
pub mod service;
pub mod status;

use k8s_openapi::api::core::v1::Service;

pub use defaults::default_service;
pub use families::{AllocationSnapshot, Rejection, ServiceRanges};
pub use field::{ErrorType, FieldError, FieldPath, FieldValue, ValueRendering};
pub use service::{TrafficDistributionValues, ValidationOptions};
pub use status::{Status, StatusCause, StatusDetails};

impl Rejection {
    /// The Status the apiserver answers with for this rejection of `kind`/`name`.
    pub fn to_status(&self, kind: &str, name: &str, style: ValueRendering) -> Status {
        match self {
            Rejection::Invalid(errs) => Status::invalid(kind, name, errs, style),
            Rejection::Internal(msg) => Status::internal_error(msg),
        }
    }
}

/// What the apiserver does with a (defaulted) Service on create, from allocation pre-checks to
/// `ValidateService`: the prepared object (families filled in) or the rejection.
pub fn check_service_create(
    svc: &Service,
    ranges: &ServiceRanges,
    taken: &AllocationSnapshot,
    opts: &ValidationOptions,
) -> Result<Service, Rejection> {
    let prepared = prepare_create(svc, ranges, taken, opts)?;
    Ok(Service {
        metadata: svc.metadata.clone(),
        spec: prepared.spec,
        status: svc.status.clone(),
    })
}

// The create pipeline on a spec-only copy: only the spec is rewritten before validation.
fn prepare_create(
    svc: &Service,
    ranges: &ServiceRanges,
    taken: &AllocationSnapshot,
    opts: &ValidationOptions,
) -> Result<Service, Rejection> {
    let mut prepared = Service {
        spec: svc.spec.clone(),
        ..Service::default()
    };
    prepare::normalize_cluster_ips(&mut prepared, None);
    families::prepare_ip_families(&mut prepared, None, ranges).map_err(Rejection::Invalid)?;
    families::check_static_claims(&prepared, ranges, taken)?;
    families::stand_in_health_check_node_port(&mut prepared, ranges, taken)?;
    let errs = service::validate_fields_with_meta(&svc.metadata, &prepared, opts);
    if errs.is_empty() {
        Ok(prepared)
    } else {
        Err(Rejection::Invalid(errs))
    }
}

/// What the apiserver does with a (defaulted) Service update: patch back omitted allocated
/// values, normalise, family checks, drop type-dependent fields, `ValidateServiceUpdate`.
/// New NodePort/ClusterIP claims of an update are not judged here (they need the allocator).
pub fn check_service_update(
    old: &Service,
    new: &Service,
    ranges: &ServiceRanges,
    opts: &ValidationOptions,
) -> Result<Service, Rejection> {
    let mut prepared = new.clone();
    prepare::patch_allocated_values(&mut prepared, old);
    prepare::normalize_cluster_ips(&mut prepared, Some(old));
    families::prepare_ip_families(&mut prepared, Some(old), ranges).map_err(Rejection::Invalid)?;
    prepare::drop_type_dependent_fields(&mut prepared, old);
    let errs = service::validate_service_update_fields(&prepared, old, opts);
    if errs.is_empty() {
        Ok(prepared)
    } else {
        Err(Rejection::Invalid(errs))
    }
}

/// What kube-apiserver's registry checks before it allocates anything (`BeginCreate` /
/// `BeginUpdate`): allocated values patched back (update), `clusterIP`/`clusterIPs` normalised,
/// then `initIPFamilyFields` with its loose `ValidateServiceClusterIPsRelatedFields`. A refusal
/// here is the whole answer: no allocation error and no other validation cause is reported.
/// `old` is the stored object on update.
pub fn check_before_allocation(
    old: Option<&Service>,
    new: &Service,
    ranges: &ServiceRanges,
) -> Result<(), Rejection> {
    let mut prepared = Service {
        spec: new.spec.clone(),
        ..Service::default()
    };
    if let Some(old) = old {
        prepare::patch_allocated_values(&mut prepared, old);
    }
    prepare::normalize_cluster_ips(&mut prepared, old);
    families::prepare_ip_families(&mut prepared, old, ranges).map_err(Rejection::Invalid)
}

/// The 422 causes for creating `svc` (already defaulted) in a cluster with `ranges`, nothing
/// else allocated. Allocation outcomes that upstream reports as 500 are not field errors and are
/// left out; use [`check_service_create`] to see them.
pub fn validate_service(svc: &Service, ranges: &ServiceRanges) -> Vec<FieldError> {
    match check_service_create(
        svc,
        ranges,
        &AllocationSnapshot::default(),
        &ValidationOptions::default(),
    ) {
        Err(Rejection::Invalid(errs)) => errs,
        Ok(_) | Err(Rejection::Internal(_)) => Vec::new(),
    }
}

/// The 422 causes for updating `old` to `new` (already defaulted).
pub fn validate_service_update(
    old: &Service,
    new: &Service,
    ranges: &ServiceRanges,
) -> Vec<FieldError> {
    match check_service_update(old, new, ranges, &ValidationOptions::default()) {
        Err(Rejection::Invalid(errs)) => errs,
        Ok(_) | Err(Rejection::Internal(_)) => Vec::new(),
    }
}
