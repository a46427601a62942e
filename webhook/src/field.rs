//! Field paths and field errors, rendered the way apimachinery's `field` package renders them.

use std::fmt;

use gocompat::quote::{go_json_string, go_quote};

/// A path to a field inside an object, e.g. `spec.ports[0].nodePort`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at the named top-level field (`spec`, `metadata`, ...).
    pub fn new(root: &str) -> Self {
        FieldPath(root.to_owned())
    }

    /// The path of a named child field.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            return FieldPath(name.to_owned());
        }
        FieldPath(format!("{}.{}", self.0, name))
    }

    /// The path of a list element.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{}]", self.0, i))
    }

    /// The path of a map entry.
    pub fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{}]", self.0, key))
    }

    /// The rendered path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which upstream release's style is used to print a bad value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValueRendering {
    /// Kubernetes 1.34+: slices, structs and pointers as JSON (`["10.0.0.1"]`, `null`).
    #[default]
    Json,
    /// Kubernetes ≤1.33: Go syntax (`[]string{"10.0.0.1"}`, `"null"`).
    GoSyntax,
}

/// The bad value carried by a field error, typed as upstream's Go value was so that it can be
/// printed in either release's style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    /// No value is printed (Required, Forbidden, TooLong, InternalError).
    Omitted,
    /// A Go `string`: `%q` in both styles.
    Str(String),
    /// A named Go string type (`core.Protocol`, ...), or a pointer to one: JSON from 1.34,
    /// Go-quoted before.
    Named(String),
    /// A Go integer (`int`, `int32`, `int64`, or a pointer to one).
    Int(i64),
    /// A nil pointer.
    Null,
    /// A Go slice of strings or of a named string type; `None` is a nil slice.
    List {
        /// Go type name used by the pre-1.34 rendering, e.g. `[]string`.
        go_type: &'static str,
        /// The items; `None` for a nil slice.
        items: Option<Vec<String>>,
    },
    /// A value whose renderings were computed by the caller (structs).
    Rendered {
        /// The 1.34+ rendering.
        json: String,
        /// The pre-1.34 rendering.
        go_syntax: String,
    },
}

impl FieldValue {
    /// A `[]string` value.
    pub fn strings(items: Option<&Vec<String>>) -> Self {
        FieldValue::List {
            go_type: "[]string",
            items: items.cloned(),
        }
    }

    /// A `[]core.IPFamily` value.
    pub fn ip_families(items: Option<&Vec<String>>) -> Self {
        FieldValue::List {
            go_type: "[]core.IPFamily",
            items: items.cloned(),
        }
    }

    /// A pointer to a named string type.
    pub fn named_ptr(value: Option<&String>) -> Self {
        match value {
            Some(v) => FieldValue::Named(v.clone()),
            None => FieldValue::Null,
        }
    }

    /// Renders the value in the given style.
    pub fn render(&self, style: ValueRendering) -> String {
        match (self, style) {
            (FieldValue::Omitted, _) => String::new(),
            (FieldValue::Str(s), _) => go_quote(s),
            (FieldValue::Named(s), ValueRendering::Json) => go_json_string(s),
            (FieldValue::Named(s), ValueRendering::GoSyntax) => go_quote(s),
            (FieldValue::Int(n), _) => n.to_string(),
            (FieldValue::Null, ValueRendering::Json) => "null".to_owned(),
            (FieldValue::Null, ValueRendering::GoSyntax) => "\"null\"".to_owned(),
            (FieldValue::List { items, .. }, ValueRendering::Json) => match items {
                None => "null".to_owned(),
                Some(items) => {
                    let parts: Vec<String> = items.iter().map(|s| go_json_string(s)).collect();
                    format!("[{}]", parts.join(","))
                }
            },
            (FieldValue::List { go_type, items }, ValueRendering::GoSyntax) => match items {
                None => format!("{go_type}(nil)"),
                Some(items) => {
                    let parts: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
                    format!("{go_type}{{{}}}", parts.join(", "))
                }
            },
            (FieldValue::Rendered { json, .. }, ValueRendering::Json) => json.clone(),
            (FieldValue::Rendered { go_syntax, .. }, ValueRendering::GoSyntax) => go_syntax.clone(),
        }
    }
}

/// The kind of a field error; the cause `reason` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// `FieldValueInvalid`
    Invalid,
    /// `FieldValueRequired`
    Required,
    /// `FieldValueDuplicate`
    Duplicate,
    /// `FieldValueNotSupported`
    NotSupported,
    /// `FieldValueForbidden`
    Forbidden,
    /// `FieldValueTooLong`
    TooLong,
    /// `FieldValueTooMany`
    TooMany,
    /// `FieldValueNotFound`
    NotFound,
    /// `InternalError`
    InternalError,
    /// `FieldValueTypeInvalid`
    TypeInvalid,
}

impl ErrorType {
    /// The cause `reason` string.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::InternalError => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The message prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::NotFound => "Not found",
            ErrorType::InternalError => "Internal error",
        }
    }

    fn prints_value(self) -> bool {
        !matches!(
            self,
            ErrorType::Required
                | ErrorType::Forbidden
                | ErrorType::TooLong
                | ErrorType::InternalError
        )
    }
}

/// One field-level validation error (`field.Error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The kind of error.
    pub error_type: ErrorType,
    /// The path of the offending field.
    pub field: FieldPath,
    /// The offending value.
    pub value: FieldValue,
    /// Free-text detail appended after the value.
    pub detail: String,
}

impl FieldError {
    /// `field.Invalid`
    pub fn invalid(field: FieldPath, value: FieldValue, detail: impl Into<String>) -> Self {
        Self::with(ErrorType::Invalid, field, value, detail.into())
    }

    /// `field.Required`
    pub fn required(field: FieldPath, detail: impl Into<String>) -> Self {
        Self::with(
            ErrorType::Required,
            field,
            FieldValue::Omitted,
            detail.into(),
        )
    }

    /// `field.Duplicate`
    pub fn duplicate(field: FieldPath, value: FieldValue) -> Self {
        Self::with(ErrorType::Duplicate, field, value, String::new())
    }

    /// `field.NotSupported`: the supported values are printed in the order given.
    pub fn not_supported(field: FieldPath, value: FieldValue, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::with(ErrorType::NotSupported, field, value, detail)
    }

    /// `field.Forbidden`
    pub fn forbidden(field: FieldPath, detail: impl Into<String>) -> Self {
        Self::with(
            ErrorType::Forbidden,
            field,
            FieldValue::Omitted,
            detail.into(),
        )
    }

    /// `field.TooLong` (1.34+ wording: `byte` when the limit is 1).
    pub fn too_long(field: FieldPath, max_length: i64) -> Self {
        let detail = if max_length >= 0 {
            let unit = if max_length == 1 { "byte" } else { "bytes" };
            format!("may not be more than {max_length} {unit}")
        } else {
            "value is too long".to_owned()
        };
        Self::with(ErrorType::TooLong, field, FieldValue::Omitted, detail)
    }

    /// `field.TooMany`
    pub fn too_many(field: FieldPath, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            let unit = if max == 1 { "item" } else { "items" };
            format!("must have at most {max} {unit}")
        } else {
            "has too many items".to_owned()
        };
        let value = if actual >= 0 {
            FieldValue::Int(actual)
        } else {
            FieldValue::Omitted
        };
        Self::with(ErrorType::TooMany, field, value, detail)
    }

    /// `field.NotFound`
    pub fn not_found(field: FieldPath, value: FieldValue) -> Self {
        Self::with(ErrorType::NotFound, field, value, String::new())
    }

    /// `field.InternalError`
    pub fn internal(field: FieldPath, err: impl Into<String>) -> Self {
        Self::with(
            ErrorType::InternalError,
            field,
            FieldValue::Omitted,
            err.into(),
        )
    }

    /// `field.TypeInvalid`
    pub fn type_invalid(field: FieldPath, value: FieldValue, detail: impl Into<String>) -> Self {
        Self::with(ErrorType::TypeInvalid, field, value, detail.into())
    }

    fn with(error_type: ErrorType, field: FieldPath, value: FieldValue, detail: String) -> Self {
        FieldError {
            error_type,
            field,
            value,
            detail,
        }
    }

    /// The message without the field (`ErrorBody`), i.e. a Status cause's `message`.
    pub fn body(&self, style: ValueRendering) -> String {
        let mut s = self.error_type.prefix().to_owned();
        if self.error_type.prints_value() && self.value != FieldValue::Omitted {
            s.push_str(": ");
            s.push_str(&self.value.render(style));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The full error string `<field>: <body>`.
    pub fn message(&self, style: ValueRendering) -> String {
        format!("{}: {}", self.field, self.body(style))
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(ValueRendering::Json))
    }
}
