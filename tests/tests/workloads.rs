//! The Deployment and ReplicaSet controllers against testenv with the node simulator, driven
//! by the real kubectl as a playground user drives them (spec §4.9): `create deployment`,
//! `expose`, `scale`, `set image`, `rollout status|restart|undo`, `get deploy,rs`, and a
//! Recreate rollout.
//!
//! Each runs on testenv and on a bare kube-apiserver + etcd (no kube-controller-manager, whose
//! own Deployment and ReplicaSet controllers these stand in for in the playground): the
//! controllers must work against the real API's status, scale and patch semantics too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use controllers::deployment_controller::{DeploymentController, DeploymentControllerConfig};
use controllers::replicaset_controller::{ReplicaSetController, ReplicaSetControllerConfig};
use controllers::runtime::Shutdown;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use svcplane_tests::real::{self, RealCluster, RealClusterOptions};
use testenv::TestEnv;
use testenv::nodesim::{NodeSimConfig, NodeSimulator};

const WAIT: Duration = Duration::from_secs(60);

fn kubectl_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(!real::is_ci(), "kubectl is not on PATH (CI=true)");
        eprintln!("skipping: kubectl is not on PATH (under CI=true this is a failure)");
    }
    found
}

/// The API server under test.
enum Backend {
    Testenv(TestEnv),
    Real(Box<RealCluster>),
}

/// The playground: an API server, the node simulator, both controllers, and a kubeconfig for
/// kubectl.
struct Playground {
    backend: Backend,
    _simulator: NodeSimulator,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    deployment_events: controllers::runtime::EventRecorder,
    _dir: tempfile::TempDir,
}

impl Drop for Playground {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Playground {
    async fn start(real: bool) -> Option<Self> {
        let kubectl = kubectl_binary()?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        let backend = if real {
            let cluster = real::start_or_skip("workloads", RealClusterOptions::default()).await?;
            std::fs::copy(cluster.kubeconfig_path(), &kubeconfig).expect("kubeconfig");
            Backend::Real(Box::new(cluster))
        } else {
            let env = TestEnv::start().await.expect("testenv starts");
            env.write_kubeconfig(&kubeconfig).expect("kubeconfig");
            Backend::Testenv(env)
        };
        let client = match &backend {
            Backend::Testenv(env) => env.client(),
            Backend::Real(cluster) => cluster.client(),
        };
        let simulator = NodeSimulator::start(client.clone(), NodeSimConfig::default())
            .await
            .expect("the node simulator starts");
        let replica_sets =
            ReplicaSetController::new(client.clone(), ReplicaSetControllerConfig::default());
        let deployments =
            DeploymentController::new(client.clone(), DeploymentControllerConfig::default());
        let deployment_events = deployments.events();
        let tasks = vec![
            tokio::spawn(replica_sets.run(Shutdown::never())),
            tokio::spawn(deployments.run(Shutdown::never())),
        ];
        Some(Playground {
            backend,
            _simulator: simulator,
            tasks,
            kubectl,
            kubeconfig,
            deployment_events,
            _dir: dir,
        })
    }

    fn client(&self) -> kube::Client {
        match &self.backend {
            Backend::Testenv(env) => env.client(),
            Backend::Real(cluster) => cluster.client(),
        }
    }

    /// Runs kubectl (off the runtime's threads: it blocks).
    async fn kubectl(&self, args: &[&str]) -> Output {
        let (kubectl, kubeconfig) = (self.kubectl.clone(), self.kubeconfig.clone());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || run_kubectl(&kubectl, &kubeconfig, &args))
            .await
            .expect("kubectl ran")
    }

    /// Runs kubectl and requires success.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.ok,
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `kubectl rollout status` must end with upstream's success message.
    async fn rolled_out(&self, deployment: &str) -> String {
        let target = format!("deploy/{deployment}");
        let out = self
            .ok(&["rollout", "status", &target, "--timeout=60s"])
            .await;
        assert!(
            out.trim_end().ends_with(&format!(
                "deployment \"{deployment}\" successfully rolled out"
            )),
            "{out}"
        );
        out
    }

    async fn pods_of(&self, app: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::default_namespaced(self.client());
        pods.list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .expect("list pods")
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Waits until `app` has exactly `count` pods, all Running and Ready, with `image`.
    async fn wait_for_pods(&self, app: &str, count: usize, image: &str) -> Vec<Pod> {
        let deadline = Instant::now() + WAIT;
        loop {
            let pods = self.pods_of(app).await;
            let good = pods.len() == count
                && pods.iter().all(|p| {
                    running_and_ready(p)
                        && p.spec.as_ref().map(|s| s.containers[0].image.as_deref())
                            == Some(Some(image))
                });
            if good {
                return pods;
            }
            assert!(
                Instant::now() < deadline,
                "{app}: wanted {count} ready pods of {image}, have {:?}",
                pods.iter()
                    .map(|p| (
                        p.metadata.name.clone(),
                        p.status.as_ref().and_then(|s| s.phase.clone())
                    ))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn run_kubectl(kubectl: &Path, kubeconfig: &Path, args: &[String]) -> Output {
    let output = Command::new(kubectl)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl");
    Output {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn running_and_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `web-<hash>-<5 characters>`, the hash and suffix from `SafeEncodeString`'s alphabet.
fn assert_pod_name(name: &str, rs_name: &str) {
    let alphabet = "bcdfghjklmnpqrstvwxz2456789";
    let suffix = name
        .strip_prefix(&format!("{rs_name}-"))
        .unwrap_or_else(|| panic!("{name} is not a pod of {rs_name}"));
    assert_eq!(suffix.len(), 5, "{name}");
    assert!(suffix.chars().all(|c| alphabet.contains(c)), "{name}");
    let hash = rs_name.strip_prefix("web-").expect("web-<hash>");
    assert!(
        (1..=10).contains(&hash.len()) && hash.chars().all(|c| alphabet.contains(c)),
        "{rs_name}"
    );
}

async fn replica_sets(client: &kube::Client) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let mut items = api
        .list(&ListParams::default())
        .await
        .expect("list rs")
        .items;
    items.sort_by_key(|rs| rs.metadata.name.clone());
    items
}

fn annotation(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<String> {
    meta.annotations.as_ref()?.get(key).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_a_deployment_on_testenv() {
    kubectl_creates_scales_updates_restarts_and_undoes_a_deployment(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_a_deployment_on_kube_apiserver() {
    kubectl_creates_scales_updates_restarts_and_undoes_a_deployment(true).await;
}

async fn kubectl_creates_scales_updates_restarts_and_undoes_a_deployment(real: bool) {
    let Some(playground) = Playground::start(real).await else {
        return;
    };
    let client = playground.client();

    let out = playground
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=3",
        ])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web created");
    playground.rolled_out("web").await;
    let pods = playground.wait_for_pods("web", 3, "nginx").await;
    let rss = replica_sets(&client).await;
    assert_eq!(rss.len(), 1);
    let first_rs = rss[0].metadata.name.clone().unwrap();
    for pod in &pods {
        assert_pod_name(pod.metadata.name.as_deref().unwrap(), &first_rs);
    }
    assert_eq!(
        annotation(&rss[0].metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("1")
    );

    let out = playground
        .ok(&["expose", "deployment", "web", "--port=80"])
        .await;
    assert_eq!(out.trim(), "service/web exposed");
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let svc = services.get("web").await.expect("the Service");
    let spec = svc.spec.unwrap();
    assert_eq!(
        spec.selector.unwrap().get("app").map(String::as_str),
        Some("web")
    );
    assert_eq!(spec.ports.unwrap()[0].port, 80);

    let out = playground
        .ok(&["scale", "deploy/web", "--replicas=5"])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    playground.rolled_out("web").await;
    playground.wait_for_pods("web", 5, "nginx").await;

    let out = playground
        .ok(&["set", "image", "deploy/web", "nginx=nginx:1.28"])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web image updated");
    let status = playground.rolled_out("web").await;
    assert!(
        status.contains("Waiting for deployment \"web\" rollout to finish"),
        "kubectl saw the rollout in progress: {status}"
    );
    playground.wait_for_pods("web", 5, "nginx:1.28").await;
    let rss = replica_sets(&client).await;
    assert_eq!(rss.len(), 2, "the old ReplicaSet is kept at 0");
    let old = rss
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(&first_rs))
        .unwrap();
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));

    let out = playground.ok(&["rollout", "restart", "deploy/web"]).await;
    assert_eq!(out.trim(), "deployment.apps/web restarted");
    playground.rolled_out("web").await;
    let restarted = playground.wait_for_pods("web", 5, "nginx:1.28").await;
    assert!(restarted.iter().all(|p| {
        p.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("kubectl.kubernetes.io/restartedAt"))
    }));
    assert_eq!(replica_sets(&client).await.len(), 3);

    // Undo goes back to revision 2 (nginx:1.28 without restartedAt), which becomes revision 4.
    let out = playground.ok(&["rollout", "undo", "deploy/web"]).await;
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    playground.rolled_out("web").await;
    let undone = playground.wait_for_pods("web", 5, "nginx:1.28").await;
    assert!(undone.iter().all(|p| {
        !p.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("kubectl.kubernetes.io/restartedAt"))
    }));
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let web = deployments.get("web").await.unwrap();
    assert_eq!(
        annotation(&web.metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("4")
    );
    let promoted = replica_sets(&client)
        .await
        .into_iter()
        .find(|rs| {
            annotation(&rs.metadata, "deployment.kubernetes.io/revision").as_deref() == Some("4")
        })
        .expect("the re-promoted ReplicaSet");
    assert_eq!(
        annotation(
            &promoted.metadata,
            "deployment.kubernetes.io/revision-history"
        )
        .as_deref(),
        Some("2")
    );
    let status = web.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(5), Some(5), Some(5), Some(5))
    );
    let conditions = status.conditions.unwrap();
    let reason = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t)
            .and_then(|c| c.reason.clone())
    };
    assert_eq!(
        reason("Available").as_deref(),
        Some("MinimumReplicasAvailable")
    );
    assert_eq!(
        reason("Progressing").as_deref(),
        Some("NewReplicaSetAvailable")
    );

    let history = playground.ok(&["rollout", "history", "deploy/web"]).await;
    assert!(history.contains('3') && history.contains('4'), "{history}");

    // kubectl get deploy,rs prints testenv's tables.
    let table = playground.ok(&["get", "deploy,rs"]).await;
    let deploy_line = table
        .lines()
        .find(|l| l.starts_with("deployment.apps/web "))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = deploy_line.split_whitespace().collect();
    assert_eq!(&cells[1..4], &["5/5", "5", "5"], "{table}");
    let promoted_name = promoted.metadata.name.unwrap();
    let rs_line = table
        .lines()
        .find(|l| l.starts_with(&format!("replicaset.apps/{promoted_name} ")))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = rs_line.split_whitespace().collect();
    assert_eq!(&cells[1..4], &["5", "5", "5"], "{table}");
    assert!(table.contains("DESIRED   CURRENT   READY"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_on_testenv() {
    a_recreate_deployment_replaces_every_pod_at_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_on_kube_apiserver() {
    a_recreate_deployment_replaces_every_pod_at_once(true).await;
}

async fn a_recreate_deployment_replaces_every_pod_at_once(real: bool) {
    let Some(playground) = Playground::start(real).await else {
        return;
    };
    let manifest = playground._dir.path().join("recreate.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: batch\nspec:\n  replicas: 2\n  strategy:\n    type: Recreate\n  selector:\n    matchLabels:\n      app: batch\n  template:\n    metadata:\n      labels:\n        app: batch\n    spec:\n      terminationGracePeriodSeconds: 2\n      containers:\n      - name: worker\n        image: busybox:1.36\n",
    )
    .unwrap();
    let out = playground
        .ok(&["apply", "-f", manifest.to_str().unwrap()])
        .await;
    assert_eq!(out.trim(), "deployment.apps/batch created");
    playground.rolled_out("batch").await;
    playground.wait_for_pods("batch", 2, "busybox:1.36").await;

    playground
        .ok(&["set", "image", "deploy/batch", "worker=busybox:1.37"])
        .await;
    playground.rolled_out("batch").await;
    playground.wait_for_pods("batch", 2, "busybox:1.37").await;
    // Recreate never runs both templates: the events show the old ReplicaSet emptied first.
    let rss = replica_sets(&playground.client()).await;
    assert_eq!(rss.len(), 2);
    // The controller's events in the order recorded (kube's recorder folds events of one
    // reason into one series in the API, so the API shows only the first message).
    let events: Vec<String> = playground
        .deployment_events
        .recent()
        .into_iter()
        .filter(|e| e.object == "default/batch")
        .map(|e| e.message)
        .collect();
    let down = events
        .iter()
        .position(|l| l.starts_with("Scaled down replica set batch-"));
    let up_new = events
        .iter()
        .enumerate()
        .rfind(|(_, l)| l.starts_with("Scaled up replica set batch-"))
        .map(|(i, _)| i);
    assert!(
        matches!((down, up_new), (Some(d), Some(u)) if d < u),
        "{events:?}"
    );
}

mod load_balancer {
    use super::*;
    use controllers::loadbalancer_controller::{
        LoadBalancerController, LoadBalancerControllerConfig,
    };
    use k8s_openapi::api::core::v1::Event;

    fn controller(client: &kube::Client, pool: &[&str]) -> LoadBalancerController {
        let config = LoadBalancerControllerConfig {
            pool: pool.iter().map(|s| s.to_string()).collect(),
            ..LoadBalancerControllerConfig::default()
        };
        LoadBalancerController::new(client.clone(), config).expect("a valid pool")
    }

    async fn ingress_ips(services: &Api<Service>, name: &str) -> Vec<String> {
        services
            .get(name)
            .await
            .expect("the Service")
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip)
            .collect()
    }

    async fn wait_for_ips(services: &Api<Service>, name: &str, want: &[&str]) {
        let deadline = Instant::now() + WAIT;
        loop {
            let ips = ingress_ips(services, name).await;
            if ips == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: ingress {ips:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_testenv() {
        load_balancers_get_pool_ips_shown_by_kubectl_and_an_exhausted_pool_warns(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_kube_apiserver() {
        load_balancers_get_pool_ips_shown_by_kubectl_and_an_exhausted_pool_warns(true).await;
    }

    async fn load_balancers_get_pool_ips_shown_by_kubectl_and_an_exhausted_pool_warns(real: bool) {
        let Some(mut playground) = Playground::start(real).await else {
            return;
        };
        let client = playground.client();
        let pool = ["198.18.100.10-198.18.100.11"];
        let lb = controller(&client, &pool);
        playground
            .tasks
            .push(tokio::spawn(lb.run(Shutdown::never())));

        playground
            .ok(&[
                "create",
                "deployment",
                "web",
                "--image=nginx",
                "--replicas=2",
            ])
            .await;
        let out = playground
            .ok(&[
                "expose",
                "deployment",
                "web",
                "--port=80",
                "--type=LoadBalancer",
                "--name=web-lb",
            ])
            .await;
        assert_eq!(out.trim(), "service/web-lb exposed");
        let services: Api<Service> = Api::default_namespaced(client.clone());
        wait_for_ips(&services, "web-lb", &["198.18.100.10"]).await;
        let svc = services.get("web-lb").await.unwrap();
        let ingress = svc.status.unwrap().load_balancer.unwrap().ingress.unwrap();
        assert_eq!(ingress[0].ip_mode.as_deref(), Some("VIP"));
        let table = playground.ok(&["get", "svc", "web-lb"]).await;
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        let column = header
            .iter()
            .position(|h| *h == "EXTERNAL-IP")
            .expect("EXTERNAL-IP");
        assert_eq!(row[column], "198.18.100.10", "{table}");

        // A Service of another class is not ours.
        let classed = playground._dir.path().join("classed.yaml");
        std::fs::write(
            &classed,
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: other-class\nspec:\n  type: LoadBalancer\n  loadBalancerClass: example.com/lb\n  selector:\n    app: web\n  ports:\n  - port: 80\n",
        )
        .unwrap();
        playground
            .ok(&["apply", "-f", classed.to_str().unwrap()])
            .await;

        for name in ["second", "third"] {
            playground
                .ok(&["create", "service", "loadbalancer", name, "--tcp=80:80"])
                .await;
        }
        wait_for_ips(&services, "second", &["198.18.100.11"]).await;
        // The pool is exhausted: no IP for the third, and a Warning event on it.
        let events: Api<Event> = Api::default_namespaced(client.clone());
        let deadline = Instant::now() + WAIT;
        let warning = loop {
            let found = events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some("third")
                        && e.reason.as_deref() == Some("AllocationFailed")
                });
            if let Some(found) = found {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "no AllocationFailed event for third"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(warning.type_.as_deref(), Some("Warning"));
        assert_eq!(
            warning.message.as_deref(),
            Some("Failed to allocate IP for \"default/third\": no available IPs")
        );
        // Written as kube-controller-manager's controllers write theirs: core/v1, with the
        // controller as the event's source.
        assert_eq!(
            warning.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("loadbalancer-ip-controller")
        );
        // So `kubectl describe` shows it (it lists core/v1 Events of the object).
        let described = playground.ok(&["describe", "service", "third"]).await;
        let line = described
            .lines()
            .find(|l| l.contains("AllocationFailed"))
            .unwrap_or_else(|| panic!("no event in kubectl describe:\n{described}"));
        assert!(
            line.contains("Warning") && line.contains("loadbalancer-ip-controller"),
            "{line}"
        );
        assert!(ingress_ips(&services, "third").await.is_empty());
        assert!(ingress_ips(&services, "other-class").await.is_empty());

        // Turning web-lb into a ClusterIP Service releases its IP, which the third one gets.
        playground
            .ok(&[
                "patch",
                "svc",
                "web-lb",
                "-p",
                r#"{"spec":{"type":"ClusterIP"}}"#,
            ])
            .await;
        wait_for_ips(&services, "web-lb", &[]).await;
        wait_for_ips(&services, "third", &["198.18.100.10"]).await;

        // Deleting a Service releases its IP too.
        playground.ok(&["delete", "svc", "second"]).await;
        playground
            .ok(&["create", "service", "loadbalancer", "fourth", "--tcp=80:80"])
            .await;
        wait_for_ips(&services, "fourth", &["198.18.100.11"]).await;

        // A restarted controller keeps every assignment (from the Services' status) and
        // hands out nothing twice.
        for task in playground.tasks.drain(2..) {
            task.abort();
        }
        let restarted = controller(&client, &pool);
        let restarted_events = restarted.events();
        playground
            .tasks
            .push(tokio::spawn(restarted.run(Shutdown::never())));
        playground
            .ok(&["create", "service", "loadbalancer", "fifth", "--tcp=80:80"])
            .await;
        let deadline = Instant::now() + WAIT;
        while !restarted_events
            .recent()
            .iter()
            .any(|e| e.object == "default/fifth" && e.reason == "AllocationFailed")
        {
            assert!(
                Instant::now() < deadline,
                "no AllocationFailed event for fifth"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(ingress_ips(&services, "third").await, vec!["198.18.100.10"]);
        assert_eq!(
            ingress_ips(&services, "fourth").await,
            vec!["198.18.100.11"]
        );
        assert!(ingress_ips(&services, "fifth").await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_on_testenv() {
    a_replica_set_adopts_matching_orphans_and_releases_relabeled_pods(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_on_kube_apiserver() {
    a_replica_set_adopts_matching_orphans_and_releases_relabeled_pods(true).await;
}

fn controller_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

async fn a_replica_set_adopts_matching_orphans_and_releases_relabeled_pods(real: bool) {
    let Some(playground) = Playground::start(real).await else {
        return;
    };
    let client = playground.client();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    playground
        .ok(&["run", "orphan", "--image=nginx", "--labels=app=adopt"])
        .await;
    let manifest = playground._dir.path().join("rs.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: adopter\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: adopt\n  template:\n    metadata:\n      labels:\n        app: adopt\n    spec:\n      containers:\n      - name: nginx\n        image: nginx\n",
    )
    .unwrap();
    playground
        .ok(&["apply", "-f", manifest.to_str().unwrap()])
        .await;
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let rs_uid = rs_api.get("adopter").await.unwrap().metadata.uid.unwrap();

    // The orphan is adopted and counts: one pod is created, not two.
    playground.wait_for_pods("adopt", 2, "nginx").await;
    let orphan = pods.get("orphan").await.unwrap();
    assert_eq!(controller_uid(&orphan).as_deref(), Some(rs_uid.as_str()));

    // Relabeled out of the selector: released, and replaced.
    playground
        .ok(&["label", "pod", "orphan", "app=quarantine", "--overwrite"])
        .await;
    let replaced = playground.wait_for_pods("adopt", 2, "nginx").await;
    assert!(
        replaced
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some("orphan"))
    );
    let deadline = Instant::now() + WAIT;
    while controller_uid(&pods.get("orphan").await.unwrap()).is_some() {
        assert!(Instant::now() < deadline, "orphan was not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The status counts the replacement once a sync after its creation writes it: the sync
    // that releases the orphan writes `replicas: 1` (upstream's too), the next one 2.
    loop {
        let replicas = rs_api
            .get("adopter")
            .await
            .unwrap()
            .status
            .map(|s| s.replicas);
        if replicas == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status.replicas is {replicas:?}, not 2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
