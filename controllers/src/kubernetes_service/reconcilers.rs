//! The lease, master-count and none endpoint reconcilers as pure functions. Leases are
//! data (holder IPs and renew time), so expiry is decided from `now` without a clock.

use std::net::IpAddr;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::endpoints_sync::{ApiServerEndpoints, ApiServerWrite, EndpointsTarget, sync_endpoints};
use super::{KubernetesServiceError, LEASE_TTL};

/// `--endpoint-reconciler-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcilerType {
    /// `lease` (default; an empty value also means lease).
    Lease,
    /// `master-count` (deprecated), with `--apiserver-count`.
    MasterCount(usize),
    /// `none`: the Service is created, its endpoints are not managed.
    None,
}

impl ReconcilerType {
    /// Parses the flag value as upstream does.
    pub fn from_flag(value: &str, apiserver_count: usize) -> Option<Self> {
        match value {
            "" | "lease" => Some(ReconcilerType::Lease),
            "master-count" => Some(ReconcilerType::MasterCount(apiserver_count)),
            "none" => Some(ReconcilerType::None),
            _ => None,
        }
    }
}

/// One apiserver's lease: its IPs (primary first, then a second family) and last renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The apiserver's IPs; the first names the lease key.
    pub ips: Vec<IpAddr>,
    /// When the lease was last written.
    pub renew_time: Timestamp,
}

impl Lease {
    /// The lease key's IP (its primary IP).
    pub fn key(&self) -> Option<IpAddr> {
        self.ips.first().copied()
    }

    /// Whether the lease is still live at `now` (written less than [`LEASE_TTL`] ago).
    pub fn is_live(&self, now: Timestamp) -> bool {
        let ttl = SignedDuration::try_from(LEASE_TTL).unwrap_or(SignedDuration::MAX);
        now.duration_since(self.renew_time) < ttl
    }
}

/// The IPs of the live leases: from each, the first address and the second if present.
fn live_ips<'a>(leases: impl IntoIterator<Item = &'a Lease>, now: Timestamp) -> Vec<IpAddr> {
    leases
        .into_iter()
        .filter(|l| l.is_live(now))
        .flat_map(|l| l.ips.iter().take(2).copied())
        .collect()
}

/// Lease `ReconcileEndpoints`: refresh our lease, then sync the endpoints to every live
/// lease's IPs.
pub fn lease_reconcile(
    own_ips: &[IpAddr],
    leases: &[Lease],
    now: Timestamp,
    target: &EndpointsTarget,
    reconcile_ports: bool,
    current: &ApiServerEndpoints,
) -> Result<Vec<ApiServerWrite>, KubernetesServiceError> {
    let own_key = *own_ips.first().ok_or(KubernetesServiceError::NoOwnIp)?;
    let own = Lease {
        ips: own_ips.to_vec(),
        renew_time: now,
    };
    let others = leases.iter().filter(|l| l.key() != Some(own_key));
    let ips = live_ips(others.chain(std::iter::once(&own)), now);
    if ips.is_empty() {
        return Err(KubernetesServiceError::NoApiServerIps);
    }
    let mut writes = vec![ApiServerWrite::PutLease(own)];
    writes.extend(sync_endpoints(&ips, target, reconcile_ports, current));
    Ok(writes)
}

/// Lease `RemoveEndpoints`: delete our lease, then sync to the remaining live leases with
/// ports reconciled (an empty address list is allowed here).
pub fn lease_remove(
    own_ips: &[IpAddr],
    leases: &[Lease],
    now: Timestamp,
    target: &EndpointsTarget,
    current: &ApiServerEndpoints,
) -> Result<Vec<ApiServerWrite>, KubernetesServiceError> {
    let own_key = *own_ips.first().ok_or(KubernetesServiceError::NoOwnIp)?;
    if !leases.iter().any(|l| l.key() == Some(own_key)) {
        return Err(KubernetesServiceError::LeaseNotFound {
            ip: own_key.to_string(),
        });
    }
    let remaining = leases.iter().filter(|l| l.key() != Some(own_key));
    let ips = live_ips(remaining, now);
    let mut writes = vec![ApiServerWrite::DeleteLease(own_key)];
    writes.extend(sync_endpoints(&ips, target, true, current));
    Ok(writes)
}

fn current_primary_ips(current: &ApiServerEndpoints) -> Vec<IpAddr> {
    let from_slice = current
        .slices
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(super::SERVICE_NAME))
        .map(|s| {
            s.endpoints
                .iter()
                .flat_map(|e| e.addresses.iter())
                .cloned()
                .collect::<Vec<_>>()
        });
    let from_endpoints = || {
        current
            .endpoints
            .iter()
            .flat_map(|e| e.subsets.iter().flatten())
            .flat_map(|s| s.addresses.iter().flatten())
            .map(|a| a.ip.clone())
            .collect::<Vec<_>>()
    };
    from_slice
        .unwrap_or_else(from_endpoints)
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// Master-count `ReconcileEndpoints`: current IPs plus ours; above `count`, drop the IPs
/// that follow ours in sorted order (wrapping) until `count` remain. Single-stack.
pub fn master_count_reconcile(
    own_ip: IpAddr,
    count: usize,
    target: &EndpointsTarget,
    reconcile_ports: bool,
    current: &ApiServerEndpoints,
) -> Vec<ApiServerWrite> {
    let mut ips = current_primary_ips(current);
    if !ips.contains(&own_ip) {
        ips.push(own_ip);
    }
    ips.sort_by_key(|ip| ip.to_string());
    ips.dedup();
    if ips.len() > count
        && let Some(own_index) = ips.iter().position(|ip| *ip == own_ip)
    {
        // Upstream keeps the index of our IP fixed while removing, even after a wrap.
        while ips.len() > count.max(1) {
            let remove = (own_index + 1) % ips.len();
            ips.remove(remove);
        }
    }
    let single_stack = EndpointsTarget {
        secondary_service_ip: None,
        ..target.clone()
    };
    sync_endpoints(&ips, &single_stack, reconcile_ports, current)
}

/// Master-count `RemoveEndpoints`: drop our IP if present and sync without touching ports.
pub fn master_count_remove(
    own_ip: IpAddr,
    target: &EndpointsTarget,
    current: &ApiServerEndpoints,
) -> Vec<ApiServerWrite> {
    let ips: Vec<IpAddr> = current_primary_ips(current)
        .into_iter()
        .filter(|ip| *ip != own_ip)
        .collect();
    let single_stack = EndpointsTarget {
        secondary_service_ip: None,
        ..target.clone()
    };
    sync_endpoints(&ips, &single_stack, false, current)
}
