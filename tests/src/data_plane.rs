//! The data path under test: testenv with its node simulator, svcplane's EndpointSlice
//! controller, the data plane's namespaces (`dataplane`), and a kube-proxy in every node's
//! namespace — svcplane's (`proxy::run` programming the namespace) or upstream's (a child
//! process started with `ip netns exec`, reaching the API server through a relay) — for the
//! differential of the two proxies (tests/tests/proxy_differential.rs).
//!
//! Every cluster address lives inside the namespaces the data plane makes; the only socket in
//! the root namespace is testenv's, on loopback. Dropping a [`DataPath`] or a [`NodeProxies`]
//! (a failing test) still kills the children and removes the namespaces.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controllers::endpointslice_controller::{self, EndpointSliceControllerConfig};
use dataplane::{DataPlane, DataPlaneConfig};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use serde_json::Value;
use testenv::nodesim::NodeSimConfig;
use testenv::{TestEnv, TestEnvOptions};
use tokio::task::JoinSet;

/// The nftables table both proxies write (IPv4).
pub const PROXY_TABLE: &str = "kube-proxy";

/// Where upstream's kube-proxy answers /healthz and /metrics, inside its node's namespace.
const UPSTREAM_HEALTHZ: &str = "127.0.0.1:10256";
const UPSTREAM_METRICS: &str = "127.0.0.1:10249";

/// How long a proxy's namespace, table or process is waited for.
const DEADLINE: Duration = Duration::from_secs(30);

/// What went wrong while setting the data path up or tearing it down.
#[derive(Debug, thiserror::Error)]
pub enum DataPathError {
    /// testenv did not start.
    #[error("testenv: {0}")]
    TestEnv(String),
    /// The data plane did not start or stop.
    #[error("the data plane: {0}")]
    DataPlane(String),
    /// A node's namespace never appeared, or a node object is unreadable.
    #[error("node {node}: {message}")]
    Node {
        /// The node.
        node: String,
        /// What happened.
        message: String,
    },
    /// Upstream's kube-proxy could not be started.
    #[error("kube-proxy on {node}: {message}")]
    KubeProxy {
        /// The node.
        node: String,
        /// What happened.
        message: String,
    },
    /// A command inside a namespace failed.
    #[error("{0}")]
    Command(String),
}

/// testenv, its node simulator, svcplane's EndpointSlice controller and the data plane.
pub struct DataPath {
    env: TestEnv,
    plane: Option<DataPlane>,
    nodes: Vec<String>,
    cluster_cidr: IpNet,
    controller: kuberun::ShutdownTrigger,
}

impl DataPath {
    /// Starts `nodes` simulated nodes (`node-1..N`, InternalIP 172.18.0.N+1, pod CIDR
    /// 10.244.N.0/24) as namespaces on the data plane's fabric, with the EndpointSlice
    /// controller writing slices for the Services created later.
    pub async fn start(nodes: usize) -> Result<Self, DataPathError> {
        let sim = NodeSimConfig::with_node_count(nodes);
        let names: Vec<String> = sim.nodes.iter().map(|n| n.name.clone()).collect();
        let cluster_cidr: IpNet = "10.244.0.0/16"
            .parse()
            .map_err(|e| DataPathError::TestEnv(format!("the cluster CIDR: {e}")))?;
        let env = TestEnv::start_with(TestEnvOptions {
            node_simulator: Some(sim),
            ..TestEnvOptions::default()
        })
        .await
        .map_err(|e| DataPathError::TestEnv(e.to_string()))?;
        let plane = DataPlane::start(
            env.client(),
            DataPlaneConfig::default(),
            env.readiness_reporter(),
        )
        .await
        .map_err(|e| DataPathError::DataPlane(e.to_string()))?;
        env.server().set_container_runtime(plane.runtime());
        let (controller, stop) = kuberun::shutdown_channel();
        let client = env.client();
        tokio::spawn(async move {
            if let Err(e) = endpointslice_controller::run(
                client,
                EndpointSliceControllerConfig::default(),
                stop,
            )
            .await
            {
                eprintln!("the EndpointSlice controller did not start: {e}");
            }
        });
        let path = Self {
            env,
            plane: Some(plane),
            nodes: names,
            cluster_cidr,
            controller,
        };
        for node in &path.nodes {
            let ns = path.wait_for_node_namespace(node).await?;
            // Every reject must answer: the kernel's per-peer ICMP rate limit (a burst of 6,
            // then one a second) would turn rejects in quick succession into drops, by timing.
            dataplane::in_netns(&ns, || {
                dataplane::netns::write_sysctl("net/ipv4/icmp_ratelimit", "0")
            })
            .map_err(|e| DataPathError::Node {
                node: node.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(path)
    }

    /// A client of the API server.
    pub fn client(&self) -> kube::Client {
        self.env.client()
    }

    /// The node names, in order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The pod network (both proxies' `--cluster-cidr`).
    pub fn cluster_cidr(&self) -> IpNet {
        self.cluster_cidr
    }

    /// The data plane.
    pub fn plane(&self) -> &DataPlane {
        // Only `shutdown` takes it, consuming `self`.
        self.plane
            .as_ref()
            .expect("the data plane runs until shutdown")
    }

    /// The network namespace of `node`.
    pub fn node_namespace(&self, node: &str) -> Result<String, DataPathError> {
        self.plane()
            .node_namespace(node)
            .ok_or_else(|| DataPathError::Node {
                node: node.to_owned(),
                message: "has no network namespace".into(),
            })
    }

    async fn wait_for_node_namespace(&self, node: &str) -> Result<String, DataPathError> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(ns) = self.plane().node_namespace(node) {
                return Ok(ns);
            }
            if Instant::now() > deadline {
                return Err(DataPathError::Node {
                    node: node.to_owned(),
                    message: format!("no network namespace after {DEADLINE:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `node`'s primary IPs, read from its Node object.
    async fn node_ips(&self, node: &str) -> Result<Vec<IpAddr>, DataPathError> {
        let nodes: Api<Node> = Api::all(self.client());
        let object = nodes.get(node).await.map_err(|e| DataPathError::Node {
            node: node.to_owned(),
            message: format!("cannot read the Node: {e}"),
        })?;
        Ok(proxy::node_addresses::node_host_ips(&object))
    }

    /// svcplane's proxy in every node's namespace, configured as `svcplane up --data-plane`
    /// configures it (IPv4, the node's primary IPs, the cluster CIDR, health checks inside the
    /// namespace).
    pub async fn start_svcplane_proxies(&self) -> Result<NodeProxies, DataPathError> {
        let (trigger, stop) = kuberun::shutdown_channel();
        let mut tasks = JoinSet::new();
        let mut namespaces = BTreeMap::new();
        for node in &self.nodes {
            let netns = self.node_namespace(node)?;
            let mut rules = proxy::RulesConfig::new(node.clone(), self.node_ips(node).await?);
            rules.cluster_cidrs = vec![self.cluster_cidr];
            let mut config = proxy::ProxyConfig::new(rules);
            config.families = vec![proxy::IpFamily::V4];
            config.runner = proxy::NftRunner::in_netns(netns.clone());
            config.listener_factory = dataplane::tcp_listener_factory(&netns);
            let client = self.client();
            let stop = stop.clone();
            let name = node.clone();
            tasks.spawn(async move {
                match proxy::run(client, config, stop.wait()).await {
                    Ok(()) => String::new(),
                    Err(e) => format!("svcplane's proxy on {name} stopped: {e}\n"),
                }
            });
            namespaces.insert(node.clone(), netns);
        }
        Ok(NodeProxies {
            namespaces,
            kind: Running::Svcplane { trigger, tasks },
        })
    }

    /// Upstream's kube-proxy (`bin`) in every node's namespace, in nftables mode, its
    /// kubeconfig, flags and log in `dir`. The API server is reached through a relay listening
    /// on the node namespace's loopback.
    pub async fn start_upstream_proxies(
        &self,
        bin: &Path,
        dir: &Path,
    ) -> Result<NodeProxies, DataPathError> {
        let api = self.env.addr();
        let mut children = Vec::new();
        let mut relays = JoinSet::new();
        let mut namespaces = BTreeMap::new();
        for node in &self.nodes {
            let netns = self.node_namespace(node)?;
            let fail = |message: String| DataPathError::KubeProxy {
                node: node.clone(),
                message,
            };
            let listener = dataplane::bind_tcp(&netns, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .map_err(|e| fail(format!("cannot listen for the API relay: {e}")))?;
            let relay = listener
                .local_addr()
                .map_err(|e| fail(format!("the relay's address: {e}")))?;
            relays.spawn(relay_to(listener, api));
            let kubeconfig = dir.join(format!("{node}.kubeconfig"));
            std::fs::write(
                &kubeconfig,
                testenv::kubeconfig_yaml(&format!("http://{relay}")),
            )
            .map_err(|e| fail(format!("cannot write {}: {e}", kubeconfig.display())))?;
            let log = dir.join(format!("{node}.log"));
            let out = std::fs::File::create(&log)
                .map_err(|e| fail(format!("cannot create {}: {e}", log.display())))?;
            let err = out
                .try_clone()
                .map_err(|e| fail(format!("cannot open {}: {e}", log.display())))?;
            let argv = upstream_argv(bin, &kubeconfig, node, self.cluster_cidr);
            let child = dataplane::netns_exec_command(&netns, &argv)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| fail(format!("cannot start {}: {e}", bin.display())))?;
            children.push(UpstreamProcess {
                node: node.clone(),
                child,
                log,
            });
            namespaces.insert(node.clone(), netns);
        }
        Ok(NodeProxies {
            namespaces,
            kind: Running::Upstream { children, relays },
        })
    }

    /// Stops the controller and removes every namespace the data plane made.
    pub async fn shutdown(mut self) -> Result<(), DataPathError> {
        self.controller.fire();
        match self.plane.take() {
            Some(plane) => plane
                .shutdown()
                .await
                .map_err(|e| DataPathError::DataPlane(e.to_string())),
            None => Ok(()),
        }
    }
}

/// kube-proxy's command line: nftables mode, IPv4 as the node, the relay's kubeconfig, JSON
/// (testenv speaks no protobuf), no conntrack sysctl written (they are the namespace's, but
/// the values are left as the kernel has them, as svcplane's proxy leaves them), its servers
/// on the namespace's loopback.
fn upstream_argv(bin: &Path, kubeconfig: &Path, node: &str, cluster_cidr: IpNet) -> Vec<String> {
    [
        bin.display().to_string(),
        "--proxy-mode=nftables".into(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--hostname-override={node}"),
        format!("--cluster-cidr={cluster_cidr}"),
        "--conntrack-max-per-core=0".into(),
        "--conntrack-tcp-timeout-established=0".into(),
        "--conntrack-tcp-timeout-close-wait=0".into(),
        "--kube-api-content-type=application/json".into(),
        format!("--healthz-bind-address={UPSTREAM_HEALTHZ}"),
        format!("--metrics-bind-address={UPSTREAM_METRICS}"),
        "--v=2".into(),
    ]
    .into()
}

/// Forwards every connection `listener` (inside a node's namespace) accepts to `api` (testenv,
/// on the root namespace's loopback), until the task is aborted: how upstream's kube-proxy,
/// run inside a namespace, reaches the API.
pub async fn relay_to(listener: tokio::net::TcpListener, api: SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(api).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// One upstream kube-proxy process.
struct UpstreamProcess {
    node: String,
    child: Child,
    log: PathBuf,
}

enum Running {
    Svcplane {
        trigger: kuberun::ShutdownTrigger,
        tasks: JoinSet<String>,
    },
    Upstream {
        children: Vec<UpstreamProcess>,
        relays: JoinSet<()>,
    },
}

/// A kube-proxy per node, of one kind. [`NodeProxies::stop`] stops them and removes their
/// tables; dropped, the children are killed (the tables go with the namespaces).
pub struct NodeProxies {
    namespaces: BTreeMap<String, String>,
    kind: Running,
}

impl NodeProxies {
    /// Each node's namespace, by node name.
    pub fn namespaces(&self) -> &BTreeMap<String, String> {
        &self.namespaces
    }

    /// What the proxies said: upstream's logs (the last 60 lines of each), or the processes
    /// that exited; for svcplane's, nothing (its errors are returned by [`NodeProxies::stop`]).
    pub fn logs(&mut self) -> String {
        let mut text = String::new();
        if let Running::Upstream { children, .. } = &mut self.kind {
            for process in children {
                if let Ok(Some(status)) = process.child.try_wait() {
                    text.push_str(&format!(
                        "kube-proxy on {} exited: {status}\n",
                        process.node
                    ));
                }
                let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(60)..];
                text.push_str(&format!(
                    "--- kube-proxy on {} ({}):\n{}\n",
                    process.node,
                    process.log.display(),
                    tail.join("\n")
                ));
            }
        }
        text
    }

    /// Fails when an upstream process has exited (it never should while the test runs).
    pub fn check_running(&mut self) -> Result<(), DataPathError> {
        if let Running::Upstream { children, .. } = &mut self.kind {
            for process in children {
                if let Ok(Some(status)) = process.child.try_wait() {
                    return Err(DataPathError::KubeProxy {
                        node: process.node.clone(),
                        message: format!("exited early ({status})"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Stops every proxy and deletes its `ip kube-proxy` (and `ip6 kube-proxy`) table, so that
    /// the next proxy starts on bare namespaces. Returns what svcplane's proxies reported.
    pub async fn stop(mut self) -> Result<String, DataPathError> {
        let mut reports = String::new();
        match &mut self.kind {
            Running::Svcplane { trigger, tasks } => {
                trigger.fire();
                while let Some(done) = tasks.join_next().await {
                    reports.push_str(&done.unwrap_or_else(|e| format!("a proxy task: {e}\n")));
                }
            }
            Running::Upstream { children, relays } => {
                for process in children.iter_mut() {
                    let _ = process.child.kill();
                    let _ = process.child.wait();
                }
                relays.shutdown().await;
            }
        }
        for ns in self.namespaces.values() {
            for family in ["ip", "ip6"] {
                if table_exists(ns, family) {
                    nft_in(ns, &["delete", "table", family, PROXY_TABLE])?;
                }
            }
        }
        Ok(reports)
    }
}

impl Drop for NodeProxies {
    fn drop(&mut self) {
        if let Running::Upstream { children, .. } = &mut self.kind {
            for process in children {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
    }
}

fn table_exists(ns: &str, family: &str) -> bool {
    nft_in(ns, &["list", "table", family, PROXY_TABLE]).is_ok()
}

/// Runs `nft ARGS` inside `ns`; its stdout, or its stderr as the error.
pub fn nft_in(ns: &str, args: &[&str]) -> Result<String, DataPathError> {
    let mut argv = vec!["nft".to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let out = dataplane::netns_exec_command(ns, &argv)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DataPathError::Command(format!("cannot run nft in {ns}: {e}")))?;
    if !out.status.success() {
        return Err(DataPathError::Command(format!(
            "nft {} in {ns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The size of a kube-proxy table: chains, rules, and elements of its sets and maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleCounts {
    /// Chains.
    pub chains: usize,
    /// Rules, over all chains.
    pub rules: usize,
    /// Sets (maps included).
    pub sets: usize,
    /// Elements, over all sets and maps.
    pub elements: usize,
}

impl std::fmt::Display for RuleCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} chains, {} rules, {} sets and maps, {} elements",
            self.chains, self.rules, self.sets, self.elements
        )
    }
}

/// Whether a set is filled by the packet path (the ClientIP affinity sets, `flags
/// dynamic,timeout`), not by the proxy: its elements depend on the traffic and expire, and are
/// not counted or compared. nft 1.0's JSON shows only the `timeout` flag of such a set.
fn is_dynamic(set: &Value) -> bool {
    set.get("flags")
        .and_then(Value::as_array)
        .is_some_and(|flags| flags.iter().any(|f| f == "dynamic" || f == "timeout"))
}

/// Counts the objects of `nft -j list table` output (libnftables' JSON: one array of objects,
/// each keyed by its kind); elements of dynamic sets are left out.
pub fn count_table(listing: &Value) -> RuleCounts {
    let mut counts = RuleCounts::default();
    let objects = listing
        .get("nftables")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for object in objects {
        if object.get("chain").is_some() {
            counts.chains += 1;
        } else if object.get("rule").is_some() {
            counts.rules += 1;
        } else if let Some(set) = object.get("set").or_else(|| object.get("map")) {
            counts.sets += 1;
            if !is_dynamic(set) {
                counts.elements += set
                    .get("elem")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
            }
        }
    }
    counts
}

/// The table as comparable lines, from `nft -j list table` output: each chain with its type,
/// hook, priority and policy; each rule as `rule CHAIN #N EXPR` (N its place in the chain, so
/// rule order counts); each set or map with its type and flags, and each element as its own line
/// (the kernel lists hash sets in no fixed order), except those of dynamic sets. Handles and counters' values, which differ
/// from one run to the next, are left out. Sorted.
pub fn table_lines(listing: &Value) -> Vec<String> {
    let objects = listing
        .get("nftables")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut lines = Vec::new();
    let mut place: BTreeMap<String, usize> = BTreeMap::new();
    for object in objects {
        let mut object = object.clone();
        strip_volatile(&mut object);
        if let Some(chain) = object.get("chain") {
            let name = chain.get("name").and_then(Value::as_str).unwrap_or("?");
            let mut rest = chain.clone();
            if let Some(map) = rest.as_object_mut() {
                for key in ["family", "table", "name"] {
                    map.remove(key);
                }
                // Removing may reorder the remaining keys.
                map.sort_keys();
            }
            lines.push(format!("chain {name} {rest}"));
        } else if let Some(rule) = object.get("rule") {
            let chain = rule.get("chain").and_then(Value::as_str).unwrap_or("?");
            let n = place.entry(chain.to_owned()).or_default();
            *n += 1;
            let expr = rule.get("expr").cloned().unwrap_or(Value::Null);
            let comment = rule.get("comment").and_then(Value::as_str).unwrap_or("");
            lines.push(format!("rule {chain} #{n} {expr} {comment:?}"));
        } else if let Some((kind, set)) = ["set", "map"]
            .iter()
            .find_map(|kind| object.get(*kind).map(|set| (*kind, set)))
        {
            let name = set.get("name").and_then(Value::as_str).unwrap_or("?");
            let mut rest = set.clone();
            let elements = rest
                .as_object_mut()
                .and_then(|map| {
                    for key in ["family", "table", "name"] {
                        map.remove(key);
                    }
                    let elements = map.remove("elem");
                    map.sort_keys();
                    elements
                })
                .and_then(|e| e.as_array().cloned())
                .unwrap_or_default();
            lines.push(format!("{kind} {name} {rest}"));
            if is_dynamic(set) {
                continue;
            }
            lines.extend(elements.iter().map(|e| format!("element {name} {e}")));
        }
    }
    lines.sort();
    lines
}

/// When `theirs` differs from `ours` (both [`table_lines`]) only by chains that are empty and
/// that no rule jumps to — chains a sync flushed and has yet to delete: upstream deletes them in
/// its first sync at least one second later, svcplane one second later on its own — their
/// names; `None` for any other difference (and for none).
pub fn pending_stale_chains(ours: &[String], theirs: &[String]) -> Option<Vec<String>> {
    if ours.iter().any(|line| !theirs.contains(line)) {
        return None;
    }
    let extra: Vec<&String> = theirs.iter().filter(|l| !ours.contains(l)).collect();
    if extra.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    for line in extra {
        let name = line.strip_prefix("chain ")?.strip_suffix(" {}")?;
        let used = theirs.iter().any(|l| {
            l.starts_with(&format!("rule {name} #"))
                || l.contains(&format!("\"target\":\"{name}\""))
        });
        if used {
            return None;
        }
        names.push(name.to_owned());
    }
    Some(names)
}

/// Removes what differs between two runs of the same rules: handles, and the numbers of
/// counters; sorts objects' keys.
fn strip_volatile(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("handle");
            map.sort_keys();
            if let Some(counter) = map.get_mut("counter") {
                *counter = Value::Null;
            }
            for inner in map.values_mut() {
                strip_volatile(inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

/// `ip kube-proxy` in `ns`, as libnftables' JSON.
pub fn table_json(ns: &str) -> Result<Value, DataPathError> {
    let out = nft_in(ns, &["-j", "list", "table", "ip", PROXY_TABLE])?;
    serde_json::from_str(&out)
        .map_err(|e| DataPathError::Command(format!("nft's JSON in {ns}: {e}")))
}

/// The counts of `ip kube-proxy` in `ns`.
pub fn table_counts(ns: &str) -> Result<RuleCounts, DataPathError> {
    Ok(count_table(&table_json(ns)?))
}

/// The directory holding upstream's `kube-proxy`: `$SVCPLANE_K8S_BIN`, else what
/// scripts/k8s-binaries built (asked with `--no-build`: a test never starts a Go build).
/// `Err` says why there is none.
pub async fn kube_proxy_binary() -> Result<PathBuf, String> {
    let dir = match std::env::var_os(realcluster::binaries::BIN_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => realcluster::binaries::built().await?.ok_or_else(|| {
            format!(
                "the Kubernetes binaries are not built (run {}, or set {})",
                realcluster::binaries::script().display(),
                realcluster::binaries::BIN_DIR_ENV
            )
        })?,
    };
    let bin = dir.join("kube-proxy");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} does not exist", bin.display()))
    }
}

/// Runs `argv` inside `ns` and waits for it: whether it succeeded, and its output.
pub fn run_in(ns: &str, argv: &[&str]) -> (bool, String) {
    let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
    match dataplane::netns_exec_command(ns, &argv)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run {argv:?}: {e}")),
    }
}

/// Whether `command` exists on this machine.
pub fn have_command(command: &str) -> bool {
    Command::new(command)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_chains_rules_and_elements_of_sets_and_maps() {
        let listing = json!({"nftables": [
            {"metainfo": {"version": "1.1.3"}},
            {"table": {"family": "ip", "name": "kube-proxy"}},
            {"chain": {"name": "a"}},
            {"chain": {"name": "b"}},
            {"rule": {"chain": "a"}},
            {"rule": {"chain": "a"}},
            {"rule": {"chain": "b"}},
            {"set": {"name": "cluster-ips", "elem": ["10.96.0.1", "10.96.0.10"]}},
            {"set": {"name": "nodeport-ips"}},
            {"map": {"name": "service-ips", "elem": [[1, 2], [3, 4], [5, 6]]}},
            {"set": {"name": "affinity-X", "flags": ["timeout"], "elem": ["10.244.1.2"]}}
        ]});
        assert_eq!(
            count_table(&listing),
            RuleCounts {
                chains: 2,
                rules: 3,
                sets: 4,
                elements: 5
            }
        );
        assert_eq!(count_table(&json!({})), RuleCounts::default());
    }

    #[test]
    fn table_lines_keep_rule_order_and_drop_handles_and_counter_values() {
        let listing = json!({"nftables": [
            {"metainfo": {"version": "1.1.3"}},
            {"chain": {"family": "ip", "table": "kube-proxy", "name": "b", "handle": 3}},
            {"chain": {"family": "ip", "table": "kube-proxy", "name": "a", "handle": 2,
                       "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
            {"rule": {"chain": "a", "handle": 7, "expr": [{"jump": {"target": "b"}}]}},
            {"rule": {"chain": "a", "handle": 5,
                      "expr": [{"counter": {"packets": 4, "bytes": 240}}, {"drop": null}]}},
            {"set": {"name": "s", "type": "ipv4_addr", "handle": 9, "elem": ["10.0.0.2", "10.0.0.1"]}},
            {"set": {"name": "d", "type": "ipv4_addr", "flags": ["dynamic", "timeout"],
                     "elem": [{"elem": {"val": "10.244.1.2", "expires": 10799}}]}}
        ]});
        let lines = table_lines(&listing);
        assert_eq!(
            lines,
            [
                r#"chain a {"hook":"prerouting","policy":"accept","prio":-100,"type":"nat"}"#,
                "chain b {}",
                r#"element s "10.0.0.1""#,
                r#"element s "10.0.0.2""#,
                r#"rule a #1 [{"jump":{"target":"b"}}] """#,
                r#"rule a #2 [{"counter":null},{"drop":null}] """#,
                r#"set d {"flags":["dynamic","timeout"],"type":"ipv4_addr"}"#,
                r#"set s {"type":"ipv4_addr"}"#,
            ]
        );
    }

    #[test]
    fn only_empty_unreferenced_chains_count_as_pending_deletion() {
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ours = lines(&[
            "chain a {}",
            r#"rule a #1 [{"jump":{"target":"b"}}] """#,
            "chain b {}",
        ]);
        let mut theirs = ours.clone();
        theirs.push("chain stale {}".into());
        assert_eq!(
            pending_stale_chains(&ours, &theirs),
            Some(vec!["stale".to_owned()])
        );
        assert_eq!(pending_stale_chains(&ours, &ours), None);
        // Missing from theirs, or an extra chain with rules or referenced: a real difference.
        assert_eq!(pending_stale_chains(&theirs, &ours), None);
        let mut with_rule = theirs.clone();
        with_rule.push(r#"rule stale #1 [{"drop":null}] """#.into());
        assert_eq!(pending_stale_chains(&ours, &with_rule), None);
        let mut referenced = theirs.clone();
        referenced.push(r#"rule a #2 [{"goto":{"target":"stale"}}] """#.into());
        assert_eq!(pending_stale_chains(&ours, &referenced), None);
    }

    #[test]
    fn upstream_runs_in_nftables_mode_for_its_node_and_speaks_json() {
        let argv = upstream_argv(
            Path::new("/bin/kube-proxy"),
            Path::new("/tmp/k"),
            "node-2",
            "10.244.0.0/16".parse().unwrap(),
        );
        for flag in [
            "--proxy-mode=nftables",
            "--hostname-override=node-2",
            "--cluster-cidr=10.244.0.0/16",
            "--kube-api-content-type=application/json",
            "--kubeconfig=/tmp/k",
        ] {
            assert!(argv.iter().any(|a| a == flag), "{flag} in {argv:?}");
        }
        assert_eq!(argv[0], "/bin/kube-proxy");
    }
}
