//! Applying transactions through the `nft` binary, as upstream's knftables does: the statements
//! on stdin of `nft -f -` (optionally `ip netns exec <ns> nft -f -`), atomically. No netlink
//! message is assembled here.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::nft::{IpFamily, TABLE, Transaction};
use crate::sync::KernelObjects;

/// Why `nft` did not apply a transaction or list the table.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The program could not be started.
    #[error(
        "cannot run {program}: {source} (kube-proxy's nftables mode needs the nft binary, nftables >= 1.0.1{netns})"
    )]
    Spawn {
        /// `nft` or `ip`.
        program: String,
        /// The OS error.
        source: std::io::Error,
        /// Note about the namespace, if any.
        netns: String,
    },
    /// nft refused the transaction.
    #[error("nft refused the transaction{statement}: {stderr}")]
    Refused {
        /// nft's standard error, trimmed.
        stderr: String,
        /// `: statement N "…"` when nft named a line.
        statement: String,
    },
    /// nft's listing was not the JSON it should be.
    #[error("cannot read nft's listing of table {family} {TABLE}: {reason}")]
    Listing {
        /// The family.
        family: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Runs `nft`, in the current network namespace or in a named one.
#[derive(Debug, Clone)]
pub struct NftRunner {
    netns: Option<String>,
    nft: String,
}

impl NftRunner {
    /// `nft` from PATH in this network namespace.
    pub fn new() -> Self {
        NftRunner {
            netns: None,
            nft: "nft".into(),
        }
    }

    /// `nft` inside the named network namespace (`ip netns exec <netns> nft …`).
    pub fn in_netns(netns: impl Into<String>) -> Self {
        NftRunner {
            netns: Some(netns.into()),
            nft: "nft".into(),
        }
    }

    /// The same runner with another `nft` program (a path, or a name looked up in PATH).
    pub fn with_nft(mut self, program: impl Into<String>) -> Self {
        self.nft = program.into();
        self
    }

    /// The namespace, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    fn command(&self, args: &[&str]) -> (Command, String) {
        match &self.netns {
            None => {
                let mut c = Command::new(&self.nft);
                c.args(args);
                (c, self.nft.clone())
            }
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, &self.nft]).args(args);
                (c, "ip".into())
            }
        }
    }

    fn spawn_error(&self, program: String, source: std::io::Error) -> NftError {
        NftError::Spawn {
            program,
            source,
            netns: self
                .netns
                .as_ref()
                .map(|ns| format!(", and `ip` to enter network namespace {ns}"))
                .unwrap_or_default(),
        }
    }

    /// Applies `tx` atomically with `nft -f -`. An empty transaction runs nothing.
    pub async fn apply(&self, tx: &Transaction) -> Result<(), NftError> {
        if tx.is_empty() {
            return Ok(());
        }
        let input = tx.render();
        let (mut cmd, program) = self.command(&["-f", "-"]);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(program.clone(), e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .await
                .map_err(|e| self.spawn_error(program.clone(), e))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.spawn_error(program, e))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let statement = failing_line(&stderr)
            .and_then(|n| input.lines().nth(n - 1).map(|l| (n, l)))
            .map(|(n, l)| format!(": statement {n} {l:?}"))
            .unwrap_or_default();
        Err(NftError::Refused { stderr, statement })
    }

    /// The chains and sets of the table (`nft -j list table`); empty when there is no table.
    pub async fn list_objects(&self, family: IpFamily) -> Result<KernelObjects, NftError> {
        let (mut cmd, program) = self.command(&["-j", "list", "table", family.nft(), TABLE]);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| self.spawn_error(program, e))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("No such file or directory") {
                return Ok(KernelObjects::default());
            }
            return Err(NftError::Listing {
                family: family.nft(),
                reason: stderr.trim().to_string(),
            });
        }
        parse_listing(&out.stdout).map_err(|reason| NftError::Listing {
            family: family.nft(),
            reason,
        })
    }

    /// `nft list table` as text (for tests and diagnostics).
    pub async fn list_table_text(&self, family: IpFamily) -> Result<String, NftError> {
        let (mut cmd, program) = self.command(&["list", "table", family.nft(), TABLE]);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| self.spawn_error(program, e))?;
        if !out.status.success() {
            return Err(NftError::Listing {
                family: family.nft(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Default for NftRunner {
    fn default() -> Self {
        NftRunner::new()
    }
}

/// The line nft's error names: `/dev/stdin:3:1-20: Error: …`.
fn failing_line(stderr: &str) -> Option<usize> {
    let rest = stderr.split("/dev/stdin:").nth(1)?;
    rest.split(':').next()?.parse().ok()
}

/// Chains and sets (with timeouts) from `nft -j list table` output.
fn parse_listing(json: &[u8]) -> Result<KernelObjects, String> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let items = value
        .get("nftables")
        .and_then(|v| v.as_array())
        .ok_or("no \"nftables\" array")?;
    let mut chains = BTreeSet::new();
    let mut sets = BTreeMap::new();
    for item in items {
        if let Some(name) = item.pointer("/chain/name").and_then(|n| n.as_str()) {
            chains.insert(name.to_string());
        }
        if let Some(set) = item.get("set")
            && let Some(name) = set.get("name").and_then(|n| n.as_str())
        {
            let timeout = set
                .get("timeout")
                .and_then(|t| t.as_u64())
                .and_then(|t| u32::try_from(t).ok());
            sets.insert(name.to_string(), timeout);
        }
    }
    Ok(KernelObjects { chains, sets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_nft_is_said_plainly() {
        let runner = NftRunner::new().with_nft("/nonexistent/svcplane-test/nft");
        let mut tx = Transaction::new(IpFamily::V4);
        tx.push(crate::nft::Statement::DeleteTable);
        let err = runner.apply(&tx).await.expect_err("no such program");
        assert!(matches!(err, NftError::Spawn { .. }));
        let text = err.to_string();
        assert!(
            text.starts_with(
                "cannot run /nonexistent/svcplane-test/nft: No such file or directory"
            ),
            "{text}"
        );
        assert!(text.contains("needs the nft binary"), "{text}");
        assert!(runner.list_objects(IpFamily::V4).await.is_err());
        // An empty transaction runs nothing, so it cannot fail.
        runner
            .apply(&Transaction::new(IpFamily::V4))
            .await
            .expect("nothing to run");
    }

    #[test]
    fn nft_errors_name_their_line() {
        let stderr = "/dev/stdin:3:1-20: Error: Could not process rule: No such file or directory\nadd chain ip kube-proxy x\n^^^^";
        assert_eq!(failing_line(stderr), Some(3));
        assert_eq!(failing_line("Error: syntax error"), None);
    }

    #[test]
    fn listings_give_chains_and_set_timeouts() {
        let json = br#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "kube-proxy", "handle": 1}},
            {"chain": {"family": "ip", "table": "kube-proxy", "name": "services", "handle": 2}},
            {"set": {"family": "ip", "name": "affinity-X", "table": "kube-proxy", "type": "ipv4_addr", "flags": ["timeout", "dynamic"], "timeout": 10800}},
            {"map": {"family": "ip", "name": "service-ips", "table": "kube-proxy"}}]}"#;
        let objects = parse_listing(json).expect("parses");
        assert_eq!(objects.chains, BTreeSet::from(["services".to_string()]));
        assert_eq!(
            objects.sets,
            BTreeMap::from([("affinity-X".to_string(), Some(10800))])
        );
    }
}
