#![forbid(unsafe_code)]
//! `svcplane`: the Kubernetes Service control plane, in Rust.

mod component;
mod logging;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Kubernetes Service control plane, in Rust.
#[derive(Debug, Parser)]
#[command(name = "svcplane", version, about)]
struct Args {
    /// Log output format.
    #[arg(long, value_enum, default_value_t = logging::LogFormat::Text, global = true)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local playground: an in-memory Kubernetes API server with simulated nodes.
    Up(up::UpArgs),
}

fn main() -> ExitCode {
    let Args {
        log_format,
        command,
    } = Args::parse();
    logging::init(log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("svcplane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Up(args) => runtime.block_on(up::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("svcplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}
