//! The parts of the control plane that run next to the API server: each is started with a
//! client and a shutdown signal, reports readiness by returning from its start, and then runs
//! as a task until the signal fires. The lifecycle every subcommand gives them is here too:
//! start in order, wait for the first to end, stop in reverse.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How long components get to stop before the process exits anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's shutdown: one trigger, a token in every component (and in every task they
/// start).
pub use kuberun::{Shutdown, ShutdownTrigger, shutdown_channel};

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

/// Components started so far, by name, in start order.
pub type RunningComponents = Vec<(&'static str, Running)>;

/// Starts `components` one after the other, after those already `running`. If one fails,
/// fires `trigger`, stops everything started and returns the failure naming the component.
pub async fn start_in_order(
    components: Vec<Component>,
    client: &kube::Client,
    shutdown: &Shutdown,
    trigger: &ShutdownTrigger,
    mut running: RunningComponents,
) -> anyhow::Result<RunningComponents> {
    for component in components {
        let name = component.name;
        match component.start(client.clone(), shutdown.clone()).await {
            Ok(task) => {
                tracing::info!(component = name, "started");
                running.push((name, task));
            }
            Err(e) => {
                trigger.fire();
                stop_all(running).await;
                return Err(e.context(format!("cannot start {name}")));
            }
        }
    }
    Ok(running)
}

/// Resolves when the first component task ends, with why; never, if there are none. Every
/// component runs until shutdown, so any end before it is a failure of the whole process.
pub async fn first_to_exit(running: &mut [(&'static str, Running)]) -> anyhow::Error {
    if running.is_empty() {
        return std::future::pending().await;
    }
    let (result, index, _) =
        futures::future::select_all(running.iter_mut().map(|(_, task)| task)).await;
    let name = running[index].0;
    match result {
        Ok(Ok(())) => anyhow::anyhow!("{name} stopped unexpectedly"),
        Ok(Err(e)) => e.context(format!("{name} failed")),
        Err(e) => anyhow::anyhow!("{name} crashed: {e}"),
    }
}

/// Waits for each running component to stop, last started first, giving each
/// [`STOP_TIMEOUT`]; the shutdown signal must have fired.
pub async fn stop_all(running: RunningComponents) {
    for (name, task) in running.into_iter().rev() {
        if task.is_finished() {
            continue;
        }
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Ok(Ok(Ok(()))) => tracing::info!(component = name, "stopped"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(component = name, error = %gocompat::error_chain_text(e.as_ref()), "stopped with an error")
            }
            Ok(Err(e)) => tracing::warn!(component = name, error = %e, "crashed while stopping"),
            Err(_) => tracing::warn!(component = name, "did not stop in time"),
        }
    }
}
