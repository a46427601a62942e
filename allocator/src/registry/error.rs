//! Why the registry could not allocate or start.

use std::time::Duration;

use thiserror::Error;

use crate::outcome::{Outcome, ServiceAllocationError};

/// A registry failure: an allocation refusal with upstream's rendering, or an API problem.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The allocator refused (422 or 500 as [`ServiceAllocationError::outcome`] says).
    #[error(transparent)]
    Allocation(#[from] ServiceAllocationError),
    /// The API failed while claiming; `context` is upstream's prefix for the operation
    /// (`failed to allocate a serviceIP`, `failed to allocate a nodePort`).
    #[error("{context}: {}", gocompat::api_error_text(source))]
    Api {
        /// What was being done.
        context: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The caches did not list within the configured time (upstream's `ErrNotReady`).
    #[error("allocator not ready")]
    NotReady,
    /// The NodePortAllocation CRD could not be installed or was not served in time.
    #[error("the NodePortAllocation CRD is not served after {}s: {detail}", waited.as_secs())]
    CrdNotServed {
        /// How long `start` waited.
        waited: Duration,
        /// The last error seen.
        detail: String,
    },
}

impl RegistryError {
    /// How upstream would answer: allocation refusals keep their own outcome, API problems
    /// are 500 `InternalError`s as `alloc.go` wraps them.
    pub fn outcome(&self) -> Outcome {
        match self {
            RegistryError::Allocation(e) => e.outcome(),
            other => Outcome::Internal {
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_failure_reads_as_kube_apiserver_s_500_without_rust_debug() {
        let status = kube::core::Status::failure(
            "IPAddress.networking.k8s.io \"fd00:10:96::4:f50a\" is invalid: metadata.name: Invalid value",
            "Invalid",
        );
        let error = RegistryError::Api {
            context: "failed to allocate a serviceIP",
            source: kube::Error::Api(Box::new(status)),
        };
        let Outcome::Internal { message } = error.outcome() else {
            panic!("an API failure is a 500");
        };
        assert_eq!(
            message,
            "failed to allocate a serviceIP: IPAddress.networking.k8s.io \"fd00:10:96::4:f50a\" is invalid: metadata.name: Invalid value"
        );
    }
}
