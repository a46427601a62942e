//! The `pods/exec` subresource: what kubectl ≥ 1.30 asks for (`PodExecOptions` in the query, a
//! WebSocket upgrade offering `v5.channel.k8s.io`) and what it reads back (channel frames, then
//! one `Status` on the error channel). This module is the plain-data part: options, the
//! transport a request asks for, client frames and the final Status; [`session`] runs the command
//! over the upgraded connection.
//!
//! Upstream: k/k `pkg/registry/core/pod/rest/subresources.go` (the REST side),
//! `k8s.io/kubelet/pkg/cri/streaming/remotecommand` (options and the Status the kubelet writes),
//! `k8s.io/apimachinery/pkg/util/remotecommand/constants.go` (channels, protocol names).

pub mod session;
pub mod upgrade;

use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::status::ApiError;

/// The only remote-command protocol served: WebSocket with v5 channel framing.
pub const STREAM_PROTOCOL_V5: &str = "v5.channel.k8s.io";

/// The channel numbers of the `channel.k8s.io` family.
pub mod channel {
    /// Client → server: the process's stdin.
    pub const STDIN: u8 = 0;
    /// Server → client: the process's stdout.
    pub const STDOUT: u8 = 1;
    /// Server → client: the process's stderr.
    pub const STDERR: u8 = 2;
    /// Server → client: the final `Status`.
    pub const ERROR: u8 = 3;
    /// Client → server: terminal sizes.
    pub const RESIZE: u8 = 4;
    /// Client → server (v5): `[255, ch]` closes channel `ch`.
    pub const CLOSE: u8 = 255;
}

/// `PodExecOptions` from the query string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOptions {
    /// argv, one `command` parameter per element, in order.
    pub command: Vec<String>,
    /// `container`, if given.
    pub container: Option<String>,
    /// `stdin`.
    pub stdin: bool,
    /// `stdout`.
    pub stdout: bool,
    /// `stderr`; always false with `tty`, as the kubelet drops it.
    pub stderr: bool,
    /// `tty`.
    pub tty: bool,
}

/// A boolean query parameter as apimachinery's `Convert_Slice_string_To_bool` reads it: the
/// first value; `0` and `false` (any case) are false, anything else true; absent is false.
fn query_bool(pairs: &[(String, String)], key: &str) -> bool {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .is_some_and(|(_, v)| v != "0" && !v.eq_ignore_ascii_case("false"))
}

impl ExecOptions {
    /// Reads the options; [`ExecOptions::check`] says whether they can run.
    pub fn from_query(pairs: &[(String, String)]) -> Self {
        let command: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        let container = pairs
            .iter()
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v.clone())
            .filter(|c| !c.is_empty());
        let tty = query_bool(pairs, "tty");
        Self {
            command,
            container,
            stdin: query_bool(pairs, "stdin"),
            stdout: query_bool(pairs, "stdout"),
            stderr: query_bool(pairs, "stderr") && !tty,
            tty,
        }
    }

    /// What the kubelet (and kubectl) check before anything runs: after the pod, container and
    /// node checks, as only the kubelet sees the options.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.command.is_empty() {
            // kube-apiserver passes an empty command on and the runtime fails it; kubectl refuses
            // it with these words, which say what is wrong before anything starts.
            return Err(ApiError::bad_request(
                "you must specify at least one command for the container",
            ));
        }
        if !self.stdin && !self.stdout && !self.stderr {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        Ok(())
    }

    /// The channel of the empty frame sent right after the upgrade: the lowest one the client
    /// reads (upstream's wsstream opens the first writable channel with an empty message).
    pub fn opening_channel(&self) -> u8 {
        if self.stdout {
            channel::STDOUT
        } else if self.stderr {
            channel::STDERR
        } else {
            channel::ERROR
        }
    }
}

/// How a request asks to be upgraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket upgrade offering `v5.channel.k8s.io`, with its `Sec-WebSocket-Key`.
    WebSocketV5 {
        /// `Sec-WebSocket-Key`.
        key: String,
    },
    /// A WebSocket upgrade without v5 (or without a key): the subprotocols it offered.
    WebSocketOther(Vec<String>),
    /// `Upgrade: SPDY/3.1`, what kubectl before 1.30 (or with websockets switched off) sends.
    Spdy,
    /// No upgrade at all.
    None,
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The transport `headers` ask for.
pub fn requested_transport(headers: &HeaderMap) -> Transport {
    let upgrade: Vec<String> = header_values(headers, "upgrade").collect();
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let offered: Vec<String> = header_values(headers, "sec-websocket-protocol").collect();
        let key = headers
            .get("sec-websocket-key")
            .and_then(|k| k.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty());
        return match key {
            Some(key) if offered.iter().any(|p| p == STREAM_PROTOCOL_V5) => {
                Transport::WebSocketV5 {
                    key: key.to_string(),
                }
            }
            _ => Transport::WebSocketOther(offered),
        };
    }
    if upgrade
        .iter()
        .any(|u| u.to_ascii_lowercase().starts_with("spdy/"))
    {
        return Transport::Spdy;
    }
    Transport::None
}

/// The `Sec-WebSocket-Key` to answer, or why a request with a scheduled pod and a valid command is
/// still not upgraded.
pub fn accepted_key(transport: &Transport) -> Result<&str, ApiError> {
    match transport {
        Transport::WebSocketV5 { key } => Ok(key),
        Transport::WebSocketOther(offered) => Err(ApiError::bad_request(format!(
            "svcplane serves pods/exec over WebSocket only with the {STREAM_PROTOCOL_V5} subprotocol \
             (kubectl 1.30 and later); this request offered [{}]",
            offered.join(", ")
        ))),
        Transport::Spdy => Err(ApiError::bad_request(format!(
            "svcplane serves pods/exec over WebSocket ({STREAM_PROTOCOL_V5}), not SPDY/3.1: kubectl 1.30 \
             and later use it unless KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false is set; unset it, or use \
             a kubectl of 1.30 or later"
        ))),
        Transport::None => Err(ApiError::bad_request("Upgrade request required")),
    }
}

/// A terminal size on the resize channel (`remotecommand.TerminalSize` as JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// A signal a terminal raises for a typed character, to its processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalSignal {
    /// `^C` (VINTR): SIGINT.
    Interrupt,
    /// `^\` (VQUIT): SIGQUIT.
    Quit,
}

/// The signals `input` raises on a terminal whose line discipline has `isig` on, with interrupt
/// and quit characters `intr` and `quit` (0 disables one, as `_POSIX_VDISABLE`). Programs that
/// switch `isig` off (editors, pagers) get the bytes alone.
pub fn typed_signals(input: &[u8], isig: bool, intr: u8, quit: u8) -> Vec<TerminalSignal> {
    if !isig {
        return Vec::new();
    }
    input
        .iter()
        .filter_map(|&b| match b {
            0 => None,
            b if b == intr => Some(TerminalSignal::Interrupt),
            b if b == quit => Some(TerminalSignal::Quit),
            _ => None,
        })
        .collect()
}

/// One binary message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Bytes for the process's stdin.
    Stdin(&'a [u8]),
    /// Terminal sizes, in order.
    Resize(Vec<TerminalSize>),
    /// v5 close of a channel (`[255, ch]`); kubectl sends `[255, 0]` at stdin's end.
    Close(u8),
    /// A frame on a channel the server does not read: dropped, as upstream drops them.
    Ignored(u8),
}

/// What is wrong with a client frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message without even a channel byte.
    #[error("empty message without a channel byte")]
    Empty,
    /// A v5 close signal of the wrong length.
    #[error("close signal must be 2 bytes ([255, channel]), got {0}")]
    BadClose(usize),
    /// A resize payload that is not a stream of `{"Width":W,"Height":H}`.
    #[error("invalid terminal size: {0}")]
    BadResize(String),
}

/// Splits a binary client message into channel and payload.
pub fn parse_client_frame(data: &[u8]) -> Result<ClientFrame<'_>, FrameError> {
    let (&ch, payload) = data.split_first().ok_or(FrameError::Empty)?;
    match ch {
        channel::STDIN => Ok(ClientFrame::Stdin(payload)),
        channel::RESIZE => serde_json::Deserializer::from_slice(payload)
            .into_iter::<TerminalSize>()
            .collect::<Result<Vec<_>, _>>()
            .map(ClientFrame::Resize)
            .map_err(|e| FrameError::BadResize(e.to_string())),
        channel::CLOSE => match payload {
            [closed] => Ok(ClientFrame::Close(*closed)),
            _ => Err(FrameError::BadClose(data.len())),
        },
        other => Ok(ClientFrame::Ignored(other)),
    }
}

/// A server → client message: the channel byte, then the payload.
pub fn server_frame(ch: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 1);
    frame.push(ch);
    frame.extend_from_slice(payload);
    frame
}

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The process exited with this code (a signal `n` counts as `128 + n`, as container
    /// runtimes report it).
    Exited(i32),
    /// The command could not be run at all.
    Failed(String),
}

/// The `Status` written on the error channel at the end, as the kubelet's `ServeExec` writes it
/// (`json.Marshal` of a `metav1.Status`: no kind or apiVersion).
pub fn final_status(outcome: &ExecOutcome, argv: &[String]) -> Value {
    match outcome {
        ExecOutcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        ExecOutcome::Exited(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                argv.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        ExecOutcome::Failed(why) => {
            let message = format!("error executing command in container: {why}");
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {message}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        crate::server::parse_query_pairs(q)
    }

    #[test]
    fn options_keep_argv_order_and_drop_stderr_with_a_tty() {
        let o = ExecOptions::from_query(&pairs(
            "command=sh&command=-c&command=echo+hi&container=web&stderr=true&stdout=true",
        ));
        assert_eq!(o.check(), Ok(()));
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        assert_eq!(o.container.as_deref(), Some("web"));
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        assert_eq!(o.opening_channel(), channel::STDOUT);

        let t = ExecOptions::from_query(&pairs(
            "command=sh&stdin=true&stdout=true&stderr=true&tty=true",
        ));
        assert!(t.tty && t.stdin && !t.stderr);

        let only_stderr = ExecOptions::from_query(&pairs("command=x&stderr=1&stdout=0"));
        assert_eq!(only_stderr.opening_channel(), channel::STDERR);
        let only_stdin = ExecOptions::from_query(&pairs("command=x&stdin=yes"));
        assert_eq!(only_stdin.opening_channel(), channel::ERROR);
    }

    #[test]
    fn options_without_command_or_streams_are_refused() {
        let e = ExecOptions::from_query(&pairs("stdout=true"))
            .check()
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "you must specify at least one command for the container"
            )
        );
        let e = ExecOptions::from_query(&pairs("command=ls&stdout=false"))
            .check()
            .unwrap_err();
        assert_eq!(
            e.message,
            "you must specify at least 1 of stdin, stdout, stderr"
        );
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn transports_are_told_apart() {
        let ws = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        assert_eq!(
            requested_transport(&ws),
            Transport::WebSocketV5 {
                key: "dGhlIHNhbXBsZSBub25jZQ==".into()
            }
        );
        assert_eq!(
            accepted_key(&requested_transport(&ws)).unwrap(),
            "dGhlIHNhbXBsZSBub25jZQ=="
        );

        let v4 = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
            (
                "sec-websocket-protocol",
                "v4.channel.k8s.io, base64.channel.k8s.io",
            ),
        ]);
        let refusal = accepted_key(&requested_transport(&v4)).unwrap_err();
        assert!(
            refusal
                .message
                .ends_with("offered [v4.channel.k8s.io, base64.channel.k8s.io]"),
            "{}",
            refusal.message
        );

        let spdy = headers(&[("upgrade", "SPDY/3.1")]);
        assert_eq!(requested_transport(&spdy), Transport::Spdy);
        let refusal = accepted_key(&Transport::Spdy).unwrap_err();
        assert_eq!(refusal.code, 400);
        assert!(
            refusal
                .message
                .contains("KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false")
        );

        assert_eq!(requested_transport(&HeaderMap::new()), Transport::None);
    }

    #[test]
    fn client_frames_are_split_by_channel() {
        assert_eq!(
            parse_client_frame(&[0, b'h', b'i']).unwrap(),
            ClientFrame::Stdin(b"hi")
        );
        assert_eq!(
            parse_client_frame(&[255, 0]).unwrap(),
            ClientFrame::Close(0)
        );
        assert_eq!(
            parse_client_frame(&[255, 0, 1]).unwrap_err(),
            FrameError::BadClose(3)
        );
        assert_eq!(parse_client_frame(&[]).unwrap_err(), FrameError::Empty);
        assert_eq!(
            parse_client_frame(&[9, 1]).unwrap(),
            ClientFrame::Ignored(9)
        );
        let mut resize = vec![channel::RESIZE];
        resize.extend_from_slice(b"{\"Width\":80,\"Height\":24}\n{\"Width\":100,\"Height\":30}\n");
        assert_eq!(
            parse_client_frame(&resize).unwrap(),
            ClientFrame::Resize(vec![
                TerminalSize {
                    width: 80,
                    height: 24
                },
                TerminalSize {
                    width: 100,
                    height: 30
                }
            ])
        );
        assert!(matches!(
            parse_client_frame(&[channel::RESIZE, b'x']),
            Err(FrameError::BadResize(_))
        ));
        assert_eq!(server_frame(channel::STDOUT, b"hi"), [1, b'h', b'i']);
    }

    #[test]
    fn typed_interrupts_signal_only_with_isig() {
        let (intr, quit) = (0x03, 0x1c);
        assert_eq!(
            typed_signals(b"ab\x03c\x1c", true, intr, quit),
            [TerminalSignal::Interrupt, TerminalSignal::Quit]
        );
        assert_eq!(typed_signals(b"\x03", false, intr, quit), []);
        assert_eq!(typed_signals(b"plain", true, intr, quit), []);
        // A disabled character (0) is never matched, even by a NUL byte.
        assert_eq!(typed_signals(b"\0", true, 0, 0), []);
    }

    #[test]
    fn final_statuses_read_as_the_kubelet_writes_them() {
        let argv: Vec<String> = ["sh", "-c", "exit 3"].map(String::from).into();
        assert_eq!(
            serde_json::to_string(&final_status(&ExecOutcome::Exited(0), &argv)).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            serde_json::to_string(&final_status(&ExecOutcome::Exited(3), &argv)).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let failed = final_status(
            &ExecOutcome::Failed("No such file or directory (os error 2)".into()),
            &argv,
        );
        assert_eq!(failed["code"], 500);
        assert_eq!(failed["reason"], "InternalError");
        assert_eq!(
            failed["message"],
            "Internal error occurred: error executing command in container: No such file or directory (os error 2)"
        );
    }
}
