//! A `kube::Client` whose writes pass only while this replica holds the leader lease: the
//! backstop behind the controllers' own checks, covering every write they make — events
//! published from a queue included — so a leader paused past its claim writes nothing on waking.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use controllers::leader_election::WriteGate;
use http::{Method, Request, Response};
use kube::client::Body;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error a refused write fails with.
#[derive(Debug, thiserror::Error)]
#[error("not the leader: write refused ({method} {path})")]
pub struct NotLeader {
    method: Method,
    path: String,
}

/// Wraps a client's service so that writes consult `gate`.
#[derive(Clone)]
pub struct WriteGateLayer(pub WriteGate);

impl<S> tower::Layer<S> for WriteGateLayer {
    type Service = GatedService<S>;

    fn layer(&self, inner: S) -> GatedService<S> {
        GatedService {
            inner,
            gate: self.0.clone(),
        }
    }
}

/// The service [`WriteGateLayer`] makes.
#[derive(Clone)]
pub struct GatedService<S> {
    inner: S,
    gate: WriteGate,
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl<S, B> tower::Service<Request<Body>> for GatedService<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if !is_read(request.method()) && !self.gate.allows_writes() {
            let refused = NotLeader {
                method: request.method().clone(),
                path: request.uri().path().to_string(),
            };
            return Box::pin(std::future::ready(Err(refused.into())));
        }
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map_err(Into::into) })
    }
}

/// `config`'s client with its writes gated on `gate`.
pub fn gated_client(config: kube::Config, gate: WriteGate) -> kube::Result<kube::Client> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&WriteGateLayer(gate))
        .build())
}
