//! ObjectMeta validation with kube-apiserver's messages: names, namespaces, labels, annotations.

use std::net::{IpAddr, Ipv6Addr};

use serde_json::Value;

use crate::status::{StatusCause, cause};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
/// `RegexError(qualifiedNameErrMsg, ...)`: what a qualified name's name part must be.
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Which rule a kind's names follow (the `ValidateNameFunc` its strategy passes to
/// `ValidateObjectMeta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// DNS-1035 label (services).
    Dns1035,
    /// Any name that is safe as a URL path segment: what the generic registry checks for every
    /// kind, and the only rule core v1 Events have (their strategy skips name validation).
    PathSegment,
    /// An IP address in canonical form (IPAddress, named by the IP it holds).
    Ip,
    /// A DNS-1123 subdomain equal to `spec.names.plural + "." + spec.group` (CRDs); carries that
    /// required name.
    PluralDotGroup(String),
}

/// The name rule upstream applies to a kind; `obj` is the object being written (a CRD's required
/// name comes from its spec).
pub fn name_rule(group: &str, kind: &str, obj: &Value) -> NameRule {
    match (group, kind) {
        ("", "Service") => NameRule::Dns1035,
        ("", "Namespace") => NameRule::Label,
        ("", "Event") => NameRule::PathSegment,
        ("networking.k8s.io", "IPAddress") => NameRule::Ip,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let field = |path: &[&str]| {
                path.iter()
                    .fold(obj.get("spec"), |v, k| v.and_then(|v| v.get(k)))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            NameRule::PluralDotGroup(format!(
                "{}.{}",
                field(&["names", "plural"]),
                field(&["group"])
            ))
        }
        _ => NameRule::Subdomain,
    }
}

/// Whether names of this kind are generated from `generateName` by appending a random suffix;
/// IPAddress's strategy appends nothing (the prefix must already be the IP).
pub fn generates_suffix(group: &str, kind: &str) -> bool {
    (group, kind) != ("networking.k8s.io", "IPAddress")
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

/// `IsPathSegmentName`, or `IsPathSegmentPrefix` for a prefix: every offending substring.
fn path_segment_errors(s: &str, prefix: bool) -> Vec<String> {
    if !prefix && (s == "." || s == "..") {
        return vec![format!("may not be '{s}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| s.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// Parses an IP as `netutils.ParseIPSloppy` does (Go 1.16's `net.ParseIP`): like the strict
/// parser, but IPv4 octets may carry leading zeros and IPv6 groups any number of hex digits.
fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    fn ipv4(s: &str) -> Option<String> {
        let octets: Vec<&str> = s.split('.').collect();
        if octets.len() != 4 {
            return None;
        }
        let mut out = Vec::with_capacity(4);
        for o in octets {
            if o.is_empty() || !o.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let trimmed = o.trim_start_matches('0');
            // More than three significant digits is over 255 whatever they are.
            let n: u16 = if trimmed.is_empty() {
                0
            } else if trimmed.len() > 3 {
                return None;
            } else {
                trimmed.parse().ok()?
            };
            if n > 255 {
                return None;
            }
            out.push(n.to_string());
        }
        Some(out.join("."))
    }
    if !s.contains(':') {
        return ipv4(s)?.parse().ok();
    }
    let mut groups: Vec<String> = Vec::new();
    let parts: Vec<&str> = s.split(':').collect();
    for (i, g) in parts.iter().enumerate() {
        if i == parts.len() - 1 && g.contains('.') {
            groups.push(ipv4(g)?);
        } else if g.len() > 4 && g.bytes().all(|b| b.is_ascii_hexdigit()) {
            let trimmed = g.trim_start_matches('0');
            if trimmed.len() > 4 {
                return None;
            }
            groups.push(if trimmed.is_empty() { "0" } else { trimmed }.to_string());
        } else {
            groups.push(g.to_string());
        }
    }
    groups.join(":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// `IsValidIP` as of 1.34 (strict): a valid IP, without leading zeros, not IPv4-mapped, and in
/// canonical form.
pub fn ip_errors(s: &str) -> Vec<String> {
    let Some(ip) = parse_ip_sloppy(s) else {
        return vec![IP_MSG.to_string()];
    };
    // Rust's parser is as strict as Go's `netip.ParseAddr` (minus zones, which the sloppy parse
    // already refused): what only the sloppy parse accepts has leading zeros.
    match s.parse::<IpAddr>() {
        Err(_) => return vec!["must not have leading 0s".to_string()],
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            return vec!["must not be an IPv4-mapped IPv6 address".to_string()];
        }
        Ok(_) => {}
    }
    // Rust prints IPv6 as RFC 5952 says, as Go's `net.IP.String` does.
    let canonical = ip.to_string();
    if canonical != s {
        return vec![format!(
            "must be in canonical form ({})",
            go_quote(&canonical)
        )];
    }
    Vec::new()
}

/// `maskTrailingDash`: a prefix that ends in a dash is checked as if a suffix followed. Upstream
/// drops the last two characters and appends one; kept as is, since it decides which prefixes
/// pass the length limits.
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(_) if name.len() > 1 => {
            let cut = name.char_indices().rev().nth(1).map_or(0, |(i, _)| i);
            format!("{}a", &name[..cut])
        }
        _ => name.to_string(),
    }
}

/// Go's `%q` of a string (`strconv.Quote`), as field errors and upstream's messages render
/// values; Rust's `{:?}` differs (`"\u{1}"` where Go writes `"\x01"`, no `\a`, `\v`), so no
/// message uses it.
// Not gocompat's: testenv is an independent check of svcplane and depends on none of its crates.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if !go_printable(c) && (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if !go_printable(c) => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, as far as std can tell: control characters, separators other than
/// the ASCII space and the usual invisible format characters are not printable.
fn go_printable(c: char) -> bool {
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{ad}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{feff}'
        ))
}

fn invalid(field: &str, value: &str, detail: &str) -> StatusCause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {detail}", go_quote(value)),
    )
}

/// Checks a name (or, with `prefix`, a `generateName`) against a rule; `field` is the path
/// reported.
pub fn validate_name(rule: &NameRule, name: &str, field: &str, prefix: bool) -> Vec<StatusCause> {
    let masked = || {
        if prefix {
            mask_trailing_dash(name)
        } else {
            name.to_string()
        }
    };
    let errs = match rule {
        NameRule::Subdomain => dns1123_subdomain_errors(&masked()),
        NameRule::Label => dns1123_label_errors(&masked()),
        NameRule::Dns1035 => dns1035_label_errors(&masked()),
        NameRule::PathSegment => path_segment_errors(name, prefix),
        NameRule::Ip => ip_errors(name),
        NameRule::PluralDotGroup(required) => {
            let mut errs = dns1123_subdomain_errors(&masked());
            if name != required {
                errs.push("must be spec.names.plural+\".\"+spec.group".to_string());
            }
            errs
        }
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
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    // Go checks the pattern whatever the length, so an empty name part fails it too.
    let matches = name
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
    if !matches {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
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

/// Whether metadata is validated for a create or for an update: upstream's
/// `ValidateObjectMetaAccessorUpdate` leaves finalizer names alone (only a create checks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaWrite {
    Create,
    Update,
}

/// The standard finalizer names `k8s.io/kubernetes`'s `IsStandardFinalizerName` accepts without a
/// domain.
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// `validateKubeFinalizerName`, which kube-apiserver's own kinds add on create and update: a
/// finalizer name without a '/' must be a standard one.
pub fn validate_kube_finalizer_names(meta: &Value) -> Vec<StatusCause> {
    let finalizers = meta.get("finalizers").and_then(Value::as_array);
    let names = finalizers.into_iter().flatten().filter_map(Value::as_str);
    names
        .enumerate()
        .filter(|(_, name)| !name.contains('/') && !STANDARD_FINALIZERS.contains(name))
        .map(|(i, name)| {
            invalid(
                &format!("metadata.finalizers[{i}]"),
                name,
                "name is neither a standard finalizer name nor is it fully qualified",
            )
        })
        .collect()
}

/// An `OwnerReference` as Go's `encoding/json` writes it (field order of the struct, `omitempty`
/// on the two flags), which is how upstream prints one in a validation message.
fn go_owner_reference(reference: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["apiVersion", "kind", "name", "uid"] {
        let value = reference.get(key).and_then(Value::as_str).unwrap_or("");
        out.insert(key.into(), Value::String(value.into()));
    }
    for key in ["controller", "blockOwnerDeletion"] {
        if let Some(flag) = reference.get(key).filter(|v| v.is_boolean()) {
            out.insert(key.into(), flag.clone());
        }
    }
    Value::Object(out)
}

/// `ValidateOwnerReferences`: each reference complete and not to a banned kind, and at most one
/// controller.
fn validate_owner_references(references: &[Value]) -> Vec<StatusCause> {
    const FIELD: &str = "metadata.ownerReferences";
    let mut causes = Vec::new();
    let mut first_controller: Option<String> = None;
    for reference in references {
        let text = |key: &str| reference.get(key).and_then(Value::as_str).unwrap_or("");
        let api_version = text("apiVersion");
        // `schema.FromAPIVersionAndKind`: the version is what follows the last '/'.
        let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if version.is_empty() {
            causes.push(invalid(
                &format!("{FIELD}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        for key in ["kind", "name", "uid"] {
            if text(key).is_empty() {
                causes.push(invalid(&format!("{FIELD}.{key}"), "", "must not be empty"));
            }
        }
        if group.is_empty() && version == "v1" && text("kind") == "Event" {
            causes.push(cause(
                "FieldValueInvalid",
                FIELD,
                format!(
                    "Invalid value: {}: /v1, Kind=Event is disallowed from being an owner",
                    go_owner_reference(reference)
                ),
            ));
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{}/{}", text("kind"), text("name"));
            match &first_controller {
                Some(first) => {
                    let all: Vec<Value> = references.iter().map(go_owner_reference).collect();
                    causes.push(cause(
                        "FieldValueInvalid",
                        FIELD,
                        format!(
                            "Invalid value: {}: Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}",
                            Value::Array(all)
                        ),
                    ));
                }
                None => first_controller = Some(this),
            }
        }
    }
    causes
}

/// `ValidateFinalizers`: qualified names, and not both `orphan` and `foregroundDeletion`.
fn validate_finalizers(finalizers: &[Value]) -> Vec<StatusCause> {
    const FIELD: &str = "metadata.finalizers";
    let mut causes = Vec::new();
    let names: Vec<&str> = finalizers.iter().filter_map(Value::as_str).collect();
    for name in &names {
        for e in qualified_name_errors(name) {
            causes.push(invalid(FIELD, name, &e));
        }
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        causes.push(cause(
            "FieldValueInvalid",
            FIELD,
            format!(
                "Invalid value: {}: finalizer orphan and foregroundDeletion cannot be both set",
                Value::Array(finalizers.to_vec())
            ),
        ));
    }
    causes
}

/// Validates the metadata of an object about to be stored (names, labels, annotations, owner
/// references and, on a create, finalizers), in `ValidateObjectMetaAccessor`'s order.
pub fn validate_object_meta(
    rule: &NameRule,
    namespaced: bool,
    meta: &Value,
    write: MetaWrite,
) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let generate_name = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    // As `ValidateObjectMetaAccessor`: the prefix first, whenever there is one, then the name.
    if !generate_name.is_empty() {
        causes.extend(validate_name(
            rule,
            generate_name,
            "metadata.generateName",
            true,
        ));
    }
    if name.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else {
        causes.extend(validate_name(rule, name, "metadata.name", false));
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
    if let Some(references) = meta.get("ownerReferences").and_then(Value::as_array) {
        causes.extend(validate_owner_references(references));
    }
    if write == MetaWrite::Create
        && let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array)
    {
        causes.extend(validate_finalizers(finalizers));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_names_are_dns1035_labels() {
        let errs = validate_name(&NameRule::Dns1035, "123-web", "metadata.name", false);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            format!("Invalid value: \"123-web\": {DNS1035_LABEL_MSG}")
        );
        assert!(validate_name(&NameRule::Dns1035, "web", "metadata.name", false).is_empty());
        assert!(
            validate_name(&NameRule::Subdomain, "web.example", "metadata.name", false).is_empty()
        );
        assert_eq!(dns1123_label_errors("web.1"), ["must not contain dots"]);
    }

    #[test]
    fn missing_name_and_bad_labels() {
        let causes = validate_object_meta(
            &NameRule::Subdomain,
            true,
            &json!({"namespace": "default", "labels": {"-x": "ok", "a": "-bad"}}),
            MetaWrite::Create,
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
            &NameRule::Subdomain,
            true,
            &json!({"generateName": "web-", "namespace": "default"}),
            MetaWrite::Create,
        );
        assert!(
            ok.iter().all(|c| c.field != "metadata.generateName"),
            "{ok:?}"
        );
    }

    fn meta_causes(meta: Value, write: MetaWrite) -> Vec<(String, String)> {
        validate_object_meta(&NameRule::Subdomain, true, &meta, write)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn owner_references_are_complete_with_one_controller() {
        let causes = meta_causes(
            json!({"name": "c", "namespace": "d", "ownerReferences": [
                {"kind": "ConfigMap", "name": "o", "apiVersion": "v1"},
                {"uid": "u1", "apiVersion": "v1", "kind": "ConfigMap", "name": "o", "controller": true},
                {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u2", "controller": true},
            ]}),
            MetaWrite::Update,
        );
        assert_eq!(
            causes,
            [
                (
                    "metadata.ownerReferences.uid".to_string(),
                    "Invalid value: \"\": must not be empty".to_string()
                ),
                (
                    "metadata.ownerReferences".to_string(),
                    r#"Invalid value: {"apiVersion":"v1","kind":"Event","name":"e","uid":"u2","controller":true}: /v1, Kind=Event is disallowed from being an owner"#.to_string()
                ),
                (
                    "metadata.ownerReferences".to_string(),
                    concat!(
                        r#"Invalid value: [{"apiVersion":"v1","kind":"ConfigMap","name":"o","uid":""},"#,
                        r#"{"apiVersion":"v1","kind":"ConfigMap","name":"o","uid":"u1","controller":true},"#,
                        r#"{"apiVersion":"v1","kind":"Event","name":"e","uid":"u2","controller":true}]: "#,
                        r#"Only one reference can have Controller set to true. Found "true" in references for ConfigMap/o and Event/e"#
                    )
                    .to_string()
                ),
            ]
        );
    }

    #[test]
    fn finalizer_names_are_checked_on_create_only() {
        let meta = json!({"name": "c", "namespace": "d",
            "finalizers": ["bad finalizer", "orphan", "foregroundDeletion"]});
        let causes = meta_causes(meta.clone(), MetaWrite::Create);
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert_eq!(
            causes[0].1,
            format!("Invalid value: \"bad finalizer\": name part {QUALIFIED_NAME_MSG}")
        );
        assert_eq!(
            causes[1].1,
            r#"Invalid value: ["bad finalizer","orphan","foregroundDeletion"]: finalizer orphan and foregroundDeletion cannot be both set"#
        );
        assert!(meta_causes(meta.clone(), MetaWrite::Update).is_empty());
        let kube = validate_kube_finalizer_names(&meta);
        assert_eq!(kube.len(), 1, "{kube:?}");
        assert_eq!(kube[0].field, "metadata.finalizers[0]");
        assert!(
            validate_kube_finalizer_names(&json!({"finalizers": ["example.com/x"]})).is_empty()
        );
    }

    #[test]
    fn ips_are_checked_as_is_valid_ip_does() {
        // Vectors from apimachinery's TestIsValidIP (1.34).
        for good in [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "1234::abcd",
            "::",
            "::102:304",
        ] {
            assert!(ip_errors(good).is_empty(), "{good}");
        }
        let canonical = |c: &str| vec![format!("must be in canonical form (\"{c}\")")];
        assert_eq!(ip_errors("0:0:0:0:0:0:0:0"), canonical("::"));
        assert_eq!(ip_errors("0001:002:03:4::"), canonical("1:2:3:4::"));
        assert_eq!(ip_errors("1234::ABCD"), canonical("1234::abcd"));
        assert_eq!(ip_errors("1:0:0:2:0:0:0:3"), canonical("1:0:0:2::3"));
        assert_eq!(ip_errors("1:0:0:2:0:0:3:4"), canonical("1::2:0:0:3:4"));
        assert_eq!(ip_errors("::1.2.3.4"), canonical("::102:304"));
        for leading in ["1.1.1.01", "00001::", "::ffff:01.1.1.1"] {
            assert_eq!(
                ip_errors(leading),
                ["must not have leading 0s"],
                "{leading}"
            );
        }
        for mapped in ["::ffff:1.1.1.1", "::ffff:0101:0101"] {
            assert_eq!(
                ip_errors(mapped),
                ["must not be an IPv4-mapped IPv6 address"],
                "{mapped}"
            );
        }
        for bad in [
            "",
            "aaaaaaa",
            "myhost.mydomain",
            "1.2.3.0/24",
            "1.2.3.400",
            "-1.0.0.0",
            "2001:db8::10005",
            "1.2.3.4:80",
            "[2001:db8::1]",
            "[2001:db8::1]:80",
            "example.com:80",
            "1234::abcd%eth0",
            "169.254.0.0%eth0",
            "1.2.3",
            "1.2.3.4.5",
            "0000256.0.0.0",
        ] {
            assert_eq!(ip_errors(bad), [IP_MSG], "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_masked_as_upstream_does() {
        assert_eq!(mask_trailing_dash("web-"), "wea");
        assert_eq!(mask_trailing_dash("a-"), "a");
        assert_eq!(mask_trailing_dash("-"), "-");
        assert_eq!(mask_trailing_dash("web"), "web");
        let prefix =
            |rule: &NameRule, p: &str| validate_name(rule, p, "metadata.generateName", true);
        assert!(prefix(&NameRule::Subdomain, "web-").is_empty());
        assert!(prefix(&NameRule::Dns1035, "web-").is_empty());
        assert_eq!(prefix(&NameRule::Dns1035, "Web-").len(), 1);
        // A path-segment prefix may be "." or "..": a suffix follows.
        assert!(prefix(&NameRule::PathSegment, "..").is_empty());
        assert_eq!(
            validate_name(&NameRule::PathSegment, "a/%", "metadata.name", false)
                .iter()
                .map(|c| c.message.as_str())
                .collect::<Vec<_>>(),
            [
                "Invalid value: \"a/%\": may not contain '/'",
                "Invalid value: \"a/%\": may not contain '%'"
            ]
        );
    }

    #[test]
    fn crd_names_must_be_plural_dot_group() {
        let crd = json!({"spec": {"group": "example.com", "names": {"plural": "widgets"}}});
        let rule = name_rule("apiextensions.k8s.io", "CustomResourceDefinition", &crd);
        assert_eq!(rule, NameRule::PluralDotGroup("widgets.example.com".into()));
        assert!(validate_name(&rule, "widgets.example.com", "metadata.name", false).is_empty());
        let errs = validate_name(&rule, "Widgets", "metadata.name", false);
        assert_eq!(
            errs.iter().map(|c| c.message.as_str()).collect::<Vec<_>>(),
            [
                format!("Invalid value: \"Widgets\": {DNS1123_SUBDOMAIN_MSG}"),
                "Invalid value: \"Widgets\": must be spec.names.plural+\".\"+spec.group"
                    .to_string()
            ]
        );
    }

    #[test]
    fn go_quote_escapes_like_percent_q() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        // strconv.Quote's escapes, which Rust's `{:?}` does not produce.
        assert_eq!(go_quote("\u{1}\u{7}\u{b}\u{7f}"), r#""\x01\a\v\x7f""#);
        assert_eq!(go_quote("a\u{200b}b\u{a0}"), r#""a\u200bb\u00a0""#);
        assert_eq!(go_quote("café ☕"), "\"café ☕\"");
    }
}
