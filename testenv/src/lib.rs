#![forbid(unsafe_code)]
// API errors carry the whole `Status` (details, causes) by value: they are built once per failed
// request, never on a hot path, so boxing them would only add noise.
#![allow(clippy::result_large_err)]
//! testenv: an in-memory Kubernetes API server, served over real HTTP on loopback, that
//! `kube::Client`, `kube_runtime` and `kubectl` cannot tell from kube-apiserver for the kinds it
//! serves — plus a node simulator, fault injection and an operation log for tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), testenv::TestEnvError> {
//! let env = testenv::TestEnv::start().await?;
//! let client = env.client();
//! # Ok(()) }
//! ```

pub mod admission;
pub mod api;
mod binding;
mod conversion;
mod crd;
mod decode;
pub mod defaults;
mod deletion;
pub mod discovery;
pub mod durability;
pub mod exec;
pub mod faults;
mod gc;
mod health;
mod history;
pub mod meta;
mod names;
mod namespace_controller;
pub mod nodesim;
pub mod openapi;
pub mod oplog;
pub mod patch;
pub mod persist;
mod pod_target;
pub mod podlog;
pub mod protobuf;
pub mod representation;
pub mod request_metrics;
pub mod resources;
mod reviews;
pub mod router;
pub mod runtime;
mod scale;
pub mod schemas;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
mod table;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Mutex;

pub use faults::{FaultAction, FaultMatch, Faults};
pub use oplog::{Operation, OperationLog, OperationsDropped};
pub use server::{ApiServer, ServerOptions};

/// Errors starting or driving a test environment.
#[derive(Debug, thiserror::Error)]
pub enum TestEnvError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A client could not be built.
    #[error("cannot build a client: {0}")]
    Client(String),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The environment is stopped.
    #[error("the test environment is stopped")]
    Stopped,
    /// A wait ran out of time.
    #[error("timed out after {} waiting for {}", duration_text(.0), .1)]
    Timeout(Duration, String),
    /// The data directory could not be opened.
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
    /// The node simulator could not start.
    #[error(transparent)]
    NodeSimulator(#[from] nodesim::NodeSimError),
}

/// A duration as Go's `time.Duration.String` writes it (`1.5s`, `2m0s`, `250ms`), as the rest of
/// kube's tooling prints timeouts.
fn duration_text(d: &Duration) -> String {
    fn trim(units: u128, fraction: u128, digits: usize) -> String {
        let f = format!("{fraction:0digits$}");
        let f = f.trim_end_matches('0');
        if f.is_empty() {
            units.to_string()
        } else {
            format!("{units}.{f}")
        }
    }
    let nanos = d.as_nanos();
    match nanos {
        0 => "0s".to_string(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", trim(n / 1_000, n % 1_000, 3)),
        n if n < 1_000_000_000 => format!("{}ms", trim(n / 1_000_000, n % 1_000_000, 6)),
        n => {
            let secs = n / 1_000_000_000;
            let s = format!("{}s", trim(secs % 60, n % 1_000_000_000, 9));
            match (secs / 3600, secs / 60 % 60) {
                (0, 0) => s,
                (0, m) => format!("{m}m{s}"),
                (h, m) => format!("{h}h{m}m{s}"),
            }
        }
    }
}

/// How to start a test environment.
#[derive(Debug, Clone)]
pub struct TestEnvOptions {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Server behaviour.
    pub server: ServerOptions,
    /// Create `default`, `kube-system`, `kube-public` and `kube-node-lease` at start, as
    /// kube-apiserver's bootstrap does.
    pub system_namespaces: bool,
    /// How often the garbage collector sweeps for dangling owners (it also reacts to deletions at once).
    pub gc_sweep_interval: Duration,
    /// Keep the store on disk here (write-ahead log and snapshots); `None` keeps it in memory.
    pub data_dir: Option<PathBuf>,
    /// Run the node simulator with this configuration once the server listens.
    pub node_simulator: Option<nodesim::NodeSimConfig>,
    /// Run the namespace controller (kube-controller-manager's), which empties and then removes
    /// deleted namespaces; without it they stay Terminating, as on a bare kube-apiserver.
    pub namespace_controller: bool,
}

impl Default for TestEnvOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: ServerOptions::default(),
            system_namespaces: true,
            gc_sweep_interval: Duration::from_secs(2),
            data_dir: None,
            node_simulator: None,
            namespace_controller: true,
        }
    }
}

/// How often the namespace controller looks at every Terminating namespace besides reacting to
/// changes.
const NAMESPACE_RESYNC: Duration = Duration::from_secs(2);

/// The namespaces kube-apiserver creates at start-up.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A running API server with its handles for tests.
pub struct TestEnv {
    server: Arc<ApiServer>,
    addr: SocketAddr,
    listener: Mutex<Option<server::Listener>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    readiness: Option<nodesim::ReadinessReporter>,
}

impl TestEnv {
    /// Starts a server on a free loopback port with default options.
    pub async fn start() -> Result<Self, TestEnvError> {
        Self::start_with(TestEnvOptions::default()).await
    }

    /// Starts a server with `options`.
    pub async fn start_with(options: TestEnvOptions) -> Result<Self, TestEnvError> {
        let Some(dir) = options.data_dir.clone() else {
            let store = store::Store::new(options.server.watch_cache);
            return Self::start_on_store(options, store).await;
        };
        let (store, persistence, _) = persist::open(
            &dir,
            options.server.watch_cache,
            persist::PersistOptions::default(),
        )?;
        let mut env = Self::start_on_store(options, store.clone()).await?;
        let compaction = Arc::new(persistence).run_compaction(store);
        env.background.push(tokio::spawn(compaction));
        Ok(env)
    }

    /// Starts a server over an existing store (e.g. one loaded from disk).
    pub async fn start_on_store(
        options: TestEnvOptions,
        store: store::Store,
    ) -> Result<Self, TestEnvError> {
        let server = ApiServer::new(store, options.server.clone());
        server.load_crds_from_store();
        server.move_events_stored_apart();
        if options.system_namespaces {
            server.ensure_namespaces(SYSTEM_NAMESPACES).await;
        }
        let listener = server::Listener::bind(server.clone(), options.listen)
            .await
            .map_err(|source| TestEnvError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.addr;
        let gc = tokio::spawn(gc::run(server.clone(), options.gc_sweep_interval));
        let mut env = Self {
            server,
            addr,
            listener: Mutex::new(Some(listener)),
            background: vec![gc],
            readiness: None,
        };
        if options.namespace_controller {
            env.start_namespace_controller();
        }
        if let Some(config) = options.node_simulator {
            let sim = nodesim::NodeSimulator::start(env.try_client()?, config).await?;
            env.readiness = Some(sim.readiness_reporter());
            env.background.push(sim.into_task());
        }
        Ok(env)
    }

    /// Starts the namespace controller (when [`TestEnvOptions::namespace_controller`] left it
    /// off), as kube-controller-manager joining a bare kube-apiserver.
    pub fn start_namespace_controller(&mut self) {
        let task = namespace_controller::run(self.server.clone(), NAMESPACE_RESYNC);
        self.background.push(tokio::spawn(task));
    }

    /// Where the node simulator takes readiness probe results, when it runs (see
    /// [`nodesim::NodeSimConfig::external_readiness_probes`]).
    pub fn readiness_reporter(&self) -> Option<nodesim::ReadinessReporter> {
        self.readiness.clone()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's shared state (store, resources).
    pub fn server(&self) -> &Arc<ApiServer> {
        &self.server
    }

    /// A `kube::Client` for this server, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        self.try_client()
            .unwrap_or_else(|e| panic!("testenv client for {}: {e}", self.url()))
    }

    /// A `kube::Client`, or why one could not be built.
    pub fn try_client(&self) -> Result<kube::Client, TestEnvError> {
        let uri: http::Uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| TestEnvError::Client(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        config.read_timeout = Some(Duration::from_secs(300));
        kube::Client::try_from(config).map_err(|e| TestEnvError::Client(e.to_string()))
    }

    /// A kubeconfig (YAML) pointing at this server, context `testenv`.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_yaml(&self.url())
    }

    /// Writes the kubeconfig to `path`, creating parent directories.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), TestEnvError> {
        write_file(path, &self.kubeconfig())
    }

    /// The log of the requests served: the most recent `ServerOptions::operation_log_capacity`
    /// of them, with marks that count every one.
    pub fn oplog(&self) -> &OperationLog {
        &self.server.oplog
    }

    /// Fault injection for requests.
    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    /// Drops the event history: every watch ends, and resuming from an old resourceVersion gets 410.
    pub fn compact(&self) {
        self.server.store.write().compact();
        self.server.break_watches();
    }

    /// Stops listening and drops every connection, then listens again on the same address with the
    /// same data, as a restarted kube-apiserver would.
    pub async fn restart(&self) -> Result<(), TestEnvError> {
        let mut slot = self.listener.lock().await;
        if let Some(l) = slot.take() {
            l.shutdown().await;
        }
        self.server.break_watches();
        let mut last_err = None;
        for _ in 0..50 {
            match server::Listener::bind(self.server.clone(), self.addr).await {
                Ok(l) => {
                    *slot = Some(l);
                    return Ok(());
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(TestEnvError::Bind {
            addr: self.addr,
            source: last_err.unwrap_or_else(|| std::io::Error::other("bind failed")),
        })
    }

    /// Stops the server; the handle can no longer serve.
    pub async fn stop(&self) {
        if let Some(l) = self.listener.lock().await.take() {
            l.shutdown().await;
        }
        self.server.break_watches();
        for t in &self.background {
            t.abort();
        }
    }

    /// Polls `check` every 20 ms until it returns true or `timeout` passes.
    pub async fn wait_until<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<(), TestEnvError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        wait_until(what, timeout, &mut check).await
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for t in &self.background {
            t.abort();
        }
        self.server.break_watches();
    }
}

/// Polls `check` every 20 ms until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    check: &mut F,
) -> Result<(), TestEnvError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TestEnvError::Timeout(timeout, what.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A kubeconfig for an http server URL.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {url}\ncontexts:\n- name: testenv\n  context:\n    cluster: testenv\n    user: testenv\n    namespace: default\ncurrent-context: testenv\nusers:\n- name: testenv\n  user: {{}}\npreferences: {{}}\n"
    )
}

fn write_file(path: &Path, contents: &str) -> Result<(), TestEnvError> {
    let io = |source| TestEnvError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, contents).map_err(io)
}

impl ApiServer {
    /// Creates the namespaces that do not exist yet.
    pub async fn ensure_namespaces(self: &Arc<Self>, names: &[&str]) {
        let Some(rt) = self.resources().get("", "v1", "namespaces") else {
            return;
        };
        for name in names {
            if self
                .store
                .read()
                .get(&store::CollectionKey::new("", "namespaces"), "", name)
                .is_some()
            {
                continue;
            }
            let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
                "labels": {"kubernetes.io/metadata.name": name}}});
            obj["metadata"]["uid"] = json!(names::uid());
            obj["metadata"]["creationTimestamp"] = json!(names::now_rfc3339());
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            let _ = self.commit_put(&rt, &mut obj, None);
        }
    }

    /// Moves the `events.k8s.io` Events a data directory of an older testenv kept in a collection
    /// of their own into the core Events they are now stored as (see `conversion`).
    fn move_events_stored_apart(&self) {
        let Some(rt) = self.resources().get("events.k8s.io", "v1", "events") else {
            return;
        };
        let apart = store::CollectionKey::new("events.k8s.io", "events");
        let core = conversion::storage_collection(&rt);
        let mut state = self.store.write();
        let objects: Vec<_> = state.list(&apart, None, None).cloned().collect();
        let stamp = |v: &mut serde_json::Value, rv: u64| {
            api::meta_mut(v).insert("resourceVersion".into(), json!(rv.to_string()));
        };
        for old in objects {
            let mut moved = conversion::to_storage(&rt, old.value());
            stamp(&mut moved, state.next_resource_version());
            if let Err(e) = state.put(&core, &moved, None) {
                // Kept where it was: a core Event of the same name holds its place.
                tracing::warn!(namespace = %old.namespace, name = %old.name, error = %e,
                    "an events.k8s.io Event stored apart could not be moved to the core Events");
                continue;
            }
            let mut final_state = old.value();
            stamp(&mut final_state, state.next_resource_version());
            let _ = state.remove(&apart, &old.namespace, &old.name, &final_state, 0);
        }
    }

    /// Serves the CRDs already in the store (after loading from disk).
    pub fn load_crds_from_store(&self) {
        let crds: Vec<serde_json::Value> = {
            let state = self.store.read();
            state
                .list(
                    &store::CollectionKey::new("apiextensions.k8s.io", "customresourcedefinitions"),
                    None,
                    None,
                )
                .map(|o| o.value())
                .collect()
        };
        for crd in crds {
            self.crd_changed(&crd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_prints_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(500), "500ns"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(120), "2m0s"),
            (Duration::from_secs(3725), "1h2m5s"),
        ];
        for (d, want) in cases {
            assert_eq!(duration_text(&d), want, "{d:?}");
        }
        assert_eq!(
            TestEnvError::Timeout(Duration::from_secs(90), "the pod".into()).to_string(),
            "timed out after 1m30s waiting for the pod"
        );
    }
}
