//! What runs pods' containers, as far as the API server needs it: the `pods/exec` and `pods/log`
//! subresources. kube-apiserver hands both to the pod's kubelet; testenv hands them to the
//! [`ContainerRuntime`] registered with [`crate::ApiServer::set_container_runtime`] — in the
//! playground, the data plane that runs each pod as a network namespace. Without one, both
//! subresources answer a Status saying so.

use std::process::Command;

use tokio::sync::broadcast;

/// The pod a request names, with what the runtime needs to find its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`: a pod deleted and created again under the same name is another pod.
    pub uid: String,
    /// `spec.nodeName`.
    pub node_name: String,
}

/// Why the runtime cannot serve a request. The text reaches the user (kubectl prints it), so it
/// says what is wrong in their terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The pod has no sandbox (yet, or any more).
    #[error("pod {namespace}/{name} is not running on this node")]
    NotRunning {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The container is not one of the pod's.
    #[error("container {container} is not valid for pod {name}")]
    NoSuchContainer {
        /// Pod name.
        name: String,
        /// The container asked for.
        container: String,
    },
    /// Anything else, already worded for the user.
    #[error("{0}")]
    Other(String),
}

/// A container's log: what it wrote so far, and, for `follow`, what it writes next.
#[derive(Debug)]
pub struct ContainerLog {
    /// Every byte logged so far, in order.
    pub written: Vec<u8>,
    /// Later writes, one message per write; closed when the container stops.
    pub next: broadcast::Receiver<bytes::Bytes>,
}

/// The runtime of the node a pod runs on.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// A command that runs `argv` inside `container` of `pod` (its network namespace, its
    /// resolv.conf), ready to spawn with the stdio the caller sets up.
    fn exec(&self, pod: &PodRef, container: &str, argv: &[String]) -> Result<Command, RuntimeError>;

    /// The container's log.
    fn logs(&self, pod: &PodRef, container: &str) -> Result<ContainerLog, RuntimeError>;
}
