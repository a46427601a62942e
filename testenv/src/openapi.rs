//! OpenAPI documents as kubectl downloads them: `/openapi/v3` (an index of group-versions) and
//! `/openapi/v3/{api/v1 | apis/group/version}` (paths and component schemas), so that
//! `kubectl apply` finds server-side field validation and the strategic-merge metadata it needs.
//! `/openapi/v2` is a valid document without paths or definitions (kubectl 1.27 and 1.28 refuse to
//! apply without one; finding no patch metadata there, they use their compiled-in types).
//!
//! Schemas of the built-in kinds come from k8s-openapi's `schemars` impls; the patch-strategy
//! extensions upstream derives from Go struct tags are added from
//! [`crate::schemas::PATCH_METADATA`].

use std::collections::BTreeSet;

use http::Response;
use serde_json::{Map, Value, json};

use crate::resources::{ResourceTable, ResourceType};
use crate::router::Route;
use crate::schemas::builtin_schemas;
use crate::server::{ApiServer, Body, error_response, json_response};
use crate::status::ApiError;
use crate::store::CollectionKey;

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref"
                    && let Some(r) = x
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(r.to_string());
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The names reachable from `roots` through `$ref`s, roots included.
fn reachable(components: &Map<String, Value>, roots: &[String]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.to_vec();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(s) = components.get(&name) {
            let mut refs = Vec::new();
            collect_refs(s, &mut refs);
            stack.extend(refs.into_iter().filter(|r| !seen.contains(r)));
        }
    }
    seen
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn json_content(schema_ref: &str) -> Value {
    let s = json!({"$ref": format!("#/components/schemas/{schema_ref}")});
    json!({"application/json": {"schema": s}, "application/yaml": {"schema": s}})
}

fn operation(rt: &ResourceType, action: &str, verb: &str, schema: &str, suffix: &str) -> Value {
    let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let mut params = vec![query_param(
        "pretty",
        "If 'true', then the output is pretty printed.",
    )];
    let writes = matches!(action, "post" | "put" | "patch");
    if writes {
        params.push(query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ));
        params.push(query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."));
        params.push(query_param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict."));
    }
    if action == "patch" {
        params.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    let mut op = json!({
        "description": format!("{verb} the specified {}", rt.kind),
        "operationId": format!("{verb}{}{}", rt.kind, suffix),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": json_content(schema)}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    match action {
        "post" | "put" => {
            op["requestBody"] = json!({"content": json_content(schema), "required": true});
        }
        "patch" => {
            let patch = json!({"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}});
            let mut content = Map::new();
            content.insert("application/apply-patch+yaml".into(), patch.clone());
            content.insert("application/json-patch+json".into(), patch.clone());
            content.insert("application/merge-patch+json".into(), patch.clone());
            if builtin_resource(rt) {
                content.insert("application/strategic-merge-patch+json".into(), patch);
            }
            op["requestBody"] = json!({"content": content, "required": true});
        }
        _ => {}
    }
    op
}

fn builtin_resource(rt: &ResourceType) -> bool {
    ResourceTable::builtin()
        .get(&rt.group, &rt.version, &rt.plural)
        .is_some()
}

/// The paths of one resource type.
fn resource_paths(rt: &ResourceType, schema: &str, paths: &mut Map<String, Value>) {
    let base = rt.group_version_path();
    let (collection, suffix) = if rt.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", rt.plural),
            "Namespaced",
        )
    } else {
        (format!("{base}/{}", rt.plural), "")
    };
    let item = format!("{collection}/{{name}}");
    let list_schema = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    paths.insert(
        collection.clone(),
        json!({
            "get": operation(rt, "list", "list", list_schema, suffix),
            "post": operation(rt, "post", "create", schema, suffix),
            "delete": operation(rt, "deletecollection", "deletecollection", list_schema, suffix),
        }),
    );
    paths.insert(
        item,
        json!({
            "get": operation(rt, "get", "read", schema, suffix),
            "put": operation(rt, "put", "replace", schema, suffix),
            "patch": operation(rt, "patch", "patch", schema, suffix),
            "delete": operation(rt, "delete", "delete", list_schema, suffix),
        }),
    );
    // Only the read-write subresources: the Binding, exec and log schemas are not in the document.
    for sub in rt
        .subresources
        .iter()
        .filter(|s| ResourceType::subresource_verbs(s).contains(&"update"))
    {
        let s = format!("{suffix}{}", capitalize(sub));
        paths.insert(
            format!("{collection}/{{name}}/{sub}"),
            json!({
                "get": operation(rt, "get", "read", schema, &s),
                "put": operation(rt, "put", "replace", schema, &s),
                "patch": operation(rt, "patch", "patch", schema, &s),
            }),
        );
    }
    if rt.namespaced {
        paths.insert(
            format!("{base}/{}", rt.plural),
            json!({"get": operation(rt, "list", "list", list_schema, "ForAllNamespaces")}),
        );
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The schema of a custom resource from its CRD version, with the GVK extension and ObjectMeta.
fn custom_resource_schema(crd: &Value, rt: &ResourceType) -> Value {
    let version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"].as_str() == Some(&rt.version)));
    let mut schema = version
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Value::Object(m) = &mut schema {
        let props = m.entry("properties").or_insert_with(|| json!({}));
        if let Value::Object(p) = props {
            p.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}),
            );
            p.entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            p.entry("kind").or_insert_with(|| json!({"type": "string"}));
        }
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]),
        );
    }
    schema
}

/// The OpenAPI v3 document of one group/version, or `None` if nothing is served there.
pub fn group_version_document(server: &ApiServer, group: &str, version: &str) -> Option<Value> {
    let table = server.resources();
    let builtins = builtin_schemas();
    let types: Vec<_> = crate::resources::resources_of(&table, group, version)
        .cloned()
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut roots: Vec<String> = vec![
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
    ];
    let mut custom: Vec<(String, Value)> = Vec::new();
    for rt in &types {
        let schema = match builtins.schema_name(&rt.group, &rt.version, &rt.kind) {
            Some(name) if builtin_resource(rt) => name.to_string(),
            _ => {
                let crd = server
                    .store
                    .read()
                    .get(
                        &CollectionKey::new("apiextensions.k8s.io", "customresourcedefinitions"),
                        "",
                        &format!("{}.{}", rt.plural, rt.group),
                    )
                    .map(|o| o.value())
                    .unwrap_or(Value::Null);
                let name = format!(
                    "{}.{}.{}",
                    rt.group.split('.').rev().collect::<Vec<_>>().join("."),
                    rt.version,
                    rt.kind
                );
                custom.push((name.clone(), custom_resource_schema(&crd, rt)));
                roots.push("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into());
                name
            }
        };
        roots.push(schema.clone());
        resource_paths(rt, &schema, &mut paths);
    }
    let mut components = Map::new();
    for name in reachable(&builtins.components, &roots) {
        if let Some(s) = builtins.components.get(&name) {
            components.insert(name, s.clone());
        }
    }
    for (name, schema) in custom {
        components.insert(name, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server.options.git_version},
        "paths": paths,
        "components": {"schemas": components},
    }))
}

/// The `/openapi/v3` index: one entry per served group/version, with a content hash.
pub fn index_document(server: &ApiServer) -> Value {
    let table = server.resources();
    let mut paths = Map::new();
    for (group, versions) in table.groups() {
        for version in versions {
            let key = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let hash = group_version_document(server, &group, &version)
                .map(|d| content_hash(&serde_json::to_vec(&d).unwrap_or_default()))
                .unwrap_or_default();
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// The media type of gnostic's protobuf OpenAPI v2 document, which client-go asks for.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// A length-delimited protobuf field.
fn proto_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2);
    let mut len = bytes.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// `openapi_v2.Document{swagger: "2.0", info: {title: "Kubernetes", version}}` in protobuf.
pub fn v2_protobuf(version: &str) -> Vec<u8> {
    let mut info = Vec::new();
    proto_bytes(&mut info, 1, b"Kubernetes");
    proto_bytes(&mut info, 2, version.as_bytes());
    let mut doc = Vec::new();
    proto_bytes(&mut doc, 1, b"2.0");
    proto_bytes(&mut doc, 2, &info);
    doc
}

/// FNV-1a over the document, as a hex string (stable across runs, changes with content).
fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// Serves `/openapi/v2` and `/openapi/v3/...`.
pub fn serve(server: &ApiServer, route: &Route, accept: &str) -> Response<Body> {
    match route {
        Route::OpenApiV2 => {
            let version = &server.options.git_version;
            if accept.contains(OPENAPI_V2_PROTOBUF) {
                // Go's mime parser rejects the '@' of the protobuf media type; kube-openapi
                // answers octet-stream as well.
                crate::server::bytes_response(
                    200,
                    "application/octet-stream",
                    bytes::Bytes::from(v2_protobuf(version)),
                )
            } else {
                json_response(
                    200,
                    "application/json",
                    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": version},
                        "paths": {}, "definitions": {}}),
                )
            }
        }
        Route::OpenApiV3Index => json_response(200, "application/json", index_document(server)),
        Route::OpenApiV3(rest) => {
            let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
            let doc = match segs.as_slice() {
                ["api", version] => group_version_document(server, "", version),
                ["apis", group, version] => group_version_document(server, group, version),
                _ => None,
            };
            match doc {
                Some(d) => json_response(200, "application/json", d),
                None => error_response(&ApiError::path_not_found()),
            }
        }
        _ => error_response(&ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_follows_refs() {
        let s = builtin_schemas();
        let r = reachable(&s.components, &["io.k8s.api.core.v1.Service".to_string()]);
        assert!(r.contains("io.k8s.api.core.v1.ServicePort"));
        assert!(r.contains("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(!r.contains("io.k8s.api.core.v1.PodSpec"));
    }

    #[test]
    fn v2_document_is_a_gnostic_protobuf_document() {
        assert_eq!(
            v2_protobuf("v1"),
            b"\x0a\x032.0\x12\x10\x0a\x0aKubernetes\x12\x02v1".to_vec()
        );
    }

    #[test]
    fn hashes_are_stable_hex() {
        assert_eq!(content_hash(b""), "CBF29CE484222325");
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
