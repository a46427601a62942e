#![forbid(unsafe_code)]
//! testenv as a process of its own: the in-memory API server with its default options, serving
//! plain HTTP on `--listen` until it is terminated. `bench-testenv-vs-upstream` spawns it to
//! time start-to-ready and to read its RSS beside kube-apiserver + etcd (issue 13, item 3).
//!
//!   testenv-server [--listen 127.0.0.1:PORT]
//!
//! Prints the server's URL on stdout once it listens.

use std::net::SocketAddr;

use testenv::{TestEnv, TestEnvOptions};

fn main() -> std::process::ExitCode {
    let mut options = TestEnvOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next().map(|v| v.parse::<SocketAddr>()) {
                Some(Ok(addr)) => options.listen = addr,
                _ => {
                    eprintln!("testenv-server: --listen needs an address such as 127.0.0.1:8080");
                    return std::process::ExitCode::from(2);
                }
            },
            other => {
                eprintln!(
                    "testenv-server: unknown option {other}\nusage: testenv-server [--listen ADDR]"
                );
                return std::process::ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("testenv-server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match TestEnv::start_with(options).await {
            Ok(env) => {
                println!("{}", env.url());
                // Serve until SIGTERM/SIGINT ends the process.
                std::future::pending::<()>().await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("testenv-server: cannot start: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
