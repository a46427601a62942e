//! `/healthz`, `/readyz` and `/metrics` over plain HTTP, as kube-controller-manager serves them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::component::Shutdown;
use crate::metrics_text;

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

/// Binds `addr` and serves until `shutdown`; returns the bound address and the serving task.
pub async fn serve(
    addr: SocketAddr,
    state: HealthState,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
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
}
