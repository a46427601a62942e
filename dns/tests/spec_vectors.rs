//! The query → answer vectors of shared/spec/discovery.md §5 (CoreDNS's own unit tests:
//! fixture F1 of handler_test.go, F2 of reverse_test.go, the pod, case, apex and
//! ignore-empty-service rows), run against the pure core. Sections are compared as sets (CoreDNS's
//! order is its caches' iteration order; its tests sort too).

#![allow(clippy::field_reassign_with_default)] // the rows tweak one option of the default config each

use std::collections::BTreeSet;

use dns::objects::{EndpointAddress, PortInfo, ServiceInfo, ServiceKind, SliceInfo};
use dns::{DnsConfig, DnsIndex, PodMode, answer};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

fn port(name: &str, protocol: &str, port: i32) -> PortInfo {
    PortInfo {
        name: name.into(),
        protocol: protocol.into(),
        port,
    }
}

fn addr(ip: &str, hostname: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.into(),
        hostname: hostname.into(),
        target_ref_name: String::new(),
    }
}

fn service(ns: &str, name: &str, kind: ServiceKind, ports: Vec<PortInfo>) -> ServiceInfo {
    ServiceInfo {
        namespace: ns.into(),
        name: name.into(),
        kind,
        ports: if ports.is_empty() {
            vec![PortInfo::sentinel()]
        } else {
            ports
        },
    }
}

fn cluster_ip(ips: &[&str]) -> ServiceKind {
    ServiceKind::ClusterIp(ips.iter().map(|s| s.to_string()).collect())
}

fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    ports: Vec<PortInfo>,
    addresses: Vec<EndpointAddress>,
) -> SliceInfo {
    SliceInfo {
        namespace: ns.into(),
        name: name.into(),
        service: svc.into(),
        ports: if ports.is_empty() {
            vec![PortInfo::sentinel()]
        } else {
            ports
        },
        addresses,
    }
}

/// Fixture F1 (handler_test.go APIConnServeTest).
fn fixture_f1() -> DnsIndex {
    let mut index = DnsIndex::new();
    for ns in [
        "testns",
        "kube-system",
        "podns",
        "unexposedns",
        "svcns",
        "svc-nons",
    ] {
        index.apply_namespace(ns);
    }
    let http = || vec![port("http", "TCP", 80)];
    for svc in [
        service(
            "kube-system",
            "kubedns",
            cluster_ip(&["10.0.0.10"]),
            vec![port("dns", "UDP", 53)],
        ),
        service("testns", "svc1", cluster_ip(&["10.0.0.1"]), http()),
        service("testns", "svcempty", cluster_ip(&["10.0.0.1"]), http()),
        service("testns", "svc6", cluster_ip(&["1234:abcd::1"]), http()),
        service("testns", "hdls1", ServiceKind::Headless, vec![]),
        service("testns", "hdlsprtls", ServiceKind::Headless, vec![]),
        service(
            "testns",
            "external",
            ServiceKind::ExternalName("ext.interwebs.test".into()),
            http(),
        ),
        service(
            "testns",
            "external-to-service",
            ServiceKind::ExternalName("svc1.testns.svc.cluster.local.".into()),
            http(),
        ),
        service(
            "testns",
            "svc-dual-stack",
            cluster_ip(&["10.0.0.3", "10::3"]),
            http(),
        ),
        service("unexposedns", "svc1", cluster_ip(&["10.0.0.2"]), http()),
    ] {
        index.apply_service(svc);
    }
    for s in [
        slice(
            "kube-system",
            "kubedns-a",
            "kubedns",
            vec![port("dns", "UDP", 53)],
            vec![addr("172.0.0.100", "")],
        ),
        slice(
            "testns",
            "svc1-a",
            "svc1",
            http(),
            vec![addr("172.0.0.1", "ep1a")],
        ),
        slice("testns", "svcempty-a", "svcempty", http(), vec![]),
        slice(
            "testns",
            "hdls1-a",
            "hdls1",
            http(),
            vec![
                addr("172.0.0.2", ""),
                addr("172.0.0.3", ""),
                addr("172.0.0.4", "dup-name"),
                addr("172.0.0.5", "dup-name"),
                addr("5678:abcd::1", ""),
                addr("5678:abcd::2", ""),
            ],
        ),
        slice(
            "testns",
            "hdlsprtls-a",
            "hdlsprtls",
            vec![],
            vec![addr("172.0.0.20", "")],
        ),
    ] {
        index.apply_slice(s);
    }
    index.set_serial(1499347823);
    index.set_synced(true);
    index
}

/// One expected response: sections as `name ttl TYPE rdata` strings, `~` standing for
/// `.testns.svc.cluster.local.`.
struct Case {
    id: &'static str,
    qname: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    answer: &'static [&'static str],
    authority: &'static [&'static str],
    additional: &'static [&'static str],
}

const SOA: &str = "cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 5";

fn show(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| {
            format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data)
                .replace(".testns.svc.cluster.local.", "~")
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn check(config: &DnsConfig, index: &DnsIndex, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let name = Name::from_ascii(case.qname).expect("test name");
        let got = answer(config, index, &name, case.qtype, DNSClass::IN);
        let ok = got.rcode == case.rcode
            && got.flags.authoritative
            && show(&got.answers) == set(case.answer)
            && show(&got.authority) == set(case.authority)
            && show(&got.additional) == set(case.additional);
        if !ok {
            failures.push(format!(
                "{} {} {}: got {} answer {:?} authority {:?} additional {:?}",
                case.id,
                case.qname,
                case.qtype,
                got.rcode,
                show(&got.answers),
                show(&got.authority),
                show(&got.additional)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

macro_rules! case {
    ($id:literal, $q:literal, $t:ident, $rc:ident, [$($a:expr),*], [$($n:expr),*], [$($x:expr),*]) => {
        Case {
            id: $id,
            qname: $q,
            qtype: RecordType::$t,
            rcode: ResponseCode::$rc,
            answer: &[$($a),*],
            authority: &[$($n),*],
            additional: &[$($x),*],
        }
    };
}

#[test]
fn f1_serve_dns_rows() {
    let mut config = DnsConfig::default();
    config.namespaces.insert("testns".into());
    config.pods = PodMode::Disabled;
    let index = fixture_f1();
    check(
        &config,
        &index,
        &[
            case!(
                "H1",
                "svc1.testns.svc.cluster.local.",
                A,
                NoError,
                ["svc1~ 5 A 10.0.0.1"],
                [],
                []
            ),
            case!(
                "H2",
                "svcempty.testns.svc.cluster.local.",
                A,
                NoError,
                ["svcempty~ 5 A 10.0.0.1"],
                [],
                []
            ),
            case!(
                "H3",
                "svc1.testns.svc.cluster.local.",
                SRV,
                NoError,
                ["svc1~ 5 SRV 0 100 80 svc1~"],
                [],
                ["svc1~ 5 A 10.0.0.1"]
            ),
            case!(
                "H4",
                "svc6.testns.svc.cluster.local.",
                SRV,
                NoError,
                ["svc6~ 5 SRV 0 100 80 svc6~"],
                [],
                ["svc6~ 5 AAAA 1234:abcd::1"]
            ),
            case!(
                "H5",
                "_http._tcp.svc1.testns.svc.cluster.local.",
                SRV,
                NoError,
                ["_http._tcp.svc1~ 5 SRV 0 100 80 svc1~"],
                [],
                ["svc1~ 5 A 10.0.0.1"]
            ),
            case!(
                "H6",
                "hdls1.testns.svc.cluster.local.",
                A,
                NoError,
                [
                    "hdls1~ 5 A 172.0.0.2",
                    "hdls1~ 5 A 172.0.0.3",
                    "hdls1~ 5 A 172.0.0.4",
                    "hdls1~ 5 A 172.0.0.5"
                ],
                [],
                []
            ),
            case!(
                "H7",
                "hdlsprtls.testns.svc.cluster.local.",
                A,
                NoError,
                ["hdlsprtls~ 5 A 172.0.0.20"],
                [],
                []
            ),
            case!(
                "H8",
                "svc1.testns.svc.cluster.local.",
                AAAA,
                NoError,
                [],
                [SOA],
                []
            ),
            case!(
                "H9",
                "svc0.testns.svc.cluster.local.",
                AAAA,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "H10",
                "svc0.testns.svc.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "H11",
                "svc0.svc-nons.svc.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "H12",
                "dns-version.cluster.local.",
                TXT,
                NoError,
                ["dns-version.cluster.local. 28800 TXT 1.1.0"],
                [],
                []
            ),
            case!(
                "H13",
                "svc1.testns.svc.cluster.local.",
                TXT,
                NoError,
                [],
                [SOA],
                []
            ),
            case!(
                "H14",
                "svc0.svc-nons.svc.cluster.local.",
                TXT,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "H15",
                "bogusendpoint.hdls1.testns.svc.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "H16",
                "bogusendpoint.svc0.testns.svc.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "H17",
                "svc6.testns.svc.cluster.local.",
                AAAA,
                NoError,
                ["svc6~ 5 AAAA 1234:abcd::1"],
                [],
                []
            ),
            case!(
                "H18",
                "_http._tcp.svc6.testns.svc.cluster.local.",
                SRV,
                NoError,
                ["_http._tcp.svc6~ 5 SRV 0 100 80 svc6~"],
                [],
                ["svc6~ 5 AAAA 1234:abcd::1"]
            ),
            case!(
                "H19",
                "hdls1.testns.svc.cluster.local.",
                AAAA,
                NoError,
                ["hdls1~ 5 AAAA 5678:abcd::1", "hdls1~ 5 AAAA 5678:abcd::2"],
                [],
                []
            ),
            case!("H20", "svc.cluster.local.", A, NoError, [], [SOA], []),
            case!("H21", "pod.cluster.local.", A, NoError, [], [SOA], []),
            case!(
                "H22",
                "testns.svc.cluster.local.",
                A,
                NoError,
                [],
                [SOA],
                []
            ),
            case!("H23", "svc.cluster.local.", NS, NoError, [], [SOA], []),
            case!(
                "H24",
                "testns.svc.cluster.local.",
                NS,
                NoError,
                [],
                [SOA],
                []
            ),
            case!("H25", "foo.cluster.local.", NS, NXDomain, [], [SOA], []),
            case!("H26", "foo.svc.cluster.local.", NS, NXDomain, [], [SOA], []),
            case!(
                "H27",
                "svc-dual-stack.testns.svc.cluster.local.",
                A,
                NoError,
                ["svc-dual-stack~ 5 A 10.0.0.3"],
                [],
                []
            ),
            case!(
                "H28",
                "svc-dual-stack.testns.svc.cluster.local.",
                AAAA,
                NoError,
                ["svc-dual-stack~ 5 AAAA 10::3"],
                [],
                []
            ),
            case!(
                "H29",
                "svc-dual-stack.testns.svc.cluster.local.",
                SRV,
                NoError,
                ["svc-dual-stack~ 5 SRV 0 50 80 svc-dual-stack~"],
                [],
                [
                    "svc-dual-stack~ 5 A 10.0.0.3",
                    "svc-dual-stack~ 5 AAAA 10::3"
                ]
            ),
            case!(
                "H30",
                "svc1.testns.svc.cluster.local.",
                SOA,
                NoError,
                [],
                [SOA],
                []
            ),
            case!(
                "H31",
                "endpoint.external.testns.svc.cluster.local.",
                CNAME,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "H32",
                "subdomain.subdomain.external.testns.svc.cluster.local.",
                CNAME,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "H33",
                "_http._tcp.hdls1.testns.svc.cluster.local.",
                SRV,
                NoError,
                [
                    "_http._tcp.hdls1~ 5 SRV 0 16 80 172-0-0-2.hdls1~",
                    "_http._tcp.hdls1~ 5 SRV 0 16 80 172-0-0-3.hdls1~",
                    "_http._tcp.hdls1~ 5 SRV 0 16 80 5678-abcd--1.hdls1~",
                    "_http._tcp.hdls1~ 5 SRV 0 16 80 5678-abcd--2.hdls1~",
                    "_http._tcp.hdls1~ 5 SRV 0 16 80 dup-name.hdls1~"
                ],
                [],
                [
                    "172-0-0-2.hdls1~ 5 A 172.0.0.2",
                    "172-0-0-3.hdls1~ 5 A 172.0.0.3",
                    "5678-abcd--1.hdls1~ 5 AAAA 5678:abcd::1",
                    "5678-abcd--2.hdls1~ 5 AAAA 5678:abcd::2",
                    "dup-name.hdls1~ 5 A 172.0.0.4",
                    "dup-name.hdls1~ 5 A 172.0.0.5"
                ]
            ),
            case!(
                "H34",
                "5678-abcd--2.hdls1.testns.svc.cluster.local.",
                AAAA,
                NoError,
                ["5678-abcd--2.hdls1~ 5 AAAA 5678:abcd::2"],
                [],
                []
            ),
            case!(
                "H35",
                "5678-abcd--1.hdls1.testns.svc.cluster.local.",
                AAAA,
                NoError,
                ["5678-abcd--1.hdls1~ 5 AAAA 5678:abcd::1"],
                [],
                []
            ),
            case!(
                "H36",
                "172-0-0-20.hdlsprtls.testns.svc.cluster.local.",
                A,
                NoError,
                ["172-0-0-20.hdlsprtls~ 5 A 172.0.0.20"],
                [],
                []
            ),
            case!(
                "H37",
                "172-0-0-2.hdls1.testns.svc.cluster.local.",
                A,
                NoError,
                ["172-0-0-2.hdls1~ 5 A 172.0.0.2"],
                [],
                []
            ),
            case!(
                "H38",
                "172-0-0-3.hdls1.testns.svc.cluster.local.",
                A,
                NoError,
                ["172-0-0-3.hdls1~ 5 A 172.0.0.3"],
                [],
                []
            ),
            case!(
                "H39",
                "dup-name.hdls1.testns.svc.cluster.local.",
                A,
                NoError,
                [
                    "dup-name.hdls1~ 5 A 172.0.0.4",
                    "dup-name.hdls1~ 5 A 172.0.0.5"
                ],
                [],
                []
            ),
            case!(
                "H40",
                "external.testns.svc.cluster.local.",
                CNAME,
                NoError,
                ["external~ 5 CNAME ext.interwebs.test."],
                [],
                []
            ),
            // H41 differs by design: svcplane has no upstream to chase ext.interwebs.test with,
            // so the CNAME goes alone (CoreDNS appends what its upstream says).
            case!(
                "H41",
                "external.testns.svc.cluster.local.",
                A,
                NoError,
                ["external~ 5 CNAME ext.interwebs.test."],
                [],
                []
            ),
            case!(
                "H42",
                "external-to-service.testns.svc.cluster.local.",
                A,
                NoError,
                ["external-to-service~ 5 CNAME svc1~", "svc1~ 5 A 10.0.0.1"],
                [],
                []
            ),
        ],
    );
}

#[test]
fn h43_not_synced_is_servfail() {
    let config = DnsConfig::default();
    let mut index = fixture_f1();
    index.set_synced(false);
    check(
        &config,
        &index,
        &[
            case!(
                "H43",
                "svc0.testns.svc.cluster.local.",
                A,
                ServFail,
                [],
                [SOA],
                []
            ),
            // Names that exist still answer.
            case!(
                "H43b",
                "svc1.testns.svc.cluster.local.",
                A,
                NoError,
                ["svc1~ 5 A 10.0.0.1"],
                [],
                []
            ),
        ],
    );
}

#[test]
fn h44_missing_namespace_without_namespaces_option() {
    let config = DnsConfig::default();
    check(
        &config,
        &fixture_f1(),
        &[case!(
            "H44",
            "svc1.nsnoexist.svc.cluster.local.",
            A,
            NXDomain,
            [],
            [SOA],
            []
        )],
    );
}

#[test]
fn pod_rows() {
    let index = fixture_f1();
    let mut config = DnsConfig::default();
    config.pods = PodMode::Disabled;
    check(
        &config,
        &index,
        &[
            case!(
                "P1",
                "10-240-0-1.podns.pod.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "P2",
                "172-0-0-2.podns.pod.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
        ],
    );
    config.pods = PodMode::Insecure;
    check(
        &config,
        &index,
        &[
            case!(
                "P3",
                "10-240-0-1.podns.pod.cluster.local.",
                A,
                NoError,
                ["10-240-0-1.podns.pod.cluster.local. 5 A 10.240.0.1"],
                [],
                []
            ),
            case!(
                "P4",
                "172-0-0-2.podns.pod.cluster.local.",
                A,
                NoError,
                ["172-0-0-2.podns.pod.cluster.local. 5 A 172.0.0.2"],
                [],
                []
            ),
            case!(
                "P5",
                "blah.podns.pod.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "P6",
                "blah.podns.pod.cluster.local.",
                AAAA,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "P7",
                "blah.podns.pod.cluster.local.",
                HINFO,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "P8",
                "blah.pod-nons.pod.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!("P9", "podns.pod.cluster.local.", A, NoError, [], [SOA], []),
            case!(
                "P3b",
                "10-240-0-1.podns.pod.cluster.local.",
                AAAA,
                NoError,
                [],
                [SOA],
                []
            ),
            case!(
                "P3c",
                "fd00--1.podns.pod.cluster.local.",
                AAAA,
                NoError,
                ["fd00--1.podns.pod.cluster.local. 5 AAAA fd00::1"],
                [],
                []
            ),
        ],
    );
    config.pods = PodMode::Verified;
    let mut index = index;
    index.apply_pod(dns::objects::PodInfo {
        namespace: "podns".into(),
        name: "foo".into(),
        ips: vec!["10.240.0.1".into()],
    });
    check(
        &config,
        &index,
        &[
            case!(
                "P10",
                "10-240-0-1.podns.pod.cluster.local.",
                A,
                NoError,
                ["10-240-0-1.podns.pod.cluster.local. 5 A 10.240.0.1"],
                [],
                []
            ),
            case!("P11", "podns.pod.cluster.local.", A, NoError, [], [SOA], []),
            case!("P12", "svcns.svc.cluster.local.", A, NoError, [], [SOA], []),
            case!(
                "P13",
                "pod-nons.pod.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "P14",
                "172-0-0-2.podns.pod.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
        ],
    );
}

#[test]
fn case_apex_and_empty_service_rows() {
    let index = fixture_f1();
    let mut config = DnsConfig::default();
    config.ignore_empty_service = true;
    const MIXED_SOA: &str = "ClUsTeR.lOcAl. 5 SOA ns.dns.ClUsTeR.lOcAl. hostmaster.ClUsTeR.lOcAl. 1499347823 7200 1800 86400 5";
    const C4_SOA: &str = "Cluster.local. 5 SOA ns.dns.Cluster.local. hostmaster.Cluster.local. 1499347823 7200 1800 86400 5";
    check(
        &config,
        &index,
        &[
            case!(
                "C1",
                "not-a-service.testns.svc.ClUsTeR.lOcAl.",
                A,
                NXDomain,
                [],
                [MIXED_SOA],
                []
            ),
            case!(
                "C2",
                "SvC1.TeStNs.SvC.cLuStEr.LoCaL.",
                A,
                NoError,
                ["SvC1.TeStNs.SvC.cLuStEr.LoCaL. 5 A 10.0.0.1"],
                [],
                []
            ),
            case!(
                "C3",
                "_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.",
                SRV,
                NoError,
                [
                    "_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL. 5 SRV 0 100 80 svc1.testns.svc.cLuStEr.LoCaL."
                ],
                [],
                ["svc1.testns.svc.cLuStEr.LoCaL. 5 A 10.0.0.1"]
            ),
            case!("C4", "Cluster.local.", SOA, NoError, [C4_SOA], [], []),
            case!(
                "E1",
                "svcempty.testns.svc.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "E2",
                "external.testns.svc.cluster.local.",
                CNAME,
                NoError,
                ["external~ 5 CNAME ext.interwebs.test."],
                [],
                []
            ),
        ],
    );
    // kubernetes_apex_test.go, bound to 127.0.0.1: loopback addresses are left out of nsAddrs
    // (CoreDNS's boundIPs), so the apex NS has no data. The spec's A3 (NS ns.dns + A 127.0.0.1)
    // comes from a fake that bypasses boundIPs; a routable bound address gives it.
    let mut config = DnsConfig::default();
    config.bound_ips = vec!["127.0.0.1".parse().unwrap()];
    check(
        &config,
        &index,
        &[
            case!("A1", "cluster.local.", SOA, NoError, [SOA], [], []),
            case!("A2", "cluster.local.", HINFO, NoError, [], [SOA], []),
            case!("A3-loopback", "cluster.local.", NS, NoError, [], [SOA], []),
            case!("A4", "cluster.local.", A, NoError, [], [SOA], []),
            case!("A5", "cluster.local.", AAAA, NoError, [], [SOA], []),
            case!("A6", "cluster.local.", SRV, NoError, [], [SOA], []),
        ],
    );
    config.bound_ips = vec!["192.0.2.53".parse().unwrap()];
    check(
        &config,
        &index,
        &[
            case!(
                "A3",
                "cluster.local.",
                NS,
                NoError,
                ["cluster.local. 5 NS ns.dns.cluster.local."],
                [],
                ["ns.dns.cluster.local. 5 A 192.0.2.53"]
            ),
            case!(
                "B2",
                "ns.dns.cluster.local.",
                A,
                NoError,
                ["ns.dns.cluster.local. 5 A 192.0.2.53"],
                [],
                []
            ),
            case!("B2b", "ns.dns.cluster.local.", AAAA, NoError, [], [SOA], []),
        ],
    );
    // B4: the bound address backs the DNS Service: NS names it.
    config.bound_ips = vec!["172.0.0.100".parse().unwrap()];
    check(
        &config,
        &index,
        &[case!(
            "B4",
            "cluster.local.",
            NS,
            NoError,
            ["cluster.local. 5 NS kubedns.kube-system.svc.cluster.local."],
            [],
            ["kubedns.kube-system.svc.cluster.local. 5 A 10.0.0.10"]
        )],
    );
}

#[test]
fn endpoint_names_answer_for_cluster_ip_services() {
    // B1: the endpoint's IP, not the ClusterIP.
    check(
        &DnsConfig::default(),
        &fixture_f1(),
        &[case!(
            "B1",
            "ep1a.svc1.testns.svc.cluster.local.",
            A,
            NoError,
            ["ep1a.svc1~ 5 A 172.0.0.1"],
            [],
            []
        )],
    );
}

/// Fixture F2 (reverse_test.go).
fn fixture_f2() -> DnsIndex {
    let mut index = DnsIndex::new();
    index.apply_namespace("testns");
    index.apply_service(service(
        "testns",
        "svc1",
        cluster_ip(&["192.168.1.100"]),
        vec![port("http", "TCP", 80)],
    ));
    let http = || vec![port("http", "TCP", 80)];
    index.apply_slice(slice(
        "testns",
        "svc1-slice1",
        "svc1",
        http(),
        vec![addr("10.0.0.100", "ep1a"), addr("10.0.0.99", "double-ep")],
    ));
    index.apply_slice(slice(
        "testns",
        "svc1-slice2",
        "svc1",
        http(),
        vec![
            addr("1234:abcd::1", "ep1b"),
            addr("fd00:77:30::a", "ip6svc1ex"),
            addr("fd00:77:30::2:9ba6", "ip6svc1in"),
        ],
    ));
    index.apply_slice(slice(
        "testns",
        "svc1-ccccc",
        "svc1",
        http(),
        vec![addr("10.0.0.100", "ep1a")],
    ));
    index.apply_slice(slice(
        "testns",
        "svc2-slice1",
        "svc2",
        http(),
        vec![addr("10.0.0.99", "double-ep")],
    ));
    index.set_serial(1499347823);
    index.set_synced(true);
    index
}

#[test]
fn f2_reverse_rows() {
    let mut config = DnsConfig::default();
    for zone in [
        "0.10.in-addr.arpa",
        "168.192.in-addr.arpa",
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa",
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa",
    ] {
        config.zones.push(dns::config::parse_zone(zone).unwrap());
    }
    const R6_SOA: &str = "0.10.in-addr.arpa. 5 SOA ns.dns.0.10.in-addr.arpa. hostmaster.0.10.in-addr.arpa. 1499347823 7200 1800 86400 5";
    check(
        &config,
        &fixture_f2(),
        &[
            case!(
                "R1",
                "100.0.0.10.in-addr.arpa.",
                PTR,
                NoError,
                ["100.0.0.10.in-addr.arpa. 5 PTR ep1a.svc1~"],
                [],
                []
            ),
            case!(
                "R2",
                "100.1.168.192.in-addr.arpa.",
                PTR,
                NoError,
                ["100.1.168.192.in-addr.arpa. 5 PTR svc1~"],
                [],
                []
            ),
            case!(
                "R3",
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.",
                PTR,
                NoError,
                [
                    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 PTR ep1b.svc1~"
                ],
                [],
                []
            ),
            case!(
                "R4",
                "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa.",
                PTR,
                NoError,
                [
                    "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa. 5 PTR ip6svc1ex.svc1~"
                ],
                [],
                []
            ),
            case!(
                "R5",
                "6.a.b.9.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa.",
                PTR,
                NoError,
                [
                    "6.a.b.9.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa. 5 PTR ip6svc1in.svc1~"
                ],
                [],
                []
            ),
            case!(
                "R6",
                "101.0.0.10.in-addr.arpa.",
                PTR,
                NXDomain,
                [],
                [R6_SOA],
                []
            ),
            case!(
                "R7",
                "example.org.cluster.local.",
                PTR,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "R8",
                "svc1.testns.svc.cluster.local.",
                PTR,
                NoError,
                [],
                [SOA],
                []
            ),
            case!(
                "R9",
                "svc1.testns.svc.0.10.in-addr.arpa.",
                A,
                NXDomain,
                [],
                [R6_SOA],
                []
            ),
            case!(
                "R10",
                "100.0.0.10.cluster.local.",
                PTR,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "R11",
                "99.0.0.10.in-addr.arpa.",
                PTR,
                NoError,
                [
                    "99.0.0.10.in-addr.arpa. 5 PTR double-ep.svc1~",
                    "99.0.0.10.in-addr.arpa. 5 PTR double-ep.svc2~"
                ],
                [],
                []
            ),
        ],
    );
}

#[test]
fn non_in_class_and_foreign_names_are_refused() {
    let config = DnsConfig::default();
    let index = fixture_f1();
    let name = Name::from_ascii("svc1.testns.svc.cluster.local.").unwrap();
    let got = answer(&config, &index, &name, RecordType::A, DNSClass::CH);
    assert_eq!(got.rcode, ResponseCode::Refused);
    let other = Name::from_ascii("example.org.").unwrap();
    let got = answer(&config, &index, &other, RecordType::A, DNSClass::IN);
    assert_eq!(got.rcode, ResponseCode::Refused);
    assert!(!got.flags.authoritative);
    // AXFR is REFUSED inside the zone too (no transfer plugin).
    let got = answer(&config, &index, &name, RecordType::AXFR, DNSClass::IN);
    assert_eq!(got.rcode, ResponseCode::Refused);
}

#[test]
fn trailing_dot_is_optional() {
    let config = DnsConfig::default();
    let index = fixture_f1();
    let name = Name::from_ascii("svc1.testns.svc.cluster.local").unwrap();
    let got = answer(&config, &index, &name, RecordType::A, DNSClass::IN);
    assert_eq!(show(&got.answers), set(&["svc1~ 5 A 10.0.0.1"]));
}

#[test]
fn ttl_is_configurable_and_soa_ttl_capped() {
    let config = DnsConfig::new("cluster.local", 600).unwrap();
    let index = fixture_f1();
    let name = Name::from_ascii("svc1.testns.svc.cluster.local.").unwrap();
    let got = answer(&config, &index, &name, RecordType::A, DNSClass::IN);
    assert_eq!(show(&got.answers), set(&["svc1~ 600 A 10.0.0.1"]));
    let got = answer(&config, &index, &name, RecordType::AAAA, DNSClass::IN);
    assert_eq!(
        show(&got.authority),
        set(&[
            "cluster.local. 300 SOA ns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 600"
        ])
    );
}

#[test]
fn headless_without_ready_addresses_is_nxdomain_for_every_type() {
    let config = DnsConfig::default();
    let mut index = fixture_f1();
    index.apply_service(service(
        "testns",
        "empty-headless",
        ServiceKind::Headless,
        vec![port("http", "TCP", 80)],
    ));
    index.apply_slice(slice(
        "testns",
        "empty-headless-a",
        "empty-headless",
        vec![port("http", "TCP", 80)],
        vec![],
    ));
    check(
        &config,
        &index,
        &[
            case!(
                "2.2a",
                "empty-headless.testns.svc.cluster.local.",
                A,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "2.2b",
                "empty-headless.testns.svc.cluster.local.",
                SRV,
                NXDomain,
                [],
                [SOA],
                []
            ),
            case!(
                "2.2c",
                "empty-headless.testns.svc.cluster.local.",
                TXT,
                NXDomain,
                [],
                [SOA],
                []
            ),
            // Non-apex SOA is NODATA without an existence check.
            case!(
                "2.2d",
                "empty-headless.testns.svc.cluster.local.",
                SOA,
                NoError,
                [],
                [SOA],
                []
            ),
            case!(
                "3.1",
                "nothing-here.testns.svc.cluster.local.",
                SOA,
                NoError,
                [],
                [SOA],
                []
            ),
        ],
    );
}

#[test]
fn records_for_a_service_are_what_the_server_answers() {
    let config = DnsConfig::default();
    let index = fixture_f1();
    let hdls1 = index.service("testns", "hdls1").unwrap().clone();
    let slices: Vec<SliceInfo> = index
        .slices_of("testns", "hdls1")
        .into_iter()
        .cloned()
        .collect();
    let sets = dns::records_for_service(&config, &hdls1, &slices);
    let shown: Vec<String> = sets
        .iter()
        .map(|s| {
            let answers: Vec<String> = show(&s.answers).into_iter().collect();
            format!("{} {} [{}]", s.name, s.qtype, answers.join(", "))
                .replace(".testns.svc.cluster.local.", "~")
        })
        .collect();
    assert_eq!(
        shown,
        [
            "hdls1~ A [hdls1~ 5 A 172.0.0.2, hdls1~ 5 A 172.0.0.3, hdls1~ 5 A 172.0.0.4, hdls1~ 5 A 172.0.0.5]",
            "hdls1~ AAAA [hdls1~ 5 AAAA 5678:abcd::1, hdls1~ 5 AAAA 5678:abcd::2]",
            "hdls1~ SRV [hdls1~ 5 SRV 0 16 80 172-0-0-2.hdls1~, hdls1~ 5 SRV 0 16 80 172-0-0-3.hdls1~, hdls1~ 5 SRV 0 16 80 5678-abcd--1.hdls1~, hdls1~ 5 SRV 0 16 80 5678-abcd--2.hdls1~, hdls1~ 5 SRV 0 16 80 dup-name.hdls1~]",
            "_http._tcp.hdls1~ SRV [_http._tcp.hdls1~ 5 SRV 0 16 80 172-0-0-2.hdls1~, _http._tcp.hdls1~ 5 SRV 0 16 80 172-0-0-3.hdls1~, _http._tcp.hdls1~ 5 SRV 0 16 80 5678-abcd--1.hdls1~, _http._tcp.hdls1~ 5 SRV 0 16 80 5678-abcd--2.hdls1~, _http._tcp.hdls1~ 5 SRV 0 16 80 dup-name.hdls1~]",
            "172-0-0-2.hdls1~ A [172-0-0-2.hdls1~ 5 A 172.0.0.2]",
            "172-0-0-2.hdls1~ SRV [172-0-0-2.hdls1~ 5 SRV 0 100 80 172-0-0-2.hdls1~]",
            "172-0-0-3.hdls1~ A [172-0-0-3.hdls1~ 5 A 172.0.0.3]",
            "172-0-0-3.hdls1~ SRV [172-0-0-3.hdls1~ 5 SRV 0 100 80 172-0-0-3.hdls1~]",
            "5678-abcd--1.hdls1~ AAAA [5678-abcd--1.hdls1~ 5 AAAA 5678:abcd::1]",
            "5678-abcd--1.hdls1~ SRV [5678-abcd--1.hdls1~ 5 SRV 0 100 80 5678-abcd--1.hdls1~]",
            "5678-abcd--2.hdls1~ AAAA [5678-abcd--2.hdls1~ 5 AAAA 5678:abcd::2]",
            "5678-abcd--2.hdls1~ SRV [5678-abcd--2.hdls1~ 5 SRV 0 100 80 5678-abcd--2.hdls1~]",
            "dup-name.hdls1~ A [dup-name.hdls1~ 5 A 172.0.0.4, dup-name.hdls1~ 5 A 172.0.0.5]",
            "dup-name.hdls1~ SRV [dup-name.hdls1~ 5 SRV 0 50 80 dup-name.hdls1~]",
            "2.0.0.172.in-addr.arpa. PTR [2.0.0.172.in-addr.arpa. 5 PTR 172-0-0-2.hdls1~]",
            "3.0.0.172.in-addr.arpa. PTR [3.0.0.172.in-addr.arpa. 5 PTR 172-0-0-3.hdls1~]",
            "4.0.0.172.in-addr.arpa. PTR [4.0.0.172.in-addr.arpa. 5 PTR dup-name.hdls1~]",
            "5.0.0.172.in-addr.arpa. PTR [5.0.0.172.in-addr.arpa. 5 PTR dup-name.hdls1~]",
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa. PTR [1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa. 5 PTR 5678-abcd--1.hdls1~]",
            "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa. PTR [2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa. 5 PTR 5678-abcd--2.hdls1~]",
        ]
    );

    // A ClusterIP Service: its address, SRV per port, its endpoints' names, PTR of the ClusterIP.
    let svc1 = index.service("testns", "svc1").unwrap().clone();
    let slices: Vec<SliceInfo> = index
        .slices_of("testns", "svc1")
        .into_iter()
        .cloned()
        .collect();
    let sets = dns::records_for_service(&config, &svc1, &slices);
    let names: Vec<String> = sets
        .iter()
        .map(|s| format!("{} {}", s.name, s.qtype).replace(".testns.svc.cluster.local.", "~"))
        .collect();
    assert_eq!(
        names,
        [
            "svc1~ A",
            "svc1~ SRV",
            "_http._tcp.svc1~ SRV",
            "ep1a.svc1~ A",
            "ep1a.svc1~ SRV",
            "1.0.0.10.in-addr.arpa. PTR",
            "1.0.0.172.in-addr.arpa. PTR"
        ]
    );
    assert_eq!(show(&sets[1].additional), set(&["svc1~ 5 A 10.0.0.1"]));

    // An ExternalName Service: one CNAME.
    let external = index.service("testns", "external").unwrap().clone();
    let sets = dns::records_for_service(&config, &external, &[]);
    assert_eq!(sets.len(), 1);
    assert_eq!(
        show(&sets[0].answers),
        set(&["external~ 5 CNAME ext.interwebs.test."])
    );
}

#[test]
fn records_for_service_objects_reads_the_api_objects() {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}))
    .unwrap();
    let slice = |name: &str, service: &str| -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop",
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.0.3"], "conditions": {"ready": true}}]}))
        .unwrap()
    };
    let sets = dns::records_for_service_objects(
        &DnsConfig::default(),
        &service,
        &[slice("web-1", "web"), slice("other-1", "other")],
    );
    let lines: Vec<String> = sets
        .iter()
        .flat_map(|s| s.answers.iter().map(|r| r.to_string()))
        .collect();
    assert_eq!(
        lines,
        [
            "web.shop.svc.cluster.local. 5 IN A 10.96.0.7",
            "web.shop.svc.cluster.local. 5 IN SRV 0 100 80 web.shop.svc.cluster.local.",
            "_http._tcp.web.shop.svc.cluster.local. 5 IN SRV 0 100 80 web.shop.svc.cluster.local.",
            "10-244-0-3.web.shop.svc.cluster.local. 5 IN A 10.244.0.3",
            "10-244-0-3.web.shop.svc.cluster.local. 5 IN SRV 0 100 8080 10-244-0-3.web.shop.svc.cluster.local.",
            "7.0.96.10.in-addr.arpa. 5 IN PTR web.shop.svc.cluster.local.",
            "3.0.244.10.in-addr.arpa. 5 IN PTR 10-244-0-3.web.shop.svc.cluster.local.",
        ]
    );
}
