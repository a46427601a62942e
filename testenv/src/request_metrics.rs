//! `/metrics` on the API port: kube-apiserver's `apiserver_request_total`, the counter clients and
//! benchmarks read to see which requests a controller made (by verb, group, version, resource,
//! subresource, scope, dry run and response code), in the Prometheus text format client_golang
//! writes. testenv has none of kube-apiserver's other families (etcd, admission, watch cache…).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::api::{ApiRequest, Verb};
use crate::server::{ApiServer, Body};

/// One series' labels, in the order client_golang writes them (sorted by name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    pub code: u16,
    pub dry_run: &'static str,
    pub group: String,
    pub resource: String,
    pub scope: &'static str,
    pub subresource: String,
    pub verb: &'static str,
    pub version: String,
}

impl RequestLabels {
    /// The labels of a served resource request (`endpoints/metrics.MonitorRequest`'s).
    pub fn of(req: &ApiRequest, code: u16) -> Self {
        let verb = match req.verb {
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create => "POST",
            Verb::Update => "PUT",
            Verb::Patch if req.content_type.starts_with("application/apply-patch") => "APPLY",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::DeleteCollection => "DELETECOLLECTION",
        };
        let scope = if req.name.is_some() {
            "resource"
        } else if req.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        Self {
            code,
            dry_run: if req.dry_run() { "All" } else { "" },
            group: req.resource.group.clone(),
            resource: req.resource.plural.clone(),
            scope,
            subresource: req.subresource.clone().unwrap_or_default(),
            verb,
            version: req.resource.version.clone(),
        }
    }
}

/// The counters, one per label set.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    counts: Mutex<BTreeMap<RequestLabels, u64>>,
}

impl RequestMetrics {
    /// Counts one request.
    pub fn observe(&self, labels: RequestLabels) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(labels).or_default() += 1;
    }

    /// The exposition text (empty families are left out, as client_golang does).
    pub fn render(&self) -> String {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        render(&counts)
    }
}

/// A watch's response body, which counts the request when it is done: when the stream ends or the
/// client goes away (hyper then drops the body), as kube-apiserver counts a watch once its handler
/// returns.
pub struct CountedWhenDone {
    body: Body,
    server: Arc<ApiServer>,
    labels: Option<RequestLabels>,
}

impl CountedWhenDone {
    /// Wraps `body`; `labels` are counted on `server` when it is done.
    pub fn new(body: Body, server: Arc<ApiServer>, labels: RequestLabels) -> Self {
        Self {
            body,
            server,
            labels: Some(labels),
        }
    }
}

impl hyper::body::Body for CountedWhenDone {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for CountedWhenDone {
    fn drop(&mut self) {
        if let Some(labels) = self.labels.take() {
            self.server.request_metrics.observe(labels);
        }
    }
}

/// The text of `apiserver_request_total` for `counts`.
pub fn render(counts: &BTreeMap<RequestLabels, u64>) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n",
    );
    for (l, n) in counts {
        out.push_str(&format!(
            "apiserver_request_total{{code=\"{}\",component=\"apiserver\",dry_run=\"{}\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}\n",
            l.code, l.dry_run, l.group, l.resource, l.scope, l.subresource, l.verb, l.version
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(verb: &'static str, resource: &str, code: u16) -> RequestLabels {
        RequestLabels {
            code,
            dry_run: "",
            group: String::new(),
            resource: resource.into(),
            scope: "namespace",
            subresource: String::new(),
            verb,
            version: "v1".into(),
        }
    }

    #[test]
    fn counters_render_as_client_golang_writes_them() {
        let metrics = RequestMetrics::default();
        assert_eq!(metrics.render(), "");
        metrics.observe(labels("LIST", "pods", 200));
        metrics.observe(labels("LIST", "pods", 200));
        metrics.observe(labels("POST", "configmaps", 201));
        let text = metrics.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("# HELP apiserver_request_total [STABLE]"));
        assert_eq!(lines[1], "# TYPE apiserver_request_total counter");
        assert_eq!(
            &lines[2..],
            [
                r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 2"#,
                r#"apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="POST",version="v1"} 1"#,
            ]
        );
    }
}
