//! Non-resource endpoints: `/version`, health, and API discovery (`/api`, `/apis`, group versions).

use http::Response;
use serde_json::{Value, json};

use crate::resources::{ResourceTable, ResourceType};
use crate::router::Route;
use crate::server::{ApiServer, Body, bytes_response, error_response, json_response};
use crate::status::ApiError;

/// The verbs every served resource supports, as discovery lists them.
pub(crate) const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The APIResource entries of one group/version, subresources included.
pub fn api_resources(table: &ResourceTable, group: &str, version: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for rt in table
        .all()
        .filter(|rt| rt.group == group && rt.version == version)
    {
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": VERBS,
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        out.push(r);
        for sub in &rt.subresources {
            out.push(json!({
                "name": format!("{}/{}", rt.plural, sub),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    out
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(json!({}))})
}

/// `/version` as kube-apiserver answers it.
pub fn version_info(git_version: &str) -> Value {
    let trimmed = git_version.trim_start_matches('v');
    let mut parts = trimmed.split(['.', '-']);
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("34");
    json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Serves a non-resource route.
pub fn serve_non_resource(server: &ApiServer, route: &Route, accept: &str) -> Response<Body> {
    let table = server.resources();
    match route {
        Route::Version => json_response(
            200,
            "application/json",
            version_info(&server.options.git_version),
        ),
        Route::Health => bytes_response(
            200,
            "text/plain; charset=utf-8",
            bytes::Bytes::from_static(b"ok"),
        ),
        Route::CoreVersions => {
            if let Some(r) = crate::openapi::aggregated_discovery(server, accept, true) {
                return r;
            }
            json_response(
                200,
                "application/json",
                json!({
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
                }),
            )
        }
        Route::Groups => {
            if let Some(r) = crate::openapi::aggregated_discovery(server, accept, false) {
                return r;
            }
            let groups: Vec<Value> = table
                .groups()
                .into_iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| group_entry(&g, &vs))
                .collect();
            json_response(
                200,
                "application/json",
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        Route::Group(group) => match table.groups().into_iter().find(|(g, _)| g == group) {
            Some((g, vs)) => {
                let mut entry = group_entry(&g, &vs);
                entry["kind"] = json!("APIGroup");
                entry["apiVersion"] = json!("v1");
                json_response(200, "application/json", entry)
            }
            None => error_response(&ApiError::path_not_found()),
        },
        Route::GroupVersion(group, version) => {
            let resources = api_resources(&table, group, version);
            if resources.is_empty() {
                return error_response(&ApiError::path_not_found());
            }
            let gv = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            json_response(
                200,
                "application/json",
                json!({
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": gv,
                    "resources": resources,
                }),
            )
        }
        Route::OpenApiV2 | Route::OpenApiV3Index | Route::OpenApiV3(_) => {
            crate::openapi::serve(server, route, accept)
        }
        Route::Resource { .. } => error_response(&ApiError::path_not_found()),
    }
}

/// The resource types of one group/version, for documents that list them.
pub fn resources_of<'a>(
    table: &'a ResourceTable,
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'a std::sync::Arc<ResourceType>> + 'a {
    table
        .all()
        .filter(move |rt| rt.group == group && rt.version == version)
}
