//! The operation log: every API request with its verb, path and answer, for tests to assert on.

use std::sync::{Arc, Mutex};

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

/// A shared, append-only log of operations.
#[derive(Debug, Clone, Default)]
pub struct OperationLog {
    entries: Arc<Mutex<Vec<Operation>>>,
}

impl OperationLog {
    /// Appends one operation.
    pub fn push(&self, op: Operation) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op);
    }

    /// Everything logged so far.
    pub fn all(&self) -> Vec<Operation> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Successful writes to one resource (by plural), e.g. `writes("endpointslices")`.
    pub fn writes(&self, resource: &str) -> Vec<Operation> {
        self.all()
            .into_iter()
            .filter(|o| o.is_write() && o.resource == resource && o.code < 300)
            .collect()
    }

    /// How many entries exist; use as a mark and read `since(mark)` later.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries logged after `mark`.
    pub fn since(&self, mark: usize) -> Vec<Operation> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(mark..)
            .map(<[Operation]>::to_vec)
            .unwrap_or_default()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
