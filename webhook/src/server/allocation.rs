//! Who fills in ClusterIPs and NodePorts on admission: the [`ServiceAllocator`] seam, which the
//! allocator registry implements, and the mapping of allocator refusals onto upstream's 422/500
//! answers (§1.3).

use std::net::IpAddr;

use allocator::{Outcome, ServiceAllocationError, held_cluster_ips, held_node_ports};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

use crate::field::{FieldError, FieldPath, FieldValue, ValueRendering};
use crate::status::{Status, StatusDetails};

/// How an allocation failure is answered, as upstream answers it: never mixed with validation
/// causes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocationRejection {
    /// 422 `Invalid` with these causes.
    Invalid(Vec<FieldError>),
    /// 500 `InternalError`: `Internal error occurred: <message>`.
    Internal(String),
    /// 500 with an empty reason (`StatusReasonUnknown`): a plain Go error, message verbatim.
    Unknown(String),
}

impl AllocationRejection {
    /// The Status the apiserver answers with for Service `name`.
    pub fn to_status(&self, name: &str, style: ValueRendering) -> Status {
        match self {
            AllocationRejection::Invalid(errs) => Status::invalid("Service", name, errs, style),
            AllocationRejection::Internal(message) => Status::internal_error(message),
            AllocationRejection::Unknown(message) => {
                let mut status = Status::internal_error(message);
                status.message = message.clone();
                status.reason = String::new();
                status.details = None::<StatusDetails>;
                status
            }
        }
    }
}

/// The refusal as one line of text: the field errors, or the message.
impl std::fmt::Display for AllocationRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllocationRejection::Invalid(errs) => {
                let texts: Vec<String> = errs.iter().map(ToString::to_string).collect();
                f.write_str(&texts.join(", "))
            }
            AllocationRejection::Internal(message) | AllocationRejection::Unknown(message) => {
                f.write_str(message)
            }
        }
    }
}

impl From<&Outcome> for AllocationRejection {
    fn from(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Invalid {
                field,
                value,
                detail,
                ..
            } => AllocationRejection::Invalid(vec![FieldError::invalid(
                FieldPath::new(field),
                field_value(field, value),
                detail.clone(),
            )]),
            Outcome::Internal { message } => AllocationRejection::Internal(message.clone()),
            Outcome::Unknown { message } => AllocationRejection::Unknown(message.clone()),
        }
    }
}

impl From<ServiceAllocationError> for AllocationRejection {
    fn from(e: ServiceAllocationError) -> Self {
        AllocationRejection::from(&e.outcome())
    }
}

// The allocator keeps bad values as JSON; give them back the Go type upstream printed so both
// renderings come out right.
fn field_value(field: &str, value: &Value) -> FieldValue {
    match value {
        Value::Null => FieldValue::Null,
        Value::Number(n) => n
            .as_i64()
            .map(FieldValue::Int)
            .unwrap_or_else(|| FieldValue::Str(n.to_string())),
        Value::String(s) => FieldValue::Named(s.clone()),
        Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect();
            if field.starts_with("spec.ipFamilies") {
                FieldValue::ip_families(Some(&items))
            } else {
                FieldValue::strings(Some(&items))
            }
        }
        other => FieldValue::Rendered {
            json: other.to_string(),
            go_syntax: other.to_string(),
        },
    }
}

/// A Service with its allocations filled in, and what the write claimed and dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Allocation {
    /// The Service with ClusterIPs, families and NodePorts filled in.
    pub service: Service,
    /// What this write claimed (to release if the write is refused later).
    pub claimed: HeldValues,
    /// What the old object held and the new one drops.
    pub dropped: HeldValues,
}

/// ClusterIPs and NodePorts (health-check port included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldValues {
    /// ClusterIPs.
    pub ips: Vec<IpAddr>,
    /// NodePorts.
    pub ports: Vec<i32>,
}

impl HeldValues {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty() && self.ports.is_empty()
    }

    /// The ClusterIPs, comma-separated (for logs).
    pub fn ips_text(&self) -> String {
        let texts: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
        texts.join(",")
    }

    /// The NodePorts, comma-separated (for logs).
    pub fn ports_text(&self) -> String {
        let texts: Vec<String> = self.ports.iter().map(ToString::to_string).collect();
        texts.join(",")
    }

    /// What `service` holds.
    pub fn of(service: &Service) -> Self {
        HeldValues {
            ips: held_cluster_ips(service),
            ports: held_node_ports(service),
        }
    }
}

/// Allocates and releases the ClusterIPs and NodePorts of Services on admission. A dry run
/// claims nothing.
pub trait ServiceAllocator: Send + Sync {
    /// Fills in what a Service being created needs (`beginCreate`).
    fn allocate_for_create<'a>(
        &'a self,
        service: &'a Service,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Allocation, AllocationRejection>>;

    /// Fills in what an update adds after `patchAllocatedValues` (`beginUpdate`).
    fn allocate_for_update<'a>(
        &'a self,
        old: &'a Service,
        new: &'a Service,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Allocation, AllocationRejection>>;

    /// Frees `values` held by `owner`; values held by anyone else are left alone.
    fn release<'a>(
        &'a self,
        owner: &'a Service,
        values: &'a HeldValues,
    ) -> BoxFuture<'a, Result<(), AllocationRejection>>;

    /// Whether the allocator has what it needs to answer (caches listed).
    fn is_ready(&self) -> bool {
        true
    }

    /// Whether a (non-dry-run) allocation makes claims that outlive a refused write; an
    /// allocator that only checks (audit mode next to kube-apiserver) makes none.
    fn makes_claims(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator::AllocationError;

    #[test]
    fn unknown_and_internal_outcomes_keep_their_codes() {
        let full = AllocationRejection::from(ServiceAllocationError::NodePortDynamic(
            AllocationError::Full,
        ));
        assert_eq!(
            full.to_status("web", ValueRendering::Json).to_json(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Internal error occurred: failed to allocate a nodePort: range is full","reason":"InternalError","details":{"causes":[{"message":"failed to allocate a nodePort: range is full"}]},"code":500}"#
        );
        let dup = AllocationRejection::from(ServiceAllocationError::DuplicateNodePort {
            protocol: "TCP".into(),
            node_port: 30080,
        });
        assert_eq!(
            dup.to_status("web", ValueRendering::Json).to_json(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"duplicate nodePort: {TCP 30080}","code":500}"#
        );
    }
}
