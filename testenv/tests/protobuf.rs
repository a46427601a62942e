//! kubectl 1.32+ sends its generator commands' objects as protobuf
//! (`application/vnd.kubernetes.protobuf`): the real kubectl builds create Services, ConfigMaps,
//! Secrets, Namespaces, ServiceAccounts, Pods and Deployments against testenv, and the objects are
//! read back through `kube::Client`. The same commands through kubectl 1.27 (JSON) store the same
//! objects. (`kubectl run` and `kubectl expose` go through kubectl's resource helper, which still
//! sends JSON; they run here beside the generators as a control.) Malformed and undecodable
//! protobuf bodies get kube-apiserver's 400 and 415 answers.
//!
//! With `CI=true` a missing kubectl build fails the test; elsewhere the test prints why it skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use serde_json::Value;
use testenv::TestEnv;

/// Where the versioned kubectl builds live on these machines.
const VERSIONED_DIR: &str = "/usr/lib/google-cloud-sdk/bin";
/// The protobuf-sending kubectl builds beside the one on PATH (which is 1.32).
const PROTOBUF_BUILDS: &[&str] = &["kubectl.1.33"];
/// A build that still sends JSON, to compare against.
const JSON_BUILD: &str = "kubectl.1.27";

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The protobuf-sending builds, or `None` (with the reason printed) when some are missing outside CI.
fn protobuf_builds() -> Option<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    match on_path("kubectl") {
        Some(p) => found.push(p),
        None => missing.push("kubectl on PATH".to_string()),
    }
    for name in PROTOBUF_BUILDS {
        let p = Path::new(VERSIONED_DIR).join(name);
        if p.is_file() {
            found.push(p);
        } else {
            missing.push(p.display().to_string());
        }
    }
    if missing.is_empty() {
        return Some(found);
    }
    if in_ci() {
        panic!("kubectl builds missing in CI: {}", missing.join(", "));
    }
    eprintln!(
        "skipping protobuf kubectl tests: missing {} (set CI=true to make this a failure)",
        missing.join(", ")
    );
    None
}

/// One kubectl build against one fresh testenv.
struct Session {
    env: TestEnv,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Session {
    async fn start(bin: &Path) -> Self {
        let env = TestEnv::start().await.expect("testenv starts");
        let dir = tempfile::tempdir().expect("temp dir");
        env.write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("kubeconfig written");
        Self {
            env,
            dir,
            bin: bin.to_path_buf(),
        }
    }

    fn label(&self) -> String {
        self.bin.display().to_string()
    }

    async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // kubectl blocks its thread; the server keeps serving on the runtime's other workers.
        let run = tokio::task::spawn_blocking(move || cmd.output());
        let out = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .unwrap_or_else(|_| panic!("{}: kubectl {args:?} timed out", self.label()))
            .expect("kubectl thread")
            .expect("kubectl runs");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args).await;
        assert!(
            r.ok,
            "{}: kubectl {args:?} failed\nstdout: {}\nstderr: {}",
            self.label(),
            r.stdout,
            r.stderr
        );
        r
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.env.client(), "default")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_service_sends_protobuf_and_stores_the_service() {
    let Some(builds) = protobuf_builds() else {
        return;
    };
    for bin in &builds {
        let s = Session::start(bin).await;
        let r = s
            .ok(&[
                "create",
                "service",
                "clusterip",
                "web",
                "--tcp=80:8080",
                "-v=7",
            ])
            .await;
        assert!(
            r.stderr
                .contains("Content-Type: application/vnd.kubernetes.protobuf"),
            "{}: the create went out as protobuf:\n{}",
            s.label(),
            r.stderr
        );
        assert!(r.stdout.contains("service/web created"), "{}", r.stdout);
        let svc = s.api::<Service>().get("web").await.expect("service stored");
        let spec = svc.spec.expect("spec");
        let ports = spec.ports.expect("ports");
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, 80);
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(8080)));
        assert_eq!(ports[0].name.as_deref(), Some("80-8080"));
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(
            spec.selector
                .unwrap_or_default()
                .get("app")
                .map(String::as_str),
            Some("web")
        );
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(
            svc.metadata
                .labels
                .unwrap_or_default()
                .get("app")
                .map(String::as_str),
            Some("web")
        );
        assert!(svc.metadata.uid.is_some(), "the server filled in the uid");

        s.ok(&[
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=80:http",
            "--node-port=30080",
        ])
        .await;
        let np = s.api::<Service>().get("np").await.expect("nodeport stored");
        let port = &np.spec.expect("spec").ports.expect("ports")[0];
        assert_eq!(port.node_port, Some(30080));
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));

        s.ok(&[
            "create",
            "service",
            "externalname",
            "ext",
            "--external-name=example.com",
        ])
        .await;
        let ext = s
            .api::<Service>()
            .get("ext")
            .await
            .expect("externalname stored");
        let spec = ext.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
        assert_eq!(spec.external_name.as_deref(), Some("example.com"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_configmap_secret_namespace_serviceaccount() {
    let Some(builds) = protobuf_builds() else {
        return;
    };
    for bin in &builds {
        let s = Session::start(bin).await;
        std::fs::write(s.dir.path().join("blob.bin"), [0u8, 159, 146, 150]).expect("blob");
        let blob = s.dir.path().join("blob.bin");
        let from_file = format!("--from-file=blob={}", blob.display());
        s.ok(&[
            "create",
            "configmap",
            "cm",
            "--from-literal=a=b",
            "--from-literal=empty=",
            &from_file,
        ])
        .await;
        let cm = s
            .api::<ConfigMap>()
            .get("cm")
            .await
            .expect("configmap stored");
        let data = cm.data.expect("data");
        assert_eq!(data.get("a").map(String::as_str), Some("b"));
        assert_eq!(data.get("empty").map(String::as_str), Some(""));
        let binary = cm.binary_data.expect("binaryData for non-UTF-8 files");
        assert_eq!(
            binary.get("blob").map(|b| b.0.clone()),
            Some(vec![0, 159, 146, 150])
        );

        s.ok(&[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=user=admin",
            "--type=example.com/basic",
        ])
        .await;
        let secret = s.api::<Secret>().get("creds").await.expect("secret stored");
        assert_eq!(secret.type_.as_deref(), Some("example.com/basic"));
        assert_eq!(
            secret.data.expect("data").get("user").map(|b| b.0.clone()),
            Some(b"admin".to_vec())
        );

        s.ok(&["create", "namespace", "team-a"]).await;
        let ns = Api::<Namespace>::all(s.env.client())
            .get("team-a")
            .await
            .expect("namespace stored");
        assert_eq!(ns.status.and_then(|st| st.phase).as_deref(), Some("Active"));

        s.ok(&["create", "serviceaccount", "builder"]).await;
        let sa = s
            .api::<ServiceAccount>()
            .get("builder")
            .await
            .expect("serviceaccount stored");
        assert_eq!(sa.metadata.name.as_deref(), Some("builder"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_deployment_then_run_and_expose() {
    let Some(builds) = protobuf_builds() else {
        return;
    };
    for bin in &builds {
        let s = Session::start(bin).await;
        s.ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--port=80",
            "--replicas=3",
        ])
        .await;
        let d = s
            .api::<Deployment>()
            .get("web")
            .await
            .expect("deployment stored");
        let spec = d.spec.expect("spec");
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.selector
                .match_labels
                .unwrap_or_default()
                .get("app")
                .map(String::as_str),
            Some("web")
        );
        let pod_spec = spec.template.spec.expect("template spec");
        assert_eq!(pod_spec.containers.len(), 1);
        let c = &pod_spec.containers[0];
        assert_eq!(c.name, "nginx");
        assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
        assert_eq!(c.ports.as_ref().map(|p| p[0].container_port), Some(80));

        s.ok(&[
            "run",
            "shell",
            "--image=busybox",
            "--env=MODE=prod",
            "--labels=tier=debug",
            "--port=8080",
            "--command",
            "--",
            "sleep",
            "3600",
        ])
        .await;
        let pod = s.api::<Pod>().get("shell").await.expect("pod stored");
        assert_eq!(
            pod.metadata
                .labels
                .unwrap_or_default()
                .get("tier")
                .map(String::as_str),
            Some("debug")
        );
        let c = &pod.spec.expect("spec").containers[0];
        assert_eq!(c.image.as_deref(), Some("busybox"));
        assert_eq!(
            c.command,
            Some(vec!["sleep".to_string(), "3600".to_string()])
        );
        let env = c.env.clone().unwrap_or_default();
        assert_eq!(env.len(), 1);
        assert_eq!(
            (env[0].name.as_str(), env[0].value.as_deref()),
            ("MODE", Some("prod"))
        );
        assert_eq!(c.ports.as_ref().map(|p| p[0].container_port), Some(8080));

        s.ok(&[
            "expose",
            "deployment",
            "web",
            "--name=web-svc",
            "--port=8080",
            "--target-port=80",
        ])
        .await;
        let svc = s
            .api::<Service>()
            .get("web-svc")
            .await
            .expect("exposed service");
        let spec = svc.spec.expect("spec");
        let port = &spec.ports.expect("ports")[0];
        assert_eq!(port.port, 8080);
        assert_eq!(port.target_port, Some(IntOrString::Int(80)));
        assert_eq!(
            spec.selector
                .unwrap_or_default()
                .get("app")
                .map(String::as_str),
            Some("web")
        );
    }
}

/// The stored object without what the server generates per request.
async fn stored(env: &TestEnv, path: &str) -> Value {
    let client = env.client();
    let req = http::Request::get(path)
        .body(Vec::new())
        .expect("request builds");
    let mut obj: Value = client.request(req).await.expect("object stored");
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for volatile in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "managedFields",
        ] {
            m.remove(volatile);
        }
    }
    // Each server allocates its own ClusterIPs.
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    obj
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_and_json_kubectl_store_the_same_objects() {
    let Some(builds) = protobuf_builds() else {
        return;
    };
    let json_bin = Path::new(VERSIONED_DIR).join(JSON_BUILD);
    if !json_bin.is_file() {
        if in_ci() {
            panic!("kubectl build missing in CI: {}", json_bin.display());
        }
        eprintln!("skipping: missing {}", json_bin.display());
        return;
    }
    let commands: &[(&[&str], &str)] = &[
        (
            &[
                "create",
                "service",
                "clusterip",
                "web",
                "--tcp=80:8080",
                "--tcp=443",
            ],
            "/api/v1/namespaces/default/services/web",
        ),
        (
            &[
                "create",
                "deployment",
                "d",
                "--image=nginx",
                "--image=redis",
                "--port=80",
            ],
            "/apis/apps/v1/namespaces/default/deployments/d",
        ),
        (
            &["create", "configmap", "cm", "--from-literal=k=v"],
            "/api/v1/namespaces/default/configmaps/cm",
        ),
        (
            &["create", "secret", "generic", "s", "--from-literal=k=v"],
            "/api/v1/namespaces/default/secrets/s",
        ),
    ];
    let reference = Session::start(&json_bin).await;
    for (args, _) in commands {
        reference.ok(args).await;
    }
    for bin in &builds {
        let s = Session::start(bin).await;
        for (args, path) in commands {
            s.ok(args).await;
            let got = stored(&s.env, path).await;
            let want = stored(&reference.env, path).await;
            assert_eq!(got, want, "{}: kubectl {args:?}", s.label());
        }
    }
}

/// POSTs `body` as protobuf to `path` and returns the Status the server answered.
async fn post_protobuf(env: &TestEnv, path: &str, body: Vec<u8>) -> kube::core::Status {
    let req = http::Request::post(path)
        .header("Content-Type", "application/vnd.kubernetes.protobuf")
        .body(body)
        .expect("request builds");
    match env.client().request::<Value>(req).await {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_undecodable_protobuf_bodies_get_upstream_errors() {
    let env = TestEnv::start().await.expect("testenv starts");
    let services = "/api/v1/namespaces/default/services";
    let service = include_bytes!("../src/protobuf/testdata/service_clusterip.pb");

    let truncated = post_protobuf(&env, services, service[..60].to_vec()).await;
    assert_eq!(
        (truncated.code, truncated.reason.as_str()),
        (400, "BadRequest")
    );
    assert_eq!(
        truncated.message,
        "Service in version \"v1\" cannot be handled as a Service: unexpected EOF"
    );

    let json = br#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"x"}}"#.to_vec();
    let not_protobuf = post_protobuf(&env, services, json).await;
    assert_eq!(not_protobuf.code, 400);
    assert_eq!(
        not_protobuf.message,
        "the object provided is unrecognized ({\"kind\":\"Service\",\"apiVersion\" ...): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    );

    // An Endpoints object in the protobuf envelope: testenv does not decode that kind.
    let mut endpoints = b"k8s\0".to_vec();
    endpoints.extend([0x0a, 0x0f, 0x0a, 0x02, b'v', b'1', 0x12, 0x09]);
    endpoints.extend(b"Endpoints");
    endpoints.extend([0x12, 0x07, 0x0a, 0x05, 0x0a, 0x03, b'e', b'p', b'1']);
    let unsupported = post_protobuf(&env, "/api/v1/namespaces/default/endpoints", endpoints).await;
    assert_eq!(
        (unsupported.code, unsupported.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    assert_eq!(
        unsupported.message,
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
    );

    // The whole body decodes and is stored.
    let req = http::Request::post(services)
        .header("Content-Type", "application/vnd.kubernetes.protobuf")
        .body(service.to_vec())
        .expect("request builds");
    let created: Service = env.client().request(req).await.expect("created");
    assert_eq!(created.metadata.name.as_deref(), Some("web"));
}
