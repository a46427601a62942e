//! A cache of objects indexed by their controller (`metadata.ownerReferences` with
//! `controller: true`): the pods of a ReplicaSet, the ReplicaSets of a Deployment. Each change
//! names the controllers it concerns, old and new, so the shell can queue them as upstream's
//! `resolveControllerRef` does (by name in the object's namespace; the owner's UID is checked
//! when the owner syncs).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::{Delta, ObjectKey};
use crate::workload::controller_of;

/// Objects by key, and the keys each controller UID controls.
#[derive(Debug)]
pub struct OwnedCache<K> {
    objects: HashMap<ObjectKey, Arc<K>>,
    by_controller: HashMap<String, BTreeSet<ObjectKey>>,
}

impl<K> Default for OwnedCache<K> {
    fn default() -> Self {
        OwnedCache {
            objects: HashMap::new(),
            by_controller: HashMap::new(),
        }
    }
}

/// One object a delta changed: its key, the object before and after (`None` when absent).
#[derive(Debug)]
pub struct OwnedChange<K> {
    /// The object's key.
    pub key: ObjectKey,
    /// What the cache held before.
    pub old: Option<Arc<K>>,
    /// What the cache holds now.
    pub new: Option<Arc<K>>,
}

impl<K> OwnedChange<K> {
    /// The controller references of the old and new object (each once), with the namespace.
    pub fn controllers(&self) -> Vec<(String, OwnerReference)>
    where
        K: kube::Resource,
    {
        let mut out: Vec<(String, OwnerReference)> = Vec::new();
        for object in [&self.old, &self.new].into_iter().flatten() {
            if let Some(r) = controller_of(object.meta())
                && !out.iter().any(|(_, o)| o.uid == r.uid)
            {
                out.push((self.key.namespace.clone(), r.clone()));
            }
        }
        out
    }
}

impl<K: kube::Resource> OwnedCache<K> {
    fn controller_uid(object: &K) -> Option<String> {
        controller_of(object.meta()).map(|r| r.uid.clone())
    }

    fn unindex(&mut self, key: &ObjectKey, object: &K) {
        if let Some(uid) = Self::controller_uid(object)
            && let Some(keys) = self.by_controller.get_mut(&uid)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_controller.remove(&uid);
            }
        }
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }

    /// Applies one reflector delta; returns what changed.
    pub fn apply(&mut self, delta: Delta<K>) -> Vec<OwnedChange<K>> {
        match delta {
            Delta::Upsert(object) => {
                let key = ObjectKey::of(&object);
                let old = self.remove(&key);
                let object = Arc::new(object);
                if let Some(uid) = Self::controller_uid(&object) {
                    self.by_controller
                        .entry(uid)
                        .or_default()
                        .insert(key.clone());
                }
                self.objects.insert(key.clone(), object.clone());
                vec![OwnedChange {
                    key,
                    old,
                    new: Some(object),
                }]
            }
            Delta::Delete(object) => {
                let key = ObjectKey::of(&object);
                let old = self.remove(&key).or_else(|| Some(Arc::new(object)));
                vec![OwnedChange {
                    key,
                    old,
                    new: None,
                }]
            }
            Delta::Relisted(seen) => {
                let gone: Vec<ObjectKey> = self
                    .objects
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                gone.into_iter()
                    .map(|key| OwnedChange {
                        old: self.remove(&key),
                        key,
                        new: None,
                    })
                    .collect()
            }
        }
    }

    /// An object by key.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.objects.get(key).cloned()
    }

    /// Every object of `namespace` (adoption looks at orphans there).
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.objects
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// The objects whose controller has `uid`, sorted by key.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<K>> {
        self.by_controller
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| self.objects.get(k).cloned())
            .collect()
    }
}

/// Writes `owner_references` to the object of `meta` (an adoption or a release) with a merge
/// patch whose resourceVersion is a precondition, as upstream's patch carries the object's uid:
/// a changed object is answered 409 and claimed again on its next event.
pub async fn patch_owner_references<K>(
    api: &kube::Api<K>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    owner_references: Vec<OwnerReference>,
) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": owner_references,
        "resourceVersion": meta.resource_version,
    }});
    let params = kube::api::PatchParams {
        field_manager: Some(super::FIELD_MANAGER.into()),
        ..kube::api::PatchParams::default()
    };
    api.patch(
        meta.name.as_deref().unwrap_or(""),
        &params,
        &kube::api::Patch::Merge(&patch),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, owner: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                owner_references: owner.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: format!("rs-{uid}"),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn objects_are_indexed_by_controller_and_changes_name_old_and_new_owners() {
        let mut cache = OwnedCache::default();
        cache.apply(Delta::Upsert(pod("a", Some("u1"))));
        cache.apply(Delta::Upsert(pod("b", Some("u1"))));
        cache.apply(Delta::Upsert(pod("orphan", None)));
        assert_eq!(names(&cache.controlled_by("u1")), vec!["a", "b"]);
        let moved = cache.apply(Delta::Upsert(pod("b", Some("u2"))));
        let owners: Vec<String> = moved[0]
            .controllers()
            .into_iter()
            .map(|(_, r)| r.name)
            .collect();
        assert_eq!(owners, vec!["rs-u1", "rs-u2"]);
        assert_eq!(names(&cache.controlled_by("u1")), vec!["a"]);
        assert_eq!(names(&cache.controlled_by("u2")), vec!["b"]);
        let gone = cache.apply(Delta::Relisted([ObjectKey::new("default", "b")].into()));
        assert_eq!(gone.len(), 2);
        assert!(cache.controlled_by("u1").is_empty());
        cache.apply(Delta::Delete(pod("b", Some("u2"))));
        assert!(cache.controlled_by("u2").is_empty());
    }
}
