//! The shutdown token every long-running task takes.

use tokio::sync::watch;

/// Fires once when the process (or the owner of a task) is shutting down; cheap to clone
/// into every task. Only its [`ShutdownTrigger`] can fire it.
#[derive(Debug, Clone)]
pub struct Shutdown(Option<watch::Receiver<bool>>);

/// Fires the [`Shutdown`] tokens it handed out; dropping it fires them too, so a task never
/// outlives the owner that started it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A new trigger and its token.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(Some(rx)))
}

impl ShutdownTrigger {
    /// Tells every holder of a [`Shutdown`] to stop.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    /// Another token of this trigger.
    pub fn token(&self) -> Shutdown {
        Shutdown(Some(self.0.subscribe()))
    }
}

impl Shutdown {
    /// A token that never fires, for tasks that run until the process exits.
    pub fn never() -> Self {
        Shutdown(None)
    }

    /// Resolves when shutdown is requested (or the trigger is gone).
    pub async fn wait(self) {
        match self.0 {
            Some(mut stop) => {
                let _ = stop.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Whether shutdown has been requested (or the trigger is gone).
    pub fn is_requested(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|stop| *stop.borrow() || stop.has_changed().is_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_token_fires_once_the_trigger_does() {
        let (trigger, token) = shutdown_channel();
        let (a, b) = (token.clone(), trigger.token());
        assert!(!a.is_requested());
        let waiting = tokio::spawn(a.wait());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        trigger.fire();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the token fired")
            .expect("the task ran");
        assert!(b.is_requested());
        // A token taken after the trigger fired is fired already.
        assert!(trigger.token().is_requested());
    }

    #[tokio::test]
    async fn a_dropped_trigger_fires_its_tokens() {
        let (trigger, token) = shutdown_channel();
        drop(trigger);
        assert!(token.is_requested());
        tokio::time::timeout(Duration::from_secs(5), token.wait())
            .await
            .expect("the token fired");
    }

    #[tokio::test]
    async fn the_never_token_does_not_fire() {
        let token = Shutdown::never();
        assert!(!token.is_requested());
        let waited = tokio::time::timeout(Duration::from_millis(20), token.wait()).await;
        assert!(waited.is_err());
    }
}
