//! Readiness probes, run as the kubelet runs them: from the node (the node's namespace) against
//! the pod IP, every `periodSeconds` after `initialDelaySeconds`, each attempt bounded by
//! `timeoutSeconds`, the result turning only after `successThreshold` successes or
//! `failureThreshold` failures in a row (k/k `pkg/kubelet/prober/worker.go`). A pod is ready when
//! every probed container is; the node simulator is told each change.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use testenv::nodesim::ReadinessReporter;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::netns::in_netns_async;
use crate::pods::{PodPlan, ProbeAction, ProbeSpec};

/// The User-Agent of kubelet's HTTP probes (`kube-probe/<major>.<minor>`).
pub const PROBE_USER_AGENT: &str = "kube-probe/1.34";

/// One container's probe results so far: readiness starts as failure (a probed container is
/// unready until its first success) and turns only after enough equal results in a row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeTracker {
    ready: bool,
    last: Option<bool>,
    run: u32,
}

impl ProbeTracker {
    /// Records one attempt's result and returns the container's readiness.
    pub fn observe(
        &mut self,
        success: bool,
        success_threshold: u32,
        failure_threshold: u32,
    ) -> bool {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            success_threshold
        } else {
            failure_threshold
        };
        if self.run >= threshold {
            self.ready = success;
        }
        self.ready
    }

    /// The container's readiness.
    pub fn ready(&self) -> bool {
        self.ready
    }
}

/// The status code of an HTTP/1.x response head, if `head` starts with a status line.
pub fn http_status(head: &[u8]) -> Option<u16> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// kubelet's verdict on an HTTP status: success for 2xx and 3xx.
pub fn http_success(status: u16) -> bool {
    (200..400).contains(&status)
}

/// The request an httpGet probe sends.
pub fn http_request(path: &str, host: &str, headers: &[(String, String)]) -> String {
    let mut out = format!("GET {path} HTTP/1.1\r\n");
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("host") {
        out.push_str(&format!("Host: {host}\r\n"));
    }
    if !has("user-agent") {
        out.push_str(&format!("User-Agent: {PROBE_USER_AGENT}\r\n"));
    }
    if !has("accept") {
        out.push_str("Accept: */*\r\n");
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn http_probe(target: SocketAddr, request: &str, timeout: Duration) -> std::io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream.set_write_timeout(Some(left()))?;
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        stream.set_read_timeout(Some(left()))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(http_status(&head).is_some_and(http_success))
}

fn exec_probe(pod_ns: &str, command: &[String], timeout: Duration) -> std::io::Result<bool> {
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", pod_ns])
        .args(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs one attempt of `probe` against `pod_ip`: network probes from `node_ns`, exec probes in
/// `pod_ns`. Any error is a failure, as for the kubelet.
pub async fn probe_once(probe: &ProbeSpec, node_ns: &str, pod_ns: &str, pod_ip: Ipv4Addr) -> bool {
    let timeout = probe.timeout;
    let result = match probe.action.clone() {
        ProbeAction::HttpGet { https: true, .. } => {
            // The stand-in speaks plain HTTP; an HTTPS probe can only fail.
            Ok(false)
        }
        ProbeAction::HttpGet {
            port,
            path,
            host,
            headers,
            ..
        } => {
            let ip = host
                .as_deref()
                .and_then(|h| h.parse::<IpAddr>().ok())
                .unwrap_or(IpAddr::V4(pod_ip));
            let target = SocketAddr::new(ip, port);
            let request = http_request(&path, &target.to_string(), &headers);
            in_netns_async(node_ns, move || http_probe(target, &request, timeout)).await
        }
        ProbeAction::TcpSocket { port } => {
            let target = SocketAddr::from((pod_ip, port));
            in_netns_async(node_ns, move || {
                TcpStream::connect_timeout(&target, timeout).map(|_| true)
            })
            .await
        }
        ProbeAction::Exec { command } => {
            let pod_ns = pod_ns.to_string();
            tokio::task::spawn_blocking(move || exec_probe(&pod_ns, &command, timeout))
                .await
                .unwrap_or(Ok(false))
        }
    };
    result.unwrap_or(false)
}

/// Probes every probed container of `pod` until dropped (abort the task), and reports the pod's
/// readiness to `reporter` at first and at each change.
pub async fn run_pod_probes(
    pod: PodPlan,
    node_ns: String,
    pod_ns: String,
    reporter: ReadinessReporter,
) {
    let probed: Vec<ProbeSpec> = pod
        .containers
        .iter()
        .filter_map(|c| c.readiness.clone())
        .collect();
    if probed.is_empty() {
        return;
    }
    let (results, mut received) = mpsc::unbounded_channel::<(usize, bool)>();
    let mut workers = JoinSet::new();
    for (index, spec) in probed.iter().cloned().enumerate() {
        let results = results.clone();
        let (node_ns, pod_ns, ip) = (node_ns.clone(), pod_ns.clone(), pod.ip);
        workers.spawn(async move {
            tokio::time::sleep(spec.initial_delay).await;
            let mut tracker = ProbeTracker::default();
            let mut ticks = tokio::time::interval(spec.period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let success = probe_once(&spec, &node_ns, &pod_ns, ip).await;
                let ready =
                    tracker.observe(success, spec.success_threshold, spec.failure_threshold);
                if results.send((index, ready)).is_err() {
                    return;
                }
            }
        });
    }
    drop(results);
    let mut ready = vec![false; probed.len()];
    let mut reported: Option<bool> = None;
    while let Some((index, container_ready)) = received.recv().await {
        ready[index] = container_ready;
        let pod_ready = ready.iter().all(|r| *r);
        if reported != Some(pod_ready) {
            tracing::debug!(pod = %format!("{}/{}", pod.namespace, pod.name), ready = pod_ready, "readiness probe result changed");
            reporter.set_probe_result(&pod.namespace, &pod.name, &pod.uid, pod_ready);
            reported = Some(pod_ready);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_turn_readiness_after_runs_of_equal_results() {
        let mut t = ProbeTracker::default();
        assert!(!t.ready());
        // successThreshold 2: one success is not enough.
        assert!(!t.observe(true, 2, 3));
        assert!(t.observe(true, 2, 3));
        // failureThreshold 3: two failures keep it ready, the third turns it.
        assert!(t.observe(false, 2, 3));
        assert!(t.observe(false, 2, 3));
        assert!(!t.observe(false, 2, 3));
        // A success breaks the run of failures.
        assert!(!t.observe(true, 2, 3));
        assert!(!t.observe(false, 2, 3));
    }

    #[test]
    fn defaults_make_the_first_success_ready() {
        let mut t = ProbeTracker::default();
        assert!(t.observe(true, 1, 3));
        assert!(t.observe(false, 1, 3));
    }

    #[test]
    fn http_status_lines() {
        assert_eq!(
            http_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(
            http_status(b"HTTP/1.0 302 Found\r\nLocation: /\r\n"),
            Some(302)
        );
        assert_eq!(http_status(b"HTTP/1.1 200 OK"), None);
        assert_eq!(http_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert!(http_success(302));
        assert!(!http_success(404));
    }

    #[test]
    fn the_probe_request_is_kubelets() {
        assert_eq!(
            http_request("/healthz", "10.244.1.2:8080", &[("X-A".into(), "b".into())]),
            "GET /healthz HTTP/1.1\r\nHost: 10.244.1.2:8080\r\nUser-Agent: kube-probe/1.34\r\n\
             Accept: */*\r\nX-A: b\r\nConnection: close\r\n\r\n"
        );
        let custom = http_request("/", "h", &[("Host".into(), "web".into())]);
        assert!(!custom.contains("Host: h"));
        assert!(custom.contains("Host: web"));
    }
}
