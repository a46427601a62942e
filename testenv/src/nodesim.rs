//! A node simulator in the manner of kwok: registers Nodes, schedules unscheduled pods onto them
//! and plays their kubelet (pod IPs from the node's pod CIDR, Running, readiness, termination),
//! all as an ordinary API client, so controllers see the events a real cluster produces.
//!
//! One task serves every pod: a watch feeds a compact view of each pod, a work queue with a
//! bounded number of requests in flight drives the writes, and one timer heap holds every
//! readiness delay and termination deadline. Nothing is spawned per pod and nothing scans all
//! pods per event, so 150,000 pods cost memory, not time.

mod config;
mod ipam;
mod plan;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use config::{HOSTNAME_LABEL, NodeSimConfig, Scheduling, SimNode, ZONE_LABEL};
pub use ipam::PodCidrPool;
pub use plan::{
    Candidate, ObservedStatus, PodView, READY_ANNOTATION, READY_DELAY_ANNOTATION,
    TERMINATION_ANNOTATION, binding, container_start_events, desired_status, pick_node,
    scheduled_event,
};

/// The field manager of bindings.
pub const SCHEDULER_FIELD_MANAGER: &str = "default-scheduler";
/// The field manager of pod and node status writes.
pub const KUBELET_FIELD_MANAGER: &str = "kubelet";
/// The field manager of the taint a registered node sheds once Ready (kube-controller-manager's
/// node lifecycle controller writes as `node-controller`).
pub const NODE_CONTROLLER_FIELD_MANAGER: &str = "node-controller";
/// The taint kube-apiserver's TaintNodesByCondition admission puts on every new Node.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// How long to wait before retrying a pod whose node has no free pod IP.
const IP_EXHAUSTED_RETRY: Duration = Duration::from_secs(1);
/// Longest back-off after failed writes.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum NodeSimError {
    /// The configuration is unusable.
    #[error("invalid node simulator configuration: {0}")]
    Config(String),
    /// A Node could not be created or updated.
    #[error("cannot register node {node}: {source}")]
    Register {
        /// The node.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// A running simulator.
pub struct NodeSimulator {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    readiness: ReadinessReporter,
}

/// One readiness probe result for a pod, from an outside prober.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProbeResult {
    key: PodKey,
    uid: String,
    ready: bool,
}

/// Where an outside prober reports pods' readiness, under
/// [`NodeSimConfig::external_readiness_probes`]. Cheap to clone; results for pods the simulator
/// does not run (or a uid it no longer runs under that name) are ignored.
#[derive(Debug, Clone)]
pub struct ReadinessReporter(mpsc::UnboundedSender<ProbeResult>);

impl ReadinessReporter {
    /// Says whether the readiness probes of pod `namespace/name` (with `uid`) pass: the pod's
    /// Ready condition follows. Without `external_readiness_probes` this changes nothing.
    pub fn set_probe_result(&self, namespace: &str, name: &str, uid: &str, ready: bool) {
        // A stopped simulator has nothing left to report to.
        let _ = self.0.send(ProbeResult {
            key: format!("{namespace}/{name}").into(),
            uid: uid.to_string(),
            ready,
        });
    }
}

impl NodeSimulator {
    /// Registers the configured Nodes (Ready) and starts scheduling and running pods.
    pub async fn start(client: kube::Client, config: NodeSimConfig) -> Result<Self, NodeSimError> {
        config.validate()?;
        register_nodes(&client, &config.nodes).await?;
        let (shutdown, stop) = watch::channel(false);
        let (readiness, probe_results) = mpsc::unbounded_channel();
        let runner = Runner::new(client, config);
        let task = tokio::spawn(runner.run(stop, probe_results));
        Ok(Self {
            shutdown,
            task,
            readiness: ReadinessReporter(readiness),
        })
    }

    /// Where an outside prober reports readiness (see
    /// [`NodeSimConfig::external_readiness_probes`]).
    pub fn readiness_reporter(&self) -> ReadinessReporter {
        self.readiness.clone()
    }

    /// Says whether the readiness probes of a pod pass (see [`ReadinessReporter`]).
    pub fn set_probe_result(&self, namespace: &str, name: &str, uid: &str, ready: bool) {
        self.readiness.set_probe_result(namespace, name, uid, ready);
    }

    /// Stops, letting requests in flight finish (for at most two seconds).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// The simulator's task, running until it is aborted (for owners that abort their tasks).
    pub fn into_task(self) -> JoinHandle<()> {
        self.task
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn register_nodes(client: &kube::Client, nodes: &[SimNode]) -> Result<(), NodeSimError> {
    let api: Api<Node> = Api::all(client.clone());
    // Owned inputs keep the future `Send` for any caller (borrowed ones trip a higher-ranked
    // lifetime limitation when the caller spawns it).
    let results: Vec<Result<(), NodeSimError>> = futures::stream::iter(nodes.to_vec())
        .map(|node| {
            let api = api.clone();
            async move { register_node(&api, &node).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn register_node(api: &Api<Node>, node: &SimNode) -> Result<(), NodeSimError> {
    let err = |source| NodeSimError::Register {
        node: node.name.clone(),
        source,
    };
    let now = rfc3339(Timestamp::now());
    let object: Node = serde_json::from_value(node.node_object())
        .map_err(|e| NodeSimError::Config(format!("node {}: {e}", node.name)))?;
    let params = PatchParams {
        field_manager: Some(KUBELET_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let ready_since = match api.create(&PostParams::default(), &object).await {
        Ok(_) => now.clone(),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Registered by an earlier run over a kept store: refresh it, keeping the Ready
            // transition time so nothing looks like it flapped.
            let existing = api
                .patch(&node.name, &params, &Patch::Merge(node.node_object()))
                .await
                .map_err(err)?;
            existing
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .find(|c| c.type_ == "Ready" && c.status == "True")
                .and_then(|c| c.last_transition_time)
                .map_or_else(|| now.clone(), |t| rfc3339(t.0))
        }
        Err(e) => return Err(err(e)),
    };
    let status = json!({"status": node.node_status(&ready_since, &now)});
    let registered = api
        .patch_status(&node.name, &params, &Patch::Merge(status))
        .await
        .map_err(err)?;
    untaint_ready_node(api, registered).await.map_err(err)
}

/// Removes the `node.kubernetes.io/not-ready:NoSchedule` taint that the TaintNodesByCondition
/// admission of kube-apiserver and testenv puts on a new Node, as
/// kube-controller-manager's node lifecycle controller does once the Node reports Ready. The
/// simulator's nodes are Ready from the start and no node lifecycle controller runs beside them
/// (without kubelets renewing Node leases it would mark them Unknown), so the simulator plays its
/// part for them.
async fn untaint_ready_node(api: &Api<Node>, mut node: Node) -> Result<(), kube::Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    for _ in 0..8 {
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let kept: Vec<_> = taints
            .iter()
            .filter(|t| !(t.key == NOT_READY_TAINT && t.effect == "NoSchedule"))
            .collect();
        if kept.len() == taints.len() {
            return Ok(());
        }
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": if kept.is_empty() { Value::Null } else { json!(kept) }},
        });
        let params = PatchParams {
            field_manager: Some(NODE_CONTROLLER_FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api.patch(&name, &params, &Patch::Merge(patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => node = api.get(&name).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

type PodKey = Arc<str>;

/// A pod the simulator runs: its node and IPs, and when it started.
#[derive(Debug, Clone)]
struct Running {
    node: usize,
    ips: Vec<IpAddr>,
    since: Instant,
}

#[derive(Debug)]
struct Tracked {
    view: PodView,
    /// The node a binding in flight is placing the pod on, counted before the watch confirms it
    /// so that a burst of pods is not all sent to the same least-loaded node.
    assumed: Option<usize>,
    running: Option<Running>,
    deleting_since: Option<Instant>,
    /// The last readiness probe result reported for this pod (under external probes).
    probe_ready: bool,
    /// The earliest timer set for this pod.
    wake: Option<Instant>,
    failures: u32,
    /// The container start Events were recorded (once per pod, whatever the retries).
    start_recorded: bool,
}

#[derive(Debug, Clone)]
struct NodeLive {
    schedulable: bool,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    Bind,
    Status,
    Finalize,
}

type Done = (PodKey, ActionKind, Result<(), kube::Error>);
type Pending = Pin<Box<dyn Future<Output = Done> + Send>>;

/// Converts a wall-clock time to the monotonic clock.
fn instant_of(t: Timestamp) -> Instant {
    let now = Instant::now();
    let ago_ms = Timestamp::now().as_millisecond() - t.as_millisecond();
    if ago_ms >= 0 {
        now.checked_sub(Duration::from_millis(ago_ms as u64))
            .unwrap_or(now)
    } else {
        now + Duration::from_millis(ago_ms.unsigned_abs())
    }
}

struct Runner {
    client: kube::Client,
    config: NodeSimConfig,
    node_index: HashMap<String, usize>,
    live: Vec<NodeLive>,
    pools: Vec<Vec<PodCidrPool>>,
    load: Vec<u32>,
    capacity: Vec<u32>,
    tracked: HashMap<PodKey, Tracked>,
    queue: VecDeque<PodKey>,
    queued: HashSet<PodKey>,
    in_flight: HashSet<PodKey>,
    dirty: HashSet<PodKey>,
    timers: BinaryHeap<Reverse<(Instant, PodKey)>>,
    waiting_for_node: BTreeSet<PodKey>,
    rr_cursor: usize,
    /// Keys seen since the watch (re)started listing; `None` outside a listing.
    listing: Option<HashSet<PodKey>>,
}

impl Runner {
    fn new(client: kube::Client, config: NodeSimConfig) -> Self {
        let node_index = config
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let pools: Vec<Vec<PodCidrPool>> = config
            .nodes
            .iter()
            .map(|n| n.pod_cidrs.iter().map(|c| PodCidrPool::new(*c)).collect())
            .collect();
        let capacity = config
            .nodes
            .iter()
            .zip(&pools)
            .map(|(n, p)| {
                let ips = p.iter().map(PodCidrPool::capacity).min().unwrap_or(0);
                u32::try_from(ips).unwrap_or(u32::MAX).min(n.max_pods)
            })
            .collect();
        let live = config
            .nodes
            .iter()
            .map(|n| NodeLive {
                schedulable: true,
                labels: n.all_labels(),
            })
            .collect();
        Self {
            client,
            load: vec![0; config.nodes.len()],
            config,
            node_index,
            live,
            pools,
            capacity,
            tracked: HashMap::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashSet::new(),
            dirty: HashSet::new(),
            timers: BinaryHeap::new(),
            waiting_for_node: BTreeSet::new(),
            rr_cursor: 0,
            listing: None,
        }
    }

    async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut probe_results: mpsc::UnboundedReceiver<ProbeResult>,
    ) {
        let stop = async move {
            // A dropped handle (into_task) means "run until aborted".
            if stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(stop);
        let mut pod_events = watcher::watcher(
            Api::<Pod>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .boxed();
        let mut node_events = watcher::watcher(
            Api::<Node>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .boxed();
        let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
        loop {
            self.start_work(&mut pending);
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                () = &mut stop => break,
                Some(done) = pending.next(), if !pending.is_empty() => self.finished(done),
                Some(result) = probe_results.recv() => self.probe_result(result),
                event = pod_events.next() => match event {
                    Some(Ok(e)) => self.pod_event(e),
                    Some(Err(e)) => tracing::warn!(error = %e, "node simulator: pod watch failed; retrying"),
                    None => break,
                },
                event = node_events.next() => match event {
                    Some(Ok(e)) => self.node_event(e),
                    Some(Err(e)) => tracing::warn!(error = %e, "node simulator: node watch failed; retrying"),
                    None => break,
                },
                () = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                    self.fire_timers();
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while pending.next().await.is_some() {}
        })
        .await;
    }

    fn load_of(&self, t: &Tracked) -> Option<usize> {
        if t.view.status.terminal() {
            return None;
        }
        match &t.view.node_name {
            Some(n) => self.node_index.get(n).copied(),
            None => t.assumed,
        }
    }

    fn adjust_load(&mut self, before: Option<usize>, after: Option<usize>) {
        if before == after {
            return;
        }
        if let Some(b) = before
            && let Some(l) = self.load.get_mut(b)
        {
            *l = l.saturating_sub(1);
            // Room on a node: pods that found none may fit now.
            let waiting = std::mem::take(&mut self.waiting_for_node);
            for k in waiting {
                self.enqueue(k);
            }
        }
        if let Some(a) = after
            && let Some(l) = self.load.get_mut(a)
        {
            *l += 1;
        }
    }

    fn enqueue(&mut self, key: PodKey) {
        if self.in_flight.contains(&key) {
            self.dirty.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.queue.push_back(key);
        }
    }

    fn schedule(&mut self, key: &PodKey, at: Instant) {
        let Some(t) = self.tracked.get_mut(key) else {
            return;
        };
        if t.wake.is_some_and(|w| w <= at) {
            return;
        }
        t.wake = Some(at);
        self.timers.push(Reverse((at, key.clone())));
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            let due = self
                .tracked
                .get_mut(&key)
                .filter(|t| t.wake == Some(at))
                .map(|t| t.wake = None)
                .is_some();
            if due {
                self.enqueue(key);
            }
        }
    }

    fn release(pools: &mut [Vec<PodCidrPool>], running: Running) {
        if let Some(node_pools) = pools.get_mut(running.node) {
            for ip in running.ips {
                for pool in node_pools.iter_mut() {
                    pool.release(ip);
                }
            }
        }
    }

    fn pod_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.listing = Some(HashSet::new()),
            Event::InitApply(pod) | Event::Apply(pod) => self.pod_applied(&pod),
            Event::Delete(pod) => {
                let key: PodKey = PodView::from_pod(&pod).key().into();
                self.pod_removed(&key);
            }
            Event::InitDone => {
                let seen = self.listing.take().unwrap_or_default();
                let mut gone: Vec<PodKey> = self
                    .tracked
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                gone.sort();
                for key in gone {
                    self.pod_removed(&key);
                }
                let mut all: Vec<PodKey> = self.tracked.keys().cloned().collect();
                all.sort();
                for key in all {
                    self.enqueue(key);
                }
            }
        }
    }

    fn pod_applied(&mut self, pod: &Pod) {
        let view = PodView::from_pod(pod);
        let key: PodKey = view.key().into();
        if let Some(seen) = &mut self.listing {
            seen.insert(key.clone());
        }
        let now = Instant::now();
        let (before, mut t, known) = match self.tracked.remove(&key) {
            Some(mut old) if old.view.uid == view.uid => {
                let before = self.load_of(&old);
                old.view = view;
                (before, old, true)
            }
            Some(old) => {
                // Same name, new pod: the old one is gone.
                let before = self.load_of(&old);
                if let Some(r) = old.running {
                    Self::release(&mut self.pools, r);
                }
                (before, Tracked::new(view), false)
            }
            None => (None, Tracked::new(view), false),
        };
        if t.view.node_name.is_some() {
            t.assumed = None;
        }
        if let Some((deletion_timestamp, grace)) = t.view.deletion
            && t.deleting_since.is_none()
        {
            t.deleting_since = Some(if known {
                now
            } else {
                // Deleted before we saw it: the request was made `grace` before the deadline.
                instant_of(
                    deletion_timestamp
                        .checked_sub(jiff::SignedDuration::from_secs(grace))
                        .unwrap_or(deletion_timestamp),
                )
            });
        }
        self.adopt_ips(&mut t);
        let after = self.load_of(&t);
        self.tracked.insert(key.clone(), t);
        self.adjust_load(before, after);
        if self.listing.is_none() {
            self.enqueue(key);
        }
    }

    /// Takes over the IPs a running pod already reports (after a restart of the simulator), so
    /// they are neither handed out again nor changed.
    fn adopt_ips(&mut self, t: &mut Tracked) {
        if t.running.is_some() || t.view.status.pod_ips.is_empty() || t.view.status.terminal() {
            return;
        }
        let Some(&node) = t
            .view
            .node_name
            .as_ref()
            .and_then(|n| self.node_index.get(n))
        else {
            return;
        };
        let Some(pools) = self.pools.get_mut(node) else {
            return;
        };
        let mut claimed = Vec::new();
        for ip in &t.view.status.pod_ips {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                break;
            };
            if pools.iter_mut().any(|p| p.claim(ip)) {
                claimed.push(ip);
            } else {
                break;
            }
        }
        let running = Running {
            node,
            ips: claimed,
            since: t
                .view
                .status
                .start_time
                .map_or_else(Instant::now, instant_of),
        };
        if running.ips.len() == t.view.status.pod_ips.len() {
            t.running = Some(running);
        } else {
            Self::release(&mut self.pools, running);
        }
    }

    fn pod_removed(&mut self, key: &PodKey) {
        self.waiting_for_node.remove(key);
        let Some(t) = self.tracked.remove(key) else {
            return;
        };
        let before = self.load_of(&t);
        if let Some(r) = t.running {
            Self::release(&mut self.pools, r);
        }
        self.adjust_load(before, None);
    }

    fn probe_result(&mut self, result: ProbeResult) {
        let Some(t) = self.tracked.get_mut(&result.key) else {
            return;
        };
        if t.view.uid != result.uid || t.probe_ready == result.ready {
            return;
        }
        t.probe_ready = result.ready;
        self.enqueue(result.key);
    }

    fn node_event(&mut self, event: Event<Node>) {
        let (node, present) = match event {
            Event::Apply(n) | Event::InitApply(n) => (n, true),
            Event::Delete(n) => (n, false),
            Event::Init | Event::InitDone => return,
        };
        let Some(&i) = node
            .metadata
            .name
            .as_ref()
            .and_then(|n| self.node_index.get(n))
        else {
            return;
        };
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let cordoned = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let live = NodeLive {
            schedulable: present && ready && !cordoned,
            labels: node.metadata.labels.clone().unwrap_or_default(),
        };
        let better =
            live.schedulable && !self.live[i].schedulable || live.labels != self.live[i].labels;
        self.live[i] = live;
        if better {
            let waiting = std::mem::take(&mut self.waiting_for_node);
            for k in waiting {
                self.enqueue(k);
            }
        }
    }

    fn start_work(&mut self, pending: &mut FuturesUnordered<Pending>) {
        while self.in_flight.len() < self.config.max_in_flight {
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&key);
            if self.in_flight.contains(&key) {
                self.dirty.insert(key);
                continue;
            }
            if let Some(work) = self.reconcile(&key) {
                self.in_flight.insert(key);
                pending.push(work);
            }
        }
    }

    fn pods_api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn events_api(&self, namespace: &str) -> Api<CoreEvent> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Decides and starts the next write for one pod, or sets a timer, or does nothing.
    fn reconcile(&mut self, key: &PodKey) -> Option<Pending> {
        let now = Instant::now();
        let t = self.tracked.get(key)?;
        let node = t
            .view
            .node_name
            .as_ref()
            .and_then(|n| self.node_index.get(n))
            .copied();
        if let Some(period) = t.view.termination_period() {
            // Only our kubelet finalizes; unbound pods are deleted by the server at once.
            node?;
            let due = t.deleting_since.unwrap_or(now) + period;
            if now < due {
                self.schedule(key, due);
                return None;
            }
            let api = self.pods_api(&t.view.namespace);
            let (name, uid) = (t.view.name.clone(), t.view.uid.clone());
            let key = key.clone();
            return Some(Box::pin(async move {
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                let r = api.delete(&name, &params).await.map(|_| ());
                (key, ActionKind::Finalize, r)
            }));
        }
        if t.view.status.terminal() {
            return None;
        }
        match node {
            None if t.view.node_name.is_none() => self.bind(key),
            None => None,
            Some(node) => self.run_pod(key, node, now),
        }
    }

    fn bind(&mut self, key: &PodKey) -> Option<Pending> {
        let t = self.tracked.get(key)?;
        if !t.view.ours_to_schedule || t.assumed.is_some() {
            return None;
        }
        let candidates: Vec<Candidate<'_>> = self
            .live
            .iter()
            .enumerate()
            .map(|(i, live)| Candidate {
                labels: &live.labels,
                schedulable: live.schedulable,
                pods: self.load[i],
                capacity: self.capacity[i],
            })
            .collect();
        let Some(chosen) = pick_node(
            &t.view,
            &candidates,
            self.config.scheduling,
            &mut self.rr_cursor,
        ) else {
            self.waiting_for_node.insert(key.clone());
            return None;
        };
        let node_name = self.config.nodes[chosen].name.clone();
        let binding = binding(&t.view, &node_name);
        let api = self.pods_api(&t.view.namespace);
        let name = t.view.name.clone();
        let events = self.config.pod_events.then(|| {
            (
                self.events_api(&t.view.namespace),
                vec![scheduled_event(&t.view, &node_name, Timestamp::now())],
            )
        });
        if let Some(t) = self.tracked.get_mut(key) {
            t.assumed = Some(chosen);
        }
        self.adjust_load(None, Some(chosen));
        let key = key.clone();
        Some(Box::pin(async move {
            let params = PostParams {
                field_manager: Some(SCHEDULER_FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            let r = api
                .create_subresource::<_, Value>("binding", &name, &params, &binding)
                .await
                .map(|_| ());
            if r.is_ok()
                && let Some((events_api, events)) = events
            {
                record_events(&events_api, events).await;
            }
            (key, ActionKind::Bind, r)
        }))
    }

    fn run_pod(&mut self, key: &PodKey, node: usize, now: Instant) -> Option<Pending> {
        let Runner {
            tracked,
            pools,
            config,
            ..
        } = self;
        let t = tracked.get_mut(key)?;
        if t.running.as_ref().is_some_and(|r| r.node != node)
            && let Some(r) = t.running.take()
        {
            Self::release(pools, r);
        }
        if t.running.is_none() {
            let node_pools = pools.get_mut(node)?;
            let mut ips = Vec::new();
            for pool in node_pools.iter_mut() {
                match pool.allocate() {
                    Some(ip) => ips.push(ip),
                    None => break,
                }
            }
            let running = Running {
                node,
                since: t.view.status.start_time.map_or(now, instant_of),
                ips,
            };
            if running.ips.len() < node_pools.len() {
                tracing::warn!(pod = %key, node = %config.nodes[node].name, "node simulator: no free pod IP on the node; retrying");
                Self::release(pools, running);
                self.schedule(key, now + IP_EXHAUSTED_RETRY);
                return None;
            }
            t.running = Some(running);
        }
        let running = t.running.as_ref()?;
        let delay = t.view.ready_delay.unwrap_or(config.ready_delay);
        let ready_at = running.since + delay;
        // Under external probes a probed pod is Ready only while its prober says so, as the
        // kubelet's prober manager holds a probed container unready until its first success.
        let probe_allows =
            !(config.external_readiness_probes && t.view.has_readiness_probe) || t.probe_ready;
        let ready = !t.view.held_unready && now >= ready_at && probe_allows;
        let patch = desired_status(
            &t.view,
            &config.nodes[node],
            &running.ips,
            ready,
            Timestamp::now(),
        );
        let (namespace, name) = (t.view.namespace.clone(), t.view.name.clone());
        // The first status that shows the containers running is when a kubelet has started them.
        let starts = patch
            .as_ref()
            .and_then(|p| p.pointer("/status/phase"))
            .and_then(Value::as_str)
            == Some("Running")
            && t.view.status.phase.as_deref() != Some("Running")
            && !t.start_recorded;
        let events = (config.pod_events && starts).then(|| {
            t.start_recorded = true;
            container_start_events(&t.view, &config.nodes[node].name, Timestamp::now())
        });
        if !t.view.held_unready && now < ready_at {
            self.schedule(key, ready_at);
        }
        let patch = patch?;
        let events = events.map(|events| (self.events_api(&namespace), events));
        let api = self.pods_api(&namespace);
        let key = key.clone();
        Some(Box::pin(async move {
            let params = PatchParams {
                field_manager: Some(KUBELET_FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            let r = api
                .patch_status(&name, &params, &Patch::Merge(patch))
                .await
                .map(|_| ());
            if r.is_ok()
                && let Some((events_api, events)) = events
            {
                record_events(&events_api, events).await;
            }
            (key, ActionKind::Status, r)
        }))
    }

    fn finished(&mut self, (key, kind, result): Done) {
        self.in_flight.remove(&key);
        match result {
            Ok(()) => {
                if let Some(t) = self.tracked.get_mut(&key) {
                    t.failures = 0;
                }
            }
            Err(e) => {
                if kind == ActionKind::Bind
                    && let Some(t) = self.tracked.get_mut(&key)
                    && let Some(assumed) = t.assumed.take()
                {
                    self.adjust_load(Some(assumed), None);
                }
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                if !gone && let Some(t) = self.tracked.get_mut(&key) {
                    t.failures = t.failures.saturating_add(1);
                    let backoff = Duration::from_millis(50)
                        .saturating_mul(1 << t.failures.min(7))
                        .min(MAX_BACKOFF);
                    tracing::debug!(pod = %key, ?kind, error = %e, ?backoff, "node simulator: write failed; retrying");
                    self.schedule(&key, Instant::now() + backoff);
                }
            }
        }
        if self.dirty.remove(&key) {
            self.enqueue(key);
        }
    }
}

/// Creates Events in order. Like client-go's recorder, a failed one is logged and dropped: an
/// Event is best effort and never holds up the pod.
async fn record_events(api: &Api<CoreEvent>, events: Vec<Value>) {
    for event in events {
        let event = match serde_json::from_value::<CoreEvent>(event) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "node simulator: an Event it built does not decode");
                continue;
            }
        };
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(error = %e, "node simulator: recording an Event failed; dropped");
        }
    }
}

impl Tracked {
    fn new(view: PodView) -> Self {
        Self {
            view,
            assumed: None,
            running: None,
            deleting_since: None,
            probe_ready: false,
            wake: None,
            failures: 0,
            start_recorded: false,
        }
    }
}
