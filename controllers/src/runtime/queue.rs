//! A keyed work queue in the manner of client-go's rate-limited delaying queue: a key waits
//! at most once (adds while it waits are merged), a key being processed is not handed to a
//! second worker (adds during processing re-queue it when the worker is done), delayed adds
//! keep the earliest deadline, and failures back off per key (exponential, capped) combined
//! by maximum with an overall token bucket.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Backoff and rate-limit settings of a queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// First per-key retry delay, doubled on each further failure.
    pub base_delay: Duration,
    /// Largest per-key retry delay.
    pub max_delay: Duration,
    /// Overall retry rate (tokens per second).
    pub qps: f64,
    /// Overall retry burst.
    pub burst: f64,
}

impl QueueConfig {
    /// The EndpointSlice controller's limiter: 1 s doubling to 1000 s, max-of 10 qps / 100.
    pub fn endpoint_slice() -> Self {
        QueueConfig {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1000),
            qps: 10.0,
            burst: 100.0,
        }
    }

    /// client-go's default controller limiter: 5 ms doubling to 1000 s, max-of 10 qps / 100.
    pub fn default_controller() -> Self {
        QueueConfig {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1000),
            qps: 10.0,
            burst: 100.0,
        }
    }

    /// The mirroring controller's limiter: 1 s doubling to 100 s, max-of 10 qps / 100.
    pub fn mirroring() -> Self {
        QueueConfig {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(100),
            qps: 10.0,
            burst: 100.0,
        }
    }
}

struct TokenBucket {
    tokens: f64,
    last: Instant,
}

struct State<K> {
    ready: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
    waiting: HashMap<K, Instant>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    deadline_keys: HashMap<u64, K>,
    next_sequence: u64,
    failures: HashMap<K, u32>,
    bucket: TokenBucket,
    shutting_down: bool,
    /// Live [`QueueHold`]s: while there is one, no key is handed out.
    holds: usize,
}

/// A cloneable handle to one queue.
pub struct WorkQueue<K> {
    state: Arc<Mutex<State<K>>>,
    wake: Arc<Notify>,
    config: Arc<QueueConfig>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            wake: self.wake.clone(),
            config: self.config.clone(),
        }
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Self {
        let burst = config.burst;
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                ready: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                waiting: HashMap::new(),
                deadlines: BinaryHeap::new(),
                deadline_keys: HashMap::new(),
                next_sequence: 0,
                failures: HashMap::new(),
                bucket: TokenBucket {
                    tokens: burst,
                    last: Instant::now(),
                },
                shutting_down: false,
                holds: 0,
            })),
            wake: Arc::new(Notify::new()),
            config: Arc::new(config),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `key` ready now.
    pub fn add(&self, key: K) {
        let mut state = self.lock();
        if Self::add_locked(&mut state, key) {
            drop(state);
            self.wake.notify_one();
        }
    }

    fn add_locked(state: &mut State<K>, key: K) -> bool {
        if state.shutting_down || state.dirty.contains(&key) {
            return false;
        }
        state.waiting.remove(&key);
        state.dirty.insert(key.clone());
        if state.processing.contains(&key) {
            return false;
        }
        state.ready.push_back(key);
        true
    }

    /// Makes `key` ready after `delay` (an earlier pending deadline wins).
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let deadline = Instant::now() + delay;
        let mut state = self.lock();
        if state.shutting_down || state.dirty.contains(&key) {
            return;
        }
        if state.waiting.get(&key).is_some_and(|d| *d <= deadline) {
            return;
        }
        state.waiting.insert(key.clone(), deadline);
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        state.deadlines.push(Reverse((deadline, sequence)));
        state.deadline_keys.insert(sequence, key);
        drop(state);
        // A worker asleep until a later deadline must recompute its wake-up.
        self.wake.notify_one();
    }

    /// Re-queues `key` after its per-key backoff or the overall rate limit, whichever is longer.
    pub fn add_rate_limited(&self, key: K) {
        let delay = {
            let mut state = self.lock();
            let failures = state.failures.entry(key.clone()).or_insert(0);
            let exponent = (*failures).min(30);
            *failures = failures.saturating_add(1);
            let backoff = self
                .config
                .base_delay
                .saturating_mul(1u32 << exponent)
                .min(self.config.max_delay);
            let now = Instant::now();
            let bucket = &mut state.bucket;
            let refill = now.duration_since(bucket.last).as_secs_f64() * self.config.qps;
            bucket.tokens = (bucket.tokens + refill).min(self.config.burst);
            bucket.last = now;
            bucket.tokens -= 1.0;
            let limited = if bucket.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-bucket.tokens / self.config.qps)
            };
            backoff.max(limited)
        };
        self.add_after(key, delay);
    }

    /// Clears the failure count of `key`.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How many times `key` was re-queued by [`Self::add_rate_limited`] since it was forgotten.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Marks `key` processed; re-queues it if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let mut state = self.lock();
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.ready.push_back(key.clone());
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Stops handing out keys; waiting workers get `None`.
    pub fn shut_down(&self) {
        self.lock().shutting_down = true;
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Keys ready or waiting (for metrics and tests).
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.ready.len() + state.waiting.len()
    }

    /// Whether nothing is ready or waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds every key back from the workers until the returned guard is dropped: a reflector
    /// takes one while it applies a batch of events that arrived together, so that no sync
    /// reads the caches half way through it.
    pub fn hold(&self) -> QueueHold<K> {
        self.lock().holds += 1;
        QueueHold {
            queue: self.clone(),
        }
    }

    /// Waits for the next ready key and marks it processing; `None` once shut down.
    pub async fn get(&self) -> Option<K> {
        loop {
            let next_deadline = {
                let mut state = self.lock();
                if state.shutting_down {
                    return None;
                }
                let now = Instant::now();
                while let Some(Reverse((deadline, sequence))) = state.deadlines.peek().copied() {
                    if deadline > now {
                        break;
                    }
                    state.deadlines.pop();
                    let Some(key) = state.deadline_keys.remove(&sequence) else {
                        continue;
                    };
                    // A stale heap entry: the key was re-scheduled earlier or added directly.
                    if state.waiting.get(&key) != Some(&deadline) {
                        continue;
                    }
                    state.waiting.remove(&key);
                    Self::add_locked(&mut state, key);
                }
                if state.holds > 0 {
                    // The last hold's release wakes a worker.
                    None
                } else if let Some(key) = state.ready.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    let more = !state.ready.is_empty();
                    drop(state);
                    if more {
                        self.wake.notify_one();
                    }
                    return Some(key);
                } else {
                    state.deadlines.peek().map(|Reverse((d, _))| *d)
                }
            };
            match next_deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

/// A hold on a [`WorkQueue`] (see [`WorkQueue::hold`]), released on drop.
pub struct QueueHold<K: Clone + Eq + Hash> {
    queue: WorkQueue<K>,
}

impl<K: Clone + Eq + Hash> Drop for QueueHold<K> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.holds -= 1;
        let released = state.holds == 0;
        drop(state);
        // Workers held back wait without a deadline: one is woken to hand out what is ready,
        // or to go back to sleeping until the next deadline.
        if released {
            self.queue.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(QueueConfig::endpoint_slice())
    }

    #[tokio::test]
    async fn a_held_queue_hands_out_nothing_until_the_hold_is_dropped() {
        let q = queue();
        q.add("a");
        let hold = q.hold();
        let second = q.hold();
        q.add("b");
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a key was handed out under a hold");
        drop(hold);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one hold is still live");
        drop(second);
        assert_eq!(waiting.await.unwrap(), Some("a"));
        assert_eq!(q.get().await, Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_passed_under_a_hold_is_served_when_it_ends() {
        let q = queue();
        q.add_after("a", Duration::from_secs(1));
        let hold = q.hold();
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished());
        drop(hold);
        assert_eq!(waiting.await.unwrap(), Some("a"));
    }

    #[tokio::test]
    async fn shutting_down_ends_a_wait_under_a_hold() {
        let q = queue();
        q.add("a");
        let _hold = q.hold();
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiting.await.unwrap(), None);
    }

    #[tokio::test]
    async fn adds_merge_while_waiting() {
        let q = queue();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert_eq!(q.len(), 0);
    }

    #[tokio::test]
    async fn key_in_processing_is_not_handed_out_twice() {
        let q = queue();
        q.add("a");
        assert_eq!(q.get().await, Some("a"));
        q.add("a");
        assert_eq!(q.len(), 0, "re-added key waits for done");
        q.done(&"a");
        assert_eq!(q.get().await, Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_add_keeps_earliest_deadline() {
        let q = queue();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(2));
        let start = Instant::now();
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        q.done(&"a");
        // The stale 10 s heap entry does not hand the key out again.
        q.add_after("b", Duration::from_secs(20));
        assert_eq!(q.get().await, Some("b"));
        assert_eq!(start.elapsed(), Duration::from_secs(22));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_backoff_doubles_per_key_until_forgotten() {
        let q = queue();
        let start = Instant::now();
        for expected in [1, 2, 4, 8] {
            let before = start.elapsed();
            q.add_rate_limited("a");
            assert_eq!(q.get().await, Some("a"));
            q.done(&"a");
            assert_eq!(start.elapsed() - before, Duration::from_secs(expected));
        }
        assert_eq!(q.num_requeues(&"a"), 4);
        q.forget(&"a");
        assert_eq!(q.num_requeues(&"a"), 0);
    }

    #[tokio::test]
    async fn shutdown_wakes_workers() {
        let q = queue();
        let worker = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(worker.await.ok().flatten(), None);
    }
}
