//! The desired ruleset (upstream's `setupNFTables` and the per-ServicePort body of
//! `syncProxyRules`, layout C): the fixed table skeleton from the configuration, and per Service
//! its chains, affinity sets and set/map elements.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{self, Endpoint, ServiceKey, ServicePortInfo};
use crate::names;
use crate::nft::{BaseChainSpec, ContainerDecl, ContainerKind, Element, IpFamily, Rule, Statement};
use crate::topology::categorize_endpoints;

// Fixed chains, sets and maps (upstream's constants).
const FILTER_PREROUTING_PRE_DNAT: &str = "filter-prerouting-pre-dnat";
const FILTER_OUTPUT_PRE_DNAT: &str = "filter-output-pre-dnat";
const FILTER_INPUT: &str = "filter-input";
const FILTER_FORWARD: &str = "filter-forward";
const FILTER_OUTPUT: &str = "filter-output";
const NAT_PREROUTING: &str = "nat-prerouting";
const NAT_OUTPUT: &str = "nat-output";
const NAT_POSTROUTING: &str = "nat-postrouting";
const SERVICES_CHAIN: &str = "services";
/// ClusterIP, ExternalIP and LoadBalancer IP dispatch.
pub const SERVICE_IPS_MAP: &str = "service-ips";
/// NodePort dispatch.
pub const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
/// IPs that accept NodePorts.
pub const NODEPORT_IPS_SET: &str = "nodeport-ips";
/// Active ClusterIPs.
pub const CLUSTER_IPS_SET: &str = "cluster-ips";
const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
/// Drop/reject verdicts for service IPs without endpoints.
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
/// Drop/reject verdicts for NodePorts without endpoints.
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
const REJECT_CHAIN: &str = "reject-chain";
const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
/// LoadBalancer IPs subject to source ranges.
pub const FIREWALL_IPS_MAP: &str = "firewall-ips";
const FIREWALL_CHECK: &str = "firewall-check";
const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
const MASQUERADING_CHAIN: &str = "masquerading";

/// The six element containers whose contents are diffed, with their kinds.
pub const ELEMENT_CONTAINERS: [(ContainerKind, &str); 6] = [
    (ContainerKind::Set, CLUSTER_IPS_SET),
    (ContainerKind::Map, SERVICE_IPS_MAP),
    (ContainerKind::Map, FIREWALL_IPS_MAP),
    (ContainerKind::Map, NO_ENDPOINT_SERVICES_MAP),
    (ContainerKind::Map, NO_ENDPOINT_NODEPORTS_MAP),
    (ContainerKind::Map, SERVICE_NODEPORTS_MAP),
];

/// The base chains: filter pre-DNAT at dstnat-10, filter at 0, nat at dstnat and srcnat.
pub const BASE_CHAINS: [(&str, BaseChainSpec); 8] = [
    (
        FILTER_PREROUTING_PRE_DNAT,
        base("filter", "prerouting", -110),
    ),
    (FILTER_OUTPUT_PRE_DNAT, base("filter", "output", -110)),
    (FILTER_INPUT, base("filter", "input", 0)),
    (FILTER_FORWARD, base("filter", "forward", 0)),
    (FILTER_OUTPUT, base("filter", "output", 0)),
    (NAT_PREROUTING, base("nat", "prerouting", -100)),
    (NAT_OUTPUT, base("nat", "output", -100)),
    (NAT_POSTROUTING, base("nat", "postrouting", 100)),
];

const fn base(chain_type: &'static str, hook: &'static str, priority: i32) -> BaseChainSpec {
    BaseChainSpec {
        chain_type,
        hook,
        priority,
    }
}

/// Jumps from base chains to the top-level regular chains: (target, from, match).
const JUMP_CHAINS: [(&str, &str, &str); 11] = [
    (NODEPORT_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_FORWARD, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_OUTPUT, "ct state new"),
    (FIREWALL_CHECK, FILTER_PREROUTING_PRE_DNAT, "ct state new"),
    (FIREWALL_CHECK, FILTER_OUTPUT_PRE_DNAT, "ct state new"),
    (SERVICES_CHAIN, NAT_OUTPUT, ""),
    (SERVICES_CHAIN, NAT_PREROUTING, ""),
    (MASQUERADING_CHAIN, NAT_POSTROUTING, ""),
    (CLUSTER_IPS_CHECK, FILTER_FORWARD, "ct state new"),
    (CLUSTER_IPS_CHECK, FILTER_OUTPUT, "ct state new"),
];

/// What the rules depend on besides Services and EndpointSlices, for one IP family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    /// The family of this table.
    pub family: IpFamily,
    /// This node's name (`--hostname-override`): decides which endpoints are local.
    pub node_name: String,
    /// The node's addresses of every family; the first of this family is its primary IP.
    pub node_ips: Vec<IpAddr>,
    /// `--cluster-cidr` (one per family): the local-traffic detector of a family is its
    /// first CIDR here; with none of the family the detector is unimplemented.
    pub cluster_cidrs: Vec<IpNet>,
    /// Known ServiceCIDRs (the "drop unallocated ClusterIP" rule exists only with some).
    pub service_cidrs: Vec<IpNet>,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// The masquerade mark bit (default 14, mark 0x4000).
    pub masquerade_bit: u8,
    /// `--nodeport-addresses`; `None` is `primary` (the node's primary IP).
    pub nodeport_addresses: Option<Vec<IpNet>>,
    /// The node's `topology.kubernetes.io/zone`, for zone hints.
    pub zone: Option<String>,
}

impl RulesConfig {
    /// The defaults for `node_name` with `node_ips`, IPv4.
    pub fn new(node_name: impl Into<String>, node_ips: Vec<IpAddr>) -> Self {
        RulesConfig {
            family: IpFamily::V4,
            node_name: node_name.into(),
            node_ips,
            cluster_cidrs: Vec::new(),
            service_cidrs: Vec::new(),
            masquerade_all: false,
            masquerade_bit: 14,
            nodeport_addresses: None,
            zone: None,
        }
    }

    /// The node's primary IP of this family.
    pub fn primary_node_ip(&self) -> Option<IpAddr> {
        self.node_ips
            .iter()
            .copied()
            .find(|ip| self.family.contains(ip))
    }

    /// The pod CIDR of this family that tells pod traffic from other traffic, if any.
    pub fn local_detector_cidr(&self) -> Option<IpNet> {
        self.cidrs_of_family(&self.cluster_cidrs).first().copied()
    }

    /// The masquerade mark, e.g. `0x4000`.
    pub fn masquerade_mark(&self) -> String {
        format!("{:#x}", 1u64 << self.masquerade_bit)
    }

    fn cidrs_of_family(&self, list: &[IpNet]) -> Vec<IpNet> {
        list.iter()
            .copied()
            .filter(|n| self.family.contains(&n.addr()))
            .collect()
    }

    /// The NodePort address selection for this family.
    pub fn nodeport_selection(&self) -> NodePortSelection {
        let cidrs: Vec<IpNet> = match &self.nodeport_addresses {
            None => self
                .primary_node_ip()
                .map(|ip| vec![IpNet::from(ip)])
                .unwrap_or_default(),
            Some(list) => self.cidrs_of_family(list),
        };
        if cidrs.is_empty() || cidrs.iter().any(|c| c.prefix_len() == 0) {
            return NodePortSelection::All;
        }
        let mut ips: Vec<IpAddr> = self
            .node_ips
            .iter()
            .copied()
            .filter(|ip| self.family.contains(ip) && cidrs.iter().any(|c| c.contains(ip)))
            .collect();
        ips.sort();
        ips.dedup();
        NodePortSelection::Ips(ips)
    }
}

/// Where NodePorts (and health-check ports) are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortSelection {
    /// Every local address (`--nodeport-addresses` matched all).
    All,
    /// These node addresses (loopback is never used: localhost NodePorts are unsupported).
    Ips(Vec<IpAddr>),
}

impl NodePortSelection {
    /// The addresses, loopback left out.
    pub fn usable_ips(&self) -> Vec<IpAddr> {
        match self {
            NodePortSelection::All => Vec::new(),
            NodePortSelection::Ips(ips) => {
                ips.iter().copied().filter(|ip| !ip.is_loopback()).collect()
            }
        }
    }
}

/// One Service's share of the ruleset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceObjects {
    /// Its chains and their rules, by name.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Its affinity sets and their timeouts in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
    /// Its elements of the six shared sets and maps.
    pub elements: Vec<Element>,
}

impl ServiceObjects {
    /// Whether the chains or affinity sets (not the elements) differ from `other`'s.
    pub fn chains_differ(&self, other: &ServiceObjects) -> bool {
        self.chains != other.chains || self.affinity_sets != other.affinity_sets
    }
}

/// The desired state of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The family of the table.
    pub family: IpFamily,
    /// The configuration it was built from.
    pub config: RulesConfig,
    /// Per Service (namespace, name): its objects.
    pub services: BTreeMap<ServiceKey, ServiceObjects>,
    /// Services needing a health-check server: their healthCheckNodePort.
    pub health_check_node_ports: BTreeMap<ServiceKey, u16>,
    /// Per Service, the number of distinct IPs of this node's Ready endpoints.
    pub local_ready_endpoints: BTreeMap<ServiceKey, usize>,
}

impl Ruleset {
    /// Every element of every Service.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.services.values().flat_map(|s| s.elements.iter())
    }

    /// The fixed skeleton (`setupNFTables`): the table, base and fixed chains with their rules,
    /// the sets and maps, the `nodeport-ips` elements, and a flush of every element container.
    /// On a process's first sync every base chain is added and deleted first, so that a priority
    /// left by an older layout cannot make the transaction fail.
    pub fn setup_statements(&self, first_sync: bool) -> Vec<Statement> {
        setup_statements(&self.config, first_sync)
    }
}

/// The desired ruleset for `services` and `slices` (whole lists from the informers' caches).
pub fn desired_ruleset<'a>(
    config: &RulesConfig,
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Ruleset {
    let mut slices_by_service: BTreeMap<ServiceKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if let Some(key) = model::slice_service_key(slice) {
            slices_by_service.entry(key).or_default().push(slice);
        }
    }
    let mut ruleset = Ruleset {
        family: config.family,
        config: config.clone(),
        services: BTreeMap::new(),
        health_check_node_ports: BTreeMap::new(),
        local_ready_endpoints: BTreeMap::new(),
    };
    for service in services {
        let ports = model::service_ports(service, config.family);
        let Some(first) = ports.first() else {
            continue;
        };
        let key = (first.namespace.clone(), first.name.clone());
        let endpoints = model::service_endpoints(
            slices_by_service.get(&key).into_iter().flatten().copied(),
            config.family,
            &config.node_name,
        );
        let local_ips: BTreeSet<IpAddr> = endpoints
            .values()
            .flatten()
            .filter(|e| e.is_local && e.ready)
            .map(|e| e.ip)
            .collect();
        if !local_ips.is_empty() {
            ruleset
                .local_ready_endpoints
                .insert(key.clone(), local_ips.len());
        }
        if first.health_check_node_port != 0 {
            ruleset
                .health_check_node_ports
                .insert(key.clone(), first.health_check_node_port);
        }
        let mut objects = ServiceObjects::default();
        for port in &ports {
            let eps = endpoints
                .get(&(port.port_name.clone(), port.protocol))
                .map(Vec::as_slice)
                .unwrap_or_default();
            service_port_rules(config, port, eps, &mut objects);
        }
        ruleset.services.insert(key, objects);
    }
    ruleset
}

fn chain(objects: &mut ServiceObjects, name: &str) {
    objects.chains.entry(name.to_string()).or_default();
}

fn rule(objects: &mut ServiceObjects, chain: &str, rule: Rule) {
    objects
        .chains
        .entry(chain.to_string())
        .or_default()
        .push(rule);
}

fn map_element(map: &str, key: Vec<String>, value: String, comment: Option<String>) -> Element {
    Element {
        container: map.to_string(),
        kind: ContainerKind::Map,
        key,
        value: Some(value),
        comment,
    }
}

/// The objects of one ServicePort, as upstream's `syncProxyRules` writes them.
fn service_port_rules(
    config: &RulesConfig,
    svc: &ServicePortInfo,
    endpoints: &[Endpoint],
    out: &mut ServiceObjects,
) {
    let ip_x = config.family.nft();
    let protocol = svc.protocol.lower().to_string();
    let port = svc.port.to_string();
    let base = svc.chain_base();
    let cluster_chain = format!("service-{base}");
    let local_chain = format!("local-{base}");
    let external_chain = format!("external-{base}");
    let firewall_chain = format!("firewall-{base}");
    let name_string = svc.name_string();
    let ep_base = |ep: &Endpoint| {
        names::endpoint_base(
            &svc.namespace,
            &svc.name,
            svc.protocol.lower(),
            &svc.port_name,
            &ep.ip,
            ep.port,
        )
    };

    let cat = categorize_endpoints(
        endpoints,
        svc,
        &config.node_name,
        config.zone.as_deref(),
        true,
    );

    for ep in &cat.all_reachable {
        chain(out, &format!("endpoint-{}", ep_base(ep)));
    }
    let uses_cluster_chain = !cat.cluster.is_empty() && svc.uses_cluster_endpoints();
    if uses_cluster_chain {
        chain(out, &cluster_chain);
    }
    let uses_local_chain = !cat.local.is_empty() && svc.uses_local_endpoints();
    if uses_local_chain {
        chain(out, &local_chain);
    }

    let has_endpoints = cat.has_any;
    let (internal_chain, has_internal) = if svc.internal_policy_local {
        (&local_chain, has_endpoints && !cat.local.is_empty())
    } else {
        (&cluster_chain, has_endpoints)
    };
    let (external_policy_chain, has_external) = if svc.external_policy_local {
        (&local_chain, has_endpoints && !cat.local.is_empty())
    } else {
        (&cluster_chain, has_endpoints)
    };
    let uses_external_chain = has_endpoints && svc.externally_accessible();
    if uses_external_chain {
        chain(out, &external_chain);
    }

    let (internal_verdict, external_verdict) = if !has_endpoints {
        let reject = format!("goto {REJECT_CHAIN}");
        (reject.clone(), reject)
    } else {
        ("drop".to_string(), "drop".to_string())
    };
    let key3 = |ip: &IpAddr| vec![ip.to_string(), protocol.clone(), port.clone()];

    out.elements.push(Element {
        container: CLUSTER_IPS_SET.into(),
        kind: ContainerKind::Set,
        key: vec![svc.cluster_ip.to_string()],
        value: None,
        comment: None,
    });
    if has_internal {
        out.elements.push(map_element(
            SERVICE_IPS_MAP,
            key3(&svc.cluster_ip),
            format!("goto {internal_chain}"),
            None,
        ));
    } else {
        out.elements.push(map_element(
            NO_ENDPOINT_SERVICES_MAP,
            key3(&svc.cluster_ip),
            internal_verdict,
            Some(name_string.clone()),
        ));
    }

    for ip in &svc.external_ips {
        if has_endpoints {
            out.elements.push(map_element(
                SERVICE_IPS_MAP,
                key3(ip),
                format!("goto {external_chain}"),
                None,
            ));
        }
        if !has_external {
            out.elements.push(map_element(
                NO_ENDPOINT_SERVICES_MAP,
                key3(ip),
                external_verdict.clone(),
                Some(name_string.clone()),
            ));
        }
    }

    let uses_firewall =
        !svc.load_balancer_vips.is_empty() && !svc.load_balancer_source_ranges.is_empty();
    if uses_firewall {
        chain(out, &firewall_chain);
    }
    for ip in &svc.load_balancer_vips {
        if has_endpoints {
            out.elements.push(map_element(
                SERVICE_IPS_MAP,
                key3(ip),
                format!("goto {external_chain}"),
                None,
            ));
        }
        if uses_firewall {
            out.elements.push(map_element(
                FIREWALL_IPS_MAP,
                key3(ip),
                format!("goto {firewall_chain}"),
                None,
            ));
        }
    }
    if !has_external {
        for ip in &svc.load_balancer_vips {
            out.elements.push(map_element(
                NO_ENDPOINT_SERVICES_MAP,
                key3(ip),
                external_verdict.clone(),
                Some(name_string.clone()),
            ));
        }
    }

    if svc.node_port != 0 {
        let key = vec![protocol.clone(), svc.node_port.to_string()];
        if has_endpoints {
            // NodePorts are not subject to loadBalancerSourceRanges (upstream cannot change that).
            out.elements.push(map_element(
                SERVICE_NODEPORTS_MAP,
                key.clone(),
                format!("goto {external_chain}"),
                None,
            ));
        }
        if !has_external {
            out.elements.push(map_element(
                NO_ENDPOINT_NODEPORTS_MAP,
                key,
                external_verdict.clone(),
                Some(name_string.clone()),
            ));
        }
    }

    // Internal traffic: masquerade off-cluster sources (or everything with --masquerade-all).
    if has_internal {
        if config.masquerade_all {
            rule(
                out,
                internal_chain,
                Rule::new(format!(
                    "{ip_x} daddr {} jump {MARK_MASQ_CHAIN}",
                    svc.cluster_ip
                )),
            );
        } else if let Some(cidr) = config.local_detector_cidr() {
            rule(
                out,
                internal_chain,
                Rule::new(format!(
                    "{ip_x} daddr {} {ip_x} saddr != {cidr} jump {MARK_MASQ_CHAIN}",
                    svc.cluster_ip
                )),
            );
        }
    }

    if uses_external_chain {
        if !svc.external_policy_local {
            // Non-local endpoints may be on another node: masquerade.
            rule(
                out,
                &external_chain,
                Rule::new(format!("jump {MARK_MASQ_CHAIN}")),
            );
        } else {
            if let Some(cidr) = config.local_detector_cidr() {
                // Pods reaching an external address act as if they went out to the LB and back.
                rule(
                    out,
                    &external_chain,
                    Rule::commented(
                        format!("{ip_x} saddr {cidr} goto {cluster_chain}"),
                        "short-circuit pod traffic",
                    ),
                );
            }
            rule(
                out,
                &external_chain,
                Rule::commented(
                    format!("fib saddr type local jump {MARK_MASQ_CHAIN}"),
                    "masquerade local traffic",
                ),
            );
            rule(
                out,
                &external_chain,
                Rule::commented(
                    format!("fib saddr type local goto {cluster_chain}"),
                    "short-circuit local traffic",
                ),
            );
        }
        if has_external {
            rule(
                out,
                &external_chain,
                Rule::new(format!("goto {external_policy_chain}")),
            );
        }
    }

    if uses_firewall {
        let mut sources: Vec<String> = Vec::new();
        let node_ip = config.primary_node_ip();
        let mut allow_from_node = false;
        for cidr in &svc.load_balancer_source_ranges {
            sources.push(cidr.to_string());
            if node_ip.is_some_and(|ip| cidr.contains(&ip)) {
                allow_from_node = true;
            }
        }
        // A VIP often loops back locally with the VIP as its source: let the node through.
        if allow_from_node {
            sources.extend(svc.load_balancer_vips.iter().map(IpAddr::to_string));
        }
        rule(
            out,
            &firewall_chain,
            Rule::new(format!(
                "{ip_x} saddr != {{ {} }} drop",
                sources.join(" , ")
            )),
        );
    }

    if let Some(timeout) = svc.affinity_timeout_seconds {
        for ep in &cat.all_reachable {
            out.affinity_sets
                .insert(format!("affinity-{}", ep_base(ep)), timeout);
        }
    }

    let balance = |out: &mut ServiceObjects, chain_name: &str, eps: &[&Endpoint]| {
        if svc.affinity_timeout_seconds.is_some() {
            for ep in eps {
                let b = ep_base(ep);
                rule(
                    out,
                    chain_name,
                    Rule::new(format!("{ip_x} saddr @affinity-{b} goto endpoint-{b}")),
                );
            }
        }
        let targets: Vec<String> = eps
            .iter()
            .enumerate()
            .map(|(i, ep)| format!("{i} : goto endpoint-{}", ep_base(ep)))
            .collect();
        rule(
            out,
            chain_name,
            Rule::new(format!(
                "numgen random mod {} vmap {{ {} }}",
                eps.len(),
                targets.join(" , ")
            )),
        );
    };
    if uses_cluster_chain {
        balance(out, &cluster_chain, &cat.cluster);
    }
    if uses_local_chain {
        balance(out, &local_chain, &cat.local);
    }

    for ep in &cat.all_reachable {
        let b = ep_base(ep);
        let endpoint_chain = format!("endpoint-{b}");
        // Traffic that loops back to its own pod is masqueraded (hairpin).
        rule(
            out,
            &endpoint_chain,
            Rule::new(format!("{ip_x} saddr {} jump {MARK_MASQ_CHAIN}", ep.ip)),
        );
        if svc.affinity_timeout_seconds.is_some() {
            rule(
                out,
                &endpoint_chain,
                Rule::new(format!("update @affinity-{b} {{ {ip_x} saddr }}")),
            );
        }
        rule(
            out,
            &endpoint_chain,
            Rule::new(format!("meta l4proto {protocol} dnat to {}", ep.address())),
        );
    }
}

/// The declaration of an affinity set of `family` with `timeout` seconds.
pub fn affinity_set_decl(family: IpFamily, timeout: u32) -> ContainerDecl {
    ContainerDecl {
        type_expr: family.addr_type().to_string(),
        flags: vec!["dynamic", "timeout"],
        timeout_seconds: Some(timeout),
        comment: None,
    }
}

fn add_chain(name: &str, comment: Option<&str>) -> Statement {
    Statement::AddChain {
        name: name.to_string(),
        base: None,
        comment: comment.map(str::to_string),
    }
}

fn add_rule(chain: &str, text: String, comment: Option<&str>) -> Statement {
    Statement::AddRule {
        chain: chain.to_string(),
        rule: Rule {
            text,
            comment: comment.map(str::to_string),
        },
    }
}

fn container(kind: ContainerKind, name: &str, type_expr: String, comment: &str) -> Statement {
    Statement::AddContainer {
        kind,
        name: name.to_string(),
        decl: ContainerDecl {
            type_expr,
            flags: Vec::new(),
            timeout_seconds: None,
            comment: Some(comment.to_string()),
        },
    }
}

/// Upstream's `setupNFTables`, plus the flush of the six element containers (a full sync
/// re-adds every element).
fn setup_statements(config: &RulesConfig, first_sync: bool) -> Vec<Statement> {
    let family = config.family;
    let ip_x = family.nft();
    let addr = family.addr_type();
    let no_localhost = match family {
        IpFamily::V4 => "ip daddr != 127.0.0.0/8",
        IpFamily::V6 => "ip6 daddr != ::1",
    };
    let mark = config.masquerade_mark();
    let selection = config.nodeport_selection();
    let match_all = selection == NodePortSelection::All;
    let mut out = vec![Statement::AddTable {
        comment: "rules for kube-proxy".into(),
    }];
    if first_sync {
        for (name, _) in &BASE_CHAINS {
            out.push(add_chain(name, None));
            out.push(Statement::DeleteChain(name.to_string()));
        }
    }
    for (name, spec) in &BASE_CHAINS {
        out.push(Statement::AddChain {
            name: name.to_string(),
            base: Some(spec.clone()),
            comment: None,
        });
        out.push(Statement::FlushChain(name.to_string()));
    }
    let mut created: BTreeSet<&str> = BTreeSet::new();
    let mut ensure = |out: &mut Vec<Statement>, name: &'static str| {
        if created.insert(name) {
            out.push(add_chain(name, None));
            out.push(Statement::FlushChain(name.to_string()));
        }
    };
    for (target, from, matches) in &JUMP_CHAINS {
        ensure(&mut out, target);
        let text = if matches.is_empty() {
            format!("jump {target}")
        } else {
            format!("{matches} jump {target}")
        };
        out.push(add_rule(from, text, None));
    }
    for name in [
        SERVICES_CHAIN,
        CLUSTER_IPS_CHECK,
        MASQUERADING_CHAIN,
        MARK_MASQ_CHAIN,
    ] {
        ensure(&mut out, name);
    }
    out.push(add_rule(
        MARK_MASQ_CHAIN,
        format!("mark set mark or {mark}"),
        None,
    ));
    out.push(add_rule(
        MASQUERADING_CHAIN,
        format!("mark and {mark} == 0 return"),
        None,
    ));
    out.push(add_rule(
        MASQUERADING_CHAIN,
        format!("mark set mark xor {mark}"),
        None,
    ));
    out.push(add_rule(
        MASQUERADING_CHAIN,
        "masquerade fully-random".into(),
        None,
    ));

    out.push(container(
        ContainerKind::Set,
        CLUSTER_IPS_SET,
        addr.into(),
        "Active ClusterIPs",
    ));
    out.push(add_rule(
        CLUSTER_IPS_CHECK,
        format!("{ip_x} daddr @{CLUSTER_IPS_SET} reject"),
        Some("Reject traffic to invalid ports of ClusterIPs"),
    ));
    let service_cidrs: Vec<String> = config
        .cidrs_of_family(&config.service_cidrs)
        .iter()
        .map(IpNet::to_string)
        .collect();
    if !service_cidrs.is_empty() {
        out.push(add_rule(
            CLUSTER_IPS_CHECK,
            format!("{ip_x} daddr {{ {} }} drop", service_cidrs.join(",")),
            Some("Drop traffic to unallocated ClusterIPs"),
        ));
    }

    out.push(container(
        ContainerKind::Set,
        NODEPORT_IPS_SET,
        addr.into(),
        "IPs that accept NodePort traffic",
    ));
    if match_all {
        out.push(Statement::DeleteContainer(
            ContainerKind::Set,
            NODEPORT_IPS_SET.into(),
        ));
    } else {
        out.push(Statement::FlushContainer(
            ContainerKind::Set,
            NODEPORT_IPS_SET.into(),
        ));
        for ip in selection.usable_ips() {
            out.push(Statement::AddElement(Element {
                container: NODEPORT_IPS_SET.into(),
                kind: ContainerKind::Set,
                key: vec![ip.to_string()],
                value: None,
                comment: None,
            }));
        }
    }

    let vmap3 = format!("{addr} . inet_proto . inet_service : verdict");
    out.push(container(
        ContainerKind::Map,
        NO_ENDPOINT_SERVICES_MAP,
        vmap3.clone(),
        "vmap to drop or reject packets to services with no endpoints",
    ));
    out.push(container(
        ContainerKind::Map,
        NO_ENDPOINT_NODEPORTS_MAP,
        "inet_proto . inet_service : verdict".into(),
        "vmap to drop or reject packets to service nodeports with no endpoints",
    ));
    out.push(add_chain(
        REJECT_CHAIN,
        Some("helper for @no-endpoint-services / @no-endpoint-nodeports"),
    ));
    out.push(Statement::FlushChain(REJECT_CHAIN.into()));
    out.push(add_rule(REJECT_CHAIN, "reject".into(), None));
    out.push(add_rule(
        SERVICE_ENDPOINTS_CHECK,
        format!("{ip_x} daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES_MAP}"),
        None,
    ));
    if match_all {
        out.push(add_rule(
            NODEPORT_ENDPOINTS_CHECK,
            format!("{no_localhost} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS_MAP}"),
            None,
        ));
    } else {
        out.push(add_rule(
            NODEPORT_ENDPOINTS_CHECK,
            format!(
                "{ip_x} daddr @{NODEPORT_IPS_SET} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS_MAP}"
            ),
            None,
        ));
    }

    out.push(container(
        ContainerKind::Map,
        FIREWALL_IPS_MAP,
        vmap3.clone(),
        "destinations that are subject to LoadBalancerSourceRanges",
    ));
    ensure(&mut out, FIREWALL_CHECK);
    out.push(add_rule(
        FIREWALL_CHECK,
        format!("{ip_x} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS_MAP}"),
        None,
    ));

    out.push(container(
        ContainerKind::Map,
        SERVICE_IPS_MAP,
        vmap3,
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
    ));
    out.push(container(
        ContainerKind::Map,
        SERVICE_NODEPORTS_MAP,
        "inet_proto . inet_service : verdict".into(),
        "NodePort traffic",
    ));
    out.push(add_rule(
        SERVICES_CHAIN,
        format!("{ip_x} daddr . meta l4proto . th dport vmap @{SERVICE_IPS_MAP}"),
        None,
    ));
    if match_all {
        out.push(add_rule(
            SERVICES_CHAIN,
            format!("fib daddr type local {no_localhost} meta l4proto . th dport vmap @{SERVICE_NODEPORTS_MAP}"),
            None,
        ));
    } else {
        out.push(add_rule(
            SERVICES_CHAIN,
            format!("{ip_x} daddr @{NODEPORT_IPS_SET} meta l4proto . th dport vmap @{SERVICE_NODEPORTS_MAP}"),
            None,
        ));
    }
    for (kind, name) in ELEMENT_CONTAINERS {
        out.push(Statement::FlushContainer(kind, name.to_string()));
    }
    out
}
