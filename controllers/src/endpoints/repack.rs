//! Canonical form of Endpoints subsets (upstream `RepackSubsets`) and the order-insensitive
//! comparison the planner uses to decide whether a write is needed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, ObjectReference};

/// A port as a map key: name, number, protocol, appProtocol (empty strings read as unset).
/// Borrowed, so grouping thousands of single-port subsets clones nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey<'a> {
    name: Option<&'a str>,
    port: i32,
    protocol: Option<&'a str>,
    app_protocol: Option<&'a str>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl<'a> PortKey<'a> {
    fn of(port: &'a EndpointPort) -> Self {
        PortKey {
            name: non_empty(&port.name),
            port: port.port,
            protocol: non_empty(&port.protocol),
            app_protocol: non_empty(&port.app_protocol),
        }
    }

    fn to_port(self) -> EndpointPort {
        EndpointPort {
            name: self.name.map(str::to_owned),
            port: self.port,
            protocol: self.protocol.map(str::to_owned),
            app_protocol: self.app_protocol.map(str::to_owned),
        }
    }
}

/// Address identity in a repack: IP plus targetRef UID (not name), as upstream's `addressKey`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AddressKey<'a> {
    ip: &'a str,
    uid: &'a str,
}

impl<'a> AddressKey<'a> {
    fn of(address: &'a EndpointAddress) -> Self {
        AddressKey {
            ip: &address.ip,
            uid: address
                .target_ref
                .as_ref()
                .and_then(|r| r.uid.as_deref())
                .unwrap_or_default(),
        }
    }
}

/// `None` is the sentinel for a subset without ports, so headless port-less subsets survive.
type PortSlot<'a> = Option<PortKey<'a>>;

/// Rebuilds subsets into canonical form: addresses deduplicated by (IP, UID) with not-ready
/// winning over ready, ports grouped by identical address sets, everything sorted.
///
/// Upstream orders ports and subsets by the MD5 of their go-spew dumps. Ports follow that order
/// here too ([`gocompat::hash_order`]); subsets keep an order of their own (by their ports'
/// values): a subset's dump holds its addresses' targetRef uids and resourceVersions, so even
/// two upstream clusters order the same subsets differently.
pub fn repack_subsets(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut all_addresses: BTreeMap<AddressKey, &EndpointAddress> = BTreeMap::new();
    let mut by_port: BTreeMap<PortSlot, BTreeMap<AddressKey, bool>> = BTreeMap::new();

    for subset in subsets {
        let slots: Vec<PortSlot> = match subset.ports.as_deref() {
            Some(ports) if !ports.is_empty() => {
                ports.iter().map(|p| Some(PortKey::of(p))).collect()
            }
            _ => vec![None],
        };
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        let addresses: Vec<(&EndpointAddress, bool)> = ready.chain(not_ready).collect();
        for slot in slots {
            for &(address, is_ready) in &addresses {
                let key = AddressKey::of(address);
                all_addresses.entry(key).or_insert(address);
                let set = by_port.entry(slot).or_default();
                set.entry(key)
                    .and_modify(|was_ready| *was_ready = *was_ready && is_ready)
                    .or_insert(is_ready);
            }
        }
    }

    let mut ports_by_set: BTreeMap<Vec<(AddressKey, bool)>, Vec<PortSlot>> = BTreeMap::new();
    for (slot, set) in by_port {
        if set.is_empty() {
            continue;
        }
        ports_by_set
            .entry(set.into_iter().collect())
            .or_default()
            .push(slot);
    }

    let mut repacked: Vec<(Vec<PortSlot>, EndpointSubset)> = ports_by_set
        .into_iter()
        .map(|(set, mut slots)| {
            slots.sort();
            let mut ready = Vec::new();
            let mut not_ready = Vec::new();
            for (key, is_ready) in &set {
                if let Some(address) = all_addresses.get(key) {
                    if *is_ready {
                        ready.push((*address).clone());
                    } else {
                        not_ready.push((*address).clone());
                    }
                }
            }
            let mut ports: Vec<EndpointPort> =
                slots.iter().flatten().map(|p| p.to_port()).collect();
            sort_ports_as_upstream(&mut ports);
            let subset = EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            };
            (slots, subset)
        })
        .collect();
    repacked.sort_by(|a, b| a.0.cmp(&b.0));
    repacked.into_iter().map(|(_, subset)| subset).collect()
}

/// A subset's ports in upstream's `portsByHash` order (the MD5 of each port's go-spew dump,
/// [`gocompat::hash_order`]).
pub fn sort_ports_as_upstream(ports: &mut [EndpointPort]) {
    gocompat::hash_order::sort_by_dump_hash(ports, |p| {
        gocompat::hash_order::core_port_dump(
            p.name.as_deref().unwrap_or_default(),
            p.port,
            p.protocol.as_deref().unwrap_or_default(),
            p.app_protocol.as_deref(),
        )
    });
}

/// An address reduced to what matters for equality: resourceVersion dropped, empty strings
/// read as unset. Borrowed from the subsets being compared.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ComparableAddress<'a> {
    ip: &'a str,
    hostname: Option<&'a str>,
    node_name: Option<&'a str>,
    target_ref: Option<[Option<&'a str>; 6]>,
}

fn comparable_ref(r: &ObjectReference) -> [Option<&str>; 6] {
    [
        non_empty(&r.api_version),
        non_empty(&r.field_path),
        non_empty(&r.kind),
        non_empty(&r.name),
        non_empty(&r.namespace),
        non_empty(&r.uid),
    ]
}

fn comparable_addresses(addresses: &Option<Vec<EndpointAddress>>) -> Vec<ComparableAddress<'_>> {
    let mut out: Vec<ComparableAddress<'_>> = addresses
        .iter()
        .flatten()
        .map(|a| ComparableAddress {
            ip: &a.ip,
            hostname: non_empty(&a.hostname),
            node_name: a.node_name.as_deref(),
            target_ref: a.target_ref.as_ref().map(comparable_ref),
        })
        .collect();
    out.sort_unstable();
    out
}

type ComparableSubset<'a> = (
    Vec<PortKey<'a>>,
    Vec<ComparableAddress<'a>>,
    Vec<ComparableAddress<'a>>,
);

fn comparable_subsets(subsets: Option<&[EndpointSubset]>) -> Vec<ComparableSubset<'_>> {
    let mut out: Vec<ComparableSubset<'_>> = subsets
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let mut ports: Vec<PortKey<'_>> = s.ports.iter().flatten().map(PortKey::of).collect();
            ports.sort_unstable();
            (
                ports,
                comparable_addresses(&s.addresses),
                comparable_addresses(&s.not_ready_addresses),
            )
        })
        .collect();
    out.sort_unstable();
    out
}

/// Upstream `endpointSubsetsEqualIgnoreResourceVersion`, except that the order of subsets,
/// ports and addresses does not count (upstream's order is a hash order this crate cannot
/// reproduce, and comparing it would cause spurious rewrites).
pub fn subsets_equal_ignoring_resource_version(
    a: Option<&[EndpointSubset]>,
    b: Option<&[EndpointSubset]>,
) -> bool {
    comparable_subsets(a) == comparable_subsets(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.to_string(),
            ..Default::default()
        }
    }

    fn addr_ref(ip: &str, name: Option<&str>, uid: Option<&str>) -> EndpointAddress {
        EndpointAddress {
            ip: ip.to_string(),
            target_ref: Some(ObjectReference {
                name: name.map(str::to_string),
                uid: uid.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn port(n: i32) -> EndpointPort {
        EndpointPort {
            port: n,
            ..Default::default()
        }
    }

    fn subset(
        ready: Vec<EndpointAddress>,
        not_ready: Vec<EndpointAddress>,
        ports: Vec<i32>,
    ) -> EndpointSubset {
        EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| ports.into_iter().map(port).collect()),
        }
    }

    /// As upstream's `TestPackSubsets`, which compares with `SortSubsets(expected)`: the
    /// expected ports in upstream's hash order.
    fn check(input: Vec<EndpointSubset>, mut expected: Vec<EndpointSubset>) {
        for subset in &mut expected {
            sort_ports_as_upstream(subset.ports.as_deref_mut().unwrap_or_default());
        }
        assert_eq!(repack_subsets(&input), expected);
    }

    /// Upstream's `portsByHash` order, as kube-controller-manager wrote it in the controller
    /// differential: `[http/8080, sctp/7777]` becomes `[sctp, http]` (MD5 d1ad… < fc51…).
    #[test]
    fn ports_come_out_in_upstreams_hash_order() {
        let named = |name: &str, port: i32, protocol: &str| EndpointPort {
            name: Some(name.into()),
            port,
            protocol: Some(protocol.into()),
            app_protocol: None,
        };
        let subset = EndpointSubset {
            addresses: Some(vec![addr("1.2.3.4")]),
            not_ready_addresses: None,
            ports: Some(vec![
                named("http", 8080, "TCP"),
                named("sctp", 7777, "SCTP"),
            ]),
        };
        let repacked = repack_subsets(&[subset]);
        let names: Vec<_> = repacked[0]
            .ports
            .iter()
            .flatten()
            .map(|p| p.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["sctp", "http"]);
    }

    #[test]
    fn pack_subsets_vectors() {
        check(
            vec![subset(vec![addr("1.2.3.4")], vec![], vec![111])],
            vec![subset(vec![addr("1.2.3.4")], vec![], vec![111])],
        );
        check(
            vec![subset(
                vec![addr("1.2.3.4")],
                vec![addr("5.6.7.8")],
                vec![111],
            )],
            vec![subset(
                vec![addr("1.2.3.4")],
                vec![addr("5.6.7.8")],
                vec![111],
            )],
        );
        check(
            vec![subset(
                vec![addr("1.2.3.4")],
                vec![addr("1.2.3.4")],
                vec![111],
            )],
            vec![subset(vec![], vec![addr("1.2.3.4")], vec![111])],
        );
        check(
            vec![subset(
                vec![addr("1.2.3.4"), addr("1.2.3.4")],
                vec![],
                vec![111],
            )],
            vec![subset(vec![addr("1.2.3.4")], vec![], vec![111])],
        );
        check(
            vec![subset(
                vec![
                    addr_ref("1.2.3.4", Some("foo"), None),
                    addr_ref("1.2.3.4", Some("bar"), None),
                ],
                vec![],
                vec![111],
            )],
            vec![subset(
                vec![addr_ref("1.2.3.4", Some("foo"), None)],
                vec![],
                vec![111],
            )],
        );
        check(
            vec![subset(vec![addr("1.2.3.4")], vec![], vec![111, 111])],
            vec![subset(vec![addr("1.2.3.4")], vec![], vec![111])],
        );
        check(
            vec![
                subset(vec![addr("1.2.3.4")], vec![], vec![111]),
                subset(vec![addr("1.2.3.4")], vec![], vec![222]),
            ],
            vec![subset(vec![addr("1.2.3.4")], vec![], vec![111, 222])],
        );
        let uid1 = addr_ref("1.2.3.4", None, Some("uid-1"));
        check(
            vec![
                subset(vec![uid1.clone()], vec![], vec![111]),
                subset(vec![], vec![uid1.clone()], vec![222]),
            ],
            vec![
                subset(vec![uid1.clone()], vec![], vec![111]),
                subset(vec![], vec![uid1.clone()], vec![222]),
            ],
        );
        check(
            vec![
                subset(vec![addr("1.2.3.4")], vec![], vec![111]),
                subset(vec![addr("5.6.7.8")], vec![], vec![111]),
            ],
            vec![subset(
                vec![addr("1.2.3.4"), addr("5.6.7.8")],
                vec![],
                vec![111],
            )],
        );
        let uid2 = addr_ref("1.2.3.4", None, Some("uid-2"));
        check(
            vec![
                subset(vec![uid1.clone()], vec![], vec![111]),
                subset(vec![uid2.clone()], vec![], vec![111]),
            ],
            vec![subset(vec![uid1, uid2], vec![], vec![111])],
        );
        check(
            vec![
                subset(vec![addr("1.2.3.4")], vec![], vec![111]),
                subset(vec![addr("1.2.3.5")], vec![], vec![222]),
                subset(vec![addr("1.2.3.6")], vec![], vec![111]),
                subset(vec![addr("1.2.3.5")], vec![], vec![333]),
            ],
            vec![
                subset(vec![addr("1.2.3.4"), addr("1.2.3.6")], vec![], vec![111]),
                subset(vec![addr("1.2.3.5")], vec![], vec![222, 333]),
            ],
        );
        check(vec![subset(vec![], vec![], vec![111])], vec![]);
    }

    #[test]
    fn port_less_subsets_survive_repacking() {
        check(
            vec![subset(vec![addr("1.2.3.4")], vec![], vec![])],
            vec![subset(vec![addr("1.2.3.4")], vec![], vec![])],
        );
    }

    #[test]
    fn equality_ignores_resource_version_only() {
        let with_rv = |rv: Option<&str>| {
            vec![EndpointSubset {
                addresses: Some(vec![EndpointAddress {
                    ip: "1.2.3.4".into(),
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some("pod0".into()),
                        resource_version: rv.map(str::to_string),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![port(8080)]),
                ..Default::default()
            }]
        };
        let base = with_rv(Some("1"));
        assert!(subsets_equal_ignoring_resource_version(
            Some(&base),
            Some(&with_rv(Some("2")))
        ));
        assert!(subsets_equal_ignoring_resource_version(
            Some(&base),
            Some(&with_rv(None))
        ));
        let mut other_ip = with_rv(Some("1"));
        if let Some(a) = other_ip[0].addresses.as_mut() {
            a[0].ip = "1.2.3.5".into();
        }
        assert!(!subsets_equal_ignoring_resource_version(
            Some(&base),
            Some(&other_ip)
        ));
        let mut other_port = with_rv(Some("1"));
        other_port[0].ports = Some(vec![port(8081)]);
        assert!(!subsets_equal_ignoring_resource_version(
            Some(&base),
            Some(&other_port)
        ));
        assert!(!subsets_equal_ignoring_resource_version(
            Some(&base),
            Some(&[])
        ));
        assert!(subsets_equal_ignoring_resource_version(None, Some(&[])));
    }
}
