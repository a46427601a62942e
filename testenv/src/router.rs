//! Maps request paths to resources and verbs, as kube-apiserver's path layout defines them.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;

use crate::api::Verb;
use crate::resources::ResourceType;
use crate::server::ApiServer;
use crate::status::ApiError;

/// What a path names.
#[derive(Debug, Clone)]
pub enum Route {
    /// A resource collection or object.
    Resource {
        /// The verb implied by method, path and `watch`.
        verb: Verb,
        /// The resource type.
        resource: Arc<ResourceType>,
        /// Namespace from the path.
        namespace: Option<String>,
        /// Name from the path.
        name: Option<String>,
        /// Subresource from the path.
        subresource: Option<String>,
    },
    /// `/version`.
    Version,
    /// `/metrics`.
    Metrics,
    /// `/healthz`, `/livez`, `/readyz` and their sub-checks.
    Health(crate::health::HealthRequest),
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    GroupVersion(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3Index,
    /// `/openapi/v3/{api/v1 | apis/group/version}`.
    OpenApiV3(String),
}

/// A pod subresource that streams instead of answering with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodStream {
    /// `pods/exec`: an upgraded connection.
    Exec,
    /// `pods/log`: a text stream.
    Log,
}

/// The pod subresource, namespace and pod name of `/api/v1/namespaces/{ns}/pods/{name}/{exec|log}`.
/// These are routed before the body is read: an upgrade needs the request itself.
pub fn pod_stream(path: &str) -> Option<(PodStream, String, String)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub] => {
            let stream = match *sub {
                "exec" => PodStream::Exec,
                "log" => PodStream::Log,
                _ => return None,
            };
            Some((stream, ns.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// Routes one request.
pub fn route(
    server: &ApiServer,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<Route, ApiError> {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["metrics"] => return Ok(Route::Metrics),
        [endpoint @ ("healthz" | "livez" | "readyz"), rest @ ..] => {
            return Ok(Route::Health(crate::health::HealthRequest {
                endpoint: endpoint.to_string(),
                check: (!rest.is_empty()).then(|| rest.join("/")),
                verbose: query.contains_key("verbose"),
                // The query is kept one value per name, so one `exclude` is honoured.
                exclude: query.get("exclude").cloned().into_iter().collect(),
            }));
        }
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["apis", group] => return Ok(Route::Group(group.to_string())),
        ["api", version] => return Ok(Route::GroupVersion(String::new(), version.to_string())),
        ["apis", group, version] => {
            return Ok(Route::GroupVersion(group.to_string(), version.to_string()));
        }
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiV3Index),
        ["openapi", "v3", rest @ ..] => return Ok(Route::OpenApiV3(rest.join("/"))),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    // Legacy `/watch/` prefix: same as `?watch=true`.
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let table = server.resources();
    let lookup = |plural: &str| {
        table
            .get(group, version, plural)
            .ok_or_else(ApiError::path_not_found)
    };
    let (resource, namespace, name, subresource) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty() && matches!(*plural, "status" | "finalize") && tail.is_empty() =>
        {
            (
                lookup("namespaces")?,
                None,
                Some(ns.to_string()),
                Some(plural.to_string()),
            )
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let rt = lookup(plural)?;
            if !rt.namespaced {
                return Err(ApiError::path_not_found());
            }
            match tail {
                [] => (rt, Some(ns.to_string()), None, None),
                [name] => (rt, Some(ns.to_string()), Some(name.to_string()), None),
                [name, sub] => (
                    rt,
                    Some(ns.to_string()),
                    Some(name.to_string()),
                    Some(sub.to_string()),
                ),
                _ => return Err(ApiError::path_not_found()),
            }
        }
        [plural, tail @ ..] => {
            let rt = lookup(plural)?;
            match tail {
                [] => (rt, None, None, None),
                [name] if !rt.namespaced => (rt, None, Some(name.to_string()), None),
                [name, sub] if !rt.namespaced => {
                    (rt, None, Some(name.to_string()), Some(sub.to_string()))
                }
                _ => return Err(ApiError::path_not_found()),
            }
        }
        [] => return Err(ApiError::path_not_found()),
    };
    if let Some(sub) = &subresource
        && !resource.subresources.iter().any(|s| s == sub)
        && !(resource.plural == "namespaces" && sub == "finalize")
    {
        return Err(ApiError::path_not_found());
    }
    let watch = legacy_watch || query.get("watch").is_some_and(|w| w == "true" || w == "1");
    // A Binding is only ever created.
    let binding = subresource.as_deref() == Some(crate::binding::BINDING);
    let verb = match (method, name.is_some()) {
        (&Method::POST, false) if resource.is_review() => Verb::Create,
        _ if resource.is_review() => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        (&Method::POST, true) if binding => Verb::Create,
        _ if binding => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        (&Method::GET, false) if watch => Verb::Watch,
        (&Method::GET, true) if watch => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::GET, true) => Verb::Get,
        (&Method::POST, false) => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    Ok(Route::Resource {
        verb,
        resource,
        namespace,
        name,
        subresource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_streams_are_recognised_by_path_alone() {
        assert_eq!(
            pod_stream("/api/v1/namespaces/default/pods/web/exec"),
            Some((PodStream::Exec, "default".into(), "web".into()))
        );
        assert_eq!(
            pod_stream("/api/v1/namespaces/default/pods/web/log/"),
            Some((PodStream::Log, "default".into(), "web".into()))
        );
        assert_eq!(
            pod_stream("/api/v1/namespaces/default/pods/web/status"),
            None
        );
        assert_eq!(
            pod_stream("/api/v1/namespaces/default/services/web/exec"),
            None
        );
        assert_eq!(
            pod_stream("/apis/apps/v1/namespaces/default/pods/web/exec"),
            None
        );
    }
}
