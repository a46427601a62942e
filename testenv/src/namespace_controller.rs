//! The namespace controller, as kube-controller-manager's `namespace` controller: a namespace
//! being deleted (Terminating) is emptied — every namespaced object in it deleted with background
//! propagation — and once nothing is left its `kubernetes` finalizer is removed through
//! `namespaces/{name}/finalize`, which removes the namespace. Pods go at their kubelet's pace (the
//! node simulator's), objects with finalizers at their finalizers' owners'.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::api::Verb;
use crate::server::ApiServer;
use crate::store::{CollectionKey, EventType};

const USER_AGENT: &str = "testenv-namespace-controller";

/// The finalizer of `spec.finalizers` this controller owns.
const FINALIZER: &str = "kubernetes";

/// What to do next for one Terminating namespace, given what is left in it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NamespaceStep {
    /// Delete these objects (collection, name), which are not being deleted yet.
    Delete(Vec<(CollectionKey, String)>),
    /// Objects remain, all already being deleted: wait for them.
    Wait,
    /// Empty: remove the `kubernetes` finalizer.
    Finalize,
    /// Nothing for this controller (not deleting, or already finalized).
    Nothing,
}

/// Decides the next step for `namespace` from the objects left in it (collection, name,
/// whether being deleted).
pub(crate) fn next_step(
    namespace: &Value,
    contents: &[(CollectionKey, String, bool)],
) -> NamespaceStep {
    let deleting = namespace
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let ours = namespace
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if !deleting || !ours {
        return NamespaceStep::Nothing;
    }
    let to_delete: Vec<(CollectionKey, String)> = contents
        .iter()
        .filter(|(_, _, deleting)| !deleting)
        .map(|(c, name, _)| (c.clone(), name.clone()))
        .collect();
    if !to_delete.is_empty() {
        NamespaceStep::Delete(to_delete)
    } else if contents.is_empty() {
        NamespaceStep::Finalize
    } else {
        NamespaceStep::Wait
    }
}

/// Runs until the server is dropped; looks at every Terminating namespace every `resync` too.
pub async fn run(server: Arc<ApiServer>, resync: Duration) {
    let mut changes = server.store.read().subscribe();
    let mut tick = tokio::time::interval(resync);
    loop {
        let mut dirty = BTreeSet::new();
        let mut all = false;
        tokio::select! {
            received = changes.recv() => match received {
                Ok(e) => {
                    note(&server, &e, &mut dirty);
                    // Take what else has arrived, so that one namespace's many deletions are
                    // handled in one pass.
                    loop {
                        match changes.try_recv() {
                            Ok(e) => note(&server, &e, &mut dirty),
                            Err(TryRecvError::Lagged(_)) => all = true,
                            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => all = true,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => all = true,
        }
        if all {
            dirty.extend(terminating_namespaces(&server));
        }
        for namespace in dirty {
            sync(&server, &namespace).await;
        }
    }
}

/// Remembers the namespace a change may move on: a namespace being deleted, or the namespace of
/// a removed object.
fn note(server: &ApiServer, e: &crate::store::ChangeEvent, dirty: &mut BTreeSet<String>) {
    let is_namespace = e.collection == CollectionKey::new("", "namespaces");
    if is_namespace && e.object.deleting && e.event_type != EventType::Deleted {
        dirty.insert(e.object.name.clone());
    } else if !e.object.namespace.is_empty() && e.event_type == EventType::Deleted {
        let namespaces = CollectionKey::new("", "namespaces");
        if server
            .store
            .read()
            .get(&namespaces, "", &e.object.namespace)
            .is_some_and(|n| n.deleting)
        {
            dirty.insert(e.object.namespace.clone());
        }
    }
}

fn terminating_namespaces(server: &ApiServer) -> Vec<String> {
    let state = server.store.read();
    state
        .list(&CollectionKey::new("", "namespaces"), None, None)
        .filter(|n| n.deleting)
        .map(|n| n.name.clone())
        .collect()
}

/// One pass of the controller over one namespace.
async fn sync(server: &Arc<ApiServer>, namespace: &str) {
    let namespaces = CollectionKey::new("", "namespaces");
    let Some(ns) = server.store.read().get(&namespaces, "", namespace) else {
        return;
    };
    let contents = contents_of(server, namespace);
    match next_step(&ns.value(), &contents) {
        NamespaceStep::Delete(objects) => {
            for (c, name) in objects {
                let Some(rt) = server.resources().by_collection(&c.group, &c.plural) else {
                    continue;
                };
                let req = ApiServer::internal_request(
                    rt,
                    Verb::Delete,
                    namespace,
                    &name,
                    None,
                    USER_AGENT,
                );
                // Gone meanwhile or refused by a webhook: the next pass sees what is left.
                let _ = server
                    .delete_object(&req, &name, Some("Background"), None, &json!({}))
                    .await;
            }
        }
        NamespaceStep::Finalize => {
            let Some(rt) = server.resources().get("", "v1", "namespaces") else {
                return;
            };
            let req = ApiServer::internal_request(
                rt,
                Verb::Update,
                "",
                namespace,
                Some("finalize"),
                USER_AGENT,
            );
            let _ = server
                .internal_update(&req, |obj| {
                    if let Some(f) = obj
                        .pointer_mut("/spec/finalizers")
                        .and_then(Value::as_array_mut)
                    {
                        f.retain(|x| x != FINALIZER);
                    }
                })
                .await;
        }
        NamespaceStep::Wait | NamespaceStep::Nothing => {}
    }
}

/// Every object stored in `namespace`, with whether it is being deleted.
fn contents_of(server: &ApiServer, namespace: &str) -> Vec<(CollectionKey, String, bool)> {
    let state = server.store.read();
    let mut out = Vec::new();
    for c in state.collections() {
        for o in state.list(&c, Some(namespace), None) {
            out.push((c.clone(), o.name.clone(), o.deleting));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminating() -> Value {
        json!({"metadata": {"name": "a", "deletionTimestamp": "2026-12-02T10:00:00Z"},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
    }

    fn cm(name: &str, deleting: bool) -> (CollectionKey, String, bool) {
        (CollectionKey::new("", "configmaps"), name.into(), deleting)
    }

    #[test]
    fn a_terminating_namespace_is_emptied_then_finalized() {
        let ns = terminating();
        assert_eq!(
            next_step(&ns, &[cm("a", false), cm("b", true)]),
            NamespaceStep::Delete(vec![(CollectionKey::new("", "configmaps"), "a".into())])
        );
        assert_eq!(next_step(&ns, &[cm("b", true)]), NamespaceStep::Wait);
        assert_eq!(next_step(&ns, &[]), NamespaceStep::Finalize);
    }

    #[test]
    fn an_active_or_finalized_namespace_is_left_alone() {
        let active = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}});
        assert_eq!(
            next_step(&active, &[cm("a", false)]),
            NamespaceStep::Nothing
        );
        let mut finalized = terminating();
        finalized["spec"]["finalizers"] = json!([]);
        assert_eq!(next_step(&finalized, &[]), NamespaceStep::Nothing);
    }
}
