//! `kubectl exec` and `kubectl logs` against testenv, through a [`ContainerRuntime`] that runs
//! commands on the host (the argv itself) and serves a log the test writes: output, exit codes,
//! stdin, a 1 MiB output, `--tail`, `--timestamps`, `-f`, and the errors kubectl prints for an
//! unknown pod or container, an unscheduled pod, a missing runtime, a command that cannot start and
//! SPDY; `kubectl exec -it` on a real terminal (util-linux `script`), with `^C`. A raw WebSocket
//! client checks the frames themselves (opening frame, `tty`, resize, pings, the final Status and
//! the close code) and the terminal's hang-up.
//!
//! The `kubectl` on PATH is used (v1.30 or later speaks WebSocket by default), plus the versioned
//! 1.27 and 1.33 builds. With `CI=true` a missing kubectl or `script` fails the tests; elsewhere
//! they print why they skip.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use testenv::TestEnv;
use testenv::runtime::{ContainerLog, ContainerRuntime, LogEntry, PodRef, RuntimeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The pod whose runtime command names a binary that does not exist.
const BROKEN_POD: &str = "broken";

/// One pod's log: the writes so far and the channel followers read.
struct LogBook {
    written: Vec<LogEntry>,
    next: Option<broadcast::Sender<LogEntry>>,
}

/// Runs exec commands on the host as given and serves logs the test writes.
#[derive(Default)]
struct HostRuntime {
    logs: Mutex<HashMap<String, LogBook>>,
}

impl HostRuntime {
    /// Appends `text` to `pod`'s log, written at `time`.
    fn write_at(&self, pod: &str, time: jiff::Timestamp, text: &str) {
        let entry = LogEntry {
            time,
            bytes: Bytes::copy_from_slice(text.as_bytes()),
        };
        let mut logs = self.logs.lock().unwrap();
        let book = logs.entry(pod.to_string()).or_insert_with(|| LogBook {
            written: Vec::new(),
            next: Some(broadcast::channel(64).0),
        });
        book.written.push(entry.clone());
        if let Some(tx) = &book.next {
            let _ = tx.send(entry);
        }
    }

    fn write(&self, pod: &str, text: &str) {
        self.write_at(pod, jiff::Timestamp::now(), text);
    }

    /// The container stops: followers of `pod`'s log reach the end.
    fn stop(&self, pod: &str) {
        if let Some(book) = self.logs.lock().unwrap().get_mut(pod) {
            book.next = None;
        }
    }

    fn followers(&self, pod: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .get(pod)
            .and_then(|b| b.next.as_ref().map(|tx| tx.receiver_count()))
            .unwrap_or(0)
    }
}

impl ContainerRuntime for HostRuntime {
    fn exec(
        &self,
        pod: &PodRef,
        _container: &str,
        argv: &[String],
    ) -> Result<std::process::Command, RuntimeError> {
        if pod.name == BROKEN_POD {
            return Ok(std::process::Command::new(
                "/nonexistent/svcplane-exec-test-binary",
            ));
        }
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| RuntimeError::Other("no command".into()))?;
        let mut command = std::process::Command::new(program);
        command.args(args);
        Ok(command)
    }

    fn logs(&self, pod: &PodRef, _container: &str) -> Result<ContainerLog, RuntimeError> {
        let mut logs = self.logs.lock().unwrap();
        let book = logs
            .get_mut(&pod.name)
            .ok_or_else(|| RuntimeError::NotRunning {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
            })?;
        let next = match &book.next {
            Some(tx) => tx.subscribe(),
            // A stopped container: a receiver whose sender is gone, so `follow` ends at once.
            None => broadcast::channel(1).1,
        };
        Ok(ContainerLog {
            written: book.written.clone(),
            next,
        })
    }
}

/// The kubectl on PATH, or `None` (reason printed) outside CI.
fn kubectl_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("kubectl is not on PATH (required under CI=true)");
        }
        eprintln!("skipping: kubectl is not on PATH (set CI=true to make this a failure)");
    }
    found
}

/// A testenv with the host runtime (or none), its pods, and kubectl pointed at it.
struct Cluster {
    env: TestEnv,
    runtime: Arc<HostRuntime>,
    kubectl: PathBuf,
    dir: tempfile::TempDir,
}

fn pod(name: &str, node: Option<&str>, containers: &[&str]) -> Pod {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox"}))
        .collect();
    let mut spec = json!({"containers": containers});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

impl Cluster {
    async fn start(with_runtime: bool) -> Option<Self> {
        let kubectl = kubectl_binary()?;
        let env = TestEnv::start().await.expect("testenv starts");
        let runtime = Arc::new(HostRuntime::default());
        if with_runtime {
            env.server().set_container_runtime(runtime.clone());
        }
        let pods: Api<Pod> = Api::namespaced(env.client(), "default");
        for p in [
            pod("web", Some("node-1"), &["app"]),
            pod("multi", Some("node-1"), &["a", "b"]),
            pod("pending", None, &["app"]),
            pod(BROKEN_POD, Some("node-1"), &["app"]),
        ] {
            pods.create(&PostParams::default(), &p)
                .await
                .expect("pod created");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        env.write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("kubeconfig written");
        Some(Self {
            env,
            runtime,
            kubectl,
            dir,
        })
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.kubectl);
        c.args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn run_command(
        &self,
        mut command: tokio::process::Command,
        stdin: Option<&[u8]>,
    ) -> Output {
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().expect("kubectl runs");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).await.expect("stdin written");
            drop(pipe);
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finishes within 60 s")
            .expect("kubectl output")
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_command(self.command(args), None).await
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

#[tokio::test]
async fn kubectl_exec_runs_the_command_with_its_output_and_exit_code() {
    let Some(c) = Cluster::start(true).await else {
        return;
    };

    let o = c.run(&["exec", "web", "--", "echo", "hi"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(text(&o.stdout), "hi\n");

    let o = c
        .run(&[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .await;
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert_eq!(text(&o.stdout), "out\n");
    assert_eq!(
        text(&o.stderr),
        "err\ncommand terminated with exit code 3\n",
        "{}",
        show(&o)
    );

    // A container named explicitly, in a pod with two.
    let o = c
        .run(&["exec", "multi", "-c", "b", "--", "echo", "b"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(text(&o.stdout), "b\n");

    // The requests were WebSocket upgrades (101), not SPDY.
    let codes: Vec<u16> = c
        .env
        .oplog()
        .all()
        .into_iter()
        .filter(|op| op.subresource == "exec")
        .map(|op| op.code)
        .collect();
    assert_eq!(codes, [101, 101, 101]);
}

#[tokio::test]
async fn kubectl_exec_passes_stdin_and_long_output_whole() {
    let Some(c) = Cluster::start(true).await else {
        return;
    };
    let input = b"first line\nsecond line\n".repeat(1000);
    let o = c
        .run_command(c.command(&["exec", "-i", "web", "--", "cat"]), Some(&input))
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(o.stdout, input);

    let o = c
        .run(&[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "head -c 1048576 /dev/zero | tr '\\0' a",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(o.stdout.len(), 1024 * 1024);
    assert!(o.stdout.iter().all(|&b| b == b'a'));
}

#[tokio::test]
async fn kubectl_exec_errors_say_what_is_wrong() {
    let Some(c) = Cluster::start(true).await else {
        return;
    };
    let cases: [(&[&str], &str); 4] = [
        (
            &["exec", "nope", "--", "true"],
            "Error from server (NotFound): pods \"nope\" not found\n",
        ),
        (
            &["exec", "web", "-c", "nope", "--", "true"],
            "Error from server (BadRequest): container nope is not valid for pod web\n",
        ),
        (
            &["exec", "pending", "--", "true"],
            "Error from server (BadRequest): pod pending does not have a host assigned\n",
        ),
        (
            &["exec", BROKEN_POD, "--", "true"],
            "error: Internal error occurred: error executing command in container: No such file or directory (os error 2)\n",
        ),
    ];
    for (args, want) in cases {
        let o = c.run(args).await;
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", show(&o));
        assert_eq!(text(&o.stderr), want, "{args:?}");
    }

    // kubectl's SPDY transport is refused with the way out.
    let mut spdy = c.command(&["exec", "web", "--", "echo", "hi"]);
    spdy.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let o = c.run_command(spdy, None).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(
        text(&o.stderr),
        "Error from server (BadRequest): svcplane serves pods/exec over WebSocket (v5.channel.k8s.io), \
         not SPDY/3.1: kubectl 1.30 and later use it unless KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false \
         is set; unset it, or use a kubectl of 1.30 or later\n"
    );
}

#[tokio::test]
async fn kubectl_exec_and_logs_without_a_runtime_say_so() {
    let Some(c) = Cluster::start(false).await else {
        return;
    };
    let want = "Error from server (ServiceUnavailable): pod default/web is on node \"node-1\", which has \
                no container runtime in this server: exec and logs need pods that really run \
                (`svcplane up --data-plane` runs them)\n";
    let o = c.run(&["exec", "web", "--", "true"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(text(&o.stderr), want);
    let o = c.run(&["logs", "web"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(text(&o.stderr), want);
}

#[tokio::test]
async fn kubectl_logs_tail_timestamps_and_follow() {
    let Some(c) = Cluster::start(true).await else {
        return;
    };
    let t0: jiff::Timestamp = "2026-01-02T03:04:05.000000001Z".parse().unwrap();
    let t1: jiff::Timestamp = "2026-01-02T03:04:06.5Z".parse().unwrap();
    c.runtime.write_at("web", t0, "one\ntwo\n");
    c.runtime.write_at("web", t1, "three\n");

    let o = c.run(&["logs", "web"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(text(&o.stdout), "one\ntwo\nthree\n");

    let o = c.run(&["logs", "web", "--tail=2"]).await;
    assert_eq!(text(&o.stdout), "two\nthree\n", "{}", show(&o));

    let o = c.run(&["logs", "web", "--timestamps"]).await;
    assert_eq!(
        text(&o.stdout),
        "2026-01-02T03:04:05.000000001Z one\n2026-01-02T03:04:05.000000001Z two\n\
         2026-01-02T03:04:06.500000000Z three\n",
        "{}",
        show(&o)
    );

    let o = c.run(&["logs", "web", "--limit-bytes=6"]).await;
    assert_eq!(text(&o.stdout), "one\ntw", "{}", show(&o));

    // -f: the history, then a later write, then the end when the container stops.
    let mut follow = c.command(&["logs", "-f", "web", "--tail=1"]);
    let mut child = follow.spawn().expect("kubectl logs -f runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !seen.ends_with(b"three\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut buf))
            .await
            .expect("history arrives")
            .unwrap();
        assert!(n > 0, "kubectl logs -f ended early: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    c.env
        .wait_until(
            "the follower subscribes",
            Duration::from_secs(10),
            || async { c.runtime.followers("web") > 0 },
        )
        .await
        .unwrap();
    c.runtime.write("web", "four\n");
    while !seen.ends_with(b"four\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut buf))
            .await
            .expect("the later write arrives")
            .unwrap();
        assert!(n > 0, "kubectl logs -f ended early: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(text(&seen), "three\nfour\n");
    c.runtime.stop("web");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("kubectl logs -f ends when the container stops")
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn kubectl_logs_errors_say_what_is_wrong() {
    let Some(c) = Cluster::start(true).await else {
        return;
    };
    c.runtime.write("web", "hello\n");
    // kubectl checks the container itself, in the server's words; the server checks it too.
    let o = c.run(&["logs", "web", "-c", "nope"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(
        text(&o.stderr),
        "error: container nope is not valid for pod web\n"
    );
    let o = c
        .run(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web/log?container=nope",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(
        text(&o.stderr),
        "Error from server (BadRequest): container nope is not valid for pod web\n"
    );
    let o = c.run(&["logs", "nope"]).await;
    assert_eq!(
        text(&o.stderr),
        "error: error from server (NotFound): pods \"nope\" not found in namespace \"default\"\n"
    );
    // A pod no node runs: kube-apiserver's empty answer, so nothing is printed.
    let o = c.run(&["logs", "pending"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(text(&o.stdout), "");
    // Invalid options are a 422 from the API.
    let o = c
        .run(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web/log?tailLines=-1",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        text(&o.stderr).contains(
            "PodLogOptions \\\"web\\\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        ) || text(&o.stderr).contains(
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        ),
        "{}",
        show(&o)
    );
}

#[tokio::test]
async fn discovery_lists_exec_and_log_as_kube_apiserver_does() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client();
    let req = http::Request::get("/api/v1").body(Vec::new()).unwrap();
    let v1: Value = client.request(req).await.unwrap();
    let entry = |name: &str| {
        v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
    };
    assert_eq!(
        entry("pods/exec"),
        Some(
            json!({"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]})
        )
    );
    assert_eq!(
        entry("pods/log"),
        Some(
            json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]})
        )
    );
}

/// Reads binary frames until the close; returns (channel, payload) pairs and the close code.
async fn read_session<S>(ws: &mut S) -> (Vec<(u8, Vec<u8>)>, Option<u16>)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut frames = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the session goes on");
        match message {
            Some(Ok(Message::Binary(data))) => frames.push((data[0], data[1..].to_vec())),
            Some(Ok(Message::Close(frame))) => return (frames, frame.map(|f| u16::from(f.code))),
            Some(Ok(Message::Pong(_))) => frames.push((0xfe, Vec::new())),
            Some(Ok(other)) => panic!("unexpected message {other:?}"),
            Some(Err(e)) => panic!("websocket error: {e}"),
            None => return (frames, None),
        }
    }
}

#[tokio::test]
async fn websocket_frames_follow_the_v5_channel_protocol() {
    let env = TestEnv::start().await.unwrap();
    env.server()
        .set_container_runtime(Arc::new(HostRuntime::default()));
    let pods: Api<Pod> = Api::namespaced(env.client(), "default");
    pods.create(
        &PostParams::default(),
        &pod("web", Some("node-1"), &["app"]),
    )
    .await
    .unwrap();

    let addr = env.addr();
    let connect = |query: &str| {
        let url = format!("ws://{addr}/api/v1/namespaces/default/pods/web/exec?{query}");
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            http::HeaderValue::from_static("v5.channel.k8s.io"),
        );
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (ws, response) = tokio_tungstenite::client_async(request, tcp)
                .await
                .expect("upgraded");
            assert_eq!(
                response.headers()["sec-websocket-protocol"],
                "v5.channel.k8s.io"
            );
            ws
        }
    };

    // stdin, a resize, a ping, then [255, 0]: the opening frame comes first, cat echoes, the
    // ping is answered, and the session ends with Success and close code 1000.
    let mut ws = connect("command=cat&stdin=true&stdout=true&stderr=true").await;
    ws.send(Message::Binary(Bytes::from_static(
        b"\x04{\"Width\":80,\"Height\":24}\n",
    )))
    .await
    .unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"\x00hello\n")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[255, 0])))
        .await
        .unwrap();
    let (frames, close) = read_session(&mut ws).await;
    assert_eq!(frames.first(), Some(&(1, Vec::new())), "opening frame");
    let stdout: Vec<u8> = frames
        .iter()
        .filter(|(ch, _)| *ch == 1)
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert_eq!(stdout, b"hello\n");
    assert!(frames.iter().any(|(ch, _)| *ch == 0xfe), "pong");
    let status: Vec<&(u8, Vec<u8>)> = frames.iter().filter(|(ch, _)| *ch == 3).collect();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].1, br#"{"metadata":{},"status":"Success"}"#);
    assert_eq!(close, Some(1000));

    // tty: no stderr channel, both streams come from the terminal onto stdout (with its \r\n);
    // a non-zero exit in the Status.
    let mut ws = connect(
        "command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3&stdout=true&stderr=true&tty=true",
    )
    .await;
    let (frames, close) = read_session(&mut ws).await;
    assert!(frames.iter().all(|(ch, _)| *ch != 2), "{frames:?}");
    let stdout: Vec<u8> = frames
        .iter()
        .filter(|(ch, _)| *ch == 1)
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert_eq!(text(&stdout), "out\r\nerr\r\n");
    let status = frames.iter().find(|(ch, _)| *ch == 3).unwrap();
    assert_eq!(
        text(&status.1),
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
    );
    assert_eq!(close, Some(1000));

    // tty with stdin: the resize sets the terminal's size, input is echoed as a terminal does, and
    // [255, 0] is end of input (^D) for the command reading it.
    let mut ws = connect(
        "command=sh&command=-c&command=read+line%3B+stty+size%3B+echo+got%3A%24line%3B+cat&stdin=true&stdout=true&tty=true",
    )
    .await;
    ws.send(Message::Binary(Bytes::from_static(
        b"\x04{\"Width\":100,\"Height\":30}\n",
    )))
    .await
    .unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"\x00hello\n")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"\x00more\n")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[255, 0])))
        .await
        .unwrap();
    let (frames, close) = read_session(&mut ws).await;
    let stdout: Vec<u8> = frames
        .iter()
        .filter(|(ch, _)| *ch == 1)
        .flat_map(|(_, p)| p.clone())
        .collect();
    let stdout = text(&stdout);
    for want in ["hello\r\n", "30 100\r\n", "got:hello\r\n"] {
        assert!(stdout.contains(want), "{want:?} in {stdout:?}");
    }
    // `more` twice: the terminal's echo, then cat's copy before ^D ended it.
    assert_eq!(stdout.matches("more\r\n").count(), 2, "{stdout:?}");
    let status = frames.iter().find(|(ch, _)| *ch == 3).unwrap();
    assert_eq!(status.1, br#"{"metadata":{},"status":"Success"}"#);
    assert_eq!(close, Some(1000));

    // A WebSocket without v5 is refused with a Status, not upgraded.
    let url = format!(
        "ws://{}/api/v1/namespaces/default/pods/web/exec?command=true&stdout=true",
        env.addr()
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let tcp = tokio::net::TcpStream::connect(env.addr()).await.unwrap();
    match tokio_tungstenite::client_async(request, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("only with the v5.channel.k8s.io subprotocol"),
                "{body}"
            );
        }
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
}

/// Whether a process whose argv is exactly `argv` is running.
fn process_running(argv: &[&str]) -> bool {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == want))
}

#[tokio::test]
async fn a_client_that_leaves_ends_its_exec_and_its_log_follow() {
    let Some(c) = Cluster::start(true).await else {
        return;
    };
    // A sleep only this test runs: killing kubectl mid-exec kills it.
    let argv = ["sleep", "987.654"];
    let mut exec = c.command(&["exec", "web", "--", argv[0], argv[1]]);
    let mut kubectl = exec.spawn().unwrap();
    c.env
        .wait_until("the command runs", Duration::from_secs(30), || async {
            process_running(&argv)
        })
        .await
        .unwrap();
    kubectl.kill().await.unwrap();
    c.env
        .wait_until("the command is killed", Duration::from_secs(30), || async {
            !process_running(&argv)
        })
        .await
        .unwrap();

    // A follower that leaves unsubscribes from the runtime's log.
    c.runtime.write("multi", "x\n");
    let mut follow = c.command(&["logs", "-f", "multi", "-c", "a"]);
    let mut kubectl = follow.spawn().unwrap();
    c.env
        .wait_until(
            "the follower subscribes",
            Duration::from_secs(30),
            || async { c.runtime.followers("multi") == 1 },
        )
        .await
        .unwrap();
    kubectl.kill().await.unwrap();
    c.runtime.write("multi", "y\n");
    c.env
        .wait_until("the follower is gone", Duration::from_secs(30), || async {
            c.runtime.followers("multi") == 0
        })
        .await
        .unwrap();
}

/// Where the versioned kubectl builds live on these machines (as in `tests/kubectl.rs`).
const VERSIONED_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

#[tokio::test]
async fn kubectl_1_33_execs_and_kubectl_1_27_is_told_to_upgrade() {
    let Some(mut c) = Cluster::start(true).await else {
        return;
    };
    let builds = ["kubectl.1.27", "kubectl.1.33"].map(|b| PathBuf::from(VERSIONED_DIR).join(b));
    if let Some(missing) = builds.iter().find(|b| !b.is_file()) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{} is missing (required under CI=true)", missing.display());
        }
        eprintln!("skipping: {} is missing", missing.display());
        return;
    }
    let [old, new] = builds;

    c.kubectl = new;
    let o = c.run(&["exec", "web", "--", "echo", "hi"]).await;
    assert_eq!(
        (o.status.code(), text(&o.stdout)),
        (Some(0), "hi\n".into()),
        "{}",
        show(&o)
    );

    // 1.27 speaks SPDY only.
    c.kubectl = old;
    let o = c.run(&["exec", "web", "--", "echo", "hi"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        text(&o.stderr).starts_with(
            "Error from server (BadRequest): svcplane serves pods/exec over WebSocket (v5.channel.k8s.io), not SPDY/3.1"
        ),
        "{}",
        show(&o)
    );
}

/// `script` from util-linux: a terminal for kubectl, as a user's shell would give it.
fn script_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("script"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("`script` (util-linux) is not on PATH (required under CI=true)");
        }
        eprintln!("skipping: `script` (util-linux) is not on PATH");
    }
    found
}

#[tokio::test]
async fn kubectl_exec_it_gets_an_interactive_shell_that_ctrl_c_interrupts() {
    let Some(script) = script_binary() else {
        return;
    };
    let Some(c) = Cluster::start(true).await else {
        return;
    };
    let kubectl = format!("{} exec -it web -- sh", c.kubectl.display());
    let mut command = tokio::process::Command::new(script);
    command
        .args(["-qec", &kubectl, "/dev/null"])
        .env("KUBECONFIG", c.dir.path().join("kubeconfig"))
        .env("HOME", c.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut keyboard = child.stdin.take().unwrap();
    let mut screen = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    // Types `line` once `prompt` is on the screen.
    let mut type_after = async |prompt: &str, line: &[u8]| {
        let mut buf = [0u8; 1024];
        while !text(&seen).contains(prompt) {
            let n = tokio::time::timeout(Duration::from_secs(30), screen.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("waiting for {prompt:?}: {:?}", text(&seen)))
                .unwrap();
            assert!(n > 0, "the session ended early: {:?}", text(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        keyboard.write_all(line).await.unwrap();
    };
    type_after("# ", b"echo hi $((1+2))\r").await;
    type_after("hi 3\r\n# ", b"sleep 987.321\r").await;
    c.env
        .wait_until("sleep runs", Duration::from_secs(30), || async {
            process_running(&["sleep", "987.321"])
        })
        .await
        .unwrap();
    // ^C interrupts the sleep, not the shell.
    type_after("sleep 987.321\r\n", b"\x03").await;
    c.env
        .wait_until("sleep is interrupted", Duration::from_secs(30), || async {
            !process_running(&["sleep", "987.321"])
        })
        .await
        .unwrap();
    type_after("sleep 987.321\r\n", b"exit 4\r").await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the session ends")
        .unwrap();
    let mut rest = Vec::new();
    screen.read_to_end(&mut rest).await.unwrap();
    seen.extend_from_slice(&rest);
    assert_eq!(status.code(), Some(4), "{:?}", text(&seen));
    assert!(
        text(&seen).ends_with("exit 4\r\ncommand terminated with exit code 4\r\n"),
        "{:?}",
        text(&seen)
    );
}

#[tokio::test]
async fn a_terminal_session_ends_with_its_process_and_hangs_up_the_rest() {
    let env = TestEnv::start().await.unwrap();
    env.server()
        .set_container_runtime(Arc::new(HostRuntime::default()));
    let pods: Api<Pod> = Api::namespaced(env.client(), "default");
    pods.create(
        &PostParams::default(),
        &pod("web", Some("node-1"), &["app"]),
    )
    .await
    .unwrap();
    let url = format!(
        "ws://{}/api/v1/namespaces/default/pods/web/exec?command=sh&command=-c&command=sleep+654.321+%26+echo+started&stdout=true&tty=true",
        env.addr()
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("v5.channel.k8s.io"),
    );
    let tcp = tokio::net::TcpStream::connect(env.addr()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    let (frames, close) = read_session(&mut ws).await;
    let status = frames.iter().find(|(ch, _)| *ch == 3).unwrap();
    assert_eq!(status.1, br#"{"metadata":{},"status":"Success"}"#);
    assert_eq!(close, Some(1000));
    env.wait_until(
        "the background sleep is hung up",
        Duration::from_secs(30),
        || async { !process_running(&["sleep", "654.321"]) },
    )
    .await
    .unwrap();
}
