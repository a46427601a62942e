//! The object store: every object as serialized JSON, one global resourceVersion, a bounded event
//! history for watches, and a broadcast of committed changes.
//!
//! Objects are kept as bytes, not as parsed JSON trees: a list or a watch event is then a copy of
//! bytes, and 150,000 pods fit in a few hundred MiB instead of gigabytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::durability::{Durability, DurabilityError};
pub use crate::history::WatchCacheSizing;
use crate::history::WatchHistory;

/// Which collection an object belongs to: group and plural (all versions share one collection).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CollectionKey {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
}

impl CollectionKey {
    /// Builds a key.
    pub fn new(group: &str, plural: &str) -> Self {
        Self {
            group: group.to_string(),
            plural: plural.to_string(),
        }
    }
}

/// An object as stored: its identity, the fields selectors need, and its JSON.
#[derive(Debug)]
pub struct StoredObject {
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// metadata.uid.
    pub uid: String,
    /// The resourceVersion this state was written at.
    pub resource_version: u64,
    /// metadata.labels, for label selectors.
    pub labels: BTreeMap<String, String>,
    /// uids of metadata.ownerReferences, for garbage collection.
    pub owner_uids: Vec<String>,
    /// Whether metadata.deletionTimestamp is set.
    pub deleting: bool,
    /// Whether metadata.finalizers is non-empty.
    pub has_finalizers: bool,
    /// The object, serialized with its resourceVersion.
    pub json: Bytes,
}

impl StoredObject {
    /// Builds a stored object from a JSON value that already carries its final metadata.
    pub fn from_value(value: &Value) -> Self {
        let meta = value.get("metadata");
        let s = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let labels = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let owner_uids = meta
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r.get("uid")?.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let resource_version = s("resourceVersion").parse().unwrap_or(0);
        Self {
            namespace: s("namespace"),
            name: s("name"),
            uid: s("uid"),
            resource_version,
            labels,
            owner_uids,
            deleting: meta
                .and_then(|m| m.get("deletionTimestamp"))
                .is_some_and(|v| !v.is_null()),
            has_finalizers: meta
                .and_then(|m| m.get("finalizers"))
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty()),
            json: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        }
    }

    /// Parses the stored JSON back into a value (for writes and for non-trivial field selectors).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// The kind of a change, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted; the object is its final state.
    Deleted,
}

impl EventType {
    /// The watch wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub struct ChangeEvent {
    /// The resourceVersion of the change.
    pub resource_version: u64,
    /// Collection of the object.
    pub collection: CollectionKey,
    /// What happened.
    pub event_type: EventType,
    /// The object after the change (for a deletion, its last state with the deletion's resourceVersion).
    pub object: Arc<StoredObject>,
    /// The object before the change, for selector transitions.
    pub previous: Option<Arc<StoredObject>>,
}

/// A durable record of one change, for the write-ahead log.
#[derive(Debug, Clone)]
pub enum LogRecord {
    /// The object now has this JSON.
    Put {
        collection: CollectionKey,
        json: Bytes,
    },
    /// The object was removed.
    Delete {
        collection: CollectionKey,
        namespace: String,
        name: String,
        resource_version: u64,
    },
}

/// Where committed changes are logged, in commit order, to be made durable.
pub trait ChangeLog: Send + Sync {
    /// Appends one record, the change at `resource_version`, without waiting for it to be synced
    /// (the log's [`Durability`] says when it is); an error fails the write.
    fn append(&mut self, record: &LogRecord, resource_version: u64) -> std::io::Result<()>;
}

type ObjectKey = (String, String);

/// The mutable state behind the store lock.
pub struct StoreState {
    resource_version: u64,
    collections: HashMap<CollectionKey, BTreeMap<ObjectKey, Arc<StoredObject>>>,
    by_uid: HashMap<String, (CollectionKey, ObjectKey)>,
    dependents: HashMap<String, Vec<(CollectionKey, ObjectKey)>>,
    /// Per collection, the recent changes watches resume from.
    histories: HashMap<CollectionKey, WatchHistory>,
    sizing: WatchCacheSizing,
    /// Watches from a resourceVersion below this get 410 Expired, whatever the collection
    /// (after a compaction or a load from disk).
    compacted_below: u64,
    changes: broadcast::Sender<Arc<ChangeEvent>>,
    log: Option<Box<dyn ChangeLog>>,
    durability: Durability,
}

/// Shared handle to the store.
#[derive(Clone)]
pub struct Store {
    state: Arc<RwLock<StoreState>>,
}

/// A failed commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The name is taken.
    #[error("already exists")]
    AlreadyExists,
    /// The object does not exist.
    #[error("not found")]
    NotFound,
    /// The stored resourceVersion is not the expected one.
    #[error("conflict")]
    Conflict,
    /// The write-ahead log could not be written.
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
}

impl Store {
    /// An empty store whose watch history per collection is sized by `sizing`.
    pub fn new(sizing: WatchCacheSizing) -> Self {
        let (changes, _) = broadcast::channel(16_384);
        Self {
            state: Arc::new(RwLock::new(StoreState {
                resource_version: 1,
                collections: HashMap::new(),
                by_uid: HashMap::new(),
                dependents: HashMap::new(),
                histories: HashMap::new(),
                sizing,
                compacted_below: 0,
                changes,
                log: None,
                durability: Durability::immediate(),
            })),
        }
    }

    /// Read access; a poisoned lock is recovered because the state is only changed by whole commits.
    pub fn read(&self) -> RwLockReadGuard<'_, StoreState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access.
    pub fn write(&self) -> RwLockWriteGuard<'_, StoreState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every change the store holds now is durable: call it after releasing the lock,
    /// before acknowledging a write or showing what was read.
    pub async fn wait_durable(&self) -> Result<(), DurabilityError> {
        let (rv, durability) = {
            let s = self.read();
            (s.resource_version, s.durability.clone())
        };
        durability.wait(rv).await
    }
}

impl StoreState {
    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// The next resourceVersion a commit would use.
    pub fn next_resource_version(&self) -> u64 {
        self.resource_version + 1
    }

    /// Installs the write-ahead log and the handle that says how far it is synced; later
    /// commits go through it.
    pub fn set_log(&mut self, log: Box<dyn ChangeLog>, durability: Durability) {
        self.log = Some(log);
        self.durability = durability;
    }

    /// Says which changes are durable (for a store without a log, all of them).
    pub fn durability(&self) -> Durability {
        self.durability.clone()
    }

    /// One object.
    pub fn get(&self, c: &CollectionKey, namespace: &str, name: &str) -> Option<Arc<StoredObject>> {
        self.collections
            .get(c)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a collection, optionally in one namespace, in key order, starting after `after`.
    pub fn list<'a>(
        &'a self,
        c: &CollectionKey,
        namespace: Option<&'a str>,
        after: Option<&'a (String, String)>,
    ) -> Box<dyn Iterator<Item = &'a Arc<StoredObject>> + 'a> {
        let Some(objects) = self.collections.get(c) else {
            return Box::new(std::iter::empty());
        };
        use std::ops::Bound;
        let lower = match (after, namespace) {
            (Some(key), _) => Bound::Excluded(key.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let iter = objects.range((lower, Bound::Unbounded)).map(|(_, o)| o);
        match namespace {
            Some(ns) => Box::new(iter.take_while(move |o| o.namespace == ns)),
            None => Box::new(iter),
        }
    }

    /// Number of objects in a collection.
    pub fn count(&self, c: &CollectionKey) -> usize {
        self.collections.get(c).map_or(0, BTreeMap::len)
    }

    /// Whether an object with this uid exists.
    pub fn uid_exists(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// Looks up an object by uid.
    pub fn get_by_uid(&self, uid: &str) -> Option<(CollectionKey, Arc<StoredObject>)> {
        let (c, key) = self.by_uid.get(uid)?;
        let obj = self.collections.get(c)?.get(key)?.clone();
        Some((c.clone(), obj))
    }

    /// Objects whose ownerReferences name `owner_uid`.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<(CollectionKey, Arc<StoredObject>)> {
        self.dependents
            .get(owner_uid)
            .map(|deps| {
                deps.iter()
                    .filter_map(|(c, key)| {
                        Some((c.clone(), self.collections.get(c)?.get(key)?.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The uids that some object names as its owner.
    pub fn owner_uids_with_dependents(&self) -> Vec<String> {
        self.dependents.keys().cloned().collect()
    }

    /// Every collection key that holds objects.
    pub fn collections(&self) -> Vec<CollectionKey> {
        let mut keys: Vec<_> = self.collections.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Subscribes to changes committed from now on. A change arrives as soon as it is applied,
    /// possibly before it is durable: wait on [`Self::durability`] before showing it to a client.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.changes.subscribe()
    }

    /// Changes to collection `c` after `resource_version`, or — when some were compacted away —
    /// the oldest resourceVersion a watch can resume from (for the 410's message).
    pub fn history_since(
        &self,
        c: &CollectionKey,
        resource_version: u64,
    ) -> Result<Vec<Arc<ChangeEvent>>, u64> {
        if resource_version < self.compacted_below {
            return Err(self.compacted_below);
        }
        match self.histories.get(c) {
            Some(h) => h.since(resource_version),
            None => Ok(Vec::new()),
        }
    }

    /// How many change events the watch history of `c` keeps now.
    pub fn history_len(&self, c: &CollectionKey) -> usize {
        self.histories.get(c).map_or(0, WatchHistory::len)
    }

    /// How many change events the watch history of `c` may keep now (it grows under a burst of
    /// changes and shrinks back, within the sizing's bounds).
    pub fn history_capacity(&self, c: &CollectionKey) -> usize {
        self.histories
            .get(c)
            .map_or(self.sizing.lower_bound, WatchHistory::capacity)
    }

    /// How many objects the store holds, over every collection.
    pub fn object_count(&self) -> usize {
        self.collections.values().map(BTreeMap::len).sum()
    }

    /// Drops the whole event history: watches from any older resourceVersion now get 410.
    pub fn compact(&mut self) {
        self.histories.clear();
        self.compacted_below = self.resource_version + 1;
    }

    fn index_add(&mut self, c: &CollectionKey, obj: &StoredObject) {
        let key = (obj.namespace.clone(), obj.name.clone());
        if !obj.uid.is_empty() {
            self.by_uid
                .insert(obj.uid.clone(), (c.clone(), key.clone()));
        }
        for owner in &obj.owner_uids {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .push((c.clone(), key.clone()));
        }
    }

    fn index_remove(&mut self, c: &CollectionKey, obj: &StoredObject) {
        if self
            .by_uid
            .get(&obj.uid)
            .is_some_and(|(cc, (ns, n))| cc == c && *ns == obj.namespace && *n == obj.name)
        {
            self.by_uid.remove(&obj.uid);
        }
        for owner in &obj.owner_uids {
            if let Some(deps) = self.dependents.get_mut(owner) {
                deps.retain(|(cc, (ns, n))| !(cc == c && *ns == obj.namespace && *n == obj.name));
                if deps.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
    }

    fn record(&mut self, event: ChangeEvent) {
        let event = Arc::new(event);
        let sizing = self.sizing;
        self.histories
            .entry(event.collection.clone())
            .or_insert_with(|| WatchHistory::new(&sizing))
            .push(event.clone(), Instant::now(), &sizing);
        // No receivers is normal (no watches open).
        let _ = self.changes.send(event);
    }

    fn log(&mut self, record: LogRecord, resource_version: u64) -> Result<(), CommitError> {
        if let Some(log) = self.log.as_mut() {
            log.append(&record, resource_version)?;
        }
        Ok(())
    }

    /// Stores `value` under its namespace/name. `value` must already carry the resourceVersion
    /// returned by `next_resource_version` (the caller stamps it so the JSON and the index agree).
    /// `expected` is the resourceVersion the caller read: `None` creates, `Some(0)` overwrites
    /// unconditionally, `Some(rv)` requires the stored one to be `rv`.
    pub fn put(
        &mut self,
        c: &CollectionKey,
        value: &Value,
        expected: Option<u64>,
    ) -> Result<Arc<StoredObject>, CommitError> {
        let obj = StoredObject::from_value(value);
        let key = (obj.namespace.clone(), obj.name.clone());
        let previous = self.collections.get(c).and_then(|m| m.get(&key)).cloned();
        match (expected, &previous) {
            (None, Some(_)) => return Err(CommitError::AlreadyExists),
            (Some(_), None) => return Err(CommitError::NotFound),
            (Some(rv), Some(p)) if rv != 0 && p.resource_version != rv => {
                return Err(CommitError::Conflict);
            }
            _ => {}
        }
        let rv = self.resource_version + 1;
        self.log(
            LogRecord::Put {
                collection: c.clone(),
                json: obj.json.clone(),
            },
            rv,
        )?;
        self.resource_version = rv;
        let obj = Arc::new(StoredObject {
            resource_version: rv,
            ..obj
        });
        if let Some(p) = &previous {
            self.index_remove(c, p);
        }
        self.index_add(c, &obj);
        self.collections
            .entry(c.clone())
            .or_default()
            .insert(key, obj.clone());
        let event_type = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(ChangeEvent {
            resource_version: rv,
            collection: c.clone(),
            event_type,
            object: obj.clone(),
            previous,
        });
        Ok(obj)
    }

    /// Removes an object; `final_state` is its last JSON, already stamped with `next_resource_version`.
    pub fn remove(
        &mut self,
        c: &CollectionKey,
        namespace: &str,
        name: &str,
        final_state: &Value,
        expected: u64,
    ) -> Result<Arc<StoredObject>, CommitError> {
        let key = (namespace.to_string(), name.to_string());
        let Some(previous) = self.collections.get(c).and_then(|m| m.get(&key)).cloned() else {
            return Err(CommitError::NotFound);
        };
        if expected != 0 && previous.resource_version != expected {
            return Err(CommitError::Conflict);
        }
        let rv = self.resource_version + 1;
        self.log(
            LogRecord::Delete {
                collection: c.clone(),
                namespace: namespace.into(),
                name: name.into(),
                resource_version: rv,
            },
            rv,
        )?;
        self.resource_version = rv;
        if let Some(m) = self.collections.get_mut(c) {
            m.remove(&key);
        }
        self.index_remove(c, &previous);
        let obj = Arc::new(StoredObject {
            resource_version: rv,
            ..StoredObject::from_value(final_state)
        });
        self.record(ChangeEvent {
            resource_version: rv,
            collection: c.clone(),
            event_type: EventType::Deleted,
            object: obj.clone(),
            previous: Some(previous),
        });
        Ok(obj)
    }

    /// Loads a record from the write-ahead log at start-up: no event, no log write.
    pub fn replay(&mut self, record: LogRecord) {
        match record {
            LogRecord::Put { collection, json } => {
                let Ok(value) = serde_json::from_slice::<Value>(&json) else {
                    return;
                };
                let obj = Arc::new(StoredObject::from_value(&value));
                self.resource_version = self.resource_version.max(obj.resource_version);
                let key = (obj.namespace.clone(), obj.name.clone());
                if let Some(p) = self
                    .collections
                    .get(&collection)
                    .and_then(|m| m.get(&key))
                    .cloned()
                {
                    self.index_remove(&collection, &p);
                }
                self.index_add(&collection, &obj);
                self.collections
                    .entry(collection)
                    .or_default()
                    .insert(key, obj);
            }
            LogRecord::Delete {
                collection,
                namespace,
                name,
                resource_version,
            } => {
                self.resource_version = self.resource_version.max(resource_version);
                let key = (namespace, name);
                if let Some(p) = self
                    .collections
                    .get_mut(&collection)
                    .and_then(|m| m.remove(&key))
                {
                    self.index_remove(&collection, &p);
                }
            }
        }
        // Nothing before a restart can be replayed to a watch.
        self.compacted_below = self.resource_version + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, rv: u64) -> Value {
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": rv.to_string()}})
    }

    #[test]
    fn put_enforces_create_and_conflict_rules() {
        let store = Store::new(WatchCacheSizing::fixed(100));
        let c = CollectionKey::new("", "configmaps");
        let mut s = store.write();
        let rv = s.next_resource_version();
        let a = s.put(&c, &obj("a", rv), None).unwrap();
        assert_eq!(a.resource_version, rv);
        assert!(matches!(
            s.put(&c, &obj("a", rv + 1), None),
            Err(CommitError::AlreadyExists)
        ));
        assert!(matches!(
            s.put(&c, &obj("a", rv + 1), Some(rv - 1)),
            Err(CommitError::Conflict)
        ));
        let rv2 = s.next_resource_version();
        assert!(s.put(&c, &obj("a", rv2), Some(rv)).is_ok());
        assert_eq!(s.history_since(&c, rv).unwrap().len(), 1);
        s.compact();
        assert!(s.history_since(&c, rv).is_err());
    }

    #[test]
    fn each_collection_keeps_its_own_history() {
        let store = Store::new(WatchCacheSizing::fixed(2));
        let configmaps = CollectionKey::new("", "configmaps");
        let secrets = CollectionKey::new("", "secrets");
        let mut s = store.write();
        let rv = s.next_resource_version();
        s.put(&secrets, &obj("s", rv), None).unwrap();
        let first = s.resource_version();
        for i in 0..5 {
            let rv = s.next_resource_version();
            s.put(&configmaps, &obj(&format!("o{i}"), rv), None)
                .unwrap();
        }
        // Five configmaps overflowed their window of two: only the last two can be replayed.
        assert_eq!(
            s.history_since(&configmaps, first).unwrap_err(),
            s.resource_version() - 2
        );
        assert_eq!(
            s.history_since(&configmaps, s.resource_version() - 2)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(s.history_len(&configmaps), 2);
        // The secret's history is untouched by the configmaps' churn.
        assert_eq!(s.history_since(&secrets, first - 1).unwrap().len(), 1);
        assert_eq!(s.object_count(), 6);
    }

    #[test]
    fn namespace_listing_stays_inside_the_namespace() {
        let store = Store::new(WatchCacheSizing::fixed(100));
        let c = CollectionKey::new("", "configmaps");
        let mut s = store.write();
        for (ns, name) in [("a", "x"), ("b", "x"), ("b", "y"), ("c", "x")] {
            let rv = s.next_resource_version();
            let v = json!({"metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string()}});
            s.put(&c, &v, None).unwrap();
        }
        let names: Vec<_> = s
            .list(&c, Some("b"), None)
            .map(|o| o.name.clone())
            .collect();
        assert_eq!(names, ["x", "y"]);
        assert_eq!(s.list(&c, None, None).count(), 4);
    }
}
