//! The playground's data plane: pods as Linux network namespaces.
//!
//! Every Node gets a network namespace plugged into a fabric bridge (its InternalIP on `eth0`,
//! routes to the other nodes' pod CIDRs); every running Pod gets a network namespace routed from
//! its node's by a veth (its pod IP as a /32, a default route via 169.254.1.1 answered by proxy
//! ARP, as Calico does), a resolv.conf as kubelet writes it, and a stand-in server on each
//! declared containerPort that says which pod answered and which client it saw. Readiness probes
//! run for real, from the node, and drive the pod's Ready condition through the node simulator.
//! `kubectl exec` and `kubectl logs` reach pods through [`DataPlaneRuntime`], testenv's
//! container runtime. docs/data-plane.md has the picture.
//!
//! Pure cores: [`names`], [`pods`], [`plan`], the replies and logs of [`standin`], the probe
//! thresholds of [`probe`]. The shell: [`netns`] (namespaces), [`topology`] (netlink),
//! [`sandbox`], and [`DataPlane`] (the watches).

#![forbid(unsafe_code)]

mod host;
pub mod names;
pub mod netns;
pub mod plan;
pub mod pods;
pub mod probe;
mod runtime;
pub mod sandbox;
pub mod standin;
pub mod topology;
mod watch;

pub use host::check_host;
pub use netns::{
    TcpListenerFactory, bind_tcp, bind_udp, connect_tcp, in_netns, in_netns_async,
    tcp_listener_factory,
};
pub use runtime::{DataPlaneRuntime, netns_exec_command};
pub use sandbox::{DataPlaneConfig, Sandboxes, remove_leftovers};
pub use watch::{DataPlane, Desired};

/// Why the data plane cannot do something, worded for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataPlaneError {
    /// A namespace, link, address, route or file could not be made or removed.
    #[error("data plane: {0}")]
    Io(String),
    /// No namespace for that node.
    #[error("node {0} has no network namespace in the data plane")]
    NoSuchNode(String),
}
