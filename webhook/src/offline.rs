//! `svcplane validate -f FILE...`: Service manifests (YAML or JSON, several documents, `List`s)
//! checked with the same functions as the webhook, reported as the apiserver would answer.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

use crate::status::Status;
use crate::{
    AllocationSnapshot, ServiceRanges, ValidationOptions, ValueRendering, check_service_create,
    default_service,
};

/// One Service found in the input.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedObject {
    /// The file it came from.
    pub source: PathBuf,
    /// `metadata.name` (empty if missing).
    pub name: String,
    /// The apiserver's refusal, or `None` when the Service would be accepted.
    pub status: Option<Status>,
}

/// A file that could not be read or parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableInput {
    /// The file.
    pub source: PathBuf,
    /// Why.
    pub error: String,
}

/// What `validate_files` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidationReport {
    /// Every Service, in input order.
    pub services: Vec<CheckedObject>,
    /// Objects of other kinds, which are not checked.
    pub skipped: usize,
    /// Inputs that could not be read.
    pub unreadable: Vec<UnreadableInput>,
}

impl ValidationReport {
    /// The Services that would be refused.
    pub fn invalid(&self) -> impl Iterator<Item = (&CheckedObject, &Status)> {
        self.services
            .iter()
            .filter_map(|o| o.status.as_ref().map(|s| (o, s)))
    }

    /// The conventional exit code: 2 if any input was unreadable, else 1 if anything is invalid,
    /// else 0.
    pub fn exit_code(&self) -> i32 {
        if !self.unreadable.is_empty() {
            2
        } else if self.invalid().next().is_some() {
            1
        } else {
            0
        }
    }

    /// What kubectl would print for each refusal, one after another, then the unreadable inputs.
    pub fn kubectl_text(&self) -> String {
        let mut out = String::new();
        for (_, status) in self.invalid() {
            out.push_str(&status.kubectl_message());
        }
        for u in &self.unreadable {
            out.push_str(&format!("error: {}: {}\n", u.source.display(), u.error));
        }
        out
    }

    /// The refusals as the apiserver's Status objects, one JSON document per line.
    pub fn json_text(&self) -> String {
        let mut out = String::new();
        for (_, status) in self.invalid() {
            out.push_str(&status.to_json());
            out.push('\n');
        }
        out
    }
}

/// Checks every Service in `paths` as a create against a cluster with `ranges`.
pub fn validate_files(paths: &[PathBuf], ranges: &ServiceRanges) -> ValidationReport {
    let mut report = ValidationReport::default();
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(text) => validate_text(path, &text, ranges, &mut report),
            Err(e) => report.unreadable.push(UnreadableInput {
                source: path.clone(),
                error: e.to_string(),
            }),
        }
    }
    report
}

/// Checks the Services in `text` (the content of `source`), adding to `report`.
pub fn validate_text(
    source: &Path,
    text: &str,
    ranges: &ServiceRanges,
    report: &mut ValidationReport,
) {
    let trimmed = text.trim_start();
    let documents: Result<Vec<Value>, String> =
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            serde_json::Deserializer::from_str(text)
                .into_iter::<Value>()
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())
        } else {
            serde_saphyr::from_multiple::<Value>(text).map_err(|e| e.to_string())
        };
    match documents {
        Ok(documents) => {
            for doc in documents {
                check_value(source, doc, ranges, report);
            }
        }
        Err(error) => report.unreadable.push(UnreadableInput {
            source: source.to_owned(),
            error,
        }),
    }
}

fn check_value(source: &Path, doc: Value, ranges: &ServiceRanges, report: &mut ValidationReport) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "" if doc.is_null() => {}
        "Service" => report.services.push(check_service(source, doc, ranges)),
        _ if kind.ends_with("List") || doc.is_array() => {
            let items = match doc {
                Value::Array(items) => items,
                Value::Object(mut map) => match map.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            for item in items {
                check_value(source, item, ranges, report);
            }
        }
        _ => report.skipped += 1,
    }
}

fn check_service(source: &Path, doc: Value, ranges: &ServiceRanges) -> CheckedObject {
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let status = match serde_json::from_value::<Service>(doc) {
        Err(e) => Some(crate::server::admission::bad_request(&format!(
            "error decoding Service {name:?}: {e}"
        ))),
        Ok(mut svc) => {
            default_service(&mut svc);
            if svc.metadata.namespace.as_deref().unwrap_or("").is_empty() {
                svc.metadata.namespace = Some("default".to_owned());
            }
            check_service_create(
                &svc,
                ranges,
                &AllocationSnapshot::default(),
                &ValidationOptions::default(),
            )
            .err()
            .map(|r| r.to_status("Service", &name, ValueRendering::Json))
        }
    };
    CheckedObject {
        source: source.to_owned(),
        name,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_lists_are_checked() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - {name: 123_abc, port: 80}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: ok}
  spec: {ports: [{port: 80}]}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm}
"#;
        let mut report = ValidationReport::default();
        validate_text(
            Path::new("svc.yaml"),
            yaml,
            &ServiceRanges::default(),
            &mut report,
        );
        assert_eq!(report.services.len(), 2);
        assert_eq!(report.skipped, 1);
        assert_eq!(report.exit_code(), 1);
        assert_eq!(
            report.kubectl_text(),
            "The Service \"web\" is invalid: spec.ports[0].name: Invalid value: \"123_abc\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')\n"
        );
        assert!(report.json_text().starts_with("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Service \\\"web\\\" is invalid: spec.ports[0].name"));
    }

    #[test]
    fn unreadable_input_is_exit_code_two() {
        let mut report = ValidationReport::default();
        validate_text(
            Path::new("bad.json"),
            "{\"kind\": ",
            &ServiceRanges::default(),
            &mut report,
        );
        assert_eq!(report.exit_code(), 2);
        let missing = validate_files(
            &[PathBuf::from("/nonexistent/svc.yaml")],
            &ServiceRanges::default(),
        );
        assert_eq!(missing.exit_code(), 2);
        assert_eq!(
            missing.unreadable[0].source,
            PathBuf::from("/nonexistent/svc.yaml")
        );
    }
}
