//! Server-side apply with field managers (first cut: merge without ownership).

use serde_json::Value;

use crate::status::ApiError;

/// The result of applying a configuration.
pub struct Applied {
    /// The merged object, with managedFields updated.
    pub object: Value,
}

/// Applies `config` as `manager` to `live` (absent: create).
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    _manager: &str,
    _force: bool,
) -> Result<Applied, ApiError> {
    let base = live
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let mut object = base;
    json_patch::merge(&mut object, config);
    Ok(Applied { object })
}

/// Records that `manager` changed `old` into `new` with a non-apply operation.
pub fn track_update(_old: Option<&Value>, _new: &mut Value, _manager: &str, _operation: &str) {}
