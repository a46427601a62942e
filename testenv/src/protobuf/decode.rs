//! Decodes a message's bytes by its schema into the JSON Go's `encoding/json` writes for the same
//! struct: protobuf merge rules on the way in (last scalar wins, repeated embedded messages merge,
//! unknown field numbers are skipped) and Go's `omitempty`/pointer rules on the way out.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::ProtobufError;
use super::schema::{Field, Message, Rule, Type};
use super::wire::{FieldReader, WireType, WireValue};

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z) since the Unix epoch: JSON null.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Decodes one message into a JSON object.
pub fn decode_message(
    message: &'static Message,
    data: &[u8],
) -> Result<Map<String, Value>, ProtobufError> {
    let mut slots: Vec<Vec<WireValue<'_>>> = vec![Vec::new(); message.fields.len()];
    let mut reader = FieldReader::new(data, message.name);
    while let Some((number, value)) = reader.next_field()? {
        if let Some(i) = message.fields.iter().position(|f| f.number == number)
            && let Some(slot) = slots.get_mut(i)
        {
            slot.push(value);
        }
    }
    let mut out = Map::new();
    for (field, values) in message.fields.iter().zip(&slots) {
        render_field(message, field, values, &mut out)?;
    }
    Ok(out)
}

fn render_field(
    message: &'static Message,
    field: &Field,
    values: &[WireValue<'_>],
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if let Type::Unsupported = field.ty {
        return match values.is_empty() {
            true => Ok(()),
            false => Err(ProtobufError::UnsupportedField {
                message: message.name,
                field: field.json,
            }),
        };
    }
    if field.rule == Rule::Repeated {
        let mut items = Vec::new();
        for value in values {
            repeated_items(field, *value, &mut items)?;
        }
        if !items.is_empty() {
            out.insert(field.json.into(), Value::Array(items));
        }
        return Ok(());
    }
    let absent_pointer = values.is_empty() && field.rule == Rule::Pointer;
    let rendered = match field.ty {
        Type::Unsupported => return Ok(()),
        Type::Message(inner) => {
            if absent_pointer {
                return Ok(());
            }
            let object = decode_message(inner, &merged_bytes(field, values)?)?;
            if field.rule == Rule::Inline {
                out.extend(object);
                return Ok(());
            }
            Value::Object(object)
        }
        Type::StringMap | Type::BytesMap | Type::QuantityMap => {
            let mut map = BTreeMap::new();
            for value in values {
                let (key, item) = map_entry(field, bytes_of(field, *value)?)?;
                map.insert(key, item);
            }
            if map.is_empty() {
                return Ok(());
            }
            // Go's encoder writes map keys sorted.
            Value::Object(map.into_iter().collect())
        }
        Type::IntOrString => {
            if absent_pointer {
                return Ok(());
            }
            int_or_string(&merged_bytes(field, values)?)?
        }
        Type::Quantity => match last_bytes(field, values)? {
            None if absent_pointer => return Ok(()),
            None => json!("0"),
            Some(bytes) => quantity(bytes)?,
        },
        Type::Time => match last_bytes(field, values)? {
            None if absent_pointer => return Ok(()),
            None => Value::Null,
            Some(bytes) => time(bytes)?,
        },
        Type::FieldsV1 => match last_bytes(field, values)? {
            None => return Ok(()),
            Some(bytes) => fields_v1(bytes)?,
        },
        Type::String | Type::Bool | Type::Int32 | Type::Int64 => {
            let mut last = None;
            for value in values {
                last = Some(scalar(field, *value)?);
            }
            match (last, field.rule) {
                (Some(v), Rule::OmitEmpty) if is_zero(&v) => return Ok(()),
                (Some(v), _) => v,
                (None, Rule::Always) => zero_of(field.ty),
                (None, _) => return Ok(()),
            }
        }
    };
    out.insert(field.json.into(), rendered);
    Ok(())
}

fn repeated_items(
    field: &Field,
    value: WireValue<'_>,
    items: &mut Vec<Value>,
) -> Result<(), ProtobufError> {
    match (field.ty, value) {
        (Type::Message(inner), _) => {
            items.push(Value::Object(decode_message(
                inner,
                bytes_of(field, value)?,
            )?));
        }
        _ => items.push(scalar(field, value)?),
    }
    Ok(())
}

fn scalar(field: &Field, value: WireValue<'_>) -> Result<Value, ProtobufError> {
    let v = match (field.ty, value) {
        (Type::String, WireValue::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into()),
        (Type::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        // gogo-protobuf keeps the low 32 bits of an int32 varint.
        (Type::Int32, WireValue::Varint(v)) => json!(v as i32),
        (Type::Int64, WireValue::Varint(v)) => json!(v as i64),
        _ => return Err(wrong_wire_type(field, value.wire_type())),
    };
    Ok(v)
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn zero_of(ty: Type) -> Value {
    match ty {
        Type::Bool => json!(false),
        Type::Int32 | Type::Int64 => json!(0),
        _ => json!(""),
    }
}

fn bytes_of<'a>(field: &Field, value: WireValue<'a>) -> Result<&'a [u8], ProtobufError> {
    match value {
        WireValue::Bytes(b) => Ok(b),
        other => Err(wrong_wire_type(field, other.wire_type())),
    }
}

/// Repeated occurrences of a singular embedded message merge, which is what parsing their
/// concatenation does.
fn merged_bytes(field: &Field, values: &[WireValue<'_>]) -> Result<Vec<u8>, ProtobufError> {
    let mut out = Vec::new();
    for value in values {
        out.extend_from_slice(bytes_of(field, *value)?);
    }
    Ok(out)
}

/// Types with their own Go unmarshaller (Time, Quantity, FieldsV1) keep the last occurrence.
fn last_bytes<'a>(
    field: &Field,
    values: &[WireValue<'a>],
) -> Result<Option<&'a [u8]>, ProtobufError> {
    let mut last = None;
    for value in values {
        last = Some(bytes_of(field, *value)?);
    }
    Ok(last)
}

fn wrong_wire_type(field: &Field, wire: WireType) -> ProtobufError {
    let mut go_name = String::with_capacity(field.json.len());
    let mut chars = field.json.chars();
    if let Some(first) = chars.next() {
        go_name.extend(first.to_uppercase());
        go_name.extend(chars);
    }
    ProtobufError::WrongWireType {
        field: go_name,
        wire_type: wire.number(),
    }
}

/// A map entry: key in field 1, value in field 2; a missing part is its zero value.
fn map_entry(field: &Field, data: &[u8]) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = None;
    let mut reader = FieldReader::new(data, "MapEntry");
    let key_field = super::schema::string(1, "key");
    while let Some((number, wire)) = reader.next_field()? {
        match number {
            1 => {
                if let Value::String(s) = scalar(&key_field, wire)? {
                    key = s;
                }
            }
            2 => value = Some(bytes_of(field, wire)?),
            _ => {}
        }
    }
    let value = match (field.ty, value) {
        (Type::StringMap, v) => Value::String(String::from_utf8_lossy(v.unwrap_or(&[])).into()),
        (Type::BytesMap, v) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(v.unwrap_or(&[])))
        }
        (_, Some(v)) => quantity(v)?,
        (_, None) => json!("0"),
    };
    Ok((key, value))
}

/// `intstr.IntOrString{type: 1, intVal: 2, strVal: 3}`.
fn int_or_string(data: &[u8]) -> Result<Value, ProtobufError> {
    let object = decode_message(&INT_OR_STRING, data)?;
    let int_type = object.get("type").and_then(Value::as_i64).unwrap_or(0);
    match int_type {
        0 => Ok(object.get("intVal").cloned().unwrap_or(json!(0))),
        1 => Ok(object.get("strVal").cloned().unwrap_or(json!(""))),
        _ => Err(ProtobufError::ImpossibleIntOrString),
    }
}

static INT_OR_STRING: Message = Message {
    name: "IntOrString",
    fields: &[
        super::schema::int64(1, "type"),
        super::schema::int32_always(2, "intVal"),
        super::schema::string_always(3, "strVal"),
    ],
};

/// `resource.Quantity{string: 1}`, checked against the pattern `ParseQuantity` enforces and kept
/// as sent (kubectl sends the canonical form).
fn quantity(data: &[u8]) -> Result<Value, ProtobufError> {
    let object = decode_message(&QUANTITY, data)?;
    let Some(text) = object.get("string").and_then(Value::as_str) else {
        return Ok(json!("0"));
    };
    if !is_quantity(text) {
        return Err(ProtobufError::InvalidQuantity);
    }
    Ok(json!(text))
}

static QUANTITY: Message = Message {
    name: "Quantity",
    fields: &[super::schema::string_ptr(1, "string")],
};

/// `^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$` plus a recognised suffix, as `ParseQuantity`.
fn is_quantity(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_len);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return false;
    }
    const SUFFIXES: &[&str] = &[
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `metav1.Time` as `Timestamp{seconds: 1, nanos: 2}`: an empty payload is the zero time (null);
/// the JSON form keeps whole seconds, in UTC.
fn time(data: &[u8]) -> Result<Value, ProtobufError> {
    if data.is_empty() {
        return Ok(Value::Null);
    }
    let object = decode_message(&TIMESTAMP, data)?;
    let seconds = object.get("seconds").and_then(Value::as_i64).unwrap_or(0);
    if seconds == GO_ZERO_TIME_SECONDS {
        return Ok(Value::Null);
    }
    let ts = jiff::Timestamp::from_second(seconds)
        .map_err(|_| ProtobufError::TimeOutOfRange { seconds })?;
    Ok(Value::String(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

static TIMESTAMP: Message = Message {
    name: "Timestamp",
    fields: &[
        super::schema::int64(1, "seconds"),
        super::schema::int32(2, "nanos"),
    ],
};

/// `metav1.FieldsV1{raw: 1}`: the raw bytes are the JSON.
fn fields_v1(data: &[u8]) -> Result<Value, ProtobufError> {
    let mut raw: &[u8] = &[];
    let mut reader = FieldReader::new(data, "FieldsV1");
    let raw_field = super::schema::string(1, "raw");
    while let Some((number, value)) = reader.next_field()? {
        if number == 1 {
            raw = bytes_of(&raw_field, value)?;
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| ProtobufError::InvalidFieldsV1(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::test_encoder::Encoder;

    #[test]
    fn quantities_follow_parse_quantity() {
        for ok in [
            "1", "100m", "1.5Gi", "-2", "+3k", "1e3", "1E-3", "0.5", ".5", "5.",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", ".", "1.2.3", "1Q", "1e", "1ee3", "1Ki2", "--1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn times_are_rfc3339_seconds_in_utc() {
        let t = Encoder::new()
            .varint(1, 1_700_000_000)
            .varint(2, 999)
            .finish();
        assert_eq!(time(&t).unwrap(), json!("2023-11-14T22:13:20Z"));
        assert_eq!(time(&[]).unwrap(), Value::Null);
        let epoch = Encoder::new().varint(2, 5).finish();
        assert_eq!(time(&epoch).unwrap(), json!("1970-01-01T00:00:00Z"));
        let go_zero = Encoder::new()
            .varint(1, GO_ZERO_TIME_SECONDS as u64)
            .finish();
        assert_eq!(time(&go_zero).unwrap(), Value::Null);
        let far = Encoder::new().varint(1, i64::MAX as u64).finish();
        assert_eq!(
            time(&far),
            Err(ProtobufError::TimeOutOfRange { seconds: i64::MAX })
        );
    }

    #[test]
    fn int_or_string_is_a_number_or_a_string() {
        let int = Encoder::new().varint(1, 0).varint(2, 8080).finish();
        assert_eq!(int_or_string(&int).unwrap(), json!(8080));
        let s = Encoder::new().varint(1, 1).string(3, "http").finish();
        assert_eq!(int_or_string(&s).unwrap(), json!("http"));
        assert_eq!(int_or_string(&[]).unwrap(), json!(0));
        let bad = Encoder::new().varint(1, 2).finish();
        assert_eq!(
            int_or_string(&bad),
            Err(ProtobufError::ImpossibleIntOrString)
        );
    }

    #[test]
    fn fields_v1_is_raw_json() {
        let f = Encoder::new().bytes(1, br#"{"f:data":{}}"#).finish();
        assert_eq!(fields_v1(&f).unwrap(), json!({"f:data": {}}));
        let bad = Encoder::new().bytes(1, b"{").finish();
        assert!(matches!(
            fields_v1(&bad),
            Err(ProtobufError::InvalidFieldsV1(_))
        ));
    }
}
