//! The controller comparison of `scripts/bench-vs-upstream --only controller` (issue 13, item 1):
//! which controller is compared on which workload, what the harness's watches make of the objects
//! a controller writes (is every Service's EndpointSlices / Endpoints / mirrored slices correct?
//! when did a change reach them?), the API request counts, and the table of both peers' runs.
//! Plain data in, plain data out; the binary `bench-vs-upstream` drives the clusters.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Instant;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label kube-apiserver's slices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice.
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// One of the three controllers compared with kube-controller-manager's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bench {
    /// The EndpointSlice controller: pods selected by Services → EndpointSlices.
    EndpointSlice,
    /// The legacy Endpoints controller: pods selected by Services → v1 Endpoints.
    Endpoints,
    /// The EndpointSlice-mirroring controller: user-written Endpoints of selector-less Services
    /// → EndpointSlices.
    Mirroring,
}

impl Bench {
    /// Every bench, in the order a full run takes them.
    pub const ALL: [Bench; 3] = [Bench::EndpointSlice, Bench::Endpoints, Bench::Mirroring];

    /// The benches `--controller NAME` selects (`all` is every one).
    pub fn select(name: &str) -> Option<Vec<Bench>> {
        match name {
            "all" => Some(Self::ALL.to_vec()),
            other => Self::ALL
                .into_iter()
                .find(|b| b.label() == other)
                .map(|b| vec![b]),
        }
    }

    /// The name `--controller` takes.
    pub fn label(self) -> &'static str {
        match self {
            Bench::EndpointSlice => "endpointslice",
            Bench::Endpoints => "endpoints",
            Bench::Mirroring => "mirroring",
        }
    }

    /// The `--controllers` value that runs it alone: the same name in kube-controller-manager
    /// and in `svcplane controller-manager`.
    pub fn controller(self) -> &'static str {
        match self {
            Bench::EndpointSlice => "endpointslice",
            Bench::Endpoints => "endpoint",
            Bench::Mirroring => "endpointslicemirroring",
        }
    }

    /// The number of Services when `--services` does not say: the Endpoints and mirroring
    /// controllers are compared at a smaller scale than the EndpointSlice controller.
    pub fn default_services(self, smoke: bool) -> usize {
        match (self, smoke) {
            (Bench::EndpointSlice, false) => 2_000,
            (Bench::EndpointSlice, true) => 100,
            (_, false) => 500,
            (_, true) => 20,
        }
    }

    /// Seconds of churn when `--flip-seconds` does not say.
    pub fn default_flip_seconds(self, smoke: bool) -> usize {
        match (self, smoke) {
            (_, false) => 60,
            (Bench::EndpointSlice, true) => 5,
            (_, true) => 1,
        }
    }

    /// Whether the workload has pods selected by the Services (else selector-less Services with
    /// user-written Endpoints).
    pub fn has_pods(self) -> bool {
        self != Bench::Mirroring
    }

    /// The resource the controller writes, as `apiserver_request_total` names it.
    pub fn output_resource(self) -> &'static str {
        match self {
            Bench::Endpoints => "endpoints",
            Bench::EndpointSlice | Bench::Mirroring => "endpointslices",
        }
    }

    /// The `managed-by` label value a slice written by the controller carries.
    pub fn managed_by(self) -> Option<&'static str> {
        match self {
            Bench::EndpointSlice => Some("endpointslice-controller.k8s.io"),
            Bench::Mirroring => Some("endpointslicemirroring-controller.k8s.io"),
            Bench::Endpoints => None,
        }
    }

    /// What the controller writes, in the table's words.
    fn output_noun(self) -> &'static str {
        match self {
            Bench::EndpointSlice => "slices",
            Bench::Endpoints => "Endpoints",
            Bench::Mirroring => "mirrored slices",
        }
    }

    /// The kind named in the writes rows.
    fn output_kind(self) -> &'static str {
        match self {
            Bench::Endpoints => "Endpoints",
            Bench::EndpointSlice | Bench::Mirroring => "EndpointSlice",
        }
    }

    /// One unit of churn, in the table's words.
    fn change_noun(self) -> &'static str {
        match self {
            Bench::Mirroring => "change",
            Bench::EndpointSlice | Bench::Endpoints => "flip",
        }
    }

    /// The latency measured during the churn, in the table's words.
    fn latency_noun(self) -> &'static str {
        match self {
            Bench::EndpointSlice => "pod Ready → slice written",
            Bench::Endpoints => "pod Ready → Endpoints written",
            Bench::Mirroring => "Endpoints written → mirrored slice written",
        }
    }

    /// The markers of its section in docs/performance.md.
    pub fn markers(self) -> (&'static str, &'static str) {
        match self {
            Bench::EndpointSlice => (
                "<!-- bench-vs-upstream:begin -->",
                "<!-- bench-vs-upstream:end -->",
            ),
            Bench::Endpoints => (
                "<!-- bench-vs-upstream:endpoints:begin -->",
                "<!-- bench-vs-upstream:endpoints:end -->",
            ),
            Bench::Mirroring => (
                "<!-- bench-vs-upstream:mirroring:begin -->",
                "<!-- bench-vs-upstream:mirroring:end -->",
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The workload

/// The workload's shape. Endpoint `i` is the `i % per_service`th of Service `svc-{i /
/// per_service}`: pod `svc-S-K` with IP [`Workload::pod_ip`] where there are pods, else that
/// address in the Service's user-written Endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// The controller compared.
    pub bench: Bench,
    /// How many Services.
    pub services: usize,
    /// Endpoints per Service.
    pub per_service: usize,
    /// How many namespaces the Services are spread over.
    pub namespaces: usize,
    /// How many Nodes the pods are spread over (none without pods).
    pub nodes: usize,
    /// Churn: how many changes are made in all.
    pub flips: usize,
}

impl Workload {
    /// The shape for `services` × `per_service` endpoints and `flips` changes.
    pub fn new(bench: Bench, services: usize, per_service: usize, flips: usize) -> Self {
        let endpoints = services * per_service;
        Self {
            bench,
            services,
            per_service,
            namespaces: (services / 20).clamp(1, 100),
            nodes: if bench.has_pods() {
                endpoints.div_ceil(110).max(3)
            } else {
                0
            },
            flips,
        }
    }

    /// Endpoints (pods, or addresses) in all.
    pub fn pods(&self) -> usize {
        self.services * self.per_service
    }

    /// The namespace of Service `service`.
    pub fn namespace(&self, service: usize) -> String {
        format!("bench-{}", service % self.namespaces)
    }

    /// The name of pod `i`.
    pub fn pod_name(&self, i: usize) -> String {
        format!("svc-{}-{}", i / self.per_service, i % self.per_service)
    }

    /// The address of endpoint `i`. Pod IPs are data in the API only, never configured anywhere.
    pub fn pod_ip(i: usize) -> String {
        format!("10.{}.{}.{}", 64 + i / 62_500, (i / 250) % 250, i % 250 + 1)
    }

    /// The endpoint index of an address [`Workload::pod_ip`] gave, if it is one of the
    /// workload's.
    pub fn parse_ip(&self, ip: &str) -> Option<usize> {
        let octets: Vec<usize> = ip
            .split('.')
            .map(|o| o.parse().ok())
            .collect::<Option<_>>()?;
        let [10, a, b, c] = octets[..] else {
            return None;
        };
        if !(64..=255).contains(&a) || b >= 250 || !(1..=250).contains(&c) {
            return None;
        }
        let i = (a - 64) * 62_500 + b * 250 + c - 1;
        (i < self.pods()).then_some(i)
    }

    /// The Node pod `i` runs on.
    pub fn node_of(&self, i: usize) -> usize {
        i % self.nodes.max(1)
    }

    /// The pod index of `svc-S-K`, if it names one of the workload's pods.
    pub fn parse_pod(&self, name: &str) -> Option<usize> {
        let (s, k) = name.strip_prefix("svc-")?.split_once('-')?;
        let (s, k): (usize, usize) = (s.parse().ok()?, k.parse().ok()?);
        (s < self.services && k < self.per_service).then_some(s * self.per_service + k)
    }

    /// The Service index of `svc-S`, if it names one of the workload's Services.
    pub fn parse_service(&self, name: &str) -> Option<usize> {
        let s: usize = name.strip_prefix("svc-")?.parse().ok()?;
        (s < self.services).then_some(s)
    }

    /// The target reference a correct endpoint `i` names: its pod, or nothing for the
    /// user-written Endpoints the mirroring workload holds.
    pub fn expected_target(&self, i: usize) -> Option<String> {
        self.bench.has_pods().then(|| self.pod_name(i))
    }

    /// The ports every correct endpoint has: the Service's one unnamed port, 80 → the pods'
    /// `http` (8080), or 8080 in the user-written Endpoints.
    pub fn expected_ports() -> Vec<ObservedPort> {
        vec![(String::new(), 8080, "TCP".into())]
    }

    /// The endpoints the churn changes, cycled through: spread evenly over the pods; for the
    /// mirroring workload at most one address per Service, so that two changes of one Endpoints
    /// object are never in flight together.
    pub fn flip_endpoints(&self) -> Vec<usize> {
        if self.bench.has_pods() {
            let every = (self.pods() / self.flips.max(1)).max(1);
            (0..self.pods()).step_by(every).collect()
        } else {
            let every = (self.services / self.flips.max(1)).max(1);
            (0..self.services)
                .step_by(every)
                .map(|s| s * self.per_service)
                .collect()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the harness sees on its watches

/// A port as an object lists it: name, port, protocol.
pub type ObservedPort = (String, i32, String);

/// One endpoint as a controller wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEndpoint {
    /// Its (first) address.
    pub address: String,
    /// The name its targetRef gives.
    pub target: Option<String>,
    /// Ready (a slice's `conditions.ready`; `addresses` rather than `notReadyAddresses`).
    pub ready: bool,
    /// The ports listed with it (a slice's ports, an Endpoints subset's ports), sorted.
    pub ports: Vec<ObservedPort>,
}

/// One object a controller wrote for one of the workload's Services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The Service index.
    pub service: usize,
    /// Its endpoints.
    pub endpoints: Vec<ObservedEndpoint>,
}

/// A slice written for one of the workload's Services by the bench's controller (its
/// `managed-by` label); `None` for any other slice.
pub fn observe_slice(w: &Workload, slice: &EndpointSlice) -> Option<Observed> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != w.bench.managed_by() {
        return None;
    }
    let service = w.parse_service(labels.get(SERVICE_NAME_LABEL)?)?;
    let mut ports: Vec<ObservedPort> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            )
        })
        .collect();
    ports.sort();
    let endpoints = slice
        .endpoints
        .iter()
        .map(|e| ObservedEndpoint {
            address: e.addresses.first().cloned().unwrap_or_default(),
            target: e.target_ref.as_ref().and_then(|r| r.name.clone()),
            ready: e.conditions.as_ref().and_then(|c| c.ready) == Some(true),
            ports: ports.clone(),
        })
        .collect();
    Some(Observed { service, endpoints })
}

/// The Endpoints object of one of the workload's Services (named after it); `None` for any
/// other.
pub fn observe_endpoints(w: &Workload, endpoints: &Endpoints) -> Option<Observed> {
    let service = w.parse_service(endpoints.metadata.name.as_deref()?)?;
    let mut observed = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let mut ports: Vec<ObservedPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                )
            })
            .collect();
        ports.sort();
        for (addresses, ready) in [
            (&subset.addresses, true),
            (&subset.not_ready_addresses, false),
        ] {
            observed.extend(addresses.iter().flatten().map(|a| ObservedEndpoint {
                address: a.ip.clone(),
                target: a.target_ref.as_ref().and_then(|r| r.name.clone()),
                ready,
                ports: ports.clone(),
            }));
        }
    }
    Some(Observed {
        service,
        endpoints: observed,
    })
}

/// Whether `objects` (everything written for Service `service`) hold exactly its endpoints, each
/// once, all ready, with their target and ports, and nothing else.
pub fn service_correct<'a>(
    w: &Workload,
    service: usize,
    objects: impl IntoIterator<Item = &'a Observed>,
) -> bool {
    let ports = Workload::expected_ports();
    let mut seen = vec![false; w.per_service];
    let mut count = 0;
    for endpoint in objects.into_iter().flat_map(|o| &o.endpoints) {
        let Some(i) = w
            .parse_ip(&endpoint.address)
            .filter(|i| i / w.per_service == service)
        else {
            return false;
        };
        let k = i % w.per_service;
        if seen[k]
            || !endpoint.ready
            || endpoint.target != w.expected_target(i)
            || endpoint.ports != ports
        {
            return false;
        }
        seen[k] = true;
        count += 1;
    }
    count == w.per_service
}

/// A change the churn made, not yet seen written by the controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pending {
    /// The readiness the change gave the endpoint.
    pub ready: bool,
    /// When the harness's watch of the changed object (pod, or Endpoints) saw it.
    pub source_seen: Option<Instant>,
    /// When the harness's watch of the controller's objects saw it, if that came first.
    pub output_seen: Option<Instant>,
}

/// The controller's objects as the harness's watches see them: which Services are correct, when
/// all were, and how long each change took to reach them.
#[derive(Debug, Default)]
pub struct Tracker {
    /// object (ns/name) → what it holds.
    objects: HashMap<String, Observed>,
    /// Service index → its objects' keys.
    by_service: HashMap<usize, Vec<String>>,
    correct: Vec<bool>,
    /// How many Services are correct.
    pub correct_count: usize,
    /// When every Service was correct, the first time.
    pub converged_at: Option<Instant>,
    /// Churn: endpoint index → the change in flight.
    pub pending: HashMap<usize, Pending>,
    /// Churn: source seen → output seen, one per change (ms; negative when the output came
    /// first).
    pub latencies_ms: Vec<f64>,
}

impl Tracker {
    /// A tracker of `services` Services, none correct yet.
    pub fn new(services: usize) -> Self {
        Self {
            correct: vec![false; services],
            ..Self::default()
        }
    }

    /// A change is being made to endpoint `i`: it turns `ready`.
    pub fn expect_change(&mut self, i: usize, ready: bool) {
        self.pending.insert(
            i,
            Pending {
                ready,
                source_seen: None,
                output_seen: None,
            },
        );
    }

    /// The controller's object `key` was written (`observed`), or is no longer one of the
    /// workload's (`None`).
    pub fn apply_output(
        &mut self,
        w: &Workload,
        key: &str,
        observed: Option<Observed>,
        now: Instant,
    ) {
        let Some(observed) = observed else {
            self.delete_output(w, key, now);
            return;
        };
        for endpoint in &observed.endpoints {
            let Some(i) = w.parse_ip(&endpoint.address) else {
                continue;
            };
            let Some(pending) = self.pending.get_mut(&i) else {
                continue;
            };
            if pending.ready != endpoint.ready {
                continue;
            }
            match pending.source_seen {
                Some(seen) => {
                    self.latencies_ms
                        .push(now.duration_since(seen).as_secs_f64() * 1000.0);
                    self.pending.remove(&i);
                }
                None => {
                    pending.output_seen.get_or_insert(now);
                }
            }
        }
        let service = observed.service;
        if let Some(previous) = self.objects.insert(key.to_string(), observed) {
            if previous.service != service {
                self.unindex(key, previous.service);
                self.by_service
                    .entry(service)
                    .or_default()
                    .push(key.to_string());
                self.refresh(w, previous.service, now);
            }
        } else {
            self.by_service
                .entry(service)
                .or_default()
                .push(key.to_string());
        }
        self.refresh(w, service, now);
    }

    /// The controller's object `key` was deleted.
    pub fn delete_output(&mut self, w: &Workload, key: &str, now: Instant) {
        if let Some(previous) = self.objects.remove(key) {
            self.unindex(key, previous.service);
            self.refresh(w, previous.service, now);
        }
    }

    /// The changed object (pod, or user-written Endpoints) shows endpoint `i` as `ready`.
    pub fn apply_source(&mut self, i: usize, ready: bool, now: Instant) {
        let Some(pending) = self.pending.get_mut(&i) else {
            return;
        };
        if pending.ready != ready || pending.source_seen.is_some() {
            return;
        }
        pending.source_seen = Some(now);
        if let Some(output_seen) = pending.output_seen {
            // The output arrived first (the source watch lagged): a negative latency.
            self.latencies_ms
                .push(-(now.duration_since(output_seen).as_secs_f64() * 1000.0));
            self.pending.remove(&i);
        }
    }

    fn unindex(&mut self, key: &str, service: usize) {
        if let Some(keys) = self.by_service.get_mut(&service) {
            keys.retain(|k| k != key);
        }
    }

    fn refresh(&mut self, w: &Workload, service: usize, now: Instant) {
        let Some(was) = self.correct.get(service).copied() else {
            return;
        };
        let objects = self
            .by_service
            .get(&service)
            .into_iter()
            .flatten()
            .filter_map(|k| self.objects.get(k));
        let correct = service_correct(w, service, objects);
        if correct != was {
            self.correct[service] = correct;
            if correct {
                self.correct_count += 1;
            } else {
                self.correct_count -= 1;
            }
        }
        if self.correct_count == self.correct.len() && self.converged_at.is_none() {
            self.converged_at = Some(now);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// API requests

/// (verb, resource[/subresource]) → count.
pub type RequestCounts = BTreeMap<(String, String), f64>;

/// The (verb, resource) kube-apiserver's `apiserver_request_total` would file a request under;
/// `None` for non-resource paths.
pub fn request_key(method: &http::Method, uri: &http::Uri) -> Option<(String, String)> {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let resource = match rest {
        [] => return None,
        [resource] | [resource, _] => resource.to_string(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
    };
    let named = rest.len() >= 2;
    let query = uri.query().unwrap_or("");
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match *method {
        http::Method::GET if watch => "WATCH",
        http::Method::GET if named => "GET",
        http::Method::GET => "LIST",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE if named => "DELETE",
        http::Method::DELETE => "DELETECOLLECTION",
        _ => return None,
    };
    Some((verb.to_string(), resource))
}

/// `apiserver_request_total` of a `/metrics` text, summed over everything but verb and resource
/// (WATCH left out: the metric counts a watch when it ends).
pub fn parse_request_totals(metrics: &str) -> RequestCounts {
    let mut counts = RequestCounts::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        // kube-apiserver renews its own identity Lease every 10 s through its loopback client;
        // none of the controllers touches Leases with leader election off.
        if resource.is_empty() || verb == "WATCH" || resource == "leases" {
            continue;
        }
        let resource = if sub.is_empty() {
            resource
        } else {
            format!("{resource}/{sub}")
        };
        *counts.entry((verb, resource)).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    counts
}

/// `after - before - harness`, dropping zeros.
pub fn controller_delta(
    before: &RequestCounts,
    after: &RequestCounts,
    harness: &RequestCounts,
) -> RequestCounts {
    after
        .iter()
        .filter_map(|(key, n)| {
            let d = n
                - before.get(key).copied().unwrap_or(0.0)
                - harness.get(key).copied().unwrap_or(0.0);
            (d.abs() > 0.5).then(|| (key.clone(), d))
        })
        .collect()
}

/// `after - before`, key by key.
pub fn counts_minus(after: &RequestCounts, before: &RequestCounts) -> RequestCounts {
    after
        .iter()
        .map(|(key, n)| (key.clone(), n - before.get(key).copied().unwrap_or(0.0)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The report

/// One of the two peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// kube-controller-manager v1.34.10.
    Kcm,
    /// `svcplane controller-manager`.
    Svcplane,
}

impl Peer {
    /// The process name (`/proc/PID/comm`) of its controller manager.
    pub fn process(self) -> &'static str {
        match self {
            Peer::Kcm => "kube-controller-manager",
            Peer::Svcplane => "svcplane",
        }
    }

    /// Its name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Peer::Kcm => "kcm",
            Peer::Svcplane => "svcplane",
        }
    }
}

/// The figures of one peer in one round.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Controller spawned → every Service correct (s).
    pub cold_seconds: f64,
    /// Services a LIST after convergence found correct.
    pub verified: usize,
    /// CPU seconds of the controller process up to convergence.
    pub cpu_cold: f64,
    /// CPU seconds of the controller process during the churn.
    pub cpu_churn: f64,
    /// VmRSS after convergence (MiB).
    pub rss_converged_mib: f64,
    /// VmRSS after the churn (MiB).
    pub rss_steady_mib: f64,
    /// VmHWM at the end (MiB).
    pub rss_peak_mib: f64,
    /// The controller's API requests, cold start.
    pub cold_requests: RequestCounts,
    /// The controller's API requests, churn.
    pub churn_requests: RequestCounts,
    /// Changes made by the churn.
    pub flips: usize,
    /// Change → output written (ms), sorted.
    pub latencies_ms: Vec<f64>,
    /// Changes never seen in the output.
    pub unmatched: usize,
}

impl RunResult {
    /// Every request in `counts`.
    pub fn requests_total(counts: &RequestCounts) -> f64 {
        counts.values().sum()
    }

    /// The writes (POST, PUT, PATCH, DELETE) on `resource` in `counts`.
    pub fn writes(counts: &RequestCounts, resource: &str) -> f64 {
        counts
            .iter()
            .filter(|((verb, r), _)| {
                r == resource
                    && matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE")
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// The `p`th percentile (nearest rank) of the latencies; NaN when there are none.
    pub fn percentile(&self, p: f64) -> f64 {
        let sorted = &self.latencies_ms;
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn fmt(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "—".into()
    } else {
        format!("{v:.decimals$}")
    }
}

fn ratio(svcplane: f64, kcm: f64) -> String {
    if kcm == 0.0 || kcm.is_nan() || svcplane.is_nan() {
        if svcplane == 0.0 && kcm == 0.0 {
            "=".into()
        } else {
            "—".into()
        }
    } else {
        format!("{:.2}", svcplane / kcm)
    }
}

type Figure = Box<dyn Fn(&RunResult) -> f64>;

/// The table's rows for `bench`: what each says and how it is read off a run.
fn rows(bench: Bench) -> Vec<(String, usize, Figure)> {
    let output = bench.output_resource();
    let (noun, kind, change, latency) = (
        bench.output_noun(),
        bench.output_kind(),
        bench.change_noun(),
        bench.latency_noun(),
    );
    vec![
        (
            format!("cold start to every Service's {noun} correct (s)"),
            1,
            Box::new(|r: &RunResult| r.cold_seconds),
        ),
        (
            "CPU seconds, cold start".into(),
            2,
            Box::new(|r: &RunResult| r.cpu_cold),
        ),
        (
            "CPU seconds, churn".into(),
            2,
            Box::new(|r: &RunResult| r.cpu_churn),
        ),
        (
            "peak RSS (VmHWM, MiB)".into(),
            1,
            Box::new(|r: &RunResult| r.rss_peak_mib),
        ),
        (
            "RSS after convergence (MiB)".into(),
            1,
            Box::new(|r: &RunResult| r.rss_converged_mib),
        ),
        (
            "steady RSS, after the churn (MiB)".into(),
            1,
            Box::new(|r: &RunResult| r.rss_steady_mib),
        ),
        (
            "API requests, cold start (no WATCH)".into(),
            0,
            Box::new(|r: &RunResult| RunResult::requests_total(&r.cold_requests)),
        ),
        (
            format!("{kind} writes, cold start"),
            0,
            Box::new(move |r: &RunResult| RunResult::writes(&r.cold_requests, output)),
        ),
        (
            "API requests, churn (no WATCH)".into(),
            0,
            Box::new(|r: &RunResult| RunResult::requests_total(&r.churn_requests)),
        ),
        (
            format!("{kind} writes per {change}"),
            3,
            Box::new(move |r: &RunResult| {
                RunResult::writes(&r.churn_requests, output) / r.flips.max(1) as f64
            }),
        ),
        (
            format!("{latency} p50 (ms)"),
            1,
            Box::new(|r: &RunResult| r.percentile(50.0)),
        ),
        (
            format!("{latency} p99 (ms)"),
            1,
            Box::new(|r: &RunResult| r.percentile(99.0)),
        ),
        (
            format!("{latency} max (ms)"),
            1,
            Box::new(|r: &RunResult| r.latencies_ms.last().copied().unwrap_or(f64::NAN)),
        ),
        (
            format!(
                "{change}s not seen in {} within 10 s",
                match bench {
                    Bench::EndpointSlice => "a slice",
                    Bench::Endpoints => "the Endpoints",
                    Bench::Mirroring => "a mirrored slice",
                }
            ),
            0,
            Box::new(|r: &RunResult| r.unmatched as f64),
        ),
    ]
}

/// The Markdown table of every run of both peers (medians, ratios, each run's figure), the LIST
/// confirmations, and the API requests by verb and resource, under `header`.
pub fn report(w: &Workload, results: &[(Peer, RunResult)], header: &str) -> String {
    let of = |peer: Peer| -> Vec<&RunResult> {
        results
            .iter()
            .filter(|(p, _)| *p == peer)
            .map(|(_, r)| r)
            .collect()
    };
    let (kcm, svc) = (of(Peer::Kcm), of(Peer::Svcplane));
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let _ = writeln!(
        out,
        "| figure (median of {} / {} runs) | kcm | svcplane | svcplane/kcm | runs kcm | runs svcplane |",
        kcm.len(),
        svc.len()
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (what, decimals, get) in rows(w.bench) {
        let k: Vec<f64> = kcm.iter().map(|r| get(r)).collect();
        let s: Vec<f64> = svc.iter().map(|r| get(r)).collect();
        let (mk, ms) = (median(k.clone()), median(s.clone()));
        let runs = |v: &[f64]| {
            v.iter()
                .map(|x| fmt(*x, decimals))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} | {} |",
            fmt(mk, decimals),
            fmt(ms, decimals),
            ratio(ms, mk),
            runs(&k),
            runs(&s)
        );
    }
    let verified = |rs: &[&RunResult]| {
        rs.iter()
            .map(|r| r.verified.to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let _ = writeln!(
        out,
        "\nConvergence confirmed by a LIST after the watch saw it: kcm {} of {} Services correct, svcplane {}.",
        verified(&kcm),
        w.services,
        verified(&svc)
    );
    for (title, get) in [
        (
            "cold start",
            (|r: &RunResult| &r.cold_requests) as fn(&RunResult) -> &RequestCounts,
        ),
        ("churn", |r: &RunResult| &r.churn_requests),
    ] {
        let mut keys: Vec<(String, String)> = results
            .iter()
            .flat_map(|(_, r)| get(r).keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        let _ = writeln!(
            out,
            "\nAPI requests of the controller, {title} (medians; `apiserver_request_total` delta minus the harness's own):\n"
        );
        let _ = writeln!(out, "| verb | resource | kcm | svcplane |");
        let _ = writeln!(out, "|---|---|---|---|");
        for key in keys {
            let m = |rs: &[&RunResult]| {
                median(
                    rs.iter()
                        .map(|r| get(r).get(&key).copied().unwrap_or(0.0))
                        .collect(),
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                key.0,
                key.1,
                fmt(m(&kcm), 0),
                fmt(m(&svc), 0)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;

    fn endpoints(value: Value) -> Endpoints {
        serde_json::from_value(value).expect("an Endpoints object")
    }

    fn slice(value: Value) -> EndpointSlice {
        serde_json::from_value(value).expect("an EndpointSlice")
    }

    fn address(w: &Workload, i: usize) -> Value {
        json!({"ip": Workload::pod_ip(i), "targetRef": {"kind": "Pod", "name": w.pod_name(i)}})
    }

    /// Service 1's Endpoints as kube-controller-manager writes them when every pod is ready.
    fn endpoints_of_service_1(w: &Workload) -> Value {
        json!({
            "metadata": {"name": "svc-1", "namespace": "bench-0"},
            "subsets": [{
                "addresses": (3..6).map(|i| address(w, i)).collect::<Vec<_>>(),
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }],
        })
    }

    fn judge_endpoints(w: &Workload, value: Value) -> bool {
        let observed = observe_endpoints(w, &endpoints(value)).expect("svc-1's Endpoints");
        assert_eq!(observed.service, 1);
        service_correct(w, 1, [&observed])
    }

    #[test]
    fn every_bench_is_selected_by_its_name_and_all_selects_the_three() {
        assert_eq!(Bench::select("all").unwrap(), Bench::ALL.to_vec());
        for bench in Bench::ALL {
            assert_eq!(Bench::select(bench.label()).unwrap(), vec![bench]);
        }
        assert_eq!(Bench::select("endpoint"), None);
        assert_eq!(Bench::Endpoints.controller(), "endpoint");
        assert_eq!(Bench::Mirroring.controller(), "endpointslicemirroring");
    }

    #[test]
    fn an_endpoint_address_maps_back_to_its_index_and_foreign_ones_do_not() {
        let w = Workload::new(Bench::EndpointSlice, 10_000, 15, 1_200);
        for i in [0, 1, 249, 250, 62_499, 62_500, 149_999] {
            assert_eq!(w.parse_ip(&Workload::pod_ip(i)), Some(i), "{i}");
        }
        for foreign in [
            "10.64.0.0",
            "10.63.0.1",
            "192.168.0.1",
            "10.64.0",
            "fd00::1",
            "",
        ] {
            assert_eq!(w.parse_ip(foreign), None, "{foreign}");
        }
        let small = Workload::new(Bench::Endpoints, 2, 3, 10);
        assert_eq!(small.parse_ip(&Workload::pod_ip(6)), None);
    }

    #[test]
    fn an_endpoints_object_is_correct_only_with_exactly_its_ready_pods_names_and_ports() {
        let w = Workload::new(Bench::Endpoints, 2, 3, 10);
        assert!(judge_endpoints(&w, endpoints_of_service_1(&w)));

        let mut not_ready = endpoints_of_service_1(&w);
        let moved = not_ready["subsets"][0]["addresses"]
            .as_array_mut()
            .unwrap()
            .remove(0);
        not_ready["subsets"][0]["notReadyAddresses"] = json!([moved]);
        assert!(!judge_endpoints(&w, not_ready));

        let mut missing = endpoints_of_service_1(&w);
        missing["subsets"][0]["addresses"]
            .as_array_mut()
            .unwrap()
            .pop();
        assert!(!judge_endpoints(&w, missing));

        let mut foreign = endpoints_of_service_1(&w);
        foreign["subsets"][0]["addresses"]
            .as_array_mut()
            .unwrap()
            .push(address(&w, 0));
        assert!(!judge_endpoints(&w, foreign), "a pod of svc-0");

        let mut duplicate = endpoints_of_service_1(&w);
        duplicate["subsets"][0]["addresses"][2] = address(&w, 3);
        assert!(!judge_endpoints(&w, duplicate));

        let mut wrong_target = endpoints_of_service_1(&w);
        wrong_target["subsets"][0]["addresses"][0]["targetRef"]["name"] = json!("svc-1-9");
        assert!(!judge_endpoints(&w, wrong_target));

        let mut wrong_port = endpoints_of_service_1(&w);
        wrong_port["subsets"][0]["ports"][0]["port"] = json!(80);
        assert!(!judge_endpoints(&w, wrong_port));

        let mut named_port = endpoints_of_service_1(&w);
        named_port["subsets"][0]["ports"][0]["name"] = json!("http");
        assert!(!judge_endpoints(&w, named_port));

        // Split over two subsets with the same ports: still every pod once.
        let mut split = endpoints_of_service_1(&w);
        let last = split["subsets"][0]["addresses"]
            .as_array_mut()
            .unwrap()
            .pop()
            .unwrap();
        split["subsets"]
            .as_array_mut()
            .unwrap()
            .push(json!({"addresses": [last], "ports": [{"port": 8080}]}));
        assert!(judge_endpoints(&w, split));

        let mut other = endpoints_of_service_1(&w);
        other["metadata"]["name"] = json!("kubernetes");
        assert_eq!(observe_endpoints(&w, &endpoints(other)), None);
    }

    fn mirrored_slice(managed_by: &str, indices: &[usize]) -> Value {
        json!({
            "metadata": {"name": "svc-1-abcde", "namespace": "bench-0", "labels": {
                SERVICE_NAME_LABEL: "svc-1",
                MANAGED_BY_LABEL: managed_by,
            }},
            "addressType": "IPv4",
            "endpoints": indices.iter().map(|i| json!({
                "addresses": [Workload::pod_ip(*i)],
                "conditions": {"ready": true},
            })).collect::<Vec<_>>(),
            "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        })
    }

    #[test]
    fn a_mirrored_slice_is_judged_by_its_managed_by_label_addresses_and_ports() {
        let w = Workload::new(Bench::Mirroring, 2, 3, 10);
        assert_eq!(w.nodes, 0);
        let mirroring = "endpointslicemirroring-controller.k8s.io";
        let observe = |v: Value| observe_slice(&w, &slice(v));

        let whole = observe(mirrored_slice(mirroring, &[3, 4, 5])).unwrap();
        assert!(service_correct(&w, 1, [&whole]));
        assert!(
            !service_correct(&w, 0, [&whole]),
            "svc-1's slice judged as svc-0's"
        );

        // Two slices that together hold every address.
        let a = observe(mirrored_slice(mirroring, &[3])).unwrap();
        let b = observe(mirrored_slice(mirroring, &[4, 5])).unwrap();
        assert!(service_correct(&w, 1, [&a, &b]));
        assert!(!service_correct(&w, 1, [&b]));
        assert!(!service_correct(&w, 1, [&a, &b, &a]), "an address twice");

        // The EndpointSlice controller's slices are not the mirroring controller's.
        assert_eq!(
            observe(mirrored_slice(
                "endpointslice-controller.k8s.io",
                &[3, 4, 5]
            )),
            None
        );

        let mut not_ready = mirrored_slice(mirroring, &[3, 4, 5]);
        not_ready["endpoints"][1]["conditions"]["ready"] = json!(false);
        assert!(!service_correct(&w, 1, [&observe(not_ready).unwrap()]));

        // The user-written Endpoints name no pods: a mirrored targetRef is made up.
        let mut targeted = mirrored_slice(mirroring, &[3, 4, 5]);
        targeted["endpoints"][0]["targetRef"] = json!({"kind": "Pod", "name": "svc-1-0"});
        assert!(!service_correct(&w, 1, [&observe(targeted).unwrap()]));

        let mut protocol = mirrored_slice(mirroring, &[3, 4, 5]);
        protocol["ports"][0]["protocol"] = json!("UDP");
        assert!(!service_correct(&w, 1, [&observe(protocol).unwrap()]));

        // The EndpointSlice bench expects the pods as targets.
        let pods = Workload::new(Bench::EndpointSlice, 2, 3, 10);
        let mut slice_value = mirrored_slice("endpointslice-controller.k8s.io", &[3, 4, 5]);
        for (n, i) in (3..6).enumerate() {
            slice_value["endpoints"][n]["targetRef"] =
                json!({"kind": "Pod", "name": pods.pod_name(i)});
        }
        let observed = observe_slice(&pods, &slice(slice_value)).unwrap();
        assert!(service_correct(&pods, 1, [&observed]));
    }

    #[test]
    fn the_tracker_converges_when_every_service_is_correct_and_times_each_change() {
        let w = Workload::new(Bench::Mirroring, 2, 3, 10);
        let mirroring = "endpointslicemirroring-controller.k8s.io";
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let of = |service: usize, ready: [bool; 3]| Observed {
            service,
            endpoints: (0..3)
                .map(|k| ObservedEndpoint {
                    address: Workload::pod_ip(service * 3 + k),
                    target: None,
                    ready: ready[k],
                    ports: Workload::expected_ports(),
                })
                .collect(),
        };
        let mut t = Tracker::new(2);
        t.apply_output(&w, "bench-0/svc-0-a", Some(of(0, [true; 3])), at(1));
        assert_eq!((t.correct_count, t.converged_at), (1, None));
        t.apply_output(
            &w,
            "bench-0/svc-1-a",
            Some(of(1, [true, false, true])),
            at(2),
        );
        assert_eq!((t.correct_count, t.converged_at), (1, None));
        t.apply_output(&w, "bench-0/svc-1-a", Some(of(1, [true; 3])), at(3));
        assert_eq!((t.correct_count, t.converged_at), (2, Some(at(3))));
        // A deleted slice makes its Service incorrect; convergence stays the first time.
        t.delete_output(&w, "bench-0/svc-0-a", at(4));
        assert_eq!((t.correct_count, t.converged_at), (1, Some(at(3))));
        // An object that stops being the controller's counts as deleted.
        t.apply_output(&w, "bench-0/svc-1-a", None, at(5));
        assert_eq!(t.correct_count, 0);
        t.apply_output(&w, "bench-0/svc-1-a", Some(of(1, [true; 3])), at(6));
        t.apply_output(&w, "bench-0/svc-0-a", Some(of(0, [true; 3])), at(6));

        // Source seen first, then output: a positive latency.
        t.expect_change(3, false);
        t.apply_output(&w, "bench-0/svc-1-a", Some(of(1, [true; 3])), at(10));
        t.apply_source(3, false, at(20));
        assert!(t.latencies_ms.is_empty());
        t.apply_output(
            &w,
            "bench-0/svc-1-a",
            Some(of(1, [false, true, true])),
            at(27),
        );
        assert_eq!(t.latencies_ms, vec![7.0]);
        assert!(t.pending.is_empty());
        assert_eq!(t.correct_count, 1, "svc-1 has a not-ready endpoint");

        // Output seen first (the source watch lagged): a negative latency.
        t.expect_change(3, true);
        t.apply_output(&w, "bench-0/svc-1-a", Some(of(1, [true; 3])), at(30));
        t.apply_source(3, true, at(34));
        assert_eq!(t.latencies_ms, vec![7.0, -4.0]);
        assert!(t.pending.is_empty());
        assert_eq!(mirroring, w.bench.managed_by().unwrap());
    }

    #[test]
    fn the_churn_spreads_over_the_pods_and_changes_one_address_per_mirrored_service() {
        let pods = Workload::new(Bench::EndpointSlice, 2_000, 15, 1_200);
        let flips = pods.flip_endpoints();
        assert_eq!(flips.len(), 1_200);
        assert_eq!(flips[1] - flips[0], 25);

        let mirrored = Workload::new(Bench::Mirroring, 500, 15, 1_200);
        let flips = mirrored.flip_endpoints();
        assert_eq!(flips.len(), 500);
        let mut services: Vec<usize> = flips.iter().map(|i| i / 15).collect();
        services.dedup();
        assert_eq!(services.len(), 500, "one address per Service");

        let few = Workload::new(Bench::Mirroring, 500, 15, 100);
        assert_eq!(few.flip_endpoints().len(), 100);
    }

    #[test]
    fn requests_are_filed_as_apiserver_request_total_files_them() {
        let key = |method: http::Method, uri: &str| {
            request_key(&method, &uri.parse::<http::Uri>().unwrap())
                .map(|(verb, resource)| format!("{verb} {resource}"))
        };
        assert_eq!(
            key(
                http::Method::PATCH,
                "/api/v1/namespaces/bench-0/endpoints/svc-1"
            )
            .as_deref(),
            Some("PATCH endpoints")
        );
        assert_eq!(
            key(
                http::Method::PATCH,
                "/api/v1/namespaces/bench-0/pods/p/status"
            )
            .as_deref(),
            Some("PATCH pods/status")
        );
        assert_eq!(
            key(
                http::Method::GET,
                "/apis/discovery.k8s.io/v1/endpointslices?watch=true"
            )
            .as_deref(),
            Some("WATCH endpointslices")
        );
        assert_eq!(
            key(http::Method::GET, "/api/v1/namespaces/bench-0/endpoints").as_deref(),
            Some("LIST endpoints")
        );
        assert_eq!(key(http::Method::GET, "/metrics"), None);

        let metrics = r#"# HELP apiserver_request_total x
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="endpoints",scope="resource",subresource="",verb="POST",version="v1"} 500
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="endpoints",scope="resource",subresource="",verb="PUT",version="v1"} 3
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="endpoints",scope="resource",subresource="",verb="PUT",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="status",verb="PATCH",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 9
"#;
        let counts = parse_request_totals(metrics);
        let get = |verb: &str, resource: &str| counts.get(&(verb.into(), resource.into())).copied();
        assert_eq!(get("POST", "endpoints"), Some(500.0));
        assert_eq!(get("PUT", "endpoints"), Some(5.0), "every code summed");
        assert_eq!(get("PATCH", "pods/status"), Some(7.0));
        assert_eq!(get("WATCH", "pods"), None);
        assert_eq!(get("PUT", "leases"), None);
        assert_eq!(RunResult::writes(&counts, "endpoints"), 505.0);

        let before: RequestCounts = [(("PUT".into(), "endpoints".into()), 1.0)].into();
        let harness: RequestCounts = [(("PATCH".into(), "pods/status".into()), 7.0)].into();
        let delta = controller_delta(&before, &counts, &harness);
        assert_eq!(
            delta.into_iter().collect::<Vec<_>>(),
            vec![
                (("POST".into(), "endpoints".into()), 500.0),
                (("PUT".into(), "endpoints".into()), 4.0),
            ]
        );
    }

    #[test]
    fn the_report_names_what_the_bench_measures_and_gives_medians_and_ratios() {
        let w = Workload::new(Bench::Mirroring, 500, 15, 1_200);
        let run = |cold: f64, writes: f64, latencies: Vec<f64>| RunResult {
            cold_seconds: cold,
            verified: 500,
            churn_requests: [(("PUT".into(), "endpointslices".into()), writes)].into(),
            flips: 1_200,
            latencies_ms: latencies,
            ..RunResult::default()
        };
        let results = vec![
            (Peer::Kcm, run(20.0, 1_200.0, vec![4.0, 6.0])),
            (Peer::Svcplane, run(2.0, 1_200.0, vec![1.0, 3.0])),
            (Peer::Svcplane, run(4.0, 2_400.0, vec![2.0, 3.0])),
            (Peer::Kcm, run(30.0, 1_200.0, vec![5.0, 8.0])),
        ];
        let text = report(&w, &results, "### header");
        assert!(text.starts_with("### header\n\n| figure (median of 2 / 2 runs) |"));
        assert!(text.contains(
            "| cold start to every Service's mirrored slices correct (s) | 25.0 | 3.0 | 0.12 | 20.0 / 30.0 | 2.0 / 4.0 |"
        ));
        assert!(text.contains(
            "| EndpointSlice writes per change | 1.000 | 1.500 | 1.50 | 1.000 / 1.000 | 1.000 / 2.000 |"
        ));
        assert!(text.contains(
            "| Endpoints written → mirrored slice written p99 (ms) | 7.0 | 3.0 | 0.43 |"
        ));
        assert!(text.contains("| changes not seen in a mirrored slice within 10 s | 0 | 0 | = |"));
        assert!(text.contains("kcm 500 / 500 of 500 Services correct, svcplane 500 / 500."));
        assert!(text.contains("| PUT | endpointslices | 1200 | 1800 |"));

        let endpoints = Workload::new(Bench::Endpoints, 500, 15, 1_200);
        let text = report(&endpoints, &results, "");
        assert!(text.contains("| Endpoints writes per flip |"));
        assert!(text.contains("| pod Ready → Endpoints written p50 (ms) |"));
    }
}
