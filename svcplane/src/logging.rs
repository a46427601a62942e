//! Log output: human-readable or JSON lines on stderr, filtered by `RUST_LOG` (default
//! [`DEFAULT_FILTER`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// `info`, but kube's client only at `error`: its warnings print errors in Rust `Debug` syntax
/// (`eof in poll: Custom { kind: UnexpectedEof, .. }`), and every error it returns is logged
/// again by svcplane's own caller, in client-go's words.
pub const DEFAULT_FILTER: &str = "info,kube_client=error";

/// Installs the global subscriber. Stderr is unbuffered, so nothing is left to flush at exit.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
