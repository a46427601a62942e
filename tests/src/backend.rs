//! One test body, two backends: testenv (the embedded API server) and the real kube-apiserver
//! with etcd. [`on_both_backends!`](crate::on_both_backends) turns one `async fn` into a test per
//! backend; [`Harness`] starts the chosen one with what envtests need on either:
//!
//! - the node simulator, which plays scheduler and kubelet through the API (pods get IPs and
//!   readiness by status writes, as from a kubelet);
//! - garbage collection of owned objects (testenv's sweep, or kube-controller-manager's
//!   garbage collector next to the real apiserver);
//! - a client for the controller under test that records every request it sends, so that
//!   writes and conflicts are counted at the client on both backends.
//!
//! `SVCPLANE_TEST_BACKEND=testenv|real` runs one backend's tests only (the other's return at
//! once, saying so); unset runs both.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use http::{Request, Response};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use kube::client::{Body, ClientBuilder};
use serde_json::Value;
use testenv::nodesim::{NodeSimConfig, NodeSimulator};
use testenv::{TestEnv, TestEnvOptions};
use tokio::task::JoinHandle;

use crate::real::{RealCluster, RealClusterOptions, is_ci};

/// The ClusterIP ranges of every harness: Services in tests pick addresses from them.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16,fd00:10:96::/112";
/// How long a backend may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which API server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// testenv, in the test's process.
    Testenv,
    /// kube-apiserver + etcd built from upstream's Go modules.
    Real,
}

impl BackendKind {
    /// The name `SVCPLANE_TEST_BACKEND` uses.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Testenv => "testenv",
            BackendKind::Real => "real",
        }
    }

    /// Whether `SVCPLANE_TEST_BACKEND` lets this backend's tests run.
    pub fn is_selected(self) -> bool {
        match std::env::var("SVCPLANE_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") => true,
            Ok(chosen @ ("testenv" | "real")) => chosen == self.name(),
            Ok(other) => panic!("SVCPLANE_TEST_BACKEND must be testenv or real, not {other:?}"),
        }
    }
}

/// For each `async fn name(kind: BackendKind)` listed, a module `name` with two tests,
/// `testenv` and `real`, that run it against their backend. The bodies stay plain functions
/// (rustfmt and clippy see them); this only names the tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn testenv() {
                    $crate::backend::run_if_selected($crate::BackendKind::Testenv, super::$name)
                        .await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn real() {
                    $crate::backend::run_if_selected($crate::BackendKind::Real, super::$name).await;
                }
            }
        )+
    };
}

/// Runs `body` when `kind` is selected (see [`BackendKind::is_selected`]).
pub async fn run_if_selected<F, Fut>(kind: BackendKind, body: F)
where
    F: FnOnce(BackendKind) -> Fut,
    Fut: Future<Output = ()>,
{
    if kind.is_selected() {
        body(kind).await;
    } else {
        eprintln!("not run: SVCPLANE_TEST_BACKEND selects the other backend");
    }
}

/// What a test needs of its backend.
#[derive(Clone, Debug, Default)]
pub struct HarnessOptions {
    /// Simulated nodes that schedule and run pods; `None` leaves pods pending.
    pub nodes: Option<NodeSimConfig>,
    /// Owned objects go with their owner (kube-controller-manager's garbage collector on the
    /// real backend: a few seconds more to start).
    pub garbage_collection: bool,
}

/// The running API server.
pub enum Backend {
    /// testenv.
    Testenv(TestEnv),
    /// The real control plane.
    Real(Box<RealCluster>),
}

/// A running backend, the node simulator, and the tasks a test spawned (aborted on drop).
pub struct Harness {
    /// The API server.
    pub backend: Backend,
    /// An admin client (the test's own reads and writes).
    pub client: kube::Client,
    requests: RequestLog,
    recording_client: kube::Client,
    _nodes: Option<NodeSimulator>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Harness {
    /// Starts `kind` with `options`; `None` (after saying why) when the real binaries are
    /// missing outside CI. Under `CI=true`, or on any other start failure, the test fails.
    pub async fn start(kind: BackendKind, options: HarnessOptions) -> Option<Harness> {
        let (backend, config) = match kind {
            BackendKind::Testenv => {
                let env = TestEnv::start_with(TestEnvOptions {
                    gc_sweep_interval: Duration::from_millis(500),
                    ..TestEnvOptions::default()
                })
                .await
                .expect("testenv starts");
                let config = testenv_config(&env);
                (Backend::Testenv(env), config)
            }
            BackendKind::Real => {
                let cluster = match RealCluster::start_with(RealClusterOptions {
                    service_cluster_ip_range: SERVICE_CLUSTER_IP_RANGE.into(),
                    start_timeout: START_TIMEOUT,
                    ..RealClusterOptions::default()
                })
                .await
                {
                    Ok(cluster) => cluster,
                    Err(e) if e.is_binaries_unavailable() && !is_ci() => {
                        eprintln!("skipped on the real backend: {e} (under CI=true this fails)");
                        return None;
                    }
                    Err(e) => panic!("cannot start the real control plane: {e}"),
                };
                if options.garbage_collection {
                    cluster
                        .start_kube_controller_manager(&[], START_TIMEOUT)
                        .await
                        .expect("kube-controller-manager starts");
                }
                let config = cluster.config().clone();
                (Backend::Real(Box::new(cluster)), config)
            }
        };
        let client = kube::Client::try_from(config.clone()).expect("admin client");
        let requests = RequestLog::default();
        let recording_client = ClientBuilder::try_from(config)
            .expect("client stack")
            .with_layer(&requests.clone())
            .build();
        let nodes = match options.nodes {
            Some(nodes) => Some(
                NodeSimulator::start(client.clone(), nodes)
                    .await
                    .expect("the node simulator starts"),
            ),
            None => None,
        };
        Some(Harness {
            backend,
            client,
            requests,
            recording_client,
            _nodes: nodes,
            tasks: Vec::new(),
        })
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Testenv(_) => BackendKind::Testenv,
            Backend::Real(_) => BackendKind::Real,
        }
    }

    /// A client whose every request is recorded: give it to the controller under test.
    pub fn controller_client(&self) -> kube::Client {
        self.recording_client.clone()
    }

    /// What the controller's client has sent so far.
    pub fn requests(&self) -> &RequestLog {
        &self.requests
    }

    /// Runs `task` until the harness is dropped.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Pods of `default`.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Services of `default`.
    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// EndpointSlices of `default`.
    pub fn slice_api(&self) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// The slices labelled with the Service's name, by name.
    pub async fn slices(&self, service: &str) -> Vec<EndpointSlice> {
        let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
        let mut slices = self
            .slice_api()
            .list(&params)
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        slices
    }

    /// Creates a Service from JSON.
    pub async fn create_service(&self, service: Value) -> Service {
        let service: Service = serde_json::from_value(service).expect("service JSON");
        self.services()
            .create(&PostParams::default(), &service)
            .await
            .expect("service created")
    }

    /// Creates pods from JSON, 32 at a time.
    pub async fn create_pods(&self, pods: Vec<Value>) {
        let api = self.pods();
        let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(pods)
            .map(|p| {
                let api = api.clone();
                async move {
                    let pod: Pod = serde_json::from_value(p).expect("pod JSON");
                    api.create(&PostParams::default(), &pod).await
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for r in results {
            r.expect("pod created");
        }
    }
}

fn testenv_config(env: &TestEnv) -> kube::Config {
    let mut config = kube::Config::new(env.url().parse().expect("testenv URL"));
    config.default_namespace = "default".into();
    config.read_timeout = Some(Duration::from_secs(300));
    config
}

/// One request a recorded client sent, and the status it got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The URL path, e.g. `/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-x`.
    pub path: String,
    /// The HTTP status.
    pub status: u16,
}

impl RecordedRequest {
    /// Whether it wrote (create, update, patch or delete).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }

    /// Whether it addressed `resource` (the plural, e.g. `endpointslices`).
    pub fn is_on(&self, resource: &str) -> bool {
        let mut segments = self.path.split('/');
        segments.any(|s| s == resource)
    }
}

/// The requests of a recording client, in the order their answers came; a tower layer.
#[derive(Clone, Debug, Default)]
pub struct RequestLog(Arc<Mutex<Vec<RecordedRequest>>>);

impl RequestLog {
    /// How many requests are recorded (a mark for [`RequestLog::since`]).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The requests recorded after `mark`.
    pub fn since(&self, mark: usize) -> Vec<RecordedRequest> {
        let log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        log.get(mark..).unwrap_or_default().to_vec()
    }

    /// The successful writes to `resource` after `mark`.
    pub fn writes_since(&self, mark: usize, resource: &str) -> Vec<RecordedRequest> {
        self.since(mark)
            .into_iter()
            .filter(|r| r.is_write() && r.is_on(resource) && r.status < 300)
            .collect()
    }

    fn record(&self, request: RecordedRequest) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
    }
}

impl<S> tower::Layer<S> for RequestLog {
    type Service = Recording<S>;

    fn layer(&self, inner: S) -> Recording<S> {
        Recording {
            inner,
            log: self.clone(),
        }
    }
}

/// The service a [`RequestLog`] wraps around a client's stack.
#[derive(Clone)]
pub struct Recording<S> {
    inner: S,
    log: RequestLog,
}

type Answer<S, B> = Result<Response<B>, <S as tower::Service<Request<Body>>>::Error>;

impl<S, B> tower::Service<Request<Body>> for Recording<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Answer<S, B>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let log = self.log.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            if let Ok(response) = &answer {
                log.record(RecordedRequest {
                    method,
                    path,
                    status: response.status().as_u16(),
                });
            }
            answer
        })
    }
}
