//! The HTTPS POST of an AdmissionReview: trusting exactly the webhook's caBundle, reaching
//! `clientConfig.service` through a registered local address, and describing failures the way
//! Go's HTTP client does (`Post "<url>": ...`), since those texts reach the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;
use serde_json::Value;

/// Largest webhook answer read, as the apiserver's limit on response bodies.
const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// Where one call goes.
#[derive(Debug, Clone)]
pub struct CallTarget {
    /// The URL as upstream would name it in errors, with `?timeout=`.
    pub display_url: String,
    /// The URL actually dialled.
    pub connect_url: String,
    /// The name the certificate must carry, when it differs from the dialled host.
    pub server_name: Option<String>,
}

impl CallTarget {
    /// A `clientConfig.url` target.
    pub fn url(url: &str, timeout: Duration) -> Self {
        let full = with_timeout_query(url, timeout);
        Self {
            display_url: full.clone(),
            connect_url: full,
            server_name: None,
        }
    }

    /// A `clientConfig.service` target reached at `addr`.
    pub fn service(
        namespace: &str,
        name: &str,
        port: u16,
        path: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Self {
        let host = format!("{name}.{namespace}.svc");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Self {
            display_url: with_timeout_query(&format!("https://{host}:{port}{path}"), timeout),
            connect_url: with_timeout_query(&format!("https://{addr}{path}"), timeout),
            server_name: Some(host),
        }
    }
}

/// Appends `timeout=Ns` as the apiserver's webhook client does.
fn with_timeout_query(url: &str, timeout: Duration) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timeout={}s", timeout.as_secs())
}

/// Why a call failed; the text follows `failed to call webhook: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

fn tls_config(ca_bundle: &[u8]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_bundle[..]) {
        let cert = cert.map_err(|e| format!("unable to load root certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("unable to load root certificates: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Go's wording for the usual transport failures.
fn describe(err: &(dyn std::error::Error + 'static), target: &CallTarget) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let addr = target
                .connect_url
                .trim_start_matches("https://")
                .split('/')
                .next()
                .unwrap_or("");
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return format!("dial tcp {addr}: connect: connection refused");
                }
                std::io::ErrorKind::ConnectionReset => {
                    return format!("read tcp {addr}: read: connection reset by peer");
                }
                _ => {}
            }
        }
        // io::Error hides its payload from `source()`, so look inside it explicitly.
        let tls = find_tls_error(e);
        if let Some(tls) = tls {
            return tls_error_text(tls);
        }
        let text = e.to_string();
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        cur = e.source();
    }
    chain.join(": ")
}

/// The rustls error behind `e`, looking through (nested) io::Errors.
fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return find_tls_error(inner);
    }
    None
}

/// Go's crypto/tls and x509 wording for a failed handshake.
fn tls_error_text(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(c) => {
            let why = match c {
                C::UnknownIssuer | C::BadSignature => {
                    "x509: certificate signed by unknown authority".to_string()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "x509: certificate is not valid for the requested name".to_string()
                }
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => {
                    "x509: certificate has expired or is not yet valid".to_string()
                }
                other => format!("x509: {other}"),
            };
            format!("tls: failed to verify certificate: {why}")
        }
        other => format!("remote error: tls: {other}"),
    }
}

/// POSTs `body` to the target and returns the decoded JSON answer.
pub async fn post_review(
    target: &CallTarget,
    ca_bundle: &[u8],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Value, CallError> {
    let fail = |why: String| {
        CallError(format!(
            "Post {}: {why}",
            crate::meta::go_quote(&target.display_url)
        ))
    };
    let config = tls_config(ca_bundle).map_err(fail)?;
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let builder = match &target.server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|e| fail(e.to_string()))?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let connector = builder.enable_http1().build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = http::Request::post(&target.connect_url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| fail(e.to_string()))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| fail(describe(&e, target)))?;
        let status = response.status();
        let bytes = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        Ok::<_, CallError>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| fail("context deadline exceeded".into()))??;
    if !status.is_success() {
        // A Status body carries the webhook server's own explanation.
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
            .filter(|m| !m.is_empty());
        return Err(CallError(message.unwrap_or_else(|| {
            format!(
                "the server responded with the status code {} but did not return more information",
                status.as_u16()
            )
        })));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| CallError(format!("couldn't decode the response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_targets_dial_the_registered_address_but_verify_the_service_name() {
        let t = CallTarget::service(
            "webhooks",
            "svcplane",
            443,
            "/validate",
            SocketAddr::from(([127, 0, 0, 1], 9443)),
            Duration::from_secs(10),
        );
        assert_eq!(
            t.display_url,
            "https://svcplane.webhooks.svc:443/validate?timeout=10s"
        );
        assert_eq!(t.connect_url, "https://127.0.0.1:9443/validate?timeout=10s");
        assert_eq!(t.server_name.as_deref(), Some("svcplane.webhooks.svc"));
        let u = CallTarget::url("https://h:1/m?x=1", Duration::from_secs(3));
        assert_eq!(u.connect_url, "https://h:1/m?x=1&timeout=3s");
    }

    #[tokio::test]
    async fn a_refused_connection_reads_like_go() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let t = CallTarget::url(&format!("https://{addr}/m"), Duration::from_secs(2));
        let err = post_review(&t, b"", b"{}".to_vec(), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(
            err.0,
            format!(
                "Post \"https://{addr}/m?timeout=2s\": dial tcp {addr}: connect: connection refused"
            )
        );
    }
}
