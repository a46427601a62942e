#![forbid(unsafe_code)]
//! A real Kubernetes control plane on loopback: etcd and kube-apiserver (and, on request,
//! kube-controller-manager) built from upstream's Go modules (`scripts/k8s-binaries`), started
//! envtest-style, with testenv's `TestEnv` shape. The envtests run against it through
//! `svcplane_tests::real`, which re-exports this crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), realcluster::RealClusterError> {
//! let cluster = realcluster::RealCluster::start().await?;
//! let client = cluster.client();
//! # Ok(()) }
//! ```

pub mod binaries;
mod pki;
mod process;
mod sidecar;

pub use sidecar::{
    ControllerManagerOptions, KCM_CONTROLLERS, KCM_LEASE, SVCPLANE_BIN_ENV, SVCPLANE_LEASE,
    SidecarOptions, SidecarPorts, svcplane_binary,
};

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;
use tokio::time::Instant;

use pki::Pki;
use process::ChildProcess;

/// Errors starting or driving a real control plane.
#[derive(Debug, thiserror::Error)]
pub enum RealClusterError {
    /// The binaries could not be found or built.
    #[error("the Kubernetes binaries are not available: {0}")]
    BinariesUnavailable(String),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A process could not be started.
    #[error("cannot start {component} ({binary}): {source}")]
    Spawn {
        component: &'static str,
        binary: String,
        source: std::io::Error,
    },
    /// The certificates could not be generated.
    #[error("cannot generate certificates: {0}")]
    Certificates(String),
    /// No free loopback port.
    #[error("cannot find a free port on 127.0.0.1: {0}")]
    Port(std::io::Error),
    /// An option is invalid.
    #[error("invalid option {option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    /// A client could not be built.
    #[error("cannot build a client: {0}")]
    Client(String),
    /// A component exited while starting.
    #[error("{component} exited while starting ({status}); the end of {log}:\n{tail}")]
    Exited {
        component: &'static str,
        status: String,
        log: String,
        tail: String,
    },
    /// A component that had started exited (see [`RealCluster::exited`]).
    #[error("{component} exited ({status}); the end of {log}:\n{tail}")]
    Died {
        component: &'static str,
        status: String,
        log: String,
        tail: String,
    },
    /// A component was not ready in time.
    #[error(
        "timed out after {seconds} s waiting for {what} (last answer: {last}); the end of {log}:\n{tail}"
    )]
    StartTimeout {
        seconds: f64,
        what: String,
        last: String,
        log: String,
        tail: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { seconds: f64, what: String },
}

impl RealClusterError {
    /// The binaries are missing and could not be built: a test may skip (outside CI) on this one.
    pub fn is_binaries_unavailable(&self) -> bool {
        matches!(self, Self::BinariesUnavailable(_))
    }

    /// A port picked as free was taken before the component bound it: starting again may work.
    fn is_port_race(&self) -> bool {
        match self {
            Self::Exited { tail, .. } | Self::StartTimeout { tail, .. } => {
                tail.contains("address already in use")
            }
            _ => false,
        }
    }
}

/// How to start a real control plane.
#[derive(Debug, Clone)]
pub struct RealClusterOptions {
    /// `--service-cluster-ip-range`: one CIDR, or two separated by a comma (dual stack).
    pub service_cluster_ip_range: String,
    /// `--service-node-port-range`.
    pub service_node_port_range: String,
    /// How long etcd and kube-apiserver together may take to become ready.
    pub start_timeout: Duration,
    /// More kube-apiserver flags, after (and so overriding) the defaults.
    pub extra_apiserver_args: Vec<String>,
    /// The directory holding the binaries; `None` finds them with [`binaries::locate`].
    pub binaries: Option<PathBuf>,
    /// kube-apiserver's port on 127.0.0.1; `None` picks a free one.
    pub secure_port: Option<u16>,
}

impl Default for RealClusterOptions {
    fn default() -> Self {
        Self {
            service_cluster_ip_range: "10.0.0.0/24".into(),
            service_node_port_range: "30000-32767".into(),
            start_timeout: Duration::from_secs(60),
            extra_apiserver_args: Vec::new(),
            binaries: None,
            secure_port: None,
        }
    }
}

/// A process of the control plane that a test can kill and restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// etcd.
    Etcd,
    /// kube-apiserver.
    KubeApiserver,
}

impl Component {
    /// The binary's (and the process's) name.
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
        }
    }
}

/// How many times a start is retried when a port picked as free was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// A running etcd and kube-apiserver, stopped (process groups killed) when dropped.
pub struct RealCluster {
    // Field order is drop order: the processes are stopped before their directory is removed.
    processes: Mutex<Started>,
    addr: SocketAddr,
    config: kube::Config,
    kubeconfig: String,
    kubeconfig_path: PathBuf,
    binaries: PathBuf,
    options: RealClusterOptions,
    /// etcd's command line, to start it again the same way.
    etcd_args: Vec<String>,
    /// kube-apiserver's command line, to start it again the same way.
    apiserver_args: Vec<String>,
    dir: tempfile::TempDir,
}

impl RealCluster {
    /// Starts etcd and kube-apiserver with default options.
    pub async fn start() -> Result<Self, RealClusterError> {
        Self::start_with(RealClusterOptions::default()).await
    }

    /// Starts etcd and kube-apiserver with `options`.
    pub async fn start_with(options: RealClusterOptions) -> Result<Self, RealClusterError> {
        let binaries = match &options.binaries {
            Some(dir) => {
                binaries::check(dir)?;
                dir.clone()
            }
            None => binaries::locate().await?,
        };
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries, &options).await {
                // A port given by the caller is not raced for: it is taken, and stays so.
                Err(e)
                    if e.is_port_race()
                        && options.secure_port.is_none()
                        && attempt < START_ATTEMPTS =>
                {
                    attempt += 1
                }
                result => return result,
            }
        }
    }

    async fn start_once(
        bin: &Path,
        options: &RealClusterOptions,
    ) -> Result<Self, RealClusterError> {
        let deadline = Instant::now() + options.start_timeout;
        let dir = tempfile::Builder::new()
            .prefix("svcplane-realk8s-")
            .tempdir()
            .map_err(|source| RealClusterError::Io {
                path: std::env::temp_dir().display().to_string(),
                source,
            })?;
        let root = dir.path();
        let pki_dir = root.join("pki");
        create_dir(&pki_dir)?;
        let logs = root.join("logs");
        create_dir(&logs)?;

        // One range, or two (dual stack): the first is the primary, whose first address is the
        // `kubernetes` Service's.
        let ranges = options
            .service_cluster_ip_range
            .split(',')
            .map(|range| range.trim().parse::<ipnet::IpNet>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RealClusterError::Option {
                option: "service_cluster_ip_range",
                message: e.to_string(),
            })?;
        let first_service_ip = match ranges[0] {
            ipnet::IpNet::V4(net) => net.hosts().next(),
            ipnet::IpNet::V6(_) => None::<Ipv4Addr>,
        };
        let pki = Pki::generate(first_service_ip)?;
        let file = |name: &str, contents: &str| -> Result<String, RealClusterError> {
            let path = pki_dir.join(name);
            write(&path, contents)?;
            Ok(path.display().to_string())
        };
        let ca = file("ca.crt", &pki.ca_cert)?;
        let serving_cert = file("apiserver.crt", &pki.serving_cert)?;
        let serving_key = file("apiserver.key", &pki.serving_key)?;
        let sa_key = file("sa.key", &pki.service_account_key)?;
        let sa_pub = file("sa.pub", &pki.service_account_public_key)?;

        let [etcd_port, peer_port, free_api_port] = free_ports()?;
        let api_port = options.secure_port.unwrap_or(free_api_port);
        let mut processes = Started::default();

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = vec![
            "--name=default".to_string(),
            format!("--data-dir={}", root.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--initial-cluster-state=new".into(),
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ];
        let etcd = ChildProcess::spawn(
            "etcd",
            &bin.join("etcd"),
            &etcd_args,
            &logs.join("etcd.log"),
            // etcd stops last: its watchdog also removes the directory (etcd preallocates 64 MiB
            // of write-ahead log in it).
            Some(root),
        )?;
        processes.0.push(etcd);
        let etcd_client = plain_client(&etcd_url)?;
        wait_ready(
            &mut processes,
            deadline,
            options,
            "etcd /health",
            || async {
                probe(&etcd_client, "/health")
                    .await
                    .and_then(|(status, body)| {
                        if status == StatusCode::OK && body.contains(r#""health":"true""#) {
                            Ok(())
                        } else {
                            Err(format!("{status}: {}", body.trim()))
                        }
                    })
            },
        )
        .await?;

        let addr = SocketAddr::from(([127, 0, 0, 1], api_port));
        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            // Without it kube-apiserver advertises the default-route interface's address, and
            // fails to start where there is no default route.
            "--advertise-address=127.0.0.1".into(),
            // The kubernetes Service's endpoints would be 127.0.0.1, which Endpoints and
            // EndpointSlice validation reject; on the machine's own loopback there are none.
            "--endpoint-reconciler-type=none".into(),
            format!("--cert-dir={}", pki_dir.display()),
            format!("--tls-cert-file={serving_cert}"),
            format!("--tls-private-key-file={serving_key}"),
            format!("--client-ca-file={ca}"),
            format!("--service-account-issuer=https://{addr}/"),
            format!("--service-account-key-file={sa_pub}"),
            format!("--service-account-signing-key-file={sa_key}"),
            "--authorization-mode=RBAC".into(),
            format!(
                "--service-cluster-ip-range={}",
                options.service_cluster_ip_range
            ),
            format!(
                "--service-node-port-range={}",
                options.service_node_port_range
            ),
            "--allow-privileged=true".into(),
            // Nothing here creates each namespace's default ServiceAccount (envtest's default).
            "--disable-admission-plugins=ServiceAccount".into(),
            "--profiling=false".into(),
        ];
        apiserver_args.extend(options.extra_apiserver_args.iter().cloned());
        let apiserver = ChildProcess::spawn(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &apiserver_args,
            &logs.join("kube-apiserver.log"),
            None,
        )?;
        processes.0.push(apiserver);

        let kubeconfig = kubeconfig_yaml(&format!("https://{addr}"), &pki);
        let kubeconfig_path = root.join("admin.kubeconfig");
        write(&kubeconfig_path, &kubeconfig)?;
        let config = client_config(&kubeconfig).await?;
        let client = kube::Client::try_from(config.clone())
            .map_err(|e| RealClusterError::Client(e.to_string()))?;
        wait_ready(
            &mut processes,
            deadline,
            options,
            "kube-apiserver /readyz",
            || async {
                probe(&client, "/readyz")
                    .await
                    .and_then(|(status, body)| match status {
                        StatusCode::OK => Ok(()),
                        _ => Err(format!("{status}: {}", last_lines(&body, 3))),
                    })
            },
        )
        .await?;
        wait_ready(
            &mut processes,
            deadline,
            options,
            "namespaces/default",
            || async {
                probe(&client, "/api/v1/namespaces/default")
                    .await
                    .and_then(|(status, body)| match status {
                        StatusCode::OK => Ok(()),
                        _ => Err(format!("{status}: {}", body.trim())),
                    })
            },
        )
        .await?;
        // kube-apiserver's kubernetesservice controller creates `default/kubernetes` only once its
        // own /readyz answers 200 (it polls every 100 ms), so a ready server may not have it yet;
        // every pod's KUBERNETES_* variables come from it.
        wait_ready(
            &mut processes,
            deadline,
            options,
            "services/kubernetes in namespace default",
            || async {
                probe(&client, "/api/v1/namespaces/default/services/kubernetes")
                    .await
                    .and_then(|(status, body)| match status {
                        StatusCode::OK => Ok(()),
                        _ => Err(format!("{status}: {}", body.trim())),
                    })
            },
        )
        .await?;

        Ok(Self {
            processes: Mutex::new(processes),
            addr,
            config,
            kubeconfig,
            kubeconfig_path,
            binaries: bin.to_path_buf(),
            options: options.clone(),
            etcd_args,
            apiserver_args,
            dir,
        })
    }

    fn restart_timeout(&self, last: String, log: &Path) -> RealClusterError {
        RealClusterError::StartTimeout {
            seconds: self.options.start_timeout.as_secs_f64(),
            what: "kube-apiserver /readyz after a restart".into(),
            last,
            log: log.display().to_string(),
            tail: process::log_tail(log),
        }
    }

    /// `kill -9` of kube-apiserver, then the same kube-apiserver started again on the same port
    /// and etcd, ready again when this returns. See [`RealCluster::kill_and_restart`].
    pub async fn kill_and_restart_apiserver(&self) -> Result<(), RealClusterError> {
        self.kill_and_restart(Component::KubeApiserver).await
    }

    /// `kill -9` of `component`, then the same process started again with the same command line
    /// (the same ports, and for etcd the same data directory: nothing acknowledged may be lost),
    /// and kube-apiserver ready again when this returns. The new process logs to
    /// `logs/<name>-<n>.log`.
    pub async fn kill_and_restart(&self, component: Component) -> Result<(), RealClusterError> {
        let name = component.name();
        let (args, cleanup_dir) = match component {
            // etcd's watchdog also removes the directory when the test process dies.
            Component::Etcd => (&self.etcd_args, Some(self.dir.path())),
            Component::KubeApiserver => (&self.apiserver_args, None),
        };
        let logs = self.dir.path().join("logs");
        let log = (2..)
            .map(|n| logs.join(format!("{name}-{n}.log")))
            .find(|path| !path.exists())
            .unwrap_or_else(|| logs.join(format!("{name}-restarted.log")));
        {
            let mut processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
            let index = processes
                .0
                .iter()
                .position(|p| p.name() == name)
                .ok_or_else(|| RealClusterError::Timeout {
                    seconds: 0.0,
                    what: format!("a running {name} to kill (the cluster was stopped)"),
                })?;
            processes.0[index].kill();
            let restarted =
                ChildProcess::spawn(name, &self.binaries.join(name), args, &log, cleanup_dir)?;
            // Same place in the stop order.
            let killed = std::mem::replace(&mut processes.0[index], restarted);
            drop(killed);
        }
        let client = self.try_client()?;
        let deadline = Instant::now() + self.options.start_timeout;
        loop {
            match probe(&client, "/readyz").await {
                Ok((StatusCode::OK, _)) => return Ok(()),
                Ok((status, body)) if Instant::now() >= deadline => {
                    return Err(
                        self.restart_timeout(format!("{status}: {}", last_lines(&body, 3)), &log)
                    );
                }
                Err(last) if Instant::now() >= deadline => {
                    return Err(self.restart_timeout(last, &log));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The address kube-apiserver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A `kube::Client` authenticated as `admin` (`system:masters`), default namespace `default`.
    pub fn client(&self) -> kube::Client {
        self.try_client()
            .unwrap_or_else(|e| panic!("real cluster client for {}: {e}", self.url()))
    }

    /// A `kube::Client`, or why one could not be built.
    pub fn try_client(&self) -> Result<kube::Client, RealClusterError> {
        kube::Client::try_from(self.config.clone())
            .map_err(|e| RealClusterError::Client(e.to_string()))
    }

    /// The client configuration behind [`Self::client`].
    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    /// A kubeconfig (YAML) for the admin user, context `realk8s`.
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// Where that kubeconfig is written (inside the cluster's temporary directory).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// Writes the kubeconfig to `path`, creating parent directories.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), RealClusterError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            create_dir(parent)?;
        }
        write(path, &self.kubeconfig)
    }

    /// The temporary directory holding etcd's data, the certificates, the kubeconfig and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The options this cluster was started with.
    pub fn options(&self) -> &RealClusterOptions {
        &self.options
    }

    /// The directory the binaries were taken from.
    pub fn binaries(&self) -> &Path {
        &self.binaries
    }

    /// The log file of `component` (`etcd`, `kube-apiserver`, `kube-controller-manager`,
    /// `svcplane`).
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.dir
            .path()
            .join("logs")
            .join(format!("{component}.log"))
    }

    /// The process ids of everything this cluster started (components and their watchdogs), while
    /// they run.
    pub fn pids(&self) -> Vec<u32> {
        let processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        processes
            .0
            .iter()
            .flat_map(|p| std::iter::once(p.pid()).chain(p.watchdog_pid()))
            .collect()
    }

    /// The process id of the running component `name` (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`, `svcplane`), to pause or signal it.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        let processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        processes
            .0
            .iter()
            .find(|p| p.name() == name)
            .map(|p| p.pid())
    }

    /// Stops kube-apiserver, then etcd (SIGTERM to each process group, SIGKILL after a grace
    /// period). The handle can no longer serve.
    pub async fn stop(&self) {
        let started =
            std::mem::take(&mut *self.processes.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::task::spawn_blocking(move || drop(started)).await;
    }

    /// The first component (etcd, kube-apiserver, or a controller manager started beside them)
    /// that has exited since it started, as an error with its exit status and the end of its log;
    /// `None` while all run. Components stopped by [`Self::stop`] or killed by
    /// [`Self::kill_and_restart`] are not reported.
    pub fn exited(&self) -> Option<RealClusterError> {
        let mut processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        processes.0.iter_mut().find_map(|p| {
            let status = p.exit_status()?;
            Some(RealClusterError::Died {
                component: p.name(),
                status,
                log: p.log().display().to_string(),
                tail: p.log_tail(),
            })
        })
    }

    /// Polls `check` every 20 ms until it returns true or `timeout` passes.
    pub async fn wait_until<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<(), RealClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if check().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RealClusterError::Timeout {
                    seconds: timeout.as_secs_f64(),
                    what: what.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The processes started so far, stopped last-started first (kube-apiserver before etcd) when
/// dropped: by [`RealCluster`]'s drop, or by a start that fails or is cancelled half-way.
#[derive(Default)]
struct Started(Vec<ChildProcess>);

impl Drop for Started {
    fn drop(&mut self) {
        while let Some(mut p) = self.0.pop() {
            p.stop(process::STOP_GRACE);
        }
    }
}

/// Polls `probe` every 50 ms until it succeeds, failing early when a component has exited.
async fn wait_ready<F, Fut>(
    processes: &mut Started,
    deadline: Instant,
    options: &RealClusterOptions,
    what: &str,
    mut probe: F,
) -> Result<(), RealClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        let last = match quietly(probe()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        for p in processes.0.iter_mut() {
            if let Some(status) = p.exit_status() {
                return Err(p.exited_error(status));
            }
        }
        if Instant::now() >= deadline {
            // The component being waited for is the last one started.
            let (log, tail) = processes.0.last().map_or_else(
                || (String::new(), String::new()),
                |p| (p.log().display().to_string(), p.log_tail()),
            );
            return Err(RealClusterError::StartTimeout {
                seconds: options.start_timeout.as_secs_f64(),
                what: what.to_string(),
                last,
                log,
                tail,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `future` with its logs dropped: while a component starts, kube's client logs every
/// refused connection and every 500 of a probe as an error, which the caller's log must not show.
fn quietly<F: std::future::Future>(future: F) -> tracing::instrument::WithDispatch<F> {
    tracing::instrument::WithSubscriber::with_subscriber(
        future,
        tracing::subscriber::NoSubscriber::default(),
    )
}

/// GET `path`: the status and body, or why there was no answer.
async fn probe(client: &kube::Client, path: &str) -> Result<(StatusCode, String), String> {
    let request = http::Request::get(path)
        .body(kube::client::Body::empty())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(5), quietly(client.send(request)))
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A client for a plain-HTTP endpoint (etcd's /health).
fn plain_client(url: &str) -> Result<kube::Client, RealClusterError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| RealClusterError::Client(e.to_string()))?;
    kube::Client::try_from(kube::Config::new(uri))
        .map_err(|e| RealClusterError::Client(e.to_string()))
}

async fn client_config(kubeconfig: &str) -> Result<kube::Config, RealClusterError> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| RealClusterError::Client(e.to_string()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| RealClusterError::Client(e.to_string()))?;
    config.read_timeout = Some(Duration::from_secs(300));
    Ok(config)
}

/// The admin kubeconfig, certificates inline, as envtest writes it.
fn kubeconfig_yaml(server: &str, pki: &Pki) -> String {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: realk8s\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: realk8s\n  context:\n    cluster: realk8s\n    user: admin\n    namespace: default\ncurrent-context: realk8s\nusers:\n- name: admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\npreferences: {{}}\n",
        ca = b64(&pki.ca_cert),
        cert = b64(&pki.admin_cert),
        key = b64(&pki.admin_key),
    )
}

/// Ports free on 127.0.0.1 right now (all held until all are picked, so they differ). kube-apiserver
/// cannot be given port 0, so there is a window in which another process may take one: a start
/// that fails with "address already in use" is retried.
fn free_ports<const N: usize>() -> Result<[u16; N], RealClusterError> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(RealClusterError::Port)?;
        *port = listener
            .local_addr()
            .map_err(RealClusterError::Port)?
            .port();
        listeners.push(listener);
    }
    Ok(ports)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn create_dir(path: &Path) -> Result<(), RealClusterError> {
    std::fs::create_dir_all(path).map_err(|source| RealClusterError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<(), RealClusterError> {
    std::fs::write(path, contents).map_err(|source| RealClusterError::Io {
        path: path.display().to_string(),
        source,
    })
}
