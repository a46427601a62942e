//! How an allocation failure reaches the client: a 422 field error or a 500, as plain data.

use std::fmt;

use serde_json::Value;
use thiserror::Error;

use crate::error::AllocationError;

/// The `reason` of a 422 cause (`field.ErrorType`); only the ones allocation produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseReason {
    /// `FieldValueInvalid`, message prefix `Invalid value`.
    FieldValueInvalid,
}

impl CauseReason {
    /// The cause `reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseReason::FieldValueInvalid => "FieldValueInvalid",
        }
    }

    /// The prefix of the cause message.
    pub fn message_prefix(self) -> &'static str {
        match self {
            CauseReason::FieldValueInvalid => "Invalid value",
        }
    }
}

/// What upstream answers for an allocation failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 422 `Invalid` with one cause.
    Invalid {
        /// The field path, e.g. `spec.ports[1].nodePort`.
        field: String,
        /// The cause reason.
        reason: CauseReason,
        /// The offending value; strings, numbers and lists keep their JSON type so that both
        /// upstream renderings (≤1.33 Go syntax, 1.34+ JSON) can be produced from it.
        value: Value,
        /// The text after the value.
        detail: String,
    },
    /// 500 `InternalError`; the Status message is `Internal error occurred: <message>`.
    Internal {
        /// The error text (also `details.causes[0].message`).
        message: String,
    },
    /// 500 with reason `Unknown`: a plain Go error that no status wrapper caught.
    Unknown {
        /// The error text, also the Status message.
        message: String,
    },
}

impl Outcome {
    /// The HTTP status code upstream answers with.
    pub fn code(&self) -> u16 {
        match self {
            Outcome::Invalid { .. } => 422,
            Outcome::Internal { .. } | Outcome::Unknown { .. } => 500,
        }
    }

    /// The cause message of a 422 (`Invalid value: 80: ...`), 1.34+ value rendering.
    pub fn cause_message(&self) -> Option<String> {
        match self {
            Outcome::Invalid {
                reason,
                value,
                detail,
                ..
            } => Some(format!("{}: {value}: {detail}", reason.message_prefix())),
            _ => None,
        }
    }
}

/// `field: cause` for a 422, the bare message otherwise.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Invalid { field, .. } => {
                write!(f, "{field}: {}", self.cause_message().unwrap_or_default())
            }
            Outcome::Internal { message } | Outcome::Unknown { message } => f.write_str(message),
        }
    }
}

/// A Service-level allocation failure; `Display` is upstream's error text and
/// [`ServiceAllocationError::outcome`] says how upstream reports it.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ServiceAllocationError {
    /// A requested nodePort could not be claimed (422 on `spec.ports[i].nodePort`).
    #[error("spec.ports[{index}].nodePort: Invalid value: {node_port}: {source}")]
    NodePort {
        /// Index into `spec.ports`.
        index: usize,
        /// The requested port.
        node_port: i32,
        /// The allocator's refusal.
        source: AllocationError,
    },
    /// No nodePort could be allocated dynamically (500).
    #[error("failed to allocate a nodePort: {0}")]
    NodePortDynamic(AllocationError),
    /// The requested healthCheckNodePort could not be claimed (500).
    #[error("failed to allocate requested HealthCheck NodePort {port}: {source}")]
    HealthCheckRequested {
        /// The requested port.
        port: i32,
        /// The allocator's refusal.
        source: AllocationError,
    },
    /// No healthCheckNodePort could be allocated; upstream prints the zero value (500).
    #[error("failed to allocate a HealthCheck NodePort 0: {0}")]
    HealthCheckDynamic(AllocationError),
    /// An update lists the same (protocol, nodePort) twice (500, reason `Unknown`).
    #[error("duplicate nodePort: {{{protocol} {node_port}}}")]
    DuplicateNodePort {
        /// The port's protocol.
        protocol: String,
        /// The nodePort.
        node_port: i32,
    },
    /// A requested ClusterIP could not be claimed (422 on `spec.clusterIPs`, whole list).
    #[error("spec.clusterIPs: Invalid value: {}: failed to allocate IP {requested}: {source}", Value::from(.cluster_ips.clone()))]
    ClusterIp {
        /// `spec.clusterIPs` as it stood (missing entries as `""`).
        cluster_ips: Vec<String>,
        /// The requested address as written.
        requested: String,
        /// The allocator's refusal.
        source: AllocationError,
    },
    /// No ClusterIP could be allocated dynamically (500).
    #[error("failed to allocate a serviceIP: {0}")]
    ClusterIpDynamic(AllocationError),
    /// A requested ClusterIP is not an address (500; validation normally catches it first).
    #[error("failed to parse service IP {}", gocompat::quote::go_quote(.0))]
    UnparsableClusterIp(String),
    /// A family/policy rule of §2.6 (422).
    #[error("{field}: Invalid value: {value}: {detail}")]
    Family {
        /// The field path.
        field: String,
        /// The offending value.
        value: Value,
        /// The message.
        detail: String,
    },
}

impl ServiceAllocationError {
    /// How upstream reports this error.
    pub fn outcome(&self) -> Outcome {
        let invalid = |field: String, value: Value, detail: String| Outcome::Invalid {
            field,
            reason: CauseReason::FieldValueInvalid,
            value,
            detail,
        };
        match self {
            ServiceAllocationError::NodePort {
                index,
                node_port,
                source,
            } => invalid(
                format!("spec.ports[{index}].nodePort"),
                Value::from(*node_port),
                source.to_string(),
            ),
            ServiceAllocationError::ClusterIp {
                cluster_ips,
                requested,
                source,
            } => invalid(
                "spec.clusterIPs".into(),
                Value::from(cluster_ips.clone()),
                format!("failed to allocate IP {requested}: {source}"),
            ),
            ServiceAllocationError::Family {
                field,
                value,
                detail,
            } => invalid(field.clone(), value.clone(), detail.clone()),
            ServiceAllocationError::DuplicateNodePort { .. } => Outcome::Unknown {
                message: self.to_string(),
            },
            ServiceAllocationError::NodePortDynamic(_)
            | ServiceAllocationError::HealthCheckRequested { .. }
            | ServiceAllocationError::HealthCheckDynamic(_)
            | ServiceAllocationError::ClusterIpDynamic(_)
            | ServiceAllocationError::UnparsableClusterIp(_) => Outcome::Internal {
                message: self.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_carry_field_code_and_text() {
        let e = ServiceAllocationError::NodePort {
            index: 0,
            node_port: 80,
            source: AllocationError::PortNotInRange {
                valid_ports: "30000-32767".into(),
            },
        };
        let o = e.outcome();
        assert_eq!(o.code(), 422);
        assert_eq!(
            o.cause_message().unwrap(),
            "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        assert_eq!(o.to_string(), e.to_string());
        assert_eq!(
            e.to_string(),
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );

        let e = ServiceAllocationError::ClusterIp {
            cluster_ips: vec!["10.96.0.10".into()],
            requested: "10.96.0.10".into(),
            source: AllocationError::IpAllocated,
        };
        assert_eq!(
            e.outcome().cause_message().unwrap(),
            "Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated"
        );
        assert_eq!(e.outcome().to_string(), e.to_string());

        let internal = [
            (
                ServiceAllocationError::ClusterIpDynamic(AllocationError::Full),
                "failed to allocate a serviceIP: range is full",
            ),
            (
                ServiceAllocationError::NodePortDynamic(AllocationError::Full),
                "failed to allocate a nodePort: range is full",
            ),
            (
                ServiceAllocationError::HealthCheckRequested {
                    port: 30001,
                    source: AllocationError::PortAllocated,
                },
                "failed to allocate requested HealthCheck NodePort 30001: provided port is already allocated",
            ),
            (
                ServiceAllocationError::HealthCheckDynamic(AllocationError::Full),
                "failed to allocate a HealthCheck NodePort 0: range is full",
            ),
            (
                ServiceAllocationError::UnparsableClusterIp("10.0.0.300".into()),
                "failed to parse service IP \"10.0.0.300\"",
            ),
        ];
        for (e, text) in internal {
            assert_eq!(
                e.outcome(),
                Outcome::Internal {
                    message: text.into()
                }
            );
            assert_eq!(e.outcome().code(), 500);
        }
        let dup = ServiceAllocationError::DuplicateNodePort {
            protocol: "TCP".into(),
            node_port: 30080,
        };
        assert_eq!(
            dup.outcome(),
            Outcome::Unknown {
                message: "duplicate nodePort: {TCP 30080}".into()
            }
        );
    }
}
