//! The `metav1.Status` bodies the apiserver answers with (422 Invalid, 500 InternalError), their
//! aggregated messages, Go-identical JSON, and the text kubectl prints for them.

use std::collections::HashSet;

use gocompat::quote::{go_quote, push_go_json_escaped};
use serde::{Deserialize, Serialize};

use crate::field::{FieldError, ValueRendering};

/// One entry of `details.causes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// The field error type (`FieldValueInvalid`, ...); empty for internal errors.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The error body without the field path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `details` of a Status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    /// The object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The API group (empty for core).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The object kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The individual causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// A `metav1.Status` failure body, serialised in the apiserver's key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1`.
    pub api_version: String,
    /// Always empty.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `Failure`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// The human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `Invalid`, `InternalError`, ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: u16,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

/// Joins error strings like `utilerrors.NewAggregate(...).Error()` after `ToAggregate`:
/// exact duplicates dropped (first kept), one error bare, several in brackets.
pub fn aggregate_message(messages: &[String]) -> Option<String> {
    let mut seen = HashSet::new();
    let distinct: Vec<&str> = messages
        .iter()
        .filter(|m| seen.insert(m.as_str()))
        .map(String::as_str)
        .collect();
    match distinct.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        many => Some(format!("[{}]", many.join(", "))),
    }
}

impl Status {
    fn failure(message: String, reason: &str, details: StatusDetails, code: u16) -> Self {
        Status {
            kind: "Status".to_owned(),
            api_version: "v1".to_owned(),
            metadata: serde_json::Map::new(),
            status: "Failure".to_owned(),
            message,
            reason: reason.to_owned(),
            details: Some(details),
            code,
        }
    }

    /// `errors.NewInvalid(kind, name, errs)`: the 422 for a core-group kind.
    pub fn invalid(kind: &str, name: &str, errs: &[FieldError], style: ValueRendering) -> Self {
        let causes = errs
            .iter()
            .map(|e| StatusCause {
                reason: e.error_type.reason().to_owned(),
                message: e.body(style),
                field: e.field.to_string(),
            })
            .collect();
        let messages: Vec<String> = errs.iter().map(|e| e.message(style)).collect();
        let message = match aggregate_message(&messages) {
            Some(agg) => format!("{kind} {} is invalid: {agg}", go_quote(name)),
            None => format!("{kind} {} is invalid", go_quote(name)),
        };
        let details = StatusDetails {
            name: name.to_owned(),
            group: String::new(),
            kind: kind.to_owned(),
            causes,
        };
        Status::failure(message, "Invalid", details, 422)
    }

    /// `errors.NewAlreadyExists(resource, name)` for a core-group resource: the 409 of a create
    /// whose name is taken (`services "web" already exists`).
    pub fn already_exists(resource: &str, name: &str) -> Self {
        let details = StatusDetails {
            name: name.to_owned(),
            kind: resource.to_owned(),
            ..StatusDetails::default()
        };
        Status::failure(
            format!("{resource} {} already exists", go_quote(name)),
            "AlreadyExists",
            details,
            409,
        )
    }

    /// `errors.NewInternalError(err)`: the 500 whose single cause carries the error text.
    pub fn internal_error(err: &str) -> Self {
        let details = StatusDetails {
            causes: vec![StatusCause {
                message: err.to_owned(),
                ..StatusCause::default()
            }],
            ..StatusDetails::default()
        };
        Status::failure(
            format!("Internal error occurred: {err}"),
            "InternalError",
            details,
            500,
        )
    }

    /// Compact JSON exactly as the apiserver writes it (Go's HTML-safe string escaping).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"kind\":");
        push_str_value(&mut out, &self.kind);
        out.push_str(",\"apiVersion\":");
        push_str_value(&mut out, &self.api_version);
        out.push_str(",\"metadata\":{}");
        push_opt_field(&mut out, "status", &self.status);
        push_opt_field(&mut out, "message", &self.message);
        push_opt_field(&mut out, "reason", &self.reason);
        if let Some(details) = &self.details {
            out.push_str(",\"details\":{");
            let mut first = true;
            for (key, value) in [
                ("name", &details.name),
                ("group", &details.group),
                ("kind", &details.kind),
            ] {
                if !value.is_empty() {
                    push_key(&mut out, key, &mut first);
                    push_str_value(&mut out, value);
                }
            }
            if !details.causes.is_empty() {
                push_key(&mut out, "causes", &mut first);
                out.push('[');
                for (i, cause) in details.causes.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('{');
                    let mut first_in_cause = true;
                    for (key, value) in [
                        ("reason", &cause.reason),
                        ("message", &cause.message),
                        ("field", &cause.field),
                    ] {
                        if !value.is_empty() {
                            push_key(&mut out, key, &mut first_in_cause);
                            push_str_value(&mut out, value);
                        }
                    }
                    out.push('}');
                }
                out.push(']');
            }
            out.push('}');
        }
        if self.code != 0 {
            out.push_str(",\"code\":");
            out.push_str(&self.code.to_string());
        }
        out.push('}');
        out
    }

    /// What kubectl prints to stderr for this error (`checkErr`), trailing newline included.
    pub fn kubectl_message(&self) -> String {
        if self.reason != "Invalid" {
            let msg = if self.reason.is_empty() {
                format!("Error from server: {}", self.message)
            } else {
                format!("Error from server ({}): {}", self.reason, self.message)
            };
            return with_newline(msg);
        }
        let mut s = "The request is invalid".to_owned();
        let Some(details) = &self.details else {
            if !self.message.is_empty() {
                s.push_str(": ");
                s.push_str(&self.message);
            }
            return with_newline(s);
        };
        if !details.kind.is_empty() || !details.name.is_empty() {
            s = format!(
                "The {} {} is invalid",
                details.kind,
                go_quote(&details.name)
            );
        } else if !self.message.is_empty() && details.causes.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        if details.causes.is_empty() {
            return with_newline(s);
        }
        let mut seen = HashSet::new();
        let lines: Vec<String> = details
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .filter(|m| seen.insert(m.clone()))
            .collect();
        let prefix = format!("{s}: ");
        match lines.as_slice() {
            [one] => format!("{prefix}{one}\n"),
            many => {
                let mut out = format!("{prefix}\n");
                for line in many {
                    out.push_str("* ");
                    out.push_str(line);
                    out.push('\n');
                }
                out
            }
        }
    }
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn push_str_value(out: &mut String, s: &str) {
    out.push('"');
    push_go_json_escaped(out, s);
    out.push('"');
}

fn push_key(out: &mut String, key: &str, first: &mut bool) {
    if !*first {
        out.push(',');
    }
    *first = false;
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

fn push_opt_field(out: &mut String, key: &str, value: &str) {
    if !value.is_empty() {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        push_str_value(out, value);
    }
}
