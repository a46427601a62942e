//! What the Deployment and ReplicaSet planners share: controller references, pod activity and
//! readiness (`k/k pkg/api/v1/pod`), label selectors, and `intstr`'s percentage scaling.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label that ties a ReplicaSet and its pods to one template of a Deployment.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A controller reference to an owner (`metav1.NewControllerRef`): controller and
/// blockOwnerDeletion set.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner reference with `controller: true`, if any (`metav1.GetControllerOf`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta`'s controller is the object with `owner_uid`.
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == owner_uid)
}

/// `IsPodActive`: not Succeeded, not Failed, not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition last became True; `None` when the pod is not ready.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (ready.status == "True").then(|| ready.last_transition_time.as_ref().map(|t| t.0))
}

/// `IsPodReady`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// `IsPodAvailable`: ready, and for at least `min_ready_seconds` by `now`.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since + SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now,
    }
}

/// Whether `labels` satisfy `selector` (`metav1.LabelSelectorAsSelector`); an empty selector
/// matches everything, a missing one nothing.
pub fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// Whether a selector selects everything (`selector.Empty()`): no labels, no expressions.
pub fn selector_is_empty(selector: Option<&LabelSelector>) -> bool {
    selector.is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    })
}

/// `intstr.GetScaledValueFromIntOrPercent`: an int as is, `"N%"` of `total` rounded up or
/// down; `None` for a malformed value.
pub fn scaled_value(value: Option<&IntOrString>, total: i32, round_up: bool) -> Option<i32> {
    match value {
        None => Some(0),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(s)) => {
            let percent: i64 = s.strip_suffix('%')?.parse().ok()?;
            let scaled = percent * i64::from(total);
            let value = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(value).ok()
        }
    }
}

/// What a controller's claim on the objects of its namespace changes (`ClaimObject` of
/// `k/k pkg/controller/controller_ref_manager.go`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// Names of orphans that match the selector: the owner becomes their controller.
    pub adopt: Vec<String>,
    /// Names of objects the owner controls that no longer match: their controllerRef goes.
    pub release: Vec<String>,
}

/// The adoptions and releases of `owner` over `candidates` (objects of its namespace): an
/// object it controls is released when the selector stops matching; an orphan that matches is
/// adopted; objects of other controllers are left alone. An owner being deleted adopts and
/// releases nothing, and an object being deleted is not adopted.
pub fn claim<'a>(
    owner: &ObjectMeta,
    selector: Option<&LabelSelector>,
    candidates: impl IntoIterator<Item = &'a ObjectMeta>,
) -> Claims {
    let mut claims = Claims::default();
    if owner.deletion_timestamp.is_some() {
        return claims;
    }
    let uid = owner.uid.as_deref().unwrap_or("");
    for meta in candidates {
        let matches = selector_matches(selector, meta.labels.as_ref());
        let name = meta.name.clone().unwrap_or_default();
        match controller_of(meta) {
            Some(r) if r.uid == uid => {
                if !matches {
                    claims.release.push(name);
                }
            }
            Some(_) => {}
            None => {
                if matches && meta.deletion_timestamp.is_none() {
                    claims.adopt.push(name);
                }
            }
        }
    }
    claims.adopt.sort();
    claims.release.sort();
    claims
}

/// `ownerReferences` with `controller` added (adoption) or every reference to `owner_uid`
/// removed (release): the list a merge patch writes back.
pub fn owner_references_after(
    meta: &ObjectMeta,
    adopt: Option<&OwnerReference>,
    release_uid: Option<&str>,
) -> Vec<OwnerReference> {
    let mut refs: Vec<OwnerReference> = meta
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| release_uid.is_none_or(|uid| r.uid != uid))
        .collect();
    if let Some(controller) = adopt {
        refs.retain(|r| r.uid != controller.uid);
        refs.push(controller.clone());
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};

    fn ready_pod(since: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(Timestamp::from_second(since).unwrap())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn meta(name: &str, labels: &[(&str, &str)], controller: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            owner_references: controller.map(|uid| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: format!("rs-{uid}"),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn claims_adopt_matching_orphans_and_release_what_stopped_matching() {
        let owner = ObjectMeta {
            uid: Some("me".into()),
            ..Default::default()
        };
        let selector = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        };
        let mut dying = meta("dying-orphan", &[("app", "web")], None);
        dying.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::UNIX_EPOCH,
        ));
        let candidates = [
            meta("mine", &[("app", "web")], Some("me")),
            meta("relabeled", &[("app", "debug")], Some("me")),
            meta("orphan", &[("app", "web")], None),
            meta("other-app", &[("app", "db")], None),
            meta("someone-elses", &[("app", "web")], Some("other")),
            dying,
        ];
        let claims = claim(&owner, Some(&selector), candidates.iter());
        assert_eq!(claims.adopt, vec!["orphan"]);
        assert_eq!(claims.release, vec!["relabeled"]);
        let deleting = ObjectMeta {
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            )),
            ..owner.clone()
        };
        assert_eq!(
            claim(&deleting, Some(&selector), candidates.iter()),
            Claims::default()
        );

        let me = controller_ref(
            "apps/v1",
            "ReplicaSet",
            &ObjectMeta {
                name: Some("rs-me".into()),
                uid: Some("me".into()),
                ..Default::default()
            },
        );
        let adopted = owner_references_after(&candidates[2], Some(&me), None);
        assert_eq!(adopted, vec![me.clone()]);
        assert!(owner_references_after(&candidates[1], None, Some("me")).is_empty());
    }

    #[test]
    fn percentages_scale_with_the_rounding_asked_for() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(Some(&pct("25%")), 3, true), Some(1));
        assert_eq!(scaled_value(Some(&pct("25%")), 3, false), Some(0));
        assert_eq!(scaled_value(Some(&pct("25%")), 10, true), Some(3));
        assert_eq!(scaled_value(Some(&pct("25%")), 10, false), Some(2));
        assert_eq!(scaled_value(Some(&IntOrString::Int(2)), 10, false), Some(2));
        assert_eq!(scaled_value(Some(&pct("x%")), 10, false), None);
        assert_eq!(scaled_value(None, 10, false), Some(0));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let pod = ready_pod(100);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(is_pod_available(&pod, 0, at(100)));
        assert!(!is_pod_available(&pod, 10, at(109)));
        assert!(is_pod_available(&pod, 10, at(110)));
        assert!(!is_pod_available(&Pod::default(), 0, at(110)));
        let mut done = ready_pod(1);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!is_pod_active(&done) && is_pod_active(&pod));
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let by_label = LabelSelector {
            match_labels: Some(labels.clone()),
            ..Default::default()
        };
        assert!(selector_matches(Some(&by_label), Some(&labels)));
        assert!(!selector_matches(Some(&by_label), None));
        assert!(!selector_matches(None, Some(&labels)));
        let not_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "NotIn".into(),
                values: Some(vec!["web".into()]),
            }]),
            ..Default::default()
        };
        assert!(!selector_matches(Some(&not_in), Some(&labels)));
        assert!(selector_matches(Some(&not_in), None));
        assert!(selector_is_empty(Some(&LabelSelector::default())));
        assert!(!selector_is_empty(Some(&by_label)));
    }
}
