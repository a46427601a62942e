//! Named network namespaces as `ip netns` makes them (a bind mount of the namespace on
//! `/run/netns/NAME`, so `ip netns exec NAME …` finds them), and running code inside one.
//!
//! A thread's network namespace decides which namespace the sockets it creates belong to, and a
//! socket stays in its namespace for life. So code that must create sockets inside a namespace
//! runs on a fresh thread that enters it ([`in_netns`]) and hands the sockets back; no tokio
//! worker (or blocking-pool) thread ever changes namespace.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Where `ip netns` mounts named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// Where `ip netns exec NAME` finds files to bind-mount over `/etc` (resolv.conf).
pub const NETNS_ETC_DIR: &str = "/etc/netns";

/// `/run/netns/NAME`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

fn io_error(what: &str, errno: nix::Error) -> io::Error {
    io::Error::new(
        io::Error::from(errno).kind(),
        format!("{what}: {}", errno.desc()),
    )
}

/// A function that binds a std TCP listener inside network namespace `ns`, for servers that
/// take a listener factory (the proxy's health and metrics servers in a node's namespace).
pub type TcpListenerFactory =
    std::sync::Arc<dyn Fn(std::net::SocketAddr) -> io::Result<std::net::TcpListener> + Send + Sync>;

/// [`TcpListenerFactory`] for `ns`.
pub fn tcp_listener_factory(ns: &str) -> TcpListenerFactory {
    let ns = ns.to_owned();
    std::sync::Arc::new(move |addr| in_netns(&ns, move || std::net::TcpListener::bind(addr)))
}

/// Runs `f` on a fresh thread inside network namespace `ns` and returns its result. Sockets
/// `f` creates belong to `ns`. Blocks the caller until `f` returns (from async code use
/// [`in_netns_async`]).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let path = netns_path(ns);
    let file = File::open(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("network namespace {ns} ({}): {e}", path.display()),
        )
    })?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // The thread ends with `f`, so it never needs to find its way back.
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io_error(&format!("entering network namespace {ns}"), e))?;
                f()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(io::Error::other(format!(
                    "a task inside network namespace {ns} panicked"
                )))
            })
    })
}

/// [`in_netns`] from async code: the wait happens on tokio's blocking pool.
pub async fn in_netns_async<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.to_string();
    tokio::task::spawn_blocking(move || in_netns(&ns, f))
        .await
        .map_err(|e| io::Error::other(format!("network namespace task: {e}")))?
}

/// A tokio TCP listener bound to `addr` inside `ns`.
pub async fn bind_tcp(ns: &str, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let listener = in_netns_async(ns, move || {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .await?;
    tokio::net::TcpListener::from_std(listener)
}

/// A tokio UDP socket bound to `addr` inside `ns`.
pub async fn bind_udp(ns: &str, addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let socket = in_netns_async(ns, move || {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    })
    .await?;
    tokio::net::UdpSocket::from_std(socket)
}

/// A tokio TCP connection to `addr` made from inside `ns`.
pub async fn connect_tcp(
    ns: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<tokio::net::TcpStream> {
    let stream = in_netns_async(ns, move || {
        let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    })
    .await?;
    tokio::net::TcpStream::from_std(stream)
}

/// Makes `/run/netns` a shared mount point (bind-mounting it on itself first if it is not a
/// mount point), as `ip netns add` does, so that namespaces mounted later are seen from the
/// mount namespaces `ip netns exec` creates.
fn prepare_run_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_RUN_DIR)?;
    let shared = || {
        nix::mount::mount(
            Some(""),
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL) => {
            nix::mount::mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| io_error("bind-mounting /run/netns", e))?;
            shared().map_err(|e| io_error("making /run/netns shared", e))
        }
        Err(e) => Err(io_error("making /run/netns shared", e)),
    }
}

/// Creates the named network namespace `name` (`ip netns add NAME`), empty but for `lo`.
pub fn create_netns(name: &str) -> io::Result<()> {
    prepare_run_dir()?;
    let path = netns_path(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
    let mounted = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // Only this thread moves into the new namespace; it mounts the namespace on the
                // file (its own: thread-self, not the process's) and ends.
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io_error("creating a network namespace", e))?;
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    Some("none"),
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| io_error(&format!("mounting {}", path.display()), e))
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("creating a network namespace panicked")))
    });
    if mounted.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    mounted
}

/// Deletes the named network namespace `name` (`ip netns del NAME`). The namespace, and every
/// interface in it, goes once no socket or process holds it any more. Absent is not an error.
pub fn delete_netns(name: &str) -> io::Result<()> {
    let path = netns_path(name);
    match nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => {}
        Err(e) => return Err(io_error(&format!("unmounting {}", path.display()), e)),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("removing {}: {e}", path.display()),
        )),
    }
}

/// The names of the named network namespaces (`ip netns list`).
pub fn list_netns() -> io::Result<Vec<String>> {
    list_dir(Path::new(NETNS_RUN_DIR))
}

/// The entries of `dir` (none if it does not exist), sorted.
pub(crate) fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Some(name) = entry?.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// `/etc/netns/NAME`.
pub fn etc_dir(name: &str) -> PathBuf {
    Path::new(NETNS_ETC_DIR).join(name)
}

/// Writes `/etc/netns/NAME/resolv.conf`, which `ip netns exec NAME` bind-mounts over
/// `/etc/resolv.conf`.
pub fn write_resolv_conf(name: &str, text: &str) -> io::Result<()> {
    let dir = etc_dir(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("resolv.conf"), text)
}

/// Removes `/etc/netns/NAME` (absent is not an error).
pub fn remove_etc_dir(name: &str) -> io::Result<()> {
    match std::fs::remove_dir_all(etc_dir(name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets a sysctl of the current thread's network namespace, e.g. `net/ipv4/ip_forward` (call it
/// inside [`in_netns`]: `/proc/sys/net` shows the namespace of the thread that opens it).
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::write(&path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("setting {}: {e}", path.display())))
}
