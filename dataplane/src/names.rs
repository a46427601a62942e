//! What the data plane calls the things it makes, and what it writes into them: namespace names
//! under one per-process prefix (so parallel runs never collide and a crashed run's leftovers
//! are recognisable), interface names within the 15-byte limit, and each pod's resolv.conf.

use std::net::IpAddr;

/// Every namespace and `/etc/netns` directory the data plane makes starts with this, followed by
/// the owning process id and a sequence number: `svp-<pid>-<seq>-`.
pub const BASE_PREFIX: &str = "svp-";

/// The longest namespace name used: a file name under /run/netns and /etc/netns (255 bytes),
/// with room to spare.
const MAX_NAMESPACE_NAME: usize = 200;

/// The node-side gateway every pod's default route points at; the node answers ARP for it on
/// the pod's veth (proxy_arp), as Calico does, so the pod link needs no subnet.
pub const POD_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 1, 1);
/// The pod side of every pod's veth, inside the pod's namespace.
pub const POD_INTERFACE: &str = "eth0";
/// A node's link to the fabric, inside the node's namespace.
pub const NODE_INTERFACE: &str = "eth0";
/// The Linux bridge in the fabric namespace.
pub const FABRIC_BRIDGE: &str = "br0";

/// The names of one data plane: `svp-<pid>-<seq>-…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// The names of data plane number `seq` of process `pid`.
    pub fn new(pid: u32, seq: u32) -> Self {
        Self {
            prefix: format!("{BASE_PREFIX}{pid}-{seq}-"),
        }
    }

    /// `svp-<pid>-<seq>-`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace holding the bridge every node is plugged into.
    pub fn fabric(&self) -> String {
        format!("{}fabric", self.prefix)
    }

    /// The namespace of Node `node`.
    pub fn node(&self, node: &str) -> String {
        bounded(format!("{}n-{node}", self.prefix))
    }

    /// The namespace of pod `namespace/name`. `_` never occurs in either, so the name is unique.
    pub fn pod(&self, namespace: &str, name: &str) -> String {
        bounded(format!("{}p-{namespace}_{name}", self.prefix))
    }

    /// Whether `name` is one of this data plane's.
    pub fn owns(&self, name: &str) -> bool {
        name.starts_with(&self.prefix)
    }
}

/// The node-side end of the veth of the `n`-th pod sandbox a data plane made (in the node's
/// namespace; a counter rather than a hash, so a pod re-created under the same name while its
/// predecessor is torn down never collides).
pub fn pod_veth(n: u64) -> String {
    format!("veth{n}")
}

/// The fabric-side end of the `n`-th node's link (in the fabric namespace).
pub fn fabric_port(n: u64) -> String {
    format!("node{n}")
}

/// Names longer than a file name allows keep their start and end with a hash of the whole.
fn bounded(name: String) -> String {
    if name.len() <= MAX_NAMESPACE_NAME {
        return name;
    }
    let hash = fnv1a(name.as_bytes());
    let mut cut = MAX_NAMESPACE_NAME - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash:016x}", &name[..cut])
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The process id that made `name`, if it is a data plane name (`svp-<pid>-<seq>-…`).
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(BASE_PREFIX)?;
    let (pid, rest) = rest.split_once('-')?;
    let (seq, _) = rest.split_once('-')?;
    seq.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// The names among `existing` that a data plane of a process that no longer runs left behind.
/// `alive` says whether a process id still runs; names of live processes (this one included)
/// are never leftovers, so parallel runs do not tear each other down.
pub fn leftovers<'a>(
    existing: impl IntoIterator<Item = &'a str>,
    alive: impl Fn(u32) -> bool,
) -> Vec<String> {
    let mut gone: Vec<String> = existing
        .into_iter()
        .filter(|n| owner_pid(n).is_some_and(|pid| !alive(pid)))
        .map(str::to_string)
        .collect();
    gone.sort();
    gone
}

/// The resolv.conf kubelet writes for a pod with `dnsPolicy: ClusterFirst`
/// (k/k `pkg/kubelet/network/dns/dns.go`): the namespace's search path, the cluster DNS
/// server(s), `ndots:5`.
pub fn resolv_conf(namespace: &str, cluster_domain: &str, nameservers: &[IpAddr]) -> String {
    let mut out =
        format!("search {namespace}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}\n");
    for ns in nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    out.push_str("options ndots:5\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_stay_short() {
        let n = Names::new(4711, 2);
        assert_eq!(n.prefix(), "svp-4711-2-");
        assert_eq!(n.fabric(), "svp-4711-2-fabric");
        assert_eq!(n.node("node-1"), "svp-4711-2-n-node-1");
        assert_eq!(n.pod("default", "web-1"), "svp-4711-2-p-default_web-1");
        assert!(n.owns("svp-4711-2-p-default_web-1"));
        assert!(!n.owns("svp-4711-20-fabric"));
        let long = n.pod(&"a".repeat(63), &"b".repeat(253));
        assert!(long.len() <= MAX_NAMESPACE_NAME);
        assert!(long.starts_with("svp-4711-2-p-aaa"));
        assert_ne!(
            long,
            n.pod(&"a".repeat(63), &format!("{}c", "b".repeat(252)))
        );
        assert!(pod_veth(123_456_789).len() <= 15);
        assert!(fabric_port(123_456_789).len() <= 15);
    }

    #[test]
    fn leftovers_are_names_of_dead_processes_only() {
        let existing = [
            "svp-100-0-fabric",
            "svp-100-0-n-node-1",
            "svp-200-3-p-default_web",
            "svp-oops",
            "svp-300-x-fabric",
            "other",
        ];
        let gone = leftovers(existing, |pid| pid == 200);
        assert_eq!(gone, ["svp-100-0-fabric", "svp-100-0-n-node-1"]);
        assert_eq!(owner_pid("svp-200-3-p-default_web"), Some(200));
        assert_eq!(owner_pid("svp-200"), None);
    }

    #[test]
    fn resolv_conf_is_kubelets_cluster_first() {
        let text = resolv_conf("shop", "cluster.local", &["10.96.0.10".parse().unwrap()]);
        assert_eq!(
            text,
            "search shop.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\n\
             options ndots:5\n"
        );
    }
}
