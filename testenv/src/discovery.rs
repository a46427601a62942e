//! Non-resource endpoints: `/version`, health, and API discovery (`/api`, `/apis`, group versions).

use http::Response;
use serde_json::{Value, json};

use crate::resources::{ResourceTable, ResourceType};
use crate::router::Route;
use crate::server::{ApiServer, Body, bytes_response, error_response, json_response};
use crate::status::ApiError;

/// The verbs discovery lists, in the order kube-apiserver does: apiextensions-apiserver lists a
/// custom resource's verbs in its own order.
fn verbs_of(rt: &ResourceType) -> &'static [&'static str] {
    let builtin = crate::resources::is_builtin_resource(&rt.group, &rt.version, &rt.plural);
    if builtin && rt.is_review() {
        &["create"]
    } else if builtin && rt.group.is_empty() && rt.plural == "namespaces" {
        // The namespace registry has no DELETE on the collection.
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ]
    } else if builtin {
        crate::resources::VERBS
    } else {
        &[
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "create",
            "update",
            "watch",
        ]
    }
}

/// `discovery.StorageVersionHash`: the first 8 bytes of the SHA-256 of the storage
/// `group/version/kind`, base64. events.k8s.io Events are stored as core v1 Events.
fn storage_version_hash(rt: &ResourceType) -> String {
    use base64::Engine as _;
    let gvk = if rt.group == "events.k8s.io" && rt.kind == "Event" {
        "/v1/Event".to_string()
    } else {
        format!("{}/{}/{}", rt.group, rt.version, rt.kind)
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, gvk.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

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
            "verbs": verbs_of(rt),
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        // Reviews are never stored, so they have no storage version.
        if !rt.is_review() {
            r["storageVersionHash"] = json!(storage_version_hash(rt));
        }
        out.push(r);
        let mut subresources: Vec<&str> = rt.subresources.iter().map(String::as_str).collect();
        // The router serves namespaces/finalize beside the declared subresources.
        let namespaces = rt.group.is_empty() && rt.plural == "namespaces";
        if namespaces {
            subresources.push("finalize");
        }
        subresources.sort();
        subresources.dedup();
        for sub in subresources {
            let verbs = if namespaces && sub == "finalize" {
                json!(["update"])
            } else {
                json!(ResourceType::subresource_verbs(sub))
            };
            let mut entry = json!({
                "name": format!("{}/{}", rt.plural, sub),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.subresource_kind(sub),
                "verbs": verbs,
            });
            if let Some((group, version)) = rt.subresource_group_version(sub) {
                entry["group"] = json!(group);
                entry["version"] = json!(version);
            }
            out.push(entry);
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
        Route::Metrics => bytes_response(
            200,
            gocompat::metrics_text::CONTENT_TYPE,
            bytes::Bytes::from(server.request_metrics.render()),
        ),
        Route::Health(request) => {
            let (code, body) = crate::health::answer(request);
            bytes_response(code, "text/plain; charset=utf-8", bytes::Bytes::from(body))
        }
        Route::CoreVersions => {
            if let Some(r) = aggregated_discovery(server, accept, true) {
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
            if let Some(r) = aggregated_discovery(server, accept, false) {
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
            None => crate::server::plain_not_found(),
        },
        Route::GroupVersion(group, version) => {
            let resources = api_resources(&table, group, version);
            if resources.is_empty() {
                return crate::server::plain_not_found();
            }
            let gv = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            let mut list = json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv,
                "resources": resources,
            });
            if group.is_empty() {
                // kube-apiserver's legacy /api/v1 handler writes no apiVersion.
                if let Some(m) = list.as_object_mut() {
                    m.remove("apiVersion");
                }
            }
            json_response(200, "application/json", list)
        }
        Route::OpenApiV2 | Route::OpenApiV3Index | Route::OpenApiV3(_) => {
            crate::openapi::serve(server, route, accept)
        }
        Route::Resource { .. } => error_response(&ApiError::path_not_found()),
    }
}

/// The aggregated-discovery version a client's Accept header asks for first (`v2`, or `v2beta1`
/// for kubectl 1.27), if any.
pub fn aggregated_discovery_version(accept: &str) -> Option<&'static str> {
    for media in accept.split(',') {
        let params: Vec<(&str, &str)> = media
            .split(';')
            .skip(1)
            .filter_map(|p| p.trim().split_once('='))
            .collect();
        let has = |k: &str, v: &str| params.iter().any(|(pk, pv)| *pk == k && *pv == v);
        if has("g", "apidiscovery.k8s.io") && has("as", "APIGroupDiscoveryList") {
            if has("v", "v2") {
                return Some("v2");
            }
            if has("v", "v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

/// One `APIResourceDiscovery` entry.
fn resource_discovery(rt: &ResourceType) -> Value {
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let mut r = json!({
        "resource": rt.plural,
        "responseKind": kind,
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": verbs_of(rt),
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    if !rt.subresources.is_empty() {
        let subs: Vec<Value> = rt
            .subresources
            .iter()
            .map(|s| {
                // kube-apiserver fills a subresource's group and version only when its kind is of
                // another group-version (a pod's Eviction, a Deployment's autoscaling/v1 Scale).
                let (group, version) = rt.subresource_group_version(s).unwrap_or(("", ""));
                let kind = json!({"group": group, "version": version, "kind": rt.subresource_kind(s)});
                json!({"subresource": s, "responseKind": kind, "verbs": ResourceType::subresource_verbs(s)})
            })
            .collect();
        r["subresources"] = json!(subs);
    }
    r
}

/// The `APIGroupDiscoveryList` of the core group (`core`) or of the named groups.
pub fn aggregated_discovery_document(table: &ResourceTable, core: bool, version: &str) -> Value {
    let items: Vec<Value> = table
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = crate::resources::resources_of(table, &group, v)
                        .map(|rt| resource_discovery(rt))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut metadata = json!({});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2`, or `v2beta1`) when the client asks for it;
/// `None` falls back to the legacy documents.
pub fn aggregated_discovery(
    server: &ApiServer,
    accept: &str,
    core: bool,
) -> Option<Response<Body>> {
    let version = aggregated_discovery_version(accept)?;
    let doc = aggregated_discovery_document(&server.resources(), core, version);
    Some(json_response(
        200,
        &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
        doc,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_lists_groups_versions_and_resources() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_discovery_version(kubectl), Some("v2"));
        assert_eq!(
            aggregated_discovery_version(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2beta1")
        );
        assert_eq!(aggregated_discovery_version("application/json, */*"), None);

        let table = ResourceTable::builtin();
        let core = aggregated_discovery_document(&table, true, "v2");
        assert_eq!(core["apiVersion"], json!("apidiscovery.k8s.io/v2"));
        assert_eq!(core["items"].as_array().map(Vec::len), Some(1));
        let v1 = &core["items"][0]["versions"][0];
        assert_eq!(v1["version"], json!("v1"));
        let svc = v1["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == json!("services")))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            svc,
            json!({"resource": "services", "responseKind": {"group": "", "version": "v1", "kind": "Service"},
                "scope": "Namespaced", "singularResource": "service", "verbs": crate::resources::VERBS,
                "shortNames": ["svc"], "categories": ["all"],
                "subresources": [{"subresource": "status",
                    "responseKind": {"group": "", "version": "", "kind": "Service"},
                    "verbs": ["get", "patch", "update"]}]})
        );
        let groups = aggregated_discovery_document(&table, false, "v2");
        let names: Vec<&str> = groups["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g["metadata"]["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert!(names.contains(&"discovery.k8s.io") && !names.contains(&""));
    }
}
