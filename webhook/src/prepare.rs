//! The registry's rewrites that run between defaulting and validation: clusterIP/clusterIPs
//! normalisation, re-applying allocated values an update omitted, and wiping fields a type
//! change made meaningless. Without them validation would reject writes upstream accepts.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;

use crate::service::{SpecView, port_name, spec_of};

fn needs_cluster_ip(s: &SpecView<'_>) -> bool {
    s.type_() != "ExternalName"
}

fn needs_node_port(s: &SpecView<'_>) -> bool {
    matches!(s.type_(), "NodePort" | "LoadBalancer")
}

fn node_ports_in_use(s: &SpecView<'_>) -> BTreeSet<i32> {
    s.ports()
        .iter()
        .filter_map(|p| p.node_port)
        .filter(|&n| n != 0)
        .collect()
}

/// `normalizeClusterIPs`: keep `clusterIP` and `clusterIPs` in step (`old` is `None` on create).
pub fn normalize_cluster_ips(new: &mut Service, old: Option<&Service>) {
    let spec = new.spec.get_or_insert_with(Default::default);
    let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
    let ips_empty = spec.cluster_ips.as_ref().is_none_or(Vec::is_empty);
    let Some(old) = old else {
        if !cluster_ip.is_empty() && ips_empty {
            spec.cluster_ips = Some(vec![cluster_ip]);
        }
        return;
    };
    let old_spec = spec_of(old);
    let o = SpecView(&old_spec);
    if !o.cluster_ips().is_empty() && ips_empty && o.cluster_ip() == cluster_ip {
        spec.cluster_ips = old_spec.cluster_ips.clone();
    }
    if o.cluster_ip() != cluster_ip {
        let same_ips = SpecView(spec).cluster_ips() == o.cluster_ips();
        if !o.cluster_ip().is_empty() && cluster_ip.is_empty() {
            if same_ips {
                spec.cluster_ips = None;
            }
        } else if same_ips {
            spec.cluster_ips = Some(vec![cluster_ip]);
        }
    }
}

/// `patchAllocatedValues`: an update that omits allocated values keeps the old ones
/// (nodePorts matched by port name unless that value is still used by another port).
pub fn patch_allocated_values(new: &mut Service, old: &Service) {
    let old_spec = spec_of(old);
    let o = SpecView(&old_spec);
    let spec = new.spec.get_or_insert_with(Default::default);
    if needs_cluster_ip(&o) && needs_cluster_ip(&SpecView(spec)) {
        if spec.cluster_ip.as_deref().unwrap_or("").is_empty() {
            spec.cluster_ip = old_spec.cluster_ip.clone();
        }
        if spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) && !o.cluster_ips().is_empty() {
            spec.cluster_ips = old_spec.cluster_ips.clone();
        }
    }
    if needs_node_port(&o) && needs_node_port(&SpecView(spec)) {
        let new_in_use = node_ports_in_use(&SpecView(spec));
        let used: BTreeSet<i32> = node_ports_in_use(&o)
            .intersection(&new_in_use)
            .copied()
            .collect();
        let mut by_name = BTreeMap::new();
        for p in o.ports() {
            by_name.insert(port_name(p).to_owned(), p.node_port.unwrap_or(0));
        }
        for p in spec.ports.iter_mut().flatten() {
            if p.node_port.unwrap_or(0) == 0 {
                let old_value = by_name.get(port_name(p)).copied().unwrap_or(0);
                if !used.contains(&old_value) {
                    p.node_port = Some(old_value);
                }
            }
        }
    }
    if o.needs_health_check()
        && SpecView(spec).needs_health_check()
        && spec.health_check_node_port.unwrap_or(0) == 0
    {
        spec.health_check_node_port = old_spec.health_check_node_port;
    }
}

/// `dropTypeDependentFields` (update only): wipe values that no longer apply and that the user
/// did not change.
pub fn drop_type_dependent_fields(new: &mut Service, old: &Service) {
    let old_spec = spec_of(old);
    let o = SpecView(&old_spec);
    let spec = new.spec.get_or_insert_with(Default::default);
    if needs_cluster_ip(&o) && !needs_cluster_ip(&SpecView(spec)) {
        if SpecView(spec).cluster_ips() == o.cluster_ips() {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }
        if SpecView(spec).ip_families() == o.ip_families() {
            spec.ip_families = None;
        }
        if spec.ip_family_policy == old_spec.ip_family_policy {
            spec.ip_family_policy = None;
        }
    }
    if needs_node_port(&o) && !needs_node_port(&SpecView(spec)) {
        let old_ports = node_ports_in_use(&o);
        if node_ports_in_use(&SpecView(spec)).is_subset(&old_ports) {
            for p in spec.ports.iter_mut().flatten() {
                p.node_port = Some(0);
            }
        }
    }
    if o.needs_health_check()
        && !SpecView(spec).needs_health_check()
        && o.hcnp() == SpecView(spec).hcnp()
    {
        spec.health_check_node_port = Some(0);
    }
    let new_type = SpecView(spec).type_().to_owned();
    if o.type_() == "LoadBalancer" && new_type != "LoadBalancer" {
        if spec.allocate_load_balancer_node_ports.is_some()
            && spec.allocate_load_balancer_node_ports == old_spec.allocate_load_balancer_node_ports
        {
            spec.allocate_load_balancer_node_ports = None;
        }
        if spec.load_balancer_class == old_spec.load_balancer_class {
            spec.load_balancer_class = None;
        }
    }
    if o.externally_accessible()
        && !SpecView(spec).externally_accessible()
        && SpecView(spec).etp() == o.etp()
    {
        spec.external_traffic_policy = None;
    }
    if new_type != "LoadBalancer"
        && let Some(status) = new.status.as_mut()
    {
        status.load_balancer = None;
    }
}
