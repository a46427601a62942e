//! Envtest-style: the webhook over HTTPS (rcgen certificates), registered in testenv, judged
//! through kube::Client exactly as a client of kube-apiserver would see it.
//!
//! testenv only: most cases allocate through svcplane's registry; the webhook registered in a
//! real kube-apiserver (422s as kubectl prints them, failurePolicy Fail and Ignore) is
//! `tests/tests/sidecar.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use testenv::TestEnv;
use webhook::server::install::SERVICES_MUTATING_WEBHOOK;
use webhook::server::{
    AdmissionPolicy, CertificateSource, EmbeddedWebhook, EmbeddedWebhookOptions, WebhookConfig,
    WebhookServer, WebhookTarget, install_configurations,
};

fn options() -> EmbeddedWebhookOptions {
    EmbeddedWebhookOptions::new(
        ServiceClusterIpRanges::parse("10.96.0.0/12", BitmapSizeLimit::Enforced).unwrap(),
        PortRange::parse("30000-32767").unwrap(),
    )
}

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn create(api: &Api<Service>, svc: &Service) -> Result<Service, kube::core::Status> {
    api.create(&PostParams::default(), svc)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) => *s,
            other => panic!("expected an API error, got {other:?}"),
        })
}

const RFC1123: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// A cause as (field, reason, message).
type Cause<'a> = (&'a str, &'a str, String);

/// Field, reason and message of every cause, as kubectl prints them.
fn causes(status: &kube::core::Status) -> Vec<(String, String, String)> {
    status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| (c.field.clone(), c.reason.clone(), c.message.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn invalid_services_get_the_apiservers_422() {
    let env = TestEnv::start().await.unwrap();
    let hook = EmbeddedWebhook::start(env.client(), options())
        .await
        .unwrap();
    let api: Api<Service> = Api::namespaced(env.client(), "default");
    create(
        &api,
        &service(
            "holder",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    let invalid = |value: &str, detail: &str| format!("Invalid value: \"{value}\": {detail}");
    let cases: Vec<(Value, Vec<Cause>)> = vec![
        (
            json!({"ports": [{"name": "-web", "port": 80}]}),
            vec![("spec.ports[0].name", "FieldValueInvalid", invalid("-web", RFC1123))],
        ),
        (
            json!({"ports": [{"name": "123_abc", "port": 80}]}),
            vec![("spec.ports[0].name", "FieldValueInvalid", invalid("123_abc", RFC1123))],
        ),
        (
            json!({"ports": [{"port": 80, "targetPort": "abcdefghijklmnop"}]}),
            vec![(
                "spec.ports[0].targetPort",
                "FieldValueInvalid",
                invalid("abcdefghijklmnop", "must be no more than 15 characters"),
            )],
        ),
        (
            json!({"ports": [{"name": "HTTP", "port": 80}]}),
            vec![("spec.ports[0].name", "FieldValueInvalid", invalid("HTTP", RFC1123))],
        ),
        (
            json!({"ports": [{"name": "http", "port": 80}, {"port": 443}]}),
            vec![("spec.ports[1].name", "FieldValueRequired", "Required value".to_owned())],
        ),
        (
            json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 8080}]}),
            vec![("spec.ports[1].name", "FieldValueDuplicate", "Duplicate value: \"http\"".to_owned())],
        ),
        (
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
            vec![(
                "spec.ports[0].nodePort",
                "FieldValueInvalid",
                "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767".to_owned(),
            )],
        ),
        (
            json!({"clusterIP": "192.168.1.5", "ports": [{"port": 80}]}),
            vec![(
                "spec.clusterIPs",
                "FieldValueInvalid",
                "Invalid value: [\"192.168.1.5\"]: failed to allocate IP 192.168.1.5: the provided network does not match the current range".to_owned(),
            )],
        ),
        (
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
            vec![(
                "spec.clusterIPs",
                "FieldValueInvalid",
                "Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated".to_owned(),
            )],
        ),
    ];
    for (spec, want) in cases {
        let err = create(&api, &service("web", spec.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code, 422, "{spec}: {err:?}");
        assert_eq!(err.reason, "Invalid", "{spec}");
        let details = err.details.as_ref().unwrap();
        assert_eq!(
            (details.kind.as_str(), details.name.as_str()),
            ("Service", "web")
        );
        let want: Vec<(String, String, String)> = want
            .into_iter()
            .map(|(f, r, m)| (f.to_owned(), r.to_owned(), m))
            .collect();
        assert_eq!(causes(&err), want, "{spec}");
        let (field, _, message) = &want[0];
        assert_eq!(
            err.message,
            format!(
                "admission webhook \"{SERVICES_MUTATING_WEBHOOK}\" denied the request: Service \"web\" is invalid: {field}: {message}"
            ),
            "{spec}"
        );
    }
    // Refused writes leave no claims behind: only `holder`'s address is held.
    assert!(hook.allocator.holds_ip("10.96.0.10".parse().unwrap()));
    assert!(!hook.allocator.holds_port(80));
}

#[tokio::test]
async fn valid_services_get_cluster_ips_and_node_ports_from_the_ranges() {
    let env = TestEnv::start().await.unwrap();
    let hook = EmbeddedWebhook::start(env.client(), options())
        .await
        .unwrap();
    let api: Api<Service> = Api::namespaced(env.client(), "default");
    let created = create(
        &api,
        &service(
            "web",
            json!({"type": "NodePort", "selector": {"app": "web"},
                   "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        ),
    )
    .await
    .unwrap();
    let spec = created.spec.unwrap();
    let ip: std::net::IpAddr = spec.cluster_ip.clone().unwrap().parse().unwrap();
    assert!(
        "10.96.0.0/12"
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&ip)
    );
    assert_eq!(spec.cluster_ips, Some(vec![ip.to_string()]));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".to_owned()]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    let node_ports: Vec<i32> = spec
        .ports
        .unwrap()
        .iter()
        .filter_map(|p| p.node_port)
        .collect();
    assert_eq!(node_ports.len(), 2);
    assert!(node_ports.iter().all(|p| (30000..=32767).contains(p)));
    assert!(
        hook.allocator.holds_ip(ip) && node_ports.iter().all(|p| hook.allocator.holds_port(*p))
    );

    // The stored object is what a GET returns.
    let stored = api.get("web").await.unwrap().spec.unwrap();
    assert_eq!(stored.cluster_ip, Some(ip.to_string()));

    // A server-side dry run allocates nothing (asked for a port the Service above did not draw).
    let unheld = (30999..=32767).find(|p| !node_ports.contains(p)).unwrap();
    let dry = api
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &service(
                "dry",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": unheld}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(dry.spec.unwrap().ports.unwrap()[0].node_port, Some(unheld));
    assert!(!hook.allocator.holds_port(unheld));

    // A requested address inside the range is honoured.
    let fixed = create(
        &api,
        &service(
            "fixed",
            json!({"clusterIP": "10.96.100.100", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        fixed.spec.unwrap().cluster_ips,
        Some(vec!["10.96.100.100".to_owned()])
    );
    // The update path keeps the allocation when the client omits it (patchAllocatedValues).
    let mut again = service("fixed", json!({"ports": [{"port": 81}]}));
    again.metadata.resource_version = api.get("fixed").await.unwrap().metadata.resource_version;
    let replaced = api
        .replace("fixed", &PostParams::default(), &again)
        .await
        .unwrap();
    assert_eq!(
        replaced.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.100.100")
    );
    let _ = api.delete("fixed", &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn endpoint_addresses_are_checked_and_cluster_ips_warned_about() {
    let env = TestEnv::start().await.unwrap();
    let _hook = EmbeddedWebhook::start(env.client(), options())
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(env.client(), "default");
    create(
        &services,
        &service(
            "web",
            json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(env.client(), "default");
    // As the API server hands a slice to admission: defaulted (port name and protocol).
    let slice = |name: &str, address: &str| -> EndpointSlice {
        serde_json::from_value(json!({"metadata": {"name": name}, "addressType": "IPv4",
            "endpoints": [{"addresses": [address]}],
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}]}))
        .unwrap()
    };
    let err = match slices
        .create(&PostParams::default(), &slice("lo", "127.0.0.1"))
        .await
    {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected a denial, got {other:?}"),
    };
    assert_eq!(err.code, 422);
    assert_eq!(
        causes(&err),
        vec![(
            "endpoints[0].addresses[0]".to_owned(),
            "FieldValueInvalid".to_owned(),
            "Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
                .to_owned()
        )]
    );
    // The warning is the webhook's own; ask it directly (kube::Client drops Warning headers).
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "kind": {"group": "discovery.k8s.io", "version": "v1", "kind": "EndpointSlice"},
            "resource": {"group": "discovery.k8s.io", "version": "v1", "resource": "endpointslices"},
            "name": "vip", "namespace": "default", "operation": "CREATE",
            "object": serde_json::to_value(slice("vip", "10.96.0.20")).unwrap()}});
    let mut answer = Value::Null;
    // The Service cache may trail the create by a moment.
    for _ in 0..100 {
        let (code, body) = post(
            &_hook.ca_pem,
            &_hook.handle.url("/validate"),
            review.to_string(),
        )
        .await;
        assert_eq!(code, 200);
        answer = serde_json::from_slice(&body).unwrap();
        if answer["response"]["warnings"].is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer["response"]["allowed"], json!(true));
    assert_eq!(
        answer["response"]["warnings"],
        json!([
            "endpoints[0].addresses[0]: 10.96.0.20 is the ClusterIP of Service \"default/web\"; kube-proxy does not route traffic to a ClusterIP used as an endpoint address"
        ])
    );
}

/// POSTs `body` over HTTPS trusting `ca_pem`; returns the status code and body.
async fn post(ca_pem: &str, url: &str, body: String) -> (u16, bytes::Bytes) {
    use http_body_util::{BodyExt, Full};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn malformed_reviews_get_400_and_oversized_413() {
    let env = TestEnv::start().await.unwrap();
    let hook = EmbeddedWebhook::start(env.client(), options())
        .await
        .unwrap();
    let (code, body) = post(
        &hook.ca_pem,
        &hook.handle.url("/validate"),
        "{\"kind\":".to_owned(),
    )
    .await;
    assert_eq!(code, 400);
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["reason"], json!("BadRequest"));
    assert_eq!(
        status["message"],
        json!("malformed AdmissionReview: EOF while parsing a value at line 1 column 8")
    );
    let (code, body) = post(
        &hook.ca_pem,
        &hook.handle.url("/mutate"),
        r#"{"apiVersion":"v1","kind":"Pod"}"#.to_owned(),
    )
    .await;
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains(r#"got apiVersion \"v1\" and kind \"Pod\""#));
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let (code, _) = post(&hook.ca_pem, &hook.handle.url("/validate"), huge).await;
    assert_eq!(code, 413);
    let (code, _) = post(&hook.ca_pem, &hook.handle.url("/healthz"), String::new()).await;
    assert_eq!(code, 405);
    let metrics = hook.handle.metrics_text().unwrap();
    assert!(
        metrics.contains(r#"svcplane_webhook_requests_total{operation="malformed",outcome="error",path="/validate"} 2"#),
        "{metrics}"
    );
}

fn write_pair(dir: &std::path::Path, cert: &str, key: &str) {
    // cert-manager updates the Secret volume atomically; write-then-rename does the same here.
    for (name, content) in [("tls.key", key), ("tls.crt", cert)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// A leaf for 127.0.0.1 signed by a fresh CA; rotation re-signs with the same CA.
struct Pki {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Pki {
            issuer: rcgen::CertifiedIssuer::self_signed(
                params,
                rcgen::KeyPair::generate().unwrap(),
            )
            .unwrap(),
        }
    }

    fn leaf(&self) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

async fn file_backed_server(dir: &std::path::Path, pki: &Pki) -> webhook::server::WebhookHandle {
    let (cert, key) = pki.leaf();
    write_pair(dir, &cert, &key);
    let mut config = WebhookConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        CertificateSource::Files {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            poll_interval: Duration::ZERO,
        },
        AdmissionPolicy::default(),
    );
    config.allocator = Some(Arc::new(webhook::server::InMemoryAllocator::new(
        ServiceClusterIpRanges::parse("10.96.0.0/12", BitmapSizeLimit::Enforced).unwrap(),
        PortRange::parse("30000-32767").unwrap(),
    )));
    WebhookServer::start(config).await.unwrap()
}

#[tokio::test]
async fn certificate_rotation_mid_traffic_fails_no_request() {
    let env = TestEnv::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = file_backed_server(dir.path(), &pki).await;
    let base = format!("https://{}", server.addr());
    install_configurations(
        env.client(),
        pki.issuer.pem().as_bytes(),
        &WebhookTarget::Url(base),
    )
    .await
    .unwrap();
    let api: Api<Service> = Api::namespaced(env.client(), "default");
    let traffic = {
        let api = api.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let svc = service(&format!("svc-{i}"), json!({"ports": [{"port": 80}]}));
                let created = api.create(&PostParams::default(), &svc).await;
                let created = created.unwrap_or_else(|e| panic!("request {i} failed: {e}"));
                assert!(created.spec.unwrap().cluster_ip.is_some());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (cert, key) = pki.leaf();
        write_pair(dir.path(), &cert, &key);
    }
    traffic.await.unwrap();
    assert!(server.certificates().reloads() >= 1, "no reload seen");
    server.shutdown().await;
}

#[tokio::test]
async fn webhook_down_fails_closed_or_open_per_failure_policy() {
    let env = TestEnv::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = file_backed_server(dir.path(), &pki).await;
    let base = format!("https://{}", server.addr());
    install_configurations(
        env.client(),
        pki.issuer.pem().as_bytes(),
        &WebhookTarget::Url(base.clone()),
    )
    .await
    .unwrap();
    server.shutdown().await;
    let api: Api<Service> = Api::namespaced(env.client(), "default");
    let err = create(&api, &service("web", json!({"ports": [{"port": 80}]})))
        .await
        .unwrap_err();
    assert_eq!(err.code, 500);
    assert_eq!(err.reason, "InternalError");
    let prefix = format!(
        "Internal error occurred: failed calling webhook \"{SERVICES_MUTATING_WEBHOOK}\": failed to call webhook: Post \"{base}/mutate?timeout=10s\": "
    );
    assert!(err.message.starts_with(&prefix), "{}", err.message);

    // With Ignore everywhere the write goes through, unallocated.
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(env.client());
    let mut m = mutating.get("svcplane-webhook").await.unwrap();
    for hook in m.webhooks.iter_mut().flatten() {
        hook.failure_policy = Some("Ignore".into());
    }
    mutating
        .replace("svcplane-webhook", &PostParams::default(), &m)
        .await
        .unwrap();
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(env.client());
    let mut v = validating.get("svcplane-webhook").await.unwrap();
    for hook in v.webhooks.iter_mut().flatten() {
        hook.failure_policy = Some("Ignore".into());
    }
    validating
        .replace("svcplane-webhook", &PostParams::default(), &v)
        .await
        .unwrap();
    let created = create(&api, &service("web", json!({"ports": [{"port": 80}]})))
        .await
        .unwrap();
    assert_eq!(created.spec.unwrap().cluster_ip, None);
}

#[tokio::test]
async fn open_connections_survive_rotation_and_unknown_kinds_are_policy() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = file_backed_server(dir.path(), &pki).await;
    let ca = pki.issuer.pem();
    // One keep-alive connection across a rotation: the handshake already happened, requests go on.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "operation": "CREATE", "object": {}}});
    let mut answers = Vec::new();
    for round in 0..2 {
        if round == 1 {
            let (cert, key) = pki.leaf();
            write_pair(dir.path(), &cert, &key);
            assert!(server.certificates().reload_if_changed());
        }
        let req = http::Request::post("/validate")
            .header("host", "127.0.0.1")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                review.to_string(),
            )))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        use http_body_util::BodyExt;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        answers.push(serde_json::from_slice::<Value>(&body).unwrap());
    }
    for answer in answers {
        assert_eq!(
            answer["response"],
            json!({"uid": "u", "allowed": true,
                   "warnings": ["svcplane-webhook has no admission rules for apps/v1, Kind=Deployment"]})
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_registry_of_record_allocates_through_the_webhook() {
    use k8s_openapi::api::networking::v1::IPAddress;
    let common::RegistryBackedWebhook { env, server } =
        common::RegistryBackedWebhook::start().await;
    let api: Api<Service> = Api::namespaced(env.client(), "default");
    let created = create(
        &api,
        &service(
            "web",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        created.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.0.10")
    );
    let claim = Api::<IPAddress>::all(env.client())
        .get("10.96.0.10")
        .await
        .unwrap();
    assert_eq!(claim.spec.unwrap().parent_ref.name, "web");
    let err = create(
        &api,
        &service(
            "other",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        causes(&err),
        vec![(
            "spec.clusterIPs".to_owned(),
            "FieldValueInvalid".to_owned(),
            "Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated".to_owned()
        )]
    );
    server.shutdown().await;
}
