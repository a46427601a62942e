//! The Service environment variables kubelet injects into containers: upstream's
//! `pkg/kubelet/envvars` (`FromServices`) and the selection and merge of
//! `pkg/kubelet/kubelet_pods.go` (`getServiceEnvVarMap`, `makeEnvironmentVariables`).
//!
//! Upstream keeps the variables in Go maps, so the order a container sees is random. Here the
//! order is fixed: Services by name, each Service's variables in `FromServices` order; a name
//! that two Services both produce (possible only with contrived names, e.g. a Service `foo`
//! with port 80 and a Service `foo-port-80-tcp`) keeps its first place and takes the later
//! Service's value, where upstream's winner is whichever its map visits last.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

/// The Service that is always injected (upstream's `masterServices`), from `default`.
pub const MASTER_SERVICE: &str = "kubernetes";
/// The namespace the master Service is taken from.
pub const MASTER_SERVICE_NAMESPACE: &str = "default";

/// One environment variable, as `env` prints it: `name=value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl EnvVar {
    /// A variable from its name and value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl std::fmt::Display for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// Why kubelet cannot build a container's environment (upstream's texts); it retries later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvVarError {
    /// The pod's `spec.enableServiceLinks` is unset (the API server always defaults it).
    #[error("nil pod.spec.enableServiceLinks encountered, cannot construct envvars")]
    NilEnableServiceLinks,
    /// kubelet's Service informer has not listed once yet, and the pod is not static.
    #[error("services have not yet been read at least once, cannot construct envvars")]
    ServicesNotSynced,
}

/// What of a pod decides which Services it sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEnv {
    /// The pod's namespace.
    pub namespace: String,
    /// `spec.enableServiceLinks` (the API default is true).
    pub enable_service_links: bool,
    /// When the container starts: a Service created later is not in kubelet's cache yet, so it
    /// gets no variables. `None` takes every Service given. kubelet builds the environment at
    /// each container start, so a restarted container does see Services created since.
    pub services_as_of: Option<Timestamp>,
}

impl PodEnv {
    /// A pod's view as kubelet takes it, with the pod's creation time standing in for the
    /// container's start (the start is later, by scheduling and image pulls at least).
    pub fn of_pod(pod: &Pod) -> Result<PodEnv, EnvVarError> {
        let enable_service_links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .ok_or(EnvVarError::NilEnableServiceLinks)?;
        Ok(PodEnv {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            enable_service_links,
            services_as_of: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        })
    }
}

/// kubelet's view of the Services when it starts a container.
#[derive(Clone, Copy, Debug)]
pub enum ServiceCache<'a> {
    /// A kubelet without an API server (standalone): no Service variables at all.
    Absent,
    /// The informer has not listed once yet: only static pods get an environment (an empty one).
    NotSynced,
    /// The Services of every namespace.
    Synced(&'a [Service]),
}

/// upstream's `IsServiceIPSet`: a ClusterIP that is neither `None` (headless) nor empty
/// (ExternalName, or not yet allocated).
pub fn is_service_ip_set(service: &Service) -> bool {
    !matches!(cluster_ip(service), "" | "None")
}

fn cluster_ip(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("")
}

/// upstream's `makeEnvVariableName`: upper case, `-` to `_` (Service and port names are DNS
/// labels, so there is nothing else to mangle).
pub fn env_var_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// Go's `net.JoinHostPort`: brackets around a host that holds a colon (IPv6).
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The variables of `services` in the order given (upstream's `FromServices`), skipping those
/// without a ClusterIP. Per Service: `_SERVICE_HOST`, `_SERVICE_PORT` (first port), one
/// `_SERVICE_PORT_<NAME>` per named port, then the Docker-link variables: `_PORT` (first port)
/// and `_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT`, `_ADDR` per port. The ClusterIP is used
/// as written (`2001:DB8::` stays upper case). A Service with a ClusterIP but no ports, which
/// the API server refuses, gets only `_SERVICE_HOST` (upstream would index out of range).
pub fn from_services<'a>(services: impl IntoIterator<Item = &'a Service>) -> Vec<EnvVar> {
    let mut out = Vec::new();
    for service in services {
        if !is_service_ip_set(service) {
            continue;
        }
        let ip = cluster_ip(service);
        let prefix = env_var_name(service.metadata.name.as_deref().unwrap_or(""));
        let ports = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .unwrap_or(&[]);
        out.push(EnvVar::new(format!("{prefix}_SERVICE_HOST"), ip));
        let Some(first) = ports.first() else {
            continue;
        };
        let service_port = format!("{prefix}_SERVICE_PORT");
        out.push(EnvVar::new(&service_port, first.port.to_string()));
        for port in ports {
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                out.push(EnvVar::new(
                    format!("{service_port}_{}", env_var_name(name)),
                    port.port.to_string(),
                ));
            }
        }
        for (index, port) in ports.iter().enumerate() {
            let protocol = port
                .protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            let lower = protocol.to_lowercase();
            let url = format!("{lower}://{}", join_host_port(ip, port.port));
            if index == 0 {
                // Docker names the first port's link without the port and protocol.
                out.push(EnvVar::new(format!("{prefix}_PORT"), &url));
            }
            let link = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
            out.push(EnvVar::new(&link, url));
            out.push(EnvVar::new(format!("{link}_PROTO"), &lower));
            out.push(EnvVar::new(format!("{link}_PORT"), port.port.to_string()));
            out.push(EnvVar::new(format!("{link}_ADDR"), ip));
        }
    }
    out
}

fn created_after(service: &Service, as_of: Option<Timestamp>) -> bool {
    match (as_of, service.metadata.creation_timestamp.as_ref()) {
        (Some(as_of), Some(created)) => created.0 > as_of,
        // No cut-off, or a Service as written in a file (not stored yet): it counts.
        _ => false,
    }
}

/// The Services a pod gets variables for (upstream's `getServiceEnvVarMap` selection), sorted
/// by name: those with a ClusterIP in the pod's namespace when service links are enabled, and
/// always `kubernetes` from `default` — unless links are enabled and the pod's own namespace
/// has a `kubernetes` Service, which then wins. Services created after `services_as_of` are
/// left out.
pub fn visible_services<'a>(pod: &PodEnv, services: &'a [Service]) -> Vec<&'a Service> {
    let mut by_name: std::collections::BTreeMap<&str, &Service> = Default::default();
    for service in services {
        if !is_service_ip_set(service) || created_after(service, pod.services_as_of) {
            continue;
        }
        let name = service.metadata.name.as_deref().unwrap_or("");
        let namespace = service.metadata.namespace.as_deref().unwrap_or("");
        if namespace == MASTER_SERVICE_NAMESPACE && name == MASTER_SERVICE {
            by_name.entry(name).or_insert(service);
        } else if namespace == pod.namespace && pod.enable_service_links {
            by_name.insert(name, service);
        }
    }
    by_name.into_values().collect()
}

/// The Service variables kubelet injects into a pod's containers, from the Services of every
/// namespace (see [`visible_services`] for which count, and the module doc for the order).
pub fn service_env(pod: &PodEnv, services: &[Service]) -> Vec<EnvVar> {
    dedup_last_value_wins(from_services(visible_services(pod, services)))
}

fn dedup_last_value_wins(vars: Vec<EnvVar>) -> Vec<EnvVar> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<EnvVar> = Vec::with_capacity(vars.len());
    for var in vars {
        match index.get(&var.name) {
            Some(&at) => out[at].value = var.value,
            None => {
                index.insert(var.name.clone(), out.len());
                out.push(var);
            }
        }
    }
    out
}

/// A container's whole environment (upstream's `makeEnvironmentVariables`, for literal `env`
/// values; `envFrom` and `valueFrom` sources are not modelled): the declared variables in
/// order, each non-empty value `$(VAR)`-expanded against the variables declared before it and
/// then the Service variables; then the Service variables the container did not declare.
pub fn container_env(
    pod: &PodEnv,
    static_pod: bool,
    declared: &[EnvVar],
    cache: ServiceCache<'_>,
) -> Result<Vec<EnvVar>, EnvVarError> {
    let services = match cache {
        ServiceCache::Absent => Vec::new(),
        ServiceCache::NotSynced if !static_pod => return Err(EnvVarError::ServicesNotSynced),
        ServiceCache::NotSynced => Vec::new(),
        ServiceCache::Synced(services) => service_env(pod, services),
    };
    let service_values: HashMap<&str, &str> = services
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    let mut out: Vec<EnvVar> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for var in declared {
        let value = if var.value.is_empty() {
            String::new()
        } else {
            expand(&var.value, |name| {
                index
                    .get(name)
                    .map(|&at| out[at].value.as_str())
                    .or_else(|| service_values.get(name).copied())
            })
        };
        match index.get(&var.name) {
            Some(&at) => out[at].value = value,
            None => {
                index.insert(var.name.clone(), out.len());
                out.push(EnvVar::new(&var.name, value));
            }
        }
    }
    for var in services {
        if !index.contains_key(&var.name) {
            out.push(var);
        }
    }
    Ok(out)
}

/// upstream's `expansion.Expand`: `$(NAME)` becomes the mapped value, or stays as written when
/// unmapped; `$$` is an escaped `$`; any other `$x` and an unclosed `$(` stay as written.
pub fn expand<'m>(input: &str, mapping: impl Fn(&str) -> Option<&'m str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(next) = after.chars().next() else {
            // A trailing `$` is kept.
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match mapping(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            other => {
                out.push('$');
                out.push(other);
                rest = &after[other.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
