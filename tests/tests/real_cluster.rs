//! envtest-style tests of the real control plane harness: etcd + kube-apiserver built from
//! upstream's Go modules. Outside CI they skip (with the reason) when the binaries cannot be built;
//! under `CI=true` that is a failure.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use svcplane_tests::real::{self, RealCluster, RealClusterError, RealClusterOptions};

fn service(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a valid Service literal")
}

fn running(pid: u32) -> bool {
    // Every child is reaped by the harness, so an existing /proc entry is a live process.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn starts_ready_and_reports_its_version() {
    let Some(cluster) = real::start_or_skip("starts_ready", RealClusterOptions::default()).await
    else {
        return;
    };
    let client = cluster.client();
    let readyz = client
        .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
        .await
        .expect("GET /readyz as admin");
    assert_eq!(readyz, "ok");
    let version = client.apiserver_version().await.expect("GET /version");
    assert!(
        version.git_version.starts_with("v1.34."),
        "gitVersion {} (is the build stamped?)",
        version.git_version
    );
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "34")
    );
    assert!(cluster.kubeconfig_path().is_file());
    assert!(cluster.url().starts_with("https://127.0.0.1:"));
}

#[tokio::test]
async fn kube_apiserver_allocates_a_cluster_ip_from_the_range() {
    let options = RealClusterOptions {
        service_cluster_ip_range: "10.96.0.0/28".into(),
        ..RealClusterOptions::default()
    };
    let Some(cluster) = real::start_or_skip("allocates_a_cluster_ip", options).await else {
        return;
    };
    let services: Api<Service> = Api::default_namespaced(cluster.client());
    let created = services
        .create(
            &PostParams::default(),
            &service("web", json!({"ports": [{"port": 80, "targetPort": 8080}]})),
        )
        .await
        .expect("create Service web");
    let spec = created.spec.expect("a Service has a spec");
    let ip: IpAddr = spec
        .cluster_ip
        .as_deref()
        .expect("kube-apiserver allocated a ClusterIP")
        .parse()
        .expect("the ClusterIP is an IP");
    let range: ipnet::IpNet = "10.96.0.0/28".parse().unwrap();
    assert!(range.contains(&ip), "{ip} is not in {range}");
    assert_eq!(spec.cluster_ips, Some(vec![ip.to_string()]));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
}

#[tokio::test]
async fn kube_apiserver_rejects_an_invalid_service_with_422() {
    let Some(cluster) =
        real::start_or_skip("rejects_an_invalid_service", RealClusterOptions::default()).await
    else {
        return;
    };
    let services: Api<Service> = Api::default_namespaced(cluster.client());
    let cases = [
        ("no-ports", json!({"ports": []}), "spec.ports"),
        (
            "out-of-range",
            json!({"clusterIP": "10.1.0.10", "ports": [{"port": 80}]}),
            "spec.clusterIPs",
        ),
    ];
    for (name, spec, field) in cases {
        let err = services
            .create(&PostParams::default(), &service(name, spec))
            .await
            .expect_err("kube-apiserver must reject it");
        let kube::Error::Api(status) = err else {
            panic!("{name}: expected an API error, got {err}");
        };
        assert_eq!(status.code, 422, "{name}: {}", status.message);
        assert_eq!(status.reason, "Invalid", "{name}: {}", status.message);
        assert!(
            status.message.contains(field),
            "{name}: {field} not in {}",
            status.message
        );
    }
}

#[tokio::test]
async fn nothing_is_left_running_after_drop_or_panic() {
    let Some(cluster) =
        real::start_or_skip("nothing_left_after_drop", RealClusterOptions::default()).await
    else {
        return;
    };
    let pids = cluster.pids();
    assert_eq!(pids.len(), 4, "etcd, kube-apiserver and their watchdogs");
    assert!(pids.iter().all(|&pid| running(pid)));
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    let left: Vec<u32> = pids.into_iter().filter(|&pid| running(pid)).collect();
    assert!(left.is_empty(), "still running after drop: {left:?}");
    assert!(!dir.exists(), "{} was not removed", dir.display());

    // A panicking test unwinds through the cluster's drop.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let cluster = RealCluster::start().await.expect("start");
        let _ = tx.send(cluster.pids());
        panic!("a failing test");
    });
    assert!(task.await.expect_err("the task panics").is_panic());
    let pids = rx.await.expect("the task sent its pids");
    let left: Vec<u32> = pids.into_iter().filter(|&pid| running(pid)).collect();
    assert!(left.is_empty(), "still running after a panic: {left:?}");
}

#[tokio::test]
async fn a_start_that_times_out_stops_what_it_started() {
    // Skip or fail exactly as the other tests do when there are no binaries.
    if real::binaries::locate().await.is_err() {
        drop(real::start_or_skip("start_times_out", RealClusterOptions::default()).await);
        return;
    }
    let options = RealClusterOptions {
        start_timeout: Duration::from_millis(1),
        ..RealClusterOptions::default()
    };
    let err = match RealCluster::start_with(options).await {
        Ok(_) => panic!("started within 1 ms"),
        Err(e) => e,
    };
    // Which wait runs out depends on how fast etcd starts: any of them will do.
    let RealClusterError::StartTimeout { log, .. } = &err else {
        panic!("expected a start timeout, got: {err}");
    };
    // etcd's command line holds the temporary directory (its --data-dir), which the log is in.
    let dir = Path::new(log)
        .parent()
        .and_then(Path::parent)
        .expect("the log is in <dir>/logs");
    let found = std::process::Command::new("pgrep")
        .args(["-f", &dir.display().to_string()])
        .output()
        .expect("run pgrep");
    assert!(
        found.stdout.is_empty(),
        "still running: {}",
        String::from_utf8_lossy(&found.stdout)
    );
}

/// Where the aborting helper below prints its pids.
const ABORT_HELPER_ENV: &str = "SVCPLANE_REALK8S_ABORT_HELPER";

#[tokio::test]
async fn a_killed_test_process_leaves_nothing_running() {
    if real::binaries::locate().await.is_err() {
        drop(real::start_or_skip("killed_test_process", RealClusterOptions::default()).await);
        return;
    }
    // Run the helper in a child test process that dies without running any destructor.
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "start_then_abort_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ABORT_HELPER_ENV, "1")
        .output()
        .expect("run the helper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.split_once("pids: ").map(|(_, pids)| pids))
        .unwrap_or_else(|| {
            panic!(
                "the helper printed no pids: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .split(',')
        .map(|p| p.parse().expect("a pid"))
        .collect();
    let dir = stdout
        .lines()
        .find_map(|l| l.split_once("dir: ").map(|(_, dir)| dir.to_string()))
        .expect("the helper printed its directory");
    assert!(!output.status.success(), "the helper aborted");
    // The watchdogs see their stdin close and stop the groups: SIGTERM, SIGKILL 3 s later.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&pid| running(pid)).collect();
        if left.is_empty() && !Path::new(&dir).exists() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "15 s after the test process died: still running {left:?}, {dir} exists: {}",
            Path::new(&dir).exists()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a cluster, prints its pids and aborts (no destructors run). Only does so when run by
/// `a_killed_test_process_leaves_nothing_running`.
#[tokio::test]
#[ignore = "a helper of a_killed_test_process_leaves_nothing_running"]
async fn start_then_abort_helper() {
    if std::env::var_os(ABORT_HELPER_ENV).is_none() {
        return;
    }
    let cluster = RealCluster::start().await.expect("start");
    let pids: Vec<String> = cluster.pids().iter().map(u32::to_string).collect();
    println!("dir: {}", cluster.dir().display());
    println!("pids: {}", pids.join(","));
    std::process::abort();
}

/// Start-to-ready of the real control plane against testenv's, median of 5 each, in one run:
/// `cargo test -p svcplane-tests --test real_cluster -- --ignored start_to_ready --nocapture`.
#[tokio::test]
#[ignore = "a measurement: run it on purpose"]
async fn start_to_ready_against_testenv() {
    const RUNS: usize = 5;
    fn median(mut samples: Vec<Duration>) -> Duration {
        samples.sort();
        samples[samples.len() / 2]
    }
    // The binaries are located (and built if need be) once, outside the measurement.
    real::binaries::locate()
        .await
        .expect("the Kubernetes binaries");

    let (mut real_starts, mut real_stops) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let started = std::time::Instant::now();
        let cluster = RealCluster::start()
            .await
            .expect("start the real control plane");
        real_starts.push(started.elapsed());
        let stopping = std::time::Instant::now();
        drop(cluster);
        real_stops.push(stopping.elapsed());
    }
    let mut testenv_starts = Vec::new();
    for _ in 0..RUNS {
        let started = std::time::Instant::now();
        let env = testenv::TestEnv::start().await.expect("start testenv");
        testenv_starts.push(started.elapsed());
        env.stop().await;
    }
    let (real, stop, testenv) = (
        median(real_starts.clone()),
        median(real_stops.clone()),
        median(testenv_starts.clone()),
    );
    println!("RealCluster start-to-ready: {real_starts:?}, median {real:?}");
    println!("RealCluster drop (stop): {real_stops:?}, median {stop:?}");
    println!("TestEnv::start: {testenv_starts:?}, median {testenv:?}");
    println!(
        "ratio (median real / median testenv): {:.0}x",
        real.as_secs_f64() / testenv.as_secs_f64()
    );
}
