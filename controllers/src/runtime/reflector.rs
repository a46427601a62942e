//! Reflectors that feed controller-owned caches: a `watcher` stream turned into upserts,
//! deletes and end-of-relist markers, so each controller keeps only what it needs of an
//! object (a `PodInfo` instead of a Pod) in its own indexes.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::ObjectKey;

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
#[derive(Clone, Debug)]
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

    /// The flag of reflector `index`.
    pub fn flag(&self, index: usize) -> Option<Arc<watch::Sender<bool>>> {
        self.senders.get(index).cloned()
    }

    /// Waits until every reflector has listed once.
    pub async fn wait(&self) {
        for sender in &self.senders {
            let mut receiver = sender.subscribe();
            let _ = receiver.wait_for(|synced| *synced).await;
        }
    }
}

/// Watches `api` with `config` and hands every change to `sink`, forever (the watcher
/// re-lists with backoff on errors). `synced` is set after the first complete list.
pub async fn reflect<K, F>(
    api: Api<K>,
    config: watcher::Config,
    synced: Option<Arc<watch::Sender<bool>>>,
    mut sink: F,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
    F: FnMut(Delta<K>) + Send,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut seen: HashSet<ObjectKey> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(object)) => sink(Delta::Upsert(object)),
            Ok(Event::Delete(object)) => sink(Delta::Delete(object)),
            Ok(Event::Init) => seen.clear(),
            Ok(Event::InitApply(object)) => {
                seen.insert(ObjectKey::of(&object));
                sink(Delta::Upsert(object));
            }
            Ok(Event::InitDone) => {
                sink(Delta::Relisted(std::mem::take(&mut seen)));
                if let Some(flag) = &synced {
                    flag.send_replace(true);
                }
            }
            Err(error) => tracing::warn!(%kind, %error, "watch failed; retrying"),
        }
    }
}
