//! Which pod and container a `pods/exec` or `pods/log` request is for, checked as kube-apiserver
//! checks it before it calls the kubelet (`ExecLocation`, `LogLocation` and `validateContainer` in
//! k/k `pkg/registry/core/pod/strategy.go`).

use std::sync::Arc;

use serde_json::Value;

use crate::runtime::{ContainerRuntime, PodRef, RuntimeError};
use crate::server::ApiServer;
use crate::status::ApiError;
use crate::store::CollectionKey;

/// The container a request names, or the pod's only one. Init and ephemeral containers count, as
/// upstream's `podutil.VisitContainers` visits them.
pub fn choose_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names_in = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    match requested.filter(|c| !c.is_empty()) {
        Some(container) => {
            let all = [
                names_in("initContainers"),
                names_in("containers"),
                names_in("ephemeralContainers"),
            ];
            if all.iter().flatten().any(|c| c == container) {
                Ok(container.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {container} is not valid for pod {name}"
                )))
            }
        }
        None => {
            let containers = names_in("containers");
            match containers.as_slice() {
                [only] => Ok(only.clone()),
                [] => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}"
                ))),
                _ => {
                    // Go prints the []string with %s: `[a b c]`, init containers first.
                    let all: Vec<String> = [
                        names_in("initContainers"),
                        containers,
                        names_in("ephemeralContainers"),
                    ]
                    .concat();
                    Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        all.join(" ")
                    )))
                }
            }
        }
    }
}

/// The pod's `PodRef`, or `None` while it has no `spec.nodeName`.
pub fn pod_ref(pod: &Value) -> Option<PodRef> {
    let node_name = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())?;
    Some(PodRef {
        namespace: pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        name: pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        node_name: node_name.to_string(),
    })
}

/// The answer when no runtime is registered: the pod is scheduled, but nothing in this server runs
/// its containers.
pub fn no_runtime(pod: &PodRef) -> ApiError {
    ApiError::custom(
        503,
        "ServiceUnavailable",
        format!(
            "pod {}/{} is on node {:?}, which has no container runtime in this server: exec and logs \
             need pods that really run (`svcplane up --data-plane` runs them)",
            pod.namespace, pod.name, pod.node_name
        ),
    )
}

/// A runtime's refusal as the API answers it: the kubelet's 400 for a pod or container it does
/// not run, a 500 for anything else.
pub fn runtime_error(e: &RuntimeError) -> ApiError {
    match e {
        RuntimeError::NotRunning { .. } | RuntimeError::NoSuchContainer { .. } => {
            ApiError::bad_request(e.to_string())
        }
        RuntimeError::Other(message) => ApiError::internal(message.clone()),
    }
}

/// The stored pod `namespace/name`, or 404.
pub fn get_pod(server: &ApiServer, namespace: &str, name: &str) -> Result<Value, ApiError> {
    let stored = server
        .store()
        .read()
        .get(&CollectionKey::new("", "pods"), namespace, name);
    match stored {
        Some(obj) => Ok(obj.value()),
        None => {
            let pods = server.resources().get("", "v1", "pods");
            Err(match pods {
                Some(rt) => ApiError::not_found(&rt, name),
                None => ApiError::path_not_found(),
            })
        }
    }
}

/// A pod scheduled to a node, the chosen container and the runtime that serves it.
pub struct Target {
    /// The pod.
    pub pod: PodRef,
    /// The container.
    pub container: String,
    /// The runtime.
    pub runtime: Arc<dyn ContainerRuntime>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}, "spec": spec})
    }

    #[test]
    fn the_container_is_named_or_the_only_one() {
        let one = pod(json!({"containers": [{"name": "app"}]}));
        assert_eq!(choose_container(&one, None).unwrap(), "app");
        assert_eq!(choose_container(&one, Some("")).unwrap(), "app");
        assert_eq!(
            choose_container(&one, Some("nope")).unwrap_err().message,
            "container nope is not valid for pod web"
        );

        let several = pod(json!({
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}],
            "ephemeralContainers": [{"name": "debug"}],
        }));
        let e = choose_container(&several, None).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "a container name must be specified for pod web, choose one of: [init a b debug]"
            )
        );
        assert_eq!(choose_container(&several, Some("debug")).unwrap(), "debug");
        assert_eq!(choose_container(&several, Some("init")).unwrap(), "init");

        let none = pod(json!({"containers": []}));
        assert_eq!(
            choose_container(&none, None).unwrap_err().message,
            "a container name must be specified for pod web"
        );
    }

    #[test]
    fn only_a_scheduled_pod_has_a_ref() {
        assert_eq!(pod_ref(&pod(json!({"containers": []}))), None);
        assert_eq!(pod_ref(&pod(json!({"nodeName": ""}))), None);
        assert_eq!(
            pod_ref(&pod(json!({"nodeName": "node-1"}))),
            Some(PodRef {
                namespace: "ns".into(),
                name: "web".into(),
                uid: "u1".into(),
                node_name: "node-1".into(),
            })
        );
    }

    #[test]
    fn runtime_refusals_keep_their_words() {
        let not_running = runtime_error(&RuntimeError::NotRunning {
            namespace: "ns".into(),
            name: "web".into(),
        });
        assert_eq!(
            (not_running.code, not_running.message.as_str()),
            (400, "pod ns/web is not running on this node")
        );
        let other = runtime_error(&RuntimeError::Other("netns gone".into()));
        assert_eq!(
            (other.code, other.message.as_str()),
            (500, "Internal error occurred: netns gone")
        );
        let pod = pod_ref(&pod(json!({"nodeName": "node-1"}))).unwrap();
        let e = no_runtime(&pod);
        assert_eq!(e.code, 503);
        assert!(
            e.message.contains("svcplane up --data-plane"),
            "{}",
            e.message
        );
    }
}
