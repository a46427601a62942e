//! Which committed changes are on disk. A write is applied to the store (and appended to the log)
//! under the store lock, but synced later and in groups; responses and watch events wait here
//! until a sync covers the change they show, so a client never sees a change a crash could lose.
//! This is what etcd gives kube-apiserver: it acknowledges a write, and lets watchers see its
//! revision, only after its WAL entry is synced.

use tokio::sync::watch;

/// How far the log is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurablePoint {
    /// Every change up to and including this resourceVersion is synced.
    Through(u64),
    /// A sync failed: what was appended after the last good sync may or may not be on disk.
    Failed,
}

/// Why a change can never become durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityError {
    /// The log could not be synced.
    #[error("storage error: the write-ahead log could not be synced")]
    SyncFailed,
    /// The log was closed before the change was synced.
    #[error("storage error: the write-ahead log was closed")]
    Closed,
}

/// A cheap handle that tells whether (and waits until) a resourceVersion is durable.
#[derive(Debug, Clone)]
pub struct Durability {
    point: watch::Receiver<DurablePoint>,
    /// Keeps an in-memory store's channel open.
    _always: Option<std::sync::Arc<watch::Sender<DurablePoint>>>,
}

/// The side that syncs the log and announces how far it got.
#[derive(Debug)]
pub struct DurabilityPublisher {
    point: watch::Sender<DurablePoint>,
}

impl Durability {
    /// For a store without a log: every change counts as durable at once.
    pub fn immediate() -> Self {
        let (tx, rx) = watch::channel(DurablePoint::Through(u64::MAX));
        Self {
            point: rx,
            _always: Some(std::sync::Arc::new(tx)),
        }
    }

    /// A log that is durable through `synced` now; the publisher announces later syncs.
    pub fn channel(synced: u64) -> (DurabilityPublisher, Self) {
        let (tx, rx) = watch::channel(DurablePoint::Through(synced));
        (
            DurabilityPublisher { point: tx },
            Self {
                point: rx,
                _always: None,
            },
        )
    }

    /// The current durable point.
    pub fn point(&self) -> DurablePoint {
        *self.point.borrow()
    }

    /// Whether the change at `resource_version` is durable now.
    pub fn is_durable(&self, resource_version: u64) -> Result<bool, DurabilityError> {
        covers(&self.point(), resource_version)
    }

    /// Waits until the change at `resource_version` (and so every earlier one) is durable.
    pub async fn wait(&self, resource_version: u64) -> Result<(), DurabilityError> {
        if self.is_durable(resource_version)? {
            return Ok(());
        }
        let mut point = self.point.clone();
        let mut failed = false;
        let waited = point
            .wait_for(|p| match covers(p, resource_version) {
                Ok(done) => done,
                Err(_) => {
                    failed = true;
                    true
                }
            })
            .await;
        match (waited, failed) {
            (_, true) => Err(DurabilityError::SyncFailed),
            (Ok(_), false) => Ok(()),
            (Err(_), false) => Err(DurabilityError::Closed),
        }
    }
}

fn covers(point: &DurablePoint, resource_version: u64) -> Result<bool, DurabilityError> {
    match *point {
        DurablePoint::Through(rv) => Ok(rv >= resource_version),
        DurablePoint::Failed => Err(DurabilityError::SyncFailed),
    }
}

impl DurabilityPublisher {
    /// Announces that every change through `resource_version` is synced.
    pub fn synced_through(&self, resource_version: u64) {
        self.point.send_if_modified(|p| match p {
            DurablePoint::Through(rv) if *rv < resource_version => {
                *rv = resource_version;
                true
            }
            _ => false,
        });
    }

    /// Announces that a sync failed; nothing becomes durable after this.
    pub fn failed(&self) {
        self.point.send_replace(DurablePoint::Failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_store_is_always_durable() {
        let d = Durability::immediate();
        assert_eq!(d.is_durable(u64::MAX), Ok(true));
        assert_eq!(d.wait(12).await, Ok(()));
    }

    #[tokio::test]
    async fn waiters_wake_when_a_sync_covers_them_and_fail_after_a_failed_sync() {
        let (publisher, d) = Durability::channel(5);
        assert_eq!(d.is_durable(5), Ok(true));
        assert_eq!(d.is_durable(6), Ok(false));
        let early = tokio::spawn({
            let d = d.clone();
            async move { d.wait(7).await }
        });
        let late = tokio::spawn({
            let d = d.clone();
            async move { d.wait(9).await }
        });
        publisher.synced_through(8);
        assert_eq!(early.await.unwrap(), Ok(()));
        // The durable point never moves back.
        publisher.synced_through(3);
        assert_eq!(d.point(), DurablePoint::Through(8));
        assert!(!late.is_finished());
        publisher.failed();
        assert_eq!(late.await.unwrap(), Err(DurabilityError::SyncFailed));
        assert_eq!(d.wait(1).await, Err(DurabilityError::SyncFailed));
        drop(publisher);
        let (publisher, d) = Durability::channel(1);
        drop(publisher);
        assert_eq!(d.wait(2).await, Err(DurabilityError::Closed));
    }
}
