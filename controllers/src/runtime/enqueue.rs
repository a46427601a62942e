//! Upstream's rules for which pod updates concern the EndpointSlice controller (spec §1.2).

use std::collections::BTreeSet;

use crate::endpointslice::PodInfo;
use crate::runtime::ObjectKey;

/// What changed between two versions of a pod, as far as endpoints are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodChange {
    /// Deletion started, Ready flipped, or the pod IPs changed (svcplane also counts the
    /// pod turning terminal, which upstream catches only through Ready).
    pub endpoint_changed: bool,
    /// Labels, hostname or subdomain changed.
    pub labels_changed: bool,
}

/// Compares two versions of a pod.
pub fn pod_change(old: &PodInfo, new: &PodInfo) -> PodChange {
    PodChange {
        endpoint_changed: old.terminating != new.terminating
            || old.ready != new.ready
            || old.ips != new.ips
            || old.has_ip != new.has_ip
            || old.terminal != new.terminal,
        labels_changed: old.labels != new.labels
            || old.hostname != new.hostname
            || old.subdomain != new.subdomain,
    }
}

/// The Services to sync after a pod update, given the Services selecting its old and new
/// labels: those of the new labels if only the endpoint changed; the union if both changed;
/// only the symmetric difference if only labels changed.
pub fn services_for_pod_update(
    change: PodChange,
    selecting_old: &BTreeSet<ObjectKey>,
    selecting_new: &BTreeSet<ObjectKey>,
) -> BTreeSet<ObjectKey> {
    match (change.endpoint_changed, change.labels_changed) {
        (false, false) => BTreeSet::new(),
        (true, false) => selecting_new.clone(),
        (true, true) => selecting_old.union(selecting_new).cloned().collect(),
        (false, true) => selecting_old
            .symmetric_difference(selecting_new)
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> BTreeSet<ObjectKey> {
        names.iter().map(|n| ObjectKey::new("ns", *n)).collect()
    }

    #[test]
    fn unchanged_pod_syncs_nothing() {
        let pod = PodInfo::default();
        let change = pod_change(&pod, &pod);
        assert_eq!(
            services_for_pod_update(change, &keys(&["a"]), &keys(&["a"])),
            keys(&[])
        );
    }

    #[test]
    fn ready_flip_syncs_services_of_new_labels() {
        let old = PodInfo::default();
        let new = PodInfo {
            ready: true,
            ..PodInfo::default()
        };
        let change = pod_change(&old, &new);
        assert!(change.endpoint_changed && !change.labels_changed);
        assert_eq!(
            services_for_pod_update(change, &keys(&["a", "b"]), &keys(&["b"])),
            keys(&["b"])
        );
    }

    #[test]
    fn label_change_alone_syncs_symmetric_difference() {
        let old = PodInfo::default();
        let mut new = PodInfo::default();
        std::sync::Arc::make_mut(&mut new.labels).insert("app".into(), "web".into());
        let change = pod_change(&old, &new);
        assert!(!change.endpoint_changed && change.labels_changed);
        assert_eq!(
            services_for_pod_update(change, &keys(&["a", "b"]), &keys(&["b", "c"])),
            keys(&["a", "c"])
        );
    }

    #[test]
    fn label_and_ip_change_syncs_union() {
        let old = PodInfo::default();
        let new = PodInfo {
            hostname: "h".into(),
            ips: vec!["10.0.0.1".into()],
            has_ip: true,
            ..PodInfo::default()
        };
        let change = pod_change(&old, &new);
        assert_eq!(
            services_for_pod_update(change, &keys(&["a", "b"]), &keys(&["b", "c"])),
            keys(&["a", "b", "c"])
        );
    }
}
