//! The HTTP front: routing of Kubernetes API paths, body limits, faults, the operation log, and
//! the listener with its connections (which a restart drops).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admission::AdmissionChain;
use crate::api::{ApiRequest, Verb};
use crate::faults::{FaultAction, Faults};
use crate::oplog::{OperationFields, OperationLog};
use crate::resources::{ResourceTable, ResourceType};
use crate::runtime::ContainerRuntime;
use crate::status::ApiError;
use crate::store::Store;

/// The response body type: whole JSON documents or a watch stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted, as kube-apiserver's 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Behaviour switches of the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Reject writes into namespaces that do not exist (upstream's NamespaceLifecycle admission).
    pub enforce_namespaces: bool,
    /// Allow creates in namespaces being deleted (off upstream).
    pub allow_writes_in_terminating_namespaces: bool,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// How the change events watches resume from are kept: per resource, as kube-apiserver's
    /// watch cache keeps them.
    pub watch_cache: crate::store::WatchCacheSizing,
    /// How many requests the operation log keeps (the most recent); `None` keeps every one,
    /// `Some(0)` none.
    pub operation_log_capacity: Option<usize>,
    /// The version `/version` reports.
    pub git_version: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            enforce_namespaces: true,
            allow_writes_in_terminating_namespaces: false,
            bookmark_interval: Duration::from_secs(5),
            watch_cache: crate::store::WatchCacheSizing::default(),
            operation_log_capacity: Some(crate::oplog::DEFAULT_OPERATION_LOG_CAPACITY),
            git_version: "v1.34.0-testenv".to_string(),
        }
    }
}

/// The API server's shared state.
pub struct ApiServer {
    pub(crate) store: Store,
    resources: RwLock<ResourceTable>,
    pub(crate) admission: AdmissionChain,
    pub(crate) options: ServerOptions,
    pub(crate) oplog: OperationLog,
    /// `apiserver_request_total`, served on `/metrics`.
    pub(crate) request_metrics: crate::request_metrics::RequestMetrics,
    pub(crate) faults: Faults,
    /// Bumped to end every open watch (restart, compaction).
    pub(crate) watch_epoch: watch::Sender<u64>,
    /// What serves `pods/exec` and `pods/log`, once registered.
    runtime: RwLock<Option<Arc<dyn ContainerRuntime>>>,
}

impl ApiServer {
    /// A server over `store`.
    pub fn new(store: Store, options: ServerOptions) -> Arc<Self> {
        let oplog = OperationLog::with_capacity(options.operation_log_capacity);
        Arc::new(Self {
            store,
            resources: RwLock::new(ResourceTable::builtin()),
            admission: AdmissionChain::new(),
            options,
            oplog,
            request_metrics: Default::default(),
            faults: Faults::default(),
            watch_epoch: watch::channel(0).0,
            runtime: RwLock::new(None),
        })
    }

    /// Registers what runs pods' containers, serving `pods/exec` and `pods/log` from then on.
    pub fn set_container_runtime(&self, runtime: Arc<dyn ContainerRuntime>) {
        *self.runtime.write().unwrap_or_else(|e| e.into_inner()) = Some(runtime);
    }

    /// The registered container runtime, if any.
    pub fn container_runtime(&self) -> Option<Arc<dyn ContainerRuntime>> {
        self.runtime
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The resource table (built-ins plus served CRDs).
    pub fn resources(&self) -> ResourceTable {
        self.resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn resources_mut(&self) -> std::sync::RwLockWriteGuard<'_, ResourceTable> {
        self.resources.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The admission chain (e.g. to register where a webhook Service listens).
    pub fn admission(&self) -> &AdmissionChain {
        &self.admission
    }

    /// The object store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Ends every open watch stream; clients reconnect.
    pub fn break_watches(&self) {
        self.watch_epoch.send_modify(|e| *e += 1);
    }

    /// Whether `path` lies under a group/version this server serves (`/api/v1/...`,
    /// `/apis/{group}/{version}/...`): there a 404 is a JSON Status, elsewhere Go's plain text.
    pub(crate) fn serves_group_version_of(&self, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, version) = match segs.as_slice() {
            ["api", version, ..] => ("", *version),
            ["apis", group, version, ..] => (*group, *version),
            _ => return false,
        };
        self.resources()
            .groups()
            .into_iter()
            .any(|(g, vs)| g == group && vs.iter().any(|v| v == version))
    }

    /// Kind-specific validation that testenv performs itself (beyond ObjectMeta).
    pub(crate) fn validate_kind(
        &self,
        rt: &ResourceType,
        obj: &Value,
        old: Option<&Value>,
    ) -> Option<Vec<crate::status::StatusCause>> {
        if !rt.is_builtin() {
            return Some(self.validate_custom_types(rt, obj));
        }
        crate::validation::validate(rt, obj, old)
    }

    /// A custom resource's values against the types of its CRD's structural schema, as
    /// apiextensions-apiserver's schema validation reports them (`FieldValueTypeInvalid`).
    fn validate_custom_types(
        &self,
        rt: &ResourceType,
        obj: &Value,
    ) -> Vec<crate::status::StatusCause> {
        let crds =
            crate::store::CollectionKey::new("apiextensions.k8s.io", "customresourcedefinitions");
        let crd = self
            .store
            .read()
            .get(&crds, "", &format!("{}.{}", rt.plural, rt.group));
        let Some(crd) = crd.map(|c| c.value()) else {
            return Vec::new();
        };
        let Some(schema) = crate::crd::version_schema(&crd, &rt.version) else {
            return Vec::new();
        };
        crate::crd::type_errors(schema, obj)
            .into_iter()
            .map(|e| {
                let actual = crate::meta::go_quote(e.actual);
                crate::status::cause(
                    "FieldValueTypeInvalid",
                    &e.path,
                    format!(
                        "Invalid value: {actual}: {} in body must be of type {}: {actual}",
                        e.path, e.expected
                    ),
                )
            })
            .collect()
    }

    /// Serves one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = parse_query(req.uri().query().unwrap_or(""));
        let headers = req.headers().clone();
        let header_str = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let accept = header_str(header::ACCEPT);
        let content_type = header_str(header::CONTENT_TYPE);
        let user_agent = header_str(header::USER_AGENT);

        if let Some((stream, namespace, name)) = crate::router::pod_stream(&path) {
            let response = self.serve_pod_stream(req, stream, &namespace, &name);
            self.log_pod_stream(
                &method,
                &path,
                stream,
                &namespace,
                &name,
                &response,
                &user_agent,
            );
            return response;
        }

        let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                let e = ApiError::too_large(
                    "the request body is larger than the server accepts (3 MiB)",
                );
                self.log(&method, &path, None, e.code, &user_agent);
                return error_response(&e);
            }
        };

        let routed = crate::router::route(&self, &method, &path, &query);
        let route = match routed {
            Ok(r) => r,
            Err(e) => {
                self.log(&method, &path, None, e.code, &user_agent);
                if e.code == 404 && !self.serves_group_version_of(&path) {
                    return plain_not_found();
                }
                return error_response(&e);
            }
        };
        let crate::router::Route::Resource {
            verb,
            resource,
            namespace,
            name,
            subresource,
        } = route
        else {
            let response = crate::discovery::serve_non_resource(&self, &route, &accept);
            self.log(
                &method,
                &path,
                None,
                response.status().as_u16(),
                &user_agent,
            );
            return response;
        };
        let api_req = ApiRequest {
            verb,
            resource,
            namespace,
            name,
            subresource,
            query,
            body,
            content_type,
            user_agent: user_agent.clone(),
        };
        let response = self.respond(&api_req, &accept).await;
        let mut response = self.once_durable(verb, response).await;
        let code = response.status().as_u16();
        if verb == Verb::Watch && response.status().is_success() {
            // kube-apiserver counts a watch in apiserver_request_total when it ends (its
            // instrumentation wraps the whole handler), so a watch still open is not counted.
            let labels = crate::request_metrics::RequestLabels::of(&api_req, code);
            let body = std::mem::replace(
                response.body_mut(),
                http_body_util::Empty::<Bytes>::new().boxed(),
            );
            *response.body_mut() = BoxBody::new(crate::request_metrics::CountedWhenDone::new(
                body,
                Arc::clone(&self),
                labels,
            ));
            self.log_operation(&method, &path, Some(&api_req), code, &user_agent);
            return response;
        }
        self.log(&method, &path, Some(&api_req), code, &user_agent);
        response
    }

    /// Serves `pods/exec` (GET or POST, upgraded) and `pods/log` (GET).
    fn serve_pod_stream(
        &self,
        req: Request<Incoming>,
        stream: crate::router::PodStream,
        namespace: &str,
        name: &str,
    ) -> Response<Body> {
        use crate::router::PodStream;
        match (stream, req.method()) {
            (PodStream::Exec, &Method::GET | &Method::POST) => {
                crate::exec::upgrade::serve(self, req, namespace, name)
            }
            (PodStream::Log, &Method::GET) => {
                let pairs = parse_query_pairs(req.uri().query().unwrap_or(""));
                crate::podlog::serve(self, namespace, name, &pairs)
            }
            _ => error_response(&ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn log_pod_stream(
        &self,
        method: &Method,
        path: &str,
        stream: crate::router::PodStream,
        namespace: &str,
        name: &str,
        response: &Response<Body>,
        user_agent: &str,
    ) {
        let (verb, subresource) = match stream {
            crate::router::PodStream::Exec if method == Method::POST => ("create", "exec"),
            crate::router::PodStream::Exec => ("get", "exec"),
            crate::router::PodStream::Log => ("get", "log"),
        };
        self.oplog.record(OperationFields {
            verb,
            path,
            group: "",
            resource: "pods",
            namespace,
            name,
            subresource,
            code: response.status().as_u16(),
            user_agent,
        });
    }

    /// Holds a response back until every change it could show is durable, as etcd only lets
    /// kube-apiserver see a write once its log entry is synced: a client never learns of a change
    /// that a crash could still lose. Watches gate each event instead.
    async fn once_durable(&self, verb: Verb, response: Response<Body>) -> Response<Body> {
        if verb == Verb::Watch && response.status().is_success() {
            return response;
        }
        match self.store.wait_durable().await {
            Ok(()) => response,
            Err(e) => error_response(&ApiError::internal(e.to_string())),
        }
    }

    /// Answers a routed resource request: injected faults first, then watch, the LIST fast
    /// path, or the general path with admission warnings as `Warning` headers.
    async fn respond(self: &Arc<Self>, api_req: &ApiRequest, accept: &str) -> Response<Body> {
        let mut response = self.respond_inner(api_req, accept).await;
        if let Some(w) = deprecation_warning(&api_req.resource)
            && let Ok(v) = header::HeaderValue::from_str(&crate::admission::warning_header_value(w))
        {
            response.headers_mut().append(header::WARNING, v);
        }
        response
    }

    async fn respond_inner(self: &Arc<Self>, api_req: &ApiRequest, accept: &str) -> Response<Body> {
        let verb = api_req.verb;
        if let Some(action) = self.faults.check(
            verb.as_str(),
            &api_req.resource.plural,
            api_req.namespace.as_deref().unwrap_or(""),
            api_req.name.as_deref().unwrap_or(""),
        ) {
            match action {
                FaultAction::Delay(d) => tokio::time::sleep(d).await,
                FaultAction::Hang => std::future::pending::<()>().await,
                fail @ FaultAction::Fail { .. } => {
                    let e = fail
                        .error()
                        .unwrap_or_else(|| ApiError::internal("injected"));
                    return error_response(&e);
                }
            }
        }
        if verb == Verb::Watch {
            return match crate::watch::start(self, api_req, accept) {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
        }
        if verb == Verb::List
            && !crate::representation::wants_table(accept)
            && !accept.contains("as=PartialObjectMetadata")
        {
            // Fast path: splice the stored JSON of each item; nothing is parsed.
            match self.list_raw(api_req) {
                Ok(Some((head, items))) => {
                    return bytes_response(200, "application/json", splice_list(&head, &items));
                }
                Ok(None) => {}
                Err(e) => return error_response(&e),
            }
        }
        let (result, warnings) =
            crate::admission::collect_warnings(self.serve_api(api_req.clone())).await;
        let mut response = match result {
            Ok(reply) => {
                let is_list = matches!(verb, Verb::List | Verb::DeleteCollection);
                let (content_type, body) = crate::representation::render(
                    self,
                    accept,
                    &api_req.resource,
                    reply.body,
                    is_list,
                    &api_req.query,
                );
                json_response(reply.code, &content_type, body)
            }
            Err(e) => error_response(&e),
        };
        for w in &warnings {
            if let Ok(v) = header::HeaderValue::from_str(&crate::admission::warning_header_value(w))
            {
                response.headers_mut().append(header::WARNING, v);
            }
        }
        response
    }

    /// Counts a request in `/metrics` and records it in the operation log.
    fn log(
        &self,
        method: &Method,
        path: &str,
        req: Option<&ApiRequest>,
        code: u16,
        user_agent: &str,
    ) {
        if let Some(r) = req {
            self.request_metrics
                .observe(crate::request_metrics::RequestLabels::of(r, code));
        }
        self.log_operation(method, path, req, code, user_agent);
    }

    /// Records a request in the operation log.
    fn log_operation(
        &self,
        method: &Method,
        path: &str,
        req: Option<&ApiRequest>,
        code: u16,
        user_agent: &str,
    ) {
        let fields = match req {
            Some(r) => OperationFields {
                verb: r.verb.as_str(),
                path,
                group: &r.resource.group,
                resource: &r.resource.plural,
                namespace: r.namespace.as_deref().unwrap_or(""),
                name: r.name.as_deref().unwrap_or(""),
                subresource: r.subresource.as_deref().unwrap_or(""),
                code,
                user_agent,
            },
            None => OperationFields {
                verb: method.as_str(),
                path,
                group: "",
                resource: "",
                namespace: "",
                name: "",
                subresource: "",
                code,
                user_agent,
            },
        };
        self.oplog.record(fields);
    }
}

/// What Go's mux answers for a path no API group serves (kube-apiserver's `NotFoundHandler`).
pub fn plain_not_found() -> Response<Body> {
    let mut r = bytes_response(
        404,
        "text/plain; charset=utf-8",
        Bytes::from_static(b"404 page not found\n"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    r
}

/// The warning kube-apiserver sends on every request to a deprecated resource.
fn deprecation_warning(rt: &ResourceType) -> Option<&'static str> {
    (rt.group.is_empty() && rt.version == "v1" && rt.plural == "endpoints")
        .then_some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
}

/// Parses a query string into a map (last value wins).
pub fn parse_query(q: &str) -> HashMap<String, String> {
    parse_query_pairs(q).into_iter().collect()
}

/// Parses a query string into its pairs, in order and with repeats (`command=sh&command=-c`).
pub fn parse_query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `head` (a list without items) with the raw JSON `items` spliced in as its `items` array.
fn splice_list(head: &Value, items: &[Bytes]) -> Bytes {
    let head = serde_json::to_vec(head).unwrap_or_default();
    let size = head.len() + items.iter().map(|i| i.len() + 1).sum::<usize>() + 16;
    let mut out = Vec::with_capacity(size);
    // `head` is an object: drop its closing brace and append the items.
    out.extend_from_slice(&head[..head.len().saturating_sub(1)]);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// A JSON answer.
pub fn json_response(code: u16, content_type: &str, body: Value) -> Response<Body> {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    bytes_response(code, content_type, Bytes::from(bytes))
}

/// An answer with raw bytes.
pub fn bytes_response(code: u16, content_type: &str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A `Status` answer for an error.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, "application/json", e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A running listener; dropping it does not stop it, `shutdown` does.
pub struct Listener {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` and serves `server` until `shutdown`.
    pub async fn bind(server: Arc<ApiServer>, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(server, listener, stop_rx));
        Ok(Self { addr, stop, task })
    }

    /// Stops accepting and drops every open connection (and so every watch).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    server: Arc<ApiServer>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let server = server.clone();
                let mut stop = stop.clone();
                connections.spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    // Upgrades for pods/exec's WebSocket.
                    let conn = builder.serve_connection_with_upgrades(io, service);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.changed() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_percent_decoded() {
        let q = parse_query("labelSelector=app%3Dweb%2Ctier%20in%20(a)&watch=true&x");
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
