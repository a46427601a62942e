//! The controller differential's pure core (issue 12, item 3): a seeded generator of cluster
//! states and update steps, and the normalisation and comparison of the EndpointSlices and
//! Endpoints that controllers make of them. `tests/tests/controller_fidelity.rs` is the shell:
//! it applies each state to two kube-apiservers running upstream kube-controller-manager's
//! `endpointslice`, `endpoint` and `endpointslicemirroring` controllers (the reference and a
//! baseline of upstream against itself), to one running svcplane's, and to testenv running
//! upstream's again, and compares what they write.
//!
//! A state is a list of cases, one namespace each: Services of every type and port shape over
//! pods that are ready, unready, terminating, pending or finished, with named ports, on zoned
//! nodes, single- or dual-stack; selector-less Services with hand-written Endpoints; from none to
//! 1,100 endpoints. Every object carries its values (ClusterIPs included) so that the three
//! servers hold the same input; only what a server or a controller invents is normalised away
//! (names with generated suffixes, uids, resourceVersions, timestamps, the value of
//! `endpoints.kubernetes.io/last-change-trigger-time`).
//!
//! Slices are compared per Service and per (address type, ports) group: the endpoints of the
//! group as a set, and how many slices hold them and how full each is (as sorted sizes). Which
//! endpoint lands in which slice is not compared: upstream's packing follows the order of its pod
//! lister, a Go map, so two runs of kube-controller-manager itself place them differently.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// The annotation whose value is a time the controller reads off the clock or the objects.
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The finalizer that holds a deleted pod in Terminating (no kubelet confirms its end).
pub const HOLD_FINALIZER: &str = "fidelity.svcplane.io/hold";
/// The zones of the generated nodes (the fourth node has none).
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

// ---------------------------------------------------------------------------------------------
// A small seeded generator (splitmix64): the same seed gives the same corpus.

/// The generator's source of choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The states

/// One node: its name, zone label (if any) and InternalIP.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// `node-N`.
    pub name: String,
    /// `topology.kubernetes.io/zone`, when labelled.
    pub zone: Option<String>,
    /// Its InternalIP.
    pub ip: String,
}

/// The cluster's nodes: three zoned, one without a zone (hints leave such endpoints out).
pub fn nodes() -> Vec<NodeSpec> {
    (0..4)
        .map(|n| NodeSpec {
            name: format!("node-{n}"),
            zone: ZONES.get(n).map(|z| z.to_string()),
            ip: format!("10.63.0.{}", n + 1),
        })
        .collect()
}

/// One write the harness makes, the same on every server.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Action {
    /// Create a Service (its manifest, with its ClusterIPs).
    CreateService(Value),
    /// Merge-patch a Service's spec.
    PatchService { name: String, patch: Value },
    /// Create a pod, then (when given) write its status as a kubelet would, then (when
    /// `terminating`) delete it, so that its finalizer holds it Terminating.
    CreatePod {
        manifest: Value,
        status: Option<Value>,
        terminating: bool,
    },
    /// Merge-patch a pod's status.
    PodStatus { name: String, status: Value },
    /// Delete a pod at once (grace period 0; a held pod stays Terminating).
    DeletePod { name: String },
    /// Create an Endpoints object.
    CreateEndpoints(Value),
    /// Replace an Endpoints object's subsets (merge patch: a list is replaced whole).
    PatchEndpoints { name: String, subsets: Value },
}

impl Action {
    /// A short description for failure messages.
    pub fn describe(&self) -> String {
        let name = |v: &Value| v["metadata"]["name"].as_str().unwrap_or("?").to_string();
        match self {
            Action::CreateService(s) => format!("create service {}", name(s)),
            Action::PatchService { name, patch } => format!("patch service {name} {patch}"),
            Action::CreatePod {
                manifest,
                terminating,
                ..
            } => format!(
                "create pod {}{}",
                name(manifest),
                if *terminating { " (terminating)" } else { "" }
            ),
            Action::PodStatus { name, status } => {
                let ready = status["status"]["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                    .map(|c| c["status"].as_str().unwrap_or("?").to_string())
                    .unwrap_or_default();
                format!("pod {name} Ready={ready}")
            }
            Action::DeletePod { name } => format!("delete pod {name}"),
            Action::CreateEndpoints(e) => format!("create endpoints {}", name(e)),
            Action::PatchEndpoints { name, .. } => format!("replace endpoints {name}'s subsets"),
        }
    }
}

/// One case: a namespace, the writes that make its state, and update steps after it settles.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Case {
    /// Its name, also its namespace.
    pub name: String,
    /// The writes that make the initial state, in order (pods first, Services last, so that a
    /// Service's first sync sees its pods as they are).
    pub initial: Vec<Action>,
    /// The update steps, each compared and its writes counted after the servers settle.
    pub steps: Vec<Vec<Action>>,
}

/// A run's corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    /// The seed that drew it.
    pub seed: u64,
    /// Its cases.
    pub cases: Vec<Case>,
}

/// The pod IP families of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodFamilies {
    V4,
    V6,
    Dual,
}

/// What the generator knows of a pod it made, for update steps.
#[derive(Debug, Clone)]
struct PodFacts {
    name: String,
    node: usize,
    ips: Vec<String>,
    ready: bool,
    live: bool,
}

/// A case under construction.
struct Builder {
    case: usize,
    name: String,
    families: PodFamilies,
    pods: Vec<PodFacts>,
    services: Vec<(String, Option<String>)>,
    endpoints: Vec<String>,
    initial_pods: Vec<Action>,
    initial_endpoints: Vec<Action>,
    initial_services: Vec<Action>,
}

impl Builder {
    fn new(case: usize, name: String, families: PodFamilies) -> Self {
        Self {
            case,
            name,
            families,
            pods: Vec::new(),
            services: Vec::new(),
            endpoints: Vec::new(),
            initial_pods: Vec::new(),
            initial_endpoints: Vec::new(),
            initial_services: Vec::new(),
        }
    }

    fn pod_ips(&self, i: usize) -> Vec<String> {
        let v4 = format!("10.{}.{}.{}", 100 + self.case % 150, i / 250, i % 250 + 1);
        let v6 = format!("fd00:10:244:{:x}::{:x}", self.case, i + 1);
        match self.families {
            PodFamilies::V4 => vec![v4],
            PodFamilies::V6 => vec![v6],
            PodFamilies::Dual => vec![v4, v6],
        }
    }

    /// A pod of `app` in a drawn state; returns its action.
    fn pod(&mut self, rng: &mut Rng, app: &str, subdomain: Option<&str>) -> Action {
        let i = self.pods.len();
        let name = format!("{app}-{i}");
        let node = rng.below(nodes().len());
        let ips = self.pod_ips(i);
        // Most pods serve `http` on 8080; some on 8081 (a second slice for a named port).
        let http = if rng.chance(15) { 8081 } else { 8080 };
        let mut ports = vec![
            json!({"name": "http", "containerPort": http, "protocol": "TCP"}),
            json!({"name": "https", "containerPort": 8443, "protocol": "TCP"}),
        ];
        if rng.chance(50) {
            ports.push(json!({"name": "metrics", "containerPort": 9100, "protocol": "TCP"}));
        }
        let mut spec = json!({
            "nodeName": format!("node-{node}"),
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10", "ports": ports}],
        });
        if let Some(sub) = subdomain.filter(|_| rng.chance(20)) {
            spec["hostname"] = json!(format!("host-{i}"));
            spec["subdomain"] = json!(sub);
        }
        // ready, unready, terminating (ready or not), pending without an IP, finished.
        let roll = rng.below(100);
        let (phase, ready, has_ip, terminating) = match roll {
            0..=59 => ("Running", true, true, false),
            60..=74 => ("Running", false, true, false),
            75..=81 => ("Running", true, true, true),
            82..=87 => ("Running", false, true, true),
            88..=93 => ("Pending", false, false, false),
            _ => ("Succeeded", false, true, false),
        };
        let mut metadata = json!({"name": name, "labels": {"app": app}});
        if terminating {
            metadata["finalizers"] = json!([HOLD_FINALIZER]);
        }
        let status = pod_status(
            &nodes()[node].ip,
            if has_ip { &ips } else { &[] },
            phase,
            ready,
        );
        self.pods.push(PodFacts {
            name,
            node,
            ips,
            ready,
            live: !terminating && phase == "Running",
        });
        Action::CreatePod {
            manifest: json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}),
            status: Some(status),
            terminating,
        }
    }

    fn cluster_ips(&self, index: usize, families: &[&str]) -> Vec<String> {
        families
            .iter()
            .map(|f| {
                if *f == "IPv4" {
                    format!("10.96.{}.{}", self.case % 250, index + 10)
                } else {
                    format!("fd00:10:96::{:x}", self.case * 256 + index + 10)
                }
            })
            .collect()
    }
}

/// What a kubelet writes for a pod (a merge patch of `pods/status`).
pub fn pod_status(host_ip: &str, ips: &[String], phase: &str, ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    let mut status = json!({
        "phase": phase,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ],
    });
    if let Some(first) = ips.first() {
        status["podIP"] = json!(first);
        status["podIPs"] = json!(ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>());
    }
    json!({"status": status})
}

/// The port shapes a selecting Service draws from.
fn port_shape(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}]),
        1 => json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]),
        2 => json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
        ]),
        3 => json!([
            {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": "metrics"},
            {"name": "web", "port": 443, "protocol": "TCP", "targetPort": "https",
             "appProtocol": "https"},
        ]),
        4 => json!([
            {"name": "sctp", "port": 7777, "protocol": "SCTP", "targetPort": 7777},
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
        ]),
        _ => json!([{"name": "missing", "port": 81, "protocol": "TCP", "targetPort": "nowhere"}]),
    }
}

/// A Service selecting `app=<app>` of a drawn type, families and options.
fn selecting_service(rng: &mut Rng, b: &Builder, index: usize, name: &str, app: &str) -> Value {
    let families: Vec<&str> = match rng.below(4) {
        0 | 1 => vec!["IPv4"],
        2 => vec!["IPv6"],
        _ => vec!["IPv4", "IPv6"],
    };
    let policy = if families.len() == 2 {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    let kind = rng.pick(&[
        "ClusterIP",
        "ClusterIP",
        "Headless",
        "NodePort",
        "LoadBalancer",
        "ExternalName",
    ]);
    let mut spec = json!({"selector": {"app": app}, "ports": port_shape(rng)});
    match kind {
        "ExternalName" => {
            spec["type"] = json!("ExternalName");
            spec["externalName"] = json!("example.com");
        }
        _ => {
            let ips = if kind == "Headless" {
                vec!["None".to_string()]
            } else {
                b.cluster_ips(index, &families)
            };
            spec["type"] = json!(if kind == "Headless" {
                "ClusterIP"
            } else {
                kind
            });
            spec["clusterIP"] = json!(ips[0]);
            spec["clusterIPs"] = json!(ips);
            spec["ipFamilies"] = json!(families);
            spec["ipFamilyPolicy"] = json!(policy);
        }
    }
    if rng.chance(20) {
        spec["publishNotReadyAddresses"] = json!(true);
    }
    if rng.chance(25) {
        spec["trafficDistribution"] = json!("PreferClose");
    }
    let mut metadata = json!({"name": name, "labels": {"app.kubernetes.io/part-of": "fidelity"}});
    if rng.chance(20) {
        metadata["annotations"] = json!({"service.kubernetes.io/topology-mode": "Auto"});
    }
    if rng.chance(30) {
        metadata["labels"]["tier"] = json!(rng.pick(&["web", "db"]));
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec})
}

/// Hand-written Endpoints for a selector-less Service: `n` addresses over drawn subsets.
fn endpoints_subsets(rng: &mut Rng, case: usize, n: usize, generation: usize) -> Value {
    let v6 = rng.chance(25);
    let address = |i: usize| {
        if v6 {
            format!("fd00:10:245:{case:x}::{:x}", i + 1 + generation * 2000)
        } else {
            format!(
                "10.{}.{}.{}",
                50 + case % 50,
                (i + generation * 2000) / 250,
                i % 250 + 1
            )
        }
    };
    let node = |i: usize| format!("node-{}", i % nodes().len());
    let ports = match rng.below(3) {
        0 => json!([{"port": 8080, "protocol": "TCP"}]),
        1 => json!([{"name": "http", "port": 8080, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"}]),
        _ => json!([{"name": "web", "port": 443, "protocol": "TCP", "appProtocol": "https"}]),
    };
    let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
    for i in 0..n {
        let mut a = json!({"ip": address(i)});
        if rng.chance(50) {
            a["nodeName"] = json!(node(i));
        }
        if rng.chance(15) {
            a["hostname"] = json!(format!("h{i}"));
        }
        if rng.chance(20) {
            not_ready.push(a);
        } else {
            ready.push(a);
        }
    }
    let mut subset = json!({"ports": ports});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    if n > 0 && rng.chance(25) {
        // A second subset on another port, sharing the first address.
        let first = address(0);
        json!([subset, {"addresses": [{"ip": first}], "ports": [{"name": "alt", "port": 9000, "protocol": "TCP"}]}])
    } else if n == 0 {
        json!([])
    } else {
        json!([subset])
    }
}

/// How large a generated case may grow.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Pod counts per app to draw from.
    pub pods: &'static [usize],
    /// Endpoints addresses per selector-less Service to draw from.
    pub addresses: &'static [usize],
    /// Update steps per case, at most.
    pub steps: usize,
}

/// The fast subset's sizes.
pub const FAST: Size = Size {
    pods: &[0, 1, 3, 8],
    addresses: &[0, 1, 4],
    steps: 2,
};

/// The full corpus's sizes (past one slice of 100 endpoints).
pub const FULL: Size = Size {
    pods: &[0, 1, 3, 8, 40, 130],
    addresses: &[0, 1, 4, 30, 120],
    steps: 4,
};

/// One generated case: 1–3 apps each with 1–2 Services selecting them, 0–2 selector-less
/// Services with Endpoints, and up to `size.steps` update steps.
pub fn generated_case(rng: &mut Rng, case: usize, size: Size) -> Case {
    let families = rng.pick(&[
        PodFamilies::V4,
        PodFamilies::V4,
        PodFamilies::Dual,
        PodFamilies::V6,
    ]);
    let mut b = Builder::new(case, format!("gen-{case}"), families);
    let apps = 1 + rng.below(3);
    let mut index = 0;
    for a in 0..apps {
        let app = format!("app{a}");
        let services = 1 + rng.below(2);
        let names: Vec<String> = (0..services).map(|s| format!("{app}-svc{s}")).collect();
        let pods = rng.pick(size.pods);
        for _ in 0..pods {
            let pod = b.pod(rng, &app, Some(&names[0]));
            b.initial_pods.push(pod);
        }
        for name in names {
            let service = selecting_service(rng, &b, index, &name, &app);
            index += 1;
            b.services.push((name, Some(app.clone())));
            b.initial_services.push(Action::CreateService(service));
        }
    }
    for e in 0..rng.below(3) {
        let name = format!("manual{e}");
        let n = rng.pick(size.addresses);
        let mut metadata = json!({"name": name});
        match rng.below(6) {
            0 => metadata["labels"] = json!({"endpointslice.kubernetes.io/skip-mirror": "true"}),
            1 => {
                metadata["labels"] =
                    json!({"endpoints.kubernetes.io/managed-by": "endpoint-controller"})
            }
            2 => metadata["labels"] = json!({"team": "blue"}),
            _ => {}
        }
        b.initial_endpoints.push(Action::CreateEndpoints(json!({
            "apiVersion": "v1", "kind": "Endpoints", "metadata": metadata,
            "subsets": endpoints_subsets(rng, case, n, 0),
        })));
        let ips = b.cluster_ips(index, &["IPv4"]);
        index += 1;
        b.initial_services.push(Action::CreateService(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                     "clusterIP": ips[0], "clusterIPs": ips,
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
        })));
        b.services.push((name.clone(), None));
        b.endpoints.push(name);
    }
    let steps = (0..rng.below(size.steps + 1))
        .filter_map(|s| update_step(rng, &mut b, s, size))
        .collect();
    let mut initial = std::mem::take(&mut b.initial_pods);
    initial.append(&mut b.initial_endpoints);
    initial.append(&mut b.initial_services);
    Case {
        name: b.name,
        initial,
        steps,
    }
}

/// One drawn update step, if the case has something it applies to.
fn update_step(rng: &mut Rng, b: &mut Builder, step: usize, size: Size) -> Option<Vec<Action>> {
    let live: Vec<usize> = (0..b.pods.len()).filter(|&i| b.pods[i].live).collect();
    match rng.below(6) {
        0 | 1 if !live.is_empty() => {
            let i = rng.pick(&live);
            let p = &mut b.pods[i];
            p.ready = !p.ready;
            let status = pod_status(&nodes()[p.node].ip, &p.ips, "Running", p.ready);
            Some(vec![Action::PodStatus {
                name: p.name.clone(),
                status,
            }])
        }
        2 if !live.is_empty() => {
            let i = rng.pick(&live);
            b.pods[i].live = false;
            Some(vec![Action::DeletePod {
                name: b.pods[i].name.clone(),
            }])
        }
        3 => {
            let apps: Vec<String> = b.services.iter().filter_map(|s| s.1.clone()).collect();
            if apps.is_empty() {
                return None;
            }
            let app = rng.pick(&apps);
            Some(vec![b.pod(rng, &app, None)])
        }
        4 => {
            let selecting: Vec<String> = b
                .services
                .iter()
                .filter(|s| s.1.is_some())
                .map(|s| s.0.clone())
                .collect();
            if selecting.is_empty() {
                return None;
            }
            let name = rng.pick(&selecting);
            let patch = match rng.below(3) {
                0 => json!({"spec": {"publishNotReadyAddresses": rng.chance(50)}}),
                1 => json!({"spec": {"ports": port_shape(rng)}}),
                _ => json!({"spec": {"selector": {"app": format!("app{}", rng.below(3))}}}),
            };
            Some(vec![Action::PatchService { name, patch }])
        }
        _ if !b.endpoints.is_empty() => {
            let name = rng.pick(&b.endpoints);
            let n = rng.pick(size.addresses);
            Some(vec![Action::PatchEndpoints {
                name,
                subsets: endpoints_subsets(rng, b.case, n, step + 1),
            }])
        }
        _ => None,
    }
}

/// Large and churn cases (the full corpus only): a Service over 1,100 ready pods (Endpoints
/// over capacity, 11+ slices), a selector-less Service with 1,100 addresses (mirroring's cap),
/// and a Service whose pods flip readiness one at a time.
pub fn large_cases(rng: &mut Rng, first_case: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    // 1,100 pods behind one Service.
    let mut b = Builder::new(first_case, "large-pods".into(), PodFamilies::V4);
    for i in 0..1_100 {
        let node = i % nodes().len();
        let ips = b.pod_ips(i);
        let name = format!("big-{i}");
        b.initial_pods.push(Action::CreatePod {
            manifest: json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": "big"}},
                "spec": {"nodeName": format!("node-{node}"), "containers": [{"name": "main",
                    "image": "registry.k8s.io/pause:3.10",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}}),
            status: Some(pod_status(&nodes()[node].ip, &ips, "Running", true)),
            terminating: false,
        });
        b.pods.push(PodFacts {
            name,
            node,
            ips,
            ready: true,
            live: true,
        });
    }
    let ips = b.cluster_ips(0, &["IPv4"]);
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "big"},
        "spec": {"selector": {"app": "big"}, "clusterIP": ips[0], "clusterIPs": ips,
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "trafficDistribution": "PreferClose",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}});
    let mut initial = std::mem::take(&mut b.initial_pods);
    initial.push(Action::CreateService(service));
    let steps = (0..3)
        .map(|_| {
            let i = rng.below(b.pods.len());
            let p = &mut b.pods[i];
            p.ready = !p.ready;
            vec![Action::PodStatus {
                name: p.name.clone(),
                status: pod_status(&nodes()[p.node].ip, &p.ips, "Running", p.ready),
            }]
        })
        .collect();
    cases.push(Case {
        name: b.name,
        initial,
        steps,
    });

    // 1,100 addresses in a selector-less Service's Endpoints.
    let case = first_case + 1;
    let ips = format!("10.96.{}.10", case % 250);
    cases.push(Case {
        name: "large-endpoints".into(),
        initial: vec![
            Action::CreateEndpoints(json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "manual-big"},
                "subsets": endpoints_subsets(rng, case, 1_100, 0)})),
            Action::CreateService(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "manual-big"},
                "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                         "clusterIP": ips, "clusterIPs": [ips],
                         "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}})),
        ],
        steps: vec![vec![Action::PatchEndpoints {
            name: "manual-big".into(),
            subsets: endpoints_subsets(rng, case, 1_050, 1),
        }]],
    });

    // Churn: 30 pods, 12 single flips.
    let mut b = Builder::new(first_case + 2, "churn".into(), PodFamilies::Dual);
    for _ in 0..30 {
        let pod = b.pod(rng, "churn", None);
        b.initial_pods.push(pod);
    }
    let ips = b.cluster_ips(0, &["IPv4", "IPv6"]);
    let mut initial = std::mem::take(&mut b.initial_pods);
    initial.push(Action::CreateService(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "churn"},
        "spec": {"selector": {"app": "churn"}, "clusterIP": ips[0], "clusterIPs": ips,
                 "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}})));
    let live: Vec<usize> = (0..b.pods.len()).filter(|&i| b.pods[i].live).collect();
    let steps = (0..12)
        .filter(|_| !live.is_empty())
        .map(|_| {
            let i = rng.pick(&live);
            let p = &mut b.pods[i];
            p.ready = !p.ready;
            vec![Action::PodStatus {
                name: p.name.clone(),
                status: pod_status(&nodes()[p.node].ip, &p.ips, "Running", p.ready),
            }]
        })
        .collect();
    cases.push(Case {
        name: b.name,
        initial,
        steps,
    });
    cases
}

/// The corpus of `seed`: `generated` generated cases of `size`, plus the large and churn cases
/// when `large`.
pub fn corpus(seed: u64, generated: usize, size: Size, large: bool) -> Corpus {
    let mut rng = Rng::new(seed);
    let mut cases: Vec<Case> = (0..generated)
        .map(|c| generated_case(&mut rng, c, size))
        .collect();
    if large {
        cases.extend(large_cases(&mut rng, generated));
    }
    Corpus { seed, cases }
}

// ---------------------------------------------------------------------------------------------
// Normalising what a controller wrote

/// One Service's view: its slices grouped by (address type, ports), and its Endpoints.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ServiceView {
    /// (address type, ports) → (sorted slice sizes, sorted endpoints).
    pub groups: BTreeMap<String, (Vec<usize>, Vec<Value>)>,
    /// The order of the ports in each slice and each Endpoints subset, as written (the groups
    /// and the Endpoints above hold them sorted, so that an order is one difference, not many).
    pub port_orders: BTreeSet<String>,
    /// The slices' metadata (labels, annotations, owner, generateName), sorted.
    pub slice_meta: Vec<Value>,
    /// The Endpoints object, normalised, if any.
    pub endpoints: Option<Value>,
}

/// A namespace's controller output, per Service name (a slice's `kubernetes.io/service-name`,
/// or the Endpoints' name).
pub type Snapshot = BTreeMap<String, ServiceView>;

fn strip_meta(meta: &Value) -> Value {
    let mut out = Map::new();
    if let Some(labels) = meta.get("labels").filter(|l| !l.is_null()) {
        out.insert("labels".into(), labels.clone());
    }
    if let Some(Value::Object(annotations)) = meta.get("annotations") {
        let mut a = annotations.clone();
        if a.contains_key(TRIGGER_TIME) {
            a.insert(TRIGGER_TIME.into(), json!("<time>"));
        }
        out.insert("annotations".into(), Value::Object(a));
    }
    if let Some(Value::Array(owners)) = meta.get("ownerReferences") {
        let owners: Vec<Value> = owners
            .iter()
            .map(|o| {
                let mut o = o.clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("uid");
                }
                o
            })
            .collect();
        out.insert("ownerReferences".into(), json!(owners));
    }
    if let Some(g) = meta.get("generateName") {
        out.insert("generateName".into(), g.clone());
    }
    Value::Object(out)
}

fn strip_target_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(r)) = map.get_mut("targetRef") {
                r.remove("uid");
                r.remove("resourceVersion");
            }
            for v in map.values_mut() {
                strip_target_refs(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_target_refs),
        _ => {}
    }
}

/// A value's JSON with object keys sorted at every level: servers differ in key order (Go's
/// struct order; testenv keeps a client's), which is no difference.
fn sort_key(v: &Value) -> String {
    fn canonical(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let sorted: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, canonical(v))).collect();
                json!(sorted)
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&canonical(v)).unwrap_or_default()
}

/// A list sorted by its items' JSON.
fn sorted(list: &Value) -> Value {
    let mut items = list.as_array().cloned().unwrap_or_default();
    items.sort_by_key(sort_key);
    Value::Array(items)
}

/// `http/TCP/8080, dns/UDP/53`: a port list's order, for the ports with more than one.
fn port_order(ports: &Value) -> String {
    ports
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    format!(
                        "{}/{}/{}",
                        p["name"].as_str().unwrap_or(""),
                        p["protocol"].as_str().unwrap_or(""),
                        p["port"]
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The snapshot of a namespace's EndpointSlices and Endpoints (as JSON objects).
pub fn snapshot(slices: &[Value], endpoints: &[Value]) -> Snapshot {
    let mut out = Snapshot::new();
    for slice in slices {
        let service = slice["metadata"]["labels"][SERVICE_NAME_LABEL]
            .as_str()
            .unwrap_or("(no service-name label)")
            .to_string();
        let view = out.entry(service).or_default();
        view.port_orders
            .insert(format!("slice: {}", port_order(&slice["ports"])));
        let key = format!(
            "{} ports={}",
            slice["addressType"].as_str().unwrap_or("?"),
            sort_key(&sorted(&slice["ports"]))
        );
        let mut eps: Vec<Value> = slice["endpoints"].as_array().cloned().unwrap_or_default();
        eps.iter_mut().for_each(strip_target_refs);
        let group = view.groups.entry(key).or_default();
        group.0.push(eps.len());
        group.1.extend(eps);
        view.slice_meta.push(strip_meta(&slice["metadata"]));
    }
    for view in out.values_mut() {
        for (sizes, eps) in view.groups.values_mut() {
            sizes.sort_unstable();
            eps.sort_by_key(sort_key);
        }
        view.slice_meta.sort_by_key(sort_key);
    }
    for e in endpoints {
        let name = e["metadata"]["name"].as_str().unwrap_or("?").to_string();
        let mut subsets = e.get("subsets").cloned().unwrap_or(Value::Null);
        if subsets == json!([]) {
            subsets = Value::Null;
        }
        strip_target_refs(&mut subsets);
        let view = out.entry(name.clone()).or_default();
        if let Value::Array(items) = &mut subsets {
            for subset in items.iter_mut() {
                view.port_orders
                    .insert(format!("endpoints: {}", port_order(&subset["ports"])));
                if subset.get("ports").is_some() {
                    subset["ports"] = sorted(&subset["ports"]);
                }
            }
        }
        // Upstream orders subsets by an MD5 of their Go dump, targetRef uids and
        // resourceVersions included: an order that differs between two clusters.
        if let Value::Array(items) = &mut subsets {
            items.sort_by_key(sort_key);
        }
        view.endpoints = Some(json!({"metadata": strip_meta(&e["metadata"]), "subsets": subsets}));
    }
    out
}

/// The differences between two snapshots, as `service: what: left | right` lines (at most
/// `max`), `left` being upstream's.
pub fn diff(left: &Snapshot, right: &Snapshot, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    let empty = ServiceView::default();
    for name in names {
        let (l, r) = (
            left.get(name).unwrap_or(&empty),
            right.get(name).unwrap_or(&empty),
        );
        let keys: BTreeSet<&String> = l.groups.keys().chain(r.groups.keys()).collect();
        for key in keys {
            match (l.groups.get(key), r.groups.get(key)) {
                (Some(a), Some(b)) => {
                    if a.0 != b.0 {
                        out.push(format!(
                            "{name}: slices of {key}: sizes {:?} | {:?}",
                            a.0, b.0
                        ));
                    }
                    diff_endpoint_sets(name, key, &a.1, &b.1, &mut out);
                }
                (Some(a), None) => out.push(format!(
                    "{name}: slices of {key}: only upstream ({} endpoints in {:?})",
                    a.1.len(),
                    a.0
                )),
                (None, Some(b)) => out.push(format!(
                    "{name}: slices of {key}: only the other ({} endpoints in {:?})",
                    b.1.len(),
                    b.0
                )),
                (None, None) => {}
            }
        }
        if l.port_orders != r.port_orders {
            let show = |o: &BTreeSet<String>| {
                o.iter()
                    .filter(|p| p.contains(", "))
                    .map(|p| match p.split_once(": ") {
                        Some((kind, ports)) => format!("{kind} [{ports}]"),
                        None => format!("[{p}]"),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            out.push(format!(
                "{name}: port order: {} | {}",
                show(&l.port_orders),
                show(&r.port_orders)
            ));
        }
        if l.slice_meta != r.slice_meta {
            let mut paths = Vec::new();
            diff_values("", &json!(l.slice_meta), &json!(r.slice_meta), &mut paths);
            for p in paths.into_iter().take(3) {
                out.push(format!("{name}: slice metadata{p}"));
            }
        }
        if l.endpoints != r.endpoints {
            let mut paths = Vec::new();
            diff_values(
                "",
                l.endpoints.as_ref().unwrap_or(&Value::Null),
                r.endpoints.as_ref().unwrap_or(&Value::Null),
                &mut paths,
            );
            for p in paths.into_iter().take(3) {
                out.push(format!("{name}: endpoints{p}"));
            }
        }
    }
    out.truncate(max);
    out
}

fn diff_endpoint_sets(name: &str, key: &str, a: &[Value], b: &[Value], out: &mut Vec<String>) {
    if a == b {
        return;
    }
    let addresses = |v: &Value| sort_key(&v["addresses"]);
    let left: BTreeMap<String, &Value> = a.iter().map(|v| (addresses(v), v)).collect();
    let right: BTreeMap<String, &Value> = b.iter().map(|v| (addresses(v), v)).collect();
    let mut shown = 0;
    for (k, v) in &left {
        if shown >= 3 {
            break;
        }
        match right.get(k) {
            None => {
                out.push(format!(
                    "{name}: {key}: endpoint only upstream: {}",
                    short(v)
                ));
                shown += 1;
            }
            Some(w) if w != v => {
                let mut paths = Vec::new();
                diff_values("", v, w, &mut paths);
                out.push(format!("{name}: {key}: endpoint {k}{}", paths.join(";")));
                shown += 1;
            }
            _ => {}
        }
    }
    for (k, v) in &right {
        if shown >= 3 {
            break;
        }
        if !left.contains_key(k) {
            out.push(format!(
                "{name}: {key}: endpoint only the other: {}",
                short(v)
            ));
            shown += 1;
        }
    }
    if shown == 0 {
        // Same addresses, different multiplicity.
        out.push(format!(
            "{name}: {key}: {} endpoints | {}",
            a.len(),
            b.len()
        ));
    }
}

fn short(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    if s.len() > 200 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(200).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => diff_values(&p, v, w, out),
                    (Some(v), None) => out.push(format!("{p}: {} | absent", short(v))),
                    (None, Some(w)) => out.push(format!("{p}: absent | {}", short(w))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff_values(&format!("{path}[{i}]"), v, w, out);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            // Different lengths: the items only one side has.
            let only = |a: &[Value], b: &[Value]| -> Vec<String> {
                a.iter().filter(|v| !b.contains(v)).map(short).collect()
            };
            let (left, right) = (only(x, y), only(y, x));
            out.push(format!(
                "{path}: {} items | {}; only upstream: [{}]; only the other: [{}]",
                x.len(),
                y.len(),
                left.join(", "),
                right.join(", ")
            ));
        }
        _ if a != b => out.push(format!("{path}: {} | {}", short(a), short(b))),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Writes

/// Controller writes to one namespace in a window: (resource, `created`/`updated`/`deleted`) →
/// count, as a watch sees them (a write that changes nothing is not seen).
pub type Writes = BTreeMap<(String, String), i64>;

/// `after - before`, zeros dropped.
pub fn writes_delta(before: &Writes, after: &Writes) -> Writes {
    after
        .iter()
        .filter_map(|(k, n)| {
            let d = n - before.get(k).copied().unwrap_or(0);
            (d != 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// `endpointslices created ×2, endpoints updated ×1`.
pub fn describe_writes(w: &Writes) -> String {
    if w.is_empty() {
        return "none".into();
    }
    w.iter()
        .map(|((resource, event), n)| format!("{resource} {event} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// The docs section

/// The markers of this suite's block in `docs/fidelity.md`.
pub const DOCS_BEGIN: &str = "<!-- controllers:begin -->";
/// See [`DOCS_BEGIN`].
pub const DOCS_END: &str = "<!-- controllers:end -->";

/// `doc` with the text between the markers replaced by `block` (the markers appended at the end
/// when missing).
pub fn replace_block(doc: &str, block: &str) -> String {
    match (doc.find(DOCS_BEGIN), doc.find(DOCS_END)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{DOCS_BEGIN}\n{}\n{}",
            &doc[..b],
            block.trim_end(),
            &doc[e..]
        ),
        _ => format!(
            "{}\n\n{DOCS_BEGIN}\n{}\n{DOCS_END}\n",
            doc.trim_end(),
            block.trim_end()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_corpus_and_another_seed_another() {
        assert_eq!(corpus(7, 5, FULL, true), corpus(7, 5, FULL, true));
        assert_ne!(corpus(7, 5, FAST, false), corpus(8, 5, FAST, false));
    }

    #[test]
    fn the_corpus_covers_every_pod_state_and_service_kind() {
        let corpus = corpus(1, 40, FULL, true);
        let all: Vec<&Action> = corpus
            .cases
            .iter()
            .flat_map(|c| c.initial.iter().chain(c.steps.iter().flatten()))
            .collect();
        let text = format!("{all:?}");
        for needle in [
            "\"Succeeded\"",
            "\"Pending\"",
            "terminating: true",
            "\"ExternalName\"",
            "\"None\"",
            "\"LoadBalancer\"",
            "\"NodePort\"",
            "RequireDualStack",
            "\"SCTP\"",
            "PreferClose",
            "topology-mode",
            "skip-mirror",
            "notReadyAddresses",
            "\"hostname\"",
            "fd00:10:244",
            "PatchEndpoints",
            "PatchService",
            "DeletePod",
        ] {
            assert!(text.contains(needle), "the corpus has no {needle}");
        }
        let big = corpus
            .cases
            .iter()
            .find(|c| c.name == "large-pods")
            .unwrap();
        assert_eq!(
            big.initial
                .iter()
                .filter(|a| matches!(a, Action::CreatePod { .. }))
                .count(),
            1_100
        );
    }

    #[test]
    fn services_are_created_after_the_pods_and_endpoints_they_see() {
        for case in corpus(3, 20, FULL, false).cases {
            let first_service = case
                .initial
                .iter()
                .position(|a| matches!(a, Action::CreateService(_)));
            let last_other = case
                .initial
                .iter()
                .rposition(|a| !matches!(a, Action::CreateService(_)));
            if let (Some(s), Some(o)) = (first_service, last_other) {
                assert!(o < s, "{}: a pod or Endpoints after a Service", case.name);
            }
        }
    }

    fn slice(service: &str, name: &str, ips: &[&str], trigger: &str) -> Value {
        json!({
            "metadata": {"name": name, "uid": name, "resourceVersion": "9",
                "generateName": format!("{service}-"),
                "labels": {SERVICE_NAME_LABEL: service},
                "annotations": {TRIGGER_TIME: trigger},
                "ownerReferences": [{"kind": "Service", "name": service, "uid": name}]},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": ips.iter().map(|ip| json!({"addresses": [ip],
                "targetRef": {"kind": "Pod", "name": ip, "uid": name}})).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn packing_names_uids_and_trigger_times_do_not_count_but_sizes_and_endpoints_do() {
        let upstream = snapshot(
            &[
                slice("s", "s-abc", &["10.0.0.1", "10.0.0.2"], "t1"),
                slice("s", "s-def", &["10.0.0.3"], "t1"),
            ],
            &[],
        );
        let same = snapshot(
            &[
                slice("s", "s-x", &["10.0.0.3"], "t2"),
                slice("s", "s-y", &["10.0.0.2", "10.0.0.1"], "t2"),
            ],
            &[],
        );
        assert_eq!(diff(&upstream, &same, 10), Vec::<String>::new());
        // Another packing of the same endpoints: the sizes differ.
        let repacked = snapshot(
            &[
                slice("s", "s-x", &["10.0.0.3", "10.0.0.1"], "t2"),
                slice("s", "s-y", &["10.0.0.2"], "t2"),
            ],
            &[],
        );
        assert_eq!(diff(&upstream, &repacked, 10), Vec::<String>::new());
        let one_slice = snapshot(
            &[slice(
                "s",
                "s-x",
                &["10.0.0.3", "10.0.0.1", "10.0.0.2"],
                "t2",
            )],
            &[],
        );
        let d = diff(&upstream, &one_slice, 10);
        assert!(d.iter().any(|l| l.contains("sizes [1, 2] | [3]")), "{d:?}");
        let missing = snapshot(&[slice("s", "s-x", &["10.0.0.3", "10.0.0.1"], "t2")], &[]);
        let d = diff(&upstream, &missing, 10);
        assert!(
            d.iter().any(|l| l.contains("endpoint only upstream")),
            "{d:?}"
        );
    }

    #[test]
    fn a_port_order_is_one_difference_of_its_own() {
        let with_ports = |ports: Value| {
            let mut s = slice("s", "s-a", &["10.0.0.1"], "t");
            s["ports"] = ports;
            s
        };
        let (http, dns) = (
            json!({"name": "http", "protocol": "TCP", "port": 80}),
            json!({"name": "dns", "protocol": "UDP", "port": 53}),
        );
        let a = snapshot(&[with_ports(json!([http, dns]))], &[]);
        let b = snapshot(&[with_ports(json!([dns, http]))], &[]);
        assert_eq!(
            diff(&a, &b, 10),
            vec![
                "s: port order: slice [http/TCP/80, dns/UDP/53] | slice [dns/UDP/53, http/TCP/80]"
            ]
        );
    }

    #[test]
    fn endpoints_are_compared_whole_but_for_trigger_time_and_target_uids() {
        let e = |trigger: &str, uid: &str, ip: &str| {
            json!({"metadata": {"name": "s", "annotations": {TRIGGER_TIME: trigger}},
                   "subsets": [{"addresses": [{"ip": ip, "targetRef": {"name": "p", "uid": uid}}]}]})
        };
        let a = snapshot(&[], &[e("t1", "u1", "10.0.0.1")]);
        assert_eq!(
            diff(&a, &snapshot(&[], &[e("t2", "u2", "10.0.0.1")]), 10),
            Vec::<String>::new()
        );
        let d = diff(&a, &snapshot(&[], &[e("t2", "u2", "10.0.0.9")]), 10);
        assert_eq!(
            d,
            vec!["s: endpoints.subsets[0].addresses[0].ip: \"10.0.0.1\" | \"10.0.0.9\""]
        );
    }

    #[test]
    fn writes_are_counted_as_deltas() {
        let key = |r: &str, e: &str| (r.to_string(), e.to_string());
        let before = Writes::from([(key("endpointslices", "created"), 1)]);
        let after = Writes::from([
            (key("endpointslices", "created"), 3),
            (key("endpoints", "updated"), 1),
        ]);
        assert_eq!(
            describe_writes(&writes_delta(&before, &after)),
            "endpoints updated ×1, endpointslices created ×2"
        );
        assert_eq!(describe_writes(&writes_delta(&after, &after)), "none");
    }

    #[test]
    fn the_docs_block_is_replaced_between_its_markers_or_appended() {
        let doc = format!("# x\n\n{DOCS_BEGIN}\nold\n{DOCS_END}\n\n## next\n");
        assert_eq!(
            replace_block(&doc, "new\n"),
            format!("# x\n\n{DOCS_BEGIN}\nnew\n{DOCS_END}\n\n## next\n")
        );
        assert_eq!(
            replace_block("# x\n", "new"),
            format!("# x\n\n{DOCS_BEGIN}\nnew\n{DOCS_END}\n")
        );
    }
}
