//! Pieces shared by the controller shells: object keys, the keyed work queue with per-key
//! backoff and an overall rate limit, reflectors feeding controller-owned caches, the
//! trigger-time tracker, the events recorder and metric helpers.

pub mod events;
pub mod key;
pub mod queue;
pub mod reflector;
pub mod trigger_time;

pub use events::{EventRecorder, RecordedEvent};
pub use key::ObjectKey;
pub use queue::{QueueConfig, WorkQueue};
pub use reflector::{Delta, SyncedFlags};
pub use trigger_time::TriggerTimeTracker;

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

/// Drives `workers` tasks that take keys from `queue` and call `sync` on each, until the
/// queue shuts down. A key is processed by at most one worker at a time (the queue's
/// guarantee), so `sync` needs no per-key locking.
pub async fn run_workers<F, Fut>(queue: WorkQueue<ObjectKey>, workers: usize, sync: F)
where
    F: Fn(ObjectKey) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                sync(key.clone()).await;
                queue.done(&key);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
