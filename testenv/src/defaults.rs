//! Upstream's v1 defaulting for the kinds whose defaults clients rely on (Service, Pod,
//! Endpoints, EndpointSlice).
//!
//! Only defaulting: testenv allocates no ClusterIPs or NodePorts (a generic control plane has no
//! service registry; an allocator such as svcplane's webhook does that).

use serde_json::{Map, Value, json};

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(key)?.as_object_mut()
}

fn set_if_missing(m: &mut Map<String, Value>, key: &str, value: Value) {
    match m.get(key) {
        None | Some(Value::Null) => {
            m.insert(key.to_string(), value);
        }
        Some(Value::String(s)) if s.is_empty() => {
            m.insert(key.to_string(), value);
        }
        _ => {}
    }
}

/// `SetDefaults_Service` and friends from `pkg/apis/core/v1/defaults.go`.
pub fn default_service(svc: &mut Value) {
    // `ServiceStatus.LoadBalancer` is a struct: Go always writes it, empty or not.
    if let Some(obj) = svc.as_object_mut() {
        let status = obj.entry("status").or_insert_with(|| json!({}));
        if status.is_null() {
            *status = json!({});
        }
        if let Some(status) = status.as_object_mut() {
            let lb = status.entry("loadBalancer").or_insert_with(|| json!({}));
            if lb.is_null() {
                *lb = json!({});
            }
        }
    }
    // SetDefaults_Service: a LoadBalancer's ingress with an IP gets the VIP mode.
    let load_balancer = svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    if load_balancer
        && let Some(ingress) = svc
            .pointer_mut("/status/loadBalancer/ingress")
            .and_then(Value::as_array_mut)
    {
        for entry in ingress.iter_mut().filter_map(Value::as_object_mut) {
            let has_ip = entry
                .get("ip")
                .and_then(Value::as_str)
                .is_some_and(|ip| !ip.is_empty());
            if has_ip && entry.get("ipMode").is_none_or(Value::is_null) {
                entry.insert("ipMode".into(), json!("VIP"));
            }
        }
    }
    let Some(spec) = obj_mut(svc, "spec") else {
        return;
    };
    set_if_missing(spec, "sessionAffinity", json!("None"));
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"));
            if timeout.is_none_or(Value::is_null) {
                let config = spec
                    .entry("sessionAffinityConfig")
                    .or_insert_with(|| json!({}));
                if let Some(config) = config.as_object_mut() {
                    let client_ip = config.entry("clientIP").or_insert_with(|| json!({}));
                    if let Some(client_ip) = client_ip.as_object_mut() {
                        client_ip.insert("timeoutSeconds".into(), json!(10800));
                    }
                }
            }
        }
        _ => {}
    }
    set_if_missing(spec, "type", json!("ClusterIP"));
    let svc_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_if_missing(port, "protocol", json!("TCP"));
            let target_unset = match port.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::String(s)) => s.is_empty(),
                _ => false,
            };
            if target_unset && let Some(p) = port.get("port").cloned() {
                port.insert("targetPort".into(), p);
            }
        }
    }
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible = svc_type == "NodePort"
        || svc_type == "LoadBalancer"
        || (svc_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        set_if_missing(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(svc_type.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_if_missing(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if svc_type == "LoadBalancer" {
        set_if_missing(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

fn default_container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let tag_latest = !image.contains('@') && {
        let last = image.rsplit('/').next().unwrap_or(image);
        !last.contains(':') || last.ends_with(":latest")
    };
    set_if_missing(
        c,
        "imagePullPolicy",
        json!(if tag_latest { "Always" } else { "IfNotPresent" }),
    );
    set_if_missing(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_missing(c, "terminationMessagePolicy", json!("File"));
    set_if_missing(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_if_missing(p, "protocol", json!("TCP"));
        }
    }
}

/// `SetDefaults_Pod` / `SetDefaults_PodSpec` (the fields kubectl users see).
pub fn default_pod(pod: &mut Value) {
    let Some(spec) = obj_mut(pod, "spec") else {
        return;
    };
    default_pod_spec(spec);
    set_if_missing(spec, "enableServiceLinks", json!(true));
}

/// What kube-apiserver's Priority and DefaultTolerationSeconds admission plugins set on a pod.
/// They run after the field manager, so unlike [`default_pod`]'s fields these are owned by no
/// manager of the write.
pub fn admit_pod(pod: &mut Value) {
    let Some(spec) = obj_mut(pod, "spec") else {
        return;
    };
    set_if_missing(spec, "priority", json!(0));
    set_if_missing(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    if !spec.contains_key("tolerations") {
        spec.insert(
            "tolerations".into(),
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]),
        );
    }
}

/// `SetDefaults_PodSpec` with its containers': what a pod and a pod template share (the
/// template gets no `enableServiceLinks`, tolerations or priority, which are pod defaults and
/// admission's).
fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_if_missing(spec, "restartPolicy", json!("Always"));
    set_if_missing(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_missing(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_missing(spec, "schedulerName", json!("default-scheduler"));
    set_if_missing(spec, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(key).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                default_container(c);
            }
        }
    }
}

/// The pod template of a workload (`spec.template.spec`), defaulted as a PodSpec.
fn default_template(workload: &mut Value) {
    if let Some(spec) = workload
        .pointer_mut("/spec/template/spec")
        .and_then(Value::as_object_mut)
    {
        default_pod_spec(spec);
    }
}

/// apps/v1 `SetDefaults_Deployment`: one replica, a 25%/25% RollingUpdate, 10 old ReplicaSets
/// kept, a 600 s progress deadline; and the template's PodSpec defaults.
pub fn default_deployment(deployment: &mut Value) {
    default_template(deployment);
    let Some(spec) = obj_mut(deployment, "spec") else {
        return;
    };
    set_if_missing(spec, "replicas", json!(1));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if !strategy.is_object() {
        *strategy = json!({});
    }
    if let Some(strategy) = strategy.as_object_mut() {
        set_if_missing(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if !rolling.is_object() {
                *rolling = json!({});
            }
            if let Some(rolling) = rolling.as_object_mut() {
                set_if_missing(rolling, "maxUnavailable", json!("25%"));
                set_if_missing(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    set_if_missing(spec, "revisionHistoryLimit", json!(10));
    set_if_missing(spec, "progressDeadlineSeconds", json!(600));
}

/// apps/v1 `SetDefaults_ReplicaSet`: one replica; and the template's PodSpec defaults.
pub fn default_replica_set(replica_set: &mut Value) {
    default_template(replica_set);
    if let Some(spec) = obj_mut(replica_set, "spec") {
        set_if_missing(spec, "replicas", json!(1));
    }
}

/// core/v1 `SetDefaults_EndpointPort`: every port of every subset is TCP unless it says otherwise.
pub fn default_endpoints(endpoints: &mut Value) {
    let subsets = endpoints.get_mut("subsets").and_then(Value::as_array_mut);
    for subset in subsets.into_iter().flatten() {
        let ports = subset.get_mut("ports").and_then(Value::as_array_mut);
        for port in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
            set_if_missing(port, "protocol", json!("TCP"));
        }
    }
}

/// discovery/v1 `SetDefaults_EndpointPort`: a port without a name is named `""`, one without a
/// protocol is TCP. The fields are pointers there: an explicit `""` is kept (and validated).
pub fn default_endpoint_slice(slice: &mut Value) {
    let ports = slice.get_mut("ports").and_then(Value::as_array_mut);
    for port in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
        for (key, default) in [("name", ""), ("protocol", "TCP")] {
            if port.get(key).is_none_or(Value::is_null) {
                port.insert(key.to_string(), json!(default));
            }
        }
    }
    // `Endpoint.Conditions` is a struct: Go writes `conditions: {}` even when none is set.
    let endpoints = slice.get_mut("endpoints").and_then(Value::as_array_mut);
    for endpoint in endpoints
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        if endpoint.get("conditions").is_none_or(Value::is_null) {
            endpoint.insert("conditions".into(), json!({}));
        }
    }
}

/// `SetDefaults_Namespace`: every namespace carries its name as the label
/// `kubernetes.io/metadata.name`.
pub fn default_namespace(ns: &mut Value) {
    let Some(name) = ns
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from)
    else {
        return;
    };
    if let Some(meta) = obj_mut(ns, "metadata") {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels["kubernetes.io/metadata.name"] = json!(name);
    }
}

/// The v1 → internal conversion and defaulting of a Secret: `stringData` is written into `data`
/// (base64, winning over `data`) and dropped; `type` defaults to `Opaque`.
pub fn default_secret(secret: &mut Value) {
    use base64::Engine as _;
    let Some(obj) = secret.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(strings)) = obj.remove("stringData") {
        let data = obj.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        for (k, v) in strings {
            if let Some(text) = v.as_str() {
                data[k.as_str()] =
                    json!(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
            }
        }
    }
    if obj
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("type".into(), json!("Opaque"));
    }
}

/// `GetWarningsForService` (`pkg/api/service/warnings.go`), without its IP and CIDR spelling
/// warnings: what kube-apiserver's Service strategy warns about on create and update.
pub fn service_warnings(svc: &Value) -> Vec<String> {
    let mut warnings = Vec::new();
    let spec = svc.get("spec").cloned().unwrap_or(Value::Null);
    let s = |k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let annotation = "service.kubernetes.io/topology-aware-hints";
    if svc
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(annotation))
        .is_some()
    {
        warnings.push(format!(
            "annotation {annotation} is deprecated, please use service.kubernetes.io/topology-mode instead"
        ));
    }
    let external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let ty = s("type");
    if ty == "ClusterIP" && s("clusterIP") == "None" {
        if !s("loadBalancerIP").is_empty() {
            warnings.push("spec.loadBalancerIP is ignored for headless services".into());
        }
        if external_ips {
            warnings.push("spec.externalIPs is ignored for headless services".into());
        }
        if s("sessionAffinity") != "None" {
            warnings.push("spec.SessionAffinity is ignored for headless services".into());
        }
    }
    if ty == "ExternalName" && external_ips {
        warnings.push("spec.externalIPs is ignored when spec.type is \"ExternalName\"".into());
    }
    if ty != "ExternalName" && !s("externalName").is_empty() {
        warnings.push("spec.externalName is ignored when spec.type is not \"ExternalName\"".into());
    }
    warnings
}

/// The CustomResourceDefinition defaults (`SetDefaults_CustomResourceDefinitionSpec`): no
/// conversion means `strategy: None`.
fn default_custom_resource_definition(crd: &mut Value) {
    if let Some(spec) = obj_mut(crd, "spec")
        && spec.get("conversion").is_none_or(Value::is_null)
    {
        spec.insert("conversion".into(), json!({"strategy": "None"}));
    }
}

/// What the built-in mutating admission plugins set on an object of a kind, after defaulting and
/// after the field manager recorded the write.
pub fn apply_admission_defaults(group: &str, kind: &str, obj: &mut Value) {
    if let ("", "Pod") = (group, kind) {
        admit_pod(obj)
    }
}

/// kube-apiserver's TaintNodesByCondition admission on a Node's create: the
/// `node.kubernetes.io/not-ready:NoSchedule` taint (unless one of that key and effect is there),
/// so that nothing is scheduled before the Node is seen Ready; the node lifecycle controller
/// (or, beside testenv, the node simulator) removes it then. It runs after the field manager:
/// nobody owns the taint.
pub fn taint_new_node_not_ready(node: &mut Value) {
    let Some(node) = node.as_object_mut() else {
        return;
    };
    let Some(spec) = node
        .entry("spec")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    let taints = spec.entry("taints").or_insert_with(|| json!([]));
    let Some(taints) = taints.as_array_mut() else {
        return;
    };
    let already = taints
        .iter()
        .any(|t| t["key"] == crate::nodesim::NOT_READY_TAINT && t["effect"] == "NoSchedule");
    if !already {
        taints.push(json!({"key": crate::nodesim::NOT_READY_TAINT, "effect": "NoSchedule"}));
    }
}

/// Applies the defaulting of a kind, if testenv has one.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            default_custom_resource_definition(obj)
        }
        ("", "Service") => default_service(obj),
        ("", "Pod") => default_pod(obj),
        ("", "Namespace") => default_namespace(obj),
        ("", "Secret") => default_secret(obj),
        ("", "Endpoints") => default_endpoints(obj),
        ("discovery.k8s.io", "EndpointSlice") => default_endpoint_slice(obj),
        ("apps", "Deployment") => default_deployment(obj),
        ("apps", "ReplicaSet") => default_replica_set(obj),
        ("networking.k8s.io", "IPAddress") => drop_empty_parent_ref_fields(obj),
        _ => {}
    }
}

/// An IPAddress's `parentRef` as Go decodes it: all four fields are `omitempty` strings, so an
/// empty one sent is neither stored nor owned (`"group": ""` for a core Service is common).
fn drop_empty_parent_ref_fields(obj: &mut Value) {
    if let Some(parent) = obj
        .pointer_mut("/spec/parentRef")
        .and_then(Value::as_object_mut)
    {
        parent.retain(|_, v| v.as_str() != Some(""));
    }
}

/// A core/v1 Event as Go's encoder writes it: `involvedObject` and `source` are structs (never
/// left out), the timestamps have no pointer (a zero one is `null`) and `reportingComponent` and
/// `reportingInstance` have no `omitempty`, so kube-apiserver stores and returns all of them.
/// Filled in as the object is stored, after the field manager: ownership is computed from the
/// object as apimachinery's unstructured converter sees it, which leaves the `omitempty` zero
/// timestamps out, so nobody owns them.
pub fn fill_event_zero_values(obj: &mut Value) {
    let Some(event) = obj.as_object_mut() else {
        return;
    };
    for (key, zero) in [
        ("involvedObject", json!({})),
        ("source", json!({})),
        ("firstTimestamp", Value::Null),
        ("lastTimestamp", Value::Null),
        ("eventTime", Value::Null),
        ("reportingComponent", json!("")),
        ("reportingInstance", json!("")),
    ] {
        event.entry(key).or_insert(zero);
    }
}

/// A Node as Go's encoder writes it: `spec` is a struct (never left out), and so are the status's
/// `daemonEndpoints` and `nodeInfo`, whose fields have no `omitempty`. Filled in as the object is
/// stored, for the same reason as [`fill_event_zero_values`]: nobody owns the zero values.
pub fn fill_node_zero_values(obj: &mut Value) {
    let Some(node) = obj.as_object_mut() else {
        return;
    };
    node.entry("spec").or_insert_with(|| json!({}));
    let Some(status) = node
        .entry("status")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    let daemon = status.entry("daemonEndpoints").or_insert_with(|| json!({}));
    if let Some(daemon) = daemon.as_object_mut() {
        let kubelet = daemon.entry("kubeletEndpoint").or_insert_with(|| json!({}));
        if let Some(kubelet) = kubelet.as_object_mut() {
            kubelet.entry("Port").or_insert(json!(0));
        }
    }
    let info = status.entry("nodeInfo").or_insert_with(|| json!({}));
    if let Some(info) = info.as_object_mut() {
        for key in [
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeletVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
        ] {
            info.entry(key).or_insert(json!(""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_node_is_tainted_not_ready_once() {
        let mut node = json!({"metadata": {"name": "n"}});
        taint_new_node_not_ready(&mut node);
        taint_new_node_not_ready(&mut node);
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
        );
        let mut other = json!({"spec": {"taints": [{"key": "node.kubernetes.io/not-ready",
            "effect": "NoExecute"}]}});
        taint_new_node_not_ready(&mut other);
        assert_eq!(other["spec"]["taints"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn nodes_carry_the_zero_values_go_writes() {
        let mut node = json!({"metadata": {"name": "n"},
            "status": {"nodeInfo": {"kubeletVersion": "v1.34.10"}}});
        fill_node_zero_values(&mut node);
        assert_eq!(
            node["status"]["daemonEndpoints"],
            json!({"kubeletEndpoint": {"Port": 0}})
        );
        assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.34.10");
        assert_eq!(node["status"]["nodeInfo"]["bootID"], "");
        assert_eq!(
            node["status"]["nodeInfo"].as_object().map(|m| m.len()),
            Some(10)
        );
    }

    #[test]
    fn empty_parent_ref_fields_of_an_ip_address_are_dropped() {
        let mut ip = json!({"spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "web"}}});
        apply_defaults("networking.k8s.io", "IPAddress", &mut ip);
        assert_eq!(
            ip["spec"]["parentRef"],
            json!({"resource": "services", "namespace": "default", "name": "web"})
        );
    }

    #[test]
    fn events_carry_the_zero_values_go_writes() {
        let mut event =
            json!({"metadata": {"name": "e"}, "reason": "R", "source": {"component": "c"}});
        fill_event_zero_values(&mut event);
        assert_eq!(
            event,
            json!({"metadata": {"name": "e"}, "reason": "R", "source": {"component": "c"},
                   "involvedObject": {}, "firstTimestamp": null, "lastTimestamp": null,
                   "eventTime": null, "reportingComponent": "", "reportingInstance": ""})
        );
    }

    #[test]
    fn service_defaults_match_upstream_v1() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        default_service(&mut svc);
        assert_eq!(
            svc["spec"],
            json!({"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
                   "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"})
        );
        let mut lb = json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 443}]}});
        default_service(&mut lb);
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        let mut ext = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        default_service(&mut ext);
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn endpoint_ports_default_to_tcp() {
        let mut ep = json!({"subsets": [{"addresses": [{"ip": "192.0.2.10"}],
            "ports": [{"port": 5432}, {"port": 53, "protocol": "UDP"}]}]});
        default_endpoints(&mut ep);
        assert_eq!(
            ep["subsets"][0]["ports"],
            json!([{"port": 5432, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
        );
        let mut slice = json!({"addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}, {"port": 81, "protocol": ""}]});
        default_endpoint_slice(&mut slice);
        assert_eq!(
            slice["ports"],
            json!([{"port": 80, "name": "", "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}, {"port": 81, "protocol": "", "name": ""}])
        );
    }

    #[test]
    fn pod_defaults_fill_pull_policy_and_grace() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}});
        default_pod(&mut pod);
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][1]["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn workload_defaults_match_upstream_apps_v1() {
        let mut deployment = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
        default_deployment(&mut deployment);
        assert_eq!(deployment["spec"]["replicas"], 1);
        assert_eq!(
            deployment["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(deployment["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(deployment["spec"]["progressDeadlineSeconds"], 600);
        let template = &deployment["spec"]["template"]["spec"];
        assert_eq!(template["restartPolicy"], "Always");
        assert_eq!(template["containers"][0]["imagePullPolicy"], "Always");
        assert!(
            template.get("enableServiceLinks").is_none() && template.get("tolerations").is_none()
        );

        let mut recreate = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}});
        default_deployment(&mut recreate);
        assert_eq!(recreate["spec"]["replicas"], 0);
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));

        let mut rs = json!({"spec": {}});
        default_replica_set(&mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
    }
}
