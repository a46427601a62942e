//! Kind-specific validation testenv does itself (beyond ObjectMeta), with upstream's messages.

mod events;

use serde_json::Value;

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
            Some(match old {
                None => events::validate_create(&event, strict),
                Some(old) => events::validate_update(&event, &core(old), strict),
            })
        }
        _ => None,
    }
}
