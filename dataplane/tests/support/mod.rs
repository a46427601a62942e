//! What the data plane's tests share: skipping (or, under CI=true, failing) where the host
//! cannot make network namespaces, and running commands inside namespaces.

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// `CI=true` in the environment.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `test` can run here: skips with the reason printed, or panics with it under CI=true.
pub fn host_or_skip(test: &str) -> bool {
    match dataplane::check_host() {
        Ok(()) => true,
        Err(why) if is_ci() => panic!("{test}: {why}"),
        Err(why) => {
            eprintln!("skipping {test}: {why} (under CI=true this is a failure)");
            false
        }
    }
}

/// Runs `argv` inside namespace `ns` (`ip netns exec`) and returns its stdout; panics with its
/// stderr when it fails.
pub fn run_in(ns: &str, argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    run(dataplane::netns_exec_command(ns, &argv))
}

/// Runs `command` and returns its stdout; panics with its stderr when it fails.
pub fn run(mut command: Command) -> String {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `curl -s` of `url` from inside `ns`.
pub fn curl_in(ns: &str, url: &str) -> String {
    run_in(ns, &["curl", "-sS", "--max-time", "5", url])
}

/// The named network namespaces whose names start with `prefix`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    dataplane::netns::list_netns()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The root namespace's interface names (`ip -o link`).
pub fn root_links() -> Vec<String> {
    let out = run({
        let mut c = Command::new("ip");
        c.args(["-o", "link"]);
        c
    });
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

/// Polls `check` until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
