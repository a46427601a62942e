//! What the controller shells share: object keys, the keyed work queue with per-key backoff
//! and an overall rate limit, reflectors feeding controller-owned caches (Services, pods,
//! slices, any keyed kind), upstream's pod-update enqueue rules, the EndpointSlice write
//! tracker, the trigger-time tracker, the events recorder, one worker loop with its retry
//! policy, and poison-tolerant locks. No controller module imports from a sibling.

pub mod cache;
pub mod core_events;
pub mod enqueue;
pub mod events;
pub mod key;
pub mod locks;
pub mod owned;
pub mod queue;
pub mod reflector;
pub mod slice_tracker;
pub mod trigger_time;
pub mod worker;

pub use events::{EventRecorder, RecordedEvent};
pub use key::ObjectKey;
pub use kuberun::{Shutdown, ShutdownTrigger, shutdown_channel};
pub use queue::{QueueConfig, WorkQueue};
pub use reflector::{Delta, Reflectors, SyncedFlags};
pub use trigger_time::TriggerTimeTracker;
pub use worker::{
    ControllerParts, ErrorPolicy, MAX_RETRIES, Reconciler, STALE_RETRY_DELAY, SyncResult,
    run_controller,
};

pub use allocator::registry::{FIELD_MANAGER, write_params};

/// Set once by a controller when its caches have synced, for a `/readyz` that waits for them.
#[derive(Clone, Debug, Default)]
pub struct CacheSyncSignal(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CacheSyncSignal {
    /// Records that the caches have synced.
    pub fn mark_synced(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the caches have synced.
    pub fn is_synced(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Two signals are equal when they are the same signal (so controller configs stay `Eq`).
impl PartialEq for CacheSyncSignal {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CacheSyncSignal {}

/// Whether a create failed because its namespace is being deleted: the controllers then stop
/// quietly, as upstream's do, since the namespace's objects are going away anyway.
pub fn is_namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}
