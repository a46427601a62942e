//! Kind-specific validation testenv does itself (beyond ObjectMeta), with upstream's messages.

mod events;

use serde_json::Value;

use crate::meta::{MetaWrite, NameRule, validate_kube_finalizer_names, validate_object_meta};
use crate::resources::ResourceType;
use crate::status::StatusCause;

/// Validation for kinds testenv checks; `None` when it has no rules for the kind. `obj` and
/// `old` are in `rt`'s version.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Option<Vec<StatusCause>> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("" | "events.k8s.io", "Event") => {
            // Upstream judges the internal Event: the core form, with the request's version
            // deciding how strictly.
            let strict = !rt.group.is_empty();
            let core = |v: &Value| crate::conversion::to_storage(rt, v.clone());
            let event = core(obj);
            // The strict rules include ObjectMeta's, names as DNS subdomains.
            let write = if old.is_some() {
                MetaWrite::Update
            } else {
                MetaWrite::Create
            };
            let metadata = obj.get("metadata").unwrap_or(&Value::Null);
            let meta = strict.then(|| {
                let mut causes = validate_object_meta(&NameRule::Subdomain, true, metadata, write);
                causes.extend(validate_kube_finalizer_names(metadata));
                causes
            });
            Some(match old {
                None => events::validate_create(&event, meta),
                Some(old) => events::validate_update(&event, &core(old), meta),
            })
        }
        _ => None,
    }
}

/// Whether the kind's own validation runs before the generic ObjectMeta checks, so that its
/// causes come first (or alone). kube-apiserver runs the strategy's `Validate` first and the
/// generic checks only when it passes; for Events that order shows (a core Event's strategy
/// checks no name at all).
pub fn judges_kind_first(rt: &ResourceType) -> bool {
    rt.kind == "Event" && matches!(rt.group.as_str(), "" | "events.k8s.io")
}
