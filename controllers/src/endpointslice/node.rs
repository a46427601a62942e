//! What the EndpointSlice planner needs to know about a Node.

use k8s_openapi::api::core::v1::Node;

/// The node label that names the node's zone.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// Node labels that exclude a node from topology capacity (any value).
const EXCLUDED_NODE_LABELS: [&str; 2] = [
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// The part of a Node the planner reads; cheap to cache per node.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// The `topology.kubernetes.io/zone` label; `None` when absent or empty.
    pub zone: Option<String>,
    /// The node's `Ready` condition is `True`.
    pub ready: bool,
    /// `status.allocatable.cpu` in millicores, rounded up (0 when absent or unparsable).
    pub allocatable_cpu_millis: i64,
    /// Carries a control-plane/master role label, so topology hints ignore it.
    pub excluded_from_topology: bool,
}

impl NodeInfo {
    /// Extracts what the planner needs from a full Node.
    pub fn from_node(node: &Node) -> Self {
        let labels = node.metadata.labels.as_ref();
        let status = node.status.as_ref();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            zone: labels
                .and_then(|l| l.get(LABEL_TOPOLOGY_ZONE))
                .filter(|z| !z.is_empty())
                .cloned(),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
            allocatable_cpu_millis: status
                .and_then(|s| s.allocatable.as_ref())
                .and_then(|a| a.get("cpu"))
                .and_then(|q| quantity_millis(&q.0))
                .unwrap_or(0),
            excluded_from_topology: labels
                .is_some_and(|l| EXCLUDED_NODE_LABELS.iter().any(|k| l.contains_key(*k))),
        }
    }
}

/// Parses a resource quantity ("250m", "4", "1.5", "2k", "1Ki", "5e3") into milli-units,
/// rounding up as upstream's `MilliValue`. Decimal arithmetic, so "100m" is exactly 100.
pub fn quantity_millis(quantity: &str) -> Option<i64> {
    let s = quantity.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: i128 = digits.parse().ok()?;
    let scale = i32::try_from(fraction.len()).ok()?;
    let (power_of_ten, binary_factor): (i32, i128) = match suffix {
        "" => (0, 1),
        "n" => (-9, 1),
        "u" => (-6, 1),
        "m" => (-3, 1),
        "k" => (3, 1),
        "M" => (6, 1),
        "G" => (9, 1),
        "T" => (12, 1),
        "P" => (15, 1),
        "E" => (18, 1),
        "Ki" => (0, 1 << 10),
        "Mi" => (0, 1 << 20),
        "Gi" => (0, 1 << 30),
        "Ti" => (0, 1 << 40),
        "Pi" => (0, 1 << 50),
        "Ei" => (0, 1 << 60),
        exponent if exponent.starts_with(['e', 'E']) => (exponent.get(1..)?.parse().ok()?, 1),
        _ => return None,
    };
    // millis = mantissa * binary_factor * 10^(power_of_ten + 3 - scale), rounded up.
    let shift = power_of_ten + 3 - scale;
    let base = mantissa.checked_mul(binary_factor)?;
    let magnitude = if shift >= 0 {
        base.checked_mul(10i128.checked_pow(shift.unsigned_abs())?)?
    } else {
        let divisor = 10i128.checked_pow(shift.unsigned_abs())?;
        let (q, r) = (base / divisor, base % divisor);
        // Rounding up away from zero for positives and toward zero for negatives is what
        // "ceil" means once the sign is applied below.
        if r != 0 && !negative { q + 1 } else { q }
    };
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).ok()
}
