//! Strategic merge patch: merge patch with list merge keys (first cut: plain merge semantics).

use serde_json::Value;

use crate::status::ApiError;

/// Applies a strategic merge patch for an object of `kind`.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    _group: &str,
    _kind: &str,
) -> Result<Value, ApiError> {
    super::merge_patch(original, patch)
}
