//! The envelope around every protobuf object: the `k8s\0` magic, then a `runtime.Unknown`
//! carrying the type (apiVersion, kind) and the object's own bytes.

use super::ProtobufError;
use super::wire::{FieldReader, WireValue};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// A `runtime.Unknown` as read from a body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope<'a> {
    /// `typeMeta.apiVersion`, possibly empty.
    pub api_version: String,
    /// `typeMeta.kind`, possibly empty.
    pub kind: String,
    /// The encoded object.
    pub raw: &'a [u8],
    /// `contentEncoding`; kube-apiserver ignores it for protobuf bodies, and so does testenv.
    pub content_encoding: String,
    /// `contentType`; likewise ignored.
    pub content_type: String,
}

/// Checks the magic and reads the envelope, with kube-apiserver's errors for bodies that are not
/// protobuf at all.
pub fn open(body: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    if body.is_empty() {
        return Err(ProtobufError::EmptyData);
    }
    let Some(rest) = body.strip_prefix(&MAGIC[..]) else {
        return Err(ProtobufError::MissingPrefix);
    };
    if rest.is_empty() {
        return Err(ProtobufError::EmptyBody);
    }
    let mut envelope = Envelope::default();
    let mut reader = FieldReader::new(rest, "Unknown");
    while let Some((number, value)) = reader.next_field()? {
        let bytes = match value {
            WireValue::Bytes(b) => b,
            other => {
                return Err(ProtobufError::WrongWireType {
                    field: unknown_field_name(number).into(),
                    wire_type: other.wire_type().number(),
                });
            }
        };
        match number {
            1 => read_type_meta(bytes, &mut envelope)?,
            2 => envelope.raw = bytes,
            3 => envelope.content_encoding = String::from_utf8_lossy(bytes).into(),
            4 => envelope.content_type = String::from_utf8_lossy(bytes).into(),
            _ => {}
        }
    }
    Ok(envelope)
}

fn unknown_field_name(number: u32) -> &'static str {
    match number {
        1 => "TypeMeta",
        2 => "Raw",
        3 => "ContentEncoding",
        4 => "ContentType",
        _ => "unknown",
    }
}

fn read_type_meta(data: &[u8], envelope: &mut Envelope<'_>) -> Result<(), ProtobufError> {
    let mut reader = FieldReader::new(data, "TypeMeta");
    while let Some((number, value)) = reader.next_field()? {
        let target = match number {
            1 => &mut envelope.api_version,
            2 => &mut envelope.kind,
            _ => continue,
        };
        match value {
            WireValue::Bytes(b) => *target = String::from_utf8_lossy(b).into(),
            other => {
                return Err(ProtobufError::WrongWireType {
                    field: if number == 1 { "APIVersion" } else { "Kind" }.into(),
                    wire_type: other.wire_type().number(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::test_encoder::Encoder;

    #[test]
    fn reads_the_unknown_envelope() {
        let body = Encoder::new()
            .message(1, |t| t.string(1, "apps/v1").string(2, "Deployment"))
            .bytes(2, &[0x0a, 0x00])
            .string(3, "")
            .string(4, "application/vnd.kubernetes.protobuf")
            .into_body();
        let env = open(&body).unwrap();
        assert_eq!(env.api_version, "apps/v1");
        assert_eq!(env.kind, "Deployment");
        assert_eq!(env.raw, &[0x0a, 0x00]);
        assert_eq!(env.content_type, "application/vnd.kubernetes.protobuf");
    }

    #[test]
    fn bodies_that_are_not_protobuf_are_refused() {
        assert_eq!(open(b""), Err(ProtobufError::EmptyData));
        assert_eq!(
            open(b"{\"kind\":\"Service\"}"),
            Err(ProtobufError::MissingPrefix)
        );
        assert_eq!(open(b"k8s\0"), Err(ProtobufError::EmptyBody));
        assert_eq!(open(b"k8s\0\x0a\x05ab"), Err(ProtobufError::UnexpectedEof));
        assert_eq!(
            open(b"k8s\0\x10\x01"),
            Err(ProtobufError::WrongWireType {
                field: "Raw".into(),
                wire_type: 0
            })
        );
    }

    #[test]
    fn error_texts_are_upstreams() {
        assert_eq!(
            ProtobufError::MissingPrefix.to_string(),
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        );
        assert_eq!(ProtobufError::EmptyData.to_string(), "empty data");
        assert_eq!(ProtobufError::EmptyBody.to_string(), "empty body");
    }
}
