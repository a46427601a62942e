//! How a generated Kubernetes message maps to JSON: each field's number (from upstream's
//! `generated.proto`), JSON name, type, and how Go's `encoding/json` renders the Go field
//! (`omitempty` or not, pointer or value, inlined), so a decoded body reads exactly as the JSON
//! kubectl would have sent for the same object.

/// One message type of `generated.proto`.
#[derive(Debug)]
pub struct Message {
    /// The Go type name, for errors.
    pub name: &'static str,
    /// Fields in Go struct order, which is the order of the JSON keys.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    /// The protobuf field number.
    pub number: u32,
    /// The JSON key.
    pub json: &'static str,
    /// What the bytes hold.
    pub ty: Type,
    /// How Go renders the field to JSON.
    pub rule: Rule,
}

/// What a field's bytes hold.
#[derive(Debug, Clone, Copy)]
pub enum Type {
    /// A UTF-8 string (invalid bytes become U+FFFD, as Go's JSON encoder writes them).
    String,
    /// A boolean varint.
    Bool,
    /// A 32-bit varint.
    Int32,
    /// A 64-bit varint.
    Int64,
    /// An embedded message.
    Message(&'static Message),
    /// `intstr.IntOrString`: a JSON number or string.
    IntOrString,
    /// `resource.Quantity`: its string form.
    Quantity,
    /// `metav1.Time`: RFC 3339 seconds, null when zero.
    Time,
    /// `metav1.FieldsV1`: raw JSON.
    FieldsV1,
    /// `map<string, string>`.
    StringMap,
    /// `map<string, bytes>`, values base64 in JSON.
    BytesMap,
    /// `map<string, Quantity>`.
    QuantityMap,
    /// A field testenv does not decode: its presence is refused rather than silently dropped.
    Unsupported,
}

/// How Go's JSON encoder renders the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A value field tagged `omitempty`: a zero scalar, empty map or empty list is left out.
    /// Structs are never empty to Go, so an embedded message is always written.
    OmitEmpty,
    /// A value field without `omitempty`: always written, zero when absent.
    Always,
    /// A pointer field: written exactly when it was sent.
    Pointer,
    /// A list: written when not empty.
    Repeated,
    /// An embedded struct whose fields Go writes into the parent object.
    Inline,
}

const fn field(number: u32, json: &'static str, ty: Type, rule: Rule) -> Field {
    Field {
        number,
        json,
        ty,
        rule,
    }
}

/// `string` with `omitempty`.
pub const fn string(n: u32, json: &'static str) -> Field {
    field(n, json, Type::String, Rule::OmitEmpty)
}
/// `string` without `omitempty`.
pub const fn string_always(n: u32, json: &'static str) -> Field {
    field(n, json, Type::String, Rule::Always)
}
/// `*string`.
pub const fn string_ptr(n: u32, json: &'static str) -> Field {
    field(n, json, Type::String, Rule::Pointer)
}
/// `[]string`.
pub const fn strings(n: u32, json: &'static str) -> Field {
    field(n, json, Type::String, Rule::Repeated)
}
/// `bool` with `omitempty`.
pub const fn boolean(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Bool, Rule::OmitEmpty)
}
/// `bool` without `omitempty`.
pub const fn boolean_always(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Bool, Rule::Always)
}
/// `*bool`.
pub const fn boolean_ptr(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Bool, Rule::Pointer)
}
/// `int32` with `omitempty`.
pub const fn int32(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Int32, Rule::OmitEmpty)
}
/// `int32` without `omitempty`.
pub const fn int32_always(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Int32, Rule::Always)
}
/// `*int32`.
pub const fn int32_ptr(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Int32, Rule::Pointer)
}
/// `int64` with `omitempty`.
pub const fn int64(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Int64, Rule::OmitEmpty)
}
/// `*int64`.
pub const fn int64_ptr(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Int64, Rule::Pointer)
}
/// An embedded struct (always written).
pub const fn message(n: u32, json: &'static str, m: &'static Message) -> Field {
    field(n, json, Type::Message(m), Rule::OmitEmpty)
}
/// A pointer to a struct.
pub const fn message_ptr(n: u32, json: &'static str, m: &'static Message) -> Field {
    field(n, json, Type::Message(m), Rule::Pointer)
}
/// A list of structs.
pub const fn messages(n: u32, json: &'static str, m: &'static Message) -> Field {
    field(n, json, Type::Message(m), Rule::Repeated)
}
/// An anonymous struct whose fields are written into the parent.
pub const fn inline(n: u32, m: &'static Message) -> Field {
    field(n, "", Type::Message(m), Rule::Inline)
}
/// `map[string]string`.
pub const fn string_map(n: u32, json: &'static str) -> Field {
    field(n, json, Type::StringMap, Rule::OmitEmpty)
}
/// `map[string][]byte`.
pub const fn bytes_map(n: u32, json: &'static str) -> Field {
    field(n, json, Type::BytesMap, Rule::OmitEmpty)
}
/// `map[string]resource.Quantity` (`ResourceList`).
pub const fn quantity_map(n: u32, json: &'static str) -> Field {
    field(n, json, Type::QuantityMap, Rule::OmitEmpty)
}
/// `intstr.IntOrString` value (always written; 0 when absent).
pub const fn int_or_string(n: u32, json: &'static str) -> Field {
    field(n, json, Type::IntOrString, Rule::OmitEmpty)
}
/// `*intstr.IntOrString`.
pub const fn int_or_string_ptr(n: u32, json: &'static str) -> Field {
    field(n, json, Type::IntOrString, Rule::Pointer)
}
/// `resource.Quantity` value (always written; "0" when absent).
pub const fn quantity(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Quantity, Rule::OmitEmpty)
}
/// `metav1.Time` value (always written; null when zero).
pub const fn time(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Time, Rule::OmitEmpty)
}
/// `*metav1.Time`.
pub const fn time_ptr(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Time, Rule::Pointer)
}
/// `*metav1.FieldsV1`.
pub const fn fields_v1_ptr(n: u32, json: &'static str) -> Field {
    field(n, json, Type::FieldsV1, Rule::Pointer)
}
/// A field testenv refuses to decode.
pub const fn unsupported(n: u32, json: &'static str) -> Field {
    field(n, json, Type::Unsupported, Rule::Pointer)
}
