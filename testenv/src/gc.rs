//! The garbage collector: deletes dependents whose owners are all gone, and carries out
//! foreground and orphan deletion, as kube-controller-manager's garbage collector does.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::Verb;
use crate::server::ApiServer;
use crate::store::{ChangeEvent, CollectionKey, EventType};

const USER_AGENT: &str = "testenv-garbage-collector";

/// Runs until the server is dropped; sweeps for dangling owners every `sweep_every`.
pub async fn run(server: Arc<ApiServer>, sweep_every: Duration) {
    let mut changes = server.store.read().subscribe();
    let mut sweep = tokio::time::interval(sweep_every);
    loop {
        tokio::select! {
            received = changes.recv() => match received {
                Ok(e) => handle(&server, &e).await,
                Err(RecvError::Lagged(_)) => sweep_all(&server).await,
                Err(RecvError::Closed) => return,
            },
            _ = sweep.tick() => sweep_all(&server).await,
        }
    }
}

async fn handle(server: &Arc<ApiServer>, e: &ChangeEvent) {
    match e.event_type {
        EventType::Deleted => collect_dependents_of(server, &e.object.uid).await,
        EventType::Modified | EventType::Added if e.object.deleting && e.object.has_finalizers => {
            let value = e.object.value();
            let finalizers: Vec<&str> = value
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if finalizers.contains(&"orphan") {
                orphan_dependents(server, &e.object.uid).await;
                remove_finalizer(
                    server,
                    &e.collection,
                    &e.object.namespace,
                    &e.object.name,
                    "orphan",
                )
                .await;
            } else if finalizers.contains(&"foregroundDeletion") {
                let deps = server.store.read().dependents_of(&e.object.uid);
                if deps.is_empty() {
                    remove_finalizer(
                        server,
                        &e.collection,
                        &e.object.namespace,
                        &e.object.name,
                        "foregroundDeletion",
                    )
                    .await;
                } else {
                    for (c, dep) in deps {
                        if !dep.deleting {
                            delete(server, &c, &dep.namespace, &dep.name, Some("Foreground")).await;
                        }
                    }
                }
            }
        }
        _ => {}
    }
    // A dependent that disappears may unblock its foreground-deleting owner.
    if e.event_type == EventType::Deleted {
        for owner in &e.object.owner_uids {
            let found = server.store.read().get_by_uid(owner);
            if let Some((c, o)) = found
                && o.deleting
                && server.store.read().dependents_of(owner).is_empty()
                && o.value()
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"))
            {
                remove_finalizer(server, &c, &o.namespace, &o.name, "foregroundDeletion").await;
            }
        }
    }
}

/// Deletes the dependents of a vanished owner whose other owners are gone too.
async fn collect_dependents_of(server: &Arc<ApiServer>, owner_uid: &str) {
    let deps = server.store.read().dependents_of(owner_uid);
    for (c, dep) in deps {
        let all_gone = {
            let state = server.store.read();
            dep.owner_uids.iter().all(|u| !state.uid_exists(u))
        };
        if all_gone && !dep.deleting {
            delete(server, &c, &dep.namespace, &dep.name, Some("Background")).await;
        }
    }
}

async fn sweep_all(server: &Arc<ApiServer>) {
    let dangling: Vec<String> = {
        let state = server.store.read();
        state
            .owner_uids_with_dependents()
            .into_iter()
            .filter(|u| !state.uid_exists(u))
            .collect()
    };
    for uid in dangling {
        collect_dependents_of(server, &uid).await;
    }
}

async fn orphan_dependents(server: &Arc<ApiServer>, owner_uid: &str) {
    let deps = server.store.read().dependents_of(owner_uid);
    for (c, dep) in deps {
        let Some(rt) = server.resources().by_collection(&c.group, &c.plural) else {
            continue;
        };
        let req = ApiServer::internal_request(
            rt,
            Verb::Update,
            &dep.namespace,
            &dep.name,
            None,
            USER_AGENT,
        );
        let uid = owner_uid.to_string();
        let _ = server
            .internal_update(&req, |obj| {
                if let Some(refs) = obj
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r["uid"].as_str() != Some(&uid));
                    if refs.is_empty()
                        && let Some(m) = obj["metadata"].as_object_mut()
                    {
                        m.remove("ownerReferences");
                    }
                }
            })
            .await;
    }
}

async fn remove_finalizer(
    server: &Arc<ApiServer>,
    c: &CollectionKey,
    namespace: &str,
    name: &str,
    finalizer: &str,
) {
    let Some(rt) = server.resources().by_collection(&c.group, &c.plural) else {
        return;
    };
    let req = ApiServer::internal_request(rt, Verb::Update, namespace, name, None, USER_AGENT);
    let _ = server
        .internal_update(&req, |obj| {
            if let Some(f) = obj
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                f.retain(|x| x.as_str() != Some(finalizer));
            }
        })
        .await;
}

async fn delete(
    server: &Arc<ApiServer>,
    c: &CollectionKey,
    namespace: &str,
    name: &str,
    propagation: Option<&str>,
) {
    let Some(rt) = server.resources().by_collection(&c.group, &c.plural) else {
        return;
    };
    let req = ApiServer::internal_request(rt, Verb::Delete, namespace, name, None, USER_AGENT);
    let _ = server
        .delete_object(&req, name, propagation, None, &json!({}))
        .await;
}
