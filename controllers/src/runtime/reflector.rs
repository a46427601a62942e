//! Reflectors that feed controller-owned caches: a `watcher` stream turned into upserts,
//! deletes and end-of-relist markers, so each controller keeps only what it needs of an
//! object (a `PodInfo` instead of a Pod) in its own indexes.
//!
//! Every object loses its `managedFields` on the way in, as kube-controller-manager's
//! informers do (`TransformStripManagedFields`): no controller reads them, they are often the
//! largest part of an object, and an update that omits them keeps the stored ones. Objects
//! that caches keep whole also give back the spare capacity of their lists ([`Compact`]):
//! JSON decoding grows a list to 4 entries for 1 and to 128 for 100, and a slice's 100
//! endpoints are 35 KB of structs.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kuberun::Shutdown;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::ObjectKey;
use super::queue::WorkQueue;

/// One change for a cache.
#[derive(Debug)]
pub enum Delta<K> {
    /// An object was added or changed (or listed again).
    Upsert(K),
    /// An object was deleted.
    Delete(K),
    /// A (re)list finished; every cached key not in this set was deleted meanwhile.
    Relisted(HashSet<ObjectKey>),
}

/// Whether each reflector of a controller has finished its first list.
#[derive(Clone, Debug, Default)]
pub struct SyncedFlags {
    senders: Vec<Arc<watch::Sender<bool>>>,
}

impl SyncedFlags {
    /// `count` flags, all unsynced.
    pub fn new(count: usize) -> Self {
        SyncedFlags {
            senders: (0..count)
                .map(|_| Arc::new(watch::channel(false).0))
                .collect(),
        }
    }

    /// A flag for one more reflector.
    fn push(&mut self) -> Arc<watch::Sender<bool>> {
        let flag = Arc::new(watch::channel(false).0);
        self.senders.push(flag.clone());
        flag
    }

    /// Waits until every reflector has listed once.
    pub async fn wait(&self) {
        for sender in &self.senders {
            let mut receiver = sender.subscribe();
            let _ = receiver.wait_for(|synced| *synced).await;
        }
    }
}

/// A controller's reflectors, started one kind at a time over its `Arc`-shared state, each
/// with a synced flag, all ending on one shutdown token.
pub struct Reflectors<S> {
    client: kube::Client,
    state: Arc<S>,
    queue: WorkQueue<ObjectKey>,
    shutdown: Shutdown,
    running: RunningReflectors,
}

/// Reflectors once started: their tasks, and whether each has listed.
#[derive(Debug, Default)]
pub struct RunningReflectors {
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) synced: SyncedFlags,
}

impl<S: Send + Sync + 'static> Reflectors<S> {
    /// No reflector yet. `queue` is the controller's: it is held while a batch of events that
    /// arrived together is applied (see [`reflect`]).
    pub fn new(
        client: &kube::Client,
        state: &Arc<S>,
        queue: &WorkQueue<ObjectKey>,
        shutdown: &Shutdown,
    ) -> Self {
        Reflectors {
            client: client.clone(),
            state: state.clone(),
            queue: queue.clone(),
            shutdown: shutdown.clone(),
            running: RunningReflectors::default(),
        }
    }

    /// Starts [`reflect`] over every `K` in the cluster that `config` selects, handing each
    /// change to `handler` (one of the controller's `on_*` methods) on the state.
    pub fn watch<K>(mut self, config: watcher::Config, handler: fn(&S, Delta<K>)) -> Self
    where
        K: Resource + Compact + Clone + DeserializeOwned + Debug + Send + 'static,
        K::DynamicType: Default,
    {
        let synced = self.running.synced.push();
        let state = self.state.clone();
        self.running.tasks.push(tokio::spawn(reflect(
            Api::all(self.client.clone()),
            config,
            Some(synced),
            self.queue.clone(),
            move |delta| handler(&state, delta),
            self.shutdown.clone(),
        )));
        self
    }

    /// The started reflectors.
    pub fn started(self) -> RunningReflectors {
        self.running
    }
}

/// Watches `api` with `config` through [`kuberun::watch_event_batches`] and hands every change
/// to `sink` as a [`Delta`], until `shutdown`. `synced` is set after the first complete list.
///
/// `queue` is held while each batch of events that arrived together is applied: a grace-0 pod
/// delete sends the pod's deletionTimestamp and its deletion back to back, and a sync in between
/// would write the terminating endpoint just before removing it. client-go's informers avoid
/// that by structure (the store takes events ahead of the handlers' notifications), and
/// kube-controller-manager writes such a change once.
pub async fn reflect<K, F>(
    api: Api<K>,
    config: watcher::Config,
    synced: Option<Arc<watch::Sender<bool>>>,
    queue: WorkQueue<ObjectKey>,
    mut sink: F,
    shutdown: Shutdown,
) where
    K: Resource + Compact + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
    F: FnMut(Delta<K>) + Send,
{
    let mut seen: HashSet<ObjectKey> = HashSet::new();
    kuberun::watch_event_batches(api, config, shutdown, move |batch| {
        let _hold = (batch.len() > 1).then(|| queue.hold());
        for event in batch {
            match event {
                Event::Apply(object) => sink(Delta::Upsert(trimmed_for_cache(object))),
                Event::Delete(object) => sink(Delta::Delete(trimmed_for_cache(object))),
                Event::Init => seen.clear(),
                Event::InitApply(object) => {
                    seen.insert(ObjectKey::of(&object));
                    sink(Delta::Upsert(trimmed_for_cache(object)));
                }
                Event::InitDone => {
                    sink(Delta::Relisted(std::mem::take(&mut seen)));
                    if let Some(flag) = &synced {
                        flag.send_replace(true);
                    }
                }
            }
        }
    })
    .await;
}

/// The object with `metadata.managedFields` dropped and its lists compacted.
pub fn trimmed_for_cache<K: Resource + Compact>(mut object: K) -> K {
    object.meta_mut().managed_fields = None;
    object.compact();
    object
}

/// Gives back the spare capacity of an object's lists, for objects held in a cache.
pub trait Compact {
    /// Shrinks every list the object keeps to its length.
    fn compact(&mut self) {}
}

fn shrink<T>(list: &mut Option<Vec<T>>) {
    if let Some(list) = list {
        list.shrink_to_fit();
    }
}

fn compact_metadata(metadata: &mut ObjectMeta) {
    shrink(&mut metadata.owner_references);
    shrink(&mut metadata.finalizers);
}

impl Compact for EndpointSlice {
    fn compact(&mut self) {
        compact_metadata(&mut self.metadata);
        self.endpoints.shrink_to_fit();
        for endpoint in &mut self.endpoints {
            endpoint.addresses.shrink_to_fit();
        }
        shrink(&mut self.ports);
    }
}

impl Compact for Service {
    fn compact(&mut self) {
        compact_metadata(&mut self.metadata);
        if let Some(spec) = &mut self.spec {
            shrink(&mut spec.ports);
            shrink(&mut spec.cluster_ips);
            shrink(&mut spec.ip_families);
            shrink(&mut spec.external_ips);
        }
    }
}

impl Compact for Endpoints {
    fn compact(&mut self) {
        compact_metadata(&mut self.metadata);
        shrink(&mut self.subsets);
    }
}

/// Reduced to a `PodInfo` by the controllers; nothing of the Pod itself is kept.
impl Compact for Pod {}

/// Reduced to a `NodeInfo` by the controllers.
impl Compact for Node {}

/// Kept whole by the Deployment controller.
impl Compact for Deployment {}

/// Kept whole by the Deployment and ReplicaSet controllers.
impl Compact for ReplicaSet {}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    #[test]
    fn cached_slices_keep_no_spare_list_capacity() {
        use k8s_openapi::api::discovery::v1::Endpoint;
        let json = serde_json::json!({
            "metadata": {"name": "web-abc", "ownerReferences": [
                {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u"}]},
            "addressType": "IPv4",
            "endpoints": (0..5).map(|i| serde_json::json!({"addresses": [format!("10.0.0.{i}")]}))
                .collect::<Vec<_>>(),
            "ports": [{"port": 80}]
        });
        // From text, as a watch decodes it: lists grow as they are read.
        let decoded: EndpointSlice = serde_json::from_str(&json.to_string()).expect("slice");
        assert!(decoded.endpoints.capacity() > 5);
        let compacted = trimmed_for_cache(decoded.clone());
        assert_eq!(compacted, decoded);
        assert_eq!(compacted.endpoints.capacity(), 5);
        assert!(
            compacted
                .endpoints
                .iter()
                .all(|e: &Endpoint| e.addresses.capacity() == 1)
        );
        let owners = compacted
            .metadata
            .owner_references
            .as_ref()
            .expect("owners");
        assert_eq!(owners.capacity(), 1);
    }

    #[test]
    fn managed_fields_are_dropped_and_the_rest_kept() {
        let service = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..ManagedFieldsEntry::default()
                }]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        };
        let trimmed = trimmed_for_cache(service.clone());
        assert_eq!(trimmed.metadata.managed_fields, None);
        assert_eq!(trimmed.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            Service {
                metadata: ObjectMeta {
                    managed_fields: None,
                    ..service.metadata
                },
                ..service
            },
            trimmed
        );
    }
}
