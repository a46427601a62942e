//! What a DELETE writes before (or instead of) removing an object, as kube-apiserver's
//! registries decide it:
//!
//! - graceful deletion (`rest.BeforeDelete` with the pod strategy's `CheckGracefulDelete`; pods
//!   are the only kind with a graceful strategy): the first delete of a pod sets
//!   `deletionTimestamp` and `deletionGracePeriodSeconds` and bumps `metadata.generation`, even
//!   when the period is 0 and the pod goes at once (it is then written, and removed as written);
//! - the namespace registry's own first delete, which removes nothing: it marks the namespace
//!   `Terminating` for the namespace controller, which empties it and removes the `kubernetes`
//!   finalizer of `spec.finalizers`; only then does a delete (or that update) remove it.
//!
//! Plain data in and out; the API shell stores the result.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

/// What `rest.BeforeDelete` decides for a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodDeletion {
    /// Not graceful: a pod already marked with no (or a zero) grace period goes at once.
    Now,
    /// Already being deleted with a period no longer than the one asked for: nothing changes.
    Pending,
    /// The pod was marked (its deletion fields set) with this grace period; 0 means it is then
    /// removed as marked.
    Marked(i64),
}

/// The pod strategy's grace period for a first delete: the request's, else the pod's
/// `terminationGracePeriodSeconds` (0 when unset, as the strategy reads the stored pod, which
/// defaulting gave 30); 0 for a pod no node runs or one that has finished; negative means 1.
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let mut period = requested.unwrap_or_else(|| {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    });
    let scheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Failed" | "Succeeded")
    );
    if !scheduled || finished {
        period = 0;
    }
    if period < 0 { 1 } else { period }
}

fn timestamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn metadata(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// `rest.BeforeDelete` for a pod: marks `pod` (deletion timestamp, grace period, generation) as
/// the registry writes it before deleting, given the request's `gracePeriodSeconds`.
pub(crate) fn before_pod_delete(
    pod: &mut Value,
    requested: Option<i64>,
    now: Timestamp,
) -> PodDeletion {
    // Negative values are 1 s on the delete path.
    let requested = requested.map(|g| if g < 0 { 1 } else { g });
    let m = metadata(pod);
    let marked_at = m
        .get("deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok());
    let has_mark = m.get("deletionTimestamp").is_some_and(|t| !t.is_null());
    if has_mark {
        let current = m
            .get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .map(|g| if g < 0 { 1 } else { g });
        let Some(current) = current.filter(|g| *g != 0) else {
            // Marked without a grace period (or with 0): delete at once.
            return PodDeletion::Now;
        };
        let Some(mut period) = requested.filter(|p| *p < current) else {
            // Only a shorter grace period may be asked for.
            return PodDeletion::Pending;
        };
        // Move the deadline back by the old period and forward by the new one, never into the
        // past: a graceful period that has already run out becomes 1 s.
        let mut deadline = marked_at.unwrap_or(now) - SignedDuration::from_secs(current)
            + SignedDuration::from_secs(period);
        if deadline < now {
            deadline = now;
            if period != 0 {
                period = 1;
            }
        }
        m.insert("deletionTimestamp".into(), json!(timestamp(deadline)));
        m.insert("deletionGracePeriodSeconds".into(), json!(period));
        return PodDeletion::Marked(period);
    }
    let period = pod_grace_period(pod, requested);
    let m = metadata(pod);
    m.insert(
        "deletionTimestamp".into(),
        json!(timestamp(now + SignedDuration::from_secs(period))),
    );
    m.insert("deletionGracePeriodSeconds".into(), json!(period));
    // Controllers of an object being deleted should take no new action: a new generation.
    if let Some(generation) = m
        .get("generation")
        .and_then(Value::as_i64)
        .filter(|g| *g > 0)
    {
        m.insert("generation".into(), json!(generation + 1));
    }
    PodDeletion::Marked(period)
}

/// Whether a namespace still waits for `spec.finalizers` (the namespace controller's
/// `kubernetes`) before it may be removed.
pub(crate) fn namespace_spec_finalizers_left(ns: &Value) -> bool {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// The namespace registry's first delete: `deletionTimestamp` now, `status.phase: Terminating`,
/// and the garbage collector's `orphan` / `foregroundDeletion` finalizer as the request's
/// propagation (else the namespace's own finalizers) asks. No grace period is set.
pub(crate) fn mark_namespace_terminating(
    ns: &mut Value,
    propagation: Option<&str>,
    now: Timestamp,
) {
    let m = metadata(ns);
    if m.get("deletionTimestamp").is_none_or(Value::is_null) {
        m.insert("deletionTimestamp".into(), json!(timestamp(now)));
    }
    let mut finalizers: Vec<String> = m
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let has = |f: &[String], name: &str| f.iter().any(|x| x == name);
    let (orphan, foreground) = match propagation {
        Some("Orphan") => (true, false),
        Some("Foreground") => (false, true),
        Some(_) => (false, false),
        None => (
            has(&finalizers, "orphan"),
            has(&finalizers, "foregroundDeletion"),
        ),
    };
    let changed = has(&finalizers, "orphan") != orphan
        || has(&finalizers, "foregroundDeletion") != foreground;
    if changed {
        finalizers.retain(|f| f != "orphan" && f != "foregroundDeletion");
        if orphan {
            finalizers.push("orphan".into());
        }
        if foreground {
            finalizers.push("foregroundDeletion".into());
        }
        m.insert("finalizers".into(), json!(finalizers));
    }
    if !ns.get("status").is_some_and(Value::is_object) {
        ns["status"] = json!({});
    }
    ns["status"]["phase"] = json!("Terminating");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-12-02T10:00:00Z";

    #[test]
    fn an_unscheduled_pod_is_marked_with_grace_zero_and_a_new_generation() {
        let mut pod = json!({"metadata": {"name": "p", "generation": 1},
            "spec": {"terminationGracePeriodSeconds": 30}});
        assert_eq!(
            before_pod_delete(&mut pod, None, at(NOW)),
            PodDeletion::Marked(0)
        );
        assert_eq!(pod["metadata"]["deletionTimestamp"], NOW);
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(pod["metadata"]["generation"], 2);
    }

    #[test]
    fn a_running_pod_gets_its_termination_grace_period_or_the_requested_one() {
        let running = json!({"metadata": {"generation": 3},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30},
            "status": {"phase": "Running"}});
        let mut pod = running.clone();
        assert_eq!(
            before_pod_delete(&mut pod, None, at(NOW)),
            PodDeletion::Marked(30)
        );
        assert_eq!(pod["metadata"]["deletionTimestamp"], "2026-12-02T10:00:30Z");
        assert_eq!(pod["metadata"]["generation"], 4);
        let mut pod = running.clone();
        assert_eq!(
            before_pod_delete(&mut pod, Some(5), at(NOW)),
            PodDeletion::Marked(5)
        );
        let mut pod = running.clone();
        assert_eq!(
            before_pod_delete(&mut pod, Some(-3), at(NOW)),
            PodDeletion::Marked(1)
        );
        let mut finished = running.clone();
        finished["status"]["phase"] = json!("Succeeded");
        assert_eq!(
            before_pod_delete(&mut finished, None, at(NOW)),
            PodDeletion::Marked(0)
        );
        // A pod without generation (written before 1.34) gets none.
        let mut old = json!({"metadata": {}, "spec": {"nodeName": "n1"}});
        before_pod_delete(&mut old, Some(2), at(NOW));
        assert!(old["metadata"].get("generation").is_none());
    }

    #[test]
    fn a_marked_pod_only_shortens_its_grace_period() {
        let marked = json!({"metadata": {"generation": 2,
            "deletionTimestamp": "2026-12-02T10:00:30Z", "deletionGracePeriodSeconds": 30},
            "spec": {"nodeName": "n1"}});
        let mut pod = marked.clone();
        assert_eq!(
            before_pod_delete(&mut pod, None, at(NOW)),
            PodDeletion::Pending
        );
        assert_eq!(pod, marked);
        assert_eq!(
            before_pod_delete(&mut pod, Some(30), at(NOW)),
            PodDeletion::Pending
        );
        // The kubelet's final delete: grace 0, the deadline now, no new generation.
        let mut pod = marked.clone();
        assert_eq!(
            before_pod_delete(&mut pod, Some(0), at(NOW)),
            PodDeletion::Marked(0)
        );
        assert_eq!(pod["metadata"]["deletionTimestamp"], NOW);
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(pod["metadata"]["generation"], 2);
        // Shorter but already past: 1 s from now.
        let mut pod = marked.clone();
        let later = at("2026-12-02T10:00:20Z");
        assert_eq!(
            before_pod_delete(&mut pod, Some(5), later),
            PodDeletion::Marked(1)
        );
        assert_eq!(pod["metadata"]["deletionTimestamp"], "2026-12-02T10:00:20Z");
        // Marked with grace 0 (a delete that failed half-way): at once.
        let mut zero = json!({"metadata": {"deletionTimestamp": NOW,
            "deletionGracePeriodSeconds": 0}});
        assert_eq!(
            before_pod_delete(&mut zero, Some(10), at(NOW)),
            PodDeletion::Now
        );
    }

    #[test]
    fn a_deleted_namespace_is_marked_terminating_and_keeps_its_spec_finalizers() {
        let mut ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}});
        mark_namespace_terminating(&mut ns, None, at(NOW));
        assert_eq!(
            ns,
            json!({"metadata": {"name": "a", "deletionTimestamp": NOW},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
        );
        assert!(namespace_spec_finalizers_left(&ns));
        assert!(!namespace_spec_finalizers_left(
            &json!({"spec": {"finalizers": []}})
        ));
        assert!(!namespace_spec_finalizers_left(&json!({"spec": {}})));
    }

    #[test]
    fn a_namespace_delete_sets_the_garbage_collectors_finalizer_of_its_propagation() {
        let mut ns = json!({"metadata": {"finalizers": ["example.com/x", "orphan"]}});
        mark_namespace_terminating(&mut ns, Some("Foreground"), at(NOW));
        assert_eq!(
            ns["metadata"]["finalizers"],
            json!(["example.com/x", "foregroundDeletion"])
        );
        let mut ns = json!({"metadata": {"finalizers": ["orphan"]}});
        mark_namespace_terminating(&mut ns, None, at(NOW));
        assert_eq!(ns["metadata"]["finalizers"], json!(["orphan"]));
        let mut ns = json!({"metadata": {}});
        mark_namespace_terminating(&mut ns, Some("Background"), at(NOW));
        assert!(ns["metadata"].get("finalizers").is_none());
    }
}
