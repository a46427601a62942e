//! One worker loop under every queue-driven controller, on kube-runtime's split of
//! `reconcile` from `error_policy`: a controller says how to sync one key and how to treat
//! each of its errors; the retry policy, `maxRetries`, the start-up order and the shutdown
//! live here once.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::Instrument;

use super::reflector::RunningReflectors;
use super::{CacheSyncSignal, ObjectKey, Shutdown, WorkQueue};
use crate::leader_election::WriteGate;

/// Requeues after which a failing key is dropped (upstream's `maxRetries`, the same in the
/// EndpointSlice, Endpoints and mirroring controllers).
pub const MAX_RETRIES: u32 = 15;

/// How one sync ended, for a controller's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncResult {
    /// The sync finished.
    Success,
    /// The informer cache was older than our writes.
    Stale,
    /// The sync failed.
    Error,
}

/// Delay before retrying a sync that found the informer cache older than our writes; the
/// cache normally catches up within milliseconds, so waiting a full backoff second would
/// only add latency.
pub const STALE_RETRY_DELAY: Duration = Duration::from_millis(20);

/// What to do with a key whose sync failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Requeue with the queue's per-key backoff; drop the key after [`MAX_RETRIES`].
    Backoff,
    /// The cache is older than our own writes and will catch up within milliseconds: retry
    /// after this delay, without counting a failure.
    Stale(Duration),
}

/// One controller's answer to "sync this key", in the style of kube-runtime's reconciler.
pub trait Reconciler: Send + Sync + 'static {
    /// Why a sync failed; its text is what the logs show.
    type Error: Display + Send;

    /// What a key names, for logs ("Service", "Endpoints").
    const KEY_KIND: &'static str;

    /// Brings the cluster in line with the caches for `key`.
    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// How to retry after `error`.
    fn error_policy(&self, error: &Self::Error) -> ErrorPolicy;

    /// Called once per sync with its outcome (metrics); nothing by default.
    fn observe(&self, _result: SyncResult) {}
}

/// Syncs `key` once and requeues or forgets it by the reconciler's error policy.
pub async fn process<R: Reconciler>(reconciler: &R, queue: &WorkQueue<ObjectKey>, key: ObjectKey) {
    let span = tracing::debug_span!("sync", kind = R::KEY_KIND, key = %key);
    let Err(error) = reconciler.sync(&key).instrument(span).await else {
        reconciler.observe(SyncResult::Success);
        queue.forget(&key);
        return;
    };
    match reconciler.error_policy(&error) {
        ErrorPolicy::Stale(delay) => {
            reconciler.observe(SyncResult::Stale);
            tracing::debug!(kind = R::KEY_KIND, %key, %error, "retrying soon");
            queue.add_after(key, delay);
        }
        ErrorPolicy::Backoff => {
            reconciler.observe(SyncResult::Error);
            if queue.num_requeues(&key) < MAX_RETRIES {
                tracing::info!(kind = R::KEY_KIND, %key, %error, "sync failed; retrying");
                queue.add_rate_limited(key);
            } else {
                tracing::warn!(kind = R::KEY_KIND, %key, %error, "dropping the key out of the queue after {MAX_RETRIES} retries");
                queue.forget(&key);
            }
        }
    }
}

/// Drives `workers` tasks that take keys from `queue` and [`process`] each, until the queue
/// shuts down. A key is processed by at most one worker at a time (the queue's guarantee),
/// so `sync` needs no per-key locking.
pub async fn run_workers<R: Reconciler>(
    reconciler: Arc<R>,
    queue: WorkQueue<ObjectKey>,
    workers: usize,
) {
    let mut tasks = Vec::with_capacity(workers.max(1));
    for _ in 0..workers.max(1) {
        let (reconciler, queue) = (reconciler.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                process(reconciler.as_ref(), &queue, key.clone()).await;
                queue.done(&key);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// What a controller hands to [`run_controller`]: its running reflectors and when they have
/// listed, its queue and how many workers drain it, and the leader gate its writes pass.
pub struct ControllerParts {
    /// Names the controller in logs.
    pub name: &'static str,
    /// The reflectors feeding the caches; they end on the same shutdown token.
    pub reflectors: RunningReflectors,
    /// Marked once every reflector has listed (for `/readyz`).
    pub caches_synced: CacheSyncSignal,
    /// Workers start only while this replica leads.
    pub write_gate: WriteGate,
    /// The keyed work queue.
    pub queue: WorkQueue<ObjectKey>,
    /// How many workers drain the queue.
    pub workers: usize,
}

/// Runs a controller until `shutdown`: waits for its caches, then for leadership (non-leaders
/// keep warm caches but run no workers), queues `initial_keys` and drains the queue with its
/// workers. On shutdown the queue stops handing out keys, workers finish the key they hold,
/// and the reflectors stop.
pub async fn run_controller<R: Reconciler>(
    reconciler: Arc<R>,
    parts: ControllerParts,
    initial_keys: impl FnOnce(&R) -> Vec<ObjectKey> + Send + 'static,
    shutdown: Shutdown,
) {
    let ControllerParts {
        name,
        reflectors: RunningReflectors { tasks, synced },
        caches_synced,
        mut write_gate,
        queue,
        workers,
    } = parts;
    let started = Arc::new(AtomicBool::new(false));
    let worker_pool = {
        let (queue, started) = (queue.clone(), started.clone());
        tokio::spawn(async move {
            synced.wait().await;
            tracing::info!(controller = name, "caches synced");
            caches_synced.mark_synced();
            write_gate.wait_for_leadership().await;
            started.store(true, Ordering::Release);
            for key in initial_keys(&reconciler) {
                queue.add(key);
            }
            run_workers(reconciler, queue, workers).await;
        })
    };
    shutdown.wait().await;
    queue.shut_down();
    for reflector in tasks {
        let _ = reflector.await;
    }
    // A pool still waiting for its caches or for leadership has no sync to finish, and would
    // wait forever now that the reflectors are gone.
    if !started.load(Ordering::Acquire) {
        worker_pool.abort();
    }
    let _ = worker_pool.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{QueueConfig, SyncedFlags, shutdown_channel};
    use std::sync::Mutex;

    /// Fails every sync with the policy it was built with, and counts outcomes.
    struct Failing {
        policy: ErrorPolicy,
        observed: Mutex<Vec<SyncResult>>,
    }

    impl Reconciler for Failing {
        type Error = String;
        const KEY_KIND: &'static str = "Test";

        async fn sync(&self, _key: &ObjectKey) -> Result<(), String> {
            Err("no".into())
        }

        fn error_policy(&self, _error: &String) -> ErrorPolicy {
            self.policy
        }

        fn observe(&self, result: SyncResult) {
            self.observed.lock().expect("lock").push(result);
        }
    }

    fn failing(policy: ErrorPolicy) -> Failing {
        Failing {
            policy,
            observed: Mutex::default(),
        }
    }

    #[tokio::test]
    async fn a_failing_key_is_retried_max_retries_times_then_dropped() {
        let queue = WorkQueue::new(QueueConfig::default_controller());
        let reconciler = failing(ErrorPolicy::Backoff);
        let key = ObjectKey::new("default", "web");
        for attempt in 1..=MAX_RETRIES {
            process(&reconciler, &queue, key.clone()).await;
            assert_eq!(queue.num_requeues(&key), attempt);
        }
        process(&reconciler, &queue, key.clone()).await;
        assert_eq!(queue.num_requeues(&key), 0, "forgotten after {MAX_RETRIES}");
        let observed = reconciler.observed.lock().expect("lock").clone();
        assert_eq!(observed.len() as u32, MAX_RETRIES + 1);
        assert!(observed.iter().all(|r| *r == SyncResult::Error));
    }

    #[tokio::test]
    async fn a_stale_cache_is_retried_soon_without_counting_a_failure() {
        let queue = WorkQueue::new(QueueConfig::default_controller());
        let delay = Duration::from_millis(5);
        let reconciler = failing(ErrorPolicy::Stale(delay));
        let key = ObjectKey::new("default", "web");
        process(&reconciler, &queue, key.clone()).await;
        assert_eq!(queue.num_requeues(&key), 0);
        let requeued = tokio::time::timeout(Duration::from_secs(5), queue.get()).await;
        assert_eq!(requeued.expect("requeued after the delay"), Some(key));
        assert_eq!(
            *reconciler.observed.lock().expect("lock"),
            [SyncResult::Stale]
        );
    }

    #[tokio::test]
    async fn a_controller_stops_on_shutdown_before_its_caches_sync() {
        let queue = WorkQueue::new(QueueConfig::default_controller());
        let (trigger, shutdown) = shutdown_channel();
        let parts = ControllerParts {
            name: "test",
            // One reflector that never lists: the pool waits for it forever.
            reflectors: RunningReflectors {
                tasks: Vec::new(),
                synced: SyncedFlags::new(1),
            },
            caches_synced: CacheSyncSignal::default(),
            write_gate: WriteGate::always(),
            queue,
            workers: 2,
        };
        let run = tokio::spawn(run_controller(
            Arc::new(failing(ErrorPolicy::Backoff)),
            parts,
            |_| Vec::new(),
            shutdown,
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        trigger.fire();
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the controller stopped")
            .expect("no panic");
    }
}
