use super::*;

use k8s_openapi::api::core::v1::{LoadBalancerStatus, ServiceSpec, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("default", name)
}

fn lb(name: &str, families: &[&str]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ip_families: (!families.is_empty())
                .then(|| families.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        }),
        status: None,
    }
}

fn with_ingress(mut service: Service, ips: &[&str]) -> Service {
    let ips: Vec<IpAddr> = ips.iter().map(|ip| ip.parse().unwrap()).collect();
    service.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(ingress_of(&ips)),
        }),
        ..Default::default()
    });
    service
}

fn ips_of(decision: &LoadBalancerDecision) -> Vec<String> {
    decision
        .ingress
        .iter()
        .flatten()
        .map(|i| i.ip.clone().unwrap())
        .collect()
}

fn pool(entries: &[&str]) -> LoadBalancerPool {
    LoadBalancerPool::new(entries).unwrap()
}

#[test]
fn pool_entries_are_cidrs_or_ranges() {
    let p = pool(&[
        "198.18.100.0/30",
        "192.0.2.10-192.0.2.11",
        "2001:db8::/127",
        "2001:db8:1::/64",
    ]);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // An IPv4 CIDR without its network and broadcast addresses.
    assert!(!p.contains(&ip("198.18.100.0")) && p.contains(&ip("198.18.100.1")));
    assert!(p.contains(&ip("198.18.100.2")) && !p.contains(&ip("198.18.100.3")));
    assert!(p.contains(&ip("192.0.2.11")) && !p.contains(&ip("192.0.2.12")));
    assert!(p.contains(&ip("2001:db8::")) && p.contains(&ip("2001:db8::1")));
    assert!(!p.contains(&ip("2001:db8:1::")) && p.contains(&ip("2001:db8:1::1")));
    assert!(matches!(
        LoadBalancerPool::new(&["nonsense"]),
        Err(PoolError::Invalid(_))
    ));
    assert!(matches!(
        LoadBalancerPool::new(&["192.0.2.9-192.0.2.1"]),
        Err(PoolError::BadRange(_))
    ));
    assert!(matches!(
        LoadBalancerPool::new(&["192.0.2.1-2001:db8::1"]),
        Err(PoolError::BadRange(_))
    ));
    assert!(LoadBalancerPool::new(DEFAULT_POOL).is_ok());
}

#[test]
fn a_load_balancer_gets_the_lowest_free_ip_with_vip_mode() {
    let mut p = pool(DEFAULT_POOL);
    let first = plan_service(&key("a"), Some(&lb("a", &[])), &mut p);
    let ingress = first.ingress.clone().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0].ip.as_deref(), Some("198.18.100.1"));
    assert_eq!(ingress[0].ip_mode.as_deref(), Some("VIP"));
    let event = first.event.unwrap();
    assert_eq!((event.warning, event.reason), (false, "IPAllocated"));
    assert_eq!(event.message, "Assigned IP [\"198.18.100.1\"]");
    let second = plan_service(&key("b"), Some(&lb("b", &["IPv4"])), &mut p);
    assert_eq!(ips_of(&second), vec!["198.18.100.2"]);
    // Synced again with its status written: nothing to do.
    let settled = with_ingress(lb("a", &[]), &["198.18.100.1"]);
    assert_eq!(
        plan_service(&key("a"), Some(&settled), &mut p),
        LoadBalancerDecision::default()
    );
}

#[test]
fn dual_stack_services_get_one_ip_per_family_in_family_order() {
    let mut p = pool(DEFAULT_POOL);
    let d = plan_service(&key("d"), Some(&lb("d", &["IPv6", "IPv4"])), &mut p);
    assert_eq!(ips_of(&d), vec!["2001:db8:18:100::1", "198.18.100.1"]);
    // Families from the ClusterIPs when ipFamilies is absent.
    let mut by_cluster_ip = lb("c", &[]);
    by_cluster_ip.spec.as_mut().unwrap().cluster_ips = Some(vec!["fd00::10".into()]);
    assert_eq!(service_families(&by_cluster_ip), vec![Family::V6]);
}

#[test]
fn other_classes_and_other_types_are_left_alone() {
    let mut p = pool(DEFAULT_POOL);
    let mut classed = lb("x", &[]);
    classed.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
    assert_eq!(
        plan_service(&key("x"), Some(&classed), &mut p),
        LoadBalancerDecision::default()
    );
    let mut cluster_ip = lb("y", &[]);
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    assert_eq!(
        plan_service(&key("y"), Some(&cluster_ip), &mut p),
        LoadBalancerDecision::default()
    );
}

#[test]
fn ips_are_released_on_delete_and_when_the_type_changes() {
    let mut p = pool(&["192.0.2.1-192.0.2.1"]);
    plan_service(&key("a"), Some(&lb("a", &[])), &mut p);
    let mut now_cluster_ip = with_ingress(lb("a", &[]), &["192.0.2.1"]);
    now_cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let released = plan_service(&key("a"), Some(&now_cluster_ip), &mut p);
    assert_eq!(released.ingress, Some(Vec::new()), "the ingress is cleared");
    assert_eq!(
        released.released,
        vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        ips_of(&plan_service(&key("b"), Some(&lb("b", &[])), &mut p)),
        vec!["192.0.2.1"]
    );
    let gone = plan_service(&key("b"), None, &mut p);
    assert_eq!((gone.ingress, gone.released.len()), (None, 1));
    assert!(p.assigned_to(&key("b")).is_empty());
}

#[test]
fn an_exhausted_pool_gives_no_ip_and_a_warning() {
    let mut p = pool(&["192.0.2.1-192.0.2.1"]);
    plan_service(&key("a"), Some(&lb("a", &[])), &mut p);
    let exhausted = plan_service(&key("b"), Some(&lb("b", &[])), &mut p);
    assert_eq!(exhausted.ingress, None);
    let event = exhausted.event.unwrap();
    assert_eq!((event.warning, event.reason), (true, "AllocationFailed"));
    assert_eq!(
        event.message,
        "Failed to allocate IP for \"default/b\": no available IPs"
    );
    // Dual-stack with no IPv6 range: all or nothing.
    let mut v4_only = pool(&["192.0.2.0/24"]);
    let none = plan_service(&key("d"), Some(&lb("d", &["IPv4", "IPv6"])), &mut v4_only);
    assert_eq!(none.ingress, None);
    assert!(v4_only.assigned_to(&key("d")).is_empty());
}

#[test]
fn a_requested_load_balancer_ip_is_honoured_only_when_free_and_in_the_pool() {
    let mut p = pool(&["192.0.2.0/24"]);
    let mut wants = lb("a", &[]);
    wants.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.50".into());
    assert_eq!(
        ips_of(&plan_service(&key("a"), Some(&wants), &mut p)),
        vec!["192.0.2.50"]
    );
    let mut same = lb("b", &[]);
    same.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.50".into());
    let taken = plan_service(&key("b"), Some(&same), &mut p);
    assert_eq!(
        taken.event.unwrap().message,
        "Failed to allocate IP for \"default/b\": 192.0.2.50 is already in use by default/a"
    );
    let mut outside = lb("c", &[]);
    outside.spec.as_mut().unwrap().load_balancer_ip = Some("203.0.113.5".into());
    let refused = plan_service(&key("c"), Some(&outside), &mut p);
    assert!(
        refused
            .event
            .unwrap()
            .message
            .ends_with("203.0.113.5 is not in the LoadBalancer IP pool")
    );
}

#[test]
fn restore_keeps_assignments_and_gives_a_shared_ip_to_the_older_service() {
    let mut older = with_ingress(lb("older", &[]), &["198.18.100.7"]);
    older.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(100).unwrap()));
    let mut younger = with_ingress(lb("younger", &[]), &["198.18.100.7"]);
    younger.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(200).unwrap()));
    let outside = with_ingress(lb("outside", &[]), &["203.0.113.9"]);
    let mut p = pool(DEFAULT_POOL);
    p.restore(&[&younger, &older, &outside]);
    assert_eq!(
        p.holder(&"198.18.100.7".parse().unwrap()),
        Some(&key("older"))
    );
    assert_eq!(
        plan_service(&key("older"), Some(&older), &mut p),
        LoadBalancerDecision::default()
    );
    assert_eq!(
        ips_of(&plan_service(&key("younger"), Some(&younger), &mut p)),
        vec!["198.18.100.1"]
    );
    // An IP outside the pool (someone else's) is replaced by one of ours.
    assert_eq!(
        ips_of(&plan_service(&key("outside"), Some(&outside), &mut p)),
        vec!["198.18.100.2"]
    );
}
