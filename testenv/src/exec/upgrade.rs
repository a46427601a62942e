//! The HTTP side of `pods/exec`: the checks kube-apiserver makes before it upgrades (pod, container,
//! node), then a runtime for the node, the options the kubelet checks, and a transport svcplane
//! serves, the `101 Switching Protocols`
//! with `v5.channel.k8s.io`, and the hand-over of the upgraded connection to [`super::session`].
//!
//! Every refusal is a `Status` with a non-101 code. kubectl ≥ 1.30 takes any non-101 answer to its
//! WebSocket request as an upgrade failure and retries over SPDY; that retry meets the same
//! check and kubectl prints its `Status`, so the user reads the real reason either way.

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{ExecOptions, STREAM_PROTOCOL_V5, accepted_key, requested_transport};
use crate::pod_target::{Target, choose_container, get_pod, no_runtime, pod_ref, runtime_error};
use crate::server::{ApiServer, Body, error_response, parse_query_pairs};
use crate::status::ApiError;

/// Serves `GET|POST .../pods/{name}/exec`: a 101 and a running session, or a `Status`.
pub fn serve(
    server: &ApiServer,
    req: Request<Incoming>,
    namespace: &str,
    name: &str,
) -> Response<Body> {
    match accept(server, req, namespace, name) {
        Ok(response) => response,
        Err(e) => error_response(&e),
    }
}

fn accept(
    server: &ApiServer,
    req: Request<Incoming>,
    namespace: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let options = ExecOptions::from_query(&parse_query_pairs(req.uri().query().unwrap_or("")));
    let target = target(server, namespace, name, options.container.as_deref())?;
    options.check()?;
    let key = accepted_key(&requested_transport(req.headers()))?.to_string();
    let command = target
        .runtime
        .exec(&target.pod, &target.container, &options.command)
        .map_err(|e| runtime_error(&e))?;

    let argv = options.command.clone();
    let pod = format!("{}/{}", target.pod.namespace, target.pod.name);
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                super::session::run(ws, command, argv, options).await;
            }
            Err(e) => tracing::debug!(pod, "exec: the connection was not upgraded: {e}"),
        }
    });

    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(STREAM_PROTOCOL_V5),
    );
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

/// The pod, container and runtime of the request, checked in kube-apiserver's order
/// (`streamLocation`): the pod exists, the container is one of its, it is on a node.
fn target(
    server: &ApiServer,
    namespace: &str,
    name: &str,
    container: Option<&str>,
) -> Result<Target, ApiError> {
    let pod = get_pod(server, namespace, name)?;
    let container = choose_container(&pod, container)?;
    let pod = pod_ref(&pod).ok_or_else(|| {
        ApiError::bad_request(format!("pod {name} does not have a host assigned"))
    })?;
    let runtime = server.container_runtime().ok_or_else(|| no_runtime(&pod))?;
    Ok(Target {
        pod,
        container,
        runtime,
    })
}
