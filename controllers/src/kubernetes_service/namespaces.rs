//! The system-namespaces controller's decision.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Namespaces kube-apiserver keeps in existence, in creation order.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["kube-system", "kube-public", "kube-node-lease", "default"];

/// Bare Namespaces to create: each system namespace missing from `existing` (names from the
/// informer cache). Existing namespaces are never updated or deleted.
pub fn missing_system_namespaces<S: AsRef<str>>(existing: &[S]) -> Vec<Namespace> {
    SYSTEM_NAMESPACES
        .iter()
        .filter(|name| !existing.iter().any(|e| e.as_ref() == **name))
        .map(|name| Namespace {
            metadata: ObjectMeta {
                name: Some((*name).to_string()),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}
