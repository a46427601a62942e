//! The HTTPS admission server (`svcplane webhook`): rustls with a reloading certificate,
//! `/validate`, `/mutate`, `/healthz`, `/readyz`, `/metrics`, a body-size limit, a request
//! timeout and graceful shutdown.

pub mod admission;
pub mod allocation;
#[cfg(feature = "testing")]
pub mod embedded;
#[cfg(feature = "testing")]
pub mod in_memory;
pub mod install;
pub mod lookup;
pub mod metrics;
mod registry;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gocompat::metrics_text;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use kuberun::{Shutdown, ShutdownTrigger, shutdown_channel};
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use admission::{
    AdmissionHandler, AdmissionPolicy, Phase, ReviewAnswer, ReviewOutcome, UnknownKindPolicy,
};
pub use allocation::{Allocation, AllocationRejection, HeldValues, ServiceAllocator};
#[cfg(feature = "testing")]
pub use embedded::{EmbeddedWebhook, EmbeddedWebhookOptions};
#[cfg(feature = "testing")]
pub use in_memory::InMemoryAllocator;
pub use install::{
    WebhookTarget, install_configurations, mutating_configuration, validating_configuration,
};
pub use lookup::{ClusterIpLookup, ServiceClusterIpIndex};
pub use metrics::WebhookMetrics;
pub use tls::{CertificateError, CertificateSource, ReloadingCertResolver};

/// The apiserver's own limit on a request body (3 MiB); larger reviews cannot be legitimate.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// The apiserver's default webhook timeout; answering later is pointless.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How to run the server.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Where to listen (port 0 picks one).
    pub bind: SocketAddr,
    /// The serving certificate.
    pub certificate: CertificateSource,
    /// The validation rules.
    pub policy: AdmissionPolicy,
    /// Who allocates on `/mutate`; `None` admits Services unchanged there.
    pub allocator: Option<Arc<dyn ServiceAllocator>>,
    /// Service lookup for the ClusterIP-as-endpoint warning; `None` gives no such warnings.
    pub services: Option<Arc<dyn ClusterIpLookup>>,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// Requests not answered within this time get 504.
    pub request_timeout: Duration,
    /// How long shutdown waits for open requests before dropping connections.
    pub shutdown_grace: Duration,
}

impl WebhookConfig {
    /// A config with the defaults: no allocator, no lookup, 3 MiB, 10 s, 10 s grace.
    pub fn new(bind: SocketAddr, certificate: CertificateSource, policy: AdmissionPolicy) -> Self {
        WebhookConfig {
            bind,
            certificate,
            policy,
            allocator: None,
            services: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The certificate is unusable.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The admission server.
pub struct WebhookServer;

/// A running server; dropping it stops accepting and aborts open connections, prefer
/// [`WebhookHandle::shutdown`].
pub struct WebhookHandle {
    addr: SocketAddr,
    resolver: Arc<ReloadingCertResolver>,
    metrics: Arc<Registry>,
    stop: ShutdownTrigger,
    task: Option<JoinHandle<()>>,
}

impl WebhookHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The certificate resolver (to force a reload check, or count reloads).
    pub fn certificates(&self) -> &ReloadingCertResolver {
        &self.resolver
    }

    /// The metrics as `/metrics` serves them (Prometheus text format 0.0.4).
    pub fn metrics_text(&self) -> Result<String, metrics_text::MetricsTextError> {
        metrics_text::render(&self.metrics)
    }

    /// Stops accepting, lets open requests finish (up to the grace period), then returns.
    pub async fn shutdown(mut self) {
        self.stop.fire();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WebhookHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Shared {
    handler: AdmissionHandler,
    metrics: WebhookMetrics,
    registry: Arc<Registry>,
    max_body_bytes: usize,
    request_timeout: Duration,
}

impl WebhookServer {
    /// Binds, loads the certificate and serves until [`WebhookHandle::shutdown`].
    pub async fn start(config: WebhookConfig) -> Result<WebhookHandle, ServerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(ReloadingCertResolver::new(
            &config.certificate,
            provider.clone(),
        )?);
        let tls = tls::server_config(resolver.clone(), provider)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.bind,
            source,
        })?;
        let metrics = WebhookMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let registry = Arc::new(registry);
        let shared = Arc::new(Shared {
            handler: AdmissionHandler::new(config.policy, config.allocator, config.services),
            metrics,
            registry: registry.clone(),
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
        });
        let (stop, stopped) = shutdown_channel();
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            shared,
            stopped,
            config.shutdown_grace,
        ));
        tracing::info!(%addr, "admission webhook serving");
        Ok(WebhookHandle {
            addr,
            resolver,
            metrics: registry,
            stop,
            task: Some(task),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    stopped: Shutdown,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stopped.clone().wait());
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                connections.spawn(serve_connection(tcp, acceptor.clone(), shared.clone(), stopped.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    stopped: Shutdown,
) {
    // A client that never finishes its handshake must not hold a task forever.
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(&shared, req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopped.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

// A plain-HTTP error answer carries a Status so the apiserver shows our message.
fn status_answer(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let mut status = admission::bad_request(message);
    status.code = code.as_u16();
    status.reason = reason.to_owned();
    json(code, status.to_json().into_bytes())
}

// The format every upstream component, and svcplane's own health listeners, answer with.
fn metrics_answer(registry: &Registry) -> Response<Full<Bytes>> {
    match metrics_text::render(registry) {
        Ok(body) => {
            let mut resp = text(StatusCode::OK, body);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(metrics_text::CONTENT_TYPE),
            );
            resp
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let phase = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok"),
        (&Method::GET, "/readyz") => {
            return if shared.handler.is_ready() {
                text(StatusCode::OK, "ok")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "allocator or Service cache not synced",
                )
            };
        }
        (&Method::GET, "/metrics") => return metrics_answer(&shared.registry),
        (&Method::POST, "/validate") => Phase::Validate,
        (&Method::POST, "/mutate") => Phase::Mutate,
        (_, "/validate" | "/mutate" | "/healthz" | "/readyz" | "/metrics") => {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        (_, path) => return text(StatusCode::NOT_FOUND, format!("no handler for {path}")),
    };
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let timeout = shared.request_timeout;
    let answered = tokio::time::timeout(timeout, review(shared, phase, req)).await;
    let (resp, operation, outcome) = match answered {
        Ok(r) => r,
        Err(_) => (
            status_answer(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                &format!(
                    "the admission review was not answered within {}s",
                    timeout.as_secs_f64()
                ),
            ),
            "unknown".to_owned(),
            ReviewOutcome::Error,
        ),
    };
    shared.metrics.observe(
        &path,
        &operation,
        outcome.as_str(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

async fn review(
    shared: &Shared,
    phase: Phase,
    req: Request<Incoming>,
) -> (Response<Full<Bytes>>, String, ReviewOutcome) {
    let limit = shared.max_body_bytes;
    let too_large = || {
        (
            status_answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("the AdmissionReview is larger than {limit} bytes"),
            ),
            "malformed".to_owned(),
            ReviewOutcome::Error,
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return (
                status_answer(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("reading the request body: {e}"),
                ),
                "malformed".to_owned(),
                ReviewOutcome::Error,
            );
        }
    };
    match shared.handler.review(phase, &body).await {
        Ok(answer) => {
            let body = crate::admission_review::AdmissionReview::answer(answer.response).to_json();
            (json(StatusCode::OK, body), answer.operation, answer.outcome)
        }
        Err(e) => (
            status_answer(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
            "malformed".to_owned(),
            ReviewOutcome::Error,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prometheus_text_0_0_4_with_the_counter_named_as_registered() {
        let metrics = WebhookMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.observe("/validate", "Service/CREATE", "denied", 0.125);
        metrics.observe("/validate", "Service/CREATE", "denied", 0.25);
        metrics.observe("/mutate", "malformed", "error", 0.2);
        let resp = metrics_answer(&registry);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = futures::executor::block_on(resp.into_body().collect())
            .unwrap()
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        let requests: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("svcplane_webhook_requests_total"))
            .collect();
        assert_eq!(
            requests,
            [
                "svcplane_webhook_requests_total{operation=\"Service/CREATE\",outcome=\"denied\",path=\"/validate\"} 2",
                "svcplane_webhook_requests_total{operation=\"malformed\",outcome=\"error\",path=\"/mutate\"} 1",
            ]
        );
        for line in [
            "# TYPE svcplane_webhook_requests_total counter",
            "# TYPE svcplane_webhook_request_duration_seconds histogram",
            "svcplane_webhook_request_duration_seconds_bucket{operation=\"Service/CREATE\",outcome=\"denied\",path=\"/validate\",le=\"0.2048\"} 1",
            "svcplane_webhook_request_duration_seconds_bucket{operation=\"Service/CREATE\",outcome=\"denied\",path=\"/validate\",le=\"0.4096\"} 2",
            "svcplane_webhook_request_duration_seconds_sum{operation=\"Service/CREATE\",outcome=\"denied\",path=\"/validate\"} 0.375",
            "svcplane_webhook_request_duration_seconds_count{operation=\"malformed\",outcome=\"error\",path=\"/mutate\"} 1",
        ] {
            assert!(body.lines().any(|l| l == line), "missing {line} in\n{body}");
        }
        for openmetrics_only in ["_total_total", "_created", "# EOF"] {
            assert!(!body.contains(openmetrics_only), "{body}");
        }
    }
}
