//! ObjectMeta validation with kube-apiserver's messages: names, namespaces, labels, annotations.

use serde_json::Value;

use crate::status::{StatusCause, cause};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Which rule a kind's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// DNS-1035 label (services).
    Dns1035,
    /// Any non-empty path-safe name (events, leases use subdomain; this is for CRs without rules).
    PathSegment,
}

/// The name rule upstream applies to a kind.
pub fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Service") => NameRule::Dns1035,
        ("", "Namespace") => NameRule::Label,
        _ => NameRule::Subdomain,
    }
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns1123_label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.chars().next().is_some_and(is_alnum_lower)
        && s.chars().last().is_some_and(is_alnum_lower)
}

/// `IsDNS1123Label`: the messages for a value that is not a DNS-1123 label.
pub fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !dns1123_label_ok(s) {
        if dns1123_subdomain_ok(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(DNS1123_LABEL_MSG.to_string());
        }
    }
    errs
}

fn dns1123_subdomain_ok(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(dns1123_label_ok)
}

/// `IsDNS1123Subdomain`.
pub fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !dns1123_subdomain_ok(s) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// `IsDNS1035Label`.
pub fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().last().is_some_and(is_alnum_lower);
    if !ok {
        errs.push(DNS1035_LABEL_MSG.to_string());
    }
    errs
}

fn path_segment_errors(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            return vec![format!("may not contain '{bad}'")];
        }
    }
    Vec::new()
}

/// Go's `%q` of a string, as field errors render values.
// Not gocompat's: testenv is an independent check of svcplane and depends on none of its crates.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn invalid(field: &str, value: &str, detail: &str) -> StatusCause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {detail}", go_quote(value)),
    )
}

/// Checks a name against a rule; `field` is the path reported.
pub fn validate_name(rule: NameRule, name: &str, field: &str) -> Vec<StatusCause> {
    let errs = match rule {
        NameRule::Subdomain => dns1123_subdomain_errors(name),
        NameRule::Label => dns1123_label_errors(name),
        NameRule::Dns1035 => dns1035_label_errors(name),
        NameRule::PathSegment => path_segment_errors(name),
    };
    errs.iter().map(|e| invalid(field, name, e)).collect()
}

/// `IsQualifiedName` for label and annotation keys.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if key.matches('/').count() > 1 {
        return vec![format!(
            "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        )];
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain_errors(p)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        let ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            errs.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let ok = v.is_empty()
        || (v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()));
    if !ok {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// Validates the metadata of an object about to be stored (names, labels, annotations).
pub fn validate_object_meta(rule: NameRule, namespaced: bool, meta: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let generate_name = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else {
        causes.extend(validate_name(rule, name, "metadata.name"));
    }
    if !generate_name.is_empty() && name.is_empty() {
        // A prefix is checked with a trailing character as upstream's `maskTrailingDash`.
        let masked = generate_name
            .strip_suffix('-')
            .map(|p| format!("{p}a"))
            .unwrap_or(generate_name.to_string());
        causes.extend(validate_name(rule, &masked, "metadata.generateName"));
    }
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            causes.push(cause(
                "FieldValueRequired",
                "metadata.namespace",
                "Required value",
            ));
        } else {
            causes.extend(
                dns1123_label_errors(namespace)
                    .iter()
                    .map(|e| invalid("metadata.namespace", namespace, e)),
            );
        }
    } else if !namespace.is_empty() {
        causes.push(cause(
            "FieldValueForbidden",
            "metadata.namespace",
            "Forbidden: not allowed on this type",
        ));
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            for e in qualified_name_errors(k) {
                causes.push(invalid("metadata.labels", k, &e));
            }
            match v.as_str() {
                Some(v) => {
                    for e in label_value_errors(v) {
                        causes.push(invalid("metadata.labels", v, &e));
                    }
                }
                None if v.is_null() => {}
                None => causes.push(cause(
                    "FieldValueTypeInvalid",
                    &format!("metadata.labels[{k}]"),
                    "Invalid value: must be a string",
                )),
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0usize;
        for (k, v) in annotations {
            for e in qualified_name_errors(k) {
                causes.push(invalid("metadata.annotations", &k.to_ascii_lowercase(), &e));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push(cause(
                "FieldValueTooLong",
                "metadata.annotations",
                format!("Too long: may not be more than {} bytes", 256 * 1024),
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_names_are_dns1035_labels() {
        let errs = validate_name(NameRule::Dns1035, "123-web", "metadata.name");
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            format!("Invalid value: \"123-web\": {DNS1035_LABEL_MSG}")
        );
        assert!(validate_name(NameRule::Dns1035, "web", "metadata.name").is_empty());
        assert!(validate_name(NameRule::Subdomain, "web.example", "metadata.name").is_empty());
        assert_eq!(dns1123_label_errors("web.1"), ["must not contain dots"]);
    }

    #[test]
    fn missing_name_and_bad_labels() {
        let causes = validate_object_meta(
            NameRule::Subdomain,
            true,
            &json!({"namespace": "default", "labels": {"-x": "ok", "a": "-bad"}}),
        );
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["metadata.name", "metadata.labels", "metadata.labels"]
        );
        assert_eq!(
            causes[0].message,
            "Required value: name or generateName is required"
        );
        let ok = validate_object_meta(
            NameRule::Subdomain,
            true,
            &json!({"generateName": "web-", "namespace": "default"}),
        );
        assert!(
            ok.iter().all(|c| c.field != "metadata.generateName"),
            "{ok:?}"
        );
    }

    #[test]
    fn go_quote_escapes_like_percent_q() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
