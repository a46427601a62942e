//! AdmissionReview v1 (`admission.k8s.io/v1`) as typed data: decoding what the apiserver sends,
//! with a clear error for anything malformed, and encoding the answer.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::status::Status;

/// The only API version of AdmissionReview this server speaks.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// The kind of the review object.
pub const ADMISSION_KIND: &str = "AdmissionReview";

/// Why a request body is not a usable AdmissionReview.
#[derive(Debug, Error)]
pub enum ReviewDecodeError {
    /// The body is not JSON of the AdmissionReview shape.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The body is some other object.
    #[error(
        "expected apiVersion \"admission.k8s.io/v1\" and kind \"AdmissionReview\", got apiVersion {} and kind {}",
        gocompat::quote::go_quote(api_version),
        gocompat::quote::go_quote(kind)
    )]
    WrongType {
        /// The `apiVersion` sent.
        api_version: String,
        /// The `kind` sent.
        kind: String,
    },
    /// The review carries no `request`.
    #[error("malformed AdmissionReview: request is missing")]
    MissingRequest,
    /// `request.uid` is empty, so no answer could be matched to it.
    #[error("malformed AdmissionReview: request.uid is empty")]
    MissingUid,
}

/// `metav1.GroupVersionKind`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// API group; empty for core.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// `metav1.GroupVersionResource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// API group; empty for core.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Plural resource name.
    #[serde(default)]
    pub resource: String,
}

/// The operation being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// `CREATE`
    Create,
    /// `UPDATE`
    Update,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
}

impl Operation {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// `admission.k8s.io/v1` `AdmissionRequest`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// The kind of `object`, as converted for this webhook.
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// The resource being written.
    #[serde(default)]
    pub resource: GroupVersionResource,
    /// The subresource, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// The kind the client originally asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// The resource the client originally asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// The object name; empty on create with `generateName`.
    #[serde(default)]
    pub name: String,
    /// The namespace; empty for cluster-scoped objects.
    #[serde(default)]
    pub namespace: String,
    /// What is being done.
    pub operation: Operation,
    /// Who asks (kept opaque).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub user_info: Value,
    /// The new object; absent for DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
    /// The stored object on UPDATE and DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<Value>,
    /// Whether nothing may be persisted (no side effects allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The operation's options object (kept opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

impl AdmissionRequest {
    /// Whether this is a dry run.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run == Some(true)
    }

    /// The object's name: `request.name`, or `metadata.name` of the object when the request
    /// carries none.
    pub fn object_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        self.object
            .as_ref()
            .or(self.old_object.as_ref())
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// `admission.k8s.io/v1` `AdmissionResponse`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why not (a `metav1.Status`), when denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of a JSON Patch (RFC 6902), mutating webhooks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` whenever `patch` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Shown by kubectl as `Warning: ...`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// Admits the request.
    pub fn allow(uid: &str) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
        }
    }

    /// Refuses the request with `status` (the apiserver keeps its code, reason and details).
    pub fn deny(uid: &str, status: Status) -> Self {
        AdmissionResponse {
            allowed: false,
            status: Some(status),
            ..AdmissionResponse::allow(uid)
        }
    }

    /// Attaches a JSON Patch; an empty patch is not sent at all.
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> Self {
        if patch.0.is_empty() {
            return self;
        }
        let bytes = serde_json::to_vec(patch).unwrap_or_default();
        self.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        self.patch_type = Some("JSONPatch".to_owned());
        self
    }

    /// Adds warnings.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    /// The decoded JSON Patch, if any (for tests and tools).
    pub fn decoded_patch(&self) -> Option<Value> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.patch.as_deref()?)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// `admission.k8s.io/v1` `AdmissionReview`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// `admission.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `AdmissionReview`.
    #[serde(default)]
    pub kind: String,
    /// Set by the apiserver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    /// Set by the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

impl AdmissionReview {
    /// The answer envelope for `response`.
    pub fn answer(response: AdmissionResponse) -> Self {
        AdmissionReview {
            api_version: ADMISSION_API_VERSION.to_owned(),
            kind: ADMISSION_KIND.to_owned(),
            request: None,
            response: Some(response),
        }
    }

    /// Serialises the review (infallible for these types; an empty body would be a bug).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Decodes a request body into its `AdmissionRequest`, checking the envelope.
pub fn decode_request(body: &[u8]) -> Result<AdmissionRequest, ReviewDecodeError> {
    let review: AdmissionReview = serde_json::from_slice(body)?;
    if review.api_version != ADMISSION_API_VERSION || review.kind != ADMISSION_KIND {
        return Err(ReviewDecodeError::WrongType {
            api_version: review.api_version,
            kind: review.kind,
        });
    }
    let request = review.request.ok_or(ReviewDecodeError::MissingRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewDecodeError::MissingUid);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_spec_request_and_answers_with_its_uid() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind":{"group":"","version":"v1","kind":"Service"},
            "resource":{"group":"","version":"v1","resource":"services"},
            "name":"web","namespace":"default","operation":"CREATE",
            "userInfo":{"username":"admin"},
            "object":{"metadata":{"name":"web"}},"oldObject":null,"dryRun":false}}"#;
        let req = decode_request(body).unwrap();
        assert_eq!(req.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(req.operation, Operation::Create);
        assert_eq!(req.kind.kind, "Service");
        assert!(req.old_object.is_none());
        assert!(!req.is_dry_run());
        let out = AdmissionReview::answer(AdmissionResponse::allow(&req.uid)).to_json();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","allowed":true}}"#
        );
    }

    #[test]
    fn malformed_bodies_get_clear_errors() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "malformed AdmissionReview: EOF while parsing a value at line 1 column 0"),
            (
                br#"{"apiVersion":"v1","kind":"Status"}"#,
                r#"expected apiVersion "admission.k8s.io/v1" and kind "AdmissionReview", got apiVersion "v1" and kind "Status""#,
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "malformed AdmissionReview: request is missing",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"","operation":"CREATE"}}"#,
                "malformed AdmissionReview: request.uid is empty",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"PATCH"}}"#,
                "malformed AdmissionReview: unknown variant `PATCH`, expected one of `CREATE`, `UPDATE`, `DELETE`, `CONNECT` at line 1 column 101",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(decode_request(body).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn patch_is_base64_json_patch() {
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!(
            [{"op":"add","path":"/spec/ipFamilyPolicy","value":"SingleStack"}]
        ))
        .unwrap();
        let resp = AdmissionResponse::allow("u").with_patch(&patch);
        assert_eq!(
            resp.patch.as_deref(),
            Some(
                "W3sib3AiOiJhZGQiLCJwYXRoIjoiL3NwZWMvaXBGYW1pbHlQb2xpY3kiLCJ2YWx1ZSI6IlNpbmdsZVN0YWNrIn1d"
            )
        );
        assert_eq!(resp.patch_type.as_deref(), Some("JSONPatch"));
        let empty = AdmissionResponse::allow("u").with_patch(&json_patch::Patch(Vec::new()));
        assert!(empty.patch.is_none() && empty.patch_type.is_none());
    }
}
