//! The container image `scripts/image` builds (issue: a deployable artifact).
//!
//! - it runs, as the nonroot user, in a chroot of its own root file system with nothing of the
//!   machine visible;
//! - the `Dockerfile` describes the same image;
//! - `scripts/image` run again from the same commit gives the same digest;
//! - `config/default` applied to the real kube-apiserver, with the image's binary running as
//!   each Deployment's command line says (its args, its mounted ConfigMap or TLS Secret, its
//!   ServiceAccount's token), comes up and serves: the controller-manager takes the Lease and
//!   writes EndpointSlices under config/rbac's ClusterRole, and the webhook answers the API
//!   server's admission calls.
//!
//! `scripts/test` builds the image first and passes it in `SVCPLANE_IMAGE`. Without it, or
//! without root (chroot), kubectl or the Kubernetes binaries, these tests skip outside CI and
//! fail under `CI=true`.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use ociimage::ImageContents;
use serde_json::{Value, json};
use svcplane_tests::fixtures::{eventually, kubelet_status};
use svcplane_tests::real::{self, RealCluster, RealClusterOptions};

/// The nonroot user the image runs as (its config's `User`).
const NONROOT: &str = "65532:65532";

fn skip_or_fail(test: &str, why: &str) {
    assert!(!real::is_ci(), "{test}: {why} (CI=true)");
    eprintln!("skipping {test}: {why} (under CI=true this is a failure)");
}

/// The archive scripts/test built, verified, or `None` (skipped) outside CI.
fn image(test: &str) -> Option<(PathBuf, ImageContents)> {
    let Some(path) = std::env::var_os("SVCPLANE_IMAGE").map(PathBuf::from) else {
        skip_or_fail(
            test,
            "SVCPLANE_IMAGE is not set (scripts/test builds it with scripts/image)",
        );
        return None;
    };
    let contents = ImageContents::read_file(&path)
        .unwrap_or_else(|e| panic!("{test}: {} is not a valid image: {e}", path.display()));
    Some((path, contents))
}

/// chroot needs root; /proc/self belongs to the effective user.
fn is_root(test: &str) -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        skip_or_fail(test, "not root: chroot needs it");
    }
    root
}

/// `name` in a directory of PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn kubectl(test: &str) -> Option<PathBuf> {
    let found = on_path("kubectl");
    if found.is_none() {
        skip_or_fail(test, "kubectl is not on PATH");
    }
    found
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// One container: the image's root file system unpacked in a directory of its own, and the
/// process started in it with chroot as the image's user, with an empty environment but for
/// what the test gives, as a runtime would start it.
struct Container {
    root: tempfile::TempDir,
    process: Option<Child>,
}

impl Container {
    fn unpack(image: &ImageContents) -> Self {
        let root = tempfile::Builder::new()
            .prefix("svcplane-image-")
            .tempdir()
            .expect("tempdir");
        image.unpack(root.path()).expect("unpack the image");
        Container {
            root,
            process: None,
        }
    }

    fn path(&self, in_image: &str) -> PathBuf {
        self.root.path().join(in_image.trim_start_matches('/'))
    }

    /// Places a file as a volume mount would: readable by the container's user.
    fn mount_file(&self, in_image: &str, contents: &[u8]) {
        let path = self.path(in_image);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create the mount point");
        std::fs::write(&path, contents).expect("write the mounted file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    fn command(&self, args: &[String], env: &[(&str, String)]) -> Command {
        // Found on this process's PATH: the child's environment is emptied, and with it the PATH
        // Command would otherwise search.
        let chroot = on_path("chroot").expect("chroot (coreutils) is on PATH");
        let mut command = Command::new(chroot);
        command
            .arg(format!("--userspec={NONROOT}"))
            .arg(self.root.path())
            .arg("/usr/bin/svcplane")
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.command(&args, &[]).output().expect("run chroot")
    }

    /// Starts the long-running process, its output in `log` under the container's directory.
    /// Both Deployments set `readOnlyRootFilesystem: true`: the only paths of the image its user
    /// could write are made read-only first, so a write would fail here as in the Pod.
    fn start(&mut self, args: &[String], env: &[(&str, String)]) {
        for dir in ["/tmp", "/home/nonroot"] {
            std::fs::set_permissions(self.path(dir), std::fs::Permissions::from_mode(0o555))
                .expect("make the image read-only");
        }
        let log = std::fs::File::create(self.root.path().join("container.log")).expect("log");
        let child = self
            .command(args, env)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the container's process");
        self.process = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("container.log")).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<String> {
        let status = self.process.as_mut()?.try_wait().ok()??;
        Some(format!("exited with {status}:\n{}", self.log()))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_image_runs_as_nonroot_in_a_chroot_with_nothing_of_the_machine() {
    let test = "the_image_runs_as_nonroot_in_a_chroot_with_nothing_of_the_machine";
    let Some((_, image)) = image(test) else {
        return;
    };
    if !is_root(test) {
        return;
    }
    let container = Container::unpack(&image);
    for shell in [
        "/bin/sh",
        "/bin/bash",
        "/usr/bin/sh",
        "/usr/bin/bash",
        "/bin/busybox",
    ] {
        assert!(
            !container.path(shell).exists(),
            "the image has a shell: {shell}"
        );
    }

    let version = container.run(&["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    let expected = format!("svcplane {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&version.stdout), expected);

    container.mount_file(
        "/tmp/services.yaml",
        b"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n    - name: 123_abc\n      port: 80\n",
    );
    let validate = container.run(&["validate", "-f", "/tmp/services.yaml"]);
    assert!(
        !validate.status.success(),
        "an invalid Service passed: {}",
        text(&validate)
    );
    let said = text(&validate);
    assert!(
        said.contains(r#"Service "web" is invalid"#) && said.contains("spec.ports[0].name"),
        "{said}"
    );

    // A file of the machine is not there: only the image's tree is visible.
    let host_file = repo_root().join("Cargo.toml");
    let host_path = host_file.to_str().expect("a UTF-8 path");
    assert!(host_file.exists());
    let hidden = container.run(&["validate", "-f", host_path]);
    assert!(!hidden.status.success(), "{}", text(&hidden));
    assert!(!container.path(host_path).exists());

    for (command, flag) in [
        ("controller-manager", "--leader-elect"),
        ("webhook", "--tls-cert-file"),
    ] {
        let help = container.run(&[command, "--help"]);
        assert!(help.status.success(), "{}", text(&help));
        assert!(
            String::from_utf8_lossy(&help.stdout).contains(flag),
            "{}",
            text(&help)
        );
    }
}

/// A tool from Debian's packages that scripts/test installs, or `None` (skipped) outside CI.
fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = on_path(name);
    if found.is_none() {
        skip_or_fail(
            test,
            &format!("{name} is not on PATH (scripts/test installs it as root)"),
        );
    }
    found
}

fn run_ok(command: &mut Command) -> String {
    let output = command.stdin(Stdio::null()).output().expect("run the tool");
    assert!(output.status.success(), "{command:?}: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Two other OCI implementations read the archive: skopeo (containers/image, the library
/// `podman load` uses) copies it into an OCI layout and into the docker-archive format that
/// `docker load` reads, and umoci unpacks it into a runtime bundle whose process is the image's.
#[test]
fn skopeo_and_umoci_accept_the_archive() {
    let test = "skopeo_and_umoci_accept_the_archive";
    let Some((path, image)) = image(test) else {
        return;
    };
    let (Some(skopeo), Some(umoci)) = (tool(test, "skopeo"), tool(test, "umoci")) else {
        return;
    };
    let tag = image.tag.clone().expect("a tag in index.json");
    let source = format!("oci-archive:{}", path.display());

    let inspected: Value = serde_json::from_str(&run_ok(
        Command::new(&skopeo)
            .args(["inspect", "--raw"])
            .arg(&source),
    ))
    .expect("the manifest");
    assert_eq!(
        inspected["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config: Value = serde_json::from_str(&run_ok(
        Command::new(&skopeo)
            .args(["inspect", "--config"])
            .arg(&source),
    ))
    .expect("the config");
    assert_eq!(config["config"]["User"], NONROOT);

    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    let docker_archive = work.path().join("docker.tar");
    run_ok(
        Command::new(&skopeo)
            .arg("copy")
            .arg(&source)
            .arg(format!("oci:{}:{tag}", layout.display())),
    );
    run_ok(Command::new(&skopeo).arg("copy").arg(&source).arg(format!(
        "docker-archive:{}:ghcr.io/svcplane/svcplane:{tag}",
        docker_archive.display()
    )));
    assert!(
        std::fs::metadata(&docker_archive)
            .expect("the docker archive")
            .len()
            > 0
    );

    let bundle = work.path().join("bundle");
    run_ok(
        Command::new(&umoci)
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    );
    let runtime: Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.join("config.json")).expect("the bundle's config.json"),
    )
    .expect("JSON");
    assert_eq!(runtime["process"]["args"], json!(["/usr/bin/svcplane"]));
    assert_eq!(runtime["process"]["user"]["uid"], 65532);
    assert!(bundle.join("rootfs/usr/bin/svcplane").is_file());
}

/// config/ runs the image this repository builds: the Deployments name its repository and the
/// workspace version as tag, listen on ports the image exposes, and run as a non-root user
/// the image's numeric `User` satisfies.
#[test]
fn the_manifests_run_the_image_scripts_image_builds() {
    let test = "the_manifests_run_the_image_scripts_image_builds";
    let Some((_, image)) = image(test) else {
        return;
    };
    let config = image.config.config().clone().expect("an image config");
    let exposed: BTreeSet<String> = config
        .exposed_ports()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let expected_image = format!(
        "{}:{}",
        ociimage::svcplane_image::REPOSITORY,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(image.tag.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    for file in [
        "config/manager/deployment.yaml",
        "config/webhook/deployment.yaml",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).expect("the Deployment");
        let deployment = &manifests::documents(&text).expect("YAML")[0];
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{file}");
        for container in pod["containers"].as_array().expect("containers") {
            assert_eq!(container["image"], expected_image.as_str(), "{file}");
            for port in container["ports"].as_array().into_iter().flatten() {
                let port = format!("{}/tcp", port["containerPort"]);
                assert!(
                    exposed.contains(&port),
                    "{file}: port {port} is not exposed by the image"
                );
            }
            assert_eq!(
                container["securityContext"]["readOnlyRootFilesystem"], true,
                "{file}"
            );
        }
    }
    let user = config.user().clone().expect("a user");
    assert!(
        user.split(':')
            .all(|id| id.parse::<u32>().is_ok_and(|id| id != 0)),
        "{user}"
    );
}

/// The instructions of the Dockerfile's last stage, continuation lines joined.
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let mut joined = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => joined.push_str(part),
            None => {
                joined.push_str(line);
                joined.push('\n');
            }
        }
    }
    let instructions: Vec<(String, String)> = joined
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(op, rest)| (op.to_uppercase(), rest.trim().to_owned()))
        .collect();
    let last_from = instructions
        .iter()
        .rposition(|(op, _)| op == "FROM")
        .expect("a FROM");
    instructions[last_from..].to_vec()
}

#[test]
fn the_dockerfile_describes_the_image_scripts_image_builds() {
    let test = "the_dockerfile_describes_the_image_scripts_image_builds";
    let Some((_, image)) = image(test) else {
        return;
    };
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let stage = final_stage(&dockerfile);
    let one = |op: &str| -> String {
        let found: Vec<_> = stage.iter().filter(|(o, _)| o == op).collect();
        assert_eq!(found.len(), 1, "one {op} in the final stage: {stage:?}");
        found[0].1.clone()
    };
    let config = image.config.config().clone().expect("an image config");

    assert_eq!(Some(one("USER")), config.user().clone());
    assert_eq!(Some(one("WORKDIR")), config.working_dir().clone());
    let entrypoint: Vec<String> = serde_json::from_str(&one("ENTRYPOINT")).expect("exec form");
    assert_eq!(Some(entrypoint.clone()), config.entrypoint().clone());
    let exposed: BTreeSet<String> = one("EXPOSE")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let ports: BTreeSet<String> = config
        .exposed_ports()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    assert_eq!(exposed, ports);

    // The binary goes where the entrypoint runs it from, in both.
    let copy = one("COPY");
    assert!(
        copy.ends_with(&format!(" {}", entrypoint[0])),
        "COPY {copy}"
    );
    let entries = image.entries().expect("the layer");
    let binary = entries
        .iter()
        .find(|e| e.path == entrypoint[0])
        .expect("the binary in the image");
    assert_eq!((binary.kind, binary.mode & 0o111), ('f', 0o111));
    let home = entries
        .iter()
        .find(|e| e.path == config.working_dir().clone().unwrap())
        .expect("home");
    assert_eq!(
        format!("{}:{}", home.uid, home.gid),
        config.user().clone().unwrap()
    );

    // Every label the Dockerfile sets, the image has with the same value.
    let labels = config.labels().clone().unwrap_or_default();
    let label_text = one("LABEL");
    for pair in label_text.split('"').collect::<Vec<_>>().chunks(2) {
        let key = pair[0].trim().trim_end_matches('=');
        if key.is_empty() {
            continue;
        }
        let value = pair.get(1).copied().unwrap_or_default();
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "label {key}"
        );
    }
    for key in [
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
    ] {
        assert!(labels.contains_key(key), "scripts/image sets {key}");
    }
}

#[test]
fn scripts_image_run_again_from_the_same_commit_gives_the_same_digest() {
    let test = "scripts_image_run_again_from_the_same_commit_gives_the_same_digest";
    let Some((first_path, first)) = image(test) else {
        return;
    };
    let out_dir = tempfile::tempdir().expect("tempdir");
    // Run as from a shell: the test runner's environment (cargo's and nextest's variables for
    // the test) would make the nested cargo see a different build and rebuild it.
    let kept = [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "CARGO_TARGET_DIR",
        "TMPDIR",
    ];
    let output = Command::new(repo_root().join("scripts/image"))
        .arg("--out-dir")
        .arg(out_dir.path())
        .env_clear()
        .envs(kept.iter().filter_map(|k| Some((k, std::env::var_os(k)?))))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/image");
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let [.., digest, path] = lines.as_slice() else {
        panic!("{}", text(&output))
    };
    assert_eq!(
        *digest, first.digest,
        "the digest changed between two builds"
    );
    let again = std::fs::read(path).expect("the second archive");
    assert!(
        again == std::fs::read(&first_path).expect("the first archive"),
        "the archives differ"
    );
}

/// `kubectl --kubeconfig=… ARGS`, failing the test on a non-zero exit.
fn kubectl_ok(kubectl: &Path, cluster: &RealCluster, args: &[&str]) -> String {
    let output = Command::new(kubectl)
        .arg(format!(
            "--kubeconfig={}",
            cluster.kubeconfig_path().display()
        ))
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The rendered object of `kind`/`name`.
fn rendered<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("config/default renders no {kind} {name}"))
}

/// The container's args, from a rendered Deployment.
fn deployment_args(deployment: &Value) -> Vec<String> {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    serde_json::from_value(container["args"].clone()).expect("string args")
}

/// What the kubelet mounts for the Pod's ServiceAccount, and the environment it sets.
fn mount_service_account(
    container: &Container,
    kubectl: &Path,
    cluster: &RealCluster,
    account: &str,
) -> Vec<(&'static str, String)> {
    let token = kubectl_ok(
        kubectl,
        cluster,
        &["create", "token", account, "-n", "svcplane-system"],
    );
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    container.mount_file(&format!("{dir}/token"), token.trim().as_bytes());
    let ca = std::fs::read(cluster.dir().join("pki/ca.crt")).expect("the cluster CA");
    container.mount_file(&format!("{dir}/ca.crt"), &ca);
    container.mount_file(&format!("{dir}/namespace"), b"svcplane-system");
    vec![
        ("KUBERNETES_SERVICE_HOST", cluster.addr().ip().to_string()),
        ("KUBERNETES_SERVICE_PORT", cluster.addr().port().to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_default_deploys_on_the_real_apiserver_with_the_images_binary() {
    let test = "config_default_deploys_on_the_real_apiserver_with_the_images_binary";
    let Some((_, image)) = image(test) else {
        return;
    };
    let Some(kubectl) = kubectl(test) else { return };
    if !is_root(test) {
        return;
    }
    // config/default as kustomize renders it; the cluster is started with the ranges its
    // Deployments are configured for (kubeadm's defaults), as a user's cluster would be.
    let render = Command::new(&kubectl)
        .args(["kustomize", "config/default"])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl kustomize");
    assert!(render.status.success(), "{}", text(&render));
    let objects = manifests::documents(&String::from_utf8_lossy(&render.stdout))
        .expect("kustomize renders YAML");
    let webhook_args = deployment_args(rendered(&objects, "Deployment", "svcplane-webhook"));
    let flag = |name: &str| {
        webhook_args
            .iter()
            .find_map(|arg| arg.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("the webhook Deployment sets --{name}"))
            .to_owned()
    };
    let options = RealClusterOptions {
        service_cluster_ip_range: flag("service-cluster-ip-range"),
        service_node_port_range: flag("service-node-port-range"),
        ..RealClusterOptions::default()
    };
    let Some(cluster) = real::start_or_skip(test, options).await else {
        return;
    };
    let client = cluster.client();

    // Apply config/default as a user would (cert-manager's CRDs stood in for).
    let stand_ins = repo_root().join("tests/fixtures/cert-manager-stand-in-crds.yaml");
    kubectl_ok(
        &kubectl,
        &cluster,
        &["apply", "-f", stand_ins.to_str().unwrap()],
    );
    kubectl_ok(
        &kubectl,
        &cluster,
        &["wait", "--for=condition=Established", "crd", "--all"],
    );
    kubectl_ok(&kubectl, &cluster, &["apply", "-k", "config/default"]);

    // The webhook first: its configurations (failurePolicy Fail for Services) are installed, so
    // no Service can be created until it serves. cert-manager's two jobs, done by the test: the
    // Certificate's Secret, and the CA injected into both configurations.
    let webhook = rendered(&objects, "Deployment", "svcplane-webhook");
    let certificate = rendered(&objects, "Certificate", "svcplane-webhook");
    let mut names: Vec<String> =
        serde_json::from_value(certificate["spec"]["dnsNames"].clone()).expect("dnsNames");
    // The API server reaches the webhook by URL on loopback here: no Service routing exists.
    names.push("127.0.0.1".to_owned());
    let (ca, cert, key) =
        webhook::server::tls::generate_certificates(&names).expect("certificates");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": certificate["spec"]["secretName"], "namespace": "svcplane-system"},
        "stringData": {"tls.crt": cert, "tls.key": key, "ca.crt": ca}});
    let secret_file = cluster.dir().join("webhook-tls.json");
    std::fs::write(&secret_file, secret.to_string()).expect("write the Secret");
    kubectl_ok(
        &kubectl,
        &cluster,
        &["apply", "-f", secret_file.to_str().unwrap()],
    );

    let mut webhook_container = Container::unpack(&image);
    let tls_mount = &webhook["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0];
    let tls_dir = tls_mount["mountPath"].as_str().expect("the TLS mount path");
    webhook_container.mount_file(&format!("{tls_dir}/tls.crt"), cert.as_bytes());
    webhook_container.mount_file(&format!("{tls_dir}/tls.key"), key.as_bytes());
    webhook_container.mount_file(&format!("{tls_dir}/ca.crt"), ca.as_bytes());
    let account = webhook["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap();
    let env = mount_service_account(&webhook_container, &kubectl, &cluster, account);
    // The one change to the Deployment's args: listen on loopback on a free port, as the test
    // shares the machine with others (in the Pod, 0.0.0.0:9443 is the Pod's own network).
    let webhook_port = free_port();
    let args: Vec<String> = deployment_args(webhook)
        .into_iter()
        .map(|arg| match arg.strip_prefix("--bind-address=") {
            Some(_) => format!("--bind-address=127.0.0.1:{webhook_port}"),
            None => arg,
        })
        .collect();
    webhook_container.start(&args, &env);

    let ca_bundle =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca.as_bytes());
    for kind in [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ] {
        let current: Value = serde_json::from_str(&kubectl_ok(
            &kubectl,
            &cluster,
            &["get", kind, "svcplane-webhook", "-o", "json"],
        ))
        .expect("JSON");
        let mut patched = current.clone();
        for hook in patched["webhooks"].as_array_mut().expect("webhooks") {
            let path = hook["clientConfig"]["service"]["path"]
                .as_str()
                .unwrap_or("/")
                .to_owned();
            hook["clientConfig"] = json!({"url": format!("https://127.0.0.1:{webhook_port}{path}"), "caBundle": ca_bundle});
        }
        let file = cluster.dir().join(format!("{kind}.json"));
        std::fs::write(&file, patched.to_string()).expect("write");
        kubectl_ok(
            &kubectl,
            &cluster,
            &["replace", "-f", file.to_str().unwrap()],
        );
    }

    // Served: the API server's admission call reaches it and its denial comes back.
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let bad: Service = serde_json::from_value(json!({"metadata": {"name": "bad"},
        "spec": {"ports": [{"name": "123_abc", "port": 80}]}}))
    .unwrap();
    let denial = eventually(
        "the webhook to deny an invalid Service",
        Duration::from_secs(60),
        || {
            let services = services.clone();
            let bad = bad.clone();
            let exited = webhook_container.exited();
            async move {
                if let Some(exited) = exited {
                    panic!("the webhook {exited}");
                }
                match services.create(&PostParams::default(), &bad).await {
                    Ok(_) => panic!("an invalid Service was admitted"),
                    Err(kube::Error::Api(status))
                        if status.message.contains("denied the request") =>
                    {
                        Some(status.message)
                    }
                    Err(_) => None,
                }
            }
        },
    )
    .await;
    assert!(denial.contains("spec.ports[0].name"), "{denial}");

    // The controller-manager, with its ConfigMap mounted and config/rbac's permissions.
    let manager = rendered(&objects, "Deployment", "svcplane-controller-manager");
    let mut manager_container = Container::unpack(&image);
    let pod_spec = &manager["spec"]["template"]["spec"];
    let config_map_name = pod_spec["volumes"][0]["configMap"]["name"]
        .as_str()
        .expect("a ConfigMap");
    let config_dir = pod_spec["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "svcplane-system");
    let config_map = config_maps
        .get(config_map_name)
        .await
        .expect("the applied ConfigMap");
    let metrics_port = free_port();
    for (file, contents) in config_map.data.unwrap_or_default() {
        // As for the webhook: loopback and a free port instead of 0.0.0.0:10357.
        let contents = contents
            .lines()
            .map(|line| match line.split_once(':').map(|(k, _)| k) {
                Some("bind-address") => "bind-address: 127.0.0.1".to_owned(),
                Some("port") => format!("port: {metrics_port}"),
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        manager_container.mount_file(&format!("{config_dir}/{file}"), contents.as_bytes());
    }
    let account = pod_spec["serviceAccountName"].as_str().unwrap();
    let env = mount_service_account(&manager_container, &kubectl, &cluster, account);
    manager_container.start(&deployment_args(manager), &env);

    // Ready (its readinessProbe), then the leader (the Lease its flags name).
    let probe = &pod_spec["containers"][0]["readinessProbe"]["httpGet"];
    let ready_url = format!(
        "http://127.0.0.1:{metrics_port}{}",
        probe["path"].as_str().unwrap()
    );
    eventually(
        "the controller-manager's readinessProbe",
        Duration::from_secs(60),
        || {
            let exited = manager_container.exited();
            let ready_url = ready_url.clone();
            async move {
                if let Some(exited) = exited {
                    panic!("the controller-manager {exited}");
                }
                http_get_ok(&ready_url).await.then_some(())
            }
        },
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "svcplane-system");
    eventually(
        "the controller-manager to hold its Lease",
        Duration::from_secs(30),
        || {
            let leases = leases.clone();
            async move {
                let lease = leases.get_opt("svcplane-controller-manager").await.ok()??;
                lease.spec?.holder_identity.filter(|h| !h.is_empty())
            }
        },
    )
    .await;

    // It writes what the ClusterRole lets it: an EndpointSlice for a Service with a ready Pod
    // (the Service also passes the webhook's validation and mutation on the way in).
    let service: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("a valid Service is admitted");
    // The Node the Pod runs on: like upstream's, the controller leaves out the endpoints of
    // Pods whose Node it does not know.
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-1",
        "labels": {"kubernetes.io/hostname": "node-1"}}}))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create the Node");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "ports": [{"containerPort": 80}]}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the Pod");
    pods.patch_status(
        "web-0",
        &PatchParams::default(),
        &Patch::Merge(kubelet_status("10.244.0.1", "10.244.0.5", true)),
    )
    .await
    .expect("the Pod's status");
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    eventually(
        "svcplane's EndpointSlice for web",
        Duration::from_secs(30),
        || {
            let slices = slices.clone();
            async move {
                let list = slices
                    .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                    .await
                    .ok()?;
                list.items.into_iter().find(|slice| {
                    slice
                        .endpoints
                        .iter()
                        .any(|e| e.addresses == ["10.244.0.5"])
                })
            }
        },
    )
    .await;
    // Both still run, and neither was refused anything it does: config/rbac grants what each
    // Deployment's ServiceAccount needs.
    for (name, container) in [
        ("controller-manager", &mut manager_container),
        ("webhook", &mut webhook_container),
    ] {
        if let Some(exited) = container.exited() {
            panic!("the {name} {exited}");
        }
        let log = container.log();
        assert!(
            !log.contains("forbidden"),
            "the {name} was refused a request:\n{log}"
        );
    }
}

/// A plain HTTP GET on loopback answers 200.
async fn http_get_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let Ok(mut stream) = tokio::net::TcpStream::connect(authority).await else {
        return false;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    response.starts_with(b"HTTP/1.1 200")
}
