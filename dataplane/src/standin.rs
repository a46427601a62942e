//! The stand-in for a pod's containers: on every declared containerPort, inside the pod's
//! namespace, a server that says which pod answered and which client address it saw (as the
//! kubia image of "Kubernetes in Action" does), so that load balancing and SNAT can be seen from
//! a shell. Each container keeps an access log for `kubectl logs`.
//!
//! It also plays a pod whose readiness can be broken on purpose: a request to
//! `/svcplane/readiness/fail` (on any of the pod's ports) makes its readiness probes fail —
//! httpGet probes get 503 on the probe's path, tcpSocket probe ports refuse connections from
//! outside the pod (they listen on loopback only) — until `/svcplane/readiness/pass`.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use testenv::runtime::LogEntry;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use crate::netns::{bind_tcp, bind_udp};
use crate::pods::{ContainerPlan, PodPlan, Protocol};

/// The path that makes the pod's readiness probes fail.
pub const READINESS_FAIL_PATH: &str = "/svcplane/readiness/fail";
/// The path that makes them pass again.
pub const READINESS_PASS_PATH: &str = "/svcplane/readiness/pass";

/// One line of a container's log, with the time it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When it was written.
    pub time: Timestamp,
    /// The line, without its newline.
    pub text: String,
}

#[derive(Debug)]
struct LogInner {
    lines: Vec<LogLine>,
    /// `None` once the container stopped: followers see the end of the log.
    sender: Option<broadcast::Sender<LogEntry>>,
}

/// A container's log: every line so far, and a channel of the ones to come.
#[derive(Debug)]
pub struct ContainerLogBook {
    inner: Mutex<LogInner>,
}

impl Default for ContainerLogBook {
    fn default() -> Self {
        Self {
            inner: Mutex::new(LogInner {
                lines: Vec::new(),
                sender: Some(broadcast::channel(1024).0),
            }),
        }
    }
}

impl ContainerLogBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a line (a newline is added).
    pub fn write(&self, time: Timestamp, text: String) {
        let mut inner = self.lock();
        if let Some(sender) = &inner.sender {
            // No follower is not an error.
            let _ = sender.send(LogEntry {
                time,
                bytes: Bytes::from(format!("{text}\n")),
            });
        }
        inner.lines.push(LogLine { time, text });
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lock().lines.clone()
    }

    /// Every line so far and a receiver of every later write, taken at the same instant so
    /// nothing is lost or seen twice. The receiver is closed at once if the container stopped.
    pub fn follow(&self) -> (Vec<LogLine>, broadcast::Receiver<LogEntry>) {
        let inner = self.lock();
        let receiver = match &inner.sender {
            Some(s) => s.subscribe(),
            None => broadcast::channel(1).1,
        };
        (inner.lines.clone(), receiver)
    }

    /// Marks the container stopped: followers reach the end of the log.
    pub fn close(&self) {
        self.lock().sender = None;
    }
}

/// The access-log line of one request: RFC 3339 time, client, method, path, status.
pub fn access_log_line(
    time: Timestamp,
    client: SocketAddr,
    method: &str,
    path: &str,
    status: u16,
) -> String {
    format!(
        "{} {client} {method} {path} {status}",
        time.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
    )
}

/// What the stand-in answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// `Some(failing)` when the request flips the pod's readiness switch.
    pub set_failing: Option<bool>,
}

/// The greeting: who answered, and the client address it saw.
pub fn greeting(pod: &str, client: SocketAddr) -> String {
    format!("You've hit {pod}\nclient address: {client}\n")
}

/// The stand-in's answer to `path` from `client` on a port whose readiness probe paths are
/// `probe_paths`, while the pod's readiness switch says `failing`.
pub fn reply(
    pod: &str,
    path: &str,
    client: SocketAddr,
    probe_paths: &BTreeSet<String>,
    failing: bool,
) -> Reply {
    let answer = |status, body: String, set_failing| Reply {
        status,
        body,
        set_failing,
    };
    match path {
        READINESS_FAIL_PATH => answer(
            200,
            format!("readiness probes of {pod} now fail\n"),
            Some(true),
        ),
        READINESS_PASS_PATH => answer(
            200,
            format!("readiness probes of {pod} now pass\n"),
            Some(false),
        ),
        p if failing && probe_paths.contains(p) => answer(
            503,
            format!("{pod} is failing its readiness probe ({READINESS_PASS_PATH} to pass)\n"),
            None,
        ),
        _ => answer(200, greeting(pod, client), None),
    }
}

/// A pod's stand-in servers; dropping it (or [`StandIn::stop`]) closes every socket.
pub struct StandIn {
    tasks: JoinSet<()>,
    logs: Vec<(String, Arc<ContainerLogBook>)>,
}

/// The readiness switch of one pod: `true` while its probes are made to fail.
pub type ReadinessSwitch = watch::Sender<bool>;

impl StandIn {
    /// Starts a server on every port of every container of `pod` inside namespace `ns`.
    /// A port declared twice is served by the first container that declares it.
    pub async fn start(
        ns: &str,
        pod: &PodPlan,
        switch: Arc<ReadinessSwitch>,
    ) -> std::io::Result<Self> {
        let mut tasks = JoinSet::new();
        let mut logs = Vec::new();
        let mut taken = BTreeSet::new();
        for container in &pod.containers {
            let log = Arc::new(ContainerLogBook::default());
            logs.push((container.name.clone(), log.clone()));
            for &(port, protocol) in &container.ports {
                if !taken.insert((port, protocol)) {
                    tracing::warn!(pod = %format!("{}/{}", pod.namespace, pod.name), container = %container.name, port, "port already served by another container of the pod");
                    continue;
                }
                let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
                let server = PortServer {
                    ns: ns.to_string(),
                    pod: pod.name.clone(),
                    log: log.clone(),
                    switch: switch.clone(),
                    probe_paths: probe_paths(container, port),
                    tcp_probe_port: pod
                        .containers
                        .iter()
                        .any(|c| c.tcp_probe_port() == Some(port)),
                };
                match protocol {
                    Protocol::Tcp => {
                        let listener = bind_tcp(ns, addr).await?;
                        tasks.spawn(server.serve_tcp(listener));
                    }
                    Protocol::Udp => {
                        let socket = bind_udp(ns, addr).await?;
                        tasks.spawn(server.serve_udp(socket));
                    }
                }
            }
        }
        Ok(Self { tasks, logs })
    }

    /// The log of `container`.
    pub fn log(&self, container: &str) -> Option<Arc<ContainerLogBook>> {
        self.logs
            .iter()
            .find(|(name, _)| name == container)
            .map(|(_, log)| log.clone())
    }

    /// Stops every server (closing its sockets, which releases the namespace) and ends the
    /// containers' logs.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

impl Drop for StandIn {
    /// The servers' tasks are aborted with the set; the logs end.
    fn drop(&mut self) {
        for (_, log) in &self.logs {
            log.close();
        }
    }
}

fn probe_paths(container: &ContainerPlan, port: u16) -> BTreeSet<String> {
    container
        .http_probe()
        .filter(|(p, _)| *p == port)
        .map(|(_, path)| path.to_string())
        .into_iter()
        .collect()
}

struct PortServer {
    ns: String,
    pod: String,
    log: Arc<ContainerLogBook>,
    switch: Arc<ReadinessSwitch>,
    probe_paths: BTreeSet<String>,
    tcp_probe_port: bool,
}

impl PortServer {
    async fn serve_tcp(self, listener: tokio::net::TcpListener) {
        let this = Arc::new(self);
        let mut failing = this.switch.subscribe();
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let mut listener = listener;
        let mut loopback_only = false;
        let mut connections = JoinSet::new();
        loop {
            // A failing tcpSocket probe is a refused connection: while failing, the probe's port
            // listens on loopback only, so the pod itself can still ask to pass.
            let want_loopback = this.tcp_probe_port && *failing.borrow_and_update();
            if want_loopback != loopback_only {
                let ip = if want_loopback {
                    Ipv4Addr::LOCALHOST
                } else {
                    Ipv4Addr::UNSPECIFIED
                };
                let rebind = SocketAddr::from((ip, addr.port()));
                drop(listener);
                listener = match bind_tcp(&this.ns, rebind).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(pod = %this.pod, addr = %rebind, error = %e, "stand-in cannot listen again");
                        return;
                    }
                };
                loopback_only = want_loopback;
            }
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, client)) = accepted else { continue };
                    let this = this.clone();
                    connections.spawn(async move { this.serve_connection(stream, client).await });
                }
                changed = failing.changed(), if this.tcp_probe_port => {
                    if changed.is_err() {
                        return;
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }

    async fn serve_connection(self: Arc<Self>, stream: tokio::net::TcpStream, client: SocketAddr) {
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let this = self.clone();
            async move { Ok::<_, Infallible>(this.answer(&request, client)) }
        });
        // A client that goes away mid-request is its own business.
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    fn answer<B>(&self, request: &Request<B>, client: SocketAddr) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let failing = *self.switch.borrow();
        let r = reply(&self.pod, path, client, &self.probe_paths, failing);
        if let Some(f) = r.set_failing {
            self.switch.send_replace(f);
        }
        let now = Timestamp::now();
        self.log.write(
            now,
            access_log_line(now, client, request.method().as_str(), path, r.status),
        );
        let mut response = Response::new(Full::new(Bytes::from(r.body)));
        *response.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }

    async fn serve_udp(self, socket: tokio::net::UdpSocket) {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((_, client)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let body = greeting(&self.pod, client);
            let _ = socket.send_to(body.as_bytes(), client).await;
            let now = Timestamp::now();
            self.log
                .write(now, access_log_line(now, client, "UDP", "-", 200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> SocketAddr {
        "10.244.1.7:40000".parse().unwrap()
    }

    #[test]
    fn the_greeting_names_the_pod_and_the_client() {
        let r = reply("web-1", "/", client(), &BTreeSet::new(), false);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            "You've hit web-1\nclient address: 10.244.1.7:40000\n"
        );
        assert_eq!(r.set_failing, None);
    }

    #[test]
    fn the_switch_fails_only_the_probe_path() {
        let probes = BTreeSet::from(["/healthz".to_string()]);
        let r = reply("web-1", READINESS_FAIL_PATH, client(), &probes, false);
        assert_eq!(r.set_failing, Some(true));
        assert_eq!(
            reply("web-1", "/healthz", client(), &probes, true).status,
            503
        );
        assert_eq!(reply("web-1", "/", client(), &probes, true).status, 200);
        assert_eq!(
            reply("web-1", "/healthz", client(), &probes, false).status,
            200
        );
        let r = reply("web-1", READINESS_PASS_PATH, client(), &probes, true);
        assert_eq!((r.status, r.set_failing), (200, Some(false)));
    }

    #[test]
    fn access_log_lines_and_following() {
        let t: Timestamp = "2026-01-02T03:04:05.5Z".parse().unwrap();
        assert_eq!(
            access_log_line(t, client(), "GET", "/x", 200),
            "2026-01-02T03:04:05.500000Z 10.244.1.7:40000 GET /x 200"
        );
        let book = ContainerLogBook::default();
        book.write(t, "one".into());
        let (so_far, mut next) = book.follow();
        book.write(t, "two".into());
        assert_eq!(so_far.len(), 1);
        assert_eq!(next.try_recv().unwrap().bytes, Bytes::from("two\n"));
        book.close();
        assert!(matches!(
            next.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
        assert_eq!(book.lines().len(), 2);
    }
}
