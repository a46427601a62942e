//! `/healthz`, `/readyz` and `/metrics` over plain HTTP, as kube-controller-manager serves them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gocompat::metrics_text;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::component::Shutdown;

/// Says whether the process is ready, or which checks fail.
pub type ReadinessCheck = Arc<dyn Fn() -> Vec<(String, bool)> + Send + Sync>;

/// What the endpoints serve.
#[derive(Clone)]
pub struct HealthState {
    /// Named readiness checks: all must pass for `/readyz`.
    pub readiness: ReadinessCheck,
    /// Everything `/metrics` exposes.
    pub metrics: Arc<Mutex<Registry>>,
}

/// Binds `addr` (set by `flag`) and serves until `shutdown`; returns the bound address and the
/// serving task.
pub async fn serve(
    flag: &str,
    addr: SocketAddr,
    state: HealthState,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| crate::flags::listen_error(flag, addr, &e))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "health endpoint: accept failed");
                        continue;
                    }
                },
                () = &mut stop => return Ok(()),
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(route(&state, &req)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn route<B>(state: &HealthState, req: &Request<B>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    match req.uri().path() {
        "/healthz" | "/livez" => text(StatusCode::OK, PLAIN, "ok".into()),
        "/readyz" => {
            let checks = (state.readiness)();
            let verbose = req.uri().query().is_some_and(|q| q.contains("verbose"));
            let ready = checks.iter().all(|(_, ok)| *ok);
            let mut body = String::new();
            for (name, ok) in &checks {
                if verbose || !ok {
                    let mark = if *ok { "+" } else { "-" };
                    let outcome = if *ok { "ok" } else { "failed: reason withheld" };
                    body.push_str(&format!("[{mark}]{name} {outcome}\n"));
                }
            }
            if ready {
                body.push_str(if verbose {
                    "readyz check passed\n"
                } else {
                    "ok"
                });
                text(StatusCode::OK, PLAIN, body)
            } else {
                body.push_str("readyz check failed\n");
                text(StatusCode::INTERNAL_SERVER_ERROR, PLAIN, body)
            }
        }
        "/metrics" => {
            // Upstream components answer in the 0.0.4 text format, whose counter names
            // dashboards and alerts are written against.
            let registry = state.metrics.lock().unwrap_or_else(|e| e.into_inner());
            match metrics_text::render(&registry) {
                Ok(body) => text(StatusCode::OK, metrics_text::CONTENT_TYPE, body),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, PLAIN, e.to_string()),
            }
        }
        _ => text(StatusCode::NOT_FOUND, PLAIN, "404 page not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ready: bool) -> HealthState {
        HealthState {
            readiness: Arc::new(move || {
                vec![
                    ("leader-election".to_string(), true),
                    ("endpointslice-caches".to_string(), ready),
                ]
            }),
            metrics: Arc::default(),
        }
    }

    #[test]
    fn metrics_are_prometheus_text_0_0_4() {
        let state = state(true);
        let syncs = prometheus_client::metrics::family::Family::<
            Vec<(String, String)>,
            prometheus_client::metrics::counter::Counter,
        >::default();
        state
            .metrics
            .lock()
            .unwrap()
            .sub_registry_with_prefix("endpoint_slice_controller")
            .register("syncs", "Number of EndpointSlice syncs", syncs.clone());
        syncs
            .get_or_create(&vec![("result".into(), "success".into())])
            .inc_by(3);
        let req = Request::builder().uri("/metrics").body(()).unwrap();
        assert_eq!(
            route(&state, &req).headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            get(&state, "/metrics"),
            (
                StatusCode::OK,
                "# HELP endpoint_slice_controller_syncs Number of EndpointSlice syncs\n\
                 # TYPE endpoint_slice_controller_syncs counter\n\
                 endpoint_slice_controller_syncs{result=\"success\"} 3\n"
                    .into()
            )
        );
    }

    fn get(state: &HealthState, path: &str) -> (StatusCode, String) {
        let req = Request::builder().uri(path).body(()).unwrap();
        let response = route(state, &req);
        let status = response.status();
        let body =
            futures::executor::block_on(http_body_util::BodyExt::collect(response.into_body()))
                .unwrap()
                .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn readyz_names_the_failing_check() {
        assert_eq!(get(&state(true), "/readyz"), (StatusCode::OK, "ok".into()));
        assert_eq!(
            get(&state(false), "/readyz"),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "[-]endpointslice-caches failed: reason withheld\nreadyz check failed\n".into()
            )
        );
        assert_eq!(
            get(&state(true), "/readyz?verbose"),
            (
                StatusCode::OK,
                "[+]leader-election ok\n[+]endpointslice-caches ok\nreadyz check passed\n".into()
            )
        );
        assert_eq!(
            get(&state(false), "/healthz"),
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(get(&state(false), "/nope").0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_workspace_family_is_exposed_under_its_upstream_name() {
        use allocator::registry::Scope;
        use controllers::allocation_repair::{RepairCounts, RepairMetrics, register};
        use controllers::endpointslice_controller::metrics::{EndpointSliceMetrics, SyncResult};

        let mut registry = Registry::default();
        let slices = EndpointSliceMetrics::new(&mut registry);
        let repair = RepairMetrics::default();
        register(&repair, &mut registry);
        slices.sync(SyncResult::Success);
        slices.change("create");
        repair
            .allocator
            .ip_allocated_once("10.96.0.0/12", Scope::Dynamic);
        repair.allocator.ip_error("10.96.0.0/12", Scope::Static);
        repair.allocator.port_allocated_once(Scope::Static);
        repair.allocator.port_error(Scope::Dynamic);
        repair.allocator.set_ip_usage("10.96.0.0/12", 3, 1_048_571);
        repair.count(&RepairCounts {
            ip_errors: [("leak", 2)].into(),
            port_errors: [("duplicate", 1)].into(),
        });
        let text = metrics_text::render(&registry).unwrap();
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        assert_eq!(
            types,
            [
                "# TYPE apiserver_clusterip_repair_ip_errors_total counter",
                "# TYPE apiserver_nodeport_repair_port_errors_total counter",
                "# TYPE endpoint_slice_controller_changes counter",
                "# TYPE endpoint_slice_controller_desired_endpoint_slices gauge",
                "# TYPE endpoint_slice_controller_endpoints_added_per_sync histogram",
                "# TYPE endpoint_slice_controller_endpoints_desired gauge",
                "# TYPE endpoint_slice_controller_endpoints_removed_per_sync histogram",
                "# TYPE endpoint_slice_controller_num_endpoint_slices gauge",
                "# TYPE endpoint_slice_controller_pod_ready_to_slice_write_seconds histogram",
                "# TYPE endpoint_slice_controller_syncs counter",
                "# TYPE kube_apiserver_clusterip_allocator_allocated_ips gauge",
                "# TYPE kube_apiserver_clusterip_allocator_allocation_errors_total counter",
                "# TYPE kube_apiserver_clusterip_allocator_allocation_total counter",
                "# TYPE kube_apiserver_clusterip_allocator_available_ips gauge",
                "# TYPE kube_apiserver_nodeport_allocator_allocated_ports gauge",
                "# TYPE kube_apiserver_nodeport_allocator_allocation_errors_total counter",
                "# TYPE kube_apiserver_nodeport_allocator_allocation_total counter",
                "# TYPE kube_apiserver_nodeport_allocator_available_ports gauge",
            ]
        );
        for line in [
            "apiserver_clusterip_repair_ip_errors_total{type=\"leak\"} 2",
            "apiserver_nodeport_repair_port_errors_total{type=\"duplicate\"} 1",
            "endpoint_slice_controller_changes{operation=\"create\"} 1",
            "endpoint_slice_controller_syncs{result=\"success\"} 1",
            "endpoint_slice_controller_endpoints_added_per_sync_bucket{le=\"32768\"} 0",
            "kube_apiserver_clusterip_allocator_allocation_total{cidr=\"10.96.0.0/12\",scope=\"dynamic\"} 1",
            "kube_apiserver_clusterip_allocator_allocation_errors_total{cidr=\"10.96.0.0/12\",scope=\"static\"} 1",
            "kube_apiserver_clusterip_allocator_available_ips{cidr=\"10.96.0.0/12\"} 1.048571e+06",
            "kube_apiserver_nodeport_allocator_allocation_total{scope=\"static\"} 1",
            "kube_apiserver_nodeport_allocator_allocation_errors_total{scope=\"dynamic\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("_total_total"), "{text}");
        assert!(!text.contains("_syncs_total"), "{text}");
    }
}
