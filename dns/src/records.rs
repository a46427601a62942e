//! Every record one Service gets, for `svcplane explain service`: the names it answers to and
//! what each answers, computed by asking [`answer`] itself, so that the list can never drift
//! from what the server says.

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use crate::answer::{answer, endpoint_hostname, parse_go_ip, prepend};
use crate::config::DnsConfig;
use crate::index::DnsIndex;
use crate::objects::{ServiceInfo, ServiceKind, SliceInfo};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// One name a Service answers to, with the records of one type there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecordSet {
    /// The name asked, e.g. `_http._tcp.web.default.svc.cluster.local.`.
    pub name: Name,
    /// The type asked.
    pub qtype: RecordType,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The additional section (SRV targets' addresses).
    pub additional: Vec<Record>,
}

/// The records `service` gets from cluster DNS, given its EndpointSlices: A/AAAA and SRV at its
/// name, SRV per named port, A/AAAA per endpoint name (headless), CNAME (ExternalName) and PTR
/// per ClusterIP and per endpoint address. Sets without data are left out; the order is fixed
/// (names as listed above, types A, AAAA, CNAME, SRV, PTR).
pub fn records_for_service(
    config: &DnsConfig,
    service: &ServiceInfo,
    slices: &[SliceInfo],
) -> Vec<ServiceRecordSet> {
    let mut index = DnsIndex::new();
    index.set_synced(true);
    index.apply_namespace(&service.namespace);
    index.apply_service(service.clone());
    for slice in slices {
        index.apply_slice(slice.clone());
    }
    let Some(zone) = config.primary_zone() else {
        return Vec::new();
    };
    let base = [service.name.as_str(), service.namespace.as_str(), "svc"];
    const ADDRESSES_AND_SRV: &[RecordType] = &[
        RecordType::A,
        RecordType::AAAA,
        RecordType::CNAME,
        RecordType::SRV,
    ];
    // Port names answer A/AAAA too (as CoreDNS does), but what they are for is SRV.
    const SRV_ONLY: &[RecordType] = &[RecordType::SRV];
    let mut names: Vec<(Name, &[RecordType])> = prepend(&base, zone)
        .into_iter()
        .map(|n| (n, ADDRESSES_AND_SRV))
        .collect();
    // Port and protocol names come from the Service for a ClusterIP, from the slices otherwise.
    let mut ports = BTreeSet::new();
    let mut reverse: BTreeSet<IpAddr> = BTreeSet::new();
    match &service.kind {
        ServiceKind::ClusterIp(ips) => {
            for port in &service.ports {
                ports.insert((port.name.to_lowercase(), port.protocol.to_lowercase()));
            }
            reverse.extend(ips.iter().filter_map(|ip| parse_go_ip(ip)));
        }
        ServiceKind::Headless => {
            for slice in slices {
                for port in &slice.ports {
                    ports.insert((port.name.to_lowercase(), port.protocol.to_lowercase()));
                }
            }
        }
        ServiceKind::ExternalName(_) => {}
    }
    for (port, protocol) in ports {
        if port.is_empty() || protocol.is_empty() {
            continue;
        }
        let port = format!("_{port}");
        let protocol = format!("_{protocol}");
        let name = prepend(&[&port, &protocol, base[0], base[1], base[2]], zone);
        names.extend(name.map(|n| (n, SRV_ONLY)));
    }
    if !matches!(service.kind, ServiceKind::ExternalName(_)) {
        let mut endpoints = BTreeSet::new();
        for slice in slices {
            for address in &slice.addresses {
                endpoints.insert(endpoint_hostname(address, config.endpoint_pod_names));
                reverse.extend(parse_go_ip(&address.ip));
            }
        }
        // Endpoint names answer for ClusterIP Services too, but say most for headless ones.
        for endpoint in endpoints {
            names.extend(
                prepend(&[&endpoint, base[0], base[1], base[2]], zone)
                    .map(|n| (n, ADDRESSES_AND_SRV)),
            );
        }
    }
    let mut sets = Vec::new();
    for (name, qtypes) in &names {
        for qtype in qtypes.iter() {
            push_set(&mut sets, config, &index, name, *qtype);
        }
    }
    for ip in reverse {
        let reverse_name = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(v6) => {
                let mut nibbles = String::new();
                for byte in v6.octets().iter().rev() {
                    nibbles.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
                }
                format!("{nibbles}ip6.arpa.")
            }
        };
        if let Ok(name) = Name::from_ascii(&reverse_name) {
            push_set(&mut sets, config, &index, &name, RecordType::PTR);
        }
    }
    sets
}

/// [`records_for_service`] from the API objects: the Service and the EndpointSlices labelled
/// with its name (others are ignored). Empty for a Service without a name or namespace.
pub fn records_for_service_objects(
    config: &DnsConfig,
    service: &Service,
    slices: &[EndpointSlice],
) -> Vec<ServiceRecordSet> {
    let Some(info) = ServiceInfo::from_service(service) else {
        return Vec::new();
    };
    let slices: Vec<SliceInfo> = slices
        .iter()
        .filter_map(SliceInfo::from_slice)
        .filter(|s| s.namespace == info.namespace && s.service == info.name)
        .collect();
    records_for_service(config, &info, &slices)
}

fn push_set(
    sets: &mut Vec<ServiceRecordSet>,
    config: &DnsConfig,
    index: &DnsIndex,
    name: &Name,
    qtype: RecordType,
) {
    let got = answer(config, index, name, qtype, DNSClass::IN);
    // A/AAAA of an ExternalName chase the CNAME: the CNAME set says it once.
    let answers: Vec<Record> = got
        .answers
        .into_iter()
        .filter(|r| r.record_type() == qtype)
        .collect();
    if got.rcode == ResponseCode::NoError && !answers.is_empty() {
        sets.push(ServiceRecordSet {
            name: name.clone(),
            qtype,
            answers,
            additional: got.additional,
        });
    }
}
