//! The operation log: the API requests served, with verb, path and answer, for tests to assert on.
//!
//! It is a ring that keeps the most recent operations (by default
//! [`DEFAULT_OPERATION_LOG_CAPACITY`]): a long-running playground must not grow by one entry per
//! request forever, yet every test keeps working unchanged, since a test's operations fit in the
//! ring. Marks stay absolute (`len()` counts every operation logged, kept or not), so
//! `since(mark)` is either exact or — when the ring has already dropped some of the operations
//! after the mark — refuses, rather than silently returning a partial answer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many operations a log keeps unless told otherwise: far more than any test makes between
/// a mark and its reading, and about 6 MiB at most.
pub const DEFAULT_OPERATION_LOG_CAPACITY: usize = 32_768;

/// One served request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or `GET`
    /// and the like for non-resource paths.
    pub verb: String,
    /// The request path without the query.
    pub path: String,
    /// API group of the resource ("" for core and non-resource paths).
    pub group: String,
    /// Plural resource name ("" for non-resource paths).
    pub resource: String,
    /// Namespace from the path.
    pub namespace: String,
    /// Name from the path.
    pub name: String,
    /// Subresource such as `status`.
    pub subresource: String,
    /// HTTP status of the answer.
    pub code: u16,
    /// The client's User-Agent.
    pub user_agent: String,
}

impl Operation {
    /// Whether the request changed (or tried to change) state.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// The fields of one operation, borrowed: what the server logs without building an [`Operation`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct OperationFields<'a> {
    pub verb: &'a str,
    pub path: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub subresource: &'a str,
    pub code: u16,
    pub user_agent: &'a str,
}

/// A `since(mark)` that cannot be answered: the ring dropped operations logged after the mark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the operation log no longer holds the operations after mark {mark}: it keeps the last {capacity} and now starts at {oldest_kept} (raise ServerOptions::operation_log_capacity, or set it to None to keep every operation)"
)]
pub struct OperationsDropped {
    /// The mark asked for.
    pub mark: usize,
    /// The mark of the oldest operation still held.
    pub oldest_kept: usize,
    /// How many operations the log keeps.
    pub capacity: usize,
}

/// One kept operation, packed: its text fields share one allocation and the User-Agent (the same
/// few values over and over) is shared, so an entry costs about 200 bytes, not 600.
#[derive(Debug)]
struct Packed {
    /// verb, path, group, resource, namespace, name, subresource, concatenated.
    text: Box<str>,
    /// Where each of the seven fields of `text` ends.
    ends: [u32; 7],
    user_agent: Arc<str>,
    code: u16,
}

impl Packed {
    fn field(&self, i: usize) -> String {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text[start..self.ends[i] as usize].to_string()
    }

    fn unpack(&self) -> Operation {
        Operation {
            verb: self.field(0),
            path: self.field(1),
            group: self.field(2),
            resource: self.field(3),
            namespace: self.field(4),
            name: self.field(5),
            subresource: self.field(6),
            code: self.code,
            user_agent: self.user_agent.to_string(),
        }
    }
}

/// The few User-Agents seen lately, so that entries share them.
const KNOWN_AGENTS: usize = 32;

#[derive(Debug)]
struct Ring {
    entries: VecDeque<Packed>,
    /// The mark of `entries[0]`: how many operations were dropped since the log was created or
    /// cleared.
    first: usize,
    /// `None` keeps everything.
    capacity: Option<usize>,
    agents: Vec<Arc<str>>,
}

impl Ring {
    fn end(&self) -> usize {
        self.first + self.entries.len()
    }

    fn agent(&mut self, user_agent: &str) -> Arc<str> {
        if let Some(a) = self.agents.iter().find(|a| ***a == *user_agent) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(user_agent);
        if self.agents.len() == KNOWN_AGENTS {
            self.agents.remove(0);
        }
        self.agents.push(a.clone());
        a
    }

    fn push(&mut self, f: OperationFields<'_>) {
        if self.capacity == Some(0) {
            self.first += 1;
            return;
        }
        let parts = [
            f.verb,
            f.path,
            f.group,
            f.resource,
            f.namespace,
            f.name,
            f.subresource,
        ];
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 7];
        for (end, part) in ends.iter_mut().zip(parts) {
            text.push_str(part);
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        if text.len() > u32::MAX as usize {
            // A 4 GiB request line cannot reach here (hyper refuses it); keep offsets valid anyway.
            text.truncate(0);
            ends = [0; 7];
        }
        let packed = Packed {
            text: text.into_boxed_str(),
            ends,
            user_agent: self.agent(f.user_agent),
            code: f.code,
        };
        if let Some(capacity) = self.capacity
            && self.entries.len() >= capacity
        {
            self.entries.pop_front();
            self.first += 1;
        }
        self.entries.push_back(packed);
    }

    fn since(&self, mark: usize) -> Result<Vec<Operation>, OperationsDropped> {
        if mark < self.first {
            return Err(OperationsDropped {
                mark,
                oldest_kept: self.first,
                capacity: self.capacity.unwrap_or(usize::MAX),
            });
        }
        Ok(self
            .entries
            .iter()
            .skip(mark - self.first)
            .map(Packed::unpack)
            .collect())
    }
}

/// A shared log of the most recent operations; marks (`len()`) count every operation logged.
#[derive(Debug, Clone)]
pub struct OperationLog {
    ring: Arc<Mutex<Ring>>,
}

impl Default for OperationLog {
    /// A log keeping the last [`DEFAULT_OPERATION_LOG_CAPACITY`] operations.
    fn default() -> Self {
        Self::with_capacity(Some(DEFAULT_OPERATION_LOG_CAPACITY))
    }
}

impl OperationLog {
    /// A log keeping the last `capacity` operations; `None` keeps every one, `Some(0)` none
    /// (operations are still counted).
    pub fn with_capacity(capacity: Option<usize>) -> Self {
        Self {
            ring: Arc::new(Mutex::new(Ring {
                entries: VecDeque::new(),
                first: 0,
                capacity,
                agents: Vec::new(),
            })),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one operation.
    pub fn push(&self, op: Operation) {
        self.record(OperationFields {
            verb: &op.verb,
            path: &op.path,
            group: &op.group,
            resource: &op.resource,
            namespace: &op.namespace,
            name: &op.name,
            subresource: &op.subresource,
            code: op.code,
            user_agent: &op.user_agent,
        });
    }

    /// Appends one operation from borrowed fields.
    pub(crate) fn record(&self, fields: OperationFields<'_>) {
        self.ring().push(fields);
    }

    /// Every operation logged so far.
    ///
    /// # Panics
    ///
    /// When the log has dropped some of them (see [`Self::try_since`]).
    pub fn all(&self) -> Vec<Operation> {
        self.since(0)
    }

    /// Successful writes to one resource (by plural), e.g. `writes("endpointslices")`.
    ///
    /// # Panics
    ///
    /// When the log has dropped some operations (see [`Self::try_since`]).
    pub fn writes(&self, resource: &str) -> Vec<Operation> {
        self.all()
            .into_iter()
            .filter(|o| o.is_write() && o.resource == resource && o.code < 300)
            .collect()
    }

    /// How many operations were logged (kept or dropped); use as a mark and read `since(mark)`
    /// later.
    pub fn len(&self) -> usize {
        self.ring().end()
    }

    /// Whether nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many operations the log holds now (at most its capacity).
    pub fn retained(&self) -> usize {
        self.ring().entries.len()
    }

    /// How many operations the log keeps; `None` when it keeps every one.
    pub fn capacity(&self) -> Option<usize> {
        self.ring().capacity
    }

    /// Operations logged after `mark`.
    ///
    /// # Panics
    ///
    /// When the log has dropped some of them: a partial answer would be a wrong one. Use
    /// [`Self::try_since`] to handle that case.
    pub fn since(&self, mark: usize) -> Vec<Operation> {
        self.try_since(mark).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Operations logged after `mark`, or why they are no longer all held.
    pub fn try_since(&self, mark: usize) -> Result<Vec<Operation>, OperationsDropped> {
        self.ring().since(mark)
    }

    /// Forgets everything; marks start again from 0.
    pub fn clear(&self) {
        let mut ring = self.ring();
        ring.entries.clear();
        ring.first = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(i: usize) -> Operation {
        Operation {
            verb: "create".into(),
            path: format!("/api/v1/namespaces/default/configmaps/c{i}"),
            group: String::new(),
            resource: "configmaps".into(),
            namespace: "default".into(),
            name: format!("c{i}"),
            subresource: String::new(),
            code: 201,
            user_agent: "test/1.0".into(),
        }
    }

    #[test]
    fn entries_round_trip_through_the_packed_form() {
        let log = OperationLog::with_capacity(None);
        let mut status = op(7);
        status.subresource = "status".into();
        status.group = "discovery.k8s.io".into();
        log.push(op(1));
        log.push(status.clone());
        assert_eq!(log.all(), [op(1), status]);
        assert_eq!(log.writes("configmaps").len(), 2);
    }

    #[test]
    fn a_full_ring_drops_the_oldest_and_keeps_marks_absolute() {
        let log = OperationLog::with_capacity(Some(3));
        for i in 0..5 {
            log.push(op(i));
        }
        assert_eq!(log.len(), 5);
        assert_eq!(log.retained(), 3);
        assert_eq!(log.since(2), [op(2), op(3), op(4)]);
        assert_eq!(log.since(4), [op(4)]);
        assert!(log.since(5).is_empty());
        assert!(log.since(9).is_empty());
        let err = log.try_since(1).unwrap_err();
        assert_eq!(
            err,
            OperationsDropped {
                mark: 1,
                oldest_kept: 2,
                capacity: 3
            }
        );
        assert!(log.try_since(0).is_err());
        log.clear();
        assert_eq!(log.len(), 0);
        log.push(op(9));
        assert_eq!(log.all(), [op(9)]);
    }

    #[test]
    #[should_panic(expected = "no longer holds the operations after mark 0")]
    fn reading_dropped_operations_panics_rather_than_answering_partly() {
        let log = OperationLog::with_capacity(Some(1));
        log.push(op(0));
        log.push(op(1));
        let _ = log.all();
    }

    #[test]
    fn a_zero_capacity_log_only_counts() {
        let log = OperationLog::with_capacity(Some(0));
        log.push(op(0));
        assert_eq!((log.len(), log.retained()), (1, 0));
        assert!(log.since(1).is_empty());
        assert!(log.try_since(0).is_err());
    }
}
