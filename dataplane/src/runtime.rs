//! testenv's [`ContainerRuntime`] served by the data plane: `exec` runs the command inside the
//! pod's network namespace (through `ip netns exec`, so the pod's resolv.conf is mounted over
//! /etc/resolv.conf), `logs` is the stand-in's access log.

use std::process::Command;
use std::sync::Arc;

use testenv::runtime::{ContainerLog, ContainerRuntime, LogEntry, PodRef, RuntimeError};

use crate::sandbox::Sandboxes;
use crate::standin::ContainerLogBook;

/// The data plane as the API server's container runtime. Cheap to clone.
#[derive(Clone)]
pub struct DataPlaneRuntime {
    sandboxes: Arc<Sandboxes>,
}

impl DataPlaneRuntime {
    /// The runtime over `sandboxes`.
    pub fn new(sandboxes: Arc<Sandboxes>) -> Self {
        Self { sandboxes }
    }

    /// The pod's namespace and the container's log, or why there are none.
    fn find(
        &self,
        pod: &PodRef,
        container: &str,
    ) -> Result<(String, Arc<ContainerLogBook>), RuntimeError> {
        let not_running = || RuntimeError::NotRunning {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
        };
        let (uid, ns, log) = self
            .sandboxes
            .container(&pod.namespace, &pod.name, container)
            .ok_or_else(not_running)?;
        // Another pod of the same name (deleted and created again) is not this one.
        if !pod.uid.is_empty() && pod.uid != uid {
            return Err(not_running());
        }
        let log = log.ok_or_else(|| RuntimeError::NoSuchContainer {
            name: pod.name.clone(),
            container: container.to_string(),
        })?;
        Ok((ns, log))
    }
}

/// `ip netns exec NS argv...`.
pub fn netns_exec_command(ns: &str, argv: &[String]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).args(argv);
    command
}

impl ContainerRuntime for DataPlaneRuntime {
    fn exec(
        &self,
        pod: &PodRef,
        container: &str,
        argv: &[String],
    ) -> Result<Command, RuntimeError> {
        let (ns, _) = self.find(pod, container)?;
        if argv.is_empty() {
            return Err(RuntimeError::Other(
                "no command given to run in the container".into(),
            ));
        }
        Ok(netns_exec_command(&ns, argv))
    }

    fn logs(&self, pod: &PodRef, container: &str) -> Result<ContainerLog, RuntimeError> {
        let (_, log) = self.find(pod, container)?;
        let (lines, next) = log.follow();
        let written = lines
            .into_iter()
            .map(|line| LogEntry {
                time: line.time,
                bytes: bytes::Bytes::from(format!("{}\n", line.text)),
            })
            .collect();
        Ok(ContainerLog { written, next })
    }
}
