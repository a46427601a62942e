//! Which Services of a namespace hold a given ClusterIP, answered from a reflector cache.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use kuberun::{ShutdownTrigger, shutdown_channel, store_reflector};

use gocompat::ip::parse_ip_sloppy;

/// Looks up Services by ClusterIP.
pub trait ClusterIpLookup: Send + Sync {
    /// Names (sorted) of the Services in `namespace` whose `clusterIPs` include `ip`.
    fn services_with_cluster_ip(&self, namespace: &str, ip: IpAddr) -> Vec<String>;

    /// Whether the cache has listed.
    fn is_ready(&self) -> bool {
        true
    }

    /// The uid of Service `namespace/name` as the API server has it now (not a cache), or
    /// `None` when it does not exist or the API cannot say.
    fn current_uid<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> futures::future::BoxFuture<'a, Option<String>> {
        let _ = (namespace, name);
        Box::pin(async { None })
    }
}

/// A fixed list of Services (tests, offline use).
impl ClusterIpLookup for Vec<Service> {
    fn services_with_cluster_ip(&self, namespace: &str, ip: IpAddr) -> Vec<String> {
        matching(self.iter(), namespace, ip)
    }

    fn current_uid<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> futures::future::BoxFuture<'a, Option<String>> {
        let uid = self
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata.name.as_deref() == Some(name)
            })
            .and_then(|s| s.metadata.uid.clone());
        Box::pin(async move { uid })
    }
}

fn matching<'a>(
    services: impl Iterator<Item = &'a Service>,
    namespace: &str,
    ip: IpAddr,
) -> Vec<String> {
    let mut names: Vec<String> = services
        .filter(|s| s.metadata.namespace.as_deref().unwrap_or("") == namespace)
        .filter(|s| {
            let spec = s.spec.as_ref();
            let listed = spec.and_then(|s| s.cluster_ips.as_ref());
            let single = spec.and_then(|s| s.cluster_ip.as_ref());
            listed
                .into_iter()
                .flatten()
                .chain(single)
                .any(|v| parse_ip_sloppy(v) == Some(ip))
        })
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A reflector over all Services of the cluster; its watch stops when the index is dropped.
pub struct ServiceClusterIpIndex {
    client: Client,
    store: Store<Service>,
    ready: Arc<AtomicBool>,
    _stop: ShutdownTrigger,
}

impl ServiceClusterIpIndex {
    /// Starts watching Services; answers are empty until the first list completes.
    pub fn start(client: Client) -> Self {
        let (stop, shutdown) = shutdown_channel();
        let (store, keep) = store_reflector(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            shutdown,
            |_| {},
        );
        tokio::spawn(keep);
        let ready = Arc::new(AtomicBool::new(false));
        let waiting = store.clone();
        let flag = ready.clone();
        tokio::spawn(async move {
            if waiting.wait_until_ready().await.is_ok() {
                flag.store(true, Ordering::Release);
            }
        });
        ServiceClusterIpIndex {
            client,
            store,
            ready,
            _stop: stop,
        }
    }
}

impl ClusterIpLookup for ServiceClusterIpIndex {
    fn services_with_cluster_ip(&self, namespace: &str, ip: IpAddr) -> Vec<String> {
        let services = self.store.state();
        matching(services.iter().map(|s| s.as_ref()), namespace, ip)
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn current_uid<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> futures::future::BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
            api.get_opt(name).await.ok().flatten()?.metadata.uid
        })
    }
}
