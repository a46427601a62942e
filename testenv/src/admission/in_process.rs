//! Admission that runs inside the API server, as kube-apiserver's registry defaults, allocates and
//! validates its own kinds: a step registered for a resource by the program that embeds testenv.
//! It speaks AdmissionReview v1, so testenv learns nothing about what it checks; unlike a
//! webhook's, its denial is the API's own error, passed to the client unchanged (no
//! `admission webhook "…" denied the request:` prefix), and it is never skipped by failure
//! policies, selectors or dry runs.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

/// The future an in-process step answers with: an AdmissionReview v1 with its `response`.
pub type ReviewFuture = Pin<Box<dyn Future<Output = Value> + Send>>;

/// One resource's in-process admission.
pub trait InProcessAdmission: Send + Sync + 'static {
    /// Answers `review` (an AdmissionReview v1 with its `request`) like a webhook: `mutating`
    /// says whether a JSON Patch may come back (the mutating phase) or not (validation).
    fn review(&self, mutating: bool, review: Value) -> ReviewFuture;
}
