//! `svcplane explain service`: a Service's whole chain — selector, the pods it matches and
//! their readiness, each named `targetPort` resolved per pod, the EndpointSlices, the port
//! mapping, the variables a new pod gets — and a verdict in plain words on why it has (no)
//! endpoints. [`explain`] is a pure function of the objects; [`Explanation`] is plain data
//! (serialised for `-o json`) that [`Explanation::to_text`] renders for people.
//!
//! Each section is one field and one renderer, so another section (cluster DNS records) is one
//! more field and one more function.

mod render;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use controllers::endpointslice::pod::service_port_protocol;
use controllers::endpointslice::{LABEL_MANAGED_BY, LABEL_SERVICE_NAME, PodInfo};
use k8s_openapi::api::core::v1::{ContainerState, Endpoints, Node, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use crate::env_vars::{self, EnvVar, PodEnv};

/// The objects an explanation is made of; pods, slices and Endpoints of other Services or
/// namespaces may be among them (they are filtered here).
#[derive(Clone, Copy, Debug)]
pub struct ExplainInputs<'a> {
    /// The Service explained.
    pub service: &'a Service,
    /// Pods (the Service's namespace at least; pods elsewhere are named when they would match).
    pub pods: &'a [Pod],
    /// EndpointSlices.
    pub endpoint_slices: &'a [EndpointSlice],
    /// Endpoints objects.
    pub endpoints: &'a [Endpoints],
    /// The Services a new pod's environment is built from: the Service's namespace and
    /// `default/kubernetes` at least.
    pub services: &'a [Service],
    /// The cluster's Nodes, when known: the EndpointSlice controller leaves out pods on a node
    /// it does not know.
    pub nodes: Option<&'a [Node]>,
    /// The cluster DNS the Service's names are served by (zone, TTL).
    pub dns: &'a dns::DnsConfig,
    /// Whether the EndpointSlices were looked at (a cluster's are; files may hold none). When
    /// not, the verdict counts endpoints from the pods, as the controller would write them.
    pub slices_observed: bool,
}

/// Everything `explain service` says about one Service.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The Service itself.
    pub service: ServiceSummary,
    /// Port → targetPort → nodePort.
    pub ports: Vec<PortMapping>,
    /// The pods the selector matches, by name.
    pub pods: Vec<PodReport>,
    /// The Service's EndpointSlices, by name.
    pub endpoint_slices: Vec<SliceReport>,
    /// The Endpoints object of the same name, if there is one.
    pub endpoints: Option<EndpointsReport>,
    /// The Service variables a new pod in the namespace gets.
    pub environment: EnvironmentReport,
    /// The records cluster DNS serves for the Service.
    pub dns: DnsReport,
    /// Why the Service has, or has no, endpoints.
    pub verdict: Verdict,
}

/// What cluster DNS answers for the Service: every name it gets, with its records, computed by
/// the same code `svcplane dns` answers with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsReport {
    /// The cluster domain (`cluster.local`).
    pub zone: String,
    /// The records, as zone-file lines (`name TTL IN TYPE data`), names in the order the
    /// Service's name, its port names, its endpoints' names, then the reverse names.
    pub records: Vec<String>,
}

fn dns_report(inputs: &ExplainInputs<'_>) -> DnsReport {
    let zone = inputs
        .dns
        .primary_zone()
        .map(|zone| zone.to_string().trim_end_matches('.').to_owned())
        .unwrap_or_default();
    let records =
        dns::records_for_service_objects(inputs.dns, inputs.service, inputs.endpoint_slices)
            .iter()
            .flat_map(|set| set.answers.iter().map(|record| record.to_string()))
            .collect();
    DnsReport { zone, records }
}

/// The Service's identity and the fields that decide its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.type` (`ClusterIP` when unset).
    #[serde(rename = "type")]
    pub type_: String,
    /// `spec.clusterIPs` (or `spec.clusterIP`); `None` for headless.
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    /// `spec.externalName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// `spec.selector`; `None` when the Service has none.
    pub selector: Option<BTreeMap<String, String>>,
    /// `spec.publishNotReadyAddresses`.
    pub publish_not_ready_addresses: bool,
}

impl ServiceSummary {
    /// The selector as `kubectl get -l` takes it: `k=v,k2=v2` (`<none>` when unset).
    pub fn selector_text(&self) -> String {
        match &self.selector {
            None => "<none>".to_owned(),
            Some(s) if s.is_empty() => "<empty: every pod of the namespace>".to_owned(),
            Some(s) => selector_text(s),
        }
    }
}

fn selector_text(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One Service port: what clients dial, where it goes in the pod, and the node port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port's name ("" when unnamed).
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The Service port.
    pub port: i32,
    /// `targetPort`: a number, or the name of a container port.
    pub target_port: String,
    /// The node port, for NodePort and LoadBalancer Services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
}

impl PortMapping {
    /// `name port/PROTO`, or `port/PROTO` for an unnamed port.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{}/{}", self.port, self.protocol)
        } else {
            format!("{} {}/{}", self.name, self.port, self.protocol)
        }
    }
}

/// A pod the selector matches, as the EndpointSlice controller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    /// Name.
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// The pod's IPs.
    pub ips: Vec<String>,
    /// `spec.nodeName` ("" when unscheduled).
    pub node: String,
    /// Whether the controller makes it an endpoint at all (an IP, not Succeeded or Failed).
    pub is_endpoint: bool,
    /// The endpoint's `ready` condition.
    pub ready: bool,
    /// The endpoint's `serving` condition (the pod's Ready condition).
    pub serving: bool,
    /// The endpoint's `terminating` condition (the pod is being deleted).
    pub terminating: bool,
    /// The pod's Ready condition when it is not `True`: why it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_ready: Option<ConditionReport>,
    /// The containers' readiness and states.
    pub containers: Vec<ContainerReport>,
    /// Each named `targetPort`, resolved in this pod.
    pub named_target_ports: Vec<TargetPortReport>,
}

/// A pod condition that is not `True`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionReport {
    /// `True`, `False`, `Unknown`, or `Missing` when the pod has no such condition.
    pub status: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
}

/// A container's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    /// Name.
    pub name: String,
    /// Its readiness.
    pub ready: bool,
    /// How often it restarted.
    pub restart_count: i32,
    /// `running`, `waiting: REASON: message`, `terminated: REASON (exit code N)`.
    pub state: String,
}

/// A named `targetPort` looked up in one pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetPortReport {
    /// The Service port, as [`PortMapping::label`] writes it.
    pub service_port: String,
    /// The container port name looked for.
    pub target_port: String,
    /// The container port it resolves to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_port: Option<i32>,
    /// Why it does not resolve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One EndpointSlice of the Service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceReport {
    /// Name.
    pub name: String,
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    /// Its managed-by label (who writes it).
    pub managed_by: String,
    /// Its ports: `name port/PROTO`.
    pub ports: Vec<String>,
    /// Its endpoints, in the slice's order.
    pub endpoints: Vec<EndpointReport>,
}

/// One endpoint of a slice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointReport {
    /// Its addresses.
    pub addresses: Vec<String>,
    /// `ready` (unset reads as ready, as consumers must).
    pub ready: bool,
    /// `serving` (unset reads as `ready`).
    pub serving: bool,
    /// `terminating` (unset reads as false).
    pub terminating: bool,
    /// The pod it stands for (`targetRef`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Its node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The Endpoints object of the Service's name, flattened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointsReport {
    /// Ready addresses (`ip`, or `ip (pod)`).
    pub addresses: Vec<String>,
    /// Not-ready addresses.
    pub not_ready_addresses: Vec<String>,
    /// Ports: `name port/PROTO`.
    pub ports: Vec<String>,
}

/// The variables kubelet would inject into a pod created now in the Service's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentReport {
    /// The namespace.
    pub namespace: String,
    /// `enableServiceLinks` assumed (the API default).
    pub enable_service_links: bool,
    /// The variables, in order.
    pub variables: Vec<EnvVar>,
    /// Whether the explained Service has variables among them (not for headless, ExternalName,
    /// or a Service without a ClusterIP yet).
    pub includes_service: bool,
}

/// The verdict: how many endpoints take traffic, and what stands in the way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Ready endpoints (distinct pods or addresses), from the EndpointSlices when observed,
    /// else from the pods.
    pub ready_endpoints: usize,
    /// One sentence.
    pub summary: String,
    /// Every problem found, most fundamental first (each with its message in JSON).
    #[serde(serialize_with = "findings_with_messages")]
    pub findings: Vec<Finding>,
}

fn findings_with_messages<S: Serializer>(
    findings: &[Finding],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct WithMessage<'a> {
        #[serde(flatten)]
        finding: &'a Finding,
        message: String,
    }
    let mut seq = serializer.serialize_seq(Some(findings.len()))?;
    for finding in findings {
        seq.serialize_element(&WithMessage {
            finding,
            message: finding.message(),
        })?;
    }
    seq.end()
}

/// One reason for missing or partial endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all_fields = "camelCase")]
pub enum Finding {
    /// An ExternalName Service has no endpoints by design.
    ExternalName {
        /// The name clients are sent to.
        external_name: String,
    },
    /// No selector: no controller writes the endpoints; whoever created the Service must.
    NoSelector {
        /// Whether an Endpoints object of the Service's name exists.
        endpoints_object: bool,
        /// How many EndpointSlices the Service has.
        slices: usize,
    },
    /// No pod in the namespace carries the selector's labels.
    NoPodMatches {
        /// The selector, `k=v,...`.
        selector: String,
        /// The pod of the namespace whose labels come closest.
        #[serde(skip_serializing_if = "Option::is_none")]
        nearest: Option<NearestPod>,
        /// Pods of other namespaces the selector would match (`ns/name`).
        other_namespaces: Vec<String>,
    },
    /// Matching pods whose Ready condition is not `True`.
    PodsNotReady {
        /// Their names.
        pods: Vec<String>,
    },
    /// Matching pods without an IP yet (unscheduled, or not started).
    PodsWithoutIp {
        /// Their names.
        pods: Vec<String>,
    },
    /// Matching pods that have finished (Succeeded or Failed): never endpoints.
    PodsFinished {
        /// Their names.
        pods: Vec<String>,
    },
    /// Matching pods being deleted: serving, but not ready for new traffic.
    PodsTerminating {
        /// Their names.
        pods: Vec<String>,
    },
    /// Matching pods on nodes the cluster does not have: the controller leaves them out.
    PodsOnUnknownNodes {
        /// `pod (node)` for each.
        pods: Vec<String>,
    },
    /// A named `targetPort` that some matching pods do not declare.
    NamedPortMissing {
        /// The Service port.
        service_port: String,
        /// The container port name.
        target_port: String,
        /// The protocol it must have.
        protocol: String,
        /// The pods that lack it.
        pods: Vec<String>,
        /// Whether every matching pod lacks it.
        all_pods: bool,
    },
    /// The pods say there should be ready endpoints, the EndpointSlices show fewer.
    SlicesBehind {
        /// Ready endpoints the pods call for.
        expected: usize,
        /// Ready endpoints the slices hold.
        observed: usize,
    },
}

/// The pod whose labels come closest to a selector, and where they differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NearestPod {
    /// Its name.
    pub pod: String,
    /// How many of the selector's labels it has.
    pub matching: usize,
    /// The selector's labels it lacks or has with another value.
    pub mismatches: Vec<LabelMismatch>,
}

/// One selector label a pod does not satisfy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelMismatch {
    /// The key.
    pub key: String,
    /// The selector's value.
    pub want: String,
    /// The pod's value; `None` when the pod lacks the key.
    pub have: Option<String>,
}

impl Finding {
    /// The finding in plain words.
    pub fn message(&self) -> String {
        let list = |pods: &[String]| pods.join(", ");
        match self {
            Finding::ExternalName { external_name } => format!(
                "the Service is of type ExternalName: it has no endpoints by design; cluster DNS answers its name with a CNAME to {external_name}"
            ),
            Finding::NoSelector {
                endpoints_object,
                slices,
            } => {
                let what = match (*endpoints_object, *slices) {
                    (false, 0) => "no Endpoints object and no EndpointSlice of its name exist".to_owned(),
                    (true, 0) => "an Endpoints object exists but no EndpointSlice (the mirroring controller copies Endpoints into slices)".to_owned(),
                    (_, n) => format!("{n} EndpointSlice(s) exist"),
                };
                format!(
                    "the Service has no selector, so no controller picks its endpoints: whoever created it must write an Endpoints object or EndpointSlices; {what}"
                )
            }
            Finding::NoPodMatches {
                selector,
                nearest,
                other_namespaces,
            } => {
                let mut text = format!("no pod in the namespace has the labels {selector}");
                match nearest {
                    Some(nearest) => {
                        let diffs: Vec<String> = nearest
                            .mismatches
                            .iter()
                            .map(|m| match &m.have {
                                Some(have) => {
                                    format!(
                                        "{} is {have:?}, the selector wants {:?}",
                                        m.key, m.want
                                    )
                                }
                                None => format!(
                                    "it has no label {} (the selector wants {:?})",
                                    m.key, m.want
                                ),
                            })
                            .collect();
                        text.push_str(&format!(
                            "; the closest is pod {}: {}",
                            nearest.pod,
                            diffs.join("; ")
                        ));
                    }
                    None => text.push_str("; the namespace has no pods at all"),
                }
                if !other_namespaces.is_empty() {
                    text.push_str(&format!(
                        "; pods with these labels exist in other namespaces ({}), but a Service selects only in its own",
                        list(other_namespaces)
                    ));
                }
                text
            }
            Finding::PodsNotReady { pods } => format!(
                "{} matching pod(s) are not ready, so they are no ready endpoints: {}",
                pods.len(),
                list(pods)
            ),
            Finding::PodsWithoutIp { pods } => format!(
                "{} matching pod(s) have no IP yet (not scheduled or not started): {}",
                pods.len(),
                list(pods)
            ),
            Finding::PodsFinished { pods } => format!(
                "{} matching pod(s) have finished (Succeeded or Failed) and are never endpoints: {}",
                pods.len(),
                list(pods)
            ),
            Finding::PodsTerminating { pods } => format!(
                "{} matching pod(s) are terminating: they get no new traffic: {}",
                pods.len(),
                list(pods)
            ),
            Finding::PodsOnUnknownNodes { pods } => format!(
                "{} matching pod(s) are on nodes that do not exist, and the EndpointSlice controller leaves such pods out: {}",
                pods.len(),
                list(pods)
            ),
            Finding::NamedPortMissing {
                service_port,
                target_port,
                protocol,
                pods,
                all_pods,
            } => format!(
                "port {service_port} targets the container port named {target_port:?}, which {} declare with protocol {protocol}: {}; their endpoints leave this port out, so it has {} backends",
                if *all_pods {
                    "no matching pod does"
                } else {
                    "these pods do not"
                },
                list(pods),
                if *all_pods { "no" } else { "fewer" },
            ),
            Finding::SlicesBehind { expected, observed } => format!(
                "the pods call for {expected} ready endpoint(s) but the EndpointSlices hold {observed}: the EndpointSlice controller has not written them (not running, or not caught up yet)"
            ),
        }
    }
}

/// Explains one Service from the objects (pure).
pub fn explain(inputs: &ExplainInputs<'_>) -> Explanation {
    let service = inputs.service;
    let summary = summarize(service);
    let spec = service.spec.as_ref();
    let service_ports: &[ServicePort] = spec.and_then(|s| s.ports.as_deref()).unwrap_or(&[]);
    let ports: Vec<PortMapping> = service_ports.iter().map(port_mapping).collect();
    let external_name = summary.type_ == "ExternalName";

    let in_namespace: Vec<&Pod> = inputs
        .pods
        .iter()
        .filter(|p| namespace_of(&p.metadata) == summary.namespace)
        .collect();
    let matched: Vec<(&Pod, PodInfo)> = match (&summary.selector, external_name) {
        (Some(selector), false) => {
            let mut matched: Vec<(&Pod, PodInfo)> = in_namespace
                .iter()
                .map(|p| (*p, PodInfo::from_pod(p)))
                .filter(|(_, info)| info.matches_selector(selector))
                .collect();
            matched.sort_by(|a, b| a.1.name.cmp(&b.1.name));
            matched
        }
        _ => Vec::new(),
    };
    let pods: Vec<PodReport> = matched
        .iter()
        .map(|(pod, info)| {
            pod_report(
                pod,
                info,
                service_ports,
                &ports,
                summary.publish_not_ready_addresses,
            )
        })
        .collect();

    let endpoint_slices = slice_reports(inputs.endpoint_slices, &summary);
    let endpoints = inputs
        .endpoints
        .iter()
        .find(|e| {
            namespace_of(&e.metadata) == summary.namespace
                && e.metadata.name.as_deref() == Some(summary.name.as_str())
        })
        .map(endpoints_report);

    let pod_env = PodEnv {
        namespace: summary.namespace.clone(),
        enable_service_links: true,
        services_as_of: None,
    };
    let visible = env_vars::visible_services(&pod_env, inputs.services);
    let includes_service = visible.iter().any(|s| {
        namespace_of(&s.metadata) == summary.namespace
            && s.metadata.name.as_deref() == Some(summary.name.as_str())
    });
    let environment = EnvironmentReport {
        namespace: summary.namespace.clone(),
        enable_service_links: true,
        variables: env_vars::service_env(&pod_env, inputs.services),
        includes_service,
    };

    let verdict = verdict(
        inputs,
        &summary,
        &ports,
        &in_namespace,
        &pods,
        &endpoint_slices,
        endpoints.as_ref(),
    );
    Explanation {
        service: summary,
        ports,
        pods,
        endpoint_slices,
        endpoints,
        environment,
        dns: dns_report(inputs),
        verdict,
    }
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

fn summarize(service: &Service) -> ServiceSummary {
    let spec = service.spec.as_ref();
    let cluster_ips = spec
        .and_then(|s| s.cluster_ips.clone())
        .filter(|ips| !ips.is_empty())
        .or_else(|| {
            spec.and_then(|s| s.cluster_ip.clone())
                .filter(|ip| !ip.is_empty())
                .map(|ip| vec![ip])
        })
        .unwrap_or_default();
    ServiceSummary {
        namespace: namespace_of(&service.metadata).to_owned(),
        name: service.metadata.name.clone().unwrap_or_default(),
        type_: spec
            .and_then(|s| s.type_.clone())
            .unwrap_or_else(|| "ClusterIP".to_owned()),
        cluster_ips,
        external_name: spec.and_then(|s| s.external_name.clone()),
        selector: spec.and_then(|s| s.selector.clone()),
        publish_not_ready_addresses: spec
            .and_then(|s| s.publish_not_ready_addresses)
            .unwrap_or(false),
    }
}

fn port_mapping(port: &ServicePort) -> PortMapping {
    PortMapping {
        name: port.name.clone().unwrap_or_default(),
        protocol: service_port_protocol(port).to_owned(),
        port: port.port,
        target_port: match &port.target_port {
            None => port.port.to_string(),
            Some(IntOrString::Int(n)) => n.to_string(),
            Some(IntOrString::String(name)) => name.clone(),
        },
        node_port: port.node_port,
    }
}

fn pod_report(
    pod: &Pod,
    info: &PodInfo,
    service_ports: &[ServicePort],
    mappings: &[PortMapping],
    publish_not_ready: bool,
) -> PodReport {
    let status = pod.status.as_ref();
    let conditions = info.endpoint_conditions(publish_not_ready);
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let not_ready = match ready_condition {
        Some(c) if c.status == "True" => None,
        Some(c) => Some(ConditionReport {
            status: c.status.clone(),
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        }),
        None => Some(ConditionReport {
            status: "Missing".to_owned(),
            reason: String::new(),
            message: "the pod has no Ready condition (no kubelet has reported on it)".to_owned(),
        }),
    };
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| ContainerReport {
                    name: c.name.clone(),
                    ready: c.ready,
                    restart_count: c.restart_count,
                    state: state_text(c.state.as_ref()),
                })
                .collect()
        })
        .unwrap_or_default();
    let named_target_ports = service_ports
        .iter()
        .zip(mappings)
        .filter_map(|(sp, mapping)| {
            let Some(IntOrString::String(name)) = &sp.target_port else {
                return None;
            };
            let resolved = info.find_port(sp).ok();
            Some(TargetPortReport {
                service_port: mapping.label(),
                target_port: name.clone(),
                container_port: resolved,
                problem: resolved.is_none().then(|| {
                    format!(
                        "no container port named {name:?} with protocol {}",
                        mapping.protocol
                    )
                }),
            })
        })
        .collect();
    PodReport {
        name: info.name.clone(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".to_owned()),
        ips: info.ips.clone(),
        node: info.node_name.to_string(),
        is_endpoint: info.should_be_in_endpoints(true),
        ready: conditions.ready,
        serving: conditions.serving,
        terminating: conditions.terminating,
        not_ready,
        containers,
        named_target_ports,
    }
}

fn state_text(state: Option<&ContainerState>) -> String {
    let Some(state) = state else {
        return "unknown".to_owned();
    };
    if let Some(waiting) = &state.waiting {
        let mut text = "waiting".to_owned();
        for part in [&waiting.reason, &waiting.message].into_iter().flatten() {
            text.push_str(": ");
            text.push_str(part);
        }
        return text;
    }
    if let Some(done) = &state.terminated {
        let reason = done.reason.as_deref().unwrap_or("Terminated");
        return format!("terminated: {reason} (exit code {})", done.exit_code);
    }
    if state.running.is_some() {
        return "running".to_owned();
    }
    "unknown".to_owned()
}

fn endpoint_port_label(name: Option<&str>, port: Option<i32>, protocol: Option<&str>) -> String {
    let port = port.map_or_else(|| "<all>".to_owned(), |p| p.to_string());
    let protocol = protocol.unwrap_or("TCP");
    match name.filter(|n| !n.is_empty()) {
        Some(name) => format!("{name} {port}/{protocol}"),
        None => format!("{port}/{protocol}"),
    }
}

fn slice_reports(slices: &[EndpointSlice], service: &ServiceSummary) -> Vec<SliceReport> {
    let mut out: Vec<SliceReport> = slices
        .iter()
        .filter(|s| {
            namespace_of(&s.metadata) == service.namespace
                && s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_SERVICE_NAME))
                    .is_some_and(|n| *n == service.name)
        })
        .map(|s| SliceReport {
            name: s.metadata.name.clone().unwrap_or_default(),
            address_type: s.address_type.clone(),
            managed_by: s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_MANAGED_BY))
                .cloned()
                .unwrap_or_default(),
            ports: s
                .ports
                .iter()
                .flatten()
                .map(|p| endpoint_port_label(p.name.as_deref(), p.port, p.protocol.as_deref()))
                .collect(),
            endpoints: s
                .endpoints
                .iter()
                .map(|e| {
                    let c = e.conditions.as_ref();
                    // Unset conditions read as the API documents them for consumers.
                    let ready = c.and_then(|c| c.ready).unwrap_or(true);
                    EndpointReport {
                        addresses: e.addresses.clone(),
                        ready,
                        serving: c.and_then(|c| c.serving).unwrap_or(ready),
                        terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                        pod: e
                            .target_ref
                            .as_ref()
                            .filter(|t| t.kind.as_deref().is_none_or(|k| k == "Pod"))
                            .and_then(|t| t.name.clone()),
                        node: e.node_name.clone(),
                    }
                })
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn endpoints_report(endpoints: &Endpoints) -> EndpointsReport {
    let address = |a: &k8s_openapi::api::core::v1::EndpointAddress| match a
        .target_ref
        .as_ref()
        .and_then(|t| t.name.as_deref())
    {
        Some(pod) => format!("{} ({pod})", a.ip),
        None => a.ip.clone(),
    };
    let mut report = EndpointsReport {
        addresses: Vec::new(),
        not_ready_addresses: Vec::new(),
        ports: Vec::new(),
    };
    for subset in endpoints.subsets.iter().flatten() {
        report
            .addresses
            .extend(subset.addresses.iter().flatten().map(address));
        report
            .not_ready_addresses
            .extend(subset.not_ready_addresses.iter().flatten().map(address));
        for p in subset.ports.iter().flatten() {
            let label = endpoint_port_label(p.name.as_deref(), Some(p.port), p.protocol.as_deref());
            if !report.ports.contains(&label) {
                report.ports.push(label);
            }
        }
    }
    report
}

/// Ready endpoints in the slices, each pod (or address set, for endpoints without a pod)
/// counted once across address families.
fn ready_in_slices(slices: &[SliceReport]) -> usize {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.ready)
        .map(|e| e.pod.clone().unwrap_or_else(|| e.addresses.join(",")))
        .collect::<BTreeSet<_>>()
        .len()
}

fn nearest_pod(selector: &BTreeMap<String, String>, pods: &[&Pod]) -> Option<NearestPod> {
    let empty = BTreeMap::new();
    pods.iter()
        .map(|pod| {
            let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
            let mismatches: Vec<LabelMismatch> = selector
                .iter()
                .filter(|(k, v)| labels.get(*k) != Some(*v))
                .map(|(k, v)| LabelMismatch {
                    key: k.clone(),
                    want: v.clone(),
                    have: labels.get(k).cloned(),
                })
                .collect();
            NearestPod {
                pod: pod.metadata.name.clone().unwrap_or_default(),
                matching: selector.len() - mismatches.len(),
                mismatches,
            }
        })
        // Most labels matched; then fewest keys missing (a typo in a value is nearer than a
        // missing key); then the wrong values nearest to the wanted ones; then by name.
        .min_by(|a, b| {
            let missing = |n: &NearestPod| n.mismatches.iter().filter(|m| m.have.is_none()).count();
            let distance = |n: &NearestPod| -> usize {
                n.mismatches
                    .iter()
                    .filter_map(|m| m.have.as_deref().map(|have| edit_distance(have, &m.want)))
                    .sum()
            };
            b.matching
                .cmp(&a.matching)
                .then(missing(a).cmp(&missing(b)))
                .then(distance(a).cmp(&distance(b)))
                .then(a.pod.cmp(&b.pod))
        })
}

/// Levenshtein distance over chars: how far a label value is from the wanted one.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn verdict(
    inputs: &ExplainInputs<'_>,
    service: &ServiceSummary,
    ports: &[PortMapping],
    in_namespace: &[&Pod],
    pods: &[PodReport],
    slices: &[SliceReport],
    endpoints: Option<&EndpointsReport>,
) -> Verdict {
    let mut findings = Vec::new();
    let observed = ready_in_slices(slices);
    if service.type_ == "ExternalName" {
        findings.push(Finding::ExternalName {
            external_name: service.external_name.clone().unwrap_or_default(),
        });
        return Verdict {
            ready_endpoints: 0,
            summary: "no endpoints, by design".to_owned(),
            findings,
        };
    }
    let Some(selector) = &service.selector else {
        let ready = if slices.is_empty() {
            endpoints.map_or(0, |e| e.addresses.len())
        } else {
            observed
        };
        findings.push(Finding::NoSelector {
            endpoints_object: endpoints.is_some(),
            slices: slices.len(),
        });
        return Verdict {
            ready_endpoints: ready,
            summary: if ready == 0 {
                "no ready endpoints".to_owned()
            } else {
                format!("{ready} ready endpoint(s), written by hand (the Service has no selector)")
            },
            findings,
        };
    };

    if pods.is_empty() {
        let other_namespaces: Vec<String> = inputs
            .pods
            .iter()
            .filter(|p| namespace_of(&p.metadata) != service.namespace)
            .filter(|p| PodInfo::from_pod(p).matches_selector(selector))
            .map(|p| {
                format!(
                    "{}/{}",
                    namespace_of(&p.metadata),
                    p.metadata.name.as_deref().unwrap_or("")
                )
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        findings.push(Finding::NoPodMatches {
            selector: selector_text(selector),
            nearest: nearest_pod(selector, in_namespace),
            other_namespaces,
        });
    }
    let names = |keep: &dyn Fn(&PodReport) -> bool| -> Vec<String> {
        pods.iter()
            .filter(|p| keep(p))
            .map(|p| p.name.clone())
            .collect()
    };
    let finished = names(&|p: &PodReport| p.phase == "Succeeded" || p.phase == "Failed");
    let without_ip =
        names(&|p: &PodReport| p.ips.is_empty() && p.phase != "Succeeded" && p.phase != "Failed");
    let not_ready = names(&|p: &PodReport| p.is_endpoint && !p.serving);
    let terminating = names(&|p: &PodReport| p.is_endpoint && p.terminating);
    type MakeFinding = fn(Vec<String>) -> Finding;
    let groups: [(Vec<String>, MakeFinding); 4] = [
        (without_ip, |pods| Finding::PodsWithoutIp { pods }),
        (not_ready, |pods| Finding::PodsNotReady { pods }),
        (terminating, |pods| Finding::PodsTerminating { pods }),
        (finished, |pods| Finding::PodsFinished { pods }),
    ];
    for (list, make) in groups {
        if !list.is_empty() {
            findings.push(make(list));
        }
    }
    let known_nodes: Option<BTreeSet<&str>> = inputs.nodes.map(|nodes| {
        nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect()
    });
    // The planner keeps such pods when the Service publishes not-ready addresses.
    let on_known_node = |p: &PodReport| {
        service.publish_not_ready_addresses
            || known_nodes
                .as_ref()
                .is_none_or(|known| known.contains(p.node.as_str()))
    };
    let unknown: Vec<String> = pods
        .iter()
        .filter(|p| p.is_endpoint && !on_known_node(p))
        .map(|p| match p.node.as_str() {
            "" => format!("{} (no node)", p.name),
            node => format!("{} ({node})", p.name),
        })
        .collect();
    if !unknown.is_empty() {
        findings.push(Finding::PodsOnUnknownNodes { pods: unknown });
    }
    for port in ports {
        let label = port.label();
        let lacking: Vec<String> = pods
            .iter()
            .filter(|p| {
                p.named_target_ports
                    .iter()
                    .any(|t| t.service_port == label && t.container_port.is_none())
            })
            .map(|p| p.name.clone())
            .collect();
        if !lacking.is_empty() {
            findings.push(Finding::NamedPortMissing {
                service_port: label,
                target_port: port.target_port.clone(),
                protocol: port.protocol.clone(),
                all_pods: lacking.len() == pods.len(),
                pods: lacking,
            });
        }
    }
    let expected = pods
        .iter()
        .filter(|p| p.is_endpoint && p.ready && on_known_node(p))
        .count();
    let ready_endpoints = if inputs.slices_observed {
        if observed < expected {
            findings.push(Finding::SlicesBehind { expected, observed });
        }
        observed
    } else {
        expected
    };
    let summary = match (ready_endpoints, findings.first()) {
        // The findings say why, each on its own line.
        (0, _) => "no ready endpoints".to_owned(),
        (n, None) => format!("{n} ready endpoint(s); nothing stands in the way"),
        (n, Some(_)) => format!("{n} ready endpoint(s), with the problems below"),
    };
    Verdict {
        ready_endpoints,
        summary,
        findings,
    }
}
