//! SIGTERM and SIGINT, listened for from the moment the process starts, so that a signal
//! arriving during start-up is a graceful shutdown too rather than the default abrupt exit.

use std::future::Future;

use anyhow::Context;

/// Registers the handlers now; the future resolves with the name of the first signal.
#[cfg(unix)]
pub fn termination() -> anyhow::Result<impl Future<Output = &'static str> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

/// Registers the handler now; the future resolves on Ctrl-C.
#[cfg(not(unix))]
pub fn termination() -> anyhow::Result<impl Future<Output = &'static str> + Send + 'static> {
    Ok(async move {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    })
}
