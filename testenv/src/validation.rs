//! Kind-specific validation testenv does itself (beyond ObjectMeta), with upstream's messages.

use serde_json::Value;

use crate::resources::ResourceType;
use crate::status::StatusCause;

/// Validation for kinds testenv checks; `None` when it has no rules for the kind.
pub fn validate(
    _rt: &ResourceType,
    _obj: &Value,
    _old: Option<&Value>,
) -> Option<Vec<StatusCause>> {
    None
}
