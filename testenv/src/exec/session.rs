//! One exec session over an upgraded WebSocket connection: spawn the runtime's command, pump its
//! stdout and stderr onto channels 1 and 2 as it writes them, feed channel 0 to its stdin (closed
//! at `[255, 0]`), then write the final Status on channel 3 and close with 1000, which is the only
//! ending client-go reads as success.
//!
//! `tty=true` runs the command on a new pseudo-terminal (stdout and stderr both come back on
//! channel 1, as from a terminal, with its `\r\n`); resizes set the terminal's size.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{
    ClientFrame, ExecOptions, ExecOutcome, TerminalSignal, TerminalSize, channel, final_status,
    parse_client_frame,
};

/// How much of the process's output one frame carries at most.
const CHUNK: usize = 32 * 1024;
/// How long the client gets to answer our close before the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Runs `command` (the runtime's, for `argv`) over `ws` until it ends or the client leaves.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    command: std::process::Command,
    argv: Vec<String>,
    options: ExecOptions,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, incoming) = ws.split();
    // One writer owns the sink; pumps, pongs and the final Status queue messages to it. The
    // bound makes a slow client slow the process down instead of buffering its output.
    let (out, queue) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(write_messages(sink, queue));
    let _ = out.send(binary(options.opening_channel(), &[])).await;

    let outcome = match spawn(command, &options, &out) {
        Ok(Running {
            mut child,
            pumps,
            input,
            process_group,
        }) => {
            let mut reader = tokio::spawn(read_client(incoming, input, out.clone()));
            let finished = async {
                let status = child.wait().await;
                if let Some(group) = process_group {
                    // The terminal hangs up when its process ends, as a real one does when its
                    // session leader exits: what was left running in the background, and still
                    // holds the terminal, gets SIGHUP.
                    let _ = rustix::process::kill_process_group(group, Signal::HUP);
                }
                for pump in pumps {
                    let _ = pump.await;
                }
                status
            };
            tokio::select! {
                status = finished => {
                    let outcome = match status {
                        Ok(status) => ExecOutcome::Exited(exit_code(status)),
                        Err(e) => ExecOutcome::Failed(e.to_string()),
                    };
                    finish(&out, &outcome, &argv).await;
                    drop(out);
                    let _ = writer.await;
                    // Let the client's close reach the reader, which completes the handshake.
                    let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
                    reader.abort();
                    return;
                }
                _ = &mut reader => {
                    // The client left: nobody reads the output any more.
                    if let Some(group) = process_group {
                        // What the shell started goes too, and lets go of the terminal.
                        let _ = rustix::process::kill_process_group(group, Signal::KILL);
                    }
                    let _ = child.kill().await;
                    tracing::debug!(argv = ?argv, "exec client went away; process killed");
                    return;
                }
            }
        }
        Err(e) => ExecOutcome::Failed(e.to_string()),
    };
    finish(&out, &outcome, &argv).await;
    drop(out);
    let _ = writer.await;
    // Nothing reads the client after a failed spawn: drain it briefly for its close.
    let _ = tokio::time::timeout(CLOSE_GRACE, drain(incoming)).await;
}

fn binary(ch: u8, payload: &[u8]) -> Message {
    Message::Binary(Bytes::from(super::server_frame(ch, payload)))
}

/// The Status on channel 3, then a normal close.
async fn finish(out: &mpsc::Sender<Message>, outcome: &ExecOutcome, argv: &[String]) {
    let status = serde_json::to_vec(&final_status(outcome, argv)).unwrap_or_default();
    let _ = out.send(binary(channel::ERROR, &status)).await;
    let _ = out
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
}

async fn write_messages<S>(
    mut sink: futures::stream::SplitSink<WebSocketStream<S>, Message>,
    mut queue: mpsc::Receiver<Message>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.flush().await;
}

async fn drain<S>(mut incoming: futures::stream::SplitStream<WebSocketStream<S>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(_)) = incoming.next().await {}
}

/// Where the client's input goes: the process's stdin, and with `tty` the terminal that resizes,
/// end-of-input and interrupts act on.
struct Input {
    stdin: Option<Stdin>,
    terminal: Option<Terminal>,
}

/// The process's stdin.
enum Stdin {
    /// A pipe.
    Pipe(ChildStdin),
    /// The terminal, written by its own thread (see [`spawn_on_terminal`]).
    Terminal(mpsc::Sender<Vec<u8>>),
}

/// The pseudo-terminal of a `tty` session.
struct Terminal {
    /// Our end of it.
    master: std::fs::File,
    /// The process's group, which the process leads: what `^C` interrupts.
    process_group: Option<Pid>,
}

impl Terminal {
    /// Does what the line discipline would do for a controlling terminal: the terminal is not
    /// the process's controlling one (that takes `setsid` between fork and exec), so its
    /// interrupt and quit characters would otherwise reach nobody.
    fn raise_signals(&self, typed: &[u8]) {
        use rustix::termios::{LocalModes, SpecialCodeIndex};
        let Some(group) = self.process_group else {
            return;
        };
        let Ok(modes) = rustix::termios::tcgetattr(&self.master) else {
            return;
        };
        let signals = super::typed_signals(
            typed,
            modes.local_modes.contains(LocalModes::ISIG),
            modes.special_codes[SpecialCodeIndex::VINTR],
            modes.special_codes[SpecialCodeIndex::VQUIT],
        );
        for signal in signals {
            let signal = match signal {
                TerminalSignal::Interrupt => Signal::INT,
                TerminalSignal::Quit => Signal::QUIT,
            };
            if let Err(e) = rustix::process::kill_process_group(group, signal) {
                tracing::debug!("exec: cannot signal the terminal's processes: {e}");
            }
        }
    }
}

/// The byte a terminal reads as end of input (VEOF, `^D`).
const TERMINAL_EOF: u8 = 0x04;

impl Input {
    async fn write(&mut self, bytes: &[u8]) {
        if let Some(terminal) = &self.terminal {
            terminal.raise_signals(bytes);
        }
        let written = match self.stdin.as_mut() {
            None => return,
            Some(Stdin::Pipe(pipe)) => pipe.write_all(bytes).await.is_ok(),
            Some(Stdin::Terminal(writer)) => writer.send(bytes.to_vec()).await.is_ok(),
        };
        if !written {
            // The process closed its stdin (or exited); later input has nowhere to go.
            self.stdin = None;
        }
    }

    /// `[255, 0]`: a pipe is closed; a terminal reads end of input, as a typed `^D` would
    /// give, rather than a hang-up.
    async fn close(&mut self) {
        if self.terminal.is_some() {
            self.write(&[TERMINAL_EOF]).await;
        } else {
            self.stdin = None;
        }
    }

    fn resize(&self, size: TerminalSize) {
        if let Some(terminal) = &self.terminal {
            let winsize = rustix::termios::Winsize {
                ws_row: size.height,
                ws_col: size.width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            if let Err(e) = rustix::termios::tcsetwinsize(&terminal.master, winsize) {
                tracing::debug!("exec: cannot resize the terminal: {e}");
            }
        }
    }
}

/// Reads the client until it goes away: stdin data, close signals, resizes and pings. Returns
/// when the connection ends (the client closed or vanished).
async fn read_client<S>(
    mut incoming: futures::stream::SplitStream<WebSocketStream<S>>,
    mut input: Input,
    out: mpsc::Sender<Message>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = incoming.next().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            // tungstenite queues a pong itself but sends it only with the next write; an idle
            // session must still answer kubectl's pings within its 61 s deadline.
            Ok(Message::Ping(payload)) => {
                let _ = out.send(Message::Pong(payload)).await;
                continue;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        match parse_client_frame(&data) {
            Ok(ClientFrame::Stdin(bytes)) => input.write(bytes).await,
            Ok(ClientFrame::Close(channel::STDIN)) => input.close().await,
            Ok(ClientFrame::Resize(sizes)) => {
                if let Some(last) = sizes.last() {
                    input.resize(*last);
                }
            }
            Ok(ClientFrame::Close(_) | ClientFrame::Ignored(_)) => {}
            Err(e) => tracing::debug!("exec: ignoring a bad client frame: {e}"),
        }
    }
}

/// A spawned process, the tasks copying its output to the client, and its input.
struct Running {
    child: Child,
    pumps: Vec<tokio::task::JoinHandle<()>>,
    input: Input,
    /// With `tty`, the group the process leads, killed whole when the client leaves.
    process_group: Option<Pid>,
}

fn spawn(
    command: std::process::Command,
    options: &ExecOptions,
    out: &mpsc::Sender<Message>,
) -> std::io::Result<Running> {
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    if options.tty {
        return spawn_on_terminal(command, options, out);
    }
    command
        .stdin(piped_if(options.stdin))
        .stdout(piped_if(options.stdout))
        .stderr(piped_if(options.stderr));
    let mut child = command.spawn()?;
    let stdin = child.stdin.take().map(Stdin::Pipe);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = Input {
        stdin,
        terminal: None,
    };
    Ok(Running {
        child,
        pumps: Vec::new(),
        input,
        process_group: None,
    }
    .with_pump(stdout, channel::STDOUT, out)
    .with_pump(stderr, channel::STDERR, out))
}

/// `tty=true`: the process gets a new pseudo-terminal as its stdin, stdout and stderr; what it
/// writes there comes back on channel 1. It is not the process's controlling terminal (that
/// takes `setsid` between fork and exec), so job control is off and shells say so; `^C` and `^\`
/// are turned into signals by [`Terminal::raise_signals`].
///
/// The terminal is read and written by two threads of its own, not by the runtime's blocking
/// pool: a read blocks as long as anything holds the terminal's other end, and such a thread must
/// not hold up the server's shutdown.
fn spawn_on_terminal(
    mut command: tokio::process::Command,
    options: &ExecOptions,
    out: &mpsc::Sender<Message>,
) -> std::io::Result<Running> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;

    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let secondary = std::fs::File::from(rustix::fs::open(name.as_c_str(), flags, Mode::empty())?);
    let master = std::fs::File::from(master);
    let terminal_if = |wanted: bool| -> std::io::Result<Stdio> {
        Ok(if wanted {
            Stdio::from(secondary.try_clone()?)
        } else {
            Stdio::null()
        })
    };
    command
        .stdin(terminal_if(options.stdin)?)
        .stdout(terminal_if(options.stdout)?)
        .stderr(terminal_if(options.stdout)?)
        // Its own group, so that ^C interrupts it and what it started, not this server.
        .process_group(0);
    let child = command.spawn()?;
    let process_group = child
        .id()
        .and_then(|id| Pid::from_raw(i32::try_from(id).ok()?));
    // Only the process may hold the terminal's other end, or reading ours never ends.
    drop(command);
    drop(secondary);

    let mut pumps = Vec::new();
    if options.stdout {
        let reader = master.try_clone()?;
        let out = out.clone();
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("exec-tty-out".into())
            .spawn(move || copy_terminal_output(reader, &out, done))?;
        pumps.push(tokio::spawn(async move {
            let _ = finished.await;
        }));
    }
    let stdin = if options.stdin {
        let writer = master.try_clone()?;
        let (input, typed) = mpsc::channel::<Vec<u8>>(16);
        std::thread::Builder::new()
            .name("exec-tty-in".into())
            .spawn(move || copy_terminal_input(typed, writer))?;
        Some(Stdin::Terminal(input))
    } else {
        None
    };
    let input = Input {
        stdin,
        terminal: Some(Terminal {
            master,
            process_group,
        }),
    };
    Ok(Running {
        child,
        pumps,
        input,
        process_group,
    })
}

/// Reads the terminal onto channel 1 until its end (EIO once the process and what it started
/// have closed it) or the session's end; `done` is dropped on return.
fn copy_terminal_output(
    mut terminal: std::fs::File,
    out: &mpsc::Sender<Message>,
    _done: tokio::sync::oneshot::Sender<()>,
) {
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n @ 1..) = terminal.read(&mut buf) {
        if out
            .blocking_send(binary(channel::STDOUT, &buf[..n]))
            .is_err()
        {
            return;
        }
    }
}

/// Writes what the client types to the terminal until the session drops its sender.
fn copy_terminal_input(mut typed: mpsc::Receiver<Vec<u8>>, mut terminal: std::fs::File) {
    while let Some(bytes) = typed.blocking_recv() {
        if terminal.write_all(&bytes).is_err() {
            return;
        }
    }
}

fn piped_if(wanted: bool) -> Stdio {
    if wanted {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

impl Running {
    /// Copies `source` (when the stream was asked for) onto channel `ch` as it is written.
    fn with_pump<R>(mut self, source: Option<R>, ch: u8, out: &mpsc::Sender<Message>) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        if let Some(source) = source {
            self.pumps.push(tokio::spawn(pump(source, ch, out.clone())));
        }
        self
    }
}

/// Copies `source` onto channel `ch` until its end (a terminal's end is EIO once the process and
/// its children have closed it).
async fn pump<R>(mut source: R, ch: u8, out: mpsc::Sender<Message>)
where
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        match source.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send(binary(ch, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The exit code a container runtime reports: the code, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
