//! Fault injection: make chosen requests fail, or slow them down, to test clients' error handling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::status::ApiError;

/// What a matching request gets.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// An error answer with this code and reason (`Retry-After` for 429/503 when set).
    Fail {
        code: u16,
        reason: String,
        message: String,
        retry_after: Option<u64>,
    },
    /// Wait this long, then serve normally.
    Delay(Duration),
    /// Never answer (until the client gives up or the server stops).
    Hang,
}

/// Which requests a fault applies to; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct FaultMatch {
    /// API verb: `create`, `update`, `patch`, `delete`, `get`, `list`, `watch`.
    pub verb: Option<String>,
    /// Plural resource name.
    pub resource: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
struct FaultRule {
    matcher: FaultMatch,
    action: FaultAction,
    remaining: Option<usize>,
}

/// The set of active faults.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<FaultRule>>>,
    /// Watch events of a resource (plural) held back this long each: a watch that lags behind
    /// the writes, as on a loaded kube-apiserver, to test that clients handle a stale cache.
    watch_lags: Arc<Mutex<HashMap<String, Duration>>>,
}

impl Faults {
    /// Adds a fault for the next `times` matching requests (`None`: until cleared).
    pub fn inject(&self, matcher: FaultMatch, action: FaultAction, times: Option<usize>) {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(FaultRule {
                matcher,
                action,
                remaining: times,
            });
    }

    /// Makes the next `times` matching requests fail with `code` (409, 429, 500, 503, ...).
    pub fn fail(&self, matcher: FaultMatch, code: u16, times: Option<usize>) {
        let (reason, message) = match code {
            409 => ("Conflict", "injected conflict"),
            429 => (
                "TooManyRequests",
                "injected: too many requests, please try again later",
            ),
            503 => (
                "ServiceUnavailable",
                "injected: the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "injected: the server was unable to return a response in the time allotted",
            ),
            _ => ("InternalError", "injected: internal error"),
        };
        let retry_after = matches!(code, 429 | 503).then_some(1);
        self.inject(
            matcher,
            FaultAction::Fail {
                code,
                reason: reason.into(),
                message: message.into(),
                retry_after,
            },
            times,
        );
    }

    /// Holds back each watch event of `resource` (plural) by `lag` before it is sent, on the
    /// watches open now and later; `Duration::ZERO` ends it. Events keep their order, so each
    /// one reaches a client at least `lag` after it was written.
    pub fn lag_watch_events(&self, resource: &str, lag: Duration) {
        let mut lags = self.watch_lags.lock().unwrap_or_else(|e| e.into_inner());
        if lag.is_zero() {
            lags.remove(resource);
        } else {
            lags.insert(resource.to_owned(), lag);
        }
    }

    /// How long watch events of `resource` are held back (see [`Faults::lag_watch_events`]).
    pub fn watch_lag(&self, resource: &str) -> Option<Duration> {
        let lags = self.watch_lags.lock().unwrap_or_else(|e| e.into_inner());
        lags.get(resource).copied()
    }

    /// Removes every fault, watch lags included.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.watch_lags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The action for a request, consuming one use of the first matching rule.
    pub fn check(
        &self,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<FaultAction> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let idx = rules.iter().position(|r| {
            ok(&r.matcher.verb, verb)
                && ok(&r.matcher.resource, resource)
                && ok(&r.matcher.namespace, namespace)
                && ok(&r.matcher.name, name)
        })?;
        let rule = &mut rules[idx];
        let action = rule.action.clone();
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(idx);
            }
        }
        Some(action)
    }
}

impl FaultAction {
    /// The error a `Fail` action answers with.
    pub fn error(&self) -> Option<ApiError> {
        match self {
            FaultAction::Fail {
                code,
                reason,
                message,
                retry_after,
            } => {
                let mut e = ApiError::custom(*code, reason, message.clone());
                e.retry_after = *retry_after;
                Some(e)
            }
            _ => None,
        }
    }
}
