#![forbid(unsafe_code)]
//! `svcplane`: the Kubernetes Service control plane, in Rust.

mod client;
mod component;
mod control_plane;
mod controller_manager;
mod dns_server;
mod explain;
mod flags;
mod gated_client;
mod health;
mod logging;
mod node_exec;
mod offline;
mod proxy_command;
mod signals;
mod up;
mod webhook_server;

use std::process::ExitCode;

use clap::{FromArgMatches, Parser, Subcommand};

/// mimalloc rather than glibc malloc: the planners build and drop many small strings per sync
/// (a 10,000-pod Service planned from scratch takes 2.9 ms instead of 8.6 ms).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run a local playground: an in-memory Kubernetes API server with simulated nodes, the
    /// webhook and every controller.
    Up(up::UpArgs),
    /// Run the controllers against a cluster (a kube-controller-manager sidecar).
    ControllerManager(Box<controller_manager::ControllerManagerArgs>),
    /// Run the HTTPS admission webhook.
    Webhook(webhook_server::WebhookArgs),
    /// Serve cluster DNS for a cluster's Services (CoreDNS's kubernetes plugin records) on UDP
    /// and TCP.
    Dns(dns_server::DnsArgs),
    /// Check Service manifests offline as the apiserver would (exit 1 invalid, 2 unreadable).
    Validate(offline::ValidateArgs),
    /// Print the EndpointSlices and Endpoints the controllers would write for the given files.
    Slices(offline::SlicesArgs),
    /// Print the CustomResourceDefinitions svcplane uses, generated from its Rust types.
    Crds,
    /// Explain an object's whole chain (`explain service NAME`), from a cluster or from files.
    Explain(explain::ExplainArgs),
    /// Run kube-proxy's job on nftables for one node (its flags are kube-proxy's).
    Proxy(proxy_command::ProxyArgs),
    /// Run a command inside a node of the playground's data plane (`up --data-plane`), e.g.
    /// `svcplane node-exec node-1 -- curl -s http://CLUSTER-IP`.
    NodeExec(node_exec::NodeExecArgs),
}

fn parse() -> Result<Args, ExitCode> {
    let raw: Vec<String> = std::env::args().collect();
    let spliced = match controller_manager::splice_config_file(raw) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("svcplane: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let matches = <Args as clap::CommandFactory>::command()
        .try_get_matches_from(spliced)
        .unwrap_or_else(|e| e.exit());
    Args::from_arg_matches(&matches).map_err(|e| e.exit())
}

fn main() -> ExitCode {
    let Args {
        log_format,
        command,
    } = match parse() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let service = match command {
        Command::Validate(args) => return offline::validate(args),
        Command::Slices(args) => return offline::slices(args),
        Command::Crds => return offline::crds(),
        service => service,
    };
    logging::init(log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("svcplane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match service {
        Command::Up(args) => runtime.block_on(up::run(args)),
        Command::ControllerManager(args) => runtime.block_on(controller_manager::run(*args)),
        Command::Webhook(args) => runtime.block_on(webhook_server::run(args)),
        Command::Explain(args) => runtime.block_on(explain::run(args)),
        Command::Dns(args) => runtime.block_on(dns_server::run(args)),
        Command::Proxy(args) => runtime.block_on(proxy_command::run(args)),
        Command::NodeExec(args) => match runtime.block_on(node_exec::run(args)) {
            Ok(code) => {
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
                return code;
            }
            Err(e) => Err(e),
        },
        Command::Validate(_) | Command::Slices(_) | Command::Crds => Ok(()),
    };
    // Let in-flight tasks end without blocking exit on a stuck watch.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = gocompat::error_chain_text(e.as_ref());
            // Said once: a line for people, or a JSON event for log collectors (a plain line
            // would break their parsing), never both on the same stderr.
            match log_format {
                logging::LogFormat::Text => eprintln!("svcplane: {text}"),
                logging::LogFormat::Json => tracing::error!("{text}"),
            }
            if e.downcast_ref::<flags::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
