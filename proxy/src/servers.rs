//! The health-check HTTP servers: one per Service with a healthCheckNodePort (on each NodePort
//! address, or 0.0.0.0 when all match), and the proxy's `/healthz` + `/livez`. Listeners come
//! from a [`ListenerFactory`], so that a caller can bind them inside a network namespace.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

use crate::health::{self, HealthResponse, ProxyHealth};
use crate::metrics::ProxyMetrics;
use crate::model::ServiceKey;
use crate::nft::IpFamily;
use crate::rules::NodePortSelection;

/// Makes a listening socket for an address (the default binds in this network namespace).
pub type ListenerFactory =
    Arc<dyn Fn(SocketAddr) -> std::io::Result<std::net::TcpListener> + Send + Sync>;

/// A factory that binds `addr` in the current network namespace.
pub fn plain_bind() -> ListenerFactory {
    Arc::new(|addr| {
        let listener = std::net::TcpListener::bind(addr)?;
        Ok(listener)
    })
}

/// The proxy's health, shared by the sync loop and the servers.
pub type SharedHealth = Arc<Mutex<ProxyHealth>>;

fn to_http(r: HealthResponse) -> http::Response<Full<Bytes>> {
    let mut builder = http::Response::builder().status(r.status);
    for (name, value) in r.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new())))
}

/// Serves `answer` for every request on `listener` until the task is aborted.
fn serve(
    listener: std::net::TcpListener,
    answer: Arc<dyn Fn(&str) -> HealthResponse + Send + Sync>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let response = to_http(answer(req.uri().path()));
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
}

/// Starts the proxy's `/healthz` and `/livez` server on `addr`; `metrics` counts the answers.
pub fn start_healthz(
    factory: &ListenerFactory,
    addr: SocketAddr,
    health: SharedHealth,
    node_eligible: Arc<dyn Fn() -> bool + Send + Sync>,
    metrics: ProxyMetrics,
) -> std::io::Result<JoinHandle<()>> {
    let listener = factory(addr)?;
    serve(
        listener,
        Arc::new(move |path| {
            let now = jiff::Timestamp::now();
            let health = health.lock().unwrap_or_else(|e| e.into_inner());
            match path {
                "/livez" => {
                    let answer = health::livez_response(&health, now);
                    metrics.livez_answered(answer.status);
                    answer
                }
                "/healthz" => {
                    let answer = health::healthz_response(&health, now, node_eligible());
                    metrics.healthz_answered(answer.status);
                    answer
                }
                _ => not_found(),
            }
        }),
    )
}

fn not_found() -> HealthResponse {
    HealthResponse {
        status: 404,
        headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
        body: "404 page not found\n".into(),
    }
}

/// What upstream's metrics server answers: `/metrics` in the Prometheus text format 0.0.4,
/// `/healthz` `ok`, `/proxyMode` `nftables`.
pub fn metrics_response(
    path: &str,
    registry: &prometheus_client::registry::Registry,
) -> HealthResponse {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let plain = |status, body: &str| HealthResponse {
        status,
        headers: vec![
            ("Content-Type", PLAIN.into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: body.into(),
    };
    match path {
        "/metrics" => match gocompat::metrics_text::render(registry) {
            Ok(body) => HealthResponse {
                status: 200,
                headers: vec![("Content-Type", gocompat::metrics_text::CONTENT_TYPE.into())],
                body,
            },
            Err(e) => plain(500, &e.to_string()),
        },
        "/healthz" => plain(200, "ok"),
        "/proxyMode" => plain(200, "nftables"),
        _ => not_found(),
    }
}

/// Starts the metrics server (`--metrics-bind-address`) on `addr`.
pub fn start_metrics(
    factory: &ListenerFactory,
    addr: SocketAddr,
    registry: Arc<prometheus_client::registry::Registry>,
) -> std::io::Result<JoinHandle<()>> {
    let listener = factory(addr)?;
    serve(
        listener,
        Arc::new(move |path| metrics_response(path, &registry)),
    )
}

struct ServiceServer {
    port: u16,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ServiceServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The healthCheckNodePort servers, re-synced after every successful sync.
pub struct ServiceHealthServers {
    factory: ListenerFactory,
    addresses: Vec<IpAddr>,
    health: SharedHealth,
    local_endpoints: Arc<RwLock<BTreeMap<ServiceKey, usize>>>,
    servers: BTreeMap<ServiceKey, ServiceServer>,
}

impl ServiceHealthServers {
    /// Servers of `family` listening on the NodePort addresses (0.0.0.0 or :: when they match
    /// all).
    pub fn new(
        factory: ListenerFactory,
        family: IpFamily,
        addresses: &NodePortSelection,
        health: SharedHealth,
    ) -> Self {
        ServiceHealthServers {
            factory,
            addresses: match addresses {
                NodePortSelection::All if family == IpFamily::V6 => {
                    vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)]
                }
                NodePortSelection::All => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
                NodePortSelection::Ips(ips) => ips.clone(),
            },
            health,
            local_endpoints: Arc::default(),
            servers: BTreeMap::new(),
        }
    }

    /// Opens servers for new Services, closes those gone or moved; sets the endpoint counts.
    /// Returns the Services whose server could not be started (tried again at the next sync),
    /// with the port and the listen error.
    pub fn sync(
        &mut self,
        ports: &BTreeMap<ServiceKey, u16>,
        local_endpoints: &BTreeMap<ServiceKey, usize>,
    ) -> Vec<(ServiceKey, u16, String)> {
        *self
            .local_endpoints
            .write()
            .unwrap_or_else(|e| e.into_inner()) = local_endpoints.clone();
        self.servers
            .retain(|key, server| ports.get(key) == Some(&server.port));
        let mut failures = Vec::new();
        for (key, port) in ports {
            if self.servers.contains_key(key) {
                continue;
            }
            let mut server = ServiceServer {
                port: *port,
                tasks: Vec::new(),
            };
            let mut failed = None;
            for ip in &self.addresses {
                let counts = self.local_endpoints.clone();
                let health = self.health.clone();
                let key2 = key.clone();
                let answer = Arc::new(move |_: &str| {
                    let count = counts
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&key2)
                        .copied()
                        .unwrap_or(0);
                    let healthy = health
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .read(jiff::Timestamp::now())
                        .healthy;
                    health::service_health_response(&key2.0, &key2.1, count, healthy)
                });
                match (self.factory)(SocketAddr::new(*ip, *port)).and_then(|l| serve(l, answer)) {
                    Ok(task) => server.tasks.push(task),
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            match failed {
                None => {
                    self.servers.insert(key.clone(), server);
                }
                Some(reason) => failures.push((key.clone(), *port, reason)),
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A factory that binds loopback on a free port whatever it is asked for, and reports it.
    fn loopback_factory(bound: Arc<Mutex<Vec<SocketAddr>>>) -> ListenerFactory {
        Arc::new(move |_addr| {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            bound.lock().unwrap().push(l.local_addr()?);
            Ok(l)
        })
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("writes");
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .expect("answers")
            .expect("reads");
        out
    }

    #[test]
    fn the_metrics_server_answers_as_upstreams() {
        let metrics = ProxyMetrics::default();
        metrics.sync_failed(crate::nft::IpFamily::V4);
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let answer = metrics_response("/metrics", &registry);
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.headers,
            vec![(
                "Content-Type",
                "text/plain; version=0.0.4; charset=utf-8".to_string()
            )]
        );
        assert!(
            answer.body.contains(
                "kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv4\"} 1\n"
            ),
            "{}",
            answer.body
        );
        assert_eq!(metrics_response("/proxyMode", &registry).body, "nftables");
        assert_eq!(metrics_response("/healthz", &registry).body, "ok");
        assert_eq!(metrics_response("/configz", &registry).status, 404);
    }

    #[tokio::test]
    async fn healthz_livez_and_service_servers_answer_through_the_factory() {
        let bound = Arc::new(Mutex::new(Vec::new()));
        let factory = loopback_factory(bound.clone());
        let health: SharedHealth = Arc::new(Mutex::new(ProxyHealth::new(Duration::from_secs(60))));
        health
            .lock()
            .unwrap()
            .updated(crate::nft::IpFamily::V4, jiff::Timestamp::now());
        let healthz = start_healthz(
            &factory,
            "0.0.0.0:10256".parse().unwrap(),
            health.clone(),
            Arc::new(|| true),
            ProxyMetrics::default(),
        )
        .expect("binds");
        let addr = bound.lock().unwrap()[0];
        let answer = get(addr, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("\"nodeEligible\":true,\"healthy\":true"),
            "{answer}"
        );
        assert!(get(addr, "/livez").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/other").await.starts_with("HTTP/1.1 404"));
        healthz.abort();

        let mut servers = ServiceHealthServers::new(
            factory,
            crate::nft::IpFamily::V4,
            &NodePortSelection::Ips(vec!["172.18.0.2".parse().unwrap()]),
            health,
        );
        let key = ("ns".to_string(), "web".to_string());
        let failures = servers.sync(&BTreeMap::from([(key.clone(), 30000)]), &BTreeMap::new());
        assert!(failures.is_empty());
        let addr = bound.lock().unwrap()[1];
        let answer = get(addr, "/anything").await;
        assert!(
            answer.starts_with("HTTP/1.1 503"),
            "no local endpoint yet: {answer}"
        );
        servers.sync(
            &BTreeMap::from([(key.clone(), 30000)]),
            &BTreeMap::from([(key.clone(), 2)]),
        );
        let answer = get(addr, "/").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("x-load-balancing-endpoint-weight: 2")
        );
        assert!(answer.ends_with("\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"));
        // The Service goes: its server closes.
        servers.sync(&BTreeMap::new(), &BTreeMap::new());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "closed"
        );
    }
}
