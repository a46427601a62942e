//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`), which
//! kubectl 1.32+ sends for its generator commands (`create service`, `create deployment`, ...):
//! the `k8s\0` envelope is unwrapped and the object decoded into the JSON that Go's encoder writes
//! for the same struct, so the rest of the server sees what an older kubectl sends as JSON.
//!
//! Decoded kinds: v1 Service, ConfigMap, Secret, Namespace, ServiceAccount, Pod, apps/v1
//! Deployment, and the reviews `kubectl auth` creates. Other kinds, and the few Pod fields testenv does not model (volumes, probes,
//! affinity, ...), are refused with 415 rather than silently dropped.

mod apps;
mod core;
mod decode;
pub mod envelope;
mod meta;
mod reviews;
mod schema;
#[cfg(test)]
mod test_encoder;
pub mod wire;

use serde_json::{Map, Value};

use crate::resources::ResourceType;
use crate::status::ApiError;

/// The media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The media types testenv accepts for objects it cannot read from protobuf.
const ACCEPTED_WITHOUT_PROTOBUF: &str = "application/json, application/yaml";

/// Why a protobuf body could not be decoded. Texts follow gogo-protobuf and apimachinery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body is empty.
    #[error("empty data")]
    EmptyData,
    /// The body does not start with `k8s\0`.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    MissingPrefix,
    /// The body is the magic alone.
    #[error("empty body")]
    EmptyBody,
    /// A field or length runs past the end.
    #[error("unexpected EOF")]
    UnexpectedEof,
    /// A length does not fit a signed 64-bit integer.
    #[error("proto: negative length found during unmarshaling")]
    NegativeLength,
    /// A varint longer than ten bytes.
    #[error("proto: integer overflow")]
    IntegerOverflow,
    /// Field number 0 or an unknown wire type.
    #[error("proto: {message}: illegal tag {number} (wire type {wire_type})")]
    IllegalTag {
        /// The message being read.
        message: &'static str,
        /// The field number read.
        number: i64,
        /// The wire type read.
        wire_type: u8,
    },
    /// An end-group tag with no group open.
    #[error("proto: {message}: wiretype end group for non-group")]
    EndGroupWithoutStart {
        /// The message being read.
        message: &'static str,
    },
    /// Groups nested beyond reason.
    #[error("proto: groups nested too deeply")]
    TooDeep,
    /// A known field sent with the wrong wire type.
    #[error("proto: wrong wireType = {wire_type} for field {field}")]
    WrongWireType {
        /// The Go field name.
        field: String,
        /// The wire type read.
        wire_type: u8,
    },
    /// An `IntOrString` whose type is neither 0 (int) nor 1 (string).
    #[error("impossible IntOrString.Type")]
    ImpossibleIntOrString,
    /// A `Quantity` that `ParseQuantity` would refuse.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    InvalidQuantity,
    /// A `Time` beyond what RFC 3339 can write.
    #[error("time {seconds}s since the epoch is out of range")]
    TimeOutOfRange {
        /// The seconds sent.
        seconds: i64,
    },
    /// `FieldsV1` bytes that are not JSON.
    #[error("invalid FieldsV1: {0}")]
    InvalidFieldsV1(String),
    /// A kind testenv does not decode from protobuf.
    #[error("testenv does not decode {kind} ({api_version}) from {MEDIA_TYPE}")]
    UnsupportedKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// A field testenv does not model was sent.
    #[error("testenv does not decode {message}.{field} from {MEDIA_TYPE}")]
    UnsupportedField {
        /// The message holding the field.
        message: &'static str,
        /// Its JSON name.
        field: &'static str,
    },
}

/// The message layout for an apiVersion and kind, if testenv decodes it.
fn message_for(api_version: &str, kind: &str) -> Option<&'static schema::Message> {
    Some(match (api_version, kind) {
        ("v1", "Service") => &core::SERVICE,
        ("v1", "ConfigMap") => &core::CONFIG_MAP,
        ("v1", "Secret") => &core::SECRET,
        ("v1", "Namespace") => &core::NAMESPACE,
        ("v1", "ServiceAccount") => &core::SERVICE_ACCOUNT,
        ("v1", "Pod") => &core::POD,
        ("apps/v1", "Deployment") => &apps::DEPLOYMENT,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            &reviews::SELF_SUBJECT_ACCESS_REVIEW
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            &reviews::SELF_SUBJECT_RULES_REVIEW
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => &reviews::SELF_SUBJECT_REVIEW,
        _ => return None,
    })
}

/// `obj` with its keys in the order Go's `encoding/json` writes the kind's structs (maps
/// sorted), where testenv knows the kind's layout; keys the layout does not name follow in the
/// order they are held.
pub fn go_struct_order(api_version: &str, kind: &str, obj: &Value) -> Value {
    match message_for(api_version, kind) {
        Some(m) => order_message(m, obj),
        None => obj.clone(),
    }
}

fn order_message(m: &schema::Message, v: &Value) -> Value {
    fn walk(m: &schema::Message, map: &Map<String, Value>, out: &mut Map<String, Value>) {
        for f in m.fields {
            match (f.rule, f.ty) {
                (schema::Rule::Inline, schema::Type::Message(sub)) => walk(sub, map, out),
                _ => {
                    if let Some(x) = map.get(f.json) {
                        out.insert(f.json.to_string(), order_field(f.ty, x));
                    }
                }
            }
        }
    }
    let Some(map) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    walk(m, map, &mut out);
    for (k, x) in map {
        if !out.contains_key(k) {
            out.insert(k.clone(), x.clone());
        }
    }
    Value::Object(out)
}

fn order_field(ty: schema::Type, v: &Value) -> Value {
    match (ty, v) {
        (schema::Type::Message(m), Value::Array(items)) => {
            Value::Array(items.iter().map(|i| order_message(m, i)).collect())
        }
        (schema::Type::Message(m), _) => order_message(m, v),
        (
            schema::Type::StringMap | schema::Type::BytesMap | schema::Type::QuantityMap,
            Value::Object(map),
        ) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), map[k].clone()))
                    .collect(),
            )
        }
        _ => v.clone(),
    }
}

/// Whether a Content-Type header names the protobuf encoding (parameters ignored).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// An object decoded from a protobuf body.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedObject {
    /// The apiVersion the object was decoded as (the envelope's, else the default's).
    pub api_version: String,
    /// The kind it was decoded as.
    pub kind: String,
    /// The object as JSON, `kind` and `apiVersion` first.
    pub object: Value,
}

/// Where an envelope's type comes from when it leaves parts out: kube-apiserver fills them from
/// the resource the URL names.
#[derive(Debug, Clone, Copy)]
pub struct TypeDefaults<'a> {
    /// API group, empty for the core group.
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Kind.
    pub kind: &'a str,
}

/// Decodes a whole protobuf body (magic, envelope, object) into the object's JSON.
pub fn decode_object(
    body: &[u8],
    defaults: TypeDefaults<'_>,
) -> Result<DecodedObject, ProtobufError> {
    let envelope = envelope::open(body)?;
    let (api_version, kind) = resolve_type(&envelope.api_version, &envelope.kind, defaults);
    let Some(message) = message_for(&api_version, &kind) else {
        return Err(ProtobufError::UnsupportedKind { api_version, kind });
    };
    let fields = decode::decode_message(message, envelope.raw)?;
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(kind.clone()));
    object.insert("apiVersion".into(), Value::String(api_version.clone()));
    object.extend(fields);
    Ok(DecodedObject {
        api_version,
        kind,
        object: Value::Object(object),
    })
}

/// apimachinery's `copyKindDefaults`: a missing kind, or a missing version (with its group), comes
/// from the defaults.
fn resolve_type(api_version: &str, kind: &str, defaults: TypeDefaults<'_>) -> (String, String) {
    let kind = if kind.is_empty() { defaults.kind } else { kind };
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let (group, version) = if version.is_empty() {
        (defaults.group, defaults.version)
    } else {
        (group, version)
    };
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    (api_version, kind.to_string())
}

/// Decodes a protobuf request body for `resource` into the object's JSON, or answers as
/// kube-apiserver does: 400 for malformed bytes, 415 for what testenv does not read from protobuf.
pub fn decode_body(body: &[u8], resource: &ResourceType) -> Result<Value, ApiError> {
    let defaults = TypeDefaults {
        group: &resource.group,
        version: &resource.version,
        kind: &resource.kind,
    };
    decode_object(body, defaults)
        .map(|d| d.object)
        .map_err(|e| to_api_error(&e, body, resource))
}

/// The Status kube-apiserver answers for a decoding error (`transformDecodeError`).
fn to_api_error(error: &ProtobufError, body: &[u8], resource: &ResourceType) -> ApiError {
    let unknown_format =
        "the body of the request was in an unknown format - accepted media types include";
    match error {
        ProtobufError::UnsupportedKind { .. } => ApiError::custom(
            415,
            "UnsupportedMediaType",
            format!("{unknown_format}: {ACCEPTED_WITHOUT_PROTOBUF}"),
        ),
        ProtobufError::UnsupportedField { .. } => ApiError::custom(
            415,
            "UnsupportedMediaType",
            format!("{unknown_format}: {ACCEPTED_WITHOUT_PROTOBUF} ({error})"),
        ),
        // Before the envelope is read there is no type to name.
        ProtobufError::EmptyData | ProtobufError::MissingPrefix | ProtobufError::EmptyBody => {
            ApiError::bad_request(format!(
                "the object provided is unrecognized ({}): {error}",
                summarize(body)
            ))
        }
        _ => {
            let (kind, version) = envelope::open(body)
                .map(|env| {
                    let defaults = TypeDefaults {
                        group: &resource.group,
                        version: &resource.version,
                        kind: &resource.kind,
                    };
                    let (api_version, kind) = resolve_type(&env.api_version, &env.kind, defaults);
                    let version = api_version
                        .rsplit_once('/')
                        .map_or(api_version.clone(), |(_, v)| v.to_string());
                    (kind, version)
                })
                .unwrap_or_else(|_| (resource.kind.clone(), resource.version.clone()));
            ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {}: {error}",
                resource.kind
            ))
        }
    }
}

/// apiserver's `summarizeData`: JSON-looking bodies as text, others as hex, cut at 30 bytes.
pub(crate) fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let cut = &body[..body.len().min(MAX)];
    let more = if body.len() > MAX { " ..." } else { "" };
    match body.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(cut)),
        Some(_) => {
            let hex: String = cut.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}

#[cfg(test)]
mod tests;
