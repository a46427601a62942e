//! Which ClusterIPs a Service write needs (§2.6: `normalizeClusterIPs`, `initIPFamilyFields`,
//! `allocClusterIPs` of upstream's `storage/alloc.go`), as a pure function of the Service and
//! the configured ranges. The registry turns the plan's requests into claims.
//!
//! Only the checks that decide allocation live here; the remaining `clusterIPs`/`ipFamilies`
//! validation of §4.6 (unsupported or duplicate values, required fields) is the validator's.

use std::net::IpAddr;

use gocompat::ip::parse_ip_sloppy;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use serde_json::Value;

use crate::outcome::ServiceAllocationError;
use crate::service_cidr::{IpFamily, ServiceClusterIpRanges};

const SINGLE_STACK: &str = "SingleStack";
const REQUIRE_DUAL_STACK: &str = "RequireDualStack";
const NONE: &str = "None";

/// How one family's ClusterIP is to be obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpRequest {
    /// The client asked for this address (`clusterIPs[i]`).
    Static {
        /// The parsed address.
        ip: IpAddr,
        /// The address as the client wrote it (error messages quote it unchanged).
        requested: String,
    },
    /// Any free address of the family.
    Dynamic,
}

/// The ClusterIP side of one Service write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIpPlan {
    /// `ExternalName` Services get no families and no addresses.
    pub external_name: bool,
    /// `clusterIPs[0] == "None"`: families are set, nothing is allocated.
    pub headless: bool,
    /// `spec.ipFamilyPolicy` after defaulting.
    pub ip_family_policy: Option<String>,
    /// `spec.ipFamilies` after defaulting, primary first.
    pub ip_families: Vec<IpFamily>,
    /// One request per family to allocate, in `ip_families` order.
    pub requests: Vec<(IpFamily, IpRequest)>,
    /// `spec.clusterIPs` padded with `""` to the number of families, as upstream prints it in
    /// allocation errors (`["10.96.0.10",""]`).
    pub printed_cluster_ips: Vec<String>,
    /// Set on an update of a Service that was headless: upstream's `updateClusterIPs` bails out
    /// for one, so nothing is allocated and `clusterIPs` stay as the client wrote them, for
    /// validation to judge (`may not change once set`).
    pub written_cluster_ips: Option<Vec<String>>,
}

impl ClusterIpPlan {
    /// Writes families, policy and the addresses obtained for `requests` (same order) into
    /// `service`; `clusterIP` becomes `clusterIPs[0]`.
    pub fn apply_to(&self, service: &mut Service, allocated: &[IpAddr]) {
        if self.external_name {
            return;
        }
        let spec = service.spec.get_or_insert_with(ServiceSpec::default);
        spec.ip_family_policy = self.ip_family_policy.clone();
        spec.ip_families = Some(
            self.ip_families
                .iter()
                .map(|f| f.as_str().to_string())
                .collect(),
        );
        // A requested address is stored as the user wrote it (`010.96.0.5` stays so), as
        // upstream stores the request's strings; only allocated ones are formatted.
        let ips: Vec<String> = if let Some(written) = &self.written_cluster_ips {
            written.clone()
        } else if self.headless {
            vec![NONE.to_string()]
        } else {
            allocated
                .iter()
                .enumerate()
                .map(|(i, ip)| match self.requests.get(i) {
                    Some((_, IpRequest::Static { requested, .. })) if !requested.is_empty() => {
                        requested.clone()
                    }
                    _ => ip.to_string(),
                })
                .collect()
        };
        spec.cluster_ip = ips.first().cloned();
        spec.cluster_ips = (!ips.is_empty()).then_some(ips);
    }
}

fn spec_of(service: &Service) -> ServiceSpec {
    service.spec.clone().unwrap_or_default()
}

fn is_external_name(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() == Some("ExternalName")
}

/// The addresses a stored Service holds (`clusterIPs`, or `clusterIP` when the plural is
/// missing); `None`, empty and unparsable entries are skipped.
pub fn held_cluster_ips(service: &Service) -> Vec<IpAddr> {
    let spec = spec_of(service);
    if is_external_name(&spec) {
        return Vec::new();
    }
    let listed = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.clone(),
        _ => spec.cluster_ip.iter().cloned().collect(),
    };
    listed.iter().filter_map(|ip| parse_ip_sloppy(ip)).collect()
}

fn family_error(field: String, value: Value, detail: impl Into<String>) -> ServiceAllocationError {
    ServiceAllocationError::Family {
        field,
        value,
        detail: detail.into(),
    }
}

/// Plans the ClusterIPs of a Service being created.
pub fn plan_cluster_ips_for_create(
    service: &Service,
    ranges: &ServiceClusterIpRanges,
) -> Result<ClusterIpPlan, ServiceAllocationError> {
    plan(service, None, ranges)
}

/// Plans the ClusterIPs of an update; `old` supplies the inherited `ipFamilyPolicy`. Call
/// `patch_allocated_values` on `new` first, as upstream's `beginUpdate` does.
pub fn plan_cluster_ips_for_update(
    old: &Service,
    new: &Service,
    ranges: &ServiceClusterIpRanges,
) -> Result<ClusterIpPlan, ServiceAllocationError> {
    plan(new, Some(old), ranges)
}

fn plan(
    service: &Service,
    old: Option<&Service>,
    ranges: &ServiceClusterIpRanges,
) -> Result<ClusterIpPlan, ServiceAllocationError> {
    let spec = spec_of(service);
    if is_external_name(&spec) {
        return Ok(ClusterIpPlan {
            external_name: true,
            headless: false,
            ip_family_policy: None,
            ip_families: Vec::new(),
            requests: Vec::new(),
            printed_cluster_ips: Vec::new(),
            written_cluster_ips: None,
        });
    }
    let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
    let cluster_ips = normalized_cluster_ips(&spec, old);
    let headless = cluster_ips.first().map(String::as_str) == Some(NONE);
    let selectorless = spec.selector.as_ref().is_none_or(|s| s.is_empty());
    let policy = effective_policy(&spec, old, headless && selectorless);
    let requested_families = spec.ip_families.clone().unwrap_or_default();
    let parsed = parse_cluster_ips(&cluster_ip, &cluster_ips, &requested_families, headless)?;
    check_single_stack(&policy, &cluster_ips, &requested_families)?;
    let mut families = families_of(&requested_families, &parsed, &cluster_ips, ranges)?;

    let primary = ranges.primary.family();
    // Step 6: headless without selector: families only, even on a single-stack cluster.
    if headless && selectorless {
        if families.is_empty() {
            families.push(primary);
        }
        if policy != SINGLE_STACK && families.len() == 1 {
            families.push(families[0].other());
        }
        return Ok(ClusterIpPlan {
            external_name: false,
            headless: true,
            ip_family_policy: Some(policy),
            ip_families: families,
            requests: Vec::new(),
            printed_cluster_ips: cluster_ips,
            written_cluster_ips: None,
        });
    }

    // Steps 7 and 8.
    if policy == REQUIRE_DUAL_STACK && !ranges.is_dual_stack() {
        return Err(policy_error(
            &policy,
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in families.iter().enumerate() {
        if ranges.for_family(*family).is_none() {
            return Err(family_error(
                format!("spec.ipFamilies[{i}]"),
                Value::from(family.as_str()),
                "not configured on this cluster",
            ));
        }
    }
    // Step 9.
    if families.is_empty() {
        families.push(primary);
    }
    if policy != SINGLE_STACK && families.len() == 1 && ranges.is_dual_stack() {
        families.push(families[0].other());
    }

    // Step 10.
    let mut printed = cluster_ips.clone();
    while printed.len() < families.len() {
        printed.push(String::new());
    }
    let was_headless = old.is_some_and(|old| {
        let old = spec_of(old);
        !is_external_name(&old) && held_addresses(&old).first().map(String::as_str) == Some(NONE)
    });
    let mut requests = if headless || was_headless {
        Vec::new()
    } else {
        requests_for(&families, &parsed, &cluster_ips)
    };
    if let Some(old) = old {
        keep_old_addresses(&mut requests, &spec_of(old), &cluster_ips);
    }
    Ok(ClusterIpPlan {
        external_name: false,
        headless,
        ip_family_policy: Some(policy),
        ip_families: families,
        requests,
        printed_cluster_ips: printed,
        written_cluster_ips: (was_headless && !headless).then_some(cluster_ips),
    })
}

/// `updateClusterIPs`: an update allocates only when it leaves ExternalName (everything) or
/// upgrades to dual stack (the secondary family). Any other address it names is not claimed:
/// the family that held one keeps it, and a changed value is validation's to refuse ("may not
/// change once set"), not the allocator's.
fn keep_old_addresses(
    requests: &mut [(IpFamily, IpRequest)],
    old: &ServiceSpec,
    cluster_ips: &[String],
) {
    let old_ips = held_addresses(old);
    if is_external_name(old) || old_ips.first().map(String::as_str) == Some(NONE) {
        return;
    }
    for (i, (_, request)) in requests.iter_mut().enumerate() {
        let Some(old_ip) = old_ips.get(i).and_then(|ip| parse_ip_sloppy(ip)) else {
            continue;
        };
        let requested = cluster_ips
            .get(i)
            .cloned()
            .unwrap_or_else(|| old_ips[i].clone());
        *request = IpRequest::Static {
            ip: old_ip.to_canonical(),
            requested,
        };
    }
}

/// The addresses a stored Service holds: `clusterIPs`, else `clusterIP`.
fn held_addresses(spec: &ServiceSpec) -> Vec<String> {
    match spec.cluster_ips.as_deref() {
        Some(ips) if !ips.is_empty() => ips.to_vec(),
        _ => spec.cluster_ip.iter().cloned().collect(),
    }
}

/// Step 1: `clusterIP` alone becomes `clusterIPs = [clusterIP]` (on update too, so that a
/// changed singular field is what immutability checks see).
fn normalized_cluster_ips(spec: &ServiceSpec, old: Option<&Service>) -> Vec<String> {
    let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
    let cluster_ips = spec.cluster_ips.clone().unwrap_or_default();
    if !cluster_ip.is_empty() && cluster_ips.is_empty() {
        return vec![cluster_ip];
    }
    if !cluster_ip.is_empty() && old.is_some() && cluster_ips.first() != Some(&cluster_ip) {
        let old_ips = old
            .and_then(|o| o.spec.as_ref())
            .and_then(|s| s.cluster_ips.clone())
            .unwrap_or_default();
        if old_ips == cluster_ips {
            return vec![cluster_ip];
        }
    }
    cluster_ips
}

/// Step 2: the policy asked for, else the old object's, else upstream's default
/// (`RequireDualStack` for a headless Service without selector, `SingleStack` otherwise).
fn effective_policy(
    spec: &ServiceSpec,
    old: Option<&Service>,
    headless_without_selector: bool,
) -> String {
    if let Some(policy) = &spec.ip_family_policy {
        return policy.clone();
    }
    match old
        .and_then(|o| o.spec.as_ref())
        .and_then(|s| s.ip_family_policy.clone())
    {
        Some(inherited) => inherited,
        None if headless_without_selector => REQUIRE_DUAL_STACK.to_string(),
        None => SINGLE_STACK.to_string(),
    }
}

/// Step 3, the allocation-relevant part of §4.6: the addresses parsed (`None` for `None`),
/// or the first thing wrong with them.
fn parse_cluster_ips(
    cluster_ip: &str,
    cluster_ips: &[String],
    requested_families: &[String],
    headless: bool,
) -> Result<Vec<Option<IpAddr>>, ServiceAllocationError> {
    let list_value = || Value::from(cluster_ips.to_vec());
    if !cluster_ip.is_empty() && cluster_ips.first().map(String::as_str) != Some(cluster_ip) {
        return Err(family_error(
            "spec.clusterIPs".into(),
            list_value(),
            "first value must match `clusterIP`",
        ));
    }
    let mut parsed: Vec<Option<IpAddr>> = Vec::with_capacity(cluster_ips.len());
    for (i, ip) in cluster_ips.iter().enumerate() {
        if ip == NONE {
            if i != 0 || cluster_ips.len() != 1 {
                return Err(family_error(
                    "spec.clusterIPs".into(),
                    list_value(),
                    "'None' must be the first and only value",
                ));
            }
            parsed.push(None);
            continue;
        }
        let Some(addr) = parse_ip_sloppy(ip) else {
            return Err(family_error(
                format!("spec.clusterIPs[{i}]"),
                Value::from(ip.clone()),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        };
        // Go sees an IPv4-mapped IPv6 address as IPv4.
        parsed.push(Some(addr.to_canonical()));
    }
    if cluster_ips.len() > 2 {
        return Err(family_error(
            "spec.clusterIPs".into(),
            list_value(),
            "may only hold up to 2 values",
        ));
    }
    if let [Some(a), Some(b)] = parsed.as_slice()
        && IpFamily::of(a) == IpFamily::of(b)
    {
        return Err(family_error(
            "spec.clusterIPs".into(),
            list_value(),
            "may specify no more than one IP for each IP family",
        ));
    }
    if !headless {
        for (i, (ip, family)) in parsed.iter().zip(requested_families).enumerate() {
            if let (Some(ip), Some(family)) = (ip, IpFamily::parse(family))
                && IpFamily::of(ip) != family
            {
                return Err(family_error(
                    format!("spec.clusterIPs[{i}]"),
                    Value::from(cluster_ips.get(i).cloned().unwrap_or_default()),
                    format!("expected an {family} value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    Ok(parsed)
}

fn policy_error(policy: &str, detail: &str) -> ServiceAllocationError {
    family_error(
        "spec.ipFamilyPolicy".into(),
        Value::from(policy.to_owned()),
        detail,
    )
}

/// Step 4: `SingleStack` with two addresses or two families.
fn check_single_stack(
    policy: &str,
    cluster_ips: &[String],
    requested_families: &[String],
) -> Result<(), ServiceAllocationError> {
    if policy != SINGLE_STACK {
        return Ok(());
    }
    if cluster_ips.len() == 2 {
        return Err(policy_error(
            policy,
            "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
        ));
    }
    if requested_families.len() == 2 {
        return Err(policy_error(
            policy,
            "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
        ));
    }
    Ok(())
}

/// Step 5: the families asked for, then those of addresses given without one.
fn families_of(
    requested_families: &[String],
    parsed: &[Option<IpAddr>],
    cluster_ips: &[String],
    ranges: &ServiceClusterIpRanges,
) -> Result<Vec<IpFamily>, ServiceAllocationError> {
    let mut families: Vec<IpFamily> = Vec::new();
    for (i, name) in requested_families.iter().enumerate() {
        match IpFamily::parse(name) {
            Some(f) => families.push(f),
            None => {
                return Err(family_error(
                    format!("spec.ipFamilies[{i}]"),
                    Value::from(name.clone()),
                    "not configured on this cluster",
                ));
            }
        }
    }
    for (i, ip) in parsed.iter().enumerate() {
        let Some(ip) = ip else { break };
        if i < families.len() {
            continue;
        }
        let family = IpFamily::of(ip);
        if ranges.for_family(family).is_none() {
            return Err(family_error(
                format!("spec.clusterIPs[{i}]"),
                Value::from(cluster_ips.to_vec()),
                format!("{family} is not configured on this cluster"),
            ));
        }
        families.push(family);
    }
    Ok(families)
}

/// Step 10: one request per family, static where the Service names the address.
fn requests_for(
    families: &[IpFamily],
    parsed: &[Option<IpAddr>],
    cluster_ips: &[String],
) -> Vec<(IpFamily, IpRequest)> {
    families
        .iter()
        .enumerate()
        .map(|(i, family)| {
            let request = match (parsed.get(i).copied().flatten(), cluster_ips.get(i)) {
                (Some(ip), Some(requested)) => IpRequest::Static {
                    ip,
                    requested: requested.clone(),
                },
                _ => IpRequest::Dynamic,
            };
            (*family, request)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_cidr::BitmapSizeLimit;
    use serde_json::json;

    fn ranges(flag: &str) -> ServiceClusterIpRanges {
        ServiceClusterIpRanges::parse(flag, BitmapSizeLimit::Enforced).unwrap()
    }

    fn service(spec: Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "svc"}, "spec": spec})).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn error_text(spec: Value, flag: &str) -> String {
        plan_cluster_ips_for_create(&service(spec), &ranges(flag))
            .unwrap_err()
            .to_string()
    }

    /// E31.
    #[test]
    fn e31_require_dual_stack_on_single_stack_cluster() {
        let e = plan_cluster_ips_for_create(
            &service(json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]})),
            &ranges("10.96.0.0/12"),
        )
        .unwrap_err();
        assert_eq!(e.outcome().code(), 422);
        assert_eq!(
            e.to_string(),
            "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
        );
    }

    /// E32.
    #[test]
    fn e32_ipv6_cluster_ip_on_ipv4_cluster() {
        let e = plan_cluster_ips_for_create(
            &service(json!({"clusterIP": "fd00::10", "ports": [{"port": 80}]})),
            &ranges("10.96.0.0/12"),
        )
        .unwrap_err();
        assert_eq!(
            e.outcome().cause_message().unwrap(),
            "Invalid value: [\"fd00::10\"]: IPv6 is not configured on this cluster"
        );
        assert_eq!(
            e.to_string(),
            "spec.clusterIPs[0]: Invalid value: [\"fd00::10\"]: IPv6 is not configured on this cluster"
        );
    }

    /// E33: dual-stack defaults.
    #[test]
    fn e33_dual_stack_defaults() {
        let dual = ranges("10.96.0.0/12,fd00::/108");
        let prefer = plan_cluster_ips_for_create(
            &service(json!({"ipFamilyPolicy": "PreferDualStack", "selector": {"a": "b"}})),
            &dual,
        )
        .unwrap();
        assert_eq!(prefer.ip_families, vec![IpFamily::V4, IpFamily::V6]);
        assert_eq!(
            prefer.requests,
            vec![
                (IpFamily::V4, IpRequest::Dynamic),
                (IpFamily::V6, IpRequest::Dynamic)
            ]
        );

        let omitted =
            plan_cluster_ips_for_create(&service(json!({"selector": {"a": "b"}})), &dual).unwrap();
        assert_eq!(omitted.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(omitted.ip_families, vec![IpFamily::V4]);
        assert_eq!(omitted.requests.len(), 1);

        for flag in ["10.96.0.0/12,fd00::/108", "10.96.0.0/12"] {
            let headless =
                plan_cluster_ips_for_create(&service(json!({"clusterIP": "None"})), &ranges(flag))
                    .unwrap();
            assert_eq!(
                headless.ip_family_policy.as_deref(),
                Some("RequireDualStack")
            );
            assert_eq!(headless.ip_families, vec![IpFamily::V4, IpFamily::V6]);
            assert!(headless.requests.is_empty());
            let mut svc = service(json!({"clusterIP": "None"}));
            headless.apply_to(&mut svc, &[]);
            let spec = svc.spec.unwrap();
            assert_eq!(spec.cluster_ips, Some(vec!["None".to_string()]));
            assert_eq!(
                spec.ip_families,
                Some(vec!["IPv4".to_string(), "IPv6".to_string()])
            );
        }
    }

    /// E7: an unparsable literal is a 422 on the indexed field with the string value.
    #[test]
    fn e7_invalid_cluster_ip_literal() {
        assert_eq!(
            error_text(
                json!({"clusterIP": "10.0.0.256", "ports": [{"port": 80}]}),
                "10.96.0.0/12"
            ),
            "spec.clusterIPs[0]: Invalid value: \"10.0.0.256\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
    }

    /// §2.6 step 4.
    #[test]
    fn single_stack_with_two_values() {
        let dual = "10.96.0.0/12,fd00::/108";
        assert_eq!(
            error_text(
                json!({"ipFamilyPolicy": "SingleStack", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"]}),
                dual
            ),
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"
        );
        assert_eq!(
            error_text(
                json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]}),
                dual
            ),
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"
        );
    }

    /// §2.6 step 8 and §4.6 rules 7 and 8.
    #[test]
    fn family_rules() {
        assert_eq!(
            error_text(json!({"ipFamilies": ["IPv6"]}), "10.96.0.0/12"),
            "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"
        );
        assert_eq!(
            error_text(
                json!({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "10.96.0.11"]}),
                "10.96.0.0/12,fd00::/108"
            ),
            "spec.clusterIPs: Invalid value: [\"10.96.0.10\",\"10.96.0.11\"]: may specify no more than one IP for each IP family"
        );
        assert_eq!(
            error_text(
                json!({"clusterIP": "fd00::1", "ipFamilies": ["IPv4"]}),
                "10.96.0.0/12,fd00::/108"
            ),
            "spec.clusterIPs[0]: Invalid value: \"fd00::1\": expected an IPv4 value as indicated by `ipFamilies[0]`"
        );
    }

    /// E3 input: a static request keeps the client's spelling; dual-stack fill-in pads the
    /// printed list with "" for the dynamic secondary.
    #[test]
    fn static_and_fill_in() {
        let plan = plan_cluster_ips_for_create(
            &service(json!({"clusterIP": "10.96.0.10", "ipFamilyPolicy": "PreferDualStack", "selector": {"a": "b"}})),
            &ranges("10.96.0.0/12,fd00::/108"),
        )
        .unwrap();
        assert_eq!(
            plan.requests,
            vec![
                (
                    IpFamily::V4,
                    IpRequest::Static {
                        ip: ip("10.96.0.10"),
                        requested: "10.96.0.10".into()
                    }
                ),
                (IpFamily::V6, IpRequest::Dynamic)
            ]
        );
        assert_eq!(plan.printed_cluster_ips, vec!["10.96.0.10", ""]);
        let mut svc = service(json!({"clusterIP": "10.96.0.10"}));
        plan.apply_to(&mut svc, &[ip("10.96.0.10"), ip("fd00::5")]);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        assert_eq!(
            spec.cluster_ips,
            Some(vec!["10.96.0.10".to_string(), "fd00::5".to_string()])
        );
        assert_eq!(spec.ip_family_policy.as_deref(), Some("PreferDualStack"));
    }

    /// §2.6 step 0 and the update inheritance of step 2.
    #[test]
    fn external_name_and_inherited_policy() {
        let plan = plan_cluster_ips_for_create(
            &service(json!({"type": "ExternalName", "externalName": "db.example.com"})),
            &ranges("10.96.0.0/12"),
        )
        .unwrap();
        assert!(plan.external_name && plan.requests.is_empty());

        let old = service(
            json!({"ipFamilyPolicy": "PreferDualStack", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"]}),
        );
        let new = service(
            json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "selector": {"a": "b"}}),
        );
        let plan =
            plan_cluster_ips_for_update(&old, &new, &ranges("10.96.0.0/12,fd00::/108")).unwrap();
        assert_eq!(plan.ip_family_policy.as_deref(), Some("PreferDualStack"));
        assert_eq!(plan.ip_families, vec![IpFamily::V4, IpFamily::V6]);
    }

    #[test]
    fn held_and_sloppy() {
        let svc =
            service(json!({"clusterIP": "10.96.0.010", "clusterIPs": ["10.96.0.010", "fd00::1"]}));
        assert_eq!(
            held_cluster_ips(&svc),
            vec![ip("10.96.0.10"), ip("fd00::1")]
        );
        assert!(held_cluster_ips(&service(json!({"clusterIP": "None"}))).is_empty());
        assert_eq!(parse_ip_sloppy("1.2.3"), None);
    }

    /// Literals Go 1.16 accepts that the strict-parse-then-octets reading rejected: octets
    /// with more than three characters, a zero-padded IPv4 tail, wide zero-padded hex groups.
    #[test]
    fn sloppy_literals_go_accepts() {
        let plan = plan_cluster_ips_for_create(
            &service(json!({"clusterIP": "0010.096.0.0010", "selector": {"a": "b"}})),
            &ranges("10.96.0.0/12"),
        )
        .unwrap();
        assert_eq!(
            plan.requests,
            vec![(
                IpFamily::V4,
                IpRequest::Static {
                    ip: ip("10.96.0.10"),
                    requested: "0010.096.0.0010".into()
                }
            )]
        );
        let svc = service(json!({
            "clusterIPs": ["0001.2.3.4", "00fd00::0001"],
        }));
        assert_eq!(held_cluster_ips(&svc), vec![ip("1.2.3.4"), ip("fd00::1")]);
        let svc = service(json!({"clusterIP": "::ffff:010.96.0.10"}));
        assert_eq!(held_cluster_ips(&svc), vec![ip("::ffff:10.96.0.10")]);
    }

    // Found by the validation differential against kube-apiserver.
    #[test]
    fn requested_strings_are_kept_and_updates_claim_no_changed_primary() {
        let r = ranges("10.96.0.0/24");
        let svc: Service = serde_json::from_value(json!({"metadata":{"name":"a"},
            "spec":{"type":"ClusterIP","clusterIP":"::ffff:10.96.0.9","ports":[{"port":80}]}}))
        .unwrap();
        let plan = plan_cluster_ips_for_create(&svc, &r).unwrap();
        assert_eq!(plan.ip_families, vec![IpFamily::V4]);
        let mut out = svc.clone();
        plan.apply_to(&mut out, &["10.96.0.9".parse().unwrap()]);
        assert_eq!(
            out.spec.unwrap().cluster_ip.as_deref(),
            Some("::ffff:10.96.0.9")
        );

        let old: Service = serde_json::from_value(json!({"metadata":{"name":"a"},
            "spec":{"type":"ClusterIP","clusterIP":"10.96.0.5","clusterIPs":["10.96.0.5"],
                "ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","ports":[{"port":80}]}}))
        .unwrap();
        let new: Service = serde_json::from_value(json!({"metadata":{"name":"a"},
            "spec":{"type":"ClusterIP","clusterIP":"10.96.0.255","clusterIPs":["10.96.0.255"],
                "ports":[{"port":80}]}}))
        .unwrap();
        let plan = plan_cluster_ips_for_update(&old, &new, &r).unwrap();
        assert_eq!(
            plan.requests,
            vec![(
                IpFamily::V4,
                IpRequest::Static {
                    ip: "10.96.0.5".parse().unwrap(),
                    requested: "10.96.0.255".to_owned()
                }
            )]
        );
    }

    // Found by a fresh seed of the validation differential: kube-apiserver answered "may not
    // change once set", svcplane tried to claim the new address and failed in the range check.
    #[test]
    fn an_update_of_a_headless_service_claims_nothing_and_keeps_the_written_address() {
        let r = ranges("10.96.0.0/24");
        let old: Service = serde_json::from_value(json!({"metadata":{"name":"a"},
            "spec":{"type":"ClusterIP","clusterIP":"None","clusterIPs":["None"],
                "selector":{"app":"web"},"ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack",
                "ports":[{"port":80}]}}))
        .unwrap();
        for written in ["10.96.0.255", "192.168.1.5"] {
            let new: Service = serde_json::from_value(json!({"metadata":{"name":"a"},
                "spec":{"type":"ClusterIP","clusterIP":written,"clusterIPs":[written],
                    "selector":{"app":"web"},"ports":[{"port":80}]}}))
            .unwrap();
            let plan = plan_cluster_ips_for_update(&old, &new, &r).unwrap();
            assert_eq!(plan.requests, vec![], "{written}");
            let mut out = new.clone();
            plan.apply_to(&mut out, &[]);
            let spec = out.spec.unwrap();
            assert_eq!(spec.cluster_ip.as_deref(), Some(written));
            assert_eq!(spec.cluster_ips, Some(vec![written.to_owned()]));
        }

        // Still headless: nothing written back but `None`.
        let plan = plan_cluster_ips_for_update(&old, &old, &r).unwrap();
        assert!(plan.headless);
        assert_eq!(plan.written_cluster_ips, None);
    }
}
