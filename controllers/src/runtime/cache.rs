//! The controllers' caches, indexed for their two hot questions: which Services select this
//! pod (by selector label), and which pods / slices belong to this Service (by label and by
//! the service-name label). Pods are cached as `PodInfo`, not whole Pods. Kinds that need no
//! index (Endpoints, the mirroring controller's Services) live in an [`ObjectCache`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::endpointslice::pod::{PodInfo, PodInterner};
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
                let gone: Vec<ObjectKey> = unseen(self.keys(), &seen).collect();
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

/// Keys whose objects a relist no longer returned.
fn unseen<'a>(
    keys: Vec<ObjectKey>,
    seen: &'a HashSet<ObjectKey>,
) -> impl Iterator<Item = ObjectKey> + 'a {
    keys.into_iter().filter(move |k| !seen.contains(k))
}

/// Objects of one kind by key, without indexes.
#[derive(Debug)]
pub struct ObjectCache<K> {
    objects: HashMap<ObjectKey, Arc<K>>,
}

impl<K> Default for ObjectCache<K> {
    fn default() -> Self {
        ObjectCache {
            objects: HashMap::new(),
        }
    }
}

/// What one delta did to an [`ObjectCache`].
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The object was added or changed.
    Upserted(ObjectKey),
    /// The object was deleted.
    Deleted(ObjectKey),
    /// A relist found these objects gone.
    Gone(Vec<ObjectKey>),
}

impl<K: kube::Resource> ObjectCache<K> {
    /// Applies one reflector delta.
    pub fn apply(&mut self, delta: Delta<K>) -> Applied {
        match delta {
            Delta::Upsert(object) => {
                let key = ObjectKey::of(&object);
                self.objects.insert(key.clone(), Arc::new(object));
                Applied::Upserted(key)
            }
            Delta::Delete(object) => {
                let key = ObjectKey::of(&object);
                self.objects.remove(&key);
                Applied::Deleted(key)
            }
            Delta::Relisted(seen) => {
                let gone: Vec<ObjectKey> = unseen(self.keys(), &seen).collect();
                for key in &gone {
                    self.objects.remove(key);
                }
                Applied::Gone(gone)
            }
        }
    }

    /// An object by key.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.objects.get(key).cloned()
    }

    /// Every cached object.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<K>)> {
        self.objects.iter()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.objects.keys().cloned().collect()
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

/// A cached pod in a set keyed by its name, so the indexes hold one pointer per pod and
/// never a copy of its name.
#[derive(Clone, Debug)]
struct ByName(Arc<CachedPod>);

impl ByName {
    fn name(&self) -> &str {
        &self.0.info.name
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ByName {}

/// Hashes as the name alone, which `Borrow<str>` requires.
impl std::hash::Hash for ByName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl std::borrow::Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        self.name()
    }
}

/// The pods of one namespace: by name, and by label key and value.
#[derive(Debug, Default)]
struct NamespacePods {
    pods: HashSet<ByName>,
    by_label: HashMap<String, HashMap<String, HashSet<ByName>>>,
}

impl NamespacePods {
    fn index(&mut self, pod: &Arc<CachedPod>) {
        for (k, v) in pod.info.labels.iter() {
            let values = match self.by_label.get_mut(k.as_str()) {
                Some(values) => values,
                None => self.by_label.entry(k.clone()).or_default(),
            };
            let pods = match values.get_mut(v.as_str()) {
                Some(pods) => pods,
                None => values.entry(v.clone()).or_default(),
            };
            pods.insert(ByName(pod.clone()));
        }
        self.pods.insert(ByName(pod.clone()));
    }

    fn unindex(&mut self, name: &str) -> Option<Arc<CachedPod>> {
        let old = self.pods.take(name)?.0;
        for (k, v) in old.info.labels.iter() {
            let Some(values) = self.by_label.get_mut(k.as_str()) else {
                continue;
            };
            if let Some(pods) = values.get_mut(v.as_str()) {
                pods.remove(name);
                if pods.is_empty() {
                    values.remove(v.as_str());
                }
            }
            if values.is_empty() {
                self.by_label.remove(k.as_str());
            }
        }
        Some(old)
    }

    fn posting(&self, key: &str, value: &str) -> Option<&HashSet<ByName>> {
        self.by_label.get(key)?.get(value)
    }
}

/// Pods by key, indexed by namespace and by label. Pod names are stored once (in the
/// `PodInfo`), and labels, namespaces, node names and port lists once per distinct value.
#[derive(Debug, Default)]
pub struct PodCache {
    namespaces: HashMap<Arc<str>, NamespacePods>,
    interner: PodInterner,
    len: usize,
}

impl PodCache {
    /// How many pods are cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no pod is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A pod by key.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<CachedPod>> {
        let pods = &self.namespaces.get(key.namespace.as_str())?.pods;
        pods.get(key.name.as_str()).map(|p| p.0.clone())
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.namespaces
            .iter()
            .flat_map(|(namespace, pods)| {
                pods.pods
                    .iter()
                    .map(|p| ObjectKey::new(&**namespace, p.name()))
            })
            .collect()
    }

    /// How many distinct shared values (label sets, names, port lists) the pods use.
    pub fn interned_values(&self) -> usize {
        self.interner.len()
    }

    /// Inserts or replaces a pod, sharing its labels, namespace, node name and ports with the
    /// cached pods that have equal ones and hashing it once; returns the stored entry and the
    /// previous one.
    pub fn insert(
        &mut self,
        mut info: PodInfo,
        resource_version: String,
    ) -> (Arc<CachedPod>, Option<Arc<CachedPod>>) {
        self.interner.intern(&mut info);
        let old = self.remove(&ObjectKey::new(&*info.namespace, info.name.as_str()));
        let pod = Arc::new(CachedPod {
            info: IndexedPod::new(info),
            resource_version,
        });
        self.namespaces
            .entry(pod.info.namespace.clone())
            .or_default()
            .index(&pod);
        self.len += 1;
        (pod, old)
    }

    /// Removes a pod; returns it.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Arc<CachedPod>> {
        let pods = self.namespaces.get_mut(key.namespace.as_str())?;
        let old = pods.unindex(&key.name)?;
        if pods.pods.is_empty() {
            self.namespaces.remove(key.namespace.as_str());
        }
        self.len -= 1;
        Some(old)
    }

    /// Removes the pods a relist no longer returned; returns them.
    pub fn remove_unseen(&mut self, seen: &HashSet<ObjectKey>) -> Vec<Arc<CachedPod>> {
        unseen(self.keys(), seen)
            .filter_map(|key| self.remove(&key))
            .collect()
    }

    /// Pods of `namespace` matching `selector` (`{}` matches all), walking the smallest
    /// label posting list.
    pub fn select(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Vec<Arc<CachedPod>> {
        let Some(pods) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        let mut candidates = &pods.pods;
        for (k, v) in selector {
            let Some(posting) = pods.posting(k, v) else {
                return Vec::new();
            };
            if posting.len() < candidates.len() {
                candidates = posting;
            }
        }
        let mut out: Vec<Arc<CachedPod>> = candidates
            .iter()
            .filter(|p| p.0.info.matches_selector(selector))
            .map(|p| p.0.clone())
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

/// What a slice delta did to a [`SliceCache`], for the controller to decide what to sync.
#[derive(Debug)]
pub enum SliceChange {
    /// A slice was added (`old` is `None`) or changed.
    Upserted {
        new: Arc<IndexedSlice>,
        old: Option<Arc<IndexedSlice>>,
    },
    /// Slices deleted: the one a delete event carried, or those a relist no longer returned.
    Removed(Vec<Arc<IndexedSlice>>),
}

/// EndpointSlices by key, indexed by their Service.
#[derive(Default)]
pub struct SliceCache {
    slices: HashMap<ObjectKey, Arc<IndexedSlice>>,
    by_service: HashMap<ObjectKey, BTreeSet<String>>,
}

impl SliceCache {
    /// Applies one reflector delta.
    pub fn apply(&mut self, delta: Delta<EndpointSlice>) -> SliceChange {
        match delta {
            Delta::Upsert(slice) => {
                let new = Arc::new(IndexedSlice::new(slice));
                let old = self.insert(new.clone());
                SliceChange::Upserted { new, old }
            }
            Delta::Delete(slice) => {
                self.remove(&ObjectKey::of(&slice));
                SliceChange::Removed(vec![Arc::new(IndexedSlice::new(slice))])
            }
            Delta::Relisted(seen) => SliceChange::Removed(self.remove_unseen(&seen)),
        }
    }

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

    /// Removes the slices a relist no longer returned; returns them.
    pub fn remove_unseen(&mut self, seen: &HashSet<ObjectKey>) -> Vec<Arc<IndexedSlice>> {
        unseen(self.keys(), seen)
            .filter_map(|key| self.remove(&key))
            .collect()
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

    fn pod(name: &str, pairs: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            namespace: "ns".into(),
            name: name.into(),
            labels: labels(pairs).into(),
            ..PodInfo::default()
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
    fn cached_pods_share_labels_and_leave_the_index_when_replaced() {
        let mut cache = PodCache::default();
        cache.insert(pod("a", &[("app", "web")]), "1".into());
        cache.insert(pod("b", &[("app", "web")]), "1".into());
        let (a, b) = (
            cache.get(&ObjectKey::new("ns", "a")).expect("a"),
            cache.get(&ObjectKey::new("ns", "b")).expect("b"),
        );
        assert!(Arc::ptr_eq(&a.info.labels, &b.info.labels));
        assert!(Arc::ptr_eq(&a.info.namespace, &b.info.namespace));
        assert_eq!(cache.len(), 2);
        let replaced = cache
            .insert(pod("a", &[("app", "db")]), "1".into())
            .1
            .expect("old a");
        assert_eq!(*replaced.info.labels, labels(&[("app", "web")]));
        assert_eq!(cache.len(), 2);
        let mut keys = cache.keys();
        keys.sort();
        assert_eq!(keys, [ObjectKey::new("ns", "a"), ObjectKey::new("ns", "b")]);
        let web: Vec<String> = cache
            .select("ns", &labels(&[("app", "web")]))
            .iter()
            .map(|p| p.info.name.clone())
            .collect();
        assert_eq!(web, ["b"]);
        assert!(cache.remove(&ObjectKey::new("ns", "a")).is_some());
        assert!(cache.remove(&ObjectKey::new("ns", "a")).is_none());
        assert!(cache.remove(&ObjectKey::new("ns", "b")).is_some());
        assert!(cache.is_empty());
        assert!(cache.select("ns", &BTreeMap::new()).is_empty());
        assert!(cache.get(&ObjectKey::new("ns", "b")).is_none());
    }

    #[test]
    fn pods_selected_by_a_service() {
        let mut cache = PodCache::default();
        cache.insert(pod("a", &[("app", "web"), ("tier", "front")]), "1".into());
        cache.insert(pod("b", &[("app", "web")]), "1".into());
        cache.insert(pod("c", &[("app", "db")]), "1".into());
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
        cache.insert(pod("a", &[("app", "db")]), "1".into());
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
