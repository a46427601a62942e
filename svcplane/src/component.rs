//! The parts of the control plane that run next to the API server: each is started with a
//! client and a shutdown signal, reports readiness by returning from its start, and then runs
//! as a task until the signal fires.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Fires once when the process is shutting down; cheap to clone into every task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Fires the [`Shutdown`] signals it handed out.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A new trigger and its signal.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Tells every holder of a [`Shutdown`] to stop.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves when shutdown is requested (or the trigger is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// A component's task after a successful start.
pub type Running = JoinHandle<anyhow::Result<()>>;

type StartFuture = Pin<Box<dyn Future<Output = anyhow::Result<Running>> + Send>>;

/// A named part of the control plane.
pub struct Component {
    /// Name used in logs and errors.
    pub name: &'static str,
    start: Box<dyn FnOnce(kube::Client, Shutdown) -> StartFuture + Send>,
}

impl Component {
    /// A component whose `start` returns once it is ready, with the task it keeps running.
    pub fn new<F, Fut>(name: &'static str, start: F) -> Self
    where
        F: FnOnce(kube::Client, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Running>> + Send + 'static,
    {
        Self {
            name,
            start: Box::new(move |client, shutdown| Box::pin(start(client, shutdown))),
        }
    }

    /// Starts it and waits until it is ready.
    pub async fn start(self, client: kube::Client, shutdown: Shutdown) -> anyhow::Result<Running> {
        (self.start)(client, shutdown).await
    }
}
