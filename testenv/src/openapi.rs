//! OpenAPI documents and aggregated discovery, as kubectl downloads them.

use http::Response;

use crate::router::Route;
use crate::server::{ApiServer, Body, error_response};
use crate::status::ApiError;

/// Serves `/openapi/v2` and `/openapi/v3/...`.
pub fn serve(_server: &ApiServer, _route: &Route, _accept: &str) -> Response<Body> {
    error_response(&ApiError::path_not_found())
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2`) when the client asks for it; `None` falls back
/// to the legacy documents.
pub fn aggregated_discovery(
    _server: &ApiServer,
    _accept: &str,
    _core: bool,
) -> Option<Response<Body>> {
    None
}
