//! The verdict for each way a Service ends up without endpoints, and the happy path in full.

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("object JSON")
}

fn web_service() -> Service {
    from(json!({
        "metadata": {"namespace": "shop", "name": "web"},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "selector": {"app": "web", "tier": "front"},
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "nodePort": 30080},
                {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090, "nodePort": 30090},
            ],
        },
    }))
}

fn master() -> Service {
    from(json!({
        "metadata": {"namespace": "default", "name": "kubernetes"},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
    }))
}

/// A running pod; `ready` sets its Ready condition.
fn pod(name: &str, labels: Value, ip: &str, ready: bool, port_name: &str) -> Pod {
    let condition = if ready {
        json!({"type": "Ready", "status": "True"})
    } else {
        json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady",
               "message": "containers with unready status: [app]"})
    };
    let state = if ready {
        json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    } else {
        json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=app"}})
    };
    from(json!({
        "metadata": {"namespace": "shop", "name": name, "labels": labels},
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "app", "image": "app", "ports": [{"name": port_name, "containerPort": 8080}]}],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [condition],
            "containerStatuses": [{"name": "app", "image": "app", "imageID": "", "ready": ready,
                                   "restartCount": if ready { 0 } else { 4 }, "state": state}],
        },
    }))
}

fn web_labels() -> Value {
    json!({"app": "web", "tier": "front"})
}

fn slice(endpoints: Value) -> EndpointSlice {
    from(json!({
        "metadata": {"namespace": "shop", "name": "web-abcde", "labels": {
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
}

fn endpoint(ip: &str, pod: &str, ready: bool) -> Value {
    json!({
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": ready, "terminating": false},
        "nodeName": "node-a",
        "targetRef": {"kind": "Pod", "namespace": "shop", "name": pod},
    })
}

fn run(
    service: &Service,
    pods: &[Pod],
    slices: &[EndpointSlice],
    endpoints: &[Endpoints],
) -> Explanation {
    let services = [service.clone(), master()];
    explain(&ExplainInputs {
        service,
        pods,
        endpoint_slices: slices,
        endpoints,
        services: &services,
        nodes: None,
        dns: &dns::DnsConfig::default(),
        slices_observed: true,
    })
}

fn reasons(explanation: &Explanation) -> Vec<String> {
    let value = serde_json::to_value(&explanation.verdict.findings).expect("JSON");
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["reason"].as_str().expect("reason").to_owned())
        .collect()
}

#[test]
fn happy_path_in_full() {
    let pods = [
        pod("web-1", web_labels(), "10.244.0.5", true, "http"),
        pod("web-2", web_labels(), "10.244.0.6", true, "http"),
    ];
    let slices = [slice(json!([
        endpoint("10.244.0.5", "web-1", true),
        endpoint("10.244.0.6", "web-2", true),
    ]))];
    let explanation = run(&web_service(), &pods, &slices, &[]);
    assert_eq!(explanation.verdict.ready_endpoints, 2);
    assert!(explanation.verdict.findings.is_empty());
    assert_eq!(
        explanation.to_text(),
        "\
Service:    shop/web
Type:       NodePort
ClusterIP:  10.96.0.10
Selector:   app=web,tier=front

Ports (port -> targetPort -> nodePort):
  http 80/TCP -> http -> 30080
  metrics 9090/TCP -> 9090 -> 30090

Pods matching the selector: 2
  web-1  10.244.0.5  node-a  ready
      targetPort http (http 80/TCP) -> 8080
  web-2  10.244.0.6  node-a  ready
      targetPort http (http 80/TCP) -> 8080

EndpointSlices: 1
  web-abcde (IPv4; http 8080/TCP, metrics 9090/TCP; managed by endpointslice-controller.k8s.io)
    10.244.0.5  ready  pod web-1  node node-a
    10.244.0.6  ready  pod web-2  node node-a

Environment of a new pod in shop (enableServiceLinks: true):
  KUBERNETES_SERVICE_HOST=10.96.0.1
  KUBERNETES_SERVICE_PORT=443
  KUBERNETES_SERVICE_PORT_HTTPS=443
  KUBERNETES_PORT=tcp://10.96.0.1:443
  KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443
  KUBERNETES_PORT_443_TCP_PROTO=tcp
  KUBERNETES_PORT_443_TCP_PORT=443
  KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1
  WEB_SERVICE_HOST=10.96.0.10
  WEB_SERVICE_PORT=80
  WEB_SERVICE_PORT_HTTP=80
  WEB_SERVICE_PORT_METRICS=9090
  WEB_PORT=tcp://10.96.0.10:80
  WEB_PORT_80_TCP=tcp://10.96.0.10:80
  WEB_PORT_80_TCP_PROTO=tcp
  WEB_PORT_80_TCP_PORT=80
  WEB_PORT_80_TCP_ADDR=10.96.0.10
  WEB_PORT_9090_TCP=tcp://10.96.0.10:9090
  WEB_PORT_9090_TCP_PROTO=tcp
  WEB_PORT_9090_TCP_PORT=9090
  WEB_PORT_9090_TCP_ADDR=10.96.0.10

DNS (cluster.local):
  web.shop.svc.cluster.local. 5 IN A 10.96.0.10
  web.shop.svc.cluster.local. 5 IN SRV 0 50 80 web.shop.svc.cluster.local.
  web.shop.svc.cluster.local. 5 IN SRV 0 50 9090 web.shop.svc.cluster.local.
  _http._tcp.web.shop.svc.cluster.local. 5 IN SRV 0 100 80 web.shop.svc.cluster.local.
  _metrics._tcp.web.shop.svc.cluster.local. 5 IN SRV 0 100 9090 web.shop.svc.cluster.local.
  10-244-0-5.web.shop.svc.cluster.local. 5 IN A 10.244.0.5
  10-244-0-5.web.shop.svc.cluster.local. 5 IN SRV 0 50 8080 10-244-0-5.web.shop.svc.cluster.local.
  10-244-0-5.web.shop.svc.cluster.local. 5 IN SRV 0 50 9090 10-244-0-5.web.shop.svc.cluster.local.
  10-244-0-6.web.shop.svc.cluster.local. 5 IN A 10.244.0.6
  10-244-0-6.web.shop.svc.cluster.local. 5 IN SRV 0 50 8080 10-244-0-6.web.shop.svc.cluster.local.
  10-244-0-6.web.shop.svc.cluster.local. 5 IN SRV 0 50 9090 10-244-0-6.web.shop.svc.cluster.local.
  10.0.96.10.in-addr.arpa. 5 IN PTR web.shop.svc.cluster.local.
  5.0.244.10.in-addr.arpa. 5 IN PTR 10-244-0-5.web.shop.svc.cluster.local.
  6.0.244.10.in-addr.arpa. 5 IN PTR 10-244-0-6.web.shop.svc.cluster.local.

Verdict: 2 ready endpoint(s); nothing stands in the way
"
    );
    // The JSON names sections and fields as the API does.
    let json = serde_json::to_value(&explanation).expect("JSON");
    assert_eq!(json["service"]["type"], "NodePort");
    assert_eq!(json["service"]["clusterIPs"], json!(["10.96.0.10"]));
    assert_eq!(json["ports"][0]["nodePort"], 30080);
    assert_eq!(
        json["pods"][0]["namedTargetPorts"][0]["containerPort"],
        8080
    );
    assert_eq!(json["endpointSlices"][0]["endpoints"][1]["pod"], "web-2");
    assert_eq!(
        json["environment"]["variables"][0]["name"],
        "KUBERNETES_SERVICE_HOST"
    );
    assert_eq!(json["verdict"]["readyEndpoints"], 2);
}

#[test]
fn no_pod_matches_names_the_nearest_mismatch() {
    let pods = [
        pod("api-1", json!({"app": "api"}), "10.244.0.7", true, "http"),
        pod(
            "web-typo",
            json!({"app": "web", "tier": "frontend"}),
            "10.244.0.8",
            true,
            "http",
        ),
        pod(
            "web-bare",
            json!({"app": "web"}),
            "10.244.0.9",
            true,
            "http",
        ),
    ];
    let mut elsewhere = pod("web-x", web_labels(), "10.244.1.1", true, "http");
    elsewhere.metadata.namespace = Some("staging".into());
    let mut all = pods.to_vec();
    all.push(elsewhere);
    let explanation = run(&web_service(), &all, &[], &[]);
    assert_eq!(reasons(&explanation), ["NoPodMatches"]);
    assert_eq!(explanation.verdict.ready_endpoints, 0);
    let Finding::NoPodMatches {
        nearest: Some(nearest),
        other_namespaces,
        ..
    } = &explanation.verdict.findings[0]
    else {
        panic!("{:?}", explanation.verdict.findings);
    };
    // A wrong value is nearer than a missing key.
    assert_eq!(nearest.pod, "web-typo");
    assert_eq!(
        nearest.mismatches,
        [LabelMismatch {
            key: "tier".into(),
            want: "front".into(),
            have: Some("frontend".into())
        }]
    );
    assert_eq!(other_namespaces, &["staging/web-x".to_owned()]);
    assert_eq!(explanation.verdict.summary, "no ready endpoints");
    assert_eq!(
        explanation.verdict.findings[0].message(),
        "no pod in the namespace has the labels app=web,tier=front; the closest is pod web-typo: tier is \"frontend\", the selector wants \"front\"; pods with these labels exist in other namespaces (staging/web-x), but a Service selects only in its own"
    );
}

#[test]
fn no_pod_at_all_in_the_namespace() {
    let explanation = run(&web_service(), &[], &[], &[]);
    assert!(explanation.to_text().ends_with(
        "Verdict: no ready endpoints
  - no pod in the namespace has the labels app=web,tier=front; the namespace has no pods at all
"
    ));
}

#[test]
fn pods_not_ready_say_why() {
    let pods = [pod("web-1", web_labels(), "10.244.0.5", false, "http")];
    let slices = [slice(json!([endpoint("10.244.0.5", "web-1", false)]))];
    let explanation = run(&web_service(), &pods, &slices, &[]);
    assert_eq!(reasons(&explanation), ["PodsNotReady"]);
    assert_eq!(
        explanation.verdict.findings[0].message(),
        "1 matching pod(s) are not ready, so they are no ready endpoints: web-1"
    );
    // JSON carries each finding's words beside its fields.
    let json = serde_json::to_value(&explanation.verdict).expect("JSON");
    assert_eq!(
        json["findings"][0],
        json!({"reason": "PodsNotReady", "pods": ["web-1"],
               "message": "1 matching pod(s) are not ready, so they are no ready endpoints: web-1"})
    );
    let text = explanation.to_text();
    assert!(
        text.contains(
            "  web-1  10.244.0.5  node-a  not ready
      Ready=False: ContainersNotReady: containers with unready status: [app]
      container app: not ready, waiting: CrashLoopBackOff: back-off 5m0s restarting failed container=app, restarts 4
"
        ),
        "{text}"
    );
    assert!(
        text.contains("    10.244.0.5  not ready  pod web-1  node node-a\n"),
        "{text}"
    );
}

#[test]
fn named_port_missing_in_the_pods() {
    let pods = [
        pod("web-1", web_labels(), "10.244.0.5", true, "web"),
        pod("web-2", web_labels(), "10.244.0.6", true, "web"),
    ];
    let explanation = explain(&ExplainInputs {
        service: &web_service(),
        pods: &pods,
        endpoint_slices: &[],
        endpoints: &[],
        services: &[],
        nodes: None,
        dns: &dns::DnsConfig::default(),
        slices_observed: false,
    });
    assert_eq!(reasons(&explanation), ["NamedPortMissing"]);
    // Unobserved slices: counted from the pods, which are ready (the metrics port still works).
    assert_eq!(explanation.verdict.ready_endpoints, 2);
    assert_eq!(
        explanation.verdict.findings[0].message(),
        "port http 80/TCP targets the container port named \"http\", which no matching pod does declare with protocol TCP: web-1, web-2; their endpoints leave this port out, so it has no backends"
    );
    assert_eq!(
        explanation.pods[0].named_target_ports[0].problem.as_deref(),
        Some("no container port named \"http\" with protocol TCP")
    );
    assert!(
        explanation
            .to_text()
            .contains("      targetPort http (http 80/TCP) -> unresolved: no container port named \"http\" with protocol TCP\n")
    );
}

#[test]
fn selector_less_without_endpoints() {
    let service: Service = from(json!({
        "metadata": {"namespace": "shop", "name": "db"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}]},
    }));
    let explanation = run(
        &service,
        &[pod("web-1", web_labels(), "10.244.0.5", true, "http")],
        &[],
        &[],
    );
    assert_eq!(reasons(&explanation), ["NoSelector"]);
    assert_eq!(explanation.verdict.ready_endpoints, 0);
    assert_eq!(
        explanation.verdict.findings[0].message(),
        "the Service has no selector, so no controller picks its endpoints: whoever created it must write an Endpoints object or EndpointSlices; no Endpoints object and no EndpointSlice of its name exist"
    );
    assert!(explanation.pods.is_empty());

    // With a hand-written Endpoints object, its addresses count and are shown.
    let endpoints: Endpoints = from(json!({
        "metadata": {"namespace": "shop", "name": "db"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432, "protocol": "TCP"}]}],
    }));
    let explanation = run(&service, &[], &[], &[endpoints]);
    assert_eq!(explanation.verdict.ready_endpoints, 1);
    assert!(
        explanation
            .to_text()
            .contains("  addresses:          192.0.2.10\n")
    );
}

#[test]
fn external_name_has_no_endpoints_by_design() {
    let service: Service = from(json!({
        "metadata": {"namespace": "shop", "name": "payments"},
        "spec": {"type": "ExternalName", "externalName": "payments.example.test", "selector": {"app": "web"}},
    }));
    let pods = [pod(
        "web-1",
        json!({"app": "web"}),
        "10.244.0.5",
        true,
        "http",
    )];
    let explanation = run(&service, &pods, &[], &[]);
    assert_eq!(reasons(&explanation), ["ExternalName"]);
    assert_eq!(explanation.verdict.summary, "no endpoints, by design");
    assert!(explanation.pods.is_empty());
    assert!(!explanation.environment.includes_service);
    let text = explanation.to_text();
    assert!(
        text.contains("(payments gets no variables: it is of type ExternalName)"),
        "{text}"
    );
    assert!(text.contains("CNAME to payments.example.test"), "{text}");
    // What cluster DNS serves for it, from the dns crate's own answers.
    assert_eq!(
        explanation.dns.records,
        ["payments.shop.svc.cluster.local. 5 IN CNAME payments.example.test."]
    );
}

#[test]
fn ready_pods_the_slices_do_not_show_yet() {
    let pods = [pod("web-1", web_labels(), "10.244.0.5", true, "http")];
    let explanation = run(&web_service(), &pods, &[], &[]);
    assert_eq!(reasons(&explanation), ["SlicesBehind"]);
    assert_eq!(explanation.verdict.ready_endpoints, 0);
    assert!(
        explanation.verdict.findings[0]
            .message()
            .contains("the EndpointSlice controller has not written them")
    );
}

#[test]
fn pods_without_ip_finished_and_terminating() {
    let pending: Pod = from(json!({
        "metadata": {"namespace": "shop", "name": "web-pending", "labels": web_labels()},
        "spec": {"containers": [{"name": "app", "image": "app", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Pending"},
    }));
    let mut done = pod("web-done", web_labels(), "10.244.0.3", false, "http");
    done.status.as_mut().expect("status").phase = Some("Succeeded".into());
    let mut leaving = pod("web-leaving", web_labels(), "10.244.0.4", true, "http");
    leaving.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().expect("time"),
        ));
    let serving_terminating = json!({
        "addresses": ["10.244.0.4"],
        "conditions": {"ready": false, "serving": true, "terminating": true},
        "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-leaving"},
    });
    let slices = [slice(json!([serving_terminating]))];
    let explanation = run(&web_service(), &[pending, done, leaving], &slices, &[]);
    assert_eq!(
        reasons(&explanation),
        ["PodsWithoutIp", "PodsTerminating", "PodsFinished"]
    );
    let text = explanation.to_text();
    assert!(
        text.contains("  web-done  10.244.0.3  node-a  not an endpoint (Succeeded)\n"),
        "{text}"
    );
    assert!(
        text.contains("  web-leaving  10.244.0.4  node-a  terminating (serving, not ready)\n"),
        "{text}"
    );
    assert!(
        text.contains("  web-pending  <no IP>  <unscheduled>  not an endpoint (Pending)\n"),
        "{text}"
    );
    assert!(
        text.contains("    10.244.0.4  terminating (serving, not ready)  pod web-leaving\n"),
        "{text}"
    );
}

#[test]
fn pods_on_nodes_the_cluster_does_not_have() {
    let pods = [
        pod("web-1", web_labels(), "10.244.0.5", true, "http"),
        pod("web-2", web_labels(), "10.244.0.6", true, "http"),
    ];
    let mut elsewhere = pods[1].clone();
    elsewhere.spec.as_mut().expect("spec").node_name = Some("node-gone".into());
    let pods = [pods[0].clone(), elsewhere];
    let nodes: Vec<Node> = vec![from(json!({"metadata": {"name": "node-a"}}))];
    let explanation = explain(&ExplainInputs {
        service: &web_service(),
        pods: &pods,
        endpoint_slices: &[],
        endpoints: &[],
        services: &[],
        nodes: Some(&nodes),
        dns: &dns::DnsConfig::default(),
        slices_observed: false,
    });
    assert_eq!(reasons(&explanation), ["PodsOnUnknownNodes"]);
    assert_eq!(explanation.verdict.ready_endpoints, 1);
    assert_eq!(
        explanation.verdict.findings[0].message(),
        "1 matching pod(s) are on nodes that do not exist, and the EndpointSlice controller leaves such pods out: web-2 (node-gone)"
    );
}

/// The text between the line after `$ command` and the closing fence of that block.
fn docs_block(docs: &str, command: &str) -> String {
    let start = docs
        .find(command)
        .expect("the command in docs/discovery.md")
        + command.len()
        + 1;
    let end = start + docs[start..].find("```").expect("the block's end");
    docs[start..end].to_owned()
}

#[test]
fn docs_sample() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/discovery.md"))
            .expect("docs/discovery.md");
    let pods = [
        pod("web-1", web_labels(), "10.244.0.5", true, "http"),
        pod("web-2", web_labels(), "10.244.0.6", false, "http"),
    ];
    let slices = [slice(json!([
        endpoint("10.244.0.5", "web-1", true),
        endpoint("10.244.0.6", "web-2", false),
    ]))];
    let explanation = run(&web_service(), &pods, &slices, &[]);
    assert_eq!(
        explanation.to_text(),
        docs_block(&docs, "$ svcplane explain service web -n shop")
    );

    let typo = [pod(
        "web-1",
        json!({"app": "web", "tier": "frontend"}),
        "10.244.0.5",
        true,
        "http",
    )];
    let text = run(&web_service(), &typo, &[], &[]).to_text();
    let verdict = &text[text.find("Verdict:").expect("a verdict")..];
    let block = docs_block(&docs, "`tier: frontend` on the pods):\n\n```");
    assert_eq!(verdict, block);
}

#[test]
fn the_nearest_wrong_value_wins_a_tie() {
    assert_eq!(edit_distance("web", "webb"), 1);
    assert_eq!(edit_distance("api", "webb"), 4);
    assert_eq!(edit_distance("", "ab"), 2);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    let pods = [
        pod(
            "api-1",
            json!({"app": "api", "tier": "x"}),
            "10.244.0.7",
            true,
            "http",
        ),
        pod(
            "web-1",
            json!({"app": "web", "tier": "x"}),
            "10.244.0.8",
            true,
            "http",
        ),
    ];
    let mut service = web_service();
    service.spec.as_mut().expect("spec").selector =
        Some([("app".to_owned(), "webb".to_owned())].into());
    let explanation = run(&service, &pods, &[], &[]);
    let Finding::NoPodMatches {
        nearest: Some(nearest),
        ..
    } = &explanation.verdict.findings[0]
    else {
        panic!("{:?}", explanation.verdict.findings);
    };
    assert_eq!(nearest.pod, "web-1");
}
