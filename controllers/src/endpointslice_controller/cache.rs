//! The controller's caches, indexed for its two hot questions: which Services select this
//! pod (by selector label), and which pods / slices belong to this Service (by label and by
//! the service-name label). Pods are cached as `PodInfo`, not whole Pods.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::endpointslice::{IndexedPod, IndexedSlice, LABEL_SERVICE_NAME};
use crate::runtime::{Delta, ObjectKey};

type LabelKey = (String, String, String);

/// The selector of a Service that selects pods (nil selectors select nothing).
pub fn pod_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service.spec.as_ref().and_then(|s| s.selector.as_ref())
}

/// Services by key, indexed by one label of each selector.
#[derive(Default)]
pub struct ServiceCache {
    services: HashMap<ObjectKey, Arc<Service>>,
    by_selector_label: HashMap<LabelKey, BTreeSet<String>>,
    select_all: HashMap<String, BTreeSet<String>>,
}

impl ServiceCache {
    /// Applies one reflector delta; returns the keys of the Services it added, changed or
    /// removed, which the controller then syncs.
    pub fn apply(&mut self, delta: Delta<Service>) -> Vec<ObjectKey> {
        match delta {
            Delta::Upsert(service) => {
                let key = ObjectKey::of(&service);
                self.insert(Arc::new(service));
                vec![key]
            }
            Delta::Delete(service) => {
                let key = ObjectKey::of(&service);
                self.remove(&key);
                vec![key]
            }
            Delta::Relisted(seen) => {
                let gone: Vec<ObjectKey> = self
                    .keys()
                    .into_iter()
                    .filter(|k| !seen.contains(k))
                    .collect();
                for key in &gone {
                    self.remove(key);
                }
                gone
            }
        }
    }

    /// A Service by key.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Service>> {
        self.services.get(key).cloned()
    }

    /// Every cached Service.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<Service>)> {
        self.services.iter()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.services.keys().cloned().collect()
    }

    /// Inserts or replaces a Service; returns the previous one.
    pub fn insert(&mut self, service: Arc<Service>) -> Option<Arc<Service>> {
        let key = ObjectKey::of(service.as_ref());
        let old = self.remove(&key);
        if let Some(selector) = pod_selector(&service) {
            match selector.iter().next() {
                None => {
                    self.select_all
                        .entry(key.namespace.clone())
                        .or_default()
                        .insert(key.name.clone());
                }
                Some((k, v)) => {
                    self.by_selector_label
                        .entry((key.namespace.clone(), k.clone(), v.clone()))
                        .or_default()
                        .insert(key.name.clone());
                }
            }
        }
        self.services.insert(key, service);
        old
    }

    /// Removes a Service; returns it.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Arc<Service>> {
        let old = self.services.remove(key)?;
        if let Some(selector) = pod_selector(&old) {
            let index = match selector.iter().next() {
                None => self.select_all.get_mut(&key.namespace),
                Some((k, v)) => {
                    self.by_selector_label
                        .get_mut(&(key.namespace.clone(), k.clone(), v.clone()))
                }
            };
            if let Some(names) = index {
                names.remove(&key.name);
            }
        }
        Some(old)
    }

    /// Keys of the Services in the pod's namespace whose selector matches `labels`.
    pub fn selecting(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> BTreeSet<ObjectKey> {
        let mut out = BTreeSet::new();
        if let Some(names) = self.select_all.get(namespace) {
            out.extend(names.iter().map(|n| ObjectKey::new(namespace, n.clone())));
        }
        for (k, v) in labels {
            let index = (namespace.to_owned(), k.clone(), v.clone());
            let Some(names) = self.by_selector_label.get(&index) else {
                continue;
            };
            for name in names {
                let key = ObjectKey::new(namespace, name.clone());
                let matches = self
                    .services
                    .get(&key)
                    .and_then(|s| pod_selector(s))
                    .is_some_and(|sel| sel.iter().all(|(sk, sv)| labels.get(sk) == Some(sv)));
                if matches {
                    out.insert(key);
                }
            }
        }
        out
    }
}

/// What the controller keeps of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedPod {
    /// The planner's view, hashed once.
    pub info: IndexedPod,
    /// `metadata.resourceVersion`, to ignore resyncs.
    pub resource_version: String,
}

/// Pods by key, indexed by namespace and by label.
#[derive(Default)]
pub struct PodCache {
    pods: HashMap<ObjectKey, Arc<CachedPod>>,
    by_label: HashMap<LabelKey, HashSet<String>>,
    by_namespace: HashMap<String, HashSet<String>>,
}

impl PodCache {
    /// How many pods are cached.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is cached.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// A pod by key.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<CachedPod>> {
        self.pods.get(key).cloned()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.pods.keys().cloned().collect()
    }

    /// Inserts or replaces a pod; returns the previous entry.
    pub fn insert(&mut self, pod: CachedPod) -> Option<Arc<CachedPod>> {
        let key = ObjectKey::new(pod.info.namespace.clone(), pod.info.name.clone());
        let old = self.remove(&key);
        for (k, v) in &pod.info.labels {
            self.by_label
                .entry((key.namespace.clone(), k.clone(), v.clone()))
                .or_default()
                .insert(key.name.clone());
        }
        self.by_namespace
            .entry(key.namespace.clone())
            .or_default()
            .insert(key.name.clone());
        self.pods.insert(key, Arc::new(pod));
        old
    }

    /// Removes a pod; returns it.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Arc<CachedPod>> {
        let old = self.pods.remove(key)?;
        for (k, v) in &old.info.labels {
            let index = (key.namespace.clone(), k.clone(), v.clone());
            if let Some(names) = self.by_label.get_mut(&index) {
                names.remove(&key.name);
                if names.is_empty() {
                    self.by_label.remove(&index);
                }
            }
        }
        if let Some(names) = self.by_namespace.get_mut(&key.namespace) {
            names.remove(&key.name);
        }
        Some(old)
    }

    /// Pods of `namespace` matching `selector` (`{}` matches all), walking the smallest
    /// label posting list.
    pub fn select(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Vec<Arc<CachedPod>> {
        let candidates = if selector.is_empty() {
            self.by_namespace.get(namespace)
        } else {
            let mut smallest: Option<&HashSet<String>> = None;
            for (k, v) in selector {
                let index = (namespace.to_owned(), k.clone(), v.clone());
                let Some(names) = self.by_label.get(&index) else {
                    return Vec::new();
                };
                if smallest.is_none_or(|s| names.len() < s.len()) {
                    smallest = Some(names);
                }
            }
            smallest
        };
        let Some(candidates) = candidates else {
            return Vec::new();
        };
        let mut out: Vec<Arc<CachedPod>> = candidates
            .iter()
            .filter_map(|name| self.pods.get(&ObjectKey::new(namespace, name.clone())))
            .filter(|p| p.info.matches_selector(selector))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        out
    }
}

/// The Service a slice belongs to, from its service-name label.
pub fn slice_service(slice: &EndpointSlice) -> Option<ObjectKey> {
    let name = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    Some(ObjectKey::new(
        slice.metadata.namespace.clone().unwrap_or_default(),
        name.clone(),
    ))
}

/// EndpointSlices by key, indexed by their Service.
#[derive(Default)]
pub struct SliceCache {
    slices: HashMap<ObjectKey, Arc<IndexedSlice>>,
    by_service: HashMap<ObjectKey, BTreeSet<String>>,
}

impl SliceCache {
    /// How many slices are cached.
    pub fn len(&self) -> usize {
        self.slices.len()
    }

    /// Whether no slice is cached.
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.slices.keys().cloned().collect()
    }

    /// Inserts or replaces a slice; returns the previous one.
    pub fn insert(&mut self, slice: Arc<IndexedSlice>) -> Option<Arc<IndexedSlice>> {
        let key = ObjectKey::of(slice.slice());
        let old = self.remove(&key);
        if let Some(service) = slice_service(&slice) {
            self.by_service
                .entry(service)
                .or_default()
                .insert(key.name.clone());
        }
        self.slices.insert(key, slice);
        old
    }

    /// Removes a slice; returns it.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Arc<IndexedSlice>> {
        let old = self.slices.remove(key)?;
        if let Some(service) = slice_service(&old)
            && let Some(names) = self.by_service.get_mut(&service)
        {
            names.remove(&key.name);
            if names.is_empty() {
                self.by_service.remove(&service);
            }
        }
        Some(old)
    }

    /// The slices labelled with `service`'s name in its namespace, in name order.
    pub fn for_service(&self, service: &ObjectKey) -> Vec<Arc<IndexedSlice>> {
        self.by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|name| {
                self.slices
                    .get(&ObjectKey::new(service.namespace.clone(), name.clone()))
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(name: &str, selector: Option<&[(&str, &str)]>) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: selector.map(|s| {
                    s.iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect()
                }),
                ..ServiceSpec::default()
            }),
            status: None,
        })
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn pod(name: &str, pairs: &[(&str, &str)]) -> CachedPod {
        use crate::endpointslice::PodInfo;
        CachedPod {
            info: IndexedPod::new(PodInfo {
                namespace: "ns".into(),
                name: name.into(),
                labels: labels(pairs),
                ..PodInfo::default()
            }),
            resource_version: "1".into(),
        }
    }

    #[test]
    fn services_selecting_a_pod() {
        let mut cache = ServiceCache::default();
        cache.insert(service("web", Some(&[("app", "web"), ("tier", "front")])));
        cache.insert(service("all", Some(&[])));
        cache.insert(service("manual", None));
        cache.insert(service("db", Some(&[("app", "db")])));
        let names = |set: BTreeSet<ObjectKey>| set.into_iter().map(|k| k.name).collect::<Vec<_>>();
        assert_eq!(
            names(cache.selecting("ns", &labels(&[("app", "web"), ("tier", "front")]))),
            ["all", "web"]
        );
        assert_eq!(
            names(cache.selecting("ns", &labels(&[("app", "web")]))),
            ["all"]
        );
        assert!(
            cache
                .selecting("other", &labels(&[("app", "db")]))
                .is_empty()
        );
        cache.remove(&ObjectKey::new("ns", "all"));
        assert_eq!(
            names(cache.selecting("ns", &labels(&[("app", "db")]))),
            ["db"]
        );
    }

    #[test]
    fn pods_selected_by_a_service() {
        let mut cache = PodCache::default();
        cache.insert(pod("a", &[("app", "web"), ("tier", "front")]));
        cache.insert(pod("b", &[("app", "web")]));
        cache.insert(pod("c", &[("app", "db")]));
        let names = |pods: Vec<Arc<CachedPod>>| {
            pods.iter().map(|p| p.info.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            names(cache.select("ns", &labels(&[("app", "web")]))),
            ["a", "b"]
        );
        assert_eq!(
            names(cache.select("ns", &labels(&[("app", "web"), ("tier", "front")]))),
            ["a"]
        );
        assert_eq!(names(cache.select("ns", &BTreeMap::new())), ["a", "b", "c"]);
        cache.insert(pod("a", &[("app", "db")]));
        assert_eq!(
            names(cache.select("ns", &labels(&[("app", "db")]))),
            ["a", "c"]
        );
        assert_eq!(
            names(cache.select("ns", &labels(&[("tier", "front")]))),
            Vec::<String>::new()
        );
    }
}
