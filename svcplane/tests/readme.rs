//! The README's walkthroughs, run as written: `svcplane up` (and `svcplane up --data-plane`), then
//! each `$ ...` line of the walkthrough block with the repository as working directory; each
//! output must match the README's up to what differs between runs (ages, allocated ClusterIPs,
//! pod IPs, slice-name suffixes, the API server's port, and with the data plane which pod
//! answered, client ports, NodePorts and log times). Read-only commands are retried for a few
//! seconds, because the controllers write shortly after the pods turn Ready.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(command, expected output lines)` from the README's block `name`
/// (`<!-- name:begin -->` … `<!-- name:end -->`).
fn walkthrough(name: &str) -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let begin = readme.find(&format!("<!-- {name}:begin -->")).unwrap();
    let end = readme.find(&format!("<!-- {name}:end -->")).unwrap();
    let block = &readme[begin..end];
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.lines() {
        if line.starts_with("```") || line.starts_with("<!--") {
            continue;
        }
        match line.strip_prefix("$ ") {
            Some(command) => steps.push((command.to_string(), Vec::new())),
            None => {
                if let Some((_, out)) = steps.last_mut() {
                    out.push(line.to_string());
                }
            }
        }
    }
    steps
}

fn is_age(token: &str) -> bool {
    let mut digits = false;
    if token.is_empty() {
        return false;
    }
    for c in token.chars() {
        if c.is_ascii_digit() {
            digits = true;
        } else if matches!(c, 's' | 'm' | 'h' | 'd') && digits {
            digits = false;
        } else {
            return false;
        }
    }
    !digits
}

/// Addresses that are the same in every run.
fn is_stable_ip(ip: IpAddr) -> bool {
    ["10.96.0.1", "127.0.0.1", "192.0.2.10"]
        .iter()
        .any(|s| s.parse::<IpAddr>().ok() == Some(ip))
}

fn normalize_address(part: &str) -> String {
    let (ip, port) = match part.rsplit_once(':') {
        Some((ip, port)) if ip.parse::<IpAddr>().is_ok() => (ip, Some(port)),
        _ => (part, None),
    };
    match ip.parse::<IpAddr>() {
        Ok(addr) if !is_stable_ip(addr) => match port {
            Some(port) => format!("<ip>:{port}"),
            None => "<ip>".to_string(),
        },
        _ => part.to_string(),
    }
}

fn normalize(command: &str, lines: &[String], api_port: &str) -> Vec<String> {
    let slices = command.contains("get endpointslices");
    // `kubectl rollout status` prints a `Waiting for ...` line each time the rollout moves
    // while it waits: how many depends on how far the rollout got before it asked.
    let waiting = |line: &&String| {
        command.starts_with("kubectl rollout status") && line.starts_with("Waiting for ")
    };
    let lines: Vec<String> = lines.iter().filter(|l| !waiting(l)).cloned().collect();
    let mut rows = normalize_rows(slices, &lines, api_port);
    if slices && rows.len() > 1 {
        // kubectl sorts by name, and the random suffixes decide that order.
        rows[1..].sort();
    }
    rows
}

fn normalize_rows(slices: bool, lines: &[String], api_port: &str) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            line.split_whitespace()
                .enumerate()
                .map(|(i, token)| {
                    let token = if token == api_port { "6443" } else { token };
                    if is_age(token) {
                        return "<age>".to_string();
                    }
                    if slices
                        && i == 0
                        && token != "kubernetes"
                        && let Some((service, suffix)) = token.rsplit_once('-')
                        && suffix.len() == 5
                    {
                        return format!("{service}-<suffix>");
                    }
                    token
                        .split(',')
                        .map(normalize_address)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn run(command: &str, kubeconfig: &Path) -> Vec<String> {
    // `svcplane ...` lines run the binary under test.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_svcplane")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let out = Command::new("sh")
        .args(["-c", &format!("{command} 2>&1")])
        .current_dir(repo())
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

struct Up(Child);

impl Drop for Up {
    /// SIGTERM first, so that `up --data-plane` removes its namespaces; SIGKILL after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_walkthrough_produces_what_the_readme_shows() {
    run_walkthrough("walkthrough", &[], normalize);
}

/// Why the data plane cannot run here, if it cannot (root, network namespaces, `ip`, `nft`).
fn data_plane_unavailable() -> Option<String> {
    dataplane::check_host().err()
}

#[test]
fn the_readme_data_plane_walkthrough_produces_what_the_readme_shows() {
    if let Some(why) = data_plane_unavailable() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and the data plane cannot run here: {why}");
        }
        eprintln!("skipping the data-plane walkthrough: {why}");
        return;
    }
    run_walkthrough(
        "data-plane-walkthrough",
        &["--data-plane"],
        normalize_data_plane,
    );
}

/// What differs between data-plane runs besides what [`normalize`] covers: which pod answered
/// (`You've hit web-2`, `kubia-<hash>-<suffix>`), client ports, NodePorts and log times.
fn normalize_data_plane(command: &str, lines: &[String], api_port: &str) -> Vec<String> {
    normalize(command, lines, api_port)
        .into_iter()
        .map(|line| {
            line.split(' ')
                .map(|token| {
                    if let Some(port) = token.strip_prefix("<ip>:")
                        && port.parse::<u16>().is_ok_and(|p| p >= 1024)
                    {
                        return "<ip>:<port>".to_string();
                    }
                    if let Some(rest) = token.strip_prefix("80:")
                        && rest.ends_with("/TCP")
                        && rest != "30007/TCP"
                    {
                        return "80:<nodeport>/TCP".to_string();
                    }
                    if token.len() > 20 && token.ends_with('Z') && token.as_bytes()[4] == b'-' {
                        return "<time>".to_string();
                    }
                    if let Some(n) = token.strip_prefix("web-")
                        && n.len() == 1
                        && line.starts_with("You've hit")
                    {
                        return "web-<n>".to_string();
                    }
                    if token.starts_with("kubia-") && token.matches('-').count() == 2 {
                        return "kubia-<pod>".to_string();
                    }
                    token.to_string()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

type Normalizer = fn(&str, &[String], &str) -> Vec<String>;

/// Starts `svcplane up` with `flags` and runs README block `name`, comparing each output
/// through `normalize`.
fn run_walkthrough(name: &str, flags: &[&str], normalize: Normalizer) {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        panic!("the README test needs kubectl on PATH");
    }
    let steps = walkthrough(name);
    assert!(steps.len() >= 6, "walkthrough block {name} not found");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _up = Up(Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .arg("up")
        .args(flags)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "svcplane up not ready after 30s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let api_port = port.to_string();
    for (command, expected) in &steps {
        let want = normalize(command, expected, &api_port);
        // Everything but the writes may run again until the cluster has caught up: reads, and
        // requests through a Service whose rules the proxies may still be writing.
        let read_only = command.starts_with("kubectl get")
            || command.starts_with("kubectl describe")
            || command.starts_with("kubectl logs")
            || command.starts_with("kubectl exec")
            || command.starts_with("svcplane node-exec");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = normalize(command, &run(command, &kubeconfig), &api_port);
            if got == want {
                break;
            }
            if !read_only || Instant::now() >= deadline {
                panic!(
                    "`{command}` printed\n{}\n\nbut the README shows\n{}",
                    got.join("\n"),
                    want.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn normalization_keeps_what_is_stable() {
    assert!(is_age("3s") && is_age("2m1s") && is_age("5d") && !is_age("s") && !is_age("80"));
    let lines = vec![
        "web-bzwqs IPv4 80 10.244.1.2,10.244.2.2 1s".to_string(),
        "kubernetes IPv4 16443 127.0.0.1 2s".to_string(),
    ];
    assert_eq!(
        normalize("kubectl get endpointslices", &lines, "16443"),
        [
            "web-<suffix> IPv4 80 <ip>,<ip> <age>",
            "kubernetes IPv4 6443 127.0.0.1 <age>"
        ]
    );
    assert_eq!(
        normalize(
            "kubectl describe svc web",
            &["Endpoints: 10.244.1.2:80".to_string()],
            "1"
        ),
        ["Endpoints: <ip>:80"]
    );
    assert_eq!(
        normalize(
            "kubectl get svc",
            &["kubernetes ClusterIP 10.96.0.1 <none> 443/TCP 2s".to_string()],
            "1"
        ),
        ["kubernetes ClusterIP 10.96.0.1 <none> 443/TCP <age>"]
    );
    assert_eq!(
        normalize(
            "kubectl rollout status deployment/kubia",
            &[
                "Waiting for deployment \"kubia\" rollout to finish: 2 of 3 updated replicas are available...".to_string(),
                "deployment \"kubia\" successfully rolled out".to_string()
            ],
            "1"
        ),
        ["deployment \"kubia\" successfully rolled out"]
    );
}
