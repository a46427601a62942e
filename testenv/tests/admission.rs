//! The admission chain end to end: testenv calls real HTTPS webhooks (rcgen CA, tokio-rustls +
//! hyper server) and kube::Client sees what kube-apiserver would answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, PostParams};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use testenv::TestEnv;

/// A certificate authority for one test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    /// The caBundle: base64 of the PEM.
    fn bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.issuer.pem())
    }

    fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

type Handler = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

/// An HTTPS webhook server answering AdmissionReviews with `handler`.
struct WebhookServer {
    addr: SocketAddr,
    reviews: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookServer {
    async fn start(ca: &TestCa, names: &[&str], delay: Duration, handler: Handler) -> Self {
        let (certs, key) = ca.leaf(names);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let seen = reviews.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let handler = handler.clone();
                            let seen = seen.clone();
                            async move {
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let review: Value = serde_json::from_slice(&body).unwrap();
                                seen.lock().unwrap().push(review.clone());
                                tokio::time::sleep(delay).await;
                                let answer = handler(&review);
                                let mut resp = http::Response::new(Full::new(Bytes::from(
                                    serde_json::to_vec(&answer).unwrap(),
                                )));
                                resp.headers_mut().insert(
                                    http::header::CONTENT_TYPE,
                                    http::HeaderValue::from_static("application/json"),
                                );
                                Ok::<_, Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            reviews,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn reviews(&self) -> Vec<Value> {
        self.reviews.lock().unwrap().clone()
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn uid_of(review: &Value) -> Value {
    review["request"]["uid"].clone()
}

fn allow(review: &Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "response": {"uid": uid_of(review), "allowed": true}})
}

fn deny(review: &Value, status: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "response": {"uid": uid_of(review), "allowed": false, "status": status}})
}

fn rules(resources: &[&str]) -> Value {
    json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": resources}])
}

async fn add_validating(env: &TestEnv, name: &str, hook: Value) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(env.client());
    let config =
        serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": [hook]})).unwrap();
    api.create(&PostParams::default(), &config).await.unwrap();
}

async fn add_mutating(env: &TestEnv, name: &str, hooks: Value) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(env.client());
    let config =
        serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": hooks})).unwrap();
    api.create(&PostParams::default(), &config).await.unwrap();
}

fn configmap(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn mutating_webhook_adds_a_label_with_a_json_patch() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let hook = WebhookServer::start(
        &ca,
        &["127.0.0.1"],
        Duration::ZERO,
        Arc::new(|review| {
            let patch = json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]);
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": uid_of(review), "allowed": true, "patchType": "JSONPatch",
                    "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())}})
        }),
    )
    .await;
    add_mutating(
        &env,
        "labeler",
        json!([{"name": "labeler.example.com", "rules": rules(&["configmaps"]),
            "clientConfig": {"url": hook.url("/mutate"), "caBundle": ca.bundle()},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]}]),
    )
    .await;

    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let created = api
        .create(
            &PostParams::default(),
            &configmap("web", json!({"app": "web"})),
        )
        .await
        .unwrap();
    let labels = created.metadata.labels.clone().unwrap();
    assert_eq!(labels.get("mutated").map(String::as_str), Some("yes"));
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));

    let reviews = hook.reviews();
    assert_eq!(reviews.len(), 1);
    let req = &reviews[0]["request"];
    assert_eq!(reviews[0]["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        req["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(req["namespace"], "default");
    assert_eq!(req["name"], "web");
    assert_eq!(req["dryRun"], false);
    assert_eq!(req["object"]["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(req["oldObject"], Value::Null);
    assert_eq!(req["options"]["kind"], "CreateOptions");

    // An update goes through the webhook too, with the old object.
    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "v2".to_string())].into());
    api.replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    let reviews = hook.reviews();
    assert_eq!(reviews.len(), 2);
    assert_eq!(reviews[1]["request"]["operation"], "UPDATE");
    assert_eq!(
        reviews[1]["request"]["oldObject"]["data"],
        json!({"k": "v"})
    );
}

const SPEC_422_MESSAGE: &str = "Service \"web\" is invalid: spec.ports[0].name: Invalid value: \"123_abc\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SPEC_422_CAUSE: &str = "Invalid value: \"123_abc\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[tokio::test]
async fn a_validating_denial_reaches_the_client_as_the_webhooks_422() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let hook = WebhookServer::start(
        &ca,
        &["127.0.0.1"],
        Duration::ZERO,
        Arc::new(|review| {
            deny(
                review,
                json!({"status": "Failure", "code": 422, "reason": "Invalid",
                    "message": SPEC_422_MESSAGE,
                    "details": {"name": "web", "kind": "Service", "causes": [
                        {"reason": "FieldValueInvalid", "field": "spec.ports[0].name",
                         "message": SPEC_422_CAUSE}]}}),
            )
        }),
    )
    .await;
    add_validating(
        &env,
        "services",
        json!({"name": "services.svcplane.io", "rules": rules(&["services"]),
            "clientConfig": {"url": hook.url("/validate"), "caBundle": ca.bundle()},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]}),
    )
    .await;
    let api: Api<Service> = Api::default_namespaced(env.client());
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"ports": [{"name": "123_abc", "port": 80}]}}))
    .unwrap();
    let status = api_error(api.create(&PostParams::default(), &svc).await.unwrap_err());
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert_eq!(
        status.message,
        format!(
            "admission webhook \"services.svcplane.io\" denied the request: {SPEC_422_MESSAGE}"
        )
    );
    let details = status.details.expect("details kept");
    assert_eq!(details.name, "web");
    assert_eq!(details.kind, "Service");
    assert_eq!(details.causes.len(), 1);
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");
    assert_eq!(details.causes[0].field, "spec.ports[0].name");
    assert_eq!(details.causes[0].message, SPEC_422_CAUSE);
    // Validating webhooks see the defaulted object (protocol and targetPort filled in).
    let review = &hook.reviews()[0];
    assert_eq!(
        review["request"]["object"]["spec"]["ports"][0]["protocol"],
        "TCP"
    );
    // Nothing was stored.
    assert!(api.get_opt("web").await.unwrap().is_none());
}

#[tokio::test]
async fn an_unreachable_webhook_fails_closed_or_open_by_failure_policy() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let down = closed_port();
    let hook = |name: &str, policy: &str, label: &str| {
        json!({"name": name, "rules": rules(&["configmaps"]), "failurePolicy": policy,
            "objectSelector": {"matchLabels": {"policy": label}},
            "clientConfig": {"url": format!("https://{down}/validate"), "caBundle": ca.bundle()},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]})
    };
    add_validating(&env, "fail", hook("fail.example.com", "Fail", "fail")).await;
    add_validating(
        &env,
        "ignore",
        hook("ignore.example.com", "Ignore", "ignore"),
    )
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());

    let status = api_error(
        api.create(
            &PostParams::default(),
            &configmap("closed", json!({"policy": "fail"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 500);
    assert_eq!(status.reason, "InternalError");
    assert_eq!(
        status.message,
        format!(
            "Internal error occurred: failed calling webhook \"fail.example.com\": failed to call webhook: Post \"https://{down}/validate?timeout=10s\": dial tcp {down}: connect: connection refused"
        )
    );
    api.create(
        &PostParams::default(),
        &configmap("open", json!({"policy": "ignore"})),
    )
    .await
    .expect("failurePolicy Ignore lets the request through");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_calling_error() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let other = TestCa::new();
    let hook = WebhookServer::start(&ca, &["127.0.0.1"], Duration::ZERO, Arc::new(allow)).await;
    add_validating(
        &env,
        "untrusted",
        json!({"name": "untrusted.example.com", "rules": rules(&["configmaps"]),
            "clientConfig": {"url": hook.url("/v"), "caBundle": other.bundle()},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]}),
    )
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let status = api_error(
        api.create(&PostParams::default(), &configmap("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        format!(
            "Internal error occurred: failed calling webhook \"untrusted.example.com\": failed to call webhook: Post \"{}?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
            hook.url("/v")
        )
    );
    assert!(hook.reviews().is_empty());
}

#[tokio::test]
async fn namespace_and_object_selectors_pick_the_requests_a_webhook_sees() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let hook = WebhookServer::start(
        &ca,
        &["127.0.0.1"],
        Duration::ZERO,
        Arc::new(|review| {
            deny(
                review,
                json!({"code": 403, "reason": "Forbidden", "message": "no"}),
            )
        }),
    )
    .await;
    add_validating(
        &env,
        "selective",
        json!({"name": "selective.example.com", "rules": rules(&["configmaps"]),
            "namespaceSelector": {"matchLabels": {"admission": "enabled"}},
            "objectSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
            "clientConfig": {"url": hook.url("/v"), "caBundle": ca.bundle()},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]}),
    )
    .await;
    let namespaces: Api<Namespace> = Api::all(env.client());
    for (name, labels) in [
        ("watched", json!({"admission": "enabled"})),
        ("other", json!({})),
    ] {
        let ns =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let watched: Api<ConfigMap> = Api::namespaced(env.client(), "watched");
    let other: Api<ConfigMap> = Api::namespaced(env.client(), "other");

    let status = api_error(
        watched
            .create(&PostParams::default(), &configmap("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        "admission webhook \"selective.example.com\" denied the request: no"
    );
    watched
        .create(
            &PostParams::default(),
            &configmap("b", json!({"skip": "true"})),
        )
        .await
        .expect("objectSelector excludes labelled objects");
    other
        .create(&PostParams::default(), &configmap("c", json!({})))
        .await
        .expect("namespaceSelector excludes unlabelled namespaces");
    assert_eq!(hook.reviews().len(), 1);
}

#[tokio::test]
async fn a_slow_webhook_times_out_after_timeout_seconds() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let hook =
        WebhookServer::start(&ca, &["127.0.0.1"], Duration::from_secs(5), Arc::new(allow)).await;
    add_validating(
        &env,
        "slow",
        json!({"name": "slow.example.com", "rules": rules(&["configmaps"]), "timeoutSeconds": 1,
            "clientConfig": {"url": hook.url("/v"), "caBundle": ca.bundle()},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]}),
    )
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let started = Instant::now();
    let status = api_error(
        api.create(&PostParams::default(), &configmap("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        format!(
            "Internal error occurred: failed calling webhook \"slow.example.com\": failed to call webhook: Post \"{}?timeout=1s\": context deadline exceeded",
            hook.url("/v")
        )
    );
}

#[tokio::test]
async fn service_references_resolve_through_registered_addresses() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let hook = WebhookServer::start(
        &ca,
        &["svcplane-webhook.svcplane-system.svc"],
        Duration::ZERO,
        Arc::new(|review| {
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": uid_of(review), "allowed": true,
                    "warnings": ["spec.ports[0]: port 80 is \"fine\""]}})
        }),
    )
    .await;
    add_validating(
        &env,
        "by-service",
        json!({"name": "svc.example.com", "rules": rules(&["configmaps"]),
            "clientConfig": {"service": {"namespace": "svcplane-system", "name": "svcplane-webhook",
                "path": "/validate", "port": 8443}, "caBundle": ca.bundle()},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]}),
    )
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let status = api_error(
        api.create(&PostParams::default(), &configmap("before", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        status.message,
        "Internal error occurred: failed calling webhook \"svc.example.com\": failed to call webhook: Post \"https://svcplane-webhook.svcplane-system.svc:8443/validate?timeout=10s\": dial tcp: lookup svcplane-webhook.svcplane-system.svc: no such host"
    );

    env.server().admission().register_service_address(
        "svcplane-system",
        "svcplane-webhook",
        8443,
        hook.addr,
    );
    // Warnings come back as `Warning: 299 - "..."` headers; read the raw response to see them.
    let body = serde_json::to_vec(&configmap("after", json!({}))).unwrap();
    let request = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body))
        .unwrap();
    let response = env.client().send(request).await.unwrap();
    assert_eq!(response.status(), 201);
    let warnings: Vec<&str> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(warnings, [r#"299 - "spec.ports[0]: port 80 is \"fine\"""#]);
    assert_eq!(hook.reviews()[0]["request"]["name"], "after");
}

#[tokio::test]
async fn dry_run_requests_skip_nothing_and_reject_webhooks_with_side_effects() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let hook = WebhookServer::start(&ca, &["127.0.0.1"], Duration::ZERO, Arc::new(allow)).await;
    add_validating(
        &env,
        "effects",
        json!({"name": "effects.example.com", "rules": rules(&["configmaps"]),
            "clientConfig": {"url": hook.url("/v"), "caBundle": ca.bundle()},
            "sideEffects": "Some", "admissionReviewVersions": ["v1"]}),
    )
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let status = api_error(
        api.create(&pp, &configmap("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 400);
    assert_eq!(status.reason, "BadRequest");
    assert_eq!(
        status.message,
        "admission webhook \"effects.example.com\" does not support dry run"
    );
    assert!(hook.reviews().is_empty());
    api.create(&PostParams::default(), &configmap("x", json!({})))
        .await
        .unwrap();
    assert_eq!(hook.reviews().len(), 1);
}

#[tokio::test]
async fn if_needed_webhooks_are_reinvoked_after_later_changes() {
    let env = TestEnv::start().await.unwrap();
    let ca = TestCa::new();
    let patcher = |label: &'static str| -> Handler {
        Arc::new(move |review: &Value| {
            let has = review["request"]["object"]["metadata"]["labels"]
                .get(label)
                .is_some();
            let mut resp = json!({"uid": uid_of(review), "allowed": true});
            if !has {
                let patch = json!([{"op": "add", "path": format!("/metadata/labels/{label}"), "value": "1"}]);
                resp["patchType"] = json!("JSONPatch");
                resp["patch"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            }
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
        })
    };
    let first = WebhookServer::start(&ca, &["127.0.0.1"], Duration::ZERO, patcher("first")).await;
    let second = WebhookServer::start(&ca, &["127.0.0.1"], Duration::ZERO, patcher("second")).await;
    let hook = |name: &str, server: &WebhookServer| {
        json!({"name": name, "rules": rules(&["configmaps"]), "reinvocationPolicy": "IfNeeded",
            "clientConfig": {"url": server.url("/m"), "caBundle": ca.bundle()},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]})
    };
    add_mutating(
        &env,
        "chain",
        json!([
            hook("first.example.com", &first),
            hook("second.example.com", &second)
        ]),
    )
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let created = api
        .create(&PostParams::default(), &configmap("x", json!({"app": "x"})))
        .await
        .unwrap();
    let labels = created.metadata.labels.unwrap();
    assert!(labels.contains_key("first") && labels.contains_key("second"));
    // `first` ran again because `second` changed the object after it; `second` did not.
    assert_eq!(first.reviews().len(), 2);
    assert_eq!(second.reviews().len(), 1);
    assert_eq!(
        first.reviews()[1]["request"]["object"]["metadata"]["labels"]["second"],
        "1"
    );
}

/// An in-process step answering with `handler`, counting its calls per phase.
struct Step {
    handler: Handler,
    calls: Arc<Mutex<Vec<(bool, String)>>>,
}

impl testenv::admission::in_process::InProcessAdmission for Step {
    fn review(
        &self,
        mutating: bool,
        review: Value,
    ) -> testenv::admission::in_process::ReviewFuture {
        let operation = review["request"]["operation"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        self.calls.lock().unwrap().push((mutating, operation));
        let answer = (self.handler)(&review);
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn an_in_process_step_mutates_and_its_denial_is_the_apis_own_error() {
    let env = TestEnv::start().await.unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let step = Step {
        calls: calls.clone(),
        handler: Arc::new(|review| {
            let name = review["request"]["name"].as_str().unwrap_or("");
            if review["request"]["object"].is_null() {
                return allow(review);
            }
            if name == "refused" {
                return deny(
                    review,
                    json!({"status": "Failure", "code": 422, "reason": "Invalid",
                           "message": "ConfigMap \"refused\" is invalid: data: Invalid value"}),
                );
            }
            if review["request"]["object"]["metadata"]["labels"]["stamped"].is_string() {
                return allow(review);
            }
            let patch = json!([{"op": "add", "path": "/metadata/labels/stamped", "value": "yes"}]);
            let mut answer = allow(review);
            answer["response"]["patchType"] = json!("JSONPatch");
            answer["response"]["patch"] =
                json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            answer["response"]["warnings"] = json!(["stamped in process"]);
            answer
        }),
    };
    env.server()
        .admission()
        .register_in_process("", "configmaps", Arc::new(step));
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client());

    let created = cms
        .create(
            &PostParams::default(),
            &configmap("kept", json!({"a": "b"})),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.labels.unwrap()["stamped"], "yes");
    assert_eq!(
        *calls.lock().unwrap(),
        [(true, "CREATE".to_owned()), (false, "CREATE".to_owned())],
        "mutated, then validated, once each"
    );

    // No webhook name in front of the step's message: it is the API's own 422.
    let err = api_error(
        cms.create(&PostParams::default(), &configmap("refused", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "ConfigMap \"refused\" is invalid: data: Invalid value"
    );
    assert!(cms.get_opt("refused").await.unwrap().is_none());

    // Other kinds do not reach it.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(env.client());
    let before = calls.lock().unwrap().len();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(calls.lock().unwrap().len(), before);
}
