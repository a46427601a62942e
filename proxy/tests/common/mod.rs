//! Network namespaces for the tests: each created under a name unique to the test and the
//! process, removed on drop; leftovers of a crashed earlier run of the same test are removed
//! first. Tests that need root, `ip` and `nft` skip with a printed reason, and fail under
//! `CI=true`.

#![allow(dead_code)]

use std::process::{Command, Output};

/// `CI=true` in the environment.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn run(cmd: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(cmd).args(args).output()
}

/// Whether the test can create namespaces and run nft; otherwise prints why (or panics under CI).
pub fn netns_available(test: &str) -> bool {
    let reason = match run("id", &["-u"]) {
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "0" => {
            match (run("ip", &["-V"]), run("nft", &["--version"])) {
                (Ok(a), Ok(b)) if a.status.success() && b.status.success() => None,
                _ => Some("the ip and nft programs are needed"),
            }
        }
        _ => Some("root is needed to create network namespaces"),
    };
    match reason {
        None => true,
        Some(reason) if is_ci() => panic!("{test}: {reason} (CI=true)"),
        Some(reason) => {
            eprintln!("skipping {test}: {reason} (under CI=true this is a failure)");
            false
        }
    }
}

/// Runs `ip` with `args`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = run("ip", args).expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Its name.
    pub name: String,
}

fn process_alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Netns {
    /// `svcp-px-<tag>-<pid>`, with loopback up. Namespaces of this tag left by dead processes
    /// are removed first.
    pub fn create(tag: &str) -> Netns {
        let prefix = format!("svcp-px-{tag}-");
        if let Ok(out) = run("ip", &["netns", "list"]) {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or_default();
                if let Some(pid) = name.strip_prefix(&prefix)
                    && !process_alive(pid)
                {
                    let _ = run("ip", &["netns", "delete", name]);
                }
            }
        }
        let name = format!("{prefix}{}", std::process::id());
        let _ = run("ip", &["netns", "delete", &name]);
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `args` inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all).expect("ip netns exec runs")
    }

    /// Runs `args` inside the namespace and returns stdout; panics on failure.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{} in {}: {}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nft list table ip kube-proxy` inside the namespace.
    pub fn list_table(&self) -> String {
        self.exec_ok(&["nft", "list", "table", "ip", "kube-proxy"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "delete", &self.name]);
    }
}
