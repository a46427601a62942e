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

/// Where an object came from: the file (`-` is standard input) and the document in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub source: PathBuf,
    /// 1-based index of the YAML/JSON document in the file (items of a `List` share its index).
    pub document: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (document {})",
            source_name(&self.source),
            self.document
        )
    }
}

/// The name a user knows an input by: its path, or `stdin` for `-`.
fn source_name(source: &Path) -> String {
    if source == Path::new(STDIN) {
        "stdin".to_owned()
    } else {
        source.display().to_string()
    }
}

/// The path that stands for standard input, as in `kubectl apply -f -`.
pub const STDIN: &str = "-";

/// One Service found in the input.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedObject {
    /// Where it came from.
    pub location: Location,
    /// `metadata.name` (empty if missing).
    pub name: String,
    /// The apiserver's refusal, or `None` when the Service would be accepted.
    pub status: Option<Status>,
}

/// An input that could not be read, parsed, or decoded as the object it says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableInput {
    /// The file.
    pub source: PathBuf,
    /// The document that could not be parsed or decoded; `None` when the file could not be read.
    pub document: Option<usize>,
    /// Why.
    pub error: String,
}

impl std::fmt::Display for UnreadableInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.document {
            Some(document) => write!(
                f,
                "{} (document {document}): {}",
                source_name(&self.source),
                self.error
            ),
            None => write!(f, "{}: {}", source_name(&self.source), self.error),
        }
    }
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
    /// The ClusterIPs and NodePorts the Services accepted so far ask for: the inputs are one
    /// set, as applying them would make them, so two asking for one value cannot both pass.
    taken: AllocationSnapshot,
}

impl ValidationReport {
    /// The Services that would be refused.
    pub fn invalid(&self) -> impl Iterator<Item = (&CheckedObject, &Status)> {
        self.services
            .iter()
            .filter_map(|o| o.status.as_ref().map(|s| (o, s)))
    }

    /// The conventional exit code: 2 if any input was unreadable or undecodable, else 1 if
    /// anything is invalid, else 0.
    pub fn exit_code(&self) -> i32 {
        if !self.unreadable.is_empty() {
            2
        } else if self.invalid().next().is_some() {
            1
        } else {
            0
        }
    }

    /// One line per Service, in input order, naming where it came from: `is valid`, or what
    /// kubectl would print for the refusal.
    pub fn kubectl_text(&self) -> String {
        let mut out = String::new();
        for object in &self.services {
            match &object.status {
                None => out.push_str(&format!(
                    "{}: service/{} is valid\n",
                    object.location, object.name
                )),
                Some(status) => {
                    out.push_str(&format!(
                        "{}: {}",
                        object.location,
                        status.kubectl_message()
                    ));
                }
            }
        }
        out
    }

    /// The unreadable inputs, one `error:` line each (for standard error).
    pub fn errors_text(&self) -> String {
        self.unreadable
            .iter()
            .map(|u| format!("error: {u}\n"))
            .collect()
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

/// Checks every Service in `paths` (`-` reads standard input) as creates against a cluster
/// with `ranges`, all in one set.
pub fn validate_files(paths: &[PathBuf], ranges: &ServiceRanges) -> ValidationReport {
    let mut report = ValidationReport::default();
    for path in paths {
        let text = if path == Path::new(STDIN) {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        };
        match text {
            Ok(text) => validate_text(path, &text, ranges, &mut report),
            Err(e) => report.unreadable.push(UnreadableInput {
                source: path.clone(),
                document: None,
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
    match manifests::documents(text) {
        Ok(documents) => {
            for (i, doc) in documents.into_iter().enumerate() {
                let location = Location {
                    source: source.to_owned(),
                    document: i + 1,
                };
                check_value(&location, doc, ranges, report);
            }
        }
        Err(e) => report.unreadable.push(UnreadableInput {
            source: source.to_owned(),
            document: Some(e.document),
            error: e.message,
        }),
    }
}

fn check_value(
    location: &Location,
    doc: Value,
    ranges: &ServiceRanges,
    report: &mut ValidationReport,
) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "" if doc.is_null() => {}
        "Service" => check_service(location, doc, ranges, report),
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
                check_value(location, item, ranges, report);
            }
        }
        _ => report.skipped += 1,
    }
}

fn check_service(
    location: &Location,
    doc: Value,
    ranges: &ServiceRanges,
    report: &mut ValidationReport,
) {
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut svc = match serde_json::from_value::<Service>(doc) {
        Ok(svc) => svc,
        Err(e) => {
            // Not a Service the API could decode: bad input, not a verdict on a Service.
            report.unreadable.push(UnreadableInput {
                source: location.source.clone(),
                document: Some(location.document),
                error: format!(
                    "cannot decode Service {}: {e}",
                    gocompat::quote::go_quote(&name)
                ),
            });
            return;
        }
    };
    default_as_created(&mut svc);
    let checked = check_service_create(&svc, ranges, &report.taken, &ValidationOptions::default());
    let status = match checked {
        Ok(mut accepted) => {
            // Only what the file asks for is held, not the health-check port standing in for
            // the one the allocator would pick.
            let requested_hcnp = svc.spec.as_ref().and_then(|s| s.health_check_node_port);
            if let Some(spec) = accepted.spec.as_mut() {
                spec.health_check_node_port = requested_hcnp;
            }
            hold_requested_values(&accepted, &mut report.taken);
            None
        }
        Err(rejection) => Some(rejection.to_status("Service", &name, ValueRendering::Json)),
    };
    report.services.push(CheckedObject {
        location: location.clone(),
        name,
        status,
    });
}

/// Marks the ClusterIPs and NodePorts an accepted Service asks for as taken.
fn hold_requested_values(service: &Service, taken: &mut AllocationSnapshot) {
    let Some(spec) = &service.spec else {
        return;
    };
    if spec.type_.as_deref() != Some("ExternalName") {
        for ip in spec.cluster_ips.iter().flatten() {
            if let Some(ip) = gocompat::ip::parse_ip_sloppy(ip) {
                taken.cluster_ips.insert(ip);
            }
        }
    }
    if matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
        let ports = spec.ports.iter().flatten().filter_map(|p| p.node_port);
        taken.node_ports.extend(ports.filter(|&p| p != 0));
        taken
            .node_ports
            .extend(spec.health_check_node_port.filter(|&p| p != 0));
    }
}

/// A Service from a file as kube-apiserver would store it on create: defaulted, its IP
/// families filled in, and a ClusterIP for each family the file leaves without one (the first
/// address of that family's range; the real one is random, and only its presence and family
/// matter to what the controllers write). Returns the stored Service and a note for each value
/// assumed, or the apiserver's refusal.
pub fn as_stored(
    service: &Service,
    ranges: &ServiceRanges,
) -> Result<(Service, Vec<String>), Box<Status>> {
    let mut svc = service.clone();
    default_as_created(&mut svc);
    let name = svc.metadata.name.clone().unwrap_or_default();
    let key = format!(
        "{}/{name}",
        svc.metadata.namespace.as_deref().unwrap_or_default()
    );
    let mut stored = check_service_create(
        &svc,
        ranges,
        &AllocationSnapshot::default(),
        &ValidationOptions::default(),
    )
    .map_err(|r| Box::new(r.to_status("Service", &name, ValueRendering::Json)))?;
    let mut notes = Vec::new();
    let Some(spec) = stored.spec.as_mut() else {
        return Ok((stored, notes));
    };
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if spec.type_.as_deref() == Some("ExternalName") || headless {
        return Ok((stored, notes));
    }
    let families = spec.ip_families.clone().unwrap_or_default();
    let mut ips = spec.cluster_ips.clone().unwrap_or_default();
    for (index, family) in families.iter().enumerate() {
        if ips.get(index).is_some_and(|ip| !ip.is_empty()) {
            continue;
        }
        let range = ranges.cluster_ip.iter().find(|net| match family.as_str() {
            "IPv6" => matches!(net, ipnet::IpNet::V6(_)),
            _ => matches!(net, ipnet::IpNet::V4(_)),
        });
        let Some(range) = range else { continue };
        let Some(first) = range.hosts().next() else {
            continue;
        };
        ips.truncate(index);
        ips.push(first.to_string());
        notes.push(format!(
            "{key}: no clusterIP in the file; planned with an {family} ClusterIP from {range}, as the apiserver would allocate one"
        ));
    }
    spec.cluster_ip = ips.first().cloned();
    spec.cluster_ips = Some(ips);
    Ok((stored, notes))
}

/// What the apiserver does to a Service from a file before anything else: its v1 defaults,
/// and the `default` namespace a file without one is applied to.
fn default_as_created(svc: &mut Service) {
    default_service(svc);
    if svc.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        svc.metadata.namespace = Some("default".to_owned());
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
            "svc.yaml (document 1): The Service \"web\" is invalid: spec.ports[0].name: Invalid value: \"123_abc\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')\n\
             svc.yaml (document 2): service/ok is valid\n"
        );
        assert!(report.json_text().starts_with("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Service \\\"web\\\" is invalid: spec.ports[0].name"));
    }

    #[test]
    fn the_files_are_one_set_so_one_node_port_cannot_pass_twice() {
        let service = |name: &str| {
            format!(
                "{{\"kind\": \"Service\", \"metadata\": {{\"name\": \"{name}\"}}, \"spec\": {{\"type\": \"NodePort\", \"clusterIP\": \"10.96.0.20\", \"ports\": [{{\"port\": 80, \"nodePort\": 30007}}]}}}}"
            )
        };
        let mut report = ValidationReport::default();
        let ranges = ServiceRanges::default();
        validate_text(Path::new("a.json"), &service("a"), &ranges, &mut report);
        validate_text(Path::new("b.json"), &service("b"), &ranges, &mut report);
        assert_eq!(report.exit_code(), 1);
        let text = report.kubectl_text();
        assert!(
            text.starts_with("a.json (document 1): service/a is valid\n"),
            "{text}"
        );
        assert!(
            text.contains("b.json (document 1): The Service \"b\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.20\"]: failed to allocate IP 10.96.0.20: provided IP is already allocated"),
            "{text}"
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_undecodable_input_not_an_invalid_service() {
        let mut report = ValidationReport::default();
        validate_text(
            Path::new("svc.yaml"),
            "kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: eighty}]}\n",
            &ServiceRanges::default(),
            &mut report,
        );
        assert_eq!(report.exit_code(), 2);
        assert!(report.services.is_empty());
        let text = report.errors_text();
        assert!(
            text.starts_with("error: svc.yaml (document 1): cannot decode Service \"web\": "),
            "{text}"
        );
        assert!(!text.contains("BadRequest"), "{text}");
    }

    #[test]
    fn a_cluster_ip_service_without_an_ip_is_stored_with_one_and_a_note_says_so() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
        .unwrap();
        let (stored, notes) = as_stored(&service, &ServiceRanges::default()).unwrap();
        let spec = stored.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
        assert_eq!(spec.ip_families, Some(vec!["IPv4".to_owned()]));
        assert_eq!(
            notes,
            [
                "default/web: no clusterIP in the file; planned with an IPv4 ClusterIP from 10.96.0.0/12, as the apiserver would allocate one"
            ]
        );
        // Headless stays headless, with nothing assumed.
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}}))
        .unwrap();
        let (stored, notes) = as_stored(&headless, &ServiceRanges::default()).unwrap();
        assert_eq!(stored.spec.unwrap().cluster_ip.as_deref(), Some("None"));
        assert!(notes.is_empty());
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
        assert_eq!(report.unreadable[0].document, Some(1));
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
