//! The answer to one question, as CoreDNS's kubernetes plugin (v1.15.0) computes it: a pure
//! function of the configuration, the index and the question.
//!
//! The shape follows upstream so that a reader can diff the two: `records` is
//! `Kubernetes.Records` (parse the name, then `findServices`/`findPods`), `services` is
//! `Kubernetes.Services` (the per-type special cases), and `address`, `srv`, `ptr`, `ns` are the
//! generic lookups of `plugin/backend_lookup.go`. Where CoreDNS's running code and the spec
//! disagree the code is followed (see docs/dns.md).

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::config::{DnsConfig, PodMode};
use crate::index::DnsIndex;
use crate::objects::{EndpointAddress, ServiceKind};

/// The schema version of the Kubernetes DNS specification served at `dns-version.<zone>`.
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the `dns-version` TXT record, whatever the configured TTL.
const DNS_VERSION_TTL: u32 = 28800;
/// CNAME chains are followed up to this many links.
const MAX_CNAME_CHAIN: usize = 10;

/// A response, before it is put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The response code.
    pub rcode: ResponseCode,
    /// Header flags.
    pub flags: AnswerFlags,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the zone's SOA on NXDOMAIN, NODATA and SERVFAIL).
    pub authority: Vec<Record>,
    /// The additional section (addresses of SRV and NS targets).
    pub additional: Vec<Record>,
}

/// The header flags an answer sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerFlags {
    /// AA: every answer from a served zone is authoritative.
    pub authoritative: bool,
    /// TC. CoreDNS copies it from an upstream answer to a chased CNAME; svcplane has no
    /// upstream, so the index never sets it (the server sets TC when a UDP answer does not fit).
    pub truncated: bool,
}

impl Answer {
    fn refused() -> Answer {
        Answer {
            rcode: ResponseCode::Refused,
            flags: AnswerFlags::default(),
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }
}

/// The plugin's "name error" (errNoItems, errNsNotExposed, errInvalidRequest): NXDOMAIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameError;

type Lookup<T> = Result<T, NameError>;

/// What a lookup found for a name: CoreDNS's `msg.Service`.
#[derive(Clone, Debug)]
struct Entry {
    host: Host,
    /// Port for SRV; `-1` is the no-ports sentinel.
    port: i32,
    ttl: u32,
    /// The domain this entry stands for (the SRV target / additional owner).
    domain: Option<Name>,
}

#[derive(Clone, Debug)]
enum Host {
    Ip(IpAddr),
    /// An ExternalName target (the plugin makes a CNAME of any host that is not an IP).
    Target(Name),
    /// `dns-version`'s text.
    Text(String),
}

/// A parsed query name (`recordRequest` of parse.go).
#[derive(Debug, Default)]
struct Request {
    port: String,
    protocol: String,
    endpoint: String,
    service: String,
    namespace: String,
    /// `svc` or `pod`; empty for the apex, `svc.Z` and `pod.Z`.
    pod_or_svc: String,
}

/// One question being answered: the configured zone it fell in, and that zone as the client
/// wrote it (answers echo the client's case).
struct Question<'a> {
    config: &'a DnsConfig,
    index: &'a DnsIndex,
    /// The zone in the query's case, e.g. `ClUsTeR.lOcAl.`.
    zone: Name,
}

/// Answers `qname qtype qclass` from `index`.
pub fn answer(
    config: &DnsConfig,
    index: &DnsIndex,
    qname: &Name,
    qtype: RecordType,
    qclass: DNSClass,
) -> Answer {
    if qclass != DNSClass::IN {
        return Answer::refused();
    }
    let mut qname = qname.clone();
    qname.set_fqdn(true);
    let lower = qname.to_lowercase();
    let Some(zone) = config
        .zones
        .iter()
        .filter(|z| z.zone_of(&lower))
        .max_by_key(|z| z.num_labels())
    else {
        // Not ours, and there is no next plugin to hand it to.
        return Answer::refused();
    };
    let question = Question {
        config,
        index,
        zone: qname.trim_to(usize::from(zone.num_labels())),
    };
    question.answer(&qname, qtype)
}

impl Question<'_> {
    fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        // `state.Name() == zone` in handler.go compares the lower-cased name with the zone in
        // the query's case: an apex written with capitals is not the apex for NS.
        let lower_is_zone = || qname.to_lowercase().eq_case(&self.zone);
        let mut additional = Vec::new();
        let result: Lookup<Vec<Record>> = match qtype {
            RecordType::A | RecordType::AAAA => self.address(qname, qtype, &[]),
            RecordType::TXT => self.txt(qname),
            RecordType::CNAME => self.cname(qname),
            RecordType::PTR => self.ptr(qname),
            RecordType::MX => self.services(qname, qtype).map(|_| Vec::new()),
            RecordType::SRV => self.srv(qname).map(|(records, extra)| {
                additional = extra;
                records
            }),
            RecordType::SOA => Ok(if qname.eq_case(&self.zone) {
                vec![self.soa()]
            } else {
                Vec::new()
            }),
            RecordType::AXFR | RecordType::IXFR => return Answer::refused(),
            RecordType::NS if lower_is_zone() => self.ns(qname).map(|(records, extra)| {
                additional = extra;
                records
            }),
            // Anything else (and NS below the apex): a hidden A lookup decides NXDOMAIN vs
            // NODATA; it never has data.
            _ => self.address(qname, RecordType::A, &[]).map(|_| Vec::new()),
        };
        let authoritative = AnswerFlags {
            authoritative: true,
            truncated: false,
        };
        match result {
            Err(NameError) => Answer {
                rcode: if self.index.is_synced() {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::ServFail
                },
                flags: authoritative,
                answers: Vec::new(),
                authority: vec![self.soa()],
                additional: Vec::new(),
            },
            Ok(records) if records.is_empty() => Answer {
                rcode: ResponseCode::NoError,
                flags: authoritative,
                answers: Vec::new(),
                authority: vec![self.soa()],
                additional: Vec::new(),
            },
            Ok(records) => Answer {
                rcode: ResponseCode::NoError,
                flags: authoritative,
                answers: records,
                authority: Vec::new(),
                additional,
            },
        }
    }

    /// The zone's SOA: owner and names in the query's case.
    fn soa(&self) -> Record {
        let ttl = self.config.ttl.min(300);
        let mname = prepend(&["ns", "dns"], &self.zone);
        let rname = prepend(&["hostmaster"], &self.zone);
        let soa = SOA::new(
            mname.unwrap_or_else(|| self.zone.clone()),
            rname.unwrap_or_else(|| self.zone.clone()),
            self.index.serial(),
            7200,
            1800,
            86400,
            self.config.ttl,
        );
        Record::from_rdata(self.zone.clone(), ttl, RData::SOA(soa))
    }

    /// The labels of `name` left of the zone, lower-cased (`TrimZone` + `SplitDomainName`).
    fn base_labels(&self, name: &Name) -> Vec<String> {
        let keep = name
            .num_labels()
            .saturating_sub(self.zone.num_labels())
            .into();
        name.to_lowercase()
            .iter()
            .take(keep)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    /// parse.go `parseRequest` (without multicluster and zonal, which are off).
    fn parse(&self, name: &Name) -> Lookup<Request> {
        let mut segs = self.base_labels(name);
        let mut r = Request::default();
        let Some(last) = segs.pop() else {
            return Ok(r);
        };
        if segs.is_empty() && (last == "svc" || last == "pod") {
            return Ok(r);
        }
        if last != "svc" && last != "pod" {
            return Err(NameError);
        }
        r.pod_or_svc = last;
        let Some(namespace) = segs.pop() else {
            return Ok(r);
        };
        r.namespace = namespace;
        let Some(service) = segs.pop() else {
            return Ok(r);
        };
        r.service = service;
        match segs.as_slice() {
            [] => {}
            [endpoint] => r.endpoint = endpoint.clone(),
            [port, protocol] => {
                r.port = strip_underscore(port);
                r.protocol = strip_underscore(protocol);
            }
            _ => return Err(NameError),
        }
        Ok(r)
    }

    fn namespace_exposed(&self, namespace: &str) -> bool {
        self.config.namespace_configured(namespace) && self.index.namespace_exists(namespace)
    }

    /// `Kubernetes.Records`.
    fn records(&self, name: &Name) -> Lookup<Vec<Entry>> {
        let r = self.parse(name)?;
        if r.pod_or_svc.is_empty() {
            return Ok(Vec::new());
        }
        if crate::config::is_reverse(name) {
            return Err(NameError);
        }
        if !self.namespace_exposed(&r.namespace) {
            return Err(NameError);
        }
        if r.pod_or_svc == "pod" {
            self.find_pods(&r)
        } else {
            self.find_services(&r)
        }
    }

    fn find_pods(&self, r: &Request) -> Lookup<Vec<Entry>> {
        if self.config.pods == PodMode::Disabled {
            return Err(NameError);
        }
        if r.service.is_empty() {
            return Ok(Vec::new());
        }
        let label = &r.service;
        let text = if label.matches('-').count() == 3 && !label.contains("--") {
            label.replace('-', ".")
        } else {
            label.replace('-', ":")
        };
        let entry = |ip: IpAddr| Entry {
            host: Host::Ip(ip),
            port: 0,
            ttl: self.config.ttl,
            domain: None,
        };
        match self.config.pods {
            PodMode::Insecure => match parse_go_ip(&text) {
                Some(ip) => Ok(vec![entry(ip)]),
                None => Err(NameError),
            },
            _ => {
                let pods: Vec<Entry> = self
                    .index
                    .pods_with_ip(&text)
                    .into_iter()
                    .filter(|p| p.namespace.eq_ignore_ascii_case(&r.namespace))
                    .filter_map(|_| parse_go_ip(&text).map(entry))
                    .collect();
                if pods.is_empty() {
                    Err(NameError)
                } else {
                    Ok(pods)
                }
            }
        }
    }

    fn endpoint_hostname(&self, address: &EndpointAddress) -> String {
        endpoint_hostname(address, self.config.endpoint_pod_names)
    }

    /// `findServices`.
    fn find_services(&self, r: &Request) -> Lookup<Vec<Entry>> {
        if r.service.is_empty() {
            return Ok(Vec::new());
        }
        let ttl = self.config.ttl;
        let mut found = false;
        let mut entries = Vec::new();
        for svc in self.index.services_named(&r.namespace, &r.service) {
            let slices = self.index.slices_of(&svc.namespace, &svc.name);
            let is_external = matches!(svc.kind, ServiceKind::ExternalName(_));
            let is_headless = svc.kind == ServiceKind::Headless;
            if self.config.ignore_empty_service
                && !is_external
                && !is_headless
                && slices.iter().all(|s| s.addresses.is_empty())
            {
                continue;
            }
            let service_domain = prepend(&[&svc.name, &svc.namespace, "svc"], &self.zone);
            if let ServiceKind::ExternalName(target) = &svc.kind {
                // No endpoints and no port/protocol names under an ExternalName.
                if !r.endpoint.is_empty() || !r.port.is_empty() || !r.protocol.is_empty() {
                    continue;
                }
                // An externalName that reads as an IP is no CNAME: the Service gets nothing.
                if parse_go_ip(target).is_some() {
                    continue;
                }
                if let Ok(mut target) = Name::from_ascii(target) {
                    target.set_fqdn(true);
                    entries.push(Entry {
                        host: Host::Target(target),
                        port: 0,
                        ttl,
                        domain: service_domain,
                    });
                    found = true;
                }
                continue;
            }
            if is_headless || !r.endpoint.is_empty() {
                for slice in &slices {
                    for address in &slice.addresses {
                        let hostname = self.endpoint_hostname(address);
                        if !r.endpoint.is_empty() && !r.endpoint.eq_ignore_ascii_case(&hostname) {
                            continue;
                        }
                        // Addresses that are no IP (FQDN slices) are left out: the plugin
                        // would make CNAMEs of them, which no controller writes.
                        let Some(ip) = parse_go_ip(&address.ip) else {
                            continue;
                        };
                        for port in &slice.ports {
                            if !match_port_and_protocol(
                                &r.port,
                                &port.name,
                                &r.protocol,
                                &port.protocol,
                            ) {
                                continue;
                            }
                            found = true;
                            entries.push(Entry {
                                host: Host::Ip(ip),
                                port: port.port,
                                ttl,
                                domain: prepend(
                                    &[&hostname, &svc.name, &svc.namespace, "svc"],
                                    &self.zone,
                                ),
                            });
                        }
                    }
                }
                continue;
            }
            let ServiceKind::ClusterIp(cluster_ips) = &svc.kind else {
                continue;
            };
            for port in &svc.ports {
                if !match_port_and_protocol(&r.port, &port.name, &r.protocol, &port.protocol) {
                    continue;
                }
                found = true;
                for ip in cluster_ips.iter().filter_map(|ip| parse_go_ip(ip)) {
                    entries.push(Entry {
                        host: Host::Ip(ip),
                        port: port.port,
                        ttl,
                        domain: service_domain.clone(),
                    });
                }
            }
        }
        if found { Ok(entries) } else { Err(NameError) }
    }

    /// `Kubernetes.Services`: the per-type special cases, then `Records`.
    fn services(&self, name: &Name, qtype: RecordType) -> Lookup<Vec<Entry>> {
        if qtype == RecordType::TXT {
            if self.base_labels(name) == ["dns-version"] {
                return Ok(vec![Entry {
                    host: Host::Text(DNS_SCHEMA_VERSION.to_owned()),
                    port: 0,
                    ttl: DNS_VERSION_TTL,
                    domain: None,
                }]);
            }
            // A name with records of another type is NODATA; one without any (the apex,
            // `svc.Z`, `<ns>.svc.Z`) is NXDOMAIN.
            return match self.records(name) {
                Ok(entries) if !entries.is_empty() => Ok(Vec::new()),
                _ => Err(NameError),
            };
        }
        if qtype == RecordType::NS {
            return Ok(self
                .ns_addrs()
                .into_iter()
                .map(|(domain, ip)| Entry {
                    host: Host::Ip(ip),
                    port: 0,
                    ttl: self.config.ttl,
                    domain: Some(domain),
                })
                .collect());
        }
        if self.is_default_ns(name) {
            return Ok(self
                .ns_addrs()
                .into_iter()
                .filter(|(_, ip)| record_type_of(*ip) == qtype)
                .map(|(_, ip)| Entry {
                    host: Host::Ip(ip),
                    port: 0,
                    ttl: self.config.ttl,
                    domain: None,
                })
                .collect());
        }
        let entries = self.records(name)?;
        if qtype != RecordType::SRV {
            return Ok(entries);
        }
        // SRV for ExternalName Services is not implemented upstream.
        Ok(entries
            .into_iter()
            .filter(|e| !matches!(e.host, Host::Target(_)))
            .collect())
    }

    /// ns.go `isDefaultNS`: the name is exactly `ns.dns.<zone>`, where the lower-cased name is
    /// compared with the zone in the query's case (so `ns.dns.CLUSTER.local.` is not).
    fn is_default_ns(&self, name: &Name) -> bool {
        let mut labels = name.iter();
        let (Some(ns), Some(dns)) = (labels.next(), labels.next()) else {
            return false;
        };
        if !ns.eq_ignore_ascii_case(b"ns") || !dns.eq_ignore_ascii_case(b"dns") {
            return false;
        }
        let lower = name.to_lowercase().to_ascii();
        lower.strip_prefix("ns.dns.") == Some(self.zone.to_ascii().as_str())
    }

    /// ns.go `nsAddrs`: the Services whose ready endpoints hold an address the server listens
    /// on, else `ns.dns.<zone>` with those addresses.
    fn ns_addrs(&self) -> Vec<(Name, IpAddr)> {
        let local: Vec<IpAddr> = self
            .config
            .bound_ips
            .iter()
            .copied()
            .filter(|ip| !ip.is_loopback())
            .collect();
        let mut found_endpoint = false;
        let mut out = Vec::new();
        for ip in &local {
            for slice in self.index.slices_with_ip(*ip) {
                found_endpoint = true;
                let Some(svc) = self.index.service(&slice.namespace, &slice.service) else {
                    continue;
                };
                let base = [svc.name.as_str(), svc.namespace.as_str(), "svc"];
                match &svc.kind {
                    ServiceKind::Headless => {
                        for address in &slice.addresses {
                            let hostname = self.endpoint_hostname(address);
                            let name = prepend(&[&hostname, base[0], base[1], base[2]], &self.zone);
                            if let (Some(name), Some(ip)) = (name, parse_go_ip(&address.ip)) {
                                out.push((name, ip));
                            }
                        }
                    }
                    ServiceKind::ClusterIp(ips) => {
                        if let Some(name) = prepend(&base, &self.zone) {
                            for ip in ips.iter().filter_map(|ip| parse_go_ip(ip)) {
                                out.push((name.clone(), ip));
                            }
                        }
                    }
                    // An ExternalName Service has a ClusterIP list of [""]: nothing.
                    ServiceKind::ExternalName(_) => {}
                }
            }
        }
        if !found_endpoint && let Some(name) = prepend(&["ns", "dns"], &self.zone) {
            out.extend(local.iter().map(|ip| (name.clone(), *ip)));
        }
        out
    }

    /// backend_lookup.go `A` / `AAAA`: addresses of `qtype`'s family, CNAMEs chased inside
    /// the zone; `previous` holds the CNAMEs of the chain so far.
    fn address(&self, qname: &Name, qtype: RecordType, previous: &[Name]) -> Lookup<Vec<Record>> {
        let entries = self.services(qname, qtype)?;
        let mut records = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in entries {
            match entry.host {
                Host::Target(target) => {
                    // x CNAME x (or a target under the name itself) is a loop.
                    if name_matches(qname, &target) {
                        continue;
                    }
                    if previous.len() > MAX_CNAME_CHAIN {
                        continue;
                    }
                    if previous.iter().any(|p| p.eq_case(&target)) {
                        continue;
                    }
                    let cname = Record::from_rdata(
                        qname.clone(),
                        entry.ttl,
                        RData::CNAME(CNAME(target.clone())),
                    );
                    if self.zone.zone_of(&target) {
                        let mut chain = previous.to_vec();
                        chain.push(target.clone());
                        if let Ok(next) = self.address(&target, qtype, &chain)
                            && !next.is_empty()
                        {
                            records.push(cname);
                            records.extend(next);
                        }
                        continue;
                    }
                    // Outside the zone: CoreDNS asks its upstream and appends what it says;
                    // svcplane has no upstream, so the CNAME goes alone and the client's
                    // resolver follows it.
                    records.push(cname);
                }
                Host::Ip(ip) => {
                    if record_type_of(ip) == qtype && seen.insert(ip) {
                        records.push(address_record(qname.clone(), entry.ttl, ip));
                    }
                }
                Host::Text(_) => {}
            }
        }
        Ok(records)
    }

    /// backend_lookup.go `TXT`: only `dns-version` has data (Services never gives a TXT
    /// lookup a CNAME to chase).
    fn txt(&self, qname: &Name) -> Lookup<Vec<Record>> {
        let entries = self.services(qname, RecordType::TXT)?;
        let mut seen = BTreeSet::new();
        Ok(entries
            .into_iter()
            .filter_map(|e| match e.host {
                Host::Text(text) if seen.insert(text.clone()) => Some(Record::from_rdata(
                    qname.clone(),
                    e.ttl,
                    RData::TXT(TXT::new(vec![text])),
                )),
                _ => None,
            })
            .collect())
    }

    /// backend_lookup.go `CNAME`: the first entry, if it is a name.
    fn cname(&self, qname: &Name) -> Lookup<Vec<Record>> {
        let entries = self.services(qname, RecordType::CNAME)?;
        Ok(match entries.into_iter().next() {
            Some(Entry {
                host: Host::Target(target),
                ttl,
                ..
            }) => vec![Record::from_rdata(
                qname.clone(),
                ttl,
                RData::CNAME(CNAME(target)),
            )],
            _ => Vec::new(),
        })
    }

    /// backend_lookup.go `SRV`, with the weights computed over every entry (sentinel ports
    /// and duplicates included) before duplicates are dropped.
    fn srv(&self, qname: &Name) -> Lookup<(Vec<Record>, Vec<Record>)> {
        let entries = self.services(qname, RecordType::SRV)?;
        let total = entries.len().max(1) as f64;
        let weight = ((100.0 / total).floor() as u16).max(1);
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen_srv = BTreeSet::new();
        let mut seen_addr = BTreeSet::new();
        for entry in entries {
            if entry.port == -1 {
                continue;
            }
            let (Host::Ip(ip), Some(target)) = (entry.host, entry.domain) else {
                continue;
            };
            // Go's uint16 conversion of the port number.
            let port = entry.port as u16;
            if seen_srv.insert((target.to_ascii(), port)) {
                records.push(Record::from_rdata(
                    qname.clone(),
                    entry.ttl,
                    RData::SRV(SRV::new(0, weight, port, target.clone())),
                ));
            }
            if seen_addr.insert((target.to_ascii(), ip)) {
                extra.push(address_record(target, entry.ttl, ip));
            }
        }
        Ok((records, extra))
    }

    /// backend_lookup.go `PTR` with reverse.go: a ClusterIP's Service, else every ready
    /// endpoint with that address; names in the primary zone as configured.
    fn ptr(&self, qname: &Name) -> Lookup<Vec<Record>> {
        let Some(ip) = address_from_reverse(&qname.to_lowercase()) else {
            // A forward name (or an incomplete reverse one): only whether it exists matters.
            return self.records(qname).map(|_| Vec::new());
        };
        let Some(primary) = self.config.primary_zone() else {
            return Err(NameError);
        };
        let ttl = self.config.ttl;
        let restricted = !self.config.namespaces.is_empty();
        let mut targets: Vec<Name> = Vec::new();
        if let Some(svc) = self
            .index
            .services_with_ip(ip)
            .into_iter()
            .find(|s| !restricted || self.namespace_exposed(&s.namespace))
        {
            targets.extend(prepend(&[&svc.name, &svc.namespace, "svc"], primary));
        } else {
            for slice in self.index.slices_with_ip(ip) {
                if restricted && !self.namespace_exposed(&slice.namespace) {
                    continue;
                }
                for address in &slice.addresses {
                    if parse_go_ip(&address.ip) != Some(ip) {
                        continue;
                    }
                    let hostname = self.endpoint_hostname(address);
                    targets.extend(prepend(
                        &[&hostname, &slice.service, &slice.namespace, "svc"],
                        primary,
                    ));
                }
            }
        }
        if targets.is_empty() {
            return Err(NameError);
        }
        let mut seen = BTreeSet::new();
        Ok(targets
            .into_iter()
            .filter(|t| seen.insert(t.to_ascii()))
            .map(|t| Record::from_rdata(qname.clone(), ttl, RData::PTR(PTR(t))))
            .collect())
    }

    /// backend_lookup.go `NS`: one NS per name, every address in additional.
    fn ns(&self, qname: &Name) -> Lookup<(Vec<Record>, Vec<Record>)> {
        let entries = self.services(qname, RecordType::NS)?;
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in entries {
            let (Host::Ip(ip), Some(domain)) = (entry.host, entry.domain) else {
                continue;
            };
            extra.push(address_record(domain.clone(), entry.ttl, ip));
            if seen.insert(domain.to_ascii()) {
                records.push(Record::from_rdata(
                    qname.clone(),
                    entry.ttl,
                    RData::NS(NS(domain)),
                ));
            }
        }
        Ok((records, extra))
    }
}

/// An A or AAAA record for `ip`.
fn address_record(name: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(name, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(name, ttl, RData::AAAA(AAAA(v6))),
    }
}

/// A or AAAA, as Go's `To4() != nil` decides (IPv4-mapped IPv6 addresses count as IPv4).
fn record_type_of(ip: IpAddr) -> RecordType {
    match ip {
        IpAddr::V4(_) => RecordType::A,
        IpAddr::V6(_) => RecordType::AAAA,
    }
}

/// Go's `net.ParseIP` as CoreDNS uses it: IPv4-mapped IPv6 addresses become IPv4 (Go's `To4`).
pub(crate) fn parse_go_ip(text: &str) -> Option<IpAddr> {
    match text.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }),
        v4 => Some(v4),
    }
}

/// `labels` followed by `zone`; `None` when that is no valid name (a label over 63 bytes).
pub(crate) fn prepend(labels: &[&str], zone: &Name) -> Option<Name> {
    Name::from_labels(labels.iter().map(|l| l.as_bytes()))
        .ok()?
        .append_name(zone)
        .ok()
}

/// plugin.Name.Matches: `child` is `parent` or below it (case-insensitively).
fn name_matches(parent: &Name, child: &Name) -> bool {
    parent.zone_of(child)
}

/// One leading `_` removed, as parse.go's stripUnderscore.
fn strip_underscore(label: &str) -> String {
    label.strip_prefix('_').unwrap_or(label).to_owned()
}

/// Empty filters match anything; otherwise case-insensitive equality.
fn match_port_and_protocol(want_port: &str, port: &str, want_proto: &str, proto: &str) -> bool {
    (want_port.is_empty() || want_port.eq_ignore_ascii_case(port))
        && (want_proto.is_empty() || want_proto.eq_ignore_ascii_case(proto))
}

/// The name an endpoint address answers to (kubernetes.go `endpointHostname`): its hostname,
/// else (with `endpoint_pod_names`) its pod's name, else the address with `.`/`:` made `-`
/// (`0` appended when an IPv6 text ends in `-`).
pub fn endpoint_hostname(address: &EndpointAddress, endpoint_pod_names: bool) -> String {
    if !address.hostname.is_empty() {
        return address.hostname.clone();
    }
    if endpoint_pod_names && !address.target_ref_name.is_empty() {
        return address.target_ref_name.clone();
    }
    if address.ip.contains('.') {
        return address.ip.replace('.', "-");
    }
    if address.ip.contains(':') {
        let dashed = address.ip.replace(':', "-");
        return if dashed.ends_with('-') {
            dashed + "0"
        } else {
            dashed
        };
    }
    String::new()
}

/// dnsutil `ExtractAddressFromReverse`: the IP a complete reverse name stands for.
fn address_from_reverse(name: &Name) -> Option<IpAddr> {
    let text = name.to_ascii();
    if let Some(rest) = text.strip_suffix(".in-addr.arpa.") {
        let mut octets: Vec<&str> = rest.split('.').collect();
        octets.reverse();
        return octets
            .join(".")
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(IpAddr::V4);
    }
    if let Some(rest) = text.strip_suffix(".ip6.arpa.") {
        let mut nibbles: Vec<&str> = rest.split('.').collect();
        nibbles.reverse();
        let groups: Vec<String> = nibbles.chunks_exact(4).map(|c| c.concat()).collect();
        return parse_go_ip(&groups.join(":"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_endpoint_names() {
        let named = |ip: &str| EndpointAddress {
            ip: ip.into(),
            hostname: String::new(),
            target_ref_name: "pod-a".into(),
        };
        assert_eq!(endpoint_hostname(&named("172.0.0.2"), false), "172-0-0-2");
        assert_eq!(
            endpoint_hostname(&named("5678:abcd::1"), false),
            "5678-abcd--1"
        );
        assert_eq!(
            endpoint_hostname(&named("2001:db8:3333:4444:5555:6666::"), false),
            "2001-db8-3333-4444-5555-6666--0"
        );
        assert_eq!(endpoint_hostname(&named("172.0.0.2"), true), "pod-a");
    }

    #[test]
    fn reverse_names() {
        let name = |s: &str| Name::from_ascii(s).unwrap();
        assert_eq!(
            address_from_reverse(&name("100.0.0.10.in-addr.arpa.")),
            Some("10.0.0.100".parse().unwrap())
        );
        assert_eq!(address_from_reverse(&name("0.10.in-addr.arpa.")), None);
        assert_eq!(
            address_from_reverse(&name("010.0.0.10.in-addr.arpa.")),
            None
        );
        assert_eq!(
            address_from_reverse(&name(
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa."
            )),
            Some("1234:abcd::1".parse().unwrap())
        );
        assert_eq!(address_from_reverse(&name("svc1.cluster.local.")), None);
    }
}
