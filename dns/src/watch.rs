//! The watches that keep the index: Services, EndpointSlices, Namespaces (and Pods with `pods
//! verified`), each through `kuberun::watch_events`, so that they re-list after errors and stop
//! on the shared shutdown token. A re-list replaces its kind as a whole: objects it no longer
//! lists are deleted from the index when it ends.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kuberun::Shutdown;
use serde::de::DeserializeOwned;

use crate::config::{DnsConfig, PodMode};
use crate::index::{DnsIndex, Key};
use crate::objects::{PodInfo, ServiceInfo, SliceInfo};
use crate::server::SharedIndex;

/// How one kind goes into the index.
trait Indexed: Resource + Clone + DeserializeOwned + Debug + Send + 'static {
    /// Whether a change of this kind bumps the SOA serial.
    const BUMPS_SERIAL: bool;
    /// Adds or replaces it; whether the index changed. Objects DNS cannot use are deleted.
    fn apply(&self, index: &mut DnsIndex) -> bool;
    /// Keys of every object of the kind in the index.
    fn keys(index: &DnsIndex) -> BTreeSet<Key>;
    /// Removes `key`.
    fn delete(index: &mut DnsIndex, key: &Key) -> bool;
}

fn key_of<K: Resource>(object: &K) -> Key {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Indexed for Service {
    const BUMPS_SERIAL: bool = true;
    fn apply(&self, index: &mut DnsIndex) -> bool {
        match ServiceInfo::from_service(self) {
            Some(info) => index.apply_service(info),
            None => false,
        }
    }
    fn keys(index: &DnsIndex) -> BTreeSet<Key> {
        index.service_keys()
    }
    fn delete(index: &mut DnsIndex, key: &Key) -> bool {
        index.delete_service(&key.0, &key.1)
    }
}

impl Indexed for EndpointSlice {
    const BUMPS_SERIAL: bool = true;
    fn apply(&self, index: &mut DnsIndex) -> bool {
        match SliceInfo::from_slice(self) {
            Some(info) => index.apply_slice(info),
            None => false,
        }
    }
    fn keys(index: &DnsIndex) -> BTreeSet<Key> {
        index.slice_keys()
    }
    fn delete(index: &mut DnsIndex, key: &Key) -> bool {
        index.delete_slice(&key.0, &key.1)
    }
}

impl Indexed for Namespace {
    // CoreDNS's serial never follows Namespaces.
    const BUMPS_SERIAL: bool = false;
    fn apply(&self, index: &mut DnsIndex) -> bool {
        match &self.metadata.name {
            Some(name) => index.apply_namespace(name),
            None => false,
        }
    }
    fn keys(index: &DnsIndex) -> BTreeSet<Key> {
        index
            .namespace_names()
            .into_iter()
            .map(|n| (String::new(), n))
            .collect()
    }
    fn delete(index: &mut DnsIndex, key: &Key) -> bool {
        index.delete_namespace(&key.1)
    }
}

impl Indexed for Pod {
    const BUMPS_SERIAL: bool = true;
    fn apply(&self, index: &mut DnsIndex) -> bool {
        match PodInfo::from_pod(self) {
            Some(info) => index.apply_pod(info),
            // Ended pods answer no more.
            None => {
                let (namespace, name) = key_of(self);
                index.delete_pod(&namespace, &name)
            }
        }
    }
    fn keys(index: &DnsIndex) -> BTreeSet<Key> {
        index.pod_keys()
    }
    fn delete(index: &mut DnsIndex, key: &Key) -> bool {
        index.delete_pod(&key.0, &key.1)
    }
}

/// Unix seconds, truncated to 32 bits as CoreDNS's serial is.
fn now_serial() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Counts the kinds that have listed once; the index is synced when all have.
struct SyncCounter {
    index: SharedIndex,
    pending: AtomicUsize,
}

impl SyncCounter {
    fn one_done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .set_synced(true);
            tracing::info!("cluster DNS caches synced");
        }
    }
}

/// Keeps `index` for the kind `K` until `shutdown`.
async fn keep<K>(
    api: Api<K>,
    config: watcher::Config,
    index: SharedIndex,
    sync: Arc<SyncCounter>,
    shutdown: Shutdown,
) where
    K: Indexed,
    K::DynamicType: Default,
{
    let mut listed: Option<BTreeSet<Key>> = None;
    let mut synced_once = false;
    kuberun::watch_events(api, config, shutdown, move |event| {
        let mut index = index.write().unwrap_or_else(|e| e.into_inner());
        let changed = match event {
            Event::Apply(object) => object.apply(&mut index),
            Event::Delete(object) => K::delete(&mut index, &key_of(&object)),
            Event::Init => {
                listed = Some(BTreeSet::new());
                false
            }
            Event::InitApply(object) => {
                if let Some(listed) = listed.as_mut() {
                    listed.insert(key_of(&object));
                }
                object.apply(&mut index)
            }
            Event::InitDone => {
                let seen = listed.take().unwrap_or_default();
                let mut changed = false;
                for gone in K::keys(&index).difference(&seen) {
                    changed |= K::delete(&mut index, gone);
                }
                if !synced_once {
                    synced_once = true;
                    drop(index);
                    sync.one_done();
                    return;
                }
                changed
            }
        };
        if changed && K::BUMPS_SERIAL {
            index.set_serial(now_serial());
        }
    })
    .await;
}

/// Watches what `config` needs into `index` until `shutdown`; the index reports synced once
/// every kind has listed.
pub async fn keep_index(
    client: kube::Client,
    config: &DnsConfig,
    index: SharedIndex,
    shutdown: Shutdown,
) {
    let verified = config.pods == PodMode::Verified;
    let sync = Arc::new(SyncCounter {
        index: index.clone(),
        pending: AtomicUsize::new(if verified { 4 } else { 3 }),
    });
    let all = watcher::Config::default();
    let services = keep::<Service>(
        Api::all(client.clone()),
        all.clone(),
        index.clone(),
        sync.clone(),
        shutdown.clone(),
    );
    let slices = keep::<EndpointSlice>(
        Api::all(client.clone()),
        all.clone(),
        index.clone(),
        sync.clone(),
        shutdown.clone(),
    );
    let namespaces = keep::<Namespace>(
        Api::all(client.clone()),
        all.clone(),
        index.clone(),
        sync.clone(),
        shutdown.clone(),
    );
    if verified {
        // Ended pods are selected out server-side, as CoreDNS's pod list-watch does.
        let running = watcher::Config::default()
            .fields("status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown");
        let pods = keep::<Pod>(Api::all(client), running, index, sync, shutdown);
        tokio::join!(services, slices, namespaces, pods);
    } else {
        tokio::join!(services, slices, namespaces);
    }
}
