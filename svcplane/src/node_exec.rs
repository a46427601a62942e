//! `svcplane node-exec NODE -- CMD...`: runs a command inside a node of the playground's data
//! plane (its network namespace), the way to reach ClusterIPs, NodePorts and LoadBalancer IPs
//! from the host: the cluster's addresses exist only inside the namespaces `up --data-plane`
//! makes, never on the machine's own interfaces. The node's namespace is read from its Node
//! object, where the data plane records it.

use std::path::PathBuf;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::Node;
use kube::Api;

use crate::flags::UsageError;
use crate::up::data_plane::NODE_NAMESPACE_ANNOTATION;

/// Flags of `svcplane node-exec`.
#[derive(Debug, clap::Args)]
pub struct NodeExecArgs {
    /// Path to the playground's kubeconfig; without it KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The node, e.g. node-1.
    node: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// The network namespace the data plane recorded on `node`, or why there is none.
fn namespace_of(node: &Node, name: &str) -> Result<String, UsageError> {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NODE_NAMESPACE_ANNOTATION))
        .filter(|ns| !ns.is_empty())
        .cloned()
        .ok_or_else(|| {
            UsageError(format!(
                "node {name} has no network namespace: is the playground running with --data-plane?"
            ))
        })
}

/// Runs the command in the node's namespace, with the command's exit code as its own.
pub async fn run(args: NodeExecArgs) -> anyhow::Result<ExitCode> {
    let client = crate::client::client(
        args.kubeconfig.as_ref(),
        concat!("svcplane-node-exec/", env!("CARGO_PKG_VERSION")),
    )
    .await?;
    let nodes: Api<Node> = Api::all(client);
    let node = match nodes.get_opt(&args.node).await? {
        Some(node) => node,
        None => {
            return Err(UsageError(format!("node {} not found", args.node)).into());
        }
    };
    let netns = namespace_of(&node, &args.node)?;
    let status = dataplane::netns_exec_command(&netns, &args.command)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run ip netns exec {netns}: {e}"))?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Killed by a signal, as a shell reports it.
        None => ExitCode::from(128u8.saturating_add(
            std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0) as u8,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_the_annotation_says_the_data_plane_is_off() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-1", "annotations": {NODE_NAMESPACE_ANNOTATION: "svp-1-0-n-node-1"}}
        }))
        .unwrap();
        assert_eq!(namespace_of(&node, "node-1").unwrap(), "svp-1-0-n-node-1");
        let bare: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "node-1"}})).unwrap();
        assert_eq!(
            namespace_of(&bare, "node-1").unwrap_err().0,
            "node node-1 has no network namespace: is the playground running with --data-plane?"
        );
    }
}
